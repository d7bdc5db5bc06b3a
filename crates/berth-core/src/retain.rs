//! Which of a project's built images stay: those its containers use, and for
//! each service version the one it ran before (reverting a change then needs no
//! build). Everything else goes after a converge; `berth gc` also takes the
//! previous ones and the dependency caches.

use std::collections::{BTreeMap, BTreeSet};

/// Node dependency images: caches named by their content, not run by anything.
pub const DEPS_REPOSITORY: &str = "berth-deps/";

/// `service@version` -> image IDs it ran, newest first: at most the one it runs
/// and the one before.
pub type Record = BTreeMap<String, Vec<String>>;

/// An image of the project as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectImage {
    pub id: String,
    pub tags: Vec<String>,
}

impl ProjectImage {
    pub fn is_cache(&self) -> bool {
        self.tags.iter().any(|t| t.starts_with(DEPS_REPOSITORY))
    }

    /// Its first tag, else its short ID, for output.
    pub fn name(&self) -> String {
        self.tags
            .first()
            .cloned()
            .unwrap_or_else(|| super::observed::short(&self.id).to_string())
    }
}

/// The record after a converge that left `running` (`service@version` -> image
/// ID of its canonical container): a version whose image changed keeps the old
/// one as its previous; a version no longer running is forgotten.
pub fn advance(record: &Record, running: &BTreeMap<String, String>) -> Record {
    running
        .iter()
        .map(|(version, id)| {
            let mut ids = record.get(version).cloned().unwrap_or_default();
            ids.retain(|x| x != id);
            ids.insert(0, id.clone());
            ids.truncate(2);
            (version.clone(), ids)
        })
        .collect()
}

/// The images to remove: not used by any container of the project (`in_use`),
/// not kept by `record`, and, unless `caches`, not a dependency cache.
pub fn removable<'a>(
    images: &'a [ProjectImage],
    in_use: &BTreeSet<String>,
    record: &Record,
    caches: bool,
) -> Vec<&'a ProjectImage> {
    let kept: BTreeSet<&String> = record.values().flatten().collect();
    images
        .iter()
        .filter(|i| !in_use.contains(&i.id) && !kept.contains(&i.id))
        .filter(|i| caches || !i.is_cache())
        .collect()
}
