//! Stopping and starting the machine's Docker daemon the way it is managed
//! (systemctl, service, or a plain process started again with its recorded
//! command line, detached), and making sure one answers again whatever
//! happened. Only for tests holding [`crate::TestEnv::exclusive`].

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd::Cmd;
use crate::env::docker_answers;
use crate::wait::wait_for;

pub const DOCKERD_LOG: &str = "/var/log/tiered-dockerd.log";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    Systemctl,
    Service,
    /// A plain process: its command line, and the containerd it started
    /// itself (stopped with it).
    Process {
        cmdline: Vec<String>,
        containerd: Option<i32>,
    },
}

/// The running daemon and how it is managed.
#[derive(Debug, Clone)]
pub struct Dockerd {
    pub pid: i32,
    pub manager: Manager,
}

fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

fn pgrep(args: &[&str]) -> Vec<i32> {
    Cmd::new("pgrep")
        .args(args)
        .run()
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The pid of the running dockerd: its pid file, else the only dockerd process.
pub fn running_pid() -> Option<i32> {
    if let Some(pid) = std::fs::read_to_string("/var/run/docker.pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        if comm(pid).as_deref() == Some("dockerd") {
            return Some(pid);
        }
    }
    match pgrep(&["-x", "dockerd"])[..] {
        [pid] => Some(pid),
        _ => None,
    }
}

impl Dockerd {
    pub fn find() -> Result<Dockerd> {
        let pid = running_pid().context(
            "cannot tell which dockerd serves this machine (no /var/run/docker.pid, not one dockerd process)",
        )?;
        let systemd = Path::new("/run/systemd/system").is_dir()
            && Cmd::new("systemctl")
                .args(["is-active", "--quiet", "docker"])
                .ok();
        let ssd_pid = std::fs::read_to_string("/var/run/docker-ssd.pid")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let manager = if systemd {
            Manager::Systemctl
        } else if Path::new("/etc/init.d/docker").exists() && ssd_pid == Some(pid) {
            Manager::Service
        } else {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline"))?;
            let cmdline: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if cmdline.is_empty() {
                bail!("empty command line for dockerd {pid}");
            }
            // An external containerd is not its child and is left alone.
            let containerd = pgrep(&["-x", "-P", &pid.to_string(), "containerd"])
                .first()
                .copied();
            Manager::Process {
                cmdline,
                containerd,
            }
        };
        eprintln!("dockerd pid {pid} managed by {manager:?}");
        Ok(Dockerd { pid, manager })
    }

    pub fn start(&self) -> Result<()> {
        start(&self.manager)
    }

    /// Stops the daemon and waits (60 s) until it and its own containerd exit.
    pub fn stop(&self) -> Result<()> {
        match &self.manager {
            Manager::Systemctl => {
                Cmd::new("systemctl").args(["stop", "docker"]).run()?;
            }
            Manager::Service => {
                Cmd::new("service").args(["docker", "stop"]).run()?;
            }
            Manager::Process { .. } => kill(Pid::from_raw(self.pid), Signal::SIGTERM)?,
        }
        let containerd = match &self.manager {
            Manager::Process { containerd, .. } => *containerd,
            _ => None,
        };
        wait_for(
            Duration::from_secs(60),
            "dockerd and its containerd to exit",
            || !alive(self.pid) && !containerd.is_some_and(alive),
        )?;
        Ok(())
    }
}

fn start(manager: &Manager) -> Result<()> {
    match manager {
        Manager::Systemctl => {
            Cmd::new("systemctl").args(["start", "docker"]).run()?;
        }
        Manager::Service => {
            Cmd::new("service").args(["docker", "start"]).run()?;
        }
        Manager::Process { cmdline, .. } => spawn_detached(cmdline)?,
    }
    Ok(())
}

/// Starts `cmdline` (a dockerd) in its own session, detached from the test
/// (no process of the test stays its parent or holds its output open), from
/// `/`, its output appended to [`DOCKERD_LOG`], and with no inherited file
/// descriptor but 0-2: a daemon that inherited the fd of a
/// `flock /tmp/tiered-docker.lock` (a test run under `flock -x … cmd`) would
/// hold the lock as long as it runs and block every other test.
pub fn spawn_detached(cmdline: &[String]) -> Result<()> {
    eprintln!("starting {} (log: {DOCKERD_LOG})", cmdline.join(" "));
    let script = r#"
        cd / || exit 1
        for fd in /proc/self/fd/*; do
          fd=${fd##*/}
          if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null; fi
        done
        setsid nohup "$@" >>"$LOG" 2>&1 </dev/null &
    "#;
    Cmd::new("bash")
        .args(["-c", script, "bash"])
        .args(cmdline)
        .env("LOG", DOCKERD_LOG)
        .run()?;
    Ok(())
}

/// Makes sure a daemon answers: waits for one that is stopping or starting,
/// stops one that neither answers nor exits, starts one the way `manager`
/// says (a plain `dockerd` if unknown).
pub fn ensure_back(manager: Option<&Manager>) {
    if docker_answers() {
        return;
    }
    if let Some(pid) = running_pid() {
        if wait_for(Duration::from_secs(60), "dockerd to answer", docker_answers).is_ok() {
            return;
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if wait_for(Duration::from_secs(30), "dockerd to exit", || !alive(pid)).is_err() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let fallback = Manager::Process {
        cmdline: vec!["dockerd".to_owned()],
        containerd: None,
    };
    if let Err(e) = start(manager.unwrap_or(&fallback)) {
        eprintln!("error: starting dockerd: {e:#}");
    }
    if wait_for(Duration::from_secs(60), "dockerd to answer", docker_answers).is_err() {
        eprintln!("error: no Docker daemon answers after the test (see {DOCKERD_LOG})");
    }
}
