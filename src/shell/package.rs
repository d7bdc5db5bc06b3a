//! Code packages: a `.tar.gz` or a directory, read into a build [`Context`] without
//! ever unpacking on the host, and `berth package`'s deterministic archives.
//!
//! Every archive entry is checked while streaming: a relative normal path; a
//! regular file, a directory, a symlink that stays inside, or a hardlink to an
//! earlier entry; nothing else. Limits on entry count, entry size, total size and
//! expansion ratio stop bombs before they fill memory.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::build::{Context, Entry};

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
}

/// Reads a package: a `.tar.gz` file or a directory.
pub fn read(path: &Path, limits: Limits) -> Result<Package, PackageError> {
    if path.is_dir() {
        read_dir(path, limits).map(|context| Package {
            context,
            stripped: None,
        })
    } else {
        read_archive(path, limits)
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

/// Every link resolved the way the container will (following the links it
/// meets, one after another) stays inside, and no entry lies below a link (the
/// engine would put it wherever the link points) or below a file (the build
/// would fail on it). Err: the entry and why.
pub fn check_links(ctx: &Context) -> Result<(), (String, String)> {
    let is_link = |p: &str| matches!(ctx.get(p), Some(Entry::Symlink { .. }));
    for path in ctx.paths() {
        let mut prefix = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, dirs)| dirs)
            .unwrap_or(&[])
        {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if is_link(&prefix) {
                return Err((
                    path.to_string(),
                    format!("it lies below the symlink `{prefix}`"),
                ));
            }
            if matches!(ctx.get(&prefix), Some(Entry::File { .. })) {
                return Err((
                    path.to_string(),
                    format!("it lies below the file `{prefix}`"),
                ));
            }
        }
        if let Some(Entry::Symlink { target }) = ctx.get(path) {
            if !resolves_inside(ctx, path, target) {
                return Err((
                    path.to_string(),
                    format!("it is a symlink to `{target}`, which resolves outside the package through the links it passes"),
                ));
            }
        }
    }
    Ok(())
}

/// Follows `target` from the link at `entry` through every link it meets (at
/// most 40, as the kernel does); `false` when it climbs out or loops.
fn resolves_inside(ctx: &Context, entry: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut at: Vec<String> = entry.split('/').map(String::from).collect();
    at.pop();
    let mut todo: std::collections::VecDeque<String> =
        target.split('/').map(String::from).collect();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return false;
                }
            }
            name => {
                at.push(name.to_string());
                if let Some(Entry::Symlink { target }) = ctx.get(&at.join("/")) {
                    hops += 1;
                    if hops > 40 || target.starts_with('/') {
                        return false;
                    }
                    at.pop();
                    for p in target.split('/').rev() {
                        todo.push_front(p.to_string());
                    }
                }
            }
        }
    }
    true
}

/// Whether a symlink at `entry` pointing to `target` resolves inside the package.
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

/// Counts the compressed bytes read, for the expansion-ratio check.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub fn read_archive(path: &Path, limits: Limits) -> Result<Package, PackageError> {
    let file = std::fs::File::open(path).map_err(|source| PackageError::PackageRead {
        path: path.into(),
        source,
    })?;
    let compressed = Arc::new(AtomicU64::new(0));
    // Multi-member gzip (concatenated archives, as some tools write) reads as one stream.
    let gz = flate2::read::MultiGzDecoder::new(Counting {
        inner: std::io::BufReader::new(file),
        count: compressed.clone(),
    });
    let mut archive = tar::Archive::new(gz);
    let refuse = |entry: &str, rule: String, help: &str| PackageError::EntryRefuse {
        path: path.into(),
        entry: entry.to_string(),
        rule,
        help: help.to_string(),
    };
    let read_err = |source| PackageError::PackageRead {
        path: path.into(),
        source,
    };
    let mut ctx = Context::default();
    let (mut count, mut total) = (0usize, 0u64);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        count += 1;
        if count > limits.max_entries {
            return Err(PackageError::PackageRefuse {
                path: path.into(),
                rule: format!("it has more than {} entries", limits.max_entries),
                help: "package less (a .berthignore in the source directory excludes paths)".into(),
            });
        }
        let raw = entry.path().map_err(read_err)?.to_path_buf();
        let shown = raw.display().to_string();
        let name = normal_path(&raw).map_err(|why| {
            refuse(
                &shown,
                why.into(),
                "packages hold relative paths inside the package only",
            )
        })?;
        if name.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            // Directories are implied by the files in them.
            tar::EntryType::Directory => {}
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.header().size().map_err(read_err)?;
                if size > limits.max_entry_bytes {
                    return Err(refuse(
                        &name,
                        format!(
                            "it is {size} bytes, over the limit of {}",
                            limits.max_entry_bytes
                        ),
                        "keep large files out of the code package (use assets)",
                    ));
                }
                let mut bytes = Vec::with_capacity(size.min(1 << 20) as usize);
                (&mut entry)
                    .take(limits.max_entry_bytes + 1)
                    .read_to_end(&mut bytes)
                    .map_err(read_err)?;
                total += bytes.len() as u64;
                if total > limits.max_total_bytes {
                    return Err(PackageError::PackageRefuse {
                        path: path.into(),
                        rule: format!("its content exceeds {} bytes", limits.max_total_bytes),
                        help: "package less, or keep data out of the code package".into(),
                    });
                }
                let packed = compressed.load(Ordering::Relaxed).max(1);
                if total > (1 << 20) && total / packed > limits.max_ratio {
                    return Err(PackageError::PackageRefuse {
                        path: path.into(),
                        rule: format!(
                            "it expands more than {}x (a compression bomb?)",
                            limits.max_ratio
                        ),
                        help: "make the package with `berth package DIR`".into(),
                    });
                }
                let mode = entry.header().mode().map_err(read_err)?;
                ctx.add(&name, mode, bytes);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(read_err)?
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                if !link_stays_inside(&name, &target) {
                    return Err(refuse(
                        &name,
                        format!("it is a symlink to `{target}`, outside the package"),
                        "links may point only inside the package",
                    ));
                }
                ctx.add_symlink(&name, &target);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(read_err)?
                    .map(|t| t.to_path_buf())
                    .unwrap_or_default();
                let target = normal_path(&target).unwrap_or_default();
                match ctx.get(&target).cloned() {
                    Some(Entry::File { mode, bytes }) => ctx.add(&name, mode, bytes),
                    _ => {
                        return Err(refuse(&name, format!("it is a hardlink to `{target}`, which is not an earlier file of the package"), "hardlinks may point only to files earlier in the package"))
                    }
                }
            }
            tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                return Err(refuse(
                    &name,
                    format!(
                        "it is a {other:?} entry; only files, directories and links are allowed"
                    ),
                    "remove device files, FIFOs and sockets from the package",
                ))
            }
        }
    }
    // The tar reader stops at the archive's end marker; the gzip trailer (CRC
    // and size) is only checked once the stream is read to its very end.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| PackageError::PackageRefuse {
        path: path.into(),
        rule: format!("its gzip stream is damaged ({e})"),
        help: "make the package again, with `berth package DIR`".into(),
    })?;
    if ctx.is_empty() {
        return Err(PackageError::PackageRefuse {
            path: path.into(),
            rule: "it holds no files".into(),
            help: "make it with `berth package DIR`".into(),
        });
    }
    // Checked on what is built: unwrapping the top-level directory moves the
    // package's root, and a link to `..` inside it would then climb out.
    let stripped = strip_wrapper(&mut ctx);
    check_links(&ctx).map_err(|(entry, rule)| {
        let entry = match &stripped {
            Some(w) => format!("{w}/{entry}"),
            None => entry,
        };
        refuse(
            &entry,
            rule,
            "links may point only inside the package, and nothing may lie below a link",
        )
    })?;
    Ok(Package {
        context: ctx,
        stripped,
    })
}

/// A package whose every path starts with one directory is unwrapped.
fn strip_wrapper(ctx: &mut Context) -> Option<String> {
    let first = ctx.paths().next()?.split('/').next()?.to_string();
    let prefix = format!("{first}/");
    if !ctx.paths().all(|p| p.starts_with(&prefix)) {
        return None;
    }
    let mut inner = Context::default();
    for path in ctx.paths() {
        let rest = &path[prefix.len()..];
        match ctx.get(path).expect("listed") {
            Entry::File { mode, bytes } => inner.add(rest, *mode, bytes.clone()),
            Entry::Symlink { target } => inner.add_symlink(rest, target),
        }
    }
    *ctx = inner;
    Some(first)
}

/// Reads a source directory: sorted, with [`ALWAYS_EXCLUDED`] and `.berthignore`
/// (gitignore syntax) left out.
pub fn read_dir(dir: &Path, limits: Limits) -> Result<Context, PackageError> {
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .add_custom_ignore_filename(".berthignore")
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|e| !ALWAYS_EXCLUDED.contains(&e.file_name().to_str().unwrap_or("")))
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
            ctx.add(
                &name,
                meta.permissions().mode(),
                std::fs::read(full).map_err(read_err)?,
            );
        } else {
            return Err(PackageError::EntryRefuse {
                path: dir.into(),
                entry: name,
                rule: "it is not a regular file, directory or symlink".into(),
                help: "list it in .berthignore".into(),
            });
        }
        if ctx.len() > limits.max_entries || ctx.size() > limits.max_total_bytes {
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
    check_links(&ctx).map_err(|(entry, rule)| PackageError::EntryRefuse {
        path: dir.into(),
        entry,
        rule,
        help: "links may point only inside the directory, and nothing may lie below a link".into(),
    })?;
    Ok(ctx)
}

/// The deterministic `.tar.gz` of a context: same content, same bytes (sorted
/// entries, zero mtimes and owners, normalized modes, a gzip header without time or name).
pub fn archive(ctx: &Context) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&ctx.tar())
        .expect("writing to memory cannot fail");
    gz.finish().expect("writing to memory cannot fail")
}

/// `berth package DIR -o FILE`.
pub fn package_dir(dir: &Path, out: &Path) -> Result<(Context, usize), PackageError> {
    let ctx = read_dir(dir, Limits::default())?;
    let bytes = archive(&ctx);
    std::fs::write(out, &bytes).map_err(|source| PackageError::ArchiveWrite {
        path: out.into(),
        source,
    })?;
    Ok((ctx, bytes.len()))
}
