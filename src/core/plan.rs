//! Planning: `plan(desired, observed) -> Plan`, a pure function with a reason per step.
//!
//! The plan is a value: `berth plan` renders it, `--out` saves it, and `apply`
//! executes exactly its steps. Nothing here talks to the engine.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::desired::{
    BuildFact, Desired, DesiredContainer, DesiredNetwork, DesiredVolume, LABEL_ACTIVE,
    LABEL_CONFIG, LABEL_HASH, LABEL_PROJECT, LABEL_SERVICE, LABEL_VERSION,
};
use super::diag::Diagnostic;
use super::hash::{lines_hash, ContainerConfig};

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

fn owned(labels: &BTreeMap<String, String>, project: &str) -> bool {
    labels.get(LABEL_PROJECT).map(String::as_str) == Some(project)
}

impl ObservedContainer {
    pub fn owned_by(&self, project: &str) -> bool {
        owned(&self.labels, project)
    }
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
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
            let hash = c
                .labels
                .get(LABEL_HASH)
                .map(|h| &h[..h.len().min(12)])
                .unwrap_or("-");
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

/// The first 12 characters of an engine ID, without any `sha256:` prefix.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

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
    CreateContainer {
        container: DesiredContainer,
    },
    /// Replace `old_id` (same name) by a new container.
    ReplaceContainer {
        old_id: String,
        container: DesiredContainer,
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
}

impl Action {
    /// The verb a plan line shows.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::BuildBase { .. } | Action::BuildImage { .. } => "build",
            Action::CreateNetwork { .. }
            | Action::CreateVolume { .. }
            | Action::CreateContainer { .. } => "create",
            Action::ReplaceContainer { .. } => "replace",
            Action::StartContainer { .. } => "start",
            Action::RemoveContainer { .. }
            | Action::RemoveLeftover { .. }
            | Action::RemoveNetwork { .. } => "remove",
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
            Action::CreateVolume { volume } => format!("volume {}", volume.name),
            Action::CreateContainer { container } | Action::ReplaceContainer { container, .. } => {
                container.subject(project)
            }
            Action::StartContainer { subject, .. }
            | Action::RemoveContainer { subject, .. }
            | Action::RemoveLeftover { subject, .. } => subject.clone(),
            Action::RemoveNetwork { name, .. } => format!("network {name}"),
        }
    }

    /// The order apply runs phases in: what others depend on first, removals last.
    pub fn phase(&self) -> u8 {
        match self {
            Action::BuildBase { .. }
            | Action::CreateNetwork { .. }
            | Action::CreateVolume { .. }
            | Action::RemoveLeftover { .. } => 0,
            Action::BuildImage { .. } => 1,
            // Active versions first: a service path always has a version that
            // claims it while the active one changes hands.
            Action::CreateContainer { container } | Action::ReplaceContainer { container, .. }
                if container
                    .config
                    .labels
                    .get(LABEL_ACTIVE)
                    .map(String::as_str)
                    == Some("true") =>
            {
                2
            }
            Action::CreateContainer { .. }
            | Action::ReplaceContainer { .. }
            | Action::StartContainer { .. } => 3,
            Action::RemoveContainer { .. } => 4,
            Action::RemoveNetwork { .. } => 5,
        }
    }

    /// The last phase: apply runs phases 0 to this one in order.
    pub const LAST_PHASE: u8 = 5;
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
}

impl Plan {
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

    let ours: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| c.owned_by(project))
        .collect();
    if desired.containers.is_empty() && !ours.is_empty() && !opts.allow_empty {
        problems.push(Diagnostic::new(
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
        match observed.volumes.iter().find(|v| v.name == vol.name) {
            Some(v) if owned(&v.labels, project) => {}
            Some(v) => problems.push(taken("volume", &vol.name, &v.id, project)),
            None => steps.push(Step {
                action: Action::CreateVolume {
                    volume: vol.clone(),
                },
                reasons: vec![Reason::note(format!(
                    "keeps {} of {}",
                    vol.labels
                        .get(super::desired::LABEL_KEEP)
                        .map(String::as_str)
                        .unwrap_or("?"),
                    vol.labels
                        .get(LABEL_SERVICE)
                        .map(String::as_str)
                        .unwrap_or("?")
                ))],
            }),
        }
    }

    let mut bases: BTreeSet<&str> = BTreeSet::new();
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
        if b.image_id.is_none() {
            let mut why = format!("package {}", b.input.package);
            if let Some(w) = &b.stripped {
                why.push_str(&format!(
                    " (its single top-level directory `{w}/` is stripped)"
                ));
            }
            steps.push(Step {
                action: Action::BuildImage {
                    service: d.service.clone(),
                    version: d.version.clone(),
                    build: b.clone(),
                },
                reasons: vec![Reason::note(why)],
            });
        }
    }

    let mut matched: BTreeSet<&str> = BTreeSet::new();
    let mut failed_rollouts = Vec::new();
    for d in &desired.containers {
        if let Some(other) = observed
            .containers
            .iter()
            .find(|c| c.name == d.name && !c.owned_by(project))
        {
            problems.push(taken("container", &d.name, &other.id, project));
            continue;
        }
        let same_name = ours.iter().find(|c| c.name == d.name);
        // Owned containers of this service@version under another name are leftovers
        // of an interrupted replace (see the executor): they go once the right one is up.
        let mut known_bad = false;
        for c in ours.iter().filter(|c| {
            c.name != d.name
                && c.label(LABEL_SERVICE) == d.service
                && c.label(LABEL_VERSION) == d.version
        }) {
            matched.insert(&c.id);
            let failed = c.name.starts_with(&format!("{}-failed-", d.name));
            if failed && c.label(LABEL_HASH) == d.hash && !opts.retry_failed {
                // This very configuration already failed its health gate: trying it
                // again on every apply (or every daemon event) would only fail again.
                known_bad = true;
                failed_rollouts.push(format!(
                    "{} never became healthy with this configuration; kept stopped as `{}`. Change the configuration, or remove that container to try again",
                    d.subject(project),
                    c.name
                ));
                continue;
            }
            let why = if failed {
                format!(
                    "`{}` failed its health gate with an earlier configuration",
                    c.name
                )
            } else {
                format!("leftover `{}` of an interrupted replace", c.name)
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
        if known_bad {
            if let Some(c) = same_name {
                matched.insert(&c.id);
            }
            continue;
        }
        match same_name {
            None => {
                let first = !ours.iter().any(|c| c.label(LABEL_SERVICE) == d.service);
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
            Some(c) => {
                matched.insert(&c.id);
                if c.label(LABEL_HASH) != d.hash {
                    steps.push(Step {
                        action: Action::ReplaceContainer {
                            old_id: c.id.clone(),
                            container: d.clone(),
                        },
                        reasons: changes(c.labels.get(LABEL_CONFIG), &d.config),
                    });
                } else if matches!(
                    c.state.as_str(),
                    "running" | "restarting" | "paused" | "removing"
                ) {
                    unchanged.push(d.subject(project));
                } else {
                    steps.push(Step {
                        action: Action::StartContainer {
                            id: c.id.clone(),
                            name: c.name.clone(),
                            subject: d.subject(project),
                        },
                        reasons: vec![Reason::note(format!(
                            "container is {} ({}); its configuration is right",
                            c.state, c.status
                        ))],
                    });
                }
            }
        }
    }
    for c in &ours {
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
        fingerprint: observed.fingerprint(project),
        observed: observed.summary(project),
        steps,
        unchanged,
        failed: failed_rollouts,
        warnings: desired.warnings.clone(),
    })
}

fn taken(kind: &str, name: &str, id: &str, project: &str) -> Diagnostic {
    Diagnostic::new(
        None,
        format!(
            "{kind} name `{name}` is taken by a {kind} berth does not manage (id {}, no label {LABEL_PROJECT}={project})",
            short(id)
        ),
        format!("remove or rename that {kind} yourself, or rename the project: berth never touches what it does not own"),
    )
}

/// The fields of a container config as a user reads them: path -> display value.
/// Secrets keep their path but their value is only used to compare.
pub fn display_fields(c: &ContainerConfig) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("image".to_string(), c.image.clone());
    f.insert(
        "command".to_string(),
        match &c.command {
            Some(cmd) => serde_json::to_string(cmd).unwrap_or_default(),
            None => "(the image's)".to_string(),
        },
    );
    for (k, v) in &c.env {
        f.insert(format!("env.{k}"), v.clone());
    }
    for (k, v) in &c.secrets {
        f.insert(format!("secrets.{k}"), v.clone());
    }
    f.insert("cpus".to_string(), format!("{}", c.nano_cpus as f64 / 1e9));
    f.insert("memory".to_string(), format!("{} MiB", c.memory >> 20));
    f.insert("port".to_string(), c.port.to_string());
    f.insert(
        "publish".to_string(),
        c.publish
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(a free port)".to_string()),
    );
    for (k, v) in &c.mounts {
        f.insert(format!("keeps.{k}"), v.clone());
    }
    for (k, v) in &c.assets {
        f.insert(
            format!("assets.{k}"),
            format!("sha256:{}", &v[..v.len().min(12)]),
        );
    }
    if let Some(g) = &c.gpu {
        f.insert("gpu".to_string(), g.clone());
    }
    for (k, v) in &c.networks {
        f.insert(
            format!("networks.{k}"),
            serde_json::to_string(v).unwrap_or_default(),
        );
    }
    for (k, v) in &c.labels {
        f.insert(format!("labels.{k}"), v.clone());
    }
    f
}

/// Field-by-field reasons for a replacement.
fn changes(old: Option<&String>, new: &ContainerConfig) -> Vec<Reason> {
    let Some(old) = old.and_then(|o| serde_json::from_str::<ContainerConfig>(o).ok()) else {
        return vec![Reason::note(
            "configuration differs (the container records no readable berth.config)",
        )];
    };
    let (a, b) = (display_fields(&old), display_fields(new));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (o, n) = (a.get(k), b.get(k));
        if o != n {
            let sensitive = k.starts_with("secrets.");
            out.push(Reason::Changed {
                field: k.clone(),
                old: o.map(|v| {
                    if sensitive {
                        SENSITIVE.to_string()
                    } else {
                        v.clone()
                    }
                }),
                new: n.map(|v| {
                    if sensitive {
                        SENSITIVE.to_string()
                    } else {
                        v.clone()
                    }
                }),
                sensitive,
            });
        }
    }
    if out.is_empty() {
        out.push(Reason::note("configuration hash differs"));
    }
    out
}
