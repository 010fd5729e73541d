//! File names in a persistence directory and the directory scan.
//!
//! ```text
//! DIR/
//!   engine.lock                                   flock held by the running engine
//!   snapshotter.lock                              flock held by the snapshotter
//!   cmdlog-{first:020}.open                       the segment being written
//!   cmdlog-{first:020}-{last:020}.log             sealed (completed) segments
//!   snapshot-{last:020}.snap                      snapshots (cover seq <= last)
//!   *.tmp                                         temp files, ignored by readers
//!   archived/logs/cmdlog-…-….log                  sealed segments moved by the snapshotter
//!   archived/snapshots/snapshot-….snap            snapshots moved by the snapshotter
//! ```
//!
//! Sequence numbers are zero-padded to 20 digits so that names sort in
//! sequence order. The engine writes only at the top of `DIR`; the archive
//! directory belongs to the snapshotter.
//!
//! This module is the one definition of these names: [`classify`] is the
//! only parser, and [`crate::history::scan`] the only directory listing.

/// Default name of the archive directory inside the persistence dir.
pub const DEFAULT_ARCHIVE_DIR_NAME: &str = "archived";
/// Sub-directory of the archive that holds sealed segments.
pub const ARCHIVE_LOGS_DIR: &str = "logs";
/// Sub-directory of the archive that holds snapshots.
pub const ARCHIVE_SNAPSHOTS_DIR: &str = "snapshots";
/// Lock file of the engine (flock, exclusive).
pub const ENGINE_LOCK_FILE: &str = "engine.lock";
/// Lock file of the snapshotter (flock, exclusive).
pub const SNAPSHOTTER_LOCK_FILE: &str = "snapshotter.lock";
/// Suffix of temp files; every reader ignores them.
pub const TEMP_SUFFIX: &str = tiered_sys::names::TEMP_SUFFIX;

pub use tiered_sys::names::NameError;

/// Checks an archive directory name (`--archive-dir-name`): one plain
/// directory entry. The engine, the snapshotter (and the plugin) use this
/// one check.
pub fn validate_archive_dir_name(name: &str) -> Result<(), NameError> {
    tiered_sys::names::validate_dir_name(name)
}

/// True for a snapshot temp file (`snapshot-….snap.<pid>.tmp`), which only
/// the writer of snapshots creates and may clean up.
pub fn is_snapshot_temp(file_name: &str) -> bool {
    file_name.starts_with(SNAPSHOT_PREFIX) && file_name.ends_with(TEMP_SUFFIX)
}

const SEGMENT_PREFIX: &str = "cmdlog-";
const OPEN_SUFFIX: &str = ".open";
const SEALED_SUFFIX: &str = ".log";
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";

/// Name of the open (being written) segment whose first record is `first_seq`.
pub fn open_segment_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}{OPEN_SUFFIX}")
}

/// Name of a sealed segment holding records `first_seq..=last_seq`.
pub fn sealed_segment_name(first_seq: u64, last_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}-{last_seq:020}{SEALED_SUFFIX}")
}

/// Name of a snapshot covering every command with seq <= `last_seq`.
pub fn snapshot_name(last_seq: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{last_seq:020}{SNAPSHOT_SUFFIX}")
}

/// What a file name says about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    OpenSegment { first_seq: u64 },
    SealedSegment { first_seq: u64, last_seq: u64 },
    Snapshot { last_seq: u64 },
    Temp,
    Other,
}

fn parse_seq(s: &str) -> Option<u64> {
    if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Classifies a file name (not a path). Names that do not follow the exact
/// patterns (20 digits, known suffix) are `Other`.
pub fn classify(file_name: &str) -> FileKind {
    if file_name.ends_with(TEMP_SUFFIX) {
        return FileKind::Temp;
    }
    if let Some(rest) = file_name.strip_prefix(SEGMENT_PREFIX) {
        if let Some(first) = rest.strip_suffix(OPEN_SUFFIX) {
            if let Some(first_seq) = parse_seq(first) {
                return FileKind::OpenSegment { first_seq };
            }
        } else if let Some(range) = rest.strip_suffix(SEALED_SUFFIX) {
            if let Some((a, b)) = range.split_once('-') {
                if let (Some(first_seq), Some(last_seq)) = (parse_seq(a), parse_seq(b)) {
                    if first_seq <= last_seq {
                        return FileKind::SealedSegment {
                            first_seq,
                            last_seq,
                        };
                    }
                }
            }
        }
        return FileKind::Other;
    }
    if let Some(rest) = file_name.strip_prefix(SNAPSHOT_PREFIX) {
        if let Some(last) = rest.strip_suffix(SNAPSHOT_SUFFIX) {
            if let Some(last_seq) = parse_seq(last) {
                return FileKind::Snapshot { last_seq };
            }
        }
    }
    FileKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_classify() {
        assert_eq!(
            classify(&open_segment_name(7)),
            FileKind::OpenSegment { first_seq: 7 }
        );
        assert_eq!(
            classify(&sealed_segment_name(7, 9)),
            FileKind::SealedSegment {
                first_seq: 7,
                last_seq: 9
            }
        );
        assert_eq!(
            classify(&snapshot_name(0)),
            FileKind::Snapshot { last_seq: 0 }
        );
        assert_eq!(
            open_segment_name(1),
            "cmdlog-00000000000000000001.open".to_string()
        );
        assert_eq!(
            classify("snapshot-00000000000000000001.snap.tmp"),
            FileKind::Temp
        );
        assert_eq!(classify("cmdlog-1.open"), FileKind::Other);
        assert_eq!(classify("engine.lock"), FileKind::Other);
        // last < first is not a name we ever write
        assert_eq!(
            classify("cmdlog-00000000000000000009-00000000000000000001.log"),
            FileKind::Other
        );
        for damaged in [
            "cmdlog-0000000000000000001.open",
            "cmdlog-000000000000000000011.open",
            "cmdlog-0000000000000000000a.open",
            "cmdlog-+0000000000000000001.open",
            "cmdlog-00000000000000000001.log",
            "cmdlog-00000000000000000001-00000000000000000002.open",
            "cmdlog-00000000000000000001-00000000000000000002-.log",
            "snapshot-1.snap",
            "snapshot-00000000000000000001.snapshot",
            "snapshot-00000000000000000001.snap.bak",
            "Snapshot-00000000000000000001.snap",
            "cmdlog-99999999999999999999.open",
        ] {
            assert_eq!(classify(damaged), FileKind::Other, "{damaged}");
        }
        assert!(is_snapshot_temp(
            "snapshot-00000000000000000001.snap.77.tmp"
        ));
        assert!(!is_snapshot_temp("cmdlog-next.tmp"));
        assert!(validate_archive_dir_name("archived").is_ok());
        assert!(matches!(
            validate_archive_dir_name("a/b"),
            Err(NameError::Separator(_))
        ));
    }
}
