"FitAnimation.to_jshtml vs matplotlib's FuncAnimation.to_jshtml on the same 30-frame animate_fit figure: time and size ratios."
import time, matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation
from bearlab.sgd import *
x, y = linear_data(); t = fit(x, y, lr=0.1, steps=60)
def timed(f):
    t0 = time.perf_counter(); r = f(); return time.perf_counter()-t0, len(r)
res = {}
for rep in range(2):
    ours = animate_fit(t, x, y, frames=30)
    res.setdefault('ours', []).append(timed(ours.to_jshtml))
    fig, panels = plot_fit(t, x, y)
    def draw(i):
        for p in panels: p.draw(i)
    base = FuncAnimation(fig, draw, frames=frame_steps(t.steps, 30), interval=150, repeat=False)
    res.setdefault('matplotlib', []).append(timed(base.to_jshtml)); plt.close(fig)
(ot, osz), (bt, bsz) = min(res['ours']), min(res['matplotlib'])
print(f'matplotlib to_jshtml: {bt:.2f} s, {bsz/1e3:.0f} kB;  FitAnimation: {ot:.2f} s, {osz/1e3:.0f} kB')
print(f'speed-up {bt/ot:.1f}x, size {bsz/osz:.1f}x smaller')
