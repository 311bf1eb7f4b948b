//! Unit-free estimation (`model.units = "rate"`): what lets one pretrained model serve any
//! grid spacing, frame interval, grid size and intensity scale.
//!
//! Diffusion makes the energy of a mode of eigenvalue `mu` decay per frame by
//! `exp(-2 r s)`, with the dimensionless eigenvalue `s = mu / lambda_ref`, the rate
//! `r = |alpha| dt_save lambda_ref` and `lambda_ref = 1/dx^2 + 1/dy^2`. So bands fixed in `s`
//! (not in `mu`, not relative to the grid's own spectrum) see the same physics at any `dx`,
//! `dt_save` and grid size, and intensity drops out of log energies taken relative to each
//! other. From the bands' decays a cheap prior `r0` (a weighted geometric mean of per-band
//! rates) is formed; the estimator's output is a factor on it, `|alpha| = y r0 / (dt_save
//! lambda_ref)`, and its band inputs are the decays in units of the prior's. Every input and
//! the output are then unit-free, and the network only learns the correction: where bands
//! drown in noise, blur, an open window's boundary flux or the discretisation bend the
//! decays away from the plain law.
//!
//! The band energies are taken in the operator's own basis (Fourier, or cosine for sealed
//! boxes and open windows); see [`spectra_of`] for what was tried on open windows. A band's
//! decay over a frame pair is `2 r` times the mean of its energy-weighted `s` at the two
//! frames (the trapezoid rule: energy drifts to a band's slower modes as it decays), which
//! brought the prior's MAE on independent periodic continuum videos from 4.3e-2 to 6.4e-4.

use crate::bands::log_energies_in;
use crate::model::RatePrior;
use safe_physics::loss::VideoSpectra;
use safe_physics::{Grid, OperatorSpec, SafeOperator};

/// Lowest and highest dimensionless eigenvalue the bands cover: a 512-pixel period's
/// lowest mode to above the continuum Laplacian's corner (`2 pi^2`).
pub const S_MIN: f64 = 1e-4;
pub const S_MAX: f64 = 24.0;

/// The grid's eigenvalue scale `1/dx^2 + 1/dy^2`.
pub fn lambda_ref(grid: &Grid) -> f64 {
    1.0 / (grid.dx * grid.dx) + 1.0 / (grid.dy * grid.dy)
}

/// The prior when no band decays measurably (a static video): ~1e-4 of a band per frame.
const FALLBACK_RATE: f64 = 1e-4;

/// A video's unit-free band geometry and prior, fixed once from its frames so that the
/// features of its latents (test-time training) are measured in the same units.
#[derive(Clone, Debug)]
pub struct RateInputs {
    pub k: usize,
    spec: OperatorSpec,
    /// Band edges in eigenvalue (`mu`) units of this video's grid.
    edges: Vec<f64>,
    /// Energy-weighted mean `s` of each band in each frame, `[t][k]` (0 = empty band).
    pub s_mean: Vec<f64>,
    /// The energy floor added before the logarithm.
    floor: f64,
    /// The video's lowest per-mode log energy (its noise level, or its faintest band).
    noise_log: f32,
    /// The prior rate `r0` per frame.
    pub r0: f64,
    /// `|alpha|` of an estimator output of 1: `r0 / (dt_save lambda_ref)`.
    pub alpha_unit: f64,
    /// With the weak-form prior: `Some(ln(band prior / weak form))` where the weak form was
    /// valid (then `r0` is the weak form's rate), `Some(NaN)` where it was not (then `r0` is
    /// the band prior); `None` with the band prior.
    weak: Option<f64>,
}

/// The frames' spectra in the operator's basis, and the operator giving their eigenvalues.
///
/// On an open window the cosine coefficients carry a tail set by the edge gradients, which
/// changes slowly and reads as slowly decaying high bands (the prior lands 40-90% low on
/// clean open windows; measured). Two cures were measured and not kept: Tukey-tapered frames
/// (leakage from the slow low bands swamps fast high bands: prior off by up to e^4 on
/// clean periodic videos) and frame-to-frame changes (the tail cancels, but on clean
/// windows the prior still ranged from -76% to +2%, and on camera videos noise dominates
/// the changes: prior off by up to 46x).
fn spectra_of(frames: &[&[f32]], grid: &Grid, spec: OperatorSpec) -> (VideoSpectra, SafeOperator) {
    let op = SafeOperator::new(*grid, spec, 1.0);
    (
        VideoSpectra::compute(frames, grid, op.basis.boundary_kind()),
        op,
    )
}

impl RateInputs {
    /// Bands, prior and log energies `[t][k]` of a video's frames under the operator `spec`.
    pub fn of(
        frames: &[&[f32]],
        grid: &Grid,
        spec: OperatorSpec,
        k: usize,
        dt_save: f64,
        prior_kind: RatePrior,
    ) -> (RateInputs, Vec<f32>) {
        let (spectra, op) = spectra_of(frames, grid, spec);
        let lref = lambda_ref(grid);
        let edges: Vec<f64> = (0..=k)
            .map(|i| lref * S_MIN * (S_MAX / S_MIN).powf(i as f64 / k as f64))
            .collect();
        let e = log_energies_in(&spectra, &op.mu, &edges, None);
        let s_mean: Vec<f64> = e.energy_mu.iter().map(|m| m / lref).collect();
        let t = spectra.n_frames;
        let noise_log = (0..t * k)
            .filter(|i| e.count[i % k] > 0.0)
            .map(|i| e.log_e[i])
            .fold(f32::INFINITY, f32::min);
        let band_r0 = prior(&e.log_e, t, k, &s_mean, &e.count, noise_log);
        let (r0, weak) = match prior_kind {
            RatePrior::Bands => (band_r0, None),
            RatePrior::WeakForm => match weak_rate(frames, grid) {
                Some(rw) => (rw, Some((band_r0 / rw).ln())),
                None => (band_r0, Some(f64::NAN)),
            },
        };
        (
            RateInputs {
                k,
                spec,
                edges,
                s_mean,
                floor: e.floor,
                noise_log,
                r0,
                alpha_unit: r0 / (dt_save * lref),
                weak,
            },
            e.log_e,
        )
    }

    /// Log energies `[t][k]` of other frames of the same video (a latent) in these bands.
    pub fn log_energies(&self, frames: &[&[f32]], grid: &Grid) -> Vec<f32> {
        let (sp, op) = spectra_of(frames, grid, self.spec);
        log_energies_in(&sp, &op.mu, &self.edges, Some(self.floor)).log_e
    }

    /// The mean `s` of band `b` over frames `j` and `j + 1` (the trapezoid rule for the
    /// pair's decay; the last frame pairs with itself). Frames beyond the video's own (a
    /// latent of another length) use its last.
    fn pair_s(&self, j: usize, b: usize) -> f64 {
        let n = self.s_mean.len() / self.k;
        let at = |i: usize| self.s_mean[i.min(n - 1) * self.k + b];
        0.5 * (at(j) + at(j + 1))
    }

    /// Estimator inputs `[t][3k]`: per band the log energy centred over the video, its
    /// height over the noise level (/10), and the decay to the next frame in units of the
    /// prior's, as `asinh(decay / prior's + 1)` (`0` = decays as the prior says; log-like
    /// far from it, so a prior off by a large factor is still seen; the last frame repeats
    /// the previous pair).
    /// Empty bands are all zero. With the weak-form prior two video-wide inputs follow,
    /// repeated per band: `ln(band prior / weak form) / 3` (clamped to +-2) and `1` where
    /// the weak form was valid (both `0` where it was not).
    pub fn features(&self, log_e: &[f32], t: usize) -> Vec<f32> {
        let k = self.k;
        let w = if self.weak.is_some() { 5 } else { 3 };
        let mut out = vec![0f32; t * w * k];
        if let Some(lr) = self.weak.filter(|x| x.is_finite()) {
            for row in out.chunks_exact_mut(w * k) {
                row[3 * k..4 * k].fill((lr / 3.0).clamp(-2.0, 2.0) as f32);
                row[4 * k..].fill(1.0);
            }
        }
        for b in 0..k {
            if self.s_mean[b] <= 0.0 {
                continue;
            }
            let mean = (0..t).map(|i| log_e[i * k + b]).sum::<f32>() / t as f32;
            for i in 0..t {
                let j = if i + 1 < t { i } else { i.saturating_sub(1) };
                let unit = 2.0 * self.pair_s(j, b) * self.r0;
                let d = if t > 1 {
                    (log_e[(j + 1) * k + b] - log_e[j * k + b]) as f64
                } else {
                    0.0
                };
                let row = &mut out[i * w * k..(i + 1) * w * k];
                row[b] = log_e[i * k + b] - mean;
                row[k + b] = (log_e[i * k + b] - self.noise_log) / 10.0;
                row[2 * k + b] = (d / unit + 1.0).asinh() as f32;
            }
        }
        out
    }
}

/// The weak form's rate `D dt_save lambda_ref` of frames in the smoothing direction, if it
/// sees a smoothing process at all (`None` for a non-positive or failed estimate).
fn weak_rate(frames: &[&[f32]], grid: &Grid) -> Option<f64> {
    let w = safe_physics::weak_form::WeakForm::default();
    // dt = 1: the estimate comes out per frame; diffusion gives alpha = -D < 0.
    let a = safe_physics::weak_form::weak_form_alpha(
        frames, grid.nx, grid.ny, grid.dx, grid.dy, 1.0, &w,
    )
    .ok()?;
    let r = -a * lambda_ref(grid);
    (r.is_finite() && r > 0.0).then_some(r)
}

/// The prior rate: a weighted median of per-band rates `-sum(decay) / sum(2 s_pair)`, over the
/// frame pairs whose later energy is 10x above the noise level. A band weighs by how much
/// it decayed over those pairs (up to 3 in log energy): a flat band says little, and an
/// open window's edges put a slowly decaying tail into the high bands. A median, because a
/// few bands can still be far off.
fn prior(log_e: &[f32], t: usize, k: usize, s: &[f64], count: &[f64], noise_log: f32) -> f64 {
    let mut rates: Vec<(f64, f64)> = Vec::new();
    for b in 0..k {
        if count[b] <= 0.0 || s[b] <= 0.0 {
            continue;
        }
        // Decay over the pairs and what it would be at rate 1 (trapezoid rule in s).
        let (mut sum, mut unit) = (0.0f64, 0.0f64);
        for i in 0..t.saturating_sub(1) {
            let (a, c) = (log_e[i * k + b], log_e[(i + 1) * k + b]);
            if c > noise_log + std::f32::consts::LN_10 {
                sum += (c - a) as f64;
                unit += s[i * k + b] + s[(i + 1) * k + b];
            }
        }
        if unit <= 0.0 || sum >= 0.0 {
            continue;
        }
        rates.push(((-sum / unit).ln(), (-sum).min(3.0)));
    }
    if rates.is_empty() {
        return FALLBACK_RATE;
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = 0.5 * rates.iter().map(|r| r.1).sum::<f64>();
    let mut acc = 0.0;
    for &(lr, w) in &rates {
        acc += w;
        if acc >= half {
            return lr.exp();
        }
    }
    rates[rates.len() - 1].0.exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safe_physics::{Boundary, Laplacian, OperatorSpec, SubSteps};

    fn spec() -> OperatorSpec {
        OperatorSpec {
            boundary: Boundary::Periodic,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        }
    }

    fn video(grid: Grid, alpha: f64, dt: f64, t: usize) -> (Vec<Vec<f32>>, SafeOperator) {
        let spec = spec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let u0 = safe_physics::initial::roughness_field(&grid, 1.0, 4.0 * grid.dx, &mut rng);
        let op = SafeOperator::new(grid, spec, dt);
        let f = safe_physics::simulate::evolve_exact(&u0, &grid, spec, alpha, dt, t);
        (
            f.chunks_exact(grid.len())
                .map(|c| c.iter().map(|&x| x as f32).collect())
                .collect(),
            op,
        )
    }
    use rand::SeedableRng;

    fn inputs(grid: Grid, alpha: f64, dt: f64, t: usize) -> (RateInputs, Vec<f32>) {
        let (f, _) = video(grid, alpha, dt, t);
        let refs: Vec<&[f32]> = f.iter().map(|x| x.as_slice()).collect();
        let (r, le) = RateInputs::of(&refs, &grid, spec(), 16, dt, RatePrior::Bands);
        let feats = r.features(&le, t);
        (r, feats)
    }

    #[test]
    fn the_prior_of_clean_continuum_diffusion_is_close_and_its_units_cancel() {
        let g = Grid::new(64, 48, 0.5, 0.5).unwrap();
        let (r, _) = inputs(g, 0.3, 0.05, 12);
        assert!(
            (r.alpha_unit / 0.3 - 1.0).abs() < 0.02,
            "prior {} for 0.3",
            r.alpha_unit
        );
        // The same pixels with dx doubled and alpha x4 (same dimensionless physics): the
        // prior in alpha scales exactly and the features do not move.
        let g2 = Grid::new(64, 48, 1.0, 1.0).unwrap();
        let (r2, _) = inputs(g2, 1.2, 0.05, 12);
        assert!((r2.alpha_unit / r.alpha_unit - 4.0).abs() < 1e-6);
        assert!((r2.r0 / r.r0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_weak_form_prior_is_near_exact_on_a_window_and_says_so_in_its_inputs() {
        // A 40x36 window of a 64x48 periodic continuum video: the band prior is biased by the
        // edge flux, the weak form is not.
        let g = Grid::new(64, 48, 0.5, 0.5).unwrap();
        let (f, _) = video(g, 0.3, 0.05, 21);
        let wg = Grid::new(40, 36, 0.5, 0.5).unwrap();
        let win: Vec<Vec<f32>> = f
            .iter()
            .map(|fr| {
                (0..40)
                    .flat_map(|i| (0..36).map(move |j| fr[(i + 10) * 48 + j + 6]))
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = win.iter().map(|x| x.as_slice()).collect();
        let open = OperatorSpec {
            boundary: Boundary::Open,
            ..spec()
        };
        let (r, le) = RateInputs::of(&refs, &wg, open, 16, 0.05, RatePrior::WeakForm);
        assert!(
            (r.alpha_unit / 0.3 - 1.0).abs() < 1e-3,
            "weak-form prior {} for 0.3",
            r.alpha_unit
        );
        let feats = r.features(&le, 21);
        assert_eq!(feats.len(), 21 * 5 * 16);
        // The validity flag is set on every band of every frame.
        assert!(
            feats
                .chunks_exact(80)
                .all(|row| row[64..].iter().all(|&x| x == 1.0))
        );
        // Frames that sharpen (not in the smoothing direction) give the weak form no
        // smoothing to measure: the band prior stands in and the inputs say so.
        let back: Vec<&[f32]> = refs.iter().rev().copied().collect();
        let (r2, le2) = RateInputs::of(&back, &wg, open, 16, 0.05, RatePrior::WeakForm);
        assert!(r2.weak.is_some_and(f64::is_nan));
        assert!(
            r2.features(&le2, 21)
                .chunks_exact(80)
                .all(|row| row[48..].iter().all(|&x| x == 0.0))
        );
    }

    #[test]
    fn features_are_unit_free_in_time_and_intensity() {
        for prior in [RatePrior::Bands, RatePrior::WeakForm] {
            unit_free(prior);
        }
    }

    fn unit_free(prior: RatePrior) {
        let g = Grid::new(48, 48, 1.0, 1.0).unwrap();
        let (f, _) = video(g, 0.5, 0.1, 9);
        let refs: Vec<&[f32]> = f.iter().map(|x| x.as_slice()).collect();
        let (r, le) = RateInputs::of(&refs, &g, spec(), 16, 0.1, prior);
        // Intensity x7 + 3: identical features; the same frames with dt halved and alpha
        // doubled: identical features and an alpha unit twice as large.
        let scaled: Vec<Vec<f32>> = f
            .iter()
            .map(|x| x.iter().map(|v| 7.0 * v + 3.0).collect())
            .collect();
        let refs2: Vec<&[f32]> = scaled.iter().map(|x| x.as_slice()).collect();
        let (r2, le2) = RateInputs::of(&refs2, &g, spec(), 16, 0.05, prior);
        let (a, b) = (r.features(&le, 9), r2.features(&le2, 9));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 2e-3, "{x} {y}");
        }
        assert!((r2.alpha_unit / r.alpha_unit - 2.0).abs() < 1e-3);
    }
}
