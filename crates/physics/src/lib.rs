//! Physics core of SAFE-PIT-CM (paper sections 2.1-2.4, 2.7 and Appendix A).
//!
//! Everything here is plain Rust with no deep-learning dependency: it is the exact,
//! fast reference the neural model is checked against.
//!
//! Conventions (docs/conventions.md): a video is `[T, Nx, Ny]`, axis 1 has spacing `dx`,
//! axis 2 has spacing `dy`, and the SAFE operator only ever runs in the smoothing direction
//! with coefficient `|alpha|`.
//!
//! Where to look:
//! - [`operator`]: the SAFE operator as one value, boundary x discretisation x sub-steps
//!   ([`OperatorSpec`], [`SafeOperator`]), beside its literal reference
//!   (`operator/reference.rs`) and the conformance test binding them
//!   (`operator/conformance.rs`). Its building blocks each sit beside a naive oracle:
//!   [`laplacian`] (the stencil), [`fft2`] and [`dct2`] (the bases, unified in [`basis`]).
//! - [`loss`]: the SAFE loss as a function of `|alpha|` and the direct fit.
//! - [`batch`]: the operator over a batch of frames with its vector-Jacobian product (the
//!   kernels of the neural SAFE layer, and its gradient tests).
//! - [`select`]: deciding boundary, discretisation and direction from the data.
//! - [`stability`]: the von Neumann analysis of the paper's Table 3.
//! - [`initial`] and [`simulate`]: the Appendix-A generator and exact evolutions.
//! - [`weak_form`]: the classical weak-form (WSINDy-style) estimate, no boundary assumed.

pub mod basis;
pub mod batch;
pub mod dct2;
pub mod estimate;
pub mod fft2;
pub mod grid;
pub mod initial;
pub mod laplacian;
pub mod loss;
pub mod operator;
pub mod select;
pub mod simulate;
pub mod stability;
pub mod weak_form;

pub use grid::{Grid, GridError};
pub use loss::{FitOptions, FitResult, NoiseMode, NoiseModel, SafeLossCurve, fit_alpha};
pub use operator::{
    Boundary, Choice, KERNEL_TAIL, Laplacian, OperatorSpec, SafeOperator, SubSteps,
};

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

impl std::str::FromStr for Process {
    type Err = String;
    fn from_str(s: &str) -> Result<Process, String> {
        Process::parse(s)
            .ok_or_else(|| format!("'{s}' is not a process: use diffusion or mobility"))
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
