//! The daemon's HTTP API (axum): `GET /status`, `GET /metrics`, `POST /reconcile`
//! (bearer token, compared in constant time), `GET /healthz`.
//!
//! It knows nothing of the daemon: it serves the snapshots it is handed and
//! forwards reconcile requests on a channel.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

/// What a reconcile asked for over the API answered: Ok(summary) or Err(error).
pub type ReconcileReply = oneshot::Sender<Result<String, String>>;

#[derive(Clone)]
pub struct ApiState {
    /// The `/status` document.
    pub status: Arc<RwLock<serde_json::Value>>,
    /// The `/metrics` text.
    pub metrics: Arc<RwLock<String>>,
    pub reconcile: mpsc::Sender<ReconcileReply>,
    /// `None`: POST /reconcile is refused, since no token was configured.
    pub token: Option<Arc<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {source}\n  help: pick a free address with --listen, for example 127.0.0.1:7700")]
    ListenerBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reconcile", post(reconcile))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Binds now (so a taken port is an error at start), serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, ApiError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::ListenerBind { addr, source })?;
    let app = router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the API server stopped");
        }
    }))
}

async fn status(State(s): State<ApiState>) -> Response {
    let doc = s.status.read().expect("no panics hold it").clone();
    axum::Json(doc).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let text = s.metrics.read().expect("no panics hold it").clone();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Whether the request carries the configured bearer token.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else {
        return false;
    };
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn reconcile(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(token) = &s.token else {
        return (StatusCode::FORBIDDEN, "reconcile over the API is disabled: start the daemon with BERTH_TOKEN or --token-file\n").into_response();
    };
    if !authorized(&headers, token) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    let (tx, rx) = oneshot::channel();
    if s.reconcile.send(tx).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response();
    }
    match rx.await {
        Ok(Ok(summary)) => (StatusCode::OK, format!("{summary}\n")).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response(),
    }
}
