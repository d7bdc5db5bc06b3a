//! `berth baseimages [RUNTIME...] [--all]`: build the local base images if missing or stale.

use crate::build::baseimage;
use crate::cli::BaseimagesArgs;
use crate::core::spec::Runtime;

use super::{CommandError, Output};

pub async fn run(out: &Output, args: BaseimagesArgs) -> Result<u8, CommandError> {
    let (runtimes, all) = (&args.runtimes, args.all);
    let mut wanted = Vec::new();
    for name in runtimes {
        match Runtime::ALL.iter().find(|r| r.name() == name) {
            Some(r) => wanted.push(*r),
            None => return Err(CommandError::RuntimeUnknown { name: name.clone() }),
        }
    }
    if all {
        wanted = Runtime::ALL
            .into_iter()
            .filter(|r| {
                !matches!(
                    baseimage::base_source(*r),
                    baseimage::BaseSource::Provided { .. }
                )
            })
            .collect();
    }
    let ctx = out.connect_host().await?;
    for line in
        baseimage::ensure_all(ctx.engine.as_ref(), &out.settings, out.verbose, &wanted).await?
    {
        println!("{line}");
    }
    Ok(0)
}
