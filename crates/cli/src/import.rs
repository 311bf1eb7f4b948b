//! `safe-pit-cm import`: an image sequence (folder of PNG/TIFF frames, or a multi-page
//! TIFF) into a simulation folder (`field.npy` + `meta.json`).

use crate::common::parse_process;
use anyhow::{Result, anyhow, bail};
use safe_data::atomic::{commit_dir, temp_sibling, write_atomic, write_json_atomic};
use safe_data::npy::encode_f32;
use safe_data::{MetaOverrides, Video};
use safe_physics::Process;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of frames (natural name order) or a multi-page TIFF.
    source: PathBuf,
    /// Simulation folder to create.
    #[arg(long)]
    out: PathBuf,
    /// Grid spacing along image rows (axis 1), unless the source's meta.json has it.
    #[arg(long)]
    dx: Option<f64>,
    /// Grid spacing along image columns (axis 2).
    #[arg(long)]
    dy: Option<f64>,
    /// Time between frames.
    #[arg(long)]
    dt_save: Option<f64>,
    /// diffusion or mobility.
    #[arg(long, value_parser = parse_process)]
    process: Option<Process>,
    /// Known ground-truth alpha (signed), stored for evaluation.
    #[arg(long, allow_hyphen_values = true)]
    alpha: Option<f64>,
    /// Replace --out if it exists.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.out.exists() && !a.overwrite {
        bail!(
            "{} already exists (pass --overwrite to replace it)",
            a.out.display()
        );
    }
    let ov = MetaOverrides {
        dx: a.dx,
        dy: a.dy,
        dt_save: a.dt_save,
        process: a.process,
        ..Default::default()
    };
    let v = Video::load_images(&a.source, &ov).map_err(|e| anyhow!("{e}"))?;
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(al) = a.alpha
        && (!al.is_finite()
            || v.stated_process()
                .is_some_and(|p| al != 0.0 && al.signum() != p.sign()))
    {
        bail!(
            "--alpha {al} contradicts the process ({}: diffusion has alpha < 0, mobility alpha > 0)",
            v.stated_process()
                .map(|p| p.to_string())
                .unwrap_or_default()
        );
    }
    let alpha = a.alpha.or(v.meta.alpha);
    let mut meta = serde_json::json!({
        "dx": v.meta.dx, "dy": v.meta.dy, "dt_save": v.meta.dt_save,
        "nx": v.grid.nx, "ny": v.grid.ny, "n_frames": v.n_frames,
        "source": a.source.display().to_string(), "imported_by": "safe-pit-cm import",
    });
    if let Some(p) = v.stated_process() {
        meta["process"] = serde_json::json!(p.as_str());
    }
    if let Some(al) = alpha {
        meta["alpha"] = serde_json::json!(al);
    }
    let parent = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent)?;
    let tmp = temp_sibling(&a.out);
    std::fs::create_dir_all(&tmp)?;
    let shape = [v.n_frames, v.grid.nx, v.grid.ny];
    let written = write_atomic(&tmp.join("field.npy"), &encode_f32(&shape, &v.frames), true)
        .and_then(|_| write_json_atomic(&tmp.join("meta.json"), &meta, true))
        .and_then(|_| commit_dir(&tmp, &a.out, a.overwrite));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    println!(
        "{} frames of {}x{} written to {}",
        v.n_frames,
        v.grid.nx,
        v.grid.ny,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
