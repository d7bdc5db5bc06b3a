//! Serving HTTP on a listener with bounds a flood cannot push past: at most
//! `max_connections` at once, plus [`RESERVE`] kept for callers that matter
//! (`/healthz` and authenticated requests, as the listener's [`Priority`]
//! says; anyone else there gets 503), the rest waiting in the kernel's
//! backlog; a connection that takes longer than [`HEADER_TIMEOUT`] to send a
//! request head is closed, and so is one idle for [`IDLE_TIMEOUT`] between
//! requests; a request body must arrive within `body_timeout` in all, with no
//! gap over [`BODY_GAP`], and stay within `max_body` bytes (408 and 413, the
//! connection closed). The file descriptors and memory a flood could take are
//! thereby bounded, and the ones reconciles, the engine and the API need stay free.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

/// A request head must arrive whole within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive connection with no request in flight is closed after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on open connections per listener (the CLI's `--max-connections`
/// default says the same number: the CLI does not import the shell).
pub const MAX_CONNECTIONS: usize = 1000;
/// Connections kept beyond the cap for the listener's [`Priority`] callers.
pub const RESERVE: usize = 32;
/// A reserved connection must send its head within this.
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// A request body may pause this long between two pieces, at most.
pub const BODY_GAP: Duration = Duration::from_secs(10);
/// The API's and the dashboard's bodies (forms, none bigger than a token).
pub const API_BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const API_MAX_BODY: u64 = 1024 * 1024;
/// What a body through the gateway may take: an upload to a service.
pub const GATEWAY_BODY_TIMEOUT: Duration = Duration::from_secs(600);
pub const GATEWAY_MAX_BODY: u64 = 1024 * 1024 * 1024;

/// How one listener is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// The whole body of one request must arrive within this.
    pub body_timeout: Duration,
    /// The largest body one request may send.
    pub max_body: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_timeout: API_BODY_TIMEOUT,
            max_body: API_MAX_BODY,
        }
    }
}

impl Bounds {
    /// The same bounds for a gateway: bodies as big and slow as an upload.
    pub fn for_gateway(self) -> Bounds {
        Bounds {
            body_timeout: GATEWAY_BODY_TIMEOUT,
            max_body: GATEWAY_MAX_BODY,
            ..self
        }
    }
}

/// Whether a request (its path and headers) may use a reserved connection:
/// `/healthz`, and callers that present a token berth knows.
pub type Priority = Arc<dyn Fn(&str, &axum::http::HeaderMap) -> bool + Send + Sync>;

/// How a connection was let in.
enum Slot {
    Normal(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit),
    Reserved(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit),
}

/// Serves `app` on `listener` until `shutdown`, within `bounds`. Each request
/// carries the client's address as [`ConnectInfo`]. Upgrades (WebSocket) are
/// handed to the app and leave the bounds once switched. When the cap is
/// full, up to [`RESERVE`] more connections are let in, for `priority` only.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    bounds: Bounds,
    priority: Priority,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(bounds.max_connections));
    let reserve = Arc::new(tokio::sync::Semaphore::new(RESERVE));
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            _ = &mut shutdown => return,
            p = slots.clone().acquire_owned() => Slot::Normal(p.expect("never closed")),
            p = reserve.clone().acquire_owned() => Slot::Reserved(p.expect("never closed")),
        };
        let (tcp, addr) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        // A slot that freed while this one waited for a connection is taken.
        let slot = match slot {
            Slot::Reserved(r) => match slots.clone().try_acquire_owned() {
                Ok(p) => Slot::Normal(p),
                Err(_) => Slot::Reserved(r),
            },
            normal => normal,
        };
        let _ = tcp.set_nodelay(true);
        let (app, priority) = (app.clone(), priority.clone());
        tokio::spawn(async move {
            let reserved = matches!(slot, Slot::Reserved(_));
            let _slot = slot;
            connection(tcp, addr, app, bounds, reserved.then_some(priority)).await;
        });
    }
}

/// What a request's body broke, if it broke a bound.
const BODY_OK: u8 = 0;
const BODY_SLOW: u8 = 1;
const BODY_BIG: u8 = 2;

/// A request body held to the listener's bounds: past its deadline, a gap
/// over [`BODY_GAP`] or `max_body` bytes, it ends with an error and says so
/// in `broke`, and the connection's answer becomes 408 or 413.
struct Bounded {
    inner: hyper::body::Incoming,
    read: u64,
    max: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    gap: Pin<Box<tokio::time::Sleep>>,
    broke: Arc<AtomicU8>,
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body did not arrive in time")]
    BodySlow,
    #[error("the request body is larger than {0} bytes")]
    BodyLarge(u64),
}

impl hyper::body::Body for Bounded {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.read += data.len() as u64;
                    if self.read > self.max {
                        self.broke.store(BODY_BIG, Ordering::SeqCst);
                        return Poll::Ready(Some(Err(BodyError::BodyLarge(self.max).into())));
                    }
                }
                let next = tokio::time::Instant::now() + BODY_GAP;
                self.gap.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let late = self.deadline.as_mut().poll(cx).is_ready()
                    || self.gap.as_mut().poll(cx).is_ready();
                if late {
                    self.broke.store(BODY_SLOW, Ordering::SeqCst);
                    return Poll::Ready(Some(Err(BodyError::BodySlow.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A short answer that closes the connection.
fn refusal(status: axum::http::StatusCode, text: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, [(axum::http::header::CONNECTION, "close")], text).into_response()
}

async fn connection(
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    app: Router,
    bounds: Bounds,
    reserved: Option<Priority>,
) {
    let started = Instant::now();
    // Milliseconds since `started` of the last activity, and requests in flight.
    let last = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let (l, b) = (last.clone(), busy.clone());
    let only = reserved.clone();
    let service = tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (app, l, b, only) = (app.clone(), l.clone(), b.clone(), only.clone());
        async move {
            b.fetch_add(1, Ordering::SeqCst);
            let answer = answer(req, addr, app, bounds, only).await;
            b.fetch_sub(1, Ordering::SeqCst);
            l.store(
                started.elapsed().as_millis().max(1) as u64,
                Ordering::SeqCst,
            );
            Ok::<_, std::convert::Infallible>(answer)
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    let header_timeout = match reserved {
        Some(_) => bounds.header_timeout.min(RESERVE_HEADER_TIMEOUT),
        None => bounds.header_timeout,
    };
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(reserved.is_none());
    let conn = http
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
        .with_upgrades();
    let mut conn = pin!(conn);
    let tick = (header_timeout.min(bounds.idle_timeout) / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(tick) => {
                let last = last.load(Ordering::SeqCst);
                let idle = started.elapsed().as_millis() as u64 - last;
                // Before its first request, a connection is still sending its
                // head: the header timeout applies from the moment it connected.
                let limit = match last {
                    0 => header_timeout,
                    _ => bounds.idle_timeout,
                };
                if busy.load(Ordering::SeqCst) == 0 && idle >= limit.as_millis() as u64 {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// One request answered within the bounds: a reserved connection serves only
/// its priority callers, a declared body over `max_body` is refused unread,
/// and a body that broke a bound while the app read it turns the answer into
/// 408 or 413.
async fn answer(
    mut req: hyper::Request<hyper::body::Incoming>,
    addr: SocketAddr,
    app: Router,
    bounds: Bounds,
    reserved: Option<Priority>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    if let Some(priority) = &reserved {
        if !priority(req.uri().path(), req.headers()) {
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections: try again later\n".into(),
            );
        }
    }
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > bounds.max_body) {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a request body may hold at most {} bytes\n",
                bounds.max_body
            ),
        );
    }
    req.extensions_mut().insert(ConnectInfo(addr));
    let broke = Arc::new(AtomicU8::new(BODY_OK));
    let now = tokio::time::Instant::now();
    let req = req.map(|inner| {
        axum::body::Body::new(Bounded {
            inner,
            read: 0,
            max: bounds.max_body,
            deadline: Box::pin(tokio::time::sleep_until(now + bounds.body_timeout)),
            gap: Box::pin(tokio::time::sleep_until(now + BODY_GAP)),
            broke: broke.clone(),
        })
    });
    let answer = match app.oneshot(req).await {
        Ok(a) => a,
        Err(never) => match never {},
    };
    match broke.load(Ordering::SeqCst) {
        BODY_SLOW => refusal(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s (or paused over {} s)\n",
                bounds.body_timeout.as_secs(),
                BODY_GAP.as_secs()
            ),
        ),
        BODY_BIG => refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a request body may hold at most {} bytes\n",
                bounds.max_body
            ),
        ),
        _ => answer,
    }
}

/// Raises this process's open-file limit to its hard limit, so the bounded
/// listeners and everything else have room; returns (soft, hard) after.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
}
