//! Fit one video N times with a user's defaults and `--n-sub inf` (for profilers:
//! `perf record -g target/release/examples/fit_repeat DIR 50`); prints the median seconds.
//! A third argument `defaults` keeps every default, `--n-sub` included.
use safe_eval::fitting::{EstimateSettings, SubStepChoice, fit_video};
use safe_physics::SubSteps;

fn main() {
    let mut a = std::env::args().skip(1);
    let dir = a.next().expect("usage: fit_repeat DIR [N]");
    let n: usize = a.next().map_or(20, |x| x.parse().expect("N"));
    let v = safe_data::Video::load_sim_dir(std::path::Path::new(&dir), &Default::default())
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    let s = if a.next().as_deref() == Some("defaults") {
        EstimateSettings::default()
    } else {
        EstimateSettings {
            n_sub: SubStepChoice::Fixed(SubSteps::Infinite),
            ..Default::default()
        }
    };
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = std::time::Instant::now();
            let r = fit_video(&v, &s).expect("fit");
            std::hint::black_box(r);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!("median {:.1} ms over {n}", t[n / 2] * 1e3);
}
