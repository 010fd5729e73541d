//! The command line (clap derive). Every flag is also an environment variable
//! `TIERED_*`. `main` parses a [`Cli`] and turns it into a [`Config`] or a
//! [`RestoreConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, RestoreConfig, RestoreTarget};

/// Snapshots from completed command logs, crash-safe archival to the archive
/// tier, retention, point-in-time restore.
///
/// Without a subcommand, `run` (the flags are `run`'s).
#[derive(Debug, Parser)]
#[command(name = "tiered-snapshotter", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` (the program name first); `run` is inserted when the
    /// first argument is not a subcommand, so `tiered-snapshotter --dir P`
    /// is `tiered-snapshotter run --dir P`. (A flattened optional `run`
    /// beside the subcommands made clap take any `TIERED_*` variable as a
    /// top-level flag and then ask for `--dir` even after `once --dir P`.)
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
        let is_command = <Cli as clap::CommandFactory>::command()
            .find_subcommand(first)
            .is_some()
            || ["help", "-h", "--help", "-V", "--version"].contains(&first);
        if !is_command {
            args.insert(args.len().min(1), "run".into());
        }
        Cli::try_parse_from(args)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the persistence dir and snapshot, archive and prune (the default).
    Run(DaemonArgs),
    /// Do one pass (snapshot if due, archive, retention) and exit; for cron and tests.
    Once(DaemonArgs),
    /// Build a new persistence dir holding the state as of a sequence number or a time.
    Restore(RestoreArgs),
    /// Ask a running snapshotter's /healthz (a container health check:
    /// FROM-scratch images have no shell or curl); exit 0 when it answers 200,
    /// 1 otherwise.
    Health(HealthArgs),
}

/// Flags of `health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The snapshotter's --metrics-listen address, as seen from inside its container.
    #[arg(long, env = "TIERED_HEALTH_ADDR", default_value = "127.0.0.1:9122")]
    pub addr: SocketAddr,
    /// Give up after this many seconds (connect, send, receive each).
    #[arg(long, env = "TIERED_HEALTH_TIMEOUT_SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout_secs: u64,
}

impl HealthArgs {
    /// The timeout of each step of the check.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// A number that may be left empty: an empty value (`TIERED_RETAIN_BYTES=`,
/// what a compose file's `${TIERED_RETAIN_BYTES:-}` gives when the variable
/// is unset) means "not set". A type alias, so that clap's derive does not
/// read `Option<Option<u64>>` as "a flag with an optional value".
pub type OptionalU64 = Option<u64>;

/// Parses an [`OptionalU64`]: empty (or blank) is `None`, else a `u64`.
pub fn parse_optional_u64(s: &str) -> Result<OptionalU64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u64>()
        .map(Some)
        .map_err(|e| format!("{s:?}: not a non-negative integer: {e}"))
}

/// Flags of `run` and `once`.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// The persistence dir (the engine's --dir).
    #[arg(long, env = "TIERED_DIR")]
    pub dir: PathBuf,
    /// Name of the archive sub-directory (the archive tier's mount) inside --dir.
    #[arg(long, env = "TIERED_ARCHIVE_DIR_NAME", default_value = config::DEFAULT_ARCHIVE_DIR_NAME)]
    pub archive_dir_name: String,
    /// Make a snapshot once at least this many completed logs are not yet covered by one.
    #[arg(long, env = "TIERED_MIN_LOGS", default_value_t = 1)]
    pub min_logs: u64,
    /// ... and those logs hold at least this many bytes.
    #[arg(long, env = "TIERED_MIN_BYTES", default_value_t = 0)]
    pub min_bytes: u64,
    /// Snapshots kept on the primary tier; older ones move to the archive.
    #[arg(long, env = "TIERED_KEEP_SNAPSHOTS", default_value_t = config::DEFAULT_KEEP_SNAPSHOTS)]
    pub keep_snapshots: usize,
    /// Keep at least this many days of restorable history in the archive
    /// (empty: no age limit).
    #[arg(long, env = "TIERED_RETAIN_DAYS", value_parser = parse_optional_u64)]
    pub retain_days: Option<OptionalU64>,
    /// Delete the oldest archived history while the archive holds more bytes
    /// than this (empty: no size limit).
    #[arg(long, env = "TIERED_RETAIN_BYTES", value_parser = parse_optional_u64)]
    pub retain_bytes: Option<OptionalU64>,
    /// Serve /metrics and /healthz on this address (e.g. 0.0.0.0:9122).
    #[arg(long, env = "TIERED_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds between fallback rescans of the dir (inotify wakes the daemon sooner).
    #[arg(long, env = "TIERED_RESCAN_INTERVAL_SECS", default_value_t = config::DEFAULT_RESCAN_INTERVAL_SECS)]
    pub rescan_interval_secs: u64,
    /// Nice value to run at (0..=19): snapshots yield the CPU to the engine.
    #[arg(long, env = "TIERED_NICE", default_value_t = config::DEFAULT_NICE, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub nice: i32,
    /// Scheduling class: idle (SCHED_IDLE: only CPU time the engine leaves,
    /// preempted at once when it wakes) or normal (at --nice).
    #[arg(long, env = "TIERED_CPU_CLASS", value_enum, default_value_t = config::CpuClass::Idle)]
    pub cpu_class: config::CpuClass,
    /// Cap on the rate a snapshot is written at, MiB/s (0: no cap). Written
    /// in chunks handed to writeback either way, so that a large snapshot
    /// does not stall the engine's fdatasync on the same disk.
    #[arg(long, env = "TIERED_SNAPSHOT_WRITE_MIB_PER_SEC", default_value_t = config::DEFAULT_SNAPSHOT_WRITE_MIB_PER_SEC, value_parser = clap::value_parser!(u64).range(0..=config::MAX_SNAPSHOT_WRITE_MIB_PER_SEC))]
    pub snapshot_write_mib_per_sec: u64,
}

impl DaemonArgs {
    /// The library configuration (not yet validated).
    pub fn to_config(&self) -> Config {
        Config {
            dir: self.dir.clone(),
            archive_dir_name: self.archive_dir_name.clone(),
            min_logs: self.min_logs,
            min_bytes: self.min_bytes,
            keep_snapshots: self.keep_snapshots,
            retain_days: self.retain_days.flatten(),
            retain_bytes: self.retain_bytes.flatten(),
            metrics_listen: self.metrics_listen,
            rescan_interval_secs: self.rescan_interval_secs,
            nice: self.nice,
            cpu_class: self.cpu_class,
            snapshot_write_rate: match self.snapshot_write_mib_per_sec {
                0 => None,
                mib => Some(mib << 20),
            },
        }
    }
}

/// Flags of `restore`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("restore_target").required(true).args(["to_seq", "to_time", "latest"])))]
pub struct RestoreArgs {
    /// The persistence dir whose history (primary + archive) is read.
    #[arg(long, env = "TIERED_RESTORE_FROM")]
    pub from: PathBuf,
    /// Name of the archive sub-directory inside --from.
    #[arg(long, env = "TIERED_ARCHIVE_DIR_NAME", default_value = config::DEFAULT_ARCHIVE_DIR_NAME)]
    pub archive_dir_name: String,
    /// Restore the state after the command with this sequence number.
    #[arg(long, env = "TIERED_RESTORE_TO_SEQ")]
    pub to_seq: Option<u64>,
    /// Restore the state as of this time: RFC 3339 or unix milliseconds.
    #[arg(long, env = "TIERED_RESTORE_TO_TIME", value_parser = config::parse_time_ms)]
    pub to_time: Option<u64>,
    /// Restore the newest state the history holds (every command logged).
    #[arg(long)]
    pub latest: bool,
    /// The new persistence dir to create (must not exist, or be empty but
    /// for an empty archive sub-directory: a new tiered volume's root).
    #[arg(long, env = "TIERED_RESTORE_INTO")]
    pub into: PathBuf,
}

impl RestoreArgs {
    /// The library configuration (not yet validated).
    pub fn to_config(&self) -> RestoreConfig {
        let target = match (self.to_seq, self.to_time) {
            (Some(seq), _) => RestoreTarget::Seq(seq),
            (None, Some(ms)) => RestoreTarget::TimeMs(ms),
            // `--latest`; clap's required group makes it the only case left.
            (None, None) => RestoreTarget::Latest,
        };
        RestoreConfig {
            from: self.from.clone(),
            archive_dir_name: self.archive_dir_name.clone(),
            target,
            into: self.into.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("tiered-snapshotter").chain(args.iter().copied()))
    }

    #[test]
    fn run_is_the_default() {
        let cli = parse(&["--dir", "/p", "--min-logs", "3"]).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("expected run")
        };
        let c = a.to_config();
        assert_eq!(c.dir, PathBuf::from("/p"));
        assert_eq!(c.min_logs, 3);
        assert_eq!(c.keep_snapshots, 2);
        assert_eq!(c.archive_dir_name, "archived");
    }

    #[test]
    fn subcommands_parse() {
        let cli = parse(&[
            "once",
            "--dir",
            "/p",
            "--retain-bytes",
            "100",
            "--metrics-listen",
            "127.0.0.1:9122",
        ])
        .unwrap();
        let Command::Once(a) = cli.command else {
            panic!("expected once")
        };
        assert_eq!(a.retain_bytes, Some(Some(100)));
        assert_eq!(a.metrics_listen, Some("127.0.0.1:9122".parse().unwrap()));

        let cli = parse(&[
            "restore",
            "--from",
            "/p",
            "--to-time",
            "1970-01-01T00:00:02Z",
            "--into",
            "/n",
        ])
        .unwrap();
        let Command::Restore(r) = cli.command else {
            panic!("expected restore")
        };
        assert_eq!(r.to_config().target, RestoreTarget::TimeMs(2000));

        let cli = parse(&["restore", "--from", "/p", "--latest", "--into", "/n"]).unwrap();
        let Command::Restore(r) = cli.command else {
            panic!("expected restore")
        };
        assert_eq!(r.to_config().target, RestoreTarget::Latest);

        let cli = parse(&["health", "--addr", "127.0.0.1:1", "--timeout-secs", "3"]).unwrap();
        let Command::Health(h) = cli.command else {
            panic!("expected health")
        };
        assert_eq!(h.addr, "127.0.0.1:1".parse().unwrap());
        assert_eq!(h.timeout(), Duration::from_secs(3));
    }

    #[test]
    fn empty_retention_values_mean_unset() {
        let cli = parse(&[
            "once",
            "--dir",
            "/p",
            "--retain-bytes",
            "",
            "--retain-days",
            " ",
        ])
        .unwrap();
        let Command::Once(a) = cli.command else {
            panic!("expected once")
        };
        let c = a.to_config();
        assert_eq!(c.retain_bytes, None);
        assert_eq!(c.retain_days, None);
        let cli = parse(&[
            "once",
            "--dir",
            "/p",
            "--retain-bytes",
            "7",
            "--retain-days",
            "3",
        ])
        .unwrap();
        let Command::Once(a) = cli.command else {
            panic!("expected once")
        };
        let c = a.to_config();
        assert_eq!((c.retain_bytes, c.retain_days), (Some(7), Some(3)));
        assert!(parse(&["once", "--dir", "/p", "--retain-bytes", "-1"]).is_err());
        assert!(parse(&["once", "--dir", "/p", "--retain-days", "soon"]).is_err());
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(parse(&["--dir", "/p", "--metrics-listen", "nonsense"]).is_err());
        assert!(parse(&["--dir", "/p", "--min-logs", "-1"]).is_err());
        assert!(parse(&["restore", "--from", "/p", "--into", "/n"]).is_err());
        assert!(parse(&[
            "restore",
            "--from",
            "/p",
            "--into",
            "/n",
            "--to-seq",
            "1",
            "--to-time",
            "5"
        ])
        .is_err());
        assert!(parse(&[
            "restore",
            "--from",
            "/p",
            "--into",
            "/n",
            "--to-time",
            "soon"
        ])
        .is_err());
        assert!(
            parse(&["restore", "--from", "/p", "--into", "/n", "--latest", "--to-seq", "1"])
                .is_err()
        );
        assert!(parse(&["health", "--addr", "nowhere"]).is_err());
        assert!(parse(&["health", "--timeout-secs", "0"]).is_err());
    }
}
