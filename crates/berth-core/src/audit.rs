//! Auditing a plan read back from a file (`apply --plan`): a file can be edited,
//! so every step must act on what the project owns as observed now, under the
//! name and for the version the step says, and every value must be one berth
//! could have written. Pure; the shell checks ownership once more right before
//! each action, against what the engine says then.

use std::collections::BTreeMap;

use super::desired::{
    container_name, network_name, serve_network_name, DesiredContainer, LABEL_PROJECT,
    LABEL_SERVICE, LABEL_VERSION,
};
use super::diag::Diagnostic;
use super::observed::{owned, Observed};
use super::plan::{Action, ContainerRef, Plan};
use super::role::ContainerRole;
use super::spec::is_valid_name;

const HELP: &str =
    "make the plan again with `berth plan --out FILE`: a saved plan is applied only as berth wrote it";

/// Every way the plan's steps reach beyond what `plan.project` owns now, or carry
/// values berth never writes. Empty: the plan may run. `asset_root` is the cache
/// folder a container's asset files must come from.
pub fn audit(plan: &Plan, observed: &Observed, asset_root: &str) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let project = plan.project.as_str();
    if !is_valid_name(project) {
        problems.push(Diagnostic::new(
            "A001",
            None,
            format!("the plan names project `{project}`, which is not a project name"),
            HELP,
        ));
        return problems;
    }
    let mut bad = |message: String| problems.push(Diagnostic::new("A002", None, message, HELP));
    for step in &plan.steps {
        if let Some(c) = step.action.existing(project) {
            // Leftovers and predecessors are removed or put back from a
            // temporary name, never from the canonical one.
            let aside = matches!(
                step.action,
                Action::RemoveLeftover { .. } | Action::RestoreContainer { .. }
            );
            existing(observed, project, &c, aside, &mut bad);
        }
        match &step.action {
            Action::StartContainer { .. }
            | Action::RestartContainer { .. }
            | Action::RemoveContainer { .. }
            | Action::RemoveLeftover { .. } => {}
            Action::RestoreContainer {
                name, canonical, ..
            } => {
                if ContainerRole::of(name, canonical) != Some(ContainerRole::Old) {
                    bad(format!(
                        "`{name}` is not a predecessor of `{canonical}` moved aside"
                    ));
                }
            }
            Action::ReplaceContainer { container, .. } => {
                desired(project, container, plan, observed, asset_root, &mut bad);
            }
            Action::CreateContainer { container } => {
                desired(project, container, plan, observed, asset_root, &mut bad)
            }
            Action::CreateNetwork { network } => {
                // The serve network is marked as such, and only it.
                let expected = match network.serve {
                    true => network.name == serve_network_name(project),
                    false => {
                        network
                            .name
                            .starts_with(&network_name(project, &super::spec::Scope::Global))
                            || network.name.starts_with(&format!("berth-{project}-db-"))
                    }
                };
                if !expected || !owned(&network.labels, project) {
                    bad(format!(
                        "network `{}` is not a name or label berth gives project `{project}`'s networks",
                        network.name
                    ));
                }
                foreign(
                    observed.networks.iter().map(|n| (&n.name, &n.labels)),
                    "network",
                    &network.name,
                    project,
                    &mut bad,
                );
            }
            Action::MigrateVolume { volume, from, stop } => {
                let ours = observed
                    .volumes
                    .iter()
                    .any(|v| &v.name == from && owned(&v.labels, project));
                if !ours
                    || !volume.name.starts_with(&format!("{project}-"))
                    || !owned(&volume.labels, project)
                {
                    bad(format!(
                        "the copy of volume `{from}` to `{}` reaches beyond project `{project}`'s volumes",
                        volume.name
                    ));
                }
                foreign(
                    observed.volumes.iter().map(|v| (&v.name, &v.labels)),
                    "volume",
                    &volume.name,
                    project,
                    &mut bad,
                );
                for c in stop {
                    existing(observed, project, c, false, &mut bad);
                }
            }
            Action::CreateVolume { volume } => {
                if !volume.name.starts_with(&format!("{project}-"))
                    || !owned(&volume.labels, project)
                {
                    bad(format!(
                        "volume `{}` is not a name or label berth gives project `{project}`'s volumes",
                        volume.name
                    ));
                }
                foreign(
                    observed.volumes.iter().map(|v| (&v.name, &v.labels)),
                    "volume",
                    &volume.name,
                    project,
                    &mut bad,
                );
            }
            Action::RemoveNetwork { id, name } => {
                match observed.networks.iter().find(|n| &n.id == id) {
                    Some(n) if owned(&n.labels, project) && &n.name == name => {}
                    _ => bad(format!(
                        "step on network `{name}` names id `{id}`, which is not one of project `{project}`'s networks now"
                    )),
                }
            }
            Action::Route {
                generation,
                records,
                ..
            } => {
                for name in records {
                    let ours = observed.volumes.iter().any(|v| {
                        &v.name == name
                            && owned(&v.labels, project)
                            && super::active::is_record(&v.labels)
                    });
                    if !ours {
                        bad(format!(
                            "volume `{name}` is not one of project `{project}`'s routes records now"
                        ));
                    }
                }
                for generation in [generation + 1, generation + 2] {
                    foreign(
                        observed.volumes.iter().map(|v| (&v.name, &v.labels)),
                        "volume",
                        &super::active::record_name(project, generation),
                        project,
                        &mut bad,
                    );
                }
            }
            Action::BuildBase { .. } | Action::BuildImage { .. } => {}
        }
    }
    problems
}

/// An object the plan creates must not exist, or exist as the project's: the
/// engine hands back an existing volume or network of that name unchanged, so
/// creating a foreign one would be taking it.
fn foreign<'a>(
    existing: impl IntoIterator<Item = (&'a String, &'a BTreeMap<String, String>)>,
    what: &str,
    name: &str,
    project: &str,
    bad: &mut dyn FnMut(String),
) {
    if existing
        .into_iter()
        .any(|(n, labels)| n == name && !owned(labels, project))
    {
        bad(format!(
            "the plan creates {what} `{name}`, but one of that name exists and is not project `{project}`'s"
        ));
    }
}

/// Why the container named `now` with `labels` is not the one `expected`
/// says (the project's, under that name, of that version); `None` when it is.
/// The audit asks it of what was observed, the executor of what the engine
/// says right before acting.
pub fn owner_problem(
    project: &str,
    expected: &ContainerRef,
    now: &str,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    if label(LABEL_PROJECT) != project {
        return Some(format!(
            "`{now}` has no label {LABEL_PROJECT}={project}: berth does not manage it for this project"
        ));
    }
    let is = format!(
        "{project}/{}@{}",
        label(LABEL_SERVICE),
        label(LABEL_VERSION)
    );
    (now != expected.name || is != expected.subject).then(|| {
        format!(
            "it is `{now}` ({is}), not `{}` ({})",
            expected.name, expected.subject
        )
    })
}

/// A step on a container that exists: it must be the project's, under the name
/// and for the version the step says, in a role berth gives it (`aside`: a
/// temporary one, never the canonical name).
fn existing(
    observed: &Observed,
    project: &str,
    expected: &ContainerRef,
    aside: bool,
    bad: &mut dyn FnMut(String),
) {
    let ContainerRef { id, name, .. } = expected;
    let Some(c) = observed.containers.iter().find(|c| &c.id == id) else {
        return bad(format!(
            "step on `{name}` names container id `{id}`, which is not one of project `{project}`'s containers now"
        ));
    };
    if let Some(why) = owner_problem(project, expected, &c.name, &c.labels) {
        return bad(format!("step on `{name}` names container id `{id}`: {why}"));
    }
    let role = ContainerRole::of_labelled(
        &c.name,
        project,
        c.label(LABEL_SERVICE),
        c.label(LABEL_VERSION),
    );
    if role.is_none() || (aside && role == Some(ContainerRole::Canonical)) {
        bad(format!(
            "step on `{name}` does not match the role berth gives that container"
        ));
    }
}

/// A container to create: its name, labels and hash as berth makes them, and
/// only the project's own volumes and networks, and cached asset files, in it.
fn desired(
    project: &str,
    c: &DesiredContainer,
    plan: &Plan,
    observed: &Observed,
    asset_root: &str,
    bad: &mut dyn FnMut(String),
) {
    let labels = &c.config.labels;
    let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    if !is_valid_name(&c.service)
        || c.name != container_name(project, &c.service, &c.version)
        || label(LABEL_PROJECT) != project
        || label(LABEL_SERVICE) != c.service
        || label(LABEL_VERSION) != c.version
    {
        return bad(format!(
            "container `{}` does not carry the name and labels berth gives {}",
            c.name,
            c.subject(project)
        ));
    }
    let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    let pending = c.build.as_ref().is_some_and(|b| b.image_id.is_none());
    if !hex64(&c.hash) || (!pending && c.hash != c.config.hash()) {
        bad(format!(
            "container `{}`: its configuration does not hash to the hash the plan records (the plan was edited)",
            c.name
        ));
    }
    let created = |kind: &str, name: &str| {
        plan.steps.iter().any(|s| match (&s.action, kind) {
            (Action::CreateVolume { volume }, "volume") => volume.name == name,
            (Action::CreateNetwork { network }, "network") => network.name == name,
            _ => false,
        })
    };
    for volume in c.config.mounts.values() {
        let ours = observed
            .volumes
            .iter()
            .any(|v| &v.name == volume && owned(&v.labels, project));
        if !ours && !created("volume", volume) {
            bad(format!(
                "container `{}` mounts volume `{volume}`, which is not one of project `{project}`'s",
                c.name
            ));
        }
    }
    for network in c.config.networks.keys() {
        let ours = observed
            .networks
            .iter()
            .any(|n| &n.name == network && owned(&n.labels, project));
        if !ours && !created("network", network) {
            bad(format!(
                "container `{}` joins network `{network}`, which is not one of project `{project}`'s",
                c.name
            ));
        }
    }
    for (path, host) in &c.asset_sources {
        let inside = host.starts_with(asset_root)
            && host[asset_root.len()..].starts_with('/')
            && !host.split('/').any(|part| part == ".." || part == ".");
        if !inside {
            bad(format!(
                "container `{}` mounts host file `{host}` at `{path}`, which is not in berth's asset cache",
                c.name
            ));
        }
    }
}
