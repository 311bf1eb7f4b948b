#!/usr/bin/env python3
"""Independent test videos for SAFE-PIT-CM, written with numpy/scipy only.

Not part of CI (CI has no numpy); run by hand to check `fit` and `zero-shot` against data
that our own generator did not make:

    python3 tools/independent-check/make_data.py OUT_DIR
    safe-pit-cm fit OUT_DIR/euler --n-sub 50
    safe-pit-cm fit OUT_DIR/continuous --n-sub inf

Layout and conventions follow DESIGN.md: field.npy float32 [T, Nx, Ny], axis 1 spacing dx,
axis 2 spacing dy, du/dt = -alpha * lap(u) with alpha < 0 for diffusion, mobility videos are
diffusion videos reversed in time. Initial fields are random smooth Fourier fields plus a
few tanh discs (not Voronoi), grids are non-square and dt_save != 0.25.
"""
import json
import os
import sys

import numpy as np
from scipy.integrate import solve_ivp


def lap(u, dx, dy):
    return ((np.roll(u, 1, 0) - 2 * u + np.roll(u, -1, 0)) / dx**2
            + (np.roll(u, 1, 1) - 2 * u + np.roll(u, -1, 1)) / dy**2)


def initial(rng, nx, ny, dx, dy):
    x = np.arange(nx)[:, None] * dx
    y = np.arange(ny)[None, :] * dy
    lx, ly = nx * dx, ny * dy
    u = np.zeros((nx, ny))
    for _ in range(12):
        kx, ky = rng.integers(-6, 7), rng.integers(-6, 7)
        u += rng.normal() * np.cos(2 * np.pi * (kx * x / lx + ky * y / ly) + rng.uniform(0, 2 * np.pi)) / (1 + kx * kx + ky * ky)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, lx), rng.uniform(0, ly), rng.uniform(2, 6)
        ddx = np.minimum(np.abs(x - cx), lx - np.abs(x - cx))
        ddy = np.minimum(np.abs(y - cy), ly - np.abs(y - cy))
        u += 0.5 * (1 + np.tanh((r - np.sqrt(ddx**2 + ddy**2)) / 1.5))
    return u


def write(path, frames, meta):
    os.makedirs(path, exist_ok=True)
    np.save(os.path.join(path, "field.npy"), frames.astype(np.float32))
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def main(out):
    rng = np.random.default_rng(12345)
    cases = [(96, 64, 0.4, 0.7), (64, 80, 0.6, 0.5), (50, 50, 1.0, 1.0)]
    for i, (nx, ny, dx, dy) in enumerate(cases):
        a = rng.uniform(0.1, 0.7)
        # Euler: dt well inside the stability bound, 50 steps per frame, dt_save != 0.25.
        dt = 0.3 * 2 / (a * (4 / dx**2 + 4 / dy**2))
        s, nframes = 50, 31
        u = initial(rng, nx, ny, dx, dy)
        frames = [u.copy()]
        for _ in range(nframes - 1):
            for _ in range(s):
                u = u + dt * a * lap(u, dx, dy)
            frames.append(u.copy())
        frames = np.array(frames)
        base = dict(dx=dx, dy=dy, dt=dt, save_interval=s, generator="independent-numpy")
        write(f"{out}/euler/d{i}", frames, dict(base, alpha=-a, process="diffusion"))
        write(f"{out}/euler/m{i}", frames[::-1], dict(base, alpha=a, process="mobility"))
        # Continuous time: DOP853 with tight tolerances on the semi-discrete system.
        a = rng.uniform(0.1, 0.7)
        dt_save = 0.1 + 0.2 * i
        u0 = initial(rng, nx, ny, dx, dy)
        ts = dt_save * np.arange(21)
        sol = solve_ivp(lambda t, v: a * lap(v.reshape(nx, ny), dx, dy).ravel(), (0, ts[-1]), u0.ravel(),
                        t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-12)
        frames = sol.y.T.reshape(len(ts), nx, ny)
        base = dict(dx=dx, dy=dy, dt_save=dt_save, generator="independent-scipy-dop853")
        write(f"{out}/continuous/d{i}", frames, dict(base, alpha=-a, process="diffusion"))
        write(f"{out}/continuous/m{i}", frames[::-1], dict(base, alpha=a, process="mobility"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "independent-data")
