//! The SAFE loss as a function of `|alpha|` alone, and the direct SAFE fit.
//!
//! With a fixed latent video `F`, the SAFE loss (paper Eq. 9, mean over pixels and frame
//! pairs) is, by Parseval and because the SAFE operator is diagonal in Fourier space,
//!
//! `L(a) = 1/((T-1) N^2) sum_t sum_k |m_k(a) X_t,k - X_t+1,k|^2`
//!
//! where `X_t = FFT(F[t])` and `m_k(a)` is the operator's multiplier. Grouping modes of equal
//! eigenvalue and summing over frames once, every evaluation afterwards costs `O(Nx*Ny/4)`
//! with no FFT and no stencil. We store the sums in the form
//! `(m-1)^2 A + 2 (m-1) E + D` (with `D = sum |X_t+1 - X_t|^2`, `E = sum Re X_t conj(X_t - X_t+1)`)
//! so no large terms cancel when the frames change little.
//!
//! [`safe_loss_naive`] evaluates the same loss literally with the stencil operator; tests bind
//! the two and check the derivatives against finite differences.

use crate::fft2::{C64, Fft2};
use crate::grid::Grid;
use crate::operator::{SubSteps, multiplier, safe_stencil};
use rayon::prelude::*;

/// Half spectra of every frame of a (canonically ordered) video.
pub struct VideoSpectra {
    pub grid: Grid,
    pub fft: Fft2,
    pub n_frames: usize,
    /// `[n_frames, nyh, nx]`.
    pub spec: Vec<C64>,
}

impl VideoSpectra {
    /// FFT every frame, in parallel. `frames` are in the order the SAFE operator runs.
    pub fn compute<T: Copy + Into<f64> + Sync>(frames: &[&[T]], grid: &Grid) -> VideoSpectra {
        let fft = Fft2::new(grid.nx, grid.ny);
        let sl = fft.spec_len();
        let mut spec = vec![C64::default(); frames.len() * sl];
        spec.par_chunks_mut(sl)
            .zip(frames.par_iter())
            .for_each_init(
                || fft.scratch(),
                |s, (out, frame)| fft.forward(frame, out, s),
            );
        VideoSpectra {
            grid: *grid,
            fft,
            n_frames: frames.len(),
            spec,
        }
    }

    fn frame(&self, t: usize) -> &[C64] {
        let sl = self.fft.spec_len();
        &self.spec[t * sl..(t + 1) * sl]
    }

    /// Per-frame-pair SAFE loss `mean_pixels (P[t] - F[t+1])^2`, evaluated mode by mode
    /// without grouping (exact; used for reporting and the paper's Fig. 6).
    pub fn pair_losses(&self, mu: &[f64], a: f64, dt_save: f64, n: SubSteps) -> Vec<f64> {
        let m: Vec<f64> = mu
            .iter()
            .map(|&mu| multiplier(mu, a, dt_save, n).0)
            .collect();
        let nx = self.grid.nx;
        let norm = 1.0 / (self.grid.len() as f64).powi(2);
        (0..self.n_frames.saturating_sub(1))
            .into_par_iter()
            .map(|t| {
                let (x0, x1) = (self.frame(t), self.frame(t + 1));
                let mut acc = 0.0;
                for ky in 0..self.fft.nyh() {
                    let w = self.fft.weight(ky);
                    let r = ky * nx..(ky + 1) * nx;
                    let row: f64 = x0[r.clone()]
                        .iter()
                        .zip(&x1[r.clone()])
                        .zip(&m[r])
                        .map(|((&p, &q), &mk)| (p * mk - q).norm_sqr())
                        .sum();
                    acc += w * row;
                }
                acc * norm
            })
            .collect()
    }
}

/// The SAFE loss `L(|alpha|)` of one latent video, pre-summed over frames and grouped by
/// Laplacian eigenvalue.
#[derive(Clone, Debug)]
pub struct SafeLossCurve {
    pub dt_save: f64,
    pub n_pairs: usize,
    pub n_pixels: usize,
    /// Eigenvalue magnitude of each group.
    pub mu: Vec<f64>,
    /// `sum_t |X_t|^2` (normalised), per group.
    pub a: Vec<f64>,
    /// `sum_t Re X_t conj(X_t - X_t+1)`, per group.
    pub e: Vec<f64>,
    /// `sum_t |X_t+1 - X_t|^2`, per group.
    pub d: Vec<f64>,
    /// Number of Fourier modes in each group (full spectrum).
    pub count: Vec<f64>,
    /// Per-pixel variance of white measurement noise whose expected contribution is
    /// removed from the loss (0 = none); see [`SafeLossCurve::with_noise`].
    pub noise_var: f64,
    /// Correlation of the noise between consecutive frames (0 = independent); see
    /// [`NoiseModel`].
    pub noise_rho: f64,
    /// Per group: expected noise power removed (`noise_var * count / N`, at most the group's
    /// own power) and whether the group is kept (signal clearly above noise).
    pub noise_corr: Vec<f64>,
    pub keep: Vec<bool>,
}

/// A group of modes takes part in a noise-corrected loss only if its power is at least this
/// many times the noise's: below it the group is mostly noise, which adds variance and, in
/// an unstable sub-step range, spurious minima.
pub const NOISE_KEEP_RATIO: f64 = 4.0;

/// Upper bound on the frame-to-frame noise correlation the correction accepts: at 1 the
/// noise would be a fixed pattern, which the frame differences cancel by themselves.
pub const MAX_NOISE_RHO: f64 = 0.95;

/// Measurement noise as the noise-corrected SAFE loss models it: per-pixel variance `var`
/// (in the spectra's units) and correlation `rho` between the noise of consecutive frames.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NoiseModel {
    pub var: f64,
    pub rho: f64,
}

/// Value and first two derivatives of the SAFE loss at one `|alpha|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPoint {
    pub loss: f64,
    pub d1: f64,
    pub d2: f64,
    /// Gauss-Newton curvature `2 * mean (dP/da)^2`.
    pub gauss_newton: f64,
}

impl SafeLossCurve {
    /// Mode eigenvalues of the stored half spectrum (layout of [`Fft2`]).
    pub fn mode_mu(grid: &Grid, fft: &Fft2) -> Vec<f64> {
        let (mx, my) = (grid.mu_x(), grid.mu_y());
        let mut mu = Vec::with_capacity(fft.spec_len());
        for &myk in my.iter().take(fft.nyh()) {
            for &mxk in &mx {
                mu.push(mxk + myk);
            }
        }
        mu
    }

    pub fn new(v: &VideoSpectra, dt_save: f64) -> SafeLossCurve {
        Self::with_spacing(v, v.grid.dx, v.grid.dy, dt_save)
    }

    /// The curve of the same spectra under other grid spacings (the sums do not depend on
    /// them; only the eigenvalue of each group does). Used to check the axis convention.
    pub fn with_spacing(v: &VideoSpectra, dx: f64, dy: f64, dt_save: f64) -> SafeLossCurve {
        let grid = Grid { dx, dy, ..v.grid };
        let (nx, nxh, nyh) = (v.grid.nx, v.grid.nx / 2 + 1, v.fft.nyh());
        let sl = v.fft.spec_len();
        let pairs = v.n_frames.saturating_sub(1);
        // Per-mode sums over frame pairs, in parallel over rows of the half spectrum.
        let mut sums = vec![[0.0f64; 3]; sl];
        sums.par_chunks_mut(nx).enumerate().for_each(|(ky, out)| {
            for t in 0..pairs {
                let x0 = &v.frame(t)[ky * nx..(ky + 1) * nx];
                let x1 = &v.frame(t + 1)[ky * nx..(ky + 1) * nx];
                for ((o, &p), &q) in out.iter_mut().zip(x0).zip(x1) {
                    let diff = p - q;
                    o[0] += p.norm_sqr();
                    o[1] += p.re * diff.re + p.im * diff.im;
                    o[2] += diff.norm_sqr();
                }
            }
        });
        // Fold kx and nx-kx (equal eigenvalue) and apply Parseval weights + normalisation.
        let norm = 1.0 / (pairs.max(1) as f64 * (v.grid.len() as f64).powi(2));
        let (mx, my) = (grid.mu_x(), grid.mu_y());
        let ng = nxh * nyh;
        let (mut a, mut e, mut d) = (vec![0.0; ng], vec![0.0; ng], vec![0.0; ng]);
        let mut mu = vec![0.0; ng];
        let mut count = vec![0.0; ng];
        for ky in 0..nyh {
            let w = v.fft.weight(ky) * norm;
            for kx in 0..nx {
                let kf = kx.min(nx - kx);
                let g = ky * nxh + kf;
                let s = sums[ky * nx + kx];
                a[g] += w * s[0];
                e[g] += w * s[1];
                d[g] += w * s[2];
                count[g] += v.fft.weight(ky);
                mu[g] = mx[kf] + my[ky];
            }
        }
        SafeLossCurve {
            dt_save,
            n_pairs: pairs,
            n_pixels: v.grid.len(),
            mu,
            a,
            e,
            d,
            keep: vec![true; count.len()],
            noise_corr: vec![0.0; count.len()],
            count,
            noise_var: 0.0,
            noise_rho: 0.0,
        }
    }

    /// Remove the expected contribution of white noise of per-pixel variance `var` on every
    /// frame, independent between frames (see [`Self::with_noise_model`]).
    pub fn with_noise(self, var: f64) -> SafeLossCurve {
        self.with_noise_model(NoiseModel { var, rho: 0.0 })
    }

    /// Remove the expected contribution of measurement noise. Noise on `F[t]` is smoothed by
    /// the operator, noise on `F[t+1]` is not, so the raw SAFE loss gains
    /// `var * mean_k (m_k(a)^2 - 2 rho m_k(a) + 1)`, which falls as `|alpha|` grows when the
    /// noise is independent between frames (`rho = 0`) and biases the minimum towards too
    /// much smoothing; subtracting it leaves an unbiased loss. Quantised frames (8-bit
    /// cameras) are the case `rho > 0`: where the field moves less than one grey level per
    /// frame the rounding error repeats from frame to frame, and correcting as if it were
    /// independent over-corrects (biases `|alpha|` low).
    ///
    /// Groups of modes whose power is below [`NOISE_KEEP_RATIO`] times the noise's are left
    /// out, and no group's correction exceeds its own power, so the corrected loss stays
    /// bounded below.
    pub fn with_noise_model(mut self, noise: NoiseModel) -> SafeLossCurve {
        let (var, rho) = (noise.var, noise.rho);
        self.noise_var = if var.is_finite() && var > 0.0 {
            var
        } else {
            0.0
        };
        self.noise_rho = if rho.is_finite() && self.noise_var > 0.0 {
            rho.clamp(0.0, MAX_NOISE_RHO)
        } else {
            0.0
        };
        let n = self.n_pixels as f64;
        for g in 0..self.mu.len() {
            let noise = self.noise_var * self.count[g] / n;
            self.noise_corr[g] = noise.min(self.a[g]);
            self.keep[g] =
                self.noise_var == 0.0 || self.mu[g] == 0.0 || self.a[g] >= NOISE_KEEP_RATIO * noise;
        }
        self
    }

    /// Loss and derivatives in `a = |alpha|`.
    pub fn eval(&self, a: f64, n: SubSteps) -> LossPoint {
        let (mut l, mut d1, mut d2, mut gn) = (0.0, 0.0, 0.0, 0.0);
        for g in 0..self.mu.len() {
            if !self.keep[g] {
                continue;
            }
            let (m, m1, m2) = multiplier(self.mu[g], a, self.dt_save, n);
            let (ag, eg) = (self.a[g], self.e[g]);
            let r = m - 1.0;
            l += r * r * ag + 2.0 * r * eg + self.d[g];
            d1 += 2.0 * m1 * (r * ag + eg);
            d2 += 2.0 * (m1 * m1 + r * m2) * ag + 2.0 * m2 * eg;
            gn += 2.0 * m1 * m1 * ag;
            if self.noise_var > 0.0 {
                let (c, rho) = (self.noise_corr[g], self.noise_rho);
                l -= c * (m * m - 2.0 * rho * m + 1.0);
                d1 -= c * 2.0 * (m - rho) * m1;
                d2 -= c * 2.0 * (m1 * m1 + (m - rho) * m2);
            }
        }
        LossPoint {
            loss: l,
            d1,
            d2,
            gauss_newton: gn,
        }
    }

    /// Standard error of `|alpha|` at `a` from the loss curvature (Gauss-Newton, residual
    /// variance from the raw loss), assuming independent pixel residuals; optimistic when
    /// residuals are spatially correlated. Infinite when the loss is flat in `a`.
    pub fn stderr(&self, a: f64, n: SubSteps) -> f64 {
        let gn = self.eval(a, n).gauss_newton;
        let n_res = (self.n_pairs * self.n_pixels) as f64;
        if gn > 0.0 {
            (2.0 * self.raw_loss(a, n).max(0.0) / ((n_res - 1.0).max(1.0) * gn)).sqrt()
        } else {
            f64::INFINITY
        }
    }

    /// True when the noise correction changes the loss materially: some group of modes is
    /// left out as noise-dominated (on clean data none is).
    pub fn noise_active(&self) -> bool {
        self.noise_var > 0.0 && self.keep.iter().any(|k| !k)
    }

    /// The SAFE loss without the noise correction (what the paper reports).
    pub fn raw_loss(&self, a: f64, n: SubSteps) -> f64 {
        let mut l = 0.0;
        for g in 0..self.mu.len() {
            let r = multiplier(self.mu[g], a, self.dt_save, n).0 - 1.0;
            l += r * r * self.a[g] + 2.0 * r * self.e[g] + self.d[g];
        }
        l
    }

    /// Energy of the frame-to-frame change in the modes the loss uses, less the noise's
    /// expected share: the SAFE loss at `|alpha| = 0`. The loss over this is the fraction of
    /// the change the operator leaves unexplained.
    pub fn change_energy(&self) -> f64 {
        (0..self.mu.len())
            .filter(|&g| self.keep[g])
            .map(|g| self.d[g] - self.noise_corr[g] * (2.0 - 2.0 * self.noise_rho))
            .sum()
    }

    /// Total spectral energy of the frame-to-frame evolution beyond the mean; zero means
    /// the video carries no information about `alpha`.
    pub fn structure_energy(&self) -> f64 {
        self.a
            .iter()
            .zip(&self.mu)
            .filter(|(_, mu)| **mu > 0.0)
            .map(|(a, _)| a)
            .sum()
    }
}

/// How the SAFE loss treats measurement noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoiseMode {
    /// The raw loss (the paper's).
    Off,
    /// Estimate the noise from the data ([`estimate_noise`]) and correct.
    Auto,
    /// Correct for white noise of this standard deviation (the video's units).
    Std(f64),
}

impl std::str::FromStr for NoiseMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(NoiseMode::Off),
            "auto" => Ok(NoiseMode::Auto),
            t => match t.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(NoiseMode::Std(v)),
                _ => Err(format!(
                    "invalid noise setting '{s}': expected auto, off, or a standard deviation >= 0"
                )),
            },
        }
    }
}

impl std::fmt::Display for NoiseMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoiseMode::Off => f.write_str("off"),
            NoiseMode::Auto => f.write_str("auto"),
            NoiseMode::Std(v) => write!(f, "{v}"),
        }
    }
}

impl NoiseMode {
    /// The noise to correct for, for spectra whose values are `scale` times the video's
    /// (e.g. `1/std` for a normalised latent). A given standard deviation means white noise,
    /// independent between frames.
    pub fn model(self, v: &VideoSpectra, scale: f64) -> NoiseModel {
        match self {
            NoiseMode::Off => NoiseModel::default(),
            NoiseMode::Auto => estimate_noise(v),
            NoiseMode::Std(s) => NoiseModel {
                var: (s * scale).powi(2),
                rho: 0.0,
            },
        }
    }
}

/// Per-pixel variance of white noise in a video ([`estimate_noise`]'s `var`).
pub fn estimate_noise_var(v: &VideoSpectra) -> f64 {
    estimate_noise(v).var
}

/// Measurement noise of a video, from its highest-frequency modes (eigenvalue >= 3/4 of
/// the maximum) in the frames where their power is smallest: the smoothest frames' top band
/// holds almost no signal after diffusion, while white noise puts the same power `var` (per
/// mode, normalised) everywhere. `rho` is the correlation of that band between consecutive
/// such frames (0 for noise drawn afresh each frame, > 0 for rounding error that repeats).
/// On noise-free data `var` is at the float rounding floor; on data whose smoothest frame
/// still has structure at the grid scale it overestimates, and `rho` with it. `rho` is
/// measured on the slowest frames and applied to all pairs.
pub fn estimate_noise(v: &VideoSpectra) -> NoiseModel {
    let mu = SafeLossCurve::mode_mu(&v.grid, &v.fft);
    let cut = 0.75 * mu.iter().cloned().fold(0.0, f64::max);
    let nx = v.grid.nx;
    let n = v.grid.len() as f64;
    // The top band's modes and their Parseval weights, once.
    let band: Vec<(usize, f64)> = (0..mu.len())
        .filter(|&i| mu[i] >= cut)
        .map(|i| (i, v.fft.weight(i / nx)))
        .collect();
    let wsum: f64 = band.iter().map(|b| b.1).sum();
    let top = |t: usize, u: usize| {
        let (x, y) = (v.frame(t), v.frame(u));
        let p: f64 = band
            .iter()
            .map(|&(i, w)| w * (x[i].re * y[i].re + x[i].im * y[i].im))
            .sum();
        if wsum > 0.0 { p / (n * wsum) } else { 0.0 }
    };
    let per_frame: Vec<f64> = (0..v.n_frames).into_par_iter().map(|t| top(t, t)).collect();
    // Average the frames whose top-band power is within 25% of the smallest (all noise-
    // dominated ones), so the estimate is not the minimum of noisy values.
    let min = per_frame
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min)
        .max(0.0);
    let sel: Vec<usize> = (0..v.n_frames)
        .filter(|&t| per_frame[t] <= 1.25 * min)
        .collect();
    if sel.is_empty() {
        return NoiseModel::default();
    }
    let var = sel.iter().map(|&t| per_frame[t]).sum::<f64>() / sel.len() as f64;
    let (mut cross, mut power) = (0.0, 0.0);
    for w in sel.windows(2) {
        if w[1] == w[0] + 1 {
            cross += top(w[0], w[1]);
            power += 0.5 * (per_frame[w[0]] + per_frame[w[1]]);
        }
    }
    let rho = if power > 0.0 { cross / power } else { 0.0 };
    NoiseModel { var, rho }
}

/// Reference: the SAFE loss by the literal definition, stencil operator and pixel sums.
pub fn safe_loss_naive(frames: &[Vec<f64>], grid: &Grid, a: f64, dt_save: f64, n_sub: u32) -> f64 {
    let pairs = frames.len() - 1;
    let mut total = 0.0;
    for t in 0..pairs {
        let p = safe_stencil(&frames[t], grid, a, dt_save, n_sub);
        total += p
            .iter()
            .zip(&frames[t + 1])
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            / grid.len() as f64;
    }
    total / pairs as f64
}

/// Options of the direct SAFE fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    pub n_sub: SubSteps,
    /// Search range for `|alpha|`; `None` covers von Neumann numbers `1e-5..1e4` per frame.
    pub alpha_range: Option<(f64, f64)>,
    /// Points per decade of the global scan that finds the basin (non-convex for unstable N_sub).
    pub scan_per_decade: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            n_sub: SubSteps::Finite(50),
            alpha_range: None,
            scan_per_decade: 4,
        }
    }
}

/// Result of the direct SAFE fit of one video.
#[derive(Clone, Debug, PartialEq)]
pub struct FitResult {
    pub alpha_abs: f64,
    /// Standard error from the loss curvature (Gauss-Newton), assuming independent pixel
    /// residuals; optimistic when residuals are spatially correlated.
    pub stderr: f64,
    /// SAFE loss at the optimum (mean over pixels and frame pairs, exact form).
    pub safe_loss: f64,
    /// True when the optimum sits on the edge of the search range.
    pub at_bound: bool,
    pub evaluations: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error("video has {0} frame(s) after frame stepping; the SAFE loss needs at least 2")]
    TooFewFrames(usize),
    #[error("video has no spatial structure (constant frames): alpha is unidentifiable")]
    NoStructure,
    #[error("invalid alpha search range [{0}, {1}]")]
    BadRange(f64, f64),
    #[error("SAFE loss is not finite over the whole search range")]
    NotFinite,
}

/// Minimise the SAFE loss over `|alpha|`: a log-spaced global scan (the loss has several
/// basins when `N_sub` is unstable), then safeguarded Newton on `L'(a) = 0` inside the best
/// bracket, which is precise to rounding because `L'` carries no large cancelling terms.
pub fn fit_alpha(curve: &SafeLossCurve, opts: &FitOptions) -> Result<FitResult, FitError> {
    if curve.n_pairs < 1 {
        return Err(FitError::TooFewFrames(curve.n_pairs + 1));
    }
    let lmax = curve.mu.iter().cloned().fold(0.0, f64::max);
    if curve.structure_energy() <= 0.0 || lmax <= 0.0 {
        return Err(FitError::NoStructure);
    }
    let (lo, hi) = match opts.alpha_range {
        Some((lo, hi)) => {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo) {
                return Err(FitError::BadRange(lo, hi));
            }
            (lo, hi)
        }
        None => {
            let hi = 1e4 / (curve.dt_save * lmax);
            // A noise-corrected loss is only meaningful where the sub-steps are stable.
            let hi = match (curve.noise_active(), opts.n_sub) {
                (true, SubSteps::Finite(k)) => hi.min(2.0 * k as f64 / (curve.dt_save * lmax)),
                _ => hi,
            };
            (1e-5 / (curve.dt_save * lmax), hi)
        }
    };
    let n = opts.n_sub;
    let decades = (hi / lo).log10();
    let npts = ((decades * opts.scan_per_decade.max(2) as f64).ceil() as usize).max(8) + 1;
    let grid: Vec<f64> = (0..npts)
        .map(|i| lo * (hi / lo).powf(i as f64 / (npts - 1) as f64))
        .collect();
    // The scan's points are independent: evaluate them in parallel, pick in order.
    let scan: Vec<f64> = grid.par_iter().map(|&a| curve.eval(a, n).loss).collect();
    let mut evals = npts;
    let mut best = (f64::INFINITY, 0usize);
    for (i, &l) in scan.iter().enumerate() {
        if l.is_finite() && l < best.0 {
            best = (l, i);
        }
    }
    if !best.0.is_finite() {
        return Err(FitError::NotFinite);
    }
    let i = best.1;
    let (mut a_lo, mut a_hi) = (grid[i.saturating_sub(1)], grid[(i + 1).min(npts - 1)]);
    let mut a = grid[i];
    let mut at_bound = false;
    let d_lo = curve.eval(a_lo, n).d1;
    let d_hi = curve.eval(a_hi, n).d1;
    evals += 2;
    if d_lo < 0.0 && d_hi > 0.0 {
        // rtsafe: Newton steps kept inside a shrinking sign-change bracket.
        for _ in 0..200 {
            let p = curve.eval(a, n);
            evals += 1;
            if p.d1 < 0.0 {
                a_lo = a;
            } else {
                a_hi = a;
            }
            let newton = if p.d2 > 0.0 {
                a - p.d1 / p.d2
            } else {
                f64::NAN
            };
            let next = if newton.is_finite() && newton > a_lo && newton < a_hi {
                newton
            } else {
                0.5 * (a_lo + a_hi)
            };
            let done =
                (next - a).abs() <= 1e-15 * a || (a_hi - a_lo) <= 4e-16 * a_hi || p.d1 == 0.0;
            a = next;
            if done {
                break;
            }
        }
    } else {
        // The scan's best point is on the range edge (or the basin is flat): golden section
        // on the loss itself inside the bracket.
        at_bound = i == 0 || i == npts - 1;
        let phi = 0.5 * (5f64.sqrt() - 1.0);
        let (mut x0, mut x1) = (a_lo, a_hi);
        for _ in 0..200 {
            let c = x1 - phi * (x1 - x0);
            let d = x0 + phi * (x1 - x0);
            evals += 2;
            if curve.eval(c, n).loss <= curve.eval(d, n).loss {
                x1 = d;
            } else {
                x0 = c;
            }
            if x1 - x0 <= 1e-14 * x1 {
                break;
            }
        }
        a = 0.5 * (x0 + x1);
    }
    let loss = curve.raw_loss(a, n).max(0.0);
    let stderr = curve.stderr(a, n);
    Ok(FitResult {
        alpha_abs: a,
        stderr,
        safe_loss: loss,
        at_bound,
        evaluations: evals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initial::{grain_centres, roughness_field, voronoi_field};
    use crate::simulate::{SimParams, Solver, simulate_f64};
    use rand::{Rng, SeedableRng};

    fn video(
        grid: Grid,
        alpha: f64,
        dt: f64,
        steps: usize,
        every: usize,
        seed: u64,
    ) -> Vec<Vec<f64>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let c = grain_centres(&grid, 8, &mut rng);
        let xi = roughness_field(&grid, 1.0, 3.0, &mut rng);
        let u0 = voronoi_field(&grid, &c, 2.5, &xi);
        let p = SimParams {
            grid,
            alpha_abs: alpha,
            dt,
            n_steps: steps,
            save_interval: every,
        };
        let (f, _) = simulate_f64(&u0, &p, Solver::Spectral).unwrap();
        f.chunks(grid.len()).map(|c| c.to_vec()).collect()
    }

    fn curve_of(frames: &[Vec<f64>], grid: &Grid, dt_save: f64) -> SafeLossCurve {
        let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
        SafeLossCurve::new(&VideoSpectra::compute(&refs, grid), dt_save)
    }

    #[test]
    fn spectral_loss_matches_naive_stencil_loss() {
        let g = Grid::new(20, 14, 0.5, 0.7).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let frames: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..g.len()).map(|_| rng.random::<f64>()).collect())
            .collect();
        let curve = curve_of(&frames, &g, 0.25);
        let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
        let vs = VideoSpectra::compute(&refs, &g);
        let mu = SafeLossCurve::mode_mu(&g, &vs.fft);
        for n in [1, 2, 5, 50] {
            for a in [0.05, 0.3, 0.7] {
                let naive = safe_loss_naive(&frames, &g, a, 0.25, n);
                let fast = curve.eval(a, SubSteps::Finite(n)).loss;
                assert!(
                    (naive - fast).abs() <= 1e-12 * naive.max(1.0),
                    "n={n} a={a}: {naive} {fast}"
                );
                let pairs = vs.pair_losses(&mu, a, 0.25, SubSteps::Finite(n));
                let mean = pairs.iter().sum::<f64>() / pairs.len() as f64;
                assert!((naive - mean).abs() <= 1e-12 * naive.max(1.0));
            }
        }
    }

    #[test]
    fn loss_derivatives_match_finite_differences() {
        let g = Grid::new(16, 12, 0.5, 0.5).unwrap();
        let frames = video(g, 0.4, 0.005, 150, 50, 3);
        let curve = curve_of(&frames, &g, 0.25);
        for n in [
            SubSteps::Finite(1),
            SubSteps::Finite(3),
            SubSteps::Finite(50),
            SubSteps::Infinite,
        ] {
            for a in [0.1, 0.37, 0.9] {
                let h = 1e-5 * a;
                let p = curve.eval(a, n);
                let (lp, lm) = (curve.eval(a + h, n), curve.eval(a - h, n));
                let fd1 = (lp.loss - lm.loss) / (2.0 * h);
                let fd2 = (lp.d1 - lm.d1) / (2.0 * h);
                assert!(
                    (fd1 - p.d1).abs() <= 1e-6 * (p.d1.abs() + 1e-9),
                    "{n} a={a}: {fd1} {}",
                    p.d1
                );
                assert!(
                    (fd2 - p.d2).abs() <= 1e-5 * (p.d2.abs() + 1e-9),
                    "{n} a={a}: {fd2} {}",
                    p.d2
                );
            }
        }
    }

    #[test]
    fn recovers_alpha_from_euler_data_to_rounding() {
        for &(nx, ny, dx, dy, alpha, every) in &[
            (32, 32, 0.5, 0.5, 0.35, 50),
            (40, 24, 0.5, 0.8, 0.62, 50),
            (24, 36, 0.7, 0.4, 0.13, 20),
        ] {
            let g = Grid::new(nx, ny, dx, dy).unwrap();
            let dt = 0.005;
            let frames = video(g, alpha, dt, every * 12, every, 11);
            let curve = curve_of(&frames, &g, dt * every as f64);
            let opts = FitOptions {
                n_sub: SubSteps::Finite(every as u32),
                ..Default::default()
            };
            let r = fit_alpha(&curve, &opts).unwrap();
            assert!(
                (r.alpha_abs - alpha).abs() < 1e-9,
                "{nx}x{ny}: {} vs {alpha}",
                r.alpha_abs
            );
            assert!(!r.at_bound);
            // With a wrong sub-step count the fit is biased: the test can tell them apart.
            let wrong = FitOptions {
                n_sub: SubSteps::Finite(2),
                ..Default::default()
            };
            let r2 = fit_alpha(&curve, &wrong).unwrap();
            assert!((r2.alpha_abs - alpha).abs() > 1e-6);
        }
    }

    #[test]
    fn recovers_alpha_from_exact_semi_discrete_data_with_infinite_sub_steps() {
        let g = Grid::new(30, 22, 0.5, 0.6).unwrap();
        // Many tiny Euler steps approximate the exact semi-discrete flow to ~1e-7; the exact
        // oracle here is the exponential map itself applied to the initial frame.
        let frames0 = video(g, 0.5, 0.005, 50, 50, 5);
        let op = crate::operator::SpectralSafe::new(g);
        let mut frames = vec![frames0[0].clone()];
        for _ in 0..10 {
            let next = op.apply(frames.last().unwrap(), 0.5, 0.25, SubSteps::Infinite);
            frames.push(next);
        }
        let curve = curve_of(&frames, &g, 0.25);
        let r = fit_alpha(
            &curve,
            &FitOptions {
                n_sub: SubSteps::Infinite,
                ..Default::default()
            },
        )
        .unwrap();
        assert!((r.alpha_abs - 0.5).abs() < 1e-10, "{}", r.alpha_abs);
    }

    #[test]
    fn noise_correction_removes_the_bias_of_noisy_frames() {
        let g = Grid::new(64, 64, 0.5, 0.5).unwrap();
        let clean = video(g, 0.4, 0.005, 1500, 50, 21);
        let range = 0.5;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        let sigma = 0.02 * range;
        let noisy: Vec<Vec<f64>> = clean
            .iter()
            .map(|f| {
                f.iter()
                    .map(|x| {
                        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
                        x + sigma
                            * (-2.0 * u1.ln()).sqrt()
                            * (2.0 * std::f64::consts::PI * u2).cos()
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = noisy.iter().map(|f| f.as_slice()).collect();
        let vs = VideoSpectra::compute(&refs, &g);
        let var = estimate_noise_var(&vs);
        // Noise drawn afresh each frame: no frame-to-frame correlation.
        assert!(estimate_noise(&vs).rho < 0.05, "{:?}", estimate_noise(&vs));
        assert!(
            (var.sqrt() / sigma - 1.0).abs() < 0.05,
            "estimated sigma {} vs {sigma}",
            var.sqrt()
        );
        let raw = SafeLossCurve::new(&vs, 0.25);
        let fixed = raw.clone().with_noise(var);
        let opts = FitOptions::default();
        let (a_raw, a_fix) = (
            fit_alpha(&raw, &opts).unwrap().alpha_abs,
            fit_alpha(&fixed, &opts).unwrap().alpha_abs,
        );
        assert!(
            (a_raw - 0.4).abs() > 0.05,
            "raw fit should be biased: {a_raw}"
        );
        assert!((a_fix - 0.4).abs() < 0.01, "corrected fit: {a_fix}");
        // Noise-free data: the estimate sits at rounding level and changes nothing.
        let refs: Vec<&[f64]> = clean.iter().map(|f| f.as_slice()).collect();
        let vs = VideoSpectra::compute(&refs, &g);
        let var0 = estimate_noise_var(&vs);
        assert!(var0 < 1e-20, "{var0}");
        let c = SafeLossCurve::new(&vs, 0.25);
        let (x, y) = (
            fit_alpha(&c, &opts).unwrap().alpha_abs,
            fit_alpha(&c.clone().with_noise(var0), &opts)
                .unwrap()
                .alpha_abs,
        );
        assert!((x - y).abs() < 1e-12);
    }

    #[test]
    fn quantised_frames_need_the_frame_to_frame_noise_correlation() {
        let g = Grid::new(64, 64, 0.5, 0.5).unwrap();
        let alpha = 0.15;
        let clean = video(g, alpha, 0.005, 5000, 50, 23);
        let (lo, hi) = clean
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        // An 8-bit camera: 256 grey levels over the video's range.
        let q: Vec<Vec<f64>> = clean
            .iter()
            .map(|f| {
                f.iter()
                    .map(|&x| ((x - lo) / (hi - lo) * 255.0).round())
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = q.iter().map(|f| f.as_slice()).collect();
        let vs = VideoSpectra::compute(&refs, &g);
        let nm = estimate_noise(&vs);
        // Rounding error of a uniform quantiser: variance 1/12 grey level^2.
        assert!((nm.var * 12.0 - 1.0).abs() < 0.25, "{nm:?}");
        assert!(
            nm.rho > 0.1,
            "rounding error repeats between frames: {nm:?}"
        );
        let opts = FitOptions::default();
        let curve = SafeLossCurve::new(&vs, 0.25);
        let err = |c: SafeLossCurve| (fit_alpha(&c, &opts).unwrap().alpha_abs - alpha).abs();
        let (white, correlated) = (
            err(curve.clone().with_noise(nm.var)),
            err(curve.with_noise_model(nm)),
        );
        // Measured: 9.7e-4 as white noise, 9.5e-5 with rho (alpha 0.15).
        assert!(correlated < 0.25 * white, "{correlated} vs {white}");
        assert!(correlated < 2.5e-3 * alpha, "{correlated}");
    }

    #[test]
    fn constant_video_is_an_error_not_a_number() {
        let g = Grid::new(8, 8, 0.5, 0.5).unwrap();
        let frames = vec![vec![0.7; 64]; 5];
        let curve = curve_of(&frames, &g, 0.25);
        assert_eq!(
            fit_alpha(&curve, &FitOptions::default()),
            Err(FitError::NoStructure)
        );
        let one = vec![vec![0.7; 64]];
        let curve = curve_of(&one, &g, 0.25);
        assert_eq!(
            fit_alpha(&curve, &FitOptions::default()),
            Err(FitError::TooFewFrames(1))
        );
    }

    #[test]
    fn unstable_sub_steps_find_the_global_basin() {
        // N_sub = 2 is unstable for alpha = 0.6 on this grid; the loss is a quartic with a
        // second basin. The scan must return the global minimum, cross-checked by brute force.
        let g = Grid::new(32, 32, 0.5, 0.5).unwrap();
        let frames = video(g, 0.6, 0.005, 500, 50, 2);
        let curve = curve_of(&frames, &g, 0.25);
        let n = SubSteps::Finite(2);
        let r = fit_alpha(
            &curve,
            &FitOptions {
                n_sub: n,
                ..Default::default()
            },
        )
        .unwrap();
        let brute = (1..20000)
            .map(|i| i as f64 * 1e-4)
            .map(|a| (curve.eval(a, n).loss, a))
            .fold((f64::INFINITY, 0.0), |b, x| if x.0 < b.0 { x } else { b });
        assert!(r.safe_loss <= brute.0 * (1.0 + 1e-9));
        assert!((r.alpha_abs - brute.1).abs() < 2e-4);
    }
}
