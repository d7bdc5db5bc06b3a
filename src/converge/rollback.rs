//! A rollback's hold, shared by `berth rollback` and the dashboard: which
//! version becomes active again (the core decides), whether it serves now, and
//! the hold written to the state directory that keeps it active until the
//! file's `active` changes. The caller converges after; when that fails, the
//! hold is undone, so nothing changes hands.

use std::collections::BTreeMap;
use std::path::Path;

use crate::core::desired::container_name;
use crate::core::spec::{ActiveHold, Spec};
use crate::shell::lock::ProjectLock;
use crate::shell::{probe, state};

use super::{Context, ConvergeError};

/// What a rollback asks for: a service, and the version to make active (else the
/// one active before); `release` goes back to what the file says.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub service: String,
    pub to: Option<String>,
    pub release: bool,
}

/// A hold written, not yet converged.
#[derive(Debug)]
pub struct Held {
    pub service: String,
    pub target: String,
    /// The version active before.
    pub current: String,
    /// What the file's `active` says.
    pub file_active: String,
    project: String,
    /// The holds before this one, restored by [`Held::undo`].
    before: BTreeMap<String, ActiveHold>,
}

/// The rollback's outcome before any converge.
#[derive(Debug)]
pub enum Decided {
    /// The target is active already and no hold is to end: nothing to do.
    Already {
        service: String,
        target: String,
    },
    Held(Held),
}

/// Decides the target, checks that it serves, and writes the hold, under the
/// project's lock (`_lock` is the proof).
pub async fn hold(
    ctx: &Context,
    _lock: &ProjectLock,
    spec: &Spec,
    file: &Path,
    req: &Request,
) -> Result<Decided, ConvergeError> {
    let dir = &ctx.settings.state_dir;
    let service = req.service.as_str();
    let Some(svc) = spec.services.iter().find(|s| s.name == service) else {
        return Err(ConvergeError::ServiceNotFound {
            service: service.into(),
            file: file.into(),
        });
    };
    let declared: Vec<String> = svc.versions.iter().map(|v| v.version.to_string()).collect();
    let current = svc.active.to_string();
    let history = state::history(dir, &spec.project)?
        .remove(service)
        .unwrap_or_default();
    let file_active = svc
        .file_active
        .clone()
        .unwrap_or_else(|| svc.active.clone());
    let before = state::holds(dir, &spec.project)?;
    // `release` is a rollback to what the file says.
    let release_to = req.release.then(|| file_active.to_string());
    let to = release_to.as_deref().or(req.to.as_deref());
    let target = crate::core::rollback::target(service, &declared, &current, &history, to)
        .map_err(|r| ConvergeError::RollbackRefuse {
            why: r.why,
            help: r.help,
        })?;
    if target == current && !(req.release && before.contains_key(service)) {
        return Ok(Decided::Already {
            service: service.into(),
            target,
        });
    }
    // Only to a version that serves now: a rollback is for when things are bad.
    let health = health_now(ctx, spec, service, &target).await?;
    if health != "healthy" {
        return Err(ConvergeError::RollbackRefuse {
            why: format!("{service}@{target} is {health}, so it cannot take over"),
            help: format!(
                "`berth status` shows why; `berth logs {service}@{target}` shows its logs"
            ),
        });
    }
    let mut holds = before.clone();
    if target == file_active.to_string() {
        holds.remove(service);
    } else {
        holds.insert(
            service.to_string(),
            ActiveHold {
                version: semver::Version::parse(&target).expect("declared versions parse"),
                file_active: file_active.clone(),
            },
        );
    }
    state::write_holds(dir, &spec.project, &holds)?;
    Ok(Decided::Held(Held {
        service: service.into(),
        target,
        current,
        file_active: file_active.to_string(),
        project: spec.project.clone(),
        before,
    }))
}

impl Held {
    /// Puts the holds back as they were: the switch failed, nothing changes hands.
    pub fn undo(self, ctx: &Context) {
        if let Err(e) = state::write_holds(&ctx.settings.state_dir, &self.project, &self.before) {
            tracing::warn!(error = %e, "cannot undo the rollback's hold");
        }
    }

    /// What a user reads once the switch is done: what changed, and how the
    /// hold ends.
    pub fn said(&self, file: &Path) -> String {
        let (service, target) = (&self.service, &self.target);
        let mut text = format!(
            "Rolled back `{service}` to {target} (it was {}).",
            self.current
        );
        if *target != self.file_active {
            text.push_str(&format!(
                "\nThe file still says `active: \"{}\"`; berth keeps {target} active until that changes. To keep it, set `active: \"{target}\"` under `services.{service}` in {}.",
                self.file_active,
                file.display()
            ));
        }
        text
    }
}

impl Decided {
    pub fn already(service: &str, target: &str) -> String {
        format!("`{service}` already runs {target} as its active version: nothing to do.")
    }
}

/// healthy | unhealthy | not published | the state of a container not running.
async fn health_now(
    ctx: &Context,
    spec: &Spec,
    service: &str,
    version: &str,
) -> Result<String, ConvergeError> {
    let observed = ctx.engine.observe(&spec.project).await?;
    let name = container_name(&spec.project, service, version);
    Ok(match observed.containers.iter().find(|c| c.name == name) {
        Some(c) if c.state == "running" => match c.ports.iter().find_map(|p| p.public) {
            Some(port) => probe::health(port, &c.health_check()).await.to_string(),
            None => "not published".into(),
        },
        Some(c) => c.state.clone(),
        None => "not running".into(),
    })
}
