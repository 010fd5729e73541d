//! Real programs, unchanged redis-py code (`tests/e2e/programs/apps.py`),
//! against the engine container of the compose deployment on a tiered
//! volume, through a `docker kill` of the engine in the middle of their run:
//! two workers taking a `redis.lock.Lock` (SET NX PX, release and extend by
//! EVALSHA) around a read-modify-write, a registered Lua script making two
//! writes, a job queue (LPUSH producers, BRPOP consumers) and a leaderboard
//! updated by MULTI/EXEC transactions (ZINCRBY + INCRBY) and read with
//! ZREVRANGE WITHSCORES. Afterwards every acknowledged effect is there, no
//! job is delivered twice, the lock excluded, and no script or transaction
//! is half applied.
#![cfg(feature = "docker-e2e")]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Result};
use tiered_e2e::env::repo_root;
use tiered_e2e::process::Background;
use tiered_e2e::system::System;
use tiered_e2e::{docker, Cmd, TestEnv};

const VENV_PYTHON: &str = "/opt/tiered/test-venv/bin/python";

fn python() -> Result<String> {
    let py = std::env::var("TIERED_TEST_PYTHON").unwrap_or_else(|_| VENV_PYTHON.to_string());
    ensure!(
        std::path::Path::new(&py).exists(),
        "{py} missing: run scripts/test-deps.sh (it makes the venv with redis-py) \
         or set TIERED_TEST_PYTHON to a python that has redis-py"
    );
    Ok(py)
}

#[test]
fn programs_survive_engine_kill() -> Result<()> {
    let py = python()?;
    let apps: PathBuf = repo_root().join("tests/e2e/programs/apps.py");
    let t = TestEnv::shared("apps")?;
    let mut sys = System::start(&t)?;
    sys.compose_up()?;
    let engine = sys.container("engine")?;
    sys.wait_engine(60)?;
    let port = sys.engine_port.to_string();

    let out = t.path("apps");
    std::fs::create_dir_all(&out)?;
    let workers = [
        "lock",
        "lock",
        "script",
        "producer",
        "producer",
        "consumer",
        "consumer",
        "leaderboard",
    ];
    let mut running: Vec<Background> = Vec::new();
    for (i, mode) in workers.iter().enumerate() {
        let rec = out.join(format!("{mode}.{i}"));
        running.push(Background::start(
            &format!("{mode}.{i}"),
            &py,
            [
                apps.as_os_str(),
                port.as_ref(),
                mode.as_ref(),
                rec.as_os_str(),
                "16".as_ref(),
            ],
            &t.path(format!("{mode}.{i}.log")),
        )?);
    }

    std::thread::sleep(Duration::from_secs(4));
    docker(["kill", &engine])?;
    std::thread::sleep(Duration::from_millis(500));
    // The restart policy may already be bringing it back; start it either way.
    let _ = docker(["start", &engine]);
    sys.wait_engine(60)?;

    // The workers go on through the restart and stop by themselves.
    for b in &mut running {
        tiered_e2e::wait_for(Duration::from_secs(60), "a worker to finish", || {
            b.log_tail(1).contains("operations,")
        })
        .map_err(|e| anyhow::anyhow!("{e}: {}", b.log_tail(20)))?;
        eprintln!("{}", b.log_tail(1));
    }
    drop(running);
    // the kill landed in the middle: some operation failed, then work resumed
    let errors = std::fs::read_dir(&out)?
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .filter(|s| s.lines().any(|l| l.starts_with("error ")))
        .count();
    ensure!(errors > 0, "no worker saw the engine go away");

    let verdict = Cmd::new(&py)
        .arg(&apps)
        .arg(&port)
        .arg("verify")
        .arg(&out)
        .run()?;
    eprintln!("{verdict}");
    sys.passed();
    Ok(())
}
