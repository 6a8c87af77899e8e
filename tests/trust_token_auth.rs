//! A notary server behind distribution token auth (how notary.docker.io and most deployments
//! run): the trust client answers the Bearer challenge with an anonymous pull token for the
//! GUN, reuses it, and never sends it anywhere but the notary server.
//!
//! notary-server's own token auth needs a JWT issuer Debian does not package, so the server
//! here is an in-process fake serving the real metadata of a committed fixture.

use std::{
    convert::Infallible,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::TokioIo;
use trustgate::trust::notary::{HttpSource, HttpTimeouts, Limits, NotaryClient, Source};

const FIXTURE: &str = "tests/data/trust/good-targets";
const TOKEN: &str = "Bearer anonymous-pull-token";

struct Counts {
    tokens: AtomicUsize,
    unauthorized: AtomicUsize,
}

fn handle(
    req: &Request<Incoming>,
    base: &str,
    gun: &str,
    counts: &Counts,
) -> Response<Full<Bytes>> {
    let respond = |status: u16, headers: &[(&str, String)], body: Vec<u8>| {
        let mut r = Response::builder().status(status);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.body(Full::new(Bytes::from(body))).unwrap()
    };
    let path = req.uri().path();
    if path == "/token" {
        counts.tokens.fetch_add(1, Ordering::SeqCst);
        let query = req.uri().query().unwrap_or_default();
        let expected = format!("repository:{gun}:pull")
            .replace(':', "%3A")
            .replace('/', "%2F");
        assert!(
            query.contains(&format!("scope={expected}")),
            "scope in {query}"
        );
        assert!(query.contains("service=notary"), "service in {query}");
        return respond(
            200,
            &[],
            br#"{"token":"anonymous-pull-token","expires_in":300}"#.to_vec(),
        );
    }
    if req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        counts.unauthorized.fetch_add(1, Ordering::SeqCst);
        let challenge = format!(
            "Bearer realm=\"{base}/token\",service=\"notary\",scope=\"repository:{gun}:pull\""
        );
        return respond(401, &[("www-authenticate", challenge)], Vec::new());
    }
    let prefix = format!("/v2/{gun}/_trust/tuf/");
    let Some(file) = path.strip_prefix(&prefix) else {
        return respond(404, &[], Vec::new());
    };
    // `<role>.<sha256>.json` is the consistent name of `<role>.json`.
    let plain = match file.strip_suffix(".json").and_then(|f| f.rsplit_once('.')) {
        Some((role, sum)) if sum.len() == 64 => format!("{role}.json"),
        _ => file.to_owned(),
    };
    match std::fs::read(PathBuf::from(FIXTURE).join("metadata").join(plain)) {
        Ok(bytes) => respond(200, &[], bytes),
        Err(_) => respond(404, &[], Vec::new()),
    }
}

#[tokio::test]
async fn anonymous_token_is_fetched_once_and_used() {
    let case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{FIXTURE}/case.json")).unwrap()).unwrap();
    let gun = case["gun"].as_str().unwrap().to_owned();
    let at = time::OffsetDateTime::parse(
        case["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts {
        tokens: AtomicUsize::new(0),
        unauthorized: AtomicUsize::new(0),
    });
    let server = tokio::spawn({
        let (base, gun, counts) = (base.clone(), gun.clone(), counts.clone());
        async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (base, gun, counts) = (base.clone(), gun.clone(), counts.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let response = handle(&req, &base, &gun, &counts);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    });

    let source = HttpSource::new(&base, None, HttpTimeouts::default()).unwrap();
    let client = NotaryClient::new(Source::Http(source), Limits::default(), None);
    let data = client
        .verify(&gun, at, &[])
        .await
        .expect("verifies through token auth");
    assert!(!data.signed_tags().is_empty());
    // Verify again: the cached token is reused, no new challenge round trip per file.
    client.verify(&gun, at, &[]).await.expect("verifies again");
    assert_eq!(
        counts.tokens.load(Ordering::SeqCst),
        1,
        "one token for the GUN"
    );
    // Only the very first request is challenged; later ones carry the token.
    assert_eq!(counts.unauthorized.load(Ordering::SeqCst), 1);
    server.abort();
}
