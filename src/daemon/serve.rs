//! The daemon's listener: the API and the dashboard, fed the daemon's report,
//! reading logs through the engine the daemon follows, and forwarding their
//! asks to the event loop.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{report, sources, DaemonError, Event, WatchOptions};
use crate::converge::{observe, Context};
use crate::core::observed::ObservedContainer;
use crate::core::spec::Spec;
use crate::shell::api::{self, ApiState, AskFail};
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

/// The API, serving the daemon's report and forwarding its asks as events.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_api(
    ctx: &Context,
    engine: &Arc<RwLock<SharedEngine>>,
    opts: &WatchOptions,
    report: &report::Report,
    shared_spec: &Arc<RwLock<Option<Spec>>>,
    tx: &mpsc::Sender<Event>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
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
    let (for_follow, for_logs) = (holds.clone(), holds);
    let state = ApiState {
        status: report.status.clone(),
        metrics: report.metrics.clone(),
        asks: ask_tx,
        tokens: Arc::new(opts.tokens.clone()),
        engine_down: engine_down.clone(),
        sessions: Default::default(),
        follow: Arc::new(move |target| {
            let holds = for_follow.clone();
            Box::pin(async move {
                let (e, c) = holds.target(&target).await?;
                Ok(e.logs(&c.id, true, Some(0))
                    .filter_map(|chunk| std::future::ready(chunk.ok()))
                    .boxed())
            })
        }),
        logs: Arc::new(move |target, tail| {
            let holds = for_logs.clone();
            Box::pin(async move {
                let (e, c) = holds.target(&target).await?;
                e.logs_tail(&c.id, tail)
                    .await
                    .map_err(|e| AskFail(e.to_string()))
            })
        }),
    };
    api::serve(addr, state, opts.bounds, shutdown).await?;
    let t = tx.clone();
    tokio::spawn(async move {
        while let Some(ask) = ask_rx.recv().await {
            let event = match ask {
                api::Ask::Reconcile(reply) => Event::Requested(reply),
                api::Ask::Build(reply) => Event::BuildRequested(reply),
                api::Ask::Plan(reply) => Event::PlanRequested(reply),
            };
            if t.send(event).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}
