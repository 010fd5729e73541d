//! Replay of command logs into the engine's state machine, shared by
//! snapshot building and restore. The files, their order, the torn-tail rule
//! and the records come from the engine's history walker
//! ([`tiered_engine::history`]); records are read one at a time and applied
//! with `Db::apply_logged`, so memory is bounded by the state, not by the
//! logs.
//!
//! Sequence numbers must be contiguous from the starting point: a missing
//! log, a record out of place, a log shorter than its name says or a damaged
//! record stops the replay with an error naming the file (and offset).

use std::path::PathBuf;

use tiered_engine::cmd::{ApplyError, ReplayQueue};
use tiered_engine::db::Db;
use tiered_engine::history::{History, HistoryError, OnDamage, Step, WalkOptions};
use tiered_engine::segment::{RecordMeta, SegmentError};

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
    /// A log is damaged: a bad header or record, a record out of sequence,
    /// or a sealed log shorter or longer than its name says.
    #[error("damaged command log: {0}")]
    Damaged(#[source] SegmentError),
    /// A log moved away while it was read (to the archive): rescan.
    #[error("{} vanished while reading (moved to the archive?)", path.display())]
    Vanished {
        /// The log.
        path: PathBuf,
    },
    /// A directory could not be listed.
    #[error(transparent)]
    History(HistoryError),
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
        matches!(self, ReplayError::Vanished { .. })
    }
}

impl From<HistoryError> for ReplayError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Gap {
                path,
                expected,
                found,
            } => ReplayError::Gap {
                expected,
                path,
                first_seq: found,
            },
            HistoryError::Missing { last, wanted } => ReplayError::Missing {
                expected: last + 1,
                wanted,
            },
            HistoryError::Segment(e) => ReplayError::Damaged(e),
            HistoryError::Vanished { path } => ReplayError::Vanished { path },
            HistoryError::Lost { cause, .. } => ReplayError::Damaged(*cause),
            e @ HistoryError::ReadDir { .. } => ReplayError::History(e),
        }
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

/// Applies to `db` (which holds the state after `from_seq`) every record of
/// `history` with seq in `from_seq + 1 ..= until_seq` (to the end of the
/// last log with `until_seq = None`). Strict: any damage or gap stops it; a
/// torn tail is accepted only where the walker allows one (the end of the
/// newest open segment). `should_stop` is checked between logs.
pub fn replay(
    db: &mut Db,
    history: &History,
    from_seq: u64,
    until_seq: Option<u64>,
    should_stop: &dyn Fn() -> bool,
) -> Result<Replayed, ReplayError> {
    let mut done = Replayed {
        last_seq: from_seq,
        records: 0,
        last_timestamp_ms: None,
    };
    if should_stop() {
        return Err(ReplayError::Interrupted);
    }
    let mut walk = history.walk(WalkOptions {
        from_seq,
        until_seq,
        on_damage: OnDamage::Stop,
    });
    // Checked before the first record of each log after the first.
    let mut between_logs = false;
    // Records are applied in small groups whose keyspace lookups are warmed
    // together (their payloads copied out of the walker's buffer); the
    // queue is emptied before any other step or error is handled.
    let mut queue = ReplayQueue::new();
    while let Some(step) = walk.next_step() {
        if !matches!(step, Ok(Step::Record { .. })) {
            apply_queued(&mut queue, db, history, &mut done)?;
        }
        match step? {
            Step::Record { record, log, .. } => {
                if std::mem::take(&mut between_logs) && should_stop() {
                    return Err(ReplayError::Interrupted);
                }
                if queue.push((record, log), walk.payload()) {
                    apply_queued(&mut queue, db, history, &mut done)?;
                }
            }
            Step::Tail { log, offset, .. } => {
                tracing::debug!(path = %history.logs()[log].path.display(), offset, "torn tail of the open segment ignored");
            }
            Step::LogDone { .. } => between_logs = true,
            // Never under OnDamage::Stop.
            Step::Skipped(e) => return Err(e.into()),
        }
    }
    apply_queued(&mut queue, db, history, &mut done)?;
    Ok(done)
}

/// Applies the queued records in order (see [`ReplayQueue`]).
fn apply_queued(
    queue: &mut ReplayQueue<(RecordMeta, usize)>,
    db: &mut Db,
    history: &History,
    done: &mut Replayed,
) -> Result<(), ReplayError> {
    queue.apply(db, |db, (record, log), payload| {
        tiered_engine::cmd::replay_payload(db, payload, record.timestamp_ms).map_err(|source| {
            ReplayError::Apply {
                path: history.logs()[log].path.clone(),
                source: ApplyError::Decode {
                    seq: record.seq,
                    source,
                },
            }
        })?;
        done.last_seq = record.seq;
        done.records += 1;
        done.last_timestamp_ms = Some(record.timestamp_ms);
        Ok(())
    })
}
