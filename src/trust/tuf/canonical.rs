//! Canonical JSON as TUF signs it: OLPC canonical JSON as securesystemslib
//! (`formats.encode_canonical`) produces it.
//!
//! securesystemslib sorts object keys by code point (the same order as bytewise UTF-8),
//! writes no whitespace, escapes only `"` and `\` in strings and leaves every other character
//! as it is, and writes integers in decimal. The notary encoder (`notary::canonical`) does
//! exactly that, with one difference: it accepts integral floats (`1.0`, `1e3`) and prints them
//! as integers, where securesystemslib refuses any non-integer number. Accepting them would let
//! a mirror rewrite `"version": 1` as `1.0` under the same signature, so this wrapper refuses
//! every number that is not an integer and hands the rest to the notary encoder.

use serde_json::Value;

use crate::trust::notary::to_canonical;

/// Why a value has no TUF canonical form.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    #[error("number {0} is not an integer and has no canonical JSON form")]
    NotInteger(serde_json::Number),
    #[error(transparent)]
    Encode(#[from] crate::trust::notary::CanonicalError),
}

/// The bytes securesystemslib signs for `value`.
pub fn canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    only_integers(value)?;
    Ok(to_canonical(value)?)
}

/// Recursion is bounded by serde_json's nesting limit (128), so hostile input cannot overflow
/// the stack.
fn only_integers(value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            Err(CanonicalError::NotInteger(n.clone()))
        }
        Value::Array(items) => items.iter().try_for_each(only_integers),
        Value::Object(map) => map.values().try_for_each(only_integers),
        _ => Ok(()),
    }
}
