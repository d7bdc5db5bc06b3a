//! What the daemon tells the sinks of `--notify`: each reconcile's outcome
//! as one notice (`core::notice` decides its kind and words), queued and
//! never waited for. A tick or an engine event that finds nothing to do
//! tells nothing; the same failure again tells nothing more.

use crate::converge::ConvergeError;
use crate::core::notice::{kind_of_failure, Kind, Notice, SCHEMA};
use crate::core::plan::Plan;
use crate::core::report::Trigger;

use super::{unix_now, Daemon, DaemonError};

impl Daemon {
    /// A reconcile that converged: applied, drift repaired, or (for a change
    /// of source or an ask) nothing to do.
    pub(super) fn tell_converged(&self, plan: &Plan, trigger: Trigger, changed: bool) {
        if self.untold {
            return;
        }
        let steps = plan.steps.len();
        let kind = match (steps, changed || trigger == Trigger::Api) {
            (0, false) => return,
            (0, true) => Kind::NothingToDo,
            (_, false) if matches!(trigger, Trigger::Engine | Trigger::Tick) => Kind::DriftRepaired,
            _ => Kind::Applied,
        };
        let services = crate::core::timeline::touched(plan);
        let summary = match steps {
            0 => format!("{} unchanged", plan.unchanged.len()),
            n => format!("{n} step(s): {}", services.join(", ")),
        };
        self.tell(kind, trigger, services, summary, None);
    }

    /// A reconcile that failed (told once per distinct failure).
    pub(super) fn tell_failed(&self, e: &DaemonError, text: &str, trigger: Trigger) {
        let kind = match e {
            DaemonError::Converge(ConvergeError::ApplyFail { details, .. }) => {
                kind_of_failure(details)
            }
            DaemonError::Converge(ConvergeError::SpecInvalid(_))
            | DaemonError::Converge(ConvergeError::Source(_))
            | DaemonError::Converge(ConvergeError::Sealed(_)) => Kind::SourceRefused,
            _ => Kind::Failed,
        };
        let summary = match kind {
            Kind::GateFailed => {
                "a new version failed its health gate; the running one keeps serving"
            }
            Kind::RolledBack => {
                "Swarm rolled an update back; the previous configuration keeps running"
            }
            Kind::SourceRefused => "the file was refused; nothing changed",
            _ => "the reconcile failed; what runs keeps running",
        };
        self.tell(kind, trigger, Vec::new(), summary.into(), Some(text.into()));
    }

    /// A rollback asked for (`berth rollback`'s API, the dashboard).
    pub(super) fn tell_rolled_back(&self, service: &str, to: &str, file_active: &str) {
        let summary = format!(
            "{service} rolled back to {to}, held against the file's {file_active} (asked for; not the file's version)"
        );
        self.tell(
            Kind::RolledBack,
            Trigger::Api,
            vec![service.to_string()],
            summary,
            None,
        );
    }

    fn tell(
        &self,
        kind: Kind,
        trigger: Trigger,
        services: Vec<String>,
        summary: String,
        detail: Option<String>,
    ) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let revision = self.current.as_ref().and_then(|(r, _)| r.clone());
        notifier.send(&Notice {
            schema: SCHEMA.into(),
            kind,
            project: self.project.clone().unwrap_or_default(),
            at: unix_now(),
            trigger: trigger.word().into(),
            subject: self.fetched_subject.clone().filter(|_| revision.is_some()),
            revision,
            services,
            summary,
            detail,
        });
    }
}
