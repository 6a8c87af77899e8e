//! cosign verification, key-based and keyless (`sigstore/cosign: specs/SIGNATURE_SPEC.md`,
//! `specs/BUNDLE_SPEC.md`).
//!
//! A digest is signed when at least `threshold` distinct configured signers vouch for it, in
//! its signature manifest, the tag `sha256-<hex>.sig` in the image's repository (or the
//! rule's `signature_repository`), whose simple-signing layers name the digest in their
//! payload, and in its sigstore bundles (newer cosign), OCI artifacts whose `subject` is the
//! digest, found through the referrers API or, on a registry without it, the referrers tag
//! `sha256-<hex>` (the shared [`trust::referrers`](crate::trust::referrers) discovers and
//! checks them, `referrers.rs` reads their bundles), each a DSSE envelope of an in-toto
//! statement naming the digest (`bundle.rs`). Both kinds count towards one threshold. Everything read is hashed
//! against the digest it was asked for.
//!
//! - A tag resolves to the digest its manifest upstream hashes to; that digest must be signed.
//! - A by-digest manifest is checked directly ([`Verifier::digest_signed`]).
//! - Blobs and index children fall back to the closure of the signed set, which for cosign is
//!   enumerated from the repository's tag list: every `sha256-<hex>.sig` and `sha256-<hex>`
//!   tag (at most [`MAX_SIGNATURE_TAGS`]) whose subject verifies, and every digest this
//!   instance found signed before (a registry with the referrers API keeps no tag for
//!   bundles). That costs, once per [`VERDICT_TTL`], one tag list, and per subject its
//!   signature manifest and payloads, its referrers and bundles, and the subject manifest.
//! - The signature artifacts are served as well, as the artifacts they are and never as
//!   signed content ([`SignatureArtifact`]): a `sha256-<hex>.sig` or referrers tag of the
//!   same repository resolves to its own manifest when its subject verifies, the bundle
//!   manifests that counted are listed by [`Verifier::referrers`], and each artifact admits
//!   exactly the signature material that counted. A `.sig` manifest is itself unsigned (anyone
//!   with push rights can rewrite it), so of what it lists only the simple-signing layers whose
//!   signature verified and whose payload names the subject are served; its config and any
//!   other layer are not. A bundle artifact admits its one bundle layer, and its config only
//!   when that is the OCI empty descriptor (`application/vnd.oci.empty.v1+json`, the two bytes
//!   `{}`): its digest fixes its bytes, so serving it delivers nothing anybody could choose,
//!   and clients that copy a referrer (`cosign`, `oras`) fetch it.
//!
//! Verdicts are cached per (signature repository, digest) for [`VERDICT_TTL`] in a bounded LRU;
//! failures to reach the registry are not cached. They are not verdicts either: such a
//! refusal carries the [`UpstreamError`] ([`Refusal::upstream`]), and the proxy answers it as
//! the upstream failure it is (`404` for a tag the registry does not have, `502`/`504`). A cached signed set is dropped as soon as a
//! digest outside it verifies (a tag pulled right after signing), so its blobs are reachable
//! without waiting for the ttl.
//!
//! A layer or bundle counts for the configured keys its signature verifies under; else, when
//! it carries a Fulcio certificate and a Rekor entry with a signed entry timestamp, for the
//! keyless identities it matches after every keyless check ([`Keyless`]). `threshold` counts
//! distinct signers: each key once, each identity once, each signature for one signer.

mod bundle;
mod keyless;
mod keys;
mod referrers;
pub mod wire;

use std::{sync::Arc, time::Duration};

use crate::trust::ttl::{resolve_tag, TtlCache};
use bytes::Bytes;

pub use self::bundle::BundleFailure;
pub use self::keyless::{Keyless, KeylessFailure, RootHandle, RootsError};
use self::keyless::{KeylessLayer, KeylessSigner};
pub use self::keys::{CosignKey, KeyError};
use self::referrers::{BundleArtifact, Referred};
use self::wire::{
    payload_digest, signature_layers, signature_tag, signed_digest_of_tag,
    subject_of_referrers_tag, SignatureLayer, SIMPLESIGNING,
};
use super::{
    ArtifactKind, BoxFuture, ContentSource, Referrers, ReferrersOf, Refusal, RefusalKind,
    SignatureArtifact, SignedSet, SignedTag, TrustQuery, Verifier,
};
use crate::{
    oci::{self, Digest},
    policy::{AttestationRequirement, Signatures},
    trust::{attestation::Checklist, root::TrustedRoot},
    upstream::UpstreamError,
};

/// How long a verdict (signed or not) and a signed set are reused.
pub const VERDICT_TTL: Duration = Duration::from_secs(30);
/// Signature tags looked at when enumerating a repository's signed set.
pub const MAX_SIGNATURE_TAGS: usize = 256;
/// Signature layers looked at in one signature manifest.
const MAX_SIGNATURE_LAYERS: usize = 32;
/// Largest simple-signing payload read (cosign's are a few hundred bytes).
const MAX_PAYLOAD: u64 = 64 * 1024;
/// Cached verdicts and signed sets.
const VERDICTS: usize = 4096;
const SETS: usize = 256;

/// The role name reported for a digest cosign signatures vouch for.
const ROLE: &str = "cosign";
/// The role name reported for a signature artifact itself.
const SIGNATURE_ROLE: &str = "cosign-signature";

/// A signature artifact's manifest read while checking signatures: its digest and length,
/// and the blobs (digest, size) it admits, the signature material that counted.
#[derive(Debug, Clone)]
struct Artifact {
    digest: String,
    size: i64,
    admits: Vec<(String, u64)>,
}

/// A signature artifact read for a digest: served under its tag, or withheld, and why.
type Served = Result<Artifact, String>;

/// Why a digest is signed: the signature artifacts that were read for it.
#[derive(Debug, Clone, Default)]
struct Evidence {
    /// The `sha256-<hex>.sig` manifest, when there is one: served only when it holds
    /// signatures alone and one of them counted ([`only_signatures`]).
    signature: Option<Served>,
    /// The sigstore bundle artifacts that counted.
    bundles: Vec<BundleArtifact>,
    /// The referrers tag index (`sha256-<hex>`), when the registry lacks the referrers API:
    /// served only when it is an OCI index and a bundle it lists counted.
    index: Option<Served>,
}

type Verdict = Result<Arc<Evidence>, Refusal>;
/// (image repository, signature repository).
type SetKey = (String, String);

/// Verifies cosign signatures under one rule's keys, keyless identities and threshold.
pub struct CosignVerifier {
    keys: Arc<[CosignKey]>,
    keyless: Option<Keyless>,
    threshold: usize,
    signature_repository: Option<String>,
    /// Whether `threshold` signatures are required (else the attestations alone decide).
    signatures: Signatures,
    /// Attestations the digest must carry besides, each by one of the signers.
    attestations: Arc<[AttestationRequirement]>,
    /// Whether a bundle needs a transparency-log entry (keyless) or a log entry or an RFC
    /// 3161 timestamp (key-signed), as `cosign verify` without `--insecure-ignore-tlog`.
    require_tlog: bool,
    /// The trust a rule without `keyless` checks key-signed bundles under: none.
    no_root: Arc<TrustedRoot>,
    verdicts: TtlCache<(String, String), Verdict>,
    /// Tags resolved to a verified digest, for [`VERDICT_TTL`] (the verdict's own life):
    /// a tag that moves upstream is seen that much later, never served unverified.
    tags: TtlCache<(String, String), SignedTag>,
    sets: TtlCache<SetKey, Arc<SignedSet>>,
}

// === impl CosignVerifier ===

impl CosignVerifier {
    /// `keys` must be distinct, and with the keyless identities at least `threshold` (at
    /// least 1) of them.
    pub fn new(
        keys: Vec<CosignKey>,
        keyless: Option<Keyless>,
        threshold: usize,
        signature_repository: Option<String>,
    ) -> Self {
        CosignVerifier {
            keys: keys.into(),
            keyless,
            threshold: threshold.max(1),
            signature_repository,
            signatures: Signatures::Required,
            attestations: Arc::new([]),
            require_tlog: true,
            no_root: Arc::new(TrustedRoot::empty()),
            verdicts: TtlCache::new(VERDICTS, VERDICT_TTL),
            tags: TtlCache::new(VERDICTS, VERDICT_TTL),
            sets: TtlCache::new(SETS, VERDICT_TTL),
        }
    }

    /// Whether bundles need a log entry (or, key-signed, a timestamp); default true.
    pub fn with_require_tlog(self, require_tlog: bool) -> Self {
        CosignVerifier {
            require_tlog,
            ..self
        }
    }

    /// What a bundle is checked under, beyond its signer.
    fn bundle_checks(&self) -> bundle::Checks {
        bundle::Checks {
            root: self
                .keyless
                .as_ref()
                .map_or_else(|| Arc::clone(&self.no_root), Keyless::root),
            require_tlog: self.require_tlog,
            now: time::OffsetDateTime::now_utc(),
        }
    }

    /// Requires `attestations` as well (each met by one attestation bundle for the digest
    /// signed by one of the signers), and signatures only when `signatures` says so.
    /// `signatures: none` without attestations would require nothing, and keeps
    /// requiring signatures.
    pub fn with_attestations(
        self,
        signatures: Signatures,
        attestations: Vec<AttestationRequirement>,
    ) -> Self {
        let signatures = if attestations.is_empty() {
            Signatures::Required
        } else {
            signatures
        };
        CosignVerifier {
            signatures,
            attestations: attestations.into(),
            ..self
        }
    }

    /// Whether what `tally` counted meets the rule's signature requirement.
    fn signatures_met(&self, tally: &Tally) -> bool {
        !self.signatures.required() || tally.signers.count() >= self.threshold
    }

    fn content<'q>(&self, query: &'q TrustQuery) -> Result<&'q ContentSource, Refusal> {
        query.content.as_ref().ok_or_else(|| {
            Refusal::new(
                RefusalKind::TrustError,
                "cosign verification needs registry access, and none was given",
            )
        })
    }

    fn signature_repo<'a>(&'a self, content: &'a ContentSource) -> &'a str {
        self.signature_repository
            .as_deref()
            .unwrap_or(&content.repo)
    }

    /// Whether `digest` carries signatures of `threshold` distinct signers, in its `.sig`
    /// manifest and its sigstore bundles together; cached.
    async fn verify_digest(&self, query: &TrustQuery, digest: &Digest) -> Verdict {
        let content = self.content(query)?;
        let sig_repo = self.signature_repo(content);
        let key = (sig_repo.to_owned(), digest.as_str().to_owned());
        if let Some(verdict) = self.verdicts.get(&key) {
            return verdict;
        }
        let verdict = self.verify_uncached(query, content, digest).await;
        // Only what the registry said is a verdict; not reaching it is not.
        if !matches!(&verdict, Err(r) if r.upstream_cause().is_some()) {
            self.verdicts.put(key, verdict.clone());
        }
        // A digest signed since the repository's signed set was cached: drop that set, so a
        // pull that resolved the tag finds the image's blobs right away, not after the ttl.
        if verdict.is_ok() {
            let set_key = (content.repo.clone(), sig_repo.to_owned());
            self.sets
                .pop_if(&set_key, |set| !set.contains_digest(digest.as_str()));
        }
        verdict
    }

    /// Reads the `.sig` manifest and the referrers of `digest`, and counts their signers.
    async fn verify_uncached(
        &self,
        query: &TrustQuery,
        content: &ContentSource,
        digest: &Digest,
    ) -> Verdict {
        let sig_repo = self.signature_repo(content);
        let what = format!("{}@{digest}", query.gun);
        let mut tally = Tally {
            attestations: Checklist::new(self.attestations.len()),
            ..Tally::default()
        };
        // Under `signatures: none` the `.sig` tag cannot decide anything, and is not read.
        let signature = if self.signatures.required() {
            self.signature_tag(content, digest, &mut tally).await?
        } else {
            None
        };
        // Attestations live among the referrers only, so without requirements for them the
        // `.sig` manifest may suffice alone.
        let satisfied = self.signatures_met(&tally) && self.attestations.is_empty();
        // Bundles are read even when the `.sig` manifest sufficed, so the referrers served
        // for the digest are complete; a registry failing then costs only that list.
        let referred = match self.referred(content, sig_repo, digest, &mut tally).await {
            Ok(referred) => referred,
            Err(r) if satisfied => {
                tracing::debug!(image = %what, reason = %r, "referrers not read");
                Referred::default()
            }
            Err(r) => return Err(r),
        };
        let missing = tally.attestations.missing(&self.attestations);
        if self.signatures_met(&tally) && missing.is_none() {
            return Ok(Arc::new(Evidence {
                signature,
                bundles: referred.bundles,
                index: referred.index,
            }));
        }
        let valid = tally.signers.count();
        let tag = signature_tag(digest);
        if self.signatures_met(&tally) {
            // Signed enough (or no signature needed): an attestation requirement is unmet.
            let refusal = match missing {
                Some(missing) => format!("{what}: {missing}"),
                None => format!("{what}: the cosign attestations required are not met"),
            };
            let kind = if referred.any {
                RefusalKind::UntrustedSigner
            } else {
                RefusalKind::Unsigned
            };
            return Err(Refusal::new(
                kind,
                format!(
                    "{refusal}{}",
                    tally
                        .bundle_failure
                        .map(|e| format!("; a sigstore bundle did not count: {e}"))
                        .unwrap_or_default()
                ),
            ));
        }
        Err(match tally.other_digest {
            _ if signature.is_none() && !referred.any => Refusal::new(
                RefusalKind::Unsigned,
                format!(
                    "{what} has no cosign signature (no tag {tag} in {sig_repo}, and no \
                     sigstore bundle among its referrers)"
                ),
            ),
            Some(other) if valid == 0 => Refusal::new(
                RefusalKind::Mismatch,
                format!("the cosign signature in {sig_repo} for {what} is for {other}, not {digest}"),
            ),
            _ => Refusal::new(
                RefusalKind::UntrustedSigner,
                format!(
                    "{what}: {valid} of the {} distinct trusted cosign signers required signed it{}{}{}",
                    self.threshold,
                    tally
                        .keyless_failure
                        .map(|e| format!("; a signature did not count: {e}"))
                        .unwrap_or_default(),
                    tally
                        .bundle_failure
                        .map(|e| format!("; a sigstore bundle did not count: {e}"))
                        .unwrap_or_default(),
                    tally
                        .attestation_seen
                        .map(|t| format!(
                            "; an attestation ({t:?}) is not a signature"
                        ))
                        .unwrap_or_default()
                ),
            ),
        })
    }

    /// The `.sig` manifest of `digest` and the signers of its layers (cosign
    /// `specs/SIGNATURE_SPEC.md`); `None` when there is no such tag.
    async fn signature_tag(
        &self,
        content: &ContentSource,
        digest: &Digest,
        tally: &mut Tally,
    ) -> Result<Option<Served>, Refusal> {
        let sig_repo = self.signature_repo(content);
        let tag = signature_tag(digest);
        let (manifest, media_type) = match content
            .upstream
            .manifest(sig_repo, &tag, content.max_manifest_size)
            .await
        {
            Ok(m) => (m.bytes, m.media_type),
            Err(UpstreamError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(unreachable_registry(&tag, &e)),
        };
        // The layers that counted: the only blobs the (unsigned) manifest admits.
        let mut counted: Vec<(String, u64)> = Vec::new();
        let layers = signature_layers(&manifest)
            .map_err(|e| Refusal::new(RefusalKind::TrustError, format!("{sig_repo}:{tag}: {e}")))?;
        // cosign's verification order: the signature over the payload bytes first, then the
        // claims of the (now authenticated) payload.
        for layer in layers.iter().take(MAX_SIGNATURE_LAYERS) {
            if layer.size > MAX_PAYLOAD {
                continue;
            }
            let Some(payload) = self
                .read_blob(content, sig_repo, &layer.digest, layer.size)
                .await?
            else {
                continue;
            };
            let Some(vouching) = self.vouching(layer, &payload, &mut tally.keyless_failure) else {
                continue;
            };
            match payload_digest(&payload) {
                Ok(signed) if signed == *digest => {
                    tally.signers.add(vouching);
                    let layer = (layer.digest.as_str().to_owned(), layer.size);
                    if !counted.contains(&layer) {
                        counted.push(layer);
                    }
                }
                Ok(signed) => tally.other_digest = Some(signed.as_str().to_owned()),
                Err(e) => tracing::debug!(tag = %tag, error = %e, "cosign payload ignored"),
            }
            // Every layer is read, not only up to the threshold: a client verifying with
            // another of the configured keys fetches that key's layer.
        }
        // Served only as what it claims to be: signatures, one of which counted. A layer
        // anybody can add to it is content nobody signed, and is never admitted.
        let served = match only_signatures(&manifest, media_type.as_deref()) {
            Err(why) => Err(format!("it holds more than cosign signatures: {why}")),
            Ok(()) if counted.is_empty() => Err("none of its signatures counted".to_owned()),
            Ok(()) => Ok(Artifact::of(&manifest).admitting(counted)),
        };
        Ok(Some(served))
    }

    /// Who a layer's signature is from and which signers it counts for: the configured
    /// keys it verifies under, else (a layer with a certificate) the keyless identities it
    /// matches once every keyless check passed. Signer numbers: keys first, then identities.
    fn vouching(
        &self,
        layer: &SignatureLayer,
        payload: &[u8],
        failure: &mut Option<KeylessFailure>,
    ) -> Option<Vouching> {
        if let Some(by_key) = Vouching::by_keys(&self.keys, payload, &layer.signature) {
            if !self.require_tlog {
                return Some(by_key);
            }
            // cosign `verify --key`: the signature must have been logged (its Rekor bundle
            // annotation, under a log of the keyless block's trust root).
            let key = &self.keys[by_key.signers[0]];
            let logged = match (&self.keyless, layer.bundle.as_deref()) {
                (Some(trust), Some(bundle)) => {
                    trust.verify_key_bundle(bundle, payload, &layer.signature, key)
                }
                _ => Err(KeylessFailure::KeyNotLogged),
            };
            return match logged {
                Ok(()) => Some(by_key),
                Err(e) => {
                    failure.get_or_insert(e);
                    None
                }
            };
        }
        let (Some(keyless), Some(material)) = (&self.keyless, &layer.keyless) else {
            return None;
        };
        let checked = keyless.verify(&KeylessLayer {
            payload,
            signature: &layer.signature,
            certificate: &material.certificate,
            chain: material.chain.as_deref(),
            bundle: material.bundle.as_deref(),
        });
        match checked {
            Ok(signer) => Some(Vouching::keyless(self.keys.len(), signer)),
            Err(e) => {
                tracing::debug!(layer = %layer.digest, error = %e, "keyless signature ignored");
                failure.get_or_insert(e);
                None
            }
        }
    }

    /// A blob of exactly `size` bytes hashing to `digest` ([`referrers::read_blob`]).
    ///
    /// [`referrers::read_blob`]: crate::trust::referrers::read_blob
    async fn read_blob(
        &self,
        content: &ContentSource,
        sig_repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<Bytes>, Refusal> {
        crate::trust::referrers::read_blob(content, sig_repo, digest, size)
            .await
            .map_err(|e| unreachable_registry(&format!("{sig_repo}@{digest}"), &e))
    }

    /// The signed manifests of the query's repository, from its signature tags; cached.
    async fn enumerate(&self, query: &TrustQuery) -> Result<Arc<SignedSet>, Refusal> {
        let content = self.content(query)?;
        let sig_repo = self.signature_repo(content).to_owned();
        let key = (content.repo.clone(), sig_repo.clone());
        if let Some(set) = self.sets.get(&key) {
            return Ok(set);
        }
        // `.sig` tags, and referrers tags (registries without the referrers API) for digests
        // signed by sigstore bundles only.
        let mut subjects =
            crate::trust::referrers::tagged_subjects(content, &sig_repo, MAX_SIGNATURE_TAGS, |t| {
                signed_digest_of_tag(t).or_else(|| subject_of_referrers_tag(t))
            })
            .await
            .map_err(|e| unreachable_registry(e.what(), e.upstream()))?;
        // A registry with the referrers API keeps no tag for bundles: digests this instance
        // found signed (by a manifest request, which comes before a pull's blobs) are
        // candidates too, verified again below once their verdict is stale.
        let remembered: Vec<Digest> = self.verdicts.collect(|((repo, digest), verdict)| {
            (*repo == sig_repo && verdict.is_ok())
                .then(|| Digest::parse(digest).ok())
                .flatten()
        });
        for digest in remembered {
            if subjects.len() >= MAX_SIGNATURE_TAGS {
                break;
            }
            if !subjects.contains(&digest) {
                subjects.push(digest);
            }
        }
        let mut set = SignedSet::default();
        let mut complete = true;
        for subject in subjects {
            let evidence = match self.verify_digest(query, &subject).await {
                Ok(e) => e,
                Err(r) => {
                    complete &= r.upstream_cause().is_none();
                    continue;
                }
            };
            match self.manifest_size(content, &subject).await {
                Ok(Some(size)) => set.untagged.push((subject.as_str().to_owned(), size)),
                Ok(None) => continue,
                Err(_) => {
                    complete = false;
                    continue;
                }
            }
            // The signature artifacts of this repository are served too, as artifacts: the
            // `.sig` manifest, the bundle manifests (the referrers index lists them), the
            // referrers tag index, each with exactly the blobs it admits.
            if self.signature_repository.is_none() {
                let signature = evidence.signature.iter().flatten();
                let index = evidence.index.iter().flatten();
                set.artifacts.extend(
                    signature
                        .map(|a| a.signed(ArtifactKind::CosignSignature))
                        .chain(
                            evidence
                                .bundles
                                .iter()
                                .map(|b| b.manifest.signed(ArtifactKind::SigstoreBundle)),
                        )
                        .chain(index.map(|a| a.signed(ArtifactKind::ReferrersIndex))),
                );
            }
        }
        let set = Arc::new(set);
        // A set missing entries because the registry did not answer is not reused.
        if complete {
            self.sets.put(key, set.clone());
        }
        Ok(set)
    }

    /// The length of a manifest by digest, hashed; `None` when the registry does not have it.
    async fn manifest_size(
        &self,
        content: &ContentSource,
        digest: &Digest,
    ) -> Result<Option<i64>, Refusal> {
        match content
            .upstream
            .manifest(&content.repo, digest.as_str(), content.max_manifest_size)
            .await
        {
            Ok(m) if digest.matches(&m.bytes) => Ok(Some(m.bytes.len() as i64)),
            Ok(_) | Err(UpstreamError::NotFound { .. }) => Ok(None),
            Err(e) => Err(unreachable_registry(digest.as_str(), &e)),
        }
    }
}

/// What the signature artifacts of one digest added up to so far.
#[derive(Default)]
struct Tally {
    signers: Signers,
    /// A digest a verified signature was for instead (`sha256:<hex>`, or a list).
    other_digest: Option<String>,
    keyless_failure: Option<KeylessFailure>,
    bundle_failure: Option<BundleFailure>,
    /// The attestation requirements, met or not; tallied apart from the signers.
    attestations: Checklist,
    /// The predicate type of an attestation by a trusted signer, when one was seen: named
    /// when signatures fall short, since it is none.
    attestation_seen: Option<String>,
}

// === impl Artifact ===

impl Artifact {
    /// The manifest `bytes`, admitting no blob.
    fn of(bytes: &[u8]) -> Self {
        Artifact {
            digest: Digest::sha256_of(bytes).as_str().to_owned(),
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            admits: Vec::new(),
        }
    }

    fn admitting(self, admits: Vec<(String, u64)>) -> Self {
        Artifact { admits, ..self }
    }

    /// As the signed set carries it.
    fn signed(&self, kind: ArtifactKind) -> SignatureArtifact {
        SignatureArtifact {
            kind,
            digest: self.digest.clone(),
            size: u64::try_from(self.size).unwrap_or(0),
            admits: self.admits.clone(),
        }
    }
}

/// One signature that verified: who made it, and the configured signers it can count for
/// (keys first, then keyless identities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Vouching {
    /// The principal behind it: the key(s) it verifies under, or the OIDC issuer and subject
    /// names of its certificate. Signatures of one principal count once, however many there
    /// are (a layer listed twice, a `.sig` layer and a bundle, two signing runs with two
    /// short-lived certificates of one identity).
    principal: String,
    signers: Vec<usize>,
}

// === impl Vouching ===

impl Vouching {
    /// The configured keys `signature` over `message` verifies under; `None` when none.
    pub(super) fn by_keys(keys: &[CosignKey], message: &[u8], signature: &[u8]) -> Option<Self> {
        let signers: Vec<usize> = (0..keys.len())
            .filter(|&k| keys[k].verifies(message, signature))
            .collect();
        (!signers.is_empty()).then(|| Vouching {
            principal: format!("key {signers:?}"),
            signers,
        })
    }

    /// A keyless signer, its identities numbered after the rule's `keys` keys.
    pub(super) fn keyless(keys: usize, signer: KeylessSigner) -> Self {
        Vouching {
            principal: format!("keyless {}", signer.principal),
            signers: signer.identities.into_iter().map(|i| keys + i).collect(),
        }
    }
}

/// Which signers the counted signatures are from, each signer counted once, each principal
/// once and each signature for one signer: a maximum bipartite matching, grown one signature
/// at a time (augmenting paths), so a signature that matches two identities never blocks
/// another that matches one.
#[derive(Default)]
struct Signers {
    /// Per principal's (first) signature, the signers it vouches for.
    signatures: Vec<Vec<usize>>,
    /// The principals counted already.
    principals: std::collections::HashSet<String>,
    /// Signer -> the signature it is counted through.
    owner: std::collections::HashMap<usize, usize>,
}

// === impl Signers ===

impl Signers {
    fn add(&mut self, vouching: Vouching) {
        // A principal's signers are fixed by who it is (its keys, or its certificate's
        // issuer and names), so a second signature of it can add nothing but a double count.
        if !self.principals.insert(vouching.principal) {
            return;
        }
        self.signatures.push(vouching.signers);
        let mut seen = std::collections::HashSet::new();
        self.augment(self.signatures.len() - 1, &mut seen);
    }

    fn augment(&mut self, signature: usize, seen: &mut std::collections::HashSet<usize>) -> bool {
        for signer in self.signatures[signature].clone() {
            if !seen.insert(signer) {
                continue;
            }
            let free = match self.owner.get(&signer) {
                None => true,
                Some(&other) => self.augment(other, seen),
            };
            if free {
                self.owner.insert(signer, signature);
                return true;
            }
        }
        false
    }

    fn count(&self) -> usize {
        self.owner.len()
    }
}

impl Verifier for CosignVerifier {
    fn resolve_tag<'a>(
        &'a self,
        query: &'a TrustQuery,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<SignedTag, Refusal>> {
        Box::pin(async move {
            let content = self.content(query)?;
            // A signature artifact of this repository is served when its subject verifies:
            // the `.sig` manifest, and the referrers tag index of a registry without the
            // referrers API.
            if self.signature_repository.is_none() {
                let artifact = if let Some(subject) = signed_digest_of_tag(tag) {
                    Some(self.verify_digest(query, &subject).await?.signature.clone())
                } else if let Some(subject) = subject_of_referrers_tag(tag) {
                    Some(self.verify_digest(query, &subject).await?.index.clone())
                } else {
                    None
                };
                match artifact {
                    Some(Some(Ok(artifact))) => {
                        return Ok(SignedTag {
                            digest: artifact.digest,
                            size: artifact.size,
                            role: SIGNATURE_ROLE.to_owned(),
                        })
                    }
                    // The subject verifies, but this artifact is not only what it claims.
                    Some(Some(Err(why))) => {
                        return Err(Refusal::new(
                            RefusalKind::Unsigned,
                            format!("{}:{tag} is not served: {why}", query.gun),
                        ))
                    }
                    // Signed by the other kind of artifact: this tag is not there.
                    Some(None) => {
                        return Err(Refusal::upstream(
                            format!("{}:{tag}", query.gun),
                            UpstreamError::NotFound {
                                registry: content.upstream.registry().to_owned(),
                                what: format!("manifest {}:{tag}", content.repo),
                            },
                        ))
                    }
                    None => {}
                }
            }
            resolve_tag(
                &self.tags,
                query,
                content,
                tag,
                ROLE,
                |digest| {
                    Box::pin(async move { self.verify_digest(query, &digest).await.map(drop) })
                },
                unreachable_registry,
            )
            .await
        })
    }

    fn signed_set<'a>(
        &'a self,
        query: &'a TrustQuery,
    ) -> BoxFuture<'a, Result<Arc<SignedSet>, Refusal>> {
        Box::pin(self.enumerate(query))
    }

    fn referrers<'a>(&'a self, query: &'a TrustQuery, of: ReferrersOf<'a>) -> Referrers<'a> {
        Box::pin(async move {
            let evidence = self.verify_digest(query, of.digest).await?;
            // Bundles in another repository (`signature_repository`) are not this one's
            // referrers: clients that look there ask that repository.
            let bundles: &[BundleArtifact] = if self.signature_repository.is_none() {
                &evidence.bundles
            } else {
                &[]
            };
            Ok(Some(referrers::index(bundles, of.artifact_type)))
        })
    }

    fn digest_signed<'a>(
        &'a self,
        query: &'a TrustQuery,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool, Refusal>> {
        Box::pin(async move {
            match self.verify_digest(query, digest).await {
                Ok(_) => Ok(true),
                Err(r) if r.kind == RefusalKind::TrustError => Err(r),
                Err(_) => Ok(false),
            }
        })
    }
}

/// Whether a `.sig` manifest holds signatures only (cosign `specs/SIGNATURE_SPEC.md`): an
/// image manifest of at most [`MAX_SIGNATURE_LAYERS`] layers, each a simple-signing payload of
/// at most [`MAX_PAYLOAD`] bytes, with a config no larger. Only such a manifest is served with
/// its blobs: the manifest itself is not signed, so anything else in it (a runnable layer, an
/// index's children) would be content nobody signed, reachable through the signed set.
fn only_signatures(manifest: &[u8], media_type: Option<&str>) -> Result<(), String> {
    let image = match oci::parse_manifest(manifest, media_type) {
        Ok(oci::Manifest::Image(image)) => image,
        Ok(oci::Manifest::Index(_)) => return Err("it is an index".to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    if image.layers().len() > MAX_SIGNATURE_LAYERS {
        return Err(format!("more than {MAX_SIGNATURE_LAYERS} layers"));
    }
    if image.config().size > MAX_PAYLOAD {
        return Err(format!("a config of {} bytes", image.config().size));
    }
    match image
        .layers()
        .iter()
        .find(|l| l.media_type.as_str() != SIMPLESIGNING || l.size > MAX_PAYLOAD)
    {
        Some(l) => Err(format!(
            "a layer {} of type {} and {} bytes",
            l.digest,
            l.media_type.as_str(),
            l.size
        )),
        None => Ok(()),
    }
}

/// The registry failed while signature data was read: not a verdict, answered as the
/// upstream failure it is (`502`/`504`/`429`) and never cached.
fn unreachable_registry(what: &str, e: &UpstreamError) -> Refusal {
    Refusal::upstream(
        format!("cosign signature data {what} could not be read: {e}"),
        e.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::{Signers, Vouching};

    fn by(principal: &str, signers: &[usize]) -> Vouching {
        Vouching {
            principal: principal.to_owned(),
            signers: signers.to_vec(),
        }
    }

    #[test]
    fn each_signer_counts_once_and_each_signature_for_one_signer() {
        let mut s = Signers::default();
        s.add(by("key [0]", &[0]));
        s.add(by("key [0]", &[0]));
        assert_eq!(s.count(), 1, "the same key twice");
        s.add(by("keyless carol", &[1, 2]));
        assert_eq!(
            s.count(),
            2,
            "one signature matching two identities counts once"
        );
    }

    #[test]
    fn a_signature_matching_several_signers_yields_to_one_matching_fewer() {
        // Greedy would give the first signature signer 0 and count the second (only 0) not
        // at all; the matching moves the first to signer 1.
        let mut s = Signers::default();
        s.add(by("keyless alice", &[0, 1]));
        s.add(by("keyless bob", &[0]));
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn one_principal_counts_once_however_many_signatures_it_made() {
        // One certificate identity matching two overlapping identities, in a layer listed
        // twice (or signed twice): without the principal, the matching would count 2.
        let mut s = Signers::default();
        s.add(by("keyless alice", &[0, 1]));
        s.add(by("keyless alice", &[0, 1]));
        assert_eq!(s.count(), 1);
    }
}
