//! Turning responses into results: status codes into [`UpstreamError`]s, bodies into bytes
//! under a limit or into a [`BlobStream`] with an idle timeout.

use std::{pin::Pin, sync::atomic::Ordering, sync::Arc};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use time::OffsetDateTime;

use super::error::{self, from_reqwest, oci_detail, redact_url, Timeouts};
use super::{Auth, BlobStream, Upstream, UpstreamError, ERROR_BODY_MAX_BYTES, RATELIMIT_UNKNOWN};
use crate::http_client::{self, ReadError};

// === impl Upstream ===

impl Upstream {
    /// The error a non-2xx response stands for; `sent` is the credentials the request carried.
    pub(super) async fn status_error(
        &self,
        response: reqwest::Response,
        what: &str,
        sent: Option<&Auth>,
    ) -> UpstreamError {
        let registry = self.inner.registry.clone();
        let what = what.to_owned();
        let status = response.status().as_u16();
        match status {
            404 => UpstreamError::NotFound { registry, what },
            429 => UpstreamError::RateLimited {
                registry,
                retry_after: error::retry_after(response.headers(), OffsetDateTime::now_utc()),
            },
            401 | 403 => {
                let detail = self.error_detail(response).await;
                // Say whose credentials a 401 refused; the registry's words follow.
                let refused = match (status, sent) {
                    (401, Some(Auth::Basic(_))) => {
                        Some("the registry refused the configured credentials")
                    }
                    (401, Some(Auth::Bearer(_))) => {
                        Some("the registry refused the token from its token service")
                    }
                    _ => None,
                };
                let detail = match refused {
                    Some(refused) if detail.is_empty() => refused.to_owned(),
                    Some(refused) => format!("{refused} ({detail})"),
                    None => detail,
                };
                UpstreamError::Denied {
                    registry,
                    what,
                    status,
                    detail,
                }
            }
            _ => UpstreamError::Status {
                registry,
                what,
                status,
                detail: self.error_detail(response).await,
            },
        }
    }

    /// The OCI error message in an error body, if one arrives promptly.
    pub(super) async fn error_detail(&self, response: reqwest::Response) -> String {
        let read = self.read_limited(
            response,
            ERROR_BODY_MAX_BYTES,
            "an error body",
            "the error body limit",
        );
        match tokio::time::timeout(self.inner.timeouts.read, read).await {
            Ok(Ok(body)) => oci_detail(&body),
            _ => String::new(),
        }
    }

    /// The whole body, refusing more than `limit` bytes whatever `Content-Length` claims
    /// ([`http_client::read_limited`]); `what` and `bound` name the body and the limit in
    /// the error.
    pub(super) async fn read_limited(
        &self,
        response: reqwest::Response,
        limit: u64,
        what: &str,
        bound: &'static str,
    ) -> Result<Bytes, UpstreamError> {
        let url = response.url().clone();
        http_client::read_limited(response, limit)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => UpstreamError::TooLarge {
                    what: what.to_owned(),
                    url: redact_url(&url),
                    limit,
                    bound,
                },
                ReadError::Transport(e) => from_reqwest(e, &url, &self.inner.timeouts),
            })
    }

    pub(super) fn note_ratelimit(&self, response: &reqwest::Response) {
        let remaining = response
            .headers()
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(error::parse_ratelimit);
        if let Some(n) = remaining.filter(|n| *n != RATELIMIT_UNKNOWN) {
            self.inner.ratelimit_remaining.store(n, Ordering::Relaxed);
            if let Some(observer) = &self.inner.observer {
                observer.ratelimit_remaining(&self.inner.registry, n);
            }
        }
    }
}

/// The body as a [`BlobStream`] that fails when no chunk arrives for `read` (only while the
/// consumer is waiting: a slow consumer is not a stalled upstream).
pub(super) fn idle_timeout(response: reqwest::Response, timeouts: Timeouts) -> BlobStream {
    let url = Arc::new(response.url().clone());
    let inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>> =
        Box::pin(response.bytes_stream());
    let stream = futures_util::stream::unfold(Some(inner), move |state| {
        let url = url.clone();
        async move {
            let mut inner = state?;
            let err = match tokio::time::timeout(timeouts.read, inner.next()).await {
                Ok(Some(Ok(chunk))) => return Some((Ok(chunk), Some(inner))),
                Ok(None) => return None,
                // Once the response has started, a transport failure is a broken body.
                Ok(Some(Err(err))) => match from_reqwest(err, &url, &timeouts) {
                    UpstreamError::Unreachable { url, detail } => {
                        UpstreamError::Body { url, detail }
                    }
                    other => other,
                },
                Err(_) => UpstreamError::Timeout {
                    url: redact_url(&url),
                    phase: "body data",
                    after: timeouts.read,
                },
            };
            Some((Err(err), None))
        }
    });
    Box::pin(stream)
}
