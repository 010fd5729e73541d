//! The log writer: group commit, rotation, poisoning.
//!
//! Execute-then-log: connections execute commands against the state in the
//! order they read them (see [`crate::exec`]) and append the effect each
//! write produced to the [`LogQueue`], which numbers it (its log position).
//! One task owns the open segment: it takes everything queued, frames it as
//! one batch of consecutive records ([`crate::batch::BatchEncoder`]),
//! writes it with one `write` and makes it durable
//! with one `fdatasync` (group commit), then publishes the new durable
//! position through [`Health::subscribe`]. The write and fdatasync run on
//! the blocking pool, so that connections execute the next batch meanwhile;
//! the batch of a lone client, or of clients that wait for each reply when
//! fsyncs are fast, runs them on the event loop instead, saving the two
//! thread hand-offs (see `Cohort::inline`). A connection
//! holds each reply until the log position current when it was executed is
//! durable, so no reply, on any connection, shows state that is not durable.
//!
//! A failed write or fdatasync (EIO, ENOSPC, a short write) poisons the log:
//! the page cache can no longer be trusted, and the state in memory holds
//! effects that never became durable, so every reply held behind the failure
//! gets the error, the engine refuses every later command, and it shuts down
//! with a non-zero exit. The free-space reserve is checked before execution
//! (see [`crate::exec`]).
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

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch::BatchEncoder;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::segment::{PreparedFile, SegmentError, SegmentWriter, PREPARED_SEGMENT_NAME};
use crate::sys::{self, Fs};

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
    durable: watch::Sender<Durable>,
}

/// The durable log position and the poison flag, as connections wait on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// Every record up to this sequence number is durable.
    pub seq: u64,
    /// The log failed: nothing after `seq` will ever be durable.
    pub poisoned: bool,
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
            durable: watch::channel(Durable {
                seq: last_seq,
                poisoned: false,
            })
            .0,
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
        self.files().cause = Some(client_message);
        self.poisoned.store(true, Ordering::SeqCst);
        self.metrics.writes_failed.set(1);
        self.metrics.ready.set(0);
        self.durable.send_modify(|d| d.poisoned = true);
    }

    /// Follows the durable position (and poisoning): replies are released
    /// when it reaches their log position.
    pub fn subscribe(&self) -> watch::Receiver<Durable> {
        self.durable.subscribe()
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
        self.durable.send_modify(|d| d.seq = d.seq.max(seq));
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

/// Effects executed but not yet handed to the log, in execution order, and
/// the clock of execution. Connections lock it while they hold the state's
/// write lock (lock order: state, then queue), so log order is execution
/// order.
pub struct LogQueue {
    inner: Mutex<Queued>,
    ready: Notify,
}

/// The queue's contents; see [`LogQueue::lock`].
pub struct Queued {
    /// The sequence number the next queued effect gets.
    next_seq: u64,
    /// The time of the last execution (and of the purge): executions get
    /// non-decreasing times, which are their records' timestamps.
    last_ts: u64,
    /// (timestamp, payload) of seq `next_seq - records.len()` onwards.
    records: Vec<(u64, Vec<u8>)>,
    /// Payload bytes queued (metrics, bounds).
    bytes: usize,
    /// Executions that queued records (one connection's requests, read at
    /// once): the clients the next commit answers.
    bursts: usize,
}

impl Queued {
    /// "Now" for an execution: the wall clock, never before an earlier
    /// execution or purge (replay uses it as the time of each record).
    pub fn now(&mut self) -> u64 {
        self.last_ts = now_ms().max(self.last_ts);
        self.last_ts
    }

    /// Queues the payload of an effect applied at `ts` (from
    /// [`Queued::now`]); returns its log position.
    pub fn push(&mut self, ts: u64, payload: Vec<u8>) -> u64 {
        debug_assert!(ts <= self.last_ts);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += payload.len();
        self.records.push((ts, payload));
        seq
    }

    /// The log position of the last executed effect: a reply computed now
    /// may show it, so it is held until that position is durable.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Counts an execution (one connection's requests, read at once) that
    /// queued records: the commit delay tells pipelining clients from
    /// clients that wait for each reply by it (see [`Cohort`]).
    pub fn end_burst(&mut self) {
        self.bursts += 1;
    }
}

impl LogQueue {
    /// An empty queue whose first effect gets `next_seq`.
    pub fn new(next_seq: u64, last_ts: u64) -> LogQueue {
        LogQueue {
            inner: Mutex::new(Queued {
                next_seq,
                last_ts,
                records: Vec::new(),
                bytes: 0,
                bursts: 0,
            }),
            ready: Notify::new(),
        }
    }

    /// Locks the queue (after the state's lock, never before it).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the writer: something was queued.
    pub fn notify(&self) {
        self.ready.notify_one();
    }

    /// Records queued and not yet taken by the writer.
    fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Takes everything queued: the first record's sequence number, the
    /// records and the executions that queued them.
    fn take(&self) -> (u64, Vec<(u64, Vec<u8>)>, usize) {
        let mut q = self.lock();
        let records = std::mem::take(&mut q.records);
        q.bytes = 0;
        let bursts = std::mem::take(&mut q.bursts);
        (q.next_seq - records.len() as u64, records, bursts)
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
    /// Write zeros over each preallocated segment before it is used
    /// ([`PreparedFile::zero_fill`]).
    pub zero_fill: bool,
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
/// too full to preallocate), zero-filled when `zero_fill`.
pub fn prepare(
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    prealloc_bytes: u64,
    zero_fill: bool,
) -> Result<PreparedFile, SegmentError> {
    let p = PreparedFile::create_on(fs, &dir, prealloc_bytes)?;
    if zero_fill {
        p.zero_fill()?;
    }
    Ok(p)
}

impl Log {
    pub fn new(
        seg: SegmentWriter,
        dir: PathBuf,
        prealloc_bytes: u64,
        zero_fill: bool,
        rotate_bytes: u64,
        rotate_interval: Duration,
        last_ts: u64,
    ) -> Log {
        let mut log = Log {
            seg,
            dir,
            prealloc_bytes,
            zero_fill,
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
        let (fs, dir, bytes) = (self.seg.fs().clone(), self.dir.clone(), self.prealloc_bytes);
        let zero = self.zero_fill;
        self.prepared = Some(tokio::task::spawn_blocking(move || {
            prepare(fs, dir, bytes, zero)
        }));
    }
}

enum Outcome {
    Durable { bytes: u64, fsync: Duration },
    Failed(WriterError),
}

/// What the writer works on besides the log: the state (for the purge of
/// expired keys), the queue of executed effects, its report, and when to
/// stop (after the connections are done: it then drains the queue).
pub struct Writer {
    pub db: SharedDb,
    pub queue: Arc<LogQueue>,
    pub health: Arc<Health>,
    pub stop: CancellationToken,
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

/// Runs the writer until `stop` (clean shutdown: what is queued is logged,
/// the open segment is sealed) or until the log is poisoned by an error or
/// a panic (returns the error).
pub async fn run(w: Writer, log: Log) -> Result<(), WriterError> {
    let result = CatchUnwind(Box::pin(run_log(&w, log))).await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(poison(&w.health, e)),
        Err(panic) => {
            let e = WriterError::Panicked {
                message: panic_message(panic.as_ref()),
            };
            Err(poison(&w.health, e))
        }
    }
}

async fn run_log(w: &Writer, mut log: Log) -> Result<(), WriterError> {
    let mut buf = BatchEncoder::with_capacity(1 << 20);
    let mut cohort = Cohort::default();
    let tick_every = log.rotate_interval.min(Duration::from_millis(250));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = w.queue.ready.notified() => false,
            _ = w.stop.cancelled() => true,
            _ = tick.tick() => {
                // Drop expired keys from memory (they are already invisible).
                // Later executions get times >= this time, so replaying
                // them (without the purge) sees those keys expired too.
                // Never wait for the state here: a long script holds it
                // (off the event loop), and this task shares the event loop
                // with the connection that would send SCRIPT KILL.
                let purged = match w.db.try_write() {
                    Ok(mut db) => {
                        let purge_at = w.queue.lock().now();
                        db.purge_expired(purge_at, MAX_PURGE)
                    }
                    Err(std::sync::TryLockError::Poisoned(p)) => {
                        let mut db = p.into_inner();
                        let purge_at = w.queue.lock().now();
                        db.purge_expired(purge_at, MAX_PURGE)
                    }
                    Err(std::sync::TryLockError::WouldBlock) => 0,
                };
                if purged > 0 {
                    tracing::debug!(purged, "expired keys removed from memory");
                }
                if !log.seg.is_empty() && log.seg.created().elapsed() >= log.rotate_interval {
                    log = rotate(&w.health, log).await?;
                }
                continue;
            }
        };
        // Let the connections that are ready right now execute and queue
        // their writes too, so they share this fsync.
        if !stopping {
            tokio::task::yield_now().await;
            gather(&w.queue, cohort.target(), cohort.max_wait()).await;
        }
        loop {
            let (first, records, bursts) = w.queue.take();
            if records.is_empty() {
                break;
            }
            let n = records.len();
            let inline = cohort.inline(n, bursts) && !stopping;
            let (l, b, fsync) = commit(w, log, buf, first, records, inline).await?;
            cohort.committed(n, bursts, fsync);
            log = l;
            buf = b;
            if log.seg.len() >= log.rotate_bytes {
                log = rotate(&w.health, log).await?;
            }
            if !stopping {
                break;
            }
        }
        if stopping {
            break;
        }
    }
    close(log).await
}

/// What the commit delay knows: the size of the last commit, the
/// executions that filled it, and how long an fsync takes.
///
/// The clients answered by a commit send their next writes a few
/// microseconds later; an fsync started before they have would carry only
/// those who arrived during the last one, and the clients would settle into
/// two cohorts taking turns with half-full fsyncs (half the records per
/// fsync, and every client's round trip paying twice the commit's fixed
/// costs). So before a commit the writer waits until as many records are
/// queued as the last commit carried, for at most a quarter of an fsync
/// (tokio's timer rounds that up to its millisecond tick). A single client
/// (a last commit of one record) never waits; a load that shrinks waits
/// once and then aims lower.
///
/// Clients that pipeline (at least [`PIPELINED_RECORDS`] records per
/// execution in the last commit, e.g. `redis-benchmark -P 16`) are not
/// waited for: each round trip already shares its commit among many
/// records, and waiting for every client to come back leaves the disk idle
/// while they do (SET at 50 connections pipelining 16: +13 to +26 %
/// without the wait; removing it for clients that do not pipeline: -14 %).
#[derive(Debug, Default)]
struct Cohort {
    last_batch: usize,
    /// Executions that queued the last commit's records.
    last_bursts: usize,
    /// Moving average of the fsync time.
    fsync: Duration,
}

/// Records per execution from which the writer stops waiting for clients.
const PIPELINED_RECORDS: usize = 8;

/// Average fsync time up to which clients that wait for each reply are
/// committed on the event loop ([`Cohort::inline`]).
const INLINE_FSYNC_MAX: Duration = Duration::from_millis(1);

/// Longest commit delay, whatever the fsync time.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);

/// The batch-framing buffer the writer keeps between commits (dropped after
/// a batch of big records grew it past this).
const FRAME_KEEP_BYTES: usize = 8 << 20;

impl Cohort {
    fn committed(&mut self, records: usize, bursts: usize, fsync: Duration) {
        self.last_batch = records;
        self.last_bursts = bursts;
        self.fsync = if self.fsync.is_zero() {
            fsync
        } else {
            (self.fsync * 7 + fsync) / 8
        };
    }

    /// Records to wait for (0: none).
    fn target(&self) -> usize {
        if self.last_batch >= 2 && !pipelined(self.last_batch, self.last_bursts) {
            self.last_batch
        } else {
            0
        }
    }

    /// Whether a commit of `records` queued by `bursts` executions writes
    /// and fdatasyncs on the event loop instead of the blocking pool.
    ///
    /// Yes for a batch of one record after a batch of at most one (a lone
    /// client: nothing to overlap the fsync with, and the two thread
    /// hand-offs, to the pool and back, are most of what separates its
    /// latency from one fdatasync), and for clients that wait for each
    /// reply while the fsync is fast (at most [`INLINE_FSYNC_MAX`] on
    /// average): the commit delay has gathered them into one cohort, so
    /// they are all waiting for this fsync and the event loop has little
    /// else to do meanwhile (SET at 50 connections +13-19 % measured). A
    /// read on another connection then waits for the fsync, as it does in
    /// Redis with `appendfsync always`. Pipelined batches go to the pool:
    /// their clients' next requests arrive during the fsync (SET at 50
    /// connections pipelining 16: -15 % inline).
    fn inline(&self, records: usize, bursts: usize) -> bool {
        if records == 1 && self.last_batch <= 1 {
            return true;
        }
        !pipelined(records, bursts) && self.fsync <= INLINE_FSYNC_MAX
    }

    fn max_wait(&self) -> Duration {
        (self.fsync / 4).min(MAX_COMMIT_DELAY)
    }
}

/// True when `records` queued by `bursts` executions came from clients that
/// pipeline ([`PIPELINED_RECORDS`] or more per execution).
fn pipelined(records: usize, bursts: usize) -> bool {
    records >= PIPELINED_RECORDS * bursts.max(1)
}

/// Waits until `target` records are queued, at most `max_wait`.
async fn gather(queue: &LogQueue, target: usize, max_wait: Duration) {
    if target == 0 || max_wait.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + max_wait;
    while queue.len() < target {
        if tokio::time::timeout_at(deadline, queue.ready.notified())
            .await
            .is_err()
        {
            break;
        }
    }
}

fn poison(health: &Health, e: WriterError) -> WriterError {
    let msg = e.client_message();
    tracing::error!(error = %e, "command log poisoned: refusing every command from now on");
    health.poison(msg);
    e
}

/// Logs and syncs one batch of executed effects, then publishes the new
/// durable position. Returns the log and buffer back, and how long the
/// fsync took; on a failure the log is gone (the caller poisons).
///
/// `inline`: write and fdatasync on this thread instead of the blocking
/// pool, blocking the event loop for that fsync as a single-threaded
/// server's is (see [`Cohort::inline`] for when).
async fn commit(
    w: &Writer,
    mut log: Log,
    mut buf: BatchEncoder,
    first: u64,
    records: Vec<(u64, Vec<u8>)>,
    inline: bool,
) -> Result<(Log, BatchEncoder, Duration), WriterError> {
    fail::fail_point!("writer::commit");
    assert_eq!(
        first,
        log.seg.next_seq(),
        "executed effects and the log disagree on the sequence"
    );
    let n = records.len() as u64;
    let ts_last = records.last().map(|r| r.0).unwrap_or(log.last_ts);
    let (mut log, buf, outcome) = if inline {
        let outcome = write_and_sync(&mut log, &mut buf, &records);
        (log, buf, outcome)
    } else {
        let joined = tokio::task::spawn_blocking(move || {
            let outcome = write_and_sync(&mut log, &mut buf, &records);
            (log, buf, outcome)
        })
        .await;
        match joined {
            Ok(x) => x,
            // The segment writer was lost with the task: nothing can be
            // written any more.
            Err(e) => return Err(WriterError::Task(e.to_string())),
        }
    };
    match outcome {
        Outcome::Durable { bytes, fsync } => {
            log.last_ts = ts_last;
            let m = w.health.metrics();
            m.fsync_duration.observe(fsync.as_secs_f64());
            m.batch_size.observe(n as f64);
            m.logged_records.inc_by(n);
            m.logged_bytes.inc_by(bytes);
            m.open_segment_bytes.set(log.seg.len() as i64);
            w.health.set_last_seq(log.seg.next_seq() - 1);
            Ok((log, buf, fsync))
        }
        Outcome::Failed(e) => Err(e),
    }
}

/// Frames `records` as one batch, writes it and fdatasyncs the segment
/// (blocking).
fn write_and_sync(log: &mut Log, buf: &mut BatchEncoder, records: &[(u64, Vec<u8>)]) -> Outcome {
    buf.shrink_to(FRAME_KEEP_BYTES);
    buf.clear();
    for (ts, p) in records {
        buf.push(*ts, p);
    }
    if let Err(source) = log.seg.append(buf) {
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
        bytes: buf.framed_len() as u64,
        fsync: t.elapsed(),
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
        zero_fill,
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
        zero_fill,
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
        let fs = log.seg.fs().clone();
        if fs.stat(&tmp).is_ok() {
            crate::segment::remove_file_durably_on(&*fs, &dir, &tmp)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cohort_after(records: usize, bursts: usize) -> Cohort {
        let mut c = Cohort::default();
        c.committed(records, bursts, Duration::from_micros(200));
        c
    }

    #[test]
    fn the_writer_waits_for_clients_that_wait_for_each_reply() {
        // 50 connections, one SET each (or a MULTI block each)
        assert_eq!(cohort_after(50, 50).target(), 50);
        // 50 connections, a few records per round trip
        assert_eq!(cohort_after(200, 50).target(), 200);
        assert_eq!(cohort_after(50, 50).max_wait(), Duration::from_micros(50));
    }

    #[test]
    fn the_writer_does_not_wait_for_pipelining_clients_or_a_lone_client() {
        // 50 connections pipelining 16 and 8
        assert_eq!(cohort_after(800, 50).target(), 0);
        assert_eq!(cohort_after(400, 50).target(), 0);
        // one connection pipelining
        assert_eq!(cohort_after(16, 1).target(), 0);
        // one client, one record
        assert_eq!(cohort_after(1, 1).target(), 0);
        assert_eq!(Cohort::default().target(), 0);
    }

    #[test]
    fn clients_that_wait_for_each_reply_are_committed_on_the_event_loop_while_fsyncs_are_fast() {
        let c = cohort_after(50, 50);
        assert!(c.inline(48, 48));
        assert!(c.inline(100, 50));
        // pipelined: to the blocking pool
        assert!(!c.inline(800, 50));
        assert!(!c.inline(16, 1));
        // a lone client, whatever the fsync time
        assert!(cohort_after(1, 1).inline(1, 1));
        // slow fsyncs: several clients go to the pool, a lone one does not
        let mut slow = Cohort::default();
        slow.committed(1, 1, Duration::from_millis(8));
        assert!(slow.inline(1, 1));
        assert!(!slow.inline(2, 2));
        slow.committed(50, 50, Duration::from_millis(8));
        assert!(!slow.inline(1, 1));
        assert!(!slow.inline(50, 50));
    }

    #[test]
    fn take_hands_over_the_executions_counted_since_the_last_take() {
        let q = LogQueue::new(7, 0);
        {
            let mut g = q.lock();
            let ts = g.now();
            g.push(ts, b"a".to_vec());
            g.push(ts, b"b".to_vec());
            g.end_burst();
            g.push(ts, b"c".to_vec());
            g.end_burst();
        }
        let (first, records, bursts) = q.take();
        assert_eq!((first, records.len(), bursts), (7, 3, 2));
        let (first, records, bursts) = q.take();
        assert_eq!((first, records.len(), bursts), (10, 0, 0));
    }
}
