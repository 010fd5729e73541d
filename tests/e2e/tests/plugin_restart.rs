//! Restarting the managed plugin while a container holds one of its volumes,
//! and moving a tier with `docker plugin set`: what the daemon really does and
//! that the plugin keeps its references straight through it.
//!  - `docker plugin disable` is refused while volumes exist; `disable -f`
//!    works and the daemon unmounts everything under the propagated mount.
//!  - on `enable` the plugin finds the held reference in its metadata and
//!    mounts the volume again (once); the container's later Unmount drops it
//!    and nothing stays mounted.
//!  - `docker plugin set archive.source=...` works only while disabled; after
//!    it, archived/ writes land in the new source.
#![cfg(feature = "docker-e2e")]

use anyhow::{ensure, Result};
use tiered_e2e::image::busybox_image;
use tiered_e2e::plugin::{host_mounts, volume_status as status, Install};
use tiered_e2e::{docker, docker_ok, Cmd, Guard, TestEnv};

#[test]
fn plugin_restart_keeps_references_and_tier_moves() -> Result<()> {
    let t = TestEnv::shared("restart")?;
    let (primary, archive, archive2) = (t.path("primary"), t.path("archive"), t.path("archive2"));
    let image = format!("{}:e2e", t.name("bb"));
    let (vol, ctr) = (t.name("vol"), t.name("ctr"));

    let _image = busybox_image(&image, &t.path("image"), None)?;
    let plugin_guard = Install::new(&t.name("plugin"), &primary, &archive).install()?;
    let plugin = plugin_guard.name();
    let _vol = Guard::volume(&vol);
    let _ctr = Guard::container(&ctr);
    docker(["volume", "create", "-d", plugin, &vol])?;

    // A container holds the volume.
    let vdata = format!("{vol}:/data");
    docker([
        "run", "-d", "--name", &ctr, "-v", &vdata, &image, "sleep", "300",
    ])?;
    docker([
        "exec",
        &ctr,
        "/bin/busybox",
        "sh",
        "-c",
        "echo before >/data/archived/before",
    ])?;
    assert_eq!(status(&vol, "active_mounts")?, "1");
    ensure!(
        !host_mounts(plugin, &vol)?.is_empty(),
        "no host mount for {vol}"
    );

    // disable is refused while volumes exist; disable -f stops the plugin and
    // the daemon unmounts the propagated mount.
    ensure!(
        !docker_ok(["plugin", "disable", plugin]),
        "disable without -f succeeded with volumes"
    );
    docker(["plugin", "disable", "-f", plugin])?;
    assert_eq!(
        host_mounts(plugin, &vol)?,
        Vec::<String>::new(),
        "host mounts after disable -f"
    );

    // enable: the held reference is recognised and mounted again, once.
    docker(["plugin", "enable", plugin])?;
    assert_eq!(
        status(&vol, "active_mounts")?,
        "1",
        "active mounts after the restart"
    );
    assert_eq!(
        host_mounts(plugin, &vol)?.len(),
        2,
        "volume root and archived/ mounted again"
    );
    assert_eq!(
        std::fs::read_to_string(archive.join(&vol).join("before"))?,
        "before\n"
    );

    // The container's removal drops the last reference: nothing leaks.
    docker(["rm", "-f", &ctr])?;
    assert_eq!(status(&vol, "active_mounts")?, "0");
    assert_eq!(
        host_mounts(plugin, &vol)?,
        Vec::<String>::new(),
        "host mounts after the last unmount"
    );

    // Moving the archive tier: set only while disabled.
    let set_archive2 = format!("archive.source={}", archive2.display());
    ensure!(
        !docker_ok(["plugin", "set", plugin, &set_archive2]),
        "set on an enabled plugin succeeded"
    );
    docker(["plugin", "disable", "-f", plugin])?;
    Cmd::new("cp")
        .arg("-a")
        .arg(&archive)
        .arg(&archive2)
        .run()?;
    docker(["plugin", "set", plugin, &set_archive2])?;
    docker(["plugin", "enable", plugin])?;
    docker([
        "run",
        "--rm",
        "-v",
        &vdata,
        &image,
        "sh",
        "-c",
        "cat /data/archived/before && echo after >/data/archived/after",
    ])?;
    assert_eq!(
        std::fs::read_to_string(archive2.join(&vol).join("after"))?,
        "after\n"
    );
    ensure!(
        !archive.join(&vol).join("after").exists(),
        "write went to the old archive source"
    );
    docker(["volume", "rm", &vol])?;
    ensure!(
        !archive2.join(&vol).exists() && !primary.join(&vol).exists(),
        "volume data left after docker volume rm"
    );
    Ok(())
}
