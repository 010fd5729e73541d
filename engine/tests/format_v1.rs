//! Segments written by the version-1 segment writer (bare records, before
//! batch framing) are still read: `tests/fixtures/v1` holds a sealed
//! segment (seqs 1..=10) and an open, preallocated one (11..=15), SET k{i}
//! v{i}, as that code wrote them.

use std::path::{Path, PathBuf};

use tiered_engine::batch::BatchEncoder;
use tiered_engine::cmd::{Set, Write};
use tiered_engine::db::{Db, Value};
use tiered_engine::recovery::{recover, RecoveryMode};
use tiered_engine::segment::{verify_segment, SegmentReader, SegmentWriter};

fn fixtures() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

fn has(db: &Db, i: u64) -> bool {
    db.get(format!("k{i}").as_bytes(), 0) == Some(&Value::Str(format!("v{i}").into_bytes()))
}

fn open_v1(d: &Path) -> PathBuf {
    d.join(tiered_engine::layout::open_segment_name(11))
}

#[test]
fn version_1_segments_are_read() {
    let dir = fixtures();
    let d = dir.path();
    let sealed = d.join(tiered_engine::layout::sealed_segment_name(1, 10));
    let s = verify_segment(&sealed).unwrap();
    assert_eq!((s.first_seq, s.last_seq, s.records), (1, Some(10), 10));
    assert_eq!(SegmentReader::open(&sealed).unwrap().version(), 1);
    let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(r.last_seq, 15);
    assert!(r.cut_tail.is_none());
    assert!((1..=15).all(|i| has(&r.db, i)));

    // a segment of the version written now after them: one history
    let mut w = SegmentWriter::create(d, 16, 4096).unwrap();
    let mut buf = BatchEncoder::new();
    for seq in 16..=18 {
        let mut p = Vec::new();
        Set::new(format!("k{seq}"), format!("v{seq}")).encode_into(&mut p);
        buf.push(1_700_000_000_000 + seq, &p);
    }
    w.append(&mut buf).unwrap();
    w.sync().unwrap();
    let sealed2 = w.seal().unwrap();
    assert_eq!(SegmentReader::open(&sealed2).unwrap().version(), 3);
    let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(r.last_seq, 18);
    assert!((1..=18).all(|i| has(&r.db, i)));
}

#[test]
fn a_torn_last_record_of_a_version_1_open_segment_is_cut() {
    let dir = fixtures();
    let d = dir.path();
    let open = open_v1(d);
    let mut r = SegmentReader::open(&open).unwrap();
    for _ in 0..4 {
        r.next_record().unwrap().unwrap();
    }
    let at = r.offset();
    drop(r);
    let mut b = std::fs::read(&open).unwrap();
    b[at as usize + 30..at as usize + 34].fill(0);
    std::fs::write(&open, b).unwrap();
    let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(r.last_seq, 14);
    assert_eq!(r.cut_tail.unwrap().offset, at);
    assert!((1..=14).all(|i| has(&r.db, i)));
}
