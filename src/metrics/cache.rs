//! `trustgate_cache_*` and `trustgate_inflight_fetches`: the content store.

use std::fmt;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

/// Where served content bytes came from, as the `source` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheSource {
    /// The local content store.
    Cache,
    /// Streamed from the upstream registry (and written to the cache on the way).
    Upstream,
    /// Read from the shared store into the local cache, verified.
    Shared,
}

/// Cache hits, misses, evictions, write failures, damage, bytes served, size and in-flight
/// fetches.
#[derive(Clone, Debug)]
pub struct CacheMetrics {
    hits: IntCounter,
    misses: IntCounter,
    evictions: IntCounter,
    write_failures: IntCounter,
    damaged: IntCounter,
    bytes_served: IntCounterVec,
    size_bytes: IntGauge,
    inflight: IntGauge,
}

/// One upstream fetch in flight: counted in `trustgate_inflight_fetches` until dropped.
#[derive(Debug)]
#[must_use = "the fetch is only counted while this guard lives"]
pub struct InflightFetch {
    gauge: IntGauge,
}

// === impl CacheSource ===

impl CacheSource {
    /// The label value: `cache`, `upstream` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Upstream => "upstream",
            Self::Shared => "shared",
        }
    }
}

impl fmt::Display for CacheSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl CacheMetrics ===

impl CacheMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        let bytes_served = super::counter_vec(
            registry,
            "trustgate_cache_bytes_served_total",
            "Content bytes sent to clients, by where they came from.",
            &["source"],
        );
        // Both series exist from the start, so a hit ratio by bytes is defined at once.
        for source in [
            CacheSource::Cache,
            CacheSource::Upstream,
            CacheSource::Shared,
        ] {
            bytes_served.with_label_values(&[source.as_str()]);
        }
        Self {
            hits: super::counter(
                registry,
                "trustgate_cache_hits_total",
                "Content lookups answered from the cache.",
            ),
            misses: super::counter(
                registry,
                "trustgate_cache_misses_total",
                "Content lookups not in the cache.",
            ),
            evictions: super::counter(
                registry,
                "trustgate_cache_evictions_total",
                "Entries removed from the cache to stay within its size bound.",
            ),
            write_failures: super::counter(
                registry,
                "trustgate_cache_write_failures_total",
                "Content that could not be written to the cache (it was still served).",
            ),
            damaged: super::counter(
                registry,
                "trustgate_cache_damaged_total",
                "Cached objects found damaged on disk (wrong digest, or a manifest's media type \
                 that does not fit its bytes) and removed; they are fetched again.",
            ),
            bytes_served,
            size_bytes: super::int_gauge(
                registry,
                "trustgate_cache_size_bytes",
                "Bytes of content currently in the cache.",
            ),
            inflight: super::int_gauge(
                registry,
                "trustgate_inflight_fetches",
                "Upstream content fetches in progress (concurrent misses share one).",
            ),
        }
    }

    /// Counts a lookup answered from the cache.
    pub fn hit(&self) {
        self.hits.inc();
    }

    /// Counts a lookup that missed.
    pub fn miss(&self) {
        self.misses.inc();
    }

    /// Counts `n` evicted entries.
    pub fn evicted(&self, n: u64) {
        self.evictions.inc_by(n);
    }

    /// Counts a failed cache write.
    pub fn write_failed(&self) {
        self.write_failures.inc();
    }

    /// Counts a damaged object removed from the cache.
    pub fn damaged(&self) {
        self.damaged.inc();
    }

    /// Counts `bytes` sent to a client from `source`.
    pub fn served(&self, source: CacheSource, bytes: u64) {
        self.bytes_served
            .with_label_values(&[source.as_str()])
            .inc_by(bytes);
    }

    /// Sets the cache's current size.
    pub fn set_size_bytes(&self, bytes: u64) {
        self.size_bytes.set(super::saturating_i64(bytes));
    }

    /// Counts an upstream fetch as in flight until the returned guard is dropped, so that a
    /// fetch that fails or is cancelled midway is uncounted too.
    pub fn inflight_fetch(&self) -> InflightFetch {
        self.inflight.inc();
        InflightFetch {
            gauge: self.inflight.clone(),
        }
    }
}

// === impl InflightFetch ===

impl Drop for InflightFetch {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
