//! Crash-safe, idempotent move of one file into an archive directory that may
//! be on another file system.
//!
//! `rename(2)` cannot cross file systems (EXDEV), and the archive tier is a
//! different mount, so a move is a sequence of steps each of which leaves the
//! file whole in at least one place:
//!
//! ```text
//!  dst exists? ── identical (len + CRC32) ──► unlink src, fsync src dir   (done)
//!       │      └─ different ──────────────► DestinationDiffers (nothing touched)
//!       no
//!  link(src, dst) ── ok ──► fsync dst dir ─► verify ─► unlink src ─► fsync src dir
//!       │ EXDEV/EPERM/EOPNOTSUPP
//!  remove stale dst/NAME.tmp
//!  copy src ─► dst/NAME.tmp  (CRC32 of the source computed while reading; mtime kept)
//!  fsync NAME.tmp
//!  rename NAME.tmp ─► dst/NAME   (never replaces: RENAME_NOREPLACE)
//!  fsync dst dir
//!  verify dst: CRC32 + length equal to the source's, then the format check
//!  unlink src
//!  fsync src dir
//! ```
//!
//! A crash before the rename leaves a stale `.tmp` (removed by the next move of
//! that file, or by [`clean_stale_temps`]); a crash after it leaves two identical
//! copies, and the next run sees an identical destination and only removes the
//! source, as PostgreSQL's `archive_command` convention asks. A destination that
//! differs is never overwritten: it is an error for the operator.
//!
//! A shutdown can abandon a copy in progress ([`move_file_interruptible`]):
//! the temp file is removed and the source kept.
//!
//! Failpoints (feature `failpoints`), each returning [`MoveError::Injected`]:
//! `mover::after_copy`, `mover::after_rename`, `mover::after_dst_fsync`,
//! `mover::before_unlink`, `mover::after_unlink`, `mover::after_link`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use crate::sys::{self, Digest, Fs, OpenMode, SysError};

/// Suffix of the mover's temp files (the one every reader ignores).
pub const TEMP_SUFFIX: &str = tiered_engine::layout::TEMP_SUFFIX;

/// A format-level check run on the archived copy before the source goes
/// (`verify_segment` for logs, `verify_snapshot` for snapshots).
pub type Verifier<'a> = &'a dyn Fn(&Path) -> Result<(), String>;

/// What a successful [`move_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The file was moved (copied or hard-linked) now; `bytes` long.
    Moved {
        /// Size of the file.
        bytes: u64,
    },
    /// An identical copy was already in the archive (a crashed earlier move);
    /// only the source was removed.
    AlreadyArchived {
        /// Size of the file.
        bytes: u64,
    },
    /// The source was already gone and the destination exists.
    AlreadyDone,
}

/// Why a move failed. In every case the file is whole in at least one place.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// A syscall failed (ENOSPC included: see [`MoveError::is_no_space`]).
    #[error(transparent)]
    Sys(#[from] SysError),
    /// The destination exists with other content; it is left alone.
    #[error("{} already exists and differs from {} ({} bytes crc {:08x} vs {} bytes crc {:08x}); not overwriting", dst.display(), src.display(), dst_digest.len, dst_digest.crc32, src_digest.len, src_digest.crc32)]
    DestinationDiffers {
        /// The file being moved.
        src: PathBuf,
        /// The existing destination.
        dst: PathBuf,
        /// Source length and CRC.
        src_digest: Digest,
        /// Destination length and CRC.
        dst_digest: Digest,
    },
    /// The copy read back differs from what was read from the source; the
    /// copy was removed and the source kept.
    #[error("copy {} does not match its source {} after writing; copy removed, source kept", dst.display(), src.display())]
    CopyMismatch {
        /// The file being moved.
        src: PathBuf,
        /// The bad copy (removed).
        dst: PathBuf,
    },
    /// The archived copy fails the format check; the source is kept.
    #[error("archived copy {} fails verification: {reason}; source {} kept", dst.display(), src.display())]
    VerifyFailed {
        /// The file being moved.
        src: PathBuf,
        /// The archived copy.
        dst: PathBuf,
        /// What the format check said.
        reason: String,
    },
    /// Neither the source nor the destination exists.
    #[error("{} does not exist and {} was never archived", src.display(), dst.display())]
    SourceMissing {
        /// The file that was to be moved.
        src: PathBuf,
        /// Where it should have gone.
        dst: PathBuf,
    },
    /// The source path has no file name.
    #[error("{} has no file name", .0.display())]
    BadSource(PathBuf),
    /// A shutdown abandoned the copy; the source is untouched.
    #[error("copy of {} abandoned for shutdown; source kept", .0.display())]
    Interrupted(PathBuf),
    /// An injected failure (tests only).
    #[error("injected failure at {0}")]
    Injected(&'static str),
}

impl MoveError {
    /// True if the move failed because a file system is full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, MoveError::Sys(e) if sys::is_no_space(&e.source))
    }
}

macro_rules! failpoint {
    ($name:literal) => {
        fail::fail_point!($name, |_| Err(MoveError::Injected($name)));
    };
}

/// Moves `src` to `dst_dir/<file name of src>` crash-safely (see the module
/// doc). `dst_dir` must exist. `verify` runs on the archived copy before the
/// source is unlinked.
pub fn move_file(src: &Path, dst_dir: &Path, verify: Verifier) -> Result<MoveOutcome, MoveError> {
    move_file_interruptible(src, dst_dir, verify, &AtomicBool::new(false))
}

/// [`move_file`] that abandons a copy in progress once `stop` turns true
/// (shutdown): the partial temp file is removed, the source is untouched, and
/// [`MoveError::Interrupted`] is returned.
pub fn move_file_interruptible(
    src: &Path,
    dst_dir: &Path,
    verify: Verifier,
    stop: &AtomicBool,
) -> Result<MoveOutcome, MoveError> {
    move_file_on(&*sys::real(), src, dst_dir, verify, stop)
}

/// [`move_file_interruptible`] through the file seam `fs`.
pub fn move_file_on(
    fs: &dyn Fs,
    src: &Path,
    dst_dir: &Path,
    verify: Verifier,
    stop: &AtomicBool,
) -> Result<MoveOutcome, MoveError> {
    let name = src
        .file_name()
        .ok_or_else(|| MoveError::BadSource(src.to_path_buf()))?;
    let dst = dst_dir.join(name);
    let src_dir = src.parent().unwrap_or(Path::new("."));

    let src_exists = sys::exists(fs, src)?;
    if sys::exists(fs, &dst)? {
        if !src_exists {
            return Ok(MoveOutcome::AlreadyDone);
        }
        let src_digest = sys::digest_file(fs, src)?;
        let dst_digest = sys::digest_file(fs, &dst)?;
        if src_digest != dst_digest {
            return Err(MoveError::DestinationDiffers {
                src: src.to_path_buf(),
                dst,
                src_digest,
                dst_digest,
            });
        }
        verify(&dst).map_err(|reason| MoveError::VerifyFailed {
            src: src.to_path_buf(),
            dst: dst.clone(),
            reason,
        })?;
        // The copy may be the leftover of a run that crashed between the
        // rename and the fsync of the archive dir: make it durable before
        // the source goes, or a power loss could lose both names.
        sys::fsync_file(fs, &dst)?;
        sys::fsync_dir(fs, dst_dir)?;
        tracing::info!(src = %src.display(), dst = %dst.display(), "identical copy already archived; removing the source");
        unlink_and_sync(fs, src, src_dir)?;
        return Ok(MoveOutcome::AlreadyArchived {
            bytes: src_digest.len,
        });
    }
    if !src_exists {
        return Err(MoveError::SourceMissing {
            src: src.to_path_buf(),
            dst,
        });
    }

    // Same file system: a hard link is an atomic, no-replace "copy".
    match fs.hard_link(src, &dst) {
        Ok(()) => {
            failpoint!("mover::after_link");
            sys::fsync_dir(fs, dst_dir)?;
            verify(&dst).map_err(|reason| MoveError::VerifyFailed {
                src: src.to_path_buf(),
                dst: dst.clone(),
                reason,
            })?;
            let bytes = fs
                .stat(&dst)
                .map_err(|e| SysError::new("stat", &dst, e))?
                .len;
            unlink_and_sync(fs, src, src_dir)?;
            return Ok(MoveOutcome::Moved { bytes });
        }
        Err(e)
            if matches!(
                sys::errno_of(&e),
                Some(Errno::EXDEV) | Some(Errno::EPERM) | Some(Errno::EOPNOTSUPP)
            ) =>
        {
            tracing::debug!(src = %src.display(), dst = %dst.display(), "cannot link ({e}); copying");
        }
        Err(e) => return Err(SysError::new("link", &dst, e).into()),
    }

    let tmp = dst_dir.join(format!("{}{TEMP_SUFFIX}", name.to_string_lossy()));
    if sys::unlink(fs, &tmp).map_err(|e| SysError::new("remove stale temp", &tmp, e.source))? {
        tracing::info!(tmp = %tmp.display(), "removed a stale temp file");
    }
    let src_digest = match copy_to_temp(fs, src, &tmp, stop) {
        Ok(d) => d,
        Err(e) => {
            // Never leave a partial copy eating space on a full archive.
            let _ = fs.unlink(&tmp);
            return Err(e);
        }
    };
    failpoint!("mover::after_copy");
    sys::rename_noreplace(fs, &tmp, &dst)?;
    failpoint!("mover::after_rename");
    sys::fsync_dir(fs, dst_dir)?;
    failpoint!("mover::after_dst_fsync");

    let dst_digest = sys::digest_file(fs, &dst)?;
    if dst_digest != src_digest {
        fs.unlink(&dst)
            .map_err(|e| SysError::new("remove bad copy", &dst, e))?;
        sys::fsync_dir(fs, dst_dir)?;
        return Err(MoveError::CopyMismatch {
            src: src.to_path_buf(),
            dst,
        });
    }
    verify(&dst).map_err(|reason| MoveError::VerifyFailed {
        src: src.to_path_buf(),
        dst: dst.clone(),
        reason,
    })?;
    failpoint!("mover::before_unlink");
    unlink_and_sync(fs, src, src_dir)?;
    Ok(MoveOutcome::Moved {
        bytes: src_digest.len,
    })
}

fn unlink_and_sync(fs: &dyn Fs, src: &Path, src_dir: &Path) -> Result<(), MoveError> {
    fs.unlink(src)
        .map_err(|e| SysError::new("unlink", src, e))?;
    failpoint!("mover::after_unlink");
    sys::fsync_dir(fs, src_dir)?;
    Ok(())
}

/// Copies `src` into a new `tmp`, fsyncs it, keeps the source's mtime, and
/// returns the digest of the bytes read from the source.
fn copy_to_temp(
    fs: &dyn Fs,
    src: &Path,
    tmp: &Path,
    stop: &AtomicBool,
) -> Result<Digest, MoveError> {
    let input = fs
        .open(src, OpenMode::Read)
        .map_err(|e| SysError::new("open", src, e))?;
    let meta = fs.stat(src).map_err(|e| SysError::new("stat", src, e))?;
    let out = fs
        .open(tmp, OpenMode::CreateNew)
        .map_err(|e| SysError::new("create", tmp, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(MoveError::Interrupted(src.to_path_buf()));
        }
        let n = match input.read_at(&mut buf, len) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SysError::new("read", src, e).into()),
        };
        hasher.update(&buf[..n]);
        out.write_all_at(&buf[..n], len)
            .map_err(|e| SysError::new("write", tmp, e))?;
        len += n as u64;
    }
    if let Some(m) = meta.modified {
        out.set_times(m, None)
            .map_err(|e| SysError::new("set times", tmp, e))?;
    }
    out.fsync().map_err(|e| SysError::new("fsync", tmp, e))?;
    Ok(Digest {
        len,
        crc32: hasher.finalize(),
    })
}

/// Removes the mover's leftover `*.tmp` files in `dir` (from a crash between
/// copy and rename). Returns how many were removed. A missing `dir` is fine.
pub fn clean_stale_temps(fs: &dyn Fs, dir: &Path) -> Result<usize, SysError> {
    let names = match fs.read_dir(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(SysError::new("read dir", dir, e)),
    };
    let mut removed = 0;
    for name in names {
        if !name.to_string_lossy().ends_with(TEMP_SUFFIX) {
            continue;
        }
        let path = dir.join(name);
        if sys::unlink(fs, &path)
            .map_err(|e| SysError::new("remove stale temp", &path, e.source))?
        {
            tracing::info!(tmp = %path.display(), "removed a stale temp file");
            removed += 1;
        }
    }
    if removed > 0 {
        sys::fsync_dir(fs, dir)?;
    }
    Ok(removed)
}

/// Creates `dir` (and missing parents), fsyncing each parent that gained an
/// entry so the new directories survive a crash.
pub fn ensure_dir(fs: &dyn Fs, dir: &Path) -> Result<(), SysError> {
    match fs.stat(dir) {
        Ok(st) if st.is_dir => return Ok(()),
        _ => {}
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            ensure_dir(fs, parent)?;
        }
    }
    match fs.create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(SysError::new("mkdir", dir, e)),
    }
    sys::fsync_parent(fs, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tiered_sys::{Fault, FaultFs, Op, Rule};

    fn ok(_: &Path) -> Result<(), String> {
        Ok(())
    }

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("cmdlog-1.log");
        fs::write(&src, b"some log bytes").unwrap();
        let archive = d.path().join("archived/logs");
        ensure_dir(&*sys::real(), &archive).unwrap();
        (d, src, archive)
    }

    #[test]
    fn moves_within_one_file_system() {
        let (_d, src, archive) = setup();
        let out = move_file(&src, &archive, &ok).unwrap();
        assert_eq!(out, MoveOutcome::Moved { bytes: 14 });
        assert!(!src.exists());
        assert_eq!(
            fs::read(archive.join("cmdlog-1.log")).unwrap(),
            b"some log bytes"
        );
        // Running again is a no-op.
        assert_eq!(
            move_file(&src, &archive, &ok).unwrap(),
            MoveOutcome::AlreadyDone
        );
    }

    #[test]
    fn identical_destination_counts_as_done() {
        let (_d, src, archive) = setup();
        fs::write(archive.join("cmdlog-1.log"), b"some log bytes").unwrap();
        let out = move_file(&src, &archive, &ok).unwrap();
        assert_eq!(out, MoveOutcome::AlreadyArchived { bytes: 14 });
        assert!(!src.exists());
    }

    #[test]
    fn identical_destination_is_made_durable_before_the_source_goes() {
        let (_d, src, archive) = setup();
        let dst = archive.join("cmdlog-1.log");
        fs::write(&dst, b"some log bytes").unwrap();
        let fault = FaultFs::new(sys::real());
        move_file_on(&fault, &src, &archive, &ok, &AtomicBool::new(false)).unwrap();
        let synced: Vec<PathBuf> = fault
            .take_calls()
            .into_iter()
            .filter(|(op, _)| matches!(op, Op::Fsync | Op::FsyncDir))
            .map(|(_, p)| p)
            .collect();
        let src_dir = src.parent().unwrap().to_path_buf();
        let pos = |p: &Path| synced.iter().position(|x| x == p);
        let (file, dir, source_dir) = (pos(&dst), pos(&archive), pos(&src_dir));
        assert!(
            file.is_some() && dir.is_some() && source_dir.is_some(),
            "{synced:?}"
        );
        assert!(file < dir && dir < source_dir, "{synced:?}");
    }

    #[test]
    fn differing_destination_is_an_error_and_nothing_changes() {
        let (_d, src, archive) = setup();
        let dst = archive.join("cmdlog-1.log");
        fs::write(&dst, b"other bytes").unwrap();
        let err = move_file(&src, &archive, &ok).unwrap_err();
        assert!(matches!(err, MoveError::DestinationDiffers { .. }), "{err}");
        assert_eq!(fs::read(&src).unwrap(), b"some log bytes");
        assert_eq!(fs::read(&dst).unwrap(), b"other bytes");
    }

    #[test]
    fn failed_verification_keeps_the_source() {
        let (_d, src, archive) = setup();
        let bad = |_: &Path| Err("bad magic".to_string());
        let err = move_file(&src, &archive, &bad).unwrap_err();
        assert!(matches!(err, MoveError::VerifyFailed { .. }), "{err}");
        assert!(src.exists());
    }

    #[test]
    fn missing_source_and_destination_is_an_error() {
        let (d, _src, archive) = setup();
        let err = move_file(&d.path().join("nope.log"), &archive, &ok).unwrap_err();
        assert!(matches!(err, MoveError::SourceMissing { .. }), "{err}");
    }

    #[test]
    fn stale_temps_are_cleaned() {
        let (_d, _src, archive) = setup();
        fs::write(archive.join("x.log.tmp"), b"partial").unwrap();
        fs::write(archive.join("keep.log"), b"whole").unwrap();
        assert_eq!(clean_stale_temps(&*sys::real(), &archive).unwrap(), 1);
        assert!(archive.join("keep.log").exists());
        assert_eq!(
            clean_stale_temps(&*sys::real(), &archive.join("missing")).unwrap(),
            0
        );
    }

    #[test]
    fn no_space_is_recognised_by_errno() {
        let e = MoveError::Sys(SysError::new(
            "write",
            Path::new("/x"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        ));
        assert!(e.is_no_space());
        assert!(!MoveError::Injected("x").is_no_space());
    }

    fn no_temp(dir: &Path) -> bool {
        fs::read_dir(dir).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(TEMP_SUFFIX)
        })
    }

    /// EXDEV from link(2) (another file system) takes the copy path, which
    /// keeps the mtime; no root and no second mount needed.
    #[test]
    fn cross_device_link_falls_back_to_a_verified_copy() {
        let (_d, src, archive) = setup();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fault = FaultFs::new(sys::real());
        fault.inject(Op::HardLink, Fault::Errno(libc::EXDEV));
        let out = move_file_on(&fault, &src, &archive, &ok, &AtomicBool::new(false)).unwrap();
        assert_eq!(out, MoveOutcome::Moved { bytes: 14 });
        let dst = archive.join("cmdlog-1.log");
        assert_eq!(fs::read(&dst).unwrap(), b"some log bytes");
        assert_eq!(fs::metadata(&dst).unwrap().modified().unwrap(), old);
        assert!(!src.exists() && no_temp(&archive));
        let calls = fault.take_calls();
        let at = |op, path: &Path| calls.iter().position(|c| c.0 == op && c.1 == path).unwrap();
        let tmp = archive.join("cmdlog-1.log.tmp");
        assert!(at(Op::Fsync, &tmp) < at(Op::RenameNoreplace, &dst));
        assert!(at(Op::RenameNoreplace, &dst) < at(Op::FsyncDir, &archive));
        assert!(at(Op::FsyncDir, &archive) < at(Op::Unlink, &src));
    }

    /// Every syscall of the copy path failing, one at a time: the move
    /// reports the errno, and the file stays whole in at least one place;
    /// the next attempt (no fault) finishes the move.
    #[test]
    fn a_failing_syscall_at_any_step_keeps_the_file_whole() {
        let faults = [
            (Op::Create, libc::ENOSPC),
            (Op::Write, libc::ENOSPC),
            (Op::Fsync, libc::EIO),
            (Op::SetTimes, libc::EIO),
            (Op::RenameNoreplace, libc::EIO),
            (Op::FsyncDir, libc::EIO),
            (Op::Unlink, libc::EIO),
            (Op::Read, libc::EIO),
        ];
        for (op, errno) in faults {
            let (_d, src, archive) = setup();
            let dst = archive.join("cmdlog-1.log");
            let fault = FaultFs::new(sys::real());
            fault.inject(Op::HardLink, Fault::Errno(libc::EXDEV));
            fault.inject(op, Fault::Errno(errno));
            let err =
                move_file_on(&fault, &src, &archive, &ok, &AtomicBool::new(false)).unwrap_err();
            assert!(
                matches!(&err, MoveError::Sys(e) if e.errno() == Some(Errno::from_raw(errno))),
                "{op:?}: {err}"
            );
            assert_eq!(err.is_no_space(), errno == libc::ENOSPC, "{op:?}");
            let whole = |p: &Path| fs::read(p).ok().as_deref() == Some(&b"some log bytes"[..]);
            assert!(whole(&src) || whole(&dst), "{op:?}: whole nowhere");
            if matches!(op, Op::Create | Op::Write) {
                assert!(no_temp(&archive), "{op:?}: a partial copy left behind");
            }
            move_file_on(&fault, &src, &archive, &ok, &AtomicBool::new(false)).unwrap();
            assert!(!src.exists() && whole(&dst), "{op:?}");
        }
    }

    /// A short write followed by a full disk: the partial copy is removed.
    #[test]
    fn a_short_write_then_enospc_leaves_no_partial_copy() {
        let (_d, src, archive) = setup();
        let fault = FaultFs::new(sys::real());
        fault.inject(Op::HardLink, Fault::Errno(libc::EXDEV));
        fault.add_rule(Rule {
            op: Op::Write,
            name_suffix: Some(".tmp".into()),
            skip: 0,
            times: 1,
            fault: Fault::ShortWrite,
        });
        fault.inject(Op::Write, Fault::Errno(libc::ENOSPC));
        let err = move_file_on(&fault, &src, &archive, &ok, &AtomicBool::new(false)).unwrap_err();
        assert!(err.is_no_space(), "{err}");
        assert!(src.exists() && no_temp(&archive));
        assert!(!archive.join("cmdlog-1.log").exists());
    }
}
