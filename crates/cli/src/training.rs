//! `safe-pit-cm train` and `safe-pit-cm infer`.

use crate::common::{InputArgs, OutputArgs, finish, progress_bar, run_over_inputs};
use anyhow::{Context, Result, anyhow};
use safe_eval::results::RunOutput;
use safe_eval::training::{TrainedModel, infer_video, train_on};
use safe_model::config::{Config, Profile};
use safe_model::train::Progress;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Dataset folder made by `generate` (with manifest.json).
    #[arg(long)]
    data: PathBuf,
    /// Model folder (created): model.bpk, config.toml, history.csv, checkpoints.
    #[arg(long)]
    out: PathBuf,
    /// TOML configuration (defaults: the paper's; see `--print-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Default configuration to start from when no --config is given.
    #[arg(long, value_parser = ["cpu", "paper"], default_value = "cpu")]
    profile: String,
    /// paper: train on sims 0-39 (diffusion); balanced: both signs.
    #[arg(long, value_parser = ["paper", "balanced"], default_value = "paper")]
    split: String,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Continue an interrupted run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn resolve_config(a: &TrainArgs) -> Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            Config::from_toml(&t).map_err(|e| anyhow!("{}: {e}", p.display()))?
        }
        None => Config::for_profile(if a.profile == "paper" {
            Profile::Paper
        } else {
            Profile::Cpu
        }),
    };
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    cfg.validate().map_err(|e| anyhow!(e))?;
    Ok(cfg)
}

pub fn run_train(a: TrainArgs) -> Result<ExitCode> {
    let cfg = resolve_config(&a)?;
    if a.print_config {
        print!("{}", cfg.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let t0 = std::time::Instant::now();
    let epochs = progress_bar(cfg.train.epochs, "train");
    let mut phase = 1u8;
    let mut last = String::new();
    let outcome = train_on(
        &a.data,
        &a.split,
        &a.out,
        &cfg,
        a.resume,
        &mut |p| match p {
            Progress::Epoch {
                epoch, phase: ph, ..
            } => {
                phase = ph;
                epochs.set_position(epoch as u64);
            }
            Progress::Step { done, of, loss } => {
                epochs.set_message(format!(
                    "phase {phase} step {done}/{of} loss {loss:.3e} {last}"
                ));
            }
            Progress::EpochDone(r) => {
                last = match r.val_mae {
                    Some(m) => format!("| val loss {:.3e}, val |alpha| MAE {m:.2e}", r.val_loss),
                    None => format!("| val loss {:.3e}", r.val_loss),
                };
                epochs.set_position(r.epoch as u64 + 1);
                epochs.suspend(|| {
                    eprintln!(
                        "epoch {:>3} phase {} train {:.3e} val {:.3e}{} ({:.1} s)",
                        r.epoch,
                        r.phase,
                        r.train_loss,
                        r.val_loss,
                        r.val_mae
                            .map(|m| format!(" |alpha| MAE {m:.2e}"))
                            .unwrap_or_default(),
                        r.seconds
                    )
                });
            }
        },
    )?;
    epochs.finish_and_clear();
    let st = &outcome.state;
    println!(
        "trained {} epochs in {:.1} s{}; best epoch {} (validation loss {:.3e}); model in {}",
        st.epochs_done,
        t0.elapsed().as_secs_f64(),
        if st.stopped_early {
            " (early stop)"
        } else {
            ""
        },
        st.best_epoch
            .map(|e| e.to_string())
            .unwrap_or_else(|| "-".into()),
        st.best_val,
        a.out.join("model.bpk").display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct InferArgs {
    /// Model folder written by `train`.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    input: InputArgs,
    /// Test-time training steps (0 = one forward pass; the paper uses 50).
    #[arg(long, default_value_t = 0)]
    ttt_steps: usize,
    #[command(flatten)]
    operator: crate::common::OperatorArgs,
    #[command(flatten)]
    intensity: crate::common::IntensityArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run_infer(a: InferArgs) -> Result<ExitCode> {
    a.output.check()?;
    let m = TrainedModel::load(&a.model)?;
    let s = a.operator.settings()?;
    let g = a.intensity.gamma;
    let (sims, errors) = run_over_inputs(&a.input, "infer", false, &|v, _| {
        safe_eval::intensity::with_gamma(v, g, &s, &|v| {
            infer_video(&m, v, a.ttt_steps, &s).map(|(r, _)| r)
        })
    });
    let mut settings = s.record();
    settings["mode"] = serde_json::json!(if a.ttt_steps == 0 {
        "amortised"
    } else {
        "test-time training"
    });
    settings["model"] = serde_json::json!(a.model.display().to_string());
    settings["ttt_steps"] = serde_json::json!(a.ttt_steps);
    settings["profile"] = serde_json::json!(format!("{:?}", m.config.profile).to_lowercase());
    settings["gamma"] = serde_json::json!(g.to_string());
    finish(&RunOutput::new(sims, errors, settings), &a.output)
}
