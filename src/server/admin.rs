//! The admin listener's service: `/metrics`, `/healthz`, `/readyz`.
//!
//! It runs on its own port, outside the proxy's stack: scrapes and probes must work when the
//! proxy is saturated, and the proxy port must not expose operational data to registry
//! clients.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::body::{self, Body};
use crate::metrics::{self, Metrics};

/// Whether the process is ready to serve traffic, and if not, why.
///
/// Starts not ready ("starting"); `main` calls [`Readiness::set_ready`] once the
/// configuration is loaded and the cache directory is writable, and may call
/// [`Readiness::set_not_ready`] later (e.g. when the cache directory becomes unwritable).
/// Clones share the state.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// `None` when ready, otherwise the reason it is not.
    not_ready: Arc<RwLock<Option<String>>>,
}

/// Serves the admin endpoints.
#[derive(Clone, Debug)]
pub struct AdminService {
    metrics: Metrics,
    readiness: Readiness,
}

// === impl Readiness ===

impl Readiness {
    /// Not ready, because the process is starting.
    pub fn new() -> Self {
        Self {
            not_ready: Arc::new(RwLock::new(Some("starting".to_owned()))),
        }
    }

    /// Marks the process ready.
    pub fn set_ready(&self) {
        *self.write() = None;
    }

    /// Marks the process not ready, for `reason` (shown in `/readyz`'s body: no secrets).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.write() = Some(reason.into());
    }

    /// `Ok` when ready, otherwise the reason.
    pub fn check(&self) -> Result<(), String> {
        // A writer panicking mid-assignment cannot leave a half-written `Option`, so a
        // poisoned lock still holds a meaningful value.
        let guard = self.not_ready.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<String>> {
        self.not_ready.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

// === impl AdminService ===

impl AdminService {
    /// Serves `metrics` and `readiness`.
    pub fn new(metrics: Metrics, readiness: Readiness) -> Self {
        Self { metrics, readiness }
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Body> {
        let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
        if !known {
            return text(StatusCode::NOT_FOUND, "not found");
        }
        if method != Method::GET && method != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        // hyper sends no body for HEAD, and keeps the GET's Content-Length.
        match path {
            "/metrics" => {
                let mut response = Response::new(body::full(self.metrics.render()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                response
            }
            // Answering at all is the liveness signal: the runtime is scheduling tasks.
            "/healthz" => text(StatusCode::OK, "ok"),
            _ => match self.readiness.check() {
                Ok(()) => text(StatusCode::OK, "ok"),
                Err(reason) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready: {reason}"),
                ),
            },
        }
    }
}

impl<B> tower::Service<Request<B>> for AdminService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(request.method(), request.uri().path())))
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(body::full(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
