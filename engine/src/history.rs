//! The one walker over a persistence dir's history: snapshots and command-log
//! segments on the primary tier and in the archive, in sequence order.
//!
//! Recovery, `verify` and `dump`, and the snapshotter's snapshot building,
//! archiving, retention and point-in-time restore all list files with
//! [`scan`] and read records with [`History::walk`]; the rules live here
//! once:
//!
//! - **Names**: a file counts only if [`layout::classify`] accepts its name
//!   (the one definition of every name format). Names that look like history
//!   (`cmdlog-…`, `snapshot-…`) but do not parse, and open segments inside the
//!   archive, are [`Listing::rejected`] and never read.
//! - **Duplicates**: a sealed segment or snapshot present at the top of `DIR`
//!   and in the archive (a move interrupted by a crash) is listed once,
//!   preferring the top-level copy.
//! - **Order**: segments by first seq, an open segment after a sealed one
//!   with the same first seq; snapshots by last seq.
//! - **Torn tail**: a damaged record with nothing valid after it is a torn
//!   write only at the end of the *newest open segment* (the last segment in
//!   order, when it is open); anywhere else it is damage.
//! - **Contiguity**: records run seq by seq from the start point; a segment
//!   that starts after the next expected seq is a gap; records at or below
//!   the start point (covered by a snapshot, or an overlap) are skipped.
//!
//! ```text
//!  scan(DIR) ─► Listing { open, sealed, snapshots, rejected }
//!  History::walk(from_seq, until, on_damage)
//!     ─► Step::Record { seq, payload, … } …  Step::LogDone { … }  per segment
//!     ─► Step::Tail { … }   the newest open segment's valid data ends here
//!     ─► Step::Skipped(e)   damage passed over (OnDamage::Skip only)
//! ```
//!
//! Memory is bounded by the reader's buffer (1 MiB of read-ahead, grown to
//! hold one batch up to 16 MiB or one record), never by the size of a
//! segment or of the history. Records are read in place: [`Walk::next_step`]
//! yields a [`RecordMeta`] and [`Walk::payload`] borrows the payload from
//! the reader's buffer (no copy, no allocation per record). Applying a
//! record is the caller's business (one call into the state machine per
//! consumer). Every segment format version (1, 2, 3) is read here.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::db::Db;
use crate::layout::{self, FileKind, ARCHIVE_LOGS_DIR, ARCHIVE_SNAPSHOTS_DIR};
use crate::record::Record;
use crate::segment::{RecordMeta, SegmentError, SegmentReader};
use crate::snapshot::{self, SnapshotError, SnapshotMeta};
use crate::sys::{self, Fs};

/// An open segment found by [`scan`] (only at the top of `DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    pub first_seq: u64,
    pub path: PathBuf,
}

/// A sealed segment found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFile {
    pub first_seq: u64,
    pub last_seq: u64,
    pub path: PathBuf,
    /// Found in `DIR/<archive>/logs` rather than at the top of `DIR`.
    pub archived: bool,
}

/// A snapshot found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub last_seq: u64,
    pub path: PathBuf,
    /// Found in `DIR/<archive>/snapshots` rather than at the top of `DIR`.
    pub archived: bool,
}

/// One segment in walking order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub first_seq: u64,
    /// The last seq its name promises; `None` for an open segment.
    pub last_seq: Option<u64>,
    pub path: PathBuf,
    pub archived: bool,
}

impl LogFile {
    /// True for an open (being written) segment.
    pub fn is_open(&self) -> bool {
        self.last_seq.is_none()
    }
}

/// Every segment and snapshot of a persistence dir, each list sorted by
/// sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub open: Vec<OpenFile>,
    pub sealed: Vec<SealedFile>,
    pub snapshots: Vec<SnapshotFile>,
    /// Files whose names look like history but that the name validator
    /// refuses (or an open segment inside the archive); never read.
    pub rejected: Vec<PathBuf>,
}

impl Listing {
    /// Segments in walking order: by first seq, open after sealed.
    /// `include_open = false` leaves the open segments out.
    pub fn logs(&self, include_open: bool) -> Vec<LogFile> {
        let mut v: Vec<LogFile> = self
            .sealed
            .iter()
            .map(|s| LogFile {
                first_seq: s.first_seq,
                last_seq: Some(s.last_seq),
                path: s.path.clone(),
                archived: s.archived,
            })
            .collect();
        if include_open {
            v.extend(self.open.iter().map(|o| LogFile {
                first_seq: o.first_seq,
                last_seq: None,
                path: o.path.clone(),
                archived: false,
            }));
        }
        v.sort_by_key(|l| (l.first_seq, l.is_open()));
        v
    }
}

/// Why the history could not be listed or walked. Every variant names a file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A directory could not be listed.
    #[error("cannot list {}: {source}", path.display())]
    ReadDir { path: PathBuf, source: io::Error },
    /// The next segment starts after the next expected seq.
    #[error("gap in the command history: {} starts at seq {found}, expected seq {expected}", path.display())]
    Gap {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    /// A segment is damaged (header, record, sequence, or shorter or longer
    /// than its name says) where no torn tail is allowed.
    #[error(transparent)]
    Segment(SegmentError),
    /// A file went away while it was read (the snapshotter moved it to the
    /// archive): list again.
    #[error("{} vanished while reading (moved to the archive?)", path.display())]
    Vanished { path: PathBuf },
    /// The walk ended before the seq it was asked to reach.
    #[error("the command history ends at seq {last}, before seq {wanted}")]
    Missing { last: u64, wanted: u64 },
    /// Under [`OnDamage::Skip`]: damage passed over to the next complete
    /// batch of the same segment; the seqs `first..=last` are lost.
    #[error("{}: seqs {first}..={last} lost: damage at offset {offset}, resumed at the next complete batch at offset {resumed_at} ({cause})", path.display())]
    Lost {
        path: PathBuf,
        offset: u64,
        resumed_at: u64,
        first: u64,
        last: u64,
        cause: Box<SegmentError>,
    },
}

impl HistoryError {
    /// True when a file vanished (list again and retry).
    pub fn is_vanished(&self) -> bool {
        matches!(self, HistoryError::Vanished { .. })
    }

    /// The file the error is about, if one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            HistoryError::ReadDir { path, .. }
            | HistoryError::Gap { path, .. }
            | HistoryError::Vanished { path } => Some(path),
            HistoryError::Segment(e) => Some(e.path()),
            HistoryError::Lost { path, .. } => Some(path),
            HistoryError::Missing { .. } => None,
        }
    }
}

fn looks_like_history(name: &str) -> bool {
    (name.starts_with("cmdlog-") || name.starts_with("snapshot-"))
        && !name.ends_with(layout::TEMP_SUFFIX)
}

fn list_dir(fs: &dyn Fs, path: &Path, missing_ok: bool) -> Result<Vec<String>, HistoryError> {
    match fs.read_dir(path) {
        Ok(names) => Ok(names
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .collect()),
        Err(e) if missing_ok && e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(HistoryError::ReadDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Lists the segments and snapshots at the top of `dir` and in
/// `dir/<archive_dir_name>/{logs,snapshots}` (missing archive dirs are fine)
/// on the real file system. See the module doc for the rules.
pub fn scan(dir: &Path, archive_dir_name: &str) -> Result<Listing, HistoryError> {
    scan_on(&*sys::real(), dir, archive_dir_name)
}

/// [`scan`] through the file seam `fs`.
pub fn scan_on(fs: &dyn Fs, dir: &Path, archive_dir_name: &str) -> Result<Listing, HistoryError> {
    let mut open = BTreeMap::new();
    let mut sealed: BTreeMap<(u64, u64), SealedFile> = BTreeMap::new();
    let mut snapshots: BTreeMap<u64, SnapshotFile> = BTreeMap::new();
    let mut rejected = Vec::new();
    let archive = dir.join(archive_dir_name);
    let sources = [
        (dir.to_path_buf(), false),
        (archive.join(ARCHIVE_LOGS_DIR), true),
        (archive.join(ARCHIVE_SNAPSHOTS_DIR), true),
    ];
    for (base, archived) in sources {
        for name in list_dir(fs, &base, archived)? {
            let path = base.join(&name);
            match layout::classify(&name) {
                FileKind::OpenSegment { first_seq } if !archived => {
                    open.insert(first_seq, OpenFile { first_seq, path });
                }
                FileKind::SealedSegment {
                    first_seq,
                    last_seq,
                } => {
                    sealed.entry((first_seq, last_seq)).or_insert(SealedFile {
                        first_seq,
                        last_seq,
                        path,
                        archived,
                    });
                }
                FileKind::Snapshot { last_seq } => {
                    snapshots.entry(last_seq).or_insert(SnapshotFile {
                        last_seq,
                        path,
                        archived,
                    });
                }
                FileKind::OpenSegment { .. } => rejected.push(path),
                FileKind::Other if looks_like_history(&name) => rejected.push(path),
                FileKind::Temp | FileKind::Other => {}
            }
        }
    }
    for path in &rejected {
        tracing::warn!(path = %path.display(), "file name is not a valid segment or snapshot name; ignored");
    }
    rejected.sort();
    Ok(Listing {
        open: open.into_values().collect(),
        sealed: sealed.into_values().collect(),
        snapshots: snapshots.into_values().collect(),
        rejected,
    })
}

/// What to do with damage (a bad header or record, a gap) where no torn tail
/// is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDamage {
    /// Stop the walk with the error.
    #[default]
    Stop,
    /// Report it as [`Step::Skipped`] and go on: reading resumes at the next
    /// complete batch of a damaged segment ([`HistoryError::Lost`] names the
    /// seqs lost); without one, the rest of the segment is skipped (a sealed
    /// one's named range counts as passed, so its seqs are never reused). A
    /// gap is accepted. Data is lost.
    Skip,
}

/// Where a walk starts and stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalkOptions {
    /// Records with seq <= this are already in the state (0: none).
    pub from_seq: u64,
    /// Stop after this seq; [`HistoryError::Missing`] if the history ends
    /// before it. `None`: to the end.
    pub until_seq: Option<u64>,
    pub on_damage: OnDamage,
}

/// One step of a walk. The record is a [`Record`] from the iterator, a
/// [`RecordMeta`] (its payload read in place) from [`Walk::next_step`].
#[derive(Debug)]
pub enum Step<R = Record> {
    /// The next record (seq = previous + 1).
    Record {
        record: R,
        /// Index of its segment in [`History::logs`].
        log: usize,
        /// Byte offset of the record in its segment.
        offset: u64,
        /// Its framed size.
        bytes: u64,
    },
    /// The walk is done with a segment: `valid_len` bytes of header and
    /// valid records, the last of them `last_seq`.
    LogDone {
        log: usize,
        last_seq: Option<u64>,
        valid_len: u64,
    },
    /// The newest open segment's valid data ends at `offset`; the bytes
    /// from there to `file_len` must be cut before writing after them.
    /// `torn`: a torn write (allowed); false when it is damage passed over
    /// under [`OnDamage::Skip`] (data lost, report it).
    Tail {
        log: usize,
        offset: u64,
        file_len: u64,
        cause: SegmentError,
        torn: bool,
    },
    /// Damage passed over under [`OnDamage::Skip`].
    Skipped(HistoryError),
}

impl<R> Step<R> {
    /// The same step with its record mapped by `f`.
    pub fn map_record<T>(self, f: impl FnOnce(R) -> T) -> Step<T> {
        match self {
            Step::Record {
                record,
                log,
                offset,
                bytes,
            } => Step::Record {
                record: f(record),
                log,
                offset,
                bytes,
            },
            Step::LogDone {
                log,
                last_seq,
                valid_len,
            } => Step::LogDone {
                log,
                last_seq,
                valid_len,
            },
            Step::Tail {
                log,
                offset,
                file_len,
                cause,
                torn,
            } => Step::Tail {
                log,
                offset,
                file_len,
                cause,
                torn,
            },
            Step::Skipped(e) => Step::Skipped(e),
        }
    }
}

/// A listing with the file seam it was made on: what is walked.
#[derive(Debug, Clone)]
pub struct History {
    fs: Arc<dyn Fs>,
    listing: Listing,
    logs: Vec<LogFile>,
}

impl History {
    /// Lists `dir` on the real file system.
    pub fn scan(dir: &Path, archive_dir_name: &str) -> Result<History, HistoryError> {
        Self::scan_on(sys::real(), dir, archive_dir_name)
    }

    /// Lists `dir` through the file seam `fs`.
    pub fn scan_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        archive_dir_name: &str,
    ) -> Result<History, HistoryError> {
        let listing = scan_on(&*fs, dir, archive_dir_name)?;
        Ok(Self::from_listing(fs, listing, true))
    }

    /// A history of the given files (`include_open = false`: sealed
    /// segments only, so no torn tail is ever allowed).
    pub fn from_listing(fs: Arc<dyn Fs>, listing: Listing, include_open: bool) -> History {
        let logs = listing.logs(include_open);
        History { fs, listing, logs }
    }

    /// The files as listed.
    pub fn listing(&self) -> &Listing {
        &self.listing
    }

    /// Segments in walking order.
    pub fn logs(&self) -> &[LogFile] {
        &self.logs
    }

    /// Snapshots by last seq.
    pub fn snapshots(&self) -> &[SnapshotFile] {
        &self.listing.snapshots
    }

    /// The file seam.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    /// True when a torn tail is allowed at the end of segment `log`: it is
    /// the newest open segment (open, and last in order).
    pub fn torn_tail_allowed(&self, log: usize) -> bool {
        log + 1 == self.logs.len() && self.logs[log].is_open()
    }

    /// Opens segment `log` for reading.
    pub fn open_log(&self, log: usize) -> Result<SegmentReader, HistoryError> {
        let path = &self.logs[log].path;
        SegmentReader::open_on(&*self.fs, path).map_err(|e| vanished_or(e, path))
    }

    /// The first record of segment `log` (`None`: it holds none, or only a
    /// torn record where that is allowed).
    pub fn first_record(&self, log: usize) -> Result<Option<Record>, HistoryError> {
        let mut r = self.open_log(log)?;
        match r.next_record() {
            Ok(rec) => Ok(rec),
            Err(e) if self.torn_tail_allowed(log) && e.is_torn_tail() => Ok(None),
            Err(e) => Err(vanished_or(e, &self.logs[log].path)),
        }
    }

    /// The newest snapshot with last seq <= `max_seq` that reads back whole
    /// and whose header agrees with its name, with its state. Damaged ones
    /// are handed to `skipped` (one line each) and older ones tried.
    pub fn load_snapshot(
        &self,
        max_seq: u64,
        skipped: &mut dyn FnMut(String),
    ) -> Result<Option<(SnapshotFile, SnapshotMeta, Db)>, HistoryError> {
        for snap in self
            .listing
            .snapshots
            .iter()
            .rev()
            .filter(|s| s.last_seq <= max_seq)
        {
            match snapshot::read_snapshot_on(&*self.fs, &snap.path) {
                Ok((meta, db)) if meta.last_seq == snap.last_seq => {
                    return Ok(Some((snap.clone(), meta, db)))
                }
                Ok((meta, _)) => skipped(format!(
                    "{}: header says last seq {}, the name says {}; skipped",
                    snap.path.display(),
                    meta.last_seq,
                    snap.last_seq
                )),
                Err(e) if e.is_not_found() => {
                    return Err(HistoryError::Vanished {
                        path: snap.path.clone(),
                    })
                }
                Err(e) => skipped(format!(
                    "damaged snapshot skipped, trying an older one: {e}"
                )),
            }
        }
        Ok(None)
    }

    /// Verifies a snapshot (checksums, and its header against its name).
    pub fn verify_snapshot(&self, snap: &SnapshotFile) -> Result<SnapshotMeta, SnapshotCheck> {
        let meta =
            snapshot::verify_snapshot_on(&*self.fs, &snap.path).map_err(SnapshotCheck::Damaged)?;
        if meta.last_seq != snap.last_seq {
            return Err(SnapshotCheck::NameMismatch {
                path: snap.path.clone(),
                found: meta.last_seq,
            });
        }
        Ok(meta)
    }

    /// Walks the records after `opts.from_seq` (see the module doc).
    pub fn walk(&self, opts: WalkOptions) -> Walk<'_> {
        Walk {
            history: self,
            opts,
            next_log: 0,
            cur: None,
            seq: opts.from_seq,
            pending: VecDeque::new(),
            finished: false,
            spare: Vec::new(),
        }
    }
}

/// Why a snapshot does not verify.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotCheck {
    #[error(transparent)]
    Damaged(SnapshotError),
    #[error("{} says last_seq {found} in its header", path.display())]
    NameMismatch { path: PathBuf, found: u64 },
}

fn vanished_or(e: SegmentError, path: &Path) -> HistoryError {
    if e.is_not_found() {
        HistoryError::Vanished {
            path: path.to_path_buf(),
        }
    } else {
        HistoryError::Segment(e)
    }
}

/// The iterator of [`History::walk`]. After an error it yields nothing.
#[derive(Debug)]
pub struct Walk<'h> {
    history: &'h History,
    opts: WalkOptions,
    next_log: usize,
    cur: Option<(usize, SegmentReader)>,
    /// The last seq in the state.
    seq: u64,
    pending: VecDeque<Step<RecordMeta>>,
    finished: bool,
    /// The read-ahead buffer of the last segment, for the next one.
    spare: Vec<u8>,
}

impl Walk<'_> {
    /// The last seq in the state so far (records yielded, plus seqs passed
    /// over under [`OnDamage::Skip`]).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    fn stop(&mut self, e: HistoryError) -> Option<Result<Step<RecordMeta>, HistoryError>> {
        self.finished = true;
        self.close_cur();
        Some(Err(e))
    }

    /// Done with the current segment: keep its buffer for the next one.
    fn close_cur(&mut self) {
        if let Some((_, r)) = self.cur.take() {
            self.spare = r.into_buffer();
        }
    }

    /// The payload of the record the last [`Walk::next_step`] returned
    /// (it borrows the reader's buffer: valid until the next step).
    pub fn payload(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |(_, r)| r.payload())
    }

    /// Damage in segment `log`: stop, or skip the rest of it.
    fn damaged(
        &mut self,
        log: usize,
        reader: Option<&SegmentReader>,
        e: SegmentError,
    ) -> Option<Result<Step<RecordMeta>, HistoryError>> {
        let h = self.history;
        let file = &h.logs[log];
        if e.is_not_found() {
            return self.stop(HistoryError::Vanished {
                path: file.path.clone(),
            });
        }
        let allowed = h.torn_tail_allowed(log);
        let torn = allowed && e.is_torn_tail();
        if !torn && self.opts.on_damage == OnDamage::Stop {
            return self.stop(HistoryError::Segment(e));
        }
        if let Some(last) = file.last_seq {
            // A sealed segment's named range is passed whole, so that new
            // records never reuse a seq a file already holds.
            self.seq = self.seq.max(last);
        }
        let (last_seq, valid_len) = reader.map_or((None, 0), |r| (r.last_seq(), r.offset()));
        match reader {
            Some(r) if allowed => {
                let (offset, file_len) = (e.offset(), r.file_len());
                self.pending.push_back(Step::Tail {
                    log,
                    offset,
                    file_len,
                    cause: e,
                    torn,
                });
            }
            _ => self
                .pending
                .push_back(Step::Skipped(HistoryError::Segment(e))),
        }
        self.pending.push_back(Step::LogDone {
            log,
            last_seq,
            valid_len,
        });
        self.cur = None;
        self.next_step()
    }

    /// The next step, its record read in place: the record's payload is
    /// [`Walk::payload`] until the next call (the iterator copies it into
    /// a [`Record`]).
    pub fn next_step(&mut self) -> Option<Result<Step<RecordMeta>, HistoryError>> {
        loop {
            if let Some(step) = self.pending.pop_front() {
                return Some(Ok(step));
            }
            if self.finished {
                return None;
            }
            if self.opts.until_seq.is_some_and(|u| self.seq >= u) {
                self.finished = true;
                self.close_cur();
                return None;
            }
            if let Some((log, reader)) = &mut self.cur {
                let log = *log;
                let offset = reader.offset();
                match reader.next_meta() {
                    Ok(Some(record)) => {
                        if record.seq <= self.seq {
                            continue;
                        }
                        if record.seq != self.seq + 1 {
                            // The reader checks contiguity inside a file;
                            // this is the seam between files.
                            let e = HistoryError::Gap {
                                path: reader.path().to_path_buf(),
                                expected: self.seq + 1,
                                found: record.seq,
                            };
                            return self.stop(e);
                        }
                        self.seq = record.seq;
                        let bytes = reader.offset() - offset;
                        return Some(Ok(Step::Record {
                            record,
                            log,
                            offset,
                            bytes,
                        }));
                    }
                    Ok(None) => {
                        let step = Step::LogDone {
                            log,
                            last_seq: reader.last_seq(),
                            valid_len: reader.offset(),
                        };
                        self.close_cur();
                        return Some(Ok(step));
                    }
                    Err(e) => {
                        let (log, mut reader) = self.cur.take().expect("a current segment");
                        let torn = self.history.torn_tail_allowed(log) && e.is_torn_tail();
                        if !torn && self.opts.on_damage == OnDamage::Skip && !e.is_not_found() {
                            // Lose only the damaged batches: resynchronise at
                            // the next complete batch of this segment.
                            match reader.resync() {
                                Ok(Some((resumed_at, first))) if first <= self.seq + 1 => {
                                    // the damaged seqs are in the state already
                                    // (a snapshot covers them)
                                    tracing::info!(path = %reader.path().display(), offset = e.offset(), resumed_at, "damage covered by the snapshot passed over");
                                    self.cur = Some((log, reader));
                                    continue;
                                }
                                Ok(Some((resumed_at, first))) => {
                                    let lost = HistoryError::Lost {
                                        path: reader.path().to_path_buf(),
                                        offset: e.offset(),
                                        resumed_at,
                                        first: self.seq + 1,
                                        last: first - 1,
                                        cause: Box::new(e),
                                    };
                                    self.seq = first - 1;
                                    self.cur = Some((log, reader));
                                    return Some(Ok(Step::Skipped(lost)));
                                }
                                Ok(None) => {}
                                Err(re) => return self.damaged(log, Some(&reader), re),
                            }
                        }
                        return self.damaged(log, Some(&reader), e);
                    }
                }
            }
            // the next segment
            let h = self.history;
            let Some(file) = h.logs.get(self.next_log) else {
                self.finished = true;
                return match self.opts.until_seq {
                    Some(wanted) if self.seq < wanted => Some(Err(HistoryError::Missing {
                        last: self.seq,
                        wanted,
                    })),
                    _ => None,
                };
            };
            let log = self.next_log;
            self.next_log += 1;
            if file.last_seq.is_some_and(|l| l <= self.seq) {
                continue;
            }
            if file.first_seq > self.seq + 1 {
                let gap = HistoryError::Gap {
                    path: file.path.clone(),
                    expected: self.seq + 1,
                    found: file.first_seq,
                };
                match self.opts.on_damage {
                    OnDamage::Stop => return self.stop(gap),
                    OnDamage::Skip => {
                        self.seq = file.first_seq - 1;
                        self.pending.push_back(Step::Skipped(gap));
                    }
                }
            }
            match SegmentReader::open_with(&*h.fs, &file.path, std::mem::take(&mut self.spare)) {
                Ok(r) => self.cur = Some((log, r)),
                Err(e) => return self.damaged(log, None, e),
            }
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Step, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        let step = self.next_step()?;
        Some(step.map(|s| {
            s.map_record(|m| Record {
                seq: m.seq,
                timestamp_ms: m.timestamp_ms,
                payload: self.payload().to_vec(),
            })
        }))
    }
}

#[cfg(test)]
mod tests;
