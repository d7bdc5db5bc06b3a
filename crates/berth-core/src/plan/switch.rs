//! The routing step of a plan: a change of a service's active version as
//! one step that moves its route and network name, restarting nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Desired, Reason, Step, Switch};

/// The routing step, when a service's active version is not the one the
/// routes record names (or a switch was interrupted): no container restarts.
pub(super) fn route_step(
    project: &str,
    routes: &crate::active::Routes,
    targets: &BTreeMap<&str, &str>,
    held: &BTreeMap<&str, &String>,
    desired: &Desired,
) -> Option<Step> {
    let mut switches = Vec::new();
    let mut reasons = Vec::new();
    for (&service, &to) in targets {
        let from = routes.of(service).filter(|f| *f != to);
        let releasing = routes.releasing.get(service).cloned().unwrap_or_default();
        if routes.of(service) == Some(to) && releasing.is_empty() {
            continue;
        }
        let mut release: Vec<String> = from.map(String::from).into_iter().collect();
        release.extend(releasing.into_iter().filter(|v| v != to));
        release.sort();
        release.dedup();
        reasons.push(Reason::note(match from {
            Some(f) => format!(
                "{project}/{service}: active {f} -> {to}: the gateway's route and the service's network name move; no container restarts"
            ),
            None if routes.of(service) == Some(to) => format!(
                "{project}/{service}: {to} keeps the service's path; an interrupted switch left {} answering to its name",
                release.join(", ")
            ),
            None => format!("{project}/{service}: {to} takes the service's path"),
        }));
        if let Some(said) = held.get(service) {
            reasons.push(Reason::note(format!(
                "{said} until its retry passes; this step runs only then"
            )));
        }
        switches.push(Switch {
            service: service.to_string(),
            from: from.map(String::from),
            to: to.to_string(),
            release,
        });
    }
    if switches.is_empty() {
        return None;
    }
    let declared: BTreeSet<&str> = desired
        .containers
        .iter()
        .map(|c| c.service.as_str())
        .collect();
    let mut active = routes.active.clone();
    active.retain(|service, _| declared.contains(service.as_str()));
    for s in &switches {
        active.insert(s.service.clone(), s.to.clone());
    }
    Some(Step {
        action: Action::Route {
            generation: routes.generation,
            active,
            records: routes.records.clone(),
            switches,
        },
        reasons,
    })
}
