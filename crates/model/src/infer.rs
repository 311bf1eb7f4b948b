//! Inference with a trained model (paper 3.1): amortised (one forward pass) or refined by
//! test-time training (phase-1 steps on the estimator, then phase-2 steps on everything).

use crate::config::Config;
use crate::fused::HostEstimator;
use crate::loss::alpha_objective;
use crate::model::SafePitCm;
use crate::pooling::{Symmetry, pool_frames};
use crate::train::{Phase2Cache, TrainVideo, latent_of, phase2_step};
use crate::zero_shot::to_vec;

use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Tensor, TensorData};
use safe_physics::SubSteps;
use safe_physics::estimate::SafeLoss;

/// Largest automatic test-time rate, in units of the training rate. Far from the optimum
/// (videos unlike the training data) the Newton-matched rate exceeds the training rate.
/// Measured on independent Euler data whose amortised estimate was ~0.6 off: TTT 50/200
/// steps reached MAE 0.025/1.9e-5 with the cap at 1x, 4.5e-3/1.2e-6 at 4x. On the paper's
/// test videos the matched rate stays below 1x (TTT50 MAE 2.35e-4 either way).
pub const TTT_LR_CAP: f64 = 4.0;

/// The automatic test-time learning rate.
///
/// A fresh Adam's first steps move every parameter by about `lr` in the sign of its
/// gradient, so `|alpha|` moves by `lr * sum_i |d alpha / d theta_i|` whatever the remaining
/// error: at the training rate that is ~0.17 here (measured), far more than a trained model's
/// ~0.007 error, and 50 steps of oscillation around the optimum followed. So the first move
/// is matched to the Newton distance `|L'| / L''` of the SAFE loss at the current estimate,
/// capped at [`TTT_LR_CAP`] times the training rate; the rate is then annealed to zero
/// (cosine).
fn newton_matched_lr(
    model: &SafePitCm,
    loss: &SafeLoss,
    v: &TrainVideo,
    pooled: &[f32],
    feats: Option<&[f32]>,
    cfg: &Config,
) -> f64 {
    let host = HostEstimator::from_module(&model.estimator);
    let (y, cache) = host.forward(pooled, feats, v.t);
    let unit = v.alpha_unit();
    let a = y as f64 * unit;
    let lw = ttt_weights(cfg);
    let p = loss.eval(a);
    let (_, g) = alpha_objective(p, a, &lw, None);
    let h = lw.phys * if p.d2 > 0.0 { p.d2 } else { p.gauss_newton };
    let stable_max = stable_max(v);
    let delta = if a > stable_max {
        a - 0.5 * stable_max
    } else if h > 0.0 && h.is_finite() {
        g.abs() / h
    } else {
        f64::INFINITY
    };
    let grads = host.backward(&cache, 1.0);
    let s: f64 = grads
        .slices()
        .iter()
        .flat_map(|v| v.iter())
        .map(|x| x.abs() as f64)
        .sum::<f64>()
        * unit;
    let lr = if s > 0.0 {
        delta / s
    } else {
        cfg.train.lr_estimator
    };
    if lr.is_finite() {
        lr.max(1e-7).min(TTT_LR_CAP * cfg.train.lr_estimator)
    } else {
        cfg.train.lr_estimator
    }
}

/// The pooled `p x p` maps `[t][p*p]` under the eight symmetries of the square (flips and
/// transposition). Pooling commutes with them, so these are the pooled frames of the
/// flipped and transposed video.
fn d4_views(pooled: &[f32], p: usize) -> Vec<Vec<f32>> {
    let pp = p * p;
    (0..8)
        .map(|s| {
            let (fx, fy, tr) = (s & 1 == 1, s & 2 == 2, s & 4 == 4);
            let mut out = vec![0f32; pooled.len()];
            for (o, m) in out.chunks_exact_mut(pp).zip(pooled.chunks_exact(pp)) {
                for i in 0..p {
                    for j in 0..p {
                        let (a, b) = if tr { (j, i) } else { (i, j) };
                        let a = if fx { p - 1 - a } else { a };
                        let b = if fy { p - 1 - b } else { b };
                        o[i * p + j] = m[a * p + b];
                    }
                }
            }
            out
        })
        .collect()
}

/// The estimator's output on a video, and its gradient on demand. Unit-free models
/// average it over [`d4_views`] of the pooled frames, so that their answer does not
/// depend on the video's orientation (the band inputs already do not); the paper's
/// estimator sees the frames as they are.
struct Views<'a> {
    host: HostEstimator,
    views: Vec<Vec<f32>>,
    feats: Option<&'a [f32]>,
    t: usize,
}

impl<'a> Views<'a> {
    fn new(
        model: &SafePitCm,
        cfg: &Config,
        pooled: &[f32],
        feats: Option<&'a [f32]>,
        t: usize,
    ) -> Self {
        let views = if cfg.model.units == crate::model::Units::Rate {
            d4_views(pooled, model.estimator.pool_size())
        } else {
            vec![pooled.to_vec()]
        };
        Views {
            host: HostEstimator::from_module(&model.estimator),
            views,
            feats,
            t,
        }
    }

    fn value(&self) -> f64 {
        self.views
            .iter()
            .map(|v| self.host.forward(v, self.feats, self.t).0 as f64)
            .sum::<f64>()
            / self.views.len() as f64
    }

    /// The output and the gradients of `scale` times it.
    fn with_grads(&self, scale: f64) -> (f64, crate::fused::HostGrads) {
        let n = self.views.len() as f64;
        let mut y = 0.0;
        let mut acc: Option<crate::fused::HostGrads> = None;
        for v in &self.views {
            let (yi, cache) = self.host.forward(v, self.feats, self.t);
            y += yi as f64 / n;
            let g = self.host.backward(&cache, (scale / n) as f32);
            acc = Some(match acc {
                None => g,
                Some(a) => a.plus(g),
            });
        }
        (y, acc.expect("at least one view"))
    }
}

/// The estimator's raw output (the views averaged, before [`shrunk`]) on a prepared
/// video's own pooled frames and band energies: the amortised pass of a model whose codec
/// is the identity (the universal one), which needs no frames kept.
pub fn raw_output(model: &SafePitCm, cfg: &Config, v: &TrainVideo) -> f64 {
    let feats = v.features_from(&v.log_e);
    Views::new(model, cfg, &v.pooled, feats.as_deref(), v.t).value()
}

/// The amortised factor of a unit-free model: the output's logarithm soft-thresholded by
/// `tau` (`model.shrink`, calibrated on the universal training's validation videos), so a
/// correction within the network's own noise leaves a prior that is already right alone,
/// and a larger one is kept less `tau`.
pub fn shrunk(y: f64, tau: f64) -> f64 {
    if tau <= 0.0 || y.is_nan() || y <= 0.0 {
        return y;
    }
    let l = y.ln();
    (l.signum() * (l.abs() - tau).max(0.0)).exp()
}

/// Largest `|alpha|` the operator's sub-steps keep stable (infinite sub-steps: no limit).
fn stable_max(v: &TrainVideo) -> f64 {
    match v.prep.spec.n_sub {
        SubSteps::Finite(n) => 2.0 / (v.dt_save / n as f64 * v.operator().lambda_max()),
        SubSteps::Infinite => f64::INFINITY,
    }
}

/// Where a safeguarded Newton step on the SAFE loss goes from `a`: within a factor 2 of
/// `a` (far from the minimum the loss is not quadratic), and into the middle of the stable
/// range when `a` is beyond it (there the loss is a blown-up polynomial).
fn newton_target(loss: &SafeLoss, a: f64, v: &TrainVideo) -> f64 {
    let sm = stable_max(v);
    if a > sm {
        return 0.5 * sm;
    }
    let p = loss.eval(a);
    let h = if p.d2 > 0.0 { p.d2 } else { p.gauss_newton };
    if !(h > 0.0 && h.is_finite() && p.d1.is_finite()) {
        return a;
    }
    (a - p.d1 / h).clamp(0.5 * a, (2.0 * a).min(sm))
}

/// The test-time objective: the training loss's, with `ttt.phys` replacing the SAFE
/// loss's weight when set (a model trained on supervision alone still refines on the
/// SAFE loss at test time) and no bounds then (they are in physical units).
pub fn ttt_weights(cfg: &Config) -> crate::loss::LossWeights {
    let mut w = cfg.loss.clone();
    if cfg.ttt.phys > 0.0 {
        w.phys = cfg.ttt.phys;
        w.bounds = 0.0;
        w.alpha_supervised = 0.0;
        w.log_alpha_supervised = 0.0;
    }
    w
}

/// What inference produces for one video.
pub struct InferOutput {
    pub alpha_abs: f64,
    /// `|alpha|` before any test-time training (the amortised estimate).
    pub amortised: f64,
    /// SAFE loss at the estimate, normalised units.
    pub safe_loss: f64,
    /// Mean `||V_hat - V||^2`, normalised units.
    pub recon: f64,
    /// The SAFE loss of the final latent (normalised units).
    pub loss: SafeLoss,
    pub ttt_steps: usize,
}

/// Infer `|alpha|` for one prepared video with a copy of `trained`. `fit_loss`: the SAFE
/// loss a fit of the video minimised (any units), which Newton test-time steps minimise
/// (`ttt.newton`; without it they use the video's own frame-pair loss).
pub fn infer(
    trained: &SafePitCm,
    cfg: &Config,
    v: &TrainVideo,
    ttt_steps: usize,
    fit_loss: Option<&SafeLoss>,
) -> InferOutput {
    let mut model = trained.clone();
    let p = model.estimator.pool_size();
    let lat = latent_of(&model, v);
    let pooled = pool_frames(&lat, v.t, v.grid.nx, v.grid.ny, p, &Symmetry::IDENTITY);
    let mut loss = v.loss_of_latent(&lat);
    let mut feats = v.features_of_latent(&lat);
    let unit = v.alpha_unit();
    let amortised = shrunk(
        Views::new(&model, cfg, &pooled, feats.as_deref(), v.t).value(),
        cfg.model.shrink,
    ) * unit;
    let n1 = if cfg.ttt.phase2 {
        (ttt_steps as f64 * cfg.ttt.phase1_fraction).round() as usize
    } else {
        ttt_steps
    };
    let n2 = ttt_steps - n1;
    let plain = Device::flex();
    let lw = &ttt_weights(cfg);
    let adam = AdamConfig::new().with_epsilon(cfg.train.adam_epsilon);
    // Phase 1: estimator only on the frozen latent (the SAFE loss is the curve).
    let mut opt_est = adam.init();
    let lr0 = if cfg.ttt.lr_estimator > 0.0 {
        cfg.ttt.lr_estimator
    } else {
        newton_matched_lr(&model, &loss, v, &pooled, feats.as_deref(), cfg)
    };
    if cfg.ttt.newton {
        // Minimum-norm Gauss-Newton steps in parameter space: each moves the output, to
        // first order, exactly to the safeguarded Newton point of the SAFE loss (the
        // smallest parameter change that does). Adam's first steps move `|alpha|` by a
        // fixed amount whatever the distance; these converge like Newton from any start.
        let mut sgd = burn::optim::SgdConfig::new().init();
        for _ in 0..n1 {
            let (y, grads) =
                Views::new(&model, cfg, &pooled, feats.as_deref(), v.t).with_grads(1.0);
            let a = y * unit;
            let target = newton_target(fit_loss.unwrap_or(&loss), a, v);
            let norm2: f64 = grads
                .slices()
                .iter()
                .flat_map(|g| g.iter())
                .map(|&x| (x as f64) * (x as f64))
                .sum();
            // Converged (to float precision of the output): more steps would not move it.
            if norm2.is_nan() || norm2 <= 0.0 || (target - a).abs() <= 1e-7 * a {
                break;
            }
            let k = (target - a) / unit / norm2;
            // SGD with rate 1 subtracts the gradient: hand it -k grad y.
            let gp = grads
                .scaled(-k as f32)
                .into_params(&model.estimator, &plain);
            model.estimator = sgd.step(1.0, model.estimator, gp);
        }
    }
    for k in 0..if cfg.ttt.newton { 0 } else { n1 } {
        let host = HostEstimator::from_module(&model.estimator);
        let (y, cache) = host.forward(&pooled, feats.as_deref(), v.t);
        let a = y as f64 * unit;
        let (_, g) = alpha_objective(loss.eval(a), a, lw, None);
        let gp = host
            .backward(&cache, (g * unit) as f32)
            .into_params(&model.estimator, &plain);
        let lr = lr0 * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / n1 as f64).cos());
        model.estimator = opt_est.step(lr, model.estimator, gp);
    }
    // Phase 2: everything, through the SAFE layer.
    if n2 > 0 {
        let dev = Device::flex().autodiff();
        let mut opts = crate::train::Optimisers::fresh(cfg);
        opts.est = opt_est;
        let mut cache = Phase2Cache::of(&model, v, p);
        let w = if cfg.ttt.window == 0 {
            v.t
        } else {
            cfg.ttt.window.min(v.t)
        };
        for s in 0..n2 {
            // Windows sweep the video deterministically.
            let start = if w < v.t { (s * w) % (v.t - w + 1) } else { 0 };
            phase2_step(
                cfg,
                &mut model,
                &mut opts,
                (cfg.train.lr_estimator, cfg.train.lr_codec),
                v,
                start,
                w,
                &mut cache,
                &dev,
            );
        }
    }
    // Final estimate on the (possibly refined) latent.
    let (lat, pooled) = if n2 > 0 {
        let lat = latent_of(&model, v);
        let pooled = pool_frames(&lat, v.t, v.grid.nx, v.grid.ny, p, &Symmetry::IDENTITY);
        loss = v.loss_of_latent(&lat);
        feats = v.features_of_latent(&lat);
        (lat, pooled)
    } else {
        (lat, pooled)
    };
    let alpha_abs = if ttt_steps == 0 {
        amortised
    } else {
        Views::new(&model, cfg, &pooled, feats.as_deref(), v.t).value() * unit
    };
    let dec = model.decoder.valid();
    let recon = if dec.is_identity() && lat == v.frames {
        0.0
    } else {
        let x =
            Tensor::<4>::from_data(TensorData::new(lat, [v.t, 1, v.grid.nx, v.grid.ny]), &plain);
        let rec = to_vec(dec.forward_frozen(x));
        rec.iter()
            .zip(&v.frames)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / v.frames.len() as f64
    };
    let safe_loss = loss.raw_loss(alpha_abs).max(0.0);
    InferOutput {
        alpha_abs,
        amortised,
        safe_loss,
        recon,
        loss,
        ttt_steps,
    }
}
