"""Load test for the classify API: N concurrent clients on loopback, for a number of requests (or a bounded time).

Prints requests/s, p50/p99 latency, errors, and the server's memory after warm-up and after each round; then the same
model's bare torch forward pass (a prepared photo, batch of one, no decoding and no HTTP) in this process, and the ratio
between the two: what serving on ONNX Runtime, with decoding and batching, gives over the training stack's own forward.
Without --model it serves a bundle of the built-in model (written to a temporary folder).

    .venv/bin/python bench/load.py [--clients 8] [--requests 200] [--seconds S] [--rounds 2] [--model PATH] [--workers 1]

After launch (issue 22), each in one run, against a baseline run in the same process:
    --monitor      the same load with no log, with `--log`, and with `--log` and a `--shadow` (a copy of the model),
                   in alternating rounds: req/s and p50/p99 as ratios to no log, errors, and log rows against answers.
    --sigkill      a logged server killed with SIGKILL in the middle of the load: every answer a client received has
                   its row, SQLite's integrity check passes, no row is skipped, and a restarted server logs on.
    --stalled N    N connections from 127.0.0.1 that send an upload's headers and stop, then real photos from 127.0.0.2:
                   with the per-address cap off (uvicorn alone: the before) and on (bearlab's default, 32).
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

def start(port, model, workers, **kw):
    code = f"from bearlab.serve import serve; serve(model={model!r}, port={port}, workers={workers}, **{kw!r})"
    # its log goes to a file: a pipe nobody reads would stop the server once full (a flood of 503s fills it fast)
    import tempfile
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None: err.seek(0); sys.exit('server died:\n' + err.read().decode()[-3000:])
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=2); c.request('GET', '/health')
            if c.getresponse().status == 200: return proc
        except OSError: time.sleep(0.3)
    sys.exit('server did not start within 180 s')

def stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try: proc.wait(20)
    except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()

def unique(body, i):
    "`body` made a different photo (another hash) with the same pixels: JPEG readers ignore bytes after its end."
    return body + f'bearlab-bench-{i}'.encode()

_LOADS = iter(range(10**9)) # each load's photos differ from every other load's

def client(port, body, deadline, lat, statuses, left, got=None):
    "One client on a keep-alive connection, posting `body` until `deadline`, or until `left` (shared) runs out."
    conn = None
    while time.monotonic() < deadline:
        with left[1]:
            if left[0] == 0: break
            left[0] -= 1
            left[2] += 1
            n = f'{left[3]}-{left[2]}'
        t = time.perf_counter()
        sent = body if got is None else unique(body, n)
        try:
            conn = conn or http.client.HTTPConnection('127.0.0.1', port, timeout=60)
            conn.request('POST', '/classify', body=sent, headers={'Content-Type': 'image/jpeg'})
            r = conn.getresponse(); r.read(); status = r.status
            if got is not None and status == 200: got.append(sent)
            if r.getheader('Connection', '').lower() == 'close': conn.close(); conn = None
        except (OSError, http.client.HTTPException) as e:
            status = type(e).__name__
            if conn: conn.close()
            conn = None
        lat.append(time.perf_counter() - t); statuses[status] += 1

def load(port, body, clients, seconds, requests=-1, got=None):
    "Requests/s, latencies and statuses of `clients` concurrent clients for `seconds` or `requests` in all."
    lat, statuses, deadline = [], Counter(), time.monotonic() + seconds
    left = [requests, threading.Lock(), 0, next(_LOADS)]
    ts = [threading.Thread(target=client, args=(port, body, deadline, lat, statuses, left, got)) for _ in range(clients)]
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

def log_rows(folder):
    "(rows, integrity check, skipped ranges) of the prediction log in `folder`."
    import sqlite3
    from bearlab.monitor import LOG_FILE
    from bearlab.report import read_log
    with sqlite3.connect(Path(folder)/LOG_FILE) as db: ok = db.execute('PRAGMA integrity_check').fetchone()[0]
    rows, skipped, _ = read_log(folder)
    return rows, ok, skipped

def monitor(a, model, body):
    "The same load with no log, with a log, with a log and a shadow: alternating rounds, ratios to no log."
    import tempfile, shutil
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(model, tmp/'shadow') # the same model under another name: it agrees, and costs the same
    setups = {'no log': {}, 'log': {'log': str(tmp/'log')}, 'log + shadow': {'log': str(tmp/'log-shadow'),
                                                                            'shadow': str(tmp/'shadow')}}
    res = {k: [] for k in setups}
    for r in range(a.rounds):
        for name, kw in setups.items():
            port = free_port(); proc = start(port, model, a.workers, **kw)
            try:
                load(port, body, 2, 2)  # warm-up
                got = [] if kw else None
                res[name].append((*load(port, body, a.clients, 600, a.requests, got), got))
                health = http.client.HTTPConnection('127.0.0.1', port, timeout=10); health.request('GET', '/health')
                h = __import__('json').loads(health.getresponse().read())
            finally: stop(proc)
            if kw: print(f'round {r+1}, {name}: /health {h}')
    base = res['no log']
    p50 = lambda rs: statistics.median(ms(x[1], 50) for x in rs)
    p99 = lambda rs: statistics.median(ms(x[1], 99) for x in rs)
    rps = lambda rs: statistics.median(x[0] for x in rs)
    for name, rs in res.items():
        errors = sum(v for x in rs for k, v in x[2].items() if k != 200)
        print(f'{name:>13}: {rps(rs):.1f} req/s ({rps(rs)/rps(base):.2f}x), p50 {p50(rs):.0f} ms ({p50(rs)/p50(base):.2f}x, '
              f'target <= 1.1x), p99 {p99(rs):.0f} ms ({p99(rs)/p99(base):.2f}x), {errors} errors')
    import hashlib
    for name, kw in setups.items():
        if not kw: continue
        rows, ok, skipped = log_rows(kw['log'])
        answered = [hashlib.sha256(b).hexdigest()[:16] for x in res[name] for b in x[3]]
        per = Counter(r['photo'] for r in rows)
        shadowed = sum(r['shadow_label'] is not None for r in rows)
        print(f'{name:>13}: {len(answered)} answers, {len(rows)} log rows, answers with exactly one row: '
              f'{sum(per[h] == 1 for h in answered)}, integrity {ok}, skipped {skipped}; '
              f'shadow answered {shadowed} of them' if 'shadow' in kw else
              f'{name:>13}: {len(answered)} answers, {len(rows)} log rows, answers with exactly one row: '
              f'{sum(per[h] == 1 for h in answered)}, integrity {ok}, skipped {skipped}')

def sigkill(a, model, body):
    "Kill -9 a logged server in the middle of the load; check the log against what the clients received."
    import tempfile, hashlib
    log = Path(tempfile.mkdtemp())/'log'
    port = free_port(); proc = start(port, model, a.workers, log=str(log))
    got = []
    th = threading.Thread(target=load, args=(port, body, a.clients, 60, -1, got)); th.start()
    t0 = time.monotonic()
    while len(got) < a.requests // 2 and time.monotonic() - t0 < 60: time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    th.join()
    rows, ok, skipped = log_rows(log)
    have = {r['photo'] for r in rows}
    answered = [hashlib.sha256(b).hexdigest()[:16] for b in got]
    print(f'SIGKILL after {len(answered)} answers: {sum(h in have for h in answered)} of them have their row '
          f'({len(rows)} rows in all: rows committed whose answer was not yet received are allowed); '
          f'integrity check: {ok}; rows skipped as damaged: {skipped or "none"}')
    port = free_port(); proc = start(port, model, a.workers, log=str(log))
    try: rps, lat, s = load(port, body, 2, 60, 10)
    finally: stop(proc)
    print(f'restarted on the same log: {dict(s)}, log rows now {len(log_rows(log)[0])} (was {len(rows)})')

def stalled(a, model, body, n):
    "N stalled uploads from 127.0.0.1, then real photos from 127.0.0.2: without and with the per-address cap."
    for cap in (0, 32):
        port = free_port(); proc = start(port, model, a.workers, max_per_address=cap)
        socks, t0 = [], time.monotonic()
        try:
            for i in range(n):
                try:
                    s = socket.create_connection(('127.0.0.1', port), 10, source_address=('127.0.0.1', 0))
                    s.sendall(b'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
                    socks.append(s)
                except OSError: pass
            time.sleep(0.5)
            codes, lat = Counter(), []
            for i in range(20):
                t = time.perf_counter()
                try:
                    c = http.client.HTTPConnection('127.0.0.1', port, timeout=60, source_address=('127.0.0.2', 0))
                    c.request('POST', '/classify', body=body); r = c.getresponse(); r.read(); codes[r.status] += 1; c.close()
                except OSError as e: codes[type(e).__name__] += 1
                lat.append(time.perf_counter() - t)
            answers = Counter()
            for s in socks:
                s.settimeout(max(0.1, 45 - (time.monotonic() - t0)))
                try: answers[s.recv(100).split(b'\r\n')[0].decode() or 'closed'] += 1
                except (socket.timeout, TimeoutError): answers['still open'] += 1
                except ConnectionError as e: answers[type(e).__name__] += 1
                s.close()
            closed_by = time.monotonic() - t0
        finally: stop(proc)
        print(f'per-address cap {cap or "off (uvicorn alone)"}: {len(socks)} stalled uploads from 127.0.0.1; 20 real photos '
              f'from 127.0.0.2: {dict(codes)}, p50 {ms(lat, 50):.0f} ms; the stalled ones: {dict(answers)}, '
              f'all closed {closed_by:.0f} s after the first opened')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clients', type=int, default=8); ap.add_argument('--requests', type=int, default=200)
    ap.add_argument('--seconds', type=float, default=None, help='time each round instead of counting requests')
    ap.add_argument('--rounds', type=int, default=2); ap.add_argument('--model', default=None); ap.add_argument('--workers', type=int, default=1)
    ap.add_argument('--monitor', action='store_true'); ap.add_argument('--sigkill', action='store_true')
    ap.add_argument('--stalled', type=int, default=0, metavar='N')
    a = ap.parse_args()
    import warnings; warnings.simplefilter('ignore')
    model, body = a.model or default_bundle(), photo()
    if a.monitor or a.sigkill or a.stalled:
        if a.monitor: monitor(a, model, body)
        if a.sigkill: sigkill(a, model, body)
        if a.stalled: stalled(a, model, body, a.stalled)
        return
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
