//! The kernel calls the plugin makes: bind mounts, unmounts, the mount
//! table (`/proc/self/mountinfo`) and `statvfs`, behind the [`Syscalls`]
//! trait so the mount logic is unit-tested with a recording fake.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// A failed kernel call, with the path it was about.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("bind mount {source_path} on {target}: {errno}")]
    Bind {
        source_path: PathBuf,
        target: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("unmount {target}: {errno}")]
    Unmount {
        target: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("read mount table {path}: {source}")]
    MountTable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read boot id {path}: {source}")]
    BootId {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("statvfs {path}: {errno}")]
    Statvfs {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
}

/// Size of the file system holding a path, from `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Available to unprivileged users (`f_bavail`).
    pub free_bytes: u64,
}

/// The mount-related system calls.
pub trait Syscalls: Send + Sync + 'static {
    /// `mount --bind source target` (not recursive).
    fn bind_mount(&self, source: &Path, target: &Path) -> Result<(), MountError>;
    /// `umount target` (no lazy detach: a busy mount is an error).
    fn unmount(&self, target: &Path) -> Result<(), MountError>;
    /// Every mount point in this mount namespace.
    fn mount_points(&self) -> Result<Vec<PathBuf>, MountError>;
    /// Bytes of the file system holding `path`.
    fn statvfs(&self, path: &Path) -> Result<FsUsage, MountError>;
    /// The kernel's boot id: mount references taken under another boot
    /// are stale (no container survives a reboot).
    fn boot_id(&self) -> Result<String, MountError>;
}

/// The real calls, through nix.
#[derive(Debug, Default, Clone, Copy)]
pub struct NixSyscalls;

const MOUNTINFO: &str = "/proc/self/mountinfo";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

impl Syscalls for NixSyscalls {
    fn bind_mount(&self, source: &Path, target: &Path) -> Result<(), MountError> {
        tracing::debug!(source = %source.display(), target = %target.display(), "bind mount");
        nix::mount::mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|errno| MountError::Bind {
            source_path: source.to_owned(),
            target: target.to_owned(),
            errno,
        })
    }

    fn unmount(&self, target: &Path) -> Result<(), MountError> {
        tracing::debug!(target = %target.display(), "unmount");
        nix::mount::umount2(target, MntFlags::empty()).map_err(|errno| MountError::Unmount {
            target: target.to_owned(),
            errno,
        })
    }

    fn mount_points(&self) -> Result<Vec<PathBuf>, MountError> {
        let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| MountError::MountTable {
            path: MOUNTINFO.into(),
            source,
        })?;
        Ok(parse_mountinfo(&text))
    }

    fn statvfs(&self, path: &Path) -> Result<FsUsage, MountError> {
        let s = nix::sys::statvfs::statvfs(path).map_err(|errno| MountError::Statvfs {
            path: path.to_owned(),
            errno,
        })?;
        let frag = s.fragment_size();
        Ok(FsUsage {
            total_bytes: s.blocks().saturating_mul(frag),
            used_bytes: s
                .blocks()
                .saturating_sub(s.blocks_free())
                .saturating_mul(frag),
            free_bytes: s.blocks_available().saturating_mul(frag),
        })
    }

    fn boot_id(&self) -> Result<String, MountError> {
        std::fs::read_to_string(BOOT_ID)
            .map(|s| s.trim().to_owned())
            .map_err(|source| MountError::BootId {
                path: BOOT_ID.into(),
                source,
            })
    }
}

/// The mount points (fifth field) of a `/proc/self/mountinfo` text, with the
/// kernel's octal escapes (`\040` for a space…) decoded. Lines too short
/// to hold the field are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

fn unescape_octal(field: &str) -> String {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::ffi::OsString::from_vec(out)
        .to_string_lossy()
        .into_owned()
}

/// Whether `path` is a mount point in `points`.
pub fn is_mounted(points: &[PathBuf], path: &Path) -> bool {
    points.iter().any(|p| p == path)
}

/// Whether `path` or anything below it is a mount point: a directory with
/// such a mount must never be deleted recursively.
pub fn has_mount_at_or_under(points: &[PathBuf], path: &Path) -> bool {
    points.iter().any(|p| p.starts_with(path))
}

/// A fake that records every call and keeps its own mount table.
#[cfg(test)]
pub mod fake {
    use std::sync::Mutex;

    use super::*;

    /// One recorded call.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Bind(PathBuf, PathBuf),
        Unmount(PathBuf),
    }

    #[derive(Default)]
    pub struct RecordingSyscalls {
        pub calls: Mutex<Vec<Call>>,
        pub table: Mutex<Vec<PathBuf>>,
        /// Bind mounts onto a target ending with this name fail with EPERM.
        pub fail_bind_on: Mutex<Option<String>>,
        /// Unmounts of a target ending with this name fail with EBUSY.
        pub fail_unmount_on: Mutex<Option<String>>,
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
            let busy = ends_with(target, &self.fail_unmount_on.lock().unwrap());
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_and_escapes() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    42 27 254:0 /var/lib/docker /var/lib/docker rw shared:1 - ext4 /dev/vda rw\n\
                    50 27 0:5 / /mnt/with\\040space rw - tmpfs tmpfs rw\n\
                    short line\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/var/lib/docker"),
                PathBuf::from("/mnt/with space"),
            ]
        );
    }

    #[test]
    fn mounted_under() {
        let pts = vec![PathBuf::from("/"), PathBuf::from("/m/v/archived")];
        assert!(has_mount_at_or_under(&pts, Path::new("/m/v")));
        assert!(!has_mount_at_or_under(&pts, Path::new("/m/va")));
        assert!(is_mounted(&pts, Path::new("/m/v/archived")));
        assert!(!is_mounted(&pts, Path::new("/m/v")));
    }

    #[test]
    fn real_mount_table_has_root() {
        let pts = NixSyscalls.mount_points().unwrap();
        assert!(is_mounted(&pts, Path::new("/")), "{pts:?}");
        assert_eq!(NixSyscalls.boot_id().unwrap().len(), 36);
        let u = NixSyscalls.statvfs(Path::new("/")).unwrap();
        assert!(u.total_bytes > 0 && u.used_bytes <= u.total_bytes, "{u:?}");
    }
}
