//! cosign keyless verification: a Fulcio certificate and an offline Rekor bundle on a
//! simple-signing layer (`sigstore/cosign: specs/SIGNATURE_SPEC.md`, annotations
//! `dev.sigstore.cosign/certificate`, `.../chain`, `.../bundle`).
//!
//! The checks follow cosign's `pkg/cosign/verify.go` (`verifyInternal`, `VerifyBundle`,
//! `VerifySET`, `CheckExpiry`, `TrustedCert`, `CheckCertificatePolicy`), offline: the Rekor
//! entry is trusted through its signed entry timestamp (SET), never fetched. Not checked:
//! embedded SCTs (cosign's `VerifyEmbeddedSCT`, which needs CT log keys), Rekor inclusion
//! proofs (legacy bundles carry none), RFC 3161 timestamps.

use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use base64::Engine as _;
use serde::Deserialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::CosignKey;
use crate::policy::{Identity, Matcher};
use crate::trust::root::{in_window, CertificateAuthority, Tlog, TrustedRoot};
use crate::trust::tlog::{self, RekorPayload};
use crate::trust::x509::{self, Pool};

pub use crate::trust::x509::pem_certificates;
/// Why the Fulcio roots file is not usable.
pub type RootsError = x509::PoolError;

/// Fulcio's OIDC issuer extension (DER UTF8String), and the legacy one (raw bytes).
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";

/// One rule's keyless trust: a sigstore trusted root (Fulcio authorities, Rekor logs, CT
/// logs, timestamp authorities, each with its window) and the signer identities.
pub struct Keyless {
    root: RootHandle,
    identities: Vec<CompiledIdentity>,
}

struct CompiledIdentity {
    issuer: CompiledMatcher,
    subject: CompiledMatcher,
}

enum CompiledMatcher {
    Exact(String),
    Regex(regex::Regex),
}

/// A rule's trusted root, shared with whoever keeps it current.
#[derive(Clone)]
pub struct RootHandle(Arc<RwLock<Arc<TrustedRoot>>>);

/// A [`RootHandle`] that does not keep the rule alive: a refresher stops once the rule (a
/// configuration reload replaced it) is gone.
pub struct WeakRootHandle(std::sync::Weak<RwLock<Arc<TrustedRoot>>>);

impl WeakRootHandle {
    pub fn upgrade(&self) -> Option<RootHandle> {
        self.0.upgrade().map(RootHandle)
    }
}

impl RootHandle {
    /// A handle that lets the rule go.
    pub fn downgrade(&self) -> WeakRootHandle {
        WeakRootHandle(Arc::downgrade(&self.0))
    }

    /// The trusted root now.
    pub fn get(&self) -> Arc<TrustedRoot> {
        match self.0.read() {
            Ok(root) => Arc::clone(&root),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the trusted root.
    pub fn set(&self, root: TrustedRoot) {
        let root = Arc::new(root);
        match self.0.write() {
            Ok(mut slot) => *slot = root,
            Err(poisoned) => *poisoned.into_inner() = root,
        }
    }
}

/// What a keyless signature layer carries.
#[derive(Debug, Clone, Copy)]
pub struct KeylessLayer<'a> {
    /// The payload bytes (hashed against the layer digest already).
    pub payload: &'a [u8],
    /// The signature, decoded from base64.
    pub signature: &'a [u8],
    /// `dev.sigstore.cosign/certificate`: the PEM leaf.
    pub certificate: &'a str,
    /// `dev.sigstore.cosign/chain`: PEM intermediates (and root), untrusted.
    pub chain: Option<&'a str>,
    /// `dev.sigstore.cosign/bundle`: the Rekor bundle JSON.
    pub bundle: Option<&'a str>,
}

/// A keyless signer that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessSigner {
    /// The indices of the identities its certificate matches (never empty).
    pub identities: Vec<usize>,
    /// Who it is: the certificate's OIDC issuer and its subject names, which alone decide
    /// the identities it matches. A threshold counts each principal once.
    pub principal: String,
}

/// Why a keyless signature does not count, in words for the refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeylessFailure {
    #[error("the certificate does not parse: {0}")]
    Certificate(String),
    #[error("there is no Rekor bundle (offline transparency-log proof) beside the certificate")]
    NoBundle,
    #[error(
        "the key signature has no Rekor bundle from a log of the rule's `keyless` trust root \
         (cosign verify requires one; `require_tlog: false` accepts the key alone)"
    )]
    KeyNotLogged,
    #[error("the Rekor bundle does not parse: {0}")]
    Bundle(String),
    #[error("the Rekor bundle is from log {0}, whose key is not trusted")]
    UnknownLog(String),
    #[error("the Rekor bundle's signed entry timestamp does not verify")]
    BadSet,
    #[error("the Rekor entry is for another {0}")]
    EntryMismatch(&'static str),
    #[error(
        "the Rekor entry's time {integrated} lies outside the certificate's validity \
         {not_before} .. {not_after}"
    )]
    OutsideValidity {
        integrated: String,
        not_before: String,
        not_after: String,
    },
    #[error("the certificate does not chain to a trusted Fulcio root for code signing: {0}")]
    Untrusted(String),
    #[error("the signature does not verify with the certificate's key")]
    BadSignature,
    #[error(
        "none of the trusted identities matched: subjects [{subjects}] with issuer {issuer:?}"
    )]
    NoIdentity { subjects: String, issuer: String },
}

#[derive(Deserialize)]
struct RawBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: RekorPayload,
}

/// A `hashedrekord` v0.0.1 entry body, the fields cosign compares.
#[derive(Deserialize)]
struct RawBody {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    spec: RawSpec,
}

#[derive(Deserialize)]
struct RawSpec {
    data: RawData,
    signature: RawSignature,
}

#[derive(Deserialize)]
struct RawData {
    hash: RawHash,
}

#[derive(Deserialize)]
struct RawHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct RawSignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: RawContent,
}

#[derive(Deserialize)]
struct RawContent {
    content: String,
}

// === impl Keyless ===

impl Keyless {
    /// `roots_pem` holds the trusted Fulcio certificates: self-signed ones become trust
    /// anchors, the others intermediates (as cosign's `SIGSTORE_ROOT_FILE` is read).
    ///
    /// The PEM form has no validity windows, CT logs or timestamp authorities: it is read
    /// as a trusted root whose authority and logs are valid at all times.
    pub fn new(
        roots_pem: &[u8],
        rekor: Vec<CosignKey>,
        identities: &[Identity],
    ) -> Result<Self, RootsError> {
        let pool = Pool::from_pem(roots_pem)?;
        let root = TrustedRoot {
            media_type: "PEM Fulcio roots and Rekor keys".to_owned(),
            tlogs: rekor
                .iter()
                .enumerate()
                .map(|(i, key)| Tlog {
                    base_url: format!("rekor key {} ({})", i + 1, key.id()),
                    origin: String::new(),
                    log_id: key.log_key().log_id().to_vec(),
                    checkpoint_key_id: None,
                    key_details: "PKIX_ECDSA_P256_SHA_256".to_owned(),
                    key: Ok(key.log_key().clone()),
                    valid_from: OffsetDateTime::UNIX_EPOCH,
                    valid_until: None,
                })
                .collect(),
            certificate_authorities: vec![CertificateAuthority {
                uri: "fulcio_roots".to_owned(),
                pool,
                valid_from: OffsetDateTime::UNIX_EPOCH,
                valid_until: None,
            }],
            ctlogs: Vec::new(),
            ctlogs_unsupported: 0,
            timestamp_authorities: Vec::new(),
            timestamp_authority_uris: Vec::new(),
        };
        Ok(Self::with_root(root, identities))
    }

    /// Keyless trust from a sigstore trusted root.
    pub fn with_root(root: TrustedRoot, identities: &[Identity]) -> Self {
        let identities = identities
            .iter()
            .map(|id| CompiledIdentity {
                issuer: CompiledMatcher::new(&id.issuer),
                subject: CompiledMatcher::new(&id.subject),
            })
            .collect();
        Keyless {
            root: RootHandle(Arc::new(RwLock::new(Arc::new(root)))),
            identities,
        }
    }

    /// The trusted root, as it is now.
    pub fn root(&self) -> Arc<TrustedRoot> {
        self.root.get()
    }

    /// A handle that replaces the trusted root (a TUF refresh) for every later check.
    pub fn root_handle(&self) -> RootHandle {
        self.root.clone()
    }

    /// How many identities there are (each counts once towards a threshold).
    pub fn identities(&self) -> usize {
        self.identities.len()
    }

    /// Verifies one keyless signature layer; on success, who signed it and the identities
    /// its certificate matches.
    pub fn verify(&self, layer: &KeylessLayer<'_>) -> Result<KeylessSigner, KeylessFailure> {
        let leaf_der = first_pem_certificate(layer.certificate.as_bytes())
            .ok_or_else(|| KeylessFailure::Certificate("no PEM CERTIFICATE".to_owned()))?;

        // cosign `VerifyBundle`: an offline proof that the signature was logged, and when.
        let bundle = layer.bundle.ok_or(KeylessFailure::NoBundle)?;
        let (logged_key, integrated_time) =
            self.logged_entry(bundle, layer.payload, layer.signature)?;
        let logged_cert = first_pem_certificate(&logged_key);
        if logged_cert.as_deref() != Some(leaf_der.as_slice()) {
            return Err(KeylessFailure::EntryMismatch("certificate"));
        }

        let chain: Vec<Vec<u8>> = layer
            .chain
            .map(|c| pem_certificates(c.as_bytes()))
            .unwrap_or_default();
        self.verify_signer(
            &leaf_der,
            &chain,
            integrated_time,
            layer.payload,
            layer.signature,
        )
    }

    /// A key-signed layer's Rekor bundle (`dev.sigstore.cosign/bundle`), as `cosign verify
    /// --key` requires one unless `--insecure-ignore-tlog`: the SET verifies under a log of
    /// the trusted root, and the entry logged this payload, this signature and this key.
    pub fn verify_key_bundle(
        &self,
        bundle: &str,
        payload: &[u8],
        signature: &[u8],
        key: &CosignKey,
    ) -> Result<(), KeylessFailure> {
        let (logged_key, _) = self.logged_entry(bundle, payload, signature)?;
        let logged = x509_parser::pem::parse_x509_pem(&logged_key)
            .ok()
            .map(|(_, pem)| pem.contents);
        if logged.as_deref() != Some(key.spki_der()) {
            return Err(KeylessFailure::EntryMismatch("public key"));
        }
        Ok(())
    }

    /// cosign `VerifyBundle`, `compareSigs`, `bundleHash`: the SET of a legacy Rekor bundle
    /// verifies, and the (now authenticated) `hashedrekord` 0.0.1 entry is about this
    /// signature and this payload. Returns the PEM the entry logged as the signer (a
    /// certificate or a public key) and the integrated time.
    fn logged_entry(
        &self,
        bundle: &str,
        payload: &[u8],
        signature: &[u8],
    ) -> Result<(Vec<u8>, i64), KeylessFailure> {
        let bundle: RawBundle =
            serde_json::from_str(bundle).map_err(|e| KeylessFailure::Bundle(e.to_string()))?;
        let entry = &bundle.payload;
        let set = b64(&bundle.set).ok_or(KeylessFailure::BadSet)?;
        self.verify_set(entry, &set)?;
        let body = b64(&entry.body)
            .ok_or_else(|| KeylessFailure::Bundle("the entry body is not base64".to_owned()))?;
        let body: RawBody =
            serde_json::from_slice(&body).map_err(|e| KeylessFailure::Bundle(e.to_string()))?;
        if body.kind != "hashedrekord" || body.api_version != "0.0.1" {
            return Err(KeylessFailure::Bundle(format!(
                "entry kind {} {} is not supported (hashedrekord 0.0.1 is)",
                body.kind, body.api_version
            )));
        }
        if b64(&body.spec.signature.content).as_deref() != Some(signature) {
            return Err(KeylessFailure::EntryMismatch("signature"));
        }
        let payload_hash = hex::encode(digest::digest(&digest::SHA256, payload));
        let hash = &body.spec.data.hash;
        if hash.algorithm != "sha256" || !hash.value.eq_ignore_ascii_case(&payload_hash) {
            return Err(KeylessFailure::EntryMismatch("payload"));
        }
        let logged = b64(&body.spec.signature.public_key.content).ok_or_else(|| {
            KeylessFailure::Bundle("the entry's public key is not base64".to_owned())
        })?;
        Ok((logged, entry.integrated_time))
    }

    /// cosign `VerifySET`: the log key is the one whose ID the entry names; the SET is
    /// checked by [`tlog::verify_set`], and the log must have been trusted (its window in
    /// the trusted root) at the integrated time.
    fn verify_set(&self, payload: &RekorPayload, set: &[u8]) -> Result<(), KeylessFailure> {
        let root = self.root();
        let log = hex::decode(&payload.log_id)
            .ok()
            .and_then(|id| root.tlog(&id))
            .ok_or_else(|| KeylessFailure::UnknownLog(payload.log_id.clone()))?;
        let key = log
            .key
            .as_ref()
            .map_err(|_| KeylessFailure::UnknownLog(payload.log_id.clone()))?;
        if !tlog::verify_set(key, payload, set) {
            return Err(KeylessFailure::BadSet);
        }
        let at = OffsetDateTime::from_unix_timestamp(payload.integrated_time).map_err(|_| {
            KeylessFailure::Bundle("the integrated time is out of range".to_owned())
        })?;
        if !in_window(at, log.valid_from, log.valid_until) {
            return Err(KeylessFailure::Bundle(format!(
                "the entry's integrated time {} is outside the window of {} in the trusted root",
                rfc3339(payload.integrated_time),
                log.base_url
            )));
        }
        Ok(())
    }

    /// cosign `CheckCertificatePolicy`: an identity matches when its issuer matches the
    /// Fulcio issuer extension and its subject one of the SANs. Returns the identities the
    /// certificate matches (never empty) and who it is.
    pub(super) fn match_identities(
        &self,
        issuer: Option<&str>,
        sans: Vec<String>,
    ) -> Result<KeylessSigner, KeylessFailure> {
        let issuer = issuer.unwrap_or_default().to_owned();
        let matched: Vec<usize> = self
            .identities
            .iter()
            .enumerate()
            .filter(|(_, id)| {
                id.issuer.matches(&issuer) && sans.iter().any(|san| id.subject.matches(san))
            })
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            return Err(KeylessFailure::NoIdentity {
                subjects: sans.join(", "),
                issuer,
            });
        }
        let mut names = sans;
        names.sort_unstable();
        names.dedup();
        Ok(KeylessSigner {
            identities: matched,
            principal: serde_json::json!([issuer, names]).to_string(),
        })
    }

    /// The checks on the signer once the log entry is known to be about this signature:
    /// the certificate's validity at the log's (authenticated) time `at`, its chain, the
    /// signature over `message` with its key, and the identities it matches (never empty).
    /// `chain` holds DER candidate intermediates offered by the signer (untrusted).
    fn verify_signer(
        &self,
        leaf_der: &[u8],
        chain: &[Vec<u8>],
        at: i64,
        message: &[u8],
        signature: &[u8],
    ) -> Result<KeylessSigner, KeylessFailure> {
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| KeylessFailure::Certificate(e.to_string()))?;

        // cosign `CheckExpiry`: the certificate lives minutes; what matters is that it was
        // valid when the log integrated the entry, not now.
        let validity = leaf.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        if at < not_before || at > not_after {
            return Err(KeylessFailure::OutsideValidity {
                integrated: rfc3339(at),
                not_before: rfc3339(not_before),
                not_after: rfc3339(not_after),
            });
        }

        // cosign `TrustedCert` (+ `CheckExpiry` of the issuing chain): a path to a trusted
        // Fulcio root, every certificate valid at the integrated time, code signing allowed
        // along the path (an EKU, where present, must include it), and required on the leaf.
        self.check_chain(leaf_der, chain, at)?;
        if !x509::is_code_signing(&leaf) {
            return Err(KeylessFailure::Untrusted(
                "the certificate is not for code signing".to_owned(),
            ));
        }

        // cosign `verifyInternal`: the signature over the signed bytes, with the leaf's key.
        if !x509::ecdsa_sha256_verifies(&leaf, message, signature) {
            return Err(KeylessFailure::BadSignature);
        }

        self.match_identities(oidc_issuer(&leaf).as_deref(), x509::subject_names(&leaf))
    }

    /// A path to a certificate authority of the trusted root whose window contains `at`.
    fn check_chain(
        &self,
        leaf_der: &[u8],
        chain: &[Vec<u8>],
        at: i64,
    ) -> Result<(), KeylessFailure> {
        let when = OffsetDateTime::from_unix_timestamp(at)
            .map_err(|_| KeylessFailure::Untrusted("the time is out of range".to_owned()))?;
        let mut last = KeylessFailure::Untrusted(format!(
            "no certificate authority of the trusted root was valid at {}",
            rfc3339(at)
        ));
        let root = self.root();
        for ca in &root.certificate_authorities {
            if !in_window(when, ca.valid_from, ca.valid_until) {
                continue;
            }
            // The chain annotation only offers candidate intermediates; trust comes from
            // the authority alone.
            match ca.pool.verify(leaf_der, chain, at, x509::EKU_CODE_SIGNING) {
                Ok(_) => return Ok(()),
                Err(x509::ChainError::Certificate(e)) => {
                    return Err(KeylessFailure::Certificate(e))
                }
                Err(x509::ChainError::Untrusted(e)) => last = KeylessFailure::Untrusted(e),
            }
        }
        Err(last)
    }
}

// === impl CompiledMatcher ===

impl CompiledMatcher {
    /// The policy checked that regexes compile; one that somehow does not matches nothing.
    fn new(m: &Matcher) -> Self {
        match m {
            Matcher::Exact(s) => CompiledMatcher::Exact(s.clone()),
            Matcher::Regex(r) => match regex::Regex::new(r) {
                Ok(re) => CompiledMatcher::Regex(re),
                Err(_) => CompiledMatcher::Regex(regex::Regex::new("[^\\s\\S]").expect("valid")),
            },
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            CompiledMatcher::Exact(s) => s == value,
            CompiledMatcher::Regex(re) => re.is_match(value),
        }
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

fn first_pem_certificate(pem: &[u8]) -> Option<Vec<u8>> {
    pem_certificates(pem).into_iter().next()
}

/// The OIDC issuer Fulcio recorded: the v2 extension (a DER UTF8String), else the legacy one
/// (raw bytes), as cosign's `CertExtensions.GetIssuer` reads them.
pub fn oidc_issuer(cert: &X509Certificate<'_>) -> Option<String> {
    if let Some(value) = x509::extension(cert, OID_ISSUER_V2) {
        return x509::der_utf8_string(value).map(str::to_owned);
    }
    x509::extension(cert, OID_ISSUER_V1)
        .and_then(|v| std::str::from_utf8(v).ok().map(str::to_owned))
}

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}
