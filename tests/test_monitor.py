"""After launch: the prediction log under a real server (rows per answer, SIGKILL, an unwritable folder), shadow and
canary, drift on streams of known composition, the report, and a server that one address can't lock out."""
import hashlib, io, json, os, shutil, signal, socket, sqlite3, subprocess, sys, threading, time, concurrent.futures as cf
from contextlib import contextmanager
from pathlib import Path
import httpx, numpy as np, pytest, uvicorn
from PIL import Image
from skimage import data as skdata
from conftest import free_port, start_server, stop_server
from bearlab.drift import FeatureReference, drift_score, is_drifting, mixed_stream
from bearlab.images import thumbnail
from bearlab.inference import Classifier, default_bundle
from bearlab.monitor import LOG_FILE, PredictionLog, Rollout, RolloutError, model_version
from bearlab.report import LogReport, read_log, report
from bearlab.practice import practice_photo
from bearlab.serve import AddressCappedHTTP, create_app

def bear(i, size=160): return thumbnail(practice_photo(('grizzly', 'black', 'teddy')[i % 3], i, size), size)

# another domain, from what scikit-image ships: crops of its photos, turned and flipped
OTHER_NAMES = ['astronaut', 'coffee', 'chelsea', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'retina', 'colorwheel']
def other(i, size=160):
    a = getattr(skdata, OTHER_NAMES[i % len(OTHER_NAMES)])()
    h, w = a.shape[:2]
    rng = np.random.default_rng(i)
    y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
    crop = a[y:y + 2*h//3, x:x + 2*w//3]
    return thumbnail(Image.fromarray(crop[:, ::-1] if i % 2 else crop), size)

@pytest.fixture(scope='module')
def bundle(): return default_bundle()

@pytest.fixture(scope='module')
def clf(bundle): return Classifier.load(bundle)

@pytest.fixture(scope='module')
def other_labels(bundle, tmp_path_factory):
    "The built-in bundle, answering other labels."
    dst = tmp_path_factory.mktemp('labels')/'other-labels'
    shutil.copytree(bundle, dst)
    meta = json.loads((dst/'bundle.json').read_text())
    (dst/'bundle.json').write_text(json.dumps({**meta, 'vocab': ['brown', 'polar', 'panda']}))
    return dst

@contextmanager
def running(app, **kw):
    "`app` served by a real uvicorn on 127.0.0.1, in a thread."
    srv = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=free_port(), log_level='warning', **kw))
    th = threading.Thread(target=srv.run, daemon=True); th.start()
    deadline = time.monotonic() + 120
    while not srv.started:
        assert th.is_alive() and time.monotonic() < deadline, 'uvicorn did not start'
        time.sleep(0.05)
    try: yield srv.config.port
    finally: srv.should_exit = True; th.join(30)

def post_all(port, photos, clients=4):
    with cf.ThreadPoolExecutor(clients) as ex:
        return list(ex.map(lambda p: httpx.post(f'http://127.0.0.1:{port}/classify', content=p, timeout=60), photos))

@pytest.mark.slow
def test_one_row_per_answer_and_shadow(clf, bundle, tmp_path):
    "Every answer has exactly one row; a shadow (a copy of the model) answers too, agrees, and /health says so."
    shutil.copytree(bundle, tmp_path/'copy')
    r = Rollout(clf, tmp_path/'log', shadow=tmp_path/'copy')
    photos = [bear(i) for i in range(24)]
    with running(create_app(clf, rollout=r)) as port:
        rs = post_all(port, photos)
        assert [x.status_code for x in rs] == [200]*24
        deadline = time.monotonic() + 60
        while r.compared + r.skipped < 24 and time.monotonic() < deadline: time.sleep(0.1)
        h = httpx.get(f'http://127.0.0.1:{port}/health').json()
    assert r.log.flush()
    rows, skipped, models = read_log(tmp_path/'log')
    assert skipped == [] and len(rows) == 24
    assert sorted(x['photo'] for x in rows) == sorted(hashlib.sha256(p).hexdigest()[:16] for p in photos)
    assert {x['version'] for x in rows} == {model_version(clf)} and models[model_version(clf)]['labels']
    compared = [x for x in rows if x['shadow_label'] is not None]
    assert len(compared) == r.compared and r.compared + r.skipped == 24
    assert all(x['shadow_label'] == x['label'] for x in compared)
    assert h['agreement'] == 1.0 and h['log'] == 'ok' and h['drift_photos'] == 24

@pytest.mark.slow
def test_canary_answers_its_share_by_hash(clf, bundle, tmp_path):
    shutil.copytree(bundle, tmp_path/'canary')
    r = Rollout(clf, tmp_path/'log', canary=tmp_path/'canary', canary_share=0.3)
    photos = [bear(i, 96) for i in range(30)]
    with running(create_app(clf, rollout=r)) as port:
        post_all(port, photos + photos[:10]) # the same photos again: the same model again
    assert r.log.flush()
    rows, _, _ = read_log(tmp_path/'log')
    role = {}
    for x in rows: role.setdefault(x['photo'], set()).add(x['role'])
    assert all(len(v) == 1 for v in role.values()), 'a photo always gets the same model'
    share = sum(v == {'canary'} for v in role.values()) / len(role)
    assert 0.1 < share < 0.55, share

def test_labels_must_match(clf, other_labels):
    with pytest.raises(RolloutError, match=r"The shadow model answers \['brown', 'polar', 'panda'\], and the main model \['black', 'grizzly', 'teddy'\]"):
        Rollout(clf, shadow=other_labels)
    with pytest.raises(RolloutError, match='The canary model answers'):
        Rollout(clf, canary=other_labels)

def test_serve_refuses_a_bad_second_model(tmp_path):
    "bearlab serve with a shadow or canary that can't be loaded doesn't start, and names the file."
    (tmp_path/'broken').mkdir(); (tmp_path/'broken'/'bundle.json').write_text('{"format": "nope"}')
    for flag in ('shadow', 'canary'):
        code = f"from bearlab.serve import serve; serve({flag}={str(tmp_path/'broken')!r}, port={free_port()})"
        p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
        assert p.returncode != 0 and f"The {flag} model can't be loaded" in p.stderr and 'broken/bundle.json' in p.stderr

@pytest.mark.slow
def test_unwritable_log_keeps_answering(clf, tmp_path, caplog):
    (tmp_path/'a-file').write_text('not a folder') # can't be made a folder, even by root
    r = Rollout(clf, tmp_path/'a-file'/'log')
    with running(create_app(clf, rollout=r)) as port:
        rs = post_all(port, [bear(i, 96) for i in range(6)], clients=2)
        h = httpx.get(f'http://127.0.0.1:{port}/health').json()
    assert [x.status_code for x in rs] == [200]*6
    assert "can't be written" in h['log'] and r.log.lost == 6
    said = [m for m in caplog.messages if "can't be written" in m]
    assert len(said) == 1, said

@pytest.mark.slow
def test_full_disk_keeps_answering(clf, tmp_path):
    "A log that fills its disk (SQLite's page limit stands in for it): answers go on, /health says why."
    r = Rollout(clf, tmp_path/'log')
    r.log.add({'time': time.time()}); r.log.flush()
    r.log._db.execute('PRAGMA max_page_count = 2') # full: no room for another page
    with running(create_app(clf, rollout=r)) as port:
        rs = post_all(port, [bear(i, 96) for i in range(40)], clients=2)
        h = httpx.get(f'http://127.0.0.1:{port}/health').json()
    assert [x.status_code for x in rs] == [200]*40
    assert 'full' in h['log'], h['log']

@pytest.mark.slow
def test_sigkill_keeps_every_answered_row(bundle, tmp_path):
    "kill -9 in the middle of a load: every answer a client received has its row, and no row is damaged."
    port, log = free_port(), tmp_path/'log'
    code = f"from bearlab.serve import serve; serve({str(bundle)!r}, port={port}, log={str(log)!r})"
    proc = start_server([sys.executable, '-c', code], f'http://127.0.0.1:{port}/health', tmp_path/'server.log')
    answered, stop = [], threading.Event()
    def client(k):
        with httpx.Client(timeout=30) as c:
            for i in range(k, 10_000, 4):
                if stop.is_set(): return
                p = bear(i, 64)
                try: r = c.post(f'http://127.0.0.1:{port}/classify', content=p)
                except httpx.HTTPError: return
                if r.status_code == 200: answered.append(hashlib.sha256(p).hexdigest()[:16])
    ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in ts: t.start()
    deadline = time.monotonic() + 60
    while len(answered) < 40 and time.monotonic() < deadline: time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait(10)
    stop.set()
    for t in ts: t.join(30)
    assert len(answered) >= 40
    with sqlite3.connect(log/LOG_FILE) as db: assert db.execute('PRAGMA integrity_check').fetchone() == ('ok',)
    rows, skipped, _ = read_log(log)
    assert skipped == []
    assert set(answered) <= {x['photo'] for x in rows}, 'an answer without its row'
    # and it starts again on the same log
    proc = start_server([sys.executable, '-c', code], f'http://127.0.0.1:{port}/health', tmp_path/'server2.log')
    try: assert httpx.post(f'http://127.0.0.1:{port}/classify', content=bear(1)).status_code == 200
    finally: stop_server(proc)
    assert len(read_log(log)[0]) == len(rows) + 1

def test_drift_rises_with_the_share_of_another_domain(clf):
    "Training photos: practice bears; streams with 0, 10, 30, 60% of photos from scikit-image's gallery."
    ref = FeatureReference.fit(clf.features([bear(i) for i in range(90)]))
    usual, others = [bear(i) for i in range(100, 160)], [other(i) for i in range(24)]
    far = dict(zip(usual + others, ref.distances(clf.features(usual + others)) > 1))
    scores = {}
    for share in (0, 0.1, 0.3, 0.6):
        stream = mixed_stream(usual, others, share, 60, seed=1)
        scores[share] = drift_score([far[p] for p, _ in stream], ref.expected)
    assert scores[0] < scores[0.1] < scores[0.3] < scores[0.6], scores
    assert not is_drifting(scores[0], 60) and is_drifting(scores[0.3], 60), scores
    assert abs(scores[0.6] - 0.6) < 0.2, scores

@pytest.mark.slow
def test_report_flags_drift_in_the_first_window(clf, tmp_path, page):
    "A served stream that shifts to 30% other photos after two hours (a fast clock): the third window is flagged."
    clf = Classifier.load(default_bundle())
    clf.fit_reference([bear(i) for i in range(90)])
    start = int(time.time()) // 3600 * 3600 # this hour: older rows would be past the log's 30 days
    times = iter(range(start, start + 10**6, 120)) # 30 photos an hour
    r = Rollout(clf, tmp_path/'log', clock=lambda: float(next(times)))
    usual, others = [bear(i) for i in range(100, 160)], [other(i) for i in range(24)]
    stream = mixed_stream(usual, others, 0, 60, 2) + mixed_stream(usual, others, 0.3, 30, 3)
    with running(create_app(clf, rollout=r)) as port:
        for p, _ in stream: assert httpx.post(f'http://127.0.0.1:{port}/classify', content=p).status_code == 200
    r.log.flush()
    rep = LogReport(tmp_path/'log')
    assert [w['drifting'] for w in rep.windows] == [False, False, True], rep.windows
    dest = report(tmp_path/'log')
    requests = []
    page.on('request', lambda q: requests.append(q.url))
    page.goto(dest.as_uri())
    assert page.locator('text=Drift: 1 of 3 windows are flagged').count() == 1
    assert all(u.startswith(('file:', 'data:')) for u in requests), requests # opens offline

def test_damaged_log_report(tmp_path):
    log = PredictionLog(tmp_path/'log', retention_days=None)
    for i in range(3000):
        log.add({'time': 1.7e9 + i, 'label': 'black', 'prob': 0.8, 'in_domain': 1, 'far': 0, 'probs': '[["black", 0.8]]'})
    log.flush(); log.close()
    with sqlite3.connect(log.path) as db: db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    with open(log.path, 'r+b') as f: f.seek(4096*30); f.write(b'\xff'*4096)
    rows, skipped, _ = read_log(tmp_path/'log')
    assert skipped and 1000 < len(rows) < 3000
    text = report(tmp_path/'log').read_text()
    assert 'Skipped rows' in text and 'the database is damaged there' in text and '<svg' in text

@pytest.mark.slow
def test_client_going_away_is_one_line(clf, caplog):
    with running(create_app(clf, body_timeout=5)) as port:
        with socket.create_connection(('127.0.0.1', port)) as s:
            s.sendall(b'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n\xff\xd8')
        time.sleep(0.5)
        assert httpx.get(f'http://127.0.0.1:{port}/health').status_code == 200
    said = [r for r in caplog.records if r.name == 'bearlab.serve']
    assert len(said) == 1 and 'went away' in said[0].getMessage() and said[0].exc_info is None

@pytest.mark.slow
def test_one_address_cannot_lock_out_the_others(clf):
    "300 stalled uploads from 127.0.0.1 against 64 slots: 127.0.0.2's photos are answered; the stalled close on time."
    AddressCappedHTTP.set_cap(8)
    try:
        app = create_app(clf, body_timeout=2)
        with running(app, http=AddressCappedHTTP, limit_concurrency=64) as port:
            stalled = []
            for _ in range(300):
                s = socket.create_connection(('127.0.0.1', port), 5, source_address=('127.0.0.1', 0))
                s.sendall(b'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
                stalled.append(s)
            with httpx.Client(transport=httpx.HTTPTransport(local_address='127.0.0.2'), timeout=30) as c:
                codes = [c.post(f'http://127.0.0.1:{port}/classify', content=bear(i)).status_code for i in range(5)]
            assert codes == [200]*5
            t0, answers = time.monotonic(), []
            for s in stalled:
                s.settimeout(max(0.1, 10 - (time.monotonic() - t0)))
                try: answers.append(s.recv(100).split(b'\r\n')[0])
                except (socket.timeout, ConnectionError): answers.append(b'reset')
                s.close()
        assert answers.count(b'HTTP/1.1 408 Request Timeout') == 8, set(answers)
        assert set(answers) <= {b'HTTP/1.1 408 Request Timeout', b'HTTP/1.1 429 Too Many Requests', b'reset', b''}
    finally: AddressCappedHTTP.set_cap(32)
