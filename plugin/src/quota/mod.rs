//! Per-tier quotas enforced by the tier's own file system: no loop file,
//! no FUSE.
//!
//! - **btrfs** ([`btrfs`]): the volume's tier directory is a subvolume; its
//!   level-0 qgroup (`0/<subvolume id>`) gets a referenced-bytes limit.
//!   Removing the volume destroys the subvolume, then the qgroup (once
//!   the kernel's cleaner has dropped the subvolume).
//! - **XFS / ext4 project quotas** ([`projquota`]): the directory gets a
//!   project ID with the inherit flag (`FS_IOC_FSSETXATTR`), the ID a
//!   block hard limit (`quotactl_fd(Q_SETQUOTA, PRJQUOTA)`). Removing the
//!   volume clears the limit; the ID is free again once its files are gone.
//!
//! The backend is chosen per tier from `statfs(2)`'s `f_type` at `Create`
//! and recorded in the volume's metadata ([`TierQuota`]). Every kernel call
//! goes through the [`QuotaSys`] trait: [`RealQuotaSys`] makes the ioctls,
//! [`fake::FakeQuotaSys`] models them for unit tests.

pub mod btrfs;
pub mod projquota;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// Smallest accepted `size` / `archive-size`, in bytes.
pub const QUOTA_MIN_BYTES: u64 = 1024 * 1024;
/// Largest accepted `size` / `archive-size`, in bytes (fits an `i64`).
pub const QUOTA_MAX_BYTES: u64 = i64::MAX as u64;
/// How long `Remove` waits for btrfs to drop a destroyed subvolume before
/// its qgroup can be removed.
pub const QGROUP_REMOVE_WAIT: Duration = Duration::from_secs(10);
/// First project ID handed out to volumes (IDs below are left to the
/// operator's own projects).
pub const PROJECT_ID_FIRST: u32 = 0x7469_0000;
/// How many project IDs are tried before giving up.
pub const PROJECT_ID_SPAN: u32 = 1 << 20;

/// `statfs.f_type` of btrfs.
pub const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
/// `statfs.f_type` of XFS.
pub const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
/// `statfs.f_type` of ext2/3/4.
pub const EXT4_SUPER_MAGIC: i64 = 0xEF53;

/// Parses a size such as `20M`, `1G`, `1.5G`, `512KiB` or `1048576`:
/// a decimal number and an optional binary unit (`K`, `M`, `G`, `T`, `P`,
/// case-insensitive, optionally followed by `B` or `iB`; a bare `B` means
/// bytes). `None` for anything else or a value above [`QUOTA_MAX_BYTES`].
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => return None,
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || int.len() > 19 || frac.len() > 9 || frac.contains('.') {
        return None;
    }
    let int: u128 = int.parse().ok()?;
    let mut bytes = int << shift;
    if !frac.is_empty() {
        let digits: u128 = frac.parse().ok()?;
        let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
        bytes += (digits << shift) / scale;
    }
    u64::try_from(bytes).ok().filter(|b| *b <= QUOTA_MAX_BYTES)
}

/// A tier of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Primary,
    Archive,
}

impl Tier {
    /// `primary` or `archive`, as in Status keys and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Primary => "primary",
            Tier::Archive => "archive",
        }
    }
}

/// How a tier's quota is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A btrfs subvolume with a qgroup limit.
    Btrfs,
    /// An XFS/ext4 project ID with a block hard limit.
    Project,
    /// Not enforced: the tier cannot, and `quota=best-effort` was given.
    None,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Btrfs => "btrfs",
            Backend::Project => "project",
            Backend::None => "none",
        }
    }
}

/// The quota of one tier of one volume, kept in its `volume.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierQuota {
    pub backend: Backend,
    /// The size asked for.
    pub limit_bytes: u64,
    /// The qgroup's subvolume ID (btrfs) or the project ID; `None` until
    /// known (a btrfs subvolume's ID is known once it exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// The quotas of a volume's two tiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<TierQuota>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<TierQuota>,
}

impl QuotaRecord {
    pub fn is_empty(&self) -> bool {
        self.primary.is_none() && self.archive.is_none()
    }

    pub fn get(&self, tier: Tier) -> Option<&TierQuota> {
        match tier {
            Tier::Primary => self.primary.as_ref(),
            Tier::Archive => self.archive.as_ref(),
        }
    }
}

/// What the file system reports for an enforced quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaUsage {
    /// The limit in force (`None`: no limit set).
    pub limit_bytes: Option<u64>,
    pub used_bytes: u64,
}

/// A quota failure; the message names the tier or path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("{tier} tier at {root} cannot enforce a size: {reason} (or create the volume with -o quota=best-effort)", tier = tier.label(), root = root.display())]
    Unsupported {
        tier: Tier,
        root: PathBuf,
        reason: String,
    },
    #[error("{path} already exists and is not a {what}; a size cannot be put on it (it was kept from an earlier volume without a size)", path = path.display())]
    NotQuotaDir { path: PathBuf, what: &'static str },
    #[error("no free project ID in {PROJECT_ID_FIRST}..+{PROJECT_ID_SPAN} on {root}", root = root.display())]
    NoProjectId { root: PathBuf },
    #[error("qgroup 0/{qgroupid} of {path} still busy {waited_ms} ms after its subvolume was deleted; it is removed when the plugin next starts", path = path.display())]
    QgroupBusy {
        path: PathBuf,
        qgroupid: u64,
        waited_ms: u128,
    },
    #[error("{op} {path}: {errno}", path = path.display())]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

impl QuotaError {
    /// The errno of a failed kernel call.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            QuotaError::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

fn sys_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> QuotaError + 'a {
    move |errno| QuotaError::Sys {
        op,
        path: path.to_owned(),
        errno,
    }
}

/// A btrfs qgroup's numbers (`0/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QgroupInfo {
    pub referenced_bytes: u64,
    pub exclusive_bytes: u64,
    /// `max_rfer` when its limit flag is set.
    pub max_referenced_bytes: Option<u64>,
}

/// A project's numbers from `Q_GETQUOTA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProjectQuota {
    /// Block hard limit in bytes (0: none).
    pub limit_bytes: u64,
    pub used_bytes: u64,
    pub used_inodes: u64,
}

/// The project attributes of a directory (`struct fsxattr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProjectAttr {
    pub project_id: u32,
    pub inherit: bool,
}

/// The kernel calls of the quota backends. Paths are directories; calls
/// about a whole file system take any path on it.
pub trait QuotaSys: Send + Sync + 'static {
    /// `statfs(2)` `f_type`.
    fn fs_magic(&self, path: &Path) -> Result<i64, Errno>;
    /// `BTRFS_IOC_SUBVOL_CREATE` on `dir`'s parent: `dir` becomes a new,
    /// empty subvolume.
    fn btrfs_subvol_create(&self, dir: &Path) -> Result<(), Errno>;
    /// `BTRFS_IOC_SNAP_DESTROY` on `dir`'s parent: deletes the subvolume
    /// `dir` with everything in it.
    fn btrfs_subvol_destroy(&self, dir: &Path) -> Result<(), Errno>;
    /// The subvolume ID of `dir` if `dir` is the root of a subvolume
    /// (`BTRFS_IOC_INO_LOOKUP`), else `None`.
    fn btrfs_subvol_id(&self, dir: &Path) -> Result<Option<u64>, Errno>;
    /// Whether quotas (qgroups) are enabled on the file system.
    fn btrfs_quota_enabled(&self, path: &Path) -> Result<bool, Errno>;
    /// `BTRFS_IOC_QGROUP_LIMIT` of `0/qgroupid`: referenced-bytes limit,
    /// `None` clears it.
    fn btrfs_qgroup_limit(
        &self,
        path: &Path,
        qgroupid: u64,
        max_referenced: Option<u64>,
    ) -> Result<(), Errno>;
    /// The qgroup `0/qgroupid` from the quota tree, `None` if absent.
    fn btrfs_qgroup_info(&self, path: &Path, qgroupid: u64) -> Result<Option<QgroupInfo>, Errno>;
    /// `BTRFS_IOC_QGROUP_CREATE` with `create = 1`: makes `0/qgroupid`
    /// (the kernel makes it with the subvolume when quotas are on; this is
    /// for a subvolume made while they were off).
    fn btrfs_qgroup_create(&self, path: &Path, qgroupid: u64) -> Result<(), Errno>;
    /// `BTRFS_IOC_SYNC`: commits the transaction and wakes the cleaner
    /// (which drops deleted subvolumes).
    fn btrfs_sync(&self, path: &Path) -> Result<(), Errno>;
    /// `BTRFS_IOC_QGROUP_CREATE` with `create = 0`: removes `0/qgroupid`
    /// (`EBUSY` while its subvolume is not fully dropped).
    fn btrfs_qgroup_remove(&self, path: &Path, qgroupid: u64) -> Result<(), Errno>;
    /// `FS_IOC_FSGETXATTR`.
    fn project_get(&self, dir: &Path) -> Result<ProjectAttr, Errno>;
    /// `FS_IOC_FSSETXATTR` of the project ID and the inherit flag (other
    /// flags kept).
    fn project_set(&self, dir: &Path, attr: ProjectAttr) -> Result<(), Errno>;
    /// Whether project quotas are on (`quotactl_fd(Q_GETINFO, PRJQUOTA)`).
    fn project_quota_enabled(&self, path: &Path) -> Result<bool, Errno>;
    /// `quotactl_fd(Q_GETQUOTA, PRJQUOTA)`; an unknown ID reads as zeros.
    fn project_quota_get(&self, path: &Path, project_id: u32) -> Result<ProjectQuota, Errno>;
    /// `quotactl_fd(Q_SETQUOTA, PRJQUOTA)` of the block hard and soft
    /// limits (0 clears them).
    fn project_quota_set(
        &self,
        path: &Path,
        project_id: u32,
        limit_bytes: u64,
    ) -> Result<(), Errno>;
    /// Waits (the fake returns at once).
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// The real calls: ioctls and `quotactl_fd` through libc.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealQuotaSys;

impl QuotaSys for RealQuotaSys {
    fn fs_magic(&self, path: &Path) -> Result<i64, Errno> {
        let s = nix::sys::statfs::statfs(path)?;
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        Ok(s.filesystem_type().0 as i64)
    }
    fn btrfs_subvol_create(&self, dir: &Path) -> Result<(), Errno> {
        btrfs::subvol_create(dir)
    }
    fn btrfs_subvol_destroy(&self, dir: &Path) -> Result<(), Errno> {
        btrfs::subvol_destroy(dir)
    }
    fn btrfs_subvol_id(&self, dir: &Path) -> Result<Option<u64>, Errno> {
        btrfs::subvol_id(dir)
    }
    fn btrfs_quota_enabled(&self, path: &Path) -> Result<bool, Errno> {
        btrfs::quota_enabled(path)
    }
    fn btrfs_qgroup_limit(
        &self,
        path: &Path,
        qgroupid: u64,
        max_referenced: Option<u64>,
    ) -> Result<(), Errno> {
        btrfs::qgroup_limit(path, qgroupid, max_referenced)
    }
    fn btrfs_qgroup_info(&self, path: &Path, qgroupid: u64) -> Result<Option<QgroupInfo>, Errno> {
        btrfs::qgroup_info(path, qgroupid)
    }
    fn btrfs_qgroup_remove(&self, path: &Path, qgroupid: u64) -> Result<(), Errno> {
        btrfs::qgroup_remove(path, qgroupid)
    }
    fn btrfs_sync(&self, path: &Path) -> Result<(), Errno> {
        btrfs::sync(path)
    }
    fn btrfs_qgroup_create(&self, path: &Path, qgroupid: u64) -> Result<(), Errno> {
        btrfs::qgroup_create(path, qgroupid)
    }
    fn project_get(&self, dir: &Path) -> Result<ProjectAttr, Errno> {
        projquota::get_attr(dir)
    }
    fn project_set(&self, dir: &Path, attr: ProjectAttr) -> Result<(), Errno> {
        projquota::set_attr(dir, attr)
    }
    fn project_quota_enabled(&self, path: &Path) -> Result<bool, Errno> {
        projquota::enabled(path)
    }
    fn project_quota_get(&self, path: &Path, project_id: u32) -> Result<ProjectQuota, Errno> {
        projquota::get_quota(path, project_id)
    }
    fn project_quota_set(
        &self,
        path: &Path,
        project_id: u32,
        limit_bytes: u64,
    ) -> Result<(), Errno> {
        projquota::set_quota(path, project_id, limit_bytes)
    }
}

/// One quota backend.
pub trait Quota: Send + Sync {
    fn backend(&self) -> Backend;
    /// Creates `dir` (absent) with a limit of `limit_bytes`.
    fn create_dir(&self, dir: &Path, limit_bytes: u64) -> Result<TierQuota, QuotaError>;
    /// Puts a limit on an existing `dir` this backend created earlier
    /// (an archive kept by `keep-archive`).
    fn adopt_dir(&self, dir: &Path, limit_bytes: u64) -> Result<TierQuota, QuotaError>;
    /// The limit in force and the bytes used.
    fn usage(&self, dir: &Path, q: &TierQuota) -> Result<QuotaUsage, QuotaError>;
    /// Lifts the limit but keeps `dir` and its data (`keep-archive`).
    fn clear_limit(&self, dir: &Path, q: &TierQuota) -> Result<(), QuotaError>;
    /// Releases the quota of `dir`, which is being deleted: btrfs deletes
    /// the subvolume (with its content) and its qgroup; project quotas
    /// clear the limit (the caller deletes the files). Missing is fine.
    fn release(&self, dir: &Path, q: &TierQuota) -> Result<(), QuotaError>;
    /// The directory is already gone (a failed creation): drops what is
    /// left of its quota. `root` is any existing path on the file system.
    fn forget(&self, root: &Path, q: &TierQuota) -> Result<(), QuotaError>;
}

/// Quotas of both tiers: chooses the backend from the file system and
/// hands out project IDs.
pub struct Quotas {
    sys: Arc<dyn QuotaSys>,
    /// Serialises project ID allocation (choose + set the limit).
    alloc: Arc<Mutex<()>>,
}

impl Quotas {
    pub fn new(sys: Arc<dyn QuotaSys>) -> Self {
        Quotas {
            sys,
            alloc: Arc::new(Mutex::new(())),
        }
    }

    /// The backend that enforces sizes on the tier at `root`, or why
    /// none can.
    pub fn choose(&self, tier: Tier, root: &Path) -> Result<Box<dyn Quota>, QuotaError> {
        let unsupported = |reason: String| QuotaError::Unsupported {
            tier,
            root: root.to_owned(),
            reason,
        };
        let magic = self.sys.fs_magic(root).map_err(sys_err("statfs", root))?;
        match magic {
            BTRFS_SUPER_MAGIC => match self.sys.btrfs_quota_enabled(root) {
                Ok(true) => Ok(Box::new(btrfs::BtrfsQuota::new(self.sys.clone()))),
                Ok(false) => Err(unsupported(format!(
                    "btrfs quotas are not enabled (run `btrfs quota enable` on the host's mount of {})",
                    root.display()
                ))),
                Err(e) => Err(unsupported(format!("cannot read the btrfs quota tree: {e}"))),
            },
            XFS_SUPER_MAGIC | EXT4_SUPER_MAGIC => {
                let fs = if magic == XFS_SUPER_MAGIC { "xfs" } else { "ext4" };
                match self.sys.project_quota_enabled(root) {
                    Ok(true) => Ok(Box::new(projquota::ProjectQuotaBackend::new(
                        self.sys.clone(),
                        root.to_owned(),
                        self.alloc.clone(),
                    ))),
                    Ok(false) => Err(unsupported(format!(
                        "{fs} project quotas are off (mount it with -o prjquota)"
                    ))),
                    Err(Errno::ENOSYS) => Err(unsupported(format!(
                        "{fs}: this kernel has no quotactl_fd (Linux 5.14 or later is needed)"
                    ))),
                    Err(e) => Err(unsupported(format!("{fs}: quotactl_fd Q_GETINFO: {e}"))),
                }
            }
            other => Err(unsupported(format!(
                "its file system (statfs type {other:#x}) has no per-directory quotas; use btrfs, or XFS/ext4 with prjquota"
            ))),
        }
    }

    /// The backend recorded for a volume's tier.
    pub fn backend(&self, backend: Backend, root: &Path) -> Option<Box<dyn Quota>> {
        match backend {
            Backend::Btrfs => Some(Box::new(btrfs::BtrfsQuota::new(self.sys.clone()))),
            Backend::Project => Some(Box::new(projquota::ProjectQuotaBackend::new(
                self.sys.clone(),
                root.to_owned(),
                self.alloc.clone(),
            ))),
            Backend::None => None,
        }
    }

    /// Deletes a btrfs subvolume left by an interrupted creation at `dir`
    /// (and its qgroup); a plain directory or another file system is left
    /// to the caller.
    pub fn release_leftover(&self, dir: &Path) -> Result<(), QuotaError> {
        if self.sys.fs_magic(dir) != Ok(BTRFS_SUPER_MAGIC) {
            return Ok(());
        }
        let Some(id) = self
            .sys
            .btrfs_subvol_id(dir)
            .map_err(sys_err("look up subvolume", dir))?
        else {
            return Ok(());
        };
        btrfs::BtrfsQuota::new(self.sys.clone()).release(
            dir,
            &TierQuota {
                backend: Backend::Btrfs,
                limit_bytes: 0,
                id: Some(id),
            },
        )
    }
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod driver_tests;
#[cfg(test)]
pub mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("20M", 20 << 20),
            ("20m", 20 << 20),
            ("20MB", 20 << 20),
            ("20MiB", 20 << 20),
            ("1G", 1 << 30),
            ("1.5G", 3 << 29),
            ("512k", 512 << 10),
            ("2T", 2 << 40),
            ("1P", 1 << 50),
            ("100b", 100),
            ("0", 0),
        ] {
            assert_eq!(parse_size(text), Some(bytes), "{text}");
        }
        for bad in [
            "",
            "M",
            "1X",
            "-1",
            "1.2.3",
            ".5G",
            "1 G",
            "20MBB",
            "1e9",
            "99999999999P",
            "10000000000000000000000",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("8192P"), None, "above i64::MAX");
    }
}
