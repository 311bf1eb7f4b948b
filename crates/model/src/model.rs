//! The SAFE-PIT-CM model: encoder, attention estimator, SAFE layer, decoder.

use crate::codec::ResidualField;
use crate::estimator::Estimator;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Architecture sizes (paper 3.1 defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Encoder/decoder intermediate channels `c`.
    pub channels: usize,
    /// Convolution blocks in the encoder and in the decoder.
    pub blocks: usize,
    /// Estimator width `d_model`.
    pub d_model: usize,
    pub heads: usize,
    /// Hidden width of the estimator's two-layer head.
    pub head_hidden: usize,
    /// Side of the adaptive pooling grid.
    pub pool: usize,
    /// Spectral bands fed to the estimator beside the pooled frames (0 = the paper's
    /// estimator; see `bands.rs`).
    pub bands: usize,
    /// What the estimator's output means: `physical` (the paper's: `|alpha|` itself) or
    /// `rate` (unit-free: a factor on the video's own band-rate prior, `bands.rs`), which
    /// lets one model serve any grid spacing, frame interval, size and intensity scale.
    pub units: Units,
    /// In `rate` units, the prior the output is a factor on: `bands` (the band decays'
    /// weighted median) or `weak-form` (the weak-form estimate where it is valid, with the
    /// band prior's ratio to it as an input; `rate.rs`).
    pub prior: RatePrior,
    /// In `rate` units, the soft threshold on the amortised output's logarithm
    /// (`infer::shrunk`; 0 = none). `train --profile universal` calibrates it.
    pub shrink: f64,
}

/// The prior of `rate` units ([`ModelConfig::prior`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RatePrior {
    #[default]
    Bands,
    WeakForm,
}

/// Units of the estimator's output ([`ModelConfig::units`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    #[default]
    Physical,
    Rate,
}

impl ModelConfig {
    /// Band features per band (`rate` adds the band's height over the video's noise floor,
    /// the weak-form prior two video-wide inputs repeated per band).
    pub fn features_per_band(&self) -> usize {
        match (self.units, self.prior) {
            (Units::Physical, _) => 2,
            (Units::Rate, RatePrior::Bands) => 3,
            (Units::Rate, RatePrior::WeakForm) => 5,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            channels: 16,
            blocks: 3,
            d_model: 32,
            heads: 4,
            head_hidden: 32,
            pool: 4,
            bands: 0,
            units: Units::Physical,
            prior: RatePrior::Bands,
            shrink: 0.0,
        }
    }
}

impl ModelConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.shrink >= 0.0 && self.shrink.is_finite()) {
            return Err(format!("model.shrink must be >= 0, got {}", self.shrink));
        }
        if self.channels == 0 || self.blocks == 0 || self.pool == 0 || self.head_hidden == 0 {
            return Err("model sizes must be >= 1".into());
        }
        if self.d_model < 2
            || !self.d_model.is_multiple_of(2)
            || self.heads == 0
            || !self.d_model.is_multiple_of(self.heads)
        {
            return Err(format!(
                "d_model ({}) must be even and divisible by heads ({})",
                self.d_model, self.heads
            ));
        }
        Ok(())
    }
}

#[derive(Module, Debug)]
pub struct SafePitCm {
    pub encoder: ResidualField,
    pub estimator: Estimator,
    pub decoder: ResidualField,
}

/// Touch every parameter so lazily initialised weights are drawn now, in a fixed order,
/// right after the device was seeded.
struct Touch;
impl ModuleVisitor for Touch {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let _ = p.val();
    }
}

impl SafePitCm {
    pub fn new(cfg: &ModelConfig, dev: &Device) -> SafePitCm {
        let m = SafePitCm {
            encoder: ResidualField::new(cfg.channels, cfg.blocks, dev),
            estimator: Estimator::new(
                cfg.d_model,
                cfg.heads,
                cfg.head_hidden,
                cfg.pool,
                cfg.bands * cfg.features_per_band(),
                dev,
            ),
            decoder: ResidualField::new(cfg.channels, cfg.blocks, dev),
        };
        m.visit(&mut Touch);
        m
    }

    /// A freshly initialised model with a reproducible draw of the weights.
    pub fn seeded(cfg: &ModelConfig, dev: &Device, seed: u64) -> SafePitCm {
        with_burn_rng(dev, seed, || SafePitCm::new(cfg, dev))
    }
}

/// Force lazily initialised parameters to be drawn now.
pub fn initialise<M: Module>(m: &M) {
    m.visit(&mut Touch);
}

static BURN_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Seed burn's random generator and run `f` while no other thread can draw from it.
///
/// burn keeps one process-wide generator and initialises parameters lazily from it, so two
/// models built on different threads (zero-shot runs videos in parallel) would otherwise
/// interleave their draws and a seed would not fix the weights. `f` must initialise
/// everything it needs (see [`initialise`]) before returning.
pub fn with_burn_rng<T>(dev: &Device, seed: u64, f: impl FnOnce() -> T) -> T {
    let _guard = BURN_RNG.lock().unwrap_or_else(|p| p.into_inner());
    dev.seed(seed);
    f()
}

/// Trainable parameters (weights and biases; BatchNorm running statistics are buffers and
/// not counted, unlike burn's `num_params`).
pub fn trainable_params<M: Module>(m: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if p.is_require_grad() {
                self.0 += p.shape().num_elements();
            }
        }
    }
    let mut c = Count(0);
    m.visit(&mut c);
    c.0
}
