//! The SAFE operator (paper Eq. 6, DESIGN section 2) as one family of values:
//! boundary x Laplacian discretisation x sub-steps ([`OperatorSpec`]).
//!
//! - [`spec`]: what an operator is, and the `auto` choices the commands accept.
//! - [`symbol`]: its eigenvalues per basis, the one-interval multiplier, the low-pass.
//! - [`safe`]: [`SafeOperator`], the planned operator every mode uses.
//! - [`reference`]: the literal sub-stepping and dense-transform oracles, and
//!   `conformance` (tests) binding the two for every form.

pub mod reference;
pub mod safe;
pub mod spec;
pub mod symbol;

#[cfg(test)]
mod conformance;

pub use safe::{KERNEL_TAIL, SafeOperator, kernel_depth};
pub use spec::{Boundary, Choice, Laplacian, OperatorSpec, SubSteps};
pub use symbol::{axis_mu, axis_theta, binomial, lambda_max, multiplier};
