"""Fine-tuning recipe: bearlab's (`bear_dataloaders` + `bear_learner` + `fine_tune(2)`) against plain fastai's, same photos, same process.

    python bench/finetune.py [DATASET] [--size 224] [--epochs 2] [--heldout 0.5]

DATASET is a folder of class folders (e.g. ~400 bear photos downloaded with `search_images` + `download_images`).
Half of it (by a stable hash) is held out; both recipes train on the rest and are scored on the held-out photos.
Without DATASET, a generated practice dataset is used, with a warning: its classes are easy, so only the seconds mean much.
Plain fastai: RandomSplitter(seed=42), Resize(224) + aug_transforms, vision_learner with the shipped Lite0 weights, fine_tune(2)."""
import os, sys, argparse, shutil, tempfile, time, warnings
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # torch's threads sleep rather than spin when a core is busy
from pathlib import Path
import torch
from fastai.vision.all import *
from bearlab.models import efficientnet_lite0
from bearlab.data import (StableSplitter, bear_dataloaders, bear_learner, check_dataset, image_files, practice_dataset)

def split_heldout(src:Path, dest:Path, pct:float)->L:
    "Copy the photos not held out into `dest` (same class folders); return the held-out files."
    held, files = L(), image_files(src)
    sp = StableSplitter(pct, salt='bench-heldout')
    for f in files:
        if sp.is_valid(f): held.append(f); continue
        (dest/f.parent.name).mkdir(parents=True, exist_ok=True); shutil.copy(f, dest/f.parent.name/f.name)
    return held

def heldout_accuracy(learn:Learner, files:L)->float:
    dl = learn.dls.test_dl(files, with_labels=True)
    preds, targs = learn.get_preds(dl=dl)
    return (preds.argmax(1) == targs).float().mean().item()

def plain_fastai(path:Path, size:int, epochs:int)->Learner:
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=RandomSplitter(0.2, seed=42),
                    get_y=parent_label, item_tfms=Resize(size), batch_tfms=aug_transforms()).dataloaders(path)
    learn = vision_learner(dls, efficientnet_lite0, metrics=error_rate)
    with learn.no_bar(): learn.fine_tune(epochs)
    return learn

def bearlab_recipe(path:Path, size:int, epochs:int)->Learner:
    learn = bear_learner(bear_dataloaders(path, size=size))
    with learn.no_bar(): learn.fine_tune(epochs)
    return learn

def run(name, recipe, train, held, size, epochs):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = recipe(train, size, epochs)
    secs = time.perf_counter() - t
    acc = heldout_accuracy(learn, held)
    print(f"{name:8s} held-out accuracy {acc:6.1%}   {secs:6.1f} s")
    return acc, secs

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('dataset', nargs='?'); p.add_argument('--size', type=int, default=224)
    p.add_argument('--epochs', type=int, default=2); p.add_argument('--heldout', type=float, default=0.5)
    p.add_argument('--only', choices=['fastai', 'bearlab'])
    p.add_argument('--n', type=int, default=134, help='practice photos per class, without DATASET')
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    if a.dataset: src = Path(a.dataset)
    else:
        print("WARNING: no dataset folder given: using generated practice photos (easy classes: compare the seconds, "
              "not the accuracy). For a real measurement: python bench/finetune.py path/to/bears")
        src = practice_dataset(tmp/'practice', n=a.n, size=640)
    classes = check_dataset(src)
    held = split_heldout(src, tmp/'train', a.heldout)
    n_train = len(image_files(tmp/'train'))
    print(f"{src}: classes {list(classes)}, {n_train} photos to train on, {len(held)} held out; "
          f"{a.size} px, fine_tune({a.epochs}), {torch.get_num_threads()} torch threads")
    efficientnet_lite0()(torch.zeros(2, 3, 64, 64))  # warm up torch's CPU kernels so neither recipe pays for it
    res = {}
    if a.only != 'bearlab': res['fastai'] = run('fastai', plain_fastai, tmp/'train', held, a.size, a.epochs)
    if a.only != 'fastai': res['bearlab'] = run('bearlab', bearlab_recipe, tmp/'train', held, a.size, a.epochs)
    if len(res) == 2:
        (fa, fs), (ba, bs) = res['fastai'], res['bearlab']
        print(f"ratio bearlab/fastai: seconds {bs/fs:.2f}, held-out errors {(1-ba)/max(1-fa, 1e-9):.2f} "
              f"({(1-ba)*len(held):.0f} vs {(1-fa)*len(held):.0f} of {len(held)} photos wrong)")

if __name__ == '__main__': main()
