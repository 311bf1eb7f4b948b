//! `reproduce`: the paper's experiments on its protocol, with a report beside the published
//! numbers.
//!
//! Work is split into stages, each in its own folder under the output with a
//! `settings.json` fingerprint (dataset, mode, every parameter that changes its results).
//! A rerun reuses a stage whose fingerprint matches, item by item (one JSON file per video,
//! written atomically), and wipes and recomputes one whose fingerprint changed, so results of
//! different settings never mix and an interrupted run resumes where it stopped.

use crate::explain::write_explain;
use crate::fitting::{EstimateSettings, fit_video};
use crate::metrics::{Metrics, metrics};
use crate::report;
use crate::results::SimResult;
use crate::training::{TrainedModel, infer_video, train_on};
use crate::zeroshot::{ZeroShotSettings, zero_shot_video};
use anyhow::{Context, Result, anyhow};
use rayon::prelude::*;
use safe_data::atomic::write_json_atomic;
use safe_data::dataset::{GenerateSettings, Manifest, generate};
use safe_data::{MetaOverrides, Video};
use safe_model::config::{Config, Profile};
use safe_physics::SubSteps;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReproProfile {
    /// Everything in minutes on a 2-core CPU (CPU training profile, short phase 2).
    Quick,
    /// The paper's training protocol (full-video phase 2, 50 epochs): hours on a CPU.
    Paper,
    /// A miniature of the whole pipeline (tiny dataset, few epochs) for tests.
    Smoke,
}

impl ReproProfile {
    pub fn name(self) -> &'static str {
        match self {
            ReproProfile::Quick => "quick",
            ReproProfile::Paper => "paper",
            ReproProfile::Smoke => "smoke",
        }
    }

    /// The dataset the profile generates.
    pub fn dataset(self) -> GenerateSettings {
        match self {
            ReproProfile::Smoke => GenerateSettings {
                n_diffusion: 10,
                nx: 32,
                ny: 32,
                n_steps: 1000,
                ..Default::default()
            },
            _ => GenerateSettings::default(),
        }
    }

    /// The training configuration the profile uses.
    pub fn train_config(self) -> Config {
        match self {
            ReproProfile::Quick => {
                let mut c = Config::for_profile(Profile::Cpu);
                // 20 phase-1 epochs (~0.6 s each) and 3 phase-2 epochs (~40 s each).
                c.train.epochs = 23;
                c.train.phase1_fraction = 20.0 / 23.0;
                c
            }
            // Our model at its own full length.
            ReproProfile::Paper => Config::for_profile(Profile::Cpu),
            ReproProfile::Smoke => {
                let mut c = Config::for_profile(Profile::Cpu);
                c.train.epochs = 4;
                c.train.phase1_fraction = 0.5;
                c
            }
        }
    }

    /// The paper's estimator and training (the `paper` training profile). In full in the
    /// paper profile; the quick profile runs the paper's phase 1 at its length (15 epochs)
    /// and leaves out its whole-video phase 2 (~12 min an epoch on 2 cores) and TTT's
    /// whole-video steps, which the paper profile runs.
    pub fn paper_config(self) -> Config {
        let mut c = Config::for_profile(Profile::Paper);
        match self {
            ReproProfile::Paper => {}
            // Phase 1 only, and TTT's estimator steps only (its 35 whole-video steps would
            // cost hours over the test set on 2 cores).
            ReproProfile::Quick => {
                c.train.epochs = c.phase1_epochs();
                c.train.phase1_fraction = 1.0;
                c.ttt.phase2 = false;
            }
            ReproProfile::Smoke => {
                c.train.epochs = 2;
                c.train.phase1_fraction = 1.0;
                c.ttt.phase2 = false;
            }
        }
        c
    }
}

pub struct ReproSettings {
    pub profile: ReproProfile,
    pub out: PathBuf,
    /// Use this generated dataset instead of generating one under `out/data`.
    pub data: Option<PathBuf>,
}

/// A stage folder with its fingerprint.
pub struct Stage {
    pub dir: PathBuf,
}

impl Stage {
    pub fn open(root: &Path, name: &str, fingerprint: &Value) -> Result<Stage> {
        let dir = root.join("stages").join(name);
        let fp = dir.join("settings.json");
        if dir.exists() {
            let same = std::fs::read_to_string(&fp)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| &v == fingerprint);
            if !same {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("clearing stale stage {}", dir.display()))?;
            }
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        safe_data::atomic::clean_stale_temps(&dir);
        write_json_atomic(&fp, fingerprint, true)?;
        Ok(Stage { dir })
    }

    /// The cached item `key`, or compute and store it.
    pub fn item<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let p = self.dir.join(format!("{key}.json"));
        if let Some(v) = std::fs::read_to_string(&p)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            return Ok(v);
        }
        let v = f()?;
        write_json_atomic(&p, &v, true)?;
        Ok(v)
    }
}

/// Results of one mode on the test videos, with metrics.
#[derive(Clone, Debug, Serialize)]
pub struct ModeResult {
    pub name: String,
    pub sims: Vec<SimResult>,
    pub all: Option<Metrics>,
    pub diffusion: Option<Metrics>,
    pub mobility: Option<Metrics>,
    /// Wall time of the stage when it was computed (sum of per-video seconds).
    pub seconds: f64,
}

impl ModeResult {
    fn new(name: &str, sims: Vec<SimResult>) -> ModeResult {
        let pick = |p: Option<&str>| {
            let pairs: Vec<(f64, f64)> = sims
                .iter()
                .filter(|r| p.is_none_or(|p| r.process == p))
                .filter_map(|r| r.alpha_true.map(|t| (t, r.alpha_hat)))
                .collect();
            metrics(&pairs)
        };
        ModeResult {
            name: name.to_string(),
            all: pick(None),
            diffusion: pick(Some("diffusion")),
            mobility: pick(Some("mobility")),
            seconds: sims.iter().map(|r| r.seconds).sum(),
            sims,
        }
    }
}

/// Everything the report needs.
pub struct Outcome {
    pub profile: ReproProfile,
    pub data: PathBuf,
    pub manifest: Manifest,
    pub fit_nsub: Vec<(String, ModeResult)>,
    pub fit_step: Vec<(usize, ModeResult)>,
    pub zs_nsub: Vec<(u32, ModeResult)>,
    pub zs_step: Vec<(usize, ModeResult)>,
    /// Our trained model (the one the robustness and real-video sections refine).
    pub trained: TrainedRow,
    /// Other trained models on the same split: the paper's estimator and training, and it
    /// with band features (what each departure buys).
    pub variants: Vec<TrainedRow>,
    pub explain: Vec<(String, PathBuf)>,
    /// (condition, mode, results) of the robustness study.
    pub robust: Vec<(String, String, ModeResult)>,
    /// (scenario, method, results) on the real-video scenarios.
    pub real: Vec<(String, String, ModeResult)>,
    pub stage_seconds: Vec<(String, f64)>,
}

/// One trained model of the report: its configuration, cost, and Table 4 numbers.
pub struct TrainedRow {
    pub label: String,
    pub config: Config,
    pub model_dir: PathBuf,
    pub fingerprint: Value,
    pub seconds: f64,
    pub epochs: usize,
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
    pub amortised: ModeResult,
    pub ttt: ModeResult,
}

/// Train `cfg` on the paper split in stage `stage` (reused when finished), then infer the
/// test videos amortised and with 50 TTT steps.
#[allow(clippy::too_many_arguments)]
fn trained_row(
    root: &Path,
    stage: &str,
    label: &str,
    cfg: &Config,
    data: &Path,
    data_fp: &Value,
    test: &[Video],
    log: &(dyn Fn(&str) + Sync),
) -> Result<TrainedRow> {
    let train_fp = json!({"config": cfg.to_toml(), "split": "paper", "data": data_fp});
    let tstage = Stage::open(root, stage, &train_fp)?;
    let model_dir = tstage.dir.join("model");
    let done = model_dir.join("model.bpk").is_file() && tstage.dir.join("done.json").is_file();
    let (seconds, epochs, best_epoch, stopped_early) = if done {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(tstage.dir.join("done.json"))?)?;
        (
            v["seconds"].as_f64().unwrap_or(0.0),
            v["epochs"].as_u64().unwrap_or(0) as usize,
            v["best_epoch"].as_u64().map(|e| e as usize),
            v["stopped_early"].as_bool().unwrap_or(false),
        )
    } else {
        log(&format!(
            "training ({label}): {} epochs, phase 1 = {}, band features K = {}, augmentation {}",
            cfg.train.epochs,
            cfg.phase1_epochs(),
            cfg.model.bands,
            if cfg.train.augment { "on" } else { "off" }
        ));
        let start = if safe_model::train::latest_checkpoint(&model_dir).is_some() {
            crate::training::RunStart::Resume
        } else {
            crate::training::RunStart::Fresh
        };
        let tt = std::time::Instant::now();
        let o = train_on(data, "paper", &model_dir, cfg, start, &mut |p| {
            if let safe_model::train::Progress::EpochDone(r) = p {
                log(&format!(
                    "  epoch {} (phase {}): val loss {:.3e}{}",
                    r.epoch,
                    r.phase,
                    r.val_loss,
                    r.val_mae
                        .map(|m| format!(", val |alpha| MAE {m:.2e}"))
                        .unwrap_or_default()
                ));
            }
        })?;
        let secs = tt.elapsed().as_secs_f64();
        let d = json!({"seconds": secs, "epochs": o.state.epochs_done, "best_epoch": o.state.best_epoch, "stopped_early": o.state.stopped_early});
        write_json_atomic(&tstage.dir.join("done.json"), &d, true)?;
        (
            secs,
            o.state.epochs_done,
            o.state.best_epoch,
            o.state.stopped_early,
        )
    };
    let trained = TrainedModel::load(&model_dir)?;
    let paper50 = EstimateSettings::paper(SubSteps::Finite(50));
    log(&format!(
        "trained model ({label}): amortised inference and 50 test-time-training steps"
    ));
    let st = Stage::open(
        root,
        &format!("{stage}_amortised"),
        &json!({"train": train_fp, "ttt_steps": 0}),
    )?;
    let amortised = ModeResult::new(
        &format!("{label}, amortised"),
        run_items(&st, test, false, &|v| {
            infer_video(&trained, v, 0, &paper50).map(|(r, _)| r)
        })?,
    );
    let st = Stage::open(
        root,
        &format!("{stage}_ttt50"),
        &json!({"train": train_fp, "ttt_steps": 50}),
    )?;
    let ttt = ModeResult::new(
        &format!("{label} + 50 TTT steps"),
        run_items(&st, test, false, &|v| {
            infer_video(&trained, v, 50, &paper50).map(|(r, _)| r)
        })?,
    );
    Ok(TrainedRow {
        label: label.to_string(),
        config: cfg.clone(),
        model_dir,
        fingerprint: train_fp,
        seconds,
        epochs,
        best_epoch,
        stopped_early,
        amortised,
        ttt,
    })
}

/// Noise levels (fraction of the video's intensity range) of the robustness study.
pub const NOISE_LEVELS: [f64; 4] = [0.005, 0.01, 0.02, 0.05];

/// Bumped whenever an estimator's results change, so `reproduce` recomputes cached stages.
pub const ALGORITHM_VERSION: u32 = 7;

/// One way of estimating alpha for a video.
type Estimate<'a> = Box<dyn Fn(&Video) -> std::result::Result<SimResult, String> + Sync + 'a>;

pub const NSUB_ABLATION: [u32; 6] = [1, 2, 5, 10, 25, 50];
pub const STEP_ABLATION: [usize; 4] = [1, 2, 5, 10];

fn run_items(
    stage: &Stage,
    videos: &[Video],
    parallel: bool,
    f: &(dyn Fn(&Video) -> std::result::Result<SimResult, String> + Sync),
) -> Result<Vec<SimResult>> {
    let one = |v: &Video| -> Result<SimResult> {
        let key = v
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        stage.item(&key, || {
            f(v).map_err(|e| anyhow!("{}: {e}", v.source.display()))
        })
    };
    if parallel {
        videos.par_iter().map(one).collect()
    } else {
        videos.iter().map(one).collect()
    }
}

/// Run (or resume) every stage and write the report. Returns the report's path.
pub fn reproduce(s: &ReproSettings, log: &(dyn Fn(&str) + Sync)) -> Result<PathBuf> {
    let root = &s.out;
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let _lock = safe_data::atomic::lock_dir(root).map_err(|e| anyhow!(e))?;
    let mut stage_seconds = Vec::new();
    let mut timed = |name: &str, t0: std::time::Instant| {
        stage_seconds.push((name.to_string(), t0.elapsed().as_secs_f64()))
    };

    // 1. The dataset (Appendix A), generated or reused.
    let t0 = std::time::Instant::now();
    let data = s.data.clone().unwrap_or_else(|| root.join("data"));
    let manifest = match &s.data {
        Some(d) => Manifest::load(d).map_err(|e| anyhow!(e))?,
        None => {
            log("dataset: generating (or reusing) the Appendix-A dataset");
            generate(&s.profile.dataset(), &data, false, &|| {})
                .map_err(|e| anyhow!(e))?
                .0
        }
    };
    timed("dataset", t0);
    // Every stage's fingerprint includes the program's version and ALGORITHM_VERSION, so a
    // program whose results may differ never reuses an older one's.
    let data_fp = json!({"settings": manifest.settings, "generator_version": manifest.generator_version,
                         "program": env!("CARGO_PKG_VERSION"), "algorithms": ALGORITHM_VERSION});
    let split = manifest
        .splits
        .get("paper")
        .ok_or_else(|| anyhow!("{}: manifest has no 'paper' split", data.display()))?;
    let test: Vec<Video> = split
        .test
        .par_iter()
        .map(|&i| {
            Video::load_sim_dir(&manifest.sim_dir(&data, i), &MetaOverrides::default())
                .map_err(|e| anyhow!("{e}"))
        })
        .collect::<Result<_>>()?;

    // 2. Direct fit: N_sub ablation (+ inf) and frame-step ablation.
    let t0 = std::time::Instant::now();
    log("direct fit: N_sub and frame-step ablations");
    let mut fit_nsub = Vec::new();
    for n in NSUB_ABLATION
        .iter()
        .map(|n| SubSteps::Finite(*n))
        .chain([SubSteps::Infinite])
    {
        let st = Stage::open(
            root,
            &format!("fit_nsub{n}"),
            &json!({"mode": "fit", "n_sub": n.to_string(), "data": data_fp}),
        )?;
        let fs = EstimateSettings::paper(n);
        let sims = run_items(&st, &test, true, &|v| fit_video(v, &fs))?;
        fit_nsub.push((
            n.to_string(),
            ModeResult::new(&format!("fit N_sub={n}"), sims),
        ));
    }
    let mut fit_step = Vec::new();
    for k in STEP_ABLATION {
        let st = Stage::open(
            root,
            &format!("fit_step{k}"),
            &json!({"mode": "fit", "n_sub": "50", "frame_step": k, "data": data_fp}),
        )?;
        let fs = EstimateSettings {
            frame_step: k,
            ..EstimateSettings::paper(SubSteps::Finite(50))
        };
        let sims = run_items(&st, &test, true, &|v| fit_video(v, &fs))?;
        fit_step.push((k, ModeResult::new(&format!("fit step={k}"), sims)));
    }
    timed("direct fit", t0);

    // 3. Zero-shot (paper 2.7): N_sub ablation (Table 3, Fig. 7) and frame-step ablation (Fig. 8).
    let t0 = std::time::Instant::now();
    // The paper's zero-shot: its operator, frame pairs, Adam only (no Newton polish).
    let zs_base = ZeroShotSettings {
        config: safe_model::zero_shot::ZeroShotConfig {
            polish: 0,
            ..Default::default()
        },
        estimate: EstimateSettings::paper(SubSteps::Finite(50)),
    };
    let zs_fp = |n: u32, k: usize| {
        json!({"mode": "zero-shot", "n_sub": n, "frame_step": k, "steps": zs_base.config.steps, "lr": zs_base.config.lr,
               "seed": zs_base.config.seed, "data": data_fp, "model": zs_base.config.model, "loss": zs_base.config.weights})
    };
    let mut zs_nsub = Vec::new();
    for n in NSUB_ABLATION {
        log(&format!(
            "zero-shot: N_sub = {n} on {} test videos",
            test.len()
        ));
        let st = Stage::open(root, &format!("zeroshot_nsub{n}"), &zs_fp(n, 1))?;
        let zs = ZeroShotSettings {
            estimate: EstimateSettings::paper(SubSteps::Finite(n)),
            ..zs_base.clone()
        };
        let sims = run_items(&st, &test, true, &|v| {
            zero_shot_video(v, &zs, &mut |_| {}).map(|(r, _)| r)
        })?;
        zs_nsub.push((n, ModeResult::new(&format!("zero-shot N_sub={n}"), sims)));
    }
    let mut zs_step = Vec::new();
    for k in STEP_ABLATION {
        if k == 1 {
            let m = zs_nsub
                .iter()
                .find(|(n, _)| *n == 50)
                .map(|(_, m)| m.clone())
                .ok_or_else(|| anyhow!("missing N_sub=50"))?;
            zs_step.push((1, m));
            continue;
        }
        log(&format!("zero-shot: frame step {k}"));
        let st = Stage::open(root, &format!("zeroshot_step{k}"), &zs_fp(50, k))?;
        let zs = ZeroShotSettings {
            estimate: EstimateSettings {
                frame_step: k,
                ..zs_base.estimate.clone()
            },
            ..zs_base.clone()
        };
        let sims = run_items(&st, &test, true, &|v| {
            zero_shot_video(v, &zs, &mut |_| {}).map(|(r, _)| r)
        })?;
        zs_step.push((k, ModeResult::new(&format!("zero-shot step={k}"), sims)));
    }
    timed("zero-shot and ablations", t0);

    // 4. Explainability (Figs. 4-6): sims 40 and 90 when present.
    let t0 = std::time::Instant::now();
    let mut explain = Vec::new();
    for i in [40usize, 90] {
        if i >= manifest.simulations.len() {
            continue;
        }
        let dir = root
            .join("figures")
            .join(format!("explain_{}", manifest.settings.sim_name(i)));
        let fp_path = dir.join("settings.json");
        let fp = zs_fp(50, 1);
        let fresh = std::fs::read_to_string(&fp_path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v == fp)
            && dir.join("fields.png").is_file();
        if !fresh {
            log(&format!("explain: {}", manifest.settings.sim_name(i)));
            let v = Video::load_sim_dir(&manifest.sim_dir(&data, i), &MetaOverrides::default())
                .map_err(|e| anyhow!("{e}"))?;
            let (r, out) = zero_shot_video(&v, &zs_base, &mut |_| {}).map_err(|e| anyhow!(e))?;
            let process = r.process.parse().map_err(|e: String| anyhow!(e))?;
            write_explain(&dir, &v, &out, process, 1, true)?;
            write_json_atomic(&fp_path, &fp, true)?;
        }
        explain.push((manifest.settings.sim_name(i), dir));
    }
    timed("explainability", t0);

    // 5. Trained mode (paper 2.6, Fig. 3a): train on the paper split, infer the test videos.
    let t0 = std::time::Instant::now();
    let cfg = s.profile.train_config();
    let paper50 = EstimateSettings::paper(SubSteps::Finite(50));
    let main = trained_row(root, "train", "ours", &cfg, &data, &data_fp, &test, log)?;
    let trained = TrainedModel::load(&main.model_dir)?;
    let train_fp = main.fingerprint.clone();
    // The paper's own estimator and training, and the one change that makes it learn.
    let mut variants = Vec::new();
    for (stage, label, bands) in [
        ("train_paper", "paper's estimator and training", 0),
        ("train_paper_bands", "paper's + band features (K = 8)", 8),
    ] {
        let mut c = s.profile.paper_config();
        c.model.bands = bands;
        variants.push(trained_row(
            root, stage, label, &c, &data, &data_fp, &test, log,
        )?);
    }
    timed("training and inference", t0);

    // 6. Beyond the paper: noise, 8-bit quantisation, a gamma intensity map.
    let t0 = std::time::Instant::now();
    let mut robust = Vec::new();
    let index_of = |v: &Video| -> u64 {
        v.source
            .file_name()
            .and_then(|n| n.to_string_lossy().trim_start_matches("sim_").parse().ok())
            .unwrap_or(0)
    };
    type Transform<'a> = Box<dyn Fn(&Video) -> Video + Sync + 'a>;
    let mut conds: Vec<(String, Transform)> = NOISE_LEVELS
        .iter()
        .map(|&l| {
            let t: Transform =
                Box::new(move |v: &Video| crate::robustness::with_noise(v, l, 1000 + index_of(v)));
            (format!("noise {:.1}%", l * 100.0), t)
        })
        .collect();
    conds.push((
        "8-bit".into(),
        Box::new(|v: &Video| crate::robustness::as_camera(v, 1.0, 8)),
    ));
    conds.push((
        "8-bit, gamma 0.8".into(),
        Box::new(|v: &Video| crate::robustness::as_camera(v, 0.8, 8)),
    ));
    for (ci, (cname, tf)) in conds.iter().enumerate() {
        log(&format!("robustness: {cname}"));
        let mut modes: Vec<(&str, Estimate)> = vec![
            (
                "fit, raw loss",
                Box::new(|v: &Video| {
                    fit_video(
                        v,
                        &EstimateSettings {
                            noise: safe_physics::loss::NoiseMode::Off,
                            ..EstimateSettings::paper(SubSteps::Finite(50))
                        },
                    )
                }),
            ),
            ("fit", Box::new(|v: &Video| fit_video(v, &paper50))),
            (
                "zero-shot",
                Box::new(|v: &Video| zero_shot_video(v, &zs_base, &mut |_| {}).map(|(r, _)| r)),
            ),
        ];
        if !cname.starts_with("noise") {
            modes.push((
                "trained + 50 TTT",
                Box::new(|v: &Video| infer_video(&trained, v, 50, &paper50).map(|(r, _)| r)),
            ));
        }
        if cname.contains("gamma") {
            let p50 = &paper50;
            // The power-law encoder with gamma fitted per video (`--gamma auto`).
            let g = |v: &Video, f: &dyn Fn(&Video) -> std::result::Result<SimResult, String>| {
                crate::intensity::with_gamma(v, crate::intensity::GammaChoice::Auto, p50, f)
            };
            modes.push((
                "fit, gamma fitted",
                Box::new(move |v: &Video| g(v, &|v| fit_video(v, p50))),
            ));
            let zs = &zs_base;
            modes.push((
                "zero-shot, gamma fitted",
                Box::new(move |v: &Video| {
                    g(v, &|v| zero_shot_video(v, zs, &mut |_| {}).map(|(r, _)| r))
                }),
            ));
            let tm = &trained;
            modes.push((
                "trained + 50 TTT, gamma fitted",
                Box::new(move |v: &Video| g(v, &|v| infer_video(tm, v, 50, p50).map(|(r, _)| r))),
            ));
        }
        for (mi, (mname, f)) in modes.iter().enumerate() {
            let st = Stage::open(
                root,
                &format!("robust{ci}_{mi}"),
                &json!({"condition": cname, "mode": mname, "data": data_fp, "zero_shot": zs_fp(50, 1), "train": train_fp}),
            )?;
            let sims = run_items(&st, &test, !mname.starts_with("trained"), &|v| f(&tf(v)))?;
            robust.push((
                cname.clone(),
                mname.to_string(),
                ModeResult::new(mname, sims),
            ));
        }
    }
    timed("robustness", t0);

    // 7. Beyond the paper: videos like real ones, made by `generate`.
    let t0 = std::time::Instant::now();
    let real = real_videos(root, s.profile, &trained, train_fp.clone(), &log)?;
    timed("real videos", t0);

    let outcome = Outcome {
        profile: s.profile,
        data,
        manifest,
        fit_nsub,
        fit_step,
        zs_nsub,
        zs_step,
        trained: main,
        variants,
        explain,
        robust,
        real,
        stage_seconds,
    };
    log("writing the report and figures");
    report::write_report(root, &outcome)
}

/// The real-video scenarios of the report: continuous physics on a periodic grid, an open
/// window cropped from a larger sample, a sealed (zero-flux) box, and an open window seen
/// through a camera (blur, black level, shot and read noise, 12 bits).
pub fn real_video_scenarios(profile: ReproProfile) -> Vec<(&'static str, GenerateSettings)> {
    let (n, nx, ny) = match profile {
        ReproProfile::Smoke => (2, 40, 48),
        _ => (4, 80, 96),
    };
    let base = GenerateSettings {
        n_diffusion: n,
        nx,
        ny,
        dx: 0.5,
        dy: 0.5,
        dt: 0.25,
        n_steps: 100,
        save_interval: 1,
        physics: "continuum".into(),
        seed: 2026,
        ..Default::default()
    };
    vec![
        (
            "continuum, periodic",
            GenerateSettings {
                boundary: "periodic".into(),
                ..base.clone()
            },
        ),
        (
            "open window",
            GenerateSettings {
                boundary: "open".into(),
                ..base.clone()
            },
        ),
        (
            "sealed box (zero-flux)",
            GenerateSettings {
                boundary: "zero-flux".into(),
                ..base.clone()
            },
        ),
        (
            "open window, 12-bit camera",
            GenerateSettings {
                boundary: "open".into(),
                camera: Some(safe_data::camera::Camera::default()),
                ..base
            },
        ),
    ]
}

/// Every method on every real-video scenario, with the defaults a user runs (`--n-sub inf`:
/// the physics is continuous in time).
fn real_videos(
    root: &Path,
    profile: ReproProfile,
    trained: &TrainedModel,
    train_fp: Value,
    log: &dyn Fn(&str),
) -> Result<Vec<(String, String, ModeResult)>> {
    let settings = EstimateSettings {
        n_sub: crate::fitting::SubStepChoice::Fixed(SubSteps::Infinite),
        ..Default::default()
    };
    let zs = ZeroShotSettings {
        estimate: settings.clone(),
        ..Default::default()
    };
    let wf = crate::weak_form::WeakForm::default();
    // The shipped pretrained model beside the one trained here on the paper's data.
    let pretrained = TrainedModel::builtin()?;
    let mut out = Vec::new();
    for (si, (name, gs)) in real_video_scenarios(profile).into_iter().enumerate() {
        log(&format!("real videos: {name}"));
        let dir = root.join("real_videos").join(format!("scenario_{si}"));
        generate(&gs, &dir, true, &|| {}).map_err(|e| anyhow!(e))?;
        let m = Manifest::load(&dir).map_err(|e| anyhow!(e))?;
        let videos: Vec<Video> = (0..m.simulations.len())
            .into_par_iter()
            .map(|i| {
                Video::load_sim_dir(&m.sim_dir(&dir, i), &MetaOverrides::default())
                    .map_err(|e| anyhow!("{e}"))
            })
            .collect::<Result<_>>()?;
        let data_fp = json!({"scenario": name, "settings": gs, "version": ALGORITHM_VERSION});
        let methods: Vec<(&str, Estimate, bool)> = vec![
            (
                "SAFE fit",
                Box::new(|v: &Video| fit_video(v, &settings)),
                true,
            ),
            (
                "zero-shot",
                Box::new(|v: &Video| zero_shot_video(v, &zs, &mut |_| {}).map(|(r, _)| r)),
                false,
            ),
            (
                "trained + 50 TTT",
                Box::new(|v: &Video| infer_video(trained, v, 50, &settings).map(|(r, _)| r)),
                false,
            ),
            (
                "pretrained, amortised",
                Box::new(|v: &Video| infer_video(&pretrained, v, 0, &settings).map(|(r, _)| r)),
                false,
            ),
            (
                "pretrained + 50 TTT",
                Box::new(|v: &Video| infer_video(&pretrained, v, 50, &settings).map(|(r, _)| r)),
                false,
            ),
            (
                "weak form",
                Box::new(|v: &Video| crate::weak_form::weak_form_video(v, &wf)),
                true,
            ),
        ];
        for (mi, (mname, f, parallel)) in methods.iter().enumerate() {
            let st = Stage::open(
                root,
                &format!("real{si}_{mi}"),
                &json!({"data": data_fp, "method": mname, "train": train_fp}),
            )?;
            let sims = run_items(&st, &videos, *parallel, f.as_ref())?;
            out.push((
                name.to_string(),
                mname.to_string(),
                ModeResult::new(mname, sims),
            ));
        }
    }
    Ok(out)
}
