//! Streaming replay of command logs into the engine's state machine, shared by
//! snapshot building and restore: records are read one at a time with the
//! engine's `SegmentReader` and applied with `Db::apply_logged`, so memory is
//! bounded by the state, not by the logs.
//!
//! Sequence numbers must be contiguous from the starting point: a missing
//! log, a record out of place, a log shorter than its name says or a damaged
//! record stops the replay with an error naming the file (and offset).

use std::path::PathBuf;

use tiered_engine::cmd::ApplyError;
use tiered_engine::db::Db;
use tiered_engine::segment::{SegmentError, SegmentReader};

/// One log to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRef {
    /// First sequence number (from the name).
    pub first_seq: u64,
    /// Last sequence number for a sealed log; `None` for the open segment.
    pub last_seq: Option<u64>,
    /// Where it is.
    pub path: PathBuf,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The next log starts after the next expected sequence number.
    #[error("gap in the command history: seq {expected} is missing (next log {} starts at {first_seq})", path.display())]
    Gap {
        /// The missing sequence number.
        expected: u64,
        /// The log found instead.
        path: PathBuf,
        /// Its first sequence number.
        first_seq: u64,
    },
    /// No log holds the next expected sequence number.
    #[error("gap in the command history: seq {expected} is in no log (need up to {wanted})")]
    Missing {
        /// The missing sequence number.
        expected: u64,
        /// How far the replay had to go.
        wanted: u64,
    },
    /// A record is damaged or out of sequence, or a sealed log is cut short.
    #[error("damaged command log: {0}")]
    Damaged(#[source] SegmentError),
    /// A log ended before the sequence number its name promises.
    #[error("{} ends after seq {found:?}, its name says {named}", path.display())]
    Short {
        /// The log.
        path: PathBuf,
        /// The last seq its name says.
        named: u64,
        /// The last seq it held.
        found: Option<u64>,
    },
    /// A log's first record is not the one its name promises.
    #[error("{} starts at seq {found}, its name says {named}", path.display())]
    NameMismatch {
        /// The log.
        path: PathBuf,
        /// The first seq its name says.
        named: u64,
        /// The first seq in its header.
        found: u64,
    },
    /// A record's payload is not a command the state machine knows.
    #[error("{}: {source}", path.display())]
    Apply {
        /// The log.
        path: PathBuf,
        /// The engine's error.
        #[source]
        source: ApplyError,
    },
    /// The replay was asked to stop (shutdown).
    #[error("replay interrupted by shutdown")]
    Interrupted,
}

impl ReplayError {
    /// True when a log vanished (moved to the archive meanwhile): rescan.
    pub fn is_vanished(&self) -> bool {
        matches!(self, ReplayError::Damaged(e) if e.is_not_found())
    }
}

/// What [`replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// The last sequence number applied (the starting point if none was).
    pub last_seq: u64,
    /// Records applied.
    pub records: u64,
    /// Wall-clock time of the last record applied.
    pub last_timestamp_ms: Option<u64>,
}

/// Applies to `db` (which holds the state after `from_seq`) every record with
/// seq in `from_seq + 1 ..= until_seq` from `logs` (sorted by first seq;
/// logs entirely at or below `from_seq` are skipped). With `until_seq =
/// None`, replays to the end of the last log. A torn tail is accepted only at
/// the end of an open segment that is the last log. `should_stop` is checked
/// between logs.
pub fn replay(
    db: &mut Db,
    from_seq: u64,
    logs: &[LogRef],
    until_seq: Option<u64>,
    should_stop: &dyn Fn() -> bool,
) -> Result<Replayed, ReplayError> {
    let mut done = Replayed {
        last_seq: from_seq,
        records: 0,
        last_timestamp_ms: None,
    };
    let reached = |d: &Replayed| until_seq.is_some_and(|u| d.last_seq >= u);
    for (i, log) in logs.iter().enumerate() {
        if reached(&done) {
            break;
        }
        if log.last_seq.is_some_and(|l| l <= done.last_seq) {
            continue;
        }
        let expected = done.last_seq + 1;
        if log.first_seq > expected {
            return Err(ReplayError::Gap {
                expected,
                path: log.path.clone(),
                first_seq: log.first_seq,
            });
        }
        if should_stop() {
            return Err(ReplayError::Interrupted);
        }
        let is_last_open = log.last_seq.is_none() && i + 1 == logs.len();
        replay_one(db, log, is_last_open, until_seq, &mut done)?;
    }
    if let Some(u) = until_seq {
        if done.last_seq < u {
            return Err(ReplayError::Missing {
                expected: done.last_seq + 1,
                wanted: u,
            });
        }
    }
    Ok(done)
}

fn replay_one(
    db: &mut Db,
    log: &LogRef,
    torn_tail_ok: bool,
    until_seq: Option<u64>,
    done: &mut Replayed,
) -> Result<(), ReplayError> {
    let mut reader = SegmentReader::open(&log.path).map_err(ReplayError::Damaged)?;
    if reader.first_seq() != log.first_seq {
        return Err(ReplayError::NameMismatch {
            path: log.path.clone(),
            named: log.first_seq,
            found: reader.first_seq(),
        });
    }
    let mut last_in_file = None;
    loop {
        if until_seq.is_some_and(|u| done.last_seq >= u) {
            return Ok(());
        }
        let record = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) if torn_tail_ok && e.is_torn_tail() => {
                tracing::debug!(path = %log.path.display(), offset = e.offset(), "torn tail of the open segment ignored");
                break;
            }
            Err(e) => return Err(ReplayError::Damaged(e)),
        };
        last_in_file = Some(record.seq);
        if record.seq <= done.last_seq {
            continue;
        }
        // The reader checks contiguity inside a file; this checks the seam
        // between files.
        if record.seq != done.last_seq + 1 {
            return Err(ReplayError::Gap {
                expected: done.last_seq + 1,
                path: log.path.clone(),
                first_seq: record.seq,
            });
        }
        db.apply_logged(&record)
            .map_err(|source| ReplayError::Apply {
                path: log.path.clone(),
                source,
            })?;
        done.last_seq = record.seq;
        done.records += 1;
        done.last_timestamp_ms = Some(record.timestamp_ms);
    }
    if let Some(named) = log.last_seq {
        if last_in_file != Some(named) {
            return Err(ReplayError::Short {
                path: log.path.clone(),
                named,
                found: last_in_file,
            });
        }
    }
    Ok(())
}

/// The logs of a listing as [`LogRef`]s: sealed ones, then (optionally) the
/// open ones, sorted by first seq.
pub fn log_refs(listing: &tiered_engine::layout::Listing, include_open: bool) -> Vec<LogRef> {
    let mut v: Vec<LogRef> = listing
        .sealed
        .iter()
        .map(|s| LogRef {
            first_seq: s.first_seq,
            last_seq: Some(s.last_seq),
            path: s.path.clone(),
        })
        .collect();
    if include_open {
        v.extend(listing.open.iter().map(|o| LogRef {
            first_seq: o.first_seq,
            last_seq: None,
            path: o.path.clone(),
        }));
    }
    v.sort_by_key(|l| (l.first_seq, l.last_seq.is_none()));
    v
}
