//! Build contexts and image builds: one file list feeds both the content hash and
//! the tarball sent to the engine, so the two cannot disagree.

use std::collections::BTreeMap;

use crate::core::hash::sha256_hex;

use super::docker::{Engine, EngineError};

/// The label that records what an image was built from.
pub const LABEL_CONTEXT_HASH: &str = "berth.context-hash";

/// What one path of a build context holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { mode: u32, bytes: Vec<u8> },
    /// A relative link that stays inside the context.
    Symlink { target: String },
}

/// A build context: entries sorted by path, so its hash and tarball are canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    entries: BTreeMap<String, Entry>,
}

/// Modes are normalized: executable or not, nothing else survives.
pub fn normal_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

impl Context {
    pub fn add(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        self.entries.insert(path.to_string(), Entry::File { mode: normal_mode(mode), bytes });
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.entries.insert(path.to_string(), Entry::Symlink { target: target.to_string() });
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of the files.
    pub fn size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                Entry::File { bytes, .. } => bytes.len() as u64,
                Entry::Symlink { .. } => 0,
            })
            .sum()
    }

    /// Another context's entries under `prefix/`.
    pub fn nest(&mut self, prefix: &str, other: &Context) {
        for (path, entry) in &other.entries {
            self.entries.insert(format!("{prefix}/{path}"), entry.clone());
        }
    }

    /// SHA-256 over paths, kinds, modes and bytes, in path order: not mtimes,
    /// owners or archive order.
    pub fn hash(&self) -> String {
        let mut canonical = Vec::new();
        for (path, entry) in &self.entries {
            match entry {
                Entry::File { mode, bytes } => {
                    canonical.extend_from_slice(format!("f\0{path}\0{mode:o}\0{}\0", bytes.len()).as_bytes());
                    canonical.extend_from_slice(bytes);
                }
                Entry::Symlink { target } => {
                    canonical.extend_from_slice(format!("l\0{path}\0{target}\0").as_bytes());
                }
            }
        }
        sha256_hex(&canonical)
    }

    /// The tarball: fixed mtimes and owners, so the same content gives the same bytes.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            let written = match entry {
                Entry::File { mode, bytes } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    header.set_mode(*mode);
                    builder.append_data(&mut header, path, bytes.as_slice())
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    header.set_mode(0o777);
                    builder.append_link(&mut header, path, target)
                }
            };
            written.expect("writing a tar to memory cannot fail");
        }
        builder.into_inner().expect("writing a tar to memory cannot fail")
    }
}

/// Whether `tag` was built (or had to be built) now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    Cached(String),
    Fresh(String),
}

/// Builds `tag` from `context` unless an image with that tag already records the
/// same context hash: an unchanged context is never rebuilt.
pub async fn ensure_image(
    engine: &Engine,
    tag: &str,
    context: &Context,
    mut labels: BTreeMap<String, String>,
    on_line: impl FnMut(&str),
) -> Result<Built, EngineError> {
    let hash = context.hash();
    if let Some(existing) = engine.image_labels(tag).await? {
        if existing.get(LABEL_CONTEXT_HASH) == Some(&hash) {
            return Ok(Built::Cached(hash));
        }
    }
    labels.insert(LABEL_CONTEXT_HASH.to_string(), hash.clone());
    engine
        .build_image(tag, context.tar(), &labels, on_line)
        .await?;
    Ok(Built::Fresh(hash))
}
