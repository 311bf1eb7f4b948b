//! The obviously-correct SAFE operator: each form written from its definition.
//!
//! - Five-point, finite `N_sub`: the paper's Eq. (6) literally, sub-step by sub-step, with
//!   the boundary handled literally (periodic indices wrap; zero-flux and open mirror
//!   `u[-1] = u[0]`).
//! - Everything else (`N_sub = inf`, the continuum symbol): a dense transform written as
//!   sums of cosines and sines (O(N^2) per mode), the multiplier, the dense inverse.
//! - The low-pass of open continuum windows: its binomial taps, mirrored at the edge.

use super::safe::SafeOperator;
use super::spec::{Boundary, Laplacian, OperatorSpec, SubSteps};
use super::symbol::{axis_mu, multiplier};
use crate::fft2::{C64, dft2_naive};
use crate::grid::Grid;
use crate::laplacian::{Edge, laplacian_naive};
use std::f64::consts::PI;

/// `Phi S(a) F` for one frame over one frame interval, from the definitions.
pub fn safe_reference(
    frame: &[f64],
    grid: &Grid,
    spec: OperatorSpec,
    a: f64,
    dt_save: f64,
) -> Vec<f64> {
    let p = match (spec.laplacian, spec.n_sub) {
        (Laplacian::FivePoint, SubSteps::Finite(n)) => {
            let edge = Edge::of(spec.boundary);
            let h = dt_save / n as f64;
            let mut p = frame.to_vec();
            for _ in 0..n {
                let lap = laplacian_naive(&p, grid, edge);
                for (x, l) in p.iter_mut().zip(&lap) {
                    *x += h * a * l;
                }
            }
            p
        }
        _ => dense_spectral(frame, grid, spec, |th_x, th_y| {
            let mu =
                axis_mu(spec.laplacian, th_x, grid.dx) + axis_mu(spec.laplacian, th_y, grid.dy);
            multiplier(mu, a, dt_save, spec.n_sub).0
        }),
    };
    binomial_filter_naive(&p, grid, SafeOperator::filter_order(spec), spec.boundary)
}

/// The multiplier `m(theta_x, theta_y)` applied through dense transforms of the boundary's
/// basis: full complex DFT (periodic) or the orthonormal DCT-II matrix (mirror).
fn dense_spectral(
    u: &[f64],
    grid: &Grid,
    spec: OperatorSpec,
    m: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let (nx, ny) = (grid.nx, grid.ny);
    match spec.boundary {
        Boundary::Periodic => {
            let spec_full = dft2_naive(u, nx, ny);
            let wrap = |k: usize, n: usize| 2.0 * PI * k.min(n - k) as f64 / n as f64;
            let mut out = vec![0.0; nx * ny];
            for i in 0..nx {
                for j in 0..ny {
                    let mut acc = C64::default();
                    for kx in 0..nx {
                        for ky in 0..ny {
                            let ph = 2.0
                                * PI
                                * ((kx * i) as f64 / nx as f64 + (ky * j) as f64 / ny as f64);
                            acc += spec_full[kx * ny + ky]
                                * m(wrap(kx, nx), wrap(ky, ny))
                                * C64::new(ph.cos(), ph.sin());
                        }
                    }
                    out[i * ny + j] = acc.re / (nx * ny) as f64;
                }
            }
            out
        }
        Boundary::ZeroFlux | Boundary::Open => {
            let c = crate::dct2::dct2_naive(u, nx, ny);
            let basis = |n: usize, k: usize, i: usize| {
                let s = if k == 0 {
                    (1.0 / n as f64).sqrt()
                } else {
                    (2.0 / n as f64).sqrt()
                };
                s * (PI * k as f64 * (2 * i + 1) as f64 / (2 * n) as f64).cos()
            };
            let mut out = vec![0.0; nx * ny];
            for i in 0..nx {
                for j in 0..ny {
                    let mut acc = 0.0;
                    for p in 0..nx {
                        for q in 0..ny {
                            let th = (PI * p as f64 / nx as f64, PI * q as f64 / ny as f64);
                            acc +=
                                c[p * ny + q] * m(th.0, th.1) * basis(nx, p, i) * basis(ny, q, j);
                        }
                    }
                    out[i * ny + j] = acc;
                }
            }
            out
        }
    }
}

/// The binomial low-pass of order `q` as its `2q+1` taps `C(2q, j) / 4^q` along each axis,
/// with the boundary's index rule.
pub fn binomial_filter_naive(u: &[f64], grid: &Grid, q: u32, boundary: Boundary) -> Vec<f64> {
    if q == 0 {
        return u.to_vec();
    }
    let taps: Vec<f64> = {
        let n = 2 * q as usize;
        let mut c = vec![1.0f64];
        for _ in 0..n {
            let mut next = vec![0.0; c.len() + 1];
            for (k, &v) in c.iter().enumerate() {
                next[k] += v / 2.0;
                next[k + 1] += v / 2.0;
            }
            c = next;
        }
        c
    };
    let edge = Edge::of(boundary);
    let fold = |i: isize, n: usize| -> usize {
        let n = n as isize;
        match edge {
            Edge::Wrap => i.rem_euclid(n) as usize,
            // Half-sample mirror, repeated: ..., 1, 0 | 0, 1, ..., n-1 | n-1, n-2, ...
            Edge::Mirror => {
                let p = i.rem_euclid(2 * n);
                (if p < n { p } else { 2 * n - 1 - p }) as usize
            }
        }
    };
    let (nx, ny) = (grid.nx, grid.ny);
    let r = q as isize;
    let mut tmp = vec![0.0; nx * ny];
    for i in 0..nx {
        for j in 0..ny {
            tmp[i * ny + j] = (-r..=r)
                .map(|d| taps[(d + r) as usize] * u[i * ny + fold(j as isize + d, ny)])
                .sum();
        }
    }
    let mut out = vec![0.0; nx * ny];
    for i in 0..nx {
        for j in 0..ny {
            out[i * ny + j] = (-r..=r)
                .map(|d| taps[(d + r) as usize] * tmp[fold(i as isize + d, nx) * ny + j])
                .sum();
        }
    }
    out
}
