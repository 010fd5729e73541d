//! `verify` and `dump`: read-only inspection of a persistence dir.
//!
//! `verify` reads every snapshot and every record of every segment (top
//! level and archive), checks checksums and the contiguity of sequence
//! numbers from the newest valid snapshot on, and prints one line per file
//! and a summary. A torn tail at the end of the newest open segment is
//! reported as a warning (the engine cuts it at start); anything else is a
//! problem. `dump` prints records (or snapshot entries) readably.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cmd::{self, quote as esc, Effect};
use crate::db::Value;
use crate::history::{History, HistoryError, SnapshotCheck};
use crate::layout::{self, FileKind};
use crate::record::Record;
use crate::segment::{verify_segment_on, SegmentError, SegmentReader};
use crate::snapshot;

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub lines: Vec<String>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub segments: u64,
    pub snapshots: u64,
    pub records: u64,
    pub bytes: u64,
    /// Highest seq found in a valid segment or snapshot.
    pub last_seq: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies every file of `dir` (see the module doc). Changes nothing.
pub fn verify(dir: &Path, archive_dir_name: &str) -> Result<VerifyReport, HistoryError> {
    let history = History::scan(dir, archive_dir_name)?;
    let mut rep = VerifyReport::default();
    for path in &history.listing().rejected {
        rep.warnings.push(format!(
            "{}: not a valid segment or snapshot name; ignored",
            path.display()
        ));
    }
    let mut newest_valid_snapshot = None;
    for s in history.snapshots() {
        rep.snapshots += 1;
        match history.verify_snapshot(s) {
            Ok(m) => {
                rep.lines.push(format!(
                    "ok   {}: snapshot last_seq={} entries={} created_ms={}",
                    s.path.display(),
                    m.last_seq,
                    m.entries,
                    m.created_ms
                ));
                newest_valid_snapshot = Some(m.last_seq);
                rep.last_seq = rep.last_seq.max(m.last_seq);
            }
            Err(SnapshotCheck::NameMismatch { found, .. }) => rep.problems.push(format!(
                "{}: header last_seq {found} does not match the name",
                s.path.display(),
            )),
            Err(SnapshotCheck::Damaged(e)) => rep.problems.push(e.to_string()),
        }
    }
    // every segment in walking order, each read whole
    let mut expected: Option<u64> = None;
    for (i, log) in history.logs().iter().enumerate() {
        rep.segments += 1;
        let (first, path) = (log.first_seq, &log.path);
        match verify_segment_on(&**history.fs(), path) {
            Ok(s) => {
                rep.records += s.records;
                rep.bytes += s.bytes;
                rep.lines.push(format!(
                    "ok   {}: records={} seq={}..{} bytes={}",
                    path.display(),
                    s.records,
                    s.first_seq,
                    s.last_seq
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "(empty)".into()),
                    s.bytes
                ));
                if let Some(exp) = expected {
                    if first > exp && newest_valid_snapshot.is_none_or(|snap| first > snap + 1) {
                        rep.problems.push(format!(
                            "gap: {} starts at seq {first}, expected {exp}",
                            path.display()
                        ));
                    }
                }
                if let Some(l) = s.last_seq {
                    rep.last_seq = rep.last_seq.max(l);
                    expected = Some(expected.map_or(l + 1, |e: u64| e.max(l + 1)));
                } else {
                    expected = Some(expected.unwrap_or(first).max(first));
                }
            }
            Err(e) if history.torn_tail_allowed(i) && e.is_torn_tail() => {
                rep.warnings
                    .push(format!("torn tail (cut at the next start): {e}"));
                rep.lines.push(format!(
                    "warn {}: torn tail at offset {}",
                    path.display(),
                    e.offset()
                ));
            }
            Err(e) => rep.problems.push(e.to_string()),
        }
    }
    Ok(rep)
}

fn dump_record(out: &mut dyn Write, r: &Record) -> std::io::Result<()> {
    let text = match cmd::describe_payload(&r.payload) {
        Ok(t) => t,
        Err(e) => format!("<undecodable payload: {e}>"),
    };
    writeln!(out, "{}\t{}\t{}", r.seq, r.timestamp_ms, text)
}

/// Why a dump stopped.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Layout(#[from] HistoryError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error("{0}: not a segment or snapshot file name")]
    UnknownFile(PathBuf),
    #[error("writing the dump: {0}")]
    Output(#[from] std::io::Error),
}

/// Dumps one file: a segment (`seq<TAB>timestamp_ms<TAB>command` per record)
/// or a snapshot (one line per entry).
pub fn dump_file(path: &Path, out: &mut dyn Write) -> Result<(), DumpError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match layout::classify(name) {
        FileKind::Snapshot { .. } => {
            let (meta, db) = snapshot::read_snapshot(path)?;
            writeln!(
                out,
                "# {} last_seq={} created_ms={} entries={}",
                path.display(),
                meta.last_seq,
                meta.created_ms,
                meta.entries
            )?;
            for (k, e) in db.iter() {
                let exp = e
                    .expire_at_ms()
                    .map(|t| format!(" PXAT {t}"))
                    .unwrap_or_default();
                match &e.value {
                    Value::Str(v) => writeln!(out, "SET {} {}{exp}", esc(k), esc(v))?,
                    Value::Hash(h) => {
                        let mut s = format!("HSET {}", esc(k));
                        for (f, v) in h {
                            s.push_str(&format!(" {} {}", esc(f), esc(v)));
                        }
                        writeln!(out, "{s}{exp}")?
                    }
                    Value::List(l) => {
                        let mut s = format!("RPUSH {}", esc(k));
                        for v in l {
                            s.push_str(&format!(" {}", esc(v)));
                        }
                        writeln!(out, "{s}{exp}")?
                    }
                    Value::Set(m) => {
                        let mut s = format!("SADD {}", esc(k));
                        for v in m {
                            s.push_str(&format!(" {}", esc(v)));
                        }
                        writeln!(out, "{s}{exp}")?
                    }
                    Value::ZSet(z) => {
                        let mut s = format!("ZADD {}", esc(k));
                        for (m, score) in z.iter() {
                            s.push_str(&format!(
                                " {} {}",
                                crate::resp::format_double(score),
                                esc(m)
                            ));
                        }
                        writeln!(out, "{s}{exp}")?
                    }
                }
            }
            Ok(())
        }
        FileKind::OpenSegment { .. } | FileKind::SealedSegment { .. } => {
            let mut r = SegmentReader::open(path)?;
            writeln!(out, "# {} first_seq={}", path.display(), r.first_seq())?;
            while let Some(rec) = r.next_record()? {
                dump_record(out, &rec)?;
            }
            Ok(())
        }
        _ => Err(DumpError::UnknownFile(path.to_path_buf())),
    }
}

/// Dumps every segment of `dir` (archive included) in walking order.
pub fn dump_dir(dir: &Path, archive_dir_name: &str, out: &mut dyn Write) -> Result<(), DumpError> {
    let history = History::scan(dir, archive_dir_name)?;
    for log in history.logs() {
        dump_file(&log.path, out)?;
    }
    Ok(())
}

/// Replay benchmark (the hidden `bench-replay` subcommand): writes a command
/// log of at least `bytes` (SET of `value_bytes` values over 1M keys, sealed
/// 64 MiB segments) into the empty dir `dir`, then times
/// [`crate::recovery::recover`] on it `runs` times (the fastest run is
/// reported, every run listed: the machine may be noisy), then the same walk
/// without applying (what reading and checking the log costs). Returns the
/// summary lines.
pub fn bench_replay(
    dir: &Path,
    bytes: u64,
    value_bytes: usize,
    runs: usize,
) -> anyhow::Result<String> {
    use crate::segment::SegmentWriter;
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    anyhow::ensure!(
        std::fs::read_dir(dir)?.next().is_none(),
        "{} must be empty",
        dir.display()
    );
    let seg_bytes: u64 = 64 << 20;
    let value = vec![b'x'; value_bytes];
    let t = std::time::Instant::now();
    let mut seq = 1u64;
    let mut written = 0u64;
    let mut batch = crate::batch::BatchEncoder::with_capacity(8 << 20);
    while written < bytes {
        let mut w = SegmentWriter::create(dir, seq, 0)?;
        while w.len() < seg_bytes && written < bytes {
            batch.clear();
            while batch.records().len() < (4 << 20) {
                let cmd = cmd::Set::new(format!("key:{:07}", seq % 1_000_000), value.clone());
                batch.push(1_700_000_000_000, &cmd.encode());
                seq += 1;
            }
            w.append(&mut batch)?;
            written += batch.framed_len() as u64;
        }
        w.sync()?;
        w.seal()?;
    }
    let write_secs = t.elapsed().as_secs_f64();
    let mut all_secs = Vec::new();
    let mut best = None;
    for _ in 0..runs.max(1) {
        let t = std::time::Instant::now();
        let r = crate::recovery::recover(
            dir,
            layout::DEFAULT_ARCHIVE_DIR_NAME,
            crate::recovery::RecoveryMode::Strict,
        )?;
        let secs = t.elapsed().as_secs_f64();
        all_secs.push(secs);
        if best.as_ref().is_none_or(|(s, _)| secs < *s) {
            best = Some((secs, r));
        }
    }
    let (secs, r) = best.expect("at least one run");
    anyhow::ensure!(
        r.last_seq == seq - 1,
        "replayed up to {} of {}",
        r.last_seq,
        seq - 1
    );
    // The same walk without applying: what reading and checking costs.
    let t = std::time::Instant::now();
    let history = History::scan(dir, layout::DEFAULT_ARCHIVE_DIR_NAME)?;
    let mut walk = history.walk(crate::history::WalkOptions::default());
    let mut read = 0u64;
    let mut payload_bytes = 0u64;
    while let Some(step) = walk.next_step() {
        if let crate::history::Step::Record { .. } = step? {
            read += 1;
            payload_bytes += walk.payload().len() as u64;
        }
    }
    let read_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        read == r.replayed && payload_bytes > 0,
        "read {read} records"
    );
    let runs_line = if all_secs.len() > 1 {
        let rates: Vec<String> = all_secs
            .iter()
            .map(|s| format!("{:.0}", r.replayed as f64 / s))
            .collect();
        format!("\nruns (fastest above), commands/s: {}", rates.join(" "))
    } else {
        String::new()
    };
    Ok(format!(
        "replay: {} commands, {:.1} MiB in {:.2} s: {:.0} commands/s, {:.1} MB/s ({} keys; log written in {:.2} s)\n\
         read and check only (no apply): {:.2} s: {:.0} records/s, {:.1} MB/s{runs_line}",
        r.replayed,
        r.replayed_bytes as f64 / (1 << 20) as f64,
        secs,
        r.replayed as f64 / secs,
        r.replayed_bytes as f64 / 1e6 / secs,
        r.db.len(),
        write_secs,
        read_secs,
        read as f64 / read_secs,
        r.replayed_bytes as f64 / 1e6 / read_secs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::SegmentWriter;

    use crate::cmd::{Del, FlushAll, Set, SetCondition};

    fn seg(dir: &Path, first: u64, cmds: &[Vec<u8>], seal: bool) -> PathBuf {
        let mut w = SegmentWriter::create(dir, first, 0).unwrap();
        w.append_records(cmds.iter().map(|c| (7, &c[..]))).unwrap();
        w.sync().unwrap();
        if seal {
            w.seal().unwrap()
        } else {
            w.path().to_path_buf()
        }
    }

    #[test]
    fn sorted_sets_are_dumped_from_segments_and_snapshots() {
        use crate::cmd::{ZAdd, ZPopShape, ZPopped};
        use crate::db::{Db, Entry, Value, ZSet};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let add = ZAdd {
            key: b"z".to_vec(),
            flags: 16,
            items: vec![(b"a".to_vec(), 1.5), (b"b".to_vec(), f64::INFINITY)],
        };
        let pop = ZPopped {
            key: b"z".to_vec(),
            shape: ZPopShape::One,
            members: vec![b"a".to_vec()],
        };
        seg(d, 1, &[add.encode(), pop.encode()], false);
        let mut out = Vec::new();
        dump_dir(d, "archived", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("1\t7\tZADD \"z\" CH 1.5 \"a\" inf \"b\""),
            "{text}"
        );
        assert!(text.contains("2\t7\tZPOPPED \"z\" \"a\""), "{text}");
        let mut db = Db::new();
        let z: ZSet = [(b"m".to_vec(), 0.1), (b"n".to_vec(), -2.0)]
            .into_iter()
            .collect();
        db.insert_entry(b"z".to_vec(), Entry::new(Value::ZSet(z)));
        let snap = crate::snapshot::write_snapshot(d, 2, &db).unwrap();
        let mut out = Vec::new();
        dump_file(&snap, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("ZADD \"z\" -2 \"n\" 0.10000000000000001 \"m\""),
            "{text}"
        );
    }

    #[test]
    fn verify_reports_files_gaps_and_damage_and_dump_prints_commands() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let set = Set {
            key: b"k\n".to_vec(),
            value: b"v".to_vec(),
            expire_at_ms: Some(99),
            keep_ttl: false,
            condition: SetCondition::Nx,
            get: false,
        };
        let s1 = seg(d, 1, &[set.encode(), FlushAll.encode()], true);
        seg(
            d,
            3,
            &[Del {
                keys: vec![b"a".to_vec()],
            }
            .encode()],
            false,
        );
        let rep = verify(d, "archived").unwrap();
        assert!(rep.ok(), "{:?}", rep.problems);
        assert_eq!((rep.segments, rep.records, rep.last_seq), (2, 3, 3));
        assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);
        // a damaged name is never read: a warning, not a problem
        let bad_name = d.join("cmdlog-3.open");
        std::fs::write(&bad_name, b"garbage").unwrap();
        let rep = verify(d, "archived").unwrap();
        assert!(rep.ok(), "{:?}", rep.problems);
        assert_eq!(rep.segments, 2);
        assert!(
            rep.warnings.len() == 1 && rep.warnings[0].contains(bad_name.to_str().unwrap()),
            "{:?}",
            rep.warnings
        );
        std::fs::remove_file(&bad_name).unwrap();

        let mut out = Vec::new();
        dump_dir(d, "archived", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("1\t7\tSET \"k\\n\" \"v\" PXAT 99 NX"),
            "{text}"
        );
        assert!(text.contains("3\t7\tDEL \"a\""), "{text}");

        // a gap and a damaged sealed segment are problems
        seg(d, 10, &[FlushAll.encode()], true);
        let mut b = std::fs::read(&s1).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        std::fs::write(&s1, b).unwrap();
        let rep = verify(d, "archived").unwrap();
        assert!(!rep.ok());
        assert!(
            rep.problems.iter().any(|p| p.contains("gap")),
            "{:?}",
            rep.problems
        );
        assert!(rep
            .problems
            .iter()
            .any(|p| p.contains(s1.to_str().unwrap())));
        assert!(matches!(
            dump_file(&s1, &mut Vec::new()),
            Err(DumpError::Segment(_))
        ));
    }
}
