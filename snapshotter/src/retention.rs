//! Retention on the archive tier: `--retain-days` and `--retain-bytes`.
//!
//! History is restorable from a snapshot onwards (the snapshot plus every log
//! after it). Retention picks the oldest snapshot to keep, the *cut*, and
//! deletes only archived files strictly before it: archived snapshots older
//! than the cut and archived logs whose every record the cut covers. Files on
//! the primary tier are never deleted here, logs that straddle the cut are
//! kept, and the cut is never newer than the newest snapshot, so the newest
//! restore point always survives.
//!
//! - `--retain-days D`: the cut is the newest snapshot made at or before
//!   `now - D days` (its mtime, which the mover preserves): any time in the
//!   last D days is still restorable from it or a newer one.
//! - `--retain-bytes B`: the cut is the oldest snapshot whose removal of older
//!   files brings the archive to at most B bytes (the newest snapshot if even
//!   that is not enough).
//! - With both, the newer cut wins (each limit is a reason to delete).
//!
//! The cut snapshot is verified before anything is deleted; a damaged one is
//! skipped for the next older one, and if none is valid nothing is deleted.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A snapshot as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapInfo {
    /// Last sequence number it covers.
    pub last_seq: u64,
    /// When it was written (mtime).
    pub mtime: SystemTime,
    /// Size in bytes.
    pub bytes: u64,
    /// In the archive (deletable) or on the primary tier.
    pub archived: bool,
    /// Where it is.
    pub path: PathBuf,
}

/// A sealed log as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    /// First sequence number.
    pub first_seq: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// In the archive (deletable) or on the primary tier.
    pub archived: bool,
    /// Where it is.
    pub path: PathBuf,
}

/// The limits and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `--retain-days`.
    pub retain_days: Option<u64>,
    /// `--retain-bytes`.
    pub retain_bytes: Option<u64>,
    /// Now.
    pub now: SystemTime,
}

/// What to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The oldest kept restore point (sequence number of the cut snapshot).
    pub cut_seq: Option<u64>,
    /// Archived files to delete, with their sizes.
    pub delete: Vec<(PathBuf, u64)>,
}

/// Decides what to delete. `snaps` and `logs` hold everything known (both
/// tiers), in any order; `is_valid` verifies a candidate cut snapshot.
pub fn plan(
    snaps: &[SnapInfo],
    logs: &[LogInfo],
    policy: &Policy,
    is_valid: &mut dyn FnMut(&SnapInfo) -> bool,
) -> Plan {
    let mut snaps: Vec<&SnapInfo> = snaps.iter().collect();
    snaps.sort_by_key(|s| s.last_seq);
    if snaps.is_empty() {
        return Plan::default();
    }

    let by_days = policy.retain_days.and_then(|days| {
        let cutoff = policy
            .now
            .checked_sub(Duration::from_secs(days.saturating_mul(86_400)))?;
        snaps.iter().rposition(|s| s.mtime <= cutoff)
    });

    let by_bytes = policy.retain_bytes.and_then(|limit| {
        let total: u64 = snaps
            .iter()
            .filter(|s| s.archived)
            .map(|s| s.bytes)
            .chain(logs.iter().filter(|l| l.archived).map(|l| l.bytes))
            .sum();
        if total <= limit {
            return None;
        }
        let idx = snaps
            .iter()
            .position(|cut| total - freed_by(cut.last_seq, &snaps, logs) <= limit);
        Some(idx.unwrap_or(snaps.len() - 1))
    });

    let Some(mut idx) = by_days.max(by_bytes) else {
        return Plan::default();
    };
    loop {
        let cut = snaps[idx].last_seq;
        let delete = deletable(cut, &snaps, logs);
        // Verifying reads the whole snapshot: only worth it when the cut
        // would delete something.
        if delete.is_empty() || is_valid(snaps[idx]) {
            return Plan {
                cut_seq: Some(cut),
                delete,
            };
        }
        tracing::warn!(snapshot = %snaps[idx].path.display(), "retention: candidate restore point fails verification; trying an older one");
        if idx == 0 {
            return Plan::default();
        }
        idx -= 1;
    }
}

/// Archived files strictly before a cut at `cut`.
fn deletable(cut: u64, snaps: &[&SnapInfo], logs: &[LogInfo]) -> Vec<(PathBuf, u64)> {
    snaps
        .iter()
        .filter(|s| s.archived && s.last_seq < cut)
        .map(|s| (s.path.clone(), s.bytes))
        .chain(
            logs.iter()
                .filter(|l| l.archived && l.last_seq <= cut)
                .map(|l| (l.path.clone(), l.bytes)),
        )
        .collect()
}

/// Archived bytes that a cut at `cut` frees.
fn freed_by(cut: u64, snaps: &[&SnapInfo], logs: &[LogInfo]) -> u64 {
    deletable(cut, snaps, logs).iter().map(|(_, b)| b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn t(days_ago: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1000 * DAY - days_ago * DAY)
    }

    fn snap(seq: u64, days_ago: u64, archived: bool) -> SnapInfo {
        SnapInfo {
            last_seq: seq,
            mtime: t(days_ago),
            bytes: 100,
            archived,
            path: PathBuf::from(format!("s{seq}")),
        }
    }

    fn log(first: u64, last: u64, archived: bool) -> LogInfo {
        LogInfo {
            first_seq: first,
            last_seq: last,
            bytes: 10,
            archived,
            path: PathBuf::from(format!("l{first}-{last}")),
        }
    }

    /// Snapshots at 10 (9 days ago), 20 (5), 30 (2) archived, 40 (0) primary;
    /// logs 1-10 .. 31-40 archived, 41-50 primary.
    fn history() -> (Vec<SnapInfo>, Vec<LogInfo>) {
        (
            vec![
                snap(10, 9, true),
                snap(20, 5, true),
                snap(30, 2, true),
                snap(40, 0, false),
            ],
            vec![
                log(1, 10, true),
                log(11, 20, true),
                log(21, 30, true),
                log(31, 40, true),
                log(41, 50, false),
            ],
        )
    }

    fn names(p: &Plan) -> Vec<String> {
        let mut v: Vec<String> = p
            .delete
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        v.sort();
        v
    }

    fn policy(days: Option<u64>, bytes: Option<u64>) -> Policy {
        Policy {
            retain_days: days,
            retain_bytes: bytes,
            now: t(0),
        }
    }

    #[test]
    fn days_keep_the_snapshot_that_covers_the_window_start() {
        let (s, l) = history();
        // 3-day window starts 3 days ago: snapshot 20 (5 days ago) covers it.
        let p = plan(&s, &l, &policy(Some(3), None), &mut |_| true);
        assert_eq!(p.cut_seq, Some(20));
        assert_eq!(names(&p), vec!["l1-10", "l11-20", "s10"]);
        // A window longer than the history deletes nothing.
        let p = plan(&s, &l, &policy(Some(30), None), &mut |_| true);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn bytes_cut_the_oldest_history_first_but_never_past_the_newest_snapshot() {
        let (s, l) = history();
        // Archive holds 300 + 40 = 340 bytes.
        let p = plan(&s, &l, &policy(None, Some(340)), &mut |_| true);
        assert_eq!(p, Plan::default());
        // Cut at 20 frees s10 + l1-10 + l11-20 = 120 -> 220 <= 250.
        let p = plan(&s, &l, &policy(None, Some(250)), &mut |_| true);
        assert_eq!(p.cut_seq, Some(20));
        // Nothing fits: cut at the newest snapshot, primary files untouched.
        let p = plan(&s, &l, &policy(None, Some(0)), &mut |_| true);
        assert_eq!(p.cut_seq, Some(40));
        assert_eq!(
            names(&p),
            vec!["l1-10", "l11-20", "l21-30", "l31-40", "s10", "s20", "s30"]
        );
    }

    #[test]
    fn the_newer_cut_wins_and_damaged_cuts_fall_back() {
        let (s, l) = history();
        let p = plan(&s, &l, &policy(Some(8), Some(250)), &mut |_| true);
        assert_eq!(p.cut_seq, Some(20));
        // Snapshot 20 damaged: fall back to 10.
        let p = plan(&s, &l, &policy(Some(3), None), &mut |s| s.last_seq != 20);
        assert_eq!(p.cut_seq, Some(10));
        assert_eq!(names(&p), vec!["l1-10"]);
        // Every candidate damaged: nothing deleted.
        let p = plan(&s, &l, &policy(Some(3), None), &mut |_| false);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn nothing_to_delete_needs_no_verification() {
        let (s, l) = history();
        let s: Vec<SnapInfo> = s.into_iter().filter(|s| s.last_seq >= 20).collect();
        let l: Vec<LogInfo> = l.into_iter().filter(|l| l.first_seq > 20).collect();
        let p = plan(&s, &l, &policy(Some(3), None), &mut |_| {
            panic!("verified a cut that deletes nothing")
        });
        assert_eq!(p.cut_seq, Some(20));
        assert!(p.delete.is_empty());
    }

    #[test]
    fn straddling_logs_are_kept() {
        let s = vec![snap(15, 9, true), snap(40, 0, false)];
        let l = vec![log(1, 10, true), log(11, 20, true), log(21, 40, true)];
        let p = plan(&s, &l, &policy(Some(1), None), &mut |_| true);
        assert_eq!(p.cut_seq, Some(15));
        assert_eq!(names(&p), vec!["l1-10"]);
    }
}
