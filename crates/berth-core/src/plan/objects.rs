//! The networks and volumes of a plan: created where missing (a keep's data
//! migrated from the name an earlier berth gave it), refused where another
//! owner holds the name, removed once no service uses them.

use std::collections::{BTreeMap, BTreeSet};

use super::{taken, Action, ContainerRef, Observed, ObservedContainer, Reason, Step};
use crate::desired::{legacy_volume_name, Desired, LABEL_KEEP, LABEL_SERVICE};
use crate::diag::Diagnostic;
use crate::observed::owned;

/// Each desired network the engine lacks; a name another owner holds is a
/// problem.
pub(super) fn networks(
    desired: &Desired,
    observed: &Observed,
    project: &str,
    problems: &mut Vec<Diagnostic>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for net in &desired.networks {
        match observed.networks.iter().find(|n| n.name == net.name) {
            Some(n) if owned(&n.labels, project) => {}
            Some(n) => problems.push(taken("network", &net.name, &n.id, project)),
            None => steps.push(Step {
                action: Action::CreateNetwork {
                    network: net.clone(),
                },
                reasons: vec![Reason::note(match net.serve {
                    true => "where the gateways reach the project's versions",
                    false => "needed by the services of this scope",
                })],
            }),
        }
    }
    steps
}

/// Each keep's volume the engine lacks, or whose data an older name holds.
pub(super) fn volumes(
    desired: &Desired,
    observed: &Observed,
    ours: &[&ObservedContainer],
    project: &str,
    problems: &mut Vec<Diagnostic>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for vol in &desired.volumes {
        let keep = vol
            .labels
            .get(LABEL_KEEP)
            .map(String::as_str)
            .unwrap_or("?");
        let service = vol
            .labels
            .get(LABEL_SERVICE)
            .map(String::as_str)
            .unwrap_or("?");
        let exists = observed.volumes.iter().find(|v| v.name == vol.name);
        if let Some(v) = exists.filter(|v| !owned(&v.labels, project)) {
            problems.push(taken("volume", &vol.name, &v.id, project));
            continue;
        }
        // The volume an earlier berth gave this keep, under a name two keeps
        // could share: its data comes over, and comes over again while a
        // container still uses it (a replace that failed put that one back).
        let legacy = legacy_volume_name(project, service, keep);
        let from = observed
            .volumes
            .iter()
            .find(|v| v.name == legacy && owned(&v.labels, project));
        let users: Vec<ContainerRef> = ours
            .iter()
            .filter(|c| mounts_of(c).values().any(|m| *m == legacy))
            .map(|c| ContainerRef {
                id: c.id.clone(),
                name: c.name.clone(),
                subject: c.subject(project),
            })
            .collect();
        let step = match (exists, from) {
            (_, Some(from)) if exists.is_none() || !users.is_empty() => Step {
                action: Action::MigrateVolume {
                    volume: vol.clone(),
                    from: from.name.clone(),
                    stop: users,
                },
                reasons: vec![Reason::note(format!(
                    "keeps {keep} of {service}: `{}` is the name an earlier berth gave it, which another keep could share; its data is copied here (it stays)",
                    from.name
                ))],
            },
            (Some(_), _) => continue,
            (None, _) => Step {
                action: Action::CreateVolume {
                    volume: vol.clone(),
                },
                reasons: vec![Reason::note(format!("keeps {keep} of {service}"))],
            },
        };
        steps.push(step);
    }
    steps
}

/// The project's networks no desired service uses any more.
pub(super) fn unused_networks(desired: &Desired, observed: &Observed, project: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let wanted: BTreeSet<&str> = desired.networks.iter().map(|n| n.name.as_str()).collect();
    for n in observed
        .networks
        .iter()
        .filter(|n| owned(&n.labels, project))
    {
        if !wanted.contains(n.name.as_str()) {
            steps.push(Step {
                action: Action::RemoveNetwork {
                    id: n.id.clone(),
                    name: n.name.clone(),
                },
                reasons: vec![Reason::note("no service uses it any more")],
            });
        }
    }
    steps
}

/// Keep path -> volume, as the container's recorded configuration says.
fn mounts_of(c: &ObservedContainer) -> BTreeMap<String, String> {
    c.recorded_config()
        .map(|config| config.mounts)
        .unwrap_or_default()
}
