//! For each video folder given, the band-rate prior and the shipped model's amortised
//! estimate against the truth (diagnostic: how much the network corrects the prior).
//!
//! cargo run --release -p safe-eval --example prior_vs_model -- DIR/*/
use safe_model::fused::HostEstimator;

fn main() {
    // MODEL=DIR compares a trained model's folder instead of the shipped one.
    let m = match std::env::var_os("MODEL") {
        Some(d) => safe_eval::training::TrainedModel::load(std::path::Path::new(&d)).unwrap(),
        None => safe_eval::training::TrainedModel::builtin().unwrap(),
    };
    let host = HostEstimator::from_module(&m.model.estimator);
    let s = safe_eval::fitting::EstimateSettings::default();
    let (mut ep, mut em, mut ew, mut n) = (0.0, 0.0, 0.0, 0);
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
        let t0 = std::time::Instant::now();
        let w = safe_eval::weak_form::weak_form_video(&v, &Default::default())
            .map(|r| r.alpha_hat.abs())
            .unwrap_or(f64::NAN);
        let wt = t0.elapsed().as_secs_f64();
        let vn = truth * v.dt_between(1) * safe_model::rate::lambda_ref(&v.grid);
        println!(
            "{p} {} vN {vn:.2e} prior {:+.3} model {:+.3} weak {:+.3} ({:.0} ms)",
            tv.prep.spec,
            prior / truth - 1.0,
            a / truth - 1.0,
            w / truth - 1.0,
            wt * 1e3
        );
        ew += (w - truth).abs();
        ep += (prior - truth).abs();
        em += (a - truth).abs();
        n += 1;
    }
    println!(
        "MAE prior {:.3e} model {:.3e} weak {:.3e} (n = {n})",
        ep / n as f64,
        em / n as f64,
        ew / n as f64
    );
}
