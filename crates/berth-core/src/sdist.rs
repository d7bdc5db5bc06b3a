//! Source distributions, pure: which requirement pip found no wheel for, which
//! file of an index (or of a find-links directory) to build instead, what
//! its build needs, the Dockerfile that builds it with no network, and why a
//! build failed (a compiler, named as such).

use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};

use super::recipe::RECIPE_VERSION;

/// A requirement pip could satisfy with no wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Normalized as PEP 503 says (`Foo_Bar` is `foo-bar`).
    pub name: String,
    /// As written (`==0.9.7`, `>=1,<2`); empty for any version.
    pub specifier: String,
}

/// PEP 503's normal form of a project name.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// The requirement of pip's "Could not find a version that satisfies the
/// requirement X (from versions: …)", the first one it names. A requirement
/// it found no version of at all and one it found only other versions of are
/// both sought as a source distribution.
pub fn wanted(pip_log: &str) -> Option<Wanted> {
    const SAYS: &str = "Could not find a version that satisfies the requirement ";
    let line = pip_log.lines().find(|l| l.contains(SAYS))?;
    let rest = &line[line.find(SAYS)? + SAYS.len()..];
    let rest = rest.split(" (from versions:").next()?;
    // A transitive requirement reads "x>=1 (from y)".
    let req = rest.split(" (from ").next()?.split(';').next()?.trim();
    let name = requirement_name(req);
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    let mut specifier = req[end..].trim();
    if specifier.starts_with('[') {
        specifier = specifier
            .split_once(']')
            .map(|(_, s)| s.trim())
            .unwrap_or("");
    }
    (!name.is_empty()).then(|| Wanted {
        name,
        specifier: specifier.trim_matches(|c| c == '(' || c == ')').to_string(),
    })
}

/// One file an index lists for a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute, or relative to the page that listed it.
    pub url: String,
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    pub yanked: bool,
}

#[derive(serde::Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
}

#[derive(serde::Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: serde_json::Value,
}

/// The files of a project page of a simple index: the JSON form (PEP 691),
/// or the HTML one (PEP 503) that older and private indexes serve.
pub fn index_files(body: &str) -> Vec<IndexFile> {
    if let Ok(page) = serde_json::from_str::<JsonPage>(body) {
        return page
            .files
            .into_iter()
            .map(|f| IndexFile {
                sha256: f.hashes.get("sha256").cloned(),
                filename: f.filename,
                url: f.url,
                requires_python: f.requires_python.filter(|r| !r.trim().is_empty()),
                yanked: !matches!(
                    f.yanked,
                    serde_json::Value::Bool(false) | serde_json::Value::Null
                ),
            })
            .collect();
    }
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("<a ").or_else(|| rest.find("<A ")) {
        rest = &rest[at + 3..];
        let Some(close) = rest.find('>') else { break };
        let attrs = &rest[..close];
        let Some(end) = rest[close..]
            .find("</a>")
            .or_else(|| rest[close..].find("</A>"))
        else {
            break;
        };
        let text = rest[close + 1..close + end].trim().to_string();
        rest = &rest[close + end..];
        let Some(href) = attribute(attrs, "href") else {
            continue;
        };
        let (url, fragment) = href.split_once('#').unwrap_or((&href, ""));
        out.push(IndexFile {
            filename: text,
            url: url.to_string(),
            sha256: fragment.strip_prefix("sha256=").map(str::to_string),
            requires_python: attribute(attrs, "data-requires-python").filter(|r| !r.is_empty()),
            yanked: attribute(attrs, "data-yanked").is_some(),
        });
    }
    out
}

/// An attribute's value in an HTML tag, with its entities for `<`, `>`, `&`
/// and quotes decoded (requires-python holds `&gt;=3.8`).
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok {
            continue;
        }
        if !after.starts_with('=') {
            // A bare attribute (`data-yanked`).
            if after.is_empty() || after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
            {
                return Some(String::new());
            }
            continue;
        }
        let value = attrs[attrs.len() - after.len() + 1..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split_whitespace().next().unwrap_or(""),
        };
        return Some(
            raw.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        );
    }
    None
}

/// The version in a source distribution's file name (`Foo_Bar-1.0.tar.gz`),
/// when the file is one of `name`'s; only `.tar.gz` is built.
pub fn sdist_version(filename: &str, name: &str) -> Option<Version> {
    let stem = filename.strip_suffix(".tar.gz")?;
    // A name can hold dashes and an old version too: try every split.
    stem.match_indices('-').find_map(|(i, _)| {
        (normalize(&stem[..i]) == name)
            .then(|| Version::from_str(&stem[i + 1..]).ok())
            .flatten()
    })
}

/// The source distribution to build for `wanted` on `python`: the newest
/// version its specifier allows (a pre-release only when the specifier
/// names one), not yanked, whose requires-python admits `python`.
pub fn pick<'f>(
    files: &'f [IndexFile],
    wanted: &Wanted,
    python: &str,
) -> Option<(&'f IndexFile, Version)> {
    let specifiers = VersionSpecifiers::from_str(&wanted.specifier).ok()?;
    let python = Version::from_str(python).ok()?;
    let pre_allowed = specifiers.iter().any(|s| s.version().any_prerelease());
    files
        .iter()
        .filter(|f| !f.yanked)
        .filter_map(|f| Some((f, sdist_version(&f.filename, &wanted.name)?)))
        .filter(|(_, v)| specifiers.contains(v) && (pre_allowed || !v.any_prerelease()))
        .filter(|(f, _)| {
            f.requires_python
                .as_deref()
                .is_none_or(|r| VersionSpecifiers::from_str(r).is_ok_and(|r| r.contains(&python)))
        })
        .max_by(|a, b| a.1.cmp(&b.1))
}

/// What a source distribution's build needs installed first: its
/// `[build-system] requires`, or setuptools and wheel (pip's default) when it
/// has no pyproject.toml or names none. setuptools' backend asks for `wheel`
/// too in its older versions, so it is always there for it.
pub fn build_requires(pyproject: Option<&str>) -> Vec<String> {
    let table = pyproject.and_then(|t| t.parse::<toml::Table>().ok());
    let system = table
        .as_ref()
        .and_then(|t| t.get("build-system")?.as_table());
    let mut requires: Vec<String> = system
        .and_then(|s| s.get("requires")?.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|r| Some(r.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_else(|| vec!["setuptools>=40.8.0".to_string()]);
    let backend = system
        .and_then(|s| s.get("build-backend")?.as_str())
        .unwrap_or("setuptools.build_meta:__legacy__");
    if backend.starts_with("setuptools") && !requires.iter().any(|r| requirement_name(r) == "wheel")
    {
        requires.push("wheel".to_string());
    }
    requires
}

/// The normalized project name a requirement starts with.
fn requirement_name(requirement: &str) -> String {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(requirement.len());
    normalize(&requirement[..end])
}

/// The Dockerfile that builds the source distribution `file` into a wheel in
/// `base`, from the build requirements' wheels under `build/` only (pip in
/// a venv of the base's Python, with no index, through PEP 517 even for a
/// bare setup.py, so the build uses the requirements berth fetched and never
/// the venv's own setuptools), as the base's unprivileged
/// user. The engine runs it with no network, so the project's build code
/// reaches nothing; the wheel lands in [`WHEEL_DIR`].
pub fn build_dockerfile(base: &str, file: &str) -> String {
    let file = serde_json::to_string(&format!("/tmp/sdist/{file}")).expect("strings serialize");
    format!(
        "# generated by berth (recipe {RECIPE_VERSION}): a wheel built from a source distribution\n\
         FROM {base}\n\
         RUN --mount=type=bind,source=.,target=/tmp/sdist \\\n \
         python3 -m venv /tmp/build-venv \\\n \
         && /tmp/build-venv/bin/pip wheel --no-index --no-deps --no-cache-dir --disable-pip-version-check --use-pep517 \\\n      \
         --find-links /tmp/sdist/build -w {WHEEL_DIR} {file}\n"
    )
}

/// Where [`build_dockerfile`] leaves the wheel.
pub const WHEEL_DIR: &str = "/tmp/wheel";

/// The line of a failed build that shows it needed a compiler (or a header
/// of one, or Rust's or CMake's toolchain), which a base image does not have.
pub fn compiler_needed(build_log: &str) -> Option<String> {
    // A compiler that was not there: named in a line that says so.
    const COMPILERS: [&str; 6] = ["gcc", "g++", "clang", "'cc'", "cc:", "c compiler"];
    const MISSING: [&str; 5] = [
        "no such file or directory",
        "not found",
        "failed",
        "unable to execute",
        "no acceptable",
    ];
    const SIGNS: [&str; 5] = [
        "python.h: no such file",
        "can't find rust compiler",
        "cargo, the rust package manager, is not installed",
        "cmake: not found",
        "could not find a compiler",
    ];
    build_log
        .lines()
        .find(|l| {
            let l = l.to_ascii_lowercase();
            SIGNS.iter().any(|s| l.contains(s))
                || (COMPILERS.iter().any(|c| l.contains(c))
                    && MISSING.iter().any(|m| l.contains(m)))
        })
        .map(|l| l.trim().to_string())
}
