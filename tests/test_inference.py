"Classifier and open_image on every kind of input a person might upload: bad files, every image mode, EXIF rotation."
import io, struct, zlib, warnings
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from bearlab.images import *
from bearlab.inference import Classifier, Preprocess, Prediction, export_bundle
from bearlab.runtime import OnnxModel
from bearlab.models import efficientnet_lite0

@pytest.fixture(scope='module')
def clf(): return Classifier.default()

def encode(img, fmt, **kw):
    b = io.BytesIO(); img.save(b, fmt, **kw); return b.getvalue()

def photo(w=320, h=240, seed=0):
    "A textured RGB test photo: left half reddish, right half bluish."
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    a[:, :w//2, 0] += 180; a[:, w//2:, 2] += 180
    return Image.fromarray(a)

def png_claiming(w, h)->bytes:
    "A tiny PNG whose header claims `w`×`h` pixels: a decompression bomb's calling card."
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\x00' * 64)) + chunk(b'IEND', b''))

# --- bad input: a named error with a sentence, never a crash ---
@pytest.mark.parametrize('data,err,words', [
    (b'', EmptyImageError, 'empty'),
    (b'I am a text file named bear.jpg', NotAnImageError, 'looks like text'),
    (b'<!DOCTYPE html><html><body>404</body></html>', NotAnImageError, 'web page'),
    (b'%PDF-1.4 ...', NotAnImageError, 'PDF'),
    (png_claiming(100_000, 100_000), ImageTooLargeError, 'too large'),
    (png_claiming(12_000, 10_000), ImageTooLargeError, 'limit is 100 megapixels'),
])
def test_bad_bytes(clf, data, err, words):
    with pytest.raises(err, match=words): clf.predict(data)

@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'WEBP', 'GIF'])
def test_truncated(clf, fmt):
    data = encode(photo(), fmt)
    with pytest.raises(ImageError) as e: clf.predict(data[:len(data)//2])
    assert isinstance(e.value, (TruncatedImageError, NotAnImageError)), e.value
    assert 'Traceback' not in str(e.value)

def test_truncated_jpeg_says_cut_off(clf):
    with pytest.raises(TruncatedImageError, match='cut off'): clf.predict(encode(photo(), 'JPEG')[:5000])

def test_pixel_limit_is_configurable():
    small = Classifier(efficientnet_lite0(), ['a'], Preprocess(), max_pixels=10_000)
    with pytest.raises(ImageTooLargeError): small.predict(encode(photo(), 'PNG'))

def test_missing_file_and_wrong_type(clf, tmp_path):
    with pytest.raises(ImageError, match='no file at'): clf.predict(tmp_path/'nope.jpg')
    with pytest.raises(ImageError, match="Can't read a photo from a list"): clf.predict([1, 2])

def test_keeps_working_after_errors(clf):
    for bad in (b'', b'junk', encode(photo(), 'JPEG')[:3000]):
        with pytest.raises(ImageError): clf.predict(bad)
    assert clf.predict(encode(photo(), 'JPEG')).label in clf.vocab

def test_animated_gif_first_frame():
    frames = [Image.new('RGB', (32, 32), c) for c in ('red', 'lime', 'blue')]
    data = encode(frames[0], 'GIF', save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert open_image(data).getpixel((5, 5)) == (255, 0, 0)

# --- every source type and image mode ---
def test_sources(clf, tmp_path):
    img = photo(); p = tmp_path/'x.png'; img.save(p)
    preds = [clf.predict(s) for s in (encode(img, 'PNG'), bytearray(encode(img, 'PNG')), memoryview(encode(img, 'PNG')),
                                       p, str(p), open(p, 'rb'), img)]
    assert all(pr == preds[0] for pr in preds)

MODES = [('1', 'PNG'), ('L', 'PNG'), ('L', 'JPEG'), ('LA', 'PNG'), ('P', 'PNG'), ('P', 'GIF'), ('RGB', 'PNG'),
         ('RGBA', 'PNG'), ('RGBA', 'WEBP'), ('CMYK', 'JPEG'), ('CMYK', 'TIFF'), ('I;16', 'PNG'), ('I', 'TIFF'),
         ('F', 'TIFF'), ('RGB', 'BMP'), ('RGB', 'TIFF'), ('YCbCr', 'JPEG')]

@pytest.mark.parametrize('mode,fmt', MODES)
def test_every_mode(clf, mode, fmt):
    base = photo()
    if mode in ('I;16', 'I'): img = Image.fromarray((np.asarray(base.convert('L'), dtype=np.uint16) * 257).astype(np.uint16 if mode == 'I;16' else np.int32))
    elif mode == 'F': img = base.convert('F')
    else: img = base.convert(mode)
    out = open_image(encode(img, fmt))
    assert out.mode == 'RGB' and out.size == base.size
    if mode not in ('1', 'P'): # 16-bit and float keep their brightness, not saturated to white
        assert abs(np.asarray(out.convert('L'), dtype=float).mean() - np.asarray(base.convert('L'), dtype=float).mean()) < 12
    pred = clf.predict(encode(img, fmt))
    assert pred.label in clf.vocab and abs(sum(pred.probs.values()) - 1) < 1e-5

def test_transparent_is_white():
    img = Image.new('RGBA', (10, 10), (0, 0, 0, 0))
    assert open_image(encode(img, 'PNG')).getpixel((3, 3)) == (255, 255, 255)
    p = Image.new('P', (10, 10), 0); p.putpalette([0, 0, 0] * 256); p.info['transparency'] = 0
    assert open_image(encode(p, 'PNG', transparency=0)).getpixel((3, 3)) == (255, 255, 255)

# --- EXIF orientation: all eight ---
TO_STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}

@pytest.mark.parametrize('orientation', range(1, 9))
@pytest.mark.parametrize('draft', [None, 64])
def test_exif_orientation(orientation, draft):
    upright = photo(400, 200)
    stored = upright if TO_STORED[orientation] is None else upright.transpose(TO_STORED[orientation])
    exif = Image.Exif(); exif[0x0112] = orientation
    out = open_image(encode(stored, 'JPEG', exif=exif.tobytes(), quality=95), draft=draft)
    assert out.width > out.height
    a = np.asarray(out, dtype=float)
    left, right = a[:, :a.shape[1]//3], a[:, -a.shape[1]//3:]
    assert left[..., 0].mean() > left[..., 2].mean() + 80 and right[..., 2].mean() > right[..., 0].mean() + 80

def test_exif_rotation_changes_the_prediction_input(clf):
    "A sideways phone photo is classified upright: the same tensor as the upright photo."
    upright = photo(300, 200)
    exif = Image.Exif(); exif[0x0112] = 6
    sideways = encode(upright.transpose(Image.Transpose.ROTATE_90), 'PNG', exif=exif.tobytes())
    assert torch.allclose(clf.tensor(sideways), clf.tensor(encode(upright, 'PNG')), atol=1e-6)

# --- the default model's bear classes: a photo the model itself sees as a bear ---
def model_made(cls_idx:int, steps:int=40)->bytes:
    "A 256×256 PNG optimized until EfficientNet-Lite0 calls it ImageNet class `cls_idx` (no bear photos can ship)."
    torch.manual_seed(0)
    m = Classifier.default().model
    x = torch.full((1, 3, 256, 256), 0.5).add_(torch.randn(1, 3, 256, 256)*0.05).requires_grad_()
    opt = torch.optim.Adam([x], lr=0.03)
    for _ in range(steps):
        logits = m((x[:, :, 16:240, 16:240].clamp(0, 1) - 0.5)/0.5)
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([cls_idx]))
        opt.zero_grad(); loss.backward(); opt.step()
    a = (x.detach()[0].clamp(0, 1).permute(1, 2, 0).numpy()*255).round().astype(np.uint8)
    return encode(Image.fromarray(a), 'PNG')

@pytest.mark.parametrize('idx,label', [(294, 'grizzly'), (295, 'black'), (850, 'teddy')])
def test_default_reads_imagenet_bears(clf, idx, label):
    pred = clf.predict(model_made(idx))
    assert pred.label == label and pred.in_domain and pred.looks_like is None
    assert list(pred.probs) [0] == label and abs(sum(pred.probs.values()) - 1) < 1e-5

def test_ice_bear_is_in_domain(clf):
    assert clf.predict(model_made(296)).in_domain

def test_cat_is_out_of_domain(clf):
    from skimage import data as skdata
    pred = clf.predict(encode(Image.fromarray(skdata.chelsea()), 'JPEG'))
    assert not pred.in_domain and pred.looks_like == 'Egyptian cat' and "doesn't look like a bear" in pred.message

# --- agreement with fastai's own predict, for each way fastai sizes images ---
@pytest.fixture(scope='module')
def colour_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp('colours')
    for cls, col in (('red', 0), ('blue', 2)):
        (d/cls).mkdir()
        for i in range(6):
            img = photo(90 + 17*i, 60 + 9*i, seed=i)
            a = np.asarray(img).copy(); a[..., col] = 230; Image.fromarray(a).save(d/cls/f'{i}.jpg')
    return d

def _learner(folder, item_tfms):
    from fastai.vision.all import ImageDataLoaders, vision_learner, set_seed
    set_seed(0)
    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.34, seed=0, item_tfms=item_tfms, bs=4, num_workers=0)
    learn = vision_learner(dls, efficientnet_lite0, n_out=2)
    learn.fit(1, 1e-2)
    return learn

def _tfms():
    from fastai.vision.all import Resize, RandomResizedCrop, ResizeMethod, PadMode
    return {'crop': Resize(48), 'squish': Resize(48, ResizeMethod.Squish), 'pad': Resize((40, 56), ResizeMethod.Pad, PadMode.Zeros),
            'rrc': RandomResizedCrop(48, min_scale=0.5)}

@pytest.mark.slow
@pytest.mark.parametrize('kind', ['crop', 'squish', 'pad', 'rrc'])
def test_agrees_with_fastai_predict(colour_folder, tmp_path, kind):
    from fastai.vision.all import PILImage, load_learner
    learn = _learner(colour_folder, _tfms()[kind])
    learn.export(tmp_path/'export.pkl')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        ours = Classifier.load(tmp_path/'export.pkl')
    assert any('pickle' in str(x.message) for x in w)
    fa = load_learner(tmp_path/'export.pkl')
    bundle = Classifier.load(export_bundle(learn, tmp_path/'bundle'))
    by_torch = Classifier(ours.model, ours.vocab, ours.pre, runtime='torch')
    assert isinstance(ours.runner, OnnxModel) and isinstance(bundle.runner, OnnxModel) and bundle.model is None
    for f in sorted(colour_folder.rglob('*.jpg'))[::3]:
        _, _, probs = fa.predict(PILImage.create(f))
        p = ours.predict(f.read_bytes())
        assert max(abs(p.probs[v] - float(pr)) for v, pr in zip(fa.dls.vocab, probs)) < 0.002
        assert max(abs(p.probs[v] - q) for v, q in by_torch.predict(f).probs.items()) < 1e-4
        assert bundle.predict(f) == ours.predict(f)

def test_fresh_process_loads_bundle_without_fastai_pickle(colour_folder, tmp_path):
    import subprocess, sys
    learn = _learner(colour_folder, _tfms()['crop'])
    export_bundle(learn, tmp_path/'b')
    f = sorted(colour_folder.rglob('*.jpg'))[0]
    code = ("import sys, json; from bearlab.inference import Classifier;"
            f"print(json.dumps(Classifier.load({str(tmp_path/'b')!r}).predict({str(f)!r}).to_dict()))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import json
    assert json.loads(out.stdout.strip().splitlines()[-1]) == Classifier.load(tmp_path/'b').predict(f).to_dict()

def test_load_errors(tmp_path):
    from bearlab.inference import ModelLoadError
    (tmp_path/'junk.pkl').write_bytes(b'not a pickle')
    with pytest.raises(ModelLoadError, match='not a fastai export'): Classifier.load(tmp_path/'junk.pkl')
    with pytest.raises(ModelLoadError, match='no model at'): Classifier.load(tmp_path/'missing.pkl')
    (tmp_path/'b').mkdir(); (tmp_path/'b'/'bundle.json').write_text('{"format": "other"}')
    with pytest.raises(ModelLoadError, match='not a bearlab bundle'): Classifier.load(tmp_path/'b')

@pytest.mark.slow
def test_bear_pipeline_export_agrees_with_learner(tmp_path):
    "The lesson's own pipeline (bear_dataloaders + bear_learner): export.pkl and bundle predict as `learn.predict` does."
    from bearlab.files import image_files
    from bearlab.data import bear_dataloaders, bear_learner, practice_dataset
    from fastai.vision.all import set_seed
    set_seed(0)
    path = practice_dataset(tmp_path/'bears', n=8, size=96)
    learn = bear_learner(bear_dataloaders(path, size=64, bs=8, num_workers=0))
    learn.fit(1, 1e-3)
    learn.export(tmp_path/'export.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ours = Classifier.load(tmp_path/'export.pkl')
    bundle = Classifier.load(export_bundle(learn, tmp_path/'bundle'))
    import json
    assert json.loads((tmp_path/'bundle'/'bundle.json').read_text())['head'] == 'linear'  # bear_learner's LinearHead
    assert ours.pre.method == 'squish' and ours.pre.mean == (0.5, 0.5, 0.5)
    by_torch = Classifier(ours.model, ours.vocab, ours.pre, runtime='torch')
    assert isinstance(ours.runner, OnnxModel) and isinstance(bundle.runner, OnnxModel)
    for f in image_files(path)[::5]:
        _, _, probs = learn.predict(f)
        p = ours.predict(f)
        assert max(abs(p.probs[v] - float(pr)) for v, pr in zip(learn.dls.vocab, probs)) < 0.002
        assert max(abs(p.probs[v] - q) for v, q in by_torch.predict(f).probs.items()) < 1e-4
        assert bundle.predict(f) == p

# --- resizing in bands on parallel threads gives exactly the pixels of one whole resize ---
def _pixels(pre, x): return np.rint((x.transpose(1, 2, 0)*pre.std + pre.mean)*255).astype(np.uint8)

@pytest.mark.parametrize('pre', [Preprocess(224, 'squish', 224/256, (0.5,)*3, (0.5,)*3), Preprocess(224), Preprocess(224, 'pad'),
                                 Preprocess((160, 224), 'squish', 0.9), Preprocess((192, 256), 'squish'), Preprocess(256)])
def test_bands_give_the_pixels_of_one_resize(pre):
    "For every fit, most photos split into bands (counted), and every photo's pixels equal one whole resize."
    from bearlab.inference import _bands
    rng, split = np.random.default_rng(0), 0
    for _ in range(40):
        w, h = map(int, rng.integers(48, 1100, 2))
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        whole = np.asarray(pre.resize(img))
        src, box = pre._source(img)
        for n in (2, 3, 4):
            split += _bands(src.size, pre.size[::-1], box, n) is not None
            assert np.array_equal(_pixels(pre, pre.array(img, bands=n)), whole), (w, h, n)
    assert split >= 40, f'only {split} of 120 resizes were split: the test would check nothing'

def test_bands_on_any_box():
    "Straight from `_bands`: random photo sizes, output sizes and boxes; where it splits, the bands are exact."
    from bearlab.inference import _bands
    rng, split = np.random.default_rng(1), 0
    for _ in range(150):
        W, H = map(int, rng.integers(40, 1000, 2))
        w, h = map(int, rng.choice([64, 128, 160, 224, 256, 299], 2))
        l, t = float(np.float32(rng.uniform(0, W/4))), float(np.float32(rng.uniform(0, H/4)))
        box = (0, 0, W, H) if rng.random() < .5 else (l, t, W - l, H - t)
        img = Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        whole = np.asarray(img.resize((w, h), Image.BILINEAR, box=box))
        for n in (2, 3):
            bands = _bands((W, H), (w, h), box, n)
            if bands is None: continue
            split += 1
            parts = [np.asarray(img.crop((0, y0, W, y1)).resize((w, rows.stop - rows.start), Image.BILINEAR, box=b))
                     for rows, (y0, y1), b in bands]
            assert np.array_equal(np.concatenate(parts), whole), (W, H, w, h, box, n)
    assert split > 50
