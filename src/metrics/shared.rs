//! `trustgate_shared_store_*`: the shared tier (object storage that replicas share). Every
//! family exists with the local backend too, at zero, so dashboards and alerts need no
//! special case.

use prometheus::{IntCounter, IntCounterVec, Registry};

use crate::cache::SharedOp;

/// Shared-tier reads (hits, misses, wrong objects), errors by operation, and uploads.
#[derive(Clone, Debug)]
pub struct SharedStoreMetrics {
    hits: IntCounter,
    misses: IntCounter,
    errors: IntCounterVec,
    mismatches: IntCounter,
    uploaded_bytes: IntCounter,
    upload_failures: IntCounter,
}

// === impl SharedStoreMetrics ===

impl SharedStoreMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        let errors = super::counter_vec(
            registry,
            "trustgate_shared_store_errors_total",
            "Shared store operations that failed or timed out, by operation (get, head, put).",
            &["op"],
        );
        for op in SharedOp::ALL {
            errors.with_label_values(&[op.as_str()]);
        }
        Self {
            hits: super::counter(
                registry,
                "trustgate_shared_store_hits_total",
                "Local cache misses answered from the shared store (after verification).",
            ),
            misses: super::counter(
                registry,
                "trustgate_shared_store_misses_total",
                "Local cache misses the shared store did not have either.",
            ),
            errors,
            mismatches: super::counter(
                registry,
                "trustgate_shared_store_digest_mismatches_total",
                "Shared store objects that did not match their digest and were not used.",
            ),
            uploaded_bytes: super::counter(
                registry,
                "trustgate_shared_store_uploaded_bytes_total",
                "Bytes of verified content uploaded to the shared store.",
            ),
            upload_failures: super::counter(
                registry,
                "trustgate_shared_store_upload_failures_total",
                "Uploads to the shared store that failed or were skipped (queue full).",
            ),
        }
    }

    /// Counts a hit.
    pub fn hit(&self) {
        self.hits.inc();
    }

    /// Counts a miss.
    pub fn miss(&self) {
        self.misses.inc();
    }

    /// Counts a failed operation.
    pub fn error(&self, op: SharedOp) {
        self.errors.with_label_values(&[op.as_str()]).inc();
    }

    /// Counts an object that did not match its digest.
    pub fn mismatch(&self) {
        self.mismatches.inc();
    }

    /// Counts `bytes` uploaded.
    pub fn uploaded(&self, bytes: u64) {
        self.uploaded_bytes.inc_by(bytes);
    }

    /// Counts a failed or skipped upload.
    pub fn upload_failed(&self) {
        self.upload_failures.inc();
    }

    /// Uploads failed or skipped so far (`trustgate cache warm` stops waiting for those).
    pub fn upload_failures(&self) -> u64 {
        self.upload_failures.get()
    }
}
