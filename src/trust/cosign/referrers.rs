//! Discovery of a digest's sigstore bundles through OCI referrers (`sigstore/cosign:
//! specs/BUNDLE_SPEC.md`, "Retrieval"; distribution-spec 1.1 "Listing Referrers" and the
//! referrers tag schema). Everything read is checked against what pointed at it: each
//! artifact manifest against the index descriptor's digest, its `subject` against the image
//! digest, the bundle layer against its descriptor's digest and size.

use bytes::Bytes;
use serde::Deserialize;

use super::bundle::{self, BundleVerdict, BUNDLE_MEDIA_PREFIX};
use super::{unreachable_registry, Artifact, CosignVerifier, Served, Tally};
use crate::{
    oci::{self, Digest, ManifestKind},
    trust::{ContentSource, Refusal},
    upstream::UpstreamError,
};

/// Referrer descriptors followed per digest, over every page and whatever their listed
/// artifactType (signatures and attestations share the type).
pub const MAX_BUNDLES: usize = 16;
/// Largest bundle read: a bundle with a certificate and one log entry is a few KiB.
const MAX_BUNDLE: u64 = 256 * 1024;
/// The empty descriptor's media type and bytes (image-spec `manifest.md`).
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_JSON: &[u8] = b"{}";

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

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArtifact {
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    subject: Option<RawSubject>,
}

#[derive(Deserialize)]
struct RawSubject {
    digest: String,
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
        let what = format!("{sig_repo}@{digest} referrers");
        let listed = match content
            .upstream
            // Unfiltered: the artifactType a registry or a referrers tag index lists is not
            // necessarily the bundle's (cosign's fallback index lists its config's type).
            .referrers(sig_repo, digest.as_str(), None, content.max_manifest_size)
            .await
        {
            Ok(Some(listed)) => listed,
            Ok(None) => return Ok(referred),
            Err(e) => return Err(unreachable_registry(&what, &e)),
        };
        // The tag is served as the subject's signature artifact, so it must be what it claims
        // (an index; its children are checked on their own when asked for), not any manifest
        // somebody tagged `sha256-<hex>`.
        let tag_index: Option<Served> =
            listed
                .tag
                .is_some()
                .then(|| match oci::parse_manifest(&listed.bytes, None) {
                    Ok(m) if m.kind() == ManifestKind::OciIndex => Ok(Artifact::of(&listed.bytes)),
                    Ok(m) => Err(format!("it is a {}, not an OCI index", m.media_type())),
                    Err(e) => Err(e.to_string()),
                });
        let index: RawIndex = match serde_json::from_slice(&listed.bytes) {
            Ok(index) => index,
            Err(e) => {
                tracing::debug!(what = %what, error = %e, "referrers index ignored");
                referred.index = tag_index.map(|_| Err(format!("it does not parse: {e}")));
                return Ok(referred);
            }
        };
        let mut listed_manifests = index.manifests;
        for page in &listed.more {
            match serde_json::from_slice::<RawIndex>(page) {
                Ok(page) => listed_manifests.extend(page.manifests),
                Err(e) => tracing::debug!(what = %what, error = %e, "referrers page ignored"),
            }
        }
        let candidates = candidates(listed_manifests, content.max_manifest_size);
        for (descriptor, raw) in candidates {
            let Ok(manifest_digest) = Digest::parse(&descriptor.digest) else {
                continue;
            };
            let Some((manifest, bytes)) = self
                .artifact(content, sig_repo, digest, &manifest_digest, descriptor.size)
                .await?
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
                    tracing::debug!(artifact = %manifest_digest, error = %e, "sigstore bundle ignored");
                    tally.bundle_failure.get_or_insert(e);
                    false
                }
            };
            if counted {
                // Served as listed, with the size of what was read and checked.
                let mut descriptor = raw;
                descriptor["size"] = serde_json::json!(manifest.size);
                referred.bundles.push(BundleArtifact {
                    manifest,
                    descriptor,
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

    /// A bundle artifact's manifest and bundle: the manifest, exactly `size` bytes as its
    /// index descriptor says (bounded by the caller), hashed against `wanted`, its
    /// `subject` the image `digest`, one bundle layer (cosign `ociremote.Bundle`) read up to
    /// [`MAX_BUNDLE`] and hashed. `None` when any of it does not hold or is not there.
    async fn artifact(
        &self,
        content: &ContentSource,
        sig_repo: &str,
        digest: &Digest,
        wanted: &Digest,
        size: u64,
    ) -> Result<Option<(Artifact, Bytes)>, Refusal> {
        let (manifest, media_type) = match content
            .upstream
            .manifest(sig_repo, wanted.as_str(), size)
            .await
        {
            Ok(m) if m.bytes.len() as u64 == size && wanted.matches(&m.bytes) => {
                (m.bytes, m.media_type)
            }
            Ok(_) | Err(UpstreamError::NotFound { .. } | UpstreamError::TooLarge { .. }) => {
                return Ok(None)
            }
            Err(e) => return Err(unreachable_registry(wanted.as_str(), &e)),
        };
        // It joins the signed set, so its blobs are served: an image manifest (as the
        // proxy will parse it) whose config is small (the empty descriptor, in cosign's).
        match oci::parse_manifest(&manifest, media_type.as_deref()) {
            Ok(oci::Manifest::Image(image)) if image.config().size <= MAX_BUNDLE => {}
            _ => return Ok(None),
        }
        let Ok(raw) = serde_json::from_slice::<RawArtifact>(&manifest) else {
            return Ok(None);
        };
        // distribution-spec: a referrer names its subject; a bundle listed for another
        // digest (a stale or forged index entry) is not this digest's.
        // What makes it a bundle artifact is its one layer, not the artifactType it or its
        // index descriptor gives (cosign `ociremote.Bundle` reads the layer whatever they say).
        if raw.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest.as_str()) {
            return Ok(None);
        }
        let [layer] = raw.layers.as_slice() else {
            return Ok(None);
        };
        if !layer.media_type.starts_with(BUNDLE_MEDIA_PREFIX) || layer.size > MAX_BUNDLE {
            return Ok(None);
        }
        let Ok(layer_digest) = Digest::parse(&layer.digest) else {
            return Ok(None);
        };
        let Some(bytes) = self
            .read_blob(content, sig_repo, &layer_digest, layer.size)
            .await?
        else {
            return Ok(None);
        };
        // What it admits: the bundle layer, and the config only when it is the OCI empty
        // descriptor (image-spec "Guidance for an Empty Descriptor"), whose bytes its
        // digest fixes. Nothing else it could list is a member.
        let mut admits = vec![(layer_digest.as_str().to_owned(), layer.size)];
        if let Ok(oci::Manifest::Image(image)) =
            oci::parse_manifest(&manifest, media_type.as_deref())
        {
            let config = image.config();
            if config.media_type.as_str() == OCI_EMPTY
                && config.size == EMPTY_JSON.len() as u64
                && config.digest.matches(EMPTY_JSON)
            {
                admits.push((config.digest.as_str().to_owned(), config.size));
            }
        }
        Ok(Some((Artifact::of(&manifest).admitting(admits), bytes)))
    }
}

/// The descriptors worth following among those listed, at most [`MAX_BUNDLES`], best first.
/// Every manifest listed is a candidate, as cosign tries each (`GetBundles`): what it lists
/// about them (`artifactType`, the predicate-type annotation) is unauthenticated, so it only
/// orders them, bundle-typed signatures first and attestations last, so that a padded list
/// cannot push a signature past the bound. Listed twice counts once; a descriptor larger
/// than `max_manifest_size` or without a digest is no manifest the proxy would read.
fn candidates(
    listed: Vec<serde_json::Value>,
    max_manifest_size: u64,
) -> Vec<(RawDescriptor, serde_json::Value)> {
    let mut seen = std::collections::HashSet::new();
    let mut candidates: Vec<(u8, RawDescriptor, serde_json::Value)> = listed
        .into_iter()
        .filter_map(|v| Some((serde_json::from_value::<RawDescriptor>(v.clone()).ok()?, v)))
        .filter(|(d, _)| d.size <= max_manifest_size && seen.insert(d.digest.clone()))
        .map(|(d, v)| {
            let bundle_typed = d
                .artifact_type
                .as_deref()
                .is_some_and(|t| t.starts_with(BUNDLE_MEDIA_PREFIX));
            let attestation = d
                .annotations
                .get(bundle::PREDICATE_ANNOTATION)
                .is_some_and(|p| p != bundle::SIGN_PREDICATE);
            (u8::from(attestation) * 2 + u8::from(!bundle_typed), d, v)
        })
        .collect();
    // Stable: the registry's order within a rank.
    candidates.sort_by_key(|(rank, _, _)| *rank);
    candidates
        .into_iter()
        .take(MAX_BUNDLES)
        .map(|(_, d, v)| (d, v))
        .collect()
}

/// The referrers index served for a digest: the bundle artifacts that counted, as the
/// upstream listed them, filtered by `artifact_type` when asked.
pub(super) fn index(bundles: &[BundleArtifact], artifact_type: Option<&str>) -> Bytes {
    let manifests: Vec<&serde_json::Value> = bundles
        .iter()
        .map(|b| &b.descriptor)
        .filter(|d| {
            artifact_type.is_none_or(|t| d.get("artifactType").and_then(|v| v.as_str()) == Some(t))
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    Bytes::from(serde_json::to_vec(&index).unwrap_or_default())
}
