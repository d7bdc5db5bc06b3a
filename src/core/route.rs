//! Routing: which container a gateway request goes to. Pure: built from the spec
//! (paths, active versions, scopes) and the observed containers (their ports).
//!
//! `/<path>/...` goes to the active version, `/<path>@<version>/...` to any
//! declared one; a database-scoped service lives under `/_db/<db>/<path>`, and a
//! global one answers at `/<path>` and under every database's prefix too. The
//! matched prefix is stripped, so a service serves itself at `/`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::desired::{container_name, LABEL_PROJECT};
use super::plan::Observed;
use super::spec::{Scope, Spec};

/// Prefix -> the loopback port of the container that serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteTable {
    pub routes: BTreeMap<String, u16>,
}

impl RouteTable {
    /// The longest prefix that matches `path` at a segment boundary: its port, the
    /// prefix, and the rest of the path (at least `/`).
    pub fn resolve(&self, path: &str) -> Option<(u16, String, String)> {
        let mut best: Option<(&String, u16)> = None;
        for (prefix, port) in &self.routes {
            let boundary = path == prefix.as_str()
                || (path.starts_with(prefix.as_str())
                    && path.as_bytes().get(prefix.len()) == Some(&b'/'));
            if boundary && best.is_none_or(|(b, _)| prefix.len() > b.len()) {
                best = Some((prefix, *port));
            }
        }
        let (prefix, port) = best?;
        let rest = &path[prefix.len()..];
        Some((
            port,
            prefix.clone(),
            if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            },
        ))
    }
}

/// The routes of a spec over what runs: only running, published containers of
/// the project are routed to.
pub fn routes(spec: &Spec, observed: &Observed) -> RouteTable {
    let mut ports: BTreeMap<&str, u16> = BTreeMap::new();
    for c in &observed.containers {
        if c.state != "running"
            || c.labels.get(LABEL_PROJECT).map(String::as_str) != Some(spec.project.as_str())
        {
            continue;
        }
        if let Some(port) = c.ports.iter().find_map(|p| p.public) {
            ports.insert(&c.name, port);
        }
    }
    let databases = spec.databases();
    let mut table = RouteTable::default();
    for svc in &spec.services {
        for v in &svc.versions {
            let name = container_name(&spec.project, &v.service, &v.version.to_string());
            let Some(&port) = ports.get(name.as_str()) else {
                continue;
            };
            let prefixes: Vec<String> = match &v.scope {
                Scope::Database(d) => vec![format!("/_db/{d}")],
                Scope::Global => std::iter::once(String::new())
                    .chain(databases.iter().map(|d| format!("/_db/{d}")))
                    .collect(),
            };
            for base in prefixes {
                table
                    .routes
                    .insert(format!("{base}{}@{}", v.path, v.version), port);
                if v.version == svc.active {
                    table.routes.insert(format!("{base}{}", v.path), port);
                }
            }
        }
    }
    table
}
