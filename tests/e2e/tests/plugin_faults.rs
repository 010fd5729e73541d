//! Faults a storage operator meets (issue 11) on the real daemon, each tier
//! "disk" a loop-mounted ext4 file system over the tier source, the managed
//! plugin created from `config.json` + `rootfs/`:
//!  1. the primary disk fails to mount (unmounted while the plugin is
//!     disabled; its mount point is an empty directory on the root disk):
//!     the plugin starts, still lists the volume (no `local` volume takes the
//!     name), shows `primary_tier=missing`, refuses to run it, to create
//!     volumes and to remove it, naming the tier and its source; nothing is
//!     written on the empty mount point; once the disk is back, everything is
//!     where it was;
//!  2. the same with the archive disk;
//!  3. EBUSY on Unmount: a host process keeps its cwd inside the volume's
//!     `archived/` mount when the container exits; the plugin detaches the
//!     mount lazily, drops the reference, counts it; the volume is removable
//!     and no mount is left.
//!
//! Holds the shared Docker lock (it does not restart dockerd).
#![cfg(feature = "docker-e2e")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use tiered_e2e::env::require_tool;
use tiered_e2e::image::busybox_image;
use tiered_e2e::plugin::{self, host_mounts, metric, volume_status as status, Install};
use tiered_e2e::{docker, wait_for, Cmd, CmdError, Defer, Guard, TestEnv};

/// A 64 MiB ext4 image `NAME.img` in `dir` (with its lost+found).
fn make_disk(img: &Path) -> Result<()> {
    std::fs::File::create(img)?.set_len(64 << 20)?;
    Cmd::new("mkfs.ext4").args(["-q", "-F"]).arg(img).run()?;
    Ok(())
}

/// Mounts the disk image over the tier source (`mount -o loop` sets
/// autoclear: the loop device is freed by the umount).
fn plug(img: &Path, dir: &Path) -> Result<()> {
    Cmd::new("mount")
        .args(["-o", "loop"])
        .arg(img)
        .arg(dir)
        .run()?;
    Ok(())
}

fn unplug(dir: &Path) -> Result<()> {
    Cmd::new("umount").arg(dir).run()?;
    Ok(())
}

/// Whether `dir` is a mount point in this mount namespace.
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let dir = dir.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*dir))
}

/// `docker plugin disable -f`, `between`, `docker plugin enable`.
fn restart_plugin(plugin: &str, between: impl FnOnce() -> Result<()>) -> Result<()> {
    docker(["plugin", "disable", "-f", plugin])?;
    between()?;
    docker(["plugin", "enable", plugin])?;
    Ok(())
}

/// `args` fails, and its error names the tier and its source.
fn expect_refused(what: &str, tier: &str, dir: &Path, args: &[&str]) -> Result<()> {
    match docker(args) {
        Ok(out) => bail!("{what} succeeded with the {tier} disk missing: {out}"),
        Err(CmdError::Failed { stdout, stderr, .. }) => {
            let want = format!("{tier} tier at {}", dir.display());
            ensure!(
                stderr.contains(&want) || stdout.contains(&want),
                "{what}: error does not name the {tier} tier and {}: {stderr}",
                dir.display()
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The volume is the plugin's, and no `local` volume took its name.
fn no_local_volume(vol: &str, plugin: &str) -> Result<()> {
    assert_eq!(
        docker(["volume", "inspect", vol, "--format", "{{.Driver}}"])?,
        format!("{plugin}:latest"),
        "driver of {vol} (no local volume took the name)"
    );
    ensure!(
        !docker(["volume", "ls", "-q", "--filter", "driver=local"])?
            .lines()
            .any(|l| l == vol),
        "a local volume {vol} exists"
    );
    Ok(())
}

fn listed(vol: &str, plugin: &str) -> Result<bool> {
    let filter = format!("driver={plugin}:latest");
    Ok(docker(["volume", "ls", "-q", "--filter", &filter])?
        .lines()
        .any(|l| l == vol))
}

fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    out.sort();
    Ok(out)
}

#[test]
fn tier_disks_missing_and_a_busy_unmount() -> Result<()> {
    let t = TestEnv::shared("faults")?;
    for tool in ["mkfs.ext4", "mount", "umount"] {
        require_tool(tool)?;
    }
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    let (pimg, aimg) = (t.path("p.img"), t.path("a.img"));
    let image = format!("{}:e2e", t.name("bb"));
    let (vol, new, ctr) = (t.name("vol"), t.name("new"), t.name("ctr"));
    let vdata = format!("{vol}:/data");

    // Unmounted after the plugin is gone (guards drop in reverse order),
    // before the temp dir is removed; a disk the test unplugged is skipped.
    let _disks = Defer::new({
        let dirs = [primary.clone(), archive.clone()];
        move || {
            for d in dirs.iter().filter(|d| is_mount_point(d)) {
                if let Err(e) = unplug(d) {
                    eprintln!("cleanup: {e:#}; detaching");
                    let _ = Cmd::new("umount").arg("-l").arg(d).run();
                }
            }
        }
    });
    let _image = busybox_image(&image, &t.path("image"), None)?;
    std::fs::create_dir_all(&primary)?;
    std::fs::create_dir_all(&archive)?;
    make_disk(&pimg)?;
    make_disk(&aimg)?;
    plug(&pimg, &primary)?;
    plug(&aimg, &archive)?;
    let plugin_guard = Install::new(&t.name("plugin"), &primary, &archive).install()?;
    let plugin = plugin_guard.name();
    let _vols = [Guard::volume(&vol), Guard::volume(&new)];
    let _ctr = Guard::container(&ctr);
    // Killed first: the busy host process (set in part 3).
    let busy = std::cell::RefCell::new(None::<std::process::Child>);
    let _busy = Defer::new(|| {
        if let Some(mut c) = busy.borrow_mut().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    });

    ensure!(
        primary.join(".tiered-tier").is_file() && archive.join(".tiered-tier").is_file(),
        "first run on two empty disks did not write both identity markers"
    );
    docker(["volume", "create", "-d", plugin, &vol])?;
    docker([
        "run",
        "--rm",
        "-v",
        &vdata,
        &image,
        "sh",
        "-c",
        "echo hot >/data/hot && echo cold >/data/archived/cold",
    ])?;
    assert_eq!(
        (status(&vol, "primary_tier")?, status(&vol, "archive_tier")?),
        ("ok".to_owned(), "ok".to_owned()),
        "tier states"
    );
    assert_eq!(
        metric(
            plugin,
            r#"tiered_plugin_tier_state{tier="primary",state="ok"}"#
        )?,
        1.0,
        "tier state metric"
    );

    // 1. The primary disk fails to mount.
    eprintln!("primary disk not mounted when the plugin starts");
    restart_plugin(plugin, || unplug(&primary))?;
    ensure!(
        listed(&vol, plugin)?,
        "{vol} not listed with the primary disk missing"
    );
    assert_eq!(
        status(&vol, "primary_tier")?,
        "missing",
        "primary tier state in Status"
    );
    assert_eq!(
        metric(
            plugin,
            r#"tiered_plugin_tier_state{tier="primary",state="missing"}"#
        )?,
        1.0,
        "primary missing in metrics"
    );
    expect_refused(
        "docker run",
        "primary",
        &primary,
        &["run", "--rm", "-v", &vdata, &image, "true"],
    )?;
    // What compose does (create the volume it needs): must create nothing,
    // whether or not it is refused.
    let _ = docker(["volume", "create", "-d", plugin, &vol]);
    expect_refused(
        &format!("docker volume create {new}"),
        "primary",
        &primary,
        &["volume", "create", "-d", plugin, &new],
    )?;
    expect_refused(
        "docker volume rm",
        "primary",
        &primary,
        &["volume", "rm", &vol],
    )?;
    no_local_volume(&vol, plugin)?;
    assert_eq!(
        entries(&primary)?,
        Vec::<String>::new(),
        "the empty mount point of the primary disk (nothing written)"
    );
    assert_eq!(
        std::fs::read_to_string(archive.join(&vol).join("cold"))?,
        "cold\n",
        "archive data kept"
    );
    eprintln!("primary disk back");
    restart_plugin(plugin, || plug(&pimg, &primary))?;
    assert_eq!(
        docker([
            "run",
            "--rm",
            "-v",
            &vdata,
            &image,
            "cat",
            "/data/hot",
            "/data/archived/cold"
        ])?,
        "hot\ncold",
        "both tiers after the disk is back"
    );

    // 2. The archive disk fails to mount.
    eprintln!("archive disk not mounted when the plugin starts");
    restart_plugin(plugin, || unplug(&archive))?;
    ensure!(
        listed(&vol, plugin)?,
        "{vol} not listed with the archive disk missing"
    );
    assert_eq!(
        status(&vol, "archive_tier")?,
        "missing",
        "archive tier state in Status"
    );
    expect_refused(
        "docker run",
        "archive",
        &archive,
        &[
            "run",
            "--rm",
            "-v",
            &vdata,
            &image,
            "sh",
            "-c",
            "echo lost >/data/archived/lost",
        ],
    )?;
    expect_refused(
        &format!("docker volume create {new}"),
        "archive",
        &archive,
        &["volume", "create", "-d", plugin, &new],
    )?;
    expect_refused(
        "docker volume rm",
        "archive",
        &archive,
        &["volume", "rm", &vol],
    )?;
    no_local_volume(&vol, plugin)?;
    assert_eq!(
        entries(&archive)?,
        Vec::<String>::new(),
        "the empty mount point of the archive disk (nothing written)"
    );
    eprintln!("archive disk back");
    restart_plugin(plugin, || plug(&aimg, &archive))?;
    assert_eq!(
        docker([
            "run",
            "--rm",
            "-v",
            &vdata,
            &image,
            "cat",
            "/data/archived/cold"
        ])?,
        "cold",
        "archive after the disk is back"
    );

    // 3. EBUSY on Unmount.
    eprintln!("a host process keeps its cwd in archived/ when the container exits");
    docker([
        "run", "-d", "--name", &ctr, "-v", &vdata, &image, "sleep", "300",
    ])?;
    assert_eq!(
        status(&vol, "active_mounts")?,
        "1",
        "active mounts with the container"
    );
    let docker_root = docker(["info", "--format", "{{.DockerRootDir}}"])?;
    let id = plugin::inspect(plugin, "{{.ID}}")?;
    let pm = PathBuf::from(format!(
        "{docker_root}/plugins/{id}/propagated-mount/{vol}/archived"
    ));
    let child = Command::new("sleep")
        .arg("300")
        .current_dir(&pm)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("sleep in {}", pm.display()))?;
    let cwd = PathBuf::from(format!("/proc/{}/cwd", child.id()));
    *busy.borrow_mut() = Some(child);
    wait_for(
        Duration::from_secs(10),
        "the busy process in archived/",
        || std::fs::read_link(&cwd).is_ok_and(|p| p == pm),
    )?;
    let lazy = "tiered_plugin_lazy_unmounts_total";
    let lazy_before = metric(plugin, lazy)?;
    docker(["rm", "-f", &ctr])?;
    assert_eq!(
        status(&vol, "active_mounts")?,
        "0",
        "active mounts after the container left (busy mount)"
    );
    assert_eq!(
        metric(plugin, lazy)?,
        lazy_before + 1.0,
        "lazy unmounts counted"
    );
    assert_eq!(
        host_mounts(plugin, &vol)?,
        Vec::<String>::new(),
        "host mounts of {vol} after the lazy detach"
    );
    docker(["volume", "rm", &vol]).context("docker volume rm after a busy unmount")?;
    if let Some(mut c) = busy.borrow_mut().take() {
        c.kill()?;
        c.wait()?;
    }
    ensure!(
        !primary.join(&vol).exists() && !archive.join(&vol).exists(),
        "volume data left after docker volume rm"
    );
    Ok(())
}
