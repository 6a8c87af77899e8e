//! The Notation signature envelope (`specs/signature-specification.md`, `signature-envelope-jws.md`,
//! `signature-envelope-cose.md`; notation-core-go `signature/jws`, `signature/cose`).
//!
//! [`Envelope::parse`] reads an envelope of a known media type with bounds and checks its
//! integrity: the signature verifies under the key of the first `x5c` certificate, with an
//! algorithm the spec allows for that key (PS256/384/512 with RSA 2048/3072/4096, ES256/384/512
//! with P-256/384/521), every critical header is one it understands, the signing scheme is
//! `notary.x509` or `notary.x509.signingAuthority` with the signing-time attribute that
//! scheme requires. Nothing about trust is decided here.
//!
//! What notation-core-go's `Envelope.Verify` does besides, and where it happens here:
//! - the code-signing rules for the chain (`x509.ValidateCodeSigningCertChain`, called from
//!   `signature/internal/base` `validateCertificateChain`) are the verifier's
//!   (`super::verify`), which checks them right after this parse, as part of integrity;
//! - notation-go (`verifier.go` `processSignature`) treats unknown critical extended
//!   attributes as the business of a verification plugin, and ignores them when the envelope
//!   names none; the spec says they "MUST cause signature verification to fail". They are
//!   listed in [`Envelope::critical_extended`] for the verifier to fail on.
//!
//! Where this reader is stricter than notation-core-go (each fails closed; no envelope the
//! Notation tools produce has any of these): duplicate JSON keys and case variants of known
//! protected-header or payload members are errors (Go keeps the last key and matches
//! members case-insensitively); base64 must be canonical (Go's decoder skips CR/LF and
//! accepts non-zero trailing bits); a JWS `crit` may not repeat a label; JSON `null` for a
//! protected attribute is an error; a COSE envelope is held to the JWS scheme rules (no
//! `signingTime` under `notary.x509.signingAuthority`), may not mark COSE labels 0 to 8
//! critical (`signature-envelope-cose.md`, "crit") and may not repeat a label across its
//! protected and unprotected buckets (RFC 9052 section 3); RSASSA-PSS salts must be the hash
//! length (golang-jwt verifies JWS PSS with any salt length; go-cose and the spec's signers
//! use the hash length).

mod attributes;
mod cose;
mod json;
mod jws;

#[cfg(test)]
mod tests;

use std::fmt;

use aws_lc_rs::signature::{self as lc, VerificationAlgorithm};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::trust::x509::ec_curve;

use attributes::Parts;

/// JWS JSON serialization media type.
pub const JWS: &str = "application/jose+json";
/// COSE_Sign1 media type.
pub const COSE: &str = "application/cose";
/// The payload's media type (`application/vnd.cncf.notary.payload.v1+json`).
pub const PAYLOAD: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Largest envelope read (a timestamped envelope with its chains is about 10 KiB).
pub const MAX_ENVELOPE: u64 = 256 * 1024;
/// Most certificates an envelope's chain may hold (leaf, intermediates, root).
pub const MAX_CHAIN: usize = 10;
/// Largest DER certificate of a chain.
pub const MAX_CERTIFICATE: usize = 16 * 1024;
/// Largest signature value (RSA-4096 makes 512 bytes, ECDSA P-521 132).
pub const MAX_SIGNATURE: usize = 1024;
/// Largest `io.cncf.notary.timestampSignature` token (the RFC 3161 reader's own bound).
pub const MAX_TIMESTAMP: usize = crate::trust::timestamp::MAX_TOKEN_LEN;

const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// The signing scheme (`io.cncf.notary.signingScheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: signing time is the signer's claim; RFC 3161 timestamps may vouch.
    X509,
    /// `notary.x509.signingAuthority`: the signing authority vouches for the signing time.
    SigningAuthority,
}

/// A signature algorithm of `specs/signature-specification.md`, "Algorithm Selection".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PSS with SHA-256 (RSA 2048).
    Ps256,
    /// RSASSA-PSS with SHA-384 (RSA 3072).
    Ps384,
    /// RSASSA-PSS with SHA-512 (RSA 4096).
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// ECDSA on P-521 with SHA-512.
    Es512,
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
    /// The signature algorithm (`alg`), the one the signing key implies.
    pub algorithm: Algorithm,
    /// Extended signed attributes marked critical that are not the plugin attributes above,
    /// in `crit` order (COSE integer labels in decimal). The spec requires a verifier to fail
    /// on a critical attribute it does not understand; this reader understands none of them.
    pub critical_extended: Vec<String>,
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

/// The signing certificate's key, as `ExtractKeySpec` classifies it.
#[derive(Debug)]
struct LeafKey {
    /// The algorithm the key implies (notation-core-go `KeySpec.SignatureAlgorithm`).
    alg: Algorithm,
    /// `subjectPublicKey`: a PKCS#1 RSAPublicKey, or an uncompressed EC point.
    key: Vec<u8>,
}

// === impl SigningScheme ===

impl SigningScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningScheme::X509 => "notary.x509",
            SigningScheme::SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

// === impl Algorithm ===

impl Algorithm {
    /// The JWS `alg` value (`signature-envelope-jws.md`, "Supported alg header values").
    pub fn jws_name(self) -> &'static str {
        match self {
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
        }
    }

    /// The COSE `alg` value (`signature-envelope-cose.md`, "Supported alg header values").
    pub fn cose_id(self) -> i64 {
        match self {
            Algorithm::Ps256 => -37,
            Algorithm::Ps384 => -38,
            Algorithm::Ps512 => -39,
            Algorithm::Es256 => -7,
            Algorithm::Es384 => -35,
            Algorithm::Es512 => -36,
        }
    }

    const ALL: [Algorithm; 6] = [
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
    ];

    fn from_jws(name: &str) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.jws_name() == name)
    }

    fn from_cose(id: i64) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.cose_id() == id)
    }

    /// The aws-lc-rs verifier: PSS with the salt as long as the hash, ECDSA with the fixed
    /// `r || s` encoding both formats use (RFC 7518 section 3.4, RFC 9053 section 2.1).
    fn verifier(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Algorithm::Ps256 => &lc::RSA_PSS_2048_8192_SHA256,
            Algorithm::Ps384 => &lc::RSA_PSS_2048_8192_SHA384,
            Algorithm::Ps512 => &lc::RSA_PSS_2048_8192_SHA512,
            Algorithm::Es256 => &lc::ECDSA_P256_SHA256_FIXED,
            Algorithm::Es384 => &lc::ECDSA_P384_SHA384_FIXED,
            Algorithm::Es512 => &lc::ECDSA_P521_SHA512_FIXED,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jws_name())
    }
}

// === impl Envelope ===

impl Envelope {
    /// Parses `bytes` as an envelope of `media_type` and checks its integrity.
    ///
    /// The steps, in order (notation-core-go `base.Envelope.Verify` with the format's
    /// `Verify` and `Content`, and notation-go `verifyIntegrity`):
    /// 1. the media type is JWS or COSE, and the envelope at most [`MAX_ENVELOPE`] bytes;
    /// 2. the format's structure (`jws`, `cose`): base64/CBOR, the chain (1 to
    ///    [`MAX_CHAIN`] certificates), the protected header's attributes typed;
    /// 3. every chain certificate parses; the leaf's key is RSA 2048/3072/4096 or EC
    ///    P-256/384/521 (`ExtractKeySpec`);
    /// 4. the signed attributes (`attributes::Protected::check`): content type, scheme and
    ///    its signing time, `crit`, plugin attributes, expiry after signing time;
    /// 5. `alg` is the algorithm the leaf key implies (the spec's defence against algorithm
    ///    substitution), and the signature verifies under that key;
    /// 6. the payload's `targetArtifact`, read only now that it is known to be signed.
    ///
    /// The header checks come before the signature so a broken header is reported as what it
    /// is (reading them decides nothing); nothing is returned unless every step passes.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let media_type: &'static str = match media_type {
            JWS => JWS,
            COSE => COSE,
            other => return Err(EnvelopeError::MediaType(other.to_owned())),
        };
        if bytes.len() as u64 > MAX_ENVELOPE {
            return Err(EnvelopeError::TooLarge);
        }
        let parts = if media_type == JWS {
            jws::parse(bytes)?
        } else {
            cose::parse(bytes)?
        };
        Self::check(media_type, parts)
    }

    fn check(media_type: &'static str, parts: Parts) -> Result<Envelope, EnvelopeError> {
        let leaf = leaf_key(&parts.chain)?;
        let attrs = parts.protected.check()?;

        // signature-envelope-jws.md / -cose.md, "Supported alg header values": `alg` MUST be
        // the algorithm of the signing key (base `validateCertificateChain`).
        if attrs.alg != leaf.alg {
            return Err(EnvelopeError::Invalid(format!(
                "mismatch between signature algorithm derived from signing certificate ({}) \
                 and signing algorithm specified ({})",
                leaf.alg, attrs.alg
            )));
        }
        lc::UnparsedPublicKey::new(attrs.alg.verifier(), &leaf.key)
            .verify(&parts.signing_input, &parts.signature)
            .map_err(|_| {
                EnvelopeError::Invalid(format!(
                    "the {} signature does not verify under the signing certificate's key",
                    attrs.alg
                ))
            })?;
        // signature-specification.md, "Signed Attributes": the payload "is only parsed and
        // processed once the signature has been verified".
        let target = attributes::target(&parts.payload)?;

        Ok(Envelope {
            media_type,
            target,
            scheme: attrs.scheme,
            signing_time: attrs.signing_time,
            authentic_signing_time: attrs.authentic_signing_time,
            expiry: attrs.expiry,
            chain: parts.chain,
            signature: parts.signature,
            timestamp: parts.timestamp,
            signing_agent: parts.signing_agent,
            verification_plugin: attrs.verification_plugin,
            plugin_min_version: attrs.plugin_min_version,
            algorithm: attrs.alg,
            critical_extended: attrs.critical_extended,
        })
    }
}

/// Parses every certificate of `chain` (notation-core-go parses each into the signer info)
/// and classifies the leaf's key as notation-core-go `ExtractKeySpec` does: RSA by modulus
/// length in bytes times 8 (Go's `Size() << 3`), EC by named curve.
fn leaf_key(chain: &[Vec<u8>]) -> Result<LeafKey, EnvelopeError> {
    let mut leaf = None;
    for (i, der) in chain.iter().enumerate() {
        let cert = match X509Certificate::from_der(der) {
            Ok(([], cert)) => cert,
            Ok(_) => {
                return Err(EnvelopeError::Malformed(format!(
                    "certificate {i} of the chain has trailing data"
                )))
            }
            Err(e) if i == 0 => {
                return Err(EnvelopeError::Malformed(format!(
                    "malformed leaf certificate: {e}"
                )))
            }
            Err(e) => {
                return Err(EnvelopeError::Malformed(format!(
                    "certificate {i} of the chain is malformed: {e}"
                )))
            }
        };
        if leaf.is_none() {
            leaf = Some(key_of(&cert)?);
        }
    }
    leaf.ok_or_else(|| EnvelopeError::Malformed("certificate chain is not present".into()))
}

fn key_of(cert: &X509Certificate<'_>) -> Result<LeafKey, EnvelopeError> {
    let unsupported = |m: String| Err(EnvelopeError::Invalid(m));
    let spki = cert.public_key();
    let key = spki.subject_public_key.data.to_vec();
    if spki.algorithm.algorithm.to_id_string() == OID_RSA_ENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return unsupported("malformed RSA public key in the signing certificate".into());
        };
        let modulus = rsa.modulus;
        let first = modulus
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(modulus.len());
        let bits = modulus.len().saturating_sub(first) * 8;
        let alg = match bits {
            2048 => Algorithm::Ps256,
            3072 => Algorithm::Ps384,
            4096 => Algorithm::Ps512,
            _ => return unsupported(format!("rsa key size {bits} bits is not supported")),
        };
        return Ok(LeafKey { alg, key });
    }
    let alg = match ec_curve(spki).as_deref() {
        Some(OID_P256) => Algorithm::Es256,
        Some(OID_P384) => Algorithm::Es384,
        Some(OID_P521) => Algorithm::Es512,
        Some(curve) => return unsupported(format!("ecdsa curve {curve} is not supported")),
        None => return unsupported("unsupported public key type".into()),
    };
    Ok(LeafKey { alg, key })
}

/// Decodes base64url without padding (RFC 7515 section 2, Go's `RawURLEncoding`), naming
/// the offending offset as Go does ("illegal base64 data at input byte N").
fn base64url(text: &str, limit: usize) -> Result<Vec<u8>, String> {
    decode_base64(text, limit, Alphabet::Url)
}

/// Decodes padded standard base64 (Go's `encoding/json` for `[]byte`).
fn base64std(text: &str, limit: usize) -> Result<Vec<u8>, String> {
    decode_base64(text, limit, Alphabet::Standard)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Alphabet {
    Url,
    Standard,
}

fn decode_base64(text: &str, limit: usize, alphabet: Alphabet) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::{DecodeError, Engine as _};

    if text.len() / 4 * 3 > limit {
        return Err(format!(
            "{} base64 characters encode more than {limit} bytes",
            text.len()
        ));
    }
    let illegal = |at: usize| format!("illegal base64 data at input byte {at}");
    // The first byte outside the alphabet, found before the engine so that padding in
    // unpadded base64 is named by its offset too.
    let allowed = |b: u8| match alphabet {
        Alphabet::Url => b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
        Alphabet::Standard => b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=',
    };
    if let Some(at) = text.bytes().position(|b| !allowed(b)) {
        return Err(illegal(at));
    }
    let decoded = match alphabet {
        Alphabet::Url => URL_SAFE_NO_PAD.decode(text),
        Alphabet::Standard => STANDARD.decode(text),
    };
    decoded.map_err(|e| match e {
        DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol(at, _) => illegal(at),
        DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
            illegal(text.len().saturating_sub(1))
        }
    })
}
