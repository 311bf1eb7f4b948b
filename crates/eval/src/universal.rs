//! The shipped pretrained model (`train --profile universal`): its training distribution,
//! drawn on the fly, and its training.
//!
//! Each training video is drawn afresh from a seed: a grid of 48-256 pixels per side
//! (often non-square, sometimes `dx != dy`), `dx` over two decades, a von Neumann number
//! per frame `|alpha| dt_save (1/dx^2 + 1/dy^2)` from 1e-3 to 10, 10-101 frames; grains,
//! Gaussian blobs, smoothed noise or sharp fronts; continuous physics (exact Fourier or
//! cosine evolution) or the five-point stencil with forward-Euler sub-steps; a periodic
//! sample, a sealed one, or an open window cropped from a larger periodic sample; and half
//! of the videos through a camera (blur, black level, shot and read noise, 8/12/16 bits,
//! sometimes a gamma curve) or with plain Gaussian noise. Each is prepared exactly as
//! `infer` prepares a user's video (the same automatic boundary, Laplacian and direction
//! decisions), so the estimator trains on the inputs it will see.

use crate::fitting::{EstimateSettings, prepare_video};
use anyhow::{Result, anyhow, bail};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use safe_data::camera::{Camera, gaussian_blur};
use safe_data::{Meta, Video};
use safe_model::config::Config;
use safe_model::train::{Progress, TrainOutcome, TrainVideo, train};
use safe_physics::initial::{grain_centres, roughness_field, voronoi_field};
use safe_physics::simulate::evolve_exact;
use safe_physics::{Boundary, Grid, Laplacian, OperatorSpec, SubSteps};
use std::path::Path;

/// One drawn training (or test) video and what it is.
pub struct Drawn {
    pub video: Video,
    /// `initial condition / physics / boundary / camera`, for reports.
    pub kind: String,
}

fn log_uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    (rng.random_range(lo.ln()..hi.ln())).exp()
}

/// The initial condition families.
const FAMILIES: [&str; 4] = ["grains", "blobs", "noise", "fronts"];

fn initial(family: &str, g: &Grid, rng: &mut impl Rng) -> Vec<f64> {
    let px = g.dx.min(g.dy);
    match family {
        "grains" => {
            let n = rng.random_range(3..=40);
            let c = grain_centres(g, n, rng);
            let rough = rng.random_range(0.0..2.0) * px;
            let xi = roughness_field(g, rough, 3.0 * px, rng);
            voronoi_field(g, &c, log_uniform(rng, 0.3, 4.0) * px, &xi)
        }
        "blobs" => {
            let (lx, ly) = (g.nx as f64 * g.dx, g.ny as f64 * g.dy);
            let m = rng.random_range(3..=30);
            let blobs: Vec<(f64, f64, f64, f64)> = (0..m)
                .map(|_| {
                    (
                        rng.random::<f64>() * lx,
                        rng.random::<f64>() * ly,
                        log_uniform(rng, 1.5, 15.0) * px,
                        rng.random_range(0.5..1.0) * if rng.random() { 1.0 } else { -1.0 },
                    )
                })
                .collect();
            let mut u = vec![0.0; g.len()];
            for i in 0..g.nx {
                for j in 0..g.ny {
                    let (x, y) = (i as f64 * g.dx, j as f64 * g.dy);
                    u[i * g.ny + j] = blobs
                        .iter()
                        .map(|&(cx, cy, w, a)| {
                            // Minimum image: the sample is periodic.
                            let dx = (x - cx + 0.5 * lx).rem_euclid(lx) - 0.5 * lx;
                            let dy = (y - cy + 0.5 * ly).rem_euclid(ly) - 0.5 * ly;
                            a * (-(dx * dx + dy * dy) / (2.0 * w * w)).exp()
                        })
                        .sum();
                }
            }
            u
        }
        "noise" => roughness_field(g, 1.0, log_uniform(rng, 1.0, 12.0) * px, rng),
        _ => {
            let f = roughness_field(g, 1.0, log_uniform(rng, 4.0, 20.0) * px, rng);
            let w = log_uniform(rng, 0.05, 0.5);
            f.iter().map(|x| (x / w).tanh()).collect()
        }
    }
}

/// Draw video `i` of the stream `seed`: the universal training distribution.
pub fn draw(seed: u64, i: usize) -> Result<Drawn> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(i as u64);
    let nx = log_uniform(&mut rng, 48.0, 256.0).round() as usize;
    let ny = if rng.random::<f64>() < 0.4 {
        nx
    } else {
        log_uniform(&mut rng, 48.0, 256.0).round() as usize
    };
    let t = log_uniform(&mut rng, 10.0, 101.0).round() as usize;
    let dx = log_uniform(&mut rng, 0.05, 5.0);
    let dy = if rng.random::<f64>() < 0.7 {
        dx
    } else {
        dx * log_uniform(&mut rng, 0.7, 1.4)
    };
    let alpha = log_uniform(&mut rng, 0.01, 10.0);
    let vn = log_uniform(&mut rng, 1e-3, 10.0);
    let lref = 1.0 / (dx * dx) + 1.0 / (dy * dy);
    let dt_save = vn / (alpha * lref);
    let family = FAMILIES[rng.random_range(0..FAMILIES.len())];
    let continuum = rng.random::<f64>() < 0.6;
    let boundary = match rng.random::<f64>() {
        x if x < 0.4 => Boundary::Periodic,
        x if x < 0.8 => Boundary::Open,
        _ => Boundary::ZeroFlux,
    };
    // An open window is cut from a periodic sample 1.25-3x its size (at most 512).
    let scale = if boundary == Boundary::Open {
        rng.random_range(1.25..3.0f64)
            .min(512.0 / nx.max(ny) as f64)
            .max(1.25)
    } else {
        1.0
    };
    let (sx, sy) = (
        (nx as f64 * scale).round() as usize,
        (ny as f64 * scale).round() as usize,
    );
    let sample = Grid::new(sx, sy, dx, dy).map_err(|e| anyhow!(e))?;
    let u0 = initial(family, &sample, &mut rng);
    let sample_boundary = if boundary == Boundary::ZeroFlux {
        Boundary::ZeroFlux
    } else {
        Boundary::Periodic
    };
    let spec = if continuum {
        OperatorSpec {
            boundary: sample_boundary,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        }
    } else {
        // Forward Euler inside its stability bound (per-step number <= 0.45 of 1).
        let n = (vn / 0.45).ceil().max(1.0) as u32;
        OperatorSpec {
            boundary: sample_boundary,
            laplacian: Laplacian::FivePoint,
            n_sub: SubSteps::Finite(n),
        }
    };
    let mut field = evolve_exact(&u0, &sample, spec, alpha, dt_save, t);
    let camera = rng.random::<f64>() < 0.5;
    let gamma = camera && rng.random::<f64>() < 0.2;
    let noise = !camera && rng.random::<f64>() < 0.4;
    // The signal fills 30-90% of the range above a black level of up to 8% of it.
    let bits = [8, 12, 12, 16][rng.random_range(0..4)];
    let top = ((1u64 << bits) - 1) as f64;
    let black_level = rng.random_range(0.0..0.08) * top;
    let peak_electrons = log_uniform(&mut rng, 300.0, 1e5);
    let cam = Camera {
        psf_sigma: rng.random_range(0.0..2.0),
        peak_electrons,
        background_fraction: rng.random_range(0.0..0.3),
        gain: peak_electrons / (rng.random_range(0.3..0.9) * (top - black_level)),
        black_level,
        read_noise: rng.random_range(0.0..3.0) * (top / 4095.0).max(0.3),
        bits,
    };
    if camera {
        gaussian_blur(
            &mut field,
            sx,
            sy,
            cam.psf_sigma,
            sample_boundary == Boundary::Periodic,
        );
    }
    if boundary == Boundary::Open {
        let (ox, oy) = (rng.random_range(0..=sx - nx), rng.random_range(0..=sy - ny));
        field = field
            .chunks_exact(sx * sy)
            .flat_map(|f| {
                (0..nx).flat_map(move |x| (0..ny).map(move |y| f[(ox + x) * sy + oy + y]))
            })
            .collect();
    }
    if camera {
        if gamma {
            let g = log_uniform(&mut rng, 0.8, 1.25);
            let (lo, hi) = field
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            let span = (hi - lo).max(f64::MIN_POSITIVE);
            field
                .iter_mut()
                .for_each(|x| *x = ((*x - lo) / span).powf(g));
        }
        field = cam.record(&field, &mut rng);
    } else if noise {
        let n = (nx * ny) as f64;
        let f0 = &field[..nx * ny];
        let mean = f0.iter().sum::<f64>() / n;
        let sd = (f0.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let level = log_uniform(&mut rng, 1e-4, 3e-2) * sd;
        field
            .iter_mut()
            .for_each(|x| *x += level * safe_data::camera::gauss(&mut rng));
    }
    let meta = Meta::parse(
        Some(&format!(
            r#"{{"dx":{dx},"dy":{dy},"dt_save":{dt_save},"alpha":{},"process":"diffusion"}}"#,
            -alpha
        )),
        &Default::default(),
    )
    .map_err(|e| anyhow!(e))?;
    let name = format!("universal-{seed}-{i}");
    let p = Path::new(&name);
    let video = Video::from_parts(
        p,
        p,
        &[t, nx, ny],
        field.into_iter().map(|x| x as f32).collect(),
        meta,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let kind = format!(
        "{family}/{}/{}/{}",
        if continuum { "continuum" } else { "five-point" },
        boundary,
        if gamma {
            "camera+gamma"
        } else if camera {
            "camera"
        } else if noise {
            "noise"
        } else {
            "clean"
        }
    );
    Ok(Drawn { video, kind })
}

/// A video prepared as `infer` prepares it, without the frames and loss terms the
/// estimator-only training does not read (memory: thousands of videos).
pub fn prepare_light(cfg: &Config, v: &Video, s: &EstimateSettings) -> Result<TrainVideo> {
    let (frames, prep) = prepare_video(v, s).map_err(|e| anyhow!("{}: {e}", v.source.display()))?;
    let mut tv = crate::training::model_input(&cfg.model, v, s, &frames, &prep);
    tv.frames = Vec::new();
    Ok(tv)
}

/// Draw and prepare videos `range` of stream `seed` in parallel (`tick` once per video).
pub fn prepared_videos(
    cfg: &Config,
    seed: u64,
    range: std::ops::Range<usize>,
    tick: &(dyn Fn() + Sync),
) -> Result<Vec<TrainVideo>> {
    let s = EstimateSettings::default();
    let all: Vec<Result<TrainVideo>> = range
        .into_par_iter()
        .map(|i| {
            let tv = draw(seed, i).and_then(|d| prepare_light(cfg, &d.video, &s));
            tick();
            tv
        })
        .collect();
    // A draw can be unusable as a user's video can (e.g. decayed to nothing within the
    // camera's precision): skip it as `infer` would refuse it, but say how many.
    let n = all.len();
    let mut errors = Vec::new();
    let ok: Vec<TrainVideo> = all
        .into_iter()
        .filter_map(|r| r.map_err(|e| errors.push(e.to_string())).ok())
        .collect();
    if !errors.is_empty() {
        eprintln!(
            "{} of {n} drawn videos skipped (first: {})",
            errors.len(),
            errors[0]
        );
    }
    if ok.len() * 2 < n {
        bail!("most drawn videos were unusable; first: {}", errors[0]);
    }
    Ok(ok)
}

/// Train the universal model into `out` on `n_train` drawn videos (validation: the next
/// `n_val` of the same stream).
pub fn train_universal(
    cfg: &Config,
    n_train: usize,
    n_val: usize,
    out: &Path,
    resume: bool,
    tick: &(dyn Fn() + Sync),
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainOutcome> {
    if cfg.model.units != safe_model::model::Units::Rate || cfg.train.augment {
        bail!(
            "universal training needs model.units = \"rate\" and train.augment = false (it keeps no frames)"
        );
    }
    let seed = cfg.train.seed;
    let train_v = prepared_videos(cfg, seed, 0..n_train, tick)?;
    let val_v = prepared_videos(cfg, seed, n_train..n_train + n_val, tick)?;
    let outcome =
        train(cfg, &train_v, &val_v, out, resume, progress).map_err(|e| anyhow!("{e}"))?;
    crate::training::write_curves(out, &outcome.state.history)?;
    let best = crate::training::TrainedModel::load(out)?;
    let (tau, before, after) = calibrate_shrink(&best.model, &best.config, &val_v);
    eprintln!(
        "amortised shrinkage calibrated on the {} validation videos: tau = {tau:.3} (mean |ln error| {before:.3e} -> {after:.3e})",
        val_v.len()
    );
    let mut c = best.config.clone();
    c.model.shrink = tau;
    safe_data::atomic::write_atomic(&out.join("config.toml"), c.to_toml().as_bytes(), true)
        .map_err(|e| anyhow!("{}: {e}", out.display()))?;
    Ok(outcome)
}

/// The soft threshold on the amortised log factor (`model.shrink`) that minimises the mean
/// absolute log error over `val` (a grid of 0..0.5 in steps of 0.0025; absolute, like the
/// MAE users judge by, and not dominated by the few videos no input explains), with that
/// error before and after. Where the prior is already right the network's correction is
/// noise; thresholding removes it without losing the large corrections where it fails.
pub fn calibrate_shrink(
    model: &safe_model::model::SafePitCm,
    cfg: &Config,
    val: &[TrainVideo],
) -> (f64, f64, f64) {
    let pairs: Vec<(f64, f64)> = val
        .par_iter()
        .filter_map(|v| {
            let truth = v.alpha_abs? / v.alpha_unit();
            let y = safe_model::infer::raw_output(model, cfg, v);
            (truth > 0.0 && y > 0.0 && truth.is_finite() && y.is_finite())
                .then(|| (y.ln(), truth.ln()))
        })
        .collect();
    let err = |tau: f64| {
        pairs
            .iter()
            .map(|&(y, t)| (safe_model::infer::shrunk(y.exp(), tau).ln() - t).abs())
            .sum::<f64>()
            / pairs.len().max(1) as f64
    };
    let best = (0..=200)
        .map(|i| i as f64 * 0.0025)
        .min_by(|a, b| err(*a).total_cmp(&err(*b)))
        .unwrap_or(0.0);
    (best, err(0.0), err(best))
}
