//! What the daemon's API asks of it besides a reconcile: the plan of the
//! current file, a rollback (a hold, then a reconcile), a restart of one
//! version, and a build, each under the project lock where it changes something.

use crate::converge::{self, facts, ConvergeError};
use crate::core::plan::Options;
use crate::core::report::Trigger;
use crate::core::timeline;
use crate::serve::api::AskFail;

use super::Daemon;

impl Daemon {
    /// What the current file would change, as JSON (`core::steps::Plan`):
    /// the plan an "Apply" from the dashboard (a reconcile asked for, which
    /// retries a configuration that failed its gate) would carry out.
    pub(super) async fn plan_json(&self) -> Result<String, AskFail> {
        let Some((_, file)) = self.current.clone() else {
            return Err(AskFail("no source yet".into()));
        };
        let spec = converge::load(&self.ctx.settings, &file).map_err(|e| AskFail(e.to_string()))?;
        let opts = Options {
            allow_empty: false,
            retry_failed: Trigger::Api.retries_failed(),
        };
        let plan = facts::make_plan(&self.ctx, &spec, &file, opts)
            .await
            .map_err(|e| AskFail(e.to_string()))?;
        serde_json::to_string(&plan).map_err(|e| AskFail(e.to_string()))
    }

    /// A restart of one version asked for by `who`, then a look, so
    /// `/status` shows it and its timeline says so.
    pub(super) async fn restart(&mut self, target: &str, who: &str) -> Result<String, AskFail> {
        let Some((_, file)) = self.current.clone() else {
            return Err(AskFail("no source yet".into()));
        };
        let done = async {
            let spec = converge::load(&self.ctx.settings, &file)?;
            let lock = self.lock(&spec.project).await?;
            let plan =
                converge::restart::restart(&self.ctx, &lock, &spec.project, target, who).await?;
            Ok::<_, ConvergeError>((spec.project, plan))
        }
        .await
        .map_err(|e| AskFail(e.to_string()))?;
        let (project, plan) = done;
        tracing::info!(target, who, "restart");
        // Its own events are not drift.
        self.own_until = super::batch::now_nanos();
        self.known.forget();
        let events = timeline::of_plan(&plan, super::unix_now(), false, None);
        timeline::push(&mut self.report.events, events);
        if let Ok(rows) = self.look(&project, None).await {
            self.report.publish_rows_of(rows);
            self.report.publish_events();
        }
        Ok(format!("{target} restarted"))
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
        self.untold = true;
        let reconciled = self.reconcile(Trigger::Api).await;
        self.untold = false;
        match reconciled {
            Ok(_) => {
                let event = timeline::of_rollback(
                    &held.service,
                    (held.target != held.file_active).then_some(held.target.as_str()),
                    &held.file_active,
                    super::unix_now(),
                );
                timeline::push(&mut self.report.events, vec![event]);
                self.report.publish_events();
                if held.target != held.file_active {
                    self.tell_rolled_back(&held.service, &held.target, &held.file_active);
                }
                Ok(held.said(&file))
            }
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
            Err(ConvergeError::BuildTargetNotFound { .. }) => {
                Ok("nothing to build: no service is built from a package".into())
            }
            Err(e) => Err(AskFail(e.to_string())),
        }
    }
}
