//! The snapshotter's Prometheus metrics (names fixed in the project's metric
//! list: `tiered_snapshotter_*`) and its health, encoded with
//! prometheus-client. Counters get their `_total` suffix from the encoder.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::sys::Space;

/// `outcome="ok|failed"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// `kind="log|snapshot"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `log` or `snapshot`.
    pub kind: &'static str,
}

/// `tier="primary|archive"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    /// `primary` or `archive`.
    pub tier: &'static str,
}

/// `step="snapshot|archive|retention|scan"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// Which step of a pass failed.
    pub step: &'static str,
}

/// Every metric the snapshotter exports, plus its health.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Snapshots made (`ok`) and attempts that published nothing (`failed`).
    pub snapshots: Family<OutcomeLabel, Counter>,
    /// Time to build and publish one snapshot.
    pub snapshot_duration_seconds: Histogram,
    /// Sequence number covered by the newest snapshot.
    pub last_snapshot_sequence: Gauge,
    /// Unix time (s) of the newest snapshot.
    pub last_snapshot_timestamp_seconds: Gauge<f64, AtomicU64>,
    /// Sealed logs not yet covered by a snapshot.
    pub pending_logs: Gauge,
    /// Files moved to the archive.
    pub archived_files: Family<KindLabel, Counter>,
    /// Bytes moved to the archive.
    pub archived_bytes: Family<KindLabel, Counter>,
    /// Bytes in the archive now (logs + snapshots).
    pub archive_bytes: Gauge,
    /// Files in the archive now.
    pub archive_files: Gauge,
    /// Files deleted by retention.
    pub retention_deleted_files: Counter,
    /// Bytes deleted by retention.
    pub retention_deleted_bytes: Counter,
    /// statvfs free bytes per tier.
    pub tier_free_bytes: Family<TierLabel, Gauge>,
    /// statvfs total bytes per tier.
    pub tier_total_bytes: Family<TierLabel, Gauge>,
    /// Failed steps.
    pub errors: Family<StepLabel, Counter>,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            snapshots: Family::default(),
            snapshot_duration_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            last_snapshot_sequence: Gauge::default(),
            last_snapshot_timestamp_seconds: Gauge::default(),
            pending_logs: Gauge::default(),
            archived_files: Family::default(),
            archived_bytes: Family::default(),
            archive_bytes: Gauge::default(),
            archive_files: Gauge::default(),
            retention_deleted_files: Counter::default(),
            retention_deleted_bytes: Counter::default(),
            tier_free_bytes: Family::default(),
            tier_total_bytes: Family::default(),
            errors: Family::default(),
            healthy: AtomicBool::new(false),
            last_error: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "tiered_snapshotter_snapshots",
            "Snapshots made (outcome=ok) and attempts that published nothing (outcome=failed)",
            m.snapshots.clone(),
        );
        registry.register(
            "tiered_snapshotter_snapshot_duration_seconds",
            "Time to build and publish one snapshot",
            m.snapshot_duration_seconds.clone(),
        );
        registry.register(
            "tiered_snapshotter_last_snapshot_sequence",
            "Sequence number covered by the newest snapshot",
            m.last_snapshot_sequence.clone(),
        );
        registry.register(
            "tiered_snapshotter_last_snapshot_timestamp_seconds",
            "Unix time of the newest snapshot",
            m.last_snapshot_timestamp_seconds.clone(),
        );
        registry.register(
            "tiered_snapshotter_pending_logs",
            "Completed command logs not yet covered by a snapshot",
            m.pending_logs.clone(),
        );
        registry.register(
            "tiered_snapshotter_archived_files",
            "Files moved to the archive tier",
            m.archived_files.clone(),
        );
        registry.register(
            "tiered_snapshotter_archived_bytes",
            "Bytes moved to the archive tier",
            m.archived_bytes.clone(),
        );
        registry.register(
            "tiered_snapshotter_archive_bytes",
            "Bytes in the archive now",
            m.archive_bytes.clone(),
        );
        registry.register(
            "tiered_snapshotter_archive_files",
            "Files in the archive now",
            m.archive_files.clone(),
        );
        registry.register(
            "tiered_snapshotter_retention_deleted_files",
            "Archived files deleted by retention",
            m.retention_deleted_files.clone(),
        );
        registry.register(
            "tiered_snapshotter_retention_deleted_bytes",
            "Archived bytes deleted by retention",
            m.retention_deleted_bytes.clone(),
        );
        registry.register(
            "tiered_snapshotter_tier_free_bytes",
            "Free bytes of each tier (statvfs)",
            m.tier_free_bytes.clone(),
        );
        registry.register(
            "tiered_snapshotter_tier_total_bytes",
            "Total bytes of each tier (statvfs)",
            m.tier_total_bytes.clone(),
        );
        registry.register(
            "tiered_snapshotter_errors",
            "Failed steps of a pass",
            m.errors.clone(),
        );
        // Every labelled series exists from the start at 0, so that
        // `increase()`/`rate()` in alert rules see the first failure too.
        for outcome in ["ok", "failed"] {
            let _ = m.snapshots.get_or_create(&OutcomeLabel { outcome });
        }
        for step in ["snapshot", "archive", "retention", "scan"] {
            let _ = m.errors.get_or_create(&StepLabel { step });
        }
        for kind in ["log", "snapshot"] {
            let _ = m.archived_files.get_or_create(&KindLabel { kind });
            let _ = m.archived_bytes.get_or_create(&KindLabel { kind });
        }
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a failed step and remembers its message for `/healthz`.
    pub fn step_failed(&self, step: &'static str, message: String) {
        self.errors.get_or_create(&StepLabel { step }).inc();
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
        self.healthy
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Marks the last pass as clean.
    pub fn pass_ok(&self) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.healthy
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// `Ok` when the last pass was clean, else the error it reported (or that
    /// no pass finished yet).
    pub fn health(&self) -> Result<(), String> {
        if self.healthy.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        match &*self.last_error.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Err("starting: no pass finished yet".to_string()),
        }
    }

    /// Records a published snapshot.
    pub fn snapshot_published(&self, last_seq: u64, unix_secs: f64, duration_secs: f64) {
        self.snapshots
            .get_or_create(&OutcomeLabel { outcome: "ok" })
            .inc();
        self.snapshot_duration_seconds.observe(duration_secs);
        self.set_newest_snapshot(last_seq, unix_secs);
    }

    /// Sets the newest-snapshot gauges (also at start, from what is on disk).
    pub fn set_newest_snapshot(&self, last_seq: u64, unix_secs: f64) {
        self.last_snapshot_sequence.set(gauge_i64(last_seq));
        self.last_snapshot_timestamp_seconds.set(unix_secs);
    }

    /// Records a snapshot attempt that published nothing.
    pub fn snapshot_failed(&self, message: String) {
        self.snapshots
            .get_or_create(&OutcomeLabel { outcome: "failed" })
            .inc();
        self.step_failed("snapshot", message);
    }

    /// Records one file moved to the archive (`kind` = `log` or `snapshot`).
    pub fn archived(&self, kind: &'static str, bytes: u64) {
        self.archived_files.get_or_create(&KindLabel { kind }).inc();
        self.archived_bytes
            .get_or_create(&KindLabel { kind })
            .inc_by(bytes);
    }

    /// Sets the archive size gauges.
    pub fn set_archive_size(&self, files: u64, bytes: u64) {
        self.archive_files.set(gauge_i64(files));
        self.archive_bytes.set(gauge_i64(bytes));
    }

    /// Sets the statvfs gauges of one tier (`primary` or `archive`).
    pub fn set_tier_space(&self, tier: &'static str, space: Space) {
        self.tier_free_bytes
            .get_or_create(&TierLabel { tier })
            .set(gauge_i64(space.free_bytes));
        self.tier_total_bytes
            .get_or_create(&TierLabel { tier })
            .set(gauge_i64(space.total_bytes));
    }

    /// Records one file deleted by retention.
    pub fn retention_deleted(&self, bytes: u64) {
        self.retention_deleted_files.inc();
        self.retention_deleted_bytes.inc_by(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_series_exist_at_zero_before_any_failure() {
        let text = Metrics::new().encode();
        for needle in [
            "tiered_snapshotter_snapshots_total{outcome=\"failed\"} 0",
            "tiered_snapshotter_snapshots_total{outcome=\"ok\"} 0",
            "tiered_snapshotter_errors_total{step=\"archive\"} 0",
            "tiered_snapshotter_errors_total{step=\"retention\"} 0",
            "tiered_snapshotter_archived_bytes_total{kind=\"snapshot\"} 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn exposition_has_the_agreed_names() {
        let m = Metrics::new();
        m.snapshot_published(42, 1_700_000_000.5, 0.01);
        m.archived("log", 1000);
        m.set_tier_space(
            "archive",
            Space {
                free_bytes: 5,
                total_bytes: 10,
            },
        );
        m.step_failed("scan", "boom".into());
        let text = m.encode();
        for needle in [
            "tiered_snapshotter_snapshots_total{outcome=\"ok\"} 1",
            "tiered_snapshotter_last_snapshot_sequence 42",
            "tiered_snapshotter_archived_bytes_total{kind=\"log\"} 1000",
            "tiered_snapshotter_archived_files_total{kind=\"log\"} 1",
            "tiered_snapshotter_tier_free_bytes{tier=\"archive\"} 5",
            "tiered_snapshotter_errors_total{step=\"scan\"} 1",
            "tiered_snapshotter_snapshot_duration_seconds_bucket",
            "tiered_snapshotter_retention_deleted_bytes_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert_eq!(m.health(), Err("boom".to_string()));
        m.pass_ok();
        assert_eq!(m.health(), Ok(()));
    }
}
