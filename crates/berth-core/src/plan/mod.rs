//! Planning: `plan(desired, observed) -> Plan`, a pure function with a reason per step.
//!
//! The plan is a value: `berth plan` renders it, `--out` saves it, and `apply`
//! executes exactly its steps. Nothing here talks to the engine. One job a
//! file: `objects` (networks, volumes), `builds` (bases, images),
//! `versions` (each declared version's step, leftovers, removals), `switch`
//! (the routing step); this file puts them in order.

mod builds;
mod objects;
mod switch;
mod versions;

pub use builds::builds_only;

use std::collections::BTreeMap;

use super::desired::{
    Desired, DesiredContainer, LABEL_ACTIVE, LABEL_HASH, LABEL_PROJECT, LABEL_SERVICE,
};
use super::diag::Diagnostic;

pub use super::observed::{
    short, stale_changes, Observed, ObservedContainer, ObservedObject, PortBinding,
};

pub use super::steps::{Action, ContainerRef, Plan, Reason, Step, Switch, SENSITIVE};

pub struct Options {
    /// Allow a file with no services to remove everything (Argo CD's `allowEmpty`).
    pub allow_empty: bool,
    /// Try again a configuration that already failed its health gate (its failed
    /// container kept aside has the same hash). `apply` does; the daemon does only
    /// on its resync timer or when asked, so failures never feed a retry storm.
    pub retry_failed: bool,
}

/// Computes the steps that take `observed` to `desired`. Refuses, before any step,
/// when a desired name is held by an object berth does not own, or when an empty
/// file would remove everything without `allow_empty`.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    opts: &Options,
) -> Result<Plan, Vec<Diagnostic>> {
    let project = desired.project.as_str();
    let index = super::observed::Index::new(observed, project);
    if desired.containers.is_empty() && !index.ours.is_empty() && !opts.allow_empty {
        return Err(vec![Diagnostic::new(
            "P001",
            None,
            format!(
                "the file declares no services, and applying it would remove all {} containers of project `{project}`",
                index.ours.len()
            ),
            "pass --allow-empty if removing everything is what you want, or use `berth destroy`",
        )]);
    }
    let mut problems = Vec::new();
    let mut steps = objects::networks(desired, observed, project, &mut problems);
    steps.extend(objects::volumes(
        desired,
        observed,
        &index.ours,
        project,
        &mut problems,
    ));
    steps.extend(builds::steps(desired));
    let routes = super::active::observed(project, observed);
    let versions = versions::plan(desired, &index, &routes, opts, &mut problems);
    steps.extend(versions.steps);
    // A switch away from a version that holds the path for a failed one runs
    // only once the retry passed its gate (an earlier phase): said on it.
    let held: BTreeMap<&str, &String> = versions
        .serving
        .iter()
        .filter_map(|(name, said)| {
            let c = index.ours.iter().find(|c| c.name == *name)?;
            Some((c.label(LABEL_SERVICE), said))
        })
        .collect();
    steps.extend(switch::route_step(
        project,
        &routes,
        &versions.targets,
        &held,
        desired,
    ));
    steps.extend(objects::unused_networks(desired, observed, project));
    if !problems.is_empty() {
        return Err(problems);
    }
    // Stable order: by phase, then by subject.
    steps.sort_by(|a, b| {
        (a.action.phase(), a.action.subject(project))
            .cmp(&(b.action.phase(), b.action.subject(project)))
    });
    let mut unchanged = versions.unchanged;
    unchanged.sort();
    Ok(Plan {
        project: project.to_string(),
        engine: Default::default(),
        fingerprint: observed.fingerprint(project),
        observed: observed.summary(project),
        steps,
        unchanged,
        failed: versions.failed,
        warnings: desired.warnings.clone(),
        secrets_file: None,
    })
}

pub(super) fn taken(kind: &str, name: &str, id: &str, project: &str) -> Diagnostic {
    Diagnostic::new("P002",
        None,
        format!(
            "{kind} name `{name}` is taken by a {kind} berth does not manage (id {}, no label {LABEL_PROJECT}={project})",
            short(id)
        ),
        format!("remove or rename that {kind} yourself, or rename the project: berth never touches what it does not own"),
    )
}

/// The host port a container publishes on this host's loopback.
pub(super) fn host_port(c: &ObservedContainer) -> Option<u16> {
    c.ports
        .iter()
        .filter(|p| matches!(p.ip.as_deref(), Some("127.0.0.1") | None))
        .find_map(|p| p.public)
}

/// Whether a replace starts the new container beside the old one: without a
/// fixed port or keeps (two processes must not share them), as `rollout` does.
pub fn side_by_side(d: &DesiredContainer) -> bool {
    d.config.publish.is_none() && d.config.mounts.is_empty()
}

/// Whether an observed container runs the desired configuration: its hash,
/// or a hash berth gave the same configuration before (see
/// [`DesiredContainer::earlier_hashes`]).
pub(super) fn fits(c: &ObservedContainer, d: &DesiredContainer) -> bool {
    let hash = c.label(LABEL_HASH);
    hash == d.hash
        || d.earlier_hashes(c.label(LABEL_ACTIVE) == "true")
            .iter()
            .any(|h| h == hash)
}
