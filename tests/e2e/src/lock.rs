//! The lock every real-daemon test holds on `/tmp/tiered-docker.lock`:
//! shared by tests that only use the daemon, exclusive for a test that
//! restarts or kills dockerd. Helpers running tests by hand take the same
//! lock with `flock -s` / `flock -x`.

use std::fs::{File, OpenOptions};

use nix::fcntl::{Flock, FlockArg};

pub const LOCK_PATH: &str = "/tmp/tiered-docker.lock";

/// Held until dropped.
#[derive(Debug)]
pub struct DockerLock {
    _lock: Flock<File>,
}

impl DockerLock {
    /// Waits for the shared lock.
    pub fn shared() -> std::io::Result<DockerLock> {
        DockerLock::take(FlockArg::LockShared)
    }
    /// Waits for the exclusive lock (no other real-daemon test runs meanwhile).
    pub fn exclusive() -> std::io::Result<DockerLock> {
        DockerLock::take(FlockArg::LockExclusive)
    }
    fn take(arg: FlockArg) -> std::io::Result<DockerLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(LOCK_PATH)?;
        let lock = Flock::lock(file, arg).map_err(|(_, e)| std::io::Error::from(e))?;
        Ok(DockerLock { _lock: lock })
    }
}
