//! Restarting the Docker daemon itself (moby integration-cli's external volume
//! driver tests do) with a managed tiered plugin, a volume with options, a
//! `--restart unless-stopped` container writing into the volume root and its
//! archived/, and a second container holding the same volume:
//!  - the daemon stops both containers (each Unmount reaches the plugin) and
//!    the plugin; on start it enables the plugin again and restarts the
//!    restart-policy container, which mounts the volume again;
//!  - `docker volume ls`/`inspect` show the volume with its Status and
//!    options; the restarted container sees its files in both tiers and its
//!    archived/ writes land in the archive source on the host;
//!  - the mount references are consistent: one mount of the volume root and
//!    one of archived/ in the plugin, the same host mount table as before the
//!    restart, and after both containers stop nothing is mounted and
//!    `docker volume rm` succeeds.
//!
//! It holds the exclusive Docker lock: no other real-daemon test runs while
//! the daemon is down. Whatever happens, a guard makes sure a daemon answers
//! again before the other guards remove the test's objects.
#![cfg(feature = "docker-e2e")]

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use tiered_e2e::dockerd::{self, Dockerd};
use tiered_e2e::image::busybox_image;
use tiered_e2e::plugin::{
    self, host_mount_entries, plugin_mounts, volume_status as status, Install,
};
use tiered_e2e::{docker, env, wait_for, Defer, Guard, TestEnv};

const RESTARTING: &str = r#"
  trap "exit 0" TERM
  [ -e /data/hot ] || { echo hot >/data/hot && echo cold >/data/archived/cold; } || exit 1
  echo start >>/data/archived/starts && sync || exit 1
  while :; do sleep 0.2; done"#;

#[test]
fn daemon_restart_with_a_managed_plugin() -> Result<()> {
    let t = TestEnv::exclusive("dockerd")?;
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    let image = format!("{}:e2e", t.name("bb"));
    let (vol, ctr, peer) = (t.name("vol"), t.name("ctr"), t.name("peer"));
    // Known before the restart: the mount checks run while the daemon is down.
    let docker_root = docker(["info", "--format", "{{.DockerRootDir}}"])?;

    let _image = busybox_image(&image, &t.path("image"), None)?;
    let plugin_guard = Install::new(&t.name("plugin"), &primary, &archive).install()?;
    let plugin = plugin_guard.name();
    let _vol = Guard::volume(&vol);
    let _ctrs = [Guard::container(&ctr), Guard::container(&peer)];
    // Dropped first: a daemon answers before the guards above need it.
    let manager = std::cell::RefCell::new(None);
    let _daemon_back = Defer::new(|| dockerd::ensure_back(manager.borrow().as_ref()));

    docker([
        "volume",
        "create",
        "-d",
        plugin,
        "-o",
        "uid=1000",
        "-o",
        "gid=1000",
        "-o",
        "mode=0750",
        &vol,
    ])?;
    // The restart-policy container writes its files once, appends a line to
    // archived/starts on every start, exits on SIGTERM (PID 1 ignores it
    // otherwise, and the daemon's shutdown would wait for its stop timeout).
    let vdata = format!("{vol}:/data");
    docker([
        "run",
        "-d",
        "--name",
        &ctr,
        "--restart",
        "unless-stopped",
        "-v",
        &vdata,
        &image,
        "sh",
        "-c",
        RESTARTING,
    ])?;
    docker([
        "run",
        "-d",
        "--name",
        &peer,
        "-v",
        &vdata,
        &image,
        "sh",
        "-c",
        "trap \"exit 0\" TERM; while :; do sleep 0.2; done",
    ])?;
    let starts = archive.join(&vol).join("starts");
    let lines = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_for(
        Duration::from_secs(10),
        "the first start line in archived/starts",
        || lines(&starts) >= 1,
    )?;
    assert_eq!(
        std::fs::read_to_string(primary.join(&vol).join("data/hot"))?,
        "hot\n"
    );
    assert_eq!(
        std::fs::read_to_string(archive.join(&vol).join("cold"))?,
        "cold\n"
    );
    assert_eq!(status(&vol, "active_mounts")?, "2");
    let id = plugin::inspect(plugin, "{{.ID}}")?;
    let mounts_before = host_mount_entries(&docker_root, &id, &vol)?;
    ensure!(!mounts_before.is_empty(), "no host mount for {vol}");
    let in_plugin = vec![
        format!("/mnt/volumes/{vol}"),
        format!("/mnt/volumes/{vol}/archived"),
    ];
    assert_eq!(plugin_mounts(&id, &vol)?, in_plugin, "mounts in the plugin");

    // The restart.
    let d = Dockerd::find()?;
    *manager.borrow_mut() = Some(d.manager.clone());
    let start = Instant::now();
    d.stop()?;
    eprintln!("daemon stopped in {:?}", start.elapsed());
    assert_eq!(
        host_mount_entries(&docker_root, &id, &vol)?,
        Vec::<String>::new(),
        "host mounts while the daemon is down"
    );
    d.start()?;
    wait_for(
        Duration::from_secs(60),
        "the daemon to answer after the restart",
        env::docker_answers,
    )?;
    eprintln!("daemon answers again after {:?}", start.elapsed());

    // After the restart.
    wait_for(Duration::from_secs(30), "the plugin enabled again", || {
        plugin::inspect(plugin, "{{.Enabled}}").is_ok_and(|e| e == "true")
    })?;
    ensure!(
        docker(["volume", "ls", "-q"])?.lines().any(|l| l == vol),
        "volume {vol} not listed after the restart"
    );
    assert_eq!(
        docker(["volume", "inspect", &vol, "--format", "{{.Driver}}"])?,
        format!("{plugin}:latest")
    );
    assert_eq!(
        (
            status(&vol, "uid")?,
            status(&vol, "gid")?,
            status(&vol, "mode")?
        ),
        ("1000".to_owned(), "1000".to_owned(), "0750".to_owned()),
        "options in Status"
    );
    assert_eq!(status(&vol, "archive_path")?, format!("/mnt/archive/{vol}"));
    let running = |c: &str| docker(["inspect", c, "--format", "{{.State.Running}}"]);
    wait_for(
        Duration::from_secs(60),
        "the restart-policy container running again",
        || running(&ctr).is_ok_and(|r| r == "true"),
    )?;
    assert_eq!(
        running(&peer)?,
        "false",
        "container without restart policy after the restart"
    );
    wait_for(
        Duration::from_secs(10),
        "a second start line in archived/starts",
        || lines(&starts) == 2,
    )?;
    assert_eq!(
        status(&vol, "active_mounts")?,
        "1",
        "the restarted container alone"
    );
    assert_eq!(
        docker([
            "exec",
            &ctr,
            "/bin/busybox",
            "cat",
            "/data/hot",
            "/data/archived/cold"
        ])?,
        "hot\ncold"
    );
    docker([
        "exec",
        &ctr,
        "/bin/busybox",
        "sh",
        "-c",
        "echo after >/data/archived/after && sync",
    ])?;
    assert_eq!(
        std::fs::read_to_string(archive.join(&vol).join("after"))?,
        "after\n"
    );
    ensure!(
        !primary.join(&vol).join("data/archived/after").exists(),
        "archived/ write landed on the primary tier"
    );
    assert_eq!(
        plugin_mounts(&id, &vol)?,
        in_plugin,
        "mounts in the plugin after the restart"
    );

    // The second container joins again: shared, not doubled.
    docker(["start", &peer])?;
    assert_eq!(status(&vol, "active_mounts")?, "2");
    assert_eq!(
        docker(["exec", &peer, "/bin/busybox", "cat", "/data/archived/after"])?,
        "after"
    );
    let id = plugin::inspect(plugin, "{{.ID}}")?;
    assert_eq!(
        host_mount_entries(&docker_root, &id, &vol)?,
        mounts_before,
        "host mount table entries as before the restart"
    );
    assert_eq!(
        plugin_mounts(&id, &vol)?,
        in_plugin,
        "mounts in the plugin with both containers"
    );

    // Stopping both containers takes the mounts down; the volume can be removed.
    docker(["stop", &ctr, &peer])?;
    assert_eq!(status(&vol, "active_mounts")?, "0");
    assert_eq!(
        host_mount_entries(&docker_root, &id, &vol)?,
        Vec::<String>::new(),
        "host mounts after the last unmount"
    );
    assert_eq!(
        plugin_mounts(&id, &vol)?,
        Vec::<String>::new(),
        "mounts in the plugin after the last unmount"
    );
    assert_eq!(
        docker(["volume", "inspect", &vol, "--format", "{{.Mountpoint}}"])?,
        ""
    );
    docker(["rm", &ctr, &peer])?;
    docker(["volume", "rm", &vol])?;
    ensure!(
        !primary.join(&vol).exists() && !archive.join(&vol).exists(),
        "volume data left after docker volume rm"
    );
    Ok(())
}
