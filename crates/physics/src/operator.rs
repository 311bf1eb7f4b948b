//! The SAFE operator: `N_sub` forward-Euler sub-steps of the periodic five-point Laplacian
//! with coefficient `|alpha|`, taking a frame to the next (paper Eq. 6, DESIGN section 2).
//!
//! Three forms, one meaning:
//! - [`safe_stencil`]: the direct form, sub-step by sub-step (generalises to other boundaries);
//! - [`SpectralSafe`]: the exact Fourier-space equivalent, cost independent of `N_sub`;
//! - [`SubSteps::Infinite`]: `exp(-dt_save*|alpha|*mu_k)`, the exact semi-discrete map.
//!
//! [`safe_stencil_naive`] is the obviously-correct reference the fast forms are tested against.

use crate::fft2::{C64, Fft2, Fft2Scratch};
use crate::grid::Grid;
use crate::laplacian::{Real, euler_step, laplacian_naive};
use std::fmt;
use std::str::FromStr;

/// How many forward-Euler sub-steps make one frame interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubSteps {
    Finite(u32),
    /// The limit `N_sub -> inf`: the exact solution of the semi-discrete heat equation.
    Infinite,
}

impl fmt::Display for SubSteps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubSteps::Finite(n) => write!(f, "{n}"),
            SubSteps::Infinite => f.write_str("inf"),
        }
    }
}

impl FromStr for SubSteps {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "inf" || t == "infinity" || t == "exp" {
            return Ok(SubSteps::Infinite);
        }
        match t.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(SubSteps::Finite(n)),
            _ => Err(format!(
                "invalid sub-step count '{s}': expected a positive integer or 'inf'"
            )),
        }
    }
}

impl SubSteps {
    /// `dt_sub = dt_save / N_sub` (0 for the exponential limit).
    pub fn dt_sub(self, dt_save: f64) -> f64 {
        match self {
            SubSteps::Finite(n) => dt_save / n as f64,
            SubSteps::Infinite => 0.0,
        }
    }
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

/// The stencil form in place: `N_sub` sub-steps from `frame` into `out`, using `tmp` as the
/// second buffer. Panics on `SubSteps::Infinite` (no stencil exists for it).
pub fn safe_stencil_into<T: Real>(
    frame: &[T],
    out: &mut [T],
    tmp: &mut [T],
    grid: &Grid,
    a: f64,
    dt_save: f64,
    n_sub: u32,
) {
    let h = dt_save / n_sub as f64;
    let kx = T::from_f64(h * a / (grid.dx * grid.dx));
    let ky = T::from_f64(h * a / (grid.dy * grid.dy));
    // Alternate buffers so the last sub-step lands in `out`.
    let (mut src, mut dst): (&mut [T], &mut [T]) = if n_sub % 2 == 1 {
        tmp.copy_from_slice(frame);
        (tmp, out)
    } else {
        out.copy_from_slice(frame);
        (out, tmp)
    };
    for _ in 0..n_sub {
        euler_step(src, dst, grid.nx, grid.ny, kx, ky);
        std::mem::swap(&mut src, &mut dst);
    }
}

/// The stencil form: `P = (I + dt_sub*a*L)^N_sub F` for one frame.
pub fn safe_stencil<T: Real>(frame: &[T], grid: &Grid, a: f64, dt_save: f64, n_sub: u32) -> Vec<T> {
    let mut out = frame.to_vec();
    let mut tmp = frame.to_vec();
    safe_stencil_into(frame, &mut out, &mut tmp, grid, a, dt_save, n_sub);
    out
}

/// Reference: the paper's Eq. (6) written literally with the naive Laplacian.
pub fn safe_stencil_naive(
    frame: &[f64],
    grid: &Grid,
    a: f64,
    dt_save: f64,
    n_sub: u32,
) -> Vec<f64> {
    let h = dt_save / n_sub as f64;
    let mut p = frame.to_vec();
    for _ in 0..n_sub {
        let lap = laplacian_naive(&p, grid);
        for (x, l) in p.iter_mut().zip(&lap) {
            *x += h * a * l;
        }
    }
    p
}

/// The spectral form of the SAFE operator on one grid.
#[derive(Clone)]
pub struct SpectralSafe {
    pub grid: Grid,
    pub fft: Fft2,
    /// Eigenvalue magnitude of each stored mode, in the [`Fft2`] layout.
    pub mu: Vec<f64>,
}

impl SpectralSafe {
    pub fn new(grid: Grid) -> SpectralSafe {
        let fft = Fft2::new(grid.nx, grid.ny);
        let (mx, my) = (grid.mu_x(), grid.mu_y());
        let mut mu = Vec::with_capacity(fft.spec_len());
        for &myk in my.iter().take(fft.nyh()) {
            for &mxk in &mx {
                mu.push(mxk + myk);
            }
        }
        SpectralSafe { grid, fft, mu }
    }

    /// Multiply a spectrum by the operator's per-mode multiplier, in place.
    pub fn apply_spectrum(&self, spec: &mut [C64], a: f64, dt_save: f64, n: SubSteps) {
        for (s, &mu) in spec.iter_mut().zip(&self.mu) {
            *s *= multiplier(mu, a, dt_save, n).0;
        }
    }

    /// Propagate one frame over one frame interval.
    pub fn apply<T: Copy + Into<f64>>(
        &self,
        frame: &[T],
        a: f64,
        dt_save: f64,
        n: SubSteps,
    ) -> Vec<f64> {
        let mut s = self.fft.scratch();
        self.apply_with(frame, a, dt_save, n, &mut s)
    }

    pub fn apply_with<T: Copy + Into<f64>>(
        &self,
        frame: &[T],
        a: f64,
        dt_save: f64,
        n: SubSteps,
        s: &mut Fft2Scratch,
    ) -> Vec<f64> {
        let mut spec = vec![C64::default(); self.fft.spec_len()];
        self.fft.forward(frame, &mut spec, s);
        self.apply_spectrum(&mut spec, a, dt_save, n);
        let mut out = vec![0.0; self.grid.len()];
        self.fft.inverse(&mut spec, &mut out, s);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_field(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(0.0..1.0)).collect()
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn parse_and_display_sub_steps() {
        assert_eq!("50".parse::<SubSteps>(), Ok(SubSteps::Finite(50)));
        assert_eq!("inf".parse::<SubSteps>(), Ok(SubSteps::Infinite));
        assert!("0".parse::<SubSteps>().is_err());
        assert!("-3".parse::<SubSteps>().is_err());
        assert!("many".parse::<SubSteps>().is_err());
        assert_eq!(SubSteps::Finite(7).to_string(), "7");
    }

    #[test]
    fn stencil_matches_naive_reference() {
        let g = Grid::new(9, 14, 0.5, 0.7).unwrap();
        let u = random_field(g.len(), 3);
        for n in [1, 2, 5, 13] {
            let fast = safe_stencil(&u, &g, 0.4, 0.25, n);
            let slow = safe_stencil_naive(&u, &g, 0.4, 0.25, n);
            assert!(max_abs_diff(&fast, &slow) < 1e-12, "n_sub={n}");
        }
    }

    #[test]
    fn stencil_and_spectral_agree_for_paper_sub_steps() {
        // Random fields on non-square grids with dx != dy, every N_sub of the ablation.
        for &(nx, ny, dx, dy, a) in &[
            (16, 16, 0.5, 0.5, 0.7),
            (12, 20, 0.5, 0.8, 0.3),
            (25, 9, 1.1, 0.6, 0.55),
            (32, 17, 0.4, 0.45, 0.12),
        ] {
            let g = Grid::new(nx, ny, dx, dy).unwrap();
            let spec = SpectralSafe::new(g);
            let u = random_field(g.len(), (nx + ny) as u64);
            for n in [1, 2, 5, 10, 25, 50] {
                let st = safe_stencil(&u, &g, a, 0.25, n);
                let sp = spec.apply(&u, a, 0.25, SubSteps::Finite(n));
                // Unstable N_sub amplify the field; compare relative to its size.
                let scale = st.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                assert!(
                    max_abs_diff(&st, &sp) <= 1e-12 * scale,
                    "{nx}x{ny} n_sub={n}: {}",
                    max_abs_diff(&st, &sp) / scale
                );
            }
        }
    }

    #[test]
    fn f32_stencil_matches_spectral_to_single_precision() {
        let g = Grid::new(20, 12, 0.5, 0.6).unwrap();
        let u = random_field(g.len(), 11);
        let u32: Vec<f32> = u.iter().map(|&x| x as f32).collect();
        let st = safe_stencil(&u32, &g, 0.5, 0.25, 50);
        let sp = SpectralSafe::new(g).apply(&u32, 0.5, 0.25, SubSteps::Finite(50));
        for (a, b) in st.iter().zip(&sp) {
            assert!((*a as f64 - b).abs() < 2e-6);
        }
    }

    #[test]
    fn exponential_form_is_the_limit_of_many_sub_steps() {
        let g = Grid::new(10, 14, 0.5, 0.9).unwrap();
        let op = SpectralSafe::new(g);
        let u = random_field(g.len(), 5);
        let exp = op.apply(&u, 0.6, 0.25, SubSteps::Infinite);
        let prev = op.apply(&u, 0.6, 0.25, SubSteps::Finite(1000));
        let fine = op.apply(&u, 0.6, 0.25, SubSteps::Finite(100_000));
        // Euler's error is O(dt_sub): 100x more sub-steps, ~100x closer.
        let (e1, e2) = (max_abs_diff(&prev, &exp), max_abs_diff(&fine, &exp));
        assert!(e2 < 1e-5 && e2 < e1 / 50.0, "{e1} {e2}");
    }

    #[test]
    fn exponential_form_matches_a_classical_rk4_integration() {
        // Independent oracle: RK4 on du/dt = a*lap(u) with the naive Laplacian.
        let g = Grid::new(8, 11, 0.5, 0.7).unwrap();
        let u0 = random_field(g.len(), 9);
        let (a, t_end, steps) = (0.45, 0.25, 400);
        let h = t_end / steps as f64;
        let f = |u: &[f64]| -> Vec<f64> { laplacian_naive(u, &g).iter().map(|l| a * l).collect() };
        let mut u = u0.clone();
        for _ in 0..steps {
            let k1 = f(&u);
            let y2: Vec<f64> = u.iter().zip(&k1).map(|(x, k)| x + 0.5 * h * k).collect();
            let k2 = f(&y2);
            let y3: Vec<f64> = u.iter().zip(&k2).map(|(x, k)| x + 0.5 * h * k).collect();
            let k3 = f(&y3);
            let y4: Vec<f64> = u.iter().zip(&k3).map(|(x, k)| x + h * k).collect();
            let k4 = f(&y4);
            for i in 0..u.len() {
                u[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            }
        }
        let exp = SpectralSafe::new(g).apply(&u0, a, t_end, SubSteps::Infinite);
        assert!(max_abs_diff(&u, &exp) < 1e-9, "{}", max_abs_diff(&u, &exp));
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
