//! One pass of the snapshotter: snapshot if due, then archive, then
//! retention. The daemon runs a pass on every wake-up; `once` runs one.
//!
//! ```text
//! scan DIR + archive ─► newest snapshot S (verified) ─► pending = sealed logs after S
//!   pending >= --min-logs and >= --min-bytes?
//!     yes: load S, replay pending (contiguous, checked) ─► write_snapshot (temp, fsync,
//!          rename, fsync dir) = new S
//!   archive (only after S is durable): sealed logs with last_seq <= S ─► archived/logs/
//!          snapshots beyond the newest --keep-snapshots ─► archived/snapshots/
//!   retention on archived/ (--retain-days, --retain-bytes)
//! ```
//!
//! A damaged snapshot, a damaged log or a gap stops the pass before anything
//! is published, moved or deleted; the error is logged and counted, and the
//! next pass tries again. The open segment is never read or touched. A move
//! that fails because the archive tier is full (ENOSPC) still lets retention
//! run before the error is reported, since retention is what frees the space.
//!
//! Failpoints (feature `failpoints`): `pass::before_publish` (state replayed,
//! nothing written), `pass::after_publish` (snapshot durable, nothing
//! archived), `pass::between_moves` (before each archive move).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tiered_engine::history::{self, History, Listing, SealedFile, SnapshotCheck, SnapshotFile};
use tiered_engine::layout;
use tiered_engine::segment::{verify_segment_on, SegmentError};
use tiered_engine::snapshot::{
    read_snapshot_on, verify_snapshot_on, write_snapshot_on, SnapshotError,
};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::mover::{self, MoveError, MoveOutcome};
use crate::replay::{self, ReplayError};
use crate::retention::{self, LogInfo, Policy, SnapInfo};
use crate::sys::{self, Fs, SysError};
use tiered_sys::WritePace;

/// What a pass stopped on. Nothing unsafe was done: either nothing was
/// published/moved/deleted, or a move stopped at a crash-safe point.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The directory could not be listed.
    #[error("scan: {0}")]
    Scan(#[from] history::HistoryError),
    /// A syscall failed (creating the archive dirs, removing temp files...).
    #[error(transparent)]
    Sys(#[from] SysError),
    /// The newest snapshot does not verify.
    #[error("newest snapshot is damaged, nothing published: {0}")]
    SnapshotDamaged(#[source] SnapshotError),
    /// The snapshot's header disagrees with its name.
    #[error("{} says last_seq {found} in its header; nothing published", path.display())]
    SnapshotNameMismatch {
        /// The snapshot.
        path: PathBuf,
        /// What its header says.
        found: u64,
    },
    /// The logs after the newest snapshot have a gap or damage.
    #[error("cannot replay the completed logs, nothing published: {0}")]
    Replay(#[source] ReplayError),
    /// Writing the new snapshot failed (it was not published).
    #[error("writing the snapshot failed: {0}")]
    Publish(#[source] SnapshotError),
    /// Moving a file to the archive failed (the file is whole in at least
    /// one place; the next pass retries).
    #[error("archive: {0}")]
    Archive(#[source] MoveError),
    /// Deleting an archived file failed.
    #[error("retention: {0}")]
    Retention(#[source] SysError),
    /// An injected failure (tests only).
    #[error("injected failure at {0}")]
    Injected(&'static str),
}

impl PassError {
    /// The metric label of the failed step.
    pub fn step(&self) -> &'static str {
        match self {
            PassError::Scan(_) | PassError::Sys(_) => "scan",
            PassError::SnapshotDamaged(_)
            | PassError::SnapshotNameMismatch { .. }
            | PassError::Replay(_)
            | PassError::Publish(_)
            | PassError::Injected(_) => "snapshot",
            PassError::Archive(_) => "archive",
            PassError::Retention(_) => "retention",
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Sequence number of the snapshot published by this pass.
    pub published: Option<u64>,
    /// Newest snapshot after the pass.
    pub newest_snapshot: Option<u64>,
    /// Sealed logs not covered by the newest snapshot.
    pub pending_logs: usize,
    /// Logs moved to the archive.
    pub archived_logs: usize,
    /// Snapshots moved to the archive.
    pub archived_snapshots: usize,
    /// Bytes moved to the archive.
    pub archived_bytes: u64,
    /// Files deleted by retention.
    pub retention_deleted: usize,
    /// The pass stopped early for a shutdown (at a safe point).
    pub interrupted: bool,
}

impl fmt::Display for PassReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.published {
            Some(s) => write!(f, "published snapshot {s}")?,
            None => write!(f, "no new snapshot")?,
        }
        write!(
            f,
            "; newest snapshot {:?}, {} pending logs; archived {} logs and {} snapshots ({} bytes); retention deleted {} files{}",
            self.newest_snapshot,
            self.pending_logs,
            self.archived_logs,
            self.archived_snapshots,
            self.archived_bytes,
            self.retention_deleted,
            if self.interrupted { "; interrupted by shutdown" } else { "" }
        )
    }
}

/// What a pass remembers for the next one: the last snapshot verified, so
/// that an unchanged file is not read again on every wake-up.
#[derive(Debug, Default)]
pub struct PassState {
    verified: Option<FileId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    path: PathBuf,
    len: u64,
    mtime: Option<SystemTime>,
}

impl FileId {
    fn of(fs: &dyn Fs, path: &Path) -> Option<FileId> {
        let m = fs.stat(path).ok()?;
        Some(FileId {
            path: path.to_path_buf(),
            len: m.len,
            mtime: m.modified,
        })
    }
}

macro_rules! failpoint {
    ($name:literal) => {
        fail::fail_point!($name, |_| Err(PassError::Injected($name)));
    };
}

/// Runs a pass and reports its outcome in the log and the metrics health.
pub fn run_pass_reporting(
    config: &Config,
    metrics: &Metrics,
    stop: &AtomicBool,
    state: &mut PassState,
) {
    match run_pass(config, metrics, stop, state) {
        Ok(report) => {
            if report.published.is_some()
                || report.archived_logs + report.archived_snapshots > 0
                || report.retention_deleted > 0
            {
                tracing::info!("{report}");
            } else {
                tracing::debug!("{report}");
            }
        }
        Err(e) => tracing::error!(step = e.step(), "{e}"),
    }
}

/// One pass: snapshot if due, archive, retention. Errors are counted in
/// `metrics` (and recorded for `/healthz`) before being returned.
pub fn run_pass(
    config: &Config,
    metrics: &Metrics,
    stop: &AtomicBool,
    state: &mut PassState,
) -> Result<PassReport, PassError> {
    run_pass_on(&sys::real(), config, metrics, stop, state)
}

/// [`run_pass`] through the file seam `fs`.
pub fn run_pass_on(
    fs: &Arc<dyn Fs>,
    config: &Config,
    metrics: &Metrics,
    stop: &AtomicBool,
    state: &mut PassState,
) -> Result<PassReport, PassError> {
    match pass_inner(fs, config, metrics, stop, state) {
        Ok(r) => {
            metrics.pass_ok();
            Ok(r)
        }
        Err(e) => {
            if e.step() == "snapshot" {
                metrics.snapshot_failed(e.to_string());
            } else {
                metrics.step_failed(e.step(), e.to_string());
            }
            Err(e)
        }
    }
}

fn pass_inner(
    fs_arc: &Arc<dyn Fs>,
    config: &Config,
    metrics: &Metrics,
    stop: &AtomicBool,
    state: &mut PassState,
) -> Result<PassReport, PassError> {
    let dir = &config.dir;
    let archive = config.archive_dir();
    let archive_logs = archive.join(layout::ARCHIVE_LOGS_DIR);
    let archive_snaps = archive.join(layout::ARCHIVE_SNAPSHOTS_DIR);
    let fs = &**fs_arc;
    mover::ensure_dir(fs, &archive_logs)?;
    mover::ensure_dir(fs, &archive_snaps)?;
    mover::clean_stale_temps(fs, &archive_logs)?;
    mover::clean_stale_temps(fs, &archive_snaps)?;
    clean_own_snapshot_temps(fs, dir)?;
    record_space(fs, config, metrics);

    let mut report = PassReport::default();
    let listing = history::scan_on(fs, dir, &config.archive_dir_name)?;

    // --- snapshot
    let newest = listing.snapshots.last().cloned();
    let base_seq = newest.as_ref().map_or(0, |s| s.last_seq);
    let pending: Vec<&SealedFile> = listing
        .sealed
        .iter()
        .filter(|s| s.last_seq > base_seq)
        .collect();
    let pending_bytes: u64 = pending.iter().map(|s| file_len(fs, &s.path)).sum();
    report.pending_logs = pending.len();
    metrics.pending_logs.set(pending.len() as i64);

    let due = pending.len() as u64 >= config.min_logs && pending_bytes >= config.min_bytes;
    let mut covered = match &newest {
        Some(s) => {
            if !due {
                verify_newest(fs_arc, &listing, s, state)?;
            }
            Some(s.last_seq)
        }
        None => None,
    };
    if due {
        let started = Instant::now();
        let mut db = match &newest {
            Some(s) => {
                let (meta, db) =
                    read_snapshot_on(fs, &s.path).map_err(PassError::SnapshotDamaged)?;
                if meta.last_seq != s.last_seq {
                    return Err(PassError::SnapshotNameMismatch {
                        path: s.path.clone(),
                        found: meta.last_seq,
                    });
                }
                state.verified = FileId::of(fs, &s.path);
                db
            }
            None => tiered_engine::db::Db::new(),
        };
        // The sealed logs only: the open segment is never read here.
        let history = History::from_listing(fs_arc.clone(), listing.clone(), false);
        let logs = pending.len();
        let should_stop = || stop.load(Ordering::SeqCst);
        match replay::replay(&mut db, &history, base_seq, None, &should_stop) {
            Ok(done) => {
                failpoint!("pass::before_publish");
                let pace = WritePace::rate(config.snapshot_write_rate).with_stop(stop);
                let path = match write_snapshot_on(fs, dir, done.last_seq, &db, pace) {
                    Ok(p) => p,
                    // A shutdown abandoned the write (the temp is gone).
                    Err(SnapshotError::Io { source, .. })
                        if source.raw_os_error() == Some(libc::ECANCELED)
                            && stop.load(Ordering::SeqCst) =>
                    {
                        report.interrupted = true;
                        report.newest_snapshot = covered;
                        return Ok(report);
                    }
                    Err(e) => return Err(PassError::Publish(e)),
                };
                state.verified = FileId::of(fs, &path);
                let secs = started.elapsed().as_secs_f64();
                metrics.snapshot_published(done.last_seq, unix_secs(fs, &path), secs);
                tracing::info!(path = %path.display(), last_seq = done.last_seq, records = done.records, logs, duration_secs = secs, "snapshot published");
                report.published = Some(done.last_seq);
                covered = Some(done.last_seq);
                report.pending_logs = 0;
                metrics.pending_logs.set(0);
                failpoint!("pass::after_publish");
            }
            Err(ReplayError::Interrupted) => {
                report.interrupted = true;
                report.newest_snapshot = covered;
                return Ok(report);
            }
            Err(e) => return Err(PassError::Replay(e)),
        }
    }
    report.newest_snapshot = covered;
    if let Some(seq) = covered {
        let path = dir.join(layout::snapshot_name(seq));
        let path = if sys::exists(fs, &path).unwrap_or(false) {
            path
        } else {
            archive_snaps.join(layout::snapshot_name(seq))
        };
        metrics.set_newest_snapshot(seq, unix_secs(fs, &path));
    }

    // --- archive (the covering snapshot is durable: write_snapshot fsynced
    // its directory, or it was verified above)
    let Some(covered) = covered else {
        record_archive_size(fs, config, metrics)?;
        return Ok(report);
    };
    let listing = history::scan_on(fs, dir, &config.archive_dir_name)?;
    let logs_to_move: Vec<&SealedFile> = listing
        .sealed
        .iter()
        .filter(|s| !s.archived && s.last_seq <= covered)
        .collect();
    let top_snaps: Vec<&SnapshotFile> = listing.snapshots.iter().filter(|s| !s.archived).collect();
    let snaps_to_move: Vec<&SnapshotFile> = top_snaps
        .iter()
        .rev()
        .skip(config.keep_snapshots)
        .filter(|s| s.last_seq < covered)
        .copied()
        .collect();
    let log_verifier =
        |p: &Path| -> Result<(), String> { verify_log_named(fs, p).map_err(|e| e.to_string()) };
    for log in logs_to_move {
        if stop.load(Ordering::SeqCst) {
            report.interrupted = true;
            return Ok(report);
        }
        failpoint!("pass::between_moves");
        match mover::move_file_on(fs, &log.path, &archive_logs, &log_verifier, stop) {
            Ok(out) => count_move(metrics, &mut report, "log", out),
            Err(MoveError::Interrupted(_)) => {
                report.interrupted = true;
                return Ok(report);
            }
            Err(e) => return Err(archive_failed(fs, config, metrics, e)),
        }
    }
    let snap_verifier = |p: &Path| -> Result<(), String> { verify_snapshot_named(fs, p) };
    for snap in snaps_to_move {
        if stop.load(Ordering::SeqCst) {
            report.interrupted = true;
            return Ok(report);
        }
        failpoint!("pass::between_moves");
        match mover::move_file_on(fs, &snap.path, &archive_snaps, &snap_verifier, stop) {
            Ok(out) => count_move(metrics, &mut report, "snapshot", out),
            Err(MoveError::Interrupted(_)) => {
                report.interrupted = true;
                return Ok(report);
            }
            Err(e) => return Err(archive_failed(fs, config, metrics, e)),
        }
    }

    // --- retention
    if config.retain_days.is_some() || config.retain_bytes.is_some() {
        report.retention_deleted = apply_retention(fs, config, metrics)?;
    }
    record_archive_size(fs, config, metrics)?;
    Ok(report)
}

/// A failed move ends the pass, but a full archive tier is what retention
/// relieves: it runs first (it never needs the file that failed to move),
/// or every later pass would fail on the same move and nothing would ever
/// free the space.
fn archive_failed(fs: &dyn Fs, config: &Config, metrics: &Metrics, e: MoveError) -> PassError {
    if e.is_no_space() && (config.retain_days.is_some() || config.retain_bytes.is_some()) {
        match apply_retention(fs, config, metrics) {
            Ok(deleted) => {
                tracing::warn!(
                    deleted,
                    "archive tier full: retention ran; the move is retried next pass"
                )
            }
            Err(r) => tracing::error!("retention on a full archive tier: {r}"),
        }
    }
    PassError::Archive(e)
}

fn count_move(metrics: &Metrics, report: &mut PassReport, kind: &'static str, out: MoveOutcome) {
    let bytes = match out {
        MoveOutcome::Moved { bytes } | MoveOutcome::AlreadyArchived { bytes } => bytes,
        MoveOutcome::AlreadyDone => return,
    };
    metrics.archived(kind, bytes);
    report.archived_bytes += bytes;
    if kind == "log" {
        report.archived_logs += 1;
    } else {
        report.archived_snapshots += 1;
    }
}

/// Verifies the newest snapshot unless the same file was verified before.
fn verify_newest(
    fs: &Arc<dyn Fs>,
    listing: &Listing,
    s: &SnapshotFile,
    state: &mut PassState,
) -> Result<(), PassError> {
    let id = FileId::of(&**fs, &s.path);
    if id.is_some() && state.verified == id {
        return Ok(());
    }
    let history = History::from_listing(fs.clone(), listing.clone(), false);
    match history.verify_snapshot(s) {
        Ok(_) => {}
        Err(SnapshotCheck::Damaged(e)) => return Err(PassError::SnapshotDamaged(e)),
        Err(SnapshotCheck::NameMismatch { path, found }) => {
            return Err(PassError::SnapshotNameMismatch { path, found })
        }
    }
    state.verified = id;
    Ok(())
}

/// The format check of an archived log: every record valid, and the records
/// are exactly the range its name says.
fn verify_log_named(fs: &dyn Fs, path: &Path) -> Result<(), SegmentError> {
    verify_segment_on(fs, path).map(|_| ())
}

fn verify_snapshot_named(fs: &dyn Fs, path: &Path) -> Result<(), String> {
    let meta = verify_snapshot_on(fs, path).map_err(|e| e.to_string())?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match layout::classify(name) {
        layout::FileKind::Snapshot { last_seq } if last_seq == meta.last_seq => Ok(()),
        _ => Err(format!(
            "header says last_seq {}, name is {name}",
            meta.last_seq
        )),
    }
}

/// Removes `snapshot-*.tmp` files at the top of `dir`: only the snapshotter
/// writes snapshots there, and it holds the lock, so any such file is left
/// over from a crash of an earlier run.
fn clean_own_snapshot_temps(fs: &dyn Fs, dir: &Path) -> Result<(), SysError> {
    let names = fs
        .read_dir(dir)
        .map_err(|e| SysError::new("read dir", dir, e))?;
    let mut removed = false;
    for name in names {
        if layout::is_snapshot_temp(&name.to_string_lossy()) {
            let path = dir.join(name);
            if sys::unlink(fs, &path)
                .map_err(|e| SysError::new("remove stale temp", &path, e.source))?
            {
                tracing::info!(tmp = %path.display(), "removed a stale snapshot temp file");
                removed = true;
            }
        }
    }
    if removed {
        sys::fsync_dir(fs, dir)?;
    }
    Ok(())
}

fn file_len(fs: &dyn Fs, path: &Path) -> u64 {
    fs.stat(path).map(|m| m.len).unwrap_or(0)
}

fn mtime(fs: &dyn Fs, path: &Path) -> Option<SystemTime> {
    fs.stat(path).ok().and_then(|m| m.modified)
}

fn unix_secs(fs: &dyn Fs, path: &Path) -> f64 {
    mtime(fs, path)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

fn record_space(fs: &dyn Fs, config: &Config, metrics: &Metrics) {
    match sys::statvfs(fs, &config.dir) {
        Ok(s) => metrics.set_tier_space("primary", s),
        Err(e) => tracing::warn!("{e}"),
    }
    match sys::statvfs(fs, &config.archive_dir()) {
        Ok(s) => metrics.set_tier_space("archive", s),
        Err(e) => tracing::warn!("{e}"),
    }
}

fn archived_files(fs: &dyn Fs, listing: &Listing) -> (Vec<SnapInfo>, Vec<LogInfo>) {
    let snaps = listing
        .snapshots
        .iter()
        .map(|s| SnapInfo {
            last_seq: s.last_seq,
            mtime: mtime(fs, &s.path).unwrap_or(UNIX_EPOCH),
            bytes: file_len(fs, &s.path),
            archived: s.archived,
            path: s.path.clone(),
        })
        .collect();
    let logs = listing
        .sealed
        .iter()
        .map(|l| LogInfo {
            first_seq: l.first_seq,
            last_seq: l.last_seq,
            bytes: file_len(fs, &l.path),
            archived: l.archived,
            path: l.path.clone(),
        })
        .collect();
    (snaps, logs)
}

fn record_archive_size(fs: &dyn Fs, config: &Config, metrics: &Metrics) -> Result<(), PassError> {
    let listing = history::scan_on(fs, &config.dir, &config.archive_dir_name)?;
    let (snaps, logs) = archived_files(fs, &listing);
    let (files, bytes) = snaps
        .iter()
        .filter(|s| s.archived)
        .map(|s| s.bytes)
        .chain(logs.iter().filter(|l| l.archived).map(|l| l.bytes))
        .fold((0u64, 0u64), |(n, b), x| (n + 1, b + x));
    metrics.set_archive_size(files, bytes);
    Ok(())
}

fn apply_retention(fs: &dyn Fs, config: &Config, metrics: &Metrics) -> Result<usize, PassError> {
    let listing = history::scan_on(fs, &config.dir, &config.archive_dir_name)?;
    let (snaps, logs) = archived_files(fs, &listing);
    let policy = Policy {
        retain_days: config.retain_days,
        retain_bytes: config.retain_bytes,
        now: SystemTime::now(),
    };
    let plan = retention::plan(&snaps, &logs, &policy, &mut |s| {
        verify_snapshot_named(fs, &s.path).is_ok()
    });
    if plan.delete.is_empty() {
        return Ok(0);
    }
    let mut dirs = Vec::new();
    for (path, bytes) in &plan.delete {
        if sys::unlink(fs, path).map_err(PassError::Retention)? {
            metrics.retention_deleted(*bytes);
            tracing::info!(path = %path.display(), bytes, cut_seq = ?plan.cut_seq, "retention deleted");
        }
        if let Some(p) = path.parent() {
            if !dirs.iter().any(|d: &PathBuf| d == p) {
                dirs.push(p.to_path_buf());
            }
        }
    }
    for d in dirs {
        sys::fsync_dir(fs, &d).map_err(PassError::Retention)?;
    }
    Ok(plan.delete.len())
}
