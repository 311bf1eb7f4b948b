//! A video ready for the SAFE operator: validated frames, grid, frame interval, process.

use crate::discover::Source;
use crate::images::read_image_stack;
use crate::meta::{Meta, MetaOverrides};
use crate::npy::{NpyError, read_npy};
use safe_physics::{Grid, Process};
use std::path::{Path, PathBuf};

/// Why one input could not be used. Displayed as `PATH: problem`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct DataError {
    pub path: PathBuf,
    pub kind: ErrorKind,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("{0}")]
    Npy(#[from] NpyError),
    #[error("{0}")]
    Meta(String),
    #[error("{0}")]
    Shape(String),
    #[error("frame {frame} has a non-finite value ({value}) at ({i}, {j})")]
    NonFinite {
        frame: usize,
        i: usize,
        j: usize,
        value: f32,
    },
    #[error("video has {0} frame(s); at least 2 are needed")]
    TooFewFrames(usize),
    #[error(
        "every frame is constant: the video has no spatial structure, so alpha is unidentifiable"
    )]
    Constant,
    #[error("{0}")]
    Image(String),
    #[error("{0}")]
    NotFound(String),
}

impl DataError {
    pub fn new(path: &Path, kind: ErrorKind) -> DataError {
        DataError {
            path: path.to_path_buf(),
            kind,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Video {
    /// The simulation folder (or image folder / file) the video came from.
    pub source: PathBuf,
    /// `[T, nx, ny]`, C order.
    pub frames: Vec<f32>,
    pub n_frames: usize,
    pub grid: Grid,
    pub meta: Meta,
    /// Things the user should know that did not stop the load (e.g. colour converted).
    pub warnings: Vec<String>,
}

impl Video {
    /// Build and validate a video from decoded frames and metadata; `file` names the array
    /// in error messages.
    pub fn from_parts(
        source: &Path,
        file: &Path,
        shape: &[usize],
        frames: Vec<f32>,
        meta: Meta,
    ) -> Result<Video, DataError> {
        let err = |kind| DataError::new(file, kind);
        if shape.len() != 3 {
            return Err(err(ErrorKind::Shape(format!(
                "expected a 3-D array [T, Nx, Ny], found shape {shape:?} (rank {})",
                shape.len()
            ))));
        }
        let (t, nx, ny) = (shape[0], shape[1], shape[2]);
        if t < 2 {
            return Err(err(ErrorKind::TooFewFrames(t)));
        }
        if nx < 3 || ny < 3 {
            return Err(err(ErrorKind::Shape(format!(
                "frames are {nx}x{ny}; the five-point stencil needs at least 3x3"
            ))));
        }
        let meta_err = |m: String| DataError::new(&source.join("meta.json"), ErrorKind::Meta(m));
        for (key, want, got) in [
            ("nx", meta.nx, nx),
            ("ny", meta.ny, ny),
            ("n_frames", meta.n_frames, t),
        ] {
            if let Some(w) = want
                && w != got
            {
                return Err(meta_err(format!(
                    "contradictory metadata: '{key}' = {w} but {} has {got} (shape {shape:?}, layout [T, Nx, Ny])",
                    file.display()
                )));
            }
        }
        let frame_len = nx * ny;
        if let Some(k) = frames.iter().position(|x| !x.is_finite()) {
            let (f, r) = (k / frame_len, k % frame_len);
            return Err(err(ErrorKind::NonFinite {
                frame: f,
                i: r / ny,
                j: r % ny,
                value: frames[k],
            }));
        }
        let constant = frames
            .chunks_exact(frame_len)
            .all(|f| f.iter().all(|&x| x == f[0]));
        if constant {
            return Err(err(ErrorKind::Constant));
        }
        let grid = Grid::new(nx, ny, meta.dx, meta.dy).map_err(|e| meta_err(e.to_string()))?;
        Ok(Video {
            source: source.to_path_buf(),
            frames,
            n_frames: t,
            grid,
            meta,
            warnings: Vec::new(),
        })
    }

    /// Load a simulation folder: `field.npy` + `meta.json` (flags may fill what the file lacks).
    pub fn load_sim_dir(dir: &Path, ov: &MetaOverrides) -> Result<Video, DataError> {
        let field = dir.join("field.npy");
        let meta_path = dir.join("meta.json");
        let text = match std::fs::read_to_string(&meta_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(DataError::new(&meta_path, ErrorKind::Io(e.to_string()))),
        };
        let meta = Meta::parse(text.as_deref(), ov).map_err(|m| {
            let m = if text.is_none() {
                format!("no meta.json, and {m}")
            } else {
                m
            };
            DataError::new(&meta_path, ErrorKind::Meta(m))
        })?;
        if !field.exists() {
            return Err(DataError::new(
                &field,
                ErrorKind::NotFound("field.npy is missing".into()),
            ));
        }
        let arr = read_npy(&field).map_err(|e| match e {
            NpyError::Io(m) => DataError::new(&field, ErrorKind::Io(m)),
            other => DataError::new(&field, ErrorKind::Npy(other)),
        })?;
        Video::from_parts(dir, &field, &arr.shape, arr.data, meta)
    }

    /// Load any discovered input.
    pub fn load(source: &Source, ov: &MetaOverrides) -> Result<Video, DataError> {
        match source {
            Source::SimDir(d) => Video::load_sim_dir(d, ov),
            Source::Images(p) => Video::load_images(p, ov),
        }
    }

    /// Load an image sequence (folder of frames or multi-page TIFF). Metadata comes from
    /// `meta.json` in the folder (for a TIFF file: `meta.json` beside it, or `STEM.json`),
    /// and from flags.
    pub fn load_images(source: &Path, ov: &MetaOverrides) -> Result<Video, DataError> {
        let meta_path = if source.is_dir() {
            source.join("meta.json")
        } else {
            let stem_json = source.with_extension("json");
            if stem_json.is_file() {
                stem_json
            } else {
                source.with_file_name("meta.json")
            }
        };
        let text = match std::fs::read_to_string(&meta_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(DataError::new(&meta_path, ErrorKind::Io(e.to_string()))),
        };
        let meta = Meta::parse(text.as_deref(), ov).map_err(|m| {
            let m = if text.is_none() {
                format!("no metadata file, and {m}")
            } else {
                m
            };
            DataError::new(&meta_path, ErrorKind::Meta(m))
        })?;
        let stack = read_image_stack(source)?;
        let mut v = Video::from_parts(source, source, &stack.shape, stack.frames, meta)?;
        v.warnings = stack.warnings;
        Ok(v)
    }

    pub fn frame_len(&self) -> usize {
        self.grid.len()
    }

    pub fn frame(&self, t: usize) -> &[f32] {
        let n = self.frame_len();
        &self.frames[t * n..(t + 1) * n]
    }

    /// The process the metadata states, if any (the data decide otherwise).
    pub fn stated_process(&self) -> Option<Process> {
        self.meta.process
    }

    pub fn alpha_true(&self) -> Option<f64> {
        self.meta.alpha
    }

    /// Every `step`-th frame in recorded order. Borrowed, not copied.
    pub fn frames_stepped(&self, step: usize) -> Vec<&[f32]> {
        (0..self.n_frames)
            .step_by(step.max(1))
            .map(|t| self.frame(t))
            .collect()
    }

    /// Frames in the SAFE operator's stable (smoothing) order for `process`, every
    /// `step`-th frame: mobility videos are reversed in time (docs/conventions.md).
    pub fn canonical_frames(&self, step: usize, process: Process) -> Vec<&[f32]> {
        let mut v = self.frames_stepped(step);
        if process.needs_time_reversal() {
            v.reverse();
        }
        v
    }

    /// Frame interval after taking every `step`-th frame.
    pub fn dt_between(&self, step: usize) -> f64 {
        self.meta.dt_save * step.max(1) as f64
    }
}
