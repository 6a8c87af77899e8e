//! The server stack around a handler: ids, errors, timeouts, limits, metrics.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tower::ServiceExt;
use trustgate::body::{self, Body, BoxError};
use trustgate::metrics::Metrics;
use trustgate::server::{self, RequestId, StackConfig, X_REQUEST_ID};

use crate::support::{client_h2, Running};

const INTERNAL: &str = r#"{"errors":[{"code":"UNKNOWN","message":"internal error"}]}"#;

/// A handler whose behaviour is picked by the last path segment.
async fn handler(request: Request<()>) -> Result<Response<Body>, BoxError> {
    match request.uri().path().rsplit('/').next().unwrap_or_default() {
        "panic" => panic!("handler bug (expected by this test)"),
        "error" => Err("database password is hunter2".into()),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Response::new(body::empty()))
        }
        "stream" => {
            // Headers at once, then a body slower than the request timeout.
            let chunks = futures_util::stream::iter(["a", "b", "c"]).then(|chunk| async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes()))
            });
            Ok(Response::new(body::stream(chunks)))
        }
        _ => {
            let id = request
                .extensions()
                .get::<RequestId>()
                .map(|id| id.to_string());
            let header = request.headers().get(X_REQUEST_ID).cloned();
            assert_eq!(id.as_deref(), header.as_ref().and_then(|h| h.to_str().ok()));
            Ok(Response::new(body::full(id.unwrap_or_default())))
        }
    }
}

fn config(timeout: Duration, max: usize) -> StackConfig {
    StackConfig {
        request_timeout: timeout,
        max_concurrent_requests: max,
    }
}

async fn call(service: &server::ServerService<()>, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(()).expect("request");
    let response = service
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn request_ids_are_set_and_echoed() {
    let metrics = Metrics::new();
    let service = server::stack(
        tower::service_fn(handler),
        &StackConfig::default(),
        &metrics,
    );

    let request = Request::get("/v2/").body(()).expect("request");
    let response = service
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let echoed = response.headers()[X_REQUEST_ID]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(echoed.len(), 32);
    let seen = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        seen,
        echoed.as_bytes(),
        "the handler saw the id that was echoed"
    );

    let mut request = Request::get("/v2/").body(()).expect("request");
    request
        .headers_mut()
        .insert(X_REQUEST_ID, HeaderValue::from_static("lb-1234"));
    let response = service
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(response.headers()[X_REQUEST_ID], "lb-1234");

    let mut request = Request::get("/v2/").body(()).expect("request");
    request
        .headers_mut()
        .insert(X_REQUEST_ID, HeaderValue::from_static("bad id\twith\"junk"));
    let response = service
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    assert_ne!(response.headers()[X_REQUEST_ID], "bad id\twith\"junk");
}

#[tokio::test]
async fn panics_and_errors_become_oci_500s() {
    let metrics = Metrics::new();
    let service = server::stack(
        tower::service_fn(handler),
        &StackConfig::default(),
        &metrics,
    );
    for path in ["/v2/a/manifests/panic", "/v2/a/blobs/error"] {
        let (status, body) = call(&service, path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(body, INTERNAL, "{path}: no details leak to the client");
    }
    // The service is still usable after a panic.
    assert_eq!(call(&service, "/v2/").await.0, StatusCode::OK);
    for series in [
        r#"trustgate_http_requests_total{code="500",kind="manifest"}"#,
        r#"trustgate_http_requests_total{code="500",kind="blob"}"#,
        r#"trustgate_http_requests_total{code="200",kind="base"}"#,
    ] {
        assert_eq!(sample(&metrics, series), Some(1.0), "{series}");
    }
}

#[tokio::test]
async fn timeout_covers_headers_not_bodies() {
    let metrics = Metrics::new();
    let stack_config = config(Duration::from_millis(100), 16);
    let service = server::stack(tower::service_fn(handler), &stack_config, &metrics);

    let (status, body) = call(&service, "/v2/a/manifests/slow").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains(r#""code":"UNAVAILABLE""#), "{body}");

    // 450 ms of body under a 100 ms timeout: streaming bodies are not cut.
    let (status, body) = call(&service, "/v2/a/blobs/stream").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "abc"));

    let series = r#"trustgate_http_requests_total{code="504",kind="manifest"}"#;
    assert_eq!(sample(&metrics, series), Some(1.0));
}

#[tokio::test]
async fn concurrency_permit_is_held_until_the_body_ends() {
    let metrics = Metrics::new();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(Some(release_rx)));
    // The first request's body ends only when `release_tx` fires.
    let held = tower::service_fn(move |request: Request<()>| {
        let release = release_rx.lock().expect("lock").take();
        async move {
            let body = match (request.uri().path(), release) {
                ("/v2/a/blobs/first", Some(release)) => {
                    body::stream(futures_util::stream::once(async move {
                        let _ = release.await;
                        Ok::<_, Infallible>(Bytes::from_static(b"first"))
                    }))
                }
                _ => body::full("second"),
            };
            Ok::<_, Infallible>(Response::new(body))
        }
    });
    let service = server::stack(held, &config(Duration::from_secs(10), 1), &metrics);

    let first = Request::get("/v2/a/blobs/first").body(()).expect("request");
    let first = service
        .clone()
        .oneshot(first)
        .await
        .unwrap_or_else(|e| match e {});
    let second = Request::get("/v2/").body(()).expect("request");
    let mut second = Box::pin(service.clone().oneshot(second));

    let waited = tokio::time::timeout(Duration::from_millis(200), &mut second).await;
    assert!(
        waited.is_err(),
        "second request ran while the first body was streaming"
    );

    let _ = release_tx.send(());
    let first_body = first.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(first_body, "first");
    let second = tokio::time::timeout(Duration::from_secs(2), second)
        .await
        .expect("second request ran once the first body ended")
        .unwrap_or_else(|e| match e {});
    assert_eq!(second.status(), StatusCode::OK);
}

#[tokio::test]
async fn stack_serves_over_a_real_listener() {
    let metrics = Metrics::new();
    let hello = tower::service_fn(|_request: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(body::full("hello")))
    });
    let service = server::stack(hello, &StackConfig::default(), &metrics);
    let server = Running::start(server::ServeOptions::default(), None, service).await;
    let response = client_h2()
        .get(server.url("/v2/library/nginx/manifests/latest"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key(X_REQUEST_ID));
    assert_eq!(response.text().await.expect("body"), "hello");
    let series = r#"trustgate_http_requests_total{code="200",kind="manifest"}"#;
    assert_eq!(sample(&metrics, series), Some(1.0));
    server.stop(Duration::from_secs(5)).await;
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn access_log_has_fields_but_no_credentials() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // A current-thread runtime: the thread-local default sees every event of the request.
    let _guard = tracing::subscriber::set_default(subscriber);

    let metrics = Metrics::new();
    let service = server::stack(
        tower::service_fn(handler),
        &StackConfig::default(),
        &metrics,
    );
    let request = Request::get("/v2/library/nginx/manifests/latest?ns=docker.io&t=querysecret")
        .header(http::header::AUTHORIZATION, "Bearer secret-token-123")
        .body(())
        .expect("request");
    let response = service
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let id = response.headers()[X_REQUEST_ID]
        .to_str()
        .expect("ascii")
        .to_owned();

    let logs = String::from_utf8_lossy(&capture.0.lock().expect("lock")).into_owned();
    for field in [
        format!("id={id}"),
        "method=GET".to_owned(),
        "kind=manifest".to_owned(),
        "path=/v2/library/nginx/manifests/latest".to_owned(),
        "status=200".to_owned(),
        "latency_ms=".to_owned(),
    ] {
        assert!(logs.contains(&field), "{field} missing in\n{logs}");
    }
    assert!(
        !logs.contains("secret-token-123"),
        "credentials logged:\n{logs}"
    );
    assert!(!logs.contains("querysecret"), "query logged:\n{logs}");
}
