//! Build recipes: from a package's file list and manifests to the Dockerfile that
//! builds its image. Pure: the shell reads the files and runs the build.
//!
//! Layers, top to bottom: the runtime base; the dependencies (their own layer, so
//! a code-only change reuses it from the engine's cache); the code; a non-root user.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::Runtime;

/// Bumped whenever the generated Dockerfile changes shape: part of every image hash.
pub const RECIPE_VERSION: u32 = 3;

/// The uid/gid services run as inside built images (the base images create it).
pub const APP_UID: u32 = 10001;

/// The manifests of a package that decide how it is built and started.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Every path in the package.
    pub paths: Vec<String>,
    pub pyproject: Option<String>,
    pub requirements: Option<String>,
    pub package_json: Option<String>,
}

/// What a package needs installed, as the build will install it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deps {
    None,
    /// requirements.txt lines for pip, from pyproject.toml or requirements.txt.
    Python {
        requirements: String,
    },
    /// npm dependencies from package.json (and its lock file, when present),
    /// installed at plan time into a dependencies image of their own.
    Node {
        lock: bool,
    },
    /// `node_modules` shipped in the package (`vendored: true`): nothing installed.
    NodeVendored,
}

/// A build recipe problem: the message names the package; the help says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeError {
    pub message: String,
    pub help: String,
}

fn err(message: impl Into<String>, help: impl Into<String>) -> RecipeError {
    RecipeError {
        message: message.into(),
        help: help.into(),
    }
}

pub fn is_python(r: Runtime) -> bool {
    !matches!(r, Runtime::Node20 | Runtime::Node22)
}

#[derive(Deserialize, Default)]
struct PyProject {
    #[serde(default)]
    project: PyProjectTable,
}

#[derive(Deserialize, Default)]
struct PyProjectTable {
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default, rename = "optional-dependencies")]
    optional: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    scripts: BTreeMap<String, String>,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
}

#[derive(Deserialize, Default)]
struct PackageJson {
    main: Option<String>,
    #[serde(default)]
    scripts: BTreeMap<String, String>,
    #[serde(default)]
    dependencies: BTreeMap<String, serde_json::Value>,
}

fn pyproject(m: &Manifests) -> Result<Option<PyProject>, RecipeError> {
    m.pyproject
        .as_deref()
        .map(|t| {
            toml::from_str(t).map_err(|e| {
                err(
                    format!("pyproject.toml does not parse: {e}"),
                    "fix pyproject.toml (PEP 621 `[project]` table)",
                )
            })
        })
        .transpose()
}

fn package_json(m: &Manifests) -> Result<Option<PackageJson>, RecipeError> {
    m.package_json
        .as_deref()
        .map(|t| {
            serde_json::from_str(t).map_err(|e| {
                err(
                    format!("package.json does not parse: {e}"),
                    "fix package.json",
                )
            })
        })
        .transpose()
}

/// Whether some release of the runtime's Python (`3.12.0` to `3.12.99`; the
/// base decides the patch level) meets pyproject.toml's `requires-python`.
fn python_fits(python: &str, spec: &pep440_rs::VersionSpecifiers) -> bool {
    use std::str::FromStr;
    ["0", "99"].iter().any(|patch| {
        pep440_rs::Version::from_str(&format!("{python}.{patch}")).is_ok_and(|v| spec.contains(&v))
    })
}

fn requires_python(runtime: Runtime, text: &str) -> Result<(), RecipeError> {
    use std::str::FromStr;
    let spec = pep440_rs::VersionSpecifiers::from_str(text).map_err(|e| {
        err(
            format!("pyproject.toml's requires-python `{text}` does not parse: {e}"),
            "write it as PEP 440 specifiers, for example `>=3.11`",
        )
    })?;
    let python = runtime.python().unwrap_or_default();
    if python_fits(python, &spec) {
        return Ok(());
    }
    let fitting: Vec<&str> = Runtime::ALL
        .iter()
        .filter(|r| !r.is_cuda() && r.python().is_some_and(|p| python_fits(p, &spec)))
        .map(|r| r.name())
        .collect();
    Err(err(
        format!(
            "runtime {} (Python {python}) is outside the package's requires-python `{text}` (pyproject.toml)",
            runtime.name()
        ),
        if fitting.is_empty() {
            "no runtime berth offers fits it: change requires-python".to_string()
        } else {
            format!("use runtime {} (or change requires-python)", fitting.join(" or "))
        },
    ))
}

/// The dependencies to install: PEP 621 `dependencies` plus the named `extras`
/// groups of pyproject.toml, else requirements.txt; for Node, package.json's.
pub fn deps(
    runtime: Runtime,
    extras: &[String],
    vendored: bool,
    m: &Manifests,
) -> Result<Deps, RecipeError> {
    if !is_python(runtime) {
        if !extras.is_empty() {
            return Err(err(
                "`extras` applies to Python packages only",
                "remove `extras`",
            ));
        }
        let pj = package_json(m)?;
        if vendored {
            if !m.paths.iter().any(|p| p.starts_with("node_modules/")) {
                return Err(err(
                    "`vendored: true`, but the package has no node_modules/ at its top",
                    "run `npm install --omit=dev` in the package before packaging it, or remove `vendored` to let berth install the dependencies",
                ));
            }
            return Ok(Deps::NodeVendored);
        }
        return Ok(match pj {
            Some(p) if !p.dependencies.is_empty() => Deps::Node {
                lock: m.paths.iter().any(|p| p == "package-lock.json"),
            },
            _ => Deps::None,
        });
    }
    let mut lines: Vec<String> = Vec::new();
    if let Some(py) = pyproject(m)? {
        if let Some(spec) = &py.project.requires_python {
            requires_python(runtime, spec)?;
        }
        lines.extend(py.project.dependencies.iter().cloned());
        for extra in extras {
            match py.project.optional.get(extra) {
                Some(group) => lines.extend(group.iter().cloned()),
                None => {
                    let known: Vec<&String> = py.project.optional.keys().collect();
                    return Err(err(
                        format!("extra `{extra}` is not an optional-dependencies group of pyproject.toml"),
                        format!("use one of {known:?}, or add `[project.optional-dependencies] {extra} = [...]`"),
                    ));
                }
            }
        }
    } else if !extras.is_empty() {
        return Err(err(
            "`extras` needs a pyproject.toml with `[project.optional-dependencies]`",
            "add pyproject.toml, or remove `extras`",
        ));
    }
    if lines.is_empty() {
        if let Some(req) = &m.requirements {
            lines.extend(
                req.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    if lines.is_empty() {
        return Ok(Deps::None);
    }
    let mut requirements = lines.join("\n");
    requirements.push('\n');
    Ok(Deps::Python { requirements })
}

/// The command a built service starts with, and why that one: the plan says both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    pub command: Vec<String>,
    pub why: String,
}

impl EntryPoint {
    /// `starts with `python3 hello.py`: hello.py is the only top-level Python file`.
    pub fn describe(&self) -> String {
        format!("starts with `{}`: {}", self.command.join(" "), self.why)
    }
}

/// Files that sit at a package's top level without being its entry point.
const NOT_ENTRY: [&str; 6] = [
    "setup.py",
    "conftest.py",
    "noxfile.py",
    "fabfile.py",
    "manage.py",
    "gunicorn.conf.py",
];

/// The command a built service starts with: the spec's `command`; else one
/// conventional entry file; else the package's declared script; else its only
/// top-level source file. Ambiguity or absence is an error, never a guess, and
/// a layout berth does not build from (a virtual environment, wheels only) is
/// named as such.
pub fn entry(
    runtime: Runtime,
    command: Option<&Vec<String>>,
    m: &Manifests,
) -> Result<EntryPoint, RecipeError> {
    let ep = |command: Vec<String>, why: String| Ok(EntryPoint { command, why });
    if let Some(c) = command {
        return ep(c.clone(), "the `command` of services.yaml".into());
    }
    let has = |p: &str| m.paths.iter().any(|x| x == p);
    let python = is_python(runtime);
    type Run = fn(&str) -> Vec<String>;
    let (files, run, kind, exts): (&[&str], Run, &str, &[&str]) = if python {
        (
            &["main.py", "app.py", "server.py"],
            |f| vec!["python3".into(), f.into()],
            "Python",
            &[".py"],
        )
    } else {
        (
            &["server.js", "index.js", "main.js"],
            |f| vec!["node".into(), f.into()],
            "JavaScript",
            &[".js", ".mjs", ".cjs"],
        )
    };
    let found: Vec<&&str> = files.iter().filter(|f| has(f)).collect();
    match found.as_slice() {
        [one] => return ep(run(one), format!("{one} is a conventional entry file")),
        [_, _, ..] => {
            let names: Vec<&str> = found.iter().map(|f| **f).collect();
            return Err(err(
                format!(
                    "the entry point is ambiguous: the package has {}",
                    names.join(" and ")
                ),
                "set `command:` in services.yaml to say which one starts the service",
            ));
        }
        [] => {}
    }
    if python {
        if let Some(py) = pyproject(m)? {
            let scripts: Vec<(&String, &String)> = py.project.scripts.iter().collect();
            match scripts.as_slice() {
                [(name, target)] => {
                    let (module, func) = target.split_once(':').unwrap_or((target.as_str(), "main"));
                    return ep(
                        vec!["python3".into(), "-c".into(), format!("import {module}; {module}.{func}()")],
                        format!("`{name}` is the one script pyproject.toml declares"),
                    );
                }
                [_, _, ..] => {
                    return Err(err(
                        "the entry point is ambiguous: pyproject.toml declares several `[project.scripts]`",
                        "set `command:` in services.yaml",
                    ))
                }
                [] => {}
            }
        }
    } else if let Some(pj) = package_json(m)? {
        if let Some(main) = pj.main {
            return ep(
                vec!["node".into(), main],
                "the `main` of package.json".into(),
            );
        }
        if pj.scripts.contains_key("start") {
            return ep(
                vec!["npm".into(), "start".into()],
                "the `start` script of package.json".into(),
            );
        }
    }
    // As the platforms berth replaces do: a package with one top-level source
    // file runs it.
    let top: Vec<&String> = m
        .paths
        .iter()
        .filter(|p| !p.contains('/') && exts.iter().any(|e| p.ends_with(e)))
        .filter(|p| !NOT_ENTRY.contains(&p.as_str()) && !p.starts_with("test_"))
        .collect();
    match top.as_slice() {
        [one] => return ep(run(one), format!("{one} is the only top-level {kind} file")),
        [_, _, ..] => {
            let names: Vec<&str> = top.iter().map(|p| p.as_str()).collect();
            return Err(err(
                format!(
                    "no entry point: no `command`, no conventional entry file ({}), and several top-level {kind} files: {}",
                    files.join(", "),
                    names.join(", ")
                ),
                format!("set `command:` in services.yaml, for example `command: [{}]`", run(names[0]).join(", ")),
            ));
        }
        [] => {}
    }
    if let Some(layout) = foreign_layout(m) {
        return Err(err(
            format!("the package is {layout}, which berth does not run as it is"),
            if python {
                "package the source instead: the .py files with requirements.txt or pyproject.toml at the top (`berth package DIR` leaves virtual environments out); berth builds the environment itself"
            } else {
                "package the source instead: package.json and the .js files at the top; berth installs the dependencies itself (or ships node_modules when the service says so)"
            },
        ));
    }
    let conventional = files.join(", ");
    Err(err(
        format!("no entry point: no `command`, none of {conventional}, no declared script, and no top-level {kind} file"),
        format!("add one of {conventional} to the package, or set `command:` in services.yaml"),
    ))
}

/// A layout berth recognises but does not build from: a virtual environment, or
/// built wheels without their source.
fn foreign_layout(m: &Manifests) -> Option<String> {
    let venv = m.paths.iter().find_map(|p| {
        let parts: Vec<&str> = p.split('/').collect();
        let at = parts.iter().position(|s| *s == "pyvenv.cfg")?;
        Some(if at == 0 {
            ".".to_string()
        } else {
            parts[..at].join("/")
        })
    });
    if let Some(dir) = venv {
        return Some(if dir == "." {
            "a Python virtual environment (pyvenv.cfg at its top)".to_string()
        } else {
            format!("carrying a Python virtual environment ({dir}/pyvenv.cfg) and no source berth can start")
        });
    }
    let wheels: Vec<&String> = m.paths.iter().filter(|p| p.ends_with(".whl")).collect();
    if !wheels.is_empty() {
        return Some(format!("built wheels ({}) without their source", wheels[0]));
    }
    None
}

/// How long npm may wait for one answer of the registry. No retries: an
/// unreachable registry is a plan error in seconds, not minutes of backoff.
pub const NPM_FETCH_TIMEOUT_MS: u32 = 30_000;

/// The Dockerfile of a Node dependencies image: package.json (and the lock
/// file) installed in the runtime's base, with the registry named.
pub fn node_deps_dockerfile(base: &str, lock: bool, registry: &str) -> String {
    let install = if lock { "ci" } else { "install" };
    format!(
        "# generated by berth (recipe {RECIPE_VERSION}): Node dependencies\n\
         FROM {base}\n\
         COPY --chown={APP_UID}:{APP_UID} package.json package-lock.jso[n] /app/\n\
         RUN npm {install} --omit=dev --no-audit --no-fund --no-update-notifier \\\n \
         --fetch-retries=0 --fetch-timeout={NPM_FETCH_TIMEOUT_MS} --cache /tmp/npm-cache \\\n \
         --registry={registry} \\\n \
         && rm -rf /tmp/npm-cache\n"
    )
}

/// The directory of a build context (and of the image) that holds the code.
pub const CODE_DIR: &str = "app/";

/// The settings a service image starts with, over its parent's: what the
/// Dockerfile's ENV, USER and CMD lines say, and what berth writes into the
/// config of an image it assembles itself (`core::assemble`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSettings {
    /// Put before the parent's PATH (a Python venv's `bin`).
    pub path_prefix: Option<String>,
    /// `uid:gid`.
    pub user: String,
    pub cmd: Vec<String>,
}

/// The settings of a service image for `runtime` started with `cmd`.
pub fn image_settings(runtime: Runtime, cmd: &[String]) -> ImageSettings {
    ImageSettings {
        path_prefix: is_python(runtime).then(|| "/app/.venv/bin".to_string()),
        user: format!("{APP_UID}:{APP_UID}"),
        cmd: cmd.to_vec(),
    }
}

/// The dependencies stage of a service image, when it has one: the base with
/// the dependencies installed. The engine builds it (and caches it by its own
/// context, without the code); berth puts the code on top as one layer.
pub fn deps_dockerfile(base: &str, deps: &Deps, node_deps: Option<&str>) -> Option<String> {
    let install = deps_install(deps, node_deps)?;
    Some(format!(
        "# generated by berth (recipe {RECIPE_VERSION}): dependencies\nFROM {base}\n{install}"
    ))
}

/// The Dockerfile lines that install the dependencies over the base.
fn deps_install(deps: &Deps, node_deps: Option<&str>) -> Option<String> {
    Some(match deps {
        Deps::None | Deps::NodeVendored => return None,
        // The wheels are mounted from the build context for the install only
        // (BuildKit), so they never reach a layer and the venv is written once.
        // (A second stage and a copy of the venv cost a cold build a third more.)
        Deps::Python { .. } => "RUN --mount=type=bind,source=deps,target=/tmp/deps \\\n \
             python3 -m venv /app/.venv \\\n \
             && /app/.venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \\\n      \
             --find-links /tmp/deps/wheels -r /tmp/deps/requirements.txt\n"
            .to_string(),
        Deps::Node { .. } => format!(
            "COPY --from={} /app/node_modules /app/node_modules\n",
            node_deps?
        ),
    })
}

/// The Dockerfile of a service image: what its hash covers, and what the
/// engine builds where it cannot load an image berth assembled. Paths in the
/// build context: `app/` holds the package, `deps/` the dependency files
/// (wheels and requirements.txt for Python). A Node package with dependencies
/// copies them from `node_deps`, its dependencies image (root-owned: the
/// service cannot change its own dependencies).
pub fn dockerfile(
    base: &str,
    runtime: Runtime,
    deps: &Deps,
    cmd: &[String],
    node_deps: Option<&str>,
) -> String {
    let mut d = format!("# generated by berth (recipe {RECIPE_VERSION})\nFROM {base}\n");
    if let Some(install) = deps_install(deps, node_deps) {
        d.push_str(&install);
    }
    // Everything but the code comes first, so a code-only change rebuilds one
    // layer; the base already sets WORKDIR /app, the app user and the init.
    let settings = image_settings(runtime, cmd);
    if let Some(prefix) = &settings.path_prefix {
        d.push_str(&format!("ENV PATH={prefix}:$PATH\n"));
    }
    let cmd_json = serde_json::to_string(&settings.cmd).expect("strings serialize");
    d.push_str(&format!("USER {}\nCMD {cmd_json}\n", settings.user));
    d.push_str(&format!(
        "COPY --chown={APP_UID}:{APP_UID} {CODE_DIR} /{CODE_DIR}\n"
    ));
    d
}
