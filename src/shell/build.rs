//! Build contexts and image builds: one file list feeds both the content hash and
//! the tarball sent to the engine, so the two cannot disagree.

use std::collections::BTreeMap;

use super::engine::{Engine, EngineError};
use super::settings::Settings;

/// The label that records what an image was built from.
pub const LABEL_CONTEXT_HASH: &str = "berth.context-hash";

pub use super::context::{normal_mode, Context, Data, Entry};

/// Whether `tag` was built (or had to be built) now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    Cached(String),
    Fresh(String),
}

/// Builds `tag` from `context` unless an image with that tag already records the
/// same context hash: an unchanged context is never rebuilt.
pub async fn ensure_image(
    engine: &dyn Engine,
    tag: &str,
    context: &Context,
    mut labels: BTreeMap<String, String>,
    mut on_line: impl FnMut(&str) + Send,
) -> Result<Built, EngineError> {
    let hash = context.hash();
    if let Some(existing) = engine.image_labels(tag).await? {
        if existing.get(LABEL_CONTEXT_HASH) == Some(&hash) {
            return Ok(Built::Cached(hash));
        }
    }
    labels.insert(LABEL_CONTEXT_HASH.to_string(), hash.clone());
    // The labels go in as one LABEL line at the end of the Dockerfile sent, not as
    // the API's labels: the engine's classic builder turns each of those into a
    // step of its own (a container each), and the hash is of the context without them.
    let mut sent = context.clone();
    if let Some(dockerfile) = context.inline("Dockerfile") {
        let quote = |s: &String| serde_json::to_string(s).expect("strings serialize");
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
            .collect();
        let mut dockerfile = dockerfile.to_vec();
        dockerfile.extend(format!("LABEL {}\n", pairs.join(" ")).into_bytes());
        sent.add("Dockerfile", 0o644, dockerfile);
    }
    let (tarball, writer) = sent.tar_stream();
    let built = engine.build_image(tag, tarball, &mut on_line).await;
    // A context that could not be read is the cause, whatever the engine made of
    // the broken stream.
    match writer.await {
        Ok(Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(EngineError::ContextSend {
                tag: tag.to_string(),
                message: e.to_string(),
            })
        }
        _ => {}
    }
    built?;
    Ok(Built::Fresh(hash))
}

// ---------------------------------------------------------------------------
// Service images built from code packages.

use std::path::{Path, PathBuf};

use crate::core::desired::BuildInput;
use crate::core::recipe::{self, Deps, Manifests, RECIPE_VERSION};

use super::package::{self, Limits, PackageError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{id}: package {package}: {message}\n  help: {help}")]
    RecipeInvalid {
        id: String,
        package: String,
        message: String,
        help: String,
    },
    #[error("{id}: cannot resolve the Python dependencies of {package}:\n{message}\n  help: fix the requirement named above (pyproject.toml or requirements.txt); only wheels for Python {python} on {platform} can be installed")]
    DepsResolve {
        id: String,
        package: String,
        message: String,
        python: String,
        platform: String,
    },
    #[error("{id}: the package changed since the plan was made (source {planned} planned, {now} now)\n  help: make the plan again")]
    SourceChange {
        id: String,
        planned: String,
        now: String,
    },
}

/// A package prepared for building: everything but the base image's ID.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub context: Context,
    /// Hash of the context without the base ID: what a saved plan checks.
    pub source_hash: String,
    /// The single top-level directory the package was wrapped in, stripped.
    pub stripped: Option<String>,
    pub base: String,
    /// The command the image starts with, and why (the plan says it).
    pub entry: String,
}

fn text(ctx: &Context, path: &str) -> Option<String> {
    ctx.inline(path)
        .map(|b| String::from_utf8_lossy(b).to_string())
}

/// Reads the package, resolves its dependencies to wheels (cached), and lays out
/// the build context: `Dockerfile`, `app/` and `deps/`.
pub async fn prepare(
    input: &BuildInput,
    arch: &str,
    settings: &Settings,
) -> Result<Prepared, BuildError> {
    let pkg = package::read_cached(
        Path::new(&input.package),
        Limits::default(),
        Some(&settings.state_dir),
    )?;
    let shown = input.package.clone();
    let invalid = |e: recipe::RecipeError| BuildError::RecipeInvalid {
        id: input.id.clone(),
        package: shown.clone(),
        message: e.message,
        help: e.help,
    };
    let m = Manifests {
        paths: pkg.context.paths().cloned().collect(),
        pyproject: text(&pkg.context, "pyproject.toml"),
        requirements: text(&pkg.context, "requirements.txt"),
        package_json: text(&pkg.context, "package.json"),
    };
    let deps = recipe::deps(input.runtime, &input.extras, &m).map_err(invalid)?;
    let entry = recipe::entry(input.runtime, input.command.as_ref(), &m).map_err(invalid)?;
    let base = super::baseimage::runtime_tag(input.runtime, input.cuda.as_deref());
    let mut ctx = Context::default();
    ctx.add(
        "Dockerfile",
        0o644,
        recipe::dockerfile(&base, input.runtime, &deps, &entry.command).into_bytes(),
    );
    ctx.nest("app", &pkg.context);
    if let Deps::Python { requirements } = &deps {
        ctx.add(
            "deps/requirements.txt",
            0o644,
            requirements.clone().into_bytes(),
        );
        for (name, data) in wheels(input, requirements, arch, settings).await? {
            ctx.add_data(&format!("deps/wheels/{name}"), 0o644, data);
        }
    }
    let source_hash = ctx.hash();
    Ok(Prepared {
        context: ctx,
        source_hash,
        stripped: pkg.stripped,
        base,
        entry: entry.describe(),
    })
}

/// The full context: the prepared one plus the base image's ID, so a new base
/// rebuilds the service image. Its hash names the image.
pub fn with_base(prepared: &Prepared, base_id: &str) -> Context {
    let mut ctx = prepared.context.clone();
    ctx.add(
        "base.id",
        0o644,
        format!("{base_id}\nrecipe {RECIPE_VERSION}\n").into_bytes(),
    );
    ctx
}

/// `berth/<project>-<service>:<hash12>`: named by content, so versions built
/// from the same package share one image.
pub fn image_tag(project: &str, service: &str, context_hash: &str) -> String {
    format!("berth/{project}-{service}:{}", &context_hash[..12])
}

/// Wheels for the requirements, for the runtime's Python and the engine's
/// platform, downloaded with pip on the host once and cached by what decides them.
async fn wheels(
    input: &BuildInput,
    requirements: &str,
    arch: &str,
    settings: &Settings,
) -> Result<Vec<(String, Data)>, BuildError> {
    let py = input.runtime.python().unwrap_or("3.13");
    let platforms = recipe::wheel_platforms(arch);
    let key = crate::core::hash::sha256_hex(
        format!("{py}\n{}\n{requirements}", platforms.join(",")).as_bytes(),
    );
    let dir = settings
        .state_dir
        .join("wheels")
        .join(format!("py-{}", &key[..16]));
    let fail = |message: String| BuildError::DepsResolve {
        id: input.id.clone(),
        package: input.package.clone(),
        message,
        python: py.to_string(),
        platform: platforms[0].clone(),
    };
    if !dir.is_dir() {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| fail(e.to_string()))?;
        let req = tmp.join("requirements.txt");
        std::fs::write(&req, requirements).map_err(|e| fail(e.to_string()))?;
        let abi = format!("cp{}", py.replace('.', ""));
        let mut cmd = tokio::process::Command::new(&settings.python);
        cmd.args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
        ])
        .args([
            "--python-version",
            py,
            "--implementation",
            "cp",
            "--abi",
            &abi,
            "--abi",
            "abi3",
            "--abi",
            "none",
        ]);
        for p in &platforms {
            cmd.args(["--platform", p]);
        }
        cmd.arg("-d").arg(tmp.join("wheels")).arg("-r").arg(&req);
        let out = cmd
            .output()
            .await
            .map_err(|e| fail(format!("cannot run pip: {e}")))?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("ERROR")).collect();
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(fail(if lines.is_empty() {
                log.trim().to_string()
            } else {
                lines.join("\n")
            }));
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| fail(e.to_string()))?;
    }
    let machine = platforms[0]
        .rsplit('_')
        .next()
        .unwrap_or("x86_64")
        .to_string();
    let mut out = Vec::new();
    // Wheels can be large (torch is gigabytes): hashed once, then known by stamp.
    let mut cache: super::digests::Cache<String> =
        super::digests::Cache::open(Some(&settings.state_dir), &dir);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.join("wheels"))
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        // A native wheel for another architecture would fail only at run time.
        if !(name.ends_with("-any.whl") || name.contains(&machine)) {
            return Err(fail(format!(
                "wheel {name} is not for the engine's architecture ({arch})"
            )));
        }
        let meta = std::fs::metadata(&path).map_err(|e| fail(e.to_string()))?;
        let (digest, _) = cache
            .file_digest(&name, &path, &meta)
            .map_err(|e| fail(e.to_string()))?;
        out.push((
            name,
            Data::Stored {
                size: meta.len(),
                digest,
                from: super::context::Origin::File(path),
            },
        ));
    }
    cache.save();
    Ok(out)
}

/// Resolves a package path of the spec against the spec file's directory.
pub fn package_path(spec_file: &Path, package: &str) -> PathBuf {
    let dir = spec_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let p = dir.join(package);
    std::fs::canonicalize(&p).unwrap_or(p)
}
