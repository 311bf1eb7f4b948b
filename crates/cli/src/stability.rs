//! `safe-pit-cm stability`: the paper's Table 3 for any grid and frame interval.

use anyhow::{Result, bail};
use safe_physics::Grid;
use safe_physics::stability::{format_table, min_stable_sub_steps, stability_table};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Time between saved frames.
    #[arg(long, default_value_t = 0.25)]
    dt_save: f64,
    /// Grid spacing along axis 1.
    #[arg(long, default_value_t = 0.5)]
    dx: f64,
    /// Grid spacing along axis 2.
    #[arg(long, default_value_t = 0.5)]
    dy: f64,
    /// Smallest |alpha| of the data range.
    #[arg(long, default_value_t = 0.1)]
    alpha_min: f64,
    /// Largest |alpha| of the data range (sigma_max is evaluated here).
    #[arg(long, default_value_t = 0.7)]
    alpha_max: f64,
    /// Sub-step counts to tabulate.
    #[arg(long, value_delimiter = ',', default_value = "1,2,5,10,25,50")]
    n_sub: Vec<u32>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    // The eigenvalue bound does not depend on the grid size; 3x3 is the smallest valid grid.
    let grid = Grid::new(3, 3, a.dx, a.dy)?;
    if !(a.dt_save.is_finite() && a.dt_save > 0.0) {
        bail!("--dt-save must be > 0, got {}", a.dt_save);
    }
    if !(a.alpha_min > 0.0 && a.alpha_max >= a.alpha_min && a.alpha_max.is_finite()) {
        bail!(
            "need 0 < --alpha-min <= --alpha-max, got [{}, {}]",
            a.alpha_min,
            a.alpha_max
        );
    }
    if a.n_sub.contains(&0) {
        bail!("--n-sub values must be >= 1");
    }
    let lambda =
        safe_physics::operator::lambda_max(safe_physics::Laplacian::FivePoint, grid.dx, grid.dy);
    let rows = stability_table(&a.n_sub, a.dt_save, a.alpha_max, lambda);
    let n_min = min_stable_sub_steps(a.dt_save, a.alpha_max, lambda);
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"n_sub": r.n_sub, "dt_sub": r.dt_sub, "sigma_max": r.sigma_max,
                "alpha_max": r.alpha_max, "stable": r.stable})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dt_save": a.dt_save, "dx": a.dx, "dy": a.dy, "lambda_max": lambda,
                "alpha_range": [a.alpha_min, a.alpha_max], "min_stable_n_sub": n_min, "rows": rows
            }))?
        );
    } else {
        println!(
            "SAFE operator stability: dt_save = {}, dx = {}, dy = {}, lambda_max = 4/dx^2 + 4/dy^2 = {}, |alpha| in [{}, {}]",
            a.dt_save, a.dx, a.dy, lambda, a.alpha_min, a.alpha_max
        );
        println!(
            "sigma = dt_sub * |alpha| * lambda_max must be <= 2; sigma_max at |alpha| = {}\n",
            a.alpha_max
        );
        print!("{}", format_table(&rows));
        println!("\nSmallest stable N_sub for the whole range: {n_min}");
    }
    Ok(ExitCode::SUCCESS)
}
