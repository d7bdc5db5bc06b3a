//! Build contexts and image builds: one file list feeds both the content hash and
//! the tarball sent to the engine, so the two cannot disagree.

pub mod backend;
pub mod baseimage;
pub mod context;
pub mod digests;
pub mod layer;
pub mod package;
pub mod sdist;
pub mod wheels;

use std::collections::BTreeMap;

use crate::shell::engine::{BuildOptions, Engine, EngineError};
use crate::shell::settings::Settings;

/// The label that records what an image was built from.
pub const LABEL_CONTEXT_HASH: &str = "berth.context-hash";

pub use self::context::{normal_mode, Context, Data, Entry};

/// Whether `tag` was built (or had to be built) now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    Cached(String),
    Fresh(String),
}

/// How the line that says berth loaded a code layer (`build::layer`) starts.
pub const CODE_STEP: &str = "code layer: ";

/// Whether a build log line starts a step: BuildKit's `[2/3] RUN ...`, the
/// classic builder's `Step 2/3 : RUN ...`, or berth's code layer.
pub fn is_step(line: &str) -> bool {
    if line.starts_with(CODE_STEP) {
        return true;
    }
    let numbered = |s: &str| {
        s.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
    };
    match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        Some((n, _)) => numbered(n),
        None => line
            .strip_prefix("Step ")
            .and_then(|l| l.split_once(" : "))
            .is_some_and(|(n, _)| numbered(n)),
    }
}

/// Builds `tag` from `context` unless an image with that tag already records the
/// same context hash: an unchanged context is never rebuilt.
pub async fn ensure_image(
    engine: &dyn Engine,
    tag: &str,
    context: &Context,
    labels: BTreeMap<String, String>,
    on_line: impl FnMut(&str) + Send,
) -> Result<Built, EngineError> {
    ensure_image_with(
        engine,
        tag,
        context,
        labels,
        BuildOptions::default(),
        on_line,
    )
    .await
}

/// [`ensure_image`], built with `options` (offline).
pub async fn ensure_image_with(
    engine: &dyn Engine,
    tag: &str,
    context: &Context,
    mut labels: BTreeMap<String, String>,
    options: BuildOptions,
    mut on_line: impl FnMut(&str) + Send,
) -> Result<Built, EngineError> {
    let hash = context.hash();
    if is_built(engine, tag, &hash).await? {
        return Ok(Built::Cached(hash));
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
    let built = engine
        .build_image(tag, tarball, options, &mut on_line)
        .await;
    sent_whole(writer, tag).await?;
    built?;
    Ok(Built::Fresh(hash))
}

/// Whether the image `tag` records the context hash `hash`.
pub async fn is_built(engine: &dyn Engine, tag: &str, hash: &str) -> Result<bool, EngineError> {
    Ok(engine
        .image_labels(tag)
        .await?
        .is_some_and(|labels| labels.get(LABEL_CONTEXT_HASH).map(String::as_str) == Some(hash)))
}

/// Whether a tarball for `tag` was written whole. A context that could not be
/// read is the cause of a failure, whatever the engine made of the broken
/// stream (the engine hanging up first is the engine's error, said by it).
pub async fn sent_whole(
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    tag: &str,
) -> Result<(), EngineError> {
    match writer.await {
        Ok(Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(EngineError::ContextSend {
            tag: tag.to_string(),
            message: e.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The error for an image the engine does not have right after making it.
pub fn missing_after_build(tag: &str) -> EngineError {
    EngineError::ImageBuild {
        tag: tag.to_string(),
        message: "the engine has no such image after building it".into(),
    }
}

// ---------------------------------------------------------------------------
// Service images built from code packages.

use std::path::{Path, PathBuf};

use crate::core::desired::BuildInput;
use crate::core::recipe::{self, Deps, Manifests, RECIPE_VERSION};

use self::package::{Limits, PackageError};

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
    #[error("{id}: cannot resolve the Python dependencies of {package}:\n{message}\n  help: fix the requirement named above (pyproject.toml or requirements.txt); only wheels for Python {python} on {platform}, and source distributions that build with no compiler, can be installed")]
    DepsResolve {
        id: String,
        package: String,
        message: String,
        python: String,
        platform: String,
    },
    #[error(transparent)]
    SdistBuild(Box<SdistBuildError>),
    #[error("{id}: cannot install the Node dependencies of {package} from the npm registry {registry}:\n{message}\n  help: make the registry reachable from the engine's containers (berth passes npm_config_registry from its environment), or install them yourself (`npm install --omit=dev` in the package) and set `vendored: true`")]
    NodeDepsResolve {
        id: String,
        package: String,
        registry: String,
        message: String,
    },
    #[error("npm_config_registry `{registry}` carries credentials, which would be written into an image\n  help: name a registry without user or password; a registry that needs a login is not supported yet")]
    RegistryCredentials { registry: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{id}: the package changed since the plan was made (source {planned} planned, {now} now)\n  help: make the plan again")]
    SourceChange {
        id: String,
        planned: String,
        now: String,
    },
}

/// A dependency with no wheel whose source distribution did not build
/// (boxed in [`BuildError`]: it is the largest).
#[derive(Debug, thiserror::Error)]
#[error("{id}: {name} has no wheel for Python {python}, and building one from {file} failed:\n{message}\n  help: {help}")]
pub struct SdistBuildError {
    pub id: String,
    pub name: String,
    pub file: String,
    pub python: String,
    pub message: String,
    pub help: String,
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
    /// A Node package's dependencies image, built (once) before the service's.
    pub node: Option<NodeDeps>,
    /// The dependencies stage's Dockerfile, when the service has one
    /// (`build::layer` puts the code over it).
    pub deps_stage: Option<String>,
    /// What the image starts with: ENV, USER and CMD.
    pub settings: recipe::ImageSettings,
    /// The keeps' directories, as the code layer holds them (`recipe::keep_dirs`).
    pub keep_dirs: Vec<String>,
}

/// The image a Node package's dependencies are installed in: named by its
/// context (package.json, the lock file, the registry), so every version with
/// the same dependencies shares it, and an engine that has it builds offline.
#[derive(Debug, Clone)]
pub struct NodeDeps {
    pub tag: String,
    /// Without the base image's ID (added when built, as for services).
    pub context: Context,
    pub registry: String,
}

fn text(ctx: &Context, path: &str) -> Option<String> {
    ctx.inline(path)
        .map(|b| String::from_utf8_lossy(b).to_string())
}

/// Reads the package, resolves its dependencies to wheels (cached), and lays out
/// the build context: `Dockerfile`, `app/` and `deps/`.
pub async fn prepare(
    engine: &dyn Engine,
    project: &str,
    input: &BuildInput,
    arch: &str,
    settings: &Settings,
) -> Result<Prepared, BuildError> {
    let mut pkg = package::read_cached(
        Path::new(&input.package),
        Limits::default(),
        Some(&settings.state_dir),
        input.vendored,
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
        // The other files berth reads, at the package's top.
        files: package::INLINE
            .iter()
            .chain(&crate::core::entry::APP_FILES)
            .filter_map(|name| Some((name.to_string(), text(&pkg.context, name)?)))
            .collect(),
    };
    let deps = match recipe::deps(input.runtime, &input.extras, input.vendored, &m)
        .map_err(invalid)?
    {
        Deps::Backend { file } => {
            self::backend::python_deps(engine, project, input, &pkg.context, &file, arch, settings)
                .await?
        }
        deps => deps,
    };
    let entry = crate::core::entry::entry(input.runtime, input.command.as_ref(), &m, &deps)
        .map_err(invalid)?;
    let base = self::baseimage::runtime_tag(input.runtime, input.cuda.as_deref());
    let node = match &deps {
        Deps::Node { lock } => Some(node_deps(project, &pkg.context, &base, *lock, settings)?),
        _ => None,
    };
    if !input.vendored && !recipe::is_python(input.runtime) {
        // Installed dependencies come from the dependencies image, never from
        // what an archive happened to carry.
        pkg.context.retain(|p| !p.starts_with("node_modules/"));
    }
    let mut ctx = Context::default();
    ctx.add(
        "Dockerfile",
        0o644,
        recipe::dockerfile(
            &base,
            input.runtime,
            &deps,
            &entry.command,
            node.as_ref().map(|n| n.tag.as_str()),
            &input.keeps,
        )
        .into_bytes(),
    );
    ctx.nest("app", &pkg.context);
    if let Deps::Python { requirements, .. } = &deps {
        ctx.add(
            "deps/requirements.txt",
            0o644,
            requirements.clone().into_bytes(),
        );
        let wheels =
            self::wheels::wheels(engine, project, input, requirements, &m, arch, settings).await?;
        for (name, data) in wheels {
            ctx.add_data(&format!("deps/wheels/{name}"), 0o644, data);
        }
    }
    let source_hash = ctx.hash();
    Ok(Prepared {
        context: ctx,
        source_hash,
        stripped: pkg.stripped,
        deps_stage: recipe::deps_dockerfile(&base, &deps, node.as_ref().map(|n| n.tag.as_str())),
        settings: recipe::image_settings(input.runtime, &entry.command),
        keep_dirs: recipe::keep_dirs(&input.keeps),
        base,
        entry: match &deps {
            Deps::Python { from, .. } => format!("{}; dependencies from {from}", entry.describe()),
            _ => entry.describe(),
        },
        node,
    })
}

/// The dependencies image's context for a Node package: its Dockerfile,
/// package.json and the lock file.
fn node_deps(
    project: &str,
    app: &Context,
    base: &str,
    lock: bool,
    settings: &Settings,
) -> Result<NodeDeps, BuildError> {
    let registry = settings.npm_registry.clone();
    if reqwest::Url::parse(&registry)
        .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
    {
        return Err(BuildError::RegistryCredentials { registry });
    }
    let mut ctx = Context::default();
    ctx.add(
        "Dockerfile",
        0o644,
        recipe::node_deps_dockerfile(base, lock, &registry).into_bytes(),
    );
    for name in ["package.json", "package-lock.json"] {
        if let Some(Entry::File { mode, data }) = app.get(name) {
            ctx.add_data(name, *mode, data.clone());
        }
    }
    // A repository of its own: no service's images can share its name.
    let tag = format!(
        "{}{project}:{}",
        crate::core::retain::DEPS_REPOSITORY,
        &ctx.hash()[..12]
    );
    Ok(NodeDeps {
        tag,
        context: ctx,
        registry,
    })
}

/// Makes sure a Node package's dependencies image exists for this base, and
/// returns its ID: npm runs once per set of dependencies, with no retries, so an
/// unreachable registry fails in seconds naming the registry.
pub async fn ensure_node_deps(
    engine: &dyn Engine,
    project: &str,
    input: &BuildInput,
    deps: &NodeDeps,
    base_id: &str,
) -> Result<String, BuildError> {
    let mut ctx = deps.context.clone();
    ctx.add(
        "base.id",
        0o644,
        format!("{base_id}\nrecipe {RECIPE_VERSION}\n").into_bytes(),
    );
    let labels = BTreeMap::from([
        (
            crate::core::desired::LABEL_PROJECT.to_string(),
            project.to_string(),
        ),
        ("berth.role".to_string(), "dependencies".to_string()),
    ]);
    let mut npm_lines: Vec<String> = Vec::new();
    let mut added = None;
    let mut started = false;
    let built = ensure_image(engine, &deps.tag, &ctx, labels, |line| {
        if !std::mem::replace(&mut started, true) {
            crate::say::info(&format!(
                "  {}: installing Node dependencies from {} (npm, in {})",
                input.id, deps.registry, deps.tag
            ));
        }
        let line = line.trim_end();
        if let Some(rest) = line
            .strip_prefix("npm error")
            .or_else(|| line.strip_prefix("npm ERR!"))
        {
            // npm's advice on proxies, its stack frames and its log inside the
            // build container are no help here; the code and the failed
            // request are.
            let said = rest.trim();
            let boilerplate = said.is_empty()
                || rest.starts_with("  ")
                || said == "}"
                || said.ends_with('{')
                || said.contains("proxy")
                || said.starts_with("syscall")
                || said.starts_with("errno")
                || said.starts_with("A complete log")
                || (said.starts_with("network") && !said.contains("request to"));
            if !boilerplate {
                npm_lines.push(line.to_string());
            }
        } else if line.starts_with("added ") {
            added = Some(line.to_string());
        }
    })
    .await;
    match built {
        Ok(built) => {
            if let (Built::Fresh(_), Some(added)) = (built, added) {
                crate::say::info(&format!("  {}: npm {added}", input.id));
            }
        }
        Err(EngineError::ImageBuild { message, .. }) => {
            return Err(BuildError::NodeDepsResolve {
                id: input.id.clone(),
                package: input.package.clone(),
                registry: deps.registry.clone(),
                message: if npm_lines.is_empty() {
                    message
                } else {
                    npm_lines.join("\n")
                },
            })
        }
        Err(e) => return Err(e.into()),
    }
    engine
        .image_id(&deps.tag)
        .await?
        .ok_or_else(|| missing_after_build(&deps.tag).into())
}

/// The full context: the prepared one plus the base image's ID (and the Node
/// dependencies image's), so a new base rebuilds the service image. Its hash
/// names the image.
pub fn with_base(prepared: &Prepared, base_id: &str, deps_id: Option<&str>) -> Context {
    let mut ctx = prepared.context.clone();
    let deps = deps_id.map(|d| format!("deps {d}\n")).unwrap_or_default();
    ctx.add(
        "base.id",
        0o644,
        format!("{base_id}\nrecipe {RECIPE_VERSION}\n{deps}").into_bytes(),
    );
    ctx
}

/// `berth/<project>-<service>:<hash12>`: named by content, so versions built
/// from the same package share one image.
/// On a swarm the tag names the registry, so a push needs no second tag.
pub fn image_tag(input: &BuildInput, project: &str, service: &str, context_hash: &str) -> String {
    let registry = input
        .registry
        .as_ref()
        .map(|r| format!("{r}/"))
        .unwrap_or_default();
    format!(
        "{registry}berth/{project}-{service}:{}",
        &context_hash[..12]
    )
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
