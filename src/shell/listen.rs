//! Serving HTTP on a listener with bounds a flood cannot push past: at most
//! `max_connections` at once (the rest wait in the kernel's backlog), a
//! connection that takes longer than [`HEADER_TIMEOUT`] to send a request head
//! is closed, and so is one idle for [`IDLE_TIMEOUT`] between requests. The file
//! descriptors a flood could take are thereby bounded, and the ones reconciles,
//! the engine and the API need stay free.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// How one listener is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, within `bounds`. Each request
/// carries the client's address as [`ConnectInfo`]. Upgrades (WebSocket) are
/// handed to the app and leave the bounds once switched.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    bounds: Bounds,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(bounds.max_connections));
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("never closed"),
            _ = &mut shutdown => return,
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
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(tcp, addr, app, bounds).await;
        });
    }
}

async fn connection(tcp: tokio::net::TcpStream, addr: SocketAddr, app: Router, bounds: Bounds) {
    let started = Instant::now();
    // Milliseconds since `started` of the last activity, and requests in flight.
    let last = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let (l, b) = (last.clone(), busy.clone());
    let service = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let (app, l, b) = (app.clone(), l.clone(), b.clone());
        async move {
            b.fetch_add(1, Ordering::SeqCst);
            req.extensions_mut().insert(ConnectInfo(addr));
            let answer = app.oneshot(req.map(axum::body::Body::new)).await;
            b.fetch_sub(1, Ordering::SeqCst);
            l.store(
                started.elapsed().as_millis().max(1) as u64,
                Ordering::SeqCst,
            );
            answer
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.header_timeout)
        .keep_alive(true);
    let conn = http
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
        .with_upgrades();
    let mut conn = pin!(conn);
    let tick = (bounds.header_timeout.min(bounds.idle_timeout) / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(tick) => {
                let last = last.load(Ordering::SeqCst);
                let idle = started.elapsed().as_millis() as u64 - last;
                // Before its first request, a connection is still sending its
                // head: the header timeout applies from the moment it connected.
                let limit = match last {
                    0 => bounds.header_timeout,
                    _ => bounds.idle_timeout,
                };
                if busy.load(Ordering::SeqCst) == 0 && idle >= limit.as_millis() as u64 {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Raises this process's open-file limit to its hard limit, so the bounded
/// listeners and everything else have room; returns (soft, hard) after.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
}
