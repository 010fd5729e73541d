//! The archive on a different file system (a tmpfs mounted over `archived/`,
//! as root): moves really cross devices (EXDEV), and a full archive (ENOSPC)
//! leaves every file whole where it was.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::AtomicBool;

use common::*;
use tiered_snapshotter::config::Config;
use tiered_snapshotter::metrics::Metrics;
use tiered_snapshotter::mover::{move_file, move_file_interruptible, MoveError, MoveOutcome};
use tiered_snapshotter::pass::{run_pass, PassError, PassState};

#[test]
fn pass_moves_across_file_systems() {
    let d = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(&d.path().join("archived"), "16m");
    assert_ne!(
        fs::metadata(d.path()).unwrap().dev(),
        fs::metadata(d.path().join("archived")).unwrap().dev(),
        "archived/ should be another file system"
    );
    // Hard links across devices fail with EXDEV: the mover must copy.
    let mut h = History::new(d.path());
    let log = h.sealed(50);
    let mtime = fs::metadata(&log).unwrap().modified().unwrap();
    let original = fs::read(&log).unwrap();
    let r = run_pass(
        &Config::new(d.path()),
        &Metrics::new(),
        &AtomicBool::new(false),
        &mut PassState::default(),
    )
    .unwrap();
    assert_eq!((r.published, r.archived_logs), (Some(50), 1));
    let archived = d.path().join("archived/logs").join(log_name(1, 50));
    assert_eq!(fs::read(&archived).unwrap(), original);
    assert_eq!(fs::metadata(&archived).unwrap().modified().unwrap(), mtime);
    assert!(!log.exists());
    assert!(names(&d.path().join("archived/logs"))
        .iter()
        .all(|n| !n.ends_with(".tmp")));
}

#[test]
fn full_archive_is_reported_by_errno_and_keeps_the_source() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    // ~100 KB of log, a 64 KB archive.
    let log = h.sealed(3000);
    assert!(fs::metadata(&log).unwrap().len() > 64 * 1024);
    let _tmpfs = Tmpfs::mount(&d.path().join("archived"), "64k");
    let original = fs::read(&log).unwrap();
    fs::create_dir_all(d.path().join("archived/logs")).unwrap();
    let err = move_file(&log, &d.path().join("archived/logs"), &|_| Ok(())).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert_eq!(fs::read(&log).unwrap(), original);
    assert!(
        names(&d.path().join("archived/logs")).is_empty(),
        "partial copy left behind"
    );

    // Through a pass: the snapshot is published (primary has room), the
    // archive step fails and is counted, the log stays.
    let metrics = Metrics::new();
    let err = run_pass(
        &Config::new(d.path()),
        &metrics,
        &AtomicBool::new(false),
        &mut PassState::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PassError::Archive(e) if e.is_no_space()),
        "{err}"
    );
    assert_eq!(fs::read(&log).unwrap(), original);
    assert!(d.path().join(snap_name(3000)).exists());
    assert!(metrics
        .encode()
        .contains("tiered_snapshotter_errors_total{step=\"archive\"} 1"));
}

#[test]
fn differing_destination_across_devices_is_never_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(&d.path().join("archived"), "16m");
    let mut h = History::new(d.path());
    let log = h.sealed(5);
    let dst_dir = d.path().join("archived/logs");
    fs::create_dir_all(&dst_dir).unwrap();
    fs::write(dst_dir.join(log_name(1, 5)), b"something else").unwrap();
    let err = move_file(&log, &dst_dir, &|_| Ok(())).unwrap_err();
    assert!(matches!(err, MoveError::DestinationDiffers { .. }), "{err}");
    assert_eq!(
        fs::read(dst_dir.join(log_name(1, 5))).unwrap(),
        b"something else"
    );
    assert!(log.exists());
    // An identical one counts as done.
    fs::write(dst_dir.join(log_name(1, 5)), fs::read(&log).unwrap()).unwrap();
    let out = move_file(&log, &dst_dir, &|_| Ok(())).unwrap();
    assert!(
        matches!(out, MoveOutcome::AlreadyArchived { .. }),
        "{out:?}"
    );
    assert!(!log.exists());
}

#[test]
fn a_shutdown_abandons_a_copy_and_keeps_the_source() {
    let d = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(&d.path().join("archived"), "16m");
    let mut h = History::new(d.path());
    let log = h.sealed(5);
    let original = fs::read(&log).unwrap();
    let dst_dir = d.path().join("archived/logs");
    fs::create_dir_all(&dst_dir).unwrap();
    let err =
        move_file_interruptible(&log, &dst_dir, &|_| Ok(()), &AtomicBool::new(true)).unwrap_err();
    assert!(matches!(err, MoveError::Interrupted(_)), "{err}");
    assert_eq!(fs::read(&log).unwrap(), original);
    assert!(names(&dst_dir).is_empty());
}
