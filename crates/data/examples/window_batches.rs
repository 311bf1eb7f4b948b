//! Time an open window's SAFE loss on zero-shot's Adam batches (4 frame pairs, order 1)
//! and on all pairs (order 2, the polish's evaluation).
//!
//!     cargo run --release -p safe-data --example window_batches -- DIR [ROUNDS]
use safe_physics::SubSteps;
use safe_physics::estimate::{EstimateOptions, SafeLoss, canonical, prepare};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: window_batches DIR [ROUNDS]");
    let rounds: usize = args.next().map_or(5, |x| x.parse().expect("ROUNDS"));
    let v = safe_data::Video::load_sim_dir(std::path::Path::new(&dir), &Default::default())
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    let opts = EstimateOptions {
        n_sub: SubSteps::Infinite,
        stated_process: v.stated_process(),
        ..Default::default()
    };
    let frames = v.frames_stepped(1);
    let dt = v.dt_between(1);
    let mut prep = prepare(&frames, &v.grid, dt, &opts).expect("prepare");
    let a = match &prep.window {
        Some(c) => c.lock().expect("window").1.a0,
        None => 0.3,
    };
    let canon = canonical(&frames, prep.process);
    let mut loss = prep
        .take_loss()
        .unwrap_or_else(|| SafeLoss::build(&canon, &v.grid, dt, &prep, 1.0));
    let SafeLoss::Window(w) = &mut loss else {
        println!("not an open window");
        return;
    };
    w.set_margins(2.0 * a);
    let all = w.all_pairs();
    let nb = all.len().div_ceil(4);
    let batches: Vec<Vec<(usize, usize)>> = (0..nb)
        .map(|b| all.iter().skip(b).step_by(nb).copied().collect())
        .collect();
    let mut sum = 0.0;
    for r in 0..rounds {
        let t0 = std::time::Instant::now();
        for (i, b) in batches.iter().enumerate().take(200) {
            sum += w
                .eval_pairs(a * (1.0 + 1e-3 * i as f64), b, 1, false)
                .point
                .d1;
        }
        let tb = t0.elapsed().as_secs_f64() / 200f64.min(nb as f64);
        let t0 = std::time::Instant::now();
        sum += w.eval_pairs(a, &all, 2, true).point.d1;
        let tf = t0.elapsed().as_secs_f64();
        println!(
            "round {r}: batch of 4 (order 1) {:.3} ms; all {} pairs (order 2) {:.1} ms",
            tb * 1e3,
            all.len(),
            tf * 1e3
        );
    }
    println!("checksum {sum:.12e}");
}
