//! The neural half of SAFE-PIT-CM on burn (paper sections 2.3-2.7): encoder and decoder,
//! the attention estimator, the SAFE layer (custom autodiff op), losses, zero-shot inference
//! and two-phase training.
//!
//! The physics core (`safe-physics`) is the reference every piece here is tested against.

pub mod codec;
pub mod estimator;
pub mod model;
pub mod safe_layer;

pub use burn;
pub use model::{ModelConfig, SafePitCm};
pub mod bands;
pub mod config;
pub mod fused;
pub mod infer;
pub mod loss;
pub mod pooling;
pub mod rate;
pub mod train;
pub mod zero_shot;
