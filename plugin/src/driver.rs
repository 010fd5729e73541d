//! The volume driver: tiers, mounts with reference counts, and per-volume
//! serialisation. Every method blocks (file system and mount calls); the
//! server calls them from `spawn_blocking`.
//!
//! Locking: one mutex per volume name serialises everything that changes a
//! volume; different volumes never wait on each other. The in-memory cache
//! of metadata (read by `List`/`Get` without touching the disk) is updated
//! only after the metadata is durable. `links` serialises the checks that
//! tie an `archive-of` volume to its target.
//!
//! Safety rules (issue 11, see docs/plugin.md):
//! - Create, Mount and Remove first check both tiers' identity markers
//!   ([`crate::tiers`]); nothing is written to or deleted from a tier that
//!   is not verified. `List`/`Get` keep answering from the last known
//!   state (the index, [`crate::index`]).
//! - Mount references are stamped with the plugin lifetime (one per start
//!   of the plugin process) they were taken in. References of an earlier
//!   lifetime are dropped by a `Remove` (the daemon removes only a volume
//!   no container uses), and by a `Mount` of a new ID (after a daemon
//!   restart the daemon mounts with fresh IDs; the old ones are gone).
//! - An unmount that stays busy (EBUSY) is retried briefly, then detached
//!   lazily (`MNT_DETACH`); the reference is dropped either way.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::index::{self, Index};
use crate::mounts::{self, FsUsage, MountError, Syscalls};
use crate::protocol::VolumeInfo;
use crate::quota::{self, Quota, QuotaError, QuotaSys, Quotas, Tier, TierQuota};
use crate::state::{self, StateError, StateStore, VolumeMeta, MOUNT_IDS_MAX};
use crate::tiers::{Identity, IdentityOptions, Role, TierError, TierState};
use crate::volume::VolumeOptions;

/// Where the tiers and mountpoints live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    pub primary_root: PathBuf,
    pub archive_root: PathBuf,
    pub mount_root: PathBuf,
    /// Name of the sub-directory of a volume where the archive tier appears.
    pub archive_dir_name: String,
}

/// A driver failure; the message names the volume and path.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("volume {0:?} not found")]
    NotFound(String),
    #[error("volume {name:?} is unusable: {reason}")]
    Damaged { name: String, reason: String },
    #[error("volume {0:?} already exists with different options")]
    Exists(String),
    #[error("{path} exists on the primary tier but is not a tiered volume")]
    NotTiered { path: PathBuf },
    #[error("volume {name:?} is in use ({mounts} active mounts)")]
    InUse { name: String, mounts: u64 },
    #[error("volume {name:?} is still mounted at {path}")]
    StillMounted { name: String, path: PathBuf },
    #[error("volume {name:?} has no mount with id {id:?}")]
    UnknownId { name: String, id: String },
    #[error("volume {0:?} has too many mounts")]
    TooManyMounts(String),
    #[error("archive-of: volume {other:?} does not exist (needed by {name:?})")]
    ArchiveOfMissing { name: String, other: String },
    #[error("archive-of: volume {other:?} is itself an archive-of volume")]
    ArchiveOfChain { other: String },
    #[error("volume {name:?} is the archive of volume {by:?}; remove that first")]
    Referenced { name: String, by: String },
    #[error("volume {name:?}: {op} {path}: {source}")]
    Io {
        name: String,
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("volume {name:?}: {source}")]
    State { name: String, source: StateError },
    #[error("volume {name:?}: {source}")]
    Mount { name: String, source: MountError },
    #[error("bad tier configuration: {0}")]
    Config(String),
    #[error("volume {name:?}: {source}")]
    Quota { name: String, source: QuotaError },
    #[error("{role} tier at {path} is not the one this plugin initialised ({}): is the disk mounted? (tiers are verified when the plugin starts: disable and enable the plugin once the disk is back)", state.reason())]
    TierUnavailable {
        role: Role,
        path: PathBuf,
        state: TierState,
    },
    #[error(
        "volume {name:?}: archive dir {path} belongs to {found}; refusing to use or delete it"
    )]
    ArchiveOwned {
        name: String,
        path: PathBuf,
        found: String,
    },
    #[error(transparent)]
    Tier(#[from] TierError),
}

/// How the driver opens (beyond the tiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    pub identity: IdentityOptions,
    /// Plain unmounts tried again after EBUSY before a lazy detach.
    pub busy_retries: u32,
    pub busy_retry_interval: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            identity: IdentityOptions::default(),
            busy_retries: 5,
            busy_retry_interval: Duration::from_millis(100),
        }
    }
}

// Few entries (one per volume); boxing the metadata would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Live(VolumeMeta),
    Damaged(String),
}

/// Counts for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub volumes: u64,
    pub active_mounts: u64,
    /// Unmounts that stayed busy and were detached lazily.
    pub lazy_unmounts: u64,
    /// Mount references of an earlier plugin lifetime dropped.
    pub stale_references_dropped: u64,
    /// State label (`ok`, `missing`, `foreign`) of the primary and archive
    /// tiers at the last check.
    pub tier_states: [&'static str; 2],
}

/// The driver; cheap to share behind an `Arc`.
pub struct Driver {
    tiers: Tiers,
    sys: Arc<dyn Syscalls>,
    store: StateStore,
    identity: Identity,
    /// This start of the plugin (a UUID): mount references are stamped
    /// with it.
    lifetime: String,
    opts: OpenOptions,
    volumes: RwLock<BTreeMap<String, Entry>>,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    links: Mutex<()>,
    index_lock: Mutex<()>,
    lazy_unmounts: AtomicU64,
    stale_references_dropped: AtomicU64,
    quotas: Quotas,
}

/// The quota a `Create` will give one tier.
enum QuotaPlan {
    Enforced(Box<dyn Quota>, u64),
    /// `quota=best-effort` on a tier that cannot enforce the size.
    BestEffort(u64),
}

impl QuotaPlan {
    fn record(&self) -> TierQuota {
        match self {
            QuotaPlan::Enforced(q, limit) => TierQuota {
                backend: q.backend(),
                limit_bytes: *limit,
                id: None,
            },
            QuotaPlan::BestEffort(limit) => TierQuota {
                backend: quota::Backend::None,
                limit_bytes: *limit,
                id: None,
            },
        }
    }
}

/// One tier's quota of one volume, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSample {
    pub volume: String,
    pub tier: Tier,
    pub limit_bytes: u64,
    pub used_bytes: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Driver {
    /// Opens the tiers (creating the roots if missing), loads every
    /// volume's metadata, finishes removals and creations a crash
    /// interrupted, and reconciles mounts with the mount table: volumes
    /// with references are mounted exactly once, volumes without are not.
    pub fn open(tiers: Tiers, sys: Arc<dyn Syscalls>) -> Result<Driver, DriverError> {
        Self::open_with(tiers, sys, OpenOptions::default())
    }

    /// [`Driver::open`] with options. First the tiers' identities are
    /// checked (and initialised where allowed); a tier that is not
    /// verified is left untouched and the plugin still starts, answering
    /// `List`/`Get` from the index and refusing changes.
    pub fn open_with(
        tiers: Tiers,
        sys: Arc<dyn Syscalls>,
        opts: OpenOptions,
    ) -> Result<Driver, DriverError> {
        Self::open_with_quota(tiers, sys, opts, Arc::new(quota::RealQuotaSys))
    }

    /// [`Driver::open_with`] with the given quota calls.
    pub fn open_with_quota(
        tiers: Tiers,
        sys: Arc<dyn Syscalls>,
        opts: OpenOptions,
        quota_sys: Arc<dyn QuotaSys>,
    ) -> Result<Driver, DriverError> {
        let tiers = canonical_tiers(tiers)?;
        let identity = Identity::establish(
            &*sys,
            &tiers.primary_root,
            &tiers.archive_root,
            &opts.identity,
        )?;
        let store = StateStore::new(&tiers.primary_root, sys.clone());
        let primary_ok = identity.ok_at_open(Role::Primary);
        let archive_ok = identity.ok_at_open(Role::Archive);
        if primary_ok {
            store.ensure_dirs().map_err(|source| DriverError::State {
                name: String::new(),
                source,
            })?;
        }
        let lifetime = state::new_uuid();
        tracing::info!(lifetime = %lifetime, "plugin lifetime started");
        let driver = Driver {
            tiers,
            sys,
            store,
            identity,
            lifetime,
            opts,
            volumes: RwLock::new(BTreeMap::new()),
            locks: Mutex::new(HashMap::new()),
            links: Mutex::new(()),
            quotas: Quotas::new(quota_sys),
            index_lock: Mutex::new(()),
            lazy_unmounts: AtomicU64::new(0),
            stale_references_dropped: AtomicU64::new(0),
        };
        if primary_ok {
            driver.load()?;
            driver.reconcile_index();
        } else {
            driver.load_from_index();
        }
        if primary_ok && archive_ok {
            driver.clean_leftovers();
        }
        if primary_ok {
            driver.drop_references_of_another_boot()?;
        }
        if primary_ok && archive_ok {
            driver.mark_unmarked_archives();
            driver.reconcile();
        }
        driver.write_index();
        Ok(driver)
    }

    /// This plugin lifetime's UUID.
    pub fn lifetime(&self) -> &str {
        &self.lifetime
    }

    /// The tiers' identities.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Refuses a change unless both tiers are verified now.
    fn require_tiers(&self) -> Result<(), DriverError> {
        for role in Role::BOTH {
            let state = self.identity.check(role);
            if state != TierState::Ok {
                return Err(DriverError::TierUnavailable {
                    role,
                    path: self.identity.describe(role),
                    state,
                });
            }
        }
        Ok(())
    }

    /// Whether the primary tier's records can be trusted now (verified at
    /// start and still there).
    fn primary_trusted(&self) -> bool {
        self.identity.ok_at_open(Role::Primary)
            && self.identity.check(Role::Primary) == TierState::Ok
    }

    /// While the primary tier is away: the volumes from the index copies
    /// (archive tier, then the plugin's state dir), so `List` and `Get`
    /// still answer for them.
    fn load_from_index(&self) {
        let mut dirs = Vec::new();
        if self.identity.ok_at_open(Role::Archive) {
            dirs.push(index::tier_index_dir(&self.tiers.archive_root));
        }
        if let Some(d) = self.identity.state_dir() {
            dirs.push(d.to_owned());
        }
        let mut volumes = self.volumes.write().unwrap_or_else(PoisonError::into_inner);
        for dir in dirs {
            match index::read_index(&dir) {
                Ok(Some(ix)) => {
                    for meta in ix.metas() {
                        volumes
                            .entry(meta.name.clone())
                            .or_insert(Entry::Live(meta));
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "volume index unreadable"),
            }
        }
        tracing::warn!(
            volumes = volumes.len(),
            "primary tier not verified: volumes known from the index only; changes refused"
        );
    }

    /// Compares the index copies with the records on the primary tier
    /// (the truth) and logs what differs; [`Self::write_index`] then
    /// rewrites them.
    fn reconcile_index(&self) {
        let known: Vec<String> = self
            .volumes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let mut dirs = vec![index::tier_index_dir(&self.tiers.primary_root)];
        if self.identity.ok_at_open(Role::Archive) {
            dirs.push(index::tier_index_dir(&self.tiers.archive_root));
        }
        for dir in dirs {
            if let Ok(Some(ix)) = index::read_index(&dir) {
                for e in ix.volumes.iter().filter(|e| !known.contains(&e.name)) {
                    tracing::warn!(volume = %e.name, uuid = ?e.uuid, index = %dir.display(), "indexed volume has no record on the primary tier (removed, or deleted out of band); dropped from the index");
                }
            }
        }
    }

    /// Writes the index (from the cache) to every verified tier and the
    /// plugin's state dir. The records beside the data are durable
    /// already; a failure here is logged.
    fn write_index(&self) {
        if !self.identity.ok_at_open(Role::Primary) {
            return;
        }
        let _held = lock(&self.index_lock);
        let index = {
            let volumes = self.volumes.read().unwrap_or_else(PoisonError::into_inner);
            Index::of(volumes.values().filter_map(|e| match e {
                Entry::Live(m) => Some(m),
                Entry::Damaged(_) => None,
            }))
        };
        let mut dirs = Vec::new();
        for (role, root) in [
            (Role::Primary, &self.tiers.primary_root),
            (Role::Archive, &self.tiers.archive_root),
        ] {
            if self.identity.ok_at_open(role) && self.identity.check(role) == TierState::Ok {
                dirs.push(index::tier_index_dir(root));
            }
        }
        if let Some(d) = self.identity.state_dir() {
            dirs.push(d.to_owned());
        }
        for dir in dirs {
            if let Err(e) = index::write_index(&*self.sys, &dir, &index) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot write the volume index");
            }
        }
    }

    /// Records the owner in archive dirs written before owners were
    /// recorded (at start, both tiers verified).
    fn mark_unmarked_archives(&self) {
        let metas: Vec<VolumeMeta> = self.live_metas();
        for meta in metas {
            let (Some(uuid), None) = (&meta.uuid, &meta.options.archive_of) else {
                continue;
            };
            let adir = self.archive_dir(&meta.name);
            if !adir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if let Ok(None) = index::read_volume_id(&adir) {
                match index::write_volume_id(&*self.sys, &adir, &meta.name, uuid) {
                    Ok(()) => tracing::info!(volume = %meta.name, "archive dir owner recorded"),
                    Err(e) => {
                        tracing::warn!(volume = %meta.name, error = %e, "cannot record the archive dir's owner")
                    }
                }
            }
        }
    }

    fn live_metas(&self) -> Vec<VolumeMeta> {
        self.volumes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|e| match e {
                Entry::Live(m) => Some(m.clone()),
                Entry::Damaged(_) => None,
            })
            .collect()
    }

    /// The tiers, with canonical paths.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    fn load(&self) -> Result<(), DriverError> {
        let names = self
            .store
            .volume_names()
            .map_err(|source| DriverError::State {
                name: String::new(),
                source,
            })?;
        let mut volumes = self.volumes.write().unwrap_or_else(PoisonError::into_inner);
        for name in names {
            if !self.store.has_meta(&name) {
                tracing::warn!(volume = %name, "directory on the primary tier without metadata; ignored");
                continue;
            }
            match self.store.load(&name) {
                Ok(mut meta) => {
                    if meta.uuid.is_none() {
                        // Written before volumes had identities.
                        meta.uuid = Some(state::new_uuid());
                        if let Err(e) = self.store.save(&meta) {
                            tracing::warn!(volume = %name, error = %e, "cannot record the volume's new uuid");
                        }
                    }
                    volumes.insert(name, Entry::Live(meta));
                }
                Err(e) => {
                    tracing::warn!(volume = %name, error = %e, "volume metadata unreadable; volume refused until repaired");
                    volumes.insert(name, Entry::Damaged(e.to_string()));
                }
            }
        }
        tracing::info!(volumes = volumes.len(), "volume metadata loaded");
        Ok(())
    }

    /// Mount references recorded under another boot of the kernel are
    /// stale: their containers died with it, and the daemon will not send
    /// their Unmount. They are dropped so the volumes can be removed.
    fn drop_references_of_another_boot(&self) -> Result<(), DriverError> {
        let state = |source| DriverError::State {
            name: String::new(),
            source,
        };
        let current = match self.sys.boot_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell reboots apart; mount references kept as recorded");
                return Ok(());
            }
        };
        let recorded = self.store.recorded_boot_id().map_err(state)?;
        if recorded.as_deref().is_some_and(|r| r != current) {
            let mut volumes = self.volumes.write().unwrap_or_else(PoisonError::into_inner);
            for entry in volumes.values_mut() {
                let Entry::Live(meta) = entry else { continue };
                if meta.mounts.is_empty() {
                    continue;
                }
                let mut cleared = meta.clone();
                cleared.mounts.clear();
                cleared.mount_lifetimes.clear();
                self.store.save(&cleared).map_err(state)?;
                tracing::info!(volume = %meta.name, dropped = meta.active_mounts(), "host rebooted: dropped stale mount references");
                *meta = cleared;
            }
        }
        if recorded.as_deref() != Some(current.as_str()) {
            self.store.record_boot_id(&current).map_err(state)?;
        }
        Ok(())
    }

    fn clean_leftovers(&self) {
        let (trash, tmp) = match self.store.leftovers() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list leftovers");
                return;
            }
        };
        for entry in tmp {
            if let Err(e) = self.quotas.release_leftover(&entry.join("data")) {
                tracing::warn!(path = %entry.display(), error = %e, "cannot delete the subvolume of an interrupted creation");
            }
            let res = self
                .sys
                .mount_points()
                .map_err(StateError::from)
                .and_then(|p| state::remove_tree(&*self.sys, &entry, &p));
            if let Err(e) = res {
                tracing::warn!(path = %entry.display(), error = %e, "cannot remove interrupted creation");
            }
        }
        for entry in trash {
            let meta = self.store.trash_meta(&entry);
            if let Err(e) = self.purge(&entry, meta.as_ref()) {
                tracing::warn!(path = %entry.display(), error = %e, "cannot finish removal");
            }
        }
    }

    fn reconcile(&self) {
        let points = match self.sys.mount_points() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mount table; mounts not reconciled");
                return;
            }
        };
        let metas = self.live_metas();
        for meta in metas {
            let name = meta.name.clone();
            let res = self.with_volume(&name, || -> Result<(), DriverError> {
                let mp = self.mountpoint(&name);
                if meta.active_mounts() > 0 {
                    if self.fully_mounted(&meta, &points) {
                        tracing::info!(volume = %name, mounts = meta.active_mounts(), "held mount recognised");
                    } else {
                        tracing::info!(volume = %name, mounts = meta.active_mounts(), "held mount missing; mounting again");
                        self.teardown(&meta, &points)?;
                        self.establish(&meta)?;
                    }
                } else if mounts::has_mount_at_or_under(&points, &mp) {
                    tracing::info!(volume = %name, "unreferenced mount found; unmounting");
                    self.teardown(&meta, &points)?;
                }
                Ok(())
            });
            if let Err(e) = res {
                tracing::warn!(volume = %name, error = %e, "cannot reconcile mounts");
            }
        }
    }

    /// Runs `f` holding the lock of volume `name`.
    fn with_volume<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        let vol_lock = lock(&self.locks)
            .entry(name.to_owned())
            .or_default()
            .clone();
        let out = {
            let _held = lock(&vol_lock);
            f()
        };
        let mut locks = lock(&self.locks);
        // Only the map and this call hold it: nobody waits, drop the entry.
        if Arc::strong_count(&vol_lock) == 2 {
            locks.remove(name);
        }
        out
    }

    /// The cached metadata of a usable volume. A volume whose metadata
    /// file vanished (deleted out of band) is forgotten and not found.
    fn live(&self, name: &str) -> Result<VolumeMeta, DriverError> {
        let found = match self
            .volumes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            Some(Entry::Live(m)) => Ok(m.clone()),
            Some(Entry::Damaged(reason)) => Err(DriverError::Damaged {
                name: name.to_owned(),
                reason: reason.clone(),
            }),
            None => Err(DriverError::NotFound(name.to_owned())),
        }?;
        if !self.store.has_meta(name) && self.primary_trusted() {
            tracing::warn!(volume = %name, "volume metadata deleted out of band; volume forgotten");
            let mut volumes = self.volumes.write().unwrap_or_else(PoisonError::into_inner);
            if matches!(volumes.get(name), Some(Entry::Live(_))) && !self.store.has_meta(name) {
                volumes.remove(name);
            }
            return Err(DriverError::NotFound(name.to_owned()));
        }
        Ok(found)
    }

    fn cache(&self, meta: VolumeMeta) {
        self.volumes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(meta.name.clone(), Entry::Live(meta));
    }

    /// `MOUNT_ROOT/NAME`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.tiers.mount_root.join(name)
    }

    /// `ARCHIVE/NAME`.
    pub fn archive_dir(&self, name: &str) -> PathBuf {
        self.tiers.archive_root.join(name)
    }

    /// `PRIMARY/NAME/data`.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.store.data_dir(name)
    }

    fn state_err(name: &str) -> impl FnOnce(StateError) -> DriverError + '_ {
        move |source| DriverError::State {
            name: name.to_owned(),
            source,
        }
    }

    fn mount_err(name: &str) -> impl FnOnce(MountError) -> DriverError + '_ {
        move |source| DriverError::Mount {
            name: name.to_owned(),
            source,
        }
    }

    fn io_err<'a>(
        name: &'a str,
        op: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> DriverError + 'a {
        move |source| DriverError::Io {
            name: name.to_owned(),
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// `Create`: makes the volume, or accepts an existing one created with
    /// the same options. An archive dir left by a `keep-archive` volume of
    /// the same name is re-attached (and recorded as this volume's), unless
    /// it belongs to another known volume. Refused unless both tiers are
    /// verified.
    pub fn create(&self, name: &str, options: VolumeOptions) -> Result<(), DriverError> {
        self.with_volume(name, || {
            self.require_tiers()?;
            match self.live(name) {
                Ok(meta) if meta.options == options => return Ok(()),
                Ok(_) => return Err(DriverError::Exists(name.to_owned())),
                Err(DriverError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            if self.store.exists(name) {
                return Err(DriverError::NotTiered {
                    path: self.store.volume_dir(name),
                });
            }
            let _links = options.archive_of.as_ref().map(|_| lock(&self.links));
            if let Some(other) = &options.archive_of {
                match self.live(other) {
                    Ok(m) if m.options.archive_of.is_some() => {
                        return Err(DriverError::ArchiveOfChain {
                            other: other.clone(),
                        })
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(DriverError::ArchiveOfMissing {
                            name: name.to_owned(),
                            other: other.clone(),
                        })
                    }
                }
            }
            // Decided before anything is created: a tier that cannot
            // enforce its size refuses the volume and changes nothing.
            let primary_plan = self.plan_quota(name, Tier::Primary, options.size_bytes, &options)?;
            let archive_plan =
                self.plan_quota(name, Tier::Archive, options.archive_size_bytes, &options)?;
            let mut meta = VolumeMeta::new(name, options.clone());
            meta.quota.primary = primary_plan.as_ref().map(QuotaPlan::record);
            let uuid = meta.uuid.clone().unwrap_or_default();
            let mut new_archive = None;
            if options.archive_of.is_none() {
                let adir = self.archive_dir(name);
                let existing = adir.symlink_metadata().is_ok_and(|m| m.is_dir());
                if existing {
                    // Whose it is, before anything (a quota) touches it.
                    match index::read_volume_id(&adir) {
                        Ok(Some(owner)) if self.uuid_in_use(&owner.uuid) => {
                            return Err(DriverError::ArchiveOwned {
                                name: name.to_owned(),
                                path: adir,
                                found: format!("volume {:?} ({})", owner.name, owner.uuid),
                            });
                        }
                        Ok(_) => {
                            tracing::info!(volume = %name, path = %adir.display(), "re-attaching existing archive tier")
                        }
                        Err(e) => return Err(Self::state_err(name)(e)),
                    }
                }
                let created = match &archive_plan {
                    Some(QuotaPlan::Enforced(q, limit)) => {
                        let made = if existing {
                            q.adopt_dir(&adir, *limit)
                        } else {
                            q.create_dir(&adir, *limit)
                        };
                        meta.quota.archive = Some(made.map_err(|source| DriverError::Quota {
                            name: name.to_owned(),
                            source,
                        })?);
                        !existing
                    }
                    _ => {
                        meta.quota.archive = archive_plan.as_ref().map(QuotaPlan::record);
                        make_dir(&adir).map_err(Self::io_err(name, "create", &adir))?
                    }
                };
                if created {
                    new_archive = Some(adir.clone());
                }
                let sys = &*self.sys;
                let res = apply_owner_mode(sys, &adir, &options, created)
                    .map_err(Self::io_err(name, "set owner/mode of", &adir))
                    .and_then(|()| {
                        index::write_volume_id(sys, &adir, name, &uuid)
                            .and_then(|()| state::fsync_dir(sys, &self.tiers.archive_root))
                            .map_err(Self::state_err(name))
                    });
                if let Err(e) = res {
                    self.undo_new_archive(new_archive.as_deref(), meta.quota.archive.as_ref());
                    return Err(e);
                }
            }
            let archive_dir_name = self.tiers.archive_dir_name.clone();
            let mut primary_quota = None;
            let mut quota_failure = None;
            let sys = &*self.sys;
            let res = self.store.publish(&meta, |dir| {
                if options.archive_of.is_some() {
                    return Ok(());
                }
                let data = dir.join("data");
                let under = data.join(&archive_dir_name);
                let made = match &primary_plan {
                    Some(QuotaPlan::Enforced(q, limit)) => match q.create_dir(&data, *limit) {
                        Ok(tq) => {
                            primary_quota = Some(tq);
                            Ok(())
                        }
                        Err(e) => {
                            let errno = e.errno().unwrap_or(nix::errno::Errno::EIO);
                            quota_failure = Some(e);
                            Err(std::io::Error::from(errno))
                        }
                    },
                    _ => std::fs::create_dir(&data),
                };
                made.and_then(|()| std::fs::create_dir(&under))
                    .map_err(|source| StateError::Io {
                        op: "create",
                        path: data.clone(),
                        source,
                    })?;
                for d in [&data, &under] {
                    apply_owner_mode(sys, d, &options, true).map_err(|source| StateError::Io {
                        op: "set owner/mode of",
                        path: d.clone(),
                        source,
                    })?;
                }
                state::fsync_dir(sys, &data)?;
                state::fsync_dir(sys, dir)
            });
            if let Err(e) = res {
                // The staged tree is gone; a subvolume in it leaves its qgroup.
                if let (Some(QuotaPlan::Enforced(q, _)), Some(tq)) = (&primary_plan, &primary_quota) {
                    if let Err(e2) = q.forget(&self.tiers.primary_root, tq) {
                        tracing::warn!(volume = %name, error = %e2, "cannot release the quota of a failed creation");
                    }
                }
                self.undo_new_archive(new_archive.as_deref(), meta.quota.archive.as_ref());
                if let Some(source) = quota_failure {
                    return Err(DriverError::Quota {
                        name: name.to_owned(),
                        source,
                    });
                }
                return Err(Self::state_err(name)(e));
            }
            if primary_quota.is_some() && primary_quota != meta.quota.primary {
                // The subvolume / project ID is known now; without it in
                // the record, removal finds it from the directory.
                meta.quota.primary = primary_quota;
                if let Err(e) = self.store.save(&meta) {
                    tracing::warn!(volume = %name, error = %e, "cannot record the quota id");
                }
            }
            tracing::info!(volume = %name, uuid = %uuid, options = ?meta.options, quota = ?meta.quota, "volume created");
            self.cache(meta);
            self.write_index();
            Ok(())
        })
    }

    /// The quota `Create` will give `tier` for `size` (`None`: no size).
    fn plan_quota(
        &self,
        name: &str,
        tier: Tier,
        size: Option<u64>,
        options: &VolumeOptions,
    ) -> Result<Option<QuotaPlan>, DriverError> {
        let Some(limit) = size else { return Ok(None) };
        let root = match tier {
            Tier::Primary => &self.tiers.primary_root,
            Tier::Archive => &self.tiers.archive_root,
        };
        match self.quotas.choose(tier, root) {
            Ok(q) => Ok(Some(QuotaPlan::Enforced(q, limit))),
            Err(e @ QuotaError::Unsupported { .. }) if options.quota_best_effort => {
                tracing::warn!(volume = %name, error = %e, "quota=best-effort: size not enforced");
                Ok(Some(QuotaPlan::BestEffort(limit)))
            }
            Err(source) => Err(DriverError::Quota {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// Deletes an archive dir `Create` made before it failed.
    fn undo_new_archive(&self, dir: Option<&Path>, tq: Option<&TierQuota>) {
        if let (Some(d), Some(tq)) = (dir, tq) {
            if let Some(q) = self.quotas.backend(tq.backend, &self.tiers.archive_root) {
                if let Err(e) = q.release(d, tq) {
                    tracing::warn!(path = %d.display(), error = %e, "cannot release the quota of a new archive dir");
                }
            }
        }
        if dir.is_some_and(|d| d.exists()) {
            remove_new_dir(dir);
        }
    }

    /// Releases the quotas of a removed volume before its directories are
    /// deleted: the primary tier's (in the trash entry), and the archive
    /// tier's unless the archive is kept (then only its limit is lifted)
    /// or belongs to a volume of the same name created since.
    fn release_quotas(
        &self,
        entry: &Path,
        meta: &VolumeMeta,
        archive_is_ours: bool,
        delete_archive: bool,
        points: &[PathBuf],
    ) -> Result<(), StateError> {
        let failed = |path: &Path| {
            let path = path.to_owned();
            move |e: QuotaError| StateError::Io {
                op: "release the quota of",
                path,
                source: std::io::Error::other(e),
            }
        };
        if let Some(tq) = &meta.quota.primary {
            let data = entry.join("data");
            if let Some(q) = self.quotas.backend(tq.backend, &self.tiers.primary_root) {
                if mounts::has_mount_at_or_under(points, &data) {
                    return Err(StateError::Mounted { path: data });
                }
                q.release(&data, tq).map_err(failed(&data))?;
            }
        }
        if let Some(tq) = meta.quota.archive.as_ref().filter(|_| archive_is_ours) {
            let adir = self.archive_dir(&meta.name);
            if let Some(q) = self.quotas.backend(tq.backend, &self.tiers.archive_root) {
                if mounts::has_mount_at_or_under(points, &adir) {
                    return Err(StateError::Mounted { path: adir });
                }
                if delete_archive {
                    q.release(&adir, tq).map_err(failed(&adir))?;
                } else if meta.options.keep_archive && adir.is_dir() {
                    q.clear_limit(&adir, tq).map_err(failed(&adir))?;
                }
            }
        }
        Ok(())
    }

    /// Whether a known volume has this uuid.
    fn uuid_in_use(&self, uuid: &str) -> bool {
        self.volumes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|e| matches!(e, Entry::Live(m) if m.uuid.as_deref() == Some(uuid)))
    }

    /// `Remove`: refused unless both tiers are verified, while mounted (by
    /// a reference of this plugin lifetime, or out of band) or while an
    /// `archive-of` volume points at it. References left by an earlier
    /// lifetime (a daemon that crashed) are dropped and what they left
    /// mounted is unmounted first. Deletes the primary data, and the
    /// archive dir if it is recorded as this volume's (unless
    /// `keep-archive`).
    pub fn remove(&self, name: &str) -> Result<(), DriverError> {
        self.with_volume(name, || {
            self.require_tiers()?;
            let mut meta = self.live(name)?;
            if meta.active_mounts() > 0 {
                let stale = meta.ids_of_earlier_lifetimes(&self.lifetime);
                if stale.len() < meta.mounts.len() {
                    return Err(DriverError::InUse {
                        name: name.to_owned(),
                        mounts: meta.active_mounts(),
                    });
                }
                // The daemon removes only a volume no container uses: these
                // references were left by a daemon that died without
                // sending their Unmount.
                tracing::warn!(volume = %name, ids = ?stale, mounts = meta.active_mounts(), "remove: dropping mount references of an earlier plugin lifetime and unmounting what they left");
                self.unmount_all(&meta)?;
                let dropped = meta.active_mounts();
                meta.mounts.clear();
                meta.mount_lifetimes.clear();
                self.store.save(&meta).map_err(Self::state_err(name))?;
                self.stale_references_dropped
                    .fetch_add(dropped, Ordering::Relaxed);
                self.cache(meta.clone());
            }
            let points = self.sys.mount_points().map_err(Self::mount_err(name))?;
            let mut watched = vec![self.mountpoint(name), self.store.volume_dir(name)];
            if meta.options.archive_of.is_none() {
                watched.push(self.archive_dir(name));
            }
            for path in watched {
                if let Some(p) = mounts::mount_at_or_under(&points, &path) {
                    return Err(DriverError::StillMounted {
                        name: name.to_owned(),
                        path: p.clone(),
                    });
                }
            }
            // `links` (global) covers only the referrer check and the
            // removal from the cache, never the purge of the data below,
            // which may take long: other volumes must not wait on it.
            let links = lock(&self.links);
            let referrer = self
                .volumes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .find_map(|e| match e {
                    Entry::Live(m) if m.options.archive_of.as_deref() == Some(name) => {
                        Some(m.name.clone())
                    }
                    _ => None,
                });
            if let Some(by) = referrer {
                return Err(DriverError::Referenced {
                    name: name.to_owned(),
                    by,
                });
            }
            let trash = self
                .store
                .move_to_trash(name)
                .map_err(Self::state_err(name))?;
            self.volumes
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            drop(links);
            self.write_index();
            let mp = self.mountpoint(name);
            if let Err(e) = std::fs::remove_dir(&mp) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(volume = %name, path = %mp.display(), error = %e, "cannot remove mountpoint dir");
                }
            }
            tracing::info!(volume = %name, keep_archive = meta.options.keep_archive, "volume removed");
            // The volume is gone (atomically); deleting its data is retried at
            // the next start if it fails now.
            if let Err(e) = self.purge(&trash, Some(&meta)) {
                tracing::warn!(volume = %name, error = %e, "data of removed volume not deleted yet; retried at next start");
            }
            Ok(())
        })
    }

    /// Deletes a trash entry, first the archive dir it owned (unless kept,
    /// a volume of the same name exists again, or the dir is not recorded
    /// as this incarnation's).
    fn purge(&self, entry: &Path, meta: Option<&VolumeMeta>) -> Result<(), StateError> {
        let points = self.sys.mount_points()?;
        if let Some(meta) = meta {
            let exists_again = self
                .volumes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&meta.name);
            let adir = self.archive_dir(&meta.name);
            let candidate = meta.options.archive_of.is_none() && !exists_again;
            let owner = index::read_volume_id(&adir);
            let ours = candidate
                && match (&owner, &meta.uuid) {
                    (Ok(Some(id)), Some(uuid)) => id.uuid == *uuid,
                    // Both from before identities were recorded.
                    (Ok(None), None) => true,
                    _ => false,
                };
            let delete_archive = ours && !meta.options.keep_archive;
            self.release_quotas(entry, meta, ours, delete_archive, &points)?;
            if delete_archive {
                state::remove_tree(&*self.sys, &adir, &points)?;
            } else if candidate && !meta.options.keep_archive && adir.symlink_metadata().is_ok() {
                tracing::warn!(volume = %meta.name, uuid = ?meta.uuid, owner = ?owner, path = %adir.display(), "archive dir not recorded as this volume's; kept (delete it by hand if it is no longer wanted)");
            }
        }
        state::remove_tree(&*self.sys, entry, &points)
    }

    /// `Mount`: the first reference mounts both tiers; later ones (also
    /// the same ID again) only count. The references of earlier plugin
    /// lifetimes are dropped first (see the module docs). Returns the
    /// mountpoint. Refused unless both tiers are verified.
    pub fn mount(&self, name: &str, id: &str) -> Result<PathBuf, DriverError> {
        self.with_volume(name, || {
            self.require_tiers()?;
            let mut meta = self.live(name)?;
            let mut dropped = 0;
            let stale = meta.ids_of_earlier_lifetimes(&self.lifetime);
            if !stale.is_empty() {
                for s in &stale {
                    dropped += u64::from(meta.mounts.remove(s).unwrap_or(0));
                    meta.mount_lifetimes.remove(s);
                }
                tracing::warn!(volume = %name, id, stale = ?stale, dropped, "first mount of this plugin lifetime: references of an earlier lifetime dropped (the daemon that took them is gone; a container it restarts mounts again, with the same or a new id)");
            }
            if !meta.mounts.contains_key(id) && meta.mounts.len() >= MOUNT_IDS_MAX {
                return Err(DriverError::TooManyMounts(name.to_owned()));
            }
            let count = meta.mounts.entry(id.to_owned()).or_insert(0);
            *count = count
                .checked_add(1)
                .ok_or_else(|| DriverError::TooManyMounts(name.to_owned()))?;
            meta.mount_lifetimes
                .insert(id.to_owned(), self.lifetime.clone());
            let points = self.sys.mount_points().map_err(Self::mount_err(name))?;
            let establish = !self.fully_mounted(&meta, &points);
            if establish {
                self.teardown(&meta, &points)?;
                self.establish(&meta)?;
            }
            if let Err(e) = self.store.save(&meta) {
                if establish {
                    if let Err(e2) = self.unmount_all(&meta) {
                        tracing::warn!(volume = %name, error = %e2, "cannot undo mount");
                    }
                }
                return Err(Self::state_err(name)(e));
            }
            self.stale_references_dropped
                .fetch_add(dropped, Ordering::Relaxed);
            tracing::info!(volume = %name, id, mounts = meta.active_mounts(), "mounted");
            self.cache(meta);
            Ok(self.mountpoint(name))
        })
    }

    /// `Unmount`: drops one reference of `id`; the last reference unmounts
    /// the archive tier, then the volume root (a busy mount is detached
    /// lazily after a short retry).
    pub fn unmount(&self, name: &str, id: &str) -> Result<(), DriverError> {
        self.with_volume(name, || {
            let old = self.live(name)?;
            let mut meta = old.clone();
            match meta.mounts.get_mut(id) {
                None => {
                    return Err(DriverError::UnknownId {
                        name: name.to_owned(),
                        id: id.to_owned(),
                    })
                }
                Some(1) => {
                    meta.mounts.remove(id);
                    meta.mount_lifetimes.remove(id);
                }
                Some(c) => *c -= 1,
            }
            let persist = self.primary_trusted();
            if persist {
                self.store.save(&meta).map_err(Self::state_err(name))?;
            } else {
                tracing::warn!(volume = %name, id, "primary tier not verified: reference dropped in memory only");
            }
            if meta.active_mounts() == 0 {
                if let Err(e) = self.unmount_all(&meta) {
                    if persist {
                        if let Err(e2) = self.store.save(&old) {
                            tracing::warn!(volume = %name, error = %e2, "cannot restore mount references");
                        }
                    }
                    return Err(e);
                }
            }
            tracing::info!(volume = %name, id, mounts = meta.active_mounts(), "unmounted");
            self.cache(meta);
            Ok(())
        })
    }

    /// `Path`: the mountpoint while mounted, else empty.
    pub fn path(&self, name: &str) -> Result<String, DriverError> {
        let meta = self.live(name)?;
        Ok(self.reported_mountpoint(&meta))
    }

    fn reported_mountpoint(&self, meta: &VolumeMeta) -> String {
        if meta.active_mounts() > 0 {
            self.mountpoint(&meta.name).display().to_string()
        } else {
            String::new()
        }
    }

    /// `Get`: the volume with its tiers in `Status` (statvfs, no scan),
    /// including each tier's state (`ok`, `missing`, `foreign`).
    pub fn get(&self, name: &str) -> Result<VolumeInfo, DriverError> {
        let meta = self.live(name)?;
        let (primary_usage, archive_usage) = self.tier_usage().map_err(Self::mount_err(name))?;
        let mut status = Map::new();
        let (primary_path, archive_path) = match &meta.options.archive_of {
            Some(other) => (Value::Null, self.archive_dir(other)),
            None => (
                json!(self.data_dir(name).display().to_string()),
                self.archive_dir(name),
            ),
        };
        status.insert("primary_path".into(), primary_path);
        status.insert(
            "archive_path".into(),
            json!(archive_path.display().to_string()),
        );
        for (tier, u) in [("primary", primary_usage), ("archive", archive_usage)] {
            status.insert(format!("{tier}_used_bytes"), json!(u.used_bytes));
            status.insert(format!("{tier}_free_bytes"), json!(u.free_bytes));
            status.insert(format!("{tier}_total_bytes"), json!(u.total_bytes));
        }
        for role in Role::BOTH {
            status.insert(
                format!("{role}_tier"),
                json!(self.identity.check(role).label()),
            );
        }
        status.insert("active_mounts".into(), json!(meta.active_mounts()));
        status.insert(
            "archive_dir_name".into(),
            json!(self.tiers.archive_dir_name),
        );
        status.insert("uuid".into(), json!(meta.uuid));
        let o = &meta.options;
        status.insert("archive_of".into(), json!(o.archive_of));
        status.insert("keep_archive".into(), json!(o.keep_archive));
        status.insert("uid".into(), json!(o.uid));
        status.insert("gid".into(), json!(o.gid));
        status.insert("mode".into(), json!(o.mode.map(|m| format!("{m:04o}"))));
        for tier in [Tier::Primary, Tier::Archive] {
            let t = tier.label();
            let (backend, limit, used) = match self.quota_usage(&meta, tier) {
                None => (None, None, None),
                Some((tq, Ok(u))) => (Some(tq.backend.label()), u.limit_bytes, Some(u.used_bytes)),
                Some((tq, Err(e))) => {
                    tracing::warn!(volume = %name, tier = t, error = %e, "cannot read quota usage");
                    (Some(tq.backend.label()), None, None)
                }
            };
            status.insert(format!("{t}_quota"), json!(backend));
            status.insert(format!("{t}_quota_limit_bytes"), json!(limit));
            status.insert(format!("{t}_quota_used_bytes"), json!(used));
        }
        Ok(VolumeInfo {
            name: meta.name.clone(),
            mountpoint: self.reported_mountpoint(&meta),
            created_at: meta.created_at.clone(),
            status: Some(status),
        })
    }

    /// `List`: every usable volume, from memory (also while a tier is
    /// away: the daemon must never take a name for a `local` volume).
    pub fn list(&self) -> Vec<VolumeInfo> {
        let check_meta = self.primary_trusted();
        self.volumes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|e| match e {
                // A stat per volume, no scan: skips volumes deleted out of band.
                Entry::Live(m) if !check_meta || self.store.has_meta(&m.name) => Some(VolumeInfo {
                    name: m.name.clone(),
                    mountpoint: self.reported_mountpoint(m),
                    created_at: m.created_at.clone(),
                    status: None,
                }),
                Entry::Live(_) | Entry::Damaged(_) => None,
            })
            .collect()
    }

    /// The quota of `meta`'s `tier` and what the file system says of it
    /// (`None`: no size on that tier). A best-effort tier reports no limit.
    fn quota_usage(
        &self,
        meta: &VolumeMeta,
        tier: Tier,
    ) -> Option<(TierQuota, Result<quota::QuotaUsage, QuotaError>)> {
        let tq = *meta.quota.get(tier)?;
        let (root, dir) = match tier {
            Tier::Primary => (&self.tiers.primary_root, self.data_dir(&meta.name)),
            Tier::Archive => (&self.tiers.archive_root, self.archive_dir(&meta.name)),
        };
        let usage = match self.quotas.backend(tq.backend, root) {
            Some(q) => q.usage(&dir, &tq),
            None => Ok(quota::QuotaUsage::default()),
        };
        Some((tq, usage))
    }

    /// The enforced quotas of every volume, read from the file systems.
    pub fn quota_samples(&self) -> Vec<QuotaSample> {
        let metas: Vec<VolumeMeta> = self
            .volumes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|e| match e {
                Entry::Live(m) if !m.quota.is_empty() => Some(m.clone()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for meta in metas {
            for tier in [Tier::Primary, Tier::Archive] {
                match self.quota_usage(&meta, tier) {
                    Some((_, Ok(u))) => {
                        if let Some(limit_bytes) = u.limit_bytes {
                            out.push(QuotaSample {
                                volume: meta.name.clone(),
                                tier,
                                limit_bytes,
                                used_bytes: u.used_bytes,
                            });
                        }
                    }
                    Some((_, Err(e))) => {
                        tracing::warn!(volume = %meta.name, tier = tier.label(), error = %e, "cannot read quota usage");
                    }
                    None => {}
                }
            }
        }
        out
    }

    /// Volume and mount-reference counts, lazy unmounts and tier states.
    pub fn counts(&self) -> Counts {
        let states = Role::BOTH.map(|role| self.identity.check(role));
        let volumes = self.volumes.read().unwrap_or_else(PoisonError::into_inner);
        let mut c = Counts {
            lazy_unmounts: self.lazy_unmounts.load(Ordering::Relaxed),
            stale_references_dropped: self.stale_references_dropped.load(Ordering::Relaxed),
            tier_states: [states[0].label(), states[1].label()],
            ..Counts::default()
        };
        for e in volumes.values() {
            if let Entry::Live(m) = e {
                c.volumes += 1;
                c.active_mounts += m.active_mounts();
            }
        }
        c
    }

    /// statvfs of the primary and archive tiers.
    pub fn tier_usage(&self) -> Result<(FsUsage, FsUsage), MountError> {
        Ok((
            self.sys.statvfs(&self.tiers.primary_root)?,
            self.sys.statvfs(&self.tiers.archive_root)?,
        ))
    }

    fn fully_mounted(&self, meta: &VolumeMeta, points: &[PathBuf]) -> bool {
        let mp = self.mountpoint(&meta.name);
        mounts::is_mounted(points, &mp)
            && (meta.options.archive_of.is_some()
                || mounts::is_mounted(points, &mp.join(&self.tiers.archive_dir_name)))
    }

    /// Bind-mounts the volume root at its mountpoint and the archive tier
    /// over `archived/` (or, for `archive-of`, the other's archive alone).
    /// An archive dir recorded as another volume's is never mounted.
    fn establish(&self, meta: &VolumeMeta) -> Result<(), DriverError> {
        let name = meta.name.as_str();
        let mp = self.mountpoint(name);
        make_dir(&mp).map_err(Self::io_err(name, "create", &mp))?;
        if let Some(other) = &meta.options.archive_of {
            let src = self.archive_dir(other);
            if !src.is_dir() {
                return Err(DriverError::ArchiveOfMissing {
                    name: name.to_owned(),
                    other: other.clone(),
                });
            }
            return self
                .sys
                .bind_mount(&src, &mp)
                .map_err(Self::mount_err(name));
        }
        let data = self.data_dir(name);
        if !data.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            return Err(DriverError::Damaged {
                name: name.to_owned(),
                reason: format!("{} is missing", data.display()),
            });
        }
        let sys = &*self.sys;
        let under = data.join(&self.tiers.archive_dir_name);
        if make_dir(&under).map_err(Self::io_err(name, "create", &under))? {
            apply_owner_mode(sys, &under, &meta.options, true).map_err(Self::io_err(
                name,
                "set owner/mode of",
                &under,
            ))?;
        }
        let adir = self.archive_dir(name);
        if make_dir(&adir).map_err(Self::io_err(name, "create", &adir))? {
            tracing::warn!(volume = %name, path = %adir.display(), "archive dir was missing on the verified archive tier (deleted out of band?); created empty");
            apply_owner_mode(sys, &adir, &meta.options, true).map_err(Self::io_err(
                name,
                "set owner/mode of",
                &adir,
            ))?;
        }
        self.claim_archive(meta, &adir)?;
        self.sys
            .bind_mount(&data, &mp)
            .map_err(Self::mount_err(name))?;
        let amp = mp.join(&self.tiers.archive_dir_name);
        if let Err(e) = self.sys.bind_mount(&adir, &amp) {
            if let Err(e2) = self.sys.unmount(&mp) {
                tracing::warn!(volume = %name, error = %e2, "cannot undo half mount");
            }
            return Err(Self::mount_err(name)(e));
        }
        Ok(())
    }

    /// Checks that archive dir `adir` is recorded as `meta`'s, recording
    /// it if nothing is.
    fn claim_archive(&self, meta: &VolumeMeta, adir: &Path) -> Result<(), DriverError> {
        let name = meta.name.as_str();
        let Some(uuid) = &meta.uuid else {
            return Ok(());
        };
        match index::read_volume_id(adir).map_err(Self::state_err(name))? {
            Some(owner) if owner.uuid == *uuid => Ok(()),
            Some(owner) => Err(DriverError::ArchiveOwned {
                name: name.to_owned(),
                path: adir.to_owned(),
                found: format!("volume {:?} ({})", owner.name, owner.uuid),
            }),
            None => {
                index::write_volume_id(&*self.sys, adir, name, uuid).map_err(Self::state_err(name))
            }
        }
    }

    fn unmount_all(&self, meta: &VolumeMeta) -> Result<(), DriverError> {
        let points = self
            .sys
            .mount_points()
            .map_err(Self::mount_err(&meta.name))?;
        self.teardown(meta, &points)
    }

    /// Unmounts one mount point: EBUSY is retried a few times, then the
    /// mount is detached lazily (`MNT_DETACH`: gone from the tree now,
    /// released by the kernel when its last user leaves), logged and
    /// counted.
    fn unmount_point(&self, name: &str, p: &Path) -> Result<(), DriverError> {
        let mut attempt = 0;
        loop {
            match self.sys.unmount(p) {
                Ok(()) => return Ok(()),
                Err(e) if e.errno() == Some(nix::errno::Errno::EBUSY) => {
                    if attempt >= self.opts.busy_retries {
                        break;
                    }
                    attempt += 1;
                    std::thread::sleep(self.opts.busy_retry_interval);
                }
                Err(e) => return Err(Self::mount_err(name)(e)),
            }
        }
        self.sys.detach(p).map_err(Self::mount_err(name))?;
        self.lazy_unmounts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(volume = %name, path = %p.display(), attempts = attempt + 1, "mount busy (a process still uses it): detached lazily");
        Ok(())
    }

    /// Unmounts everything at or under the mountpoint, deepest first (so
    /// `archived/` before the root), checks the mount table, and removes
    /// the (then empty) mountpoint directory.
    fn teardown(&self, meta: &VolumeMeta, points: &[PathBuf]) -> Result<(), DriverError> {
        let name = meta.name.as_str();
        let mp = self.mountpoint(name);
        let mut under: Vec<&PathBuf> = points
            .iter()
            .filter(|p| mounts::is_at_or_under(p, &mp))
            .collect();
        if under.is_empty() {
            return Ok(());
        }
        // Later entries are stacked on top: unmount them first, deepest first.
        under.reverse();
        under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in under {
            self.unmount_point(name, p)?;
        }
        let after = self.sys.mount_points().map_err(Self::mount_err(name))?;
        if let Some(p) = mounts::mount_at_or_under(&after, &mp) {
            return Err(DriverError::StillMounted {
                name: name.to_owned(),
                path: p.clone(),
            });
        }
        if let Err(e) = std::fs::remove_dir(&mp) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(volume = %name, path = %mp.display(), error = %e, "cannot remove mountpoint dir");
            }
        }
        Ok(())
    }
}

/// Creates the roots if missing, resolves them, and checks they are
/// distinct and not nested.
fn canonical_tiers(t: Tiers) -> Result<Tiers, DriverError> {
    let name = &t.archive_dir_name;
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 255
    {
        return Err(DriverError::Config(format!(
            "archive dir name {name:?} must be one path component"
        )));
    }
    let roots = [
        ("primary root", &t.primary_root),
        ("archive root", &t.archive_root),
        ("mount root", &t.mount_root),
    ];
    // Checked before anything is created (bad configuration changes
    // nothing), and again once the directories exist.
    let mut planned = Vec::new();
    for (what, p) in roots {
        let r = resolve_planned(p)
            .map_err(|e| DriverError::Config(format!("{what} {}: {e}", p.display())))?;
        planned.push((what, r));
    }
    check_disjoint(&planned)?;
    let mut out = Vec::new();
    for (what, p) in roots {
        std::fs::create_dir_all(p)
            .and_then(|()| p.canonicalize())
            .map(|c| out.push((what, c)))
            .map_err(|e| DriverError::Config(format!("{what} {}: {e}", p.display())))?;
    }
    check_disjoint(&out)?;
    let mut it = out.into_iter().map(|(_, p)| p);
    Ok(Tiers {
        primary_root: it.next().expect("three roots"),
        archive_root: it.next().expect("three roots"),
        mount_root: it.next().expect("three roots"),
        archive_dir_name: t.archive_dir_name,
    })
}

fn check_disjoint(roots: &[(&str, PathBuf)]) -> Result<(), DriverError> {
    for (i, (wa, a)) in roots.iter().enumerate() {
        for (wb, b) in roots.iter().skip(i + 1) {
            if a.starts_with(b) || b.starts_with(a) {
                return Err(DriverError::Config(format!(
                    "{wa} {} and {wb} {} overlap",
                    a.display(),
                    b.display()
                )));
            }
        }
    }
    Ok(())
}

/// Where `p` will be once created: its longest existing ancestor resolved
/// (symlinks followed), plus the missing components, which must be plain
/// names.
fn resolve_planned(p: &Path) -> std::io::Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut missing = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = cur.canonicalize() {
            let mut out = c;
            for comp in missing.iter().rev() {
                out.push(comp);
            }
            return Ok(out);
        }
        match (cur.file_name(), cur.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name.to_owned());
                cur = parent;
            }
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "'..' in the part of the path that does not exist yet",
                ))
            }
        }
    }
}

/// `mkdir`; `Ok(false)` if a real directory is already there. A symlink
/// (which a container could plant) is an error: mounts must never follow
/// one out of the tiers.
fn make_dir(path: &Path) -> std::io::Result<bool> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && path.symlink_metadata().is_ok_and(|m| m.is_dir()) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn remove_new_dir(dir: Option<&Path>) {
    if let Some(d) = dir {
        // Just created by us: at most its owner record inside.
        let _ = std::fs::remove_file(d.join(index::VOLUME_ID_FILE));
        if let Err(e) = std::fs::remove_dir(d) {
            tracing::warn!(path = %d.display(), error = %e, "cannot remove new archive dir");
        }
    }
}

/// Applies the volume's uid/gid/mode to `path`; a new directory without a
/// `mode` gets 0755 whatever the umask.
fn apply_owner_mode(
    sys: &dyn Syscalls,
    path: &Path,
    o: &VolumeOptions,
    new: bool,
) -> std::io::Result<()> {
    if o.uid.is_some() || o.gid.is_some() {
        sys.chown(path, o.uid, o.gid)?;
    }
    match (o.mode, new) {
        (Some(mode), _) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        (None, true) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)),
        (None, false) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::mounts::fake::{Call, RecordingSyscalls};

    struct Fixture {
        _dir: tempfile::TempDir,
        tiers: Tiers,
        sys: Arc<RecordingSyscalls>,
        driver: Driver,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tiers = Tiers {
            primary_root: dir.path().join("primary"),
            archive_root: dir.path().join("archive"),
            mount_root: dir.path().join("mnt"),
            archive_dir_name: "archived".into(),
        };
        let sys = Arc::new(RecordingSyscalls::default());
        let driver = Driver::open(tiers.clone(), sys.clone()).unwrap();
        let tiers = driver.tiers().clone();
        Fixture {
            _dir: dir,
            tiers,
            sys,
            driver,
        }
    }

    impl Fixture {
        fn reopen(&mut self) {
            self.driver = Driver::open(self.tiers.clone(), self.sys.clone()).unwrap();
        }
    }

    fn opts(f: impl FnOnce(&mut VolumeOptions)) -> VolumeOptions {
        let mut o = VolumeOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn purging_a_removed_volume_does_not_block_other_volumes() {
        let f = fixture();
        f.driver.create("a", VolumeOptions::default()).unwrap();
        f.driver.create("b", VolumeOptions::default()).unwrap();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        // Remove reads the mount table twice: the second read is the purge.
        *f.sys.hold_mount_points.lock().unwrap() = Some((2, entered_tx, release_rx));
        let driver = &f.driver;
        std::thread::scope(|s| {
            let slow = s.spawn(|| driver.remove("a"));
            entered
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let (done_tx, done) = std::sync::mpsc::channel();
            s.spawn(move || done_tx.send(driver.remove("b")).unwrap());
            let other = done.recv_timeout(std::time::Duration::from_secs(5));
            release.send(()).unwrap();
            slow.join().unwrap().unwrap();
            other
                .expect("remove of b waited for the purge of a")
                .unwrap();
        });
        assert!(f.driver.list().is_empty());
        assert!(!f.tiers.archive_root.join("a").exists());
    }

    #[test]
    fn create_lays_out_both_tiers() {
        let f = fixture();
        f.driver
            .create("v", opts(|o| o.mode = Some(0o750)))
            .unwrap();
        let data = f.tiers.primary_root.join("v/data");
        assert!(data.join("archived").is_dir());
        assert!(f.tiers.archive_root.join("v").is_dir());
        assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o7777, 0o750);
        assert_eq!(
            std::fs::metadata(f.tiers.archive_root.join("v"))
                .unwrap()
                .mode()
                & 0o7777,
            0o750
        );
        assert!(f.sys.calls().is_empty(), "create mounts nothing");
        // Same options again: accepted; different: refused.
        f.driver
            .create("v", opts(|o| o.mode = Some(0o750)))
            .unwrap();
        assert!(matches!(
            f.driver.create("v", VolumeOptions::default()),
            Err(DriverError::Exists(_))
        ));
    }

    #[test]
    fn uid_gid_apply_to_root_and_archive() {
        let f = fixture();
        f.driver
            .create(
                "v",
                opts(|o| {
                    o.uid = Some(1234);
                    o.gid = Some(4321);
                }),
            )
            .unwrap();
        for p in [
            f.tiers.primary_root.join("v/data"),
            f.tiers.archive_root.join("v"),
        ] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (1234, 4321), "{p:?}");
        }
    }

    #[test]
    fn mounts_are_counted_per_id_and_archived_goes_first() {
        let f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        let mp = f.driver.mount("v", "a").unwrap();
        assert_eq!(mp, f.tiers.mount_root.join("v"));
        let amp = mp.join("archived");
        assert_eq!(
            f.sys.take_calls(),
            vec![
                Call::Bind(f.tiers.primary_root.join("v/data"), mp.clone()),
                Call::Bind(f.tiers.archive_root.join("v"), amp.clone()),
            ]
        );
        // Same ID twice (docker cp) and a second ID: counted, not mounted again.
        f.driver.mount("v", "a").unwrap();
        f.driver.mount("v", "b").unwrap();
        assert!(f.sys.take_calls().is_empty());
        assert_eq!(f.driver.counts().active_mounts, 3);
        assert_eq!(f.driver.path("v").unwrap(), mp.display().to_string());
        f.driver.unmount("v", "a").unwrap();
        f.driver.unmount("v", "b").unwrap();
        assert!(f.sys.take_calls().is_empty());
        assert!(matches!(
            f.driver.unmount("v", "b"),
            Err(DriverError::UnknownId { .. })
        ));
        f.driver.unmount("v", "a").unwrap();
        assert_eq!(
            f.sys.take_calls(),
            vec![Call::Unmount(amp), Call::Unmount(mp.clone())]
        );
        assert!(!mp.exists(), "mountpoint dir removed");
        assert_eq!(f.driver.path("v").unwrap(), "");
    }

    #[test]
    fn failed_archive_bind_undoes_the_root_bind_and_counts_nothing() {
        let f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        *f.sys.fail_bind_on.lock().unwrap() = Some("archived".into());
        let err = f.driver.mount("v", "a").unwrap_err();
        assert!(matches!(err, DriverError::Mount { .. }), "{err}");
        assert!(f.sys.mounted().is_empty());
        assert_eq!(f.driver.counts().active_mounts, 0);
        assert_eq!(f.driver.store.load("v").unwrap().active_mounts(), 0);
    }

    #[test]
    fn busy_unmount_is_retried_then_detached_and_the_reference_dropped() {
        let mut f = fixture();
        f.driver.opts.busy_retry_interval = std::time::Duration::from_millis(1);
        f.driver.create("v", VolumeOptions::default()).unwrap();
        let mp = f.driver.mount("v", "a").unwrap();
        f.sys.take_calls();
        // Busy twice, then free: retried, no lazy detach.
        *f.sys.fail_unmount_on.lock().unwrap() = Some("archived".into());
        *f.sys.busy_unmounts_left.lock().unwrap() = Some(2);
        f.driver.unmount("v", "a").unwrap();
        assert_eq!(
            f.sys.take_calls(),
            vec![
                Call::Unmount(mp.join("archived")),
                Call::Unmount(mp.clone())
            ]
        );
        assert_eq!(f.driver.counts().lazy_unmounts, 0);
        // Busy for good: detached lazily, the reference dropped, counted.
        f.driver.mount("v", "a").unwrap();
        f.sys.take_calls();
        *f.sys.busy_unmounts_left.lock().unwrap() = None;
        f.driver.unmount("v", "a").unwrap();
        assert_eq!(
            f.sys.take_calls(),
            vec![Call::Detach(mp.join("archived")), Call::Unmount(mp.clone())]
        );
        assert_eq!(f.driver.counts().lazy_unmounts, 1);
        assert_eq!(f.driver.store.load("v").unwrap().active_mounts(), 0);
        assert!(f.sys.mounted().is_empty());
        f.driver.remove("v").unwrap();
    }

    #[test]
    fn remove_refuses_mounted_and_deletes_both_tiers() {
        let f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        f.driver.mount("v", "a").unwrap();
        assert!(matches!(
            f.driver.remove("v"),
            Err(DriverError::InUse { mounts: 1, .. })
        ));
        f.driver.unmount("v", "a").unwrap();
        std::fs::write(f.tiers.archive_root.join("v/old"), b"x").unwrap();
        f.driver.remove("v").unwrap();
        assert!(!f.tiers.primary_root.join("v").exists());
        assert!(!f.tiers.archive_root.join("v").exists());
        assert!(matches!(f.driver.get("v"), Err(DriverError::NotFound(_))));
        assert!(matches!(
            f.driver.remove("v"),
            Err(DriverError::NotFound(_))
        ));
    }

    #[test]
    fn remove_refuses_an_out_of_band_mount() {
        let f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        let stray = f.tiers.archive_root.join("v");
        f.sys.table.lock().unwrap().push(stray.clone());
        let err = f.driver.remove("v").unwrap_err();
        assert!(
            matches!(&err, DriverError::StillMounted { path, .. } if path == &stray),
            "{err}"
        );
        assert!(f.tiers.primary_root.join("v/data").is_dir());
    }

    #[test]
    fn keep_archive_is_reattached() {
        let f = fixture();
        f.driver
            .create("v", opts(|o| o.keep_archive = true))
            .unwrap();
        std::fs::write(f.tiers.archive_root.join("v/snap"), b"x").unwrap();
        std::fs::write(f.tiers.primary_root.join("v/data/log"), b"y").unwrap();
        f.driver.remove("v").unwrap();
        assert!(!f.tiers.primary_root.join("v").exists());
        assert_eq!(
            std::fs::read(f.tiers.archive_root.join("v/snap")).unwrap(),
            b"x"
        );
        f.driver.create("v", VolumeOptions::default()).unwrap();
        assert_eq!(
            std::fs::read(f.tiers.archive_root.join("v/snap")).unwrap(),
            b"x"
        );
        assert!(!f.tiers.primary_root.join("v/data/log").exists());
    }

    #[test]
    fn archive_of_mounts_the_other_archive_alone() {
        let f = fixture();
        assert!(matches!(
            f.driver
                .create("b", opts(|o| o.archive_of = Some("v".into()))),
            Err(DriverError::ArchiveOfMissing { .. })
        ));
        f.driver.create("v", VolumeOptions::default()).unwrap();
        f.driver
            .create("b", opts(|o| o.archive_of = Some("v".into())))
            .unwrap();
        assert!(matches!(
            f.driver
                .create("c", opts(|o| o.archive_of = Some("b".into()))),
            Err(DriverError::ArchiveOfChain { .. })
        ));
        assert!(!f.tiers.archive_root.join("b").exists());
        let mp = f.driver.mount("b", "x").unwrap();
        assert_eq!(
            f.sys.take_calls(),
            vec![Call::Bind(f.tiers.archive_root.join("v"), mp)]
        );
        let st = f.driver.get("b").unwrap().status.unwrap();
        assert_eq!(st["primary_path"], Value::Null);
        assert_eq!(
            st["archive_path"],
            json!(f.tiers.archive_root.join("v").display().to_string())
        );
        assert!(matches!(
            f.driver.remove("v"),
            Err(DriverError::Referenced { .. })
        ));
        f.driver.unmount("b", "x").unwrap();
        f.driver.remove("b").unwrap();
        assert!(
            f.tiers.archive_root.join("v").is_dir(),
            "target's archive kept"
        );
        f.driver.remove("v").unwrap();
    }

    #[test]
    fn state_survives_reopen_and_mounts_are_recognised() {
        let mut f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        f.driver.create("w", VolumeOptions::default()).unwrap();
        f.driver.mount("v", "a").unwrap();
        f.driver.mount("v", "a").unwrap();
        f.sys.take_calls();
        f.reopen();
        assert!(f.sys.take_calls().is_empty(), "held mount not doubled");
        let names: Vec<_> = f.driver.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names, vec!["v", "w"]);
        assert_eq!(
            f.driver.get("v").unwrap().status.unwrap()["active_mounts"],
            json!(2)
        );
        f.driver.unmount("v", "a").unwrap();
        f.driver.unmount("v", "a").unwrap();
        assert_eq!(f.sys.take_calls().len(), 2);
        assert!(f.sys.mounted().is_empty());
    }

    #[test]
    fn references_of_another_boot_are_dropped() {
        let mut f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        f.driver.mount("v", "a").unwrap();
        f.reopen();
        assert_eq!(f.driver.counts().active_mounts, 1, "same boot: kept");
        // Reboot: the mount table is empty and the boot id changed.
        f.sys.table.lock().unwrap().clear();
        *f.sys.boot.lock().unwrap() = "other-boot".into();
        f.sys.take_calls();
        f.reopen();
        assert_eq!(f.driver.counts().active_mounts, 0);
        assert_eq!(f.driver.store.load("v").unwrap().active_mounts(), 0);
        assert!(
            f.sys.take_calls().is_empty(),
            "nothing mounted for stale references"
        );
        f.driver.remove("v").unwrap();
    }

    #[test]
    fn reopen_remounts_missing_and_unmounts_unreferenced() {
        let mut f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        f.driver.create("w", VolumeOptions::default()).unwrap();
        f.driver.mount("v", "a").unwrap();
        // The mount namespace lost v's mounts, and w is mounted with no reference.
        f.sys.table.lock().unwrap().clear();
        let wmp = f.tiers.mount_root.join("w");
        std::fs::create_dir_all(wmp.join("archived")).unwrap();
        f.sys.table.lock().unwrap().push(wmp.clone());
        f.sys.table.lock().unwrap().push(wmp.join("archived"));
        f.sys.take_calls();
        f.reopen();
        let vmp = f.tiers.mount_root.join("v");
        let mut mounted = f.sys.mounted();
        mounted.sort();
        assert_eq!(mounted, vec![vmp.clone(), vmp.join("archived")]);
        assert_eq!(f.driver.counts().active_mounts, 1);
    }

    #[test]
    fn interrupted_removal_is_finished_on_open() {
        let mut f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        f.driver
            .create("k", opts(|o| o.keep_archive = true))
            .unwrap();
        // Crash right after the rename into the trash.
        f.driver.store.move_to_trash("v").unwrap();
        f.driver.store.move_to_trash("k").unwrap();
        f.reopen();
        assert!(!f.tiers.archive_root.join("v").exists());
        assert!(f.tiers.archive_root.join("k").is_dir());
        assert_eq!(f.driver.store.leftovers().unwrap(), (vec![], vec![]));
        assert!(f.driver.list().is_empty());
    }

    #[test]
    fn damaged_metadata_refuses_the_volume_only() {
        let mut f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        f.driver.create("w", VolumeOptions::default()).unwrap();
        std::fs::write(f.tiers.primary_root.join("v/volume.json"), b"{garbage").unwrap();
        f.reopen();
        assert!(matches!(
            f.driver.get("v"),
            Err(DriverError::Damaged { .. })
        ));
        assert!(matches!(
            f.driver.create("v", VolumeOptions::default()),
            Err(DriverError::Damaged { .. })
        ));
        assert!(matches!(
            f.driver.mount("v", "a"),
            Err(DriverError::Damaged { .. })
        ));
        assert_eq!(f.driver.list().len(), 1);
        assert_eq!(
            std::fs::read(f.tiers.primary_root.join("v/volume.json")).unwrap(),
            b"{garbage"
        );
    }

    #[test]
    fn out_of_band_delete_forgets_the_volume() {
        let f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        std::fs::remove_dir_all(f.tiers.primary_root.join("v")).unwrap();
        assert!(f.driver.list().is_empty());
        assert!(matches!(f.driver.get("v"), Err(DriverError::NotFound(_))));
        assert_eq!(f.driver.counts().volumes, 0);
        // And it can be created again, with other options.
        f.driver
            .create("v", opts(|o| o.mode = Some(0o700)))
            .unwrap();
        assert_eq!(
            f.driver.get("v").unwrap().status.unwrap()["mode"],
            json!("0700")
        );
    }

    #[test]
    fn a_planted_symlink_is_never_mounted_over() {
        let f = fixture();
        f.driver.create("v", VolumeOptions::default()).unwrap();
        let under = f.tiers.primary_root.join("v/data/archived");
        std::fs::remove_dir(&under).unwrap();
        let elsewhere = f.tiers.primary_root.join("v/elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &under).unwrap();
        let err = f.driver.mount("v", "a").unwrap_err();
        assert!(matches!(err, DriverError::Io { op: "create", .. }), "{err}");
        assert!(f.sys.mounted().is_empty());
        assert_eq!(f.driver.counts().active_mounts, 0);
    }

    #[test]
    fn foreign_directory_is_not_taken_over() {
        let f = fixture();
        std::fs::create_dir(f.tiers.primary_root.join("x")).unwrap();
        // Not loaded (no metadata) ... and not overwritten.
        let err = f.driver.create("x", VolumeOptions::default()).unwrap_err();
        assert!(matches!(err, DriverError::NotTiered { .. }), "{err}");
        assert!(f.driver.list().is_empty());
    }

    #[test]
    fn bad_tier_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSyscalls::default());
        let nested = Tiers {
            primary_root: dir.path().join("p"),
            archive_root: dir.path().join("p/a"),
            mount_root: dir.path().join("m"),
            archive_dir_name: "archived".into(),
        };
        assert!(matches!(
            Driver::open(nested, sys.clone()),
            Err(DriverError::Config(_))
        ));
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "a refused configuration creates nothing"
        );
        let bad_name = Tiers {
            primary_root: dir.path().join("p"),
            archive_root: dir.path().join("a"),
            mount_root: dir.path().join("m"),
            archive_dir_name: "../x".into(),
        };
        assert!(matches!(
            Driver::open(bad_name, sys),
            Err(DriverError::Config(_))
        ));
    }
}
