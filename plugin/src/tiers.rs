//! Tier identity: which disk is which, so data never lands on the wrong
//! one (an empty directory under a disk that failed to mount looks like a
//! fresh tier).
//!
//! # Layout
//!
//! ```text
//! ROOT/.tiered-tier          {"version":1,"uuid":"<tier uuid>","role":"primary"|"archive"}
//! ROOT/.tiered/tiers.json    {"version":1,"generation":3,
//!                             "primary":"<uuid>"|null,"archive":"<uuid>"|null,
//!                             "init_used":false}
//! STATE_DIR/tiers.json       the same record, in the plugin's own state dir (if set)
//! ```
//!
//! The marker (at most [`MARKER_MAX_BYTES`]) is written when a tier is
//! initialised and never changes; the record holds the pair of identities
//! this plugin expects and is kept on every verified tier (and in the
//! plugin's state dir); the copy with the highest `generation` wins. All
//! writes are atomic (temp file, fsync, rename, fsync of the directory);
//! markers are written before the records that name them.
//!
//! # Decisions at start
//!
//! A tier is `ok` when its marker is there with the recorded UUID and its
//! role, `missing` when there is no marker, `foreign` when the marker is
//! another one (or unreadable). A tier that is not `ok` is never written
//! to or deleted from. A missing tier is initialised (a new marker) only:
//! - on the first run: no record anywhere, no marker, both tiers empty;
//! - when an earlier version's primary (a `.tiered` state dir, no marker)
//!   is adopted: the archive too if it holds anything or no volume needs
//!   it yet (else at a later start, once it holds something: its identity
//!   was never recorded);
//! - to finish an initialisation a crash interrupted (a marker but no
//!   record anywhere, the other tier empty);
//! - with `TIERED_TIER_INIT=true`, once: the record remembers it was used
//!   (`init_used`) until a start without it, so a setting left on does not
//!   initialise the next disk that fails to mount.
//!
//! A foreign tier is never initialised: its marker is removed by hand.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::mounts::Syscalls;
use crate::state::{self, StateError};

/// The marker file at each tier root.
pub const MARKER_FILE: &str = ".tiered-tier";
/// The plugin's state directory at each tier root.
pub const STATE_DIR: &str = ".tiered";
/// The record of the pair of identities (in [`STATE_DIR`]).
pub const RECORD_FILE: &str = "tiers.json";
/// Format version of the marker and the record.
pub const TIER_FORMAT_VERSION: u32 = 1;
/// Largest marker or record read, in bytes.
pub const MARKER_MAX_BYTES: u64 = 4096;

/// Which tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Archive,
}

impl Role {
    pub const BOTH: [Role; 2] = [Role::Primary, Role::Archive];

    /// `primary` or `archive`.
    pub fn label(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Archive => "archive",
        }
    }

    fn index(self) -> usize {
        match self {
            Role::Primary => 0,
            Role::Archive => 1,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What was found at a tier root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierState {
    /// The marker this plugin expects.
    Ok,
    /// No marker: the disk is probably not mounted.
    Missing,
    /// Another marker, or one that cannot be read.
    Foreign { found: String },
}

impl TierState {
    /// `ok`, `missing` or `foreign` (metrics, `Status`).
    pub fn label(&self) -> &'static str {
        match self {
            TierState::Ok => "ok",
            TierState::Missing => "missing",
            TierState::Foreign { .. } => "foreign",
        }
    }

    pub const LABELS: [&'static str; 3] = ["ok", "missing", "foreign"];

    /// Why the tier is refused, for error messages.
    pub fn reason(&self) -> String {
        match self {
            TierState::Ok => "marker present".into(),
            TierState::Missing => "marker missing".into(),
            TierState::Foreign { found } => format!("foreign marker: {found}"),
        }
    }
}

/// The identity marker at a tier root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub version: u32,
    pub uuid: String,
    pub role: Role,
}

/// The pair of identities this plugin expects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub generation: u64,
    pub primary: Option<String>,
    pub archive: Option<String>,
    /// `TIERED_TIER_INIT=true` initialised a tier and has not been seen
    /// off since.
    #[serde(default)]
    pub init_used: bool,
}

impl Record {
    fn uuid(&self, role: Role) -> Option<&str> {
        match role {
            Role::Primary => self.primary.as_deref(),
            Role::Archive => self.archive.as_deref(),
        }
    }

    fn set_uuid(&mut self, role: Role, uuid: String) {
        match role {
            Role::Primary => self.primary = Some(uuid),
            Role::Archive => self.archive = Some(uuid),
        }
    }
}

/// A failure to read or write identity files.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("{role} tier: {source}")]
    State { role: Role, source: StateError },
    #[error("plugin state dir: {0}")]
    Local(StateError),
}

/// What reading a marker gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerRead {
    Absent,
    Present(Marker),
    Unreadable(String),
}

/// Reads the marker at `root`.
pub fn read_marker(root: &Path) -> MarkerRead {
    let path = root.join(MARKER_FILE);
    match state::read_bounded(&path, MARKER_MAX_BYTES) {
        Ok(bytes) => match serde_json::from_slice::<Marker>(&bytes) {
            Ok(m) if m.version == TIER_FORMAT_VERSION && state::validate_uuid(&m.uuid).is_ok() => {
                MarkerRead::Present(m)
            }
            Ok(m) => MarkerRead::Unreadable(format!(
                "{} has version {} / uuid {:?}",
                path.display(),
                m.version,
                m.uuid
            )),
            Err(e) => MarkerRead::Unreadable(format!("{}: {e}", path.display())),
        },
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            MarkerRead::Absent
        }
        Err(e) => MarkerRead::Unreadable(e.to_string()),
    }
}

fn read_record(dir: &Path) -> Option<Record> {
    let path = dir.join(RECORD_FILE);
    let bytes = match state::read_bounded(&path, MARKER_MAX_BYTES) {
        Ok(b) => b,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "tier record unreadable; ignored");
            return None;
        }
    };
    match serde_json::from_slice::<Record>(&bytes) {
        Ok(r)
            if r.version == TIER_FORMAT_VERSION
                && r.primary
                    .iter()
                    .chain(&r.archive)
                    .all(|u| state::validate_uuid(u).is_ok()) =>
        {
            Some(r)
        }
        Ok(_) | Err(_) => {
            tracing::warn!(path = %path.display(), "tier record damaged; ignored");
            None
        }
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).expect("identity serialises");
    b.push(b'\n');
    b
}

/// Whether a tier root holds nothing (but a file system's `lost+found`).
/// Unreadable counts as not empty.
pub fn is_empty(root: &Path) -> bool {
    match std::fs::read_dir(root) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .all(|e| e.file_name() == "lost+found"),
        Err(_) => false,
    }
}

/// The state of a tier from its marker and the expected UUID.
pub fn state_of(role: Role, read: &MarkerRead, expected: Option<&str>) -> TierState {
    match read {
        MarkerRead::Absent => TierState::Missing,
        MarkerRead::Unreadable(e) => TierState::Foreign {
            found: format!("unreadable ({e})"),
        },
        MarkerRead::Present(m) if m.role != role => TierState::Foreign {
            found: format!("the marker of a {} tier ({})", m.role, m.uuid),
        },
        MarkerRead::Present(m) => match expected {
            Some(u) if u == m.uuid => TierState::Ok,
            Some(u) => TierState::Foreign {
                found: format!("{}, expected {u}", m.uuid),
            },
            None => TierState::Foreign {
                found: format!("{}, not the one recorded", m.uuid),
            },
        },
    }
}

/// Settings of the identity check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityOptions {
    /// `TIERED_TIER_INIT`: initialise tiers without a marker (once).
    pub init: bool,
    /// A directory of the plugin itself (outside the tiers) keeping a copy
    /// of the record, so that two empty tiers are not taken for a first run.
    pub state_dir: Option<PathBuf>,
    /// Where the tiers come from on the host, for messages.
    pub primary_source: Option<PathBuf>,
    pub archive_source: Option<PathBuf>,
}

/// The identities of both tiers: fixed at start, checked before every
/// change.
#[derive(Debug)]
pub struct Identity {
    roots: [PathBuf; 2],
    sources: [Option<PathBuf>; 2],
    record: Record,
    at_open: [TierState; 2],
    last: Mutex<[TierState; 2]>,
    state_dir: Option<PathBuf>,
}

impl Identity {
    /// Reads the markers and records, initialises what may be (see the
    /// module docs) and persists the record.
    pub fn establish(
        sys: &dyn Syscalls,
        primary_root: &Path,
        archive_root: &Path,
        opts: &IdentityOptions,
    ) -> Result<Identity, TierError> {
        let roots = [primary_root.to_owned(), archive_root.to_owned()];
        let reads = [read_marker(&roots[0]), read_marker(&roots[1])];
        // (record, where from, priority): on the primary tier first, then
        // the plugin's state dir, then the archive tier.
        let mut sources: Vec<(Option<Record>, &'static str, u8)> = Vec::new();
        for (i, read) in reads.iter().enumerate() {
            if matches!(read, MarkerRead::Present(_)) {
                let prio = if i == 0 { 2 } else { 0 };
                sources.push((
                    read_record(&roots[i].join(STATE_DIR)),
                    Role::BOTH[i].label(),
                    prio,
                ));
            }
        }
        if let Some(dir) = &opts.state_dir {
            sources.push((read_record(dir), "plugin state dir", 1));
        }
        // The record confirmed by most markers wins (a tier of another
        // plugin brings its own record), then the newest, then by source.
        let confirmed = |r: &Record| {
            Role::BOTH
                .iter()
                .filter(|role| {
                    matches!(&reads[role.index()], MarkerRead::Present(m) if Some(m.uuid.as_str()) == r.uuid(**role))
                })
                .count()
        };
        let found = sources
            .into_iter()
            .filter_map(|(r, from, prio)| r.map(|r| (r, from, prio)))
            .max_by_key(|(r, _, prio)| (confirmed(r), r.generation, *prio))
            .map(|(r, from, _)| (r, from));
        let had_record = found.is_some();
        let mut record = match found {
            Some((r, from)) => {
                tracing::info!(from, generation = r.generation, primary = ?r.primary, archive = ?r.archive, "tier identities recorded");
                r
            }
            None => {
                let mut r = Record {
                    version: TIER_FORMAT_VERSION,
                    ..Record::default()
                };
                for (i, read) in reads.iter().enumerate() {
                    if let MarkerRead::Present(m) = read {
                        if m.role == Role::BOTH[i] {
                            r.set_uuid(m.role, m.uuid.clone());
                        }
                    }
                }
                r
            }
        };
        let mut states = [
            state_of(Role::Primary, &reads[0], record.uuid(Role::Primary)),
            state_of(Role::Archive, &reads[1], record.uuid(Role::Archive)),
        ];
        let before = record.clone();

        // Which missing tiers to initialise.
        let missing: Vec<Role> = Role::BOTH
            .into_iter()
            .filter(|r| states[r.index()] == TierState::Missing)
            .collect();
        let mut init: Vec<Role> = Vec::new();
        let both_absent = missing.len() == 2;
        if !had_record && both_absent && is_empty(&roots[0]) && is_empty(&roots[1]) {
            tracing::info!("first run: both tiers empty and no record anywhere; initialising both");
            init = missing.clone();
        } else if !had_record && both_absent && !opts.init && roots[0].join(STATE_DIR).is_dir() {
            let volumes = has_volume_dirs(&roots[0]);
            init.push(Role::Primary);
            if !is_empty(&roots[1]) || !volumes {
                init.push(Role::Archive);
            } else {
                tracing::warn!(archive = %roots[1].display(), "adopting the primary tier of an earlier version; the archive tier is empty while volumes exist: left uninitialised (is the disk mounted? set TIERED_TIER_INIT=true if it is really new)");
            }
            tracing::info!(tiers = ?init, "adopting tiers written by an earlier version (no markers yet)");
        } else if !had_record && missing.len() == 1 && is_empty(&roots[missing[0].index()]) {
            tracing::info!(tier = %missing[0], "finishing an interrupted first initialisation");
            init = missing.clone();
        } else if had_record
            && missing.len() == 1
            && record.uuid(missing[0]).is_none()
            && !is_empty(&roots[missing[0].index()])
        {
            // An earlier version's tier left out of the adoption because it
            // was empty then (its disk not mounted); it holds data now.
            tracing::info!(tier = %missing[0], "adopting a tier of an earlier version that was not there at the first start");
            init = missing.clone();
        } else if opts.init && !missing.is_empty() {
            if record.init_used {
                tracing::warn!(tiers = ?missing, "TIERED_TIER_INIT=true was already used at an earlier start; not initialising again. Start once with it unset (false), then set it again to initialise another tier");
            } else {
                tracing::warn!(tiers = ?missing, "TIERED_TIER_INIT=true: initialising the tiers without a marker");
                init = missing.clone();
                record.init_used = true;
            }
        }
        if !opts.init && record.init_used {
            tracing::info!(
                "TIERED_TIER_INIT is off again: a later TIERED_TIER_INIT=true will initialise"
            );
            record.init_used = false;
        }
        // Markers first: a record never names a marker that is not there.
        for role in &init {
            let root = &roots[role.index()];
            let marker = Marker {
                version: TIER_FORMAT_VERSION,
                uuid: state::new_uuid(),
                role: *role,
            };
            state::write_atomic(sys, root, MARKER_FILE, &encode(&marker)).map_err(|source| {
                TierError::State {
                    role: *role,
                    source,
                }
            })?;
            tracing::info!(tier = %role, root = %root.display(), uuid = %marker.uuid, "tier initialised");
            record.set_uuid(*role, marker.uuid);
            states[role.index()] = TierState::Ok;
        }
        for role in Role::BOTH {
            let s = &states[role.index()];
            if *s != TierState::Ok {
                tracing::warn!(tier = %role, root = %roots[role.index()].display(), state = s.label(), reason = %s.reason(), "tier not verified: no change will be made to it");
            }
        }
        let id = Identity {
            roots,
            sources: [opts.primary_source.clone(), opts.archive_source.clone()],
            record,
            at_open: states.clone(),
            last: Mutex::new(states),
            state_dir: opts.state_dir.clone(),
        };
        if id.record.primary.is_none() && id.record.archive.is_none() {
            // Nothing known: no record, so a later first run stays possible.
            return Ok(id);
        }
        if id.record != before || !had_record {
            let mut r = id.record.clone();
            r.generation = before.generation + 1;
            id.persist_record(sys, &r)?;
            return Ok(Identity { record: r, ..id });
        }
        // Copies on verified tiers that are older or absent are refreshed.
        id.persist_record(sys, &id.record)?;
        Ok(id)
    }

    fn persist_record(&self, sys: &dyn Syscalls, r: &Record) -> Result<(), TierError> {
        let bytes = encode(r);
        for role in Role::BOTH {
            if self.at_open[role.index()] != TierState::Ok {
                continue;
            }
            let dir = self.roots[role.index()].join(STATE_DIR);
            if read_record(&dir).as_ref() == Some(r) {
                continue;
            }
            std::fs::create_dir_all(&dir)
                .map_err(|source| StateError::Io {
                    op: "create",
                    path: dir.clone(),
                    source,
                })
                .and_then(|()| state::write_atomic(sys, &dir, RECORD_FILE, &bytes))
                .map_err(|source| TierError::State { role, source })?;
        }
        if let Some(dir) = &self.state_dir {
            if read_record(dir).as_ref() != Some(r) {
                let res = std::fs::create_dir_all(dir)
                    .map_err(|source| StateError::Io {
                        op: "create",
                        path: dir.clone(),
                        source,
                    })
                    .and_then(|()| state::write_atomic(sys, dir, RECORD_FILE, &bytes));
                if let Err(e) = res {
                    // The tiers hold the record; the local copy only guards
                    // against two empty tiers looking like a first run.
                    tracing::warn!(error = %e, "cannot keep a copy of the tier record in the plugin's state dir");
                }
            }
        }
        Ok(())
    }

    /// The plugin's own state dir, if any.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// The recorded UUID of a tier.
    pub fn uuid(&self, role: Role) -> Option<&str> {
        self.record.uuid(role)
    }

    /// Whether the tier was verified at start (what was loaded from it is
    /// usable).
    pub fn ok_at_open(&self, role: Role) -> bool {
        self.at_open[role.index()] == TierState::Ok
    }

    /// Reads the marker again: a tier not verified at start stays refused
    /// until the next start (its data was not loaded).
    pub fn check(&self, role: Role) -> TierState {
        let i = role.index();
        let s = if self.at_open[i] != TierState::Ok {
            self.at_open[i].clone()
        } else {
            state_of(role, &read_marker(&self.roots[i]), self.record.uuid(role))
        };
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last[i] != s {
            tracing::warn!(tier = %role, from = last[i].label(), to = s.label(), reason = %s.reason(), "tier state changed");
            last[i] = s.clone();
        }
        s
    }

    /// The states seen by the last checks (for metrics and `Status`).
    pub fn last_states(&self) -> [TierState; 2] {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The tier root inside the plugin.
    pub fn root(&self, role: Role) -> &Path {
        &self.roots[role.index()]
    }

    /// How the tier is named in messages: its host source if known.
    pub fn describe(&self, role: Role) -> PathBuf {
        let i = role.index();
        self.sources[i]
            .clone()
            .unwrap_or_else(|| self.roots[i].clone())
    }
}

/// Whether the primary root holds volume directories.
fn has_volume_dirs(primary: &Path) -> bool {
    std::fs::read_dir(primary)
        .map(|rd| {
            rd.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| crate::volume::validate_name(n).is_ok())
                    && e.path().join("volume.json").exists()
            })
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::NixSyscalls;

    fn roots() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let (p, a) = (d.path().join("p"), d.path().join("a"));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::create_dir_all(&a).unwrap();
        (d, p, a)
    }

    #[test]
    fn first_run_initialises_both_then_verifies() {
        let (_d, p, a) = roots();
        let o = IdentityOptions::default();
        let id = Identity::establish(&NixSyscalls, &p, &a, &o).unwrap();
        assert!(id.ok_at_open(Role::Primary) && id.ok_at_open(Role::Archive));
        let (pu, au) = (
            id.uuid(Role::Primary).unwrap().to_owned(),
            id.uuid(Role::Archive).unwrap().to_owned(),
        );
        assert_ne!(pu, au);
        let again = Identity::establish(&NixSyscalls, &p, &a, &o).unwrap();
        assert_eq!(again.uuid(Role::Primary), Some(pu.as_str()));
        assert_eq!(again.check(Role::Archive), TierState::Ok);
    }

    #[test]
    fn an_emptied_tier_is_missing_and_not_initialised() {
        let (_d, p, a) = roots();
        let o = IdentityOptions::default();
        Identity::establish(&NixSyscalls, &p, &a, &o).unwrap();
        // The archive disk is not mounted: its directory is empty.
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::create_dir(&a).unwrap();
        let id = Identity::establish(&NixSyscalls, &p, &a, &o).unwrap();
        assert_eq!(id.check(Role::Archive), TierState::Missing);
        assert!(
            std::fs::read_dir(&a).unwrap().next().is_none(),
            "nothing written"
        );
        // Both emptied, with the plugin's own copy of the record: still
        // not a first run.
        let state = _d.path().join("state");
        let o = IdentityOptions {
            state_dir: Some(state.clone()),
            ..Default::default()
        };
        let (_d2, p2, a2) = roots();
        Identity::establish(&NixSyscalls, &p2, &a2, &o).unwrap();
        for r in [&p2, &a2] {
            std::fs::remove_dir_all(r).unwrap();
            std::fs::create_dir(r).unwrap();
        }
        let id = Identity::establish(&NixSyscalls, &p2, &a2, &o).unwrap();
        assert_eq!(id.check(Role::Primary), TierState::Missing);
        assert_eq!(id.check(Role::Archive), TierState::Missing);
    }

    #[test]
    fn init_setting_is_used_once() {
        let (_d, p, a) = roots();
        Identity::establish(&NixSyscalls, &p, &a, &IdentityOptions::default()).unwrap();
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::create_dir(&a).unwrap();
        let init = IdentityOptions {
            init: true,
            ..Default::default()
        };
        let id = Identity::establish(&NixSyscalls, &p, &a, &init).unwrap();
        assert_eq!(id.check(Role::Archive), TierState::Ok);
        // The new disk fails to mount later, the setting still on: refused.
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::create_dir(&a).unwrap();
        let id = Identity::establish(&NixSyscalls, &p, &a, &init).unwrap();
        assert_eq!(id.check(Role::Archive), TierState::Missing);
        // One start without it re-arms it.
        Identity::establish(&NixSyscalls, &p, &a, &IdentityOptions::default()).unwrap();
        let id = Identity::establish(&NixSyscalls, &p, &a, &init).unwrap();
        assert_eq!(id.check(Role::Archive), TierState::Ok);
    }

    #[test]
    fn foreign_and_swapped_markers() {
        let (_d, p, a) = roots();
        let (_d2, p2, a2) = roots();
        let o = IdentityOptions::default();
        Identity::establish(&NixSyscalls, &p, &a, &o).unwrap();
        Identity::establish(&NixSyscalls, &p2, &a2, &o).unwrap();
        // Another plugin's archive disk mounted here.
        std::fs::copy(a2.join(MARKER_FILE), a.join(MARKER_FILE)).unwrap();
        let id = Identity::establish(&NixSyscalls, &p, &a, &o).unwrap();
        assert!(matches!(id.check(Role::Archive), TierState::Foreign { .. }));
        assert_eq!(id.check(Role::Primary), TierState::Ok);
        // The two disks swapped: both foreign (roles differ).
        let (_d3, p3, a3) = roots();
        Identity::establish(&NixSyscalls, &p3, &a3, &o).unwrap();
        let pm = std::fs::read(p3.join(MARKER_FILE)).unwrap();
        let am = std::fs::read(a3.join(MARKER_FILE)).unwrap();
        std::fs::write(p3.join(MARKER_FILE), am).unwrap();
        std::fs::write(a3.join(MARKER_FILE), pm).unwrap();
        let init = IdentityOptions {
            init: true,
            ..Default::default()
        };
        let id = Identity::establish(&NixSyscalls, &p3, &a3, &init).unwrap();
        assert!(matches!(id.check(Role::Primary), TierState::Foreign { .. }));
        assert!(matches!(id.check(Role::Archive), TierState::Foreign { .. }));
        // Garbage is foreign too, and the init setting never overwrites it.
        std::fs::write(a.join(MARKER_FILE), b"{").unwrap();
        let id = Identity::establish(&NixSyscalls, &p, &a, &init).unwrap();
        assert!(matches!(id.check(Role::Archive), TierState::Foreign { .. }));
        assert_eq!(std::fs::read(a.join(MARKER_FILE)).unwrap(), b"{");
    }

    #[test]
    fn a_marker_lost_at_runtime_is_seen_by_the_next_check() {
        let (_d, p, a) = roots();
        let id = Identity::establish(&NixSyscalls, &p, &a, &IdentityOptions::default()).unwrap();
        std::fs::remove_file(p.join(MARKER_FILE)).unwrap();
        assert_eq!(id.check(Role::Primary), TierState::Missing);
        assert_eq!(id.last_states()[0], TierState::Missing);
    }

    #[test]
    fn legacy_primary_is_adopted_but_an_empty_archive_is_not() {
        let (_d, p, a) = roots();
        std::fs::create_dir_all(p.join(".tiered/tmp")).unwrap();
        std::fs::create_dir_all(p.join("v/data")).unwrap();
        std::fs::write(p.join("v/volume.json"), b"{}").unwrap();
        let id = Identity::establish(&NixSyscalls, &p, &a, &IdentityOptions::default()).unwrap();
        assert_eq!(id.check(Role::Primary), TierState::Ok);
        assert_eq!(id.check(Role::Archive), TierState::Missing);
        // With its data there, the archive is adopted too.
        let (_d2, p2, a2) = roots();
        std::fs::create_dir_all(p2.join(".tiered/tmp")).unwrap();
        std::fs::create_dir_all(p2.join("v/data")).unwrap();
        std::fs::write(p2.join("v/volume.json"), b"{}").unwrap();
        std::fs::create_dir_all(a2.join("v")).unwrap();
        let id = Identity::establish(&NixSyscalls, &p2, &a2, &IdentityOptions::default()).unwrap();
        assert_eq!(id.check(Role::Archive), TierState::Ok);
        // The first one's archive disk is mounted later, with its data.
        std::fs::create_dir_all(a.join("v")).unwrap();
        let id = Identity::establish(&NixSyscalls, &p, &a, &IdentityOptions::default()).unwrap();
        assert_eq!(id.check(Role::Archive), TierState::Ok);
    }
}
