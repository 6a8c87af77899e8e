//! Turns a panic in the handler into a 500 with an OCI error body, instead of a connection
//! the client sees reset with no explanation.
//!
//! The panic itself is logged once, by the panic hook ([`super::init_logging`] installs one
//! that writes it as a tracing event inside the request's span; without it Rust's default
//! hook prints it). This layer only answers the client, so the message is not logged twice
//! and its details never reach the client. Panics while a body streams are not caught: the
//! headers are gone by then, and hyper ends the stream, which is the only honest signal left.

use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, FutureExt};
use http::{Request, Response};

use super::errors;
use crate::body::Body;

/// Adds [`CatchPanicService`] around a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanicLayer;

/// Answers 500 when the inner service panics.
#[derive(Clone, Debug)]
pub struct CatchPanicService<S> {
    inner: S,
}

// === impl CatchPanicLayer ===

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanicService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanicService { inner }
    }
}

// === impl CatchPanicService ===

impl<S, B> tower::Service<Request<B>> for CatchPanicService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Unwind safety: a panicking handler may leave its own state half-updated; the
        // handler's state is behind locks (poisoned on panic) or atomics, and a request
        // cannot observe another's half-written locals.
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) {
            Ok(future) => Box::pin(AssertUnwindSafe(future).catch_unwind().map(
                |result| match result {
                    Ok(result) => result,
                    Err(_panic) => Ok(errors::internal_error()),
                },
            )),
            Err(_panic) => Box::pin(std::future::ready(Ok(errors::internal_error()))),
        }
    }
}
