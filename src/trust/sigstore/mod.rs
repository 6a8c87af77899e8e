//! Sigstore bundle verification, as sigstore clients implement it (sigstore-go `pkg/verify`
//! is the reference: `SignedEntityVerifier.Verify`): a bundle ([`bundle::Bundle`]) is
//! checked against a trusted root ([`crate::trust::root::TrustedRoot`]), an artifact (its
//! bytes or its SHA-256) and a policy (a key, or a certificate identity), under
//! [`Requirements`] saying how many log entries, timestamps and SCTs must vouch for it.
//!
//! The same code serves the proxy and the `trustgate sigstore verify-bundle` conformance
//! command. Its answer is a [`Verified`] (who signed, when, what a DSSE envelope carried,
//! which logs and timestamp authorities vouched) or a [`SigstoreError`].

pub mod bundle;
mod entry;
mod verify;

use time::OffsetDateTime;

pub use bundle::{Bundle, MAX_BUNDLE_SIZE, MAX_TIMESTAMPS, MAX_TLOG_ENTRIES};
pub use entry::pae;
pub use verify::verify;

/// What the signed artifact is known as.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact's bytes.
    Bytes(&'a [u8]),
    /// Only the artifact's SHA-256 (an OCI manifest digest, `sha256:<hex>` on the CLI).
    Sha256([u8; 32]),
}

/// Who must have signed.
#[derive(Debug, Clone, Copy)]
pub enum Policy<'a> {
    /// A Fulcio certificate whose SAN is exactly `identity` and whose OIDC issuer extension
    /// is exactly `issuer` (sigstore-go `WithCertificateIdentity` with exact values).
    Identity { identity: &'a str, issuer: &'a str },
    /// A certificate of a trusted certificate authority, whoever it names: the caller checks
    /// [`Signer::Certificate`] against its own identities (the proxy matches several, some
    /// by regex, and counts each once).
    AnyCertificate,
    /// A key the verifier holds (DER SubjectPublicKeyInfo): the bundle must name a key, not
    /// carry a certificate (sigstore-go `WithKey`).
    Key { spki_der: &'a [u8] },
}

/// How much independent evidence a bundle needs (sigstore-go `VerifierConfig` thresholds;
/// the defaults are the public-good client's: `WithTransparencyLog(1)`,
/// `WithObserverTimestamps(1)`, `WithSignedCertificateTimestamps(1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirements {
    /// Log entries whose inclusion (SET or proof with checkpoint) verified.
    pub tlog_entries: usize,
    /// Observed signing times: SET-verified integrated times plus verified RFC 3161
    /// timestamps.
    pub observer_timestamps: usize,
    /// Verified RFC 3161 timestamps among them.
    pub signed_timestamps: usize,
    /// Embedded SCTs by trusted CT logs (keyless only).
    pub scts: usize,
}

impl Default for Requirements {
    fn default() -> Self {
        Requirements {
            tlog_entries: 1,
            observer_timestamps: 1,
            signed_timestamps: 0,
            scts: 1,
        }
    }
}

/// Who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The key the policy named: `sha256:<hex>` of its SubjectPublicKeyInfo.
    Key { id: String },
    /// A Fulcio certificate: its OIDC issuer extension (absent in some long-lived
    /// certificates, such as GitHub's release attester) and subject alternative names.
    Certificate {
        issuer: Option<String>,
        sans: Vec<String>,
    },
}

/// Where a signing time came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// A transparency log's SET-verified integrated time (the log's base URL).
    Tlog(String),
    /// An RFC 3161 timestamp (the authority's URI).
    Timestamp(String),
}

/// A signing time that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTime {
    pub time: OffsetDateTime,
    pub source: TimeSource,
}

/// What a DSSE envelope carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub payload_type: String,
    pub payload: Vec<u8>,
}

/// A bundle that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub signer: Signer,
    /// Every verified signing time (log integrated times, RFC 3161 timestamps).
    pub times: Vec<ObservedTime>,
    /// The DSSE payload, for a DSSE bundle.
    pub statement: Option<Statement>,
    /// Base URLs of the logs whose entries verified.
    pub tlogs: Vec<String>,
    /// URIs of the timestamp authorities whose timestamps verified.
    pub timestamp_authorities: Vec<String>,
    /// SCTs that verified (keyless).
    pub scts: usize,
}

/// Why a bundle does not verify, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigstoreError {
    #[error("the bundle is {0} bytes, more than {MAX_BUNDLE_SIZE}")]
    TooLarge(usize),
    #[error("the bundle is malformed: {0}")]
    Malformed(String),
    #[error("the bundle media type {0:?} is not a supported sigstore bundle version (0.1 to 0.3)")]
    MediaType(String),
    #[error("the policy asks for {expected}, but the bundle is signed with {found}")]
    MaterialMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("transparency log entry {index}: {reason}")]
    Tlog { index: usize, reason: String },
    #[error("transparency log entry {index} does not match the bundle: {reason}")]
    EntryMismatch { index: usize, reason: String },
    #[error("RFC 3161 timestamp {index} does not verify: {reason}")]
    Timestamp { index: usize, reason: String },
    #[error("not enough verified {what}: {got} < {needed}")]
    Threshold {
        what: &'static str,
        got: usize,
        needed: usize,
    },
    #[error("the signing certificate: {0}")]
    Certificate(String),
    #[error("the signing certificate's embedded SCTs: {0}")]
    Sct(String),
    #[error("the certificate identity {found:?} is not the one required ({expected:?})")]
    Identity {
        expected: String,
        found: Vec<String>,
    },
    #[error("the certificate's OIDC issuer {found:?} is not the one required ({expected:?})")]
    Issuer {
        expected: String,
        found: Option<String>,
    },
    #[error("the bundle's message digest does not match the artifact's SHA-256")]
    DigestMismatch,
    #[error("the signature does not verify: {0}")]
    Signature(String),
    #[error("the DSSE statement does not name the artifact: {0}")]
    Subject(String),
}

#[cfg(test)]
mod tests;
