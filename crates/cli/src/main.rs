//! `safe-pit-cm`: the command-line program, a thin shell over the workspace crates.

mod common;
mod estimate;
mod generate;
mod stability;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "safe-pit-cm",
    version,
    about = "Recover transport coefficients (diffusivity, mobility) from videos of a field: SAFE-PIT-CM in Rust",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the von Neumann stability table of the SAFE operator (paper Table 3).
    Stability(stability::Args),
    /// Generate the paper's Appendix-A dataset (diffusion + time-reversed mobility).
    Generate(generate::Args),
    /// Direct SAFE fit: minimise the SAFE loss over |alpha| for each video.
    Fit(estimate::FitArgs),
    /// Zero-shot: a fresh model per video, Adam on the estimator for --steps steps (paper 2.7).
    ZeroShot(estimate::ZeroShotArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Stability(a) => stability::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Fit(a) => estimate::run_fit(a),
        Command::ZeroShot(a) => estimate::run_zero_shot(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
