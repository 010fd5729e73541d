//! The deployment of deploy/compose.yaml on a real daemon: the plugin from the
//! local registry on temp tiers, the engine and the snapshotter containers
//! (FROM-scratch images, non-root) on one tiered volume, a small rotation size.
//!   1. Writes through the Redis protocol (acknowledgements recorded), the
//!      engine's health check passes; snapshots appear; the archive tier's
//!      host dir receives the old logs and snapshots while the primary keeps
//!      the newest snapshot and the open log; a backup of the archive alone
//!      through a read-only `archive-of` volume.
//!   2. `docker kill` of the engine in the middle of a write load, start
//!      again: every acknowledged write is there.
//!   3. `docker restart` of both containers in the middle of a write load:
//!      every acknowledged write (of all loads) is there, and the snapshotter
//!      carries on. Stopped, `tiered-engine verify` passes on a read-only
//!      mount of the volume.
#![cfg(feature = "docker-e2e")]

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tiered_e2e::http::scrape;
use tiered_e2e::load::{self, Acked};
use tiered_e2e::system::{count, files, System, KEEP_SNAPSHOTS};
use tiered_e2e::{docker, docker_ok, wait_for, Cmd, Guard, TestEnv};

/// The numbers in a file name made of `prefix`, 20-digit numbers joined by
/// `-`, and `suffix`; `None` if it is not such a name.
fn seqs(name: &str, prefix: &str, suffix: &str, n: usize) -> Option<Vec<u64>> {
    let mid = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let parts: Vec<&str> = mid.split('-').collect();
    (parts.len() == n
        && parts
            .iter()
            .all(|p| p.len() == 20 && p.bytes().all(|b| b.is_ascii_digit())))
    .then(|| parts.iter().map(|p| p.parse().unwrap()).collect())
}

fn names(dir: &Path) -> Vec<String> {
    files(dir, "", "")
}

/// What each tier holds once the snapshotter has caught up.
fn check_tiers(data: &Path, archived: &Path) -> Result<()> {
    let top = names(data);
    let open: Vec<_> = top
        .iter()
        .filter(|n| seqs(n, "cmdlog-", ".open", 1).is_some())
        .collect();
    let primary_snaps: Vec<u64> = top
        .iter()
        .filter_map(|n| seqs(n, "snapshot-", ".snap", 1))
        .map(|s| s[0])
        .collect();
    let archived_snaps: Vec<u64> = names(&archived.join("snapshots"))
        .iter()
        .filter_map(|n| seqs(n, "snapshot-", ".snap", 1))
        .map(|s| s[0])
        .collect();
    let archived_logs: Vec<Vec<u64>> = names(&archived.join("logs"))
        .iter()
        .filter_map(|n| seqs(n, "cmdlog-", ".log", 2))
        .collect();
    ensure!(
        !open.is_empty(),
        "no open command log on the primary tier: {top:?}"
    );
    let newest = *primary_snaps
        .iter()
        .max()
        .context("no snapshot on the primary tier")?;
    ensure!(
        archived_snaps.iter().all(|&s| s < newest),
        "an archived snapshot is newer than the primary's"
    );
    ensure!(
        archived_logs.iter().all(|l| l[1] <= newest),
        "an archived log is not covered by the newest snapshot"
    );
    let both: Vec<_> = names(&archived.join("logs"))
        .into_iter()
        .chain(names(&archived.join("snapshots")))
        .filter(|n| top.contains(n))
        .collect();
    ensure!(
        both.is_empty(),
        "files both archived and on the primary tier: {both:?}"
    );
    eprintln!(
        "primary: {} open log, snapshots {primary_snaps:?}; archive: {} logs, {} snapshots",
        open.len(),
        archived_logs.len(),
        archived_snaps.len()
    );
    Ok(())
}

#[test]
fn compose_deployment_kill_and_restart() -> Result<()> {
    let t = TestEnv::shared("sys")?;
    let mut sys = System::start(&t)?;
    sys.compose_up()?;
    let engine = sys.container("engine")?;
    let snapshotter = sys.container("snapshotter")?;
    sys.wait_engine(60)?;
    assert_eq!(
        docker(["inspect", "-f", "{{.Config.User}}", &engine])?,
        "1000:1000"
    );
    let port = sys.engine_port;

    // 1. writes, snapshots, archive.
    let load1 = load::write(port, "load1", Duration::from_secs(8), 4);
    load::check(port, &[&load1])?;
    let redis_cli = |args: &[&str]| {
        Cmd::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .run()
    };
    assert_eq!(redis_cli(&["set", "via-redis-cli", "yes"])?, "OK");
    assert_eq!(redis_cli(&["get", "via-redis-cli"])?, "yes");

    // The health check (`tiered-engine health`, the image has no shell) passes
    // on the running engine, and fails where no engine answers.
    wait_for(
        Duration::from_secs(30),
        "the engine container healthy",
        || {
            docker(["inspect", "-f", "{{.State.Health.Status}}", &engine])
                .is_ok_and(|s| s == "healthy")
        },
    )?;
    let health = t.name("health");
    let _health = Guard::container(&health);
    ensure!(
        !docker_ok([
            "run",
            "--rm",
            "--name",
            &health,
            &sys.engine_image,
            "health",
            "--addr",
            "127.0.0.1:9"
        ]),
        "tiered-engine health passed with no engine to ask"
    );

    let (data, archived) = (sys.data.clone(), sys.archived.clone());
    let settled = || {
        count(&archived.join("logs"), "cmdlog-", ".log") >= 2
            && count(&archived.join("snapshots"), "snapshot-", ".snap") >= 1
            && (1..=KEEP_SNAPSHOTS).contains(&count(&data, "snapshot-", ".snap"))
            && count(&data, "cmdlog-", ".log") <= 2
    };
    wait_for(
        Duration::from_secs(60),
        "snapshots and archive to settle",
        settled,
    )
    .with_context(|| {
        format!(
            "primary {:?}; archive logs {}, snapshots {:?}",
            names(&data),
            names(&archived.join("logs")).len(),
            names(&archived.join("snapshots"))
        )
    })?;
    check_tiers(&data, &archived)?;
    for p in [sys.engine_metrics_port, sys.snapshotter_metrics_port] {
        let m = scrape(&format!("127.0.0.1:{p}"))
            .with_context(|| format!("no metrics on 127.0.0.1:{p}"))?;
        ensure!(
            m.lines().any(|l| l.starts_with("tiered_")),
            "no tiered_ metrics on 127.0.0.1:{p}"
        );
    }

    // Backup of the archive alone, live: an archive-of volume mounted read-only.
    let arch_vol = t.name("archive");
    let _arch_vol = Guard::volume(&arch_vol);
    docker([
        "volume",
        "create",
        "-d",
        &sys.plugin,
        "-o",
        &format!("archive-of={}", sys.volume),
        &arch_vol,
    ])?;
    let busybox = sys.busybox()?;
    let backup = t.path("backup");
    std::fs::create_dir_all(&backup)?;
    nix::unistd::chown(&backup, Some(1000.into()), Some(1000.into()))?;
    let (ro, bk) = (t.name("ro"), t.name("backup"));
    let _ctrs = [Guard::container(&ro), Guard::container(&bk)];
    let varch = format!("{arch_vol}:/archive:ro");
    ensure!(
        !docker_ok([
            "run",
            "--rm",
            "--name",
            &ro,
            "-v",
            &varch,
            &busybox,
            "touch",
            "/archive/x"
        ]),
        "the archive-of volume mounted :ro is writable"
    );
    docker([
        "run",
        "--rm",
        "--name",
        &bk,
        "-v",
        &varch,
        "-v",
        &format!("{}:/backup", backup.display()),
        &busybox,
        "tar",
        "-C",
        "/archive",
        "-cf",
        "/backup/archive.tar",
        "logs",
        "snapshots",
    ])?;
    let restored = t.path("restored");
    std::fs::create_dir_all(&restored)?;
    Cmd::new("tar")
        .arg("-C")
        .arg(&restored)
        .arg("-xf")
        .arg(backup.join("archive.tar"))
        .run()?;
    let backed_up: Vec<String> = Cmd::new("find")
        .arg(".")
        .args(["-type", "f", "!", "-name", "*.tmp"])
        .dir(&restored)
        .run()?
        .lines()
        .map(str::to_owned)
        .collect();
    ensure!(
        backed_up.len() >= 3,
        "backup holds only {} files",
        backed_up.len()
    );
    // Archived files never change: each one backed up is identical in the archive.
    for f in &backed_up {
        ensure!(
            std::fs::read(restored.join(f))? == std::fs::read(archived.join(f))?,
            "backup differs from the archive tier: {f}"
        );
    }
    eprintln!(
        "archive backup through an archive-of volume: {} files",
        backed_up.len()
    );

    // 2. docker kill of the engine in the middle of a write load.
    let running = load::spawn(port, "load2", Duration::from_secs(30), 4);
    std::thread::sleep(Duration::from_secs(2));
    docker(["kill", &engine])?;
    let load2: Acked = running.join().expect("load thread");
    ensure!(
        load2.errors.iter().all(|e| !e.is_empty()) && load2.total() > 0,
        "the kill did not land in the middle of the load: {load2:?}"
    );
    // The restart policy may already be bringing it back; start it either way.
    let _ = docker(["start", &engine]);
    sys.wait_engine(60)?;
    load::check(port, &[&load1, &load2])?;

    // 3. docker restart of both containers in the middle of a write load.
    let running = load::spawn(port, "load3", Duration::from_secs(30), 4);
    std::thread::sleep(Duration::from_secs(2));
    docker(["restart", "-t", "30", &engine, &snapshotter])?;
    let load3 = running.join().expect("load thread");
    sys.wait_engine(60)?;
    load::check(port, &[&load1, &load2, &load3])?;
    assert_eq!(
        docker(["inspect", "-f", "{{.State.Running}}", &snapshotter])?,
        "true"
    );
    // The snapshotter goes on archiving after its restart.
    let before = count(&archived.join("logs"), "cmdlog-", ".log");
    let load4 = load::write(port, "load4", Duration::from_secs(3), 4);
    wait_for(
        Duration::from_secs(60),
        "a log archived after the restart",
        || count(&archived.join("logs"), "cmdlog-", ".log") > before,
    )?;
    load::check(port, &[&load1, &load2, &load3, &load4])?;

    // Stopped: every snapshot, record and checksum on both tiers verifies,
    // read through a read-only mount of the volume by the engine image.
    sys.compose(["stop", "-t", "30"])?;
    let verify = t.name("verify");
    let _verify = Guard::container(&verify);
    let out = docker([
        "run",
        "--rm",
        "--name",
        &verify,
        "-v",
        &format!("{}:/app/persistence:ro", sys.volume),
        &sys.engine_image,
        "verify",
    ])
    .context("tiered-engine verify found damage on the tiers")?;
    eprintln!(
        "verify: {}",
        out.lines().find(|l| l.starts_with("summary")).unwrap_or("")
    );
    sys.passed();
    Ok(())
}
