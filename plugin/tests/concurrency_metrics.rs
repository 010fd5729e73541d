//! Per-volume serialisation, independence of different volumes, and the
//! Prometheus endpoint (unix socket and `--metrics-listen` TCP).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{sample, Plugin};
use serde_json::json;
use tiered_plugin::mounts::{FsUsage, MountError};
use tiered_plugin::{NixSyscalls, Syscalls};

/// The real system calls, except that bind mounts onto a target named
/// `slow` wait until the test opens the gate.
#[derive(Default)]
struct GatedSyscalls {
    open: Mutex<bool>,
    cv: Condvar,
    waiting: Mutex<usize>,
}

impl GatedSyscalls {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl Syscalls for GatedSyscalls {
    fn bind_mount(&self, source: &Path, target: &Path) -> Result<(), MountError> {
        if target.ends_with("slow") {
            *self.waiting.lock().unwrap() += 1;
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
        }
        NixSyscalls.bind_mount(source, target)
    }
    fn unmount(&self, target: &Path) -> Result<(), MountError> {
        NixSyscalls.unmount(target)
    }
    fn mount_points(&self) -> Result<Vec<PathBuf>, MountError> {
        NixSyscalls.mount_points()
    }
    fn statvfs(&self, path: &Path) -> Result<FsUsage, MountError> {
        NixSyscalls.statvfs(path)
    }
    fn boot_id(&self) -> Result<String, MountError> {
        NixSyscalls.boot_id()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_volume_blocks_only_itself() {
    let mut p = Plugin::new();
    let gate = Arc::new(GatedSyscalls::default());
    p.start_with(gate.clone()).await;
    let p = Arc::new(p);
    p.ok("/VolumeDriver.Create", json!({"Name": "slow"})).await;
    p.ok("/VolumeDriver.Create", json!({"Name": "fast"})).await;

    let first = tokio::spawn({
        let p = p.clone();
        async move {
            p.ok("/VolumeDriver.Mount", json!({"Name": "slow", "ID": "a"}))
                .await
        }
    });
    // Wait until the first mount is inside the kernel call.
    for _ in 0..500 {
        if *gate.waiting.lock().unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*gate.waiting.lock().unwrap(), 1);
    let second = tokio::spawn({
        let p = p.clone();
        async move {
            p.ok("/VolumeDriver.Mount", json!({"Name": "slow", "ID": "b"}))
                .await
        }
    });

    // Another volume goes through a whole lifecycle meanwhile.
    tokio::time::timeout(Duration::from_secs(5), async {
        p.ok("/VolumeDriver.Mount", json!({"Name": "fast", "ID": "x"}))
            .await;
        p.ok("/VolumeDriver.Get", json!({"Name": "slow"})).await;
        p.ok("/VolumeDriver.List", json!({})).await;
        p.ok("/VolumeDriver.Unmount", json!({"Name": "fast", "ID": "x"}))
            .await;
        p.ok("/VolumeDriver.Remove", json!({"Name": "fast"})).await;
    })
    .await
    .expect("a different volume must not wait for the slow one");

    // The same volume is serialised: the second mount waits for the first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished() && !second.is_finished());
    gate.release();
    let a = first.await.unwrap();
    let b = second.await.unwrap();
    assert_eq!(a["Mountpoint"], b["Mountpoint"]);
    assert_eq!(
        common::mount_count(&p.mountpoint("slow")),
        1,
        "mounted once"
    );
    let v = p.ok("/VolumeDriver.Get", json!({"Name": "slow"})).await;
    assert_eq!(v["Volume"]["Status"]["active_mounts"], 2);
    p.ok("/VolumeDriver.Unmount", json!({"Name": "slow", "ID": "a"}))
        .await;
    p.ok("/VolumeDriver.Unmount", json!({"Name": "slow", "ID": "b"}))
        .await;
    assert!(common::mounts_under(&p.mount_root).is_empty());
}

#[tokio::test]
async fn metrics_move_with_the_work() {
    let mut p = Plugin::new();
    // A free port for the TCP listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    p.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    p.start().await;

    let text = p.metrics_text().await;
    let req = |t: &str, e: &str| sample(t, "tiered_plugin_requests_total", &[("endpoint", e)]);
    let errs =
        |t: &str, e: &str| sample(t, "tiered_plugin_request_errors_total", &[("endpoint", e)]);
    assert_eq!(req(&text, "create"), Some(0.0));
    assert_eq!(sample(&text, "tiered_plugin_volumes", &[]), Some(0.0));
    assert_eq!(sample(&text, "tiered_plugin_active_mounts", &[]), Some(0.0));
    for tier in ["primary", "archive"] {
        let total = sample(&text, "tiered_plugin_tier_total_bytes", &[("tier", tier)]).unwrap();
        let free = sample(&text, "tiered_plugin_tier_free_bytes", &[("tier", tier)]).unwrap();
        let used = sample(&text, "tiered_plugin_tier_used_bytes", &[("tier", tier)]).unwrap();
        assert!(
            total > 0.0 && free <= total && used <= total,
            "{tier}: {total} {free} {used}"
        );
    }

    p.ok("/VolumeDriver.Create", json!({"Name": "m1"})).await;
    p.ok("/VolumeDriver.Create", json!({"Name": "m2"})).await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "m1", "ID": "a"}))
        .await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "m1", "ID": "b"}))
        .await;
    p.err("/VolumeDriver.Get", r#"{"Name":"nope"}"#, "not found")
        .await;

    let text = p.metrics_text().await;
    assert_eq!(req(&text, "create"), Some(2.0));
    assert_eq!(req(&text, "mount"), Some(2.0));
    assert_eq!(req(&text, "get"), Some(1.0));
    // Get of an unknown volume (the daemon's probe before Create): an error
    // reply, counted as not_found, not as an error.
    assert_eq!(errs(&text, "get"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            "tiered_plugin_request_not_found_total",
            &[("endpoint", "get")]
        ),
        Some(1.0)
    );
    assert_eq!(errs(&text, "create"), Some(0.0));
    assert_eq!(sample(&text, "tiered_plugin_volumes", &[]), Some(2.0));
    assert_eq!(sample(&text, "tiered_plugin_active_mounts", &[]), Some(2.0));
    assert!(
        text.contains("tiered_plugin_request_duration_seconds_count{endpoint=\"mount\"} 2"),
        "{text}"
    );

    // The same numbers over TCP, which serves nothing but /metrics.
    let body = http_get(port, "/metrics").await;
    assert_eq!(sample(&body, "tiered_plugin_volumes", &[]), Some(2.0));
    assert!(http_get(port, "/VolumeDriver.List")
        .await
        .contains("only /metrics"));

    p.ok("/VolumeDriver.Unmount", json!({"Name": "m1", "ID": "a"}))
        .await;
    p.ok("/VolumeDriver.Unmount", json!({"Name": "m1", "ID": "b"}))
        .await;
    p.ok("/VolumeDriver.Remove", json!({"Name": "m2"})).await;
    let text = p.metrics_text().await;
    assert_eq!(sample(&text, "tiered_plugin_volumes", &[]), Some(1.0));
    assert_eq!(sample(&text, "tiered_plugin_active_mounts", &[]), Some(0.0));
    p.stop().await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "metrics listener closed on shutdown"
    );
}

async fn http_get(port: u16, path: &str) -> String {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
