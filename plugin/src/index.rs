//! The volume index, kept where one missing disk cannot erase it: a copy
//! on each verified tier (`ROOT/.tiered/index.json`) and in the plugin's
//! state dir, beside each volume's own record (`PRIMARY/NAME/volume.json`)
//! and the identity file in its archive dir (`ARCHIVE/NAME/.tiered-volume`).
//!
//! ```text
//! index.json (at most INDEX_MAX_BYTES):
//!   {"version":1,"volumes":[{"name":"v","uuid":"<uuid>","created_at":"…",
//!                            "options":{…}}, …]}
//! .tiered-volume:
//!   {"version":1,"name":"v","uuid":"<uuid>"}
//! ```
//!
//! While the primary tier is verified, the records beside the data are the
//! truth and every index copy is rewritten from them; while it is not, the
//! index (from the archive tier, else the state dir) answers `List` and
//! `Get` so the daemon never takes the name for a `local` volume.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::mounts::Syscalls;
use crate::state::{self, StateError, VolumeMeta};
use crate::tiers::STATE_DIR;
use crate::volume::VolumeOptions;

/// The index file name (in a tier's state dir, or the plugin's).
pub const INDEX_FILE: &str = "index.json";
/// The identity file in a volume's archive dir.
pub const VOLUME_ID_FILE: &str = ".tiered-volume";
/// Format version of both files.
pub const INDEX_VERSION: u32 = 1;
/// Largest index read, in bytes.
pub const INDEX_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// One volume in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub name: String,
    pub uuid: Option<String>,
    pub created_at: String,
    pub options: VolumeOptions,
}

/// The index: every volume, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    pub volumes: Vec<IndexEntry>,
}

impl Index {
    /// The index of these volumes, sorted by name.
    pub fn of<'a>(metas: impl IntoIterator<Item = &'a VolumeMeta>) -> Index {
        let mut volumes: Vec<IndexEntry> = metas
            .into_iter()
            .map(|m| IndexEntry {
                name: m.name.clone(),
                uuid: m.uuid.clone(),
                created_at: m.created_at.clone(),
                options: m.options.clone(),
            })
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Index {
            version: INDEX_VERSION,
            volumes,
        }
    }

    /// The volumes as metadata without mount references (what is known
    /// while the primary tier is away).
    pub fn metas(&self) -> Vec<VolumeMeta> {
        self.volumes
            .iter()
            .filter(|e| crate::volume::validate_name(&e.name).is_ok())
            .map(|e| VolumeMeta {
                version: state::META_VERSION,
                name: e.name.clone(),
                created_at: e.created_at.clone(),
                options: e.options.clone(),
                mounts: Default::default(),
                uuid: e.uuid.clone(),
                mount_lifetimes: Default::default(),
                quota: Default::default(),
            })
            .collect()
    }
}

/// `ROOT/.tiered` for a tier root.
pub fn tier_index_dir(root: &Path) -> PathBuf {
    root.join(STATE_DIR)
}

/// Reads `dir/index.json`; `None` if absent.
pub fn read_index(dir: &Path) -> Result<Option<Index>, StateError> {
    let path = dir.join(INDEX_FILE);
    let bytes = match state::read_bounded(&path, INDEX_MAX_BYTES) {
        Ok(b) => b,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if index.version != INDEX_VERSION {
        return Err(StateError::Damaged {
            path,
            reason: format!("unsupported version {}", index.version),
        });
    }
    Ok(Some(index))
}

/// Writes `dir/index.json` atomically (creating `dir`), unless it already
/// holds exactly this index.
pub fn write_index(sys: &dyn Syscalls, dir: &Path, index: &Index) -> Result<(), StateError> {
    if matches!(read_index(dir), Ok(Some(old)) if old == *index) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
        op: "create",
        path: dir.to_owned(),
        source,
    })?;
    let mut bytes = serde_json::to_vec(index).expect("index serialises");
    bytes.push(b'\n');
    state::write_atomic(sys, dir, INDEX_FILE, &bytes)
}

/// Who owns an archive dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeId {
    pub version: u32,
    pub name: String,
    pub uuid: String,
}

/// Reads `dir/.tiered-volume`: `Ok(None)` if absent, `Err` if unreadable
/// or damaged.
pub fn read_volume_id(dir: &Path) -> Result<Option<VolumeId>, StateError> {
    let path = dir.join(VOLUME_ID_FILE);
    let bytes = match state::read_bounded(&path, 4096) {
        Ok(b) => b,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<VolumeId>(&bytes) {
        Ok(id) if id.version == INDEX_VERSION && state::validate_uuid(&id.uuid).is_ok() => {
            Ok(Some(id))
        }
        Ok(_) => Err(StateError::Damaged {
            path,
            reason: "bad version or uuid".into(),
        }),
        Err(e) => Err(StateError::Damaged {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Records in archive dir `dir` that it belongs to volume `name`, `uuid`.
pub fn write_volume_id(
    sys: &dyn Syscalls,
    dir: &Path,
    name: &str,
    uuid: &str,
) -> Result<(), StateError> {
    let id = VolumeId {
        version: INDEX_VERSION,
        name: name.to_owned(),
        uuid: uuid.to_owned(),
    };
    let mut bytes = serde_json::to_vec(&id).expect("volume id serialises");
    bytes.push(b'\n');
    state::write_atomic(sys, dir, VOLUME_ID_FILE, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::NixSyscalls;

    #[test]
    fn index_round_trip_and_damage() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(".tiered");
        assert_eq!(read_index(&dir).unwrap(), None);
        let metas = vec![
            VolumeMeta::new("b", VolumeOptions::default()),
            VolumeMeta::new("a", VolumeOptions::default()),
        ];
        let index = Index::of(&metas);
        write_index(&NixSyscalls, &dir, &index).unwrap();
        let back = read_index(&dir).unwrap().unwrap();
        assert_eq!(back, index);
        assert_eq!(back.volumes[0].name, "a");
        assert_eq!(back.metas()[1].uuid, metas[0].uuid);
        std::fs::write(dir.join(INDEX_FILE), b"[").unwrap();
        assert!(matches!(read_index(&dir), Err(StateError::Damaged { .. })));
    }

    #[test]
    fn volume_id_round_trip() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_volume_id(d.path()).unwrap(), None);
        let uuid = state::new_uuid();
        write_volume_id(&NixSyscalls, d.path(), "v", &uuid).unwrap();
        assert_eq!(read_volume_id(d.path()).unwrap().unwrap().uuid, uuid);
        std::fs::write(d.path().join(VOLUME_ID_FILE), b"{}").unwrap();
        assert!(matches!(
            read_volume_id(d.path()),
            Err(StateError::Damaged { .. })
        ));
    }
}
