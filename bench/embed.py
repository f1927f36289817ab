"""The cleaner's embeddings from scratch: `scan_images` on real photos with an empty cache, torch against ONNX Runtime.

Every photo is hashed, decoded at reduced scale, measured and embedded by EfficientNet-Lite0 (`Lite0Embedder`), as
`label_issues` does the first time it sees a dataset. Run on your own photos (a folder of class folders):

    .venv/bin/python bench/embed.py [PHOTOS] [--n 400] [--runtimes torch onnx]
"""
import argparse, inspect, tempfile, time, warnings
from pathlib import Path
import numpy as np
from bearlab.files import image_files

def photos(root:str|None, n:int)->list:
    if root is None: # `make bench` runs every script bare: a generated practice dataset stands in, and says so
        from bearlab.data import practice_dataset
        print('WARNING: no photos given, so generated practice photos are used: their numbers say little about real '
              'photos.\n         Run `python bench/embed.py ../shared/data/realbears` (or your own photos).\n')
        root = practice_dataset(Path(tempfile.mkdtemp())/'practice', n=60)
    fs = list(image_files(root)) # as training sees them: not the quarantine's or the trash's
    return fs[::max(1, len(fs)//n)][:n]

def run(files:list, runtime:str)->tuple:
    "Seconds to scan `files` from an empty cache, and the embeddings."
    from bearlab.issues import scan_images, Lite0Embedder
    kw = {'runtime': runtime} if 'runtime' in inspect.signature(Lite0Embedder).parameters else {}
    if runtime != 'torch' and not kw: return None, None # this bearlab embeds with torch only
    emb = Lite0Embedder(**kw)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        _, X = scan_images(files, emb, cache, progress=False)
        return time.perf_counter() - t, X

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('photos', nargs='?'); ap.add_argument('--n', type=int, default=400)
    ap.add_argument('--runtimes', nargs='+', default=['torch', 'onnx'])
    a = ap.parse_args()
    import torch
    files = photos(a.photos, a.n)
    run(files[:8], 'torch') # warm up: imports, model weights read from disk, the ONNX export made once and cached
    warnings.simplefilter('ignore')
    res = {r: run(files, r) for r in a.runtimes}
    print(f"{len(files)} photos from {a.photos or 'a generated practice dataset'}, torch threads: {torch.get_num_threads()}")
    for r, (t, X) in res.items():
        if t is None: print(f"{r:>5}: not available in this bearlab"); continue
        print(f"{r:>5}: {t:6.1f} s from scratch, {len(files)/t:5.1f} photos/s")
    if all(res[r][0] for r in ('torch', 'onnx') if r in res) and {'torch', 'onnx'} <= set(res):
        (tt, Xt), (to, Xo) = res['torch'], res['onnx']
        print(f"onnx / torch time = {to/tt:.2f}; largest embedding difference {np.abs(Xt - Xo).max():.2g} "
              f"(embeddings up to {np.abs(Xt).max():.1f})")

if __name__ == '__main__': main()
