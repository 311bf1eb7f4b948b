//! Training and trained-model inference on datasets and videos (model crate + data layer).

use crate::fitting::{EstimateSettings, prepare_video, result_row};
use crate::plots::{BLUE_DIFFUSION, GREY, Plot, RED_MOBILITY, Series, save_plot};
use crate::results::SimResult;
use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use safe_data::dataset::Manifest;
use safe_data::{MetaOverrides, Video};
use safe_model::config::Config;
use safe_model::infer::{InferOutput, infer};
use safe_model::model::SafePitCm;
use safe_model::train::{EpochRecord, Progress, TrainOutcome, TrainVideo, load_model, train};
use safe_physics::SubSteps;
use std::fmt::Write;
use std::path::Path;

/// The SAFE operator's sub-steps for a video under `cfg` (`auto` = its save_interval).
pub fn n_sub_for(cfg: &Config, v: &Video) -> Result<SubSteps> {
    Ok(match cfg.n_sub().map_err(|e| anyhow!(e))? {
        Some(n) => n,
        None => match v.meta.save_interval {
            Some(s) => SubSteps::Finite(s as u32),
            None => SubSteps::Infinite,
        },
    })
}

/// A loaded training video in the form training uses: the configuration's operator, the
/// process its metadata states.
pub fn prepare(cfg: &Config, v: &Video) -> Result<TrainVideo> {
    let process = v.stated_process().ok_or_else(|| {
        anyhow!(
            "{}: a training video needs its process (diffusion or mobility) in meta.json",
            v.source.display()
        )
    })?;
    let frames = v.canonical_frames(1, process);
    let spec = cfg.operator(n_sub_for(cfg, v)?).map_err(|e| anyhow!(e))?;
    Ok(TrainVideo::new(
        &v.source.display().to_string(),
        &frames,
        v.grid,
        v.dt_between(1),
        spec,
        v.alpha_true().map(f64::abs),
        &cfg.model,
    ))
}

/// Load the videos of a split of a generated dataset, in parallel. Each channel of a vector
/// field is a training video of its own (same alpha, same operator: paper 2.1).
pub fn load_split(data: &Path, split: &str, part: &str) -> Result<Vec<Video>> {
    let m = Manifest::load(data).map_err(|e| anyhow!(e))?;
    let sp = m.splits.get(split).ok_or_else(|| {
        anyhow!(
            "{}: no split '{split}' (have: {})",
            data.display(),
            m.splits.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let ids = match part {
        "train" => &sp.train,
        "val" => &sp.val,
        _ => &sp.test,
    };
    ids.par_iter()
        .map(|&i| {
            let dir = m.sim_dir(data, i);
            Video::load_sim_dir(&dir, &MetaOverrides::default()).map_err(|e| anyhow!("{e}"))
        })
        .collect::<Result<Vec<Video>>>()
        .map(|vs| vs.iter().flat_map(Video::split_channels).collect())
}

/// How a training run treats a model folder that already holds a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStart {
    /// Refuse if the folder holds a run.
    Fresh,
    /// Continue the folder's run from its last checkpoint (a fresh run if none).
    Resume,
    /// Replace the folder's run, once the data have loaded.
    Overwrite,
}

/// Train on a dataset folder; writes the model, its config, curves and checkpoints to `out`.
pub fn train_on(
    data: &Path,
    split: &str,
    out: &Path,
    cfg: &Config,
    start: RunStart,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainOutcome> {
    let prep = |vs: Vec<Video>| -> Result<Vec<TrainVideo>> {
        vs.par_iter().map(|v| prepare(cfg, v)).collect()
    };
    let train_v = prep(load_split(data, split, "train")?)?;
    let val_v = prep(load_split(data, split, "val")?)?;
    if train_v.is_empty() {
        bail!(
            "split '{split}' of {} has no training videos",
            data.display()
        );
    }
    if start == RunStart::Overwrite {
        safe_model::train::clear_run(out).map_err(|e| anyhow!("{e}"))?;
    }
    let resume = start == RunStart::Resume;
    let outcome =
        train(cfg, &train_v, &val_v, out, resume, progress).map_err(|e| anyhow!("{e}"))?;
    write_curves(out, &outcome.state.history)?;
    Ok(outcome)
}

/// `history.csv` and `training_curves.png/svg`.
pub fn write_curves(out: &Path, h: &[EpochRecord]) -> Result<()> {
    let mut csv = String::from(
        "epoch,phase,train_loss,val_loss,val_safe_loss,val_mae,lr_estimator,lr_codec,seconds\n",
    );
    for r in h {
        let mae = r.val_mae.map(|m| format!("{m:.6e}")).unwrap_or_default();
        writeln!(
            csv,
            "{},{},{:.6e},{:.6e},{:.6e},{mae},{:.3e},{:.3e},{:.2}",
            r.epoch,
            r.phase,
            r.train_loss,
            r.val_loss,
            r.val_safe,
            r.lr_estimator,
            r.lr_codec,
            r.seconds
        )?;
    }
    safe_data::atomic::write_atomic(&out.join("history.csv"), csv.as_bytes(), true)?;
    let pts = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        h.iter()
            .filter_map(|r| f(r).map(|y| (r.epoch as f64, y)))
            .collect()
    };
    save_plot(
        &out.join("training_curves"),
        &Plot {
            title: "Training curves (phase 1: estimator only; phase 2: all)".into(),
            x_label: "epoch".into(),
            y_label: "loss / |alpha| error (normalised units)".into(),
            log_x: false,
            log_y: true,
            series: vec![
                Series {
                    name: "train loss".into(),
                    color: BLUE_DIFFUSION,
                    points: pts(&|r| Some(r.train_loss)),
                    markers: true,
                    line: true,
                },
                Series {
                    name: "validation loss".into(),
                    color: RED_MOBILITY,
                    points: pts(&|r| Some(r.val_loss)),
                    markers: true,
                    line: true,
                },
                Series {
                    name: "validation MAE of |alpha|".into(),
                    color: GREY,
                    points: pts(&|r| r.val_mae),
                    markers: true,
                    line: true,
                },
            ],
            diagonal: false,
        },
    )
}

/// A trained model and its configuration, loaded from a model folder.
pub struct TrainedModel {
    pub model: SafePitCm,
    pub config: Config,
}

/// The shipped pretrained model (`train --profile universal`; see README "Pretrained
/// model"), compiled into every binary and the Python extension.
const UNIVERSAL_WEIGHTS: &[u8] = include_bytes!("../models/universal/model.bpk");
const UNIVERSAL_CONFIG: &str = include_str!("../models/universal/config.toml");

impl TrainedModel {
    /// The shipped pretrained model: what `infer` uses without `--model`.
    pub fn builtin() -> Result<TrainedModel> {
        let config = Config::from_toml(UNIVERSAL_CONFIG)
            .map_err(|e| anyhow!("the embedded model's configuration: {e}"))?;
        let dev = burn::tensor::Device::flex().autodiff();
        let model = safe_model::train::load_model_bytes(UNIVERSAL_WEIGHTS, &config, &dev)
            .map_err(|e| anyhow!(e))?;
        Ok(TrainedModel { model, config })
    }

    /// Load from a model folder written by `train`, or from its `model.bpk` (the path
    /// `train` prints), whose `config.toml` sits beside it.
    pub fn load(path: &Path) -> Result<TrainedModel> {
        if !path.exists() {
            bail!("{}: no such model folder or file", path.display());
        }
        let (dir, weights) = if path.is_dir() {
            (path.to_path_buf(), path.join("model.bpk"))
        } else {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            (dir, path.to_path_buf())
        };
        if !weights.is_file() {
            bail!(
                "{}: no model.bpk; is this the folder given to `train --out` (and has training finished)?",
                dir.display()
            );
        }
        let cp = dir.join("config.toml");
        let text = std::fs::read_to_string(&cp)
            .with_context(|| format!("{}: cannot read the model's configuration", cp.display()))?;
        let config = Config::from_toml(&text).map_err(|e| anyhow!("{}: {e}", cp.display()))?;
        let dev = burn::tensor::Device::flex().autodiff();
        let model = load_model(&weights, &config, &dev).map_err(|e| anyhow!("{e}"))?;
        Ok(TrainedModel { model, config })
    }
}

/// What the model sees of a video prepared by [`prepare_video`]: its frames in the smoothing
/// direction under the decided operator. Training the universal model goes through here too,
/// so that it trains on exactly what inference will show it.
pub fn model_input(
    model: &safe_model::ModelConfig,
    v: &Video,
    s: &EstimateSettings,
    frames: &[&[f32]],
    prep: &safe_physics::estimate::Prepared,
) -> TrainVideo {
    let canon = safe_physics::estimate::canonical(frames, prep.process);
    TrainVideo::new(
        &v.source.display().to_string(),
        &canon,
        v.grid,
        v.dt_between(s.frame_step),
        prep.spec,
        v.alpha_true().map(f64::abs),
        model,
    )
}

/// Infer one video with a trained model; `Err` is a user-facing sentence. The operator and
/// direction are decided as `fit` decides them (`s`).
pub fn infer_video(
    m: &TrainedModel,
    v: &Video,
    ttt_steps: usize,
    s: &EstimateSettings,
) -> std::result::Result<(SimResult, InferOutput), String> {
    let t0 = std::time::Instant::now();
    let (frames, prep) = prepare_video(v, s)?;
    let tv = model_input(&m.config.model, v, s, &frames, &prep);
    // The fit first: its error bar and misfit judge the answer, and its own SAFE loss (its
    // strides, noise model and open-window masks) is what Newton test-time steps minimise.
    let mut e = safe_physics::estimate::fit_prepared(
        &frames,
        &v.grid,
        v.dt_between(s.frame_step),
        &s.options(v),
        prep,
    )?;
    let fit_loss = e.loss.take();
    let out = infer(
        &m.model,
        &m.config,
        &tv,
        ttt_steps,
        fit_loss.as_ref().map(|l| &*l.0),
    );
    if !out.alpha_abs.is_finite() {
        return Err("the estimator returned a non-finite |alpha|".into());
    }
    let var = tv.norm.std.powi(2);
    let best = &e.fit;
    // The model's answer is not the minimum: its distance from it is part of its error
    // (an amortised guess on a video unlike the training set can be far off).
    let distance = (out.alpha_abs - best.alpha_abs).abs();
    let stderr = e.stderr.hypot(distance);
    let mut r = result_row(
        v,
        &e.prepared,
        out.alpha_abs,
        stderr,
        out.safe_loss * var,
        t0.elapsed().as_secs_f64(),
    );
    r.misfit = e.misfit.is_finite().then_some(e.misfit);
    r.warnings = e.warnings.clone();
    if distance > 3.0 * e.stderr {
        r.warnings.push(format!(
            "the model's |alpha| {:.4e} is {:.1}x its statistical error away from the SAFE loss's minimum ({:.4e}): the video may be unlike the training videos; --ttt-steps 50, `zero-shot` or `fit` get closer",
            out.alpha_abs,
            distance / e.stderr.max(1e-300),
            best.alpha_abs
        ));
    }
    r.add_extras(e.record());
    r.recon_error = Some(out.recon * var);
    r.extra
        .insert("ttt_steps".into(), serde_json::json!(ttt_steps));
    r.extra.insert(
        "alpha_amortised".into(),
        serde_json::json!(e.prepared.process.sign() * out.amortised),
    );
    r.extra.insert(
        "alpha_safe_minimum".into(),
        serde_json::json!(e.prepared.process.sign() * best.alpha_abs),
    );
    r.extra
        .insert("distance_to_minimum".into(), serde_json::json!(distance));
    Ok((r, out))
}
