//! The managed plugin: laid out from `config.json` + `rootfs/` +
//! `build/bin/tiered-plugin` (what `scripts/plugin.sh install` does), created,
//! configured and enabled; and what tests read back from it.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cmd::{docker, Cmd};
use crate::env::{bin, repo_root};
use crate::guard::{Guard, TempDir};

/// How to install a plugin.
#[derive(Debug, Clone)]
pub struct Install {
    pub name: String,
    pub primary: PathBuf,
    pub archive: PathBuf,
    /// `TIERED_METRICS_LISTEN`, empty for none.
    pub metrics_listen: String,
    pub log_level: String,
}

impl Install {
    pub fn new(name: &str, primary: &Path, archive: &Path) -> Install {
        Install {
            name: name.to_owned(),
            primary: primary.to_owned(),
            archive: archive.to_owned(),
            metrics_listen: String::new(),
            log_level: "info".to_owned(),
        }
    }
    pub fn metrics_listen(mut self, addr: &str) -> Install {
        self.metrics_listen = addr.to_owned();
        self
    }

    /// `docker plugin create` from a fresh layout, `docker plugin set` the
    /// tier sources (created if missing, also as `TIERED_*_SOURCE` for the
    /// errors) and env, `docker plugin enable`.
    /// The guard (made before anything can fail) removes the plugin.
    pub fn install(&self) -> anyhow::Result<Guard> {
        let guard = Guard::plugin(&self.name);
        self.install_unguarded()?;
        Ok(guard)
    }

    /// [`Install::install`] for a plugin whose name a guard already covers
    /// (re-created after `docker plugin rm`).
    pub fn install_unguarded(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.primary)?;
        std::fs::create_dir_all(&self.archive)?;
        let build = TempDir::new("tiered-e2e-plugin-build")?;
        layout(build.path(), &self.name)?;
        Cmd::new("docker")
            .args(["plugin", "create", &self.name])
            .arg(build.path())
            .run()?;
        let primary = self.primary.canonicalize()?;
        let archive = self.archive.canonicalize()?;
        Cmd::new("docker")
            .args(["plugin", "set", &self.name])
            .arg(format!("primary.source={}", primary.display()))
            .arg(format!("archive.source={}", archive.display()))
            // Named in the plugin's errors (what scripts/plugin.sh sets).
            .arg(format!("TIERED_PRIMARY_SOURCE={}", primary.display()))
            .arg(format!("TIERED_ARCHIVE_SOURCE={}", archive.display()))
            .arg(format!("TIERED_METRICS_LISTEN={}", self.metrics_listen))
            .arg(format!("TIERED_LOG_LEVEL={}", self.log_level))
            .run()?;
        docker(["plugin", "enable", &self.name])?;
        Ok(())
    }
}

/// Lays out a plugin directory in `dir`: `config.json` and `rootfs/` (the
/// committed skeleton, the static binary, the mount points, and a
/// `/.tiered-build` stamp: the daemon refuses a rootfs layer byte-identical to
/// one it holds, so each build is made unique).
pub fn layout(dir: &Path, name: &str) -> anyhow::Result<()> {
    let root = repo_root();
    let rootfs = dir.join("rootfs");
    Cmd::new("cp")
        .arg("-a")
        .arg(root.join("rootfs"))
        .arg(&rootfs)
        .run()?;
    let plugin_bin = bin("tiered-plugin")?;
    Cmd::new("install")
        .args(["-m", "0755"])
        .arg(&plugin_bin)
        .arg(rootfs.join("tiered-plugin"))
        .run()?;
    let stamp = format!(
        "{name} {} {:?}\n",
        std::process::id(),
        std::time::SystemTime::now()
    );
    std::fs::write(rootfs.join(".tiered-build"), stamp)?;
    for d in [
        "mnt/primary",
        "mnt/archive",
        "mnt/volumes",
        "run/docker/plugins",
        "proc",
        "dev",
        "sys",
        "tmp",
        "etc",
    ] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(root.join("config.json"), dir.join("config.json")).context("config.json")?;
    Ok(())
}

/// One field of the volume's `Status` in `docker volume inspect`.
pub fn volume_status(volume: &str, key: &str) -> anyhow::Result<String> {
    Ok(docker([
        "volume",
        "inspect",
        volume,
        "--format",
        &format!("{{{{index .Status \"{key}\"}}}}"),
    ])?)
}

/// `docker plugin inspect NAME --format FORMAT`.
pub fn inspect(name: &str, format: &str) -> anyhow::Result<String> {
    Ok(docker(["plugin", "inspect", name, "--format", format])?)
}

/// Mount table entries (`/proc/self/mountinfo`, one per entry: duplicates
/// count) at or under the plugin's propagated mount for `volume`, sorted.
/// `docker_root` is `docker info`'s DockerRootDir, `id` the plugin's ID (both
/// known before a daemon restart, when they cannot be asked).
pub fn host_mount_entries(
    docker_root: &str,
    id: &str,
    volume: &str,
) -> anyhow::Result<Vec<String>> {
    let base = format!("{docker_root}/plugins/{id}/propagated-mount/{volume}");
    mounts_under(Path::new("/proc/self/mountinfo"), &base)
}

/// Mount points at or under `base` in a mountinfo file, sorted.
fn mounts_under(mountinfo: &Path, base: &str) -> anyhow::Result<Vec<String>> {
    let info = std::fs::read(mountinfo)?;
    let prefix = format!("{base}/");
    let mut out: Vec<String> = String::from_utf8_lossy(&info)
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == base || p.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    out.sort();
    Ok(out)
}

/// Mount points on the host at or under the plugin's propagated mount for
/// `volume`, sorted and deduplicated (the host sees each plugin mount twice).
pub fn host_mounts(plugin: &str, volume: &str) -> anyhow::Result<Vec<String>> {
    let id = inspect(plugin, "{{.ID}}")?;
    let root = docker(["info", "--format", "{{.DockerRootDir}}"])?;
    let mut out = host_mount_entries(&root, &id, volume)?;
    out.dedup();
    Ok(out)
}

/// The volume's mounts inside the plugin's own mount namespace. The plugin's
/// process is found by its cgroup, named after the plugin's ID (several
/// tiered plugins may run).
pub fn plugin_mounts(id: &str, volume: &str) -> anyhow::Result<Vec<String>> {
    let pids = Cmd::new("pgrep")
        .args(["-x", "tiered-plugin"])
        .run()
        .unwrap_or_default();
    let suffix = format!(":/{id}");
    for pid in pids.lines() {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cgroup.lines().any(|l| l.ends_with(&suffix)) {
            let info = PathBuf::from(format!("/proc/{pid}/mountinfo"));
            return mounts_under(&info, &format!("/mnt/volumes/{volume}"));
        }
    }
    anyhow::bail!("no tiered-plugin process in a cgroup named {id}")
}

/// The plugin's socket on the host, `/run/docker/plugins/<ID>/tiered.sock`.
pub fn socket(plugin: &str) -> anyhow::Result<PathBuf> {
    let id = inspect(plugin, "{{.ID}}")?;
    Ok(PathBuf::from(format!(
        "/run/docker/plugins/{id}/tiered.sock"
    )))
}

/// `GET /metrics` on the plugin's socket (no metrics listener needed).
pub fn scrape_socket(plugin: &str) -> anyhow::Result<String> {
    let sock = socket(plugin)?;
    match crate::http::unix_request(&sock, "GET", "/metrics", "")? {
        (200, body) => Ok(body),
        (code, _) => anyhow::bail!("GET /metrics on {}: HTTP {code}", sock.display()),
    }
}

/// One series of the plugin's metrics (see [`crate::http::metric`]); 0 when
/// the series is not exposed (yet).
pub fn metric(plugin: &str, series: &str) -> anyhow::Result<f64> {
    Ok(crate::http::metric(&scrape_socket(plugin)?, series).unwrap_or(0.0))
}
