//! `safe-pit-cm train` and `safe-pit-cm infer`.

use crate::common::{InputArgs, OutputArgs, finish, progress_bar, run_over_inputs};
use anyhow::{Context, Result, anyhow};
use safe_eval::results::RunOutput;
use safe_eval::training::{RunStart, TrainedModel, train_on};
use safe_model::config::{Config, Profile};
use safe_model::train::Progress;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Dataset folder made by `generate` (with manifest.json). Not used by the universal
    /// profile, which draws its own videos.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Model folder (created): model.bpk, config.toml, history.csv, checkpoints.
    #[arg(long, required_unless_present = "print_config")]
    out: Option<PathBuf>,
    /// TOML configuration (defaults: the profile's; see `--print-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Default configuration to start from when no --config is given: cpu (our model: band
    /// features, augmentation, 6-frame phase-2 windows; minutes) or paper (the paper's
    /// estimator and training exactly: no band features, no augmentation, whole videos;
    /// hours on a CPU) or universal (the shipped pretrained model: a unit-free estimator
    /// trained on --videos videos drawn from a broad synthetic distribution; no --data).
    #[arg(long, value_parser = ["cpu", "paper", "universal"], default_value = "cpu")]
    profile: String,
    /// Universal profile: training videos to draw (validation: a tenth as many more).
    #[arg(long, default_value_t = 2000)]
    videos: usize,
    /// paper: the paper's Fig. 3 split (train sims 0-35, validate 36-39); balanced: both signs.
    #[arg(long, value_parser = ["paper", "balanced"], default_value = "paper")]
    split: String,
    /// Total epochs over both phases. Phase 1 (estimator only, encoder and decoder frozen)
    /// takes round(epochs x train.phase1_fraction): 0.5 in the cpu profile, 0.3 in the
    /// paper's; phase 2 (everything) takes the rest and stops early when validation stops
    /// improving.
    #[arg(long)]
    epochs: Option<usize>,
    /// Continue the run in --out from its last checkpoint, with that run's configuration.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Replace a run already in --out (only its own files are removed).
    #[arg(long)]
    overwrite: bool,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn resolve_config(a: &TrainArgs) -> Result<Config> {
    let saved = a
        .out
        .as_ref()
        .map(|o| o.join("config.toml"))
        .filter(|p| a.resume && p.is_file());
    let mut cfg = match (&a.config, saved) {
        (Some(p), _) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            Config::from_toml(&t).map_err(|e| anyhow!("{}: {e}", p.display()))?
        }
        // Resuming: the run's own configuration, whatever the profile default is.
        (None, Some(p)) => {
            let t = std::fs::read_to_string(&p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            Config::from_toml(&t).map_err(|e| anyhow!("{}: {e}", p.display()))?
        }
        (None, None) => Config::for_profile(match a.profile.as_str() {
            "paper" => Profile::Paper,
            "universal" => Profile::Universal,
            _ => Profile::Cpu,
        }),
    };
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    cfg.validate().map_err(|e| anyhow!(e))?;
    Ok(cfg)
}

/// Time left in a run: the mean epoch time of each phase so far times the epochs it has
/// left (phase 2 may stop early, so this is an upper estimate).
struct Eta {
    secs: [Vec<f64>; 2],
    p1: usize,
    total: usize,
}

impl Eta {
    fn left(&self, done: usize) -> String {
        let mean = |v: &Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let left1 = self.p1.saturating_sub(done);
        let left2 = self.total.saturating_sub(done.max(self.p1));
        let t1 = left1 as f64 * mean(&self.secs[0]).unwrap_or(0.0);
        match (left2, mean(&self.secs[1])) {
            (0, _) => format!("~{} left", fmt_secs(t1)),
            (n, Some(m)) => format!("~{} left at most", fmt_secs(t1 + n as f64 * m)),
            (n, None) => format!(
                "~{} left in phase 1, then {n} phase-2 epochs (timed after the first)",
                fmt_secs(t1)
            ),
        }
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

pub fn run_train(a: TrainArgs) -> Result<ExitCode> {
    let cfg = resolve_config(&a)?;
    if a.print_config {
        print!("{}", cfg.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let universal = cfg.profile == Profile::Universal;
    let Some(out) = &a.out else {
        anyhow::bail!("--out is required");
    };
    match (&a.data, universal) {
        (None, false) => anyhow::bail!("--data is required (a dataset made by `generate`)"),
        (Some(d), true) => anyhow::bail!(
            "the universal profile draws its own training videos; drop --data {}",
            d.display()
        ),
        _ => {}
    }
    let start = match (a.resume, a.overwrite) {
        (true, _) => RunStart::Resume,
        (_, true) => RunStart::Overwrite,
        _ => RunStart::Fresh,
    };
    let t0 = std::time::Instant::now();
    // One bar per epoch over its optimisation steps; the epoch lines carry the run's ETA.
    let bar = progress_bar(0, "train");
    let mut eta = Eta {
        secs: [Vec::new(), Vec::new()],
        p1: cfg.phase1_epochs(),
        total: cfg.train.epochs,
    };
    let mut on_progress = |p: Progress| match p {
        Progress::Epoch {
            epoch: e,
            phase: ph,
            of,
        } => {
            bar.reset();
            bar.set_prefix(format!("epoch {}/{of} (phase {ph})", e + 1));
        }
        Progress::Step { done, of, loss } => {
            bar.set_length(of as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("loss {loss:.3e}"));
        }
        Progress::EpochDone(r) => {
            eta.secs[(r.phase as usize).clamp(1, 2) - 1].push(r.seconds);
            let left = eta.left(r.epoch + 1);
            bar.suspend(|| {
                eprintln!(
                    "epoch {:>3}/{} phase {} train {:.3e} val {:.3e}{} ({:.1} s; {left})",
                    r.epoch + 1,
                    eta.total,
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
    };
    let outcome = match &a.data {
        Some(data) => train_on(data, &a.split, out, &cfg, start, &mut on_progress)?,
        None => {
            if start == RunStart::Overwrite {
                safe_model::train::clear_run(out).map_err(|e| anyhow!("{e}"))?;
            }
            let n_val = a.videos.div_ceil(10);
            let draws = progress_bar((a.videos + n_val) as u64 as usize, "draw videos");
            let tick = || draws.inc(1);
            let t = std::time::Instant::now();
            let o = safe_eval::universal::train_universal(
                &cfg,
                a.videos,
                n_val,
                out,
                start == RunStart::Resume,
                &tick,
                &mut on_progress,
            );
            draws.finish_and_clear();
            eprintln!(
                "(drawing and preparing {} videos took part of {:.0} s)",
                a.videos + n_val,
                t.elapsed().as_secs_f64()
            );
            o?
        }
    };
    bar.finish_and_clear();
    let st = &outcome.state;
    let model = out.join("model.bpk");
    if outcome.resumed_at == st.epochs_done {
        println!(
            "the run in {} had already finished ({} epochs{}; best epoch {}, validation loss {:.3e}); nothing to train. Model: {}",
            out.display(),
            st.epochs_done,
            if st.stopped_early { ", early stop" } else { "" },
            st.best_epoch
                .map(|e| (e + 1).to_string())
                .unwrap_or_else(|| "-".into()),
            st.best_val,
            model.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "trained {} epochs{} in {:.1} s{}; best epoch {} (validation loss {:.3e}); model in {}",
        st.epochs_done - outcome.resumed_at,
        if outcome.resumed_at > 0 {
            format!(" (resumed after {})", outcome.resumed_at)
        } else {
            String::new()
        },
        t0.elapsed().as_secs_f64(),
        if st.stopped_early {
            " (early stop)"
        } else {
            ""
        },
        st.best_epoch
            .map(|e| (e + 1).to_string())
            .unwrap_or_else(|| "-".into()),
        st.best_val,
        model.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct InferArgs {
    /// Model folder written by `train`, or its model.bpk (default: the shipped pretrained
    /// model, which serves any grid, frame interval and intensity scale).
    #[arg(long)]
    model: Option<PathBuf>,
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
    let m = match &a.model {
        Some(p) => TrainedModel::load(p)?,
        None => TrainedModel::builtin()?,
    };
    let s = a.operator.settings()?;
    let g = a.intensity.gamma;
    safe_eval::api::check(&s, g).map_err(|e| anyhow!(e))?;
    let (sims, errors) = run_over_inputs(&a.input, "infer", false, &|v, _| {
        safe_eval::api::infer(&m, v, a.ttt_steps, &s, g)
    });
    let mut settings = s.record();
    settings["mode"] = serde_json::json!(if a.ttt_steps == 0 {
        "amortised"
    } else {
        "test-time training"
    });
    settings["model"] = serde_json::json!(
        a.model
            .as_ref()
            .map_or("builtin (universal)".to_string(), |p| p
                .display()
                .to_string())
    );
    settings["ttt_steps"] = serde_json::json!(a.ttt_steps);
    settings["profile"] = serde_json::json!(format!("{:?}", m.config.profile).to_lowercase());
    settings["gamma"] = serde_json::json!(g.to_string());
    finish(&RunOutput::new(sims, errors, settings), &a.output)
}
