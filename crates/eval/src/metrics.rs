//! The paper's accuracy metrics: mean absolute error and the coefficient of determination.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub mae: f64,
    /// `1 - SS_res / SS_tot`; `None` when fewer than two values or no spread in the truth.
    pub r2: Option<f64>,
}

/// MAE and R^2 of `(truth, estimate)` pairs; `None` for an empty set.
pub fn metrics(pairs: &[(f64, f64)]) -> Option<Metrics> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len();
    let mae = pairs.iter().map(|(t, e)| (t - e).abs()).sum::<f64>() / n as f64;
    let mean = pairs.iter().map(|(t, _)| t).sum::<f64>() / n as f64;
    let ss_tot: f64 = pairs.iter().map(|(t, _)| (t - mean).powi(2)).sum();
    let ss_res: f64 = pairs.iter().map(|(t, e)| (t - e).powi(2)).sum();
    let r2 = (n >= 2 && ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot);
    Some(Metrics { n, mae, r2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_mean_predictors() {
        let m = metrics(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]).unwrap();
        assert_eq!((m.mae, m.r2), (0.0, Some(1.0)));
        let m = metrics(&[(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]).unwrap();
        assert!((m.mae - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(m.r2, Some(0.0));
        assert_eq!(metrics(&[(1.0, 0.5)]).unwrap().r2, None);
        assert!(metrics(&[]).is_none());
    }
}
