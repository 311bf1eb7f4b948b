//! `safe-pit-cm bench`: timings to rerun on the machine at hand (JSON on stdout).

use anyhow::{Result, bail};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to time: codec (encoder + decoder forward and backward on one video, the cost of
    /// a phase-2 training step).
    #[arg(value_parser = ["codec"])]
    what: String,
    /// Frames of the video.
    #[arg(long, default_value_t = 101)]
    frames: usize,
    /// Side of the square frames.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Timed runs (after one small warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.frames < 1 || a.size < 3 || a.runs < 1 {
        bail!("--frames >= 1, --size >= 3 and --runs >= 1 are needed");
    }
    let v = match a.what.as_str() {
        "codec" => safe_eval::bench::codec(a.frames, a.size, a.runs),
        other => bail!("unknown benchmark '{other}'"),
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}
