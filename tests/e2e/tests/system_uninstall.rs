//! Uninstall on the real daemon: `scripts/up.sh`, writes, then
//!  1. `scripts/down.sh --purge` announces what it removes and where each
//!     tier's data is, leaves no plugin, volume, image, container or network
//!     of the deployment in the daemon's listings, and keeps the volume's data
//!     on both tiers;
//!  2. `scripts/up.sh` on the same tiers brings the volume back with its data,
//!     and `up.sh --check` passes on it (the ports are its own);
//!  3. `--purge --delete-data` without `--yes` and without a terminal is
//!     refused before anything is removed;
//!  4. `--purge --delete-data --yes` leaves nothing in the daemon and deletes
//!     the volume's data on both tiers; the tier directories stay.
#![cfg(feature = "docker-e2e")]

use std::path::Path;

use anyhow::{bail, ensure, Result};
use tiered_e2e::env::{free_port, script};
use tiered_e2e::{docker, docker_ok, Cmd, Defer, Guard, TestEnv};

/// What the daemon lists whose name carries `id`.
fn leftovers(id: &str) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for args in [
        &["plugin", "ls", "--format", "{{.Name}}"][..],
        &["volume", "ls", "-q"],
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        &["ps", "-a", "--format", "{{.Names}}"],
        &["network", "ls", "--format", "{{.Name}}"],
    ] {
        all.extend(
            docker(args)?
                .lines()
                .filter(|l| l.contains(id))
                .map(str::to_owned),
        );
    }
    Ok(all)
}

fn non_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn purge_keeps_data_unless_asked_and_leaves_nothing_behind() -> Result<()> {
    let t = TestEnv::shared("uninstall")?;
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    let volume = t.name("data");
    let port = free_port();
    let env: Vec<(String, String)> = [
        ("TIERED_PLUGIN", t.id.clone()),
        ("TIERED_PRIMARY_SOURCE", primary.display().to_string()),
        ("TIERED_ARCHIVE_SOURCE", archive.display().to_string()),
        ("TIERED_IMAGE_TAG", t.id.clone()),
        ("COMPOSE_PROJECT_NAME", t.id.clone()),
        ("TIERED_VOLUME", volume.clone()),
        ("TIERED_ENGINE_PORT", port.to_string()),
        ("TIERED_ENGINE_METRICS_PORT", free_port().to_string()),
        ("TIERED_SNAPSHOTTER_METRICS_PORT", free_port().to_string()),
        ("TIERED_PLUGIN_METRICS_PORT", free_port().to_string()),
        ("TIERED_HEALTH_INTERVAL", "1s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let run = |name: &str, args: &[&str]| script(name).envs(env.iter().cloned()).args(args);
    let redis = |args: &[&str]| {
        Cmd::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .run()
    };

    // Whatever happens: the deployment, volume, images and plugin go.
    let _plugin = Guard::plugin(&t.id);
    let _images = (
        Guard::image(format!("tiered-engine:{}", t.id)),
        Guard::image(format!("tiered-snapshotter:{}", t.id)),
    );
    let _volume = Guard::volume(&volume);
    let down_env = env.clone();
    let _down = Defer::new(move || {
        let _ = script("compose.sh")
            .envs(down_env)
            .args(["down", "--timeout", "10"])
            .run();
    });

    run("up.sh", &[]).run()?;
    ensure!(redis(&["set", "greeting", "hello"])? == "OK", "SET failed");

    // --- 1. purge, keeping the data -----------------------------------------------------
    let out = run("down.sh", &["--purge"]).output()?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{text}");
    ensure!(out.status.success(), "down.sh --purge failed");
    let primary_data = primary.join(&volume);
    let archive_data = archive.join(&volume);
    for want in [
        format!("plugin           {}", t.id),
        format!(
            "images           tiered-engine:{0} tiered-snapshotter:{0}",
            t.id
        ),
        format!("primary tier     {}", primary_data.display()),
        format!("archive tier     {}", archive_data.display()),
        "its data is KEPT".to_owned(),
    ] {
        ensure!(
            text.contains(&want),
            "down.sh --purge did not announce {want:?}"
        );
    }
    let left = leftovers(&t.id)?;
    ensure!(left.is_empty(), "down.sh --purge left {left:?}");
    ensure!(
        non_empty_dir(&primary_data.join("data")),
        "down.sh --purge emptied the primary tier"
    );
    ensure!(
        archive_data.is_dir(),
        "down.sh --purge removed the archive tier's data"
    );

    // --- 2. reinstall on the same tiers: the same data ------------------------------------
    run("up.sh", &[]).run()?;
    ensure!(
        redis(&["get", "greeting"])? == "hello",
        "data gone after down.sh --purge + up.sh"
    );
    // While it runs, its own ports do not fail the checks of a rerun.
    let check = run("up.sh", &["--check"]).run()?;
    ensure!(
        check.contains(&format!("ok    port {port} held by this deployment")),
        "up.sh --check on the running deployment:\n{check}"
    );

    // --- 3. --delete-data needs --yes without a terminal ------------------------------------
    match run("down.sh", &["--purge", "--delete-data"]).run() {
        Ok(_) => bail!("down.sh --purge --delete-data went ahead without --yes or a terminal"),
        Err(e) => ensure!(e.code() == Some(1), "down.sh failed oddly: {e}"),
    }
    ensure!(
        docker_ok(["plugin", "inspect", &t.id]),
        "the refused purge removed the plugin"
    );
    ensure!(
        redis(&["ping"])? == "PONG",
        "the refused purge stopped the deployment"
    );

    // --- 4. purge with the data ----------------------------------------------------------
    let out = run("down.sh", &["--purge", "--delete-data", "--yes"]).output()?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{text}");
    ensure!(
        out.status.success(),
        "down.sh --purge --delete-data --yes failed"
    );
    ensure!(
        text.contains(&primary_data.display().to_string()),
        "--delete-data did not say where the data was"
    );
    let left = leftovers(&t.id)?;
    ensure!(
        left.is_empty(),
        "down.sh --purge --delete-data left {left:?}"
    );
    ensure!(
        !primary_data.exists(),
        "--delete-data kept the primary tier's data"
    );
    ensure!(
        !archive_data.exists(),
        "--delete-data kept the archive tier's data"
    );
    ensure!(
        primary.is_dir() && archive.is_dir(),
        "--delete-data removed the tier directories themselves"
    );
    Ok(())
}
