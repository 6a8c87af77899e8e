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

/// Answers every image with a fixed verdict, counting the questions.
struct Fixed(std::sync::atomic::AtomicUsize);

impl trustgate::server::Decide for Fixed {
    fn decide(
        &self,
        image: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (StatusCode, bytes::Bytes)> + Send>>
    {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let json = serde_json::json!({"verdict": "allow", "image": image}).to_string();
        Box::pin(async move { (StatusCode::OK, bytes::Bytes::from(json)) })
    }
}

#[tokio::test]
async fn the_decision_api_asks_for_its_token_and_off_loopback_needs_one() {
    use trustgate::config::Secret;
    use trustgate::server::DecisionApi;
    let fixed = std::sync::Arc::new(Fixed(Default::default()));
    let admin = |token: Option<&str>, loopback: bool| {
        AdminService::new(Metrics::new(), Readiness::new()).with_decisions(DecisionApi::new(
            fixed.clone(),
            token.map(Secret::new),
            loopback,
        ))
    };
    let client = client_h1();
    let path = "/v1/verdict?image=registry.test/app%40sha256:abc";

    // A token is set: it is required, exactly.
    let server = Running::start(ServeOptions::default(), None, admin(Some("s3cret"), true)).await;
    for given in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("s3cret"),
        Some("Bearer  s3cret"),
    ] {
        let mut request = client.get(server.url(path));
        if let Some(value) = given {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{given:?}");
        assert!(response
            .headers()
            .contains_key(http::header::WWW_AUTHENTICATE));
    }
    let response = client
        .get(server.url(path))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("json");
    assert_eq!(body["image"], "registry.test/app@sha256:abc");
    assert_eq!(fixed.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.stop(Duration::from_secs(5)).await;

    // No token, not on loopback: the API is refused, nothing is asked.
    let server = Running::start(ServeOptions::default(), None, admin(None, false)).await;
    let response = client.get(server.url(path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("admin_token_file"));
    assert_eq!(fixed.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.stop(Duration::from_secs(5)).await;

    // No token, on loopback: open; no image is a 400, a HEAD a 405.
    let server = Running::start(ServeOptions::default(), None, admin(None, true)).await;
    let response = client.get(server.url(path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .get(server.url("/v1/verdict"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = client.head(server.url(path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    server.stop(Duration::from_secs(5)).await;
}
