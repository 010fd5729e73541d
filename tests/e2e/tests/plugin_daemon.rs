//! The managed plugin on the real Docker daemon: created from config.json +
//! rootfs/ with the tier sources in temp dirs; volumes; FROM-scratch busybox
//! containers writing into the volume and its archived/, checked on the host
//! for the tier each file landed in; `docker cp` into a running container (the
//! same mount ID twice); two containers sharing a volume; implicit creation
//! (null Opts); bad options; anonymous volumes; a failed mount; then the
//! plugin removed and re-created with the volumes and their data still there.
#![cfg(feature = "docker-e2e")]

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use tiered_e2e::http::{metric, scrape};
use tiered_e2e::image::busybox_image;
use tiered_e2e::plugin::{self, volume_status as status, Install};
use tiered_e2e::{docker, docker_ok, env, wait_for_value, Guard, TestEnv};

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}

/// Entries of a tier root that are volumes (not `.tiered`).
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

#[test]
fn managed_plugin_on_the_real_daemon() -> Result<()> {
    let t = TestEnv::shared("plugin")?;
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    let image = format!("{}:e2e", t.name("bb"));
    let (vol, auto, backup) = (t.name("vol"), t.name("auto"), t.name("backup"));
    let (ctr, vf) = (t.name("ctr"), t.name("vf"));

    let _image = busybox_image(&image, &t.path("image"), None)?;
    let port = env::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let _plugin = Install::new(&t.name("plugin"), &primary, &archive)
        .metrics_listen(&metrics_addr)
        .install()?;
    let plugin = _plugin.name().to_owned();
    let _volumes = [
        Guard::volume(&vol),
        Guard::volume(&auto),
        Guard::volume(&backup),
    ];
    let _ctr = Guard::container(&ctr);
    let _vf = Guard::container(&vf);

    let metrics = || scrape(&metrics_addr).expect("scrape the plugin's metrics");
    wait_for_value(
        Duration::from_secs(10),
        "the plugin's metrics endpoint",
        || scrape(&metrics_addr).ok(),
    )?;
    assert_eq!(metric(&metrics(), "tiered_plugin_volumes"), Some(0.0));
    assert_eq!(plugin::inspect(&plugin, "{{.Enabled}}")?, "true");
    // Settings can only change on a disabled plugin.
    ensure!(
        !docker_ok(["plugin", "set", &plugin, "TIERED_LOG_LEVEL=debug"]),
        "set on an enabled plugin succeeded"
    );

    // A bad option is refused with the accepted list; a bad name too.
    let err = docker([
        "volume",
        "create",
        "-d",
        &plugin,
        "-o",
        "bogus=1G",
        &t.name("bad"),
    ])
    .expect_err("unknown option accepted");
    assert!(
        err.stderr()
            .contains("accepted options: uid, gid, mode, archive-of, keep-archive"),
        "unclear error: {err}"
    );
    ensure!(
        !docker_ok(["volume", "create", "-d", &plugin, "bad..name"]),
        "bad name accepted"
    );

    docker([
        "volume",
        "create",
        "-d",
        &plugin,
        "-o",
        "mode=0777",
        "-o",
        "uid=1000",
        &vol,
    ])?;
    assert_eq!(status(&vol, "active_mounts")?, "0");
    assert_eq!(status(&vol, "archive_path")?, format!("/mnt/archive/{vol}"));
    for k in [
        "primary_free_bytes",
        "primary_total_bytes",
        "archive_free_bytes",
        "archive_total_bytes",
    ] {
        // Docker renders Status numbers as floats (1.2e+10).
        let v: f64 = status(&vol, k)?.parse()?;
        assert!(v > 0.0, "{k}: {v}");
    }
    {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(primary.join(&vol).join("data"))?;
        assert_eq!(
            (md.uid(), md.mode() & 0o7777),
            (1000, 0o777),
            "owner/mode of the volume root"
        );
    }
    assert!(archive.join(&vol).is_dir(), "archive dir not created");

    // A container writes into the volume and its archived/.
    let vdata = format!("{vol}:/data");
    docker([
        "run", "--rm", "-v", &vdata, &image, "sh", "-c",
        "echo hot >/data/hot && mkdir /data/archived/logs && echo cold >/data/archived/logs/cold && sync",
    ])?;
    assert_eq!(read(primary.join(&vol).join("data/hot")), "hot\n");
    assert_eq!(read(archive.join(&vol).join("logs/cold")), "cold\n");
    assert!(
        !primary.join(&vol).join("data/archived/logs").exists(),
        "archived file on the primary tier"
    );
    assert!(
        !archive.join(&vol).join("hot").exists(),
        "primary file on the archive tier"
    );
    assert_eq!(status(&vol, "active_mounts")?, "0");
    assert_eq!(metric(&metrics(), "tiered_plugin_volumes"), Some(1.0));
    let mounts = metric(
        &metrics(),
        "tiered_plugin_requests_total{endpoint=\"mount\"}",
    );
    assert!(
        mounts.is_some_and(|m| m >= 1.0),
        "mount requests metric: {mounts:?}"
    );

    // docker cp into a running container, and a second container sharing the volume.
    docker([
        "run", "-d", "--name", &ctr, "-v", &vdata, &image, "sleep", "300",
    ])?;
    assert_eq!(status(&vol, "active_mounts")?, "1");
    std::fs::write(t.path("copied"), "copied\n")?;
    docker([
        "cp",
        &t.path("copied").to_string_lossy(),
        &format!("{ctr}:/data/archived/copied"),
    ])?;
    assert_eq!(read(archive.join(&vol).join("copied")), "copied\n");
    assert_eq!(
        status(&vol, "active_mounts")?,
        "1",
        "after docker cp (same ID twice)"
    );
    assert_eq!(
        docker(["exec", &ctr, "/bin/busybox", "cat", "/data/archived/copied"])?,
        "copied"
    );
    assert_eq!(
        docker([
            "run",
            "--rm",
            "-v",
            &vdata,
            &image,
            "cat",
            "/data/archived/logs/cold"
        ])?,
        "cold"
    );
    assert_eq!(
        docker([
            "exec",
            &ctr,
            "/bin/busybox",
            "cat",
            "/data/archived/logs/cold"
        ])?,
        "cold",
        "first container still sees archived/ after the second left"
    );
    ensure!(
        !docker_ok(["volume", "rm", &vol]),
        "removed a volume in use"
    );
    docker(["rm", "-f", &ctr])?;
    assert_eq!(status(&vol, "active_mounts")?, "0");
    assert_eq!(
        docker(["volume", "inspect", &vol, "--format", "{{.Mountpoint}}"])?,
        ""
    );

    // Implicit creation (null Opts) with --volume-driver, and archive-of.
    docker([
        "run",
        "--rm",
        "-v",
        &format!("{auto}:/x"),
        "--volume-driver",
        &plugin,
        &image,
        "sh",
        "-c",
        "echo a >/x/archived/a",
    ])?;
    assert_eq!(read(archive.join(&auto).join("a")), "a\n");
    docker([
        "volume",
        "create",
        "-d",
        &plugin,
        "-o",
        &format!("archive-of={vol}"),
        &backup,
    ])?;
    let vbackup = format!("{backup}:/backup:ro");
    assert_eq!(
        docker([
            "run",
            "--rm",
            "-v",
            &vbackup,
            &image,
            "cat",
            "/backup/logs/cold"
        ])?,
        "cold"
    );
    assert_eq!(
        docker([
            "run",
            "--rm",
            "-v",
            &vbackup,
            &image,
            "sh",
            "-c",
            "test -e /backup/hot && echo yes || echo no",
        ])?,
        "no",
        "archive-of hides the primary tier"
    );

    // Anonymous volumes: removed with --rm and with rm -v, shared by --volumes-from.
    let before = (count(&primary), count(&archive));
    docker([
        "run",
        "--rm",
        "-v",
        "/anon",
        "--volume-driver",
        &plugin,
        &image,
        "sh",
        "-c",
        "echo x >/anon/archived/x",
    ])?;
    assert_eq!(
        (count(&primary), count(&archive)),
        before,
        "tiers after --rm of an anonymous volume"
    );
    docker([
        "run",
        "--name",
        &vf,
        "-v",
        "/foo",
        "--volume-driver",
        &plugin,
        &image,
        "sh",
        "-c",
        "echo vf >/foo/archived/vf",
    ])?;
    assert_eq!(
        docker([
            "run",
            "--rm",
            "--volumes-from",
            &vf,
            &image,
            "cat",
            "/foo/archived/vf"
        ])?,
        "vf"
    );
    docker(["rm", "-v", &vf])?;
    assert_eq!(
        (count(&primary), count(&archive)),
        before,
        "tiers after rm -v"
    );

    // A failed mount fails the container and holds no reference.
    let auto_archive = archive.join(&auto);
    std::fs::remove_dir_all(&auto_archive)?;
    std::fs::write(&auto_archive, "")?;
    let vauto = format!("{auto}:/x");
    let err = docker(["run", "--rm", "-v", &vauto, &image, "true"])
        .expect_err("container started on a failed mount");
    assert!(
        err.stderr().contains(&auto),
        "mount error does not name the volume: {err}"
    );
    assert_eq!(status(&auto, "active_mounts")?, "0");
    std::fs::remove_file(&auto_archive)?;
    assert_eq!(
        docker([
            "run",
            "--rm",
            "-v",
            &vauto,
            &image,
            "sh",
            "-c",
            "echo b >/x/archived/b && cat /x/archived/b"
        ])?,
        "b"
    );
    assert_eq!(read(archive.join(&auto).join("b")), "b\n");

    // Remove and re-create the plugin: volumes and data survive.
    docker(["plugin", "rm", "-f", &plugin])?;
    assert!(
        primary.join(&vol).join("data/hot").is_file(),
        "primary data lost with the plugin"
    );
    Install::new(&plugin, &primary, &archive).install_unguarded()?;
    let listed = docker(["volume", "ls", "-q"])?;
    assert!(
        listed.lines().any(|l| l == vol),
        "volume {vol} not listed after re-creating the plugin"
    );
    assert_eq!(
        docker(["volume", "inspect", &vol, "--format", "{{.Driver}}"])?,
        format!("{plugin}:latest")
    );
    assert_eq!(
        docker([
            "run",
            "--rm",
            "-v",
            &vdata,
            &image,
            "sh",
            "-c",
            "cat /data/hot /data/archived/logs/cold /data/archived/copied",
        ])?,
        "hot\ncold\ncopied"
    );

    // Removing the volumes deletes both tiers.
    docker(["volume", "rm", &backup, &auto, &vol])?;
    assert!(
        !primary.join(&vol).exists() && !archive.join(&vol).exists(),
        "volume data left after docker volume rm"
    );
    Ok(())
}
