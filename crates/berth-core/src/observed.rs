//! What the engine holds under a project's names, as plain values, and the
//! summary and fingerprint a saved plan is checked against.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::desired::{LABEL_HASH, LABEL_PROJECT, LABEL_SERVICE, LABEL_VERSION};
use super::hash::lines_hash;

/// A published port of an observed container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub private: u16,
    pub public: Option<u16>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainer {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The engine's state word: running, exited, created, paused, restarting, dead.
    pub state: String,
    /// The engine's human status ("Up 3 minutes", "Exited (1) 2 seconds ago").
    pub status: String,
    pub ports: Vec<PortBinding>,
    /// Its address on each network it is attached to (one host): a gateway on
    /// the same host reaches it there, without the published port's proxy.
    /// Not in the summary: an address says nothing about what the plan does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedObject {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What the engine holds under the project's names, ours or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedObject>,
    pub volumes: Vec<ObservedObject>,
}

pub fn owned(labels: &BTreeMap<String, String>, project: &str) -> bool {
    labels.get(LABEL_PROJECT).map(String::as_str) == Some(project)
}

impl ObservedContainer {
    pub fn owned_by(&self, project: &str) -> bool {
        owned(&self.labels, project)
    }
    /// The configuration it was created with (its `berth.config` label).
    pub fn recorded_config(&self) -> Option<super::hash::ContainerConfig> {
        super::desired::recorded_config(&self.labels)
    }
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }
    /// The health check it was created with (its `berth.health` label).
    pub fn health_check(&self) -> super::spec::HealthCheck {
        super::spec::HealthCheck::from_label(
            self.labels
                .get(super::desired::LABEL_HEALTH)
                .map(String::as_str),
        )
    }
    /// `project/service@version` for owned containers, the name otherwise.
    pub fn subject(&self, project: &str) -> String {
        format!(
            "{project}/{}@{}",
            self.label(LABEL_SERVICE),
            self.label(LABEL_VERSION)
        )
    }
}

impl Observed {
    /// One line per observed object: what a saved plan's fingerprint is taken over,
    /// and what `apply --plan` compares to say what changed.
    pub fn summary(&self, project: &str) -> Vec<String> {
        let who = |labels: &BTreeMap<String, String>| {
            if owned(labels, project) {
                "owned"
            } else {
                "not-owned"
            }
        };
        let mut lines = Vec::new();
        for c in &self.containers {
            let hash = c.labels.get(LABEL_HASH).map(|h| short(h)).unwrap_or("-");
            lines.push(format!(
                "container {} id={} {} hash={} state={}",
                c.name,
                short(&c.id),
                who(&c.labels),
                hash,
                c.state
            ));
        }
        for n in &self.networks {
            lines.push(format!(
                "network {} id={} {}",
                n.name,
                short(&n.id),
                who(&n.labels)
            ));
        }
        for v in &self.volumes {
            lines.push(format!("volume {} {}", v.name, who(&v.labels)));
        }
        lines.sort();
        lines
    }

    pub fn fingerprint(&self, project: &str) -> String {
        lines_hash(&self.summary(project))
    }
}

pub use super::hash::short;

/// What changed between a saved plan's summary (`was`) and the summary now, one
/// line each: `- was: ...` for what is gone, `+ now: ...` for what is new.
pub fn stale_changes(was: &[String], now: &[String]) -> Vec<String> {
    let gone = was
        .iter()
        .filter(|l| !now.contains(l))
        .map(|l| format!("- was: {l}"));
    let new = now
        .iter()
        .filter(|l| !was.contains(l))
        .map(|l| format!("+ now: {l}"));
    gone.chain(new).collect()
}

/// An observation looked up by name and by version, built once per plan: a
/// plan over N declared versions and N containers is then N lookups, not N²
/// scans (1,000 services took a no-op plan 200 ms, most of it comparing names).
pub struct Index<'a> {
    /// The project's own containers, in the observation's order.
    pub ours: Vec<&'a ObservedContainer>,
    /// Ours by every canonical name each may play a role for.
    by_canonical: HashMap<&'a str, Vec<&'a ObservedContainer>>,
    /// Ours by their service and version labels.
    by_version: HashMap<&'a str, HashMap<&'a str, Vec<&'a ObservedContainer>>>,
    /// Containers under the project's names that are not ours, by name.
    foreign: HashMap<&'a str, &'a ObservedContainer>,
}

impl<'a> Index<'a> {
    pub fn new(observed: &'a Observed, project: &str) -> Index<'a> {
        let mut index = Index {
            ours: Vec::new(),
            by_canonical: HashMap::new(),
            by_version: HashMap::new(),
            foreign: HashMap::new(),
        };
        for c in &observed.containers {
            if !c.owned_by(project) {
                index.foreign.entry(c.name.as_str()).or_insert(c);
                continue;
            }
            index.ours.push(c);
            for name in super::role::ContainerRole::canonicals(&c.name) {
                index.by_canonical.entry(name).or_default().push(c);
            }
            let (service, version) = (c.label(LABEL_SERVICE), c.label(LABEL_VERSION));
            index
                .by_version
                .entry(service)
                .or_default()
                .entry(version)
                .or_default()
                .push(c);
        }
        index
    }

    /// Ours whose name is `canonical` or one of its roles (`-next-`, ...).
    pub fn of_canonical(&self, canonical: &str) -> &[&'a ObservedContainer] {
        self.by_canonical.get(canonical).map_or(&[], Vec::as_slice)
    }

    /// Ours labelled with this service and version.
    pub fn of_version(&self, service: &str, version: &str) -> &[&'a ObservedContainer] {
        self.by_version
            .get(service)
            .and_then(|v| v.get(version))
            .map_or(&[], Vec::as_slice)
    }

    /// A container named `name` that is not ours.
    pub fn foreign(&self, name: &str) -> Option<&'a ObservedContainer> {
        self.foreign.get(name).copied()
    }

    /// Whether any of ours belongs to `service`.
    pub fn has_service(&self, service: &str) -> bool {
        self.by_version.contains_key(service)
    }
}
