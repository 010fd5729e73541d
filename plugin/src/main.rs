//! `tiered-plugin`: the Docker volume plugin binary. See the library docs.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Docker volume plugin: a fast primary tier with a nested archive tier.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Unix socket to serve the VolumeDriver protocol (and GET /metrics) on.
    #[arg(
        long,
        env = "TIERED_SOCKET",
        default_value = "/run/docker/plugins/tiered.sock"
    )]
    socket: PathBuf,
    /// Fast tier: volume data and the plugin's metadata.
    #[arg(long, env = "TIERED_PRIMARY_ROOT", default_value = "/mnt/primary")]
    primary_root: PathBuf,
    /// Slow tier: each volume's archived/ contents.
    #[arg(long, env = "TIERED_ARCHIVE_ROOT", default_value = "/mnt/archive")]
    archive_root: PathBuf,
    /// Where mountpoints are made (the managed plugin's propagatedMount).
    #[arg(long, env = "TIERED_MOUNT_ROOT", default_value = "/mnt/volumes")]
    mount_root: PathBuf,
    /// Name of the sub-directory where the archive tier appears.
    #[arg(long, env = "TIERED_ARCHIVE_DIR_NAME", default_value = "archived")]
    archive_dir_name: String,
    /// Log filter: error, warn, info, debug, trace (or a tracing directive).
    #[arg(long, env = "TIERED_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Also serve GET /metrics on this TCP address (empty: no listener).
    #[arg(long, env = "TIERED_METRICS_LISTEN", default_value = "")]
    metrics_listen: String,
    /// Initialise a tier that has no identity marker (a new, empty disk).
    /// Used once: start once with it off before it initialises again.
    #[arg(long, env = "TIERED_TIER_INIT", default_value = "false", action = clap::ArgAction::Set)]
    tier_init: bool,
    /// The plugin's own state dir (outside the tiers; empty: none): keeps a
    /// copy of the tier identities and the volume index.
    #[arg(long, env = "TIERED_STATE_DIR", default_value = "")]
    state_dir: String,
    /// Host path of the primary tier, for messages (empty: unknown).
    #[arg(long, env = "TIERED_PRIMARY_SOURCE", default_value = "")]
    primary_source: String,
    /// Host path of the archive tier, for messages (empty: unknown).
    #[arg(long, env = "TIERED_ARCHIVE_SOURCE", default_value = "")]
    archive_source: String,
}

fn non_empty(s: &str) -> Option<PathBuf> {
    (!s.trim().is_empty()).then(|| PathBuf::from(s.trim()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let metrics_listen = match args.metrics_listen.trim() {
        "" => None,
        s => Some(
            s.parse::<SocketAddr>()
                .with_context(|| format!("invalid --metrics-listen {s:?} (expected IP:PORT)"))?,
        ),
    };
    let config = tiered_plugin::Config {
        socket: args.socket,
        tiers: tiered_plugin::Tiers {
            primary_root: args.primary_root,
            archive_root: args.archive_root,
            mount_root: args.mount_root,
            archive_dir_name: args.archive_dir_name,
        },
        metrics_listen,
        open: tiered_plugin::OpenOptions {
            identity: tiered_plugin::tiers::IdentityOptions {
                init: args.tier_init,
                state_dir: non_empty(&args.state_dir),
                primary_source: non_empty(&args.primary_source),
                archive_source: non_empty(&args.archive_source),
            },
            ..Default::default()
        },
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime
        .block_on(tiered_plugin::run(config, shutdown_signal()))
        .context("tiered-plugin failed")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
