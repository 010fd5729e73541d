//! tiered-engine: the write-ahead command log, the snapshot format, the
//! key-value state machine and its Redis-protocol (RESP2) server.
//!
//! Every state-changing command is executed against the state, its effect
//! framed as a record, written to the open segment of the command log and
//! made durable (one fdatasync per group of commands) before it, or any
//! reply that may show it, is sent. At start the state is
//! rebuilt from the newest valid snapshot plus the records after it.
//!
//! # Layout
//!
//! Formats (shared with the snapshotter):
//! - [`layout`]: file names in a persistence dir (the one parser of them).
//! - [`history`]: the one walker over snapshots and segments, primary and
//!   archive: listing, order, torn-tail rule, records from a start point.
//! - [`record`]: one command-log record (framing, salted CRC, bounds).
//! - [`segment`]: segment files (header + records): reader, verify, writer.
//! - [`db`]: the state machine: keyspace, typed values, expiry index.
//! - [`snapshot`]: snapshot files (atomic write, validated read).
//! - [`recovery`]: snapshot + logs -> state at start (torn tails, gaps, modes).
//!
//! The engine:
//! - [`config`]: flags, defaults, bounds.
//! - [`server`]: start-up, the RESP listener, connections, shutdown ([`run`]).
//! - [`exec`]: the execution core: commands executed in order against the
//!   state, their effects queued for the log, replies held until durable;
//!   transactions (MULTI/EXEC/WATCH).
//! - [`writer`]: group commit, rotation, poisoning.
//! - [`cmd`]: one file per command (parse, log payload, apply, reply) and
//!   the command table; [`reply`]: replies and their error texts.
//! - [`resp`]: RESP2 codec.
//! - [`metrics`]: Prometheus metrics, `/metrics` and `/healthz`.
//! - [`inspect`]: the `verify` and `dump` subcommands.
//! - [`sys`]: the syscall seam: the durability syscalls and the file seam
//!   trait (`Fs`, with a real and a fault-injecting implementation), shared
//!   with the snapshotter through the `tiered-sys` crate.

#![deny(unsafe_code)]

pub mod clients;
pub mod cmd;
pub mod config;
pub mod db;
pub mod exec;
pub mod history;
pub mod inspect;
pub mod layout;
pub mod metrics;
pub mod record;
pub mod recovery;
pub mod reply;
pub mod resp;
pub mod segment;
pub mod server;
pub mod snapshot;
pub mod sys;
pub mod writer;

pub use config::Config;
pub use recovery::RecoveryMode;
pub use server::{run, start, EngineError, Running};
