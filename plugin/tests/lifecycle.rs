//! The full VolumeDriver lifecycle over the unix socket, with real bind
//! mounts: tiers, shared mounts, restart, archive-of and keep-archive.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{mount_count, mounts_under, Plugin};
use serde_json::json;

#[tokio::test]
async fn full_lifecycle_puts_archived_files_on_the_archive_tier() {
    let p = Plugin::started().await;
    let v = p.ok("/Plugin.Activate", json!({})).await;
    assert_eq!(v, json!({"Implements": ["VolumeDriver"]}));
    let v = p.ok("/VolumeDriver.Capabilities", json!({})).await;
    assert_eq!(v["Capabilities"], json!({"Scope": "local"}));

    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "vol1", "Opts": {"uid": "1001", "gid": "1002", "mode": "0750"}}),
    )
    .await;
    let data = p.primary.join("vol1/data");
    for d in [&data, &p.archive.join("vol1")] {
        let m = std::fs::metadata(d).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1001, 1002, 0o750),
            "{d:?}"
        );
    }

    let v = p.ok("/VolumeDriver.Get", json!({"Name": "vol1"})).await;
    let vol = &v["Volume"];
    assert_eq!(vol["Name"], "vol1");
    assert_eq!(vol["Mountpoint"], "");
    time::OffsetDateTime::parse(
        vol["CreatedAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let st = &vol["Status"];
    assert_eq!(st["primary_path"], data.display().to_string());
    assert_eq!(
        st["archive_path"],
        p.archive.join("vol1").display().to_string()
    );
    assert_eq!(st["active_mounts"], 0);
    for k in [
        "primary_used_bytes",
        "primary_free_bytes",
        "archive_used_bytes",
        "archive_free_bytes",
    ] {
        assert!(st[k].as_u64().is_some(), "{k} in {st}");
    }
    assert!(st["primary_free_bytes"].as_u64().unwrap() > 0);

    let v = p.ok("/VolumeDriver.List", json!({})).await;
    assert_eq!(v["Volumes"].as_array().unwrap().len(), 1);
    assert_eq!(v["Volumes"][0]["Name"], "vol1");
    let v = p.ok("/VolumeDriver.Path", json!({"Name": "vol1"})).await;
    assert_eq!(v["Mountpoint"], "");

    let v = p
        .ok("/VolumeDriver.Mount", json!({"Name": "vol1", "ID": "c1"}))
        .await;
    let mp = p.mountpoint("vol1");
    assert_eq!(v["Mountpoint"], mp.display().to_string());
    assert_eq!(mount_count(&mp), 1);
    assert_eq!(mount_count(&mp.join("archived")), 1);
    std::fs::write(mp.join("cmdlog"), b"hot").unwrap();
    std::fs::create_dir(mp.join("archived/logs")).unwrap();
    std::fs::write(mp.join("archived/logs/old"), b"cold").unwrap();
    assert_eq!(std::fs::read(data.join("cmdlog")).unwrap(), b"hot");
    assert_eq!(
        std::fs::read(p.archive.join("vol1/logs/old")).unwrap(),
        b"cold"
    );
    assert!(
        !data.join("archived/logs").exists(),
        "archived data must not be on the primary tier"
    );
    let v = p.ok("/VolumeDriver.Path", json!({"Name": "vol1"})).await;
    assert_eq!(v["Mountpoint"], mp.display().to_string());
    let v = p.ok("/VolumeDriver.Get", json!({"Name": "vol1"})).await;
    assert_eq!(v["Volume"]["Status"]["active_mounts"], 1);
    assert_eq!(v["Volume"]["Mountpoint"], mp.display().to_string());

    p.ok("/VolumeDriver.Unmount", json!({"Name": "vol1", "ID": "c1"}))
        .await;
    assert!(mounts_under(&p.mount_root).is_empty());
    assert!(!mp.exists());
    // The data stays on its tiers.
    assert_eq!(std::fs::read(data.join("cmdlog")).unwrap(), b"hot");
    assert_eq!(
        std::fs::read(p.archive.join("vol1/logs/old")).unwrap(),
        b"cold"
    );

    p.ok("/VolumeDriver.Remove", json!({"Name": "vol1"})).await;
    assert!(!p.primary.join("vol1").exists());
    assert!(!p.archive.join("vol1").exists());
    p.err("/VolumeDriver.Get", r#"{"Name":"vol1"}"#, "not found")
        .await;
    let v = p.ok("/VolumeDriver.List", json!({})).await;
    assert_eq!(v["Volumes"], json!([]));
}

#[tokio::test]
async fn implicit_creation_with_null_opts() {
    let p = Plugin::started().await;
    // The daemon asks Get first; an unknown name must fail.
    p.err("/VolumeDriver.Get", r#"{"Name":"auto"}"#, "not found")
        .await;
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "auto", "Opts": null}),
    )
    .await;
    p.ok("/VolumeDriver.Get", json!({"Name": "auto"})).await;
    // Creating it again with the same (no) options is accepted.
    p.ok("/VolumeDriver.Create", json!({"Name": "auto", "Opts": {}}))
        .await;
}

#[tokio::test]
async fn two_ids_and_the_same_id_twice_share_one_mount() {
    let p = Plugin::started().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "shared"}))
        .await;
    let mp = p.mountpoint("shared");
    for id in ["engine", "snapshotter", "engine"] {
        let v = p
            .ok("/VolumeDriver.Mount", json!({"Name": "shared", "ID": id}))
            .await;
        assert_eq!(v["Mountpoint"], mp.display().to_string());
        assert_eq!(mount_count(&mp), 1, "mounted once, not per id");
        assert_eq!(mount_count(&mp.join("archived")), 1);
    }
    let v = p.ok("/VolumeDriver.Get", json!({"Name": "shared"})).await;
    assert_eq!(v["Volume"]["Status"]["active_mounts"], 3);
    p.err("/VolumeDriver.Remove", r#"{"Name":"shared"}"#, "in use")
        .await;
    for id in ["engine", "snapshotter"] {
        p.ok("/VolumeDriver.Unmount", json!({"Name": "shared", "ID": id}))
            .await;
        assert_eq!(mount_count(&mp), 1, "still held by the second engine ref");
    }
    p.ok(
        "/VolumeDriver.Unmount",
        json!({"Name": "shared", "ID": "engine"}),
    )
    .await;
    assert!(mounts_under(&p.mount_root).is_empty());
    p.err(
        "/VolumeDriver.Unmount",
        r#"{"Name":"shared","ID":"engine"}"#,
        "no mount with id",
    )
    .await;
}

#[tokio::test]
async fn restart_keeps_state_and_recognises_held_mounts() {
    let mut p = Plugin::started().await;
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "a", "Opts": {"keep-archive": "true"}}),
    )
    .await;
    p.ok("/VolumeDriver.Create", json!({"Name": "b"})).await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "a", "ID": "x"}))
        .await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "a", "ID": "x"}))
        .await;
    std::fs::write(p.mountpoint("a").join("archived/f"), b"1").unwrap();
    p.stop().await;
    // Mounts held by containers outlive the plugin process.
    assert_eq!(mount_count(&p.mountpoint("a")), 1);

    p.start().await;
    let v = p.ok("/VolumeDriver.List", json!({})).await;
    let names: Vec<_> = v["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a"), json!("b")]);
    assert_eq!(
        v["Volumes"][0]["Mountpoint"],
        p.mountpoint("a").display().to_string()
    );
    let v = p.ok("/VolumeDriver.Get", json!({"Name": "a"})).await;
    assert_eq!(v["Volume"]["Status"]["active_mounts"], 2);
    assert_eq!(v["Volume"]["Status"]["keep_archive"], true);
    assert_eq!(mount_count(&p.mountpoint("a")), 1, "not doubled");
    assert_eq!(
        mount_count(&p.mountpoint("a").join("archived")),
        1,
        "not doubled"
    );
    // The first Mount after the restart (a new plugin lifetime) replaces
    // the references of the earlier lifetime: a daemon restarted after a
    // crash mounts a container it starts again with the same ID, and the
    // old count belongs to a dead container (docs/plugin.md).
    p.ok("/VolumeDriver.Mount", json!({"Name": "a", "ID": "x"}))
        .await;
    assert_eq!(mount_count(&p.mountpoint("a")), 1);
    let v = p.ok("/VolumeDriver.Get", json!({"Name": "a"})).await;
    assert_eq!(v["Volume"]["Status"]["active_mounts"], 1);
    p.ok("/VolumeDriver.Unmount", json!({"Name": "a", "ID": "x"}))
        .await;
    assert!(mounts_under(&p.mount_root).is_empty(), "not leaked");
    let (status, _) = p
        .call("/VolumeDriver.Unmount", r#"{"Name":"a","ID":"x"}"#)
        .await;
    assert_ne!(status, hyper::StatusCode::OK, "no reference left");

    // Mounts lost while the plugin was down (a new mount namespace) are
    // made again for the references still held.
    p.ok("/VolumeDriver.Mount", json!({"Name": "b", "ID": "y"}))
        .await;
    p.stop().await;
    let mp = p.mountpoint("b");
    nix::mount::umount2(&mp.join("archived"), nix::mount::MntFlags::empty()).unwrap();
    nix::mount::umount2(&mp, nix::mount::MntFlags::empty()).unwrap();
    p.start().await;
    assert_eq!(mount_count(&mp), 1);
    assert_eq!(mount_count(&mp.join("archived")), 1);
    p.ok("/VolumeDriver.Unmount", json!({"Name": "b", "ID": "y"}))
        .await;
    assert!(mounts_under(&p.mount_root).is_empty());

    // A mount nobody references (a crash between mount and metadata write)
    // is taken down at start.
    p.stop().await;
    std::fs::create_dir_all(&mp).unwrap();
    nix::mount::mount(
        Some(&p.primary.join("b/data")),
        &mp,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    p.start().await;
    assert!(mounts_under(&p.mount_root).is_empty());

    // keep-archive: the archive survives Remove and is re-attached.
    p.ok("/VolumeDriver.Remove", json!({"Name": "a"})).await;
    assert_eq!(std::fs::read(p.archive.join("a/f")).unwrap(), b"1");
    p.ok("/VolumeDriver.Create", json!({"Name": "a"})).await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "a", "ID": "z"}))
        .await;
    assert_eq!(
        std::fs::read(p.mountpoint("a").join("archived/f")).unwrap(),
        b"1"
    );
    p.ok("/VolumeDriver.Unmount", json!({"Name": "a", "ID": "z"}))
        .await;
}

#[tokio::test]
async fn archive_of_volume_mounts_the_archive_alone() {
    let p = Plugin::started().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "db"})).await;
    p.err(
        "/VolumeDriver.Create",
        r#"{"Name":"db-backup","Opts":{"archive-of":"nope"}}"#,
        "does not exist",
    )
    .await;
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "db-backup", "Opts": {"archive-of": "db"}}),
    )
    .await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "db", "ID": "engine"}))
        .await;
    std::fs::write(p.mountpoint("db").join("archived/snap"), b"s").unwrap();
    std::fs::write(p.mountpoint("db").join("hot"), b"h").unwrap();
    let v = p
        .ok(
            "/VolumeDriver.Mount",
            json!({"Name": "db-backup", "ID": "backup"}),
        )
        .await;
    let bmp = p.mountpoint("db-backup");
    assert_eq!(v["Mountpoint"], bmp.display().to_string());
    assert_eq!(std::fs::read(bmp.join("snap")).unwrap(), b"s");
    assert!(
        !bmp.join("hot").exists(),
        "only the archive tier is visible"
    );
    p.ok(
        "/VolumeDriver.Unmount",
        json!({"Name": "db-backup", "ID": "backup"}),
    )
    .await;
    p.ok(
        "/VolumeDriver.Unmount",
        json!({"Name": "db", "ID": "engine"}),
    )
    .await;
    p.err(
        "/VolumeDriver.Remove",
        r#"{"Name":"db"}"#,
        "archive of volume",
    )
    .await;
    p.ok("/VolumeDriver.Remove", json!({"Name": "db-backup"}))
        .await;
    assert_eq!(std::fs::read(p.archive.join("db/snap")).unwrap(), b"s");
    p.ok("/VolumeDriver.Remove", json!({"Name": "db"})).await;
    assert!(!p.archive.join("db").exists());
}

#[tokio::test]
async fn out_of_band_delete_of_the_archive_dir_is_recreated_on_mount() {
    let p = Plugin::started().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "v"})).await;
    std::fs::remove_dir_all(p.archive.join("v")).unwrap();
    p.ok("/VolumeDriver.Mount", json!({"Name": "v", "ID": "i"}))
        .await;
    std::fs::write(p.mountpoint("v").join("archived/x"), b"x").unwrap();
    assert_eq!(std::fs::read(p.archive.join("v/x")).unwrap(), b"x");
    p.ok("/VolumeDriver.Unmount", json!({"Name": "v", "ID": "i"}))
        .await;
}
