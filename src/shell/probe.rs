//! Health probes: the service contract says `GET /` answers 2xx when healthy.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// One HTTP/1.1 request on a fresh connection to `addr` (no pool: a probe must
/// see the service as a new client does). Errors are said in words.
pub async fn send<B>(
    addr: std::net::SocketAddr,
    req: hyper::Request<B>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// `GET /` on 127.0.0.1:`port`: `Ok(status)` when an HTTP answer came back in time.
pub async fn get_root(port: u16, timeout: Duration) -> Result<u16, String> {
    let attempt = async {
        let req = hyper::Request::get("/")
            .header("host", format!("127.0.0.1:{port}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let res = send(([127, 0, 0, 1], port).into(), req).await?;
        Ok(res.status().as_u16())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// healthy | unhealthy, by the contract.
pub async fn health(port: u16) -> &'static str {
    match get_root(port, Duration::from_secs(2)).await {
        Ok(s) if (200..300).contains(&s) => "healthy",
        _ => "unhealthy",
    }
}
