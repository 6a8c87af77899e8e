//! Trust: verifiers that turn a tag into a signed digest, and say which digests a repository
//! signs.
//!
//! A [`Verifier`] answers for one image repository under the requirements of a policy rule.
//! Notary v1 (Docker Content Trust) is the first one (`notary`, wrapped with caching in
//! [`cached::CachedNotary`]); cosign ([`cosign::CosignVerifier`], key-based and keyless, `.sig`
//! tags and sigstore bundles found through OCI referrers) sits
//! beside it, Notation ([`notation::NotationVerifier`]) the third; [`all::AllOf`] requires
//! several, [`any::AnyOf`] any one of them.
//! [`referrers`] is OCI referrers discovery for the verifiers whose signatures are referrers
//! of the image (cosign's sigstore bundles, Notation's signatures): the referrers API and its
//! tag fallback, bounded, each referrer manifest checked against its descriptor and subject.
//! [`tlog`] holds the transparency-log proofs (Merkle inclusion, signed checkpoints, Rekor
//! signed entry timestamps) a verifier trusting a log checks.

pub mod all;
pub mod any;
pub mod attestation;
pub mod cached;
pub mod cosign;
pub mod notary;
pub mod notation;
pub mod referrers;
pub mod root;
pub mod sct;
pub mod sigstore;
pub mod timestamp;
pub mod tlog;
pub mod ttl;
pub mod tuf;
pub mod x509;

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;

use crate::{
    oci::Digest,
    upstream::{Upstream, UpstreamError},
};

/// A boxed future, so verifiers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a rule asks of one repository's trust data.
#[derive(Debug, Clone)]
pub struct TrustQuery {
    /// Globally unique name: `<registry>/<repository>`, e.g. `docker.io/library/nginx`.
    pub gun: String,
    /// Roles a tag resolves through, first match wins (DCT: `targets/releases`, `targets`).
    pub roles: Arc<[String]>,
    /// Roles (`targets/<name>`) that must also have signed the resolved digest.
    pub signers: Arc<[String]>,
    /// Pinned root key IDs; empty means trust on first use.
    pub pins: Arc<[String]>,
    /// How long past its ttl cached trust data may serve while the trust server is unreachable.
    pub stale_if_error: Duration,
    /// Where the image's content lives, for verifiers whose signatures are stored beside it
    /// (cosign). Set per request by the proxy; Notary v1 does not use it.
    pub content: Option<ContentSource>,
}

/// The upstream repository a request is for, as a verifier reads signatures from it.
#[derive(Clone)]
pub struct ContentSource {
    pub upstream: Upstream,
    /// Repository at the upstream, e.g. `library/nginx`.
    pub repo: String,
    /// Largest manifest read.
    pub max_manifest_size: u64,
}

impl fmt::Debug for ContentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentSource")
            .field("registry", &self.upstream.registry())
            .field("repo", &self.repo)
            .finish()
    }
}

/// A tag's signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTag {
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// Length of the manifest in bytes.
    pub size: i64,
    /// The role whose signature decided.
    pub role: String,
}

/// Every tag of a repository that passes a query, and the signature artifacts that counted:
/// the roots of the typed verified closure (`proxy::closure`).
///
/// Signed manifests ([`SignedSet::tags`], [`SignedSet::untagged`]) are what a signature
/// vouches for: they, their index children, configs and layers are the image closure. A
/// signature artifact ([`SignedSet::artifacts`]) is not signed itself (a cosign `.sig`
/// manifest, a sigstore bundle manifest): it is served as the artifact it is, and the only
/// blobs it makes members are the ones it [admits](SignatureArtifact::admits), never what else
/// it lists.
#[derive(Debug, Clone, Default)]
pub struct SignedSet {
    pub tags: BTreeMap<String, SignedTag>,
    /// Signed manifests (digest, size) no tag names: cosign signs digests, not tags.
    pub untagged: Vec<(String, i64)>,
    /// Signature artifacts whose signatures counted for a signed manifest of the set.
    pub artifacts: Vec<SignatureArtifact>,
}

/// What kind of signature artifact a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A cosign `sha256-<hex>.sig` manifest of simple-signing layers.
    CosignSignature,
    /// A sigstore bundle artifact (a referrer whose one layer is the bundle).
    SigstoreBundle,
    /// The referrers tag index (`sha256-<hex>`) of a registry without the referrers API.
    ReferrersIndex,
    /// A Notation signature manifest (a referrer whose one layer is the envelope).
    NotationSignature,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::CosignSignature => "cosign signature manifest",
            ArtifactKind::SigstoreBundle => "sigstore bundle artifact",
            ArtifactKind::ReferrersIndex => "referrers index",
            ArtifactKind::NotationSignature => "Notation signature manifest",
        }
    }
}

/// A signature artifact read and checked for a signed manifest: its own manifest, and
/// exactly the blobs it makes members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureArtifact {
    pub kind: ArtifactKind,
    /// `sha256:<hex>` of the artifact's manifest.
    pub digest: String,
    /// Length of the manifest in bytes, as read and hashed.
    pub size: u64,
    /// The blobs (digest, size) it admits: the signature material that counted (the
    /// simple-signing layers whose signature verified and whose payload names the subject,
    /// the one bundle layer), and the OCI empty config, whose bytes its digest fixes.
    pub admits: Vec<(String, u64)>,
}

impl SignedSet {
    /// Whether `digest` is a signed manifest (not a signature artifact).
    pub fn contains_digest(&self, digest: &str) -> bool {
        self.tags.values().any(|t| t.digest == digest)
            || self.untagged.iter().any(|(d, _)| d == digest)
    }

    /// Adds what `other` holds: its tags where this set has none of that name, its untagged
    /// manifests and its artifacts, each once.
    pub fn merge(&mut self, other: &SignedSet) {
        for (tag, signed) in &other.tags {
            self.tags
                .entry(tag.clone())
                .or_insert_with(|| signed.clone());
        }
        for m in &other.untagged {
            if !self.untagged.contains(m) {
                self.untagged.push(m.clone());
            }
        }
        for a in &other.artifacts {
            if !self.artifacts.contains(a) {
                self.artifacts.push(a.clone());
            }
        }
    }

    /// Distinct signed manifests (digest, size), signature artifacts not among them.
    pub fn manifests(&self) -> Vec<(&str, i64)> {
        let mut out: Vec<(&str, i64)> = self
            .tags
            .values()
            .map(|t| (t.digest.as_str(), t.size))
            .chain(self.untagged.iter().map(|(d, s)| (d.as_str(), *s)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Why a verifier refused, in a class for metrics and words for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// No role the rule accepts signs the tag (or the repository has no trust data).
    Unsigned,
    /// The tag was signed before and no longer is.
    Revoked,
    /// Content does not match what was signed.
    Mismatch,
    /// A signer the rule requires did not sign the same digest.
    UntrustedSigner,
    /// The trust data has expired.
    Expired,
    /// The trust data could not be fetched or did not verify.
    TrustError,
}

impl RefusalKind {
    /// Label value for `trustgate_verifications_total{result}`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Unsigned => "unsigned",
            RefusalKind::Revoked => "revoked",
            RefusalKind::Mismatch => "mismatch",
            RefusalKind::UntrustedSigner => "untrusted_signer",
            RefusalKind::Expired => "expired",
            RefusalKind::TrustError => "trust_error",
        }
    }
}

/// A refusal with a message a user can act on.
///
/// A refusal that carries an [`UpstreamError`] ([`Refusal::upstream`]) is not a verdict: the
/// image's own registry failed or said "not found" while a verifier read from it (cosign keeps
/// signatures beside the image). The proxy answers those as it answers any upstream failure
/// (`404 MANIFEST_UNKNOWN`, `502`, `504`, `429`), not with `403 DENIED`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
    /// The registry failure behind this refusal, when that is what it is (boxed: refusals
    /// travel in `Result`s and should stay small).
    pub upstream: Option<Box<UpstreamError>>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            message: message.into(),
            upstream: None,
        }
    }

    /// The image's registry failed (or does not have the object) while signatures were read:
    /// counted as [`RefusalKind::TrustError`] where it is counted at all (audit), answered as
    /// the upstream failure it is. For a [`UpstreamError::NotFound`], `message` names the
    /// object (`registry/repository:tag`).
    pub fn upstream(message: impl Into<String>, source: UpstreamError) -> Self {
        Refusal {
            kind: RefusalKind::TrustError,
            message: message.into(),
            upstream: Some(Box::new(source)),
        }
    }

    /// The registry failure behind this refusal, if it is one rather than a verdict.
    pub fn upstream_cause(&self) -> Option<&UpstreamError> {
        self.upstream.as_deref()
    }
}

/// A referrers request ([`Verifier::referrers`]): the subject manifest, and the artifact type
/// to filter by when one is asked for.
#[derive(Debug, Clone, Copy)]
pub struct ReferrersOf<'a> {
    pub digest: &'a Digest,
    pub artifact_type: Option<&'a str>,
}

/// The answer to a referrers request: an OCI image index, or `None` when the verifier keeps
/// no referrers.
pub type Referrers<'a> = BoxFuture<'a, Result<Option<Bytes>, Refusal>>;

/// A source of signatures for images.
pub trait Verifier: Send + Sync {
    /// Resolves `tag` to the digest the query's roles signed for it.
    fn resolve_tag<'a>(
        &'a self,
        query: &'a TrustQuery,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<SignedTag, Refusal>>;

    /// Every tag (and so every manifest digest) that passes the query: the roots of the
    /// verified closure that by-digest requests are checked against.
    fn signed_set<'a>(
        &'a self,
        query: &'a TrustQuery,
    ) -> BoxFuture<'a, Result<Arc<SignedSet>, Refusal>>;

    /// Whether the manifest `digest` itself carries a valid signature, checked directly
    /// instead of through [`Verifier::signed_set`]. `Ok(false)` means "not by this check":
    /// the caller still looks for `digest` in the closure of the signed set. The default
    /// (Notary v1, whose signed set is cheap) checks nothing.
    fn digest_signed<'a>(
        &'a self,
        _query: &'a TrustQuery,
        _digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool, Refusal>> {
        Box::pin(async { Ok(false) })
    }

    /// The referrers of the manifest `digest` this verifier vouches for, as an OCI image
    /// index (`GET /v2/<name>/referrers/<digest>`), filtered by `artifact_type` when given:
    /// cosign's sigstore bundles. A refusal when `digest` does not verify; `Ok(None)` when
    /// the verifier keeps no referrers (the default, Notary v1), answered as an empty index.
    fn referrers<'a>(&'a self, _query: &'a TrustQuery, _of: ReferrersOf<'a>) -> Referrers<'a> {
        Box::pin(async { Ok(None) })
    }
}
