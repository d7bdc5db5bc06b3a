//! Build contexts: one file list feeds both the content hash and the tarball
//! sent to the engine, so the two cannot disagree. Large contents stay where
//! they are (a file on disk, a member of a package archive) until the tarball
//! streams; each is checked against its digest as it goes, so what is sent is
//! what was hashed, and memory stays flat in the package's size.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Where the bytes of a file are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// In memory: generated files, and the small ones berth reads itself.
    Inline(Arc<Vec<u8>>),
    /// Read when the tarball streams; its size and digest are known already.
    Stored {
        size: u64,
        digest: Digest,
        from: Origin,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A file on disk.
    File(PathBuf),
    /// The `index`th entry (as the tar reader yields them) of a `.tar.gz`.
    Member { archive: PathBuf, index: usize },
}

/// What one path of a build context holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        mode: u32,
        data: Data,
    },
    /// A relative link that stays inside the context.
    Symlink {
        target: String,
    },
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

pub fn digest(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

impl Data {
    pub fn size(&self) -> u64 {
        match self {
            Data::Inline(b) => b.len() as u64,
            Data::Stored { size, .. } => *size,
        }
    }

    pub fn digest(&self) -> Digest {
        match self {
            Data::Inline(b) => digest(b),
            Data::Stored { digest, .. } => *digest,
        }
    }
}

impl Context {
    pub fn add(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        self.add_data(path, mode, Data::Inline(Arc::new(bytes)));
    }

    pub fn add_data(&mut self, path: &str, mode: u32, data: Data) {
        let mode = normal_mode(mode);
        self.entries
            .insert(path.to_string(), Entry::File { mode, data });
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.entries.insert(
            path.to_string(),
            Entry::Symlink {
                target: target.to_string(),
            },
        );
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The bytes of a file held in memory.
    pub fn inline(&self, path: &str) -> Option<&[u8]> {
        match self.entries.get(path)? {
            Entry::File {
                data: Data::Inline(b),
                ..
            } => Some(b),
            _ => None,
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
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
                Entry::File { data, .. } => data.size(),
                Entry::Symlink { .. } => 0,
            })
            .sum()
    }

    /// Keeps only the entries whose path `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|path, _| keep(path));
    }

    /// Another context's entries under `prefix/`.
    pub fn nest(&mut self, prefix: &str, other: &Context) {
        for (path, entry) in &other.entries {
            self.entries
                .insert(format!("{prefix}/{path}"), entry.clone());
        }
    }

    /// SHA-256 over paths, kinds, modes, sizes and each file's own digest, in
    /// path order: not mtimes, owners or archive order. Per-file digests let a
    /// cached package be hashed without reading it again.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for (path, entry) in &self.entries {
            match entry {
                Entry::File { mode, data } => h.update(
                    format!(
                        "f\0{path}\0{mode:o}\0{}\0{}\n",
                        data.size(),
                        hex::encode(data.digest())
                    )
                    .as_bytes(),
                ),
                Entry::Symlink { target } => h.update(format!("l\0{path}\0{target}\n").as_bytes()),
            }
        }
        hex::encode(h.finalize())
    }

    /// The tarball in memory (small contexts and tests).
    pub fn tar(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_tar(&mut out)?;
        Ok(out)
    }

    /// Writes the tarball: fixed mtimes and owners, entries in path order, then
    /// the members of each package archive in the archive's order (one pass per
    /// archive). Every stored file is checked against its size and digest as it
    /// streams; a file that changed since it was hashed fails the write.
    pub fn write_tar(&self, out: impl Write) -> io::Result<()> {
        self.write_tar_shaped(out, Shape::CONTEXT)
    }

    /// [`Context::write_tar`], owned and laid out as `shape` says.
    pub fn write_tar_shaped(&self, out: impl Write, shape: Shape<'_>) -> io::Result<()> {
        let mut builder = tar::Builder::new(out);
        let header = |kind: tar::EntryType, size: u64, mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_uid(shape.owner);
            h.set_gid(shape.owner);
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h
        };
        let mut dirs = match shape.directories_from {
            Some(top) => self.directories_from(top),
            None => Default::default(),
        };
        dirs.extend(shape.directories.iter().cloned());
        for dir in dirs {
            let mut h = header(tar::EntryType::Directory, 0, 0o755);
            builder.append_data(&mut h, dir, io::empty())?;
        }
        let mut members: BTreeMap<&PathBuf, BTreeMap<usize, Vec<Filled>>> = BTreeMap::new();
        // The Dockerfile first: BuildKit tells an uploaded context from a bare
        // Dockerfile by its first tar header, which must be a plain one (a
        // long name's extra header first reads as a Dockerfile of tar bytes).
        let (first, rest): (Vec<_>, Vec<_>) = self
            .entries
            .iter()
            .partition(|(path, _)| path.as_str() == "Dockerfile");
        for (path, entry) in first.into_iter().chain(rest) {
            match entry {
                Entry::File {
                    mode,
                    data: Data::Inline(bytes),
                } => {
                    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, *mode);
                    builder.append_data(&mut h, path, bytes.as_slice())?;
                }
                Entry::File {
                    mode,
                    data: Data::Stored { size, digest, from },
                } => match from {
                    Origin::File(file) => {
                        let f = std::fs::File::open(file)?;
                        let mut h = header(tar::EntryType::Regular, *size, *mode);
                        builder.append_data(&mut h, path, Checked::new(f, *size, *digest, file))?;
                    }
                    Origin::Member { archive, index } => members
                        .entry(archive)
                        .or_default()
                        .entry(*index)
                        .or_default()
                        .push((path, *mode, *size, *digest)),
                },
                Entry::Symlink { target } => {
                    let mut h = header(tar::EntryType::Symlink, 0, 0o777);
                    builder.append_link(&mut h, path, target)?;
                }
            }
        }
        for (archive, mut wanted) in members {
            let file = std::fs::File::open(archive)?;
            let gz = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
            let mut tar_in = tar::Archive::new(gz);
            for (index, member) in tar_in.entries()?.enumerate() {
                let Some(paths) = wanted.remove(&index) else {
                    continue;
                };
                let member = member?;
                let (first, mode, size, digest) = paths[0];
                let mut h = header(tar::EntryType::Regular, size, mode);
                builder.append_data(&mut h, first, Checked::new(member, size, digest, archive))?;
                // A file the archive holds more than once (hardlinks) is read once.
                for (path, mode, _, _) in &paths[1..] {
                    let mut h = header(tar::EntryType::Link, 0, *mode);
                    builder.append_link(&mut h, path, first)?;
                }
                if wanted.is_empty() {
                    break;
                }
            }
            if !wanted.is_empty() {
                return Err(changed(archive));
            }
        }
        builder.into_inner()?.flush()
    }

    /// Every directory that holds an entry, from `top` (`app/`) down, parents
    /// first, each ending in `/`.
    fn directories_from(&self, top: &str) -> std::collections::BTreeSet<String> {
        let mut dirs = std::collections::BTreeSet::new();
        for path in self.entries.keys() {
            let Some(rest) = path.strip_prefix(top) else {
                continue;
            };
            dirs.insert(top.to_string());
            for (i, _) in rest.match_indices('/') {
                dirs.insert(path[..top.len() + i + 1].to_string());
            }
        }
        dirs
    }

    /// The tarball as a stream of chunks, written on a blocking thread; the
    /// handle says whether the whole context could be read.
    pub fn tar_stream(
        &self,
    ) -> (
        BoxStream<'static, Result<bytes::Bytes, io::Error>>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let ctx = self.clone();
        stream_written(move |w| ctx.write_tar(w))
    }
}

/// How [`Context::write_tar_shaped`] lays a tarball out.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The uid and gid of every entry.
    pub owner: u64,
    /// An entry for this directory and every one below it that holds
    /// something, owned as the files are: an image layer needs them (the engine
    /// would make them root's; BuildKit's `COPY --chown` to `/app` owns `/app`
    /// itself too), a build context does not.
    pub directories_from: Option<&'a str>,
    /// More directories, each ending in `/`, owned as the files are (the
    /// keeps' mount points), beside those `directories_from` adds.
    pub directories: &'a [String],
}

impl Shape<'_> {
    pub const CONTEXT: Shape<'static> = Shape {
        owner: 0,
        directories_from: None,
        directories: &[],
    };
}

/// What `write` writes, as a stream of chunks, written on a blocking thread;
/// the handle says whether all of it could be written.
pub fn stream_written(
    write: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
) -> (
    BoxStream<'static, Result<bytes::Bytes, io::Error>>,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(4);
    let writer = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write(&mut w).and_then(|()| w.flush());
        if let Err(e) = &result {
            // The engine must see a broken stream, not a short tarball.
            let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        result
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (Box::pin(stream), writer)
}

/// A path an archive member fills: (path, mode, size, digest).
type Filled<'a> = (&'a String, u32, u64, Digest);

const CHUNK: usize = 256 << 10;

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }
}

fn changed(what: &std::path::Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} changed since it was read", what.display()),
    )
}

/// Reads exactly `size` bytes whose digest is `digest`, or fails at the end.
pub struct Checked<'a, R> {
    inner: io::Take<R>,
    hasher: Sha256,
    seen: u64,
    size: u64,
    digest: Digest,
    what: &'a std::path::Path,
}

impl<'a, R: Read> Checked<'a, R> {
    pub fn new(inner: R, size: u64, digest: Digest, what: &'a std::path::Path) -> Self {
        Checked {
            inner: inner.take(size + 1),
            hasher: Sha256::new(),
            seen: 0,
            size,
            digest,
            what,
        }
    }
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        if self.seen > self.size {
            return Err(changed(self.what));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 && (self.seen != self.size || self.hasher.clone().finalize()[..] != self.digest) {
            return Err(changed(self.what));
        }
        Ok(n)
    }
}

/// The size and digest of everything `r` yields, read in chunks.
pub fn digest_reader(mut r: impl Read) -> io::Result<(u64, Digest)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((size, h.finalize().into()));
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
}
