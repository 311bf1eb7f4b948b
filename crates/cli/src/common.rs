//! Pieces shared by the commands: input flags, the per-video loop, result output.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use safe_data::{MetaOverrides, Source, Video, discover};
use safe_eval::fitting::{EstimateSettings, SubStepChoice};
use safe_eval::results::{ErrorRecord, RunOutput, SimResult};
use safe_physics::loss::NoiseMode;
use safe_physics::{Boundary, Choice, Laplacian, Process};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Inputs and the physical numbers that may be missing from them.
#[derive(clap::Args, Clone, Debug)]
pub struct InputArgs {
    /// Simulation folders (field.npy + meta.json), folders of them, image-frame folders or
    /// multi-page TIFFs.
    #[arg(required = true, value_name = "DATA")]
    pub data: Vec<PathBuf>,
    /// Grid spacing along axis 1 (image rows), if meta.json lacks it.
    #[arg(long)]
    pub dx: Option<f64>,
    /// Grid spacing along axis 2 (image columns), if meta.json lacks it.
    #[arg(long)]
    pub dy: Option<f64>,
    /// Time between saved frames, if meta.json lacks it.
    #[arg(long)]
    pub dt_save: Option<f64>,
    /// A vector field (`field.npy` [T, C, Nx, Ny]) gives one row per channel instead of
    /// one joint estimate (channels that may be different materials).
    #[arg(long)]
    pub per_channel: bool,
    /// Colour image frames: gray (one intensity; colour frames are refused) or separate
    /// (red, green and blue are three channels of one field that share alpha).
    #[arg(long, default_value = "gray", value_name = "gray|separate")]
    pub channels: safe_data::images::ChannelMode,
}

pub fn parse_process(s: &str) -> Result<Process, String> {
    Process::parse(s).ok_or_else(|| format!("'{s}' is not a process: use diffusion or mobility"))
}

impl InputArgs {
    pub fn overrides(&self) -> MetaOverrides {
        MetaOverrides {
            dx: self.dx,
            dy: self.dy,
            dt_save: self.dt_save,
            process: None,
            channels: self.channels,
        }
    }
}

/// The SAFE operator and loss: what every estimating command (fit, zero-shot, infer) shares.
#[derive(clap::Args, Clone, Debug)]
pub struct OperatorArgs {
    /// What lies outside the field of view: periodic (the field wraps), zero-flux (a sealed
    /// sample), open (a window onto a larger sample: nothing assumed, only pixels the
    /// outside cannot reach within a frame interval are compared), or auto (decided from
    /// the data: how the edges look, then the residual along them).
    #[arg(long, default_value = "auto")]
    pub boundary: Choice<Boundary>,
    /// The Laplacian: five-point (the paper's stencil), continuum (the continuous
    /// Laplacian of real physics), or auto (the one whose SAFE loss is lower).
    #[arg(long, default_value = "auto")]
    pub laplacian: Choice<Laplacian>,
    /// Sub-steps per frame interval: a count, 'inf' (exact exponential, for continuous-time
    /// physics and real videos) or 'auto' (the data's save_interval, else inf).
    #[arg(long, default_value = "auto")]
    pub n_sub: SubStepChoice,
    /// diffusion (the field smooths forward in time), mobility (it sharpens), or auto (the
    /// direction the data support; meta.json's 'process' is checked against it).
    #[arg(long, default_value = "auto")]
    pub process: Choice<Process>,
    /// Frame strides of the SAFE loss, e.g. 1,2,4,8,16 (default: 1, plus longer strides when
    /// noise is a visible share of the frame-to-frame change).
    #[arg(long, value_delimiter = ',')]
    pub strides: Option<Vec<usize>>,
    /// Use every K-th frame.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub frame_step: u64,
    /// Restrict the search for |alpha| to LO,HI (default: von Neumann numbers 1e-5..1e4).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub alpha_range: Option<Vec<f64>>,
    /// Measurement-noise correction of the SAFE loss: auto (estimate the noise's variance
    /// and frame-to-frame correlation from the data; no effect on clean data), off (the
    /// paper's raw loss), or a standard deviation.
    #[arg(long, default_value = "auto")]
    pub noise: NoiseMode,
}

impl OperatorArgs {
    pub fn settings(&self) -> Result<EstimateSettings> {
        let s = EstimateSettings {
            boundary: self.boundary,
            laplacian: self.laplacian,
            n_sub: self.n_sub,
            process: self.process,
            strides: self.strides.clone(),
            frame_step: self.frame_step as usize,
            alpha_range: self.alpha_range.as_ref().map(|v| (v[0], v[1])),
            noise: self.noise,
            process_from_metadata: false,
        };
        safe_eval::api::check(&s, safe_eval::intensity::GammaChoice::Fixed(1.0))
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
        Ok(s)
    }
}

/// The camera's intensity curve, undone before estimating.
#[derive(clap::Args, Clone, Debug)]
pub struct IntensityArgs {
    /// The frames record x^GAMMA of the field (x scaled to [0, 1] by the video's darkest and
    /// brightest pixel): a number (1 = linear, the default), or 'auto' to fit gamma per
    /// video as the value whose undone video the SAFE operator explains best.
    #[arg(long, default_value = "1")]
    pub gamma: safe_eval::intensity::GammaChoice,
}

/// Where results go.
#[derive(clap::Args, Clone, Debug)]
pub struct OutputArgs {
    /// Write the results as JSON to this file (atomically).
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

impl OutputArgs {
    /// Fail before any work if the output exists and may not be replaced.
    pub fn check(&self) -> Result<()> {
        if let Some(p) = &self.out {
            if p.exists() && !self.overwrite {
                bail!(
                    "{} already exists (pass --overwrite to replace it)",
                    p.display()
                );
            }
            if p.is_dir() {
                bail!("{} is a folder; --out takes a file name", p.display());
            }
        }
        Ok(())
    }
}

pub fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Load every input and run `f` on each video. Inputs that fail to load or to estimate
/// become error records; the rest of the run goes on.
pub fn run_over_inputs(
    inputs: &InputArgs,
    what: &str,
    parallel: bool,
    f: &(dyn Fn(&Video, &ProgressBar) -> std::result::Result<SimResult, String> + Sync),
) -> (Vec<SimResult>, Vec<ErrorRecord>) {
    let ov = inputs.overrides();
    let found = discover(&inputs.data);
    for w in &found.warnings {
        eprintln!("warning: {w}");
    }
    let pb = progress_bar(found.len(), what);
    let one = |s: &std::result::Result<Source, safe_data::DataError>| -> std::result::Result<
        Vec<std::result::Result<SimResult, ErrorRecord>>,
        ErrorRecord,
    > {
        let rec = |p: &Path, e: String| ErrorRecord {
            path: p.display().to_string(),
            error: e,
        };
        let src = s.as_ref().map_err(|e| rec(&e.path, e.kind.to_string()))?;
        let video = Video::load(src, &ov).map_err(|e| rec(&e.path, e.kind.to_string()))?;
        // --per-channel: each channel of a vector field is its own row.
        let videos = if inputs.per_channel {
            video.split_channels()
        } else {
            vec![video]
        };
        let r = videos
            .iter()
            .map(|video| {
                // The video's own warnings (skipped frames) travel with its result.
                f(video, &pb)
                    .map(|mut r| {
                        r.warnings.splice(0..0, video.warnings.iter().cloned());
                        r
                    })
                    .map_err(|e| rec(&video.source, e))
            })
            .collect::<Vec<_>>();
        pb.inc(1);
        Ok(r)
    };
    type PerVideo = Vec<std::result::Result<SimResult, ErrorRecord>>;
    let all: Vec<std::result::Result<PerVideo, ErrorRecord>> = if parallel {
        use rayon::prelude::*;
        found.sources.par_iter().map(one).collect()
    } else {
        found.sources.iter().map(one).collect()
    };
    pb.finish_and_clear();
    let mut sims = Vec::new();
    let mut errors = Vec::new();
    for r in all {
        match r {
            Ok(per) => {
                for r in per {
                    match r {
                        Ok(s) => sims.push(s),
                        Err(e) => errors.push(e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (sims, errors)
}

/// Print the table, write the JSON, and pick the exit code (1 if any input failed).
pub fn finish(out: &RunOutput, args: &OutputArgs) -> Result<ExitCode> {
    print!("{}", out.table());
    for r in &out.sims {
        // What `auto` decided, and why.
        if let Some(ds) = r.extra.get("decisions").and_then(|v| v.as_array()) {
            for d in ds.iter().filter(|d| d["auto"] == serde_json::json!(true)) {
                eprintln!(
                    "note: {}: {} = {} ({})",
                    r.path,
                    d["what"].as_str().unwrap_or(""),
                    d["value"].as_str().unwrap_or(""),
                    d["why"].as_str().unwrap_or("")
                );
            }
        }
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.path);
        }
    }
    for e in &out.errors {
        eprintln!("error: {}: {}", e.path, e.error);
    }
    if let Some(p) = &args.out {
        safe_data::atomic::write_json_atomic(p, out, args.overwrite)
            .with_context(|| format!("writing {}", p.display()))?;
        println!("results written to {}", p.display());
    }
    Ok(if out.errors.is_empty() && !out.sims.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
