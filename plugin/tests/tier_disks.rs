//! Real mounts as tier "disks": a directory bind-mounted over each tier
//! root, unmounted while the plugin is stopped (the disk failed to mount),
//! with the real plugin server and real system calls. Also a mount point
//! whose path is not UTF-8 inside a tier while volumes are mounted and
//! removed.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use common::{mounts_under, Plugin};
use hyper::StatusCode;
use serde_json::json;

fn bind(src: &Path, dst: &Path) {
    nix::mount::mount(
        Some(src),
        dst,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
}

fn unmount(p: &Path) {
    nix::mount::umount2(p, nix::mount::MntFlags::empty()).unwrap();
}

/// Makes `disk` and mounts it over `root`.
fn plug(disk: &Path, root: &Path) {
    std::fs::create_dir_all(disk).unwrap();
    std::fs::create_dir_all(root).unwrap();
    bind(disk, root);
}

fn entries(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_archive_disk_that_failed_to_mount_is_refused_and_untouched() {
    let mut p = Plugin::new();
    let disk_p = p.dir.path().join("disk-p");
    let disk_a = p.dir.path().join("disk-a");
    plug(&disk_p, &p.primary);
    plug(&disk_a, &p.archive);
    p.start().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "v"})).await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "v", "ID": "c1"}))
        .await;
    std::fs::write(p.mountpoint("v").join("archived/cold"), b"c").unwrap();
    p.ok("/VolumeDriver.Unmount", json!({"Name": "v", "ID": "c1"}))
        .await;
    p.stop().await;

    // The archive disk does not come back.
    unmount(&p.archive);
    p.start().await;
    let v = p.ok("/VolumeDriver.List", json!({})).await;
    assert_eq!(v["Volumes"][0]["Name"], "v");
    let v = p.ok("/VolumeDriver.Get", json!({"Name": "v"})).await;
    assert_eq!(v["Volume"]["Status"]["archive_tier"], "missing");
    assert_eq!(v["Volume"]["Status"]["primary_tier"], "ok");
    for (path, body) in [
        ("/VolumeDriver.Mount", r#"{"Name":"v","ID":"c2"}"#),
        ("/VolumeDriver.Create", r#"{"Name":"w"}"#),
        ("/VolumeDriver.Remove", r#"{"Name":"v"}"#),
    ] {
        let (status, v) = p.call(path, body).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {v}");
        let msg = v["Err"].as_str().unwrap();
        assert!(msg.contains(&p.archive.display().to_string()), "{msg}");
    }
    let text = p.metrics_text().await;
    assert_eq!(
        common::sample(
            &text,
            "tiered_plugin_tier_state",
            &[("tier", "archive"), ("state", "missing")]
        ),
        Some(1.0)
    );
    p.stop().await;
    assert!(
        entries(&p.archive).is_empty(),
        "nothing written on the missing disk"
    );
    assert!(mounts_under(&p.mount_root).is_empty());

    // Mounted again: everything where it was.
    bind(&disk_a, &p.archive);
    p.start().await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "v", "ID": "c3"}))
        .await;
    assert_eq!(
        std::fs::read(p.mountpoint("v").join("archived/cold")).unwrap(),
        b"c"
    );
    p.ok("/VolumeDriver.Unmount", json!({"Name": "v", "ID": "c3"}))
        .await;
    p.ok("/VolumeDriver.Remove", json!({"Name": "v"})).await;
    assert!(!disk_a.join("v").exists());
    p.stop().await;
    unmount(&p.archive);
    unmount(&p.primary);
}

#[tokio::test]
async fn a_primary_disk_that_failed_to_mount_keeps_the_volume_listed() {
    let mut p = Plugin::new();
    let disk_p = p.dir.path().join("disk-p");
    plug(&disk_p, &p.primary);
    p.start().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "v"})).await;
    p.stop().await;
    unmount(&p.primary);
    p.start().await;
    let v = p.ok("/VolumeDriver.List", json!({})).await;
    assert_eq!(
        v["Volumes"][0]["Name"], "v",
        "known from the archive tier's index"
    );
    let (status, _) = p.call("/VolumeDriver.Create", r#"{"Name":"v"}"#).await;
    assert_ne!(status, StatusCode::OK);
    p.stop().await;
    assert!(
        entries(&p.primary).is_empty(),
        "nothing written on the missing disk"
    );
    assert!(p.archive.join("v").is_dir(), "archive untouched");
}

#[tokio::test]
async fn a_non_utf8_mount_point_in_a_tier_breaks_nothing() {
    let p = Plugin::started().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "v"})).await;
    let odd = p.primary.join(OsString::from_vec(b"odd \xff\xfe".to_vec()));
    std::fs::create_dir(&odd).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &odd,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    p.ok("/VolumeDriver.Mount", json!({"Name": "v", "ID": "a"}))
        .await;
    p.ok("/VolumeDriver.Unmount", json!({"Name": "v", "ID": "a"}))
        .await;
    p.ok("/VolumeDriver.Remove", json!({"Name": "v"})).await;
    assert!(!p.primary.join("v").exists());
    unmount(&odd);
}
