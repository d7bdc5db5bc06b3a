//! berth's local records beside the lock, per project: the active versions seen
//! over time (for `berth rollback`), the rollback holds, and the gateways that
//! run (so an apply in another process can ask them to switch and drain).
//!
//! All small JSON files under `$BERTH_STATE_DIR/projects/<project>/`. A
//! record that does not exist is empty; one that exists and cannot be read or
//! parsed is an error naming the file, never a guess: an empty `holds.json`
//! read in place of a cut one would switch a rolled-back service back.
//! Writes are atomic (a temporary file renamed into place).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::core::spec::{ActiveHold, Spec};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write {path}: {source}\n  help: set BERTH_STATE_DIR to a writable directory")]
    StateWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read berth's record {path}: {why}\n  help: it holds {what}; restore it, or remove it to start that record over (nothing was changed)")]
    StateRead {
        path: PathBuf,
        why: String,
        what: &'static str,
    },
}

fn project_dir(state: &Path, project: &str) -> PathBuf {
    state.join("projects").join(project)
}

/// A record: empty when the file does not exist, an error when it exists and
/// is not whole (empty, cut, not JSON, or not this record's shape).
fn read_json<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    what: &'static str,
) -> Result<T, StateError> {
    let fail = |why: String| StateError::StateRead {
        path: path.to_path_buf(),
        why,
        what,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(fail(e.to_string())),
    };
    if text.trim().is_empty() {
        return Err(fail("it is empty".into()));
    }
    serde_json::from_str(&text).map_err(|e| fail(format!("it is not valid JSON of its kind ({e})")))
}

/// What each record holds, for the message when it cannot be read.
const HOLDS: &str = "the rollback holds (`berth rollback`)";
const IMAGES: &str = "each version's running and previous image";
const HISTORY: &str = "the versions that were active (`berth rollback`'s before)";

/// Reads every record of the project, so a command refuses before its first
/// action when one of them cannot be read.
pub fn check(state: &Path, project: &str) -> Result<(), StateError> {
    holds(state, project)?;
    images(state, project)?;
    history(state, project)?;
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let text = serde_json::to_string_pretty(value).expect("state always serializes");
    write_atomic(path, text.as_bytes()).map_err(|source| StateError::StateWrite {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes by rename (a temporary file beside it, flushed first), so a reader
/// never sees half a file and a write killed midway leaves the old one whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Service -> the rollback that holds its active version.
pub fn holds(state: &Path, project: &str) -> Result<BTreeMap<String, ActiveHold>, StateError> {
    read_json(&project_dir(state, project).join("holds.json"), HOLDS)
}

pub fn write_holds(
    state: &Path,
    project: &str,
    holds: &BTreeMap<String, ActiveHold>,
) -> Result<(), StateError> {
    write_json(&project_dir(state, project).join("holds.json"), holds)
}

/// `service@version` -> the images it ran, newest first (see `core::retain`).
pub fn images(state: &Path, project: &str) -> Result<crate::core::retain::Record, StateError> {
    read_json(&project_dir(state, project).join("images.json"), IMAGES)
}

pub fn write_images(
    state: &Path,
    project: &str,
    record: &crate::core::retain::Record,
) -> Result<(), StateError> {
    write_json(&project_dir(state, project).join("images.json"), record)
}

/// Service -> the versions that were active, oldest first, each change once.
pub fn history(state: &Path, project: &str) -> Result<BTreeMap<String, Vec<String>>, StateError> {
    read_json(&project_dir(state, project).join("history.json"), HISTORY)
}

/// Records each service's active version after a successful converge, when it
/// differs from the last one recorded (at most 50 kept per service).
pub fn record_active(state: &Path, spec: &Spec) -> Result<(), StateError> {
    let actives = spec
        .services
        .iter()
        .map(|s| (s.name.clone(), s.active.to_string()));
    record_actives(state, &spec.project, actives)
}

/// Records (service, active version) pairs as [`record_active`] does: a
/// saved plan's, whose routing step names them.
pub fn record_actives(
    state: &Path,
    project: &str,
    actives: impl IntoIterator<Item = (String, String)>,
) -> Result<(), StateError> {
    let mut history = history(state, project)?;
    let mut changed = false;
    for (service, active) in actives {
        let list = history.entry(service).or_default();
        if list.last() != Some(&active) {
            list.push(active);
            if list.len() > 50 {
                list.remove(0);
            }
            changed = true;
        }
    }
    if changed {
        write_json(&project_dir(state, project).join("history.json"), &history)?;
    }
    Ok(())
}

/// A running gateway's registration; removed when dropped.
pub struct GatewayRegistration {
    path: PathBuf,
}

impl Drop for GatewayRegistration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn gateways_dir(state: &Path, project: &str) -> PathBuf {
    project_dir(state, project).join("gateways")
}

/// Announces a gateway's control address for the project's appliers.
pub fn register_gateway(
    state: &Path,
    project: &str,
    control: SocketAddr,
) -> Result<GatewayRegistration, StateError> {
    let path = gateways_dir(state, project).join(format!("{}.addr", std::process::id()));
    let err = |source| StateError::StateWrite {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(gateways_dir(state, project)).map_err(err)?;
    std::fs::write(&path, control.to_string()).map_err(err)?;
    Ok(GatewayRegistration { path })
}

/// The control addresses of the project's registered gateways, with the files
/// that name them (a gateway that no longer answers is forgotten by its caller).
pub fn gateways(state: &Path, project: &str) -> Vec<(PathBuf, SocketAddr)> {
    let Ok(entries) = std::fs::read_dir(gateways_dir(state, project)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let addr = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((e.path(), addr))
        })
        .collect()
}
