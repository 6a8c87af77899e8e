//! OCI error codes and the JSON error envelope.
//!
//! Distribution spec, "Error Codes": a JSON error body is
//! `{"errors":[{"code":...,"message":...,"detail":...}]}` and `code` MUST be one of the
//! fourteen listed. This module only renders bodies; the server turns errors into responses
//! in one place.

use std::fmt;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

/// An error code from the distribution spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OciErrorCode {
    /// code-1: blob unknown to registry.
    BlobUnknown,
    /// code-2: blob upload invalid.
    BlobUploadInvalid,
    /// code-3: blob upload unknown to registry.
    BlobUploadUnknown,
    /// code-4: provided digest did not match uploaded content (also: malformed digest).
    DigestInvalid,
    /// code-5: manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// code-6: manifest invalid.
    ManifestInvalid,
    /// code-7: manifest unknown to registry.
    ManifestUnknown,
    /// code-8: invalid repository name.
    NameInvalid,
    /// code-9: repository name not known to registry.
    NameUnknown,
    /// code-10: provided length did not match content length.
    SizeInvalid,
    /// code-11: authentication required.
    Unauthorized,
    /// code-12: requested access to the resource is denied.
    Denied,
    /// code-13: the operation is unsupported.
    Unsupported,
    /// code-14: too many requests.
    TooManyRequests,
}

/// Every code, in spec order.
const ALL_CODES: [OciErrorCode; 14] = [
    OciErrorCode::BlobUnknown,
    OciErrorCode::BlobUploadInvalid,
    OciErrorCode::BlobUploadUnknown,
    OciErrorCode::DigestInvalid,
    OciErrorCode::ManifestBlobUnknown,
    OciErrorCode::ManifestInvalid,
    OciErrorCode::ManifestUnknown,
    OciErrorCode::NameInvalid,
    OciErrorCode::NameUnknown,
    OciErrorCode::SizeInvalid,
    OciErrorCode::Unauthorized,
    OciErrorCode::Denied,
    OciErrorCode::Unsupported,
    OciErrorCode::TooManyRequests,
];

/// An error that has an OCI code and an HTTP status: what the server needs to answer it.
pub trait OciError: std::error::Error {
    /// The `code` of the error body.
    fn code(&self) -> OciErrorCode;

    /// The response status; by default the code's usual status.
    fn status(&self) -> StatusCode {
        self.code().status()
    }
}

/// A code string that is not one of the distribution spec's fourteen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?} is not an OCI distribution error code")]
pub struct UnknownErrorCode {
    /// The unrecognised code.
    pub code: String,
}

// === impl OciErrorCode ===

impl OciErrorCode {
    /// The code as written in error bodies, e.g. `MANIFEST_UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The status distribution (`registry/api/errcode/register.go`) sends with this code.
    ///
    /// Two are surprising but kept, because clients were written against them:
    /// `BLOB_UPLOAD_INVALID` is 404 and `MANIFEST_BLOB_UNKNOWN` is 400.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BlobUnknown | Self::BlobUploadInvalid | Self::BlobUploadUnknown => {
                StatusCode::NOT_FOUND
            }
            Self::ManifestUnknown | Self::NameUnknown => StatusCode::NOT_FOUND,
            Self::DigestInvalid
            | Self::ManifestBlobUnknown
            | Self::ManifestInvalid
            | Self::NameInvalid
            | Self::SizeInvalid => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Denied => StatusCode::FORBIDDEN,
            Self::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Every code, in spec order.
    pub fn all() -> &'static [Self] {
        &ALL_CODES
    }
}

impl fmt::Display for OciErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OciErrorCode {
    type Err = UnknownErrorCode;

    /// Reads a code from an upstream error body.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_CODES
            .iter()
            .copied()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownErrorCode {
                code: super::excerpt(s),
            })
    }
}

impl Serialize for OciErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// === error bodies ===

#[derive(Serialize)]
struct Envelope<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: OciErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

/// `{"errors":[{"code":"<CODE>","message":"<message>"}]}`.
///
/// `message` goes to the client verbatim: pass client-facing text, never an internal error's
/// details (log those once, server side).
pub fn error_body(code: OciErrorCode, message: &str) -> Bytes {
    render(code, message, None)
}

/// Like [`error_body`], with the optional `detail` member set to `detail`.
pub fn error_body_with_detail(
    code: OciErrorCode,
    message: &str,
    detail: &serde_json::Value,
) -> Bytes {
    render(code, message, Some(detail))
}

fn render(code: OciErrorCode, message: &str, detail: Option<&serde_json::Value>) -> Bytes {
    let envelope = Envelope {
        errors: [Entry {
            code,
            message,
            detail,
        }],
    };
    // Serialising strings and a `Value` cannot fail; the fallback keeps this path panic-free.
    match serde_json::to_vec(&envelope) {
        Ok(body) => Bytes::from(body),
        Err(_) => Bytes::from_static(br#"{"errors":[]}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_statuses_and_round_trip() {
        let cases = [
            (OciErrorCode::BlobUnknown, "BLOB_UNKNOWN", 404),
            (OciErrorCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 404),
            (OciErrorCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404),
            (OciErrorCode::DigestInvalid, "DIGEST_INVALID", 400),
            (
                OciErrorCode::ManifestBlobUnknown,
                "MANIFEST_BLOB_UNKNOWN",
                400,
            ),
            (OciErrorCode::ManifestInvalid, "MANIFEST_INVALID", 400),
            (OciErrorCode::ManifestUnknown, "MANIFEST_UNKNOWN", 404),
            (OciErrorCode::NameInvalid, "NAME_INVALID", 400),
            (OciErrorCode::NameUnknown, "NAME_UNKNOWN", 404),
            (OciErrorCode::SizeInvalid, "SIZE_INVALID", 400),
            (OciErrorCode::Unauthorized, "UNAUTHORIZED", 401),
            (OciErrorCode::Denied, "DENIED", 403),
            (OciErrorCode::Unsupported, "UNSUPPORTED", 405),
            (OciErrorCode::TooManyRequests, "TOOMANYREQUESTS", 429),
        ];
        assert_eq!(cases.len(), OciErrorCode::all().len());
        for (code, text, status) in cases {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.status().as_u16(), status, "{text}");
            assert_eq!(text.parse::<OciErrorCode>(), Ok(code));
        }
        assert!("NOT_FOUND".parse::<OciErrorCode>().is_err());
        assert!("denied".parse::<OciErrorCode>().is_err());
    }

    #[test]
    fn bodies_are_exact() {
        assert_eq!(
            error_body(OciErrorCode::Denied, "no \"trust\" data"),
            Bytes::from_static(br#"{"errors":[{"code":"DENIED","message":"no \"trust\" data"}]}"#)
        );
        let detail = serde_json::json!({"name": "library/nginx"});
        assert_eq!(
            error_body_with_detail(OciErrorCode::NameUnknown, "", &detail),
            Bytes::from_static(
                br#"{"errors":[{"code":"NAME_UNKNOWN","message":"","detail":{"name":"library/nginx"}}]}"#
            )
        );
    }
}
