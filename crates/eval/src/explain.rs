//! Explainability artefacts of one zero-shot run (the data of the paper's Figs. 4-6):
//! per-frame SAFE loss and reconstruction error as CSV (and plotted), the optimiser's
//! trajectory, and `V`, `F`, `V_hat` and `|P - F[t+1]|` at a few frames as images.
//!
//! Everything is reported in the video's own intensity units and original frame numbers.
//! For a mobility video the SAFE operator runs backwards in time (its stable direction), so
//! "the prediction of frame t" comes from frame t+1 there.

use crate::plots::{BLUE_DIFFUSION, Panel, Plot, RED_MOBILITY, Series, field_grid, save_plot};
use anyhow::{Context, Result, bail};
use safe_data::Video;
use safe_data::atomic::write_atomic;
use safe_model::zero_shot::ZeroShotOutput;
use safe_physics::{KERNEL_TAIL, Process, SafeOperator};
use std::fmt::Write;
use std::path::Path;

/// Original frame numbers of the canonical (stable-order) frames used.
pub fn canonical_indices(video: &Video, frame_step: usize, process: Process) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..video.n_frames).step_by(frame_step.max(1)).collect();
    if process.needs_time_reversal() {
        idx.reverse();
    }
    idx
}

/// Write the artefacts into `dir` (created; must be empty unless `overwrite`).
pub fn write_explain(
    dir: &Path,
    video: &Video,
    out: &ZeroShotOutput,
    process: Process,
    frame_step: usize,
    overwrite: bool,
) -> Result<()> {
    if dir.exists()
        && !overwrite
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        bail!(
            "{} exists and is not empty (pass --overwrite to replace its files)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let grid = video.grid;
    let n = grid.len();
    let idx = canonical_indices(video, frame_step, process);
    let t = idx.len();
    let (mean, std) = (out.norm.mean, out.norm.std);
    let var = std * std;
    let a = out.alpha_abs;
    let dt = video.dt_between(frame_step);

    // Per-frame errors, over the pixels the loss counts.
    let op = SafeOperator::new(grid, out.spec, dt);
    let (mx, my) = op.margins(1.5 * a, 1, KERNEL_TAIL);
    let residual = |s: usize| -> Vec<f64> {
        let p = op.apply(&out.latent[(s - 1) * n..s * n], a, 1);
        let target = op.apply(&out.latent[s * n..(s + 1) * n], 0.0, 1);
        p.iter().zip(&target).map(|(x, y)| x - y).collect()
    };
    let pair: Vec<f64> = (1..t)
        .map(|s| {
            let r = residual(s);
            let (mut sum, mut k) = (0.0, 0usize);
            for i in mx..grid.nx - mx {
                for j in my..grid.ny - my {
                    sum += r[i * grid.ny + j].powi(2);
                    k += 1;
                }
            }
            sum / k.max(1) as f64
        })
        .collect();
    let recon: Vec<f64> = (0..t)
        .map(|s| {
            let (r, v) = (
                &out.reconstruction[s * n..(s + 1) * n],
                &out.input[s * n..(s + 1) * n],
            );
            r.iter()
                .zip(v)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum::<f64>()
                / n as f64
                * var
        })
        .collect();
    let mut rows: Vec<(usize, f64, Option<f64>)> = (0..t)
        .map(|s| (idx[s], recon[s], (s >= 1).then(|| pair[s - 1] * var)))
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut csv = String::from("frame,recon_error,safe_loss_into_frame,predicted_from\n");
    for (f, r, l) in &rows {
        let from = if process.needs_time_reversal() {
            f + frame_step
        } else {
            f.wrapping_sub(frame_step)
        };
        match l {
            Some(l) => writeln!(csv, "{f},{r:.6e},{l:.6e},{from}")?,
            None => writeln!(csv, "{f},{r:.6e},,")?,
        }
    }
    write_atomic(&dir.join("per_frame.csv"), csv.as_bytes(), true)?;

    let mut traj = String::from("step,alpha_abs,loss\n");
    for r in &out.history {
        writeln!(traj, "{},{:.9e},{:.6e}", r.step, r.alpha_abs, r.loss)?;
    }
    write_atomic(&dir.join("trajectory.csv"), traj.as_bytes(), true)?;

    let color = if process.needs_time_reversal() {
        RED_MOBILITY
    } else {
        BLUE_DIFFUSION
    };
    save_plot(
        &dir.join("per_frame_errors"),
        &Plot {
            title: format!("Per-frame error ({process}, |alpha| = {a:.4})"),
            x_label: "frame".into(),
            y_label: "mean squared error (intensity units^2)".into(),
            log_x: false,
            log_y: true,
            series: vec![
                Series {
                    name: "SAFE loss ||P[t] - F[t+1]||^2".into(),
                    color,
                    points: rows
                        .iter()
                        .filter_map(|(f, _, l)| l.map(|l| (*f as f64, l)))
                        .collect(),
                    markers: false,
                    line: true,
                },
                Series {
                    name: if rows.iter().all(|r| r.1 == 0.0) {
                        "reconstruction ||V_hat - V||^2: exactly 0 (identity decoder), not drawn"
                            .into()
                    } else {
                        "reconstruction ||V_hat - V||^2".into()
                    },
                    color: crate::plots::GREY,
                    points: rows.iter().map(|(f, r, _)| (*f as f64, *r)).collect(),
                    markers: false,
                    line: true,
                },
            ],
            diagonal: false,
        },
    )?;

    // Field panels at four pairs spread over the video: V, F, V_hat at the predicted frame,
    // and |P - F| of its prediction.
    let back =
        |x: &[f32]| -> Vec<f32> { x.iter().map(|&v| (v as f64 * std + mean) as f32).collect() };
    let picks: Vec<usize> = (0..4).map(|k| 1 + k * (t - 2) / 3).collect();
    let mut data: Vec<[Vec<f32>; 4]> = Vec::new();
    for &s in &picks {
        let f_tgt = &out.latent[s * n..(s + 1) * n];
        let resid: Vec<f32> = residual(s).iter().map(|x| (x.abs() * std) as f32).collect();
        data.push([
            video.frame(idx[s]).to_vec(),
            back(f_tgt),
            back(&out.reconstruction[s * n..(s + 1) * n]),
            resid,
        ]);
    }
    let grid_rows: Vec<Vec<Panel>> = picks
        .iter()
        .zip(&data)
        .map(|(&s, d)| {
            let f = idx[s];
            let titles = [
                format!("V[{f}]"),
                format!("F[{f}]"),
                format!("V_hat[{f}]"),
                format!("|P - F[{f}]|"),
            ];
            titles
                .into_iter()
                .zip(d.iter())
                .map(|(title, data)| Panel {
                    title,
                    data,
                    nx: grid.nx,
                    ny: grid.ny,
                    range: None,
                })
                .collect()
        })
        .collect();
    field_grid(
        &dir.join("fields.png"),
        &format!(
            "{}: {} video, alpha_hat = {:+.4}",
            video.source.display(),
            process,
            process.sign() * a
        ),
        &grid_rows,
        220,
    )?;
    Ok(())
}
