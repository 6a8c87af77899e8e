//! Every way a request can fail, and the one place they become responses.
//!
//! Client-facing messages say what happened in words a user can act on; internal details
//! (cache I/O errors) are logged once here and never echoed.

use http::{header, HeaderValue, Response, StatusCode};

use crate::{
    body::{self, Body},
    cache::StoreError,
    oci::{error_body, ManifestError, OciError, OciErrorCode, RouteError},
    trust::Refusal,
    upstream::UpstreamError,
};

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Not a read of the distribution API, or malformed input.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// `?ns=` names a registry this mirror does not proxy.
    #[error("registry {0} is not configured on this mirror")]
    UnknownRegistry(String),
    /// No `?ns=` and no default upstream.
    #[error("no default upstream is configured: name the registry with ?ns=<registry>")]
    NoDefaultUpstream,
    /// A `deny` rule (or the default) matched.
    #[error("{image} is denied by policy ({rule})")]
    PolicyDenied { image: String, rule: String },
    /// `auth.access` does not let the principal pull the image.
    #[error("{principal} may not pull {image}")]
    AccessDenied { image: String, principal: String },
    /// A verifier refused.
    #[error("{refusal} (policy {rule})")]
    Refused { refusal: Refusal, rule: String },
    /// The upstream does not have it.
    #[error("{what} is not known to the upstream registry")]
    UnknownManifest { what: String },
    #[error("{what} is not known to the upstream registry")]
    UnknownBlob { what: String },
    /// The client does not accept the signed manifest's media type.
    #[error("{what} is a {media_type}, which the client's Accept header does not allow")]
    NotAcceptable { what: String, media_type: String },
    /// A blob GET's single byte range starts at or after its end (`416`).
    #[error("the range asked for is not within {what}, which is {size} bytes")]
    RangeNotSatisfiable { what: String, size: u64 },
    /// The upstream failed.
    #[error("upstream {source}")]
    Upstream {
        registry: String,
        #[source]
        source: UpstreamError,
    },
    /// The upstream served something that is not a manifest we serve.
    #[error("upstream {registry} served an invalid manifest for {what}: {source}")]
    BadManifest {
        registry: String,
        what: String,
        #[source]
        source: ManifestError,
    },
    /// The cache failed internally.
    #[error("cache: {0}")]
    Store(#[from] StoreError),
    /// A verifying rule names a notary server that does not exist (config reload race).
    #[error("internal: {0}")]
    Internal(String),
}

// === impl ProxyError ===

impl ProxyError {
    fn code_and_status(&self) -> (OciErrorCode, StatusCode) {
        use ProxyError::*;
        match self {
            Route(e) => (e.code(), e.status()),
            UnknownRegistry(_) | NoDefaultUpstream => {
                (OciErrorCode::NameUnknown, StatusCode::NOT_FOUND)
            }
            PolicyDenied { .. } | Refused { .. } | AccessDenied { .. } => {
                (OciErrorCode::Denied, StatusCode::FORBIDDEN)
            }
            UnknownManifest { .. } | NotAcceptable { .. } => {
                (OciErrorCode::ManifestUnknown, StatusCode::NOT_FOUND)
            }
            UnknownBlob { .. } => (OciErrorCode::BlobUnknown, StatusCode::NOT_FOUND),
            RangeNotSatisfiable { .. } => {
                (OciErrorCode::SizeInvalid, StatusCode::RANGE_NOT_SATISFIABLE)
            }
            Upstream { source, .. } => match source {
                UpstreamError::RateLimited { .. } => {
                    (OciErrorCode::TooManyRequests, StatusCode::TOO_MANY_REQUESTS)
                }
                // Docker Hub answers 401 for repositories that do not exist, even with a token.
                UpstreamError::Denied { .. } => (OciErrorCode::Denied, StatusCode::FORBIDDEN),
                UpstreamError::Timeout { .. } => {
                    (OciErrorCode::Unsupported, StatusCode::GATEWAY_TIMEOUT)
                }
                _ => (OciErrorCode::Unsupported, StatusCode::BAD_GATEWAY),
            },
            BadManifest { .. } => (OciErrorCode::ManifestInvalid, StatusCode::BAD_GATEWAY),
            Store(e) if e.is_upstream() => (OciErrorCode::Unsupported, StatusCode::BAD_GATEWAY),
            Store(_) | Internal(_) => {
                (OciErrorCode::Unsupported, StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The OCI error response; `head` drops the body as HEAD requires.
    pub fn into_response(self, head: bool) -> Response<Body> {
        let (code, status) = self.code_and_status();
        let message = match &self {
            ProxyError::Store(e) if !e.is_upstream() => {
                tracing::error!(error = %self, "cache failure");
                "internal cache error".to_owned()
            }
            ProxyError::Internal(_) => {
                tracing::error!(error = %self, "internal error");
                "internal error".to_owned()
            }
            // Upstream errors name hosts and URLs: logged in full, summarised for clients.
            ProxyError::Upstream { registry, source } => {
                tracing::warn!(error = %self, "upstream failure");
                match source {
                    UpstreamError::NotFound { .. }
                    | UpstreamError::Denied { .. }
                    | UpstreamError::RateLimited { .. } => self.to_string(),
                    UpstreamError::Timeout { .. } => {
                        format!("upstream registry {registry} timed out")
                    }
                    // Not an outage: the registry answered with more than trustgate reads.
                    UpstreamError::TooLarge {
                        what, bound, limit, ..
                    } => format!(
                        "upstream registry {registry} sent {what} larger than {bound} ({})",
                        crate::upstream::fmt_bytes(*limit)
                    ),
                    _ => format!("upstream registry {registry} is unavailable"),
                }
            }
            _ => self.to_string(),
        };
        let bytes = error_body(code, &message);
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, bytes.len())
            .header("Docker-Distribution-API-Version", "registry/2.0");
        // distribution-spec "Warnings": `Warning: 299 - "<text>"`, which clients that send
        // HEAD (containerd) or drop bodies can show.
        let refused = matches!(
            self,
            ProxyError::PolicyDenied { .. } | ProxyError::Refused { .. }
        );
        if refused {
            if let Ok(value) = HeaderValue::from_str(&warning(&message)) {
                response = response.header(header::WARNING, value);
            }
            // HTTP/1.1 lets the status line carry any reason phrase (RFC 9112 4). Go clients
            // (containerd's resolver, dockerd's containerd image store) print only the status
            // line of a refused HEAD: this is how their users see why.
            let phrase = format!("Forbidden: {}", visible_ascii(&message, MAX_WARNING));
            if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(phrase.into_bytes()) {
                response = response.extension(phrase);
            }
        }
        if let Some(allow) = match &self {
            ProxyError::Route(e) => e.allow(),
            _ => None,
        } {
            response = response.header(header::ALLOW, HeaderValue::from_static(allow));
        }
        // RFC 9110 15.5.17: the representation's length, for the client to ask again.
        if let ProxyError::RangeNotSatisfiable { size, .. } = &self {
            response = response.header(header::CONTENT_RANGE, format!("bytes */{size}"));
        }
        if let ProxyError::Upstream {
            source:
                UpstreamError::RateLimited {
                    retry_after: Some(secs),
                    ..
                },
            ..
        } = &self
        {
            response = response.header(header::RETRY_AFTER, *secs);
        }
        let body = if head {
            body::empty()
        } else {
            body::full(bytes)
        };
        response.body(body).unwrap_or_else(|_| {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}

/// Longest warning text sent, in bytes (distribution-spec: clients should show warnings, so
/// they should be short).
const MAX_WARNING: usize = 1024;

/// The `Warning` header value for a refusal: `299 - "<text>"`, the text as an HTTP
/// quoted-string ([`visible_ascii`], `"` and `\\` escaped).
pub(crate) fn warning(message: &str) -> String {
    let mut text = String::with_capacity(message.len().min(MAX_WARNING) + 16);
    text.push_str("299 - \"");
    for c in visible_ascii(message, MAX_WARNING).chars() {
        if matches!(c, '"' | '\\') {
            text.push('\\');
        }
        text.push(c);
    }
    text.push('"');
    text
}

/// `message` as visible ASCII and spaces (anything else becomes `?`), cut at `max` bytes
/// with `...`: what a header value or a reason phrase may carry.
fn visible_ascii(message: &str, max: usize) -> String {
    let mut text = String::with_capacity(message.len().min(max) + 3);
    for c in message.chars() {
        if text.len() >= max {
            text.push_str("...");
            break;
        }
        text.push(if matches!(c, ' '..='~') { c } else { '?' });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::warning;

    #[test]
    fn warnings_are_quoted_strings_of_visible_ascii() {
        assert_eq!(warning("plain"), r#"299 - "plain""#);
        assert_eq!(warning(r#"tag "v1" \ no"#), r#"299 - "tag \"v1\" \\ no""#);
        assert_eq!(warning("caf\u{e9}\r\nX"), r#"299 - "caf???X""#);
        let long = warning(&"a".repeat(5000));
        assert!(
            long.len() < 1100 && long.ends_with("...\""),
            "{}",
            long.len()
        );
        assert!(http::HeaderValue::from_str(&warning("\u{0}\u{7f}é")).is_ok());
    }
}
