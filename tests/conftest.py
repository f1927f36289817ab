"Shared fixtures: free ports, waiting for a server, and Debian's Chromium driven by playwright (never a downloaded browser)."
import os, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # the dev tooling in tools/ (not part of the package)
# tests keep bearlab's cache (ONNX exports, the built-in bundle, embeddings) in the checkout, not in the user's
# ~/.cache/bearlab, which they neither fill nor read; the next run reuses it, and it is safe to delete
os.environ.setdefault('BEARLAB_CACHE', str(ROOT/'.cache'/'bearlab-tests'))
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']

def free_port()->int:
    "A TCP port on 127.0.0.1 that nothing listens on now."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait_for_http(url:str, proc:subprocess.Popen|None=None, timeout:float=180.)->None:
    "Poll `url` until it answers (any HTTP status), at most `timeout` seconds; fail early if `proc` died."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f'server exited with {proc.returncode} before answering {url}')
        try: urllib.request.urlopen(url, timeout=5); return
        except urllib.error.HTTPError: return
        except OSError: time.sleep(0.5)
    raise TimeoutError(f'{url} did not answer within {timeout}s')

def start_server(cmd:list, url:str, log:Path, timeout:float=180., env=None)->subprocess.Popen:
    "Start `cmd` in its own process group, logging to `log`, and wait until `url` answers."
    f = open(log, 'wb')
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    try: wait_for_http(url, proc, timeout)
    except Exception:
        stop_server(proc); raise RuntimeError(f'{cmd} failed to start; log:\n' + log.read_text(errors='replace')[-4000:])
    return proc

def stop_server(proc:subprocess.Popen)->None:
    "Stop a server started by `start_server` and everything it started."
    import signal
    try: os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL); proc.wait(5)

@pytest.fixture(scope='session')
def browser():
    "Headless Debian Chromium, through playwright."
    if not Path(CHROMIUM).exists(): pytest.fail(f'{CHROMIUM} is missing: `make test` installs Debian\'s chromium package')
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()

@pytest.fixture
def page(browser):
    "A fresh page; console errors are collected in `page.console_errors`."
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.console_errors = []
    pg.on('console', lambda m: m.type == 'error' and pg.console_errors.append(m.text))
    yield pg
    ctx.close()
