//! Prometheus metrics: one [`Registry`], created once and handed down explicitly.
//!
//! Nothing here touches the `prometheus` crate's global default registry: `main` builds one
//! [`Metrics`], gives each subsystem the handle it needs ([`Metrics::cache`],
//! [`Metrics::upstream`], ...) and serves [`Metrics::render`] on the admin listener. Handles
//! are cheap to clone (the metric values are shared), so a subsystem keeps its own copy.
//!
//! Metric names and label values are a public interface (dashboards and alerts read them);
//! they change only through an issue. Labels are bounded: route kinds, status codes, results
//! from closed enums, and configured upstream and trust-server names. Never a repository, tag
//! or digest: a client could otherwise create series without limit.
//!
//! | family | labels |
//! |---|---|
//! | `trustgate_http_requests_total` | `kind`, `code` |
//! | `trustgate_http_request_duration_seconds` | `kind` |
//! | `trustgate_client_connections_refused_total` | |
//! | `trustgate_verifications_total` | `result` |
//! | `trustgate_decisions_total` | `action`, `result` |
//! | `trustgate_upstream_requests_total` | `upstream`, `code` |
//! | `trustgate_upstream_errors_total` | `upstream`, `kind` |
//! | `trustgate_upstream_request_duration_seconds` | `upstream` |
//! | `trustgate_upstream_ratelimit_remaining` | `upstream` |
//! | `trustgate_tag_stale_answers_total` | `upstream` |
//! | `trustgate_trust_fetch_duration_seconds` | `server` |
//! | `trustgate_trust_expiry_seconds` | `role` |
//! | `trustgate_trust_state_refused_total` | `server` |
//! | `trustgate_cache_hits_total`, `_misses_total`, `_evictions_total`, `_write_failures_total`, `_damaged_total` | |
//! | `trustgate_cache_bytes_served_total` | `source` |
//! | `trustgate_cache_size_bytes`, `trustgate_inflight_fetches` | |
//! | `trustgate_shared_store_hits_total`, `_misses_total`, `_digest_mismatches_total`, `_uploaded_bytes_total`, `_upload_failures_total` | |
//! | `trustgate_shared_store_errors_total` | `op` |
//! | `trustgate_records_written_total`, `trustgate_records_dropped_total` | `sink` |
//! | `trustgate_webhook_duration_seconds` | `sink` |
//! | `trustgate_config_reloads_total` | `result` |
//! | `trustgate_config_last_reload_successful` | |

mod cache;
mod config;
mod records;
mod requests;
mod shared;
mod trust;
mod upstream;
mod verify;

pub use self::cache::{CacheMetrics, CacheSource, InflightFetch};
pub use self::config::ConfigMetrics;
pub use self::records::RecordsMetrics;
pub use self::requests::HttpMetrics;
pub use self::shared::SharedStoreMetrics;
pub use self::trust::{TrustExpiry, TrustMetrics, TrustRole};
pub use self::upstream::{UpstreamErrorKind, UpstreamMetrics};
pub use self::verify::{VerificationResult, VerifyMetrics};

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The content type of [`Metrics::render`]'s output: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Latency buckets in seconds. The default buckets stop at 10 s; a proxy's time to headers
/// includes upstream and trust-server round trips, so the tail up to a minute matters.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every trustgate metric family, registered in one registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    verify: VerifyMetrics,
    upstream: UpstreamMetrics,
    trust: TrustMetrics,
    cache: CacheMetrics,
    shared: SharedStoreMetrics,
    records: RecordsMetrics,
    config: ConfigMetrics,
}

// === impl Metrics ===

impl Metrics {
    /// Creates and registers every family in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        Self {
            http: HttpMetrics::register(&registry),
            verify: VerifyMetrics::register(&registry),
            upstream: UpstreamMetrics::register(&registry),
            trust: TrustMetrics::register(&registry),
            cache: CacheMetrics::register(&registry),
            shared: SharedStoreMetrics::register(&registry),
            records: RecordsMetrics::register(&registry),
            config: ConfigMetrics::register(&registry),
            registry,
        }
    }

    /// Server-side request metrics (recorded by the server stack).
    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    /// Verification results and policy decisions.
    pub fn verify(&self) -> &VerifyMetrics {
        &self.verify
    }

    /// Upstream registry requests.
    pub fn upstream(&self) -> &UpstreamMetrics {
        &self.upstream
    }

    /// Trust-server fetches and trust-data expiry.
    pub fn trust(&self) -> &TrustMetrics {
        &self.trust
    }

    /// The content cache.
    pub fn cache(&self) -> &CacheMetrics {
        &self.cache
    }

    /// The shared store (object storage replicas share).
    pub fn shared(&self) -> &SharedStoreMetrics {
        &self.shared
    }

    /// Configuration reloads.
    pub fn config(&self) -> &ConfigMetrics {
        &self.config
    }

    /// Decision records (`records:`).
    pub fn records(&self) -> &RecordsMetrics {
        &self.records
    }

    /// The registry, for a collector this module does not define (e.g. process metrics).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every family in Prometheus text format 0.0.4 (see [`CONTENT_TYPE`]).
    ///
    /// A labelled family appears once it has at least one series; families whose label values
    /// come from closed enums are pre-populated with zeros so `rate()` works from the start.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding only fails on malformed families, which `register` already rules out; a
        // partial scrape is better than none, so log and return what was written.
        if let Err(error) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "failed to encode metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// === registration helpers ===

/// Registers a freshly built collector and returns it.
///
/// Building or registering fails only for invalid or duplicate names and labels: static
/// definitions in this module, checked by every test that builds a [`Metrics`]. A failure is
/// a programming error, so it panics rather than burdening every caller with a `Result`.
fn register<C>(registry: &Registry, name: &str, built: prometheus::Result<C>) -> C
where
    C: Collector + Clone + 'static,
{
    let collector = built.unwrap_or_else(|error| panic!("invalid metric {name}: {error}"));
    if let Err(error) = registry.register(Box::new(collector.clone())) {
        panic!("cannot register metric {name}: {error}");
    }
    collector
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, name, IntCounter::new(name, help))
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        name,
        IntCounterVec::new(Opts::new(name, help), labels),
    )
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, name, IntGauge::new(name, help))
}

fn int_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        name,
        IntGaugeVec::new(Opts::new(name, help), labels),
    )
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(registry, name, GaugeVec::new(Opts::new(name, help), labels))
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    register(registry, name, HistogramVec::new(opts, labels))
}

/// Converts a byte count or similar to a gauge value without wrapping.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
