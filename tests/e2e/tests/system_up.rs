//! The README's main command on the real daemon, stop and start:
//!  1. `scripts/up.sh` (deps, build, plugin from the local registry, images,
//!     compose up) prints a `redis-cli` line that reaches the engine, and the
//!     three metrics URLs, each serving its program's `tiered_` metrics;
//!  2. plain `scripts/down.sh` removes the containers and the network of the
//!     project and keeps everything else: the volume, the plugin (enabled),
//!     both images and the data on the primary tier;
//!  3. `scripts/up.sh` again keeps the same plugin (not reinstalled) and
//!     brings back the data: the key set through the printed line and every
//!     acknowledged write of a load.
//!
//! The uninstall path (`down.sh --purge`, reinstall on the same tiers,
//! `--delete-data`) is `system_uninstall.rs`.
#![cfg(feature = "docker-e2e")]

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tiered_e2e::env::{free_port, script};
use tiered_e2e::system::{diagnostics, wait_engine};
use tiered_e2e::{docker, docker_ok, http, load, Cmd, Defer, Guard, TestEnv};

/// Whether `up.sh` printed how to reach the engine: a line ending in
/// `redis-cli -p PORT`.
fn printed_redis_cli(out: &str, port: u16) -> bool {
    let want = format!("redis-cli -p {port}");
    out.lines().any(|l| l.trim_end().ends_with(&want))
}

/// The project's containers or networks (compose labels them).
fn project_objects(kind: &str, project: &str) -> Result<String> {
    let label = format!("label=com.docker.compose.project={project}");
    Ok(match kind {
        "container" => docker(["ps", "-aq", "--filter", &label])?,
        _ => docker(["network", "ls", "-q", "--filter", &label])?,
    })
}

#[test]
fn up_prints_how_to_reach_it_and_down_up_keeps_the_data() -> Result<()> {
    let t = TestEnv::shared("up")?;
    let (primary, archive) = (t.path("primary"), t.path("archive"));
    let volume = t.name("data");
    let port = free_port();
    let metrics_ports = [
        ("engine", "TIERED_ENGINE_METRICS_PORT", free_port()),
        (
            "snapshotter",
            "TIERED_SNAPSHOTTER_METRICS_PORT",
            free_port(),
        ),
        ("plugin", "TIERED_PLUGIN_METRICS_PORT", free_port()),
    ];
    let mut env: Vec<(String, String)> = [
        ("TIERED_PLUGIN", t.id.clone()),
        ("TIERED_PRIMARY_SOURCE", primary.display().to_string()),
        ("TIERED_ARCHIVE_SOURCE", archive.display().to_string()),
        ("TIERED_IMAGE_TAG", t.id.clone()),
        ("COMPOSE_PROJECT_NAME", t.id.clone()),
        ("TIERED_VOLUME", volume.clone()),
        ("TIERED_ENGINE_PORT", port.to_string()),
        ("TIERED_HEALTH_INTERVAL", "1s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(
        metrics_ports
            .iter()
            .map(|(_, var, p)| ((*var).to_owned(), p.to_string())),
    );
    let run = |name: &str| script(name).envs(env.iter().cloned());
    let engine_image = format!("tiered-engine:{}", t.id);
    let snapshotter_image = format!("tiered-snapshotter:{}", t.id);

    // Whatever happens: the deployment, volume, images and plugin go.
    let _plugin = Guard::plugin(&t.id);
    let _images = (
        Guard::image(&engine_image),
        Guard::image(&snapshotter_image),
    );
    let _volume = Guard::volume(&volume);
    let down_env = env.clone();
    let _down = Defer::new(move || {
        let _ = script("compose.sh")
            .envs(down_env)
            .args(["down", "--timeout", "10"])
            .run();
    });
    // Before the deployment goes: what it looked like, if the test failed.
    let (diag_id, diag_work) = (t.id.clone(), t.tmp.path().to_owned());
    let diag = Defer::new(move || diagnostics(&diag_id, &diag_work));

    // --- 1. up.sh: the printed redis-cli line and metrics URLs ----------------------------
    let out = run("up.sh").run()?;
    eprintln!("{out}");
    ensure!(
        printed_redis_cli(&out, port),
        "up.sh did not print `redis-cli -p {port}`"
    );
    // The printed command, as a user runs it.
    let redis_cli = |args: &[&str]| {
        Cmd::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .run()
    };
    ensure!(
        redis_cli(&["set", "greeting", "hello"])? == "OK",
        "SET through the printed redis-cli line failed"
    );
    let acked = load::write(port, "up", Duration::from_secs(3), 3);
    ensure!(
        acked.total() > 0,
        "no write acknowledged: {:?}",
        acked.errors
    );
    for (program, _, p) in metrics_ports {
        let url = format!("http://127.0.0.1:{p}/metrics");
        ensure!(
            out.lines().any(|l| l.contains(&url) && l.contains(program)),
            "up.sh did not print {url} for the {program}"
        );
        let text = http::scrape(&format!("127.0.0.1:{p}"))
            .with_context(|| format!("no metrics at {url}"))?;
        let family = format!("tiered_{program}_");
        ensure!(
            text.lines().any(|l| l.starts_with(&family)),
            "{url} serves no {family}* metrics"
        );
    }
    let plugin_id = docker(["plugin", "inspect", "-f", "{{.Id}}", &t.id])?;

    // --- 2. down.sh: containers and network gone, everything else kept ------------------
    run("down.sh").run()?;
    for kind in ["container", "network"] {
        let left = project_objects(kind, &t.id)?;
        ensure!(left.is_empty(), "down.sh left {kind}s: {left}");
    }
    ensure!(
        docker_ok(["volume", "inspect", &volume]),
        "down.sh removed the volume"
    );
    ensure!(
        docker(["plugin", "inspect", "-f", "{{.Enabled}}", &t.id])? == "true",
        "down.sh removed or disabled the plugin"
    );
    for image in [&engine_image, &snapshotter_image] {
        ensure!(
            docker_ok(["image", "inspect", image.as_str()]),
            "down.sh removed the image {image}"
        );
    }
    let data = primary.join(&volume).join("data");
    ensure!(
        std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some()),
        "down.sh emptied the primary tier ({})",
        data.display()
    );

    // --- 3. up.sh again: the same plugin, the same data -----------------------------------
    let out = run("up.sh").run()?;
    eprintln!("{out}");
    ensure!(
        docker(["plugin", "inspect", "-f", "{{.Id}}", &t.id])? == plugin_id,
        "the second up.sh reinstalled the plugin"
    );
    wait_engine(port, 60)?;
    ensure!(
        redis_cli(&["get", "greeting"])? == "hello",
        "data gone after down.sh + up.sh"
    );
    let checked = load::check(port, &[&acked])?;
    eprintln!("{checked} acknowledged writes back after down.sh + up.sh");

    diag.cancel();
    Ok(())
}
