//! `safe-pit-cm reproduce`: the paper's experiments and a report beside its numbers.

use anyhow::Result;
use safe_eval::reproduce::{ReproProfile, ReproSettings, reproduce};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (created; rerunning reuses finished work).
    #[arg(long)]
    out: PathBuf,
    /// quick: minutes on a CPU; paper: the paper's training protocol (hours on a CPU);
    /// smoke: a miniature of everything (tiny dataset), for tests.
    #[arg(long, value_parser = ["quick", "paper", "smoke"], default_value = "quick")]
    profile: String,
    /// Use an existing generated dataset instead of generating one under OUT/data.
    #[arg(long)]
    data: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let t0 = std::time::Instant::now();
    let s = ReproSettings {
        profile: match a.profile.as_str() {
            "paper" => ReproProfile::Paper,
            "smoke" => ReproProfile::Smoke,
            _ => ReproProfile::Quick,
        },
        out: a.out.clone(),
        data: a.data.clone(),
    };
    let report = reproduce(&s, &|msg| {
        eprintln!("[{:>6.1} s] {msg}", t0.elapsed().as_secs_f64())
    })?;
    println!(
        "reproduction finished in {:.0} s; report: {}",
        t0.elapsed().as_secs_f64(),
        report.display()
    );
    Ok(ExitCode::SUCCESS)
}
