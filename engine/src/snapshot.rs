//! Snapshot files: the whole state after command `last_seq`.
//!
//! ```text
//!  header (48 bytes)
//!  +------------+---------+--------+-----------+-------------+----------+----------+
//!  | "TIERSNAP" | version | flags  | last_seq  | created_ms  | entries  | reserved |
//!  | 8 bytes    | u32 LE  | u32 =0 | u64 LE    | u64 LE      | u64 LE   | u64 = 0  |
//!  +------------+---------+--------+-----------+-------------+----------+----------+
//!  entries × entry (keys strictly increasing)
//!  +---------+-------------+--------------------+-----------+-------------------------------+
//!  | kind u8 | has_exp u8  | [expire_at_ms u64] | key:bytes | 1: value:bytes                |
//!  | 1 str   | 0 or 1      |  if has_exp = 1    |           | 2: n u32, n × (field, value)  |
//!  | 2 hash  |             |                    |           |    (fields distinct, in order) |
//!  | 3 list  |             |                    |           | 3: n u32 (> 0), n × value     |
//!  | 4 set   |             |                    |           |    (head to tail)             |
//!  | 5 zset  |             |                    |           | 4: n u32 (> 0), n × member    |
//!  |         |             |                    |           |    (strictly increasing)      |
//!  |         |             |                    |           | 5: n u32 (> 0), n × (member,  |
//!  |         |             |                    |           |    score f64 LE bits, not NaN)|
//!  |         |             |                    |           |    (members strictly by       |
//!  |         |             |                    |           |    (score, member))           |
//!  +---------+-------------+--------------------+-----------+-------------------------------+
//!  trailer: crc u32 LE = CRC32(every byte before it)
//!  version 1 files (no lists) load unchanged; version 2 adds kind 3;
//!  version 3 adds kinds 4 (sets) and 5 (sorted sets).
//!  A hash's fields are in the hash's (insertion) order, any version; files
//!  of engines before that order was kept have them increasing.
//!  bytes = u32 LE length (<= MAX_RECORD_BYTES and <= what is left) + data
//! ```
//!
//! Files are published atomically: written to `snapshot-….snap.<pid>.tmp` in
//! the same directory, fsynced, renamed, and the directory fsynced.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::db::{Db, Entry, Hash, List, Members, Value, ZSet};
use crate::layout;
use crate::record::MAX_RECORD_BYTES;
use crate::sys::{self, FileCursor, Fs, OpenMode, PacedWriter, WritePace};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"TIERSNAP";
pub const SNAPSHOT_VERSION: u32 = 3;
/// Versions this build reads (1: strings and hashes; 2: lists too; 3:
/// sets and sorted sets too).
const READABLE_VERSIONS: std::ops::RangeInclusive<u32> = 1..=SNAPSHOT_VERSION;
pub const SNAPSHOT_HEADER_BYTES: u64 = 48;
const TRAILER_BYTES: u64 = 4;

/// What a snapshot header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The snapshot covers every command with seq <= last_seq.
    pub last_seq: u64,
    /// Wall-clock ms since the Unix epoch when it was written.
    pub created_ms: u64,
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{path}: bad snapshot header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("{path}: corrupt snapshot at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "{path}: snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
    )]
    BadChecksum {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
}

impl SnapshotError {
    /// True when the file does not exist (moved away meanwhile).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SnapshotError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A writer that hashes everything written through it.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    w.write_all(&(b.len() as u32).to_le_bytes())?;
    w.write_all(b)
}

fn write_entries(w: &mut impl Write, last_seq: u64, created_ms: u64, db: &Db) -> io::Result<()> {
    let mut h = [0u8; SNAPSHOT_HEADER_BYTES as usize];
    h[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&last_seq.to_le_bytes());
    h[24..32].copy_from_slice(&created_ms.to_le_bytes());
    h[32..40].copy_from_slice(&(db.len() as u64).to_le_bytes());
    w.write_all(&h)?;
    for (key, entry) in db.iter() {
        let kind = match entry.value {
            Value::Str(_) => 1u8,
            Value::Hash(_) => 2u8,
            Value::List(_) => 3u8,
            Value::Set(_) => 4u8,
            Value::ZSet(_) => 5u8,
        };
        w.write_all(&[kind, entry.expire_at_ms().is_some() as u8])?;
        if let Some(t) = entry.expire_at_ms() {
            w.write_all(&t.to_le_bytes())?;
        }
        put_bytes(w, key)?;
        match &entry.value {
            Value::Str(s) => put_bytes(w, s)?,
            Value::Hash(hash) => {
                w.write_all(&(hash.len() as u32).to_le_bytes())?;
                for (f, v) in hash {
                    put_bytes(w, f)?;
                    put_bytes(w, v)?;
                }
            }
            Value::List(list) => {
                w.write_all(&(list.len() as u32).to_le_bytes())?;
                for v in list {
                    put_bytes(w, v)?;
                }
            }
            Value::Set(members) => {
                w.write_all(&(members.len() as u32).to_le_bytes())?;
                for m in members {
                    put_bytes(w, m)?;
                }
            }
            Value::ZSet(z) => {
                w.write_all(&(z.len() as u32).to_le_bytes())?;
                for (m, score) in z.iter() {
                    put_bytes(w, m)?;
                    w.write_all(&score.to_bits().to_le_bytes())?;
                }
            }
        }
    }
    Ok(())
}

/// Writes `dir/snapshot-{last_seq}.snap` atomically (temp file in `dir`,
/// write, fsync, rename, fsync `dir`) and returns its path. Entries are
/// streamed from `db`; there is no second copy of the state.
pub fn write_snapshot(dir: &Path, last_seq: u64, db: &Db) -> Result<PathBuf, SnapshotError> {
    write_snapshot_on(&*sys::real(), dir, last_seq, db, WritePace::NONE)
}

/// [`write_snapshot`] through the file seam `fs`, its bytes written at
/// `pace` (chunks handed to writeback at a capped rate, so that a large
/// snapshot does not stall the command log's fdatasync on the same disk;
/// see [`tiered_sys::pace`]). A pace's `stop` abandons the write: the temp
/// file is removed and the error is ECANCELED.
pub fn write_snapshot_on(
    fs: &dyn Fs,
    dir: &Path,
    last_seq: u64,
    db: &Db,
    pace: WritePace<'_>,
) -> Result<PathBuf, SnapshotError> {
    let final_path = dir.join(layout::snapshot_name(last_seq));
    let tmp = dir.join(format!(
        "{}.{}{}",
        layout::snapshot_name(last_seq),
        std::process::id(),
        layout::TEMP_SUFFIX
    ));
    let io_err = |op, source| SnapshotError::Io {
        path: tmp.clone(),
        op,
        source,
    };
    let file = fs
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(|e| io_err("create", e))?;
    let mut cursor = Some(PacedWriter::new(file, 0, pace));
    let result = (|| {
        let mut w = CrcWriter {
            inner: BufWriter::with_capacity(1 << 20, cursor.take().expect("once")),
            crc: crc32fast::Hasher::new(),
        };
        write_entries(&mut w, last_seq, now_ms(), db).map_err(|e| io_err("write", e))?;
        let crc = w.crc.clone().finalize();
        let mut inner = w.inner;
        inner
            .write_all(&crc.to_le_bytes())
            .map_err(|e| io_err("write", e))?;
        inner.flush().map_err(|e| io_err("write", e))?;
        let file = inner
            .into_inner()
            .map_err(|e| io_err("write", e.into_error()))?
            .into_file();
        file.fsync().map_err(|e| io_err("fsync", e))?;
        drop(file);
        fs.rename(&tmp, &final_path)
            .map_err(|e| io_err("rename", e))?;
        fs.fsync_dir(dir).map_err(|e| io_err("fsync dir", e))
    })();
    if let Err(e) = result {
        let _ = fs.unlink(&tmp);
        return Err(e);
    }
    tracing::info!(path = %final_path.display(), entries = db.len(), "wrote snapshot");
    Ok(final_path)
}

/// A reader that hashes and counts what it reads, and knows what is left.
struct SnapReader<'p> {
    inner: BufReader<FileCursor>,
    crc: crc32fast::Hasher,
    offset: u64,
    /// Bytes before the trailer.
    body_len: u64,
    path: &'p Path,
}

impl SnapReader<'_> {
    fn corrupt(&self, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Corrupt {
            path: self.path.to_path_buf(),
            offset: self.offset,
            reason: reason.into(),
        }
    }
    fn read_into(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        if self.offset + buf.len() as u64 > self.body_len {
            return Err(self.corrupt(format!("{} bytes announced past the end", buf.len())));
        }
        self.inner
            .read_exact(buf)
            .map_err(|source| SnapshotError::Io {
                path: self.path.to_path_buf(),
                op: "read",
                source,
            })?;
        self.crc.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        let mut b = [0u8; 1];
        self.read_into(&mut b)?;
        Ok(b[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.read_into(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        self.read_into(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, SnapshotError> {
        let n = self.u32()?;
        if n > MAX_RECORD_BYTES || u64::from(n) > self.body_len - self.offset {
            return Err(self.corrupt(format!("length {n} out of bounds")));
        }
        let mut v = vec![0u8; n as usize];
        self.read_into(&mut v)?;
        Ok(v)
    }
}

/// The value of a kind 5 entry: members in (score, member) order, scores
/// not NaN, at least one.
fn read_zset(r: &mut SnapReader<'_>) -> Result<Value, SnapshotError> {
    let n = r.u32()?;
    if n == 0 {
        return Err(r.corrupt("empty sorted set"));
    }
    if u64::from(n) > (r.body_len - r.offset) / 12 {
        return Err(r.corrupt(format!("{n} sorted set members cannot fit")));
    }
    let mut z = ZSet::new();
    let mut prev: Option<(f64, Vec<u8>)> = None;
    for _ in 0..n {
        let m = r.bytes()?;
        let score = f64::from_bits(r.u64()?);
        if score.is_nan() {
            return Err(r.corrupt("NaN score"));
        }
        if let Some((ps, pm)) = &prev {
            if (*ps, pm.as_slice()).partial_cmp(&(score, m.as_slice()))
                != Some(std::cmp::Ordering::Less)
            {
                return Err(r.corrupt("sorted set members out of order"));
            }
        }
        prev = Some((score, m.clone()));
        z.insert(m, score);
    }
    Ok(Value::ZSet(z))
}

/// Parses a snapshot, handing every entry to `sink`.
fn parse(
    fs: &dyn Fs,
    path: &Path,
    mut sink: impl FnMut(Vec<u8>, Entry),
) -> Result<SnapshotMeta, SnapshotError> {
    let io_err = |op, source| SnapshotError::Io {
        path: path.to_path_buf(),
        op,
        source,
    };
    let file = fs
        .open(path, OpenMode::Read)
        .map_err(|e| io_err("open", e))?;
    let file_len = file.size().map_err(|e| io_err("stat", e))?;
    if file_len < SNAPSHOT_HEADER_BYTES + TRAILER_BYTES {
        return Err(SnapshotError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("file is {file_len} bytes, shorter than header and trailer"),
        });
    }
    let mut r = SnapReader {
        inner: BufReader::with_capacity(1 << 20, FileCursor { file, pos: 0 }),
        crc: crc32fast::Hasher::new(),
        offset: 0,
        body_len: file_len - TRAILER_BYTES,
        path,
    };
    let mut h = [0u8; SNAPSHOT_HEADER_BYTES as usize];
    r.read_into(&mut h)?;
    let bad = |reason: String| SnapshotError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    if h[0..8] != SNAPSHOT_MAGIC {
        return Err(bad(format!("bad magic {:02x?}", &h[0..8])));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4"));
    if !READABLE_VERSIONS.contains(&version) {
        return Err(bad(format!(
            "unsupported version {version} (this build reads {SNAPSHOT_VERSION})"
        )));
    }
    if h[12..16] != [0; 4] || h[40..48] != [0; 8] {
        return Err(bad("reserved header bytes are not zero".into()));
    }
    let meta = SnapshotMeta {
        last_seq: u64::from_le_bytes(h[16..24].try_into().expect("8")),
        created_ms: u64::from_le_bytes(h[24..32].try_into().expect("8")),
        entries: u64::from_le_bytes(h[32..40].try_into().expect("8")),
    };
    // Every entry takes at least 10 bytes: bound the count before looping.
    if meta.entries > (r.body_len - r.offset) / 10 {
        return Err(bad(format!(
            "{} entries cannot fit in {file_len} bytes",
            meta.entries
        )));
    }
    let mut prev_key: Option<Vec<u8>> = None;
    for _ in 0..meta.entries {
        let kind = r.u8()?;
        let has_exp = r.u8()?;
        let expire_at_ms = match has_exp {
            0 => None,
            1 => Some(r.u64()?),
            other => return Err(r.corrupt(format!("bad expiry flag {other}"))),
        };
        let key = r.bytes()?;
        if prev_key.as_ref().is_some_and(|p| *p >= key) {
            return Err(r.corrupt("keys out of order"));
        }
        let value = match kind {
            1 => Value::Str(r.bytes()?),
            2 => {
                let n = r.u32()?;
                if u64::from(n) > (r.body_len - r.offset) / 8 {
                    return Err(r.corrupt(format!("{n} hash fields cannot fit")));
                }
                // fields in the hash's order (insertion order, which the
                // writer keeps); files written before hashes kept it have
                // them increasing. A repeated field is damage.
                let mut h = Hash::new();
                for _ in 0..n {
                    let f = r.bytes()?;
                    let v = r.bytes()?;
                    if !h.insert(f, v) {
                        return Err(r.corrupt("repeated hash field"));
                    }
                }
                if h.is_empty() {
                    return Err(r.corrupt("empty hash"));
                }
                Value::Hash(h)
            }
            3 if version >= 2 => {
                let n = r.u32()?;
                if n == 0 {
                    return Err(r.corrupt("empty list"));
                }
                if u64::from(n) > (r.body_len - r.offset) / 4 {
                    return Err(r.corrupt(format!("{n} list elements cannot fit")));
                }
                let mut l = List::with_capacity(n as usize);
                for _ in 0..n {
                    l.push_back(r.bytes()?);
                }
                Value::List(l)
            }
            4 if version >= 3 => {
                let n = r.u32()?;
                if n == 0 {
                    return Err(r.corrupt("empty set"));
                }
                if u64::from(n) > (r.body_len - r.offset) / 4 {
                    return Err(r.corrupt(format!("{n} set members cannot fit")));
                }
                let mut m = Members::new();
                for _ in 0..n {
                    let v = r.bytes()?;
                    if m.last().is_some_and(|p| p >= v.as_slice()) {
                        return Err(r.corrupt("set members out of order"));
                    }
                    m.insert(v);
                }
                Value::Set(m)
            }
            5 if version >= 3 => read_zset(&mut r)?,
            other => return Err(r.corrupt(format!("bad entry kind {other}"))),
        };
        prev_key = Some(key.clone());
        sink(key, Entry::with_expiry(value, expire_at_ms));
    }
    if r.offset != r.body_len {
        return Err(r.corrupt(format!(
            "{} bytes after the last entry",
            r.body_len - r.offset
        )));
    }
    let computed = r.crc.clone().finalize();
    let mut t = [0u8; 4];
    r.inner
        .read_exact(&mut t)
        .map_err(|e| io_err("read trailer", e))?;
    let stored = u32::from_le_bytes(t);
    if stored != computed {
        return Err(SnapshotError::BadChecksum {
            path: path.to_path_buf(),
            stored,
            computed,
        });
    }
    Ok(meta)
}

/// Reads and validates a snapshot (header, bounds, order, counts, checksum).
/// Nothing is returned unless the whole file is valid.
pub fn read_snapshot(path: &Path) -> Result<(SnapshotMeta, Db), SnapshotError> {
    read_snapshot_on(&*sys::real(), path)
}

/// [`read_snapshot`] through the file seam `fs`.
pub fn read_snapshot_on(fs: &dyn Fs, path: &Path) -> Result<(SnapshotMeta, Db), SnapshotError> {
    let mut db = Db::new();
    let meta = parse(fs, path, |k, e| db.insert_entry(k, e))?;
    Ok((meta, db))
}

/// Checks a snapshot without keeping its state.
pub fn verify_snapshot(path: &Path) -> Result<SnapshotMeta, SnapshotError> {
    verify_snapshot_on(&*sys::real(), path)
}

/// [`verify_snapshot`] through the file seam `fs`.
pub fn verify_snapshot_on(fs: &dyn Fs, path: &Path) -> Result<SnapshotMeta, SnapshotError> {
    parse(fs, path, |_, _| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{Effect, HSet, Set};

    fn sample() -> Db {
        let mut db = Db::new();
        for i in 0..50u32 {
            Set {
                expire_at_ms: (i % 3 == 0).then_some(1_000_000 + u64::from(i)),
                ..Set::new(format!("k{i:03}"), vec![i as u8; i as usize])
            }
            .apply(&mut db, 0);
        }
        HSet {
            key: b"h".to_vec(),
            pairs: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![])],
        }
        .apply(&mut db, 0);
        crate::cmd::Push {
            key: b"l".to_vec(),
            head: false,
            only_existing: false,
            elements: vec![b"x".to_vec(), vec![], b"x".to_vec()],
        }
        .apply(&mut db, 0);
        db
    }

    /// A version 1 file (written before lists existed) with one string.
    fn version_1_file(kind: u8) -> Vec<u8> {
        let mut f = b"TIERSNAP".to_vec();
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(&9u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&[kind, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']);
        let crc = crc32fast::hash(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn version_1_snapshots_still_load_and_lists_need_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(layout::snapshot_name(9));
        std::fs::write(&p, version_1_file(1)).unwrap();
        let (meta, db) = read_snapshot(&p).unwrap();
        assert_eq!((meta.last_seq, meta.entries), (9, 1));
        assert_eq!(db.get(b"k", 0), Some(&Value::Str(b"v".to_vec())));
        // kind 3 (lists) is not a version 1 kind
        std::fs::write(&p, version_1_file(3)).unwrap();
        assert!(matches!(
            read_snapshot(&p),
            Err(SnapshotError::Corrupt { .. })
        ));
    }

    /// A file of `version` holding one entry `s` of `kind` (a list or a
    /// set: n, then the members) with an expiry.
    fn version_3_set_file(version: u32, kind: u8, members: &[&[u8]]) -> Vec<u8> {
        let mut f = b"TIERSNAP".to_vec();
        f.extend_from_slice(&version.to_le_bytes());
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(&9u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&[kind, 1]);
        f.extend_from_slice(&5_000u64.to_le_bytes());
        f.extend_from_slice(&[1, 0, 0, 0, b's']);
        f.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for m in members {
            f.extend_from_slice(&(m.len() as u32).to_le_bytes());
            f.extend_from_slice(m);
        }
        let crc = crc32fast::hash(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn sets_are_kind_4_of_version_3() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(layout::snapshot_name(9));
        std::fs::write(&p, version_3_set_file(3, 4, &[b"1", b"ab"])).unwrap();
        let (meta, db) = read_snapshot(&p).unwrap();
        assert_eq!((meta.last_seq, meta.entries), (9, 1));
        let want = Members::from([b"1".to_vec(), b"ab".to_vec()]);
        assert_eq!(db.get(b"s", 0), Some(&Value::Set(want.clone())));
        assert_eq!(db.entry(b"s", 0).unwrap().expire_at_ms(), Some(5_000));
        // the writer produces exactly these bytes (but the creation time)
        let mut expected = version_3_set_file(3, 4, &[b"1", b"ab"]);
        let q = write_snapshot(dir.path(), 9, &db).unwrap();
        assert_eq!(q, p);
        let written = std::fs::read(&q).unwrap();
        let n = written.len();
        assert_eq!(n, expected.len());
        expected[24..32].copy_from_slice(&written[24..32]);
        assert_eq!(written[..n - 4], expected[..n - 4]);
        // not a version 2 kind; empty and unordered sets are refused
        for bad in [
            version_3_set_file(2, 4, &[b"1", b"ab"]),
            version_3_set_file(3, 4, &[]),
            version_3_set_file(3, 4, &[b"ab", b"1"]),
            version_3_set_file(3, 4, &[b"1", b"1"]),
            version_3_set_file(3, 6, &[b"1"]),
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(
                matches!(read_snapshot(&p), Err(SnapshotError::Corrupt { .. })),
                "{:?}",
                read_snapshot(&p)
            );
        }
        // a version 2 file (a list: the same layout as a set) still loads
        std::fs::write(&p, version_3_set_file(2, 3, &[b"x"])).unwrap();
        assert!(matches!(
            read_snapshot(&p).unwrap().1.get(b"s", 0),
            Some(Value::List(_))
        ));
    }

    #[test]
    fn sorted_sets_round_trip_and_need_version_3() {
        use crate::db::ZSet;
        let dir = tempfile::tempdir().unwrap();
        let mut db = sample();
        let z: ZSet = (0..300u32)
            .map(|i| (format!("m{i}").into_bytes(), f64::from(i % 7) - 3.5))
            .chain([(vec![], f64::NEG_INFINITY), (b"x".to_vec(), f64::INFINITY)])
            .collect();
        db.insert_entry(
            b"z".to_vec(),
            Entry::with_expiry(Value::ZSet(z), Some(5_000_000)),
        );
        let p = write_snapshot(dir.path(), 8, &db).unwrap();
        let (meta, back) = read_snapshot(&p).unwrap();
        assert_eq!(back, db);
        assert_eq!(meta.entries, 53);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes[8..12], 3u32.to_le_bytes());
        // the same entries under a version 2 header: kind 5 is refused
        let mut v2 = bytes.clone();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        let n = v2.len() - 4;
        let crc = crc32fast::hash(&v2[..n]);
        v2[n..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&p, &v2).unwrap();
        let e = read_snapshot(&p).unwrap_err();
        assert!(e.to_string().contains("bad entry kind 5"), "{e}");
        // members out of order are refused (swap the scores of two)
        let mut one = Db::new();
        one.insert_entry(
            b"z".to_vec(),
            Entry::new(Value::ZSet(
                [(b"a".to_vec(), 1.0), (b"b".to_vec(), 2.0)]
                    .into_iter()
                    .collect(),
            )),
        );
        let p = write_snapshot(dir.path(), 9, &one).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        let first = SNAPSHOT_HEADER_BYTES as usize + 2 + 4 + 1 + 4 + 4 + 1;
        let second = first + 8 + 4 + 1;
        let (s1, s2) = (b[first..first + 8].to_vec(), b[second..second + 8].to_vec());
        b[first..first + 8].copy_from_slice(&s2);
        b[second..second + 8].copy_from_slice(&s1);
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        let e = read_snapshot(&p).unwrap_err();
        assert!(e.to_string().contains("out of order"), "{e}");
    }

    /// A hash's fields are written and read in its own (insertion) order,
    /// packed or a table; a repeated field is damage. (Before, the reader
    /// wanted them increasing while the writer kept insertion order, so a
    /// snapshot holding `HSET h b 1 a 2` was refused as damaged.)
    #[test]
    fn hash_fields_keep_their_order_and_may_not_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::new();
        let small = vec![
            (b"b".to_vec(), b"1".to_vec()),
            (b"a".to_vec(), b"2".to_vec()),
        ];
        let big: Vec<_> = (0..300u32)
            .rev()
            .map(|i| (format!("f{i}").into_bytes(), vec![b'v'; i as usize % 90]))
            .collect();
        for (key, pairs) in [(b"s", &small), (b"t", &big)] {
            HSet {
                key: key.to_vec(),
                pairs: pairs.clone(),
            }
            .apply(&mut db, 0);
        }
        let p = write_snapshot(dir.path(), 5, &db).unwrap();
        let (_, back) = read_snapshot(&p).unwrap();
        assert_eq!(back, db);
        for (key, pairs, packed) in [(b"s", &small, true), (b"t", &big, false)] {
            let Some(Value::Hash(h)) = back.get(key, 0) else {
                panic!("no hash")
            };
            let got: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            assert_eq!(&got, pairs);
            assert_eq!(h.is_packed(), packed);
        }
        // the same file with the small hash's second field renamed to its first
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes
            .windows(12)
            .position(|w| w == [1, 0, 0, 0, b'b', 1, 0, 0, 0, b'1', 1, 0])
            .unwrap();
        bytes[at + 14] = b'b';
        let n = bytes.len();
        let crc = crc32fast::hash(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            read_snapshot(&p),
            Err(SnapshotError::Corrupt { .. })
        ));
    }

    #[test]
    fn round_trip_atomic_publish() {
        let dir = tempfile::tempdir().unwrap();
        let db = sample();
        let p = write_snapshot(dir.path(), 77, &db).unwrap();
        assert_eq!(p, dir.path().join(layout::snapshot_name(77)));
        let (meta, back) = read_snapshot(&p).unwrap();
        assert_eq!(back, db);
        assert_eq!((meta.last_seq, meta.entries), (77, 52));
        assert!(meta.created_ms > 0);
        assert_eq!(verify_snapshot(&p).unwrap(), meta);
        // no temp file left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        // empty state is legal
        let p0 = write_snapshot(dir.path(), 0, &Db::new()).unwrap();
        let (m0, d0) = read_snapshot(&p0).unwrap();
        assert_eq!((m0.last_seq, m0.entries, d0.len()), (0, 0, 0));
    }

    #[test]
    fn every_kind_of_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_snapshot(dir.path(), 5, &sample()).unwrap();
        let good = std::fs::read(&p).unwrap();
        // every flipped byte, every truncation
        for at in 0..good.len() {
            let mut b = good.clone();
            b[at] ^= 0x41;
            std::fs::write(&p, &b).unwrap();
            assert!(read_snapshot(&p).is_err(), "flip at {at}");
            assert!(verify_snapshot(&p).is_err(), "flip at {at}");
        }
        for cut in (0..good.len()).step_by(7) {
            std::fs::write(&p, &good[..cut]).unwrap();
            assert!(read_snapshot(&p).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&p, &longer).unwrap();
        assert!(read_snapshot(&p).is_err());
        // bad magic / version are named
        let mut b = good.clone();
        b[0] = b'X';
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            read_snapshot(&p),
            Err(SnapshotError::BadHeader { .. })
        ));
        let mut b = good.clone();
        b[8] = 9;
        std::fs::write(&p, &b).unwrap();
        let e = read_snapshot(&p).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        // an oversized length is refused before allocating
        let mut b = good.clone();
        let key_len_at = SNAPSHOT_HEADER_BYTES as usize + 2 + 8;
        b[key_len_at..key_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            read_snapshot(&p),
            Err(SnapshotError::Corrupt { .. })
        ));
        // a huge entry count is refused up front
        let mut b = good.clone();
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            read_snapshot(&p),
            Err(SnapshotError::BadHeader { .. })
        ));
        assert!(read_snapshot(&dir.path().join("missing"))
            .unwrap_err()
            .is_not_found());
    }

    /// A failing fsync, rename or directory fsync publishes nothing and
    /// leaves no temp file; the errno is in the error.
    #[test]
    fn failed_publish_leaves_nothing_behind() {
        use crate::sys::{Fault, FaultFs, Op};
        let dir = tempfile::tempdir().unwrap();
        let fault = FaultFs::new(sys::real());
        // Chunks of 16 bytes, so that even the small sample is paced.
        let paced = WritePace {
            chunk_bytes: 16,
            ..WritePace::NONE
        };
        for (op, errno) in [
            (Op::Create, libc::ENOSPC),
            (Op::Write, libc::ENOSPC),
            (Op::Writeback, libc::EIO),
            (Op::Fsync, libc::EIO),
            (Op::Rename, libc::EIO),
        ] {
            fault.inject(op, Fault::Errno(errno));
            let e = write_snapshot_on(&fault, dir.path(), 5, &sample(), paced).unwrap_err();
            assert!(
                matches!(&e, SnapshotError::Io { source, .. } if source.raw_os_error() == Some(errno)),
                "{op:?}: {e}"
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{op:?}");
        }
        // A stop abandons the write between chunks, leaving nothing.
        let stop = std::sync::atomic::AtomicBool::new(true);
        let e = write_snapshot_on(&fault, dir.path(), 5, &sample(), paced.with_stop(&stop))
            .unwrap_err();
        assert!(
            matches!(&e, SnapshotError::Io { source, .. } if source.raw_os_error() == Some(libc::ECANCELED)),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Paced, the same bytes as unpaced.
        let q = write_snapshot_on(&fault, dir.path(), 6, &sample(), paced).unwrap();
        std::fs::create_dir(dir.path().join("u")).unwrap();
        let u = write_snapshot(&dir.path().join("u"), 6, &sample()).unwrap();
        let (q_bytes, u_bytes) = (std::fs::read(&q).unwrap(), std::fs::read(&u).unwrap());
        assert_eq!(q_bytes.len(), u_bytes.len());
        // All but the creation time (header bytes 24..32) and the checksum.
        assert_eq!(q_bytes[..24], u_bytes[..24]);
        assert_eq!(
            q_bytes[32..q_bytes.len() - 4],
            u_bytes[32..u_bytes.len() - 4]
        );
        read_snapshot(&q).unwrap();
        std::fs::remove_file(&q).unwrap();
        std::fs::remove_dir_all(dir.path().join("u")).unwrap();
        fault.inject(Op::Read, Fault::Errno(libc::EIO));
        let p = write_snapshot_on(&fault, dir.path(), 5, &sample(), WritePace::NONE).unwrap();
        let e = read_snapshot_on(&fault, &p).unwrap_err();
        assert!(
            matches!(&e, SnapshotError::Io { source, .. } if source.raw_os_error() == Some(libc::EIO)),
            "{e}"
        );
        assert_eq!(read_snapshot_on(&fault, &p).unwrap().1, sample());
    }
}
