//! Planning: `plan(desired, observed) -> Plan`, a pure function with a reason per step.
//!
//! The plan is a value: `berth plan` renders it, `--out` saves it, and `apply`
//! executes exactly its steps. Nothing here talks to the engine.

use std::collections::{BTreeMap, BTreeSet};

use super::desired::{
    legacy_volume_name, BuildFact, Desired, DesiredContainer, LABEL_ACTIVE, LABEL_CONFIG,
    LABEL_HASH, LABEL_KEEP, LABEL_PROJECT, LABEL_SERVICE, LABEL_VERSION,
};
use super::diag::Diagnostic;
use super::fields::changes;
use super::role::ContainerRole;

use super::observed::owned;
pub use super::observed::{
    short, stale_changes, Observed, ObservedContainer, ObservedObject, PortBinding,
};

pub use super::steps::{Action, ContainerRef, Plan, Reason, Step, Switch, SENSITIVE};

/// `berth build`'s plan: the build steps for `target` (`SERVICE` or
/// `SERVICE@VERSION`; every version built from a package when `None`) and
/// nothing else, with the tags already built. `None` when nothing matches.
pub fn builds_only(
    project: &str,
    facts: &BTreeMap<String, BuildFact>,
    target: Option<&str>,
) -> Option<(Plan, Vec<String>)> {
    let matches = |id: &str| match target {
        None => true,
        Some(t) if t.contains('@') => id == t,
        Some(t) => id.split('@').next() == Some(t),
    };
    let mut steps = Vec::new();
    let mut cached = Vec::new();
    let mut bases = BTreeSet::new();
    let mut any = false;
    for (id, b) in facts.iter().filter(|(id, _)| matches(id)) {
        any = true;
        if b.base_missing && bases.insert(b.base.clone()) {
            steps.push(Step {
                action: Action::BuildBase {
                    runtime: b.input.runtime,
                    tag: b.base.clone(),
                },
                reasons: vec![],
            });
        }
        let Some((service, version)) = id.split_once('@') else {
            continue;
        };
        match &b.image_id {
            Some(_) => cached.push(b.tag.clone().unwrap_or_else(|| id.clone())),
            None => steps.push(Step {
                action: Action::BuildImage {
                    service: service.into(),
                    version: version.into(),
                    build: b.clone(),
                },
                reasons: vec![],
            }),
        }
    }
    any.then(|| (Plan::of_steps(project, steps), cached))
}

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
    let mut problems = Vec::new();
    let mut steps = Vec::new();
    let mut unchanged = Vec::new();

    let index = super::observed::Index::new(observed, project);
    let ours: &[&ObservedContainer] = &index.ours;
    if desired.containers.is_empty() && !ours.is_empty() && !opts.allow_empty {
        problems.push(Diagnostic::new("P001",
            None,
            format!(
                "the file declares no services, and applying it would remove all {} containers of project `{project}`",
                ours.len()
            ),
            "pass --allow-empty if removing everything is what you want, or use `berth destroy`",
        ));
        return Err(problems);
    }

    for net in &desired.networks {
        match observed.networks.iter().find(|n| n.name == net.name) {
            Some(n) if owned(&n.labels, project) => {}
            Some(n) => problems.push(taken("network", &net.name, &n.id, project)),
            None => steps.push(Step {
                action: Action::CreateNetwork {
                    network: net.clone(),
                },
                reasons: vec![Reason::note("needed by the services of this scope")],
            }),
        }
    }
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

    let mut bases: BTreeSet<&str> = BTreeSet::new();
    let mut tags: BTreeSet<&String> = BTreeSet::new();
    for d in &desired.containers {
        let Some(b) = &d.build else { continue };
        if b.base_missing && bases.insert(&b.base) {
            steps.push(Step {
                action: Action::BuildBase {
                    runtime: b.input.runtime,
                    tag: b.base.clone(),
                },
                reasons: vec![Reason::note(format!(
                    "the {} runtime's base is not on the engine yet",
                    b.input.runtime.name()
                ))],
            });
        }
        // Versions built from the same context share one image: one step
        // builds it, and says for whom.
        if b.image_id.is_none() && b.tag.as_ref().is_some_and(|t| !tags.insert(t)) {
            continue;
        }
        if b.image_id.is_none() {
            let sharing: Vec<&str> = desired
                .containers
                .iter()
                .filter(|o| o.version != d.version && o.service == d.service)
                .filter(|o| {
                    o.build
                        .as_ref()
                        .is_some_and(|ob| ob.tag.is_some() && ob.tag == b.tag)
                })
                .map(|o| o.version.as_str())
                .collect();
            let mut why = format!("package {}", b.input.package);
            if let Some(w) = &b.stripped {
                why.push_str(&format!(
                    " (its single top-level directory `{w}/` is stripped)"
                ));
            }
            if !sharing.is_empty() {
                why.push_str(&format!(
                    "; the same image serves {} (same content)",
                    sharing.join(", ")
                ));
            }
            steps.push(Step {
                action: Action::BuildImage {
                    service: d.service.clone(),
                    version: d.version.clone(),
                    build: b.clone(),
                },
                reasons: std::iter::once(why)
                    .chain(b.entry.clone())
                    .map(Reason::note)
                    .collect(),
            });
        }
    }

    let mut matched: BTreeSet<&str> = BTreeSet::new();
    // Service -> the version that should have its path once the plan is done.
    let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
    let mut failed_rollouts = Vec::new();
    let role = |c: &ObservedContainer, d: &DesiredContainer| ContainerRole::of(&c.name, &d.name);
    // Versions whose very configuration already failed its health gate (the
    // failed container kept aside has the desired hash): trying again on every
    // apply, or every daemon event, would only fail again.
    let failed_before: BTreeSet<&str> = desired
        .containers
        .iter()
        .filter(|d| {
            index
                .of_canonical(&d.name)
                .iter()
                .any(|c| role(c, d) == Some(ContainerRole::Failed) && fits(c, d))
        })
        .map(|d| d.name.as_str())
        .collect();
    let known_bad = |name: &str| !opts.retry_failed && failed_before.contains(name);
    // A service whose declared active version failed its gate keeps its path on
    // the version that has it now (it passed its gate: it has its canonical
    // name): held there while the declared one is not tried, and said either way.
    let routes = super::active::observed(project, observed);
    let mut serving: BTreeMap<&str, String> = BTreeMap::new();
    for d in desired
        .containers
        .iter()
        .filter(|d| d.is_active() && failed_before.contains(d.name.as_str()))
    {
        let holder = ours.iter().find(|c| {
            c.label(LABEL_SERVICE) == d.service
                && routes.is_active(&d.service, c.label(LABEL_VERSION))
                && desired
                    .containers
                    .iter()
                    .any(|x| x.name == c.name && x.name != d.name)
        });
        if let Some(c) = holder {
            let said = format!(
                "{} is declared active but failed its gate; {} keeps serving",
                d.subject(project),
                c.label(LABEL_VERSION)
            );
            if known_bad(&d.name) {
                failed_rollouts.push(said.clone());
            }
            serving.insert(c.name.as_str(), said);
        }
    }
    for declared in &desired.containers {
        if let Some(other) = index.foreign(&declared.name) {
            problems.push(taken("container", &declared.name, &other.id, project));
            continue;
        }
        let holds_path = serving.get(declared.name.as_str());
        let held = holds_path.is_some() && !opts.retry_failed;
        let d = &match held {
            true => declared.with_active(true),
            false => declared.clone(),
        };
        let same_name = index
            .of_canonical(&d.name)
            .iter()
            .find(|c| c.name == d.name);
        let others: Vec<&ObservedContainer> = index
            .of_version(&d.service, &d.version)
            .iter()
            .copied()
            .filter(|c| c.name != d.name)
            .collect();
        // With nothing under the canonical name, a predecessor moved aside by an
        // interrupted replace is what last passed the gate: it stays, and is put
        // back or replaced (and put back if its successor fails).
        let predecessor = match same_name {
            Some(_) => None,
            None => others
                .iter()
                .copied()
                .filter(|c| role(c, d) == Some(ContainerRole::Old))
                .max_by_key(|c| c.state == "running"),
        };
        let bad = known_bad(&d.name);
        if d.is_active() && !bad {
            targets.insert(&declared.service, &declared.version);
        }
        for c in others {
            matched.insert(&c.id);
            if predecessor.is_some_and(|p| p.id == c.id) {
                continue;
            }
            let failed = role(c, d) == Some(ContainerRole::Failed);
            if failed && fits(c, d) && bad {
                failed_rollouts.push(format!(
                    "{} never became healthy with this configuration; kept stopped as `{}`. Change the configuration, or remove that container to try again",
                    d.subject(project),
                    c.name
                ));
                continue;
            }
            // Under any other name than its canonical one, a container never
            // passed its gate (`-next-`), failed it, or is a predecessor that its
            // successor already replaced: the canonical name is the only proof.
            let why = match role(c, d) {
                Some(ContainerRole::Failed) => format!(
                    "`{}` failed its health gate with an earlier configuration",
                    c.name
                ),
                Some(ContainerRole::Next) => format!(
                    "`{}` never passed its health gate (a rollout was interrupted)",
                    c.name
                ),
                _ => format!("leftover `{}` of an interrupted replace", c.name),
            };
            steps.push(Step {
                action: Action::RemoveLeftover {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    subject: c.subject(project),
                },
                reasons: vec![Reason::note(why)],
            });
        }
        let current = same_name.copied().or(predecessor);
        if let Some(c) = current {
            matched.insert(&c.id);
        }
        // Its direct URL stays where the port is free when the new one starts.
        let kept_port = current
            .and_then(host_port)
            .filter(|_| d.config.publish.is_none());
        let d = &DesiredContainer {
            host_port: kept_port,
            ..d.clone()
        };
        match (current, predecessor) {
            (_, Some(p)) if bad || fits(p, d) => steps.push(Step {
                action: Action::RestoreContainer {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    canonical: d.name.clone(),
                    subject: d.subject(project),
                },
                reasons: vec![Reason::note(format!(
                    "`{}` is what last passed its health gate; an interrupted replace left it aside",
                    p.name
                ))],
            }),
            _ if bad => {}
            (None, _) => {
                let first = !index.has_service(&d.service);
                steps.push(Step {
                    action: Action::CreateContainer {
                        container: d.clone(),
                    },
                    reasons: vec![Reason::note(if first {
                        "new service"
                    } else {
                        "new version"
                    })],
                });
            }
            (Some(c), _) if !fits(c, d) => {
                let mut reasons = changes(c.labels.get(LABEL_CONFIG), &d.config);
                legacy_routing(&mut reasons);
                if let Some(port) = kept_port.filter(|_| side_by_side(d)) {
                    reasons.push(Reason::note(format!(
                        "its direct URL moves off 127.0.0.1:{port}, which the container it replaces holds while the new one starts beside it (the gateway's path stays; `publish:` fixes a port)"
                    )));
                }
                if let Some(said) = holds_path {
                    reasons.insert(
                        0,
                        Reason::note(format!("{said} until its retry passes; this step runs only then")),
                    );
                }
                if predecessor.is_some() {
                    reasons.insert(0, Reason::note(format!(
                        "`{}` is what last passed its health gate (a replace was interrupted); it is put back if its successor fails",
                        c.name
                    )));
                }
                steps.push(Step {
                    action: Action::ReplaceContainer {
                        old_id: c.id.clone(),
                        old_name: c.name.clone(),
                        container: d.clone(),
                    },
                    reasons,
                });
            }
            (Some(c), _)
                if matches!(
                    c.state.as_str(),
                    "running" | "restarting" | "paused" | "removing"
                ) =>
            {
                unchanged.push(d.subject(project));
            }
            // A job under its canonical name has run to completion with this
            // content: it is not run again.
            (Some(_), _) if d.config.job => unchanged.push(d.subject(project)),
            (Some(c), _) => steps.push(Step {
                action: Action::StartContainer {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    subject: d.subject(project),
                },
                reasons: vec![Reason::note(format!(
                    "container is {} ({}); its configuration is right",
                    c.state, c.status
                ))],
            }),
        }
    }
    for c in ours {
        if !matched.contains(c.id.as_str()) {
            steps.push(Step {
                action: Action::RemoveContainer {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    subject: c.subject(project),
                },
                reasons: vec![Reason::note("no longer declared")],
            });
        }
    }
    // A switch away from a version that holds the path for a failed one runs
    // only once the retry passed its gate (an earlier phase): said on it.
    let held: BTreeMap<&str, &String> = serving
        .iter()
        .filter_map(|(name, said)| {
            let c = ours.iter().find(|c| c.name == *name)?;
            Some((c.label(LABEL_SERVICE), said))
        })
        .collect();
    if let Some(step) = route_step(project, &routes, &targets, &held, desired) {
        steps.push(step);
    }
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

    if !problems.is_empty() {
        return Err(problems);
    }
    // Stable order: by phase, then by subject.
    steps.sort_by(|a, b| {
        (a.action.phase(), a.action.subject(project))
            .cmp(&(b.action.phase(), b.action.subject(project)))
    });
    unchanged.sort();
    Ok(Plan {
        project: project.to_string(),
        engine: Default::default(),
        fingerprint: observed.fingerprint(project),
        observed: observed.summary(project),
        steps,
        unchanged,
        failed: failed_rollouts,
        warnings: desired.warnings.clone(),
    })
}

/// Keep path -> volume, as the container's recorded configuration says.
fn mounts_of(c: &ObservedContainer) -> BTreeMap<String, String> {
    c.labels
        .get(LABEL_CONFIG)
        .and_then(|t| serde_json::from_str::<super::hash::ContainerConfig>(t).ok())
        .map(|config| config.mounts)
        .unwrap_or_default()
}

fn taken(kind: &str, name: &str, id: &str, project: &str) -> Diagnostic {
    Diagnostic::new("P002",
        None,
        format!(
            "{kind} name `{name}` is taken by a {kind} berth does not manage (id {}, no label {LABEL_PROJECT}={project})",
            short(id)
        ),
        format!("remove or rename that {kind} yourself, or rename the project: berth never touches what it does not own"),
    )
}

/// The routing step, when a service's active version is not the one the
/// routes record names (or a switch was interrupted): no container restarts.
fn route_step(
    project: &str,
    routes: &super::active::Routes,
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

/// The host port a container publishes on this host's loopback.
fn host_port(c: &ObservedContainer) -> Option<u16> {
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
/// or the hash berth gave the same configuration while the active mark was
/// part of it (see [`DesiredContainer::legacy_hash`]).
fn fits(c: &ObservedContainer, d: &DesiredContainer) -> bool {
    let hash = c.label(LABEL_HASH);
    hash == d.hash || hash == d.legacy_hash(c.label(LABEL_ACTIVE) == "true")
}

/// A container created while the active mark was hashed and replaced for
/// another reason: its old routing fields are not changes of the file.
fn legacy_routing(reasons: &mut Vec<Reason>) {
    let label = format!("labels.{LABEL_ACTIVE}");
    reasons.retain(|r| match r {
        Reason::Changed {
            field, old, new, ..
        } => *field != label && !(field.starts_with("networks.") && old.is_some() && new.is_some()),
        Reason::Note { .. } => true,
    });
}
