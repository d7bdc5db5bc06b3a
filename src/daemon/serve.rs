//! The daemon's listener: the API and the dashboard, fed the daemon's report,
//! reading logs through the engine the daemon follows, and forwarding their
//! asks to the event loop.

use std::sync::{Arc, RwLock};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{report, sources, Event};
use crate::converge::{observe, Context};
use crate::core::observed::ObservedContainer;
use crate::core::spec::Spec;
use crate::serve::api::{self, ApiState, AskFail};
use crate::shell::engine::SharedEngine;

/// The engine and spec the daemon holds now, shared with the listener.
#[derive(Clone)]
struct Holds {
    engine: Arc<RwLock<SharedEngine>>,
    spec: Arc<RwLock<Option<Spec>>>,
}

impl Holds {
    /// The container (or swarm service) of `SERVICE[@VERSION]`, and the
    /// engine that runs it.
    async fn target(&self, target: &str) -> Result<(SharedEngine, ObservedContainer), AskFail> {
        let e = self.engine.read().expect("no panics hold it").clone();
        let spec = self.spec.read().expect("no panics hold it").clone();
        let spec = spec.ok_or_else(|| AskFail("nothing has converged yet".into()))?;
        let c = observe::find_target(e.as_ref(), &spec.project, Some(&spec), target)
            .await
            .map_err(|e| AskFail(e.to_string()))?;
        Ok((e, c))
    }
}

/// What a project's API shares with the listener and the daemon: the push
/// webhooks it takes, the sign-in, the project's name once known.
pub(super) struct Shared {
    pub hook: crate::serve::api::hooks::SharedHook,
    pub door: api::Door,
    pub project: Arc<RwLock<Option<String>>>,
}

/// A project's API state: serving the daemon's report, reading logs through
/// its engine, forwarding its asks as events to its loop.
pub(super) fn api_state(
    ctx: &Context,
    engine: &Arc<RwLock<SharedEngine>>,
    report: &report::Report,
    shared_spec: &Arc<RwLock<Option<Spec>>>,
    tx: &mpsc::Sender<Event>,
    shared: Shared,
) -> ApiState {
    let Shared {
        hook,
        door,
        project,
    } = shared;
    let (ask_tx, mut ask_rx) = mpsc::channel::<api::Ask>(16);
    let holds = Holds {
        engine: engine.clone(),
        spec: shared_spec.clone(),
    };
    let engine_down: Arc<RwLock<Option<String>>> = Default::default();
    tokio::spawn(sources::ping_engine(
        ctx.engine.clone(),
        ctx.settings.engine_timeout,
        engine_down.clone(),
    ));
    let watchers: Arc<std::sync::atomic::AtomicUsize> = Default::default();
    let usage: Arc<RwLock<crate::core::usage::History>> = Default::default();
    let focus: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>> =
        Default::default();
    tokio::spawn(sample_usage(
        engine.clone(),
        report.status.clone(),
        watchers.clone(),
        usage.clone(),
        focus.clone(),
    ));
    let (for_follow, for_logs) = (holds.clone(), holds);
    let state = ApiState {
        hook,
        watchers,
        usage,
        focus,
        status: report.status.clone(),
        metrics: report.metrics.clone(),
        asks: ask_tx,
        tokens: door.tokens,
        engine_down: engine_down.clone(),
        sessions: door.sessions,
        project,
        follow: Arc::new(move |target, tail| {
            let holds = for_follow.clone();
            Box::pin(async move {
                let (e, c) = holds.target(&target).await?;
                Ok(e.logs(&c.id, true, Some(tail))
                    .filter_map(|chunk| std::future::ready(chunk.ok()))
                    .boxed())
            })
        }),
        logs: Arc::new(move |target, tail| {
            let holds = for_logs.clone();
            Box::pin(async move {
                let (e, c) = holds.target(&target).await?;
                Ok(e.logs(&c.id, false, Some(tail))
                    .filter_map(|chunk| std::future::ready(chunk.ok()))
                    .boxed())
            })
        }),
    };
    let t = tx.clone();
    tokio::spawn(async move {
        while let Some(ask) = ask_rx.recv().await {
            let event = match ask {
                api::Ask::Reconcile(reply) => Event::Requested(reply),
                api::Ask::Build(reply) => Event::BuildRequested(reply),
                api::Ask::Plan(reply) => Event::PlanRequested(reply),
                api::Ask::Apply { digest, reply } => Event::ApplyRequested { digest, reply },
                api::Ask::Restart { target, who, reply } => {
                    Event::RestartRequested { target, who, reply }
                }
                api::Ask::Rollback {
                    service,
                    to,
                    release,
                    reply,
                } => Event::RollbackRequested {
                    request: crate::converge::rollback::Request {
                        service,
                        to,
                        release,
                    },
                    reply,
                },
            };
            if t.send(event).await.is_err() {
                return;
            }
        }
    });
    state
}

/// How often CPU and memory are sampled while a dashboard watches.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How many containers besides those of a followed service's page one round
/// samples (a round then takes about SAMPLE_BUDGET / SAMPLE_AT_ONCE seconds).
const SAMPLE_BUDGET: usize = 40;

/// How many stats calls run at once.
const SAMPLE_AT_ONCE: usize = 8;

/// While a dashboard follows the overview, samples each running container's
/// CPU and memory into the status document's rows (one stats call each, a
/// few at a time); an idle daemon makes none. A swarm's tasks run elsewhere: none.
async fn sample_usage(
    engine: Arc<RwLock<SharedEngine>>,
    status: Arc<RwLock<crate::core::report::StatusDocument>>,
    watchers: Arc<std::sync::atomic::AtomicUsize>,
    history: Arc<RwLock<crate::core::usage::History>>,
    focus: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
) {
    let mut cursor = 0;
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        if watchers.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            continue;
        }
        let e = engine.read().expect("no panics hold it").clone();
        if e.capabilities().rolls_out {
            continue;
        }
        let running: Vec<(String, String)> = {
            let doc = status.read().expect("no panics hold it");
            doc.services
                .iter()
                .filter(|r| r.state == "running")
                .map(|r| (r.container.clone(), r.service.clone()))
                .collect()
        };
        let focus: std::collections::BTreeSet<String> = focus
            .lock()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        let running = crate::core::usage::round(&running, &focus, &mut cursor, SAMPLE_BUDGET);
        // A stats call waits for the engine's second sample (about a second):
        // a few at a time, so 500 containers do not load the engine at once.
        let samples: Vec<_> = futures_util::stream::iter(running)
            .map(|name| {
                let e = e.clone();
                async move { (e.usage(&name).await.ok().flatten(), name) }
            })
            .buffer_unordered(SAMPLE_AT_ONCE)
            .collect()
            .await;
        let at = super::unix_now();
        let mut doc = status.write().expect("no panics hold it");
        let mut history = history.write().expect("no panics hold it");
        for (usage, name) in samples {
            if let (Some(u), Some(row)) =
                (usage, doc.services.iter_mut().find(|r| r.container == name))
            {
                row.cpu_percent = Some(u.cpu_percent);
                row.memory_bytes = Some(u.memory_bytes);
                row.memory_limit_bytes = Some(u.memory_limit_bytes);
                let sample = crate::core::usage::Sample {
                    at,
                    cpu_percent: u.cpu_percent,
                    memory_bytes: u.memory_bytes,
                };
                history.push(&name, sample);
            }
        }
        let live: Vec<&str> = doc.services.iter().map(|r| r.container.as_str()).collect();
        history.retain(&live);
    }
}

impl super::Daemon {
    /// What runs now, from one list call (or `seen`, an observation that is
    /// still current): the status rows, and the gateway's routes refreshed
    /// from the same observation.
    pub(super) async fn look(
        &self,
        project: &str,
        seen: Option<&crate::core::plan::Observed>,
    ) -> Result<Vec<crate::core::render::StatusRow>, crate::converge::ConvergeError> {
        let listed;
        let observed = match seen {
            Some(o) => o,
            None => {
                listed = self.ctx.engine.observe(project).await?;
                &listed
            }
        };
        if let Some(board) = &self.board {
            board.look(self.slot, project, observed).await;
        }
        Ok(observe::rows_of(
            self.ctx.engine.as_ref(),
            project,
            observed,
            false,
            Some(&self.known),
        )
        .await)
    }
}
