"""The static page of `bearlab export-web`, in headless Chromium, against Python and against the Voila app.

    .venv/bin/python bench/web.py [PHOTOS] [--runs 7]     # PHOTOS: a folder of photos, default ../shared/data/realbears

One run measures:
1. agreement on every photo in PHOTOS: the page's top answer (a label, or "not a bear") against `Classifier.predict`'s,
   and the largest difference between their probabilities, for the float model and for the INT8 one (`--quantize`,
   compared with the float model in Python: the rule for making INT8 the default is ≥ 99.5% the same top answer);
2. first-load weight: the bytes a first visit downloads before the page can answer, float and INT8;
3. photo chosen → answer shown, median of --runs, for a small real photo (the first in PHOTOS) and a 12-megapixel JPEG
   made from it: the page on one thread (what GitHub Pages allows) and on two (cross-origin isolated, as a static Space
   can be), against the Voila app (`bearlab app`) on the same photos in the same rounds. Ratios under 1 favour the page.

The model is the built-in one. Photos are only read: nothing is copied out of PHOTOS."""
import argparse, gzip, io, json, os, statistics, sys, tempfile, threading, time
from pathlib import Path
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tests')) # conftest's Chromium and server helpers, test_app's way of driving Voila
os.environ.setdefault('BEARLAB_CACHE', str(ROOT/'.cache'/'bearlab-tests'))
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
APP = '.bearlab-app'

def serve(site:Path, isolate:bool=False)->tuple:
    "`bearlab preview` of `site` in a thread: (url, server)."
    from bearlab.web import preview_server
    srv = preview_server(site, port=0, isolate=isolate)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f'http://127.0.0.1:{srv.server_address[1]}/', srv

def open_page(ctx, url:str):
    "A page of the site at `url`, loaded and ready to answer; its `requested` list holds every URL fetched on the way."
    page = ctx.new_page()
    page.requested = []
    ctx.on('request', lambda r: page.requested.append(r.url))
    page.goto(url)
    page.wait_for_selector(f'{APP}[data-state=ready]', timeout=180_000)
    return page

def choose(page, path:Path)->float:
    "Choose `path` in the page, wait for its answer or its error: the seconds it took."
    done = int(page.locator(APP).get_attribute('data-done') or 0)
    t = time.perf_counter()
    page.locator('input[type=file]').set_input_files(str(path))
    page.wait_for_function(f"+(document.querySelector('{APP}').dataset.done || 0) > {done}", timeout=120_000)
    return time.perf_counter() - t

def page_answer(page)->tuple:
    a = page.locator('.bearlab-answer')
    return a.get_attribute('data-label'), json.loads(a.get_attribute('data-probs') or '{}')

def agreement(page, photos:list, want:list)->tuple:
    "(photos whose top answer is Python's, the largest probability difference, photos the page couldn't read)."
    same, worst, failed = 0, 0., []
    for f, (label, probs) in zip(photos, want):
        choose(page, f)
        got, got_probs = page_answer(page)
        if got is None: failed.append(f.name); continue
        same += got == label
        worst = max(worst, max(abs(got_probs[k] - v) for k, v in probs.items()))
    return same, worst, failed

def first_load(page, site:Path)->tuple:
    "(bytes, gzipped bytes) of the site's files the page fetched before it could answer, each counted once."
    files = {u.split('?')[0].split('/', 3)[3] or 'index.html' for u in page.requested if u.startswith('http')}
    sizes = [(site/f).read_bytes() for f in sorted(files) if (site/f).is_file()]
    assert any(f.endswith('.wasm') for f in files) and 'model.onnx' in files, files
    return sum(map(len, sizes)), sum(len(gzip.compress(b, 6)) for b in sizes)

def twelve_mp(src:Path, dest:Path)->Path:
    "A 12-megapixel JPEG (4000×3000) of `src`, upscaled, with a phone sensor's noise."
    a = np.asarray(Image.open(src).convert('RGB').resize((4000, 3000), Image.BICUBIC), dtype=np.int16)
    a += np.random.default_rng(0).normal(0, 6, a.shape).astype(np.int16)
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(dest, quality=92)
    return dest

def voila(tmp:Path)->tuple:
    "`bearlab app` on a free port, as `make app` starts it: (url, process)."
    from conftest import free_port, start_server
    port = free_port()
    url = f'http://127.0.0.1:{port}/'
    return url, start_server([str(ROOT/'.venv'/'bin'/'bearlab'), 'app', '--port', str(port)], url, tmp/'voila.log')

def timings(pages:dict, photos:dict, runs:int)->dict:
    "{(photo, page): [seconds]}: each photo in each page once a round, so the machine's drift touches all alike."
    from test_app import upload
    ts = {}
    for r in range(runs + 1):
        for pname, photo in photos.items():
            for name, page in pages.items():
                t = upload(page, photo) if name == 'Voila app' else choose(page, photo)
                if r: ts.setdefault((pname, name), []).append(t) # round 0 warms everything up
    return ts

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('photos', nargs='?', default=str(ROOT.parent/'shared'/'data'/'realbears'))
    ap.add_argument('--runs', type=int, default=7)
    ap.add_argument('--time-only', action='store_true', help='skip agreement and first-load weight (part 3 only)')
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from conftest import CHROMIUM, CHROMIUM_ARGS, stop_server
    from test_app import open_app
    from bearlab.files import image_files
    from bearlab.inference import Classifier, default_bundle
    from bearlab.web import export_web
    photos = sorted(image_files(a.photos)) # as training lists them
    if not photos: sys.exit(f'No photos in {a.photos}: give a folder of photos (e.g. ../shared/data/realbears).')
    tmp = Path(tempfile.mkdtemp())
    sites = {'float': export_web(tmp/'float'), 'INT8': export_web(tmp/'int8', quantize=True)}
    clf = Classifier.load(default_bundle())
    want = [] if a.time_only else [(p.label if p.in_domain else 'not a bear', p.probs) for p in map(clf.predict, photos)]
    big = twelve_mp(photos[0], tmp/'12mp.jpg')
    servers, vproc = {k: serve(s) for k, s in sites.items()}, None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            if not a.time_only: print(f'agreement with Classifier.predict on {len(photos)} photos in {a.photos}:')
            loads = {}
            for kind, (url, _) in ([] if a.time_only else servers.items()):
                page = open_page(browser.new_context(), url)
                loads[kind] = first_load(page, sites[kind])
                same, worst, failed = agreement(page, photos, want)
                print(f'  {kind:5} top answer the same on {same}/{len(photos)} ({same/len(photos):.2%}), '
                      f'largest probability difference {worst:.2g}' + (f'; unread: {failed}' if failed else ''))
            if loads:
                print('first load (the files a first visit downloads before it can answer, each once):')
                for kind, (n, gz) in loads.items(): print(f'  {kind:5} {n:>12,} bytes ({gz:,} gzipped)')
                print(f'  INT8/float: {loads["INT8"][0]/loads["float"][0]:.2f}×')
            iso_url, iso = serve(sites['float'], isolate=True)
            vurl, vproc = voila(tmp)
            vpage = browser.new_context().new_page()
            open_app(vpage, vurl)
            pages = {'page, 1 thread': open_page(browser.new_context(), servers['float'][0]),
                     'page, 2 threads': open_page(browser.new_context(), iso_url + '?threads=2'), 'Voila app': vpage}
            assert pages['page, 2 threads'].locator(APP).get_attribute('data-threads') == '2'
            small = Image.open(photos[0]).size
            shots = {f'small photo ({small[0]}×{small[1]} JPEG)': photos[0], '12-megapixel JPEG (4000×3000)': big}
            ts = {k: statistics.median(v) for k, v in timings(pages, shots, a.runs).items()}
            print(f'photo chosen → answer shown, median of {a.runs} (headless Chromium, float model):')
            for s in shots:
                one, two, app = (ts[s, k] for k in pages)
                print(f'  {s}: page {one:.3f} s (1 thread), {two:.3f} s (2 threads); Voila app {app:.3f} s')
                print(f'    page/Voila: {one/app:.2f}× on 1 thread, {two/app:.2f}× on 2; 2 threads/1: {two/one:.2f}×')
        finally:
            browser.close()
            if vproc: stop_server(vproc)

if __name__ == '__main__': main()
