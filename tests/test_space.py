"`bearlab export-space`: the folder for a Hugging Face Space or Binder, its refusals, and its environment built as its Dockerfile builds it."
import json, os, shutil, subprocess, sys, warnings
from pathlib import Path
import pytest, torch
from PIL import Image
from bearlab.cli import main
from bearlab.inference import Classifier
from bearlab.space import export_space
from conftest import ROOT, free_port, stop_server, wait_for_http

BEARLAB = str(ROOT/'.venv'/'bin'/'bearlab')

def exit_message(argv:list)->str:
    "What `bearlab ARGV` exits with."
    with pytest.raises(SystemExit) as e: main(argv)
    return str(e.value.code)

@pytest.fixture(scope='module')
def space(tmp_path_factory)->Path:
    "The built-in model's Space folder, written by the command line."
    out = tmp_path_factory.mktemp('space')/'bears'
    r = subprocess.run([BEARLAB, 'export-space', str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'README.md says how' in r.stdout
    return out

def test_folder_is_complete(space):
    files = sorted(p.relative_to(space).as_posix() for p in space.rglob('*') if p.is_file())
    assert files == ['Dockerfile', 'README.md', 'app.ipynb', 'bearlab-0.1.0-py3-none-any.whl', 'bearlab-export.json',
                     'binder/postBuild', 'binder/requirements.txt', 'binder/runtime.txt',
                     'model/bundle.json', 'model/model.onnx', 'requirements.txt']
    front = (space/'README.md').read_text().split('---\n')[1]
    for line in ('sdk: docker', 'app_port: 7860', 'emoji: 🐻', 'colorFrom: yellow', 'colorTo: red'): assert line in front.splitlines()
    reqs = [l for l in (space/'requirements.txt').read_text().splitlines() if not l.startswith('#')]
    assert {'onnxruntime', 'voila>=0.5'} <= set(reqs) and not [r for r in reqs if 'torch' in r or 'fastai' in r]
    assert str(space.parent) not in (space/'README.md').read_text() # nothing of this machine is published

def test_refuses_a_folder_of_yours_and_a_web_export(tmp_path):
    mine = tmp_path/'mine'; mine.mkdir(); (mine/'thesis.tex').write_text('years of work')
    msg = exit_message(['export-space', str(mine)])
    assert str(mine) in msg and "never writes over a folder of yours" in msg and 'Give a new folder' in msg
    assert [p.name for p in mine.iterdir()] == ['thesis.tex']
    (tmp_path/'file').write_text('x')
    assert 'is a file, not a folder' in exit_message(['export-space', str(tmp_path/'file')])
    site = tmp_path/'site'; site.mkdir()
    (site/'bearlab-export.json').write_text(json.dumps({'format': 'bearlab-web-export', 'files': ['index.html']}))
    (site/'index.html').write_text('<p>my page</p>')
    assert "isn't a folder `bearlab export-space` wrote" in exit_message(['export-space', str(site)])
    assert (site/'index.html').read_text() == '<p>my page</p>'

@pytest.mark.parametrize('how', ['missing', 'mismatch'])
def test_refuses_a_bundle_the_server_cant_run(space, tmp_path, how):
    b = tmp_path/'bundle'; shutil.copytree(space/'model', b)
    if how == 'missing': (b/'model.onnx').unlink()
    else: (b/'bundle.json').write_text((b/'bundle.json').read_text().replace('"n_logits": 1000', '"n_logits": 10'))
    msg = exit_message(['export-space', str(tmp_path/'out'), '--model', str(b)])
    want = {'missing': f"{b/'model.onnx'} is missing", 'mismatch': f"{b/'bundle.json'} doesn't match {b/'model.onnx'}"}[how]
    assert want in msg and 'export_bundle(learn, dir)' in msg, msg
    assert not (tmp_path/'out').exists()

class CumMax(torch.nn.Module):
    "A model ONNX has no operator for (`cummax`)."
    def __init__(self): super().__init__(); self.fc = torch.nn.Linear(3, 2)
    def forward(self, x): return self.fc(torch.cummax(x, 1)[0].mean((2, 3)))

def test_refuses_a_model_that_cant_be_exported_to_onnx(tmp_path, monkeypatch):
    from fastai.vision.all import ImageDataLoaders, Learner, Resize
    monkeypatch.setenv('BEARLAB_CACHE', str(tmp_path/'cache'))
    d = tmp_path/'data'
    for c, col in (('a', (200, 40, 40)), ('b', (40, 40, 200))):
        (d/c).mkdir(parents=True)
        for i in range(4): Image.new('RGB', (40, 30), col).save(d/c/f'{i}.jpg')
    dls = ImageDataLoaders.from_folder(d, valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=2, num_workers=0)
    Learner(dls, CumMax()).export(tmp_path/'export.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        msg = exit_message(['export-space', str(tmp_path/'out'), '--model', str(tmp_path/'export.pkl')])
    assert f"The model in {tmp_path/'export.pkl'} can't be exported to ONNX" in msg and 'bearlab app' in msg, msg
    assert not (tmp_path/'out').exists()

def test_export_again_replaces_only_its_files(space, tmp_path):
    out = shutil.copytree(space, tmp_path/'again')
    (out/'NOTES.md').write_text('mine')
    (out/'model'/'model.onnx').write_bytes(b'stale')
    export_space(out)
    assert (out/'NOTES.md').read_text() == 'mine'
    assert (out/'model'/'model.onnx').read_bytes() == (space/'model'/'model.onnx').read_bytes()

def dockerfile_steps(space:Path)->tuple:
    "The Dockerfile's RUN lines that install packages (the user it creates is Docker's business), and its CMD."
    lines = (space/'Dockerfile').read_text().splitlines()
    runs = [l.removeprefix('RUN ') for l in lines if l.startswith('RUN ') and not l.startswith('RUN useradd')]
    cmd = json.loads(next(l.removeprefix('CMD ') for l in lines if l.startswith('CMD ')))
    assert 'FROM python:3.11-slim' in lines and 'RUN useradd -m -u 1000 user' in lines and 'EXPOSE 7860' in lines
    return runs, cmd

@pytest.mark.slow
@pytest.mark.browser
def test_space_built_as_its_dockerfile_says_classifies(space, tmp_path, page, request, capsys):
    "A fresh virtualenv gets what the Dockerfile's RUN lines install, from the package index; its CMD serves the app."
    from test_app import grizzly_png, open_app, upload
    runs, cmd = dockerfile_steps(space)
    assert [r.split(' -r ')[0].split(' ./')[0] for r in runs] == ['pip install --no-cache-dir', 'pip install --no-cache-dir --no-deps']
    app = shutil.copytree(space, tmp_path/'app') # COPY . .
    venv = tmp_path/'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=300)
    path = {'PATH': f"{venv/'bin'}:{os.environ['PATH']}"} # `pip` and `python` are the image's
    env = {k: v for k, v in os.environ.items() if not k.startswith(('BEARLAB_', 'VIRTUAL_ENV', 'PYTHON'))}
    for r in runs:
        out = subprocess.run(r, shell=True, cwd=app, env={**env, **path}, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f'{r}\n{out.stderr[-3000:]}'
    site = next((venv/'lib').glob('python*/site-packages'))
    assert not [m for m in ('torch', 'torchvision', 'timm', 'fastai') if (site/m).exists()], 'the Space would install torch'
    assert subprocess.run([str(venv/'bin'/'python'), '-c', 'import torch'], capture_output=True).returncode != 0
    port = free_port()
    cmd = [{'--port=7860': f'--port={port}', '--Voila.ip=0.0.0.0': '--Voila.ip=127.0.0.1'}.get(a, a) for a in cmd]
    assert cmd[0] == 'python' and f'--port={port}' in cmd and '--Voila.ip=127.0.0.1' in cmd
    (tmp_path/'home').mkdir()
    log = open(tmp_path/'voila.log', 'wb')
    proc = subprocess.Popen(cmd, cwd=app, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**env, **path, 'HOME': str(tmp_path/'home')}) # the container's user: nothing of ours
    url = f'http://127.0.0.1:{port}/'
    photo = tmp_path/'grizzly.png'; photo.write_bytes(grizzly_png(request.config.cache))
    try:
        wait_for_http(url, proc, timeout=180)
        r = page.goto(url, timeout=120_000)
        assert "frame-ancestors 'self' https://huggingface.co" in r.headers['content-security-policy']
        open_app(page, url)
        upload(page, photo)
        said, err = page.locator('.bearlab-prediction').inner_text(), page.locator('.bearlab-error')
        assert not err.is_visible(), err.inner_text()
    except Exception:
        print((tmp_path/'voila.log').read_text(errors='replace')[-4000:]); raise
    finally: stop_server(proc)
    pred = Classifier.load(space/'model').predict(photo)
    assert pred.in_domain and f"It's {pred.label}!" in said and f'{pred.prob:.0%} sure.' in said, said
    with capsys.disabled(): print(f"\nSpace install: {sum(f.stat().st_size for f in venv.rglob('*') if f.is_file())/1e6:.0f} MB")
