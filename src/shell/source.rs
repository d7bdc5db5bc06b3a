//! Sources of desired state: the services.yaml file on disk, and the environment
//! variables that secrets read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::spec::Spec;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}\n  help: check the path, or pass the file with -f FILE")]
    SpecRead {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The text of a spec file.
pub fn read_spec(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|source| SourceError::SpecRead {
        path: path.to_path_buf(),
        source,
    })
}

/// The values of the environment variables the spec's secrets read, from the
/// environment berth started with. Unset ones are absent; the core reports them.
pub fn secret_env(spec: &Spec, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    spec.versions()
        .flat_map(|v| v.secrets.values())
        .filter_map(|s| {
            let crate::core::spec::SecretSource::Env(var) = &s.source else {
                return None;
            };
            env.get(var).map(|val| (var.clone(), val.clone()))
        })
        .collect()
}

/// A file that holds a shared secret (a webhook's, a sink's): its bytes
/// less a trailing newline. An empty one would believe anybody, so it is
/// refused; `Err` says why, for the caller to name the file.
pub fn secret_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    match bytes.is_empty() {
        true => Err("it is empty".into()),
        false => Ok(bytes),
    }
}
