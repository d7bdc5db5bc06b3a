//! One reconcile of the daemon: converge under the project lock, then what
//! it did goes to the log, `/status` (the rows, the timeline, the touched
//! services) and `/metrics`; and, with `--manual`, the look that stands in
//! for one until someone asks.

use std::path::Path;
use std::time::Instant;

use crate::converge::{self, Context, ConvergeError};
use crate::core::plan::Options;
use crate::core::render::StatusRow;
use crate::core::report::Trigger;
use crate::core::timeline;
use crate::serve::api::AskFail;

use super::{batch, unix_now, Daemon, DaemonError, WatchSource};

impl Daemon {
    /// One reconcile; the outcome goes to the log, `/status` and `/metrics`.
    pub(super) async fn reconcile(&mut self, trigger: Trigger) -> Result<String, AskFail> {
        self.reconcile_shown(trigger, None).await
    }

    /// A reconcile that carries out only the plan with digest `shown`, when
    /// given (the dashboard's "Apply").
    pub(super) async fn reconcile_shown(
        &mut self,
        trigger: Trigger,
        shown: Option<&str>,
    ) -> Result<String, AskFail> {
        let Some((revision, file)) = self.current.clone() else {
            return Err(AskFail("no source yet".into()));
        };
        let started = Instant::now();
        tracing::debug!(trigger = trigger.word(), "reconcile started");
        let outcome = self
            .converge(&file, revision.as_deref(), trigger.retries_failed(), shown)
            .await;
        let at = unix_now();
        let acted = !matches!(&outcome, Ok((p, _, _)) if p.steps.is_empty());
        self.own_until = batch::own_until_after(self.own_until, acted, batch::now_nanos());
        let secs = started.elapsed().as_secs_f64();
        let counters = &mut self.report.counters;
        counters.reconciles += 1;
        counters.duration_sum += secs;
        counters.last_duration = secs;
        match outcome {
            Ok((plan, rows, changed)) => {
                let steps = plan.steps.len();
                self.logged_error = None;
                // A new commit is a change of source even when the file in it
                // is the same (a code-only commit rebuilds a package).
                let changed = changed || revision != self.converged_revision;
                self.converged_revision = revision.clone();
                self.report.revision = revision.clone();
                // A change of source is reported as such, unless asked for
                // (a rollback changes the spec through its hold).
                let trigger = match (&self.me.source, changed) {
                    (_, false) => trigger,
                    _ if trigger == Trigger::Api => trigger,
                    (WatchSource::File(_), true) => Trigger::File,
                    (WatchSource::Git { .. }, true) => Trigger::Git,
                };
                if steps > 0 && !changed {
                    self.report.counters.drift_corrections += steps as u64;
                }
                let events = timeline::of_plan(&plan, at, !changed, revision.as_deref());
                timeline::push(&mut self.report.events, events);
                self.report.touched = timeline::touched(&plan);
                self.report.subject = self.fetched_subject.clone().filter(|_| revision.is_some());
                self.report.counters.managed = rows.len();
                self.report.rollout_error = None;
                tracing::info!(
                    trigger = trigger.word(),
                    steps,
                    seconds = secs,
                    revision = revision.as_deref().unwrap_or("-"),
                    "converged"
                );
                self.refresh_report();
                self.recheck_if_starting(&rows, true);
                self.report.publish(Some(rows), trigger, None);
                self.tell_converged(&plan, trigger, changed);
                Ok(format!("converged: {steps} steps"))
            }
            Err(e) => {
                let text = self.in_user_terms(&e.to_string(), &file, revision.as_deref());
                // A step that failed (a health gate: with its answer and log lines)
                // is kept until a reconcile succeeds; the reconciles its own events
                // cause only say that the configuration is known to fail.
                if let DaemonError::Converge(ConvergeError::ApplyFail { details, .. }) = &e {
                    self.report.rollout_error = Some(text.clone());
                    let project = self.project.clone().unwrap_or_default();
                    let events = timeline::of_failures(&project, details, at, revision.as_deref());
                    self.report.touched = events.iter().map(|e| e.service.clone()).collect();
                    self.report.touched.dedup();
                    timeline::push(&mut self.report.events, events);
                }
                if self.logged_error.as_deref() == Some(text.as_str()) {
                    tracing::debug!(trigger = trigger.word(), error = %text, "reconcile failed again, the same way");
                } else {
                    tracing::error!(trigger = trigger.word(), error = %text, "reconcile failed; what runs keeps running");
                    self.logged_error = Some(text.clone());
                    self.tell_failed(&e, &text, trigger);
                }
                self.report.counters.errors += 1;
                // What runs now (a failed rollout's container kept aside, the old
                // one still serving), so /status shows the failure where it is;
                // not asked of an engine that is away (it would wait its
                // timeout once more for the same answer).
                let away = matches!(&e, DaemonError::Converge(ConvergeError::Engine(e)) if e.engine_away());
                let rows = match self.project.clone() {
                    Some(p) if !away => self.look(&p, None).await.ok(),
                    _ => None,
                };
                self.refresh_report();
                if let Some(rows) = &rows {
                    self.recheck_if_starting(rows, true);
                }
                self.report.publish(rows, trigger, Some(&text));
                Err(AskFail(text))
            }
        }
    }

    /// Converges under the project lock; returns the steps taken, the status rows
    /// after, and whether the spec changed since the last converge.
    async fn converge(
        &mut self,
        file: &Path,
        revision: Option<&str>,
        retry_failed: bool,
        shown: Option<&str>,
    ) -> Result<(crate::core::plan::Plan, Vec<StatusRow>, bool), DaemonError> {
        let spec = converge::load(&self.ctx.settings, file)?;
        self.claim(&spec)?;
        self.report.actives = crate::core::report::active_of(&spec);
        // Steps taken for a spec that did not change undo drift; steps for a new
        // spec are the change itself, whatever event woke the loop first.
        let changed = self.shared_spec.read().expect("no panics hold it").as_ref() != Some(&spec);
        self.choose_engine(&spec).await?;
        self.adopt(&spec.project)?;
        let held = self.lock(&spec.project).await?;
        let opts = Options {
            allow_empty: false,
            retry_failed,
        };
        // A repository names paths for its own checkout only.
        let ctx = match &self.me.source {
            WatchSource::Git { path, .. } => Context {
                confine: file
                    .ancestors()
                    .nth(Path::new(path).components().count())
                    .map(Path::to_path_buf),
                ..self.ctx.clone()
            },
            WatchSource::File(_) => self.ctx.clone(),
        };
        let done = converge::converge(&ctx, &held, &spec, file, opts, revision, shown).await?;
        if !done.plan.steps.is_empty() {
            // Its events arrive after this look; what it changed is not known.
            self.known.forget();
        }
        // A converge that did nothing observed what runs now.
        let rows = self.look(&spec.project, done.unchanged()).await?;
        // One copy, which the API reads too (a spec of 1,000 services is MBs).
        *self.shared_spec.write().expect("no panics hold it") = Some(spec);
        if let Some(e) = done.failure() {
            return Err(e.into());
        }
        Ok((done.plan, rows, changed))
    }

    /// What runs now, without converging (`watch --manual` between asks):
    /// the file read for its project and actives, the engine looked at once.
    pub(super) async fn look_only(&mut self) {
        let Some((revision, file)) = self.current.clone() else {
            return;
        };
        let rows = match self.load_and_adopt(&file).await {
            Ok(project) => self.look(&project, None).await.map_err(DaemonError::from),
            Err(e) => Err(e),
        };
        match rows {
            Ok(rows) => {
                self.report.source_error = None;
                self.refresh_report();
                self.recheck_if_starting(&rows, true);
                self.report.publish_look(rows);
            }
            Err(e) => {
                let text = self.in_user_terms(&e.to_string(), &file, revision.as_deref());
                tracing::warn!(error = %text, "cannot look at what runs");
                self.report.record_source_error(&text);
            }
        }
    }

    async fn load_and_adopt(&mut self, file: &Path) -> Result<String, DaemonError> {
        let spec = converge::load(&self.ctx.settings, file)?;
        self.claim(&spec)?;
        self.report.actives = crate::core::report::active_of(&spec);
        self.choose_engine(&spec).await?;
        self.adopt(&spec.project)?;
        Ok(spec.project)
    }
}
