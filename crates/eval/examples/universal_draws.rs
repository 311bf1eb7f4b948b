//! Print the kinds of universal draws and how far the band-rate prior lands from the truth
//! (`cargo run --release -p safe-eval --example universal_draws -- FROM TO`).
use safe_model::config::{Config, Profile};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let cfg = Config::for_profile(Profile::Universal);
    let s = safe_eval::fitting::EstimateSettings::default();
    for i in args[0]..args[1] {
        let d = safe_eval::universal::draw(0, i).unwrap();
        let v = &d.video;
        match safe_eval::universal::prepare_light(&cfg, v, &s) {
            Ok(tv) => {
                let r = tv.rate.as_ref().unwrap();
                let w = safe_eval::weak_form::weak_form_video(v, &Default::default())
                    .map(|r| r.alpha_hat.abs())
                    .unwrap_or(f64::NAN);
                println!(
                    "{i} {:<40} {:>3}x{:>3}x{:>3} r0 {:.2e} ln(prior/true) {:+.3} ln(weak/true) {:+.3} op {}",
                    d.kind,
                    v.n_frames,
                    v.grid.nx,
                    v.grid.ny,
                    r.r0,
                    (tv.alpha_unit() / tv.alpha_abs.unwrap()).ln(),
                    (w / tv.alpha_abs.unwrap()).ln(),
                    tv.prep.spec
                );
            }
            Err(e) => println!("{i} {} error {e}", d.kind),
        }
    }
}
