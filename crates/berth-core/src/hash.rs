//! Content hashing: the canonical form of everything that decides a container.
//!
//! `berth.hash` is the SHA-256 of [`ContainerConfig`] serialized as JSON. Every map
//! in it is a `BTreeMap` and every field has a fixed place, so the same desired
//! state gives the same bytes, and so the same hash, on every machine, whatever
//! the key order or formatting of the YAML it came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything that decides a container. Stored verbatim in the `berth.config` label
/// so a later plan can say which field changed without asking the engine again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The image ID (not the tag): re-tagging to new content changes the hash.
    pub image: String,
    /// `None`: the image's own command.
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// Secret name -> hash of its value: a changed secret replaces the container,
    /// and the value itself is never stored.
    pub secrets: BTreeMap<String, String>,
    pub nano_cpus: i64,
    pub memory: i64,
    /// The port inside the container.
    pub port: u16,
    /// The host port on 127.0.0.1; `None`: the engine picks a free one.
    pub publish: Option<u16>,
    /// Container path -> volume name.
    pub mounts: BTreeMap<String, String>,
    /// Network name -> DNS aliases on it.
    pub networks: BTreeMap<String, Vec<String>>,
    /// Every label but `berth.hash` and `berth.config` (which are derived from this).
    pub labels: BTreeMap<String, String>,
    /// Container path -> SHA-256 of the asset file mounted there, read-only. (Left
    /// out of the canonical form when empty, so older hashes stay as they were.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub assets: BTreeMap<String, String>,
    /// The GPU handed to the container, by UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// What only an engine that places versions on a cluster's nodes reads
    /// (`Capabilities::placement`); its defaults on one engine. Flattened, so
    /// the canonical form is what it was when these were fields of their own.
    #[serde(flatten)]
    pub placement: Placement,
    /// A job: run to completion, never restarted. (Left out of the canonical
    /// form when false, so hashes from before it stay as they were.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub job: bool,
}

/// The engine section of a configuration: the tasks of a version and where
/// they may run, for an engine that places them on a cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The tasks of the version. (Left out of the canonical form when 1, so
    /// hashes from before it stay as they were.)
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub replicas: u32,
    /// Memory reserved on the node, in bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reserve_memory: i64,
    /// Placement constraints (`node.labels.berth.class!=small`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// GPUs reserved on the node, as the generic resource `NVIDIA-GPU`.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub reserve_gpus: u32,
}

impl Default for Placement {
    fn default() -> Placement {
        Placement {
            replicas: 1,
            reserve_memory: 0,
            constraints: Vec::new(),
            reserve_gpus: 0,
        }
    }
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl ContainerConfig {
    /// The canonical form: compact JSON, fields in declaration order, maps sorted.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("plain data always serializes")
    }

    pub fn hash(&self) -> String {
        sha256_hex(self.canonical().as_bytes())
    }
}

/// The first 12 characters of an engine ID, without any `sha256:` prefix.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    // By characters: a value read from an edited file may hold any text.
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The hash a secret value is recorded by. Domain-separated by project and name, so
/// equal values of two secrets do not show as equal hashes.
pub fn secret_hash(project: &str, name: &str, value: &str) -> String {
    let mut h = Sha256::new();
    for part in ["berth-secret", project, name, value] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// A hash of a list of lines, order-independent: used for fingerprints of the
/// observed engine state.
pub fn lines_hash(lines: &[String]) -> String {
    let mut sorted: Vec<&String> = lines.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for l in sorted {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}
