//! The SAFE loss by its literal definition: reference operator, pixel sums, mask.

use crate::grid::Grid;
use crate::operator::{OperatorSpec, SafeOperator, reference::safe_reference};

/// Mean over frame pairs `t, t+stride` and over the pixels at depth `>= margins` of
/// `(Phi S^stride F[t] - Phi F[t+stride])^2`, with the operator written literally (stride
/// sub-steps by applying the one-interval reference `stride` times; the low-pass once).
pub fn safe_loss_naive(
    frames: &[Vec<f64>],
    grid: &Grid,
    spec: OperatorSpec,
    a: f64,
    dt_save: f64,
    stride: usize,
    margins: (usize, usize),
) -> f64 {
    safe_loss_naive_in(
        frames,
        grid,
        (grid.nx, grid.ny),
        spec,
        a,
        dt_save,
        stride,
        margins,
    )
}

/// [`safe_loss_naive`] with the mask measured from the edges of a `window` in the grid's
/// low corner (frames extended past the window, as an open window's transforms may run).
#[allow(clippy::too_many_arguments)]
pub fn safe_loss_naive_in(
    frames: &[Vec<f64>],
    grid: &Grid,
    window: (usize, usize),
    spec: OperatorSpec,
    a: f64,
    dt_save: f64,
    stride: usize,
    margins: (usize, usize),
) -> f64 {
    let q = SafeOperator::filter_order(spec);
    let lowpass =
        |u: &[f64]| crate::operator::reference::binomial_filter_naive(u, grid, q, spec.boundary);
    let (mx, my) = margins;
    let pairs = frames.len() - stride;
    let mut total = 0.0;
    for t in 0..pairs {
        // The reference applies the low-pass after each interval; run unfiltered steps and
        // filter once so a stride is the operator's power.
        let mut p = frames[t].clone();
        for _ in 0..stride {
            p = step_unfiltered(&p, grid, spec, a, dt_save);
        }
        let p = lowpass(&p);
        let target = lowpass(&frames[t + stride]);
        let mut s = 0.0;
        let mut n = 0usize;
        for i in mx..window.0 - mx {
            for j in my..window.1 - my {
                s += (p[i * grid.ny + j] - target[i * grid.ny + j]).powi(2);
                n += 1;
            }
        }
        total += s / n as f64;
    }
    total / pairs as f64
}

fn step_unfiltered(u: &[f64], grid: &Grid, spec: OperatorSpec, a: f64, dt_save: f64) -> Vec<f64> {
    if SafeOperator::filter_order(spec) == 0 {
        return safe_reference(u, grid, spec, a, dt_save);
    }
    // The low-pass only exists on open continuum windows; its unfiltered step is the
    // zero-flux one (same mirror, same symbol).
    let sealed = OperatorSpec {
        boundary: crate::operator::Boundary::ZeroFlux,
        ..spec
    };
    safe_reference(u, grid, sealed, a, dt_save)
}
