//! notation's trust policy document (`specs/trust-store-trust-policy.md`, "Trust Policy";
//! notation-go `verifier/trustpolicy`), OCI flavour: `trustpolicy.oci.json`, or the older
//! `trustpolicy.json`, read unchanged and validated as notation-go validates it.

use std::path::Path;

use x509_parser::prelude::X509Certificate;

use super::store::StoreKind;

/// Largest trust policy document read.
pub const MAX_POLICY_SIZE: u64 = 1024 * 1024;

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
    /// `Identities::Subjects(vec![])` only for a `skip` statement that names none.
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

impl TrustPolicy {
    /// Parses and validates a document.
    pub fn from_json(bytes: &[u8]) -> Result<TrustPolicy, PolicyError> {
        let _ = bytes;
        Err(PolicyError("not implemented".into()))
    }

    /// Reads `path`: a trust policy file, or a notation configuration directory, where
    /// `trustpolicy.oci.json` is read, else `trustpolicy.json`.
    pub fn load(path: &Path) -> Result<TrustPolicy, PolicyError> {
        let _ = path;
        Err(PolicyError("not implemented".into()))
    }

    /// The statement for `scope` (`host[:port]/repository`): the one naming it exactly, else
    /// the `*` one. `Err` names the artifact: `artifact "<reference>" has no applicable oci trust policy statement`.
    pub fn statement_for(&self, scope: &str) -> Option<&Statement> {
        let _ = scope;
        None
    }
}

impl Statement {
    /// Whether the signing certificate `leaf` is one of the trusted identities.
    pub fn trusts_identity(&self, leaf: &X509Certificate<'_>) -> bool {
        let _ = leaf;
        false
    }
}
