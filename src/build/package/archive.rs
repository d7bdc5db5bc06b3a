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
    let mut r = Reader {
        path,
        limits,
        compressed,
        count: 0,
        total: 0,
        ctx: Context::default(),
    };
    for (index, entry) in archive.entries().map_err(|e| r.read_err(e))?.enumerate() {
        let entry = entry.map_err(|e| r.read_err(e))?;
        r.entry(entry, index)?;
    }
    // The tar reader stops at the archive's end marker; the gzip trailer (CRC
    // and size) is only checked once the stream is read to its very end.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| {
        r.package_refuse(
            format!("its gzip stream is damaged ({e})"),
            "make the package again, with `berth package DIR`",
        )
    })?;
    r.finish()
}

/// An archive being read: its limits, what was read so far, and the
/// package's entries.
struct Reader<'p> {
    path: &'p Path,
    limits: Limits,
    /// Compressed bytes read, for the expansion ratio.
    compressed: Arc<AtomicU64>,
    count: usize,
    /// Uncompressed bytes of files read.
    total: u64,
    ctx: Context,
}

impl Reader<'_> {
    fn read_err(&self, source: std::io::Error) -> PackageError {
        PackageError::PackageRead {
            path: self.path.into(),
            source,
        }
    }

    fn refuse(&self, entry: &str, rule: String, help: &str) -> PackageError {
        PackageError::EntryRefuse {
            path: self.path.into(),
            entry: entry.to_string(),
            rule,
            help: help.to_string(),
        }
    }

    fn package_refuse(&self, rule: String, help: &str) -> PackageError {
        PackageError::PackageRefuse {
            path: self.path.into(),
            rule,
            help: help.into(),
        }
    }

    /// One entry: its name checked, then taken by its kind.
    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        index: usize,
    ) -> Result<(), PackageError> {
        self.count += 1;
        if self.count > self.limits.max_entries {
            return Err(self.package_refuse(
                format!("it has more than {} entries", self.limits.max_entries),
                "package less (a .berthignore in the source directory excludes paths)",
            ));
        }
        let raw = entry.path().map_err(|e| self.read_err(e))?.to_path_buf();
        let shown = raw.display().to_string();
        let name = normal_path(&raw).map_err(|why| {
            self.refuse(
                &shown,
                why.into(),
                "packages hold relative paths inside the package only",
            )
        })?;
        if name.is_empty() {
            return Ok(());
        }
        match entry.header().entry_type() {
            // Directories are implied by the files in them.
            tar::EntryType::Directory => Ok(()),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.file(&mut entry, &name, index)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.read_err(e))?
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                if !link_stays_inside(&name, &target) {
                    return Err(self.refuse(
                        &name,
                        format!("it is a symlink to `{target}`, outside the package"),
                        "links may point only inside the package",
                    ));
                }
                self.ctx.add_symlink(&name, &target);
                Ok(())
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.read_err(e))?
                    .map(|t| t.to_path_buf())
                    .unwrap_or_default();
                let target = normal_path(&target).unwrap_or_default();
                match self.ctx.get(&target).cloned() {
                    Some(Entry::File { mode, data }) => {
                        self.ctx.add_data(&name, mode, data);
                        Ok(())
                    }
                    _ => Err(self.refuse(&name, format!("it is a hardlink to `{target}`, which is not an earlier file of the package"), "hardlinks may point only to files earlier in the package")),
                }
            }
            tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => Ok(()),
            other => Err(self.refuse(
                &name,
                format!("it is a {other:?} entry; only files, directories and links are allowed"),
                "remove device files, FIFOs and sockets from the package",
            )),
        }
    }

    /// A regular file, read in chunks with the limits checked after each: a
    /// bomb is stopped as it expands, and nothing is held but the few files
    /// berth reads itself (the others stay in the archive, by digest).
    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        index: usize,
    ) -> Result<(), PackageError> {
        let size = entry.header().size().map_err(|e| self.read_err(e))?;
        if size > self.limits.max_entry_bytes {
            return Err(self.refuse(
                name,
                format!(
                    "it is {size} bytes, over the limit of {}",
                    self.limits.max_entry_bytes
                ),
                "keep large files out of the code package (use assets)",
            ));
        }
        let keep = super::inline(name, size);
        let mut bytes = Vec::new();
        let mut hasher = sha2::Sha256::new();
        let mut seen = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        let mut body = (&mut *entry).take(self.limits.max_entry_bytes + 1);
        loop {
            let n = body.read(&mut buf).map_err(|e| self.read_err(e))?;
            if n == 0 {
                break;
            }
            seen += n as u64;
            self.total += n as u64;
            if keep {
                bytes.extend_from_slice(&buf[..n]);
            } else {
                hasher.update(&buf[..n]);
            }
            self.check_expansion()?;
        }
        let mode = entry.header().mode().map_err(|e| self.read_err(e))?;
        if keep {
            self.ctx.add(name, mode, bytes);
        } else {
            let data = Data::Stored {
                size: seen,
                digest: hasher.finalize().into(),
                from: Origin::Member {
                    archive: self.path.to_path_buf(),
                    index,
                },
            };
            self.ctx.add_data(name, mode, data);
        }
        Ok(())
    }

    /// The package's whole content and its expansion ratio, within bounds.
    fn check_expansion(&self) -> Result<(), PackageError> {
        if self.total > self.limits.max_total_bytes {
            return Err(self.package_refuse(
                format!("its content exceeds {} bytes", self.limits.max_total_bytes),
                "package less, or keep data out of the code package",
            ));
        }
        let packed = self.compressed.load(Ordering::Relaxed).max(1);
        if self.total > (1 << 20) && self.total / packed > self.limits.max_ratio {
            return Err(self.package_refuse(
                format!(
                    "it expands more than {}x (a compression bomb?)",
                    self.limits.max_ratio
                ),
                "make the package with `berth package DIR`",
            ));
        }
        Ok(())
    }

    /// The whole package checked: not empty, its wrapper directory taken
    /// off, names and links checked on what is built.
    fn finish(mut self) -> Result<Package, PackageError> {
        if self.ctx.is_empty() {
            return Err(self.package_refuse(
                "it holds no files".into(),
                "make it with `berth package DIR`",
            ));
        }
        // Checked on what is built: unwrapping the top-level directory moves the
        // package's root, and a link to `..` inside it would then climb out.
        let stripped = strip_wrapper(&mut self.ctx);
        let shown = |entry: String| match &stripped {
            Some(w) => format!("{w}/{entry}"),
            None => entry,
        };
        super::check_names(&self.ctx)
            .map_err(|(entry, rule)| self.refuse(&shown(entry), rule, super::NAMES_HELP))?;
        check_links(&self.ctx).map_err(|(entry, rule)| {
            self.refuse(
                &shown(entry),
                rule,
                "links may point only inside the package, and nothing may lie below a link",
            )
        })?;
        Ok(Package {
            context: self.ctx,
            stripped,
            cached: false,
        })
    }
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
