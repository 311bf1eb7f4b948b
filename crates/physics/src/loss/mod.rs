//! The SAFE loss (paper Eq. 9) of a latent video as a function of `|alpha|`, and the direct
//! fit that minimises it.
//!
//! - [`spectra`]: every frame in the basis of its boundary, computed once.
//! - [`curve`]: closed-form loss curves where the operator is diagonal (periodic, zero-flux).
//! - [`window`]: the masked loss of open windows, evaluated in pixels.
//! - [`noise`]: the measurement-noise model the loss is corrected for.
//! - [`fit`]: the 1-D minimisation and its result.
//! - [`reference`]: the loss by its literal definition, the oracle of the tests.

pub mod curve;
pub mod fit;
pub mod noise;
pub mod reference;
pub mod spectra;
pub mod window;

#[cfg(test)]
mod tests;

pub use curve::{LossPoint, NOISE_KEEP_RATIO, SafeLossCurve};
pub use fit::{FitError, FitOptions, FitResult, fit_alpha};
pub use noise::{MAX_NOISE_RHO, NoiseMode, NoiseModel, estimate_noise};
pub use spectra::VideoSpectra;
pub use window::{Coarse, WindowLoss, coarse_fit, fit_window, polish_fit};
