//! `safe_pit_cm._native`: the Python package's bridge to the Rust crates. Every estimate goes
//! through `safe_eval::api`, the functions the command line calls, so both give the same
//! numbers. The friendly signatures, docstrings and the `Estimate` type live in
//! `python/safe_pit_cm/__init__.py`; this module stays small and typed.

use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use safe_data::{DataError, ErrorKind, MetaOverrides, Video};
use safe_eval::api::Options;
use std::path::PathBuf;

/// A data error as Python sees it: a missing or unreadable file is an `OSError`, anything
/// wrong with the content a `ValueError`; the message is the command line's.
fn data_err(e: DataError) -> PyErr {
    let msg = format!("{}: {}", e.path.display(), e.kind);
    match e.kind {
        ErrorKind::Io(_) | ErrorKind::NotFound(_) => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A loaded video: validated frames `[T, Nx, Ny]` (or `[T, C, Nx, Ny]` for a C-channel
/// field) and their physical description.
#[pyclass(name = "Video", module = "safe_pit_cm._native", frozen)]
struct PyVideo {
    inner: Video,
}

impl PyVideo {
    fn dims(&self) -> Vec<usize> {
        let v = &self.inner;
        match v.n_channels() {
            1 => vec![v.n_frames, v.grid.nx, v.grid.ny],
            c => vec![v.n_frames, c, v.grid.nx, v.grid.ny],
        }
    }
}

#[pymethods]
impl PyVideo {
    /// The frames as a new float32 array `[T, Nx, Ny]` (`[T, C, Nx, Ny]` with channels).
    #[getter]
    fn frames<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, numpy::PyArrayDyn<f32>>> {
        let v = &self.inner;
        let a = numpy::ndarray::ArrayD::from_shape_vec(self.dims(), v.frames_tcxy())
            .map_err(value_err)?;
        Ok(a.into_pyarray(py))
    }
    /// `(T, Nx, Ny)`, or `(T, C, Nx, Ny)` for a C-channel field.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        pyo3::types::PyTuple::new(py, self.dims())
    }
    /// Channels of the field (1 for a scalar field); estimates use every channel.
    #[getter]
    fn channels(&self) -> usize {
        self.inner.n_channels()
    }
    #[getter]
    fn dx(&self) -> f64 {
        self.inner.meta.dx
    }
    #[getter]
    fn dy(&self) -> f64 {
        self.inner.meta.dy
    }
    #[getter]
    fn dt_save(&self) -> f64 {
        self.inner.meta.dt_save
    }
    /// The process the metadata state ('diffusion', 'mobility') or None.
    #[getter]
    fn process(&self) -> Option<String> {
        self.inner.meta.process.map(|p| p.to_string())
    }
    /// The ground-truth alpha (signed) when the metadata carry it.
    #[getter]
    fn alpha(&self) -> Option<f64> {
        self.inner.alpha_true()
    }
    #[getter]
    fn source(&self) -> String {
        self.inner.source.display().to_string()
    }
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }
    fn __repr__(&self) -> String {
        let v = &self.inner;
        format!(
            "Video('{}', shape={:?}, dx={}, dy={}, dt_save={}, process={}, alpha={})",
            v.source.display(),
            self.dims(),
            v.meta.dx,
            v.meta.dy,
            v.meta.dt_save,
            v.meta
                .process
                .map(|p| format!("'{p}'"))
                .unwrap_or_else(|| "None".into()),
            v.alpha_true()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "None".into())
        )
    }
}

/// A video from a float32 C-ordered array `[T, Nx, Ny]` or `[T, C, Nx, Ny]` (the Python
/// layer converts other dtypes and orders); `alpha` is an optional ground truth, `process`
/// an optional stated direction.
#[pyfunction]
#[pyo3(signature = (frames, dx=None, dy=None, dt_save=None, process=None, alpha=None, name="<array>"))]
fn video_from_array(
    frames: PyReadonlyArrayDyn<'_, f32>,
    dx: Option<f64>,
    dy: Option<f64>,
    dt_save: Option<f64>,
    process: Option<&str>,
    alpha: Option<f64>,
    name: &str,
) -> PyResult<PyVideo> {
    let shape = frames.shape().to_vec();
    let data = match frames.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => frames.as_array().iter().copied().collect(),
    };
    let mut meta = serde_json::Map::new();
    if let Some(p) = process {
        meta.insert("process".into(), serde_json::json!(p));
    }
    if let Some(a) = alpha {
        meta.insert("alpha".into(), serde_json::json!(a));
    }
    let text = serde_json::Value::Object(meta).to_string();
    let ov = MetaOverrides {
        dx,
        dy,
        dt_save,
        process: None,
        ..Default::default()
    };
    let src = PathBuf::from(name);
    let meta = safe_data::meta::Meta::parse(Some(&text), &ov)
        .map_err(|m| PyValueError::new_err(format!("{name}: {m}")))?;
    let v = Video::from_parts(&src, &src, &shape, data, meta).map_err(data_err)?;
    Ok(PyVideo { inner: v })
}

/// Every video under `path` (simulation folders, `.npy` arrays, TIFF stacks, frame
/// sequences), as the command line discovers them; `dx`, `dy`, `dt_save` fill what the
/// metadata lack. Returns `(videos, errors, warnings)`: one bad input does not stop the rest.
#[pyfunction]
#[pyo3(signature = (path, dx=None, dy=None, dt_save=None, channels="gray"))]
#[allow(clippy::type_complexity)]
fn load_all(
    py: Python<'_>,
    path: PathBuf,
    dx: Option<f64>,
    dy: Option<f64>,
    dt_save: Option<f64>,
    channels: &str,
) -> PyResult<(Vec<PyVideo>, Vec<(String, String)>, Vec<String>)> {
    let ov = overrides(dx, dy, dt_save, channels)?;
    let (videos, errors, warnings) = py.detach(|| {
        let d = safe_data::discover(std::slice::from_ref(&path));
        let mut videos = Vec::new();
        let mut errors = Vec::new();
        for s in &d.sources {
            match s
                .as_ref()
                .map_err(|e| DataError::new(&e.path, e.kind.clone()))
                .and_then(|s| Video::load(s, &ov))
            {
                Ok(v) => videos.push(v),
                Err(e) => errors.push((e.path.display().to_string(), e.kind.to_string())),
            }
        }
        (videos, errors, d.warnings)
    });
    Ok((
        videos.into_iter().map(|v| PyVideo { inner: v }).collect(),
        errors,
        warnings,
    ))
}

/// What the caller knows that the files may not say, and how to read colour frames.
fn overrides(
    dx: Option<f64>,
    dy: Option<f64>,
    dt_save: Option<f64>,
    channels: &str,
) -> PyResult<MetaOverrides> {
    Ok(MetaOverrides {
        dx,
        dy,
        dt_save,
        process: None,
        channels: channels.parse().map_err(PyValueError::new_err)?,
    })
}

/// One video from `path`: an error unless the path holds exactly one.
#[pyfunction]
#[pyo3(signature = (path, dx=None, dy=None, dt_save=None, channels="gray"))]
fn load(
    py: Python<'_>,
    path: PathBuf,
    dx: Option<f64>,
    dy: Option<f64>,
    dt_save: Option<f64>,
    channels: &str,
) -> PyResult<PyVideo> {
    if !path.exists() {
        return Err(PyOSError::new_err(format!(
            "{}: no such file or folder",
            path.display()
        )));
    }
    let ov = overrides(dx, dy, dt_save, channels)?;
    let d = safe_data::discover(std::slice::from_ref(&path));
    match d.sources.as_slice() {
        [Ok(s)] => py
            .detach(|| Video::load(s, &ov))
            .map(|mut v| {
                v.warnings.extend(d.warnings.iter().cloned());
                PyVideo { inner: v }
            })
            .map_err(data_err),
        [Err(e)] => Err(data_err(DataError::new(&e.path, e.kind.clone()))),
        [] => Err(PyValueError::new_err(format!(
            "{}: no videos found here (simulation folders, .npy arrays, TIFF stacks or image frame sequences)",
            path.display()
        ))),
        many => Err(PyValueError::new_err(format!(
            "{}: holds {} videos; use load_all() or give one of them",
            path.display(),
            many.len()
        ))),
    }
}

/// The options dict the Python layer builds (every key present).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct PyOptions {
    boundary: String,
    laplacian: String,
    n_sub: String,
    process: String,
    strides: Option<Vec<usize>>,
    frame_step: usize,
    alpha_range: Option<(f64, f64)>,
    noise: String,
    gamma: String,
}

impl From<PyOptions> for Options {
    fn from(o: PyOptions) -> Options {
        Options {
            boundary: o.boundary,
            laplacian: o.laplacian,
            n_sub: o.n_sub,
            process: o.process,
            strides: o.strides,
            frame_step: o.frame_step,
            alpha_range: o.alpha_range,
            noise: o.noise,
            gamma: o.gamma,
        }
    }
}

/// The estimate as the JSON record the command line writes for one video.
fn record(r: &safe_eval::results::SimResult) -> PyResult<String> {
    serde_json::to_string(r).map_err(value_err)
}

/// `fit` of one video; returns the result record as JSON.
#[pyfunction]
fn fit(py: Python<'_>, video: &PyVideo, options: PyOptions) -> PyResult<String> {
    let (s, g) = Options::from(options).resolve().map_err(value_err)?;
    let r = py.detach(|| safe_eval::api::fit(&video.inner, &s, g));
    record(&r.map_err(|e| value_err(format!("{}: {e}", video.inner.source.display())))?)
}

/// `zero-shot` of one video; returns the result record as JSON.
#[pyfunction]
fn zero_shot(
    py: Python<'_>,
    video: &PyVideo,
    options: PyOptions,
    steps: usize,
    lr: f64,
    seed: u64,
    polish: usize,
) -> PyResult<String> {
    let (s, g) = Options::from(options).resolve().map_err(value_err)?;
    let zs = safe_eval::api::zero_shot_settings(s, steps, lr, seed, polish);
    let r = py.detach(|| safe_eval::api::zero_shot(&video.inner, &zs, g));
    record(&r.map_err(|e| value_err(format!("{}: {e}", video.inner.source.display())))?)
}

/// The decided operator, the canonical (smoothing) frames' loss and operator for one video.
fn decided(
    video: &PyVideo,
    options: PyOptions,
) -> PyResult<(safe_physics::estimate::Prepared, Vec<&[f32]>, f64)> {
    let (s, g) = Options::from(options).resolve().map_err(value_err)?;
    if g != safe_eval::intensity::GammaChoice::Fixed(1.0) {
        return Err(PyValueError::new_err(
            "loss_curve and residual take the video as recorded: gamma must be 1",
        ));
    }
    let v = &video.inner;
    let (frames, prep) = safe_eval::fitting::prepare_video(v, &s)
        .map_err(|e| value_err(format!("{}: {e}", v.source.display())))?;
    let canon = safe_physics::estimate::canonical(&frames, prep.process);
    Ok((prep, canon, v.dt_between(s.frame_step)))
}

/// The SAFE loss at each `|alpha|` of `alphas`: `(raw, noise_corrected, operator)`, with the
/// operator and direction decided as `fit` decides them.
#[pyfunction]
fn loss_curve(
    py: Python<'_>,
    video: &PyVideo,
    options: PyOptions,
    alphas: Vec<f64>,
) -> PyResult<(Vec<f64>, Vec<f64>, String)> {
    let (prep, canon, dt) = decided(video, options)?;
    let grid = video.inner.grid;
    Ok(py.detach(|| {
        let loss = safe_physics::estimate::SafeLoss::build(&canon, &grid, dt, &prep, 1.0);
        let raw = alphas.iter().map(|&a| loss.raw_loss(a)).collect();
        let corrected = alphas.iter().map(|&a| loss.eval(a).loss).collect();
        (raw, corrected, prep.spec.to_string())
    }))
}

/// The residual `S(|alpha|) F[t] - F[t+1]` of one frame pair in the operator's (smoothing)
/// order, and the margins `(mx, my)` within which an open window's prediction is not valid.
#[pyfunction]
fn residual<'py>(
    py: Python<'py>,
    video: &PyVideo,
    options: PyOptions,
    alpha_abs: f64,
    t: usize,
) -> PyResult<(Bound<'py, numpy::PyArray2<f64>>, usize, usize)> {
    let (prep, canon, dt) = decided(video, options)?;
    if t + 1 >= canon.len() {
        return Err(PyValueError::new_err(format!(
            "t = {t}: the video has {} frame pairs",
            canon.len() - 1
        )));
    }
    let grid = video.inner.grid;
    let op = safe_physics::SafeOperator::new(grid, prep.spec, dt);
    let pred = op.apply(canon[t], alpha_abs, 1);
    let r: Vec<f64> = pred
        .iter()
        .zip(canon[t + 1])
        .map(|(&p, &x)| p - x as f64)
        .collect();
    let (mx, my) = if op.is_masked() {
        op.margins(alpha_abs, 1, prep.tol)
    } else {
        (0, 0)
    };
    let a = numpy::ndarray::Array2::from_shape_vec((grid.nx, grid.ny), r).map_err(value_err)?;
    Ok((a.into_pyarray(py), mx, my))
}

/// A trained model (the folder `train` wrote, or its model.bpk).
#[pyclass(name = "Model", module = "safe_pit_cm._native", frozen)]
struct PyModel {
    inner: safe_eval::training::TrainedModel,
    path: PathBuf,
}

#[pymethods]
impl PyModel {
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<PyModel> {
        let m = py.detach(|| safe_eval::training::TrainedModel::load(&path));
        match m {
            Ok(inner) => Ok(PyModel { inner, path }),
            Err(e) if !path.exists() => Err(PyOSError::new_err(format!("{e:#}"))),
            Err(e) => Err(PyValueError::new_err(format!("{e:#}"))),
        }
    }
    /// The shipped pretrained model.
    #[staticmethod]
    fn builtin(py: Python<'_>) -> PyResult<PyModel> {
        let m = py.detach(safe_eval::training::TrainedModel::builtin);
        m.map(|inner| PyModel {
            inner,
            path: PathBuf::from("<builtin universal model>"),
        })
        .map_err(|e| PyValueError::new_err(format!("{e:#}")))
    }
    /// `infer` of one video; returns the result record as JSON.
    fn infer(
        &self,
        py: Python<'_>,
        video: &PyVideo,
        ttt_steps: usize,
        options: PyOptions,
    ) -> PyResult<String> {
        let (s, g) = Options::from(options).resolve().map_err(value_err)?;
        let r = py.detach(|| safe_eval::api::infer(&self.inner, &video.inner, ttt_steps, &s, g));
        record(&r.map_err(|e| value_err(format!("{}: {e}", video.inner.source.display())))?)
    }
    /// The model's configuration as TOML.
    #[getter]
    fn config(&self) -> String {
        self.inner.config.to_toml()
    }
    fn __repr__(&self) -> String {
        format!("Model('{}')", self.path.display())
    }
}

/// The Appendix-A dataset (or real-video-like variants) into `out`; `settings` is a JSON
/// object of `GenerateSettings` fields overriding the defaults. Returns the manifest path.
#[pyfunction]
#[pyo3(signature = (out, settings, overwrite=false))]
fn generate(py: Python<'_>, out: PathBuf, settings: &str, overwrite: bool) -> PyResult<String> {
    let mut base =
        serde_json::to_value(safe_data::dataset::GenerateSettings::default()).map_err(value_err)?;
    let over: serde_json::Value = serde_json::from_str(settings).map_err(value_err)?;
    let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) else {
        return Err(PyValueError::new_err("settings must be a JSON object"));
    };
    for (k, v) in o {
        // `camera=True`: the default 12-bit camera; False: none.
        let v = match (k.as_str(), v) {
            ("camera", serde_json::Value::Bool(true)) => {
                serde_json::to_value(safe_data::camera::Camera::default()).map_err(value_err)?
            }
            ("camera", serde_json::Value::Bool(false)) => serde_json::Value::Null,
            _ => v.clone(),
        };
        if !b.contains_key(k) {
            return Err(PyValueError::new_err(format!(
                "generate: unknown setting '{k}' (known: {})",
                b.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        b.insert(k.clone(), v);
    }
    let gs: safe_data::dataset::GenerateSettings =
        serde_json::from_value(base).map_err(value_err)?;
    py.detach(|| safe_data::dataset::generate(&gs, &out, overwrite, &|| {}))
        .map_err(value_err)?;
    Ok(out.join("manifest.json").display().to_string())
}

/// The version of the Rust crates behind this module.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVideo>()?;
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(video_from_array, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(load_all, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(zero_shot, m)?)?;
    m.add_function(wrap_pyfunction!(generate, m)?)?;
    m.add_function(wrap_pyfunction!(loss_curve, m)?)?;
    m.add_function(wrap_pyfunction!(residual, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
