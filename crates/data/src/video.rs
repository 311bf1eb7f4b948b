//! A video ready for the SAFE operator: validated frames, grid, frame interval, process.

pub use crate::error::{DataError, ErrorKind};
use crate::images::read_frames;
use crate::meta::{Meta, MetaOverrides};
use crate::npy::{NpyError, read_npy};
use crate::source::Source;
use safe_physics::{Grid, Process};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Video {
    /// The simulation folder (or image folder / file) the video came from.
    pub source: PathBuf,
    /// `[T, nx, ny]`, C order: the first (or only) channel.
    pub frames: Vec<f32>,
    /// Channels 1.. of a vector field (`field.npy` `[T, C, Nx, Ny]`), each `[T, nx, ny]`.
    /// Kept apart so that every single-channel consumer sees a whole, valid field; the
    /// estimators take all channels through `split_channels` (paper 2.1: channel-wise).
    pub other_channels: Vec<Vec<f32>>,
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
        if shape.len() != 3 && shape.len() != 4 {
            return Err(err(ErrorKind::Shape(format!(
                "expected a 3-D array [T, Nx, Ny] (or [T, C, Nx, Ny] for a C-channel field), found shape {shape:?} (rank {})",
                shape.len()
            ))));
        }
        let (t, c, nx, ny) = match *shape {
            [t, nx, ny] => (t, 1, nx, ny),
            [t, c, nx, ny] => (t, c, nx, ny),
            _ => unreachable!("rank checked above"),
        };
        if c == 0 {
            return Err(err(ErrorKind::Shape(format!(
                "shape {shape:?} has no channels (layout [T, C, Nx, Ny])"
            ))));
        }
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
            let (f, r) = (k / (frame_len * c), k % frame_len);
            let ch = (k / frame_len) % c;
            return Err(err(ErrorKind::NonFinite {
                frame: f,
                channel: (c > 1).then_some(ch),
                i: r / ny,
                j: r % ny,
                value: frames[k],
            }));
        }
        // [T, C, Nx, Ny] -> one [T, Nx, Ny] field per channel.
        let mut channels: Vec<Vec<f32>> = if c == 1 {
            vec![frames]
        } else {
            (0..c)
                .map(|ch| {
                    (0..t)
                        .flat_map(|f| {
                            let o = (f * c + ch) * frame_len;
                            frames[o..o + frame_len].iter().copied()
                        })
                        .collect()
                })
                .collect()
        };
        for (ch, field) in channels.iter().enumerate() {
            let constant = field
                .chunks_exact(frame_len)
                .all(|f| f.iter().all(|&x| x == f[0]));
            if constant {
                return Err(err(if c == 1 {
                    ErrorKind::Constant
                } else {
                    ErrorKind::Shape(format!(
                        "channel {ch} of {c} is constant in every frame: it carries no information about alpha (drop it)"
                    ))
                }));
            }
        }
        let frames = channels.remove(0);
        let grid = Grid::new(nx, ny, meta.dx, meta.dy).map_err(|e| meta_err(e.to_string()))?;
        Ok(Video {
            source: source.to_path_buf(),
            frames,
            other_channels: channels,
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
            Source::Stack(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) => {
                Video::load_array(p, ov)
            }
            Source::Stack(p) => {
                let meta = meta_beside(p, p.parent().unwrap_or(Path::new(".")), ov)?;
                let stack = crate::images::read_frames(std::slice::from_ref(p), p, ov.channels)?;
                let mut v = Video::from_parts(p, p, &stack.shape, stack.frames, meta)?;
                v.warnings = stack.warnings;
                Ok(v)
            }
            Source::Frames(f) => {
                let label = source.path();
                let meta = meta_beside(&f.dir.join("meta.json"), &f.dir, ov)?;
                let stack = read_frames(&f.files, &label, ov.channels)?;
                let mut v = Video::from_parts(&label, &label, &stack.shape, stack.frames, meta)?;
                v.warnings = stack.warnings;
                Ok(v)
            }
        }
    }

    /// Load a `.npy` array (a video `[T, Nx, Ny]`) with `NAME.json` or `meta.json` beside it.
    pub fn load_array(path: &Path, ov: &MetaOverrides) -> Result<Video, DataError> {
        let meta = meta_beside(path, path.parent().unwrap_or(Path::new(".")), ov)?;
        let arr = read_npy(path).map_err(|e| match e {
            NpyError::Io(m) => DataError::new(path, ErrorKind::Io(m)),
            other => DataError::new(path, ErrorKind::Npy(other)),
        })?;
        Video::from_parts(path, path, &arr.shape, arr.data, meta)
    }

    /// Load an image sequence: a folder of frames (all its images) or a multi-page TIFF,
    /// metadata from `meta.json` in the folder (for a TIFF file: `STEM.json` or
    /// `meta.json` beside it) and flags.
    pub fn load_images(source: &Path, ov: &MetaOverrides) -> Result<Video, DataError> {
        let d = crate::source::discover(&[source.to_path_buf()]);
        let found: Vec<&Source> = d.sources.iter().filter_map(|s| s.as_ref().ok()).collect();
        match (
            found.as_slice(),
            d.sources.iter().find_map(|s| s.as_ref().err()),
        ) {
            ([one], _) => {
                let mut v = Video::load(one, ov)?;
                v.warnings.extend(d.warnings);
                Ok(v)
            }
            ([], Some(e)) => Err(DataError::new(&e.path, e.kind.clone())),
            ([], None) => Err(DataError::new(
                source,
                ErrorKind::NotFound("no PNG or TIFF frames found".into()),
            )),
            (many, _) => Err(DataError::new(
                source,
                ErrorKind::Image(format!(
                    "holds {} separate videos ({}); give one of them",
                    many.len(),
                    many.iter()
                        .map(|s| s.path().display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            )),
        }
    }

    /// Channels of the field (1 for a scalar field).
    pub fn n_channels(&self) -> usize {
        1 + self.other_channels.len()
    }

    /// One single-channel video per channel, each named `SOURCE [channel c]` when there
    /// are several; a scalar video is returned as it is.
    pub fn split_channels(&self) -> Vec<Video> {
        if self.other_channels.is_empty() {
            return vec![self.clone()];
        }
        let c = self.n_channels();
        std::iter::once(&self.frames)
            .chain(&self.other_channels)
            .enumerate()
            .map(|(ch, f)| Video {
                source: PathBuf::from(format!("{} [channel {ch} of {c}]", self.source.display())),
                frames: f.clone(),
                other_channels: Vec::new(),
                n_frames: self.n_frames,
                grid: self.grid,
                meta: self.meta.clone(),
                warnings: self.warnings.clone(),
            })
            .collect()
    }

    /// All channels as `[T, C, Nx, Ny]` (C order), as the file stored them.
    pub fn frames_tcxy(&self) -> Vec<f32> {
        if self.other_channels.is_empty() {
            return self.frames.clone();
        }
        let n = self.frame_len();
        let chans: Vec<&Vec<f32>> = std::iter::once(&self.frames)
            .chain(&self.other_channels)
            .collect();
        (0..self.n_frames)
            .flat_map(|t| {
                chans
                    .iter()
                    .flat_map(move |f| f[t * n..(t + 1) * n].iter().copied())
            })
            .collect()
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

/// Metadata for a video file `path` in `dir`: `STEM.json` beside it, else `dir/meta.json`,
/// else flags alone.
fn meta_beside(path: &Path, dir: &Path, ov: &MetaOverrides) -> Result<Meta, DataError> {
    let stem_json = path.with_extension("json");
    let meta_path = if path.file_name().is_some_and(|n| n != "meta.json") && stem_json.is_file() {
        stem_json
    } else {
        dir.join("meta.json")
    };
    let text = match std::fs::read_to_string(&meta_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(DataError::new(&meta_path, ErrorKind::Io(e.to_string()))),
    };
    Meta::parse(text.as_deref(), ov).map_err(|m| {
        let m = if text.is_none() {
            format!("no metadata file, and {m}")
        } else {
            m
        };
        DataError::new(&meta_path, ErrorKind::Meta(m))
    })
}
