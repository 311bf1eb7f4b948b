//! Why one input could not be used: the file and the problem, for every loader.

use crate::npy::NpyError;
use std::path::{Path, PathBuf};

/// Why one input could not be used. Displayed as `PATH: problem`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct DataError {
    pub path: PathBuf,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("{0}")]
    Npy(#[from] NpyError),
    #[error("{0}")]
    Meta(String),
    #[error("{0}")]
    Shape(String),
    #[error("frame {frame}{} has a non-finite value ({value}) at ({i}, {j})", channel.map(|c| format!(", channel {c},")).unwrap_or_default())]
    NonFinite {
        frame: usize,
        channel: Option<usize>,
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
