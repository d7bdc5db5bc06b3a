//! The project lock: two `apply` (or `destroy`) runs on one project never interleave.
//!
//! An OS file lock in berth's state directory: released by the kernel when the
//! holder exits, even when it is killed, so a crash never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot take the lock {path}: {source}\n  help: set BERTH_STATE_DIR to a writable directory")]
    LockTake {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A lock file, made when missing and never cut on open (a holder's text is
/// read by the next one).
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Held while the value lives.
pub struct ProjectLock {
    _file: File,
}

/// Takes the project's lock, waiting for it if another berth holds it; `on_wait`
/// is told who holds it before the wait starts.
pub fn acquire(
    state_dir: &Path,
    project: &str,
    command: &str,
    on_wait: impl FnOnce(&str),
) -> Result<ProjectLock, LockError> {
    let dir = state_dir.join("locks");
    let path = dir.join(format!("{project}.lock"));
    let err = |source| LockError::LockTake {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let mut file = open(&path).map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            on_wait(if holder.is_empty() {
                "another berth process"
            } else {
                holder
            });
            file.lock().map_err(err)?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    // Say who holds it, for the next one that has to wait.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(
        file,
        "pid {} (berth {command}, since unix time {since})",
        std::process::id()
    );
    let _ = file.flush();
    Ok(ProjectLock { _file: file })
}

/// The mark a `berth watch` daemon holds for as long as it follows the
/// project: `destroy` reads it to warn that the daemon will create
/// everything again. An OS lock too, so a killed daemon leaves no mark.
fn follow_path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{project}.watch"))
}

/// Marks the project as followed by this daemon; `None` when another daemon
/// follows it already (its mark stays).
pub fn follow(state_dir: &Path, project: &str) -> Result<Option<ProjectLock>, LockError> {
    let path = follow_path(state_dir, project);
    let err = |source| LockError::LockTake {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(state_dir.join("locks")).map_err(err)?;
    let mut file = open(&path).map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "pid {}", std::process::id());
    let _ = file.flush();
    Ok(Some(ProjectLock { _file: file }))
}

/// Who follows the project now (`pid 1234`), when a daemon does.
pub fn follower(state_dir: &Path, project: &str) -> Option<String> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(follow_path(state_dir, project))
        .ok()?;
    match file.try_lock() {
        // Nobody holds it: no daemon follows (the lock goes with the file).
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Some(holder.trim().to_string())
                .filter(|h| !h.is_empty())
                .or_else(|| Some("a berth watch process".into()))
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}
