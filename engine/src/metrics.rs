//! Prometheus metrics of the engine (names fixed in the project's
//! metrics contract) and the small HTTP listener serving `/metrics` and
//! `/healthz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Labels of `tiered_engine_commands_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: &'static str,
    pub outcome: &'static str,
}

/// Every engine metric.
pub struct Metrics {
    pub registry: Registry,
    /// (ok, error) counters of every known command, created up front so the
    /// hot path does not lock the family.
    command_counters: rustc_hash::FxHashMap<&'static str, (Counter, Counter)>,
    pub commands: Family<CommandLabels, Counter>,
    pub logged_records: Counter,
    pub logged_bytes: Counter,
    pub fsync_duration: Histogram,
    pub batch_size: Histogram,
    pub rotations: Counter,
    pub sequence_number: Gauge,
    pub open_segment_bytes: Gauge,
    pub connected_clients: Gauge,
    pub recovery_duration: Gauge<f64, AtomicU64>,
    pub recovery_replayed: Gauge,
    pub healed_files: Counter,
    pub ready: Gauge,
    pub writes_failed: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let commands = Family::<CommandLabels, Counter>::default();
        let logged_records = Counter::default();
        let logged_bytes = Counter::default();
        let fsync_duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let rotations = Counter::default();
        let sequence_number = Gauge::default();
        let open_segment_bytes = Gauge::default();
        let connected_clients = Gauge::default();
        let recovery_duration = Gauge::<f64, AtomicU64>::default();
        let recovery_replayed = Gauge::default();
        let healed_files = Counter::default();
        let ready = Gauge::default();
        let writes_failed = Gauge::default();
        registry.register(
            "tiered_engine_commands",
            "Commands served, by name and outcome",
            commands.clone(),
        );
        registry.register(
            "tiered_engine_logged_records",
            "Records written to the command log",
            logged_records.clone(),
        );
        registry.register(
            "tiered_engine_logged_bytes",
            "Bytes written to the command log",
            logged_bytes.clone(),
        );
        registry.register(
            "tiered_engine_fsync_duration_seconds",
            "Duration of each group-commit fdatasync",
            fsync_duration.clone(),
        );
        registry.register(
            "tiered_engine_group_commit_batch_size",
            "Records made durable by one fdatasync",
            batch_size.clone(),
        );
        registry.register(
            "tiered_engine_rotations",
            "Command-log segments sealed",
            rotations.clone(),
        );
        registry.register(
            "tiered_engine_sequence_number",
            "Last durable sequence number",
            sequence_number.clone(),
        );
        registry.register(
            "tiered_engine_open_segment_bytes",
            "Bytes of header and records in the open segment",
            open_segment_bytes.clone(),
        );
        registry.register(
            "tiered_engine_connected_clients",
            "Connected RESP clients",
            connected_clients.clone(),
        );
        registry.register(
            "tiered_engine_recovery_duration_seconds",
            "Duration of the recovery at start",
            recovery_duration.clone(),
        );
        registry.register(
            "tiered_engine_recovery_replayed_commands",
            "Commands replayed from the logs at start",
            recovery_replayed.clone(),
        );
        registry.register(
            "tiered_engine_healed_files",
            "Damaged sealed segments and snapshots on the primary tier replaced by their verified archived copy at start",
            healed_files.clone(),
        );
        registry.register(
            "tiered_engine_ready",
            "1 once recovery is done and writes are accepted",
            ready.clone(),
        );
        registry.register(
            "tiered_engine_writes_failed",
            "1 once the command log is poisoned by a write or fsync error",
            writes_failed.clone(),
        );
        let command_counters = crate::cmd::command_names()
            .chain(["unknown"])
            .map(|command| {
                let get = |outcome| {
                    commands
                        .get_or_create(&CommandLabels { command, outcome })
                        .clone()
                };
                (command, (get("ok"), get("error")))
            })
            .collect();
        Metrics {
            registry,
            command_counters,
            commands,
            logged_records,
            logged_bytes,
            fsync_duration,
            batch_size,
            rotations,
            sequence_number,
            open_segment_bytes,
            connected_clients,
            recovery_duration,
            recovery_replayed,
            healed_files,
            ready,
            writes_failed,
        }
    }

    /// Counts one served command.
    pub fn command(&self, command: &'static str, ok: bool) {
        match self.command_counters.get(command) {
            Some((o, e)) => {
                if ok { o } else { e }.inc();
            }
            None => {
                self.commands
                    .get_or_create(&CommandLabels {
                        command,
                        outcome: if ok { "ok" } else { "error" },
                    })
                    .inc();
            }
        }
    }

    /// (command, ok replies, error replies) of every known command, for
    /// INFO commandstats.
    pub fn command_counts(&self) -> Vec<(&'static str, u64, u64)> {
        let mut v: Vec<_> = self
            .command_counters
            .iter()
            .map(|(n, (o, e))| (*n, o.get(), e.get()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// True when `/healthz` should answer 200.
    pub fn is_healthy(&self) -> bool {
        self.ready.get() == 1 && self.writes_failed.get() == 0
    }
}

fn respond(metrics: &Metrics, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&hyper::Method::GET, "/healthz") if metrics.is_healthy() => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        (&hyper::Method::GET, "/healthz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            if metrics.writes_failed.get() == 1 {
                "writes failed\n".to_string()
            } else {
                "recovering\n".to_string()
            },
        ),
        (_, "/metrics" | "/healthz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// Concurrent connections to the metrics listener.
const MAX_HTTP_CONNECTIONS: usize = 64;

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`. Slow
/// clients are cut after 10 s without a complete request header.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "metrics listener ready");
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.cancelled() => return,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let resp = respond(&metrics, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "metrics connection"); },
                _ = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
}
