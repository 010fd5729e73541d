//! Volume metadata kept on the primary tier, so it survives restarts of the
//! plugin, of the daemon, and `docker plugin rm`.
//!
//! ```text
//! PRIMARY/
//!   .tiered/tmp/            volumes being created (published by rename)
//!   .tiered/trash/          removed volumes awaiting deletion
//!   .tiered/boot_id         kernel boot id of the last start
//!   .tiered/tiers.json      the pair of tier identities (see `tiers`)
//!   .tiered/index.json      index of every volume (see `index`)
//!   .tiered-tier            this tier's identity marker
//!   NAME/volume.json        metadata: options, creation time, mount refs
//!   NAME/data/              the volume root (bind-mounted at MOUNT_ROOT/NAME)
//!   NAME/data/archived/     where ARCHIVE/NAME is bind-mounted
//! ARCHIVE/
//!   .tiered/tiers.json      copy of the pair of tier identities
//!   .tiered/index.json      copy of the volume index
//!   .tiered-tier            this tier's identity marker
//!   NAME/                   the archive tier of volume NAME
//!   NAME/.tiered-volume     the UUID of the volume that owns NAME/
//! ```
//!
//! `volume.json` (at most [`META_MAX_BYTES`]):
//!
//! ```text
//! {"version":1,"name":"v","created_at":"2026-01-01T00:00:00Z",
//!  "options":{"uid":null,"gid":null,"mode":null,"archive_of":null,"keep_archive":false},
//!  "mounts":{"<mount id>":<count>},
//!  "uuid":"<volume uuid>",
//!  "mount_lifetimes":{"<mount id>":"<plugin lifetime uuid>"}}
//! ```
//!
//! `uuid` and `mount_lifetimes` were added without a version change: a
//! file without them is read (the uuid is assigned at the next start, a
//! mount ID without a lifetime belongs to an earlier lifetime).
//! A volume with a size adds `"size_bytes"`/`"archive_size_bytes"`/
//! `"quota_best_effort"` to its options and a `"quota"` object (see
//! [`crate::quota::QuotaRecord`]); volumes without keep the format above.
//!
//! Every write is atomic: a temp file in the same directory, fsync, rename,
//! fsync of the directory. A volume appears by renaming a fully built
//! directory from `.tiered/tmp/` and disappears by renaming it into
//! `.tiered/trash/`, so a crash leaves either the whole volume or none.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::mounts::{self, Syscalls};
use crate::volume::{self, VolumeOptions};

/// Largest `volume.json` read, in bytes.
pub const META_MAX_BYTES: u64 = 1024 * 1024;
/// Most distinct mount IDs one volume holds at once.
pub const MOUNT_IDS_MAX: usize = 1024;
/// Format version of `volume.json`.
pub const META_VERSION: u32 = 1;

const STATE_DIR: &str = ".tiered";
const META_FILE: &str = "volume.json";
const DATA_DIR: &str = "data";
const BOOT_FILE: &str = "boot_id";

/// A state-store failure, with the path it was about.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("damaged metadata {path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("refusing to delete {path}: a mount point lies at or under it")]
    Mounted { path: PathBuf },
    #[error("{path} already exists")]
    Exists { path: PathBuf },
    #[error(transparent)]
    MountTable(#[from] mounts::MountError),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io { op, path, source }
}

/// The metadata of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    pub version: u32,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    pub options: VolumeOptions,
    /// Mount references: how many times each ID mounted the volume.
    pub mounts: BTreeMap<String, u32>,
    /// The identity of this incarnation of the volume (also recorded in
    /// its archive dir and in the index on both tiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The plugin lifetime (one per start of the plugin process) in which
    /// each mount ID was last mounted; an ID missing here is from an
    /// earlier lifetime.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mount_lifetimes: BTreeMap<String, String>,
    /// How each tier's size is enforced (absent without `size`s).
    #[serde(default, skip_serializing_if = "crate::quota::QuotaRecord::is_empty")]
    pub quota: crate::quota::QuotaRecord,
}

impl VolumeMeta {
    /// A new, unmounted volume created now.
    pub fn new(name: &str, options: VolumeOptions) -> Self {
        let created_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
        VolumeMeta {
            version: META_VERSION,
            name: name.to_owned(),
            created_at,
            options,
            mounts: BTreeMap::new(),
            uuid: Some(new_uuid()),
            mount_lifetimes: BTreeMap::new(),
            quota: Default::default(),
        }
    }

    /// The mount IDs not taken in plugin lifetime `current`.
    pub fn ids_of_earlier_lifetimes(&self, current: &str) -> Vec<String> {
        self.mounts
            .keys()
            .filter(|id| self.mount_lifetimes.get(*id).map(String::as_str) != Some(current))
            .cloned()
            .collect()
    }

    /// Total mount references over all IDs.
    pub fn active_mounts(&self) -> u64 {
        self.mounts.values().map(|c| u64::from(*c)).sum()
    }

    /// Decodes and checks a `volume.json` read from `path`, stored in the
    /// directory for volume `dir_name`.
    pub fn decode(bytes: &[u8], path: &Path, dir_name: &str) -> Result<Self, StateError> {
        let damaged = |reason: String| StateError::Damaged {
            path: path.to_owned(),
            reason,
        };
        let meta: VolumeMeta = serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
        if meta.version != META_VERSION {
            return Err(damaged(format!("unsupported version {}", meta.version)));
        }
        if meta.name != dir_name {
            return Err(damaged(format!(
                "names volume {:?} but lives in {dir_name:?}",
                meta.name
            )));
        }
        volume::validate_name(&meta.name).map_err(|e| damaged(e.to_string()))?;
        time::OffsetDateTime::parse(
            &meta.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| damaged(format!("created_at: {e}")))?;
        if meta.mounts.len() > MOUNT_IDS_MAX {
            return Err(damaged(format!("{} mount ids", meta.mounts.len())));
        }
        for (id, count) in &meta.mounts {
            volume::validate_id(id).map_err(|e| damaged(e.to_string()))?;
            if *count == 0 {
                return Err(damaged(format!("mount id {id:?} with count 0")));
            }
        }
        if let Some(id) = meta
            .mount_lifetimes
            .keys()
            .find(|id| !meta.mounts.contains_key(*id))
        {
            return Err(damaged(format!("lifetime of unknown mount id {id:?}")));
        }
        if let Some(uuid) = &meta.uuid {
            validate_uuid(uuid).map_err(damaged)?;
        }
        Ok(meta)
    }
}

/// Reads and writes volume metadata under the primary root.
#[derive(Clone)]
pub struct StateStore {
    primary: PathBuf,
    sys: std::sync::Arc<dyn Syscalls>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("primary", &self.primary)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// The store under `primary`; touches nothing (the tier may not be
    /// verified yet).
    pub fn new(primary: &Path, sys: std::sync::Arc<dyn Syscalls>) -> Self {
        StateStore {
            primary: primary.to_owned(),
            sys,
        }
    }

    /// Opens the store under `primary` (which must exist), creating its
    /// state directories.
    pub fn open(primary: &Path, sys: std::sync::Arc<dyn Syscalls>) -> Result<Self, StateError> {
        let store = Self::new(primary, sys);
        store.ensure_dirs()?;
        Ok(store)
    }

    /// Creates the state directories (only on a verified tier).
    pub fn ensure_dirs(&self) -> Result<(), StateError> {
        for dir in [self.tmp_dir(), self.trash_dir()] {
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        }
        Ok(())
    }

    /// The system calls the store goes through.
    pub fn sys(&self) -> &dyn Syscalls {
        &*self.sys
    }

    fn tmp_dir(&self) -> PathBuf {
        self.primary.join(STATE_DIR).join("tmp")
    }

    fn trash_dir(&self) -> PathBuf {
        self.primary.join(STATE_DIR).join("trash")
    }

    /// `PRIMARY/NAME`.
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.primary.join(name)
    }

    /// `PRIMARY/NAME/data`: the volume root.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join(DATA_DIR)
    }

    /// Names of the directories under the primary root that are valid
    /// volume names (state directories start with a dot and are skipped).
    pub fn volume_names(&self) -> Result<Vec<String>, StateError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.primary).map_err(io("read dir", &self.primary))? {
            let entry = entry.map_err(io("read dir", &self.primary))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if volume::validate_name(&name).is_ok() && entry.path().is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether `PRIMARY/NAME` exists at all.
    pub fn exists(&self, name: &str) -> bool {
        self.volume_dir(name).symlink_metadata().is_ok()
    }

    /// The boot id recorded by the last start (`.tiered/boot_id`), if any.
    pub fn recorded_boot_id(&self) -> Result<Option<String>, StateError> {
        let path = self.primary.join(STATE_DIR).join(BOOT_FILE);
        match read_bounded(&path, 128) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_owned())),
            Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Records the boot id of this start, atomically.
    pub fn record_boot_id(&self, boot_id: &str) -> Result<(), StateError> {
        write_atomic(
            &*self.sys,
            &self.primary.join(STATE_DIR),
            BOOT_FILE,
            format!("{boot_id}\n").as_bytes(),
        )
    }

    /// Whether `PRIMARY/NAME/volume.json` exists (else the directory is
    /// not a tiered volume).
    pub fn has_meta(&self, name: &str) -> bool {
        self.volume_dir(name)
            .join(META_FILE)
            .symlink_metadata()
            .is_ok()
    }

    /// Reads the metadata of volume `name`.
    pub fn load(&self, name: &str) -> Result<VolumeMeta, StateError> {
        let path = self.volume_dir(name).join(META_FILE);
        let bytes = read_bounded(&path, META_MAX_BYTES)?;
        VolumeMeta::decode(&bytes, &path, name)
    }

    /// Replaces the metadata of an existing volume atomically.
    pub fn save(&self, meta: &VolumeMeta) -> Result<(), StateError> {
        write_atomic(
            &*self.sys,
            &self.volume_dir(&meta.name),
            META_FILE,
            &encode(meta),
        )
    }

    /// Creates volume `meta.name`: builds its directory in `.tiered/tmp`
    /// (the metadata, and whatever `prepare` adds given the new volume
    /// directory), then renames it into place. Fails with
    /// [`StateError::Exists`] if `PRIMARY/NAME` exists.
    pub fn publish(
        &self,
        meta: &VolumeMeta,
        prepare: impl FnOnce(&Path) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let target = self.volume_dir(&meta.name);
        let staging = tempfile::Builder::new()
            .prefix(&format!("{}.", meta.name))
            .tempdir_in(self.tmp_dir())
            .map_err(io("create temp dir in", &self.tmp_dir()))?;
        prepare(staging.path())?;
        write_atomic(&*self.sys, staging.path(), META_FILE, &encode(meta))?;
        let staged = staging.keep();
        if let Err(e) = self.sys.rename_noreplace(&staged, &target) {
            // The staged tree is ours and holds no mounts.
            if let Err(e2) = self.sys.remove_dir_all(&staged) {
                tracing::warn!(path = %staged.display(), error = %e2, "cannot remove staged volume; removed at next start");
            }
            if e.raw_os_error() == Some(nix::errno::Errno::EEXIST as i32) {
                return Err(StateError::Exists { path: target });
            }
            return Err(StateError::Io {
                op: "rename into place",
                path: target,
                source: e,
            });
        }
        fsync_dir(&*self.sys, &self.primary)?;
        fsync_dir(&*self.sys, &self.tmp_dir())
    }

    /// Moves `PRIMARY/NAME` into the trash atomically; the volume is gone
    /// once this returns. Returns the trash path to [`Self::purge`].
    pub fn move_to_trash(&self, name: &str) -> Result<PathBuf, StateError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let from = self.volume_dir(name);
        let to = self.trash_dir().join(format!("{name}.{nanos}"));
        std::fs::rename(&from, &to).map_err(io("move to trash", &from))?;
        fsync_dir(&*self.sys, &self.primary)?;
        fsync_dir(&*self.sys, &self.trash_dir())?;
        Ok(to)
    }

    /// Entries left in the trash and in tmp (by a crash), oldest first.
    pub fn leftovers(&self) -> Result<(Vec<PathBuf>, Vec<PathBuf>), StateError> {
        let list = |dir: PathBuf| -> Result<Vec<PathBuf>, StateError> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&dir).map_err(io("read dir", &dir))? {
                out.push(e.map_err(io("read dir", &dir))?.path());
            }
            out.sort();
            Ok(out)
        };
        Ok((list(self.trash_dir())?, list(self.tmp_dir())?))
    }

    /// The volume name and options recorded in a trash entry, if readable.
    pub fn trash_meta(&self, entry: &Path) -> Option<VolumeMeta> {
        let file_name = entry.file_name()?.to_str()?;
        let name = file_name.rsplit_once('.')?.0;
        let path = entry.join(META_FILE);
        let bytes = read_bounded(&path, META_MAX_BYTES).ok()?;
        VolumeMeta::decode(&bytes, &path, name).ok()
    }
}

/// Deletes the tree at `path` unless a mount point lies at or under it
/// (checked in `points`, the current mount table, comparing exact bytes):
/// a recursive delete must never cross into another file system or tier.
/// Missing is fine.
pub fn remove_tree(sys: &dyn Syscalls, path: &Path, points: &[PathBuf]) -> Result<(), StateError> {
    if let Some(p) = mounts::mount_at_or_under(points, path) {
        return Err(StateError::Mounted { path: p.clone() });
    }
    match sys.remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("remove", path)(e)),
    }
    match path.parent() {
        Some(parent) => fsync_dir(sys, parent),
        None => Ok(()),
    }
}

/// A fresh random (version 4) UUID from 16 bytes of `/dev/urandom`.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("reading /dev/urandom");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Checks the textual form of a UUID: 36 characters, hex digits and
/// dashes at 8-4-4-4-12.
pub fn validate_uuid(s: &str) -> Result<(), String> {
    let ok = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if ok {
        Ok(())
    } else {
        Err(format!("invalid uuid {s:?}"))
    }
}

fn encode(meta: &VolumeMeta) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(meta).expect("volume metadata serialises");
    bytes.push(b'\n');
    bytes
}

pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, StateError> {
    let file = File::open(path).map_err(io("open", path))?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io("read", path))?;
    if bytes.len() as u64 > max_bytes {
        return Err(StateError::Damaged {
            path: path.to_owned(),
            reason: format!("larger than {max_bytes} bytes"),
        });
    }
    Ok(bytes)
}

/// Publishes `dir/name` with `bytes`: temp file in `dir`, write, fsync,
/// rename over `name`, fsync `dir`.
pub fn write_atomic(
    sys: &dyn Syscalls,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), StateError> {
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .map_err(io("create temp file in", dir))?;
    tmp.write_all(bytes).map_err(io("write", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io("fsync", tmp.path()))?;
    tmp.persist(&target)
        .map_err(|e| io("rename into place", &target)(e.error))?;
    fsync_dir(sys, dir)
}

/// fsync of a directory, making renames and creations in it durable.
pub fn fsync_dir(sys: &dyn Syscalls, dir: &Path) -> Result<(), StateError> {
    sys.fsync_dir(dir).map_err(io("fsync dir", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), std::sync::Arc::new(mounts::NixSyscalls)).unwrap();
        (dir, store)
    }

    #[test]
    fn publish_load_save_round_trip() {
        let (_dir, store) = store();
        let mut meta = VolumeMeta::new("v1", VolumeOptions::default());
        store
            .publish(&meta, |d| {
                std::fs::create_dir(d.join("data")).map_err(io("mkdir", d))
            })
            .unwrap();
        assert!(store.data_dir("v1").is_dir());
        assert_eq!(store.load("v1").unwrap(), meta);
        meta.mounts.insert("abc".into(), 2);
        store.save(&meta).unwrap();
        assert_eq!(store.load("v1").unwrap(), meta);
        assert_eq!(store.load("v1").unwrap().active_mounts(), 2);
        assert_eq!(store.volume_names().unwrap(), vec!["v1".to_string()]);
        // No temp files left beside the metadata or in tmp.
        let names: Vec<_> = std::fs::read_dir(store.volume_dir("v1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(store.leftovers().unwrap(), (vec![], vec![]));
    }

    #[test]
    fn publish_refuses_an_existing_directory_and_changes_nothing() {
        let (_dir, store) = store();
        std::fs::create_dir(store.volume_dir("v1")).unwrap();
        std::fs::write(store.volume_dir("v1").join("keep"), b"x").unwrap();
        let err = store
            .publish(&VolumeMeta::new("v1", VolumeOptions::default()), |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, StateError::Exists { .. }), "{err}");
        assert_eq!(
            std::fs::read(store.volume_dir("v1").join("keep")).unwrap(),
            b"x"
        );
        assert_eq!(store.leftovers().unwrap(), (vec![], vec![]));
    }

    #[test]
    fn damaged_metadata_is_reported_with_its_path() {
        let (_dir, store) = store();
        let meta = VolumeMeta::new("v1", VolumeOptions::default());
        store.publish(&meta, |_| Ok(())).unwrap();
        let path = store.volume_dir("v1").join(META_FILE);
        for bad in [
            &b"{not json"[..],
            br#"{"version":2,"name":"v1","created_at":"2024-01-01T00:00:00Z","options":{"uid":null,"gid":null,"mode":null,"archive_of":null,"keep_archive":false},"mounts":{}}"#,
            br#"{"version":1,"name":"v2","created_at":"2024-01-01T00:00:00Z","options":{"uid":null,"gid":null,"mode":null,"archive_of":null,"keep_archive":false},"mounts":{}}"#,
            br#"{"version":1,"name":"v1","created_at":"yesterday","options":{"uid":null,"gid":null,"mode":null,"archive_of":null,"keep_archive":false},"mounts":{}}"#,
            br#"{"version":1,"name":"v1","created_at":"2024-01-01T00:00:00Z","options":{"uid":null,"gid":null,"mode":null,"archive_of":null,"keep_archive":false},"mounts":{"a":0}}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = store.load("v1").unwrap_err();
            assert!(
                matches!(&err, StateError::Damaged { path: p, .. } if p == &path),
                "{err}"
            );
        }
        std::fs::write(&path, vec![b' '; META_MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(store.load("v1"), Err(StateError::Damaged { .. })));
    }

    #[test]
    fn trash_keeps_the_metadata_and_removes_whole() {
        let (_dir, store) = store();
        let meta = VolumeMeta::new(
            "v.1",
            VolumeOptions {
                keep_archive: true,
                ..Default::default()
            },
        );
        store.publish(&meta, |_| Ok(())).unwrap();
        let t = store.move_to_trash("v.1").unwrap();
        assert!(!store.exists("v.1"));
        assert_eq!(store.trash_meta(&t).unwrap(), meta);
        assert_eq!(store.leftovers().unwrap().0, vec![t.clone()]);
        remove_tree(&mounts::NixSyscalls, &t, &[]).unwrap();
        assert_eq!(store.leftovers().unwrap(), (vec![], vec![]));
    }

    #[test]
    fn remove_tree_refuses_across_a_mount() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let err = remove_tree(
            &mounts::NixSyscalls,
            &dir.path().join("a"),
            std::slice::from_ref(&sub),
        )
        .unwrap_err();
        assert!(matches!(err, StateError::Mounted { .. }), "{err}");
        assert!(sub.is_dir());
        remove_tree(
            &mounts::NixSyscalls,
            &dir.path().join("a"),
            &[dir.path().join("ab")],
        )
        .unwrap();
        assert!(!dir.path().join("a").exists());
        remove_tree(&mounts::NixSyscalls, &dir.path().join("a"), &[]).unwrap();
    }

    #[test]
    fn state_dirs_are_not_volumes() {
        let (_dir, store) = store();
        assert_eq!(store.volume_names().unwrap(), Vec::<String>::new());
    }
}
