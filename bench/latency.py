"""bytes → prediction for a big phone photo: bearlab's `Classifier` against fastai's `predict`, and against the floor.

The floor is what no implementation can avoid: decoding the JPEG at reduced scale plus the model's bare forward pass
on an already prepared tensor. Run: `.venv/bin/python bench/latency.py [--repeats 15] [--export path/to/export.pkl]`.
Without --export it trains nothing: it exports a resnet18 learner (random weights: timing doesn't depend on them)."""
import argparse, io, statistics, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
from PIL import Image

def big_photo(w=5760, h=3840)->bytes:
    "A 22-megapixel JPEG with a photo's texture (Chelsea, upscaled, with sensor-like noise)."
    from skimage import data as skdata
    img = Image.fromarray(skdata.chelsea()).resize((w, h), Image.BICUBIC)
    a = np.asarray(img, dtype=np.int16) + np.random.default_rng(0).integers(-12, 12, (h, w, 3), dtype=np.int16)
    b = io.BytesIO(); Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(b, 'JPEG', quality=92)
    return b.getvalue()

def make_export(dest:Path)->Path:
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, resnet18
    d = dest/'data'
    for c, col in (('a', (200, 40, 40)), ('b', (40, 40, 200))):
        (d/c).mkdir(parents=True)
        for i in range(4): Image.new('RGB', (64, 48), col).save(d/c/f'{i}.jpg')
    dls = ImageDataLoaders.from_folder(d, valid_pct=0.25, seed=0, item_tfms=Resize(224), bs=2, num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    learn.export(dest/'export.pkl')
    return dest/'export.pkl'

def median_time(f, n:int)->float:
    f() # warm
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def main(repeats:int=15, export:str|None=None):
    from fastai.vision.all import PILImage, load_learner
    from bearlab.inference import Classifier
    tmp = Path(tempfile.mkdtemp())
    pkl = Path(export) if export else make_export(tmp)
    data = big_photo()
    print(f"photo: {Image.open(io.BytesIO(data)).size} ({len(data)/1e6:.1f} MB JPEG), export: {pkl}, torch threads: {torch.get_num_threads()}")
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        fa, clf = load_learner(pkl), Classifier.load(pkl)
    fa_probs = fa.predict(PILImage.create(data))[2]
    ours = clf.predict(data)
    diff = max(abs(ours.probs[str(v)] - float(p)) for v, p in zip(fa.dls.vocab, fa_probs))
    x = clf.tensor(data)[None]
    def decode():
        img = Image.open(io.BytesIO(data)); img.draft('RGB', (clf.pre.draft,)*2); img.load()
    def forward():
        with torch.inference_mode(): clf.model(x)
    t_fa = median_time(lambda: fa.predict(PILImage.create(data)), max(3, repeats//3))
    t_ours = median_time(lambda: clf.predict(data), repeats)
    t_dec, t_fwd = median_time(decode, repeats), median_time(forward, repeats)
    floor = t_dec + t_fwd
    print(f"fastai load_learner().predict(PILImage.create(bytes)): {t_fa*1000:7.1f} ms (median of {max(3, repeats//3)})")
    print(f"bearlab Classifier.load().predict(bytes):             {t_ours*1000:7.1f} ms (median of {repeats})")
    print(f"floor = reduced-scale decode {t_dec*1000:.1f} ms + bare forward {t_fwd*1000:.1f} ms = {floor*1000:.1f} ms")
    print(f"bearlab / fastai = {t_ours/t_fa:.3f}   (fastai is {t_fa/t_ours:.1f}x slower)")
    print(f"bearlab / floor  = {t_ours/floor:.3f}   (target: <= 1.1)")
    print(f"largest probability difference from fastai's predict: {diff:.4f} (target: <= 0.02)")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--export', help="a fastai export.pkl to time (default: a resnet18 export made here)")
    a = p.parse_args()
    main(a.repeats, a.export)
