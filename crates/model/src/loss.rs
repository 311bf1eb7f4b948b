//! The composite loss of paper section 2.5 (Eq. 8-12), weights and bounds configurable.
//!
//! All norms are means over pixels and frames (DESIGN section 2).

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Loss weights and the `|alpha|` bounds. Defaults are the paper's (section 3.1); the paper
/// gives no identity weight, DESIGN fixes 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossWeights {
    pub phys: f64,
    pub recon: f64,
    pub identity: f64,
    pub bounds: f64,
    /// Optional supervised `(alpha_hat - alpha_true)^2` (needs ground truth).
    pub alpha_supervised: f64,
    /// Optional supervised `ln(alpha_hat / alpha_true)^2`: the relative error, for
    /// training sets whose `|alpha|` spans decades (the universal profile).
    pub log_alpha_supervised: f64,
    /// Optional supervised `L_sup = ||P[t] - U[t+1]||^2` (paper, after Eq. 12) in
    /// training: the propagated latent against the next frame of the ground-truth field,
    /// which for simulation data is the (normalised) video itself. See
    /// [`field_supervised_phase1`].
    pub field_supervised: f64,
    pub alpha_min: f64,
    pub alpha_max: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights {
            phys: 100.0,
            recon: 1.0,
            identity: 1.0,
            bounds: 10.0,
            alpha_supervised: 0.0,
            log_alpha_supervised: 0.0,
            field_supervised: 0.0,
            alpha_min: 0.05,
            alpha_max: 0.9,
        }
    }
}

impl LossWeights {
    pub fn validate(&self) -> Result<(), String> {
        let w = [
            self.phys,
            self.recon,
            self.identity,
            self.bounds,
            self.alpha_supervised,
            self.log_alpha_supervised,
            self.field_supervised,
        ];
        if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err("loss weights must be finite and >= 0".into());
        }
        if !(self.alpha_min >= 0.0 && self.alpha_max > self.alpha_min) {
            return Err(format!(
                "need 0 <= alpha_min < alpha_max, got [{}, {}]",
                self.alpha_min, self.alpha_max
            ));
        }
        Ok(())
    }
}

/// SAFE loss (Eq. 9): `mean (P[t] - F[t+1])^2` over the given pairs.
pub fn safe_loss(p: Tensor<3>, f_next: Tensor<3>) -> Tensor<1> {
    (p - f_next).powi_scalar(2).mean()
}

/// SAFE loss over the pixels at depth `>= margins` only (open windows: the rest depends on
/// the world outside the view); the whole frame when the margins are zero.
pub fn safe_loss_masked(p: Tensor<3>, f_next: Tensor<3>, margins: (usize, usize)) -> Tensor<1> {
    let [_, h, w] = p.dims();
    let (mx, my) = margins;
    if mx == 0 && my == 0 {
        return safe_loss(p, f_next);
    }
    let d = p - f_next;
    d.slice_dim(1, mx..h - mx)
        .slice_dim(2, my..w - my)
        .powi_scalar(2)
        .mean()
}

/// Mean squared difference (reconstruction Eq. 10, identity Eq. 11, supervised field).
pub fn mse<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<1> {
    (a - b).powi_scalar(2).mean()
}

/// Bounds loss (Eq. 12) on `|alpha|`, averaged over the batch.
pub fn bounds_loss(a: Tensor<1>, lo: f64, hi: f64) -> Tensor<1> {
    let below = relu(a.clone().neg().add_scalar(lo)).powi_scalar(2);
    let above = relu(a.sub_scalar(hi)).powi_scalar(2);
    (below + above).mean()
}

/// Bounds loss of one scalar, and its derivative (for the host-side zero-shot loop).
pub fn bounds_value(a: f64, lo: f64, hi: f64) -> (f64, f64) {
    if a < lo {
        ((lo - a).powi(2), -2.0 * (lo - a))
    } else if a > hi {
        ((a - hi).powi(2), 2.0 * (a - hi))
    } else {
        (0.0, 0.0)
    }
}

/// Largest `|d loss / d|alpha||` fed to the estimator. For an unstable sub-step count the
/// SAFE loss reaches ~1e20 and its derivative would overflow Adam's `f32` second moment
/// (freezing the estimator); Adam is scale-invariant, so clipping keeps the direction.
pub const ALPHA_GRAD_CLIP: f64 = 1e6;

/// `w_sup L_sup` in phase 1 and its derivative in `|alpha|`: there the latent is exactly
/// the normalised field (frozen codec), so `P[t] - U[t+1]` is the SAFE residual of the
/// field itself and `L_sup` is the video's SAFE loss `lp` (the pixels the operator can
/// predict on open windows). Added after [`alpha_objective`], before its clip.
pub fn field_supervised_phase1(lp: safe_physics::loss::LossPoint, w: &LossWeights) -> (f64, f64) {
    (w.field_supervised * lp.loss, w.field_supervised * lp.d1)
}

/// The estimator-only objective at `|alpha| = a` for a video whose SAFE loss there is `lp`:
/// `w_phys L_SAFE + w_bounds L_bounds (+ w_alpha (a - a_true)^2 + w_log ln(a/a_true)^2)`,
/// returned as
/// `(loss, clipped d loss / d a)`.
pub fn alpha_objective(
    lp: safe_physics::loss::LossPoint,
    a: f64,
    w: &LossWeights,
    alpha_true: Option<f64>,
) -> (f64, f64) {
    let (b, db) = bounds_value(a, w.alpha_min, w.alpha_max);
    let (mut l, mut g) = (
        w.phys * lp.loss + w.bounds * b,
        w.phys * lp.d1 + w.bounds * db,
    );
    if let (Some(t), true) = (alpha_true, w.alpha_supervised > 0.0) {
        l += w.alpha_supervised * (a - t).powi(2);
        g += w.alpha_supervised * 2.0 * (a - t);
    }
    if let (Some(t), true) = (alpha_true, w.log_alpha_supervised > 0.0 && a > 0.0) {
        let r = (a / t).ln();
        l += w.log_alpha_supervised * r * r;
        g += w.log_alpha_supervised * 2.0 * r / a;
    }
    let g = if g.is_nan() {
        0.0
    } else {
        g.clamp(-ALPHA_GRAD_CLIP, ALPHA_GRAD_CLIP)
    };
    (l, g)
}
