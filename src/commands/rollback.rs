//! `berth rollback SERVICE [--to VERSION]`: make the version that was active
//! before (or the one named) active again, when it is still declared and runs
//! healthy. It holds until the file's `active` for that service changes. The
//! decision and the hold are [`converge::rollback`]'s, shared with the dashboard.

use crate::cli::RollbackArgs;

use crate::converge;
use crate::converge::rollback::{self, Decided, Request};
use crate::core::plan::Options;

use super::{apply, CommandError, Output};

pub async fn run(out: &Output, args: RollbackArgs) -> Result<u8, CommandError> {
    let file = args.file.file.as_path();
    let req = Request {
        service: args.service,
        to: args.to,
        release: args.release,
    };
    let spec = converge::load(&out.settings, file)?;
    let ctx = out.connect_for(spec.engine).await?;
    let held = apply::lock(&ctx, &spec.project, "rollback").await?;
    let hold = match rollback::hold(&ctx, &held, &spec, file, &req).await? {
        Decided::Already { service, target } => {
            println!("{}", Decided::already(&service, &target));
            return Ok(0);
        }
        Decided::Held(hold) => hold,
    };
    let result = async {
        let spec = converge::load(&out.settings, file)?;
        let opts = Options {
            allow_empty: false,
            retry_failed: true,
        };
        let done = converge::converge(&ctx, &held, &spec, file, opts, None, None).await?;
        apply::report(&ctx, &done.plan, done.unchanged()).await
    }
    .await;
    if let Err(e) = result {
        hold.undo(&ctx);
        return Err(e);
    }
    println!("{}", hold.said(file));
    Ok(0)
}
