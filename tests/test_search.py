"The image searches against the practice server's Openverse, MediaWiki and iNaturalist APIs on 127.0.0.1: every way they fail."
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # torch threads sleep instead of spinning on a shared 2-core machine
import json, time, urllib.parse, urllib.request
from pathlib import Path
import pandas as pd
import pytest
from fastcore.foundation import L
from conftest import free_port
from bearlab.search import *
from bearlab.practice import *
from bearlab.download import *

APIS = {'openverse': Openverse, 'wikimedia': WikimediaCommons, 'inaturalist': INaturalist}
PATHS = {'openverse': '/v1/images/', 'wikimedia': '/w/api.php', 'inaturalist': '/v1/observations'}

@pytest.fixture
def srv():
    s = ImageServer(n_images=45, size=48).start()
    s.retry_after = '0'
    yield s
    s.stop()

@pytest.fixture
def sleeps(monkeypatch):
    "The waits the code asks for, recorded instead of slept: tests check what was asked, never a clock."
    asked = []
    monkeypatch.setattr(time, 'sleep', asked.append)
    return asked

def client(api, srv, per_page=20, **kw):
    b = APIS[api](srv.url, pause=0, **kw); b.per_page = per_page
    return b

def api_requests(srv, api): return [r for r in srv.requests if urllib.parse.urlsplit(r).path == PATHS[api]]

def raw(srv, api, **q):
    "The practice API's answer, as JSON, straight from the server."
    with urllib.request.urlopen(srv.url + PATHS[api].lstrip('/') + '?' + urllib.parse.urlencode(q), timeout=5) as r: return json.load(r)

parametrize = pytest.mark.parametrize('api', list(APIS))

@parametrize
def test_pages_until_enough(srv, api):
    urls = client(api, srv).search('grizzly bear', max_images=40)
    assert isinstance(urls, L) and len(urls) == 40 and len(set(urls)) == 40
    assert len(api_requests(srv, api)) == 3  # 20 a page, one without an image URL, one repeated
    assert all(isinstance(u, ImageURL) and u.startswith(srv.url) for u in urls)
    assert all(u.license and u.creator and u.source_page for u in urls)
    assert urls[0].endswith('/img/grizzly%20bear/0' + ('/medium.jpg' if api == 'inaturalist' else '.jpg'))

@parametrize
def test_stops_at_end_of_results(srv, api):
    urls = client(api, srv).search('black bear', max_images=1000)
    assert len(urls) == 50  # 45 photos and 5 broken or copied URLs; the result without an image URL is skipped
    assert len(api_requests(srv, api)) == 3  # 51 results in pages of 20: no request past the end

@parametrize
def test_empty_result(api):
    with ImageServer(n_images=0) as s:
        assert client(api, s).search('grizzly bear', 10) == []
        with pytest.raises(SearchError, match="found no images for 'grizzly bear'"):
            search_images('grizzly bear', 10, backend=client(api, s))
        assert len(api_requests(s, api)) == 2  # one page each, nothing more

@parametrize
def test_refused(srv, api):
    srv.fail_next(api, '403')
    with pytest.raises(SearchError, match=r' at http://127\.0\.0\.1:\d+/ answered HTTP 403 Forbidden\. Try again later') as e:
        client(api, srv).search('grizzly bear', 10)
    assert e.value.reason == 'answered HTTP 403 Forbidden' and 'urls_from_file' in str(e.value)

@parametrize
def test_waits_as_retry_after_says(srv, api, sleeps):
    srv.retry_after = '7'; srv.fail_next(api, '429')
    urls = client(api, srv, max_wait=30).search('grizzly bear', 10)
    assert len(urls) == 10 and [w for w in sleeps if w] == [7]  # waited as asked, once (pause=0 between pages)
    assert len(api_requests(srv, api)) == 3  # page 1 twice (429, then the answer), then page 2
    srv.retry_after = '0'; srv.fail_next(api, '429', forever=True)
    with pytest.raises(SearchError, match=r'was still busy after 2 retries \(HTTP 429 Too Many Requests\)'):
        client(api, srv).search('grizzly bear', 10)
    assert len(api_requests(srv, api)) == 3 + 3  # bounded: the first try and 2 retries

@parametrize
def test_wait_longer_than_max_wait(srv, api, sleeps):
    srv.retry_after = '3600'; srv.fail_next(api, '503')
    with pytest.raises(SearchError, match=r'asked to wait 3600 s \(HTTP 503 Service Unavailable\), more than max_wait=5 s'):
        client(api, srv, max_wait=5).search('grizzly bear', 10)
    assert not any(sleeps)  # gave up at once rather than wait an hour

@parametrize
def test_hang(srv, api):
    srv.fail_next(api, 'hang')
    with pytest.raises(SearchError, match=r'gave no answer within 0\.5 s \(timeout\)'):
        client(api, srv, timeout=0.5).search('grizzly bear', 10)  # the socket timeout ends it; pytest's timeout bounds the test

@parametrize
def test_malformed_json(srv, api):
    srv.fail_next(api, 'garbage')
    with pytest.raises(SearchError, match="answered with something that isn't JSON"): client(api, srv).search('grizzly bear', 10)

@pytest.mark.parametrize('api', [*APIS, 'duckduckgo'])
def test_answer_too_large_is_refused(srv, api):
    b = DuckDuckGo(srv.url, pause=0) if api == 'duckduckgo' else client(api, srv)
    b.max_answer = 500  # the practice server's pages are a few kB: more than this one allows
    with pytest.raises(SearchError, match=r' at http://127\.0\.0\.1:\d+/ sent an answer of more than 500 bytes, far more') as e:
        b.search('grizzly bear', 10)
    assert 'urls_from_file' in str(e.value)
    b.max_answer = type(b).max_answer
    assert len(b.search('grizzly bear', 10)) == 10  # the same search with the default limit

@parametrize
def test_result_without_image_url_is_skipped(srv, api):
    q = {'openverse': dict(q='x', page=1, page_size=5), 'wikimedia': dict(gsrsearch='x', gsrlimit=5),
         'inaturalist': dict(taxon_name='x', page=1, per_page=5)}[api]
    d = raw(srv, api, **q)
    third = (d['query']['pages'] if api == 'wikimedia' else d['results'])[2]
    assert not (third.get('url') or third.get('imageinfo') or third.get('photos'))  # the server does send one
    urls = client(api, srv).search('x', 40)
    assert len(urls) == 40 and all(u.startswith(srv.url) for u in urls)
    if api != 'inaturalist': assert list(urls) == srv.result_urls('x')[:40]

@parametrize
def test_duplicates_across_pages(srv, api):
    q1, q2 = {'openverse': (dict(q='x', page=1, page_size=10), dict(q='x', page=2, page_size=10)),
              'wikimedia': (dict(gsrsearch='x', gsrlimit=10), dict(gsrsearch='x', gsrlimit=10, gsroffset=10)),
              'inaturalist': (dict(taxon_name='x', page=1, per_page=10), dict(taxon_name='x', page=2, per_page=10))}[api]
    def ids(d): return [r.get('id', r.get('pageid')) for r in (d['query']['pages'] if api == 'wikimedia' else d['results'])]
    assert ids(raw(srv, api, **q1))[-1] == ids(raw(srv, api, **q2))[0]  # the server repeats a result across pages
    urls = client(api, srv, per_page=10).search('x', 25)
    assert len(urls) == 25 and len(set(urls)) == 25

def test_later_page_fails_keeps_what_it_has(srv, caplog):
    srv.fail_next('openverse', '', '500')
    urls = client('openverse', srv, per_page=10).search('grizzly bear', 30)
    assert len(urls) == 9 and 'HTTP 500 Internal Server Error after 9 images; keeping those' in caplog.text

def test_user_agent_names_bearlab(srv):
    seen = []
    import bearlab.search as d
    orig = urllib.request.urlopen
    def spy(req, *a, **kw): seen.append(req.get_header('User-agent')); return orig(req, *a, **kw)
    d.urllib.request.urlopen = spy
    try:
        for api in APIS: client(api, srv).search('grizzly bear', 5)
    finally: d.urllib.request.urlopen = orig
    assert len(seen) == 6 and all(s.startswith('bearlab/') for s in seen)  # 2 pages each

def test_fallback_failing_then_working(srv, caplog):
    srv.fail_next('duckduckgo', '403', forever=True)
    ddg, ov = DuckDuckGo(srv.url, pause=0), client('openverse', srv)
    urls = search_images('teddy bear', 10, backend=[ddg, ov])
    out = '\n'.join(caplog.messages); caplog.clear()
    assert out == f'DuckDuckGo image search at {srv.url} refused the search (HTTP 403); searched Openverse at {srv.url} instead.'
    assert len(urls) == 10 and urls[0].license == 'CC BY 2.0'
    srv.fail_next('wikimedia', 'hang'); srv.fail_next('openverse', '403')
    urls = search_images('teddy bear', 10, backend=[client('wikimedia', srv, timeout=0.5), client('openverse', srv), client('inaturalist', srv)])
    assert len(urls) == 10 and len(caplog.messages) == 1

def test_fallback_all_fail(srv):
    srv.fail_next('duckduckgo', '403', forever=True); srv.fail_next('openverse', 'garbage', forever=True)
    with ImageServer(n_images=0) as empty:
        backends = [DuckDuckGo(srv.url, pause=0), client('openverse', srv), client('wikimedia', empty),
                    Openverse(f'http://127.0.0.1:{free_port()}/')]
        with pytest.raises(SearchError) as e: search_images('teddy bear', 10, backend=backends)
    msg = str(e.value)
    assert msg.startswith("No image search worked for 'teddy bear':")
    for words in ['DuckDuckGo image search at', 'refused the search (HTTP 403)', "answered with something that isn't JSON",
                  "found no images for 'teddy bear'", 'connection refused', 'url_file=']: assert words in msg, words

def test_fastai_call_form_offline(monkeypatch):
    monkeypatch.setenv('BEARLAB_OFFLINE', '1')
    urls = search_images('grizzly bear', 5)
    assert type(urls) is L and len(urls) == 5 and all(isinstance(u, str) for u in urls)

def test_licenses_reach_manifest_and_survive(srv, tmp_path, capsys):
    dest = tmp_path/'bears'/'grizzly'
    urls = search_images('grizzly bear', 12, backend=client('wikimedia', srv))
    df = download_images(dest, urls=urls, timeout=3, progress=False)
    assert {'license', 'creator', 'source_page', 'license_url', 'title'} <= set(df.columns)
    ok = df[df.status == 'ok']
    assert len(ok) >= 8 and (ok.license != '').all() and (ok.creator != '').all() and (ok.source_page != '').all()
    assert ok.creator.str.contains('<').sum() == 0  # Commons' Artist is HTML: the text only
    (tmp_path/'urls.txt').write_text('\n'.join(urls))
    again = download_images(dest, url_file=tmp_path/'urls.txt', timeout=3, progress=False)  # plain URLs: nothing known now
    assert list(again.license) == list(df.license) and list(read_manifest(dest).license) == list(df.license)
    ddg = download_images(tmp_path/'bears'/'black', urls=DuckDuckGo(srv.url, pause=0).search('black bear', 6), progress=False)
    assert (ddg.license == '').all() and (ddg.source_page == '').all()
    bad = dest/ok.file.iloc[1]; bad.write_bytes(b'<html>no</html>')
    quarantine_images(tmp_path/'bears', progress=False)
    a = attributions(tmp_path/'bears')
    assert len(a) == len(ok) - 1 + (ddg.status == 'ok').sum() and bad.name not in set(a.file.str.split('/').str[-1])
    assert (a[a.label == 'grizzly'].license != '').all() and (a[a.label == 'black'].license == '').all()
    md = write_attributions(tmp_path/'bears').read_text()
    assert md.count('\n- ') == len(a) and '## License unknown' in md and 'Practice Photographer' in md
    csv = pd.read_csv(write_attributions(tmp_path/'bears', tmp_path/'credits.csv'), dtype=str, keep_default_na=False)
    assert csv.equals(a)

def test_credits_follow_a_relabelled_photo(srv, tmp_path):
    ds = tmp_path/'bears'
    df = download_images(ds/'grizzly', urls=client('openverse', srv).search('grizzly bear', 6), progress=False)
    f = ds/'grizzly'/df.file[df.status == 'ok'].iloc[0]
    (ds/'black').mkdir(); f.rename(ds/'black'/'renamed.jpg')  # the cleaner moved it to another class, under another name
    a = attributions(ds).set_index('file')
    assert a.loc['black/renamed.jpg', 'license'] == df.license[df.file == f.name].iloc[0]

def test_old_manifest_reads(tmp_path):
    (tmp_path/MANIFEST).write_text('url,file,sha256,status,error\nhttp://a/1.jpg,x.jpg,abc,ok,\n')
    m = read_manifest(tmp_path)
    assert list(m.columns[-5:]) == ['title', 'creator', 'license', 'license_url', 'source_page'] and m.license[0] == ''
