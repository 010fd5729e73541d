//! A model of the quota calls for unit tests: directories are real (in a
//! temp dir), subvolumes and project attributes are tracked by inode (so
//! they follow renames, as in the kernel), qgroups and project limits live
//! in memory, and every call is recorded.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;

use super::{ProjectAttr, ProjectQuota, QgroupInfo, QuotaSys};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QCall {
    SubvolCreate(PathBuf),
    SubvolDestroy(PathBuf),
    QgroupLimit(u64, Option<u64>),
    QgroupRemove(u64),
    QgroupCreate(u64),
    ProjectSet(PathBuf, ProjectAttr),
    ProjectQuotaSet(u32, u64),
}

#[derive(Debug, Default)]
pub struct Model {
    /// `statfs` type by path prefix (longest wins); default tmpfs.
    pub magics: Vec<(PathBuf, i64)>,
    pub btrfs_quota_on: bool,
    pub project_quota_on: bool,
    /// Subvolume root inode -> subvolume ID.
    pub subvols: BTreeMap<u64, u64>,
    pub next_subvol_id: u64,
    /// Qgroup ID -> limit; present while the qgroup exists.
    pub qgroups: BTreeMap<u64, Option<u64>>,
    /// Qgroups of destroyed subvolumes -> `EBUSY` answers left before the
    /// cleaner is done with them.
    pub dropping: BTreeMap<u64, u32>,
    /// How many `EBUSY`s a qgroup removal sees after its subvolume is
    /// destroyed (`u32::MAX`: never done).
    pub busy_after_destroy: u32,
    /// Directory inode -> project attributes.
    pub attrs: BTreeMap<u64, ProjectAttr>,
    /// Project ID -> (limit, used bytes, used inodes).
    pub projects: BTreeMap<u32, ProjectQuota>,
    /// A qgroup limit / project quota set fails with this, after
    /// `fail_limit_after` calls that succeed.
    pub fail_limit: Option<Errno>,
    pub fail_limit_after: u32,
    pub calls: Vec<QCall>,
    pub sleeps: u32,
}

impl Model {
    fn injected_limit_failure(&mut self) -> Option<Errno> {
        self.fail_limit?;
        if self.fail_limit_after > 0 {
            self.fail_limit_after -= 1;
            return None;
        }
        self.fail_limit.take()
    }
}

#[derive(Debug, Default)]
pub struct FakeQuotaSys {
    pub m: Mutex<Model>,
}

fn ino(path: &Path) -> Result<u64, Errno> {
    std::fs::symlink_metadata(path)
        .map(|m| m.ino())
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

fn bytes_under(path: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(path)
        .map(|it| it.flatten().map(|e| bytes_under(&e.path())).sum())
        .unwrap_or(0)
}

impl FakeQuotaSys {
    /// Every path under `root` reports file system type `magic`.
    pub fn set_fs(&self, root: &Path, magic: i64) {
        self.model().magics.push((root.to_owned(), magic));
    }

    pub fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.m.lock().unwrap()
    }

    pub fn take_calls(&self) -> Vec<QCall> {
        std::mem::take(&mut self.model().calls)
    }
}

impl QuotaSys for FakeQuotaSys {
    fn fs_magic(&self, path: &Path) -> Result<i64, Errno> {
        let m = self.model();
        Ok(m.magics
            .iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.components().count())
            .map(|(_, magic)| *magic)
            .unwrap_or(0x0102_1994))
    }

    fn btrfs_subvol_create(&self, dir: &Path) -> Result<(), Errno> {
        std::fs::create_dir(dir)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let i = ino(dir)?;
        let mut m = self.model();
        m.next_subvol_id = m.next_subvol_id.max(256) + 1;
        let id = m.next_subvol_id;
        m.subvols.insert(i, id);
        if m.btrfs_quota_on {
            m.qgroups.insert(id, None);
        }
        m.calls.push(QCall::SubvolCreate(dir.to_owned()));
        Ok(())
    }

    fn btrfs_subvol_destroy(&self, dir: &Path) -> Result<(), Errno> {
        let i = ino(dir)?;
        let mut m = self.model();
        let id = m.subvols.remove(&i).ok_or(Errno::EINVAL)?;
        std::fs::remove_dir_all(dir).map_err(|_| Errno::EIO)?;
        let busy = m.busy_after_destroy;
        if m.qgroups.contains_key(&id) {
            m.dropping.insert(id, busy);
        }
        m.calls.push(QCall::SubvolDestroy(dir.to_owned()));
        Ok(())
    }

    fn btrfs_subvol_id(&self, dir: &Path) -> Result<Option<u64>, Errno> {
        let i = ino(dir)?;
        Ok(self.model().subvols.get(&i).copied())
    }

    fn btrfs_quota_enabled(&self, _path: &Path) -> Result<bool, Errno> {
        Ok(self.model().btrfs_quota_on)
    }

    fn btrfs_qgroup_limit(
        &self,
        _path: &Path,
        qgroupid: u64,
        max_referenced: Option<u64>,
    ) -> Result<(), Errno> {
        let mut m = self.model();
        if let Some(e) = m.injected_limit_failure() {
            return Err(e);
        }
        if !m.btrfs_quota_on {
            return Err(Errno::ENOTCONN);
        }
        let slot = m.qgroups.get_mut(&qgroupid).ok_or(Errno::ENOENT)?;
        *slot = max_referenced;
        m.calls.push(QCall::QgroupLimit(qgroupid, max_referenced));
        Ok(())
    }

    fn btrfs_qgroup_info(&self, path: &Path, qgroupid: u64) -> Result<Option<QgroupInfo>, Errno> {
        let limit = {
            let m = self.model();
            match m.qgroups.get(&qgroupid) {
                Some(l) => *l,
                None => return Ok(None),
            }
        };
        let used = bytes_under(path);
        Ok(Some(QgroupInfo {
            referenced_bytes: used,
            exclusive_bytes: used,
            max_referenced_bytes: limit,
        }))
    }

    fn btrfs_qgroup_remove(&self, _path: &Path, qgroupid: u64) -> Result<(), Errno> {
        let mut m = self.model();
        if !m.qgroups.contains_key(&qgroupid) {
            return Err(Errno::ENOENT);
        }
        if m.subvols.values().any(|id| *id == qgroupid) {
            return Err(Errno::EBUSY);
        }
        if let Some(left) = m.dropping.get_mut(&qgroupid) {
            if *left > 0 {
                *left = left.saturating_sub(1);
                return Err(Errno::EBUSY);
            }
        }
        m.dropping.remove(&qgroupid);
        m.qgroups.remove(&qgroupid);
        m.calls.push(QCall::QgroupRemove(qgroupid));
        Ok(())
    }

    fn btrfs_qgroup_create(&self, _path: &Path, qgroupid: u64) -> Result<(), Errno> {
        let mut m = self.model();
        if !m.btrfs_quota_on {
            return Err(Errno::ENOTCONN);
        }
        if m.qgroups.insert(qgroupid, None).is_some() {
            return Err(Errno::EEXIST);
        }
        m.calls.push(QCall::QgroupCreate(qgroupid));
        Ok(())
    }

    fn btrfs_sync(&self, _path: &Path) -> Result<(), Errno> {
        Ok(())
    }

    fn project_get(&self, dir: &Path) -> Result<ProjectAttr, Errno> {
        let i = ino(dir)?;
        Ok(self.model().attrs.get(&i).copied().unwrap_or_default())
    }

    fn project_set(&self, dir: &Path, attr: ProjectAttr) -> Result<(), Errno> {
        let i = ino(dir)?;
        let mut m = self.model();
        m.attrs.insert(i, attr);
        m.calls.push(QCall::ProjectSet(dir.to_owned(), attr));
        Ok(())
    }

    fn project_quota_enabled(&self, _path: &Path) -> Result<bool, Errno> {
        Ok(self.model().project_quota_on)
    }

    fn project_quota_get(&self, _path: &Path, project_id: u32) -> Result<ProjectQuota, Errno> {
        Ok(self
            .model()
            .projects
            .get(&project_id)
            .copied()
            .unwrap_or_default())
    }

    fn project_quota_set(
        &self,
        _path: &Path,
        project_id: u32,
        limit_bytes: u64,
    ) -> Result<(), Errno> {
        let mut m = self.model();
        if let Some(e) = m.injected_limit_failure() {
            return Err(e);
        }
        m.projects.entry(project_id).or_default().limit_bytes = limit_bytes;
        m.calls
            .push(QCall::ProjectQuotaSet(project_id, limit_bytes));
        Ok(())
    }

    fn sleep(&self, _d: Duration) {
        self.model().sleeps += 1;
    }
}
