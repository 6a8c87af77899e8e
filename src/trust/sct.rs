//! Certificate Transparency: signed certificate timestamps (RFC 6962) embedded in a
//! certificate, as Fulcio embeds them, verified against trusted CT log keys.
//!
//! (Interface fixed; implementation in progress.)

use time::OffsetDateTime;

use crate::trust::tlog::LogKey;

/// One trusted CT log (a sigstore trusted root's `ctlogs[]`).
#[derive(Debug, Clone)]
pub struct CtLog {
    /// The log's key; its ID is the SHA-256 of the DER SubjectPublicKeyInfo.
    pub key: LogKey,
    /// SCTs with a timestamp before this do not count.
    pub valid_from: Option<OffsetDateTime>,
    /// SCTs with a timestamp after this do not count (inclusive).
    pub valid_until: Option<OffsetDateTime>,
}

/// Why a certificate's SCTs do not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctError {
    #[error("embedded SCTs are not supported yet")]
    Unsupported,
}

/// Verifies the SCTs embedded in `leaf` (DER, extension 1.3.6.1.4.1.11129.2.4.2) whose
/// issuer's DER SubjectPublicKeyInfo is `issuer_spki`: at least `threshold` of them must be
/// by distinct trusted `logs` and verify over the reconstructed precertificate entry.
/// Returns how many verified.
pub fn verify_embedded(
    leaf: &[u8],
    issuer_spki: &[u8],
    logs: &[CtLog],
    threshold: usize,
) -> Result<usize, SctError> {
    let _ = (leaf, issuer_spki, logs, threshold);
    Err(SctError::Unsupported)
}
