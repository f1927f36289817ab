"""bytes → prediction: bearlab's `Classifier` against the floor, against fastai's `predict`, and against torch.

The floor: decoding the JPEG at reduced scale plus one ONNX Runtime forward pass of the same model on an already prepared
input. Everything in between (resizing to the model's input, normalizing, reading the answer) counts against bearlab. Two cases, as in production: a user's ResNet-18 `export.pkl` on a
22-megapixel phone photo, and the built-in model (`Classifier.default()`) on a small photo.

    .venv/bin/python bench/latency.py [--repeats 15] [--export path/to/export.pkl]
    .venv/bin/python bench/latency.py --photos ../shared/data/realbears   # the built-in model on real photos

The small photo's overhead is mostly the resize that fastai's pixels need: the run ends by timing Pillow's resize against
ONNX Runtime's own, which is slower here and gives other pixels.

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

def small_photo(size=(640, 427))->bytes:
    "A real photo (scikit-image's Chelsea) as a small JPEG, as a web page would send it."
    from skimage import data as skdata
    b = io.BytesIO(); Image.fromarray(skdata.chelsea()).resize(size).save(b, 'JPEG', quality=90); return b.getvalue()

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

def interleaved(fs:dict, n:int)->dict:
    "Time each function in `fs` once a round for `n` rounds, so the machine's drift touches them all alike."
    for f in fs.values(): f() # warm
    ts = {k: [] for k in fs}
    for _ in range(n):
        for k, f in fs.items():
            t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
    return ts

def case(title:str, clf, data:bytes, repeats:int, fa=None):
    "Time `clf.predict(data)` against the floor, torch, and fastai's `predict` when `fa` is given."
    from bearlab.inference import Classifier
    from bearlab.runtime import OnnxModel, threads
    ours = clf.predict(data) # exports the model to ONNX, once (cached)
    by_torch = Classifier(clf.model, clf.vocab, clf.pre, clf.outputs, clf.domain, clf.output_names, runtime='torch')
    img = clf.read(data)
    x = clf.pre.array(img)[None]
    def decode():
        im = Image.open(io.BytesIO(data)); im.draft('RGB', (clf.pre.draft,)*2); im.load()
    def torch_forward():
        with torch.inference_mode(): clf.model(torch.from_numpy(x))
    n_fa = max(3, repeats//3)
    src, box = clf.pre._source(img)
    def resize(): src.resize(clf.pre.size[::-1], Image.BILINEAR, box=box) # fastai's pixels, on one thread
    ts = interleaved(dict(ours=lambda: clf.predict(data), decode=decode, forward=lambda: clf.runner(x), resize=resize,
                          whole=lambda: clf.pre.array(img, bands=1), bands=lambda: clf.pre.array(img)), repeats)
    med = {k: statistics.median(v) for k, v in ts.items()}
    t_ours, t_dec, t_fwd, t_pre1, t_pre = med['ours'], med['decode'], med['forward'], med['whole'], med['bands']
    per_round = statistics.median(o/(d + f) for o, d, f in zip(ts['ours'], ts['decode'], ts['forward']))
    t_torch, t_tfwd = median_time(lambda: by_torch.predict(data), repeats), median_time(torch_forward, repeats)
    floor = t_dec + t_fwd
    print(f"\n## {title}: {Image.open(io.BytesIO(data)).size} JPEG, {len(data)/1e6:.2f} MB; runtime: {type(clf.runner).__name__}")
    print(f"bearlab Classifier.predict(bytes), ONNX Runtime: {t_ours*1000:7.1f} ms (median of {repeats} rounds, "
          "each timing predict, decode and forward in turn)")
    print(f"bearlab Classifier.predict(bytes), torch:        {t_torch*1000:7.1f} ms")
    print(f"floor = reduced-scale decode {t_dec*1000:.1f} ms + ONNX Runtime forward {t_fwd*1000:.1f} ms = {floor*1000:.1f} ms "
          f"(torch's bare forward: {t_tfwd*1000:.1f} ms)")
    print(f"resize + normalize: {t_pre1*1000:.2f} ms whole, {t_pre*1000:.2f} ms in bands on {threads()} threads")
    print(f"Pillow's resize alone, one thread (the pixels fastai computes; not in the floor): {med['resize']*1000:.2f} ms "
          f"= {med['resize']/floor:.1%} of the floor")
    print(f"bearlab / floor = {t_ours/floor:.3f}   (target: <= 1.15); the median of each round's ratio: {per_round:.3f}")
    print(f"bearlab / bearlab on torch = {t_ours/t_torch:.3f}")
    if fa is not None:
        from fastai.vision.all import PILImage
        t_fa = median_time(lambda: fa.predict(PILImage.create(data)), n_fa)
        fa_probs = fa.predict(PILImage.create(data))[2]
        diff = max(abs(ours.probs[str(v)] - float(p)) for v, p in zip(fa.dls.vocab, fa_probs))
        print(f"fastai load_learner().predict(PILImage.create(bytes)): {t_fa*1000:7.1f} ms (median of {n_fa})")
        print(f"bearlab / fastai = {t_ours/t_fa:.3f}   (fastai is {t_fa/t_ours:.1f}x slower)")
        print(f"largest probability difference from fastai's predict: {diff:.5f} (target: <= 0.002)")
    assert isinstance(clf.runner, OnnxModel), 'the model did not export to ONNX'

def real_photos(folder:Path, rounds:int=5, most:int=450):
    "The built-in model on real photos in `folder` (one subfolder per class): each photo's ratio to its own floor."
    from bearlab.inference import Classifier
    clf = Classifier.default()
    from bearlab.files import image_files
    files = sorted(image_files(folder))[:most] # as training sees them: not the quarantine's or the trash's
    ratios, times, right = [], [], 0
    for f in files:
        data = f.read_bytes()
        pred = clf.predict(data)
        right += pred.label == f.parent.name
        x = clf.array(data)[None]
        def decode():
            im = Image.open(io.BytesIO(data)); im.draft('RGB', (clf.pre.draft,)*2); im.load()
        ts = interleaved(dict(ours=lambda: clf.predict(data), decode=decode, forward=lambda: clf.runner(x)), rounds)
        ratios.append(statistics.median(o/(d + fw) for o, d, fw in zip(ts['ours'], ts['decode'], ts['forward'])))
        times.append(statistics.median(ts['ours']))
    q = statistics.quantiles(ratios, n=10)
    print(f"\n## the built-in model on {len(files)} real photos in {folder.name}/ ({rounds} rounds each)")
    print(f"Classifier.predict(bytes): median {statistics.median(times)*1000:.1f} ms a photo")
    print(f"bearlab / floor, each photo against its own: median {statistics.median(ratios):.3f}, "
          f"90% of photos under {q[-1]:.3f}   (target: <= 1.15)")
    print(f"answers that match the photo's folder: {right}/{len(files)}")

def resizers(repeats:int=100):
    "The small photo's resize by Pillow (the pixels fastai computes) against ONNX Runtime's own antialiased Resize."
    import onnxruntime as ort
    from onnx import helper, TensorProto
    from bearlab.runtime import threads
    img = Image.open(io.BytesIO(small_photo())).convert('RGB')
    size = (256, 256) # the built-in model's squish, before its central crop
    node = helper.make_node('Resize', ['x', '', '', 'sizes'], ['y'], mode='linear', antialias=1)
    graph = helper.make_graph([node], 'resize', [helper.make_tensor_value_info('x', TensorProto.UINT8, ['n', 'h', 'w', 3])],
        [helper.make_tensor_value_info('y', TensorProto.UINT8, None)],
        [helper.make_tensor('sizes', TensorProto.INT64, [4], [1, *size, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)], ir_version=8)
    so = ort.SessionOptions(); so.intra_op_num_threads = threads()
    so.add_session_config_entry('session.intra_op.allow_spinning', '0')
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=['CPUExecutionProvider'])
    a = np.asarray(img)[None]
    pil = np.asarray(img.resize(size[::-1], Image.BILINEAR)).astype(int)
    differ = int((np.abs(sess.run(None, {'x': a})[0][0].astype(int) - pil) > 0).sum())
    ts = interleaved(dict(pillow=lambda: img.resize(size[::-1], Image.BILINEAR), onnxruntime=lambda: sess.run(None, {'x': a})),
                     repeats)
    print(f"\n## resizing the {img.size} photo to {size}, antialiased bilinear (median of {repeats})")
    print(f"Pillow, one thread: {statistics.median(ts['pillow'])*1000:.2f} ms; ONNX Runtime's Resize (uint8, {threads()} threads): "
          f"{statistics.median(ts['onnxruntime'])*1000:.2f} ms, {differ} of {pil.size} values differ from Pillow's")

def main(repeats:int=15, export:str|None=None, photos:str|None=None):
    if photos: return real_photos(Path(photos))
    from fastai.vision.all import load_learner
    from bearlab.inference import Classifier
    from bearlab.runtime import threads
    pkl = Path(export) if export else make_export(Path(tempfile.mkdtemp()))
    print(f"export: {pkl}; torch threads: {torch.get_num_threads()}, ONNX Runtime threads: {threads()}")
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        fa, clf = load_learner(pkl), Classifier.load(pkl)
    case("a user's ResNet-18 export.pkl, 22-megapixel photo", clf, big_photo(), repeats, fa)
    case("the built-in model (EfficientNet-Lite0), small photo", Classifier.default(), small_photo(), repeats)
    resizers()

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--export', help="a fastai export.pkl to time (default: a resnet18 export made here)")
    p.add_argument('--photos', help="instead: time the built-in model on the real photos in this folder (a folder per class)")
    a = p.parse_args()
    main(a.repeats, a.export, a.photos)
