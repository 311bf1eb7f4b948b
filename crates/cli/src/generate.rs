//! `safe-pit-cm generate`: the Appendix-A dataset.

use crate::common::progress_bar;
use anyhow::{Result, anyhow};
use safe_data::dataset::{GenerateSettings, generate};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (created; an existing dataset with the same settings is resumed).
    #[arg(long)]
    out: PathBuf,
    /// Number of diffusion simulations (as many time-reversed mobility ones follow).
    #[arg(long, default_value_t = 50)]
    n_sims: usize,
    /// Do not write the time-reversed mobility simulations.
    #[arg(long)]
    no_mobility: bool,
    #[arg(long, default_value_t = 128)]
    nx: usize,
    #[arg(long, default_value_t = 128)]
    ny: usize,
    #[arg(long, default_value_t = 0.5)]
    dx: f64,
    #[arg(long, default_value_t = 0.5)]
    dy: f64,
    /// Forward-Euler time step (reduced automatically if unstable).
    #[arg(long, default_value_t = 0.005)]
    dt: f64,
    /// Number of time steps.
    #[arg(long, default_value_t = 5000)]
    n_steps: usize,
    /// Steps between saved frames.
    #[arg(long, default_value_t = 50)]
    save_interval: usize,
    /// |alpha| ~ U(alpha_min, alpha_max).
    #[arg(long, default_value_t = 0.1)]
    alpha_min: f64,
    #[arg(long, default_value_t = 0.7)]
    alpha_max: f64,
    /// Number of grains ~ U{grains_min..=grains_max}.
    #[arg(long, default_value_t = 15)]
    grains_min: usize,
    #[arg(long, default_value_t = 35)]
    grains_max: usize,
    /// Interface width w (physical units).
    #[arg(long, default_value_t = 2.5)]
    width: f64,
    /// Standard deviation of the boundary-roughness field xi (physical units; 0 = smooth).
    #[arg(long, default_value_t = safe_physics::initial::DEFAULT_ROUGHNESS_AMPLITUDE)]
    roughness_amplitude: f64,
    /// Correlation length of xi (physical units).
    #[arg(long, default_value_t = safe_physics::initial::DEFAULT_ROUGHNESS_LENGTH)]
    roughness_length: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// spectral (exact forward-Euler map in Fourier space, fast) or stencil (literal sub-steps).
    #[arg(long, default_value = "spectral")]
    solver: String,
    /// euler (the paper's: forward Euler on the five-point stencil) or continuum (the
    /// exact evolution of the continuous heat equation: what real samples do).
    #[arg(long, default_value = "euler")]
    physics: String,
    /// periodic (the paper's), zero-flux (a sealed box) or open (an NX x NY window at a
    /// random place in a periodic sample --window-scale times larger).
    #[arg(long, default_value = "periodic")]
    boundary: String,
    #[arg(long, default_value_t = 2.5)]
    window_scale: f64,
    /// Record through a camera: Gaussian blur, shot and read noise, black level, bit depth
    /// (the values below; the default is a 12-bit scientific camera).
    #[arg(long)]
    camera: bool,
    /// Camera point-spread blur, standard deviation in pixels.
    #[arg(long, default_value_t = 1.2)]
    psf_sigma: f64,
    /// Electrons at the brightest point (shot noise ~ 1/sqrt of it).
    #[arg(long, default_value_t = 10000.0)]
    peak_electrons: f64,
    /// Electrons per ADU.
    #[arg(long, default_value_t = 3.0)]
    camera_gain: f64,
    #[arg(long, default_value_t = 100.0)]
    black_level: f64,
    /// Read noise, ADU.
    #[arg(long, default_value_t = 3.0)]
    read_noise: f64,
    #[arg(long, default_value_t = 12)]
    bits: u32,
    /// Replace an existing dataset made with other settings.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let s = GenerateSettings {
        n_diffusion: a.n_sims,
        mobility: !a.no_mobility,
        nx: a.nx,
        ny: a.ny,
        dx: a.dx,
        dy: a.dy,
        dt: a.dt,
        n_steps: a.n_steps,
        save_interval: a.save_interval,
        alpha_min: a.alpha_min,
        alpha_max: a.alpha_max,
        grains_min: a.grains_min,
        grains_max: a.grains_max,
        interface_width: a.width,
        roughness_amplitude: a.roughness_amplitude,
        roughness_length: a.roughness_length,
        seed: a.seed,
        solver: match a.solver.as_str() {
            "spectral" => "spectral-euler".into(),
            "stencil" => "stencil-euler".into(),
            other => other.into(),
        },
        physics: a.physics.clone(),
        boundary: a.boundary.clone(),
        window_scale: a.window_scale,
        camera: a.camera.then(|| safe_data::camera::Camera {
            psf_sigma: a.psf_sigma,
            peak_electrons: a.peak_electrons,
            gain: a.camera_gain,
            black_level: a.black_level,
            read_noise: a.read_noise,
            bits: a.bits,
            ..Default::default()
        }),
    };
    s.validate().map_err(|e| anyhow!(e))?;
    let t0 = std::time::Instant::now();
    let pb = progress_bar(s.n_diffusion, "generate");
    let (m, report) = generate(&s, &a.out, a.overwrite, &|| pb.inc(1)).map_err(|e| anyhow!(e))?;
    pb.finish_and_clear();
    for name in &report.dt_reduced {
        eprintln!(
            "warning: {name}: dt reduced to satisfy the von Neumann condition (see its meta.json)"
        );
    }
    println!(
        "{} simulations in {} ({} written, {} reused) in {:.2} s",
        m.simulations.len(),
        a.out.display(),
        report.written * if s.mobility { 2 } else { 1 },
        report.reused * if s.mobility { 2 } else { 1 },
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
