//! Beyond the paper: what real videos do to the estimate. Additive Gaussian noise, 8-bit
//! quantisation, and a non-linear (gamma) intensity map, applied to generated videos with
//! known `alpha`.

use rand::{Rng, SeedableRng};
use safe_data::Video;

/// Range (max - min) of a video's intensities.
pub fn range(v: &Video) -> f64 {
    let (lo, hi) = v
        .frames
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    (hi - lo) as f64
}

/// The video plus white Gaussian noise of standard deviation `level * range`.
pub fn with_noise(v: &Video, level: f64, seed: u64) -> Video {
    let sigma = level * range(v);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = v.clone();
    for x in out.frames.iter_mut() {
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        *x += (sigma * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32;
    }
    out
}

/// Map to [0, 1] by the video's range, apply `x^gamma`, and quantise to `bits` (0 = keep
/// floats): what an 8-bit camera with a gamma curve records.
pub fn as_camera(v: &Video, gamma: f64, bits: u32) -> Video {
    let (lo, hi) = v
        .frames
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let span = (hi - lo).max(f32::MIN_POSITIVE) as f64;
    let levels = if bits > 0 {
        ((1u64 << bits) - 1) as f64
    } else {
        0.0
    };
    let mut out = v.clone();
    for x in out.frames.iter_mut() {
        let mut y = ((*x - lo) as f64 / span).clamp(0.0, 1.0).powf(gamma);
        if levels > 0.0 {
            y = (y * levels).round() / levels;
        }
        *x = y as f32;
    }
    out
}
