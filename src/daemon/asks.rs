//! What the daemon's API asks of it besides a reconcile: the plan of the
//! current file, a rollback (a hold, then a reconcile), and a build, each
//! under the project lock where it changes something.

use crate::converge::{self, facts, ConvergeError};
use crate::core::plan::Options;
use crate::core::report::Trigger;
use crate::shell::api::AskFail;

use super::Daemon;

impl Daemon {
    /// What the current file would change, as `berth plan` prints it.
    pub(super) async fn plan_text(&self) -> Result<String, AskFail> {
        let Some((_, file)) = self.current.clone() else {
            return Err(AskFail("no source yet".into()));
        };
        let spec = converge::load(&self.ctx.settings, &file).map_err(|e| AskFail(e.to_string()))?;
        let opts = Options {
            allow_empty: false,
            retry_failed: false,
        };
        let plan = facts::make_plan(&self.ctx, &spec, &file, opts)
            .await
            .map_err(|e| AskFail(e.to_string()))?;
        Ok(crate::core::render::plan_text(
            &plan,
            crate::core::render::Style { color: false },
        ))
    }

    /// A rollback's hold (as `berth rollback` takes it), then a reconcile; the
    /// hold is undone when that reconcile fails.
    pub(super) async fn rollback(
        &mut self,
        req: &converge::rollback::Request,
    ) -> Result<String, AskFail> {
        use converge::rollback::Decided;
        let Some((_, file)) = self.current.clone() else {
            return Err(AskFail("no source yet".into()));
        };
        let decided = async {
            let spec = converge::load(&self.ctx.settings, &file)?;
            let lock = self.lock(&spec.project).await?;
            converge::rollback::hold(&self.ctx, &lock, &spec, &file, req).await
        }
        .await
        .map_err(|e| AskFail(e.to_string()))?;
        let held = match decided {
            Decided::Already { service, target } => return Ok(Decided::already(&service, &target)),
            Decided::Held(h) => h,
        };
        tracing::info!(service = held.service, to = held.target, "rollback");
        match self.reconcile(Trigger::Api).await {
            Ok(_) => Ok(held.said(&file)),
            Err(e) => {
                held.undo(&self.ctx);
                self.refresh_report();
                self.report.publish_holds();
                Err(e)
            }
        }
    }

    /// `POST /build`: the images of the current file, under the project lock.
    pub(super) async fn build(&mut self) -> Result<String, AskFail> {
        let Some((_, file)) = self.current.clone() else {
            return Err(AskFail("no source yet".into()));
        };
        let outcome = async {
            let spec = converge::load(&self.ctx.settings, &file)?;
            let _lock = self.lock(&spec.project).await?;
            facts::build_images(&self.ctx, &spec, &file, None).await
        }
        .await;
        match outcome {
            Ok((built, cached)) => Ok(format!(
                "built {built} image(s); {} already there",
                cached.len()
            )),
            Err(ConvergeError::BuildTargetFind { .. }) => {
                Ok("nothing to build: no service is built from a package".into())
            }
            Err(e) => Err(AskFail(e.to_string())),
        }
    }
}
