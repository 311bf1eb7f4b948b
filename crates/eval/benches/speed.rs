//! Speed benchmarks (`cargo bench -p safe-eval --bench speed`): medians over repeated runs,
//! each beside the reference it is compared with.
//!
//! Pass a filter word to run a subset, e.g. `cargo bench -p safe-eval --bench speed -- fit`.

use rayon::prelude::*;
use safe_data::dataset::{GenerateSettings, draw};
use safe_eval::fitting::{EstimateSettings, fit_video};
use safe_physics::estimate::{EstimateOptions, estimate};
use safe_physics::loss::reference::safe_loss_naive;
use safe_physics::{OperatorSpec, SubSteps};
use std::time::Instant;

fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[runs / 2]
}

fn report(name: &str, secs: f64, runs: usize) {
    println!("{name:<52} median {:>10.3} ms  ({runs} runs)", secs * 1e3);
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let on = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    println!("threads: {}", rayon::current_num_threads());
    let s = GenerateSettings::default();

    if on("generate") {
        let secs = median_secs(5, || {
            let v: Vec<_> = (0..50)
                .into_par_iter()
                .map(|i| draw(&s, i).unwrap().alpha_abs)
                .collect();
            assert_eq!(v.len(), 50);
        });
        report("generate: 50 diffusion sims 128x128x5000 steps", secs, 5);
        let mut st = s.clone();
        st.solver = "stencil-euler".into();
        let secs = median_secs(1, || {
            let v: Vec<_> = (0..50)
                .into_par_iter()
                .map(|i| draw(&st, i).unwrap().alpha_abs)
                .collect();
            assert_eq!(v.len(), 50);
        });
        report("  reference: same with the literal stencil solver", secs, 1);
    }

    if on("fit") || on("zero") {
        let d = draw(&s, 0).unwrap();
        let dir = std::env::temp_dir().join(format!("safe-bench-{}", std::process::id()));
        let sim = dir.join("sim_000");
        std::fs::create_dir_all(&sim).unwrap();
        std::fs::write(
            sim.join("field.npy"),
            safe_data::npy::encode_f32(&[101, 128, 128], &d.frames),
        )
        .unwrap();
        std::fs::write(
            sim.join("meta.json"),
            format!(r#"{{"dx":0.5,"dy":0.5,"dt":0.005,"save_interval":50,"process":"diffusion","alpha":{}}}"#, -d.alpha_abs),
        )
        .unwrap();
        let ov = safe_data::MetaOverrides::default();
        let video = safe_data::Video::load_sim_dir(&sim, &ov).unwrap();
        let fs = EstimateSettings::default();
        let frames = video.frames_stepped(1);
        let secs = median_secs(21, || {
            let e = estimate(&frames, &video.grid, 0.25, &EstimateOptions::default()).unwrap();
            assert!((e.fit.alpha_abs - d.alpha_abs).abs() < 1e-6);
        });
        report("fit: one 101x128x128 video in memory (defaults)", secs, 21);
        let secs = median_secs(21, || {
            let v = safe_data::Video::load_sim_dir(&sim, &ov).unwrap();
            let r = fit_video(&v, &fs).unwrap();
            assert!((r.alpha_hat + d.alpha_abs).abs() < 1e-6);
        });
        report("fit: one video, load field.npy + meta.json + fit", secs, 21);
        let secs = median_secs(21, || {
            std::hint::black_box(safe_data::Video::load_sim_dir(&sim, &ov).unwrap());
        });
        report(
            "  of which: load and validate field.npy + meta.json",
            secs,
            21,
        );
        let secs = median_secs(21, || {
            std::hint::black_box(fit_video(&video, &fs).unwrap());
        });
        report(
            "  of which: fit_video (noise estimate, spectra, fit)",
            secs,
            21,
        );
        let prep = safe_physics::estimate::prepare(
            &frames,
            &video.grid,
            0.25,
            &EstimateOptions::default(),
        )
        .unwrap();
        let curve =
            match safe_physics::estimate::SafeLoss::build(&frames, &video.grid, 0.25, &prep, 1.0) {
                safe_physics::estimate::SafeLoss::Curve(c) => c,
                _ => unreachable!(),
            };
        let secs = median_secs(101, || {
            std::hint::black_box(curve.eval(0.3));
        });
        report(
            "  one SAFE loss + derivatives evaluation (spectral)",
            secs,
            101,
        );
        let frames: Vec<Vec<f64>> = frames
            .iter()
            .map(|f| f.iter().map(|&x| x as f64).collect())
            .collect();
        let secs = median_secs(1, || {
            std::hint::black_box(safe_loss_naive(
                &frames,
                &video.grid,
                OperatorSpec::periodic_five_point(SubSteps::Finite(50)),
                0.3,
                0.25,
                1,
                (0, 0),
            ));
        });
        report(
            "  reference: one SAFE loss evaluation, literal stencil",
            secs,
            1,
        );
        if on("zero") {
            use safe_eval::zeroshot::{ZeroShotSettings, zero_shot_video};
            use safe_model::zero_shot::Engine;
            let zs = ZeroShotSettings::default();
            let secs = median_secs(5, || {
                let (r, _) = zero_shot_video(&video, &zs, &mut |_| {}).unwrap();
                assert!((r.alpha_hat + d.alpha_abs).abs() < 1e-5);
            });
            report("zero-shot: one 101x128x128 video, 200 Adam steps", secs, 5);
            {
                // Where a zero-shot step goes: the fused estimator's forward and backward.
                use safe_model::fused::{HostEstimator, HostParams};
                use safe_model::model::SafePitCm;
                let dev = burn::tensor::Device::flex();
                let m = SafePitCm::seeded(&zs.config.model, &dev, 0);
                let host = HostEstimator::from_params(&HostParams::from_module(&m.estimator));
                let t = 100;
                let p = m.estimator.pool_size();
                let pooled: Vec<f32> = (0..t * p * p)
                    .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
                    .collect();
                let bands: Vec<f32> = (0..t * host.band_inputs())
                    .map(|i| ((i * 13 % 29) as f32 / 14.0) - 1.0)
                    .collect();
                let bands = (host.band_inputs() > 0).then_some(bands.as_slice());
                let secs = median_secs(51, || {
                    std::hint::black_box(host.forward(&pooled, bands, t));
                });
                report("  estimator forward, 100 frames (one step)", secs, 51);
                let (_, cache) = host.forward(&pooled, bands, t);
                let secs = median_secs(51, || {
                    std::hint::black_box(host.backward(&cache, 1.0));
                });
                report("  estimator backward, 100 frames (one step)", secs, 51);
            }
            let mut zb = zs.clone();
            zb.config.engine = Engine::Burn;
            let secs = median_secs(1, || {
                let (r, _) = zero_shot_video(&video, &zb, &mut |_| {}).unwrap();
                assert!((r.alpha_hat + d.alpha_abs).abs() < 1e-5);
            });
            report("  reference: same with burn's forward + autodiff", secs, 1);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    if on("real") {
        real_videos();
    }
}

/// The reproduction's real-video scenarios (continuum physics, 80x96 windows, 101 frames):
/// `fit` with a user's defaults against the weak-form baseline on the same video.
fn real_videos() {
    use safe_eval::fitting::SubStepChoice;
    use safe_eval::reproduce::{ReproProfile, real_video_scenarios};
    let fs = EstimateSettings {
        n_sub: SubStepChoice::Fixed(SubSteps::Infinite),
        ..Default::default()
    };
    let wf = safe_eval::weak_form::WeakForm::default();
    let root = std::env::temp_dir().join(format!("safe-bench-real-{}", std::process::id()));
    let mut scenarios = real_video_scenarios(ReproProfile::Quick);
    // The size issue 10 judges open windows at (96x144, 101 frames).
    let mut judged = scenarios[1].1.clone();
    judged.nx = 96;
    judged.ny = 144;
    scenarios.push(("open window, 96x144", judged));
    for (si, (name, mut gs)) in scenarios.into_iter().enumerate() {
        gs.n_diffusion = 1;
        gs.mobility = false;
        let dir = root.join(format!("s{si}"));
        safe_data::dataset::generate(&gs, &dir, true, &|| {}).unwrap();
        let v = safe_data::Video::load_sim_dir(
            &dir.join("sim_000"),
            &safe_data::MetaOverrides::default(),
        )
        .unwrap();
        let truth = v.alpha_true().unwrap();
        let shape = format!("{}x{}x{}", v.n_frames, v.grid.nx, v.grid.ny);
        let secs = median_secs(11, || {
            let r = fit_video(&v, &fs).unwrap();
            assert!(
                (r.alpha_hat - truth).abs() < 5e-3,
                "{name}: {}",
                r.alpha_hat
            );
        });
        report(&format!("real: fit, {name} ({shape})"), secs, 11);
        let secs = median_secs(11, || {
            std::hint::black_box(safe_eval::weak_form::weak_form_video(&v, &wf).unwrap());
        });
        report("  reference: weak form, same video", secs, 11);
        let zs = safe_eval::zeroshot::ZeroShotSettings {
            estimate: fs.clone(),
            ..Default::default()
        };
        let secs = median_secs(5, || {
            let (r, _) = safe_eval::zeroshot::zero_shot_video(&v, &zs, &mut |_| {}).unwrap();
            assert!(
                (r.alpha_hat - truth).abs() < 5e-3,
                "{name}: {}",
                r.alpha_hat
            );
        });
        report("  zero-shot, same video (200 Adam steps)", secs, 5);
    }
    let _ = std::fs::remove_dir_all(&root);
}
