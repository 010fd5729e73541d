//! The plugin under a running deployment is upgraded in place, then removed
//! and installed again; neither loses a volume, a write or an archived file.
//!   1. compose deployment on the plugin installed from the local registry
//!      (:v1), writes until the archive tier holds logs;
//!   2. containers stopped, `scripts/registry.sh upgrade`: a new package of
//!      the plugin pushed as :v2, `docker plugin disable -f`, `docker plugin
//!      upgrade`, the tier sources set again (upgrade resets them to the
//!      config's defaults), `enable`; the volume is listed again with its
//!      tiers, the containers mount it again, every acknowledged write reads
//!      back, every archived file is still there, unchanged;
//!   3. `docker plugin rm -f`, then installed again from the registry (:v3) on
//!      the same tiers: the same checks.
#![cfg(feature = "docker-e2e")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tiered_e2e::load::{self, Acked};
use tiered_e2e::system::{count, registry_install, System};
use tiered_e2e::{docker, docker_ok, plugin, wait_for, Cmd, TestEnv};

/// Every file under `dir` but `*.tmp`, with its content.
fn snapshot_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let list = Cmd::new("find")
        .args([".", "-type", "f", "!", "-name", "*.tmp"])
        .dir(dir)
        .run()?;
    list.lines()
        .map(|f| Ok((f.to_owned(), std::fs::read(dir.join(f))?)))
        .collect()
}

/// After a plugin change: the volume is listed by the plugin, its Status
/// names its tiers, the archive is intact, the containers mount it again and
/// every acknowledged write is there.
fn check_after(
    what: &str,
    sys: &System,
    archive: &BTreeMap<String, Vec<u8>>,
    acked: &[&Acked],
) -> Result<()> {
    let driver = format!("driver={}:latest", sys.plugin);
    let listed = docker(["volume", "ls", "-q", "--filter", &driver])?;
    ensure!(
        listed.lines().any(|l| l == sys.volume),
        "{what}: volume {} not listed (plugin sees: {listed:?})",
        sys.volume
    );
    let primary_path = plugin::volume_status(&sys.volume, "primary_path")?;
    ensure!(
        primary_path.ends_with(&format!("/{}/data", sys.volume)),
        "{what}: volume Status does not name its primary tier: {primary_path}"
    );
    let sources = plugin::inspect(
        &sys.plugin,
        "{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}",
    )?;
    ensure!(
        sources.contains(&format!("primary={} ", sys.primary.display()))
            && format!("{sources} ").contains(&format!("archive={} ", sys.archive.display())),
        "{what}: tier sources are now '{sources}'"
    );
    // Every file archived before is still there, unchanged (newer ones may join).
    let now = snapshot_files(&sys.archived)?;
    let changed: Vec<_> = archive
        .iter()
        .filter(|(f, c)| now.get(*f) != Some(c))
        .map(|(f, _)| f)
        .collect();
    ensure!(
        changed.is_empty(),
        "{what}: archived files changed or gone: {changed:?}"
    );
    sys.compose(["start"])?;
    sys.wait_engine(60)?;
    load::check(sys.engine_port, acked)?;
    eprintln!("{what}: volume, archive and data intact");
    Ok(())
}

#[test]
fn plugin_upgrade_and_reinstall_under_a_deployment() -> Result<()> {
    let t = TestEnv::shared("upg")?;
    let mut sys = System::start(&t)?;
    sys.compose_up()?;
    sys.wait_engine(60)?;

    let load1 = load::write(sys.engine_port, "load1", Duration::from_secs(5), 4);
    wait_for(Duration::from_secs(60), "a log in the archive", || {
        count(&sys.archived.join("logs"), "cmdlog-", ".log") >= 1
    })?;
    load::check(sys.engine_port, &[&load1])?;

    // Stop the containers first: the volume is unmounted while the plugin is
    // replaced. What the archive holds now must survive everything below.
    sys.compose(["stop", "-t", "30"])?;
    let archive = snapshot_files(&sys.archived)?;
    ensure!(!archive.is_empty(), "empty archive");
    eprintln!("archive holds {} files", archive.len());

    // Upgrade in place.
    Cmd::new(tiered_e2e::env::repo_root().join("scripts/registry.sh"))
        .args([
            "upgrade",
            "--alias",
            &sys.plugin,
            "--repo",
            &sys.id,
            "--tag",
            "v2",
        ])
        .run()
        .context("scripts/registry.sh upgrade")?;
    let reference = plugin::inspect(&sys.plugin, "{{.PluginReference}}")?;
    ensure!(
        reference.ends_with(&format!("/{}:v2", sys.id)),
        "plugin reference after upgrade is {reference}"
    );
    check_after("upgrade", &sys, &archive, &[&load1])?;
    let load2 = load::write(sys.engine_port, "load2", Duration::from_secs(3), 4);
    load::check(sys.engine_port, &[&load1, &load2])?;
    sys.compose(["stop", "-t", "30"])?;

    // Remove and install again. Volumes still refer to the plugin, hence -f;
    // their data is on the tiers.
    docker(["plugin", "disable", "-f", &sys.plugin])?;
    docker(["plugin", "rm", "-f", &sys.plugin])?;
    ensure!(
        !docker_ok(["plugin", "inspect", &sys.plugin]),
        "plugin still installed"
    );
    ensure!(
        std::fs::read_dir(&sys.data)?.next().is_some(),
        "primary tier emptied by docker plugin rm"
    );
    registry_install(&sys.plugin, &sys.id, "v3", &sys.primary, &sys.archive)?;
    check_after("reinstall", &sys, &archive, &[&load1, &load2])?;
    sys.passed();
    Ok(())
}
