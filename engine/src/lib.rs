//! tiered-engine: the write-ahead command log, the snapshot format, the
//! key-value state machine and its Redis-protocol (RESP2) server.
//!
//! # Layout
//!
//! - [`layout`]: file names in a persistence dir and the directory scan.
//! - [`record`]: one command-log record (framing, salted CRC, bounds).
//! - [`segment`]: segment files (header + records): reader, verify, writer.
//! - [`db`]: the state machine and the canonical encoding of logged commands.
//! - [`snapshot`]: snapshot files (atomic write, validated read).
//! - [`sys`]: the durability syscalls (fsync, fdatasync, flock, fallocate, statvfs).

pub mod db;
pub mod layout;
pub mod record;
pub mod segment;
pub mod snapshot;
pub mod sys;
