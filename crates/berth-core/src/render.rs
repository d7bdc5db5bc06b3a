//! Rendering: plans and status as text for people (colour on a terminal only) and
//! as JSON for programs. Pure: takes values, returns strings.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::plan::{Action, Plan, Reason, SENSITIVE};

/// ANSI colours, or none when the output is not a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The mark a plan line starts with, and its ANSI colour.
pub fn sign(action: &Action) -> (&'static str, &'static str) {
    match action.verb() {
        "create" | "build" => ("+", "32"),
        "replace" => ("~", "33"),
        "start" | "restart" => (">", "36"),
        "route" => ("=", "35"),
        _ => ("-", "31"),
    }
}

/// A value as a plan shows it: `(none)`, a list or note as it is, a string quoted.
pub fn quote(v: &Option<String>) -> String {
    match v {
        None => "(none)".to_string(),
        // Lists and "(...)" notes are already unambiguous; quote only plain strings.
        Some(s) if s == SENSITIVE || s.starts_with('[') || s.starts_with('(') => s.clone(),
        Some(s) => format!("{s:?}"),
    }
}

/// One reason as text; multi-line values get a unified diff below the line.
pub fn reason_text(r: &Reason) -> String {
    match r {
        Reason::Note { text } => text.clone(),
        Reason::Changed {
            field,
            sensitive: true,
            old,
            new,
        } => {
            let what = match (old, new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            format!("{field}: {SENSITIVE} {what}")
        }
        Reason::Changed {
            field, old, new, ..
        } => {
            let multi = old.as_deref().unwrap_or("").contains('\n')
                || new.as_deref().unwrap_or("").contains('\n');
            if !multi {
                return format!("{field}: {} -> {}", quote(old), quote(new));
            }
            let (a, b) = (old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
            let diff = similar::TextDiff::from_lines(a, b);
            let mut out = format!("{field}: changed");
            for change in diff.iter_all_changes() {
                let tag = match change.tag() {
                    similar::ChangeTag::Delete => "-",
                    similar::ChangeTag::Insert => "+",
                    similar::ChangeTag::Equal => " ",
                };
                let _ = write!(out, "\n    {tag} {}", change.value().trim_end_matches('\n'));
            }
            out
        }
    }
}

/// The human plan, as design.md section 2 shows it.
pub fn plan_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let subjects: Vec<String> = plan
        .steps
        .iter()
        .map(|s| s.action.subject(&plan.project))
        .collect();
    let width = subjects.iter().map(String::len).max().unwrap_or(0).max(20);
    for (step, subject) in plan.steps.iter().zip(&subjects) {
        let (mark, color) = sign(&step.action);
        let head = style.paint(color, &format!("{mark} {:<8}", step.action.verb()));
        let mut reasons = step.reasons.iter().map(reason_text);
        let first = reasons.next().unwrap_or_default();
        let _ = writeln!(out, "{head} {subject:<width$}   {first}");
        for more in reasons {
            let _ = writeln!(out, "{:indent$}{more}", "", indent = 10 + width + 4);
        }
    }
    for f in &plan.failed {
        let _ = writeln!(out, "{} {f}", style.paint("31", "! failed  "));
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "{} {w}", style.paint("33", "warning:"));
    }
    if plan.is_empty() && plan.failed.is_empty() {
        out.push_str("No changes: the engine matches the file.\n");
    }
    let _ = writeln!(out, "{}", summary_line(plan, false));
    out
}

/// The last line of a plan (`Plan: 1 to build, 2 to create, ...`) or of the
/// apply that carried it out (`Applied: 1 built, 2 created, ...`), counted alike.
pub fn summary_line(plan: &Plan, done: bool) -> String {
    let (c, r, s, d) = plan.counts();
    let b = plan.builds();
    let (head, build, create, replace, start, remove) = if done {
        (
            "Applied:", "built", "created", "replaced", "started", "removed",
        )
    } else {
        (
            "Plan:",
            "to build",
            "to create",
            "to replace",
            "to start",
            "to remove",
        )
    };
    let mut parts = Vec::new();
    if b > 0 {
        parts.push(format!("{b} {build}"));
    }
    parts.push(format!("{c} {create}"));
    parts.push(format!("{r} {replace}"));
    if s > 0 {
        parts.push(format!("{s} {start}"));
    }
    parts.push(format!("{d} {remove}"));
    let switched = plan.switches();
    if switched > 0 {
        let verb = if done { "switched" } else { "to switch" };
        parts.push(format!("{switched} {verb} (no restarts)"));
    }
    parts.push(format!("{} unchanged", plan.unchanged.len()));
    format!("{head} {}.", parts.join(", "))
}

/// One container as `status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRow {
    pub service: String,
    pub version: String,
    /// The service path routes to this version.
    pub active: bool,
    pub container: String,
    pub state: String,
    /// healthy | starting | unhealthy | failed | crash-looping | unknown (no
    /// published port) | - (not running)
    pub health: super::health::Health,
    /// Why it is judged so (see `health::reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// Restarts by the engine's restart policy since the container was created.
    pub restarts: i64,
    pub url: Option<String>,
    pub scope: String,
    /// The commit the container was created from (`berth watch --git`).
    pub revision: Option<String>,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// The GPU handed to the container (UUID).
    #[serde(default)]
    pub gpu: Option<String>,
    /// Mounted assets: `path (sha256 prefix)`.
    #[serde(default)]
    pub assets: Vec<String>,
    /// Seconds since it last started, while it runs.
    #[serde(default)]
    pub up_secs: Option<u64>,
    /// On a swarm: its tasks, and the nodes they run on (`3/3 tasks running
    /// on node-1, node-3`), shown as the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<String>,
    /// A job's last run: exit code, duration, the last lines of its log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<JobRun>,
    /// While `berth rollback` holds the service at another version: the
    /// version the file's `active` names (on every row of the service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_against: Option<String>,
}

/// A job's run as `status`, `/status` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    /// `None` while it runs.
    pub exit_code: Option<i64>,
    /// Seconds from start to exit (so far, while it runs).
    pub secs: Option<f64>,
    /// The last lines of its log (excerpts: masked and marked, see `redact`).
    #[serde(default)]
    pub log_tail: Vec<String>,
}

impl JobRun {
    /// `exited 0 after 1.2 s`, `running for 3.0 s`.
    pub fn describe(&self) -> String {
        let secs = self
            .secs
            .map(|s| format!(" after {s:.1} s"))
            .unwrap_or_default();
        match self.exit_code {
            Some(code) => format!("exited {code}{secs}"),
            None => format!(
                "running{}",
                self.secs
                    .map(|s| format!(" for {s:.1} s"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// A duration as `status` shows it: `45s`, `3m`, `5h`, `2d`.
pub fn ago(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub fn status_text(rows: &[StatusRow]) -> String {
    if rows.is_empty() {
        return "No containers: nothing of this project runs on the engine.\n".to_string();
    }
    let header = [
        "SERVICE", "VERSION", "STATE", "UP", "HEALTH", "RESTARTS", "URL", "SCOPE", "CPU", "MEMORY",
    ];
    let table: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.service.clone(),
                if r.active {
                    format!("{} (active)", r.version)
                } else {
                    r.version.clone()
                },
                r.tasks.clone().unwrap_or_else(|| r.state.clone()),
                r.up_secs.map(ago).unwrap_or_else(|| "-".into()),
                r.health.word().to_string(),
                r.restarts.to_string(),
                r.url.clone().unwrap_or_else(|| "-".into()),
                r.scope.clone(),
                r.cpu_percent
                    .map(|c| format!("{c:.1}%"))
                    .unwrap_or_else(|| "-".into()),
                match (r.memory_bytes, r.memory_limit_bytes) {
                    (Some(m), Some(l)) => format!("{} / {} MiB", m >> 20, l >> 20),
                    (Some(m), None) => format!("{} MiB", m >> 20),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    let mut extra = Vec::new();
    for (row, r) in table.iter().zip(rows) {
        line(row.iter().map(String::as_str).collect());
        // What a container was handed beyond the table: its GPU and assets.
        extra.clear();
        if let Some(rev) = &r.revision {
            extra.push(format!("  revision  {}", &rev[..rev.len().min(12)]));
        }
        if let Some(g) = &r.gpu {
            extra.push(format!("  gpu    {g}"));
        }
        for a in &r.assets {
            extra.push(format!("  asset  {a}"));
        }
        if let Some(run) = &r.run {
            extra.push(format!("  run    {}", run.describe()));
            extra.extend(run.log_tail.iter().map(|l| format!("  {l}")));
        }
        for e in &extra {
            line(vec![e]);
        }
    }
    out
}

/// The notes `plan` and `apply` print for services a rollback holds.
pub fn hold_notes(spec: &super::spec::Spec) -> Vec<String> {
    spec.services
        .iter()
        .filter_map(|s| {
            let file = s.file_active.as_ref()?;
            Some(format!(
                "note: `{}` is held at {} by `berth rollback`; the file says `active: \"{file}\"`. Set `active: \"{}\"` to keep it; changing `active`, `berth rollback {0} --release` or `berth destroy` ends the hold.",
                s.name, s.active, s.active
            ))
        })
        .collect()
}
