//! `berth logs SERVICE[@VERSION]`: a container's logs, optionally followed.

use crate::cli::LogsArgs;

use futures_util::StreamExt;

use crate::converge::{self, observe};

use super::{CommandError, Output};

pub async fn run(out: &Output, args: LogsArgs) -> Result<u8, CommandError> {
    let (file, project) = (args.file.file.as_path(), args.project.project.as_deref());
    let (target, follow, tail) = (args.target.as_str(), args.follow, args.tail);
    let (project, spec) = converge::project_of(&out.settings, file, project)?;
    let ctx = out
        .connect_for(spec.as_ref().map(|s| s.engine).unwrap_or_default())
        .await?;
    let c = observe::find_target(ctx.engine.as_ref(), &project, spec.as_ref(), target).await?;
    let mut stream = ctx.engine.logs(&c.id, follow, tail);
    while let Some(chunk) = stream.next().await {
        print!("{}", chunk?);
    }
    Ok(0)
}
