//! The driver's quota handling against [`FakeQuotaSys`]: refusal,
//! best effort, btrfs and project quotas created, reported and released.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use serde_json::{json, Value};

use super::fake::{FakeQuotaSys, QCall};
use super::*;
use crate::driver::{Driver, DriverError, OpenOptions, Tiers};
use crate::mounts::fake::RecordingSyscalls;
use crate::volume::VolumeOptions;

struct Fixture {
    _dir: tempfile::TempDir,
    tiers: Tiers,
    sys: Arc<RecordingSyscalls>,
    q: Arc<FakeQuotaSys>,
    driver: Driver,
}

/// Primary and archive tiers of file system types `primary`/`archive`.
fn fixture(primary: i64, archive: i64, setup: impl FnOnce(&mut fake::Model)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let tiers = Tiers {
        primary_root: root.join("primary"),
        archive_root: root.join("archive"),
        mount_root: root.join("mnt"),
        archive_dir_name: "archived".into(),
    };
    let q = Arc::new(FakeQuotaSys::default());
    q.set_fs(&tiers.primary_root, primary);
    q.set_fs(&tiers.archive_root, archive);
    setup(&mut q.model());
    let sys = Arc::new(RecordingSyscalls::default());
    let driver = Driver::open_with_quota(
        tiers.clone(),
        sys.clone(),
        OpenOptions::default(),
        q.clone(),
    )
    .unwrap();
    Fixture {
        _dir: dir,
        tiers,
        sys,
        q,
        driver,
    }
}

fn btrfs() -> Fixture {
    fixture(BTRFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, |m| {
        m.btrfs_quota_on = true
    })
}

fn project() -> Fixture {
    fixture(XFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, |m| {
        m.project_quota_on = true
    })
}

impl Fixture {
    fn reopen(&mut self) {
        self.driver = Driver::open_with_quota(
            self.tiers.clone(),
            self.sys.clone(),
            OpenOptions::default(),
            self.q.clone(),
        )
        .unwrap();
    }

    fn status(&self, name: &str) -> serde_json::Map<String, Value> {
        self.driver.get(name).unwrap().status.unwrap()
    }

    /// Every entry under the tier roots except the plugin's own (dot)
    /// files: state dir, tier markers, archive owner records.
    fn tree(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    continue;
                }
                out.push(p.clone());
                if p.is_dir() {
                    walk(&p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.tiers.primary_root, &mut out);
        walk(&self.tiers.archive_root, &mut out);
        out
    }

    fn trash_is_empty(&self) -> bool {
        std::fs::read_dir(self.tiers.primary_root.join(".tiered/trash"))
            .unwrap()
            .next()
            .is_none()
    }
}

fn sized(size: Option<&str>, archive: Option<&str>) -> VolumeOptions {
    VolumeOptions {
        size_bytes: size.map(|s| parse_size(s).unwrap()),
        archive_size_bytes: archive.map(|s| parse_size(s).unwrap()),
        ..VolumeOptions::default()
    }
}

fn quota_err(e: DriverError) -> QuotaError {
    match e {
        DriverError::Quota { source, .. } => source,
        other => panic!("not a quota error: {other}"),
    }
}

#[test]
fn a_size_on_a_tier_that_cannot_enforce_it_is_refused_and_creates_nothing() {
    // tmpfs (the fake's default type) on both tiers.
    let f = fixture(0x0102_1994, 0x0102_1994, |_| {});
    let err = quota_err(f.driver.create("v", sized(Some("20M"), None)).unwrap_err());
    assert!(
        matches!(&err, QuotaError::Unsupported { tier: Tier::Primary, root, .. } if root == &f.tiers.primary_root),
        "{err}"
    );
    let err = quota_err(f.driver.create("v", sized(None, Some("30M"))).unwrap_err());
    assert!(
        matches!(
            err,
            QuotaError::Unsupported {
                tier: Tier::Archive,
                ..
            }
        ),
        "{err}"
    );
    assert!(f.tree().is_empty(), "{:?}", f.tree());
    assert!(f.driver.list().is_empty());
    // Without a size the same tiers are fine.
    f.driver.create("v", VolumeOptions::default()).unwrap();
    let st = f.status("v");
    for k in [
        "primary_quota",
        "primary_quota_limit_bytes",
        "primary_quota_used_bytes",
        "archive_quota_limit_bytes",
        "archive_quota_used_bytes",
    ] {
        assert_eq!(st[k], Value::Null, "{k}");
    }
}

#[test]
fn btrfs_without_quotas_enabled_is_refused() {
    let f = fixture(BTRFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, |_| {});
    let err = quota_err(f.driver.create("v", sized(Some("20M"), None)).unwrap_err());
    assert!(matches!(err, QuotaError::Unsupported { .. }), "{err}");
    assert!(f.q.take_calls().is_empty());
}

#[test]
fn best_effort_creates_the_volume_without_enforcing() {
    let f = fixture(0x0102_1994, BTRFS_SUPER_MAGIC, |m| m.btrfs_quota_on = true);
    let o = VolumeOptions {
        quota_best_effort: true,
        ..sized(Some("20M"), Some("30M"))
    };
    f.driver.create("v", o.clone()).unwrap();
    let st = f.status("v");
    assert_eq!(st["primary_quota"], json!("none"));
    assert_eq!(st["primary_quota_limit_bytes"], Value::Null);
    // The archive tier can enforce: it does.
    assert_eq!(st["archive_quota"], json!("btrfs"));
    assert_eq!(st["archive_quota_limit_bytes"], json!(30 << 20));
    assert!(f.driver.data_dir("v").is_dir());
    // Same options again: accepted.
    f.driver.create("v", o).unwrap();
}

#[test]
fn btrfs_subvolumes_with_limits_are_reported_and_survive_reopen() {
    let mut f = btrfs();
    f.driver
        .create("v", sized(Some("20M"), Some("30M")))
        .unwrap();
    let calls = f.q.take_calls();
    assert!(
        matches!(&calls[..], [
            QCall::SubvolCreate(a),
            QCall::QgroupLimit(_, Some(31_457_280)),
            QCall::SubvolCreate(d),
            QCall::QgroupLimit(_, Some(20_971_520)),
        ] if a == &f.driver.archive_dir("v") && d.ends_with("data")),
        "{calls:?}"
    );
    assert_eq!(f.q.model().qgroups.len(), 2);
    std::fs::write(f.driver.data_dir("v").join("f"), vec![0u8; 4096]).unwrap();
    std::fs::write(f.driver.archive_dir("v").join("g"), vec![0u8; 100]).unwrap();
    for _ in 0..2 {
        let st = f.status("v");
        assert_eq!(st["primary_quota"], json!("btrfs"));
        assert_eq!(st["primary_quota_limit_bytes"], json!(20 << 20));
        assert_eq!(st["primary_quota_used_bytes"], json!(4096));
        assert_eq!(st["archive_quota_limit_bytes"], json!(30 << 20));
        // The file, and any small record the plugin keeps in the dir.
        let used = st["archive_quota_used_bytes"].as_u64().unwrap();
        assert!((100..100 + 1024).contains(&used), "{used}");
        let samples = f.driver.quota_samples();
        assert_eq!(samples.len(), 2, "{samples:?}");
        assert!(samples
            .iter()
            .any(|s| s.tier == Tier::Primary && s.limit_bytes == 20 << 20 && s.used_bytes == 4096));
        f.reopen();
    }
    // The record names the subvolumes' qgroups.
    let json: Value =
        serde_json::from_slice(&std::fs::read(f.tiers.primary_root.join("v/volume.json")).unwrap())
            .unwrap();
    assert_eq!(json["options"]["size_bytes"], json!(20 << 20));
    assert_eq!(json["quota"]["primary"]["backend"], json!("btrfs"));
    assert!(json["quota"]["primary"]["id"].as_u64().unwrap() >= 256);
    assert!(json["quota"]["archive"]["id"].as_u64().unwrap() >= 256);
}

#[test]
fn btrfs_remove_deletes_subvolumes_and_qgroups_waiting_for_the_cleaner() {
    let f = btrfs();
    f.q.model().busy_after_destroy = 3;
    for round in 0..3 {
        f.driver
            .create("v", sized(Some("20M"), Some("30M")))
            .unwrap();
        f.driver.create("w", sized(Some("20M"), None)).unwrap();
        std::fs::write(f.driver.data_dir("v").join("f"), b"x").unwrap();
        f.driver.mount("v", "a").unwrap();
        f.driver.unmount("v", "a").unwrap();
        f.driver.remove("v").unwrap();
        f.driver.remove("w").unwrap();
        let m = f.q.model();
        assert!(m.subvols.is_empty(), "round {round}: {:?}", m.subvols);
        assert!(m.qgroups.is_empty(), "round {round}: {:?}", m.qgroups);
        assert!(m.sleeps >= 3, "waited for the cleaner");
        drop(m);
        assert!(f.tree().is_empty(), "{:?}", f.tree());
        assert!(f.trash_is_empty());
    }
}

#[test]
fn a_qgroup_the_cleaner_never_frees_is_retried_at_the_next_start() {
    let mut f = btrfs();
    f.driver.create("v", sized(Some("20M"), None)).unwrap();
    f.q.model().busy_after_destroy = u32::MAX;
    // The volume is gone at once; its qgroup is not yet.
    f.driver.remove("v").unwrap();
    assert!(matches!(f.driver.get("v"), Err(DriverError::NotFound(_))));
    assert_eq!(f.q.model().qgroups.len(), 1);
    assert!(!f.trash_is_empty(), "kept for the retry");
    f.q.model().dropping.clear();
    f.reopen();
    assert!(f.q.model().qgroups.is_empty());
    assert!(f.trash_is_empty());
}

#[test]
fn a_failed_limit_undoes_the_creation() {
    for (fail_after, tier) in [(0, "archive"), (1, "primary")] {
        let f = btrfs();
        {
            let mut m = f.q.model();
            m.fail_limit = Some(Errno::EPERM);
            m.fail_limit_after = fail_after;
        }
        let err = quota_err(
            f.driver
                .create("v", sized(Some("20M"), Some("30M")))
                .unwrap_err(),
        );
        assert_eq!(err.errno(), Some(Errno::EPERM), "{tier}: {err}");
        let m = f.q.model();
        assert!(m.subvols.is_empty(), "{tier}: {:?}", m.subvols);
        assert!(m.qgroups.is_empty(), "{tier}: {:?}", m.qgroups);
        drop(m);
        assert!(f.tree().is_empty(), "{tier}: {:?}", f.tree());
        assert!(f.driver.list().is_empty());
        // And the volume can be made once the fault is gone.
        f.driver
            .create("v", sized(Some("20M"), Some("30M")))
            .unwrap();
    }
}

#[test]
fn a_failed_project_limit_frees_the_id() {
    let f = project();
    {
        let mut m = f.q.model();
        m.fail_limit = Some(Errno::EPERM);
        m.fail_limit_after = 1;
    }
    let err = quota_err(
        f.driver
            .create("v", sized(Some("20M"), Some("30M")))
            .unwrap_err(),
    );
    assert_eq!(err.errno(), Some(Errno::EPERM), "{err}");
    assert!(f.tree().is_empty(), "{:?}", f.tree());
    assert!(
        f.q.model()
            .projects
            .values()
            .all(|p| *p == ProjectQuota::default()),
        "{:?}",
        f.q.model().projects
    );
}

#[test]
fn keep_archive_lifts_the_limit_and_a_new_size_is_put_back() {
    let f = btrfs();
    let o = VolumeOptions {
        keep_archive: true,
        ..sized(None, Some("30M"))
    };
    f.driver.create("v", o.clone()).unwrap();
    std::fs::write(f.driver.archive_dir("v").join("keep"), b"x").unwrap();
    f.driver.remove("v").unwrap();
    assert!(f.driver.archive_dir("v").join("keep").is_file());
    let m = f.q.model();
    assert_eq!(m.subvols.len(), 1, "archive subvolume kept");
    assert_eq!(m.qgroups.values().copied().collect::<Vec<_>>(), vec![None]);
    drop(m);
    f.driver.create("v", o).unwrap();
    assert_eq!(f.status("v")["archive_quota_limit_bytes"], json!(30 << 20));
    assert!(f.driver.archive_dir("v").join("keep").is_file());
    f.driver.remove("v").unwrap();
    // A kept archive that is a plain directory cannot take a size.
    let k = VolumeOptions {
        keep_archive: true,
        ..VolumeOptions::default()
    };
    f.driver.create("p", k).unwrap();
    f.driver.remove("p").unwrap();
    let err = quota_err(f.driver.create("p", sized(None, Some("30M"))).unwrap_err());
    assert!(matches!(err, QuotaError::NotQuotaDir { .. }), "{err}");
    assert!(f.driver.archive_dir("p").is_dir(), "kept archive untouched");
}

#[test]
fn project_quotas_get_distinct_ids_and_are_cleared_on_remove() {
    let f = project();
    f.driver
        .create("v", sized(Some("20M"), Some("30M")))
        .unwrap();
    let calls = f.q.take_calls();
    let first = PROJECT_ID_FIRST;
    let inherit = |id| ProjectAttr {
        project_id: id,
        inherit: true,
    };
    assert_eq!(
        calls,
        vec![
            QCall::ProjectSet(f.driver.archive_dir("v"), inherit(first)),
            QCall::ProjectQuotaSet(first, 30 << 20),
            QCall::ProjectSet(calls_data_path(&calls), inherit(first + 1)),
            QCall::ProjectQuotaSet(first + 1, 20 << 20),
        ]
    );
    // `data` is created in the staging dir, then renamed: the project
    // follows the inode.
    assert_eq!(
        f.q.project_get(&f.driver.data_dir("v")).unwrap(),
        inherit(first + 1)
    );
    f.q.model()
        .projects
        .get_mut(&(first + 1))
        .unwrap()
        .used_bytes = 12345;
    let st = f.status("v");
    assert_eq!(st["primary_quota"], json!("project"));
    assert_eq!(st["primary_quota_limit_bytes"], json!(20 << 20));
    assert_eq!(st["primary_quota_used_bytes"], json!(12345));
    assert_eq!(st["archive_quota_limit_bytes"], json!(30 << 20));
    // A second volume gets the next free ID.
    f.driver.create("w", sized(Some("1M"), None)).unwrap();
    assert!(f
        .q
        .take_calls()
        .contains(&QCall::ProjectQuotaSet(first + 2, 1 << 20)));
    // Remove clears the limits; with the files gone the IDs are free.
    f.q.model()
        .projects
        .get_mut(&(first + 1))
        .unwrap()
        .used_bytes = 0;
    f.driver.remove("v").unwrap();
    let calls = f.q.take_calls();
    assert!(
        calls.contains(&QCall::ProjectQuotaSet(first, 0)),
        "{calls:?}"
    );
    assert!(
        calls.contains(&QCall::ProjectQuotaSet(first + 1, 0)),
        "{calls:?}"
    );
    assert!(f.q.model().projects[&first] == ProjectQuota::default());
    f.driver.create("u", sized(Some("2M"), None)).unwrap();
    assert!(f
        .q
        .take_calls()
        .contains(&QCall::ProjectQuotaSet(first, 2 << 20)));
}

fn calls_data_path(calls: &[QCall]) -> PathBuf {
    calls
        .iter()
        .find_map(|c| match c {
            QCall::ProjectSet(p, _) if p.ends_with("data") => Some(p.clone()),
            _ => None,
        })
        .expect("a project set on data")
}

#[test]
fn project_quotas_off_is_refused_unless_best_effort() {
    let f = fixture(EXT4_SUPER_MAGIC, EXT4_SUPER_MAGIC, |_| {});
    let err = quota_err(f.driver.create("v", sized(Some("20M"), None)).unwrap_err());
    assert!(matches!(err, QuotaError::Unsupported { .. }), "{err}");
    let o = VolumeOptions {
        quota_best_effort: true,
        ..sized(Some("20M"), None)
    };
    f.driver.create("v", o).unwrap();
    assert_eq!(f.status("v")["primary_quota"], json!("none"));
    assert!(f.q.take_calls().is_empty());
    f.driver.remove("v").unwrap();
}

#[test]
fn a_kept_archive_subvolume_without_a_qgroup_gets_one() {
    let f = btrfs();
    // A subvolume made while quotas were off has no qgroup.
    f.q.model().btrfs_quota_on = false;
    f.q.btrfs_subvol_create(&f.driver.archive_dir("v")).unwrap();
    f.q.model().btrfs_quota_on = true;
    f.q.take_calls();
    f.driver.create("v", sized(None, Some("30M"))).unwrap();
    let calls = f.q.take_calls();
    assert!(
        matches!(&calls[..], [QCall::QgroupCreate(a), QCall::QgroupLimit(b, Some(31_457_280))] if a == b),
        "{calls:?}"
    );
    assert_eq!(f.status("v")["archive_quota_limit_bytes"], json!(30 << 20));
}

#[test]
fn a_subvolume_of_an_interrupted_creation_is_deleted_at_start() {
    let mut f = btrfs();
    // A crash inside Create: the staged volume dir holds a new subvolume.
    let staged = f.tiers.primary_root.join(".tiered/tmp/v.crash");
    std::fs::create_dir(&staged).unwrap();
    f.q.btrfs_subvol_create(&staged.join("data")).unwrap();
    let id = f.q.btrfs_subvol_id(&staged.join("data")).unwrap().unwrap();
    f.q.btrfs_qgroup_limit(&staged, id, Some(1 << 20)).unwrap();
    assert_eq!(f.q.model().qgroups.len(), 1);
    f.reopen();
    assert!(!staged.exists());
    assert!(f.q.model().subvols.is_empty());
    assert!(f.q.model().qgroups.is_empty());
}
