//! The SAFE operator as one planned value: `P = Phi S(|alpha|)^stride F`.
//!
//! `S` is `N_sub` forward-Euler sub-steps (or their `N_sub = inf` limit) of the chosen
//! Laplacian under the chosen boundary, evaluated exactly in the basis that diagonalises it;
//! `Phi` is the identity except on open continuum windows (see [`SafeOperator::filter_order`]).
//! The literal sub-step reference is [`super::reference::safe_reference`]; tests bind the two
//! for every boundary, discretisation and sub-step count.

use super::spec::{Boundary, Laplacian, OperatorSpec, SubSteps};
use super::symbol::{axis_mu, binomial, lambda_max, multiplier};
use crate::basis::{Basis, BasisScratch};
use crate::fft2::C64;
use crate::grid::Grid;
use rustfft::FftPlanner;

#[derive(Clone)]
pub struct SafeOperator {
    pub grid: Grid,
    pub spec: OperatorSpec,
    pub dt_save: f64,
    pub basis: Basis,
    /// Laplacian eigenvalue magnitude of each stored coefficient, `mu_x[kx] + mu_y[ky]`.
    pub mu: Vec<f64>,
    /// Its parts along each axis, per stored `kx` and per stored row `ky`.
    pub mu_x: Vec<f64>,
    pub mu_y: Vec<f64>,
    /// Low-pass weight of each stored coefficient (all 1 without a filter).
    pub filter: Vec<f64>,
}

/// Kernel mass of the frame-to-frame change allowed to reach past the mask of an open
/// window, relative to the whole (clean data; noisy data allow more).
pub const KERNEL_TAIL: f64 = 1e-8;

impl SafeOperator {
    pub fn new(grid: Grid, spec: OperatorSpec, dt_save: f64) -> SafeOperator {
        let basis = Basis::for_boundary(spec.boundary, grid.nx, grid.ny);
        let (tx, ty) = (basis.theta_x(), basis.theta_y());
        let q = Self::filter_order(spec);
        let mu_x: Vec<f64> = tx
            .iter()
            .map(|&x| axis_mu(spec.laplacian, x, grid.dx))
            .collect();
        let mu_y: Vec<f64> = ty
            .iter()
            .map(|&y| axis_mu(spec.laplacian, y, grid.dy))
            .collect();
        let mut mu = Vec::with_capacity(basis.n_coeffs());
        let mut filter = Vec::with_capacity(basis.n_coeffs());
        for (&y, &my) in ty.iter().zip(&mu_y) {
            let fy = binomial(q, y);
            for (&x, &mx) in tx.iter().zip(&mu_x) {
                mu.push(mx + my);
                filter.push(binomial(q, x) * fy);
            }
        }
        SafeOperator {
            grid,
            spec,
            dt_save,
            basis,
            mu,
            mu_x,
            mu_y,
            filter,
        }
    }

    /// Order `q` of the binomial low-pass `cos^(2q)(theta/2)` built into the operator. The
    /// continuum symbol `theta^2` jumps at the Nyquist frequency when periodically extended,
    /// so its kernel decays only like `1/j^2`: on an open window the mirror at the edge
    /// would reach the whole interior. The low-pass (applied to prediction and target alike,
    /// and commuting with the heat flow) vanishes there to order `2q` and makes the kernel
    /// local: with `q = 5` the change's kernel keeps 1e-8 of its mass beyond ~15 pixels at
    /// any `|alpha|` (1e-9 beyond 22 with `q = 4`). Measured on crops of exact Fourier
    /// evolutions: |alpha| error 3e-7 without it (margin 12), ~1e-10 with it.
    pub fn filter_order(spec: OperatorSpec) -> u32 {
        match (spec.boundary, spec.laplacian) {
            (Boundary::Open, Laplacian::Continuum) => 5,
            _ => 0,
        }
    }

    pub fn has_filter(&self) -> bool {
        Self::filter_order(self.spec) > 0
    }

    /// Whether only an interior region of the frame takes part in the loss.
    pub fn is_masked(&self) -> bool {
        self.spec.boundary == Boundary::Open
    }

    /// Bound on the Laplacian's eigenvalues (von Neumann's `lambda_max`).
    pub fn lambda_max(&self) -> f64 {
        lambda_max(self.spec.laplacian, self.grid.dx, self.grid.dy)
    }

    /// Multiplier of a mode over `stride` frame intervals, with its derivatives in `|alpha|`.
    #[inline]
    pub fn multiplier(&self, mu: f64, a: f64, stride: usize) -> (f64, f64, f64) {
        multiplier(
            mu,
            a,
            self.dt_save * stride as f64,
            self.spec.n_sub.times(stride),
        )
    }

    /// Multiply stored coefficients by `Phi m^stride`, in place.
    pub fn apply_coeffs(&self, c: &mut [C64], a: f64, stride: usize) {
        for ((c, &mu), &f) in c.iter_mut().zip(&self.mu).zip(&self.filter) {
            *c *= f * self.multiplier(mu, a, stride).0;
        }
    }

    /// `Phi S(a)^stride F` for one frame. With `a = 0` this is the low-pass alone (the
    /// target a prediction is compared with).
    pub fn apply<T: Copy + Into<f64>>(&self, frame: &[T], a: f64, stride: usize) -> Vec<f64> {
        let mut s = self.basis.scratch();
        self.apply_with(frame, a, stride, &mut s)
    }

    pub fn apply_with<T: Copy + Into<f64>>(
        &self,
        frame: &[T],
        a: f64,
        stride: usize,
        s: &mut BasisScratch,
    ) -> Vec<f64> {
        let mut c = vec![C64::default(); self.basis.n_coeffs()];
        self.basis.forward(frame, &mut c, s);
        self.apply_coeffs(&mut c, a, stride);
        let mut out = vec![0.0; self.grid.len()];
        self.basis.inverse(&mut c, &mut out, s);
        out
    }

    /// Depth (per axis, in pixels) beyond which a prediction over `stride` intervals at
    /// `|alpha| <= a_max` is independent of the world outside the window, up to a kernel
    /// mass of `tol`. Zero unless the operator is masked (open).
    pub fn margins(&self, a_max: f64, stride: usize, tol: f64) -> (usize, usize) {
        if !self.is_masked() {
            return (0, 0);
        }
        let q = Self::filter_order(self.spec);
        let d = |h: f64, n: usize| {
            kernel_depth(
                self.spec.laplacian,
                self.spec.n_sub.times(stride),
                h,
                a_max * self.dt_save * stride as f64,
                q,
                tol,
            )
            .min((n - 1) / 2)
        };
        (d(self.grid.dx, self.grid.nx), d(self.grid.dy, self.grid.ny))
    }
}

/// `m - 1` without cancellation for small `s mu` (the change a mode undergoes).
fn change(mu: f64, s: f64, n_sub: SubSteps) -> f64 {
    match n_sub {
        SubSteps::Infinite => (-s * mu).exp_m1(),
        SubSteps::Finite(n) => {
            let x = s * mu / n as f64;
            if x < 1.0 {
                (n as f64 * (-x).ln_1p()).exp_m1()
            } else {
                multiplier(mu, 1.0, s, n_sub).0 - 1.0
            }
        }
    }
}

/// Half-width of the 1-D kernel of the change `Phi (exp(-s mu(theta)) - 1)` (or its Euler
/// form) beyond which at most `tol` of its absolute mass lies, on an unbounded grid of
/// spacing `h`; `s` is `|alpha|` times the time covered. The 2-D kernel's marginal along an
/// axis is this 1-D kernel, so it bounds how far the mirror at a window's edge reaches,
/// relative to the frame-to-frame change the loss measures (what sets the error in
/// `|alpha|`), at every `s`.
pub fn kernel_depth(lap: Laplacian, n_sub: SubSteps, h: f64, s: f64, q: u32, tol: f64) -> usize {
    // The depth depends on s/h^2 alone (the symbol is theta^2/h^2 or 4 sin^2/h^2): memoise on
    // it, rounded up to 1% (a deeper mask is always safe), across videos and windows.
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (Laplacian, SubSteps, u32, u64, i64);
    static CACHE: OnceLock<Mutex<HashMap<Key, usize>>> = OnceLock::new();
    let sigma = s / (h * h);
    if !(sigma.is_finite() && sigma > 0.0) {
        return 0;
    }
    let bucket = (sigma.ln() / 0.01f64.ln_1p()).ceil() as i64;
    let key = (lap, n_sub, q, tol.to_bits(), bucket);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(&d) = cache
        .lock()
        .ok()
        .and_then(|c| c.get(&key).copied())
        .as_ref()
    {
        return d;
    }
    let d = kernel_depth_uncached(lap, n_sub, (1.01f64).powi(bucket as i32), q, tol);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, d);
    }
    d
}

/// [`kernel_depth`] on a unit grid for `sigma = s / h^2`, computed.
fn kernel_depth_uncached(lap: Laplacian, n_sub: SubSteps, sigma: f64, q: u32, tol: f64) -> usize {
    let (h, s) = (1.0, sigma);
    // Five-point Euler sub-steps reach exactly one pixel each.
    let reach = match (lap, n_sub) {
        (Laplacian::FivePoint, SubSteps::Finite(n)) => n as usize,
        _ => usize::MAX,
    };
    let mut n = 512usize;
    loop {
        let mut buf: Vec<C64> = (0..n)
            .map(|k| {
                let th = 2.0 * std::f64::consts::PI * k.min(n - k) as f64 / n as f64;
                C64::new(change(axis_mu(lap, th, h), s, n_sub) * binomial(q, th), 0.0)
            })
            .collect();
        FftPlanner::<f64>::new()
            .plan_fft_inverse(n)
            .process(&mut buf);
        let k: Vec<f64> = buf.iter().map(|c| c.re.abs() / n as f64).collect();
        let total: f64 = k.iter().sum();
        // Mass at offsets > d: indices d+1 .. n-d-1 of the periodic kernel.
        if total.is_nan() || total <= 0.0 {
            return 0;
        }
        let mut tail = total - k[0];
        for d in 1..n / 2 {
            tail -= k[d] + k[n - d];
            if tail <= tol * total {
                return d.min(reach);
            }
            // A kernel still this wide at a quarter of the grid: widen the grid.
            if d >= n / 4 && n < 1 << 18 {
                break;
            }
        }
        if n >= 1 << 18 {
            return (n / 2).min(reach);
        }
        n *= 4;
    }
}
