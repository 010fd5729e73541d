//! `tiered-snapshotter`: parses the command line, sets up logging and hands
//! over to the library (`daemon::run`, `daemon::run_once`, `restore::restore`).

#![deny(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tiered_snapshotter::cli::{Cli, Command};
use tiered_snapshotter::metrics::Metrics;
use tiered_snapshotter::{daemon, http, restore};

fn main() -> ExitCode {
    let cli = Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Failure injection for the crash tests (FAILPOINTS=name=action;...).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();

    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tiered-snapshotter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let config = args.to_config();
            lower_priority(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("start the tokio runtime")?;
            runtime.block_on(async move {
                let shutdown = shutdown_signal().context("install signal handlers")?;
                daemon::run(config, Arc::new(Metrics::new()), shutdown)
                    .await
                    .context("snapshotter daemon")
            })
        }
        Command::Once(args) => {
            let config = args.to_config();
            lower_priority(&config)?;
            let report = daemon::run_once(&config, &Metrics::new()).context("snapshotter pass")?;
            tracing::info!("{report}");
            Ok(())
        }
        Command::Restore(args) => {
            let config = args.to_config();
            let done = restore::restore(&config).context("restore")?;
            tracing::info!("{done}");
            println!("{done}");
            Ok(())
        }
        Command::Health(args) => http::check_health(args.addr, args.timeout()).context("unhealthy"),
    }
}

/// Runs this thread, and so every thread started after it, at the
/// configured nice value and scheduling class (the command line bounds
/// both; the rest of the configuration is checked by `run`/`run_once`).
fn lower_priority(config: &tiered_snapshotter::config::Config) -> anyhow::Result<()> {
    use tiered_snapshotter::config::CpuClass;
    tiered_sys::sched::set_nice(config.nice)
        .with_context(|| format!("setpriority(nice {})", config.nice))?;
    if config.cpu_class == CpuClass::Idle {
        tiered_sys::sched::set_idle_class().context("sched_setscheduler(SCHED_IDLE)")?;
    }
    tracing::debug!(nice = config.nice, class = ?config.cpu_class, "priority lowered");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
