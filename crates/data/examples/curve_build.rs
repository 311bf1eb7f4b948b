//! Time the closed-form SAFE loss curve's construction (every stride's sums over the
//! frames) on a video's cosine spectra.
//!
//!     cargo run --release -p safe-data --example curve_build -- DIR [N]
use safe_physics::loss::{SafeLossCurve, VideoSpectra};
use safe_physics::{Boundary, Laplacian, OperatorSpec, SafeOperator, SubSteps};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: curve_build DIR [N]");
    let n: usize = args.next().map_or(21, |x| x.parse().expect("N"));
    let v = safe_data::Video::load_sim_dir(std::path::Path::new(&dir), &Default::default())
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    let frames = v.frames_stepped(1);
    let spectra = VideoSpectra::compute(&frames, &v.grid, Boundary::ZeroFlux);
    let spec = OperatorSpec {
        boundary: Boundary::ZeroFlux,
        laplacian: Laplacian::Continuum,
        n_sub: SubSteps::Infinite,
    };
    let op = SafeOperator::new(v.grid, spec, v.dt_between(1));
    let mut check = 0.0;
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = std::time::Instant::now();
            let c = SafeLossCurve::new(&spectra, &op, &[1, 2, 4, 8, 16]);
            check = c.eval(0.3).loss;
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!(
        "median {:.2} ms over {n}; loss(0.3) {check:.15e}",
        t[n / 2] * 1e3
    );
}
