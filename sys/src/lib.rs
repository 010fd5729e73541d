//! tiered-sys: the file-system syscalls that tiered's engine and snapshotter
//! share, and the file seam they do their file I/O through.
//!
//! # Layout
//!
//! - [`fs`]: the durability syscalls on real files (fsync, fdatasync, fsync
//!   of a directory, fallocate, statvfs, `renameat2(RENAME_NOREPLACE)`, flock),
//!   errno classification, and [`SysError`] (operation + path + errno).
//! - [`seam`]: the file seam, a small object-safe trait ([`Fs`], [`FsFile`])
//!   with the real implementation [`RealFs`].
//! - [`fault`]: [`FaultFs`], a wrapper around any [`Fs`] that fails chosen
//!   calls (EIO, ENOSPC, EXDEV, short writes) and records every call.
//! - [`sim`]: [`SimFs`], an in-memory disk that keeps unsynced data and
//!   directory entries apart from synced ones and loses, keeps or tears them
//!   at a seeded simulated power cut ([`SimFs::crash`]).
//! - [`pace`]: [`PacedWriter`], large background writes in chunks handed to
//!   writeback, at a capped rate (so that they do not stall the log's fdatasync).
//! - [`sched`]: lowering the calling thread's CPU priority (background work):
//!   the `SCHED_IDLE` class or a nice value.
//! - [`names`]: the one validation of a directory name given on a command
//!   line (`--archive-dir-name`).
//!
//! Every syscall goes through `nix` or `std`, but for two that `nix` 0.29
//! lacks (`sync_file_range` in [`fs::writeback`], `setpriority` and
//! `sched_setscheduler` in [`sched`]): those are the only `unsafe` blocks.

#![deny(unsafe_code)]

pub mod fault;
pub mod fs;
pub mod names;
pub mod pace;
pub mod sched;
pub mod seam;
pub mod sim;

pub use fault::{Fault, FaultFs, Op, Rule};
pub use fs::{
    errno_of, is_cross_device, is_no_space, lock_exclusive, FileLock, LockError, Space, SysError,
};
pub use pace::{PacedWriter, WritePace};
pub use seam::{real, FileCursor, Fs, FsFile, OpenMode, RealFs, Stat};
pub use sim::{CrashReport, SimFs, SimOptions};
