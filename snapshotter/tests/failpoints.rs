//! Crashes injected at every step of a move and of a pass (failpoints, feature
//! `failpoints`): the file is always whole in at least one place and the next
//! run finishes the job with nothing lost or duplicated.
#![cfg(feature = "failpoints")]

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use common::*;
use fail::FailScenario;
use tiered_engine::snapshot::read_snapshot;
use tiered_snapshotter::config::Config;
use tiered_snapshotter::metrics::Metrics;
use tiered_snapshotter::mover::{move_file, MoveError};
use tiered_snapshotter::pass::{run_pass, PassError, PassState};

const COPY_STEPS: &[&str] = &[
    "mover::after_copy",
    "mover::after_rename",
    "mover::after_dst_fsync",
    "mover::before_unlink",
    "mover::after_unlink",
];

fn no_temp(dir: &Path) {
    assert!(
        names(dir).iter().all(|n| !n.ends_with(".tmp")),
        "temp left in {}: {:?}",
        dir.display(),
        names(dir)
    );
}

#[test]
fn move_crashing_at_each_step_is_finished_by_the_next_run() {
    let scenario = FailScenario::setup();
    for step in COPY_STEPS {
        let d = tempfile::tempdir().unwrap();
        let _tmpfs = Tmpfs::mount(&d.path().join("archived"), "16m");
        let mut h = History::new(d.path());
        let log = h.sealed(20);
        let original = fs::read(&log).unwrap();
        let dst_dir = d.path().join("archived/logs");
        fs::create_dir_all(&dst_dir).unwrap();
        let dst = dst_dir.join(log.file_name().unwrap());

        fail::cfg(*step, "return").unwrap();
        let err = move_file(&log, &dst_dir, &|_| Ok(())).unwrap_err();
        fail::remove(*step);
        assert!(
            matches!(err, MoveError::Injected(s) if s == *step),
            "{step}: {err}"
        );
        let whole_src = fs::read(&log).ok() == Some(original.clone());
        let whole_dst = fs::read(&dst).ok() == Some(original.clone());
        assert!(whole_src || whole_dst, "{step}: file whole nowhere");

        move_file(&log, &dst_dir, &|_| Ok(())).unwrap();
        assert!(!log.exists(), "{step}: source left");
        assert_eq!(fs::read(&dst).unwrap(), original, "{step}");
        no_temp(&dst_dir);
    }
    // Same file system: the hard-link path.
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    let log = h.sealed(3);
    let original = fs::read(&log).unwrap();
    let dst_dir = d.path().join("archived/logs");
    fs::create_dir_all(&dst_dir).unwrap();
    fail::cfg("mover::after_link", "return").unwrap();
    assert!(move_file(&log, &dst_dir, &|_| Ok(())).is_err());
    fail::remove("mover::after_link");
    move_file(&log, &dst_dir, &|_| Ok(())).unwrap();
    assert!(!log.exists());
    assert_eq!(
        fs::read(dst_dir.join(log.file_name().unwrap())).unwrap(),
        original
    );
    scenario.teardown();
}

/// Every log written is byte-identical wherever it is, and is in exactly one
/// place (or, right after a crash mid-move, possibly in both).
fn assert_logs(dir: &Path, written: &[(String, Vec<u8>)], both_ok: bool) {
    for (name, bytes) in written {
        let top = dir.join(name);
        let arch = dir.join("archived/logs").join(name);
        for p in [&top, &arch] {
            if p.exists() {
                assert_eq!(&fs::read(p).unwrap(), bytes, "{}", p.display());
            }
        }
        match (top.exists(), arch.exists()) {
            (true, false) | (false, true) => {}
            (true, true) if both_ok => {}
            (a, b) => panic!("{name}: on primary {a}, in archive {b}"),
        }
    }
}

#[test]
fn pass_crashing_at_each_step_is_finished_by_the_next_pass() {
    let scenario = FailScenario::setup();
    let steps = [
        "pass::before_publish",
        "pass::after_publish",
        "pass::between_moves",
        "mover::after_copy",
        "mover::after_rename",
        "mover::after_dst_fsync",
        "mover::before_unlink",
        "mover::after_unlink",
    ];
    for step in steps {
        let d = tempfile::tempdir().unwrap();
        let _tmpfs = Tmpfs::mount(&d.path().join("archived"), "16m");
        let mut h = History::new(d.path());
        let mut config = Config::new(d.path());
        config.keep_snapshots = 1;
        // A first snapshot, so that the crashing pass also archives one.
        h.sealed(10);
        run_pass(
            &config,
            &Metrics::new(),
            &AtomicBool::new(false),
            &mut PassState::default(),
        )
        .unwrap();
        h.sealed(10);
        h.sealed(10);
        let mut written = Vec::new();
        for (first, last) in [(1, 10), (11, 20), (21, 30)] {
            let name = log_name(first, last);
            let p = [
                d.path().join(&name),
                d.path().join("archived/logs").join(&name),
            ]
            .into_iter()
            .find(|p| p.exists())
            .unwrap();
            written.push((name, fs::read(p).unwrap()));
        }

        fail::cfg(step, "return").unwrap();
        let err = run_pass(
            &config,
            &Metrics::new(),
            &AtomicBool::new(false),
            &mut PassState::default(),
        )
        .unwrap_err();
        fail::remove(step);
        assert!(
            matches!(&err, PassError::Injected(s) if *s == step)
                || matches!(&err, PassError::Archive(MoveError::Injected(s)) if *s == step),
            "{step}: {err}"
        );
        assert_logs(d.path(), &written, true);

        // The next pass completes the job.
        let r = run_pass(
            &config,
            &Metrics::new(),
            &AtomicBool::new(false),
            &mut PassState::default(),
        )
        .unwrap();
        assert_eq!(r.newest_snapshot, Some(30), "{step}");
        assert_logs(d.path(), &written, false);
        for (name, _) in &written {
            assert!(
                d.path().join("archived/logs").join(name).exists(),
                "{step}: {name} not archived"
            );
        }
        let (_, db) = read_snapshot(&d.path().join(snap_name(30))).unwrap();
        assert_same_state(&db, &h.states[30], step);
        assert_eq!(
            names(&d.path().join("archived/snapshots")),
            vec![snap_name(10)],
            "{step}"
        );
        assert!(
            !d.path().join(snap_name(10)).exists(),
            "{step}: snapshot in both places"
        );
        no_temp(&d.path().join("archived/logs"));
        no_temp(&d.path().join("archived/snapshots"));
        no_temp(d.path());
    }
    scenario.teardown();
}
