//! Code packages: a `.tar.gz` or a directory, read into a build [`Context`] without
//! ever unpacking on the host, and `berth package`'s deterministic archives.
//!
//! Every archive entry is checked while streaming: a relative normal path; a
//! regular file, a directory, a symlink that stays inside, or a hardlink to an
//! earlier entry; nothing else. Limits on entry count, entry size, total size and
//! expansion ratio stop bombs before they fill memory. Contents are hashed as
//! they pass and stay where they are; only the few files berth reads itself
//! ([`INLINE`]) are held in memory. What a read found is cached by the file's
//! stamp (see `digests`), so an unchanged package is not read again.

mod archive;
mod links;

use std::path::{Component, Path, PathBuf};

pub use crate::core::manifest::link_stays_inside;
pub use archive::read_archive;
pub use links::check_links;

use super::context::{Context, Data, Entry, Origin};
use super::digests::{Cache, Stamp};

/// The files berth reads itself (dependencies, lock files, the Procfile),
/// kept in memory; the entry files an app object is looked for in
/// (`core::entry::APP_FILES`) too.
pub const INLINE: [&str; 12] = [
    "pyproject.toml",
    "requirements.txt",
    "package.json",
    "setup.cfg",
    "setup.py",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "uv.lock",
    "pdm.lock",
    "Procfile",
    "__main__.py",
];

/// Whether a package file is held in memory rather than read when sent.
fn inline(name: &str, size: u64) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    size <= 1 << 20 && (INLINE.contains(&base) || crate::core::entry::APP_FILES.contains(&base))
}

/// Names never packaged from a directory, at any depth.
pub const ALWAYS_EXCLUDED: [&str; 6] = [
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    ".env",
    ".berthignore",
];

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
    /// Uncompressed bytes per compressed byte, past the first MiB.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 20_000,
            max_entry_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_ratio: 200,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot read package {path}: {source}\n  help: check the path in services.yaml (relative to the file)")]
    PackageRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("package {path}: entry `{entry}` is refused: {rule}\n  help: {help}")]
    EntryRefuse {
        path: PathBuf,
        entry: String,
        rule: String,
        help: String,
    },
    #[error("package {path} is refused: {rule}\n  help: {help}")]
    PackageRefuse {
        path: PathBuf,
        rule: String,
        help: String,
    },
    #[error("cannot read the directory {path}: {source}\n  help: give `berth package` the service's source directory")]
    DirRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    ArchiveWrite {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A package's content, ready to hash and to send to the engine.
#[derive(Debug, Clone)]
pub struct Package {
    pub context: Context,
    /// The single top-level directory that wrapped everything, now stripped.
    pub stripped: Option<String>,
    /// Whether what was found came from the cache, not from reading the package.
    pub cached: bool,
}

/// Reads a package: a `.tar.gz` file or a directory.
pub fn read(path: &Path, limits: Limits) -> Result<Package, PackageError> {
    read_cached(path, limits, None, false)
}

/// Reads a package, with the digests found before kept under `state_dir`.
/// `vendored`: a directory's `node_modules` are read too (the service ships them).
pub fn read_cached(
    path: &Path,
    limits: Limits,
    state_dir: Option<&Path>,
    vendored: bool,
) -> Result<Package, PackageError> {
    if path.is_dir() {
        return read_dir_cached(path, limits, state_dir, vendored);
    }
    let meta = std::fs::metadata(path).map_err(|source| PackageError::PackageRead {
        path: path.into(),
        source,
    })?;
    let stamp = Stamp::of(&meta);
    let mut cache: Cache<Manifest> = Cache::open(state_dir, path);
    if let Some(found) = cache.get("", &stamp).and_then(|m| m.package(path)) {
        return Ok(found);
    }
    let pkg = read_archive(path, limits)?;
    cache.put("", stamp, Manifest::of(&pkg));
    cache.save();
    Ok(pkg)
}

/// What reading an archive found, as the cache keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    stripped: Option<String>,
    entries: Vec<ManifestEntry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum ManifestEntry {
    Inline {
        path: String,
        mode: u32,
        hex: String,
    },
    Member {
        path: String,
        mode: u32,
        size: u64,
        digest: String,
        index: usize,
    },
    Link {
        path: String,
        target: String,
    },
}

impl Manifest {
    fn of(pkg: &Package) -> Manifest {
        let entries = pkg
            .context
            .iter()
            .map(|(path, entry)| {
                let path = path.clone();
                match entry {
                    Entry::File {
                        mode,
                        data: Data::Inline(b),
                    } => ManifestEntry::Inline {
                        path,
                        mode: *mode,
                        hex: hex::encode(b.as_slice()),
                    },
                    Entry::File {
                        mode,
                        data: Data::Stored { size, digest, from },
                    } => ManifestEntry::Member {
                        path,
                        mode: *mode,
                        size: *size,
                        digest: hex::encode(digest),
                        index: match from {
                            Origin::Member { index, .. } => *index,
                            Origin::File(_) => unreachable!("an archive's files are its members"),
                        },
                    },
                    Entry::Symlink { target } => ManifestEntry::Link {
                        path,
                        target: target.clone(),
                    },
                }
            })
            .collect();
        Manifest {
            stripped: pkg.stripped.clone(),
            entries,
        }
    }

    /// The package again; `None` when the record is damaged.
    fn package(&self, archive: &Path) -> Option<Package> {
        let mut ctx = Context::default();
        for e in &self.entries {
            match e {
                ManifestEntry::Inline { path, mode, hex } => {
                    ctx.add(path, *mode, hex::decode(hex).ok()?)
                }
                ManifestEntry::Member {
                    path,
                    mode,
                    size,
                    digest,
                    index,
                } if !inline(path, *size) => ctx.add_data(
                    path,
                    *mode,
                    Data::Stored {
                        size: *size,
                        digest: hex::decode(digest).ok()?.try_into().ok()?,
                        from: Origin::Member {
                            archive: archive.to_path_buf(),
                            index: *index,
                        },
                    },
                ),
                // A file berth reads now but did not when the record was
                // made: the archive is read again.
                ManifestEntry::Member { .. } => return None,
                ManifestEntry::Link { path, target } => ctx.add_symlink(path, target),
            }
        }
        Some(Package {
            context: ctx,
            stripped: self.stripped.clone(),
            cached: true,
        })
    }
}

/// The normal relative form of an archive path, or why it is not one.
fn normal_path(p: &Path) -> Result<String, &'static str> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().ok_or("the path is not UTF-8")?),
            Component::CurDir => {}
            Component::ParentDir => return Err("the path climbs out with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("the path is absolute"),
        }
    }
    Ok(parts.join("/"))
}

/// Reads a source directory: sorted, with [`ALWAYS_EXCLUDED`] and `.berthignore`
/// (gitignore syntax) left out.
pub fn read_dir(dir: &Path, limits: Limits) -> Result<Context, PackageError> {
    read_dir_cached(dir, limits, None, false).map(|p| p.context)
}

fn read_dir_cached(
    dir: &Path,
    limits: Limits,
    state_dir: Option<&Path>,
    vendored: bool,
) -> Result<Package, PackageError> {
    let mut cache: Cache<String> = Cache::open(state_dir, dir);
    let mut seen = std::collections::BTreeSet::new();
    let mut all_cached = true;
    let mut total = 0u64;
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .add_custom_ignore_filename(".berthignore")
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let name = e.file_name().to_str().unwrap_or("");
            (vendored && name == "node_modules") || !ALWAYS_EXCLUDED.contains(&name)
        })
        .build();
    let mut ctx = Context::default();
    for item in walker {
        let item = item.map_err(|e| PackageError::PackageRead {
            path: dir.into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let full = item.path();
        let rel = full.strip_prefix(dir).unwrap_or(full);
        let Ok(name) = normal_path(rel) else { continue };
        if name.is_empty() {
            continue;
        }
        let read_err = |source| PackageError::PackageRead {
            path: full.into(),
            source,
        };
        let meta = std::fs::symlink_metadata(full).map_err(read_err)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            continue;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(full)
                .map_err(read_err)?
                .display()
                .to_string();
            if !link_stays_inside(&name, &target) {
                return Err(PackageError::EntryRefuse {
                    path: dir.into(),
                    entry: name,
                    rule: format!("it is a symlink to `{target}`, outside the directory"),
                    help: "links may point only inside the package; copy the file in instead"
                        .into(),
                });
            }
            ctx.add_symlink(&name, &target);
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            if meta.len() > limits.max_entry_bytes {
                return Err(PackageError::EntryRefuse {
                    path: dir.into(),
                    entry: name,
                    rule: format!(
                        "it is {} bytes, over the limit of {}",
                        meta.len(),
                        limits.max_entry_bytes
                    ),
                    help: "list it in .berthignore, or keep it out of the code".into(),
                });
            }
            let mode = meta.permissions().mode();
            if inline(&name, meta.len()) {
                ctx.add(&name, mode, std::fs::read(full).map_err(read_err)?);
            } else {
                let (digest, hit) = cache.file_digest(&name, full, &meta).map_err(read_err)?;
                all_cached &= hit;
                ctx.add_data(
                    &name,
                    mode,
                    Data::Stored {
                        size: meta.len(),
                        digest,
                        from: Origin::File(full.to_path_buf()),
                    },
                );
            }
            total += meta.len();
            seen.insert(name);
        } else {
            return Err(PackageError::EntryRefuse {
                path: dir.into(),
                entry: name,
                rule: "it is not a regular file, directory or symlink".into(),
                help: "list it in .berthignore".into(),
            });
        }
        if ctx.len() > limits.max_entries || total > limits.max_total_bytes {
            return Err(PackageError::PackageRefuse {
                path: dir.into(),
                rule: format!(
                    "it holds more than {} files or {} bytes",
                    limits.max_entries, limits.max_total_bytes
                ),
                help: "list what the service does not need in .berthignore".into(),
            });
        }
    }
    if ctx.is_empty() {
        return Err(PackageError::PackageRefuse {
            path: dir.into(),
            rule: "it holds no files".into(),
            help: "point `package` at the service's source directory".into(),
        });
    }
    check_names(&ctx).map_err(|(entry, rule)| PackageError::EntryRefuse {
        path: dir.into(),
        entry,
        rule,
        help: NAMES_HELP.into(),
    })?;
    check_links(&ctx).map_err(|(entry, rule)| PackageError::EntryRefuse {
        path: dir.into(),
        entry,
        rule,
        help: "links may point only inside the directory, and nothing may lie below a link".into(),
    })?;
    cache.retain(&seen);
    cache.save();
    Ok(Package {
        context: ctx,
        stripped: None,
        cached: all_cached,
    })
}

/// The deterministic `.tar.gz` of a context: same content, same bytes (sorted
/// entries, zero mtimes and owners, normalized modes, a gzip header without time or name).
pub fn archive(ctx: &Context, out: impl std::io::Write) -> std::io::Result<()> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::new(6));
    ctx.write_tar(&mut gz)?;
    gz.finish()?.flush()
}

/// `berth package DIR -o FILE`, written by rename so a reader never sees half
/// an archive; returns the context and the archive's size.
pub fn package_dir(dir: &Path, out: &Path) -> Result<(Context, u64), PackageError> {
    if !dir.is_dir() {
        return Err(PackageError::DirRead {
            path: dir.into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let ctx = read_dir(dir, Limits::default()).map_err(|e| match e {
        PackageError::PackageRead { path, source } => PackageError::DirRead { path, source },
        e => e,
    })?;
    let write_err = |source| PackageError::ArchiveWrite {
        path: out.into(),
        source,
    };
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = out.with_file_name(name);
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        archive(&ctx, &mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(f.metadata()?.len())
    });
    let size = written
        .and_then(|size| std::fs::rename(&tmp, out).map(|()| size))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(write_err)?;
    Ok((ctx, size))
}

const NAMES_HELP: &str = "rename it, or list it in .berthignore";

/// No name the engine reads as something else inside an image layer: one
/// starting with `.wh.` is a deletion marker there (BuildKit's copy refuses it,
/// and in a layer berth writes it would delete a file of the parent). Err: the
/// entry and why.
pub fn check_names(ctx: &Context) -> Result<(), (String, String)> {
    match ctx
        .paths()
        .find(|p| p.split('/').any(|part| part.starts_with(".wh.")))
    {
        Some(path) => Err((
            path.clone(),
            "a name starting with `.wh.` marks a deleted file inside an image layer".into(),
        )),
        None => Ok(()),
    }
}
