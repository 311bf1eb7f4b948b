//! Zero-shot inference of one loaded video (model crate + data layer).

use crate::fitting::{EstimateSettings, prepare_video_and_weak_form, result_row};
use crate::results::SimResult;
use safe_data::Video;
use safe_model::zero_shot::{StepRecord, ZeroShotConfig, ZeroShotOutput, zero_shot};
use safe_physics::estimate::canonical;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZeroShotSettings {
    pub config: ZeroShotConfig,
    pub estimate: EstimateSettings,
}

pub fn zero_shot_video(
    video: &Video,
    s: &ZeroShotSettings,
    progress: &mut dyn FnMut(&StepRecord),
) -> Result<(SimResult, ZeroShotOutput), String> {
    let t0 = std::time::Instant::now();
    let (frames, mut prep, weak_form) = prepare_video_and_weak_form(video, &s.estimate)?;
    let canon = canonical(&frames, prep.process);
    let built = prep.take_loss();
    let out = zero_shot(
        &canon,
        &video.grid,
        video.dt_between(s.estimate.frame_step),
        &prep,
        built,
        &s.config,
        progress,
    );
    if !out.alpha_abs.is_finite() {
        return Err("the estimator diverged (non-finite |alpha|)".into());
    }
    // The error bar and the misfit judged as the direct fit judges them, at zero-shot's
    // estimate (the loss is the same function; the video's units).
    let std = out.norm.std;
    let a = out.alpha_abs;
    // On an open window the polish's last evaluation gives them all, as the fit's does
    // (an evaluation over every pair costs as much as a polish step).
    let (stderr, raw, corrected, change, curvature, n_eff) = match (&out.loss, &out.window_polish) {
        (safe_physics::estimate::SafeLoss::Window(_), Some(p)) => {
            let (raw, corrected) = p.eval.losses_at(p.da);
            (
                p.eval.sandwich_at(p.da),
                raw,
                corrected,
                p.change_energy,
                p.eval.point.d2,
                p.n_eff,
            )
        }
        (safe_physics::estimate::SafeLoss::Window(w), None) => {
            let (se, e) = w.stderr_at(a);
            (
                se,
                e.raw,
                e.point.loss,
                w.change_energy(),
                e.point.d2,
                w.n_eff(),
            )
        }
        (safe_physics::estimate::SafeLoss::Curve(c), _) => {
            let p = c.eval(a);
            (
                c.stderr(a),
                c.raw_loss(a),
                p.loss,
                c.eval(0.0).loss,
                p.d2,
                c.n_eff(),
            )
        }
    };
    let fit = safe_physics::loss::FitResult {
        alpha_abs: a,
        stderr,
        safe_loss: raw.max(0.0) * std * std,
        corrected_loss: corrected * std * std,
        change_energy: change * std * std,
        noise_floor: noise_floor(&out) * std * std,
        at_bound: false,
        range: (0.0, f64::INFINITY),
        evaluations: s.config.steps,
        curvature,
        n_eff,
    };
    let e = safe_physics::estimate::finish(
        &frames,
        &video.grid,
        video.dt_between(s.estimate.frame_step),
        &s.estimate.options(video),
        prep,
        &out.loss,
        fit,
        Some(weak_form),
    )?;
    let mut r = result_row(
        video,
        &e.prepared,
        out.alpha_abs,
        e.stderr,
        e.fit.safe_loss,
        t0.elapsed().as_secs_f64(),
    );
    r.misfit = e.misfit.is_finite().then_some(e.misfit);
    r.warnings = e.warnings.clone();
    r.add_extras(e.record());
    r.recon_error = Some(out.recon_error());
    r.extra.insert(
        "frame_step".into(),
        serde_json::json!(s.estimate.frame_step),
    );
    r.extra
        .insert("frames_used".into(), serde_json::json!(frames.len()));
    r.extra
        .insert("steps".into(), serde_json::json!(s.config.steps));
    r.extra
        .insert("polish".into(), serde_json::json!(s.config.polish));
    r.extra.insert(
        "alpha_adam".into(),
        serde_json::json!(e.prepared.process.sign() * out.adam_alpha),
    );
    r.extra.insert(
        "trainable_params".into(),
        serde_json::json!(out.trainable_params),
    );
    if let Some(last) = out.history.last() {
        r.extra
            .insert("final_loss".into(), serde_json::json!(last.loss));
    }
    Ok((r, out))
}

/// The noise's expected share of the raw loss at zero-shot's estimate (normalised units).
fn noise_floor(out: &ZeroShotOutput) -> f64 {
    match &out.loss {
        safe_physics::estimate::SafeLoss::Curve(c) => c.noise_floor(out.alpha_abs),
        safe_physics::estimate::SafeLoss::Window(w) => w.noise_floor(out.alpha_abs),
    }
}
