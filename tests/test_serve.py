"The classify API against a real uvicorn server on 127.0.0.1: SSRF refusals, a local photo server, bad uploads, load shedding."
import io, json, socket, subprocess, sys, textwrap, threading, time, concurrent.futures as cf
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import httpx, pytest, uvicorn
from PIL import Image
from skimage import data as skdata
from conftest import free_port, start_server, stop_server
from bearlab.inference import Classifier
from bearlab.serve import Fetcher, create_app, resolve_host

pytestmark = pytest.mark.slow

def jpeg(img, **kw):
    b = io.BytesIO(); img.save(b, 'JPEG', **kw); return b.getvalue()

PHOTO = jpeg(Image.fromarray(skdata.chelsea()))
DNS = {'bears.example': ['127.0.0.1'], 'internal.example': ['10.0.0.5'], 'sneaky.example': ['93.184.215.14', '127.0.0.1']}
def resolve(host, port):
    "A hostile DNS server: made-up names resolve to loopback and private addresses."
    return DNS.get(host) or resolve_host(host, port)

class Photos(BaseHTTPRequestHandler):
    "A stand-in for the internet: a photo, redirects, an error page, a huge file and a slow one; it records every request."
    seen = []
    def do_GET(self):
        Photos.seen.append((self.path, self.headers.get('Host')))
        p = self.path
        if p == '/bear.jpg': self.answer(200, PHOTO, 'image/jpeg')
        elif p.startswith('/to/'): self.answer(302, b'', 'text/plain', Location=p[4:])
        elif p == '/page.html': self.answer(200, b'<!doctype html><html><body>A bear!</body></html>', 'text/html')
        elif p == '/huge.jpg': self.answer(200, PHOTO + bytes(2_000_000), 'image/jpeg')
        elif p == '/huge-unsaid.jpg':  # no Content-Length: the size is only known by reading
            self.send_response(200); self.end_headers(); self.wfile.write(PHOTO + bytes(2_000_000))
        elif p == '/slow.jpg':
            self.send_response(200); self.send_header('Content-Length', str(len(PHOTO))); self.end_headers()
            for i in range(0, len(PHOTO), 4096): self.wfile.write(PHOTO[i:i+4096]); self.wfile.flush(); time.sleep(0.5)
        else: self.answer(404, b'Not found', 'text/plain')
    def answer(self, code, body, ctype, **hdrs):
        self.send_response(code)
        for k, v in {'Content-Type': ctype, 'Content-Length': str(len(body)), **hdrs}.items(): self.send_header(k, v)
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass

class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address): pass  # clients that hang up mid-answer are expected here

@pytest.fixture(scope='module')
def photos():
    srv = QuietServer(('127.0.0.1', 0), Photos)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_port
    srv.shutdown(); srv.server_close()

@contextmanager
def running(app):
    "`app` served by a real uvicorn on a free port of 127.0.0.1, in a thread."
    srv = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=free_port(), log_level='warning'))
    th = threading.Thread(target=srv.run, daemon=True); th.start()
    deadline = time.monotonic() + 120
    while not srv.started:
        assert th.is_alive() and time.monotonic() < deadline, 'uvicorn did not start'
        time.sleep(0.05)
    try: yield httpx.Client(base_url=f'http://127.0.0.1:{srv.config.port}', timeout=60)
    finally: srv.should_exit = True; th.join(30)

@pytest.fixture(scope='module')
def classifier(): return Classifier.default()

@pytest.fixture(scope='module')
def public(classifier):
    "The API as deployed (every protection on), but with the hostile resolver."
    with running(create_app(classifier, fetcher=Fetcher(resolve=resolve))) as c: yield c

@pytest.fixture(scope='module')
def lab(classifier):
    "The API with the test switch: the photo server's 127.0.0.1 allowed, and small limits."
    f = Fetcher(allow_networks=['127.0.0.1/32'], resolve=resolve, total_timeout=2, max_bytes=1_000_000)
    app = create_app(classifier, fetcher=f, max_upload=1_000_000, max_pixels=4_000_000, body_timeout=1, max_waiting=2)
    with running(app) as c: yield c

@pytest.mark.parametrize('url', ['http://127.0.0.1:{p}/bear.jpg', 'http://localhost:{p}/bear.jpg', 'http://[::1]:{p}/bear.jpg',
    'http://10.0.0.1/bear.jpg', 'http://169.254.169.254/latest/meta-data/', 'http://bears.example:{p}/bear.jpg',
    'http://internal.example/', 'http://sneaky.example:{p}/bear.jpg', 'http://[::ffff:127.0.0.1]:{p}/bear.jpg',
    'http://2130706433:{p}/bear.jpg', 'http://0.0.0.0:{p}/bear.jpg', 'http://bears.example@127.0.0.1:{p}/bear.jpg',
    'file:///etc/passwd', 'ftp://127.0.0.1/bear.jpg', 'gopher://127.0.0.1:6379/_INFO', 'bear.jpg'])
def test_ssrf_refused(public, photos, url):
    n = len(Photos.seen)
    r = public.get('/classify-url', params={'url': url.format(p=photos)})
    assert r.status_code in (400, 403), r.text
    assert ("server's own network" in r.json()['error'] or 'Only http' in r.json()['error'] or 'user name' in r.json()['error'])
    assert len(Photos.seen) == n, 'the photo server was contacted'

@pytest.mark.parametrize('to', ['http://127.0.0.2:{p}/bear.jpg', 'http://[::1]:{p}/bear.jpg', 'http://internal.example/bear.jpg',
                                'http://169.254.169.254/latest/meta-data/', 'http://bears.example@10.0.0.1/', 'file:///etc/passwd'])
def test_redirect_to_private_refused(lab, photos, to):
    r = lab.get('/classify-url', params={'url': f'http://bears.example:{photos}/to/{to.format(p=photos)}'})
    assert r.status_code in (400, 403), r.text
    assert Photos.seen[-1][0].startswith('/to/'), 'only the allowed host was contacted'

def test_allowed_host_classified(lab, photos, classifier):
    r = lab.get('/classify-url', params={'url': f'http://bears.example:{photos}/to//bear.jpg'})
    assert r.status_code == 200, r.text
    assert Photos.seen[-1] == ('/bear.jpg', f'bears.example:{photos}')  # connected to the checked address, named by its host
    got, want = r.json(), classifier.predict(PHOTO)
    assert got['label'] == want.label and got['in_domain'] == want.in_domain
    probs = [p for _, p in got['predictions']]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    assert all(abs(p - want.probs[k]) < 1e-5 for k, p in got['predictions'])

@pytest.mark.parametrize('path,status,words', [('/missing.jpg', 422, 'answered 404'), ('/page.html', 415, 'web page'),
    ('/huge.jpg', 413, 'the limit is 1.0 MB'), ('/huge-unsaid.jpg', 413, 'over 1.0 MB'), ('/slow.jpg', 504, 'to download'), ('/' + 'to/'*6 + 'bear.jpg', 422, 'redirected more than')])
def test_fetch_failures(lab, photos, path, status, words):
    r = lab.get('/classify-url', params={'url': f'http://bears.example:{photos}{path}'})
    assert r.status_code == status and words in r.json()['error'], r.text

def test_unreachable(lab):
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); closed = s.getsockname()[1]
    r = lab.get('/classify-url', params={'url': f'http://bears.example:{closed}/bear.jpg'})
    assert r.status_code == 502 and 'Could not download' in r.json()['error']

def bomb():
    b = io.BytesIO(); Image.new('L', (3000, 3000)).save(b, 'PNG'); return b.getvalue()  # 9 megapixels in 9 kB

BAD = [('empty', dict(content=b''), 400, 'empty'), ('text', dict(content=b'just words, saved as bear.jpg'), 415, 'not a photo'),
       ('html', dict(content=b'<html><body>404</body></html>'), 415, 'web page'),
       ('truncated', dict(content=PHOTO[:len(PHOTO)//2]), 422, 'cut off'), ('bomb', dict(content=bomb()), 413, 'too large'),
       ('too big', dict(content=b'\xff' * 1_200_000), 413, 'the limit is 1.0 MB'),
       ('wrong field', dict(files={'photo': ('b.jpg', PHOTO, 'image/jpeg')}), 400, "'file' field"),
       ('text field', dict(data={'file': 'bear.jpg'}, files={'other': ('a.txt', b'a', 'text/plain')}), 400, "'file' field"),
       ('url-encoded form', dict(data={'file': 'bear.jpg'}), 400, 'multipart/form-data'),
       ('empty file', dict(files={'file': ('b.jpg', b'', 'image/jpeg')}), 400, 'empty')]

def test_bad_uploads_keep_serving(lab):
    for name, kw, status, words in BAD:
        r = lab.post('/classify', **kw)
        assert (r.status_code, words in r.json()['error']) == (status, True), f'{name}: {r.status_code} {r.text}'
    curl = {'Content-Type': 'application/x-www-form-urlencoded'}  # what `curl --data-binary @bear.jpg` sends
    for kw in [dict(content=PHOTO), dict(content=PHOTO, headers=curl), dict(files={'file': ('bear.jpg', PHOTO, 'image/jpeg')})]:
        r = lab.post('/classify', **kw)
        assert r.status_code == 200 and r.json()['label'], r.text
    assert lab.get('/health').json()['status'] == 'ok'

def test_slow_upload_times_out(lab):
    port = int(str(lab.base_url).rsplit(':', 1)[1].strip('/'))
    with socket.create_connection(('127.0.0.1', port), timeout=30) as s:
        s.sendall(b'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n\xff\xd8')
        assert s.recv(200).startswith(b'HTTP/1.1 408')
    assert lab.get('/health').status_code == 200

def test_endpoints(public, classifier):
    assert public.get('/labels').json() == {'labels': [str(o) for o in classifier.vocab]}
    assert public.get('/health').json()['status'] == 'ok'
    assert public.get('/').status_code == 200
    r = public.get('/nope'); assert r.status_code == 404 and '/classify' in r.json()['error']
    assert public.get('/classify').status_code == 405
    r = public.get('/classify-url'); assert r.status_code == 400 and '?url=' in r.json()['error']

def test_busy_server_sheds_load(lab):
    "With 2 allowed to wait, 12 at once: some answered, the rest refused at once with 503; nothing else."
    with cf.ThreadPoolExecutor(12) as ex:
        rs = list(ex.map(lambda _: httpx.post(f'{lab.base_url}/classify', content=PHOTO, timeout=60), range(12)))
    codes = {r.status_code for r in rs}
    assert codes <= {200, 503} and 200 in codes, codes
    assert all(r.headers.get('retry-after') for r in rs if r.status_code == 503)
    assert lab.get('/health').json()['waiting'] == 0

@pytest.fixture(scope='module')
def phone(tmp_path_factory, request):
    "The Voila test's photos: a normal one, a 15 MB JPEG (a grizzly), an iPhone HEIC, a 60 MB JPEG, a grizzly."
    from test_app import phone_photos
    return phone_photos(tmp_path_factory.mktemp('phone'), request.config.cache)

def test_phone_photos_as_the_app(public, phone):
    "The API answers the app's photos as the app does, and refuses the same sizes with the same limit."
    from bearlab.inference import MAX_UPLOAD_BYTES
    assert 'HEIC' in public.get('/').text and f'up to {MAX_UPLOAD_BYTES/1e6:.1f} MB' in public.get('/').text
    got = {}
    for name in ['chelsea.jpg', 'grizzly-15mb.jpg', 'IMG_0001.HEIC', 'noise-60mb.jpg', 'grizzly.png']:
        r = public.post('/classify', content=phone[name].read_bytes())
        got[name] = r.status_code, r.json()
    assert got['chelsea.jpg'][1]['looks_like'] == got['IMG_0001.HEIC'][1]['looks_like'] == 'Egyptian cat', got
    assert got['grizzly-15mb.jpg'][1]['label'] == got['grizzly.png'][1]['label'] == 'grizzly', got
    assert got['grizzly-15mb.jpg'][1]['in_domain'] and got['grizzly.png'][1]['in_domain']
    status, err = got['noise-60mb.jpg']
    assert status == 413 and 'the limit is 50.0 MB' in err['error'], got['noise-60mb.jpg']
    r = public.post('/classify', files={'file': ('IMG_0001.HEIC', phone['IMG_0001.HEIC'].read_bytes(), 'image/heic')})
    assert r.status_code == 200 and r.json()['looks_like'] == 'Egyptian cat', r.text

@pytest.fixture(scope='module')
def tls_photos(tmp_path_factory, photos):
    "The photo server again, over TLS, with a self-signed certificate for bears.example."
    import shutil, ssl
    if not shutil.which('openssl'): pytest.skip('the openssl command is needed to make a test certificate')
    d = tmp_path_factory.mktemp('tls')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=bears.example',
                    '-addext', 'subjectAltName=DNS:bears.example', '-keyout', d/'key.pem', '-out', d/'cert.pem'],
                   check=True, capture_output=True)
    srv = QuietServer(('127.0.0.1', 0), Photos)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(d/'cert.pem', d/'key.pem')
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_port, ssl.create_default_context(cafile=str(d/'cert.pem'))
    srv.shutdown(); srv.server_close()

def test_https_checks_the_host_name(tls_photos):
    "The connection goes to the checked address, but the certificate is checked against the URL's host name."
    port, ctx = tls_photos
    fetch = Fetcher(allow_networks=['127.0.0.1/32'], resolve=resolve, ssl_context=ctx)
    assert fetch(f'https://bears.example:{port}/bear.jpg') == PHOTO
    with pytest.raises(Exception, match='secure connection'): fetch(f'https://127.0.0.1:{port}/bear.jpg')

TRAIN = """
    # Trains a tiny learner the way the course does, in a script: `is_red` lives in __main__, so export.pkl needs it.
    import json, sys, warnings
    from pathlib import Path
    from fastai.vision.all import *
    from bearlab.models import efficientnet_lite0
    from bearlab.inference import Classifier, export_bundle
    d = Path(sys.argv[1])
    for name, col in (('red', (200,30,30)), ('blue', (30,30,200))):
        for i in range(6): Image.new('RGB', (64+i*10, 48), tuple(c+i*5 for c in col)).save(d/f'{name}_{i}.jpg')
    def is_red(name): return 'red' if name.startswith('red') else 'blue'
    dls = ImageDataLoaders.from_name_func(d, get_image_files(d), is_red, valid_pct=0.34, seed=0, item_tfms=Resize(32), bs=4, num_workers=0)
    learn = vision_learner(dls, efficientnet_lite0, n_out=2)
    learn.fit(1)
    learn.export(d/'export.pkl'); export_bundle(learn, d/'bundle')
    imgs = sorted(str(f) for f in get_image_files(d))[:4]
    want = {f: [float(p) for p in learn.predict(PILImage.create(f))[2]] for f in imgs}
    (d/'want.json').write_text(json.dumps({'vocab': list(learn.dls.vocab), 'probs': want}))
"""

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A bundle and an export.pkl of a tiny learner trained in a script, and its own predictions for four photos."
    d = tmp_path_factory.mktemp('trained')
    (d/'train.py').write_text(textwrap.dedent(TRAIN))
    r = subprocess.run([sys.executable, d/'train.py', d], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return d, json.loads((d/'want.json').read_text())

def fresh(code:str)->subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=300)

def test_fresh_process_loads(trained):
    "Bundle and export.pkl (whose `is_red` was defined in the training script's __main__) load and predict in a new process."
    d, want = trained
    r = fresh(f"""
        import json, warnings
        from bearlab.inference import Classifier
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            models = {{'bundle': Classifier.load({str(d/'bundle')!r}), 'pkl': Classifier.load({str(d/'export.pkl')!r})}}
        print(json.dumps({{k: {{f: [m.predict(f).probs[v] for v in m.vocab] for f in {list(want['probs'])!r}}} for k, m in models.items()}}))
        print('pickle warned:', any('is a pickle' in str(x.message) for x in w))
        """)
    assert r.returncode == 0, r.stderr[-3000:]
    *_, probs, warned = r.stdout.strip().splitlines()
    for kind, got in json.loads(probs).items():
        for f, p in want['probs'].items(): assert max(abs(a - b) for a, b in zip(got[f], p)) < 0.02, (kind, f, got[f], p)
    assert warned == 'pickle warned: True'

def test_serve_bundle_with_workers(trained, tmp_path):
    "`serve(model=bundle, workers=2)` in a fresh process answers what the learner said."
    d, want = trained
    port = free_port()
    code = f"from bearlab.serve import serve; serve(model={str(d/'bundle')!r}, port={port}, workers=2)"
    proc = start_server([sys.executable, '-c', code], f'http://127.0.0.1:{port}/health', tmp_path/'serve.log')
    try:
        with httpx.Client(base_url=f'http://127.0.0.1:{port}', timeout=60) as c:
            assert c.get('/labels').json() == {'labels': want['vocab']}
            for f, probs in want['probs'].items():
                ans = c.post('/classify', content=open(f, 'rb').read()).json()
                got = dict(ans['predictions'])
                assert max(abs(got[v] - p) for v, p in zip(want['vocab'], probs)) < 0.02, (ans, probs)
                assert ans['label'] == want['vocab'][max(range(len(probs)), key=probs.__getitem__)]
    finally: stop_server(proc)
