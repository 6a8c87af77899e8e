//! The tower stack between a connection and the proxy handler.
//!
//! Outermost first; each layer sees what the layers inside it produce:
//!
//! ```text
//! request id      every response, even a timeout or a panic's 500, carries X-Request-Id
//!  trace          span + access log: sees the final status of everything below
//!   metrics       counts the final status of everything below, by route kind
//!    catch panic  a panic below becomes a 500 that the layers above still see
//!     recover     errors from below become OCI error responses (one place)
//!      auth       optional (`auth:`): principal into the extensions, or 401; serves /token
//!       timeout   time to response headers, including the wait for a permit
//!        limit    global concurrency limit, permit held until the body ends
//!         handler the proxy (oci::route, policy, trust, content, upstream)
//! ```

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder};

use super::catch_panic::CatchPanicLayer;
use super::errors::RecoverLayer;
use super::http_metrics::HttpMetricsLayer;
use super::limit::ConcurrencyLimitLayer;
use super::request_id::RequestIdLayer;
use super::trace::TraceLayer;
use crate::auth::{AuthLayer, SharedAuth};
use crate::body::{Body, BoxError};
use crate::metrics::Metrics;

/// The stack's limits.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Longest time from receiving a request to its response headers. Bodies are not
    /// covered: a large blob streams for as long as it takes (upstream read timeouts bound a
    /// stalled stream).
    pub request_timeout: Duration,
    /// Most requests in progress at once, across all connections; more wait for a slot
    /// (within `request_timeout`).
    pub max_concurrent_requests: usize,
}

/// The service the stack builds: it never fails, every error is a response.
pub type ServerService<B> = BoxCloneService<Request<B>, Response<Body>, Infallible>;

// === impl StackConfig ===

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 1024,
        }
    }
}

/// Wraps `handler` in the server stack. The result is cheap to clone (one clone per
/// connection); clones share the concurrency limit and the metrics.
///
/// The handler answers expected failures itself, as OCI error responses. An `Err` from it
/// is treated as a bug: logged once and answered with a 500.
pub fn stack<S, B>(handler: S, config: &StackConfig, metrics: &Metrics) -> ServerService<B>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    stack_with_auth(handler, config, metrics, None)
}

/// [`stack`] with client authentication (`crate::auth`) between recover and timeout:
/// refusals are logged, counted and get a request id like every answer; `/token` and the
/// `bcrypt` check count against `request_timeout` but not against the concurrency limit.
/// Each request is checked against the settings `auth` holds when it arrives, so a reload
/// that replaces them applies to the next request on every connection.
pub fn stack_with_auth<S, B>(
    handler: S,
    config: &StackConfig,
    metrics: &Metrics,
    auth: Option<SharedAuth>,
) -> ServerService<B>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    let service = ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(TraceLayer)
        .layer(HttpMetricsLayer::new(metrics.http().clone()))
        .layer(CatchPanicLayer)
        .layer(RecoverLayer)
        .option_layer(auth.map(|a| AuthLayer::shared(a, metrics.http().clone())))
        .timeout(config.request_timeout)
        .layer(ConcurrencyLimitLayer::new(config.max_concurrent_requests))
        .service(handler);
    // `BoxCloneService::new` rather than `.boxed_clone()`: the layers accept any request
    // body, so method lookup could not pick the `ServiceExt<Request<B>>` impl.
    BoxCloneService::new(service)
}
