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
    // ~100 KB of log (compact records: ~14 bytes each), a 64 KB archive.
    let log = h.sealed(7000);
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
    assert!(d.path().join(snap_name(7000)).exists());
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

#[test]
fn a_full_archive_still_runs_retention_so_a_later_pass_fits() {
    let d = tempfile::tempdir().unwrap();
    let archive = d.path().join("archived");
    let _tmpfs = Tmpfs::mount(&archive, "1m");
    let mut h = History::new(d.path());
    let mut config = Config::new(d.path());
    config.keep_snapshots = 1;
    config.retain_days = Some(1);
    let pass = |c: &Config| {
        run_pass(
            c,
            &Metrics::new(),
            &AtomicBool::new(false),
            &mut PassState::default(),
        )
    };
    // Old history in the archive: snapshot 3000 and logs 1-3000, 3001-6000;
    // snapshot 6000 on the primary tier. Both snapshots ten days old.
    h.sealed(3000);
    pass(&config).unwrap();
    h.sealed(3000);
    pass(&config).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
    let old_snap = archive.join("snapshots").join(snap_name(3000));
    for p in [old_snap.clone(), d.path().join(snap_name(6000))] {
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(old))
            .unwrap();
    }
    // A new log that does not fit until the old history is gone.
    let big = h.sealed(6000);
    let big_len = fs::metadata(&big).unwrap().len();
    let free = nix::sys::statvfs::statvfs(&archive).unwrap();
    let free = free.blocks_available() as u64 * free.fragment_size() as u64;
    assert!(free > big_len / 2, "archive too small for the test");
    fs::write(
        archive.join("filler"),
        vec![1u8; (free - big_len / 2) as usize],
    )
    .unwrap();

    let err = pass(&config).unwrap_err();
    assert!(
        matches!(&err, PassError::Archive(e) if e.is_no_space()),
        "{err}"
    );
    assert!(big.exists(), "the source stays until it is archived");
    assert!(!old_snap.exists(), "retention ran despite the full archive");
    assert!(!archive.join("logs").join(log_name(1, 3000)).exists());

    // The next pass fits.
    let r = pass(&config).unwrap();
    assert_eq!(r.archived_logs, 1, "{r}");
    assert!(!big.exists());
    assert!(archive.join("logs").join(log_name(6001, 12000)).exists());
    assert!(d.path().join(snap_name(12000)).exists());
}
