//! Turning command-line `DATA...` arguments into the list of videos to process.
//!
//! An argument is a simulation folder (holding `field.npy`), a path to a `field.npy`, or any
//! folder whose sub-folders (one level, sorted by name) are simulation folders. Image
//! sequences are recognised by [`crate::images`].

use crate::images;
use crate::video::{DataError, ErrorKind};
use std::path::{Path, PathBuf};

/// One input found on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A folder with `field.npy` (+ `meta.json`).
    SimDir(PathBuf),
    /// A folder of image frames or a multi-page TIFF.
    Images(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::SimDir(p) | Source::Images(p) => p,
        }
    }
}

fn is_sim_dir(p: &Path) -> bool {
    p.join("field.npy").is_file()
}

/// Expand the arguments; an argument that holds nothing usable becomes an error entry so the
/// rest of the run goes on.
pub fn discover(args: &[PathBuf]) -> Vec<Result<Source, DataError>> {
    let mut out = Vec::new();
    for a in args {
        if a.is_file() {
            if a.file_name().is_some_and(|n| n == "field.npy") {
                out.push(Ok(Source::SimDir(
                    a.parent().map(Path::to_path_buf).unwrap_or_default(),
                )));
            } else if images::is_multipage_tiff_path(a) {
                out.push(Ok(Source::Images(a.clone())));
            } else {
                out.push(Err(DataError::new(
                    a,
                    ErrorKind::NotFound("not a simulation folder, field.npy, or TIFF stack".into()),
                )));
            }
            continue;
        }
        if !a.is_dir() {
            out.push(Err(DataError::new(
                a,
                ErrorKind::NotFound("no such file or folder".into()),
            )));
            continue;
        }
        if is_sim_dir(a) {
            out.push(Ok(Source::SimDir(a.clone())));
            continue;
        }
        if images::has_image_frames(a) {
            out.push(Ok(Source::Images(a.clone())));
            continue;
        }
        let mut subs: Vec<PathBuf> = match std::fs::read_dir(a) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(e) => {
                out.push(Err(DataError::new(a, ErrorKind::Io(e.to_string()))));
                continue;
            }
        };
        subs.sort();
        let mut found = 0;
        for s in subs {
            let hidden = s
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if is_sim_dir(&s) {
                out.push(Ok(Source::SimDir(s)));
                found += 1;
            } else if images::has_image_frames(&s) {
                out.push(Ok(Source::Images(s)));
                found += 1;
            } else if s.join("meta.json").is_file() {
                // Looks like a simulation whose field is missing: report it, do not skip it.
                out.push(Err(DataError::new(
                    &s.join("field.npy"),
                    ErrorKind::NotFound("field.npy is missing".into()),
                )));
                found += 1;
            }
        }
        if found == 0 {
            out.push(Err(DataError::new(
                a,
                ErrorKind::NotFound(
                    "no simulation folders (field.npy + meta.json) or image frames found here"
                        .into(),
                ),
            )));
        }
    }
    out
}
