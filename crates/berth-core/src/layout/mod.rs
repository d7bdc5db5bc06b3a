//! A Python project's dependencies and scripts, from whichever layout it
//! uses, read statically (no project code runs on the host). The first
//! source that applies wins, and the plan says which:
//!
//! 1. a lock file, so the image gets exactly the locked versions: `uv.lock`,
//!    `poetry.lock`, `pdm.lock`, `Pipfile.lock` (the packages the project
//!    needs at run time: its dependencies and the named extras, never the
//!    development groups; each with the markers it was reached through);
//! 2. pyproject.toml's PEP 621 `[project] dependencies` (and extras);
//! 3. Poetry's `[tool.poetry.dependencies]` (carets and tildes as PEP 440);
//! 4. a `Pipfile`'s `[packages]`;
//! 5. `requirements.txt`;
//! 6. setup.cfg's `install_requires` (and `extras_require`);
//! 7. setup.py's `install_requires`, when it is a literal list of strings.
//!
//! A setup.py that computes its `install_requires`, or `dynamic`
//! dependencies that nothing above lists, are asked of the project's own
//! build backend (`backend`: PEP 517, run by the engine with no network).
//! A git or path source is refused, naming the file.

use std::collections::BTreeMap;

pub mod backend;
mod locks;

pub use locks::locked;

use super::manifest::{err, RecipeError};

/// Where a project's requirements came from, and the lines pip gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub lines: Vec<String>,
    /// `uv.lock (7 locked versions)`, `setup.cfg`: the plan line says it.
    pub from: String,
    /// The file a requirement line is looked up in for pip's errors.
    pub file: &'static str,
}

/// The text of a file, by path.
pub type Files<'a> = &'a dyn Fn(&str) -> Option<&'a str>;

fn norm(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace(['_', '.'], "-")
}

fn toml_of(file: &str, text: &str) -> Result<toml::Table, RecipeError> {
    text.parse::<toml::Table>().map_err(|e| {
        err(
            format!("{file} does not parse: {e}"),
            format!("fix {file}, or remove it and list the dependencies in requirements.txt"),
        )
    })
}

fn get<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut v = t.get(*first)?;
    for k in rest {
        v = v.as_table()?.get(*k)?;
    }
    Some(v)
}

fn str_list(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A Poetry version constraint as PEP 440 specifiers: `^1.2.3` is
/// `>=1.2.3,<2.0.0`, `~1.2` is `>=1.2,<1.3`, a bare `1.2` is `==1.2`, `*`
/// is anything.
/// A Poetry constraint PEP 440 cannot say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintUnreadable {
    #[error("`{0}` (an alternative of constraints has no PEP 440 form)")]
    Alternative(String),
    #[error("`{0}`")]
    Version(String),
}

pub fn poetry_constraint(c: &str) -> Result<String, ConstraintUnreadable> {
    if c.contains("||") || c.contains('|') {
        return Err(ConstraintUnreadable::Alternative(c.to_string()));
    }
    let mut out = Vec::new();
    for part in c
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "*")
    {
        let nums = |v: &str| -> Result<Vec<u64>, ConstraintUnreadable> {
            v.split('.')
                .map(|n| {
                    n.parse::<u64>()
                        .map_err(|_| ConstraintUnreadable::Version(c.to_string()))
                })
                .collect()
        };
        let join = |v: &[u64]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(".")
        };
        if let Some(v) = part.strip_prefix('^') {
            let v = v.trim();
            let n = nums(v)?;
            let at = n
                .iter()
                .position(|x| *x != 0)
                .unwrap_or(n.len().saturating_sub(1));
            let mut upper: Vec<u64> = n[..=at].to_vec();
            upper[at] += 1;
            out.push(format!(">={v},<{}", join(&upper)));
        } else if let Some(v) = part.strip_prefix('~').filter(|v| !v.starts_with('=')) {
            let v = v.trim();
            let n = nums(v)?;
            let mut upper: Vec<u64> = n[..n.len().min(2)].to_vec();
            if upper.len() == 1 {
                upper[0] += 1;
            } else {
                upper[1] += 1;
            }
            out.push(format!(">={v},<{}", join(&upper)));
        } else if part.starts_with(['<', '>', '=', '!', '~']) {
            out.push(part.to_string());
        } else {
            out.push(format!("=={part}"));
        }
    }
    Ok(out.join(","))
}

/// A Poetry dependency table (`[tool.poetry.dependencies]`) as requirement
/// lines; `python` is the project's Python range, not a dependency.
pub fn poetry_lines(
    deps: &toml::Table,
    poetry_extras: Option<&toml::Table>,
    extras: &[String],
) -> Result<Vec<String>, RecipeError> {
    let mut lines = Vec::new();
    let in_extra = |name: &str| {
        extras.iter().any(|x| {
            poetry_extras
                .and_then(|e| e.get(x))
                .is_some_and(|l| str_list(Some(l)).iter().any(|n| norm(n) == norm(name)))
        })
    };
    for (name, v) in deps {
        if name == "python" {
            continue;
        }
        let bad = |what: String| {
            err(
                format!("pyproject.toml: `[tool.poetry.dependencies] {name}` {what}"),
                "depend on a release from PyPI with a version constraint, or set the dependencies in requirements.txt",
            )
        };
        let (constraint, marker, wanted) = match v {
            toml::Value::String(c) => (c.clone(), None, Vec::new()),
            toml::Value::Table(t) => {
                if let Some(k) = ["git", "path", "url"].iter().find(|k| t.contains_key(**k)) {
                    return Err(bad(format!("comes from a {k}, which berth does not fetch")));
                }
                if t.get("optional").and_then(|o| o.as_bool()) == Some(true) && !in_extra(name) {
                    continue;
                }
                (
                    t.get("version")
                        .and_then(|v| v.as_str())
                        .unwrap_or("*")
                        .to_string(),
                    t.get("markers").and_then(|m| m.as_str()).map(String::from),
                    str_list(t.get("extras")),
                )
            }
            _ => return Err(bad("is neither a version nor a table".into())),
        };
        let spec =
            poetry_constraint(&constraint).map_err(|c| bad(format!("has the constraint {c}")))?;
        let extras = match wanted.is_empty() {
            true => String::new(),
            false => format!("[{}]", wanted.join(",")),
        };
        lines.push(match marker {
            Some(m) => format!("{name}{extras}{spec} ; {m}"),
            None => format!("{name}{extras}{spec}"),
        });
    }
    Ok(lines)
}

/// A Pipfile's `[packages]` as requirement lines.
pub fn pipfile_lines(text: &str) -> Result<Vec<String>, RecipeError> {
    let t = toml_of("Pipfile", text)?;
    let mut lines = Vec::new();
    for (name, v) in t
        .get("packages")
        .and_then(|p| p.as_table())
        .into_iter()
        .flatten()
    {
        let spec = match v {
            toml::Value::String(s) if s == "*" => String::new(),
            toml::Value::String(s) => s.clone(),
            toml::Value::Table(t) if t.contains_key("git") || t.contains_key("path") || t.contains_key("file") => {
                return Err(err(
                    format!("Pipfile: `[packages] {name}` comes from git or a path, which berth does not fetch"),
                    "depend on a release from PyPI instead",
                ))
            }
            toml::Value::Table(t) => {
                let v = t.get("version").and_then(|v| v.as_str()).unwrap_or("*");
                let x = str_list(t.get("extras"));
                let x = if x.is_empty() { String::new() } else { format!("[{}]", x.join(",")) };
                format!("{x}{}", if v == "*" { "" } else { v })
            }
            _ => String::new(),
        };
        lines.push(format!("{name}{spec}"));
    }
    Ok(lines)
}

/// setup.cfg's `[options] install_requires` and the named groups of
/// `[options.extras_require]`, and its `console_scripts`.
pub fn setup_cfg(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut key: Option<(String, String)> = None;
    for line in text.lines() {
        let bare = line.split(['#', ';']).next().unwrap_or("").trim_end();
        if bare.trim().is_empty() {
            continue;
        }
        if bare.starts_with('[') {
            section = bare.trim_matches(['[', ']']).trim().to_string();
            key = None;
        } else if bare.starts_with([' ', '\t']) {
            if let Some(k) = &key {
                out.entry(k.clone())
                    .or_default()
                    .push(bare.trim().to_string());
            }
        } else if let Some((k, v)) = bare.split_once(['=', ':']) {
            let k = (section.clone(), k.trim().to_string());
            if !v.trim().is_empty() {
                out.entry(k.clone()).or_default().push(v.trim().to_string());
            }
            key = Some(k);
        }
    }
    out
}

/// setup.py's `install_requires=[...]`, when it is a literal list of strings;
/// `None` when setup.py computes it (berth runs no project code at plan time).
pub fn setup_py(text: &str) -> Option<Vec<String>> {
    let at = text.find("install_requires")?;
    let rest = text[at + "install_requires".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let body = rest.strip_prefix('[')?;
    let end = body.find(']')?;
    let mut lines = Vec::new();
    let mut s = body[..end].trim();
    while !s.is_empty() {
        if let Some(after) = s.strip_prefix('#') {
            s = after
                .split_once('\n')
                .map(|x| x.1)
                .unwrap_or("")
                .trim_start();
            continue;
        }
        let q = s.chars().next()?;
        if q != '"' && q != '\'' {
            return None;
        }
        let close = s[1..].find(q)? + 1;
        lines.push(s[1..close].to_string());
        s = s[close + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s).trim_start();
    }
    Some(lines)
}
