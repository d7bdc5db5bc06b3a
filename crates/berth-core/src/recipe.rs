//! Build recipes: from a package's file list and manifests to the Dockerfile that
//! builds its image. Pure: the shell reads the files and runs the build.
//!
//! Layers, top to bottom: the runtime base; the dependencies (their own layer, so
//! a code-only change reuses it from the engine's cache); the code; a non-root user.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layout;
use super::spec::Runtime;

pub(crate) use super::manifest::err;
pub use super::manifest::{Manifests, RecipeError, RECIPE_VERSION};

/// The uid/gid services run as inside built images (the base images create it).
pub const APP_UID: u32 = 10001;

/// What a package needs installed, as the build will install it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deps {
    None,
    /// requirements.txt lines for pip, from pyproject.toml or requirements.txt.
    Python {
        requirements: String,
        /// Where they came from (`uv.lock (12 locked versions)`), for the plan.
        #[serde(default)]
        from: String,
    },
    /// npm dependencies from package.json (and its lock file, when present),
    /// installed at plan time into a dependencies image of their own.
    Node {
        lock: bool,
    },
    /// `node_modules` shipped in the package (`vendored: true`): nothing installed.
    NodeVendored,
    /// Python dependencies only the project's build backend can tell
    /// (`layout::backend`): the shell asks it and makes them `Python`
    /// before anything is built, so no plan or image ever holds this.
    Backend {
        /// The file that computes them, for the plan line.
        file: String,
    },
}

pub fn is_python(r: Runtime) -> bool {
    !matches!(r, Runtime::Node20 | Runtime::Node22)
}

#[derive(Deserialize, Default)]
pub(crate) struct PyProject {
    #[serde(default)]
    pub(crate) project: PyProjectTable,
}

#[derive(Deserialize, Default)]
pub(crate) struct PyProjectTable {
    #[serde(default)]
    pub(crate) dependencies: Vec<String>,
    #[serde(default, rename = "optional-dependencies")]
    pub(crate) optional: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(crate) scripts: BTreeMap<String, String>,
    #[serde(default, rename = "requires-python")]
    pub(crate) requires_python: Option<String>,
    #[serde(default)]
    pub(crate) dynamic: Vec<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct PackageJson {
    pub(crate) main: Option<String>,
    #[serde(default)]
    pub(crate) scripts: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) dependencies: BTreeMap<String, serde_json::Value>,
}

pub(crate) fn pyproject(m: &Manifests) -> Result<Option<PyProject>, RecipeError> {
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

pub(crate) fn package_json(m: &Manifests) -> Result<Option<PackageJson>, RecipeError> {
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
    python_deps(runtime, extras, m)
}

/// The scripts a Python project declares: PEP 621 `[project.scripts]`, else
/// Poetry's `[tool.poetry.scripts]`, else setup.cfg's `console_scripts`, as
/// (name, `module:function`, the file that says so).
pub(crate) fn python_scripts(
    m: &Manifests,
) -> Result<Vec<(String, String, &'static str)>, RecipeError> {
    if let Some(py) = pyproject(m)? {
        if !py.project.scripts.is_empty() {
            return Ok(py
                .project
                .scripts
                .into_iter()
                .map(|(n, t)| (n, t, "pyproject.toml"))
                .collect());
        }
    }
    let raw: Option<toml::Table> = m.pyproject.as_deref().and_then(|t| t.parse().ok());
    let poetry = raw.as_ref().and_then(|r| {
        r.get("tool")?
            .get("poetry")?
            .get("scripts")?
            .as_table()
            .cloned()
    });
    if let Some(scripts) = poetry.filter(|s| !s.is_empty()) {
        return Ok(scripts
            .into_iter()
            .filter_map(|(n, v)| {
                let target = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Table(t) => t.get("callable")?.as_str()?.to_string(),
                    _ => return None,
                };
                Some((n, target, "pyproject.toml (Poetry)"))
            })
            .collect());
    }
    let cfg = m
        .file("setup.cfg")
        .map(layout::setup_cfg)
        .unwrap_or_default();
    let lines = cfg
        .get(&(
            "options.entry_points".to_string(),
            "console_scripts".to_string(),
        ))
        .cloned()
        .unwrap_or_default();
    Ok(lines
        .iter()
        .filter_map(|l| {
            let (n, t) = l.split_once('=')?;
            Some((n.trim().to_string(), t.trim().to_string(), "setup.cfg"))
        })
        .collect())
}

/// The Python rule of [`deps`]: the first source of `core::layout`'s list
/// that applies.
fn python_deps(runtime: Runtime, extras: &[String], m: &Manifests) -> Result<Deps, RecipeError> {
    let py = pyproject(m)?;
    let raw: Option<toml::Table> = m.pyproject.as_deref().and_then(|t| t.parse().ok());
    python_version_fits(runtime, py.as_ref(), raw.as_ref())?;
    let chosen = match declared_deps(extras, m, py.as_ref(), raw.as_ref())? {
        Declared::Found(found) => found,
        Declared::Backend(file) => return Ok(Deps::Backend { file }),
    };
    let lines: Vec<String> = chosen
        .lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return Ok(Deps::None);
    }
    let mut requirements = lines.join("\n");
    requirements.push('\n');
    Ok(Deps::Python {
        requirements,
        from: chosen.from,
    })
}

/// Poetry's table `[tool.poetry.KEY]` of a pyproject.toml.
fn poetry_table<'t>(raw: Option<&'t toml::Table>, key: &str) -> Option<&'t toml::Table> {
    raw?.get("tool")?.get("poetry")?.get(key)?.as_table()
}

/// The runtime's Python against what the project asks: PEP 621's
/// `requires-python`, else Poetry's `python` dependency.
fn python_version_fits(
    runtime: Runtime,
    py: Option<&PyProject>,
    raw: Option<&toml::Table>,
) -> Result<(), RecipeError> {
    let poetry = |key: &str| poetry_table(raw, key);
    if let Some(spec) = py.and_then(|p| p.project.requires_python.as_ref()) {
        requires_python(runtime, spec)?;
    } else if let Some(range) = poetry("dependencies")
        .and_then(|d| d.get("python"))
        .and_then(|v| v.as_str())
    {
        if let Ok(spec) = layout::poetry_constraint(range) {
            requires_python(runtime, &spec)?;
        }
    }
    Ok(())
}

/// Where a project's dependencies are declared.
enum Declared {
    Found(layout::Found),
    /// Only its build backend can tell (a computed setup.py, `dynamic`).
    Backend(String),
}

/// The first of the documented sources that has them: a lock file, PEP 621,
/// Poetry, a Pipfile, requirements.txt, setup.cfg, a literal setup.py.
fn declared_deps(
    extras: &[String],
    m: &Manifests,
    py: Option<&PyProject>,
    raw: Option<&toml::Table>,
) -> Result<Declared, RecipeError> {
    let poetry = |key: &str| poetry_table(raw, key);
    let found = |lines: Vec<String>, from: &str, file: &'static str| layout::Found {
        lines,
        from: from.to_string(),
        file,
    };
    let files = |p: &str| m.file(p);
    let project = py.map(|p| &p.project);
    let pep621 = project.is_some_and(|p| !p.dependencies.is_empty() || !p.optional.is_empty());
    let cfg = m
        .file("setup.cfg")
        .map(layout::setup_cfg)
        .unwrap_or_default();
    let cfg_get = |section: &str, key: &str| cfg.get(&(section.to_string(), key.to_string()));
    let chosen = if let Some(locked) = layout::locked(&files, extras)? {
        locked
    } else if pep621 {
        let p = project.expect("pep621 means a [project] table");
        let mut lines = p.dependencies.clone();
        for extra in extras {
            match p.optional.get(extra) {
                Some(group) => lines.extend(group.iter().cloned()),
                None => {
                    let known: Vec<&String> = p.optional.keys().collect();
                    return Err(err(
                        format!("extra `{extra}` is not an optional-dependencies group of pyproject.toml"),
                        format!("use one of {known:?}, or add `[project.optional-dependencies] {extra} = [...]`"),
                    ));
                }
            }
        }
        found(lines, "pyproject.toml", "pyproject.toml")
    } else if let Some(table) = poetry("dependencies") {
        for extra in extras {
            if poetry("extras").and_then(|e| e.get(extra)).is_none() {
                return Err(err(
                    format!("extra `{extra}` is not an extra of pyproject.toml (`[tool.poetry.extras]`)"),
                    format!("add `{extra} = [...]` under `[tool.poetry.extras]`, or remove it from `extras`"),
                ));
            }
        }
        found(
            layout::poetry_lines(table, poetry("extras"), extras)?,
            "pyproject.toml (Poetry)",
            "pyproject.toml",
        )
    } else {
        if !extras.is_empty() && cfg_get("options.extras_require", &extras[0]).is_none() {
            return Err(err(
                "`extras` needs a pyproject.toml with `[project.optional-dependencies]` (or Poetry's extras, or setup.cfg's `extras_require`) naming it",
                "add the group, or remove `extras`",
            ));
        }
        if let Some(text) = m.file("Pipfile") {
            found(layout::pipfile_lines(text)?, "Pipfile", "Pipfile")
        } else if let Some(req) = &m.requirements {
            let lines = req
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            found(lines, "requirements.txt", "requirements.txt")
        } else if let Some(list) = cfg_get("options", "install_requires") {
            let mut lines = list.clone();
            for extra in extras {
                lines.extend(
                    cfg_get("options.extras_require", extra)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            found(lines, "setup.cfg", "setup.cfg")
        } else if let Some(text) = m.file("setup.py") {
            match layout::setup_py(text) {
                Some(lines) => found(lines, "setup.py", "setup.py"),
                None if text.contains("install_requires") => {
                    return Ok(Declared::Backend("setup.py".into()))
                }
                None => found(Vec::new(), "setup.py", "setup.py"),
            }
        } else if project.is_some_and(|p| p.dynamic.iter().any(|d| d == "dependencies")) {
            return Ok(Declared::Backend("pyproject.toml (`dynamic`)".into()));
        } else {
            found(Vec::new(), "", "requirements.txt")
        }
    };
    Ok(Declared::Found(chosen))
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
        Deps::None | Deps::NodeVendored | Deps::Backend { .. } => return None,
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
    keeps: &[String],
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
    let dirs = keep_dirs(keeps);
    if !dirs.is_empty() {
        // The exec form: a keep path reaches no shell.
        let exec = |args: Vec<String>| serde_json::to_string(&args).expect("strings serialize");
        let paths = dirs.iter().map(|d| format!("/{d}"));
        let mkdir = exec(
            ["mkdir", "-p", "--"]
                .map(String::from)
                .into_iter()
                .chain(paths.clone())
                .collect(),
        );
        let owner = format!("{APP_UID}:{APP_UID}");
        let chown = exec(
            ["chown".to_string(), owner, "--".into()]
                .into_iter()
                .chain(paths)
                .collect(),
        );
        d.push_str(&format!(
            "USER 0:0\nRUN {mkdir}\nRUN {chown}\nUSER {}\n",
            settings.user
        ));
    }
    d
}

/// The directories of an image where the service's keeps are mounted, as
/// layer paths (`data/` for `/data`): each is in the image, owned by the app
/// user, so that the engine, which gives an empty volume the owner and
/// contents of the directory it is mounted on, hands the service a keep it
/// can write on first use (on one host and on every swarm node alike). Only
/// the last directory is the app user's; the ones above it stay the base's.
pub fn keep_dirs(keeps: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = keeps
        .iter()
        .map(|k| k.trim_matches('/'))
        .filter(|k| !k.is_empty())
        .map(|k| format!("{k}/"))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}
