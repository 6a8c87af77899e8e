//! The signed attributes and the payload, format-neutral: what `jws` and `cose` read from
//! their protected headers, checked here once by the rules of `specs/signature-specification.md`
//! "Signed Attributes" as notation-core-go applies them (`signature/jws/jws.go`
//! `validateProtectedHeaders` / `validateCriticalHeaders`, `signature/cose/envelope.go`
//! `validateCritHeaders` / `parseProtectedHeaders`, `signature/internal/base/envelope.go`
//! `validateSignerInfo`), and notation-go's payload rules (`internal/envelope/envelope.go`).

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;

use super::json::{Json, Match};
use super::{Algorithm, EnvelopeError, SigningScheme, Target, PAYLOAD};

pub(super) const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
pub(super) const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
pub(super) const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
pub(super) const EXPIRY: &str = "io.cncf.notary.expiry";
pub(super) const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
pub(super) const PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";
pub(super) const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";
pub(super) const SIGNING_AGENT: &str = "io.cncf.notary.signingAgent";

/// A header label: JWS names are strings, COSE labels text or integers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Label {
    Text(String),
    Int(i64),
}

/// The protected header of either format, its values typed by the format's own rules.
#[derive(Debug, Default)]
pub(super) struct Protected {
    /// `alg`, already one of the six the spec allows.
    pub alg: Option<Algorithm>,
    /// `cty` / COSE content type (3).
    pub content_type: Option<String>,
    /// `crit` / COSE crit (2), in order.
    pub crit: Vec<Label>,
    pub scheme: Option<String>,
    pub signing_time: Option<OffsetDateTime>,
    pub authentic_signing_time: Option<OffsetDateTime>,
    pub expiry: Option<OffsetDateTime>,
    /// Labels the format itself defines that are present (JWS `alg`, `cty`, `crit`; COSE
    /// integer labels 0 to 8): never extended attributes, never allowed in `crit`.
    pub registered: Vec<Label>,
    /// Every other label, with its value when that is a text string.
    pub extended: Vec<(Label, Option<String>)>,
}

/// What a format hands over once its structure is read.
#[derive(Debug)]
pub(super) struct Parts {
    pub protected: Protected,
    /// The payload bytes (JWS: decoded from base64url).
    pub payload: Vec<u8>,
    /// The bytes the signature is over (JWS signing input, COSE `ToBeSigned`).
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER certificates, the signing certificate first; at least one.
    pub chain: Vec<Vec<u8>>,
    pub timestamp: Option<Vec<u8>>,
    pub signing_agent: Option<String>,
}

/// The signed attributes once checked.
#[derive(Debug)]
pub(super) struct Checked {
    pub alg: Algorithm,
    pub scheme: SigningScheme,
    pub signing_time: Option<OffsetDateTime>,
    pub authentic_signing_time: Option<OffsetDateTime>,
    pub expiry: Option<OffsetDateTime>,
    pub verification_plugin: Option<String>,
    pub plugin_min_version: Option<String>,
    pub critical_extended: Vec<String>,
}

// === impl Label ===

impl Label {
    fn is(&self, name: &str) -> bool {
        matches!(self, Label::Text(t) if t == name)
    }

    /// As a name for [`super::Envelope::critical_extended`]: text as is, integers in decimal.
    fn name(&self) -> String {
        match self {
            Label::Text(t) => t.clone(),
            Label::Int(i) => i.to_string(),
        }
    }
}

impl fmt::Display for Label {
    /// Quoted text (Go's `%q`), bare integers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Text(t) => write!(f, "{t:?}"),
            Label::Int(i) => write!(f, "{i}"),
        }
    }
}

// === impl Protected ===

impl Protected {
    fn extended(&self, name: &str) -> Option<&Option<String>> {
        self.extended
            .iter()
            .find(|(label, _)| label.is(name))
            .map(|(_, value)| value)
    }

    fn has_extended(&self, label: &Label) -> bool {
        self.extended.iter().any(|(l, _)| l == label)
    }

    /// Checks the signed attributes.
    ///
    /// The order is notation-core-go's: the algorithm (`getSignatureAlgorithm`), the content
    /// type (notation-go `ValidatePayloadContentType`), the signing scheme and the time
    /// attribute it needs (`validateProtectedHeaders`), `crit` both ways
    /// (`validateCriticalHeaders`), the plugin attributes (notation-go
    /// `getVerificationPlugin` / `getVerificationPluginMinVersion`), and last the times'
    /// order (base `validateSigningAndExpiryTime`).
    pub fn check(&self) -> Result<Checked, EnvelopeError> {
        let malformed = |m: String| Err(EnvelopeError::Malformed(m));

        let Some(alg) = self.alg else {
            return Err(EnvelopeError::Invalid(
                "signature algorithm is not present".into(),
            ));
        };

        // signature-specification.md, "Content Type": the payload media type, and only it.
        match self.content_type.as_deref() {
            Some(PAYLOAD) => {}
            Some(other) => {
                return malformed(format!("payload content type {other:?} not supported"))
            }
            None => return malformed("missing content type".into()),
        }

        // "Signing Scheme" (critical, required) dictates which signing time is present.
        let scheme = match self.scheme.as_deref() {
            Some("notary.x509") => SigningScheme::X509,
            Some("notary.x509.signingAuthority") => SigningScheme::SigningAuthority,
            Some(other) => return malformed(format!("unsupported SigningScheme: `{other}`")),
            None => return malformed(format!("{SIGNING_SCHEME:?} header is not present")),
        };
        let (own, other) = match scheme {
            SigningScheme::X509 => (
                (SIGNING_TIME, self.signing_time),
                (AUTHENTIC_SIGNING_TIME, self.authentic_signing_time),
            ),
            SigningScheme::SigningAuthority => (
                (AUTHENTIC_SIGNING_TIME, self.authentic_signing_time),
                (SIGNING_TIME, self.signing_time),
            ),
        };
        if other.1.is_some() {
            return malformed(format!(
                "{:?} header must not be present for {} signing scheme",
                other.0,
                scheme.as_str()
            ));
        }
        let Some(signed_at) = own.1 else {
            return malformed(format!(
                "{:?} header must be present for {} signing scheme",
                own.0,
                scheme.as_str()
            ));
        };

        let critical_extended = self.check_crit(scheme)?;

        // signature-specification.md, "Extended attributes for Notation Plugins": both are
        // critical (checked above) strings; notation-go rejects empty ones.
        let verification_plugin = self.plugin_attribute(VERIFICATION_PLUGIN)?;
        let plugin_min_version = self.plugin_attribute(PLUGIN_MIN_VERSION)?;

        if let Some(expiry) = self.expiry {
            if expiry <= signed_at {
                return malformed("expiry cannot be equal or before the signing time".into());
            }
        }

        Ok(Checked {
            alg,
            scheme,
            signing_time: self.signing_time,
            authentic_signing_time: self.authentic_signing_time,
            expiry: self.expiry,
            verification_plugin,
            plugin_min_version,
            critical_extended,
        })
    }

    /// `crit` both ways, returning the critical extended attributes other than the plugin
    /// ones (for the verifier to fail on: signature-specification.md, "unknown critical
    /// attributes MUST cause signature verification to fail").
    ///
    /// Every label `crit` names must be present and one a verifier may be asked to process
    /// (notation-core-go: `"%q header is marked critical but not present"`); every attribute
    /// the spec marks critical must be listed: the signing scheme, expiry when present,
    /// authentic signing time under `notary.x509.signingAuthority`, and the plugin attributes
    /// when present (notation-go `extractCriticalStringExtendedAttribute` fails a
    /// non-critical one: "is not a critical Extended attribute").
    fn check_crit(&self, scheme: SigningScheme) -> Result<Vec<String>, EnvelopeError> {
        let malformed = |m: String| Err(EnvelopeError::Malformed(m));
        if self.crit.is_empty() {
            return malformed(r#"missing "crit" header"#.into());
        }
        let mut must: Vec<&str> = vec![SIGNING_SCHEME];
        if self.expiry.is_some() {
            must.push(EXPIRY);
        }
        if scheme == SigningScheme::SigningAuthority {
            must.push(AUTHENTIC_SIGNING_TIME);
        }
        for name in [VERIFICATION_PLUGIN, PLUGIN_MIN_VERSION] {
            if self.extended(name).is_some() {
                must.push(name);
            }
        }

        let mut critical_extended = Vec::new();
        for (i, label) in self.crit.iter().enumerate() {
            if self.crit.get(..i).is_some_and(|seen| seen.contains(label)) {
                return malformed(format!("{label} is listed twice in \"crit\""));
            }
            if must.iter().any(|name| label.is(name)) {
                continue;
            }
            if self.has_extended(label) {
                critical_extended.push(label.name());
                continue;
            }
            let present = self.registered.contains(label)
                || (label.is(SIGNING_TIME) && self.signing_time.is_some())
                || (label.is(AUTHENTIC_SIGNING_TIME) && self.authentic_signing_time.is_some());
            return malformed(if present {
                format!("{label} header must not be marked critical")
            } else {
                format!("{label} header is marked critical but not present")
            });
        }

        let mut missing: Vec<&str> = must
            .into_iter()
            .filter(|name| !self.crit.iter().any(|l| l.is(name)))
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            return malformed(format!(
                "these required headers are not marked as critical: [{}]",
                missing.join(" ")
            ));
        }
        Ok(critical_extended)
    }

    fn plugin_attribute(&self, name: &str) -> Result<Option<String>, EnvelopeError> {
        match self.extended(name) {
            None => Ok(None),
            Some(None) => Err(EnvelopeError::Malformed(format!(
                "{name} from extended attribute is not a string"
            ))),
            Some(Some(value)) if value.trim().is_empty() => Err(EnvelopeError::Malformed(format!(
                "{name} from extended attribute is an empty string"
            ))),
            Some(Some(value)) => Ok(Some(value.clone())),
        }
    }
}

// === the payload ===

/// Reads the payload (signature-specification.md, "Payload"): a JSON object whose
/// `targetArtifact` is a descriptor with `mediaType`, `digest` and `size`, and optionally
/// string `annotations`; other descriptor members (`artifactType`, `urls`, ...) are
/// ignored, as notation-go's `SanitizeTargetArtifact` drops them.
pub(super) fn target(payload: &[u8]) -> Result<Target, EnvelopeError> {
    let bad = |m: String| EnvelopeError::Malformed(format!("payload: {m}"));
    if payload.is_empty() {
        return Err(bad("content not present".into()));
    }
    let doc = Json::parse(payload).map_err(bad)?;
    let top = doc
        .members(&["targetArtifact"], Match::Exact)
        .map_err(bad)?;
    let artifact = top
        .get(0)
        .ok_or_else(|| bad("missing \"targetArtifact\"".into()))?;
    let members = artifact
        .members(
            &["mediaType", "digest", "size", "annotations"],
            Match::Exact,
        )
        .map_err(|e| bad(format!("targetArtifact: {e}")))?;

    let string = |i: usize, name: &str| -> Result<String, EnvelopeError> {
        match members.get(i) {
            Some(Json::Str(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Json::Str(_)) | None => Err(bad(format!("targetArtifact has no {name}"))),
            Some(v) => Err(bad(format!("targetArtifact.{name} is {}", v.kind()))),
        }
    };
    let media_type = string(0, "mediaType")?;
    let digest = string(1, "digest")?;
    if !digest_well_formed(&digest) {
        return Err(bad(format!(
            "targetArtifact.digest {digest:?} is not <algorithm>:<encoded>"
        )));
    }
    let size = match members.get(2) {
        Some(Json::Int(n)) if *n >= 0 => *n,
        Some(Json::Int(n)) => return Err(bad(format!("targetArtifact.size {n} is negative"))),
        None => return Err(bad("targetArtifact has no size".into())),
        Some(v) => {
            return Err(bad(format!(
                "targetArtifact.size is {}, not an int64",
                v.kind()
            )))
        }
    };
    let mut annotations = BTreeMap::new();
    match members.get(3) {
        None | Some(Json::Null) => {}
        Some(map @ Json::Obj(_)) => {
            let entries = map.members(&[], Match::Exact).map_err(bad)?;
            for (key, value) in entries.rest {
                let Some(value) = value.as_str() else {
                    return Err(bad(format!(
                        "annotation {key:?} is {}, not a string",
                        value.kind()
                    )));
                };
                annotations.insert(key.to_owned(), value.to_owned());
            }
        }
        Some(v) => return Err(bad(format!("targetArtifact.annotations is {}", v.kind()))),
    }
    Ok(Target {
        media_type,
        digest,
        size,
        annotations,
    })
}

/// OCI image spec, "Digests": `algorithm ":" encoded`, the algorithm
/// `[a-z0-9]+([+._-][a-z0-9]+)*` and the encoded part `[a-zA-Z0-9=_-]+`. Any registered
/// algorithm passes (a blob signed with an RSA-3072 key names `sha384`); the verifier
/// compares the digest with the subject's.
fn digest_well_formed(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    algorithm.split(['+', '.', '_', '-']).all(component)
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}
