//! `trustgate_config_*`: configuration reloads (SIGHUP). A reload that fails keeps the old
//! settings, so a revoked credential or a renewed certificate silently not taking effect is
//! only visible here (and in the log).

use prometheus::{IntCounterVec, IntGauge, Registry};

/// Reloads by result, and whether the last one took.
#[derive(Clone, Debug)]
pub struct ConfigMetrics {
    reloads: IntCounterVec,
    last_successful: IntGauge,
}

// === impl ConfigMetrics ===

impl ConfigMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        let reloads = super::counter_vec(
            registry,
            "trustgate_config_reloads_total",
            "Configuration reloads (SIGHUP) by result: success, or failure (the previous \
             configuration stays).",
            &["result"],
        );
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let last_successful = super::int_gauge(
            registry,
            "trustgate_config_last_reload_successful",
            "1 when the configuration in use is the file's (the last reload, or the start, \
             succeeded), 0 after a failed reload.",
        );
        last_successful.set(1);
        Self {
            reloads,
            last_successful,
        }
    }

    /// Counts a reload and remembers whether it took.
    pub fn reloaded(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.with_label_values(&[result]).inc();
        self.last_successful.set(i64::from(success));
    }
}
