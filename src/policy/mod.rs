//! Policy: image reference → most specific rule → action, plus that rule's trust requirements.
//!
//! A [`Policy`] is built once from configuration (patterns compiled, rules ordered by
//! [`Specificity`], ambiguous rules refused) and then asked [`Policy::decide`] on every
//! request, which is a linear scan over precompiled patterns without allocation.
//!
//! ```
//! use trustgate::policy::{Action, DefaultAction, Policy, Rule};
//!
//! let policy = Policy::new(
//!     DefaultAction::Deny,
//!     vec![
//!         Rule::allow("docker.io/**".parse().unwrap()),
//!         Rule::deny("docker.io/library/busybox".parse().unwrap()),
//!     ],
//! )
//! .unwrap();
//! assert_eq!(policy.decide("docker.io", "library/nginx").action(), Action::Allow);
//! assert_eq!(policy.decide("docker.io", "library/busybox").action(), Action::Deny);
//! let other = policy.decide("quay.io", "prometheus/prometheus");
//! assert_eq!((other.action(), other.pattern()), (Action::Deny, "default"));
//! ```

mod attestation;
pub(crate) mod de;
mod keyless;
mod names;
mod pattern;
#[cfg(test)]
mod tests;

use std::{cmp::Reverse, fmt, str::FromStr, time::Duration};

use serde::Deserialize;

use self::de::deserialize_from_str;
pub use self::{
    attestation::{
        AttestationConfig, AttestationError, AttestationRequirement, Condition, ConditionConfig,
        FieldPath, FieldRegex, FieldTest, PathError, Segment, Signatures, MAX_ATTESTATIONS,
        MAX_CONDITIONS, MAX_PATH_SEGMENTS,
    },
    keyless::{
        Identity, IdentityConfig, KeylessConfig, KeylessError, KeylessRequirements, Matcher,
        TrustSource, TufConfig,
    },
    names::{NameError, RoleList, RoleName, RootKeyPin, SignerList, SignerName},
    pattern::{Pattern, PatternError, Specificity},
};

/// What happens to a request for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Serve only content whose tag or digest verifies against the rule's trust requirements.
    Verify,
    /// Serve, but run the verification and record what `verify` would have decided.
    ///
    /// CAUTION: `audit` enforces nothing; unsigned and tampered images are served. It exists to
    /// observe a policy before switching it to `verify`.
    Audit,
    /// Serve without verification.
    Allow,
    /// Refuse.
    Deny,
}

/// What happens to an image that no rule matches: `deny` (the default) or `allow`.
///
/// `verify` and `audit` are not offered here because they need a notary server and roles; write
/// a catch-all rule `match: "**"` with that action instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DefaultAction {
    /// Refuse images no rule names.
    #[default]
    Deny,
    /// Serve images no rule names, unverified.
    Allow,
}

/// One kind of signature a rule can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifierName {
    /// Notary v1 / Docker Content Trust.
    Notary,
    /// cosign signatures, key-based or keyless.
    Cosign,
    /// Notation (Notary Project) signatures.
    Notation,
}

/// The verifiers a rule uses: `notary` (the default), `cosign`, `notation`, a list of them
/// (`[notary, cosign]`: all required, agreeing on the digest), or `{any_of: [...]}` (any one
/// suffices, tried in the order listed; the decision names the one that passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifierKind {
    /// The verifiers, in the order listed, each at most once.
    names: [Option<VerifierName>; 3],
    /// Whether one of them suffices (`any_of`) rather than all.
    any: bool,
}

impl Default for VerifierKind {
    fn default() -> Self {
        Self::NOTARY
    }
}

/// What a rule's `cosign` verifier requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignRequirements {
    /// PEM public keys (ECDSA P-256) whose signatures count.
    pub keys: Vec<std::path::PathBuf>,
    /// Keyless (Fulcio certificate + Rekor bundle) signers whose signatures count.
    pub keyless: Option<KeylessRequirements>,
    /// How many distinct signers must have signed: each key counts once, each keyless
    /// identity once. At least 1, at most keys plus identities.
    pub threshold: usize,
    /// Repository on the same upstream that holds the `sha256-<hex>.sig` tags; default the
    /// image's own repository.
    pub signature_repository: Option<String>,
    /// Whether signatures are required (`threshold` of them) or only the attestations.
    pub signatures: Signatures,
    /// In-toto attestations the digest must carry, each by one of the signers above.
    pub attestations: Vec<AttestationRequirement>,
    /// Whether a sigstore bundle needs a transparency-log entry (keyless), or a log entry
    /// or an RFC 3161 timestamp (key-signed).
    pub require_tlog: bool,
}

/// What a rule's `notation` verifier uses: notation's own files, read unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotationRequirements {
    /// notation's trust policy: `trustpolicy.oci.json` (or the older `trustpolicy.json`), or
    /// a notation configuration directory holding one.
    pub trust_policy: std::path::PathBuf,
    /// notation's trust store: the directory holding `x509/`, or a notation configuration
    /// directory (holding `truststore/x509/`).
    pub trust_store: std::path::PathBuf,
    /// CRL files the operator supplies (air-gapped sites), used before any fetch.
    pub crls: Vec<std::path::PathBuf>,
    /// Where fetched CRLs are kept until their `nextUpdate`.
    pub crl_cache: Option<std::path::PathBuf>,
    /// Whether OCSP responders and CRL distribution points may be fetched.
    pub revocation_fetch: bool,
    /// Bound on each revocation fetch.
    pub revocation_timeout: Duration,
}

/// What a `verify` or `audit` rule requires of an image's trust data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRequirements {
    /// Which verifier checks the image.
    pub verifier: VerifierKind,
    /// The name of the notary server (from `notary_servers`) that holds the trust data;
    /// empty when the verifier is `cosign` alone.
    pub notary: String,
    /// Roles a tag is resolved through, first match wins.
    pub roles: RoleList,
    /// Signers whose roles must all have signed the resolved digest as well.
    pub signers: SignerList,
    /// Pinned root keys; empty means trust on first use, then pin.
    pub root_keys: Vec<RootKeyPin>,
    /// How long past `ttl` cached trust data may still be used while the notary server is
    /// unreachable. Zero (the default) fails closed.
    ///
    /// CAUTION: within this window a revocation published on the notary server is not seen.
    pub stale_if_error: Duration,
    /// The cosign requirements, when the verifier includes `cosign`.
    pub cosign: Option<CosignRequirements>,
    /// The Notation requirements, when the verifier includes `notation`.
    pub notation: Option<NotationRequirements>,
}

/// One policy rule: a pattern, an action and, for `verify`/`audit`, the trust requirements.
///
/// Built through [`Rule::verify`], [`Rule::audit`], [`Rule::allow`] or [`Rule::deny`], so a
/// verifying rule always has requirements and a plain one never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Position in the configuration, set by [`Policy::new`].
    index: usize,
    pattern: Pattern,
    action: Action,
    trust: Option<TrustRequirements>,
}

/// A compiled policy: rules ordered from most to least specific, and a default.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    default: DefaultAction,
    /// Sorted by decreasing specificity, so the first match is the most specific one.
    rules: Box<[Rule]>,
}

/// The outcome of [`Policy::decide`]: the matched rule (or the default) and what it requires.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    rule: Option<&'a Rule>,
    default: DefaultAction,
}

/// Why rules could not form a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Two rules of equal specificity match a common reference, so neither can win.
    #[error(
        "rules {first} (`{first_pattern}`) and {second} (`{second_pattern}`) are equally \
         specific and both match `{example}`; make one more specific or merge them"
    )]
    AmbiguousRules {
        /// Index of the earlier rule.
        first: usize,
        /// Its pattern.
        first_pattern: String,
        /// Index of the later rule.
        second: usize,
        /// Its pattern.
        second_pattern: String,
        /// A reference both match.
        example: String,
    },
}

// === impl VerifierName ===

impl VerifierName {
    /// The name in configuration, logs and decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notary => "notary",
            Self::Cosign => "cosign",
            Self::Notation => "notation",
        }
    }

    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "notary" => Ok(Self::Notary),
            "cosign" => Ok(Self::Cosign),
            "notation" => Ok(Self::Notation),
            other => Err(format!(
                "unknown verifier `{other}`, expected `notary`, `cosign` or `notation`"
            )),
        }
    }
}

impl fmt::Display for VerifierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl VerifierKind ===

impl VerifierKind {
    /// Notary v1 alone.
    pub const NOTARY: Self = Self::one(VerifierName::Notary);
    /// cosign alone.
    pub const COSIGN: Self = Self::one(VerifierName::Cosign);
    /// Notation alone.
    pub const NOTATION: Self = Self::one(VerifierName::Notation);

    const fn one(name: VerifierName) -> Self {
        VerifierKind {
            names: [Some(name), None, None],
            any: false,
        }
    }

    /// All of `names` required (`any` false) or any one (`any` true); `names` must be
    /// distinct, at least one.
    pub fn of(names: &[VerifierName], any: bool) -> Result<Self, String> {
        let mut out = [None; 3];
        if names.is_empty() {
            return Err("the verifier list is empty".to_owned());
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(format!("verifier `{name}` is listed twice"));
            }
            out[i] = Some(*name);
        }
        Ok(VerifierKind {
            names: out,
            // One verifier is the same either way.
            any: any && names.len() > 1,
        })
    }

    /// The verifiers, in the order listed.
    pub fn names(self) -> impl Iterator<Item = VerifierName> {
        self.names.into_iter().flatten()
    }

    /// Whether one verifier suffices (`any_of` of several).
    pub fn any(self) -> bool {
        self.any
    }

    /// Whether `name` is one of the verifiers.
    pub fn uses(self, name: VerifierName) -> bool {
        self.names().any(|n| n == name)
    }

    /// Whether Notary v1 is one of the verifiers.
    pub fn uses_notary(self) -> bool {
        self.uses(VerifierName::Notary)
    }

    /// Whether cosign is one of the verifiers.
    pub fn uses_cosign(self) -> bool {
        self.uses(VerifierName::Cosign)
    }

    /// Whether Notation is one of the verifiers.
    pub fn uses_notation(self) -> bool {
        self.uses(VerifierName::Notation)
    }

    /// Whether every tag served must be one Notary v1 signed: Notary v1 is required (alone
    /// or with others). cosign and Notation sign digests; under them a tag is only a name.
    pub fn tags_signed(self) -> bool {
        self.uses_notary() && !self.any
    }
}

impl fmt::Display for VerifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names().map(VerifierName::as_str).collect();
        match names.as_slice() {
            [one] => f.write_str(one),
            _ if self.any => write!(f, "any_of: [{}]", names.join(", ")),
            _ => write!(f, "[{}]", names.join(", ")),
        }
    }
}

/// `notary`, `cosign`, `notation`, a list of them (all required), or `{any_of: [...]}`.
impl<'de> Deserialize<'de> for VerifierKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn names<'de, A: serde::de::SeqAccess<'de>>(
            mut seq: A,
        ) -> Result<Vec<VerifierName>, A::Error> {
            use serde::de::Error as _;
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                if names.len() == 3 {
                    return Err(A::Error::custom("at most three verifiers"));
                }
                names.push(VerifierName::parse(&name).map_err(A::Error::custom)?);
            }
            Ok(names)
        }
        struct Names(Vec<VerifierName>);
        impl<'de> Deserialize<'de> for Names {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct L;
                impl<'de> serde::de::Visitor<'de> for L {
                    type Value = Names;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a list of verifiers")
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        seq: A,
                    ) -> Result<Names, A::Error> {
                        names(seq).map(Names)
                    }
                }
                d.deserialize_seq(L)
            }
        }
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = VerifierKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`notary`, `cosign`, `notation`, a list of them (all required) or \
                     `{any_of: [...]}` (any one suffices)",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<VerifierKind, E> {
                VerifierName::parse(v)
                    .map(VerifierKind::one)
                    .map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<VerifierKind, A::Error> {
                use serde::de::Error as _;
                VerifierKind::of(&names(seq)?, false).map_err(A::Error::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<VerifierKind, A::Error> {
                use serde::de::Error as _;
                let Some(key) = map.next_key::<String>()? else {
                    return Err(A::Error::custom("expected `any_of: [...]`"));
                };
                let any = match key.as_str() {
                    "any_of" => true,
                    "all_of" => false,
                    other => {
                        return Err(A::Error::custom(format!(
                            "unknown key `{other}`, expected `any_of` or `all_of`"
                        )))
                    }
                };
                let Names(list) = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(A::Error::custom(
                        "a verifier map holds one key, `any_of` or `all_of`",
                    ));
                }
                VerifierKind::of(&list, any).map_err(A::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

// === impl Action ===

impl Action {
    /// The lowercase name used in configuration, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Audit => "audit",
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    /// Whether the action runs a verifier, and so needs trust requirements.
    pub fn verifies(self) -> bool {
        matches!(self, Self::Verify | Self::Audit)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl DefaultAction ===

impl DefaultAction {
    /// The corresponding [`Action`].
    pub fn action(self) -> Action {
        match self {
            Self::Deny => Action::Deny,
            Self::Allow => Action::Allow,
        }
    }
}

/// Error for a `policy.default` other than `deny` or `allow`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a default action: use `deny` or `allow`{hint}",
    hint = if matches!(.0.as_str(), "verify" | "audit") {
        "; to verify or audit by default, add a catch-all rule `match: \"**\"` with that \
         action and a notary server"
    } else {
        ""
    }
)]
pub struct DefaultActionError(String);

impl FromStr for DefaultAction {
    type Err = DefaultActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(Self::Deny),
            "allow" => Ok(Self::Allow),
            _ => Err(DefaultActionError(s.to_owned())),
        }
    }
}

deserialize_from_str!(DefaultAction, "`deny` or `allow`");

// === impl Rule ===

impl Rule {
    /// A rule that serves only verified content.
    pub fn verify(pattern: Pattern, trust: TrustRequirements) -> Self {
        Self::new(pattern, Action::Verify, Some(trust))
    }

    /// A rule that serves everything but records what verification would have decided.
    pub fn audit(pattern: Pattern, trust: TrustRequirements) -> Self {
        Self::new(pattern, Action::Audit, Some(trust))
    }

    /// A rule that serves without verification.
    pub fn allow(pattern: Pattern) -> Self {
        Self::new(pattern, Action::Allow, None)
    }

    /// A rule that refuses.
    pub fn deny(pattern: Pattern) -> Self {
        Self::new(pattern, Action::Deny, None)
    }

    fn new(pattern: Pattern, action: Action, trust: Option<TrustRequirements>) -> Self {
        Self {
            index: 0,
            pattern,
            action,
            trust,
        }
    }

    /// The rule's position in the configuration (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The rule's pattern.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// The rule's action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The trust requirements; `Some` exactly for `verify` and `audit` rules.
    pub fn trust(&self) -> Option<&TrustRequirements> {
        self.trust.as_ref()
    }
}

// === impl Policy ===

impl Policy {
    /// Builds a policy from rules in configuration order.
    ///
    /// Refuses two rules of equal [`Specificity`] that can match the same reference (including
    /// two rules with the same pattern), since neither could be said to win.
    pub fn new(default: DefaultAction, rules: Vec<Rule>) -> Result<Self, PolicyError> {
        let mut rules = rules;
        for (index, rule) in rules.iter_mut().enumerate() {
            rule.index = index;
        }
        // Quadratic, but once at load over a few dozen rules at most.
        for (j, later) in rules.iter().enumerate() {
            for earlier in &rules[..j] {
                if earlier.pattern.specificity() != later.pattern.specificity() {
                    continue;
                }
                if let Some(example) = earlier.pattern.overlap(&later.pattern) {
                    return Err(PolicyError::AmbiguousRules {
                        first: earlier.index,
                        first_pattern: earlier.pattern.to_string(),
                        second: later.index,
                        second_pattern: later.pattern.to_string(),
                        example,
                    });
                }
            }
        }
        // Stable, so equally specific (hence disjoint) rules keep configuration order.
        rules.sort_by_key(|rule| Reverse(rule.pattern.specificity()));
        Ok(Self {
            default,
            rules: rules.into(),
        })
    }

    /// Decides what to do with `registry/repository`.
    ///
    /// `registry` is the upstream's configured name (`docker.io`), after the caller resolved
    /// `?ns=` and any aliases; `repository` is a validated repository name (`library/nginx`).
    /// The tag plays no part: a rule governs every tag and digest of a repository alike.
    pub fn decide(&self, registry: &str, repository: &str) -> Decision<'_> {
        Decision {
            rule: self
                .rules
                .iter()
                .find(|rule| rule.pattern.matches(registry, repository)),
            default: self.default,
        }
    }

    /// What happens when no rule matches.
    pub fn default_action(&self) -> DefaultAction {
        self.default
    }

    /// The rules, most specific first (the order [`Policy::decide`] tries them in).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

// === impl Decision ===

impl<'a> Decision<'a> {
    /// What to do.
    pub fn action(&self) -> Action {
        self.rule.map_or(self.default.action(), |rule| rule.action)
    }

    /// The matched rule, or `None` when the default applied.
    pub fn rule(&self) -> Option<&'a Rule> {
        self.rule
    }

    /// The matched rule's position in the configuration, or `None` for the default.
    pub fn rule_index(&self) -> Option<usize> {
        self.rule.map(|rule| rule.index)
    }

    /// The matched rule's pattern for logs, or `"default"` when no rule matched (never a
    /// pattern: a pattern needs a repository part).
    pub fn pattern(&self) -> &'a str {
        self.rule.map_or("default", |rule| rule.pattern.as_str())
    }

    /// The trust requirements to verify against; `Some` exactly for `verify` and `audit`.
    pub fn trust(&self) -> Option<&'a TrustRequirements> {
        self.rule.and_then(|rule| rule.trust.as_ref())
    }
}
