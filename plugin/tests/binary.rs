//! The `tiered-plugin` binary: configured by environment variables alone,
//! stops on SIGTERM removing its socket, and refuses bad flags without
//! creating anything.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Plugin;
use serde_json::json;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tiered-plugin"))
}

#[tokio::test]
async fn runs_from_env_vars_and_stops_on_sigterm() {
    let p = Plugin::new();
    let mut child = bin()
        .env("TIERED_SOCKET", &p.socket)
        .env("TIERED_PRIMARY_ROOT", &p.primary)
        .env("TIERED_ARCHIVE_ROOT", &p.archive)
        .env("TIERED_MOUNT_ROOT", &p.mount_root)
        .env("TIERED_ARCHIVE_DIR_NAME", "cold")
        .env("TIERED_LOG_LEVEL", "debug")
        .env("TIERED_METRICS_LISTEN", "")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while tokio::net::UnixStream::connect(&p.socket).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "socket never answered"
        );
        assert!(child.try_wait().unwrap().is_none(), "plugin exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.ok("/VolumeDriver.Create", json!({"Name": "v"})).await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "v", "ID": "a"}))
        .await;
    std::fs::write(p.mountpoint("v").join("cold/f"), b"x").unwrap();
    assert_eq!(std::fs::read(p.archive.join("v/f")).unwrap(), b"x");
    p.ok("/VolumeDriver.Unmount", json!({"Name": "v", "ID": "a"}))
        .await;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(!p.socket.exists(), "socket removed");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("request"), "debug request log missing:\n{log}");
}

#[test]
fn bad_flags_are_refused_and_create_nothing() {
    let p = Plugin::new();
    let base = |extra: &[&str]| {
        let mut c = bin();
        c.arg("--socket")
            .arg(&p.socket)
            .arg("--primary-root")
            .arg(&p.primary)
            .arg("--archive-root")
            .arg(&p.archive)
            .arg("--mount-root")
            .arg(&p.mount_root)
            .args(extra)
            .env_remove("TIERED_METRICS_LISTEN")
            .env_remove("TIERED_LOG_LEVEL");
        c.output().unwrap()
    };
    for (extra, needle) in [
        (
            &["--metrics-listen", "not-an-address"][..],
            "invalid --metrics-listen",
        ),
        (&["--log-level", "info[["][..], "invalid --log-level"),
        (&["--no-such-flag"][..], "unexpected argument"),
        (&["--archive-dir-name", "a/b"][..], "one path component"),
    ] {
        let out = base(extra);
        assert!(!out.status.success(), "{extra:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!p.socket.exists(), "{extra:?} created the socket");
    }
    // Nothing was created: no socket dir, no tier roots.
    let left: Vec<_> = std::fs::read_dir(p.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
