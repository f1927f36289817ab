"The Voila app end to end: a real Voila server on 127.0.0.1, driven by Debian's Chromium through playwright."
import io, json, hashlib, os, time
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from conftest import ROOT, free_port, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PHONE = dict(viewport={'width': 390, 'height': 844}, device_scale_factor=2, is_mobile=True, has_touch=True)

def voila_app(folder:Path, *args)->tuple:
    "`bearlab app` on a free port, as `make app` starts it, with its own HOME: (url, process)."
    port = free_port()
    (folder/'home').mkdir()
    url = f'http://127.0.0.1:{port}/'
    env = {'HOME': str(folder/'home'), 'BEARLAB_FEEDBACK': '', 'BEARLAB_CACHE': ''} # a first run: its cache in HOME
    proc = start_server([str(ROOT/'.venv'/'bin'/'bearlab'), 'app', '--port', str(port), *args], url, folder/'voila.log',
                        timeout=180, env=env)
    return url, proc

@pytest.fixture(scope='module')
def voila(tmp_path_factory):
    "The app as friends use it: feedback off."
    d = tmp_path_factory.mktemp('voila')
    url, proc = voila_app(d)
    yield url, d/'home', proc
    stop_server(proc)

@pytest.fixture(scope='module')
def voila_feedback(tmp_path_factory):
    "The app with `--feedback DIR`."
    d = tmp_path_factory.mktemp('voila-feedback')
    url, proc = voila_app(d, '--feedback', str(d/'flags'))
    yield url, d/'flags'
    stop_server(proc)

def grizzly_png(cache)->bytes:
    "A 256×256 PNG the default model calls a grizzly (no bear photos ship), made once and kept in pytest's cache."
    f = cache.mkdir('bearlab-photos')/'grizzly.png'
    if not f.exists():
        from test_inference import model_made
        f.write_bytes(model_made(294))
    return f.read_bytes()

def phone_photos(d:Path, cache)->dict:
    "The photos a phone makes: a 15 MB JPEG (a grizzly), an iPhone HEIC stored sideways, a 60 MB JPEG; and a plain grizzly."
    import pillow_heif # noqa: F401, HEIC through PIL
    from skimage import data as skdata
    rng = np.random.default_rng(0)
    grizzly = grizzly_png(cache)
    (d/'grizzly.png').write_bytes(grizzly)
    a = np.asarray(Image.open(io.BytesIO(grizzly)).convert('RGB').resize((4000, 4000), Image.BICUBIC), dtype=np.int16)
    a = np.clip(a + rng.normal(0, 30, a.shape).astype(np.int16), 0, 255).astype(np.uint8)  # a phone's sensor noise
    Image.fromarray(a).save(d/'grizzly-15mb.jpg', quality=97)
    exif = Image.Exif(); exif[0x0112] = 6  # stored sideways, "rotate 90° clockwise to view"
    cat = Image.fromarray(skdata.chelsea())
    cat.transpose(Image.Transpose.ROTATE_90).save(d/'IMG_0001.HEIC', 'HEIF', exif=exif.tobytes(), quality=80)
    Image.fromarray(rng.integers(0, 256, (4800, 6400, 3), dtype=np.uint8)).save(d/'noise-60mb.jpg', quality=100)
    cat.save(d/'chelsea.jpg', quality=90)
    sizes = {f.name: f.stat().st_size for f in d.iterdir()}
    assert sizes['grizzly-15mb.jpg'] > 15_000_000 and sizes['noise-60mb.jpg'] > 60_000_000, sizes
    assert (d/'IMG_0001.HEIC').read_bytes()[4:12] == b'ftypheic'
    return {f.name: f for f in d.iterdir()}

@pytest.fixture(scope='module')
def photos(tmp_path_factory, request): return phone_photos(tmp_path_factory.mktemp('phone'), request.config.cache)

@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('uploads')
    from skimage import data as skdata
    Image.fromarray(skdata.chelsea()).save(d/'chelsea.jpg', quality=90)
    (d/'notes.jpg').write_text('these are my notes, not a photo')
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 4), dtype=np.uint8), 'RGBA').save(d/'noise.png')
    Image.fromarray(skdata.chelsea()).resize((96, 64)).save(d/'small.jpg', quality=90)
    return d

def open_app(page, url:str):
    page.goto(url, timeout=120_000)
    page.wait_for_selector('.bearlab-file', state='attached', timeout=180_000)

IDLE = """() => !document.querySelector('.bearlab-file').disabled
    && (document.querySelector('.bearlab-prediction').innerText.trim() !== ''
        || getComputedStyle(document.querySelector('.bearlab-error')).display !== 'none')"""

def upload(page, path:Path, timeout:float=120_000)->float:
    "Choose `path` in the app's picker and wait for the answer or the error; the seconds it took."
    t = time.monotonic()
    page.locator('.bearlab-file').set_input_files(str(path))
    page.wait_for_function(IDLE, timeout=timeout)
    return time.monotonic() - t

def watch_sent(page)->list:
    "The size of every websocket frame the page sends, as it sends them."
    sizes = []
    page.on('websocket', lambda ws: ws.on('framesent', lambda payload: sizes.append(len(payload))))
    return sizes

def test_upload_predict_error_predict(voila, files, page):
    open_app(page, voila[0])
    # a real photo: the answer appears, and Chelsea is not a bear
    upload(page, files/'chelsea.jpg')
    pred = page.locator('.bearlab-prediction')
    assert 'Egyptian cat' in pred.inner_text()
    assert page.locator('.bearlab-bars').count() == 1
    assert page.locator('img').count() >= 1 # the preview
    # a text file named .jpg: a sentence, no traceback, and the answer is cleared
    upload(page, files/'notes.jpg')
    err = page.locator('.bearlab-error')
    assert 'not a photo' in err.inner_text() and 'notes.jpg' in err.inner_text()
    assert 'Traceback' not in page.content()
    assert pred.inner_text().strip() == ''
    # and the app keeps working: the next upload gets a prediction again
    upload(page, files/'noise.png')
    assert not err.is_visible()
    assert pred.inner_text().strip() != ''
    # the same file twice is a new upload too
    upload(page, files/'chelsea.jpg')
    assert 'Egyptian cat' in pred.inner_text()
    assert page.locator('.bearlab-preview').evaluate('e => e.getBoundingClientRect().width') == 384
    # a small photo is shown at its own size, not stretched; the picker shows its whole label
    upload(page, files/'small.jpg')
    assert page.locator('.bearlab-preview').evaluate('e => e.getBoundingClientRect().width') == 96
    assert page.locator('.bearlab-pick').evaluate('e => e.scrollWidth <= e.clientWidth')

def test_built_in_model_kernel_loads_no_torch(voila, files, page, capsys):
    "Without `--model` the app serves the built-in model's bundle from bearlab's cache: a visitor's kernel has no torch."
    import psutil
    open_app(page, voila[0])
    upload(page, files/'chelsea.jpg')
    assert 'Egyptian cat' in page.locator('.bearlab-prediction').inner_text()
    assert list((voila[1]/'.cache'/'bearlab'/'bundles').glob('imagenet-bears-lite0-*/model.onnx'))
    kernels = [k for k in psutil.Process(voila[2].pid).children(recursive=True) if 'ipykernel' in ' '.join(k.cmdline())]
    assert kernels
    for k in kernels:
        assert 'libtorch' not in Path(f'/proc/{k.pid}/maps').read_text()
        with capsys.disabled(): print(f"\nbuilt-in model's kernel: {k.memory_info().rss/2**20:.0f} MB")
        assert k.memory_info().rss < 400*2**20

def test_idle_kernels_are_culled(files, browser, tmp_path):
    "A visitor who closes the page leaves a kernel behind: `--cull-idle` shuts it down, so memory follows the visitors."
    import psutil
    url, proc = voila_app(tmp_path, '--cull-idle', '4')
    def running(k)->bool:
        try: return k.status() != psutil.STATUS_ZOMBIE and 'ipykernel' in ' '.join(k.cmdline())
        except psutil.Error: return False  # it ended (or became a zombie) between the listing and the look
    def kernels(): return [k for k in psutil.Process(proc.pid).children(recursive=True) if running(k)]
    try:
        ctx = browser.new_context()
        page = ctx.new_page()
        open_app(page, url)
        upload(page, files/'chelsea.jpg')
        assert 'Egyptian cat' in page.locator('.bearlab-prediction').inner_text()
        assert kernels()
        ctx.close()
        deadline = time.monotonic() + 90
        while kernels() and time.monotonic() < deadline: time.sleep(1)
        assert not kernels(), 'a kernel is still running 90 s after its page closed'
    finally: stop_server(proc)

KEPT = {'.jpg', '.jpeg', '.png', '.heic', '.heif', '.webp', '.avif', '.gif', '.bmp', '.tif', '.tiff', '.jsonl'}

def new_files(folder:Path, since:float)->list:
    "Photos and journals written in `folder` since `since`."
    return [p for p in folder.rglob('*') if p.suffix.lower() in KEPT and p.is_file() and p.stat().st_mtime >= since]

def test_phone_photos_one_session(voila, photos, page, capsys, tmp_path):
    "A normal photo, a 15 MB JPEG, an iPhone HEIC, a 60 MB JPEG, then a grizzly: each answered or refused in words."
    url, home, _ = voila
    start = time.time()
    sent = watch_sent(page)
    open_app(page, url)
    accepts = page.locator('.bearlab-accepts').inner_text()
    assert 'HEIC' in accepts and '50 MB' in accepts and 'camera' in accepts
    assert page.locator('.bearlab-file').get_attribute('accept').startswith('image/*')
    assert 'not kept' in page.locator('.bearlab-app').inner_text() and page.locator('.bearlab-feedback').count() == 0
    pred, err = page.locator('.bearlab-prediction'), page.locator('.bearlab-error')
    upload(page, photos['chelsea.jpg'])
    assert 'Egyptian cat' in pred.inner_text()
    # 15 MB: sent in pieces far under the websocket's 10 MiB, with progress, and answered right
    page.evaluate("""() => { window.seen = []; const s = document.querySelector('.bearlab-upload-status');
        new MutationObserver(() => seen.push(s.textContent)).observe(s, {childList: true, characterData: true, subtree: true}); }""")
    n = len(sent)
    took = upload(page, photos['grizzly-15mb.jpg'])
    assert "It's grizzly!" in pred.inner_text(), pred.inner_text()
    seen = page.evaluate('window.seen')
    assert any(s.startswith('Sending grizzly-15mb.jpg') for s in seen) and any(s.startswith('Reading') for s in seen), seen
    assert sum(sent[n:]) > 15_000_000 and max(sent[n:]) < 5_000_000
    # an iPhone photo, stored sideways: read, and shown upright (landscape)
    upload(page, photos['IMG_0001.HEIC'])
    assert 'Egyptian cat' in pred.inner_text()
    assert page.locator('.bearlab-preview').evaluate('e => e.getBoundingClientRect().width') == 384
    # 60 MB: refused in the browser with the limit in MB, nothing sent, the last answer cleared
    n = len(sent)
    page.locator('.bearlab-file').set_input_files(str(photos['noise-60mb.jpg']))
    err.filter(has_text='the limit is').wait_for(timeout=60_000)
    said = f"noise-60mb.jpg is {photos['noise-60mb.jpg'].stat().st_size/1e6:.1f} MB"
    assert said in err.inner_text() and 'the limit is 50.0 MB' in err.inner_text(), err.inner_text()
    assert sum(sent[n:]) < 10_000 and pred.inner_text().strip() == ''
    # and the page still works
    upload(page, photos['grizzly.png'])
    assert "It's grizzly!" in pred.inner_text() and not err.is_visible()
    assert not [e for e in page.console_errors if 'onnection' in e], page.console_errors
    page.screenshot(path=str(tmp_path/'app-session.png'), full_page=True)
    # feedback is off: nothing was kept, in the server's HOME or next to the app
    assert new_files(home, start) == [] and new_files(ROOT/'nbs', start) == []
    with capsys.disabled():
        print(f"\nscreenshot: {tmp_path/'app-session.png'}\n15 MB JPEG ({photos['grizzly-15mb.jpg'].stat().st_size/1e6:.1f} MB): "
              f"answered in {took:.1f} s from choosing it")

def test_phone_feedback(voila_feedback, photos, browser, capsys, tmp_path):
    "At 390 px wide everything fits; with --feedback, a flag keeps the photo and journals it."
    url, flags = voila_feedback
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    try:
        open_app(page, url)
        assert 'kept by whoever runs this app' in page.locator('.bearlab-app').inner_text()
        upload(page, photos['grizzly.png'])
        assert "It's grizzly!" in page.locator('.bearlab-prediction').inner_text()
        fb = page.locator('.bearlab-feedback')
        fb.wait_for(state='visible', timeout=30_000)
        assert page.evaluate('document.documentElement.clientWidth') == 390 # the page is laid out for the phone's width
        right = "els => els.map(e => e.getBoundingClientRect().right)"
        for sel in ['.bearlab-preview', '.bearlab-bars', '.bearlab-feedback', '.bearlab-pick', '.bearlab-accepts']:
            assert max(page.locator(sel).evaluate_all(right)) <= 390, sel
        assert page.evaluate('document.documentElement.scrollWidth') <= 390 # nothing to scroll sideways
        page.screenshot(path=str(tmp_path/'app-phone.png'), full_page=True)
        page.locator('.bearlab-app').screenshot(path=str(tmp_path/'app-phone-whole.png'))
        fb.locator('select').select_option('teddy')
        fb.locator('button').click()
        fb.filter(has_text='Thanks').wait_for(timeout=30_000)
        data = photos['grizzly.png'].read_bytes()
        kept = flags/'teddy'/f'{hashlib.sha256(data).hexdigest()[:16]}.png'
        assert kept.read_bytes() == data
        line = json.loads((flags/'feedback.jsonl').read_text())
        assert (line['model'], line['person'], line['file']) == ('grizzly', 'teddy', f'teddy/{kept.name}') and line['time']
    finally: ctx.close()
    with capsys.disabled(): print(f"\nscreenshots: {tmp_path/'app-phone.png'} (the phone's screen), {tmp_path/'app-phone-whole.png'} (the whole app)")
