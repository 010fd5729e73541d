//! The HTTP side: hyper 1 on the plugin's unix socket (protocol and
//! `GET /metrics`) and, optionally, a TCP listener serving `/metrics` only.
//!
//! A connection is served by its own task; at most [`CONNECTIONS_MAX`] at
//! once. On shutdown the listeners stop, open connections finish their
//! request and close, and `serve` returns once every task has ended.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::driver::{Driver, DriverError};
use crate::metrics::{self, Metrics, Outcome};
use crate::protocol::{self, Endpoint, Request, Response};

/// Most connections served at once (per server).
pub const CONNECTIONS_MAX: usize = 256;
/// A client has this long to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
pub struct App {
    pub driver: Arc<Driver>,
    pub metrics: Metrics,
}

type HttpResponse = hyper::Response<Full<Bytes>>;

/// Serves until `shutdown` turns true, then drains the connections.
pub async fn serve(
    app: Arc<App>,
    unix: UnixListener,
    tcp: Option<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            r = unix.accept() => r.map(|(s, _)| (Conn::Unix(s), true)),
            r = accept_tcp(tcp.as_ref()) => r.map(|s| (Conn::Tcp(s), false)),
        };
        match accepted {
            Ok((conn, protocol)) => {
                let app = app.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    match conn {
                        Conn::Unix(s) => serve_conn(s, app, protocol, shutdown).await,
                        Conn::Tcp(s) => serve_conn(s, app, protocol, shutdown).await,
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Reap finished connections as we go.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Resolves once shutdown is requested (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept_tcp(tcp: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match tcp {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn serve_conn<S>(
    stream: S,
    app: Arc<App>,
    protocol: bool,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(app.clone(), req, protocol));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        content_type.parse().expect("static content type"),
    );
    r
}

fn respond_json(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    respond(status, protocol::CONTENT_TYPE, value.to_string())
}

async fn handle(
    app: Arc<App>,
    req: hyper::Request<Incoming>,
    protocol: bool,
) -> Result<HttpResponse, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/metrics" {
        if req.method() != Method::GET {
            return Ok(respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "use GET\n",
            ));
        }
        return Ok(render_metrics(app).await);
    }
    if !protocol {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "only /metrics here\n",
        ));
    }
    let Some(endpoint) = Endpoint::from_path(&path) else {
        tracing::warn!(path = %path, "unknown endpoint");
        return Ok(respond_json(
            StatusCode::NOT_FOUND,
            &protocol::error_json(&format!("unknown endpoint {path:?}")),
        ));
    };
    if req.method() != Method::POST {
        let msg = format!("{path} expects POST, not {}", req.method());
        tracing::warn!(endpoint = endpoint.label(), "{msg}");
        return Ok(respond_json(
            StatusCode::METHOD_NOT_ALLOWED,
            &protocol::error_json(&msg),
        ));
    }
    let start = Instant::now();
    let (status, body, outcome) = match Limited::new(req.into_body(), protocol::BODY_MAX_BYTES)
        .collect()
        .await
    {
        Err(e) => {
            let msg = format!(
                "cannot read request body (at most {} bytes): {e}",
                protocol::BODY_MAX_BYTES
            );
            tracing::warn!(endpoint = endpoint.label(), "{msg}");
            (
                StatusCode::BAD_REQUEST,
                protocol::error_json(&msg),
                Outcome::Error,
            )
        }
        Ok(collected) => answer(&app, endpoint, &collected.to_bytes()).await,
    };
    app.metrics
        .observe(endpoint, outcome, start.elapsed().as_secs_f64());
    Ok(respond_json(status, &body))
}

async fn answer(
    app: &Arc<App>,
    endpoint: Endpoint,
    body: &[u8],
) -> (StatusCode, serde_json::Value, Outcome) {
    let request = match protocol::parse_request(endpoint, body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(endpoint = endpoint.label(), error = %e, "bad request");
            return (
                StatusCode::BAD_REQUEST,
                protocol::error_json(&e.to_string()),
                Outcome::Error,
            );
        }
    };
    tracing::debug!(endpoint = endpoint.label(), request = ?request, "request");
    let volume = request.volume().unwrap_or("").to_owned();
    let driver = app.driver.clone();
    let result = tokio::task::spawn_blocking(move || execute(&driver, request)).await;
    match result {
        Ok(Ok(response)) => (StatusCode::OK, response.to_json(), Outcome::Ok),
        // The daemon asks Get before every Create: not an error of ours.
        Ok(Err(e @ DriverError::NotFound(_))) if endpoint == Endpoint::Get => {
            tracing::debug!(volume = %volume, "get: no such volume");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                protocol::error_json(&e.to_string()),
                Outcome::NotFound,
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(endpoint = endpoint.label(), volume = %volume, error = %e, "request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                protocol::error_json(&e.to_string()),
                Outcome::Error,
            )
        }
        Err(join) => {
            tracing::warn!(endpoint = endpoint.label(), volume = %volume, error = %join, "request task failed");
            let msg = format!("internal error: {join}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                protocol::error_json(&msg),
                Outcome::Error,
            )
        }
    }
}

/// Runs one request on the driver (blocking).
pub fn execute(driver: &Driver, request: Request) -> Result<Response, DriverError> {
    Ok(match request {
        Request::Activate => Response::Activate,
        Request::Capabilities => Response::Capabilities,
        Request::Create { name, options } => {
            driver.create(&name, options)?;
            Response::Empty
        }
        Request::Remove { name } => {
            driver.remove(&name)?;
            Response::Empty
        }
        Request::Mount { name, id } => {
            Response::Mountpoint(driver.mount(&name, &id)?.display().to_string())
        }
        Request::Unmount { name, id } => {
            driver.unmount(&name, &id)?;
            Response::Empty
        }
        Request::Path { name } => Response::Mountpoint(driver.path(&name)?),
        Request::Get { name } => Response::Volume(driver.get(&name)?),
        Request::List => Response::Volumes(driver.list()),
    })
}

async fn render_metrics(app: Arc<App>) -> HttpResponse {
    let driver = app.driver.clone();
    let sampled = tokio::task::spawn_blocking(move || {
        let tiers = driver.tier_usage();
        if let Err(e) = &tiers {
            tracing::warn!(error = %e, "statvfs of the tiers failed");
        }
        (driver.counts(), tiers.ok(), driver.quota_samples())
    })
    .await;
    match sampled {
        Ok((counts, tiers, quotas)) => respond(StatusCode::OK, metrics::CONTENT_TYPE, {
            app.metrics.set_quotas(&quotas);
            app.metrics.render(counts, tiers)
        }),
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("metrics unavailable: {e}\n"),
        ),
    }
}
