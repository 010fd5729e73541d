//! Point-in-time restore, checked key by key against the state after every
//! command (a model built by replaying the same records).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use common::*;
use tiered_engine::snapshot::read_snapshot;
use tiered_snapshotter::config::{Config, RestoreConfig, RestoreTarget};
use tiered_snapshotter::metrics::Metrics;
use tiered_snapshotter::pass::{run_pass, PassState};
use tiered_snapshotter::restore::{restore, RestoreError};

fn pass(dir: &Path) {
    let mut c = Config::new(dir);
    c.keep_snapshots = 1;
    run_pass(
        &c,
        &Metrics::new(),
        &AtomicBool::new(false),
        &mut PassState::default(),
    )
    .unwrap();
}

/// Snapshots 10 and 30 (10 archived), logs 1-30 archived, 31-37 sealed,
/// 38-42 open.
fn history(dir: &Path) -> History {
    let mut h = History::new(dir);
    h.sealed(10);
    pass(dir);
    h.sealed(10);
    h.sealed(10);
    pass(dir);
    h.sealed(7);
    h.open(5);
    assert!(dir.join("archived/snapshots").join(snap_name(10)).exists());
    assert!(dir.join("archived/logs").join(log_name(1, 10)).exists());
    h
}

fn cfg(from: &Path, target: RestoreTarget, into: &Path) -> RestoreConfig {
    RestoreConfig {
        from: from.to_path_buf(),
        archive_dir_name: "archived".into(),
        target,
        into: into.to_path_buf(),
    }
}

fn check(into: &Path, seq: u64, h: &History) {
    assert_eq!(names(into), vec![snap_name(seq)]);
    let (meta, db) = read_snapshot(&into.join(snap_name(seq))).unwrap();
    assert_eq!(meta.last_seq, seq);
    assert_same_state(&db, &h.states[seq as usize], &format!("restore to {seq}"));
}

#[test]
fn restore_to_every_kind_of_sequence_number() {
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    let out = tempfile::tempdir().unwrap();
    for seq in [0, 1, 5, 10, 11, 17, 29, 30, 31, 37, 38, 40, 42] {
        let into = out.path().join(format!("r{seq}"));
        let r = restore(&cfg(d.path(), RestoreTarget::Seq(seq), &into)).unwrap();
        assert_eq!(r.last_seq, seq);
        check(&into, seq, &h);
    }
    // The source is untouched by a restore.
    assert!(d.path().join(snap_name(30)).exists());
}

#[test]
fn restore_to_a_time() {
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    let out = tempfile::tempdir().unwrap();
    // seq n was logged at T0 + (n - 1) s.
    for (ts, seq) in [
        (T0_MS - 1, 0),
        (T0_MS, 1),
        (T0_MS + 16_500, 17),
        (T0_MS + 29_000, 30),
        (T0_MS + 39_999, 40),
        (T0_MS + 10_000_000, 42),
    ] {
        assert!(ts < T0_MS || h.timestamps[seq as usize] <= ts);
        let into = out.path().join(format!("t{ts}"));
        let r = restore(&cfg(d.path(), RestoreTarget::TimeMs(ts), &into)).unwrap();
        assert_eq!(r.last_seq, seq, "time {ts}");
        check(&into, seq, &h);
    }
}

#[test]
fn a_damaged_snapshot_is_skipped_for_an_older_one() {
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    let snap = d.path().join(snap_name(30));
    let mut b = fs::read(&snap).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    fs::write(&snap, b).unwrap();
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("r");
    let r = restore(&cfg(d.path(), RestoreTarget::Seq(35), &into)).unwrap();
    assert_eq!(r.base_seq, Some(10));
    check(&into, 35, &h);
}

#[test]
fn bad_requests_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    history(d.path());
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("r");
    let err = restore(&cfg(d.path(), RestoreTarget::Seq(43), &into)).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::BeyondHistory {
                target: 43,
                last: 42,
                ..
            }
        ),
        "{err}"
    );
    assert!(!into.exists());

    fs::create_dir(&into).unwrap();
    fs::write(into.join("x"), b"").unwrap();
    let err = restore(&cfg(d.path(), RestoreTarget::Seq(3), &into)).unwrap_err();
    assert!(matches!(err, RestoreError::IntoNotEmpty(_)), "{err}");
    assert_eq!(names(&into), vec!["x".to_string()]);

    let err = restore(&cfg(
        &d.path().join("nope"),
        RestoreTarget::Seq(3),
        &out.path().join("s"),
    ))
    .unwrap_err();
    assert!(matches!(err, RestoreError::FromNotADirectory(_)), "{err}");

    // History before the oldest kept snapshot is gone: a clear error.
    fs::remove_file(d.path().join("archived/logs").join(log_name(1, 10))).unwrap();
    fs::remove_file(d.path().join("archived/snapshots").join(snap_name(10))).unwrap();
    let err = restore(&cfg(d.path(), RestoreTarget::Seq(5), &out.path().join("t"))).unwrap_err();
    assert!(matches!(err, RestoreError::NoBase { target: 5 }), "{err}");
}

#[test]
fn restore_through_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("cli");
    let o = Command::new(env!("CARGO_BIN_EXE_tiered-snapshotter"))
        .args(["restore", "--from"])
        .arg(d.path())
        .args(["--to-time", "2023-11-14T22:13:33Z", "--into"])
        .arg(&into)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 2023-11-14T22:13:33Z = T0 + 13 s: seq 14.
    check(&into, 14, &h);
    assert!(String::from_utf8_lossy(&o.stdout).contains("seq 14"));

    let o = Command::new(env!("CARGO_BIN_EXE_tiered-snapshotter"))
        .args(["restore", "--from"])
        .arg(d.path())
        .args(["--to-seq", "3", "--into"])
        .arg(&into)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an empty directory"));
}

#[test]
fn a_time_before_the_oldest_kept_log_is_an_error_not_a_later_state() {
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    // Retention with its cut at snapshot 10 deletes the log 1-10 and keeps
    // the snapshot: the state at seq 6's time is no longer known.
    fs::remove_file(d.path().join("archived/logs").join(log_name(1, 10))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("r");
    let err = restore(&cfg(d.path(), RestoreTarget::TimeMs(T0_MS + 5_000), &into)).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::BeforeHistory {
                first_seq: 11,
                first_time_ms,
                ..
            } if first_time_ms == T0_MS + 10_000
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--to-seq 10"), "{err}");
    assert!(!into.exists());
    // From seq 11's time on, the history answers.
    let r = restore(&cfg(d.path(), RestoreTarget::TimeMs(T0_MS + 12_500), &into)).unwrap();
    assert_eq!(r.last_seq, 13);
    check(&into, 13, &h);
}

#[test]
fn latest_restores_every_command_and_an_empty_history_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("latest");
    let r = restore(&cfg(d.path(), RestoreTarget::Latest, &into)).unwrap();
    assert_eq!(r.last_seq, 42);
    assert_eq!(r.base_seq, Some(30));
    check(&into, 42, &h);

    let empty = tempfile::tempdir().unwrap();
    let into = out.path().join("nothing");
    let err = restore(&cfg(empty.path(), RestoreTarget::Latest, &into)).unwrap_err();
    assert!(matches!(err, RestoreError::EmptyHistory(_)), "{err}");
    assert!(!into.exists());
}

/// The root of a new tiered volume holds an empty `archived/` (the archive
/// tier's mount point): a restore goes beside it, and only there.
#[test]
fn restore_into_a_new_volume_root_beside_its_empty_archive_dir() {
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    let out = tempfile::tempdir().unwrap();

    let root = out.path().join("vol");
    fs::create_dir_all(root.join("archived")).unwrap();
    let r = restore(&cfg(d.path(), RestoreTarget::Seq(20), &root)).unwrap();
    assert_eq!(r.last_seq, 20);
    assert_eq!(names(&root), vec!["archived".to_string(), snap_name(20)]);
    assert!(names(&root.join("archived")).is_empty());
    let (meta, db) = read_snapshot(&root.join(snap_name(20))).unwrap();
    assert_eq!(meta.last_seq, 20);
    assert_same_state(&db, &h.states[20], "restore beside archived/");

    // A new tiered volume's archive dir holds the plugin's identity file:
    // still empty of history, so a restore goes beside it.
    let tagged = out.path().join("tagged");
    fs::create_dir_all(tagged.join("archived")).unwrap();
    fs::write(tagged.join("archived/.tiered-volume"), b"uuid\n").unwrap();
    let r = restore(&cfg(d.path(), RestoreTarget::Seq(20), &tagged)).unwrap();
    assert_eq!(r.last_seq, 20);
    assert_eq!(
        names(&tagged.join("archived")),
        vec![".tiered-volume".to_string()]
    );

    // ... but a second restore into it is refused: it has data now.
    let err = restore(&cfg(d.path(), RestoreTarget::Seq(5), &root)).unwrap_err();
    assert!(matches!(err, RestoreError::IntoNotEmpty(_)), "{err}");

    // An archive dir that holds anything, is a file, is a symlink to an
    // empty dir, or has another name: refused, and left as it was.
    let full = out.path().join("full");
    fs::create_dir_all(full.join("archived/logs")).unwrap();
    let file = out.path().join("file");
    fs::create_dir(&file).unwrap();
    fs::write(file.join("archived"), b"").unwrap();
    let link = out.path().join("link");
    fs::create_dir_all(out.path().join("elsewhere")).unwrap();
    fs::create_dir(&link).unwrap();
    std::os::unix::fs::symlink(out.path().join("elsewhere"), link.join("archived")).unwrap();
    let other = out.path().join("other");
    fs::create_dir_all(other.join("archive")).unwrap();
    for into in [&full, &file, &link, &other] {
        let before = names(into);
        let err = restore(&cfg(d.path(), RestoreTarget::Seq(5), into)).unwrap_err();
        assert!(
            matches!(err, RestoreError::IntoNotEmpty(_)),
            "{}: {err}",
            into.display()
        );
        assert_eq!(names(into), before);
    }
    assert!(names(&full.join("archived")) == vec!["logs".to_string()]);
}

/// A restore through the fault-injecting file seam: a full disk while the
/// snapshot is written into NEWDIR leaves no snapshot there (and no temp),
/// a read error in a needed log stops it with the errno; with the faults
/// gone it succeeds, reading the source through the seam only.
#[test]
fn seam_failures_stop_a_restore_cleanly() {
    use tiered_snapshotter::restore::restore_on;
    use tiered_sys::{real, Fault, FaultFs, Op, Rule};
    let d = tempfile::tempdir().unwrap();
    let h = history(d.path());
    let into = tempfile::tempdir().unwrap();
    let into = into.path().join("new");
    let c = cfg(d.path(), RestoreTarget::Seq(35), &into);
    let fault = FaultFs::new(real());
    let fs = fault.handle();

    fault.add_rule(Rule {
        op: Op::Write,
        name_suffix: Some(".tmp".into()),
        skip: 0,
        times: 1,
        fault: Fault::Errno(libc::ENOSPC),
    });
    let e = restore_on(&fs, &c).unwrap_err();
    assert!(
        matches!(&e, RestoreError::Write(tiered_engine::snapshot::SnapshotError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOSPC)),
        "{e}"
    );
    assert!(names(&into).is_empty(), "{:?}", names(&into));

    fault.add_rule(Rule {
        op: Op::Read,
        name_suffix: Some(log_name(31, 37).into()),
        skip: 0,
        times: 1,
        fault: Fault::Errno(libc::EIO),
    });
    let e = restore_on(&fs, &c).unwrap_err();
    assert!(matches!(&e, RestoreError::Replay { target: 35, .. }), "{e}");
    assert!(names(&into).is_empty());

    fault.take_calls();
    restore_on(&fs, &c).unwrap();
    check(&into, 35, &h);
    assert!(fault
        .take_calls()
        .iter()
        .any(|(op, p)| *op == Op::Open && p.ends_with(log_name(31, 37))));
}
