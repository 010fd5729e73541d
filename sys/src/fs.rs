//! The durability syscalls on real files, in one place.
//!
//! Functions on an open file or a path return `std::io::Error` so callers can
//! check the errno (`is_no_space`, `errno_of`), never the message text; the
//! caller adds the path and the operation in its own typed error, or wraps
//! the error in [`SysError`].

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A failed syscall, with the operation and the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct SysError {
    /// What was attempted (`fsync dir`, `statvfs`, ...).
    pub op: &'static str,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SysError {
    /// Wraps `source` with the operation and path.
    pub fn new(op: &'static str, path: &Path, source: io::Error) -> Self {
        SysError {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The errno, if the error came from the OS.
    pub fn errno(&self) -> Option<Errno> {
        errno_of(&self.source)
    }
}

/// The errno of an `io::Error`, if it has one.
pub fn errno_of(err: &io::Error) -> Option<Errno> {
    err.raw_os_error().map(Errno::from_raw)
}

/// True if `err` is ENOSPC (or EDQUOT, the per-user variant of a full disk).
pub fn is_no_space(err: &io::Error) -> bool {
    matches!(errno_of(err), Some(Errno::ENOSPC) | Some(Errno::EDQUOT))
}

/// True if `err` is EXDEV (rename or link across file systems).
pub fn is_cross_device(err: &io::Error) -> bool {
    errno_of(err) == Some(Errno::EXDEV)
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

/// sync_file_range: starts writeback of bytes `offset..offset + len` of
/// `file` and, with `wait`, waits until it (and any writeback of that range
/// already in flight) is done. It makes nothing durable (no metadata, no
/// flush of the device's cache): it keeps a large file from piling up dirty
/// pages that its final fsync, or another file's fdatasync on the same disk,
/// would then have to push out at once. A write error of that range is
/// returned (EIO); a file system that cannot do it (ENOSYS, EOPNOTSUPP,
/// EINVAL) is accepted as `Ok`, since this is only a hint.
pub fn writeback(file: &File, offset: u64, len: u64, wait: bool) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: sync_file_range takes no pointers; the descriptor is borrowed
    // from `file` and stays open for the whole call. (nix 0.29 has no
    // wrapper for it.)
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match errno_of(&e) {
        Some(Errno::ENOSYS) | Some(Errno::EOPNOTSUPP) | Some(Errno::EINVAL) => Ok(()),
        _ => Err(e),
    }
}

/// fsync of a directory, so that creates, renames and unlinks in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    tracing::trace!(dir = %dir.display(), "fsync dir");
    File::open(dir)?.sync_all()
}

/// Preallocates `len` bytes of `file` from offset 0 (the size grows to at
/// least `len`; new space reads as zeros). File systems without fallocate
/// (some FUSE and overlay file systems) are accepted: `Ok(false)` means
/// nothing was done.
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
        Err(e) => Err(e.into()),
    }
}

/// Free and total bytes of a file system (statvfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes available to an unprivileged writer (`f_bavail * f_frsize`).
    pub free_bytes: u64,
    /// Size of the file system (`f_blocks * f_frsize`).
    pub total_bytes: u64,
}

/// statvfs(2) of the file system holding `path`.
pub fn statvfs(path: &Path) -> io::Result<Space> {
    let st = nix::sys::statvfs::statvfs(path)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between libcs
    let frsize = st.fragment_size() as u64;
    #[allow(clippy::unnecessary_cast)]
    Ok(Space {
        free_bytes: (st.blocks_available() as u64).saturating_mul(frsize),
        total_bytes: (st.blocks() as u64).saturating_mul(frsize),
    })
}

/// rename(2) that never replaces an existing `to`: `renameat2` with
/// `RENAME_NOREPLACE`, or, where the file system lacks it, a check then a
/// rename (callers hold a lock that keeps others from creating `to`).
/// An existing `to` is EEXIST.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) | Err(Errno::ENOSYS) | Err(Errno::EOPNOTSUPP) => {
            match std::fs::symlink_metadata(to) {
                Ok(_) => Err(io::Error::from_raw_os_error(libc::EEXIST)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::rename(from, to),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// An exclusive, non-blocking flock, held until the value is dropped. The
/// kernel drops it when its holder dies, even by SIGKILL.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why [`lock_exclusive`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{} is locked by another process", path.display())]
    Held {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
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
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(FileLock {
            _lock: lock,
            path: path.to_path_buf(),
        }),
        Err((_, Errno::EWOULDBLOCK)) => Err(LockError::Held {
            path: path.to_path_buf(),
        }),
        Err((_, e)) => Err(io_err(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writeback_starts_and_waits_and_reports_errors() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("w")).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        writeback(&f, 0, 1 << 20, false).unwrap();
        writeback(&f, 0, 1 << 20, true).unwrap();
        let e = writeback(&f, u64::MAX, 1, true).unwrap_err();
        assert_eq!(errno_of(&e), Some(Errno::EFBIG));
        // Not a file: the error is returned, not swallowed.
        let (r, _w) = nix::unistd::pipe().unwrap();
        let e = writeback(&File::from(r), 0, 1, true).unwrap_err();
        assert_eq!(errno_of(&e), Some(Errno::ESPIPE));
    }

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let first = lock_exclusive(&p).unwrap();
        assert_eq!(first.path(), p);
        assert!(matches!(lock_exclusive(&p), Err(LockError::Held { .. })));
        drop(first);
        lock_exclusive(&p).unwrap();
        let e = lock_exclusive(&dir.path().join("missing/x.lock")).unwrap_err();
        assert!(
            matches!(&e, LockError::Io { source, .. } if errno_of(source) == Some(Errno::ENOENT)),
            "{e}"
        );
    }

    #[test]
    fn fallocate_extends_with_zeros_and_statvfs_answers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = File::create(&p).unwrap();
        if fallocate(&f, 8192).unwrap() {
            assert_eq!(std::fs::read(&p).unwrap(), vec![0u8; 8192]);
        }
        fsync(&f).unwrap();
        fdatasync(&f).unwrap();
        fsync_dir(dir.path()).unwrap();
        let s = statvfs(dir.path()).unwrap();
        assert!(s.total_bytes > 0 && s.free_bytes <= s.total_bytes, "{s:?}");
        assert!(is_no_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_no_space(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_no_space(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(is_cross_device(&io::Error::from_raw_os_error(libc::EXDEV)));
        assert!(!is_cross_device(&io::Error::other("EXDEV in the text")));
    }

    #[test]
    fn rename_noreplace_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(errno_of(&e), Some(Errno::EEXIST));
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        std::fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"a");
        assert!(!a.exists());
        let err = SysError::new("rename", &a, io::Error::from_raw_os_error(libc::EXDEV));
        assert_eq!(err.errno(), Some(Errno::EXDEV));
    }
}
