//! A cheap classification of request paths into a few kinds, for metrics, spans and the
//! decision whether a response streams a blob.
//!
//! This only looks at the shape of the path, matching from its end the way `oci::route`
//! does (names contain `/`), and validates nothing: `oci::route::parse` is the one parser
//! that decides what a request means. A path that parse would refuse may still be classed
//! as, say, `manifest` here; that only puts its error response in the `manifest` series.

use std::fmt;

/// What kind of registry endpoint a path addresses, as the `kind` metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob,
    /// `/v2/<name>/tags/list`.
    Tags,
    /// `/v2/<name>/referrers/<digest>`.
    Referrers,
    /// Anything else: uploads, unknown paths, non-registry paths.
    Other,
}

/// The label value of the kind of `path` (the request target's path, without query).
pub fn route_kind(path: &str) -> &'static str {
    RouteKind::of_path(path).as_str()
}

// === impl RouteKind ===

impl RouteKind {
    /// Classifies a request path (without query).
    pub fn of_path(path: &str) -> Self {
        let rest = match path.strip_prefix("/v2") {
            Some("") | Some("/") => return Self::Base,
            Some(tail) => match tail.strip_prefix('/') {
                Some(rest) => rest,
                None => return Self::Other,
            },
            None => return Self::Other,
        };
        if rest
            .strip_suffix("/tags/list")
            .is_some_and(|name| !name.is_empty())
        {
            return Self::Tags;
        }
        let Some((head, last)) = rest.rsplit_once('/') else {
            return Self::Other;
        };
        if last.is_empty() {
            return Self::Other;
        }
        if head.ends_with("/manifests") {
            Self::Manifest
        } else if head.ends_with("/blobs") && last != "uploads" {
            Self::Blob
        } else if head.ends_with("/referrers") {
            Self::Referrers
        } else {
            Self::Other
        }
    }

    /// The label value: `base`, `manifest`, `blob`, `tags`, `referrers` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Manifest => "manifest",
            Self::Blob => "blob",
            Self::Tags => "tags",
            Self::Referrers => "referrers",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_the_router() {
        let cases = [
            ("/v2", RouteKind::Base),
            ("/v2/", RouteKind::Base),
            ("/v2/library/nginx/manifests/latest", RouteKind::Manifest),
            ("/v2/a/manifests/manifests/x", RouteKind::Manifest),
            ("/v2/a/b/c/manifests/sha256:abc", RouteKind::Manifest),
            ("/v2/library/nginx/blobs/sha256:abc", RouteKind::Blob),
            ("/v2/library/nginx/tags/list", RouteKind::Tags),
            ("/v2/a/manifests/tags/list", RouteKind::Tags),
            (
                "/v2/library/nginx/referrers/sha256:abc",
                RouteKind::Referrers,
            ),
            ("/v2/library/nginx/blobs/uploads", RouteKind::Other),
            ("/v2/library/nginx/blobs/uploads/", RouteKind::Other),
            ("/v2/library/nginx/blobs/uploads/123", RouteKind::Other),
            ("/v2/library/nginx/manifests/", RouteKind::Other),
            ("/v2/manifests/latest", RouteKind::Other),
            ("/v2/tags/list", RouteKind::Other),
            ("/v2x/manifests/a", RouteKind::Other),
            ("/v1/_ping", RouteKind::Other),
            ("/", RouteKind::Other),
            ("", RouteKind::Other),
        ];
        for (path, kind) in cases {
            assert_eq!(RouteKind::of_path(path), kind, "{path}");
        }
        assert_eq!(route_kind("/v2/x/tags/list"), "tags");
    }
}
