use super::*;
use crate::record::DecodeError;
use crate::segment::SegmentWriter;
use crate::snapshot::write_snapshot;
use crate::sys::{Fault, FaultFs, Op, Rule};

/// Writes records `first..first + n` (payload `cmd{seq}`) into `dir`,
/// sealed or left open; returns its path.
fn segment(dir: &Path, first: u64, n: u64, seal: bool) -> PathBuf {
    let mut w = SegmentWriter::create(dir, first, 4096).unwrap();
    // one batch per record: damage to a record is damage to its batch
    for seq in first..first + n {
        w.append_records([(1000 + seq, format!("cmd{seq}").as_bytes())])
            .unwrap();
    }
    w.sync().unwrap();
    if seal {
        w.seal().unwrap()
    } else {
        w.path().to_path_buf()
    }
}

fn archive_dirs(d: &Path) -> (PathBuf, PathBuf) {
    let logs = d.join("archived").join(ARCHIVE_LOGS_DIR);
    let snaps = d.join("archived").join(ARCHIVE_SNAPSHOTS_DIR);
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&snaps).unwrap();
    (logs, snaps)
}

fn move_into(path: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(path.file_name().unwrap());
    std::fs::rename(path, &to).unwrap();
    to
}

fn copy_into(path: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(path.file_name().unwrap());
    std::fs::copy(path, &to).unwrap();
    to
}

fn opts(from_seq: u64, until_seq: Option<u64>, on_damage: OnDamage) -> WalkOptions {
    WalkOptions {
        from_seq,
        until_seq,
        on_damage,
    }
}

/// The walk as a compact trace: `r{seq}`, `done{log}:{last}@{len}`,
/// `tail{log}`/`cut{log}`, `skip`; the error, if any, ends it.
fn trace(h: &History, o: WalkOptions) -> (Vec<String>, Option<HistoryError>) {
    let mut out = Vec::new();
    for step in h.walk(o) {
        match step {
            Ok(Step::Record { record, .. }) => {
                assert_eq!(record.payload, format!("cmd{}", record.seq).into_bytes());
                assert_eq!(record.timestamp_ms, 1000 + record.seq);
                out.push(format!("r{}", record.seq));
            }
            Ok(Step::LogDone { log, last_seq, .. }) => {
                out.push(format!("done{log}:{}", last_seq.map_or(-1, |l| l as i64)))
            }
            Ok(Step::Tail { log, torn, .. }) => {
                out.push(format!("{}{log}", if torn { "tail" } else { "cut" }))
            }
            Ok(Step::Skipped(_)) => out.push("skip".into()),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn records(t: &[String]) -> Vec<u64> {
    t.iter()
        .filter_map(|s| s.strip_prefix('r').map(|n| n.parse().unwrap()))
        .collect()
}

/// Flips bytes in the middle of record `index` of `path` (damage).
fn damage_record(path: &Path, index: usize) -> u64 {
    let mut r = SegmentReader::open(path).unwrap();
    for _ in 0..index {
        r.next_record().unwrap().unwrap();
    }
    let at = r.offset();
    let mut b = std::fs::read(path).unwrap();
    // a record byte, past the batch header: the batch checksum fails
    b[at as usize + crate::batch::BATCH_HEADER_BYTES + 3] ^= 0x5a;
    std::fs::write(path, b).unwrap();
    at
}

/// Zeroes the last record of `path` from 10 bytes in (a torn write).
fn tear_last_record(path: &Path, records: usize) -> u64 {
    let mut r = SegmentReader::open(path).unwrap();
    for _ in 0..records - 1 {
        r.next_record().unwrap().unwrap();
    }
    let at = r.offset();
    let mut b = std::fs::read(path).unwrap();
    for x in &mut b[at as usize + 10..at as usize + 28] {
        *x = 0;
    }
    std::fs::write(path, b).unwrap();
    at
}

#[test]
fn orders_segments_and_snapshots_across_primary_and_archive() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (logs, snaps) = archive_dirs(d);
    let s1 = segment(d, 1, 10, true);
    move_into(&s1, &logs);
    segment(d, 11, 10, true);
    let s3 = segment(d, 21, 5, true);
    move_into(&s3, &logs);
    segment(d, 26, 5, false);
    let p = write_snapshot(d, 10, &Db::new()).unwrap();
    move_into(&p, &snaps);
    write_snapshot(d, 20, &Db::new()).unwrap();

    let h = History::scan(d, "archived").unwrap();
    let firsts: Vec<(u64, Option<u64>, bool)> = h
        .logs()
        .iter()
        .map(|l| (l.first_seq, l.last_seq, l.archived))
        .collect();
    assert_eq!(
        firsts,
        vec![
            (1, Some(10), true),
            (11, Some(20), false),
            (21, Some(25), true),
            (26, None, false)
        ]
    );
    assert_eq!(
        h.snapshots()
            .iter()
            .map(|s| (s.last_seq, s.archived))
            .collect::<Vec<_>>(),
        vec![(10, true), (20, false)]
    );
    assert!(h.torn_tail_allowed(3) && !h.torn_tail_allowed(2));
    let (t, err) = trace(&h, WalkOptions::default());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(records(&t), (1..=30).collect::<Vec<_>>());
    let dones: Vec<&String> = t.iter().filter(|s| s.starts_with("done")).collect();
    assert_eq!(dones, ["done0:10", "done1:20", "done2:25", "done3:30"]);
    // the sealed-only view never includes the open segment
    let sealed = History::from_listing(sys::real(), h.listing().clone(), false);
    assert_eq!(sealed.logs().len(), 3);
    assert!(!sealed.torn_tail_allowed(2));
    let (t, _) = trace(&sealed, WalkOptions::default());
    assert_eq!(records(&t).last(), Some(&25));
}

#[test]
fn a_file_in_both_places_is_listed_once_preferring_the_primary_copy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (logs, snaps) = archive_dirs(d);
    let s1 = segment(d, 1, 5, true);
    let archived = copy_into(&s1, &logs);
    segment(d, 6, 5, true);
    let snap = write_snapshot(d, 5, &Db::new()).unwrap();
    copy_into(&snap, &snaps);
    // a damaged archived copy is never read while the primary copy exists
    let mut b = std::fs::read(&archived).unwrap();
    b[60] ^= 1;
    std::fs::write(&archived, b).unwrap();

    let h = History::scan(d, "archived").unwrap();
    assert_eq!(h.logs().len(), 2);
    assert_eq!(
        (h.logs()[0].path.clone(), h.logs()[0].archived),
        (s1, false)
    );
    assert_eq!(h.snapshots().len(), 1);
    assert_eq!(h.snapshots()[0].path, snap);
    let (t, err) = trace(&h, WalkOptions::default());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(records(&t), (1..=10).collect::<Vec<_>>());

    // overlapping segments (1-5 archived, 1-10 at the top): each seq once
    std::fs::remove_file(&archived).unwrap();
    let whole = tempfile::tempdir().unwrap();
    let big = segment(whole.path(), 1, 10, true);
    std::fs::remove_file(d.join(layout::sealed_segment_name(6, 10))).unwrap();
    move_into(&s_path(d, 1, 5), &logs);
    move_into(&big, d);
    let h = History::scan(d, "archived").unwrap();
    assert_eq!(h.logs().len(), 2);
    let (t, err) = trace(&h, WalkOptions::default());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(records(&t), (1..=10).collect::<Vec<_>>());
}

fn s_path(d: &Path, first: u64, last: u64) -> PathBuf {
    d.join(layout::sealed_segment_name(first, last))
}

#[test]
fn a_torn_tail_is_accepted_only_at_the_end_of_the_newest_open_segment() {
    // newest open segment: torn tail, reported, the walk goes on to the end
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    segment(d, 1, 5, true);
    let open = segment(d, 6, 5, false);
    let at = tear_last_record(&open, 5);
    let h = History::scan(d, "archived").unwrap();
    let mut steps = h.walk(WalkOptions::default());
    let mut tail = None;
    for s in steps.by_ref() {
        if let Step::Tail {
            offset,
            file_len,
            cause,
            torn,
            ..
        } = s.unwrap()
        {
            tail = Some((offset, file_len, cause, torn));
        }
    }
    assert_eq!(steps.last_seq(), 9);
    let (offset, file_len, cause, torn) = tail.expect("a tail");
    assert!(torn && cause.is_torn_tail());
    assert_eq!((offset, file_len), (at, 4096));
    let (t, _) = trace(&h, WalkOptions::default());
    assert_eq!(
        t[t.len() - 2..],
        ["tail1".to_string(), "done1:9".to_string()]
    );

    // the same damage in a sealed segment is damage
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sealed = segment(d, 1, 5, true);
    tear_last_record(&sealed, 5);
    segment(d, 6, 5, false);
    let h = History::scan(d, "archived").unwrap();
    let (t, err) = trace(&h, WalkOptions::default());
    assert_eq!(records(&t), vec![1, 2, 3, 4]);
    assert!(
        matches!(
            err,
            Some(HistoryError::Segment(SegmentError::BadRecord { .. }))
        ),
        "{err:?}"
    );

    // ... and so it is in an open segment that is not the newest
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let older = segment(d, 1, 5, false);
    tear_last_record(&older, 5);
    segment(d, 5, 5, true);
    let h = History::scan(d, "archived").unwrap();
    assert!(!h.torn_tail_allowed(0));
    let (_, err) = trace(&h, WalkOptions::default());
    assert!(
        matches!(&err, Some(HistoryError::Segment(e)) if e.is_torn_tail()),
        "{err:?}"
    );

    // damage with valid records after it, in the newest open segment: damage
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let open = segment(d, 1, 5, false);
    damage_record(&open, 2);
    let h = History::scan(d, "archived").unwrap();
    let (t, err) = trace(&h, WalkOptions::default());
    assert_eq!(records(&t), vec![1, 2]);
    assert!(
        matches!(
            err,
            Some(HistoryError::Segment(SegmentError::BadRecord {
                reason: DecodeError::BadBatchChecksum { .. },
                to_end: false,
                ..
            }))
        ),
        "{err:?}"
    );
    // skipped on request: only the damaged batch is lost, reading resumes
    // at the next complete one
    let (t, err) = trace(&h, opts(0, None, OnDamage::Skip));
    assert!(err.is_none());
    assert_eq!(t, ["r1", "r2", "skip", "r4", "r5", "done0:5"]);
    let lost: Vec<_> = h
        .walk(opts(0, None, OnDamage::Skip))
        .filter_map(|s| match s.unwrap() {
            Step::Skipped(HistoryError::Lost { first, last, .. }) => Some((first, last)),
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![(3, 3)]);
    // the damaged batch is the last one: the rest is cut (not torn)
    let dir = tempfile::tempdir().unwrap();
    let open = segment(dir.path(), 1, 5, false);
    damage_record(&open, 4);
    let h = History::scan(dir.path(), "archived").unwrap();
    let (t, err) = trace(&h, opts(0, None, OnDamage::Skip));
    assert!(err.is_none());
    assert_eq!(t, ["r1", "r2", "r3", "r4", "tail0", "done0:4"]);
}

#[test]
fn skipping_damage_passes_a_sealed_segments_named_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = segment(d, 1, 5, true);
    damage_record(&bad, 2);
    segment(d, 6, 5, true);
    segment(d, 13, 2, false); // a gap: 11 and 12 are missing
    let h = History::scan(d, "archived").unwrap();
    let (t, err) = trace(&h, WalkOptions::default());
    assert_eq!(records(&t), vec![1, 2]);
    assert!(matches!(err, Some(HistoryError::Segment(_))), "{err:?}");

    let mut walk = h.walk(opts(0, None, OnDamage::Skip));
    let steps: Vec<Step> = walk.by_ref().map(|s| s.unwrap()).collect();
    assert_eq!(walk.last_seq(), 14);
    let (t, err) = trace(&h, opts(0, None, OnDamage::Skip));
    assert!(err.is_none());
    assert_eq!(
        t,
        [
            "r1", "r2", "skip", "r4", "r5", "done0:5", "r6", "r7", "r8", "r9", "r10", "done1:10",
            "skip", "r13", "r14", "done2:14"
        ]
    );
    // the last batch of a sealed segment damaged: nothing to resume at, the
    // named range is passed whole
    let bad2 = segment(d, 15, 3, true);
    damage_record(&bad2, 2);
    segment(d, 18, 1, false);
    let h2 = History::scan(d, "archived").unwrap();
    let (t, err) = trace(&h2, opts(0, None, OnDamage::Skip));
    assert!(err.is_none());
    assert_eq!(
        t[t.len() - 6..],
        ["r15", "r16", "skip", "done3:16", "r18", "done4:18"]
    );
    assert!(matches!(
        steps
            .iter()
            .filter(|s| matches!(s, Step::Skipped(_)))
            .nth(1),
        Some(Step::Skipped(HistoryError::Gap {
            expected: 11,
            found: 13,
            ..
        }))
    ));

    // a segment whose header does not even open: skipped whole
    let mut b = std::fs::read(&bad).unwrap();
    b[0] ^= 1;
    std::fs::write(&bad, b).unwrap();
    let (t, _) = trace(&h, opts(0, None, OnDamage::Skip));
    assert_eq!(t[..3], ["skip", "done0:-1", "r6"]);
    let (_, err) = trace(&h, WalkOptions::default());
    assert!(
        matches!(
            err,
            Some(HistoryError::Segment(SegmentError::BadHeader { .. }))
        ),
        "{err:?}"
    );
}

#[test]
fn damaged_names_are_refused_by_the_one_validator_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (logs, snaps) = archive_dirs(d);
    segment(d, 1, 3, false);
    let garbage = b"not a segment at all".to_vec();
    let refused = [
        d.join("cmdlog-1.open"),
        d.join("cmdlog-00000000000000000009-00000000000000000001.log"),
        d.join("cmdlog-0000000000000000000x.open"),
        d.join("snapshot-1.snap"),
        d.join("snapshot-00000000000000000002.snap.bak"),
        logs.join("cmdlog-00000000000000000004.open"),
        snaps.join("snapshot-0000000000000000000.snap"),
    ];
    for p in &refused {
        std::fs::write(p, &garbage).unwrap();
    }
    // ignored without a word: temp files and unrelated names
    for p in [
        d.join("cmdlog-next.tmp"),
        d.join("snapshot-00000000000000000003.snap.12.tmp"),
        d.join("engine.lock"),
        d.join("notes.txt"),
    ] {
        std::fs::write(p, &garbage).unwrap();
    }
    let h = History::scan(d, "archived").unwrap();
    let mut want = refused.to_vec();
    want.sort();
    assert_eq!(h.listing().rejected, want);
    assert_eq!(h.logs().len(), 1);
    assert!(h.snapshots().is_empty());
    let (t, err) = trace(&h, WalkOptions::default());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(records(&t), vec![1, 2, 3]);
}

#[test]
fn walks_start_and_stop_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    segment(d, 1, 5, true);
    segment(d, 6, 5, true);
    segment(d, 11, 5, false);
    let h = History::scan(d, "archived").unwrap();
    let recs = |o| {
        let (t, e) = trace(&h, o);
        (records(&t), t, e)
    };
    // from the middle of a segment
    let (r, _, e) = recs(opts(3, None, OnDamage::Stop));
    assert!(e.is_none());
    assert_eq!(r, (4..=15).collect::<Vec<_>>());
    // from a segment boundary: the covered sealed segment is not even opened
    let (r, t, _) = recs(opts(5, None, OnDamage::Stop));
    assert_eq!(r, (6..=15).collect::<Vec<_>>());
    assert!(!t.iter().any(|s| s.starts_with("done0")), "{t:?}");
    // an open segment is always read (and reported), even when covered
    let (r, t, _) = recs(opts(15, None, OnDamage::Stop));
    assert!(r.is_empty());
    assert_eq!(t, ["done2:15"]);
    // up to a seq
    let (r, _, e) = recs(opts(2, Some(7), OnDamage::Stop));
    assert!(e.is_none());
    assert_eq!(r, vec![3, 4, 5, 6, 7]);
    // beyond the end
    let (r, _, e) = recs(opts(12, Some(20), OnDamage::Stop));
    assert_eq!(r, vec![13, 14, 15]);
    assert!(
        matches!(
            e,
            Some(HistoryError::Missing {
                last: 15,
                wanted: 20
            })
        ),
        "{e:?}"
    );
    // a start before the first segment is a gap
    std::fs::remove_file(d.join(layout::sealed_segment_name(1, 5))).unwrap();
    let h = History::scan(d, "archived").unwrap();
    let (t, e) = trace(&h, WalkOptions::default());
    assert!(t.is_empty());
    assert!(
        matches!(&e, Some(HistoryError::Gap { expected: 1, found: 6, path }) if path.ends_with(layout::sealed_segment_name(6, 10))),
        "{e:?}"
    );
    let (t, _) = trace(&h, opts(5, None, OnDamage::Stop));
    assert_eq!(records(&t), (6..=15).collect::<Vec<_>>());
}

#[test]
fn a_file_that_vanishes_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = segment(d, 1, 5, true);
    segment(d, 6, 5, false);
    let h = History::scan(d, "archived").unwrap();
    std::fs::remove_file(&s).unwrap();
    let (_, e) = trace(&h, WalkOptions::default());
    assert!(matches!(&e, Some(e) if e.is_vanished()), "{e:?}");
    assert_eq!(e.unwrap().path(), Some(s.as_path()));
    let snap = write_snapshot(d, 3, &Db::new()).unwrap();
    let h = History::scan(d, "archived").unwrap();
    std::fs::remove_file(&snap).unwrap();
    assert!(matches!(
        h.load_snapshot(u64::MAX, &mut |_| {}),
        Err(HistoryError::Vanished { .. })
    ));
}

#[test]
fn the_newest_whole_snapshot_at_or_before_a_seq_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, snaps) = archive_dirs(d);
    let p = write_snapshot(d, 3, &Db::new()).unwrap();
    move_into(&p, &snaps);
    write_snapshot(d, 6, &Db::new()).unwrap();
    let newest = write_snapshot(d, 9, &Db::new()).unwrap();
    let mut b = std::fs::read(&newest).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    std::fs::write(&newest, b).unwrap();
    // a snapshot whose header disagrees with its name
    std::fs::rename(
        d.join(layout::snapshot_name(6)),
        d.join(layout::snapshot_name(7)),
    )
    .unwrap();
    let h = History::scan(d, "archived").unwrap();
    let mut skipped = Vec::new();
    let (snap, meta, _) = h
        .load_snapshot(u64::MAX, &mut |w| skipped.push(w))
        .unwrap()
        .unwrap();
    assert_eq!((snap.last_seq, meta.last_seq, snap.archived), (3, 3, true));
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let mut skipped = 0;
    let got = h.load_snapshot(2, &mut |_| skipped += 1).unwrap();
    assert!(got.is_none());
    assert_eq!(skipped, 0, "snapshots after the bound are not read");
    assert!(matches!(
        h.verify_snapshot(&h.snapshots()[1]),
        Err(SnapshotCheck::NameMismatch { found: 6, .. })
    ));
    assert!(matches!(
        h.verify_snapshot(&h.snapshots()[2]),
        Err(SnapshotCheck::Damaged(_))
    ));
}

#[test]
fn seam_failures_surface_with_their_errno() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    segment(d, 1, 5, true);
    segment(d, 6, 5, false);
    let fault = FaultFs::new(sys::real());

    fault.inject(Op::ReadDir, Fault::Errno(libc::EIO));
    let e = History::scan_on(fault.handle(), d, "archived").unwrap_err();
    assert!(
        matches!(&e, HistoryError::ReadDir { source, path } if source.raw_os_error() == Some(libc::EIO) && path == d),
        "{e}"
    );

    let h = History::scan_on(fault.handle(), d, "archived").unwrap();
    fault.take_calls();
    // a read error in the sealed segment is damage, never a torn tail, and
    // carries the errno
    fault.add_rule(Rule {
        op: Op::Read,
        name_suffix: Some(".log".into()),
        skip: 0,
        times: 1,
        fault: Fault::Errno(libc::EIO),
    });
    let (_, err) = trace(&h, WalkOptions::default());
    assert!(
        matches!(&err, Some(HistoryError::Segment(SegmentError::Io { source, .. })) if source.raw_os_error() == Some(libc::EIO)),
        "{err:?}"
    );
    // everything the walk did went through the seam
    let calls = fault.take_calls();
    assert!(calls.iter().any(|(op, _)| *op == Op::Open));
    assert!(calls.iter().all(|(_, p)| p.starts_with(d)));

    // an open that fails with EIO is damage; skipped on request
    fault.inject(Op::Open, Fault::Errno(libc::EIO));
    let (t, err) = trace(&h, opts(0, None, OnDamage::Skip));
    assert!(err.is_none());
    assert_eq!(t[..3], ["skip", "done0:-1", "r6"]);
    assert_eq!(fault.pending_rules(), 0);
}
