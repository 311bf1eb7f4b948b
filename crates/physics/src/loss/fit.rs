//! The direct SAFE fit: minimise a SAFE loss over `|alpha|` alone.

use super::curve::{LossPoint, SafeLossCurve};
use crate::operator::SubSteps;
use rayon::prelude::*;

/// Options of the direct SAFE fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Search range for `|alpha|`; `None` covers von Neumann numbers `1e-5..1e4` per frame.
    pub alpha_range: Option<(f64, f64)>,
    /// Points per decade of the global scan that finds the basin (non-convex for unstable
    /// `N_sub`).
    pub scan_per_decade: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            alpha_range: None,
            scan_per_decade: 4,
        }
    }
}

/// Result of the direct SAFE fit of one video.
#[derive(Clone, Debug, PartialEq)]
pub struct FitResult {
    pub alpha_abs: f64,
    /// Standard error (sandwich over groups of modes, or over spatial blocks on open
    /// windows): covers noise and model error that differs between scales or places.
    pub stderr: f64,
    /// SAFE loss at the optimum (mean over pixels and frame pairs, no noise correction).
    pub safe_loss: f64,
    /// The noise-corrected loss at the optimum, and at `|alpha| = 0` (all the change).
    pub corrected_loss: f64,
    pub change_energy: f64,
    /// What the raw loss of a perfect model would be, from the noise estimate.
    pub noise_floor: f64,
    /// True when the optimum sits on (or within rounding of) the edge of the search range.
    pub at_bound: bool,
    pub range: (f64, f64),
    pub evaluations: usize,
    /// Effectively independent residual samples behind the loss (pixels x pairs, less what
    /// filtering and dropped modes take): the scale of the loss's statistical scatter.
    pub n_eff: f64,
    /// `L''` at the optimum (noise-corrected).
    pub curvature: f64,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error("video has {0} frame(s) after frame stepping; the SAFE loss needs at least 2")]
    TooFewFrames(usize),
    #[error("video has no spatial structure (constant frames): alpha is unidentifiable")]
    NoStructure,
    #[error("invalid alpha search range [{0}, {1}]")]
    BadRange(f64, f64),
    #[error("SAFE loss is not finite over the whole search range")]
    NotFinite,
    #[error(
        "the window is too small for an open boundary: the operator's reach over one frame interval exceeds a quarter of the frame even at the smallest |alpha| searched"
    )]
    WindowTooSmall,
}

/// The default search range: von Neumann numbers `1e-5 .. 1e4` per frame interval, and for
/// a noise-corrected loss with finite sub-steps no further than the stable range (the
/// correction is meaningful only there).
pub fn default_range(dt_save: f64, lambda_max: f64, n_sub: SubSteps, noisy: bool) -> (f64, f64) {
    let hi = 1e4 / (dt_save * lambda_max);
    let hi = match (noisy, n_sub) {
        (true, SubSteps::Finite(k)) => hi.min(2.0 * k as f64 / (dt_save * lambda_max)),
        _ => hi,
    };
    (1e-5 / (dt_save * lambda_max), hi)
}

pub fn check_range(r: Option<(f64, f64)>, default: (f64, f64)) -> Result<(f64, f64), FitError> {
    match r {
        Some((lo, hi)) => {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo) {
                return Err(FitError::BadRange(lo, hi));
            }
            Ok((lo, hi))
        }
        None => Ok(default),
    }
}

/// Minimise over `[lo, hi]`: a log-spaced global scan of `value` (the loss alone, which may
/// cost less than its derivatives; the loss has several basins when `N_sub` is unstable),
/// at least `min_points` points, then safeguarded Newton on `L'(a) = 0` with `f` inside the
/// best bracket (confirmed by `slope`, `L'` alone, which may also cost less), stopped at a relative step of `rel_tol` (precise to rounding at 1e-15,
/// because `L'` carries no large cancelling terms; a basin located for a later polish needs
/// less). Where the scan's best is on the range edge, golden section on `value`. Returns
/// `(a, at_bound, evaluations)`.
#[allow(clippy::too_many_arguments)]
pub fn minimise_1d_split(
    value: &(dyn Fn(f64) -> f64 + Sync),
    slope: &(dyn Fn(f64) -> f64 + Sync),
    f: &(dyn Fn(f64) -> LossPoint + Sync),
    lo: f64,
    hi: f64,
    per_decade: usize,
    min_points: usize,
    rel_tol: f64,
    parallel_scan: bool,
) -> Result<(f64, bool, usize), FitError> {
    let decades = (hi / lo).log10();
    let npts = ((decades * per_decade.max(2) as f64).ceil() as usize + 1).max(min_points.max(3));
    let grid: Vec<f64> = (0..npts)
        .map(|i| lo * (hi / lo).powf(i as f64 / (npts - 1) as f64))
        .collect();
    let scan: Vec<f64> = if parallel_scan {
        grid.par_iter().map(|&a| value(a)).collect()
    } else {
        grid.iter().map(|&a| value(a)).collect()
    };
    let mut evals = npts;
    let mut best = (f64::INFINITY, 0usize);
    for (i, &l) in scan.iter().enumerate() {
        if l.is_finite() && l < best.0 {
            best = (l, i);
        }
    }
    if !best.0.is_finite() {
        return Err(FitError::NotFinite);
    }
    let i = best.1;
    let (mut a_lo, mut a_hi) = (grid[i.saturating_sub(1)], grid[(i + 1).min(npts - 1)]);
    let mut a = grid[i];
    // The slope at the scan's best says on which side of it the minimum lies; the slope at
    // that side's neighbour confirms the sign-change bracket (one evaluation, not two).
    let mut p = f(a);
    evals += 1;
    let bracket = if p.d1 == 0.0 {
        Some((a_lo, a_hi))
    } else if p.d1 < 0.0 && i + 1 < npts {
        evals += 1;
        (slope(a_hi) > 0.0).then_some((a, a_hi))
    } else if p.d1 > 0.0 && i > 0 {
        evals += 1;
        (slope(a_lo) < 0.0).then_some((a_lo, a))
    } else {
        None
    };
    if let Some((l, u)) = bracket {
        (a_lo, a_hi) = (l, u);
        // rtsafe: Newton steps kept inside a shrinking sign-change bracket.
        for _ in 0..200 {
            if p.d1 < 0.0 {
                a_lo = a;
            } else {
                a_hi = a;
            }
            let newton = if p.d2 > 0.0 {
                a - p.d1 / p.d2
            } else {
                f64::NAN
            };
            let next = if newton.is_finite() && newton > a_lo && newton < a_hi {
                newton
            } else {
                0.5 * (a_lo + a_hi)
            };
            let done =
                (next - a).abs() <= rel_tol * a || (a_hi - a_lo) <= 4e-16 * a_hi || p.d1 == 0.0;
            a = next;
            if done {
                break;
            }
            p = f(a);
            evals += 1;
        }
        Ok((a, false, evals))
    } else {
        // The scan's best point is on the range edge (or the basin is flat): golden section
        // on the loss itself inside the bracket.
        let at_bound = i == 0 || i == npts - 1;
        let phi = 0.5 * (5f64.sqrt() - 1.0);
        let (mut x0, mut x1) = (a_lo, a_hi);
        for _ in 0..200 {
            let c = x1 - phi * (x1 - x0);
            let d = x0 + phi * (x1 - x0);
            evals += 2;
            if value(c) <= value(d) {
                x1 = d;
            } else {
                x0 = c;
            }
            if x1 - x0 <= rel_tol.max(1e-14) * x1 {
                break;
            }
        }
        a = 0.5 * (x0 + x1);
        let near_edge = (a - lo).abs() <= 1e-6 * lo || (hi - a).abs() <= 1e-6 * hi;
        Ok((a, at_bound || near_edge, evals))
    }
}

/// Minimise a closed-form SAFE loss curve over `|alpha|`.
pub fn fit_alpha(curve: &SafeLossCurve, opts: &FitOptions) -> Result<FitResult, FitError> {
    if curve.pairs() < 1 {
        return Err(FitError::TooFewFrames(curve.pairs() + 1));
    }
    if curve.structure_energy() <= 0.0 || curve.lambda_max <= 0.0 {
        return Err(FitError::NoStructure);
    }
    let range = check_range(
        opts.alpha_range,
        default_range(
            curve.dt_save,
            curve.lambda_max,
            curve.spec.n_sub,
            curve.noise_active(),
        ),
    )?;
    // The scan and golden section need the loss alone (bit for bit eval's).
    let (a, at_bound, evaluations) = minimise_1d_split(
        &|a| curve.loss_at(a),
        &|a| curve.eval(a).d1,
        &|a| curve.eval(a),
        range.0,
        range.1,
        opts.scan_per_decade,
        9,
        1e-15,
        true,
    )?;
    let at = curve.eval(a);
    Ok(FitResult {
        alpha_abs: a,
        stderr: curve.stderr(a),
        safe_loss: curve.raw_loss(a).max(0.0),
        corrected_loss: at.loss,
        change_energy: curve.change_energy(),
        noise_floor: curve.noise_floor(a),
        at_bound,
        range,
        evaluations,
        n_eff: curve.n_eff(),
        curvature: at.d2,
    })
}
