//! One estimate of one video, as every front end asks for it: the command line and the
//! Python package both parse their options here and call these functions, so they give the
//! same numbers by construction (the Python tests check it anyway).

use crate::channels::channelwise;
use crate::fitting::{EstimateSettings, SubStepChoice, fit_video};
use crate::intensity::{GammaChoice, with_gamma, with_gamma_then};
use crate::results::SimResult;
use crate::training::{TrainedModel, infer_video};
use crate::zeroshot::{ZeroShotSettings, zero_shot_video};
use safe_data::Video;
use safe_model::zero_shot::ZeroShotConfig;
use safe_physics::loss::NoiseMode;
use safe_physics::{Boundary, Choice, Laplacian, Process};

/// The estimating options, spelled as the command line's flags are.
#[derive(Clone, Debug)]
pub struct Options {
    pub boundary: String,
    pub laplacian: String,
    pub n_sub: String,
    pub process: String,
    pub strides: Option<Vec<usize>>,
    pub frame_step: usize,
    pub alpha_range: Option<(f64, f64)>,
    pub noise: String,
    pub gamma: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            boundary: "auto".into(),
            laplacian: "auto".into(),
            n_sub: "auto".into(),
            process: "auto".into(),
            strides: None,
            frame_step: 1,
            alpha_range: None,
            noise: "auto".into(),
            gamma: "1".into(),
        }
    }
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| format!("{what} = '{s}': {e}"))
}

impl Options {
    /// The settings and intensity curve these options name, or the first bad option.
    pub fn resolve(&self) -> Result<(EstimateSettings, GammaChoice), String> {
        let boundary: Choice<Boundary> = parse("boundary", &self.boundary)?;
        let laplacian: Choice<Laplacian> = parse("laplacian", &self.laplacian)?;
        let n_sub: SubStepChoice = parse("n_sub", &self.n_sub)?;
        let process: Choice<Process> = parse("process", &self.process)?;
        let noise: NoiseMode = parse("noise", &self.noise)?;
        let gamma: GammaChoice = parse("gamma", &self.gamma)?;
        let s = EstimateSettings {
            boundary,
            laplacian,
            n_sub,
            process,
            strides: self.strides.clone(),
            frame_step: self.frame_step,
            alpha_range: self.alpha_range,
            noise,
            process_from_metadata: false,
        };
        check(&s, gamma)?;
        Ok((s, gamma))
    }
}

/// What no single option can say is wrong, only a combination.
pub fn check(s: &EstimateSettings, gamma: GammaChoice) -> Result<(), String> {
    if let Some(st) = &s.strides
        && (st.is_empty() || st.contains(&0))
    {
        return Err("strides must be positive frame counts, e.g. 1,2,4,8".into());
    }
    if s.frame_step == 0 {
        return Err("frame_step must be >= 1".into());
    }
    if let Some((lo, hi)) = s.alpha_range
        && !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo)
    {
        return Err(format!(
            "alpha_range must be two positive numbers LO < HI, got {lo}, {hi}"
        ));
    }
    // A noise level is in the video's units, which undoing a gamma curve changes.
    if matches!(s.noise, NoiseMode::Std(_)) && gamma != GammaChoice::Fixed(1.0) {
        return Err("a noise standard deviation cannot be combined with gamma (the map changes the video's units): use noise = auto".into());
    }
    Ok(())
}

/// `fit` of one video (all its channels: `crate::channels`).
pub fn fit(v: &Video, s: &EstimateSettings, g: GammaChoice) -> Result<SimResult, String> {
    channelwise(v, &|v| with_gamma(v, g, s, &|v| fit_video(v, s)))
}

/// The zero-shot settings of the command line's defaults with these overrides.
pub fn zero_shot_settings(
    estimate: EstimateSettings,
    steps: usize,
    lr: f64,
    seed: u64,
    polish: usize,
) -> ZeroShotSettings {
    ZeroShotSettings {
        config: ZeroShotConfig {
            steps,
            lr,
            seed,
            polish,
            ..Default::default()
        },
        estimate,
    }
}

/// `zero-shot` of one video (no explainability artefacts), every channel.
pub fn zero_shot(v: &Video, s: &ZeroShotSettings, g: GammaChoice) -> Result<SimResult, String> {
    channelwise(v, &|v| {
        with_gamma_then(v, g, &s.estimate, |v| {
            zero_shot_video(v, s, &mut |_| {}).map(|(r, _)| (r, ()))
        })
        .map(|(r, ())| r)
    })
}

/// `infer` of one video with a trained model.
pub fn infer(
    m: &TrainedModel,
    v: &Video,
    ttt_steps: usize,
    s: &EstimateSettings,
    g: GammaChoice,
) -> Result<SimResult, String> {
    with_gamma(v, g, s, &|v| {
        infer_video(m, v, ttt_steps, s).map(|(r, _)| r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_the_flags_do_and_bad_ones_are_named() {
        let (s, g) = Options::default().resolve().unwrap();
        assert_eq!(s, EstimateSettings::default());
        assert_eq!(g, GammaChoice::Fixed(1.0));
        let o = Options {
            boundary: "sideways".into(),
            ..Default::default()
        };
        assert!(
            o.resolve()
                .unwrap_err()
                .starts_with("boundary = 'sideways'")
        );
        let o = Options {
            noise: "0.1".into(),
            gamma: "auto".into(),
            ..Default::default()
        };
        assert!(o.resolve().unwrap_err().contains("gamma"));
        let o = Options {
            strides: Some(vec![1, 0]),
            ..Default::default()
        };
        assert!(o.resolve().is_err());
    }
}
