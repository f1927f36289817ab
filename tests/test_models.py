"Pretrained weights: Lite0 from the shipped file, the course's ResNets from a real (local) download server."
import http.server, threading
from functools import partial
import pytest, torch
from bearlab.models import efficientnet_lite0, resnet18, WeightsUnavailableError, LITE0_STATS
from conftest import free_port

@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    "A local HTTP server holding a resnet18 state dict, and an empty torch hub cache."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch-home'))
    sd = resnet18().state_dict()
    torch.save(sd, tmp_path/'resnet18-local.pth')
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', free_port()), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}', sd, tmp_path
    srv.shutdown()

def test_resnet_downloads_and_caches(weights_server):
    url, sd, tmp = weights_server
    m = resnet18(pretrained=True, url=f'{url}/resnet18-local.pth')
    assert all(torch.equal(m.state_dict()[k], v) for k, v in sd.items())
    assert (tmp/'torch-home'/'hub'/'checkpoints'/'resnet18-local.pth').exists() # the course's cache, reused offline

def test_resnet_offline_says_what_to_do(weights_server):
    url, _, _ = weights_server
    with pytest.raises(WeightsUnavailableError, match='use `efficientnet_lite0` instead'):
        resnet18(pretrained=True, url=f'{url}/missing.pth')
    with pytest.raises(WeightsUnavailableError, match='Without a network'):
        resnet18(pretrained=True, url=f'http://127.0.0.1:{free_port()}/resnet18-x.pth')

def test_lite0_is_pretrained_and_fits_vision_learner(tmp_path):
    from PIL import Image
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, Normalize
    fresh, shipped = efficientnet_lite0(pretrained=False), efficientnet_lite0()
    assert not torch.equal(fresh.conv_stem.weight, shipped.conv_stem.weight)
    assert efficientnet_lite0(num_classes=3).classifier.out_features == 3
    for c in 'ab':
        (tmp_path/c).mkdir()
        for i in range(3): Image.new('RGB', (40, 30), (i*40, 90, 200 if c == 'a' else 20)).save(tmp_path/c/f'{i}.png')
    dls = ImageDataLoaders.from_folder(tmp_path, valid_pct=0.34, seed=0, item_tfms=Resize(32), bs=2, num_workers=0)
    learn = vision_learner(dls, efficientnet_lite0)
    norm = [t for t in learn.dls.after_batch.fs if isinstance(t, Normalize)][0]
    assert norm.mean.flatten().tolist() == LITE0_STATS[0] and norm.std.flatten().tolist() == LITE0_STATS[1]
    assert torch.equal(learn.model[0][0].weight, shipped.conv_stem.weight) # the body is the pretrained one
