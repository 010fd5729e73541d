//! btrfs: a subvolume per volume tier, limited by its level-0 qgroup.
//!
//! The ioctls (from `linux/btrfs.h`, magic `0x94`), made on a directory fd
//! opened `O_RDONLY | O_DIRECTORY | O_NOFOLLOW`:
//!
//! ```text
//! SUBVOL_CREATE  _IOW (0x94, 14, vol_args)            on the parent: name -> new subvolume
//! SNAP_DESTROY   _IOW (0x94, 15, vol_args)            on the parent: delete subvolume `name`
//! TREE_SEARCH    _IOWR(0x94, 17, search_args)         quota tree (8): status 240, info 242, limit 244
//! INO_LOOKUP     _IOWR(0x94, 18, ino_lookup_args)     treeid 0, objectid 256 -> the fd's subvolume id
//! QGROUP_CREATE  _IOW (0x94, 42, {create, qgroupid})  create = 0 removes the qgroup
//! QGROUP_LIMIT   _IOR (0x94, 43, {qgroupid, limit})   limit = {flags, max_rfer, max_excl, rsv_rfer, rsv_excl}
//! SYNC           _IO  (0x94, 8)                       commit, and wake the cleaner
//!
//! vol_args        = { s64 fd; char name[4088]; }                      4096 bytes
//! ino_lookup_args = { u64 treeid; u64 objectid; char name[4080]; }    4096 bytes
//! search_args     = { search_key (104 bytes); char buf[3992]; }       4096 bytes
//! search_key      = { u64 tree_id, min_objectid, max_objectid, min_offset, max_offset,
//!                     min_transid, max_transid; u32 min_type, max_type, nr_items, unused;
//!                     u64 unused1..4 }
//! each result     = { u64 transid, objectid, offset; u32 type, len; } + len bytes of item
//! qgroup_info     = { le64 generation, rfer, rfer_cmpr, excl, excl_cmpr }
//! qgroup_limit    = { le64 flags, max_rfer, max_excl, rsv_rfer, rsv_excl }
//! ```
//!
//! Everything but `SUBVOL_CREATE` and `INO_LOOKUP` needs `CAP_SYS_ADMIN`.

// The quota ioctls and quotactl_fd have no safe wrapper (nix has none for
// them): each unsafe block below says why its call is sound.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{
    sys_err, Backend, QgroupInfo, Quota, QuotaError, QuotaSys, QuotaUsage, TierQuota,
    QGROUP_REMOVE_WAIT,
};

const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
const BTRFS_IOCTL_MAGIC: u64 = 0x94;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr
}

const PATH_NAME_MAX: usize = 4087;
const INO_LOOKUP_PATH_MAX: usize = 4080;
const SEARCH_BUF_SIZE: usize = 4096 - std::mem::size_of::<SearchKey>();

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; PATH_NAME_MAX + 1],
}

#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; INO_LOOKUP_PATH_MAX],
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: u64,
    unused2: u64,
    unused3: u64,
    unused4: u64,
}

#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; SEARCH_BUF_SIZE],
}

#[repr(C)]
struct QgroupCreateArgs {
    create: u64,
    qgroupid: u64,
}

#[repr(C)]
struct QgroupLimit {
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    lim: QgroupLimit,
}

const IOC_SUBVOL_CREATE: u64 = ioc(IOC_WRITE, 14, std::mem::size_of::<VolArgs>());
const IOC_SNAP_DESTROY: u64 = ioc(IOC_WRITE, 15, std::mem::size_of::<VolArgs>());
const IOC_TREE_SEARCH: u64 = ioc(IOC_READ | IOC_WRITE, 17, std::mem::size_of::<SearchArgs>());
const IOC_INO_LOOKUP: u64 = ioc(
    IOC_READ | IOC_WRITE,
    18,
    std::mem::size_of::<InoLookupArgs>(),
);
const IOC_QGROUP_CREATE: u64 = ioc(IOC_WRITE, 42, std::mem::size_of::<QgroupCreateArgs>());
const IOC_SYNC: u64 = ioc(0, 8, 0);
const IOC_QGROUP_LIMIT: u64 = ioc(IOC_READ, 43, std::mem::size_of::<QgroupLimitArgs>());

const FIRST_FREE_OBJECTID: u64 = 256;
const QUOTA_TREE_OBJECTID: u64 = 8;
const QGROUP_STATUS_KEY: u32 = 240;
const QGROUP_INFO_KEY: u32 = 242;
const QGROUP_LIMIT_KEY: u32 = 244;
const QGROUP_LIMIT_MAX_RFER: u64 = 1;
/// `max_rfer` value that clears the limit.
const CLEAR_VALUE: u64 = u64::MAX;
const SEARCH_HEADER_BYTES: usize = 32;

fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(|fd| {
        use std::os::fd::FromRawFd;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
}

/// `ioctl(fd, request, arg)`, retried on EINTR.
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

fn parent_and_name(dir: &Path) -> Result<(&Path, &OsStr), Errno> {
    match (dir.parent(), dir.file_name()) {
        (Some(p), Some(n)) if n.len() <= PATH_NAME_MAX => Ok((p, n)),
        (Some(_), Some(_)) => Err(Errno::ENAMETOOLONG),
        _ => Err(Errno::EINVAL),
    }
}

fn vol_args(name: &OsStr) -> Result<Box<VolArgs>, Errno> {
    // No NUL inside (CString checks), fits (checked by the caller).
    let c = CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut args = Box::new(VolArgs {
        fd: 0,
        name: [0; PATH_NAME_MAX + 1],
    });
    args.name[..c.as_bytes().len()].copy_from_slice(c.as_bytes());
    Ok(args)
}

pub fn subvol_create(dir: &Path) -> Result<(), Errno> {
    tracing::debug!(path = %dir.display(), "btrfs subvolume create");
    let (parent, name) = parent_and_name(dir)?;
    let fd = open_dir(parent)?;
    let mut args = vol_args(name)?;
    ioctl(&fd, IOC_SUBVOL_CREATE, &mut *args)
}

pub fn subvol_destroy(dir: &Path) -> Result<(), Errno> {
    tracing::debug!(path = %dir.display(), "btrfs subvolume delete");
    let (parent, name) = parent_and_name(dir)?;
    let fd = open_dir(parent)?;
    let mut args = vol_args(name)?;
    ioctl(&fd, IOC_SNAP_DESTROY, &mut *args)
}

pub fn subvol_id(dir: &Path) -> Result<Option<u64>, Errno> {
    let fd = open_dir(dir)?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    // The root directory of every subvolume has inode 256.
    if st.st_ino != FIRST_FREE_OBJECTID {
        return Ok(None);
    }
    let mut args = Box::new(InoLookupArgs {
        treeid: 0,
        objectid: FIRST_FREE_OBJECTID,
        name: [0; INO_LOOKUP_PATH_MAX],
    });
    ioctl(&fd, IOC_INO_LOOKUP, &mut *args)?;
    Ok(Some(args.treeid))
}

/// Items of the quota tree with key `(0, ty, offset)` for `ty` in
/// `types`: `(type, offset, item bytes)`.
fn search_quota_tree(
    path: &Path,
    min_type: u32,
    max_type: u32,
    offset: u64,
) -> Result<Vec<(u32, u64, Vec<u8>)>, Errno> {
    let fd = open_dir(path)?;
    let mut args = Box::new(SearchArgs {
        key: SearchKey {
            tree_id: QUOTA_TREE_OBJECTID,
            min_objectid: 0,
            max_objectid: 0,
            min_offset: offset,
            max_offset: offset,
            min_transid: 0,
            max_transid: u64::MAX,
            min_type,
            max_type,
            nr_items: 16,
            ..SearchKey::default()
        },
        buf: [0; SEARCH_BUF_SIZE],
    });
    ioctl(&fd, IOC_TREE_SEARCH, &mut *args)?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    for _ in 0..args.key.nr_items {
        let Some(h) = args.buf.get(pos..pos + SEARCH_HEADER_BYTES) else {
            break;
        };
        let le64 = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
        let le32 = |b: &[u8]| u32::from_ne_bytes(b.try_into().expect("4 bytes"));
        let item_offset = le64(&h[16..24]);
        let ty = le32(&h[24..28]);
        let len = le32(&h[28..32]) as usize;
        pos += SEARCH_HEADER_BYTES;
        let Some(item) = args.buf.get(pos..pos + len) else {
            break;
        };
        out.push((ty, item_offset, item.to_vec()));
        pos += len;
    }
    Ok(out)
}

fn le64_at(item: &[u8], index: usize) -> Option<u64> {
    item.get(index * 8..index * 8 + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

pub fn quota_enabled(path: &Path) -> Result<bool, Errno> {
    // Without quotas there is no quota tree: ENOENT.
    match search_quota_tree(path, QGROUP_STATUS_KEY, QGROUP_STATUS_KEY, 0) {
        Ok(items) => Ok(!items.is_empty()),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn qgroup_info(path: &Path, qgroupid: u64) -> Result<Option<QgroupInfo>, Errno> {
    let items = match search_quota_tree(path, QGROUP_INFO_KEY, QGROUP_LIMIT_KEY, qgroupid) {
        Ok(i) => i,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut info = None;
    let mut limit = None;
    for (ty, off, item) in items {
        if off != qgroupid {
            continue;
        }
        match ty {
            QGROUP_INFO_KEY => {
                info = Some(QgroupInfo {
                    referenced_bytes: le64_at(&item, 1).ok_or(Errno::EIO)?,
                    exclusive_bytes: le64_at(&item, 3).ok_or(Errno::EIO)?,
                    max_referenced_bytes: None,
                })
            }
            QGROUP_LIMIT_KEY => {
                let flags = le64_at(&item, 0).ok_or(Errno::EIO)?;
                let max = le64_at(&item, 1).ok_or(Errno::EIO)?;
                limit = (flags & QGROUP_LIMIT_MAX_RFER != 0).then_some(max);
            }
            _ => {}
        }
    }
    Ok(info.map(|i| QgroupInfo {
        max_referenced_bytes: limit,
        ..i
    }))
}

pub fn qgroup_limit(path: &Path, qgroupid: u64, max_referenced: Option<u64>) -> Result<(), Errno> {
    tracing::debug!(path = %path.display(), qgroupid, ?max_referenced, "btrfs qgroup limit");
    let fd = open_dir(path)?;
    let mut args = QgroupLimitArgs {
        qgroupid,
        lim: QgroupLimit {
            flags: QGROUP_LIMIT_MAX_RFER,
            max_rfer: max_referenced.unwrap_or(CLEAR_VALUE),
            max_excl: 0,
            rsv_rfer: 0,
            rsv_excl: 0,
        },
    };
    ioctl(&fd, IOC_QGROUP_LIMIT, &mut args)
}

pub fn sync(path: &Path) -> Result<(), Errno> {
    let fd = open_dir(path)?;
    loop {
        // SAFETY: BTRFS_IOC_SYNC takes no argument; `fd` is open.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), IOC_SYNC as libc::c_ulong, 0) };
        match Errno::result(rc) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn qgroup_create(path: &Path, qgroupid: u64) -> Result<(), Errno> {
    tracing::debug!(path = %path.display(), qgroupid, "btrfs qgroup create");
    let fd = open_dir(path)?;
    let mut args = QgroupCreateArgs {
        create: 1,
        qgroupid,
    };
    ioctl(&fd, IOC_QGROUP_CREATE, &mut args)
}

pub fn qgroup_remove(path: &Path, qgroupid: u64) -> Result<(), Errno> {
    tracing::debug!(path = %path.display(), qgroupid, "btrfs qgroup remove");
    let fd = open_dir(path)?;
    let mut args = QgroupCreateArgs {
        create: 0,
        qgroupid,
    };
    ioctl(&fd, IOC_QGROUP_CREATE, &mut args)
}

/// The btrfs backend.
pub struct BtrfsQuota {
    sys: Arc<dyn QuotaSys>,
}

impl BtrfsQuota {
    pub fn new(sys: Arc<dyn QuotaSys>) -> Self {
        BtrfsQuota { sys }
    }

    fn limit(&self, dir: &Path, limit_bytes: u64) -> Result<TierQuota, QuotaError> {
        let id = self
            .sys
            .btrfs_subvol_id(dir)
            .map_err(sys_err("look up subvolume", dir))?
            .ok_or_else(|| QuotaError::NotQuotaDir {
                path: dir.to_owned(),
                what: "btrfs subvolume",
            })?;
        match self.sys.btrfs_qgroup_limit(dir, id, Some(limit_bytes)) {
            // No qgroup for this subvolume (made while quotas were off).
            Err(Errno::ENOENT) => {
                self.sys
                    .btrfs_qgroup_create(dir, id)
                    .map_err(sys_err("create qgroup of", dir))?;
                self.sys.btrfs_qgroup_limit(dir, id, Some(limit_bytes))
            }
            other => other,
        }
        .map_err(sys_err("set qgroup limit of", dir))?;
        Ok(TierQuota {
            backend: Backend::Btrfs,
            limit_bytes,
            id: Some(id),
        })
    }

    /// Removes qgroup `0/id`, waiting for the cleaner to drop the deleted
    /// subvolume (`EBUSY` until then); each retry commits the transaction
    /// and wakes the cleaner, which otherwise runs every 30 s.
    fn remove_qgroup(&self, at: &Path, id: u64) -> Result<(), QuotaError> {
        let mut waited = Duration::ZERO;
        let mut pause = Duration::from_millis(20);
        loop {
            match self.sys.btrfs_qgroup_remove(at, id) {
                // Gone already (newer kernels drop it with the subvolume),
                // or quotas were disabled since.
                Ok(()) | Err(Errno::ENOENT) | Err(Errno::ENOTCONN) => return Ok(()),
                Err(Errno::EBUSY) if waited < QGROUP_REMOVE_WAIT => {
                    if let Err(e) = self.sys.btrfs_sync(at) {
                        tracing::debug!(path = %at.display(), error = %e, "btrfs sync");
                    }
                    self.sys.sleep(pause);
                    waited += pause;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(Errno::EBUSY) => {
                    return Err(QuotaError::QgroupBusy {
                        path: at.to_owned(),
                        qgroupid: id,
                        waited_ms: waited.as_millis(),
                    })
                }
                Err(e) => return Err(sys_err("remove qgroup of", at)(e)),
            }
        }
    }
}

impl Quota for BtrfsQuota {
    fn backend(&self) -> Backend {
        Backend::Btrfs
    }

    fn create_dir(&self, dir: &Path, limit_bytes: u64) -> Result<TierQuota, QuotaError> {
        self.sys
            .btrfs_subvol_create(dir)
            .map_err(sys_err("create subvolume", dir))?;
        match self.limit(dir, limit_bytes) {
            Ok(q) => {
                tracing::info!(path = %dir.display(), qgroup = ?q.id, limit_bytes, "btrfs subvolume with qgroup limit created");
                Ok(q)
            }
            Err(e) => {
                if let Err(e2) = self.release(
                    dir,
                    &TierQuota {
                        backend: Backend::Btrfs,
                        limit_bytes,
                        id: None,
                    },
                ) {
                    tracing::warn!(path = %dir.display(), error = %e2, "cannot undo new subvolume");
                }
                Err(e)
            }
        }
    }

    fn adopt_dir(&self, dir: &Path, limit_bytes: u64) -> Result<TierQuota, QuotaError> {
        self.limit(dir, limit_bytes)
    }

    fn usage(&self, dir: &Path, q: &TierQuota) -> Result<QuotaUsage, QuotaError> {
        let id = match q.id {
            Some(id) => id,
            None => self
                .sys
                .btrfs_subvol_id(dir)
                .map_err(sys_err("look up subvolume", dir))?
                .ok_or_else(|| QuotaError::NotQuotaDir {
                    path: dir.to_owned(),
                    what: "btrfs subvolume",
                })?,
        };
        let info = self
            .sys
            .btrfs_qgroup_info(dir, id)
            .map_err(sys_err("read qgroup of", dir))?
            .unwrap_or_default();
        Ok(QuotaUsage {
            limit_bytes: info.max_referenced_bytes,
            used_bytes: info.referenced_bytes,
        })
    }

    fn clear_limit(&self, dir: &Path, q: &TierQuota) -> Result<(), QuotaError> {
        let Some(id) = self
            .sys
            .btrfs_subvol_id(dir)
            .map_err(sys_err("look up subvolume", dir))?
            .or(q.id)
        else {
            return Ok(());
        };
        self.sys
            .btrfs_qgroup_limit(dir, id, None)
            .map_err(sys_err("clear qgroup limit of", dir))
    }

    fn forget(&self, root: &Path, q: &TierQuota) -> Result<(), QuotaError> {
        match q.id {
            Some(id) => self.remove_qgroup(root, id),
            None => Ok(()),
        }
    }

    fn release(&self, dir: &Path, q: &TierQuota) -> Result<(), QuotaError> {
        // Any existing directory on the file system will do for the qgroup.
        let Some(parent) = dir.ancestors().skip(1).find(|p| p.is_dir()) else {
            return Ok(());
        };
        let id = match self.sys.btrfs_subvol_id(dir) {
            Ok(Some(id)) => {
                self.sys
                    .btrfs_subvol_destroy(dir)
                    .map_err(sys_err("delete subvolume", dir))?;
                tracing::info!(path = %dir.display(), qgroup = id, "btrfs subvolume deleted");
                Some(id)
            }
            // A plain directory (not ours to delete here) or gone.
            Ok(None) | Err(Errno::ENOENT) => q.id,
            Err(e) => return Err(sys_err("look up subvolume", dir)(e)),
        };
        match id {
            Some(id) => self.remove_qgroup(parent, id),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_btrfs_h() {
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
        assert_eq!(std::mem::size_of::<SearchKey>(), 104);
        assert_eq!(std::mem::size_of::<SearchArgs>(), 4096);
        assert_eq!(IOC_SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(IOC_TREE_SEARCH, 0xd000_9411);
        assert_eq!(IOC_INO_LOOKUP, 0xd000_9412);
        assert_eq!(IOC_QGROUP_CREATE, 0x4010_942a);
        assert_eq!(IOC_QGROUP_LIMIT, 0x8030_942b);
        assert_eq!(IOC_SYNC, 0x9408);
    }
}
