//! The daemon's report: the typed `/status` document (the API serves it, and the
//! dashboard will read the same type) and the `/metrics` text, both rendered from
//! values the daemon hands in, the time included.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::render::StatusRow;

/// What woke the daemon for a reconcile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The first reconcile, at start.
    Start,
    /// The services file was saved.
    File,
    /// The followed branch moved.
    Git,
    /// The engine reported a change to one of the project's containers.
    Engine,
    /// The periodic full resync.
    #[default]
    Tick,
    /// `POST /reconcile` or `POST /build`.
    Api,
}

impl Trigger {
    /// Whether a configuration that already failed its health gate is tried again:
    /// on the resync timer or when asked, never on the events its failure caused.
    pub fn retries_failed(self) -> bool {
        matches!(self, Trigger::Tick | Trigger::Api)
    }

    /// Of the events of one batch, the trigger to report: a change of source wins
    /// over an API request, which wins over engine events, which win over the timer.
    pub fn strongest(self, other: Trigger) -> Trigger {
        let rank = |t: Trigger| match t {
            Trigger::Tick => 0,
            Trigger::Start => 1,
            Trigger::Engine => 2,
            Trigger::Api => 3,
            Trigger::File | Trigger::Git => 4,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::File => "file",
            Trigger::Git => "git",
            Trigger::Engine => "engine",
            Trigger::Tick => "tick",
            Trigger::Api => "api",
        }
    }
}

/// Where the daemon's desired state comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceReport {
    File {
        path: String,
    },
    Git {
        /// Without credentials.
        url: String,
        #[serde(rename = "ref")]
        reference: String,
        path: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Error,
}

/// The last reconcile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// When it started, as Unix seconds here and RFC 3339 (UTC) in the document.
    #[serde(with = "super::timeline::rfc3339")]
    pub at: u64,
    pub trigger: Trigger,
    pub result: Outcome,
    pub error: Option<String>,
    pub duration_seconds: f64,
    /// The commit it converged from (`watch --git`), and its subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The services its steps acted on (a failed one's too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touched: Vec<String>,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDocument {
    pub source: SourceReport,
    /// The commit converged to (git sources).
    pub revision: Option<String>,
    pub last_reconcile: Option<ReconcileReport>,
    /// The last reconcile's error, else the source's.
    pub last_error: Option<String>,
    /// Why the source cannot be read now (a failed fetch, a refused commit).
    pub source_error: Option<String>,
    /// Why the last rollout failed (the health gate's report), until a reconcile succeeds.
    pub rollout_error: Option<String>,
    pub services: Vec<StatusRow>,
    /// The reconciles before, newest first (at most [`RECENT`]).
    #[serde(default)]
    pub recent: Vec<ReconcileReport>,
    /// Steps taken to undo drift (a container stopped or removed by hand) since start.
    #[serde(default)]
    pub drift_corrections: u64,
    /// Rollbacks holding a version active against the file (`berth rollback`).
    #[serde(default)]
    pub holds: Vec<HoldReport>,
    /// The routing gateway, when the daemon serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayReport>,
    /// What happened to the services, newest first (at most
    /// [`super::timeline::KEPT`]): the dashboard's timelines.
    #[serde(default)]
    pub events: Vec<super::timeline::ServiceEvent>,
    /// Each declared service's active version and why, as of the last
    /// reconcile that read the file.
    #[serde(default)]
    pub actives: Vec<ActiveReport>,
    /// `watch --manual`: the daemon converges only when asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

/// Which version of a service is active, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveReport {
    pub service: String,
    pub active: String,
    pub why: String,
}

/// Why each service's active version is the one it is, as the file (and a
/// rollback's hold) decide it.
pub fn active_of(spec: &super::spec::Spec) -> Vec<ActiveReport> {
    spec.services
        .iter()
        .map(|s| {
            let why = match (&s.file_active, s.active_declared, s.versions.len()) {
                (Some(file), _, _) => format!(
                    "held by a rollback; the file says `active: \"{file}\"` (the hold ends when that changes, or with End hold)"
                ),
                (None, true, _) => "the file's `active:`".to_string(),
                (None, false, 1) => "its only version".to_string(),
                (None, false, _) => "the highest version: the file names no `active:`".to_string(),
            };
            ActiveReport {
                service: s.name.clone(),
                active: s.active.to_string(),
                why,
            }
        })
        .collect()
}

/// How many past reconciles the document keeps.
pub const RECENT: usize = 10;

/// A rollback's hold: `service` runs `version` as active while the file says
/// `file_active`; it ends when the file's `active` changes, or with
/// `berth rollback SERVICE --release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldReport {
    pub service: String,
    pub version: String,
    pub file_active: String,
}

/// The gateway's address and what it routes: prefix -> `service@version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayReport {
    pub address: String,
    pub routes: std::collections::BTreeMap<String, String>,
    /// This project's paths the gateway leaves out, as another project
    /// listed before it routes them (`watch --projects`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

impl GatewayReport {
    /// The shortest prefix that reaches `service@version`: the URL a user
    /// would type.
    pub fn path_of(&self, service: &str, version: &str) -> Option<&str> {
        let target = format!("{service}@{version}");
        self.routes
            .iter()
            .filter(|(_, t)| **t == target)
            .map(|(p, _)| p.as_str())
            .min_by_key(|p| (p.len(), *p))
    }
}

impl StatusDocument {
    /// The document as a reader without `logs:view` gets it: every excerpt of
    /// container output in its errors replaced by a line that says it is there.
    pub fn without_excerpts(mut self) -> StatusDocument {
        use super::redact::without_excerpts as cut;
        for e in [
            &mut self.last_error,
            &mut self.source_error,
            &mut self.rollout_error,
        ]
        .into_iter()
        .flatten()
        {
            *e = cut(e);
        }
        for r in self.last_reconcile.iter_mut().chain(self.recent.iter_mut()) {
            if let Some(e) = &mut r.error {
                *e = cut(e);
            }
        }
        for run in self.services.iter_mut().filter_map(|r| r.run.as_mut()) {
            run.log_tail = cut(&run.log_tail.join("\n"))
                .lines()
                .map(String::from)
                .collect();
        }
        self
    }

    pub fn new(source: SourceReport) -> StatusDocument {
        StatusDocument {
            source,
            revision: None,
            last_reconcile: None,
            last_error: None,
            source_error: None,
            rollout_error: None,
            services: Vec::new(),
            recent: Vec::new(),
            drift_corrections: 0,
            holds: Vec::new(),
            gateway: None,
            events: Vec::new(),
            actives: Vec::new(),
            manual: false,
        }
    }
}

/// The daemon's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub reconciles: u64,
    pub errors: u64,
    pub drift_corrections: u64,
    pub duration_sum: f64,
    pub last_duration: f64,
    pub managed: usize,
}

/// `GET /metrics`, in Prometheus' text format.
pub fn metrics_text(c: &Counters) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(&str, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (suffix, value) in lines {
            let _ = writeln!(out, "{name}{suffix} {value}");
        }
    };
    metric(
        "berth_reconcile_total",
        "counter",
        "Reconciles run.",
        &[("", c.reconciles.to_string())],
    );
    metric(
        "berth_reconcile_errors_total",
        "counter",
        "Reconciles that failed.",
        &[("", c.errors.to_string())],
    );
    metric(
        "berth_reconcile_duration_seconds",
        "summary",
        "Time spent reconciling.",
        &[
            ("_sum", c.duration_sum.to_string()),
            ("_count", c.reconciles.to_string()),
        ],
    );
    metric(
        "berth_managed_containers",
        "gauge",
        "Containers of the project on the engine.",
        &[("", c.managed.to_string())],
    );
    metric(
        "berth_drift_corrections_total",
        "counter",
        "Steps taken to undo changes made behind berth's back.",
        &[("", c.drift_corrections.to_string())],
    );
    out
}

/// The log lines that say why a process failed, from the tail of its log: the
/// lines that name an error (`Cannot find module …`, `ModuleNotFoundError: …`,
/// `Error: …`), then the last few lines, in log order, at most `max` in all. A
/// stack trace's frames alone rarely say what went wrong; its first line does.
pub fn decisive_lines(log: &str, max: usize) -> Vec<&str> {
    const MARKERS: [&str; 12] = [
        "error",
        "exception",
        "cannot ",
        "can't ",
        "not found",
        "no such",
        "no module",
        "fatal",
        "panic",
        "denied",
        "refused",
        "failed",
    ];
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = 5.min(max);
    let last = lines.len().saturating_sub(tail);
    let marked: Vec<usize> = (0..last)
        .filter(|&i| {
            let l = lines[i].to_ascii_lowercase();
            MARKERS.iter().any(|m| l.contains(m))
        })
        .collect();
    // The first error lines matter most: the cause comes before its echoes.
    let keep = max - tail.min(lines.len());
    let mut picked: Vec<usize> = marked.into_iter().take(keep).collect();
    picked.extend(last..lines.len());
    picked.into_iter().map(|i| lines[i]).collect()
}
