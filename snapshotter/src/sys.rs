//! The snapshotter's syscall seam: directory and file fsync, statvfs,
//! `renameat2(RENAME_NOREPLACE)`, errno classification (all from the shared
//! `tiered-sys` crate, wrapped with the operation and path in [`SysError`]),
//! and whole-file checksums.
//!
//! Every error carries the path and the operation so that a log line alone
//! tells the operator what failed where.

use std::io::{self, Read};
use std::path::Path;

pub use tiered_sys::fs::Space;
use tiered_sys::FileCursor;
pub use tiered_sys::{errno_of, is_cross_device, is_no_space, real, Fs, OpenMode, SysError};

/// fsyncs a directory so that the names created, renamed or removed in it are
/// durable.
pub fn fsync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), SysError> {
    fs.fsync_dir(dir)
        .map_err(|e| SysError::new("fsync dir", dir, e))
}

/// fsyncs a file's data and metadata.
pub fn fsync_file(fs: &dyn Fs, path: &Path) -> Result<(), SysError> {
    let f = fs
        .open(path, OpenMode::Read)
        .map_err(|e| SysError::new("open", path, e))?;
    f.fsync().map_err(|e| SysError::new("fsync", path, e))
}

/// fsyncs the directory that holds `path`.
pub fn fsync_parent(fs: &dyn Fs, path: &Path) -> Result<(), SysError> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fsync_dir(fs, p),
        _ => fsync_dir(fs, Path::new(".")),
    }
}

/// statvfs(2) of `path`.
pub fn statvfs(fs: &dyn Fs, path: &Path) -> Result<Space, SysError> {
    fs.statvfs(path)
        .map_err(|e| SysError::new("statvfs", path, e))
}

/// rename(2) that never replaces an existing `to` (EEXIST).
pub fn rename_noreplace(fs: &dyn Fs, from: &Path, to: &Path) -> Result<(), SysError> {
    fs.rename_noreplace(from, to)
        .map_err(|e| SysError::new("rename", to, e))
}

/// unlink(2); `Ok(false)` when it was already gone.
pub fn unlink(fs: &dyn Fs, path: &Path) -> Result<bool, SysError> {
    match fs.unlink(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(SysError::new("unlink", path, e)),
    }
}

/// True when `path` exists (as any kind of file; symlinks not followed).
pub fn exists(fs: &dyn Fs, path: &Path) -> Result<bool, SysError> {
    match fs.stat(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(SysError::new("stat", path, e)),
    }
}

/// Length and CRC32 of a whole file, the identity the mover compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    /// File length in bytes.
    pub len: u64,
    /// CRC32 (crc32fast) of every byte.
    pub crc32: u32,
}

/// Reads `path` to the end and returns its [`Digest`].
pub fn digest_file(fs: &dyn Fs, path: &Path) -> Result<Digest, SysError> {
    let file = fs
        .open(path, OpenMode::Read)
        .map_err(|e| SysError::new("open", path, e))?;
    digest_reader(&mut FileCursor { file, pos: 0 }).map_err(|e| SysError::new("read", path, e))
}

/// The [`Digest`] of everything `r` yields.
pub fn digest_reader(r: &mut impl Read) -> io::Result<Digest> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok(Digest {
        len,
        crc32: hasher.finalize(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classification_uses_the_code() {
        assert!(is_no_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_cross_device(&io::Error::from_raw_os_error(libc::EXDEV)));
        assert!(!is_cross_device(&io::Error::other(
            "EXDEV in the text does not count"
        )));
    }

    #[test]
    fn digest_covers_every_byte() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, b"hello world").unwrap();
        let fs = &*real();
        let da = digest_file(fs, &a).unwrap();
        assert_eq!(da.len, 11);
        std::fs::write(&a, b"hello worle").unwrap();
        assert_ne!(digest_file(fs, &a).unwrap(), da);
        assert!(exists(fs, &a).unwrap());
        assert!(unlink(fs, &a).unwrap());
        assert!(!unlink(fs, &a).unwrap());
        assert!(!exists(fs, &a).unwrap());
        let err = digest_file(fs, &d.path().join("missing")).unwrap_err();
        assert_eq!(err.errno(), Some(nix::errno::Errno::ENOENT));
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn statvfs_reports_a_size() {
        let d = tempfile::tempdir().unwrap();
        let s = statvfs(&*real(), d.path()).unwrap();
        assert!(s.total_bytes > 0 && s.free_bytes <= s.total_bytes, "{s:?}");
        fsync_dir(&*real(), d.path()).unwrap();
    }
}
