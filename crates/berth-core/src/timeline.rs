//! What happened to each service, as the dashboard's timeline shows it: the
//! events one converge makes of the plan it carried out (created, gated,
//! switched, drift repaired...), and those a rollback or a restart adds.

use serde::{Deserialize, Serialize};

use super::steps::{Action, Plan};

/// How many events the status document keeps (newest first).
pub const KEPT: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Built,
    Created,
    Replaced,
    /// A new container passed its health gate and took its place.
    Gated,
    /// A step failed: a health gate, a start, a build.
    Failed,
    Started,
    Switched,
    RolledBack,
    HoldEnded,
    DriftRepaired,
    Removed,
    Restarted,
}

impl EventKind {
    pub fn word(self) -> &'static str {
        match self {
            EventKind::Built => "built",
            EventKind::Created => "created",
            EventKind::Replaced => "replaced",
            EventKind::Gated => "gated",
            EventKind::Failed => "failed",
            EventKind::Started => "started",
            EventKind::Switched => "switched",
            EventKind::RolledBack => "rolled back",
            EventKind::HoldEnded => "hold ended",
            EventKind::DriftRepaired => "drift repaired",
            EventKind::Removed => "removed",
            EventKind::Restarted => "restarted",
        }
    }
}

/// One thing that happened to a service (to one of its versions, when named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEvent {
    #[serde(with = "rfc3339")]
    pub at: u64,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub kind: EventKind,
    pub text: String,
    /// The commit converged to, under `watch --git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// `service@version` of a step's subject (`project/service@version`).
fn parts(project: &str, subject: &str) -> Option<(String, String)> {
    let rest = subject.strip_prefix(project)?.strip_prefix('/')?;
    let (s, v) = rest.split_once('@')?;
    Some((s.to_string(), v.to_string()))
}

/// The service and version a step acts on, when it acts on one.
fn acted_on(project: &str, action: &Action) -> Option<(String, String)> {
    match action {
        Action::BuildImage {
            service, version, ..
        } => Some((service.clone(), version.clone())),
        Action::CreateContainer { container } | Action::ReplaceContainer { container, .. } => {
            Some((container.service.clone(), container.version.clone()))
        }
        Action::StartContainer { subject, .. }
        | Action::RestoreContainer { subject, .. }
        | Action::RemoveContainer { subject, .. }
        | Action::RestartContainer { subject, .. } => parts(project, subject),
        _ => None,
    }
}

/// The events of a plan carried out in full at `at`; `drift`: no change of
/// source, so every step undid drift.
pub fn of_plan(plan: &Plan, at: u64, drift: bool, revision: Option<&str>) -> Vec<ServiceEvent> {
    let mut out = Vec::new();
    let event = |service: String, version: String, kind, text: String| ServiceEvent {
        at,
        service,
        version: Some(version),
        kind,
        text,
        revision: revision.map(String::from),
    };
    for step in &plan.steps {
        if let Action::Route { switches, .. } = &step.action {
            for s in switches {
                let text = match &s.from {
                    Some(from) => format!("active {from} → {}, no restart", s.to),
                    None => format!("active: {}", s.to),
                };
                out.push(event(
                    s.service.clone(),
                    s.to.clone(),
                    EventKind::Switched,
                    text,
                ));
            }
            continue;
        }
        let Some((service, version)) = acted_on(&plan.project, &step.action) else {
            continue;
        };
        let why = match step.reasons.first() {
            Some(super::steps::Reason::Note { text }) => text.clone(),
            Some(super::steps::Reason::Changed { field, .. }) => format!("{field} changed"),
            None => String::new(),
        };
        let (kind, text) = match &step.action {
            Action::BuildImage { .. } => (EventKind::Built, "image built".to_string()),
            Action::CreateContainer { .. } | Action::ReplaceContainer { .. } if drift => {
                (EventKind::DriftRepaired, format!("recreated: {why}"))
            }
            Action::StartContainer { .. } | Action::RestoreContainer { .. } if drift => {
                (EventKind::DriftRepaired, format!("started again: {why}"))
            }
            Action::CreateContainer { .. } => (EventKind::Created, why),
            Action::ReplaceContainer { .. } => (EventKind::Replaced, why),
            Action::StartContainer { .. } | Action::RestoreContainer { .. } => {
                (EventKind::Started, why)
            }
            Action::RemoveContainer { .. } => (EventKind::Removed, why),
            Action::RestartContainer { .. } => (EventKind::Restarted, why),
            _ => continue,
        };
        out.push(event(service.clone(), version.clone(), kind, text));
        if matches!(
            step.action,
            Action::CreateContainer { .. } | Action::ReplaceContainer { .. }
        ) {
            let text = "passed its health gate and serves".to_string();
            out.push(event(service, version, EventKind::Gated, text));
        }
    }
    out
}

/// The services a plan's steps act on, sorted.
pub fn touched(plan: &Plan) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for step in &plan.steps {
        match &step.action {
            Action::Route { switches, .. } => {
                names.extend(switches.iter().map(|w| w.service.clone()))
            }
            a => names.extend(acted_on(&plan.project, a).map(|(s, _)| s)),
        }
    }
    names.into_iter().collect()
}

/// The events of a converge that failed: one `failed` event per step apply
/// reports (`  <project>/<service>@<version>: <error>` lines), with its
/// error's first line. Which other steps ran is not told.
pub fn of_failures(
    project: &str,
    failures: &str,
    at: u64,
    revision: Option<&str>,
) -> Vec<ServiceEvent> {
    failures
        .lines()
        .filter_map(|l| {
            let (subject, why) = l.strip_prefix("  ")?.split_once(": ")?;
            let (service, version) = parts(project, subject)?;
            Some(ServiceEvent {
                at,
                service,
                version: Some(version),
                kind: EventKind::Failed,
                text: why.to_string(),
                revision: revision.map(String::from),
            })
        })
        .collect()
}

/// A rollback's hold taken (`to`) or ended, as one event.
pub fn of_rollback(service: &str, to: Option<&str>, file_active: &str, at: u64) -> ServiceEvent {
    let (kind, version, text) = match to {
        Some(v) => (
            EventKind::RolledBack,
            Some(v.to_string()),
            format!("held active against the file's {file_active}"),
        ),
        None => (
            EventKind::HoldEnded,
            Some(file_active.to_string()),
            format!("back to the file's {file_active}"),
        ),
    };
    ServiceEvent {
        at,
        service: service.to_string(),
        version,
        kind,
        text,
        revision: None,
    }
}

/// Puts `new` (oldest first, as they happened) on top of `kept` (newest
/// first), keeping the newest [`KEPT`].
pub fn push(kept: &mut Vec<ServiceEvent>, new: Vec<ServiceEvent>) {
    for e in new {
        kept.insert(0, e);
    }
    kept.truncate(KEPT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::{Reason, Step, Switch};

    fn plan(steps: Vec<Action>) -> Plan {
        let steps = steps
            .into_iter()
            .map(|action| Step {
                action,
                reasons: vec![Reason::note("asked for")],
            })
            .collect();
        Plan::of_steps("shop", steps)
    }

    fn lines(events: Vec<ServiceEvent>) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let v = e.version.as_deref().unwrap_or("-");
                format!("{}@{v} {}: {}", e.service, e.kind.word(), e.text)
            })
            .collect()
    }

    fn check(p: &Plan, drift: bool, expect: &[&str]) {
        assert_eq!(lines(of_plan(p, 7, drift, None)), expect);
    }

    fn container(verb: &str) -> Action {
        let (id, name, subject) = ("x".into(), "shop-web-1.0.0".into(), "shop/web@1.0.0".into());
        match verb {
            "start" => Action::StartContainer { id, name, subject },
            "restart" => Action::RestartContainer { id, name, subject },
            _ => Action::RemoveContainer { id, name, subject },
        }
    }

    fn switch() -> Action {
        Action::Route {
            generation: 1,
            active: Default::default(),
            records: vec![],
            switches: vec![Switch {
                service: "api".into(),
                from: Some("1.0.0".into()),
                to: "1.1.0".into(),
                release: vec!["1.0.0".into()],
            }],
        }
    }

    #[test]
    fn a_switch_a_restart_and_a_removal_are_told_per_service_and_version() {
        let p = plan(vec![switch(), container("restart"), container("remove")]);
        check(
            &p,
            false,
            &[
                "api@1.1.0 switched: active 1.0.0 → 1.1.0, no restart",
                "web@1.0.0 restarted: asked for",
                "web@1.0.0 removed: asked for",
            ],
        );
        assert_eq!(touched(&p), ["api", "web"]);
    }

    #[test]
    fn a_start_with_no_change_of_source_is_drift_repaired() {
        check(
            &plan(vec![container("start")]),
            true,
            &["web@1.0.0 drift repaired: started again: asked for"],
        );
    }

    #[test]
    fn a_failed_converge_tells_each_failed_step_with_its_first_line() {
        let failures = "  shop/web@1.0.0: health gate: GET / answered 404\n    last lines\n  other/x@1: not ours";
        assert_eq!(
            lines(of_failures("shop", failures, 7, None)),
            ["web@1.0.0 failed: health gate: GET / answered 404"]
        );
    }

    #[test]
    fn the_newest_events_are_kept_first() {
        let mut kept = vec![];
        for n in 0..KEPT + 5 {
            push(&mut kept, vec![of_rollback("web", None, &n.to_string(), 1)]);
        }
        assert_eq!(kept.len(), KEPT);
        assert_eq!(
            kept[0].version.as_deref(),
            Some((KEPT + 4).to_string().as_str())
        );
    }
}

/// Times in the status document: RFC 3339 out; RFC 3339 or Unix seconds in.
pub(crate) mod rfc3339 {
    use std::time::{Duration, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &u64, s: S) -> Result<S::Ok, S::Error> {
        let t = UNIX_EPOCH + Duration::from_secs(*at);
        s.serialize_str(&humantime::format_rfc3339_seconds(t).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum At {
            Secs(u64),
            Text(String),
        }
        match At::deserialize(d)? {
            At::Secs(s) => Ok(s),
            At::Text(t) => humantime::parse_rfc3339(&t)
                .map_err(serde::de::Error::custom)?
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(serde::de::Error::custom),
        }
    }
}
