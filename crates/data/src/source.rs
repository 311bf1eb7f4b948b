//! Turning command-line `DATA...` arguments into the videos to process: one experiment, one
//! video.
//!
//! An argument is a simulation folder (`field.npy` + `meta.json`), a `field.npy`, an array
//! file (`NAME.npy`, metadata in `NAME.json` or `meta.json` beside it), a multi-page TIFF,
//! a folder of image frames, or any folder holding these (and sub-folders of them, one
//! level down). Inside a folder:
//! - every multi-page TIFF and every `.npy` array is its own video (separate recordings are
//!   never joined);
//! - single-image frames form a video only as a sequence: files whose names follow one
//!   pattern (digit runs aside, `frame_001.png`, `frame_002.png`, ...), at least two of them.
//!   Several patterns are several videos. An image that belongs to no sequence (a
//!   `thumbnail.png`) is skipped with a warning that names it, never a reason to drop the
//!   folder; a frame of another size or bit depth than its sequence likewise (at load).

use crate::error::{DataError, ErrorKind};
use crate::images::{self, natural_cmp};
use std::path::{Path, PathBuf};

/// One video found on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A folder with `field.npy` (+ `meta.json`).
    SimDir(PathBuf),
    /// One file holding a whole video: a multi-page TIFF or a `.npy` array.
    Stack(PathBuf),
    /// A sequence of single-image frames in a folder, in natural name order.
    Frames(Frames),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frames {
    pub dir: PathBuf,
    /// The name pattern the frames share (`frame_#.png`).
    pub pattern: String,
    pub files: Vec<PathBuf>,
    /// Whether the folder holds other videos too (the pattern then names this one).
    pub shared: bool,
}

impl Source {
    /// The path results and messages name.
    pub fn path(&self) -> PathBuf {
        match self {
            Source::SimDir(p) | Source::Stack(p) => p.clone(),
            Source::Frames(f) if f.shared => f.dir.join(&f.pattern),
            Source::Frames(f) => f.dir.clone(),
        }
    }
}

/// What discovery found: the videos (or why an argument holds none), and what it skipped.
#[derive(Debug, Default)]
pub struct Discovery {
    pub sources: Vec<Result<Source, DataError>>,
    pub warnings: Vec<String>,
}

impl Discovery {
    /// The number of inputs (videos and failures) a run will report.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

fn is_sim_dir(p: &Path) -> bool {
    p.join("field.npy").is_file()
}

fn ext_lower(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_array_file(p: &Path) -> bool {
    ext_lower(p) == "npy" && p.is_file()
}

/// `frame_0012.png` -> `frame_#.png`: the name with every run of digits replaced.
pub fn name_pattern(name: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The videos of one folder that is not a simulation folder; `None` when it holds no video
/// file at all (sub-folders aside).
fn videos_in(dir: &Path, out: &mut Discovery) -> usize {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) => {
            out.sources
                .push(Err(DataError::new(dir, ErrorKind::Io(e.to_string()))));
            return 1;
        }
    };
    entries.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
    let hidden = |p: &Path| file_name(p).starts_with('.');
    let mut found: Vec<Source> = Vec::new();
    // Whole-video files.
    for p in entries.iter().filter(|p| !hidden(p)) {
        let array = is_array_file(p) && file_name(p) != "field.npy";
        let stack = || {
            images::is_multipage_tiff_path(p)
                && p.is_file()
                && images::tiff_page_count(p).unwrap_or(1) > 1
        };
        if array || stack() {
            found.push(Source::Stack(p.clone()));
        }
    }
    // Single-image frames, grouped by name pattern.
    let singles: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| !hidden(p) && images::is_image_file(p))
        .filter(|p| {
            !found
                .iter()
                .any(|s| matches!(s, Source::Stack(q) if q == *p))
        })
        .collect();
    let mut groups: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for p in singles {
        let pat = name_pattern(&file_name(p));
        match groups.iter_mut().find(|g| g.0 == pat) {
            Some(g) => g.1.push(p.clone()),
            None => groups.push((pat, vec![p.clone()])),
        }
    }
    let sequences: Vec<(String, Vec<PathBuf>)> =
        groups.iter().filter(|g| g.1.len() >= 2).cloned().collect();
    for (_, files) in groups.iter().filter(|g| g.1.len() < 2) {
        for f in files {
            out.warnings.push(format!(
                "{}: skipped: an image that belongs to no frame sequence (frames need a shared name pattern, e.g. frame_001.png, frame_002.png)",
                f.display()
            ));
        }
    }
    let n_videos = found.len() + sequences.len();
    for (pattern, files) in sequences {
        found.push(Source::Frames(Frames {
            dir: dir.to_path_buf(),
            pattern,
            files,
            shared: n_videos > 1,
        }));
    }
    let n = found.len();
    out.sources.extend(found.into_iter().map(Ok));
    n
}

/// Expand the arguments; an argument that holds nothing usable becomes an error entry so the
/// rest of the run goes on.
pub fn discover(args: &[PathBuf]) -> Discovery {
    let mut out = Discovery::default();
    for a in args {
        if a.is_file() {
            if file_name(a) == "field.npy" {
                out.sources.push(Ok(Source::SimDir(
                    a.parent().map(Path::to_path_buf).unwrap_or_default(),
                )));
            } else if images::is_multipage_tiff_path(a) || is_array_file(a) {
                out.sources.push(Ok(Source::Stack(a.clone())));
            } else {
                out.sources.push(Err(DataError::new(
                    a,
                    ErrorKind::NotFound(
                        "not a simulation folder, field.npy, .npy array or TIFF stack".into(),
                    ),
                )));
            }
            continue;
        }
        if !a.is_dir() {
            out.sources.push(Err(DataError::new(
                a,
                ErrorKind::NotFound("no such file or folder".into()),
            )));
            continue;
        }
        if is_sim_dir(a) {
            out.sources.push(Ok(Source::SimDir(a.clone())));
            continue;
        }
        let mut found = videos_in(a, &mut out);
        let mut subs: Vec<PathBuf> = match std::fs::read_dir(a) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(_) => Vec::new(),
        };
        subs.sort_by(|x, y| natural_cmp(&file_name(x), &file_name(y)));
        for s in subs {
            if file_name(&s).starts_with('.') {
                continue;
            }
            if is_sim_dir(&s) {
                out.sources.push(Ok(Source::SimDir(s)));
                found += 1;
            } else if s.join("meta.json").is_file() && !has_video_files(&s) {
                // Looks like a simulation whose field is missing: report it, do not skip it.
                out.sources.push(Err(DataError::new(
                    &s.join("field.npy"),
                    ErrorKind::NotFound("field.npy is missing".into()),
                )));
                found += 1;
            } else {
                found += videos_in(&s, &mut out);
            }
        }
        if found == 0 {
            out.sources.push(Err(DataError::new(
                a,
                ErrorKind::NotFound(
                    "no videos found here (simulation folders, .npy arrays, TIFF stacks or image frame sequences)"
                        .into(),
                ),
            )));
        }
    }
    out
}

fn has_video_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| images::is_image_file(&e.path()) || is_array_file(&e.path()))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns_ignore_digit_runs() {
        assert_eq!(name_pattern("frame_0012.png"), "frame_#.png");
        assert_eq!(name_pattern("t2_x10.tif"), "t#_x#.tif");
        assert_eq!(name_pattern("thumbnail.png"), "thumbnail.png");
    }
}
