//! The plugin installed the way users install plugins: packed, pushed to a
//! local registry (Debian's docker-registry, started and stopped by
//! scripts/registry.sh), pulled back with `docker plugin install
//! --grant-all-permissions … primary.source=DIR archive.source=DIR`, both tier
//! sources being temp dirs. A volume created with options shows its tiers in
//! `docker volume inspect`'s Status, and a container writing into it lands on
//! the right tier.
#![cfg(feature = "docker-e2e")]

use std::os::unix::fs::MetadataExt;

use anyhow::{ensure, Result};
use serde_json::Value;
use tiered_e2e::system::System;
use tiered_e2e::{docker, plugin, Cmd, Guard, TestEnv};

#[test]
fn plugin_from_the_registry() -> Result<()> {
    let t = TestEnv::shared("reg")?;
    let mut sys = System::start(&t)?;

    // The registry is gone once the script returns.
    ensure!(
        !Cmd::new("pgrep")
            .args(["-f", "docker-registry serve /tmp/tiered-registry"])
            .ok(),
        "scripts/registry.sh left its registry running"
    );
    assert_eq!(plugin::inspect(&sys.plugin, "{{.Enabled}}")?, "true");
    let reference = plugin::inspect(&sys.plugin, "{{.PluginReference}}")?;
    ensure!(
        reference.starts_with("localhost:") && reference.ends_with(&format!("/{}:v1", sys.id)),
        "plugin reference is {reference}, not from the local registry"
    );
    let sources = plugin::inspect(
        &sys.plugin,
        "{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}",
    )?;
    ensure!(
        format!("{sources} ").contains(&format!("primary={} ", sys.primary.display()))
            && format!("{sources} ").contains(&format!("archive={} ", sys.archive.display())),
        "plugin mount sources are '{sources}'"
    );

    let vol = t.name("vol");
    let _vol = Guard::volume(&vol);
    docker([
        "volume",
        "create",
        "-d",
        &sys.plugin,
        "-o",
        "uid=1000",
        "-o",
        "gid=1000",
        &vol,
    ])?;
    let status: Value = serde_json::from_str(&docker([
        "volume",
        "inspect",
        "-f",
        "{{json .Status}}",
        &vol,
    ])?)?;
    eprintln!("Status: {status}");
    // Paths as the plugin sees them (inside its rootfs), sizes from statvfs.
    let s = |k: &str| status[k].clone();
    ensure!(
        s("primary_path")
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("/{vol}/data"))),
        "{status}"
    );
    ensure!(
        s("archive_path")
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("/{vol}"))),
        "{status}"
    );
    for tier in ["primary", "archive"] {
        let total = s(&format!("{tier}_total_bytes")).as_f64().unwrap_or(0.0);
        let free = s(&format!("{tier}_free_bytes")).as_f64().unwrap_or(0.0);
        ensure!(
            total > 0.0 && 0.0 < free && free <= total,
            "{tier}: {status}"
        );
    }
    assert_eq!(s("active_mounts").as_f64(), Some(0.0), "{status}");
    assert_eq!(
        (s("uid").as_f64(), s("gid").as_f64()),
        (Some(1000.0), Some(1000.0)),
        "{status}"
    );
    let root = sys.primary.join(&vol).join("data");
    ensure!(root.is_dir(), "no {} on the primary tier", root.display());
    ensure!(
        sys.archive.join(&vol).is_dir(),
        "no archive dir on the archive tier"
    );
    let md = std::fs::metadata(&root)?;
    assert_eq!(
        (md.uid(), md.gid()),
        (1000, 1000),
        "uid/gid options not applied to the volume root"
    );

    // A container (FROM scratch + busybox, no pull) writes into the volume and
    // its archived/ as 1000:1000.
    let busybox = sys.busybox()?;
    let writer = t.name("writer");
    let _writer = Guard::container(&writer);
    docker([
        "run",
        "--rm",
        "--name",
        &writer,
        "-v",
        &format!("{vol}:/app/persistence"),
        &busybox,
        "sh",
        "-c",
        "echo fast > /app/persistence/top && echo slow > /app/persistence/archived/old",
    ])?;
    assert_eq!(std::fs::read_to_string(root.join("top"))?, "fast\n");
    assert_eq!(
        std::fs::read_to_string(sys.archive.join(&vol).join("old"))?,
        "slow\n"
    );
    ensure!(
        !root.join("archived/old").exists(),
        "archived/ file also on the primary tier"
    );
    sys.passed();
    Ok(())
}
