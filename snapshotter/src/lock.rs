//! The single-instance lock: an exclusive, non-blocking `flock` on
//! `DIR/snapshotter.lock`, held for the life of the process.
//!
//! The engine locks `DIR/engine.lock`, a different file, so the two run side by
//! side on one volume while a second snapshotter is refused. The kernel drops a
//! flock when its holder dies, even by SIGKILL, so a crash never leaves a stale
//! lock behind.

use std::io;
use std::path::{Path, PathBuf};

use tiered_sys::{lock_exclusive, FileLock};

/// Name of the lock file at the top of the persistence dir.
pub const LOCK_FILE_NAME: &str = tiered_engine::layout::SNAPSHOTTER_LOCK_FILE;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("another snapshotter is running on this volume ({} is locked)", path.display())]
    AlreadyRunning {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error("lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Proof that this process is the only snapshotter on a volume; unlocks on drop.
#[derive(Debug)]
pub struct InstanceLock {
    lock: FileLock,
}

impl InstanceLock {
    /// Takes the lock on `dir/snapshotter.lock` without waiting.
    pub fn acquire(dir: &Path) -> Result<InstanceLock, LockError> {
        match lock_exclusive(&dir.join(LOCK_FILE_NAME)) {
            Ok(lock) => {
                tracing::debug!(path = %lock.path().display(), "snapshotter lock taken");
                Ok(InstanceLock { lock })
            }
            Err(tiered_sys::LockError::Held { path }) => Err(LockError::AlreadyRunning { path }),
            Err(tiered_sys::LockError::Io { path, source }) => Err(LockError::Io { path, source }),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        self.lock.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{Flock, FlockArg};
    use std::fs::File;

    #[test]
    fn second_instance_is_refused_until_the_first_drops() {
        let d = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(d.path()).unwrap();
        let err = InstanceLock::acquire(d.path()).unwrap_err();
        assert!(matches!(err, LockError::AlreadyRunning { .. }), "{err}");
        drop(first);
        let again = InstanceLock::acquire(d.path()).unwrap();
        assert_eq!(again.path(), d.path().join(LOCK_FILE_NAME));
    }

    #[test]
    fn engine_lock_is_independent() {
        let d = tempfile::tempdir().unwrap();
        let engine = File::create(d.path().join("engine.lock")).unwrap();
        let _engine = Flock::lock(engine, FlockArg::LockExclusiveNonblock).unwrap();
        InstanceLock::acquire(d.path()).unwrap();
    }

    #[test]
    fn missing_dir_is_an_io_error_naming_the_path() {
        let d = tempfile::tempdir().unwrap();
        let err = InstanceLock::acquire(&d.path().join("nope")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }));
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
