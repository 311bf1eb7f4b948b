//! Appendix A.2: forward-Euler integration of the heat equation on the periodic grid.
//!
//! Two solvers with one meaning. [`Solver::Stencil`] runs the sub-steps literally;
//! [`Solver::Spectral`] evaluates exactly the same forward-Euler map in Fourier space, where
//! `n` Euler steps multiply mode `k` by `(1 - dt*|alpha|*mu_k)^n`. The spectral solver is
//! ~50x faster and is the default; a test binds the two.

use crate::fft2::C64;
use crate::grid::Grid;
use crate::laplacian::{Edge, euler_step};
use crate::operator::{OperatorSpec, SafeOperator, SubSteps};
use crate::stability::SIGMA_LIMIT;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    Spectral,
    Stencil,
}

impl Solver {
    pub fn as_str(self) -> &'static str {
        match self {
            Solver::Spectral => "spectral-euler",
            Solver::Stencil => "stencil-euler",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimParams {
    pub grid: Grid,
    pub alpha_abs: f64,
    pub dt: f64,
    pub n_steps: usize,
    pub save_interval: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    #[error("n_steps ({n_steps}) must be a positive multiple of save_interval ({save_interval})")]
    BadSchedule {
        n_steps: usize,
        save_interval: usize,
    },
    #[error("dt and |alpha| must be finite and > 0 (dt={dt}, |alpha|={alpha})")]
    BadCoefficients { dt: f64, alpha: f64 },
    #[error("initial condition has {got} values, grid needs {want}")]
    BadInitial { got: usize, want: usize },
}

/// The schedule actually integrated after the stability check.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub dt: f64,
    pub n_steps: usize,
    pub save_interval: usize,
    /// How many times `dt` was divided to satisfy the von Neumann condition (1 = unchanged).
    pub dt_reduction: usize,
}

impl SimParams {
    pub fn dt_save(&self) -> f64 {
        self.dt * self.save_interval as f64
    }

    pub fn n_frames(&self) -> usize {
        self.n_steps / self.save_interval + 1
    }

    /// Appendix A.2: check `dt*|alpha|*lambda_max < 2` and divide `dt` by the smallest
    /// integer that satisfies it, keeping the saved frame times unchanged.
    pub fn stable_schedule(&self) -> Result<Schedule, SimError> {
        if self.save_interval == 0
            || self.n_steps == 0
            || !self.n_steps.is_multiple_of(self.save_interval)
        {
            return Err(SimError::BadSchedule {
                n_steps: self.n_steps,
                save_interval: self.save_interval,
            });
        }
        if !(self.dt.is_finite()
            && self.dt > 0.0
            && self.alpha_abs.is_finite()
            && self.alpha_abs > 0.0)
        {
            return Err(SimError::BadCoefficients {
                dt: self.dt,
                alpha: self.alpha_abs,
            });
        }
        let sigma = self.dt
            * self.alpha_abs
            * crate::operator::lambda_max(
                crate::operator::Laplacian::FivePoint,
                self.grid.dx,
                self.grid.dy,
            );
        // Strictly below the limit, with a margin so sigma == 2 (marginal, undamped
        // checkerboard) is never integrated.
        let r = if sigma < SIGMA_LIMIT {
            1
        } else {
            (sigma / (0.9 * SIGMA_LIMIT)).ceil() as usize
        };
        Ok(Schedule {
            dt: self.dt / r as f64,
            n_steps: self.n_steps * r,
            save_interval: self.save_interval * r,
            dt_reduction: r,
        })
    }
}

/// Integrate from `u0` and return the saved frames `[T, nx, ny]` in `f64`.
pub fn simulate_f64(
    u0: &[f64],
    p: &SimParams,
    solver: Solver,
) -> Result<(Vec<f64>, Schedule), SimError> {
    let g = p.grid;
    if u0.len() != g.len() {
        return Err(SimError::BadInitial {
            got: u0.len(),
            want: g.len(),
        });
    }
    let sch = p.stable_schedule()?;
    let n_frames = sch.n_steps / sch.save_interval + 1;
    let mut out = Vec::with_capacity(n_frames * g.len());
    out.extend_from_slice(u0);
    match solver {
        Solver::Stencil => {
            let kx = sch.dt * p.alpha_abs / (g.dx * g.dx);
            let ky = sch.dt * p.alpha_abs / (g.dy * g.dy);
            let mut a = u0.to_vec();
            let mut b = vec![0.0; g.len()];
            for step in 1..=sch.n_steps {
                euler_step(&a, &mut b, g.nx, g.ny, kx, ky, Edge::Wrap);
                std::mem::swap(&mut a, &mut b);
                if step % sch.save_interval == 0 {
                    out.extend_from_slice(&a);
                }
            }
        }
        Solver::Spectral => {
            // The same Euler map as the stencil solver, exactly, frame n taken directly as
            // the operator's n-th power so rounding does not accumulate over frames.
            let spec =
                OperatorSpec::periodic_five_point(SubSteps::Finite(sch.save_interval as u32));
            let frames = evolve_exact(
                u0,
                &g,
                spec,
                p.alpha_abs,
                sch.dt * sch.save_interval as f64,
                n_frames,
            );
            out.extend_from_slice(&frames[g.len()..]);
        }
    }
    Ok((out, sch))
}

/// `n_frames` frames of `u0` evolved by the SAFE operator `spec` itself, each taken directly
/// as the operator's power (exact for the operator; for `continuum/inf` the exact Fourier
/// (periodic) or cosine (zero-flux) evolution of the heat equation on band-limited samples).
/// Frame 0 is `u0`.
pub fn evolve_exact(
    u0: &[f64],
    grid: &Grid,
    spec: OperatorSpec,
    alpha_abs: f64,
    dt_save: f64,
    n_frames: usize,
) -> Vec<f64> {
    let op = SafeOperator::new(*grid, spec, dt_save);
    let b = &op.basis;
    let mut s = b.scratch();
    let mut c0 = vec![C64::default(); b.n_coeffs()];
    b.forward(u0, &mut c0, &mut s);
    let mut out = Vec::with_capacity(n_frames * grid.len());
    out.extend_from_slice(u0);
    let mut c = vec![C64::default(); c0.len()];
    let mut frame = vec![0.0; grid.len()];
    for n in 1..n_frames {
        for ((d, &x), &mu) in c.iter_mut().zip(&c0).zip(&op.mu) {
            *d = x * op.multiplier(mu, alpha_abs, n).0;
        }
        b.inverse(&mut c, &mut frame, &mut s);
        out.extend_from_slice(&frame);
    }
    out
}

/// Integrate and store the frames as `f32`, the dataset's storage type.
pub fn simulate(
    u0: &[f64],
    p: &SimParams,
    solver: Solver,
) -> Result<(Vec<f32>, Schedule), SimError> {
    let (f, s) = simulate_f64(u0, p, solver)?;
    Ok((f.into_iter().map(|x| x as f32).collect(), s))
}

/// Time reversal (Appendix A.3): `v[k] = u[T-1-k]`, frame by frame.
pub fn reverse_frames<T: Copy>(frames: &[T], frame_len: usize) -> Vec<T> {
    frames
        .chunks_exact(frame_len)
        .rev()
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn params(grid: Grid, alpha: f64) -> SimParams {
        SimParams {
            grid,
            alpha_abs: alpha,
            dt: 0.005,
            n_steps: 200,
            save_interval: 50,
        }
    }

    #[test]
    fn spectral_and_stencil_solvers_agree() {
        let g = Grid::new(24, 18, 0.5, 0.7).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let u0: Vec<f64> = (0..g.len()).map(|_| rng.random::<f64>()).collect();
        let p = params(g, 0.6);
        let (a, _) = simulate_f64(&u0, &p, Solver::Spectral).unwrap();
        let (b, _) = simulate_f64(&u0, &p, Solver::Stencil).unwrap();
        assert_eq!(a.len(), 5 * g.len());
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(d < 1e-12, "{d}");
    }

    #[test]
    fn unstable_dt_is_reduced_keeping_frame_times() {
        let g = Grid::new(16, 16, 0.5, 0.5).unwrap();
        let p = SimParams {
            dt: 0.2,
            ..params(g, 0.7)
        };
        // sigma = 0.2 * 0.7 * 32 = 4.48 -> divide by ceil(4.48 / 1.8) = 3.
        let s = p.stable_schedule().unwrap();
        assert_eq!(s.dt_reduction, 3);
        assert!((s.dt * s.save_interval as f64 - p.dt_save()).abs() < 1e-15);
        assert!(s.dt * 0.7 * 32.0 < 2.0);
        assert_eq!(params(g, 0.7).stable_schedule().unwrap().dt_reduction, 1);
    }

    #[test]
    fn bad_schedules_are_errors() {
        let g = Grid::new(8, 8, 0.5, 0.5).unwrap();
        assert!(
            SimParams {
                n_steps: 120,
                ..params(g, 0.3)
            }
            .stable_schedule()
            .is_err()
        );
        assert!(
            SimParams {
                dt: -1.0,
                ..params(g, 0.3)
            }
            .stable_schedule()
            .is_err()
        );
        assert!(
            SimParams {
                alpha_abs: f64::NAN,
                ..params(g, 0.3)
            }
            .stable_schedule()
            .is_err()
        );
    }

    #[test]
    fn reversal_flips_frame_order() {
        let v = reverse_frames(&[1, 2, 3, 4, 5, 6], 2);
        assert_eq!(v, vec![5, 6, 3, 4, 1, 2]);
    }
}
