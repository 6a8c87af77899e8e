//! One tracing span per request, and one access-log event when its response headers are
//! ready (or when the client gave up first).
//!
//! The span records the request id, method, route kind and path, then status and latency.
//! Headers are never recorded: `Authorization` carries registry credentials and tokens. The
//! query string is left out too, and the path is truncated, so a hostile client cannot make
//! every log line huge.

use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

use super::listener::RemoteAddr;
use super::request_id::RequestId;
use super::route_kind::RouteKind;

/// Longest path prefix recorded.
const MAX_PATH_CHARS: usize = 256;

/// Adds [`TraceService`] around a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

/// Runs each request inside its own span and logs its outcome.
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
}

/// Logs a request whose future was dropped before it produced a response: the client
/// disconnected, or the connection was aborted at the end of the shutdown grace period.
struct Cancelled {
    armed: bool,
    start: Instant,
}

// === impl TraceLayer ===

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

// === impl TraceService ===

impl<S, B, ResB> tower::Service<Request<B>> for TraceService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        let span = tracing::info_span!(
            "request",
            id = Empty,
            peer = Empty,
            method = %request.method(),
            kind = %RouteKind::of_path(path),
            path = %truncate(path),
            status = Empty,
            latency_ms = Empty,
        );
        if let Some(id) = request.extensions().get::<RequestId>() {
            span.record("id", tracing::field::display(id));
        }
        if let Some(RemoteAddr(peer)) = request.extensions().get::<RemoteAddr>() {
            span.record("peer", tracing::field::display(peer));
        }
        let start = Instant::now();
        // Entered for `call` too: a handler may do synchronous work (and log) before it
        // returns its future.
        let response = span.in_scope(|| self.inner.call(request));
        let future = async move {
            let mut cancelled = Cancelled { armed: true, start };
            let result = response.await;
            cancelled.armed = false;
            let span = tracing::Span::current();
            span.record("latency_ms", start.elapsed().as_millis() as u64);
            match &result {
                Ok(response) => {
                    span.record("status", response.status().as_u16());
                    tracing::info!("response");
                }
                Err(error) => tracing::warn!(%error, "request failed"),
            }
            result
        };
        Box::pin(future.instrument(span))
    }
}

fn truncate(path: &str) -> &str {
    match path.char_indices().nth(MAX_PATH_CHARS) {
        Some((cut, _)) => &path[..cut],
        None => path,
    }
}

// === impl Cancelled ===

impl Drop for Cancelled {
    fn drop(&mut self) {
        if self.armed {
            // Dropped inside the instrumented future, so still within the request's span.
            let latency_ms = self.start.elapsed().as_millis() as u64;
            tracing::info!(latency_ms, "request cancelled before its response");
        }
    }
}
