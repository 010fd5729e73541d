//! [`FaultFs`]: a wrapper around any [`Fs`] that fails chosen calls and
//! records every call, so tests can check what the engine and the
//! snapshotter do when a syscall fails, and in which order they made their
//! durability calls.
//!
//! ```
//! use std::sync::Arc;
//! use tiered_sys::{real, Fault, FaultFs, Fs, Op, OpenMode};
//! let fs = FaultFs::new(real());
//! fs.inject(Op::FsyncDir, Fault::Errno(libc::EIO)); // the next fsync of a dir fails
//! assert_eq!(fs.fsync_dir(std::path::Path::new("/")).unwrap_err().raw_os_error(), Some(libc::EIO));
//! fs.fsync_dir(std::path::Path::new("/")).unwrap(); // once only
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use crate::fs::Space;
use crate::seam::{Fs, FsFile, OpenMode, Stat};

/// Every call the seam has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Fs::open`] of an existing file ([`OpenMode::Read`], [`OpenMode::ReadWrite`]).
    Open,
    Stat,
    /// [`Fs::open`] that may create ([`OpenMode::CreateTruncate`], [`OpenMode::CreateNew`]).
    Create,
    ReadDir,
    CreateDir,
    Rename,
    RenameNoreplace,
    HardLink,
    Unlink,
    FsyncDir,
    Statvfs,
    /// [`FsFile::read_at`].
    Read,
    /// [`FsFile::write_at`].
    Write,
    /// [`FsFile::size`].
    Size,
    SetLen,
    Fdatasync,
    Fsync,
    /// [`FsFile::writeback`] (sync_file_range).
    Writeback,
    Fallocate,
    SetTimes,
}

/// What an injected failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with this errno (EIO, ENOSPC, EXDEV, ...) and does nothing.
    Errno(i32),
    /// A write writes the first half of its buffer (at least one byte) and
    /// returns that count, as a short write(2) does. On any other call it is
    /// EIO.
    ShortWrite,
}

/// When an injected failure fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The call it applies to.
    pub op: Op,
    /// Only calls whose path's file name ends with this (None: any path).
    pub name_suffix: Option<OsString>,
    /// Matching calls that pass before it fires.
    pub skip: u64,
    /// How many matching calls it fails once it fires (then it is spent).
    pub times: u64,
    /// What it does.
    pub fault: Fault,
}

impl Rule {
    /// Fails the next call of `op`, once.
    pub fn once(op: Op, fault: Fault) -> Rule {
        Rule {
            op,
            name_suffix: None,
            skip: 0,
            times: 1,
            fault,
        }
    }

    fn matches(&self, op: Op, path: &Path) -> bool {
        self.op == op
            && self.name_suffix.as_ref().is_none_or(|suffix| {
                path.file_name()
                    .is_some_and(|n| n.as_encoded_bytes().ends_with(suffix.as_encoded_bytes()))
            })
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: Vec<(Op, PathBuf)>,
}

#[derive(Debug)]
struct Shared {
    inner: Arc<dyn Fs>,
    state: Mutex<State>,
    /// The current name of every open file, so that a file renamed while
    /// open is matched and recorded by its new name, as its fd would be.
    names: Mutex<Vec<Weak<Mutex<PathBuf>>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves valid data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the call and returns the fault to apply, if a rule fires.
    fn check(&self, op: Op, path: &Path) -> Option<Fault> {
        let mut st = self.state();
        st.calls.push((op, path.to_path_buf()));
        let i = st.rules.iter().position(|r| r.matches(op, path))?;
        let rule = &mut st.rules[i];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        let fault = rule.fault;
        rule.times -= 1;
        if rule.times == 0 {
            st.rules.remove(i);
        }
        tracing::debug!(?op, path = %path.display(), ?fault, "injected fault");
        Some(fault)
    }

    fn track(&self, path: &Path) -> Arc<Mutex<PathBuf>> {
        let name = Arc::new(Mutex::new(path.to_path_buf()));
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.retain(|w| w.strong_count() > 0);
        names.push(Arc::downgrade(&name));
        name
    }

    fn renamed(&self, from: &Path, to: &Path) {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        for name in names.iter().filter_map(Weak::upgrade) {
            let mut n = name.lock().unwrap_or_else(|p| p.into_inner());
            if *n == from {
                *n = to.to_path_buf();
            }
        }
    }

    fn fail(&self, op: Op, path: &Path) -> io::Result<()> {
        match self.check(op, path) {
            None => Ok(()),
            Some(Fault::Errno(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(Fault::ShortWrite) => Err(io::Error::from_raw_os_error(libc::EIO)),
        }
    }
}

/// A [`Fs`] that passes calls to an inner one unless a [`Rule`] fails them.
/// Cloning shares the rules and the call log.
#[derive(Debug, Clone)]
pub struct FaultFs {
    shared: Arc<Shared>,
}

impl FaultFs {
    /// Wraps `inner` with no rule.
    pub fn new(inner: Arc<dyn Fs>) -> FaultFs {
        FaultFs {
            shared: Arc::new(Shared {
                inner,
                state: Mutex::new(State::default()),
                names: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Fails the next call of `op` (any path), once.
    pub fn inject(&self, op: Op, fault: Fault) {
        self.add_rule(Rule::once(op, fault));
    }

    /// Adds a rule; rules are tried in the order added.
    pub fn add_rule(&self, rule: Rule) {
        assert!(rule.times > 0, "a rule that never fires");
        self.shared.state().rules.push(rule);
    }

    /// Removes every rule not yet spent.
    pub fn clear_rules(&self) {
        self.shared.state().rules.clear();
    }

    /// Rules not yet spent.
    pub fn pending_rules(&self) -> usize {
        self.shared.state().rules.len()
    }

    /// Takes the calls made so far (in order), with their paths.
    pub fn take_calls(&self) -> Vec<(Op, PathBuf)> {
        std::mem::take(&mut self.shared.state().calls)
    }

    /// This wrapper as a shared `dyn Fs`.
    pub fn handle(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }
}

struct FaultFile {
    shared: Arc<Shared>,
    /// Its current name (follows renames).
    name: Arc<Mutex<PathBuf>>,
    inner: Box<dyn FsFile>,
}

impl fmt::Debug for FaultFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFile")
            .field("path", &self.path())
            .finish()
    }
}

impl FaultFile {
    fn path(&self) -> PathBuf {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl FsFile for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.shared.fail(Op::Read, &self.path())?;
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        match self.shared.check(Op::Write, &self.path()) {
            None => self.inner.write_at(buf, offset),
            Some(Fault::Errno(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(Fault::ShortWrite) => {
                let half = buf.len().div_ceil(2);
                self.inner.write_at(&buf[..half], offset)
            }
        }
    }
    fn size(&self) -> io::Result<u64> {
        self.shared.fail(Op::Size, &self.path())?;
        self.inner.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.shared.fail(Op::SetLen, &self.path())?;
        self.inner.set_len(len)
    }
    fn fdatasync(&self) -> io::Result<()> {
        self.shared.fail(Op::Fdatasync, &self.path())?;
        self.inner.fdatasync()
    }
    fn fsync(&self) -> io::Result<()> {
        self.shared.fail(Op::Fsync, &self.path())?;
        self.inner.fsync()
    }
    fn writeback(&self, offset: u64, len: u64, wait: bool) -> io::Result<()> {
        self.shared.fail(Op::Writeback, &self.path())?;
        self.inner.writeback(offset, len, wait)
    }
    fn fallocate(&self, len: u64) -> io::Result<bool> {
        self.shared.fail(Op::Fallocate, &self.path())?;
        self.inner.fallocate(len)
    }
    fn set_times(&self, modified: SystemTime, accessed: Option<SystemTime>) -> io::Result<()> {
        self.shared.fail(Op::SetTimes, &self.path())?;
        self.inner.set_times(modified, accessed)
    }
}

impl Fs for FaultFs {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.shared.fail(Op::Stat, path)?;
        self.shared.inner.stat(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let op = match mode {
            OpenMode::Read | OpenMode::ReadWrite => Op::Open,
            OpenMode::CreateTruncate | OpenMode::CreateNew => Op::Create,
        };
        self.shared.fail(op, path)?;
        let inner = self.shared.inner.open(path, mode)?;
        Ok(Box::new(FaultFile {
            shared: self.shared.clone(),
            name: self.shared.track(path),
            inner,
        }))
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.shared.fail(Op::ReadDir, dir)?;
        self.shared.inner.read_dir(dir)
    }
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.shared.fail(Op::CreateDir, dir)?;
        self.shared.inner.create_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.shared.fail(Op::Rename, to)?;
        self.shared.inner.rename(from, to)?;
        self.shared.renamed(from, to);
        Ok(())
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.shared.fail(Op::RenameNoreplace, to)?;
        self.shared.inner.rename_noreplace(from, to)?;
        self.shared.renamed(from, to);
        Ok(())
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.shared.fail(Op::HardLink, to)?;
        self.shared.inner.hard_link(from, to)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.shared.fail(Op::Unlink, path)?;
        self.shared.inner.unlink(path)
    }
    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        self.shared.fail(Op::FsyncDir, dir)?;
        self.shared.inner.fsync_dir(dir)
    }
    fn statvfs(&self, path: &Path) -> io::Result<Space> {
        self.shared.fail(Op::Statvfs, path)?;
        self.shared.inner.statvfs(path)
    }
}

/// The file name of `path` ends with `suffix` (a helper for rules).
pub fn name_ends_with(path: &Path, suffix: &OsStr) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().ends_with(suffix.as_encoded_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::errno_of;
    use crate::seam::real;
    use nix::errno::Errno;

    fn setup() -> (tempfile::TempDir, FaultFs) {
        (tempfile::tempdir().unwrap(), FaultFs::new(real()))
    }

    #[test]
    fn every_call_can_fail_with_an_errno_and_does_nothing() {
        let (dir, fs) = setup();
        let d = dir.path();
        let p = d.join("f");
        let errno = |r: io::Result<()>| r.map_err(|e| errno_of(&e)).unwrap_err();

        fs.inject(Op::Create, Fault::Errno(libc::ENOSPC));
        assert_eq!(
            errno(fs.open(&p, OpenMode::CreateNew).map(|_| ())),
            Some(Errno::ENOSPC)
        );
        assert!(!p.exists(), "a failed create creates nothing");
        let f = fs.open(&p, OpenMode::CreateNew).unwrap();

        fs.inject(Op::Write, Fault::Errno(libc::EIO));
        assert_eq!(errno(f.write_all_at(b"abc", 0)), Some(Errno::EIO));
        assert_eq!(f.size().unwrap(), 0);
        f.write_all_at(b"abc", 0).unwrap();

        for (op, call) in [
            (
                Op::Fdatasync,
                Box::new(|| f.fdatasync()) as Box<dyn Fn() -> io::Result<()>>,
            ),
            (Op::Fsync, Box::new(|| f.fsync())),
            (Op::Writeback, Box::new(|| f.writeback(0, 3, true))),
            (Op::SetLen, Box::new(|| f.set_len(1))),
            (Op::Fallocate, Box::new(|| f.fallocate(10).map(|_| ()))),
            (Op::Size, Box::new(|| f.size().map(|_| ()))),
            (
                Op::Read,
                Box::new(|| f.read_at(&mut [0u8; 3], 0).map(|_| ())),
            ),
            (Op::FsyncDir, Box::new(|| fs.fsync_dir(d))),
            (Op::ReadDir, Box::new(|| fs.read_dir(d).map(|_| ()))),
            (Op::Statvfs, Box::new(|| fs.statvfs(d).map(|_| ()))),
            (
                Op::Open,
                Box::new(|| fs.open(&p, OpenMode::Read).map(|_| ())),
            ),
            (Op::CreateDir, Box::new(|| fs.create_dir(&d.join("sub")))),
            (Op::Stat, Box::new(|| fs.stat(&p).map(|_| ()))),
            (
                Op::SetTimes,
                Box::new(|| f.set_times(SystemTime::UNIX_EPOCH, None)),
            ),
        ] {
            fs.inject(op, Fault::Errno(libc::EIO));
            assert_eq!(errno(call()), Some(Errno::EIO), "{op:?}");
            assert_eq!(fs.pending_rules(), 0, "{op:?}");
        }
        assert_eq!(f.size().unwrap(), 3, "the failed set_len changed nothing");
        assert!(!d.join("sub").exists());

        fs.inject(Op::HardLink, Fault::Errno(libc::EXDEV));
        assert_eq!(errno(fs.hard_link(&p, &d.join("l"))), Some(Errno::EXDEV));
        fs.inject(Op::Rename, Fault::Errno(libc::EXDEV));
        assert_eq!(errno(fs.rename(&p, &d.join("r"))), Some(Errno::EXDEV));
        fs.inject(Op::RenameNoreplace, Fault::Errno(libc::EIO));
        assert_eq!(
            errno(fs.rename_noreplace(&p, &d.join("r"))),
            Some(Errno::EIO)
        );
        fs.inject(Op::Unlink, Fault::Errno(libc::EIO));
        assert_eq!(errno(fs.unlink(&p)), Some(Errno::EIO));
        assert!(p.exists() && !d.join("l").exists() && !d.join("r").exists());
        fs.unlink(&p).unwrap();
    }

    #[test]
    fn an_open_file_is_known_by_its_current_name() {
        let (dir, fs) = setup();
        let (a, b) = (dir.path().join("a.tmp"), dir.path().join("b.open"));
        let f = fs.open(&a, OpenMode::CreateNew).unwrap();
        fs.rename(&a, &b).unwrap();
        fs.add_rule(Rule {
            op: Op::Fdatasync,
            name_suffix: Some(".open".into()),
            skip: 0,
            times: 1,
            fault: Fault::Errno(libc::EIO),
        });
        assert!(f.fdatasync().is_err());
        f.fdatasync().unwrap();
        let calls = fs.take_calls();
        assert_eq!(calls.last(), Some(&(Op::Fdatasync, b.clone())));
    }

    #[test]
    fn a_short_write_writes_half_and_write_all_goes_on() {
        let (dir, fs) = setup();
        let f = fs.open(&dir.path().join("f"), OpenMode::CreateNew).unwrap();
        fs.inject(Op::Write, Fault::ShortWrite);
        assert_eq!(f.write_at(b"abcdef", 0).unwrap(), 3);
        assert_eq!(f.size().unwrap(), 3);
        // a short write followed by an error: half of the buffer on disk
        fs.inject(Op::Write, Fault::ShortWrite);
        fs.inject(Op::Write, Fault::Errno(libc::EIO));
        let e = f.write_all_at(b"0123456789", 0).unwrap_err();
        assert_eq!(errno_of(&e), Some(Errno::EIO));
        let mut b = vec![0u8; 5];
        f.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"01234");
        // with no error after it, write_all_at completes the write
        fs.inject(Op::Write, Fault::ShortWrite);
        f.write_all_at(b"ABCDEFGH", 0).unwrap();
        let mut b = vec![0u8; 8];
        f.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"ABCDEFGH");
    }

    #[test]
    fn rules_select_by_name_skip_and_count_and_calls_are_recorded() {
        let (dir, fs) = setup();
        let d = dir.path();
        fs.add_rule(Rule {
            op: Op::FsyncDir,
            name_suffix: Some("logs".into()),
            skip: 1,
            times: 2,
            fault: Fault::Errno(libc::EIO),
        });
        let logs = d.join("logs");
        std::fs::create_dir(&logs).unwrap();
        fs.fsync_dir(d).unwrap(); // another name: not counted
        fs.fsync_dir(&logs).unwrap(); // skipped
        assert!(fs.fsync_dir(&logs).is_err());
        assert!(fs.fsync_dir(&logs).is_err());
        fs.fsync_dir(&logs).unwrap(); // spent
        assert_eq!(fs.pending_rules(), 0);
        let calls = fs.take_calls();
        assert_eq!(calls.len(), 5);
        assert_eq!(calls[0], (Op::FsyncDir, d.to_path_buf()));
        assert!(calls[1..]
            .iter()
            .all(|c| c == &(Op::FsyncDir, logs.clone())));
        assert!(fs.take_calls().is_empty());
        // clones share rules; clear_rules drops them
        let other = fs.clone();
        other.inject(Op::Unlink, Fault::Errno(libc::EIO));
        assert_eq!(fs.pending_rules(), 1);
        fs.clear_rules();
        assert_eq!(other.pending_rules(), 0);
        assert!(name_ends_with(&logs, OsStr::new("gs")));
    }
}
