//! `meta.json`: the few physical numbers a video needs, validated and cross-checked.
//!
//! Required: `dx`, `dy` and either `dt_save` or both `dt` and `save_interval` (every missing
//! one is named in one message). Optional: `process` (`diffusion` | `mobility`, checked
//! against the data), `alpha` (ground truth, signed), `nx`, `ny`, `n_frames` (checked against
//! the array). Unknown keys are ignored. Values missing from the file can
//! come from command-line flags ([`MetaOverrides`]); a flag that contradicts the file is an
//! error, never a silent choice.

use safe_physics::Process;
use serde_json::Value;

/// Physical numbers given on the command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetaOverrides {
    pub dx: Option<f64>,
    pub dy: Option<f64>,
    pub dt_save: Option<f64>,
    pub process: Option<Process>,
    /// How colour image frames are read (not metadata, but a reading option every loader
    /// takes with it).
    pub channels: crate::images::ChannelMode,
}

/// Validated metadata of one video.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub dx: f64,
    pub dy: f64,
    pub dt_save: f64,
    /// The process the metadata (or `--process`) states; `alpha`'s sign when only it is given.
    pub process: Option<Process>,
    pub alpha: Option<f64>,
    pub dt: Option<f64>,
    pub save_interval: Option<u64>,
    pub nx: Option<usize>,
    pub ny: Option<usize>,
    pub n_frames: Option<usize>,
}

fn num(v: &Value, key: &str) -> Result<Option<f64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("'{key}' is not a number")),
        Some(other) => Err(format!("'{key}' must be a number, found {other}")),
    }
}

fn positive(v: Option<f64>, key: &str) -> Result<Option<f64>, String> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            Err(format!("'{key}' must be finite and > 0, found {x}"))
        }
        other => Ok(other),
    }
}

fn count(v: &Value, key: &str) -> Result<Option<u64>, String> {
    match num(v, key)? {
        None => Ok(None),
        Some(x) if x >= 1.0 && x.fract() == 0.0 && x < 9e15 => Ok(Some(x as u64)),
        Some(x) => Err(format!("'{key}' must be a positive integer, found {x}")),
    }
}

/// Merge a file value with a flag value: either alone is fine, both must agree.
fn merge(file: Option<f64>, flag: Option<f64>, key: &str) -> Result<Option<f64>, String> {
    match (file, flag) {
        (Some(a), Some(b)) if (a - b).abs() > 1e-9 * a.abs().max(b.abs()) => Err(format!(
            "'{key}' is {a} in meta.json but {b} on the command line"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

impl Meta {
    /// Parse and validate `meta.json` text (or `None` when there is no file), filling gaps
    /// from `ov`. Errors are sentences naming the offending key.
    pub fn parse(text: Option<&str>, ov: &MetaOverrides) -> Result<Meta, String> {
        let v: Value = match text {
            Some(t) => {
                serde_json::from_str(t).map_err(|e| format!("meta.json is not valid JSON: {e}"))?
            }
            None => Value::Object(Default::default()),
        };
        if !v.is_object() {
            return Err("meta.json must be a JSON object".into());
        }
        let dx = positive(merge(positive(num(&v, "dx")?, "dx")?, ov.dx, "dx")?, "dx")?;
        let dy = positive(merge(positive(num(&v, "dy")?, "dy")?, ov.dy, "dy")?, "dy")?;
        let dt = positive(num(&v, "dt")?, "dt")?;
        let save_interval = count(&v, "save_interval")?;
        let file_dt_save = positive(num(&v, "dt_save")?, "dt_save")?;
        let derived = match (dt, save_interval) {
            (Some(dt), Some(s)) => Some(dt * s as f64),
            _ => None,
        };
        let file_dt_save = match (file_dt_save, derived) {
            (Some(a), Some(b)) if (a - b).abs() > 1e-6 * a.max(b) => {
                return Err(format!(
                    "contradictory metadata: dt_save = {a} but dt * save_interval = {}",
                    b
                ));
            }
            (a, b) => a.or(b),
        };
        let dt_save = positive(merge(file_dt_save, ov.dt_save, "dt_save")?, "dt_save")?;
        let file_process = match v.get("process") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Process::parse(s).ok_or_else(|| {
                format!("'process' must be \"diffusion\" or \"mobility\", found \"{s}\"")
            })?),
            Some(other) => return Err(format!("'process' must be a string, found {other}")),
        };
        let process = match (file_process, ov.process) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "'process' is {a} in meta.json but {b} on the command line"
                ));
            }
            (a, b) => a.or(b),
        };
        let alpha = num(&v, "alpha")?;
        if let Some(a) = alpha
            && !a.is_finite()
        {
            return Err(format!("'alpha' must be finite, found {a}"));
        }
        if let (Some(a), Some(p)) = (alpha, process)
            && a != 0.0
            && a.signum() != p.sign()
        {
            return Err(format!(
                "contradictory metadata: alpha = {a} but process is {p} (diffusion has alpha < 0, mobility alpha > 0)"
            ));
        }
        let process = process.or(match alpha {
            Some(a) if a < 0.0 => Some(Process::Diffusion),
            Some(a) if a > 0.0 => Some(Process::Mobility),
            _ => None,
        });
        let mut missing = Vec::new();
        for (v, flag, key) in [
            (dx, "--dx", "dx"),
            (dy, "--dy", "dy"),
            (dt_save, "--dt-save", "dt_save (or dt and save_interval)"),
        ] {
            if v.is_none() {
                missing.push(format!("'{key}' ({flag})"));
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "missing {}: give them in meta.json or as flags. In pixel and frame units (dx = dy = 1, dt_save = 1) alpha comes out in pixel^2 per frame",
                missing.join(", ")
            ));
        }
        Ok(Meta {
            dx: dx.unwrap_or_default(),
            dy: dy.unwrap_or_default(),
            dt_save: dt_save.unwrap_or_default(),
            process,
            alpha,
            dt,
            save_interval,
            nx: count(&v, "nx")?.map(|x| x as usize),
            ny: count(&v, "ny")?.map(|x| x as usize),
            n_frames: count(&v, "n_frames")?.map(|x| x as usize),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"dx": 0.5, "dy": 0.5, "dt": 0.005, "save_interval": 50, "process": "mobility", "alpha": 0.3, "extra": [1, 2]}"#;

    #[test]
    fn parses_the_generator_layout() {
        let m = Meta::parse(Some(OK), &MetaOverrides::default()).unwrap();
        assert_eq!(m.dt_save, 0.25);
        assert_eq!(m.process, Some(Process::Mobility));
        assert_eq!(m.alpha, Some(0.3));
    }

    #[test]
    fn flags_fill_gaps_and_contradictions_are_errors() {
        let ov = MetaOverrides {
            dt_save: Some(0.1),
            process: Some(Process::Diffusion),
            ..Default::default()
        };
        let m = Meta::parse(Some(r#"{"dx": 1, "dy": 2}"#), &ov).unwrap();
        assert_eq!((m.dx, m.dy, m.dt_save), (1.0, 2.0, 0.1));
        let e = Meta::parse(Some(OK), &ov).unwrap_err();
        assert!(e.contains("dt_save") || e.contains("process"), "{e}");
    }

    #[test]
    fn every_missing_key_is_named_at_once_and_process_is_optional() {
        let e = Meta::parse(Some("{}"), &MetaOverrides::default()).unwrap_err();
        for k in ["'dx' (--dx)", "'dy' (--dy)", "dt_save", "pixel^2 per frame"] {
            assert!(e.contains(k), "{e}");
        }
        let m = Meta::parse(
            Some(r#"{"dx": 1, "dy": 1, "dt_save": 1, "alpha": -0.2}"#),
            &MetaOverrides::default(),
        )
        .unwrap();
        assert_eq!(m.process, Some(Process::Diffusion));
        let m = Meta::parse(
            Some(r#"{"dx": 1, "dy": 1, "dt_save": 1}"#),
            &MetaOverrides::default(),
        )
        .unwrap();
        assert_eq!(m.process, None);
    }

    #[test]
    fn rejects_bad_values_with_the_key_named() {
        let cases = [
            (
                r#"{"dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#,
                "dx",
            ),
            (
                r#"{"dx": -1, "dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#,
                "dx",
            ),
            (
                r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0, "process": "diffusion"}"#,
                "dt_save",
            ),
            (
                r#"{"dx": 0.5, "dy": 0.5, "process": "diffusion"}"#,
                "dt_save",
            ),
            (
                r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "heat"}"#,
                "process",
            ),
            (
                r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "diffusion", "alpha": 0.3}"#,
                "alpha",
            ),
            (
                r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.3, "dt": 0.005, "save_interval": 50, "process": "diffusion"}"#,
                "dt_save",
            ),
            (
                r#"{"dx": "0.5", "dy": 0.5, "dt_save": 0.25, "process": "diffusion"}"#,
                "dx",
            ),
            (
                r#"{"dx": 0.5, "dy": 0.5, "dt_save": 0.25, "process": "diffusion", "save_interval": 2.5}"#,
                "save_interval",
            ),
            ("[1, 2]", "object"),
            ("{not json", "JSON"),
        ];
        for (text, key) in cases {
            let e = Meta::parse(Some(text), &MetaOverrides::default()).unwrap_err();
            assert!(e.contains(key), "{text} -> {e}");
        }
    }
}
