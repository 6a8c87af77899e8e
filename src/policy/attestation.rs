//! A cosign rule's attestation requirements (`attestations:`, `signatures:`): which in-toto
//! predicates the image must carry, signed by the rule's signers, and what their fields must
//! say.
//!
//! Parsed here and checked once (paths split and bounded, every regex compiled, each
//! condition with exactly one test), so evaluation (`trust::attestation`) only walks JSON.

use std::{fmt, str::FromStr};

use serde::Deserialize;

use super::de::deserialize_from_str;

/// Attestation requirements one rule may list.
pub const MAX_ATTESTATIONS: usize = 16;
/// Conditions one attestation requirement may list.
pub const MAX_CONDITIONS: usize = 16;
/// Segments one field path may have.
pub const MAX_PATH_SEGMENTS: usize = 32;
/// The predicate type of a cosign image signature, which is no attestation.
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Whether a cosign rule requires signatures: `required` (the default) or `none`, when the
/// listed attestations alone suffice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signatures {
    /// `threshold` distinct signers must have signed the digest.
    #[default]
    Required,
    /// No signature is needed; the rule's `attestations` decide.
    None,
}

/// One entry of `attestations`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationConfig {
    /// The in-toto statement's `predicateType`, exactly (a URI).
    pub predicate_type: String,
    /// Conditions on the predicate's fields, all of which must hold; default none.
    #[serde(default)]
    pub conditions: Vec<ConditionConfig>,
}

/// One entry of `conditions`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// Dot-separated keys into the predicate; numeric segments index arrays.
    pub path: FieldPath,
    /// The field's text form, exactly (a YAML string, integer or boolean).
    #[serde(default, deserialize_with = "scalar_text")]
    pub equals: Option<String>,
    /// A regex the field's text form must match (unanchored, as cosign's `--*-regexp` flags).
    pub regex: Option<String>,
}

/// An attestation requirement, checked: a bundle for the image digest signed by one of the
/// rule's signers whose statement has this predicate type and meets every condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRequirement {
    pub predicate_type: String,
    pub conditions: Vec<Condition>,
}

/// A condition on one predicate field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub path: FieldPath,
    pub test: FieldTest,
}

/// What a field's text form must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldTest {
    Equals(String),
    Regex(FieldRegex),
}

/// A compiled regex, compared by its source.
#[derive(Debug, Clone)]
pub struct FieldRegex(regex::Regex);

/// A field path: non-empty segments, at most [`MAX_PATH_SEGMENTS`], written joined by dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

/// One segment of a [`FieldPath`]: an object key, and, when it is a decimal number, also an
/// array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub key: String,
    pub index: Option<usize>,
}

/// Why `attestations:` (or `signatures:`) is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    #[error("`signatures: none` needs `attestations`: list at least one, or drop `signatures`")]
    NothingRequired,
    #[error(
        "`threshold` counts signatures, and `signatures: none` requires none; an attestation \
         counts with one trusted signer. Remove `threshold`"
    )]
    ThresholdWithoutSignatures,
    #[error("`attestations` lists {0} entries; at most {MAX_ATTESTATIONS} are allowed")]
    TooMany(usize),
    #[error(
        "attestation {index}: predicate_type {value:?} is not a URI; give the statement's \
         predicateType (cosign `--type slsaprovenance1` writes https://slsa.dev/provenance/v1)"
    )]
    NotAUri { index: usize, value: String },
    #[error(
        "attestation {index}: {SIGN_PREDICATE} is the predicate type of a cosign signature, \
         not an attestation; require signatures with `signatures: required`"
    )]
    SignaturePredicate { index: usize },
    #[error(
        "attestation {index} ({predicate_type}) lists {count} conditions; at most \
         {MAX_CONDITIONS} are allowed"
    )]
    TooManyConditions {
        index: usize,
        predicate_type: String,
        count: usize,
    },
    #[error(
        "attestation {index} ({predicate_type}), condition {condition} (`{path}`): give exactly \
         one of `equals` and `regex`"
    )]
    OneTest {
        index: usize,
        predicate_type: String,
        condition: usize,
        path: String,
    },
    #[error(
        "attestation {index} ({predicate_type}), condition {condition} (`{path}`): regex \
         {pattern:?} is not valid: {detail}"
    )]
    BadRegex {
        index: usize,
        predicate_type: String,
        condition: usize,
        path: String,
        pattern: String,
        detail: String,
    },
}

/// Why a field path is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("a field path is empty; write dot-separated keys, e.g. `runDetails.builder.id`")]
    Empty,
    #[error("field path `{0}` has an empty segment (two dots, or a dot at an end)")]
    EmptySegment(String),
    #[error("field path `{0}` has more than {MAX_PATH_SEGMENTS} segments")]
    TooLong(String),
}

// === impl Signatures ===

impl Signatures {
    /// Whether signatures count towards the decision.
    pub fn required(self) -> bool {
        self == Self::Required
    }
}

// === impl AttestationConfig ===

impl AttestationConfig {
    /// Checks a rule's `attestations` and `signatures` together: at most
    /// [`MAX_ATTESTATIONS`], each a predicate type URI other than cosign's signature type,
    /// at most [`MAX_CONDITIONS`] conditions each with one test, every regex compiling;
    /// `signatures: none` only with attestations and without a `threshold`.
    pub fn build_all(
        attestations: &[AttestationConfig],
        signatures: Signatures,
        threshold_given: bool,
    ) -> Result<Vec<AttestationRequirement>, AttestationError> {
        if signatures == Signatures::None {
            if attestations.is_empty() {
                return Err(AttestationError::NothingRequired);
            }
            if threshold_given {
                return Err(AttestationError::ThresholdWithoutSignatures);
            }
        }
        if attestations.len() > MAX_ATTESTATIONS {
            return Err(AttestationError::TooMany(attestations.len()));
        }
        attestations
            .iter()
            .enumerate()
            .map(|(index, a)| a.build(index))
            .collect()
    }

    fn build(&self, index: usize) -> Result<AttestationRequirement, AttestationError> {
        let predicate_type = self.predicate_type.trim().to_owned();
        if !predicate_type.contains(':') || predicate_type.contains(char::is_whitespace) {
            return Err(AttestationError::NotAUri {
                index,
                value: self.predicate_type.clone(),
            });
        }
        if predicate_type == SIGN_PREDICATE {
            return Err(AttestationError::SignaturePredicate { index });
        }
        if self.conditions.len() > MAX_CONDITIONS {
            return Err(AttestationError::TooManyConditions {
                index,
                predicate_type,
                count: self.conditions.len(),
            });
        }
        let conditions = self
            .conditions
            .iter()
            .enumerate()
            .map(|(condition, c)| {
                let test = match (&c.equals, &c.regex) {
                    (Some(value), None) => FieldTest::Equals(value.clone()),
                    (None, Some(pattern)) => match regex::Regex::new(pattern) {
                        Ok(re) => FieldTest::Regex(FieldRegex(re)),
                        Err(e) => {
                            return Err(AttestationError::BadRegex {
                                index,
                                predicate_type: predicate_type.clone(),
                                condition,
                                path: c.path.to_string(),
                                pattern: pattern.clone(),
                                // The regex crate draws the pattern over lines; keep the last.
                                detail: e
                                    .to_string()
                                    .lines()
                                    .last()
                                    .unwrap_or_default()
                                    .trim_start_matches("error: ")
                                    .to_owned(),
                            });
                        }
                    },
                    _ => {
                        return Err(AttestationError::OneTest {
                            index,
                            predicate_type: predicate_type.clone(),
                            condition,
                            path: c.path.to_string(),
                        })
                    }
                };
                Ok(Condition {
                    path: c.path.clone(),
                    test,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AttestationRequirement {
            predicate_type,
            conditions,
        })
    }
}

/// A YAML scalar as text: a string as written, an integer or a boolean in its JSON form
/// (`7`, `true`), so `equals: 7` compares with the predicate's `7`. Other numbers are
/// refused: their text form is not fixed (`1.0` or `1`), so they must be quoted.
fn scalar_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, an integer or a boolean")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(E::custom(format!(
                "`equals: {v}`: quote a non-integer number as the predicate writes it"
            )))
        }
    }
    d.deserialize_any(V)
}

// === impl FieldRegex ===

impl FieldRegex {
    /// Whether `text` matches, anywhere (unanchored).
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for FieldRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for FieldRegex {}

// === impl FieldTest ===

impl fmt::Display for FieldTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldTest::Equals(v) => write!(f, "equals {v:?}"),
            FieldTest::Regex(r) => write!(f, "matches /{}/", r.as_str()),
        }
    }
}

// === impl FieldPath ===

impl FieldPath {
    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for FieldPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() > MAX_PATH_SEGMENTS {
            return Err(PathError::TooLong(s.to_owned()));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PathError::EmptySegment(s.to_owned()));
        }
        let segments = parts
            .into_iter()
            .map(|p| Segment {
                key: p.to_owned(),
                // Decimal digits only: `+1` or `01` are keys, not indices.
                index: (p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0')))
                    .then(|| p.parse().ok())
                    .flatten(),
            })
            .collect();
        Ok(FieldPath {
            text: s.to_owned(),
            segments,
        })
    }
}

deserialize_from_str!(FieldPath, "a dot-separated field path");

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // JSON, not YAML: YAML parsing stays in the config module.
    fn configs(json: &str) -> Vec<AttestationConfig> {
        serde_json::from_str(json).unwrap()
    }

    fn build(json: &str) -> Result<Vec<AttestationRequirement>, AttestationError> {
        AttestationConfig::build_all(&configs(json), Signatures::Required, false)
    }

    #[test]
    fn paths_split_on_dots_and_numeric_segments_index_arrays() {
        let path: FieldPath = "materials.0.uri".parse().unwrap();
        let indices: Vec<_> = path.segments().iter().map(|s| s.index).collect();
        assert_eq!(indices, vec![None, Some(0), None]);
        assert_eq!(path.segments()[0].key, "materials");
        let odd: FieldPath = "a.01.+1.10".parse().unwrap();
        let indices: Vec<_> = odd.segments().iter().map(|s| s.index).collect();
        assert_eq!(indices, vec![None, None, None, Some(10)]);
        assert_eq!("".parse::<FieldPath>(), Err(PathError::Empty));
        for bad in ["a..b", ".a", "a."] {
            assert_eq!(
                bad.parse::<FieldPath>(),
                Err(PathError::EmptySegment(bad.into()))
            );
        }
        let long = vec!["a"; MAX_PATH_SEGMENTS + 1].join(".");
        assert_eq!(long.parse::<FieldPath>(), Err(PathError::TooLong(long)));
    }

    #[test]
    fn a_requirement_takes_conditions_with_one_test_each() {
        let built = build(
            r#"[{"predicate_type": "https://slsa.dev/provenance/v1", "conditions": [
                {"path": "runDetails.builder.id", "regex": "^https://github.com/"},
                {"path": "buildDefinition.buildType", "equals": "https://x/y"},
                {"path": "n", "equals": 7}, {"path": "b", "equals": true}]}]"#,
        )
        .unwrap();
        let tests: Vec<String> = built[0]
            .conditions
            .iter()
            .map(|c| c.test.to_string())
            .collect();
        assert_eq!(
            tests,
            [
                "matches /^https://github.com//",
                "equals \"https://x/y\"",
                "equals \"7\"",
                "equals \"true\""
            ]
        );
        for condition in [
            r#"{"path": "a"}"#,
            r#"{"path": "a", "equals": "x", "regex": "x"}"#,
        ] {
            let json =
                format!(r#"[{{"predicate_type": "https://p/v1", "conditions": [{condition}]}}]"#);
            assert!(
                matches!(
                    build(&json),
                    Err(AttestationError::OneTest { condition: 0, .. })
                ),
                "{condition}"
            );
        }
        assert!(serde_json::from_str::<Vec<AttestationConfig>>(
            r#"[{"predicate_type": "https://p/v1", "conditions": [{"path": "a", "equals": 1.5}]}]"#
        )
        .is_err());
        assert!(serde_json::from_str::<Vec<AttestationConfig>>(
            r#"[{"predicate_type": "https://p/v1", "conditions": [{"path": "", "equals": "a"}]}]"#
        )
        .is_err());
    }

    #[test]
    fn bad_regexes_types_and_counts_are_refused() {
        assert!(matches!(
            build(
                r#"[{"predicate_type": "https://p/v1", "conditions": [{"path": "a", "regex": "(x"}]}]"#
            ),
            Err(AttestationError::BadRegex { condition: 0, .. })
        ));
        assert!(matches!(
            build(r#"[{"predicate_type": "slsaprovenance1"}]"#),
            Err(AttestationError::NotAUri { index: 0, .. })
        ));
        assert_eq!(
            build(&format!(r#"[{{"predicate_type": "{SIGN_PREDICATE}"}}]"#)),
            Err(AttestationError::SignaturePredicate { index: 0 })
        );
        let many = vec![r#"{"predicate_type": "https://p/v1"}"#; MAX_ATTESTATIONS + 1].join(",");
        assert_eq!(
            build(&format!("[{many}]")),
            Err(AttestationError::TooMany(MAX_ATTESTATIONS + 1))
        );
        let conditions = vec![r#"{"path": "a", "equals": "b"}"#; MAX_CONDITIONS + 1].join(",");
        assert!(matches!(
            build(&format!(
                r#"[{{"predicate_type": "https://p/v1", "conditions": [{conditions}]}}]"#
            )),
            Err(AttestationError::TooManyConditions { count: 17, .. })
        ));
        assert!(serde_json::from_str::<Vec<AttestationConfig>>(
            r#"[{"predicate_type": "https://p/v1", "condition": []}]"#
        )
        .is_err());
    }

    #[test]
    fn signatures_none_needs_attestations_and_no_threshold() {
        assert_eq!(
            AttestationConfig::build_all(&[], Signatures::None, false),
            Err(AttestationError::NothingRequired)
        );
        let one = configs(r#"[{"predicate_type": "https://p/v1"}]"#);
        assert_eq!(
            AttestationConfig::build_all(&one, Signatures::None, true),
            Err(AttestationError::ThresholdWithoutSignatures)
        );
        assert!(AttestationConfig::build_all(&one, Signatures::None, false).is_ok());
        assert_eq!(
            AttestationConfig::build_all(&[], Signatures::Required, true),
            Ok(vec![])
        );
    }
}
