//! `berth build [SERVICE[@VERSION]]`: the build steps of the plan, and nothing else.

use std::path::Path;

use crate::converge::{self, facts};

use super::{CommandError, Output};

pub async fn run(out: &Output, file: &Path, target: Option<&str>) -> Result<u8, CommandError> {
    let spec = converge::load(&out.settings, file)?;
    let ctx = out.connect_for(spec.engine).await?;
    let (_, cached) = facts::build_images(&ctx, &spec, file, target).await?;
    for tag in cached {
        println!("= cached    {tag}");
    }
    Ok(0)
}
