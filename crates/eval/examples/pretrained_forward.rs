//! Time the shipped model's amortised pass alone on a 101x128x128 video: the unit-free
//! band inputs (spectra, prior, features) and eight estimator forwards, without the fit that
//! `infer` also runs for the error bar. Prints JSON with the median of 20 runs.
//!
//! cargo run --release -p safe-eval --example pretrained_forward
use safe_model::fused::HostEstimator;
use safe_model::pooling::{Symmetry, pool_frames};
use safe_model::rate::RateInputs;
use safe_physics::{Boundary, Grid, Laplacian, OperatorSpec, SubSteps};

fn main() {
    let m = safe_eval::training::TrainedModel::builtin().expect("embedded model");
    let g = Grid::new(128, 128, 0.5, 0.5).unwrap();
    let spec = OperatorSpec {
        boundary: Boundary::Periodic,
        laplacian: Laplacian::Continuum,
        n_sub: SubSteps::Infinite,
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let u0 = safe_physics::initial::roughness_field(&g, 1.0, 2.0, &mut rng);
    let f: Vec<f32> = safe_physics::simulate::evolve_exact(&u0, &g, spec, 0.3, 0.05, 101)
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let host = HostEstimator::from_module(&m.model.estimator);
    let k = m.config.model.bands;
    let mut runs = Vec::new();
    let mut alpha = 0.0;
    for _ in 0..20 {
        let t0 = std::time::Instant::now();
        let raw: Vec<&[f32]> = f.chunks_exact(g.len()).collect();
        let data = safe_model::zero_shot::Normalisation::of(&raw).apply(&raw);
        let refs: Vec<&[f32]> = data.chunks_exact(g.len()).collect();
        let (r, le) = RateInputs::of(&refs, &g, spec, k, 0.05, m.config.model.prior);
        let feats = r.features(&le, 101);
        let pooled = pool_frames(
            &data,
            101,
            128,
            128,
            m.config.model.pool,
            &Symmetry::IDENTITY,
        );
        // `infer` averages eight views (flips, transposition) of the pooled frames: time
        // eight forwards (the views' values differ only through the pooled frames).
        let y: f64 = (0..8)
            .map(|_| host.forward(&pooled, Some(&feats), 101).0 as f64)
            .sum::<f64>()
            / 8.0;
        alpha = y * r.alpha_unit;
        runs.push(t0.elapsed().as_secs_f64());
    }
    let raw: Vec<&[f32]> = f.chunks_exact(g.len()).collect();
    let mut weak: Vec<f64> = (0..20)
        .map(|_| {
            let t0 = std::time::Instant::now();
            let w = safe_physics::weak_form::WeakForm::default();
            std::hint::black_box(
                safe_physics::weak_form::weak_form_alpha(&raw, 128, 128, 0.5, 0.5, 0.05, &w)
                    .unwrap(),
            );
            t0.elapsed().as_secs_f64()
        })
        .collect();
    weak.sort_by(f64::total_cmp);
    let mut s = runs.clone();
    s.sort_by(f64::total_cmp);
    println!(
        "{{\"median_s\": {:.5}, \"weak_form_median_s\": {:.5}, \"alpha_true\": 0.3, \"alpha_amortised\": {alpha:.5}, \"runs\": {runs:?}}}",
        s[s.len() / 2],
        weak[10]
    );
}
