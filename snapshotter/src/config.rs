//! What the snapshotter is told to do: the daemon's [`Config`] and the
//! restore's [`RestoreConfig`], each checked by `validate` before anything
//! touches the disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default name of the archive sub-directory (the archive tier's mount point).
pub const DEFAULT_ARCHIVE_DIR_NAME: &str = "archived";
/// Default number of snapshots kept on the primary tier.
pub const DEFAULT_KEEP_SNAPSHOTS: usize = 2;
/// Default seconds between fallback rescans (inotify does the fast path).
pub const DEFAULT_RESCAN_INTERVAL_SECS: u64 = 30;
/// Upper bound on `--rescan-interval-secs` (one day).
pub const MAX_RESCAN_INTERVAL_SECS: u64 = 86_400;
/// The scheduling class the snapshotter's threads run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuClass {
    /// `SCHED_IDLE`: only CPU time no normal thread wants; preempted at once
    /// when one wakes (the engine's latency is untouched), never starved
    /// outright. Under a CPU-saturating load snapshots slow down: watch
    /// `tiered_snapshotter_pending_logs`.
    Idle,
    /// The normal class at `--nice`: snapshots keep pace under full load, at
    /// a cost to the engine's latency on shared cores.
    Normal,
}

/// Default nice value of the snapshotter's threads (0..=19).
pub const DEFAULT_NICE: i32 = 10;
/// Default cap on the rate a snapshot is written at, MiB/s (32 kept the
/// engine's SET rate at 0.94-0.96 of idle and its p99 at 1.02-1.13 in four
/// runs of the benchmark's section 5; 64 gave 0.75-0.89 and 1.11-2.79).
pub const DEFAULT_SNAPSHOT_WRITE_MIB_PER_SEC: u64 = 32;
/// Upper bound on `--snapshot-write-mib-per-sec`.
pub const MAX_SNAPSHOT_WRITE_MIB_PER_SEC: u64 = 1 << 20;
/// Upper bound on `--keep-snapshots`.
pub const MAX_KEEP_SNAPSHOTS: usize = 10_000;

/// A configuration that cannot work; nothing was touched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--archive-dir-name` is not a single plain path component.
    #[error("--archive-dir-name {0:?} must be one plain directory name (not empty, not '.' or '..', no '/' or NUL, at most 255 bytes, not ending in .tmp)")]
    BadArchiveDirName(String),
    /// A numeric flag is outside its bounds.
    #[error("--{flag} {value} is out of range ({range})")]
    OutOfRange {
        /// The flag, without dashes.
        flag: &'static str,
        /// The value given.
        value: u64,
        /// The accepted range, for the message.
        range: &'static str,
    },
    /// The persistence dir does not exist or is not a directory.
    #[error("--dir {0}: not a directory")]
    NotADirectory(PathBuf),
}

/// The daemon's and `once`'s configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The persistence dir (the engine's `--dir`).
    pub dir: PathBuf,
    /// Name of the archive sub-directory inside `dir`.
    pub archive_dir_name: String,
    /// A snapshot is made once at least this many sealed logs are pending.
    pub min_logs: u64,
    /// ... and they hold at least this many bytes.
    pub min_bytes: u64,
    /// Snapshots kept on the primary tier; older ones are archived.
    pub keep_snapshots: usize,
    /// Archive retention by age: history older than this may be deleted.
    pub retain_days: Option<u64>,
    /// Archive retention by size: delete oldest history above this many bytes.
    pub retain_bytes: Option<u64>,
    /// Where to serve `/metrics` and `/healthz`.
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds between fallback rescans.
    pub rescan_interval_secs: u64,
    /// Nice value the binary runs at (0..=19; applied by `main` before any
    /// thread starts): snapshots are background work and yield the CPU to
    /// the engine on the same cores.
    pub nice: i32,
    /// The scheduling class (applied by `main` with `nice`).
    pub cpu_class: CpuClass,
    /// Cap on the rate a snapshot is written at, bytes/s (`None`: no cap);
    /// it is written in chunks handed to writeback either way, so that it
    /// does not stall the engine's fdatasync on the same disk
    /// ([`tiered_sys::pace`]).
    pub snapshot_write_rate: Option<u64>,
}

impl Config {
    /// A configuration with the documented defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Config {
        Config {
            dir: dir.into(),
            archive_dir_name: DEFAULT_ARCHIVE_DIR_NAME.to_string(),
            min_logs: 1,
            min_bytes: 0,
            keep_snapshots: DEFAULT_KEEP_SNAPSHOTS,
            retain_days: None,
            retain_bytes: None,
            metrics_listen: None,
            rescan_interval_secs: DEFAULT_RESCAN_INTERVAL_SECS,
            nice: DEFAULT_NICE,
            cpu_class: CpuClass::Idle,
            snapshot_write_rate: Some(DEFAULT_SNAPSHOT_WRITE_MIB_PER_SEC << 20),
        }
    }

    /// Checks every bound; also that `dir` is an existing directory.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_archive_dir_name(&self.archive_dir_name)?;
        if self.min_logs == 0 {
            return Err(ConfigError::OutOfRange {
                flag: "min-logs",
                value: 0,
                range: ">= 1",
            });
        }
        if self.keep_snapshots == 0 || self.keep_snapshots > MAX_KEEP_SNAPSHOTS {
            return Err(ConfigError::OutOfRange {
                flag: "keep-snapshots",
                value: self.keep_snapshots as u64,
                range: "1..=10000",
            });
        }
        if self.rescan_interval_secs == 0 || self.rescan_interval_secs > MAX_RESCAN_INTERVAL_SECS {
            return Err(ConfigError::OutOfRange {
                flag: "rescan-interval-secs",
                value: self.rescan_interval_secs,
                range: "1..=86400",
            });
        }
        if !(0..=tiered_sys::sched::NICE_MAX).contains(&self.nice) {
            return Err(ConfigError::OutOfRange {
                flag: "nice",
                value: self.nice as u64,
                range: "0..=19",
            });
        }
        if let Some(rate) = self.snapshot_write_rate {
            if rate == 0 || rate > MAX_SNAPSHOT_WRITE_MIB_PER_SEC << 20 {
                return Err(ConfigError::OutOfRange {
                    flag: "snapshot-write-mib-per-sec",
                    value: rate >> 20,
                    range: "0 (no cap) or 1..=1048576",
                });
            }
        }
        if let Some(days) = self.retain_days {
            // 100 years: keeps the seconds arithmetic far from overflow.
            if days > 36_500 {
                return Err(ConfigError::OutOfRange {
                    flag: "retain-days",
                    value: days,
                    range: "0..=36500",
                });
            }
        }
        if !self.dir.is_dir() {
            return Err(ConfigError::NotADirectory(self.dir.clone()));
        }
        Ok(())
    }

    /// The archive directory (`dir/archived`).
    pub fn archive_dir(&self) -> PathBuf {
        self.dir.join(&self.archive_dir_name)
    }

    /// The fallback rescan period.
    pub fn rescan_interval(&self) -> Duration {
        Duration::from_secs(self.rescan_interval_secs)
    }
}

/// Checks that `name` is one plain directory name.
pub fn validate_archive_dir_name(name: &str) -> Result<(), ConfigError> {
    tiered_engine::layout::validate_archive_dir_name(name)
        .map_err(|_| ConfigError::BadArchiveDirName(name.to_string()))
}

/// The point a restore stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Every command with a sequence number `<=` this one.
    Seq(u64),
    /// Every command logged at or before this wall-clock time (ms since the
    /// Unix epoch): the history up to, not including, the first command logged
    /// after it.
    TimeMs(u64),
    /// Every command the history holds (the newest state).
    Latest,
}

/// `restore --from DIR (--to-seq N | --to-time T | --latest) --into NEWDIR`.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The persistence dir holding the history (primary + archive).
    pub from: PathBuf,
    /// Name of the archive sub-directory inside `from`.
    pub archive_dir_name: String,
    /// Where the history stops.
    pub target: RestoreTarget,
    /// The new persistence dir to build: must not exist, or be empty but for
    /// an empty `archive_dir_name` sub-directory (a new tiered volume's root,
    /// where that directory is the archive tier's mount).
    pub into: PathBuf,
}

/// Parses `--to-time`: RFC 3339 (`2026-11-21T21:00:00Z`) or unix milliseconds.
pub fn parse_time_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map_err(|e| format!("{s:?}: not a unix time in ms: {e}"));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?}: neither RFC 3339 nor unix milliseconds: {e}"))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| format!("{s:?}: before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::new(d.path());
        c.validate().unwrap();
        assert_eq!(c.archive_dir(), d.path().join("archived"));
        assert_eq!(c.keep_snapshots, 2);
        assert_eq!(c.min_logs, 1);
    }

    #[test]
    fn bad_values_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for name in ["", ".", "..", "a/b"] {
            let mut c = Config::new(d.path());
            c.archive_dir_name = name.into();
            assert_eq!(
                c.validate(),
                Err(ConfigError::BadArchiveDirName(name.into()))
            );
        }
        let mut c = Config::new(d.path());
        c.keep_snapshots = 0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OutOfRange {
                flag: "keep-snapshots",
                ..
            })
        ));
        let mut c = Config::new(d.path());
        c.min_logs = 0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OutOfRange {
                flag: "min-logs",
                ..
            })
        ));
        let mut c = Config::new(d.path());
        c.rescan_interval_secs = 0;
        assert!(c.validate().is_err());
        let c = Config::new(d.path().join("missing"));
        assert!(matches!(c.validate(), Err(ConfigError::NotADirectory(_))));
    }

    #[test]
    fn time_parsing() {
        assert_eq!(parse_time_ms("1700000000123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time_ms("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(
            parse_time_ms("2023-11-14T22:13:20+00:00"),
            Ok(1_700_000_000_000)
        );
        assert!(parse_time_ms("yesterday").is_err());
        assert!(parse_time_ms("1969-12-31T23:59:59Z").is_err());
    }
}
