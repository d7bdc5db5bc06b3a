//! `berth watch`: the daemon. Converges at start, then whenever the file is saved,
//! the followed branch moves, the engine drifts, the resync timer fires or the API
//! asks.
//!
//! One event loop over a closed [`Event`]: sources only send events; the loop alone
//! reconciles, one at a time, and always from the latest desired state (a burst of
//! events is one reconcile). A source that does not parse or validate changes
//! nothing: the error is logged and reported, and what runs keeps running.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use crate::app::{self, AppError};
use crate::shell::api::{self, ApiState, ReconcileReply};
use crate::shell::docker::Engine;
use crate::shell::git::{self, GitSource};
use crate::shell::lock;
use crate::shell::watch;

/// Everything that can wake the loop.
#[derive(Debug)]
pub enum Event {
    /// The services file was saved (by rename, truncate or delete-recreate).
    FileChanged,
    /// The followed branch points to a new commit, checked out with its file at `file`.
    GitFetched {
        revision: String,
        file: PathBuf,
    },
    /// A fetch failed; retried with backoff, and the last good commit keeps running.
    GitFailed(String),
    /// The engine reported a change to one of the project's containers.
    EngineChanged {
        action: String,
        container: String,
    },
    /// The periodic full resync.
    Tick,
    /// `POST /reconcile`, answered when that reconcile is done.
    Requested(ReconcileReply),
    /// `POST /build`, answered when the images are built (before any reconcile).
    BuildRequested(ReconcileReply),
    Shutdown,
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

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub source: WatchSource,
    pub interval: Duration,
    pub listen: Option<SocketAddr>,
    /// Who may use the API and the gateway's private services.
    pub tokens: crate::core::access::Tokens,
    pub verbose: bool,
    /// Serve the routing gateway here, its routes updated after every reconcile.
    pub gateway: Option<SocketAddr>,
}

/// Counters and the last outcome, for `/status` and `/metrics`.
#[derive(Debug, Default)]
struct Stats {
    reconciles: u64,
    errors: u64,
    drift_corrections: u64,
    duration_sum: f64,
    last_duration: f64,
    managed: usize,
}

struct Daemon {
    engine: Engine,
    opts: WatchOptions,
    /// The file to converge to and the commit it came from (git), once known.
    current: Option<(Option<String>, PathBuf)>,
    /// The project, once a file parsed: engine events are followed for it.
    project: Option<String>,
    /// What the gateway routes to, refreshed after every reconcile.
    routes: Arc<RwLock<crate::core::route::RouteTable>>,
    /// The project the gateway routes for, once known (its refreshes read it).
    gateway_project: Arc<RwLock<Option<String>>>,
    /// The gateway's control address, registered for the project once known.
    gateway_control: Option<SocketAddr>,
    _registration: Option<crate::shell::state::GatewayRegistration>,
    /// The spec of the last successful reconcile.
    last_spec: Option<crate::core::spec::Spec>,
    /// The same, for the API's log requests.
    shared_spec: Arc<RwLock<Option<crate::core::spec::Spec>>>,
    /// Why the source could not be read (a failed fetch, a refused commit), until
    /// it can again. Reported beside the last reconcile, which used the last good state.
    source_error: Option<String>,
    /// Why the last rollout failed (a step's error: the health gate's answer and
    /// the container's last lines), until a reconcile succeeds.
    rollout_error: Option<String>,
    stats: Stats,
    status: Arc<RwLock<serde_json::Value>>,
    metrics: Arc<RwLock<String>>,
    tx: mpsc::Sender<Event>,
}

/// Sends `Tick` every `interval` (not at once: the daemon converges at start anyway).
pub async fn ticker(interval: Duration, tx: mpsc::Sender<Event>) {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        if tx.send(Event::Tick).await.is_err() {
            return;
        }
    }
}

/// Fetches the branch every interval (with backoff after failures) and reports
/// each new commit.
async fn follow_git(src: GitSource, interval: Duration, tx: mpsc::Sender<Event>) {
    let mut last: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let s = src.clone();
        let known = last.clone();
        let result = tokio::task::spawn_blocking(move || {
            let rev = s.fetch()?;
            if known.as_deref() == Some(rev.as_str()) {
                return Ok(None);
            }
            let file = s.checkout(&rev)?;
            Ok::<_, git::GitError>(Some((rev, file)))
        })
        .await
        .unwrap_or_else(|e| {
            Err(git::GitError::TreeCheckout {
                revision: "?".into(),
                message: e.to_string(),
            })
        });
        let event = match result {
            Ok(None) => {
                failures = 0;
                None
            }
            Ok(Some((revision, file))) => {
                failures = 0;
                last = Some(revision.clone());
                Some(Event::GitFetched { revision, file })
            }
            Err(e) => {
                failures += 1;
                // A refused commit is not retried until the branch moves again.
                if let git::GitError::CommitRefuse { revision, .. } = &e {
                    last = Some(revision.clone());
                }
                Some(Event::GitFailed(e.to_string()))
            }
        };
        if let Some(ev) = event {
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(git::next_delay(interval, failures)).await;
    }
}

/// Follows the engine's events for the project; reconnects with backoff, and
/// after a reconnect asks for a reconcile (events may have been missed).
async fn follow_engine(engine: Engine, project: String, tx: mpsc::Sender<Event>) {
    let mut failures = 0u32;
    loop {
        {
            let mut events = std::pin::pin!(engine.container_events(&project));
            while let Some(item) = events.next().await {
                match item {
                    Ok((action, container)) => {
                        failures = 0;
                        let drift = [
                            "die", "stop", "kill", "destroy", "oom", "pause", "rename", "update",
                        ];
                        if drift.iter().any(|a| action.starts_with(a)) {
                            let _ = tx.send(Event::EngineChanged { action, container }).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "engine events interrupted");
                        break;
                    }
                }
            }
        }
        failures += 1;
        tokio::time::sleep(git::next_delay(Duration::from_secs(1), failures)).await;
        let _ = tx
            .send(Event::EngineChanged {
                action: "reconnect".into(),
                container: String::new(),
            })
            .await;
    }
}

async fn signals(tx: mpsc::Sender<Event>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = tx.send(Event::Shutdown).await;
}

/// Runs the daemon until SIGTERM or Ctrl-C. The services keep running after it.
pub async fn run(opts: WatchOptions) -> Result<u8, AppError> {
    let engine = Engine::connect().await?;
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let status = Arc::new(RwLock::new(json!({})));
    let metrics = Arc::new(RwLock::new(String::new()));

    let mut _file_watch = None;
    let current = match &opts.source {
        WatchSource::File(path) => {
            let t = tx.clone();
            _file_watch = Some(
                watch::watch_file(path, Duration::from_millis(100), move || {
                    let _ = t.try_send(Event::FileChanged);
                })
                .map_err(|e| AppError::Daemon(e.to_string()))?,
            );
            Some((None, path.clone()))
        }
        WatchSource::Git {
            url,
            reference,
            path,
        } => {
            let src = GitSource::new(url, reference, path, &lock::state_dir());
            tokio::spawn(follow_git(src, opts.interval, tx.clone()));
            None
        }
    };
    tokio::spawn(ticker(opts.interval, tx.clone()));
    tokio::spawn(signals(tx.clone()));

    let shared_spec: Arc<RwLock<Option<crate::core::spec::Spec>>> = Default::default();
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = opts.listen {
        let (req_tx, mut req_rx) = mpsc::channel::<api::Ask>(16);
        let state = ApiState {
            status: status.clone(),
            metrics: metrics.clone(),
            asks: req_tx,
            tokens: Arc::new(opts.tokens.clone()),
            logs: {
                let (e, spec) = (engine.clone(), shared_spec.clone());
                Arc::new(move |target, tail| {
                    let e = e.clone();
                    let spec = spec.read().expect("no panics hold it").clone();
                    Box::pin(async move {
                        let spec = spec.ok_or("nothing has converged yet")?;
                        let c = app::find_target(&e, &spec, &target)
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(e.logs_tail(&c.id, tail).await)
                    })
                })
            },
        };
        api::serve(addr, state, async {
            let _ = api_stopped.await;
        })
        .await?;
        let t = tx.clone();
        tokio::spawn(async move {
            while let Some(ask) = req_rx.recv().await {
                let event = match ask {
                    api::Ask::Reconcile(reply) => Event::Requested(reply),
                    api::Ask::Build(reply) => Event::BuildRequested(reply),
                };
                if t.send(event).await.is_err() {
                    return;
                }
            }
        });
        tracing::info!(%addr, "API listening");
    }

    let routes = Arc::new(RwLock::new(crate::core::route::RouteTable::default()));
    let gateway_project: Arc<RwLock<Option<String>>> = Default::default();
    let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut gateway_control = None;
    if let Some(addr) = opts.gateway {
        let state = crate::shell::gateway::GatewayState {
            table: routes.clone(),
            tokens: Arc::new(opts.tokens.clone()),
            refresh: app::routes_refresh(&engine, gateway_project.clone()),
        };
        let running = crate::shell::gateway::serve(addr, state, async {
            let _ = gateway_stopped.await;
        })
        .await?;
        gateway_control = Some(running.control);
        tracing::info!(%addr, "gateway listening");
    }

    let mut d = Daemon {
        engine,
        opts,
        current,
        project: None,
        last_spec: None,
        shared_spec,
        source_error: None,
        rollout_error: None,
        routes,
        gateway_project,
        gateway_control,
        _registration: None,
        stats: Stats::default(),
        status,
        metrics,
        tx,
    };
    d.publish(None, "start", None);
    if d.current.is_some() {
        let _ = d.reconcile("start").await;
    }
    while let Some(first) = rx.recv().await {
        // Everything queued now is one reconcile; a short pause lets a burst
        // (an editor's several writes, a container's die+stop) arrive whole.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut events = vec![first];
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        let mut replies = Vec::new();
        let mut builds = Vec::new();
        let mut trigger = "tick";
        let mut shutdown = false;
        for e in events {
            match e {
                Event::FileChanged => trigger = "file",
                Event::GitFetched { revision, file } => {
                    tracing::info!(revision, "new commit");
                    d.current = Some((Some(revision), file));
                    d.source_error = None;
                    trigger = "git";
                }
                Event::GitFailed(e) => {
                    tracing::warn!(error = %e, "git fetch failed; the last good commit keeps running");
                    d.record_error(&e);
                }
                Event::EngineChanged { action, container } => {
                    tracing::info!(action, container, "engine changed");
                    if trigger == "tick" {
                        trigger = "engine";
                    }
                }
                Event::Tick => {}
                Event::Requested(reply) => {
                    replies.push(reply);
                    trigger = "api";
                }
                Event::BuildRequested(reply) => {
                    builds.push(reply);
                    trigger = "api";
                }
                Event::Shutdown => shutdown = true,
            }
        }
        if shutdown {
            for r in replies.into_iter().chain(builds) {
                let _ = r.send(Err("the daemon is stopping".into()));
            }
            break;
        }
        if d.current.is_none() {
            for r in replies.into_iter().chain(builds) {
                let _ = r.send(Err("no commit has been fetched yet".into()));
            }
            continue;
        }
        if !builds.is_empty() {
            let result = d.build().await;
            for r in builds {
                let _ = r.send(result.clone());
            }
        }
        let result = d.reconcile(trigger).await;
        for r in replies {
            let _ = r.send(result.clone());
        }
    }
    let _ = stop_api.send(());
    let _ = stop_gateway.send(());
    tracing::info!("stopped; the services keep running");
    Ok(0)
}

/// Takes the project's lock on a blocking thread (it may wait for an `apply`).
async fn project_lock(project: &str) -> Result<lock::ProjectLock, AppError> {
    let project = project.to_string();
    tokio::task::spawn_blocking(move || {
        lock::acquire(&project, "watch", |holder| {
            tracing::info!(holder, "waiting for the project lock")
        })
    })
    .await
    .map_err(|e| AppError::Daemon(e.to_string()))?
    .map_err(AppError::from)
}

impl Daemon {
    /// `POST /build`: the images of the current file, under the project lock.
    async fn build(&mut self) -> Result<String, String> {
        let Some((_, file)) = self.current.clone() else {
            return Err("no source yet".into());
        };
        let outcome = async {
            let spec = app::load(&file)?;
            let _lock = project_lock(&spec.project).await?;
            app::build_images(&self.engine, &spec, &file, None, self.opts.verbose).await
        }
        .await;
        match outcome {
            Ok((built, cached)) => Ok(format!(
                "built {built} image(s); {} already there",
                cached.len()
            )),
            Err(AppError::BuildTargetFind { .. }) => {
                Ok("nothing to build: no service is built from a package".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// One reconcile; the outcome goes to the log, `/status` and `/metrics`.
    async fn reconcile(&mut self, trigger: &str) -> Result<String, String> {
        let Some((revision, file)) = self.current.clone() else {
            return Err("no source yet".into());
        };
        let started = Instant::now();
        tracing::debug!(trigger, "reconcile started");
        // A configuration that failed its health gate is tried again on the resync
        // timer or when asked, not on the engine events its failure caused.
        let retry = matches!(trigger, "tick" | "api");
        let outcome = self.converge(&file, revision.as_deref(), retry).await;
        let secs = started.elapsed().as_secs_f64();
        self.stats.reconciles += 1;
        self.stats.duration_sum += secs;
        self.stats.last_duration = secs;
        match outcome {
            Ok((steps, rows, changed)) => {
                let trigger = match (&self.opts.source, changed) {
                    (_, false) => trigger,
                    (WatchSource::File(_), true) => "file",
                    (WatchSource::Git { .. }, true) => "git",
                };
                if steps > 0 && !changed {
                    self.stats.drift_corrections += steps as u64;
                }
                self.stats.managed = rows.len();
                self.rollout_error = None;
                let summary = format!("converged: {steps} steps");
                tracing::info!(
                    trigger,
                    steps,
                    seconds = secs,
                    revision = revision.as_deref().unwrap_or("-"),
                    "converged"
                );
                self.publish(Some(&rows), trigger, None);
                Ok(summary)
            }
            Err(e) => {
                let text = e.to_string();
                // A step that failed (a health gate: with its answer and log lines)
                // is kept until a reconcile succeeds; the reconciles its own events
                // cause only say that the configuration is known to fail.
                if let AppError::ApplyFail { .. } = &e {
                    self.rollout_error = Some(text.clone());
                }
                tracing::error!(trigger, error = %text, "reconcile failed; what runs keeps running");
                self.stats.errors += 1;
                // What runs now (a failed rollout's container kept aside, the old
                // one still serving), so /status shows the failure where it is.
                let rows = match self.project.clone() {
                    Some(p) => self.look(&p).await.ok(),
                    None => None,
                };
                self.publish(rows.as_deref(), trigger, Some(&text));
                Err(text)
            }
        }
    }

    /// What runs now, from one list call: the status rows, and the gateway's
    /// routes refreshed from the same observation.
    async fn look(&self, project: &str) -> Result<Vec<crate::core::render::StatusRow>, AppError> {
        let observed = self.engine.observe(project).await?;
        if self.opts.gateway.is_some() {
            *self.routes.write().expect("no panics hold it") =
                crate::core::route::routes(project, &observed);
        }
        Ok(app::rows_of(&self.engine, project, &observed, false).await)
    }

    /// Plans and applies under the project lock; returns the steps taken and the
    /// status rows after.
    async fn converge(
        &mut self,
        file: &std::path::Path,
        revision: Option<&str>,
        retry_failed: bool,
    ) -> Result<(usize, Vec<crate::core::render::StatusRow>, bool), AppError> {
        let spec = app::load(file)?;
        // Steps taken for a spec that did not change undo drift; steps for a new
        // spec are the change itself, whatever event woke the loop first.
        let changed = self.last_spec.as_ref() != Some(&spec);
        if self.project.as_deref() != Some(spec.project.as_str()) {
            self.project = Some(spec.project.clone());
            if let Some(control) = self.gateway_control {
                *self.gateway_project.write().expect("no panics hold it") =
                    Some(spec.project.clone());
                self._registration = Some(crate::shell::state::register_gateway(
                    &spec.project,
                    control,
                )?);
            }
            tokio::spawn(follow_engine(
                self.engine.clone(),
                spec.project.clone(),
                self.tx.clone(),
            ));
        }
        let _lock = project_lock(&spec.project).await?;
        let opts = crate::core::plan::Options {
            allow_empty: false,
            retry_failed,
        };
        let plan = app::make_plan(&self.engine, &spec, file, opts).await?;
        let secrets = app::plan_secrets(&plan, file)?;
        if !plan.is_empty() {
            app::execute(&self.engine, &plan, &secrets, self.opts.verbose, revision).await?;
        }
        let rows = self.look(&spec.project).await?;
        if !plan.failed.is_empty() {
            *self.shared_spec.write().expect("no panics hold it") = Some(spec.clone());
            self.last_spec = Some(spec);
            return Err(AppError::RolloutFail {
                failed: plan.failed.join("\n  "),
            });
        }
        app::settle(&spec);
        *self.shared_spec.write().expect("no panics hold it") = Some(spec.clone());
        self.last_spec = Some(spec);
        Ok((plan.steps.len(), rows, changed))
    }

    fn record_error(&mut self, e: &str) {
        self.stats.errors += 1;
        self.source_error = Some(e.to_string());
        let mut doc = self.status.write().expect("no panics hold it");
        doc["last_error"] = json!(e);
        doc["source_error"] = json!(e);
    }

    /// Writes the `/status` document and the `/metrics` text.
    fn publish(
        &self,
        rows: Option<&[crate::core::render::StatusRow]>,
        trigger: &str,
        error: Option<&str>,
    ) {
        let source = match &self.opts.source {
            WatchSource::File(p) => json!({"kind": "file", "path": p.display().to_string()}),
            WatchSource::Git {
                url,
                reference,
                path,
            } => {
                json!({"kind": "git", "url": git::redact(url), "ref": reference, "path": path})
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        {
            let mut doc = self.status.write().expect("no panics hold it");
            let services = match rows {
                Some(r) => serde_json::to_value(r).unwrap_or_default(),
                None => doc.get("services").cloned().unwrap_or(json!([])),
            };
            *doc = json!({
                "source": source,
                "revision": self.current.as_ref().and_then(|c| c.0.clone()),
                "last_reconcile": if self.stats.reconciles > 0 { json!({
                    "at": now,
                    "trigger": trigger,
                    "result": if error.is_some() { "error" } else { "ok" },
                    "error": error,
                    "duration_seconds": self.stats.last_duration,
                }) } else { json!(null) },
                "last_error": error.or(self.source_error.as_deref()),
                "source_error": self.source_error,
                "rollout_error": self.rollout_error,
                "services": services,
            });
        }
        let s = &self.stats;
        let text = format!(
            "# HELP berth_reconcile_total Reconciles run.\n# TYPE berth_reconcile_total counter\nberth_reconcile_total {}\n\
             # HELP berth_reconcile_errors_total Reconciles that failed.\n# TYPE berth_reconcile_errors_total counter\nberth_reconcile_errors_total {}\n\
             # HELP berth_reconcile_duration_seconds Time spent reconciling.\n# TYPE berth_reconcile_duration_seconds summary\nberth_reconcile_duration_seconds_sum {}\nberth_reconcile_duration_seconds_count {}\n\
             # HELP berth_managed_containers Containers of the project on the engine.\n# TYPE berth_managed_containers gauge\nberth_managed_containers {}\n\
             # HELP berth_drift_corrections_total Steps taken to undo changes made behind berth's back.\n# TYPE berth_drift_corrections_total counter\nberth_drift_corrections_total {}\n",
            s.reconciles, s.errors, s.duration_sum, s.reconciles, s.managed, s.drift_corrections
        );
        *self.metrics.write().expect("no panics hold it") = text;
    }
}

/// `30s`, `1m`, `500ms`, `2h` -> a duration of more than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match crate::core::spec::parse_duration_ms(text)? {
        0 => Err(format!("`{text}` must be more than zero")),
        ms => Ok(Duration::from_millis(ms)),
    }
}
