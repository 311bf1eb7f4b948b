//! `safe-pit-cm`: the command-line program, a thin shell over the workspace crates.

mod bench;
mod common;
mod estimate;
mod generate;
mod import;
mod reproduce;
mod stability;
mod training;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// burn's CPU kernels allocate and free large buffers every step; glibc's malloc returns them
// to the system and faults them back in (measured: 38 s of system time in a 19 s codec
// step). mimalloc, told never to hand memory back, keeps them (README Benchmarks).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v2's option numbers (its `mimalloc.h`; the Rust binding names only some).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory() {
    // SAFETY: plain option setters of the allocator, called before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 1);
    }
}

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
    /// Reproduce the paper: all modes and ablations, report beside the published numbers.
    Reproduce(reproduce::Args),
    /// Convert an image sequence (PNG/TIFF frames or a multi-page TIFF) into a simulation folder.
    Import(import::Args),
    /// Print the von Neumann stability table of the SAFE operator (paper Table 3).
    Stability(stability::Args),
    /// Generate the paper's Appendix-A dataset (diffusion + time-reversed mobility).
    Generate(generate::Args),
    /// Direct SAFE fit: minimise the SAFE loss over |alpha| for each video.
    Fit(estimate::FitArgs),
    /// Zero-shot: a fresh model per video, Adam on the estimator for --steps steps (paper 2.7).
    ZeroShot(estimate::ZeroShotArgs),
    /// Two-phase training on a generated dataset (paper 2.6).
    Train(training::TrainArgs),
    /// Inference with a trained model: amortised, or with test-time training.
    Infer(training::InferArgs),
    /// The classical baseline: a weak-form (WSINDy-style) estimate, for comparison.
    WeakForm(estimate::WeakFormArgs),
    /// Time a kernel on this machine and print JSON (`bench codec`: a phase-2 step's codec).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reproduce(a) => reproduce::run(a),
        Command::Import(a) => import::run(a),
        Command::Stability(a) => stability::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Fit(a) => estimate::run_fit(a),
        Command::ZeroShot(a) => estimate::run_zero_shot(a),
        Command::Train(a) => training::run_train(a),
        Command::Infer(a) => training::run_infer(a),
        Command::WeakForm(a) => estimate::run_weak_form(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
