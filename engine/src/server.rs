//! The engine process: start-up (lock, recovery, fresh segment), the RESP
//! listener and its connections, and shutdown.
//!
//! Shape of mini-redis: a listener accepting under a semaphore cap, one task
//! per connection, shutdown by a cancellation token and waiting for every
//! connection to finish; then the log writer drains what is queued and seals
//! the open segment.
//!
//! A connection parses every complete request in its buffer (pipelining)
//! and has the execution core ([`crate::exec`]) execute them in order
//! against the state; their replies are held, in order, until the log
//! position each may show is durable, while the connection goes on reading
//! and executing (a bounded number of replies may be held).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cmd::{ConnState, ServerInfo};
use crate::config::{Config, ConfigError};
use crate::db::Db;
use crate::exec::{Core, Held, Session};
use crate::layout;
use crate::metrics::Metrics;
use crate::recovery::{self, RecoveryError};
use crate::reply::Reply;
use crate::resp;
use crate::segment::{self, SegmentError, SegmentWriter, PREPARED_SEGMENT_NAME};
use crate::sys::{self, LockError};
use crate::writer::{self, Health, Log, LogQueue, SharedDb, Writer, WriterError};

/// Requests executed at once (under the state's lock) from one buffer.
const MAX_PIPELINE: usize = 1024;
/// Replies a connection holds (waiting for durability) before it stops
/// reading more requests.
const MAX_HELD: usize = 16 * MAX_PIPELINE;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create persistence dir {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another tiered-engine is already running on {dir} ({lock} is locked); refusing to start a second writer")]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Lock(LockError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("recovery failed: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("cannot prepare the command log: {0}")]
    Segment(#[from] SegmentError),
    #[error("the command log is poisoned, writes stopped: {0}")]
    Poisoned(WriterError),
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Recovery facts shown by INFO.
#[derive(Debug, Default, Clone)]
struct Recovered {
    snapshot_loaded: Option<PathBuf>,
    replayed: u64,
    recovery_ms: u64,
}

/// State shared by the connections, the writer and INFO.
pub struct Shared {
    /// The state; the log writer changes it, connections read it.
    pub db: SharedDb,
    pub metrics: Arc<Metrics>,
    /// What the log writer reports (durable position, segments, poison).
    pub health: Arc<Health>,
    /// Executes commands and queues their effects for the log writer.
    pub core: Core,
    recovered: Recovered,
    next_client: AtomicU64,
    started: Instant,
    dir: PathBuf,
    listen: SocketAddr,
    reserve_bytes: u64,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl ServerInfo for Shared {
    fn info(&self, section: &str, db: &Db, now_ms: u64) -> String {
        let all = matches!(section, "" | "all" | "everything" | "default");
        let st = &self.recovered;
        let (open_segment, last_sealed) = self.health.segments();
        let mut out = String::new();
        if all || section == "server" {
            out.push_str(&format!(
                "# Server\r\nredis_version:7.0.0\r\ntiered_engine_version:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                self.listen.port(),
                self.started.elapsed().as_secs()
            ));
        }
        if all || section == "clients" {
            out.push_str(&format!(
                "# Clients\r\nconnected_clients:{}\r\n\r\n",
                self.metrics.connected_clients.get()
            ));
        }
        if all || section == "persistence" {
            let free = sys::free_bytes(&self.dir)
                .map(|f| f.to_string())
                .unwrap_or_default();
            out.push_str(&format!(
                "# Persistence\r\nloading:0\r\naof_enabled:1\r\nappendfsync:always\r\npersistence_dir:{}\r\nlast_seq:{}\r\nopen_segment:{}\r\nlast_sealed_segment:{}\r\nlast_snapshot_loaded:{}\r\nrecovery_replayed_commands:{}\r\nrecovery_duration_ms:{}\r\nrotations:{}\r\nlogged_records:{}\r\nwrites_failed:{}\r\nwrites_failed_reason:{}\r\ndisk_free_bytes:{}\r\ndisk_reserve_bytes:{}\r\n\r\n",
                self.dir.display(),
                self.health.last_seq(),
                file_name(&open_segment),
                last_sealed.as_deref().map(file_name).unwrap_or_default(),
                st.snapshot_loaded.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()),
                st.replayed,
                st.recovery_ms,
                self.metrics.rotations.get(),
                self.metrics.logged_records.get(),
                self.health.is_poisoned() as u8,
                self.health.poison_cause().unwrap_or_default(),
                free,
                self.reserve_bytes,
            ));
        }
        if all || section == "keyspace" {
            out.push_str("# Keyspace\r\n");
            // keys held in memory, expired ones not yet purged included
            out.push_str(&format!("stored_keys:{}\r\n", db.len()));
            let keys = db.live_len(now_ms);
            if keys > 0 {
                let expires = db
                    .iter_unordered()
                    .filter(|(_, e)| e.expire_at_ms.is_some() && !e.is_expired(now_ms))
                    .count();
                out.push_str(&format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n"));
            }
            out.push_str("\r\n");
        }
        out
    }
}

/// A started engine: its addresses, and the task that runs until shutdown.
pub struct Running {
    /// The RESP listener's bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The metrics listener's bound address.
    pub metrics_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<Result<(), EngineError>>,
}

impl Running {
    /// Waits until the engine stops (shutdown or poisoned log).
    pub async fn wait(self) -> Result<(), EngineError> {
        self.task
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }
}

/// Runs the engine until `shutdown` is cancelled (clean: the open segment is
/// sealed) or the log is poisoned (an error).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), EngineError> {
    start(config, shutdown).await?.wait().await
}

/// Starts the engine: lock, listeners, recovery, a fresh segment; returns
/// once it accepts clients.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, EngineError> {
    config.validate()?;
    let dir = config.dir.clone();
    if !dir.is_dir() {
        // a dir the engine creates itself must survive a crash too
        let dir_err = |source| EngineError::Dir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(dir_err)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sys::fsync_dir(parent).map_err(dir_err)?;
        }
    }
    let lock_path = dir.join(layout::ENGINE_LOCK_FILE);
    let lock = match sys::lock_exclusive(&lock_path) {
        Ok(l) => l,
        Err(LockError::Held { .. }) => {
            return Err(EngineError::Locked {
                dir: dir.clone(),
                lock: lock_path,
            })
        }
        Err(e) => return Err(EngineError::Lock(e)),
    };

    let metrics = Arc::new(Metrics::new());
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| EngineError::Bind { addr, source })?;
        metrics_addr = l.local_addr().ok();
        tokio::spawn(crate::metrics::serve(l, metrics.clone(), shutdown.clone()));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| EngineError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| EngineError::Bind {
        addr: config.listen,
        source,
    })?;

    // Recovery, then seal what was open and open a fresh segment.
    let started = Instant::now();
    let (recovered, seg) = {
        let dir = dir.clone();
        let archive = config.archive_dir_name.clone();
        let mode = config.recovery_mode;
        let prealloc = if config.preallocate {
            config.rotate_bytes
        } else {
            0
        };
        tokio::task::spawn_blocking(move || -> Result<_, EngineError> {
            let stale = dir.join(PREPARED_SEGMENT_NAME);
            if stale.exists() {
                segment::remove_file_durably(&dir, &stale)?;
            }
            let r = recovery::recover(&dir, &archive, mode)?;
            for open in &r.open_segments {
                match open.last_seq {
                    Some(last) => {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open(&open.path)
                            .map_err(|source| SegmentError::Io {
                                path: open.path.clone(),
                                op: "open",
                                offset: 0,
                                source,
                            })?;
                        segment::seal_file(
                            &dir,
                            &open.path,
                            &f,
                            open.first_seq,
                            last,
                            open.valid_len,
                        )?;
                    }
                    None => segment::remove_file_durably(&dir, &open.path)?,
                }
            }
            let seg = SegmentWriter::create(&dir, r.last_seq + 1, prealloc)?;
            Ok((r, seg))
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??
    };
    let recovery_secs = started.elapsed().as_secs_f64();
    metrics.recovery_duration.set(recovery_secs);
    metrics.recovery_replayed.set(recovered.replayed as i64);
    metrics.open_segment_bytes.set(seg.len() as i64);
    tracing::info!(
        last_seq = recovered.last_seq,
        replayed = recovered.replayed,
        recovery_secs,
        open_segment = %seg.path().display(),
        "recovered"
    );

    let health = Arc::new(Health::new(
        metrics.clone(),
        recovered.last_seq,
        seg.path().to_path_buf(),
    ));
    let db: SharedDb = Arc::new(RwLock::new(recovered.db));
    let queue = Arc::new(LogQueue::new(
        recovered.last_seq + 1,
        recovered.last_timestamp_ms,
    ));
    let shared = Arc::new(Shared {
        db: db.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        core: Core::new(
            db,
            queue.clone(),
            health.clone(),
            dir.clone(),
            config.reserve_bytes,
        ),
        recovered: Recovered {
            snapshot_loaded: recovered.snapshot.clone(),
            replayed: recovered.replayed,
            recovery_ms: (recovery_secs * 1000.0) as u64,
        },
        next_client: AtomicU64::new(1),
        started: Instant::now(),
        dir: dir.clone(),
        listen: addr,
        reserve_bytes: config.reserve_bytes,
    });

    let prealloc = if config.preallocate {
        config.rotate_bytes
    } else {
        0
    };
    let log = Log::new(
        seg,
        dir.clone(),
        prealloc,
        config.rotate_bytes,
        config.rotate_interval,
        recovered.last_timestamp_ms,
    );
    let writer_stop = CancellationToken::new();
    let writer = tokio::spawn(writer::run(
        Writer {
            db: shared.db.clone(),
            queue,
            health,
            stop: writer_stop.clone(),
        },
        log,
    ));
    metrics.ready.set(1);
    tracing::info!(%addr, dir = %dir.display(), "accepting clients");

    let task = tokio::spawn(serve(
        listener,
        shared.clone(),
        writer_stop,
        writer,
        shutdown,
        config.max_clients,
        lock,
    ));
    Ok(Running {
        addr,
        metrics_addr,
        shared,
        task,
    })
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    writer_stop: CancellationToken,
    mut writer: tokio::task::JoinHandle<Result<(), WriterError>>,
    shutdown: CancellationToken,
    max_clients: usize,
    lock: sys::FileLock,
) -> Result<(), EngineError> {
    let limit = Arc::new(Semaphore::new(max_clients));
    let conn_shutdown = CancellationToken::new();
    let mut conns = JoinSet::new();
    let mut writer_done = None;
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.cancelled() => break,
            r = &mut writer => { writer_done = Some(r); break; }
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
            r = &mut writer => { writer_done = Some(r); break; }
        };
        while conns.try_join_next().is_some() {}
        let shared = shared.clone();
        let stop = conn_shutdown.clone();
        conns.spawn(async move {
            let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
            shared.metrics.connected_clients.inc();
            tracing::debug!(%peer, id, "client connected");
            if let Err(e) = connection(&shared, socket, stop, id).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            shared.metrics.connected_clients.dec();
            drop(permit);
        });
    }
    drop(listener);
    // Connections finish what they have read; then the writer drains.
    conn_shutdown.cancel();
    let grace = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            r = conns.join_next() => if r.is_none() { break },
            _ = &mut grace => {
                tracing::warn!("connections still busy after 10 s; closing them");
                conns.abort_all();
            }
        }
    }
    writer_stop.cancel();
    let result = match writer_done {
        Some(r) => r,
        None => writer.await,
    };
    let result = match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(EngineError::Poisoned(e)),
        Err(e) => Err(EngineError::Task(e.to_string())),
    };
    shared.metrics.ready.set(0);
    drop(lock);
    match &result {
        Ok(()) => tracing::info!("engine stopped cleanly"),
        Err(e) => tracing::error!(error = %e, "engine stopped"),
    }
    result
}

fn count(shared: &Shared, name: &'static str, reply: &Reply, out: &mut Vec<u8>) {
    shared
        .metrics
        .command(name, !matches!(reply, Reply::Error(_)));
    resp::encode_reply(reply, out);
}

/// Moves the held replies whose log position is durable to `out`, in
/// order. Once the log is poisoned, a reply whose position never became
/// durable gets the poison error instead.
fn release(
    shared: &Shared,
    held: &mut VecDeque<Held>,
    durable: writer::Durable,
    out: &mut Vec<u8>,
) {
    while let Some(h) = held.front() {
        if h.need > durable.seq && !durable.poisoned {
            break;
        }
        let h = held.pop_front().expect("front exists");
        if h.need > durable.seq {
            let err = Reply::Error(shared.health.poison_message());
            count(shared, h.name, &err, out);
        } else {
            count(shared, h.name, &h.reply, out);
        }
    }
}

async fn connection(
    shared: &Arc<Shared>,
    mut socket: TcpStream,
    stop: CancellationToken,
    id: u64,
) -> std::io::Result<()> {
    let mut session = Session::new(ConnState::new(id));
    let r = serve_connection(shared, &mut socket, stop, &mut session).await;
    shared.core.end_session(&mut session);
    r
}

async fn serve_connection(
    shared: &Arc<Shared>,
    socket: &mut TcpStream,
    stop: CancellationToken,
    session: &mut Session,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let mut durable = shared.health.subscribe();
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut held: VecDeque<Held> = VecDeque::new();
    // progress through a command that is not complete yet
    let mut partial = resp::Partial::default();
    // QUIT, a protocol error or shutdown: no more requests are read
    let mut closing = false;
    loop {
        // Execute what is buffered, a bounded batch at a time.
        while !closing && held.len() < MAX_HELD {
            let mut reqs = Vec::new();
            let mut protocol_error = None;
            while reqs.len() < MAX_PIPELINE {
                match resp::parse_command_resumable(&inbuf, &mut partial) {
                    Ok(Some((args, used))) => {
                        inbuf.advance(used);
                        if !args.is_empty() {
                            reqs.push(args);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        protocol_error = Some(Reply::Error(format!("ERR {e}")));
                        break;
                    }
                }
            }
            if reqs.is_empty() && protocol_error.is_none() {
                break;
            }
            if !reqs.is_empty()
                && shared
                    .core
                    .execute(session, reqs, shared.as_ref(), &mut held)
            {
                closing = true;
            }
            if let Some(e) = protocol_error {
                if !closing {
                    held.push_back(Held {
                        need: 0,
                        name: "unknown",
                        reply: e,
                    });
                }
                closing = true;
            }
        }
        let d = *durable.borrow_and_update();
        release(shared, &mut held, d, &mut out);
        if !out.is_empty() {
            socket.write_all(&out).await?;
            out.clear();
        }
        if closing && held.is_empty() {
            return Ok(());
        }
        if inbuf.capacity() - inbuf.len() < 4096 {
            inbuf.reserve(inbuf.len().max(16 * 1024));
        }
        let reading = !closing && held.len() < MAX_HELD;
        tokio::select! {
            r = socket.read_buf(&mut inbuf), if reading => {
                if r? == 0 {
                    closing = true;
                }
            }
            r = durable.changed(), if !held.is_empty() => {
                if r.is_err() {
                    // the writer is gone: nothing more becomes durable
                    let d = writer::Durable { seq: d.seq, poisoned: true };
                    release(shared, &mut held, d, &mut out);
                }
            }
            _ = stop.cancelled(), if reading => closing = true,
        }
    }
}
