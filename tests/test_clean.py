"Tests of the cleaner (bearlab.journal, .issues, .clean): no data loss (hypothesis), label issues, the widget driven headless, bad input."
import os, shutil, tempfile, warnings
from types import SimpleNamespace
from pathlib import Path
import numpy as np, pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from PIL import Image
import bearlab.journal as journal
from bearlab.journal import (Journal, check_label, CleanError, EmptyDatasetError, UnsafeLabelError, NothingToUndoError,
    JOURNAL, TRASH)
from bearlab.issues import (PixelEmbedder, Lite0Embedder, label_issues, label_issues_from, refit, find_label_issues,
    confident_joint, out_of_fold_probs, scan_images, dataset_items, TooFewClassesError)
import bearlab.issues
from bearlab.clean import ImageCleaner

HSET = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CLASSES = ['grizzly', 'black', 'teddy']

def tree(root):
    "Every file under `root` but the journal, with its bytes: what must come back after undo."
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in Path(root).rglob('*') if p.is_file() and p.name != JOURNAL}

def dirs(root): return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob('*') if p.is_dir())

def small_dataset(root:Path, n:int=3)->Path:
    "`n` little files per class; the same name in every class, so relabelling collides."
    for c in CLASSES:
        (root/c).mkdir(parents=True)
        for i in range(n): (root/c/f'{i}.jpg').write_bytes(f'{c} photo {i}'.encode())
    return root

FILES = [f'{c}/{i}.jpg' for c in CLASSES for i in range(3)]
LABELS = st.sampled_from(CLASSES + ['brown bear', 'ours 🐻', 'new'])
DECISION = st.tuples(st.sampled_from(FILES), st.sampled_from(['keep', 'delete', 'relabel', None]), LABELS)

def decide_all(j, decisions):
    for rel, action, label in decisions:
        src = j.root/rel
        if src.exists(): j.decide(rel, action, label)

# --- No data loss ---------------------------------------------------------------------------------

@HSET
@given(st.lists(DECISION, max_size=12), st.lists(DECISION, max_size=6))
def test_apply_undo_restores_tree(first, second):
    with tempfile.TemporaryDirectory() as d:
        root = small_dataset(Path(d)/'ds'); before, before_dirs = tree(root), dirs(root)
        j = Journal(root)
        decide_all(j, first); j.apply()
        assert sorted(tree(root).values()) == sorted(before.values()) # every byte is still somewhere
        decide_all(j, second); j.apply()
        assert sorted(tree(root).values()) == sorted(before.values())
        assert j.plan() == [] # what was applied is done
        assert all(p.parent.parent.name == TRASH for p in (root/TRASH).rglob('*') if p.is_file()) # never trash in the trash
        for b in [b for b in j.batches() if b['kind'] == 'apply']: j.undo()
        assert tree(root) == before and dirs(root) == before_dirs
        with pytest.raises(NothingToUndoError): j.undo()
        assert sorted(os.listdir(d)) == ['ds'] # nothing written outside the dataset

def crash_after(n, before_journal=False):
    "A rename that fails after `n` moves; `before_journal`: the n+1th rename happens, then the crash (before its journal line)."
    calls = []
    def rename(s, dst):
        if len(calls) == n:
            if before_journal: os.rename(s, dst)
            raise KeyboardInterrupt('power cut')
        calls.append(s); os.rename(s, dst)
    return rename

@HSET
@given(st.lists(DECISION, min_size=1, max_size=12), st.integers(0, 8), st.booleans(), st.sampled_from(['rollback', 'complete']))
def test_interrupted_apply_recovers(decisions, n, before_journal, how):
    with tempfile.TemporaryDirectory() as d:
        root = small_dataset(Path(d)/'ds'); before = tree(root)
        twin = small_dataset(Path(d)/'twin'); jt = Journal(twin); decide_all(jt, decisions); jt.apply()
        j = Journal(root); decide_all(j, decisions)
        moves = j.plan()
        journal._rename = crash_after(n, before_journal)
        try: j.apply()
        except KeyboardInterrupt: pass
        finally: journal._rename = os.rename
        if n >= len(moves): return # finished before the crash
        assert j.pending() is not None
        with pytest.raises(CleanError, match='recover'): j.apply()
        Journal(root).recover(how) # as after a kernel restart
        assert j.pending() is None
        assert tree(root) == (before if how == 'rollback' else tree(twin))
        if how == 'complete': j.undo(); assert tree(root) == before

@HSET
@given(st.text(max_size=12))
def test_any_class_name_is_refused_or_safe(label):
    with tempfile.TemporaryDirectory() as d:
        root = small_dataset(Path(d)/'ds'); before = tree(root)
        j = Journal(root)
        try: j.decide('black/0.jpg', 'relabel', label)
        except UnsafeLabelError as e: assert str(e); return
        moves = j.apply()
        assert sorted(os.listdir(d)) == ['ds']
        for _, dst in moves: assert (root/dst).resolve().is_relative_to(root.resolve()) and (root/dst).is_file()
        j.undo(); assert tree(root) == before

@pytest.mark.parametrize('label', ['..', '../outside', 'a/b', '.hidden', '', ' x', 'a\\b', 'x\x00y', '/etc'])
def test_bad_class_names(label):
    with pytest.raises(UnsafeLabelError): check_label(label)

def test_symlinked_class_folder_outside_is_refused(tmp_path):
    root = small_dataset(tmp_path/'ds'); (tmp_path/'elsewhere').mkdir()
    (root/'linked').symlink_to(tmp_path/'elsewhere', target_is_directory=True)
    j = Journal(root); j.decide('black/0.jpg', 'relabel', 'linked')
    with pytest.raises(UnsafeLabelError, match='outside the dataset'): j.apply()
    assert list((tmp_path/'elsewhere').iterdir()) == []

def test_collisions_and_trash(tmp_path):
    root = small_dataset(tmp_path/'ds'); before = tree(root)
    j = Journal(root)
    j.decide('black/0.jpg', 'relabel', 'grizzly'); j.decide('teddy/0.jpg', 'relabel', 'grizzly'); j.decide('teddy/1.jpg', 'delete')
    moves = dict(j.apply())
    assert moves == {'black/0.jpg': 'grizzly/0-1.jpg', 'teddy/0.jpg': 'grizzly/0-2.jpg', 'teddy/1.jpg': f'{TRASH}/teddy/1.jpg'}
    assert (root/'grizzly'/'0.jpg').read_bytes() == before['grizzly/0.jpg']
    assert (root/'grizzly'/'0-1.jpg').read_bytes() == before['black/0.jpg']
    assert set(j.decisions()) == {'grizzly/0-1.jpg', 'grizzly/0-2.jpg', f'{TRASH}/teddy/1.jpg'}
    j.undo(); assert tree(root) == before

def test_relative_paths_cannot_escape(tmp_path):
    root = small_dataset(tmp_path/'ds'); j = Journal(root)
    with pytest.raises(UnsafeLabelError, match='outside'): j.decide('../ds/../x.jpg', 'delete', hash='0'*64)
    with pytest.raises(UnsafeLabelError, match='outside'): j.decide(tmp_path/'x.jpg', 'keep', hash='0'*64)

def test_changed_file_is_not_moved(tmp_path):
    root = small_dataset(tmp_path/'ds'); j = Journal(root)
    j.decide('black/0.jpg', 'delete'); (root/'black'/'0.jpg').write_bytes(b'another photo now')
    assert j.plan() == []

def test_torn_journal_line(tmp_path):
    root = small_dataset(tmp_path/'ds'); j = Journal(root)
    j.decide('black/0.jpg', 'delete')
    with open(j.path, 'ab') as f: f.write(b'{"t": "decide", "pa') # a crash in the middle of a write
    j.decide('black/1.jpg', 'keep')
    assert set(Journal(root).decisions()) == {'black/0.jpg', 'black/1.jpg'}

def test_to_csv(tmp_path):
    root = small_dataset(tmp_path/'ds'); j = Journal(root); before = tree(root)
    j.decide('black/0.jpg', 'relabel', 'grizzly'); j.decide('teddy/2.jpg', 'delete')
    import pandas as pd
    df = pd.read_csv(j.to_csv())
    assert len(df) == 8 and df.set_index('name').label['black/0.jpg'] == 'grizzly'
    assert 'teddy/2.jpg' not in set(df.name)
    with pytest.raises(UnsafeLabelError): j.to_csv('../cleaned.csv')
    (root/'cleaned.csv').unlink(); assert tree(root) == before

# --- Confident Learning ---------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.integers(0, 2**32-1), st.floats(0, 0.3))
def test_confident_learning_finds_flips(k, seed, noise):
    "With confident, correct probabilities, exactly the flipped labels are issues and their number is estimated right."
    rng = np.random.default_rng(seed); n = 20*k
    true = np.repeat(np.arange(k), 20)
    P = np.full((n, k), 0.05/(k-1)); P[np.arange(n), true] = 0.95
    y = true.copy(); flip = rng.random(n) < noise
    y[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    mask, est = find_label_issues(P, y)
    assert (mask == (y != true)).all()
    assert est == flip.sum()

def test_oof_probs_messages():
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(TooFewClassesError, match='Only one class'): out_of_fold_probs(X, ['a']*6)
    with pytest.raises(TooFewClassesError, match="'b' has only one photo"): out_of_fold_probs(X, ['a']*5 + ['b'])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); P, cls = out_of_fold_probs(X, ['a']*3 + ['b']*3)
    assert '3 folds' in str(w[0].message) and P.shape == (6, 2) and cls == ['a', 'b']

# --- Datasets of real pictures ----------------------------------------------------------------------

COLOURS = {'red': (200, 30, 30), 'green': (30, 170, 40), 'blue': (30, 50, 200)}

def colour_dataset(root:Path, n=7, seed=0)->Path:
    "Small noisy pictures of three colours, a class each."
    rng = np.random.default_rng(seed)
    for c, rgb in COLOURS.items():
        (root/c).mkdir(parents=True)
        for i in range(n):
            a = np.clip(np.array(rgb) + rng.normal(0, 25, (72, 96, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root/c/f'{c}{i}.jpg', quality=92)
    return root

def test_label_issues_pixels(tmp_path):
    root = colour_dataset(tmp_path/'ds')
    shutil.move(root/'red'/'red0.jpg', root/'blue'/'red0.jpg')
    (root/'green'/'broken.jpg').write_bytes(b'<html>404</html>')
    shutil.copy(root/'green'/'green1.jpg', root/'red'/'green1 copy.jpg')
    df = label_issues(root, embedder=PixelEmbedder(4), cache_dir=tmp_path/'cache', progress=False)
    assert list(df.columns[:7]) == ['path', 'label', 'pred', 'p_label', 'p_pred', 'score', 'is_issue']
    assert len(df) == 23 and df.path[0].name == 'broken.jpg' and 'web page' in df.reason[0]
    by = df.set_index(df.path.map(lambda p: p.name))
    assert by.label_issue['red0.jpg'] and by.pred['red0.jpg'] == 'red'
    assert 'duplicate' in by.kinds['green1 copy.jpg'] and 'labelled' in by.reason['green1 copy.jpg']
    assert by.is_issue.sum() <= 6
    assert not list((tmp_path/'ds').glob('.bearlab-cache')) # the cache is not in the dataset

def test_bad_datasets(tmp_path):
    with pytest.raises(EmptyDatasetError, match='no folder'): label_issues(tmp_path/'nothing')
    (tmp_path/'empty').mkdir()
    with pytest.raises(EmptyDatasetError, match='No photos'): label_issues(tmp_path/'empty')
    one = colour_dataset(tmp_path/'one'); shutil.rmtree(one/'red'); shutil.rmtree(one/'green')
    with pytest.raises(TooFewClassesError, match='Only one class'): label_issues(one, embedder=PixelEmbedder(), cache_dir=tmp_path/'c', progress=False)
    bad = tmp_path/'bad'; (bad/'a').mkdir(parents=True); (bad/'b').mkdir()
    for c in 'ab': (bad/c/'x.jpg').write_bytes(b'not a photo')
    with pytest.raises(EmptyDatasetError, match='could be read'): label_issues(bad, embedder=PixelEmbedder(), cache_dir=tmp_path/'c', progress=False)
    with pytest.raises(CleanError, match='one label per photo'): label_issues_from([bad/'a'/'x.jpg'], ['a', 'b'])

def test_cache_is_used(tmp_path):
    root = colour_dataset(tmp_path/'ds', n=3); files, _ = dataset_items(root)
    calls = []
    class Counting(PixelEmbedder):
        def __call__(self, imgs): calls.append(len(imgs)); return super().__call__(imgs)
    a = scan_images(files, Counting(), tmp_path/'cache', progress=False)[1]
    b = scan_images(files, Counting(), tmp_path/'cache', progress=False)[1]
    assert calls == [9] and np.array_equal(a, b)

# --- The widget, headless ---------------------------------------------------------------------------

def test_widget_headless(tmp_path):
    root = colour_dataset(tmp_path/'ds')
    shutil.move(root/'red'/'red0.jpg', root/'blue'/'red0.jpg')
    before = tree(root)
    kw = dict(embedder=PixelEmbedder(4), cache_dir=tmp_path/'cache')
    df = label_issues(root, progress=False, **kw)
    cl = ImageCleaner(df, page_size=4, **kw); w = cl.widget
    assert cl.n_pages == 6 and len(cl.grid.children) == 4
    assert 'var(--jp-ui-font-color1' in cl.to_html() and '#555' not in cl.to_html()  # theme colours, dark or light
    cl.filter_widgets['mismatch'].value = True
    assert all(r.pred != r.label for r in cl.view().itertuples())
    card = next(c for c in cl.grid.children if c.path.name == 'red0.jpg')
    accept = next(v for t, v in card.menu.options if t.startswith('accept'))
    assert accept == 'relabel:red'
    card.menu.value = accept
    cl.filter_widgets['mismatch'].value = False
    cl.buttons['next'].click(); assert cl.page == 1
    cl.buttons['keep_rest'].click()
    assert all(c.menu.value == 'keep' for c in cl.grid.children)
    cl.grid.children[0].menu.value = 'delete'
    # a fresh cleaner (a kernel restart) shows the same choices
    cl2 = ImageCleaner(df, page_size=4, **kw); cl2.widget; cl2.go(1)
    assert [c.menu.value for c in cl2.grid.children] == ['delete', 'keep', 'keep', 'keep']
    cl2.buttons['preview'].click(); assert tree(root) == before
    cl2.buttons['apply'].click()
    assert 'Moved 2 files' in cl2.status_line.value and (root/'red'/'red0.jpg').exists()
    assert all(TRASH not in Path(p).parts for p in cl2.view().path)
    cl2.buttons['refresh'].click()
    assert 'Re-ranked' in cl2.status_line.value and len(cl2.df) == 20
    cl2.buttons['undo'].click(); assert tree(root) == before
    photos = [f for f in root.rglob('*.jpg') if TRASH not in f.parts]
    assert sorted(Path(p).name for p in cl2.view().path) == sorted(f.name for f in photos)  # refresh, undo: all back in the queue
    cl2.buttons['undo'].click(); assert 'Nothing to undo' in cl2.status_line.value # an error shown, not raised
    p, n = cl2.reviewed(); assert (p, n) == (2, 5)
    cl2.buttons['csv'].click(); assert 'Wrote' in cl2.status_line.value
    cl2.grid.children[0].menu.value = 'keep'; assert 'Wrote' not in cl2.status_line.value  # says what the last action did

# --- The real embedder, end to end ------------------------------------------------------------------

def photo_dataset(root:Path, n=7)->Path:
    from skimage import data as skdata
    rng = np.random.default_rng(0)
    for cls in ['chelsea', 'coffee', 'rocket']:
        img = Image.fromarray(getattr(skdata, cls)()).convert('RGB'); w, h = img.size
        (root/cls).mkdir(parents=True)
        for i in range(n):
            s = rng.uniform(0.55, 0.9); cw, ch = int(w*s), int(h*s); x, y = rng.integers(0, w-cw+1), rng.integers(0, h-ch+1)
            img.crop((x, y, x+cw, y+ch)).resize((128, round(128*ch/cw))).save(root/cls/f'{cls}{i}.jpg', quality=90)
    return root

def test_lite0_end_to_end(tmp_path):
    root = photo_dataset(tmp_path/'ds')
    shutil.move(root/'chelsea'/'chelsea0.jpg', root/'rocket'/'chelsea0.jpg')
    shutil.move(root/'coffee'/'coffee0.jpg', root/'chelsea'/'coffee0.jpg')
    df = label_issues(root, embedder=Lite0Embedder(128), cache_dir=tmp_path/'cache', progress=False)
    assert set(df.path[df.label_issue].map(lambda p: p.name)) == {'chelsea0.jpg', 'coffee0.jpg'}
    assert df.attrs['n_label_issues'] == 2
    assert set(df.path[:2].map(lambda p: p.name)) == {'chelsea0.jpg', 'coffee0.jpg'}

# --- In Voila, in a real browser ----------------------------------------------------------------------

def wait_until(cond, timeout=60):
    "Poll `cond` until true; a file the kernel is moving right now (FileNotFoundError) just means 'not yet'."
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond(): return True
        except FileNotFoundError: pass
        time.sleep(0.3)
    raise AssertionError('timed out waiting')

@pytest.mark.slow
@pytest.mark.browser
def test_cleaner_in_voila(tmp_path, page):
    import nbformat
    from conftest import ROOT, free_port, start_server, stop_server
    root = colour_dataset(tmp_path/'ds'); before = tree(root); cache = str(tmp_path/'cache')
    code = (f"from bearlab.clean import *\nkw = dict(embedder=PixelEmbedder(4), cache_dir={cache!r})\n"
            f"df = label_issues({str(root)!r}, progress=False, **kw)\nImageCleaner(df, page_size=4, **kw)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    nbformat.write(nb, str(tmp_path/'clean.ipynb'))
    port = free_port(); url = f'http://127.0.0.1:{port}/'
    proc = start_server([str(ROOT/'.venv'/'bin'/'voila'), str(tmp_path/'clean.ipynb'), '--port', str(port), '--no-browser',
                         '--Voila.ip=127.0.0.1'], url, tmp_path/'voila.log', timeout=180)
    try:
        page.goto(url, timeout=120_000)
        page.wait_for_selector('.bearlab-card img', timeout=180_000)
        assert page.locator('.bearlab-card').count() == 4
        overflow = "els => els.filter(e => e.scrollWidth > e.clientWidth + 0.5).map(e => e.className + ': ' + e.scrollWidth + '>' + e.clientWidth)"
        assert page.locator('.bearlab-card').evaluate_all(overflow) == []  # no card shows a scrollbar
        assert page.locator('.bearlab-cleaner button').count() >= 8
        assert page.locator('.bearlab-cleaner button').evaluate_all(overflow) == []  # no button label is cut
        page.screenshot(path=str(tmp_path/'cleaner-voila.png'), full_page=True); print('screenshot:', tmp_path/'cleaner-voila.png')
        page.locator('.bearlab-choice select').first.select_option('delete')
        wait_until(lambda: [d['action'] for d in Journal(root).decisions().values()] == ['delete'])
        page.locator('.bearlab-apply').click()
        wait_until(lambda: (root/TRASH).exists())
        page.locator('.bearlab-status').filter(has_text='Moved 1 file.').wait_for(timeout=30_000)
        page.locator('.bearlab-undo').click()
        wait_until(lambda: tree(root) == before)
        page.locator('.bearlab-next').click()
        page.locator('.bearlab-status').wait_for(timeout=10_000)
        assert 'Traceback' not in page.content()
        assert [e for e in page.console_errors if 'ERR_NAME_NOT_RESOLVED' not in e] == [] # offline: Voila's web fonts can't load
    finally: stop_server(proc)

# --- fastai's ImageClassifierCleaner, for the book's code ----------------------------------------------

from bearlab.clean import ImageClassifierCleaner, learner_items

def bear_learner_on(path):
    "An untrained Learner on `path`, as fastbook makes it (the cleaner only reads its DataLoaders)."
    from bearlab.data import bear_dataloaders, bear_learner
    return bear_learner(bear_dataloaders(path, size=64, bs=16, num_workers=0))

@pytest.fixture
def book(tmp_path):
    "(dataset, Learner, cleaner kwargs): practice bears with a grizzly filed under black, a teddy under grizzly, a copied photo."
    from bearlab.data import practice_dataset
    path = practice_dataset(tmp_path/'bears', n=8)
    shutil.move(path/'grizzly'/'000.jpg', path/'black'/'grizzly000.jpg')
    shutil.move(path/'teddy'/'001.jpg', path/'grizzly'/'teddy001.jpg')
    shutil.copy(path/'black'/'003.jpg', path/'black'/'003b.jpg')
    return path, bear_learner_on(path), dict(embedder=PixelEmbedder(), cache_dir=tmp_path/'cache', progress=False)

def decide_book(cl, path):
    "The decisions of the book's example: delete the copy, relabel the two misfiled photos."
    cl.choose(path/'black'/'003b.jpg', 'delete')
    cl.choose(path/'black'/'grizzly000.jpg', 'relabel:grizzly')
    cl.choose(path/'grizzly'/'teddy001.jpg', 'relabel:teddy')

def book_loops(cleaner, path):
    "fastbook chapter 2's two loops, verbatim."
    for idx in cleaner.delete(): cleaner.fns[idx].unlink()
    for idx,cat in cleaner.change(): shutil.move(str(cleaner.fns[idx]), path/cat)

def test_classifier_cleaner_interface(book):
    path, learn, kw = book
    ns = {}; exec('from fastai.vision.widgets import *\nfrom bearlab.clean import *', ns)
    assert ns['ImageClassifierCleaner'] is ImageClassifierCleaner # bearlab imported after fastai wins
    cl = ImageClassifierCleaner(learn, max_n=5, height=100, width=200, opts=('ignored',), **kw)
    assert (cl.page_size, cl.thumb, cl.root) == (5, 100, path.resolve())
    assert len(cl.fns) == 25 and all(isinstance(f, Path) for f in cl.fns)
    assert set(cl.fns) == {Path(f) for f in list(learn.dls.train.items) + list(learn.dls.valid.items)}
    assert list(cl.fns) == list(cl.df.path) and cl.df.reason.map(lambda r: isinstance(r, str)).all()
    valid = set(learn.dls.valid.items)
    assert cl.df.split.tolist() == ['valid' if f in valid else 'train' for f in cl.fns] # the Learner's split
    assert cl.delete() == [] and cl.change() == [] and type(cl.delete()).__name__ == 'L'
    b = cl._repr_mimebundle_()
    assert 'application/vnd.jupyter.widget-view+json' in b and b['text/plain'].startswith('ImageClassifierCleaner:')
    assert ImageClassifierCleaner(learn, max_n=5, page_size=7, **kw).page_size == 7 # bearlab's own name wins

def test_learner_items_labels_from_pipeline(book):
    path, _, kw = book
    from fastai.vision.all import ImageDataLoaders, Resize
    from bearlab.files import image_files
    from bearlab.data import bear_learner
    dls = ImageDataLoaders.from_path_func(path, image_files(path), lambda f: f.parent.name.upper(), valid_pct=0.25, seed=0,
                                          item_tfms=Resize(64), bs=8, num_workers=0)
    files, labels = learner_items(bear_learner(dls))
    assert labels == [f.parent.name.upper() for f in files] and len(files) == 25
    cl = ImageClassifierCleaner(bear_learner(dls), **kw)
    cl.choose(path/'grizzly'/'teddy001.jpg', 'relabel:TEDDY'); cl.choose(path/'grizzly'/'002.jpg', 'relabel:GRIZZLY')
    assert cl.change() == [(cl.fns.index(path/'grizzly'/'teddy001.jpg'), 'TEDDY')] # relabelling to its own label is no change
    fake = SimpleNamespace(dls=SimpleNamespace(train_ds=SimpleNamespace(items=files[:3]), valid_ds=SimpleNamespace(items=files[3:5])))
    assert learner_items(fake) == (files[:5], [f.parent.name for f in files[:5]]) # no label pipeline: parent_label

def test_classifier_decisions_survive_filters_and_pages(book):
    path, learn, kw = book
    cl = ImageClassifierCleaner(learn, max_n=4, **kw); cl.widget
    cl.set_filter(label='black')
    first = next(c for c in cl.grid.children if c.path.name != 'grizzly000.jpg'); first.menu.value = 'delete' # through the widget
    cl.choose(path/'black'/'grizzly000.jpg', 'relabel:grizzly')
    cl.filter_widgets['label'].value = 'grizzly'; cl.buttons['next'].click(); assert cl.page == 1
    cl.choose(path/'grizzly'/'teddy001.jpg', 'relabel:teddy')
    cl.set_filter(label='teddy', split='valid'); cl.go(2)
    idx = {f: i for i, f in enumerate(cl.fns)}
    want_change = sorted([(idx[path/'black'/'grizzly000.jpg'], 'grizzly'), (idx[path/'grizzly'/'teddy001.jpg'], 'teddy')])
    assert cl.delete() == [idx[first.path]] and sorted(cl.change()) == want_change
    cl2 = ImageClassifierCleaner(learn, **kw) # a kernel restart: the journal has it all
    assert {cl2.fns[i] for i in cl2.delete()} == {first.path}
    assert {(cl2.fns[i], c) for i, c in cl2.change()} == {(cl.fns[i], c) for i, c in cl.change()}
    cl.choose(first.path, ''); assert cl.delete() == [] # undecided again
    cl.choose(first.path, 'delete')
    before = tree(path)
    cl.apply() # bearlab's own way: carried out, so nothing is left for the book's loops
    assert cl.delete() == [] and cl.change() == [] and (path/TRASH).exists()
    book_loops(cl, path) # and running them does nothing
    cl.undo(); assert tree(path) == before
    assert cl.delete() == [idx[first.path]] and sorted(cl.change()) == want_change

def test_book_loops(book):
    path, learn, kw = book
    cleaner = ImageClassifierCleaner(learn, **kw)
    decide_book(cleaner, path)
    assert len(cleaner.delete()) == 1 and len(cleaner.change()) == 2
    book_loops(cleaner, path)
    assert not (path/'black'/'003b.jpg').exists() and not (path/'black'/'grizzly000.jpg').exists()
    assert (path/'grizzly'/'grizzly000.jpg').is_file() and (path/'teddy'/'teddy001.jpg').is_file()
    assert not (path/TRASH).exists() # the book deletes for good
    assert cleaner.delete() == [] and cleaner.change() == []
    book_loops(cleaner, path) # a second run has nothing to do
    # the same cleaner copes with files changed behind its back
    assert '3 of 25 photos decided · 0 moves to apply' in cleaner.status()
    assert cleaner.apply(dry_run=True) == [] and cleaner.apply() == []
    cleaner.widget; cleaner.go(0); assert 'data:image/jpeg' in cleaner.to_html()
    cleaner.refresh(); assert len(cleaner.df) == 22 # photos gone from where they were are left out

def test_cleaner_after_book_loops(book, capsys):
    path, learn, kw = book
    cleaner = ImageClassifierCleaner(learn, **kw); decide_book(cleaner, path); book_loops(cleaner, path)
    capsys.readouterr()
    old = ImageClassifierCleaner(learn, **kw) # the Learner still lists the old paths
    assert '3 of the Learner' in capsys.readouterr().out and len(old.fns) == 22
    assert old.delete() == [] and old.change() == [] and old.apply(dry_run=True) == [] and old.apply() == []
    fresh = ImageClassifierCleaner(bear_learner_on(path), **kw)
    assert len(fresh.fns) == 24 and path/'grizzly'/'grizzly000.jpg' in fresh.fns
    assert fresh.df.set_index('path').label[path/'teddy'/'teddy001.jpg'] == 'teddy'
    assert fresh.status().startswith('0 of 24 photos decided · 0 moves to apply')
    assert fresh.delete() == [] and fresh.apply(dry_run=True) == [] and fresh.apply() == []
    before = tree(path)
    fresh.choose(path/'teddy'/'teddy001.jpg', 'delete'); assert len(fresh.delete()) == 1
    assert fresh.apply() == [('teddy/teddy001.jpg', f'{TRASH}/teddy/teddy001.jpg')]
    fresh.undo(); assert tree(path) == before
    fresh.choose(path/'teddy'/'teddy001.jpg', '') # undone, and undecided
    plain = ImageCleaner(label_issues(path, **kw), **{k: kw[k] for k in ('embedder', 'cache_dir')})
    assert len(plain.df) == 24 and plain.apply(dry_run=True) == [] and plain.apply() == []
    j = Journal(path)
    assert 'black/grizzly000.jpg' in j.decisions() and j.plan() == [] # a decision whose photo is gone applies to nothing

def test_classifier_replaced_photo_not_listed(book):
    path, learn, kw = book
    cl = ImageClassifierCleaner(learn, **kw); decide_book(cl, path)
    shutil.copy(path/'black'/'004.jpg', path/'black'/'003b.jpg') # another photo now has that name
    assert cl.delete() == [] and len(cl.change()) == 2

def test_classifier_cleaner_nothing_left(book):
    path, learn, kw = book
    for f in path.rglob('*.jpg'): f.unlink()
    with pytest.raises(EmptyDatasetError, match='on disk any more'): ImageClassifierCleaner(learn, **kw)

def test_gone_file_is_not_moved(tmp_path):
    root = small_dataset(tmp_path/'ds'); j = Journal(root)
    j.decide('black/0.jpg', 'delete'); j.decide('black/1.jpg', 'relabel', 'teddy')
    (root/'black'/'0.jpg').unlink(); shutil.move(root/'black'/'1.jpg', root/'teddy'/'new.jpg')
    assert j.plan() == [] and j.apply() == [] and j.cleaned_labels().name.str.startswith('black/').sum() == 1

def test_clean_reexports():
    "`bearlab.clean` gives every name of the journal and the scoring, as the same objects, also to `import *`."
    import bearlab.clean
    for m in (journal, bearlab.issues):
        for n in m.__all__: assert getattr(bearlab.clean, n) is getattr(m, n) and n in bearlab.clean.__all__, n

def test_relative_dataset_path(tmp_path, monkeypatch):
    "fastbook's `path = Path('bears')`: the cleaner's decisions apply and undo with a dataset given relative to the current folder."
    root = colour_dataset(tmp_path/'bears'); before = tree(root)
    monkeypatch.chdir(tmp_path)
    kw = dict(embedder=PixelEmbedder(4), cache_dir=tmp_path/'cache')
    cl = ImageCleaner(label_issues(Path('bears'), progress=False, **kw), page_size=4, **kw)
    victim = Path(cl.df.path.iloc[0]); assert not victim.is_absolute()
    cl.choose(victim, 'delete')
    assert [m[0] for m in cl.apply()] == [victim.relative_to('bears').as_posix()]
    assert not victim.exists() and (root/TRASH).exists()
    cl.undo(); assert tree(root) == before

def test_feedback_keeps_a_class_name_with_a_space(tmp_path):
    "A photo flagged in the app as 'polar bear' goes into the dataset's `polar bear/`, not a new `polar-bear/`."
    import io, json
    from bearlab.app import keep_flagged
    from bearlab.inference import NOT_A_BEAR
    from bearlab.inference import Prediction
    from bearlab.issues import take_feedback
    def jpeg(colour):
        b = io.BytesIO(); Image.new('RGB', (32, 32), colour).save(b, 'JPEG'); return b.getvalue()
    bears = tmp_path/'bears'
    for c, colour in [('polar bear', (250, 250, 250)), ('grizzly', (120, 80, 40))]:
        (bears/c).mkdir(parents=True); (bears/c/'0.jpg').write_bytes(jpeg(colour))
    fb, pred = tmp_path/'feedback', Prediction('grizzly', {'grizzly': .8, 'polar bear': .2})
    kept = keep_flagged(fb, jpeg((240, 240, 235)), 'polar bear', pred)
    keep_flagged(fb, jpeg((9, 9, 9)), NOT_A_BEAR, pred)
    assert kept.parent.name == 'polar bear'
    # a flag an older app kept as `polar-bear/`, with what the person said in feedback.jsonl
    (fb/'polar-bear').mkdir(); (fb/'polar-bear'/'old.jpg').write_bytes(jpeg((230, 235, 240)))
    with open(fb/'feedback.jsonl', 'a') as f: f.write(json.dumps({'file': 'polar-bear/old.jpg', 'person': 'polar bear'}) + '\n')
    made = take_feedback(fb, bears)
    assert sorted(p.relative_to(bears).as_posix() for p in made) == [f'polar bear/{kept.name}', 'polar bear/old.jpg']
    assert sorted(p.name for p in bears.iterdir()) == ['grizzly', 'polar bear'] # no new class folder
    assert [p.read_bytes() for p in made if p.name == kept.name] == [kept.read_bytes()]
    assert take_feedback(fb, bears) == [] # once each
    with pytest.raises(UnsafeLabelError, match="can't be used as a label"): keep_flagged(fb, jpeg((1, 2, 3)), '../x', pred)
