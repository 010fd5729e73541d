//! The whole deployment on a real daemon, for one test: the plugin installed
//! from a local registry (`scripts/registry.sh`) on the test's temp tiers, the
//! two images under a unique tag (`scripts/images.sh`), and the environment
//! that points `deploy/compose.yaml` at all of it (unique project, volume and
//! free loopback ports, small rotation, short intervals).
//!
//! Dropping the [`System`] prints diagnostics unless [`System::passed`] was
//! called (container states and logs, the tiers), takes the compose project
//! down, removes its volume, then the images and the plugin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cmd::Cmd;
use crate::env::{bin, free_port, require_tool, script, TestEnv};
use crate::guard::Guard;
use crate::resp::{Conn, Reply};
use crate::wait::wait_for;

/// Rotation size of the engine in system tests.
pub const ROTATE_BYTES: u64 = 256 * 1024;
/// Snapshots the snapshotter keeps on the primary tier in system tests.
pub const KEEP_SNAPSHOTS: usize = 2;

pub struct System {
    /// Unique id: compose project, image tag, registry repository, plugin name.
    pub id: String,
    pub work: PathBuf,
    pub primary: PathBuf,
    pub archive: PathBuf,
    pub plugin: String,
    pub engine_image: String,
    pub snapshotter_image: String,
    /// The compose volume (`TIERED_VOLUME`).
    pub volume: String,
    pub engine_port: u16,
    pub engine_metrics_port: u16,
    pub snapshotter_metrics_port: u16,
    /// Where the volume's files land on the host: PRIMARY/NAME/data (its root)
    /// and ARCHIVE/NAME (its archived/).
    pub data: PathBuf,
    pub archived: PathBuf,
    env: Vec<(String, String)>,
    ok: bool,
    composed: bool,
    // Dropped in this order, after Drop::drop.
    busybox: Option<Guard>,
    _images: [Guard; 2],
    _plugin: Guard,
}

impl System {
    /// Installs the plugin (from the registry, tag v1) and builds the images.
    pub fn start(t: &TestEnv) -> Result<System> {
        for tool in ["redis-cli", "docker-registry"] {
            require_tool(tool)?;
        }
        for b in ["tiered-plugin", "tiered-engine", "tiered-snapshotter"] {
            bin(b)?;
        }
        let id = t.id.clone();
        let work = t.tmp.path().to_owned();
        let (primary, archive) = (work.join("primary"), work.join("archive"));
        std::fs::create_dir_all(&primary)?;
        std::fs::create_dir_all(&archive)?;
        let plugin_guard = Guard::plugin(&id);
        registry_install(&id, &id, "v1", &primary, &archive)?;
        let engine_image = format!("tiered-engine:{id}");
        let snapshotter_image = format!("tiered-snapshotter:{id}");
        let images = [
            Guard::image(&engine_image),
            Guard::image(&snapshotter_image),
        ];
        script("images.sh").arg(&id).run()?;
        let volume = format!("{id}-data");
        let (engine_port, engine_metrics_port, snapshotter_metrics_port) =
            (free_port(), free_port(), free_port());
        let env = [
            ("COMPOSE_PROJECT_NAME", id.clone()),
            ("TIERED_ENGINE_IMAGE", engine_image.clone()),
            ("TIERED_SNAPSHOTTER_IMAGE", snapshotter_image.clone()),
            ("TIERED_VOLUME", volume.clone()),
            ("TIERED_DRIVER", id.clone()),
            ("TIERED_ENGINE_PORT", engine_port.to_string()),
            (
                "TIERED_ENGINE_METRICS_PORT",
                engine_metrics_port.to_string(),
            ),
            (
                "TIERED_SNAPSHOTTER_METRICS_PORT",
                snapshotter_metrics_port.to_string(),
            ),
            ("TIERED_ROTATE_BYTES", ROTATE_BYTES.to_string()),
            ("TIERED_ROTATE_INTERVAL", "2".to_owned()),
            ("TIERED_RESCAN_INTERVAL_SECS", "1".to_owned()),
            ("TIERED_KEEP_SNAPSHOTS", KEEP_SNAPSHOTS.to_string()),
            ("TIERED_MIN_LOGS", "1".to_owned()),
            ("TIERED_HEALTH_INTERVAL", "1s".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(System {
            data: primary.join(&volume).join("data"),
            archived: archive.join(&volume),
            plugin: id.clone(),
            id,
            work,
            primary,
            archive,
            engine_image,
            snapshotter_image,
            volume,
            engine_port,
            engine_metrics_port,
            snapshotter_metrics_port,
            env,
            ok: false,
            composed: false,
            busybox: None,
            _images: images,
            _plugin: plugin_guard,
        })
    }

    /// The test passed: no diagnostics on drop.
    pub fn passed(&mut self) {
        self.ok = true;
    }

    /// The compose environment, for `docker stack deploy` and the like.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `scripts/compose.sh ARGS…` in the test's environment.
    pub fn compose<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Ok(script("compose.sh")
            .envs(self.env.clone())
            .args(args)
            .run()?)
    }

    /// `compose up -d`; the project (containers, network, volume) goes on drop.
    pub fn compose_up(&mut self) -> Result<()> {
        self.composed = true;
        self.compose(["up", "-d"])?;
        Ok(())
    }

    /// The container id of a compose service.
    pub fn container(&self, service: &str) -> Result<String> {
        let id = self.compose(["ps", "-q", service])?;
        anyhow::ensure!(!id.is_empty(), "compose did not start {service}");
        Ok(id)
    }

    /// Waits until the engine answers PING (recovery done).
    pub fn wait_engine(&self, secs: u64) -> Result<()> {
        wait_engine(self.engine_port, secs)
    }

    /// A FROM-scratch busybox image running as 1000:1000, removed on drop.
    pub fn busybox(&mut self) -> Result<String> {
        let name = format!("{}-busybox", self.id);
        if self.busybox.is_none() {
            let ctx = self.work.join("busybox");
            self.busybox = Some(crate::image::busybox_image(&name, &ctx, Some("1000:1000"))?);
        }
        Ok(name)
    }

    fn diagnostics(&self) {
        diagnostics(&self.id, &self.work);
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if !self.ok {
            self.diagnostics();
        }
        if self.composed {
            if let Err(e) = self.compose(["down", "-v", "--timeout", "10"]) {
                eprintln!("cleanup: {e:#}");
            }
            drop(Guard::volume(&self.volume));
        }
    }
}

/// What a failed system test prints: the state and last log lines of every
/// container whose name holds `id`, and what lies on the tiers under `work`.
pub fn diagnostics(id: &str, work: &Path) {
    eprintln!("--- diagnostics ({id})");
    let script = r#"
        docker ps -a --filter "name=$ID" --format '{{.Names}} {{.Status}}'
        for c in $(docker ps -aq --filter "name=$ID"); do
          echo "--- logs of $(docker inspect -f '{{.Name}}' "$c")"
          docker logs --tail 30 "$c" 2>&1
        done
        echo "--- tiers"
        find "$WORK" -maxdepth 5 ! -name '*.snap' ! -name 'cmdlog-*.log' 2>/dev/null | head -60
        echo "($(find "$WORK" -name '*.snap' | wc -l) snapshots, $(find "$WORK" -name 'cmdlog-*.log' | wc -l) completed logs)"
    "#;
    let out = Cmd::new("sh")
        .args(["-c", script])
        .env("ID", id)
        .env("WORK", work)
        .output();
    if let Ok(out) = out {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// `scripts/registry.sh install` of the plugin as `alias` from
/// `localhost:PORT/REPO:TAG` on the given tiers.
pub fn registry_install(
    alias: &str,
    repo: &str,
    tag: &str,
    primary: &Path,
    archive: &Path,
) -> Result<()> {
    script("registry.sh")
        .args([
            "install",
            "--alias",
            alias,
            "--repo",
            repo,
            "--tag",
            tag,
            "--primary",
        ])
        .arg(primary)
        .arg("--archive")
        .arg(archive)
        .run()
        .with_context(|| format!("registry install of {alias}"))?;
    Ok(())
}

/// Waits until the engine on `port` answers PING.
pub fn wait_engine(port: u16, secs: u64) -> Result<()> {
    let pings = || {
        Conn::connect(port, Duration::from_secs(2))
            .and_then(|mut c| c.call(&[b"PING"]))
            .is_ok_and(|r| r == Reply::Simple("PONG".into()))
    };
    wait_for(
        Duration::from_secs(secs),
        &format!("the engine on port {port} to answer PING"),
        pings,
    )?;
    Ok(())
}

/// Names of the files in `dir` (not recursive) that start with `prefix` and
/// end with `suffix`, sorted; none if `dir` does not exist.
pub fn files(dir: &Path, prefix: &str, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// How many of [`files`].
pub fn count(dir: &Path, prefix: &str, suffix: &str) -> usize {
    files(dir, prefix, suffix).len()
}
