//! [`RecordingSyscalls`]: a fake [`Syscalls`] for tests. Mounts are only
//! recorded (its own mount table); the file-system calls really run
//! (through [`NixSyscalls`]) unless told to fail.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{FsUsage, MountError, NixSyscalls, Syscalls};

/// One recorded mount call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Bind(PathBuf, PathBuf),
    Unmount(PathBuf),
    /// A lazy unmount (`MNT_DETACH`).
    Detach(PathBuf),
}

/// A file-system call that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    Chown,
    Rename,
    FsyncDir,
    RemoveDirAll,
}

/// Fails `op` on a path ending with `suffix` with `errno`, `times` times
/// (`u32::MAX`: always).
#[derive(Debug, Clone)]
pub struct FileFault {
    pub op: FileOp,
    pub suffix: String,
    pub errno: nix::errno::Errno,
    pub times: u32,
}

#[derive(Default)]
pub struct RecordingSyscalls {
    pub calls: Mutex<Vec<Call>>,
    /// File-system calls made, with the path (the first one for a rename).
    pub file_calls: Mutex<Vec<(FileOp, PathBuf)>>,
    pub table: Mutex<Vec<PathBuf>>,
    /// Bind mounts onto a target ending with this name fail with EPERM.
    pub fail_bind_on: Mutex<Option<String>>,
    /// Plain unmounts of a target ending with this name fail with EBUSY
    /// (a lazy detach works).
    pub fail_unmount_on: Mutex<Option<String>>,
    /// Only this many more plain unmounts fail as busy (`None`: all).
    pub busy_unmounts_left: Mutex<Option<u32>>,
    /// File-system faults to inject.
    pub file_faults: Mutex<Vec<FileFault>>,
    /// What `boot_id` answers.
    pub boot: Mutex<String>,
    /// `(n, entered, release)`: the `n`th `mount_points` call from now
    /// (1 = the next) signals `entered`, then waits for `release`.
    #[allow(clippy::type_complexity)]
    pub hold_mount_points: Mutex<
        Option<(
            usize,
            std::sync::mpsc::Sender<()>,
            std::sync::mpsc::Receiver<()>,
        )>,
    >,
}

impl RecordingSyscalls {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.table.lock().unwrap().clone()
    }
    /// Makes `op` fail on paths ending with `suffix`, `times` times.
    pub fn fail_file(&self, op: FileOp, suffix: &str, errno: nix::errno::Errno, times: u32) {
        self.file_faults.lock().unwrap().push(FileFault {
            op,
            suffix: suffix.to_owned(),
            errno,
            times,
        });
    }
    /// The file-system calls of kind `op` made so far.
    pub fn file_calls_of(&self, op: FileOp) -> Vec<PathBuf> {
        self.file_calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, p)| p.clone())
            .collect()
    }

    fn file_op(&self, op: FileOp, path: &Path) -> std::io::Result<()> {
        self.file_calls.lock().unwrap().push((op, path.to_owned()));
        let mut faults = self.file_faults.lock().unwrap();
        if let Some(f) = faults
            .iter_mut()
            .find(|f| f.op == op && f.times > 0 && path.ends_with(&f.suffix))
        {
            if f.times != u32::MAX {
                f.times -= 1;
            }
            return Err(std::io::Error::from(f.errno));
        }
        Ok(())
    }
}

fn ends_with(p: &Path, name: &Option<String>) -> bool {
    name.as_deref().is_some_and(|n| p.ends_with(n))
}

impl Syscalls for RecordingSyscalls {
    fn bind_mount(&self, source: &Path, target: &Path) -> Result<(), MountError> {
        if ends_with(target, &self.fail_bind_on.lock().unwrap()) {
            return Err(MountError::Bind {
                source_path: source.into(),
                target: target.into(),
                errno: nix::errno::Errno::EPERM,
            });
        }
        assert!(source.is_dir(), "bind source {source:?} must exist");
        // A target inside a fake mount cannot exist on disk: the
        // fake does not really bind.
        let in_fake_mount = target
            .parent()
            .is_some_and(|p| self.table.lock().unwrap().iter().any(|m| m == p));
        assert!(
            target.is_dir() || in_fake_mount,
            "bind target {target:?} must exist"
        );
        self.calls
            .lock()
            .unwrap()
            .push(Call::Bind(source.into(), target.into()));
        self.table.lock().unwrap().push(target.into());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<(), MountError> {
        let mut busy = ends_with(target, &self.fail_unmount_on.lock().unwrap());
        if busy {
            let mut left = self.busy_unmounts_left.lock().unwrap();
            match left.as_mut() {
                Some(0) => busy = false,
                Some(n) => *n -= 1,
                None => {}
            }
        }
        let mut table = self.table.lock().unwrap();
        let Some(pos) = table.iter().rposition(|p| p == target) else {
            return Err(MountError::Unmount {
                target: target.into(),
                errno: nix::errno::Errno::EINVAL,
            });
        };
        if busy {
            return Err(MountError::Unmount {
                target: target.into(),
                errno: nix::errno::Errno::EBUSY,
            });
        }
        table.remove(pos);
        self.calls
            .lock()
            .unwrap()
            .push(Call::Unmount(target.into()));
        Ok(())
    }

    fn detach(&self, target: &Path) -> Result<(), MountError> {
        let mut table = self.table.lock().unwrap();
        let Some(pos) = table.iter().rposition(|p| p == target) else {
            return Err(MountError::Unmount {
                target: target.into(),
                errno: nix::errno::Errno::EINVAL,
            });
        };
        table.remove(pos);
        self.calls.lock().unwrap().push(Call::Detach(target.into()));
        Ok(())
    }

    fn mount_points(&self) -> Result<Vec<PathBuf>, MountError> {
        let held = {
            let mut hold = self.hold_mount_points.lock().unwrap();
            match hold.as_mut() {
                Some((1, _, _)) => hold.take(),
                Some((n, _, _)) => {
                    *n -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some((_, entered, release)) = held {
            entered.send(()).unwrap();
            release.recv().unwrap();
        }
        Ok(self.mounted())
    }

    fn statvfs(&self, _path: &Path) -> Result<FsUsage, MountError> {
        Ok(FsUsage {
            total_bytes: 1000,
            used_bytes: 400,
            free_bytes: 600,
        })
    }

    fn boot_id(&self) -> Result<String, MountError> {
        Ok(self.boot.lock().unwrap().clone())
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
        self.file_op(FileOp::Chown, path)?;
        NixSyscalls.chown(path, uid, gid)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.file_op(FileOp::Rename, to)?;
        NixSyscalls.rename_noreplace(from, to)
    }

    fn fsync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.file_op(FileOp::FsyncDir, dir)?;
        NixSyscalls.fsync_dir(dir)
    }

    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.file_op(FileOp::RemoveDirAll, path)?;
        NixSyscalls.remove_dir_all(path)
    }
}
