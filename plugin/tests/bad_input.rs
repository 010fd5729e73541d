//! Every bad input gets a clear `Err` and changes nothing on disk.

mod common;

use common::{mounts_under, request, Plugin};
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let p = Plugin::started().await;
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "good", "Opts": {"mode": "0700"}}),
    )
    .await;
    p.ok("/VolumeDriver.Create", json!({"Name": "held"})).await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "held", "ID": "c"}))
        .await;
    std::fs::write(p.mountpoint("held").join("f"), b"x").unwrap();
    let before = p.tree();
    let mounts_before = mounts_under(&p.mount_root);

    let cases: &[(&str, &str, &str)] = &[
        // Names outside Docker's rule.
        (
            "/VolumeDriver.Create",
            r#"{"Name":"../escape"}"#,
            "invalid volume name",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"a/b"}"#,
            "invalid volume name",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"a..b"}"#,
            "invalid volume name",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":".hidden"}"#,
            "invalid volume name",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":""}"#,
            "invalid volume name",
        ),
        (
            "/VolumeDriver.Get",
            r#"{"Name":"-x"}"#,
            "invalid volume name",
        ),
        (
            "/VolumeDriver.Mount",
            r#"{"Name":"../held","ID":"c"}"#,
            "invalid volume name",
        ),
        // Unknown and malformed options.
        (
            "/VolumeDriver.Create",
            r#"{"Name":"n","Opts":{"bogus":"1G"}}"#,
            "accepted options: uid, gid, mode, archive-of, keep-archive, size, archive-size, quota",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"n","Opts":{"size":"lots"}}"#,
            "invalid value",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"n","Opts":{"uid":"root"}}"#,
            "invalid value",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"n","Opts":{"mode":"999"}}"#,
            "invalid value",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"n","Opts":{"keep-archive":"1"}}"#,
            "invalid value",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"n","Opts":{"uid":1}}"#,
            "malformed json",
        ),
        (
            "/VolumeDriver.Create",
            r#"{"Name":"n","Opts":{"archive-of":"good","uid":"1"}}"#,
            "cannot be combined",
        ),
        // Existing volume with other options.
        (
            "/VolumeDriver.Create",
            r#"{"Name":"good","Opts":{"mode":"0755"}}"#,
            "already exists",
        ),
        // Malformed JSON.
        ("/VolumeDriver.Create", r#"{"Name":"n""#, "malformed json"),
        (
            "/VolumeDriver.Mount",
            r#"{"Name":"good"}"#,
            "malformed json",
        ),
        ("/VolumeDriver.Remove", "[]", "malformed json"),
        ("/VolumeDriver.List", "[1]", "malformed json"),
        (
            "/VolumeDriver.Unmount",
            r#"{"Name":"held","ID":""}"#,
            "invalid mount id",
        ),
        // Remove of a mounted volume; Unmount of an unknown ID.
        ("/VolumeDriver.Remove", r#"{"Name":"held"}"#, "in use"),
        (
            "/VolumeDriver.Unmount",
            r#"{"Name":"held","ID":"other"}"#,
            "no mount with id",
        ),
        (
            "/VolumeDriver.Unmount",
            r#"{"Name":"good","ID":"c"}"#,
            "no mount with id",
        ),
        // Operations on missing volumes.
        ("/VolumeDriver.Get", r#"{"Name":"missing"}"#, "not found"),
        ("/VolumeDriver.Path", r#"{"Name":"missing"}"#, "not found"),
        (
            "/VolumeDriver.Mount",
            r#"{"Name":"missing","ID":"c"}"#,
            "not found",
        ),
        (
            "/VolumeDriver.Unmount",
            r#"{"Name":"missing","ID":"c"}"#,
            "not found",
        ),
        ("/VolumeDriver.Remove", r#"{"Name":"missing"}"#, "not found"),
        // Unknown endpoints.
        (
            "/VolumeDriver.Rename",
            r#"{"Name":"good"}"#,
            "unknown endpoint",
        ),
        ("/NetworkDriver.Create", "{}", "unknown endpoint"),
    ];
    for (path, body, needle) in cases {
        p.err(path, body, needle).await;
    }

    // Wrong method, oversized body.
    let (status, _, body) = request(&p.socket, "GET", "/VolumeDriver.List", b"").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(String::from_utf8_lossy(&body).contains("expects POST"));
    let huge = format!(
        r#"{{"Name":"n","Opts":{{"uid":"{}"}}}}"#,
        "1".repeat(100_000)
    );
    p.err("/VolumeDriver.Create", &huge, "at most").await;

    assert_eq!(p.tree(), before, "bad input changed the tiers");
    assert_eq!(mounts_under(&p.mount_root), mounts_before);
    let v = p.ok("/VolumeDriver.List", json!({})).await;
    assert_eq!(v["Volumes"].as_array().unwrap().len(), 2);
    p.ok("/VolumeDriver.Unmount", json!({"Name": "held", "ID": "c"}))
        .await;
}

#[tokio::test]
async fn a_second_instance_on_the_same_socket_changes_nothing() {
    let mut p = Plugin::started().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "v"})).await;
    p.ok("/VolumeDriver.Mount", json!({"Name": "v", "ID": "c"}))
        .await;
    let before = mounts_under(&p.mount_root);
    let err = tiered_plugin::run(p.config(), async {}).await.unwrap_err();
    assert!(
        matches!(err, tiered_plugin::RunError::SocketInUse { .. }),
        "{err}"
    );
    assert_eq!(mounts_under(&p.mount_root), before);
    p.ok("/VolumeDriver.Unmount", json!({"Name": "v", "ID": "c"}))
        .await;
    p.stop().await;

    // A regular file where the socket should be is not replaced.
    std::fs::write(&p.socket, b"not a socket").unwrap();
    let err = tiered_plugin::run(p.config(), async {}).await.unwrap_err();
    assert!(
        matches!(err, tiered_plugin::RunError::NotASocket { .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(&p.socket).unwrap(), b"not a socket");
    std::fs::remove_file(&p.socket).unwrap();

    // Overlapping tiers are refused.
    let mut cfg = p.config();
    cfg.tiers.archive_root = p.primary.join("inside");
    let err = tiered_plugin::run(cfg, async {}).await.unwrap_err();
    assert!(err.to_string().contains("overlap"), "{err}");
    assert!(
        !p.primary.join("inside").exists(),
        "refused config created a dir"
    );

    // A stale socket (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&p.socket).unwrap());
    p.start().await;
    p.ok("/VolumeDriver.Get", json!({"Name": "v"})).await;
}

#[tokio::test]
async fn damaged_metadata_is_reported_and_left_alone() {
    let mut p = Plugin::started().await;
    p.ok("/VolumeDriver.Create", json!({"Name": "v"})).await;
    p.ok("/VolumeDriver.Create", json!({"Name": "w"})).await;
    p.stop().await;
    let meta = p.primary.join("v/volume.json");
    std::fs::write(&meta, b"{\"version\":1,").unwrap();
    p.start().await;
    p.err("/VolumeDriver.Get", r#"{"Name":"v"}"#, "damaged metadata")
        .await;
    p.err(
        "/VolumeDriver.Remove",
        r#"{"Name":"v"}"#,
        "damaged metadata",
    )
    .await;
    p.err(
        "/VolumeDriver.Mount",
        r#"{"Name":"v","ID":"c"}"#,
        "damaged metadata",
    )
    .await;
    let v = p.ok("/VolumeDriver.List", json!({})).await;
    assert_eq!(
        v["Volumes"],
        json!([{"Name": "w", "Mountpoint": "", "CreatedAt": v["Volumes"][0]["CreatedAt"]}])
    );
    assert_eq!(std::fs::read(&meta).unwrap(), b"{\"version\":1,");
}
