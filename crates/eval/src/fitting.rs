//! The direct SAFE fit of one loaded video (physics core + data layer).

use crate::results::SimResult;
use safe_data::Video;
use safe_physics::SubSteps;
use safe_physics::fit::{FitOptions, NoiseMode, SafeLossCurve, VideoSpectra, fit_alpha};
use std::collections::BTreeMap;
use std::str::FromStr;

/// `--n-sub`: a fixed count, `inf`, or `auto` (the generator's own steps per frame interval
/// when `meta.json` records `save_interval`, otherwise the exact exponential).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubStepChoice {
    Fixed(SubSteps),
    Auto,
}

impl FromStr for SubStepChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            Ok(SubStepChoice::Auto)
        } else {
            SubSteps::from_str(s).map(SubStepChoice::Fixed)
        }
    }
}

impl std::fmt::Display for SubStepChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubStepChoice::Fixed(n) => write!(f, "{n}"),
            SubStepChoice::Auto => f.write_str("auto"),
        }
    }
}

impl SubStepChoice {
    pub fn resolve(self, video: &Video, frame_step: usize) -> SubSteps {
        match self {
            SubStepChoice::Fixed(n) => n,
            SubStepChoice::Auto => match video.meta.save_interval {
                Some(s) => {
                    SubSteps::Finite((s as usize * frame_step.max(1)).min(u32::MAX as usize) as u32)
                }
                None => SubSteps::Infinite,
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FitSettings {
    pub n_sub: SubStepChoice,
    pub frame_step: usize,
    pub alpha_range: Option<(f64, f64)>,
    pub noise: NoiseMode,
}

impl Default for FitSettings {
    fn default() -> Self {
        FitSettings {
            n_sub: SubStepChoice::Fixed(SubSteps::Finite(50)),
            frame_step: 1,
            alpha_range: None,
            noise: NoiseMode::Auto,
        }
    }
}

/// The SAFE loss curve of a video's raw frames (encoder = identity), in the stable direction.
pub fn loss_curve(video: &Video, frame_step: usize) -> (SafeLossCurve, usize) {
    let (c, _, n) = loss_curves(video, frame_step, NoiseMode::Off);
    (c, n)
}

/// The noise-corrected SAFE loss curve of a video's raw frames, in the stable direction.
pub fn noise_corrected_curve(video: &Video, frame_step: usize, noise: NoiseMode) -> SafeLossCurve {
    loss_curves(video, frame_step, noise).0
}

/// The curve, and when `dx != dy` also the curve with the spacings swapped (axis check).
fn loss_curves(
    video: &Video,
    frame_step: usize,
    noise: NoiseMode,
) -> (SafeLossCurve, Option<SafeLossCurve>, usize) {
    let frames = video.canonical_frames(frame_step);
    let spectra = VideoSpectra::compute(&frames, &video.grid);
    let dt = video.dt_between(frame_step);
    let g = video.grid;
    let nm = noise.model(&spectra, 1.0);
    let swapped = (g.dx != g.dy)
        .then(|| SafeLossCurve::with_spacing(&spectra, g.dy, g.dx, dt).with_noise_model(nm));
    (
        SafeLossCurve::new(&spectra, dt).with_noise_model(nm),
        swapped,
        frames.len(),
    )
}

/// How much better the swapped-spacing fit must be before we warn about the axis convention.
const AXIS_WARNING_RATIO: f64 = 100.0;

/// Fit one video; `Err` is a user-facing sentence (the caller adds the path).
pub fn fit_video(video: &Video, s: &FitSettings) -> Result<SimResult, String> {
    let t0 = std::time::Instant::now();
    let n_sub = s.n_sub.resolve(video, s.frame_step);
    let (curve, swapped, used) = loss_curves(video, s.frame_step, s.noise);
    if used < 2 {
        return Err(format!(
            "only {used} frame(s) remain with --frame-step {} ({} frames); the SAFE loss needs 2",
            s.frame_step, video.n_frames
        ));
    }
    let opts = FitOptions {
        n_sub,
        alpha_range: s.alpha_range,
        ..Default::default()
    };
    let r = fit_alpha(&curve, &opts).map_err(|e| e.to_string())?;
    let mut extra = BTreeMap::new();
    // dx belongs to axis 1 of [T, Nx, Ny]. If the data fit far better with the spacings
    // swapped, the file was probably written [T, Ny, Nx]: say so, do not guess.
    if let Some(sw) = swapped
        && let Ok(alt) = fit_alpha(&sw, &opts)
        && alt.safe_loss * AXIS_WARNING_RATIO < r.safe_loss
    {
        extra.insert(
            "axis_warning".into(),
            serde_json::json!(format!(
                "the SAFE loss is {:.0}x lower with dx and dy swapped (|alpha| would be {:.6}); field.npy must be [T, Nx, Ny] with dx along axis 1",
                r.safe_loss / alt.safe_loss.max(f64::MIN_POSITIVE),
                alt.alpha_abs
            )),
        );
    }
    extra.insert("n_sub".into(), serde_json::json!(n_sub.to_string()));
    if curve.noise_var > 0.0 {
        extra.insert(
            "noise_std".into(),
            serde_json::json!(curve.noise_var.sqrt()),
        );
        extra.insert("noise_rho".into(), serde_json::json!(curve.noise_rho));
    }
    extra.insert("frame_step".into(), serde_json::json!(s.frame_step));
    extra.insert("frames_used".into(), serde_json::json!(used));
    if r.at_bound {
        extra.insert("at_bound".into(), serde_json::json!(true));
    }
    Ok(SimResult {
        path: video.source.display().to_string(),
        process: video.process().to_string(),
        alpha_true: video.alpha_true(),
        alpha_hat: video.process().sign() * r.alpha_abs,
        stderr: r.stderr,
        safe_loss: r.safe_loss,
        seconds: t0.elapsed().as_secs_f64(),
        recon_error: None,
        extra,
    })
}
