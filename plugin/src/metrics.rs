//! Prometheus metrics (exposed names in `/work/notes/metrics.md`):
//! request counts, errors and latency by endpoint, plus gauges for volumes,
//! mount references, the tiers' bytes (statvfs at scrape time) and states
//! (`tier_state{tier,state}` is 1 for the current state: ok, missing,
//! foreign), and counters of lazy unmounts and of stale mount references
//! dropped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::driver::{Counts, QuotaSample};
use crate::mounts::FsUsage;
use crate::protocol::Endpoint;

/// Content type of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierStateLabels {
    tier: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VolumeTierLabels {
    volume: String,
    tier: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100us .. ~1.6s
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// How a request was answered, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered without an error.
    Ok,
    /// `Get` of a volume that does not exist: an error reply, as the
    /// protocol wants, but the daemon's normal probe before a `Create`, so
    /// counted in `request_not_found_total`, not `request_errors_total`.
    NotFound,
    /// Answered with an error.
    Error,
}

/// The plugin's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<EndpointLabels, Counter>,
    errors: Family<EndpointLabels, Counter>,
    not_found: Family<EndpointLabels, Counter>,
    duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    volumes: Gauge,
    active_mounts: Gauge,
    free: Family<TierLabels, Gauge>,
    used: Family<TierLabels, Gauge>,
    total: Family<TierLabels, Gauge>,
    tier_state: Family<TierStateLabels, Gauge>,
    lazy_unmounts: Counter,
    stale_references: Counter,
    /// Driver totals already added to the counters above.
    seen: std::sync::Mutex<(u64, u64)>,
    quota_limit: Family<VolumeTierLabels, Gauge>,
    quota_used: Family<VolumeTierLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tiered_plugin");
        let m = Metrics {
            requests: Family::default(),
            errors: Family::default(),
            not_found: Family::default(),
            duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            volumes: Gauge::default(),
            active_mounts: Gauge::default(),
            free: Family::default(),
            used: Family::default(),
            total: Family::default(),
            tier_state: Family::default(),
            lazy_unmounts: Counter::default(),
            stale_references: Counter::default(),
            seen: std::sync::Mutex::new((0, 0)),
            quota_limit: Family::default(),
            quota_used: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "VolumeDriver requests by endpoint",
            m.requests.clone(),
        );
        registry.register(
            "request_errors",
            "VolumeDriver requests answered with an error, by endpoint",
            m.errors.clone(),
        );
        registry.register(
            "request_not_found",
            "Get requests for a volume that does not exist (the daemon's probe before a Create), by endpoint",
            m.not_found.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "VolumeDriver request latency by endpoint",
            m.duration.clone(),
        );
        registry.register("volumes", "Volumes known to the plugin", m.volumes.clone());
        registry.register(
            "active_mounts",
            "Mount references held, over all volumes and IDs",
            m.active_mounts.clone(),
        );
        registry.register(
            "tier_free_bytes",
            "Bytes available on the tier's file system",
            m.free.clone(),
        );
        registry.register(
            "tier_used_bytes",
            "Bytes used on the tier's file system",
            m.used.clone(),
        );
        registry.register(
            "tier_total_bytes",
            "Size of the tier's file system",
            m.total.clone(),
        );
        registry.register(
            "tier_state",
            "1 for the tier's current state (ok, missing, foreign), else 0",
            m.tier_state.clone(),
        );
        registry.register(
            "lazy_unmounts",
            "Unmounts that stayed busy (EBUSY) and were detached lazily",
            m.lazy_unmounts.clone(),
        );
        registry.register(
            "stale_references_dropped",
            "Mount references of an earlier plugin lifetime dropped",
            m.stale_references.clone(),
        );
        registry.register(
            "volume_quota_limit_bytes",
            "Quota limit of a volume's tier, as enforced by the tier's file system",
            m.quota_limit.clone(),
        );
        registry.register(
            "volume_quota_used_bytes",
            "Bytes charged to a volume's tier quota",
            m.quota_used.clone(),
        );
        // Every endpoint shows up from the first scrape, at zero.
        for e in Endpoint::ALL {
            let l = EndpointLabels {
                endpoint: e.label(),
            };
            let _ = m.requests.get_or_create(&l);
            let _ = m.errors.get_or_create(&l);
        }
        let _ = m.not_found.get_or_create(&EndpointLabels {
            endpoint: Endpoint::Get.label(),
        });
        Metrics { registry, ..m }
    }

    /// Records one answered request.
    pub fn observe(&self, endpoint: Endpoint, outcome: Outcome, seconds: f64) {
        let l = EndpointLabels {
            endpoint: endpoint.label(),
        };
        self.requests.get_or_create(&l).inc();
        match outcome {
            Outcome::Ok => {}
            Outcome::NotFound => {
                self.not_found.get_or_create(&l).inc();
            }
            Outcome::Error => {
                self.errors.get_or_create(&l).inc();
            }
        }
        self.duration.get_or_create(&l).observe(seconds);
    }

    /// Replaces the per-volume quota gauges (removed volumes disappear).
    pub fn set_quotas(&self, samples: &[QuotaSample]) {
        self.quota_limit.clear();
        self.quota_used.clear();
        for s in samples {
            let l = VolumeTierLabels {
                volume: s.volume.clone(),
                tier: s.tier.label(),
            };
            self.quota_limit.get_or_create(&l).set(clamp(s.limit_bytes));
            self.quota_used.get_or_create(&l).set(clamp(s.used_bytes));
        }
    }

    /// Encodes the text exposition after refreshing the gauges.
    pub fn render(&self, counts: Counts, tiers: Option<(FsUsage, FsUsage)>) -> String {
        self.volumes.set(clamp(counts.volumes));
        self.active_mounts.set(clamp(counts.active_mounts));
        {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.lazy_unmounts
                .inc_by(counts.lazy_unmounts.saturating_sub(seen.0));
            self.stale_references
                .inc_by(counts.stale_references_dropped.saturating_sub(seen.1));
            *seen = (
                seen.0.max(counts.lazy_unmounts),
                seen.1.max(counts.stale_references_dropped),
            );
        }
        for (tier, current) in ["primary", "archive"].into_iter().zip(counts.tier_states) {
            for state in crate::tiers::TierState::LABELS {
                self.tier_state
                    .get_or_create(&TierStateLabels { tier, state })
                    .set(i64::from(state == current));
            }
        }
        if let Some((primary, archive)) = tiers {
            for (tier, u) in [("primary", primary), ("archive", archive)] {
                let l = TierLabels { tier };
                self.free.get_or_create(&l).set(clamp(u.free_bytes));
                self.used.get_or_create(&l).set(clamp(u.used_bytes));
                self.total.get_or_create(&l).set(clamp(u.total_bytes));
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_gauges_follow_the_volumes() {
        let m = Metrics::new();
        let sample = |volume: &str, tier, limit_bytes, used_bytes| QuotaSample {
            volume: volume.into(),
            tier,
            limit_bytes,
            used_bytes,
        };
        use crate::quota::Tier;
        m.set_quotas(&[
            sample("a", Tier::Primary, 20 << 20, 5),
            sample("a", Tier::Archive, 30 << 20, 7),
            sample("b", Tier::Primary, 1 << 20, 0),
        ]);
        let text = m.render(Counts::default(), None);
        for needle in [
            "tiered_plugin_volume_quota_limit_bytes{volume=\"a\",tier=\"primary\"} 20971520",
            "tiered_plugin_volume_quota_used_bytes{volume=\"a\",tier=\"archive\"} 7",
            "tiered_plugin_volume_quota_limit_bytes{volume=\"b\",tier=\"primary\"} 1048576",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        m.set_quotas(&[sample("a", Tier::Primary, 20 << 20, 9)]);
        let text = m.render(Counts::default(), None);
        assert!(!text.contains("volume=\"b\""), "{text}");
        assert!(
            text.contains("tiered_plugin_volume_quota_used_bytes{volume=\"a\",tier=\"primary\"} 9")
        );
    }

    #[test]
    fn exposition_has_the_agreed_names() {
        let m = Metrics::new();
        m.observe(Endpoint::Create, Outcome::Ok, 0.001);
        m.observe(Endpoint::Create, Outcome::Error, 0.002);
        m.observe(Endpoint::Get, Outcome::NotFound, 0.001);
        let text = m.render(
            Counts {
                volumes: 2,
                active_mounts: 3,
                lazy_unmounts: 4,
                stale_references_dropped: 5,
                tier_states: ["ok", "missing"],
            },
            Some((
                FsUsage {
                    total_bytes: 10,
                    used_bytes: 4,
                    free_bytes: 6,
                },
                FsUsage::default(),
            )),
        );
        for needle in [
            "tiered_plugin_requests_total{endpoint=\"create\"} 2",
            "tiered_plugin_request_errors_total{endpoint=\"create\"} 1",
            "tiered_plugin_requests_total{endpoint=\"list\"} 0",
            "tiered_plugin_requests_total{endpoint=\"get\"} 1",
            "tiered_plugin_request_not_found_total{endpoint=\"get\"} 1",
            "tiered_plugin_request_errors_total{endpoint=\"get\"} 0",
            "tiered_plugin_request_duration_seconds_count{endpoint=\"create\"} 2",
            "tiered_plugin_volumes 2",
            "tiered_plugin_active_mounts 3",
            "tiered_plugin_tier_free_bytes{tier=\"primary\"} 6",
            "tiered_plugin_tier_used_bytes{tier=\"primary\"} 4",
            "tiered_plugin_tier_total_bytes{tier=\"archive\"} 0",
            "tiered_plugin_tier_state{tier=\"primary\",state=\"ok\"} 1",
            "tiered_plugin_tier_state{tier=\"archive\",state=\"ok\"} 0",
            "tiered_plugin_tier_state{tier=\"archive\",state=\"missing\"} 1",
            "tiered_plugin_lazy_unmounts_total 4",
            "tiered_plugin_stale_references_dropped_total 5",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
