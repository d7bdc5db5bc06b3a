//! Health probes: the service contract says `GET /` answers 2xx when healthy.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

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

/// `GET /` on 127.0.0.1:`port`: `Ok(status)` when an HTTP answer came back in time.
pub async fn get_root(port: u16, timeout: Duration) -> Result<u16, ProbeError> {
    let attempt = async {
        let req = hyper::Request::get("/")
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

/// healthy | unhealthy, by the contract.
pub async fn health(port: u16) -> &'static str {
    match get_root(port, Duration::from_secs(2)).await {
        Ok(s) if (200..300).contains(&s) => "healthy",
        _ => "unhealthy",
    }
}
