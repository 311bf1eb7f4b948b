//! Zero-shot inference (paper section 2.7): a fresh, randomly initialised model per video,
//! encoder and decoder frozen, Adam on the estimator for `steps` steps on the SAFE loss
//! (+ bounds).
//!
//! What is computed once, because it cannot change between steps: the normalised video, the
//! frozen encoder's latent `F` (exactly `V` while its projection is zero), the estimator's
//! parameter-free pooling of `F`, and the SAFE loss of `F` as a function of `|alpha|`
//! ([`SafeLoss`]: closed form where the operator is diagonal; on open windows the masked
//! pixels, evaluated on a rotating mini-batch of frame pairs per step). Each step runs the
//! estimator forward and backward, evaluates the SAFE loss and its derivative at the
//! estimator's `|alpha|` (the same value and gradient backpropagation through the SAFE
//! operator gives; a test checks this against the SAFE layer), and takes one Adam step
//! on the estimator's parameters: the paper's optimisation, without repeated stencils.
//!
//! Adam stops ~1e-6 from the loss's minimum. Unless `polish` is 0, the run ends with Newton
//! steps on the estimator's output bias over all frame pairs (a second-order step on one
//! parameter), which converges to the minimum; the reported `|alpha|` is that bias's output
//! evaluated in f64.

use crate::fused::{HostAdam, HostEstimator, HostParams};
use crate::loss::{LossWeights, alpha_objective};
use crate::model::{ModelConfig, SafePitCm};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use safe_physics::estimate::{Prepared, SafeLoss};
use safe_physics::loss::LossPoint;
use safe_physics::loss::window::{WindowEval, last_step};
use safe_physics::{Grid, OperatorSpec};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZeroShotConfig {
    pub steps: usize,
    pub lr: f64,
    pub seed: u64,
    pub weights: LossWeights,
    pub model: ModelConfig,
    /// Adam's epsilon (PyTorch's default, which the paper's implementation used).
    pub adam_epsilon: f32,
    /// How the estimator's forward and backward run (same arithmetic either way).
    pub engine: Engine,
    /// Newton steps on the output bias after Adam (0 = the paper's Adam only).
    pub polish: usize,
    /// Frame pairs per step on open windows (their masked loss is evaluated in pixels).
    pub window_batch: usize,
}

/// The estimator's execution engine during estimator-only optimisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Fused Rust forward/backward ([`crate::fused`]), ~10x faster on CPU.
    #[default]
    Fused,
    /// burn's forward and autodiff (the reference; runs on any backend).
    Burn,
}

impl Default for ZeroShotConfig {
    fn default() -> Self {
        ZeroShotConfig {
            steps: 200,
            lr: 5e-3,
            seed: 0,
            weights: LossWeights::default(),
            model: ModelConfig::default(),
            adam_epsilon: 1e-8,
            engine: Engine::Fused,
            polish: 8,
            window_batch: 4,
        }
    }
}

/// Intensity normalisation at the model boundary: the model sees `(V - mean) / std`, which
/// makes every result independent of the video's intensity scale and offset.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: f64,
    pub std: f64,
}

impl Normalisation {
    pub fn of(frames: &[&[f32]]) -> Normalisation {
        let n: usize = frames.iter().map(|f| f.len()).sum();
        let mean = frames
            .iter()
            .flat_map(|f| f.iter())
            .map(|&x| x as f64)
            .sum::<f64>()
            / n as f64;
        let var = frames
            .iter()
            .flat_map(|f| f.iter())
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        Normalisation {
            mean,
            std: var.sqrt().max(f64::MIN_POSITIVE),
        }
    }

    pub fn apply(&self, frames: &[&[f32]]) -> Vec<f32> {
        let (m, s) = (self.mean, 1.0 / self.std);
        frames
            .iter()
            .flat_map(|f| f.iter())
            .map(|&x| ((x as f64 - m) * s) as f32)
            .collect()
    }
}

/// One optimisation step's record.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub alpha_abs: f64,
    /// `w_phys * L_SAFE + w_bounds * L_bounds` in normalised units.
    pub loss: f64,
}

/// Everything zero-shot produces for one video.
pub struct ZeroShotOutput {
    pub alpha_abs: f64,
    pub history: Vec<StepRecord>,
    pub norm: Normalisation,
    /// Normalised input `V`, `[T, H, W]`, canonical (stable) order.
    pub input: Vec<f32>,
    /// The frozen latent `F`, same layout.
    pub latent: Vec<f32>,
    /// The reconstruction `V_hat = decoder(F)`, same layout.
    pub reconstruction: Vec<f32>,
    /// The SAFE loss of the latent as a function of `|alpha|` (normalised units).
    pub loss: SafeLoss,
    pub trainable_params: usize,
    pub spec: OperatorSpec,
    /// `|alpha|` when Adam stopped (before the polish).
    pub adam_alpha: f64,
    /// On an open window, the polish's last evaluation: the error bar is read from it as
    /// the fit reads its own (see [`last_step`]), with no evaluation over every pair after.
    pub window_polish: Option<WindowPolish>,
}

/// The last evaluation of zero-shot's polish on an open window, with what the report
/// needs beside it.
pub struct WindowPolish {
    pub eval: WindowEval,
    /// How far the last Newton step moved `|alpha|` from the evaluation's point (0 when the
    /// polish stopped without converging): the report carries the evaluation there.
    pub da: f64,
    /// Effectively independent residual samples of the pairs the polish evaluated.
    pub n_eff: f64,
    /// The noise-corrected loss at `|alpha| = 0` under the polish's masks.
    pub change_energy: f64,
}

impl ZeroShotOutput {
    /// Mean reconstruction error `||V_hat - V||^2` in the video's own intensity units (Table 5).
    pub fn recon_error(&self) -> f64 {
        let n = self.input.len().max(1);
        self.reconstruction
            .iter()
            .zip(&self.input)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / n as f64
            * self.norm.std.powi(2)
    }
}

/// Read a tensor back as `f32` values.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap_or_default()
}

/// `softplus^-1(a)`, stable for large and tiny `a`.
fn softplus_inv(a: f64) -> f64 {
    if a > 30.0 { a } else { a.exp_m1().ln() }
}

/// Run zero-shot on one video given in its stable order, under the operator and loss
/// settings `prep` decided. `built` is the SAFE loss of `frames` in their own units when
/// deciding already built it ([`Prepared::take_loss`]): with the frozen encoder the identity
/// the latent is the normalised video, whose loss is that one rescaled. `progress` is called
/// after every optimiser step.
pub fn zero_shot(
    frames: &[&[f32]],
    grid: &Grid,
    dt_save: f64,
    prep: &Prepared,
    built: Option<SafeLoss>,
    cfg: &ZeroShotConfig,
    progress: &mut dyn FnMut(&StepRecord),
) -> ZeroShotOutput {
    let stages = safe_physics::estimate::Stages::start();
    let t = frames.len();
    let (h, w) = (grid.nx, grid.ny);
    let norm = Normalisation::of(frames);
    let input = norm.apply(frames);

    let dev = Device::flex().autodiff();
    let model = SafePitCm::seeded(&cfg.model, &dev, cfg.seed);
    stages.mark("zero-shot model");
    let trainable_params = crate::model::trainable_params(&model);

    // Frozen encoder and decoder: run once, outside the autodiff graph.
    let plain = Device::flex();
    let encoder = model.encoder.valid();
    let decoder = model.decoder.valid();
    let v = Tensor::<4>::from_data(TensorData::new(input.clone(), [t, 1, h, w]), &plain);
    let (latent, f) = if encoder.is_identity() {
        (input.clone(), v)
    } else {
        let f = encoder.forward(v);
        (to_vec(f.clone()), f)
    };
    let reconstruction = if decoder.is_identity() {
        latent.clone()
    } else {
        to_vec(decoder.forward(f.clone()))
    };
    stages.mark("zero-shot encoder");
    let pooled = to_vec(model.estimator.pool(f));
    let p = model.estimator.pool_size();
    let pooled = Tensor::<4>::from_data(TensorData::new(pooled, [t, 1, p, p]), &dev);

    let frames_f: Vec<&[f32]> = latent.chunks_exact(h * w).collect();
    stages.mark("zero-shot model and pooling");
    let mut loss = match built {
        Some(mut l) if encoder.is_identity() => {
            l.rescale(1.0 / norm.std);
            l
        }
        _ => SafeLoss::build(&frames_f, grid, dt_save, prep, 1.0 / norm.std),
    };
    stages.mark("zero-shot loss");
    let band_feats = (cfg.model.bands > 0).then(|| {
        let op = safe_physics::SafeOperator::new(*grid, prep.spec, dt_save);
        let spectra =
            safe_physics::loss::VideoSpectra::compute(&frames_f, grid, op.basis.boundary_kind());
        let (le, _) = crate::bands::band_log_energies(&spectra, &op, cfg.model.bands, None);
        crate::bands::band_features(&le, t, cfg.model.bands)
    });
    let band_t = band_feats.as_ref().map(|f| {
        Tensor::<2>::from_data(TensorData::new(f.clone(), [t, 2 * cfg.model.bands]), &dev)
    });

    // Open windows: masks sized for the largest identifiable |alpha| while Adam roams, and
    // a rotating mini-batch of frame pairs per step.
    let mut window_hi = f64::INFINITY;
    let batches: Vec<Vec<(usize, usize)>> = match &mut loss {
        SafeLoss::Window(wl) => {
            let s0 = dt_save * wl.op.lambda_max();
            let hi = wl.identifiable_max(1e-5 / s0, 1e4 / s0).unwrap_or(1e4 / s0);
            window_hi = hi;
            wl.set_margins(hi);
            let all = wl.all_pairs();
            let k = cfg.window_batch.max(1);
            // Interleave so every batch spans the video.
            let nb = all.len().div_ceil(k).max(1);
            (0..nb)
                .map(|b| all.iter().skip(b).step_by(nb).copied().collect())
                .collect()
        }
        SafeLoss::Curve(_) => Vec::new(),
    };
    let step_point = |a: f64, step: usize| -> LossPoint {
        match &loss {
            SafeLoss::Curve(c) => c.eval(a),
            SafeLoss::Window(wl) => {
                wl.eval_pairs(a, &batches[step % batches.len()], 1, false)
                    .point
            }
        }
    };

    let lw = &cfg.weights;
    let mut est = model.estimator;
    let mut history = Vec::with_capacity(cfg.steps);
    let pooled_host = to_vec(pooled.clone().inner());
    // d(loss)/d|alpha| at the estimator's current output, pushed through the estimator.
    let grad_of = |a: f64, step: usize| {
        let (l, g) = alpha_objective(step_point(a, step), a, lw, None);
        (g, l)
    };
    let adam_alpha = match cfg.engine {
        Engine::Fused => {
            let mut params = HostParams::from_module(&est);
            let mut adam = HostAdam::new(cfg.adam_epsilon);
            let mut spent = None;
            for step in 0..cfg.steps {
                let host = HostEstimator::from_params(&params);
                let (a, cache) =
                    host.forward_reusing(&pooled_host, band_feats.as_deref(), t, spent.take());
                // The backward pass is linear in the loss's gradient: d|alpha|/dparams runs
                // beside the loss's evaluation (an open window's is as long), then scales.
                let (unit, (g, l)) =
                    rayon::join(|| host.backward(&cache, 1.0), || grad_of(a as f64, step));
                adam.step(&mut params, unit.scaled(g as f32), cfg.lr);
                spent = Some(cache);
                let rec = StepRecord {
                    step,
                    alpha_abs: a as f64,
                    loss: l,
                };
                progress(&rec);
                history.push(rec);
            }
            HostEstimator::from_params(&params)
                .forward(&pooled_host, band_feats.as_deref(), t)
                .0 as f64
        }
        Engine::Burn => {
            let mut opt = AdamConfig::new().with_epsilon(cfg.adam_epsilon).init();
            for step in 0..cfg.steps {
                let a_t = est.forward_pooled(pooled.clone(), band_t.clone(), 1, t);
                let a: f64 = a_t.clone().into_scalar::<f64>();
                let (g, l) = grad_of(a, step);
                let grads = a_t.mul_scalar(g).sum().backward();
                let gp = GradientsParams::from_grads(grads, &est);
                est = opt.step(cfg.lr, est, gp);
                let rec = StepRecord {
                    step,
                    alpha_abs: a,
                    loss: l,
                };
                progress(&rec);
                history.push(rec);
            }
            est.valid()
                .forward_pooled(pooled.inner(), band_t.map(|b| b.inner()), 1, t)
                .into_scalar::<f64>()
        }
    };
    stages.mark("zero-shot Adam");
    // Newton on the output bias: the output is softplus(y + b), so a bias step moves the
    // output along softplus and Newton in |alpha| is Newton in b.
    let mut alpha_abs = adam_alpha;
    let mut window_polish = None;
    if cfg.polish > 0 && alpha_abs.is_finite() && alpha_abs > 0.0 {
        // On open windows the polish evaluates the pairs and stops as the fit's does.
        let window_pairs = match &mut loss {
            SafeLoss::Window(wl) => {
                let start = wl.ready_polish(alpha_abs, window_hi);
                stages.mark("zero-shot polish masks and approach");
                alpha_abs = start.a;
                Some((start.pairs, start.n_eff, start.change.1))
            }
            SafeLoss::Curve(_) => None,
        };
        let mut y = softplus_inv(alpha_abs);
        for _ in 0..cfg.polish {
            let a = alpha_abs;
            let (window_eval, lp) = match (&loss, &window_pairs) {
                (SafeLoss::Window(wl), Some((pairs, ..))) => {
                    let e = wl.eval_pairs(a, pairs, 2, true);
                    stages.mark("zero-shot polish evaluation");
                    let p = e.point;
                    (Some(e), p)
                }
                _ => (None, loss.eval(a)),
            };
            let bounds = crate::loss::bounds_value(a, lw.alpha_min, lw.alpha_max);
            let d1 = lw.phys * lp.d1 + lw.bounds * bounds.1;
            let d2 = lw.phys * lp.d2
                + if bounds.1 != 0.0 {
                    2.0 * lw.bounds
                } else {
                    0.0
                };
            if d2.is_nan() || d2 <= 0.0 {
                break;
            }
            let da_dy = 1.0 / (1.0 + (-y).exp());
            let step = (d1 / d2).clamp(-0.5 * a, 0.5 * a);
            y -= step / da_dy;
            let next = if y > 30.0 { y } else { y.exp().ln_1p() };
            let done = (next - a).abs() <= 1e-13 * a
                || window_eval
                    .as_ref()
                    .is_some_and(|e| bounds.1 == 0.0 && last_step(next - a, next, e));
            let da = if done { next - a } else { 0.0 };
            alpha_abs = next;
            if let (Some(e), Some((_, n_eff, change_energy))) = (window_eval, &window_pairs) {
                window_polish = Some(WindowPolish {
                    eval: e,
                    da,
                    n_eff: *n_eff,
                    change_energy: *change_energy,
                });
            }
            if done {
                break;
            }
        }
    }
    stages.mark("zero-shot polish");
    ZeroShotOutput {
        alpha_abs,
        history,
        norm,
        input,
        latent,
        reconstruction,
        loss,
        trainable_params,
        spec: prep.spec,
        adam_alpha,
        window_polish,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safe_physics::estimate::Prepared;
    use safe_physics::initial::{grain_centres, roughness_field, voronoi_field};
    use safe_physics::loss::NoiseModel;
    use safe_physics::simulate::{SimParams, Solver, simulate};
    use safe_physics::{Boundary, Laplacian, Process, SubSteps};

    fn small_video(alpha: f64) -> (Grid, Vec<f32>) {
        use rand::SeedableRng;
        let grid = Grid::new(32, 24, 0.5, 0.5).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let c = grain_centres(&grid, 6, &mut rng);
        let xi = roughness_field(&grid, 1.0, 3.0, &mut rng);
        let u0 = voronoi_field(&grid, &c, 2.5, &xi);
        let p = SimParams {
            grid,
            alpha_abs: alpha,
            dt: 0.005,
            n_steps: 1000,
            save_interval: 50,
        };
        (grid, simulate(&u0, &p, Solver::Spectral).unwrap().0)
    }

    fn paper(n_sub: SubSteps) -> Prepared {
        Prepared::fixed(
            Process::Diffusion,
            OperatorSpec::periodic_five_point(n_sub),
            vec![1],
            NoiseModel::default(),
        )
    }

    #[test]
    fn fused_and_burn_engines_follow_the_same_trajectory() {
        let (grid, v) = small_video(0.4);
        let frames: Vec<&[f32]> = v.chunks_exact(grid.len()).collect();
        let run = |engine| {
            let cfg = ZeroShotConfig {
                steps: 30,
                engine,
                ..Default::default()
            };
            zero_shot(
                &frames,
                &grid,
                0.25,
                &paper(SubSteps::Finite(50)),
                None,
                &cfg,
                &mut |_| {},
            )
        };
        let (a, b) = (run(Engine::Fused), run(Engine::Burn));
        for (x, y) in a.history.iter().zip(&b.history) {
            assert!(
                (x.alpha_abs - y.alpha_abs).abs() < 1e-4,
                "step {}: {} {}",
                x.step,
                x.alpha_abs,
                y.alpha_abs
            );
        }
    }

    #[test]
    fn zero_shot_recovers_alpha_on_a_small_video() {
        let (grid, v) = small_video(0.4);
        let frames: Vec<&[f32]> = v.chunks_exact(grid.len()).collect();
        let run = |polish| {
            let cfg = ZeroShotConfig {
                polish,
                ..Default::default()
            };
            zero_shot(
                &frames,
                &grid,
                0.25,
                &paper(SubSteps::Finite(50)),
                None,
                &cfg,
                &mut |_| {},
            )
        };
        let (adam, polished) = (run(0), run(8));
        assert!((adam.alpha_abs - 0.4).abs() < 1e-5, "{}", adam.alpha_abs);
        // The polish converges to the loss's minimum (f32 frames: ~1e-8).
        assert!(
            (polished.alpha_abs - 0.4).abs() < 1e-8,
            "{}",
            polished.alpha_abs
        );
        assert_eq!(polished.adam_alpha, adam.alpha_abs);
        // Frozen identity encoder/decoder: exact reconstruction.
        assert_eq!(polished.recon_error(), 0.0);
    }

    /// The SAFE-loss gradient zero-shot feeds the estimator equals backpropagation through
    /// the SAFE layer (custom op) for the same latent and |alpha|: for the closed-form curve
    /// (periodic) and for the masked, low-passed loss of an open continuum window.
    #[test]
    fn loss_gradient_equals_backprop_through_the_safe_layer() {
        use crate::safe_layer::{SafeSpec, safe_propagate};
        use safe_physics::batch::Kernel;
        let (grid, v) = small_video(0.3);
        let t = v.len() / grid.len();
        let frames: Vec<&[f32]> = v.chunks_exact(grid.len()).collect();
        for op in [
            OperatorSpec::PAPER,
            OperatorSpec {
                boundary: Boundary::Open,
                laplacian: Laplacian::Continuum,
                n_sub: SubSteps::Infinite,
            },
        ] {
            let prep = Prepared::fixed(Process::Diffusion, op, vec![1], NoiseModel::default());
            let mut loss = SafeLoss::build(&frames, &grid, 0.25, &prep, 1.0);
            let margins = match &mut loss {
                SafeLoss::Window(w) => {
                    w.set_margins(0.5);
                    w.margins[0]
                }
                SafeLoss::Curve(_) => (0, 0),
            };
            let dev = Device::flex().autodiff();
            let a0 = 0.37f32;
            let a = Tensor::<1>::from_data(TensorData::new(vec![a0], [1]), &dev).require_grad();
            let f = Tensor::<3>::from_data(TensorData::new(v.clone(), [t, grid.nx, grid.ny]), &dev);
            let spec = SafeSpec {
                dx: 0.5,
                dy: 0.5,
                dt_save: 0.25,
                op,
                kernel: Kernel::Stencil,
            };
            let p = safe_propagate(
                f.clone().slice_dim(0, 0..t - 1),
                a.clone().expand([t - 1]),
                &spec,
            );
            // The target is the low-passed next frame: the layer at |alpha| = 0.
            let zero = Tensor::<1>::zeros([t - 1], &dev);
            let target = safe_propagate(f.slice_dim(0, 1..t), zero, &spec);
            let l = crate::loss::safe_loss_masked(p, target, margins);
            let g: f32 = a.grad(&l.backward()).unwrap().into_scalar();
            let want = loss.eval(a0 as f64);
            assert!(
                (g as f64 - want.d1).abs() < 1e-3 * want.d1.abs().max(1e-12),
                "{op}: {g} vs {}",
                want.d1
            );
        }
    }

    #[test]
    fn zero_shot_on_an_open_window_matches_the_fit() {
        use safe_physics::loss::{FitOptions, fit_window};
        let big = Grid::new(96, 80, 0.5, 0.5).unwrap();
        let op = OperatorSpec {
            boundary: Boundary::Periodic,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        };
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let c = grain_centres(&big, 20, &mut rng);
        let xi = roughness_field(&big, 1.0, 3.0, &mut rng);
        let u0 = voronoi_field(&big, &c, 2.5, &xi);
        let all = safe_physics::simulate::evolve_exact(&u0, &big, op, 0.35, 0.25, 21);
        let (wx, wy) = (56, 48);
        let win: Vec<f32> = all
            .chunks(big.len())
            .flat_map(|fr| {
                (0..wx).flat_map(move |i| (0..wy).map(move |j| fr[(i + 20) * 80 + j + 17] as f32))
            })
            .collect();
        let grid = Grid::new(wx, wy, 0.5, 0.5).unwrap();
        let frames: Vec<&[f32]> = win.chunks_exact(grid.len()).collect();
        let open = OperatorSpec {
            boundary: Boundary::Open,
            ..op
        };
        let prep = Prepared::fixed(Process::Diffusion, open, vec![1], NoiseModel::default());
        let out = zero_shot(
            &frames,
            &grid,
            0.25,
            &prep,
            None,
            &ZeroShotConfig::default(),
            &mut |_| {},
        );
        let mut w = match SafeLoss::build(&frames, &grid, 0.25, &prep, 1.0) {
            SafeLoss::Window(w) => w,
            SafeLoss::Curve(_) => unreachable!(),
        };
        let fit = fit_window(&mut w, &FitOptions::default()).unwrap();
        // float32 frames: both land ~1e-8 from the truth (the fit polishes on a subset of
        // the pairs of a clean video, zero-shot on all of them).
        assert!((fit.alpha_abs - 0.35).abs() < 1e-7, "fit {}", fit.alpha_abs);
        assert!(
            (out.alpha_abs - 0.35).abs() < 1e-7,
            "zero-shot {}",
            out.alpha_abs
        );
        assert!(
            (out.alpha_abs - fit.alpha_abs).abs() < 5e-8,
            "{} vs {}",
            out.alpha_abs,
            fit.alpha_abs
        );
    }
}
