//! The estimation commands: `fit` (and, in later modules, `zero-shot` and `infer`).

use crate::common::{InputArgs, IntensityArgs, OutputArgs, finish, run_over_inputs};
use anyhow::Result;
use safe_eval::fitting::{FitSettings, SubStepChoice, fit_video};
use safe_eval::intensity::{GammaChoice, with_gamma, with_gamma_then};
use safe_eval::results::RunOutput;
use safe_eval::zeroshot::{ZeroShotSettings, zero_shot_video};
use safe_model::zero_shot::ZeroShotConfig;
use safe_physics::fit::NoiseMode;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Sub-steps per frame interval: a count, 'inf' (exact exponential, for data from a
    /// continuous-time integrator) or 'auto' (the data's save_interval, else inf).
    #[arg(long, default_value = "50")]
    n_sub: SubStepChoice,
    /// Use every K-th frame.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    frame_step: u64,
    /// Restrict the search for |alpha| to LO,HI (default: von Neumann numbers 1e-5..1e4).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    alpha_range: Option<Vec<f64>>,
    /// Measurement-noise correction of the SAFE loss: auto (estimate the noise's variance
    /// and frame-to-frame correlation from the data; no effect on clean data), off (the paper's raw loss), or a standard deviation.
    #[arg(long, default_value = "auto")]
    noise: NoiseMode,
    #[command(flatten)]
    intensity: IntensityArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// A noise level is in the video's units, which undoing a gamma curve changes.
fn check_noise_with_gamma(noise: NoiseMode, gamma: GammaChoice) -> Result<()> {
    if matches!(noise, NoiseMode::Std(_)) && gamma != GammaChoice::Fixed(1.0) {
        anyhow::bail!(
            "--noise with a standard deviation cannot be combined with --gamma (the map changes the video's units): use --noise auto"
        );
    }
    Ok(())
}

pub fn run_fit(a: FitArgs) -> Result<ExitCode> {
    a.output.check()?;
    check_noise_with_gamma(a.noise, a.intensity.gamma)?;
    let s = FitSettings {
        n_sub: a.n_sub,
        frame_step: a.frame_step as usize,
        alpha_range: a.alpha_range.as_ref().map(|v| (v[0], v[1])),
        noise: a.noise,
    };
    let g = a.intensity.gamma;
    let (sims, errors) = run_over_inputs(&a.input, "fit", true, &|v, _| {
        with_gamma(v, g, s.n_sub, s.frame_step, &|v| fit_video(v, &s))
    });
    let settings = serde_json::json!({
        "mode": "fit", "n_sub": s.n_sub.to_string(), "frame_step": s.frame_step,
        "alpha_range": a.alpha_range, "noise": s.noise.to_string(), "gamma": g.to_string(),
    });
    finish(&RunOutput::new(sims, errors, settings), &a.output)
}

#[derive(clap::Args, Debug)]
pub struct ZeroShotArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Adam steps on the estimator.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Sub-steps per frame interval: a count, 'inf' or 'auto' (see `fit --help`).
    #[arg(long, default_value = "50")]
    n_sub: SubStepChoice,
    /// Adam learning rate of the estimator.
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// Seed of the fresh model's initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Measurement-noise correction of the SAFE loss (see `fit --help`).
    #[arg(long, default_value = "auto")]
    noise: NoiseMode,
    /// Use every K-th frame.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    frame_step: u64,
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
    check_noise_with_gamma(a.noise, a.intensity.gamma)?;
    let s = ZeroShotSettings {
        config: ZeroShotConfig {
            steps: a.steps,
            lr: a.lr,
            seed: a.seed,
            noise: a.noise.to_string(),
            ..Default::default()
        },
        n_sub: a.n_sub,
        frame_step: a.frame_step as usize,
    };
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
    let (sims, errors) = run_over_inputs(&a.input, "zero-shot", false, &|v, pb| {
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
                let dir = if several {
                    d.join(
                        v.source
                            .file_name()
                            .map(|n| n.to_os_string())
                            .unwrap_or_else(|| "video".into()),
                    )
                } else {
                    d.clone()
                };
                safe_eval::explain::write_explain(&dir, v, &out, s.frame_step, true)
                    .map_err(|e| format!("explain: {e:#}"))?;
            }
            Ok((r, ()))
        };
        with_gamma_then(v, a.intensity.gamma, s.n_sub, s.frame_step, run).map(|(r, ())| r)
    });
    let settings = serde_json::json!({
        "mode": "zero-shot", "n_sub": s.n_sub.to_string(), "frame_step": s.frame_step,
        "steps": a.steps, "lr": a.lr, "seed": a.seed, "noise": a.noise.to_string(),
        "gamma": a.intensity.gamma.to_string(),
    });
    finish(&RunOutput::new(sims, errors, settings), &a.output)
}
