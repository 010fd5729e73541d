//! The engine's syscall seam. The durability syscalls and the file seam
//! ([`Fs`], [`FsFile`], with the real [`RealFs`] and the fault-injecting
//! [`FaultFs`]) come from the shared `tiered-sys` crate; this module adds
//! what only the engine needs.
//!
//! Errors are `std::io::Error` so callers can check the errno
//! (`raw_os_error() == Some(libc::ENOSPC)`), never the message text.

use std::io;
use std::path::Path;

pub use tiered_sys::fs::{fallocate, fdatasync, fsync, fsync_dir, statvfs, Space};
pub use tiered_sys::{
    lock_exclusive, real, Fault, FaultFs, FileCursor, FileLock, Fs, FsFile, LockError, Op,
    OpenMode, PacedWriter, RealFs, Rule, WritePace,
};

/// Bytes available to an unprivileged writer on the file system of `path`.
/// Failpoint `sys::free_bytes` (feature `failpoints`) replaces the answer.
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
    Ok(statvfs(path)?.free_bytes)
}

/// True when the error is "no space left on device" (ENOSPC or EDQUOT, by errno).
pub fn is_enospc(e: &io::Error) -> bool {
    tiered_sys::is_no_space(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_answers_and_enospc_is_told_by_errno() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(is_enospc(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_enospc(&io::Error::from_raw_os_error(libc::EIO)));
    }
}
