"""Fine-tuning on real photos: bearlab's recipe, fastbook's recipe, and the built-in model with no training, same photos, same process.

    python bench/finetune.py DATASET [--epochs 4] [--folds 2] [--only fastbook|bearlab|builtin]
    python bench/finetune.py DATASET --per-class 3 5 10 20 50 all     # how many photos do I need?
    python bench/finetune.py DATASET --only bearlab --body-from 0      # the recipe, made to try the body

DATASET is a folder of class folders (e.g. ../shared/data/realbears, or photos you downloaded with `search_images` +
`download_images`). It is split in two halves by a stable hash of each photo's content; each recipe trains on one half and
is scored on the other, then (with --folds 2, the default) the other way round, and the two scores are averaged.
- fastbook: the book's recipe as chapter 2 states it: DataBlock(ImageBlock, CategoryBlock, RandomSplitter(0.2, seed=42),
  parent_label, item_tfms=RandomResizedCrop(224, min_scale=0.5), batch_tfms=aug_transforms()), vision_learner(dls,
  efficientnet_lite0, metrics=error_rate), fine_tune(2) in the book, fine_tune(4) here (--epochs).
- bearlab: the bears tutorial's recipe: bear_learner(bear_dataloaders(path)).fit_recipe(): the head, started from
  ImageNet's classifier (or a linear probe), trained for one epoch on the frozen body; then the body too where the probe
  says the pretrained features fall short and there are 200 photos a class, kept if clearly better on the validation set.
  Its sentence (which it chose, and why) is printed for each fold.
- builtin: `Classifier.default()`, ImageNet's bear classes read by Lite0, no training (only when the classes are the lesson's).
--per-class trains each recipe on the first N photos of each class of the training half (in the order of their content
hash) and scores it on the whole held-out half: a learning curve. fastbook's recipe gets a batch size its photos can fill
(`bs=min(64, training photos)`): as the book writes it (bs=64, drop_last) it takes no step under 64 training photos.
Without DATASET, generated practice photos are used, with a warning: they are easy, so only the seconds mean much."""
import os, sys, argparse, shutil, tempfile, time, warnings
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # torch's threads sleep rather than spin when a core is busy
from pathlib import Path
import numpy as np, torch
from fastai.vision.all import *
from bearlab.models import efficientnet_lite0, BEAR_CLASSES
from bearlab.inference import Classifier
from bearlab.files import StableSplitter, image_files, file_hash
from bearlab.data import bear_dataloaders, bear_learner, check_dataset, practice_dataset

def halves(src:Path, dest:Path)->tuple:
    "Copy the photos of `src` into `dest/a` and `dest/b` (same class folders), split in two by a stable hash."
    sp = StableSplitter(0.5, salt='bench-heldout')
    for f in image_files(src):
        d = dest/('b' if sp.is_valid(f) else 'a')/f.parent.name
        d.mkdir(parents=True, exist_ok=True); shutil.copy(f, d/f.name)
    return dest/'a', dest/'b'

def subset(train:Path, dest:Path, n:int|None)->Path:
    "The first `n` photos of each class of `train` (all with None), in the order of their content hash, copied to `dest`."
    if n is None: return train
    for c in sorted(p for p in train.iterdir() if p.is_dir()):
        (dest/c.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(image_files(c), key=file_hash)[:n]: shutil.copy(f, dest/c.name/f.name)
    return dest

def heldout_accuracy(learn:Learner, files:L)->float:
    with learn.no_bar(): preds, targs = learn.get_preds(dl=learn.dls.test_dl(files, with_labels=True))
    return (preds.argmax(1) == targs).float().mean().item()

def fastbook(path:Path, epochs:int, bs:int=64)->Learner:
    "fastbook chapter 2's recipe, with the Lite0 weights that work offline."
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=RandomSplitter(0.2, seed=42),
                    get_y=parent_label, item_tfms=RandomResizedCrop(224, min_scale=0.5),
                    batch_tfms=aug_transforms()).dataloaders(path, bs=bs)
    learn = vision_learner(dls, efficientnet_lite0, metrics=error_rate)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(epochs)
    return learn

def bearlab(path:Path, epochs:int, **kwargs)->Learner:
    "The bears tutorial's recipe (`epochs` is fastbook's: bearlab's `fit_recipe` chooses); `kwargs` go to `fit_recipe`."
    learn = bear_learner(bear_dataloaders(path))
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe(**kwargs)
    return learn

def builtin(held:L)->tuple:
    "The built-in model's accuracy on `held` (no training), and its seconds."
    t = time.perf_counter(); clf = Classifier.default()
    acc = np.mean([p.label == f.parent.name for p, f in zip(clf.predict_batch(list(held)), held)])
    return acc, time.perf_counter() - t

def run(recipe, train:Path, held:L, epochs:int, **kwargs)->tuple:
    "Held-out accuracy and seconds of training with `recipe` on `train`."
    set_seed(0)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = recipe(train, epochs, **kwargs)
    secs = time.perf_counter() - t
    if hasattr(learn, 'recipe'): print(f"        bearlab's recipe said: {learn.recipe}", flush=True)
    return heldout_accuracy(learn, held), secs

def compare(names:list, folds:list, epochs:int, **kwargs):
    "Each recipe on each fold: held-out accuracy and seconds, then the means and bearlab's ratios to fastbook."
    res = {n: [] for n in names}
    for i, (train, heldf) in enumerate(folds):
        held = image_files(heldf)
        for n in names:
            acc, secs = builtin(held) if n == 'builtin' else run(RECIPES[n], train, held, epochs,
                                                                 **(kwargs if n == 'bearlab' else {}))
            res[n].append((acc, secs))
            print(f"fold {i+1}  {n:8s} held-out accuracy {acc:6.1%}  {secs:6.1f} s", flush=True)
    print('mean over folds:')
    for n, r in res.items():
        print(f"  {n:8s} held-out accuracy {np.mean([x[0] for x in r]):6.1%}  {np.mean([x[1] for x in r]):6.1f} s")
    if {'fastbook', 'bearlab'} <= set(res):
        (fa, fs), (ba, bs) = [np.mean(res[n], 0) for n in ('fastbook', 'bearlab')]
        print(f"ratio bearlab/fastbook: seconds {bs/fs:.2f}, held-out errors {(1-ba)/max(1-fa, 1e-9):.2f}, "
              f"accuracy {ba-fa:+.1%} points")

def curve(names:list, folds:list, epochs:int, sizes:list, tmp:Path, **kwargs):
    "A learning curve: each recipe trained on the first N photos of each class, scored on the whole held-out half."
    rows = []
    for i, (train, heldf) in enumerate(folds):
        held = image_files(heldf)
        base = builtin(held)[0] if 'builtin' in names else None
        for n in sizes:
            sub = subset(train, tmp/f'fold{i}-{n}', n)
            k = len(image_files(sub))
            row = {'fold': i+1, 'per class': n or 'all', 'photos': k}
            if base is not None: row['builtin'] = base
            for r in [m for m in names if m != 'builtin']:
                # fastbook: a batch its training photos (after the split) can fill; bearlab: `fit_recipe`'s options
                kw = {'bs': min(64, k - int(0.2*k))} if r == 'fastbook' else kwargs
                row[r], row[r + ' s'] = run(RECIPES[r], sub, held, epochs, **kw)
            rows.append(row)
            print(f"fold {i+1}  {n or 'all'} a class ({k} photos): " +
                  '  '.join(f"{r} {row[r]:.1%}" for r in names), flush=True)
    import pandas as pd
    df = pd.DataFrame(rows).groupby('per class', sort=False).mean(numeric_only=True).drop(columns='fold')
    print('held-out accuracy by photos per class (mean over folds; seconds of training):')
    print(df.to_string(float_format=lambda x: f'{x:.3f}'))

RECIPES = {'fastbook': fastbook, 'bearlab': bearlab}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('dataset', nargs='?'); p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--folds', type=int, choices=[1, 2], default=2)
    p.add_argument('--only', choices=['fastbook', 'bearlab', 'builtin'])
    p.add_argument('--per-class', nargs='+', metavar='N', help="a learning curve: photos per class, numbers or 'all'")
    p.add_argument('--n', type=int, default=134, help='practice photos per class, without DATASET')
    p.add_argument('--body-from', type=int, metavar='N', help="fit_recipe's per_class: try the body from N photos a class")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    if a.dataset: src = Path(a.dataset)
    else:
        print("WARNING: no dataset folder given: using generated practice photos (easy classes: compare the seconds, "
              "not the accuracy). For a real measurement: python bench/finetune.py path/to/bears")
        src = practice_dataset(tmp/'practice', n=a.n, size=640)
    classes = check_dataset(src)
    A, B = halves(src, tmp)
    folds = [(A, B), (B, A)][:a.folds]
    names = [n for n in ('fastbook', 'bearlab', 'builtin') if a.only in (None, n)]
    if 'builtin' in names and not set(classes) <= set(BEAR_CLASSES): names.remove('builtin')
    print(f"{src}: classes {list(classes)}, halves of {len(image_files(A))} and {len(image_files(B))} photos; "
          f"fastbook fine_tune({a.epochs}); {a.folds} fold(s); {torch.get_num_threads()} torch threads")
    efficientnet_lite0()(torch.zeros(2, 3, 64, 64))  # warm up torch's CPU kernels so no recipe pays for it
    recipe = {} if a.body_from is None else {'per_class': a.body_from}
    try:
        if a.per_class: curve(names, folds, a.epochs, [None if v == 'all' else int(v) for v in a.per_class], tmp, **recipe)
        else: compare(names, folds, a.epochs, **recipe)
    finally: shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
