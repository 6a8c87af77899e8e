//! TUF metadata as the client reads it (TUF v1.0 section 4, "Document formats"): the signed
//! envelope, the four top-level roles, keys and the one threshold check every role goes
//! through.
//!
//! A file is parsed once into a JSON value; its signatures are checked over the canonical form
//! of that same value's `signed` and the typed role is read from that same value, so what is
//! verified and what is used cannot differ.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::{digest, signature};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use x509_parser::{prelude::FromDer, x509::SubjectPublicKeyInfo};

use super::{canonical::canonical, error::Role, TufError};

/// Signatures checked on one file: sigstore's roots carry at most ten, and each costs a
/// signature verification.
pub const MAX_SIGNATURES: usize = 64;
/// Keys one role may list.
pub const MAX_ROLE_KEYS: usize = 64;
/// OID of the P-256 curve (prime256v1).
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// One signature as metadata lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct SignatureJson {
    pub keyid: String,
    /// Hex; an empty or undecodable signature simply does not count.
    pub sig: String,
}

/// A metadata file: its signatures and the canonical bytes they are over.
#[derive(Debug, Clone)]
pub struct Envelope {
    signatures: Vec<SignatureJson>,
    signed: Value,
    canonical: Vec<u8>,
}

#[derive(Deserialize)]
struct EnvelopeJson {
    signatures: Vec<SignatureJson>,
    signed: Value,
}

/// The fields every role's `signed` carries.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "_type")]
    typ: String,
    spec_version: String,
    version: u64,
    expires: String,
}

/// A role's document type, checked against `_type`.
pub trait RoleBody: DeserializeOwned {
    const ROLE: Role;
}

/// A parsed (not yet trusted) metadata file of one role.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    pub envelope: Envelope,
    pub version: u64,
    pub expires: OffsetDateTime,
    pub body: T,
    /// The bytes as fetched: what is persisted.
    pub raw: Vec<u8>,
}

/// A key as metadata lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyJson {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyVal {
    pub public: String,
}

/// The keys and threshold of one role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

/// `root.json` (section 4.3).
#[derive(Debug, Clone, Deserialize)]
pub struct RootBody {
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, KeyJson>,
    pub roles: BTreeMap<String, RoleKeys>,
}

/// A file another role lists: `METAFILES` in sections 4.4 and 4.5.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default)]
    pub length: Option<u64>,
    #[serde(default)]
    pub hashes: Option<BTreeMap<String, String>>,
}

/// `timestamp.json` (section 4.6).
#[derive(Debug, Clone, Deserialize)]
pub struct TimestampBody {
    pub meta: BTreeMap<String, MetaFile>,
}

/// `snapshot.json` (section 4.4).
#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotBody {
    pub meta: BTreeMap<String, MetaFile>,
}

/// A target file as `targets.json` lists it (section 4.5).
#[derive(Debug, Clone, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
}

/// `targets.json` (section 4.5). Delegations are only looked at to say a target is not
/// top-level.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetsBody {
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(default)]
    pub delegations: Option<Value>,
}

impl RoleBody for RootBody {
    const ROLE: Role = Role::Root;
}
impl RoleBody for TimestampBody {
    const ROLE: Role = Role::Timestamp;
}
impl RoleBody for SnapshotBody {
    const ROLE: Role = Role::Snapshot;
}
impl RoleBody for TargetsBody {
    const ROLE: Role = Role::Targets;
}

/// A usable public key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// Uncompressed SEC1 point; signatures are ASN.1 DER over SHA-256.
    EcP256(Vec<u8>),
    Ed25519(Vec<u8>),
}

fn malformed(what: &str, detail: impl std::fmt::Display) -> TufError {
    TufError::Malformed {
        what: what.to_owned(),
        detail: detail.to_string(),
    }
}

/// `expires` as ISO 8601 / RFC 3339 (sigstore's first root carries an offset and fractional
/// seconds).
fn parse_time(what: &str, s: &str) -> Result<OffsetDateTime, TufError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| malformed(what, format!("expires {s:?}: {e}")))
}

// === impl Envelope ===

impl Envelope {
    /// Parses `{"signatures": [...], "signed": {...}}` and computes the signed bytes.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Self, TufError> {
        let env: EnvelopeJson = serde_json::from_slice(bytes).map_err(|e| malformed(what, e))?;
        if env.signatures.len() > MAX_SIGNATURES {
            return Err(TufError::TooManySignatures {
                what: what.to_owned(),
                count: env.signatures.len(),
                max: MAX_SIGNATURES,
            });
        }
        if !env.signed.is_object() {
            return Err(malformed(what, "\"signed\" is not an object"));
        }
        let canonical = canonical(&env.signed).map_err(|e| malformed(what, e))?;
        Ok(Envelope {
            signatures: env.signatures,
            signed: env.signed,
            canonical,
        })
    }
}

/// Parses a file of role `T`: envelope, header (type, spec version, version, expiry), body.
pub fn parse<T: RoleBody>(what: &str, raw: Vec<u8>) -> Result<Parsed<T>, TufError> {
    let envelope = Envelope::parse(what, &raw)?;
    let header = Header::deserialize(&envelope.signed).map_err(|e| malformed(what, e))?;
    if header.typ != T::ROLE.as_str() {
        return Err(TufError::WrongType {
            what: what.to_owned(),
            role: T::ROLE,
            found: header.typ,
        });
    }
    // Section 4.2: a client refuses metadata of another major spec version.
    if header.spec_version.split('.').next() != Some("1") {
        return Err(malformed(
            what,
            format!("spec_version {:?} is not 1.x", header.spec_version),
        ));
    }
    if header.version == 0 {
        return Err(malformed(what, "version 0 (versions start at 1)"));
    }
    let expires = parse_time(what, &header.expires)?;
    let body = T::deserialize(&envelope.signed).map_err(|e| malformed(what, e))?;
    Ok(Parsed {
        envelope,
        version: header.version,
        expires,
        body,
        raw,
    })
}

// === impl Parsed<RootBody> ===

impl Parsed<RootBody> {
    /// The keys and threshold of a top-level role; a root without all four is malformed.
    pub fn role(&self, role: Role) -> Result<&RoleKeys, TufError> {
        let keys = self.body.roles.get(role.as_str()).ok_or_else(|| {
            malformed(
                &format!("{}.root.json", self.version),
                format!("no {role} role"),
            )
        })?;
        if keys.threshold == 0 || keys.keyids.len() > MAX_ROLE_KEYS {
            return Err(malformed(
                &format!("{}.root.json", self.version),
                format!(
                    "{role} role has threshold {} over {} keys",
                    keys.threshold,
                    keys.keyids.len()
                ),
            ));
        }
        Ok(keys)
    }

    /// Checks that a threshold of this root's keys for `role` signed `envelope` (sections
    /// 5.3.4, 5.4.2, 5.5.3, 5.6.3). Each key counts once however many signatures name it,
    /// a key listed under two IDs counts once, and keys of unknown types never count.
    pub fn verify(&self, what: &str, role: Role, envelope: &Envelope) -> Result<(), TufError> {
        let role_keys = self.role(role)?;
        let mut counted: Vec<Key> = Vec::new();
        let ids: BTreeSet<&str> = role_keys.keyids.iter().map(String::as_str).collect();
        for id in ids {
            let Some(key) = self.body.keys.get(id).and_then(parse_key) else {
                continue;
            };
            if counted.contains(&key) {
                continue;
            }
            let signed = envelope
                .signatures
                .iter()
                .filter(|s| s.keyid == id)
                .filter_map(|s| hex::decode(&s.sig).ok())
                .any(|sig| key_verifies(&key, &envelope.canonical, &sig));
            if signed {
                counted.push(key);
            }
        }
        if (counted.len() as u64) < role_keys.threshold {
            return Err(TufError::Threshold {
                what: what.to_owned(),
                role,
                valid: counted.len(),
                threshold: role_keys.threshold,
            });
        }
        Ok(())
    }
}

/// A key this client can use, or `None` (unknown type or scheme, unparsable material): such
/// keys never count toward a threshold.
fn parse_key(key: &KeyJson) -> Option<Key> {
    match (key.keytype.as_str(), key.scheme.as_str()) {
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            let public = key.keyval.public.trim();
            if public.starts_with("-----BEGIN") {
                ec_point_from_pem(public.as_bytes()).map(Key::EcP256)
            } else {
                // sigstore's roots 1 to 4 (go-tuf) list the uncompressed point in hex.
                let point = hex::decode(public).ok()?;
                (point.len() == 65 && point[0] == 4).then_some(Key::EcP256(point))
            }
        }
        ("ed25519", "ed25519") => {
            let raw = hex::decode(key.keyval.public.trim()).ok()?;
            (raw.len() == 32).then_some(Key::Ed25519(raw))
        }
        _ => None,
    }
}

/// The P-256 point of a PEM `PUBLIC KEY` (a DER SubjectPublicKeyInfo).
fn ec_point_from_pem(pem: &[u8]) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    if pem.label != "PUBLIC KEY" {
        return None;
    }
    let (rest, spki) = SubjectPublicKeyInfo::from_der(&pem.contents).ok()?;
    if !rest.is_empty() {
        return None;
    }
    (crate::trust::x509::ec_curve(&spki).as_deref() == Some(OID_P256))
        .then(|| spki.subject_public_key.data.to_vec())
}

fn key_verifies(key: &Key, message: &[u8], sig: &[u8]) -> bool {
    let (alg, public): (&'static dyn signature::VerificationAlgorithm, &[u8]) = match key {
        Key::EcP256(point) => (&signature::ECDSA_P256_SHA256_ASN1, point),
        Key::Ed25519(raw) => (&signature::ED25519, raw),
    };
    signature::UnparsedPublicKey::new(alg, public)
        .verify(message, sig)
        .is_ok()
}

/// Checks `bytes` against a listing's length and hashes (sections 5.5.2, 5.6.2, 5.7.3).
/// Unknown hash algorithms are skipped; every sha256/sha512 listed must match, and when
/// `require_hash` at least one must be listed.
pub fn check_listing(
    what: &str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
    require_hash: bool,
) -> Result<(), TufError> {
    if let Some(expected) = length {
        if bytes.len() as u64 != expected {
            return Err(TufError::LengthMismatch {
                what: what.to_owned(),
                expected,
                found: bytes.len() as u64,
            });
        }
    }
    let mut checked = 0;
    let listed = hashes.map(|h| !h.is_empty()).unwrap_or(false);
    for (alg, want) in hashes.into_iter().flatten() {
        let algorithm = match alg.as_str() {
            "sha256" => &digest::SHA256,
            "sha512" => &digest::SHA512,
            _ => continue,
        };
        let got = digest::digest(algorithm, bytes);
        let matches = hex::decode(want).is_ok_and(|w| w.as_slice() == got.as_ref());
        if !matches {
            return Err(TufError::HashMismatch {
                what: what.to_owned(),
                algorithm: alg.clone(),
            });
        }
        checked += 1;
    }
    if checked == 0 && (require_hash || listed) {
        return Err(TufError::NoKnownHash {
            what: what.to_owned(),
        });
    }
    Ok(())
}
