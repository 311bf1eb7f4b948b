//! The estimate of one loaded video (physics core + data layer): the settings every
//! estimating command shares, their resolution against the video's metadata, and the direct
//! SAFE fit.

use crate::results::SimResult;
use safe_data::Video;
use safe_physics::estimate::{Estimate, EstimateOptions, Prepared, estimate, prepare};
use safe_physics::loss::NoiseMode;
use safe_physics::{Boundary, Choice, Laplacian, OperatorSpec, Process, SubSteps};
use std::collections::BTreeMap;
use std::str::FromStr;

/// `--n-sub`: a fixed count, `inf`, or `auto` (the generator's own steps per frame interval
/// when `meta.json` records `save_interval`, otherwise the exact exponential).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubStepChoice {
    Fixed(SubSteps),
    Auto,
}

impl FromStr for SubStepChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            Ok(SubStepChoice::Auto)
        } else {
            SubSteps::from_str(s).map(SubStepChoice::Fixed)
        }
    }
}

impl std::fmt::Display for SubStepChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubStepChoice::Fixed(n) => write!(f, "{n}"),
            SubStepChoice::Auto => f.write_str("auto"),
        }
    }
}

impl SubStepChoice {
    pub fn resolve(self, video: &Video, frame_step: usize) -> SubSteps {
        match self {
            SubStepChoice::Fixed(n) => n,
            SubStepChoice::Auto => match video.meta.save_interval {
                Some(s) => {
                    SubSteps::Finite((s as usize * frame_step.max(1)).min(u32::MAX as usize) as u32)
                }
                None => SubSteps::Infinite,
            },
        }
    }
}

/// What the estimating commands (`fit`, `zero-shot`, `infer`) share: the operator, the
/// direction, the loss's strides and noise model, which frames to use.
#[derive(Clone, Debug, PartialEq)]
pub struct EstimateSettings {
    pub boundary: Choice<Boundary>,
    pub laplacian: Choice<Laplacian>,
    pub n_sub: SubStepChoice,
    pub process: Choice<Process>,
    /// Frame strides of the SAFE loss; `None` decides from the noise.
    pub strides: Option<Vec<usize>>,
    pub frame_step: usize,
    pub alpha_range: Option<(f64, f64)>,
    pub noise: NoiseMode,
    /// Take the process the metadata states as known (the paper's protocol).
    pub process_from_metadata: bool,
}

impl Default for EstimateSettings {
    /// Everything decided from the data.
    fn default() -> Self {
        EstimateSettings {
            boundary: Choice::Auto,
            laplacian: Choice::Auto,
            n_sub: SubStepChoice::Auto,
            process: Choice::Auto,
            strides: None,
            frame_step: 1,
            alpha_range: None,
            noise: NoiseMode::Auto,
            process_from_metadata: false,
        }
    }
}

impl EstimateSettings {
    /// The paper's protocol: the periodic five-point operator with `n_sub` sub-steps, frame
    /// pairs only, and the process the metadata states.
    pub fn paper(n_sub: SubSteps) -> EstimateSettings {
        EstimateSettings {
            boundary: Choice::Fixed(Boundary::Periodic),
            laplacian: Choice::Fixed(Laplacian::FivePoint),
            n_sub: SubStepChoice::Fixed(n_sub),
            strides: Some(vec![1]),
            process_from_metadata: true,
            ..Default::default()
        }
    }

    /// The physics core's options for one video. On the paper's protocol the metadata's
    /// process is the given one.
    pub fn options(&self, video: &Video) -> EstimateOptions {
        let known = self.process_from_metadata && self.process == Choice::Auto;
        let process = match (known, video.stated_process()) {
            (true, Some(p)) => Choice::Fixed(p),
            _ => self.process,
        };
        EstimateOptions {
            boundary: self.boundary,
            laplacian: self.laplacian,
            n_sub: self.n_sub.resolve(video, self.frame_step),
            process,
            process_known: known,
            stated_process: video.stated_process(),
            strides: self.strides.clone(),
            noise: self.noise,
            alpha_range: self.alpha_range,
        }
    }

    /// Every setting as recorded in a result file's `settings`.
    pub fn record(&self) -> serde_json::Value {
        serde_json::json!({
            "boundary": self.boundary.to_string(), "laplacian": self.laplacian.to_string(),
            "n_sub": self.n_sub.to_string(), "process": self.process.to_string(),
            "strides": self.strides.as_ref().map(|s| format!("{s:?}")).unwrap_or_else(|| "auto".into()),
            "frame_step": self.frame_step, "alpha_range": self.alpha_range,
            "noise": self.noise.to_string(),
        })
    }
}

/// Every `frame_step`-th frame, or why they are too few for the SAFE loss.
fn stepped_frames<'a>(video: &'a Video, s: &EstimateSettings) -> Result<Vec<&'a [f32]>, String> {
    let frames = video.frames_stepped(s.frame_step);
    if frames.len() < 2 {
        return Err(format!(
            "only {} frame(s) remain with --frame-step {} ({} frames); the SAFE loss needs 2",
            frames.len(),
            s.frame_step,
            video.n_frames
        ));
    }
    Ok(frames)
}

/// Decide the operator, direction, strides and noise model for a video; returns the frames
/// used (recorded order) with the decisions.
pub fn prepare_video<'a>(
    video: &'a Video,
    s: &EstimateSettings,
) -> Result<(Vec<&'a [f32]>, Prepared), String> {
    let frames = stepped_frames(video, s)?;
    let p = prepare(
        &frames,
        &video.grid,
        video.dt_between(s.frame_step),
        &s.options(video),
    )?;
    Ok((frames, p))
}

/// [`prepare_video`] with the weak form's second opinion computed beside the decisions (it
/// needs only the frames, and fills the cores where the decisions are serial), as
/// `estimate` does.
pub fn prepare_video_and_weak_form<'a>(
    video: &'a Video,
    s: &EstimateSettings,
) -> Result<(Vec<&'a [f32]>, Prepared, f64), String> {
    let frames = stepped_frames(video, s)?;
    let dt = video.dt_between(s.frame_step);
    let (p, weak) = rayon::join(
        || prepare(&frames, &video.grid, dt, &s.options(video)),
        || safe_physics::estimate::weak_form_of(&frames, &video.grid, dt),
    );
    Ok((frames, p?, weak))
}

/// A result row from the decisions of `prep` and the numbers of one estimate.
pub fn result_row(
    video: &Video,
    prep: &Prepared,
    alpha_abs: f64,
    stderr: f64,
    safe_loss: f64,
    seconds: f64,
) -> SimResult {
    let mut extra = BTreeMap::new();
    extra.insert("operator".into(), serde_json::json!(prep.spec.to_string()));
    SimResult {
        path: video.source.display().to_string(),
        process: prep.process.to_string(),
        alpha_true: video.alpha_true(),
        alpha_hat: prep.process.sign() * alpha_abs,
        stderr,
        safe_loss,
        seconds,
        recon_error: None,
        misfit: None,
        warnings: prep.warnings.clone(),
        extra,
    }
}

/// A fit's result row, with its decisions, evidence and diagnostics.
pub fn estimate_row(
    video: &Video,
    e: &Estimate,
    seconds: f64,
    frame_step: usize,
    used: usize,
) -> SimResult {
    let mut r = result_row(
        video,
        &e.prepared,
        e.fit.alpha_abs,
        e.stderr,
        e.fit.safe_loss,
        seconds,
    );
    r.misfit = e.misfit.is_finite().then_some(e.misfit);
    r.warnings = e.warnings.clone();
    r.add_extras(e.record());
    r.extra
        .insert("frame_step".into(), serde_json::json!(frame_step));
    r.extra
        .insert("frames_used".into(), serde_json::json!(used));
    r
}

/// Fit one video; `Err` is a user-facing sentence (the caller adds the path).
pub fn fit_video(video: &Video, s: &EstimateSettings) -> Result<SimResult, String> {
    let t0 = std::time::Instant::now();
    let frames = stepped_frames(video, s)?;
    let e = estimate(
        &frames,
        &video.grid,
        video.dt_between(s.frame_step),
        &s.options(video),
    )?;
    let mut r = estimate_row(
        video,
        &e,
        t0.elapsed().as_secs_f64(),
        s.frame_step,
        frames.len(),
    );
    // dx belongs to axis 1 of [T, Nx, Ny]. If the data fit far better with the spacings
    // swapped, the file was probably written [T, Ny, Nx]: say so, do not guess.
    if let Some(w) = axis_warning(video, s, &e) {
        r.warnings.push(w);
    }
    r.seconds = t0.elapsed().as_secs_f64();
    Ok(r)
}

/// How much better the swapped-spacing fit must be before we warn about the axis convention.
const AXIS_WARNING_RATIO: f64 = 100.0;

fn axis_warning(video: &Video, s: &EstimateSettings, e: &Estimate) -> Option<String> {
    let g = video.grid;
    if g.dx == g.dy || e.prepared.spec.boundary == Boundary::Open {
        return None;
    }
    let mut swapped = video.clone();
    swapped.grid.dx = g.dy;
    swapped.grid.dy = g.dx;
    let mut opts = s.options(video);
    opts.boundary = Choice::Fixed(e.prepared.spec.boundary);
    opts.laplacian = Choice::Fixed(e.prepared.spec.laplacian);
    opts.process = Choice::Fixed(e.prepared.process);
    opts.strides = Some(e.prepared.strides.clone());
    let frames = swapped.frames_stepped(s.frame_step);
    let alt = estimate(
        &frames,
        &swapped.grid,
        video.dt_between(s.frame_step),
        &opts,
    )
    .ok()?;
    (alt.fit.safe_loss * AXIS_WARNING_RATIO < e.fit.safe_loss).then(|| {
        format!(
            "the SAFE loss is {:.0}x lower with dx and dy swapped (|alpha| would be {:.6}); field.npy must be [T, Nx, Ny] with dx along axis 1",
            e.fit.safe_loss / alt.fit.safe_loss.max(f64::MIN_POSITIVE),
            alt.fit.alpha_abs
        )
    })
}

/// The operator of a fixed specification (for modes that do not decide it).
pub fn fixed_operator(spec: OperatorSpec) -> EstimateSettings {
    EstimateSettings {
        boundary: Choice::Fixed(spec.boundary),
        laplacian: Choice::Fixed(spec.laplacian),
        n_sub: SubStepChoice::Fixed(spec.n_sub),
        ..Default::default()
    }
}
