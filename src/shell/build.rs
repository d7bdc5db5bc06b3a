//! Build contexts and image builds: one file list feeds both the content hash and
//! the tarball sent to the engine, so the two cannot disagree.

use std::collections::BTreeMap;

use crate::core::hash::sha256_hex;

use super::docker::{Engine, EngineError};

/// The label that records what an image was built from.
pub const LABEL_CONTEXT_HASH: &str = "berth.context-hash";

/// One file of a build context.
#[derive(Debug, Clone)]
pub struct ContextFile {
    pub path: String,
    pub mode: u32,
    pub bytes: Vec<u8>,
}

/// A build context: files sorted by path, so its hash and tarball are canonical.
#[derive(Debug, Clone, Default)]
pub struct Context {
    files: BTreeMap<String, ContextFile>,
}

impl Context {
    pub fn add(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        self.files.insert(
            path.to_string(),
            ContextFile {
                path: path.to_string(),
                mode,
                bytes,
            },
        );
    }

    /// SHA-256 over paths, modes and bytes, in path order: not mtimes or owners.
    pub fn hash(&self) -> String {
        let mut canonical = Vec::new();
        for f in self.files.values() {
            canonical.extend_from_slice(
                format!("{}\0{:o}\0{}\0", f.path, f.mode, f.bytes.len()).as_bytes(),
            );
            canonical.extend_from_slice(&f.bytes);
        }
        sha256_hex(&canonical)
    }

    /// The tarball: fixed mtimes and owners, so the same content gives the same bytes.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for f in self.files.values() {
            let mut header = tar::Header::new_gnu();
            header.set_size(f.bytes.len() as u64);
            header.set_mode(f.mode);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_cksum();
            builder
                .append_data(&mut header, &f.path, f.bytes.as_slice())
                .expect("writing a tar to memory cannot fail");
        }
        builder
            .into_inner()
            .expect("writing a tar to memory cannot fail")
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
