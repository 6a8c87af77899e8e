//! The one parser from a client's request target to what it asks for.
//!
//! Distribution spec, "Endpoints": end-1 `/v2/`, end-2 blobs, end-3 manifests, end-8 tags
//! and end-12 referrers are the read endpoints. Every other `/v2` request is a push or a
//! delete, which a read-only mirror refuses.
//!
//! Names contain `/`, so the path is matched from its end, the way distribution's router
//! (gorilla/mux with a greedy name pattern) does: the last segment is the reference or
//! digest, which never contains `/`, and the segment before it says which endpoint this is.
//! So `/v2/a/manifests/manifests/x` is the manifest `x` of the repository `a/manifests`, and
//! `/v2/a/manifests/tags/list` lists the tags of `a/manifests`, as in distribution.

use http::{Method, StatusCode};

use super::digest::{Digest, DigestError};
use super::error::{OciError, OciErrorCode};
use super::excerpt;
use super::host::{HostError, RegistryHost};
use super::media_type::{MediaType, MediaTypeError};
use super::name::{NameError, RepoName};
use super::reference::{Reference, ReferenceError, Tag, TagError};

/// The methods a read-only registry serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadMethod {
    /// `GET`: headers and body.
    Get,
    /// `HEAD`: the same headers, no body.
    Head,
}

/// A parsed client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `GET` or `HEAD`.
    pub method: ReadMethod,
    /// The upstream registry named by `?ns=` (containerd `hosts.toml` mirrors), if any.
    pub ns: Option<RegistryHost>,
    /// What is being asked for.
    pub endpoint: Endpoint,
}

/// A read endpoint of the distribution API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// end-1 `/v2/`: the API version check.
    Base,
    /// end-3 `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// The repository.
        name: RepoName,
        /// A tag or a digest.
        reference: Reference,
    },
    /// end-2 `/v2/<name>/blobs/<digest>`.
    Blob {
        /// The repository.
        name: RepoName,
        /// The blob's digest.
        digest: Digest,
    },
    /// end-8 `/v2/<name>/tags/list?n=<int>&last=<tag>`. `GET` only.
    TagsList {
        /// The repository.
        name: RepoName,
        /// Page size, if given.
        n: Option<u32>,
        /// List tags after this one, if given.
        last: Option<Tag>,
    },
    /// end-12 `/v2/<name>/referrers/<digest>?artifactType=<type>`. `GET` only.
    Referrers {
        /// The repository.
        name: RepoName,
        /// The subject whose referrers are listed.
        digest: Digest,
        /// Only list referrers of this artifact type, if given.
        artifact_type: Option<MediaType>,
    },
}

/// Why a request is not a read the mirror serves.
///
/// [`OciError`] gives each variant its code and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Not an endpoint of the distribution API (404, as distribution's router answers).
    #[error("no registry endpoint at {path:?}")]
    NotFound {
        /// The request path.
        path: String,
    },
    /// `POST`, `PUT`, `PATCH` or `DELETE` on a `/v2` path.
    #[error("{method} is not supported: this registry is a read-only mirror")]
    ReadOnly {
        /// The refused method.
        method: Method,
    },
    /// Another method than the endpoint serves (e.g. `OPTIONS`, or `HEAD` on tags/list).
    #[error("{method} is not allowed here, only {allow}")]
    MethodNotAllowed {
        /// The refused method.
        method: Method,
        /// The methods allowed, as for an `Allow` header.
        allow: &'static str,
    },
    /// A `GET` of a blob upload session: there are none on a read-only mirror.
    #[error("blob upload unknown: this registry is a read-only mirror")]
    BlobUpload {
        /// The request path.
        path: String,
    },
    /// The path contains `%`. Nothing valid needs it, and decoding could smuggle `/` or `..`.
    #[error("percent-encoded characters are not allowed in repository paths: {path:?}")]
    PercentEncoded {
        /// The request path.
        path: String,
    },
    /// The `<name>` is not a valid repository name.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The `<reference>` of a manifest request has no `:` and is not a valid tag.
    #[error(transparent)]
    InvalidTag(TagError),
    /// The digest of a blob or referrers request, or a manifest reference containing `:`,
    /// is malformed or uses an unsupported algorithm.
    #[error(transparent)]
    InvalidDigest(DigestError),
    /// `?ns=` is not a registry host.
    #[error("invalid ns parameter: {0}")]
    InvalidNamespace(#[source] HostError),
    /// `?n=` is not a non-negative 32-bit integer.
    #[error("invalid n parameter {value:?}: expected a non-negative integer")]
    InvalidPageSize {
        /// The rejected value.
        value: String,
    },
    /// `?last=` is not a tag.
    #[error("invalid last parameter: {0}")]
    InvalidLast(#[source] TagError),
    /// `?artifactType=` is not a media type.
    #[error("invalid artifactType parameter: {0}")]
    InvalidArtifactType(#[source] MediaTypeError),
    /// A known query parameter has a bad `%` escape or is not UTF-8 once decoded.
    #[error("query parameter {param} is not correctly percent-encoded")]
    InvalidQueryEncoding {
        /// The parameter.
        param: &'static str,
    },
    /// A known query parameter appears twice; which one counts would be ambiguous.
    #[error("query parameter {param} is given more than once")]
    DuplicateParameter {
        /// The parameter.
        param: &'static str,
    },
}

/// Parses a request's method, path and query into the [`Route`] it asks for.
///
/// `path` is the raw, undecoded path of the request target; `query` the raw text after `?`.
/// Nothing is percent-decoded in the path (a `%` is refused), so what is validated is exactly
/// what the client sent. Query values are percent-decoded, with `+` kept literally (a `+` is
/// never a space in any value we read, but is common in `artifactType`). Unknown query
/// parameters are ignored.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    // Only the /v2 API is ours; "/v2" is the spelling before gorilla's StrictSlash redirect.
    let rest = match path.strip_prefix("/v2") {
        Some("") => "",
        Some(tail) => match tail.strip_prefix('/') {
            Some(rest) => rest,
            None => return Err(not_found(path)),
        },
        None => return Err(not_found(path)),
    };
    let method = match *method {
        Method::GET => ReadMethod::Get,
        Method::HEAD => ReadMethod::Head,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            return Err(RouteError::ReadOnly {
                method: method.clone(),
            })
        }
        _ => {
            return Err(RouteError::MethodNotAllowed {
                method: method.clone(),
                allow: "GET, HEAD",
            })
        }
    };
    if path.contains('%') {
        return Err(RouteError::PercentEncoded {
            path: excerpt(path),
        });
    }
    let query = RawQuery::parse(query.unwrap_or(""))?;
    let endpoint = match_endpoint(path, rest, &query)?;
    if method == ReadMethod::Head
        && matches!(
            endpoint,
            Endpoint::TagsList { .. } | Endpoint::Referrers { .. }
        )
    {
        // Distribution registers only GET for these; HEAD gets 405 there too.
        return Err(RouteError::MethodNotAllowed {
            method: Method::HEAD,
            allow: "GET",
        });
    }
    let ns = query
        .ns
        .as_deref()
        .map(RegistryHost::parse)
        .transpose()
        .map_err(RouteError::InvalidNamespace)?;
    Ok(Route {
        method,
        ns,
        endpoint,
    })
}

/// Matches `rest`, the path after `/v2/`, from its end.
fn match_endpoint(path: &str, rest: &str, query: &RawQuery) -> Result<Endpoint, RouteError> {
    if rest.is_empty() {
        return Ok(Endpoint::Base);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Ok(Endpoint::TagsList {
            name: RepoName::parse(name)?,
            n: query.n.as_deref().map(parse_page_size).transpose()?,
            last: query
                .last
                .as_deref()
                .map(Tag::parse)
                .transpose()
                .map_err(RouteError::InvalidLast)?,
        });
    }
    let Some((head, last)) = rest.rsplit_once('/') else {
        return Err(not_found(path));
    };
    if let Some(name) = head.strip_suffix("/manifests") {
        let name = RepoName::parse(name)?;
        let reference = Reference::parse(last).map_err(|e| match e {
            ReferenceError::Tag(e) => RouteError::InvalidTag(e),
            ReferenceError::Digest(e) => RouteError::InvalidDigest(e),
        })?;
        return Ok(Endpoint::Manifest { name, reference });
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        // `/v2/<name>/blobs/uploads` (no slash) is an upload path, not a digest; answered
        // like the other upload paths, whatever the name.
        if last == "uploads" {
            return Err(RouteError::BlobUpload {
                path: excerpt(path),
            });
        }
        let name = RepoName::parse(name)?;
        let digest = Digest::parse(last).map_err(RouteError::InvalidDigest)?;
        return Ok(Endpoint::Blob { name, digest });
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        let name = RepoName::parse(name)?;
        let digest = Digest::parse(last).map_err(RouteError::InvalidDigest)?;
        let artifact_type = query
            .artifact_type
            .as_deref()
            .map(MediaType::parse)
            .transpose()
            .map_err(RouteError::InvalidArtifactType)?;
        return Ok(Endpoint::Referrers {
            name,
            digest,
            artifact_type,
        });
    }
    // `/v2/<name>/blobs/uploads/` and `/v2/<name>/blobs/uploads/<session>`.
    if head.ends_with("/blobs/uploads") {
        return Err(RouteError::BlobUpload {
            path: excerpt(path),
        });
    }
    Err(not_found(path))
}

fn not_found(path: &str) -> RouteError {
    RouteError::NotFound {
        path: excerpt(path),
    }
}

fn parse_page_size(value: &str) -> Result<u32, RouteError> {
    // Digits only: `u32::from_str` alone would also accept a leading `+`.
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| RouteError::InvalidPageSize {
            value: excerpt(value),
        })
}

// === impl Route ===

impl Route {
    /// The request path this route is served under, e.g. `/v2/library/nginx/manifests/latest`:
    /// the same path the client sent, rebuilt from validated parts (without the query).
    pub fn path(&self) -> String {
        self.endpoint.path()
    }
}

// === impl Endpoint ===

impl Endpoint {
    /// The repository, for every endpoint but `/v2/`.
    pub fn name(&self) -> Option<&RepoName> {
        match self {
            Self::Base => None,
            Self::Manifest { name, .. }
            | Self::Blob { name, .. }
            | Self::TagsList { name, .. }
            | Self::Referrers { name, .. } => Some(name),
        }
    }

    /// A short, bounded label for metrics and spans: `base`, `manifest`, `blob`, `tags`
    /// or `referrers`, the same values as the server's `route_kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Manifest { .. } => "manifest",
            Self::Blob { .. } => "blob",
            Self::TagsList { .. } => "tags",
            Self::Referrers { .. } => "referrers",
        }
    }

    /// The path of this endpoint, without query: `/v2/`, `/v2/<name>/manifests/<reference>`...
    pub fn path(&self) -> String {
        match self {
            Self::Base => "/v2/".to_owned(),
            Self::Manifest { name, reference } => format!("/v2/{name}/manifests/{reference}"),
            Self::Blob { name, digest } => format!("/v2/{name}/blobs/{digest}"),
            Self::TagsList { name, .. } => format!("/v2/{name}/tags/list"),
            Self::Referrers { name, digest, .. } => format!("/v2/{name}/referrers/{digest}"),
        }
    }
}

// === impl RouteError ===

impl OciError for RouteError {
    fn code(&self) -> OciErrorCode {
        match self {
            // The spec's code list has no "not found" for paths; UNSUPPORTED is the honest
            // description, and the status stays distribution's 404 (see `status`).
            Self::NotFound { .. } | Self::ReadOnly { .. } | Self::MethodNotAllowed { .. } => {
                OciErrorCode::Unsupported
            }
            Self::BlobUpload { .. } => OciErrorCode::BlobUploadUnknown,
            Self::PercentEncoded { .. } | Self::InvalidName(_) | Self::InvalidNamespace(_) => {
                OciErrorCode::NameInvalid
            }
            // TAG_INVALID is a legacy schema1 code the spec says clients must not rely on; no
            // manifest can exist under an invalid tag, so the answer is MANIFEST_UNKNOWN (404),
            // the status distribution gives such paths.
            Self::InvalidTag(_) => OciErrorCode::ManifestUnknown,
            Self::InvalidDigest(_) => OciErrorCode::DigestInvalid,
            // Distribution answers a bad `n` with its own PAGINATION_NUMBER_INVALID (400),
            // which the spec does not list.
            Self::InvalidPageSize { .. }
            | Self::InvalidLast(_)
            | Self::InvalidArtifactType(_)
            | Self::InvalidQueryEncoding { .. }
            | Self::DuplicateParameter { .. } => OciErrorCode::Unsupported,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::InvalidPageSize { .. }
            | Self::InvalidLast(_)
            | Self::InvalidArtifactType(_)
            | Self::InvalidQueryEncoding { .. }
            | Self::DuplicateParameter { .. } => StatusCode::BAD_REQUEST,
            _ => self.code().status(),
        }
    }
}

impl RouteError {
    /// The `Allow` header value to send with a 405, if this error is one.
    pub fn allow(&self) -> Option<&'static str> {
        match self {
            Self::ReadOnly { .. } => Some("GET, HEAD"),
            Self::MethodNotAllowed { allow, .. } => Some(allow),
            _ => None,
        }
    }
}

// === query ===

/// The query parameters we read, percent-decoded but not yet validated.
#[derive(Debug, Default)]
struct RawQuery {
    ns: Option<String>,
    n: Option<String>,
    last: Option<String>,
    artifact_type: Option<String>,
}

impl RawQuery {
    fn parse(query: &str) -> Result<Self, RouteError> {
        let mut raw = Self::default();
        let mut seen = [false; 4];
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // A key that does not decode cannot be one of ours: ignore it like any unknown one.
            let Some(key) = percent_decode(key) else {
                continue;
            };
            let (index, param, slot) = match key.as_str() {
                "ns" => (0, "ns", &mut raw.ns),
                "n" => (1, "n", &mut raw.n),
                "last" => (2, "last", &mut raw.last),
                "artifactType" => (3, "artifactType", &mut raw.artifact_type),
                _ => continue,
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(RouteError::DuplicateParameter { param });
            }
            let value = percent_decode(value).ok_or(RouteError::InvalidQueryEncoding { param })?;
            // Like Go's `Query().Get`, an empty value is the same as no value.
            *slot = Some(value).filter(|v| !v.is_empty());
        }
        Ok(raw)
    }
}

/// Decodes `%XX` escapes; `None` on a truncated or non-hex escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // Checked by hand: `from_str_radix` would also take a sign, as in `%+1`.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
