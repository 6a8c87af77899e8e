//! RFC 3161 timestamps: a timestamp authority's signed statement that bytes existed at a
//! time, as sigstore bundles (`timestampVerificationData.rfc3161Timestamps`) and Notation
//! signatures (the `io.cncf.notary.timestampSignature` unsigned attribute) carry them.
//!
//! (Interface fixed; implementation in progress.)

use time::OffsetDateTime;

/// One trusted timestamp authority: its certificate chain and the window in which its
/// timestamps count (a sigstore trusted root's `timestampAuthorities[].validFor`; Notation's
/// TSA trust store has no window).
#[derive(Debug, Clone)]
pub struct Authority {
    /// DER certificates, the signing (leaf) certificate first, the root last.
    pub chain: Vec<Vec<u8>>,
    /// Timestamps before this do not count.
    pub valid_from: Option<OffsetDateTime>,
    /// Timestamps after this do not count (inclusive).
    pub valid_until: Option<OffsetDateTime>,
}

/// Why a timestamp does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("RFC 3161 timestamps are not supported yet")]
    Unsupported,
}

/// A timestamp that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `TSTInfo.genTime`.
    pub time: OffsetDateTime,
    /// Index into the authorities of the one that signed it.
    pub authority: usize,
}

/// Verifies a DER `TimeStampToken` (a CMS `ContentInfo` of `SignedData` whose content is a
/// `TSTInfo`) over `signed` (its message imprint is the hash of these bytes) by one of
/// `authorities`; returns its `genTime`.
pub fn verify(
    token: &[u8],
    signed: &[u8],
    authorities: &[Authority],
) -> Result<Verified, TimestampError> {
    let _ = (token, signed, authorities);
    Err(TimestampError::Unsupported)
}
