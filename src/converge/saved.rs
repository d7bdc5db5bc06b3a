//! Saved plans (`plan --out`, `apply --plan`): read back, checked against what
//! the engine holds now, and the secret values they need checked against the
//! hashes they recorded, all before the first action.

use std::collections::BTreeMap;
use std::path::Path;

use crate::core::audit::audit;
use crate::core::diag::Diagnostic;
use crate::core::hash::secret_hash;
use crate::core::plan::{stale_changes, Action, Observed, Plan};

use crate::shell::asset;
use crate::shell::settings::Settings;

use super::{refused, ConvergeError};

pub fn read_plan(path: &Path) -> Result<Plan, ConvergeError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConvergeError::PlanRead {
        path: path.into(),
        why: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ConvergeError::PlanRead {
        path: path.into(),
        why: format!("not a berth plan ({e})"),
    })
}

/// Refuses a saved plan when the engine no longer looks as it did, naming what changed.
pub fn check_fresh(path: &Path, plan: &Plan, observed: &Observed) -> Result<(), ConvergeError> {
    if observed.fingerprint(&plan.project) == plan.fingerprint {
        return Ok(());
    }
    let changes = stale_changes(&plan.observed, &observed.summary(&plan.project));
    Err(ConvergeError::PlanStale {
        path: path.into(),
        changes: changes
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// Refuses a saved plan whose steps reach beyond what its project owns now, or
/// carry values berth never writes (see [`audit`]).
pub fn check_owned(
    path: &Path,
    plan: &Plan,
    observed: &Observed,
    settings: &Settings,
) -> Result<(), ConvergeError> {
    let assets = asset::cache_dir(&settings.state_dir);
    let problems = audit(plan, observed, &assets.display().to_string());
    match problems.is_empty() {
        true => Ok(()),
        false => Err(refused(path, problems)),
    }
}

/// Secret values for every container the plan creates, from the environment berth
/// started with, checked against the hashes the plan recorded.
pub fn plan_secrets(
    plan: &Plan,
    origin: &Path,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, ConvergeError> {
    let mut all = BTreeMap::new();
    let mut problems = Vec::new();
    for step in &plan.steps {
        let (Action::CreateContainer { container } | Action::ReplaceContainer { container, .. }) =
            &step.action
        else {
            continue;
        };
        let mut values = BTreeMap::new();
        for (name, var) in &container.secret_sources {
            let id = format!("{}@{}", container.service, container.version);
            let origin = crate::core::spec::secret_origin(var);
            match env.get(var) {
                None => problems.push(Diagnostic::new(
                    "F008",
                    None,
                    format!("{id}: secret `{name}` reads {origin}, which is not set"),
                    match var.strip_prefix(crate::core::spec::ENCRYPTED_KEY) {
                        Some(n) => {
                            format!("add `{n}` to the secrets file, encrypted to berth's age key")
                        }
                        None => format!("export {var}=... in the environment that runs berth"),
                    },
                )),
                Some(v)
                    if Some(&secret_hash(&plan.project, name, v))
                        != container.config.secrets.get(name) =>
                {
                    problems.push(Diagnostic::new(
                        "F009",
                        None,
                        format!(
                            "{id}: secret `{name}` (from {origin}) changed since the plan was made"
                        ),
                        "make the plan again with the current value",
                    ))
                }
                Some(v) => {
                    values.insert(name.clone(), v.clone());
                }
            }
        }
        all.insert(container.name.clone(), values);
    }
    if problems.is_empty() {
        Ok(all)
    } else {
        Err(refused(origin, problems))
    }
}

/// `berth apply PLAN`: checks the saved plan against what runs now (fresh,
/// acting only on what the project owns), carries it out, and records the
/// active versions its routing step leaves, as a converge of the file does.
/// The caller holds the project's lock (`_held`).
pub async fn apply(
    ctx: &super::Context,
    _held: &crate::shell::lock::ProjectLock,
    path: &Path,
    plan: &Plan,
) -> Result<(), ConvergeError> {
    let observed = ctx.engine.observe(&plan.project).await?;
    check_fresh(path, plan, &observed)?;
    check_owned(path, plan, &observed, &ctx.settings)?;
    // The saved plan's encrypted secrets come from the file it names, opened
    // now as when it was made; every value is checked against its hash.
    let mut values = (*ctx.settings.env).clone();
    if let Some(sealed) = &plan.secrets_file {
        values.extend(crate::shell::sealed::open(
            Path::new(sealed),
            ctx.settings.age_key_file.as_deref(),
        )?);
    }
    let secrets = plan_secrets(plan, path, &values)?;
    if plan.is_empty() {
        return Ok(());
    }
    super::execute::execute(ctx, plan, &secrets, None).await?;
    super::images::prune(ctx, &plan.project).await;
    if super::rollout_failure(plan).is_none() {
        let actives = plan.steps.iter().find_map(|s| match &s.action {
            crate::core::plan::Action::Route { active, .. } => Some(active.clone()),
            _ => None,
        });
        if let Some(active) = actives {
            let state = &ctx.settings.state_dir;
            if let Err(e) = crate::shell::state::record_actives(state, &plan.project, active) {
                tracing::warn!(error = %e, "cannot record the active versions");
            }
        }
    }
    Ok(())
}
