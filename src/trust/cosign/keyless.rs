//! cosign keyless verification: a Fulcio certificate and an offline Rekor bundle on a
//! simple-signing layer (`sigstore/cosign: specs/SIGNATURE_SPEC.md`, annotations
//! `dev.sigstore.cosign/certificate`, `.../chain`, `.../bundle`).
//!
//! The checks follow cosign's `pkg/cosign/verify.go` (`verifyInternal`, `VerifyBundle`,
//! `VerifySET`, `CheckExpiry`, `TrustedCert`, `CheckCertificatePolicy`), offline: the Rekor
//! entry is trusted through its signed entry timestamp (SET), never fetched. Not checked:
//! embedded SCTs (cosign's `VerifyEmbeddedSCT`, which needs CT log keys), Rekor inclusion
//! proofs (legacy bundles carry none), RFC 3161 timestamps.

use std::time::Duration;

use aws_lc_rs::{digest, signature};
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::Deserialize;
use time::OffsetDateTime;
use x509_parser::{
    extensions::GeneralName,
    oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY,
    pem::Pem,
    prelude::{FromDer, X509Certificate},
};

use super::keys::CosignKey;
use crate::policy::{Identity, Matcher};
use crate::trust::tlog::{self, RekorPayload};

/// Fulcio's OIDC issuer extension (DER UTF8String), and the legacy one (raw bytes).
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// id-kp-codeSigning, as DER OID content bytes (1.3.6.1.5.5.7.3.3).
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
/// Certificates read from one chain annotation, at most.
const MAX_CHAIN: usize = 8;

/// One rule's keyless trust: Fulcio roots, Rekor log keys and signer identities.
pub struct Keyless {
    anchors: Vec<TrustAnchor<'static>>,
    /// Non-root certificates of the trusted file, usable as intermediates.
    intermediates: Vec<CertificateDer<'static>>,
    rekor: Vec<CosignKey>,
    identities: Vec<CompiledIdentity>,
}

struct CompiledIdentity {
    issuer: CompiledMatcher,
    subject: CompiledMatcher,
}

enum CompiledMatcher {
    Exact(String),
    Regex(regex::Regex),
}

/// What a keyless signature layer carries.
#[derive(Debug, Clone, Copy)]
pub struct KeylessLayer<'a> {
    /// The payload bytes (hashed against the layer digest already).
    pub payload: &'a [u8],
    /// The signature, decoded from base64.
    pub signature: &'a [u8],
    /// `dev.sigstore.cosign/certificate`: the PEM leaf.
    pub certificate: &'a str,
    /// `dev.sigstore.cosign/chain`: PEM intermediates (and root), untrusted.
    pub chain: Option<&'a str>,
    /// `dev.sigstore.cosign/bundle`: the Rekor bundle JSON.
    pub bundle: Option<&'a str>,
}

/// A keyless signer that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessSigner {
    /// The indices of the identities its certificate matches (never empty).
    pub identities: Vec<usize>,
    /// Who it is: the certificate's OIDC issuer and its subject names, which alone decide
    /// the identities it matches. A threshold counts each principal once.
    pub principal: String,
}

/// Why the Fulcio roots file is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootsError {
    #[error("no PEM CERTIFICATE in the file")]
    Empty,
    #[error("certificate {0} does not parse: {1}")]
    Parse(usize, String),
    #[error("no self-signed (root) certificate in the file")]
    NoRoot,
}

/// Why a keyless signature does not count, in words for the refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeylessFailure {
    #[error("the certificate does not parse: {0}")]
    Certificate(String),
    #[error("there is no Rekor bundle (offline transparency-log proof) beside the certificate")]
    NoBundle,
    #[error("the Rekor bundle does not parse: {0}")]
    Bundle(String),
    #[error("the Rekor bundle is from log {0}, whose key is not trusted")]
    UnknownLog(String),
    #[error("the Rekor bundle's signed entry timestamp does not verify")]
    BadSet,
    #[error("the Rekor entry is for another {0}")]
    EntryMismatch(&'static str),
    #[error(
        "the Rekor entry's time {integrated} lies outside the certificate's validity \
         {not_before} .. {not_after}"
    )]
    OutsideValidity {
        integrated: String,
        not_before: String,
        not_after: String,
    },
    #[error("the certificate does not chain to a trusted Fulcio root for code signing: {0}")]
    Untrusted(String),
    #[error("the signature does not verify with the certificate's key")]
    BadSignature,
    #[error(
        "none of the trusted identities matched: subjects [{subjects}] with issuer {issuer:?}"
    )]
    NoIdentity { subjects: String, issuer: String },
}

#[derive(Deserialize)]
struct RawBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: RekorPayload,
}

/// A `hashedrekord` v0.0.1 entry body, the fields cosign compares.
#[derive(Deserialize)]
struct RawBody {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    spec: RawSpec,
}

#[derive(Deserialize)]
struct RawSpec {
    data: RawData,
    signature: RawSignature,
}

#[derive(Deserialize)]
struct RawData {
    hash: RawHash,
}

#[derive(Deserialize)]
struct RawHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct RawSignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: RawContent,
}

#[derive(Deserialize)]
struct RawContent {
    content: String,
}

// === impl Keyless ===

impl Keyless {
    /// `roots_pem` holds the trusted Fulcio certificates: self-signed ones become trust
    /// anchors, the others intermediates (as cosign's `SIGSTORE_ROOT_FILE` is read).
    pub fn new(
        roots_pem: &[u8],
        rekor: Vec<CosignKey>,
        identities: &[Identity],
    ) -> Result<Self, RootsError> {
        let mut anchors = Vec::new();
        let mut intermediates = Vec::new();
        for (i, der) in pem_certificates(roots_pem).into_iter().enumerate() {
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|e| RootsError::Parse(i + 1, e.to_string()))?;
            let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
            let der = CertificateDer::from(der);
            if self_signed {
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| RootsError::Parse(i + 1, format!("{e:?}")))?
                    .to_owned();
                anchors.push(anchor);
            } else {
                intermediates.push(der);
            }
        }
        if anchors.is_empty() && intermediates.is_empty() {
            return Err(RootsError::Empty);
        }
        if anchors.is_empty() {
            return Err(RootsError::NoRoot);
        }
        let identities = identities
            .iter()
            .map(|id| CompiledIdentity {
                issuer: CompiledMatcher::new(&id.issuer),
                subject: CompiledMatcher::new(&id.subject),
            })
            .collect();
        Ok(Keyless {
            anchors,
            intermediates,
            rekor,
            identities,
        })
    }

    /// How many identities there are (each counts once towards a threshold).
    pub fn identities(&self) -> usize {
        self.identities.len()
    }

    /// Verifies one keyless signature layer; on success, who signed it and the identities
    /// its certificate matches.
    pub fn verify(&self, layer: &KeylessLayer<'_>) -> Result<KeylessSigner, KeylessFailure> {
        let leaf_der = first_pem_certificate(layer.certificate.as_bytes())
            .ok_or_else(|| KeylessFailure::Certificate("no PEM CERTIFICATE".to_owned()))?;

        // cosign `VerifyBundle`: an offline proof that the signature was logged, and when.
        let bundle = layer.bundle.ok_or(KeylessFailure::NoBundle)?;
        let bundle: RawBundle =
            serde_json::from_str(bundle).map_err(|e| KeylessFailure::Bundle(e.to_string()))?;
        let payload = &bundle.payload;
        let set = b64(&bundle.set).ok_or(KeylessFailure::BadSet)?;
        self.verify_set(payload, &set)?;

        // cosign `compareSigs`, `comparePublicKey`, `bundleHash`: the (now authenticated)
        // entry is about this signature, this certificate and this payload.
        let body = b64(&payload.body)
            .ok_or_else(|| KeylessFailure::Bundle("the entry body is not base64".to_owned()))?;
        let body: RawBody =
            serde_json::from_slice(&body).map_err(|e| KeylessFailure::Bundle(e.to_string()))?;
        if body.kind != "hashedrekord" || body.api_version != "0.0.1" {
            return Err(KeylessFailure::Bundle(format!(
                "entry kind {} {} is not supported (hashedrekord 0.0.1 is)",
                body.kind, body.api_version
            )));
        }
        if b64(&body.spec.signature.content).as_deref() != Some(layer.signature) {
            return Err(KeylessFailure::EntryMismatch("signature"));
        }
        let logged_cert = b64(&body.spec.signature.public_key.content)
            .and_then(|pem| first_pem_certificate(&pem));
        if logged_cert.as_deref() != Some(leaf_der.as_slice()) {
            return Err(KeylessFailure::EntryMismatch("certificate"));
        }
        let payload_hash = hex::encode(digest::digest(&digest::SHA256, layer.payload));
        let hash = &body.spec.data.hash;
        if hash.algorithm != "sha256" || !hash.value.eq_ignore_ascii_case(&payload_hash) {
            return Err(KeylessFailure::EntryMismatch("payload"));
        }

        let chain: Vec<Vec<u8>> = layer
            .chain
            .map(|c| pem_certificates(c.as_bytes()))
            .unwrap_or_default();
        self.verify_signer(
            &leaf_der,
            &chain,
            payload.integrated_time,
            layer.payload,
            layer.signature,
        )
    }

    /// cosign `VerifySET`: the log key is the one whose ID (SHA-256 of its DER public key)
    /// the entry names; the SET is checked by [`tlog::verify_set`]. The same for a legacy
    /// bundle annotation and a sigstore bundle's `inclusionPromise` (sigstore-go
    /// `tlog.VerifySET` builds the same payload).
    pub(super) fn verify_set(
        &self,
        payload: &RekorPayload,
        set: &[u8],
    ) -> Result<(), KeylessFailure> {
        let log = self
            .rekor
            .iter()
            .find(|k| k.log_id().eq_ignore_ascii_case(&payload.log_id))
            .ok_or_else(|| KeylessFailure::UnknownLog(payload.log_id.clone()))?;
        if !tlog::verify_set(log.log_key(), payload, set) {
            return Err(KeylessFailure::BadSet);
        }
        Ok(())
    }

    /// The trusted Rekor log key with this (hex) ID.
    pub(super) fn rekor_key(&self, log_id: &str) -> Option<&CosignKey> {
        self.rekor
            .iter()
            .find(|k| k.log_id().eq_ignore_ascii_case(log_id))
    }

    /// Whether a Rekor log key with this (hex) ID is trusted.
    pub(super) fn trusts_log(&self, log_id: &str) -> bool {
        self.rekor
            .iter()
            .any(|k| k.log_id().eq_ignore_ascii_case(log_id))
    }

    /// The checks on the signer once the log entry is known to be about this signature:
    /// the certificate's validity at the log's (authenticated) time `at`, its chain, the
    /// signature over `message` with its key, and the identities it matches (never empty).
    /// `chain` holds DER candidate intermediates offered by the signer (untrusted).
    pub(super) fn verify_signer(
        &self,
        leaf_der: &[u8],
        chain: &[Vec<u8>],
        at: i64,
        message: &[u8],
        signature: &[u8],
    ) -> Result<KeylessSigner, KeylessFailure> {
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| KeylessFailure::Certificate(e.to_string()))?;

        // cosign `CheckExpiry`: the certificate lives minutes; what matters is that it was
        // valid when the log integrated the entry, not now.
        let validity = leaf.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        if at < not_before || at > not_after {
            return Err(KeylessFailure::OutsideValidity {
                integrated: rfc3339(at),
                not_before: rfc3339(not_before),
                not_after: rfc3339(not_after),
            });
        }

        // cosign `TrustedCert` (+ `CheckExpiry` of the issuing chain): a path to a trusted
        // Fulcio root, every certificate valid at the integrated time, code signing allowed
        // along the path (an EKU, where present, must include it), and required on the leaf.
        self.check_chain(leaf_der, chain, at)?;
        let code_signing =
            matches!(leaf.extended_key_usage(), Ok(Some(eku)) if eku.value.code_signing);
        if !code_signing {
            return Err(KeylessFailure::Untrusted(
                "the certificate is not for code signing".to_owned(),
            ));
        }

        // cosign `verifyInternal`: the signature over the signed bytes, with the leaf's key.
        if !leaf_verifies(&leaf, message, signature) {
            return Err(KeylessFailure::BadSignature);
        }

        // cosign `CheckCertificatePolicy`: an identity matches when its issuer matches the
        // Fulcio issuer extension and its subject one of the SANs.
        let issuer = oidc_issuer(&leaf).unwrap_or_default();
        let sans = subject_names(&leaf);
        let matched: Vec<usize> = self
            .identities
            .iter()
            .enumerate()
            .filter(|(_, id)| {
                id.issuer.matches(&issuer) && sans.iter().any(|san| id.subject.matches(san))
            })
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            return Err(KeylessFailure::NoIdentity {
                subjects: sans.join(", "),
                issuer,
            });
        }
        let mut names = sans;
        names.sort_unstable();
        names.dedup();
        Ok(KeylessSigner {
            identities: matched,
            principal: serde_json::json!([issuer, names]).to_string(),
        })
    }

    fn check_chain(
        &self,
        leaf_der: &[u8],
        chain: &[Vec<u8>],
        at: i64,
    ) -> Result<(), KeylessFailure> {
        let leaf = CertificateDer::from(leaf_der);
        let end_entity = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| KeylessFailure::Certificate(format!("{e:?}")))?;
        // The chain annotation only offers candidate intermediates; trust comes from the
        // anchors alone.
        let mut intermediates = self.intermediates.clone();
        intermediates.extend(
            chain
                .iter()
                .take(MAX_CHAIN)
                .map(|der| CertificateDer::from(der.clone())),
        );
        let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at).unwrap_or(0)));
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &intermediates,
                time,
                webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
                None,
                None,
            )
            .map(|_| ())
            .map_err(|e| KeylessFailure::Untrusted(format!("{e:?}")))
    }
}

// === impl CompiledMatcher ===

impl CompiledMatcher {
    /// The policy checked that regexes compile; one that somehow does not matches nothing.
    fn new(m: &Matcher) -> Self {
        match m {
            Matcher::Exact(s) => CompiledMatcher::Exact(s.clone()),
            Matcher::Regex(r) => match regex::Regex::new(r) {
                Ok(re) => CompiledMatcher::Regex(re),
                Err(_) => CompiledMatcher::Regex(regex::Regex::new("[^\\s\\S]").expect("valid")),
            },
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            CompiledMatcher::Exact(s) => s == value,
            CompiledMatcher::Regex(re) => re.is_match(value),
        }
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

pub(super) fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem)
        .map_while(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

fn first_pem_certificate(pem: &[u8]) -> Option<Vec<u8>> {
    pem_certificates(pem).into_iter().next()
}

/// ECDSA over SHA-256 with the leaf's key, as cosign loads it (`LoadVerifier(pub, SHA256)`).
fn leaf_verifies(leaf: &X509Certificate<'_>, payload: &[u8], sig: &[u8]) -> bool {
    let spki = leaf.public_key();
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return false;
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let alg: &dyn signature::VerificationAlgorithm = match curve.as_deref() {
        Some(OID_P256) => &signature::ECDSA_P256_SHA256_ASN1,
        Some(OID_P384) => &signature::ECDSA_P384_SHA256_ASN1,
        _ => return false,
    };
    signature::UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(payload, sig)
        .is_ok()
}

/// The OIDC issuer Fulcio recorded: the v2 extension (a DER UTF8String), else the legacy one
/// (raw bytes), as cosign's `CertExtensions.GetIssuer` reads them.
fn oidc_issuer(cert: &X509Certificate<'_>) -> Option<String> {
    let ext = |oid: &str| {
        cert.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.value)
    };
    if let Some(value) = ext(OID_ISSUER_V2) {
        return der_utf8_string(value).map(str::to_owned);
    }
    ext(OID_ISSUER_V1).and_then(|v| std::str::from_utf8(v).ok().map(str::to_owned))
}

/// The content of a DER UTF8String (tag 12), if `der` is exactly one.
fn der_utf8_string(der: &[u8]) -> Option<&str> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x0c {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81 => (usize::from(*rest.first()?), &rest[1..]),
        0x82 => (
            usize::from(*rest.first()?) << 8 | usize::from(*rest.get(1)?),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    (rest.len() == len)
        .then(|| std::str::from_utf8(rest).ok())
        .flatten()
}

/// Email, URI and DNS subject alternative names, as cosign's `GetSubjectAlternateNames`.
fn subject_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::RFC822Name(s) | GeneralName::URI(s) | GeneralName::DNSName(s) => {
                Some((*s).to_owned())
            }
            _ => None,
        })
        .collect()
}

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_utf8_strings_decode_and_other_tags_do_not() {
        assert_eq!(der_utf8_string(b"\x0c\x03abc"), Some("abc"));
        assert_eq!(der_utf8_string(b"\x16\x03abc"), None);
        assert_eq!(der_utf8_string(b"\x0c\x04abc"), None);
        let long = "x".repeat(200);
        let mut der = vec![0x0c, 0x81, 200];
        der.extend_from_slice(long.as_bytes());
        assert_eq!(der_utf8_string(&der), Some(long.as_str()));
    }
}
