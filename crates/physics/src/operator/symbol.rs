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

/// [`multiplier`] over a block of eigenvalues at one `a`, bit for bit: the same products in
/// the same order (`powi` is binary exponentiation), but as element-wise passes over the
/// block, which vectorise where a `powi` call per mode cannot. `m1`/`m2` may be empty when
/// only the multiplier is wanted.
pub fn multipliers_into(
    mu: &[f64],
    a: f64,
    dt_save: f64,
    n: SubSteps,
    m: &mut [f64],
    m1: &mut [f64],
    m2: &mut [f64],
) {
    let len = mu.len();
    assert!(
        len <= BLOCK && m.len() >= len,
        "a block holds at most BLOCK modes"
    );
    let derivs = !m1.is_empty();
    match n {
        SubSteps::Finite(n) => {
            let h = dt_save / n as f64;
            let n = n as i32;
            // p is g^(n-2) by binary exponentiation over the block, exactly as powi does it.
            for (g, &u) in m.iter_mut().zip(mu) {
                *g = 1.0 - h * a * u;
            }
            if n >= 2 {
                let mut p = [0.0f64; BLOCK];
                let mut b = [0.0f64; BLOCK];
                b[..len].copy_from_slice(&m[..len]);
                p[..len].fill(1.0);
                let mut e = (n - 2) as u32;
                while e != 0 {
                    if e & 1 != 0 {
                        for (x, &y) in p[..len].iter_mut().zip(&b[..len]) {
                            *x *= y;
                        }
                    }
                    e >>= 1;
                    if e == 0 {
                        break;
                    }
                    for x in &mut b[..len] {
                        *x *= *x;
                    }
                }
                for j in 0..len {
                    let g = m[j];
                    let gm2 = p[j];
                    let gm1 = gm2 * g;
                    m[j] = gm1 * g;
                    if derivs {
                        m1[j] = -(n as f64) * h * mu[j] * gm1;
                        m2[j] = n as f64 * (n as f64 - 1.0) * (h * mu[j]) * (h * mu[j]) * gm2;
                    }
                }
            } else {
                // n == 1: m = g, m' = -h mu, m'' = 0.
                if derivs {
                    for j in 0..len {
                        m1[j] = -(n as f64) * h * mu[j] * 1.0;
                        m2[j] = 0.0;
                    }
                }
            }
        }
        SubSteps::Infinite => {
            for j in 0..len {
                let k = dt_save * mu[j];
                let x = (-k * a).exp();
                m[j] = x;
                if derivs {
                    m1[j] = -k * x;
                    m2[j] = k * k * x;
                }
            }
        }
    }
}

/// Largest block [`multipliers_into`] takes.
pub const BLOCK: usize = 64;

/// [`multiplier`] of every mode of a grid whose eigenvalues are `mu_x[i] + mu_y[j]`, row
/// major (`m[j * mu_x.len() + i]`); `m1`/`m2` may be empty when only the multiplier is
/// wanted. With `N_sub = inf` the multiplier is a product of per-axis exponentials, so a
/// grid costs `nx + ny` calls of `exp` instead of `nx ny` (within a few ulp of
/// [`multiplier`], not bit for bit); a finite `N_sub` goes through [`multipliers_into`]
/// (bit for bit).
#[allow(clippy::too_many_arguments)]
pub fn grid_multipliers(
    mu_x: &[f64],
    mu_y: &[f64],
    a: f64,
    dt_save: f64,
    n: SubSteps,
    m: &mut [f64],
    m1: &mut [f64],
    m2: &mut [f64],
) {
    let nx = mu_x.len();
    assert_eq!(m.len(), nx * mu_y.len(), "one multiplier per mode");
    let derivs = !m1.is_empty();
    match n {
        SubSteps::Finite(_) => {
            let mut mu = [0.0f64; BLOCK];
            for (j, &my) in mu_y.iter().enumerate() {
                for i0 in (0..nx).step_by(BLOCK) {
                    let i1 = (i0 + BLOCK).min(nx);
                    let r = j * nx + i0..j * nx + i1;
                    for (u, &mx) in mu.iter_mut().zip(&mu_x[i0..i1]) {
                        *u = mx + my;
                    }
                    let mu = &mu[..i1 - i0];
                    if derivs {
                        multipliers_into(
                            mu,
                            a,
                            dt_save,
                            n,
                            &mut m[r.clone()],
                            &mut m1[r.clone()],
                            &mut m2[r],
                        );
                    } else {
                        multipliers_into(mu, a, dt_save, n, &mut m[r], &mut [], &mut []);
                    }
                }
            }
        }
        SubSteps::Infinite => {
            let ex: Vec<f64> = mu_x.iter().map(|&u| (-(dt_save * u) * a).exp()).collect();
            for (j, &my) in mu_y.iter().enumerate() {
                let ey = (-(dt_save * my) * a).exp();
                let r = j * nx..(j + 1) * nx;
                for (o, &x) in m[r.clone()].iter_mut().zip(&ex) {
                    *o = x * ey;
                }
                if derivs {
                    for (((d1, d2), &x), &mx) in m1[r.clone()]
                        .iter_mut()
                        .zip(&mut m2[r.clone()])
                        .zip(&m[r.clone()])
                        .zip(mu_x)
                    {
                        let k = dt_save * (mx + my);
                        *d1 = -k * x;
                        *d2 = k * k * x;
                    }
                }
            }
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
    fn block_multipliers_equal_the_scalar_multiplier_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in [1, 2, 3, 7, 50, 64, 1000, 123_457]
            .map(SubSteps::Finite)
            .into_iter()
            .chain([SubSteps::Infinite])
        {
            for len in [1, 5, BLOCK] {
                let mu: Vec<f64> = (0..len).map(|_| rng.random_range(0.0..40.0)).collect();
                let a = rng.random_range(0.01..2.0);
                let (mut m, mut m1, mut m2) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
                multipliers_into(&mu, a, 0.25, n, &mut m, &mut m1, &mut m2);
                let mut v = vec![0.0; len];
                multipliers_into(&mu, a, 0.25, n, &mut v, &mut [], &mut []);
                for j in 0..len {
                    let (x, x1, x2) = multiplier(mu[j], a, 0.25, n);
                    assert_eq!(m[j].to_bits(), x.to_bits(), "{n} m mu {}", mu[j]);
                    assert_eq!(v[j].to_bits(), x.to_bits(), "{n} value-only m");
                    assert_eq!(m1[j].to_bits(), x1.to_bits(), "{n} m'");
                    assert_eq!(m2[j].to_bits(), x2.to_bits(), "{n} m''");
                }
            }
        }
    }

    #[test]
    fn grid_multipliers_match_the_scalar_multiplier() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mu_x: Vec<f64> = (0..70).map(|_| rng.random_range(0.0..20.0)).collect();
        let mu_y: Vec<f64> = (0..9).map(|_| rng.random_range(0.0..20.0)).collect();
        let len = mu_x.len() * mu_y.len();
        for n in [
            SubSteps::Finite(1),
            SubSteps::Finite(37),
            SubSteps::Infinite,
        ] {
            for a in [0.0, 0.03, 0.7, 40.0] {
                let (mut m, mut m1, mut m2) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
                grid_multipliers(&mu_x, &mu_y, a, 0.25, n, &mut m, &mut m1, &mut m2);
                let mut v = vec![0.0; len];
                grid_multipliers(&mu_x, &mu_y, a, 0.25, n, &mut v, &mut [], &mut []);
                for (j, &my) in mu_y.iter().enumerate() {
                    for (i, &mx) in mu_x.iter().enumerate() {
                        let k = j * mu_x.len() + i;
                        let want = multiplier(mx + my, a, 0.25, n);
                        // exp amplifies its argument's rounding by the argument's size.
                        let arg = 0.25 * (mx + my) * a;
                        let close = |x: f64, y: f64| {
                            if matches!(n, SubSteps::Finite(_)) {
                                x.to_bits() == y.to_bits()
                            } else {
                                (x - y).abs() <= 4.0 * f64::EPSILON * (1.0 + arg) * y.abs()
                            }
                        };
                        assert!(close(m[k], want.0), "{n} a {a}: {} vs {}", m[k], want.0);
                        assert_eq!(v[k].to_bits(), m[k].to_bits(), "value-only pass");
                        assert!(
                            close(m1[k], want.1),
                            "{n} a {a}: m' {} vs {}",
                            m1[k],
                            want.1
                        );
                        assert!(
                            close(m2[k], want.2),
                            "{n} a {a}: m'' {} vs {}",
                            m2[k],
                            want.2
                        );
                    }
                }
            }
        }
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
