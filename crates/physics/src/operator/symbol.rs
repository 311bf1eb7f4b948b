//! The operator's eigenvalues: per-axis frequencies of each basis, the Laplacian's symbol,
//! the one-interval multiplier, and the binomial low-pass of open continuum windows.

use super::spec::{Boundary, Laplacian, SubSteps};
use std::f64::consts::PI;

/// Axis frequency of each stored index: Fourier `2 pi min(k, n-k) / n` (periodic),
/// cosine `pi p / n` (zero-flux and open, half-sample mirror).
pub fn axis_theta(boundary: Boundary, n: usize) -> Vec<f64> {
    match boundary {
        Boundary::Periodic => (0..n)
            .map(|k| 2.0 * PI * k.min(n - k) as f64 / n as f64)
            .collect(),
        Boundary::ZeroFlux | Boundary::Open => (0..n).map(|p| PI * p as f64 / n as f64).collect(),
    }
}

/// The Laplacian's eigenvalue magnitude along one axis at frequency `theta`, spacing `h`.
#[inline]
pub fn axis_mu(laplacian: Laplacian, theta: f64, h: f64) -> f64 {
    match laplacian {
        Laplacian::FivePoint => {
            let s = (0.5 * theta).sin();
            4.0 * s * s / (h * h)
        }
        Laplacian::Continuum => theta * theta / (h * h),
    }
}

/// Bound on the Laplacian's eigenvalue magnitudes (von Neumann): `4/dx^2 + 4/dy^2` for the
/// five-point stencil (the paper's `8/(dx dy)` when `dx == dy`), `pi^2 (1/dx^2 + 1/dy^2)`
/// for the continuum.
pub fn lambda_max(laplacian: Laplacian, dx: f64, dy: f64) -> f64 {
    axis_mu(laplacian, PI, dx) + axis_mu(laplacian, PI, dy)
}

/// The binomial low-pass `cos^(2q)(theta/2)` per axis (the `2q+1`-tap filter
/// `C(2q, j)/4^q`). It commutes with the heat flow, so it changes no estimate, and it makes
/// the continuum operator's kernel local (see `SafeOperator::filter_order`).
#[inline]
pub fn binomial(q: u32, theta: f64) -> f64 {
    (0.5 * theta).cos().powi(2 * q as i32)
}

/// One frame interval's multiplier of a mode with Laplacian eigenvalue magnitude `mu`:
/// `(1 - dt_sub*a*mu)^N` or `exp(-dt_save*a*mu)`, with its first and second derivatives
/// in `a = |alpha|`.
#[inline]
pub fn multiplier(mu: f64, a: f64, dt_save: f64, n: SubSteps) -> (f64, f64, f64) {
    match n {
        SubSteps::Finite(n) => {
            let h = dt_save / n as f64;
            let g = 1.0 - h * a * mu;
            let n = n as i32;
            let gm2 = if n >= 2 { g.powi(n - 2) } else { 0.0 };
            let gm1 = if n >= 2 { gm2 * g } else { 1.0 };
            let m = gm1 * g;
            let d1 = -(n as f64) * h * mu * gm1;
            let d2 = n as f64 * (n as f64 - 1.0) * (h * mu) * (h * mu) * gm2;
            (m, d1, d2)
        }
        SubSteps::Infinite => {
            let k = dt_save * mu;
            let m = (-k * a).exp();
            (m, -k * m, k * k * m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_agree_at_low_frequency_and_bound_the_spectrum() {
        // Five-point = continuum * (1 - theta^2/12 + ...).
        let th = 1e-3;
        let r = axis_mu(Laplacian::FivePoint, th, 0.5) / axis_mu(Laplacian::Continuum, th, 0.5);
        assert!((r - (1.0 - th * th / 12.0)).abs() < 1e-12);
        assert_eq!(lambda_max(Laplacian::FivePoint, 0.5, 0.5), 32.0);
        let lm = lambda_max(Laplacian::Continuum, 0.5, 0.5);
        assert!((lm - 8.0 * PI * PI).abs() < 1e-12);
        for b in [Boundary::Periodic, Boundary::Open] {
            for n in [7, 8] {
                assert!(axis_theta(b, n).iter().all(|&t| (0.0..=PI).contains(&t)));
            }
        }
        assert_eq!(binomial(0, 2.0), 1.0);
        assert!(binomial(4, PI) < 1e-30);
    }

    #[test]
    fn multiplier_derivatives_match_finite_differences() {
        for n in [
            SubSteps::Finite(1),
            SubSteps::Finite(2),
            SubSteps::Finite(50),
            SubSteps::Infinite,
        ] {
            for &(mu, a) in &[(0.3, 0.2), (12.0, 0.6), (32.0, 0.1), (5.0, 1.3)] {
                let h = 1e-6;
                let (_, d1, d2) = multiplier(mu, a, 0.25, n);
                let (mp, d1p, _) = multiplier(mu, a + h, 0.25, n);
                let (mm, d1m, _) = multiplier(mu, a - h, 0.25, n);
                let fd1 = (mp - mm) / (2.0 * h);
                let fd2 = (d1p - d1m) / (2.0 * h);
                assert!(
                    (fd1 - d1).abs() <= 1e-6 * (1.0 + d1.abs()),
                    "{n} d1 {fd1} {d1}"
                );
                assert!(
                    (fd2 - d2).abs() <= 1e-5 * (1.0 + d2.abs()),
                    "{n} d2 {fd2} {d2}"
                );
            }
        }
    }
}
