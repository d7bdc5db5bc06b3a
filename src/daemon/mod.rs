//! `berth watch`: the daemon. Converges at start, then whenever the file is saved,
//! the followed branch moves, the engine drifts, the resync timer fires or the API
//! asks.
//!
//! One event loop over a closed [`Event`]: sources ([`sources`]) only send events;
//! the loop alone reconciles, one at a time, through the same converge path as
//! `berth apply`, and always from the latest desired state (a burst of events is
//! one reconcile, [`batch`]). A source that does not parse or validate changes
//! nothing: the error is logged and reported ([`report`]), and what runs keeps
//! running. It imports nothing from the commands.

mod asks;
pub mod batch;
mod notices;
mod recheck;
mod reconcile;
pub mod report;
mod serve;
pub mod sources;
mod start;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::converge::{self, observe, Context, ConvergeError};
use crate::core::access::Tokens;
use crate::core::report::Trigger;
use crate::core::spec::Spec;
use crate::serve::api::{ApiError, AskFail, ReconcileReply};
use crate::shell::engine::{ContainerEvent, SharedEngine};
use crate::shell::state::{GatewayRegistration, StateError};
use crate::shell::watch::WatchError;

pub use sources::ticker;

/// Everything that can wake the loop.
#[derive(Debug)]
pub enum Event {
    /// The services file was saved (by rename, truncate or delete-recreate).
    FileChanged,
    /// The followed branch points to a new commit, checked out with its file at `file`.
    GitFetched {
        revision: String,
        file: PathBuf,
        /// The commit's subject line.
        subject: Option<String>,
    },
    /// A fetch failed; retried with backoff, and the last good commit keeps running.
    GitFailed(String),
    /// The engine reported a change to one of the project's containers.
    EngineChanged(ContainerEvent),
    /// The periodic full resync.
    Tick,
    /// `POST /reconcile`, answered when that reconcile is done.
    Requested(ReconcileReply),
    /// `POST /build`, answered when the images are built (before any reconcile).
    BuildRequested(ReconcileReply),
    /// The dashboard asks what the file would change; answered without acting.
    PlanRequested(ReconcileReply),
    /// The dashboard's "Apply" of the plan with this digest.
    ApplyRequested {
        digest: String,
        reply: ReconcileReply,
    },
    /// The dashboard's "Restart" of a version.
    RestartRequested {
        target: String,
        who: String,
        reply: ReconcileReply,
    },
    /// A rollback from the API or the dashboard: the hold, then its reconcile.
    RollbackRequested {
        request: converge::rollback::Request,
        reply: ReconcileReply,
    },
    /// A container read `starting` at the last look: time to look again.
    HealthDue,
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Converge(#[from] ConvergeError),
    #[error(transparent)]
    FileWatch(#[from] WatchError),
    #[error(transparent)]
    Listener(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the file now names `engine: {engine}`, but this daemon follows another engine\n  help: restart `berth watch` to follow the new engine (what runs on the old one keeps running; `berth destroy` there removes it)")]
    EngineSwitch { engine: &'static str },
    #[error("the file names project `{named}`, but the projects file follows it as `{expected}`: nothing was changed\n  help: make the file say `project: {expected}`, or list it as `{named}` in the projects file (a token's grants for `{expected}` must not reach another project)")]
    ProjectNamed { expected: String, named: String },
}

#[derive(Debug, Clone)]
pub enum WatchSource {
    File(PathBuf),
    Git {
        url: String,
        reference: String,
        path: String,
    },
}

/// One project the daemon follows.
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    /// The name the projects file gives it (`--projects`): the file followed
    /// must say `project:` with it, and its API and dashboard are under
    /// `/projects/NAME/`. `None`: the one project of `--file` or `--git`,
    /// served at the listener's root.
    pub name: Option<String>,
    pub source: WatchSource,
    /// The push webhooks' shared secret (a `git` source only).
    pub webhook_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Each followed by its own loop, lock and sources: one failing or slow
    /// never delays another.
    pub projects: Vec<ProjectOptions>,
    pub interval: Duration,
    pub listen: Option<SocketAddr>,
    /// Who may use the API and the gateway's private services.
    pub tokens: Tokens,
    /// Serve the routing gateway here, its routes updated after every reconcile.
    pub gateway: Option<SocketAddr>,
    /// How each listener is bounded against floods.
    pub bounds: crate::serve::listen::Bounds,
    /// Converge only when asked; every other event is a look.
    pub manual: bool,
    /// Where outcomes are sent (`--notify`).
    pub notify: Option<crate::shell::notices::NotifyConfig>,
}

struct Daemon {
    ctx: Context,
    /// The engine the gateway and the API use: `ctx`'s, until the first file
    /// names a swarm and the daemon moves to its manager.
    engine: Arc<RwLock<SharedEngine>>,
    opts: WatchOptions,
    /// The project this loop follows, as the options name it.
    me: ProjectOptions,
    /// When the last converge that acted ended (ns since the Unix epoch; 0
    /// before the first): engine events from before then are its doing.
    own_until: i64,
    /// The commit the last successful reconcile converged to (git): a
    /// reconcile of another one is a change of source, never drift.
    converged_revision: Option<String>,
    /// The subject line of the newest commit fetched (git).
    fetched_subject: Option<String>,
    /// The last reconcile error logged at ERROR: the same one again, tick
    /// after tick, is logged at DEBUG (`/status` still has it).
    logged_error: Option<String>,
    /// The file to converge to and the commit it came from (git), once known.
    current: Current,
    /// The project, once a file parsed: engine events are followed for it.
    project: Option<String>,
    /// The project's name as the API, its grants and the gateway's refresh
    /// read it, once known.
    named: Arc<RwLock<Option<String>>>,
    /// The gateway's routes of every project, this one's in `slot`.
    board: Option<Arc<converge::gateways::Board>>,
    slot: usize,
    /// The gateway, registered for the project once known.
    gateway: Option<Arc<crate::serve::gateway::Running>>,
    _registration: Option<GatewayRegistration>,
    /// The spec of the last reconcile that got as far as its look, for the
    /// API's log requests and to tell a changed file from drift.
    shared_spec: Arc<RwLock<Option<Spec>>>,
    report: report::Report,
    tx: mpsc::Sender<Event>,
    /// Restart counts and start times of the project's containers, kept
    /// between looks until the engine changes one (see [`observe::Known`]).
    known: observe::Known,
    /// When to look at health again while a container reads starting.
    health_due: recheck::Recheck,
    /// The mark that says this daemon follows the project (`destroy` warns).
    _following: Option<crate::shell::lock::ProjectLock>,
    /// Each outcome's notice goes here (`--notify`); never waited for.
    notifier: Option<crate::shell::notices::Notifier>,
    /// An ask that tells its own outcome (a rollback) runs its reconcile
    /// untold, so one rollback is one notice.
    untold: bool,
}

/// What the daemon converges from: the commit (under `--git`) and the file.
type Current = Option<(Option<String>, PathBuf)>;

/// Seconds since the Unix epoch, now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs the daemon until SIGTERM or Ctrl-C: one loop per project, one
/// listener and one gateway for all of them. The services keep running after it.
pub async fn run(ctx: Context, opts: WatchOptions) -> Result<u8, DaemonError> {
    let door = crate::serve::api::Door {
        sessions: Default::default(),
        tokens: Arc::new(opts.tokens.clone()),
    };
    let board = opts
        .gateway
        .map(|_| Arc::new(converge::gateways::Board::new(opts.projects.len())));
    let mut started = Vec::new();
    for (slot, me) in opts.projects.iter().enumerate() {
        started.push(start::project(&ctx, &opts, me, slot, &door, board.clone()).await?);
    }
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = opts.listen {
        let app = start::listener_app(&started, door.clone());
        let stopped = async {
            let _ = api_stopped.await;
        };
        crate::serve::api::serve(addr, app, door.clone(), opts.bounds, stopped).await?;
        tracing::info!(%addr, "API listening");
        if opts.tokens.tokens.is_empty() {
            tracing::warn!(
                %addr,
                "no token is configured, so only /healthz will answer; add one with `berth token add NAME -p services:view` in the directory berth runs in (it writes ./tokens.yaml, read at start), or set BERTH_TOKEN"
            );
        }
    }
    let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    if let (Some(addr), Some(board)) = (opts.gateway, &board) {
        let cells = started.iter().map(|p| p.cells()).collect();
        let refresh = converge::gateways::refresh_board(board.clone(), cells);
        let stopped = async {
            let _ = gateway_stopped.await;
        };
        let running = converge::gateways::start(
            refresh,
            addr,
            opts.tokens.clone(),
            board.table(),
            opts.bounds,
            stopped,
        )
        .await?;
        let running = Arc::new(running);
        for p in &mut started {
            p.daemon.gateway = Some(running.clone());
        }
        tracing::info!(%addr, "gateway listening");
    }
    let loops: Vec<_> = started.into_iter().map(|p| tokio::spawn(p.run())).collect();
    futures_util::future::join_all(loops).await;
    let _ = stop_api.send(());
    let _ = stop_gateway.send(());
    tracing::info!("stopped; the services keep running");
    Ok(0)
}

impl Daemon {
    /// One batch of events: what they say noted, the asks answered, then at
    /// most one reconcile. `Break` once the daemon is to stop.
    async fn handle(
        &mut self,
        mut b: batch::Batch,
        checkout_in_use: &std::sync::Mutex<Option<String>>,
    ) -> std::ops::ControlFlow<()> {
        // Manual sync: only an ask converges; what else moved is looked at.
        let look = self.opts.manual && b.wakes;
        if self.opts.manual {
            b.wakes = !b.replies.is_empty() || !b.builds.is_empty();
        }
        self.note(&mut b, checkout_in_use);
        for r in std::mem::take(&mut b.plans) {
            let _ = r.send(self.plan_json().await);
        }
        if b.shutdown {
            let rollbacks = b.rollbacks.into_iter().map(|(_, r)| r);
            let applies = b.applies.into_iter().map(|(_, r)| r);
            let restarts = b.restarts.into_iter().map(|(_, _, r)| r);
            let asked = rollbacks.chain(applies).chain(restarts);
            for r in b.replies.into_iter().chain(b.builds).chain(asked) {
                let _ = r.send(Err(AskFail("the daemon is stopping".into())));
            }
            return std::ops::ControlFlow::Break(());
        }
        // Each rollback is its own hold and reconcile, before the batch's.
        for (request, r) in std::mem::take(&mut b.rollbacks) {
            let _ = r.send(self.rollback(&request).await);
        }
        for (target, who, r) in std::mem::take(&mut b.restarts) {
            let _ = r.send(self.restart(&target, &who).await);
        }
        for (digest, r) in std::mem::take(&mut b.applies) {
            let _ = r.send(self.reconcile_shown(Trigger::Api, Some(&digest)).await);
        }
        if !b.wakes {
            if look {
                self.look_only().await;
            } else if b.health_due {
                self.look_again().await;
            }
            return std::ops::ControlFlow::Continue(());
        }
        if self.current.is_none() {
            for r in b.replies.into_iter().chain(b.builds) {
                let _ = r.send(Err(AskFail("no commit has been fetched yet".into())));
            }
            return std::ops::ControlFlow::Continue(());
        }
        if !b.builds.is_empty() {
            let result = self.build().await;
            for r in b.builds {
                let _ = r.send(result.clone());
            }
        }
        let result = self.reconcile(b.trigger).await;
        for r in b.replies {
            let _ = r.send(result.clone());
        }
        crate::shell::memory::give_back();
        std::ops::ControlFlow::Continue(())
    }

    /// What a batch says happened: the engine moved, health is due, a new
    /// commit (taken as the source), fetch errors, engine events.
    fn note(&mut self, b: &mut batch::Batch, checkout_in_use: &std::sync::Mutex<Option<String>>) {
        if b.engine_changed {
            self.known.forget();
        }
        if b.health_due {
            self.health_due.fired();
        }
        if let Some((revision, file)) = b.fetched.take() {
            tracing::info!(revision, "new commit");
            if let Ok(mut used) = checkout_in_use.lock() {
                *used = Some(revision.clone());
            }
            // `/status` names the commit converged to, set once a reconcile
            // of it succeeds: a broken commit never reads as what runs.
            self.current = Some((Some(revision), file));
            self.fetched_subject = b.subject.take();
            self.report.source_error = None;
        }
        for e in &b.fetch_errors {
            tracing::warn!(error = %e, "git fetch failed; the last good commit keeps running");
            self.report.record_source_error(e);
        }
        for e in &b.engine_events {
            tracing::info!(action = e.action, container = e.container, "engine changed");
        }
    }
}

impl Daemon {
    /// Takes the project's lock (it may wait for an `apply`).
    async fn lock(&self, project: &str) -> Result<crate::shell::lock::ProjectLock, ConvergeError> {
        converge::lock(&self.ctx.settings, project, "watch", |holder| {
            tracing::info!(holder, "waiting for the project lock")
        })
        .await
    }

    /// An error in the words of the repository: the checkout berth made of a
    /// commit (a directory under its state) is named as `URL@REV12:` instead.
    fn in_user_terms(&self, text: &str, file: &std::path::Path, revision: Option<&str>) -> String {
        let WatchSource::Git { url, path, .. } = &self.me.source else {
            return text.to_string();
        };
        // The checkout's root: the file less the path it has in the repository.
        let depth = std::path::Path::new(path).components().count();
        let (Some(rev), Some(dir)) = (revision, file.ancestors().nth(depth)) else {
            return text.to_string();
        };
        let short = &rev[..rev.len().min(12)];
        text.replace(&format!("{}/", dir.display()), &format!("{url}@{short}:"))
            .replace(&dir.display().to_string(), &format!("{url}@{short}"))
    }

    /// The holds and the gateway's routes, for the next report.
    fn refresh_report(&mut self) {
        // A record that cannot be read fails the reconcile itself (its error is
        // the report's); the holds last read stay shown meanwhile.
        let holds = self
            .project
            .as_ref()
            .and_then(|p| crate::shell::state::holds(&self.ctx.settings.state_dir, p).ok());
        if let Some(holds) = holds {
            self.report.holds = holds
                .into_iter()
                .map(|(service, h)| crate::core::report::HoldReport {
                    service,
                    version: h.version.to_string(),
                    file_active: h.file_active.to_string(),
                })
                .collect();
        }
        if let (Some(addr), Some(board), Some(project)) =
            (self.opts.gateway, &self.board, &self.project)
        {
            let (routes, left_out) = board.of(project);
            self.report.gateway = Some(crate::core::report::GatewayReport {
                address: addr.to_string(),
                routes,
                left_out: left_out
                    .into_iter()
                    .map(|c| {
                        format!(
                            "{} (project {} routes {})",
                            c.prefix, c.holder, c.holder_prefix
                        )
                    })
                    .collect(),
            });
        }
    }

    /// The engine the file names: before the first converge, a file with
    /// `engine: swarm` moves the daemon to the swarm manager at DOCKER_HOST;
    /// a later change of engine needs a restart (the events followed, the
    /// services converged are the first engine's).
    async fn choose_engine(&mut self, spec: &Spec) -> Result<(), DaemonError> {
        if spec.engine == self.ctx.engine.kind() {
            return Ok(());
        }
        // The daemon starts on this host's engine; only its first file may
        // move it (what it converged and follows are that engine's).
        if self.project.is_some() || spec.engine == crate::core::spec::EngineKind::Docker {
            return Err(DaemonError::EngineSwitch {
                engine: spec.engine.name(),
            });
        }
        let engine = crate::shell::engine::for_kind(spec.engine, &self.ctx.settings)
            .await
            .map_err(ConvergeError::from)?;
        *self.engine.write().expect("no panics hold it") = engine.clone();
        self.ctx.engine = engine;
        tracing::info!(
            engine = spec.engine.name(),
            "the file names another engine: following it"
        );
        Ok(())
    }

    /// A file of a named project must name it: a repository that names
    /// another project would act with that project's grants and on its
    /// containers.
    fn claim(&self, spec: &Spec) -> Result<(), DaemonError> {
        match &self.me.name {
            Some(expected) if *expected != spec.project => Err(DaemonError::ProjectNamed {
                expected: expected.clone(),
                named: spec.project.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The first time a project is known: follow its engine events, and register
    /// the gateway for it.
    fn adopt(&mut self, project: &str) -> Result<(), DaemonError> {
        if self.project.as_deref() == Some(project) {
            return Ok(());
        }
        self.project = Some(project.to_string());
        match crate::shell::lock::follow(&self.ctx.settings.state_dir, project) {
            Ok(Some(mark)) => self._following = Some(mark),
            Ok(None) => tracing::warn!(
                project,
                "another berth watch daemon follows this project too; the two will undo each other's changes"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot mark the project as followed"),
        }
        *self.named.write().expect("no panics hold it") = Some(project.to_string());
        if let Some(running) = &self.gateway {
            self._registration = Some(converge::gateways::register(
                &self.ctx.settings,
                project,
                running,
            )?);
        }
        tokio::spawn(sources::follow_engine(
            self.ctx.engine.clone(),
            project.to_string(),
            self.tx.clone(),
        ));
        Ok(())
    }
}
