//! `trustgate_http_*`: what clients asked for and how it was answered.

use std::time::Duration;

use http::StatusCode;
use prometheus::{HistogramVec, IntCounter, IntCounterVec, Registry};

use crate::server::RouteKind;

/// Request counts and time to response headers, by route kind; connections refused.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    refused: IntCounter,
    auth_failures: IntCounterVec,
}

/// Why a client request was refused by authentication (`trustgate_auth_failures_total`).
pub const AUTH_FAILURE_REASONS: &[&str] = &[
    "missing_credentials",
    "unknown_user",
    "bad_password",
    "bad_token",
    "expired_token",
    "insufficient_scope",
    "unknown_certificate",
    "access_denied",
    "rate_limited",
    "login_throttled",
];

// === impl HttpMetrics ===

impl HttpMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        Self {
            requests: super::counter_vec(
                registry,
                "trustgate_http_requests_total",
                "Client requests answered, by route kind and HTTP status code.",
                &["kind", "code"],
            ),
            duration: super::histogram_vec(
                registry,
                "trustgate_http_request_duration_seconds",
                "Time from receiving a client request to sending its response headers.",
                &["kind"],
            ),
            refused: super::counter(
                registry,
                "trustgate_client_connections_refused_total",
                "Client connections closed at accept: their peer had \
                 limits.max_connections_per_client open already.",
            ),
            auth_failures: {
                let family = super::counter_vec(
                    registry,
                    "trustgate_auth_failures_total",
                    "Client requests refused by authentication, by reason.",
                    &["reason"],
                );
                for reason in AUTH_FAILURE_REASONS {
                    family.with_label_values(&[*reason]).inc_by(0);
                }
                family
            },
        }
    }

    /// Counts a request refused by authentication; `reason` is one of
    /// [`AUTH_FAILURE_REASONS`].
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Counts a connection closed at accept because its peer was at its cap.
    pub fn connection_refused(&self) {
        self.refused.inc();
    }

    /// Records one answered request.
    ///
    /// `elapsed` is the time to response headers: blob bodies stream for as long as the blob
    /// is large, which says nothing about the proxy's latency.
    pub fn observe(&self, kind: RouteKind, status: StatusCode, elapsed: Duration) {
        self.requests
            .with_label_values(&[kind.as_str(), status.as_str()])
            .inc();
        self.duration
            .with_label_values(&[kind.as_str()])
            .observe(elapsed.as_secs_f64());
    }
}
