//! For each video folder given, the band-rate prior and the shipped model's amortised
//! estimate against the truth (diagnostic: how much the network corrects the prior).
//!
//! cargo run --release -p safe-eval --example prior_vs_model -- DIR/*/
use safe_model::fused::HostEstimator;

fn main() {
    let m = safe_eval::training::TrainedModel::builtin().unwrap();
    let host = HostEstimator::from_module(&m.model.estimator);
    let s = safe_eval::fitting::EstimateSettings::default();
    let (mut ep, mut em, mut n) = (0.0, 0.0, 0);
    for p in std::env::args().skip(1) {
        let v = match safe_data::Video::load_sim_dir(std::path::Path::new(&p), &Default::default())
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{p}: {e}");
                continue;
            }
        };
        let Ok(tv) = safe_eval::universal::prepare_light(&m.config, &v, &s) else {
            continue;
        };
        let truth = tv.alpha_abs.unwrap_or(f64::NAN);
        let prior = tv.alpha_unit();
        let (y, _) = host.forward(&tv.pooled, tv.features_from(&tv.log_e).as_deref(), tv.t);
        let a = y as f64 * prior;
        println!(
            "{p} {} prior {:+.3} model {:+.3}",
            tv.prep.spec,
            prior / truth - 1.0,
            a / truth - 1.0
        );
        ep += (prior - truth).abs();
        em += (a - truth).abs();
        n += 1;
    }
    println!(
        "MAE prior {:.3e} model {:.3e} (n = {n})",
        ep / n as f64,
        em / n as f64
    );
}
