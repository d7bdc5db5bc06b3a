//! `berth build [SERVICE[@VERSION]]`: the build steps of the plan, and nothing else.

use crate::cli::BuildArgs;

use crate::converge::{self, facts};

use super::{CommandError, Output};

pub async fn run(out: &Output, args: BuildArgs) -> Result<u8, CommandError> {
    let (file, target) = (args.file.file.as_path(), args.target.as_deref());
    let spec = converge::load(&out.settings, file)?;
    let ctx = out.connect_for(spec.engine).await?;
    let (_, cached) = facts::build_images(&ctx, &spec, file, target).await?;
    for tag in cached {
        println!("= cached    {tag}");
    }
    Ok(0)
}
