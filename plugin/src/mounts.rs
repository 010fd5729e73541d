//! The kernel calls the plugin makes: bind mounts, unmounts (plain and
//! lazy), the mount table (`/proc/self/mountinfo`, read as bytes),
//! `statvfs`, and the file-system calls whose failure matters (`chown`,
//! `renameat2(RENAME_NOREPLACE)`, fsync of a directory, recursive delete),
//! behind the [`Syscalls`] trait so the logic is unit-tested with a
//! recording fake that can fail any of them.
//!
//! Paths from the mount table are kept as bytes (`OsStr`): a mount point
//! whose name is not UTF-8 is compared exactly, never lossily.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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

impl MountError {
    /// The errno of a failed mount or unmount, if that is what failed.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            MountError::Bind { errno, .. }
            | MountError::Unmount { errno, .. }
            | MountError::Statvfs { errno, .. } => Some(*errno),
            MountError::MountTable { .. } | MountError::BootId { .. } => None,
        }
    }
}

/// Size of the file system holding a path, from `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Available to unprivileged users (`f_bavail`).
    pub free_bytes: u64,
}

/// The system calls the plugin makes where a failure must be handled.
pub trait Syscalls: Send + Sync + 'static {
    /// `mount --bind source target` (not recursive).
    fn bind_mount(&self, source: &Path, target: &Path) -> Result<(), MountError>;
    /// `umount target` (no lazy detach: a busy mount is an error).
    fn unmount(&self, target: &Path) -> Result<(), MountError>;
    /// `umount2(target, MNT_DETACH)`: detaches a busy mount lazily.
    fn detach(&self, target: &Path) -> Result<(), MountError>;
    /// Every mount point in this mount namespace (escapes decoded, bytes
    /// kept as they are).
    fn mount_points(&self) -> Result<Vec<PathBuf>, MountError>;
    /// Bytes of the file system holding `path`.
    fn statvfs(&self, path: &Path) -> Result<FsUsage, MountError>;
    /// The kernel's boot id: mount references taken under another boot
    /// are stale (no container survives a reboot).
    fn boot_id(&self) -> Result<String, MountError>;
    /// `chown(path, uid, gid)`; `None` keeps that id.
    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()>;
    /// `renameat2(from, to, RENAME_NOREPLACE)`: `EEXIST` if `to` exists.
    fn rename_noreplace(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// fsync of a directory, making renames and creations in it durable.
    fn fsync_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// Recursive delete of `path` (callers check the mount table first).
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()>;
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

    fn detach(&self, target: &Path) -> Result<(), MountError> {
        tracing::debug!(target = %target.display(), "lazy unmount (MNT_DETACH)");
        nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|errno| MountError::Unmount {
            target: target.to_owned(),
            errno,
        })
    }

    fn mount_points(&self) -> Result<Vec<PathBuf>, MountError> {
        let bytes = std::fs::read(MOUNTINFO).map_err(|source| MountError::MountTable {
            path: MOUNTINFO.into(),
            source,
        })?;
        Ok(parse_mountinfo(&bytes))
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

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
        tracing::debug!(path = %path.display(), ?uid, ?gid, "chown");
        nix::unistd::chown(
            path,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
        )
        .map_err(std::io::Error::from)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        tracing::debug!(from = %from.display(), to = %to.display(), "renameat2 RENAME_NOREPLACE");
        nix::fcntl::renameat2(
            None,
            from,
            None,
            to,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(std::io::Error::from)
    }

    fn fsync_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir).and_then(|f| f.sync_all())
    }

    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        tracing::debug!(path = %path.display(), "remove tree");
        std::fs::remove_dir_all(path)
    }
}

/// The mount points (fifth field) of a `/proc/self/mountinfo` text, as
/// bytes, with the kernel's octal escapes (`\040` for a space, `\012` for a
/// newline…) decoded to the bytes they stand for. Lines too short to hold
/// the field are skipped.
pub fn parse_mountinfo(text: &[u8]) -> Vec<PathBuf> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .filter(|field| !field.is_empty())
        .map(|field| PathBuf::from(OsString::from_vec(unescape_octal(field))))
        .collect()
}

fn unescape_octal(b: &[u8]) -> Vec<u8> {
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
    out
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// Whether `path` is `root` or lies below it, comparing exact bytes (a
/// trailing `/` on `root` is ignored; `/m/va` is not under `/m/v`).
pub fn is_at_or_under(path: &Path, root: &Path) -> bool {
    let (p, mut r) = (bytes(path), bytes(root));
    while r.len() > 1 && r.ends_with(b"/") {
        r = &r[..r.len() - 1];
    }
    if r == b"/" {
        return p.starts_with(b"/");
    }
    p == r || (p.starts_with(r) && p.get(r.len()) == Some(&b'/'))
}

/// Whether `path` is a mount point in `points` (exact bytes).
pub fn is_mounted(points: &[PathBuf], path: &Path) -> bool {
    points.iter().any(|p| bytes(p) == bytes(path))
}

/// The first mount point at or under `path`: a directory with such a
/// mount must never be deleted recursively.
pub fn mount_at_or_under<'a>(points: &'a [PathBuf], path: &Path) -> Option<&'a PathBuf> {
    points.iter().find(|p| is_at_or_under(p, path))
}

/// Whether `path` or anything below it is a mount point.
pub fn has_mount_at_or_under(points: &[PathBuf], path: &Path) -> bool {
    mount_at_or_under(points, path).is_some()
}

/// A fake that records every call, keeps its own mount table and fails
/// the calls it is told to (for the unit tests, and for the integration
/// tests through the `test-util` feature).
#[cfg(any(test, feature = "test-util"))]
#[path = "fake_syscalls.rs"]
pub mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_and_escapes() {
        let text = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
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
    fn non_utf8_mount_points_are_kept_as_bytes() {
        // The kernel prints a byte 0xff as is, and escapes space, tab,
        // newline and backslash.
        let mut text = b"50 27 0:5 / /t/p/v\xff\\011x rw - tmpfs tmpfs rw\n".to_vec();
        text.extend_from_slice(b"51 27 0:5 / /t/p/v\xfe rw - tmpfs tmpfs rw\n");
        let pts = parse_mountinfo(&text);
        let want = PathBuf::from(OsString::from_vec(b"/t/p/v\xff\tx".to_vec()));
        assert_eq!(pts[0], want);
        assert!(is_mounted(&pts, &want));
        // A lossy decoding would make these two equal.
        let other = PathBuf::from(OsString::from_vec(b"/t/p/v\xfd".to_vec()));
        assert!(!is_mounted(&pts, &other));
        assert!(has_mount_at_or_under(&pts, Path::new("/t/p")));
        assert!(!has_mount_at_or_under(&pts, Path::new("/t/pp")));
        let vol = PathBuf::from(OsString::from_vec(b"/t/p/v\xfe".to_vec()));
        assert_eq!(mount_at_or_under(&pts, &vol), Some(&pts[1]));
    }

    #[test]
    fn mounted_under() {
        let pts = vec![PathBuf::from("/"), PathBuf::from("/m/v/archived")];
        assert!(has_mount_at_or_under(&pts[1..], Path::new("/m/v")));
        assert!(has_mount_at_or_under(&pts[1..], Path::new("/m/v/")));
        assert!(!has_mount_at_or_under(&pts[1..], Path::new("/m/va")));
        assert!(is_mounted(&pts, Path::new("/m/v/archived")));
        assert!(!is_mounted(&pts, Path::new("/m/v")));
        assert!(is_at_or_under(Path::new("/x"), Path::new("/")));
    }

    #[test]
    fn real_mount_table_has_root() {
        let pts = NixSyscalls.mount_points().unwrap();
        assert!(is_mounted(&pts, Path::new("/")), "{pts:?}");
        assert_eq!(NixSyscalls.boot_id().unwrap().len(), 36);
        let u = NixSyscalls.statvfs(Path::new("/")).unwrap();
        assert!(u.total_bytes > 0 && u.used_bytes <= u.total_bytes, "{u:?}");
    }

    /// A real tmpfs mounted on a directory whose name is not UTF-8: the
    /// mount table is read and the mount point found, byte for byte.
    #[test]
    fn real_non_utf8_mount_point() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir
            .path()
            .join(OsString::from_vec(b"mnt \xff\xfe\\x".to_vec()));
        std::fs::create_dir(&target).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
        let pts = NixSyscalls.mount_points();
        let found = pts.as_ref().map(|p| is_mounted(p, &target));
        NixSyscalls.detach(&target).unwrap();
        assert!(matches!(found, Ok(true)), "{pts:?}");
    }
}
