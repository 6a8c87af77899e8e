//! Manifests: media types, what a manifest references, and `Accept` negotiation.
//!
//! [`parse_manifest`] reads only what the trust and content layers need to walk a signed
//! digest's closure: an index's children, an image manifest's config and layers, and the
//! `subject` of either. Unknown fields are ignored; anything that could make two parsers
//! disagree about which of those a document references is refused.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::excerpt;
use super::media_type::MediaType;

/// OCI image manifest.
pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI empty descriptor (`{}`), the config and layer of artifacts that have none.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (schema 2 multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker container image config.
pub const DOCKER_CONTAINER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker schema 1 manifest; refused.
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 signed manifest; refused.
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// `Accept` value for fetching manifests upstream: every kind [`parse_manifest`] accepts.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Most descriptors (config, layers, children, subject) one manifest may reference.
///
/// The byte size limit bounds memory; this bounds the work every reference causes later
/// (trust look-ups, cache entries, upstream fetches).
pub const MAX_DESCRIPTORS: usize = 10_000;

/// A sensible manifest size limit for callers to enforce while reading the body: 4 MiB, the
/// limit distribution applies to manifest uploads.
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The manifest formats trustgate serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// [`OCI_IMAGE_MANIFEST`].
    OciManifest,
    /// [`OCI_IMAGE_INDEX`].
    OciIndex,
    /// [`DOCKER_MANIFEST_V2`].
    DockerManifest,
    /// [`DOCKER_MANIFEST_LIST`].
    DockerManifestList,
}

/// A reference from one piece of content to another, as in the OCI image spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: MediaType,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size of the referenced content in bytes.
    pub size: u64,
    /// For an index's children: the platform the image runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Operating system version (Windows images).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// A parsed manifest: what it is and what it references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI image manifest or Docker schema 2 manifest.
    Image(ImageManifest),
    /// An OCI image index or Docker manifest list.
    Index(ImageIndex),
}

/// An image manifest: one config blob and its layer blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageManifest {
    kind: ManifestKind,
    config: Descriptor,
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

/// An index: a list of child manifests, usually one per platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageIndex {
    kind: ManifestKind,
    manifests: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

/// Why bytes are not a manifest trustgate serves.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or a field has the wrong type, or a digest or media type is invalid, or a
    /// field appears twice.
    #[error("malformed manifest: {0}")]
    Json(#[from] serde_json::Error),
    /// A top-level key differs from a known one only in case. Go's `encoding/json`, which
    /// most clients use, matches keys case-insensitively; we do not, so we refuse rather
    /// than read a different document than the client will.
    #[error("manifest key {key:?} differs from {expected:?} only in case")]
    CaseVariantKey {
        /// The key found.
        key: String,
        /// The key it would stand for in a case-insensitive parser.
        expected: &'static str,
    },
    /// Docker schema 1, which carries no content-addressed config and is long deprecated.
    #[error("Docker schema 1 manifests are not supported")]
    Schema1,
    /// Neither a `mediaType` field nor a `Content-Type` says what this is.
    #[error("manifest has no mediaType field and no manifest Content-Type")]
    MissingMediaType,
    /// A media type that is not one of the four manifest kinds.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
    },
    /// The `mediaType` field and the `Content-Type` header name different manifest kinds.
    #[error("manifest mediaType {field} does not match Content-Type {header}")]
    MediaTypeMismatch {
        /// The media type from the document.
        field: &'static str,
        /// The media type from the header.
        header: &'static str,
    },
    /// `schemaVersion` is missing or not 2.
    #[error("unsupported manifest schemaVersion {found:?}, expected 2")]
    UnsupportedSchemaVersion {
        /// The version found, if any.
        found: Option<u64>,
    },
    /// An image manifest without `config`.
    #[error("{kind} has no config descriptor")]
    MissingConfig {
        /// The manifest's kind.
        kind: ManifestKind,
    },
    /// An image manifest with `manifests`, or an index with `config` or `layers`: a document
    /// that means different things to clients that sniff and clients that trust `mediaType`.
    #[error("{kind} must not have a {field:?} field")]
    Ambiguous {
        /// The kind the document declares.
        kind: ManifestKind,
        /// The field that belongs to the other kind.
        field: &'static str,
    },
    /// More than [`MAX_DESCRIPTORS`] references.
    #[error("manifest references {count} descriptors, the limit is {MAX_DESCRIPTORS}")]
    TooManyDescriptors {
        /// Number of descriptors found.
        count: usize,
    },
}

/// What to answer a client whose `Accept` header is compared with a manifest's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptDecision {
    /// Serve the manifest as it is.
    Serve,
    /// The client cannot take this kind: answer `MANIFEST_UNKNOWN` (404), as distribution does.
    NotAcceptable,
    /// A tag names a Docker manifest list but the client does not accept lists. Distribution
    /// serves the list's `linux/amd64` image instead ([`ImageIndex::default_platform`]),
    /// which is in the verified closure of the list; answer [`NotAcceptable`] if there is none.
    ///
    /// [`NotAcceptable`]: AcceptDecision::NotAcceptable
    DefaultPlatform,
}

// === impl ManifestKind ===

impl ManifestKind {
    /// The kind's media type, as sent in `Content-Type`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::OciManifest => OCI_IMAGE_MANIFEST,
            Self::OciIndex => OCI_IMAGE_INDEX,
            Self::DockerManifest => DOCKER_MANIFEST_V2,
            Self::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// Whether this kind lists child manifests rather than blobs.
    pub fn is_index(self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerManifestList)
    }

    /// The kind named exactly by `media_type`.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            OCI_IMAGE_MANIFEST => Some(Self::OciManifest),
            OCI_IMAGE_INDEX => Some(Self::OciIndex),
            DOCKER_MANIFEST_V2 => Some(Self::DockerManifest),
            DOCKER_MANIFEST_LIST => Some(Self::DockerManifestList),
            _ => None,
        }
    }

    /// The kind named by a `Content-Type` or `Accept` entry: parameters are dropped and case
    /// is ignored, as HTTP media types are case-insensitive.
    fn from_header(value: &str) -> Option<Self> {
        let essence = essence(value);
        [
            Self::OciManifest,
            Self::OciIndex,
            Self::DockerManifest,
            Self::DockerManifestList,
        ]
        .into_iter()
        .find(|kind| kind.media_type().eq_ignore_ascii_case(essence))
    }
}

impl fmt::Display for ManifestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.media_type())
    }
}

/// A header media type without parameters or surrounding space.
fn essence(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

fn is_schema1(media_type: &str) -> bool {
    [DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED]
        .iter()
        .any(|v1| v1.eq_ignore_ascii_case(media_type))
}

// === impl Manifest ===

impl Manifest {
    /// The manifest's kind.
    pub fn kind(&self) -> ManifestKind {
        match self {
            Self::Image(image) => image.kind,
            Self::Index(index) => index.kind,
        }
    }

    /// The media type to serve this manifest with.
    pub fn media_type(&self) -> &'static str {
        self.kind().media_type()
    }

    /// The manifest this one refers to (signatures, SBOMs), if any. Not part of its closure.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Self::Image(image) => image.subject.as_ref(),
            Self::Index(index) => index.subject.as_ref(),
        }
    }

    /// Everything pulling this manifest fetches next: config then layers, or the children.
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        let (first, rest) = match self {
            Self::Image(image) => (Some(&image.config), image.layers.as_slice()),
            Self::Index(index) => (None, index.manifests.as_slice()),
        };
        first.into_iter().chain(rest)
    }
}

impl ImageManifest {
    /// [`ManifestKind::OciManifest`] or [`ManifestKind::DockerManifest`].
    pub fn kind(&self) -> ManifestKind {
        self.kind
    }

    /// The config blob.
    pub fn config(&self) -> &Descriptor {
        &self.config
    }

    /// The layer blobs, base layer first.
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The manifest this one refers to, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        self.subject.as_ref()
    }
}

impl ImageIndex {
    /// [`ManifestKind::OciIndex`] or [`ManifestKind::DockerManifestList`].
    pub fn kind(&self) -> ManifestKind {
        self.kind
    }

    /// The child manifests.
    pub fn manifests(&self) -> &[Descriptor] {
        &self.manifests
    }

    /// The manifest this one refers to, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        self.subject.as_ref()
    }

    /// The first `linux/amd64` child: what distribution serves for
    /// [`AcceptDecision::DefaultPlatform`].
    pub fn default_platform(&self) -> Option<&Descriptor> {
        self.manifests.iter().find(|child| {
            child
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
    }
}

// === parsing ===

/// Both manifest shapes in one struct, so a document's fields are read once and checked
/// against the kind it declares.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    // Only schema 1 has it; read so that schema 1 is named as such.
    fs_layers: Option<IgnoredAny>,
}

/// The top-level keys [`RawManifest`] reads, for the case-variant check.
const KNOWN_KEYS: [&str; 7] = [
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "manifests",
    "subject",
    "fsLayers",
];

/// Parses a manifest and lists what it references.
///
/// The kind comes from the `mediaType` field (exact spelling), or from `content_type` when
/// the field is absent (older OCI manifests omit it); if both name a manifest kind, they must
/// agree. The caller bounds `bytes` (see [`DEFAULT_MAX_MANIFEST_BYTES`]); this function bounds
/// the number of descriptors to [`MAX_DESCRIPTORS`]. Every digest is validated.
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    check_key_case(bytes)?;
    let raw: RawManifest = serde_json::from_slice(bytes)?;

    let header = content_type.map(essence).filter(|h| !h.is_empty());
    if raw.schema_version == Some(1) || raw.fs_layers.is_some() {
        return Err(ManifestError::Schema1);
    }
    let kind = match (raw.media_type.as_deref(), header) {
        (Some(field), _) if is_schema1(field) => return Err(ManifestError::Schema1),
        (Some(field), header) => {
            let kind = ManifestKind::from_media_type(field).ok_or_else(|| {
                ManifestError::UnsupportedMediaType {
                    media_type: excerpt(field),
                }
            })?;
            // A header naming no manifest kind (`application/json`, a blob type) says
            // nothing about the document; one naming another kind contradicts it.
            let header_type = header.and_then(|h| {
                if is_schema1(h) {
                    Some(DOCKER_MANIFEST_V1)
                } else {
                    ManifestKind::from_header(h).map(ManifestKind::media_type)
                }
            });
            if let Some(header) = header_type.filter(|h| *h != kind.media_type()) {
                return Err(ManifestError::MediaTypeMismatch {
                    field: kind.media_type(),
                    header,
                });
            }
            kind
        }
        (None, Some(header)) if is_schema1(header) => return Err(ManifestError::Schema1),
        (None, Some(header)) => ManifestKind::from_header(header).ok_or_else(|| {
            ManifestError::UnsupportedMediaType {
                media_type: excerpt(header),
            }
        })?,
        (None, None) => return Err(ManifestError::MissingMediaType),
    };
    if raw.schema_version != Some(2) {
        return Err(ManifestError::UnsupportedSchemaVersion {
            found: raw.schema_version,
        });
    }

    // containerd's `validateMediaType` refuses the same mixtures: whichever shape a client
    // reads, it must find the same references we verified.
    let manifest = if kind.is_index() {
        if raw.config.is_some() {
            return Err(ManifestError::Ambiguous {
                kind,
                field: "config",
            });
        }
        if raw.layers.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(ManifestError::Ambiguous {
                kind,
                field: "layers",
            });
        }
        Manifest::Index(ImageIndex {
            kind,
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
        })
    } else {
        if raw.manifests.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(ManifestError::Ambiguous {
                kind,
                field: "manifests",
            });
        }
        Manifest::Image(ImageManifest {
            kind,
            config: raw.config.ok_or(ManifestError::MissingConfig { kind })?,
            layers: raw.layers.unwrap_or_default(),
            subject: raw.subject,
        })
    };

    let count = manifest.references().count() + usize::from(manifest.subject().is_some());
    if count > MAX_DESCRIPTORS {
        return Err(ManifestError::TooManyDescriptors { count });
    }
    Ok(manifest)
}

/// Refuses top-level keys that equal a [`KNOWN_KEYS`] entry only case-insensitively.
fn check_key_case(bytes: &[u8]) -> Result<(), ManifestError> {
    struct Keys;

    impl<'de> Visitor<'de> for Keys {
        type Value = Option<(String, &'static str)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                let variant = KNOWN_KEYS
                    .iter()
                    .find(|known| **known != key && known.eq_ignore_ascii_case(&key));
                if let (None, Some(expected)) = (&found, variant) {
                    found = Some((excerpt(&key), *expected));
                }
            }
            Ok(found)
        }
    }

    struct Document(Option<(String, &'static str)>);

    impl<'de> Deserialize<'de> for Document {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(Keys).map(Document)
        }
    }

    match serde_json::from_slice::<Document>(bytes)? {
        Document(Some((key, expected))) => Err(ManifestError::CaseVariantKey { key, expected }),
        Document(None) => Ok(()),
    }
}

// === Accept negotiation ===

/// Decides whether a client whose `Accept` header values are `accept` takes a manifest of
/// `kind`, following distribution's `GetManifest`:
///
/// - no usable `Accept` entry at all: [`Serve`](AcceptDecision::Serve) (the spec only says
///   clients SHOULD send one; distribution would refuse OCI kinds here);
/// - Docker schema 2 manifests are always served: distribution has nothing older to offer;
/// - OCI manifests and indexes are served only if listed, else `NotAcceptable`;
/// - a Docker manifest list that is not listed is served by digest, and answered with
///   [`DefaultPlatform`](AcceptDecision::DefaultPlatform) when `by_tag`.
///
/// Entries are compared case-insensitively without parameters; `*/*` and `application/*`
/// accept everything (distribution ignores them), and an entry with `q=0` accepts nothing.
pub fn negotiate<'a, I>(accept: I, kind: ManifestKind, by_tag: bool) -> AcceptDecision
where
    I: IntoIterator<Item = &'a str>,
{
    let mut any_entry = false;
    let mut accepted = false;
    for entry in accept.into_iter().flat_map(|value| value.split(',')) {
        let mut parts = entry.split(';');
        let range = parts.next().unwrap_or_default().trim();
        let Some((main, sub)) = range.split_once('/') else {
            continue;
        };
        if main.is_empty() || sub.is_empty() {
            continue;
        }
        let Some(weight) = quality(parts) else {
            continue;
        };
        any_entry = true;
        // Every manifest kind is `application/...`, so `*/*` and `application/*` cover them.
        let wildcard = sub == "*" && (main == "*" || main.eq_ignore_ascii_case("application"));
        let matches = wildcard || kind.media_type().eq_ignore_ascii_case(range);
        accepted |= matches && weight > 0.0;
    }
    if !any_entry || accepted || kind == ManifestKind::DockerManifest {
        return AcceptDecision::Serve;
    }
    match kind {
        ManifestKind::DockerManifestList if by_tag => AcceptDecision::DefaultPlatform,
        ManifestKind::DockerManifestList => AcceptDecision::Serve,
        _ => AcceptDecision::NotAcceptable,
    }
}

/// The `q` weight among an entry's parameters: 1 if absent, `None` if malformed.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<f32> {
    let mut weight = 1.0;
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("q") {
            weight = value
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))?;
        }
    }
    Some(weight)
}

#[cfg(test)]
mod tests;
