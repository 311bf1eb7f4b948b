//! Von Neumann stability of the SAFE operator (paper Eq. 4-7, Table 3).
//!
//! One sub-step multiplies mode `k` by `1 - dt_sub*|alpha|*mu_k`; it is stable when every
//! factor lies in `[-1, 1]`, i.e. `sigma = dt_sub*|alpha|*lambda_max <= 2`.

/// The largest stable von Neumann number.
pub const SIGMA_LIMIT: f64 = 2.0;

/// One row of the paper's Table 3.
#[derive(Clone, Debug, PartialEq)]
pub struct StabilityRow {
    pub n_sub: u32,
    pub dt_sub: f64,
    /// `sigma` at the largest `|alpha|` of the data range.
    pub sigma_max: f64,
    /// Largest `|alpha|` this `N_sub` keeps stable.
    pub alpha_max: f64,
    pub stable: bool,
}

/// `sigma = dt_sub * |alpha| * lambda_max`.
pub fn sigma(dt_sub: f64, alpha_abs: f64, lambda_max: f64) -> f64 {
    dt_sub * alpha_abs * lambda_max
}

/// Fewest sub-steps that keep `alpha_abs` stable over one frame interval.
pub fn min_stable_sub_steps(dt_save: f64, alpha_abs: f64, lambda_max: f64) -> u32 {
    let n = (dt_save * alpha_abs * lambda_max / SIGMA_LIMIT).ceil();
    n.max(1.0) as u32
}

pub fn stability_row(
    n_sub: u32,
    dt_save: f64,
    alpha_max_data: f64,
    lambda_max: f64,
) -> StabilityRow {
    let dt_sub = dt_save / n_sub as f64;
    let sigma_max = sigma(dt_sub, alpha_max_data, lambda_max);
    StabilityRow {
        n_sub,
        dt_sub,
        sigma_max,
        alpha_max: SIGMA_LIMIT / (dt_sub * lambda_max),
        stable: sigma_max <= SIGMA_LIMIT,
    }
}

pub fn stability_table(
    n_subs: &[u32],
    dt_save: f64,
    alpha_max_data: f64,
    lambda_max: f64,
) -> Vec<StabilityRow> {
    n_subs
        .iter()
        .map(|&n| stability_row(n, dt_save, alpha_max_data, lambda_max))
        .collect()
}

/// The table in the paper's column layout and precision.
pub fn format_table(rows: &[StabilityRow]) -> String {
    let mut s = String::from("N_sub  dt_sub  sigma_max  alpha_max  Stable?\n");
    for r in rows {
        s.push_str(&format!(
            "{:>5}  {:>6.4}  {:>9.2}  {:>9.2}  {}\n",
            r.n_sub,
            r.dt_sub,
            r.sigma_max,
            r.alpha_max,
            if r.stable { "Yes" } else { "No" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_paper_table_3_columns_1_to_5() {
        let g = crate::operator::lambda_max(crate::operator::Laplacian::FivePoint, 0.5, 0.5);
        let rows = stability_table(&[1, 2, 5, 10, 25, 50], 0.25, 0.7, g);
        let expected = "\
N_sub  dt_sub  sigma_max  alpha_max  Stable?
    1  0.2500       5.60       0.25  No
    2  0.1250       2.80       0.50  No
    5  0.0500       1.12       1.25  Yes
   10  0.0250       0.56       2.50  Yes
   25  0.0100       0.22       6.25  Yes
   50  0.0050       0.11      12.50  Yes
";
        assert_eq!(format_table(&rows), expected);
    }

    #[test]
    fn min_sub_steps_is_the_stability_edge() {
        let g = crate::operator::lambda_max(crate::operator::Laplacian::FivePoint, 0.5, 0.5);
        // 0.25 * 0.7 * 32 / 2 = 2.8 -> 3 sub-steps.
        assert_eq!(min_stable_sub_steps(0.25, 0.7, g), 3);
        assert!(stability_row(3, 0.25, 0.7, g).stable);
        assert!(!stability_row(2, 0.25, 0.7, g).stable);
    }
}
