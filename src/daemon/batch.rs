//! A burst of events taken together: one reconcile, with one typed trigger.

use std::path::PathBuf;

use crate::core::report::Trigger;
use crate::shell::api::ReconcileReply;
use crate::shell::engine::ContainerEvent;

use super::Event;

/// What a burst of events asks of the loop.
#[derive(Debug, Default)]
pub struct Batch {
    /// Why the reconcile runs (the strongest of the events).
    pub trigger: Trigger,
    /// The newest commit fetched in the burst, with its file.
    pub fetched: Option<(String, PathBuf)>,
    pub fetch_errors: Vec<String>,
    pub engine_events: Vec<ContainerEvent>,
    /// `POST /reconcile` requests, answered after the reconcile.
    pub replies: Vec<ReconcileReply>,
    /// `POST /build` requests, answered after the build.
    pub builds: Vec<ReconcileReply>,
    /// The dashboard's plan requests, answered before anything else.
    pub plans: Vec<ReconcileReply>,
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
                    Event::PlanRequested(_) | Event::RollbackRequested { .. } | Event::HealthDue
                );
            b.engine_changed |= matches!(e, Event::EngineChanged(_));
            match e {
                Event::EngineChanged(_) if own => {}
                Event::FileChanged => b.trigger = b.trigger.strongest(Trigger::File),
                Event::GitFetched { revision, file } => {
                    b.fetched = Some((revision, file));
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
                Event::HealthDue => b.health_due = true,
                Event::Shutdown => b.shutdown = true,
            }
        }
        b
    }
}

/// Now, in nanoseconds since the Unix epoch (the engine's event clock).
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
