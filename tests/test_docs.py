"The documentation site, built without Quarto, served on 127.0.0.1 and read in Debian's Chromium; and the README."
import re, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT, free_port, start_server, stop_server

NBS = ROOT/'nbs'

def _build(call:str)->str:
    "Run `tools.docs.<call>` in a fresh Python: building runs notebook code in an IPython shell, kept out of pytest."
    code = f'import tools.docs as d; d.{call}'
    res = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f'{call} failed:\n{res.stderr[-4000:]}'
    return res.stderr

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site, built from the notebooks as they are committed."
    dest = tmp_path_factory.mktemp('docs')/'_docs'
    _build(f'build_site({str(NBS)!r}, {str(dest)!r})')
    return dest

@pytest.fixture(scope='module')
def url(site, tmp_path_factory):
    "The site served by Python's own http.server on 127.0.0.1."
    port = free_port()
    base = f'http://127.0.0.1:{port}/'
    proc = start_server([sys.executable, '-m', 'http.server', str(port), '--bind', '127.0.0.1', '--directory', str(site)],
                        base + 'index.html', tmp_path_factory.mktemp('log')/'http.log', timeout=60)
    yield base
    stop_server(proc)

def _notebooks()->list:
    from tools.docs import sidebar, _nb_paths
    return _nb_paths(sidebar(NBS)['website']['sidebar']['contents'])

def _check_page(page, what:str):
    "The page has a title and real content, no traceback, no Quarto syntax, and a sidebar."
    from tools.docs import quarto_leftovers
    title = page.locator('h1.title').inner_text().strip()
    assert title, f'{what}: no title'
    main = page.locator('main').inner_text()
    assert len(main.strip()) > len(title) + 20, f'{what}: the page is (nearly) empty'
    assert 'Traceback' not in main, f'{what}: shows a Python traceback'
    assert quarto_leftovers(page.content()) == [], f'{what}: raw Quarto syntax in the text'
    assert page.locator('#quarto-sidebar a').count() >= 1, f'{what}: no sidebar'

@pytest.mark.browser
def test_index_and_sidebar_links(url, page):
    "Every notebook has a page in the sidebar, tutorials before the API, and every sidebar link opens a real page."
    from tools.docs import html_name
    r = page.goto(url + 'index.html')
    assert r.ok
    _check_page(page, 'index.html')
    hrefs = page.locator('#quarto-sidebar a').evaluate_all('els => els.map(e => e.getAttribute("href"))')
    assert {html_name(n) for n in _notebooks()} | {'index.html'} <= set(hrefs), f'sidebar {hrefs} misses notebooks {_notebooks()}'
    sections = page.locator('.sidebar-section-title').all_inner_texts()
    if 'Tutorials' in sections and 'API' in sections: assert sections.index('Tutorials') < sections.index('API')
    for h in hrefs:
        r = page.goto(url + h)
        assert r is not None and r.ok, f'sidebar link {h} is broken'
        _check_page(page, h)
        assert page.locator('#quarto-sidebar a.active').get_attribute('href').endswith(Path(h).name), f'{h}: not marked as the current page'

@pytest.mark.browser
def test_api_pages(url, page):
    "Each API page shows the signatures of its exported functions, and its table of contents leads to its headings."
    from tools.docs import html_name
    api = [n for n in _notebooks() if re.match(r'\d', n)]
    assert api, 'no API notebooks'
    for nb in api:
        h = html_name(nb)
        assert page.goto(url + h).ok
        _check_page(page, h)
        if page.locator('.cell-output-markdown h3').count():  # show_doc headings, with their signature below
            assert page.locator(".cell-output-markdown .sourceCode").count() >= 1, f'{h}: show_doc without a signature'
        for target in page.locator('#TOC a').evaluate_all('els => els.map(e => e.getAttribute("href"))'):
            assert page.locator(f'[id="{target[1:]}"]').count() == 1, f'{h}: TOC link {target} leads nowhere'

@pytest.mark.browser
def test_sgd_animation_plays(url, page):
    "The SGD page's matplotlib animations are in the page, with their controls, and play."
    if not (NBS/'05_sgd.ipynb').exists(): pytest.skip('nbs/05_sgd.ipynb does not exist yet')
    assert page.goto(url + 'sgd.html').ok
    _check_page(page, 'sgd.html')
    anim = page.locator('.animation').first
    assert page.locator('.animation').count() >= 1, 'sgd.html has no animation: is nbs/05_sgd.ipynb committed with its outputs?'
    assert anim.locator('.anim-buttons button').count() >= 8
    slider = anim.locator('input.anim-slider')
    assert int(slider.get_attribute('max') or 0) > 1, 'the animation has a single frame'
    img = anim.locator('img').first
    first = img.get_attribute('src')
    anim.locator('button[title="Play"]').click()
    page.wait_for_function('el => el.value !== "0"', arg=slider.element_handle(), timeout=10_000)
    assert img.get_attribute('src') != first, 'playing did not change the frame'
    assert not page.console_errors, page.console_errors # nothing asked of a CDN, nothing failed

@pytest.mark.browser
def test_search_finds_a_function(url, page):
    "Typing a function's name in the search box offers its documentation first, and Enter goes there."
    assert page.goto(url + 'index.html').ok
    page.fill('#search-input', 'open_image')
    first = page.locator('#search-results a').first
    assert first.get_attribute('href').endswith('images.html#open_image')
    page.press('#search-input', 'Enter')
    page.wait_for_url('**/images.html#open_image')
    assert page.locator('[id="open_image"]').count() == 1

def test_links_lead_somewhere(site):
    "Every link between pages of the site, and to a heading, arrives."
    from tools.docs import broken_links
    assert broken_links(site) == []

def test_pages_need_nothing_external(site):
    "Pages load nothing from the network: scripts, styles and images are in the site."
    for p in site.rglob('*.html'):
        text = p.read_text()
        ext = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(https?:[^"]+)"', text)
        assert not ext, f'{p.name} loads {ext[:3]}'

LOCAL = re.compile(r'/tmp/|/root/|/home/|/work/|\.venv/|site-packages|\w:\\\\Users')

def test_saved_outputs_are_portable():
    "Committed outputs show what any learner would see: no paths of the machine that ran them, no dependency's warnings, no CDN."
    import json
    bad = []
    for f in sorted(NBS.rglob('*.ipynb')):
        for i, c in enumerate(json.loads(f.read_text())['cells']):
            for o in c.get('outputs', []):
                text = re.sub(r'[A-Za-z0-9+/=\\n]{200,}', '', json.dumps(o)) # pictures, as base64, can't hold a path
                where = f'{f.relative_to(NBS)} cell {i}'
                if m := LOCAL.search(text): bad.append(f'{where}: a local path ...{text[max(0, m.start()-60):m.end()+40]}')
                if o.get('name') == 'stderr' and re.search(r'FutureWarning|DeprecationWarning', text): bad.append(f'{where}: a warning: {text[:160]}')
                if m := re.search(r'(?:src|href)=\\?"https?://[^"\\]+', text): bad.append(f'{where}: fetches {m[0]}')
    assert not bad, '\n'.join(bad)

def test_public_names_documented(site):
    "Every public function and class has a one-line docstring, docments for its parameters, and its place in the site."
    from tools.docs import doc_problems
    problems = doc_problems(site=site, methods=False)
    assert not problems, f'{len(problems)} problems:\n' + '\n'.join(problems)

def test_readme_is_deterministic(tmp_path):
    "README.md from index.ipynb: the same bytes twice, no Quarto syntax, no absolute paths."
    if not (NBS/'index.ipynb').exists(): pytest.skip('nbs/index.ipynb does not exist yet')
    a, b = tmp_path/'a'/'README.md', tmp_path/'b'/'README.md'
    a.parent.mkdir(); b.parent.mkdir()
    for f in (a, b): _build(f'build_readme({str(NBS)!r}, {str(f)!r}, refresh=False)')
    md = a.read_text()
    assert md == b.read_text()
    assert md.startswith('# ') and len(md) > 200
    prose = re.sub(r'```.*?```', '', md, flags=re.DOTALL)
    assert not re.search(r'^#\|', md, re.M) and ':::' not in prose and not re.search(r'\{[.#][\w-]+', prose)
    assert str(ROOT) not in md and '/tmp/' not in md

def test_build_site_never_wipes_a_folder_it_did_not_build(tmp_path):
    from tools.docs import build_site
    from bearlab.images import BearlabError
    (tmp_path/'notes.txt').write_text('mine')
    with pytest.raises(BearlabError, match="aren't a site built by bearlab"): build_site(dest=tmp_path)
    assert (tmp_path/'notes.txt').read_text() == 'mine'
