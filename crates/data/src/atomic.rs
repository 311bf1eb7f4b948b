//! Atomic output: every file is written beside its destination under a temporary name,
//! flushed, then renamed into place, so an interrupted run never leaves a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temporary sibling of `path` (same directory, so the rename is atomic).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} already exists (pass --overwrite to replace it)")]
    Exists(PathBuf),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |err| WriteError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Write `bytes` to `path` atomically. Refuses to replace an existing file unless `overwrite`.
pub fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), WriteError> {
    if !overwrite && path.exists() {
        return Err(WriteError::Exists(path.to_path_buf()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

/// Serialise `value` as pretty JSON (with a trailing newline) and write it atomically.
pub fn write_json_atomic<T: serde::Serialize>(
    path: &Path,
    value: &T,
    overwrite: bool,
) -> Result<(), WriteError> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| WriteError::Io {
        path: path.to_path_buf(),
        err: std::io::Error::other(e),
    })?;
    s.push('\n');
    write_atomic(path, s.as_bytes(), overwrite)
}

/// Move a fully written temporary directory into place. With `overwrite`, an existing
/// destination is removed first; otherwise its presence is an error.
pub fn commit_dir(tmp: &Path, dest: &Path, overwrite: bool) -> Result<(), WriteError> {
    if dest.exists() {
        if !overwrite {
            return Err(WriteError::Exists(dest.to_path_buf()));
        }
        std::fs::remove_dir_all(dest).map_err(io(dest))?;
    }
    std::fs::rename(tmp, dest).map_err(io(dest))
}

/// Hold an exclusive lock on the output folder `dir` while the returned file lives, so two
/// runs into one folder cannot clean up or overwrite each other's work. The OS releases it
/// when the process ends, kill -9 included, so a killed run never leaves the folder locked.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File, String> {
    let p = dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{} is in use by another run (it holds {}); wait for it or choose another --out",
            dir.display(),
            p.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("{}: {e}", p.display())),
    }
}

/// Remove temporary files and folders that a killed run left in `dir` (our `.NAME.tmp-*`).
pub fn clean_stale_temps(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_folder_admits_one_run_at_a_time() {
        let d = std::env::temp_dir().join(format!("safe-lock-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let first = lock_dir(&d).unwrap();
        let second = lock_dir(&d).unwrap_err();
        assert!(second.contains("in use by another run"), "{second}");
        drop(first);
        assert!(lock_dir(&d).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_to_overwrite_unless_asked() {
        let d = std::env::temp_dir().join(format!("safe-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = d.join("x.json");
        write_atomic(&p, b"1", false).unwrap();
        assert!(matches!(
            write_atomic(&p, b"2", false),
            Err(WriteError::Exists(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"1");
        write_atomic(&p, b"2", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        // No temporary files remain.
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
