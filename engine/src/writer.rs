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
//! Segments are sealed when they reach `rotate_bytes`, when a non-empty one
//! is older than `rotate_interval`, and at clean shutdown. The next segment
//! file is created and preallocated in the background, off the write path.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::db::{Command, Reply};
use crate::record;
use crate::segment::{PreparedFile, SegmentError, SegmentWriter, PREPARED_SEGMENT_NAME};
use crate::server::Shared;
use crate::sys;

/// Expired keys removed from memory per tick (bounds the pause).
const MAX_PURGE: usize = 10_000;

/// A group commit takes requests until it holds at least this many records.
pub const MAX_BATCH: usize = 4096;

/// State-changing commands of one connection, waiting to be logged together
/// (a run of pipelined writes), answered with one reply per command.
pub struct WriteRequest {
    pub cmds: Vec<Command>,
    /// `cmd.encode()` of each command, computed by the connection task.
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
}

impl WriterError {
    /// The error clients get once the log is poisoned.
    pub fn client_message(&self) -> String {
        let disk_full = match self {
            WriterError::Io { source, .. } => sys::is_enospc(source),
            WriterError::Segment(SegmentError::Io { source, .. }) => sys::is_enospc(source),
            _ => false,
        };
        if disk_full {
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

/// Runs the writer until every sender is dropped (clean shutdown: the open
/// segment is sealed) or the log is poisoned (returns the error).
pub async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<WriteRequest>,
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
                match commit(&shared, log, buf, &mut batch).await {
                    Ok((l, b)) => {
                        log = l;
                        buf = b;
                    }
                    Err(e) => return Err(poison(&shared, e, &mut rx)),
                }
                if log.seg.len() >= log.rotate_bytes {
                    log = match rotate(&shared, log).await {
                        Ok(l) => l,
                        Err(e) => return Err(poison(&shared, e, &mut rx)),
                    };
                }
            }
            _ = tick.tick() => {
                // Drop expired keys from memory (they are already invisible).
                // Later records get timestamps >= this time, so replaying
                // them (without the purge) sees those keys expired too.
                let purge_at = now_ms().max(log.last_ts);
                log.last_ts = purge_at;
                let purged = shared
                    .db
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .purge_expired(purge_at, MAX_PURGE);
                if purged > 0 {
                    tracing::debug!(purged, "expired keys removed from memory");
                }
                if !log.seg.is_empty() && log.seg.created().elapsed() >= log.rotate_interval {
                    log = match rotate(&shared, log).await {
                        Ok(l) => l,
                        Err(e) => return Err(poison(&shared, e, &mut rx)),
                    };
                }
            }
        }
    }
    close(log).await
}

fn poison(shared: &Shared, e: WriterError, rx: &mut mpsc::Receiver<WriteRequest>) -> WriterError {
    let msg = e.client_message();
    tracing::error!(error = %e, "command log poisoned: refusing every write from now on");
    shared.set_poisoned(msg.clone());
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
    shared: &Arc<Shared>,
    mut log: Log,
    mut buf: Vec<u8>,
    batch: &mut Vec<WriteRequest>,
) -> Result<(Log, Vec<u8>), WriterError> {
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
            let m = &shared.metrics;
            m.fsync_duration.observe(fsync.as_secs_f64());
            m.batch_size.observe(n as f64);
            m.logged_records.inc_by(n);
            m.logged_bytes.inc_by(bytes);
            m.open_segment_bytes.set(log.seg.len() as i64);
            let last_seq = log.seg.next_seq() - 1;
            let mut replies = Vec::with_capacity(batch.len());
            {
                let mut db = shared.db.write().unwrap_or_else(|p| p.into_inner());
                for req in batch.drain(..) {
                    let r: Vec<Reply> = req
                        .cmds
                        .into_iter()
                        .map(|c| db.apply_owned(c, ts))
                        .collect();
                    replies.push((req.reply, r));
                }
            }
            shared.set_last_seq(last_seq);
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
async fn rotate(shared: &Arc<Shared>, mut log: Log) -> Result<Log, WriterError> {
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
    shared.metrics.rotations.inc();
    shared.metrics.open_segment_bytes.set(seg.len() as i64);
    shared.set_open_segment(seg.path().to_path_buf(), Some(sealed));
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
