//! The lock files of `super`'s first rule: the packages a project needs to
//! run, walked from its own dependencies through the lock's graph, each
//! pinned with the markers it was reached by.

use std::collections::BTreeMap;

use super::{get, norm, str_list, toml_of, Files, Found};
use crate::manifest::{err, RecipeError};

/// The lock-file rules: one that is present decides.
pub fn locked(files: Files, extras: &[String]) -> Result<Option<Found>, RecipeError> {
    if let Some(text) = files("uv.lock") {
        let pyproject = files("pyproject.toml")
            .map(|t| toml_of("pyproject.toml", t))
            .transpose()?;
        return uv_lock(&toml_of("uv.lock", text)?, pyproject.as_ref(), extras).map(Some);
    }
    if let Some(text) = files("poetry.lock") {
        let Some(py) = files("pyproject.toml") else {
            return Err(err(
                "poetry.lock without the pyproject.toml it locks",
                "package pyproject.toml with poetry.lock",
            ));
        };
        return poetry_lock(
            &toml_of("poetry.lock", text)?,
            &toml_of("pyproject.toml", py)?,
            extras,
        )
        .map(Some);
    }
    if let Some(text) = files("pdm.lock") {
        return pdm_lock(&toml_of("pdm.lock", text)?, extras).map(Some);
    }
    if let Some(text) = files("Pipfile.lock") {
        return pipfile_lock(text, extras).map(Some);
    }
    Ok(None)
}

/// A lock's edge: the package (with `[extras]`), the marker, and the extras
/// of the parent it belongs to (none: always).
type Edge = (String, Option<String>, Vec<String>);
/// A locked package: its version and its edges.
type Node = (String, Vec<Edge>);

/// The packages reached from the roots through a lock's graph, each with
/// the markers of the edges it was reached by (none: always needed).
struct Walk<'a> {
    /// name -> (version, conditions; `None` once reached unconditionally)
    reached: BTreeMap<String, (String, Option<Vec<String>>)>,
    deps: &'a dyn Fn(&str) -> Option<Node>,
}

/// A package a walk reached that the lock file does not hold.
struct Unlocked(String);

impl Walk<'_> {
    /// Reaches `name` and what it depends on; `Err` names a package the
    /// lock file does not hold.
    fn visit(
        &mut self,
        name: &str,
        cond: Option<String>,
        extras: &[String],
    ) -> Result<(), Unlocked> {
        let (name, mut wanted) = with_extras(name);
        wanted.extend(extras.iter().cloned());
        let mut work = vec![(name, cond, wanted)];
        let mut steps = 0;
        while let Some((name, cond, extras)) = work.pop() {
            steps += 1;
            if steps > 100_000 {
                break;
            }
            let (version, edges) = (self.deps)(&name).ok_or_else(|| Unlocked(name.clone()))?;
            let entry = self
                .reached
                .entry(name.clone())
                .or_insert((version, Some(Vec::new())));
            let grew = match (&mut entry.1, &cond) {
                (None, _) => false,
                (slot @ Some(_), None) => {
                    *slot = None;
                    true
                }
                (Some(list), Some(c)) if list.len() >= 8 => {
                    let _ = c;
                    entry.1 = None;
                    true
                }
                (Some(list), Some(c)) => match list.contains(c) {
                    true => false,
                    false => {
                        list.push(c.clone());
                        true
                    }
                },
            };
            if !grew && extras.is_empty() {
                continue;
            }
            for (dep, marker, extra) in edges {
                // An optional edge is only for the extras asked of this package.
                if !extra.is_empty() && !extra.iter().any(|x| extras.contains(x)) {
                    continue;
                }
                let c = match (&cond, marker) {
                    (None, None) => None,
                    (Some(c), None) => Some(c.clone()),
                    (None, Some(c)) => Some(c),
                    (Some(a), Some(b)) => Some(format!("({a}) and ({b})")),
                };
                let (dep, wanted) = with_extras(&dep);
                work.push((dep, c, wanted));
            }
        }
        Ok(())
    }

    fn lines(self) -> Vec<String> {
        self.reached
            .into_iter()
            .map(|(name, (version, conds))| match conds {
                None => format!("{name}=={version}"),
                Some(c) if c.len() == 1 => format!("{name}=={version} ; {}", c[0]),
                Some(c) => format!(
                    "{name}=={version} ; {}",
                    c.iter()
                        .map(|c| format!("({c})"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            })
            .collect()
    }
}

/// `name[a,b]` as the normalised name and its extras.
fn with_extras(name: &str) -> (String, Vec<String>) {
    match name.split_once('[') {
        Some((n, x)) => (
            norm(n),
            x.trim_end_matches(']')
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
        ),
        None => (norm(name), Vec::new()),
    }
}

fn locked_found(file: &'static str, walk: Walk) -> Found {
    let lines = walk.lines();
    Found {
        from: format!("{file} ({} locked versions)", lines.len()),
        lines,
        file,
    }
}

fn missing(file: &str, name: &str) -> RecipeError {
    err(
        format!("{file} does not lock `{name}`, which the project depends on"),
        format!(
            "lock again (the lock file is older than the project's dependencies), or remove {file}"
        ),
    )
}

/// A lock's `[[package]]` tables.
fn packages(lock: &toml::Table) -> Vec<&toml::Table> {
    lock.get("package")
        .and_then(|p| p.as_array())
        .map(|a| a.iter().filter_map(|p| p.as_table()).collect())
        .unwrap_or_default()
}

/// A uv.lock: walked from the project's own package (its `source` is the
/// project directory), through `dependencies` and the named extras'
/// `optional-dependencies`, never `dev-dependencies`.
fn uv_lock(
    lock: &toml::Table,
    pyproject: Option<&toml::Table>,
    extras: &[String],
) -> Result<Found, RecipeError> {
    let packages = packages(lock);
    let own_name = pyproject
        .and_then(|p| get(p, &["project", "name"]))
        .and_then(|n| n.as_str())
        .map(norm);
    let is_root = |p: &toml::Table| {
        let source = p.get("source").and_then(|s| s.as_table());
        let local = source.is_some_and(|s| {
            ["virtual", "editable", "directory"]
                .iter()
                .any(|k| s.get(*k).and_then(|v| v.as_str()) == Some("."))
        });
        local
            || own_name.as_deref().is_some_and(|n| {
                p.get("name").and_then(|v| v.as_str()).map(norm).as_deref() == Some(n)
            })
    };
    let Some(root) = packages.iter().find(|p| is_root(p)) else {
        return Err(err(
            "uv.lock names no package for the project itself (one whose source is `.`)",
            "run `uv lock` in the project directory and package uv.lock with pyproject.toml",
        ));
    };
    let edges = |t: &toml::Table, key: &str, only: Option<&str>| -> Vec<Edge> {
        let list = match only {
            None => t
                .get(key)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default(),
            Some(group) => get(t, &[key, group])
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default(),
        };
        list.iter()
            .filter_map(|d| d.as_table())
            .filter_map(|d| {
                let name = d.get("name")?.as_str()?.to_string();
                let marker = d.get("marker").and_then(|m| m.as_str()).map(String::from);
                let wanted = str_list(d.get("extra"));
                let name = match wanted.is_empty() {
                    true => name,
                    false => format!("{name}[{}]", wanted.join(",")),
                };
                Some((name, marker, Vec::new()))
            })
            .collect()
    };
    let by_name: BTreeMap<String, &toml::Table> = packages
        .iter()
        .filter(|p| !is_root(p))
        .filter_map(|p| Some((norm(p.get("name")?.as_str()?), *p)))
        .collect();
    let deps = |name: &str| -> Option<Node> {
        let p = by_name.get(name)?;
        let version = p.get("version")?.as_str()?.to_string();
        let mut all = edges(p, "dependencies", None);
        if let Some(groups) = p.get("optional-dependencies").and_then(|v| v.as_table()) {
            for group in groups.keys() {
                all.extend(
                    edges(p, "optional-dependencies", Some(group))
                        .into_iter()
                        .map(|(n, m, _)| (n, m, vec![group.clone()])),
                );
            }
        }
        Some((version, all))
    };
    let mut walk = Walk {
        reached: BTreeMap::new(),
        deps: &deps,
    };
    let mut roots = edges(root, "dependencies", None);
    for extra in extras {
        if get(root, &["optional-dependencies", extra]).is_none() {
            return Err(err(
                format!("extra `{extra}` is not an optional-dependencies group of the project in uv.lock"),
                "use a group pyproject.toml declares under `[project.optional-dependencies]`, and lock again",
            ));
        }
        roots.extend(edges(root, "optional-dependencies", Some(extra)));
    }
    for (name, marker, _) in roots {
        walk.visit(&name, marker, &[])
            .map_err(|n| missing("uv.lock", &n.0))?;
    }
    Ok(locked_found("uv.lock", walk))
}

/// A poetry.lock: walked from pyproject.toml's dependencies (Poetry's table
/// or PEP 621's), with the named extras' packages.
fn poetry_lock(
    lock: &toml::Table,
    pyproject: &toml::Table,
    extras: &[String],
) -> Result<Found, RecipeError> {
    let packages = packages(lock);
    let by_name: BTreeMap<String, &toml::Table> = packages
        .iter()
        .filter_map(|p| Some((norm(p.get("name")?.as_str()?), *p)))
        .collect();
    let edge = |name: &str, v: &toml::Value| -> Edge {
        let t = v.as_table();
        let marker = t
            .and_then(|t| t.get("markers"))
            .and_then(|m| m.as_str())
            .map(String::from);
        let optional = t.and_then(|t| t.get("optional")).and_then(|o| o.as_bool()) == Some(true);
        let wanted = str_list(t.and_then(|t| t.get("extras")));
        let name = match wanted.is_empty() {
            true => name.to_string(),
            false => format!("{name}[{}]", wanted.join(",")),
        };
        (
            name,
            marker,
            if optional {
                vec!["*".to_string()]
            } else {
                Vec::new()
            },
        )
    };
    let deps = |name: &str| -> Option<Node> {
        let p = by_name.get(name)?;
        let version = p.get("version")?.as_str()?.to_string();
        let mut all = Vec::new();
        let extras_of = p.get("extras").and_then(|e| e.as_table());
        if let Some(d) = p.get("dependencies").and_then(|d| d.as_table()) {
            for (n, v) in d {
                let (n, m, mut opt) = edge(n, v);
                if !opt.is_empty() {
                    // An optional dependency belongs to the extras that list it.
                    opt = extras_of
                        .map(|e| {
                            e.iter()
                                .filter(|(_, list)| {
                                    str_list(Some(list)).iter().any(|x| {
                                        norm(
                                            x.split([' ', '(', '[', '<', '>', '='])
                                                .next()
                                                .unwrap_or(""),
                                        ) == norm(&n)
                                    })
                                })
                                .map(|(k, _)| k.clone())
                                .collect()
                        })
                        .unwrap_or_else(|| vec!["*".into()]);
                }
                all.push((n, m, opt));
            }
        }
        Some((version, all))
    };
    let mut roots: Vec<(String, Option<String>)> = Vec::new();
    if let Some(d) = get(pyproject, &["tool", "poetry", "dependencies"]).and_then(|d| d.as_table())
    {
        for (n, v) in d {
            if n == "python" {
                continue;
            }
            let (name, marker, opt) = edge(n, v);
            let bare = norm(name.split('[').next().unwrap_or(&name));
            let in_extra = extras.iter().any(|x| {
                str_list(get(pyproject, &["tool", "poetry", "extras", x]))
                    .iter()
                    .any(|e| norm(e) == bare)
            });
            if opt.is_empty() || in_extra {
                roots.push((name, marker));
            }
        }
    }
    for line in str_list(get(pyproject, &["project", "dependencies"])) {
        roots.push(pep508_root(&line));
    }
    for extra in extras {
        let poetry = get(pyproject, &["tool", "poetry", "extras", extra]).is_some();
        let pep621 = str_list(get(pyproject, &["project", "optional-dependencies", extra]));
        if !poetry && pep621.is_empty() {
            return Err(err(
                format!("extra `{extra}` is not an extra of pyproject.toml"),
                "declare it under `[tool.poetry.extras]` or `[project.optional-dependencies]`, and lock again",
            ));
        }
        roots.extend(pep621.iter().map(|l| pep508_root(l)));
    }
    let mut walk = Walk {
        reached: BTreeMap::new(),
        deps: &deps,
    };
    for (name, marker) in roots {
        walk.visit(&name, marker, &[])
            .map_err(|n| missing("poetry.lock", &n.0))?;
    }
    Ok(locked_found("poetry.lock", walk))
}

/// A PEP 508 line as a root of a lock's walk: the name (with its extras)
/// and its marker.
fn pep508_root(line: &str) -> (String, Option<String>) {
    let (req, marker) = match line.split_once(';') {
        Some((r, m)) => (r, Some(m.trim().to_string())),
        None => (line, None),
    };
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.[],".contains(c)))
        .unwrap_or(req.len());
    (req[..end].trim().to_string(), marker)
}

/// A pdm.lock: the packages of the `default` group and of the named extras'
/// groups.
fn pdm_lock(lock: &toml::Table, extras: &[String]) -> Result<Found, RecipeError> {
    let mut lines = Vec::new();
    for p in lock
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let Some(p) = p.as_table() else { continue };
        let groups = str_list(p.get("groups"));
        if !groups.iter().any(|g| g == "default" || extras.contains(g)) {
            continue;
        }
        let (Some(name), Some(version)) = (
            p.get("name").and_then(|v| v.as_str()),
            p.get("version").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        lines.push(match p.get("marker").and_then(|m| m.as_str()) {
            Some(m) => format!("{}=={version} ; {m}", norm(name)),
            None => format!("{}=={version}", norm(name)),
        });
    }
    Ok(Found {
        from: format!("pdm.lock ({} locked versions)", lines.len()),
        lines,
        file: "pdm.lock",
    })
}

/// A Pipfile.lock: its `default` packages (never `develop`).
fn pipfile_lock(text: &str, extras: &[String]) -> Result<Found, RecipeError> {
    if !extras.is_empty() {
        return Err(err(
            "`extras` with a Pipfile.lock: Pipenv has no extras",
            "remove `extras`",
        ));
    }
    let lock: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        err(
            format!("Pipfile.lock does not parse: {e}"),
            "run `pipenv lock` again",
        )
    })?;
    let mut lines = Vec::new();
    for (name, p) in lock["default"].as_object().into_iter().flatten() {
        if p.get("path").is_some() || p.get("editable").is_some() {
            continue; // the project itself
        }
        if p.get("git").is_some() || p.get("file").is_some() {
            return Err(err(
                format!(
                    "Pipfile.lock installs `{name}` from git or a file, which berth does not fetch"
                ),
                "depend on a release from PyPI instead",
            ));
        }
        let version = p["version"].as_str().unwrap_or("");
        let line = format!("{}{version}", norm(name));
        lines.push(match p["markers"].as_str() {
            Some(m) => format!("{line} ; {m}"),
            None => line,
        });
    }
    lines.sort();
    Ok(Found {
        from: format!("Pipfile.lock ({} locked versions)", lines.len()),
        lines,
        file: "Pipfile.lock",
    })
}
