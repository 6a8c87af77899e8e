//! RFC 3161 timestamps: a timestamp authority's signed statement that bytes existed at a
//! time, as sigstore bundles (`timestampVerificationData.rfc3161Timestamps`) and Notation
//! signatures (the `io.cncf.notary.timestampSignature` unsigned attribute) carry them.
//!
//! [`verify`] follows sigstore/timestamp-authority `pkg/verification/verify.go`
//! (`VerifyTimestampResponse`) and sigstore-go `pkg/root/timestamping_authority.go`
//! (`SigstoreTimestampingAuthority.Verify`) / `pkg/verify/tsa.go` (`verifySignedTimestamp`):
//! the token is parsed with bounds ([`token`]), its message imprint must be the hash of the
//! signed bytes, and then each trusted authority is tried in turn: its signing certificate
//! must be the signer, the CMS signature over the signed attributes must verify under that
//! certificate's key ([`signer`]), the certificate must chain to the authority's root at
//! `genTime` with the time-stamping EKU, and `genTime` must lie within the authority's window.

mod signer;
mod token;

use std::sync::OnceLock;

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::trust::x509;

pub use token::{MAX_CERTIFICATES, MAX_SIGNERS, MAX_TOKEN_LEN};

/// One trusted timestamp authority: its certificate chain and the window in which its
/// timestamps count (a sigstore trusted root's `timestampAuthorities[].validFor`; Notation's
/// TSA trust store has no window).
///
/// As sigstore-go `root.ParseTimestampingAuthority` reads a chain: the first certificate is
/// the TSA's signing certificate unless it is a CA; an authority whose chain holds only CAs
/// (Notation's TSA trust store: one self-signed root) takes the signing certificate from
/// the token, which must then embed it.
#[derive(Debug, Clone)]
pub struct Authority {
    /// DER certificates, the signing (leaf) certificate first, the root last.
    pub chain: Vec<Vec<u8>>,
    /// Timestamps before this do not count.
    pub valid_from: Option<OffsetDateTime>,
    /// Timestamps after this do not count (inclusive).
    pub valid_until: Option<OffsetDateTime>,
    /// The chain as a pool, made once ([`Authority::new`] makes it at once, else the first
    /// verification does), with the chain it was made of: a pool of another chain (`chain`
    /// changed since) is not used.
    pool: OnceLock<MadePool>,
}

/// A chain made a pool (or why it could not be), with the chain it was made of.
type MadePool = (Vec<Vec<u8>>, Result<x509::Pool, String>);

impl Authority {
    /// An authority of `chain` (signing certificate first, root last) for timestamps in
    /// `valid_from..=valid_until`; its chain is made a pool now, once (the signatures
    /// between its certificates checked then, not again for each timestamp).
    pub fn new(
        chain: Vec<Vec<u8>>,
        valid_from: Option<OffsetDateTime>,
        valid_until: Option<OffsetDateTime>,
    ) -> Self {
        let authority = Authority {
            chain,
            valid_from,
            valid_until,
            pool: OnceLock::new(),
        };
        let _ = authority.pool();
        authority
    }

    /// The chain as a pool: the last certificate the anchor, the others intermediates.
    fn pool(&self) -> Result<std::borrow::Cow<'_, x509::Pool>, String> {
        let make = || x509::Pool::from_chain(&self.chain).map_err(|e| e.to_string());
        let (chain, pool) = self.pool.get_or_init(|| (self.chain.clone(), make()));
        if *chain == self.chain {
            pool.as_ref()
                .map(std::borrow::Cow::Borrowed)
                .map_err(Clone::clone)
        } else {
            make().map(std::borrow::Cow::Owned)
        }
    }
}

/// Why a timestamp does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("the timestamp token is {len} bytes, more than the {max} accepted")]
    TooLarge { len: usize, max: usize },
    #[error("the timestamp token is not DER: its {what} does not parse: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("the timestamp authority refused the request (PKIStatus {0}); the response holds no timestamp")]
    Refused(u8),
    #[error("the timestamp response holds no TimeStampToken")]
    NoToken,
    #[error("the timestamp token is a CMS ContentInfo of {0}, not SignedData")]
    NotSignedData(String),
    #[error("the timestamp token encapsulates content of type {0}, not an RFC 3161 TSTInfo")]
    NotTstInfo(String),
    #[error("the timestamp token has no encapsulated TSTInfo (detached content)")]
    NoTstInfo,
    #[error("the timestamp token has no SignerInfo")]
    NoSigner,
    #[error("the timestamp token has {count} SignerInfos, more than the {max} accepted")]
    TooManySigners { count: usize, max: usize },
    #[error("the timestamp token embeds {count} certificates, more than the {max} accepted")]
    TooManyCertificates { count: usize, max: usize },
    #[error("the timestamp's genTime is malformed: {0}")]
    BadGenTime(String),
    #[error(
        "the timestamp uses hash algorithm {0}; only SHA-256, SHA-384 and SHA-512 are accepted"
    )]
    UnsupportedHash(String),
    #[error("the timestamp's message imprint is not the hash of the signature it should cover (a timestamp of other bytes)")]
    ImprintMismatch,
    #[error("no timestamp authority is trusted (the trusted root lists none)")]
    NoAuthorities,
    #[error("the trusted timestamp authority's certificate chain is unusable: {0}")]
    BadAuthority(String),
    #[error("the timestamp token embeds certificates, but not the trusted authority's signing certificate (a timestamp from another TSA)")]
    EmbeddedCertMismatch,
    #[error("the timestamp token embeds no certificate naming its signer, and the trusted authority lists no signing certificate")]
    NoSigningCertificate,
    #[error("no SignerInfo of the timestamp token names the authority's signing certificate (a timestamp from another TSA)")]
    SignerNotAuthority,
    #[error("the timestamp's SignerInfo has no signed attributes (RFC 3161 section 2.4.1 requires them)")]
    NoSignedAttributes,
    #[error("the timestamp's signed attributes lack a single {0} attribute")]
    MissingAttribute(&'static str),
    #[error("the timestamp's content-type attribute is {0}, not id-ct-TSTInfo")]
    ContentTypeMismatch(String),
    #[error("the timestamp's message-digest attribute is not the hash of its TSTInfo (the TSTInfo was altered)")]
    MessageDigestMismatch,
    #[error(
        "the timestamp's signing-certificate attribute does not name the signing certificate: {0}"
    )]
    SigningCertificateMismatch(String),
    #[error("the timestamp's signature algorithm is not supported: {0}")]
    UnsupportedSignature(String),
    #[error("the timestamp's signature does not verify under the authority's signing certificate")]
    BadSignature,
    #[error("the TSA signing certificate's extended key usage is wrong: {0} (RFC 3161 section 2.3: exactly id-kp-timeStamping, critical)")]
    Eku(String),
    #[error("the timestamp's genTime {time} lies outside its signing certificate's validity {not_before}..{not_after}")]
    OutsideCertificateValidity {
        time: OffsetDateTime,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    },
    #[error("the TSA signing certificate does not chain to the trusted authority's root at genTime: {0}")]
    Chain(String),
    #[error("the timestamp's genTime {time} lies outside the trusted authority's validity window ({from:?}..={until:?})")]
    OutsideAuthorityWindow {
        time: OffsetDateTime,
        from: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    },
    #[error("no trusted timestamp authority verifies the token: {}", list(.0))]
    NoAuthority(Vec<(usize, TimestampError)>),
}

fn list(reasons: &[(usize, TimestampError)]) -> String {
    reasons
        .iter()
        .map(|(i, e)| format!("authority {i}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A timestamp that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `TSTInfo.genTime`.
    pub time: OffsetDateTime,
    /// Index into the authorities of the one that signed it.
    pub authority: usize,
    /// How far the true time may lie from `time` either way ([`Examined::accuracy`]).
    pub accuracy: time::Duration,
    /// The path that verified, DER: the TSA's signing certificate first, then the
    /// intermediates, the authority's root last.
    pub chain: Vec<Vec<u8>>,
}

/// What a token says, before any authority is asked: its time and accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Examined {
    /// `TSTInfo.genTime`.
    pub time: OffsetDateTime,
    /// `TSTInfo.accuracy` when given; else 1 s under the baseline time-stamp policy (RFC 3628
    /// section 5.2, `0.4.0.2023.1.1`), else 0 (notaryproject/specifications
    /// `trust-store-trust-policy.md`, "Steps", as tspclient-go `TSTInfo.Validate` reads it).
    pub accuracy: time::Duration,
}

/// ETSI's baseline time-stamp policy (RFC 3628 section 5.2).
const BASELINE_POLICY: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

/// Parses a DER `TimeStampToken` and checks its message imprint is the hash of `signed`,
/// trusting nothing yet (tspclient-go `ParseSignedToken`, `Info`, `TSTInfo.Validate`).
pub fn examine(token: &[u8], signed: &[u8]) -> Result<Examined, TimestampError> {
    let token = token::parse(token)?;
    check_imprint(&token, signed)?;
    Ok(examined(&token))
}

fn examined(token: &token::Token) -> Examined {
    let info = &token.tst_info;
    let accuracy = match info.accuracy {
        Some(a) if !a.is_zero() => a,
        _ if info.policy == BASELINE_POLICY => time::Duration::SECOND,
        _ => time::Duration::ZERO,
    };
    Examined {
        time: info.gen_time,
        accuracy,
    }
}

/// verify.go `verifyHashedMessages`: the imprint is the hash of the timestamped bytes.
fn check_imprint(token: &token::Token, signed: &[u8]) -> Result<(), TimestampError> {
    let imprint_alg = signer::digest_alg(&token.tst_info.imprint_alg)?;
    let digest = aws_lc_rs::digest::digest(imprint_alg, signed);
    if !constant_time_eq(digest.as_ref(), &token.tst_info.imprint) {
        return Err(TimestampError::ImprintMismatch);
    }
    Ok(())
}

/// Verifies a DER `TimeStampToken` (a CMS `ContentInfo` of `SignedData` whose content is a
/// `TSTInfo`) over `signed` (its message imprint is the hash of these bytes) by one of
/// `authorities`; returns its `genTime`.
///
/// With one authority its own reason is returned; with several,
/// [`TimestampError::NoAuthority`] lists each one's.
pub fn verify(
    token: &[u8],
    signed: &[u8],
    authorities: &[Authority],
) -> Result<Verified, TimestampError> {
    let token = token::parse(token)?;
    check_imprint(&token, signed)?;
    if authorities.is_empty() {
        return Err(TimestampError::NoAuthorities);
    }
    // tsa.go `verifySignedTimestamp`: the first authority that verifies the token is its
    // signer.
    let mut reasons = Vec::new();
    for (index, authority) in authorities.iter().enumerate() {
        match verify_by(&token, authority) {
            Ok((time, chain)) => {
                return Ok(Verified {
                    time,
                    authority: index,
                    accuracy: examined(&token).accuracy,
                    chain,
                })
            }
            Err(e) => reasons.push((index, e)),
        }
    }
    if reasons.len() == 1 {
        return Err(reasons.remove(0).1);
    }
    Err(TimestampError::NoAuthority(reasons))
}

/// Whether two byte strings are equal (a digest comparison; the lengths are public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token checked against one authority; its genTime and the path that verified if
/// that authority signed it.
fn verify_by(
    token: &token::Token,
    authority: &Authority,
) -> Result<(OffsetDateTime, Vec<Vec<u8>>), TimestampError> {
    let gen_time = token.tst_info.gen_time;
    let (leaf_der, offered) = signing_certificate(token, authority)?;
    let (_, leaf) = X509Certificate::from_der(&leaf_der)
        .map_err(|e| TimestampError::BadAuthority(format!("signing certificate: {e}")))?;

    // RFC 5652 section 5.4 / verify.go `verifyTSRWithChain`: a SignerInfo naming the leaf,
    // whose signed attributes bind the TSTInfo and are signed by the leaf's key.
    let info = token
        .signers
        .iter()
        .find(|s| signer::names(&s.sid, &leaf))
        .ok_or(TimestampError::SignerNotAuthority)?;
    signer::check(info, token, &leaf, &leaf_der)?;

    // verify.go `verifyLeafCertEKU` / `verifyExtendedKeyUsage` (RFC 3161 section 2.3).
    check_eku(&leaf)?;

    // genTime within the leaf's validity (what verifying the chain at genTime implies,
    // checked first for a clear reason, to the fraction of a second).
    let validity = leaf.validity();
    let (not_before, not_after) = (
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    );
    if gen_time < not_before || gen_time > not_after {
        return Err(TimestampError::OutsideCertificateValidity {
            time: gen_time,
            not_before,
            not_after,
        });
    }

    // The chain to the authority's root, every certificate valid at genTime (sigstore
    // verifies a TSA chain at the timestamp's time, not now: a TSA certificate may expire
    // after it signed).
    let pool = authority.pool().map_err(TimestampError::BadAuthority)?;
    let path = pool
        .verify(
            &leaf_der,
            &offered,
            gen_time.unix_timestamp(),
            x509::EKU_TIME_STAMPING,
        )
        .map_err(|e| TimestampError::Chain(e.to_string()))?;

    // timestamping_authority.go `Verify`: the authority's window, both ends inclusive.
    let before = authority.valid_from.is_some_and(|from| gen_time < from);
    let after = authority.valid_until.is_some_and(|until| gen_time > until);
    if before || after {
        return Err(TimestampError::OutsideAuthorityWindow {
            time: gen_time,
            from: authority.valid_from,
            until: authority.valid_until,
        });
    }
    // The path: the leaf, its intermediates, the authority's root (the pool's one anchor).
    let mut chain = vec![leaf_der];
    chain.extend(path.intermediates);
    chain.extend(authority.chain.last().cloned());
    Ok((gen_time, chain))
}

/// The TSA's signing certificate and the candidate intermediates the token offers.
///
/// verify.go `verifyLeafCert` / `verifyEmbeddedLeafCert`: when the authority names its
/// signing certificate, a token that embeds certificates must embed exactly that one (the
/// embedded certificate of another TSA is no substitute), and nothing else from the token
/// is used; when it does not, the token must embed the certificate its signer names.
fn signing_certificate(
    token: &token::Token,
    authority: &Authority,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), TimestampError> {
    let first = authority
        .chain
        .first()
        .ok_or_else(|| TimestampError::BadAuthority("the chain is empty".to_owned()))?;
    let (_, first_cert) = X509Certificate::from_der(first)
        .map_err(|e| TimestampError::BadAuthority(format!("certificate 1: {e}")))?;
    if !is_ca(&first_cert) {
        if !token.certificates.is_empty() && !token.certificates.iter().any(|c| c == first) {
            return Err(TimestampError::EmbeddedCertMismatch);
        }
        return Ok((first.clone(), Vec::new()));
    }
    for der in &token.certificates {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            continue;
        };
        if token.signers.iter().any(|s| signer::names(&s.sid, &cert)) {
            let offered = token
                .certificates
                .iter()
                .filter(|c| *c != der)
                .cloned()
                .collect();
            return Ok((der.clone(), offered));
        }
    }
    Err(TimestampError::NoSigningCertificate)
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// RFC 3161 section 2.3: the TSA's certificate has exactly one extended key usage,
/// id-kp-timeStamping, in an extension marked critical.
fn check_eku(leaf: &X509Certificate<'_>) -> Result<(), TimestampError> {
    let eku = match leaf.extended_key_usage() {
        Ok(Some(eku)) => eku,
        Ok(None) => return Err(TimestampError::Eku("no extended key usage".to_owned())),
        Err(e) => return Err(TimestampError::Eku(format!("it does not parse: {e}"))),
    };
    if !eku.critical {
        return Err(TimestampError::Eku(
            "the extension is not critical".to_owned(),
        ));
    }
    let v = eku.value;
    let purposes = [
        v.any,
        v.server_auth,
        v.client_auth,
        v.code_signing,
        v.email_protection,
        v.time_stamping,
        v.ocsp_signing,
    ]
    .iter()
    .filter(|p| **p)
    .count()
        + v.other.len();
    if !v.time_stamping {
        return Err(TimestampError::Eku(
            "id-kp-timeStamping is absent".to_owned(),
        ));
    }
    if purposes != 1 {
        return Err(TimestampError::Eku(format!(
            "{purposes} purposes instead of one"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
