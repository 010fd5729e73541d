//! The log writer: group commit, rotation, poisoning.
//!
//! One task owns the open segment. It takes every write request queued by
//! all connections (up to [`MAX_BATCH`]), frames them as consecutive records,
//! writes them with one `write` and makes them durable with one `fdatasync`,
//! and only then applies them to the state (in order) and answers each
//! client. Reads are served from the state, so they never see a command whose
//! record is not durable.
//!
//! A failed write or fdatasync (EIO, ENOSPC, a short write) poisons the log:
//! the page cache can no longer be trusted, so the batch is answered with an
//! error, no later write is accepted, and the engine shuts down with a
//! non-zero exit. Below the free-space reserve, writes are refused with a
//! clear error before anything is written (not poisoned: it clears when
//! space is freed).
//!
//! A panic in the writer task poisons the log the same way (its cause is
//! logged and shown to clients): the writer catches it, so nothing queued is
//! left waiting.
//!
//! Segments are sealed when they reach `rotate_bytes`, when a non-empty one
//! is older than `rotate_interval`, and at clean shutdown. The next segment
//! file is created and preallocated in the background, off the write path.
//!
//! The writer knows nothing of the server: it changes the state it is given
//! ([`SharedDb`]) and reports through [`Health`], which the server reads.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cmd::Write;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::record;
use crate::reply::Reply;
use crate::segment::{PreparedFile, SegmentError, SegmentWriter, PREPARED_SEGMENT_NAME};
use crate::sys;

/// The state, shared by the writer (which changes it) and the readers.
pub type SharedDb = Arc<RwLock<Db>>;

/// What the writer reports: the last durable sequence number, the open and
/// last sealed segments, and whether (and why) the log is poisoned. Owned
/// by the writer's side; the server reads it for INFO, refusing writes and
/// `/healthz` (through the metrics it updates).
pub struct Health {
    metrics: Arc<Metrics>,
    poisoned: AtomicBool,
    last_seq: AtomicU64,
    files: Mutex<HealthFiles>,
}

#[derive(Default)]
struct HealthFiles {
    cause: Option<String>,
    open_segment: PathBuf,
    last_sealed: Option<PathBuf>,
}

impl Health {
    pub fn new(metrics: Arc<Metrics>, last_seq: u64, open_segment: PathBuf) -> Health {
        let h = Health {
            metrics,
            poisoned: AtomicBool::new(false),
            last_seq: AtomicU64::new(0),
            files: Mutex::new(HealthFiles {
                open_segment,
                ..Default::default()
            }),
        };
        h.set_last_seq(last_seq);
        h
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HealthFiles> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the log refuses every write.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// Refuses every write from now on; `/healthz` fails.
    pub fn poison(&self, client_message: String) {
        self.poisoned.store(true, Ordering::SeqCst);
        self.metrics.writes_failed.set(1);
        self.metrics.ready.set(0);
        self.files().cause = Some(client_message);
    }

    /// The error a refused write gets.
    pub fn poison_message(&self) -> String {
        self.files().cause.clone().unwrap_or_else(|| {
            "ERR writes disabled: the log writer stopped; the engine is shutting down".into()
        })
    }

    /// The poison's client message, if poisoned.
    pub fn poison_cause(&self) -> Option<String> {
        self.files().cause.clone()
    }

    /// The last durable (and applied) sequence number.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::SeqCst)
    }

    fn set_last_seq(&self, seq: u64) {
        self.last_seq.store(seq, Ordering::SeqCst);
        self.metrics.sequence_number.set(seq as i64);
    }

    /// The open segment and the last sealed one.
    pub fn segments(&self) -> (PathBuf, Option<PathBuf>) {
        let f = self.files();
        (f.open_segment.clone(), f.last_sealed.clone())
    }

    fn set_open_segment(&self, open: PathBuf, sealed: PathBuf) {
        let mut f = self.files();
        f.open_segment = open;
        f.last_sealed = Some(sealed);
    }
}

/// Expired keys removed from memory per tick (bounds the pause).
const MAX_PURGE: usize = 10_000;

/// A group commit takes requests until it holds at least this many records.
pub const MAX_BATCH: usize = 4096;

/// State-changing commands of one connection, waiting to be logged together
/// (a run of pipelined writes), answered with one reply per command.
pub struct WriteRequest {
    pub cmds: Vec<Box<dyn Write>>,
    /// The payload of each command, encoded by the connection task.
    pub payloads: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Vec<Reply>>,
}

impl WriteRequest {
    fn fail(self, msg: &str) {
        let n = self.cmds.len();
        let _ = self.reply.send(vec![Reply::Error(msg.to_string()); n]);
    }
}

/// Why the writer stopped accepting writes.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("command log {op} failed on {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("log writer task failed: {0}")]
    Task(String),
    #[error("log writer panicked: {message}")]
    Panicked { message: String },
}

impl WriterError {
    /// True when the volume is full (ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        match self {
            WriterError::Io { source, .. } => sys::is_enospc(source),
            WriterError::Segment(SegmentError::Io { source, .. }) => sys::is_enospc(source),
            _ => false,
        }
    }

    /// The error clients get once the log is poisoned.
    pub fn client_message(&self) -> String {
        if self.is_disk_full() {
            format!("ERR writes disabled: no space left on the persistence volume ({self}); the engine is shutting down")
        } else {
            format!("ERR writes disabled: {self}; the engine is shutting down (acknowledged writes are safe)")
        }
    }
}

/// The open segment and what rotation needs.
pub struct Log {
    pub seg: SegmentWriter,
    pub dir: PathBuf,
    pub prealloc_bytes: u64,
    pub reserve_bytes: u64,
    pub rotate_bytes: u64,
    pub rotate_interval: Duration,
    /// The next segment file being prepared in the background.
    pub prepared: Option<JoinHandle<Result<PreparedFile, SegmentError>>>,
    /// Timestamp of the last record (records get non-decreasing timestamps).
    pub last_ts: u64,
    /// When a failed preparation may be retried.
    retry_prepare_at: Option<Instant>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Creates the preallocated next-segment file (sparse when the volume is
/// too full to preallocate).
fn prepare(dir: PathBuf, prealloc_bytes: u64) -> Result<PreparedFile, SegmentError> {
    PreparedFile::create(&dir, prealloc_bytes)
}

impl Log {
    pub fn new(
        seg: SegmentWriter,
        dir: PathBuf,
        prealloc_bytes: u64,
        reserve_bytes: u64,
        rotate_bytes: u64,
        rotate_interval: Duration,
        last_ts: u64,
    ) -> Log {
        let mut log = Log {
            seg,
            dir,
            prealloc_bytes,
            reserve_bytes,
            rotate_bytes,
            rotate_interval,
            prepared: None,
            last_ts,
            retry_prepare_at: None,
        };
        log.start_prepare();
        log
    }

    fn start_prepare(&mut self) {
        let (dir, bytes) = (self.dir.clone(), self.prealloc_bytes);
        self.prepared = Some(tokio::task::spawn_blocking(move || prepare(dir, bytes)));
    }
}

enum Outcome {
    Durable { bytes: u64, fsync: Duration },
    Refused { free: u64 },
    Failed(WriterError),
}

/// What the writer works on besides the log: the state and its report.
pub struct Writer {
    pub db: SharedDb,
    pub health: Arc<Health>,
}

/// Polls a future, turning a panic inside it into an error.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Runs the writer until every sender is dropped (clean shutdown: the open
/// segment is sealed) or the log is poisoned by an error or a panic
/// (returns the error).
pub async fn run(
    w: Writer,
    mut rx: mpsc::Receiver<WriteRequest>,
    log: Log,
) -> Result<(), WriterError> {
    let result = CatchUnwind(Box::pin(run_log(&w, &mut rx, log))).await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(poison(&w.health, e, &mut rx)),
        Err(panic) => {
            let e = WriterError::Panicked {
                message: panic_message(panic.as_ref()),
            };
            Err(poison(&w.health, e, &mut rx))
        }
    }
}

async fn run_log(
    w: &Writer,
    rx: &mut mpsc::Receiver<WriteRequest>,
    mut log: Log,
) -> Result<(), WriterError> {
    let mut batch: Vec<WriteRequest> = Vec::with_capacity(256);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let tick_every = log.rotate_interval.min(Duration::from_millis(250));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else {
                    break;
                };
                let mut records = first.cmds.len();
                batch.push(first);
                // Let the connections that are ready right now queue their
                // writes too, so they share this fsync.
                tokio::task::yield_now().await;
                while records < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(req) => {
                            records += req.cmds.len();
                            batch.push(req);
                        }
                        Err(_) => break,
                    }
                }
                let (l, b) = commit(w, log, buf, &mut batch).await?;
                log = l;
                buf = b;
                if log.seg.len() >= log.rotate_bytes {
                    log = rotate(&w.health, log).await?;
                }
            }
            _ = tick.tick() => {
                // Drop expired keys from memory (they are already invisible).
                // Later records get timestamps >= this time, so replaying
                // them (without the purge) sees those keys expired too.
                let purge_at = now_ms().max(log.last_ts);
                log.last_ts = purge_at;
                let purged = w
                    .db
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .purge_expired(purge_at, MAX_PURGE);
                if purged > 0 {
                    tracing::debug!(purged, "expired keys removed from memory");
                }
                if !log.seg.is_empty() && log.seg.created().elapsed() >= log.rotate_interval {
                    log = rotate(&w.health, log).await?;
                }
            }
        }
    }
    close(log).await
}

fn poison(health: &Health, e: WriterError, rx: &mut mpsc::Receiver<WriteRequest>) -> WriterError {
    let msg = e.client_message();
    tracing::error!(error = %e, "command log poisoned: refusing every write from now on");
    health.poison(msg.clone());
    rx.close();
    while let Ok(req) = rx.try_recv() {
        req.fail(&msg);
    }
    e
}

fn fail_batch(batch: &mut Vec<WriteRequest>, msg: &str) {
    for req in batch.drain(..) {
        req.fail(msg);
    }
}

/// Logs, syncs and applies one batch. Returns the log and buffer back; on a
/// failure the batch is answered with the error and the log is gone.
async fn commit(
    w: &Writer,
    mut log: Log,
    mut buf: Vec<u8>,
    batch: &mut Vec<WriteRequest>,
) -> Result<(Log, Vec<u8>), WriterError> {
    fail::fail_point!("writer::commit");
    let ts = now_ms().max(log.last_ts);
    let payloads: Vec<Vec<u8>> = batch
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.payloads))
        .collect();
    let n = payloads.len() as u64;
    let joined = tokio::task::spawn_blocking(move || {
        let outcome = (|| {
            if log.reserve_bytes > 0 {
                let free = match sys::free_bytes(&log.dir) {
                    Ok(f) => f,
                    Err(source) => {
                        return Outcome::Failed(WriterError::Io {
                            op: "statvfs",
                            path: log.dir.clone(),
                            source,
                        })
                    }
                };
                if free < log.reserve_bytes {
                    return Outcome::Refused { free };
                }
            }
            buf.clear();
            let first = log.seg.next_seq();
            let salt = log.seg.salt();
            for (i, p) in payloads.iter().enumerate() {
                record::encode_parts(salt, first + i as u64, ts, p, &mut buf);
            }
            if let Err(source) = log.seg.append(&buf, n) {
                return Outcome::Failed(WriterError::Io {
                    op: "write",
                    path: log.seg.path().to_path_buf(),
                    source,
                });
            }
            let t = Instant::now();
            if let Err(source) = log.seg.sync() {
                return Outcome::Failed(WriterError::Io {
                    op: "fdatasync",
                    path: log.seg.path().to_path_buf(),
                    source,
                });
            }
            Outcome::Durable {
                bytes: buf.len() as u64,
                fsync: t.elapsed(),
            }
        })();
        (log, buf, outcome)
    })
    .await;
    let (mut log, buf, outcome) = match joined {
        Ok(x) => x,
        Err(e) => {
            // The segment writer was lost with the task: nothing can be
            // written any more.
            let err = WriterError::Task(e.to_string());
            fail_batch(batch, &err.client_message());
            return Err(err);
        }
    };
    match outcome {
        Outcome::Durable { bytes, fsync } => {
            log.last_ts = ts;
            let m = w.health.metrics();
            m.fsync_duration.observe(fsync.as_secs_f64());
            m.batch_size.observe(n as f64);
            m.logged_records.inc_by(n);
            m.logged_bytes.inc_by(bytes);
            m.open_segment_bytes.set(log.seg.len() as i64);
            let last_seq = log.seg.next_seq() - 1;
            let mut replies = Vec::with_capacity(batch.len());
            {
                let mut db = w.db.write().unwrap_or_else(|p| p.into_inner());
                for req in batch.drain(..) {
                    let r: Vec<Reply> = req
                        .cmds
                        .into_iter()
                        .map(|c| c.apply_boxed(&mut db, ts))
                        .collect();
                    replies.push((req.reply, r));
                }
            }
            w.health.set_last_seq(last_seq);
            for (tx, reply) in replies {
                let _ = tx.send(reply);
            }
            Ok((log, buf))
        }
        Outcome::Refused { free } => {
            let msg = format!(
                "ERR disk almost full: {free} bytes free on the persistence volume, below the reserve of {} bytes; write refused, nothing logged (reads still work)",
                log.reserve_bytes
            );
            tracing::warn!(
                free,
                reserve = log.reserve_bytes,
                "write refused: free space below the reserve"
            );
            fail_batch(batch, &msg);
            Ok((log, buf))
        }
        Outcome::Failed(e) => {
            fail_batch(batch, &e.client_message());
            Err(e)
        }
    }
}

/// Seals the open segment and switches to the prepared one. A failure to
/// prepare the next file is not fatal (the current segment keeps growing and
/// rotation is retried); a failure to seal is.
async fn rotate(health: &Health, mut log: Log) -> Result<Log, WriterError> {
    if log.retry_prepare_at.is_some_and(|t| Instant::now() < t) {
        return Ok(log);
    }
    if log.prepared.is_none() {
        log.start_prepare();
    }
    let handle = log.prepared.take().expect("started above");
    let prepared = match handle.await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot create the next segment; rotation postponed");
            log.retry_prepare_at = Some(Instant::now() + Duration::from_secs(1));
            return Ok(log);
        }
        Err(e) => return Err(WriterError::Task(e.to_string())),
    };
    log.retry_prepare_at = None;
    let Log {
        seg,
        dir,
        prealloc_bytes,
        reserve_bytes,
        rotate_bytes,
        rotate_interval,
        last_ts,
        ..
    } = log;
    let dir2 = dir.clone();
    let (sealed, seg) = tokio::task::spawn_blocking(move || -> Result<_, SegmentError> {
        let next = seg.next_seq();
        let sealed = seg.seal()?;
        let seg = SegmentWriter::from_prepared(&dir2, prepared, next)?;
        Ok((sealed, seg))
    })
    .await
    .map_err(|e| WriterError::Task(e.to_string()))??;
    health.metrics.rotations.inc();
    health.metrics.open_segment_bytes.set(seg.len() as i64);
    health.set_open_segment(seg.path().to_path_buf(), sealed);
    Ok(Log::new(
        seg,
        dir,
        prealloc_bytes,
        reserve_bytes,
        rotate_bytes,
        rotate_interval,
        last_ts,
    ))
}

/// Clean shutdown: seal the open segment (or remove it when empty) and the
/// prepared file.
async fn close(mut log: Log) -> Result<(), WriterError> {
    if let Some(h) = log.prepared.take() {
        if let Ok(Ok(p)) = h.await {
            drop(p);
        }
    }
    let dir = log.dir.clone();
    tokio::task::spawn_blocking(move || -> Result<(), SegmentError> {
        let tmp = dir.join(PREPARED_SEGMENT_NAME);
        if tmp.exists() {
            crate::segment::remove_file_durably(&dir, &tmp)?;
        }
        if log.seg.is_empty() {
            log.seg.discard_empty()
        } else {
            log.seg.seal().map(|_| ())
        }
    })
    .await
    .map_err(|e| WriterError::Task(e.to_string()))??;
    Ok(())
}
