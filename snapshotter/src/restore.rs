//! Point-in-time restore: `restore --from DIR (--to-seq N | --to-time T |
//! --latest) --into NEWDIR` builds a new persistence dir whose only file is
//! `snapshot-N.snap`, the exact state after command N, made from the newest
//! valid snapshot at or before N (primary or archive) and the logs after it
//! (archived, sealed and the open segment, whose torn tail is ignored). An
//! engine started on NEWDIR serves that state and logs on from N + 1.
//!
//! `--to-time T` picks N as the last command of the longest history prefix
//! logged at or before T (the command log's timestamps; they are assumed not
//! to go backwards across segments).
//!
//! NEWDIR must not exist or be empty, except for an empty archive
//! sub-directory (`archived/`): the root of a new tiered volume always holds
//! that directory (the archive tier's mount point), and the snapshot is
//! written beside it, atomically (temp file, fsync, rename, fsync dir).
//!
//! The source may be live (engine writing, snapshotter archiving): a file that
//! moves away during the restore makes it rescan and start over.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tiered_engine::db::Db;
use tiered_engine::history::{History, HistoryError, OnDamage, Step, WalkOptions};
use tiered_engine::snapshot::{write_snapshot_on, SnapshotError};

use crate::config::{validate_archive_dir_name, ConfigError, RestoreConfig, RestoreTarget};
use crate::mover;
use crate::replay::{self, ReplayError};
use crate::sys::{self, Fs, SysError};
use tiered_sys::WritePace;

/// How many times a restore starts over when files move under it.
const ATTEMPTS: usize = 5;

/// Why a restore failed; NEWDIR holds no snapshot then.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Bad `--archive-dir-name`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--from` is not a directory.
    #[error("--from {0}: not a directory")]
    FromNotADirectory(PathBuf),
    /// `--into` exists and is not an empty directory (an empty archive
    /// sub-directory aside).
    #[error("--into {0}: exists and is not an empty directory (an empty archive sub-directory aside); refusing to overwrite")]
    IntoNotEmpty(PathBuf),
    /// `--latest` on a source with neither a snapshot nor a log.
    #[error("--from {0}: no snapshot and no command log; nothing to restore")]
    EmptyHistory(PathBuf),
    /// A syscall failed.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// `--from` could not be listed.
    #[error(transparent)]
    Scan(#[from] HistoryError),
    /// The history does not reach the target.
    #[error("seq {target} is beyond the history in {}: it ends at seq {last}", from.display())]
    BeyondHistory {
        /// The requested point.
        target: u64,
        /// The last command available.
        last: u64,
        /// The source dir.
        from: PathBuf,
    },
    /// No snapshot at or before the target, and the logs do not start at 1.
    #[error("no valid snapshot at or before seq {target} and the logs do not reach back to seq 1 (retention removed that history?)")]
    NoBase {
        /// The requested point.
        target: u64,
    },
    /// The logs needed have a gap or damage.
    #[error("cannot replay to seq {target}: {source}")]
    Replay {
        /// The requested point.
        target: u64,
        /// What went wrong.
        #[source]
        source: ReplayError,
    },
    /// The time is before the first command still in the history, and
    /// older commands are gone (retention): the state at that time cannot
    /// be told apart from a later one.
    #[error("time {time_ms} ms is before the oldest command still logged (seq {first_seq}, logged at {first_time_ms} ms) and the commands before it are gone; restore to a later time or use --to-seq {}", first_seq.saturating_sub(1))]
    BeforeHistory {
        /// The requested time.
        time_ms: u64,
        /// The oldest command still logged.
        first_seq: u64,
        /// When it was logged.
        first_time_ms: u64,
    },
    /// Reading a log to find the time failed.
    #[error("reading timestamps: {0}")]
    Timestamps(#[source] ReplayError),
    /// Writing the snapshot into NEWDIR failed.
    #[error("writing the restored snapshot: {0}")]
    Write(#[source] SnapshotError),
    /// Files kept moving under the restore.
    #[error("files kept moving in {} during the restore ({ATTEMPTS} attempts); try again", .0.display())]
    Unstable(PathBuf),
}

/// What a restore built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The state is as of this command.
    pub last_seq: u64,
    /// The snapshot written into NEWDIR.
    pub snapshot: PathBuf,
    /// The snapshot the replay started from (`None`: from the empty state).
    pub base_seq: Option<u64>,
    /// Commands replayed on top of it.
    pub replayed: u64,
}

impl fmt::Display for Restored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restored state as of seq {} into {} (from snapshot {:?} + {} commands)",
            self.last_seq,
            self.snapshot.display(),
            self.base_seq,
            self.replayed
        )
    }
}

enum Attempt {
    Done(Restored),
    Vanished,
}

/// Runs a restore (see the module doc).
pub fn restore(config: &RestoreConfig) -> Result<Restored, RestoreError> {
    restore_on(&sys::real(), config)
}

/// [`restore`] through the file seam `fs`.
pub fn restore_on(fs: &Arc<dyn Fs>, config: &RestoreConfig) -> Result<Restored, RestoreError> {
    validate_archive_dir_name(&config.archive_dir_name)?;
    if !fs.stat(&config.from).is_ok_and(|st| st.is_dir) {
        return Err(RestoreError::FromNotADirectory(config.from.clone()));
    }
    check_into(&**fs, &config.into, &config.archive_dir_name)?;
    for _ in 0..ATTEMPTS {
        match attempt(fs, config)? {
            Attempt::Done(r) => return Ok(r),
            Attempt::Vanished => {
                tracing::info!("a file moved during the restore; rescanning");
            }
        }
    }
    Err(RestoreError::Unstable(config.from.clone()))
}

/// NEWDIR must not exist, or hold nothing but an empty archive
/// sub-directory.
/// The file in which the plugin records, in a volume's archive dir, which
/// volume it belongs to (`tiered-plugin`'s `index::VOLUME_ID_FILE`): a new
/// volume's archive dir holds only that, and is empty of history.
pub const VOLUME_ID_FILE: &str = ".tiered-volume";

fn check_into(fs: &dyn Fs, into: &Path, archive_dir_name: &str) -> Result<(), RestoreError> {
    let not_empty = || RestoreError::IntoNotEmpty(into.to_path_buf());
    match fs.read_dir(into) {
        Ok(names) => {
            for name in names {
                if name != archive_dir_name {
                    return Err(not_empty());
                }
                // Not following a symlink: only a real, empty directory.
                let path = into.join(name);
                let is_dir = fs
                    .stat(&path)
                    .map_err(|e| SysError::new("stat", &path, e))?
                    .is_dir;
                if !is_dir {
                    return Err(not_empty());
                }
                let inner = fs
                    .read_dir(&path)
                    .map_err(|e| SysError::new("read dir", &path, e))?;
                if inner.iter().any(|n| n != VOLUME_ID_FILE) {
                    return Err(not_empty());
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Err(not_empty()),
        Err(e) => Err(SysError::new("read dir", into, e).into()),
    }
}

fn attempt(fs: &Arc<dyn Fs>, config: &RestoreConfig) -> Result<Attempt, RestoreError> {
    let history = History::scan_on(fs.clone(), &config.from, &config.archive_dir_name)?;
    let logs = history.logs();
    // `None`: `--latest`, wherever the history ends.
    let target = match config.target {
        RestoreTarget::Seq(n) => Some(n),
        RestoreTarget::Latest => None,
        RestoreTarget::TimeMs(t) => match seq_at_time(&history, t) {
            Ok(AtTime::Seq(n)) => Some(n),
            Ok(AtTime::BeforeHistory {
                first_seq,
                first_time_ms,
            }) => {
                return Err(RestoreError::BeforeHistory {
                    time_ms: t,
                    first_seq,
                    first_time_ms,
                })
            }
            Err(e) if e.is_vanished() => return Ok(Attempt::Vanished),
            Err(e) => return Err(RestoreError::Timestamps(e)),
        },
    };
    if target.is_none() && history.snapshots().is_empty() && logs.is_empty() {
        return Err(RestoreError::EmptyHistory(config.from.clone()));
    }
    // The newest snapshot at or before the target that reads back whole.
    let base =
        match history.load_snapshot(target.unwrap_or(u64::MAX), &mut |w| tracing::warn!("{w}")) {
            Ok(b) => b,
            Err(e) if e.is_vanished() => return Ok(Attempt::Vanished),
            Err(e) => return Err(e.into()),
        };
    let (base_seq, mut db) = match base {
        Some((snap, _, db)) => (Some(snap.last_seq), db),
        None => {
            if target != Some(0) && logs.first().map(|l| l.first_seq) != Some(1) {
                // For `--latest`: as far as the logs' names go.
                let named_end = logs.last().map_or(0, |l| l.last_seq.unwrap_or(l.first_seq));
                return Err(RestoreError::NoBase {
                    target: target.unwrap_or(named_end),
                });
            }
            (None, Db::new())
        }
    };
    let from_seq = base_seq.unwrap_or(0);
    let done = match replay::replay(&mut db, &history, from_seq, target, &|| false) {
        Ok(d) => d,
        Err(e) if e.is_vanished() => return Ok(Attempt::Vanished),
        // Every log was consumed (a later one would have been a gap).
        Err(ReplayError::Missing { expected, .. }) => {
            return Err(RestoreError::BeyondHistory {
                target: target.unwrap_or(expected),
                last: expected - 1,
                from: config.from.clone(),
            })
        }
        Err(source) => {
            return Err(RestoreError::Replay {
                target: target.unwrap_or(u64::MAX),
                source,
            })
        }
    };
    let target = target.unwrap_or(done.last_seq);
    mover::ensure_dir(&**fs, &config.into)?;
    // NEWDIR may have been filled meanwhile by someone else: check again.
    check_into(&**fs, &config.into, &config.archive_dir_name)?;
    let snapshot = write_snapshot_on(&**fs, &config.into, target, &db, WritePace::NONE)
        .map_err(RestoreError::Write)?;
    Ok(Attempt::Done(Restored {
        last_seq: target,
        snapshot,
        base_seq,
        replayed: done.records,
    }))
}

/// Where a time falls in the logged history.
enum AtTime {
    /// The last command logged at or before the time.
    Seq(u64),
    /// Before the oldest command still logged, which is not seq 1: the
    /// commands between the time and that one are unknown.
    BeforeHistory { first_seq: u64, first_time_ms: u64 },
}

/// The last seq of the longest prefix of the logged history whose commands
/// were all logged at or before `time_ms`.
fn seq_at_time(history: &History, time_ms: u64) -> Result<AtTime, ReplayError> {
    let logs = history.logs();
    // The first record of each log tells which log holds the cut.
    let mut firsts = Vec::with_capacity(logs.len());
    for i in 0..logs.len() {
        firsts.push(history.first_record(i)?.map(|r| r.timestamp_ms));
    }
    // Index of the last log whose first record is at or before the time.
    let Some(idx) = firsts
        .iter()
        .rposition(|f| f.is_some_and(|ts| ts <= time_ms))
    else {
        // Before every logged command: the empty state if the history
        // starts at seq 1, otherwise unknowable (a snapshot just before the
        // oldest log may hold commands logged after the time).
        return Ok(match logs.iter().zip(&firsts).find(|(_, f)| f.is_some()) {
            Some((log, Some(ts))) if log.first_seq > 1 => AtTime::BeforeHistory {
                first_seq: log.first_seq,
                first_time_ms: *ts,
            },
            _ => AtTime::Seq(logs.first().map_or(0, |l| l.first_seq.saturating_sub(1))),
        });
    };
    // Walk that log from its start up to its end.
    let start = logs[idx].first_seq.saturating_sub(1);
    let mut last = start;
    let walk = history.walk(WalkOptions {
        from_seq: start,
        until_seq: None,
        on_damage: OnDamage::Stop,
    });
    for step in walk {
        match step? {
            Step::Record { record, .. } if record.timestamp_ms > time_ms => {
                return Ok(AtTime::Seq(record.seq - 1))
            }
            Step::Record { record, .. } => last = record.seq,
            Step::LogDone { log, .. } if log >= idx => break,
            _ => {}
        }
    }
    Ok(AtTime::Seq(last))
}
