//! An OCI image layout as `notation verify --oci-layout` reads it (image-spec
//! `image-layout.md`; notation-go through oras-go's `oci.Store`): `index.json` names the
//! tagged manifests (`org.opencontainers.image.ref.name`), `blobs/<alg>/<hex>` holds every
//! blob, and the referrers of a manifest are the manifests reachable from `index.json`
//! whose `subject` is it (oras-go's predecessor graph: a referrers tag index is one more
//! tagged index, its children walked like any other).
//!
//! The layout is the user's, but its content is as untrusted as a registry's: every blob is
//! read bounded and must hash to its name, at most [`MAX_NODES`] manifests are walked and
//! [`MAX_REFERRERS`] signatures followed, signature-typed ones first; the verification is the
//! proxy's ([`Trust::verify`], [`signature_layer`], [`refusal`]).

use std::{
    collections::{HashSet, VecDeque},
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context as _};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{read_bounded, Outcome, MAX_MANIFEST};
use crate::{
    oci::{self, Digest, Manifest},
    trust::{
        notation::{
            verifier::{envelope_missing, manifest_media_type, refusal, signature_layer, Decision},
            verify::{skips, Finding, Subject, Trust, Verified},
            SIGNATURE_ARTIFACT_TYPE,
        },
        referrers::MAX_REFERRERS,
    },
};

/// Largest `index.json` read.
const MAX_INDEX: u64 = 4 * 1024 * 1024;
/// Manifests walked from `index.json`, at most.
pub const MAX_NODES: usize = 1024;
/// The annotation naming a tagged manifest (image-spec `annotations.md`).
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What the reference names in the layout.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Digest(Digest),
    Tag(String),
}

/// Splits `DIR@DIGEST` and `DIR:TAG` as notation does (the last `@`, else the last `:`
/// followed by no `/`).
pub fn parse_reference(reference: &str) -> anyhow::Result<(PathBuf, Target)> {
    if let Some((dir, digest)) = reference.rsplit_once('@') {
        return Ok((PathBuf::from(dir), Target::Digest(Digest::parse(digest)?)));
    }
    match reference.rsplit_once(':') {
        Some((dir, tag)) if !tag.is_empty() && !tag.contains('/') && !dir.is_empty() => {
            Ok((PathBuf::from(dir), Target::Tag(tag.to_owned())))
        }
        _ => Err(anyhow!(
            "{reference:?} is not an OCI layout reference: write DIR@sha256:<hex> or DIR:TAG"
        )),
    }
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArtifactType {
    #[serde(default)]
    artifact_type: Option<String>,
}

/// An OCI image layout directory.
pub struct Layout {
    dir: PathBuf,
    /// `index.json`'s manifests.
    tagged: Vec<RawDescriptor>,
}

/// A manifest whose `subject` is the digest asked about.
struct Candidate {
    digest: Digest,
    artifact_type: Option<String>,
    manifest: oci::ImageManifest,
}

// === impl Layout ===

impl Layout {
    /// Reads `index.json` of `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Layout> {
        let index = read_bounded(&dir.join("index.json"), MAX_INDEX, "OCI layout index")?;
        let index: RawIndex = serde_json::from_slice(&index)
            .with_context(|| format!("OCI layout index {}", dir.join("index.json").display()))?;
        Ok(Layout {
            dir: dir.to_owned(),
            tagged: index.manifests,
        })
    }

    /// The digest `index.json` tags `tag`.
    pub fn resolve(&self, tag: &str) -> anyhow::Result<Digest> {
        let tagged = self
            .tagged
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
            .ok_or_else(|| anyhow!("{}: no manifest is tagged {tag:?}", self.dir.display()))?;
        Ok(Digest::parse(&tagged.digest)?)
    }

    /// The blob `digest` (at most `max` bytes), which must hash to its name; `None` when
    /// the layout does not hold it.
    pub fn blob(&self, digest: &Digest, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
        let (algorithm, hex) = digest
            .as_str()
            .split_once(':')
            .ok_or_else(|| anyhow!("{digest} has no algorithm"))?;
        let path = self.dir.join("blobs").join(algorithm).join(hex);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = read_bounded(&path, max, "blob")?;
        if !digest.matches(&bytes) {
            return Err(anyhow!("blob {} does not hash to its name", path.display()));
        }
        Ok(Some(bytes))
    }

    /// The manifests reachable from `index.json` whose `subject` is `subject`, at most
    /// [`MAX_NODES`] manifests walked; absent or unparsable ones are passed over.
    fn referrers(&self, subject: &Digest) -> anyhow::Result<Vec<Candidate>> {
        let mut queue: VecDeque<Digest> = self
            .tagged
            .iter()
            .filter_map(|d| Digest::parse(&d.digest).ok())
            .collect();
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut found = Vec::new();
        while let Some(digest) = queue.pop_front() {
            if seen.len() >= MAX_NODES {
                tracing::warn!(layout = %self.dir.display(), "more than {MAX_NODES} manifests; the rest are not looked at");
                break;
            }
            if !seen.insert(digest.clone()) {
                continue;
            }
            let Some(bytes) = self.blob(&digest, MAX_MANIFEST)? else {
                continue;
            };
            match oci::parse_manifest(&bytes, None) {
                Ok(Manifest::Index(index)) => {
                    queue.extend(index.manifests().iter().map(|d| d.digest.clone()))
                }
                Ok(Manifest::Image(manifest)) => {
                    if manifest.subject().is_some_and(|s| s.digest == *subject) {
                        let artifact_type = serde_json::from_slice::<RawArtifactType>(&bytes)
                            .ok()
                            .and_then(|r| r.artifact_type);
                        found.push(Candidate {
                            digest,
                            artifact_type,
                            manifest,
                        });
                    }
                }
                Err(_) => continue,
            }
        }
        // Signature-typed first (the type is the pusher's claim: it only orders), bounded.
        found.sort_by_key(|c| {
            let typed = c.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE)
                || c.manifest.config().media_type.as_str() == SIGNATURE_ARTIFACT_TYPE;
            !typed
        });
        found.truncate(MAX_REFERRERS);
        Ok(found)
    }
}

/// Verifies `DIR@DIGEST` or `DIR:TAG` under the statement for `scope`, as notation-go
/// `Verify` does: a `skip` statement reads nothing, else the first signature that verifies
/// decides, and the refusal names each one's failed check.
pub async fn verify(
    trust: &Trust,
    reference: &str,
    scope: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Outcome> {
    let (dir, target) = parse_reference(reference)?;
    let layout = Layout::open(&dir)?;
    let digest = match target {
        Target::Digest(digest) => digest,
        Target::Tag(tag) => layout.resolve(&tag)?,
    };
    let reference = format!("{scope}@{digest}");
    let statement = trust
        .statement(scope, &reference)
        .map_err(|f| anyhow!("{f}"))?;
    if skips(statement) {
        return Ok(Outcome {
            reference,
            verdict: Ok(Decision {
                verified: Verified::skipped(statement),
                signature: None,
            }),
        });
    }
    let manifest = layout
        .blob(&digest, MAX_MANIFEST)?
        .ok_or_else(|| anyhow!("{}: the layout holds no manifest {digest}", dir.display()))?;
    let media_type = manifest_media_type(&manifest, None);
    let subject = Subject {
        media_type: &media_type,
        digest: digest.as_str(),
        size: manifest.len() as u64,
    };
    let mut failures: Vec<(Digest, Finding)> = Vec::new();
    for candidate in layout.referrers(&digest)? {
        let layer = match signature_layer(
            candidate.artifact_type.as_deref(),
            candidate.manifest.config(),
            candidate.manifest.layers(),
        ) {
            None => continue,
            Some(Err(finding)) => {
                failures.push((candidate.digest, finding));
                continue;
            }
            Some(Ok(layer)) => layer,
        };
        let Ok(Some(envelope)) = layout.blob(&layer.digest, layer.size) else {
            failures.push((candidate.digest, envelope_missing(layer)));
            continue;
        };
        match trust
            .verify(
                statement,
                layer.media_type.as_str(),
                &envelope,
                subject,
                now,
            )
            .await
        {
            Ok(verified) => {
                return Ok(Outcome {
                    reference,
                    verdict: Ok(Decision {
                        verified,
                        signature: Some(candidate.digest),
                    }),
                });
            }
            Err(finding) => failures.push((candidate.digest, finding)),
        }
    }
    let verdict = Err(refusal(&reference, &statement.name, failures));
    Ok(Outcome { reference, verdict })
}
