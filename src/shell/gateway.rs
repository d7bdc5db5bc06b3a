//! The routing gateway: an HTTP reverse proxy (axum + hyper) in front of the
//! services' loopback ports, following a [`RouteTable`] it is handed. Bodies
//! stream both ways; the matched prefix is stripped.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::core::route::RouteTable;

#[derive(Clone)]
struct Gateway {
    table: Arc<RwLock<RouteTable>>,
    client: Client<HttpConnector, Body>,
}

/// Serves the gateway on `addr` until `shutdown`; binds now, so a taken port is
/// an error at start.
pub async fn serve(
    addr: SocketAddr,
    table: Arc<RwLock<RouteTable>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, super::api::ApiError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| super::api::ApiError::ListenerBind { addr, source })?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let app = Router::new()
        .fallback(proxy)
        .with_state(Gateway { table, client });
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the gateway stopped");
        }
    }))
}

async fn proxy(State(g): State<Gateway>, mut req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some((port, prefix, rest)) = g.table.read().expect("no panics hold it").resolve(&path)
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no service is routed at {path}\n"),
        )
            .into_response();
    };
    let target = match req.uri().query() {
        Some(q) => format!("http://127.0.0.1:{port}{rest}?{q}"),
        None => format!("http://127.0.0.1:{port}{rest}"),
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return (StatusCode::BAD_REQUEST, "bad request path\n").into_response();
    };
    *req.uri_mut() = uri;
    if let Ok(v) = HeaderValue::from_str(&prefix) {
        req.headers_mut().insert("x-forwarded-prefix", v);
    }
    req.headers_mut().remove(header::HOST);
    match g.client.request(req).await {
        Ok(res) => res.map(Body::new).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("the service behind {path} did not answer: {e}\n"),
        )
            .into_response(),
    }
}
