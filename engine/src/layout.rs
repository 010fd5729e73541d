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

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

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
pub const TEMP_SUFFIX: &str = ".tmp";

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

/// An open segment found by [`scan`].
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

/// Every segment and snapshot of a persistence dir, each list sorted by
/// sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub open: Vec<OpenFile>,
    pub sealed: Vec<SealedFile>,
    pub snapshots: Vec<SnapshotFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot list {path}: {source}")]
    ReadDir { path: PathBuf, source: io::Error },
}

fn list_dir(path: &Path, missing_ok: bool) -> Result<Vec<(String, PathBuf)>, LayoutError> {
    let err = |source| LayoutError::ReadDir {
        path: path.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if missing_ok && e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(err)?;
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), entry.path()));
        }
    }
    Ok(out)
}

/// Lists the segments and snapshots at the top of `dir` and in
/// `dir/<archive_dir_name>/{logs,snapshots}` (missing archive dirs are fine).
/// A file present in both places (a move interrupted by a crash) is listed
/// once, preferring the top-level copy.
pub fn scan(dir: &Path, archive_dir_name: &str) -> Result<Listing, LayoutError> {
    let mut open = BTreeMap::new();
    let mut sealed: BTreeMap<(u64, u64), SealedFile> = BTreeMap::new();
    let mut snapshots: BTreeMap<u64, SnapshotFile> = BTreeMap::new();
    let archive = dir.join(archive_dir_name);
    let sources = [
        (dir.to_path_buf(), false, false),
        (archive.join(ARCHIVE_LOGS_DIR), true, true),
        (archive.join(ARCHIVE_SNAPSHOTS_DIR), true, true),
    ];
    for (path, archived, missing_ok) in sources {
        for (name, path) in list_dir(&path, missing_ok)? {
            match classify(&name) {
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
                _ => {}
            }
        }
    }
    Ok(Listing {
        open: open.into_values().collect(),
        sealed: sealed.into_values().collect(),
        snapshots: snapshots.into_values().collect(),
    })
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
    }

    #[test]
    fn scan_merges_archive_and_prefers_top_level() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let logs = d.join("archived").join(ARCHIVE_LOGS_DIR);
        let snaps = d.join("archived").join(ARCHIVE_SNAPSHOTS_DIR);
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(&snaps).unwrap();
        for p in [
            d.join(sealed_segment_name(11, 20)),
            d.join(open_segment_name(21)),
            d.join(snapshot_name(20)),
            d.join("x.tmp"),
            logs.join(sealed_segment_name(1, 10)),
            logs.join(sealed_segment_name(11, 20)),
            snaps.join(snapshot_name(10)),
        ] {
            std::fs::write(p, b"").unwrap();
        }
        let l = scan(d, "archived").unwrap();
        assert_eq!(l.open.len(), 1);
        assert_eq!(l.open[0].first_seq, 21);
        assert_eq!(l.sealed.len(), 2);
        assert_eq!((l.sealed[0].first_seq, l.sealed[0].archived), (1, true));
        assert_eq!((l.sealed[1].first_seq, l.sealed[1].archived), (11, false));
        assert_eq!(l.sealed[1].path, d.join(sealed_segment_name(11, 20)));
        assert_eq!(
            l.snapshots.iter().map(|s| s.last_seq).collect::<Vec<_>>(),
            vec![10, 20]
        );
        // a missing archive dir is fine, a missing DIR is not
        assert!(scan(d, "nope").is_ok());
        assert!(matches!(
            scan(&d.join("missing"), "archived"),
            Err(LayoutError::ReadDir { .. })
        ));
    }
}
