//! The responses the server stack itself answers with, and the one place where errors that
//! escaped the handler become responses.
//!
//! Bodies use the OCI error envelope, so registry clients print something sensible. Their
//! codes are two that distribution defines beyond the spec's fourteen (`UNKNOWN`, 500 and
//! `UNAVAILABLE`, 503), because none of the fourteen fits a server-side failure. Messages are
//! fixed strings: error details are logged once, here, never sent to the client.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Request, Response, StatusCode};
use tower::ServiceExt;

use crate::body::{self, Body, BoxError};

const INTERNAL_ERROR: &[u8] = br#"{"errors":[{"code":"UNKNOWN","message":"internal error"}]}"#;
const TIMED_OUT: &[u8] = br#"{"errors":[{"code":"UNAVAILABLE","message":"request timed out"}]}"#;

/// 500 with `{"errors":[{"code":"UNKNOWN","message":"internal error"}]}`.
pub fn internal_error() -> Response<Body> {
    oci_error(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
}

/// 504 with an `UNAVAILABLE` error: the response headers were not ready in time (usually an
/// upstream or trust server was slow). Nothing was sent yet, so the client can retry.
pub fn timed_out() -> Response<Body> {
    oci_error(StatusCode::GATEWAY_TIMEOUT, TIMED_OUT)
}

fn oci_error(status: StatusCode, json: &'static [u8]) -> Response<Body> {
    let mut response = Response::new(body::full(Bytes::from_static(json)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Adds [`RecoverService`] around a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecoverLayer;

/// Turns errors that escaped the handler into responses: the one place where that happens.
///
/// The handler answers every expected failure itself, with its own OCI codes; what arrives
/// here is a timeout or a bug. The result never fails, so hyper never has to drop a
/// connection for lack of a response.
#[derive(Clone, Debug)]
pub struct RecoverService<S> {
    inner: S,
}

// === impl RecoverLayer ===

impl<S> tower::Layer<S> for RecoverLayer {
    type Service = RecoverService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecoverService { inner }
    }
}

// === impl RecoverService ===

impl<S, B> tower::Service<Request<B>> for RecoverService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service's readiness (and any error it reports) is awaited inside the
        // response future, where an error can still become a response.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.inner.clone().oneshot(request);
        Box::pin(async move { Ok(into_response(response.await.map_err(Into::into))) })
    }
}

fn into_response(result: Result<Response<Body>, BoxError>) -> Response<Body> {
    let error = match result {
        Ok(response) => return response,
        Err(error) => error,
    };
    if error.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!("request timed out before its response headers were ready");
        return timed_out();
    }
    tracing::error!(error = %error, "request failed with an internal error");
    internal_error()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_of(response: Response<Body>) -> Bytes {
        match response.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => panic!("body failed: {error}"),
        }
    }

    #[tokio::test]
    async fn maps_errors_to_oci_bodies() {
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        let response = into_response(Err(elapsed));
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body_of(response).await, Bytes::from_static(TIMED_OUT));

        let other: BoxError = "boom: secret detail".into();
        let response = into_response(Err(other));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static("application/json")
        );
        let body = body_of(response).await;
        assert_eq!(body, Bytes::from_static(INTERNAL_ERROR));
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(parsed["errors"][0]["code"], "UNKNOWN");
    }
}
