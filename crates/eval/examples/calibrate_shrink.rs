//! Calibrate a universal model folder's amortised shrinkage (`model.shrink`) on its
//! validation draws, as `train --profile universal` does at its end, and print it.
//! `cargo run --release -p safe-eval --example calibrate_shrink -- DIR [N_TRAIN N_VAL]`
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::Path::new(&a[0]);
    let n_train: usize = a.get(1).map_or(1500, |x| x.parse().unwrap());
    let n_val: usize = a.get(2).map_or(150, |x| x.parse().unwrap());
    let m = safe_eval::training::TrainedModel::load(dir).unwrap();
    let val = safe_eval::universal::prepared_videos(
        &m.config,
        m.config.train.seed,
        n_train..n_train + n_val,
        &|| {},
    )
    .unwrap();
    let (tau, before, after) = safe_eval::universal::calibrate_shrink(&m.model, &m.config, &val);
    let pairs: Vec<(f64, f64)> = val
        .iter()
        .filter_map(|v| {
            let t = v.alpha_abs? / v.alpha_unit();
            Some((safe_model::infer::raw_output(&m.model, &m.config, v), t))
        })
        .collect();
    for tau in [0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 100.0] {
        let e = pairs
            .iter()
            .map(|&(y, t)| (safe_model::infer::shrunk(y, tau) / t).ln().abs())
            .sum::<f64>()
            / pairs.len() as f64;
        println!("tau {tau}: mean |ln error| {e:.4e}");
    }
    println!(
        "tau {tau:.4} mean |ln error| {before:.4e} -> {after:.4e} (n = {})",
        val.len()
    );
}
