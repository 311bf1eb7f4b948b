//! The estimator alone, without burn (builds in a minute, for A/B timing of physics changes):
//! `cargo run --release -p safe-data --example estimate_repeat -- DIR [N] [inf]`.
//! Runs `safe_physics::estimate` N times with the CLI's defaults (sub-steps from the
//! metadata's save interval, or infinite with `inf`); prints the median and the estimate.
use safe_physics::SubSteps;
use safe_physics::estimate::EstimateOptions;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: estimate_repeat DIR [N] [inf]");
    let n: usize = args.next().map_or(21, |x| x.parse().expect("N"));
    let inf = args.next().as_deref() == Some("inf");
    let v = safe_data::Video::load_sim_dir(std::path::Path::new(&dir), &Default::default())
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    let n_sub = match (inf, v.meta.save_interval) {
        (false, Some(s)) => SubSteps::Finite(s as u32),
        _ => SubSteps::Infinite,
    };
    let opts = EstimateOptions {
        n_sub,
        stated_process: v.stated_process(),
        ..Default::default()
    };
    let frames = v.frames_stepped(1);
    let mut alpha = 0.0;
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = std::time::Instant::now();
            let e = safe_physics::estimate::estimate(&frames, &v.grid, v.dt_between(1), &opts)
                .expect("estimate");
            alpha = e.fit.alpha_abs;
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!(
        "median {:.2} ms over {n}; |alpha| {alpha:.15e}",
        t[n / 2] * 1e3
    );
}
