//! Reading a `.tar.gz` package: every entry checked while streaming, contents
//! hashed as they pass and left in the archive (never unpacked, never held).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::Digest as _;

use super::*;

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
    for (index, entry) in archive.entries().map_err(read_err)?.enumerate() {
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
                // Read in chunks, the limits checked after each: a bomb is
                // stopped as it expands, and nothing is held but the few files
                // berth reads itself.
                let keep = super::inline(&name, size);
                let mut bytes = Vec::new();
                let mut hasher = sha2::Sha256::new();
                let mut seen = 0u64;
                let mut buf = vec![0u8; 64 << 10];
                let mut body = (&mut entry).take(limits.max_entry_bytes + 1);
                loop {
                    let n = body.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    seen += n as u64;
                    total += n as u64;
                    if keep {
                        bytes.extend_from_slice(&buf[..n]);
                    } else {
                        hasher.update(&buf[..n]);
                    }
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
                }
                let mode = entry.header().mode().map_err(read_err)?;
                if keep {
                    ctx.add(&name, mode, bytes);
                } else {
                    ctx.add_data(
                        &name,
                        mode,
                        Data::Stored {
                            size: seen,
                            digest: hasher.finalize().into(),
                            from: Origin::Member {
                                archive: path.to_path_buf(),
                                index,
                            },
                        },
                    );
                }
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
                    Some(Entry::File { mode, data }) => ctx.add_data(&name, mode, data),
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
    let shown = |entry: String| match &stripped {
        Some(w) => format!("{w}/{entry}"),
        None => entry,
    };
    super::check_names(&ctx)
        .map_err(|(entry, rule)| refuse(&shown(entry), rule, super::NAMES_HELP))?;
    check_links(&ctx).map_err(|(entry, rule)| {
        refuse(
            &shown(entry),
            rule,
            "links may point only inside the package, and nothing may lie below a link",
        )
    })?;
    Ok(Package {
        context: ctx,
        stripped,
        cached: false,
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
            Entry::File { mode, data } => inner.add_data(rest, *mode, data.clone()),
            Entry::Symlink { target } => inner.add_symlink(rest, target),
        }
    }
    *ctx = inner;
    Some(first)
}
