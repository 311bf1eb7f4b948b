//! Measurement noise as the noise-corrected SAFE loss models it, and its estimate from the
//! data's highest frequencies.

use super::spectra::VideoSpectra;
use rayon::prelude::*;

/// Upper bound on the frame-to-frame noise correlation the correction accepts: at 1 the
/// noise would be a fixed pattern, which the frame differences cancel by themselves.
pub const MAX_NOISE_RHO: f64 = 0.95;

/// Per-pixel variance `var` of the noise (in the video's units after any scaling) and its
/// correlation `rho[k]` between frames `lags[k]` apart (0 for noise drawn afresh each frame;
/// > 0 for rounding error that repeats where the field moves less than a grey level).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NoiseModel {
    pub var: f64,
    pub lags: Vec<usize>,
    pub rho: Vec<f64>,
}

impl NoiseModel {
    pub fn white(var: f64) -> NoiseModel {
        NoiseModel {
            var,
            ..Default::default()
        }
    }

    /// Correlation between frames `lag` apart (0 where not measured).
    pub fn rho_at(&self, lag: usize) -> f64 {
        self.lags
            .iter()
            .position(|&l| l == lag)
            .map(|k| self.rho[k])
            .unwrap_or(0.0)
            .clamp(0.0, MAX_NOISE_RHO)
    }

    pub fn std(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    /// The same noise in units `scale` times the video's.
    pub fn scaled(&self, scale: f64) -> NoiseModel {
        NoiseModel {
            var: self.var * scale * scale,
            ..self.clone()
        }
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
    /// (e.g. `1/std` for a normalised latent), with correlations at `lags`.
    pub fn model(self, v: &VideoSpectra, scale: f64, lags: &[usize]) -> NoiseModel {
        match self {
            NoiseMode::Off => NoiseModel::default(),
            NoiseMode::Auto => estimate_noise(v, lags),
            NoiseMode::Std(s) => NoiseModel::white((s * scale).powi(2)),
        }
    }
}

/// Measurement noise of a video, from its highest-frequency modes (the top quarter of the
/// band, measured in grid units so the spacing does not matter) in the frames where their
/// power is smallest: the smoothest frames' top band holds almost no signal after diffusion,
/// while white noise puts the same power `var` in every mode. `rho` at each lag is the
/// correlation of that band between such frames. On noise-free data `var` is at the float
/// rounding floor; on data whose smoothest frame still has structure at the grid scale it
/// overestimates, and `rho` with it.
pub fn estimate_noise(v: &VideoSpectra, lags: &[usize]) -> NoiseModel {
    let b = &v.basis;
    let (tx, ty) = (b.theta_x(), b.theta_y());
    let nx = b.nx();
    let s = |i: usize| {
        let (x, y) = ((0.5 * tx[i % nx]).sin(), (0.5 * ty[i / nx]).sin());
        x * x + y * y
    };
    let smax = (0..b.n_coeffs()).map(s).fold(0.0, f64::max);
    let band: Vec<(usize, f64)> = (0..b.n_coeffs())
        .filter(|&i| s(i) >= 0.75 * smax)
        .map(|i| (i, b.multiplicity(i / nx)))
        .collect();
    let wsum: f64 = band.iter().map(|x| x.1).sum();
    // Per-mode power in per-pixel variance units: orthonormal cosine 1, Fourier 1/N.
    let unit = b.norm();
    let top = |t: usize, u: usize| {
        let (x, y) = (v.frame(t), v.frame(u));
        let p: f64 = band
            .iter()
            .map(|&(i, w)| w * (x[i].re * y[i].re + x[i].im * y[i].im))
            .sum();
        if wsum > 0.0 { p * unit / wsum } else { 0.0 }
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
    let in_sel = |t: usize| sel.binary_search(&t).is_ok();
    let rho = lags
        .par_iter()
        .map(|&lag| {
            let (mut cross, mut power) = (0.0, 0.0);
            for &t in &sel {
                if in_sel(t + lag) {
                    cross += top(t, t + lag);
                    power += 0.5 * (per_frame[t] + per_frame[t + lag]);
                }
            }
            if power > 0.0 { cross / power } else { 0.0 }
        })
        .collect();
    NoiseModel {
        var,
        lags: lags.to_vec(),
        rho,
    }
}
