"""The notebooks in real JupyterLab, as a learner opens them: a JupyterLab server on 127.0.0.1 driven by Debian's Chromium.

The cleaning tutorial and the SGD notebook are run from JupyterLab's Run menu, in the light and the dark theme;
the widgets must render, fit their boxes, and do what their buttons and sliders say. Screenshots are printed."""
import hashlib, json, os, re, shutil, time
from pathlib import Path
import pytest
from conftest import ROOT, free_port, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TOKEN = 'bearlab-test'
RUN_TIMEOUT = 420 # seconds for one notebook's Run All on a busy 2-core machine

def tree(root:Path)->dict:
    "Every file under `root` (journal and trash folders excepted) → its sha256."
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob('*'))
            if p.is_file() and not any(part.startswith('.bearlab') for part in p.relative_to(root).parts)}

def wait_until(cond, timeout:float=60., what:str='condition'):
    "Poll `cond` every 0.2 s, at most `timeout` seconds."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond(): return
        time.sleep(0.2)
    raise TimeoutError(f'{what}: not true within {timeout}s')

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "JupyterLab from .venv on a free port, on copies of the notebooks (JupyterLab saves what it runs), settings kept apart."
    root = tmp_path_factory.mktemp('lab')
    nbs = root/'nbs'; (nbs/'tutorials').mkdir(parents=True)
    shutil.copy(ROOT/'nbs'/'05_sgd.ipynb', nbs/'05_sgd.ipynb')
    nb = json.loads((ROOT/'nbs'/'tutorials'/'cleaning.ipynb').read_text())
    nb['cells'].append({'cell_type': 'code', 'execution_count': None, 'id': 'testpath', 'metadata': {}, 'outputs': [],
                        'source': ["print(f'DATASET={path}')"]}) # tells the test where the tutorial made its photos
    (nbs/'tutorials'/'cleaning.ipynb').write_text(json.dumps(nb))
    settings = root/'settings'/'@jupyterlab'/'apputils-extension'; settings.mkdir(parents=True)
    (settings/'notification.jupyterlab-settings').write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port = free_port(); url = f'http://127.0.0.1:{port}'
    env = dict(JUPYTERLAB_SETTINGS_DIR=str(root/'settings'), JUPYTERLAB_WORKSPACES_DIR=str(root/'workspaces'),
               JUPYTER_RUNTIME_DIR=str(root/'runtime'), OMP_WAIT_POLICY='PASSIVE', PYTHONWARNINGS='ignore::FutureWarning')
    cmd = [str(ROOT/'.venv'/'bin'/'jupyter'), 'lab', '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1',
           f'--ServerApp.root_dir={nbs}', f'--IdentityProvider.token={TOKEN}', '--LabApp.news_url=None',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.expose_app_in_browser=True',
           '--LabApp.extension_manager=readonly'] + (['--allow-root'] if os.getuid() == 0 else [])
    proc = start_server(cmd, f'{url}/api/status?token={TOKEN}', root/'lab.log', timeout=180, env=env)
    yield url, root
    stop_server(proc)

@pytest.fixture(scope='module')
def lab_page(browser, tmp_path_factory):
    "One page for the whole module, as a learner keeps one JupyterLab tab; 1280×900 as on a laptop."
    ctx = browser.new_context(viewport={'width': 1280, 'height': 900})
    pg = ctx.new_page()
    yield pg
    ctx.close()

SHOTS = Path(os.environ.get('BEARLAB_SCREENSHOTS', '/tmp/bearlab-screenshots'))

def shot(el, name:str):
    "Save a full-size screenshot of element `el` and say where."
    SHOTS.mkdir(parents=True, exist_ok=True)
    el.screenshot(path=str(SHOTS/name)); print('screenshot:', SHOTS/name)

def command(page, cmd:str, **args):
    "Run a JupyterLab command, as its menu item does."
    page.evaluate('([c, a]) => window.jupyterapp.commands.execute(c, a)', [cmd, args])

def set_theme(page, theme:str):
    "Switch JupyterLab's theme from the Settings menu and wait until its colours apply."
    page.locator('.lm-MenuBar-itemLabel', has_text='Settings').click()
    page.locator('.lm-Menu-itemLabel', has_text=re.compile('^Theme$')).hover()
    page.locator('.lm-Menu-itemLabel', has_text=re.compile(f'^{theme}$')).click()
    dark = 'true' if 'Dark' in theme else 'false'
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{'false' if dark == 'true' else 'true'}'", timeout=30_000)
    page.wait_for_timeout(1000) # the theme's stylesheet applies

def open_notebook(page, url:str, path:str):
    "Open `path` in JupyterLab and wait until its kernel is idle."
    page.goto(f'{url}/lab/tree/{path}?token={TOKEN}', timeout=120_000)
    page.locator('.jp-Notebook').first.wait_for(timeout=120_000)
    page.wait_for_function("p => { const w = window.jupyterapp.shell.currentWidget;"
                           " return w?.context?.path === p && w.sessionContext?.session?.kernel?.status === 'idle' }",
                           arg=path, timeout=120_000)

def run_all(page):
    "Run > Run All Cells, then wait until every cell ran or one failed (bounded by RUN_TIMEOUT)."
    page.locator('.lm-MenuBar-itemLabel', has_text=re.compile('^Run$')).click()
    page.locator('.lm-Menu-itemLabel', has_text=re.compile('^Run All Cells$')).click()
    try: page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget; const k = w?.sessionContext?.session?.kernel;"
                                " if (!k || !w.content) return false;" # a kernel being (re)started has no session for a moment
                                " const cells = [...w.content.widgets].filter(c => c.model.type === 'code');"
                                " const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));"
                                " return k.status === 'idle' && (failed || cells.every(c => c.model.executionCount !== null)) }",
                                timeout=RUN_TIMEOUT*1000, polling=1000)
    finally: SHOTS.mkdir(parents=True, exist_ok=True); page.screenshot(path=str(SHOTS/'lab-last-run.png'))
    errors = page.evaluate("() => [...window.jupyterapp.shell.currentWidget.content.widgets].flatMap("
                           "c => c.model.type === 'code' ? c.model.outputs.toJSON().filter(o => o.output_type === 'error') : [])")
    assert errors == [], '\n'.join(e['ename'] + ': ' + e['evalue'] for e in errors)

def run_notebook(page, url:str, path:str):
    "Open `path`, run it from the Run menu, and check that nothing went wrong on the page."
    open_notebook(page, url, path)
    run_all(page)
    assert problems(page) == []

def problems(page)->list:
    "What a learner would see go wrong in the open notebook: widgets that failed, tracebacks."
    text = page.evaluate('() => window.jupyterapp.shell.currentWidget.content.node.innerText') # the notebook in front
    return [p for p in ('Error displaying widget', 'Traceback', 'Error:') if p in text]

OVERFLOW = "els => els.filter(e => e.scrollWidth > e.clientWidth + 0.5).map(e => e.className + ': ' + e.scrollWidth + '>' + e.clientWidth)"

def contrast(page, sel:str)->float:
    "WCAG contrast between the text of `sel` and the colour behind it."
    return page.locator(sel).first.evaluate("""e => {
        const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v/12.92 : ((v+0.055)/1.055)**2.4 });
                           return 0.2126*r + 0.7152*g + 0.0722*b };
        let bg = e; while (bg && ['rgba(0, 0, 0, 0)', 'transparent'].includes(getComputedStyle(bg).backgroundColor)) bg = bg.parentElement;
        const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(rgb(getComputedStyle(bg || document.body).backgroundColor))];
        return (Math.max(a, b) + 0.05)/(Math.min(a, b) + 0.05) }""")

def check_cleaner(page, theme:str):
    "The cleaner rendered, every card fits its box, every label reads, in `theme`."
    cleaner = page.locator('.bearlab-cleaner').first
    cleaner.scroll_into_view_if_needed()
    assert page.locator('.bearlab-cleaner .bearlab-card').count() == 8
    assert page.locator('.bearlab-cleaner .bearlab-card').evaluate_all(OVERFLOW) == []
    assert page.locator('.bearlab-cleaner button').evaluate_all(OVERFLOW) == []
    # the probability line on each card, and the status, are readable in this theme
    assert contrast(page, '.bearlab-card .widget-html-content span') >= 4.5
    shot(cleaner, f'lab-cleaner-{theme}.png')

def test_saved_outputs_before_running(lab, lab_page):
    "Opened before running: saved animations show a picture and no dead buttons, and nothing is fetched from a CDN."
    url, root = lab
    requests = []
    lab_page.on('request', lambda r: requests.append(r.url))
    open_notebook(lab_page, url, '05_sgd.ipynb')
    anim = lab_page.locator('.jp-OutputArea-output .animation').first
    anim.scroll_into_view_if_needed()
    pictures = lab_page.locator('.jp-OutputArea-output .animation img')
    assert pictures.count() >= 1
    assert pictures.evaluate_all('els => els.map(e => e.complete && e.naturalWidth > 0)') == [True]*pictures.count()
    assert lab_page.locator('.anim-controls').evaluate_all('els => els.filter(e => e.offsetParent !== null).length') == 0
    assert lab_page.locator('.bearlab-anim-note').first.is_visible()
    shot(anim, 'lab-animation-before-run.png')
    assert [u for u in requests if not u.startswith(url) and not u.startswith('data:')] == []

def test_sgd_notebook_light_and_dark(lab, lab_page):
    "The SGD notebook run from the Run menu: the explorer is sharp, and moving the learning rate changes the verdict."
    run_notebook(lab_page, lab[0], '05_sgd.ipynb')
    # animations now play: the controls are there and the note is gone
    assert lab_page.locator('.bearlab-anim-note').count() == 0
    assert lab_page.locator('.anim-controls').first.is_visible()
    pic, msg = lab_page.locator('.bearlab-sgd-picture').first, lab_page.locator('.bearlab-sgd-message').first
    pic.scroll_into_view_if_needed()
    lab_page.wait_for_function("() => { const i = document.querySelector('.bearlab-sgd-picture'); return i && i.naturalWidth > 0 }")
    shown, natural = pic.evaluate('e => [e.getBoundingClientRect().width, e.naturalWidth]')
    assert shown <= 800 and natural >= 2*shown - 1, (shown, natural) # drawn with 2 pixels per CSS pixel: never stretched
    before = msg.inner_text()
    shot(lab_page.locator('.jp-OutputArea-output', has=lab_page.locator('.bearlab-sgd-picture')).first, 'lab-explorer-light.png')
    # the largest learning rate: the keyboard moves the slider as a hand would
    handle = lab_page.locator('.widget-hslider', has_text='learning rate').locator('.noUi-handle').first
    handle.focus(); handle.press('End')
    lab_page.wait_for_function("t => document.querySelector('.bearlab-sgd-message').innerText !== t", arg=before, timeout=60_000)
    assert 'Diverges' in msg.inner_text(), msg.inner_text()
    set_theme(lab_page, 'JupyterLab Dark')
    assert contrast(lab_page, '.bearlab-sgd-message') >= 4.5
    shot(lab_page.locator('.jp-OutputArea-output', has=lab_page.locator('.bearlab-sgd-picture')).first, 'lab-explorer-dark.png')
    set_theme(lab_page, 'JupyterLab Light')

def test_cleaning_tutorial_light_and_dark(lab, lab_page):
    "The cleaning tutorial run from the Run menu; apply and undo by clicks move files and put them back byte for byte."
    run_notebook(lab_page, lab[0], 'tutorials/cleaning.ipynb')
    last = lab_page.evaluate("() => [...window.jupyterapp.shell.currentWidget.content.widgets].at(-1).model.outputs.toJSON()")
    dataset = Path(re.search(r'DATASET=(\S+)', ''.join(last[0]['text']))[1])
    check_cleaner(lab_page, 'light')
    before = tree(dataset)
    # the tutorial left its decisions in the journal, undone: one click applies them
    lab_page.locator('.bearlab-cleaner .bearlab-apply').first.click()
    status = lab_page.locator('.bearlab-cleaner .bearlab-status').first
    status.filter(has_text=re.compile(r'Moved \d+ files?')).wait_for(timeout=60_000)
    wait_until(lambda: tree(dataset) != before, 30, 'files moved')
    assert (dataset/'.bearlab-trash').exists()
    moved = status.inner_text()
    lab_page.locator('.bearlab-cleaner .bearlab-undo').first.click()
    wait_until(lambda: tree(dataset) == before, 60, 'every file back, byte for byte')
    lab_page.wait_for_function("t => document.querySelector('.bearlab-cleaner .bearlab-status').innerText !== t", arg=moved, timeout=30_000)
    assert 'Moved' not in status.inner_text() # the status says what the last click did, not the one before
    set_theme(lab_page, 'JupyterLab Dark')
    check_cleaner(lab_page, 'dark')
    assert problems(lab_page) == []
