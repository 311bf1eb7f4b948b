//! What a SAFE operator is: boundary x Laplacian discretisation x sub-steps.
//!
//! Every mode (fit, zero-shot, the neural SAFE layer, training, test-time training, reproduce)
//! takes one [`OperatorSpec`] whole; nothing below assumes a particular boundary.

use std::fmt;
use std::str::FromStr;

/// What the operator assumes about the world outside the video's field of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Boundary {
    /// The paper's: the field wraps around (Fourier modes diagonalise the operator).
    Periodic,
    /// A sealed sample: no flux through the edges, modelled by the half-sample mirror
    /// `u[-1] = u[0]` (cell-centred walls; the type-II cosine transform diagonalises it).
    ZeroFlux,
    /// A window onto a larger sample: nothing is assumed outside the view. The operator runs
    /// on the mirrored window, and only pixels deep enough that the mirror cannot reach them
    /// within one frame interval take part in the loss (see [`crate::operator::SafeOperator::margins`]).
    Open,
}

/// The spatial discretisation of the Laplacian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Laplacian {
    /// The paper's five-point stencil (per axis `(u[i+1] - 2u[i] + u[i-1]) / h^2`).
    FivePoint,
    /// The continuous Laplacian on band-limited samples: per axis symbol `(theta/h)^2`.
    Continuum,
}

/// How many forward-Euler sub-steps make one frame interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubSteps {
    Finite(u32),
    /// The limit `N_sub -> inf`: the exact solution of the semi-discrete heat equation.
    Infinite,
}

/// One SAFE operator: boundary, discretisation and sub-steps. The frame interval and grid
/// spacing come with the video ([`crate::operator::SafeOperator::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OperatorSpec {
    pub boundary: Boundary,
    pub laplacian: Laplacian,
    pub n_sub: SubSteps,
}

impl OperatorSpec {
    /// The paper's operator: periodic five-point stencil, 50 sub-steps.
    pub const PAPER: OperatorSpec = OperatorSpec {
        boundary: Boundary::Periodic,
        laplacian: Laplacian::FivePoint,
        n_sub: SubSteps::Finite(50),
    };

    pub fn periodic_five_point(n_sub: SubSteps) -> OperatorSpec {
        OperatorSpec {
            n_sub,
            ..OperatorSpec::PAPER
        }
    }
}

impl fmt::Display for OperatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.boundary, self.laplacian, self.n_sub)
    }
}

impl FromStr for OperatorSpec {
    type Err = String;
    /// `BOUNDARY/LAPLACIAN/N_SUB`, as [`fmt::Display`] writes it.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() != 3 {
            return Err(format!(
                "invalid operator '{s}': expected BOUNDARY/LAPLACIAN/N_SUB, e.g. periodic/five-point/50"
            ));
        }
        Ok(OperatorSpec {
            boundary: parts[0].parse()?,
            laplacian: parts[1].parse()?,
            n_sub: parts[2].parse()?,
        })
    }
}

macro_rules! named_enum {
    ($t:ty, $what:literal, [$(($v:path, $name:literal $(, $alias:literal)*)),+]) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $($v => $name),+ }
            }
            pub const ALL: &'static [$t] = &[$($v),+];
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name $(| $alias)* => Ok($v),)+
                    _ => Err(format!(
                        concat!("invalid ", $what, " '{}': expected one of {}"),
                        s,
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
    };
}

named_enum!(
    Boundary,
    "boundary",
    [
        (Boundary::Periodic, "periodic"),
        (Boundary::ZeroFlux, "zero-flux", "zeroflux", "neumann"),
        (Boundary::Open, "open")
    ]
);
named_enum!(
    Laplacian,
    "Laplacian",
    [
        (
            Laplacian::FivePoint,
            "five-point",
            "fivepoint",
            "5-point",
            "stencil"
        ),
        (Laplacian::Continuum, "continuum", "continuous", "spectral")
    ]
);

impl fmt::Display for SubSteps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubSteps::Finite(n) => write!(f, "{n}"),
            SubSteps::Infinite => f.write_str("inf"),
        }
    }
}

impl FromStr for SubSteps {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "inf" || t == "infinity" || t == "exp" {
            return Ok(SubSteps::Infinite);
        }
        match t.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(SubSteps::Finite(n)),
            _ => Err(format!(
                "invalid sub-step count '{s}': expected a positive integer or 'inf'"
            )),
        }
    }
}

impl SubSteps {
    /// `dt_sub = dt_save / N_sub` (0 for the exponential limit).
    pub fn dt_sub(self, dt_save: f64) -> f64 {
        match self {
            SubSteps::Finite(n) => dt_save / n as f64,
            SubSteps::Infinite => 0.0,
        }
    }

    /// The sub-steps of `stride` frame intervals taken as one (the operator's power).
    pub fn times(self, stride: usize) -> SubSteps {
        match self {
            SubSteps::Finite(n) => {
                SubSteps::Finite((n as u64 * stride.max(1) as u64).min(u32::MAX as u64) as u32)
            }
            SubSteps::Infinite => SubSteps::Infinite,
        }
    }
}

/// A setting the user may leave to the data: `auto`, or a fixed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Choice<T> {
    Auto,
    Fixed(T),
}

impl<T: FromStr<Err = String>> FromStr for Choice<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            Ok(Choice::Auto)
        } else {
            T::from_str(s).map(Choice::Fixed)
        }
    }
}

impl<T: fmt::Display> fmt::Display for Choice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Auto => f.write_str("auto"),
            Choice::Fixed(v) => v.fmt(f),
        }
    }
}

impl<T: Copy> Choice<T> {
    pub fn fixed(self) -> Option<T> {
        match self {
            Choice::Auto => None,
            Choice::Fixed(v) => Some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &b in Boundary::ALL {
            assert_eq!(b.to_string().parse::<Boundary>(), Ok(b));
        }
        for &l in Laplacian::ALL {
            assert_eq!(l.to_string().parse::<Laplacian>(), Ok(l));
        }
        assert_eq!("Neumann".parse::<Boundary>(), Ok(Boundary::ZeroFlux));
        assert!(
            "wrap"
                .parse::<Boundary>()
                .unwrap_err()
                .contains("periodic, zero-flux, open")
        );
        let s = OperatorSpec {
            boundary: Boundary::Open,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        };
        assert_eq!(s.to_string(), "open/continuum/inf");
        assert_eq!(s.to_string().parse::<OperatorSpec>(), Ok(s));
        assert_eq!(OperatorSpec::PAPER.to_string(), "periodic/five-point/50");
        assert_eq!("auto".parse::<Choice<Boundary>>(), Ok(Choice::Auto));
        assert_eq!(
            "open".parse::<Choice<Boundary>>(),
            Ok(Choice::Fixed(Boundary::Open))
        );
    }

    #[test]
    fn parse_and_display_sub_steps() {
        assert_eq!("50".parse::<SubSteps>(), Ok(SubSteps::Finite(50)));
        assert_eq!("inf".parse::<SubSteps>(), Ok(SubSteps::Infinite));
        assert!("0".parse::<SubSteps>().is_err());
        assert!("-3".parse::<SubSteps>().is_err());
        assert!("many".parse::<SubSteps>().is_err());
        assert_eq!(SubSteps::Finite(7).to_string(), "7");
        assert_eq!(SubSteps::Finite(7).times(3), SubSteps::Finite(21));
        assert_eq!(SubSteps::Infinite.times(3), SubSteps::Infinite);
    }
}
