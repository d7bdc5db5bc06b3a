//! The one converge path, used by `berth apply`, `berth rollback`, the daemon
//! and its dashboard alike: read the file, gather the facts, plan through the core, execute exactly
//! that plan (phases, parallelism, rollouts with health gate and drain), record
//! what converged. It talks to the engine only through the [`Engine`] trait.
//!
//! It prints each action as it completes (the plan's lines); what a command says
//! before and after is the command's business.

pub mod execute;
pub mod facts;
pub mod gateways;
pub mod images;
pub mod observe;
pub mod restart;
pub mod rollback;
pub mod rollout;
pub mod saved;
pub mod switch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::build::baseimage::BaseImageError;
use crate::build::BuildError;
use crate::core::diag::{Diagnostic, Diagnostics};
use crate::core::plan::{self, Plan};
use crate::core::spec::{self, Spec};
use crate::shell::engine::{EngineError, SharedEngine};
use crate::shell::lock::{self, LockError, ProjectLock};
use crate::shell::settings::Settings;
use crate::shell::source::{self, SourceError};
use crate::shell::state::{self, StateError};

/// Why one step of a plan failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Base(#[from] BaseImageError),
    #[error("the image of {0} was not built")]
    ImageMissing(String),
    #[error("the base image {0} is missing")]
    BaseMissing(String),
    #[error(transparent)]
    Unhealthy(Box<rollout::Unhealthy>),
    #[error("refused to touch container {id}: {why}; berth acts only on what the project owns, as the engine says at the moment of acting\n  help: plan again (`berth plan`) and apply that")]
    ContainerForeign { id: String, why: String },
    #[error("refused to create {what} {name}: one of that name exists without the label berth.project={project}, and the engine would hand it back as new\n  help: rename or remove that {what} yourself (berth never touches it), then plan again")]
    ObjectForeign {
        what: &'static str,
        name: String,
        project: String,
    },
}

impl From<rollout::Unhealthy> for StepError {
    fn from(e: rollout::Unhealthy) -> Self {
        StepError::Unhealthy(Box::new(e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error("{0}")]
    SpecInvalid(Diagnostics),
    #[error("{0}")]
    PlanRefused(Diagnostics),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    BaseImage(#[from] BaseImageError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Sealed(#[from] crate::shell::sealed::SealedError),
    #[error(
        "cannot read the saved plan {path}: {why}\n  help: make one with `berth plan --out {path}`"
    )]
    PlanRead { path: PathBuf, why: String },
    #[error("the saved plan {path} is stale: the engine changed since it was made\n{changes}\n  help: run `berth plan --out {path}` again, review it, then apply it")]
    PlanStale { path: PathBuf, changes: String },
    #[error("{failed} of {total} actions failed; later phases were not started\n{details}\n  help: fix the cause above and run `berth apply` again: it picks up where this one stopped")]
    ApplyFail {
        failed: usize,
        total: usize,
        details: String,
    },
    #[error("{failed}")]
    RolloutFail { failed: String },
    #[error("the plan changed since it was shown (it was {shown}, it is {now} now): the file or the engine moved meanwhile; nothing was done\n  help: look at the plan again and apply that one")]
    PlanChange { shown: String, now: String },
    #[error(transparent)]
    RestartRefuse(#[from] crate::core::restart::RestartRefusal),
    #[error(
        "no container of `{target}` in project `{project}`\n  help: `berth status` lists what runs"
    )]
    ContainerNotFound { target: String, project: String },
    #[error("nothing to build for `{target}` in project `{project}`: no such service version is built from a package\n  help: `berth build` builds the versions that have `package:` and `runtime:`")]
    BuildTargetNotFound { target: String, project: String },
    #[error(
        "no service `{service}` in {file}\n  help: `berth status` lists the services that run"
    )]
    ServiceNotFound { service: String, file: PathBuf },
    #[error("cannot roll back: {why}\n  help: {help}")]
    RollbackRefuse { why: String, help: String },
    #[error("a blocking task of berth failed: {0}")]
    TaskJoin(#[from] tokio::task::JoinError),
}

/// What every converge needs: the engine, the settings read at start, and how to
/// print.
#[derive(Clone)]
pub struct Context {
    pub engine: SharedEngine,
    pub settings: Settings,
    /// Print build logs and more.
    pub verbose: bool,
    /// Colour on standard output (a terminal, and no NO_COLOR).
    pub color: bool,
    /// The checkout a git source's file lies in: every path the file names must
    /// resolve inside it. `None` for a file of the user's own.
    pub confine: Option<PathBuf>,
    /// Assets a confined file names may come from private addresses
    /// (`watch --allow-private-assets`).
    pub private_assets: bool,
}

pub(crate) fn refused(file: &Path, items: Vec<Diagnostic>) -> ConvergeError {
    ConvergeError::PlanRefused(Diagnostics {
        file: file.display().to_string(),
        items,
    })
}

/// Reads and validates the file, then applies the rollback holds that still
/// apply (`berth rollback`), so every command sees the same active versions.
pub fn load(settings: &Settings, file: &Path) -> Result<Spec, ConvergeError> {
    let _timed = tracing::info_span!(target: "berth::timing", "load").entered();
    let text = source::read_spec(file)?;
    let spec =
        spec::parse(&file.display().to_string(), &text).map_err(ConvergeError::SpecInvalid)?;
    // Every record is read now: one that cannot be read refuses the command
    // before anything is planned or changed.
    state::check(&settings.state_dir, &spec.project)?;
    let holds = state::holds(&settings.state_dir, &spec.project)?;
    Ok(spec.with_holds(&holds).0)
}

/// Every `package:` path of the file names something that exists: a missing
/// one is said at its place in the file, by `validate` and before a plan
/// reads anything.
pub fn packages_exist(spec: &Spec, file: &Path) -> Result<(), ConvergeError> {
    let missing: Vec<crate::core::diag::Diagnostic> = spec
        .versions()
        .filter_map(|v| match &v.source {
            spec::Source::Package(p) => {
                let at = crate::build::package_path(file, p);
                (!at.exists()).then(|| {
                    crate::core::diag::Diagnostic::new("F007",
                        Some(v.pos),
                        format!("{}: package `{p}` does not exist (looked for {})", v.id(), at.display()),
                        "a package path is relative to the services file: a source directory or a .tar.gz (`berth package DIR` makes one)",
                    )
                })
            }
            spec::Source::Image(_) => None,
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(refused(file, missing))
    }
}

/// The project a command acts on, and the spec when the file is valid:
/// `--project NAME` needs no file at all; a file with errors elsewhere still
/// names its project (said on stderr), so `status`, `logs` and `destroy` work
/// while someone fixes it.
pub fn project_of(
    settings: &Settings,
    file: &Path,
    flag: Option<&str>,
) -> Result<(String, Option<Spec>), ConvergeError> {
    if let Some(name) = flag {
        return Ok((name.to_string(), None));
    }
    match load(settings, file) {
        Ok(spec) => Ok((spec.project.clone(), Some(spec))),
        Err(ConvergeError::SpecInvalid(d)) => {
            let text = source::read_spec(file)?;
            let Some(project) = spec::project_name(&text) else {
                return Err(ConvergeError::SpecInvalid(d));
            };
            crate::say::warn(&format!(
                "warning: {} has {} problem(s) (`berth validate` lists them); acting on project `{project}` from its `project:` line",
                file.display(),
                d.items.len()
            ));
            Ok((project, None))
        }
        Err(e) => Err(e),
    }
}

/// Before a converge acts: forget the holds that no longer apply (the
/// file's `active` changed since, or the held version is gone). Any change of
/// `active` ends a hold, whether or not the converge that follows succeeds:
/// a hold kept past a failed one would say what the file no longer says, and
/// come back when the file says it again.
pub fn end_stale_holds(settings: &Settings, spec: &Spec) -> Result<(), ConvergeError> {
    let dir = &settings.state_dir;
    let holds = state::holds(dir, &spec.project)?;
    let kept: BTreeMap<_, _> = holds
        .iter()
        .filter(|(name, h)| {
            spec.services
                .iter()
                .any(|s| &&s.name == name && s.file_active.as_ref() == Some(&h.file_active))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if kept.len() != holds.len() {
        state::write_holds(dir, &spec.project, &kept)?;
    }
    Ok(())
}

/// After a successful converge: remember each service's active version (for
/// `berth rollback`).
pub fn settle(settings: &Settings, spec: &Spec) {
    if let Err(e) = state::record_active(&settings.state_dir, spec) {
        tracing::warn!(error = %e, "cannot record the active versions");
    }
}

/// Takes the project's lock on a blocking thread (it may wait for another berth);
/// `on_wait` is told who holds it before the wait starts.
pub async fn lock(
    settings: &Settings,
    project: &str,
    command: &'static str,
    on_wait: impl FnOnce(&str) + Send + 'static,
) -> Result<ProjectLock, ConvergeError> {
    let (dir, project) = (settings.state_dir.clone(), project.to_string());
    Ok(
        tokio::task::spawn_blocking(move || lock::acquire(&dir, &project, command, on_wait))
            .await??,
    )
}

/// What one converge did.
#[derive(Debug)]
pub struct Converged {
    /// The plan that was executed, step for step.
    pub plan: Plan,
    /// What ran before it: what runs now when the plan was empty.
    pub before: plan::Observed,
}

impl Converged {
    /// What runs now without asking the engine again, when nothing was done.
    pub fn unchanged(&self) -> Option<&plan::Observed> {
        self.plan.is_empty().then_some(&self.before)
    }
}

impl Converged {
    pub fn failure(&self) -> Option<ConvergeError> {
        rollout_failure(&self.plan)
    }
}

/// The versions whose configuration is known to fail its health gate (no step
/// was planned for them), as an error.
pub fn rollout_failure(plan: &Plan) -> Option<ConvergeError> {
    (!plan.failed.is_empty()).then(|| ConvergeError::RolloutFail {
        failed: plan.failed.join("\n  "),
    })
}

/// Plans `spec` against what runs and executes exactly that plan, under the
/// project's lock (the caller holds it: `_held` is the proof). Records the active
/// versions when nothing failed. `shown`: the digest of the plan a user
/// approved; a different plan now is refused before any action.
pub async fn converge(
    ctx: &Context,
    _held: &ProjectLock,
    spec: &Spec,
    file: &Path,
    opts: plan::Options,
    revision: Option<&str>,
    shown: Option<&str>,
) -> Result<Converged, ConvergeError> {
    let (plan, before) = facts::plan_observed(ctx, spec, file, opts).await?;
    // "Apply" on a plan someone looked at carries out that plan or nothing.
    if let Some(shown) = shown.filter(|s| *s != plan.digest()) {
        return Err(ConvergeError::PlanChange {
            shown: shown.to_string(),
            now: plan.digest(),
        });
    }
    let values = facts::secret_values(ctx, spec, file)?;
    let secrets = saved::plan_secrets(&plan, file, &values)?;
    end_stale_holds(&ctx.settings, spec)?;
    if !plan.is_empty() {
        execute::execute(ctx, &plan, &secrets, revision).await?;
        images::prune(ctx, &spec.project).await;
    }
    let done = Converged { plan, before };
    if done.failure().is_none() {
        settle(&ctx.settings, spec);
    }
    Ok(done)
}
