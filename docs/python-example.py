"""From a video to alpha in Python, top to bottom (runs in CI: `python docs/python-example.py`).

A window onto a larger sample, continuous physics, seen through a 12-bit camera: the kind of
video a microscope gives. We make one with the package's own generator, then load it, fit
it, and look at the SAFE loss around the estimate and at what the operator leaves
unexplained.
"""

import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import safe_pit_cm as spc  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="safe-example-")

# 1. A video: 101 frames of an 80x96 window, continuum physics, 12-bit camera.
spc.generate(
    os.path.join(out, "data"),
    n_sims=1,
    mobility=False,
    nx=80,
    ny=96,
    dt=0.25,
    n_steps=100,
    save_interval=1,
    physics="continuum",
    boundary="open",
    camera=True,
    seed=3,
)
video = spc.load(os.path.join(out, "data", "sim_000"))
print(video)

# 2. Fit. The data are continuous in time, so n_sub="inf"; the rest is decided and recorded.
est = spc.fit(video, n_sub="inf")
print(est)
for d in est.decisions:
    print(f"  {d['what']}: {d['value']} ({d['why']})")
print(f"alpha = {est.alpha:.5f} +- {est.stderr:.1e} (truth {video.alpha:.5f}); misfit {est.misfit:.2f}")
assert abs(est.alpha - video.alpha) < 4 * est.stderr + 1e-3

# The same frames as a plain numpy array (any dtype), with the metadata as arguments.
frames = video.frames.astype(np.float64)
again = spc.fit(frames, dx=video.dx, dy=video.dy, dt_save=video.dt_save, n_sub="inf")
print(f"from the array: alpha = {again.alpha:.5f}")

# 3. The SAFE loss around the estimate, and the residual of one frame pair.
a = abs(est.alpha)
alphas = np.linspace(0.5 * a, 1.5 * a, 41)
curve = spc.loss_curve(video, alphas, n_sub="inf")
r, (mx, my) = spc.residual(video, a, t=50, n_sub="inf")

fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
ax[0].plot(alphas, curve["corrected"], label="noise-corrected (minimised)")
ax[0].plot(alphas, curve["raw"], "--", label="raw (paper)")
ax[0].axvline(a, color="k", lw=0.8)
ax[0].axvline(abs(video.alpha), color="g", lw=0.8, ls=":")
ax[0].set_xlabel("|alpha|")
ax[0].set_ylabel("SAFE loss")
ax[0].set_title(curve["operator"])
ax[0].legend(fontsize=7)
ax[1].imshow(video.frames[50], cmap="gray")
ax[1].set_title("frame 50")
inner = r[mx : r.shape[0] - mx, my : r.shape[1] - my]
im = ax[2].imshow(inner, cmap="RdBu_r")
ax[2].set_title(f"residual inside the {mx}x{my} px margins")
fig.colorbar(im, ax=ax[2])
fig.tight_layout()
png = os.path.join(out, "safe_loss_and_residual.png")
fig.savefig(png, dpi=90)
print(f"figure: {png}")
