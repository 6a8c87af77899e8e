//! A rule's cosign keyless requirements (`keyless:`): where its sigstore trust comes from (a
//! `trusted_root.json`, a TUF repository that distributes one, or PEM Fulcio roots and Rekor
//! keys), and which signer identities count.
//!
//! Parsed here and checked once (every identity names an issuer and a subject, every regex
//! compiles), so the runtime only reads files and compiles what is known to be valid.

use std::{fmt, path::PathBuf};

use serde::Deserialize;

/// `keyless:` as written in a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessConfig {
    /// A sigstore `trusted_root.json`: transparency logs, certificate authorities, CT logs
    /// and timestamp authorities, each with its validity window.
    pub trusted_root: Option<PathBuf>,
    /// The trusted root kept current through a sigstore TUF repository.
    pub tuf: Option<TufConfig>,
    /// PEM file of trusted Fulcio certificates: self-signed ones are roots, the others
    /// intermediates a leaf may chain through (with `rekor_keys`, instead of a trusted root).
    pub fulcio_roots: Option<PathBuf>,
    /// PEM public keys (ECDSA P-256) of the Rekor logs whose signed entry timestamps count.
    #[serde(default)]
    pub rekor_keys: Vec<PathBuf>,
    /// Signer identities; a signature counts when its certificate matches one. May be empty
    /// on a rule with `keys`: the trust material then only vouches for their log entries
    /// and timestamps.
    #[serde(default)]
    pub identities: Vec<IdentityConfig>,
}

/// `keyless.tuf`: a TUF repository distributing `trusted_root.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TufConfig {
    /// The repository's base URL, e.g. `https://tuf-repo-cdn.sigstore.dev`.
    pub url: String,
    /// The initial root metadata (`root.json`) the operator trusts, obtained out of band.
    pub root: PathBuf,
    /// Where verified metadata is kept between runs; default: beside `root`, in
    /// `<root file name>.cache/`.
    pub cache: Option<PathBuf>,
}

/// Where a keyless rule's trust comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    /// A `trusted_root.json` file.
    TrustedRoot(PathBuf),
    /// A TUF repository, from an initial root file, its verified metadata cached on disk.
    Tuf {
        url: String,
        root: PathBuf,
        cache: PathBuf,
    },
    /// PEM Fulcio certificates and Rekor keys (no validity windows, no CT logs, no TSAs).
    Pem {
        fulcio_roots: PathBuf,
        rekor_keys: Vec<PathBuf>,
    },
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
    pub source: TrustSource,
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
    #[error(
        "`keyless` names no trust: give one of `trusted_root: <trusted_root.json>`, \
         `tuf: {{url: ..., root: <root.json>}}`, or `fulcio_roots` with `rekor_keys`"
    )]
    NoSource,
    #[error("`keyless` gives {0}; give only one source of trust")]
    TwoSources(&'static str),
    #[error(
        "`keyless` lists no rekor_keys beside fulcio_roots; add the Rekor log's PEM public key"
    )]
    NoRekorKeys,
    #[error("`keyless` lists rekor_keys without fulcio_roots")]
    NoFulcioRoots,
    #[error("`keyless.tuf.url` {0:?} is not an http(s) URL")]
    BadTufUrl(String),
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
        let source = self.source()?;
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
        Ok(KeylessRequirements { source, identities })
    }

    /// Exactly one source of trust.
    fn source(&self) -> Result<TrustSource, KeylessError> {
        let pem = self.fulcio_roots.is_some() || !self.rekor_keys.is_empty();
        match (&self.trusted_root, &self.tuf, pem) {
            (Some(_), Some(_), _) => Err(KeylessError::TwoSources("`trusted_root` and `tuf`")),
            (Some(_), None, true) => Err(KeylessError::TwoSources(
                "`trusted_root` and `fulcio_roots`/`rekor_keys`",
            )),
            (None, Some(_), true) => Err(KeylessError::TwoSources(
                "`tuf` and `fulcio_roots`/`rekor_keys`",
            )),
            (Some(path), None, false) => Ok(TrustSource::TrustedRoot(path.clone())),
            (None, Some(tuf), false) => {
                let url = tuf.url.trim_end_matches('/');
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(KeylessError::BadTufUrl(tuf.url.clone()));
                }
                let cache = tuf.cache.clone().unwrap_or_else(|| {
                    let mut name = tuf.root.file_name().unwrap_or_default().to_os_string();
                    name.push(".cache");
                    tuf.root.with_file_name(name)
                });
                Ok(TrustSource::Tuf {
                    url: url.to_owned(),
                    root: tuf.root.clone(),
                    cache,
                })
            }
            (None, None, true) => {
                let fulcio_roots = self
                    .fulcio_roots
                    .clone()
                    .ok_or(KeylessError::NoFulcioRoots)?;
                if self.rekor_keys.is_empty() {
                    return Err(KeylessError::NoRekorKeys);
                }
                let mut rekor_keys: Vec<PathBuf> = Vec::new();
                for key in &self.rekor_keys {
                    if !rekor_keys.contains(key) {
                        rekor_keys.push(key.clone());
                    }
                }
                Ok(TrustSource::Pem {
                    fulcio_roots,
                    rekor_keys,
                })
            }
            (None, None, false) => Err(KeylessError::NoSource),
        }
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
        assert_eq!(
            built.source,
            TrustSource::Pem {
                fulcio_roots: "roots.pem".into(),
                rekor_keys: vec![PathBuf::from("rekor.pub")]
            }
        );
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
    }

    #[test]
    fn exactly_one_source_of_trust() {
        let parse = |json: &str| serde_json::from_str::<KeylessConfig>(json).unwrap().build();
        assert_eq!(
            parse(r#"{"trusted_root": "tr.json"}"#).unwrap().source,
            TrustSource::TrustedRoot("tr.json".into())
        );
        assert_eq!(
            parse(r#"{"tuf": {"url": "https://tuf.example/", "root": "/etc/tg/root.json"}}"#)
                .unwrap()
                .source,
            TrustSource::Tuf {
                url: "https://tuf.example".into(),
                root: "/etc/tg/root.json".into(),
                cache: "/etc/tg/root.json.cache".into(),
            }
        );
        assert_eq!(parse("{}"), Err(KeylessError::NoSource));
        assert!(matches!(
            parse(r#"{"trusted_root": "a", "fulcio_roots": "b", "rekor_keys": ["c"]}"#),
            Err(KeylessError::TwoSources(_))
        ));
        assert!(matches!(
            parse(r#"{"trusted_root": "a", "tuf": {"url": "https://x", "root": "r"}}"#),
            Err(KeylessError::TwoSources(_))
        ));
        assert_eq!(
            parse(r#"{"fulcio_roots": "b"}"#),
            Err(KeylessError::NoRekorKeys)
        );
        assert_eq!(
            parse(r#"{"rekor_keys": ["c"]}"#),
            Err(KeylessError::NoFulcioRoots)
        );
        assert_eq!(
            parse(r#"{"tuf": {"url": "file:///x", "root": "r"}}"#),
            Err(KeylessError::BadTufUrl("file:///x".into()))
        );
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
