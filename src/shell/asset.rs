//! Assets: files a service needs (model weights, say), fetched by URL once into a
//! content-addressed cache under the state directory, verified against their
//! SHA-256, and handed to the engine as read-only bind mounts.
//!
//! A download is written to a temporary file while it is hashed, and takes its
//! place in the cache (`assets/sha256/<hex>`) by rename only once complete and
//! verified: a cut download never becomes a cached file. The same content is
//! stored once, whichever services or URLs use it. An asset without a checksum
//! is remembered by URL (`assets/urls/<sha256 of the URL>`), so it is fetched
//! once too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::core::desired::AssetFact;
use crate::core::hash::sha256_hex;
use crate::core::spec::Asset;

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("asset `{env}` ({url}): {why}")]
    AssetFetch {
        env: String,
        url: String,
        why: String,
    },
    #[error(
        "asset `{env}` ({url}): the content's sha256 is {got}, not the {expected} the file says"
    )]
    AssetVerify {
        env: String,
        url: String,
        expected: String,
        got: String,
    },
    #[error("asset `{env}`: cannot store it in {path}: {source}")]
    AssetStore {
        env: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AssetError {
    /// How to fix it, for the plan's refusal.
    pub fn help(&self) -> &'static str {
        match self {
            AssetError::AssetFetch { .. } => {
                "check the URL and that this machine reaches it; nothing was applied"
            }
            AssetError::AssetVerify { .. } => {
                "fix `sha256` (or the URL) so the two agree; nothing was applied"
            }
            AssetError::AssetStore { .. } => {
                "set BERTH_STATE_DIR to a writable directory with room for the file"
            }
        }
    }
}

/// The asset cache under berth's state directory.
pub fn cache_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("assets")
}

fn by_content(cache: &Path, sha: &str) -> PathBuf {
    cache.join("sha256").join(sha)
}

fn by_url(cache: &Path, url: &str) -> PathBuf {
    cache.join("urls").join(sha256_hex(url.as_bytes()))
}

fn fact(sha: &str, path: &Path) -> Option<AssetFact> {
    let meta = std::fs::metadata(path).ok()?;
    Some(AssetFact {
        sha256: sha.to_string(),
        path: path.display().to_string(),
        size: meta.len(),
    })
}

/// The cached file for `asset`, if it is there already.
pub fn cached(cache: &Path, asset: &Asset) -> Option<AssetFact> {
    let sha = match &asset.sha256 {
        Some(s) => s.clone(),
        None => std::fs::read_to_string(by_url(cache, &asset.url))
            .ok()?
            .trim()
            .to_string(),
    };
    fact(&sha, &by_content(cache, &sha))
}

/// An HTTP client for assets: redirects followed (up to 10), a connect timeout,
/// and a read timeout between chunks rather than one for the whole file.
pub fn client() -> reqwest::Client {
    builder()
        .build()
        .expect("a client with these settings always builds")
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
}

/// A client that reaches public addresses only: every name is resolved by
/// [`PublicOnly`], and a redirect to a private address literal is not
/// followed. For files a repository names: it must not make berth fetch the
/// host's or its network's internal endpoints.
pub fn public_client() -> reqwest::Client {
    builder()
        .dns_resolver(std::sync::Arc::new(PublicOnly))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            match attempt.url().host_str().and_then(literal_private) {
                Some(why) => attempt.error(why),
                None if attempt.previous().len() >= 10 => attempt.stop(),
                None => attempt.follow(),
            }
        }))
        .build()
        .expect("a client with these settings always builds")
}

/// Why `url`'s host may not be fetched by a [`public_client`]: a private
/// address literal (names are checked when resolved).
pub fn private_url(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .host_str()
        .and_then(literal_private)
}

fn literal_private(host: &str) -> Option<String> {
    let ip: std::net::IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    (!is_public(ip)).then(|| private_why(host, &[ip]))
}

fn private_why(host: &str, ips: &[std::net::IpAddr]) -> String {
    let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    format!(
        "`{host}` is a loopback, link-local or private address ({}); a services file from a git repository may not make berth fetch internal endpoints (pass --allow-private-assets to `berth watch` to allow it)",
        list.join(", ")
    )
}

/// Whether `ip` is on the public internet: not loopback, private, link-local,
/// shared (100.64/10), unique-local, multicast or unspecified.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// Resolves names to their public addresses only; a name with none is an error.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<std::net::SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let ips: Vec<std::net::IpAddr> = all.iter().map(|a| a.ip()).collect();
                return Err(private_why(&host, &ips).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The asset from the cache, or fetched, verified and stored first.
/// `cache` is [`cache_dir`].
pub async fn ensure(
    client: &reqwest::Client,
    cache: &Path,
    asset: &Asset,
) -> Result<AssetFact, AssetError> {
    if let Some(f) = cached(cache, asset) {
        return Ok(f);
    }
    let fetch_err = |why: String| AssetError::AssetFetch {
        env: asset.env.clone(),
        url: asset.url.clone(),
        why,
    };
    let store_err = |path: &Path, source| AssetError::AssetStore {
        env: asset.env.clone(),
        path: path.to_path_buf(),
        source,
    };
    let res = client
        .get(&asset.url)
        .send()
        .await
        .map_err(|e| fetch_err(format!("cannot fetch it: {}", error_chain(&e))))?;
    if !res.status().is_success() {
        return Err(fetch_err(format!("the server answered {}", res.status())));
    }
    let total = res.content_length();
    let tmp_dir = cache.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| store_err(&tmp_dir, e))?;
    forget_abandoned(&tmp_dir);
    let tmp = tmp_dir.join(format!(
        "{}-{}",
        std::process::id(),
        sha256_hex(asset.url.as_bytes())
    ));
    // Removed on every early return: only a complete, verified file is kept.
    struct Partial<'a>(&'a Path, bool);
    impl Drop for Partial<'_> {
        fn drop(&mut self) {
            if !self.1 {
                let _ = std::fs::remove_file(self.0);
            }
        }
    }
    let mut partial = Partial(&tmp, false);
    let mut file = std::fs::File::create(&tmp).map_err(|e| store_err(&tmp, e))?;
    let progress = progress_bar(&asset.env, total);
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            fetch_err(format!(
                "the download broke off after {got}{} bytes: {}",
                total.map(|t| format!(" of {t}")).unwrap_or_default(),
                error_chain(&e)
            ))
        })?;
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(|e| store_err(&tmp, e))?;
        got += chunk.len() as u64;
        if let Some(p) = &progress {
            p.set_position(got);
        }
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    if total.is_some_and(|t| t != got) {
        return Err(fetch_err(format!(
            "the download broke off after {got} of {} bytes",
            total.unwrap_or(0)
        )));
    }
    file.sync_all().map_err(|e| store_err(&tmp, e))?;
    drop(file);
    let sha = hex::encode(hasher.finalize());
    if let Some(expected) = &asset.sha256 {
        if *expected != sha {
            return Err(AssetError::AssetVerify {
                env: asset.env.clone(),
                url: asset.url.clone(),
                expected: expected.clone(),
                got: sha,
            });
        }
    }
    let dest = by_content(cache, &sha);
    let parent = dest.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(|e| store_err(parent, e))?;
    std::fs::rename(&tmp, &dest).map_err(|e| store_err(&dest, e))?;
    partial.1 = true;
    if asset.sha256.is_none() {
        let index = by_url(cache, &asset.url);
        let dir = index.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
        std::fs::write(&index, &sha).map_err(|e| store_err(&index, e))?;
    }
    fact(&sha, &dest).ok_or_else(|| {
        store_err(
            &dest,
            std::io::Error::new(std::io::ErrorKind::NotFound, "vanished after storing"),
        )
    })
}

/// Removes temporary files untouched for a day: what a killed berth left
/// mid-download (never part of the cache, only taking room).
fn forget_abandoned(tmp_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// An error with its causes, as one line (reqwest's own text hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A download bar on a terminal only.
fn progress_bar(env: &str, total: Option<u64>) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || crate::say::json() {
        return None;
    }
    let p = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    p.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bytes}/{total_bytes} {bar:30} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    p.set_message(format!("fetching asset {env}"));
    Some(p)
}
