"bearlab.data against real HTTP servers on 127.0.0.1: every fault ends as a manifest row, and nothing invalid lands in dest."
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # torch threads sleep instead of spinning on a shared 2-core machine
import shutil
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st
from conftest import free_port
from bearlab.images import open_image
from bearlab.data import *

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
    df = download_images(urls, dest, timeout=1.5, max_bytes=100_000, progress=False)
    assert list(df.columns) == ['url', 'file', 'sha256', 'status', 'error'] and len(df) == len(urls)
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
    first_run = download_images(urls, tmp_path/'black', progress=False, timeout=2)
    n, removed = len(srv.requests), image_files(tmp_path/'black')[0]
    removed.unlink()  # cleaned away by the user: must not come back
    again = download_images(urls, tmp_path/'black', progress=False, timeout=2)
    assert sorted(srv.requests[n:]) == ['/fault/404', '/fault/page.jpg', '/fault/truncated.jpg']
    assert list(again.status) == list(first_run.status) and not removed.exists()

def test_urls_from_file(srv, tmp_path):
    f = tmp_path/'urls_teddy.csv'
    f.write_text(f'\n{srv.url}img/teddy/0.jpg\n\n# saved from the browser\n"{srv.url}img/teddy/1.jpg",x\nnonsense\n')
    urls = urls_from_file(f)
    assert urls == [f'{srv.url}img/teddy/0.jpg', f'{srv.url}img/teddy/1.jpg', 'nonsense']
    df = download_images(urls, tmp_path/'teddy', progress=False)
    assert list(df.status) == ['ok', 'ok', 'failed']

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
    moved = verify_images(ds, progress=False)
    assert sorted(Path(f).name for f in moved.file) == ['cut.jpg', 'empty.png', 'page.jpg']
    assert all(Path(m).exists() and QUARANTINE in str(m) for m in moved.moved_to)
    assert len(image_files(ds)) == 9 and (ds/QUARANTINE/'journal.csv').exists()
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
