//! A burst of events taken together: one reconcile, with one typed trigger.

use std::path::PathBuf;

use crate::core::report::Trigger;
use crate::serve::api::ReconcileReply;
use crate::shell::engine::ContainerEvent;

use super::Event;

/// What a burst of events asks of the loop.
#[derive(Debug, Default)]
pub struct Batch {
    /// Why the reconcile runs (the strongest of the events).
    pub trigger: Trigger,
    /// The newest commit fetched in the burst, with its file.
    pub fetched: Option<(String, PathBuf)>,
    /// That commit's subject line.
    pub subject: Option<String>,
    pub fetch_errors: Vec<String>,
    pub engine_events: Vec<ContainerEvent>,
    /// `POST /reconcile` requests, answered after the reconcile.
    pub replies: Vec<ReconcileReply>,
    /// `POST /build` requests, answered after the build.
    pub builds: Vec<ReconcileReply>,
    /// The dashboard's plan requests, answered before anything else.
    pub plans: Vec<ReconcileReply>,
    /// "Apply" of a shown plan (its digest), each its own reconcile.
    pub applies: Vec<(String, ReconcileReply)>,
    /// Restarts of a version (target, who asked), each under the lock.
    pub restarts: Vec<(String, String, ReconcileReply)>,
    /// Rollbacks, each its own hold and reconcile.
    pub rollbacks: Vec<(crate::converge::rollback::Request, ReconcileReply)>,
    pub shutdown: bool,
    /// Whether anything in the burst asks for a reconcile: engine events the
    /// daemon's own last converge caused do not.
    pub wakes: bool,
    /// Whether the engine changed a container of the project (the daemon's own
    /// doing or not): what was known of its containers may be out of date.
    pub engine_changed: bool,
    /// A container read starting at the last look: look again (a reconcile,
    /// if the burst asks for one, looks anyway).
    pub health_due: bool,
}

impl Batch {
    /// `own_until`: when the daemon's last converge ended (nanoseconds since the
    /// Unix epoch); engine events from before then are its own renames, stops
    /// and removals, arriving late, and already seen by that converge.
    pub fn of(events: Vec<Event>, own_until: i64) -> Batch {
        let mut b = Batch::default();
        for e in events {
            let own =
                matches!(&e, Event::EngineChanged(c) if c.at_nanos != 0 && c.at_nanos <= own_until);
            // Asking what would change changes nothing; a rollback reconciles
            // on its own; a look at health is only a look.
            b.wakes |= !own
                && !matches!(
                    e,
                    Event::PlanRequested(_)
                        | Event::RollbackRequested { .. }
                        | Event::ApplyRequested { .. }
                        | Event::RestartRequested { .. }
                        | Event::HealthDue
                );
            b.engine_changed |= matches!(e, Event::EngineChanged(_));
            match e {
                Event::EngineChanged(_) if own => {}
                Event::FileChanged => b.trigger = b.trigger.strongest(Trigger::File),
                Event::GitFetched {
                    revision,
                    file,
                    subject,
                } => {
                    b.fetched = Some((revision, file));
                    b.subject = subject;
                    b.trigger = b.trigger.strongest(Trigger::Git);
                }
                Event::GitFailed(e) => b.fetch_errors.push(e),
                Event::EngineChanged(e) => {
                    b.engine_events.push(e);
                    b.trigger = b.trigger.strongest(Trigger::Engine);
                }
                Event::Tick => {}
                Event::Requested(reply) => {
                    b.replies.push(reply);
                    b.trigger = b.trigger.strongest(Trigger::Api);
                }
                Event::BuildRequested(reply) => {
                    b.builds.push(reply);
                    b.trigger = b.trigger.strongest(Trigger::Api);
                }
                Event::PlanRequested(reply) => b.plans.push(reply),
                Event::RollbackRequested { request, reply } => b.rollbacks.push((request, reply)),
                Event::ApplyRequested { digest, reply } => b.applies.push((digest, reply)),
                Event::RestartRequested { target, who, reply } => {
                    b.restarts.push((target, who, reply))
                }
                Event::HealthDue => b.health_due = true,
                Event::Shutdown => b.shutdown = true,
            }
        }
        b
    }
}

/// The mark of the daemon's own events after a reconcile: one that may have
/// acted (it took steps, or failed part way) moves it to `now`. One that took
/// no step caused no event, but leaves the mark where it was: the events of
/// the last one that acted may still be on their way, and are not drift.
pub fn own_until_after(previous: i64, acted: bool, now: i64) -> i64 {
    if acted {
        now
    } else {
        previous
    }
}

/// Now, in nanoseconds since the Unix epoch (the engine's event clock).
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::engine::ContainerEvent;

    fn died(at_nanos: i64) -> Event {
        Event::EngineChanged(ContainerEvent {
            action: "die".into(),
            container: "p-web-1.0.0".into(),
            at_nanos,
        })
    }

    /// Runs reconciles that acted or not (ending at 100, 200, ...), then one
    /// burst of events; expects whether it wakes the loop.
    fn check(reconciles: &[bool], events: Vec<Event>, wakes: bool) {
        let mut own_until = 0;
        for (i, &acted) in reconciles.iter().enumerate() {
            own_until = own_until_after(own_until, acted, 100 * (i as i64 + 1));
        }
        assert_eq!(Batch::of(events, own_until).wakes, wakes);
    }

    #[test]
    fn a_late_event_of_a_converge_that_acted_is_its_own_after_a_reconcile_that_did_nothing() {
        check(&[true, false], vec![died(50)], false);
    }

    #[test]
    fn an_event_after_the_last_converge_that_acted_is_drift() {
        check(&[true, false], vec![died(150)], true);
        check(&[true], vec![died(150)], true);
    }

    #[test]
    fn an_event_without_a_time_is_never_taken_for_the_daemons_own() {
        check(&[true], vec![died(0)], true);
    }

    #[test]
    fn a_look_at_health_alone_does_not_wake_the_loop() {
        check(&[], vec![Event::HealthDue], false);
        let b = Batch::of(vec![Event::HealthDue, died(10)], 0);
        assert!(b.wakes && b.health_due);
    }
}
