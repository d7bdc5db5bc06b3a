//! `berth logs SERVICE[@VERSION]`: a container's logs, optionally followed.

use std::path::Path;

use futures_util::StreamExt;

use crate::converge::{self, observe};

use super::{CommandError, Output};

pub async fn run(
    out: &Output,
    file: &Path,
    project: Option<&str>,
    target: &str,
    follow: bool,
    tail: Option<usize>,
) -> Result<u8, CommandError> {
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
