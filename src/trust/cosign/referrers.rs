//! The sigstore bundles among a digest's referrers (`sigstore/cosign: specs/BUNDLE_SPEC.md`,
//! "Retrieval"). Discovery and the checks of each referrer manifest (its digest and size
//! against its index descriptor, its `subject` against the image digest) are the shared
//! [`trust::referrers`](crate::trust::referrers); here each candidate is read as cosign reads
//! it (`ociremote.Bundle`: one bundle layer, whatever the artifactType says), weighed, and
//! kept to serve when it counted.

use bytes::Bytes;

use super::bundle::{self, BundleVerdict, BUNDLE_MEDIA_PREFIX};
use super::{unreachable_registry, Artifact, CosignVerifier, Served, Tally};
use crate::{
    oci::Digest,
    trust::{
        referrers::{self, Listed, Referrer, ReferrersError},
        ContentSource, Refusal,
    },
};

/// Largest bundle read: a bundle with a certificate and one log entry is a few KiB.
const MAX_BUNDLE: u64 = 256 * 1024;

/// A bundle artifact that counted for the digest.
#[derive(Debug, Clone)]
pub(super) struct BundleArtifact {
    pub(super) manifest: Artifact,
    /// Its descriptor as the referrers index listed it, to serve again.
    pub(super) descriptor: serde_json::Value,
}

/// What a digest's referrers held.
#[derive(Debug, Default)]
pub(super) struct Referred {
    /// The bundle artifacts that counted.
    pub(super) bundles: Vec<BundleArtifact>,
    /// The referrers tag index, when the registry lacks the referrers API: served when it
    /// is an OCI index and one of the bundles it lists counted.
    pub(super) index: Option<Served>,
    /// Whether any referrer was a bundle at all.
    pub(super) any: bool,
}

// === impl CosignVerifier ===

impl CosignVerifier {
    /// The bundles among `digest`'s referrers in the signature repository, each checked
    /// ([`bundle::verify`]) and its signers added to `tally`.
    pub(super) async fn referred(
        &self,
        content: &ContentSource,
        sig_repo: &str,
        digest: &Digest,
        tally: &mut Tally,
    ) -> Result<Referred, Refusal> {
        let mut referred = Referred::default();
        let mut listing = referrers::discover(content, sig_repo, digest, rank)
            .await
            .map_err(unreachable)?;
        // The tag is served as the subject's signature artifact, so it must be what it claims
        // (an index; its children are checked on their own when asked for).
        let tag_index: Option<Served> = listing
            .index()
            .map(|index| index.valid.clone().map(|()| Artifact::of(&index.bytes)));
        while let Some(referrer) = listing.next().await.map_err(unreachable)? {
            let Some((manifest, bytes)) = self.bundle_of(content, sig_repo, &referrer).await?
            else {
                continue;
            };
            referred.any = true;
            let counted = match bundle::verify(
                &bytes,
                digest,
                &self.keys,
                self.keyless.as_ref(),
                &self.bundle_checks(),
            ) {
                BundleVerdict::Vouches(signers) => {
                    tally.signers.add(signers);
                    true
                }
                // By one of the rule's signers, about this digest: weighed against the
                // attestation requirements only, and served when it met one.
                BundleVerdict::Attests(_, predicate) => {
                    tally
                        .attestation_seen
                        .get_or_insert_with(|| predicate.predicate_type.clone());
                    tally.attestations.offer(&self.attestations, &predicate)
                }
                BundleVerdict::OtherSubject(other) => {
                    tally.other_digest = Some(other);
                    false
                }
                BundleVerdict::Failed(e) => {
                    tracing::debug!(artifact = %referrer.digest(), error = %e, "sigstore bundle ignored");
                    tally.bundle_failure.get_or_insert(e);
                    false
                }
            };
            if counted {
                referred.bundles.push(BundleArtifact {
                    manifest,
                    descriptor: referrer.descriptor(),
                });
            }
        }
        referred.index = tag_index.map(|served| match served {
            Ok(_) if referred.bundles.is_empty() => {
                Err("none of the bundles it lists counted".to_owned())
            }
            served => served,
        });
        Ok(referred)
    }

    /// A checked referrer's bundle: its one layer (cosign `ociremote.Bundle`), of a bundle
    /// media type, read up to [`MAX_BUNDLE`] and hashed; with the artifact as served. `None`
    /// when it is no bundle artifact or its layer is not there. What makes it a bundle
    /// artifact is its one layer, not the artifactType it or its index descriptor gives
    /// (cosign reads the layer whatever they say).
    async fn bundle_of(
        &self,
        content: &ContentSource,
        sig_repo: &str,
        referrer: &Referrer,
    ) -> Result<Option<(Artifact, Bytes)>, Refusal> {
        let [layer] = referrer.layers.as_slice() else {
            return Ok(None);
        };
        if !layer.media_type.as_str().starts_with(BUNDLE_MEDIA_PREFIX) || layer.size > MAX_BUNDLE {
            return Ok(None);
        }
        let Some(bytes) = self
            .read_blob(content, sig_repo, &layer.digest, layer.size)
            .await?
        else {
            return Ok(None);
        };
        // What it admits: the bundle layer, and the config only when it is the OCI empty
        // descriptor (image-spec "Guidance for an Empty Descriptor"), whose bytes its
        // digest fixes. Nothing else it could list is a member.
        let admits = std::iter::once((layer.digest.as_str().to_owned(), layer.size))
            .chain(referrer.empty_config())
            .collect();
        Ok(Some((
            Artifact::of(&referrer.bytes).admitting(admits),
            bytes,
        )))
    }
}

/// The order bundles are tried in: what an index lists (`artifactType`, the predicate-type
/// annotation) is unauthenticated, so it only orders them, bundle-typed signatures first and
/// attestations last, so that a padded list cannot push a signature past
/// [`referrers::MAX_REFERRERS`].
fn rank(listed: &Listed) -> u8 {
    let bundle_typed = listed
        .artifact_type
        .as_deref()
        .is_some_and(|t| t.starts_with(BUNDLE_MEDIA_PREFIX));
    let attestation = listed
        .annotations
        .get(bundle::PREDICATE_ANNOTATION)
        .is_some_and(|p| p != bundle::SIGN_PREDICATE);
    u8::from(attestation) * 2 + u8::from(!bundle_typed)
}

/// The registry failed while the referrers were read.
fn unreachable(e: ReferrersError) -> Refusal {
    unreachable_registry(e.what(), e.upstream())
}

/// The referrers index served for a digest: the bundle artifacts that counted, as the
/// upstream listed them, filtered by `artifact_type` when asked.
pub(super) fn index(bundles: &[BundleArtifact], artifact_type: Option<&str>) -> Bytes {
    referrers::index(bundles.iter().map(|b| &b.descriptor), artifact_type)
}

#[cfg(test)]
mod tests {
    use super::{bundle, rank, Listed};
    use crate::oci::Digest;

    fn listed(artifact_type: Option<&str>, predicate: Option<&str>) -> Listed {
        Listed {
            raw: serde_json::Value::Null,
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            digest: Digest::sha256_of(b"m"),
            size: 1,
            artifact_type: artifact_type.map(str::to_owned),
            annotations: predicate
                .map(|p| (bundle::PREDICATE_ANNOTATION.to_owned(), p.to_owned()))
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn bundle_typed_signatures_rank_first_and_attestations_last() {
        let bundle_type = Some("application/vnd.dev.sigstore.bundle.v0.3+json");
        let signature = rank(&listed(bundle_type, Some(bundle::SIGN_PREDICATE)));
        let unannotated = rank(&listed(bundle_type, None));
        let untyped = rank(&listed(Some("application/vnd.oci.empty.v1+json"), None));
        let attestation = rank(&listed(bundle_type, Some("https://slsa.dev/provenance/v1")));
        assert_eq!(signature, 0);
        assert_eq!(unannotated, 0);
        assert!(untyped > signature);
        assert!(attestation > untyped);
    }
}
