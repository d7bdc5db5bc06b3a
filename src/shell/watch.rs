//! Watching the services file: the parent directory is watched, because editors
//! save by rename (or truncate, or delete and recreate), which a watch on the
//! file itself would lose. Events are debounced and filtered to the file's name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "cannot watch {path}: {message}\n  help: check that the directory exists and is readable"
    )]
    FileWatch { path: PathBuf, message: String },
}

/// Keeps the watch alive while it lives.
pub struct FileWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// How long a services file must be left alone before a change counts (an
/// editor's save can be several writes). With the debouncer's tick as long,
/// a change is seen 200 to 400 ms after its last write.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Calls `on_change` (from the watcher's thread) after each debounced change of `file`.
pub fn watch_file(
    file: &Path,
    debounce: Duration,
    on_change: impl Fn() + Send + 'static,
) -> Result<FileWatch, WatchError> {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = abs
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let err = |e: notify::Error| WatchError::FileWatch {
        path: dir.clone(),
        message: e.to_string(),
    };
    // The debouncer wakes every tick to flush what it gathered, busy or not:
    // one tick per debounce time (not its default quarter) is a quarter of an
    // idle daemon's wakeups; a save is seen one to two debounce times after it.
    let tick = Some(debounce);
    let mut debouncer = new_debouncer(debounce, tick, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        // Only writes count: reading the file (as every reconcile does) is an
        // access event too, and must not wake the daemon again.
        let ours = events.iter().any(|e| {
            (e.kind.is_create() || e.kind.is_modify() || e.kind.is_remove())
                && e.paths
                    .iter()
                    .any(|p| p.file_name() == Some(name.as_os_str()))
        });
        if ours {
            tracing::debug!("services file changed");
            on_change();
        }
    })
    .map_err(err)?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(err)?;
    Ok(FileWatch {
        _debouncer: debouncer,
    })
}
