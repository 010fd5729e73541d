//! A host that already runs Redis on its default port (the systemd-less
//! equivalent of an enabled redis-server service): `scripts/up.sh` must
//! refuse with a clear port message before installing or creating anything,
//! and leave that Redis running. `scripts/up.sh --check` changes nothing.
//!
//! The Redis on 6379 is this test's own `redis-server` when 6379 is free
//! (killed at the end, by its pid); when something already listens there,
//! that is the occupant, and the test only checks it is still there after.
#![cfg(feature = "docker-e2e")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tiered_e2e::env::{free_port, require_tool, script};
use tiered_e2e::{docker, wait_for, Cmd, Defer, TestEnv};

const PORT: u16 = 6379;
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// The listeners on PORT as `ss` shows them (address, process): what must
/// be the same before and after.
fn listeners() -> Result<String> {
    Ok(Cmd::new("ss")
        .args(["-Htlnp", &format!("sport = :{PORT}")])
        .run()?)
}

fn port_taken() -> bool {
    std::net::TcpListener::bind(("127.0.0.1", PORT)).is_err()
}

fn redis_cli(args: &[&str]) -> Result<String> {
    Ok(Cmd::new("redis-cli")
        .args(["-p", &PORT.to_string()])
        .args(args)
        .run()?)
}

/// Every object of the daemon whose name carries `id`.
fn objects(id: &str) -> Result<Vec<String>> {
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

fn nothing_made(what: &str, id: &str, tiers: &Path) -> Result<()> {
    let made = objects(id)?;
    ensure!(made.is_empty(), "{what} created Docker objects: {made:?}");
    ensure!(
        !tiers.exists(),
        "{what} created the tier directories {}",
        tiers.display()
    );
    Ok(())
}

/// `scripts/up.sh ARGS` with this test's names; (exit code, stdout + stderr).
fn up(t: &TestEnv, engine_port: u16, args: &[&str]) -> Result<(Option<i32>, String)> {
    let tiers = t.path("tiers");
    let out = script("up.sh")
        .args(args)
        .env("TIERED_PLUGIN", &t.id)
        .env("TIERED_IMAGE_TAG", &t.id)
        .env("COMPOSE_PROJECT_NAME", &t.id)
        .env("TIERED_VOLUME", t.name("data"))
        .env("TIERED_PRIMARY_SOURCE", tiers.join("primary"))
        .env("TIERED_ARCHIVE_SOURCE", tiers.join("archive"))
        .env("TIERED_ENGINE_PORT", engine_port.to_string())
        .env("TIERED_ENGINE_METRICS_PORT", free_port().to_string())
        .env("TIERED_SNAPSHOTTER_METRICS_PORT", free_port().to_string())
        .env("TIERED_PLUGIN_METRICS_PORT", free_port().to_string())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- scripts/up.sh {}\n{text}", args.join(" "));
    Ok((out.status.code(), text))
}

/// Starts this test's redis-server on 6379; killed (by pid) on drop.
fn own_redis(t: &TestEnv) -> Result<Defer<impl FnOnce()>> {
    require_tool("redis-server")?;
    let dir = t.path("redis");
    std::fs::create_dir_all(&dir)?;
    let child: Child = Command::new("redis-server")
        .args(["--port", &PORT.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start redis-server")?;
    let pid = child.id();
    // Ends this process only, by its pid (Child::kill).
    let guard = Defer::new(move || {
        let mut c = child;
        let _ = c.kill();
        let _ = c.wait();
    });
    wait_for(Duration::from_secs(30), "redis-server on 6379", || {
        redis_cli(&["ping"]).is_ok_and(|r| r == "PONG")
    })?;
    eprintln!("started redis-server on {PORT} (pid {pid})");
    Ok(guard)
}

#[test]
fn up_refuses_a_taken_port_before_changing_anything() -> Result<()> {
    let t = TestEnv::shared("host")?;
    require_tool("ss")?; // iproute2, scripts/test-deps.sh
    require_tool("redis-cli")?;
    let tiers = t.path("tiers");

    // --- the occupant of 6379 ---------------------------------------------------
    let own = if port_taken() {
        eprintln!(
            "{PORT} is already taken; that is the occupant:\n{}",
            listeners()?
        );
        None
    } else {
        Some(own_redis(&t)?)
    };
    if own.is_some() {
        ensure!(redis_cli(&["set", "tiered-e2e-host-marker", &t.id])? == "OK");
    }
    let occupant = listeners()?;
    ensure!(!occupant.is_empty(), "nothing listens on {PORT}");
    let policy_before = std::fs::read(POLICY_RC_D).ok();

    // --- up.sh --check: prints the checks, changes nothing -----------------------
    let (code, out) = up(&t, PORT, &["--check"])?;
    ensure!(
        code == Some(1),
        "up.sh --check exited {code:?} with {PORT} taken"
    );
    ensure!(
        out.contains(&format!(
            "FAIL  port {PORT} (engine, TIERED_ENGINE_PORT) is in use"
        )),
        "up.sh --check did not name port {PORT} as taken"
    );
    ensure!(
        out.contains("Choose another port, e.g.: TIERED_ENGINE_PORT="),
        "up.sh --check did not say how to choose another port"
    );
    for check in [
        "ok    running as root",
        "Docker daemon answers",
        "rustc ",
        "primary tier ",
        "archive tier ",
    ] {
        ensure!(
            out.contains(check),
            "up.sh --check did not print the check {check:?}"
        );
    }
    nothing_made("up.sh --check", &t.id, &tiers)?;

    // --- up.sh: refuses in the checks, before any package, build or object --------
    let start = Instant::now();
    let (code, out) = up(&t, PORT, &[])?;
    ensure!(code == Some(1), "up.sh exited {code:?} with {PORT} taken");
    ensure!(
        out.contains(&format!("FAIL  port {PORT}")),
        "the refusal does not name port {PORT}"
    );
    ensure!(
        out.contains("nothing was installed or created"),
        "the refusal does not say that nothing changed"
    );
    for action in [
        "] apt-get install",
        "] static binaries in",
        "] starting docker-registry",
        "] docker build",
        "] compose up",
    ] {
        ensure!(
            !out.contains(action),
            "up.sh did {action:?} before refusing"
        );
    }
    ensure!(
        start.elapsed() < Duration::from_secs(60),
        "up.sh took {:?} to refuse",
        start.elapsed()
    );
    nothing_made("up.sh", &t.id, &tiers)?;
    ensure!(
        std::fs::read(POLICY_RC_D).ok() == policy_before,
        "{POLICY_RC_D} changed"
    );

    // --- the occupant is untouched --------------------------------------------------
    ensure!(
        listeners()? == occupant,
        "the listener on {PORT} changed:\n{}",
        listeners()?
    );
    if own.is_some() {
        ensure!(
            redis_cli(&["get", "tiered-e2e-host-marker"])? == t.id,
            "the key in the redis-server on {PORT} is gone"
        );
    }

    // --- with a free port the checks pass, and still change nothing -----------------
    let (code, out) = up(&t, free_port(), &["--check"])?;
    ensure!(
        code == Some(0),
        "up.sh --check exited {code:?} with free ports"
    );
    ensure!(
        out.contains("todo  primary tier") && out.contains("will be created"),
        "up.sh --check did not announce the tier directories"
    );
    nothing_made("up.sh --check (passing)", &t.id, &tiers)?;
    drop(own);
    Ok(())
}
