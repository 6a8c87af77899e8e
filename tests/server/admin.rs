//! The admin endpoints on a real listener.

use std::time::Duration;

use http::StatusCode;
use trustgate::metrics::Metrics;
use trustgate::server::{AdminService, Readiness, ServeOptions};

use crate::support::{client_h1, Running};

#[tokio::test]
async fn admin_endpoints() {
    let metrics = Metrics::new();
    metrics.cache().hit();
    let readiness = Readiness::new();
    let admin = AdminService::new(metrics.clone(), readiness.clone());
    let server = Running::start(ServeOptions::default(), None, admin).await;
    let client = client_h1();
    let get = |path: &str| client.get(server.url(path)).send();

    let response = get("/metrics").await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "text/plain; version=0.0.4"
    );
    let text = response.text().await.expect("body");
    assert!(text.contains("\ntrustgate_cache_hits_total 1\n"), "{text}");

    let response = get("/healthz").await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "ok");

    let response = get("/readyz").await.expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.text().await.expect("body"), "not ready: starting");

    readiness.set_ready();
    let response = get("/readyz").await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "ok");

    readiness.set_not_ready("cache directory is not writable");
    let response = get("/readyz").await.expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.text().await.expect("body");
    assert_eq!(body, "not ready: cache directory is not writable");

    for path in ["/", "/metrics/", "/v2/", "/healthz?x=1x"] {
        let status = get(path).await.expect("request").status();
        let expected = if path.starts_with("/healthz") {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "{path}");
    }
    let response = client
        .post(server.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[http::header::ALLOW], "GET, HEAD");

    let response = client
        .head(server.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[http::header::CONTENT_LENGTH], "2");

    server.stop(Duration::from_secs(5)).await;
}
