//! The routing gateway: an HTTP reverse proxy (axum + hyper) in front of the
//! services (at their own addresses where this process reaches them, else at
//! their loopback ports), following a [`RouteTable`] it is handed. Bodies
//! stream both ways, WebSocket (any `Upgrade`) connections are passed through,
//! the matched prefix is stripped, and private services need a token.
//!
//! It counts the requests in flight per backend port, and serves a control
//! endpoint on its own loopback port: `POST /drain` refreshes the routes at once
//! and answers when nothing is in flight to the given port any more. That is how
//! a replace switches traffic and drains the old container before stopping it,
//! whether the gateway runs in the applying process or in another one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::core::access::Tokens;
use crate::core::route::{self, Admission, RouteTable};

use super::forward;

/// Produces fresh routes (from the spec and the engine), looking again at
/// what [`Look`] says; `None` keeps the old ones.
pub type Refresh =
    Arc<dyn Fn(Look) -> Pin<Box<dyn Future<Output = Option<RouteTable>> + Send>> + Send + Sync>;

/// What a refresh looks at again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Look {
    /// Everything the routes come from: containers and the routes record.
    #[default]
    All,
    /// Only the routes record (a switch, which moves no container and no
    /// address a gateway routes to); the containers as last seen.
    Record,
}

/// How long a service may take to start answering (its headers); the body then
/// streams for as long as it takes.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests in flight per backend port.
#[derive(Default)]
struct InFlight(Mutex<HashMap<u16, usize>>);

impl InFlight {
    fn enter(self: &Arc<Self>, port: u16) -> Guard {
        *self
            .0
            .lock()
            .expect("no panics hold it")
            .entry(port)
            .or_default() += 1;
        Guard {
            port,
            counts: self.clone(),
        }
    }

    fn count(&self, port: u16) -> usize {
        self.0
            .lock()
            .expect("no panics hold it")
            .get(&port)
            .copied()
            .unwrap_or(0)
    }
}

/// One request in flight; it ends when the response body is done or dropped.
struct Guard {
    port: u16,
    counts: Arc<InFlight>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut m = self.counts.0.lock().expect("no panics hold it");
        if let Some(n) = m.get_mut(&self.port) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.port);
            }
        }
    }
}

/// What the gateway shares with whoever runs it.
#[derive(Clone)]
pub struct GatewayState {
    pub table: Arc<RwLock<RouteTable>>,
    pub tokens: Arc<Tokens>,
    pub refresh: Refresh,
}

#[derive(Clone)]
struct Gateway {
    state: GatewayState,
    inflight: Arc<InFlight>,
    client: Client<HttpConnector, Body>,
    /// Round-robin over a swarm route's tasks.
    next: Arc<std::sync::atomic::AtomicUsize>,
}

/// A gateway that runs: its control address (for [`drain`]) and its task.
pub struct Running {
    pub control: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Serves the gateway on `addr` and its control endpoint on a free loopback port
/// until `shutdown`; binds now, so a taken port is an error at start.
pub async fn serve(
    addr: SocketAddr,
    state: GatewayState,
    bounds: super::listen::Bounds,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, super::api::ApiError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| super::api::ApiError::ListenerBind { addr, source })?;
    let control_addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let control = tokio::net::TcpListener::bind(control_addr)
        .await
        .map_err(|source| super::api::ApiError::ListenerBind {
            addr: control_addr,
            source,
        })?;
    let control_addr =
        control
            .local_addr()
            .map_err(|source| super::api::ApiError::ListenerBind {
                addr: control_addr,
                source,
            })?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let g = Gateway {
        state,
        inflight: Default::default(),
        client,
        next: Default::default(),
    };
    // A reserved connection (the cap is full) serves callers with a known token.
    let tokens = g.state.tokens.clone();
    let priority: super::listen::Priority = Arc::new(move |_path, headers| {
        forward::presented(headers).is_some_and(|t| tokens.knows(&t))
    });
    let app = Router::new().fallback(proxy).with_state(g.clone());
    let control_app = Router::new()
        .route("/drain", post(drain_handler))
        .with_state(g);
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    // The control listener is bounded like every other (loopback only, and
    // no caller there needs the reserve).
    let nobody: super::listen::Priority = Arc::new(|_, _| false);
    tokio::spawn(super::listen::serve(
        control,
        control_app,
        super::listen::Bounds::default(),
        nobody,
        async {
            let _ = control_stopped.await;
        },
    ));
    let task = tokio::spawn(async move {
        super::listen::serve(listener, app, bounds.for_gateway(), priority, shutdown).await;
        let _ = stop_control.send(());
    });
    Ok(Running {
        control: control_addr,
        task,
    })
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, text).into_response()
}

async fn proxy(
    State(g): State<Gateway>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let path = req.uri().path().to_string();
    // Resolved and counted under the table's lock: a drain that swaps the table
    // then waits sees every request that was sent to the old port.
    let token = forward::presented(req.headers());
    let admitted = {
        let table = g.state.table.read().expect("no panics hold it");
        match route::admit(&table, &g.state.tokens, &path, token.as_deref()) {
            Admission::Forward { to } => Ok((
                backends(to.route, &g.next),
                to.prefix.to_string(),
                to.rest,
                g.inflight.enter(to.route.port),
            )),
            Admission::DotSegment => Err(plain(
                StatusCode::BAD_REQUEST,
                "a request path may not hold `.` or `..` segments\n".into(),
            )),
            Admission::Unauthenticated => Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "authentication required: send `Authorization: Bearer <token>` with a token that has services:view\n",
            )
                .into_response()),
            Admission::Forbidden { token, route } => Err(plain(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{token}` lacks services:view, which {}@{} needs\n",
                    route.service, route.version
                ),
            )),
            Admission::NotFound => Err(plain(
                StatusCode::NOT_FOUND,
                format!("no service is routed at {path}\n"),
            )),
        }
    };
    let (backends, prefix, rest, guard) = match admitted {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    forward::scrub_credentials(&g.state.tokens, req.headers_mut());
    let query = req.uri().query().map(String::from);
    let target = |backend: &str| -> Option<Uri> {
        match &query {
            Some(q) => format!("http://{backend}{rest}?{q}"),
            None => format!("http://{backend}{rest}"),
        }
        .parse()
        .ok()
    };
    let Some(uri) = target(&backends[0]) else {
        return plain(StatusCode::BAD_REQUEST, "bad request path\n".into());
    };
    *req.uri_mut() = uri;
    let upgrading = req.headers().contains_key(header::UPGRADE);
    forward::request(req.headers_mut(), Some(client), &prefix, upgrading);
    let upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    // A request without a body that changes nothing (GET, HEAD, OPTIONS) can
    // be sent again: to the next task of a swarm service when one stops
    // under it (an update, a drained node).
    let again = (backends.len() > 1
        && !upgrading
        && [Method::GET, Method::HEAD, Method::OPTIONS].contains(req.method())
        && hyper::body::Body::size_hint(req.body()).exact() == Some(0))
    .then(|| (req.method().clone(), req.version(), req.headers().clone()));
    let answer = match tokio::time::timeout(ANSWER_TIMEOUT, async {
        let mut answer = g.client.request(req).await;
        if let Some((method, version, headers)) = &again {
            for backend in &backends[1..] {
                if answer.is_ok() {
                    break;
                }
                let Some(uri) = target(backend) else { break };
                let mut retry = Request::new(Body::empty());
                *retry.method_mut() = method.clone();
                *retry.version_mut() = *version;
                *retry.headers_mut() = headers.clone();
                *retry.uri_mut() = uri;
                answer = g.client.request(retry).await;
            }
        }
        answer
    })
    .await
    {
        Ok(a) => a,
        Err(_) => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the service behind {path} sent no answer within {} s\n",
                    ANSWER_TIMEOUT.as_secs()
                ),
            )
        }
    };
    match answer {
        Ok(mut res) if res.status() == StatusCode::SWITCHING_PROTOCOLS => {
            // A WebSocket (or other upgrade): once both sides have switched, the
            // two connections are spliced, and the request counts as in flight
            // until either side closes.
            forward::response(res.headers_mut(), &prefix, true);
            forward::refuse_berth_cookies(&g.state.tokens, res.headers_mut());
            let theirs = hyper::upgrade::on(&mut res);
            if let Some(ours) = upgrade {
                tokio::spawn(async move {
                    let _guard = guard;
                    let (Ok(ours), Ok(theirs)) = (ours.await, theirs.await) else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(ours),
                        &mut TokioIo::new(theirs),
                    )
                    .await;
                });
            }
            res.map(|_| Body::empty()).into_response()
        }
        Ok(mut res) => {
            forward::response(res.headers_mut(), &prefix, false);
            forward::refuse_berth_cookies(&g.state.tokens, res.headers_mut());
            res.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &guard;
                    frame
                }))
            })
            .into_response()
        }
        Err(e) => plain(
            StatusCode::BAD_GATEWAY,
            format!("the service behind {path} did not answer: {e}\n"),
        ),
    }
}

/// The addresses to try, in order: on one host the container's own address
/// (when this process reaches it, see [`reach_directly`]), then its loopback
/// port; a swarm route's tasks starting from the next in turn.
fn backends(route: &route::Route, next: &std::sync::atomic::AtomicUsize) -> Vec<String> {
    let remote = &route.backends;
    if remote.is_empty() {
        let loopback = format!("127.0.0.1:{}", route.port);
        return route.direct.iter().cloned().chain([loopback]).collect();
    }
    let first = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % remote.len();
    remote[first..]
        .iter()
        .chain(&remote[..first])
        .cloned()
        .collect()
}

/// Whether this process reaches containers at their own addresses: decided
/// once, by the first connect to one. It does on a Linux host; it does not
/// when the engine's networks live in another network namespace (rootless
/// Docker, a remote engine), where only the published port leads there. A
/// refused connect still reached the container's network.
static DIRECT: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();

/// Drops the routes' own addresses when this process cannot reach them, so
/// every request (a POST too) goes where it can arrive.
pub async fn reach_directly(table: &mut RouteTable) {
    let Some(addr) = table.routes.values().find_map(|r| r.direct.clone()) else {
        return;
    };
    let reached = *DIRECT
        .get_or_init(|| async move {
            let connect = tokio::net::TcpStream::connect(addr.as_str());
            match tokio::time::timeout(Duration::from_secs(1), connect).await {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                Err(_) => false,
            }
        })
        .await;
    if !reached {
        tracing::info!("containers are not reachable at their own addresses from here; routing through their published ports");
        for r in table.routes.values_mut() {
            r.direct = None;
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DrainRequest {
    /// The backend port traffic leaves.
    port: u16,
    /// How long to wait for its requests to finish.
    timeout_ms: u64,
    /// What changed (a request from an older berth says nothing: all of it).
    #[serde(default)]
    look: Look,
}

/// Refreshes the routes, then waits until nothing is in flight to `port` (or the
/// timeout); answers how many requests were still in flight at the end.
async fn drain_handler(
    State(g): State<Gateway>,
    axum::Json(d): axum::Json<DrainRequest>,
) -> Response {
    use tracing::Instrument;
    let span = tracing::info_span!(target: "berth::timing", "refresh", look = ?d.look);
    if let Some(t) = (g.state.refresh)(d.look).instrument(span).await {
        *g.state.table.write().expect("no panics hold it") = t;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(d.timeout_ms);
    while g.inflight.count(d.port) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    axum::Json(serde_json::json!({ "in_flight": g.inflight.count(d.port) })).into_response()
}

/// Asks the gateway at `control` to switch its routes and drain `port`; `Ok` with
/// the requests left in flight when it answered.
pub async fn drain(
    control: SocketAddr,
    port: u16,
    timeout: Duration,
    look: Look,
) -> Result<u64, crate::shell::probe::ProbeError> {
    use crate::shell::probe::ProbeError;
    let body = serde_json::to_vec(&DrainRequest {
        port,
        timeout_ms: timeout.as_millis() as u64,
        look,
    })
    .expect("a drain request serializes");
    let attempt = async {
        let req = hyper::Request::post("/drain")
            .header(header::HOST, control.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(ProbeError::RequestBuild)?;
        let res = crate::shell::probe::send(control, req).await?;
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(ProbeError::AnswerRead)?
            .to_bytes();
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(ProbeError::AnswerParse)?;
        Ok(v["in_flight"].as_u64().unwrap_or(0))
    };
    tokio::time::timeout(timeout + Duration::from_secs(5), attempt)
        .await
        .map_err(|_| ProbeError::ProbeTimeout)?
}
