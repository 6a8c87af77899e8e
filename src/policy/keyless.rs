//! A rule's cosign keyless requirements (`keyless:`): which Fulcio roots and Rekor keys are
//! trusted, and which signer identities count.
//!
//! Parsed here and checked once (every identity names an issuer and a subject, every regex
//! compiles), so the runtime only reads files and compiles what is known to be valid.

use std::{fmt, path::PathBuf};

use serde::Deserialize;

/// `keyless:` as written in a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessConfig {
    /// PEM file of trusted Fulcio certificates: self-signed ones are roots, the others
    /// intermediates a leaf may chain through.
    pub fulcio_roots: PathBuf,
    /// PEM public keys (ECDSA P-256) of the Rekor logs whose signed entry timestamps count.
    pub rekor_keys: Vec<PathBuf>,
    /// Signer identities; a signature counts when its certificate matches one.
    pub identities: Vec<IdentityConfig>,
}

/// One entry of `identities`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The OIDC issuer, exactly.
    pub issuer: Option<String>,
    /// The OIDC issuer, as a regex (unanchored, as cosign's `--certificate-oidc-issuer-regexp`).
    pub issuer_regex: Option<String>,
    /// A subject alternative name (email or URI), exactly.
    pub subject: Option<String>,
    /// A subject alternative name, as a regex (unanchored, as cosign's
    /// `--certificate-identity-regexp`).
    pub subject_regex: Option<String>,
}

/// What a rule's keyless verification requires, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessRequirements {
    pub fulcio_roots: PathBuf,
    pub rekor_keys: Vec<PathBuf>,
    pub identities: Vec<Identity>,
}

/// A signer identity: both the issuer and a SAN of the certificate must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: Matcher,
    pub subject: Matcher,
}

/// An exact string or a regex (kept as its source; it is known to compile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Exact(String),
    Regex(String),
}

/// Why a `keyless:` block is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeylessError {
    #[error("`keyless` lists no rekor_keys; add the Rekor log's PEM public key")]
    NoRekorKeys,
    #[error("`keyless` lists no identities; add `identities: [{{issuer: ..., subject: ...}}]`")]
    NoIdentities,
    #[error("keyless identity {index}: give exactly one of `{field}` and `{field}_regex`")]
    OneOf { index: usize, field: &'static str },
    #[error(
        "keyless identity {index}: `{field}_regex` {pattern:?} is not a valid regex: {detail}"
    )]
    BadRegex {
        index: usize,
        field: &'static str,
        pattern: String,
        detail: String,
    },
}

// === impl KeylessConfig ===

impl KeylessConfig {
    /// Checks the block: Rekor keys and identities present, each identity with one issuer and
    /// one subject matcher, every regex compiling.
    pub fn build(&self) -> Result<KeylessRequirements, KeylessError> {
        if self.rekor_keys.is_empty() {
            return Err(KeylessError::NoRekorKeys);
        }
        if self.identities.is_empty() {
            return Err(KeylessError::NoIdentities);
        }
        let mut rekor_keys: Vec<PathBuf> = Vec::new();
        for key in &self.rekor_keys {
            if !rekor_keys.contains(key) {
                rekor_keys.push(key.clone());
            }
        }
        let identities = self
            .identities
            .iter()
            .enumerate()
            .map(|(index, id)| {
                Ok(Identity {
                    issuer: matcher(index, "issuer", &id.issuer, &id.issuer_regex)?,
                    subject: matcher(index, "subject", &id.subject, &id.subject_regex)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeylessRequirements {
            fulcio_roots: self.fulcio_roots.clone(),
            rekor_keys,
            identities,
        })
    }
}

fn matcher(
    index: usize,
    field: &'static str,
    exact: &Option<String>,
    regex: &Option<String>,
) -> Result<Matcher, KeylessError> {
    match (exact, regex) {
        (Some(exact), None) => Ok(Matcher::Exact(exact.clone())),
        (None, Some(pattern)) => match regex::Regex::new(pattern) {
            Ok(_) => Ok(Matcher::Regex(pattern.clone())),
            Err(e) => Err(KeylessError::BadRegex {
                index,
                field,
                pattern: pattern.clone(),
                // The regex crate's message draws the pattern over lines; keep its last one.
                detail: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_owned(),
            }),
        },
        _ => Err(KeylessError::OneOf { index, field }),
    }
}

// === impl Matcher ===

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Regex(r) => write!(f, "/{r}/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // JSON, not YAML: YAML parsing stays in the config module.
    fn config(identities: &str) -> KeylessConfig {
        serde_json::from_str(&format!(
            r#"{{"fulcio_roots": "roots.pem", "rekor_keys": ["rekor.pub", "rekor.pub"], "identities": {identities}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn identities_take_exact_or_regex_issuers_and_subjects() {
        let built = config(
            r#"[{"issuer": "https://issuer", "subject_regex": "^https://github.com/acme/"},
                {"issuer_regex": ".*", "subject": "dev@example.com"}]"#,
        )
        .build()
        .unwrap();
        assert_eq!(built.rekor_keys, vec![PathBuf::from("rekor.pub")]);
        assert_eq!(
            built.identities,
            vec![
                Identity {
                    issuer: Matcher::Exact("https://issuer".into()),
                    subject: Matcher::Regex("^https://github.com/acme/".into()),
                },
                Identity {
                    issuer: Matcher::Regex(".*".into()),
                    subject: Matcher::Exact("dev@example.com".into()),
                },
            ]
        );
    }

    #[test]
    fn an_identity_needs_one_issuer_and_one_subject_matcher() {
        for (identities, field) in [
            (r#"[{"subject": "a"}]"#, "issuer"),
            (r#"[{"issuer": "a"}]"#, "subject"),
            (
                r#"[{"issuer": "a", "issuer_regex": "b", "subject": "c"}]"#,
                "issuer",
            ),
        ] {
            assert_eq!(
                config(identities).build(),
                Err(KeylessError::OneOf { index: 0, field }),
                "{identities}"
            );
        }
        assert_eq!(config("[]").build(), Err(KeylessError::NoIdentities));
    }

    #[test]
    fn a_regex_that_does_not_compile_is_refused() {
        assert!(matches!(
            config(r#"[{"issuer": "a", "subject_regex": "(unclosed"}]"#).build(),
            Err(KeylessError::BadRegex {
                field: "subject",
                ..
            })
        ));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(serde_json::from_str::<KeylessConfig>(
            r#"{"fulcio_roots": "r", "rekor_keys": ["k"], "identities": [], "ctlog_keys": ["c"]}"#
        )
        .is_err());
    }
}
