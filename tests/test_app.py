"The Voila app end to end: a real Voila server on 127.0.0.1, driven by Debian's Chromium through playwright."
import io, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from conftest import ROOT, free_port, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]

@pytest.fixture(scope='module')
def voila(tmp_path_factory):
    "`bearlab app` on a free port, as `make app` starts it."
    port = free_port()
    log = tmp_path_factory.mktemp('voila')/'voila.log'
    url = f'http://127.0.0.1:{port}/'
    proc = start_server([str(ROOT/'.venv'/'bin'/'bearlab'), 'app', '--port', str(port)], url, log, timeout=180)
    yield url
    stop_server(proc)

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

def upload(page, path:Path):
    "Choose `path` in the app's FileUpload (ipywidgets 8 makes the file input only on click)."
    with page.expect_file_chooser(timeout=60_000) as fc:
        page.locator('.widget-upload').first.click()
    fc.value.set_files(str(path))

def test_upload_predict_error_predict(voila, files, page):
    page.goto(voila, timeout=120_000)
    page.wait_for_selector('.widget-upload', timeout=180_000)
    # a real photo: the answer appears, and Chelsea is not a bear
    upload(page, files/'chelsea.jpg')
    pred = page.locator('.bearlab-prediction')
    pred.filter(has_text='not a bear').wait_for(timeout=60_000)
    assert 'Egyptian cat' in pred.inner_text()
    assert page.locator('.bearlab-bars').count() == 1
    assert page.locator('img').count() >= 1 # the preview
    # a text file named .jpg: a sentence, no traceback, and the answer is cleared
    upload(page, files/'notes.jpg')
    err = page.locator('.bearlab-error')
    err.filter(has_text='not a photo').wait_for(timeout=60_000)
    assert 'notes.jpg' in err.inner_text()
    assert 'Traceback' not in page.content()
    assert pred.inner_text().strip() == ''
    # and the app keeps working: the next upload gets a prediction again
    upload(page, files/'noise.png')
    page.locator('.bearlab-bars').wait_for(timeout=60_000)
    assert not err.is_visible()
    assert pred.inner_text().strip() != ''
    # the same file twice is a new upload too
    upload(page, files/'chelsea.jpg')
    pred.filter(has_text='Egyptian cat').wait_for(timeout=60_000)
    assert page.locator('.bearlab-preview').evaluate('e => e.getBoundingClientRect().width') == 384
    # a small photo is shown at its own size, not stretched; the upload button shows its whole label
    upload(page, files/'small.jpg')
    page.wait_for_function("() => document.querySelector('.bearlab-preview').getBoundingClientRect().width < 200", timeout=60_000)
    assert page.locator('.bearlab-preview').evaluate('e => e.getBoundingClientRect().width') == 96
    assert page.locator('.widget-upload').first.evaluate('e => e.scrollWidth <= e.clientWidth')
