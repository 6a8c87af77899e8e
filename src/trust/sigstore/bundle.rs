//! The sigstore bundle wire format (`dev.sigstore.bundle.v1.Bundle`, sigstore/protobuf-specs
//! `protos/sigstore_bundle.proto`) in protobuf JSON, parsed into a typed [`Bundle`] and
//! checked for what each media type version requires (sigstore-go `bundle.Bundle.validate`
//! and protobuf-specs' own rules) before anything is verified.

use serde::{Deserialize, Deserializer};

use super::SigstoreError;
use crate::trust::{root::b64, tlog::MAX_PATH};

/// Largest bundle read. A keyless bundle with a Rekor v1 entry is 5-10 KiB; a DSSE bundle
/// carries its (in-toto) payload twice, so a large provenance statement still fits well
/// under 1 MiB.
pub const MAX_BUNDLE_SIZE: usize = 1024 * 1024;
/// Most transparency-log entries read from one bundle.
pub const MAX_TLOG_ENTRIES: usize = 8;
/// Most RFC 3161 timestamps read from one bundle.
pub const MAX_TIMESTAMPS: usize = 8;
/// Most certificates of a (v0.1/v0.2) certificate chain.
pub const MAX_CHAIN: usize = 8;
/// Most DSSE signatures read (exactly one must be there to verify).
pub const MAX_DSSE_SIGNATURES: usize = 8;

/// The bundle media type version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V01,
    V02,
    V03,
}

/// What the bundle says verifies its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// A Fulcio leaf (DER), and, in a v0.1/v0.2 chain, the certificates after it (candidate
    /// intermediates only: trust comes from the trusted root).
    Certificate {
        leaf: Vec<u8>,
        offered: Vec<Vec<u8>>,
    },
    /// A key the verifier must already hold; the hint is unauthenticated and unused.
    PublicKey { hint: String },
}

/// The signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A signature over the artifact, and the digest the signer claims for it.
    Message {
        /// `(algorithm, digest)`, e.g. `("SHA2_256", 32 bytes)`.
        digest: Option<(String, Vec<u8>)>,
        signature: Vec<u8>,
    },
    /// A DSSE envelope.
    Dsse(Envelope),
}

/// A DSSE envelope (secure-systems-lab/dsse `envelope.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Vec<u8>>,
}

/// An inclusion proof with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<Vec<u8>>,
}

/// One transparency-log entry (`TransparencyLogEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub log_index: u64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub version: String,
    /// Unix seconds; 0 for Rekor v2, which has no integrated time.
    pub integrated_time: i64,
    /// The signed entry timestamp (Rekor v1 inclusion promise).
    pub set: Option<Vec<u8>>,
    pub proof: Option<Proof>,
    /// `canonicalizedBody`: the entry as logged (the Merkle leaf).
    pub body: Vec<u8>,
}

/// A parsed, structurally valid bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub version: Version,
    pub material: Material,
    pub entries: Vec<Entry>,
    /// DER RFC 3161 `TimeStampToken`s.
    pub timestamps: Vec<Vec<u8>>,
    pub content: Content,
}

// === wire types ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBundle {
    #[serde(default, alias = "media_type")]
    media_type: String,
    #[serde(alias = "verification_material")]
    verification_material: Option<WireMaterial>,
    #[serde(default, alias = "message_signature")]
    message_signature: Option<WireMessage>,
    #[serde(default, alias = "dsse_envelope")]
    dsse_envelope: Option<WireEnvelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMaterial {
    #[serde(default, alias = "public_key")]
    public_key: Option<WireHint>,
    #[serde(default, alias = "x509_certificate_chain")]
    x509_certificate_chain: Option<WireChain>,
    #[serde(default)]
    certificate: Option<WireCert>,
    #[serde(default, alias = "tlog_entries")]
    tlog_entries: Vec<WireEntry>,
    #[serde(default, alias = "timestamp_verification_data")]
    timestamp_verification_data: Option<WireTimestamps>,
}

#[derive(Deserialize)]
struct WireHint {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
struct WireChain {
    #[serde(default)]
    certificates: Vec<WireCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCert {
    #[serde(default, alias = "raw_bytes")]
    raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTimestamps {
    #[serde(default, alias = "rfc3161_timestamps")]
    rfc3161_timestamps: Vec<WireTimestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTimestamp {
    #[serde(default, alias = "signed_timestamp")]
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEntry {
    #[serde(default, alias = "log_index", deserialize_with = "int64")]
    log_index: i64,
    #[serde(default, alias = "log_id")]
    log_id: Option<WireKeyId>,
    #[serde(default, alias = "kind_version")]
    kind_version: Option<WireKindVersion>,
    #[serde(default, alias = "integrated_time", deserialize_with = "int64")]
    integrated_time: i64,
    #[serde(default, alias = "inclusion_promise")]
    inclusion_promise: Option<WirePromise>,
    #[serde(default, alias = "inclusion_proof")]
    inclusion_proof: Option<WireProof>,
    #[serde(default, alias = "canonicalized_body")]
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireKeyId {
    #[serde(default, alias = "key_id")]
    key_id: String,
}

#[derive(Deserialize)]
struct WireKindVersion {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePromise {
    #[serde(default, alias = "signed_entry_timestamp")]
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireProof {
    #[serde(default, alias = "log_index", deserialize_with = "int64")]
    log_index: i64,
    #[serde(default, alias = "root_hash")]
    root_hash: String,
    #[serde(default, alias = "tree_size", deserialize_with = "int64")]
    tree_size: i64,
    #[serde(default)]
    hashes: Vec<String>,
    #[serde(default)]
    checkpoint: Option<WireCheckpoint>,
}

#[derive(Deserialize)]
struct WireCheckpoint {
    #[serde(default)]
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(default, alias = "message_digest")]
    message_digest: Option<WireDigest>,
    #[serde(default)]
    signature: String,
}

#[derive(Deserialize)]
struct WireDigest {
    #[serde(default)]
    algorithm: String,
    #[serde(default)]
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEnvelope {
    #[serde(default)]
    payload: String,
    #[serde(default, alias = "payload_type")]
    payload_type: String,
    #[serde(default)]
    signatures: Vec<WireDsseSig>,
}

#[derive(Deserialize)]
struct WireDsseSig {
    #[serde(default)]
    sig: String,
}

/// Protobuf JSON int64: a decimal string (what protojson writes) or a JSON number.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Text(String),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an int64"))),
    }
}

// === parsing ===

/// The version of a bundle media type: `application/vnd.dev.sigstore.bundle+json;version=0.N`
/// (v0.1 to v0.3) or `application/vnd.dev.sigstore.bundle.v0.3+json` (sigstore-go
/// `bundle.getBundleVersion`); anything else is refused.
pub fn version_of(media_type: &str) -> Result<Version, SigstoreError> {
    let version = media_type
        .strip_prefix("application/vnd.dev.sigstore.bundle+json;version=")
        .or_else(|| {
            media_type
                .strip_prefix("application/vnd.dev.sigstore.bundle.v")
                .and_then(|v| v.strip_suffix("+json"))
        });
    match version {
        Some("0.1") => Ok(Version::V01),
        Some("0.2") => Ok(Version::V02),
        Some("0.3") => Ok(Version::V03),
        _ => Err(SigstoreError::MediaType(
            media_type.chars().take(100).collect(),
        )),
    }
}

fn malformed(what: impl Into<String>) -> SigstoreError {
    SigstoreError::Malformed(what.into())
}

fn bytes(field: &str, value: &str) -> Result<Vec<u8>, SigstoreError> {
    b64(value).ok_or_else(|| malformed(format!("{field} is not base64")))
}

fn nonempty(field: &str, value: &str) -> Result<Vec<u8>, SigstoreError> {
    let out = bytes(field, value)?;
    if out.is_empty() {
        return Err(malformed(format!("{field} is empty")));
    }
    Ok(out)
}

impl Bundle {
    /// Parses a bundle and checks its structure (not its signatures).
    pub fn from_json(json: &[u8]) -> Result<Self, SigstoreError> {
        if json.len() > MAX_BUNDLE_SIZE {
            return Err(SigstoreError::TooLarge(json.len()));
        }
        let wire: WireBundle =
            serde_json::from_slice(json).map_err(|e| malformed(format!("not a bundle: {e}")))?;
        let version = version_of(&wire.media_type)?;
        let vm = wire
            .verification_material
            .ok_or_else(|| malformed("it has no verificationMaterial"))?;

        // protobuf-specs `VerificationMaterial.content` is a oneof.
        let material =
            match (vm.public_key, vm.x509_certificate_chain, vm.certificate) {
                (Some(key), None, None) => Material::PublicKey { hint: key.hint },
                (None, Some(chain), None) => {
                    // bundle.Bundle.validate: v0.3 allows a single certificate only.
                    if version >= Version::V03 {
                        return Err(malformed(
                            "a v0.3 bundle carries one certificate, not an x509CertificateChain",
                        ));
                    }
                    if chain.certificates.len() > MAX_CHAIN {
                        return Err(malformed(format!(
                            "its certificate chain has more than {MAX_CHAIN} certificates"
                        )));
                    }
                    let mut certs = chain
                        .certificates
                        .iter()
                        .map(|c| nonempty("a chain certificate", &c.raw_bytes))
                        .collect::<Result<Vec<_>, _>>()?
                        .into_iter();
                    let leaf = certs
                        .next()
                        .ok_or_else(|| malformed("its certificate chain is empty"))?;
                    Material::Certificate {
                        leaf,
                        offered: certs.collect(),
                    }
                }
                (None, None, Some(cert)) => Material::Certificate {
                    leaf: nonempty("certificate.rawBytes", &cert.raw_bytes)?,
                    offered: Vec::new(),
                },
                (None, None, None) => {
                    return Err(malformed(
                        "its verificationMaterial has no certificate or public key",
                    ))
                }
                _ => return Err(malformed(
                    "its verificationMaterial has more than one of certificate, chain, public key",
                )),
            };

        if vm.tlog_entries.len() > MAX_TLOG_ENTRIES {
            return Err(malformed(format!(
                "it has more than {MAX_TLOG_ENTRIES} transparency log entries"
            )));
        }
        let entries = vm
            .tlog_entries
            .into_iter()
            .map(|e| parse_entry(version, e))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in entries.iter().enumerate() {
            if entries[..i]
                .iter()
                .any(|b| b.log_id == a.log_id && b.log_index == a.log_index)
            {
                return Err(malformed("it lists the same log entry twice"));
            }
        }

        let timestamps = vm
            .timestamp_verification_data
            .map(|t| t.rfc3161_timestamps)
            .unwrap_or_default();
        if timestamps.len() > MAX_TIMESTAMPS {
            return Err(malformed(format!(
                "it has more than {MAX_TIMESTAMPS} RFC 3161 timestamps"
            )));
        }
        let timestamps = timestamps
            .iter()
            .map(|t| nonempty("rfc3161Timestamps[].signedTimestamp", &t.signed_timestamp))
            .collect::<Result<Vec<_>, _>>()?;

        // protobuf-specs `Bundle.content` is a oneof.
        let content = match (wire.message_signature, wire.dsse_envelope) {
            (Some(m), None) => {
                let digest = match m.message_digest {
                    Some(d) => Some((d.algorithm, bytes("messageDigest.digest", &d.digest)?)),
                    None => None,
                };
                Content::Message {
                    digest,
                    signature: nonempty("messageSignature.signature", &m.signature)?,
                }
            }
            (None, Some(e)) => {
                if e.signatures.len() > MAX_DSSE_SIGNATURES {
                    return Err(malformed(format!(
                        "its DSSE envelope has more than {MAX_DSSE_SIGNATURES} signatures"
                    )));
                }
                Content::Dsse(Envelope {
                    payload: bytes("dsseEnvelope.payload", &e.payload)?,
                    payload_type: e.payload_type,
                    signatures: e
                        .signatures
                        .iter()
                        .map(|s| nonempty("dsseEnvelope.signatures[].sig", &s.sig))
                        .collect::<Result<_, _>>()?,
                })
            }
            (None, None) => {
                return Err(malformed(
                    "it has neither a messageSignature nor a dsseEnvelope",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(malformed(
                    "it has both a messageSignature and a dsseEnvelope",
                ))
            }
        };

        Ok(Bundle {
            version,
            material,
            entries,
            timestamps,
            content,
        })
    }

    /// The signature bytes timestamps are over (sigstore-go `SignatureContent.Signature`):
    /// the message signature, or the DSSE envelope's one signature.
    pub fn signature(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Message { signature, .. } => Some(signature),
            Content::Dsse(env) => match env.signatures.as_slice() {
                [one] => Some(one),
                _ => None,
            },
        }
    }
}

fn parse_entry(version: Version, e: WireEntry) -> Result<Entry, SigstoreError> {
    if e.log_index < 0 {
        return Err(malformed(format!(
            "a transparency log entry has a negative log index ({})",
            e.log_index
        )));
    }
    if e.integrated_time < 0 {
        return Err(malformed(
            "a transparency log entry has a negative integrated time",
        ));
    }
    let log_id = nonempty(
        "logId.keyId",
        &e.log_id
            .ok_or_else(|| malformed("a transparency log entry has no logId"))?
            .key_id,
    )?;
    let kv = e
        .kind_version
        .ok_or_else(|| malformed("a transparency log entry has no kindVersion"))?;
    let set = match e.inclusion_promise {
        Some(p) => Some(nonempty(
            "inclusionPromise.signedEntryTimestamp",
            &p.signed_entry_timestamp,
        )?),
        None => None,
    };
    let proof = match e.inclusion_proof {
        Some(p) => {
            if p.log_index < 0 || p.tree_size < 0 {
                return Err(malformed(
                    "an inclusion proof has a negative log index or tree size",
                ));
            }
            if p.hashes.len() > MAX_PATH {
                return Err(malformed(format!(
                    "an inclusion proof has more than {MAX_PATH} hashes"
                )));
            }
            let checkpoint = match p.checkpoint {
                Some(c) if !c.envelope.is_empty() => Some(c.envelope.into_bytes()),
                _ => None,
            };
            Some(Proof {
                log_index: p.log_index.unsigned_abs(),
                tree_size: p.tree_size.unsigned_abs(),
                root_hash: bytes("inclusionProof.rootHash", &p.root_hash)?,
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| bytes("inclusionProof.hashes[]", h))
                    .collect::<Result<_, _>>()?,
                checkpoint,
            })
        }
        None => None,
    };
    // bundle.Bundle.validate: v0.1 needs inclusion promises, v0.2 and later inclusion
    // proofs (protobuf-specs: "a checkpoint is required" from v0.2 on).
    match version {
        Version::V01 if set.is_none() => {
            return Err(malformed(
                "a v0.1 bundle's log entry has no inclusion promise (required for v0.1)",
            ))
        }
        Version::V02 | Version::V03 => match &proof {
            None => {
                return Err(malformed(
                    "a log entry has no inclusion proof (required from bundle v0.2 on)",
                ))
            }
            Some(p) if p.checkpoint.is_none() => return Err(malformed(
                "a log entry's inclusion proof has no checkpoint (required from bundle v0.2 on)",
            )),
            _ => {}
        },
        _ => {}
    }
    Ok(Entry {
        log_index: e.log_index.unsigned_abs(),
        log_id,
        kind: kv.kind,
        version: kv.version,
        integrated_time: e.integrated_time,
        set,
        proof,
        body: nonempty("canonicalizedBody", &e.canonicalized_body)?,
    })
}
