//! JSON as the JWS envelope and the payload are read: every object's keys unique (Go's
//! `encoding/json` keeps the last of two equal keys; two readers could then see different
//! values, so a duplicate is an error here), and object members matched to the names we
//! know the way each part needs (see [`Match`]).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their members in document order, keys unique.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX`.
    BigUint(u64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// How object members are matched to known names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Match {
    /// Exactly; a key that equals a known name only when case is folded is an error. For
    /// signed parts (protected header, payload): Go's decoder would take such a key for the
    /// known member, we must not read the member differently, so neither reading is taken.
    Exact,
    /// Case-insensitively, as Go's `encoding/json` matches struct fields; two keys for one
    /// member are an error. For the unsigned parts, whose spelling no signature fixes
    /// (notation-go's own mock envelopes spell `io.cncf.notary.SigningAgent`).
    Folded,
}

/// The members of an object split into the known ones (by index of the name) and the rest.
#[derive(Debug)]
pub(super) struct Members<'a> {
    known: Vec<Option<&'a Json>>,
    pub rest: Vec<(&'a str, &'a Json)>,
}

// === impl Json ===

impl Json {
    /// Parses `bytes` as one JSON value (serde_json's nesting limit applies).
    pub fn parse(bytes: &[u8]) -> Result<Json, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The JSON type's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) | Json::BigUint(_) | Json::Float(_) => "a number",
            Json::Str(_) => "a string",
            Json::Arr(_) => "an array",
            Json::Obj(_) => "an object",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Splits the members of an object into `known` names and the rest.
    pub fn members<'a>(&'a self, known: &[&str], how: Match) -> Result<Members<'a>, String> {
        let Json::Obj(entries) = self else {
            return Err(format!("expected an object, found {}", self.kind()));
        };
        let mut out = Members {
            known: vec![None; known.len()],
            rest: Vec::new(),
        };
        for (key, value) in entries {
            let exact = known.iter().position(|k| k == key);
            let folded = known.iter().position(|k| folds_to(key, k));
            match (exact, folded, how) {
                (Some(i), _, _) | (None, Some(i), Match::Folded) => {
                    let slot = out.known.get_mut(i).ok_or("member index out of range")?;
                    if slot.is_some() {
                        return Err(format!("member {:?} appears twice", known[i]));
                    }
                    *slot = Some(value);
                }
                (None, Some(i), Match::Exact) => {
                    return Err(format!(
                        "member {key:?} differs from {:?} only in case",
                        known[i]
                    ));
                }
                (None, None, _) => out.rest.push((key, value)),
            }
        }
        Ok(out)
    }
}

/// Whether `key` equals the ASCII name `known` under Unicode case folding, as Go's
/// `bytes.EqualFold` compares (`ſ` folds to `s`, the Kelvin sign to `k`).
fn folds_to(key: &str, known: &str) -> bool {
    let mut folded = key.chars().flat_map(|c| {
        let c = if c == '\u{17F}' { 's' } else { c };
        c.to_lowercase()
    });
    let mut want = known.chars().map(|c| c.to_ascii_lowercase());
    loop {
        match (folded.next(), want.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

// === impl Members ===

impl<'a> Members<'a> {
    /// The member of the `i`th known name, if present.
    pub fn get(&self, i: usize) -> Option<&'a Json> {
        self.known.get(i).copied().flatten()
    }
}

// === impl Deserialize for Json ===

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(i64::try_from(v).map_or(Json::BigUint(v), Json::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut seen = BTreeSet::new();
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Json::Obj(entries))
    }
}
