//! On universal draws FROM..TO: the fit (a user's defaults, `--n-sub inf`) and the weak
//! form against the truth, to calibrate a cross-check between the two.
//! `cargo run --release -p safe-eval --example second_opinion -- SEED FROM TO`
use safe_eval::fitting::{EstimateSettings, SubStepChoice, fit_video};
use safe_physics::SubSteps;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let s = EstimateSettings {
        n_sub: SubStepChoice::Fixed(SubSteps::Infinite),
        ..Default::default()
    };
    for i in a[1]..a[2] {
        let d = safe_eval::universal::draw(a[0] as u64, i).unwrap();
        let v = &d.video;
        let truth = v.alpha_true().unwrap();
        let w = safe_eval::weak_form::weak_form_video(v, &Default::default())
            .map(|r| r.alpha_hat)
            .unwrap_or(f64::NAN);
        match fit_video(v, &s) {
            Ok(r) => println!(
                "{i} {:<40} {:>3}x{:>3}x{:>3} fit_err {:+.2e} z {:+.1} weak_err {:+.2e} ln(fit/weak) {:+.3} warn {}",
                d.kind,
                v.n_frames,
                v.grid.nx,
                v.grid.ny,
                r.alpha_hat / truth - 1.0,
                (r.alpha_hat - truth) / r.stderr,
                w / truth - 1.0,
                (r.alpha_hat / w).ln(),
                r.warnings.len()
            ),
            Err(e) => println!("{i} {} error {e}", d.kind),
        }
    }
}
