//! Quotas on real file systems: the tiers are loop-mounted btrfs images
//! (quotas enabled) made by the test, the plugin serves the socket, and a
//! writer gets `EDQUOT` past a volume's size while another volume on the
//! same tier is unaffected; create/remove cycles leave no subvolume and no
//! qgroup (`btrfs qgroup show`). The same scenario runs on XFS and ext4
//! with `prjquota` where the kernel supports it; where it does not, the
//! test prints why it skipped that part.
//!
//! Needs root, loop devices, `mkfs.btrfs` and `btrfs` (btrfs-progs).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{sample, Plugin};
use serde_json::{json, Value};
use tiered_plugin::quota::{QuotaSys, RealQuotaSys, PROJECT_ID_FIRST};

const MIB: u64 = 1 << 20;

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Makes a `size_mib` image of `fs` beside `dir` and loop-mounts it on
/// `dir` with `opts`.
fn mount_image(fs: &str, dir: &Path, size_mib: u64, opts: &str) -> Result<(), String> {
    let img = dir.with_extension(format!("{fs}.img"));
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(size_mib * MIB))
        .map_err(|e| e.to_string())?;
    let img_s = img.to_str().unwrap();
    match fs {
        "btrfs" => run("mkfs.btrfs", &["-q", "-f", img_s])?,
        "xfs" => run("mkfs.xfs", &["-q", "-f", img_s])?,
        "ext4" => run("mkfs.ext4", &["-q", "-F", "-O", "quota,project", img_s])?,
        other => return Err(format!("unknown fs {other}")),
    };
    run(
        "mount",
        &["-o", &format!("loop,{opts}"), img_s, dir.to_str().unwrap()],
    )?;
    Ok(())
}

/// Writes up to `max_mib` MiB of zeros into `path`, syncing; returns the
/// errno of the first failure.
fn fill(path: &Path, max_mib: u64) -> Option<i32> {
    let mut f = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => return e.raw_os_error(),
    };
    let chunk = vec![0u8; MIB as usize];
    for _ in 0..max_mib {
        if let Err(e) = f.write_all(&chunk) {
            return e.raw_os_error();
        }
    }
    f.sync_all().err().and_then(|e| e.raw_os_error())
}

fn syncfs_all() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    nix::unistd::sync();
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a byte count: {v}"))
}

/// The qgroups of the btrfs at `dir` other than the top level's `0/5`.
fn qgroups(dir: &Path) -> Vec<String> {
    run("btrfs", &["qgroup", "show", "--raw", dir.to_str().unwrap()])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with("0/") && *id != "0/5")
        .map(str::to_owned)
        .collect()
}

fn subvolumes(dir: &Path) -> String {
    run("btrfs", &["subvolume", "list", dir.to_str().unwrap()]).unwrap()
}

/// The scenario on started plugin `p` whose tiers enforce quotas with
/// `backend`: sizes enforced with EDQUOT per volume and tier, Status and
/// metrics show them, Remove leaves nothing behind.
async fn scenario(p: &Plugin, backend: &str) {
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "q1", "Opts": {"size": "20M", "archive-size": "30M"}}),
    )
    .await;
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "q2", "Opts": {"size": "20M"}}),
    )
    .await;
    p.ok("/VolumeDriver.Create", json!({"Name": "plain"})).await;
    let mut mps = Vec::new();
    for name in ["q1", "q2", "plain"] {
        let v = p
            .ok("/VolumeDriver.Mount", json!({"Name": name, "ID": "t"}))
            .await;
        mps.push(std::path::PathBuf::from(v["Mountpoint"].as_str().unwrap()));
    }
    // Past the size: EDQUOT, on each tier of q1.
    assert_eq!(
        fill(&mps[0].join("big"), 40),
        Some(libc::EDQUOT),
        "{backend}: primary tier of q1"
    );
    assert_eq!(
        fill(&mps[0].join("archived/big"), 50),
        Some(libc::EDQUOT),
        "{backend}: archive tier of q1"
    );
    // Another volume with a size on the same tier, and one without.
    assert_eq!(fill(&mps[1].join("half"), 10), None, "{backend}: q2");
    assert_eq!(fill(&mps[2].join("big"), 25), None, "{backend}: plain");
    syncfs_all();

    let st = p.ok("/VolumeDriver.Get", json!({"Name": "q1"})).await["Volume"]["Status"].clone();
    assert_eq!(st["primary_quota"], json!(backend), "{st}");
    assert_eq!(u64_of(&st["primary_quota_limit_bytes"]), 20 * MIB);
    assert_eq!(u64_of(&st["archive_quota_limit_bytes"]), 30 * MIB);
    let used = u64_of(&st["primary_quota_used_bytes"]);
    assert!(
        (15 * MIB..=21 * MIB).contains(&used),
        "{backend}: used {used}"
    );
    let used = u64_of(&st["archive_quota_used_bytes"]);
    assert!(
        (25 * MIB..=31 * MIB).contains(&used),
        "{backend}: used {used}"
    );
    let st2 = p.ok("/VolumeDriver.Get", json!({"Name": "q2"})).await["Volume"]["Status"].clone();
    let used = u64_of(&st2["primary_quota_used_bytes"]);
    assert!(
        (10 * MIB..=11 * MIB).contains(&used),
        "{backend}: q2 used {used}"
    );
    assert_eq!(st2["archive_quota_limit_bytes"], Value::Null);

    let text = p.metrics_text().await;
    assert_eq!(
        sample(
            &text,
            "tiered_plugin_volume_quota_limit_bytes",
            &[("volume", "q1"), ("tier", "archive")]
        ),
        Some((30 * MIB) as f64)
    );
    assert!(
        sample(
            &text,
            "tiered_plugin_volume_quota_used_bytes",
            &[("volume", "q2"), ("tier", "primary")]
        )
        .is_some_and(|v| v >= (10 * MIB) as f64),
        "{text}"
    );

    for name in ["q1", "q2", "plain"] {
        p.ok("/VolumeDriver.Unmount", json!({"Name": name, "ID": "t"}))
            .await;
        p.ok("/VolumeDriver.Remove", json!({"Name": name})).await;
    }
}

#[tokio::test]
async fn btrfs_tiers_enforce_sizes_and_leave_no_stale_qgroup() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP btrfs quota test: needs root (loop mounts)");
        return;
    }
    if let Err(e) = run("mkfs.btrfs", &["--version"]) {
        eprintln!("SKIP btrfs quota test: btrfs-progs missing ({e}); scripts/deps.sh installs it");
        return;
    }
    let mut p = Plugin::new();
    for dir in [&p.primary, &p.archive] {
        mount_image("btrfs", dir, 256, "rw").unwrap();
        run("btrfs", &["quota", "enable", dir.to_str().unwrap()]).unwrap();
    }
    p.start().await;
    scenario(&p, "btrfs").await;
    for dir in [&p.primary, &p.archive] {
        assert_eq!(qgroups(dir), Vec::<String>::new(), "{dir:?}");
    }
    assert_eq!(
        std::fs::read_dir(p.primary.join(".tiered/trash"))
            .unwrap()
            .count(),
        0,
        "every removal finished"
    );
    // Create/remove cycles: no subvolume, no qgroup left on either tier.
    for _ in 0..3 {
        p.ok(
            "/VolumeDriver.Create",
            json!({"Name": "cycle", "Opts": {"size": "8M", "archive-size": "8M"}}),
        )
        .await;
        assert_eq!(qgroups(&p.primary).len(), 1);
        assert_eq!(qgroups(&p.archive).len(), 1);
        p.ok("/VolumeDriver.Remove", json!({"Name": "cycle"})).await;
    }
    for dir in [&p.primary, &p.archive] {
        assert_eq!(qgroups(dir), Vec::<String>::new(), "{dir:?}");
        assert_eq!(subvolumes(dir), "", "{dir:?}");
    }

    // keep-archive: the archive subvolume stays with its data, its limit
    // lifted; a later volume of that name with archive-size limits it again.
    let keep = json!({"Name": "keep", "Opts": {"archive-size": "8M", "keep-archive": "true"}});
    p.ok("/VolumeDriver.Create", keep.clone()).await;
    std::fs::write(p.archive.join("keep/kept"), b"x").unwrap();
    p.ok("/VolumeDriver.Remove", json!({"Name": "keep"})).await;
    assert_eq!(
        qgroups(&p.archive).len(),
        1,
        "kept archive keeps its qgroup"
    );
    assert!(max_referenced(&p.archive).iter().all(|m| m == "none"));
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "keep", "Opts": {"archive-size": "8M"}}),
    )
    .await;
    assert_eq!(max_referenced(&p.archive), vec![(8 * MIB).to_string()]);
    assert_eq!(std::fs::read(p.archive.join("keep/kept")).unwrap(), b"x");
    p.ok("/VolumeDriver.Remove", json!({"Name": "keep"})).await;
    assert_eq!(qgroups(&p.archive), Vec::<String>::new());
    assert_eq!(subvolumes(&p.archive), "");
    p.stop().await;
}

/// `max_rfer` of the qgroups other than `0/5`.
fn max_referenced(dir: &Path) -> Vec<String> {
    run(
        "btrfs",
        &["qgroup", "show", "-r", "--raw", dir.to_str().unwrap()],
    )
    .unwrap()
    .lines()
    .filter(|l| l.starts_with("0/") && !l.starts_with("0/5 "))
    .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
    .collect()
}

#[tokio::test]
async fn a_size_on_btrfs_without_quotas_is_refused_unless_best_effort() {
    if !nix::unistd::geteuid().is_root() || run("mkfs.btrfs", &["--version"]).is_err() {
        eprintln!("SKIP: needs root and btrfs-progs");
        return;
    }
    let mut p = Plugin::new();
    mount_image("btrfs", &p.primary, 256, "rw").unwrap();
    p.start().await;
    let msg = p
        .err(
            "/VolumeDriver.Create",
            r#"{"Name":"v","Opts":{"size":"20M"}}"#,
            "quota",
        )
        .await;
    eprintln!("refusal: {msg}");
    assert_eq!(subvolumes(&p.primary), "");
    assert!(!p.primary.join("v").exists());
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "v", "Opts": {"size": "20M", "quota": "best-effort"}}),
    )
    .await;
    let st = p.ok("/VolumeDriver.Get", json!({"Name": "v"})).await["Volume"]["Status"].clone();
    assert_eq!(st["primary_quota"], json!("none"));
    assert_eq!(st["primary_quota_limit_bytes"], Value::Null);
    p.ok("/VolumeDriver.Remove", json!({"Name": "v"})).await;
    p.stop().await;
}

/// XFS and ext4 project quotas for real, where the kernel has them.
#[tokio::test]
async fn project_quotas_on_xfs_and_ext4_where_the_kernel_allows() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP project quota test: needs root (loop mounts)");
        return;
    }
    for fs in ["xfs", "ext4"] {
        let mut p = Plugin::new();
        let mounted = mount_image(fs, &p.primary, 300, "prjquota")
            .and_then(|()| mount_image(fs, &p.archive, 300, "prjquota"));
        if let Err(e) = mounted {
            eprintln!(
                "SKIP {fs} project quotas: cannot make or mount a {fs} file system with prjquota \
                 on this machine (a kernel without CONFIG_QFMT_V2/CONFIG_XFS_QUOTA, or no mkfs.{fs}): {e}"
            );
            continue;
        }
        match RealQuotaSys.project_quota_enabled(&p.primary) {
            Ok(true) => {}
            other => {
                eprintln!("SKIP {fs} project quotas: mounted with prjquota but quotactl_fd says {other:?}");
                continue;
            }
        }
        p.start().await;
        scenario(&p, "project").await;
        // No project ID of the plugin keeps a limit or usage.
        for root in [&p.primary, &p.archive] {
            for id in PROJECT_ID_FIRST..PROJECT_ID_FIRST + 8 {
                let q = RealQuotaSys.project_quota_get(root, id).unwrap();
                assert_eq!(
                    (q.limit_bytes, q.used_bytes),
                    (0, 0),
                    "{fs} {root:?} id {id}"
                );
            }
        }
        p.stop().await;
    }
}
