//! notation's trust policy document (`specs/trust-store-trust-policy.md`, "Trust Policy";
//! notation-go `verifier/trustpolicy`), OCI flavour: `trustpolicy.oci.json`, or the older
//! `trustpolicy.json`, read unchanged and validated as notation-go validates it
//! (`OCIDocument.Validate`), with notation-go's messages.
//!
//! Where notation-go departs from the specification, this module follows notation-go:
//! - overlapping identities are only those where one DN's attributes are a subset of
//!   another's (the specification calls overlapping any two DNs one certificate could match,
//!   e.g. `...,OU=x` and `...,CN=y`);
//! - a `skip` statement may have the global scope `*` (the specification forbids it);
//! - identities with a prefix other than `x509.subject:` are accepted and match nothing.
//!
//! And it departs from notation-go, always towards refusing, where notation-go has no bound
//! or reads a document two ways: at most [`MAX_POLICY_SIZE`] bytes, [`MAX_STATEMENTS`]
//! statements and [`MAX_IDENTITIES`] identities per statement; a key given twice is an error
//! (see [`json`]); a DN value whose `\XX` escapes do not make UTF-8 is invalid.

use std::io;
use std::path::Path;

use x509_parser::prelude::X509Certificate;

use super::store::{read_regular_file, ReadError, StoreKind};

pub mod dn;
mod json;
#[cfg(test)]
mod tests;

use dn::go_quote as q;

/// Largest trust policy document read.
pub const MAX_POLICY_SIZE: u64 = 1024 * 1024;
/// Statements read per document, at most.
pub const MAX_STATEMENTS: usize = 1024;
/// Trusted identities per statement, at most (they are compared pairwise for overlaps).
pub const MAX_IDENTITIES: usize = 1024;

/// The file a notation configuration directory holds its OCI trust policy in (notation-go
/// `dir.PathOCITrustPolicy`), read first.
pub const OCI_POLICY_FILE: &str = "trustpolicy.oci.json";
/// The older name of the same file (`dir.PathTrustPolicy`), read when the first is absent.
pub const POLICY_FILE: &str = "trustpolicy.json";

/// Where notation-go's messages send a user to write a trust policy.
pub const TRUST_POLICY_LINK: &str =
    "https://notaryproject.dev/docs/quickstart/#create-a-trust-policy";

/// A verification level (`signatureVerification.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

/// What a failed check does (`enforce`, `log`, or for revocation `skip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Enforce,
    Log,
    Skip,
}

/// The action of each check a level (with its overrides) takes; integrity is always enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub authenticity: Action,
    pub authentic_timestamp: Action,
    pub expiry: Action,
    pub revocation: Action,
}

/// `signatureVerification.verifyTimestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyTimestamp {
    #[default]
    Always,
    AfterCertExpiry,
}

/// A trust store a statement names (`<type>:<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreRef {
    pub kind: StoreKind,
    pub name: String,
}

/// A distinguished name of `x509.subject:` as attribute → value (`C`, `ST` (from `ST` or `S`), `O`, ...).
pub type Dn = std::collections::BTreeMap<String, String>;

/// `trustedIdentities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identities {
    /// `*`: any signer a trust store anchors.
    Any,
    /// `x509.subject:` DNs; a leaf matches one when it has every attribute with that value.
    Subjects(Vec<Dn>),
}

/// `registryScopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scopes {
    /// `*`.
    Any,
    /// Exact `host[:port]/repository` values.
    Repositories(Vec<String>),
}

/// One trust policy statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub name: String,
    pub scopes: Scopes,
    pub level: Level,
    pub actions: Actions,
    pub verify_timestamp: VerifyTimestamp,
    pub trust_stores: Vec<StoreRef>,
    /// `Identities::Subjects(vec![])` for a `skip` statement (it names none), or one whose
    /// identities all have a prefix other than `x509.subject:` (notation-go accepts those,
    /// and they match no certificate).
    pub identities: Identities,
}

/// A validated trust policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    pub statements: Vec<Statement>,
}

/// Why a trust policy document is not valid; the message is notation-go's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

// === impl Level ===

impl Level {
    /// The level `name` (`signatureVerification.level`).
    pub fn from_name(name: &str) -> Option<Level> {
        match name {
            "strict" => Some(Level::Strict),
            "permissive" => Some(Level::Permissive),
            "audit" => Some(Level::Audit),
            "skip" => Some(Level::Skip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        }
    }

    /// What the level does at each check (`specs/trust-store-trust-policy.md`, "Signature
    /// Verification details", the level table; notation-go `LevelStrict` ... `LevelSkip`).
    pub fn actions(self) -> Actions {
        use Action::{Enforce as E, Log as L, Skip as S};
        let [authenticity, authentic_timestamp, expiry, revocation] = match self {
            Level::Strict => [E, E, E, E],
            Level::Permissive => [E, L, L, L],
            Level::Audit => [L, L, L, L],
            Level::Skip => [S, S, S, S],
        };
        Actions {
            authenticity,
            authentic_timestamp,
            expiry,
            revocation,
        }
    }
}

// === impl Action ===

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Enforce => "enforce",
            Action::Log => "log",
            Action::Skip => "skip",
        }
    }
}

// === impl TrustPolicy ===

impl TrustPolicy {
    /// Parses and validates a document.
    pub fn from_json(bytes: &[u8]) -> Result<TrustPolicy, PolicyError> {
        if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_POLICY_SIZE) {
            return Err(PolicyError(format!(
                "trust policy is larger than {MAX_POLICY_SIZE} bytes"
            )));
        }
        let raw = json::decode(bytes).map_err(|e| {
            PolicyError(format!(
                "malformed trust policy. To create a trust policy, see: {TRUST_POLICY_LINK} ({e})"
            ))
        })?;
        validate(raw).map_err(PolicyError)
    }

    /// Reads `path`: a trust policy file, or a notation configuration directory, where
    /// `trustpolicy.oci.json` is read, else `trustpolicy.json` (notation-go
    /// `LoadOCIDocument`: the second only when the first does not exist). The policy file
    /// itself must be a regular file, not a symlink (notation-go `getDocument`).
    pub fn load(path: &Path) -> Result<TrustPolicy, PolicyError> {
        let not_present = |looked: &str| {
            PolicyError(format!(
                "trust policy is not present. To create a trust policy, see: {TRUST_POLICY_LINK} (looked for {looked})"
            ))
        };
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_present(&path.display().to_string()))
            }
            Err(e) => {
                return Err(PolicyError(format!(
                    "failed to access the trust policy {}: {e}",
                    path.display()
                )))
            }
        };
        if !meta.is_dir() {
            return match read_policy_file(path)? {
                Some(bytes) => TrustPolicy::from_json(&bytes),
                None => Err(not_present(&path.display().to_string())),
            };
        }
        for name in [OCI_POLICY_FILE, POLICY_FILE] {
            if let Some(bytes) = read_policy_file(&path.join(name))? {
                return TrustPolicy::from_json(&bytes);
            }
        }
        Err(not_present(&format!(
            "{} and {}",
            path.join(OCI_POLICY_FILE).display(),
            path.join(POLICY_FILE).display()
        )))
    }

    /// The statement for `scope` (`host[:port]/repository`): the one naming it exactly, else
    /// the `*` one (`specs/trust-store-trust-policy.md`, "Selecting a trust policy to verify
    /// a signed OCI artifact"; notation-go `GetApplicableTrustPolicy`). `None` as well for a
    /// scope that is not a valid registry scope, which notation-go refuses before selecting.
    /// The caller's message names the artifact: `artifact "<reference>" has no applicable oci
    /// trust policy statement` (or use [`TrustPolicy::applicable`]).
    pub fn statement_for(&self, scope: &str) -> Option<&Statement> {
        check_scope(scope).ok()?;
        let mut wildcard = None;
        let mut exact = None;
        for statement in &self.statements {
            match &statement.scopes {
                Scopes::Any => wildcard = Some(statement),
                Scopes::Repositories(scopes) if scopes.iter().any(|s| s == scope) => {
                    exact = Some(statement);
                }
                Scopes::Repositories(_) => {}
            }
        }
        exact.or(wildcard)
    }

    /// The statement for an artifact reference `host[:port]/repository@<digest>`, with
    /// notation-go's messages when there is none (`GetApplicableTrustPolicy`).
    pub fn applicable(&self, reference: &str) -> Result<&Statement, PolicyError> {
        let Some((scope, _)) = reference.rsplit_once('@') else {
            return Err(PolicyError(format!(
                "artifact URI {} could not be parsed, make sure it is the fully qualified oci artifact URI without the scheme/protocol. e.g domain.com:80/my/repository@sha256:digest",
                q(reference)
            )));
        };
        check_scope(scope).map_err(PolicyError)?;
        self.statement_for(scope).ok_or_else(|| {
            PolicyError(format!(
                "artifact {} has no applicable oci trust policy statement. Trust policy applicability for a given artifact is determined by registryScopes. To create a trust policy, see: {TRUST_POLICY_LINK}",
                q(reference)
            ))
        })
    }
}

/// The bytes of the policy file `path`, `None` when it does not exist.
fn read_policy_file(path: &Path) -> Result<Option<Vec<u8>>, PolicyError> {
    match read_regular_file(path, MAX_POLICY_SIZE) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadError::NotFound) => Ok(None),
        Err(ReadError::NotRegular) => Err(PolicyError(format!(
            "trust policy is not a regular file (symlinks are not supported). To create a trust policy, see: {TRUST_POLICY_LINK} ({})",
            path.display()
        ))),
        Err(ReadError::TooLarge(max)) => Err(PolicyError(format!(
            "trust policy {} is larger than {max} bytes",
            path.display()
        ))),
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(PolicyError(format!(
                "unable to read trust policy due to file permissions, please verify the permissions of {}",
                path.display()
            )))
        }
        Err(ReadError::Io(e)) => Err(PolicyError(format!(
            "failed to read the trust policy {}: {e}",
            path.display()
        ))),
    }
}

/// `OCIDocument.Validate`, in its order: version, statements (unique names, then each
/// statement's own rules), then registry scopes across statements.
fn validate(raw: json::RawDocument) -> Result<TrustPolicy, String> {
    if raw.version.is_empty() {
        return Err(
            "oci trust policy document has empty version, version must be specified".to_owned(),
        );
    }
    if raw.version != "1.0" {
        return Err(format!(
            "oci trust policy document uses unsupported version {}",
            q(&raw.version)
        ));
    }
    if raw.trust_policies.is_empty() {
        return Err("oci trust policy document can not have zero trust policy statements".into());
    }
    if raw.trust_policies.len() > MAX_STATEMENTS {
        return Err(format!(
            "oci trust policy document has {} statements, more than the {MAX_STATEMENTS} read",
            raw.trust_policies.len()
        ));
    }
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut cores = Vec::with_capacity(raw.trust_policies.len());
    for statement in &raw.trust_policies {
        if names.contains(statement.name.as_str()) {
            return Err(format!(
                "multiple oci trust policy statements use the same name {}, statement names must be unique",
                q(&statement.name)
            ));
        }
        cores.push(core(statement).map_err(|e| format!("oci trust policy: {e}"))?);
        names.insert(statement.name.as_str());
    }
    check_scopes(&raw.trust_policies)?;
    let statements = raw
        .trust_policies
        .into_iter()
        .zip(cores)
        .map(|(raw, core)| Statement {
            scopes: if raw.registry_scopes.iter().any(|s| s == "*") {
                Scopes::Any
            } else {
                Scopes::Repositories(raw.registry_scopes)
            },
            name: raw.name,
            level: core.level,
            actions: core.actions,
            verify_timestamp: core.verify_timestamp,
            trust_stores: core.trust_stores,
            identities: core.identities,
        })
        .collect();
    Ok(TrustPolicy { statements })
}

/// What a statement says besides its name and scopes.
struct Core {
    level: Level,
    actions: Actions,
    verify_timestamp: VerifyTimestamp,
    trust_stores: Vec<StoreRef>,
    identities: Identities,
}

/// notation-go `validatePolicyCore`: a name, a valid `signatureVerification`, and for any
/// level but `skip` both trust stores and trusted identities (`skip`: neither).
fn core(raw: &json::RawStatement) -> Result<Core, String> {
    let name = &raw.name;
    if name.is_empty() {
        return Err(
            "a trust policy statement is missing a name, every statement requires a name"
                .to_owned(),
        );
    }
    let (level, actions) = verification(&raw.signature_verification).map_err(|e| {
        format!(
            "trust policy statement {} has invalid signatureVerification: {e}",
            q(name)
        )
    })?;
    let verify_timestamp = match raw.signature_verification.verify_timestamp.as_str() {
        "" | "always" => VerifyTimestamp::Always,
        "afterCertExpiry" => VerifyTimestamp::AfterCertExpiry,
        other => {
            return Err(format!(
                "trust policy statement {} has invalid signatureVerification: verifyTimestamp must be \"always\" or \"afterCertExpiry\", but got {}",
                q(name),
                q(other)
            ))
        }
    };
    let (trust_stores, identities) = if level == Level::Skip {
        if !raw.trust_stores.is_empty() || !raw.trusted_identities.is_empty() {
            return Err(format!(
                "trust policy statement {} is set to skip signature verification but configured with trust stores and/or trusted identities, remove them if signature verification needs to be skipped",
                q(name)
            ));
        }
        (Vec::new(), Identities::Subjects(Vec::new()))
    } else {
        if raw.trust_stores.is_empty() || raw.trusted_identities.is_empty() {
            return Err(format!(
                "trust policy statement {} is either missing trust stores or trusted identities, both must be specified",
                q(name)
            ));
        }
        (
            trust_stores(name, &raw.trust_stores)?,
            identities(name, &raw.trusted_identities)?,
        )
    };
    Ok(Core {
        level,
        actions,
        verify_timestamp,
        trust_stores,
        identities,
    })
}

/// notation-go `GetVerificationLevel` (`specs/trust-store-trust-policy.md`, "Custom
/// Verification Level"): the level, then each `override` (keys `authenticity`,
/// `authenticTimestamp`, `expiry`, `revocation`; values `enforce`, `log`, and `skip` for
/// `revocation` only; `integrity` cannot be overridden; `skip` cannot be customized).
fn verification(raw: &json::RawVerification) -> Result<(Level, Actions), String> {
    if raw.level.is_empty() {
        return Err(
            "signature verification level is empty or missing in the trust policy statement"
                .to_owned(),
        );
    }
    let level = Level::from_name(&raw.level)
        .ok_or_else(|| format!("invalid signature verification level {}", q(&raw.level)))?;
    let mut actions = level.actions();
    if raw.overrides.is_empty() {
        return Ok((level, actions));
    }
    if level == Level::Skip {
        return Err(format!(
            "signature verification level {} can't be used to customize signature verification",
            q(level.as_str())
        ));
    }
    for (check, action) in &raw.overrides {
        if !matches!(
            check.as_str(),
            "integrity" | "authenticity" | "authenticTimestamp" | "expiry" | "revocation"
        ) {
            return Err(format!(
                "verification type {} in custom signature verification is not supported, supported values are [\"integrity\" \"authenticity\" \"authenticTimestamp\" \"expiry\" \"revocation\"]",
                q(check)
            ));
        }
        let action = match action.as_str() {
            "enforce" => Action::Enforce,
            "log" => Action::Log,
            "skip" => Action::Skip,
            other => {
                return Err(format!(
                    "verification action {} in custom signature verification is not supported, supported values are [\"enforce\" \"log\" \"skip\"]",
                    q(other)
                ))
            }
        };
        let slot = match check.as_str() {
            "authenticity" => &mut actions.authenticity,
            "authenticTimestamp" => &mut actions.authentic_timestamp,
            "expiry" => &mut actions.expiry,
            "revocation" => &mut actions.revocation,
            _ => {
                return Err(format!(
                    "{} verification can not be overridden in custom signature verification",
                    q(check)
                ))
            }
        };
        if action == Action::Skip && check != "revocation" {
            return Err(format!(
                "{} verification can not be skipped in custom signature verification",
                q(check)
            ));
        }
        *slot = action;
    }
    Ok((level, actions))
}

/// notation-go `validateTrustStore`: each value `<type>:<name>`, the type `ca`,
/// `signingAuthority` or `tsa`, the name `[a-zA-Z0-9_.-]+`.
///
/// A value that is only a store type (`"tsa"`) gets the message notation-go gives for it
/// when it loads the stores (`verifier/helpers.go`: "is missing separator in trust store
/// value"); notation-go's validation calls it a "malformed trust store value", the message
/// any other value without a `:` (such as `"*"`) gets here.
fn trust_stores(name: &str, values: &[String]) -> Result<Vec<StoreRef>, String> {
    values
        .iter()
        .map(|value| {
            let Some((kind, store)) = value.split_once(':') else {
                return Err(if StoreKind::from_name(value).is_some() {
                    format!(
                        "trust policy statement {} is missing separator in trust store value {}. The required format is <TrustStoreType>:<TrustStoreName>",
                        q(name),
                        q(value)
                    )
                } else {
                    format!(
                        "trust policy statement {} has malformed trust store value {}. The required format is <TrustStoreType>:<TrustStoreName>",
                        q(name),
                        q(value)
                    )
                });
            };
            let kind = StoreKind::from_name(kind).ok_or_else(|| {
                format!(
                    "trust policy statement {} uses an unsupported trust store type {} in trust store value {}",
                    q(name),
                    q(kind),
                    q(value)
                )
            })?;
            if !super::store::is_valid_store_name(store) {
                return Err(format!(
                    "trust policy statement {} uses an unsupported trust store name {} in trust store value {}. Named store name needs to follow [a-zA-Z0-9_.-]+ format",
                    q(name),
                    q(store),
                    q(value)
                ));
            }
            Ok(StoreRef {
                kind,
                name: store.to_owned(),
            })
        })
        .collect()
}

/// notation-go `validateTrustedIdentities` (`specs/trust-store-trust-policy.md`, "Trusted
/// Identities Constraints"): `*` alone, or values `<prefix>:<value>`; `x509.subject:` values
/// are DNs ([`dn::parse_distinguished_name`]) no one of which is a subset of another.
fn identities(name: &str, values: &[String]) -> Result<Identities, String> {
    if values.len() > MAX_IDENTITIES {
        return Err(format!(
            "trust policy statement {} has {} trusted identities, more than the {MAX_IDENTITIES} read",
            q(name),
            values.len()
        ));
    }
    if values.iter().any(|v| v == "*") {
        if values.len() > 1 {
            return Err(format!(
                "trust policy statement {} uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values",
                q(name)
            ));
        }
        return Ok(Identities::Any);
    }
    let mut parsed: Vec<(&str, Dn)> = Vec::new();
    for identity in values {
        if identity.is_empty() {
            return Err(format!(
                "trust policy statement {} has an empty trusted identity",
                q(name)
            ));
        }
        let Some((prefix, value)) = identity.split_once(':') else {
            return Err(format!(
                "trust policy statement {} has trusted identity {} missing separator",
                q(name),
                q(identity)
            ));
        };
        // notation verifies x509.subject identities only; others are accepted and unused.
        if prefix != "x509.subject" {
            continue;
        }
        if value.is_empty() {
            return Err(format!(
                "trust policy statement {} has trusted identity {} without an identity value",
                q(name),
                q(identity)
            ));
        }
        let dn = dn::parse_distinguished_name(value).map_err(|e| {
            format!(
                "trust policy statement {} has trusted identity {} with invalid identity value: {e}",
                q(name),
                q(identity)
            )
        })?;
        parsed.push((identity, dn));
    }
    for (i, (raw_a, a)) in parsed.iter().enumerate() {
        for (j, (raw_b, b)) in parsed.iter().enumerate() {
            if i != j && dn::is_subset(a, b) {
                return Err(format!(
                    "trust policy statement {} has overlapping x509 trustedIdentities, {} overlaps with {}",
                    q(name),
                    q(raw_a),
                    q(raw_b)
                ));
            }
        }
    }
    Ok(Identities::Subjects(
        parsed.into_iter().map(|(_, dn)| dn).collect(),
    ))
}

/// notation-go `validateRegistryScopes`: each statement has scopes, `*` only alone, every
/// other scope valid ([`check_scope`]), and no scope in two statements (nor twice in one).
fn check_scopes(statements: &[json::RawStatement]) -> Result<(), String> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for statement in statements {
        let scopes = &statement.registry_scopes;
        if scopes.is_empty() {
            return Err(format!(
                "oci trust policy statement {} has zero registry scopes, it must specify registry scopes with at least one value",
                q(&statement.name)
            ));
        }
        if scopes.len() > 1 && scopes.iter().any(|s| s == "*") {
            return Err(format!(
                "oci trust policy statement {} uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values",
                q(&statement.name)
            ));
        }
        for scope in scopes {
            if scope != "*" {
                check_scope(scope)?;
            }
            let count = seen.entry(scope).or_insert(0);
            if *count == 0 {
                order.push(scope);
            }
            *count += 1;
        }
    }
    // notation-go reports one of the repeated scopes (in Go's map order); the first here.
    match order.iter().find(|s| seen.get(**s).is_some_and(|n| *n > 1)) {
        Some(scope) => Err(format!(
            "registry scope {} is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement",
            q(scope)
        )),
        None => Ok(()),
    }
}

/// notation-go `validateRegistryScopeFormat`: `domain/repository`, the domain and the
/// repository as the distribution reference grammar has them (notation-go's copy of it:
/// `domain-component ("." domain-component)* (":" port)?`, and `path-component ("/"
/// path-component)*`, a path component lower-case alphanumeric runs joined by `.`, `_`, `__`
/// or dashes), no `*`.
pub fn check_scope(scope: &str) -> Result<(), String> {
    const ENSURE: &str = "make sure it is a fully qualified repository without the scheme, protocol or tag. For example domain.com/my/repository or a local scope like local/myOCILayout";
    if scope.len() > 1 && scope.contains('*') {
        return Err(format!(
            "registry scope {} with wild card(s) is not valid, {ENSURE}",
            q(scope)
        ));
    }
    let valid = match scope.split_once('/') {
        Some((domain, repository)) => is_domain(domain) && is_repository(repository),
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "registry scope {} is not valid, {ENSURE}",
            q(scope)
        ))
    }
}

/// `domain-component ("." domain-component)* (":" [0-9]+)?`, a component alphanumeric with
/// inner dashes.
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    port_ok && host.split('.').all(component_ok)
}

/// `path-component ("/" path-component)*`.
fn is_repository(repository: &str) -> bool {
    repository.split('/').all(|component| {
        let b = component.as_bytes();
        let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if !matches!((b.first(), b.last()), (Some(f), Some(l)) if alnum(f) && alnum(l)) {
            return false;
        }
        // Every run of non-alphanumerics is one separator: ".", "_", "__", or dashes.
        b.split(alnum).all(|sep| {
            matches!(sep, [] | [b'.'] | [b'_'] | [b'_', b'_']) || sep.iter().all(|x| *x == b'-')
        })
    })
}

// === impl Statement ===

impl Statement {
    /// Whether the signing certificate `leaf` is one of the trusted identities.
    pub fn trusts_identity(&self, leaf: &X509Certificate<'_>) -> bool {
        self.check_identity(leaf).is_ok()
    }

    /// [`Statement::trusts_identity`] with notation-go's message when it does not
    /// (`verifyX509TrustedIdentities`, `specs/trust-store-trust-policy.md`, "Signature
    /// Verification", step "Validate Authenticity", its last two points): `*` trusts any
    /// leaf; else the leaf's subject, read as [`dn::subject_dn`] reads it, must have every
    /// attribute of one of the DNs with the same value (case-sensitive; only the leaf is
    /// compared). A subject notation-go cannot parse (such as one with an attribute Go does
    /// not name, or a value containing `=#`) matches nothing.
    pub fn check_identity(&self, leaf: &X509Certificate<'_>) -> Result<(), String> {
        let dns = match &self.identities {
            Identities::Any => return Ok(()),
            Identities::Subjects(dns) => dns,
        };
        if dns.is_empty() {
            return Err(format!(
                "no x509 trusted identities are configured in the trust policy {}",
                q(&self.name)
            ));
        }
        let subject = dn::subject_dn(leaf.subject()).map_err(|e| {
            format!(
                "error while parsing the certificate subject from the digital signature. error : {}",
                q(&e)
            )
        })?;
        if dns.iter().any(|dn| dn::is_subset(dn, &subject)) {
            return Ok(());
        }
        Err(format!(
            "signing certificate from the digital signature does not match the X.509 trusted identities {} defined in the trust policy {}",
            dn::go_quote_dns(dns),
            q(&self.name)
        ))
    }
}
