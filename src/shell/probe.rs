//! Health probes: by default the service contract says `GET /` answers 2xx or
//! 3xx when healthy; a service may declare another path, a TCP connect, or none.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::core::spec::HealthCheck;

/// Why an HTTP exchange with a service or a gateway gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect: {0}")]
    ProbeConnect(#[source] std::io::Error),
    #[error("{0}")]
    ProbeSend(#[source] hyper::Error),
    #[error("cannot make the request: {0}")]
    RequestBuild(#[source] hyper::http::Error),
    #[error("cannot read the answer: {0}")]
    AnswerRead(#[source] hyper::Error),
    #[error("the answer is not what was expected: {0}")]
    AnswerParse(#[source] serde_json::Error),
    #[error("timed out")]
    ProbeTimeout,
}

/// One HTTP/1.1 request on a fresh connection to `addr` (no pool: a probe must
/// see the service as a new client does).
pub async fn send<B>(
    addr: std::net::SocketAddr,
    req: hyper::Request<B>,
) -> Result<hyper::Response<hyper::body::Incoming>, ProbeError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(ProbeError::ProbeConnect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ProbeError::ProbeSend)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(ProbeError::ProbeSend)
}

/// `GET <path>` on 127.0.0.1:`port`: `Ok(status)` when an HTTP answer came back in time.
pub async fn get(port: u16, path: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let attempt = async {
        let req = hyper::Request::get(path)
            .header("host", format!("127.0.0.1:{port}"))
            .body(Empty::<Bytes>::new())
            .map_err(ProbeError::RequestBuild)?;
        let res = send(([127, 0, 0, 1], port).into(), req).await?;
        Ok(res.status().as_u16())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ProbeError::ProbeTimeout)?
}

/// What one try of a health check saw instead of a healthy service; its
/// words go into the gate's progress and failure lines.
#[derive(Debug, thiserror::Error)]
pub enum CheckFail {
    #[error("nothing accepts connections on the port: {0}")]
    PortClosed(#[source] std::io::Error),
    #[error("a TCP connection timed out")]
    ConnectTimeout,
    #[error("GET {path} answered {status}")]
    AnswerStatus { path: String, status: u16 },
    #[error("GET {path} failed: {source}")]
    AnswerMissing { path: String, source: ProbeError },
}

/// One try of a container's health check on 127.0.0.1:`port`: `Err` says what
/// was seen instead.
pub async fn check(port: u16, check: &HealthCheck, timeout: Duration) -> Result<(), CheckFail> {
    match check {
        // A command is Swarm's to run in its tasks; one engine never has one.
        HealthCheck::None | HealthCheck::Command { .. } => Ok(()),
        HealthCheck::Tcp => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(("127.0.0.1", port)))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(CheckFail::PortClosed(e)),
                Err(_) => Err(CheckFail::ConnectTimeout),
            }
        }
        HealthCheck::Http { path } => match get(port, path, timeout).await {
            Ok(status) if (200..400).contains(&status) => Ok(()),
            Ok(status) => Err(CheckFail::AnswerStatus {
                path: path.clone(),
                status,
            }),
            Err(source) => Err(CheckFail::AnswerMissing {
                path: path.clone(),
                source,
            }),
        },
    }
}

/// healthy | unhealthy, by the container's declared check.
pub async fn health(port: u16, declared: &HealthCheck) -> &'static str {
    match check(port, declared, Duration::from_secs(2)).await {
        Ok(()) => "healthy",
        Err(_) => "unhealthy",
    }
}
