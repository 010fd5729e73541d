//! Recovery at start: the newest valid snapshot, then every logged command
//! after it, in sequence.
//!
//! The files, their order, the torn-tail rule and the records come from the
//! history walker ([`crate::history`]); this module applies the records and
//! decides what a damaged file costs.
//!
//! 1. Scan `DIR` and `DIR/<archive>/{logs,snapshots}` ([`crate::history::scan`]).
//! 2. Load the newest snapshot whose checksum holds; a damaged one is logged
//!    and the next older one (top level or archived) is tried.
//! 3. Replay sealed segments (top level or archived) and open segments in
//!    sequence order, skipping records the snapshot covers. A missing range
//!    of sequence numbers is a gap.
//! 4. A torn record at the end of the newest open segment (a crash mid-write:
//!    nothing valid follows it) is cut off, the rest of the file zeroed, and
//!    logged. Any other damage, and any gap, stops recovery with an error
//!    naming the file and offset, unless [`RecoveryMode::TolerateCorruption`]
//!    (the operator's explicit flag) is given: then reading resumes at the
//!    next complete batch of the damaged segment (only the damaged batches
//!    are lost; [`Recovered::lost`] names their seqs), with a warning.
//!
//! A file that vanishes meanwhile (the snapshotter moved it to the archive)
//! makes recovery scan again rather than fail. Recovery does not seal open
//! segments: it reports them ([`Recovered::open_segments`]) and the engine
//! seals them before writing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cmd::{self, ApplyError, ReplayQueue};
use crate::db::Db;
use crate::history::{self, History, HistoryError, OnDamage, Step, WalkOptions};
use crate::layout::{ARCHIVE_LOGS_DIR, ARCHIVE_SNAPSHOTS_DIR};
use crate::segment::{self, RecordMeta, SegmentError};
use crate::snapshot::{self, SnapshotError};
use crate::sys::{self, Fs, OpenMode};

/// How much damage recovery accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Only a torn tail at the end of the newest open segment is cut; any
    /// other damage or gap is an error. The default.
    #[default]
    Strict,
    /// Damage and gaps are skipped with a warning: acknowledged commands may
    /// be lost. Only with the operator's explicit flag (`--accept-data-loss`).
    TolerateCorruption,
}

/// An open segment found at start, with where its valid data ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredOpen {
    pub path: PathBuf,
    pub first_seq: u64,
    /// Last valid record, None when it holds none.
    pub last_seq: Option<u64>,
    /// Bytes of header and valid records.
    pub valid_len: u64,
}

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutTail {
    pub path: PathBuf,
    pub offset: u64,
    /// Bytes after `offset` that were cut (and zeroed).
    pub cut_bytes: u64,
    /// The first seq of the torn batch (the next expected one).
    pub first_seq: u64,
    /// Records its header announced, when the header was intact (None also
    /// for a version-1 segment).
    pub records: Option<u32>,
    pub reason: String,
}

/// The recovered state.
#[derive(Debug)]
pub struct Recovered {
    pub db: Db,
    /// Last sequence number in the state (0 when empty).
    pub last_seq: u64,
    /// Timestamp of the last replayed record (0 when none).
    pub last_timestamp_ms: u64,
    /// The snapshot loaded, if any.
    pub snapshot: Option<PathBuf>,
    /// Commands replayed from the logs.
    pub replayed: u64,
    /// Record bytes replayed.
    pub replayed_bytes: u64,
    /// Open segments at the top of the dir, in sequence order.
    pub open_segments: Vec<RecoveredOpen>,
    pub cut_tail: Option<CutTail>,
    /// Damage skipped under [`RecoveryMode::TolerateCorruption`] (and
    /// damaged snapshots passed over), one line each.
    pub warnings: Vec<String>,
    /// Sequence ranges (first, last) lost to damage passed over under
    /// [`RecoveryMode::TolerateCorruption`] where reading resumed at the
    /// next complete batch.
    pub lost: Vec<(u64, u64)>,
    /// Damaged primary-tier files removed in favour of their archived copy
    /// (which verified): see [`heal_from_archive`].
    pub healed: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Layout(#[from] HistoryError),
    #[error("corrupt command log: {source}; refusing to start: put back an intact copy of the file (from a backup), or pass --accept-data-loss to skip only the damaged batches (the seqs they held are lost and logged)")]
    Corrupt { source: SegmentError },
    #[error("gap in the command log: {path} at offset {offset} starts at seq {found}, expected seq {expected}; refusing to start (pass --accept-data-loss to accept the loss)")]
    Gap {
        path: PathBuf,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error("{path} at offset {offset}: {source}; refusing to start (pass --accept-data-loss to skip it)")]
    Apply {
        path: PathBuf,
        offset: u64,
        source: ApplyError,
    },
    #[error("cannot cut the torn tail of {path} at offset {offset}: {source}")]
    CutTail {
        path: PathBuf,
        offset: u64,
        source: std::io::Error,
    },
    #[error("cannot remove the damaged {path} in favour of its archived copy: {source}")]
    Heal { path: PathBuf, source: SegmentError },
    #[error("{path} kept vanishing while scanning (moved by the snapshotter?)")]
    Vanished { path: PathBuf },
    #[error("cannot read snapshot: {0}")]
    Snapshot(SnapshotError),
}

enum Attempt {
    Done(Box<Recovered>),
    Vanished(PathBuf),
}

/// Recovers the state of `dir` (see the module doc).
pub fn recover(
    dir: &Path,
    archive_dir_name: &str,
    mode: RecoveryMode,
) -> Result<Recovered, RecoveryError> {
    recover_on(sys::real(), dir, archive_dir_name, mode)
}

/// [`recover`] through the file seam `fs`.
pub fn recover_on(
    fs: Arc<dyn Fs>,
    dir: &Path,
    archive_dir_name: &str,
    mode: RecoveryMode,
) -> Result<Recovered, RecoveryError> {
    const ATTEMPTS: usize = 20;
    let mut last = PathBuf::new();
    let healed = heal_from_archive(&*fs, dir, archive_dir_name)?;
    for attempt in 0..ATTEMPTS {
        match try_recover(&fs, dir, archive_dir_name, mode)? {
            Attempt::Done(mut r) => {
                r.healed = healed;
                return Ok(*r);
            }
            Attempt::Vanished(path) => {
                tracing::info!(path = %path.display(), attempt, "file moved during recovery, scanning again");
                last = path;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Err(RecoveryError::Vanished { path: last })
}

fn warn(warnings: &mut Vec<String>, w: String) {
    tracing::warn!("{w}");
    warnings.push(w);
}

fn try_recover(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    archive_dir_name: &str,
    mode: RecoveryMode,
) -> Result<Attempt, RecoveryError> {
    fail::fail_point!("recovery::scan");
    let history = match History::scan_on(fs.clone(), dir, archive_dir_name) {
        Ok(h) => h,
        Err(e) => return Err(RecoveryError::Layout(e)),
    };
    let mut warnings = Vec::new();

    // 1. the newest valid snapshot
    let loaded = match history.load_snapshot(u64::MAX, &mut |w| warn(&mut warnings, w)) {
        Ok(l) => l,
        Err(HistoryError::Vanished { path }) => return Ok(Attempt::Vanished(path)),
        Err(e) => return Err(RecoveryError::Layout(e)),
    };
    let (mut db, from_seq, snapshot_path) = match loaded {
        Some((snap, meta, db)) => {
            tracing::info!(path = %snap.path.display(), last_seq = meta.last_seq, entries = meta.entries, "loaded snapshot");
            (db, meta.last_seq, Some(snap.path))
        }
        None => (Db::new(), 0, None),
    };

    // 2. the logs after it
    let on_damage = match mode {
        RecoveryMode::Strict => OnDamage::Stop,
        RecoveryMode::TolerateCorruption => OnDamage::Skip,
    };
    let mut walk = history.walk(WalkOptions {
        from_seq,
        until_seq: None,
        on_damage,
    });
    let mut open_segments = Vec::new();
    let mut cut_tail = None;
    let mut lost = Vec::new();
    let mut replay = Replay {
        mode,
        history: &history,
        warnings,
        replayed: 0,
        replayed_bytes: 0,
        last_ts: 0,
        last_seen: from_seq,
        started: Instant::now(),
        last_progress: Instant::now(),
    };
    // Records are queued in small groups (their payloads copied out of the
    // walker's buffer), whose keyspace lookups are warmed together before
    // they are applied in order; the queue is emptied before any other
    // step or error is handled, so that everything happens in log order.
    let mut queue = ReplayQueue::new();
    while let Some(step) = walk.next_step() {
        if !matches!(step, Ok(Step::Record { .. })) {
            queue.apply(&mut db, |db, r, payload| replay.apply(db, r, payload))?;
        }
        let step = match step {
            Ok(s) => s,
            Err(HistoryError::Vanished { path }) => return Ok(Attempt::Vanished(path)),
            Err(HistoryError::Gap {
                path,
                expected,
                found,
            }) => {
                return Err(RecoveryError::Gap {
                    path,
                    offset: 0,
                    expected,
                    found,
                })
            }
            Err(HistoryError::Segment(source)) => return Err(RecoveryError::Corrupt { source }),
            Err(e) => return Err(RecoveryError::Layout(e)),
        };
        match step {
            Step::Record {
                record,
                log,
                offset,
                bytes,
            } => {
                let queued = Queued {
                    record,
                    log,
                    offset,
                    bytes,
                };
                if queue.push(queued, walk.payload()) {
                    queue.apply(&mut db, |db, r, payload| replay.apply(db, r, payload))?;
                }
            }
            Step::Skipped(e) => {
                if let HistoryError::Lost { first, last, .. } = &e {
                    lost.push((*first, *last));
                }
                warn(&mut replay.warnings, format!("accepting data loss: {e}"))
            }
            Step::Tail {
                log,
                offset,
                file_len,
                cause,
                torn,
            } => {
                if !torn {
                    warn(
                        &mut replay.warnings,
                        format!("accepting data loss: {cause}"),
                    );
                }
                let path = &history.logs()[log].path;
                let cut_bytes = file_len.saturating_sub(offset);
                let (first_seq, records) = match &cause {
                    SegmentError::BadRecord { batch: Some(b), .. } => (b.first_seq, b.count),
                    _ => (replay.last_seen + 1, None),
                };
                cut_and_zero(&**fs, path, offset, file_len)?;
                let announced =
                    records.map_or("unknown (header not intact)".to_string(), |n| n.to_string());
                tracing::warn!(
                    "cut the torn tail of {}: bytes {offset}..{file_len} ({cut_bytes} bytes) zeroed, from seq {first_seq} on (the unacknowledged batch there announced {announced} records): {cause}",
                    path.display()
                );
                cut_tail = Some(CutTail {
                    path: path.clone(),
                    offset,
                    cut_bytes,
                    first_seq,
                    records,
                    reason: cause.to_string(),
                });
            }
            Step::LogDone {
                log,
                last_seq,
                valid_len,
            } => {
                let file = &history.logs()[log];
                if file.is_open() {
                    open_segments.push(RecoveredOpen {
                        path: file.path.clone(),
                        first_seq: file.first_seq,
                        last_seq,
                        valid_len,
                    });
                }
            }
        }
    }
    queue.apply(&mut db, |db, r, payload| replay.apply(db, r, payload))?;
    let Replay {
        warnings,
        replayed,
        replayed_bytes,
        last_ts,
        started,
        ..
    } = replay;
    let seq = walk.last_seq();
    // Sealed segments wholly covered by the snapshot are not read; open ones
    // always are, so every open segment is reported.
    tracing::info!(
        last_seq = seq,
        replayed,
        replayed_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        snapshot = ?snapshot_path,
        "recovery done"
    );
    Ok(Attempt::Done(Box::new(Recovered {
        db,
        last_seq: seq,
        last_timestamp_ms: last_ts,
        snapshot: snapshot_path,
        replayed,
        replayed_bytes,
        open_segments,
        cut_tail,
        warnings,
        lost,
        healed: Vec::new(),
    })))
}

/// A record waiting in the replay queue.
struct Queued {
    record: RecordMeta,
    log: usize,
    offset: u64,
    bytes: u64,
}

/// What recovery counts while it applies records.
struct Replay<'h> {
    mode: RecoveryMode,
    history: &'h History,
    warnings: Vec<String>,
    replayed: u64,
    replayed_bytes: u64,
    last_ts: u64,
    last_seen: u64,
    started: Instant,
    last_progress: Instant,
}

impl Replay<'_> {
    /// Applies one record (an undecodable one stops recovery, or is
    /// skipped with a warning under [`RecoveryMode::TolerateCorruption`]).
    fn apply(&mut self, db: &mut Db, q: Queued, payload: &[u8]) -> Result<(), RecoveryError> {
        let Queued {
            record,
            log,
            offset,
            bytes,
        } = q;
        if let Err(source) = cmd::replay_payload(db, payload, record.timestamp_ms) {
            let e = RecoveryError::Apply {
                path: self.history.logs()[log].path.clone(),
                offset,
                source: ApplyError::Decode {
                    seq: record.seq,
                    source,
                },
            };
            match self.mode {
                RecoveryMode::Strict => return Err(e),
                RecoveryMode::TolerateCorruption => {
                    warn(&mut self.warnings, format!("accepting data loss: {e}"))
                }
            }
        }
        self.last_ts = record.timestamp_ms;
        self.last_seen = record.seq;
        self.replayed += 1;
        self.replayed_bytes += bytes;
        // (the clock read every 64Ki records, not on each)
        if self.replayed & 0xffff == 0 && self.last_progress.elapsed() >= Duration::from_secs(5) {
            self.last_progress = Instant::now();
            tracing::info!(
                file = %self.history.logs()[log].path.display(),
                replayed = self.replayed,
                replayed_mib = self.replayed_bytes >> 20,
                seq = record.seq,
                elapsed_secs = self.started.elapsed().as_secs(),
                "replaying command log"
            );
        }
        Ok(())
    }
}

/// Self-healing from the archive: a sealed segment or snapshot at the top
/// of `dir` that also has a copy in the archive (a move the snapshotter had
/// not finished: its copy is made and verified before the primary one is
/// removed) is checked; when the primary copy is damaged and the archived
/// one verifies (checksums, and its range against its name), the damaged
/// primary copy is removed (unlink, fsync the dir) so that recovery reads
/// the archived one, and a warning says so. Only such duplicates are read
/// twice. Returns the files removed.
pub fn heal_from_archive(
    fs: &dyn Fs,
    dir: &Path,
    archive_dir_name: &str,
) -> Result<Vec<PathBuf>, RecoveryError> {
    let listing = history::scan_on(fs, dir, archive_dir_name).map_err(RecoveryError::Layout)?;
    let archive = dir.join(archive_dir_name);
    let mut healed = Vec::new();
    let exists = |p: &Path| fs.stat(p).is_ok();
    let segment_ok = |p: &Path| segment::verify_segment_on(fs, p);
    let snapshot_ok = |p: &Path, last: u64| {
        snapshot::verify_snapshot_on(fs, p)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.last_seq == last {
                    Ok(())
                } else {
                    Err(format!(
                        "header says last seq {}, the name says {last}",
                        m.last_seq
                    ))
                }
            })
    };
    let mut candidates: Vec<(PathBuf, PathBuf, Result<(), String>, bool)> = Vec::new();
    for s in listing.sealed.iter().filter(|s| !s.archived) {
        let copy = archive
            .join(ARCHIVE_LOGS_DIR)
            .join(s.path.file_name().expect("a file name"));
        if !exists(&copy) {
            continue;
        }
        match segment_ok(&s.path) {
            Ok(_) => continue,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                let copy_ok = segment_ok(&copy).is_ok();
                candidates.push((s.path.clone(), copy, Err(e.to_string()), copy_ok));
            }
        }
    }
    for s in listing.snapshots.iter().filter(|s| !s.archived) {
        let copy = archive
            .join(ARCHIVE_SNAPSHOTS_DIR)
            .join(s.path.file_name().expect("a file name"));
        if !exists(&copy) || !exists(&s.path) {
            continue;
        }
        if let Err(e) = snapshot_ok(&s.path, s.last_seq) {
            let copy_ok = snapshot_ok(&copy, s.last_seq).is_ok();
            candidates.push((s.path.clone(), copy, Err(e), copy_ok));
        }
    }
    for (path, copy, damage, copy_ok) in candidates {
        let damage = damage.err().unwrap_or_default();
        if !copy_ok {
            tracing::warn!(path = %path.display(), archived = %copy.display(), "damaged, and its archived copy does not verify either: not healed ({damage})");
            continue;
        }
        segment::remove_file_durably_on(fs, dir, &path).map_err(|source| RecoveryError::Heal {
            path: path.clone(),
            source,
        })?;
        tracing::warn!(
            "healed from the archive: {} was damaged ({damage}); removed it, its archived copy {} verified and is read instead",
            path.display(),
            copy.display()
        );
        healed.push(path);
    }
    Ok(healed)
}

/// Cuts `path` at `offset` and zero-fills it back to `file_len` (keeping the
/// preallocation), then fsyncs it.
fn cut_and_zero(fs: &dyn Fs, path: &Path, offset: u64, file_len: u64) -> Result<(), RecoveryError> {
    let err = |source| RecoveryError::CutTail {
        path: path.to_path_buf(),
        offset,
        source,
    };
    let f = fs.open(path, OpenMode::ReadWrite).map_err(err)?;
    f.set_len(offset).map_err(err)?;
    f.fallocate(file_len).map_err(err)?;
    f.fsync().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{apply_payload, Effect, Set};
    use crate::db::Value;
    use crate::segment::{SegmentReader, SegmentWriter, SEGMENT_HEADER_BYTES};
    use crate::{layout, snapshot};

    fn set_cmd(i: u64) -> Vec<u8> {
        Set::new(format!("k{i}"), format!("v{i}")).encode()
    }

    /// Writes records first..first+n (SET k{i} v{i}); sealed or left open.
    fn segment(dir: &Path, first: u64, n: u64, seal: bool) -> PathBuf {
        let mut w = SegmentWriter::create(dir, first, 8192).unwrap();
        // one batch per record: damage to a record is damage to its batch
        for seq in first..first + n {
            w.append_records([(1000 + seq, &set_cmd(seq)[..])]).unwrap();
        }
        w.sync().unwrap();
        if seal {
            w.seal().unwrap()
        } else {
            w.path().to_path_buf()
        }
    }

    fn has(db: &Db, i: u64) -> bool {
        db.get(format!("k{i}").as_bytes(), 0) == Some(&Value::Str(format!("v{i}").into_bytes()))
    }

    fn record_offset(path: &Path, index: usize) -> u64 {
        let mut r = SegmentReader::open(path).unwrap();
        for _ in 0..index {
            r.next_record().unwrap().unwrap();
        }
        r.offset()
    }

    #[test]
    fn snapshot_plus_sealed_plus_open_including_archive() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let logs = d.join("archived/logs");
        let snaps = d.join("archived/snapshots");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(&snaps).unwrap();
        let s1 = segment(d, 1, 10, true);
        std::fs::rename(&s1, logs.join(s1.file_name().unwrap())).unwrap();
        segment(d, 11, 10, true);
        segment(d, 21, 5, false);
        // snapshot at 5 in the archive
        let mut db5 = Db::new();
        for i in 1..=5 {
            apply_payload(&mut db5, &set_cmd(i), 0).unwrap();
        }
        let p = snapshot::write_snapshot(d, 5, &db5).unwrap();
        std::fs::rename(&p, snaps.join(p.file_name().unwrap())).unwrap();

        let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(r.last_seq, 25);
        assert_eq!(r.replayed, 20);
        assert_eq!(r.last_timestamp_ms, 1025);
        assert!(r.snapshot.unwrap().starts_with(&snaps));
        assert!((1..=25).all(|i| has(&r.db, i)));
        assert_eq!(r.open_segments.len(), 1);
        assert_eq!(r.open_segments[0].last_seq, Some(25));
        assert!(r.cut_tail.is_none());
    }

    /// Records are applied in groups (warmed together), yet in log order:
    /// an undecodable record is reported before damage that follows it in
    /// its group, with its own seq and offset, and is skipped alone when the
    /// loss is accepted.
    #[test]
    fn grouped_replay_keeps_log_order_for_errors_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let group = ReplayQueue::<()>::LEN as u64;
        let n = 3 * group;
        let bad = group + 5;
        let damaged = bad + 3;
        let mut w = SegmentWriter::create(d, 1, 8192).unwrap();
        for seq in 1..=n {
            let p = if seq == bad {
                vec![0xff, 1, 2]
            } else {
                set_cmd(seq)
            };
            w.append_records([(1000 + seq, &p[..])]).unwrap();
        }
        w.sync().unwrap();
        let sealed = w.seal().unwrap();
        let bad_at = record_offset(&sealed, (bad - 1) as usize);
        let damaged_at = record_offset(&sealed, (damaged - 1) as usize) as usize;
        let mut b = std::fs::read(&sealed).unwrap();
        b[damaged_at + 40] ^= 0x21;
        std::fs::write(&sealed, &b).unwrap();

        let e = recover(d, "archived", RecoveryMode::Strict).unwrap_err();
        assert!(
            matches!(&e, RecoveryError::Apply { offset, source: ApplyError::Decode { seq, .. }, .. } if *offset == bad_at && *seq == bad),
            "{e}"
        );
        let r = recover(d, "archived", RecoveryMode::TolerateCorruption).unwrap();
        assert_eq!(r.lost, vec![(damaged, damaged)]);
        assert_eq!((r.last_seq, r.replayed), (n, n - 1));
        assert_eq!(r.last_timestamp_ms, 1000 + n);
        for i in 1..=n {
            assert_eq!(has(&r.db, i), i != bad && i != damaged, "k{i}");
        }
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(
            r.warnings[0].contains(&format!("record {bad}:")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn no_files_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let r = recover(dir.path(), "archived", RecoveryMode::Strict).unwrap();
        assert_eq!((r.last_seq, r.replayed, r.db.len()), (0, 0, 0));
    }

    #[test]
    fn damaged_newest_snapshot_falls_back_to_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        segment(d, 1, 10, true);
        let mut db = Db::new();
        for i in 1..=3 {
            apply_payload(&mut db, &set_cmd(i), 0).unwrap();
        }
        snapshot::write_snapshot(d, 3, &db).unwrap();
        let newest = snapshot::write_snapshot(d, 8, &db).unwrap();
        let mut b = std::fs::read(&newest).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        std::fs::write(&newest, b).unwrap();
        let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(r.snapshot.unwrap(), d.join(layout::snapshot_name(3)));
        assert_eq!((r.last_seq, r.replayed), (10, 7));
        assert_eq!(r.warnings.len(), 1);
        assert!((1..=10).all(|i| has(&r.db, i)));
    }

    #[test]
    fn torn_tail_of_the_newest_open_segment_is_cut_and_zeroed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        segment(d, 1, 5, true);
        let open = segment(d, 6, 5, false);
        let len = std::fs::metadata(&open).unwrap().len();
        let at = record_offset(&open, 4);
        let mut b = std::fs::read(&open).unwrap();
        for x in &mut b[at as usize + 3..at as usize + 20] {
            *x ^= 0xff;
        }
        std::fs::write(&open, &b).unwrap();
        let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(r.last_seq, 9);
        let cut = r.cut_tail.unwrap();
        assert_eq!((cut.offset, cut.cut_bytes), (at, len - at));
        let after = std::fs::read(&open).unwrap();
        assert!(after[at as usize..].iter().all(|&x| x == 0), "zeroed");
        assert_eq!(r.open_segments[0].valid_len, at);
        // a second recovery is clean
        let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(r.last_seq, 9);
        assert!(r.cut_tail.is_none());
    }

    #[test]
    fn damage_in_a_sealed_segment_or_mid_open_segment_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sealed = segment(d, 1, 5, true);
        let open = segment(d, 6, 5, false);
        // torn-looking damage at the end of a *sealed* segment is corruption
        let good = std::fs::read(&sealed).unwrap();
        let mut b = good.clone();
        let n = b.len();
        b[n - 2] ^= 1;
        std::fs::write(&sealed, &b).unwrap();
        let e = recover(d, "archived", RecoveryMode::Strict).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, RecoveryError::Corrupt { .. }), "{msg}");
        assert!(
            msg.contains(sealed.to_str().unwrap()) && msg.contains("offset"),
            "{msg}"
        );
        // tolerated with the explicit mode: 1..4 and then a gap is accepted
        let r = recover(d, "archived", RecoveryMode::TolerateCorruption).unwrap();
        assert_eq!(r.last_seq, 10);
        assert!(has(&r.db, 4) && !has(&r.db, 5) && has(&r.db, 6));
        assert!(!r.warnings.is_empty());
        std::fs::write(&sealed, &good).unwrap();

        // a flipped bit in the middle of the newest open segment
        let at = record_offset(&open, 1) as usize + SEGMENT_HEADER_BYTES as usize / 4;
        let mut b = std::fs::read(&open).unwrap();
        b[at] ^= 4;
        std::fs::write(&open, &b).unwrap();
        let e = recover(d, "archived", RecoveryMode::Strict).unwrap_err();
        assert!(matches!(e, RecoveryError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains(open.to_str().unwrap()));
    }

    /// `--accept-data-loss` loses only the damaged batches: reading resumes
    /// at the next complete batch, in a sealed and in the newest open
    /// segment, and the lost seqs are reported exactly.
    #[test]
    fn accepting_data_loss_loses_only_the_damaged_batches() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sealed = segment(d, 1, 10, true);
        let open = segment(d, 11, 10, false);
        // records 3 and 4 (sealed), 15 (open): one batch each
        let at: Vec<_> = [(&sealed, 2), (&sealed, 3), (&open, 4)]
            .map(|(path, index)| (path, record_offset(path, index) as usize))
            .into();
        for (path, at) in at {
            let mut b = std::fs::read(path).unwrap();
            b[at + 40] ^= 0x21;
            std::fs::write(path, &b).unwrap();
        }
        let e = recover(d, "archived", RecoveryMode::Strict).unwrap_err();
        assert!(matches!(e, RecoveryError::Corrupt { .. }), "{e}");
        let r = recover(d, "archived", RecoveryMode::TolerateCorruption).unwrap();
        assert_eq!(r.lost, vec![(3, 4), (15, 15)]);
        assert_eq!(r.last_seq, 20);
        for i in 1..=20 {
            assert_eq!(has(&r.db, i), ![3, 4, 15].contains(&i), "k{i}");
        }
        assert!(r.cut_tail.is_none());
        assert_eq!(r.open_segments[0].last_seq, Some(20));
    }

    /// A damaged sealed segment or snapshot on the primary tier whose
    /// archived copy verifies is replaced by it at start, not refused; when
    /// the copy is damaged too, nothing is removed and the start refuses.
    #[test]
    fn a_damaged_primary_copy_is_healed_from_its_verified_archived_copy() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let logs = d.join("archived/logs");
        let snaps = d.join("archived/snapshots");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(&snaps).unwrap();
        let sealed = segment(d, 1, 10, true);
        segment(d, 11, 5, false);
        let mut db = Db::new();
        for i in 1..=5 {
            apply_payload(&mut db, &set_cmd(i), 0).unwrap();
        }
        let snap = snapshot::write_snapshot(d, 5, &db).unwrap();
        // both moved to the archive, but the primary copies not yet removed
        let seg_copy = logs.join(sealed.file_name().unwrap());
        let snap_copy = snaps.join(snap.file_name().unwrap());
        std::fs::copy(&sealed, &seg_copy).unwrap();
        std::fs::copy(&snap, &snap_copy).unwrap();
        let good = std::fs::read(&sealed).unwrap();
        let mut b = good.clone();
        let n = b.len();
        b[n - 3] ^= 0x10;
        std::fs::write(&sealed, &b).unwrap();
        let mut s = std::fs::read(&snap).unwrap();
        s[60] ^= 1;
        std::fs::write(&snap, &s).unwrap();

        // the archived segment is damaged too: it stays, the start refuses
        // (the snapshot, whose copy verifies, is healed meanwhile)
        std::fs::write(&seg_copy, &b).unwrap();
        let e = recover(d, "archived", RecoveryMode::Strict).unwrap_err();
        assert!(matches!(e, RecoveryError::Corrupt { .. }), "{e}");
        assert!(sealed.exists() && !snap.exists());

        std::fs::write(&snap, &s).unwrap();
        std::fs::write(&seg_copy, &good).unwrap();
        let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
        let mut healed = r.healed.clone();
        healed.sort();
        assert_eq!(healed, vec![sealed.clone(), snap.clone()]);
        assert!(!sealed.exists() && !snap.exists());
        assert_eq!(r.snapshot.as_deref(), Some(snap_copy.as_path()));
        assert_eq!(r.last_seq, 15);
        assert!((1..=15).all(|i| has(&r.db, i)));
        // nothing left to heal
        let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
        assert!(r.healed.is_empty());
    }

    /// Accepting the loss of a damaged sealed segment must not let the
    /// engine reuse the sequence numbers its name claims: new records would
    /// then exist twice with different contents (the snapshotter and a
    /// point-in-time restore read both files).
    #[test]
    fn tolerated_damage_in_the_last_sealed_segment_never_reuses_its_seqs() {
        // damage in the middle of the last segment (valid records follow)
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        segment(d, 1, 5, true);
        let sealed = segment(d, 6, 5, true);
        let at = record_offset(&sealed, 2) as usize + 30;
        let mut b = std::fs::read(&sealed).unwrap();
        b[at] ^= 0x40;
        std::fs::write(&sealed, &b).unwrap();
        let r = recover(d, "archived", RecoveryMode::TolerateCorruption).unwrap();
        assert!(has(&r.db, 7) && !has(&r.db, 8));
        assert_eq!(r.last_seq, 10, "the engine goes on after the named range");
        assert!(!r.warnings.is_empty());

        // a header that does not even open
        let mut b = std::fs::read(&sealed).unwrap();
        b[0] ^= 1;
        std::fs::write(&sealed, &b).unwrap();
        let r = recover(d, "archived", RecoveryMode::TolerateCorruption).unwrap();
        assert!(has(&r.db, 5) && !has(&r.db, 6));
        assert_eq!(r.last_seq, 10);
    }

    #[test]
    fn a_gap_stops_the_start_with_file_and_seq() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        segment(d, 1, 5, true);
        segment(d, 8, 5, true);
        let e = recover(d, "archived", RecoveryMode::Strict).unwrap_err();
        assert!(
            matches!(
                e,
                RecoveryError::Gap {
                    expected: 6,
                    found: 8,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(&layout::sealed_segment_name(8, 12)));
        let r = recover(d, "archived", RecoveryMode::TolerateCorruption).unwrap();
        assert_eq!(r.last_seq, 12);
        // logs that do not start at 1 without a snapshot are a gap too
        let dir2 = tempfile::tempdir().unwrap();
        segment(dir2.path(), 3, 2, true);
        assert!(matches!(
            recover(dir2.path(), "archived", RecoveryMode::Strict),
            Err(RecoveryError::Gap {
                expected: 1,
                found: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_file_moved_to_the_archive_meanwhile_is_found_again() {
        // The snapshotter moves sealed segments top -> archive (copy, fsync,
        // rename into the archive, unlink at the top). Race recovery against
        // such a move at many different moments.
        for i in 0..40u64 {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().to_path_buf();
            let logs = d.join("archived/logs");
            std::fs::create_dir_all(&logs).unwrap();
            let s = segment(&d, 1, 5, true);
            segment(&d, 6, 5, true);
            segment(&d, 11, 5, false);
            let dst = logs.join(s.file_name().unwrap());
            let mover = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(i * 25));
                let tmp = dst.with_extension("log.tmp");
                std::fs::copy(&s, &tmp).unwrap();
                std::fs::rename(&tmp, &dst).unwrap();
                std::fs::remove_file(&s).unwrap();
            });
            let r = recover(&d, "archived", RecoveryMode::Strict).unwrap();
            mover.join().unwrap();
            assert_eq!(r.last_seq, 15);
            assert!((1..=15).all(|i| has(&r.db, i)));
        }
    }

    /// Failures of the file seam during recovery stop it with the errno;
    /// nothing is cut unless the cut itself succeeds.
    #[test]
    fn seam_failures_stop_recovery_with_their_errno() {
        use crate::sys::{Fault, FaultFs, Op};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        segment(d, 1, 5, true);
        let open = segment(d, 6, 5, false);
        let at = record_offset(&open, 4);
        let mut b = std::fs::read(&open).unwrap();
        for x in &mut b[at as usize + 3..at as usize + 20] {
            *x ^= 0xff;
        }
        std::fs::write(&open, &b).unwrap();
        let fault = FaultFs::new(sys::real());

        fault.inject(Op::ReadDir, Fault::Errno(libc::EIO));
        let e = recover_on(fault.handle(), d, "archived", RecoveryMode::Strict).unwrap_err();
        assert!(
            matches!(&e, RecoveryError::Layout(HistoryError::ReadDir { source, .. }) if source.raw_os_error() == Some(libc::EIO)),
            "{e}"
        );
        for op in [Op::SetLen, Op::Fallocate, Op::Fsync] {
            // (a failure after the cut leaves it cut: damage it again)
            std::fs::write(&open, &b).unwrap();
            fault.inject(op, Fault::Errno(libc::EIO));
            let e = recover_on(fault.handle(), d, "archived", RecoveryMode::Strict).unwrap_err();
            assert!(
                matches!(&e, RecoveryError::CutTail { source, offset, .. } if source.raw_os_error() == Some(libc::EIO) && *offset == at),
                "{op:?}: {e}"
            );
        }
        // the cut went through the seam, in order: open, cut, re-extend, fsync
        std::fs::write(&open, &b).unwrap();
        fault.take_calls();
        let r = recover_on(fault.handle(), d, "archived", RecoveryMode::Strict).unwrap();
        assert_eq!(r.last_seq, 9);
        let ops: Vec<Op> = fault
            .take_calls()
            .into_iter()
            .filter(|(_, p)| p == &open)
            .map(|(op, _)| op)
            .filter(|op| matches!(op, Op::SetLen | Op::Fallocate | Op::Fsync))
            .collect();
        assert_eq!(ops, [Op::SetLen, Op::Fallocate, Op::Fsync]);
        assert!(std::fs::read(&open).unwrap()[at as usize..]
            .iter()
            .all(|&x| x == 0));
    }
}
