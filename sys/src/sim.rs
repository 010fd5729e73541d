//! [`SimFs`]: an in-memory simulated disk behind the file seam that keeps
//! what was written but not yet synced apart from what was synced, and at a
//! simulated power cut ([`SimFs::crash`]) keeps, drops or tears a seeded
//! subset of the unsynced state. Work then goes on from what survived, as
//! after a reboot. In the spirit of TigerBeetle's `src/testing/storage.zig`.
//!
//! # The durability model
//!
//! Every file and directory has a *current* state (what reads see) and a
//! *durable* state (what a power cut cannot take away).
//!
//! File contents are kept in pages of [`SimOptions::page_bytes`] (4 KiB, the
//! unit the page cache writes back). A write, `set_len` or `fallocate` changes
//! the current state only and marks the pages it touched dirty; a change of
//! the size is recorded too.
//!
//! - `fdatasync` and `fsync` make the file's data *and its size* durable
//!   (fdatasync flushes the metadata needed to read the data back, which is
//!   the size; the model has no other metadata, so the two are the same).
//!   Neither makes the file's name durable. The modification time (set by
//!   writes and size changes from [`SimFs::set_clock`] or the real clock,
//!   and by `set_times`) is durable at creation and after `fsync`, not
//!   `fdatasync`; directories have none ([`Stat::modified`] is None).
//! - A directory entry change (create, `create_dir`, `rename`,
//!   `rename_noreplace`, `hard_link`, `unlink`) is a pending *directory
//!   operation*, durable only after `fsync_dir` of a directory it changes an
//!   entry of (a rename between two directories changes one in each, and is
//!   made durable by the fsync of either, whole). `fsync_dir` also makes
//!   durable the earlier pending operations it depends on: those that changed
//!   one of the same entries (`(directory, name)`), transitively — a
//!   journaled file system commits in order, and this keeps every surviving
//!   state one that a real file system can reach. A directory's own entries
//!   are durable apart from its name in its parent: a file in a directory
//!   whose creation was not made durable is lost with the directory.
//! - A file (or directory) that no durable name reaches is gone after a
//!   crash, whatever was synced of its data.
//!
//! At [`SimFs::crash`] (a power cut), from the seed:
//! - each dirty page is *kept* (the new data), *old* (the durable data;
//!   zeros where nothing was durable: past the durable size, in a hole or in
//!   preallocated space), *zeroed* (the bytes written since the last sync
//!   read as zeros, as from an unwritten extent; bytes synced and not
//!   rewritten since are never lost), or *torn* (a prefix of
//!   [`SimOptions::sector_bytes`]-sized sectors of the new data over the old). A crash picks either an
//!   in-order writeback (the pages in the order they were first dirtied, up
//!   to a random cut, the page at the cut maybe torn) or independent
//!   outcomes with a keep probability drawn per crash, so prefixes, gaps,
//!   later pages without earlier ones, torn sectors and zeros all happen;
//! - a file's size is the durable one, one it had since, or the current one;
//! - each pending directory operation is kept or lost as a whole, never kept
//!   without the earlier ones it depends on (a rename happened or did not);
//!   in-order crashes keep a prefix of them.
//!
//! Handles opened before the crash then fail with EIO. The same state and
//! seed always give the same result (every map is ordered).
//!
//! # Failures
//!
//! [`SimFs::add_rule`] / [`SimFs::inject`] take the [`Rule`]s of
//! [`crate::FaultFs`] and fail calls the same way (EIO, ENOSPC, EXDEV, short
//! writes), with one difference that matters: a failed `fdatasync`/`fsync`
//! is a *writeback error* as in Linux — the dirty pages' fate is decided
//! there and then (as at a crash), the pages are marked clean, reads still
//! see the new data, and a later fsync succeeds although a crash can show the
//! data lost. Other failed calls change nothing. The disk also fills up: a
//! write or fallocate past [`SimOptions::capacity_bytes`] is ENOSPC.
//!
//! ```
//! use std::path::Path;
//! use tiered_sys::{Fs, FsFile, OpenMode, SimFs};
//! let sim = SimFs::new();
//! sim.create_dir_all_durable(Path::new("/data")).unwrap();
//! let fs = sim.handle();
//! let f = fs.open(Path::new("/data/log"), OpenMode::CreateNew).unwrap();
//! f.write_all_at(b"acknowledged", 0).unwrap();
//! f.fdatasync().unwrap();
//! fs.fsync_dir(Path::new("/data")).unwrap();
//! f.write_all_at(b" maybe", 12).unwrap();
//! drop(f);
//! sim.crash(7);
//! let f = fs.open(Path::new("/data/log"), OpenMode::Read).unwrap();
//! let mut b = [0u8; 12];
//! f.read_exact_at(&mut b, 0).unwrap();
//! assert_eq!(&b, b"acknowledged");
//! ```

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::fault::{name_ends_with, Fault, Op, Rule};
use crate::fs::Space;
use crate::seam::{Fs, FsFile, OpenMode, Stat};

type Ino = u64;
const ROOT: Ino = 1;

/// The shape of a [`SimFs`].
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The unit of writeback: each dirty page has one fate at a crash.
    pub page_bytes: usize,
    /// The unit a torn page is torn at (a divisor of `page_bytes`; equal to
    /// it: no torn pages).
    pub sector_bytes: usize,
    /// Writes and fallocate past this many bytes of file data are ENOSPC.
    pub capacity_bytes: u64,
    /// `fallocate` works (`Ok(true)`); false: `Ok(false)` as on file systems
    /// without it.
    pub fallocate: bool,
    /// Seeds the fate of dirty pages at an injected writeback error.
    pub seed: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            page_bytes: 4096,
            sector_bytes: 512,
            capacity_bytes: 1 << 30,
            fallocate: true,
            seed: 0,
        }
    }
}

/// What a [`SimFs::crash`] did (for tests and failure messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// The seed of the crash.
    pub seed: u64,
    /// Pages writeback took in order (up to a cut) rather than independently.
    pub in_order: bool,
    /// Dirty pages that kept their new data.
    pub pages_kept: u64,
    /// Dirty pages back to their durable data.
    pub pages_old: u64,
    /// Dirty pages that read as zeros.
    pub pages_zeroed: u64,
    /// Dirty pages with a prefix of sectors of new data over the old.
    pub pages_torn: u64,
    /// Files whose unsynced size survived.
    pub sizes_kept: u64,
    /// Files whose size went back to the durable one or an intermediate one.
    pub sizes_lost: u64,
    /// Pending directory operations that survived.
    pub dir_ops_kept: u64,
    /// Pending directory operations lost.
    pub dir_ops_lost: u64,
    /// Files no durable name reached any more, dropped.
    pub files_lost: u64,
}

/// A small seeded generator (splitmix64): no dependency, same numbers
/// everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next() % n
    }
    fn percent(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// A file's bytes: its size and its non-zero pages (a missing page reads as
/// zeros). Bytes past `len` are always zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Content {
    len: u64,
    pages: BTreeMap<u64, Page>,
}

/// A page's bytes, shared between the current and the durable state until
/// one of them changes (so a sync or a crash copies no data).
type Page = Arc<Vec<u8>>;

impl Content {
    fn read(&self, buf: &mut [u8], offset: u64, pb: u64) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = (buf.len() as u64).min(self.len - offset) as usize;
        let mut done = 0;
        while done < n {
            let pos = offset + done as u64;
            let (idx, within) = (pos / pb, (pos % pb) as usize);
            let take = (pb as usize - within).min(n - done);
            match self.pages.get(&idx) {
                Some(p) => buf[done..done + take].copy_from_slice(&p[within..within + take]),
                None => buf[done..done + take].fill(0),
            }
            done += take;
        }
        n
    }

    /// Writes `buf` at `offset`; the pages touched are `first..=last`.
    fn write(&mut self, buf: &[u8], offset: u64, pb: u64) {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (idx, within) = (pos / pb, (pos % pb) as usize);
            let take = (pb as usize - within).min(buf.len() - done);
            let page = Arc::make_mut(
                self.pages
                    .entry(idx)
                    .or_insert_with(|| Arc::new(vec![0u8; pb as usize])),
            );
            page[within..within + take].copy_from_slice(&buf[done..done + take]);
            done += take;
        }
        self.len = self.len.max(offset + buf.len() as u64);
    }

    /// Sets the size; bytes past it are dropped (read as zeros if it grows
    /// again).
    fn set_len(&mut self, len: u64, pb: u64) {
        drop(self.pages.split_off(&len.div_ceil(pb)));
        if !len.is_multiple_of(pb) {
            if let Some(p) = self.pages.get_mut(&(len / pb)) {
                Arc::make_mut(p)[(len % pb) as usize..].fill(0);
            }
        }
        self.len = len;
    }
}

/// A page changed since the last sync.
#[derive(Debug, Clone)]
struct Dirty {
    /// The order it was first changed in (writeback order).
    seq: u64,
    /// The byte ranges (in the page) written or zeroed since the last sync.
    written: Vec<(usize, usize)>,
}

impl Dirty {
    fn add(&mut self, start: usize, end: usize) {
        self.written.push((start, end));
        if self.written.len() > 16 {
            self.written.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.written.len());
            for (s, e) in self.written.drain(..) {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            self.written = merged;
        }
    }
}

#[derive(Debug, Default)]
struct FileNode {
    durable: Content,
    current: Content,
    /// Pages changed since the last sync.
    dirty: BTreeMap<u64, Dirty>,
    /// The sizes the file took since the last sync, in order.
    lens: Vec<u64>,
    /// Names in the current namespace.
    nlink: u32,
    /// Open handles.
    opens: u32,
    /// Modification time (set by writes, size changes and `set_times`).
    mtime: Option<SystemTime>,
    /// The modification time a crash leaves: the one at creation or at the
    /// last fsync (fdatasync does not make it durable).
    durable_mtime: Option<SystemTime>,
}

impl FileNode {
    fn set_len(&mut self, len: u64, pb: u64, seq: &mut u64) {
        let old = self.current.len;
        if len < old {
            let first = len / pb;
            let mut touched: Vec<u64> =
                self.current.pages.range(first..).map(|(i, _)| *i).collect();
            touched.extend(self.durable.pages.range(first..).map(|(i, _)| *i));
            for i in touched {
                let start = if i == first { (len % pb) as usize } else { 0 };
                self.mark(i, start, pb as usize, seq);
            }
        }
        self.current.set_len(len, pb);
        if len != old {
            self.lens.push(len);
        }
    }

    /// Bytes `start..end` of `page` changed.
    fn mark(&mut self, page: u64, start: usize, end: usize, seq: &mut u64) {
        self.dirty
            .entry(page)
            .or_insert_with(|| {
                *seq += 1;
                Dirty {
                    seq: *seq,
                    written: Vec::new(),
                }
            })
            .add(start, end);
    }

    /// fdatasync/fsync: the current data and size become durable (and with
    /// fsync the modification time).
    fn sync(&mut self, with_times: bool) {
        if with_times {
            self.durable_mtime = self.mtime;
        }
        for idx in std::mem::take(&mut self.dirty).into_keys() {
            match self.current.pages.get(&idx) {
                Some(p) => self.durable.pages.insert(idx, p.clone()),
                None => self.durable.pages.remove(&idx),
            };
        }
        self.durable.len = self.current.len;
        self.lens.clear();
    }

    /// What survives of this file at a power cut (or a writeback error).
    fn resolve(&self, plan: Plan, rng: &mut Rng, o: &SimOptions, r: &mut CrashReport) -> Content {
        let pb = o.page_bytes as u64;
        let mut out = self.durable.clone();
        let mut order: Vec<(u64, u64)> = self.dirty.iter().map(|(i, d)| (d.seq, *i)).collect();
        order.sort_unstable();
        let cut = if plan.in_order {
            rng.below(order.len() as u64 + 1) as usize
        } else {
            0
        };
        let sectors = (o.page_bytes / o.sector_bytes) as u64;
        for (k, &(_, idx)) in order.iter().enumerate() {
            let fate = if plan.in_order {
                if k < cut {
                    Fate::Kept
                } else if k == cut && rng.percent(50) {
                    Fate::Torn
                } else {
                    Fate::Old
                }
            } else if rng.percent(plan.keep_pct) {
                Fate::Kept
            } else {
                match rng.below(4) {
                    0 | 1 => Fate::Old,
                    2 => Fate::Zeroed,
                    _ => Fate::Torn,
                }
            };
            let new = self.current.pages.get(&idx);
            match fate {
                Fate::Kept => {
                    r.pages_kept += 1;
                    match new {
                        Some(p) => out.pages.insert(idx, p.clone()),
                        None => out.pages.remove(&idx),
                    };
                }
                Fate::Zeroed => {
                    // The bytes written since the sync read as zeros (as an
                    // unwritten extent does); the others keep durable data.
                    r.pages_zeroed += 1;
                    if let Some(page) = out.pages.get_mut(&idx) {
                        let page = Arc::make_mut(page);
                        for &(s, e) in &self.dirty[&idx].written {
                            page[s..e].fill(0);
                        }
                    }
                }
                Fate::Torn if sectors > 1 => {
                    r.pages_torn += 1;
                    let keep = (1 + rng.below(sectors - 1)) as usize * o.sector_bytes;
                    let page = Arc::make_mut(
                        out.pages
                            .entry(idx)
                            .or_insert_with(|| Arc::new(vec![0u8; o.page_bytes])),
                    );
                    match new {
                        Some(p) => page[..keep].copy_from_slice(&p[..keep]),
                        None => page[..keep].fill(0),
                    }
                }
                Fate::Torn | Fate::Old => r.pages_old += 1,
            }
        }
        let len = match self.lens.split_last() {
            None => self.durable.len,
            Some((&last, earlier)) => {
                let keep = if plan.in_order {
                    cut == order.len() || rng.percent(50)
                } else {
                    rng.percent(plan.keep_pct)
                };
                if keep || last == self.durable.len {
                    r.sizes_kept += 1;
                    last
                } else {
                    r.sizes_lost += 1;
                    match rng.below(earlier.len() as u64 + 1) as usize {
                        0 => self.durable.len,
                        i => earlier[i - 1],
                    }
                }
            }
        };
        // Pages kept past the surviving size are cut off with it.
        out.set_len(len, pb);
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    Kept,
    Old,
    Zeroed,
    Torn,
}

/// How one crash (or writeback error) decides.
#[derive(Debug, Clone, Copy)]
struct Plan {
    in_order: bool,
    keep_pct: u64,
}

impl Plan {
    fn draw(rng: &mut Rng) -> Plan {
        Plan {
            in_order: rng.below(3) == 0,
            keep_pct: rng.below(101),
        }
    }
}

/// A change of directory entries, pending until an fsync of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirOp {
    /// A new name for `ino` (create, create_dir, hard_link); a new directory
    /// when `is_dir`. A hard link depends on the entry it was made from
    /// (`source`).
    Link {
        dir: Ino,
        name: OsString,
        ino: Ino,
        is_dir: bool,
        source: Option<(Ino, OsString)>,
    },
    Unlink {
        dir: Ino,
        name: OsString,
    },
    /// Moves an entry, replacing what `to` named.
    Rename {
        from_dir: Ino,
        from: OsString,
        to_dir: Ino,
        to: OsString,
    },
}

impl DirOp {
    fn entries(&self) -> [Option<(Ino, &OsStr)>; 2] {
        match self {
            DirOp::Link {
                dir, name, source, ..
            } => [
                Some((*dir, name.as_os_str())),
                source.as_ref().map(|(d, n)| (*d, n.as_os_str())),
            ],
            DirOp::Unlink { dir, name } => [Some((*dir, name.as_os_str())), None],
            DirOp::Rename {
                from_dir,
                from,
                to_dir,
                to,
            } => [
                Some((*from_dir, from.as_os_str())),
                Some((*to_dir, to.as_os_str())),
            ],
        }
    }

    fn changes_dir(&self, d: Ino) -> bool {
        self.entries().iter().flatten().any(|(dir, _)| *dir == d)
    }

    /// Both change one entry: the later depends on the earlier.
    fn conflicts(&self, other: &DirOp) -> bool {
        let theirs = other.entries();
        self.entries()
            .iter()
            .flatten()
            .any(|e| theirs.iter().flatten().any(|t| t == e))
    }
}

/// Directories: inode -> name -> inode. An inode is a directory iff it has a
/// map here.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Namespace {
    dirs: BTreeMap<Ino, BTreeMap<OsString, Ino>>,
}

impl Namespace {
    fn new() -> Namespace {
        Namespace {
            dirs: BTreeMap::from([(ROOT, BTreeMap::new())]),
        }
    }

    /// Applies `op`; returns the inode whose name went away, if any.
    fn apply(&mut self, op: &DirOp) -> Option<Ino> {
        match op {
            DirOp::Link {
                dir,
                name,
                ino,
                is_dir,
                ..
            } => {
                if *is_dir {
                    self.dirs.entry(*ino).or_default();
                }
                self.dirs
                    .entry(*dir)
                    .or_default()
                    .insert(name.clone(), *ino)
            }
            DirOp::Unlink { dir, name } => self.dirs.get_mut(dir).and_then(|d| d.remove(name)),
            DirOp::Rename {
                from_dir,
                from,
                to_dir,
                to,
            } => {
                let ino = self.dirs.get_mut(from_dir).and_then(|d| d.remove(from));
                debug_assert!(ino.is_some(), "a rename applied without its source");
                let ino = ino?;
                self.dirs
                    .entry(*to_dir)
                    .or_default()
                    .insert(to.clone(), ino)
            }
        }
    }

    /// Every inode a name reaches from the root.
    fn reachable(&self) -> std::collections::BTreeSet<Ino> {
        let mut seen = std::collections::BTreeSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(d) = todo.pop() {
            for ino in self.dirs.get(&d).into_iter().flat_map(|m| m.values()) {
                if seen.insert(*ino) && self.dirs.contains_key(ino) {
                    todo.push(*ino);
                }
            }
        }
        seen
    }
}

fn names(path: &Path) -> io::Result<Vec<&OsStr>> {
    let mut v = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => v.push(n),
            Component::ParentDir | Component::Prefix(_) => return Err(errno(libc::EINVAL)),
        }
    }
    Ok(v)
}

#[derive(Debug)]
struct State {
    opts: SimOptions,
    boot: u64,
    next_ino: Ino,
    seq: u64,
    current: Namespace,
    durable: Namespace,
    pending: Vec<DirOp>,
    files: BTreeMap<Ino, FileNode>,
    rules: Vec<Rule>,
    rng: Rng,
    /// A fixed time for new modification times; None: the real clock.
    clock: Option<SystemTime>,
}

impl State {
    fn now(&self) -> SystemTime {
        self.clock.unwrap_or_else(SystemTime::now)
    }

    fn fault(&mut self, op: Op, path: &Path) -> Option<Fault> {
        let i = self.rules.iter().position(|r| {
            r.op == op
                && r.name_suffix
                    .as_ref()
                    .is_none_or(|s| name_ends_with(path, s))
        })?;
        let rule = &mut self.rules[i];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        let fault = rule.fault;
        rule.times -= 1;
        if rule.times == 0 {
            self.rules.remove(i);
        }
        tracing::debug!(?op, path = %path.display(), ?fault, "simfs: injected fault");
        Some(fault)
    }

    fn fail(&mut self, op: Op, path: &Path) -> io::Result<()> {
        match self.fault(op, path) {
            None => Ok(()),
            Some(Fault::Errno(e)) => Err(errno(e)),
            Some(Fault::ShortWrite) => Err(errno(libc::EIO)),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for n in names(path)? {
            let dir = self.current.dirs.get(&ino).ok_or(errno(libc::ENOTDIR))?;
            ino = *dir.get(n).ok_or(errno(libc::ENOENT))?;
        }
        Ok(ino)
    }

    /// The directory holding `path`, and its last name.
    fn parent(&self, path: &Path) -> io::Result<(Ino, OsString)> {
        let mut v = names(path)?;
        let last = v.pop().ok_or(errno(libc::EINVAL))?;
        let mut ino = ROOT;
        for n in v {
            let dir = self.current.dirs.get(&ino).ok_or(errno(libc::ENOTDIR))?;
            ino = *dir.get(n).ok_or(errno(libc::ENOENT))?;
        }
        if !self.current.dirs.contains_key(&ino) {
            return Err(errno(libc::ENOTDIR));
        }
        Ok((ino, last.to_os_string()))
    }

    fn entry(&self, dir: Ino, name: &OsStr) -> Option<Ino> {
        self.current
            .dirs
            .get(&dir)
            .and_then(|d| d.get(name))
            .copied()
    }

    fn is_dir(&self, ino: Ino) -> bool {
        self.current.dirs.contains_key(&ino)
    }

    /// Applies a directory operation to the current namespace and queues it.
    fn dir_op(&mut self, op: DirOp) {
        if let DirOp::Link {
            ino, is_dir: false, ..
        } = &op
        {
            if let Some(f) = self.files.get_mut(ino) {
                f.nlink += 1;
            }
        }
        if let Some(gone) = self.current.apply(&op) {
            if let Some(f) = self.files.get_mut(&gone) {
                f.nlink -= 1;
            }
        }
        self.pending.push(op);
    }

    /// Makes durable the pending operations `pick` selects and the earlier
    /// ones they depend on.
    fn commit(&mut self, pick: impl Fn(&DirOp) -> bool) {
        let n = self.pending.len();
        let mut marked = vec![false; n];
        for i in (0..n).rev() {
            marked[i] = pick(&self.pending[i])
                || (i + 1..n).any(|j| marked[j] && self.pending[i].conflicts(&self.pending[j]));
        }
        let mut rest = Vec::new();
        for (op, m) in std::mem::take(&mut self.pending).into_iter().zip(marked) {
            if m {
                self.durable.apply(&op);
            } else {
                rest.push(op);
            }
        }
        self.pending = rest;
    }

    fn used_bytes(&self) -> u64 {
        let pages: usize = self
            .files
            .values()
            .filter(|f| f.nlink > 0 || f.opens > 0)
            .map(|f| f.current.pages.len())
            .sum();
        pages as u64 * self.opts.page_bytes as u64
    }

    fn free_bytes(&self) -> u64 {
        self.opts.capacity_bytes.saturating_sub(self.used_bytes())
    }

    fn crash(&mut self, seed: u64) -> CrashReport {
        let mut rng = Rng(seed);
        let plan = Plan::draw(&mut rng);
        let mut r = CrashReport {
            seed,
            in_order: plan.in_order,
            ..CrashReport::default()
        };
        // Directory operations: a prefix, or each kept with the earlier ones
        // it depends on.
        let ops = std::mem::take(&mut self.pending);
        let cut = rng.below(ops.len() as u64 + 1) as usize;
        let mut kept = vec![false; ops.len()];
        for i in 0..ops.len() {
            kept[i] = if plan.in_order {
                i < cut
            } else {
                rng.percent(plan.keep_pct) && (0..i).all(|j| kept[j] || !ops[j].conflicts(&ops[i]))
            };
        }
        for (op, k) in ops.iter().zip(&kept) {
            if *k {
                r.dir_ops_kept += 1;
                self.durable.apply(op);
            } else {
                r.dir_ops_lost += 1;
            }
        }
        let live = self.durable.reachable();
        self.durable.dirs.retain(|ino, _| live.contains(ino));
        self.current = self.durable.clone();
        // File contents.
        let files = std::mem::take(&mut self.files);
        for (ino, f) in files {
            if !live.contains(&ino) {
                r.files_lost += 1;
                continue;
            }
            let content = f.resolve(plan, &mut rng, &self.opts, &mut r);
            self.files.insert(
                ino,
                FileNode {
                    durable: content.clone(),
                    current: content,
                    mtime: f.durable_mtime,
                    durable_mtime: f.durable_mtime,
                    ..FileNode::default()
                },
            );
        }
        for names in self.current.dirs.values() {
            for ino in names.values() {
                if let Some(f) = self.files.get_mut(ino) {
                    f.nlink += 1;
                }
            }
        }
        self.boot += 1;
        tracing::debug!(?r, "simfs: power cut");
        r
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves valid data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An in-memory disk that loses unsynced state at a simulated power cut (see
/// the [module documentation](self)). Cloning shares the disk.
#[derive(Debug, Clone)]
pub struct SimFs {
    shared: Arc<Shared>,
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

impl SimFs {
    /// An empty disk (only `/`) with [`SimOptions::default`].
    pub fn new() -> SimFs {
        SimFs::with_options(SimOptions::default())
    }

    /// An empty disk (only `/`).
    pub fn with_options(opts: SimOptions) -> SimFs {
        assert!(
            opts.sector_bytes > 0 && opts.page_bytes.is_multiple_of(opts.sector_bytes),
            "sector_bytes must divide page_bytes"
        );
        let ns = Namespace::new();
        SimFs {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    rng: Rng(opts.seed),
                    opts,
                    boot: 0,
                    next_ino: ROOT + 1,
                    seq: 0,
                    current: ns.clone(),
                    durable: ns,
                    pending: Vec::new(),
                    files: BTreeMap::new(),
                    rules: Vec::new(),
                    clock: None,
                }),
            }),
        }
    }

    /// This disk as a shared `dyn Fs`.
    pub fn handle(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    /// Creates `dir` and its missing parents, durably (test setup).
    pub fn create_dir_all_durable(&self, dir: &Path) -> io::Result<()> {
        let mut path = PathBuf::from("/");
        for n in names(dir)? {
            path.push(n);
            match self.create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        self.sync_all();
        Ok(())
    }

    /// Makes everything durable (as a clean shutdown with `sync`).
    pub fn sync_all(&self) {
        let mut st = self.shared.state();
        st.commit(|_| true);
        for f in st.files.values_mut() {
            f.sync(true);
        }
    }

    /// A power cut: unsynced pages, sizes and directory operations survive
    /// or not as the seed decides (see the module documentation); then the
    /// disk holds only what survived, and handles opened before fail with
    /// EIO. Deterministic from the disk's state and `seed`.
    pub fn crash(&self, seed: u64) -> CrashReport {
        self.shared.state().crash(seed)
    }

    /// Dirty pages and pending directory operations (what a crash could
    /// lose).
    pub fn unsynced(&self) -> (u64, u64) {
        let st = self.shared.state();
        let pages = st.files.values().map(|f| f.dirty.len() as u64).sum();
        (pages, st.pending.len() as u64)
    }

    /// Every directory (`None`) and file (its current bytes) a name reaches,
    /// by path: the whole visible state, to compare.
    pub fn tree(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let st = self.shared.state();
        let pb = st.opts.page_bytes as u64;
        let mut out = BTreeMap::new();
        let mut todo = vec![(ROOT, PathBuf::from("/"))];
        while let Some((d, path)) = todo.pop() {
            for (name, ino) in &st.current.dirs[&d] {
                let p = path.join(name);
                if st.current.dirs.contains_key(ino) {
                    out.insert(p.clone(), None);
                    todo.push((*ino, p));
                } else if let Some(f) = st.files.get(ino) {
                    let mut b = vec![0u8; f.current.len as usize];
                    f.current.read(&mut b, 0, pb);
                    out.insert(p, Some(b));
                }
            }
        }
        out
    }

    /// Fails the next call of `op` (any path), once; see [`crate::FaultFs`].
    pub fn inject(&self, op: Op, fault: Fault) {
        self.add_rule(Rule::once(op, fault));
    }

    /// Adds a failure rule; rules are tried in the order added.
    pub fn add_rule(&self, rule: Rule) {
        assert!(rule.times > 0, "a rule that never fires");
        self.shared.state().rules.push(rule);
    }

    /// Removes every rule not yet spent.
    pub fn clear_rules(&self) {
        self.shared.state().rules.clear();
    }

    /// Rules not yet spent.
    pub fn pending_rules(&self) -> usize {
        self.shared.state().rules.len()
    }

    /// Modification times from now on are `time` (None: the real clock).
    pub fn set_clock(&self, time: Option<SystemTime>) {
        self.shared.state().clock = time;
    }
}

/// An open file of a [`SimFs`].
struct SimFile {
    shared: Arc<Shared>,
    ino: Ino,
    writable: bool,
    boot: u64,
    path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .finish()
    }
}

impl SimFile {
    /// The state, if this handle is from the current boot; checks `op`'s
    /// failure rules.
    fn state(&self, op: Op) -> io::Result<MutexGuard<'_, State>> {
        let mut st = self.shared.state();
        if st.boot != self.boot {
            return Err(errno(libc::EIO));
        }
        st.fail(op, &self.path)?;
        Ok(st)
    }

    fn write_locked(st: &mut State, ino: Ino, buf: &[u8], offset: u64) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pb = st.opts.page_bytes as u64;
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(errno(libc::EFBIG))?;
        let (first, last) = (offset / pb, (end - 1) / pb);
        let f = &st.files[&ino];
        let new_pages = (first..=last)
            .filter(|i| !f.current.pages.contains_key(i))
            .count() as u64;
        if new_pages * pb > st.free_bytes() {
            return Err(errno(libc::ENOSPC));
        }
        let now = st.now();
        let State { files, seq, .. } = st;
        let f = files.get_mut(&ino).expect("an open file has a node");
        let old_len = f.current.len;
        f.current.write(buf, offset, pb);
        f.mtime = Some(now);
        for i in first..=last {
            let start = if i == first {
                (offset % pb) as usize
            } else {
                0
            };
            let end = if i == last {
                ((end - 1) % pb) as usize + 1
            } else {
                pb as usize
            };
            f.mark(i, start, end, seq);
        }
        if f.current.len != old_len {
            f.lens.push(f.current.len);
        }
        Ok(buf.len())
    }

    fn sync(&self, op: Op) -> io::Result<()> {
        let mut st = self.shared.state();
        if st.boot != self.boot {
            return Err(errno(libc::EIO));
        }
        let fault = st.fault(op, &self.path);
        let State {
            files, rng, opts, ..
        } = &mut *st;
        let f = files.get_mut(&self.ino).expect("an open file has a node");
        match fault {
            None => {
                f.sync(op == Op::Fsync);
                Ok(())
            }
            Some(fault) => {
                // A writeback error: the dirty pages' fate is sealed now, they
                // are marked clean, reads still see the new data.
                let plan = Plan::draw(rng);
                f.durable = f.resolve(plan, rng, opts, &mut CrashReport::default());
                f.dirty.clear();
                f.lens.clear();
                Err(errno(match fault {
                    Fault::Errno(e) => e,
                    Fault::ShortWrite => libc::EIO,
                }))
            }
        }
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = self.shared.state();
        if st.boot == self.boot {
            if let Some(f) = st.files.get_mut(&self.ino) {
                f.opens -= 1;
            }
        }
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.state(Op::Read)?;
        Ok(st.files[&self.ino]
            .current
            .read(buf, offset, st.opts.page_bytes as u64))
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut st = self.shared.state();
        if st.boot != self.boot {
            return Err(errno(libc::EIO));
        }
        if !self.writable {
            return Err(errno(libc::EBADF));
        }
        match st.fault(Op::Write, &self.path) {
            None => Self::write_locked(&mut st, self.ino, buf, offset),
            Some(Fault::Errno(e)) => Err(errno(e)),
            Some(Fault::ShortWrite) => {
                let half = buf.len().div_ceil(2);
                Self::write_locked(&mut st, self.ino, &buf[..half], offset)
            }
        }
    }

    fn size(&self) -> io::Result<u64> {
        let st = self.state(Op::Size)?;
        Ok(st.files[&self.ino].current.len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.state(Op::SetLen)?;
        if !self.writable {
            return Err(errno(libc::EINVAL));
        }
        let (pb, now) = (st.opts.page_bytes as u64, st.now());
        let State { files, seq, .. } = &mut *st;
        let f = files.get_mut(&self.ino).expect("an open file has a node");
        f.set_len(len, pb, seq);
        f.mtime = Some(now);
        Ok(())
    }

    fn set_times(&self, modified: SystemTime, _accessed: Option<SystemTime>) -> io::Result<()> {
        let mut st = self.state(Op::SetTimes)?;
        st.files
            .get_mut(&self.ino)
            .expect("an open file has a node")
            .mtime = Some(modified);
        Ok(())
    }

    fn fdatasync(&self) -> io::Result<()> {
        self.sync(Op::Fdatasync)
    }

    fn fsync(&self) -> io::Result<()> {
        self.sync(Op::Fsync)
    }

    /// Writeback makes nothing durable (no metadata, no device cache
    /// flush), so the simulated disk only checks the handle and the rules:
    /// what a power cut keeps is decided by fsync and fdatasync alone.
    fn writeback(&self, _offset: u64, _len: u64, _wait: bool) -> io::Result<()> {
        self.state(Op::Writeback).map(|_| ())
    }

    fn fallocate(&self, len: u64) -> io::Result<bool> {
        let mut st = self.state(Op::Fallocate)?;
        if !self.writable {
            return Err(errno(libc::EBADF));
        }
        if !st.opts.fallocate {
            return Ok(false);
        }
        let pb = st.opts.page_bytes as u64;
        let f = &st.files[&self.ino];
        if len <= f.current.len {
            return Ok(true);
        }
        let more = len
            .div_ceil(pb)
            .saturating_sub(f.current.pages.len() as u64);
        if more * pb > st.free_bytes() {
            return Err(errno(libc::ENOSPC));
        }
        let now = st.now();
        let State { files, seq, .. } = &mut *st;
        let f = files.get_mut(&self.ino).expect("an open file has a node");
        f.set_len(len, pb, seq);
        f.mtime = Some(now);
        Ok(true)
    }
}

impl Fs for SimFs {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let mut st = self.shared.state();
        st.fail(Op::Stat, path)?;
        let ino = st.lookup(path)?;
        Ok(match st.files.get(&ino) {
            Some(f) => Stat {
                len: f.current.len,
                modified: f.mtime,
                is_dir: false,
            },
            None => Stat {
                len: 0,
                modified: None,
                is_dir: true,
            },
        })
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.shared.state();
        let op = match mode {
            OpenMode::Read | OpenMode::ReadWrite => Op::Open,
            OpenMode::CreateTruncate | OpenMode::CreateNew => Op::Create,
        };
        st.fail(op, path)?;
        let (dir, name) = st.parent(path)?;
        let ino = match (st.entry(dir, &name), mode) {
            (Some(i), _) if st.is_dir(i) => return Err(errno(libc::EISDIR)),
            (Some(_), OpenMode::CreateNew) => return Err(errno(libc::EEXIST)),
            (Some(i), OpenMode::CreateTruncate) => {
                let (pb, now) = (st.opts.page_bytes as u64, st.now());
                let State { files, seq, .. } = &mut *st;
                let f = files.get_mut(&i).expect("a named file has a node");
                f.set_len(0, pb, seq);
                f.mtime = Some(now);
                i
            }
            (Some(i), _) => i,
            (None, OpenMode::Read | OpenMode::ReadWrite) => return Err(errno(libc::ENOENT)),
            (None, _) => {
                let i = st.next_ino;
                st.next_ino += 1;
                let now = Some(st.now());
                st.files.insert(
                    i,
                    FileNode {
                        mtime: now,
                        durable_mtime: now,
                        ..FileNode::default()
                    },
                );
                st.dir_op(DirOp::Link {
                    dir,
                    name,
                    ino: i,
                    is_dir: false,
                    source: None,
                });
                i
            }
        };
        st.files
            .get_mut(&ino)
            .expect("a named file has a node")
            .opens += 1;
        Ok(Box::new(SimFile {
            shared: self.shared.clone(),
            ino,
            writable: mode != OpenMode::Read,
            boot: st.boot,
            path: path.to_path_buf(),
        }))
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut st = self.shared.state();
        st.fail(Op::ReadDir, dir)?;
        let ino = st.lookup(dir)?;
        let names = st.current.dirs.get(&ino).ok_or(errno(libc::ENOTDIR))?;
        Ok(names.keys().cloned().collect())
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.shared.state();
        st.fail(Op::CreateDir, dir)?;
        let (parent, name) = st.parent(dir)?;
        if st.entry(parent, &name).is_some() {
            return Err(errno(libc::EEXIST));
        }
        let ino = st.next_ino;
        st.next_ino += 1;
        st.dir_op(DirOp::Link {
            dir: parent,
            name,
            ino,
            is_dir: true,
            source: None,
        });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.shared.state();
        st.fail(Op::Rename, to)?;
        rename(&mut st, from, to, false)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.shared.state();
        st.fail(Op::RenameNoreplace, to)?;
        rename(&mut st, from, to, true)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.shared.state();
        st.fail(Op::HardLink, to)?;
        let (from_dir, from_name) = st.parent(from)?;
        let ino = st.entry(from_dir, &from_name).ok_or(errno(libc::ENOENT))?;
        if st.is_dir(ino) {
            return Err(errno(libc::EPERM));
        }
        let (dir, name) = st.parent(to)?;
        if st.entry(dir, &name).is_some() {
            return Err(errno(libc::EEXIST));
        }
        st.dir_op(DirOp::Link {
            dir,
            name,
            ino,
            is_dir: false,
            source: Some((from_dir, from_name)),
        });
        Ok(())
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.state();
        st.fail(Op::Unlink, path)?;
        let (dir, name) = st.parent(path)?;
        let ino = st.entry(dir, &name).ok_or(errno(libc::ENOENT))?;
        if st.is_dir(ino) {
            return Err(errno(libc::EISDIR));
        }
        st.dir_op(DirOp::Unlink { dir, name });
        Ok(())
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.shared.state();
        st.fail(Op::FsyncDir, dir)?;
        let ino = st.lookup(dir)?;
        if !st.is_dir(ino) {
            return Err(errno(libc::ENOTDIR));
        }
        st.commit(|op| op.changes_dir(ino));
        Ok(())
    }

    fn statvfs(&self, path: &Path) -> io::Result<Space> {
        let mut st = self.shared.state();
        st.fail(Op::Statvfs, path)?;
        st.lookup(path)?;
        Ok(Space {
            free_bytes: st.free_bytes(),
            total_bytes: st.opts.capacity_bytes,
        })
    }
}

fn rename(st: &mut State, from: &Path, to: &Path, noreplace: bool) -> io::Result<()> {
    let (from_dir, from_name) = st.parent(from)?;
    let ino = st.entry(from_dir, &from_name).ok_or(errno(libc::ENOENT))?;
    let (to_dir, to_name) = st.parent(to)?;
    let target = st.entry(to_dir, &to_name);
    match target {
        Some(_) if noreplace => return Err(errno(libc::EEXIST)),
        // Two names of one file: rename does nothing.
        Some(t) if t == ino => return Ok(()),
        Some(t) if st.is_dir(t) && !st.is_dir(ino) => return Err(errno(libc::EISDIR)),
        Some(t) if !st.is_dir(t) && st.is_dir(ino) => return Err(errno(libc::ENOTDIR)),
        Some(t) if st.current.dirs.get(&t).is_some_and(|d| !d.is_empty()) => {
            return Err(errno(libc::ENOTEMPTY))
        }
        _ => {}
    }
    if st.is_dir(ino) {
        // Not into itself: walk up from the target's directory.
        let mut up = to_dir;
        while up != ROOT {
            if up == ino {
                return Err(errno(libc::EINVAL));
            }
            up = st
                .current
                .dirs
                .iter()
                .find(|(_, names)| names.values().any(|i| *i == up))
                .map_or(ROOT, |(d, _)| *d);
        }
    }
    st.dir_op(DirOp::Rename {
        from_dir,
        from: from_name,
        to_dir,
        to: to_name,
    });
    Ok(())
}

#[cfg(test)]
mod tests;
