//! Which version of each service is active, as a record on the engine: a
//! switch moves a route and a network alias, never a container.
//!
//! A container's labels are fixed at create, so the active mark cannot live on
//! the container. It lives in one small labelled volume per project (the
//! routes record, `<project>-berth-routes-<generation>`), which the engine's
//! volume list returns with the containers' list: reading it costs no extra
//! call. A switch writes a new generation and removes the old one; the highest
//! generation wins, so a switch killed between the two writes reads as the
//! newer record. While a version gives up the service's network name, the
//! record says so (`releasing`), and the next plan finishes the move.
//!
//! Before the record existed, the active version carried `berth.active=true`
//! on its container: with no record, that label is read instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::desired::{
    container_name, DesiredVolume, LABEL_ACTIVE, LABEL_PROJECT, LABEL_SERVICE, LABEL_VERSION,
};
use super::observed::Observed;
use super::role::ContainerRole;

/// On the record volume: its generation.
pub const LABEL_ROUTES: &str = "berth.routes";
/// `berth.active.<service>` = the active version.
pub const ACTIVE_PREFIX: &str = "berth.active.";
/// `berth.releasing.<service>` = versions (comma-separated) whose hold on the
/// service's network name is being taken away.
pub const RELEASING_PREFIX: &str = "berth.releasing.";

/// The active version of each service, as recorded on the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// The record's generation; 0 when there is none.
    pub generation: u64,
    /// Service -> its active version.
    pub active: BTreeMap<String, String>,
    /// Service -> versions that may still answer to the service's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub releasing: BTreeMap<String, Vec<String>>,
    /// The record volumes there are now (more than one after an interrupted
    /// switch); a new record removes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<String>,
}

impl Routes {
    /// The version the service path goes to, if any.
    pub fn of(&self, service: &str) -> Option<&str> {
        self.active.get(service).map(String::as_str)
    }

    pub fn is_active(&self, service: &str, version: &str) -> bool {
        self.of(service) == Some(version)
    }
}

/// The record volume's name for a generation.
pub fn record_name(project: &str, generation: u64) -> String {
    format!("{project}-berth-routes-{generation}")
}

/// The volume that records `active` (and `releasing`) as generation `generation`.
pub fn record(
    project: &str,
    generation: u64,
    active: &BTreeMap<String, String>,
    releasing: &BTreeMap<String, Vec<String>>,
) -> DesiredVolume {
    let mut labels = BTreeMap::from([
        (LABEL_PROJECT.to_string(), project.to_string()),
        (LABEL_ROUTES.to_string(), generation.to_string()),
    ]);
    for (service, version) in active {
        labels.insert(format!("{ACTIVE_PREFIX}{service}"), version.clone());
    }
    for (service, versions) in releasing.iter().filter(|(_, v)| !v.is_empty()) {
        labels.insert(format!("{RELEASING_PREFIX}{service}"), versions.join(","));
    }
    DesiredVolume {
        name: record_name(project, generation),
        labels,
    }
}

/// Whether a volume is a routes record (it is never a keep).
pub fn is_record(labels: &BTreeMap<String, String>) -> bool {
    labels.contains_key(LABEL_ROUTES)
}

/// The routes as the engine holds them: the newest record of the project, or,
/// with none, the `berth.active` labels of the versions under their own names.
pub fn observed(project: &str, observed: &Observed) -> Routes {
    let records: Vec<(u64, &BTreeMap<String, String>, &str)> = observed
        .volumes
        .iter()
        .filter(|v| super::observed::owned(&v.labels, project) && is_record(&v.labels))
        .filter_map(|v| {
            let generation = v.labels.get(LABEL_ROUTES)?.parse().ok()?;
            Some((generation, &v.labels, v.name.as_str()))
        })
        .collect();
    let names = records.iter().map(|(_, _, n)| n.to_string()).collect();
    let Some((generation, labels, _)) = records.iter().max_by_key(|(g, _, _)| *g) else {
        return legacy(project, observed);
    };
    let mut routes = Routes {
        generation: *generation,
        records: names,
        ..Routes::default()
    };
    for (key, value) in labels.iter() {
        if let Some(service) = key.strip_prefix(ACTIVE_PREFIX) {
            routes.active.insert(service.to_string(), value.clone());
        } else if let Some(service) = key.strip_prefix(RELEASING_PREFIX) {
            let versions = value.split(',').filter(|v| !v.is_empty());
            routes
                .releasing
                .insert(service.to_string(), versions.map(String::from).collect());
        }
    }
    routes
}

/// Before the record: the version labelled active under a name that may
/// serve (its own, or `-old-` while a replace renames).
fn legacy(project: &str, observed: &Observed) -> Routes {
    let mut routes = Routes::default();
    for c in observed.containers.iter().filter(|c| c.owned_by(project)) {
        let (service, version) = (c.label(LABEL_SERVICE), c.label(LABEL_VERSION));
        let serves = ContainerRole::of(&c.name, &container_name(project, service, version))
            .is_some_and(ContainerRole::may_serve);
        if c.label(LABEL_ACTIVE) == "true" && serves {
            routes
                .active
                .insert(service.to_string(), version.to_string());
        }
    }
    routes
}
