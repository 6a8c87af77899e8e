//! cosign key-based verification (`sigstore/cosign: specs/SIGNATURE_SPEC.md`).
//!
//! A digest is signed when its signature manifest, the tag `sha256-<hex>.sig` in the image's
//! repository (or the rule's `signature_repository`), has simple-signing layers whose
//! signatures verify under at least `threshold` distinct configured keys, each over a payload
//! whose `critical.image.docker-manifest-digest` is that digest. Everything read is hashed
//! against the digest it was asked for.
//!
//! - A tag resolves to the digest its manifest upstream hashes to; that digest must be signed.
//! - A by-digest manifest is checked directly ([`Verifier::digest_signed`]).
//! - Blobs and index children fall back to the closure of the signed set, which for cosign is
//!   enumerated from the repository's tag list: every `sha256-<hex>.sig` tag (at most
//!   [`MAX_SIGNATURE_TAGS`]) whose subject verifies. That costs, once per [`VERDICT_TTL`], one
//!   tag list, and per signature tag its manifest, its payload blobs and the subject manifest.
//! - The signature artifacts are served as well: a `sha256-<hex>.sig` tag of the same
//!   repository resolves to its own manifest when its subject verifies, and its manifest joins
//!   the signed set so its payload blobs are reachable.
//!
//! Verdicts are cached per (signature repository, digest) for [`VERDICT_TTL`] in a bounded LRU;
//! failures to reach the registry are not cached. A cached signed set is dropped as soon as a
//! digest outside it verifies (a tag pulled right after signing), so its blobs are reachable
//! without waiting for the ttl.
//!
//! Not here yet: keyless (Fulcio certificates, Rekor bundles) and sigstore bundles found through
//! the OCI referrers API.

mod keys;
pub mod wire;

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use lru::LruCache;

pub use self::keys::{CosignKey, KeyError};
use self::wire::{payload_digest, signature_layers, signature_tag, signed_digest_of_tag};
use super::{
    BoxFuture, ContentSource, Refusal, RefusalKind, SignedSet, SignedTag, TrustQuery, Verifier,
};
use crate::{oci::Digest, upstream::UpstreamError};

/// How long a verdict (signed or not) and a signed set are reused.
pub const VERDICT_TTL: Duration = Duration::from_secs(30);
/// Signature tags looked at when enumerating a repository's signed set.
pub const MAX_SIGNATURE_TAGS: usize = 256;
/// Signature layers looked at in one signature manifest.
const MAX_SIGNATURE_LAYERS: usize = 32;
/// Largest simple-signing payload read (cosign's are a few hundred bytes).
const MAX_PAYLOAD: u64 = 64 * 1024;
/// Tags asked for per page of the tag list, and pages read at most.
const TAGS_PAGE: usize = 1000;
const MAX_TAG_PAGES: usize = 20;
/// Cached verdicts and signed sets.
const VERDICTS: usize = 4096;
const SETS: usize = 256;

/// The role name reported for a digest cosign signatures vouch for.
const ROLE: &str = "cosign";
/// The role name reported for a signature artifact itself.
const SIGNATURE_ROLE: &str = "cosign-signature";

/// A signed digest's signature manifest: its digest and length.
#[derive(Debug, Clone)]
struct Signature {
    digest: String,
    size: i64,
}

type Verdict = Result<Signature, Refusal>;
/// (image repository, signature repository).
type SetKey = (String, String);

/// Verifies cosign signatures under one rule's keys and threshold.
pub struct CosignVerifier {
    keys: Arc<[CosignKey]>,
    threshold: usize,
    signature_repository: Option<String>,
    verdicts: Mutex<LruCache<(String, String), (Instant, Verdict)>>,
    sets: Mutex<LruCache<SetKey, (Instant, Arc<SignedSet>)>>,
}

// === impl CosignVerifier ===

impl CosignVerifier {
    /// `keys` must be distinct and at least `threshold` (at least 1) of them.
    pub fn new(
        keys: Vec<CosignKey>,
        threshold: usize,
        signature_repository: Option<String>,
    ) -> Self {
        CosignVerifier {
            keys: keys.into(),
            threshold: threshold.max(1),
            signature_repository,
            verdicts: Mutex::new(LruCache::new(nonzero(VERDICTS))),
            sets: Mutex::new(LruCache::new(nonzero(SETS))),
        }
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

    /// Whether `digest` carries signatures of `threshold` distinct keys; cached.
    async fn verify_digest(&self, query: &TrustQuery, digest: &Digest) -> Verdict {
        let content = self.content(query)?;
        let sig_repo = self.signature_repo(content);
        let key = (sig_repo.to_owned(), digest.as_str().to_owned());
        if let Some((at, verdict)) = lock(&self.verdicts).get(&key) {
            if at.elapsed() < VERDICT_TTL {
                return verdict.clone();
            }
        }
        let verdict = self.verify_uncached(query, content, digest).await;
        // Only what the registry said is a verdict; not reaching it is not.
        if !matches!(&verdict, Err(r) if r.kind == RefusalKind::TrustError) {
            lock(&self.verdicts).put(key, (Instant::now(), verdict.clone()));
        }
        // A digest signed since the repository's signed set was cached: drop that set, so a
        // pull that resolved the tag finds the image's blobs right away, not after the ttl.
        if verdict.is_ok() {
            let mut sets = lock(&self.sets);
            let set_key = (content.repo.clone(), sig_repo.to_owned());
            if sets
                .peek(&set_key)
                .is_some_and(|(_, set)| !set.contains_digest(digest.as_str()))
            {
                sets.pop(&set_key);
            }
        }
        verdict
    }

    async fn verify_uncached(
        &self,
        query: &TrustQuery,
        content: &ContentSource,
        digest: &Digest,
    ) -> Verdict {
        let sig_repo = self.signature_repo(content);
        let tag = signature_tag(digest);
        let what = format!("{}@{digest}", query.gun);
        let manifest = match content
            .upstream
            .manifest(sig_repo, &tag, content.max_manifest_size)
            .await
        {
            Ok(m) => m.bytes,
            Err(UpstreamError::NotFound { .. }) => {
                return Err(Refusal::new(
                    RefusalKind::Unsigned,
                    format!("{what} has no cosign signature (no tag {tag} in {sig_repo})"),
                ))
            }
            Err(e) => return Err(unreachable_registry(&tag, &e)),
        };
        let signature = Signature {
            digest: Digest::sha256_of(&manifest).as_str().to_owned(),
            size: i64::try_from(manifest.len()).unwrap_or(i64::MAX),
        };
        let layers = signature_layers(&manifest)
            .map_err(|e| Refusal::new(RefusalKind::TrustError, format!("{sig_repo}:{tag}: {e}")))?;
        let mut counted = vec![false; self.keys.len()];
        let mut other_digest = None;
        // cosign's verification order: the signature over the payload bytes first, then the
        // claims of the (now authenticated) payload.
        for layer in layers.iter().take(MAX_SIGNATURE_LAYERS) {
            if layer.size > MAX_PAYLOAD {
                continue;
            }
            let Some(payload) = self.payload(content, sig_repo, &layer.digest).await? else {
                continue;
            };
            let Some(k) = (0..self.keys.len())
                .find(|&k| !counted[k] && self.keys[k].verifies(&payload, &layer.signature))
            else {
                continue;
            };
            match payload_digest(&payload) {
                Ok(signed) if signed == *digest => counted[k] = true,
                Ok(signed) => other_digest = Some(signed),
                Err(e) => tracing::debug!(tag = %tag, error = %e, "cosign payload ignored"),
            }
            if counted.iter().filter(|c| **c).count() >= self.threshold {
                return Ok(signature);
            }
        }
        let valid = counted.iter().filter(|c| **c).count();
        Err(match other_digest {
            Some(other) if valid == 0 => Refusal::new(
                RefusalKind::Mismatch,
                format!("the cosign signature in {sig_repo}:{tag} is for {other}, not {what}"),
            ),
            _ => Refusal::new(
                RefusalKind::UntrustedSigner,
                format!(
                    "{what}: {valid} of the {} distinct trusted cosign keys required signed it",
                    self.threshold
                ),
            ),
        })
    }

    /// A payload blob, read up to [`MAX_PAYLOAD`] and hashed; `None` when it is too large or
    /// does not match its digest.
    async fn payload(
        &self,
        content: &ContentSource,
        sig_repo: &str,
        digest: &Digest,
    ) -> Result<Option<Bytes>, Refusal> {
        let what = format!("{sig_repo}@{digest}");
        let blob = match content.upstream.blob(sig_repo, digest.as_str()).await {
            Ok(blob) => blob,
            Err(UpstreamError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(unreachable_registry(&what, &e)),
        };
        let mut stream = blob.stream;
        let mut bytes = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unreachable_registry(&what, &e))?;
            if (bytes.len() + chunk.len()) as u64 > MAX_PAYLOAD {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        let bytes = bytes.freeze();
        Ok(digest.matches(&bytes).then_some(bytes))
    }

    /// The signed manifests of the query's repository, from its signature tags; cached.
    async fn enumerate(&self, query: &TrustQuery) -> Result<Arc<SignedSet>, Refusal> {
        let content = self.content(query)?;
        let sig_repo = self.signature_repo(content).to_owned();
        let key = (content.repo.clone(), sig_repo.clone());
        if let Some((at, set)) = lock(&self.sets).get(&key) {
            if at.elapsed() < VERDICT_TTL {
                return Ok(set.clone());
            }
        }
        let mut subjects = Vec::new();
        let mut last: Option<String> = None;
        for _ in 0..MAX_TAG_PAGES {
            let (body, _) = match content
                .upstream
                .tags(&sig_repo, Some(TAGS_PAGE), last.as_deref())
                .await
            {
                Ok(page) => page,
                Err(UpstreamError::NotFound { .. }) => break,
                Err(e) => return Err(unreachable_registry(&format!("{sig_repo} tags"), &e)),
            };
            let tags: Vec<String> = serde_json::from_slice::<TagList>(&body)
                .map(|l| l.tags.unwrap_or_default())
                .unwrap_or_default();
            subjects.extend(tags.iter().filter_map(|t| signed_digest_of_tag(t)));
            if tags.len() < TAGS_PAGE || subjects.len() >= MAX_SIGNATURE_TAGS {
                break;
            }
            last = tags.last().cloned();
        }
        subjects.truncate(MAX_SIGNATURE_TAGS);
        let mut set = SignedSet::default();
        let mut complete = true;
        for subject in subjects {
            let signature = match self.verify_digest(query, &subject).await {
                Ok(s) => s,
                Err(r) => {
                    complete &= r.kind != RefusalKind::TrustError;
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
            if self.signature_repository.is_none() {
                set.tags.insert(
                    signature_tag(&subject),
                    SignedTag {
                        digest: signature.digest,
                        size: signature.size,
                        role: SIGNATURE_ROLE.to_owned(),
                    },
                );
            }
        }
        let set = Arc::new(set);
        // A set missing entries because the registry did not answer is not reused.
        if complete {
            lock(&self.sets).put(key, (Instant::now(), set.clone()));
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

#[derive(serde::Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

impl Verifier for CosignVerifier {
    fn resolve_tag<'a>(
        &'a self,
        query: &'a TrustQuery,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<SignedTag, Refusal>> {
        Box::pin(async move {
            let content = self.content(query)?;
            // A signature artifact of this repository is served when its subject verifies.
            if let (None, Some(subject)) = (&self.signature_repository, signed_digest_of_tag(tag)) {
                let signature = self.verify_digest(query, &subject).await?;
                return Ok(SignedTag {
                    digest: signature.digest,
                    size: signature.size,
                    role: SIGNATURE_ROLE.to_owned(),
                });
            }
            let what = format!("{}:{tag}", query.gun);
            let manifest = match content
                .upstream
                .manifest(&content.repo, tag, content.max_manifest_size)
                .await
            {
                Ok(m) => m.bytes,
                Err(UpstreamError::NotFound { .. }) => {
                    return Err(Refusal::new(
                        RefusalKind::Unsigned,
                        format!("{what} does not exist upstream"),
                    ))
                }
                Err(e) => return Err(unreachable_registry(&what, &e)),
            };
            let digest = Digest::sha256_of(&manifest);
            self.verify_digest(query, &digest).await?;
            Ok(SignedTag {
                digest: digest.as_str().to_owned(),
                size: i64::try_from(manifest.len()).unwrap_or(i64::MAX),
                role: ROLE.to_owned(),
            })
        })
    }

    fn signed_set<'a>(
        &'a self,
        query: &'a TrustQuery,
    ) -> BoxFuture<'a, Result<Arc<SignedSet>, Refusal>> {
        Box::pin(self.enumerate(query))
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

fn unreachable_registry(what: &str, e: &UpstreamError) -> Refusal {
    Refusal::new(
        RefusalKind::TrustError,
        format!("cosign signature data {what} could not be read: {e}"),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}
