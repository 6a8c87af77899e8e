//! `trustgate_upstream_*`: requests to the registries trustgate mirrors.
//!
//! The `upstream` label is the registry's name from the configuration, never a host taken
//! from a request, so the number of series is bounded by the config file.

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

/// Why an upstream request failed without a usable response, as the `kind` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// DNS, TCP or TLS connection setup failed.
    Connect,
    /// The request or a body read timed out.
    Timeout,
    /// The token endpoint refused or failed (WWW-Authenticate Bearer flow).
    Auth,
    /// A redirect was refused (too many, or to a disallowed location).
    Redirect,
    /// The response body failed mid-stream.
    Body,
    /// Content fetched by digest did not hash to that digest.
    Digest,
    /// A body was larger than its limit (`limits.max_manifest_size`, a documented constant).
    TooLarge,
    /// Anything else: a malformed response, an unexpected protocol error.
    Other,
}

/// Upstream request counts, errors, latency and rate-limit headroom.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    ratelimit_remaining: IntGaugeVec,
    stale_tags: IntCounterVec,
}

// === impl UpstreamErrorKind ===

impl UpstreamErrorKind {
    /// The label value, e.g. `connect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::Redirect => "redirect",
            Self::Body => "body",
            Self::Digest => "digest",
            Self::TooLarge => "too_large",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for UpstreamErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl UpstreamMetrics ===

impl UpstreamMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        Self {
            requests: super::counter_vec(
                registry,
                "trustgate_upstream_requests_total",
                "Requests to upstream registries that got a response, by upstream and HTTP \
                 status code.",
                &["upstream", "code"],
            ),
            errors: super::counter_vec(
                registry,
                "trustgate_upstream_errors_total",
                "Upstream requests that failed without a usable response, by upstream and kind.",
                &["upstream", "kind"],
            ),
            duration: super::histogram_vec(
                registry,
                "trustgate_upstream_request_duration_seconds",
                "Time from sending an upstream request to receiving its response headers.",
                &["upstream"],
            ),
            ratelimit_remaining: super::int_gauge_vec(
                registry,
                "trustgate_upstream_ratelimit_remaining",
                "Requests left in the upstream's rate-limit window, from its last \
                 RateLimit-Remaining header.",
                &["upstream"],
            ),
            stale_tags: super::counter_vec(
                registry,
                "trustgate_tag_stale_answers_total",
                "Manifest requests by tag answered from the last digest the upstream gave for \
                 it, past its tag_ttl, because the upstream could not answer, by upstream.",
                &["upstream"],
            ),
        }
    }

    /// Records a response from `upstream` (a configured registry name) and its time to
    /// headers.
    pub fn response(&self, upstream: &str, status: StatusCode, elapsed: Duration) {
        self.requests
            .with_label_values(&[upstream, status.as_str()])
            .inc();
        self.duration
            .with_label_values(&[upstream])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed request to `upstream` (a configured registry name).
    pub fn error(&self, upstream: &str, kind: UpstreamErrorKind) {
        self.errors
            .with_label_values(&[upstream, kind.as_str()])
            .inc();
    }

    /// Sets the rate-limit headroom last reported by `upstream` (a configured registry name).
    pub fn set_ratelimit_remaining(&self, upstream: &str, remaining: u64) {
        self.ratelimit_remaining
            .with_label_values(&[upstream])
            .set(super::saturating_i64(remaining));
    }

    /// Counts a tag of `upstream` (a configured registry name) answered stale.
    pub fn stale_tag(&self, upstream: &str) {
        self.stale_tags.with_label_values(&[upstream]).inc();
    }
}
