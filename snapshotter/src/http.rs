//! The small HTTP listener for `GET /metrics` and `GET /healthz` (hyper 1,
//! HTTP/1.1 only), with a cap on concurrent connections and a header timeout,
//! stopped by the daemon's shutdown signal.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// Concurrent connections served; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("metrics listener on {addr}: {source}")]
pub struct BindError {
    /// The requested address.
    pub addr: SocketAddr,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` (so that a bad address fails at start, before any work).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves until `shutdown` turns true, then drops open connections.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("metrics accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(route(&req, &metrics)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "metrics connection: {e}");
            }
        });
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
}

/// Resolves once `rx` holds `true` (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn route(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&Method::GET, "/healthz") => match metrics.health() {
            Ok(()) => (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "ok\n".to_string(),
            ),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("{e}\n"),
            ),
        },
        (_, "/metrics") | (_, "/healthz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// The client side, for `tiered-snapshotter health` (a container health
/// check: FROM-scratch images have no shell or curl): `GET /healthz` on the
/// listener at `addr` over plain HTTP/1.0 (the server closes the connection
/// after the reply). `Ok` on a 200, otherwise what went wrong (the body
/// names the failed step). Reads at most 4 KiB of the reply.
pub fn check_health(addr: SocketAddr, timeout: Duration) -> Result<(), HealthError> {
    use std::io::{Read, Write};
    let io = |op: &'static str| move |source| HealthError::Io { addr, op, source };
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(io("connect to"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(io("set timeouts on"))?;
    stream
        .write_all(format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(io("send to"))?;
    let mut reply = Vec::new();
    stream
        .take(4096)
        .read_to_end(&mut reply)
        .map_err(io("read from"))?;
    let reply = String::from_utf8_lossy(&reply);
    let status_line = reply.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        return Ok(());
    }
    Err(HealthError::Unhealthy {
        addr,
        status_line: status_line.to_string(),
        body: reply
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string(),
    })
}

/// Why `tiered-snapshotter health` failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The listener could not be reached or read.
    #[error("cannot {op} {addr}: {source}")]
    Io {
        /// The address asked.
        addr: SocketAddr,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It answered, but not 200.
    #[error("http://{addr}/healthz answered {status_line:?}: {body:?}")]
    Unhealthy {
        /// The address asked.
        addr: SocketAddr,
        /// The reply's status line.
        status_line: String,
        /// The reply's body (the failed step).
        body: String,
    },
}
