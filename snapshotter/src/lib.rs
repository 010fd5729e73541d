//! tiered-snapshotter: snapshots from completed command logs, crash-safe
//! archival to the archive tier, retention, point-in-time restore.
//!
//! It runs beside the engine on the same persistence dir, under its own lock
//! (`DIR/snapshotter.lock`). The engine's library owns every byte format; this
//! crate only decides when to read, write, move and delete files.
//!
//! # Layout
//!
//! | module | idea |
//! |---|---|
//! | [`cli`] | clap command line (`run`, `once`, `restore`), `TIERED_*` env vars |
//! | [`config`] | validated configuration of the daemon and of a restore |
//! | [`lock`] | single-instance flock on `DIR/snapshotter.lock` |
//! | [`watch`] | inotify on `DIR` (completed logs), feeding the daemon's wake-ups |
//! | [`daemon`] | `run` (watch + passes until SIGTERM) and `once` |
//! | [`pass`] | one pass: snapshot if due, archive what it covers, retention |
//! | [`replay`] | replay of the engine's history walk into the engine's `Db` |
//! | [`mover`] | crash-safe, idempotent cross-file-system move into the archive |
//! | [`retention`] | which archived files `--retain-days` / `--retain-bytes` delete |
//! | [`restore`] | point-in-time restore into a new persistence dir |
//! | [`metrics`], [`http`] | Prometheus metrics, `/metrics` and `/healthz` |
//! | [`sys`] | the syscall seam: fsync, statvfs, renameat2, errno checks (from the shared `tiered-sys` crate), file checksums |
//!
//! Listing the history and reading records go through the engine's
//! `history` walker; no file ordering or torn-tail rule lives here.

// The only unsafe is the inotify registration in `watch` (allowed there,
// with its SAFETY comment).
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod http;
pub mod lock;
pub mod metrics;
pub mod mover;
pub mod pass;
pub mod replay;
pub mod restore;
pub mod retention;
pub mod sys;
pub mod watch;
