//! The Notation verifier behind the proxy's policy: `verifier: notation`.
//!
//! A digest is signed when one of its Notation signatures verifies under the trust policy
//! statement for the image's scope, `<registry>/<repository>` (the upstream's configured
//! name and the repository, as a notation user writes `registryScopes`), as `notation
//! verify` decides (notation-go `notation.Verify`: signatures are tried in turn, the first
//! that verifies decides, a `skip` statement verifies without reading any).
//!
//! Signatures are the digest's referrers (notation-go `registry.ListSignatures`: the
//! referrers API, else the referrers tag schema), found by the shared
//! [`trust::referrers`](crate::trust::referrers), which checks each referrer manifest
//! against its descriptor and its subject. A referrer is a Notation signature when its
//! `artifactType` (or, in the older form, its config's media type) says so; its one layer
//! must be an envelope (`application/jose+json`, `application/cose`) of at most
//! [`envelope::MAX_ENVELOPE`] bytes, or the signature fails integrity ([`signature_layer`]);
//! at most [`referrers::MAX_REFERRERS`] are followed, signature-typed ones first. The target descriptor is the subject manifest as read from the
//! registry and hashed: its digest, its length, and the media type it is served with.
//!
//! As cosign's ([`crate::trust::cosign`]), verdicts are cached per (repository, digest) for
//! [`VERDICT_TTL`], tags resolved for as long, and registry failures are not verdicts (a
//! refusal carrying the [`UpstreamError`]) and are not cached. The signed set (for blobs and
//! index children) is every digest a referrers tag of the repository names plus every digest
//! this instance found signed, each verified. The signature manifests that verified are
//! served as artifacts (the envelope layer, and the config when it is the two bytes `{}`);
//! the referrers tag index when one of them is listed in it.

use std::{sync::Arc, time::Duration};

use crate::trust::ttl::{resolve_tag, TtlCache};
use time::OffsetDateTime;

use super::{
    envelope,
    policy::Level,
    verify::{Check, Finding, Subject, Trust, Verified},
    SIGNATURE_ARTIFACT_TYPE,
};
use crate::{
    oci::{self, Digest},
    trust::{
        referrers::{self, subject_of_tag, Listed, Referrer, ReferrersError},
        ArtifactKind, BoxFuture, ContentSource, Referrers, ReferrersOf, Refusal, RefusalKind,
        SignatureArtifact, SignedSet, SignedTag, TrustQuery, Verifier,
    },
    upstream::UpstreamError,
};

/// How long a verdict (signed or not), a resolved tag and a signed set are reused.
pub const VERDICT_TTL: Duration = Duration::from_secs(30);
/// Subjects looked at when enumerating a repository's signed set.
pub const MAX_SUBJECTS: usize = 256;
const VERDICTS: usize = 4096;
const SETS: usize = 256;
/// The role reported for a digest a Notation signature vouches for.
pub const ROLE: &str = "notation";
/// The SHA-256 of `{}`: the config of an OCI empty descriptor, and of the older form of
/// signature manifest (config media type `application/vnd.cncf.notary.signature`).
const EMPTY_JSON: &[u8] = b"{}";

/// A signature manifest that verified, to serve: its artifact and its listed descriptor.
#[derive(Debug, Clone)]
struct Signature {
    artifact: SignatureArtifact,
    descriptor: serde_json::Value,
}

/// Why a digest is signed.
#[derive(Debug, Clone)]
struct Evidence {
    /// The signature that verified (none under a `skip` statement).
    signatures: Vec<Signature>,
    /// The referrers tag index, served when it lists a signature that verified.
    index: Option<SignatureArtifact>,
    decision: Decision,
}

/// What vouched for a digest, for a caller that reports it (`trustgate notation verify`).
#[derive(Debug, Clone)]
pub struct Decision {
    /// The verification: statement, signer, logged findings, payload target.
    pub verified: Verified,
    /// The signature manifest that verified; `None` under a `skip` statement.
    pub signature: Option<Digest>,
}

type Verdict = Result<Arc<Evidence>, Refusal>;
type Key = (String, String);

/// Verifies Notation signatures under one rule's trust policy and trust store.
pub struct NotationVerifier {
    trust: Arc<Trust>,
    verdicts: TtlCache<Key, Verdict>,
    tags: TtlCache<Key, SignedTag>,
    sets: TtlCache<String, Arc<SignedSet>>,
}

// === impl NotationVerifier ===

impl NotationVerifier {
    pub fn new(trust: Arc<Trust>) -> Self {
        NotationVerifier {
            trust,
            verdicts: TtlCache::new(VERDICTS, VERDICT_TTL),
            tags: TtlCache::new(VERDICTS, VERDICT_TTL),
            sets: TtlCache::new(SETS, VERDICT_TTL),
        }
    }

    fn content<'q>(&self, query: &'q TrustQuery) -> Result<&'q ContentSource, Refusal> {
        query.content.as_ref().ok_or_else(|| {
            Refusal::new(
                RefusalKind::TrustError,
                "Notation verification needs registry access, and none was given",
            )
        })
    }

    /// What vouches for `digest` in the query's repository, as the proxy decides it (the
    /// same cached verdict), or the refusal.
    pub async fn decide(&self, query: &TrustQuery, digest: &Digest) -> Result<Decision, Refusal> {
        self.verify_digest(query, digest)
            .await
            .map(|e| e.decision.clone())
    }

    /// Whether a Notation signature of `digest` verifies; cached.
    async fn verify_digest(&self, query: &TrustQuery, digest: &Digest) -> Verdict {
        let content = self.content(query)?;
        let key = (content.repo.clone(), digest.as_str().to_owned());
        if let Some(verdict) = self.verdicts.get(&key) {
            return verdict;
        }
        let verdict = self.verify_uncached(query, content, digest).await;
        if !matches!(&verdict, Err(r) if r.upstream_cause().is_some()) {
            self.verdicts.put(key, verdict.clone());
        }
        // A digest signed since the signed set was cached: drop the set, so its blobs are
        // reachable at once.
        if verdict.is_ok() {
            self.sets
                .pop_if(&content.repo, |set| !set.contains_digest(digest.as_str()));
        }
        verdict
    }

    async fn verify_uncached(
        &self,
        query: &TrustQuery,
        content: &ContentSource,
        digest: &Digest,
    ) -> Verdict {
        let reference = format!("{}@{digest}", query.gun);
        // notation-go `Verify`: the statement for the artifact's scope, and under `skip`
        // nothing is read.
        let statement = self
            .trust
            .statement(&query.gun, &reference)
            .map_err(|f| Refusal::new(RefusalKind::TrustError, format!("{reference}: {f}")))?;
        if statement.level == Level::Skip {
            tracing::info!(image = %reference, statement = %statement.name, "notation: trust policy statement skips signature verification");
            return Ok(Arc::new(Evidence {
                signatures: Vec::new(),
                index: None,
                decision: Decision {
                    verified: Verified::skipped(statement),
                    signature: None,
                },
            }));
        }
        // The target descriptor a signature must name: the manifest as the registry serves it.
        let manifest = match content
            .upstream
            .manifest(&content.repo, digest.as_str(), content.max_manifest_size)
            .await
        {
            Ok(m) if digest.matches(&m.bytes) => m,
            Ok(_) => {
                return Err(Refusal::new(
                    RefusalKind::Mismatch,
                    format!("{reference}: the registry's manifest does not hash to its digest"),
                ))
            }
            Err(e @ UpstreamError::NotFound { .. }) => return Err(Refusal::upstream(reference, e)),
            Err(e) => return Err(unreachable_registry(&reference, &e)),
        };
        let media_type = manifest_media_type(&manifest.bytes, manifest.media_type.as_deref());
        let subject = Subject {
            media_type: &media_type,
            digest: digest.as_str(),
            size: manifest.bytes.len() as u64,
        };
        let mut listing = referrers::discover(content, &content.repo, digest, rank)
            .await
            .map_err(unreachable)?;
        let tag_index = listing.index().cloned();
        let mut failures: Vec<(Digest, Finding)> = Vec::new();
        let now = OffsetDateTime::now_utc();
        while let Some(referrer) = listing.next().await.map_err(unreachable)? {
            let (layer, bytes) = match self.envelope_of(content, &referrer).await? {
                None => continue,
                Some(Ok(envelope)) => envelope,
                Some(Err(finding)) => {
                    tracing::debug!(image = %reference, signature = %referrer.digest(), reason = %finding, "notation signature did not verify");
                    failures.push((referrer.digest().clone(), finding));
                    continue;
                }
            };
            match self
                .trust
                .verify(statement, layer.media_type.as_str(), &bytes, subject, now)
                .await
            {
                Ok(verified) => {
                    log_findings(&reference, &verified);
                    let admits = std::iter::once((layer.digest.as_str().to_owned(), layer.size))
                        .chain(empty_config(&referrer))
                        .collect();
                    let signature = Signature {
                        artifact: SignatureArtifact {
                            kind: ArtifactKind::NotationSignature,
                            digest: referrer.digest().as_str().to_owned(),
                            size: referrer.bytes.len() as u64,
                            admits,
                        },
                        descriptor: referrer.descriptor(),
                    };
                    // Served when it is what a referrers tag must be and lists this signature.
                    let index = tag_index
                        .filter(|i| i.valid.is_ok())
                        .map(|i| SignatureArtifact {
                            kind: ArtifactKind::ReferrersIndex,
                            digest: Digest::sha256_of(&i.bytes).as_str().to_owned(),
                            size: i.bytes.len() as u64,
                            admits: Vec::new(),
                        });
                    return Ok(Arc::new(Evidence {
                        signatures: vec![signature],
                        index,
                        decision: Decision {
                            verified,
                            signature: Some(referrer.digest().clone()),
                        },
                    }));
                }
                Err(finding) => {
                    tracing::debug!(image = %reference, signature = %referrer.digest(), reason = %finding, "notation signature did not verify");
                    failures.push((referrer.digest().clone(), finding));
                }
            }
        }
        Err(refusal(&reference, &statement.name, failures))
    }

    /// A checked referrer's envelope when it is a Notation signature manifest
    /// ([`signature_layer`]), read and hashed; `None` for any other referrer, a finding for a
    /// signature manifest without a readable envelope.
    async fn envelope_of(
        &self,
        content: &ContentSource,
        referrer: &Referrer,
    ) -> Result<Option<Result<(oci::Descriptor, bytes::Bytes), Finding>>, Refusal> {
        let layer = match signature_layer(
            referrer.artifact_type.as_deref(),
            &referrer.config,
            &referrer.layers,
        ) {
            None => return Ok(None),
            Some(Err(finding)) => return Ok(Some(Err(finding))),
            Some(Ok(layer)) => layer,
        };
        let bytes = referrers::read_blob(content, &content.repo, &layer.digest, layer.size)
            .await
            .map_err(|e| unreachable_registry(layer.digest.as_str(), &e))?;
        Ok(Some(
            bytes
                .map(|b| (layer.clone(), b))
                .ok_or_else(|| envelope_missing(layer)),
        ))
    }

    /// The signed manifests of the query's repository: the subjects of its referrers tags
    /// and the digests found signed before, each verified; cached.
    async fn enumerate(&self, query: &TrustQuery) -> Result<Arc<SignedSet>, Refusal> {
        let content = self.content(query)?;
        if let Some(set) = self.sets.get(&content.repo) {
            return Ok(set);
        }
        let mut subjects =
            referrers::tagged_subjects(content, &content.repo, MAX_SUBJECTS, subject_of_tag)
                .await
                .map_err(unreachable)?;
        let remembered: Vec<Digest> = self.verdicts.collect(|((repo, digest), verdict)| {
            (*repo == content.repo && verdict.is_ok())
                .then(|| Digest::parse(digest).ok())
                .flatten()
        });
        for digest in remembered {
            if subjects.len() >= MAX_SUBJECTS {
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
            match content
                .upstream
                .manifest(&content.repo, subject.as_str(), content.max_manifest_size)
                .await
            {
                Ok(m) if subject.matches(&m.bytes) => set
                    .untagged
                    .push((subject.as_str().to_owned(), m.bytes.len() as i64)),
                Ok(_) | Err(UpstreamError::NotFound { .. }) => continue,
                Err(_) => {
                    complete = false;
                    continue;
                }
            }
            set.artifacts.extend(
                evidence
                    .signatures
                    .iter()
                    .map(|s| s.artifact.clone())
                    .chain(evidence.index.clone()),
            );
        }
        let set = Arc::new(set);
        if complete {
            self.sets.put(content.repo.clone(), set.clone());
        }
        Ok(set)
    }
}

impl Verifier for NotationVerifier {
    fn resolve_tag<'a>(
        &'a self,
        query: &'a TrustQuery,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<SignedTag, Refusal>> {
        Box::pin(async move {
            let content = self.content(query)?;
            // The referrers tag of a verified digest is served as its signature artifact.
            if let Some(subject) = subject_of_tag(tag) {
                let evidence = self.verify_digest(query, &subject).await?;
                return match &evidence.index {
                    Some(index) => Ok(SignedTag {
                        digest: index.digest.clone(),
                        size: index.size as i64,
                        role: format!("{ROLE}-signature"),
                    }),
                    None => Err(Refusal::new(
                        RefusalKind::Unsigned,
                        format!(
                            "{}:{tag} is not served: it lists no Notation signature that verified",
                            query.gun
                        ),
                    )),
                };
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
            Ok(Some(referrers::index(
                evidence.signatures.iter().map(|s| &s.descriptor),
                of.artifact_type,
            )))
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

/// The media type of the subject's descriptor: the manifest's own `mediaType`, else the
/// `Content-Type` it was served with (notation-go resolves the descriptor from the registry).
pub fn manifest_media_type(bytes: &[u8], served: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Raw>(bytes)
        .ok()
        .and_then(|r| r.media_type)
        .or_else(|| served.map(|s| s.split(';').next().unwrap_or(s).trim().to_owned()))
        .unwrap_or_default()
}

/// The envelope layer of a manifest that is a Notation signature
/// (`specs/signature-specification.md`, "Storage": its `artifactType`, or in the older form
/// its config's media type, is [`SIGNATURE_ARTIFACT_TYPE`]); `None` for any other manifest.
/// A signature manifest whose one layer is not an envelope (`application/jose+json`,
/// `application/cose`) of at most [`envelope::MAX_ENVELOPE`] bytes fails integrity, as
/// notation-go fails parsing it (README N13).
pub fn signature_layer<'a>(
    artifact_type: Option<&str>,
    config: &oci::Descriptor,
    layers: &'a [oci::Descriptor],
) -> Option<Result<&'a oci::Descriptor, Finding>> {
    let typed = artifact_type == Some(SIGNATURE_ARTIFACT_TYPE)
        || config.media_type.as_str() == SIGNATURE_ARTIFACT_TYPE;
    if !typed {
        return None;
    }
    let integrity = |message: String| Finding {
        check: Check::Integrity,
        message,
    };
    Some(match layers {
        [layer] if !matches!(layer.media_type.as_str(), envelope::JWS | envelope::COSE) => {
            Err(integrity(format!(
                "signature envelope type {:?} is not supported",
                layer.media_type.as_str()
            )))
        }
        [layer] if layer.size > envelope::MAX_ENVELOPE => Err(integrity(format!(
            "signature envelope of {} bytes is larger than {} bytes",
            layer.size,
            envelope::MAX_ENVELOPE
        ))),
        [layer] => Ok(layer),
        _ => Err(integrity(format!(
            "a signature manifest has exactly one layer, the envelope; this one has {}",
            layers.len()
        ))),
    })
}

/// The finding for a signature whose envelope blob is not there (or not its bytes).
pub fn envelope_missing(layer: &oci::Descriptor) -> Finding {
    Finding {
        check: Check::Integrity,
        message: format!(
            "signature envelope {} is not there, or not the {} bytes its descriptor names",
            layer.digest, layer.size
        ),
    }
}

/// The config a signature artifact admits: only the two bytes `{}` (the OCI empty
/// descriptor, or the older form's config of the signature media type), whose digest fixes
/// them.
fn empty_config(referrer: &Referrer) -> Option<(String, u64)> {
    let config = &referrer.config;
    (config.size == EMPTY_JSON.len() as u64 && config.digest.matches(EMPTY_JSON))
        .then(|| (config.digest.as_str().to_owned(), config.size))
}

/// Signature-typed referrers first (the listed type is unauthenticated: it only orders).
fn rank(listed: &Listed) -> u8 {
    u8::from(listed.artifact_type.as_deref() != Some(SIGNATURE_ARTIFACT_TYPE))
}

/// The refusal when no signature verified: each signature's failed check, in words.
pub fn refusal(reference: &str, statement: &str, failures: Vec<(Digest, Finding)>) -> Refusal {
    let Some((_, first)) = failures.first() else {
        return Refusal::new(
            RefusalKind::Unsigned,
            format!("no signature is associated with {reference:?}, make sure the artifact was signed successfully"),
        );
    };
    let kind = match first.check {
        Check::Expiry => RefusalKind::Expired,
        Check::Revocation => RefusalKind::Revoked,
        Check::Descriptor | Check::Integrity | Check::UserMetadata => RefusalKind::Mismatch,
        Check::Authenticity | Check::AuthenticTimestamp | Check::Plugin => {
            RefusalKind::UntrustedSigner
        }
        Check::Policy => RefusalKind::TrustError,
    };
    let reasons: Vec<String> = failures
        .iter()
        .map(|(digest, f)| format!("signature {digest}: {f}"))
        .collect();
    Refusal::new(
        kind,
        format!(
            "{reference}: no Notation signature verifies under trust policy statement {statement:?}: {}",
            reasons.join("; ")
        ),
    )
}

/// Checks the statement only logs (`permissive`, `audit`, `log` overrides), as notation
/// prints them: warnings beside a signature that verified.
fn log_findings(reference: &str, verified: &Verified) {
    for finding in &verified.logged {
        tracing::warn!(image = %reference, statement = %verified.statement, signer = %verified.signer, "notation: {finding} (logged by the trust policy, not enforced)");
    }
}

fn unreachable(e: ReferrersError) -> Refusal {
    unreachable_registry(e.what(), e.upstream())
}

/// The registry failed while signatures were read: not a verdict.
fn unreachable_registry(what: &str, e: &UpstreamError) -> Refusal {
    Refusal::upstream(
        format!("Notation signature data {what} could not be read: {e}"),
        e.clone(),
    )
}
