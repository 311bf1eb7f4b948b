//! The result file every estimation command writes (`fit`, `zero-shot`, `infer`), and its
//! readable table.
//!
//! `{"sims": [{"path", "process", "alpha_true"?, "alpha_hat", "stderr", "safe_loss",
//! "seconds", ...}], "metrics": {"all"|"diffusion"|"mobility": {"n", "mae", "r2"}},
//! "errors": [{"path", "error"}], "settings": {...}}`.

use crate::metrics::{Metrics, metrics};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    pub path: String,
    pub process: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha_true: Option<f64>,
    pub alpha_hat: f64,
    /// NaN where the method has none (the weak form), written as `null`.
    #[serde(deserialize_with = "nan_if_null")]
    pub stderr: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub safe_loss: f64,
    pub seconds: f64,
    /// Mean reconstruction error `||V_hat - V||^2` (zero-shot and trained modes; Table 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recon_error: Option<f64>,
    /// Raw SAFE loss over what the measured noise alone would leave (~1 for a right model).
    #[serde(default)]
    pub misfit: Option<f64>,
    /// What the user should know about this estimate (misfit and its likely causes,
    /// contradicted metadata, undecidable choices).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Mode-specific extras (sub-steps used, optimiser steps, flags).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// JSON has no NaN: serde_json writes it as `null`; read `null` back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl SimResult {
    /// The row's own fields: an extra of the same name would be written twice and make the
    /// row unreadable (serde refuses duplicate fields), so [`SimResult::add_extras`] skips them.
    pub const FIELDS: [&'static str; 10] = [
        "path",
        "process",
        "alpha_true",
        "alpha_hat",
        "stderr",
        "safe_loss",
        "seconds",
        "recon_error",
        "misfit",
        "warnings",
    ];

    /// Add an estimate's record (or any JSON object) to the mode-specific extras, leaving
    /// out the keys the row already has as fields.
    pub fn add_extras(&mut self, record: serde_json::Value) {
        if let serde_json::Value::Object(m) = record {
            self.extra.extend(
                m.into_iter()
                    .filter(|(k, _)| !Self::FIELDS.contains(&k.as_str())),
            );
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub path: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    pub sims: Vec<SimResult>,
    pub metrics: BTreeMap<String, Metrics>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorRecord>,
    pub settings: serde_json::Value,
}

impl RunOutput {
    pub fn new(
        sims: Vec<SimResult>,
        errors: Vec<ErrorRecord>,
        settings: serde_json::Value,
    ) -> RunOutput {
        let metrics = group_metrics(&sims);
        RunOutput {
            sims,
            metrics,
            errors,
            settings,
        }
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let w = self
            .sims
            .iter()
            .map(|r| r.path.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 60);
        s.push_str(&format!(
            "{:<w$}  {:<9}  {:>10}  {:>10}  {:>9}  {:>9}  {:>9}  {:>8}  {:>7}\n",
            "path",
            "process",
            "alpha_true",
            "alpha_hat",
            "|error|",
            "stderr",
            "SAFE loss",
            "misfit",
            "seconds"
        ));
        for r in &self.sims {
            let (t, e) = match r.alpha_true {
                Some(t) => (
                    format!("{t:>10.6}"),
                    format!("{:>9.2e}", (r.alpha_hat - t).abs()),
                ),
                None => (format!("{:>10}", "-"), format!("{:>9}", "-")),
            };
            let p = if r.path.len() > w {
                format!("...{}", &r.path[r.path.len() - (w - 3)..])
            } else {
                r.path.clone()
            };
            let misfit = match r.misfit {
                Some(m) if m >= 1e4 => format!("{m:>8.1e}"),
                Some(m) => format!("{m:>8.2}"),
                None => format!("{:>8}", "-"),
            };
            let flag = if r.warnings.is_empty() { "" } else { "  !" };
            s.push_str(&format!(
                "{p:<w$}  {:<9}  {t}  {:>10.6}  {e}  {:>9.2e}  {:>9.2e}  {misfit}  {:>7.3}{flag}\n",
                r.process, r.alpha_hat, r.stderr, r.safe_loss, r.seconds
            ));
        }
        if !self.metrics.is_empty() {
            s.push('\n');
            for (k, m) in &self.metrics {
                let r2 =
                    m.r2.map(|r| format!("{r:.6}"))
                        .unwrap_or_else(|| "n/a".into());
                s.push_str(&format!(
                    "{k:<9}  n={:<4} MAE={:.3e}  R^2={r2}\n",
                    m.n, m.mae
                ));
            }
        }
        for r in &self.sims {
            for w in &r.warnings {
                s.push_str(&format!("WARNING {}: {w}\n", r.path));
            }
        }
        for e in &self.errors {
            s.push_str(&format!("ERROR {}: {}\n", e.path, e.error));
        }
        s
    }
}

/// Metrics for all sims with ground truth, and per regime.
pub fn group_metrics(sims: &[SimResult]) -> BTreeMap<String, Metrics> {
    let mut out = BTreeMap::new();
    let pairs = |f: &dyn Fn(&SimResult) -> bool| -> Vec<(f64, f64)> {
        sims.iter()
            .filter(|r| f(r))
            .filter_map(|r| r.alpha_true.map(|t| (t, r.alpha_hat)))
            .collect()
    };
    for (name, sel) in [
        (
            "all",
            &(|_: &SimResult| true) as &dyn Fn(&SimResult) -> bool,
        ),
        ("diffusion", &|r: &SimResult| r.process == "diffusion"),
        ("mobility", &|r: &SimResult| r.process == "mobility"),
    ] {
        if let Some(m) = metrics(&pairs(sel)) {
            out.insert(name.to_string(), m);
        }
    }
    out
}
