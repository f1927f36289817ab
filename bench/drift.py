"""Drift on streams whose cause is known: real bear photos with 0%, 10%, 30% and 60% of real sky photos mixed in.

    .venv/bin/python bench/drift.py [BEARS] [OTHER] [--window 60] [--streams 20]

BEARS (default ../shared/data/realbears) is split in two halves by a stable hash of each photo's content: the first is
the training set, the second the in-domain stream. OTHER (default ../shared/data/realskies) is the other domain.
Two references are measured, each as a model that answers would use it:
- features: `FeatureReference.fit` on the training half's EfficientNet-Lite0 features. This is exactly what
  `export_bundle` stores for a learner trained with bearlab's recipe (`bear_learner`, `fit_one_cycle(1)`): its body stays
  the pretrained Lite0, so its last layer reads these very features.
- domain: the built-in model's own out-of-domain signal (`DomainReference`): a photo is far when the model calls it
  "not a bear" (no bear among its five likeliest ImageNet classes); expected 31/413 on real bears.
For each share, `--streams` streams of `--window` photos (one drift window each) are drawn with `mixed_stream`; the script
prints the mean drift score (the estimated share of photos unlike the training photos), its spread, and how many of the
windows are flagged (score over DRIFT_THRESHOLD with at least MIN_PHOTOS photos).
"""
import argparse, os, statistics, sys, time, warnings
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parent.parent

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('bears', nargs='?', default=str(ROOT.parent/'shared'/'data'/'realbears'))
    ap.add_argument('other', nargs='?', default=str(ROOT.parent/'shared'/'data'/'realskies'))
    ap.add_argument('--window', type=int, default=60); ap.add_argument('--streams', type=int, default=20)
    a = ap.parse_args()
    warnings.simplefilter('ignore')
    from bearlab.files import image_files, file_hash
    from bearlab.inference import Classifier, default_bundle
    from bearlab.drift import FeatureReference, drift_score, is_drifting, mixed_stream, DRIFT_THRESHOLD
    bears, others = sorted(image_files(a.bears)), sorted(image_files(a.other))
    train = [p for p in bears if int(file_hash(p)[:8], 16) % 2 == 0]
    usual = [p for p in bears if p not in set(train)]
    clf = Classifier.load(default_bundle())
    t0 = time.perf_counter()
    feats = dict(zip(bears + others, clf.features(bears + others)))
    preds = dict(zip(usual + others, [p for i in range(0, len(usual + others), 32)
                                      for p in clf.predict_batch((usual + others)[i:i+32])]))
    print(f'{len(train)} training bears, {len(usual)} held-out bears, {len(others)} photos of the other domain; '
          f'features and answers in {time.perf_counter() - t0:.0f} s')
    ref = FeatureReference.fit(np.stack([feats[p] for p in train]))
    dist = dict(zip(usual + others, ref.distances(np.stack([feats[p] for p in usual + others]))))
    refs = {'features': (lambda p: dist[p] > 1, ref.expected), 'domain': (lambda p: not preds[p].in_domain, 31/413)}
    for name, (far, expected) in refs.items():
        print(f'\n{name} reference: far on held-out bears {np.mean([far(p) for p in usual]):.1%} (expected {expected:.1%}), '
              f'on the other domain {np.mean([far(p) for p in others]):.1%}')
        for share in (0, 0.1, 0.3, 0.6):
            scores = [drift_score([far(p) for p, _ in mixed_stream(usual, others, share, a.window, seed)], expected)
                      for seed in range(a.streams)]
            flagged = sum(is_drifting(s, a.window) for s in scores)
            print(f'  {share:>4.0%} other: drift score {statistics.mean(scores):.3f} (sd {statistics.pstdev(scores):.3f}, '
                  f'min {min(scores):.3f}, max {max(scores):.3f}); windows flagged: {flagged} of {a.streams} '
                  f'(threshold {DRIFT_THRESHOLD})')

if __name__ == '__main__': main()
