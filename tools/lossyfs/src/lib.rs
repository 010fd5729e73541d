//! tiered-lossyfs: a FUSE file system that passes every call through to a
//! backing directory but remembers what is not yet durable, so that a
//! simulated power cut can take it away (LazyFS-style), for power-loss tests
//! of the engine and the snapshotter on a real file system.
//!
//! # Layout
//!
//! - [`LossyFs`]: the [`fuser::Filesystem`]; every call goes to the backing
//!   directory at once, and an *undo log* keeps what a power cut may revert:
//!   - for each file, the durable bytes of every page (4 KiB) written since
//!     its last fsync/fdatasync, the byte ranges written, and its sizes since;
//!   - for each directory change (create, mkdir, unlink, rmdir, rename,
//!     link) not yet made durable by an fsync of the directory, how to undo
//!     it. Unlinked and replaced files are kept in a hidden stash directory
//!     (`.lossyfs-stash` in the backing root) until the change is durable.
//! - [`LossyFs::power_cut`]: from a seed, keeps, reverts, zeroes or tears
//!   (a prefix of 512-byte sectors) each unsynced page, picks a surviving
//!   size, keeps or undoes each unsynced directory change (never one without
//!   the earlier changes of the same entries it depends on: a rename
//!   happened or did not), makes the result durable in the backing directory
//!   and forgets the undo log. The same rules as `tiered_sys::SimFs`.
//! - [`control`]: a Unix socket that takes `cut <seed>` and `status`, and
//!   the client side of it.
//!
//! Writers must be stopped (killed) before a cut: it rewrites the backing
//! files under them. Files are opened with direct I/O, so nothing stale
//! stays in the kernel's page cache of the mount after a cut.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nix::fcntl::renameat;
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode};

pub mod control;

/// The unit of writeback: each unsynced page has one fate at a cut.
pub const PAGE_BYTES: usize = 4096;
/// The unit a torn page is torn at.
pub const SECTOR_BYTES: usize = 512;
/// The hidden directory in the backing root that keeps unlinked and replaced
/// files until their removal is durable.
pub const STASH: &str = ".lossyfs-stash";

const TTL: Duration = Duration::ZERO;

/// What a power cut did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Unsynced pages that kept their new data.
    pub pages_kept: u64,
    /// Unsynced pages reverted to their durable data.
    pub pages_old: u64,
    /// Unsynced pages whose written bytes read as zeros.
    pub pages_zeroed: u64,
    /// Unsynced pages with a prefix of sectors of new data over the old.
    pub pages_torn: u64,
    /// Files whose size went back to the durable or an intermediate one.
    pub sizes_lost: u64,
    /// Directory changes kept.
    pub dir_ops_kept: u64,
    /// Directory changes undone.
    pub dir_ops_lost: u64,
}

impl std::fmt::Display for CutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pages_kept={} pages_old={} pages_zeroed={} pages_torn={} sizes_lost={} dir_ops_kept={} dir_ops_lost={}",
            self.pages_kept,
            self.pages_old,
            self.pages_zeroed,
            self.pages_torn,
            self.sizes_lost,
            self.dir_ops_kept,
            self.dir_ops_lost
        )
    }
}

/// splitmix64: seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn percent(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// An unsynced page: its durable bytes and what was written over them.
#[derive(Debug)]
struct PageUndo {
    seq: u64,
    old: Vec<u8>,
    written: Vec<(usize, usize)>,
}

/// A file's unsynced state.
#[derive(Debug, Default)]
struct FileUndo {
    durable_len: u64,
    lens: Vec<u64>,
    pages: BTreeMap<u64, PageUndo>,
}

/// A directory entry: (directory inode, name).
type Entry = (u64, OsString);

/// A directory change not yet durable, and how to undo it.
#[derive(Debug)]
enum DirOp {
    /// A new entry (create, mkdir, link): undone by moving it to the stash.
    Create { at: Entry },
    /// A removed entry, kept in the stash as `stash`.
    Remove { at: Entry, stash: OsString },
    /// A rename; what `to` named before is in the stash as `replaced`.
    Rename {
        from: Entry,
        to: Entry,
        replaced: Option<OsString>,
    },
}

impl DirOp {
    fn entries(&self) -> Vec<&Entry> {
        match self {
            DirOp::Create { at } | DirOp::Remove { at, .. } => vec![at],
            DirOp::Rename { from, to, .. } => vec![from, to],
        }
    }
    fn conflicts(&self, other: &DirOp) -> bool {
        let theirs = other.entries();
        self.entries().iter().any(|e| theirs.contains(e))
    }
    fn in_dir(&self, dir: u64) -> bool {
        self.entries().iter().any(|e| e.0 == dir)
    }
}

#[derive(Debug)]
struct Node {
    /// An O_PATH descriptor: keeps the backing inode (and its number) alive.
    fd: OwnedFd,
    /// (st_dev, st_ino) of the backing inode.
    key: (u64, u64),
    /// The kernel's lookup count (entries replied minus forgotten).
    lookups: u64,
}

#[derive(Debug)]
struct Inner {
    nodes: HashMap<u64, Node>,
    by_backing: HashMap<(u64, u64), u64>,
    next_ino: u64,
    handles: HashMap<u64, (u64, File)>,
    next_fh: u64,
    files: BTreeMap<u64, FileUndo>,
    ops: Vec<DirOp>,
    stash: OwnedFd,
    next_stash: u64,
    seq: u64,
}

/// The file system (see the crate documentation). Clones share state.
#[derive(Debug, Clone)]
pub struct LossyFs {
    inner: Arc<Mutex<Inner>>,
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

fn proc_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// An O_PATH descriptor of `path`.
fn open_path(path: &std::path::Path, flags: i32) -> io::Result<OwnedFd> {
    Ok(OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC | flags)
        .open(path)?
        .into())
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn kind_of(st: &FileStat) -> FileType {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn attr_of(ino: u64, st: &FileStat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: time(st.st_ctime, st.st_ctime_nsec),
        kind: kind_of(st),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

impl Inner {
    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    /// Looks `name` up in directory `parent`; registers it.
    fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<(u64, FileStat), Errno> {
        if parent == 1 && name == STASH {
            return Err(Errno::ENOENT);
        }
        let pfd = &self.node(parent)?.fd;
        let st = fstatat(
            Some(pfd.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(nix_errno)?;
        let key = (st.st_dev, st.st_ino);
        if let Some(ino) = self.by_backing.get(&key) {
            return Ok((*ino, st));
        }
        let fd =
            open_path(&proc_path(pfd).join(name), libc::O_NOFOLLOW).map_err(|e| errno_of(&e))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                fd,
                key,
                lookups: 0,
            },
        );
        self.by_backing.insert(key, ino);
        Ok((ino, st))
    }

    /// Closes the descriptors of inodes the kernel no longer knows and
    /// nothing pending refers to (an undo log, a directory change, a handle).
    fn collect_garbage(&mut self, only: Option<u64>) {
        if let Some(ino) = only {
            let held = ino == 1
                || self.nodes.get(&ino).is_none_or(|n| n.lookups > 0)
                || self.files.contains_key(&ino)
                || self.handles.values().any(|(i, _)| *i == ino)
                || self
                    .ops
                    .iter()
                    .any(|op| op.entries().iter().any(|e| e.0 == ino));
            if !held {
                if let Some(n) = self.nodes.remove(&ino) {
                    self.by_backing.remove(&n.key);
                }
            }
            return;
        }
        let mut keep: std::collections::HashSet<u64> = self.files.keys().copied().collect();
        keep.extend(self.handles.values().map(|(i, _)| *i));
        keep.extend(
            self.ops
                .iter()
                .flat_map(|op| op.entries().into_iter().map(|e| e.0)),
        );
        keep.insert(1);
        let gone: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(i, n)| n.lookups == 0 && !keep.contains(i))
            .map(|(i, _)| *i)
            .collect();
        for i in gone {
            if let Some(n) = self.nodes.remove(&i) {
                self.by_backing.remove(&n.key);
            }
        }
    }

    fn stat(&self, ino: u64) -> Result<FileStat, Errno> {
        fstat(self.node(ino)?.fd.as_raw_fd()).map_err(nix_errno)
    }

    /// Opens the backing file of `ino` again (O_PATH cannot read or write).
    fn reopen(&self, ino: u64, write: bool) -> Result<File, Errno> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(proc_path(&self.node(ino)?.fd))
            .map_err(|e| errno_of(&e))
    }

    fn exists(&self, dir: u64, name: &OsStr) -> Result<Option<FileStat>, Errno> {
        match fstatat(
            Some(self.node(dir)?.fd.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(st)),
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(e) => Err(nix_errno(e)),
        }
    }

    /// Moves entry `at` into the stash; returns its stash name.
    fn stash_entry(&mut self, at: &Entry) -> Result<OsString, Errno> {
        let name = OsString::from(self.next_stash.to_string());
        self.next_stash += 1;
        renameat(
            Some(self.node(at.0)?.fd.as_raw_fd()),
            at.1.as_os_str(),
            Some(self.stash.as_raw_fd()),
            name.as_os_str(),
        )
        .map_err(nix_errno)?;
        Ok(name)
    }

    fn unstash(&self, stash: &OsStr, at: &Entry) -> Result<(), Errno> {
        renameat(
            Some(self.stash.as_raw_fd()),
            stash,
            Some(self.node(at.0)?.fd.as_raw_fd()),
            at.1.as_os_str(),
        )
        .map_err(nix_errno)
    }

    fn move_entry(&self, from: &Entry, to: &Entry) -> Result<(), Errno> {
        renameat(
            Some(self.node(from.0)?.fd.as_raw_fd()),
            from.1.as_os_str(),
            Some(self.node(to.0)?.fd.as_raw_fd()),
            to.1.as_os_str(),
        )
        .map_err(nix_errno)
    }

    fn drop_stash(&self, stash: &OsStr) {
        let p = proc_path(&self.stash).join(stash);
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if let Err(e) = r {
            tracing::warn!(path = %p.display(), "lossyfs: cannot empty stash: {e}");
        }
    }

    /// Remembers the durable bytes of the pages `offset..offset+len` of
    /// `ino` before they change, and the range changed.
    fn before_change(
        &mut self,
        ino: u64,
        offset: u64,
        len: u64,
        file_len: u64,
    ) -> Result<(), Errno> {
        if len == 0 {
            return Ok(());
        }
        let pb = PAGE_BYTES as u64;
        let (first, last) = (offset / pb, (offset + len - 1) / pb);
        let need_read = {
            let undo = self.files.get(&ino);
            (first..=last).any(|i| undo.is_none_or(|u| !u.pages.contains_key(&i)))
        };
        let reader = if need_read {
            Some(self.reopen(ino, false)?)
        } else {
            None
        };
        let seq = &mut self.seq;
        let undo = self.files.entry(ino).or_insert_with(|| FileUndo {
            durable_len: file_len,
            ..FileUndo::default()
        });
        for i in first..=last {
            let page = match undo.pages.entry(i) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let mut old = vec![0u8; PAGE_BYTES];
                    if let Some(r) = &reader {
                        let mut done = 0;
                        while done < PAGE_BYTES {
                            match r.read_at(&mut old[done..], i * pb + done as u64) {
                                Ok(0) => break,
                                Ok(n) => done += n,
                                Err(e) => return Err(errno_of(&e)),
                            }
                        }
                    }
                    *seq += 1;
                    v.insert(PageUndo {
                        seq: *seq,
                        old,
                        written: Vec::new(),
                    })
                }
            };
            let s = if i == first {
                (offset % pb) as usize
            } else {
                0
            };
            let e = if i == last {
                ((offset + len - 1) % pb) as usize + 1
            } else {
                PAGE_BYTES
            };
            page.written.push((s, e));
        }
        Ok(())
    }

    fn size_changed(&mut self, ino: u64, old_len: u64, new_len: u64) {
        if old_len != new_len {
            self.files
                .entry(ino)
                .or_insert_with(|| FileUndo {
                    durable_len: old_len,
                    ..FileUndo::default()
                })
                .lens
                .push(new_len);
        }
    }

    /// fsync of directory `dir`: its changes, and the earlier ones they
    /// depend on, become durable.
    fn commit_dir(&mut self, dir: u64) -> Result<(), Errno> {
        let n = self.ops.len();
        let mut marked = vec![false; n];
        for i in (0..n).rev() {
            marked[i] = self.ops[i].in_dir(dir)
                || (i + 1..n).any(|j| marked[j] && self.ops[i].conflicts(&self.ops[j]));
        }
        let mut rest = Vec::new();
        for (op, m) in std::mem::take(&mut self.ops).into_iter().zip(marked) {
            if !m {
                rest.push(op);
                continue;
            }
            match &op {
                DirOp::Remove { stash, .. }
                | DirOp::Rename {
                    replaced: Some(stash),
                    ..
                } => self.drop_stash(stash),
                _ => {}
            }
        }
        self.ops = rest;
        self.collect_garbage(None);
        File::open(proc_path(&self.node(dir)?.fd))
            .and_then(|d| d.sync_all())
            .map_err(|e| errno_of(&e))
    }

    fn status(&self) -> (u64, u64) {
        let pages = self.files.values().map(|f| f.pages.len() as u64).sum();
        (pages, self.ops.len() as u64)
    }

    fn power_cut(&mut self, seed: u64) -> CutReport {
        let mut rng = Rng(seed);
        let in_order = rng.below(3) == 0;
        let keep_pct = rng.below(101);
        let mut r = CutReport::default();
        // Directory changes: kept with every earlier change they depend on;
        // the others undone, latest first.
        let ops = std::mem::take(&mut self.ops);
        let cut = rng.below(ops.len() as u64 + 1) as usize;
        let mut kept = vec![false; ops.len()];
        for i in 0..ops.len() {
            kept[i] = if in_order {
                i < cut
            } else {
                rng.percent(keep_pct) && (0..i).all(|j| kept[j] || !ops[j].conflicts(&ops[i]))
            };
        }
        for (op, k) in ops.iter().zip(&kept).rev() {
            if *k {
                r.dir_ops_kept += 1;
                continue;
            }
            r.dir_ops_lost += 1;
            let undone = match op {
                DirOp::Create { at } => self.stash_entry(at).map(|_| ()),
                DirOp::Remove { at, stash } => self.unstash(stash, at),
                DirOp::Rename { from, to, replaced } => self
                    .move_entry(to, from)
                    .and_then(|()| replaced.as_ref().map_or(Ok(()), |s| self.unstash(s, to))),
            };
            if let Err(e) = undone {
                tracing::error!(?op, "lossyfs: cannot undo a directory change: {e:?}");
            }
        }
        // Whatever stays in the stash is removed for good.
        if let Ok(names) = std::fs::read_dir(proc_path(&self.stash)) {
            for n in names.flatten() {
                self.drop_stash(&n.file_name());
            }
        }
        // File contents.
        let sectors = (PAGE_BYTES / SECTOR_BYTES) as u64;
        for (ino, undo) in std::mem::take(&mut self.files) {
            let Ok(file) = self.reopen(ino, true) else {
                continue;
            };
            let mut order: Vec<(u64, u64)> = undo.pages.iter().map(|(i, p)| (p.seq, *i)).collect();
            order.sort_unstable();
            let page_cut = rng.below(order.len() as u64 + 1) as usize;
            for (k, &(_, idx)) in order.iter().enumerate() {
                let page = &undo.pages[&idx];
                let at = idx * PAGE_BYTES as u64;
                let fate = if in_order {
                    if k < page_cut {
                        0
                    } else if k == page_cut && rng.percent(50) {
                        3
                    } else {
                        1
                    }
                } else if rng.percent(keep_pct) {
                    0
                } else {
                    [1, 1, 2, 3][rng.below(4) as usize]
                };
                let res = match fate {
                    0 => {
                        r.pages_kept += 1;
                        Ok(())
                    }
                    1 => {
                        r.pages_old += 1;
                        file.write_all_at(&page.old, at)
                    }
                    2 => {
                        r.pages_zeroed += 1;
                        page.written.iter().try_for_each(|&(s, e)| {
                            file.write_all_at(&vec![0u8; e - s], at + s as u64)
                        })
                    }
                    _ => {
                        r.pages_torn += 1;
                        let keep = (1 + rng.below(sectors - 1)) as usize * SECTOR_BYTES;
                        file.write_all_at(&page.old[keep..], at + keep as u64)
                    }
                };
                if let Err(e) = res {
                    tracing::error!(ino, "lossyfs: cannot revert a page: {e}");
                }
            }
            let len = match undo.lens.split_last() {
                None => undo.durable_len,
                Some((&last, earlier)) => {
                    let keep = if in_order {
                        page_cut == order.len() || rng.percent(50)
                    } else {
                        rng.percent(keep_pct)
                    };
                    if keep || last == undo.durable_len {
                        last
                    } else {
                        r.sizes_lost += 1;
                        match rng.below(earlier.len() as u64 + 1) as usize {
                            0 => undo.durable_len,
                            i => earlier[i - 1],
                        }
                    }
                }
            };
            if let Err(e) = file.set_len(len).and_then(|()| file.sync_all()) {
                tracing::error!(ino, "lossyfs: cannot set the surviving size: {e}");
            }
        }
        nix::unistd::syncfs(self.stash.as_raw_fd()).ok();
        self.collect_garbage(None);
        tracing::info!(seed, %r, "lossyfs: power cut");
        r
    }
}

impl LossyFs {
    /// Serves `backing` (an existing directory).
    pub fn new(backing: &std::path::Path) -> io::Result<LossyFs> {
        let root = open_path(backing, libc::O_DIRECTORY)?;
        let stash_path = backing.join(STASH);
        match std::fs::create_dir(&stash_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        // A stash left by a process that died: its contents were removed.
        for n in std::fs::read_dir(&stash_path)? {
            let p = n?.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
        let stash = open_path(&stash_path, libc::O_DIRECTORY)?;
        let st = fstat(root.as_raw_fd())?;
        let key = (st.st_dev, st.st_ino);
        Ok(LossyFs {
            inner: Arc::new(Mutex::new(Inner {
                nodes: HashMap::from([(
                    1,
                    Node {
                        fd: root,
                        key,
                        lookups: 1,
                    },
                )]),
                by_backing: HashMap::from([((st.st_dev, st.st_ino), 1)]),
                next_ino: 2,
                handles: HashMap::new(),
                next_fh: 1,
                files: BTreeMap::new(),
                ops: Vec::new(),
                stash,
                next_stash: 0,
                seq: 0,
            })),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A simulated power cut (see the crate documentation).
    pub fn power_cut(&self, seed: u64) -> CutReport {
        self.inner().power_cut(seed)
    }

    /// Unsynced pages and pending directory changes.
    pub fn status(&self) -> (u64, u64) {
        self.inner().status()
    }

    fn entry_reply(st: &mut Inner, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match st.lookup(parent, name) {
            Ok((ino, s)) => {
                if let Some(n) = st.nodes.get_mut(&ino) {
                    n.lookups += 1;
                }
                reply.entry(&TTL, &attr_of(ino, &s), Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }
}

fn timespec(t: Option<TimeOrNow>) -> nix::sys::time::TimeSpec {
    use nix::sys::time::TimeSpec;
    match t {
        None => TimeSpec::UTIME_OMIT,
        Some(TimeOrNow::Now) => TimeSpec::UTIME_NOW,
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            TimeSpec::new(d.as_secs() as i64, i64::from(d.subsec_nanos()))
        }
    }
}

fn open_options(flags: i32) -> OpenOptions {
    let mut o = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY => o.write(true),
        libc::O_RDWR => o.read(true).write(true),
        _ => o.read(true),
    };
    o.custom_flags(flags & libc::O_APPEND);
    o
}

impl Filesystem for LossyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        Self::entry_reply(&mut self.inner(), parent.0, name, reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut st = self.inner();
        if let Some(n) = st.nodes.get_mut(&ino.0) {
            n.lookups = n.lookups.saturating_sub(nlookup);
            if n.lookups == 0 {
                st.collect_garbage(Some(ino.0));
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inner().stat(ino.0) {
            Ok(s) => reply.attr(&TTL, &attr_of(ino.0, &s)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.inner();
        let ino = ino.0;
        let res = (|| {
            if let Some(mode) = mode {
                let f = st.reopen(ino, false)?;
                nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))
                    .map_err(nix_errno)?;
            }
            if uid.is_some() || gid.is_some() {
                nix::unistd::fchownat(
                    None,
                    &proc_path(&st.node(ino)?.fd),
                    uid.map(nix::unistd::Uid::from_raw),
                    gid.map(nix::unistd::Gid::from_raw),
                    nix::fcntl::AtFlags::empty(),
                )
                .map_err(nix_errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                nix::sys::stat::utimensat(
                    None,
                    &proc_path(&st.node(ino)?.fd),
                    &timespec(atime),
                    &timespec(mtime),
                    nix::sys::stat::UtimensatFlags::FollowSymlink,
                )
                .map_err(nix_errno)?;
            }
            if let Some(size) = size {
                let old = st.stat(ino)?.st_size as u64;
                if size < old {
                    st.before_change(ino, size, old - size, old)?;
                }
                st.reopen(ino, true)?
                    .set_len(size)
                    .map_err(|e| errno_of(&e))?;
                st.size_changed(ino, old, size);
            }
            st.stat(ino)
        })();
        match res {
            Ok(s) => reply.attr(&TTL, &attr_of(ino, &s)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.inner();
        let res = st.node(parent.0).and_then(|n| {
            mkdirat(Some(n.fd.as_raw_fd()), name, Mode::from_bits_truncate(mode)).map_err(nix_errno)
        });
        match res {
            Ok(()) => {
                st.ops.push(DirOp::Create {
                    at: (parent.0, name.to_os_string()),
                });
                Self::entry_reply(&mut st, parent.0, name, reply);
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.inner();
        let at = (parent.0, name.to_os_string());
        let res = match st.exists(parent.0, name) {
            Ok(Some(s)) if kind_of(&s) == FileType::Directory => Err(Errno::EISDIR),
            Ok(Some(_)) => st.stash_entry(&at),
            Ok(None) => Err(Errno::ENOENT),
            Err(e) => Err(e),
        };
        match res {
            Ok(stash) => {
                st.ops.push(DirOp::Remove { at, stash });
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.inner();
        let at = (parent.0, name.to_os_string());
        let res = (|| {
            let (ino, s) = st.lookup(parent.0, name)?;
            if kind_of(&s) != FileType::Directory {
                return Err(Errno::ENOTDIR);
            }
            let path = proc_path(&st.node(ino)?.fd);
            if std::fs::read_dir(path)
                .map_err(|e| errno_of(&e))?
                .next()
                .is_some()
            {
                return Err(Errno::ENOTEMPTY);
            }
            st.stash_entry(&at)
        })();
        match res {
            Ok(stash) => {
                st.ops.push(DirOp::Remove { at, stash });
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.inner();
        let from = (parent.0, name.to_os_string());
        let to = (newparent.0, newname.to_os_string());
        let res = (|| {
            if flags.contains(RenameFlags::RENAME_EXCHANGE)
                || flags.contains(RenameFlags::RENAME_WHITEOUT)
            {
                return Err(Errno::EINVAL);
            }
            let src = st.exists(from.0, &from.1)?.ok_or(Errno::ENOENT)?;
            let replaced = match st.exists(to.0, &to.1)? {
                None => None,
                Some(_) if flags.contains(RenameFlags::RENAME_NOREPLACE) => {
                    return Err(Errno::EEXIST)
                }
                Some(dst) if (dst.st_dev, dst.st_ino) == (src.st_dev, src.st_ino) => {
                    return Ok(None)
                }
                Some(dst) => {
                    let (sd, dd) = (
                        kind_of(&src) == FileType::Directory,
                        kind_of(&dst) == FileType::Directory,
                    );
                    if dd && !sd {
                        return Err(Errno::EISDIR);
                    }
                    if sd && !dd {
                        return Err(Errno::ENOTDIR);
                    }
                    if dd {
                        let (ino, _) = st.lookup(to.0, &to.1)?;
                        let p = proc_path(&st.node(ino)?.fd);
                        if std::fs::read_dir(p)
                            .map_err(|e| errno_of(&e))?
                            .next()
                            .is_some()
                        {
                            return Err(Errno::ENOTEMPTY);
                        }
                    }
                    Some(st.stash_entry(&to)?)
                }
            };
            if let Err(e) = st.move_entry(&from, &to) {
                if let Some(s) = &replaced {
                    st.unstash(s, &to).ok();
                }
                return Err(e);
            }
            Ok(Some(replaced))
        })();
        match res {
            Ok(Some(replaced)) => {
                st.ops.push(DirOp::Rename { from, to, replaced });
                reply.ok();
            }
            Ok(None) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut st = self.inner();
        let res = (|| {
            let src = proc_path(&st.node(ino.0)?.fd);
            nix::unistd::linkat(
                None,
                src.as_path(),
                Some(st.node(newparent.0)?.fd.as_raw_fd()),
                std::path::Path::new(newname),
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map_err(nix_errno)
        })();
        match res {
            Ok(()) => {
                st.ops.push(DirOp::Create {
                    at: (newparent.0, newname.to_os_string()),
                });
                Self::entry_reply(&mut st, newparent.0, newname, reply);
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.inner();
        let res = (|| {
            let existed = st.exists(parent.0, name)?.is_some();
            let path = proc_path(&st.node(parent.0)?.fd).join(name);
            let mut o = open_options(flags);
            if flags & libc::O_EXCL != 0 {
                o.create_new(true);
            } else {
                o.create(true);
            }
            let file = o.mode(mode).open(path).map_err(|e| errno_of(&e))?;
            if !existed {
                st.ops.push(DirOp::Create {
                    at: (parent.0, name.to_os_string()),
                });
            }
            let (ino, s) = st.lookup(parent.0, name)?;
            Ok((ino, s, file))
        })();
        match res {
            Ok((ino, s, file)) => {
                let fh = st.next_fh;
                st.next_fh += 1;
                st.handles.insert(fh, (ino, file));
                if let Some(n) = st.nodes.get_mut(&ino) {
                    n.lookups += 1;
                }
                reply.created(
                    &TTL,
                    &attr_of(ino, &s),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::FOPEN_DIRECT_IO,
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.inner();
        let res = st.node(ino.0).and_then(|n| {
            open_options(flags.0)
                .open(proc_path(&n.fd))
                .map_err(|e| errno_of(&e))
        });
        match res {
            Ok(file) => {
                let fh = st.next_fh;
                st.next_fh += 1;
                st.handles.insert(fh, (ino.0, file));
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.inner();
        let Some((_, file)) = st.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno_of(&e)),
            }
        }
        reply.data(&buf[..done]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.inner();
        let res = (|| {
            let (ino, file) = st.handles.get(&fh.0).ok_or(Errno::EBADF)?;
            let ino = *ino;
            let old = file.metadata().map_err(|e| errno_of(&e))?.len();
            st.before_change(ino, offset, data.len() as u64, old)?;
            let (_, file) = &st.handles[&fh.0];
            file.write_all_at(data, offset).map_err(|e| errno_of(&e))?;
            st.size_changed(ino, old, old.max(offset + data.len() as u64));
            Ok(data.len() as u32)
        })();
        match res {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.inner();
        if let Some((ino, _)) = st.handles.remove(&fh.0) {
            st.collect_garbage(Some(ino));
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.inner();
        let res = match st.handles.get(&fh.0) {
            Some((_, f)) if datasync => f.sync_data(),
            Some((_, f)) => f.sync_all(),
            None => return reply.error(Errno::EBADF),
        };
        match res {
            Ok(()) => {
                st.files.remove(&ino.0);
                st.collect_garbage(Some(ino.0));
                reply.ok();
            }
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.inner();
        let res = (|| {
            let path = proc_path(&st.node(ino.0)?.fd);
            let mut names: Vec<OsString> = std::fs::read_dir(path)
                .map_err(|e| errno_of(&e))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|n| !(ino.0 == 1 && n == STASH))
                .collect();
            names.sort();
            let mut out = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (ino.0, FileType::Directory, OsString::from("..")),
            ];
            for n in names {
                if let Ok((i, s)) = st.lookup(ino.0, &n) {
                    out.push((i, kind_of(&s), n));
                }
            }
            Ok(out)
        })();
        match res {
            Ok(entries) => {
                st.collect_garbage(None);
                for (i, (e_ino, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(e_ino), i as u64 + 1, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.inner().commit_dir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let st = self.inner();
        match st
            .node(1)
            .and_then(|n| nix::sys::statvfs::fstatvfs(&n.fd).map_err(nix_errno))
        {
            Ok(v) => reply.statfs(
                v.blocks(),
                v.blocks_free(),
                v.blocks_available(),
                v.files(),
                v.files_free(),
                v.block_size() as u32,
                v.name_max() as u32,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut st = self.inner();
        let res = (|| {
            if mode != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let (_, file) = st.handles.get(&fh.0).ok_or(Errno::EBADF)?;
            let old = file.metadata().map_err(|e| errno_of(&e))?.len();
            nix::fcntl::fallocate(
                file.as_raw_fd(),
                nix::fcntl::FallocateFlags::empty(),
                offset as i64,
                length as i64,
            )
            .map_err(nix_errno)?;
            st.size_changed(ino.0, old, old.max(offset + length));
            Ok(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
