//! The loss curve and the open-window loss against the literal loss, their derivatives
//! against finite differences, and recovery of `|alpha|` on data from each boundary.

use super::reference::safe_loss_naive;
use super::*;
use crate::grid::Grid;
use crate::initial::{grain_centres, roughness_field, voronoi_field};
use crate::operator::{Boundary, Laplacian, OperatorSpec, SafeOperator, SubSteps};
use crate::simulate::{SimParams, Solver, evolve_exact, simulate_f64};
use rand::{Rng, SeedableRng};

fn spec(b: Boundary, l: Laplacian, n: SubSteps) -> OperatorSpec {
    OperatorSpec {
        boundary: b,
        laplacian: l,
        n_sub: n,
    }
}

fn voronoi(grid: Grid, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let c = grain_centres(&grid, 8, &mut rng);
    let xi = roughness_field(&grid, 1.0, 3.0, &mut rng);
    voronoi_field(&grid, &c, 2.5, &xi)
}

/// Paper-style Euler video (periodic five-point).
fn video(grid: Grid, alpha: f64, dt: f64, steps: usize, every: usize, seed: u64) -> Vec<Vec<f64>> {
    let p = SimParams {
        grid,
        alpha_abs: alpha,
        dt,
        n_steps: steps,
        save_interval: every,
    };
    let (f, _) = simulate_f64(&voronoi(grid, seed), &p, Solver::Spectral).unwrap();
    f.chunks(grid.len()).map(|c| c.to_vec()).collect()
}

fn frames_of(v: &[f64], n: usize) -> Vec<Vec<f64>> {
    v.chunks(n).map(|c| c.to_vec()).collect()
}

fn curve_of(
    frames: &[Vec<f64>],
    grid: &Grid,
    s: OperatorSpec,
    dt: f64,
    strides: &[usize],
) -> SafeLossCurve {
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    let v = VideoSpectra::compute(&refs, grid, s.boundary);
    SafeLossCurve::new(&v, &SafeOperator::new(*grid, s, dt), strides)
}

fn random_frames(g: &Grid, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..g.len()).map(|_| rng.random::<f64>()).collect())
        .collect()
}

/// `frames` plus uniform noise of width `amp` (variance `amp^2 / 12`).
fn with_uniform_noise(frames: &[Vec<f64>], amp: f64, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    frames
        .iter()
        .map(|f| {
            f.iter()
                .map(|x| x + amp * (rng.random::<f64>() - 0.5))
                .collect()
        })
        .collect()
}

#[test]
fn curve_matches_naive_loss_for_diagonal_boundaries() {
    let g = Grid::new(12, 9, 0.5, 0.7).unwrap();
    let frames = random_frames(&g, 5, 8);
    for b in [Boundary::Periodic, Boundary::ZeroFlux] {
        for l in [Laplacian::FivePoint, Laplacian::Continuum] {
            for n in [SubSteps::Finite(2), SubSteps::Finite(5), SubSteps::Infinite] {
                let s = spec(b, l, n);
                for strides in [vec![1], vec![1, 2]] {
                    let curve = curve_of(&frames, &g, s, 0.25, &strides);
                    for a in [0.05, 0.3, 0.7] {
                        let naive: f64 = strides
                            .iter()
                            .map(|&h| safe_loss_naive(&frames, &g, s, a, 0.25, h, (0, 0)))
                            .sum::<f64>()
                            / strides.len() as f64;
                        let fast = curve.eval(a).loss;
                        assert!(
                            (naive - fast).abs() <= 1e-11 * naive.max(1.0),
                            "{s} {strides:?} a={a}: {naive} {fast}"
                        );
                    }
                }
            }
        }
    }
}

/// Also on a window whose lengths are slow to transform (37 x 41), which runs on a 40 x 42
/// grid: the window extended by its mirror image. The reference runs literally on that
/// extension, and on the mirror alone the loss moves by the kernel's tail only.
#[test]
fn window_loss_matches_naive_masked_loss() {
    for (nx, ny) in [(40, 36), (37, 41)] {
        window_loss_matches_naive_on(Grid::new(nx, ny, 0.5, 0.6).unwrap());
    }
}

fn window_loss_matches_naive_on(g: Grid) {
    use crate::loss::reference::safe_loss_naive_in;
    use crate::loss::window::transform_len;
    let frames = random_frames(&g, 4, 3);
    let (px, py) = (transform_len(g.nx), transform_len(g.ny));
    let fold = |i: usize, n: usize| if i < n { i } else { 2 * n - 1 - i };
    let padded_grid = Grid::new(px, py, g.dx, g.dy).unwrap();
    let padded: Vec<Vec<f64>> = frames
        .iter()
        .map(|f| {
            (0..px * py)
                .map(|k| f[fold(k / py, g.nx) * g.ny + fold(k % py, g.ny)])
                .collect()
        })
        .collect();
    for l in [Laplacian::FivePoint, Laplacian::Continuum] {
        for n in [SubSteps::Finite(3), SubSteps::Infinite] {
            let s = spec(Boundary::Open, l, n);
            let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
            let mut w = WindowLoss::new(&refs, &g, s, 0.25, &[1, 2]);
            w.set_margins(0.4);
            for a in [0.1, 0.4] {
                let naive_on = |f: &[Vec<f64>], grid: &Grid| -> f64 {
                    [0usize, 1]
                        .iter()
                        .map(|&si| {
                            let (h, m) = (w.strides[si], w.margins[si]);
                            safe_loss_naive_in(f, grid, (g.nx, g.ny), s, a, 0.25, h, m)
                        })
                        .sum::<f64>()
                        / 2.0
                };
                let naive = naive_on(&padded, &padded_grid);
                let fast = w.eval(a, 0).loss;
                assert!(
                    (naive - fast).abs() <= 1e-11 * naive.max(1.0),
                    "{s} a={a}: {naive} {fast}"
                );
                // The extension past the mirror reaches the masked pixels only through the
                // kernel's tail (white noise, the worst case: 3e-13 relative measured).
                let mirror = naive_on(&frames, &g);
                assert!(
                    (mirror - fast).abs() <= 1e-11 * mirror,
                    "{s} a={a}: mirror {mirror} extended {fast}"
                );
            }
        }
    }
}

#[test]
fn window_loss_is_the_same_bits_on_any_thread_count() {
    let g = Grid::new(40, 36, 0.5, 0.6).unwrap();
    let frames = random_frames(&g, 24, 5);
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    let s = spec(Boundary::Open, Laplacian::Continuum, SubSteps::Infinite);
    let mut w = WindowLoss::new(&refs, &g, s, 0.25, &[1, 2]);
    w.set_margins(0.4);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let e = w.eval_pairs(0.3, &w.all_pairs(), 2, true);
            let (raw, corr) = w.change_at_zero();
            let mut bits = vec![e.point.loss, e.point.d1, e.point.d2, e.raw, raw, corr];
            bits.extend(&e.block_d1);
            bits.iter().map(|x| x.to_bits()).collect::<Vec<u64>>()
        })
    };
    let one = run(1);
    for threads in [2, 3, 7] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn derivatives_match_finite_differences() {
    let g = Grid::new(28, 24, 0.5, 0.5).unwrap();
    let frames = video(g, 0.4, 0.005, 150, 50, 3);
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    for n in [
        SubSteps::Finite(1),
        SubSteps::Finite(3),
        SubSteps::Finite(50),
        SubSteps::Infinite,
    ] {
        let curve = curve_of(
            &frames,
            &g,
            spec(Boundary::Periodic, Laplacian::FivePoint, n),
            0.25,
            &[1, 2],
        );
        let mut w = WindowLoss::new(
            &refs,
            &g,
            spec(Boundary::Open, Laplacian::Continuum, n),
            0.25,
            &[1],
        );
        w.set_margins(1.0);
        for a in [0.1, 0.37, 0.9] {
            let h = 1e-5 * a;
            let check = |name: &str, p: LossPoint, lp: LossPoint, lm: LossPoint| {
                let fd1 = (lp.loss - lm.loss) / (2.0 * h);
                let fd2 = (lp.d1 - lm.d1) / (2.0 * h);
                assert!(
                    (fd1 - p.d1).abs() <= 1e-6 * (p.d1.abs() + 1e-9),
                    "{name} {n} a={a}: {fd1} {}",
                    p.d1
                );
                assert!(
                    (fd2 - p.d2).abs() <= 1e-5 * (p.d2.abs() + 1e-9),
                    "{name} {n} a={a}: {fd2} {}",
                    p.d2
                );
            };
            check("curve", curve.eval(a), curve.eval(a + h), curve.eval(a - h));
            check("window", w.eval(a, 2), w.eval(a + h, 2), w.eval(a - h, 2));
        }
    }
}

#[test]
fn recovers_alpha_from_euler_data_to_rounding() {
    for &(nx, ny, dx, dy, alpha, every) in &[
        (32, 32, 0.5, 0.5, 0.35, 50),
        (40, 24, 0.5, 0.8, 0.62, 50),
        (24, 36, 0.7, 0.4, 0.13, 20),
    ] {
        let g = Grid::new(nx, ny, dx, dy).unwrap();
        let dt = 0.005;
        let frames = video(g, alpha, dt, every * 12, every, 11);
        let s = spec(
            Boundary::Periodic,
            Laplacian::FivePoint,
            SubSteps::Finite(every as u32),
        );
        let r = fit_alpha(
            &curve_of(&frames, &g, s, dt * every as f64, &[1]),
            &FitOptions::default(),
        )
        .unwrap();
        assert!(
            (r.alpha_abs - alpha).abs() < 1e-9,
            "{nx}x{ny}: {} vs {alpha}",
            r.alpha_abs
        );
        assert!(!r.at_bound);
        assert!(r.stderr < 1e-6, "{}", r.stderr);
        // With a wrong sub-step count the fit is biased: the test can tell them apart.
        let wrong = spec(
            Boundary::Periodic,
            Laplacian::FivePoint,
            SubSteps::Finite(2),
        );
        let r2 = fit_alpha(
            &curve_of(&frames, &g, wrong, dt * every as f64, &[1]),
            &FitOptions::default(),
        )
        .unwrap();
        assert!((r2.alpha_abs - alpha).abs() > 1e-6);
    }
}

/// Exact evolutions under each boundary and discretisation are fitted to rounding by the
/// matching operator; open windows are crops of a larger periodic sample.
#[test]
fn recovers_alpha_under_every_boundary() {
    let alpha = 0.43;
    for l in [Laplacian::FivePoint, Laplacian::Continuum] {
        for n in [SubSteps::Finite(10), SubSteps::Infinite] {
            // Zero-flux and periodic: evolve the box itself.
            for b in [Boundary::Periodic, Boundary::ZeroFlux] {
                let g = Grid::new(30, 22, 0.5, 0.6).unwrap();
                let s = spec(b, l, n);
                let f = frames_of(
                    &evolve_exact(&voronoi(g, 5), &g, s, alpha, 0.25, 12),
                    g.len(),
                );
                let r =
                    fit_alpha(&curve_of(&f, &g, s, 0.25, &[1]), &FitOptions::default()).unwrap();
                assert!((r.alpha_abs - alpha).abs() < 1e-9, "{s}: {}", r.alpha_abs);
            }
            // Open: a crop of a periodic sample three times the window's size.
            let big = Grid::new(96, 90, 0.5, 0.6).unwrap();
            let whole = spec(Boundary::Periodic, l, n);
            let f = evolve_exact(&voronoi(big, 6), &big, whole, alpha, 0.25, 12);
            let (ox, oy, wx, wy) = (20, 31, 48, 44);
            let crop: Vec<Vec<f64>> = f
                .chunks(big.len())
                .map(|fr| {
                    (0..wx)
                        .flat_map(|i| (0..wy).map(move |j| fr[(ox + i) * big.ny + oy + j]))
                        .collect()
                })
                .collect();
            let win = Grid::new(wx, wy, 0.5, 0.6).unwrap();
            let refs: Vec<&[f64]> = crop.iter().map(|x| x.as_slice()).collect();
            let s = spec(Boundary::Open, l, n);
            let mut w = WindowLoss::new(&refs, &win, s, 0.25, &[1]);
            let r = fit_window(&mut w, &FitOptions::default()).unwrap();
            eprintln!("{s}: {r:?} margins {:?} at {}", w.margins, w.margin_alpha);
            for a in [0.01, 0.1, 0.15, 0.2, 0.3, 0.43, 0.6, 0.9] {
                eprintln!("  L({a}) = {:?}", w.eval(a, 2));
            }
            assert!((r.alpha_abs - alpha).abs() < 1e-8, "{s}: {}", r.alpha_abs);
            // The periodic model of the same crop is badly wrong: the test can fail.
            let p = fit_alpha(
                &curve_of(&crop, &win, whole, 0.25, &[1]),
                &FitOptions::default(),
            )
            .unwrap();
            assert!((p.alpha_abs - alpha).abs() > 1e-3, "{}", p.alpha_abs);
        }
    }
}

#[test]
fn reversed_curve_is_the_curve_of_the_reversed_video() {
    let g = Grid::new(16, 12, 0.5, 0.7).unwrap();
    let frames = random_frames(&g, 6, 2);
    let mut rev = frames.clone();
    rev.reverse();
    for b in [Boundary::Periodic, Boundary::ZeroFlux] {
        let s = spec(b, Laplacian::FivePoint, SubSteps::Finite(4));
        let (c, r) = (
            curve_of(&frames, &g, s, 0.25, &[1, 3]),
            curve_of(&rev, &g, s, 0.25, &[1, 3]),
        );
        let cr = c.reversed();
        for a in [0.1, 0.5] {
            let (x, y) = (cr.eval(a), r.eval(a));
            assert!((x.loss - y.loss).abs() < 1e-12 * y.loss.abs().max(1.0));
            assert!((x.d1 - y.d1).abs() < 1e-11 * y.d1.abs().max(1.0));
        }
        // And another operator on the same sums equals building it afresh.
        let s2 = spec(b, Laplacian::Continuum, SubSteps::Infinite);
        let other = c.with_operator(&SafeOperator::new(g, s2, 0.25));
        let fresh = curve_of(&frames, &g, s2, 0.25, &[1, 3]);
        assert!((other.eval(0.3).loss - fresh.eval(0.3).loss).abs() < 1e-13);
    }
}

fn gauss(rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
    let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[test]
fn noise_correction_removes_the_bias_of_noisy_frames() {
    let g = Grid::new(64, 64, 0.5, 0.5).unwrap();
    let clean = video(g, 0.4, 0.005, 1500, 50, 21);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let sigma = 0.01;
    let noisy: Vec<Vec<f64>> = clean
        .iter()
        .map(|f| f.iter().map(|x| x + sigma * gauss(&mut rng)).collect())
        .collect();
    let refs: Vec<&[f64]> = noisy.iter().map(|f| f.as_slice()).collect();
    let s = OperatorSpec::PAPER;
    let vs = VideoSpectra::compute(&refs, &g, s.boundary);
    let nm = estimate_noise(&vs, &[1]);
    // Noise drawn afresh each frame: no frame-to-frame correlation.
    assert!(nm.rho[0] < 0.05, "{nm:?}");
    assert!(
        (nm.std() / sigma - 1.0).abs() < 0.05,
        "estimated sigma {}",
        nm.std()
    );
    let raw = SafeLossCurve::new(&vs, &SafeOperator::new(g, s, 0.25), &[1]);
    let fixed = raw.clone().with_noise(nm.clone());
    let opts = FitOptions::default();
    let (a_raw, a_fix) = (
        fit_alpha(&raw, &opts).unwrap().alpha_abs,
        fit_alpha(&fixed, &opts).unwrap().alpha_abs,
    );
    assert!(
        (a_raw - 0.4).abs() > 0.05,
        "raw fit should be biased: {a_raw}"
    );
    assert!((a_fix - 0.4).abs() < 0.01, "corrected fit: {a_fix}");
    // Noise-free data: the estimate sits at rounding level and changes nothing.
    let refs: Vec<&[f64]> = clean.iter().map(|f| f.as_slice()).collect();
    let vs = VideoSpectra::compute(&refs, &g, s.boundary);
    let nm0 = estimate_noise(&vs, &[1]);
    assert!(nm0.var < 1e-20, "{nm0:?}");
    let c = SafeLossCurve::new(&vs, &SafeOperator::new(g, s, 0.25), &[1]);
    let (x, y) = (
        fit_alpha(&c, &opts).unwrap().alpha_abs,
        fit_alpha(&c.clone().with_noise(nm0), &opts)
            .unwrap()
            .alpha_abs,
    );
    assert!((x - y).abs() < 1e-12);
}

/// The sandwich error bar has the size of the actual spread of estimates over noise draws
/// (the curvature-only one was ~3x too small on this kind of data).
#[test]
fn sandwich_stderr_matches_the_spread_over_noise_draws() {
    let g = Grid::new(32, 32, 0.5, 0.5).unwrap();
    let clean = video(g, 0.3, 0.005, 1000, 50, 4);
    let s = OperatorSpec::PAPER;
    let op = SafeOperator::new(g, s, 0.25);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (mut est, mut se) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let noisy: Vec<Vec<f64>> = clean
            .iter()
            .map(|f| f.iter().map(|x| x + 0.01 * gauss(&mut rng)).collect())
            .collect();
        let refs: Vec<&[f64]> = noisy.iter().map(|f| f.as_slice()).collect();
        let vs = VideoSpectra::compute(&refs, &g, s.boundary);
        let c = SafeLossCurve::new(&vs, &op, &[1]).with_noise(estimate_noise(&vs, &[1]));
        let r = fit_alpha(&c, &FitOptions::default()).unwrap();
        est.push(r.alpha_abs);
        se.push(r.stderr);
    }
    let mean = est.iter().sum::<f64>() / est.len() as f64;
    let sd = (est.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (est.len() - 1) as f64).sqrt();
    let mse = se.iter().sum::<f64>() / se.len() as f64;
    assert!(
        mse / sd > 0.6 && mse / sd < 1.6,
        "stderr {mse:e} vs spread {sd:e}"
    );
}

#[test]
fn constant_video_is_an_error_not_a_number() {
    let g = Grid::new(8, 8, 0.5, 0.5).unwrap();
    let frames = vec![vec![0.7; 64]; 5];
    let c = curve_of(&frames, &g, OperatorSpec::PAPER, 0.25, &[1]);
    assert_eq!(
        fit_alpha(&c, &FitOptions::default()),
        Err(FitError::NoStructure)
    );
    let one = vec![vec![0.7; 64]];
    let c = curve_of(&one, &g, OperatorSpec::PAPER, 0.25, &[1]);
    assert_eq!(
        fit_alpha(&c, &FitOptions::default()),
        Err(FitError::TooFewFrames(1))
    );
}

#[test]
fn unstable_sub_steps_find_the_global_basin() {
    // N_sub = 2 is unstable for alpha = 0.6 on this grid; the loss is a quartic with a
    // second basin. The scan must return the global minimum, cross-checked by brute force.
    let g = Grid::new(32, 32, 0.5, 0.5).unwrap();
    let frames = video(g, 0.6, 0.005, 500, 50, 2);
    let s = spec(
        Boundary::Periodic,
        Laplacian::FivePoint,
        SubSteps::Finite(2),
    );
    let curve = curve_of(&frames, &g, s, 0.25, &[1]);
    let r = fit_alpha(&curve, &FitOptions::default()).unwrap();
    let brute = (1..20000)
        .map(|i| i as f64 * 1e-4)
        .map(|a| (curve.eval(a).loss, a))
        .fold((f64::INFINITY, 0.0), |b, x| if x.0 < b.0 { x } else { b });
    assert!(r.safe_loss <= brute.0 * (1.0 + 1e-9));
    assert!((r.alpha_abs - brute.1).abs() < 2e-4);
}

/// A periodic video smoothed hard between frames (von Neumann number ~30 per frame, float32
/// frames; the initial field of `tools/independent-check/make_data.py`: Fourier modes and
/// tanh discs) leaves a residual at rounding: its edge/inner ratio is noise and must not
/// turn the boundary to `open` (it did, and the open fit failed at a bound).
#[test]
fn a_residual_at_rounding_keeps_the_periodic_boundary() {
    use crate::estimate::{EstimateOptions, estimate};
    use std::f64::consts::PI;
    let g = Grid::new(64, 80, 0.6, 0.5).unwrap();
    let (alpha, dt, every) = (0.151, 0.146, 50);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let (lx, ly) = (g.nx as f64 * g.dx, g.ny as f64 * g.dy);
    let mut u0 = vec![0.0; g.len()];
    for _ in 0..12 {
        let (kx, ky) = (
            rng.random_range(-6i32..7) as f64,
            rng.random_range(-6i32..7) as f64,
        );
        let (amp, ph) = (rng.random_range(-1.0..1.0), rng.random_range(0.0..2.0 * PI));
        for i in 0..g.nx {
            for j in 0..g.ny {
                let (x, y) = (i as f64 * g.dx, j as f64 * g.dy);
                u0[i * g.ny + j] += amp * (2.0 * PI * (kx * x / lx + ky * y / ly) + ph).cos()
                    / (1.0 + kx * kx + ky * ky);
            }
        }
    }
    for _ in 0..6 {
        let (cx, cy, r) = (
            rng.random_range(0.0..lx),
            rng.random_range(0.0..ly),
            rng.random_range(2.0..6.0),
        );
        for i in 0..g.nx {
            for j in 0..g.ny {
                let dx = (i as f64 * g.dx - cx).abs();
                let dy = (j as f64 * g.dy - cy).abs();
                let (dx, dy) = (dx.min(lx - dx), dy.min(ly - dy));
                u0[i * g.ny + j] += 0.5 * (1.0 + ((r - (dx * dx + dy * dy).sqrt()) / 1.5).tanh());
            }
        }
    }
    let p = SimParams {
        grid: g,
        alpha_abs: alpha,
        dt,
        n_steps: every * 30,
        save_interval: every,
    };
    let (f, _) = simulate_f64(&u0, &p, Solver::Spectral).unwrap();
    let f32s: Vec<Vec<f32>> = f
        .chunks(g.len())
        .map(|c| c.iter().map(|&x| x as f32).collect())
        .collect();
    let refs: Vec<&[f32]> = f32s.iter().map(|f| f.as_slice()).collect();
    let e = estimate(&refs, &g, dt * every as f64, &EstimateOptions::default()).unwrap();
    assert_eq!(
        e.prepared.spec.boundary,
        Boundary::Periodic,
        "{:?}",
        e.prepared.decisions
    );
    assert!(
        (e.fit.alpha_abs - alpha).abs() < 1e-7,
        "{}",
        e.fit.alpha_abs
    );
}

/// Rounding error repeats between frames where the field moves less than a grey level, with
/// a correlation that follows the field's speed: such videos keep stride 1 (longer strides
/// biased |alpha| by +0.7 stderr on independent 8-bit videos), white noise adds strides.
#[test]
fn repeating_rounding_noise_keeps_stride_one_and_white_noise_adds_strides() {
    use crate::estimate::{EstimateOptions, estimate};
    let g = Grid::new(64, 64, 0.5, 0.5).unwrap();
    // Paper-like: 101 frames, the late ones moving well under a grey level per frame.
    let alpha = 0.5;
    let clean = video(g, alpha, 0.005, 5000, 50, 8);
    let (lo, hi) = clean
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let eight_bit: Vec<Vec<f32>> = clean
        .iter()
        .map(|f| {
            f.iter()
                .map(|x| ((x - lo) / (hi - lo) * 255.0).round() as f32)
                .collect()
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let white: Vec<Vec<f32>> = clean
        .iter()
        .map(|f| {
            f.iter()
                .map(|x| (x + 0.01 * (hi - lo) * gauss(&mut rng)) as f32)
                .collect()
        })
        .collect();
    let opts = EstimateOptions {
        n_sub: SubSteps::Finite(50),
        ..Default::default()
    };
    let run = |v: &[Vec<f32>]| {
        let refs: Vec<&[f32]> = v.iter().map(|f| f.as_slice()).collect();
        estimate(&refs, &g, 0.25, &opts).unwrap()
    };
    let e = run(&eight_bit);
    assert_eq!(
        e.prepared.strides,
        vec![1],
        "rho {:?}: {:?}",
        e.prepared.noise,
        e.prepared.decisions
    );
    assert!(e.prepared.noise.rho_at(1) > crate::estimate::REPEATING_NOISE_RHO);
    assert!(
        (e.fit.alpha_abs - alpha).abs() < 3.0 * e.stderr,
        "{} +- {}",
        e.fit.alpha_abs,
        e.stderr
    );
    let e = run(&white);
    assert_eq!(
        e.prepared.strides,
        vec![1, 2, 4, 8, 16],
        "{:?}",
        e.prepared.decisions
    );
}

/// The binomial low-pass with the half-sample mirror equals its definition: every output
/// pixel the double sum of taps over mirrored indices (rows and columns shorter and longer
/// than the filter).
#[test]
fn binomial_mirror_matches_its_definition() {
    use crate::loss::window::binomial_mirror;
    for &(nx, ny, q) in &[(7usize, 9usize, 2u32), (13, 30, 5), (4, 3, 3), (12, 12, 0)] {
        let x: Vec<f64> = (0..nx * ny)
            .map(|i| ((i as f64) * 0.618_034).fract() - 0.5)
            .collect();
        let mut fast = vec![0.0; nx * ny];
        binomial_mirror(&x, &mut fast, nx, ny, q);
        let r = q as isize;
        // C(2q, k) / 4^q
        let tap = |k: isize| -> f64 {
            let (n, k) = (2 * q as u64, k as u64);
            let mut c = 1.0f64;
            for i in 0..k {
                c = c * (n - i) as f64 / (i + 1) as f64;
            }
            c / 4f64.powi(q as i32)
        };
        let fold = |i: isize, n: usize| -> usize {
            let n = n as isize;
            let p = i.rem_euclid(2 * n);
            (if p < n { p } else { 2 * n - 1 - p }) as usize
        };
        for i in 0..nx {
            for j in 0..ny {
                let mut v = 0.0;
                for a in 0..=2 * r {
                    for b in 0..=2 * r {
                        v += tap(a)
                            * tap(b)
                            * x[fold(i as isize + a - r, nx) * ny + fold(j as isize + b - r, ny)];
                    }
                }
                assert!(
                    (v - fast[i * ny + j]).abs() < 1e-12,
                    "{nx}x{ny} q={q} at ({i},{j}): {} vs {v}",
                    fast[i * ny + j]
                );
            }
        }
    }
}

/// With `N_sub = inf` the noise quadrature is summed axis by axis; the mode-by-mode sum is
/// its reference.
#[test]
fn separable_noise_terms_match_the_mode_by_mode_sum() {
    let g = Grid::new(33, 28, 0.5, 0.6).unwrap();
    let frames = random_frames(&g, 6, 9);
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    for l in [Laplacian::FivePoint, Laplacian::Continuum] {
        let s = spec(Boundary::Open, l, SubSteps::Infinite);
        let w = WindowLoss::new(&refs, &g, s, 0.25, &[1, 3]);
        for a in [0.0, 0.05, 0.4, 3.0] {
            for h in [1, 3] {
                for rho in [0.0, 0.3] {
                    let fast = w.noise_terms_separable(a, h, rho);
                    let grid = w.noise_terms_on_grid(a, h, rho);
                    for (x, y) in [(fast.0, grid.0), (fast.1, grid.1), (fast.2, grid.2)] {
                        assert!(
                            (x - y).abs() <= 1e-12 * y.abs().max(grid.0.abs()),
                            "{s} a={a} h={h} rho={rho}: {fast:?} vs {grid:?}"
                        );
                    }
                }
            }
        }
    }
}

/// The interior noise variance read from the summed-area table equals the direct mean of
/// the noise map over the interior.
#[test]
fn interior_noise_variance_matches_the_direct_mean() {
    let g = Grid::new(30, 26, 0.5, 0.5).unwrap();
    let frames = random_frames(&g, 5, 4);
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    let s = spec(Boundary::Open, Laplacian::Continuum, SubSteps::Infinite);
    let mut w = WindowLoss::new(&refs, &g, s, 0.25, &[1, 2]).with_noise(
        crate::loss::NoiseModel::white(0.7),
        crate::operator::KERNEL_TAIL,
    );
    let map = super::window::high_pass_map(&refs, g.nx, g.ny);
    let mean = |x0: usize, x1: usize, y0: usize, y1: usize| {
        let mut acc = 0.0;
        for i in x0..x1 {
            for j in y0..y1 {
                acc += map[i * g.ny + j];
            }
        }
        acc / ((x1 - x0) * (y1 - y0)) as f64
    };
    for a in [0.05, 0.3, 1.0] {
        w.set_margins(a);
        for si in 0..w.strides.len() {
            let (mx, my) = w.margins[si];
            let (mx, my) = (mx.max(1), my.max(1));
            let want = 0.7 * mean(mx, g.nx - mx, my, g.ny - my) / mean(1, g.nx - 1, 1, g.ny - 1);
            let got = w.interior_var(si);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "a={a} si={si}: {got} vs {want}"
            );
        }
    }
}

/// The blocks' curvature shares are the derivatives of their slope shares (noise correction
/// included), both sum to the loss's, and the carried losses follow a fresh evaluation to
/// second order: what the polish's last step reads instead of evaluating again.
#[test]
fn block_shares_match_finite_differences_and_carry_to_the_next_point() {
    let g = Grid::new(34, 30, 0.5, 0.5).unwrap();
    let clean = video(g, 0.4, 0.005, 150, 50, 3);
    let frames = with_uniform_noise(&clean, 0.02, 12);
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    let s = spec(Boundary::Open, Laplacian::Continuum, SubSteps::Infinite);
    let mut w = WindowLoss::new(&refs, &g, s, 0.25, &[1, 2])
        .with_noise(crate::loss::NoiseModel::white(0.02f64.powi(2) / 12.0), 1e-8);
    w.set_margins(0.8);
    let pairs = w.all_pairs();
    for a in [0.2, 0.4] {
        let e = w.eval_pairs(a, &pairs, 2, true);
        assert!(e.block_d1.len() > 1);
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        assert!((sum(&e.block_d1) - e.point.d1).abs() <= 1e-9 * e.point.d1.abs().max(1e-12));
        assert!((sum(&e.block_d2) - e.point.d2).abs() <= 1e-9 * e.point.d2.abs());
        let h = 1e-5 * a;
        let (ep, em) = (
            w.eval_pairs(a + h, &pairs, 2, true),
            w.eval_pairs(a - h, &pairs, 2, true),
        );
        let scale = e.block_d2.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (b, &d2) in e.block_d2.iter().enumerate() {
            let fd = (ep.block_d1[b] - em.block_d1[b]) / (2.0 * h);
            assert!(
                (fd - d2).abs() <= 1e-5 * scale,
                "a={a} block {b}: {fd} vs {d2}"
            );
        }
        let fd = (ep.raw - em.raw) / (2.0 * h);
        assert!(
            (fd - e.raw_d1).abs() <= 1e-6 * e.raw_d1.abs(),
            "raw d1 {fd} {}",
            e.raw_d1
        );
        let fd = (ep.raw_d1 - em.raw_d1) / (2.0 * h);
        assert!(
            (fd - e.raw_d2).abs() <= 1e-5 * e.raw_d2.abs(),
            "raw d2 {fd} {}",
            e.raw_d2
        );
        // Carried 1% of a (the most the polish carries): the quadratic models' error is
        // third order.
        let da = 0.01 * a;
        let next = w.eval_pairs(a + da, &pairs, 2, true);
        let (raw, corr) = e.losses_at(da);
        let q = 0.5 * e.point.d2 * da * da;
        // Third order: measured 0.45% of the quadratic term at da = a/100.
        let tol = 0.02 * q;
        assert!((raw - next.raw).abs() <= tol, "raw {raw} vs {}", next.raw);
        assert!(
            (corr - next.point.loss).abs() <= tol,
            "corrected {corr} vs {}",
            next.point.loss
        );
        let (carried, fresh) = (e.sandwich_at(da), next.sandwich());
        // The curvature is not carried: it moves by ~1.3 da/a here (1.3% measured at the
        // extreme; the sandwich's own sampling error over ~30 blocks is ~15%).
        assert!(
            (carried - fresh).abs() <= 0.02 * fresh,
            "sandwich {carried} vs {fresh}"
        );
    }
}

/// A loss rescaled by `k` is the loss of the frames times `k` plus any offset (what
/// zero-shot reads off the loss deciding built, for its normalised latent).
#[test]
fn rescaled_loss_is_the_loss_of_rescaled_frames() {
    use crate::Process;
    use crate::estimate::{Prepared, SafeLoss};
    let g = Grid::new(30, 26, 0.5, 0.6).unwrap();
    let frames = random_frames(&g, 6, 21);
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    let (k, offset) = (0.37, 5.0);
    let moved: Vec<Vec<f64>> = frames
        .iter()
        .map(|f| f.iter().map(|x| k * x + offset).collect())
        .collect();
    let moved_refs: Vec<&[f64]> = moved.iter().map(|f| f.as_slice()).collect();
    for b in [Boundary::Periodic, Boundary::ZeroFlux, Boundary::Open] {
        let s = spec(b, Laplacian::Continuum, SubSteps::Infinite);
        let prep = Prepared::fixed(
            Process::Diffusion,
            s,
            vec![1, 2],
            crate::loss::NoiseModel::white(0.01),
        );
        let mut base = SafeLoss::build(&refs, &g, 0.25, &prep, 1.0);
        base.rescale(k);
        let direct = SafeLoss::build(&moved_refs, &g, 0.25, &prep, k);
        for a in [0.05, 0.3] {
            let (x, y) = (base.eval(a), direct.eval(a));
            for (u, v) in [(x.loss, y.loss), (x.d1, y.d1), (x.d2, y.d2)] {
                assert!(
                    (u - v).abs() <= 1e-10 * v.abs().max(x.loss.abs()),
                    "{s} a={a}: {x:?} vs {y:?}"
                );
            }
            assert!((base.raw_loss(a) - direct.raw_loss(a)).abs() <= 1e-10 * direct.raw_loss(a));
        }
    }
}

#[test]
fn multipliers_made_row_by_row_equal_the_grid_tables_bit_for_bit() {
    use super::window::StrideMultiplier;
    use crate::operator::symbol::grid_multipliers;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let grid = Grid::new(12, 9, 0.4, 0.7).unwrap();
    for n in [SubSteps::Infinite, SubSteps::Finite(7)] {
        let op = SafeOperator::new(grid, spec(Boundary::Open, Laplacian::Continuum, n), 0.3);
        let (a, dt_h) = (rng.random_range(0.05..2.0), 0.3 * 4.0);
        let np = grid.len();
        let c: Vec<f64> = (0..np).map(|_| rng.random_range(-1.0..1.0)).collect();
        let [mut m0, mut m1, mut m2] = [vec![0.0; np], vec![0.0; np], vec![0.0; np]];
        grid_multipliers(&op.mu_x, &op.mu_y, a, dt_h, n, &mut m0, &mut m1, &mut m2);
        let m = StrideMultiplier::new(&op, a, dt_h, n, true);
        let px = op.mu_x.len();
        let mut row = vec![0.0; px];
        for (k, table) in [&m0, &m1, &m2].into_iter().enumerate() {
            for q in 0..op.mu_y.len() {
                let r = q * px..(q + 1) * px;
                m.row(k, q, &c[r.clone()], &op.mu_x, &op.mu_y, &mut row);
                for (p, (&x, i)) in row.iter().zip(r).enumerate() {
                    let want = c[i] * table[i];
                    assert_eq!(x.to_bits(), want.to_bits(), "{n:?} k {k} mode ({p}, {q})");
                }
            }
        }
    }
}

/// The polish's masks follow where the approach arrives, not where it started: from the
/// answer and from twice it (Adam stopped 25% away on independent camera windows) the same
/// pixels are evaluated, so fit and zero-shot agree. (Masks kept for the start differed
/// here by a pixel on stride 2; from far above, stride 2 stayed dropped.)
#[test]
fn polish_masks_do_not_depend_on_the_start() {
    let g = Grid::new(96, 90, 0.5, 0.5).unwrap();
    let clean = video(g, 0.3, 0.005, 70 * 50, 50, 9);
    let frames = with_uniform_noise(&clean, 0.05, 4);
    let refs: Vec<&[f64]> = frames.iter().map(|f| f.as_slice()).collect();
    let s = spec(Boundary::Open, Laplacian::Continuum, SubSteps::Infinite);
    let from = |a0: f64| {
        let mut w = WindowLoss::new(&refs, &g, s, 0.25, &[1, 2])
            .with_noise(crate::loss::NoiseModel::white(0.05f64.powi(2) / 12.0), 1e-8);
        let start = w.ready_polish(a0, 10.0);
        ((w.strides.clone(), w.margins.clone()), start)
    };
    let (m_near, near) = from(0.3);
    let (m_far, far) = from(0.6);
    // So far that stride 2's masks would not fit: it must not stay dropped.
    let (m_farther, farther) = from(4.0);
    assert_eq!(
        m_near, m_farther,
        "strides and masks for where the approach arrived ({} vs {})",
        farther.a, near.a
    );
    assert!(
        near.evaluations > 0 && far.evaluations > 0,
        "the approach ran: {} {} evaluations, {} pairs, margins {:?}",
        near.evaluations,
        far.evaluations,
        near.pairs.len(),
        m_near
    );
    assert!(
        (far.a - near.a).abs() <= 0.02 * near.a,
        "{} vs {}",
        far.a,
        near.a
    );
    assert_eq!(m_near, m_far, "masks sized for where the approach arrived");
    assert_eq!(near.pairs, far.pairs);
}
