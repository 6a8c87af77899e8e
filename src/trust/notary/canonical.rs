//! Canonical JSON as Notary v1 signs it.
//!
//! notary's `tuf/signed/verify.go` decodes `signed` into a generic map and re-encodes it with
//! docker/go `canonical/json` (`MarshalCanonical`): keys sorted bytewise, no whitespace, strings
//! escape only `"` and `\`, and every number goes through float64 and is printed as an integer
//! (a non-integral number is an error). That is OLPC canonical JSON, which `olpc_cjson`
//! implements for integers; the float64 normalisation happens here first.

use serde::Serialize;
use serde_json::{Number, Value};

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// docker/go refuses non-integral numbers in canonical mode.
    #[error("number {0} is not an integer and has no canonical JSON form")]
    NonIntegral(Number),
    /// The encoder itself failed (it only writes to memory, so this is unexpected).
    #[error("canonical JSON encoding failed: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Encodes `value` the way docker/go `MarshalCanonical` does after a Go `interface{}` decode.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let normalised = normalise_numbers(value)?;
    let mut out = Vec::with_capacity(1024);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    normalised.serialize(&mut ser)?;
    Ok(out)
}

/// Go decodes every JSON number into float64 and docker/go prints an integral float64 as an
/// integer, so `1.0` and `1e3` become `1` and `1000`. serde_json keeps them as floats, which
/// the OLPC formatter rejects; convert them here.
fn normalise_numbers(value: &Value) -> Result<Value, CanonicalError> {
    Ok(match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // i64::MAX as f64 rounds up to 2^63, so the upper bound is exclusive.
            if f.fract() != 0.0 || !f.is_finite() || f < i64::MIN as f64 || f >= i64::MAX as f64 {
                return Err(CanonicalError::NonIntegral(n.clone()));
            }
            Value::Number(Number::from(f as i64))
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(normalise_numbers)
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), normalise_numbers(v)?)))
                .collect::<Result<_, CanonicalError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(s: &str) -> String {
        String::from_utf8(to_canonical(&serde_json::from_str(s).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": [true, null, "x"] }"#),
            r#"{"a":[true,null,"x"],"b":1}"#
        );
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        // docker/go writes control characters, `<>&` and U+2028 raw in canonical mode.
        let input = serde_json::json!({"s": "a\"b\\c<>&\u{2028}\n\u{1}"});
        let out = to_canonical(&input).unwrap();
        assert_eq!(out, "{\"s\":\"a\\\"b\\\\c<>&\u{2028}\n\u{1}\"}".as_bytes());
    }

    #[test]
    fn integral_floats_print_as_integers() {
        assert_eq!(
            canon(r#"{"v": 1.0, "w": 1e3, "x": -2}"#),
            r#"{"v":1,"w":1000,"x":-2}"#
        );
    }

    #[test]
    fn non_integral_numbers_are_refused() {
        assert!(to_canonical(&serde_json::json!({"v": 1.5})).is_err());
    }

    #[test]
    fn bytewise_key_order() {
        // Uppercase sorts before lowercase, and "a" before "a/b" before "ab".
        assert_eq!(
            canon(r#"{"ab":1,"a/b":2,"B":3,"a":4}"#),
            r#"{"B":3,"a":4,"a/b":2,"ab":1}"#
        );
    }

    proptest! {
        #[test]
        fn canonical_is_stable_and_parses_back(s in "\\PC{0,40}", n in any::<i64>(), k in "[a-z/]{0,8}") {
            let v = serde_json::json!({k.clone(): [s.clone(), n], "z": {"k": k}});
            let once = to_canonical(&v).unwrap();
            let back: Value = serde_json::from_slice(&once).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(to_canonical(&back).unwrap(), once);
        }

        #[test]
        fn never_panics_on_arbitrary_json(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                let _ = to_canonical(&v);
            }
        }
    }
}
