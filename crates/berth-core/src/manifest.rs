//! What a package is, as berth reads it before any recipe: its manifests,
//! the recipe version every image hash includes, a recipe problem (what and
//! how to fix it), and where a link in it leads. Below both `layout` and `recipe`, so neither imports
//! the other back.

use std::collections::BTreeMap;

/// Bumped whenever the generated Dockerfile changes shape: part of every image hash.
pub const RECIPE_VERSION: u32 = 4;

/// The manifests of a package that decide how it is built and started.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Every path in the package.
    pub paths: Vec<String>,
    pub pyproject: Option<String>,
    pub requirements: Option<String>,
    pub package_json: Option<String>,
    /// The other files berth reads, by path: `Procfile`, `setup.cfg`, the
    /// lock files, the entry files (for a WSGI/ASGI app object).
    pub files: BTreeMap<String, String>,
}

impl Manifests {
    /// The text of a file berth reads, when the package has it.
    pub fn file(&self, path: &str) -> Option<&str> {
        match path {
            "pyproject.toml" => self.pyproject.as_deref(),
            "requirements.txt" => self.requirements.as_deref(),
            "package.json" => self.package_json.as_deref(),
            _ => self.files.get(path).map(String::as_str),
        }
    }
}

/// A build recipe problem: the message names the package; the help says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeError {
    pub message: String,
    pub help: String,
}

pub(crate) fn err(message: impl Into<String>, help: impl Into<String>) -> RecipeError {
    RecipeError {
        message: message.into(),
        help: help.into(),
    }
}

/// Whether a symlink at `entry` pointing to `target` resolves inside the
/// package (or a repository's tree): the rule the package reader and the git
/// checkout share.
pub fn link_stays_inside(entry: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth: Vec<&str> = entry.split('/').collect();
    depth.pop(); // the link itself
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            p => depth.push(p),
        }
    }
    true
}
