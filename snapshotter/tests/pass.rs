//! One pass of the snapshotter on files written by the engine's own segment
//! writer: snapshots, archival, idempotence, and refusal on damage or gaps.

mod common;

use std::fs;
use std::sync::atomic::AtomicBool;

use common::*;
use tiered_engine::snapshot::{read_snapshot, write_snapshot};
use tiered_snapshotter::config::Config;
use tiered_snapshotter::metrics::Metrics;
use tiered_snapshotter::pass::{run_pass, PassError, PassReport, PassState};
use tiered_snapshotter::replay::ReplayError;

fn pass(config: &Config) -> Result<PassReport, PassError> {
    run_pass(
        config,
        &Metrics::new(),
        &AtomicBool::new(false),
        &mut PassState::default(),
    )
}

#[test]
fn snapshot_appears_logs_are_archived_and_a_second_pass_is_idempotent() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(10);
    h.sealed(5);
    let open = h.open(3);
    let config = Config::new(d.path());

    let r = pass(&config).unwrap();
    assert_eq!(r.published, Some(15));
    assert_eq!(r.archived_logs, 2);
    let (meta, db) = read_snapshot(&d.path().join(snap_name(15))).unwrap();
    assert_eq!(meta.last_seq, 15);
    assert_same_state(&db, &h.states[15], "snapshot 15");
    // Logs moved, byte for byte verified, open segment untouched.
    assert_eq!(
        names(&d.path().join("archived/logs")),
        vec![log_name(1, 10), log_name(11, 15)]
    );
    assert!(open.exists());
    assert_eq!(
        names(d.path())
            .into_iter()
            .filter(|n| n.starts_with("cmdlog-") || n.starts_with("snapshot-"))
            .collect::<Vec<_>>(),
        vec![
            open.file_name().unwrap().to_string_lossy().into_owned(),
            snap_name(15)
        ]
    );

    let before = tree(d.path());
    let r = pass(&config).unwrap();
    assert_eq!(r.published, None);
    assert_eq!((r.archived_logs, r.archived_snapshots), (0, 0));
    assert_eq!(tree(d.path()), before, "second pass changed files");
}

#[test]
fn snapshots_beyond_keep_are_archived_and_history_builds_on_the_newest() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    let mut config = Config::new(d.path());
    config.keep_snapshots = 2;
    for round in 1..=4u64 {
        h.sealed(4);
        let r = pass(&config).unwrap();
        assert_eq!(r.published, Some(round * 4));
    }
    let top: Vec<String> = names(d.path())
        .into_iter()
        .filter(|n| n.starts_with("snapshot-"))
        .collect();
    assert_eq!(top, vec![snap_name(12), snap_name(16)]);
    assert_eq!(
        names(&d.path().join("archived/snapshots")),
        vec![snap_name(4), snap_name(8)]
    );
    assert_eq!(names(&d.path().join("archived/logs")).len(), 4);
    let (_, db) = read_snapshot(&d.path().join(snap_name(16))).unwrap();
    assert_same_state(&db, &h.states[16], "snapshot 16");
}

#[test]
fn thresholds_delay_the_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    let mut config = Config::new(d.path());
    config.min_logs = 2;
    h.sealed(3);
    let r = pass(&config).unwrap();
    assert_eq!((r.published, r.pending_logs), (None, 1));
    h.sealed(3);
    assert_eq!(pass(&config).unwrap().published, Some(6));

    config.min_logs = 1;
    config.min_bytes = 1 << 30;
    h.sealed(3);
    assert_eq!(pass(&config).unwrap().published, None);
}

#[test]
fn damaged_log_publishes_nothing_and_deletes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(5);
    let bad = h.sealed(5);
    // Flip a byte in the middle of the second log's records.
    let mut bytes = fs::read(&bad).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&bad, bytes).unwrap();
    let before = tree(d.path());
    let metrics = Metrics::new();
    let err = run_pass(
        &Config::new(d.path()),
        &metrics,
        &AtomicBool::new(false),
        &mut PassState::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, PassError::Replay(ReplayError::Damaged(_))),
        "{err}"
    );
    assert!(err.to_string().contains(&log_name(6, 10)), "{err}");
    assert_eq!(tree(d.path()), before);
    let text = metrics.encode();
    assert!(
        text.contains("tiered_snapshotter_snapshots_total{outcome=\"failed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tiered_snapshotter_errors_total{step=\"snapshot\"} 1"),
        "{text}"
    );
    assert!(metrics.health().is_err());
}

#[test]
fn gap_publishes_nothing_and_deletes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(5);
    let missing = h.sealed(5);
    h.sealed(5);
    fs::remove_file(missing).unwrap();
    let before = tree(d.path());
    let err = pass(&Config::new(d.path())).unwrap_err();
    assert!(
        matches!(err, PassError::Replay(ReplayError::Gap { expected: 6, .. })),
        "{err}"
    );
    assert_eq!(tree(d.path()), before);
}

#[test]
fn damaged_snapshot_publishes_nothing_and_deletes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(5);
    let config = Config::new(d.path());
    assert_eq!(pass(&config).unwrap().published, Some(5));
    let snap = d.path().join(snap_name(5));
    let mut bytes = fs::read(&snap).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 0x55;
    fs::write(&snap, bytes).unwrap();
    h.sealed(5);
    let before = tree(d.path());
    let err = pass(&config).unwrap_err();
    assert!(matches!(err, PassError::SnapshotDamaged(_)), "{err}");
    assert_eq!(tree(d.path()), before);

    // Below the threshold the newest snapshot is still verified before any
    // log it covers is archived.
    let d2 = tempfile::tempdir().unwrap();
    let mut h2 = History::new(d2.path());
    h2.sealed(5);
    write_snapshot(d2.path(), 5, &h2.states[5]).unwrap();
    let snap = d2.path().join(snap_name(5));
    let len = fs::metadata(&snap).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let before = tree(d2.path());
    let err = pass(&Config::new(d2.path())).unwrap_err();
    assert!(matches!(err, PassError::SnapshotDamaged(_)), "{err}");
    assert_eq!(tree(d2.path()), before);
}

#[test]
fn restart_from_an_existing_snapshot_replays_only_later_logs() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(5);
    write_snapshot(d.path(), 5, &h.states[5]).unwrap();
    h.sealed(5);
    let r = pass(&Config::new(d.path())).unwrap();
    assert_eq!(r.published, Some(10));
    let (_, db) = read_snapshot(&d.path().join(snap_name(10))).unwrap();
    assert_same_state(&db, &h.states[10], "snapshot 10");
}

#[test]
fn stale_temp_files_are_removed() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(2);
    fs::create_dir_all(d.path().join("archived/logs")).unwrap();
    fs::write(d.path().join("archived/logs/x.log.tmp"), b"partial").unwrap();
    fs::write(
        d.path().join(format!("{}.123.tmp", snap_name(9))),
        b"partial",
    )
    .unwrap();
    pass(&Config::new(d.path())).unwrap();
    assert_eq!(names(&d.path().join("archived/logs")), vec![log_name(1, 2)]);
    assert!(!names(d.path()).iter().any(|n| n.ends_with(".tmp")));
}

#[test]
fn retention_deletes_old_history_but_keeps_the_oldest_restore_point() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    let mut config = Config::new(d.path());
    config.keep_snapshots = 1;
    for _ in 0..4 {
        h.sealed(20);
        pass(&config).unwrap();
    }
    // Archive: snapshots 20, 40, 60 and logs 1-20 .. 61-80.
    assert_eq!(names(&d.path().join("archived/snapshots")).len(), 3);
    assert_eq!(names(&d.path().join("archived/logs")).len(), 4);
    let snaps_dir = d.path().join("archived/snapshots");
    let logs_dir = d.path().join("archived/logs");
    let size = |p: std::path::PathBuf| fs::metadata(p).unwrap().len();
    // Room for exactly what a cut at snapshot 40 keeps.
    config.retain_bytes = Some(
        size(snaps_dir.join(snap_name(40)))
            + size(snaps_dir.join(snap_name(60)))
            + size(logs_dir.join(log_name(41, 60)))
            + size(logs_dir.join(log_name(61, 80))),
    );
    let metrics = Metrics::new();
    let r = run_pass(
        &config,
        &metrics,
        &AtomicBool::new(false),
        &mut PassState::default(),
    )
    .unwrap();
    // Cut at snapshot 40: snapshot 20 and logs 1-20, 21-40 go.
    assert_eq!(r.retention_deleted, 3, "{r}");
    assert_eq!(names(&snaps_dir), vec![snap_name(40), snap_name(60)]);
    assert_eq!(
        names(&d.path().join("archived/logs")),
        vec![log_name(41, 60), log_name(61, 80)]
    );
    assert!(metrics
        .encode()
        .contains("tiered_snapshotter_retention_deleted_files_total 3"));

    // A window of days longer than the history deletes nothing more.
    config.retain_bytes = None;
    config.retain_days = Some(1);
    assert_eq!(pass(&config).unwrap().retention_deleted, 0);
    // A zero-day window keeps only what the newest snapshot needs.
    config.retain_days = Some(0);
    assert_eq!(pass(&config).unwrap().retention_deleted, 4);
    assert!(names(&snaps_dir).is_empty());
    assert!(names(&d.path().join("archived/logs")).is_empty());
    assert!(d.path().join(snap_name(80)).exists());
}

#[test]
fn a_stop_request_abandons_the_pass_at_a_safe_point() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(5);
    let before = tree(d.path());
    let r = run_pass(
        &Config::new(d.path()),
        &Metrics::new(),
        &AtomicBool::new(true),
        &mut PassState::default(),
    )
    .unwrap();
    assert!(r.interrupted);
    assert_eq!(r.published, None);
    assert_eq!(tree(d.path()), before);
}

#[test]
fn a_log_whose_records_disagree_with_its_name_is_not_archived() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    // Records 1-8 under a name that promises 1-10 (records 9 and 10 lost),
    // and a snapshot that covers 10: the log is covered, but the archive
    // must not take a copy that claims history it does not hold.
    let short = h.sealed(8);
    let misnamed = d.path().join(log_name(1, 10));
    fs::rename(&short, &misnamed).unwrap();
    write_snapshot(d.path(), 10, &h.states[8]).unwrap();
    let err = pass(&Config::new(d.path())).unwrap_err();
    assert!(matches!(err, PassError::Archive(_)), "{err}");
    assert!(err.to_string().contains("its name says"), "{err}");
    assert!(misnamed.exists(), "the source is kept");
}

/// A pass through the fault-injecting file seam: a syscall failing at any
/// step stops the pass with its errno and leaves every file whole; the next
/// pass finishes the work. The open segment is never opened.
#[test]
fn a_failing_syscall_stops_the_pass_and_the_next_pass_finishes() {
    use tiered_snapshotter::pass::run_pass_on;
    use tiered_sys::{real, Fault, FaultFs, Op, Rule};
    let steps = [
        (Op::Create, ".tmp", libc::ENOSPC),
        (Op::Fsync, ".tmp", libc::EIO),
        (Op::Rename, ".snap", libc::EIO),
        (Op::HardLink, ".log", libc::EIO),
        (Op::FsyncDir, "logs", libc::EIO),
        (Op::Unlink, ".log", libc::EIO),
    ];
    for (op, suffix, errno) in steps {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::new(d.path());
        h.sealed(10);
        h.sealed(5);
        let open = h.open(3);
        let config = Config::new(d.path());
        let fault = FaultFs::new(real());
        fault.add_rule(Rule {
            op,
            name_suffix: Some(suffix.into()),
            skip: 0,
            times: 1,
            fault: Fault::Errno(errno),
        });
        let fs = fault.handle();
        let run = || {
            run_pass_on(
                &fs,
                &config,
                &Metrics::new(),
                &AtomicBool::new(false),
                &mut PassState::default(),
            )
        };
        let err = run().unwrap_err();
        let errno_of = |e: &PassError| match e {
            PassError::Publish(tiered_engine::snapshot::SnapshotError::Io { source, .. }) => {
                source.raw_os_error()
            }
            PassError::Archive(tiered_snapshotter::mover::MoveError::Sys(e)) => {
                e.source.raw_os_error()
            }
            PassError::Sys(e) => e.source.raw_os_error(),
            _ => None,
        };
        assert_eq!(errno_of(&err), Some(errno), "{op:?}: {err}");
        assert_eq!(fault.pending_rules(), 0, "{op:?}");
        // both logs are whole somewhere
        for (first, last) in [(1, 10), (11, 15)] {
            let top = d.path().join(log_name(first, last));
            let arch = d.path().join("archived/logs").join(log_name(first, last));
            assert!(top.exists() || arch.exists(), "{op:?}: log {first} lost");
        }
        let r = run().unwrap();
        assert_eq!(r.newest_snapshot, Some(15), "{op:?}");
        assert_eq!(
            names(&d.path().join("archived/logs")),
            vec![log_name(1, 10), log_name(11, 15)],
            "{op:?}"
        );
        let (_, db) = read_snapshot(&d.path().join(snap_name(15))).unwrap();
        assert_same_state(&db, &h.states[15], "after the retry");
        assert!(
            fault.take_calls().iter().all(|(_, p)| p != &open),
            "{op:?}: the open segment was touched"
        );
    }
}

/// Sets go through a pass like any value: the engine's set effects (SPOP
/// as the members it removed, the STORE commands as their operation) are
/// replayed into a version 3 snapshot holding the sets.
#[test]
fn set_effects_are_replayed_into_the_snapshot() {
    use tiered_engine::cmd::{sets::SetOp, Effect, SAdd, SPop, SStore};
    use tiered_engine::db::{Members, Value};
    use tiered_engine::record::Record;
    use tiered_engine::segment::SegmentWriter;

    let d = tempfile::tempdir().unwrap();
    let b = |s: &str| s.as_bytes().to_vec();
    let payloads = [
        SAdd {
            key: b("s"),
            members: vec![b("1"), b("2"), b("a"), b("b")],
        }
        .encode(),
        SAdd {
            key: b("t"),
            members: vec![b("2"), b("b"), b("z")],
        }
        .encode(),
        SPop {
            key: b("s"),
            count: Some(1),
            members: vec![b("a")],
            every: false,
        }
        .encode(),
        SStore {
            op: SetOp::Inter,
            destination: b("i"),
            keys: vec![b("s"), b("t")],
        }
        .encode(),
    ];
    let mut w = SegmentWriter::create(d.path(), 1, 0).unwrap();
    let mut buf = tiered_engine::batch::BatchEncoder::new();
    let mut want = tiered_engine::db::Db::new();
    for (i, payload) in payloads.into_iter().enumerate() {
        let rec = Record {
            seq: i as u64 + 1,
            timestamp_ms: T0_MS + i as u64,
            payload,
        };
        want.apply_logged(&rec).unwrap();
        buf.push(rec.timestamp_ms, &rec.payload);
    }
    w.append(&mut buf).unwrap();
    w.sync().unwrap();
    w.seal().unwrap();

    let r = pass(&Config::new(d.path())).unwrap();
    assert_eq!(r.published, Some(4));
    let (_, db) = read_snapshot(&d.path().join(snap_name(4))).unwrap();
    assert_same_state(&db, &want, "snapshot 4");
    let set = |v: &[&str]| Some(Value::Set(v.iter().map(|s| b(s)).collect::<Members>()));
    assert_eq!(db.get(b"s", 0).cloned(), set(&["1", "2", "b"]));
    assert_eq!(db.get(b"i", 0).cloned(), set(&["2", "b"]));
}
