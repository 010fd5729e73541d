//! The file seam: every file-system call the engine and the snapshotter make
//! on their persistence dir goes through [`Fs`] (paths and directories) and
//! [`FsFile`] (an open file).
//!
//! The trait is small and object-safe (`Arc<dyn Fs>`), so a test can put
//! another implementation behind it: [`crate::FaultFs`] fails chosen calls,
//! and a simulated disk that keeps unsynced writes apart from synced ones
//! (and loses or tears them at a simulated power cut) fits the same trait.
//! Errors are `std::io::Error` carrying the errno; callers add the path and
//! operation in their typed errors.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::fs::{self as sysfs, Space};

/// How [`Fs::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; created if missing, truncated to 0 if present.
    CreateTruncate,
    /// Read and write; created, EEXIST if it exists.
    CreateNew,
}

/// An open file. Offsets are explicit (pread/pwrite), so a handle is shared
/// without a cursor.
pub trait FsFile: Send + Sync + fmt::Debug {
    /// pread: reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// pwrite: writes up to `buf.len()` bytes at `offset`; may write fewer.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// The file's size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: data written so far, and the size, are durable.
    fn fdatasync(&self) -> io::Result<()>;
    /// fsync: data and metadata are durable.
    fn fsync(&self) -> io::Result<()>;
    /// Starts writeback of `offset..offset + len` and, with `wait`, waits
    /// for it (sync_file_range): a pacing hint that makes nothing durable.
    fn writeback(&self, offset: u64, len: u64, wait: bool) -> io::Result<()>;
    /// Preallocates bytes `0..len` (reads as zeros); `Ok(false)` when the
    /// file system cannot (nothing done).
    fn fallocate(&self, len: u64) -> io::Result<bool>;
    /// Sets the modification (and access) time, as a copy keeps its source's.
    fn set_times(&self, modified: SystemTime, accessed: Option<SystemTime>) -> io::Result<()>;

    /// Writes all of `buf` at `offset`, retrying short writes.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Fills `buf` from `offset`; `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What [`Fs::stat`] tells about a name (lstat: a symlink is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, where the file system keeps one.
    pub modified: Option<SystemTime>,
    /// A directory.
    pub is_dir: bool,
}

/// Paths and directories.
pub trait Fs: Send + Sync + fmt::Debug {
    /// lstat(2) of `path` (ENOENT when it does not exist).
    fn stat(&self, path: &Path) -> io::Result<Stat>;
    /// Opens (or creates, per `mode`) a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>>;
    /// The names in `dir` (not `.` and `..`), in no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Creates one directory (EEXIST if it exists).
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// rename(2), replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// rename(2) that never replaces `to` (EEXIST).
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// link(2): a second name for `from` (EXDEV across file systems).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// unlink(2).
    fn unlink(&self, path: &Path) -> io::Result<()>;
    /// fsync of a directory: its creates, renames and unlinks are durable.
    fn fsync_dir(&self, dir: &Path) -> io::Result<()>;
    /// statvfs(2) of the file system holding `path`.
    fn statvfs(&self, path: &Path) -> io::Result<Space>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

/// A shared handle to [`RealFs`].
pub fn real() -> Arc<dyn Fs> {
    static REAL: OnceLock<Arc<dyn Fs>> = OnceLock::new();
    REAL.get_or_init(|| Arc::new(RealFs)).clone()
}

/// A real open file is an [`FsFile`].
impl FsFile for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(self, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn fdatasync(&self) -> io::Result<()> {
        sysfs::fdatasync(self)
    }
    fn fsync(&self) -> io::Result<()> {
        sysfs::fsync(self)
    }
    fn writeback(&self, offset: u64, len: u64, wait: bool) -> io::Result<()> {
        sysfs::writeback(self, offset, len, wait)
    }
    fn fallocate(&self, len: u64) -> io::Result<bool> {
        sysfs::fallocate(self, len)
    }
    fn set_times(&self, modified: SystemTime, accessed: Option<SystemTime>) -> io::Result<()> {
        let mut times = std::fs::FileTimes::new().set_modified(modified);
        if let Some(a) = accessed {
            times = times.set_accessed(a);
        }
        File::set_times(self, times)
    }
}

/// `std::io::Read` and `Write` over an [`FsFile`] from a position (for
/// `BufReader` and `BufWriter`).
#[derive(Debug)]
pub struct FileCursor {
    /// The file.
    pub file: Box<dyn FsFile>,
    /// Offset of the next read.
    pub pos: u64,
}

impl io::Write for FileCursor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for FileCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Fs for RealFs {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(Stat {
            len: m.len(),
            modified: m.modified().ok(),
            is_dir: m.is_dir(),
        })
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateTruncate => o.read(true).write(true).create(true).truncate(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
        };
        Ok(Box::new(o.open(path)?))
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        sysfs::rename_noreplace(from, to)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        sysfs::fsync_dir(dir)
    }
    fn statvfs(&self, path: &Path) -> io::Result<Space> {
        sysfs::statvfs(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::errno_of;
    use nix::errno::Errno;

    #[test]
    fn real_fs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let fs = real();
        let p = dir.path().join("f");
        let f = fs.open(&p, OpenMode::CreateNew).unwrap();
        assert_eq!(
            errno_of(&fs.open(&p, OpenMode::CreateNew).unwrap_err()),
            Some(Errno::EEXIST)
        );
        f.write_all_at(b"hello", 3).unwrap();
        assert_eq!(f.size().unwrap(), 8);
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"\0\0\0hello");
        assert_eq!(
            f.read_exact_at(&mut b, 1).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        f.fdatasync().unwrap();
        f.fsync().unwrap();
        if f.fallocate(4096).unwrap() {
            assert_eq!(f.size().unwrap(), 4096);
        }
        f.set_len(5).unwrap();
        assert_eq!(f.size().unwrap(), 5);
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        f.set_times(t, None).unwrap();
        let st = fs.stat(&p).unwrap();
        assert_eq!((st.len, st.modified, st.is_dir), (5, Some(t), false));
        assert!(fs.stat(dir.path()).unwrap().is_dir);
        fs.create_dir(&dir.path().join("d")).unwrap();
        fs.hard_link(&p, &dir.path().join("d/l")).unwrap();
        fs.rename_noreplace(&p, &dir.path().join("g")).unwrap();
        std::fs::write(dir.path().join("d/m"), b"m").unwrap();
        fs.rename(&dir.path().join("g"), &dir.path().join("d/m"))
            .unwrap();
        assert_eq!(std::fs::read(dir.path().join("d/m")).unwrap(), b"\0\0\0he");
        let mut names = fs.read_dir(dir.path()).unwrap();
        names.sort();
        assert_eq!(names, vec![OsString::from("d")]);
        fs.unlink(&dir.path().join("d/l")).unwrap();
        fs.unlink(&dir.path().join("d/m")).unwrap();
        fs.fsync_dir(dir.path()).unwrap();
        assert!(fs.statvfs(dir.path()).unwrap().total_bytes > 0);
        assert_eq!(
            errno_of(&fs.open(&p, OpenMode::Read).unwrap_err()),
            Some(Errno::ENOENT)
        );
    }
}
