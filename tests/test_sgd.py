"Tests for `bearlab.sgd`: convergence within the noise, mini-batch bookkeeping, divergence, animation frames, logistic regression and the explorer, all headless."
import base64, io, math, re
import matplotlib
matplotlib.use('Agg')  # headless; the library itself never picks a backend
import matplotlib.pyplot as plt
import pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from PIL import Image
from bearlab.sgd import *
from bearlab.sgd import FitError
from bearlab.images import BearlabError

TRUE_A = torch.tensor([3., 2.])

def standard_errors(x, noise):
    "How far least squares can land from the true parameters by chance: noise × sqrt(diag((xᵀx)⁻¹))."
    return noise*torch.linalg.inv(x.T@x).diag().sqrt()

def html_frames(anim)->list:
    "The PNG frames embedded in `anim.to_jshtml()`."
    return re.findall(r'frames\[\d+\] = "data:image/png;base64,([^"]+)"', anim.to_jshtml())

@pytest.fixture(autouse=True)
def no_figures_left():
    "Every function closes the figures it makes: no duplicate still pictures in a notebook."
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before
    plt.close('all')

# --- convergence -------------------------------------------------------------------------------

@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('noise', [0.1, 0.5, 1.0])
def test_full_batch_converges_within_the_noise(seed, noise):
    x, y = linear_data(200, noise=noise, seed=seed)
    t = fit(x, y, lr=0.5, steps=150)
    se = standard_errors(x, noise)
    msg = f'linear_data(200, noise={noise}, seed={seed}): a={t.a.tolist()}, standard errors {se.tolist()}'
    assert not t.diverged, msg
    assert torch.allclose(t.a, least_squares(x, y), atol=1e-3), msg   # gradient descent finds the formula's answer
    assert ((t.a - TRUE_A).abs() < 4*se).all(), msg                   # which is within 4 standard errors of the truth

@pytest.mark.parametrize('seed', [0, 1])
def test_minibatch_converges_within_the_noise(seed):
    x, y = linear_data(1000, noise=0.5, seed=seed)
    t = fit(x, y, lr=0.05, epochs=10, bs=50, seed=seed)
    se = standard_errors(x, 0.5)
    assert not t.diverged and t.steps == 200, f'seed={seed}'
    # SGD with a constant learning rate jitters around the minimum: allow its spread on top of the noise's
    assert ((t.a - TRUE_A).abs() < 4*se + 0.05).all(), f'seed={seed}: a={t.a.tolist()}, se={se.tolist()}'

def test_unbiased_noise():
    x, y = linear_data(10_000, noise=1., seed=7)
    resid = y - x@TRUE_A
    assert abs(resid.mean()) < 4/math.sqrt(10_000), 'seed=7: the noise should average to zero'
    assert 0.95 < resid.std() < 1.05, 'seed=7'

def test_trajectory_shapes_and_first_step():
    x, y = linear_data()
    t = fit(x, y, lr=0.1, steps=25)
    assert t.params.shape == (25, 2) and t.losses.shape == (25,) and t.full_losses.shape == (25,)
    assert t.steps == 25 and t.diverged is False
    assert torch.equal(t.params[0], torch.tensor([-1., 1.]))          # the lesson's starting guess
    assert torch.allclose(t.losses[0], mse_loss(x@t.params[0], y))
    assert t.final_loss < t.full_losses[-1] < t.full_losses[0]
    assert 'seed=0' in repr(t) and 'lr=0.1' in repr(t)

def test_fit_uses_autograd_the_lesson_way():
    "One step by hand equals one step of `fit`: a - lr * d(mse_loss)/da."
    x, y = linear_data(50)
    a = torch.tensor([-1., 1.])
    grad = 2*x.T@(x@a - y)/len(y)
    assert torch.allclose(fit(x, y, lr=0.1, steps=1).a, a - 0.1*grad, atol=1e-6)

# --- mini-batches --------------------------------------------------------------------------------

def test_steps_per_epoch_for_1000_points_in_batches_of_100():
    x, y = linear_data(1000)
    t = fit(x, y, lr=0.1, epochs=3, bs=100)
    assert steps_per_epoch(1000, 100) == 10
    assert t.steps == 30 and len(t.batches) == 30 and all(len(b) == 100 for b in t.batches)
    for e in range(3):
        assert torch.equal(torch.cat(t.batches[10*e:10*(e+1)]).sort().values, torch.arange(1000)), f'epoch {e}'
    assert not torch.equal(t.batches[0], t.batches[10])                # reshuffled each epoch

def test_last_batch_may_be_smaller():
    x, y = linear_data(105)
    t = fit(x, y, lr=0.1, epochs=2, bs=10)
    assert steps_per_epoch(105, 10) == 11 and t.steps == 22
    assert [len(b) for b in t.batches[:11]] == [10]*10 + [5]

def test_full_batch_is_one_step_per_epoch():
    x, y = linear_data(100)
    t = fit(x, y, lr=0.1, epochs=5)
    assert t.steps == 5 and t.batches is None
    assert torch.equal(t.losses, t.full_losses)

def test_shuffle_seed_reproduces():
    x, y = linear_data(200)
    a, b = fit(x, y, lr=0.1, epochs=2, bs=20, seed=3), fit(x, y, lr=0.1, epochs=2, bs=20, seed=3)
    assert torch.equal(a.params, b.params), 'seed=3 twice must give the same fit'
    assert not torch.equal(a.params, fit(x, y, lr=0.1, epochs=2, bs=20, seed=4).params)

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), bs=st.integers(1, 120), epochs=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_every_epoch_uses_every_point_once(n, bs, epochs, seed):
    k = steps_per_epoch(n, bs)
    idx = batch_indices(n, bs, steps=k*epochs, seed=seed)
    assert len(idx) == k*epochs
    for e in range(epochs):
        assert torch.equal(torch.cat(idx[e*k:(e+1)*k]).sort().values, torch.arange(n)), f'n={n} bs={bs} seed={seed} epoch {e}'

# --- divergence and errors ------------------------------------------------------------------------

@pytest.mark.parametrize('lr', [1.1, 1.5, 10., 1e6])
def test_too_high_learning_rate_is_reported_not_crashed(lr):
    x, y = linear_data()
    t = fit(x, y, lr=lr, steps=200)
    assert t.diverged, f'lr={lr} should diverge (max stable lr {max_stable_lr(x):.3f})'
    assert t.steps < 200 and t.full_losses.isfinite().all() and t.params.isfinite().all()
    assert verdict(t, x, y) == 'diverges' and 'diverged' in repr(t)

def test_max_stable_lr_is_the_edge():
    x, y = linear_data(300, seed=5)
    lr = max_stable_lr(x)
    assert not fit(x, y, lr=0.97*lr, steps=300).diverged, f'seed=5, lr={0.97*lr}'
    assert fit(x, y, lr=1.03*lr, steps=300).diverged, f'seed=5, lr={1.03*lr}'

def test_verdicts_in_the_lessons_words():
    x, y = linear_data()
    assert [verdict(fit(x, y, lr=lr, steps=30), x, y) for lr in (0.02, 0.5, 1.1)] == ['too slow', 'just right', 'diverges']

@pytest.mark.parametrize('kwargs, words', [
    (dict(lr=0), 'positive number'), (dict(lr=-1), 'positive number'), (dict(lr=float('nan')), 'positive number'),
    (dict(lr='0.1'), 'positive number'), (dict(lr=0.1, steps=5, epochs=2), 'not both'),
    (dict(lr=0.1, bs=0), 'batch size'), (dict(lr=0.1, bs=2.5), 'batch size'), (dict(lr=0.1, steps=0), 'at least one step')])
def test_bad_arguments_say_what_to_do(kwargs, words):
    x, y = linear_data(20)
    with pytest.raises(FitError, match=words) as e: fit(x, y, **kwargs)
    assert isinstance(e.value, BearlabError)

def test_bad_data_says_what_to_do():
    x, y = linear_data(20)
    with pytest.raises(FitError, match='shape'): fit(x, y[:10], lr=0.1)
    with pytest.raises(FitError, match='shape'): fit(x[:,0], y, lr=0.1)
    y2 = y.clone(); y2[3] = float('inf')
    with pytest.raises(FitError, match='inf or nan'): fit(x, y2, lr=0.1)
    with pytest.raises(FitError, match='too large'): fit(x*1e30, y*1e30, lr=0.1)
    with pytest.raises(FitError, match='one starting parameter per column'): fit(x, y, lr=0.1, a0=(0., 0., 0.))

def test_numpy_integers_are_fine():
    import numpy as np
    x, y = linear_data(100)
    assert fit(x, y, lr=0.1, steps=np.int64(7), bs=np.int64(10)).steps == 7

def test_numpy_data_works():
    x, y = linear_data(50)
    t = fit(x.numpy(), y.numpy(), lr=0.5, steps=100)
    assert torch.allclose(t.a, least_squares(x, y), atol=1e-3)

# --- animations -----------------------------------------------------------------------------------

def test_animate_fit_frames():
    x, y = linear_data(60)
    t = fit(x, y, lr=0.1, steps=50)
    anim = animate_fit(t, x, y, frames=12)
    assert len(list(anim.new_frame_seq())) == 12
    frames = html_frames(anim)
    assert len(frames) == 12
    imgs = [Image.open(io.BytesIO(base64.b64decode(f.replace('\\n', '')))) for f in frames]
    assert imgs[0].size == imgs[-1].size and imgs[0].tobytes() != imgs[-1].tobytes()  # the picture moves

def test_short_fit_draws_one_frame_per_step():
    x, y = linear_data(60)
    anim = animate_fit(fit(x, y, lr=0.1, steps=5), x, y, frames=40)
    assert len(html_frames(anim)) == 5

def test_animate_minibatch_and_diverged():
    x, y = linear_data(200)
    anim = animate_fit(fit(x, y, lr=0.2, epochs=1, bs=20), x, y, frames=8)
    assert len(html_frames(anim)) == 8
    td = fit(x, y, lr=1.5, steps=100)
    assert len(html_frames(animate_fit(td, x, y, frames=30))) == td.steps  # stops where the fit stopped

def test_animation_also_saves_as_gif(tmp_path):
    "The animation is a real `FuncAnimation`: matplotlib's other writers work too, after `to_jshtml` or without it."
    x, y = linear_data(40)
    anim = animate_fit(fit(x, y, lr=0.1, steps=20), x, y, frames=4)
    anim.to_jshtml()
    anim.save(tmp_path/'fit.gif', writer='pillow')
    assert Image.open(tmp_path/'fit.gif').n_frames == 4

def test_frame_steps():
    assert frame_steps(10, 40) == list(range(10))
    assert frame_steps(100, 3) == [0, 50, 99]
    assert frame_steps(1, 40) == [0]

def test_compare_lrs():
    anim = compare_lrs(frames=6)
    assert [t.diverged for t in anim.trajs] == [False, False, True]
    assert len(html_frames(anim)) == 6
    assert [verdict(t, *linear_data()) for t in anim.trajs] == ['too slow', 'just right', 'diverges']

def test_animation_is_small():
    "Palette frames keep the lesson's page light: a 40-frame animation well under a megabyte."
    x, y = linear_data()
    html = animate_fit(fit(x, y, lr=0.1, steps=60), x, y, frames=40).to_jshtml()
    assert len(html) < 1_000_000, len(html)

# --- logistic regression ---------------------------------------------------------------------------

def test_bce_matches_pytorch():
    p, y = torch.tensor([0.1, 0.6, 0.99, 0.3]), torch.tensor([0., 1., 1., 1.])
    assert torch.allclose(bce(p, y), F.binary_cross_entropy(p, y))
    assert torch.isfinite(bce(torch.tensor([0., 1.]), torch.tensor([1., 0.])))  # confidently wrong: big, not inf
    s = torch.tensor([-3., 0.5, 2.])
    assert torch.allclose(logistic_loss(s, y[:3]), F.binary_cross_entropy_with_logits(s, y[:3]))
    big = torch.tensor([-300., 300., 50.], requires_grad=True)         # scores where exp overflows float32
    t = torch.tensor([1., 0., 1.])
    loss = logistic_loss(big, t); loss.backward()
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(big.detach(), t)) and big.grad.isfinite().all()

def test_logistic_high_learning_rate_stays_finite():
    x, y = two_class_data()
    t = fit_logistic(x, y, lr=50)
    assert t.params.isfinite().all() and math.isfinite(t.final_loss), 'two_class_data(seed=42), lr=50'

def test_logistic_regression_learns():
    x, y = two_class_data(seed=1)
    t = fit_logistic(x, y)
    assert t.params.shape == (60, 3) and not t.diverged
    assert math.isclose(t.full_losses[0], math.log(2), rel_tol=1e-5)
    assert logistic_accuracy(t.a, x, y) > 0.85, 'two_class_data(seed=1)'
    assert t.final_loss < 0.4

def test_star_import_keeps_fastai_names():
    "`from bearlab.sgd import *` after `from fastai.vision.all import *` leaves fastai's `accuracy`, `mse` and `sigmoid` alone."
    import bearlab.sgd
    ns = {}
    exec('from fastai.vision.all import *', ns)
    fastai_names = {k: v for k, v in ns.items() if not k.startswith('_')}
    assert not set(bearlab.sgd.__all__) & set(fastai_names)
    exec('from bearlab.sgd import *', ns)
    for name in ('accuracy', 'mse', 'sigmoid'): assert ns[name] is fastai_names[name], name
    assert {'mse_loss', 'logistic', 'logistic_accuracy'} <= set(bearlab.sgd.__all__)

def test_logistic_minibatches_and_animation():
    x, y = two_class_data(100)
    t = fit_logistic(x, y, epochs=3, bs=20)
    assert t.steps == 15
    anim = animate_logistic(t, x, y, frames=10)
    assert len(list(anim.new_frame_seq())) == 10 and len(html_frames(anim)) == 10

# --- the explorer -----------------------------------------------------------------------------------

def png_size(b:bytes): return Image.open(io.BytesIO(b)).size

def test_explorer_reruns_fit_on_every_slider():
    ex = explore(steps=20)
    first = ex.image.value
    assert png_size(first)[0] > 300 and ex.traj.steps == 20 and ex.traj.bs is None
    ex.lr.value = 1.2
    assert ex.traj.lr == 1.2 and ex.traj.diverged and 'Diverges' in ex.message.value
    assert ex.image.value != first
    ex.lr.value = 0.3
    ex.bs.value = 10
    assert (ex.traj.lr, ex.traj.bs, ex.traj.steps) == (0.3, 10, 20) and len(ex.traj.batches[0]) == 10
    ex.steps.value = 60
    assert ex.traj.steps == 60 and 'Just right' in ex.message.value
    ex.bs.value = len(ex.y)                                           # the 'all' end of the slider
    assert ex.traj.bs is None
    ex.lr.value = 0.001
    assert 'Too slow' in ex.message.value

def test_explorer_with_own_data_and_display():
    x, y = linear_data(50, a=(-1., 4.), seed=9)
    ex = Explorer(x, y, lr=0.5, steps=80)
    assert torch.allclose(ex.traj.a, least_squares(x, y), atol=1e-2), 'seed=9'
    bundle = ex._repr_mimebundle_()
    assert 'application/vnd.jupyter.widget-view+json' in bundle and 'Explorer' in bundle['text/plain']
    assert [o[1] for o in ex.bs.options][-1] == 50

# --- the explorer in a real Voila page --------------------------------------------------------------

@pytest.fixture(scope='module')
def voila_explorer(tmp_path_factory):
    "A two-line notebook showing `explore()`, served by a real Voila on 127.0.0.1."
    import nbformat
    from conftest import ROOT, free_port, start_server, stop_server
    d = tmp_path_factory.mktemp('sgd_voila')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('from bearlab.sgd import explore\nexplore()')])
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    nbformat.write(nb, str(d/'explore.ipynb'))
    port = free_port()
    url = f'http://127.0.0.1:{port}/'
    proc = start_server([str(ROOT/'.venv'/'bin'/'voila'), str(d/'explore.ipynb'), f'--port={port}', '--no-browser',
                         '--Voila.ip=127.0.0.1'], url, d/'voila.log', timeout=180)
    yield url
    stop_server(proc)

@pytest.mark.slow
@pytest.mark.browser
def test_explorer_in_voila(voila_explorer, page):
    page.goto(voila_explorer, timeout=120_000)
    msg = page.locator('.bearlab-sgd-message')
    msg.filter(has_text='Too slow').wait_for(timeout=180_000)          # the lesson's lr=0.1 needs more than 30 steps
    pic = page.locator('img.bearlab-sgd-picture')
    first = pic.get_attribute('src')
    assert first and page.evaluate('(img) => img.naturalWidth', pic.element_handle()) > 300
    # type a learning rate into the slider's readout, as a student would
    readout = page.locator('.widget-readout').first
    readout.click(); page.keyboard.press('Control+A'); page.keyboard.type('1.2'); page.keyboard.press('Enter')
    msg.filter(has_text='Diverges').wait_for(timeout=60_000)
    page.wait_for_function('([img, old]) => img.src !== old', arg=[pic.element_handle(), first], timeout=60_000)
    assert 'Traceback' not in page.content()
    offline = 'ERR_NAME_NOT_RESOLVED'  # Voila's page asks a CDN for fonts; these machines have no internet
    assert [e for e in page.console_errors if offline not in e] == []

def test_verdict_over_the_explorers_whole_range():
    "Full batch: too slow, then just right, then diverges as lr grows. Mini-batches near the bottom with big steps: noisy."
    from bearlab.sgd import _advice
    x, y = linear_data()
    lrs = [10**(k*0.25) for k in range(-12, 3)]  # the explorer's slider: 10^-3 to 10^0.5
    full = [verdict(fit(x, y, lr=lr, steps=30), x, y) for lr in lrs]
    order = {'too slow': 0, 'just right': 1, 'diverges': 2}
    assert [order[v] for v in full] == sorted(order[v] for v in full) and set(full) == set(order), full
    for bs in (100, 20, 10, 5, 1):
        for seed in range(3):
            vs = {lr: verdict(fit(x, y, lr=lr, bs=bs, steps=30, seed=seed), x, y) for lr in lrs}
            assert all(vs[lr] == 'too slow' for lr in lrs if lr <= 0.01), (bs, seed, vs)
            assert all(vs[lr] == 'diverges' for lr in lrs if lr >= 1.7), (bs, seed, vs)
    for lr, bs in [(0.8, 10), (0.9, 5)]:  # reached the bottom, then bounced: not 'too slow'
        for seed in range(3):
            t = fit(x, y, lr=lr, bs=bs, steps=30, seed=seed)
            assert verdict(t, x, y) == 'noisy' and 'Lower the learning rate, or use bigger batches' in _advice(t, x, y)

def test_titles_show_the_learning_rate_as_the_slider_does():
    x, y = linear_data()
    assert 'lr=2.82,' in fit(x, y, lr=10**0.45, steps=2, bs=10).how and 'lr=0.8,' in fit(x, y, lr=0.8, steps=2).how
