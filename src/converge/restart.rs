//! A restart someone asked for: planned by the core against what runs (one
//! step, or a refusal that changes nothing) and carried out by the same
//! executor as every plan, under the project's lock.

use super::{execute, Context, ConvergeError};
use crate::core::plan::Plan;
use crate::core::restart::RestartRefusal;
use crate::shell::lock::ProjectLock;

/// Stops and starts `service@version` of `project`; the plan it carried out.
pub async fn restart(
    ctx: &Context,
    _held: &ProjectLock,
    project: &str,
    target: &str,
    who: &str,
) -> Result<Plan, ConvergeError> {
    let Some((service, version)) = target.split_once('@') else {
        return Err(RestartRefusal::VersionMissing {
            target: target.into(),
        }
        .into());
    };
    let observed = ctx.engine.observe(project).await?;
    let plan = crate::core::restart::restart(project, &observed, service, version, who)?;
    execute::execute(ctx, &plan, &Default::default(), None).await?;
    Ok(plan)
}
