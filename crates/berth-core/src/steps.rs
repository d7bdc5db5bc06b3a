//! The plan as a value: its steps (what to do, to what), the reason for each,
//! and the order apply runs them in. `plan.rs` computes one; `berth plan` renders
//! it, `--out` saves it, and `apply` executes exactly its steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::desired::{BuildFact, DesiredContainer, DesiredNetwork, DesiredVolume};

/// What every output shows instead of a secret's value.
pub const SENSITIVE: &str = "(sensitive)";

/// Why a step is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    Note {
        text: String,
    },
    /// One field of the container changed; `None` is absent. Secrets show as [`SENSITIVE`].
    Changed {
        field: String,
        old: Option<String>,
        new: Option<String>,
        sensitive: bool,
    },
}

impl Reason {
    pub fn note(text: impl Into<String>) -> Reason {
        Reason::Note { text: text.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Build a runtime's base image locally (berth-local/<runtime>:stable).
    BuildBase {
        runtime: super::spec::Runtime,
        tag: String,
    },
    /// Build a service image from its package.
    BuildImage {
        service: String,
        version: String,
        build: BuildFact,
    },
    CreateNetwork {
        network: DesiredNetwork,
    },
    CreateVolume {
        volume: DesiredVolume,
    },
    /// A keep's volume under its collision-free name, filled with the data of the
    /// volume an earlier berth named ambiguously (`from`, which stays). The
    /// containers that still use `from` are stopped first, so the copy is whole;
    /// their replace follows in a later phase.
    MigrateVolume {
        volume: DesiredVolume,
        from: String,
        stop: Vec<ContainerRef>,
    },
    CreateContainer {
        container: DesiredContainer,
    },
    /// Replace `old_id` by a new container that takes the canonical name once it
    /// passed its health gate. `old_name` is where the old one is now: its
    /// canonical name, or `-old-` aside when an earlier replace was interrupted.
    ReplaceContainer {
        old_id: String,
        #[serde(default)]
        old_name: String,
        container: DesiredContainer,
    },
    /// A predecessor an interrupted replace left aside (`-old-`), put back under
    /// its canonical name and started: it is the last one that passed its gate.
    RestoreContainer {
        id: String,
        name: String,
        canonical: String,
        subject: String,
    },
    /// An owned container whose hash matches but that is not running.
    StartContainer {
        id: String,
        name: String,
        subject: String,
    },
    RemoveContainer {
        id: String,
        name: String,
        subject: String,
    },
    /// A running version stopped and started again, as asked (the dashboard's
    /// "Restart"): the same container, its configuration untouched. Only
    /// [`super::plan::restart`] makes one; a file's plan never does.
    RestartContainer {
        id: String,
        name: String,
        subject: String,
    },
    /// An owned container of a desired service@version under another name: what an
    /// interrupted replace leaves. Removed before creating, as it may hold the port.
    RemoveLeftover {
        id: String,
        name: String,
        subject: String,
    },
    RemoveNetwork {
        id: String,
        name: String,
    },
    /// Moves services' paths and network names to other running versions,
    /// restarting nothing, and records the result as routes record
    /// `generation + 1` (`core::active`), removing `records`.
    Route {
        generation: u64,
        /// Service -> active version, for every declared service, once done.
        active: BTreeMap<String, String>,
        records: Vec<String>,
        switches: Vec<Switch>,
    },
}

/// One service's active version changing hands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    pub service: String,
    /// The version that had it, when one did.
    pub from: Option<String>,
    pub to: String,
    /// Versions that give up the service's network name.
    pub release: Vec<String>,
}

impl Action {
    /// The verb a plan line shows.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::BuildBase { .. } | Action::BuildImage { .. } => "build",
            Action::CreateNetwork { .. }
            | Action::CreateVolume { .. }
            | Action::MigrateVolume { .. }
            | Action::CreateContainer { .. } => "create",
            Action::ReplaceContainer { .. } => "replace",
            Action::StartContainer { .. } | Action::RestoreContainer { .. } => "start",
            Action::RestartContainer { .. } => "restart",
            Action::RemoveContainer { .. }
            | Action::RemoveLeftover { .. }
            | Action::RemoveNetwork { .. } => "remove",
            Action::Route { .. } => "route",
        }
    }

    /// What the step acts on, as a plan line names it.
    pub fn subject(&self, project: &str) -> String {
        match self {
            Action::BuildBase { tag, .. } => format!("image {tag}"),
            Action::BuildImage {
                service,
                version,
                build,
            } => match &build.tag {
                Some(tag) => format!("image {tag}"),
                None => format!("image of {project}/{service}@{version}"),
            },
            Action::CreateNetwork { network } => format!("network {}", network.name),
            Action::CreateVolume { volume } | Action::MigrateVolume { volume, .. } => {
                format!("volume {}", volume.name)
            }
            Action::CreateContainer { container } | Action::ReplaceContainer { container, .. } => {
                container.subject(project)
            }
            Action::StartContainer { subject, .. }
            | Action::RestoreContainer { subject, .. }
            | Action::RemoveContainer { subject, .. }
            | Action::RestartContainer { subject, .. }
            | Action::RemoveLeftover { subject, .. } => subject.clone(),
            Action::RemoveNetwork { name, .. } => format!("network {name}"),
            Action::Route { .. } => format!("routes of {project}"),
        }
    }

    /// The existing container the step acts on, where it is now: the one it
    /// starts, removes or puts back, or the one a replace takes over (under its
    /// canonical name unless the plan says it was left aside).
    pub fn existing(&self, project: &str) -> Option<ContainerRef> {
        let of = |id: &str, name: &str, subject: &str| ContainerRef {
            id: id.to_string(),
            name: name.to_string(),
            subject: subject.to_string(),
        };
        match self {
            Action::StartContainer { id, name, subject }
            | Action::RestartContainer { id, name, subject }
            | Action::RemoveContainer { id, name, subject }
            | Action::RemoveLeftover { id, name, subject }
            | Action::RestoreContainer {
                id, name, subject, ..
            } => Some(of(id, name, subject)),
            Action::ReplaceContainer {
                old_id,
                old_name,
                container,
            } => {
                let name = match old_name.is_empty() {
                    true => &container.name,
                    false => old_name,
                };
                Some(of(old_id, name, &container.subject(project)))
            }
            _ => None,
        }
    }

    /// The order apply runs phases in: what others depend on first, removals last.
    pub fn phase(&self) -> u8 {
        match self {
            Action::BuildBase { .. }
            | Action::CreateNetwork { .. }
            | Action::CreateVolume { .. }
            | Action::RemoveLeftover { .. }
            | Action::RestoreContainer { .. } => 0,
            Action::BuildImage { .. } => 1,
            // After the builds: a failed build stops the apply before any
            // container is stopped for a copy.
            Action::MigrateVolume { .. } => 2,
            // Active versions first: a service path always has a version that
            // claims it while the active one changes hands.
            Action::CreateContainer { container } | Action::ReplaceContainer { container, .. }
                if container.is_active() =>
            {
                3
            }
            Action::CreateContainer { .. }
            | Action::ReplaceContainer { .. }
            | Action::StartContainer { .. }
            | Action::RestartContainer { .. }
            // After the active versions passed their gates, before a version
            // that loses the path is removed.
            | Action::Route { .. } => 4,
            Action::RemoveContainer { .. } => 5,
            Action::RemoveNetwork { .. } => 6,
        }
    }

    /// The last phase: apply runs phases 0 to this one in order.
    pub const LAST_PHASE: u8 = 6;
}

/// An existing container a step acts on besides its own subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    pub reasons: Vec<Reason>,
}

/// What apply would do, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub project: String,
    /// The engine it is for: a saved plan is applied through the same one.
    /// (Left out for one engine, so plans from before it read the same.)
    #[serde(default, skip_serializing_if = "is_docker")]
    pub engine: crate::spec::EngineKind,
    /// Hash of [`Observed::summary`] at planning time.
    pub fingerprint: String,
    /// The summary itself, so a stale saved plan can say what changed.
    pub observed: Vec<String>,
    pub steps: Vec<Step>,
    /// Subjects of containers that are already right.
    pub unchanged: Vec<String>,
    /// Versions whose desired configuration already failed its health gate: no
    /// step is planned for them, and apply reports them as errors.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Allowed but worth saying (an asset without a checksum).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The encrypted secrets file the plan's secrets are opened from (an
    /// absolute path), so a saved plan is applied with the same values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_file: Option<String>,
}

fn is_docker(e: &crate::spec::EngineKind) -> bool {
    *e == crate::spec::EngineKind::Docker
}

impl Plan {
    /// A plan of `steps` alone, made without looking at everything the
    /// engine holds (a build, a restart): no fingerprint, nothing unchanged.
    pub fn of_steps(project: &str, steps: Vec<Step>) -> Plan {
        Plan {
            project: project.to_string(),
            engine: Default::default(),
            fingerprint: String::new(),
            observed: vec![],
            steps,
            unchanged: vec![],
            failed: vec![],
            warnings: vec![],
            secrets_file: None,
        }
    }

    /// What the plan would do, as a short name: its steps and the versions it
    /// reports as failed. A page that shows a plan sends it back with "Apply",
    /// and the converge refuses to act when the plan it computes then has
    /// another digest (something changed since the page was drawn).
    pub fn digest(&self) -> String {
        let what = serde_json::json!({ "steps": self.steps, "failed": self.failed });
        let hex = crate::hash::sha256_hex(what.to_string().as_bytes());
        hex[..16].to_string()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// How many build steps.
    pub fn builds(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.action.verb() == "build")
            .count()
    }

    /// How many services change active version (a routing change).
    pub fn switches(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match &s.action {
                Action::Route { switches, .. } => {
                    switches.iter().filter(|s| s.from.is_some()).count()
                }
                _ => 0,
            })
            .sum()
    }

    /// (create, replace, start, remove) counts.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |verb: &str| {
            self.steps
                .iter()
                .filter(|s| s.action.verb() == verb)
                .count()
        };
        (n("create"), n("replace"), n("start"), n("remove"))
    }
}
