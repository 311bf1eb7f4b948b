#!/usr/bin/env python3
"""Independent heat-equation videos for SAFE-PIT-CM (numpy/scipy only, no code shared with Rust).

    python make_real_videos.py OUT_DIR [--kinds k1,k2] [--n N] [--seed S] [--frames T]
                               [--neumann both|cell|node]

writes OUT_DIR/<kind>/<kind>_000/{field.npy, meta.json}. Physics: du/dt = D lap(u), D = |alpha|;
diffusion videos have alpha = -D, mobility videos are the same diffusion video with its frame
order flipped and alpha = +D (so du/dt = -alpha lap(u) in every video).

Kinds:
  continuum-periodic  exact Fourier evolution on a periodic grid, continuum symbol |k|^2
  open-window         same physics on a 2-3x larger periodic domain, a window cropped out
  zero-flux           sealed Neumann box, exact cosine series (cell- or node-centred)
  camera              open window through a camera: PSF, shot/read noise, 12-bit ADU (uint16)
  paper8bit           the paper's set-up: 128^2 Voronoi, forward Euler five-point, 8-bit (uint8)
  five-point-open     exact semi-discrete five-point physics on a large domain, cropped
  multichannel        [T, 3, Nx, Ny], three independent fields, same alpha
"""
import argparse
import json
import os
import time

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

KINDS = ["continuum-periodic", "open-window", "zero-flux", "camera", "paper8bit",
         "five-point-open", "multichannel"]
FAMILIES = ["voronoi", "blobs", "noise", "fronts"]
GENERATOR = "independent-check/make_real_videos.py"


# ---------------------------------------------------------------- initial conditions
# All families are periodic on the grid they are drawn on (minimum-image distances, wrapped
# filters), so the exact periodic evolution starts from a field with no seam.

def _min_image(d, L):
    return d - L * np.round(d / L)


def _axis_offsets(n, h, c, half):
    """(indices, signed offsets) pairs covering |offset| <= half around c on a periodic axis:
    one wrapped patch when it fits, else every periodic image, so nothing is truncated."""
    m, L = int(np.ceil(half / h)), n * h
    if 2 * m + 1 <= n:
        idx = (int(round(c / h)) + np.arange(-m, m + 1)) % n
        return [(idx, _min_image(idx * h - c, L))]
    K = int(np.ceil(half / L)) + 1
    return [(np.arange(n), np.arange(n) * h - c + k * L) for k in range(-K, K + 1)]


def _stamp(u, dx, dy, cx, cy, hx, hy, fn):
    """Add the periodised fn(offset_x, offset_y) (fn negligible beyond hx, hy) around (cx, cy)."""
    nx, ny = u.shape
    for ix, ox in _axis_offsets(nx, dx, cx, hx):
        for iy, oy in _axis_offsets(ny, dy, cy, hy):
            u[np.ix_(ix, iy)] += fn(ox[:, None], oy[None, :])


def _roughness(rng, nx, ny, dx, dy, corr, std):
    xi = gaussian_filter(rng.standard_normal((nx, ny)), (corr / dx, corr / dy), mode="wrap")
    return xi * (std / xi.std())


def voronoi_tanh(rng, nx, ny, dx, dy, n_grains, width, rough_std, rough_corr=2.0):
    """u = 0.5 (1 + tanh((d2 - d1 + xi) / w)): bright grains, dark boundaries (paper style)."""
    Lx, Ly = nx * dx, ny * dy
    centres = rng.uniform(0, 1, (n_grains, 2)) * [Lx, Ly]
    tree = cKDTree(centres, boxsize=[Lx, Ly])  # periodic minimum-image distances
    X, Y = np.meshgrid(np.arange(nx) * dx, np.arange(ny) * dy, indexing="ij")
    d, _ = tree.query(np.column_stack([X.ravel(), Y.ravel()]), k=2)
    gap = (d[:, 1] - d[:, 0]).reshape(nx, ny)
    xi = _roughness(rng, nx, ny, dx, dy, rough_corr, rough_std)
    return 0.5 * (1 + np.tanh((gap + xi) / width))


def ic_voronoi(rng, nx, ny, dx, dy):
    diam = rng.uniform(8, 20)  # mean grain diameter, physical units
    n = max(4, int(round(nx * dx * ny * dy / (np.pi * diam**2 / 4))))
    w = rng.uniform(1.5, 3.0)
    return voronoi_tanh(rng, nx, ny, dx, dy, n, w, 0.3 * w), dict(n_grains=n, interface_width=w)


def ic_blobs(rng, nx, ny, dx, dy):
    u = np.zeros((nx, ny))
    n = max(4, int(nx * dx * ny * dy / 12.0**2))
    for _ in range(n):
        s, a = rng.uniform(1.5, 8.0), rng.normal()
        _stamp(u, dx, dy, rng.uniform(0, nx * dx), rng.uniform(0, ny * dy), 6 * s, 6 * s,
               lambda x, y: a * np.exp(-(x * x + y * y) / (2 * s * s)))
    return u, dict(n_blobs=n)


def ic_noise(rng, nx, ny, dx, dy):
    corr = rng.uniform(1.0, 4.0)
    return gaussian_filter(rng.standard_normal((nx, ny)), (corr / dx, corr / dy), mode="wrap"), \
        dict(correlation_length=corr)


def ic_fronts(rng, nx, ny, dx, dy):
    """Large discs/ellipses and axis-aligned bands with tanh edges 1-2 px wide."""
    u = np.zeros((nx, ny))
    w = rng.uniform(1.0, 2.0) * min(dx, dy)
    Lx, Ly = nx * dx, ny * dy
    n = max(3, int(Lx * Ly / 25.0**2))
    for _ in range(n):
        a, b, h = rng.uniform(5, 20), rng.uniform(5, 20), rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1)
        reach = 1 + 10 * w / min(a, b)  # tanh argument <= -10 at the patch edge: no truncation step
        _stamp(u, dx, dy, rng.uniform(0, Lx), rng.uniform(0, Ly), a * reach, b * reach,
               lambda x, y: h * 0.5 * (1 + np.tanh(min(a, b) * (1 - np.sqrt((x / a)**2 + (y / b)**2)) / w)))
    for axis in range(2):  # one band per axis keeps the field periodic and adds long straight fronts
        L, n_ax, h_ax = (Lx, nx, dx) if axis == 0 else (Ly, ny, dy)
        c, half = rng.uniform(0, L), rng.uniform(0.1, 0.25) * L
        dd = _min_image(np.arange(n_ax) * h_ax - c, L)
        band = 0.5 * (1 + np.tanh((half - np.abs(dd)) / w)) * rng.uniform(0.3, 1)
        u += band[:, None] if axis == 0 else band[None, :]
    return u, dict(front_width=w, n_shapes=n)


IC = dict(voronoi=ic_voronoi, blobs=ic_blobs, noise=ic_noise, fronts=ic_fronts)
# Affine intensity maps of the [0, 1]-normalised field: exercise scale/offset invariance.
INTENSITY = [(1.0, 0.0), (100.0, 250.0), (2.0, -1.0), (0.01, 0.5)]


def initial(rng, family, nx, ny, dx, dy):
    u, params = IC[family](rng, nx, ny, dx, dy)
    scale, offset = INTENSITY[rng.integers(len(INTENSITY))]
    u = (u - u.min()) / (u.max() - u.min())
    return scale * u + offset, dict(ic_family=family, intensity_scale=scale, intensity_offset=offset,
                                    ic_params=params)


# ---------------------------------------------------------------- exact evolutions

def periodic_symbol(nx, ny, dx, dy, laplacian):
    """-(Fourier symbol of the Laplacian) on the rfft2 grid, numpy FFT conventions."""
    kx = 2 * np.pi * np.fft.fftfreq(nx, d=dx)[:, None]
    ky = 2 * np.pi * np.fft.rfftfreq(ny, d=dy)[None, :]
    if laplacian == "continuum":
        return kx**2 + ky**2
    return 4 * np.sin(kx * dx / 2)**2 / dx**2 + 4 * np.sin(ky * dy / 2)**2 / dy**2


def evolve_periodic(u0, dx, dy, D, times, laplacian="continuum", crop=None):
    """u_hat(t) = u_hat(0) exp(-D t lambda); frame by frame so a 480^2 domain stays small."""
    nx, ny = u0.shape
    lam = periodic_symbol(nx, ny, dx, dy, laplacian)
    uh = np.fft.rfft2(u0)
    sl = crop if crop is not None else (slice(None), slice(None))
    return np.stack([np.fft.irfft2(uh * np.exp(-D * t * lam), s=(nx, ny))[sl] for t in times])


def evolve_neumann(u0, dx, dy, D, times, convention):
    """Exact cosine series: cell-centred = DCT-II (theta = pi p / N), node-centred = DCT-I
    (theta = pi p / (N-1)); continuum eigenvalues (theta / h)^2."""
    nx, ny = u0.shape
    typ, mx, my = (2, nx, ny) if convention == "cell-centred" else (1, nx - 1, ny - 1)
    lam = (np.pi * np.arange(nx) / (mx * dx))[:, None]**2 + (np.pi * np.arange(ny) / (my * dy))[None, :]**2
    # Unnormalised on purpose: norm="ortho" DCT-I reweights the end samples, so its basis
    # vectors are no longer the pure cosines that diagonalise the Neumann problem.
    c = sfft.dctn(u0, type=typ)
    return np.stack([sfft.idctn(c * np.exp(-D * t * lam), type=typ) for t in times])


def lap5(u, dx, dy):
    return ((np.roll(u, 1, 0) - 2 * u + np.roll(u, -1, 0)) / dx**2
            + (np.roll(u, 1, 1) - 2 * u + np.roll(u, -1, 1)) / dy**2)


# ---------------------------------------------------------------- kinds
# Each returns (diffusion frames [T, ...] float64 or integer, meta dict); main() does the rest.

def random_grid(rng):
    while True:
        nx, ny = rng.integers(64, 161, size=2)
        if nx != ny:
            break
    dx = rng.uniform(0.3, 1.0)
    dy = dx if rng.uniform() < 0.3 else rng.uniform(0.3, 1.0)
    return int(nx), int(ny), float(dx), float(dy)


def _window(rng, fam, D, times, laplacian, margin=0):
    nx, ny, dx, dy = random_grid(rng)
    fx, fy = rng.uniform(2, 3, size=2)
    NX, NY = int(fx * nx), int(fy * ny)
    u0, icm = initial(rng, fam, NX, NY, dx, dy)
    x0 = int(rng.integers(margin, NX - nx - margin + 1))
    y0 = int(rng.integers(margin, NY - ny - margin + 1))
    crop = (slice(x0 - margin, x0 + nx + margin), slice(y0 - margin, y0 + ny + margin))
    frames = evolve_periodic(u0, dx, dy, D, times, laplacian, crop)
    meta = dict(dx=dx, dy=dy, boundary="open", laplacian=laplacian, domain_nx=NX, domain_ny=NY,
                crop_x0=x0, crop_y0=y0, window_nx=nx, window_ny=ny, **icm)
    return frames, meta


def make_continuum_periodic(rng, i, fam, D, times):
    nx, ny, dx, dy = random_grid(rng)
    u0, icm = initial(rng, fam, nx, ny, dx, dy)
    return evolve_periodic(u0, dx, dy, D, times), dict(dx=dx, dy=dy, boundary="periodic",
                                                       laplacian="continuum", **icm)


def make_open_window(rng, i, fam, D, times):
    return _window(rng, fam, D, times, "continuum")


def make_five_point_open(rng, i, fam, D, times):
    return _window(rng, fam, D, times, "five-point")


def make_zero_flux(rng, i, fam, D, times, convention):
    nx, ny, dx, dy = random_grid(rng)
    u0, icm = initial(rng, fam, nx, ny, dx, dy)
    return evolve_neumann(u0, dx, dy, D, times, convention), dict(
        dx=dx, dy=dy, boundary="zero-flux", laplacian="continuum", neumann_convention=convention, **icm)


def make_camera(rng, i, fam, D, times):
    sigma = float(rng.uniform(0.7, 1.5))
    m = int(np.ceil(4 * sigma)) + 1
    # Blur a margined crop so the PSF sees real scene outside the sensor, not a padded edge.
    # A Gaussian PSF is a convolution, so it commutes with the heat flow: the noiseless camera
    # signal is still an exact solution inside the window.
    scene, meta = _window(rng, fam, D, times, "continuum", margin=m)
    blurred = np.stack([gaussian_filter(f, sigma, mode="nearest")[m:-m, m:-m] for f in scene])
    lo, hi = blurred.min(), blurred.max()
    gain = float(rng.uniform(1.5, 5.0))                       # e- per ADU
    peak_e = float(rng.uniform(max(2000, 1000 * gain), min(20000, 3800 * gain)))
    bg_e = float(rng.uniform(0.02, 0.2) * peak_e)             # darkest scene point still lit
    black, read = float(rng.choice([64.0, 100.0, 200.0])), float(rng.uniform(2, 5))
    mean_e = bg_e + (blurred - lo) / (hi - lo) * (peak_e - bg_e)   # affine in the field
    adu = black + rng.poisson(mean_e) / gain + rng.normal(0, read, mean_e.shape)
    q = np.rint(adu)
    n_clip = int(np.sum((q < 0) | (q > 4095)))
    meta.update(psf_sigma_px=sigma, black_level_adu=black, gain_e_per_adu=gain,
                peak_electrons=peak_e, background_electrons=bg_e, read_noise_adu=read,
                bit_depth=12, scene_min=float(lo), scene_max=float(hi), n_clipped=n_clip,
                quantisation="12-bit ADU, uint16")
    return np.clip(q, 0, 4095).astype(np.uint16), meta


def make_paper8bit(rng, i, fam, D, times):
    nx = ny = 128
    dx = dy = 0.5
    dt, every, T = 0.005, 50, len(times)
    n = int(rng.integers(15, 36))
    u = voronoi_tanh(rng, nx, ny, dx, dy, n, 2.5, rough_std=0.5)
    frames = [u]
    for _ in range(T - 1):
        for _ in range(every):
            u = u + dt * D * lap5(u, dx, dy)
        frames.append(u)
    frames = np.stack(frames)
    lo, hi = frames.min(), frames.max()
    q = np.rint((frames - lo) / (hi - lo) * 255).astype(np.uint8)
    return q, dict(dx=dx, dy=dy, dt=dt, save_interval=every, boundary="periodic",
                   laplacian="five-point", time_integrator="forward-euler", ic_family="voronoi-paper",
                   ic_params=dict(n_grains=n, interface_width=2.5, roughness_std=0.5),
                   quant_min=float(lo), quant_max=float(hi), quantisation="8-bit global min/max, uint8")


def make_multichannel(rng, i, fam, D, times):
    nx, ny, dx, dy = random_grid(rng)
    chans, fams = [], []
    for c in range(3):  # independent ICs, families rotated so channels differ in character
        u0, icm = initial(rng, FAMILIES[(FAMILIES.index(fam) + c) % 4], nx, ny, dx, dy)
        chans.append(evolve_periodic(u0, dx, dy, D, times))
        fams.append(icm)
    return np.stack(chans, axis=1), dict(dx=dx, dy=dy, boundary="periodic", laplacian="continuum",
                                         channels=3, channel_ics=fams)


MAKERS = {"continuum-periodic": make_continuum_periodic, "open-window": make_open_window,
          "zero-flux": make_zero_flux, "camera": make_camera, "paper8bit": make_paper8bit,
          "five-point-open": make_five_point_open, "multichannel": make_multichannel}


# ---------------------------------------------------------------- driver

def write(path, frames, meta):
    os.makedirs(path, exist_ok=True)
    if frames.dtype.kind == "f":
        frames = frames.astype(np.float32)
    np.save(os.path.join(path, "field.npy"), np.ascontiguousarray(frames))
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--n", type=int, default=10, help="videos per kind (alternating diffusion/mobility)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=101)
    ap.add_argument("--neumann", choices=["both", "cell", "node"], default="both")
    a = ap.parse_args()
    for kind in a.kinds.split(","):
        if kind not in MAKERS:
            ap.error(f"unknown kind {kind!r}; choose from {','.join(KINDS)}")
    for kind in a.kinds.split(","):
        k = KINDS.index(kind)
        for i in range(a.n):
            t0 = time.time()
            seed = int(np.random.SeedSequence([a.seed, k, i]).generate_state(1)[0])
            rng = np.random.default_rng(seed)
            mobility = i % 2 == 1
            fam = FAMILIES[(k + i + i // 4) % 4]  # balanced over families within each regime
            D = float(rng.uniform(0.1, 0.7))
            if kind == "paper8bit":
                dt_save = 0.25
            else:
                dt_save = float(rng.uniform(0.1, 0.5))
            times = dt_save * np.arange(a.frames)
            if kind == "zero-flux":
                conv = {"cell": "cell-centred", "node": "node-centred"}.get(a.neumann)
                conv = conv or ["cell-centred", "node-centred"][((i + 1) // 2) % 2]
                frames, meta = make_zero_flux(rng, i, fam, D, times, conv)
            else:
                frames, meta = MAKERS[kind](rng, i, fam, D, times)
            if mobility:
                frames = frames[::-1]
            meta = dict(alpha=D if mobility else -D, process="mobility" if mobility else "diffusion",
                        dt_save=dt_save, n_frames=a.frames, generator=GENERATOR, kind=kind, seed=seed,
                        global_seed=a.seed, time_reversed=mobility, **meta)
            meta.setdefault("time_integrator", "exact")
            meta.setdefault("quantisation", "none (float32)")
            name = f"{kind}_{i:03d}"
            write(os.path.join(a.out, kind, name), frames, meta)
            print(f"{kind}/{name}: alpha={meta['alpha']:+.4f} shape={frames.shape} "
                  f"dtype={frames.dtype} ({time.time() - t0:.2f}s)", flush=True)


if __name__ == "__main__":
    main()
