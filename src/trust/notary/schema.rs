//! Wire types of Notary v1 metadata (notary `tuf/data/*.go`).
//!
//! Each file is an envelope `{"signed": {...}, "signatures": [...]}`. The `signed` object is
//! kept as a generic value next to its typed form because the signature covers the canonical
//! re-encoding of that value (including fields this crate does not model), not the served bytes.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{de::DeserializeOwned, Deserialize, Deserializer};
use serde_json::Value;
use time::OffsetDateTime;

/// Standard base64, which Go uses for `[]byte` fields (`sig`, `public`, hashes).
pub(crate) fn b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One signature from the envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    pub keyid: String,
    /// notary lower-cases the method on unmarshal (`tuf/data/types.go`); so do we.
    #[serde(deserialize_with = "lowercase")]
    pub method: String,
    #[serde(deserialize_with = "base64_bytes")]
    pub sig: Vec<u8>,
}

/// A parsed envelope: typed `signed`, its generic form, and the signatures.
#[derive(Debug, Clone)]
pub struct Signed<T> {
    pub signed: T,
    pub signed_value: Value,
    pub signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    signed: Value,
    signatures: Vec<Signature>,
}

impl<T: DeserializeOwned> Signed<T> {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: RawEnvelope = serde_json::from_slice(bytes)?;
        let signed = T::deserialize(&raw.signed)?;
        Ok(Signed {
            signed,
            signed_value: raw.signed,
            signatures: raw.signatures,
        })
    }
}

/// A public key as it appears in metadata (`tuf/data/keys.go: TUFKey`).
#[derive(Debug, Clone, Deserialize)]
pub struct KeyJson {
    pub keytype: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyVal {
    #[serde(deserialize_with = "base64_bytes")]
    pub public: Vec<u8>,
}

/// A role's keys and threshold (`tuf/data/roles.go: RootRole`).
#[derive(Debug, Clone, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: i64,
}

/// Fields every role carries.
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
    #[serde(rename = "_type")]
    pub type_: String,
    pub version: i64,
    #[serde(deserialize_with = "rfc3339")]
    pub expires: OffsetDateTime,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    #[serde(flatten)]
    pub common: Common,
    pub keys: BTreeMap<String, KeyJson>,
    pub roles: BTreeMap<String, RoleKeys>,
}

/// Length and hashes of a file, as listed by its parent (`tuf/data/types.go: FileMeta`).
#[derive(Debug, Clone, Deserialize)]
pub struct FileMeta {
    pub length: i64,
    #[serde(deserialize_with = "hashes")]
    pub hashes: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Timestamp {
    #[serde(flatten)]
    pub common: Common,
    pub meta: BTreeMap<String, FileMeta>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub common: Common,
    pub meta: BTreeMap<String, FileMeta>,
}

/// A delegated role as listed in its parent (`tuf/data/roles.go: Role`).
#[derive(Debug, Clone, Deserialize)]
pub struct DelegatedRole {
    pub name: String,
    pub keyids: Vec<String>,
    pub threshold: i64,
    #[serde(default)]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Delegations {
    #[serde(default)]
    pub keys: BTreeMap<String, KeyJson>,
    #[serde(default)]
    pub roles: Vec<DelegatedRole>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub targets: BTreeMap<String, FileMeta>,
    #[serde(default)]
    pub delegations: Delegations,
}

fn lowercase<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(String::deserialize(d)?.to_ascii_lowercase())
}

fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    b64(&s).map_err(serde::de::Error::custom)
}

fn hashes<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
    BTreeMap::<String, String>::deserialize(d)?
        .into_iter()
        .map(|(alg, v)| Ok((alg, b64(&v).map_err(serde::de::Error::custom)?)))
        .collect()
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| serde::de::Error::custom(format!("expires {s:?}: {e}")))
}
