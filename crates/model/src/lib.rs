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

/// Whether `dev` is (autodiff over) the CPU backend, where the custom ops and host kernels
/// run; other backends use burn tensor ops.
pub(crate) fn is_flex(dev: &burn::tensor::Device) -> bool {
    matches!(
        dev.clone().without_autodiff().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}
