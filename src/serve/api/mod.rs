//! The daemon's HTTP API (axum): `GET /status` and `GET /metrics` (services:view),
//! `POST /reconcile` and `POST /rollback/{service}?to=V` (services:deploy),
//! `POST /build` (images:build),
//! `GET /logs/{target}?tail=N` (logs:view),
//! `GET /healthz` (open). Bearer tokens are
//! checked by their hash, in constant time.
//!
//! It knows nothing of the daemon: it serves the snapshots it is handed and
//! forwards reconcile requests on a channel.

pub mod hooks;
pub mod hub;
pub mod ui;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{FromRef, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use crate::core::access::{Decision, Permission, Scope, Tokens};

/// Why the daemon could not do what the API asked, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AskFail(pub String);

/// What a reconcile asked for over the API answered: Ok(summary) or Err(why not).
pub type ReconcileReply = oneshot::Sender<Result<String, AskFail>>;

/// What the API asks the daemon to do; the daemon answers on the reply.
#[derive(Debug)]
pub enum Ask {
    /// `POST /reconcile`.
    Reconcile(ReconcileReply),
    /// `POST /build`: build the images of the current file, run nothing.
    Build(ReconcileReply),
    /// The dashboard's "what would change": the plan of the current file
    /// against the engine, as JSON (`core::steps::Plan`); nothing is done.
    Plan(ReconcileReply),
    /// The dashboard's "Apply": a reconcile that carries out the plan whose
    /// digest the page showed, or refuses before any action.
    Apply {
        digest: String,
        reply: ReconcileReply,
    },
    /// The dashboard's "Restart" of one version (`SERVICE@VERSION`), asked
    /// for by the token named `who`.
    Restart {
        target: String,
        who: String,
        reply: ReconcileReply,
    },
    /// `POST /rollback/{service}`: the same hold as `berth rollback`, then a
    /// reconcile; `release` ends the hold (back to what the file says).
    Rollback {
        service: String,
        to: Option<String>,
        release: bool,
        reply: ReconcileReply,
    },
}

/// A target's log lines as the engine streams them (never gathered whole), or
/// why not.
pub type Lines = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<futures_util::stream::BoxStream<'static, String>, AskFail>,
            > + Send,
    >,
>;

/// The last `tail` log lines of a target (`SERVICE` or `SERVICE@VERSION`).
pub type LogsFn = Arc<dyn Fn(String, usize) -> Lines + Send + Sync>;

/// A target's last `n` log lines, then each line as it is written: one
/// stream from the engine, so no line falls between the two.
pub type FollowFn = Arc<dyn Fn(String, usize) -> Lines + Send + Sync>;

/// The most lines `GET /logs/...?tail=N` sends.
pub const MAX_TAIL: usize = 10_000;

#[derive(Clone)]
pub struct ApiState {
    /// The `/status` document.
    pub status: Arc<RwLock<crate::core::report::StatusDocument>>,
    /// The `/metrics` text.
    pub metrics: Arc<RwLock<String>>,
    pub asks: mpsc::Sender<Ask>,
    /// Who may do what: `/status` and `/metrics` need services:view,
    /// `POST /reconcile` services:deploy.
    pub tokens: Arc<Tokens>,
    /// Serves `GET /logs/{target}?tail=N` (logs:view).
    pub logs: LogsFn,
    /// Why the engine did not answer the daemon's last ping; `None` while it does.
    pub engine_down: Arc<RwLock<Option<String>>>,
    /// The dashboard's signed-in sessions.
    pub sessions: Arc<self::ui::Sessions>,
    /// The dashboard's live log tail (logs:view).
    pub follow: FollowFn,
    /// How many dashboards follow the overview live now: the daemon samples
    /// CPU and memory only while one does.
    pub watchers: Arc<std::sync::atomic::AtomicUsize>,
    /// CPU and memory of each container over the last hour, as sampled
    /// while a dashboard follows (the service page's charts).
    pub usage: Arc<RwLock<crate::core::usage::History>>,
    /// The services whose pages follow now (how many of each): sampled
    /// every round.
    pub focus: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    /// Push webhooks (`watch --git --webhook-secret`); `None`: none taken.
    pub hook: hooks::SharedHook,
    /// The project this API serves, once known: a token's grant for one
    /// project holds here only when it names this one.
    pub project: Arc<RwLock<Option<String>>>,
}

impl ApiState {
    /// Whether the bearer token presented holds `needed` in this API's project.
    pub fn decide(&self, presented: Option<&str>, needed: Permission) -> Decision {
        let project = self.project.read().expect("no panics hold it");
        self.tokens
            .decide(presented, needed, Scope::of(project.as_deref()))
    }
}

/// What signing in and out needs: the sessions and the tokens, shared by
/// every project a listener serves (one sign-in for all of them).
#[derive(Clone)]
pub struct Door {
    pub sessions: Arc<self::ui::Sessions>,
    pub tokens: Arc<Tokens>,
}

impl axum::extract::FromRef<ApiState> for Door {
    fn from_ref(s: &ApiState) -> Door {
        Door {
            sessions: s.sessions.clone(),
            tokens: s.tokens.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {source}\n  help: pick a free address with --listen, for example 127.0.0.1:7700")]
    ListenerBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One project's API and dashboard, with the sign-in: what a daemon that
/// follows one project serves.
pub fn router(state: ApiState) -> Router {
    project_router(state.clone()).merge(self::ui::door().with_state(Door::from_ref(&state)))
}

/// One project's API and dashboard pages (signing in is the listener's).
pub fn project_router(state: ApiState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reconcile", post(reconcile))
        .route("/build", post(build))
        .route("/rollback/{service}", post(rollback))
        .route("/logs/{target}", get(logs))
        .route("/healthz", get(healthz))
        .route("/hooks/push", post(hooks::push))
        .merge(self::ui::router())
        // A page of 500 rows is mostly repeated markup: gzip takes it under the
        // dashboard's weight budget. Server-sent events are left as they are.
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

/// `ok`, or 503 with the reason while the engine does not answer: a daemon that
/// cannot reach its engine converges nothing, whatever else still works.
async fn healthz(State(s): State<ApiState>) -> Response {
    match s.engine_down.read().expect("no panics hold it").clone() {
        None => "ok\n".into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("engine unreachable: {why}\n"),
        )
            .into_response(),
    }
}

/// Binds now (so a taken port is an error at start), serves `app` until
/// `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    door: Door,
    bounds: crate::serve::listen::Bounds,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, ApiError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::ListenerBind { addr, source })?;
    // A reserved connection (the cap is full) serves `/healthz`, a known
    // token and a live dashboard session: strangers cannot push them out.
    let Door { tokens, sessions } = door;
    let priority: crate::serve::listen::Priority = Arc::new(move |path, headers| {
        path == "/healthz"
            || crate::serve::forward::presented(headers).is_some_and(|t| tokens.knows(&t))
            || sessions.signed_in(headers)
    });
    Ok(tokio::spawn(crate::serve::listen::serve(
        listener, app, bounds, priority, shutdown,
    )))
}

async fn status(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&s, &headers, Permission::ServicesView) {
        return r;
    }
    let doc = s.status.read().expect("no panics hold it").clone();
    // Excerpts of container output are for tokens that may read logs.
    let token = crate::serve::forward::presented(&headers);
    match s.decide(token.as_deref(), Permission::LogsView) {
        Decision::Allow(_) => axum::Json(doc).into_response(),
        _ => axum::Json(doc.without_excerpts()).into_response(),
    }
}

async fn metrics(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&s, &headers, Permission::ServicesView) {
        return r;
    }
    let mut text = s.metrics.read().expect("no panics hold it").clone();
    if let Some(hook) = &s.hook {
        text.push_str(&hook.metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `None` when the request's bearer token holds `needed`; else the 401 or 403.
fn refuse(s: &ApiState, headers: &HeaderMap, needed: Permission) -> Option<Response> {
    let presented = crate::serve::forward::presented(headers);
    let project = s.project.read().expect("no panics hold it").clone();
    refusal(
        s.decide(presented.as_deref(), needed),
        needed,
        project.as_deref(),
    )
}

/// The 401 or 403 of a decision about `project` (if known), or `None` when
/// it allows.
pub fn refusal(decision: Decision, needed: Permission, project: Option<&str>) -> Option<Response> {
    match decision {
        Decision::Allow(name) => {
            tracing::debug!(
                token = name,
                permission = needed.name(),
                "API request allowed"
            );
            None
        }
        Decision::Unauthenticated => Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("a valid bearer token with {} is required\n", needed.name()),
            )
                .into_response(),
        ),
        Decision::Forbidden(name) => Some(
            (
                StatusCode::FORBIDDEN,
                match project {
                    Some(p) => format!("token `{name}` lacks {} in project {p}\n", needed.name()),
                    None => format!("token `{name}` lacks {}\n", needed.name()),
                },
            )
                .into_response(),
        ),
    }
}

#[derive(serde::Deserialize)]
struct LogsQuery {
    tail: Option<usize>,
}

async fn logs(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Path(target): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<LogsQuery>,
) -> Response {
    if let Some(r) = refuse(&s, &headers, Permission::LogsView) {
        return r;
    }
    let tail = q.tail.unwrap_or(100);
    if tail > MAX_TAIL {
        return (
            StatusCode::BAD_REQUEST,
            format!("tail={tail} is more than the {MAX_TAIL} lines a request may ask for\n  help: ask for fewer, or read the whole log with `berth logs` on the host\n"),
        )
            .into_response();
    }
    // Streamed as the engine sends it: a request holds one chunk at a time,
    // whatever the log's size.
    match (s.logs)(target, tail).await {
        Ok(lines) => {
            use futures_util::StreamExt;
            // What the engine has sent so far goes out as one piece (at most
            // 512 lines), not a frame per line.
            let body = axum::body::Body::from_stream(
                lines
                    .ready_chunks(512)
                    .map(|lines| Ok::<_, std::convert::Infallible>(lines.concat())),
            );
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    }
}

async fn reconcile(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&s, &headers, Permission::ServicesDeploy) {
        return r;
    }
    ask(&s, Ask::Reconcile).await
}

async fn build(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&s, &headers, Permission::ImagesBuild) {
        return r;
    }
    ask(&s, Ask::Build).await
}

#[derive(serde::Deserialize)]
struct RollbackQuery {
    to: Option<String>,
    #[serde(default)]
    release: bool,
}

async fn rollback(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Path(service): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<RollbackQuery>,
) -> Response {
    if let Some(r) = refuse(&s, &headers, Permission::ServicesDeploy) {
        return r;
    }
    ask(&s, |reply| Ask::Rollback {
        service,
        to: q.to,
        release: q.release,
        reply,
    })
    .await
}

/// Hands an ask to the daemon and waits for its answer; `None` when the
/// daemon is stopping. The API and the dashboard both ask through it.
pub async fn hand(
    s: &ApiState,
    what: impl FnOnce(ReconcileReply) -> Ask,
) -> Option<Result<String, AskFail>> {
    let (tx, rx) = oneshot::channel();
    s.asks.send(what(tx)).await.ok()?;
    rx.await.ok()
}

/// Hands a request to the daemon and answers with its outcome.
async fn ask(s: &ApiState, what: impl FnOnce(ReconcileReply) -> Ask) -> Response {
    match hand(s, what).await {
        Some(Ok(summary)) => (StatusCode::OK, format!("{summary}\n")).into_response(),
        Some(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response(),
    }
}
