#!/usr/bin/env python3
"""WSINDy-style weak-form estimate of alpha in du/dt = -alpha lap(u), one video at a time.

    python weak_form.py DIR... [--mx 12] [--mt 20] [--p 6] [--laplacian continuum|five-point|auto]

DIR is a video folder (field.npy + meta.json) or any folder above some. Test functions are
psi = phi(x) phi(y) chi(t) with phi(s) = (1 - s^2)^p bumps whose supports lie fully inside
the video, so nothing is assumed about the boundary. Integrating by parts,
    -sum u d_t psi = c sum u lap psi,   c = -alpha,
and c follows by least squares over a grid of test functions. Constants (black level,
intensity offset): sum d_t psi = 0 exactly on the grid (chi' is odd about its centre), but
sum lap psi is only ~1e-7..1e-6 of sum |lap psi| for the continuum bumps (exactly 0 with
--laplacian five-point), so the video mean is subtracted first and offsets then cost nothing.
Integer (camera, 8-bit) videos are read as float; [T, C, Nx, Ny] videos fit all channels jointly.
"""
import argparse
import glob
import json
import os
import time

import numpy as np


def bumps(n, h, m, p, step, five_point=False):
    """Rows: phi, phi', phi'' (physical derivatives) for bumps of half-width m samples.
    five_point: phi'' is the discrete second difference instead, so that summation by parts
    against the five-point Laplacian is exact (no model mismatch on five-point data)."""
    centres = np.arange(m, n - m, step)
    s = (np.arange(n)[None, :] - centres[:, None]) / m
    inside = np.abs(s) < 1
    q = np.where(inside, 1 - s * s, 0.0)
    f = q**p
    f1 = -2 * p * s * q**(p - 1) / (m * h)
    f2 = (-2 * p * q**(p - 1) + 4 * p * (p - 1) * s * s * q**(p - 2)) / (m * h)**2
    f, f1, f2 = [np.where(inside, g, 0.0) for g in (f, f1, f2)]
    if five_point:
        fp = np.pad(f, ((0, 0), (1, 1)))
        f2 = (fp[:, 2:] - 2 * f + fp[:, :-2]) / h**2
    return f, f1, f2


def estimate(u, dx, dy, dt, mx=12, mt=20, p=6, five_point=False):
    """u: [T, C, Nx, Ny]. Returns alpha_hat (signed, du/dt = -alpha lap u)."""
    T, _, nx, ny = u.shape
    u = u - u.mean()
    mt, mx, my = min(mt, (T - 1) // 2), min(mx, (nx - 1) // 2), min(mx, (ny - 1) // 2)
    ct, ct1, _ = bumps(T, dt, mt, p, max(1, mt // 2))
    px, _, px2 = bumps(nx, dx, mx, p, max(1, mx // 2), five_point)
    py, _, py2 = bumps(ny, dy, my, p, max(1, my // 2), five_point)
    ut = np.tensordot(ct, u, axes=(1, 0))       # [Nt, C, Nx, Ny]: time integrals with chi
    ut1 = np.tensordot(ct1, u, axes=(1, 0))     # ... with chi'
    xy = lambda a, fx, fy: np.einsum("tcij,ai,bj->tcab", a, fx, fy, optimize=True)
    b = -xy(ut1, px, py)                          # -sum u d_t psi
    g = xy(ut, px2, py) + xy(ut, px, py2)         # sum u lap psi
    b, g = b.ravel(), g.ravel()
    c = g @ b / (g @ g)
    return -c


def load(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    u = np.load(os.path.join(d, "field.npy")).astype(np.float64)
    if u.ndim == 3:
        u = u[:, None]
    dt = meta.get("dt_save") or meta["dt"] * meta["save_interval"]
    return u, meta, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--mx", type=int, default=12, help="spatial half-width of test functions, px")
    ap.add_argument("--mt", type=int, default=20, help="temporal half-width, frames")
    ap.add_argument("--p", type=int, default=6, help="bump exponent (smoothness)")
    ap.add_argument("--laplacian", choices=["auto", "continuum", "five-point"], default="continuum",
                    help="Laplacian the weak form integrates against; auto = meta.json's 'laplacian'")
    ap.add_argument("--json", help="also write results in check.py's format (stderr null)")
    a = ap.parse_args()
    vids = sorted({os.path.dirname(f) for d in a.dirs
                   for f in glob.glob(os.path.join(d, "**", "field.npy"), recursive=True)})
    errs, sims = {}, []
    print(f"{'path':60s} {'alpha':>9s} {'alpha_hat':>9s} {'abs_err':>9s} {'sec':>6s}")
    for v in vids:
        t0 = time.time()
        u, meta, dt = load(v)
        lap = meta.get("laplacian", "continuum") if a.laplacian == "auto" else a.laplacian
        ah = estimate(u, meta["dx"], meta["dy"], dt, a.mx, a.mt, a.p, lap == "five-point")
        sec = time.time() - t0
        al = meta.get("alpha")
        e = abs(ah - al) if al is not None else float("nan")
        errs.setdefault(meta.get("kind", "?"), []).append((e, sec))
        sims.append(dict(path=v, alpha_true=al, alpha_hat=ah, stderr=None))
        print(f"{v:60s} {al if al is not None else float('nan'):+9.4f} {ah:+9.4f} {e:9.2e} {sec:6.2f}")
    print("\nkind                  n       MAE   max_err  sec/video")
    allv = []
    for k, v in sorted(errs.items()):
        e, s = np.array(v).T
        allv += v
        print(f"{k:20s} {len(e):3d} {e.mean():9.2e} {e.max():9.2e} {s.mean():9.3f}")
    e, s = np.array(allv).T
    print(f"{'ALL':20s} {len(e):3d} {e.mean():9.2e} {e.max():9.2e} {s.mean():9.3f}")
    if a.json:
        json.dump(dict(sims=sims), open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
