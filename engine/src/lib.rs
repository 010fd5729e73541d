//! tiered-engine: the write-ahead command log, the snapshot format, the
//! key-value state machine and its Redis-protocol (RESP2 and RESP3) server.
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
//! - [`record`]: one command-log record (compact framing in format version
//!   3; the fixed, salted-CRC framing of versions 1 and 2; bounds).
//! - [`batch`]: one group commit framed as one batch (format versions 2
//!   and 3), its encoder and in-memory decoder.
//! - [`segment`]: segment files (header + batches of records): reader, verify, writer.
//! - [`db`]: the state machine: typed values, entries, expiry index;
//!   [`keyspace`]: the table of keys in SCAN order (ordered open
//!   addressing); [`hash`]: the hash value (packed like Redis's listpack
//!   while small, a table beyond); [`members`]: the set value (packed when
//!   small, a B-tree when big); [`zset`]: the sorted set value (packed when
//!   small, a map and ordered blocks when big) and its ranges.
//! - [`snapshot`]: snapshot files (atomic write, validated read).
//! - [`recovery`]: snapshot + logs -> state at start (torn tails, gaps, modes).
//!
//! The engine:
//! - [`config`]: flags, defaults, bounds.
//! - [`server`]: start-up, the RESP listener, connections, shutdown ([`run`]).
//! - [`exec`]: the execution core: commands executed in order against the
//!   state, their effects queued for the log, replies held until durable;
//!   transactions (MULTI/EXEC/WATCH); [`reserve`]: the free-space reserve
//!   writes are refused below.
//! - [`writer`]: group commit, rotation, poisoning.
//! - [`cmd`]: one file per command (parse, log payload, apply, reply) and
//!   the command table; [`reply`]: replies and their error texts.
//! - [`resp`]: the RESP codec (requests; replies in RESP2 or RESP3).
//! - [`clients`]: the registry of connected clients (CLIENT LIST/KILL).
//! - [`metrics`]: Prometheus metrics, `/metrics` and `/healthz`.
//! - [`inspect`]: the `verify` and `dump` subcommands.
//! - [`alloc`]: the allocator (jemalloc, for every program linking this
//!   library) and its counts for INFO's memory section.
//! - [`sys`]: the syscall seam: the durability syscalls and the file seam
//!   trait (`Fs`, with a real and a fault-injecting implementation), shared
//!   with the snapshotter through the `tiered-sys` crate.

#![deny(unsafe_code)]

pub mod alloc;
pub mod batch;
pub mod blocking;
pub mod clients;
pub mod cmd;
pub mod config;
pub mod db;
pub mod exec;
pub mod hash;
pub mod history;
pub mod inspect;
pub mod keyspace;
pub mod layout;
pub mod members;
pub mod metrics;
pub mod pubsub;
pub mod record;
pub mod recovery;
pub mod reply;
pub mod reserve;
pub mod resp;
pub mod script;
pub mod segment;
pub mod server;
pub mod snapshot;
pub mod sys;
pub mod writer;
pub mod zset;

pub use config::Config;
pub use recovery::RecoveryMode;
pub use server::{run, start, EngineError, Running};

/// An error and its causes on one line: each cause is added only when the
/// text so far does not already contain it (most errors here quote their
/// source in their own message, so `{:#}` would print it again).
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod error_line_tests {
    use super::*;
    use crate::recovery::RecoveryError;
    use crate::segment::{DamagedBatch, SegmentError};

    /// A corruption error is printed once, naming the file, the offset, the
    /// batch and what to do (issue 14: the chain was printed three times).
    #[test]
    fn a_corruption_error_is_one_line_without_repeats() {
        let seg = SegmentError::BadRecord {
            path: "/d/cmdlog-00000000000000000001.open".into(),
            offset: 4242,
            reason: crate::record::DecodeError::BadBatchChecksum {
                stored: 1,
                computed: 2,
            },
            to_end: false,
            batch: Some(DamagedBatch {
                first_seq: 7,
                count: Some(3),
            }),
        };
        let seg_text = seg.to_string();
        let e = server::EngineError::Recovery(RecoveryError::Corrupt { source: seg });
        let line = error_line(&e);
        assert_eq!(line.matches(&seg_text).count(), 1, "{line}");
        assert_eq!(line.matches("/d/cmdlog-").count(), 1, "{line}");
        assert!(!line.contains('\n'));
        let anyhow_e = anyhow::Error::from(e);
        assert_eq!(error_line(anyhow_e.as_ref()), line);
    }
}
