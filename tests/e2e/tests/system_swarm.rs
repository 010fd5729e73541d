//! The same compose file deployed as a Swarm stack on this single node:
//! `docker swarm init` (only when the node is in no swarm; left again at the
//! end only then), `docker stack deploy -c deploy/compose.yaml -c
//! deploy/compose.swarm.yaml` with the tiered volume, the engine reachable and
//! writing, the snapshotter archiving, `docker stack rm`; afterwards the data
//! is still on the tiers: a plain container of the engine image on the same
//! volume serves every acknowledged write.
#![cfg(feature = "docker-e2e")]

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use tiered_e2e::env::repo_root;
use tiered_e2e::load;
use tiered_e2e::system::{count, wait_engine, System};
use tiered_e2e::{docker, docker_ok, wait_for, Cmd, Defer, Guard, TestEnv};

fn swarm_state() -> Result<String> {
    Ok(docker(["info", "-f", "{{.Swarm.LocalNodeState}}"])?)
}

/// Leaves the swarm, and removes docker_gwbridge if swarm init made it
/// (leaving does not remove it).
fn leave_swarm(had_gwbridge: bool) {
    let _ = docker(["swarm", "leave", "--force"]);
    if !had_gwbridge {
        let _ = docker(["network", "rm", "docker_gwbridge"]);
    }
}

#[test]
fn swarm_stack_keeps_its_data_on_the_tiers() -> Result<()> {
    let t = TestEnv::shared("swarm")?;
    let mut sys = System::start(&t)?;

    let state = swarm_state()?;
    let made_swarm = match state.as_str() {
        "inactive" => true,
        "active" => {
            ensure!(
                docker(["info", "-f", "{{.Swarm.ControlAvailable}}"])? == "true",
                "this node is a swarm worker; stacks need a manager"
            );
            eprintln!("node already in a swarm: using it, leaving it as it is");
            false
        }
        other => bail!("swarm state '{other}': neither in a swarm nor out of one"),
    };
    let had_gwbridge = docker_ok(["network", "inspect", "docker_gwbridge"]);
    let leave = Defer::new(move || {
        if made_swarm {
            leave_swarm(had_gwbridge)
        }
    });
    if made_swarm {
        docker(["swarm", "init", "--advertise-addr", "127.0.0.1"])?;
    }

    // The stack leaves its volume behind (as compose down does without -v).
    let _volume = Guard::volume(&sys.volume);
    let stack = sys.id.clone();
    let stack_gone = || {
        docker([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.stack.namespace={stack}"),
        ])
        .is_ok_and(|out| out.is_empty())
    };
    let _stack = Defer::new(|| {
        let _ = docker(["stack", "rm", &stack]);
        let _ = wait_for(
            Duration::from_secs(60),
            "the stack's containers to go",
            stack_gone,
        );
    });
    // (It warns that it ignores compose.yaml's 127.0.0.1: compose.swarm.yaml
    // publishes in host mode instead.)
    let root = repo_root();
    Cmd::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(root.join("deploy/compose.yaml"))
        .arg("-c")
        .arg(root.join("deploy/compose.swarm.yaml"))
        .arg(&stack)
        .envs(sys.env().iter().cloned())
        .run()?;
    sys.wait_engine(90)?;

    let load1 = load::write(sys.engine_port, "load1", Duration::from_secs(5), 4);
    load::check(sys.engine_port, &[&load1])?;
    let driver = docker(["volume", "inspect", "-f", "{{.Driver}}", &sys.volume])?;
    ensure!(
        driver.starts_with(&sys.plugin),
        "the stack's volume is on {driver}, not on the tiered plugin"
    );
    let logs = sys.archived.join("logs");
    let archive_has_logs = || count(&logs, "cmdlog-", ".log") >= 1;
    wait_for(
        Duration::from_secs(60),
        "the snapshotter service to archive a log",
        archive_has_logs,
    )?;

    docker(["stack", "rm", &stack])?;
    wait_for(
        Duration::from_secs(60),
        "the stack's containers to go after docker stack rm",
        stack_gone,
    )?;
    if made_swarm {
        leave.cancel();
        leave_swarm(had_gwbridge);
        assert_eq!(swarm_state()?, "inactive", "swarm not left");
    }

    // The data stayed on the tiers: the volume is still there, its files are on
    // the host, and an engine container started on it (outside any swarm) has
    // every acknowledged write.
    ensure!(
        count(&sys.data, "snapshot-", ".snap") >= 1,
        "no snapshot left on the primary tier"
    );
    ensure!(archive_has_logs(), "archive tier emptied");
    let name = t.name("engine");
    let _engine = Guard::container(&name);
    docker([
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/app/persistence", sys.volume),
        "-p",
        &format!("127.0.0.1:{}:6379", sys.engine_port),
        &sys.engine_image,
    ])?;
    wait_engine(sys.engine_port, 60)?;
    load::check(sys.engine_port, &[&load1])?;
    docker(["stop", "-t", "30", &name])?;
    sys.passed();
    Ok(())
}
