//! Sigstore bundles as newer cosign stores image signatures (`cosign sign
//! --new-bundle-format`, the default from cosign v3): an OCI artifact whose `subject` is the
//! image manifest and whose one layer is a bundle (`sigstore/cosign: specs/BUNDLE_SPEC.md`).
//! Pure parsing and checks, no I/O; discovery is in `referrers.rs`.
//!
//! The bundle is the JSON form of `dev.sigstore.bundle.v1.Bundle`
//! (`sigstore/protobuf-specs: protos/sigstore_bundle.proto`, camelCase keys, bytes in
//! base64, int64 as strings). cosign signs an image as a DSSE envelope
//! (`protos/envelope.proto`) of an in-toto statement whose subject is the image digest and
//! whose predicate type is `https://sigstore.dev/cosign/sign/v1` (cosign
//! `cmd/cosign/cli/sign/sign.go: signDigestBundle`); `cosign verify` refuses a bundle that
//! holds anything else (`pkg/cosign/verify.go: verifyImageAttestationsSigstoreBundle`, "bundle
//! does not contain a DSSE envelope").

use base64::Engine as _;
use serde::Deserialize;

use super::keyless::{pem_certificates, Keyless, KeylessFailure, KeylessSigner};
use super::keys::CosignKey;
use super::Vouching;
use crate::oci::Digest;
use crate::trust::attestation::{Predicate, MAX_STATEMENT};
use crate::trust::tlog::{self, RekorPayload};

/// The artifact type (and layer media type) of a v0.3 bundle.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every bundle media type starts so (cosign `ociremote.Bundle` checks the prefix).
pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The other spelling of v0.3 the protobuf-specs allow.
const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
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
/// Transparency log entries looked at in one bundle (sigstore-go caps them too).
const MAX_TLOG_ENTRIES: usize = 8;

/// Why a bundle does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleFailure {
    #[error("the bundle does not parse: {0}")]
    Parse(String),
    #[error("bundle media type {0:?} is not supported (v0.3 is, as cosign requires)")]
    Version(String),
    #[error("the bundle holds a message signature; cosign signs images as DSSE envelopes only")]
    MessageSignature,
    #[error("the bundle holds no DSSE envelope")]
    NoEnvelope,
    #[error("the envelope's payload type is {0:?}, not {INTOTO_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("the envelope has {0} signatures; exactly one is verified")]
    Signatures(usize),
    #[error(
        "the envelope's signature verifies under no trusted key, and the bundle has no certificate"
    )]
    NoSigner,
    #[error("there is no Rekor entry with a signed entry timestamp from a trusted log")]
    NoEntry,
    #[error(
        "the Rekor entry is {kind} {version}: Rekor v2 entries (checkpoint and inclusion proof, \
         no signed entry timestamp) are not supported"
    )]
    RekorV2 { kind: String, version: String },
    #[error(
        "Rekor entry kind {kind} {version} is not supported for a DSSE envelope (dsse 0.0.1 is)"
    )]
    EntryKind { kind: String, version: String },
    #[error("the Rekor entry's inclusion proof does not verify: {0}")]
    Inclusion(String),
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

/// A parsed bundle: what the checks need, decoded.
struct Bundle {
    payload_type: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
    /// The leaf first, then candidate intermediates; empty for a public-key bundle.
    certificates: Vec<Vec<u8>>,
    tlog: Vec<RawTlogEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    #[serde(alias = "verification_material")]
    verification_material: RawMaterial,
    #[serde(default, alias = "dsse_envelope")]
    dsse_envelope: Option<RawEnvelope>,
    #[serde(default, alias = "message_signature")]
    message_signature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    #[serde(default, alias = "x509_certificate_chain")]
    x509_certificate_chain: Option<RawChain>,
    #[serde(default)]
    certificate: Option<RawCertificate>,
    #[serde(default, alias = "tlog_entries")]
    tlog_entries: Vec<RawTlogEntry>,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCertificate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCertificate {
    #[serde(alias = "raw_bytes")]
    raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    payload: String,
    #[serde(alias = "payload_type")]
    payload_type: String,
    #[serde(default)]
    signatures: Vec<RawDsseSignature>,
}

#[derive(Deserialize)]
struct RawDsseSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTlogEntry {
    #[serde(alias = "log_index", deserialize_with = "int64")]
    log_index: i64,
    #[serde(alias = "log_id")]
    log_id: RawLogId,
    #[serde(alias = "kind_version")]
    kind_version: RawKindVersion,
    #[serde(default, alias = "integrated_time", deserialize_with = "int64")]
    integrated_time: i64,
    #[serde(default, alias = "inclusion_promise")]
    inclusion_promise: Option<RawPromise>,
    #[serde(default, alias = "canonicalized_body")]
    canonicalized_body: String,
    #[serde(default, alias = "inclusion_proof")]
    inclusion_proof: Option<RawInclusionProof>,
}

/// `dev.sigstore.rekor.v1.InclusionProof`: an audit path for the entry's body in the tree
/// of `treeSize` leaves whose root is `rootHash`, and the log's checkpoint for that tree.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInclusionProof {
    #[serde(alias = "log_index", deserialize_with = "int64")]
    log_index: i64,
    #[serde(alias = "root_hash")]
    root_hash: String,
    #[serde(alias = "tree_size", deserialize_with = "int64")]
    tree_size: i64,
    #[serde(default)]
    hashes: Vec<String>,
    #[serde(default)]
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    #[serde(alias = "key_id")]
    key_id: String,
}

#[derive(Deserialize)]
struct RawKindVersion {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    #[serde(alias = "signed_entry_timestamp")]
    signed_entry_timestamp: String,
}

/// A `dsse` v0.0.1 Rekor entry body, the fields compared (`sigstore/rekor:
/// pkg/types/dsse/v0.0.1/dsse_v0_0_1_schema.json`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDsseBody {
    kind: String,
    api_version: String,
    spec: RawDsseSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDsseSpec {
    payload_hash: RawHash,
    #[serde(default)]
    signatures: Vec<RawDsseEntrySignature>,
}

#[derive(Deserialize)]
struct RawHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct RawDsseEntrySignature {
    /// base64 signature.
    signature: String,
    /// base64 of the PEM certificate or public key.
    verifier: String,
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

/// protojson writes int64 as a string; accept a number too.
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Text(String),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// Checks one bundle for `digest` under the rule's keys and keyless trust, in cosign's (and
/// sigstore-go `verify.Verify`'s) order: the envelope's signature over its PAE first (by a
/// configured key, else through the Fulcio certificate and a Rekor entry that logged it),
/// then the claims of the now authenticated statement.
pub fn verify(
    bytes: &[u8],
    digest: &Digest,
    keys: &[CosignKey],
    keyless: Option<&Keyless>,
) -> BundleVerdict {
    let bundle = match parse(bytes) {
        Ok(b) => b,
        Err(e) => return BundleVerdict::Failed(e),
    };
    // DSSE v1.0 protocol: the signature is over PAE(payloadType, payload), never the
    // payload alone, so the type is authenticated too.
    let pae = pae(&bundle.payload_type, &bundle.payload);
    let signers = match Vouching::by_keys(keys, &pae, &bundle.signature) {
        Some(by_key) => by_key,
        None => match (keyless, bundle.certificates.first()) {
            (Some(keyless), Some(_)) => match keyless_signers(&bundle, &pae, keyless) {
                Ok(signer) => Vouching::keyless(keys.len(), signer),
                Err(e) => return BundleVerdict::Failed(e),
            },
            _ => return BundleVerdict::Failed(BundleFailure::NoSigner),
        },
    };
    // The statement is authenticated now; cosign `IntotoSubjectClaimVerifier` and
    // sigstore-go `WithArtifactDigest`: one of its subjects is the image digest. The
    // predicate type tells a signature from an attestation (SBOM, provenance), which
    // `cosign verify` does not, but which a rule about signatures must: an attestation is
    // only ever weighed against the rule's attestation requirements (`trust::attestation`).
    match statement(&bundle.payload) {
        Err(e) => BundleVerdict::Failed(e),
        Ok(s) if !s.subjects.iter().any(|d| d == digest.as_str()) => {
            BundleVerdict::OtherSubject(s.subjects.join(", "))
        }
        Ok(s) if s.predicate.predicate_type == SIGN_PREDICATE => BundleVerdict::Vouches(signers),
        Ok(s) => BundleVerdict::Attests(signers, s.predicate),
    }
}

fn parse(bytes: &[u8]) -> Result<Bundle, BundleFailure> {
    let raw: RawBundle =
        serde_json::from_slice(bytes).map_err(|e| BundleFailure::Parse(e.to_string()))?;
    // cosign `ociremote.Bundle`: `MinVersion("v0.3")`; 0.1 and 0.2 bundles carry a chain
    // and an inclusion promise only, which cosign image bundles never were.
    if raw.media_type != BUNDLE_MEDIA_TYPE && raw.media_type != BUNDLE_MEDIA_TYPE_ALT {
        return Err(BundleFailure::Version(raw.media_type));
    }
    let envelope = match (raw.dsse_envelope, raw.message_signature) {
        (Some(envelope), _) => envelope,
        (None, Some(_)) => return Err(BundleFailure::MessageSignature),
        (None, None) => return Err(BundleFailure::NoEnvelope),
    };
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(BundleFailure::PayloadType(envelope.payload_type));
    }
    // sigstore-go verifies exactly one envelope signature against the bundle's material.
    let [signature] = envelope.signatures.as_slice() else {
        return Err(BundleFailure::Signatures(envelope.signatures.len()));
    };
    let bad = |what: &str| BundleFailure::Parse(format!("{what} is not base64"));
    let material = raw.verification_material;
    // `certificate` (v0.3) is the leaf alone; `x509CertificateChain` (older writers) the
    // leaf first, then intermediates the signer offers, which never add trust.
    let certificates = match (material.certificate, material.x509_certificate_chain) {
        (Some(c), _) => vec![b64(&c.raw_bytes).ok_or_else(|| bad("certificate.rawBytes"))?],
        (None, Some(chain)) => chain
            .certificates
            .iter()
            .map(|c| b64(&c.raw_bytes).ok_or_else(|| bad("a chain certificate")))
            .collect::<Result<_, _>>()?,
        (None, None) => Vec::new(),
    };
    let mut tlog = material.tlog_entries;
    tlog.truncate(MAX_TLOG_ENTRIES);
    Ok(Bundle {
        payload_type: envelope.payload_type,
        payload: b64(&envelope.payload).ok_or_else(|| bad("the envelope payload"))?,
        signature: b64(&signature.sig).ok_or_else(|| bad("the envelope signature"))?,
        certificates,
        tlog,
    })
}

/// The keyless path for a bundle: a Rekor v1 entry whose signed entry timestamp verifies
/// under a configured log key (sigstore-go `verify.VerifyTlogEntry` + `tlog.VerifySET`),
/// which logged this envelope's payload, signature and certificate, and whose inclusion
/// proof and checkpoint, when it carries them, verify ([`tlog`]); then the signer checks
/// at the entry's integrated time, as for a `.sig` layer ([`Keyless::verify_signer`]).
fn keyless_signers(
    bundle: &Bundle,
    pae: &[u8],
    keyless: &Keyless,
) -> Result<KeylessSigner, BundleFailure> {
    let leaf = &bundle.certificates[0];
    let mut failure = BundleFailure::NoEntry;
    for entry in &bundle.tlog {
        let Some(log_id) = b64(&entry.log_id.key_id).map(hex::encode) else {
            continue;
        };
        // Skip entries of logs the rule does not trust (sigstore-go does the same).
        if !keyless.trusts_log(&log_id) {
            continue;
        }
        let (kind, version) = (&entry.kind_version.kind, &entry.kind_version.version);
        // Rekor v2 entries (`hashedrekord`/`dsse` 0.0.2) have no SET: only a checkpoint and
        // an inclusion proof, which is not enough for this verifier yet (no SET to give the
        // log time).
        let Some(promise) = &entry.inclusion_promise else {
            failure = BundleFailure::RekorV2 {
                kind: kind.clone(),
                version: version.clone(),
            };
            continue;
        };
        if version != "0.0.1" {
            failure = BundleFailure::RekorV2 {
                kind: kind.clone(),
                version: version.clone(),
            };
            continue;
        }
        if kind != "dsse" {
            failure = BundleFailure::EntryKind {
                kind: kind.clone(),
                version: version.clone(),
            };
            continue;
        }
        let Some(body) = b64(&entry.canonicalized_body) else {
            failure = BundleFailure::Parse("canonicalizedBody is not base64".to_owned());
            continue;
        };
        let set = b64(&promise.signed_entry_timestamp).unwrap_or_default();
        // The SET signs the same payload as a legacy bundle's: the body as Rekor returned
        // it (base64), integratedTime, logIndex and the hex log ID.
        let payload = RekorPayload {
            body: base64::engine::general_purpose::STANDARD.encode(&body),
            integrated_time: entry.integrated_time,
            log_index: entry.log_index,
            log_id,
        };
        if let Err(e) = keyless.verify_set(&payload, &set) {
            failure = e.into();
            continue;
        }
        // sigstore-go `tlog.VerifyInclusion`: a proof the entry carries must hold, under the
        // key that signed the SET. Entries without one count on their SET alone.
        if let Some(proof) = &entry.inclusion_proof {
            let key = keyless.rekor_key(&payload.log_id).map(|k| k.log_key());
            if let Err(e) = key
                .ok_or_else(|| "no trusted key for the log".to_owned())
                .and_then(|key| verify_inclusion_proof(proof, &body, key))
            {
                failure = BundleFailure::Inclusion(e);
                continue;
            }
        }
        // sigstore-go `VerifyTlogEntry`, Rekor v1: the (now authenticated) entry is about
        // this envelope: its payload hash, its signature and its certificate.
        if let Err(e) = dsse_entry_matches(&body, &bundle.payload, &bundle.signature, leaf) {
            failure = e.into();
            continue;
        }
        return Ok(keyless.verify_signer(
            leaf,
            &bundle.certificates[1..],
            entry.integrated_time,
            pae,
            &bundle.signature,
        )?);
    }
    Err(failure)
}

/// A Rekor v1 inclusion proof (sigstore-go `tlog.VerifyInclusion`, Rekor
/// `verify.VerifyInclusion` and `VerifyCheckpointSignature`): the leaf is the canonicalized
/// entry body, the audit path leads from it to the proof's root hash (RFC 9162 section
/// 2.1.3.2), and the checkpoint, signed by the log's key, commits to that same root hash and
/// tree size.
fn verify_inclusion_proof(
    proof: &RawInclusionProof,
    body: &[u8],
    key: &tlog::LogKey,
) -> Result<(), String> {
    let (Ok(index), Ok(size)) = (
        u64::try_from(proof.log_index),
        u64::try_from(proof.tree_size),
    ) else {
        return Err("a negative log index or tree size".to_owned());
    };
    if proof.hashes.len() > tlog::MAX_PATH {
        return Err(tlog::ProofError::PathTooLong(proof.hashes.len()).to_string());
    }
    let path = proof
        .hashes
        .iter()
        .map(|h| b64(h).ok_or_else(|| "an audit path hash is not base64".to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let root = b64(&proof.root_hash).ok_or_else(|| "the root hash is not base64".to_owned())?;
    let checkpoint = proof
        .checkpoint
        .as_ref()
        .ok_or_else(|| "the proof has no checkpoint".to_owned())?;
    tlog::verify_inclusion_in_checkpoint(
        index,
        size,
        body,
        &path,
        &root,
        checkpoint.envelope.as_bytes(),
        key,
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

/// Whether a `dsse` v0.0.1 entry body logged `payload` (by its SHA-256) signed with
/// `signature` by the certificate `leaf` (DER).
fn dsse_entry_matches(
    body: &[u8],
    payload: &[u8],
    signature: &[u8],
    leaf: &[u8],
) -> Result<(), KeylessFailure> {
    let body: RawDsseBody = serde_json::from_slice(body)
        .map_err(|e| KeylessFailure::Bundle(format!("the dsse entry does not parse: {e}")))?;
    if body.kind != "dsse" || body.api_version != "0.0.1" {
        return Err(KeylessFailure::Bundle(format!(
            "the entry body is {} {}, not dsse 0.0.1",
            body.kind, body.api_version
        )));
    }
    let hash = &body.spec.payload_hash;
    let payload_hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        payload,
    ));
    if hash.algorithm != "sha256" || !hash.value.eq_ignore_ascii_case(&payload_hash) {
        return Err(KeylessFailure::EntryMismatch("payload"));
    }
    let logged = body
        .spec
        .signatures
        .iter()
        .find(|s| b64(&s.signature).as_deref() == Some(signature))
        .ok_or(KeylessFailure::EntryMismatch("signature"))?;
    let logged_cert =
        b64(&logged.verifier).and_then(|pem| pem_certificates(&pem).into_iter().next());
    if logged_cert.as_deref() != Some(leaf) {
        return Err(KeylessFailure::EntryMismatch("certificate"));
    }
    Ok(())
}

/// DSSE v1 pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
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

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

#[cfg(test)]
mod tests;
