"ONNX Runtime: exports cached by content, the torch fallback, bundles with model.onnx that load and serve without torch, broken bundles."
import io, json, os, shutil, subprocess, sys, textwrap, warnings
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from bearlab import runtime as rt
from bearlab.inference import Classifier, ModelLoadError, Preprocess, export_bundle
from bearlab.models import efficientnet_lite0
from conftest import ROOT

def jpeg(seed=0, w=120, h=90)->bytes:
    a = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    b = io.BytesIO(); Image.fromarray(a).save(b, 'JPEG'); return b.getvalue()

@pytest.fixture
def cache(tmp_path, monkeypatch):
    "A fresh, empty bearlab cache for one test."
    d = tmp_path/'cache'
    monkeypatch.setenv('BEARLAB_CACHE', str(d))
    return d

class Small(torch.nn.Module):
    "A tiny convnet: exports in a second."
    def __init__(self, n=3, seed=0):
        super().__init__(); torch.manual_seed(seed)
        self.conv, self.bn, self.fc = torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(8, n)
    def forward(self, x): return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))

class RunningMax(Small):
    "A layer ONNX has no operator for (`cummax`)."
    def forward(self, x): return super().forward(torch.cummax(x, 1)[0])

def small_clf(model=None, **kw):
    return Classifier(model or Small().eval(), ['a', 'b', 'c'], Preprocess(32), source='small', **kw)

def test_export_goes_to_the_cache_once(cache, tmp_path):
    clf = small_clf()
    clf.predict(jpeg())
    assert isinstance(clf.runner, rt.OnnxModel) and clf.runner.path.parent == cache/'onnx'
    assert [p.suffix for p in (cache/'onnx').iterdir()] == ['.onnx']
    mtime = clf.runner.path.stat().st_mtime_ns
    again = small_clf() # same weights: same file, not exported again
    again.predict(jpeg())
    assert again.runner.path == clf.runner.path and again.runner.path.stat().st_mtime_ns == mtime
    other = small_clf(Small(seed=1).eval())
    other.predict(jpeg())
    assert other.runner.path != clf.runner.path

def test_export_pkl_is_not_written_next_to(cache, tmp_path):
    "Loading a user's export.pkl writes nothing into its folder."
    pytest.importorskip('fastai')
    from fastai.vision.all import ImageDataLoaders, vision_learner, Resize
    d = tmp_path/'data'
    for c, col in (('a', (200, 40, 40)), ('b', (40, 40, 200))):
        (d/c).mkdir(parents=True)
        for i in range(4): Image.new('RGB', (40, 30), col).save(d/c/f'{i}.jpg')
    dls = ImageDataLoaders.from_folder(d, valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=2, num_workers=0)
    user = tmp_path/'mine'; user.mkdir()
    vision_learner(dls, efficientnet_lite0, pretrained=False).export(user/'export.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        clf = Classifier.load(user/'export.pkl')
    clf.predict(jpeg())
    assert sorted(p.name for p in user.iterdir()) == ['export.pkl']
    assert isinstance(clf.runner, rt.OnnxModel) and cache in clf.runner.path.parents

def test_onnx_equals_torch(cache):
    clf = Classifier.default()
    torch_clf = Classifier(clf.model, clf.vocab, clf.pre, clf.outputs, clf.domain, clf.output_names, runtime='torch',
                           domain_top=clf.domain_top)
    srcs = [jpeg(i, 200 + 30*i, 150) for i in range(4)]
    for p, q in zip(clf.predict_batch(srcs), torch_clf.predict_batch(srcs)):
        assert p.label == q.label and p.in_domain == q.in_domain and p.looks_like == q.looks_like
        assert max(abs(p.probs[k] - q.probs[k]) for k in p.probs) < 1e-4
    assert isinstance(clf.runner, rt.OnnxModel) and isinstance(torch_clf.runner, rt.TorchModel)

def test_unexportable_model_falls_back_to_torch(cache):
    clf = small_clf(RunningMax().eval())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        p = clf.predict(jpeg())
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1 and '\n' not in msgs[0], msgs
    assert msgs[0].startswith('small runs on torch, not ONNX Runtime') and 'cummax' in msgs[0], msgs[0]
    assert isinstance(clf.runner, rt.TorchModel) and abs(sum(p.probs.values()) - 1) < 1e-6
    with warnings.catch_warnings(record=True) as w: # remembered: not exported again, still one line
        warnings.simplefilter('always')
        small_clf(RunningMax().eval()).predict(jpeg())
    assert len(w) == 1

def test_export_that_answers_differently_is_not_used(cache):
    class Flat(Small):
        def forward(self, x): return super().forward(x) if x.std() > 0.1 else torch.zeros(x.shape[0], 3)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        clf = small_clf(Flat().eval()); clf.predict(jpeg())
    assert isinstance(clf.runner, rt.TorchModel) and 'differ from torch' in str(w[0].message)

def test_damaged_cache_file_is_exported_again(cache):
    clf = small_clf(); clf.predict(jpeg())
    f = clf.runner.path
    f.write_bytes(f.read_bytes()[:100])
    again = small_clf(); again.predict(jpeg())
    assert isinstance(again.runner, rt.OnnxModel) and again.runner.path == f and f.stat().st_size > 100

def test_unwritable_cache_says_so(tmp_path, monkeypatch):
    (tmp_path/'a-file').write_text('not a folder')
    monkeypatch.setenv('BEARLAB_CACHE', str(tmp_path/'a-file'))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        clf = small_clf(); p = clf.predict(jpeg())
    assert isinstance(clf.runner, rt.TorchModel) and p.label in clf.vocab
    assert "can't be written" in str(w[0].message) and 'BEARLAB_CACHE' in str(w[0].message)

# --- bundles ---
@pytest.fixture(scope='module')
def bundle(tmp_path_factory):
    "The built-in model as a bundle: model.onnx, model.safetensors, bundle.json."
    return Classifier.default().save(tmp_path_factory.mktemp('b')/'bears')

def test_bundle_carries_model_onnx(bundle):
    assert sorted(p.name for p in bundle.iterdir()) == ['bundle.json', 'model.onnx', 'model.safetensors']
    meta = json.loads((bundle/'bundle.json').read_text())
    assert meta['onnx'] == 'model.onnx' and meta['n_logits'] == 1000
    clf = Classifier.load(bundle)
    assert clf.model is None and isinstance(clf.runner, rt.OnnxModel)
    assert clf.predict(jpeg()) == Classifier.default().predict(jpeg())
    assert meta['domain_top'] == clf.domain_top == 5  # a bear among the five likeliest classes is in domain

def test_bundle_keeps_domain_top_and_reads_old_bundles(bundle, tmp_path):
    d = Classifier.default()  # shared by every test: not changed here
    strict = Classifier(d.model, d.vocab, d.pre, d.outputs, d.domain, d.output_names, arch=d.arch, domain_top=1)
    assert Classifier.load(strict.save(tmp_path/'strict')).domain_top == 1
    old = tmp_path/'old'; shutil.copytree(bundle, old)
    meta = json.loads((old/'bundle.json').read_text()); del meta['domain_top']
    (old/'bundle.json').write_text(json.dumps(meta))
    assert Classifier.load(old).domain_top == 5  # bundles from before it was saved
    logits = np.zeros(1000, np.float32)
    logits[[106, 295]] = 5, 4  # a wombat first, an American black bear second
    assert Classifier.load(old)._prediction(logits).in_domain and not Classifier.load(tmp_path/'strict')._prediction(logits).in_domain
    meta['domain_top'] = 0
    (old/'bundle.json').write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=r'bundle\.json is not valid: domain_top .* a whole number from 1, not 0'):
        Classifier.load(old)

NO_TORCH = "import sys\nfor m in ('torch', 'torchvision', 'timm', 'fastai', 'safetensors'): sys.modules[m] = None\n"

def run_py(code:str, **env)->subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', NO_TORCH + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, **env})

def test_bundle_loads_classifies_and_serves_without_torch(bundle, tmp_path):
    f = tmp_path/'photo.jpg'; f.write_bytes(jpeg(3, 300, 200))
    out = run_py(f"""
        import json
        from bearlab.inference import Classifier
        from bearlab.serve import create_app
        from starlette.testclient import TestClient
        clf = Classifier.load({str(bundle)!r})
        pred = clf.predict({str(f)!r}).to_dict()
        with TestClient(create_app(clf)) as c:
            r = c.post('/classify', content=open({str(f)!r}, 'rb').read(), headers={{'Content-Type': 'image/jpeg'}})
            bad = c.post('/classify', content=b'<html>hi</html>')
        assert not any(m in sys.modules and sys.modules[m] is not None for m in ('torch', 'torchvision', 'timm', 'fastai'))
        print(json.dumps([pred, r.status_code, r.json(), bad.status_code, bad.json()]))
        """)
    assert out.returncode == 0, out.stderr[-3000:]
    pred, status, served, bad_status, bad = json.loads(out.stdout.strip().splitlines()[-1])
    want = Classifier.load(bundle).predict(f).to_dict()
    assert pred == want and status == 200 and served == want
    assert bad_status == 415 and 'not a photo' in bad['error']

def test_app_widget_without_torch(bundle, tmp_path):
    f = tmp_path/'photo.jpg'; f.write_bytes(jpeg(4))
    out = run_py(f"""
        import os
        os.environ['BEARLAB_MODEL'] = {str(bundle)!r}
        from bearlab.app import app_from_env
        app = app_from_env()
        assert app.classify(open({str(f)!r}, 'rb').read(), 'bear.jpg') is not None, app.error.value
        assert app.classify(b'<html>hi</html>', 'page.html') is None and 'not a photo' in app.error.value
        assert sys.modules.get('torch') is None
        print(type(app).__name__)
        """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == 'BearApp'

def test_old_bundle_without_onnx_needs_torch(bundle, tmp_path):
    old = tmp_path/'old'; shutil.copytree(bundle, old); (old/'model.onnx').unlink()
    clf = Classifier.load(old)
    assert clf.model is not None and clf.predict(jpeg()).label in clf.vocab
    out = run_py(f"from bearlab.inference import Classifier\nClassifier.load({str(old)!r})")
    assert out.returncode != 0 and 'has no model.onnx, so it needs torch' in out.stderr

# --- broken bundles: a clear message naming the file, and the server does not start ---
def broken(bundle, tmp_path, how):
    b = tmp_path/how; shutil.copytree(bundle, b)
    meta, data = json.loads((b/'bundle.json').read_text()), (b/'model.onnx').read_bytes()
    if how == 'truncated': (b/'model.onnx').write_bytes(data[:len(data)//3])
    elif how == 'empty': (b/'model.onnx').write_bytes(b'')
    elif how == 'mismatch': (b/'bundle.json').write_text(json.dumps({**meta, 'n_logits': None, 'outputs': None}))
    elif how == 'names': (b/'bundle.json').write_text(json.dumps({**meta, 'output_names': meta['output_names'][:10]}))
    elif how == 'size': (b/'bundle.json').write_text(json.dumps({**meta, 'preprocess': {**meta['preprocess'], 'size': [192, 192]}}))
    elif how == 'domain': (b/'bundle.json').write_text(json.dumps({**meta, 'domain': [294, 1000]}))
    elif how == 'no-vocab': (b/'bundle.json').write_text(json.dumps({k: v for k, v in meta.items() if k != 'vocab'}))
    elif how == 'method': (b/'bundle.json').write_text(json.dumps({**meta, 'preprocess': {**meta['preprocess'], 'method': 'zoom'}}))
    elif how == 'opset':
        import onnx
        m = onnx.load_from_string(data); m.opset_import[0].version = 99; onnx.save(m, b/'model.onnx')
    elif how == 'ir':
        import onnx
        m = onnx.load_from_string(data); m.ir_version = 99; onnx.save(m, b/'model.onnx')
    return b

BROKEN = {'truncated': 'model.onnx is damaged', 'empty': 'model.onnx is damaged',
          'mismatch': "bundle.json doesn't match", 'names': 'it names 10 outputs, model.onnx gives 1000',
          'size': 'its photos are 192×192, model.onnx takes 224×224',
          'opset': 'uses ONNX opset 99', 'ir': 'its ONNX IR version is 99',
          'domain': 'it counts as in domain output 1000, model.onnx gives 1000',
          'no-vocab': "bundle.json is not valid: it has no 'vocab' entry",
          'method': "bundle.json is not valid: Unknown resize method 'zoom'"}

@pytest.mark.parametrize('how', list(BROKEN))
def test_broken_bundle_is_refused(bundle, tmp_path, how):
    b = broken(bundle, tmp_path, how)
    with pytest.raises(ModelLoadError) as e: Classifier.load(b)
    msg = str(e.value)
    assert BROKEN[how] in msg and str(b) in msg, msg
    assert 'export_bundle' in msg or 'pip install -U onnxruntime' in msg, msg

@pytest.mark.slow
@pytest.mark.parametrize('how', ['truncated', 'mismatch', 'opset'])
def test_server_does_not_start_on_broken_bundle(bundle, tmp_path, how):
    b = broken(bundle, tmp_path, how)
    out = subprocess.run([sys.executable, '-c', 'from bearlab.cli import main; main()', 'serve', '--model', str(b), '--port', '1'],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode != 0 and BROKEN[how] in out.stderr and 'Traceback' not in out.stderr, out.stderr[-2000:]

def test_existing_refusals_keep_their_messages(tmp_path):
    (tmp_path/'b').mkdir(); (tmp_path/'b'/'bundle.json').write_text('{"format": "other"}')
    with pytest.raises(ModelLoadError, match='not a bearlab bundle'): Classifier.load(tmp_path/'b')
    (tmp_path/'b'/'bundle.json').write_text('not json')
    with pytest.raises(ModelLoadError, match='not a bearlab bundle'): Classifier.load(tmp_path/'b')
    with pytest.raises(ModelLoadError, match='There is no model at'): Classifier.load(tmp_path/'missing.pkl')

# --- a serving install without torch, from the package index, as a user would build it ---
def _settings(key:str)->list:
    from configparser import ConfigParser
    import shlex
    c = ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini', encoding='utf-8')
    return shlex.split(c['DEFAULT'][key])

def _du(path:Path)->int: return sum(f.stat().st_size for f in path.rglob('*') if f.is_file() and not f.is_symlink())

@pytest.mark.slow
def test_serving_install(bundle, tmp_path):
    "A fresh virtualenv with only `serve_requirements` and bearlab (--no-deps) serves a bundle; its size is printed."
    from conftest import free_port, start_server, stop_server
    import urllib.request
    env = tmp_path/'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(env)], check=True, timeout=300)
    pip = [str(env/'bin'/'python'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    src = tmp_path/'bearlab' # a clean copy: building in the checkout would leave build/ there, and reuse what it held
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.venv', '.git', '.cache', 'build', '*.egg-info', '_docs',
                                                                '__pycache__'))
    for args in (_settings('serve_requirements'), ['--no-deps', str(src)]):
        r = subprocess.run(pip + args, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
    size = _du(env)
    site = next((env/'lib').glob('python*/site-packages'))
    assert not any((site/m).exists() for m in ('torch', 'torchvision', 'timm', 'fastai')), 'the serving install pulled in torch'
    port = free_port()
    proc = start_server([str(env/'bin'/'bearlab'), 'serve', '--model', str(bundle), '--port', str(port)],
                        f'http://127.0.0.1:{port}/health', tmp_path/'serve.log', timeout=120)
    try:
        photo = jpeg(5, 320, 240)
        req = urllib.request.Request(f'http://127.0.0.1:{port}/classify', data=photo, headers={'Content-Type': 'image/jpeg'})
        got = json.loads(urllib.request.urlopen(req, timeout=60).read())
        import psutil
        rss = sum(p.memory_info().rss for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)])
    finally: stop_server(proc)
    assert got == Classifier.load(bundle).predict(photo).to_dict()
    print(f"\nserving install: {size/1e6:.0f} MB in all ({_du(site)/1e6:.0f} MB of packages); server RSS {rss/2**20:.0f} MB")
    assert size < 400e6

# --- the Voila app under several users, from a bundle ---
@pytest.mark.slow
@pytest.mark.browser
def test_five_voila_sessions_at_once(bundle, browser, tmp_path, capsys):
    "Five visitors at once each get a kernel that classifies their photo; with a bundle no kernel loads torch."
    import psutil
    from conftest import free_port, start_server, stop_server
    (tmp_path/'home').mkdir()
    port = free_port(); url = f'http://127.0.0.1:{port}/'
    proc = start_server([str(ROOT/'.venv'/'bin'/'bearlab'), 'app', '--port', str(port), '--model', str(bundle)], url,
                        tmp_path/'voila.log', timeout=180, env={'HOME': str(tmp_path/'home'), 'BEARLAB_FEEDBACK': ''})
    photo = tmp_path/'bear.jpg'; photo.write_bytes(jpeg(6, 640, 480))
    ctxs = [browser.new_context() for _ in range(5)]
    try:
        pages = [c.new_page() for c in ctxs]
        for p in pages: p.goto(url, timeout=120_000)
        for p in pages: p.wait_for_selector('.bearlab-file', state='attached', timeout=180_000)
        for p in pages: p.locator('.bearlab-file').set_input_files(str(photo)) # all five before any answer is awaited
        want = Classifier.load(bundle).predict(photo).label
        for p in pages:
            p.locator('.bearlab-prediction').filter(has_text=want).wait_for(timeout=120_000)
            assert p.locator('.bearlab-error').is_hidden(), p.locator('.bearlab-error').inner_text()
        kernels = [k for k in psutil.Process(proc.pid).children(recursive=True) if 'ipykernel' in ' '.join(k.cmdline())]
        rss = [k.memory_info().rss/2**20 for k in kernels]
    finally:
        for c in ctxs: c.close()
        stop_server(proc)
    assert len(kernels) >= 5
    with capsys.disabled(): print(f"\n5 Voila sessions with a bundle: kernels hold {', '.join(f'{r:.0f}' for r in rss)} MB")
    assert max(rss) < 400
