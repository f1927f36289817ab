"bearlab.download and bearlab.data against real HTTP servers on 127.0.0.1: every fault ends as a manifest row, and nothing invalid lands in dest."
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # torch threads sleep instead of spinning on a shared 2-core machine
import shutil
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st
from conftest import free_port
from bearlab.images import open_image
from bearlab.files import *
from bearlab.search import *
from bearlab.practice import *
from bearlab.download import *
from bearlab.data import *
from bearlab.journal import JOURNAL, TRASH
from fastcore.foundation import L

@pytest.fixture(scope='module')
def srv():
    s = ImageServer(n_images=6, size=64).start()
    yield s
    s.stop()

def _only_photos(dest:Path):
    "Every file in `dest` is a complete photo named by its content; no partial downloads anywhere."
    for f in dest.iterdir():
        if f.name == 'downloads.csv' or f.name.startswith('.'): continue
        open_image(f)
        assert f.name == file_hash(f)[:16] + f.suffix, f
    assert not list(dest.rglob('*.part'))

EXPECTED = {  # URL path → (status, words in the error)
    'fault/404': ('failed', 'HTTP 404'), 'fault/500': ('failed', 'HTTP 500'),
    'fault/hang': ('failed', 'timeout'), 'fault/loop': ('failed', 'redirect loop'),
    'fault/page.jpg': ('failed', 'web page'), 'fault/truncated.jpg': ('failed', 'cut off'),
    'fault/big.jpg': ('failed', 'too large'), 'fault/empty.jpg': ('failed', 'empty'),
    'img/grizzly/1.jpg': ('ok', ''), 'img/grizzly/4.jpg': ('ok', ''),
}

def test_every_fault_is_a_manifest_row(srv, tmp_path):
    refused = f'http://127.0.0.1:{free_port()}/bear.jpg'
    urls = [srv.url + p for p in EXPECTED] + [refused, '', '   ', 'garbage', 'ftp://x/y.jpg', srv.url + 'img/grizzly/1.jpg',
                                              srv.url + 'img/grizzly/1.jpg?ref=mirror']
    dest = tmp_path/'grizzly'
    df = download_images(dest, urls=urls, timeout=1.5, max_bytes=100_000, progress=False)
    assert list(df.columns) == ['url', 'file', 'sha256', 'status', 'error', 'title', 'creator', 'license', 'license_url',
                               'source_page'] and len(df) == len(urls)
    assert (df.license == '').all()  # plain URLs: no license known
    rows = {}
    for r in df.itertuples(): rows.setdefault(r.url, r)  # the first row of a repeated URL
    for p, (status, words) in EXPECTED.items():
        r = rows[srv.url + p]
        assert (r.status, words in r.error) == (status, True), (p, r)
    assert 'connection refused' in rows[refused].error
    assert list(df.status[-6:]) == ['skipped', 'skipped', 'failed', 'failed', 'skipped', 'duplicate']
    assert 'blank' in df.error.iloc[-6] and 'not a web address' in rows['garbage'].error
    assert 'same URL' in df.error.iloc[-2] and df.file.iloc[-1] == rows[srv.url + 'img/grizzly/1.jpg'].file
    assert rows[srv.url + 'img/grizzly/4.jpg'].file.endswith('.png')  # a PNG served at a .jpg URL
    assert sorted(f.name for f in image_files(dest)) == sorted(df.file[df.status == 'ok'])
    _only_photos(dest)
    assert len(read_manifest(dest)) == len(urls) - 2  # blank lines aren't kept

def test_rerun_fetches_only_what_failed(srv, tmp_path):
    urls = srv.result_urls('black bear')
    first_run = download_images(tmp_path/'black', urls=urls, progress=False, timeout=2)
    n, removed = len(srv.requests), image_files(tmp_path/'black')[0]
    removed.unlink()  # cleaned away by the user: must not come back
    again = download_images(tmp_path/'black', urls=urls, progress=False, timeout=2)
    assert sorted(srv.requests[n:]) == ['/fault/404', '/fault/page.jpg', '/fault/truncated.jpg']
    assert list(again.status) == list(first_run.status) and not removed.exists()

def test_urls_from_file(srv, tmp_path):
    f = tmp_path/'urls_teddy.csv'
    f.write_text(f'\n{srv.url}img/teddy/0.jpg\n\n# saved from the browser\n"{srv.url}img/teddy/1.jpg",x\nnonsense\n')
    urls = urls_from_file(f)
    assert urls == [f'{srv.url}img/teddy/0.jpg', f'{srv.url}img/teddy/1.jpg', 'nonsense']
    df = download_images(urls, tmp_path/'teddy', progress=False)  # bearlab 0.1's order still works
    assert list(df.status) == ['ok', 'ok', 'failed']

def test_fastai_download_forms(srv, tmp_path):
    "fastai 2's (dest, urls=), (dest, url_file=, max_pics=), fastai 1's (url_file, dest, max_pics=), with str paths."
    urls = [srv.url + f'img/black/{i}.jpg' for i in range(4)]
    f = tmp_path/'urls_black.csv'; f.write_text('\n'.join(urls + ['<html>garbage', '']))
    assert list(download_images(tmp_path/'a', urls=urls, progress=False).status) == ['ok']*4
    assert list(download_images(tmp_path/'b', url_file=f, max_pics=2, progress=False).status) == ['ok']*2
    assert list(download_images(str(f), str(tmp_path/'c'), max_pics=200, progress=False).status) == ['ok']*4 + ['failed']
    assert download_images(tmp_path/'d', f, progress=False).error.iloc[-1].startswith('not a web address')
    for d, n in [('a', 4), ('b', 2), ('c', 4), ('d', 4)]: assert len(image_files(tmp_path/d)) == n; _only_photos(tmp_path/d)

def test_fastai_download_bad_input(tmp_path, capsys):
    "A missing URL file, a URL file that is a folder, a dest that is a file, no URLs: a message, nothing created."
    (tmp_path/'photo.jpg').write_bytes(b'mine'); before = sorted(tmp_path.rglob('*'))
    for call, words in [(lambda: download_images(tmp_path/'black', url_file=tmp_path/'urls.txt'), 'The URL file'),
                        (lambda: download_images(tmp_path/'urls_black.csv', tmp_path/'black'), 'urls_black.csv is not there'),
                        (lambda: download_images(tmp_path/'black', url_file=tmp_path), 'is a folder'),
                        (lambda: download_images(tmp_path/'photo.jpg', urls=['http://127.0.0.1:9/x.jpg']), 'is a file, not a folder'),
                        (lambda: download_images(tmp_path/'black'), 'No URLs to download')]:
        with pytest.raises(DownloadError, match=words): call()
    assert sorted(tmp_path.rglob('*')) == before and (tmp_path/'photo.jpg').read_bytes() == b'mine'

def test_fastai_verify_forms(tmp_path, capsys):
    "fastai 2: an L of unreadable files, nothing moved. fastai 1: a folder, delete=True and max_size, all undoable."
    from fastai.vision.all import get_image_files, L
    ds = practice_dataset(tmp_path/'ds', n=3, size=300)
    (ds/'black'/'page.jpg').write_text('<html>not a bear</html>')
    (ds/'black'/'cut.jpg').write_bytes((ds/'black'/'000.jpg').read_bytes()[:600])
    failed = verify_images(get_image_files(ds))
    assert isinstance(failed, L) and sorted(f.name for f in failed) == ['cut.jpg', 'page.jpg']
    assert all(f.exists() for f in failed)
    originals = {f: f.read_bytes() for f in image_files(ds)}
    failed = verify_images(ds/'black', delete=True, max_size=100)
    assert sorted(f.name for f in failed) == ['cut.jpg', 'page.jpg'] and not (ds/'black'/'cut.jpg').exists()
    assert max(open_image(ds/'black'/'000.jpg').size) == 100 and max(open_image(ds/'grizzly'/'000.jpg').size) == 300
    assert sorted(f.name for f in unquarantine(ds/'black')) == ['000.jpg', '001.jpg', '002.jpg', 'cut.jpg', 'page.jpg']
    assert {f: f.read_bytes() for f in image_files(ds)} == originals
    (ds/'empty').mkdir(); assert verify_images(ds/'empty') == [] and 'No photos to verify' in capsys.readouterr().out
    with pytest.raises(DatasetError, match='is not a folder'): verify_images(ds/'nope')

def test_search_local_and_unreachable(srv):
    urls = DuckDuckGo(srv.url, pause=0).search('teddy bear', max_images=8)
    assert len(urls) == 8 and len(set(urls)) == 8
    port = free_port()
    with pytest.raises(SearchError, match=f"DuckDuckGo image search at http://127.0.0.1:{port}/ couldn't be reached"):
        search_images('grizzly bear', backend=DuckDuckGo(f'http://127.0.0.1:{port}/', timeout=2))

def test_offline_default_search(monkeypatch):
    monkeypatch.setenv('BEARLAB_OFFLINE', '1')
    assert not online()
    assert len(search_images('grizzly bear', max_images=5)) == 5

def test_verify_moves_never_deletes(tmp_path):
    ds = practice_dataset(tmp_path/'ds', n=3, size=48)
    (ds/'grizzly'/'page.jpg').write_text('<html>not a bear</html>')
    (ds/'black'/'cut.jpg').write_bytes((ds/'black'/'000.jpg').read_bytes()[:600])
    (ds/'black'/'empty.png').write_bytes(b'')
    moved = quarantine_images(ds, progress=False)
    assert sorted(Path(f).name for f in moved.file) == ['cut.jpg', 'empty.png', 'page.jpg']
    assert all(Path(m).exists() and TRASH in str(m) for m in moved.moved_to)
    assert len(image_files(ds)) == 9 and (ds/JOURNAL).exists()
    assert len(unquarantine(ds)) == 3 and len(image_files(ds)) == 12

@settings(max_examples=25, deadline=None)
@given(st.lists(st.booleans(), min_size=40, max_size=40), st.sampled_from(['content', 'name']))
def test_split_stays_put(tmp_path_factory, keep, by):
    d = tmp_path_factory.mktemp('split')
    files = []
    for i in range(40): (d/f'{i}.jpg').write_bytes(f'photo {i}'.encode()); files.append(d/f'{i}.jpg')
    sp = StableSplitter(0.3, by=by)
    valid = {files[i] for i in sp(files)[1]}
    kept = [f for f,k in zip(files, keep) if k]
    assert {kept[i] for i in sp(kept)[1]} == valid & set(kept)

def test_duplicates_and_leaks(tmp_path):
    ds = practice_dataset(tmp_path/'ds', n=4, size=64)
    shutil.copy(ds/'grizzly'/'000.jpg', ds/'black'/'copy.jpg')
    img = practice_photo('grizzly', 1, 64)
    img.resize((img.width*3//4, img.height*3//4)).save(ds/'grizzly'/'small.jpg', quality=60)
    sp = StableSplitter(0.5, salt='x', by='name')
    d = find_duplicates(ds, splitter=sp, progress=False)
    pairs = {(r.a.name, r.b.name): r for r in d.itertuples()}
    r = pairs[('copy.jpg', '000.jpg')]
    assert (r.kind, r.distance, r.same_label, r.leak) == ('exact', 0, False, sp.is_valid(ds/'black'/'copy.jpg') != sp.is_valid(ds/'grizzly'/'000.jpg'))
    assert pairs[('001.jpg', 'small.jpg')].kind == 'near' and pairs[('001.jpg', 'small.jpg')].same_label
    assert len(d) == 2

def test_dataloaders_and_learner(tmp_path):
    ds = practice_dataset(tmp_path/'ds', n=6, size=48)
    dls = bear_dataloaders(ds, size=32, bs=4, num_workers=0)
    assert dls.vocab == ['black', 'grizzly', 'teddy']
    learn = bear_learner(dls)
    x, y = dls.one_batch()
    assert learn.model.eval()(x).shape == (4, 3)
    norm = [t for t in learn.dls.after_batch.fs if type(t).__name__ == 'Normalize']
    assert len(norm) == 1 and norm[0].mean.flatten().tolist() == [0.5]*3 == norm[0].std.flatten().tolist()
    (ds/'bad..name').mkdir(); shutil.copy(ds/'black'/'000.jpg', ds/'bad..name'/'x.jpg')
    with pytest.raises(DatasetError, match="can't be used as a label"): bear_dataloaders(ds, size=32)

def test_a_move_that_fails_half_way_is_journaled(tmp_path, monkeypatch):
    "When moving the second bad file fails, the first is already in the journal, and unquarantine puts it back."
    import bearlab.journal as jn
    ds = practice_dataset(tmp_path/'ds', n=2, size=48)
    (ds/'black'/'a.jpg').write_text('<html>one</html>')
    (ds/'grizzly'/'b.jpg').write_text('<html>two</html>')
    real, calls = jn._rename, []
    def flaky(s, d):
        calls.append(Path(s))
        if len(calls) == 2: raise PermissionError(13, 'Permission denied', str(s))
        return real(s, d)
    monkeypatch.setattr(jn, '_rename', flaky)
    with pytest.raises(PermissionError): quarantine_images(ds, progress=False)
    monkeypatch.setattr(jn, '_rename', real)
    moved = calls[0]
    assert not moved.exists() and moved.name in (ds/JOURNAL).read_text()
    assert [p.name for p in unquarantine(ds)] == [moved.name] and moved.exists()

def test_unquarantine_undoes_newest_first_and_reads_old_journals(tmp_path, capsys):
    "Shrunk twice: both undone, original back. A journal from bearlab 0.1 (4 columns) still works. A changed copy is kept."
    import pandas as pd
    ds = practice_dataset(tmp_path/'ds', n=2, size=400)
    f, g = ds/'black'/'000.jpg', ds/'black'/'001.jpg'
    before = {x: x.read_bytes() for x in (f, g)}
    q = ds/'black'/QUARANTINE; q.mkdir()
    pd.DataFrame(columns=['file', 'moved_to', 'reason', 'time']).to_csv(q/'journal.csv', index=False)  # bearlab 0.1
    verify_images(ds/'black', max_size=300); verify_images(ds/'black', max_size=200)
    g.write_bytes(b'my own edit')  # changed since it was shrunk: unquarantine must not write over it
    back = unquarantine(ds/'black')
    assert f.read_bytes() == before[f] and g.read_bytes() == b'my own edit'
    assert {x.name for x in back} >= {'000.jpg', '001-1.jpg'} and (ds/'black'/'001-1.jpg').exists()

def test_download_args_takes_any_collection(tmp_path):
    import pandas as pd, numpy as np
    urls = ['http://127.0.0.1:9/a.jpg', 'http://127.0.0.1:9/b.jpg']
    for u in (urls, tuple(urls), pd.Series(urls), np.array(urls), L(urls)):
        assert list(download_args(tmp_path/'x', urls=u)[1]) == urls
    assert list(download_args(tmp_path/'x', urls=urls[0])[1]) == urls[:1]
    (tmp_path/'odd.csv').mkdir()  # a folder that happens to be named like a URL file
    with pytest.raises(DownloadError, match='The URL file'): download_args(tmp_path/'odd.csv', url_file=tmp_path/'none.txt')

def test_probe_two_classes_and_a_class_never_seen():
    "The linear probe's rows fit a 3-output head when training has 2 classes: the third is never predicted."
    import numpy as np, torch
    from bearlab.data import _probe
    rng = np.random.default_rng(0); X = rng.normal(size=(40, 5)); y = (X[:, 0] > 0).astype(int)
    W, b = _probe(X, y, 3)
    pred = (torch.tensor(X, dtype=torch.float32) @ W.T + b).argmax(1).numpy()
    assert (pred == y).mean() > 0.9 and not (pred == 2).any()
    with pytest.raises(DatasetError, match='all of one class'): _probe(X, np.zeros(40, int), 3)

def test_image_files_knows_fastais_extensions():
    "bearlab.dataset lists the extensions fastai's `image_extensions` does, without importing fastai."
    from bearlab.dataset import IMAGE_EXTENSIONS
    from fastai.data.transforms import image_extensions
    assert IMAGE_EXTENSIONS == image_extensions

# Issue 25: small datasets, what `diagnose` says about them, and the dataset checked in words before training

def _warned(f):
    "What `f` returns, and the messages of the `DatasetWarning`s it gives."
    import warnings
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        res = f()
    return res, [str(w.message) for w in ws if w.category is DatasetWarning]

def _keep(folder, *valid):
    "Delete the photos of `folder` but one for each of `valid`: True, one the split puts in validation; False, in training."
    sp, fs = StableSplitter(), image_files(folder)
    kept = [next(f for f in fs if sp.is_valid(f) == v) for v in valid]
    for f in fs:
        if f not in kept: f.unlink()

def _fit(dls, *args, **kwargs):
    "A `bear_learner` on `dls` after `fit(*args)`, quietly."
    learn = bear_learner(dls, **kwargs)
    with learn.no_bar(), learn.no_logging(): learn.fit(*args)
    return learn

def _small(tmp_path, name, counts:dict):
    "A practice dataset of counts[class] photos a class (0: an empty folder; a tuple: a photo for each of its `valid`)."
    for c, n in counts.items():
        practice_dataset(tmp_path/name, classes=(c,), n=20 if isinstance(n, tuple) else n, size=64)
        if isinstance(n, tuple): _keep(tmp_path/name/c, *n)
    return tmp_path/name

def test_small_datasets_take_a_step_every_epoch(tmp_path):
    "The issue's table: at the default batch size, every dataset with a training photo per class trains, and says how."
    import math
    for counts, words in [(dict(grizzly=5, black=5, teddy=5), []), (dict(grizzly=10, black=10, teddy=10), []),
                          (dict(grizzly=20, black=20, teddy=0), ["The class folder 'teddy' has no photos"]),
                          (dict(grizzly=20, black=20, teddy=(False,)),
                           ["The class 'teddy' has 1 photo, and it is in the training set"])]:
        ds = _small(tmp_path, '_'.join(map(str, counts.values())), counts)
        dls, said = _warned(lambda: bear_dataloaders(ds, size=64, num_workers=0))
        n = len(dls.train_ds)
        assert n >= 2 and len(dls.train) >= 1 and dls.train.bs == min(32, n), counts
        assert all(any(s.startswith(w) for s in said) for w in words), said
        assert (f"The training set has {n} photos, fewer than a batch (32)" in ' '.join(said)) == (n < 32)
        learn = _fit(dls, 1)
        assert learn.fit_check.steps == len(dls.train) and math.isfinite(learn.fit_check.values[-1][0])
        assert diagnose(learn).problem not in ('no_steps', 'lr_too_high', 'no_validation')

def test_a_class_with_no_photo_to_learn_from_is_an_error(tmp_path):
    "A class whose only photo falls in validation can't be learnt: the error names it, with how many it has and needs."
    ds = _small(tmp_path, 'ds', dict(grizzly=20, black=20, teddy=(True,)))
    with pytest.raises(DatasetError, match=r"The class 'teddy' has 1 photo, and it is in the validation set.*"
                                           r"needs at least 2 photos"):
        bear_dataloaders(ds, size=64)

def test_dataset_problems_in_words(tmp_path):
    "Bad input: each a sentence before any training, never a traceback from inside fastai."
    (tmp_path/'notes'/'grizzly').mkdir(parents=True); (tmp_path/'notes'/'grizzly'/'urls.txt').write_text('x')
    pages = tmp_path/'pages'
    for c in ('grizzly', 'black'):
        (pages/c).mkdir(parents=True)
        for i in range(10): (pages/c/f'{i}.jpg').write_text(f'<html>{c} {i}</html>')
    lop = _small(tmp_path, 'lop', dict(grizzly=20, black=(True, False)))
    for path, words in [(tmp_path/'nowhere', 'There is no folder at'),
                        (tmp_path/'notes', "There are no photos in .*only 1 other file, e.g. 'urls.txt'"),
                        (_small(tmp_path, 'one', dict(grizzly=1)), r"only one class, 'grizzly' \(1 photo\)"),
                        (_small(tmp_path, 'single', dict(grizzly=12)), r"only one class, 'grizzly' \(12 photos\)"),
                        (pages, "0.jpg: This file is not a photo bearlab can read.*quarantine_images")]:
        with pytest.raises(DatasetError, match=words): _warned(lambda: bear_dataloaders(path, size=64, num_workers=0))
    said = _warned(lambda: check_dataset(lop))[1]
    assert said == ["The classes are unbalanced: 'grizzly' has 20 photos and 'black' 2, 10 times fewer, so the model "
                    "will lean towards saying 'grizzly'. Add black photos, or leave some grizzly photos out."]
    c = class_counts(lop)
    assert c.loc['black'].tolist() == [2, 1, 1] and c.photos.sum() == 22

def test_class_names_with_spaces_and_unicode_train(tmp_path):
    ds = practice_dataset(tmp_path/'ds', classes=('polar bear', 'ours brun', '北极熊'), n=12, size=64)
    dls = _warned(lambda: bear_dataloaders(ds, size=64, num_workers=0))[0]
    assert list(dls.vocab) == ['ours brun', 'polar bear', '北极熊']
    learn = _fit(dls, 1)
    with learn.no_bar(): assert learn.predict(ds/'北极熊'/'000.jpg')[0] in dls.vocab
    assert learn.fit_check.steps >= 1

def _fastai_dls(path, **kwargs):
    from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, get_image_files, RandomSplitter, parent_label, Resize
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=RandomSplitter(seed=0),
                     get_y=parent_label, item_tfms=Resize(64)).dataloaders(path, num_workers=0, **kwargs)

def test_diagnose_real_runs_with_known_causes(tmp_path):
    "Each verdict on a run spoilt on purpose: no step, no validation set, a learning rate far too high or too low."
    from fastai.vision.all import vision_learner, error_rate
    from bearlab.models import efficientnet_lite0
    ds = practice_dataset(tmp_path/'ds', n=10, size=64)
    # fastai's DataBlock batches 64: 24 training photos take no step, with or without `FitCheck`
    nostep = _fastai_dls(ds)
    learn, said = _warned(lambda: _fit(nostep, 1))
    assert said and said[0].startswith('This fit will take no training step: the training set has 24 photos and the '
                                       'batch size is 64')
    d = diagnose(learn)
    assert d.problem == 'no_steps' and 'make the DataLoaders with `bs=24` or less' in d
    learn = vision_learner(nostep, efficientnet_lite0, metrics=error_rate)
    learn.remove_cb(FitCheck)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert diagnose(learn).problem == 'no_steps'
    dls = _warned(lambda: bear_dataloaders(ds, size=64, bs=8, num_workers=0))[0]
    assert diagnose(_fit(dls, 2, 10., head='fastai')).startswith('Learning rate too high: the validation loss exploded')
    d = diagnose(_fit(dls, 2, 1e6, head='fastai'))
    assert d.problem == 'lr_too_high' and 'the losses overflowed' in d and 'nan' in d
    learn = bear_learner(dls, head='fastai')
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(2, 1e-7)
    assert diagnose(learn).problem == 'lr_too_low'
    novalid = _warned(lambda: bear_dataloaders(ds, size=64, bs=8, valid_pct=0, num_workers=0))[0]
    assert diagnose(_fit(novalid, 1)).problem == 'no_validation'
    assert diagnose(bear_learner(dls)).startswith('Nothing to diagnose yet')

def test_diagnose_reads_the_fit_after_predict_and_lr_find(tmp_path):
    "fastai's recorder is replaced by `predict`, `validate` and `lr_find`; `diagnose` still reads the last fit."
    ds = practice_dataset(tmp_path/'ds', n=10, size=64)
    dls = _warned(lambda: bear_dataloaders(ds, size=64, bs=8, num_workers=0))[0]
    learn = _fit(dls, 2, 10., head='fastai')
    before = diagnose(learn)
    with learn.no_bar(), learn.no_logging():
        learn.predict(ds/'black'/'000.jpg'); learn.validate()
        learn.lr_find(num_it=5, show_plot=False, suggest_funcs=())  # after a diverged fit it may record no loss
    assert diagnose(learn) == before and before.problem == 'lr_too_high'

def test_fit_check_changes_nothing_else(tmp_path):
    "Seeded fits give the same numbers with `FitCheck` and without, and an export pickles no bearlab callback."
    import pickle
    from fastai.vision.all import vision_learner, set_seed, Callback
    from bearlab.models import efficientnet_lite0
    ds = practice_dataset(tmp_path/'ds', n=8, size=64)
    def run(check):
        set_seed(0)
        learn = vision_learner(_fastai_dls(ds, bs=4), efficientnet_lite0, cbs=FitCheck() if check else None)
        if not check: learn.remove_cb(FitCheck)  # where `bearlab.all` was imported, fastai adds it too
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        return learn
    a, b = run(True), run(False)
    assert a.recorder.values == b.recorder.values and a.fit_check.steps == len(a.dls.train) > 0
    assert type(pickle.loads(pickle.dumps(a.fit_check))) is Callback
    a.export(tmp_path/'export.pkl')
    assert b'FitCheck' not in (tmp_path/'export.pkl').read_bytes()

def test_dataset_refusals_and_safe_write(tmp_path):
    "bearlab.dataset: one clear message for each way a dataset folder is wrong; a failed write leaves nothing behind."
    from bearlab.dataset import class_folders, class_photos, check_label, safe_write, UnsafeLabelError
    (tmp_path/'file.jpg').write_bytes(b'x'); (tmp_path/'ds'/'empty class').mkdir(parents=True)
    for call, words in [(lambda: class_folders(tmp_path/'file.jpg'), 'There is no folder at'),
                        (lambda: class_folders(tmp_path/'ds'/'empty class'), 'no class folders'),
                        (lambda: class_photos(tmp_path/'ds'/'empty class'), "'empty class' has no photos"),
                        (lambda: check_label('a/b'), "can't be used as a label")]:
        with pytest.raises(DatasetError, match=words): call()
    assert issubclass(UnsafeLabelError, DatasetError) and check_label('polar bear') == 'polar bear'
    with pytest.raises(KeyboardInterrupt):
        with safe_write(tmp_path/'ds'/'x.npz') as t: t.write_bytes(b'half'); raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path/'ds').iterdir()) == ['empty class']
