//! The containers of a plan. For each declared version, what the engine
//! holds under its names decides one step (create, replace, start, put a
//! predecessor back, or nothing), and what interrupted rollouts left behind
//! is removed; a configuration that already failed its health gate is not
//! tried again unless asked; what the file no longer declares is removed.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    fits, host_port, side_by_side, taken, Action, ObservedContainer, Options, Reason, Step,
};
use crate::active::Routes;
use crate::desired::{
    Desired, DesiredContainer, LABEL_ACTIVE, LABEL_CONFIG, LABEL_SERVICE, LABEL_VERSION,
};
use crate::diag::Diagnostic;
use crate::fields::changes;
use crate::observed::Index;
use crate::role::ContainerRole;

/// What the containers' part of a plan decided.
pub(super) struct Versions<'a> {
    pub steps: Vec<Step>,
    pub unchanged: Vec<String>,
    /// What failed its gate before and is not tried again, in words.
    pub failed: Vec<String>,
    /// Service -> the version that should have its path once the plan is done.
    pub targets: BTreeMap<&'a str, &'a str>,
    /// A version that keeps its service's path while the declared active one
    /// failed its gate, by container name, with what to say of it.
    pub serving: BTreeMap<&'a str, String>,
}

struct Planner<'a, 'i> {
    project: &'a str,
    index: &'i Index<'a>,
    opts: &'i Options,
    /// Versions whose very configuration already failed its health gate.
    failed_before: BTreeSet<&'a str>,
    /// The observed containers some declared version accounts for.
    matched: BTreeSet<&'a str>,
    out: Versions<'a>,
}

fn role(c: &ObservedContainer, d: &DesiredContainer) -> Option<ContainerRole> {
    ContainerRole::of(&c.name, &d.name)
}

/// The containers' steps of the plan from `index` to `desired`.
pub(super) fn plan<'a>(
    desired: &'a Desired,
    index: &Index<'a>,
    routes: &Routes,
    opts: &Options,
    problems: &mut Vec<Diagnostic>,
) -> Versions<'a> {
    // A failed container kept aside with the desired hash: trying again on
    // every apply, or every daemon event, would only fail again.
    let failed_before = desired
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
    let mut p = Planner {
        project: desired.project.as_str(),
        index,
        opts,
        failed_before,
        matched: BTreeSet::new(),
        out: Versions {
            steps: Vec::new(),
            unchanged: Vec::new(),
            failed: Vec::new(),
            targets: BTreeMap::new(),
            serving: BTreeMap::new(),
        },
    };
    p.hold_paths(desired, routes);
    for declared in &desired.containers {
        p.version(declared, problems);
    }
    p.removals();
    p.out
}

impl<'a> Planner<'a, '_> {
    fn known_bad(&self, name: &str) -> bool {
        !self.opts.retry_failed && self.failed_before.contains(name)
    }

    /// A service whose declared active version failed its gate keeps its
    /// path on the version that has it now (it passed its gate: it has its
    /// canonical name): held there while the declared one is not tried, and
    /// said either way.
    fn hold_paths(&mut self, desired: &'a Desired, routes: &Routes) {
        let project = self.project;
        for d in desired
            .containers
            .iter()
            .filter(|d| d.is_active() && self.failed_before.contains(d.name.as_str()))
        {
            let holder = self.index.ours.iter().find(|c| {
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
                if self.known_bad(&d.name) {
                    self.out.failed.push(said.clone());
                }
                self.out.serving.insert(c.name.as_str(), said);
            }
        }
    }

    /// One declared version: its leftovers removed, then its one step.
    fn version(&mut self, declared: &'a DesiredContainer, problems: &mut Vec<Diagnostic>) {
        let project = self.project;
        if let Some(other) = self.index.foreign(&declared.name) {
            problems.push(taken("container", &declared.name, &other.id, project));
            return;
        }
        let holds_path = self.out.serving.get(declared.name.as_str()).cloned();
        let held = holds_path.is_some() && !self.opts.retry_failed;
        let d = &match held {
            true => declared.with_active(true),
            false => declared.clone(),
        };
        let same_name = self
            .index
            .of_canonical(&d.name)
            .iter()
            .copied()
            .find(|c| c.name == d.name);
        let others: Vec<&'a ObservedContainer> = self
            .index
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
        let bad = self.known_bad(&d.name);
        if d.is_active() && !bad {
            self.out
                .targets
                .insert(&declared.service, &declared.version);
        }
        self.leftovers(d, &others, predecessor, bad);
        let current = same_name.or(predecessor);
        if let Some(c) = current {
            self.matched.insert(&c.id);
        }
        // Its direct URL stays where the port is free when the new one starts.
        let kept_port = current
            .and_then(host_port)
            .filter(|_| d.config.publish.is_none());
        let d = &DesiredContainer {
            host_port: kept_port,
            ..d.clone()
        };
        let step = self.step(d, current, predecessor, bad, holds_path.as_deref());
        self.out.steps.extend(step);
    }

    /// The containers of a version under any other name than its canonical
    /// one, but its predecessor: removed, or (a failure of this very
    /// configuration) kept and said.
    fn leftovers(
        &mut self,
        d: &DesiredContainer,
        others: &[&'a ObservedContainer],
        predecessor: Option<&ObservedContainer>,
        bad: bool,
    ) {
        let project = self.project;
        for c in others {
            self.matched.insert(&c.id);
            if predecessor.is_some_and(|p| p.id == c.id) {
                continue;
            }
            let failed = role(c, d) == Some(ContainerRole::Failed);
            if failed && fits(c, d) && bad {
                self.out.failed.push(format!(
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
            self.out.steps.push(Step {
                action: Action::RemoveLeftover {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    subject: c.subject(project),
                },
                reasons: vec![Reason::note(why)],
            });
        }
    }

    /// The one step a version needs from what holds its name now (`current`,
    /// which may be its `predecessor` aside), if any; `None` also records it
    /// unchanged when it is.
    fn step(
        &mut self,
        d: &DesiredContainer,
        current: Option<&ObservedContainer>,
        predecessor: Option<&ObservedContainer>,
        bad: bool,
        holds_path: Option<&str>,
    ) -> Option<Step> {
        let project = self.project;
        let note = |text: String| vec![Reason::note(text)];
        match (current, predecessor) {
            (_, Some(p)) if bad || fits(p, d) => Some(Step {
                action: Action::RestoreContainer {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    canonical: d.name.clone(),
                    subject: d.subject(project),
                },
                reasons: note(format!(
                    "`{}` is what last passed its health gate; an interrupted replace left it aside",
                    p.name
                )),
            }),
            _ if bad => None,
            (None, _) => {
                let first = !self.index.has_service(&d.service);
                Some(Step {
                    action: Action::CreateContainer {
                        container: d.clone(),
                    },
                    reasons: vec![Reason::note(if first {
                        "new service"
                    } else {
                        "new version"
                    })],
                })
            }
            (Some(c), _) if !fits(c, d) => Some(replace(c, d, predecessor, holds_path)),
            (Some(c), _)
                if matches!(
                    c.state.as_str(),
                    "running" | "restarting" | "paused" | "removing"
                ) =>
            {
                self.out.unchanged.push(d.subject(project));
                None
            }
            // A job under its canonical name has run to completion with this
            // content: it is not run again.
            (Some(_), _) if d.config.job => {
                self.out.unchanged.push(d.subject(project));
                None
            }
            (Some(c), _) => Some(Step {
                action: Action::StartContainer {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    subject: d.subject(project),
                },
                reasons: note(format!(
                    "container is {} ({}); its configuration is right",
                    c.state, c.status
                )),
            }),
        }
    }

    /// What no declared version accounts for: removed.
    fn removals(&mut self) {
        let project = self.project;
        for c in &self.index.ours {
            if !self.matched.contains(c.id.as_str()) {
                self.out.steps.push(Step {
                    action: Action::RemoveContainer {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        subject: c.subject(project),
                    },
                    reasons: vec![Reason::note("no longer declared")],
                });
            }
        }
    }
}

/// The replace of `c` by `d`, field by field, with what else the user
/// should know: the direct URL moving, a path held, a predecessor put back.
fn replace(
    c: &ObservedContainer,
    d: &DesiredContainer,
    predecessor: Option<&ObservedContainer>,
    holds_path: Option<&str>,
) -> Step {
    let mut reasons = changes(c.labels.get(LABEL_CONFIG), &d.config);
    legacy_routing(&mut reasons);
    if let Some(port) = d.host_port.filter(|_| side_by_side(d)) {
        reasons.push(Reason::note(format!(
            "its direct URL moves off 127.0.0.1:{port}, which the container it replaces holds while the new one starts beside it (the gateway's path stays; `publish:` fixes a port)"
        )));
    }
    if let Some(said) = holds_path {
        reasons.insert(
            0,
            Reason::note(format!(
                "{said} until its retry passes; this step runs only then"
            )),
        );
    }
    if predecessor.is_some() {
        reasons.insert(0, Reason::note(format!(
            "`{}` is what last passed its health gate (a replace was interrupted); it is put back if its successor fails",
            c.name
        )));
    }
    Step {
        action: Action::ReplaceContainer {
            old_id: c.id.clone(),
            old_name: c.name.clone(),
            container: d.clone(),
        },
        reasons,
    }
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
