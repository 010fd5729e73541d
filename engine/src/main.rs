//! `tiered-engine`: the Redis-protocol engine with a write-ahead command log.

#![deny(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tiered_engine::{config, inspect, layout, Config, RecoveryMode};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Persistence dir (the engine writes only at its top level).
    #[arg(long, env = "TIERED_DIR", required = true)]
    dir: Option<PathBuf>,
    /// RESP (Redis protocol) listen address.
    #[arg(long, env = "TIERED_LISTEN", default_value = "127.0.0.1:6379")]
    listen: SocketAddr,
    /// Seal the open command-log segment at this size (bytes).
    #[arg(long, env = "TIERED_ROTATE_BYTES", default_value_t = config::DEFAULT_ROTATE_BYTES)]
    rotate_bytes: u64,
    /// Seal a non-empty open segment after this many seconds.
    #[arg(long = "rotate-interval", env = "TIERED_ROTATE_INTERVAL", default_value_t = config::DEFAULT_ROTATE_INTERVAL_SECS)]
    rotate_interval_secs: u64,
    /// Name of the snapshotter's archive dir inside --dir.
    #[arg(long, env = "TIERED_ARCHIVE_DIR_NAME", default_value = layout::DEFAULT_ARCHIVE_DIR_NAME)]
    archive_dir_name: String,
    /// Serve /metrics and /healthz on this address.
    #[arg(long, env = "TIERED_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Start even if the command log is damaged in the middle or has a gap,
    /// skipping the damage: acknowledged writes in it are LOST.
    #[arg(long, env = "TIERED_ACCEPT_DATA_LOSS")]
    accept_data_loss: bool,
    /// Most connected clients.
    #[arg(long, env = "TIERED_MAX_CLIENTS", default_value_t = config::DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Refuse writes (with an error, nothing logged) when less than this many
    /// bytes are free on the persistence volume. 0 disables the check.
    #[arg(long, env = "TIERED_RESERVE_BYTES", default_value_t = config::DEFAULT_RESERVE_BYTES)]
    reserve_bytes: u64,
    /// Threads serving clients (1 = a single-threaded event loop; fsync
    /// always runs on a separate blocking thread).
    #[arg(long, env = "TIERED_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    worker_threads: u16,
    /// Do not preallocate segments to --rotate-bytes.
    #[arg(long, env = "TIERED_NO_PREALLOCATE")]
    no_preallocate: bool,
    /// Do not write zeros over preallocated segments before use (each
    /// segment is then written once, not twice, but an fdatasync into
    /// fresh preallocated space also commits file-system metadata).
    #[arg(long, env = "TIERED_NO_ZERO_FILL")]
    no_zero_fill: bool,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Check every snapshot, record and checksum of a persistence dir; exit 1 on damage.
    Verify {
        #[arg(long, env = "TIERED_DIR")]
        dir: PathBuf,
        #[arg(long, env = "TIERED_ARCHIVE_DIR_NAME", default_value = layout::DEFAULT_ARCHIVE_DIR_NAME)]
        archive_dir_name: String,
    },
    /// Print records (seq, timestamp_ms, command) of a dir or of one segment or snapshot file.
    Dump {
        #[arg(
            long,
            env = "TIERED_DIR",
            conflicts_with = "file",
            required_unless_present = "file"
        )]
        dir: Option<PathBuf>,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, env = "TIERED_ARCHIVE_DIR_NAME", default_value = layout::DEFAULT_ARCHIVE_DIR_NAME)]
        archive_dir_name: String,
    },
    /// Ask a running engine's /healthz (a container health check: FROM-scratch
    /// images have no shell or curl); exit 0 when it answers 200, 1 otherwise.
    Health {
        /// The engine's --metrics-listen address.
        #[arg(long, env = "TIERED_HEALTH_ADDR", default_value = "127.0.0.1:9121")]
        addr: SocketAddr,
        /// Give up after this many seconds (connect, send, receive each).
        #[arg(long, env = "TIERED_HEALTH_TIMEOUT_SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
        timeout_secs: u64,
    },
    /// Benchmark replay speed: write a command log of --bytes, then recover it.
    #[command(hide = true)]
    BenchReplay {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        #[arg(long, default_value_t = 100)]
        value_bytes: usize,
        /// Replay this many times; the fastest run is reported.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
        runs: u16,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "tiered-engine: error: {}",
                tiered_engine::error_line(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Some(Sub::Verify {
            dir,
            archive_dir_name,
        }) => {
            let rep = inspect::verify(&dir, &archive_dir_name)
                .with_context(|| format!("verifying {}", dir.display()))?;
            for l in &rep.lines {
                println!("{l}");
            }
            for w in &rep.warnings {
                println!("warning: {w}");
            }
            for p in &rep.problems {
                println!("PROBLEM: {p}");
            }
            println!(
                "summary: {} snapshots, {} segments, {} records, {} bytes, last seq {}, {} warnings, {} problems",
                rep.snapshots,
                rep.segments,
                rep.records,
                rep.bytes,
                rep.last_seq,
                rep.warnings.len(),
                rep.problems.len()
            );
            Ok(if rep.ok() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Some(Sub::Dump {
            dir,
            file,
            archive_dir_name,
        }) => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let result = match (file, dir) {
                (Some(f), _) => inspect::dump_file(&f, &mut out),
                (None, Some(d)) => inspect::dump_dir(&d, &archive_dir_name, &mut out),
                (None, None) => unreachable!("clap requires --dir or --file"),
            }
            .and_then(|()| std::io::Write::flush(&mut out).map_err(inspect::DumpError::Output));
            match result {
                // the reader went away (`dump | head`): not an error
                Err(inspect::DumpError::Output(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.context("dump")?,
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Sub::Health { addr, timeout_secs }) => {
            match check_health(addr, Duration::from_secs(timeout_secs)) {
                Ok(()) => Ok(std::process::ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!(
                        "tiered-engine health: unhealthy: {}",
                        tiered_engine::error_line(e.as_ref())
                    );
                    Ok(std::process::ExitCode::FAILURE)
                }
            }
        }
        Some(Sub::BenchReplay {
            dir,
            bytes,
            value_bytes,
            runs,
        }) => {
            let r = tiered_engine::inspect::bench_replay(&dir, bytes, value_bytes, runs.into())?;
            println!("{r}");
            Ok(std::process::ExitCode::SUCCESS)
        }
        None => {
            let a = cli.run;
            let mut cfg = Config::new(a.dir.expect("clap requires --dir"), a.listen);
            cfg.rotate_bytes = a.rotate_bytes;
            cfg.rotate_interval = Duration::from_secs(a.rotate_interval_secs);
            cfg.archive_dir_name = a.archive_dir_name;
            cfg.metrics_listen = a.metrics_listen;
            cfg.max_clients = a.max_clients;
            cfg.reserve_bytes = a.reserve_bytes;
            cfg.preallocate = !a.no_preallocate;
            cfg.zero_fill = !a.no_zero_fill;
            if a.accept_data_loss {
                cfg.recovery_mode = RecoveryMode::TolerateCorruption;
                tracing::warn!("--accept-data-loss: damage in the command log will be skipped and its commands lost");
            }
            if !tiered_engine::alloc::purge_in_background() {
                tracing::warn!("jemalloc's background purge is off: freed memory returns to the system only as the engine allocates");
            }
            let rt = if a.worker_threads == 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(a.worker_threads.into());
                b
            }
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
            rt.block_on(async move {
                let shutdown = CancellationToken::new();
                let signals = shutdown.clone();
                tokio::spawn(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
                    }
                    signals.cancel();
                });
                tiered_engine::run(cfg, shutdown).await
            })?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// `GET /healthz` on the metrics listener at `addr` over plain HTTP/1.0 (the
/// server closes the connection after the reply): `Ok` on a 200, otherwise
/// what went wrong. Reads at most 4 KiB of the reply.
fn check_health(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .context("setting socket timeouts")?;
    stream
        .write_all(format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .with_context(|| format!("sending the request to {addr}"))?;
    let mut reply = Vec::new();
    stream
        .take(4096)
        .read_to_end(&mut reply)
        .with_context(|| format!("reading the reply of {addr}"))?;
    let reply = String::from_utf8_lossy(&reply);
    let status_line = reply.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        return Ok(());
    }
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
    anyhow::bail!("http://{addr}/healthz answered {status_line:?}: {body:?}")
}
