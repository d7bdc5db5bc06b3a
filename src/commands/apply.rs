//! `berth apply`: converge the engine to the file (or to a saved plan), printing
//! each action as it happens, then where each service answers.

use crate::cli::ApplyArgs;

use crate::converge::{self, saved, Context};
use crate::core::plan::{Options, Plan};
use crate::core::render::hold_notes;

use super::{CommandError, Output};

pub async fn run(out: &Output, args: ApplyArgs) -> Result<u8, CommandError> {
    let (file, saved_plan) = (args.file.file.as_path(), args.plan.as_deref());
    let allow_empty = args.allow_empty;
    if let Some(path) = saved_plan {
        let plan = saved::read_plan(path)?;
        let ctx = out.connect_for(plan.engine).await?;
        let held = lock(&ctx, &plan.project, "apply").await?;
        saved::apply(&ctx, &held, path, &plan).await?;
        return report(&ctx, &plan, None).await;
    }
    let spec = converge::load(&out.settings, file)?;
    let ctx = out.connect_for(spec.engine).await?;
    // Planned under the lock, so a concurrent apply cannot make it stale.
    let held = lock(&ctx, &spec.project, "apply").await?;
    let opts = Options {
        allow_empty,
        retry_failed: true,
    };
    let done = converge::converge(&ctx, &held, &spec, file, opts, None, None).await?;
    let code = report(&ctx, &done.plan, done.unchanged()).await?;
    for n in hold_notes(&spec) {
        println!("{n}");
    }
    Ok(code)
}

/// The project's lock, saying on stderr who holds it while waiting.
pub async fn lock(
    ctx: &Context,
    project: &str,
    command: &'static str,
) -> Result<crate::shell::lock::ProjectLock, CommandError> {
    let p = project.to_string();
    Ok(
        converge::lock(&ctx.settings, project, command, move |holder| {
            crate::say::info(&format!(
                "waiting for the lock on project `{p}`, held by {holder}"
            ));
        })
        .await?,
    )
}

/// After an executed plan: the counts, the failed rollouts as an error, and where
/// each service answers (one more list call, read-only, unless nothing was done).
pub async fn report(
    ctx: &Context,
    plan: &Plan,
    unchanged: Option<&crate::core::plan::Observed>,
) -> Result<u8, CommandError> {
    if plan.is_empty() {
        println!(
            "No changes: the engine matches the file ({} unchanged).",
            plan.unchanged.len()
        );
    } else {
        println!("{}", crate::core::render::summary_line(plan, true));
    }
    if let Some(e) = converge::rollout_failure(plan) {
        return Err(e.into());
    }
    // Nothing done: what the plan observed still runs.
    let observed = match unchanged {
        Some(o) => std::borrow::Cow::Borrowed(o),
        None => std::borrow::Cow::Owned(ctx.engine.observe(&plan.project).await?),
    };
    for c in observed
        .containers
        .iter()
        .filter(|c| c.owned_by(&plan.project))
    {
        println!(
            "  {:<32} {}",
            c.subject(&plan.project),
            converge::observe::url(c).unwrap_or_else(|| format!("({})", c.state))
        );
    }
    Ok(0)
}
