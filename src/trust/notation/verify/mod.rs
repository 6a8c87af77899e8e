//! The verification of one Notation signature, in notation-go's order
//! (`verifier/verifier.go` `Verify` and `processSignature`; `specs/trust-store-trust-policy.md`,
//! "Signature Verification details" and "Signature Verification", "Steps"):
//!
//! 1. integrity: the envelope parses and its signature verifies ([`Envelope::parse`]), and
//!    its `x5c` chain meets the certificate requirements (`chain::validate`, as
//!    notation-core-go's envelope `Verify` checks them): enforced at every level;
//! 2. the verification plugin the envelope names: trustgate runs none, so such an envelope
//!    fails, as notation-go fails without the plugin installed; so does one with critical
//!    extended attributes only a plugin could process (the spec's rule; notation-go ignores
//!    them when no plugin is named);
//! 3. authenticity: a certificate of the chain is one of the trust stores of the statement
//!    whose type the signing scheme selects; then the trusted identities;
//! 4. expiry;
//! 5. authentic timestamp (`stamp`): the authentic signing time, an RFC 3161
//!    countersignature, or the chain's validity now;
//! 6. revocation of the signing chain;
//! 7. the payload's target descriptor is the image's (every level, audit included).
//!
//! Each of 3 to 6 is enforced or logged as the statement's level and overrides say
//! ([`Actions`](super::policy::Actions)); a logged failure becomes a [`Finding`] in [`Verified::logged`] and the next
//! check runs. Messages are notation-go's, subjects and times written as Go writes them.
//!
//! Where trustgate departs from notation-go (each fails closed or is the spec's rule):
//! - **The TSA chain's revocation** is checked with the revocation checker
//!   ([`Purpose::Timestamping`]) under the statement's *revocation* action, a failure
//!   reported as a revocation failure. notation-go checks it online inside the
//!   authentic-timestamp step (its action), so offline every timestamped signature fails
//!   there ("revocation status is unknown"); here `revocation: log` logs that and `skip`
//!   skips it, and a timestamped signature verifies offline (README T01, T05).
//! - **Critical extended attributes** fail the envelope at every level without a plugin
//!   (notation-go ignores them when the envelope names no plugin; the spec says a verifier
//!   MUST fail on a critical attribute it does not understand). An envelope naming a
//!   verification plugin fails, as notation-go fails without the plugin installed.
//! - **Leaf EKU**: anyExtendedKeyUsage is refused as the spec says, besides
//!   notation-core-go's list (serverAuth, clientAuth, emailProtection, timeStamping,
//!   OCSPSigning); id-kp-codeSigning is allowed, not required (spec: "MAY contain").
//! - **Key sizes** are notation-core-go's (`ExtractKeySpec`: RSA 2048/3072/4096, EC
//!   P-256/384/521, on the leaf), stricter than the spec's "2048 bits or higher".
//! - The revocation of a chain no trust store anchors (its authenticity failure only
//!   logged, under `audit`) is checked without fetching: its OCSP and CRL URLs are its
//!   signer's choice, so they are not fetched (notation-go fetches them). A certificate
//!   naming none is non-revokable, as in notation-go (README N10); one naming some has an
//!   unknown status, which the revocation action logs (`audit`) or enforces.
//! - Unknown revocation statuses carry their reason, and a descriptor mismatch names both
//!   descriptors, after notation-go's words.

mod chain;
mod stamp;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, path::Path, sync::Arc};

use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use super::{
    envelope::{Envelope, EnvelopeError, SigningScheme, Target},
    policy::{Action, Level, Statement, StoreRef, TrustPolicy},
    revocation::{Checker, Purpose, Status},
    store::{StoreError, StoreKind, TrustStore},
};
use crate::trust::timestamp::Authority;

use super::policy::dn::go_quote as q;
pub use chain::rfc1123z;

/// A check of the verification, as notation names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The trust policy (or a store it names) could not be used.
    Policy,
    Integrity,
    /// The envelope needs a verification plugin (trustgate runs none), or carries critical
    /// extended attributes only a plugin could process.
    Plugin,
    Authenticity,
    Expiry,
    AuthenticTimestamp,
    Revocation,
    /// The payload's target descriptor is not the image's.
    Descriptor,
    /// The payload's annotations lack metadata the caller requires.
    UserMetadata,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Policy => "trust policy",
            Check::Integrity => "integrity",
            Check::Plugin => "verification plugin",
            Check::Authenticity => "authenticity",
            Check::Expiry => "expiry",
            Check::AuthenticTimestamp => "authentic timestamp",
            Check::Revocation => "revocation",
            Check::Descriptor => "target descriptor",
            Check::UserMetadata => "user metadata",
        }
    }
}

/// A check that failed (enforced), or that failed and was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub message: String,
}

impl Finding {
    fn new(check: Check, message: impl Into<String>) -> Finding {
        Finding {
            check,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.check.as_str(), self.message)
    }
}

/// A signature that verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The statement it verified under.
    pub statement: String,
    /// The signing certificate's subject (RFC 4514, as Go writes it), or empty under `skip`.
    pub signer: String,
    /// Failed checks the statement only logs.
    pub logged: Vec<Finding>,
    /// The payload's target descriptor (with its annotations, the user metadata); `None`
    /// under `skip`, where no signature is read.
    pub target: Option<Target>,
}

impl Verified {
    /// The verdict of a `skip` statement: nothing was read or checked.
    pub fn skipped(statement: &Statement) -> Verified {
        Verified {
            statement: statement.name.clone(),
            signer: String::new(),
            logged: Vec::new(),
            target: None,
        }
    }

    /// notation-go `verifyUserMetadata` on the verified payload; nothing to check under `skip`.
    pub fn user_metadata(&self, wanted: &BTreeMap<String, String>) -> Result<(), Finding> {
        match &self.target {
            Some(target) => verify_user_metadata(target, wanted),
            None => Ok(()),
        }
    }
}

/// notation-go `verifyUserMetadata` (spec "Steps": "verify the user provided metadata ...
/// match the signed attributes"): every `wanted` key is an annotation of the payload's
/// target with exactly that value.
pub fn verify_user_metadata(
    target: &Target,
    wanted: &BTreeMap<String, String>,
) -> Result<(), Finding> {
    for (key, value) in wanted {
        if target.annotations.get(key) != Some(value) {
            return Err(Finding::new(
                Check::UserMetadata,
                format!("unable to find specified metadata in the signature: {key}={value} is not present"),
            ));
        }
    }
    Ok(())
}

/// Whether `statement` skips verification (level `skip`): notation-go `Verify` returns
/// before reading any signature, and the caller need not fetch one.
pub fn skips(statement: &Statement) -> bool {
    statement.level == Level::Skip
}

/// The image a signature must be for: its manifest's descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub media_type: &'a str,
    pub digest: &'a str,
    pub size: u64,
}

/// A trust store's certificates (DER), or why it did not load.
type Loaded = Result<Arc<[Vec<u8>]>, StoreError>;

/// A trust policy with its trust stores loaded, and a revocation checker.
pub struct Trust {
    pub policy: TrustPolicy,
    stores: BTreeMap<StoreRef, Loaded>,
    /// For each `tsa` store that loaded, one timestamp authority per root it holds (its pool
    /// made once, here).
    authorities: BTreeMap<StoreRef, Arc<[Authority]>>,
    pub revocation: Checker,
}

// === impl Trust ===

impl Trust {
    /// Loads every store the policy names from `store` (errors kept, reported when a
    /// statement that names the store is used).
    pub fn new(policy: TrustPolicy, store: &Path, revocation: Checker) -> Trust {
        let store = TrustStore::new(store);
        let mut stores: BTreeMap<StoreRef, Loaded> = BTreeMap::new();
        for statement in &policy.statements {
            for r in &statement.trust_stores {
                stores
                    .entry(r.clone())
                    .or_insert_with(|| store.certificates(r.kind, &r.name).map(Arc::from));
            }
        }
        Trust::from_stores(policy, stores, revocation)
    }

    /// A trust of loaded stores; each `tsa` store's roots made timestamp authorities.
    fn from_stores(
        policy: TrustPolicy,
        stores: BTreeMap<StoreRef, Loaded>,
        revocation: Checker,
    ) -> Trust {
        let authorities = stores
            .iter()
            .filter(|(r, _)| r.kind == StoreKind::Tsa)
            .filter_map(|(r, certs)| {
                let certs = certs.as_ref().ok()?;
                let authorities: Vec<Authority> = certs
                    .iter()
                    .map(|root| Authority::new(vec![root.clone()], None, None))
                    .collect();
                Some((r.clone(), Arc::from(authorities)))
            })
            .collect();
        Trust {
            policy,
            stores,
            authorities,
            revocation,
        }
    }

    /// The trust stores the policy names that did not load, and why (`<type>:<name>`), for
    /// the operator to see at start; each still fails the statements naming it.
    pub fn store_failures(&self) -> Vec<(String, String)> {
        self.stores
            .iter()
            .filter_map(|(r, loaded)| {
                let e = loaded.as_ref().err()?;
                Some((format!("{}:{}", r.kind.as_str(), r.name), e.to_string()))
            })
            .collect()
    }

    /// The statement for `scope` (`host[:port]/repository`), or the policy failure naming
    /// `reference`.
    pub fn statement(&self, scope: &str, reference: &str) -> Result<&Statement, Finding> {
        self.policy.statement_for(scope).ok_or_else(|| Finding {
            check: Check::Policy,
            message: format!(
                "artifact {} has no applicable oci trust policy statement",
                q(reference)
            ),
        })
    }

    /// Verifies one envelope under `statement` for `subject` at `now`, in notation-go's
    /// order (`verifier.go` `Verify`, `processSignature`); `Err` is the first enforced
    /// failure, naming its check.
    pub async fn verify(
        &self,
        statement: &Statement,
        media_type: &str,
        envelope: &[u8],
        subject: Subject<'_>,
        now: OffsetDateTime,
    ) -> Result<Verified, Finding> {
        // Spec "Steps" 2.1: a `skip` statement succeeds without verifying anything.
        if skips(statement) {
            return Ok(Verified::skipped(statement));
        }
        // 1. Integrity (`verifyIntegrity`): enforced at every level.
        let envelope = Envelope::parse(media_type, envelope).map_err(integrity)?;
        self.verify_envelope(statement, envelope, subject, now)
            .await
    }

    /// [`Trust::verify`] from its integrity step's chain check on, for an envelope whose
    /// signature verified.
    async fn verify_envelope(
        &self,
        statement: &Statement,
        envelope: Envelope,
        subject: Subject<'_>,
        now: OffsetDateTime,
    ) -> Result<Verified, Finding> {
        let actions = statement.actions;
        let mut run = Run::default();
        chain::validate(&envelope.chain, chain::Usage::CodeSigning).map_err(|e| {
            Finding::new(
                Check::Integrity,
                format!("certificate-chain is invalid, {e}"),
            )
        })?;
        let certs = chain::parse(&envelope.chain).map_err(|e| {
            Finding::new(
                Check::Integrity,
                format!("certificate-chain is invalid, {e}"),
            )
        })?;
        let leaf = certs.first().ok_or_else(|| {
            Finding::new(
                Check::Integrity,
                "certificate-chain not present or is empty",
            )
        })?;

        // 2. The verification plugin (`getVerificationPlugin`, `pluginManager.Get`), and the
        // critical attributes only a plugin could process.
        plugin(&envelope)?;
        critical_extended(&envelope)?;

        // 3. Authenticity (`loadX509TrustStores`, `verifyAuthenticity`), then the trusted
        // identities (`verifyX509TrustedIdentities`), both under the authenticity action.
        let kind = match envelope.scheme {
            SigningScheme::X509 => StoreKind::Ca,
            SigningScheme::SigningAuthority => StoreKind::SigningAuthority,
        };
        let authenticity = match self.certificates(statement, kind) {
            Err(e) => Some(e),
            Ok(trusted) if trusted.is_empty() => {
                Some("no trusted certificates are found to verify authenticity".to_owned())
            }
            // signature.VerifyAuthenticity: byte-equal DER, any certificate of the chain.
            Ok(trusted) => (!envelope.chain.iter().any(|c| trusted.contains(c))).then(|| {
                "the signature's certificate chain does not contain any trusted certificate"
                    .to_owned()
            }),
        };
        // A chain no trust store anchors names URLs its signer chose: its revocation is not
        // fetched (step 6), whatever the level lets through.
        let anchored = authenticity.is_none();
        run.check(Check::Authenticity, actions.authenticity, authenticity)?;
        run.check(
            Check::Authenticity,
            actions.authenticity,
            identity(statement, leaf),
        )?;

        // 4. Expiry (`verifyExpiry`): expired from the expiry time on.
        let expired = envelope
            .expiry
            .filter(|expiry| now >= *expiry)
            .map(|expiry| format!("digital signature has expired on {}", q(&rfc1123z(expiry))));
        run.check(Check::Expiry, actions.expiry, expired)?;

        // 5. Authentic timestamp (`verifyAuthenticTimestamp`).
        let stamped = stamp::check(self, statement, &envelope, &certs, now);
        let tsa_chain = match stamped {
            Ok(chain) => chain,
            Err(e) => {
                run.check(
                    Check::AuthenticTimestamp,
                    actions.authentic_timestamp,
                    Some(e),
                )?;
                None
            }
        };
        // The TSA chain's revocation (`verifyTimestamp` step 5): notation-go checks it inside
        // the authentic-timestamp step, online; trustgate checks it with the revocation
        // checker under the statement's revocation action (so `log` or `skip` lets a
        // timestamped signature verify offline).
        if let Some(tsa_chain) = tsa_chain {
            if actions.revocation != Action::Skip {
                let statuses = self
                    .revocation
                    .check(&tsa_chain, Purpose::Timestamping, None)
                    .await;
                let failure = revocation_failure(&statuses, &tsa_chain, "timestamping");
                run.check(Check::Revocation, actions.revocation, failure)?;
            }
        }

        // 6. Revocation (`verifyRevocation`), unless skipped; the authentic signing time
        // only under the signingAuthority scheme. A chain no trust store anchors (its
        // authenticity failure logged, under `audit`) is checked without fetching: its OCSP
        // and CRL URLs are its signer's choice (notation-go fetches them), so a certificate
        // naming some has an unknown status, one naming none is non-revokable.
        if actions.revocation != Action::Skip {
            let signing_time = match envelope.scheme {
                SigningScheme::SigningAuthority => envelope.authentic_signing_time,
                SigningScheme::X509 => None,
            };
            let checker = match anchored {
                true => self.revocation.clone(),
                false => self.revocation.unanchored(),
            };
            let statuses = checker
                .check(&envelope.chain, Purpose::CodeSigning, signing_time)
                .await;
            let failure = revocation_failure(&statuses, &envelope.chain, "signing");
            run.check(Check::Revocation, actions.revocation, failure)?;
        }

        // 7. The target descriptor (`Verify`: `content.Equal`): media type, digest and size,
        // at every level.
        let target = &envelope.target;
        let same = target.media_type == subject.media_type
            && target.digest == subject.digest
            && i64::try_from(subject.size).is_ok_and(|size| size == target.size);
        if !same {
            return Err(Finding::new(
                Check::Descriptor,
                format!(
                    "content descriptor mismatch: the signature is for {} {} ({} bytes), not {} {} ({} bytes)",
                    target.media_type,
                    target.digest,
                    target.size,
                    subject.media_type,
                    subject.digest,
                    subject.size
                ),
            ));
        }

        Ok(Verified {
            statement: statement.name.clone(),
            signer: chain::subject(leaf),
            logged: run.logged,
            target: Some(envelope.target),
        })
    }

    /// notation-go `loadX509TrustStoresWithType`: the certificates of every store of `kind`
    /// the statement names, in its order, each once; the first store that failed to load
    /// fails them all.
    fn certificates(&self, statement: &Statement, kind: StoreKind) -> Result<Vec<Vec<u8>>, String> {
        let mut seen: Vec<&StoreRef> = Vec::new();
        let mut certs = Vec::new();
        for r in statement.trust_stores.iter().filter(|r| r.kind == kind) {
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            match self.stores.get(r) {
                Some(Ok(loaded)) => certs.extend(loaded.iter().cloned()),
                Some(Err(e)) => return Err(e.to_string()),
                None => {
                    return Err(format!(
                        "the trust store {} of type {} was not loaded (the statement is not of this trust policy)",
                        q(&r.name),
                        q(r.kind.as_str())
                    ))
                }
            }
        }
        Ok(certs)
    }

    /// The timestamp authorities of every `tsa` store the statement names; `Err` as
    /// [`Trust::certificates`].
    fn authorities(&self, statement: &Statement) -> Result<Vec<Authority>, String> {
        self.certificates(statement, StoreKind::Tsa)?;
        let mut seen: Vec<&StoreRef> = Vec::new();
        let mut authorities = Vec::new();
        for r in statement
            .trust_stores
            .iter()
            .filter(|r| r.kind == StoreKind::Tsa)
        {
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            if let Some(a) = self.authorities.get(r) {
                authorities.extend(a.iter().cloned());
            }
        }
        Ok(authorities)
    }
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("policy", &self.policy)
            .field("stores", &self.stores.len())
            .field("revocation", &self.revocation)
            .finish()
    }
}

/// The checks' outcomes so far: the logged failures (`isCriticalFailure` decides the rest).
#[derive(Default)]
struct Run {
    logged: Vec<Finding>,
}

impl Run {
    /// A check's outcome under `action`: a failure is returned when enforced, kept when
    /// logged (`logVerificationResult`), ignored when the check is skipped.
    fn check(
        &mut self,
        check: Check,
        action: Action,
        failure: Option<String>,
    ) -> Result<(), Finding> {
        let Some(message) = failure else {
            return Ok(());
        };
        match action {
            Action::Enforce => Err(Finding::new(check, message)),
            Action::Log => {
                tracing::warn!(check = check.as_str(), reason = %message, "notation: a logged check failed");
                self.logged.push(Finding::new(check, message));
                Ok(())
            }
            Action::Skip => Ok(()),
        }
    }
}

/// `verifyIntegrity`: a parse failure, or an integrity failure as notation-core-go words it.
fn integrity(e: EnvelopeError) -> Finding {
    let message = match e {
        EnvelopeError::Invalid(_) => e.to_string(),
        _ => format!("unable to parse the digital signature, error : {e}"),
    };
    Finding::new(Check::Integrity, message)
}

/// notation-go `processSignature`'s plugin lookup: an envelope naming a verification plugin
/// (a critical `io.cncf.notary.verificationPlugin`) needs it, and trustgate runs none, so
/// such an envelope fails at every level, as notation-go fails when the plugin is not
/// installed (fail closed: the plugin's checks cannot be skipped).
fn plugin(envelope: &Envelope) -> Result<(), Finding> {
    let Some(name) = &envelope.verification_plugin else {
        return Ok(());
    };
    if name.trim().is_empty() {
        return Err(Finding::new(
            Check::Plugin,
            "io.cncf.notary.verificationPlugin from extended attribute is an empty string",
        ));
    }
    if let Some(min) = &envelope.plugin_min_version {
        if min.trim().is_empty() || !is_semver(min) {
            return Err(Finding::new(
                Check::Plugin,
                "error while getting plugin minimum version, error: io.cncf.notary.verificationPluginMinVersion from extended attribute is not a valid SemVer",
            ));
        }
    }
    Err(Finding::new(
        Check::Plugin,
        format!(
            "error while locating the verification plugin {}, make sure the plugin is installed successfully before verifying the signature. error: trustgate runs no verification plugins",
            q(name)
        ),
    ))
}

/// Critical extended attributes (other than the plugin ones): only a verification plugin
/// could process them (notation-go `processPluginResponse`: "all extended critical
/// attributes must be processed by the verification plugin"), and trustgate runs none.
/// notation-go ignores them when the envelope names no plugin; the spec
/// (`signature-specification.md`, "Extended attributes") says a critical attribute the
/// verifier does not understand MUST fail verification, and trustgate follows the spec:
/// the envelope fails at every level.
fn critical_extended(envelope: &Envelope) -> Result<(), Finding> {
    match envelope.critical_extended.first() {
        None => Ok(()),
        Some(first) => Err(Finding::new(
            Check::Plugin,
            format!(
                "extended critical attribute {} cannot be processed: trustgate runs no verification plugins, and all extended critical attributes must be processed",
                q(first)
            ),
        )),
    }
}

/// notation-go `internal/semver.IsValid`: SemVer 2.0.0 (semver.org's regular expression,
/// ASCII digits), without a leading `v`.
fn is_semver(version: &str) -> bool {
    static SEMVER: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    SEMVER
        .get_or_init(|| {
            regex::Regex::new(
                r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
            )
            .ok()
        })
        .as_ref()
        .is_some_and(|re| re.is_match(version))
}

/// notation-go `verifyX509TrustedIdentities` ([`Statement::check_identity`]): `*` trusts
/// any signer; otherwise the leaf's subject must hold every attribute of one `x509.subject`
/// DN.
fn identity(statement: &Statement, leaf: &X509Certificate<'_>) -> Option<String> {
    statement.check_identity(leaf).err()
}

/// notation-go `revocationFinalResult` and its messages: `None` when every certificate is
/// OK or non-revokable; else the revoked certificate nearest the leaf, or else the unknown
/// one nearest the leaf, named by subject (`role` is `signing` or `timestamping`). A status
/// missing for a certificate counts as unknown.
fn revocation_failure(statuses: &[Status], chain: &[Vec<u8>], role: &str) -> Option<String> {
    let mut revoked: Option<usize> = None;
    let mut unknown: Option<(usize, &str)> = None;
    for i in (0..chain.len()).rev() {
        match statuses.get(i) {
            Some(Status::Ok | Status::NonRevokable) => {}
            Some(Status::Revoked(_)) => revoked = Some(i),
            Some(Status::Unknown(why)) => unknown = Some((i, why.as_str())),
            None => unknown = Some((i, "no status was returned")),
        }
    }
    let who = |index: usize| {
        chain
            .get(index)
            .and_then(|der| {
                use x509_parser::prelude::FromDer;
                X509Certificate::from_der(der)
                    .ok()
                    .map(|(_, c)| chain::subject(&c))
            })
            .unwrap_or_else(|| format!("certificate #{}", index + 1))
    };
    match (revoked, unknown) {
        (Some(i), _) => Some(format!(
            "{role} certificate with subject {} is revoked",
            q(&who(i))
        )),
        // notation-go logs each server's error; the reason follows here.
        (None, Some((i, why))) => Some(format!(
            "{role} certificate with subject {} revocation status is unknown ({why})",
            q(&who(i))
        )),
        (None, None) => None,
    }
}
