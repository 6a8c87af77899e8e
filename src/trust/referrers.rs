//! OCI referrers discovery, shared by the verifiers whose signatures are referrers of the
//! image they sign (cosign's sigstore bundles, Notation's signatures).
//!
//! [`discover`] lists the referrers of a subject digest (distribution-spec 1.1, "Listing
//! Referrers": `GET /v2/<name>/referrers/<digest>`, every same-origin `Link: rel="next"` page,
//! at most [`REFERRERS_MAX_PAGES`]; and when the registry answers `404`, the referrers tag
//! schema fallback, the index tagged `<alg>-<hex>`, "Referrers Tag Schema" and "Unavailable
//! Referrers API"), keeps at most [`MAX_REFERRERS`] candidates, and [`Listing::next`] reads
//! them one at a time. Everything read is checked against what pointed at it, and nothing the
//! index says about a candidate decides anything:
//!
//! - a candidate manifest is read at exactly its descriptor's `size` (bounded by
//!   `max_manifest_size`) and must hash to its descriptor's digest;
//! - it must be an image manifest as the proxy parses it (image-spec 1.1 artifacts are image
//!   manifests), whose config is at most [`MAX_CONFIG`] bytes;
//! - its `subject` must be the digest asked about (distribution-spec: a referrer names its
//!   subject; an index entry for another digest is stale or forged).
//!
//! The listed `artifactType` and annotations are unauthenticated: discovery never filters on
//! them (cosign's fallback index lists its config's type, not the bundle's), and callers may
//! only use them to order candidates, so that a padded list cannot push the kind they look
//! for past the bound. What a candidate is (a bundle, a signature envelope) is for the
//! verifier to decide from its layers.
//!
//! [`REFERRERS_MAX_PAGES`]: crate::upstream::REFERRERS_MAX_PAGES

use std::collections::{BTreeMap, HashSet, VecDeque};

use bytes::Bytes;
use serde::Deserialize;

use crate::{
    oci::{self, Descriptor, Digest, ManifestKind},
    trust::ContentSource,
    upstream::{Upstream, UpstreamError},
};

/// Referrer descriptors followed per digest, over every page and whatever their listed
/// artifactType (signatures and attestations may share the type).
pub const MAX_REFERRERS: usize = 16;
/// Largest config a referrer may name: artifacts carry the empty descriptor or a few bytes
/// of metadata.
pub const MAX_CONFIG: u64 = 256 * 1024;
/// The empty descriptor's bytes (image-spec `manifest.md`, "Guidance for an Empty
/// Descriptor").
const EMPTY_JSON: &[u8] = b"{}";

/// Where a listing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The referrers API (`GET /v2/<name>/referrers/<digest>`), every page read.
    Api,
    /// The referrers tag index (`sha256-<hex>`) of a registry without the API.
    TagIndex,
}

/// The registry failed while referrers were read: not a verdict about the subject.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReferrersError {
    /// The referrers list (API pages or tag index) could not be read.
    #[error("{what} could not be listed: {source}")]
    List { what: String, source: UpstreamError },
    /// A listed referrer manifest could not be read (not "absent": that skips it).
    #[error("referrer manifest {what} could not be read: {source}")]
    Manifest { what: String, source: UpstreamError },
}

// === impl ReferrersError ===

impl ReferrersError {
    /// What was being read: `<repo>@<digest> referrers`, or the referrer manifest's digest.
    pub fn what(&self) -> &str {
        match self {
            ReferrersError::List { what, .. } | ReferrersError::Manifest { what, .. } => what,
        }
    }

    /// The registry failure.
    pub fn upstream(&self) -> &UpstreamError {
        match self {
            ReferrersError::List { source, .. } | ReferrersError::Manifest { source, .. } => source,
        }
    }
}

/// A descriptor as a referrers index listed it: unauthenticated claims about a manifest.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The descriptor exactly as listed, to serve again.
    pub raw: serde_json::Value,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// The referrers tag index of a registry without the referrers API, as read.
#[derive(Debug, Clone)]
pub struct TagIndex {
    /// The tag it was read from (`sha256-<hex>`).
    pub tag: String,
    /// Its exact bytes.
    pub bytes: Bytes,
    /// Whether it is what a referrers tag must hold, an OCI image index (a caller serving it
    /// serves it as that; its children are checked on their own), and why not.
    pub valid: Result<(), String>,
}

/// A referrer read and checked: its manifest hashes to the listed digest, is as long as
/// listed, is an image manifest and names the subject.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// How the index listed it (unauthenticated; its digest and size are what was checked).
    pub listed: Listed,
    /// The manifest's exact bytes.
    pub bytes: Bytes,
    /// `Content-Type` as served.
    pub media_type: Option<String>,
    /// The manifest's own `artifactType` (a claim of whoever pushed it).
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// Its `subject`: the digest asked about.
    pub subject: Descriptor,
    pub source: Source,
}

// === impl Referrer ===

impl Referrer {
    /// The manifest's digest (the listed one, which it hashes to).
    pub fn digest(&self) -> &Digest {
        &self.listed.digest
    }

    /// Its descriptor to serve in a referrers index: as listed, with the size of what was
    /// read and checked.
    pub fn descriptor(&self) -> serde_json::Value {
        let mut descriptor = self.listed.raw.clone();
        descriptor["size"] = serde_json::json!(self.bytes.len());
        descriptor
    }

    /// The config (digest, size) when it is the OCI empty descriptor
    /// (`application/vnd.oci.empty.v1+json`, the two bytes `{}`): its digest fixes its bytes,
    /// so serving it delivers nothing anybody could choose.
    pub fn empty_config(&self) -> Option<(String, u64)> {
        let config = &self.config;
        (config.media_type.as_str() == oci::manifest::OCI_EMPTY
            && config.size == EMPTY_JSON.len() as u64
            && config.digest.matches(EMPTY_JSON))
        .then(|| (config.digest.as_str().to_owned(), config.size))
    }
}

/// A subject's referrers: the candidates still to read, and the tag index they came from on
/// a registry without the referrers API.
#[derive(Debug)]
pub struct Listing {
    source: Source,
    index: Option<TagIndex>,
    pending: VecDeque<Listed>,
    upstream: Option<Upstream>,
    repo: String,
    subject: Digest,
}

// === impl Listing ===

impl Listing {
    fn empty(repo: &str, subject: &Digest, source: Source) -> Self {
        Listing {
            source,
            index: None,
            pending: VecDeque::new(),
            upstream: None,
            repo: repo.to_owned(),
            subject: subject.clone(),
        }
    }

    /// Where the list came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The referrers tag index, when the list came from one.
    pub fn index(&self) -> Option<&TagIndex> {
        self.index.as_ref()
    }

    /// The candidates not read yet, in the order they will be.
    pub fn pending(&self) -> impl Iterator<Item = &Listed> {
        self.pending.iter()
    }

    /// The next candidate that passes every check; candidates that are absent, longer than
    /// listed, hash to another digest, are not image manifests or name another subject are
    /// skipped. `Ok(None)` when none is left.
    pub async fn next(&mut self) -> Result<Option<Referrer>, ReferrersError> {
        let Some(upstream) = &self.upstream else {
            return Ok(None);
        };
        while let Some(listed) = self.pending.pop_front() {
            let (bytes, media_type) = match upstream
                .manifest(&self.repo, listed.digest.as_str(), listed.size)
                .await
            {
                Ok(m) => (m.bytes, m.media_type),
                // Absent, or longer than its descriptor: not this subject's referrer.
                Err(UpstreamError::NotFound { .. } | UpstreamError::TooLarge { .. }) => {
                    tracing::debug!(referrer = %listed.digest, "listed referrer not there");
                    continue;
                }
                Err(source) => {
                    return Err(ReferrersError::Manifest {
                        what: listed.digest.as_str().to_owned(),
                        source,
                    })
                }
            };
            match check(listed, bytes, media_type, &self.subject, self.source) {
                Ok(referrer) => return Ok(Some(referrer)),
                Err((digest, why)) => {
                    tracing::debug!(referrer = %digest, reason = why, "referrer ignored");
                }
            }
        }
        Ok(None)
    }
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
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArtifactType {
    #[serde(default)]
    artifact_type: Option<String>,
}

/// The referrers of `subject` in `repo` at the content source's registry, at most
/// [`MAX_REFERRERS`] candidates, ordered by `rank` (lowest first, the registry's order within
/// a rank) before the bound is applied. `rank` sees only what the index claims; use it to put
/// the kind a caller looks for first, never to decide what a candidate is. No referrers at
/// all (no API and no tag) is an empty listing.
pub async fn discover(
    content: &ContentSource,
    repo: &str,
    subject: &Digest,
    rank: impl Fn(&Listed) -> u8,
) -> Result<Listing, ReferrersError> {
    let what = format!("{repo}@{subject} referrers");
    let listed = match content
        .upstream
        // Unfiltered: the artifactType a registry or a referrers tag index lists is not
        // necessarily the artifact's (cosign's fallback index lists its config's type).
        .referrers(repo, subject.as_str(), None, content.max_manifest_size)
        .await
    {
        Ok(Some(listed)) => listed,
        Ok(None) => return Ok(Listing::empty(repo, subject, Source::Api)),
        Err(source) => return Err(ReferrersError::List { what, source }),
    };
    let (source, mut index) = match listed.tag {
        Some(tag) => {
            let valid = tag_index_valid(&listed.bytes);
            let index = TagIndex {
                tag,
                bytes: listed.bytes.clone(),
                valid,
            };
            (Source::TagIndex, Some(index))
        }
        None => (Source::Api, None),
    };
    let first: RawIndex = match serde_json::from_slice(&listed.bytes) {
        Ok(first) => first,
        Err(e) => {
            tracing::debug!(what = %what, error = %e, "referrers index ignored");
            if let Some(index) = &mut index {
                index.valid = Err(format!("it does not parse: {e}"));
            }
            let mut listing = Listing::empty(repo, subject, source);
            listing.index = index;
            return Ok(listing);
        }
    };
    let mut manifests = first.manifests;
    for page in &listed.more {
        match serde_json::from_slice::<RawIndex>(page) {
            Ok(page) => manifests.extend(page.manifests),
            Err(e) => tracing::debug!(what = %what, error = %e, "referrers page ignored"),
        }
    }
    Ok(Listing {
        source,
        index,
        pending: candidates(manifests, content.max_manifest_size, rank).into(),
        upstream: Some(content.upstream.clone()),
        repo: repo.to_owned(),
        subject: subject.clone(),
    })
}

/// An OCI image index of `descriptors`, those whose `artifactType` is `artifact_type` when
/// one is asked for: the answer to `GET /v2/<name>/referrers/<digest>` (distribution-spec
/// 1.1, "Listing Referrers").
pub fn index<'a>(
    descriptors: impl IntoIterator<Item = &'a serde_json::Value>,
    artifact_type: Option<&str>,
) -> Bytes {
    let manifests: Vec<&serde_json::Value> = descriptors
        .into_iter()
        .filter(|d| {
            artifact_type.is_none_or(|t| d.get("artifactType").and_then(|v| v.as_str()) == Some(t))
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::manifest::OCI_IMAGE_INDEX,
        "manifests": manifests,
    });
    Bytes::from(serde_json::to_vec(&index).unwrap_or_default())
}

/// A blob of a referrer (a signature, a bundle) of exactly `size` bytes (its descriptor's,
/// bounded by the caller) hashing to `digest`; `None` otherwise, or when the registry does
/// not have it or sends more.
pub async fn read_blob(
    content: &ContentSource,
    repo: &str,
    digest: &Digest,
    size: u64,
) -> Result<Option<Bytes>, UpstreamError> {
    match content
        .upstream
        .small_blob(repo, digest.as_str(), size)
        .await
    {
        Ok(bytes) => Ok((bytes.len() as u64 == size && digest.matches(&bytes)).then_some(bytes)),
        Err(UpstreamError::NotFound { .. } | UpstreamError::TooLarge { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The digest a referrers tag stands for, if `tag` is one (`sha256-<hex>`, no suffix):
/// distribution-spec 1.1 "Referrers Tag Schema", `<alg>-<ref>`.
pub fn subject_of_tag(tag: &str) -> Option<Digest> {
    let (algorithm, hex) = tag.split_once('-')?;
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

/// Tags asked for per page of a tag list, and pages read at most.
const TAGS_PAGE: usize = 1000;
const MAX_TAG_PAGES: usize = 20;

/// The subjects the tags of `repo` stand for (`subject_of(tag)`: a referrers tag
/// `sha256-<hex>`, cosign's `sha256-<hex>.sig`), distinct, sorted, at most `max`, from at
/// most [`MAX_TAG_PAGES`] pages of the tag list: the candidates of a repository's signed
/// set for the verifiers whose signatures sit beside the image. A repository the registry
/// does not have has none.
pub async fn tagged_subjects(
    content: &ContentSource,
    repo: &str,
    max: usize,
    subject_of: impl Fn(&str) -> Option<Digest>,
) -> Result<Vec<Digest>, ReferrersError> {
    #[derive(Deserialize)]
    struct TagList {
        tags: Option<Vec<String>>,
    }
    let mut subjects = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..MAX_TAG_PAGES {
        let (body, _) = match content
            .upstream
            .tags(repo, Some(TAGS_PAGE), last.as_deref())
            .await
        {
            Ok(page) => page,
            Err(UpstreamError::NotFound { .. }) => break,
            Err(source) => {
                return Err(ReferrersError::List {
                    what: format!("{repo} tags"),
                    source,
                })
            }
        };
        let tags: Vec<String> = serde_json::from_slice::<TagList>(&body)
            .map(|l| l.tags.unwrap_or_default())
            .unwrap_or_default();
        subjects.extend(tags.iter().filter_map(|t| subject_of(t)));
        if tags.len() < TAGS_PAGE || subjects.len() >= max {
            break;
        }
        last = tags.last().cloned();
    }
    subjects.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    subjects.dedup();
    subjects.truncate(max);
    Ok(subjects)
}

/// The indexes several verifiers answered for one digest ([`index`]'s), as one: every
/// descriptor once (by digest), in order; `None` when there are none.
pub fn merge(indexes: &[Bytes]) -> Option<Bytes> {
    match indexes {
        [] => None,
        [one] => Some(one.clone()),
        _ => {
            let mut seen = HashSet::new();
            let descriptors: Vec<serde_json::Value> = indexes
                .iter()
                .filter_map(|i| serde_json::from_slice::<RawIndex>(i).ok())
                .flat_map(|i| i.manifests)
                .filter(|d| seen.insert(d.get("digest").map(ToString::to_string)))
                .collect();
            Some(index(&descriptors, None))
        }
    }
}

/// Whether a referrers tag holds an OCI image index ("Referrers Tag Schema"), not any
/// manifest somebody tagged `sha256-<hex>`.
fn tag_index_valid(bytes: &[u8]) -> Result<(), String> {
    match oci::parse_manifest(bytes, None) {
        Ok(m) if m.kind() == ManifestKind::OciIndex => Ok(()),
        Ok(m) => Err(format!("it is a {}, not an OCI index", m.media_type())),
        Err(e) => Err(e.to_string()),
    }
}

/// The descriptors worth following among those listed, at most [`MAX_REFERRERS`], best
/// first by `rank`, stable. Every manifest listed is a candidate, as cosign tries each
/// (`GetBundles`). Listed twice counts once; a descriptor that does not parse, has no valid
/// digest or is larger than `max_manifest_size` is no manifest the proxy would read, and
/// takes no place.
fn candidates(
    listed: Vec<serde_json::Value>,
    max_manifest_size: u64,
    rank: impl Fn(&Listed) -> u8,
) -> Vec<Listed> {
    let mut seen = HashSet::new();
    let mut candidates: Vec<(u8, Listed)> = listed
        .into_iter()
        .filter_map(|raw| {
            let d = serde_json::from_value::<RawDescriptor>(raw.clone()).ok()?;
            let digest = Digest::parse(&d.digest).ok()?;
            Some(Listed {
                raw,
                media_type: d.media_type,
                digest,
                size: d.size,
                artifact_type: d.artifact_type,
                annotations: d.annotations,
            })
        })
        .filter(|l| l.size <= max_manifest_size && seen.insert(l.digest.clone()))
        .map(|l| (rank(&l), l))
        .collect();
    candidates.sort_by_key(|(rank, _)| *rank);
    candidates
        .into_iter()
        .take(MAX_REFERRERS)
        .map(|(_, l)| l)
        .collect()
}

/// Checks a candidate's manifest, read at its listed size, against its listing and the
/// subject; the digest and why not when it fails.
fn check(
    listed: Listed,
    bytes: Bytes,
    media_type: Option<String>,
    subject: &Digest,
    source: Source,
) -> Result<Referrer, (Digest, &'static str)> {
    // distribution-spec "Pulling manifests": the content must be what the descriptor names.
    if bytes.len() as u64 != listed.size || !listed.digest.matches(&bytes) {
        return Err((
            listed.digest,
            "its bytes are not those its descriptor names",
        ));
    }
    // image-spec 1.1: an artifact is an image manifest; its blobs may be served, so it must
    // be one as the proxy parses it, with a small config.
    let image = match oci::parse_manifest(&bytes, media_type.as_deref()) {
        Ok(oci::Manifest::Image(image)) if image.config().size <= MAX_CONFIG => image,
        Ok(oci::Manifest::Image(_)) => return Err((listed.digest, "its config is too large")),
        Ok(oci::Manifest::Index(_)) => return Err((listed.digest, "it is an index")),
        Err(_) => return Err((listed.digest, "it is no manifest the proxy serves")),
    };
    // distribution-spec "Listing Referrers": a referrer names its subject; one listed for
    // another digest (a stale or forged index entry) is not this digest's.
    let Some(named) = image.subject().filter(|s| s.digest == *subject).cloned() else {
        return Err((listed.digest, "its subject is another manifest"));
    };
    let artifact_type = serde_json::from_slice::<RawArtifactType>(&bytes)
        .ok()
        .and_then(|r| r.artifact_type);
    Ok(Referrer {
        config: image.config().clone(),
        layers: image.layers().to_vec(),
        subject: named,
        artifact_type,
        listed,
        bytes,
        media_type,
        source,
    })
}

#[cfg(test)]
mod tests;
