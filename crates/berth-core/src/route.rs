//! Routing: which container a gateway request goes to. Pure: built from the
//! observed containers (their ports, and the labels berth gave them from the spec:
//! path, scope, active, public).
//!
//! `/<path>/...` goes to the active version, `/<path>@<version>/...` to any
//! declared one; a database-scoped service lives under `/_db/<db>/<path>`, and a
//! global one answers at `/<path>` and under every database's prefix too. The
//! matched prefix is stripped, so a service serves itself at `/`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::desired::{
    container_name, LABEL_PATH, LABEL_PROJECT, LABEL_PUBLIC, LABEL_SCOPE, LABEL_SERVICE,
    LABEL_VERSION,
};
use super::plan::Observed;
use super::role::ContainerRole;

/// Where one prefix goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The loopback port of the container that serves it (on a swarm, the
    /// first task's port).
    pub port: u16,
    /// On a swarm: every running task, as `node-address:port` (published in
    /// host mode on its node); empty on one host, where `port` is the backend.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
    /// On one host: the container's own address and port (`ip:port`), which a
    /// gateway on the same host tries before the loopback port. The loopback
    /// port goes through the engine's port proxy, one more copy of every byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct: Option<String>,
    /// The project the service is of (a daemon may route for several).
    pub project: String,
    pub service: String,
    pub version: String,
    /// Served without a token.
    pub public: bool,
}

/// Prefix -> route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteTable {
    pub routes: BTreeMap<String, Route>,
}

/// A request path resolved: the route, the matched prefix, and the rest (at least `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub route: &'a Route,
    pub prefix: &'a str,
    pub rest: String,
}

impl RouteTable {
    /// The longest prefix that matches `path` at a segment boundary.
    pub fn resolve(&self, path: &str) -> Option<Resolved<'_>> {
        let mut best: Option<(&String, &Route)> = None;
        for (prefix, route) in &self.routes {
            let boundary = path == prefix.as_str()
                || (path.starts_with(prefix.as_str())
                    && path.as_bytes().get(prefix.len()) == Some(&b'/'));
            if boundary && best.is_none_or(|(b, _)| prefix.len() > b.len()) {
                best = Some((prefix, route));
            }
        }
        let (prefix, route) = best?;
        let rest = &path[prefix.len()..];
        Some(Resolved {
            route,
            prefix,
            rest: if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            },
        })
    }
}

/// The routes over what runs, from the containers (their labels say path,
/// scope and public) and the routes record (which version is active), so
/// every gateway follows what was converged. Only
/// running, published containers of the project are routed to. A version is
/// served by the container under its own name; while a replace renames
/// containers, by its predecessor (`-old-`) until the successor takes the name,
/// never by a successor still on probation (`-next-`) or a failed one.
pub fn routes(project: &str, observed: &Observed) -> RouteTable {
    struct Seen<'a> {
        canonical: bool,
        port: u16,
        backends: Vec<String>,
        direct: Option<String>,
        labels: &'a BTreeMap<String, String>,
    }
    let mut seen: BTreeMap<(&str, &str), Seen> = BTreeMap::new();
    let mut databases = BTreeSet::new();
    for c in &observed.containers {
        if c.state != "running" || c.labels.get(LABEL_PROJECT).map(String::as_str) != Some(project)
        {
            continue;
        }
        let (Some(service), Some(version), Some(_)) = (
            c.labels.get(LABEL_SERVICE),
            c.labels.get(LABEL_VERSION),
            c.labels.get(LABEL_PATH),
        ) else {
            continue;
        };
        if !ContainerRole::of_labelled(&c.name, project, service, version)
            .is_some_and(ContainerRole::may_serve)
        {
            continue;
        }
        let Some((port, private)) = c.ports.iter().find_map(|p| Some((p.public?, p.private)))
        else {
            continue;
        };
        if let Some(db) = c.label(LABEL_SCOPE).strip_prefix("database:") {
            databases.insert(db.to_string());
        }
        let canonical = c.name == container_name(project, service, version);
        let key = (service.as_str(), version.as_str());
        if seen.get(&key).is_none_or(|s| canonical && !s.canonical) {
            seen.insert(
                key,
                Seen {
                    canonical,
                    port,
                    backends: remote_backends(&c.ports),
                    direct: c.addresses.first().map(|ip| match ip.contains(':') {
                        true => format!("[{ip}]:{private}"),
                        false => format!("{ip}:{private}"),
                    }),
                    labels: &c.labels,
                },
            );
        }
    }
    let active = super::active::observed(project, observed);
    let mut table = RouteTable::default();
    for ((service, version), s) in &seen {
        let label = |k: &str| s.labels.get(k).map(String::as_str).unwrap_or("");
        let route = Route {
            port: s.port,
            backends: s.backends.clone(),
            direct: s.backends.is_empty().then(|| s.direct.clone()).flatten(),
            project: project.to_string(),
            service: service.to_string(),
            version: version.to_string(),
            public: label(LABEL_PUBLIC) == "true",
        };
        let path = label(LABEL_PATH);
        let prefixes: Vec<String> = match label(LABEL_SCOPE).strip_prefix("database:") {
            Some(db) => vec![format!("/_db/{db}")],
            None => std::iter::once(String::new())
                .chain(databases.iter().map(|d| format!("/_db/{d}")))
                .collect(),
        };
        for base in prefixes {
            table
                .routes
                .insert(format!("{base}{path}@{version}"), route.clone());
            if active.is_active(service, version) {
                table.routes.insert(format!("{base}{path}"), route.clone());
            }
        }
    }
    table
}

/// A prefix one project's routes would take from another's: the gateway
/// keeps it for the project listed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The project whose route is left out.
    pub project: String,
    pub prefix: String,
    /// The project that routes there (or above it) already.
    pub holder: String,
    pub holder_prefix: String,
}

/// Whether two prefixes would share requests: the same, or one above the
/// other at a segment boundary (`/api` and `/api/v2`).
fn overlap(a: &str, b: &str) -> bool {
    let under = |long: &str, short: &str| {
        long.starts_with(short)
            && (long.len() == short.len()
                || short.ends_with('/')
                || long.as_bytes().get(short.len()) == Some(&b'/'))
    };
    under(a, b) || under(b, a)
}

/// One gateway's table over several projects' (in the order the projects
/// are listed): a project never takes a prefix, or a path under or above
/// one, that a project listed before it routes, so no project's requests
/// can be drawn off by another's file. What is left out is said.
pub fn merge(tables: &[(&str, &RouteTable)]) -> (RouteTable, Vec<Conflict>) {
    let mut merged = RouteTable::default();
    let mut conflicts = Vec::new();
    for (project, table) in tables {
        let mut taken = Vec::new();
        for (prefix, route) in &table.routes {
            let held = merged
                .routes
                .iter()
                .find(|(p, r)| r.project != *project && overlap(p, prefix));
            match held {
                Some((p, r)) => conflicts.push(Conflict {
                    project: project.to_string(),
                    prefix: prefix.clone(),
                    holder: r.project.clone(),
                    holder_prefix: p.clone(),
                }),
                None => taken.push((prefix.clone(), route.clone())),
            }
        }
        merged.routes.extend(taken);
    }
    (merged, conflicts)
}

/// The bindings on an address other than this host's loopback or any: a
/// swarm's tasks, each on its node's address.
fn remote_backends(ports: &[super::observed::PortBinding]) -> Vec<String> {
    ports
        .iter()
        .filter_map(|p| {
            let (ip, port) = (p.ip.as_deref()?, p.public?);
            let local = ["", "127.0.0.1", "0.0.0.0", "::", "::1"].contains(&ip);
            (!local).then(|| match ip.contains(':') {
                true => format!("[{ip}]:{port}"),
                false => format!("{ip}:{port}"),
            })
        })
        .collect()
}

/// Whether a request path has a `.` or `..` segment, percent-encoded or not:
/// the gateway routes by the path as written, so such a path could name one
/// service's prefix and reach another's.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    })
}

/// What the gateway does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<'a> {
    /// Send it on, with every header that carries a berth credential removed
    /// first (`credential::scrub`): a credential is for berth, never for the
    /// service behind it, public or private.
    Forward { to: Resolved<'a> },
    /// The path holds `.` or `..` segments: 400.
    DotSegment,
    /// No known token, for a private path or one nothing is routed at: one
    /// answer for both, so a stranger learns nothing of what exists (401).
    Unauthenticated,
    /// A known token (named) without services:view, for a private route (403).
    Forbidden { token: String, route: &'a Route },
    /// Nothing is routed there, told to a caller with a token (404).
    NotFound,
}

/// The gateway's rule for a request to `path` presenting `token` (as
/// `credential::presented` reads it): private routes need a token with
/// services:view in the route's project.
pub fn admit<'a>(
    table: &'a RouteTable,
    tokens: &super::access::Tokens,
    path: &str,
    token: Option<&str>,
) -> Admission<'a> {
    use super::access::{Decision, Permission, Scope};
    if has_dot_segment(path) {
        return Admission::DotSegment;
    }
    let Some(to) = table.resolve(path) else {
        return match tokens.decide(token, Permission::ServicesView, Scope::Any) {
            Decision::Unauthenticated => Admission::Unauthenticated,
            _ => Admission::NotFound,
        };
    };
    if !to.route.public {
        let scope = Scope::Project(&to.route.project);
        match tokens.decide(token, Permission::ServicesView, scope) {
            Decision::Allow(_) => {}
            Decision::Unauthenticated => return Admission::Unauthenticated,
            Decision::Forbidden(token) => {
                return Admission::Forbidden {
                    token,
                    route: to.route,
                }
            }
        }
    }
    Admission::Forward { to }
}
