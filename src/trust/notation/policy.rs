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
//! (see the `json` module); a DN value whose `\XX` escapes do not make UTF-8 is invalid; the
//! store names `.` and `..` are invalid.

use std::io;
use std::path::Path;

use x509_parser::prelude::X509Certificate;

use super::store::{read_regular_file, ReadError, StoreKind};

pub mod dn;
mod json;
#[cfg(test)]
mod tests;
mod validate;

use dn::go_quote as q;
pub use validate::check_scope;
use validate::validate;

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
