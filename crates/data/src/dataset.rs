//! The Appendix-A dataset on disk: generation (parallel, resumable, byte-reproducible),
//! and the `manifest.json` with the paper's splits.
//!
//! Layout: `DIR/sim_000/{field.npy, meta.json}` ... and `DIR/manifest.json`. Simulations
//! `0..n` are diffusion (`alpha = -D`); simulation `n+i` is simulation `i` reversed in time
//! (`alpha = +D`). Each simulation folder is written under a temporary name and renamed into
//! place when complete, so a killed run leaves only whole simulations, and a rerun with the
//! same settings skips them.

use crate::atomic::{
    WriteError, clean_stale_temps, commit_dir, temp_sibling, write_atomic, write_json_atomic,
};
use crate::npy::{encode_f32, encoded_len_f32};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use safe_physics::initial::{grain_centres, roughness_field, voronoi_field};
use safe_physics::simulate::{SimParams, Solver, evolve_exact, reverse_frames, simulate_f64};
use safe_physics::{Boundary, Grid, Laplacian, OperatorSpec, SubSteps};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const GENERATOR_VERSION: &str = "1";

/// Every parameter of the paper's Table 1, plus our choices the paper leaves open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateSettings {
    /// Number of diffusion simulations; as many time-reversed mobility ones follow.
    pub n_diffusion: usize,
    pub mobility: bool,
    pub nx: usize,
    pub ny: usize,
    pub dx: f64,
    pub dy: f64,
    pub dt: f64,
    pub n_steps: usize,
    pub save_interval: usize,
    pub alpha_min: f64,
    pub alpha_max: f64,
    pub grains_min: usize,
    pub grains_max: usize,
    pub interface_width: f64,
    pub roughness_amplitude: f64,
    pub roughness_length: f64,
    pub seed: u64,
    pub solver: String,
    /// `euler` (the paper's: forward Euler on the five-point stencil, `dt` and
    /// `save_interval`) or `continuum` (the exact evolution of the continuous heat equation
    /// on band-limited samples: Fourier modes, or cosine modes in a sealed box).
    #[serde(default = "default_physics")]
    pub physics: String,
    /// `periodic` (the paper's), `zero-flux` (a sealed box), or `open` (a window of
    /// `nx x ny` at a random place in a periodic sample `window_scale` times larger).
    #[serde(default = "default_boundary")]
    pub boundary: String,
    #[serde(default = "default_window_scale")]
    pub window_scale: f64,
    /// The camera the video is recorded through (none: the field itself, float32).
    #[serde(default)]
    pub camera: Option<crate::camera::Camera>,
}

fn default_physics() -> String {
    "euler".into()
}
fn default_boundary() -> String {
    "periodic".into()
}
fn default_window_scale() -> f64 {
    2.5
}

impl Default for GenerateSettings {
    fn default() -> Self {
        GenerateSettings {
            n_diffusion: 50,
            mobility: true,
            nx: 128,
            ny: 128,
            dx: 0.5,
            dy: 0.5,
            dt: 0.005,
            n_steps: 5000,
            save_interval: 50,
            alpha_min: 0.1,
            alpha_max: 0.7,
            grains_min: 15,
            grains_max: 35,
            interface_width: 2.5,
            roughness_amplitude: safe_physics::initial::DEFAULT_ROUGHNESS_AMPLITUDE,
            roughness_length: safe_physics::initial::DEFAULT_ROUGHNESS_LENGTH,
            seed: 0,
            solver: Solver::Spectral.as_str().to_string(),
            physics: default_physics(),
            boundary: default_boundary(),
            window_scale: default_window_scale(),
            camera: None,
        }
    }
}

impl GenerateSettings {
    pub fn solver(&self) -> Result<Solver, String> {
        match self.solver.as_str() {
            "spectral-euler" | "spectral" => Ok(Solver::Spectral),
            "stencil-euler" | "stencil" => Ok(Solver::Stencil),
            s => Err(format!("unknown solver '{s}' (spectral or stencil)")),
        }
    }

    /// The boundary of the simulated sample, and the physics's operator.
    pub fn boundary(&self) -> Result<Boundary, String> {
        self.boundary.parse()
    }

    pub fn continuum(&self) -> Result<bool, String> {
        match self.physics.as_str() {
            "euler" => Ok(false),
            "continuum" => Ok(true),
            p => Err(format!("unknown physics '{p}' (euler or continuum)")),
        }
    }

    /// The grid the physics runs on (larger than the saved window for open boundaries).
    pub fn domain(&self) -> Result<Grid, String> {
        let (nx, ny) = if self.boundary()? == Boundary::Open {
            (
                (self.nx as f64 * self.window_scale).round() as usize,
                (self.ny as f64 * self.window_scale).round() as usize,
            )
        } else {
            (self.nx, self.ny)
        };
        Grid::new(nx, ny, self.dx, self.dy).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), String> {
        Grid::new(self.nx, self.ny, self.dx, self.dy).map_err(|e| e.to_string())?;
        self.solver()?;
        self.continuum()?;
        if self.boundary()? == Boundary::Open
            && !(self.window_scale >= 1.5 && self.window_scale <= 10.0)
        {
            return Err("window_scale must be in [1.5, 10]".into());
        }
        if let Some(c) = &self.camera {
            c.validate()?;
        }
        if self.n_diffusion == 0 {
            return Err("the number of simulations must be at least 1".into());
        }
        if !(self.alpha_min > 0.0 && self.alpha_max >= self.alpha_min && self.alpha_max.is_finite())
        {
            return Err(format!(
                "need 0 < alpha_min <= alpha_max, got [{}, {}]",
                self.alpha_min, self.alpha_max
            ));
        }
        if !(self.grains_min >= 2 && self.grains_max >= self.grains_min) {
            return Err(format!(
                "need 2 <= grains_min <= grains_max, got {}..{}",
                self.grains_min, self.grains_max
            ));
        }
        if !(self.interface_width > 0.0 && self.interface_width.is_finite()) {
            return Err("interface width must be > 0".into());
        }
        if !(self.roughness_amplitude >= 0.0 && self.roughness_length > 0.0) {
            return Err("roughness amplitude must be >= 0 and its length > 0".into());
        }
        if !(self.dt > 0.0 && self.dt.is_finite()) {
            return Err("dt must be > 0".into());
        }
        if self.save_interval == 0
            || self.n_steps == 0
            || !self.n_steps.is_multiple_of(self.save_interval)
        {
            return Err(format!(
                "n_steps ({}) must be a positive multiple of save_interval ({})",
                self.n_steps, self.save_interval
            ));
        }
        Ok(())
    }

    pub fn n_sims(&self) -> usize {
        if self.mobility {
            2 * self.n_diffusion
        } else {
            self.n_diffusion
        }
    }

    pub fn sim_name(&self, i: usize) -> String {
        let width = (self.n_sims().saturating_sub(1)).to_string().len().max(3);
        format!("sim_{i:0width$}")
    }
}

/// Train / validation / test lists of simulation indices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// The paper protocol (train on the first 80% of diffusion sims, test on the remaining
/// diffusion sims and their mobility twins) and the balanced one (train on both signs).
/// The last 10% of each training range is held out for validation (early stopping).
pub fn splits(n: usize, mobility: bool) -> Vec<(String, Split)> {
    let n_train_all = (n * 4).div_ceil(5).min(n);
    let n_val = (n_train_all / 10).max(usize::from(n_train_all >= 2));
    let n_train = n_train_all - n_val;
    let train: Vec<usize> = (0..n_train).collect();
    let val: Vec<usize> = (n_train..n_train_all).collect();
    let mut test: Vec<usize> = (n_train_all..n).collect();
    let mut out = Vec::new();
    if mobility {
        test.extend((n_train_all..n).map(|i| i + n));
        out.push((
            "paper".to_string(),
            Split {
                train: train.clone(),
                val: val.clone(),
                test: test.clone(),
            },
        ));
        let both = |v: &[usize]| {
            v.iter()
                .copied()
                .chain(v.iter().map(|i| i + n))
                .collect::<Vec<_>>()
        };
        out.push((
            "balanced".to_string(),
            Split {
                train: both(&train),
                val: both(&val),
                test,
            },
        ));
    } else {
        out.push(("paper".to_string(), Split { train, val, test }));
    }
    out
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub alpha: f64,
    pub process: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub generator: String,
    pub generator_version: String,
    pub settings: GenerateSettings,
    pub simulations: Vec<ManifestEntry>,
    pub splits: std::collections::BTreeMap<String, Split>,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest, String> {
        let p = dir.join("manifest.json");
        let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&t).map_err(|e| format!("{}: not a valid manifest: {e}", p.display()))
    }

    /// Folder of simulation `i`.
    pub fn sim_dir(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(self.settings.sim_name(i))
    }
}

/// What one diffusion draw produced (before it is written).
pub struct Draw {
    pub alpha_abs: f64,
    pub n_grains: usize,
    /// `[T, nx, ny]` as stored.
    pub frames: Vec<f32>,
    pub schedule: safe_physics::simulate::Schedule,
    /// Where the saved window sits in the simulated sample (open boundaries).
    pub offset: Option<(usize, usize)>,
}

/// Draw and integrate diffusion simulation `i` (no I/O): the generator's compute.
pub fn draw(s: &GenerateSettings, i: usize) -> Result<Draw, String> {
    let domain = s.domain()?;
    let boundary = s.boundary()?;
    // One independent stream per simulation: results do not depend on thread scheduling.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s.seed);
    rng.set_stream(i as u64);
    let alpha_abs = if s.alpha_max > s.alpha_min {
        rng.random_range(s.alpha_min..s.alpha_max)
    } else {
        s.alpha_min
    };
    let n_grains = rng.random_range(s.grains_min..=s.grains_max);
    let centres = grain_centres(&domain, n_grains, &mut rng);
    let xi = roughness_field(&domain, s.roughness_amplitude, s.roughness_length, &mut rng);
    let u0 = voronoi_field(&domain, &centres, s.interface_width, &xi);
    let p = SimParams {
        grid: domain,
        alpha_abs,
        dt: s.dt,
        n_steps: s.n_steps,
        save_interval: s.save_interval,
    };
    let n_frames = s.n_steps / s.save_interval + 1;
    let dt_save = s.dt * s.save_interval as f64;
    // The sample's own boundary: an open window is cut from a periodic sample.
    let sample_boundary = if boundary == Boundary::ZeroFlux {
        Boundary::ZeroFlux
    } else {
        Boundary::Periodic
    };
    let (mut field, schedule) = if s.continuum()? {
        let spec = OperatorSpec {
            boundary: sample_boundary,
            laplacian: Laplacian::Continuum,
            n_sub: SubSteps::Infinite,
        };
        let f = evolve_exact(&u0, &domain, spec, alpha_abs, dt_save, n_frames);
        let sch = safe_physics::simulate::Schedule {
            dt: s.dt,
            n_steps: s.n_steps,
            save_interval: s.save_interval,
            dt_reduction: 1,
        };
        (f, sch)
    } else if sample_boundary == Boundary::ZeroFlux {
        // Forward Euler with the mirrored stencil, exactly (cosine modes), after the same
        // stability check as the paper's generator.
        let sch = p.stable_schedule().map_err(|e| e.to_string())?;
        let spec = OperatorSpec {
            boundary: Boundary::ZeroFlux,
            laplacian: Laplacian::FivePoint,
            n_sub: SubSteps::Finite(sch.save_interval as u32),
        };
        (
            evolve_exact(&u0, &domain, spec, alpha_abs, dt_save, n_frames),
            sch,
        )
    } else {
        simulate_f64(&u0, &p, s.solver()?).map_err(|e| e.to_string())?
    };
    if let Some(c) = &s.camera {
        crate::camera::gaussian_blur(
            &mut field,
            domain.nx,
            domain.ny,
            c.psf_sigma,
            sample_boundary == Boundary::Periodic,
        );
    }
    let offset = (boundary == Boundary::Open).then(|| {
        (
            rng.random_range(0..=domain.nx - s.nx),
            rng.random_range(0..=domain.ny - s.ny),
        )
    });
    if let Some((ox, oy)) = offset {
        field = field
            .chunks_exact(domain.len())
            .flat_map(|f| {
                (0..s.nx)
                    .flat_map(move |x| (0..s.ny).map(move |y| f[(ox + x) * domain.ny + oy + y]))
            })
            .collect();
    }
    if let Some(c) = &s.camera {
        field = c.record(&field, &mut rng);
    }
    Ok(Draw {
        alpha_abs,
        n_grains,
        frames: field.into_iter().map(|x| x as f32).collect(),
        schedule,
        offset,
    })
}

fn sim_meta(s: &GenerateSettings, i: usize, d: &Draw, reversed_from: Option<usize>) -> Value {
    let process = if reversed_from.is_some() {
        "mobility"
    } else {
        "diffusion"
    };
    let alpha = if reversed_from.is_some() {
        d.alpha_abs
    } else {
        -d.alpha_abs
    };
    let mut m = serde_json::json!({
        "alpha": alpha,
        "process": process,
        "dx": s.dx,
        "dy": s.dy,
        "nx": s.nx,
        "ny": s.ny,
        "dt_save": s.dt * s.save_interval as f64,
        "n_frames": s.n_steps / s.save_interval + 1,
        "dt_reduction": d.schedule.dt_reduction,
        "n_grains": d.n_grains,
        "interface_width": s.interface_width,
        "roughness_amplitude": s.roughness_amplitude,
        "roughness_length": s.roughness_length,
        "seed": s.seed,
        "sim_index": i,
        "solver": s.solver,
        "generator": "safe-pit-cm",
        "generator_version": GENERATOR_VERSION,
    });
    // Euler data name their time step (`--n-sub auto` uses it); continuous physics has none.
    if s.physics == "euler" {
        m["dt"] = serde_json::json!(d.schedule.dt);
        m["save_interval"] = serde_json::json!(d.schedule.save_interval);
        m["n_steps"] = serde_json::json!(d.schedule.n_steps);
    }
    if s.physics != "euler" || s.boundary != "periodic" || s.camera.is_some() {
        m["physics"] = serde_json::json!(s.physics);
        m["laplacian"] = serde_json::json!(if s.physics == "euler" {
            "five-point"
        } else {
            "continuum"
        });
        m["boundary"] = serde_json::json!(s.boundary);
    }
    if let Some((ox, oy)) = d.offset {
        m["window_offset"] = serde_json::json!([ox, oy]);
        m["window_scale"] = serde_json::json!(s.window_scale);
    }
    if let Some(c) = &s.camera {
        m["camera"] = serde_json::json!(c);
    }
    if let Some(src) = reversed_from {
        m["source_sim"] = Value::String(s.sim_name(src));
    }
    m
}

/// Is `dir` a complete simulation written with exactly this metadata?
fn is_complete(dir: &Path, meta: &Value, field_bytes: usize) -> bool {
    let ok_meta = std::fs::read_to_string(dir.join("meta.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| &v == meta);
    let ok_field =
        std::fs::metadata(dir.join("field.npy")).is_ok_and(|m| m.len() as usize == field_bytes);
    ok_meta && ok_field
}

fn write_sim(
    out: &Path,
    name: &str,
    frames: &[f32],
    shape: &[usize],
    meta: &Value,
    overwrite: bool,
) -> Result<(), WriteError> {
    let dest = out.join(name);
    let tmp = temp_sibling(&dest);
    let io = |err| WriteError::Io {
        path: tmp.clone(),
        err,
    };
    std::fs::create_dir_all(&tmp).map_err(io)?;
    write_atomic(&tmp.join("field.npy"), &encode_f32(shape, frames), true)?;
    write_json_atomic(&tmp.join("meta.json"), meta, true)?;
    commit_dir(&tmp, &dest, overwrite)
}

/// Entries of one diffusion draw and its mobility twin, whether both were reused, and
/// whether `dt` had to be reduced.
type PairOutcome = (ManifestEntry, Option<ManifestEntry>, bool, bool);

/// What [`generate`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateReport {
    pub written: usize,
    pub reused: usize,
    pub dt_reduced: Vec<String>,
}

/// Generate the dataset into `out`. Existing simulations with identical metadata are reused
/// (resume after an interruption); different ones are an error unless `overwrite`.
/// `progress` is called once per finished diffusion draw (with its mobility twin).
pub fn generate(
    s: &GenerateSettings,
    out: &Path,
    overwrite: bool,
    progress: &(dyn Fn() + Sync),
) -> Result<(Manifest, GenerateReport), String> {
    s.validate()?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _lock = crate::atomic::lock_dir(out)?;
    if let Ok(m) = Manifest::load(out)
        && m.settings != *s
        && !overwrite
    {
        return Err(format!(
            "{} holds a dataset generated with other settings (pass --overwrite to replace it, or choose another --out)",
            out.display()
        ));
    }
    clean_stale_temps(out);
    let n = s.n_diffusion;
    let shape = [s.n_steps / s.save_interval + 1, s.nx, s.ny];
    let field_bytes = encoded_len_f32(&shape);
    let results: Vec<Result<PairOutcome, String>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let d = draw(s, i)?;
            let names = (s.sim_name(i), s.sim_name(i + n));
            let meta_d = sim_meta(s, i, &d, None);
            let meta_m = s.mobility.then(|| sim_meta(s, i + n, &d, Some(i)));
            let done_d = is_complete(&out.join(&names.0), &meta_d, field_bytes);
            let done_m = meta_m
                .as_ref()
                .is_none_or(|m| is_complete(&out.join(&names.1), m, field_bytes));
            let err = |e: WriteError| e.to_string();
            if !done_d {
                write_sim(out, &names.0, &d.frames, &shape, &meta_d, overwrite).map_err(err)?;
            }
            if let (Some(m), false) = (&meta_m, done_m) {
                let rev = reverse_frames(&d.frames, s.nx * s.ny);
                write_sim(out, &names.1, &rev, &shape, m, overwrite).map_err(err)?;
            }
            progress();
            let entry = |name: String, alpha: f64, process: &str| ManifestEntry {
                name,
                alpha,
                process: process.to_string(),
            };
            Ok((
                entry(names.0, -d.alpha_abs, "diffusion"),
                s.mobility.then(|| entry(names.1, d.alpha_abs, "mobility")),
                done_d && done_m,
                d.schedule.dt_reduction > 1,
            ))
        })
        .collect();
    let mut report = GenerateReport::default();
    let mut diff = Vec::new();
    let mut mob = Vec::new();
    for r in results {
        let (d, m, reused, reduced) = r?;
        if reduced {
            report.dt_reduced.push(d.name.clone());
        }
        if reused {
            report.reused += 1;
        } else {
            report.written += 1;
        }
        diff.push(d);
        mob.extend(m);
    }
    diff.extend(mob);
    let manifest = Manifest {
        generator: "safe-pit-cm".into(),
        generator_version: GENERATOR_VERSION.into(),
        settings: s.clone(),
        simulations: diff,
        splits: splits(n, s.mobility).into_iter().collect(),
    };
    write_json_atomic(&out.join("manifest.json"), &manifest, true).map_err(|e| e.to_string())?;
    Ok((manifest, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_splits_match_design() {
        let sp: std::collections::BTreeMap<_, _> = splits(50, true).into_iter().collect();
        let p = &sp["paper"];
        assert_eq!(p.train, (0..36).collect::<Vec<_>>());
        assert_eq!(p.val, (36..40).collect::<Vec<_>>());
        assert_eq!(p.test, (40..50).chain(90..100).collect::<Vec<_>>());
        let b = &sp["balanced"];
        assert_eq!(b.train.len(), 72);
        assert!(b.train.contains(&50) && b.train.contains(&85) && !b.train.contains(&86));
        assert_eq!(b.test, p.test);
    }

    #[test]
    fn small_dataset_is_reproducible_and_resumable() {
        let base = std::env::temp_dir().join(format!("safe-gen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let s = GenerateSettings {
            n_diffusion: 3,
            nx: 16,
            ny: 12,
            n_steps: 200,
            seed: 7,
            ..Default::default()
        };
        let (m1, r1) = generate(&s, &base.join("a"), false, &|| {}).unwrap();
        let (m2, _) = generate(&s, &base.join("b"), false, &|| {}).unwrap();
        assert_eq!(m1, m2);
        assert_eq!(r1.written, 3);
        for i in 0..6 {
            let name = s.sim_name(i);
            for f in ["field.npy", "meta.json"] {
                let a = std::fs::read(base.join("a").join(&name).join(f)).unwrap();
                let b = std::fs::read(base.join("b").join(&name).join(f)).unwrap();
                assert_eq!(a, b, "{name}/{f} differs between two runs with one seed");
            }
        }
        // Mobility twin is the time reversal.
        let d = crate::npy::read_npy(&base.join("a/sim_000/field.npy")).unwrap();
        let r = crate::npy::read_npy(&base.join("a/sim_003/field.npy")).unwrap();
        assert_eq!(d.shape, vec![5, 16, 12]);
        assert_eq!(&d.data[..192], &r.data[4 * 192..]);
        // Rerun reuses everything; a killed run's debris is cleaned; other settings refuse.
        std::fs::create_dir_all(base.join("a/.sim_001.tmp-1-1")).unwrap();
        std::fs::remove_dir_all(base.join("a/sim_004")).unwrap();
        let (_, r2) = generate(&s, &base.join("a"), false, &|| {}).unwrap();
        assert_eq!((r2.reused, r2.written), (2, 1));
        assert!(!base.join("a/.sim_001.tmp-1-1").exists());
        assert!(base.join("a/sim_004/field.npy").exists());
        let other = GenerateSettings {
            seed: 8,
            ..s.clone()
        };
        assert!(generate(&other, &base.join("a"), false, &|| {}).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
