//! Why a request to an upstream registry failed, one variant per failure.
//!
//! Messages are meant to be shown to users and written to logs: they name the registry, the
//! object and the URL (without its query string, which on a CDN redirect carries a signature),
//! and never a token, password or `Authorization` header.

use std::{fmt, time::Duration};

use http::HeaderMap;
use reqwest::Url;
use time::{format_description::well_known::Rfc2822, OffsetDateTime};

use crate::http_client::{cert_failure, error_chain, CertFailure};

/// Longest upstream error message copied into an error.
const DETAIL_CHARS: usize = 200;

/// An upstream request failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// 404: the repository, manifest or blob does not exist upstream.
    #[error("{registry}: {what} not found")]
    NotFound {
        /// The upstream's registry name.
        registry: String,
        /// What was asked for, e.g. `manifest library/alpine:3.20`.
        what: String,
    },
    /// 401 or 403 after authenticating (or when no credentials can answer the challenge).
    #[error(
        "{registry}: access to {what} denied (HTTP {status}){}",
        suffix(detail)
    )]
    Denied {
        /// The upstream's registry name.
        registry: String,
        /// What was asked for.
        what: String,
        /// 401 or 403.
        status: u16,
        /// The registry's error code and message, or why no credentials were sent.
        detail: String,
    },
    /// 429: the upstream's pull rate limit is used up.
    #[error("{registry}: rate limited (HTTP 429){}", retry_suffix(*retry_after))]
    RateLimited {
        /// The upstream's registry name (or token service).
        registry: String,
        /// Seconds to wait, from `Retry-After`, when the registry said.
        retry_after: Option<u64>,
    },
    /// Any other unexpected status.
    #[error("{registry}: HTTP {status} for {what}{}", suffix(detail))]
    Status {
        /// The upstream's registry name.
        registry: String,
        /// What was asked for.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's error code and message, when it sent an OCI error body.
        detail: String,
    },
    /// No answer, or no data, within the configured time.
    #[error("timed out after {} waiting for {phase} from {url}", fmt_duration(*after))]
    Timeout {
        /// The URL (without query) that did not answer.
        url: String,
        /// What was awaited: `a connection`, `a response`, `body data`.
        phase: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// Connection refused, DNS failure, connection reset, too many redirects.
    #[error("cannot reach {url}: {detail}")]
    Unreachable {
        /// The URL (without query).
        url: String,
        /// The transport error chain.
        detail: String,
    },
    /// The server's TLS certificate has expired.
    #[error("the TLS certificate of {url} has expired ({detail}); the registry's operator must renew it")]
    TlsExpired {
        /// The URL (without query).
        url: String,
        /// rustls' description.
        detail: String,
    },
    /// The server's TLS certificate is not trusted (unknown issuer, wrong name, ...).
    #[error("the TLS certificate of {url} is not trusted ({detail}); configure the upstream's CA certificate if it uses a private CA")]
    TlsUntrusted {
        /// The URL (without query).
        url: String,
        /// rustls' description.
        detail: String,
    },
    /// The response is larger than the caller's limit (announced or while reading).
    #[error("{what} from {url} is larger than {bound} ({})", fmt_bytes(*limit))]
    TooLarge {
        /// What was read, e.g. `manifest library/alpine:3.20` or `the token response`.
        what: String,
        /// The URL (without query).
        url: String,
        /// The limit in bytes.
        limit: u64,
        /// What the limit is, for people: a configuration key (`limits.max_manifest_size`)
        /// or a documented constant (`the token response limit`).
        bound: &'static str,
    },
    /// The body broke off after the response started (connection reset, short body).
    #[error("reading the response body from {url} failed: {detail}")]
    Body {
        /// The URL (without query).
        url: String,
        /// The transport error chain.
        detail: String,
    },
    /// The token service did not hand out a token.
    #[error("{registry}: cannot get a token from {realm}: {detail}")]
    Auth {
        /// The upstream's registry name.
        registry: String,
        /// The token service URL (without query).
        realm: String,
        /// What went wrong (never the response body: it may hold a token).
        detail: String,
    },
    /// A repository name or reference that cannot be put into a request path.
    #[error("{registry}: invalid {what} {value:?}")]
    InvalidArgument {
        /// The upstream's registry name.
        registry: String,
        /// `repository`, `reference` or `digest`.
        what: &'static str,
        /// The value (truncated).
        value: String,
    },
    /// [`Upstream::new`](super::Upstream::new) refused the configuration.
    #[error("upstream {registry}: {detail}")]
    Config {
        /// The upstream's registry name.
        registry: String,
        /// What is wrong.
        detail: String,
    },
}

// === impl UpstreamError ===

impl UpstreamError {
    /// Whether the upstream could not be asked or did not answer in time, as opposed to an
    /// answer about the object: callers serving from cache may fall back on these.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::TlsExpired { .. }
                | Self::TlsUntrusted { .. }
                | Self::RateLimited { .. }
                | Self::Auth { .. }
        ) || matches!(self, Self::Status { status, .. } if *status >= 500)
    }
}

/// Timeouts, for the numbers in [`UpstreamError::Timeout`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
    pub read: Duration,
}

/// Classifies a reqwest error for `url` (the request's URL; the error's own URL wins, since
/// after a redirect that is the host that failed).
pub(crate) fn from_reqwest(err: reqwest::Error, url: &Url, timeouts: &Timeouts) -> UpstreamError {
    let url = redact_url(err.url().unwrap_or(url));
    let err = err.without_url();
    if err.is_timeout() {
        let (phase, after) = if err.is_connect() {
            ("a connection", timeouts.connect)
        } else if err.is_body() || err.is_decode() {
            ("body data", timeouts.request)
        } else {
            ("a response", timeouts.request)
        };
        return UpstreamError::Timeout { url, phase, after };
    }
    match cert_failure(&err) {
        Some(CertFailure::Expired { detail }) => UpstreamError::TlsExpired { url, detail },
        Some(CertFailure::Untrusted { detail }) => UpstreamError::TlsUntrusted { url, detail },
        None if err.is_body() || err.is_decode() => UpstreamError::Body {
            url,
            detail: error_chain(&err),
        },
        None => UpstreamError::Unreachable {
            url,
            detail: error_chain(&err),
        },
    }
}

/// Whether a request failed because the connection was cut before a response arrived, the one
/// case where a GET is retried: typically a pooled keep-alive connection the server closed.
pub(crate) fn is_connection_reset(err: &reqwest::Error) -> bool {
    if err.is_timeout() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) {
                return true;
            }
        }
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// `scheme://host[:port]/path`: no credentials, query or fragment, which may hold secrets
/// (pre-signed CDN URLs carry their signature in the query).
pub(crate) fn redact_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// The first error of an OCI error body as `CODE: message`, cut to a sane length and stripped
/// of control characters; empty when the body is not one (a CDN's HTML page, say).
pub(crate) fn oci_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return String::new();
    };
    let Some(first) = envelope.errors.into_iter().next() else {
        return String::new();
    };
    let text = match (first.code, first.message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => String::new(),
    };
    let mut clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(DETAIL_CHARS)
        .collect();
    if text.chars().count() > DETAIL_CHARS {
        clean.push_str("...");
    }
    clean
}

/// `Retry-After` as seconds: a number, or an HTTP date turned into seconds from now.
pub(crate) fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<u64> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    Some(u64::try_from((at - now).whole_seconds()).unwrap_or(0))
}

/// The count in `ratelimit-remaining: 100;w=21600` (Docker Hub).
pub(crate) fn parse_ratelimit(value: &str) -> Option<u64> {
    value.split(';').next()?.trim().parse().ok()
}

fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

fn retry_suffix(retry_after: Option<u64>) -> String {
    match retry_after {
        Some(secs) => format!("; retry after {secs}s"),
        None => String::new(),
    }
}

/// `4 MiB`, `16 KiB`, `1000 bytes`: a limit as configured, in the unit that divides it.
pub fn fmt_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

fn fmt_duration(d: Duration) -> impl fmt::Display {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn urls_lose_query_and_credentials() {
        let cases = [
            (
                "https://cdn.example/blobs/sha256/ab?X-Amz-Signature=secret&x=1#f",
                "https://cdn.example/blobs/sha256/ab",
            ),
            (
                "http://user:pw@127.0.0.1:5000/v2/",
                "http://127.0.0.1:5000/v2/",
            ),
            (
                "https://auth.docker.io/token?scope=x",
                "https://auth.docker.io/token",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(&Url::parse(url).unwrap()), want);
        }
    }

    #[test]
    fn oci_error_bodies() {
        let long = "x".repeat(300);
        let cases = [
            (
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#.to_owned(),
                "MANIFEST_UNKNOWN: manifest unknown".to_owned(),
            ),
            (
                r#"{"errors":[{"code":"DENIED"}]}"#.to_owned(),
                "DENIED".to_owned(),
            ),
            (
                r#"{"errors":[{"code":"X","message":"a\nb\u0007c"}]}"#.to_owned(),
                "X: abc".to_owned(),
            ),
            (
                format!(r#"{{"errors":[{{"message":"{long}"}}]}}"#),
                format!("{}...", &long[..DETAIL_CHARS]),
            ),
            (r#"{"errors":[]}"#.to_owned(), String::new()),
            ("<html>Forbidden</html>".to_owned(), String::new()),
        ];
        for (body, want) in cases {
            assert_eq!(oci_detail(body.as_bytes()), want, "{body}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = OffsetDateTime::parse("Wed, 21 Oct 2015 07:28:00 GMT", &Rfc2822).unwrap();
        let cases = [
            ("120", Some(120)),
            (" 7 ", Some(7)),
            ("Wed, 21 Oct 2015 07:30:00 GMT", Some(120)),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(0)),
            ("soon", None),
            ("-1", None),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static(value));
            assert_eq!(retry_after(&headers, now), want, "{value}");
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn ratelimit_values() {
        let cases = [
            ("100;w=21600", Some(100)),
            ("0;w=21600", Some(0)),
            ("42", Some(42)),
            (" 5 ; w=60", Some(5)),
            ("", None),
            ("many;w=1", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_ratelimit(value), want, "{value}");
        }
    }

    #[test]
    fn messages() {
        let denied = UpstreamError::Denied {
            registry: "docker.io".to_owned(),
            what: "manifest library/alpine:3".to_owned(),
            status: 401,
            detail: "UNAUTHORIZED: authentication required".to_owned(),
        };
        assert_eq!(
            denied.to_string(),
            "docker.io: access to manifest library/alpine:3 denied (HTTP 401): UNAUTHORIZED: authentication required"
        );
        let limited = UpstreamError::RateLimited {
            registry: "docker.io".to_owned(),
            retry_after: Some(60),
        };
        assert_eq!(
            limited.to_string(),
            "docker.io: rate limited (HTTP 429); retry after 60s"
        );
        let timeout = UpstreamError::Timeout {
            url: "https://cdn.example/x".to_owned(),
            phase: "body data",
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            timeout.to_string(),
            "timed out after 1500ms waiting for body data from https://cdn.example/x"
        );
        assert!(timeout.is_unavailable() && limited.is_unavailable() && !denied.is_unavailable());
        let large = UpstreamError::TooLarge {
            what: "manifest a:b".to_owned(),
            url: "https://r.example/v2/a/manifests/b".to_owned(),
            limit: 4 << 20,
            bound: "limits.max_manifest_size",
        };
        assert_eq!(
            large.to_string(),
            "manifest a:b from https://r.example/v2/a/manifests/b is larger than \
             limits.max_manifest_size (4 MiB)"
        );
        assert!(!large.is_unavailable());
        assert_eq!(fmt_bytes(1000), "1000 bytes");
        assert_eq!(fmt_bytes(16 << 10), "16 KiB");
        assert_eq!(fmt_bytes((1 << 20) + 1), "1048577 bytes");
    }
}
