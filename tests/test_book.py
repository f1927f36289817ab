"The lesson's call forms with bearlab imported before fastai (the book notebook, nbs/tutorials/book.ipynb, runs them after)."
import os, subprocess, sys, textwrap
from pathlib import Path
import pytest

SCRIPT = '''
import os, shutil, builtins
from IPython.display import display; builtins.display = display  # as in a notebook
os.environ['BEARLAB_OFFLINE'] = '1'
from bearlab.all import *
from fastai.vision.all import *
from fastai.vision.widgets import *
import fastai.vision.utils as fvu, fastai.vision.widgets as fvw, fastai.metrics as fm, fastai.layers as fl
# the names both export are fastai's now, and bearlab changed none of fastai's
assert (download_images, verify_images, ImageClassifierCleaner) == (fvu.download_images, fvu.verify_images, fvw.ImageClassifierCleaner)
assert (accuracy, mse, sigmoid) == (fm.accuracy, fm.mse, fl.sigmoid)
path = Path('bears')
for o in 'grizzly', 'black':
    dest = path/o
    dest.mkdir(exist_ok=True, parents=True)
    download_images(dest, urls=search_images(f'{o} bear', max_images=12))        # fastbook / course22
(Path('urls.txt')).write_text('\\n'.join(search_images('teddy bear', max_images=6)))
download_images(path/'teddy', url_file=Path('urls.txt'), max_pics=4)             # fastai 2's url_file
fns = get_image_files(path)
failed = verify_images(fns)
failed.map(Path.unlink)
print('RESULT', len(fns), len(get_image_files(path/'teddy')), len(failed))
dls = ImageDataLoaders.from_folder(path, valid_pct=0.3, seed=0, item_tfms=Resize(64), bs=8, num_workers=0)
learn = vision_learner(dls, efficientnet_lite0, metrics=error_rate)  # bearlab's model, fastai's learner
cleaner = ImageClassifierCleaner(learn)                                # fastai's widget, working as ever
print('RESULT', type(cleaner).__module__, len(cleaner.fns))
clf = Classifier.from_learner(learn)
print('RESULT', clf.predict(fns[0]).label in dls.vocab)
'''

@pytest.mark.slow
def test_book_forms_with_bearlab_imported_first(tmp_path):
    r = subprocess.run([sys.executable, '-c', SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE'})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [l.split(' ', 1)[1] for l in r.stdout.splitlines() if l.startswith('RESULT ')]
    n, n_teddy, n_failed = map(int, lines[0].split())
    assert n >= 20 and n_teddy == 4 and n_failed >= 1, lines  # fastai's downloader keeps broken files; the book unlinks them
    assert lines[1].startswith('fastai.vision.widgets') and lines[2].startswith('True'), lines
