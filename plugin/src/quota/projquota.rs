//! XFS / ext4 project quotas: a project ID with the inherit flag on the
//! volume's tier directory, and a block hard limit on that ID.
//!
//! ```text
//! FS_IOC_FSGETXATTR  _IOR('X', 31, fsxattr)    fsxattr = { u32 xflags, extsize, nextents,
//! FS_IOC_FSSETXATTR  _IOW('X', 32, fsxattr)                 projid, cowextsize; u8 pad[8] }  28 bytes
//! quotactl_fd(fd, QCMD(cmd, PRJQUOTA = 2), id, addr)        Linux 5.14+; any fd on the file system
//!   Q_GETINFO  0x800005  if_dqinfo = { u64 bgrace, igrace; u32 flags, valid }    ESRCH: quotas off
//!   Q_GETQUOTA 0x800007  if_dqblk  = { u64 bhardlimit, bsoftlimit (1 KiB blocks), curspace (bytes),
//!   Q_SETQUOTA 0x800008               ihardlimit, isoftlimit, curinodes, btime, itime; u32 valid }
//! ```
//!
//! IDs are handed out from [`PROJECT_ID_FIRST`](super::PROJECT_ID_FIRST):
//! the first one that no file uses and that has no limit, chosen and
//! limited under one lock so two `Create`s never share an ID.

// The quota ioctls and quotactl_fd have no safe wrapper (nix has none for
// them): each unsafe block below says why its call is sound.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{
    lock, sys_err, Backend, ProjectAttr, ProjectQuota, Quota, QuotaError, QuotaSys, QuotaUsage,
    TierQuota, PROJECT_ID_FIRST, PROJECT_ID_SPAN,
};

#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

#[repr(C)]
#[derive(Default)]
struct IfDqblk {
    bhardlimit: u64,
    bsoftlimit: u64,
    curspace: u64,
    ihardlimit: u64,
    isoftlimit: u64,
    curinodes: u64,
    btime: u64,
    itime: u64,
    valid: u32,
}

#[repr(C)]
#[derive(Default)]
struct IfDqinfo {
    bgrace: u64,
    igrace: u64,
    flags: u32,
    valid: u32,
}

const fn ioc(dir: u64, ty: u8, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr
}

const FS_IOC_FSGETXATTR: u64 = ioc(2, b'X', 31, std::mem::size_of::<FsXattr>());
const FS_IOC_FSSETXATTR: u64 = ioc(1, b'X', 32, std::mem::size_of::<FsXattr>());
const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;

const PRJQUOTA: u32 = 2;
const Q_GETINFO: u32 = 0x80_0005;
const Q_GETQUOTA: u32 = 0x80_0007;
const Q_SETQUOTA: u32 = 0x80_0008;
const QIF_BLIMITS: u32 = 1;
/// Quota block size of `if_dqblk` limits.
const QUOTA_BLOCK_BYTES: u64 = 1024;

const fn qcmd(cmd: u32, ty: u32) -> u32 {
    (cmd << 8) | (ty & 0xff)
}

fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `open` returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl<T>(fd: &OwnedFd, request: u64, arg: &mut T) -> Result<(), Errno> {
    loop {
        // SAFETY: `arg` is a live, exclusively borrowed `#[repr(C)]` value
        // of the size encoded in `request`, and `fd` is open.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                request as libc::c_ulong,
                arg as *mut T as *mut libc::c_void,
            )
        };
        match Errno::result(rc) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn quotactl_fd<T>(path: &Path, cmd: u32, id: u32, addr: &mut T) -> Result<(), Errno> {
    let fd = open_dir(path)?;
    // SAFETY: `addr` is a live, exclusively borrowed `#[repr(C)]` value of
    // the structure `cmd` reads or writes, and `fd` is open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            fd.as_raw_fd(),
            cmd as libc::c_uint,
            id as libc::c_uint,
            addr as *mut T as *mut libc::c_void,
        )
    };
    Errno::result(rc).map(drop)
}

pub fn get_attr(dir: &Path) -> Result<ProjectAttr, Errno> {
    let fd = open_dir(dir)?;
    let mut x = FsXattr::default();
    ioctl(&fd, FS_IOC_FSGETXATTR, &mut x)?;
    Ok(ProjectAttr {
        project_id: x.projid,
        inherit: x.xflags & FS_XFLAG_PROJINHERIT != 0,
    })
}

pub fn set_attr(dir: &Path, attr: ProjectAttr) -> Result<(), Errno> {
    tracing::debug!(path = %dir.display(), project_id = attr.project_id, inherit = attr.inherit, "set project id");
    let fd = open_dir(dir)?;
    let mut x = FsXattr::default();
    ioctl(&fd, FS_IOC_FSGETXATTR, &mut x)?;
    x.projid = attr.project_id;
    if attr.inherit {
        x.xflags |= FS_XFLAG_PROJINHERIT;
    } else {
        x.xflags &= !FS_XFLAG_PROJINHERIT;
    }
    ioctl(&fd, FS_IOC_FSSETXATTR, &mut x)
}

pub fn enabled(path: &Path) -> Result<bool, Errno> {
    let mut info = IfDqinfo::default();
    match quotactl_fd(path, qcmd(Q_GETINFO, PRJQUOTA), 0, &mut info) {
        Ok(()) => Ok(true),
        // Quotas of that type are not on (ESRCH), or the file system has
        // no quota support at all.
        Err(Errno::ESRCH) | Err(Errno::ENOTSUP) | Err(Errno::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn get_quota(path: &Path, project_id: u32) -> Result<ProjectQuota, Errno> {
    let mut q = IfDqblk::default();
    match quotactl_fd(path, qcmd(Q_GETQUOTA, PRJQUOTA), project_id, &mut q) {
        Ok(()) => Ok(ProjectQuota {
            limit_bytes: q.bhardlimit.saturating_mul(QUOTA_BLOCK_BYTES),
            used_bytes: q.curspace,
            used_inodes: q.curinodes,
        }),
        // XFS: no dquot for this ID yet.
        Err(Errno::ENOENT) => Ok(ProjectQuota::default()),
        Err(e) => Err(e),
    }
}

pub fn set_quota(path: &Path, project_id: u32, limit_bytes: u64) -> Result<(), Errno> {
    tracing::debug!(path = %path.display(), project_id, limit_bytes, "set project quota");
    let blocks = limit_bytes.div_ceil(QUOTA_BLOCK_BYTES);
    let mut q = IfDqblk {
        bhardlimit: blocks,
        bsoftlimit: blocks,
        valid: QIF_BLIMITS,
        ..IfDqblk::default()
    };
    quotactl_fd(path, qcmd(Q_SETQUOTA, PRJQUOTA), project_id, &mut q)
}

/// The project-quota backend of one tier.
pub struct ProjectQuotaBackend {
    sys: Arc<dyn QuotaSys>,
    root: PathBuf,
    alloc: Arc<Mutex<()>>,
}

impl ProjectQuotaBackend {
    pub fn new(sys: Arc<dyn QuotaSys>, root: PathBuf, alloc: Arc<Mutex<()>>) -> Self {
        ProjectQuotaBackend { sys, root, alloc }
    }

    /// The recorded project ID, else the one on `dir` if this plugin
    /// handed it out.
    fn id_of(&self, dir: &Path, q: &TierQuota) -> Option<u32> {
        q.id.and_then(|id| u32::try_from(id).ok()).or_else(|| {
            self.sys
                .project_get(dir)
                .ok()
                .map(|a| a.project_id)
                .filter(|id| *id >= PROJECT_ID_FIRST)
        })
    }

    /// Sets the project of `dir` to `id` (inherit) and limits it; the
    /// caller holds `alloc`.
    fn assign(&self, dir: &Path, id: u32, limit_bytes: u64) -> Result<TierQuota, QuotaError> {
        self.sys
            .project_set(
                dir,
                ProjectAttr {
                    project_id: id,
                    inherit: true,
                },
            )
            .map_err(sys_err("set project id of", dir))?;
        self.sys
            .project_quota_set(&self.root, id, limit_bytes)
            .map_err(sys_err("set project quota on", &self.root))?;
        tracing::info!(path = %dir.display(), project_id = id, limit_bytes, "project quota set");
        Ok(TierQuota {
            backend: Backend::Project,
            limit_bytes,
            id: Some(u64::from(id)),
        })
    }

    fn free_id(&self) -> Result<u32, QuotaError> {
        for id in PROJECT_ID_FIRST..PROJECT_ID_FIRST.saturating_add(PROJECT_ID_SPAN) {
            let q = self
                .sys
                .project_quota_get(&self.root, id)
                .map_err(sys_err("read project quota on", &self.root))?;
            if q == ProjectQuota::default() {
                return Ok(id);
            }
        }
        Err(QuotaError::NoProjectId {
            root: self.root.clone(),
        })
    }
}

impl Quota for ProjectQuotaBackend {
    fn backend(&self) -> Backend {
        Backend::Project
    }

    fn create_dir(&self, dir: &Path, limit_bytes: u64) -> Result<TierQuota, QuotaError> {
        let _held = lock(&self.alloc);
        let id = self.free_id()?;
        std::fs::create_dir(dir).map_err(|e| QuotaError::Sys {
            op: "create",
            path: dir.to_owned(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        self.assign(dir, id, limit_bytes).inspect_err(|_| {
            // Just created, empty.
            let _ = std::fs::remove_dir(dir);
        })
    }

    fn adopt_dir(&self, dir: &Path, limit_bytes: u64) -> Result<TierQuota, QuotaError> {
        let _held = lock(&self.alloc);
        let attr = self
            .sys
            .project_get(dir)
            .map_err(sys_err("read project id of", dir))?;
        if attr.project_id < PROJECT_ID_FIRST || !attr.inherit {
            return Err(QuotaError::NotQuotaDir {
                path: dir.to_owned(),
                what: "directory with a project ID of this plugin",
            });
        }
        self.assign(dir, attr.project_id, limit_bytes)
    }

    fn usage(&self, dir: &Path, q: &TierQuota) -> Result<QuotaUsage, QuotaError> {
        let Some(id) = self.id_of(dir, q) else {
            return Ok(QuotaUsage::default());
        };
        let got = self
            .sys
            .project_quota_get(&self.root, id)
            .map_err(sys_err("read project quota on", &self.root))?;
        Ok(QuotaUsage {
            limit_bytes: (got.limit_bytes > 0).then_some(got.limit_bytes),
            used_bytes: got.used_bytes,
        })
    }

    fn clear_limit(&self, dir: &Path, q: &TierQuota) -> Result<(), QuotaError> {
        let Some(id) = self.id_of(dir, q) else {
            return Ok(());
        };
        self.sys
            .project_quota_set(&self.root, id, 0)
            .map_err(sys_err("clear project quota on", &self.root))
    }

    fn release(&self, dir: &Path, q: &TierQuota) -> Result<(), QuotaError> {
        // The files go with the directory; without a limit and with no
        // file left, the ID is free again.
        self.clear_limit(dir, q)
    }

    fn forget(&self, root: &Path, q: &TierQuota) -> Result<(), QuotaError> {
        self.clear_limit(root, q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_and_quotactl_numbers_match_linux() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<IfDqblk>(), 72);
        assert_eq!(FS_IOC_FSGETXATTR, 0x801c_581f);
        assert_eq!(FS_IOC_FSSETXATTR, 0x401c_5820);
        assert_eq!(qcmd(Q_SETQUOTA, PRJQUOTA), 0x8000_0802);
    }
}
