//! The test's surroundings: the repository, the static binaries, the Docker
//! daemon, free ports, and [`TestEnv`], what every test starts with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cmd::Cmd;
use crate::guard::TempDir;
use crate::lock::DockerLock;
use crate::names;

/// The repository root (this crate is `tests/e2e`).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.join("../..")
        .canonicalize()
        .unwrap_or_else(|_| here.join("../.."))
}

/// Where `scripts/build.sh` puts the static binaries (`TIERED_BIN` overrides).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("TIERED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("build/bin"))
}

/// The path of a static binary, which must exist.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let p = bin_dir().join(name);
    if !p.is_file() {
        bail!("missing {} (run scripts/build.sh)", p.display());
    }
    Ok(p)
}

/// A script of the repository, `scripts/NAME`.
pub fn script(name: &str) -> Cmd {
    Cmd::new(repo_root().join("scripts").join(name))
}

/// A program on PATH, which must exist (installed by scripts/deps.sh).
pub fn require_tool(name: &str) -> anyhow::Result<()> {
    if Cmd::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", name])
        .ok()
    {
        Ok(())
    } else {
        bail!("missing {name} (run scripts/deps.sh)")
    }
}

/// Makes sure a Docker daemon answers; starts `dockerd` detached (its own
/// session, so no test's end takes it down) if none does.
pub fn ensure_docker() -> anyhow::Result<()> {
    if docker_answers() {
        return Ok(());
    }
    crate::dockerd::spawn_detached(&["dockerd".to_owned()])?;
    crate::wait::wait_for(Duration::from_secs(60), "dockerd to answer", docker_answers)
        .context("see /var/log/tiered-dockerd.log")?;
    Ok(())
}

pub fn docker_answers() -> bool {
    Cmd::new("docker").arg("info").ok()
}

/// A loopback TCP port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// What a real-daemon test starts with: the Docker lock (released last), a
/// running daemon, and a temp dir of its own. Declare it first in the test
/// so that it is dropped after every guard.
#[derive(Debug)]
pub struct TestEnv {
    /// `/tmp/tiered-e2e-<pid>-<n>-<what>.XXXXXX`.
    pub tmp: TempDir,
    /// The test's id: a unique name to derive object names from.
    pub id: String,
    // Dropped last: fields drop in declaration order.
    _lock: DockerLock,
}

impl TestEnv {
    /// For a test that uses the daemon without restarting it.
    pub fn shared(what: &str) -> anyhow::Result<TestEnv> {
        TestEnv::start(what, DockerLock::shared().context("shared docker lock")?)
    }
    /// For a test that restarts or kills dockerd.
    pub fn exclusive(what: &str) -> anyhow::Result<TestEnv> {
        TestEnv::start(
            what,
            DockerLock::exclusive().context("exclusive docker lock")?,
        )
    }
    fn start(what: &str, lock: DockerLock) -> anyhow::Result<TestEnv> {
        ensure_docker()?;
        let id = names::unique(what);
        let tmp = TempDir::new(&id)?;
        Ok(TestEnv {
            tmp,
            id,
            _lock: lock,
        })
    }
    /// A unique name for an object of this test: `<id>-<what>`.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.id)
    }
    pub fn path(&self, p: impl AsRef<Path>) -> PathBuf {
        self.tmp.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root().join("config.json").is_file());
    }

    #[test]
    fn free_ports_are_bindable() {
        let p = free_port();
        assert!(p > 0);
        std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
    }
}
