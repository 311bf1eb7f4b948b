//! The shipped pretrained model: its answer must not depend on units, and test-time
//! training must bring it to the SAFE loss's minimum.
//!
//! Test videos come from a stream of the universal distribution the model never trained
//! on (seed 4242; training used seed 0).

use safe_data::{Meta, Video};
use safe_eval::fitting::EstimateSettings;
use safe_eval::training::TrainedModel;
use std::path::Path;
use std::sync::OnceLock;

fn model() -> &'static TrainedModel {
    static M: OnceLock<TrainedModel> = OnceLock::new();
    M.get_or_init(|| TrainedModel::builtin().expect("the embedded model loads"))
}

/// `(amortised |alpha|, result)` of `infer` with `ttt` steps.
fn infer(v: &Video, ttt: usize) -> (f64, safe_eval::results::SimResult) {
    let r = safe_eval::api::infer(
        model(),
        v,
        ttt,
        &EstimateSettings::default(),
        safe_eval::intensity::GammaChoice::Fixed(1.0),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", v.source.display()));
    let a = r.extra["alpha_amortised"].as_f64().unwrap().abs();
    (a, r)
}

fn with(v: &Video, frames: Vec<f32>, shape: [usize; 3], dx: f64, dy: f64, dt: f64) -> Video {
    let meta = Meta::parse(
        Some(&format!(
            r#"{{"dx":{dx},"dy":{dy},"dt_save":{dt},"process":"diffusion"}}"#
        )),
        &Default::default(),
    )
    .unwrap();
    let name = format!(
        "{} ({dx:.3}, {dy:.3}, {dt:.3e}, {shape:?})",
        v.source.display()
    );
    let p = Path::new(&name);
    Video::from_parts(p, p, &shape, frames, meta).unwrap()
}

/// Test videos: open windows and periodic samples, clean and through a camera.
fn videos() -> Vec<Video> {
    (0..40)
        .map(|i| safe_eval::universal::draw(4242, i).unwrap())
        .filter(|d| d.video.n_frames >= 20 && !d.kind.contains("gamma"))
        .take(4)
        .map(|d| d.video)
        .collect()
}

#[test]
fn units_intensity_and_orientation_do_not_move_the_amortised_estimate() {
    for v in videos() {
        let (t, nx, ny) = (v.n_frames, v.grid.nx, v.grid.ny);
        let (dx, dy, dt) = (v.grid.dx, v.grid.dy, v.meta.dt_save);
        let (a, _) = infer(&v, 0);
        let name = v.source.display().to_string();
        // The same pixels at twice the spacing are the same physics at 4x alpha: exact.
        let (a2, _) = infer(
            &with(&v, v.frames.clone(), [t, nx, ny], 2.0 * dx, 2.0 * dy, dt),
            0,
        );
        assert!(
            (a2 / (4.0 * a) - 1.0).abs() < 1e-4,
            "{name}: dx x2: {a2} vs 4 x {a}"
        );
        // A slower clock (dt_save x 3) is alpha / 3: exact.
        let (a3, _) = infer(
            &with(&v, v.frames.clone(), [t, nx, ny], dx, dy, 3.0 * dt),
            0,
        );
        assert!(
            (3.0 * a3 / a - 1.0).abs() < 1e-4,
            "{name}: dt x3: {a3} vs {a} / 3"
        );
        // Intensity scale and offset (a different camera gain and black level).
        let scaled: Vec<f32> = v.frames.iter().map(|x| 7.5 * x + 3.0).collect();
        let (a4, _) = infer(&with(&v, scaled, [t, nx, ny], dx, dy, dt), 0);
        assert!(
            (a4 / a - 1.0).abs() < 1e-3,
            "{name}: intensity: {a4} vs {a}"
        );
        // Transposed (x and y swapped with their spacings): the band inputs are the same,
        // and the estimator averages over the pooled frames' flips and transpositions.
        let n = nx * ny;
        let tr: Vec<f32> = (0..t * n)
            .map(|k| {
                let (f, r) = (k / n, k % n);
                let (j, i) = (r / nx, r % nx);
                v.frames[f * n + i * ny + j]
            })
            .collect();
        let (a5, _) = infer(&with(&v, tr, [t, ny, nx], dy, dx, dt), 0);
        assert!(
            (a5 / a - 1.0).abs() < 0.03,
            "{name}: transposed: {a5} vs {a}"
        );
        // Every second frame (the clock resampled): the same alpha within 10% (the band
        // decays per frame double, which the network sees as a different video).
        let every2: Vec<f32> = (0..t)
            .step_by(2)
            .flat_map(|f| v.frames[f * n..(f + 1) * n].iter().copied())
            .collect();
        let t2 = t.div_ceil(2);
        let (a6, _) = infer(&with(&v, every2, [t2, nx, ny], dx, dy, 2.0 * dt), 0);
        eprintln!(
            "{name}: dx x2 {:+.1e}, dt x3 {:+.1e}, intensity {:+.1e}, transposed {:+.1e}, every 2nd frame {:+.1e}",
            a2 / (4.0 * a) - 1.0,
            3.0 * a3 / a - 1.0,
            a4 / a - 1.0,
            a5 / a - 1.0,
            a6 / a - 1.0
        );
        assert!(
            (a6 / a - 1.0).abs() < 0.1,
            "{name}: every 2nd frame: {a6} vs {a}"
        );
    }
}

#[test]
fn fifty_test_time_steps_reach_the_safe_loss_minimum() {
    for v in videos().into_iter().take(2) {
        let (_, r) = infer(&v, 50);
        let min = r.extra["alpha_safe_minimum"].as_f64().unwrap().abs();
        let a = r.alpha_hat.abs();
        assert!(
            (a / min - 1.0).abs() < 1e-3,
            "{}: TTT50 {a} vs the SAFE minimum {min}",
            v.source.display()
        );
    }
}
