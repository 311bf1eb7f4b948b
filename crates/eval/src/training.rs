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
        cfg.model.pool,
        cfg.model.bands,
    ))
}

/// Load the videos of a split of a generated dataset, in parallel.
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
        .collect()
}

/// Train on a dataset folder; writes the model, its config, curves and checkpoints to `out`.
pub fn train_on(
    data: &Path,
    split: &str,
    out: &Path,
    cfg: &Config,
    resume: bool,
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

impl TrainedModel {
    pub fn load(dir: &Path) -> Result<TrainedModel> {
        let cp = dir.join("config.toml");
        let text = std::fs::read_to_string(&cp)
            .with_context(|| format!("{}: cannot read the model's configuration", cp.display()))?;
        let config = Config::from_toml(&text).map_err(|e| anyhow!("{}: {e}", cp.display()))?;
        let dev = burn::tensor::Device::flex().autodiff();
        let model =
            load_model(&dir.join("model.bpk"), &config, &dev).map_err(|e| anyhow!("{e}"))?;
        Ok(TrainedModel { model, config })
    }
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
    let canon = safe_physics::estimate::canonical(&frames, prep.process);
    let tv = TrainVideo::new(
        &v.source.display().to_string(),
        &canon,
        v.grid,
        v.dt_between(s.frame_step),
        prep.spec,
        v.alpha_true().map(f64::abs),
        m.config.model.pool,
        m.config.model.bands,
    );
    let out = infer(&m.model, &m.config, &tv, ttt_steps);
    if !out.alpha_abs.is_finite() {
        return Err("the estimator returned a non-finite |alpha|".into());
    }
    let var = tv.norm.std.powi(2);
    // The error bar at the estimate: the SAFE loss's sandwich, plus (without test-time
    // training) the distance to the loss's minimum, which an amortised guess may not reach.
    let sandwich = out.loss.stderr(out.alpha_abs);
    let p = out.loss.eval(out.alpha_abs);
    let newton = if p.d2 > 0.0 {
        (p.d1 / p.d2).abs()
    } else {
        f64::INFINITY
    };
    let stderr = (sandwich * sandwich + newton * newton).sqrt();
    let mut r = result_row(
        v,
        &prep,
        out.alpha_abs,
        stderr,
        out.safe_loss * var,
        t0.elapsed().as_secs_f64(),
    );
    r.recon_error = Some(out.recon * var);
    r.extra
        .insert("ttt_steps".into(), serde_json::json!(ttt_steps));
    r.extra.insert(
        "alpha_amortised".into(),
        serde_json::json!(prep.process.sign() * out.amortised),
    );
    r.extra
        .insert("newton_distance".into(), serde_json::json!(newton));
    r.extra.insert(
        "n_sub".into(),
        serde_json::json!(prep.spec.n_sub.to_string()),
    );
    Ok((r, out))
}
