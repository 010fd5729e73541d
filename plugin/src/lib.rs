//! tiered-plugin: a Docker managed volume plugin that gives every volume a
//! fast primary directory with a nested `archived/` path that really lives
//! on a second, cheaper storage tier.
//!
//! It speaks the VolumeDriver protocol over HTTP on a unix socket. On the
//! first `Mount` of volume `NAME` it bind-mounts `PRIMARY/NAME/data` at
//! `MOUNT_ROOT/NAME` and `ARCHIVE/NAME` over `MOUNT_ROOT/NAME/archived`;
//! mounts are counted per (volume, ID) and the last `Unmount` takes both
//! down. Metadata and mount references live on the primary tier, so they
//! survive restarts and `docker plugin rm`. Each tier carries an identity
//! marker; a tier that is not the one the plugin initialised (a disk that
//! failed to mount) is never written to, and changes are refused.
//!
//! # Layout
//!
//! - [`protocol`]: endpoints, typed requests parsed from JSON, responses.
//! - [`volume`]: volume name, mount ID and option validation.
//! - [`driver`]: the tiers, mounts with reference counts, per-volume locks.
//! - [`state`]: metadata on the primary tier, atomic writes, the trash.
//! - [`tiers`]: tier identity markers and the recorded pair of identities.
//! - [`index`]: the volume index on both tiers, archive dir owners.
//! - [`mounts`]: the kernel calls (bind mount, unmount, mount table as
//!   bytes, statvfs, chown, renameat2, fsync, recursive delete) behind the
//!   [`mounts::Syscalls`] trait.
//! - [`quota`]: per-tier sizes enforced by btrfs qgroups or XFS/ext4
//!   project quotas, behind the [`quota::QuotaSys`] trait.
//! - [`metrics`]: Prometheus exposition.
//! - [`server`]: hyper on the unix socket (and optional TCP for metrics).
//! - [`run`]: open the driver, bind, serve until shutdown.

pub mod driver;
pub mod index;
pub mod metrics;
pub mod mounts;
pub mod protocol;
pub mod quota;
pub mod server;
pub mod state;
pub mod tiers;
pub mod volume;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use driver::{Driver, DriverError, OpenOptions, Tiers};
pub use mounts::{NixSyscalls, Syscalls};

/// Everything `run` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The plugin socket (protocol and `GET /metrics`).
    pub socket: PathBuf,
    pub tiers: Tiers,
    /// Also serve `GET /metrics` on this TCP address.
    pub metrics_listen: Option<SocketAddr>,
    /// Tier initialisation, the plugin's own state dir, retries.
    pub open: OpenOptions,
}

/// Why the plugin could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("socket {path}: another process is listening on it")]
    SocketInUse { path: PathBuf },
    #[error("socket {path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metrics listener {addr}: {source}")]
    MetricsListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening the driver: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Runs the plugin with the real system calls until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_with(config, Arc::new(NixSyscalls), shutdown).await
}

/// [`run`] with the given system calls (tests wrap the real ones).
pub async fn run_with(
    config: Config,
    sys: Arc<dyn Syscalls>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    // Check the socket before touching any mount: a second instance must
    // change nothing.
    check_socket(&config.socket)?;
    let tcp = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::MetricsListen { addr, source })?,
        ),
        None => None,
    };
    let tiers = config.tiers.clone();
    let open = config.open.clone();
    let driver =
        Arc::new(tokio::task::spawn_blocking(move || Driver::open_with(tiers, sys, open)).await??);
    let unix = bind_socket(&config.socket)?;
    if let Some(l) = &tcp {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "metrics listening");
        }
    }
    tracing::info!(
        socket = %config.socket.display(),
        primary = %driver.tiers().primary_root.display(),
        archive = %driver.tiers().archive_root.display(),
        mount_root = %driver.tiers().mount_root.display(),
        primary_tier = driver.identity().last_states()[0].label(),
        archive_tier = driver.identity().last_states()[1].label(),
        "plugin listening"
    );
    let app = Arc::new(server::App {
        driver,
        metrics: metrics::Metrics::new(),
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server::serve(app, unix, tcp, rx));
    shutdown.await;
    tracing::info!("shutting down");
    let _ = tx.send(true);
    let joined = serving.await;
    if let Err(e) = std::fs::remove_file(&config.socket) {
        tracing::warn!(socket = %config.socket.display(), error = %e, "cannot remove socket");
    }
    joined?;
    Ok(())
}

fn check_socket(path: &Path) -> Result<(), RunError> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(RunError::SocketInUse {
                    path: path.to_owned(),
                });
            }
            Ok(())
        }
        Ok(_) => Err(RunError::NotASocket {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RunError::Socket {
            path: path.to_owned(),
            source,
        }),
    }
}

fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, RunError> {
    let err = |source| RunError::Socket {
        path: path.to_owned(),
        source,
    };
    check_socket(path)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    // A stale socket (nobody listening) from a previous run.
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    tokio::net::UnixListener::bind(path).map_err(err)
}
