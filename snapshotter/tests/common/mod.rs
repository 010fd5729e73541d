//! Helpers shared by the snapshotter's integration tests: command logs made
//! with the engine's own writer, a model of the state, tmpfs mounts.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use tiered_engine::batch::BatchEncoder;
use tiered_engine::cmd::{Effect, Set};
use tiered_engine::db::Db;
use tiered_engine::layout;
use tiered_engine::record::Record;
use tiered_engine::segment::SegmentWriter;

/// A SET command.
pub fn set(key: &str, value: &str) -> Set {
    Set::new(key, value)
}

/// Writes the history a persistence dir would hold, segment by segment,
/// with the engine's `SegmentWriter`, and keeps the expected state after
/// every sequence number.
pub struct History {
    pub dir: PathBuf,
    pub next_seq: u64,
    /// Timestamp of the next record (ms); each record is 1000 ms after the last.
    pub next_ts_ms: u64,
    /// `states[n]` = the state after seq n (`states[0]` empty).
    pub states: Vec<Db>,
    /// `timestamps[n]` = timestamp of seq n.
    pub timestamps: Vec<u64>,
}

pub const T0_MS: u64 = 1_700_000_000_000;

impl History {
    pub fn new(dir: &Path) -> History {
        History {
            dir: dir.to_path_buf(),
            next_seq: 1,
            next_ts_ms: T0_MS,
            states: vec![Db::new()],
            timestamps: vec![0],
        }
    }

    /// Writes one sealed segment of `n` SET commands (keys cycle over 7 names so
    /// that later commands overwrite earlier ones). Returns its path.
    pub fn sealed(&mut self, n: u64) -> PathBuf {
        let w = self.write(n);
        w.seal().unwrap()
    }

    /// Writes an open segment of `n` commands (left open, synced).
    pub fn open(&mut self, n: u64) -> PathBuf {
        let w = self.write(n);
        let p = w.path().to_path_buf();
        std::mem::forget(w);
        p
    }

    fn write(&mut self, n: u64) -> SegmentWriter {
        let mut w = SegmentWriter::create(&self.dir, self.next_seq, 0).unwrap();
        let mut buf = BatchEncoder::new();
        for _ in 0..n {
            let seq = self.next_seq;
            let cmd = set(&format!("k{}", seq % 7), &format!("v{seq}"));
            let rec = Record {
                seq,
                timestamp_ms: self.next_ts_ms,
                payload: cmd.encode(),
            };
            buf.push(rec.timestamp_ms, &rec.payload);
            let mut db = self.states.last().unwrap().clone();
            db.apply_logged(&rec).unwrap();
            self.states.push(db);
            self.timestamps.push(self.next_ts_ms);
            self.next_seq += 1;
            self.next_ts_ms += 1000;
        }
        w.append(&mut buf).unwrap();
        w.sync().unwrap();
        w
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

/// Names of the files directly in `dir` (sorted), or empty if it is missing.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(e) => e
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every file under `dir` with its content, for "nothing changed" checks.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(entries) = fs::read_dir(d) else { return };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().unwrap() != "snapshotter.lock" {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

pub fn snap_name(seq: u64) -> String {
    layout::snapshot_name(seq)
}

pub fn log_name(first: u64, last: u64) -> String {
    layout::sealed_segment_name(first, last)
}

/// A tmpfs mounted on a directory for the life of the guard (we run as root
/// in CI); unmounted on drop, also when the test fails.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "mounting a tmpfs on {} failed ({e}): these tests need root (CI runs as root)",
                path.display()
            )
        });
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Compares two states key by key (with a readable message).
pub fn assert_same_state(got: &Db, want: &Db, what: &str) {
    let g: Vec<_> = got.iter().collect();
    let w: Vec<_> = want.iter().collect();
    assert_eq!(g.len(), w.len(), "{what}: key count differs");
    for ((gk, ge), (wk, we)) in g.iter().zip(w.iter()) {
        assert_eq!(gk, wk, "{what}: keys differ");
        assert_eq!(
            ge,
            we,
            "{what}: value of {:?} differs",
            String::from_utf8_lossy(gk)
        );
    }
}
