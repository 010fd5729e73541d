//! The faults of issue 11, on the driver with the recording fake syscalls:
//! a tier whose disk is not mounted (missing), another disk (foreign), the
//! volume index surviving a missing disk, archive dirs of another
//! incarnation, mount references left by a crashed daemon, busy unmounts,
//! failing file-system calls, and mount points that are not UTF-8.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use tiered_plugin::driver::{Driver, DriverError, OpenOptions, Tiers};
use tiered_plugin::index;
use tiered_plugin::mounts::fake::{Call, FileOp, RecordingSyscalls};
use tiered_plugin::state::StateError;
use tiered_plugin::tiers::{Role, TierState, MARKER_FILE};
use tiered_plugin::volume::VolumeOptions;

struct Env {
    dir: tempfile::TempDir,
    tiers: Tiers,
    sys: Arc<RecordingSyscalls>,
    opts: OpenOptions,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let tiers = Tiers {
        primary_root: root.join("primary"),
        archive_root: root.join("archive"),
        mount_root: root.join("mnt"),
        archive_dir_name: "archived".into(),
    };
    Env {
        dir,
        tiers,
        sys: Arc::new(RecordingSyscalls::default()),
        opts: OpenOptions {
            busy_retry_interval: Duration::from_millis(1),
            ..OpenOptions::default()
        },
    }
}

impl Env {
    fn open(&self) -> Driver {
        Driver::open_with(self.tiers.clone(), self.sys.clone(), self.opts.clone()).unwrap()
    }

    fn root(&self, role: Role) -> &Path {
        match role {
            Role::Primary => &self.tiers.primary_root,
            Role::Archive => &self.tiers.archive_root,
        }
    }

    /// The tier's disk is not mounted: its directory is an empty one on
    /// the parent file system. Returns where the "disk" went.
    fn unplug(&self, role: Role) -> PathBuf {
        let root = self.root(role);
        let away = (0..)
            .map(|n| self.dir.path().join(format!("{}-disk-{n}", role.label())))
            .find(|p| !p.exists())
            .unwrap();
        std::fs::rename(root, &away).unwrap();
        std::fs::create_dir(root).unwrap();
        away
    }

    /// The disk is mounted again.
    fn plug(&self, role: Role, disk: &Path) {
        let root = self.root(role);
        std::fs::remove_dir(root).expect("nothing was written on the unplugged tier");
        std::fs::rename(disk, root).unwrap();
    }

    fn archive(&self, name: &str) -> PathBuf {
        self.tiers.archive_root.join(name)
    }
}

fn opts(f: impl FnOnce(&mut VolumeOptions)) -> VolumeOptions {
    let mut o = VolumeOptions::default();
    f(&mut o);
    o
}

fn is_empty(p: &Path) -> bool {
    std::fs::read_dir(p).unwrap().next().is_none()
}

fn assert_tier_refused(r: Result<impl std::fmt::Debug, DriverError>, want_role: Role) {
    match r {
        Err(DriverError::TierUnavailable { role, .. }) => assert_eq!(role, want_role),
        other => panic!("expected TierUnavailable({want_role}), got {other:?}"),
    }
}

#[test]
fn first_run_writes_both_markers() {
    let e = env();
    let d = e.open();
    for role in Role::BOTH {
        assert!(e.root(role).join(MARKER_FILE).is_file());
        assert_eq!(d.identity().check(role), TierState::Ok);
    }
    assert_eq!(d.counts().tier_states, ["ok", "ok"]);
}

#[test]
fn missing_primary_keeps_the_volumes_listed_and_refuses_changes() {
    let e = env();
    let d = e.open();
    d.create("v", opts(|o| o.mode = Some(0o750))).unwrap();
    d.mount("v", "a").unwrap();
    d.unmount("v", "a").unwrap();
    drop(d);
    let disk = e.unplug(Role::Primary);
    let d = e.open();
    assert_eq!(d.identity().check(Role::Primary), TierState::Missing);
    // Known from the index on the archive tier: the daemon never falls
    // back to a `local` volume of that name.
    let names: Vec<_> = d.list().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["v"]);
    let st = d.get("v").unwrap().status.unwrap();
    assert_eq!(st["primary_tier"], "missing");
    assert_eq!(st["archive_tier"], "ok");
    assert_eq!(st["mode"], "0750");
    assert_tier_refused(d.create("v", opts(|o| o.mode = Some(0o750))), Role::Primary);
    assert_tier_refused(d.create("new", VolumeOptions::default()), Role::Primary);
    assert_tier_refused(d.mount("v", "b"), Role::Primary);
    assert_tier_refused(d.remove("v"), Role::Primary);
    assert_eq!(d.counts().tier_states, ["missing", "ok"]);
    assert!(e.archive("v").is_dir(), "archive untouched");
    assert!(!e.archive("new").exists());
    assert!(e.sys.mounted().is_empty());
    drop(d);
    assert!(
        is_empty(&e.tiers.primary_root),
        "nothing written on the missing tier"
    );
    e.plug(Role::Primary, &disk);
    let d = e.open();
    d.mount("v", "b").unwrap();
    d.unmount("v", "b").unwrap();
    d.remove("v").unwrap();
    assert!(!e.archive("v").exists());
}

#[test]
fn missing_archive_refuses_mounts_and_writes_nothing_there() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    std::fs::write(e.archive("v").join("cold"), b"c").unwrap();
    drop(d);
    let disk = e.unplug(Role::Archive);
    let d = e.open();
    assert_eq!(d.list().len(), 1);
    assert_eq!(
        d.get("v").unwrap().status.unwrap()["archive_tier"],
        "missing"
    );
    assert_tier_refused(d.mount("v", "a"), Role::Archive);
    assert_tier_refused(d.create("w", VolumeOptions::default()), Role::Archive);
    assert_tier_refused(d.remove("v"), Role::Archive);
    assert!(e.sys.calls().is_empty(), "nothing mounted");
    match d.mount("v", "a") {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("archive tier at") && msg.contains("marker missing"),
                "{msg}"
            );
        }
        Ok(p) => panic!("mounted at {p:?}"),
    }
    drop(d);
    assert!(is_empty(&e.tiers.archive_root));
    e.plug(Role::Archive, &disk);
    let d = e.open();
    d.mount("v", "a").unwrap();
    assert_eq!(std::fs::read(e.archive("v").join("cold")).unwrap(), b"c");
}

#[test]
fn a_disk_lost_while_running_is_refused_at_the_next_change() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    // The archive disk goes away under the running plugin.
    let disk = e.unplug(Role::Archive);
    assert_tier_refused(d.mount("v", "a"), Role::Archive);
    assert_tier_refused(d.remove("v"), Role::Archive);
    assert_eq!(d.list().len(), 1);
    assert_eq!(d.counts().tier_states, ["ok", "missing"]);
    // Back, with the same marker: usable again without a restart.
    e.plug(Role::Archive, &disk);
    d.mount("v", "a").unwrap();
    // The primary disk goes away: the volume is not forgotten.
    let _p = e.unplug(Role::Primary);
    assert_eq!(d.list().len(), 1);
    assert!(d.get("v").is_ok());
}

#[test]
fn a_foreign_disk_is_refused() {
    let e = env();
    let other = env();
    e.open().create("v", VolumeOptions::default()).unwrap();
    other.open();
    // Another plugin's archive disk mounted at this archive root.
    let _disk = e.unplug(Role::Archive);
    std::fs::remove_dir(&e.tiers.archive_root).unwrap();
    std::fs::rename(&other.tiers.archive_root, &e.tiers.archive_root).unwrap();
    let mut init = e.opts.clone();
    init.identity.init = true;
    let d = Driver::open_with(e.tiers.clone(), e.sys.clone(), init).unwrap();
    assert!(matches!(
        d.identity().check(Role::Archive),
        TierState::Foreign { .. }
    ));
    match d.mount("v", "a") {
        Err(DriverError::TierUnavailable {
            role: Role::Archive,
            state: TierState::Foreign { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(d.counts().tier_states, ["ok", "foreign"]);
}

#[test]
fn a_new_archive_disk_is_initialised_only_when_asked() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    drop(d);
    let _old = e.unplug(Role::Archive);
    // Without the setting: missing, even though the directory is empty.
    let d = e.open();
    assert_eq!(d.identity().check(Role::Archive), TierState::Missing);
    drop(d);
    assert!(is_empty(&e.tiers.archive_root));
    let mut init = e.opts.clone();
    init.identity.init = true;
    let d = Driver::open_with(e.tiers.clone(), e.sys.clone(), init.clone()).unwrap();
    assert_eq!(d.identity().check(Role::Archive), TierState::Ok);
    // The volume's archive dir is made again on the new disk.
    let mp = d.mount("v", "a").unwrap();
    assert!(e.archive("v").is_dir());
    assert!(e.sys.mounted().contains(&mp.join("archived")));
    d.unmount("v", "a").unwrap();
    drop(d);
    // That new disk fails to mount later, the setting left on: not
    // initialised again.
    let _new = e.unplug(Role::Archive);
    let d = Driver::open_with(e.tiers.clone(), e.sys.clone(), init).unwrap();
    assert_eq!(d.identity().check(Role::Archive), TierState::Missing);
    drop(d);
    assert!(is_empty(&e.tiers.archive_root));
}

#[test]
fn both_disks_missing_is_not_a_first_run_with_a_state_dir() {
    let mut e = env();
    e.opts.identity.state_dir = Some(e.dir.path().join("plugin-state"));
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    drop(d);
    let _p = e.unplug(Role::Primary);
    let _a = e.unplug(Role::Archive);
    let d = e.open();
    assert_eq!(d.counts().tier_states, ["missing", "missing"]);
    // The plugin's own copy of the index still answers.
    assert_eq!(d.list().len(), 1);
    assert_tier_refused(d.create("w", VolumeOptions::default()), Role::Primary);
    drop(d);
    assert!(is_empty(&e.tiers.primary_root) && is_empty(&e.tiers.archive_root));
}

#[test]
fn the_index_follows_creates_and_removes_on_both_tiers() {
    let e = env();
    let d = e.open();
    d.create("a", VolumeOptions::default()).unwrap();
    d.create("b", opts(|o| o.archive_of = Some("a".into())))
        .unwrap();
    for role in Role::BOTH {
        let ix = index::read_index(&index::tier_index_dir(e.root(role)))
            .unwrap()
            .unwrap();
        let names: Vec<_> = ix.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "{role}");
    }
    d.remove("b").unwrap();
    let ix = index::read_index(&index::tier_index_dir(&e.tiers.archive_root))
        .unwrap()
        .unwrap();
    assert_eq!(ix.volumes.len(), 1);
    let uuid = d.get("a").unwrap().status.unwrap()["uuid"].clone();
    assert_eq!(Some(uuid.as_str().unwrap()), ix.volumes[0].uuid.as_deref());
    let owner = index::read_volume_id(&e.archive("a")).unwrap().unwrap();
    assert_eq!(owner.uuid, uuid.as_str().unwrap());
}

#[test]
fn remove_never_deletes_the_archive_of_another_incarnation() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    std::fs::write(e.archive("v").join("data"), b"precious").unwrap();
    // The archive dir now says it belongs to another incarnation.
    index::write_volume_id(
        &tiered_plugin::NixSyscalls,
        &e.archive("v"),
        "v",
        &tiered_plugin::state::new_uuid(),
    )
    .unwrap();
    assert!(matches!(
        d.mount("v", "a"),
        Err(DriverError::ArchiveOwned { .. })
    ));
    assert!(e.sys.mounted().is_empty());
    d.remove("v").unwrap();
    assert_eq!(
        std::fs::read(e.archive("v").join("data")).unwrap(),
        b"precious"
    );
}

#[test]
fn an_archive_dir_of_a_live_volume_is_not_reattached() {
    let e = env();
    let d = e.open();
    d.create("a", VolumeOptions::default()).unwrap();
    // A copy of a's archive dir (with its owner record) under another name.
    std::fs::create_dir(e.archive("b")).unwrap();
    std::fs::copy(
        e.archive("a").join(index::VOLUME_ID_FILE),
        e.archive("b").join(index::VOLUME_ID_FILE),
    )
    .unwrap();
    assert!(matches!(
        d.create("b", VolumeOptions::default()),
        Err(DriverError::ArchiveOwned { .. })
    ));
    assert!(e.archive("b").join(index::VOLUME_ID_FILE).is_file());
}

#[test]
fn a_kept_archive_is_adopted_by_the_next_incarnation() {
    let e = env();
    let d = e.open();
    d.create("v", opts(|o| o.keep_archive = true)).unwrap();
    std::fs::write(e.archive("v").join("snap"), b"s").unwrap();
    d.remove("v").unwrap();
    assert!(e.archive("v").join("snap").is_file());
    d.create("v", VolumeOptions::default()).unwrap();
    let uuid = d.get("v").unwrap().status.unwrap()["uuid"].clone();
    let owner = index::read_volume_id(&e.archive("v")).unwrap().unwrap();
    assert_eq!(owner.uuid, uuid.as_str().unwrap());
    d.remove("v").unwrap();
    assert!(!e.archive("v").exists());
}

#[test]
fn daemon_crash_without_restart_policy_remove_succeeds() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    d.mount("v", "c1").unwrap();
    // kill -9 of the daemon: the plugin is restarted (a new lifetime), the
    // mounts stay, no Unmount comes.
    drop(d);
    let d = e.open();
    assert_eq!(d.counts().active_mounts, 1);
    assert_eq!(
        e.sys.mounted().len(),
        2,
        "held mount recognised, not doubled"
    );
    d.remove("v").unwrap();
    assert!(e.sys.mounted().is_empty(), "no leaked mount");
    assert_eq!(d.counts().stale_references_dropped, 1);
    assert!(!e.tiers.primary_root.join("v").exists());
}

#[test]
fn daemon_crash_with_restart_policy_drops_the_old_ids() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    d.mount("v", "c1").unwrap();
    drop(d);
    let d = e.open();
    // The daemon starts the container again: a fresh ID.
    d.mount("v", "c2").unwrap();
    assert_eq!(d.counts().active_mounts, 1);
    assert_eq!(d.counts().stale_references_dropped, 1);
    assert!(matches!(
        d.unmount("v", "c1"),
        Err(DriverError::UnknownId { .. })
    ));
    // docker rm -f: its Unmount takes everything down.
    d.unmount("v", "c2").unwrap();
    assert!(e.sys.mounted().is_empty());
    d.remove("v").unwrap();
}

#[test]
fn daemon_crash_with_restart_policy_same_id_counts_once() {
    // What dockerd 20.10 really does: the restarted container mounts with
    // the ID it had before the crash.
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    d.mount("v", "c1").unwrap();
    drop(d);
    let d = e.open();
    d.mount("v", "c1").unwrap();
    assert_eq!(
        d.counts().active_mounts,
        1,
        "the dead container's count dropped"
    );
    assert_eq!(d.counts().stale_references_dropped, 1);
    assert!(matches!(
        d.remove("v"),
        Err(DriverError::InUse { mounts: 1, .. })
    ));
    d.unmount("v", "c1").unwrap();
    assert!(e.sys.mounted().is_empty(), "no leaked mount");
    d.remove("v").unwrap();
}

#[test]
fn references_of_this_lifetime_still_refuse_remove() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    d.mount("v", "c1").unwrap();
    d.mount("v", "c1").unwrap();
    assert!(matches!(
        d.remove("v"),
        Err(DriverError::InUse { mounts: 2, .. })
    ));
    // A plugin-only restart (disable -f, enable): the container's Unmount
    // still arrives and is honoured.
    drop(d);
    let d = e.open();
    d.unmount("v", "c1").unwrap();
    assert_eq!(d.counts().active_mounts, 1);
    d.unmount("v", "c1").unwrap();
    assert!(e.sys.mounted().is_empty());
    d.remove("v").unwrap();
}

#[test]
fn remove_after_a_crash_detaches_a_busy_mount() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    let mp = d.mount("v", "c1").unwrap();
    drop(d);
    let d = e.open();
    e.sys.take_calls();
    *e.sys.fail_unmount_on.lock().unwrap() = Some("archived".into());
    d.remove("v").unwrap();
    assert_eq!(
        e.sys.take_calls(),
        vec![Call::Detach(mp.join("archived")), Call::Unmount(mp)]
    );
    assert_eq!(d.counts().lazy_unmounts, 1);
    assert!(e.sys.mounted().is_empty());
}

#[test]
fn busy_unmount_drops_the_reference_and_the_volume_stays_removable() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    d.mount("v", "c1").unwrap();
    *e.sys.fail_unmount_on.lock().unwrap() = Some("v".into());
    d.unmount("v", "c1").unwrap();
    assert_eq!(d.counts().active_mounts, 0);
    assert_eq!(d.counts().lazy_unmounts, 1);
    d.remove("v").unwrap();
}

#[test]
fn failed_fsync_or_chown_on_create_leaves_no_volume() {
    let e = env();
    let d = e.open();
    e.sys.fail_file(FileOp::FsyncDir, "data", Errno::EIO, 1);
    match d.create("v", VolumeOptions::default()) {
        Err(DriverError::State {
            source: StateError::Io {
                op: "fsync dir", ..
            },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(d.list().is_empty());
    assert!(!e.tiers.primary_root.join("v").exists());
    assert!(!e.archive("v").exists(), "new archive dir taken back");
    e.sys.fail_file(FileOp::Chown, "w", Errno::EPERM, 1);
    match d.create("w", opts(|o| o.uid = Some(1234))) {
        Err(DriverError::Io {
            op: "set owner/mode of",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!e.archive("w").exists());
    d.create("w", opts(|o| o.uid = Some(1234))).unwrap();
    assert!(e.sys.file_calls_of(FileOp::Chown).len() >= 3);
}

#[test]
fn failed_rename_into_place_removes_the_staged_volume() {
    let e = env();
    let d = e.open();
    e.sys.fail_file(FileOp::Rename, "v", Errno::EIO, 1);
    match d.create("v", VolumeOptions::default()) {
        Err(DriverError::State {
            source:
                StateError::Io {
                    op: "rename into place",
                    ..
                },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.sys.file_calls_of(FileOp::RemoveDirAll).len(),
        1,
        "staged tree removed"
    );
    let tmp = e.tiers.primary_root.join(".tiered/tmp");
    assert!(is_empty(&tmp));
    d.create("v", VolumeOptions::default()).unwrap();
}

#[test]
fn failed_delete_is_finished_at_the_next_start() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    e.sys.fail_file(FileOp::RemoveDirAll, "v", Errno::EIO, 1);
    d.remove("v").unwrap();
    assert!(d.list().is_empty(), "the volume is gone at once");
    assert!(e.archive("v").exists(), "its archive not deleted yet");
    drop(d);
    e.open();
    assert!(!e.archive("v").exists());
    assert!(is_empty(&e.tiers.primary_root.join(".tiered/trash")));
}

fn non_utf8(base: &Path, name: &[u8]) -> PathBuf {
    base.join(OsString::from_vec(name.to_vec()))
}

#[test]
fn non_utf8_mount_points_are_compared_as_bytes() {
    let e = env();
    let d = e.open();
    d.create("v", VolumeOptions::default()).unwrap();
    // A stray mount whose path is not UTF-8 elsewhere on the host, and
    // one inside the volume's archive dir.
    e.sys
        .table
        .lock()
        .unwrap()
        .push(non_utf8(Path::new("/srv"), b"disk-\xff"));
    let mp = d.mount("v", "a").unwrap();
    d.unmount("v", "a").unwrap();
    assert!(!e.sys.mounted().contains(&mp));
    let inside = non_utf8(&e.archive("v"), b"nested-\xfe\xff");
    e.sys.table.lock().unwrap().push(inside.clone());
    match d.remove("v") {
        Err(DriverError::StillMounted { path, .. }) => assert_eq!(path, inside),
        other => panic!("{other:?}"),
    }
    assert!(e.archive("v").is_dir(), "never deleted across a mount");
    e.sys.table.lock().unwrap().retain(|p| p != &inside);
    d.remove("v").unwrap();
}
