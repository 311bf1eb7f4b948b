//! Physics core of SAFE-PIT-CM (paper sections 2.1-2.4, 2.7 and Appendix A).
//!
//! Everything here is plain Rust with no deep-learning dependency: it is the exact,
//! fast reference the neural model is checked against.
//!
//! Conventions (DESIGN.md section 2): a video is `[T, Nx, Ny]`, axis 1 has spacing `dx`,
//! axis 2 has spacing `dy`, the Laplacian is the periodic five-point stencil, and the SAFE
//! operator only ever runs in the smoothing direction with coefficient `|alpha|`.
//!
//! Where to look:
//! - [`operator`]: the SAFE operator in its three forms (stencil, spectral, exponential),
//!   with [`laplacian`] and [`fft2`] as its building blocks, each beside a naive reference.
//! - [`stability`]: the von Neumann analysis of the paper's Table 3.
//! - [`initial`] and [`simulate`]: the Appendix-A generator.
//! - [`fit`]: the direct SAFE fit, the SAFE loss as a function of `|alpha|` alone.

pub mod batch;
pub mod fft2;
pub mod fit;
pub mod grid;
pub mod initial;
pub mod laplacian;
pub mod operator;
pub mod simulate;
pub mod stability;

pub use fit::{
    FitOptions, FitResult, NoiseModel, SafeLossCurve, estimate_noise, estimate_noise_var, fit_alpha,
};
pub use grid::{Grid, GridError};
pub use operator::SubSteps;

/// Which way a video evolves. The sign of `alpha` follows DESIGN.md: diffusion has
/// `alpha < 0` (the field smooths), mobility has `alpha > 0` (the field sharpens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Process {
    Diffusion,
    Mobility,
}

impl Process {
    /// Sign of the signed label `alpha = sign * |alpha|`.
    pub fn sign(self) -> f64 {
        match self {
            Process::Diffusion => -1.0,
            Process::Mobility => 1.0,
        }
    }

    /// Mobility videos are reversed in time so the SAFE operator runs in its stable
    /// (smoothing) direction; everything below that boundary is sign-free.
    pub fn needs_time_reversal(self) -> bool {
        matches!(self, Process::Mobility)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Process::Diffusion => "diffusion",
            Process::Mobility => "mobility",
        }
    }

    pub fn parse(s: &str) -> Option<Process> {
        match s.trim().to_ascii_lowercase().as_str() {
            "diffusion" => Some(Process::Diffusion),
            "mobility" => Some(Process::Mobility),
            _ => None,
        }
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
