//! The admin listener's service: `/metrics`, `/healthz`, `/readyz`, and the decision API
//! `GET /v1/verdict?image=<registry>/<repository>(@<digest>|:<tag>)`.
//!
//! It runs on its own port, outside the proxy's stack: scrapes and probes must work when the
//! proxy is saturated, and the proxy port must not expose operational data to registry
//! clients. The decision API answers with the proxy's verdict ([`Decide`]); it requires the
//! bearer token of `server.admin_token_file` when one is set, and without one answers only
//! on a loopback listener. At most [`MAX_VERDICTS`] verdicts are worked out at once (each may
//! read from registries); more are answered `503` with `Retry-After`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::body::{self, Body};
use crate::config::Secret;
use crate::metrics::{self, Metrics};

/// Verdicts worked out at once by the decision API.
pub const MAX_VERDICTS: usize = 64;
/// Longest `image` accepted by the decision API.
const MAX_IMAGE: usize = 1024;

/// What answers the decision API: the proxy's verdict for an image reference, as JSON, with
/// its status (`200` for a verdict, allow or refuse; `400` for a malformed reference; `502`
/// when a peer failed, which is no verdict).
pub trait Decide: Send + Sync {
    fn decide(&self, image: String) -> Pin<Box<dyn Future<Output = (StatusCode, Bytes)> + Send>>;
}

/// The decision API: who answers, and who may ask.
#[derive(Clone)]
pub struct DecisionApi {
    decide: Arc<dyn Decide>,
    /// The bearer token required, when `server.admin_token_file` names one.
    token: Option<Secret>,
    /// Whether the admin listener is on loopback (where no token is needed).
    loopback: bool,
    slots: Arc<Semaphore>,
}

impl DecisionApi {
    pub fn new(decide: Arc<dyn Decide>, token: Option<Secret>, loopback: bool) -> Self {
        DecisionApi {
            decide,
            token,
            loopback,
            slots: Arc::new(Semaphore::new(MAX_VERDICTS)),
        }
    }

    /// The refusal when `request` may not ask; `None` when it may.
    fn refusal<B>(&self, request: &Request<B>) -> Option<Response<Body>> {
        let Some(token) = &self.token else {
            return match self.loopback {
                true => None,
                false => Some(json_error(
                    StatusCode::FORBIDDEN,
                    "the decision API needs server.admin_token_file when admin_listen is not a loopback address",
                )),
            };
        };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            given.as_bytes(),
            token.expose().as_bytes(),
        )
        .is_ok()
        {
            return None;
        }
        let mut response = json_error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"trustgate\""),
        );
        Some(response)
    }

    async fn answer(self, image: Option<String>) -> Response<Body> {
        let Some(image) = image.filter(|i| !i.is_empty() && i.len() <= MAX_IMAGE) else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "give ?image=<registry>/<repository>@<digest> (or :<tag>), at most 1024 characters",
            );
        };
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            let mut response = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many verdicts in progress",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        let (status, json) = self.decide.decide(image).await;
        json_response(status, json)
    }
}

impl std::fmt::Debug for DecisionApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionApi")
            .field("token", &self.token)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

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
    decisions: Option<DecisionApi>,
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
        Self {
            metrics,
            readiness,
            decisions: None,
        }
    }

    /// Also serves the decision API.
    pub fn with_decisions(self, decisions: DecisionApi) -> Self {
        Self {
            decisions: Some(decisions),
            ..self
        }
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Body> {
        let known = matches!(path, "/metrics" | "/healthz" | "/readyz")
            || (path == "/v1/verdict" && self.decisions.is_some());
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
            // A GET is answered by `call`; a verdict has no HEAD form.
            "/v1/verdict" => {
                let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET"));
                response
            }
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
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        let (Some(decisions), "/v1/verdict", &Method::GET) =
            (&self.decisions, path, request.method())
        else {
            let response = self.respond(request.method(), path);
            return Box::pin(std::future::ready(Ok(response)));
        };
        if let Some(refused) = decisions.refusal(&request) {
            return Box::pin(std::future::ready(Ok(refused)));
        }
        let image = request.uri().query().and_then(|q| {
            reqwest::Url::parse(&format!("http://admin/?{q}"))
                .ok()?
                .query_pairs()
                .find(|(k, _)| k == "image")
                .map(|(_, v)| v.into_owned())
        });
        let decisions = decisions.clone();
        Box::pin(async move { Ok(decisions.answer(image).await) })
    }
}

fn json_response(status: StatusCode, json: Bytes) -> Response<Body> {
    let mut response = Response::new(body::full(json));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let json = serde_json::json!({ "error": message }).to_string();
    json_response(status, Bytes::from(json))
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
