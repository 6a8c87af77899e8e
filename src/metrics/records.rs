//! `trustgate_records_*`, `trustgate_webhook_duration_seconds`: decision records per sink
//! (`file`, `webhook:<index>`: configured, so bounded).

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, Registry};

/// Records written and dropped, per sink; webhook attempt latency.
#[derive(Clone, Debug)]
pub struct RecordsMetrics {
    written: IntCounterVec,
    dropped: IntCounterVec,
    webhook: HistogramVec,
}

// === impl RecordsMetrics ===

impl RecordsMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        Self {
            written: super::counter_vec(
                registry,
                "trustgate_records_written_total",
                "Decision records a sink wrote (file) or delivered (webhook).",
                &["sink"],
            ),
            dropped: super::counter_vec(
                registry,
                "trustgate_records_dropped_total",
                "Decision records a sink lost: its queue was full, or writing or delivery \
                 failed after its retries.",
                &["sink"],
            ),
            webhook: super::histogram_vec(
                registry,
                "trustgate_webhook_duration_seconds",
                "Time of one webhook delivery attempt, to its answer or failure.",
                &["sink"],
            ),
        }
    }

    /// Shows a configured sink's counters at zero from the start.
    pub fn init(&self, sink: &str) {
        self.written.with_label_values(&[sink]);
        self.dropped.with_label_values(&[sink]);
    }

    pub fn written(&self, sink: &str, n: u64) {
        self.written.with_label_values(&[sink]).inc_by(n);
    }

    pub fn dropped(&self, sink: &str) {
        self.dropped_n(sink, 1);
    }

    pub fn dropped_n(&self, sink: &str, n: u64) {
        self.dropped.with_label_values(&[sink]).inc_by(n);
    }

    pub fn webhook_latency(&self, sink: &str, elapsed: Duration) {
        self.webhook
            .with_label_values(&[sink])
            .observe(elapsed.as_secs_f64());
    }
}
