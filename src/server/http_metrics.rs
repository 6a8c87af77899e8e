//! Counts answered requests in `trustgate_http_requests_total{kind,code}` and their time to
//! headers in `trustgate_http_request_duration_seconds{kind}`.
//!
//! The `kind` label comes from [`RouteKind::of_path`], never from the path itself, so the
//! number of series stays bounded whatever clients send. A request whose client went away
//! before the response headers is not counted: it has no status code.

use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tokio::time::Instant;

use super::route_kind::RouteKind;
use crate::metrics::HttpMetrics;

/// Adds [`HttpMetricsService`] around a service.
#[derive(Clone, Debug)]
pub struct HttpMetricsLayer {
    metrics: HttpMetrics,
}

/// Records each response's status and latency.
#[derive(Clone, Debug)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: HttpMetrics,
}

// === impl HttpMetricsLayer ===

impl HttpMetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: HttpMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

// === impl HttpMetricsService ===

impl<S, B, ResB> tower::Service<Request<B>> for HttpMetricsService<S>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let kind = RouteKind::of_path(request.uri().path());
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            metrics.observe(kind, response.status(), start.elapsed());
            Ok(response)
        })
    }
}
