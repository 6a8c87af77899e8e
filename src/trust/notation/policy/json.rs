//! The trust policy document as Go's `encoding/json` decodes it into notation-go's
//! `trustpolicy.OCIDocument` (`verifier/trustpolicy/oci.go`, `trustpolicy.go`), so that a
//! document means here what it means to notation:
//!
//! - an object key names a field when it equals the field's name exactly, or else when the
//!   two are equal under Go's case folding (`"Override"` is `override`);
//! - unknown keys are ignored (their values must still be JSON);
//! - `null` leaves a field at its zero value (empty string, empty list, no override), a
//!   `null` list element is the element's zero value;
//! - only the first JSON value of the input is read (`json.Decoder.Decode`).
//!
//! One departure, on the side of refusing: where Go lets a repeated key (or two keys that
//! fold to one field) overwrite or merge into the earlier value, a repeated field is an
//! error here. Keys repeated inside `override` keep Go's last-one-wins (it is a map there).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// `OCIDocument`.
#[derive(Debug, Default)]
pub(super) struct RawDocument {
    pub version: String,
    pub trust_policies: Vec<RawStatement>,
}

/// `OCITrustPolicy`.
#[derive(Debug, Default, Clone)]
pub(super) struct RawStatement {
    pub name: String,
    pub signature_verification: RawVerification,
    pub trust_stores: Vec<String>,
    pub trusted_identities: Vec<String>,
    pub registry_scopes: Vec<String>,
}

/// `SignatureVerification`.
#[derive(Debug, Default, Clone)]
pub(super) struct RawVerification {
    pub level: String,
    /// `override`, keys as written (Go map: the last of a repeated key wins).
    pub overrides: BTreeMap<String, String>,
    pub verify_timestamp: String,
}

/// Decodes the first JSON value of `bytes` as notation-go decodes a trust policy file.
pub(super) fn decode(bytes: &[u8]) -> Result<RawDocument, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // No `de.end()`: like `json.Decoder.Decode`, whatever follows the first value is not read.
    Ok(Lax::<RawDocument>::deserialize(&mut de)?.0)
}

/// A value where JSON `null` decodes to the zero value, as it leaves a Go value untouched.
struct Lax<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lax<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lax(Option::<T>::deserialize(d)?.unwrap_or_default()))
    }
}

/// A list whose `null` elements are zero values.
fn lax_list<'de, T, A>(map: &mut A) -> Result<Vec<T>, A::Error>
where
    T: Deserialize<'de> + Default,
    A: MapAccess<'de>,
{
    let list: Lax<Vec<Lax<T>>> = map.next_value()?;
    Ok(list.0.into_iter().map(|e| e.0).collect())
}

/// Go's `encoding/json` folded form of a key (`foldName`: ASCII letters upper-cased, any
/// other rune `ToUpper(ToLower(r))`). Only the runes that fold onto ASCII letters matter
/// here, the field names being ASCII: U+017F and U+0131 (upper-casing to `S` and `I`),
/// U+212A and U+0130 (lower-casing to `k` and `i`).
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            '\u{017F}' => 'S',
            '\u{0131}' | '\u{0130}' => 'I',
            '\u{212A}' => 'K',
            _ => c,
        })
        .collect()
}

/// The field of `fields` a key names: the exact name, else the one it folds to.
fn field<F: Copy>(key: &str, fields: &[(&str, F)]) -> Option<F> {
    if let Some((_, f)) = fields.iter().find(|(name, _)| *name == key) {
        return Some(*f);
    }
    let folded = fold(key);
    fields
        .iter()
        .find(|(name, _)| fold(name) == folded)
        .map(|(_, f)| *f)
}

/// Marks `name` seen, or fails when an earlier key already set it.
fn first<E: de::Error>(seen: &mut Vec<&'static str>, name: &'static str) -> Result<(), E> {
    if seen.contains(&name) {
        return Err(E::custom(format_args!(
            "the key {name:?} is given more than once (keys are matched without regard to case)"
        )));
    }
    seen.push(name);
    Ok(())
}

// === impl RawDocument ===

impl<'de> Deserialize<'de> for RawDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor::<RawDocument>::new("a trust policy document"))
    }
}

// === impl RawStatement ===

impl<'de> Deserialize<'de> for RawStatement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor::<RawStatement>::new(
            "a trust policy statement",
        ))
    }
}

// === impl RawVerification ===

impl<'de> Deserialize<'de> for RawVerification {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor::<RawVerification>::new(
            "signatureVerification",
        ))
    }
}

/// An object whose keys are read one by one into the fields they name.
trait Object: Default {
    /// Reads the value of `key` from `map` into its field, or skips it.
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        seen: &mut Vec<&'static str>,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

struct ObjectVisitor<T> {
    expecting: &'static str,
    _marker: std::marker::PhantomData<T>,
}

impl<T> ObjectVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        ObjectVisitor {
            expecting,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Object> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (a JSON object)", self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut value = T::default();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            value.read_field(&key, &mut seen, &mut map)?;
        }
        Ok(value)
    }
}

#[derive(Clone, Copy)]
enum DocField {
    Version,
    TrustPolicies,
}

impl Object for RawDocument {
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        seen: &mut Vec<&'static str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        const FIELDS: &[(&str, DocField)] = &[
            ("version", DocField::Version),
            ("trustPolicies", DocField::TrustPolicies),
        ];
        match field(key, FIELDS) {
            Some(DocField::Version) => {
                first(seen, "version")?;
                self.version = map.next_value::<Lax<String>>()?.0;
            }
            Some(DocField::TrustPolicies) => {
                first(seen, "trustPolicies")?;
                self.trust_policies = lax_list(map)?;
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum StatementField {
    Name,
    SignatureVerification,
    TrustStores,
    TrustedIdentities,
    RegistryScopes,
}

impl Object for RawStatement {
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        seen: &mut Vec<&'static str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        const FIELDS: &[(&str, StatementField)] = &[
            ("name", StatementField::Name),
            (
                "signatureVerification",
                StatementField::SignatureVerification,
            ),
            ("trustStores", StatementField::TrustStores),
            ("trustedIdentities", StatementField::TrustedIdentities),
            ("registryScopes", StatementField::RegistryScopes),
        ];
        match field(key, FIELDS) {
            Some(StatementField::Name) => {
                first(seen, "name")?;
                self.name = map.next_value::<Lax<String>>()?.0;
            }
            Some(StatementField::SignatureVerification) => {
                first(seen, "signatureVerification")?;
                self.signature_verification = map.next_value::<Lax<RawVerification>>()?.0;
            }
            Some(StatementField::TrustStores) => {
                first(seen, "trustStores")?;
                self.trust_stores = lax_list(map)?;
            }
            Some(StatementField::TrustedIdentities) => {
                first(seen, "trustedIdentities")?;
                self.trusted_identities = lax_list(map)?;
            }
            Some(StatementField::RegistryScopes) => {
                first(seen, "registryScopes")?;
                self.registry_scopes = lax_list(map)?;
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum VerificationField {
    Level,
    Override,
    VerifyTimestamp,
}

impl Object for RawVerification {
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        seen: &mut Vec<&'static str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        const FIELDS: &[(&str, VerificationField)] = &[
            ("level", VerificationField::Level),
            ("override", VerificationField::Override),
            ("verifyTimestamp", VerificationField::VerifyTimestamp),
        ];
        match field(key, FIELDS) {
            Some(VerificationField::Level) => {
                first(seen, "level")?;
                self.level = map.next_value::<Lax<String>>()?.0;
            }
            Some(VerificationField::Override) => {
                first(seen, "override")?;
                let overrides: Lax<BTreeMap<String, Lax<String>>> = map.next_value()?;
                self.overrides = overrides.0.into_iter().map(|(k, v)| (k, v.0)).collect();
            }
            Some(VerificationField::VerifyTimestamp) => {
                first(seen, "verifyTimestamp")?;
                self.verify_timestamp = map.next_value::<Lax<String>>()?.0;
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}
