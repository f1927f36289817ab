"""How well does `label_issues` find mislabelled photos, compared with fastai's ranking? A benchmark, not a test.

    python bench/cleaner.py [DATASET] [--noise 0.1 0.2 0.4] [--baseline-noise 0.2] [--epochs 1] [--size 128]

DATASET is a folder of class folders of real photos (your bears). Without one, a generated practice dataset is
used, with a warning: its numbers say little about real photos. Labels are flipped in memory (no file is touched)
for a known fraction of photos, at random or class-dependently (every photo of class i flipped goes to class i+1),
then each method ranks every photo, most suspicious first, and we print AUROC, average precision, precision at k
(k = number of flipped labels) and seconds. fastai's baseline is what `ImageClassifierCleaner` ranks by: the loss
of each photo from a Learner fine-tuned on the noisy labels, training photos through the training (augmented)
pipeline, i.e. in-sample.
"""
import argparse, os, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np
warnings.filterwarnings('ignore')

def flip(labels:list, frac:float, kind:str, seed:int=0)->tuple:
    "(noisy labels, boolean mask of flipped) with `frac` of `labels` changed, 'random' or 'class' (i → i+1)."
    rng = np.random.default_rng(seed); classes = sorted(set(labels)); k = len(classes)
    y = np.array([classes.index(l) for l in labels]); n = len(y)
    flipped = np.zeros(n, bool); flipped[rng.choice(n, int(round(frac*n)), replace=False)] = True
    new = y.copy()
    new[flipped] = (y[flipped] + (rng.integers(1, k, flipped.sum()) if kind == 'random' else 1)) % k
    return [classes[i] for i in new], flipped

def metrics(suspicion:np.ndarray, flipped:np.ndarray)->dict:
    "AUROC, average precision and precision at k of a ranking (higher `suspicion` = more likely flipped)."
    from sklearn.metrics import roc_auc_score, average_precision_score
    k = int(flipped.sum()); top = np.argsort(-suspicion, kind='stable')[:k]
    return dict(auroc=roc_auc_score(flipped, suspicion), ap=average_precision_score(flipped, suspicion), p_at_k=flipped[top].mean())

def bearlab_rank(files, labels, cache):
    from bearlab.issues import label_issues_from, Lite0Embedder
    t = time.time()
    df = label_issues_from(files, labels, embedder=Lite0Embedder(), cache_dir=cache, duplicates=False, progress=False)
    p = df.set_index(df.path.map(str)).p_label.reindex([str(f) for f in files]).to_numpy()
    return 1 - p, time.time() - t, df

def fastai_rank(files, labels, size, epochs):
    "In-sample loss from a fine-tuned Learner, as `ImageClassifierCleaner` ranks (train: augmented pipeline)."
    from fastai.vision.all import ImageDataLoaders, vision_learner, Resize, aug_transforms, error_rate
    from bearlab.models import efficientnet_lite0
    t = time.time()
    dls = ImageDataLoaders.from_lists(files[0].parent.parent, files, labels, valid_pct=0.2, seed=42, item_tfms=Resize(size),
                                      batch_tfms=aug_transforms(), bs=32, num_workers=0)
    learn = vision_learner(dls, efficientnet_lite0, metrics=error_rate)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(epochs)
    loss = {}
    for i in (0, 1):
        dl = learn.dls[i].new(shuffle=False, drop_last=False)
        with learn.no_bar(): _, _, l = learn.get_preds(dl=dl, with_loss=True)
        loss.update({str(f[0] if isinstance(f, (tuple, list)) else f): float(v) for f, v in zip(dl.items, l)})
    return np.array([loss[str(f)] for f in files]), time.time() - t

def dataset(arg):
    from bearlab.issues import dataset_items
    if arg: return dataset_items(arg)
    from bearlab.data import practice_dataset
    print('WARNING: no dataset given, so a generated practice dataset is used (blobs on landscapes, 3 classes x 60).\n'
          '         Its numbers say little about real photos: run `python bench/cleaner.py path/to/your/bears`.\n')
    return dataset_items(practice_dataset(Path(tempfile.mkdtemp())/'practice', n=60))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('dataset', nargs='?'); ap.add_argument('--noise', type=float, nargs='+', default=[0.1, 0.2, 0.4])
    ap.add_argument('--baseline-noise', type=float, nargs='*', default=[0.2]); ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--size', type=int, default=128, help="fastai baseline's image size")
    a = ap.parse_args()
    files, labels = dataset(a.dataset)
    print(f'{len(files)} photos, {len(set(labels))} classes')
    cache = tempfile.mkdtemp() # a fresh cache: the first run's time includes embedding every photo
    _, t0, _ = bearlab_rank(files, labels, cache)
    print(f'bearlab embeds and ranks {len(files)} photos from scratch in {t0:.1f}s (then cached)\n')
    print(f"{'noise':>6} {'kind':>7} {'method':>8} {'AUROC':>6} {'AP':>6} {'P@k':>6} {'found':>6} {'flagged':>7} {'secs':>6}")
    for frac in a.noise:
        for kind in ('random', 'class'):
            noisy, flipped = flip(labels, frac, kind)
            s, t, df = bearlab_rank(files, noisy, cache)
            m = metrics(s, flipped); issue = df.set_index(df.path.map(str)).label_issue.reindex([str(f) for f in files]).to_numpy()
            print(f"{frac:>6.0%} {kind:>7} {'bearlab':>8} {m['auroc']:6.3f} {m['ap']:6.3f} {m['p_at_k']:6.3f} {(issue & flipped).sum():>6} {issue.sum():>7} {t:6.1f}")
            if frac in a.baseline_noise:
                s2, t2 = fastai_rank(files, noisy, a.size, a.epochs); m2 = metrics(s2, flipped)
                print(f"{frac:>6.0%} {kind:>7} {'fastai':>8} {m2['auroc']:6.3f} {m2['ap']:6.3f} {m2['p_at_k']:6.3f} {'':>6} {'':>7} {t2:6.1f}")
                print(f"{'':>15} bearlab vs fastai: AUROC x{m['auroc']/m2['auroc']:.2f}, P@k x{m['p_at_k']/max(m2['p_at_k'], 1e-9):.2f}, "
                      f"time x{t0/t2:.2f} from scratch (x{t/t2:.3f} once embeddings are cached)")
    print(f"\n{'':>15} ({flipped.sum()} flipped of {len(files)} at the last setting; 'found' = flagged by is_issue and truly flipped)")

if __name__ == '__main__': main()
