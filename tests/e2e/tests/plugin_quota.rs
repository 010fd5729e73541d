//! Per-tier quotas through the managed plugin on the real daemon: the tier
//! sources are loop-mounted btrfs images with quotas enabled, made by the
//! test. `docker volume create -o size=20M -o archive-size=30M`; a container
//! writing past either size gets "Disk quota exceeded" (EDQUOT) while a
//! neighbour volume on the same tier is unaffected; `docker volume inspect`
//! and the metrics show the limits and usage; removal leaves no subvolume
//! and no qgroup. A second plugin on plain directories refuses a size
//! unless `quota=best-effort`.
#![cfg(feature = "docker-e2e")]

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tiered_e2e::cmd::Cmd;
use tiered_e2e::env::{self, require_tool};
use tiered_e2e::http::{metric, scrape};
use tiered_e2e::image::busybox_image;
use tiered_e2e::plugin::{volume_status as status, Install};
use tiered_e2e::{docker, wait_for_value, Defer, Guard, TestEnv};

const MIB: f64 = 1048576.0;

/// A 256 MiB btrfs image beside `dir`, loop-mounted on `dir`, quotas on.
fn btrfs_tier(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let img = dir.with_extension("img");
    std::fs::File::create(&img)?.set_len(256 << 20)?;
    Cmd::new("mkfs.btrfs").args(["-q", "-f"]).arg(&img).run()?;
    Cmd::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(dir)
        .run()?;
    Cmd::new("btrfs").args(["quota", "enable"]).arg(dir).run()?;
    Ok(())
}

/// Qgroups of the btrfs at `dir` other than the top level's `0/5`.
fn qgroups(dir: &Path) -> Result<Vec<String>> {
    Ok(Cmd::new("btrfs")
        .args(["qgroup", "show", "--raw"])
        .arg(dir)
        .run()?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with("0/") && *id != "0/5")
        .map(str::to_owned)
        .collect())
}

fn subvolumes(dir: &Path) -> Result<String> {
    Ok(Cmd::new("btrfs")
        .args(["subvolume", "list"])
        .arg(dir)
        .run()?)
}

/// The volume's `Status` as JSON (nulls stay nulls).
fn status_json(volume: &str) -> Result<serde_json::Value> {
    let out = docker(["volume", "inspect", volume, "--format", "{{json .Status}}"])?;
    serde_json::from_str(&out).with_context(|| format!("Status of {volume}: {out}"))
}

/// A Status number.
fn status_f64(volume: &str, key: &str) -> Result<f64> {
    let st = status_json(volume)?;
    st[key]
        .as_f64()
        .with_context(|| format!("{key} of {volume} in {st}"))
}

#[test]
fn sizes_are_enforced_by_btrfs_qgroups_on_the_real_daemon() -> Result<()> {
    let t = TestEnv::shared("quota")?;
    require_tool("mkfs.btrfs")?;
    require_tool("btrfs")?;
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    let image = format!("{}:e2e", t.name("bb"));
    let (vq, vn, vp) = (t.name("vq"), t.name("vn"), t.name("vp"));

    // Unmounted after the plugin is gone (guards drop in reverse order),
    // before the temp dir is removed.
    let _tiers = Defer::new({
        let dirs = [primary.clone(), archive.clone()];
        move || {
            for d in dirs {
                if let Err(e) = Cmd::new("umount").arg(&d).run() {
                    eprintln!("cleanup: {e}; detaching");
                    let _ = Cmd::new("umount").arg("-l").arg(&d).run();
                }
            }
        }
    });
    btrfs_tier(&primary)?;
    btrfs_tier(&archive)?;
    let _image = busybox_image(&image, &t.path("image"), None)?;
    let metrics_addr = format!("127.0.0.1:{}", env::free_port());
    let _plugin = Install::new(&t.name("plugin"), &primary, &archive)
        .metrics_listen(&metrics_addr)
        .install()?;
    let plugin = _plugin.name().to_owned();
    let _volumes = [Guard::volume(&vq), Guard::volume(&vn), Guard::volume(&vp)];

    docker([
        "volume",
        "create",
        "-d",
        &plugin,
        "-o",
        "size=20M",
        "-o",
        "archive-size=30M",
        &vq,
    ])?;
    docker(["volume", "create", "-d", &plugin, "-o", "size=20M", &vn])?;
    docker(["volume", "create", "-d", &plugin, &vp])?;
    assert_eq!(qgroups(&primary)?.len(), 2, "one qgroup per sized volume");
    assert_eq!(qgroups(&archive)?.len(), 1);

    let run_sh = |vol: &str, script: &str| {
        Cmd::new("docker")
            .args([
                "run",
                "--rm",
                "-v",
                &format!("{vol}:/d"),
                &image,
                "sh",
                "-c",
            ])
            .arg(script)
            .output()
    };
    // Past the size of each tier: EDQUOT.
    for (path, mib) in [("/d/big", 40), ("/d/archived/big", 50)] {
        let out = run_sh(
            &vq,
            &format!("dd if=/dev/zero of={path} bs=1M count={mib} && sync"),
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains("Disk quota exceeded"),
            "writing {mib} MiB to {path}: {:?} {stderr}",
            out.status
        );
    }
    // A neighbour with a size, and one without, on the same tiers.
    for (vol, mib) in [(&vn, 15), (&vp, 30)] {
        let out = run_sh(
            vol,
            &format!("dd if=/dev/zero of=/d/f bs=1M count={mib} && sync"),
        )?;
        ensure!(
            out.status.success(),
            "{vol}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    assert_eq!(status(&vq, "primary_quota")?, "btrfs");
    assert_eq!(status_f64(&vq, "primary_quota_limit_bytes")?, 20.0 * MIB);
    assert_eq!(status_f64(&vq, "archive_quota_limit_bytes")?, 30.0 * MIB);
    let used = status_f64(&vq, "primary_quota_used_bytes")?;
    assert!(
        (15.0 * MIB..=21.0 * MIB).contains(&used),
        "primary used {used}"
    );
    let used = status_f64(&vq, "archive_quota_used_bytes")?;
    assert!(
        (25.0 * MIB..=31.0 * MIB).contains(&used),
        "archive used {used}"
    );
    let used = status_f64(&vn, "primary_quota_used_bytes")?;
    assert!(
        (15.0 * MIB..=16.0 * MIB).contains(&used),
        "neighbour used {used}"
    );
    assert_eq!(status_json(&vp)?["primary_quota"], serde_json::Value::Null);

    let text = wait_for_value(Duration::from_secs(10), "the plugin's metrics", || {
        scrape(&metrics_addr).ok()
    })?;
    let series = |m: &str, v: &str, tier: &str| {
        format!("tiered_plugin_volume_quota_{m}{{volume=\"{v}\",tier=\"{tier}\"}}")
    };
    assert_eq!(
        metric(&text, &series("limit_bytes", &vq, "archive")),
        Some(30.0 * MIB)
    );
    assert!(
        metric(&text, &series("used_bytes", &vn, "primary")).is_some_and(|u| u >= 15.0 * MIB),
        "{text}"
    );

    // Removal deletes the subvolumes and their qgroups; cycles leave none.
    docker(["volume", "rm", &vq, &vn, &vp])?;
    for _ in 0..3 {
        docker([
            "volume",
            "create",
            "-d",
            &plugin,
            "-o",
            "size=8M",
            "-o",
            "archive-size=8M",
            &vq,
        ])?;
        docker(["volume", "rm", &vq])?;
    }
    for dir in [&primary, &archive] {
        assert_eq!(
            qgroups(dir)?,
            Vec::<String>::new(),
            "stale qgroups on {dir:?}"
        );
        assert_eq!(subvolumes(dir)?, "", "subvolumes left on {dir:?}");
    }
    Ok(())
}

#[test]
fn a_size_on_plain_directories_is_refused_unless_best_effort() -> Result<()> {
    let t = TestEnv::shared("quota-refused")?;
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    let vol = t.name("v");
    let _plugin = Install::new(&t.name("plugin"), &primary, &archive).install()?;
    let plugin = _plugin.name().to_owned();
    let _vol = Guard::volume(&vol);
    // The temp dir is not a btrfs, nor an XFS/ext4 with prjquota.
    let err = docker(["volume", "create", "-d", &plugin, "-o", "size=20M", &vol])
        .expect_err("a size the tier cannot enforce was accepted");
    assert!(err.stderr().contains("quota=best-effort"), "{err}");
    ensure!(
        !primary.join(&vol).exists() && !archive.join(&vol).exists(),
        "a refused volume left directories"
    );
    docker([
        "volume",
        "create",
        "-d",
        &plugin,
        "-o",
        "size=20M",
        "-o",
        "quota=best-effort",
        &vol,
    ])?;
    assert_eq!(status(&vol, "primary_quota")?, "none");
    assert_eq!(
        status_json(&vol)?["primary_quota_limit_bytes"],
        serde_json::Value::Null
    );
    docker(["volume", "rm", &vol])?;
    Ok(())
}
