//! Every file-system syscall the engine depends on for durability, in one
//! place: fsync, fdatasync, directory fsync, flock, fallocate, statvfs.
//!
//! Errors are `std::io::Error` so callers can check the errno
//! (`raw_os_error() == Some(libc::ENOSPC)`), never the message text.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

fn to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// fsync: file data and metadata.
pub fn fsync(file: &File) -> io::Result<()> {
    tracing::trace!("fsync");
    file.sync_all()
}

/// fdatasync: file data and the metadata needed to read it back.
pub fn fdatasync(file: &File) -> io::Result<()> {
    tracing::trace!("fdatasync");
    file.sync_data()
}

/// fsync of a directory, so that creates, renames and unlinks in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    tracing::trace!(dir = %dir.display(), "fsync dir");
    File::open(dir)?.sync_all()
}

/// Preallocates `len` bytes of `file` (the size grows to `len`; the new
/// space reads as zeros). File systems without fallocate (some FUSE and
/// overlay file systems) are accepted: `Ok(false)` means nothing was done.
pub fn fallocate(file: &File, len: u64) -> io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let len = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    match nix::fcntl::fallocate(
        file.as_raw_fd(),
        nix::fcntl::FallocateFlags::empty(),
        0,
        len,
    ) {
        Ok(()) => Ok(true),
        Err(Errno::EOPNOTSUPP) | Err(Errno::ENOSYS) => Ok(false),
        Err(e) => Err(to_io(e)),
    }
}

/// An exclusive, non-blocking flock held until the value is dropped.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
}

/// Why [`lock_exclusive`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{path} is locked by another process")]
    Held { path: std::path::PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

/// Creates (if needed) and flocks `path` exclusively without waiting.
pub fn lock_exclusive(path: &Path) -> Result<FileLock, LockError> {
    let io_err = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(FileLock { _lock: lock }),
        Err((_, Errno::EWOULDBLOCK)) => Err(LockError::Held {
            path: path.to_path_buf(),
        }),
        Err((_, e)) => Err(io_err(to_io(e))),
    }
}

/// Bytes available to an unprivileged writer on the file system of `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    #[cfg(feature = "failpoints")]
    {
        let injected: Option<u64> = (|| {
            fail::fail_point!("sys::free_bytes", |v| v.and_then(|s| s.parse().ok()));
            None
        })();
        if let Some(v) = injected {
            return Ok(v);
        }
    }
    let st = nix::sys::statvfs::statvfs(path).map_err(to_io)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between libcs
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// True when the error is "no space left on device" (by errno).
pub fn is_enospc(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let first = lock_exclusive(&p).unwrap();
        assert!(matches!(lock_exclusive(&p), Err(LockError::Held { .. })));
        drop(first);
        lock_exclusive(&p).unwrap();
    }

    #[test]
    fn fallocate_extends_with_zeros_and_free_bytes_answers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = File::create(&p).unwrap();
        if fallocate(&f, 8192).unwrap() {
            assert_eq!(std::fs::read(&p).unwrap(), vec![0u8; 8192]);
        }
        fsync(&f).unwrap();
        fdatasync(&f).unwrap();
        fsync_dir(dir.path()).unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(is_enospc(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_enospc(&io::Error::from_raw_os_error(libc::EIO)));
    }
}
