//! Gives every request an id, in its extensions, its `X-Request-Id` header and the
//! response's, so a client's error report can be matched to the server's log lines.
//!
//! An id set by a load balancer or ingress in front of trustgate is kept, so one id follows
//! the request through both logs, but only if it is short and plain: it is copied into logs
//! and responses, and must not carry log-injection or header tricks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue, Request, Response};

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id accepted from a client or proxy in front of us.
const MAX_INCOMING_LEN: usize = 64;

/// A request's id, as found in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

/// Adds [`RequestIdService`] around a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

/// Sets the request id on the request and echoes it on the response.
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
}

// === impl RequestId ===

impl RequestId {
    /// A fresh random id: 32 hex digits.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            // The system RNG does not fail on supported platforms; if it ever does, a counter
            // still tells requests apart within this process.
            static FALLBACK: AtomicU64 = AtomicU64::new(0);
            let n = FALLBACK.fetch_add(1, Ordering::Relaxed);
            bytes[..8].copy_from_slice(&n.to_be_bytes());
        }
        let text = hex::encode(bytes);
        // Hex digits are always a valid header value.
        match HeaderValue::from_str(&text) {
            Ok(value) => Self(value),
            Err(_) => Self(HeaderValue::from_static("0")),
        }
    }

    /// An id from a request header, if it is acceptable (1 to 64 of `A-Za-z0-9._:-`).
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':');
        let ok = !bytes.is_empty() && bytes.len() <= MAX_INCOMING_LEN && bytes.iter().all(plain);
        ok.then(|| Self(value.clone()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from visible ASCII, see `generate` and `from_header`.
        self.0.to_str().unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RequestIdLayer ===

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

// === impl RequestIdService ===

impl<S, B, ResB> tower::Service<Request<B>> for RequestIdService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        // Replace whatever the client sent, so the handler and upstream see the id we log.
        request.headers_mut().insert(X_REQUEST_ID, id.0.clone());
        let header = id.0.clone();
        request.extensions_mut().insert(id);
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            response.headers_mut().insert(X_REQUEST_ID, header);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_hex() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn incoming_ids_must_be_plain() {
        let accept = ["abc-123", "4f1c2e.x:y_z", &"a".repeat(64)];
        for id in accept {
            let value = HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static(""));
            assert_eq!(
                RequestId::from_header(&value).map(|id| id.to_string()),
                Some(id.to_owned())
            );
        }
        let refuse = ["", "a b", "a\"b", "x=1;y", &"a".repeat(65)];
        for id in refuse {
            let value = HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static(""));
            assert_eq!(RequestId::from_header(&value), None, "{id:?}");
        }
    }
}
