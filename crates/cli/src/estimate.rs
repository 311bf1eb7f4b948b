//! The estimation commands: `fit` (and, in later modules, `zero-shot` and `infer`).

use crate::common::{InputArgs, IntensityArgs, OperatorArgs, OutputArgs, finish, run_over_inputs};
use anyhow::Result;
use safe_eval::intensity::{GammaChoice, with_gamma_then};
use safe_eval::results::RunOutput;
use safe_eval::zeroshot::zero_shot_video;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    operator: OperatorArgs,
    #[command(flatten)]
    intensity: IntensityArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Options no single flag can get wrong, only a combination.
fn check_combination(s: &safe_eval::fitting::EstimateSettings, gamma: GammaChoice) -> Result<()> {
    safe_eval::api::check(s, gamma).map_err(|e| anyhow::anyhow!(e))
}

pub fn run_fit(a: FitArgs) -> Result<ExitCode> {
    a.output.check()?;
    let s = a.operator.settings()?;
    check_combination(&s, a.intensity.gamma)?;
    let g = a.intensity.gamma;
    let (sims, errors) =
        run_over_inputs(&a.input, "fit", true, &|v, _| safe_eval::api::fit(v, &s, g));
    let mut settings = s.record();
    settings["mode"] = serde_json::json!("fit");
    settings["gamma"] = serde_json::json!(g.to_string());
    finish(&RunOutput::new(sims, errors, settings), &a.output)
}

#[derive(clap::Args, Debug)]
pub struct ZeroShotArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    operator: OperatorArgs,
    /// Adam steps on the estimator.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Adam learning rate of the estimator.
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// Seed of the fresh model's initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Newton steps on the estimator's output bias after Adam (0 = the paper's Adam alone,
    /// which stops ~1e-6 from the SAFE loss's minimum).
    #[arg(long, default_value_t = 8)]
    polish: usize,
    /// Write explainability artefacts (per-frame errors, V/F/V_hat/|P-F| images) here;
    /// with several videos, one sub-folder per video.
    #[arg(long, value_name = "DIR")]
    explain: Option<std::path::PathBuf>,
    #[command(flatten)]
    intensity: IntensityArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run_zero_shot(a: ZeroShotArgs) -> Result<ExitCode> {
    a.output.check()?;
    let est = a.operator.settings()?;
    check_combination(&est, a.intensity.gamma)?;
    let s = safe_eval::api::zero_shot_settings(est, a.steps, a.lr, a.seed, a.polish);
    if let Some(d) = &a.explain
        && d.exists()
        && !a.output.overwrite
        && std::fs::read_dir(d)
            .map(|mut e| e.next().is_some())
            .unwrap_or(false)
    {
        anyhow::bail!(
            "{} exists and is not empty (pass --overwrite to replace its files)",
            d.display()
        );
    }
    let several = safe_data::discover(&a.input.data).len() > 1;
    let (sims, errors) = run_over_inputs(&a.input, "zero-shot", false, &|video, pb| {
        let channels = video.n_channels() > 1;
        // Every channel runs the paper's zero-shot on its own (paper 2.1, channel-wise).
        safe_eval::channels::channelwise(video, &|v| {
            let steps = s.config.steps as u64;
            pb.set_message(format!("{} (0/{steps})", v.source.display()));
            let mut cb = |r: &safe_model::zero_shot::StepRecord| {
                if r.step.is_multiple_of(20) {
                    pb.set_message(format!(
                        "{} ({}/{steps}, |alpha| {:.5})",
                        v.source.display(),
                        r.step,
                        r.alpha_abs
                    ));
                }
            };
            if a.intensity.gamma == GammaChoice::Auto {
                pb.set_message(format!("{} (fitting gamma)", v.source.display()));
            }
            // Explainability artefacts show the video the estimate saw (gamma undone).
            let run = |v: &safe_data::Video| {
                let (r, out) = zero_shot_video(v, &s, &mut cb)?;
                if let Some(d) = &a.explain {
                    let dir = if several || channels {
                        d.join(
                            v.source
                                .file_name()
                                .map(|n| n.to_os_string())
                                .unwrap_or_else(|| "video".into()),
                        )
                    } else {
                        d.clone()
                    };
                    let process = r.process.parse().map_err(|e: String| e)?;
                    safe_eval::explain::write_explain(
                        &dir,
                        v,
                        &out,
                        process,
                        s.estimate.frame_step,
                        true,
                    )
                    .map_err(|e| format!("explain: {e:#}"))?;
                }
                Ok((r, ()))
            };
            with_gamma_then(v, a.intensity.gamma, &s.estimate, run).map(|(r, ())| r)
        })
    });
    let mut settings = s.estimate.record();
    settings["mode"] = serde_json::json!("zero-shot");
    settings["steps"] = serde_json::json!(a.steps);
    settings["lr"] = serde_json::json!(a.lr);
    settings["seed"] = serde_json::json!(a.seed);
    settings["polish"] = serde_json::json!(a.polish);
    settings["gamma"] = serde_json::json!(a.intensity.gamma.to_string());
    finish(&RunOutput::new(sims, errors, settings), &a.output)
}

#[derive(clap::Args, Debug)]
pub struct WeakFormArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Spatial half-width of the test functions, pixels.
    #[arg(long, default_value_t = 12)]
    mx: usize,
    /// Temporal half-width of the test functions, frames.
    #[arg(long, default_value_t = 20)]
    mt: usize,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run_weak_form(a: WeakFormArgs) -> Result<ExitCode> {
    a.output.check()?;
    let w = safe_eval::weak_form::WeakForm {
        mx: a.mx,
        mt: a.mt,
        ..Default::default()
    };
    let (sims, errors) = run_over_inputs(&a.input, "weak form", true, &|v, _| {
        safe_eval::weak_form::weak_form_video(v, &w)
    });
    let settings = serde_json::json!({"mode": "weak form", "mx": a.mx, "mt": a.mt, "p": w.p});
    finish(&RunOutput::new(sims, errors, settings), &a.output)
}
