//! `trustgate_verifications_total` and `trustgate_decisions_total`: what the verifiers found
//! and what the policy did about it.

use std::fmt;

use prometheus::{IntCounterVec, Registry};

use crate::policy::Action;

/// The outcome of one verification, as the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerificationResult {
    /// The tag or digest is signed as the rule requires.
    Verified,
    /// No role the rule accepts signs it, or the repository has no trust data.
    Unsigned,
    /// Content does not match the signed digest or length.
    Mismatch,
    /// It was signed before and no longer is.
    Revoked,
    /// Signed, but not by a signer the rule requires, or under a root the rule does not pin.
    UntrustedSigner,
    /// The trust data has expired.
    Expired,
    /// The trust data could not be fetched or did not verify (signatures, rollback, size).
    TrustError,
}

const ALL_RESULTS: [VerificationResult; 7] = [
    VerificationResult::Verified,
    VerificationResult::Unsigned,
    VerificationResult::Mismatch,
    VerificationResult::Revoked,
    VerificationResult::UntrustedSigner,
    VerificationResult::Expired,
    VerificationResult::TrustError,
];

const ALL_ACTIONS: [Action; 4] = [Action::Verify, Action::Audit, Action::Allow, Action::Deny];

/// The `result` of a decision whose action runs no verifier (`allow`, `deny`).
const NOT_VERIFIED: &str = "none";

/// Verification outcomes and the decisions taken on them.
#[derive(Clone, Debug)]
pub struct VerifyMetrics {
    verifications: IntCounterVec,
    decisions: IntCounterVec,
}

impl From<crate::trust::RefusalKind> for VerificationResult {
    fn from(kind: crate::trust::RefusalKind) -> Self {
        use crate::trust::RefusalKind as K;
        match kind {
            K::Unsigned => Self::Unsigned,
            K::Revoked => Self::Revoked,
            K::Mismatch => Self::Mismatch,
            K::UntrustedSigner => Self::UntrustedSigner,
            K::Expired => Self::Expired,
            K::TrustError => Self::TrustError,
        }
    }
}

// === impl VerificationResult ===

impl VerificationResult {
    /// The label value, e.g. `untrusted_signer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Unsigned => "unsigned",
            Self::Mismatch => "mismatch",
            Self::Revoked => "revoked",
            Self::UntrustedSigner => "untrusted_signer",
            Self::Expired => "expired",
            Self::TrustError => "trust_error",
        }
    }

    /// Every result, in declaration order.
    pub fn all() -> &'static [Self] {
        &ALL_RESULTS
    }
}

impl fmt::Display for VerificationResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl VerifyMetrics ===

impl VerifyMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
        let verifications = super::counter_vec(
            registry,
            "trustgate_verifications_total",
            "Verifier outcomes for tags and digests, by result.",
            &["result"],
        );
        let decisions = super::counter_vec(
            registry,
            "trustgate_decisions_total",
            "Policy decisions on client requests, by the matched rule's action and the \
             verification result (none for actions that do not verify).",
            &["action", "result"],
        );
        // Zero series for every combination that can occur, so that dashboards and alerts see
        // `rate(...) == 0` rather than no data before the first refusal.
        for result in ALL_RESULTS {
            verifications.with_label_values(&[result.as_str()]);
        }
        for action in ALL_ACTIONS {
            if action.verifies() {
                for result in ALL_RESULTS {
                    decisions.with_label_values(&[action.as_str(), result.as_str()]);
                }
            } else {
                decisions.with_label_values(&[action.as_str(), NOT_VERIFIED]);
            }
        }
        Self {
            verifications,
            decisions,
        }
    }

    /// Counts one verifier outcome.
    pub fn verification(&self, result: VerificationResult) {
        self.verifications
            .with_label_values(&[result.as_str()])
            .inc();
    }

    /// Counts one decision on a client request.
    ///
    /// `result` is the verification the decision rests on: `Some` for `verify` and `audit`
    /// (where `audit` with anything but `verified` is what `verify` would have refused), `None`
    /// for `allow` and `deny`.
    pub fn decision(&self, action: Action, result: Option<VerificationResult>) {
        let result = result.map_or(NOT_VERIFIED, VerificationResult::as_str);
        self.decisions
            .with_label_values(&[action.as_str(), result])
            .inc();
    }
}
