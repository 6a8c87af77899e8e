//! Canonical JSON as Notary v1 signs it.
//!
//! notary's `tuf/signed/verify.go` decodes `signed` into a generic map and re-encodes it with
//! docker/go `canonical/json` (`MarshalCanonical`): keys sorted bytewise, no whitespace, strings
//! escape only `"` and `\`, and every number goes through float64 and is printed as an integer
//! (a non-integral number is an error). Strings are written as they are: docker/go does not
//! normalise Unicode, so neither may we. (The `olpc_cjson` crate applies NFC to every string,
//! which made two different documents, `"\u{fb2a}"` and `"\u{5e9}\u{5c1}"`, encode to the
//! same signed bytes, and made notary-signed non-NFC text fail to verify; hence the encoder
//! below.)

use serde_json::{Number, Value};

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// docker/go refuses non-integral numbers in canonical mode.
    #[error("number {0} is not an integer and has no canonical JSON form")]
    NonIntegral(Number),
}

/// Encodes `value` the way docker/go `MarshalCanonical` does after a Go `interface{}` decode.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(1024);
    write_value(value, &mut out)?;
    Ok(out)
}

/// One value. Recursion depth is bounded by the parser (serde_json refuses nesting deeper than
/// 128 levels), so this cannot overflow the stack on hostile input.
fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Go's `sort.Strings`: bytewise on the raw keys, before any escaping.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Go decodes every JSON number into float64 and docker/go prints an integral float64 as an
/// integer, so `1.0` and `1e3` become `1` and `1000`; integers are printed as they are.
fn write_number(n: &Number, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        // i64::MAX as f64 rounds up to 2^63, so the upper bound is exclusive.
        if f.fract() != 0.0 || !f.is_finite() || f < i64::MIN as f64 || f >= i64::MAX as f64 {
            return Err(CanonicalError::NonIntegral(n.clone()));
        }
        out.extend_from_slice((f as i64).to_string().as_bytes());
    }
    Ok(())
}

/// A string as docker/go writes it in canonical mode: quoted, `"` and `\` escaped, every
/// other byte (control characters included) as it is.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        if matches!(b, b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
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

    /// Regression (found by the `canonical_is_stable_and_parses_back` property): strings are
    /// not Unicode-normalised, so two different documents never share signed bytes.
    #[test]
    fn strings_are_not_normalised() {
        for s in [
            "\u{fb2a}",
            "\u{5e9}\u{5c1}",
            "e\u{301}",
            "\u{e9}",
            "\u{212b}",
        ] {
            let out = to_canonical(&serde_json::json!({ s: s })).unwrap();
            let want = format!("{{\"{s}\":\"{s}\"}}");
            assert_eq!(out, want.as_bytes(), "{s:?}");
        }
        let a = to_canonical(&serde_json::json!(["\u{fb2a}"])).unwrap();
        let b = to_canonical(&serde_json::json!(["\u{5e9}\u{5c1}"])).unwrap();
        assert_ne!(a, b);
    }

    /// Keys sort by their raw bytes, as Go's `sort.Strings` does, not by their escaped form
    /// (`\` is 0x5c, which would put `a#` before `a"`).
    #[test]
    fn keys_sort_before_escaping() {
        assert_eq!(
            canon(r#"{"a#":1,"a\"":2,"a\\":3}"#),
            r#"{"a\"":2,"a#":1,"a\\":3}"#
        );
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
