//! The SAFE loss as a closed-form function of `|alpha|` where the operator is diagonal
//! (periodic and zero-flux boundaries), over one or more frame strides.
//!
//! With a fixed latent video `F` and an operator diagonal in a basis, the SAFE loss of
//! stride `h` (paper Eq. 9 for `h = 1`, mean over pixels and frame pairs) is, by Parseval,
//!
//! `L_h(a) = 1/((T-h) N) sum_t sum_k w_k |m_k(a)^h X_t,k - X_t+h,k|^2`
//!
//! where `X_t` are the frame's coefficients and `m_k` the operator's multiplier. Grouping
//! modes of equal eigenvalue and summing over frames once, every evaluation afterwards costs
//! `O(modes)` with no transform and no stencil. The sums are stored as
//! `(m-1)^2 A + 2 (m-1) E + D` (`D = sum |X_t+h - X_t|^2`, `E = sum Re X_t conj(X_t - X_t+h)`)
//! so no large terms cancel when the frames change little. Several strides average their
//! losses: a stride of `h` intervals is the operator applied `h` times (`N_sub h` sub-steps),
//! which sees `h` times the change against the same noise.
//!
//! [`super::reference::safe_loss_naive`] evaluates the same loss literally; tests bind them.

use super::noise::NoiseModel;
use super::spectra::VideoSpectra;
use crate::fft2::C64;
use crate::operator::symbol::grid_multipliers;
use crate::operator::{OperatorSpec, SafeOperator, SubSteps};
use rayon::prelude::*;

/// A group of modes takes part in a noise-corrected loss only if its power is at least this
/// many times the noise's: below it the group is mostly noise, which adds variance and, in
/// an unstable sub-step range, spurious minima.
pub const NOISE_KEEP_RATIO: f64 = 4.0;

/// Value and first two derivatives of a SAFE loss at one `|alpha|`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossPoint {
    pub loss: f64,
    pub d1: f64,
    pub d2: f64,
    /// Gauss-Newton curvature `2 * mean (dP/da)^2`.
    pub gauss_newton: f64,
}

impl std::ops::AddAssign for LossPoint {
    fn add_assign(&mut self, o: LossPoint) {
        self.loss += o.loss;
        self.d1 += o.d1;
        self.d2 += o.d2;
        self.gauss_newton += o.gauss_newton;
    }
}

/// The SAFE loss `L(|alpha|)` of one latent video under one diagonal operator, pre-summed
/// over frames and grouped by eigenvalue.
#[derive(Clone, Debug)]
pub struct SafeLossCurve {
    pub spec: OperatorSpec,
    pub dt_save: f64,
    pub lambda_max: f64,
    pub n_pixels: usize,
    pub strides: Vec<usize>,
    /// Frame pairs per stride.
    pub n_pairs: Vec<usize>,
    /// Eigenvalue magnitude of each group, `mu_x[fx] + mu_y[ky]` (groups row major).
    pub mu: Vec<f64>,
    mu_x: Vec<f64>,
    mu_y: Vec<f64>,
    /// A stored coefficient of each group (its eigenvalue under another operator).
    rep: Vec<usize>,
    /// Modes of the full basis in each group.
    pub count: Vec<f64>,
    /// `[stride][group]` sums, normalised to per-pixel means per frame pair.
    pub a: Vec<f64>,
    pub e: Vec<f64>,
    pub d: Vec<f64>,
    /// Power of the first and last `h` frames (what reversing the video changes).
    head: Vec<f64>,
    tail: Vec<f64>,
    pub noise: NoiseModel,
    /// `[stride][group]`: expected noise power removed (at most the group's own power).
    pub noise_corr: Vec<f64>,
    /// Whether a group takes part in the corrected loss (signal clearly above noise).
    pub keep: Vec<bool>,
}

/// Per mode, `s0 += p^2`, `s1 += p (p - q)`, `s2 += (p - q)^2` for real coefficient lines
/// `p` (frame `t`) and `q` (frame `t + h`). A function of its own so the compiler knows the
/// lines do not overlap and vectorises the loop (inlined into the caller it stayed scalar).
#[inline(never)]
fn pair_sums_real(s0: &mut [f64], s1: &mut [f64], s2: &mut [f64], p: &[f64], q: &[f64]) {
    let n = s0
        .len()
        .min(s1.len())
        .min(s2.len())
        .min(p.len())
        .min(q.len());
    let (s0, s1, s2, p, q) = (&mut s0[..n], &mut s1[..n], &mut s2[..n], &p[..n], &q[..n]);
    for k in 0..n {
        let diff = p[k] - q[k];
        s0[k] += p[k] * p[k];
        s1[k] += p[k] * diff;
        s2[k] += diff * diff;
    }
}

/// [`pair_sums_real`] for complex (Fourier) coefficient lines: `|p|^2`, `Re(conj(p) (p - q))`,
/// `|p - q|^2`, each formed exactly as `norm_sqr` forms it.
#[inline(never)]
fn pair_sums_complex(s0: &mut [f64], s1: &mut [f64], s2: &mut [f64], p: &[C64], q: &[C64]) {
    let n = s0
        .len()
        .min(s1.len())
        .min(s2.len())
        .min(p.len())
        .min(q.len());
    let (s0, s1, s2, p, q) = (&mut s0[..n], &mut s1[..n], &mut s2[..n], &p[..n], &q[..n]);
    for k in 0..n {
        let (dr, di) = (p[k].re - q[k].re, p[k].im - q[k].im);
        s0[k] += p[k].re * p[k].re + p[k].im * p[k].im;
        s1[k] += p[k].re * dr + p[k].im * di;
        s2[k] += dr * dr + di * di;
    }
}

impl SafeLossCurve {
    /// Sum the spectra once. `op` must be diagonal in the spectra's basis.
    pub fn new(v: &VideoSpectra, op: &SafeOperator, strides: &[usize]) -> SafeLossCurve {
        assert_eq!(
            v.boundary_kind(),
            op.basis.boundary_kind(),
            "spectra and operator must share a basis"
        );
        assert!(!op.is_masked(), "an open window has no closed-form curve");
        let b = &v.basis;
        let (nx, rows, nfx) = (b.nx(), b.rows(), b.n_fold_x());
        let sl = b.n_coeffs();
        let ng = nfx * rows;
        let strides: Vec<usize> = strides
            .iter()
            .copied()
            .filter(|&h| h >= 1 && h < v.n_frames.max(1))
            .collect();
        let strides = if strides.is_empty() { vec![1] } else { strides };
        let n_pairs: Vec<usize> = strides
            .iter()
            .map(|&h| v.n_frames.saturating_sub(h))
            .collect();
        let np = v.grid.len() as f64;
        // Per stride, per stored coefficient: [A, E, D, head, tail], in parallel over rows.
        let mut a = vec![0.0; strides.len() * ng];
        let mut e = vec![0.0; strides.len() * ng];
        let mut d = vec![0.0; strides.len() * ng];
        let mut head = vec![0.0; strides.len() * ng];
        let mut tail = vec![0.0; strides.len() * ng];
        let mut count = vec![0.0; ng];
        let mut mu = vec![0.0; ng];
        let mut rep = vec![0; ng];
        for ky in 0..rows {
            for kx in 0..nx {
                let g = ky * nfx + b.fold_x(kx);
                count[g] += b.multiplicity(ky);
                mu[g] = op.mu[ky * nx + kx];
                rep[g] = ky * nx + kx;
            }
        }
        // Every stride's sums in one pass over the frames, row of modes by row of modes;
        // each sum still adds its terms in frame order (same bits as a pass per stride).
        let n_str = strides.len();
        let mut sums = vec![[0.0f64; 5]; n_str * sl];
        let real = matches!(b, crate::basis::Basis::Cosine(_));
        sums.par_chunks_mut(n_str * nx)
            .enumerate()
            .for_each(|(ky, outs)| {
                let r = ky * nx..(ky + 1) * nx;
                // Sums per stride as three contiguous lines (one per sum), so the loop over
                // modes vectorises; every sum still adds its terms in frame order.
                let mut acc = vec![0.0f64; n_str * 3 * nx];
                // Cosine coefficients are real: this row of every frame, real parts only,
                // contiguous (their imaginary parts are not summed, and the loop over
                // modes then runs on plain lines of floats).
                let mut re = Vec::new();
                if real {
                    re.reserve_exact(v.n_frames * nx);
                    for t in 0..v.n_frames {
                        re.extend(v.frame(t)[r.clone()].iter().map(|x| x.re));
                    }
                }
                for t in 0..v.n_frames {
                    let x0 = &v.frame(t)[r.clone()];
                    for ((&h, &pairs), acc) in strides
                        .iter()
                        .zip(&n_pairs)
                        .zip(acc.chunks_exact_mut(3 * nx))
                    {
                        if t >= pairs {
                            continue;
                        }
                        let (s0, rest) = acc.split_at_mut(nx);
                        let (s1, s2) = rest.split_at_mut(nx);
                        if real {
                            let p0 = &re[t * nx..(t + 1) * nx];
                            let p1 = &re[(t + h) * nx..(t + h + 1) * nx];
                            pair_sums_real(s0, s1, s2, p0, p1);
                            continue;
                        }
                        pair_sums_complex(s0, s1, s2, x0, &v.frame(t + h)[r.clone()]);
                    }
                }
                for (acc, out) in acc.chunks_exact(3 * nx).zip(outs.chunks_exact_mut(nx)) {
                    for (k, o) in out.iter_mut().enumerate() {
                        o[0] = acc[k];
                        o[1] = acc[nx + k];
                        o[2] = acc[2 * nx + k];
                    }
                }
                for (&h, out) in strides.iter().zip(outs.chunks_exact_mut(nx)) {
                    for t in 0..h.min(v.n_frames) {
                        let x0 = &v.frame(t)[r.clone()];
                        let x1 = &v.frame(v.n_frames - 1 - t)[r.clone()];
                        for ((o, p), q) in out.iter_mut().zip(x0).zip(x1) {
                            o[3] += p.norm_sqr();
                            o[4] += q.norm_sqr();
                        }
                    }
                }
            });
        for (si, &pairs) in n_pairs.iter().enumerate() {
            let norm = b.norm() / (pairs.max(1) as f64 * np);
            for ky in 0..rows {
                let w = b.multiplicity(ky) * norm;
                let row = &sums[(ky * n_str + si) * nx..(ky * n_str + si + 1) * nx];
                for (kx, s) in row.iter().enumerate() {
                    let g = si * ng + ky * nfx + b.fold_x(kx);
                    a[g] += w * s[0];
                    e[g] += w * s[1];
                    d[g] += w * s[2];
                    head[g] += w * s[3];
                    tail[g] += w * s[4];
                }
            }
        }
        SafeLossCurve {
            spec: op.spec,
            dt_save: op.dt_save,
            lambda_max: op.lambda_max(),
            n_pixels: v.grid.len(),
            strides,
            n_pairs,
            mu,
            mu_x: op.mu_x[..nfx].to_vec(),
            mu_y: op.mu_y[..rows].to_vec(),
            rep,
            count,
            a,
            e,
            d,
            head,
            tail,
            noise: NoiseModel::default(),
            noise_corr: vec![0.0; n_str * ng],
            keep: vec![true; ng],
        }
    }

    fn n_groups(&self) -> usize {
        self.mu.len()
    }

    /// The same sums under another operator of the same basis (another discretisation,
    /// spacing or sub-step count): only each group's eigenvalue changes.
    pub fn with_operator(&self, op: &SafeOperator) -> SafeLossCurve {
        let mut c = self.clone();
        c.spec = op.spec;
        c.dt_save = op.dt_save;
        c.lambda_max = op.lambda_max();
        for (m, &r) in c.mu.iter_mut().zip(&self.rep) {
            *m = op.mu[r];
        }
        c.mu_x = op.mu_x[..self.mu_x.len()].to_vec();
        c.mu_y = op.mu_y[..self.mu_y.len()].to_vec();
        c
    }

    /// The curve of the video played backwards (for deciding its direction).
    pub fn reversed(&self) -> SafeLossCurve {
        let mut c = self.clone();
        for i in 0..c.a.len() {
            c.a[i] = self.a[i] - self.head[i] + self.tail[i];
            c.e[i] = self.e[i] + self.tail[i] - self.head[i];
            c.head[i] = self.tail[i];
            c.tail[i] = self.head[i];
        }
        c.with_noise(self.noise.clone())
    }

    /// Remove the expected contribution of measurement noise. Noise on `F[t]` is smoothed by
    /// the operator, noise on `F[t+h]` is not, so the raw loss gains
    /// `var * mean_k (m_k^2 - 2 rho m_k + 1)`, which falls as `|alpha|` grows when the noise
    /// is independent between frames and biases the minimum towards too much smoothing;
    /// subtracting it leaves an unbiased loss. Quantised frames (8-bit cameras) are the case
    /// `rho > 0`: where the field moves less than one grey level per frame the rounding error
    /// repeats, and correcting as if it were independent over-corrects.
    ///
    /// Groups whose power is below [`NOISE_KEEP_RATIO`] times the noise's are left out, and
    /// no group's correction exceeds its own power, so the corrected loss stays bounded below.
    pub fn with_noise(mut self, noise: NoiseModel) -> SafeLossCurve {
        let var = if noise.var.is_finite() && noise.var > 0.0 {
            noise.var
        } else {
            0.0
        };
        self.noise = NoiseModel { var, ..noise };
        let ng = self.n_groups();
        let n = self.n_pixels as f64;
        for g in 0..ng {
            let p = var * self.count[g] / n;
            self.keep[g] = var == 0.0 || self.mu[g] == 0.0 || self.a[g] >= NOISE_KEEP_RATIO * p;
            for si in 0..self.strides.len() {
                self.noise_corr[si * ng + g] = p.min(self.a[si * ng + g]);
            }
        }
        self
    }

    pub fn noise_var(&self) -> f64 {
        self.noise.var
    }

    /// The curve of the frames times `k` (the sums and the noise are quadratic in them;
    /// which groups stand above the noise does not change).
    pub fn rescale(&mut self, k: f64) {
        let k2 = k * k;
        for v in [
            &mut self.a,
            &mut self.e,
            &mut self.d,
            &mut self.head,
            &mut self.tail,
            &mut self.noise_corr,
        ] {
            v.iter_mut().for_each(|x| *x *= k2);
        }
        self.noise.var *= k2;
    }

    /// True when the noise correction changes the loss materially: some group of modes is
    /// left out as noise-dominated (on clean data none is).
    pub fn noise_active(&self) -> bool {
        self.noise.var > 0.0 && self.keep.iter().any(|k| !k)
    }

    /// One group's contribution over all strides (strides averaged).
    #[inline]
    fn group(&self, g: usize, a: f64, corrected: bool) -> LossPoint {
        let ng = self.n_groups();
        let w = 1.0 / self.strides.len() as f64;
        let mut p = LossPoint::default();
        for (si, &h) in self.strides.iter().enumerate() {
            let i = si * ng + g;
            let (m, m1, m2) = multiplier_h(self.mu[g], a, self.dt_save, self.spec.n_sub, h);
            let (ag, eg) = (self.a[i], self.e[i]);
            let r = m - 1.0;
            p.loss += w * (r * r * ag + 2.0 * r * eg + self.d[i]);
            p.d1 += w * 2.0 * m1 * (r * ag + eg);
            p.d2 += w * (2.0 * (m1 * m1 + r * m2) * ag + 2.0 * m2 * eg);
            p.gauss_newton += w * 2.0 * m1 * m1 * ag;
            if corrected && self.noise.var > 0.0 {
                let (c, rho) = (self.noise_corr[i], self.noise.rho_at(h));
                p.loss -= w * c * (m * m - 2.0 * rho * m + 1.0);
                p.d1 -= w * c * 2.0 * (m - rho) * m1;
                p.d2 -= w * c * 2.0 * (m1 * m1 + (m - rho) * m2);
            }
        }
        p
    }

    /// Noise-corrected loss and derivatives in `a = |alpha|`: one tight pass per stride
    /// (the hot loop of the direct fit and of zero-shot). [`Self::group`] is the same sum
    /// written per group.
    pub fn eval(&self, a: f64) -> LossPoint {
        self.eval_with(a, true)
    }

    /// The noise-corrected loss alone (bit for bit [`Self::eval`]'s): what scans need.
    pub fn loss_at(&self, a: f64) -> f64 {
        self.eval_with(a, false).loss
    }

    fn eval_with(&self, a: f64, derivs: bool) -> LossPoint {
        let ng = self.n_groups();
        let w = 1.0 / self.strides.len() as f64;
        let noisy = self.noise.var > 0.0;
        let mut p = LossPoint::default();
        let nd = if derivs { ng } else { 0 };
        let (mut mb, mut m1b, mut m2b) = (vec![0.0; ng], vec![0.0; nd], vec![0.0; nd]);
        for (si, &h) in self.strides.iter().enumerate() {
            let (dt, n) = (self.dt_save * h as f64, self.spec.n_sub.times(h));
            let rho = self.noise.rho_at(h);
            let r0 = si * ng..(si + 1) * ng;
            let (aa, ee, dd, cc) = (
                &self.a[r0.clone()],
                &self.e[r0.clone()],
                &self.d[r0.clone()],
                &self.noise_corr[r0],
            );
            let (mut l, mut d1, mut d2, mut gn) = (0.0, 0.0, 0.0, 0.0);
            // Every group's multiplier (per-axis exponentials, or vectorised blocks), then
            // the sums in group order.
            grid_multipliers(
                &self.mu_x, &self.mu_y, a, dt, n, &mut mb, &mut m1b, &mut m2b,
            );
            for g in 0..ng {
                if !self.keep[g] {
                    continue;
                }
                let m = mb[g];
                let (ag, eg) = (aa[g], ee[g]);
                let r = m - 1.0;
                let mut lg = r * r * ag + 2.0 * r * eg + dd[g];
                if noisy {
                    lg -= cc[g] * (m * m - 2.0 * rho * m + 1.0);
                }
                l += lg;
                if derivs {
                    let (m1, m2) = (m1b[g], m2b[g]);
                    let mut d1g = 2.0 * m1 * (r * ag + eg);
                    let mut d2g = 2.0 * (m1 * m1 + r * m2) * ag + 2.0 * m2 * eg;
                    if noisy {
                        let c = cc[g];
                        d1g -= c * 2.0 * (m - rho) * m1;
                        d2g -= c * 2.0 * (m1 * m1 + (m - rho) * m2);
                    }
                    d1 += d1g;
                    d2 += d2g;
                    gn += 2.0 * m1 * m1 * ag;
                }
            }
            p.loss += w * l;
            p.d1 += w * d1;
            p.d2 += w * d2;
            p.gauss_newton += w * gn;
        }
        p
    }

    /// The SAFE loss without the noise correction (what the paper reports), all groups.
    pub fn raw_loss(&self, a: f64) -> f64 {
        (0..self.n_groups())
            .map(|g| self.group(g, a, false).loss)
            .sum()
    }

    /// Standard error of `|alpha|` at the minimum `a` by the sandwich (infinitesimal
    /// jackknife) over groups of modes: `sqrt(sum_g (dL_g/da)^2) / L''`. Modes of different
    /// frequency carry nearly independent noise, and each group's term sums over all frames,
    /// so it covers noise correlated in time, noise of any spatial power, and model error
    /// that pulls different scales towards different `|alpha|` (which the curvature-only
    /// error bar ignored). Infinite when the loss is flat.
    pub fn stderr(&self, a: f64) -> f64 {
        let mut s2 = 0.0;
        let mut h = 0.0;
        for g in 0..self.n_groups() {
            if self.keep[g] {
                let p = self.group(g, a, true);
                s2 += p.d1 * p.d1;
                h += p.d2;
            }
        }
        if h > 0.0 {
            s2.sqrt() / h
        } else {
            f64::INFINITY
        }
    }

    /// How far the minimum moves per unit relative error in the noise variance:
    /// `d|alpha|/d ln(var) = var dC'/dvar / L''` with `C` the noise correction.
    pub fn noise_sensitivity(&self, a: f64) -> f64 {
        if self.noise.var <= 0.0 {
            return 0.0;
        }
        let p = self.eval(a);
        let ng = self.n_groups();
        let w = 1.0 / self.strides.len() as f64;
        let mut dc = 0.0;
        for g in (0..ng).filter(|&g| self.keep[g]) {
            for (si, &h) in self.strides.iter().enumerate() {
                let (m, m1, _) = multiplier_h(self.mu[g], a, self.dt_save, self.spec.n_sub, h);
                dc += w * self.noise_corr[si * ng + g] * 2.0 * (m - self.noise.rho_at(h)) * m1;
            }
        }
        if p.d2 > 0.0 { dc / p.d2 } else { f64::INFINITY }
    }

    /// Energy of the frame-to-frame change in the modes the loss uses, less the noise's
    /// expected share: the corrected loss at `|alpha| = 0`. The loss over this is the
    /// fraction of the change the operator leaves unexplained.
    pub fn change_energy(&self) -> f64 {
        self.loss_at(0.0)
    }

    /// The noise's expected contribution to the raw loss at `a` (the loss of a perfect
    /// model): what a good fit's raw loss should be close to.
    pub fn noise_floor(&self, a: f64) -> f64 {
        if self.noise.var <= 0.0 {
            return 0.0;
        }
        let ng = self.n_groups();
        let w = 1.0 / self.strides.len() as f64;
        let mut f = 0.0;
        for g in 0..ng {
            for &h in &self.strides {
                let (m, _, _) = multiplier_h(self.mu[g], a, self.dt_save, self.spec.n_sub, h);
                let p = self.noise.var * self.count[g] / self.n_pixels as f64;
                f += w * p * (m * m - 2.0 * self.noise.rho_at(h) * m + 1.0);
            }
        }
        f
    }

    /// Total power of the structure beyond the mean; zero means the video carries no
    /// information about `alpha`.
    pub fn structure_energy(&self) -> f64 {
        (0..self.n_groups())
            .filter(|&g| self.mu[g] > 0.0)
            .map(|g| self.a[g])
            .sum()
    }

    /// Effectively independent residual samples: kept modes times frame pairs.
    pub fn n_eff(&self) -> f64 {
        let modes: f64 = (0..self.n_groups())
            .filter(|&g| self.keep[g])
            .map(|g| self.count[g])
            .sum();
        modes * self.n_pairs.iter().sum::<usize>() as f64 / self.strides.len() as f64
    }

    /// Frame pairs of the first stride (the paper's pairs when it is 1).
    pub fn pairs(&self) -> usize {
        self.n_pairs[0]
    }
}

#[inline]
fn multiplier_h(mu: f64, a: f64, dt_save: f64, n: SubSteps, h: usize) -> (f64, f64, f64) {
    crate::operator::multiplier(mu, a, dt_save * h as f64, n.times(h))
}
