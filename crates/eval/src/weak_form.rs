//! The classical baseline as a result row; the estimator itself is
//! [`safe_physics::weak_form`] (the pretrained model also takes it as its prior).

use crate::results::SimResult;
use safe_data::Video;
pub use safe_physics::weak_form::{WeakForm, weak_form_alpha};
use std::collections::BTreeMap;

/// The weak-form estimate of a loaded video as a result row (no error bar).
pub fn weak_form_video(video: &Video, w: &WeakForm) -> Result<SimResult, String> {
    let t0 = std::time::Instant::now();
    let frames = video.frames_stepped(1);
    let g = video.grid;
    let alpha = weak_form_alpha(&frames, g.nx, g.ny, g.dx, g.dy, video.dt_between(1), w)?;
    let mut extra = BTreeMap::new();
    extra.insert("method".into(), serde_json::json!("weak form"));
    Ok(SimResult {
        path: video.source.display().to_string(),
        process: if alpha < 0.0 { "diffusion" } else { "mobility" }.into(),
        alpha_true: video.alpha_true(),
        alpha_hat: alpha,
        stderr: f64::NAN,
        safe_loss: f64::NAN,
        seconds: t0.elapsed().as_secs_f64(),
        recon_error: None,
        misfit: None,
        warnings: Vec::new(),
        extra,
    })
}
