//! The projects file of `berth watch --projects`: several projects followed by
//! one daemon, each from its own services file or git repository. Pure: the
//! file's text comes in, the checked list (in the file's order, which decides
//! whose route a gateway keeps when two projects name one path) comes out.
//!
//! ```yaml
//! projects:
//!   - name: shop
//!     file: shop/services.yaml
//!   - name: billing
//!     git: https://git.example.com/billing.git
//!     ref: main
//!     path: deploy/services.yaml
//!     webhook_secret: billing.secret
//! ```

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diag::{Diagnostic, Diagnostics, Pos};

/// One project the daemon follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectEntry {
    /// The project's name: the file it follows must say `project:` with it.
    pub name: String,
    pub source: ProjectSource,
    /// The push webhook's shared-secret file (`git` only), as written.
    pub webhook_secret: Option<String>,
}

/// Where a project's services file comes from; paths as written (relative
/// ones are the projects file's directory's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectSource {
    File(String),
    Git {
        url: String,
        reference: String,
        path: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProjects {
    #[serde(default)]
    projects: Vec<RawProject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Spanned<String>,
    file: Option<Spanned<String>>,
    git: Option<Spanned<String>>,
    #[serde(rename = "ref")]
    reference: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    webhook_secret: Option<Spanned<String>>,
}

/// Parses a projects file, reporting every problem with its position.
pub fn parse_projects(file: &str, text: &str) -> Result<Vec<ProjectEntry>, Diagnostics> {
    let fail = |items| Diagnostics {
        file: file.to_string(),
        items,
    };
    let raw: RawProjects = serde_saphyr::from_str(text).map_err(|e| {
        fail(vec![Diagnostic::new(
            "W001",
            e.location().map(Pos::from),
            e.without_snippet().to_string(),
            "a projects file is `projects:` with a list of { name, file } or { name, git, ref, path, webhook_secret }",
        )])
    })?;
    let mut items = Vec::new();
    if raw.projects.is_empty() {
        items.push(Diagnostic::new(
            "W002",
            None,
            "the projects file lists no project",
            "add one: `projects: [{ name: shop, file: shop/services.yaml }]`",
        ));
    }
    let mut names = BTreeSet::new();
    let mut entries = Vec::new();
    for p in raw.projects {
        let (name, at) = (p.name.value, Pos::from(p.name.referenced));
        if !super::spec::is_valid_name(&name) {
            items.push(Diagnostic::new(
                "W003",
                Some(at),
                format!("project name `{name}` is not valid"),
                "use a lowercase letter, then up to 31 lowercase letters, digits or dashes: the name its services file gives as `project:`",
            ));
        }
        if !names.insert(name.clone()) {
            items.push(Diagnostic::new(
                "W004",
                Some(at),
                format!("project `{name}` is listed twice"),
                "list each project once; two daemons' worth of one project would undo each other",
            ));
        }
        let git_only = [
            ("ref", &p.reference),
            ("path", &p.path),
            ("webhook_secret", &p.webhook_secret),
        ];
        let source = match (p.file, p.git) {
            (Some(f), None) => {
                for (key, v) in git_only {
                    if let Some(v) = v {
                        items.push(Diagnostic::new(
                            "W005",
                            Some(Pos::from(v.referenced)),
                            format!(
                                "project `{name}`: `{key}` is for a project followed from `git`"
                            ),
                            "remove it, or follow a repository with `git: URL` instead of `file`",
                        ));
                    }
                }
                ProjectSource::File(f.value)
            }
            (None, Some(url)) => ProjectSource::Git {
                url: url.value,
                reference: p.reference.map_or("main".into(), |r| r.value),
                path: p.path.map_or("services.yaml".into(), |r| r.value),
            },
            (file, git) => {
                let both = file.is_some() && git.is_some();
                items.push(Diagnostic::new(
                    "W006",
                    Some(at),
                    match both {
                        true => format!("project `{name}` names both `file` and `git`"),
                        false => format!("project `{name}` names neither `file` nor `git`"),
                    },
                    "give each project one source: `file: PATH` or `git: URL`",
                ));
                continue;
            }
        };
        entries.push(ProjectEntry {
            name,
            source,
            webhook_secret: p.webhook_secret.map(|w| w.value),
        });
    }
    if items.is_empty() {
        Ok(entries)
    } else {
        Err(fail(items))
    }
}
