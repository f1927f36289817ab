"The static page of `bearlab export-web` end to end: `bearlab preview` on 127.0.0.1, driven by Debian's Chromium."
import base64, functools, io, json, zipfile
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from conftest import ROOT, free_port, start_server, stop_server
from test_app import PHONE, grizzly_png

pytestmark = [pytest.mark.slow, pytest.mark.browser]
BEARLAB = str(ROOT/'.venv'/'bin'/'bearlab')
APP = '.bearlab-app'

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The built-in model's site, written by the command line."
    import subprocess
    out = tmp_path_factory.mktemp('web')/'site'
    subprocess.run([BEARLAB, 'export-web', str(out)], check=True, capture_output=True)
    return out

def preview(site:Path, log:Path, *args)->tuple:
    "`bearlab preview site` on a free port: (url, process)."
    port = free_port()
    url = f'http://127.0.0.1:{port}/'
    return url, start_server([BEARLAB, 'preview', str(site), '--port', str(port), *args], url, log, timeout=60)

@pytest.fixture(scope='module')
def url(site):
    u, proc = preview(site, site.parent/'preview.log')
    yield u
    stop_server(proc)

def encode(img:Image.Image, fmt:str, **kw)->bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()

@pytest.fixture(scope='module')
def photos(tmp_path_factory, request)->dict:
    "Photos of every kind the page must read like Python, and files it must refuse; none of them real."
    import pillow_heif # noqa: F401, HEIC through PIL
    from skimage import data as skdata
    d, rng = tmp_path_factory.mktemp('photos'), np.random.default_rng(0)
    grizzly = Image.open(io.BytesIO(grizzly_png(request.config.cache)))
    cat = Image.fromarray(skdata.chelsea())
    fade = np.tile(np.linspace(0, 255, 451).astype(np.uint8), (300, 1)) # transparent on the left, opaque on the right
    exif = Image.Exif(); exif[0x0112] = 6 # stored sideways: "turn 90° clockwise to view"
    big = np.asarray(grizzly.convert('RGB').resize((4000, 3000), Image.BICUBIC), dtype=np.int16)
    big = np.clip(big + rng.normal(0, 8, big.shape).astype(np.int16), 0, 255).astype(np.uint8)
    files = {
        'grizzly.png': encode(grizzly, 'PNG'),
        'chelsea.jpg': encode(cat, 'JPEG', quality=90),
        'sideways.jpg': encode(cat.transpose(Image.Transpose.ROTATE_90), 'JPEG', quality=90, exif=exif.tobytes()),
        'grey.jpg': encode(cat.convert('L'), 'JPEG', quality=90),
        'small.webp': encode(cat.resize((96, 64)), 'WEBP', quality=90),
        'palette.gif': encode(grizzly.convert('RGB').quantize(200), 'GIF'),
        'noise.png': encode(Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)), 'PNG'),
        'fading.png': encode(Image.fromarray(np.dstack([skdata.chelsea(), fade]), 'RGBA'), 'PNG'), # over white
        'grizzly-12mp.jpg': encode(Image.fromarray(big), 'JPEG', quality=92),
        # files the page must refuse, with a sentence
        'notes.jpg': b'these are my notes, not a photo',
        'cut.jpg': encode(cat, 'JPEG', quality=90)[:20_000],
        'huge.png': encode(Image.new('1', (12000, 9000)), 'PNG'),
        'IMG_0001.HEIC': encode(cat, 'HEIF', quality=80),
    }
    for name, data in files.items(): (d/name).write_bytes(data)
    with open(d/'too-big.jpg', 'wb') as f: # 60 MB: refused before it is read
        f.write(files['chelsea.jpg']); f.truncate(60_000_000)
    return {f.name: f for f in d.iterdir()}

@pytest.fixture(scope='module')
def phone_jpeg(tmp_path_factory)->Path:
    "A 48 MB JPEG of noise (the hardest kind to decode), 25 megapixels."
    f = tmp_path_factory.mktemp('big')/'noise-48mb.jpg'
    a = np.random.default_rng(1).integers(0, 256, (4300, 5700, 3), dtype=np.uint8)
    Image.fromarray(a).save(f, quality=100)
    assert 40e6 < f.stat().st_size < 50e6, f.stat().st_size
    return f

def open_page(page, url:str):
    page.goto(url)
    page.wait_for_selector(f'{APP}[data-state=ready]', timeout=120_000)

def choose(page, path:Path, timeout:float=120_000):
    "Choose `path` in the page's only file input, and wait for its answer or its error."
    done = int(page.locator(APP).get_attribute('data-done') or 0)
    page.locator('input[type=file]').set_input_files(str(path))
    page.wait_for_function(f"+(document.querySelector('{APP}').dataset.done || 0) > {done}", timeout=timeout)

def answer(page)->tuple:
    "(data-label, the answer's lines, its probabilities, the error shown)."
    a = page.locator('.bearlab-answer')
    probs = json.loads(a.get_attribute('data-probs') or '{}')
    return a.get_attribute('data-label'), a.inner_text().split('\n'), probs, page.locator('.bearlab-error').inner_text()

@functools.cache
def classifier():
    from bearlab.inference import Classifier, default_bundle
    return Classifier.load(default_bundle())

def python_says(path:Path)->tuple:
    "What the Voila app says about `path`: (label or 'not a bear', its headline's lines, probabilities)."
    pred = classifier().predict(path)
    lines = [f"It's {pred.label}!", f"{pred.prob:.0%} sure."] if pred.in_domain else ['Hmm, not a bear?', pred.message]
    return pred.label if pred.in_domain else 'not a bear', lines, pred.probs

def test_same_answers_as_python(url, photos, page):
    "The page decodes, orients, resizes and normalizes as `Classifier` does: the same answer, words and probabilities."
    open_page(page, url)
    requests = []
    page.context.on('request', lambda r: r.url.startswith('http') and requests.append(r.url)) # workers' too
    for name in ['grizzly.png', 'chelsea.jpg', 'sideways.jpg', 'grey.jpg', 'small.webp', 'palette.gif', 'noise.png',
                 'fading.png', 'grizzly-12mp.jpg']:
        choose(page, photos[name])
        label, lines, probs, error = answer(page)
        want_label, want_lines, want_probs = python_says(photos[name])
        assert (label, error) == (want_label, ''), name
        test_lines = [l for l in lines if l.strip()]
        assert test_lines == want_lines, name
        # a big JPEG is decoded smaller, by the JPEG decoder in Chromium as by Pillow's draft: very close
        tol = 1e-3 if name == 'grizzly-12mp.jpg' else 1e-4
        assert max(abs(probs[k] - v) for k, v in want_probs.items()) < tol, name
    assert page.locator('.bearlab-bars .bearlab-bar').count() == 3
    assert page.locator('.bearlab-preview').evaluate('e => e.naturalWidth > 0 && !e.hidden')
    assert requests == [], requests # after the page has loaded, nothing goes over the network

PREPARE = """async ([w, h, rgba, pre]) => {
    const { modelInput } = await import('./preprocess.js');
    const data = Uint8ClampedArray.from(atob(rgba), (c) => c.charCodeAt(0));
    const x = new Uint8Array(modelInput({ width: w, height: h, data }, pre).buffer);
    let s = '';
    for (let i = 0; i < x.length; i += 8192) s += String.fromCharCode(...x.subarray(i, i + 8192));
    return btoa(s);
}"""

def test_preprocess_is_pillows(url, page):
    "preprocess.js gives `Preprocess.array`'s very floats, for every way fastai sizes photos (exported learners too)."
    from dataclasses import asdict
    from bearlab.inference import Preprocess, LITE0_PREPROCESS
    page.goto(url)
    rng = np.random.default_rng(0)
    pres = [LITE0_PREPROCESS, Preprocess(224), Preprocess(224, 'pad'), Preprocess((160, 224), 'squish', 0.9),
            Preprocess(64, 'squish'), Preprocess((200, 150), 'crop', 0.8), Preprocess(224, 'pad', pad_mode='zeros'),
            Preprocess((100, 180), 'pad', pad_mode='border'),
            Preprocess(192, 'squish', 192/224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    for i, pre in enumerate(pres):
        w, h = map(int, rng.integers(20, 700, 2)) if i else (700, 40) # a tall box: Pillow 13 resizes it vertically first
        a = np.asarray(Image.fromarray(rng.integers(0, 256, (h//8 + 1, w//8 + 1, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC))
        rgba = base64.b64encode(np.dstack([a, np.full((h, w), 255, np.uint8)]).tobytes()).decode()
        got = np.frombuffer(base64.b64decode(page.evaluate(PREPARE, [w, h, rgba, asdict(pre)])), np.float32)
        np.testing.assert_array_equal(got, pre.array(Image.fromarray(a)).reshape(-1), err_msg=str(pre))

def test_bad_files_say_why_and_the_next_photo_works(url, photos, page):
    open_page(page, url)
    said = {}
    for name, words in [('notes.jpg', 'not a photo bearlab can read: it looks like text'),
                        ('cut.jpg', 'cut off part-way'),
                        ('huge.png', 'too large (12000×9000 = 108 megapixels): the limit is 100 megapixels'),
                        ('IMG_0001.HEIC', "HEIC photo, which this browser can't read"),
                        ('too-big.jpg', 'too-big.jpg is 60.0 MB: the limit is 50.0 MB')]:
        choose(page, photos[name])
        label, lines, _, error = answer(page)
        said[name] = error
        assert label is None and words in error and error.startswith(name), (name, error)
        choose(page, photos['grizzly.png']) # and the next photo works
        assert answer(page)[0] == 'grizzly', name
    assert 'Traceback' not in page.content()

def test_big_photos_keep_the_page_responsive(url, phone_jpeg, tmp_path, page):
    "Decoding happens in a worker: while it works, the page answers and shows what it is doing."
    open_page(page, url)
    page.locator('input[type=file]').set_input_files(str(phone_jpeg))
    seen = set()
    while page.locator(APP).get_attribute('data-state') == 'working':
        seen.add(page.locator('.bearlab-status').inner_text()) # the page's own thread answers while the worker works
    assert any(s.startswith('Reading noise-48mb.jpg') for s in seen), seen
    label, _, probs, error = answer(page)
    assert error == '' and label and abs(sum(probs.values()) - 1) < 1e-4
    # 100 megapixels, the most `open_image` takes: more than a canvas may hold, so it is decoded smaller
    Image.new('RGB', (10_000, 10_000), (120, 80, 40)).save(tmp_path/'100mp.png')
    choose(page, tmp_path/'100mp.png')
    assert answer(page)[3] == '' and answer(page)[0]

def test_feedback_zip_is_what_take_feedback_reads(url, photos, page, tmp_path):
    "\"That's wrong\" keeps the photo in this browser; the zip of flags goes into a dataset with `take_feedback`."
    from bearlab.issues import take_feedback
    open_page(page, url)
    choose(page, photos['grizzly.png'])
    page.select_option('.bearlab-really', 'black')
    page.click('.bearlab-keep')
    page.wait_for_selector('.bearlab-flags:not([hidden])')
    page.reload() # kept in IndexedDB, not in the page
    open_page(page, url)
    assert page.locator('.bearlab-flag-count').inner_text().startswith('1 photo flagged')
    with page.expect_download() as d: page.click('.bearlab-download')
    with zipfile.ZipFile(d.value.path()) as z:
        names = z.namelist()
        z.extractall(tmp_path/'feedback')
    assert names[-1] == 'feedback.jsonl' and names[0].startswith('black/') and names[0].endswith('.png'), names
    line = json.loads((tmp_path/'feedback'/'feedback.jsonl').read_text())
    assert (line['model'], line['person'], line['file']) == ('grizzly', 'black', names[0])
    (tmp_path/'bears'/'black').mkdir(parents=True)
    made = take_feedback(tmp_path/'feedback', tmp_path/'bears')
    assert [m.parent.name for m in made] == ['black'] and made[0].read_bytes() == photos['grizzly.png'].read_bytes()
    page.click('.bearlab-forget')
    page.wait_for_selector('.bearlab-flags[hidden]', state='attached')

def test_works_offline_after_the_first_visit(site, photos, browser, tmp_path):
    "The service worker keeps every file: with the server gone, the page opens again and classifies."
    u, proc = preview(site, tmp_path/'preview.log')
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(u + '?threads=1') # any address of the page is the page
        page.wait_for_selector(f'{APP}[data-state=ready]', timeout=120_000)
        page.evaluate("navigator.serviceWorker.ready.then(() => caches.keys()).then(k => caches.open(k[0]))"
                      ".then(c => c.match('model.onnx')).then(r => { if (!r) throw 'not cached' })")
    finally: stop_server(proc)
    page.reload()
    page.wait_for_selector(f'{APP}[data-state=ready]', timeout=120_000)
    choose(page, photos['grizzly.png'])
    assert answer(page)[0] == 'grizzly'
    ctx.close()

def test_phone_layout(url, photos, browser):
    "On a phone's screen: nothing wider than the screen, big buttons, a camera button, the whole answer."
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    open_page(page, url)
    choose(page, photos['chelsea.jpg'])
    assert page.evaluate('document.scrollingElement.scrollWidth <= innerWidth')
    assert page.locator('.bearlab-camera').is_visible() # a touch screen: "Take a photo" opens the camera
    pick = page.locator('.bearlab-pick').bounding_box()
    assert pick['width'] > 300 and pick['height'] >= 44
    assert page.locator('.bearlab-preview').bounding_box()['width'] <= 390
    assert answer(page)[0] == 'not a bear'
    ctx.close()

def test_opened_as_a_file_it_says_what_to_do(site, page):
    page.goto(site.joinpath('index.html').as_uri())
    status = page.locator('.bearlab-status').inner_text()
    assert "can't work opened as a file" in status and f'bearlab preview {site}' in status

def test_isolated_preview_uses_threads(site, photos, page, tmp_path):
    "With COOP and COEP (`--isolate`, as a static Space sends them) ONNX Runtime may use several threads."
    u, proc = preview(site, tmp_path/'preview.log', '--isolate')
    try:
        open_page(page, u + '?threads=2')
        assert page.evaluate('crossOriginIsolated') and page.locator(APP).get_attribute('data-threads') == '2'
        choose(page, photos['grizzly.png'])
        assert answer(page)[0] == 'grizzly'
    finally: stop_server(proc)
