//! Zero-shot inference of one loaded video (model crate + data layer).

use crate::fitting::SubStepChoice;
use crate::results::SimResult;
use safe_data::Video;
use safe_model::zero_shot::{StepRecord, ZeroShotConfig, ZeroShotOutput, zero_shot};
use safe_physics::SubSteps;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct ZeroShotSettings {
    pub config: ZeroShotConfig,
    pub n_sub: SubStepChoice,
    pub frame_step: usize,
}

impl Default for ZeroShotSettings {
    fn default() -> Self {
        ZeroShotSettings {
            config: ZeroShotConfig::default(),
            n_sub: SubStepChoice::Fixed(SubSteps::Finite(50)),
            frame_step: 1,
        }
    }
}

/// Standard error of `|alpha|` from the SAFE loss curvature (as the direct fit reports it).
pub fn curvature_stderr(out: &ZeroShotOutput) -> f64 {
    out.curve.stderr(out.alpha_abs, out.n_sub)
}

pub fn zero_shot_video(
    video: &Video,
    s: &ZeroShotSettings,
    progress: &mut dyn FnMut(&StepRecord),
) -> Result<(SimResult, ZeroShotOutput), String> {
    let t0 = std::time::Instant::now();
    let frames = video.canonical_frames(s.frame_step);
    if frames.len() < 2 {
        return Err(format!(
            "only {} frame(s) remain with --frame-step {}; the SAFE loss needs 2",
            frames.len(),
            s.frame_step
        ));
    }
    let n_sub = s.n_sub.resolve(video, s.frame_step);
    let out = zero_shot(
        &frames,
        &video.grid,
        video.dt_between(s.frame_step),
        n_sub,
        &s.config,
        progress,
    );
    if !out.alpha_abs.is_finite() {
        return Err("the estimator diverged (non-finite |alpha|)".into());
    }
    let mut extra = BTreeMap::new();
    extra.insert("n_sub".into(), serde_json::json!(n_sub.to_string()));
    extra.insert("frame_step".into(), serde_json::json!(s.frame_step));
    extra.insert("frames_used".into(), serde_json::json!(frames.len()));
    extra.insert("steps".into(), serde_json::json!(s.config.steps));
    extra.insert(
        "trainable_params".into(),
        serde_json::json!(out.trainable_params),
    );
    if let Some(last) = out.history.last() {
        extra.insert("final_loss".into(), serde_json::json!(last.loss));
    }
    let r = SimResult {
        path: video.source.display().to_string(),
        process: video.process().to_string(),
        alpha_true: video.alpha_true(),
        alpha_hat: video.process().sign() * out.alpha_abs,
        stderr: curvature_stderr(&out),
        safe_loss: out.safe_loss(),
        seconds: t0.elapsed().as_secs_f64(),
        recon_error: Some(out.recon_error()),
        extra,
    };
    Ok((r, out))
}
