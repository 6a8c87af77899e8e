//! Sigstore bundles as newer cosign stores image signatures (`cosign sign
//! --new-bundle-format`, the default from cosign v3): an OCI artifact whose `subject` is the
//! image manifest and whose one layer is a bundle (`sigstore/cosign: specs/BUNDLE_SPEC.md`).
//! Pure parsing and checks, no I/O; discovery is in `trust::referrers`, the reading of
//! each candidate's bundle in `referrers.rs`.
//!
//! The bundle is the JSON form of `dev.sigstore.bundle.v1.Bundle`
//! (`sigstore/protobuf-specs: protos/sigstore_bundle.proto`, camelCase keys, bytes in
//! base64, int64 as strings). cosign signs an image as a DSSE envelope
//! (`protos/envelope.proto`) of an in-toto statement whose subject is the image digest and
//! whose predicate type is `https://sigstore.dev/cosign/sign/v1` (cosign
//! `cmd/cosign/cli/sign/sign.go: signDigestBundle`); `cosign verify` refuses a bundle that
//! holds anything else (`pkg/cosign/verify.go: verifyImageAttestationsSigstoreBundle`, "bundle
//! does not contain a DSSE envelope").

use std::sync::Arc;

use serde::Deserialize;
use time::OffsetDateTime;

use super::keyless::{Keyless, KeylessFailure};
use super::keys::CosignKey;
use super::Vouching;
use crate::oci::{Digest, DigestAlgorithm};
use crate::trust::attestation::{Predicate, MAX_STATEMENT};
use crate::trust::root::TrustedRoot;
pub use crate::trust::sigstore::pae;
use crate::trust::sigstore::{
    self,
    bundle::{Content, Material, Version},
    Artifact, Bundle, Policy, Requirements, Signer, SigstoreError,
};

/// Every bundle media type starts so (cosign `ociremote.Bundle` checks the prefix).
pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The referrer descriptor annotation cosign writes with the statement's predicate type
/// (`pkg/oci/remote/write.go: BundlePredicateType`); a hint, never trusted.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// DSSE payload type of an in-toto statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type cosign gives an image signature (`pkg/types/predicate.go`).
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// in-toto statement types cosign writes (v1) or older tools did (v0.1).
const STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// Why a bundle does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleFailure {
    #[error("bundle media type {0} is not supported for images (v0.3 is, as cosign requires)")]
    Version(&'static str),
    #[error("the bundle holds a message signature; cosign signs images as DSSE envelopes only")]
    MessageSignature,
    #[error("the envelope's payload type is {0:?}, not {INTOTO_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error(
        "the envelope's signature verifies under no trusted key, and the bundle has no certificate"
    )]
    NoSigner,
    #[error(
        "the key-signed bundle has no verified transparency-log entry or RFC 3161 timestamp \
         (cosign verify requires one; `require_tlog: false` accepts the key alone)"
    )]
    NoLogEntry,
    #[error(transparent)]
    Sigstore(#[from] SigstoreError),
    #[error(transparent)]
    Keyless(#[from] KeylessFailure),
    #[error("the signed statement is not an in-toto statement this verifier reads: {0}")]
    Statement(String),
}

/// What one bundle says about an image digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleVerdict {
    /// Who signed it and the signers (keys first, then keyless identities) it counts for.
    Vouches(Vouching),
    /// An attestation (another predicate type) for the digest, by these signers: never a
    /// signature, a candidate for the rule's attestation requirements.
    Attests(Vouching, Predicate),
    /// Its signature verified, but its statement is about other digests.
    OtherSubject(String),
    /// It does not count.
    Failed(BundleFailure),
}

/// What a rule asks of a bundle beyond its signer.
#[derive(Debug, Clone)]
pub struct Checks {
    /// The sigstore trust: logs, certificate authorities, CT logs, timestamp authorities
    /// (the keyless block's; an empty one for a rule with keys alone).
    pub root: Arc<TrustedRoot>,
    /// Whether a signature needs a transparency-log entry (keyless) or a log entry or a
    /// timestamp (keys), as `cosign verify` does without `--insecure-ignore-tlog`.
    pub require_tlog: bool,
    /// The time a log's integrated time may not be later than.
    pub now: OffsetDateTime,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStatement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<RawSubject>,
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

/// An authenticated statement, as far as the verifier reads it.
struct Statement {
    /// `sha256:<hex>` subjects.
    subjects: Vec<String>,
    predicate: Predicate,
}

#[derive(Deserialize)]
struct RawSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// Checks one bundle for `digest` under the rule's keys and keyless trust. The bundle is
/// verified as sigstore clients verify it ([`sigstore::verify`]: log entries, timestamps,
/// certificate, SCTs, signature over the DSSE PAE, statement subject); what is cosign's
/// here is which bundles count for an image (cosign `ociremote.Bundle`: v0.3 and a DSSE
/// envelope of an in-toto statement, `verifyImageAttestationsSigstoreBundle`), which signer
/// it counts for, and the predicate type, which tells a signature from an attestation.
pub fn verify(
    bytes: &[u8],
    digest: &Digest,
    keys: &[CosignKey],
    keyless: Option<&Keyless>,
    checks: &Checks,
) -> BundleVerdict {
    match verify_inner(bytes, digest, keys, keyless, checks) {
        Ok(verdict) => verdict,
        Err(e) => BundleVerdict::Failed(e),
    }
}

fn verify_inner(
    bytes: &[u8],
    digest: &Digest,
    keys: &[CosignKey],
    keyless: Option<&Keyless>,
    checks: &Checks,
) -> Result<BundleVerdict, BundleFailure> {
    let bundle = Bundle::from_json(bytes)?;
    // cosign `ociremote.Bundle`: `MinVersion("v0.3")`.
    match bundle.version {
        Version::V03 => {}
        Version::V01 => return Err(BundleFailure::Version("v0.1")),
        Version::V02 => return Err(BundleFailure::Version("v0.2")),
    }
    let Content::Dsse(envelope) = &bundle.content else {
        return Err(BundleFailure::MessageSignature);
    };
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(BundleFailure::PayloadType(envelope.payload_type.clone()));
    }
    let subject: [u8; 32] = match hex::decode(digest.hex())
        .ok()
        .and_then(|b| b.try_into().ok())
    {
        Some(s) if digest.algorithm() == DigestAlgorithm::Sha256 => s,
        _ => return Ok(BundleVerdict::OtherSubject(digest.to_string())),
    };
    let artifact = Artifact::Sha256(subject);
    let has_certificate = matches!(bundle.material, Material::Certificate { .. });
    // DSSE v1.0 protocol: the signature is over PAE(payloadType, payload).
    let pae = pae(&envelope.payload_type, &envelope.payload);
    let signature = bundle.signature().unwrap_or_default();
    let by_key = if has_certificate {
        None
    } else {
        Vouching::by_keys(keys, &pae, signature)
    };
    let (signers, verified) = match (by_key, keyless, has_certificate) {
        (Some(by_key), _, _) => {
            let key = &keys[by_key.signers[0]];
            let req = Requirements {
                tlog_entries: 0,
                observer_timestamps: usize::from(checks.require_tlog),
                signed_timestamps: 0,
                scts: 0,
            };
            let policy = Policy::Key {
                spki_der: key.spki_der(),
            };
            let verified =
                match sigstore::verify(&bundle, &checks.root, artifact, policy, &req, checks.now) {
                    Ok(v) => v,
                    Err(SigstoreError::Subject(_)) => return Ok(other_subject(&envelope.payload)),
                    Err(SigstoreError::Threshold { .. }) => return Err(BundleFailure::NoLogEntry),
                    Err(e) => return Err(e.into()),
                };
            (by_key, verified)
        }
        (None, Some(keyless), true) => {
            let req = Requirements {
                tlog_entries: usize::from(checks.require_tlog),
                observer_timestamps: 1,
                signed_timestamps: 0,
                // cosign `VerifyEmbeddedSCT`: required unless `--insecure-ignore-sct`; a
                // trust root without CT logs (the PEM form) cannot check them.
                scts: usize::from(!checks.root.ctlogs.is_empty()),
            };
            let verified = match sigstore::verify(
                &bundle,
                &checks.root,
                artifact,
                Policy::AnyCertificate,
                &req,
                checks.now,
            ) {
                Ok(v) => v,
                Err(SigstoreError::Subject(_)) => return Ok(other_subject(&envelope.payload)),
                Err(e) => return Err(e.into()),
            };
            let Signer::Certificate { issuer, sans } = &verified.signer else {
                return Err(BundleFailure::NoSigner);
            };
            let signer = keyless.match_identities(issuer.as_deref(), sans.clone())?;
            (Vouching::keyless(keys.len(), signer), verified)
        }
        _ => return Err(BundleFailure::NoSigner),
    };
    // The statement is authenticated now and names the image digest (sigstore-go
    // `WithArtifactDigest`, checked by `sigstore::verify`). The predicate type tells a
    // signature from an attestation (SBOM, provenance), which `cosign verify` does not, but
    // which a rule about signatures must: an attestation is only ever weighed against the
    // rule's attestation requirements (`trust::attestation`).
    let payload = verified.statement.map(|s| s.payload).unwrap_or_default();
    let statement = statement(&payload)?;
    if !statement.subjects.iter().any(|d| d == digest.as_str()) {
        return Ok(BundleVerdict::OtherSubject(statement.subjects.join(", ")));
    }
    if statement.predicate.predicate_type == SIGN_PREDICATE {
        Ok(BundleVerdict::Vouches(signers))
    } else {
        Ok(BundleVerdict::Attests(signers, statement.predicate))
    }
}

/// The verdict for a statement whose signature verified but whose subjects are other
/// digests: which ones, for the refusal.
fn other_subject(payload: &[u8]) -> BundleVerdict {
    match statement(payload) {
        Ok(s) => BundleVerdict::OtherSubject(s.subjects.join(", ")),
        Err(e) => BundleVerdict::Failed(e),
    }
}

/// The subjects, predicate type and predicate of an in-toto statement (`in-toto/attestation:
/// spec/v1/statement.md`), at most [`MAX_STATEMENT`] bytes of it.
fn statement(payload: &[u8]) -> Result<Statement, BundleFailure> {
    if payload.len() > MAX_STATEMENT {
        return Err(BundleFailure::Statement(format!(
            "{} bytes, more than the {MAX_STATEMENT} read",
            payload.len()
        )));
    }
    let statement: RawStatement =
        serde_json::from_slice(payload).map_err(|e| BundleFailure::Statement(e.to_string()))?;
    if !STATEMENT_TYPES.contains(&statement.kind.as_str()) {
        return Err(BundleFailure::Statement(format!(
            "statement type {:?}",
            statement.kind
        )));
    }
    Ok(Statement {
        subjects: statement
            .subject
            .iter()
            .filter_map(|s| s.digest.get("sha256"))
            .map(|hex| format!("sha256:{}", hex.to_ascii_lowercase()))
            .collect(),
        predicate: Predicate {
            predicate_type: statement.predicate_type,
            predicate: statement.predicate,
        },
    })
}

#[cfg(test)]
mod tests;
