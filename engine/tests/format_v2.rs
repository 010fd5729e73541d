//! Segments written by the version-2 segment writer (batches of records with
//! 24-byte headers, before compact records) are still read, and a version-3
//! history continues them: `tests/fixtures/v2` holds a sealed segment (seqs
//! 1..=10: three batches of one record, one of seven) and an open,
//! preallocated one (11..=15, one batch, left by a kill -9), SET k{i} v{i},
//! as the version-2 engine wrote them (`redis-cli` against the release
//! build of commit 29527d0).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tiered_engine::batch::{self, Framing};
use tiered_engine::db::{Db, Value};
use tiered_engine::history::{History, Step, WalkOptions};
use tiered_engine::layout;
use tiered_engine::recovery::{recover, RecoveryMode};
use tiered_engine::segment::{
    encode_v2_segment, verify_segment, SegmentHeader, SegmentReader, SEGMENT_HEADER_BYTES,
};
use tiered_engine::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn fixtures() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2");
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

fn sealed_v2(d: &Path) -> PathBuf {
    d.join(layout::sealed_segment_name(1, 10))
}

fn open_v2(d: &Path) -> PathBuf {
    d.join(layout::open_segment_name(11))
}

#[test]
fn version_2_segments_are_read() {
    let dir = fixtures();
    let d = dir.path();
    let s = verify_segment(&sealed_v2(d)).unwrap();
    assert_eq!(
        (s.first_seq, s.last_seq, s.records, s.bytes),
        (1, Some(10), 10, 550)
    );
    assert_eq!(SegmentReader::open(&sealed_v2(d)).unwrap().version(), 2);
    let s = verify_segment(&open_v2(d)).unwrap();
    assert_eq!((s.first_seq, s.last_seq, s.records), (11, Some(15), 5));
    let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(r.last_seq, 15);
    assert!(r.cut_tail.is_none());
    assert!((1..=15).all(|i| has(&r.db, i)));
}

/// The version-2 encoder kept for tests (`encode_v2_segment`) writes, byte
/// for byte, what the version-2 engine wrote: the fixtures, decoded batch
/// by batch and framed again with their salt, are the same files.
#[test]
fn the_kept_version_2_encoder_writes_what_the_version_2_engine_wrote() {
    let dir = fixtures();
    for path in [sealed_v2(dir.path()), open_v2(dir.path())] {
        let bytes = std::fs::read(&path).unwrap();
        let hb: [u8; SEGMENT_HEADER_BYTES as usize] = bytes[..40].try_into().unwrap();
        let (h, version) = SegmentHeader::decode_versioned(&hb).unwrap();
        assert_eq!(version, 2);
        let mut batches = Vec::new();
        let mut at = SEGMENT_HEADER_BYTES as usize;
        while at < bytes.len() && bytes[at..at + 4] == batch::BATCH_MAGIC_V2 {
            let (header, records) = batch::decode_batch(Framing::V2, h.salt, &bytes[at..]).unwrap();
            batches.push(
                records
                    .map(|r| {
                        let r = r.unwrap();
                        (r.timestamp_ms, r.payload.to_vec())
                    })
                    .collect::<Vec<_>>(),
            );
            at += header.total_len() as usize;
        }
        assert!(bytes[at..].iter().all(|&b| b == 0), "{}", path.display());
        let again = encode_v2_segment(h.first_seq, h.salt, &batches, bytes.len());
        assert_eq!(again, bytes, "{}", path.display());
    }
}

#[test]
fn a_torn_last_batch_of_a_version_2_open_segment_is_cut() {
    let dir = fixtures();
    let d = dir.path();
    let open = open_v2(d);
    let mut b = std::fs::read(&open).unwrap();
    // a byte of the last record of its only batch
    b[40 + 32 + 4 * 40 + 30] ^= 0x11;
    std::fs::write(&open, b).unwrap();
    let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(r.last_seq, 10);
    assert_eq!(r.cut_tail.unwrap().offset, SEGMENT_HEADER_BYTES);
    assert!((1..=10).all(|i| has(&r.db, i)));
    assert!(!has(&r.db, 11));
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends `cmds` as one pipeline and reads `expected_len` bytes of replies.
async fn pipeline(addr: SocketAddr, cmds: &[Vec<String>], expected_len: usize) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = Vec::new();
    for c in cmds {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        req.extend_from_slice(&resp(&args));
    }
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < expected_len {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("replies in time")
            .unwrap();
        assert!(n > 0, "connection closed");
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The engine starts on a version-2 history (sealing its open segment),
/// writes version 3 after it, and every reader walks the mixed history as
/// one: recovery, the walker, verify.
#[test]
fn a_version_3_history_continues_a_version_2_one() {
    let dir = fixtures();
    let d = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = Config::new(d, "127.0.0.1:0".parse().unwrap());
        cfg.reserve_bytes = 0;
        let shutdown = CancellationToken::new();
        let running = tiered_engine::start(cfg, shutdown.clone()).await.unwrap();
        let gets: Vec<Vec<String>> = (1..=15)
            .map(|i| vec!["GET".into(), format!("k{i}")])
            .collect();
        let want: String = (1..=15)
            .map(|i| {
                let v = format!("v{i}");
                format!("${}\r\n{v}\r\n", v.len())
            })
            .collect();
        let got = pipeline(running.addr, &gets, want.len()).await;
        assert_eq!(got, want);
        let sets: Vec<Vec<String>> = (16..=40)
            .map(|i| vec!["SET".into(), format!("k{i}"), format!("v{i}")])
            .collect();
        let ok = "+OK\r\n".repeat(25);
        assert_eq!(pipeline(running.addr, &sets, ok.len()).await, ok);
        shutdown.cancel();
        running.wait().await.unwrap();
    });
    let h = History::scan(d, "archived").unwrap();
    let versions: Vec<(u64, u32)> = h
        .logs()
        .iter()
        .map(|l| (l.first_seq, SegmentReader::open(&l.path).unwrap().version()))
        .collect();
    assert_eq!(versions, [(1, 2), (11, 2), (16, 3)]);
    let mut seqs = Vec::new();
    for step in h.walk(WalkOptions::default()) {
        if let Step::Record { record, .. } = step.unwrap() {
            seqs.push(record.seq);
        }
    }
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    let r = recover(d, "archived", RecoveryMode::Strict).unwrap();
    assert_eq!(r.last_seq, 40);
    assert!((1..=40).all(|i| has(&r.db, i)));
    let report = tiered_engine::inspect::verify(d, "archived").unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        (report.segments, report.records, report.last_seq),
        (3, 40, 40)
    );
}
