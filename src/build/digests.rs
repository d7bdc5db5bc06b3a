//! A cache of what reading a file found (its digest, or a whole package's
//! manifest), keyed by the file's stamp: size, mtime, ctime, inode and device,
//! as git's index does. An unchanged package or wheel is then not read again;
//! what is sent to the engine is still checked against the digest as it streams.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// A file changed this recently may change again within the same clock tick
/// without its stamp moving; it is not cached until it has settled.
const SETTLE: Duration = Duration::from_secs(2);

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }

    fn settled(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i128;
        let settle = SETTLE.as_nanos() as i128;
        now - self.mtime_ns.max(self.ctime_ns) > settle
    }
}

#[derive(Serialize, Deserialize)]
struct Record<T> {
    stamp: Stamp,
    value: T,
}

/// The cached findings under one root (a package, a wheel directory), kept in
/// one file under `<state>/digests/`.
pub struct Cache<T> {
    file: Option<PathBuf>,
    records: BTreeMap<String, Record<T>>,
    dirty: bool,
}

impl<T: Serialize + DeserializeOwned> Cache<T> {
    /// The cache for `root`; without a state directory nothing is kept.
    pub fn open(state_dir: Option<&Path>, root: &Path) -> Cache<T> {
        let file = state_dir.map(|d| {
            let key = crate::core::hash::sha256_hex(root.as_os_str().as_encoded_bytes());
            d.join("digests").join(format!("{}.json", &key[..24]))
        });
        // A damaged or older cache file is as good as none.
        let records = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Cache {
            file,
            records,
            dirty: false,
        }
    }

    pub fn get(&self, key: &str, stamp: &Stamp) -> Option<&T> {
        self.records
            .get(key)
            .filter(|r| r.stamp == *stamp)
            .map(|r| &r.value)
    }

    pub fn put(&mut self, key: &str, stamp: Stamp, value: T) {
        if stamp.settled() {
            self.records
                .insert(key.to_string(), Record { stamp, value });
            self.dirty = true;
        }
    }

    /// Keeps only the keys seen in this read (files removed since drop out).
    pub fn retain(&mut self, seen: &std::collections::BTreeSet<String>) {
        let before = self.records.len();
        self.records.retain(|k, _| seen.contains(k));
        self.dirty |= self.records.len() != before;
    }

    /// Writes the cache back; a cache that cannot be written is only slower.
    pub fn save(&self) {
        let (Some(file), true) = (&self.file, self.dirty) else {
            return;
        };
        if let Ok(bytes) = serde_json::to_vec(&self.records) {
            if let Err(e) = crate::shell::state::write_atomic(file, &bytes) {
                tracing::debug!("cannot write the digest cache {}: {e}", file.display());
            }
        }
    }
}

impl Cache<String> {
    /// The digest of the file at `path` (kept under `key`): from the cache when
    /// its stamp is unchanged (then `true`), else read in chunks and kept.
    pub fn file_digest(
        &mut self,
        key: &str,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> std::io::Result<(super::context::Digest, bool)> {
        let stamp = Stamp::of(meta);
        let known = self
            .get(key, &stamp)
            .and_then(|d| hex::decode(d).ok()?.try_into().ok());
        if let Some(d) = known {
            return Ok((d, true));
        }
        let (size, d) = super::context::digest_reader(std::fs::File::open(path)?)?;
        // A file that grew or shrank while read is not what the stamp says.
        if size == meta.len() {
            self.put(key, stamp, hex::encode(d));
        }
        Ok((d, false))
    }
}
