"""Load test for the classify API: N concurrent clients on loopback, for a number of requests (or a bounded time).

Prints requests/s, p50/p99 latency, errors, and the server's memory after warm-up and after each round; then the same
model's bare torch forward pass (a prepared photo, batch of one, no decoding and no HTTP) in this process, and the ratio
between the two: what serving on ONNX Runtime, with decoding and batching, gives over the training stack's own forward.
Without --model it serves a bundle of the built-in model (written to a temporary folder).

    .venv/bin/python bench/load.py [--clients 8] [--requests 200] [--seconds S] [--rounds 2] [--model PATH] [--workers 1]
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

def client(port, body, deadline, lat, statuses, left):
    "One client on a keep-alive connection, posting `body` until `deadline`, or until `left` (shared) runs out."
    conn = None
    while time.monotonic() < deadline:
        with left[1]:
            if left[0] == 0: break
            left[0] -= 1
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

def load(port, body, clients, seconds, requests=-1):
    "Requests/s, latencies and statuses of `clients` concurrent clients for `seconds` or `requests` in all."
    lat, statuses, deadline, left = [], Counter(), time.monotonic() + seconds, [requests, threading.Lock()]
    ts = [threading.Thread(target=client, args=(port, body, deadline, lat, statuses, left)) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    return sum(v for k, v in statuses.items() if k == 200) / (time.perf_counter() - t0), lat, statuses

def in_thread(loop):
    "Run `loop` in a worker thread, as the server runs the model: on a busy machine torch's threads in the main thread can be several times slower."
    return lambda: ThreadPoolExecutor(1).submit(loop).result()

def rate(f, seconds):
    "Calls of `f` per second, for about `seconds`."
    f(); n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds: f(); n += 1
    return n / (time.perf_counter() - t0)

def torch_model(model):
    "The torch module of the model at `model` (a bundle folder or an export.pkl), and its `Classifier`."
    from bearlab.inference import Classifier, _read_meta, _torch_model
    p = Path(model)
    if (p/'bundle.json').is_file():
        clf = Classifier.load(p)
        return _torch_model(p, _read_meta(p)).eval(), clf
    clf = Classifier.load(p)
    return clf.model, clf

def baselines(model, body, seconds):
    "Functions measuring photos/s of the bare torch forward (prepared photo, batch 1) and of `Classifier.predict` (bytes)."
    import torch
    tm, clf = torch_model(model)
    x = torch.from_numpy(clf.pre.array(clf.read(body))[None])
    def fwd():
        with torch.inference_mode(): tm(x)
    return in_thread(lambda: rate(fwd, seconds)), in_thread(lambda: rate(lambda: clf.predict(body), seconds))

def default_bundle():
    from bearlab.inference import Classifier
    import tempfile
    return str(Classifier.default().save(Path(tempfile.mkdtemp())/'bears'))

def ms(xs, q): return 1000 * statistics.quantiles(xs, n=100)[q-1] if len(xs) > 1 else float('nan')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clients', type=int, default=8); ap.add_argument('--requests', type=int, default=200)
    ap.add_argument('--seconds', type=float, default=None, help='time each round instead of counting requests')
    ap.add_argument('--rounds', type=int, default=2); ap.add_argument('--model', default=None); ap.add_argument('--workers', type=int, default=1)
    a = ap.parse_args()
    import warnings; warnings.simplefilter('ignore')
    model, body = a.model or default_bundle(), photo()
    fwd, alone = baselines(model, body, 5)
    before = fwd(), alone()  # measured before and after the server runs: the machine's other load changes
    port = free_port(); proc = start(port, model, a.workers)
    try:
        load(port, body, 2, 2)  # warm-up: first requests, allocator, thread pools
        rss0 = rss_mb(proc)
        rounds = []
        for _ in range(a.rounds):
            secs, n = (a.seconds, -1) if a.seconds else (600, a.requests)
            rounds.append((*load(port, body, a.clients, secs, n), rss_mb(proc)))
    finally: stop(proc)
    after = fwd(), alone()
    base, pred = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    print(f'model: {model}')
    print(f'bare torch forward (prepared photo, batch 1, in a thread): {before[0]:.1f} photos/s before, {after[0]:.1f} after')
    print(f'Classifier.predict(bytes) in a loop in a thread, no HTTP: {before[1]:.1f} photos/s before, {after[1]:.1f} after')
    for i, (rps, lat, s, rss) in enumerate(rounds, 1):
        errors = sum(v for k, v in s.items() if k != 200)
        print(f'served, round {i}: {a.clients} clients, {sum(s.values())} requests: {rps:.1f} req/s, p50 {ms(lat, 50):.0f} ms, '
              f'p99 {ms(lat, 99):.0f} ms, {errors} errors {dict(s) if errors else ""}')
    print(f'server memory (RSS, all its processes): {rss0:.0f} MB after warm-up, '
          + ', '.join(f'{r[-1]:.0f} MB after round {i}' for i, r in enumerate(rounds, 1)) + ' (target: <= 400 MB)')
    served = statistics.mean(r[0] for r in rounds)
    print(f'ratio served / bare torch forward: {served/base:.2f} (target: >= 2.5; mean of the rounds / mean of before and after)')
    print(f'ratio served / Classifier.predict alone: {served/pred:.2f}')

if __name__ == '__main__': main()
