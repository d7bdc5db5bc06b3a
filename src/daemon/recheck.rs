//! Looking at health again while a container reads `starting`. A start the
//! daemon makes (a stopped container put back) or the engine makes (a restart
//! policy) passes no health gate, so the look right after it comes before the
//! service answers; without another look it would read `starting` until the
//! next resync (`--interval`, an hour for some). Only those containers are
//! looked at again: at 1,000 services a look at every one takes seconds.

use std::time::Duration;

use crate::core::health::Health;
use crate::core::render::StatusRow;

use super::Event;

/// The wait before the first look again; doubled after each look that still
/// finds a container starting, up to [`LAST`].
const FIRST: Duration = Duration::from_secs(1);
const LAST: Duration = Duration::from_secs(8);

/// When the next look is due. One timer at a time: a look costs a probe of
/// every container, whatever the number that start.
#[derive(Debug, Default)]
pub struct Recheck {
    /// A timer runs; its [`Event::HealthDue`] is on its way.
    pending: bool,
    /// The last wait, while containers keep reading starting.
    last: Option<Duration>,
}

impl Recheck {
    /// After rows were published (`fresh`: by a reconcile, which starts the
    /// backoff over): how long to wait before looking again, if a look is due
    /// and no timer already runs.
    pub fn due(&mut self, rows: &[StatusRow], fresh: bool) -> Option<Duration> {
        if !rows.iter().any(|r| r.health == Health::Starting) {
            self.last = None;
            return None;
        }
        if fresh {
            self.last = None;
        }
        if self.pending {
            return None;
        }
        let wait = self.last.map_or(FIRST, |d| (d * 2).min(LAST));
        self.last = Some(wait);
        self.pending = true;
        Some(wait)
    }

    /// The timer's event arrived.
    pub fn fired(&mut self) {
        self.pending = false;
    }
}

impl super::Daemon {
    /// Starts the timer for the next look, if the rows just published need one.
    pub(super) fn recheck_if_starting(&mut self, rows: &[StatusRow], fresh: bool) {
        if let Some(wait) = self.health_due.due(rows, fresh) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = tx.send(Event::HealthDue).await;
            });
        }
    }

    /// Looks again at the containers that read starting (one observation, a
    /// probe each) and puts their rows in place, converging nothing: the
    /// others' rows and the reconcile history are left as they are.
    pub(super) async fn look_again(&mut self) {
        let Some(project) = self.project.clone() else {
            return;
        };
        let starting: std::collections::HashSet<String> = {
            let doc = self.report.status.read().expect("no panics hold it");
            doc.services
                .iter()
                .filter(|r| r.health == Health::Starting)
                .map(|r| r.container.clone())
                .collect()
        };
        if starting.is_empty() {
            return;
        }
        let mut observed = match self.ctx.engine.observe(&project).await {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(error = %e, "looking at health again failed");
                return;
            }
        };
        observed.containers.retain(|c| starting.contains(&c.name));
        let rows = crate::converge::observe::rows_of(
            self.ctx.engine.as_ref(),
            &project,
            &observed,
            false,
            Some(&self.known),
        )
        .await;
        self.recheck_if_starting(&rows, false);
        self.report.publish_rows_of(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(health: Health) -> StatusRow {
        StatusRow {
            service: "web".into(),
            version: "1.0.0".into(),
            active: true,
            container: "p-web-1.0.0".into(),
            state: "running".into(),
            health,
            health_reason: None,
            restarts: 0,
            url: None,
            scope: "global".into(),
            revision: None,
            run: None,
            cpu_percent: None,
            memory_bytes: None,
            memory_limit_bytes: None,
            gpu: None,
            assets: Vec::new(),
            up_secs: Some(0),
            tasks: None,
            held_against: None,
        }
    }

    /// Feeds `(health, fresh, fired first)` in order; expects each answer in seconds.
    fn check(steps: &[(Health, bool, bool)], expect: &[Option<u64>]) {
        let mut r = Recheck::default();
        let got: Vec<Option<u64>> = steps
            .iter()
            .map(|&(health, fresh, fired)| {
                if fired {
                    r.fired();
                }
                r.due(&[row(health)], fresh).map(|d| d.as_secs())
            })
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn a_starting_container_is_looked_at_again_after_one_two_four_then_every_eight_seconds() {
        use Health::Starting as S;
        check(
            &[
                (S, true, false),
                (S, false, true),
                (S, false, true),
                (S, false, true),
                (S, false, true),
            ],
            &[Some(1), Some(2), Some(4), Some(8), Some(8)],
        );
    }

    #[test]
    fn one_timer_runs_at_a_time_and_a_reconcile_starts_the_backoff_over() {
        use Health::Starting as S;
        check(
            &[
                (S, true, false),
                (S, false, true),
                (S, true, false),
                (S, false, true),
            ],
            &[Some(1), Some(2), None, Some(1)],
        );
    }

    #[test]
    fn no_look_is_due_once_nothing_reads_starting() {
        check(
            &[
                (Health::Starting, true, false),
                (Health::Healthy, false, true),
                (Health::Unhealthy, true, false),
                (Health::Starting, false, false),
            ],
            &[Some(1), None, None, Some(1)],
        );
    }
}
