//! A global limit on requests in progress, counted until the response body is finished.
//!
//! tower's `ConcurrencyLimit` waits for a permit in `poll_ready` and releases it once the
//! response headers are out. Neither fits a proxy: a blob download occupies the process
//! (a socket, buffers, an upstream stream) until its body ends, and a wait in `poll_ready`
//! is outside any timeout's reach. So this layer acquires its permit inside the response
//! future, where the request timeout around it bounds the wait, and hands the permit to the
//! response body, which releases it when the body finishes or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::body::{Body, BoxError};

/// Adds [`ConcurrencyLimit`] around a service. Every service it makes shares one
/// semaphore, so the limit is global however many connections clone the stack.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimitLayer {
    semaphore: Arc<Semaphore>,
}

/// Waits for one of the global permits before calling the inner service.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    semaphore: Arc<Semaphore>,
}

/// A response body that holds a permit until it is done.
struct PermitBody {
    inner: Body,
    _permit: OwnedSemaphorePermit,
}

// === impl ConcurrencyLimitLayer ===

impl ConcurrencyLimitLayer {
    /// Allows at most `max` requests in progress (at least one).
    pub fn new(max: usize) -> Self {
        let permits = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(permits)),
        }
    }
}

impl<S> tower::Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            semaphore: self.semaphore.clone(),
        }
    }
}

// === impl ConcurrencyLimit ===

impl<S, B> tower::Service<Request<B>> for ConcurrencyLimit<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited in the response future, after the permit (see module docs).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let semaphore = self.semaphore.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            // The semaphore is never closed, so this cannot fail; map it anyway.
            let permit = semaphore.acquire_owned().await.map_err(Box::new)?;
            let response = inner.oneshot(request).await.map_err(Into::into)?;
            Ok(response.map(|inner| {
                PermitBody {
                    inner,
                    _permit: permit,
                }
                .boxed_unsync()
            }))
        })
    }
}

// === impl PermitBody ===

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    // Forwarded so hyper still sets `Content-Length` from the inner body's exact size.
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
