//! Spectral band features: our addition to the estimator's input (off in the paper's
//! configuration, `model.bands = 0`).
//!
//! The paper's estimator sees each frame pooled to 4x4, i.e. only the lowest three Fourier
//! modes per axis, which change by a few percent over a whole video; on 36 training videos
//! it does not learn `alpha` to better than ~0.1 (measured). Diffusion makes the energy in
//! a band of eigenvalue `mu` decay as `exp(-2 |alpha| mu t)`, so the log energies of a few
//! bands per frame carry the rate directly. Each frame gets, for `K` log-spaced bands of
//! `mu`, its log band energy centred over the video and its change to the next frame.
//! They are spatial summaries of the frame like the pooling itself (and invariant under the
//! grid symmetries used for augmentation).

use safe_physics::SafeOperator;
use safe_physics::loss::VideoSpectra;

/// Log band energies of every frame, `[t][k]`, and the floor they were computed with. `op`
/// gives each coefficient's eigenvalue (same basis as the spectra).
pub fn band_log_energies(
    spectra: &VideoSpectra,
    op: &SafeOperator,
    k: usize,
    floor: Option<f64>,
) -> (Vec<f32>, f64) {
    let e = log_energies_in(spectra, &op.mu, &band_edges(op, k), floor);
    (e.log_e, e.floor)
}

/// Per-mode log energies of every frame in the bands `edges` of eigenvalue `mu`.
pub struct BandEnergies {
    /// `[t][k]`, `ln(mean energy per mode + floor)`.
    pub log_e: Vec<f32>,
    /// Modes in each band (with their multiplicities).
    pub count: Vec<f64>,
    /// Mode-weighted mean eigenvalue of each band (0 when empty).
    pub mean_mu: Vec<f64>,
    /// Energy-weighted mean eigenvalue of each band in each frame, `[t][k]`: the band's
    /// instantaneous decay rate over `2 |alpha|` (the band mean when a band is dark).
    pub energy_mu: Vec<f64>,
    pub floor: f64,
}

pub fn log_energies_in(
    spectra: &VideoSpectra,
    mu: &[f64],
    edges: &[f64],
    floor: Option<f64>,
) -> BandEnergies {
    let k = edges.len() - 1;
    let grid = &spectra.grid;
    let b = &spectra.basis;
    let nx = grid.nx;
    let sl = b.n_coeffs();
    let norm = b.norm() / grid.len() as f64;
    let band_of: Vec<Option<usize>> = mu
        .iter()
        .map(|&m| edges.windows(2).position(|e| m >= e[0] && m < e[1]))
        .collect();
    let mut power = vec![0f64; spectra.n_frames * k];
    let mut count = vec![0f64; k];
    let mut mean_mu = vec![0f64; k];
    let mut energy_mu = vec![0f64; spectra.n_frames * k];
    let mut total = 0.0;
    for t in 0..spectra.n_frames {
        let s = &spectra.coeffs[t * sl..(t + 1) * sl];
        for (i, v) in s.iter().enumerate() {
            let w = b.multiplicity(i / nx);
            let p = w * v.norm_sqr() * norm;
            if mu[i] > 0.0 {
                total += p;
            }
            if let Some(b) = band_of[i] {
                power[t * k + b] += p;
                energy_mu[t * k + b] += p * mu[i];
                if t == 0 {
                    count[b] += w;
                    mean_mu[b] += w * mu[i];
                }
            }
        }
    }
    for (m, c) in mean_mu.iter_mut().zip(&count) {
        *m = if *c > 0.0 { *m / c } else { 0.0 };
    }
    for (i, m) in energy_mu.iter_mut().enumerate() {
        *m = if power[i] > 0.0 {
            *m / power[i]
        } else {
            mean_mu[i % k]
        };
    }
    let floor = floor.unwrap_or(1e-12 * total / (spectra.n_frames as f64 * grid.len() as f64));
    let log_e = power
        .iter()
        .enumerate()
        .map(|(i, &p)| ((p / count[i % k].max(1.0)) + floor).ln() as f32)
        .collect();
    BandEnergies {
        log_e,
        count,
        mean_mu,
        energy_mu,
        floor,
    }
}

/// `k + 1` log-spaced edges from the smallest non-zero eigenvalue to just above the largest.
pub fn band_edges(op: &SafeOperator, k: usize) -> Vec<f64> {
    let lo = op
        .mu
        .iter()
        .cloned()
        .filter(|&m| m > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = op.lambda_max() * (1.0 + 1e-9);
    (0..=k)
        .map(|i| lo * (hi / lo).powf(i as f64 / k as f64))
        .collect()
}

/// Estimator inputs from log energies `[t][k]`: centred log energy and change to the next
/// frame (the last frame repeats the previous change), `[t][2k]`.
pub fn band_features(log_e: &[f32], t: usize, k: usize) -> Vec<f32> {
    let mut mean = vec![0f32; k];
    for r in log_e.chunks_exact(k) {
        for (m, &x) in mean.iter_mut().zip(r) {
            *m += x / t as f32;
        }
    }
    let mut out = vec![0f32; t * 2 * k];
    for i in 0..t {
        let j = if i + 1 < t { i } else { i.saturating_sub(1) };
        for b in 0..k {
            out[i * 2 * k + b] = log_e[i * k + b] - mean[b];
            out[i * 2 * k + k + b] = if t > 1 {
                log_e[(j + 1) * k + b] - log_e[j * k + b]
            } else {
                0.0
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use safe_physics::{Grid, OperatorSpec, SubSteps};

    #[test]
    fn band_energy_of_a_diffusing_field_decays_at_its_eigenvalue() {
        // A single Fourier mode diffusing: its band's log energy drops by 2 a mu dt per frame.
        let g = Grid::new(32, 32, 0.5, 0.5).unwrap();
        let (kx, ky) = (3, 1);
        let u0: Vec<f64> = (0..g.len())
            .map(|s| {
                let (i, j) = ((s / 32) as f64, (s % 32) as f64);
                (2.0 * std::f64::consts::PI * (kx as f64 * i + ky as f64 * j) / 32.0).cos()
            })
            .collect();
        let op = SafeOperator::new(
            g,
            OperatorSpec::periodic_five_point(SubSteps::Infinite),
            0.25,
        );
        let mut frames = vec![u0];
        for _ in 0..4 {
            frames.push(op.apply(frames.last().unwrap(), 0.3, 1));
        }
        let f32s: Vec<Vec<f32>> = frames
            .iter()
            .map(|f| f.iter().map(|&x| x as f32).collect())
            .collect();
        let refs: Vec<&[f32]> = f32s.iter().map(|f| f.as_slice()).collect();
        let sp = VideoSpectra::compute(&refs, &g, op.spec.boundary);
        let (le, _) = band_log_energies(&sp, &op, 8, Some(0.0));
        let mu = op.mu[ky * 32 + kx];
        let b = band_edges(&op, 8)
            .windows(2)
            .position(|e| mu >= e[0] && mu < e[1])
            .unwrap();
        let feats = band_features(&le, 5, 8);
        let want = -2.0 * 0.3 * mu * 0.25;
        for t in 0..4 {
            assert!(
                (feats[t * 16 + 8 + b] as f64 - want).abs() < 1e-3,
                "{} vs {want}",
                feats[t * 16 + 8 + b]
            );
        }
    }
}
