//! One codec block's host kernels alone (16 -> 16 channels, 101 frames of 128x128 by
//! default): median seconds of the forward and the backward pass, for tuning the kernels
//! without burn around them, and an encoder's inference pass (burn around them). `cargo run --release -p safe-model --example codec_block [N H W]`
use safe_model::codec::kernels::{BlockShape, block_backward, block_forward};
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let (n, h, w) = (
        a.first().copied().unwrap_or(101),
        a.get(1).copied().unwrap_or(128),
        a.get(2).copied().unwrap_or(128),
    );
    let s = BlockShape {
        n,
        cin: 16,
        cout: 16,
        h,
        w,
    };
    let field =
        |k: usize, f: f32| -> Vec<f32> { (0..k).map(|i| ((i as f32) * f).fract() - 0.5).collect() };
    let x = field(n * 16 * h * w, 0.618_034);
    let gy = field(n * 16 * h * w, 0.414_213);
    let wt = field(16 * 16 * 9, 0.732_05);
    let (b, g, be) = (vec![0.1f32; 16], vec![1.0f32; 16], vec![0.0f32; 16]);
    let median = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let (mut tf, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        let t0 = Instant::now();
        let (y, saved) = block_forward(&x, &wt, &b, &g, &be, 1e-5, &s);
        tf.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let gr = block_backward(&x, &wt, &g, &be, 1e-5, &saved, &gy, &s);
        tb.push(t0.elapsed().as_secs_f64());
        std::hint::black_box((y, gr));
    }
    println!(
        "forward {:.1} ms, backward {:.1} ms (median of {})",
        median(tf[1..].to_vec()) * 1e3,
        median(tb[1..].to_vec()) * 1e3,
        tf.len() - 1
    );
    println!(
        "encoder inference {:.0} ms (median of 3)",
        encoder_inference_ms(n, h, w)
    );
}

/// Encoder forward in inference (no autodiff) on one video, as validation and `infer` run it.
fn encoder_inference_ms(n: usize, h: usize, w: usize) -> f64 {
    use burn::tensor::{Device, Tensor, TensorData};
    let dev = Device::flex();
    let enc = safe_model::codec::ResidualField::new(16, 3, &dev);
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(
            (0..n * h * w)
                .map(|i| ((i as f32) * 0.618_034).fract())
                .collect::<Vec<f32>>(),
            [n, 1, h, w],
        ),
        &dev,
    );
    let mut t: Vec<f64> = (0..4)
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(enc.forward(x.clone()).into_data());
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}
