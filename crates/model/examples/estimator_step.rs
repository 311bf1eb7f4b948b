//! One zero-shot step's estimator work alone (the paper's estimator, 101 frames): median
//! seconds of the fused forward and backward, for tuning them without the loss beside.
//! `cargo run --release -p safe-model --example estimator_step [T] [ROUNDS]`
use safe_model::fused::{HostEstimator, HostParams};
use safe_model::model::{ModelConfig, SafePitCm};
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let (t, rounds) = (
        a.first().copied().unwrap_or(101),
        a.get(1).copied().unwrap_or(2000),
    );
    let cfg = ModelConfig::default();
    let m = SafePitCm::seeded(&cfg, &burn::tensor::Device::flex(), 0);
    let host = HostEstimator::from_params(&HostParams::from_module(&m.estimator));
    let p = m.estimator.pool_size();
    let pooled: Vec<f32> = (0..t * p * p)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut tf, mut tb) = (Vec::new(), Vec::new());
    let mut spent = None;
    let mut check = 0f32;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let (a, cache) = host.forward_reusing(&pooled, None, t, spent.take());
        tf.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let g = host.backward(&cache, 1.0);
        tb.push(t0.elapsed().as_secs_f64());
        check += a + g.slices()[0][0];
        spent = Some(cache);
    }
    // Bits of one pass, so a rewrite of a kernel can show it gives the same arithmetic.
    let (a, cache) = host.forward(&pooled, None, t);
    let bits = host
        .backward(&cache, 1.0)
        .slices()
        .iter()
        .flat_map(|s| s.iter())
        .fold(a.to_bits() as u64, |h, x| {
            h.rotate_left(5) ^ (x.to_bits() as u64)
        });
    println!(
        "t={t}: forward {:.3} ms (min {:.3}), backward {:.3} ms (min {:.3}) (median of {rounds}; check {check:e}, bits {bits:016x})",
        1e3 * median(tf.clone()),
        1e3 * tf.iter().fold(f64::INFINITY, |m, &x| m.min(x)),
        1e3 * median(tb.clone()),
        1e3 * tb.iter().fold(f64::INFINITY, |m, &x| m.min(x))
    );
}
