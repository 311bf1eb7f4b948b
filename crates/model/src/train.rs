//! Two-phase training (paper 2.6 and 3.1) with atomic per-epoch checkpoints and resume.
//!
//! Phase 1 (the first `phase1_fraction` of the epochs): encoder and decoder frozen. Their
//! projections are zero, so the latent is exactly the normalised video and every video's
//! SAFE loss is a closed-form function of `|alpha|`: only the estimator runs (fused pass),
//! on randomly shifted and reflected views of the training videos. Phase 2: everything
//! trains with `w_phys >> w_recon`, through the SAFE layer op and burn's autodiff; the
//! `cpu` profile feeds each step a window of consecutive frames (the estimator still sees
//! the whole video: the other frames' pooled latents come from a cache refreshed as
//! windows pass). Adam at 5e-3 (estimator) and 1e-3 (encoder/decoder), ReduceLROnPlateau
//! (0.5, patience 5) and early stopping (patience 5) on the validation loss.
//!
//! A checkpoint is written after every epoch into a fresh folder that is renamed into place
//! and then named in `LATEST` (also renamed into place): `kill -9` at any moment leaves the
//! previous complete checkpoint, so a resumed run loses at most the epoch in progress.

use crate::bands::{band_features, band_log_energies};
use crate::config::Config;
use crate::fused::{HostEstimator, HostGrads};
use crate::loss::{
    ALPHA_GRAD_CLIP, alpha_objective, bounds_loss, bounds_value, field_supervised_phase1, mse,
    safe_loss_masked,
};
use crate::model::{ModelConfig, SafePitCm, Units};
use crate::pooling::{Symmetry, pool_frames};
use crate::rate::RateInputs;
use crate::safe_layer::{SafeSpec, safe_propagate};
use crate::zero_shot::{Normalisation, to_vec};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng, seq::SliceRandom};
use safe_physics::batch::Kernel;
use safe_physics::estimate::{Prepared, SafeLoss};
use safe_physics::loss::{NoiseMode, VideoSpectra};
use safe_physics::{Grid, OperatorSpec, Process, SafeOperator};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One training or validation video, prepared once: normalised, in stable order.
pub struct TrainVideo {
    pub name: String,
    pub grid: Grid,
    pub dt_save: f64,
    /// The operator and loss settings (the noise estimated on the normalised frames).
    pub prep: Prepared,
    /// Normalised frames `[t, nx, ny]`.
    pub frames: Vec<f32>,
    pub t: usize,
    pub alpha_abs: Option<f64>,
    pub norm: Normalisation,
    /// SAFE loss of the identity latent (phase 1 and TTT phase 1).
    pub loss: SafeLoss,
    /// Interior the phase-2 SAFE loss counts (open windows; zero elsewhere).
    pub margins: (usize, usize),
    /// The un-augmented pooled frames `[t, p*p]`.
    pub pooled: Vec<f32>,
    /// Log band energies `[t][k]` of the identity latent (empty without band features),
    /// and the energy floor they used.
    pub log_e: Vec<f32>,
    pub band_floor: f64,
    pub bands: usize,
    /// Unit-free band geometry and prior (`model.units = "rate"`; `None`: physical units).
    pub rate: Option<RateInputs>,
}

impl TrainVideo {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        frames: &[&[f32]],
        grid: Grid,
        dt_save: f64,
        spec: OperatorSpec,
        alpha_abs: Option<f64>,
        model: &ModelConfig,
    ) -> TrainVideo {
        let (pool, bands) = (model.pool, model.bands);
        let norm = Normalisation::of(frames);
        let data = norm.apply(frames);
        let refs: Vec<&[f32]> = data.chunks_exact(grid.len()).collect();
        let op = SafeOperator::new(grid, spec, dt_save);
        let spectra = VideoSpectra::compute(&refs, &grid, op.basis.boundary_kind());
        // The measurement-noise correction is estimated from the data (a no-op on clean data).
        let prep = Prepared::fixed(
            Process::Diffusion,
            spec,
            vec![1],
            NoiseMode::Auto.model(&spectra, 1.0, &[1]),
        );
        let mut loss = SafeLoss::build(&refs, &grid, dt_save, &prep, 1.0);
        let margins = match &mut loss {
            SafeLoss::Window(w) => {
                let s0 = dt_save * w.op.lambda_max();
                let hi = w.identifiable_max(1e-5 / s0, 1e4 / s0).unwrap_or(1e4 / s0);
                w.set_margins(hi);
                w.margins[0]
            }
            SafeLoss::Curve(_) => (0, 0),
        };
        let (log_e, band_floor, rate) = match (bands, model.units) {
            (0, _) => (Vec::new(), 0.0, None),
            (k, Units::Physical) => {
                let (le, f) = band_log_energies(&spectra, &op, k, None);
                (le, f, None)
            }
            (k, Units::Rate) => {
                let (r, le) = RateInputs::of(&refs, &grid, spec, k, dt_save, model.prior);
                (le, 0.0, Some(r))
            }
        };
        let pooled = pool_frames(
            &data,
            frames.len(),
            grid.nx,
            grid.ny,
            pool,
            &Symmetry::IDENTITY,
        );
        TrainVideo {
            name: name.to_string(),
            grid,
            dt_save,
            prep,
            t: frames.len(),
            frames: data,
            alpha_abs,
            norm,
            loss,
            margins,
            pooled,
            log_e,
            band_floor,
            bands,
            rate,
        }
    }

    /// `|alpha|` of an estimator output `y`: `y` itself in physical units, `y` times the
    /// video's prior in rate units (`rate.rs`).
    pub fn alpha_unit(&self) -> f64 {
        self.rate.as_ref().map_or(1.0, |r| r.alpha_unit)
    }

    /// Band features `[t][2k]` from log energies (`None` without band features).
    pub fn features_from(&self, log_e: &[f32]) -> Option<Vec<f32>> {
        match &self.rate {
            Some(r) => Some(r.features(log_e, self.t)),
            None => (self.bands > 0).then(|| band_features(log_e, self.t, self.bands)),
        }
    }

    /// Log band energies `[t][k]` of a latent `[t, nx, ny]` of this video (the video's own
    /// band geometry and floor).
    pub fn log_energies_of_latent(&self, lat: &[f32]) -> Vec<f32> {
        let refs: Vec<&[f32]> = lat.chunks_exact(self.grid.len()).collect();
        if let Some(r) = &self.rate {
            return r.log_energies(&refs, &self.grid);
        }
        let op = self.operator();
        let sp = VideoSpectra::compute(&refs, &self.grid, op.basis.boundary_kind());
        band_log_energies(&sp, &op, self.bands, Some(self.band_floor)).0
    }

    /// Band features of a latent `[t, nx, ny]` of this video.
    pub fn features_of_latent(&self, lat: &[f32]) -> Option<Vec<f32>> {
        if self.bands == 0 {
            return None;
        }
        self.features_from(&self.log_energies_of_latent(lat))
    }

    pub fn operator(&self) -> SafeOperator {
        SafeOperator::new(self.grid, self.prep.spec, self.dt_save)
    }

    /// The SAFE loss of a latent of this video (same operator and noise model).
    pub fn loss_of_latent(&self, lat: &[f32]) -> SafeLoss {
        let refs: Vec<&[f32]> = lat.chunks_exact(self.grid.len()).collect();
        let mut l = SafeLoss::build(&refs, &self.grid, self.dt_save, &self.prep, 1.0);
        if let (SafeLoss::Window(w), SafeLoss::Window(w0)) = (&mut l, &self.loss) {
            w.set_margins(w0.margin_alpha);
        }
        l
    }

    fn isotropic(&self) -> bool {
        self.grid.dx == self.grid.dy
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("{0}")]
    Io(String),
    #[error("no training videos")]
    NoData,
}

/// JSON has no NaN or infinity: write them as `null` and read `null` back as NaN, so a
/// diverged epoch cannot make a checkpoint unreadable.
mod non_finite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// One row of the training curves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub phase: u8,
    #[serde(with = "non_finite_as_null")]
    pub train_loss: f64,
    #[serde(with = "non_finite_as_null")]
    pub val_loss: f64,
    #[serde(with = "non_finite_as_null")]
    pub val_safe: f64,
    pub val_mae: Option<f64>,
    pub lr_estimator: f64,
    pub lr_codec: f64,
    pub seconds: f64,
}

/// ReduceLROnPlateau / early stopping bookkeeping (burn has no plateau scheduler; the LR
/// is an argument of every optimiser step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Best value so far (`f64::MAX` before the first; JSON cannot hold infinity).
    pub best: f64,
    pub bad: usize,
}

impl Plateau {
    fn new() -> Plateau {
        Plateau {
            best: f64::MAX,
            bad: 0,
        }
    }

    /// Record a value; true on the epoch after `patience` epochs without improvement
    /// (PyTorch's ReduceLROnPlateau: it acts when the bad epochs exceed the patience),
    /// then resets.
    fn step(&mut self, v: f64, patience: usize) -> bool {
        self.record(v) > patience && {
            self.bad = 0;
            true
        }
    }

    /// Early stopping: true once `patience` epochs in a row brought no improvement (the
    /// paper's patience 5 stops after the fifth bad epoch).
    fn stop(&mut self, v: f64, patience: usize) -> bool {
        self.record(v) >= patience.max(1)
    }

    /// The bad epochs so far, after recording `v`.
    fn record(&mut self, v: f64) -> usize {
        if v < self.best * (1.0 - 1e-4) {
            self.best = v;
            self.bad = 0;
        } else {
            self.bad += 1;
        }
        self.bad
    }
}

/// Everything besides weights and optimiser moments that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub lr_estimator: f64,
    pub lr_codec: f64,
    pub plateau: Plateau,
    pub early: Plateau,
    pub best_val: f64,
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
    pub history: Vec<EpochRecord>,
}

/// What a step of training reports.
pub enum Progress<'a> {
    Epoch { epoch: usize, of: usize, phase: u8 },
    Step { done: usize, of: usize, loss: f64 },
    EpochDone(&'a EpochRecord),
}

pub struct TrainOutcome {
    pub model: SafePitCm,
    pub state: TrainState,
    /// Epochs already done when this call started (0 for a fresh run); equal to
    /// `state.epochs_done` when a finished run was resumed and nothing was trained.
    pub resumed_at: usize,
}

/// The files a training run writes into its folder.
fn is_run_file(name: &str) -> bool {
    name.starts_with("ckpt-")
        || (name.starts_with('.') && name.contains(".tmp-"))
        || matches!(
            name,
            "LATEST"
                | "model.bpk"
                | "config.toml"
                | "history.csv"
                | "training_curves.png"
                | "training_curves.svg"
        )
}

/// Remove a previous run from `dir` (for `train --overwrite`): only the files a run
/// writes, so anything else the user keeps there survives.
pub fn clear_run(dir: &Path) -> Result<(), TrainError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let _lock = safe_data::atomic::lock_dir(dir).map_err(TrainError::Io)?;
    let rd = std::fs::read_dir(dir).map_err(|e| ck_err(dir, e))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if is_run_file(&name) {
            let p = e.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|err| ck_err(&p, err))?;
        }
    }
    Ok(())
}

fn ck_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

fn write_text_atomic(path: &Path, text: &str) -> Result<(), TrainError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))
}

/// The checkpoint folder named by `dir/LATEST`, if any.
pub fn latest_checkpoint(dir: &Path) -> Option<PathBuf> {
    let name = std::fs::read_to_string(dir.join("LATEST")).ok()?;
    let p = dir.join(name.trim());
    p.is_dir().then_some(p)
}

/// Adam for the estimator and Adam for the encoder and decoder (two learning rates).
pub(crate) struct Optimisers {
    pub(crate) est: ModuleOptimizer,
    pub(crate) codec: ModuleOptimizer,
}

impl Optimisers {
    pub(crate) fn fresh(cfg: &Config) -> Optimisers {
        let adam = AdamConfig::new().with_epsilon(cfg.train.adam_epsilon);
        Optimisers {
            est: adam.init(),
            codec: adam.init(),
        }
    }
}

fn new_optimisers(cfg: &Config) -> Optimisers {
    Optimisers::fresh(cfg)
}

fn save_checkpoint(
    dir: &Path,
    epoch: usize,
    model: &SafePitCm,
    best: &SafePitCm,
    opt: &Optimisers,
    st: &TrainState,
) -> Result<(), TrainError> {
    let name = format!("ckpt-{epoch:06}");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| ck_err(&tmp, e))?;
    model
        .clone()
        .save_file(tmp.join("model.bpk"))
        .map_err(|e| ck_err(&tmp, e))?;
    best.clone()
        .save_file(tmp.join("best.bpk"))
        .map_err(|e| ck_err(&tmp, e))?;
    opt.est
        .save(tmp.join("opt_estimator.bpk"))
        .map_err(|e| ck_err(&tmp, e))?;
    opt.codec
        .save(tmp.join("opt_codec.bpk"))
        .map_err(|e| ck_err(&tmp, e))?;
    let state = serde_json::to_string_pretty(st).map_err(|e| ck_err(&tmp, e))?;
    std::fs::write(tmp.join("state.json"), state).map_err(|e| ck_err(&tmp, e))?;
    let dest = dir.join(&name);
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tmp, &dest).map_err(|e| ck_err(&dest, e))?;
    write_text_atomic(&dir.join("LATEST"), &name)?;
    // Older checkpoints are no longer named anywhere.
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("ckpt-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Load a model from burnpack bytes (an embedded model) into a fresh model of `cfg`.
pub fn load_model_bytes(bytes: &[u8], cfg: &Config, dev: &Device) -> Result<SafePitCm, String> {
    let fresh = crate::model::with_burn_rng(dev, 0, || SafePitCm::new(&cfg.model, dev));
    let record =
        burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| format!("cannot read the embedded model: {e}"))?;
    fresh
        .try_load_record(record)
        .map_err(|e| format!("cannot load the embedded model: {e}"))
}

/// Load a model from a burnpack file into a fresh model of `cfg`, with a clear error for a
/// corrupt file or one written for another architecture.
pub fn load_model(path: &Path, cfg: &Config, dev: &Device) -> Result<SafePitCm, TrainError> {
    if !path.is_file() {
        return Err(ck_err(path, "file not found"));
    }
    let fresh = crate::model::with_burn_rng(dev, 0, || SafePitCm::new(&cfg.model, dev));
    fresh.try_load_file(path).map_err(|e| {
        ck_err(
            path,
            format!(
                "cannot load model (corrupt file, or written for another model configuration): {e}"
            ),
        )
    })
}

fn load_checkpoint(
    ck: &Path,
    cfg: &Config,
    dev: &Device,
) -> Result<(SafePitCm, SafePitCm, Optimisers, TrainState), TrainError> {
    let model = load_model(&ck.join("model.bpk"), cfg, dev)?;
    let best = load_model(&ck.join("best.bpk"), cfg, dev)?;
    let o = new_optimisers(cfg);
    let est = o
        .est
        .load(ck.join("opt_estimator.bpk"))
        .map_err(|e| ck_err(ck, format!("optimiser state: {e}")))?;
    let codec = o
        .codec
        .load(ck.join("opt_codec.bpk"))
        .map_err(|e| ck_err(ck, format!("optimiser state: {e}")))?;
    let st: TrainState = std::fs::read_to_string(ck.join("state.json"))
        .map_err(|e| ck_err(ck, e))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| ck_err(&ck.join("state.json"), e)))?;
    Ok((model, best, Optimisers { est, codec }, st))
}

fn rng_for(seed: u64, epoch: usize) -> rand_chacha::ChaCha8Rng {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(epoch as u64 + 1);
    r
}

/// A normalised video as an 8-bit camera would record it: half the time through a random
/// gamma curve (0.7..1.4), then quantised to 256 levels over its range, and normalised
/// again (zero mean, unit standard deviation, as the estimator's inputs are).
fn camera_view(frames: &[f32], rng: &mut impl Rng) -> Vec<f32> {
    let (lo, hi) = frames
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let span = (hi - lo).max(f32::MIN_POSITIVE);
    let gamma: f32 = if rng.random::<bool>() {
        (rng.random_range(0.7f32.ln()..1.4f32.ln())).exp()
    } else {
        1.0
    };
    let q: Vec<f32> = frames
        .iter()
        .map(|&x| (((x - lo) / span).clamp(0.0, 1.0).powf(gamma) * 255.0).round())
        .collect();
    let n = q.len() as f64;
    let mean = q.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = q.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / var.sqrt().max(f64::MIN_POSITIVE);
    q.iter()
        .map(|&x| ((x as f64 - mean) * inv) as f32)
        .collect()
}

/// Phase-1 epoch: estimator only, fused pass, augmented views. Returns the mean loss.
fn phase1_epoch(
    cfg: &Config,
    model: &mut SafePitCm,
    opt: &mut Optimisers,
    lr: f64,
    train: &[TrainVideo],
    epoch: usize,
    progress: &mut dyn FnMut(Progress),
) -> f64 {
    let mut rng = rng_for(cfg.train.seed, epoch);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    let plain = Device::flex();
    let p = model.estimator.pool_size();
    let (mut total, mut n) = (0.0, 0usize);
    let batches: Vec<&[usize]> = order.chunks(cfg.train.batch_videos).collect();
    for (bi, batch) in batches.iter().enumerate() {
        let host = HostEstimator::from_module(&model.estimator);
        let mut acc: Option<HostGrads> = None;
        for &i in batch.iter() {
            let v = &train[i];
            let camera = (cfg.train.camera_augment > 0.0
                && rng.random::<f64>() < cfg.train.camera_augment)
                .then(|| camera_view(&v.frames, &mut rng));
            let frames = camera.as_deref().unwrap_or(&v.frames);
            let pooled = if cfg.train.augment {
                let s = Symmetry::random(&mut rng, v.grid.nx, v.grid.ny, v.isotropic());
                pool_frames(frames, v.t, v.grid.nx, v.grid.ny, p, &s)
            } else if camera.is_some() {
                pool_frames(frames, v.t, v.grid.nx, v.grid.ny, p, &Symmetry::IDENTITY)
            } else {
                v.pooled.clone()
            };
            let feats = match &camera {
                Some(c) => v.features_of_latent(c),
                None => v.features_from(&v.log_e),
            };
            let (y, cache) = host.forward(&pooled, feats.as_deref(), v.t);
            let unit = v.alpha_unit();
            let a = y as f64 * unit;
            let lp = v.loss.eval(a);
            let (mut l, mut g) = alpha_objective(lp, a, &cfg.loss, v.alpha_abs);
            if cfg.loss.field_supervised > 0.0 {
                let (ls, gs) = field_supervised_phase1(lp, &cfg.loss);
                l += ls;
                g = (g + gs).clamp(-ALPHA_GRAD_CLIP, ALPHA_GRAD_CLIP);
            }
            total += l;
            n += 1;
            let gr = host.backward(&cache, (g * unit / batch.len() as f64) as f32);
            acc = Some(match acc {
                None => gr,
                Some(x) => x.plus(gr),
            });
        }
        if let Some(gr) = acc {
            let gp = gr.into_params(&model.estimator, &plain);
            model.estimator = opt.est.step(lr, model.estimator.clone(), gp);
        }
        progress(Progress::Step {
            done: bi + 1,
            of: batches.len(),
            loss: total / n.max(1) as f64,
        });
    }
    total / n.max(1) as f64
}

/// Per-frame estimator inputs of a video's latent during phase 2, refreshed window by
/// window so the estimator always sees the whole video.
pub(crate) struct Phase2Cache {
    pub(crate) pooled: Vec<f32>,
    pub(crate) log_e: Vec<f32>,
}

impl Phase2Cache {
    pub(crate) fn of(model: &SafePitCm, v: &TrainVideo, p: usize) -> Phase2Cache {
        let lat = latent_of(model, v);
        let pooled = pool_frames(&lat, v.t, v.grid.nx, v.grid.ny, p, &Symmetry::IDENTITY);
        let log_e = if v.bands > 0 {
            v.log_energies_of_latent(&lat)
        } else {
            Vec::new()
        };
        Phase2Cache { pooled, log_e }
    }
}

/// The SAFE layer settings of a video.
fn spec_of(cfg: &Config, v: &TrainVideo) -> SafeSpec {
    let kernel: Kernel = cfg.train.kernel.parse().unwrap_or(Kernel::Spectral);
    SafeSpec {
        dx: v.grid.dx,
        dy: v.grid.dy,
        dt_save: v.dt_save,
        op: v.prep.spec,
        kernel,
    }
}

/// One phase-2 step on frames `[start, start+w)` of a video: full autodiff through the
/// encoder, estimator, SAFE layer and decoder. `cache` holds the pooled latents of the
/// video's other frames. Returns the step's loss.
#[allow(clippy::too_many_arguments)]
pub(crate) fn phase2_step(
    cfg: &Config,
    model: &mut SafePitCm,
    opt: &mut Optimisers,
    lrs: (f64, f64),
    v: &TrainVideo,
    start: usize,
    w: usize,
    cache: &mut Phase2Cache,
    dev: &Device,
) -> f64 {
    let (nx, ny) = (v.grid.nx, v.grid.ny);
    let n = nx * ny;
    let p = model.estimator.pool_size();
    let pp = p * p;
    let win = &v.frames[start * n..(start + w) * n];
    let x = Tensor::<4>::from_data(TensorData::new(win.to_vec(), [w, 1, nx, ny]), dev);
    let f = model.encoder.forward(x.clone());
    let pooled_w = model.estimator.pool(f.clone()); // [w, 1, p, p]
    // Band features of the fresh window (detached: a constant input), the rest cached.
    let bands = if v.bands > 0 {
        let fw = to_vec(f.clone().inner());
        let le = v.log_energies_of_latent(&fw);
        cache.log_e[start * v.bands..(start + w) * v.bands].copy_from_slice(&le);
        let feats = v.features_from(&cache.log_e).unwrap_or_default();
        let width = feats.len() / v.t;
        Some(Tensor::<2>::from_data(
            TensorData::new(feats, [v.t, width]),
            dev,
        ))
    } else {
        None
    };
    let cache = &mut cache.pooled;
    // The estimator sees every frame: cached pooled latents around the fresh window.
    let pooled_all = if w == v.t {
        pooled_w.clone()
    } else {
        let before = Tensor::<4>::from_data(
            TensorData::new(cache[..start * pp].to_vec(), [start, 1, p, p]),
            dev,
        );
        let after_n = v.t - start - w;
        let after = Tensor::<4>::from_data(
            TensorData::new(cache[(start + w) * pp..].to_vec(), [after_n, 1, p, p]),
            dev,
        );
        let mut parts = Vec::new();
        if start > 0 {
            parts.push(before);
        }
        parts.push(pooled_w.clone());
        if after_n > 0 {
            parts.push(after);
        }
        Tensor::cat(parts, 0)
    };
    let a = model
        .estimator
        .forward_pooled(pooled_all, bands, 1, v.t)
        .mul_scalar(v.alpha_unit());
    let f3: Tensor<3> = f.clone().reshape([w, nx, ny]);
    let spec = spec_of(cfg, v);
    let pred = safe_propagate(
        f3.clone().slice_dim(0, 0..w - 1),
        a.clone().expand([w - 1]),
        &spec,
    );
    // The target through the operator at |alpha| = 0 (the low-pass of open continuum
    // windows; the identity elsewhere).
    let next = f3.slice_dim(0, 1..w);
    let target = if SafeOperator::filter_order(spec.op) > 0 {
        let zero = Tensor::<1>::zeros([w - 1], dev);
        safe_propagate(next, zero, &spec)
    } else {
        next
    };
    let lw = &cfg.loss;
    // L_sup (paper, after Eq. 12): the propagated latent against the next frame of the
    // ground-truth field (the normalised video), on the pixels the operator can predict.
    let l_sup = (lw.field_supervised > 0.0).then(|| {
        let u_next: Tensor<3> = x.clone().reshape([w, nx, ny]).slice_dim(0, 1..w);
        safe_loss_masked(pred.clone(), u_next, v.margins).mul_scalar(lw.field_supervised)
    });
    let l_phys = safe_loss_masked(pred, target, v.margins);
    let vhat = model.decoder.forward(f.clone());
    let mut total = l_phys.mul_scalar(lw.phys)
        + mse(vhat, x.clone()).mul_scalar(lw.recon)
        + mse(f, x).mul_scalar(lw.identity)
        + bounds_loss(a.clone(), lw.alpha_min, lw.alpha_max).mul_scalar(lw.bounds);
    if let Some(l) = l_sup {
        total = total + l;
    }
    if let (Some(t), true) = (v.alpha_abs, lw.alpha_supervised > 0.0) {
        total = total
            + a.sub_scalar(t)
                .powi_scalar(2)
                .mul_scalar(lw.alpha_supervised);
    }
    let loss: f64 = total.clone().into_scalar::<f64>();
    let mut grads = total.backward();
    let g_est = GradientsParams::from_module(&mut grads, &model.estimator);
    let g_enc = GradientsParams::from_module(&mut grads, &model.encoder);
    let g_dec = GradientsParams::from_module(&mut grads, &model.decoder);
    // Refresh the cache with the window's (detached) pooled latents.
    let fresh = to_vec(pooled_w.inner());
    cache[start * pp..(start + w) * pp].copy_from_slice(&fresh);
    model.estimator = opt.est.step(lrs.0, model.estimator.clone(), g_est);
    model.encoder = opt.codec.step(lrs.1, model.encoder.clone(), g_enc);
    model.decoder = opt.codec.step(lrs.1, model.decoder.clone(), g_dec);
    loss
}

#[allow(clippy::too_many_arguments)]
fn phase2_epoch(
    cfg: &Config,
    model: &mut SafePitCm,
    opt: &mut Optimisers,
    lrs: (f64, f64),
    train: &[TrainVideo],
    caches: &mut [Phase2Cache],
    epoch: usize,
    dev: &Device,
    progress: &mut dyn FnMut(Progress),
) -> f64 {
    let mut rng = rng_for(cfg.train.seed, epoch);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    let steps = order.len() * cfg.train.phase2_steps_per_video;
    let (mut total, mut done) = (0.0, 0usize);
    for &i in &order {
        let v = &train[i];
        for _ in 0..cfg.train.phase2_steps_per_video {
            let w = if cfg.train.phase2_window == 0 {
                v.t
            } else {
                cfg.train.phase2_window.min(v.t)
            };
            let start = if w < v.t {
                rng.random_range(0..=v.t - w)
            } else {
                0
            };
            total += phase2_step(cfg, model, opt, lrs, v, start, w, &mut caches[i], dev);
            done += 1;
            progress(Progress::Step {
                done,
                of: steps,
                loss: total / done as f64,
            });
        }
    }
    total / done.max(1) as f64
}

/// Latent of a whole video with the current (frozen, eval-mode) encoder.
pub fn latent_of(model: &SafePitCm, v: &TrainVideo) -> Vec<f32> {
    let enc = model.encoder.valid();
    if enc.is_identity() {
        return v.frames.clone();
    }
    let x = Tensor::<4>::from_data(
        TensorData::new(v.frames.clone(), [v.t, 1, v.grid.nx, v.grid.ny]),
        &Device::flex(),
    );
    to_vec(enc.forward(x))
}

/// Validation: `(loss, SAFE loss, MAE of |alpha|)` over the videos, with the model in eval
/// mode on whole videos.
pub fn validate(cfg: &Config, model: &SafePitCm, val: &[TrainVideo]) -> (f64, f64, Option<f64>) {
    if val.is_empty() {
        return (f64::NAN, f64::NAN, None);
    }
    let host = HostEstimator::from_module(&model.estimator);
    let p = model.estimator.pool_size();
    let identity = model.encoder.valid().is_identity() && model.decoder.valid().is_identity();
    let lw = &cfg.loss;
    let (mut loss, mut safe, mut err, mut n_err) = (0.0, 0.0, 0.0, 0usize);
    for v in val {
        let (a, l_safe, extra) = if identity {
            let (a, _) = host.forward(&v.pooled, v.features_from(&v.log_e).as_deref(), v.t);
            let a = a as f64 * v.alpha_unit();
            (a, v.loss.eval(a).loss, 0.0)
        } else {
            let lat = latent_of(model, v);
            let pooled = pool_frames(&lat, v.t, v.grid.nx, v.grid.ny, p, &Symmetry::IDENTITY);
            let (a, _) = host.forward(&pooled, v.features_of_latent(&lat).as_deref(), v.t);
            let a = a as f64 * v.alpha_unit();
            let loss = v.loss_of_latent(&lat);
            let dec = model.decoder.valid();
            let x = Tensor::<4>::from_data(
                TensorData::new(lat.clone(), [v.t, 1, v.grid.nx, v.grid.ny]),
                &Device::flex(),
            );
            let rec = to_vec(dec.forward_frozen(x));
            let n = v.frames.len() as f64;
            let l_rec = rec
                .iter()
                .zip(&v.frames)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / n;
            let l_id = lat
                .iter()
                .zip(&v.frames)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / n;
            (a, loss.eval(a).loss, lw.recon * l_rec + lw.identity * l_id)
        };
        let (b, _) = bounds_value(a, lw.alpha_min, lw.alpha_max);
        loss += lw.phys * l_safe + lw.bounds * b + extra;
        // The supervised terms count too (a model trained on them alone is judged by them).
        if let Some(t) = v.alpha_abs {
            loss += lw.alpha_supervised * (a - t).powi(2);
            if lw.log_alpha_supervised > 0.0 && a > 0.0 {
                loss += lw.log_alpha_supervised * (a / t).ln().powi(2);
            }
        }
        safe += l_safe;
        if let Some(t) = v.alpha_abs {
            err += (a - t).abs();
            n_err += 1;
        }
    }
    let n = val.len() as f64;
    (loss / n, safe / n, (n_err > 0).then(|| err / n_err as f64))
}

/// Train (or resume) into `dir`. The resolved configuration is written to
/// `dir/config.toml`; resuming requires the same configuration.
pub fn train(
    cfg: &Config,
    train: &[TrainVideo],
    val: &[TrainVideo],
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainOutcome, TrainError> {
    cfg.validate().map_err(TrainError::Config)?;
    if train.is_empty() {
        return Err(TrainError::NoData);
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Io(format!("{}: {e}", dir.display())))?;
    let _lock = safe_data::atomic::lock_dir(dir).map_err(TrainError::Io)?;
    // Debris of a killed checkpoint write.
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().contains(".tmp-") {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
    let cfg_path = dir.join("config.toml");
    let dev = Device::flex().autodiff();
    let (mut model, mut best, mut opt, mut st) = match (resume, latest_checkpoint(dir)) {
        (true, Some(ck)) => {
            let saved = std::fs::read_to_string(&cfg_path).map_err(|e| ck_err(&cfg_path, e))?;
            let saved = Config::from_toml(&saved).map_err(|e| ck_err(&cfg_path, e))?;
            let diffs = saved.differences(cfg);
            if !diffs.is_empty() {
                return Err(ck_err(
                    &cfg_path,
                    format!(
                        "the run being resumed was trained with another configuration ({}; the run's value first). Resume with the run's settings (drop the options that change them), or start again with --overwrite",
                        diffs.join(", ")
                    ),
                ));
            }
            let (m, b, o, s) = load_checkpoint(&ck, cfg, &dev)?;
            (m, b, o, s)
        }
        (true, None) | (false, _) => {
            if !resume && latest_checkpoint(dir).is_some() {
                return Err(TrainError::Io(format!(
                    "{} already holds a training run (pass --resume to continue it, --overwrite to replace it, or choose another --out)",
                    dir.display()
                )));
            }
            write_text_atomic(&cfg_path, &cfg.to_toml())?;
            let m = SafePitCm::seeded(&cfg.model, &dev, cfg.train.seed);
            let st = TrainState {
                epochs_done: 0,
                lr_estimator: cfg.train.lr_estimator,
                lr_codec: cfg.train.lr_codec,
                plateau: Plateau::new(),
                early: Plateau::new(),
                best_val: f64::MAX,
                best_epoch: None,
                stopped_early: false,
                history: Vec::new(),
            };
            (m.clone(), m, new_optimisers(cfg), st)
        }
    };
    let resumed_at = st.epochs_done;
    let p1 = cfg.phase1_epochs();
    let mut caches: Vec<Phase2Cache> = Vec::new();
    while st.epochs_done < cfg.train.epochs && !st.stopped_early {
        let epoch = st.epochs_done;
        let phase: u8 = if epoch < p1 { 1 } else { 2 };
        progress(Progress::Epoch {
            epoch,
            of: cfg.train.epochs,
            phase,
        });
        let t0 = std::time::Instant::now();
        if phase == 2 && epoch == p1 {
            // Plateau tracking restarts for the new phase; early stopping counts epochs
            // without beating the best validation loss of the whole run so far.
            st.plateau = Plateau::new();
            st.early = Plateau {
                best: st.best_val,
                bad: 0,
            };
        }
        let train_loss = if phase == 1 {
            phase1_epoch(
                cfg,
                &mut model,
                &mut opt,
                st.lr_estimator,
                train,
                epoch,
                progress,
            )
        } else {
            if caches.is_empty() {
                let p = model.estimator.pool_size();
                caches = train
                    .iter()
                    .map(|v| Phase2Cache::of(&model, v, p))
                    .collect();
            }
            phase2_epoch(
                cfg,
                &mut model,
                &mut opt,
                (st.lr_estimator, st.lr_codec),
                train,
                &mut caches,
                epoch,
                &dev,
                progress,
            )
        };
        let (val_loss, val_safe, val_mae) =
            validate(cfg, &model, if val.is_empty() { train } else { val });
        if st.plateau.step(val_loss, cfg.train.plateau_patience) {
            st.lr_estimator *= cfg.train.plateau_factor;
            st.lr_codec *= cfg.train.plateau_factor;
        }
        // One validation loss across both phases (recon and identity terms are exactly 0
        // while the codec is the identity), so phase 2 replaces the phase-1 model only if
        // it is better on validation.
        if val_loss < st.best_val || st.best_epoch.is_none() {
            st.best_val = val_loss;
            st.best_epoch = Some(epoch);
            best = model.clone();
        }
        if phase == 2 && st.early.stop(val_loss, cfg.train.early_stop_patience) {
            st.stopped_early = true;
        }
        let rec = EpochRecord {
            epoch,
            phase,
            train_loss,
            val_loss,
            val_safe,
            val_mae,
            lr_estimator: st.lr_estimator,
            lr_codec: st.lr_codec,
            seconds: t0.elapsed().as_secs_f64(),
        };
        st.history.push(rec.clone());
        st.epochs_done += 1;
        save_checkpoint(dir, epoch, &model, &best, &opt, &st)?;
        progress(Progress::EpochDone(&rec));
    }
    let final_path = dir.join("model.bpk");
    let tmp = dir.join(format!(".model.bpk.tmp-{}.bpk", std::process::id()));
    best.clone().save_file(&tmp).map_err(|e| ck_err(&tmp, e))?;
    std::fs::rename(&tmp, &final_path).map_err(|e| ck_err(&final_path, e))?;
    Ok(TrainOutcome {
        model: best,
        state: st,
        resumed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small periodic five-point video of `t` frames (the paper's operator, exact).
    fn tiny_video(alpha: f64, t: usize, seed: u64) -> TrainVideo {
        use rand::Rng;
        let grid = Grid::new(16, 16, 1.0, 1.0).unwrap();
        let spec = OperatorSpec::PAPER;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let u0: Vec<f64> = (0..grid.len()).map(|_| rng.random::<f64>()).collect();
        let f: Vec<f32> = safe_physics::simulate::evolve_exact(&u0, &grid, spec, alpha, 0.25, t)
            .into_iter()
            .map(|x| x as f32)
            .collect();
        let frames: Vec<&[f32]> = f.chunks_exact(grid.len()).collect();
        TrainVideo::new(
            "tiny",
            &frames,
            grid,
            0.25,
            spec,
            Some(alpha),
            &ModelConfig::default(),
        )
    }

    #[test]
    fn the_supervised_field_loss_changes_phase_two() {
        let v = tiny_video(0.3, 6, 1);
        let dev = Device::flex().autodiff();
        let run = |w_sup: f64| -> Vec<f32> {
            let mut cfg = Config::for_profile(crate::config::Profile::Paper);
            cfg.loss.field_supervised = w_sup;
            let mut model = SafePitCm::seeded(&cfg.model, &dev, 7);
            let mut opt = Optimisers::fresh(&cfg);
            let mut cache = Phase2Cache::of(&model, &v, model.estimator.pool_size());
            for _ in 0..3 {
                phase2_step(
                    &cfg,
                    &mut model,
                    &mut opt,
                    (5e-3, 1e-3),
                    &v,
                    0,
                    v.t,
                    &mut cache,
                    &dev,
                );
            }
            latent_of(&model, &v)
        };
        let (plain, sup) = (run(0.0), run(10.0));
        let diff = plain
            .iter()
            .zip(&sup)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = plain
            .iter()
            .map(|&a| (a as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        // Three codec steps apart (Adam at 1e-3): a difference well above float rounding.
        assert!(
            diff > 1e-5 * norm,
            "L_sup left the encoder unchanged ({diff} of {norm})"
        );
        // And it is a no-op at weight 0: two plain runs agree exactly.
        assert_eq!(plain, run(0.0));
    }

    #[test]
    fn early_stopping_waits_the_patience_and_the_plateau_one_epoch_more() {
        let (mut early, mut plateau) = (Plateau::new(), Plateau::new());
        assert!(!early.stop(1.0, 5) && !plateau.step(1.0, 5));
        for bad in 1..=5 {
            assert_eq!(early.stop(2.0, 5), bad == 5, "bad epoch {bad}");
            assert!(!plateau.step(2.0, 5), "bad epoch {bad}");
        }
        assert!(plateau.step(2.0, 5));
        // An improvement resets the count.
        let mut e = Plateau::new();
        for v in [1.0, 2.0, 2.0, 0.5, 2.0, 2.0, 2.0, 2.0] {
            assert!(!e.stop(v, 5));
        }
    }

    #[test]
    fn camera_view_is_quantised_and_normalised() {
        let frames: Vec<f32> = (0..4000).map(|i| ((i as f32) * 0.013).sin()).collect();
        let mut rng = rng_for(3, 0);
        for _ in 0..4 {
            let v = camera_view(&frames, &mut rng);
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
                "{mean} {var}"
            );
            let mut levels: Vec<f32> = v.clone();
            levels.sort_by(f32::total_cmp);
            levels.dedup();
            assert!(
                levels.len() <= 256 && levels.len() > 100,
                "{}",
                levels.len()
            );
        }
    }
}
