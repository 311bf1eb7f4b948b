//! Time a video's spectra (the first stage of every fit): `-- DIR [N] [periodic|zero-flux]`.
use safe_physics::Boundary;
use safe_physics::loss::VideoSpectra;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: spectra_repeat DIR [N] [BOUNDARY]");
    let n: usize = args.next().map_or(21, |x| x.parse().expect("N"));
    let b = match args.next().as_deref() {
        Some("zero-flux") => Boundary::ZeroFlux,
        _ => Boundary::Periodic,
    };
    let v = safe_data::Video::load_sim_dir(std::path::Path::new(&dir), &Default::default())
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    let frames = v.frames_stepped(1);
    let mut check = 0.0;
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = std::time::Instant::now();
            let s = VideoSpectra::compute(&frames, &v.grid, b);
            check = s.frame(3)[5].re;
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!(
        "median {:.2} ms min {:.2} over {n}; check {check:.17e}",
        t[n / 2] * 1e3,
        t[0] * 1e3
    );
}
