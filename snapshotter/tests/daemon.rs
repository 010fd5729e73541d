//! The daemon: inotify wakes it when a log is completed, /metrics moves as it
//! works (parsed with a real Prometheus text parser), one instance per
//! volume, a clean stop on shutdown and on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tiered_snapshotter::config::Config;
use tiered_snapshotter::daemon::{self, RunError};
use tiered_snapshotter::http::{check_health, HealthError};
use tiered_snapshotter::lock::{InstanceLock, LockError};
use tiered_snapshotter::metrics::Metrics;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// GET `path`; returns (status, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Scrapes /metrics and parses it; returns the value of `name` with the
/// given label (or without labels).
fn metric(addr: SocketAddr, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let (status, body) = get(addr, "/metrics")?;
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        })
}

/// `tiered-snapshotter health --addr ADDR`, the image's health check.
fn health_command(addr: SocketAddr) -> std::process::ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_tiered-snapshotter"))
        .args(["health", "--timeout-secs", "2", "--addr"])
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn health_check_of_nothing_listening_fails() {
    // A free port can be taken by another test's server between the probe
    // and the check (seen once: a reset instead of a refusal); such a
    // round is tried again on another port.
    for _ in 0..5 {
        let addr = free_addr();
        let err = check_health(addr, Duration::from_secs(1)).unwrap_err();
        if !matches!(&err, HealthError::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            continue;
        }
        assert!(!health_command(addr).success());
        return;
    }
    panic!("no round saw a refused connection");
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn inotify_wakes_the_daemon_and_metrics_follow() {
    let d = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut config = Config::new(d.path());
    // No rescans during the test: only inotify can trigger the second pass.
    config.rescan_interval_secs = 3600;
    config.metrics_listen = Some(addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let metrics = Arc::new(Metrics::new());
    let daemon = rt.spawn(daemon::run(config.clone(), metrics, async {
        let _ = rx.await;
    }));

    wait_until("healthz", 5, || {
        get(addr, "/healthz").is_some_and(|(s, b)| s == 200 && b == "ok\n")
    });
    // What the image's HEALTHCHECK runs says so too.
    check_health(addr, Duration::from_secs(2)).unwrap();
    assert!(health_command(addr).success());
    assert_eq!(
        metric(addr, "tiered_snapshotter_last_snapshot_sequence", None),
        Some(0.0)
    );
    assert!(
        metric(
            addr,
            "tiered_snapshotter_tier_total_bytes",
            Some(("tier", "primary"))
        )
        .unwrap()
            > 0.0
    );
    assert!(metric(
        addr,
        "tiered_snapshotter_tier_free_bytes",
        Some(("tier", "archive"))
    )
    .is_some());

    // A second instance on the same volume is refused while this one runs.
    let second = rt.block_on(daemon::run(
        Config::new(d.path()),
        Arc::new(Metrics::new()),
        async {},
    ));
    assert!(
        matches!(
            second,
            Err(RunError::Lock(LockError::AlreadyRunning { .. }))
        ),
        "{second:?}"
    );

    let mut h = History::new(d.path());
    h.sealed(10);
    wait_until("first snapshot", 5, || {
        d.path().join(snap_name(10)).exists()
    });
    wait_until("archive metrics", 5, || {
        metric(
            addr,
            "tiered_snapshotter_archived_bytes_total",
            Some(("kind", "log")),
        )
        .is_some_and(|v| v > 0.0)
    });
    let seq1 = metric(addr, "tiered_snapshotter_last_snapshot_sequence", None).unwrap();
    let ts1 = metric(
        addr,
        "tiered_snapshotter_last_snapshot_timestamp_seconds",
        None,
    )
    .unwrap();
    let archived1 = metric(
        addr,
        "tiered_snapshotter_archived_bytes_total",
        Some(("kind", "log")),
    )
    .unwrap();
    let archive_bytes1 = metric(addr, "tiered_snapshotter_archive_bytes", None).unwrap();
    assert_eq!(seq1, 10.0);
    assert!(ts1 > 1.6e9, "{ts1}");
    assert!(archive_bytes1 >= archived1);
    assert_eq!(
        metric(
            addr,
            "tiered_snapshotter_snapshots_total",
            Some(("outcome", "ok"))
        ),
        Some(1.0)
    );

    std::thread::sleep(Duration::from_millis(20));
    h.sealed(10);
    wait_until("second snapshot", 5, || {
        metric(addr, "tiered_snapshotter_last_snapshot_sequence", None) == Some(20.0)
            && metric(
                addr,
                "tiered_snapshotter_archived_files_total",
                Some(("kind", "log")),
            ) == Some(2.0)
    });
    assert!(
        metric(
            addr,
            "tiered_snapshotter_last_snapshot_timestamp_seconds",
            None
        )
        .unwrap()
            > ts1
    );
    assert!(
        metric(
            addr,
            "tiered_snapshotter_archived_bytes_total",
            Some(("kind", "log"))
        )
        .unwrap()
            > archived1
    );
    assert!(metric(addr, "tiered_snapshotter_archive_bytes", None).unwrap() > archive_bytes1);
    assert_eq!(
        metric(addr, "tiered_snapshotter_pending_logs", None),
        Some(0.0)
    );

    // A gap makes the pass fail: counted, reported by /healthz.
    let gap = h.sealed(3);
    std::fs::remove_file(&gap).unwrap();
    h.sealed(3);
    wait_until("failed snapshot", 5, || {
        metric(
            addr,
            "tiered_snapshotter_snapshots_total",
            Some(("outcome", "failed")),
        )
        .is_some_and(|v| v >= 1.0)
    });
    let (status, body) = get(addr, "/healthz").unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("gap"), "{body}");
    let err = check_health(addr, Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, HealthError::Unhealthy { .. }), "{err}");
    assert!(!health_command(addr).success());
    assert_eq!(get(addr, "/nope").unwrap().0, 404);

    tx.send(()).unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), daemon)
            .await
            .expect("daemon did not stop")
            .unwrap()
            .unwrap();
    });
    // The lock is released and the listener closed.
    InstanceLock::acquire(d.path()).unwrap();
    assert!(get(addr, "/metrics").is_none());
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tiered-snapshotter")
}

fn run_bin(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(bin())
        .arg("run")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_stops_the_binary_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::new(d.path());
    h.sealed(5);
    let addr = free_addr();
    let mut child = run_bin(
        d.path(),
        &["--metrics-listen", &addr.to_string(), "--nice", "12"],
    );
    wait_until("snapshot by the binary", 10, || {
        d.path().join(snap_name(5)).exists()
    });
    // Every thread runs at the nice value asked for (field 19 of stat), in
    // the SCHED_IDLE class (field 41, policy 5).
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(tasks.len() > 1, "a runtime with threads");
    for t in tasks {
        let stat = std::fs::read_to_string(t.join("stat")).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split(' ').collect();
        assert_eq!(fields[16], "12", "nice of {}: {stat}", t.display());
        assert_eq!(
            fields[38],
            libc::SCHED_IDLE.to_string(),
            "policy of {}",
            t.display()
        );
    }
    wait_until("healthz", 5, || {
        get(addr, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    InstanceLock::acquire(d.path()).unwrap();
}

#[test]
fn bad_command_lines_and_a_second_instance_fail_clearly() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["run", "--dir"])
        .arg(d.path().join("missing"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a directory"));

    let o = Command::new(bin())
        .args(["once", "--keep-snapshots", "0", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("keep-snapshots"));

    let o = Command::new(bin()).output().unwrap();
    assert!(!o.status.success());

    for (flag, value) in [
        ("--nice", "20"),
        ("--snapshot-write-mib-per-sec", "2000000"),
        ("--cpu-class", "fast"),
    ] {
        let o = Command::new(bin())
            .args(["once", flag, value, "--dir"])
            .arg(d.path())
            .output()
            .unwrap();
        assert!(!o.status.success(), "{flag} {value}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(flag));
    }

    // Env vars work like flags.
    let mut h = History::new(d.path());
    h.sealed(3);
    let o = Command::new(bin())
        .arg("once")
        .env("TIERED_DIR", d.path())
        .env("TIERED_KEEP_SNAPSHOTS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(d.path().join(snap_name(3)).exists());
    // A variable beside the flags of a subcommand (it used to be taken for
    // a flag of the default `run`, which then asked for --dir).
    h.sealed(2);
    let o = Command::new(bin())
        .args(["once", "--dir"])
        .arg(d.path())
        .env("TIERED_KEEP_SNAPSHOTS", "1")
        .env("TIERED_SNAPSHOT_WRITE_MIB_PER_SEC", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(d.path().join(snap_name(5)).exists());

    let _lock = InstanceLock::acquire(d.path()).unwrap();
    let o = Command::new(bin())
        .args(["once", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another snapshotter is running"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
