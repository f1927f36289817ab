"""Load test for the classify API: N concurrent clients on loopback for a bounded time.

Prints requests/s, p50/p99 latency, errors, and the server's memory after warm-up and after each round, then the same
model called in a loop in this process (no HTTP), and the ratio between the two.

    .venv/bin/python bench/load.py [--clients 8] [--seconds 15] [--rounds 2] [--model PATH] [--workers 1]
"""
import argparse, http.client, io, os, signal, socket, statistics, subprocess, sys, threading, time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import psutil
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parent.parent

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def photo(size=(640, 427)):
    "A real photo (scikit-image's Chelsea) as a phone-sized JPEG."
    b = io.BytesIO(); Image.fromarray(skdata.chelsea()).resize(size).save(b, 'JPEG', quality=90); return b.getvalue()

def rss_mb(proc):
    "Resident memory of `proc` and its children, in MB."
    p = psutil.Process(proc.pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20

def start(port, model, workers):
    code = f"from bearlab.serve import serve; serve(model={model!r}, port={port}, workers={workers})"
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None: sys.exit('server died:\n' + proc.stderr.read().decode()[-3000:])
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=2); c.request('GET', '/health')
            if c.getresponse().status == 200: return proc
        except OSError: time.sleep(0.3)
    sys.exit('server did not start within 180 s')

def stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try: proc.wait(20)
    except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()

def client(port, body, deadline, lat, statuses):
    "One client on a keep-alive connection, posting `body` until `deadline`."
    conn = None
    while time.monotonic() < deadline:
        t = time.perf_counter()
        try:
            conn = conn or http.client.HTTPConnection('127.0.0.1', port, timeout=60)
            conn.request('POST', '/classify', body=body, headers={'Content-Type': 'image/jpeg'})
            r = conn.getresponse(); r.read(); status = r.status
            if r.getheader('Connection', '').lower() == 'close': conn.close(); conn = None
        except (OSError, http.client.HTTPException) as e:
            status = type(e).__name__
            if conn: conn.close()
            conn = None
        lat.append(time.perf_counter() - t); statuses[status] += 1

def load(port, body, clients, seconds):
    "Requests/s, latencies and statuses of `clients` concurrent clients for `seconds`."
    lat, statuses, deadline = [], Counter(), time.monotonic() + seconds
    ts = [threading.Thread(target=client, args=(port, body, deadline, lat, statuses)) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    return sum(v for k, v in statuses.items() if k == 200) / (time.perf_counter() - t0), lat, statuses

def model_alone(model, body, seconds):
    "A function measuring predictions per second of the classifier called in a loop in this process, on the same bytes."
    from bearlab.inference import Classifier
    clf = Classifier.load(model) if model else Classifier.default()
    clf.predict(body)
    def loop():
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds: clf.predict(body); n += 1
        return n / (time.perf_counter() - t0)
    # In a worker thread, as the server runs it: on a busy machine torch's threads in the main thread can be several times slower.
    return lambda: ThreadPoolExecutor(1).submit(loop).result()

def ms(xs, q): return 1000 * statistics.quantiles(xs, n=100)[q-1] if len(xs) > 1 else float('nan')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clients', type=int, default=8); ap.add_argument('--seconds', type=float, default=15)
    ap.add_argument('--rounds', type=int, default=2); ap.add_argument('--model', default=None); ap.add_argument('--workers', type=int, default=1)
    a = ap.parse_args()
    body = photo()
    alone = model_alone(a.model, body, a.seconds)
    before_rate = alone()  # measured before and after the server runs: the machine's other load changes
    port = free_port(); proc = start(port, a.model, a.workers)
    try:
        load(port, body, 2, 2)  # warm-up: first requests, allocator, thread pools
        before = rss_mb(proc)
        rounds = []
        for _ in range(a.rounds): rounds.append((*load(port, body, a.clients, a.seconds), rss_mb(proc)))
    finally: stop(proc)
    after_rate = alone()
    base = (before_rate + after_rate) / 2
    print(f'model alone (Classifier.predict in a loop in a thread, no HTTP): {before_rate:.1f} photos/s before, {after_rate:.1f} after')
    for i, (rps, lat, s, rss) in enumerate(rounds, 1):
        errors = sum(v for k, v in s.items() if k != 200)
        print(f'served, round {i}: {a.clients} clients x {a.seconds:g} s: {rps:.1f} req/s, p50 {ms(lat, 50):.0f} ms, '
              f'p99 {ms(lat, 99):.0f} ms, {sum(s.values())} requests, {errors} errors {dict(s) if errors else ""}')
    print(f'server memory (RSS, all its processes): {before:.0f} MB after warm-up, '
          + ', '.join(f'{r[-1]:.0f} MB after round {i}' for i, r in enumerate(rounds, 1)))
    print(f'ratio served/model alone: {statistics.mean(r[0] for r in rounds)/base:.2f} (mean of the rounds / mean of before and after)')

if __name__ == '__main__': main()
