//! The entry-point rule: the command a service built from code starts with,
//! and why that one (the plan line says both). Rules in order, the first
//! that applies wins; ambiguity or absence is an error, never a guess:
//!
//! 1. the `command` of services.yaml;
//! 2. the `web:` line of a `Procfile` (run by `sh -c`, so `$PORT` expands);
//! 3. Python: a WSGI/ASGI app (`app`, `application`: an object or a bare
//!    callable) at the top of an
//!    entry file that does not start itself, served by gunicorn or uvicorn
//!    from the dependencies, on `0.0.0.0:$PORT`;
//! 4. one conventional entry file (`main.py`, `app.py`, `server.py`;
//!    `server.js`, `index.js`, `main.js`);
//! 5. the one script pyproject.toml declares (PEP 621 or Poetry); Node: the
//!    `main` of package.json, else its `start` script;
//! 6. Python: `python -m PACKAGE` for the one top-level package with a
//!    `__main__.py` (or under `src/`, the src layout: `/app/src` is then on
//!    PYTHONPATH, as it is for a script whose package is there);
//! 7. the only top-level source file.

use super::recipe::{self, err, is_python, Deps, Manifests, RecipeError};
use super::spec::Runtime;

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

/// The files a WSGI/ASGI app object is looked for in (read by the shell:
/// `package::INLINE` holds each of them in memory).
pub const APP_FILES: [&str; 7] = [
    "main.py",
    "app.py",
    "server.py",
    "wsgi.py",
    "asgi.py",
    "api.py",
    "application.py",
];

/// Frameworks whose app object is an ASGI application (served by uvicorn);
/// any other app object is taken for WSGI (served by gunicorn).
const ASGI: [&str; 6] = [
    "fastapi",
    "starlette",
    "quart",
    "litestar",
    "sanic",
    "django.core.asgi",
];

/// `$PORT` and `${PORT}` in a list-form command, replaced by the service's
/// port (no shell runs a list-form command, so nothing else would expand
/// them); `$$PORT` is a literal `$PORT`. Nothing else is expanded.
pub fn expand_port(command: &[String], port: u16) -> Vec<String> {
    command
        .iter()
        .map(|arg| {
            let mut out = String::new();
            let mut rest = arg.as_str();
            while let Some(at) = rest.find('$') {
                out.push_str(&rest[..at]);
                let tail = &rest[at..];
                let word_ends =
                    |s: &str| !s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                if let Some(after) = tail.strip_prefix("$$PORT") {
                    out.push_str("$PORT");
                    rest = after;
                } else if let Some(after) = tail.strip_prefix("${PORT}") {
                    out.push_str(&port.to_string());
                    rest = after;
                } else if let Some(after) = tail.strip_prefix("$PORT").filter(|a| word_ends(a)) {
                    out.push_str(&port.to_string());
                    rest = after;
                } else {
                    out.push('$');
                    rest = &tail[1..];
                }
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The distribution names a requirements text installs, normalised
/// (lowercase, `-` for `_` and `.`).
pub fn requirement_names(requirements: &str) -> Vec<String> {
    requirements
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '-']))
        .map(|l| {
            let end = l
                .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                .unwrap_or(l.len());
            l[..end].to_ascii_lowercase().replace(['_', '.'], "-")
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The command a built service starts with: the first rule of this module's
/// list that applies. A layout berth does not build from (a virtual
/// environment, wheels only) is named as such.
pub fn entry(
    runtime: Runtime,
    command: Option<&Vec<String>>,
    m: &Manifests,
    deps: &Deps,
) -> Result<EntryPoint, RecipeError> {
    if let Some(c) = command {
        return Ok(EntryPoint {
            command: c.clone(),
            why: "the `command` of services.yaml".into(),
        });
    }
    let lang = Lang::of(runtime);
    if let Some(e) = procfile(m)? {
        return Ok(e);
    }
    if lang.python {
        if let Some(served) = app_object(m, deps)? {
            return Ok(served);
        }
    }
    if let Some(e) = conventional(m, &lang)? {
        return Ok(e);
    }
    let declared = match lang.python {
        true => match python_script(m)? {
            Some(e) => Some(e),
            None => module_main(m)?,
        },
        false => node_main(m)?,
    };
    if let Some(e) = declared {
        return Ok(e);
    }
    if let Some(e) = only_file(m, &lang)? {
        return Ok(e);
    }
    Err(no_entry(m, &lang))
}

/// What a runtime's language starts from: its conventional entry files, how
/// one is run, its name and its source files' extensions.
struct Lang {
    python: bool,
    files: &'static [&'static str],
    run: fn(&str) -> Vec<String>,
    kind: &'static str,
    exts: &'static [&'static str],
}

impl Lang {
    fn of(runtime: Runtime) -> Lang {
        match is_python(runtime) {
            true => Lang {
                python: true,
                files: &["main.py", "app.py", "server.py"],
                run: |f| vec!["python3".into(), f.into()],
                kind: "Python",
                exts: &[".py"],
            },
            false => Lang {
                python: false,
                files: &["server.js", "index.js", "main.js"],
                run: |f| vec!["node".into(), f.into()],
                kind: "JavaScript",
                exts: &[".js", ".mjs", ".cjs"],
            },
        }
    }
}

fn ep(command: Vec<String>, why: impl Into<String>) -> Result<Option<EntryPoint>, RecipeError> {
    Ok(Some(EntryPoint {
        command,
        why: why.into(),
    }))
}

/// A Procfile's `web:` line, through a shell as Heroku runs it.
fn procfile(m: &Manifests) -> Result<Option<EntryPoint>, RecipeError> {
    match m.file("Procfile").map(procfile_web).transpose()?.flatten() {
        Some(web) => ep(
            vec!["sh".into(), "-c".into(), format!("exec {web}")],
            "the `web:` line of the Procfile",
        ),
        None => Ok(None),
    }
}

/// The one conventional entry file (`main.py`, `server.js`, ...); two are
/// ambiguous.
fn conventional(m: &Manifests, lang: &Lang) -> Result<Option<EntryPoint>, RecipeError> {
    let found: Vec<&str> = lang
        .files
        .iter()
        .copied()
        .filter(|f| m.paths.iter().any(|x| x == f))
        .collect();
    match found.as_slice() {
        [one] => ep(
            (lang.run)(one),
            format!("{one} is a conventional entry file"),
        ),
        [_, _, ..] => Err(err(
            format!(
                "the entry point is ambiguous: the package has {}",
                found.join(" and ")
            ),
            "set `command:` in services.yaml to say which one starts the service",
        )),
        [] => Ok(None),
    }
}

/// The one script a Python project declares (PEP 621, Poetry, setup.cfg).
fn python_script(m: &Manifests) -> Result<Option<EntryPoint>, RecipeError> {
    let scripts = recipe::python_scripts(m)?;
    match scripts.as_slice() {
        [(name, target, file)] => {
            let (module, func) = target.split_once(':').unwrap_or((target.as_str(), "main"));
            let root = module.split('.').next().unwrap_or(module);
            let (mut command, mut why) = (
                vec![
                    "python3".into(),
                    "-c".into(),
                    format!("import {module}; {module}.{func}()"),
                ],
                format!("`{name}` is the one script {file} declares"),
            );
            if src_layout(m, root) {
                command = from_src(command);
                why.push_str(&format!(
                    " (its package is under src/: {SRC_PATH} is on PYTHONPATH)"
                ));
            }
            ep(command, why)
        }
        [_, _, ..] => Err(err(
            "the entry point is ambiguous: pyproject.toml declares several scripts",
            "set `command:` in services.yaml",
        )),
        [] => Ok(None),
    }
}

/// `python -m PACKAGE` for the one top-level package (or one under src/,
/// the src layout) with a `__main__.py`.
fn module_main(m: &Manifests) -> Result<Option<EntryPoint>, RecipeError> {
    let mains: Vec<&str> = m
        .paths
        .iter()
        .filter_map(|p| p.strip_suffix("/__main__.py"))
        .filter(|pkg| !pkg.trim_start_matches("src/").contains('/'))
        .collect();
    match mains.as_slice() {
        [pkg] => {
            let name = pkg.trim_start_matches("src/");
            let run = vec!["python3".into(), "-m".into(), name.to_string()];
            match pkg.starts_with("src/") {
                false => ep(run, format!("{pkg}/__main__.py makes the package {pkg} runnable")),
                true => ep(
                    from_src(run),
                    format!("{pkg}/__main__.py makes the package {name} runnable ({SRC_PATH} is on PYTHONPATH)"),
                ),
            }
        }
        [_, _, ..] => Err(err(
            format!(
                "the entry point is ambiguous: several top-level packages have a __main__.py ({})",
                mains.join(", ")
            ),
            format!(
                "set `command:` in services.yaml, for example `command: [python3, -m, {}]`",
                mains[0]
            ),
        )),
        [] => Ok(None),
    }
}

/// package.json's `main`, else its `start` script.
fn node_main(m: &Manifests) -> Result<Option<EntryPoint>, RecipeError> {
    let Some(pj) = recipe::package_json(m)? else {
        return Ok(None);
    };
    if let Some(main) = pj.main {
        return ep(vec!["node".into(), main], "the `main` of package.json");
    }
    if pj.scripts.contains_key("start") {
        return ep(
            vec!["npm".into(), "start".into()],
            "the `start` script of package.json",
        );
    }
    Ok(None)
}

/// As the platforms berth replaces do: a package with one top-level source
/// file runs it; several are ambiguous.
fn only_file(m: &Manifests, lang: &Lang) -> Result<Option<EntryPoint>, RecipeError> {
    let top: Vec<&str> = m
        .paths
        .iter()
        .map(String::as_str)
        .filter(|p| !p.contains('/') && lang.exts.iter().any(|e| p.ends_with(e)))
        .filter(|p| !NOT_ENTRY.contains(p) && !p.starts_with("test_"))
        .collect();
    let kind = lang.kind;
    match top.as_slice() {
        [one] => ep((lang.run)(one), format!("{one} is the only top-level {kind} file")),
        [_, _, ..] => Err(err(
            format!(
                "no entry point: no `command`, no Procfile, no conventional entry file ({}), and several top-level {kind} files: {}",
                lang.files.join(", "),
                top.join(", ")
            ),
            format!("set `command:` in services.yaml, for example `command: [{}]`", (lang.run)(top[0]).join(", ")),
        )),
        [] => Ok(None),
    }
}

/// Why nothing starts the package: a layout berth does not run (a virtual
/// environment, a built bundle), or no rule matched.
fn no_entry(m: &Manifests, lang: &Lang) -> RecipeError {
    if let Some(layout) = foreign_layout(m) {
        return err(
            format!("the package is {layout}, which berth does not run as it is"),
            if lang.python {
                "package the source instead: the .py files with requirements.txt or pyproject.toml at the top (`berth package DIR` leaves virtual environments out); berth builds the environment itself"
            } else {
                "package the source instead: package.json and the .js files at the top; berth installs the dependencies itself (or ships node_modules when the service says so)"
            },
        );
    }
    let conventional = lang.files.join(", ");
    let kind = lang.kind;
    err(
        format!("no entry point: no `command`, no Procfile, none of {conventional}, no declared script, no package with a __main__.py, and no top-level {kind} file"),
        format!("add one of {conventional} or a Procfile with a `web:` line to the package, or set `command:` in services.yaml"),
    )
}

/// Where a src-layout project's packages are in the image.
const SRC_PATH: &str = "/app/src";

/// Whether the package `root` a script names lives under `src/` (and not
/// at the top, where Python finds it anyway).
fn src_layout(m: &Manifests, root: &str) -> bool {
    let has = |p: String| m.paths.contains(&p);
    !has(format!("{root}/__init__.py"))
        && !has(format!("{root}.py"))
        && (has(format!("src/{root}/__init__.py")) || has(format!("src/{root}.py")))
}

/// A command run with the src layout's directory on PYTHONPATH, without a
/// shell (`env` sets it).
fn from_src(command: Vec<String>) -> Vec<String> {
    ["env".to_string(), format!("PYTHONPATH={SRC_PATH}")]
        .into_iter()
        .chain(command)
        .collect()
}

/// The command of a Procfile's `web` process (`web: gunicorn app:app`), if it
/// names one. Only `web` serves: that is the process the gateway routes to.
fn procfile_web(text: &str) -> Result<Option<String>, RecipeError> {
    for (n, line) in text.lines().enumerate() {
        let Some((kind, cmd)) = line.split_once(':') else {
            continue;
        };
        if kind.trim() == "web" {
            let cmd = cmd.trim();
            if cmd.is_empty() {
                return Err(err(
                    format!("Procfile line {}: the `web:` process has no command", n + 1),
                    "write the command after `web:`, for example `web: gunicorn app:app`",
                ));
            }
            return Ok(Some(cmd.to_string()));
        }
    }
    Ok(None)
}

/// Whether an entry file starts a server itself: a `__main__` guard, or a
/// call that runs one at its top level (`app.run(...)`, `uvicorn.run(...)`,
/// `serve_forever()`).
fn starts_itself(text: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with("if __name__")
            || (!l.starts_with([' ', '\t', '#'])
                && (l.contains(".run(") || l.contains("serve_forever(")))
    })
}

/// The app object an entry file defines at its top level (`app = Flask(...)`,
/// `application = get_wsgi_application()`, `app: FastAPI = FastAPI()`).
/// A bare callable counts too: `def app(environ, start_response)` (WSGI) or
/// `async def app(scope, receive, send)` (ASGI, the second value).
fn app_name(text: &str) -> Option<(&'static str, bool)> {
    ["app", "application"].into_iter().find_map(|name| {
        text.lines().find_map(|l| {
            if l.starts_with(&format!("async def {name}(")) {
                return Some((name, true));
            }
            if l.starts_with(&format!("def {name}(")) {
                return Some((name, false));
            }
            l.strip_prefix(name).and_then(|rest| {
                let rest = rest.trim_start();
                ((rest.starts_with('=') && !rest.starts_with("=="))
                    || (rest.starts_with(':') && rest.contains('=')))
                .then_some((name, false))
            })
        })
    })
}

/// Rule 3: a WSGI/ASGI app object served by the server the dependencies
/// bring. An app object with no server to run it is an error that says
/// which to add (started as a script, it would only exit).
fn app_object(m: &Manifests, deps: &Deps) -> Result<Option<EntryPoint>, RecipeError> {
    let found: Vec<(&str, &str, bool)> = APP_FILES
        .iter()
        .filter_map(|f| {
            let text = m.file(f)?;
            if starts_itself(text) {
                return None;
            }
            let (name, bare_asgi) = app_name(text)?;
            let asgi = bare_asgi
                || ASGI.iter().any(|fw| {
                    text.contains(&format!("import {fw}")) || text.contains(&format!("from {fw}"))
                });
            Some((*f, name, asgi))
        })
        .collect();
    let [(file, object, asgi)] = found.as_slice() else {
        if found.len() > 1 {
            let files: Vec<&str> = found.iter().map(|f| f.0).collect();
            return Err(err(
                format!(
                    "the entry point is ambiguous: {} each define an app object",
                    files.join(" and ")
                ),
                "set `command:` in services.yaml, or add a Procfile with a `web:` line",
            ));
        }
        return Ok(None);
    };
    let names = match deps {
        Deps::Python { requirements, .. } => requirement_names(requirements),
        _ => Vec::new(),
    };
    let has = |n: &str| names.iter().any(|x| x == n);
    let module = file.trim_end_matches(".py");
    let target = format!("{module}:{object}");
    let (server, command) = if *asgi {
        if !has("uvicorn") {
            return Err(err(
                format!("{file} defines the ASGI app `{object}`, but nothing in the dependencies serves it"),
                format!("add uvicorn to the dependencies (berth then starts `uvicorn {target}` on $PORT), or set `command:` in services.yaml"),
            ));
        }
        (
            "uvicorn",
            format!("exec uvicorn {target} --host 0.0.0.0 --port \"$PORT\""),
        )
    } else if has("gunicorn") {
        (
            "gunicorn",
            format!("exec gunicorn --bind \"0.0.0.0:$PORT\" {target}"),
        )
    } else if has("uvicorn") {
        (
            "uvicorn",
            format!("exec uvicorn --interface wsgi {target} --host 0.0.0.0 --port \"$PORT\""),
        )
    } else {
        return Err(err(
            format!("{file} defines the WSGI app `{object}` and never starts a server, and nothing in the dependencies serves it"),
            format!("add gunicorn to the dependencies (berth then starts `gunicorn {target}` on $PORT), start the server in {file} under `if __name__ == \"__main__\":`, or set `command:` in services.yaml"),
        ));
    };
    Ok(Some(EntryPoint {
        command: vec!["sh".into(), "-c".into(), command],
        why: format!(
            "{file} defines the {} app `{object}` and {server} is among the dependencies",
            if *asgi { "ASGI" } else { "WSGI" }
        ),
    }))
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
