//! In-toto attestations as policy: does an authenticated statement's predicate meet a rule's
//! [`AttestationRequirement`]? Pure: no I/O, no signature checks (the caller counts only
//! statements whose envelope verified under the rule's signers and that name the image
//! digest as a subject).
//!
//! The statement layout is the in-toto Attestation Framework's (`in-toto/attestation:
//! spec/v1/statement.md`: `_type`, `subject`, `predicateType`, `predicate`); the checks
//! follow what `cosign verify-attestation --type <uri>` does before its policies (cosign
//! `pkg/cosign/verify.go`: the predicate type must be the one asked for), and then test
//! fields the way a CUE or Rego policy over `predicate` would, restricted to exact and regex
//! tests of one scalar each.
//!
//! A field path walks the predicate from its root: each segment is a key of an object, or,
//! when it is a decimal number and the value is an array, an index into it. The field must be
//! a string, number or boolean; its text form (the string itself, the number or `true` /
//! `false` as JSON writes them) is compared. A missing field, or one that is an object, an
//! array or `null`, fails the condition.

use std::fmt;

use serde_json::Value;

use crate::policy::{AttestationRequirement, Condition, FieldTest};

/// Largest in-toto statement evaluated, in bytes. A SLSA provenance with a few hundred
/// resolved dependencies fits; the bundle holding it is bounded too.
pub const MAX_STATEMENT: usize = 192 * 1024;
/// Characters of a found value quoted in a refusal.
const MAX_QUOTED: usize = 120;

/// An authenticated statement's predicate: its type and its body (`null` when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    pub predicate_type: String,
    pub predicate: Value,
}

/// Why a predicate does not meet a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmet {
    /// It is of another predicate type.
    OtherType(String),
    /// Condition `index` failed.
    Condition {
        index: usize,
        path: String,
        test: String,
        found: Found,
    },
}

/// What a failed condition found at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The path ends early: the segment (by position) that is not there.
    Missing { segment: usize, key: String },
    /// A value that is not a scalar: `object`, `array` or `null`.
    NotScalar(&'static str),
    /// A scalar whose text form failed the test.
    Value(String),
}

/// Per requirement of one rule, what the attestations offered so far add up to.
#[derive(Debug, Clone, Default)]
pub struct Checklist {
    outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Default)]
enum Outcome {
    /// No trusted attestation of the predicate type was offered.
    #[default]
    NoneSeen,
    /// One was, and it failed (the first such failure).
    Failed(Unmet),
    /// One met it.
    Met,
}

/// The first requirement a [`Checklist`] lacks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing<'r> {
    pub index: usize,
    pub requirement: &'r AttestationRequirement,
    /// `None`: no attestation of its predicate type by a trusted signer.
    pub failure: Option<Unmet>,
}

// === impl Predicate ===

impl Predicate {
    /// Whether the predicate meets `requirement`: same predicate type, every condition holds
    /// (in order; the first failing one is reported).
    pub fn check(&self, requirement: &AttestationRequirement) -> Result<(), Unmet> {
        if self.predicate_type != requirement.predicate_type {
            return Err(Unmet::OtherType(self.predicate_type.clone()));
        }
        for (index, condition) in requirement.conditions.iter().enumerate() {
            if let Err(found) = check_condition(&self.predicate, condition) {
                return Err(Unmet::Condition {
                    index,
                    path: condition.path.to_string(),
                    test: condition.test.to_string(),
                    found,
                });
            }
        }
        Ok(())
    }
}

/// One condition against the predicate body.
fn check_condition(predicate: &Value, condition: &Condition) -> Result<(), Found> {
    let field = lookup(predicate, condition)?;
    let text = match field {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => return Err(Found::NotScalar("null")),
        Value::Array(_) => return Err(Found::NotScalar("an array")),
        Value::Object(_) => return Err(Found::NotScalar("an object")),
    };
    let holds = match &condition.test {
        FieldTest::Equals(want) => text == *want,
        FieldTest::Regex(re) => re.is_match(&text),
    };
    if holds {
        Ok(())
    } else {
        Err(Found::Value(text))
    }
}

/// The value at the condition's path; segments are at most `MAX_PATH_SEGMENTS`, so the walk
/// is bounded whatever the predicate.
fn lookup<'v>(predicate: &'v Value, condition: &Condition) -> Result<&'v Value, Found> {
    let mut at = predicate;
    for (i, segment) in condition.path.segments().iter().enumerate() {
        let next = match (at, segment.index) {
            (Value::Object(map), _) => map.get(&segment.key),
            (Value::Array(items), Some(index)) => items.get(index),
            _ => None,
        };
        at = next.ok_or_else(|| Found::Missing {
            segment: i,
            key: segment.key.clone(),
        })?;
    }
    Ok(at)
}

// === impl Checklist ===

impl Checklist {
    /// A checklist for `requirements` requirements, none met.
    pub fn new(requirements: usize) -> Self {
        Checklist {
            outcomes: vec![Outcome::NoneSeen; requirements],
        }
    }

    /// Offers one authenticated attestation for the image digest; whether it met at least
    /// one requirement (then it counted, and is served with the image).
    pub fn offer(
        &mut self,
        requirements: &[AttestationRequirement],
        predicate: &Predicate,
    ) -> bool {
        let mut counted = false;
        for (outcome, requirement) in self.outcomes.iter_mut().zip(requirements) {
            match predicate.check(requirement) {
                Ok(()) => {
                    *outcome = Outcome::Met;
                    counted = true;
                }
                Err(Unmet::OtherType(_)) => {}
                Err(unmet) => {
                    if matches!(outcome, Outcome::NoneSeen) {
                        *outcome = Outcome::Failed(unmet);
                    }
                }
            }
        }
        counted
    }

    /// The first requirement no offered attestation met; `None` when all are met.
    pub fn missing<'r>(&self, requirements: &'r [AttestationRequirement]) -> Option<Missing<'r>> {
        self.outcomes.iter().zip(requirements).enumerate().find_map(
            |(index, (outcome, requirement))| match outcome {
                Outcome::Met => None,
                Outcome::NoneSeen => Some(Missing {
                    index,
                    requirement,
                    failure: None,
                }),
                Outcome::Failed(unmet) => Some(Missing {
                    index,
                    requirement,
                    failure: Some(unmet.clone()),
                }),
            },
        )
    }
}

// === impl Unmet ===

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmet::OtherType(t) => write!(f, "its predicate type is {}", quoted(t)),
            Unmet::Condition {
                index,
                path,
                test,
                found,
            } => write!(f, "condition {index} (`{path}` {test}) fails: {found}"),
        }
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Missing { segment, key } => {
                write!(f, "the predicate has no `{key}` (segment {segment})")
            }
            Found::NotScalar(kind) => {
                write!(f, "the field is {kind}, not a string, number or boolean")
            }
            Found::Value(text) => write!(f, "the predicate has {}", quoted(text)),
        }
    }
}

impl fmt::Display for Missing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let predicate_type = &self.requirement.predicate_type;
        match &self.failure {
            None => write!(
                f,
                "attestation {} requires a {predicate_type} attestation by a trusted signer, \
                 and there is none (legacy `.att` attestations are not read)",
                self.index
            ),
            Some(unmet) => write!(
                f,
                "attestation {} ({predicate_type}) is not met: {unmet}",
                self.index
            ),
        }
    }
}

/// Upstream text in a message: escaped (no control characters reach a log line) and cut
/// to [`MAX_QUOTED`] characters.
fn quoted(text: &str) -> String {
    let mut cut: String = text.chars().take(MAX_QUOTED).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AttestationConfig, Signatures};

    const SLSA1: &str = "https://slsa.dev/provenance/v1";

    fn requirement(conditions: &str) -> AttestationRequirement {
        let configs: Vec<AttestationConfig> = serde_json::from_str(&format!(
            r#"[{{"predicate_type": "{SLSA1}", "conditions": {conditions}}}]"#
        ))
        .unwrap();
        AttestationConfig::build_all(&configs, Signatures::Required, false)
            .unwrap()
            .remove(0)
    }

    fn provenance() -> Predicate {
        Predicate {
            predicate_type: SLSA1.to_owned(),
            predicate: serde_json::json!({
                "buildDefinition": {
                    "externalParameters": {"workflow": {"repository": "https://github.com/org/app"}},
                    "resolvedDependencies": [{"uri": "git+https://github.com/org/app"}, {"uri": "x"}]
                },
                "runDetails": {"builder": {"id": "https://github.com/actions/runner/v2"},
                               "metadata": {"attempt": 3, "reproducible": false, "note": null}}
            }),
        }
    }

    #[test]
    fn paths_walk_objects_and_index_arrays() {
        for conditions in [
            r#"[{"path": "buildDefinition.externalParameters.workflow.repository", "equals": "https://github.com/org/app"}]"#,
            r#"[{"path": "buildDefinition.resolvedDependencies.0.uri", "regex": "^git\\+https://"}]"#,
            r#"[{"path": "buildDefinition.resolvedDependencies.1.uri", "equals": "x"}]"#,
            r#"[{"path": "runDetails.builder.id", "regex": "actions/runner"}]"#,
            r#"[{"path": "runDetails.metadata.attempt", "equals": 3}]"#,
            r#"[{"path": "runDetails.metadata.reproducible", "equals": "false"}]"#,
            "[]",
        ] {
            assert_eq!(
                provenance().check(&requirement(conditions)),
                Ok(()),
                "{conditions}"
            );
        }
    }

    #[test]
    fn a_failing_condition_names_itself_and_what_was_found() {
        let req = requirement(
            r#"[{"path": "runDetails.builder.id", "regex": "^https://github.com/actions/runner/"},
                {"path": "buildDefinition.externalParameters.workflow.repository", "equals": "https://github.com/org/other"}]"#,
        );
        let err = provenance().check(&req).unwrap_err();
        assert_eq!(
            err,
            Unmet::Condition {
                index: 1,
                path: "buildDefinition.externalParameters.workflow.repository".into(),
                test: "equals \"https://github.com/org/other\"".into(),
                found: Found::Value("https://github.com/org/app".into()),
            }
        );
        assert_eq!(
            err.to_string(),
            "condition 1 (`buildDefinition.externalParameters.workflow.repository` equals \
             \"https://github.com/org/other\") fails: the predicate has \"https://github.com/org/app\""
        );
    }

    #[test]
    fn regexes_are_unanchored_and_equals_is_exact() {
        let ok = |c: &str| provenance().check(&requirement(c)).is_ok();
        assert!(ok(
            r#"[{"path": "runDetails.builder.id", "regex": "runner"}]"#
        ));
        assert!(!ok(
            r#"[{"path": "runDetails.builder.id", "regex": "^runner"}]"#
        ));
        assert!(!ok(
            r#"[{"path": "runDetails.builder.id", "equals": "https://github.com/actions/runner"}]"#
        ));
        assert!(!ok(
            r#"[{"path": "runDetails.metadata.attempt", "equals": "3.0"}]"#
        ));
    }

    #[test]
    fn missing_paths_and_non_scalars_fail() {
        let found = |c: &str| match provenance().check(&requirement(c)) {
            Err(Unmet::Condition { found, .. }) => found,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            found(r#"[{"path": "runDetails.builder.name", "equals": "a"}]"#),
            Found::Missing {
                segment: 2,
                key: "name".into()
            }
        );
        assert_eq!(
            found(r#"[{"path": "buildDefinition.resolvedDependencies.2.uri", "equals": "a"}]"#),
            Found::Missing {
                segment: 2,
                key: "2".into()
            }
        );
        // Descending into a scalar, or indexing an object by position, finds nothing.
        assert_eq!(
            found(r#"[{"path": "runDetails.builder.id.x", "equals": "a"}]"#),
            Found::Missing {
                segment: 3,
                key: "x".into()
            }
        );
        assert_eq!(
            found(r#"[{"path": "runDetails.0", "equals": "a"}]"#),
            Found::Missing {
                segment: 1,
                key: "0".into()
            }
        );
        assert_eq!(
            found(r#"[{"path": "runDetails.builder", "regex": ".*"}]"#),
            Found::NotScalar("an object")
        );
        assert_eq!(
            found(r#"[{"path": "buildDefinition.resolvedDependencies", "regex": ".*"}]"#),
            Found::NotScalar("an array")
        );
        assert_eq!(
            found(r#"[{"path": "runDetails.metadata.note", "regex": ".*"}]"#),
            Found::NotScalar("null")
        );
        let absent = Predicate {
            predicate_type: SLSA1.into(),
            predicate: Value::Null,
        };
        assert!(absent
            .check(&requirement(r#"[{"path": "a", "regex": ".*"}]"#))
            .is_err());
    }

    #[test]
    fn another_predicate_type_never_meets_a_requirement() {
        let mut other = provenance();
        other.predicate_type = "https://slsa.dev/provenance/v0.2".into();
        assert_eq!(
            other.check(&requirement("[]")),
            Err(Unmet::OtherType("https://slsa.dev/provenance/v0.2".into()))
        );
    }

    #[test]
    fn a_checklist_needs_every_requirement_met_by_some_attestation() {
        let reqs = vec![
            requirement(r#"[{"path": "runDetails.builder.id", "regex": "runner"}]"#),
            requirement(r#"[{"path": "runDetails.metadata.attempt", "equals": 4}]"#),
        ];
        let mut list = Checklist::new(reqs.len());
        let missing = list.missing(&reqs).unwrap();
        assert_eq!((missing.index, missing.failure.clone()), (0, None));
        assert!(missing.to_string().contains("there is none"), "{missing}");
        assert!(list.offer(&reqs, &provenance()), "meets the first");
        let missing = list.missing(&reqs).unwrap();
        assert_eq!(missing.index, 1);
        assert!(
            missing.to_string().contains("condition 0 (`runDetails.metadata.attempt` equals \"4\") fails: the predicate has \"3\""),
            "{missing}"
        );
        let mut fourth = provenance();
        fourth.predicate["runDetails"]["metadata"]["attempt"] = serde_json::json!(4);
        assert!(list.offer(&reqs, &fourth));
        assert_eq!(list.missing(&reqs), None);
        // One attestation of another type counts for nothing.
        let mut empty = Checklist::new(reqs.len());
        let mut sbom = provenance();
        sbom.predicate_type = "https://spdx.dev/Document".into();
        assert!(!empty.offer(&reqs, &sbom));
        assert_eq!(empty.missing(&reqs).unwrap().failure, None);
    }

    #[test]
    fn quoted_values_are_escaped_and_cut() {
        let long = "a\u{1b}[31m".to_owned() + &"x".repeat(500);
        let q = quoted(&long);
        assert!(q.starts_with("\"a\\u{1b}[31m"), "{q}");
        assert!(q.chars().count() < MAX_QUOTED + 20, "{q}");
    }
}
