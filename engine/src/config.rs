//! Engine configuration: documented defaults and validation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::layout::DEFAULT_ARCHIVE_DIR_NAME;
use crate::recovery::RecoveryMode;
use crate::sys::Fs;

/// Default size at which the open segment is sealed: 64 MiB.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// Default age at which a non-empty open segment is sealed: 60 s.
pub const DEFAULT_ROTATE_INTERVAL_SECS: u64 = 60;
/// Default free space kept on the persistence volume: writes are refused
/// (with a clear error, nothing logged) when less is free: 16 MiB.
pub const DEFAULT_RESERVE_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on connected clients.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;

/// Smallest accepted `rotate_bytes`.
pub const MIN_ROTATE_BYTES: u64 = 4096;
/// Largest accepted `rotate_bytes` (also bounds preallocation).
pub const MAX_ROTATE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    /// The persistence dir (`/app/persistence` in a container).
    pub dir: PathBuf,
    /// RESP listener address.
    pub listen: SocketAddr,
    /// Seal the open segment once it holds this many bytes.
    pub rotate_bytes: u64,
    /// Seal a non-empty open segment this long after it was opened.
    pub rotate_interval: Duration,
    /// Name of the snapshotter's archive dir inside `dir`.
    pub archive_dir_name: String,
    /// `/metrics` and `/healthz` listener, none when absent.
    pub metrics_listen: Option<SocketAddr>,
    pub recovery_mode: RecoveryMode,
    pub max_clients: usize,
    /// Free bytes kept on the volume; writes are refused below it.
    pub reserve_bytes: u64,
    /// Preallocate each segment to `rotate_bytes` (off the write path).
    pub preallocate: bool,
    /// Write zeros over each preallocated segment before it is used, so
    /// that an fdatasync of the open segment changes no metadata
    /// ([`crate::segment::PreparedFile::zero_fill`]).
    pub zero_fill: bool,
    /// The file seam the command log and recovery go through: the real file
    /// system, or in tests a fault-injecting or simulated one.
    pub fs: Arc<dyn Fs>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--rotate-bytes {0} out of range ({MIN_ROTATE_BYTES}..={MAX_ROTATE_BYTES})")]
    RotateBytes(u64),
    #[error("--rotate-interval {0} s out of range (1..=86400)")]
    RotateInterval(u64),
    #[error("--archive-dir-name {0:?} must be one plain directory name (not empty, not '.' or '..', no '/' or NUL, at most 255 bytes, not ending in .tmp)")]
    ArchiveDirName(String),
    #[error("--max-clients {0} out of range (1..=1000000)")]
    MaxClients(usize),
}

impl Config {
    /// A configuration with every default.
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr) -> Config {
        Config {
            dir: dir.into(),
            listen,
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            rotate_interval: Duration::from_secs(DEFAULT_ROTATE_INTERVAL_SECS),
            archive_dir_name: DEFAULT_ARCHIVE_DIR_NAME.to_string(),
            metrics_listen: None,
            recovery_mode: RecoveryMode::Strict,
            max_clients: DEFAULT_MAX_CLIENTS,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            preallocate: true,
            zero_fill: true,
            fs: crate::sys::real(),
        }
    }

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_ROTATE_BYTES..=MAX_ROTATE_BYTES).contains(&self.rotate_bytes) {
            return Err(ConfigError::RotateBytes(self.rotate_bytes));
        }
        let secs = self.rotate_interval.as_secs();
        if !(1..=86_400).contains(&secs) {
            return Err(ConfigError::RotateInterval(secs));
        }
        if crate::layout::validate_archive_dir_name(&self.archive_dir_name).is_err() {
            return Err(ConfigError::ArchiveDirName(self.archive_dir_name.clone()));
        }
        if !(1..=1_000_000).contains(&self.max_clients) {
            return Err(ConfigError::MaxClients(self.max_clients));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let ok = Config::new("/tmp/x", "127.0.0.1:0".parse().unwrap());
        ok.validate().unwrap();
        let mut c = ok.clone();
        c.rotate_bytes = 10;
        assert!(matches!(c.validate(), Err(ConfigError::RotateBytes(10))));
        let mut c = ok.clone();
        c.rotate_interval = Duration::ZERO;
        assert!(matches!(c.validate(), Err(ConfigError::RotateInterval(0))));
        for bad in ["", "..", ".", "a/b", "/abs", "x.tmp"] {
            let mut c = ok.clone();
            c.archive_dir_name = bad.into();
            assert!(
                matches!(c.validate(), Err(ConfigError::ArchiveDirName(_))),
                "{bad}"
            );
        }
        let mut c = ok.clone();
        c.max_clients = 0;
        assert!(c.validate().is_err());
    }
}
