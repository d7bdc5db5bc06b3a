//! Local base images, built from Debian packages where no registry can be reached.
//!
//! `berth-local/busybox:stable` comes from the host's statically linked busybox
//! (Debian's `busybox-static`), copied into an empty image: no registry, no
//! network, a few megabytes, built in about a second and cached by content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::build::{ensure_image, Built, Context};
use super::docker::{Engine, EngineError};

pub const BUSYBOX_TAG: &str = "berth-local/busybox:stable";
const BUSYBOX_DOCKERFILE: &str = include_str!("../../baseimages/busybox/Dockerfile");

#[derive(Debug, thiserror::Error)]
pub enum BaseImageError {
    #[error("no statically linked busybox at {path}: {why}\n  help: install Debian's busybox-static (`apt-get install busybox-static`), or point BERTH_BUSYBOX at a static busybox binary")]
    BusyboxFind { path: PathBuf, why: String },
    #[error("{path} is built for {binary}, but the engine runs {engine}\n  help: use a busybox built for {engine}")]
    PlatformMatch {
        path: PathBuf,
        binary: String,
        engine: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Where the busybox binary comes from.
pub fn busybox_path() -> PathBuf {
    std::env::var_os("BERTH_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

/// The architecture an ELF binary is for, in the engine's words, and whether it is
/// statically linked (no program interpreter): an empty image has no libc.
fn elf_facts(bytes: &[u8]) -> Result<(&'static str, bool), String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let arch = match u16_at(0x12) {
        0x3e => "amd64",
        0xb7 => "arm64",
        other => return Err(format!("unknown machine type {other:#x}")),
    };
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36) as usize, u16_at(0x38) as usize);
    let mut is_static = true;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if at + 4 > bytes.len() {
            return Err("truncated program headers".into());
        }
        // PT_INTERP: the binary needs a dynamic loader.
        if u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) == 3 {
            is_static = false;
        }
    }
    Ok((arch, is_static))
}

fn engine_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The busybox build context, checked against the engine's architecture.
pub fn busybox_context(path: &Path, arch: &str) -> Result<Context, BaseImageError> {
    let find = |why: String| BaseImageError::BusyboxFind {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| find(e.to_string()))?;
    let (binary, is_static) = elf_facts(&bytes).map_err(find)?;
    if !is_static {
        return Err(find(
            "it is dynamically linked; an empty image has no C library".into(),
        ));
    }
    let engine = engine_arch(arch);
    if binary != engine {
        return Err(BaseImageError::PlatformMatch {
            path: path.to_path_buf(),
            binary: binary.into(),
            engine: engine.into(),
        });
    }
    let mut ctx = Context::default();
    ctx.add("Dockerfile", 0o644, BUSYBOX_DOCKERFILE.as_bytes().to_vec());
    ctx.add("busybox", 0o755, bytes);
    Ok(ctx)
}

/// Makes sure every local base image exists, building what is missing or stale.
/// Returns one line per image saying what happened.
pub async fn ensure_all(engine: &Engine, verbose: bool) -> Result<Vec<String>, BaseImageError> {
    let (_, arch) = engine.version().await?;
    let path = busybox_path();
    let ctx = busybox_context(&path, &arch)?;
    let labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            "berth busybox base".to_string(),
        ),
        (
            "org.opencontainers.image.description".to_string(),
            format!("static busybox from {}", path.display()),
        ),
    ]);
    let built = ensure_image(engine, BUSYBOX_TAG, &ctx, labels, |line| {
        if verbose {
            eprintln!("  {line}");
        }
    })
    .await?;
    Ok(vec![match built {
        Built::Cached(h) => format!("{BUSYBOX_TAG}: up to date (context {})", &h[..12]),
        Built::Fresh(h) => format!(
            "{BUSYBOX_TAG}: built from {} (context {})",
            path.display(),
            &h[..12]
        ),
    }])
}
