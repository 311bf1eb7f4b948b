//! Timings a user can rerun from the command line (`safe-pit-cm bench`), so that speed claims
//! are measured on the machine at hand, not quoted.

use burn::tensor::{Device, Tensor, TensorData};
use safe_model::codec::ResidualField;
use safe_model::model::ModelConfig;
use serde_json::{Value, json};

/// Seconds of one encoder + decoder forward and backward pass over a `frames x size x size`
/// video, as phase 2 of training runs it on the whole video: `F = enc(V)`,
/// `V_hat = dec(F)`, loss `|V_hat - V|^2 + |F - V|^2`, gradients of every codec weight.
pub fn codec_step(frames: usize, size: usize, seed: u64) -> f64 {
    let dev = Device::flex().autodiff();
    let cfg = ModelConfig::default();
    let (enc, dec) = safe_model::model::with_burn_rng(&dev, seed, || {
        let e = ResidualField::new(cfg.channels, cfg.blocks, &dev);
        let d = ResidualField::new(cfg.channels, cfg.blocks, &dev);
        safe_model::model::initialise(&e);
        safe_model::model::initialise(&d);
        (e, d)
    });
    let data: Vec<f32> = (0..frames * size * size)
        .map(|i| ((i as f32) * 0.618_034).fract() - 0.5)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, [frames, 1, size, size]), &dev);
    let t0 = std::time::Instant::now();
    let f = enc.forward(x.clone());
    let vhat = dec.forward(f.clone());
    let loss = (vhat - x.clone()).powi_scalar(2).mean() + (f - x).powi_scalar(2).mean();
    let grads = loss.backward();
    std::hint::black_box(&grads);
    t0.elapsed().as_secs_f64()
}

/// `runs` timed codec steps after one warm-up: `{"median_s", "runs", ...}`.
pub fn codec(frames: usize, size: usize, runs: usize) -> Value {
    codec_step(frames.min(4), size, 0);
    let mut t: Vec<f64> = (0..runs.max(1))
        .map(|r| codec_step(frames, size, r as u64))
        .collect();
    let runs_s = t.clone();
    t.sort_by(f64::total_cmp);
    json!({
        "what": "encoder + decoder forward and backward (paper codec: 3 conv blocks of 16 channels, circular padding, batch norm, ReLU, 1x1 projection)",
        "frames": frames,
        "size": size,
        "threads": rayon::current_num_threads(),
        "median_s": t[t.len() / 2],
        "runs": runs_s,
    })
}
