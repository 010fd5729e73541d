//! `tiered-lossyfs mount --backing DIR --mountpoint DIR --control SOCK`:
//! serves the lossy file system until SIGTERM or SIGINT, then unmounts.
//! `tiered-lossyfs ctl SOCK cut SEED` / `ctl SOCK status`: talks to it.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};

#[derive(Parser)]
#[command(about = "A FUSE file system that loses unsynced writes at a simulated power cut")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serves BACKING at MOUNTPOINT until SIGTERM/SIGINT.
    Mount {
        /// The directory that holds the data.
        #[arg(long)]
        backing: PathBuf,
        /// Where the file system appears.
        #[arg(long)]
        mountpoint: PathBuf,
        /// The control socket (`cut <seed>`, `status`).
        #[arg(long)]
        control: PathBuf,
        /// Let other users than the mounting one in (allow_other).
        #[arg(long)]
        allow_other: bool,
    },
    /// Sends a command (`cut <seed>`, `status`) to a running file system.
    Ctl {
        /// The control socket.
        control: PathBuf,
        /// The command words.
        #[arg(required = true)]
        command: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fuser=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Ctl { control, command } => {
            let reply = tiered_lossyfs::control::send(&control, &command.join(" "))
                .with_context(|| format!("control socket {}", control.display()))?;
            println!("{reply}");
            if !reply.starts_with("ok") {
                bail!("{reply}");
            }
            Ok(())
        }
        Cmd::Mount {
            backing,
            mountpoint,
            control,
            allow_other,
        } => {
            // Block the stop signals in every thread; the main one waits.
            let mut stop = SigSet::empty();
            stop.add(Signal::SIGTERM);
            stop.add(Signal::SIGINT);
            stop.thread_block().context("block signals")?;
            let fs = tiered_lossyfs::LossyFs::new(&backing)
                .with_context(|| format!("backing dir {}", backing.display()))?;
            tiered_lossyfs::control::serve(fs.clone(), &control)
                .with_context(|| format!("control socket {}", control.display()))?;
            let mut cfg = fuser::Config::default();
            cfg.mount_options = vec![
                fuser::MountOption::FSName("tiered-lossyfs".into()),
                fuser::MountOption::Subtype("lossyfs".into()),
            ];
            if allow_other {
                cfg.acl = fuser::SessionACL::All;
            }
            let session = fuser::spawn_mount(fs, &mountpoint, &cfg)
                .with_context(|| format!("mount at {}", mountpoint.display()))?;
            tracing::info!(backing = %backing.display(), mountpoint = %mountpoint.display(), "lossyfs: mounted");
            let sig = stop.wait().context("wait for a signal")?;
            tracing::info!(?sig, "lossyfs: unmounting");
            session.umount_and_join().context("unmount")?;
            Ok(())
        }
    }
}
