//! Vector fields, channel-wise (paper 2.1): every channel of a `[T, C, Nx, Ny]` field
//! evolves by the same SAFE operator with the same alpha.
//!
//! Each channel is estimated on its own (with its own noise model and error bar) and the
//! channels are joined by inverse-variance weighting. To second order that is the minimum
//! of the channel-summed SAFE loss with each channel's loss weighted by its measured
//! precision; with equal noise in every channel it is the paper's plain sum. Channels that
//! disagree beyond their error bars widen the joint error bar (the Birge ratio) and say so.

use crate::results::SimResult;
use safe_data::Video;
use serde_json::json;

/// Reduced chi-square of the channels above which they are reported as disagreeing (for
/// three channels, a chance of about 0.7% under agreement).
const DISAGREE_CHI2_PER_DOF: f64 = 5.0;

/// `estimate` of every channel of `v`, joined into one result (a scalar video is passed
/// through untouched).
pub fn channelwise(
    v: &Video,
    estimate: &dyn Fn(&Video) -> Result<SimResult, String>,
) -> Result<SimResult, String> {
    if v.n_channels() == 1 {
        return estimate(v);
    }
    let channels = v.split_channels();
    // A channel that repeats another (up to scale and offset: gray stored as RGB, a
    // negative) carries no new information; counting it twice would shrink the error bar.
    let mut keep: Vec<usize> = Vec::new();
    let mut notes = Vec::new();
    for c in 0..channels.len() {
        match keep
            .iter()
            .map(|&k| (k, change_correlation(&channels[k], &channels[c])))
            .find(|(_, r)| r.abs() > DUPLICATE_CORRELATION)
        {
            Some((k, r)) => notes.push(format!(
                "channel {c} repeats channel {k} (correlation of their frame-to-frame changes {r:.5}): counted once"
            )),
            None => keep.push(c),
        }
    }
    if keep.len() == 1 {
        let mut r = estimate(&channels[0])?;
        r.path = v.source.display().to_string();
        r.warnings.extend(notes);
        return Ok(r);
    }
    let per: Vec<SimResult> = keep
        .iter()
        .map(|&c| estimate(&channels[c]).map_err(|e| format!("channel {c}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut r = join(v, per)?;
    r.warnings.extend(notes);
    Ok(r)
}

/// Channels whose frame-to-frame changes correlate above this are one field.
const DUPLICATE_CORRELATION: f64 = 0.999;

/// Correlation of two single-channel videos' frame-to-frame changes (scale and offset free).
fn change_correlation(a: &Video, b: &Video) -> f64 {
    let n = a.frame_len();
    let (mut sab, mut saa, mut sbb) = (0.0f64, 0.0f64, 0.0f64);
    for t in 0..a.n_frames - 1 {
        let (a0, a1) = (a.frame(t), a.frame(t + 1));
        let (b0, b1) = (b.frame(t), b.frame(t + 1));
        for i in 0..n {
            let da = (a1[i] - a0[i]) as f64;
            let db = (b1[i] - b0[i]) as f64;
            sab += da * db;
            saa += da * da;
            sbb += db * db;
        }
    }
    if saa > 0.0 && sbb > 0.0 {
        sab / (saa * sbb).sqrt()
    } else {
        0.0
    }
}

/// Join per-channel results of `v` (in channel order).
pub fn join(v: &Video, per: Vec<SimResult>) -> Result<SimResult, String> {
    let c = per.len();
    let signs: Vec<&str> = per.iter().map(|r| r.process.as_str()).collect();
    if signs.iter().any(|p| *p != signs[0]) {
        return Err(format!(
            "the channels disagree on the direction of the process ({}): a field whose channels evolve by one SAFE operator has one direction; estimate them apart with --per-channel",
            signs.join(", ")
        ));
    }
    let w: Vec<f64> = per
        .iter()
        .map(|r| 1.0 / (r.stderr * r.stderr).max(f64::MIN_POSITIVE))
        .collect();
    let sw: f64 = w.iter().sum();
    let alpha = per
        .iter()
        .zip(&w)
        .map(|(r, w)| w * r.alpha_hat)
        .sum::<f64>()
        / sw;
    let chi2: f64 = per
        .iter()
        .zip(&w)
        .map(|(r, w)| w * (r.alpha_hat - alpha).powi(2))
        .sum();
    let chi2_dof = chi2 / (c - 1) as f64;
    let mut stderr = sw.sqrt().recip();
    // The video's own load warnings travel with the joint result (the caller adds them).
    let mut warnings: Vec<String> = Vec::new();
    for (k, r) in per.iter().enumerate() {
        for w in &r.warnings {
            if !v.warnings.contains(w) {
                warnings.push(format!("channel {k}: {w}"));
            }
        }
    }
    if chi2_dof > 1.0 {
        stderr *= chi2_dof.sqrt();
    }
    if chi2_dof > DISAGREE_CHI2_PER_DOF {
        warnings.push(format!(
            "the channels disagree beyond their error bars (alpha {}; chi^2 per degree of freedom {:.1}): the error bar is widened {:.1}x; if the channels are different materials, estimate them apart with --per-channel",
            per.iter()
                .map(|r| format!("{:.6}", r.alpha_hat))
                .collect::<Vec<_>>()
                .join(", "),
            chi2_dof,
            chi2_dof.sqrt()
        ));
    }
    let operators: Vec<String> = per
        .iter()
        .map(|r| {
            r.extra
                .get("operator")
                .and_then(|o| o.as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    let mut extra = per[0].extra.clone();
    if operators.iter().any(|o| *o != operators[0]) {
        warnings.push(format!(
            "the channels were fitted with different operators ({}): check that they share the boundary",
            operators.join(" | ")
        ));
        extra.insert("operator".into(), json!(operators.join(" | ")));
    }
    extra.insert(
        "channels".into(),
        json!(
            per.iter()
                .map(|r| json!({
                    "alpha_hat": r.alpha_hat,
                    "stderr": r.stderr,
                    "safe_loss": r.safe_loss,
                    "misfit": r.misfit,
                    "operator": r.extra.get("operator"),
                }))
                .collect::<Vec<_>>()
        ),
    );
    extra.insert("channel_chi2_per_dof".into(), json!(chi2_dof));
    let recon: Vec<f64> = per.iter().filter_map(|r| r.recon_error).collect();
    Ok(SimResult {
        path: v.source.display().to_string(),
        process: per[0].process.clone(),
        alpha_true: v.alpha_true(),
        alpha_hat: alpha,
        stderr,
        safe_loss: per.iter().map(|r| r.safe_loss).sum(),
        seconds: per.iter().map(|r| r.seconds).sum(),
        recon_error: (recon.len() == c).then(|| recon.iter().sum::<f64>() / c as f64),
        // The worst channel: a joint estimate is no better explained than its worst part.
        misfit: per
            .iter()
            .filter_map(|r| r.misfit)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
        warnings,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api;
    use crate::fitting::EstimateSettings;
    use crate::intensity::GammaChoice;
    use rand::{Rng, SeedableRng};
    use safe_data::meta::Meta;
    use safe_physics::initial::roughness_field;
    use safe_physics::simulate::evolve_exact;
    use safe_physics::{Boundary, Grid, Laplacian, OperatorSpec, SubSteps};
    use std::path::Path;

    const T: usize = 31;
    const N: usize = 40;

    /// `[T, C, N, N]`: C independent periodic continuum fields with one alpha, plus white
    /// noise of `noise` (relative to each channel's spread).
    fn vector_video(alphas: &[f64], noise: f64, seed: u64) -> Video {
        let grid = Grid::new(N, N, 1.0, 1.0).unwrap();
        let spec = OperatorSpec {
            boundary: Boundary::Periodic,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let fields: Vec<Vec<f64>> = alphas
            .iter()
            .enumerate()
            .map(|(c, &a)| {
                let u0 = roughness_field(&grid, 1.0, 3.0 + c as f64, &mut rng);
                evolve_exact(&u0, &grid, spec, a, 1.0, T)
            })
            .collect();
        let n = N * N;
        let mut data = Vec::with_capacity(T * alphas.len() * n);
        for t in 0..T {
            for f in &fields {
                let sd = (f[..n].iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
                for &x in &f[t * n..(t + 1) * n] {
                    let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                    data.push((x + noise * sd * z) as f32);
                }
            }
        }
        let meta = Meta::parse(
            Some(&format!(
                r#"{{"dx":1,"dy":1,"dt_save":1,"alpha":{}}}"#,
                -alphas[0]
            )),
            &Default::default(),
        )
        .unwrap();
        let p = Path::new("vector");
        Video::from_parts(p, p, &[T, alphas.len(), N, N], data, meta).unwrap()
    }

    fn settings() -> EstimateSettings {
        "inf"
            .parse()
            .map(|n_sub| EstimateSettings {
                n_sub,
                ..Default::default()
            })
            .unwrap()
    }

    #[test]
    fn a_vector_field_is_as_exact_as_each_channel_and_better_under_noise() {
        let s = settings();
        let g = GammaChoice::Fixed(1.0);
        let alpha = 0.37;
        // Clean: the joint estimate is as exact as each channel alone.
        let v = vector_video(&[alpha; 3], 0.0, 1);
        assert_eq!(v.n_channels(), 3);
        let joint = api::fit(&v, &s, g).unwrap();
        let worst = v
            .split_channels()
            .iter()
            .map(|c| (api::fit(c, &s, g).unwrap().alpha_hat + alpha).abs())
            .fold(0.0, f64::max);
        assert!(
            (joint.alpha_hat + alpha).abs() <= worst.max(1e-7),
            "{joint:?}"
        );
        assert!((joint.alpha_hat + alpha).abs() < 1e-5, "{joint:?}");
        assert_eq!(joint.extra["channels"].as_array().unwrap().len(), 3);
        // Noisy: over several videos the joint RMS error is well below a single channel's
        // (1/sqrt(3) expected) and the error bar shrinks about as 1/sqrt(C).
        let (mut joint_err, mut single_err, mut joint_var, mut single_var) = (0.0, 0.0, 0.0, 0.0);
        for seed in 0..12 {
            let v = vector_video(&[alpha; 3], 0.05, 10 + seed);
            let j = api::fit(&v, &s, g).unwrap();
            let per: Vec<SimResult> = v
                .split_channels()
                .iter()
                .map(|c| api::fit(c, &s, g).unwrap())
                .collect();
            joint_err += (j.alpha_hat + alpha).powi(2);
            single_err += per
                .iter()
                .map(|r| (r.alpha_hat + alpha).powi(2))
                .sum::<f64>()
                / 3.0;
            joint_var += j.stderr.powi(2);
            single_var += per.iter().map(|r| r.stderr.powi(2)).sum::<f64>() / 3.0;
            assert!((j.alpha_hat + alpha).abs() < 4.0 * j.stderr, "{j:?}");
        }
        let ratio = (joint_err / single_err).sqrt();
        assert!(ratio < 0.8, "joint/single RMS error {ratio}");
        let ratio = (joint_var / single_var).sqrt();
        assert!(ratio < 0.8, "joint/single RMS error bar {ratio}");
    }

    #[test]
    fn channels_that_disagree_widen_the_error_bar_and_say_so() {
        let s = settings();
        let v = vector_video(&[0.3, 0.3, 0.6], 0.0, 3);
        let j = api::fit(&v, &s, GammaChoice::Fixed(1.0)).unwrap();
        assert!(
            j.warnings.iter().any(|w| w.contains("disagree")),
            "{:?}",
            j.warnings
        );
        // The widened bar covers the spread of the channels.
        assert!(j.stderr > 0.05, "{j:?}");
        let n = N * N;
        // A channel running backwards in time: no joint estimate, a clear error.
        let mut data = v.frames_tcxy();
        for t in 0..T {
            let src = &v.frames_tcxy()[((T - 1 - t) * 3 + 2) * n..((T - 1 - t) * 3 + 3) * n];
            data[(t * 3 + 2) * n..(t * 3 + 3) * n].copy_from_slice(src);
        }
        let p = Path::new("x");
        let back = Video::from_parts(p, p, &[T, 3, N, N], data, v.meta.clone()).unwrap();
        let e = api::fit(&back, &s, GammaChoice::Fixed(1.0)).unwrap_err();
        assert!(e.contains("disagree on the direction"), "{e}");
        // A constant channel is refused when the video is built, naming it.
        let mut data = v.frames_tcxy();
        for t in 0..T {
            data[(t * 3 + 1) * n..(t * 3 + 2) * n].fill(0.5);
        }
        let e = Video::from_parts(
            Path::new("x"),
            Path::new("x"),
            &[T, 3, N, N],
            data,
            v.meta.clone(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("channel 1 of 3 is constant"), "{e}");
    }
}
