//! The upstream client against small in-process fakes on loopback that can be made to
//! misbehave: a token service, a registry that wants Bearer tokens, a CDN on another loopback
//! address (`127.0.0.2`), stalled and truncated bodies, dropped connections, bad TLS.
//!
//! Real distribution (`docker-registry`) is exercised in `upstream.rs`.

mod support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::{header, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use trustgate::upstream::{Blob, Upstream, UpstreamConfig, UpstreamError, REFERRERS_MAX_PAGES};

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
const MANIFEST_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const BLOB: &[u8] = b"blob bytes served by the CDN";
const BLOB_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const LIMIT: u64 = 1 << 20;

// === fake servers ===

type FakeBody = BoxBody<Bytes, std::io::Error>;

/// What a fake saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// Path and query.
    path: String,
    authorization: Option<String>,
}

struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .count()
    }
}

async fn bind(ip: &str) -> TcpListener {
    TcpListener::bind((ip, 0)).await.expect("bind loopback")
}

/// Serves HTTP/1.1 on `listener`, answering every request with `handler`. The server task
/// ends with the test's runtime.
fn serve<H>(listener: TcpListener, handler: H) -> Fake
where
    H: Fn(&Seen) -> Response<FakeBody> + Send + Sync + 'static,
{
    serve_with(listener, handler, |stream| async move { Some(stream) })
}

/// [`serve`] with a hook that may replace (TLS) or drop (`None`) each accepted connection.
fn serve_with<H, A, F, S>(listener: TcpListener, handler: H, accept: A) -> Fake
where
    H: Fn(&Seen) -> Response<FakeBody> + Send + Sync + 'static,
    A: Fn(TcpStream) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Option<S>> + Send,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handler = Arc::new(handler);
    let accept = Arc::new(accept);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (handler, log, accept) = (handler.clone(), log.clone(), accept.clone());
            tokio::spawn(async move {
                let Some(io) = accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = Seen {
                        path: req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        authorization: req
                            .headers()
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    };
                    log.lock().unwrap().push(seen.clone());
                    let response = handler(&seen);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(io), service)
                    .await;
            });
        }
    });
    Fake { addr, seen }
}

fn body(bytes: impl Into<Bytes>) -> FakeBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn respond(status: u16, headers: &[(&str, &str)], bytes: impl Into<Bytes>) -> Response<FakeBody> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body(bytes)).unwrap()
}

/// A body that sends `first` and then nothing, never ending: a stalled upstream.
fn stalled(first: &'static [u8]) -> FakeBody {
    let chunks =
        stream::iter([Ok(Frame::data(Bytes::from_static(first)))]).chain(stream::pending());
    BodyExt::boxed(StreamBody::new(chunks))
}

fn oci_error(status: u16, code: &str, message: &str) -> Response<FakeBody> {
    let json = serde_json::json!({"errors": [{"code": code, "message": message}]});
    respond(
        status,
        &[("content-type", "application/json")],
        json.to_string(),
    )
}

// === a token service and a registry that wants its tokens ===

/// Issues `tok-1`, `tok-2`, ... (300 s), requiring `basic` as `Authorization` when set.
fn token_service(listener: TcpListener, basic: Option<String>) -> Fake {
    let issued = AtomicUsize::new(0);
    serve(listener, move |seen| {
        if basic.is_some() && seen.authorization != basic {
            return oci_error(401, "UNAUTHORIZED", "bad credentials");
        }
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        let json = serde_json::json!({"token": format!("tok-{n}"), "expires_in": 300});
        respond(
            200,
            &[("content-type", "application/json")],
            json.to_string(),
        )
    })
}

struct RegistrySetup {
    tokens: Fake,
    registry: Fake,
    /// Tokens numbered below this are refused (revoked).
    min_token: Arc<AtomicUsize>,
}

/// A registry at 127.0.0.1 that accepts `Bearer tok-N` (N >= `min_token`) and otherwise
/// challenges with the token service's realm. `library/demo` has manifest `v1` and blob
/// [`BLOB_DIGEST`], which redirects to `cdn` when given.
async fn bearer_registry(basic: Option<String>, cdn: Option<String>) -> RegistrySetup {
    let tokens = token_service(bind("127.0.0.1").await, basic);
    let realm = format!("{}/token", tokens.url());
    let min_token = Arc::new(AtomicUsize::new(1));
    let min = min_token.clone();
    let registry = serve(bind("127.0.0.1").await, move |seen| {
        let token = seen
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer tok-"))
            .and_then(|n| n.parse::<usize>().ok());
        if token.is_none_or(|n| n < min.load(Ordering::SeqCst)) {
            let challenge = if seen.path == "/v2/" {
                format!(r#"Bearer realm="{realm}",service="fake.registry""#)
            } else {
                format!(
                    r#"Bearer realm="{realm}",service="fake.registry",scope="repository:library/demo:pull""#
                )
            };
            let mut response = oci_error(401, "UNAUTHORIZED", "authentication required");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
            return response;
        }
        match seen.path.as_str() {
            "/v2/" => respond(200, &[], "{}"),
            "/v2/library/demo/manifests/v1" => respond(
                200,
                &[
                    ("content-type", "application/vnd.oci.image.manifest.v1+json"),
                    ("docker-content-digest", MANIFEST_DIGEST),
                    ("ratelimit-limit", "100;w=21600"),
                    ("ratelimit-remaining", "99;w=21600"),
                ],
                MANIFEST,
            ),
            p if p == format!("/v2/library/demo/blobs/{BLOB_DIGEST}") => match &cdn {
                Some(cdn) => {
                    let location = format!("{cdn}/blobs/2222?sig=s3cret");
                    respond(307, &[("location", location.as_str())], "")
                }
                None => respond(200, &[], BLOB),
            },
            _ => oci_error(404, "NAME_UNKNOWN", "repository name not known to registry"),
        }
    });
    RegistrySetup {
        tokens,
        registry,
        min_token,
    }
}

fn config(url: &str) -> UpstreamConfig {
    let mut cfg = UpstreamConfig::new("fake.registry", url);
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.request_timeout = Duration::from_secs(10);
    cfg.read_timeout = Duration::from_secs(10);
    cfg
}

fn upstream(url: &str) -> Upstream {
    Upstream::new(config(url)).unwrap()
}

async fn collect(blob: Blob) -> Result<Vec<u8>, UpstreamError> {
    let mut out = Vec::new();
    let mut stream = blob.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

// === token auth ===

#[tokio::test]
async fn bearer_challenge_token_and_retry_then_reuse() {
    let setup = bearer_registry(None, None).await;
    let up = upstream(&setup.registry.url());

    let manifest = up.manifest("library/demo", "v1", LIMIT).await.unwrap();
    assert_eq!(manifest.bytes, MANIFEST);
    assert_eq!(manifest.digest.as_deref(), Some(MANIFEST_DIGEST));
    assert_eq!(
        manifest.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(up.ratelimit_remaining(), Some(99));
    // Cached token, sent up front: no second challenge, no second token.
    up.manifest("library/demo", "v1", LIMIT).await.unwrap();
    let blob = up.blob("library/demo", BLOB_DIGEST).await.unwrap();
    assert_eq!(collect(blob).await.unwrap(), BLOB);
    // `/v2/` has no repository scope: a token of its own.
    up.ping().await.unwrap();

    let token_requests: Vec<String> = setup.tokens.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        token_requests,
        [
            "/token?service=fake.registry&scope=repository%3Alibrary%2Fdemo%3Apull",
            "/token?service=fake.registry",
        ]
    );
    let registry: Vec<(String, Option<String>)> = setup
        .registry
        .seen()
        .into_iter()
        .map(|s| (s.path, s.authorization))
        .collect();
    let manifest_path = "/v2/library/demo/manifests/v1".to_owned();
    let tok = |n: u32| Some(format!("Bearer tok-{n}"));
    assert_eq!(
        registry,
        [
            (manifest_path.clone(), None),
            (manifest_path.clone(), tok(1)),
            (manifest_path, tok(1)),
            (format!("/v2/library/demo/blobs/{BLOB_DIGEST}"), tok(1)),
            ("/v2/".to_owned(), tok(2)),
        ]
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch() {
    let setup = bearer_registry(None, None).await;
    let up = upstream(&setup.registry.url());
    let results =
        futures_util::future::join_all((0..8).map(|_| up.manifest("library/demo", "v1", LIMIT)))
            .await;
    for result in results {
        assert_eq!(result.unwrap().bytes, MANIFEST);
    }
    assert_eq!(setup.tokens.count("/token"), 1);
}

#[tokio::test]
async fn credentials_go_to_the_token_service_only() {
    let expected = basic("alice", "s3cret-pw");
    let setup = bearer_registry(Some(expected.clone()), None).await;
    let mut cfg = config(&setup.registry.url());
    cfg.username = Some("alice".to_owned());
    cfg.password = Some("s3cret-pw".to_owned());
    let up = Upstream::new(cfg.clone()).unwrap();
    up.manifest("library/demo", "v1", LIMIT).await.unwrap();
    assert_eq!(setup.tokens.seen()[0].authorization, Some(expected));
    assert!(setup.registry.seen().iter().all(|s| !s
        .authorization
        .as_deref()
        .unwrap_or("")
        .starts_with("Basic")));

    cfg.password = Some("wrong-pw".to_owned());
    let wrong = Upstream::new(cfg).unwrap();
    let err = wrong
        .manifest("library/demo", "v1", LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Auth { .. }), "{err:?}");
    let shown = format!("{err} | {err:?}");
    assert!(
        shown.contains("refused the configured credentials"),
        "{shown}"
    );
    assert!(
        !shown.contains("wrong-pw") && !shown.contains("tok-"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let setup = bearer_registry(None, None).await;
    let up = upstream(&setup.registry.url());
    up.manifest("library/demo", "v1", LIMIT).await.unwrap();
    // The registry stops accepting tok-1 although it has not expired.
    setup.min_token.store(2, Ordering::SeqCst);
    up.manifest("library/demo", "v1", LIMIT).await.unwrap();
    assert_eq!(setup.tokens.count("/token"), 2);
    let auths: Vec<Option<String>> = setup
        .registry
        .seen()
        .into_iter()
        .map(|s| s.authorization)
        .collect();
    assert_eq!(
        auths,
        [
            None,
            Some("Bearer tok-1".to_owned()),
            Some("Bearer tok-1".to_owned()),
            Some("Bearer tok-2".to_owned()),
        ]
    );

    // A registry that refuses every token: one retry, then Denied.
    setup.min_token.store(usize::MAX, Ordering::SeqCst);
    let err = up.manifest("library/demo", "v1", LIMIT).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Denied { status: 401, detail, .. } if detail.contains("UNAUTHORIZED")),
        "{err:?}"
    );
}

// === redirects ===

#[tokio::test]
async fn cross_host_redirect_drops_authorization() {
    let cdn = serve(bind("127.0.0.2").await, |_| respond(200, &[], BLOB));
    let setup = bearer_registry(None, Some(cdn.url())).await;
    let up = upstream(&setup.registry.url());

    let blob = up.blob("library/demo", BLOB_DIGEST).await.unwrap();
    assert_eq!(blob.length, Some(BLOB.len() as u64));
    assert_eq!(collect(blob).await.unwrap(), BLOB);

    let at_registry = setup.registry.seen();
    assert_eq!(
        at_registry.last().unwrap().authorization.as_deref(),
        Some("Bearer tok-1"),
        "the registry itself gets the token"
    );
    let at_cdn = cdn.seen();
    assert_eq!(at_cdn.len(), 1, "{at_cdn:?}");
    assert_eq!(at_cdn[0].path, "/blobs/2222?sig=s3cret");
    assert_eq!(
        at_cdn[0].authorization, None,
        "Authorization must not follow a redirect to another host"
    );
}

#[tokio::test]
async fn redirect_loops_stop() {
    let looping = serve(bind("127.0.0.1").await, |seen| {
        let next = format!("{}x", seen.path);
        respond(302, &[("location", next.as_str())], "")
    });
    let up = upstream(&looping.url());
    let err = up.blob("library/demo", BLOB_DIGEST).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unreachable { detail, .. } if detail.contains("redirects")),
        "{err:?}"
    );
    assert!(looping.count("/") <= 7, "{} requests", looping.count("/"));
}

// === bodies ===

#[tokio::test]
async fn stalled_blob_body_times_out_without_leaking_the_cdn_signature() {
    let cdn = serve(bind("127.0.0.2").await, |_| {
        let mut response = Response::new(stalled(b"first bytes"));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, "1000".parse().unwrap());
        response
    });
    let setup = bearer_registry(None, Some(cdn.url())).await;
    let mut cfg = config(&setup.registry.url());
    cfg.read_timeout = Duration::from_millis(300);
    let up = Upstream::new(cfg).unwrap();

    let started = Instant::now();
    let blob = up.blob("library/demo", BLOB_DIGEST).await.unwrap();
    assert_eq!(blob.length, Some(1000));
    let mut stream = blob.stream;
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, Bytes::from_static(b"first bytes"));
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Timeout { phase: "body data", after, .. }
            if *after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(
        stream.next().await.is_none(),
        "the stream ends after an error"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let shown = err.to_string();
    assert!(
        shown.contains("127.0.0.2") && !shown.contains("s3cret"),
        "{shown}"
    );
}

#[tokio::test]
async fn truncated_blob_body_is_a_body_error() {
    // Raw HTTP: headers and part of the body go out, then the connection closes (hyper's own
    // server would not flush a response it knows to be short).
    let listener = bind("127.0.0.1").await;
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part")
                .await;
            let _ = tcp.flush().await;
        }
    });
    let up = upstream(&url);
    let blob = up.blob("library/demo", BLOB_DIGEST).await.unwrap();
    assert_eq!(blob.length, Some(1000));
    let err = collect(blob).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Body { .. }), "{err:?}");
}

#[tokio::test]
async fn oversized_manifests_are_refused() {
    let big = vec![b' '; 4096];
    let server = serve(bind("127.0.0.1").await, move |seen| {
        if seen.path.ends_with("/announced") {
            // Content-Length says it all.
            respond(200, &[], big.clone())
        } else {
            // Chunked, no length: the limit must hold while reading.
            let chunks =
                stream::iter((0..64).map(|_| Ok(Frame::data(Bytes::from_static(&[b' '; 256])))));
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
    });
    let up = upstream(&server.url());
    for reference in ["announced", "chunked"] {
        let err = up
            .manifest("library/demo", reference, 1000)
            .await
            .unwrap_err();
        assert!(
            matches!(err, UpstreamError::TooLarge { limit: 1000, .. }),
            "{reference}: {err:?}"
        );
    }
    // Within the limit, the chunked one reads fine.
    let ok = up
        .manifest("library/demo", "chunked", 64 * 256)
        .await
        .unwrap();
    assert_eq!(ok.bytes.len(), 64 * 256);
}

// === tags ===

#[tokio::test]
async fn tags_pass_query_and_link_through() {
    const LINK: &str = r#"</v2/library/demo/tags/list?last=b&n=2>; rel="next""#;
    let server = serve(bind("127.0.0.1").await, |_| {
        respond(
            200,
            &[("content-type", "application/json"), ("link", LINK)],
            r#"{"name":"library/demo","tags":["a","b"]}"#,
        )
    });
    let up = upstream(&server.url());
    let (body, link) = up.tags("library/demo", Some(2), Some("a")).await.unwrap();
    assert_eq!(body, r#"{"name":"library/demo","tags":["a","b"]}"#);
    assert_eq!(link.as_deref(), Some(LINK));
    up.tags("library/demo", None, None).await.unwrap();
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/v2/library/demo/tags/list?n=2&last=a",
            "/v2/library/demo/tags/list"
        ]
    );
}

/// The referrers API (OCI distribution spec, "Listing Referrers"), and the referrers tag
/// schema fallback for registries without it (Debian's distribution 2.8, which the real-peer
/// tests use, only exercises the fallback).
#[tokio::test]
async fn referrers_use_the_api_then_the_tag_fallback() {
    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let subject = MANIFEST_DIGEST;
    let fallback_tag = format!("sha256-{}", &subject["sha256:".len()..]);

    // A registry with the API, which applies the filter.
    let api = serve(bind("127.0.0.1").await, |seen| {
        if seen.path.contains("/referrers/") {
            respond(
                200,
                &[
                    ("content-type", INDEX_TYPE),
                    ("oci-filters-applied", "artifactType"),
                ],
                INDEX,
            )
        } else {
            oci_error(404, "MANIFEST_UNKNOWN", "unexpected")
        }
    });
    let got = upstream(&api.url())
        .referrers("library/demo", subject, Some(BUNDLE), LIMIT)
        .await
        .unwrap()
        .expect("referrers");
    assert_eq!(got.bytes, INDEX.as_bytes());
    assert!(got.filtered);
    assert_eq!(got.tag, None);
    let paths: Vec<String> = api.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [format!(
            "/v2/library/demo/referrers/{subject}?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson"
        )]
    );

    // A registry without the API (404, as distribution 2.8 answers), with the fallback tag.
    let tag_path = format!("/v2/library/demo/manifests/{fallback_tag}");
    let fallback = serve(bind("127.0.0.1").await, move |seen| {
        if seen.path == tag_path {
            respond(200, &[("content-type", INDEX_TYPE)], INDEX)
        } else {
            respond(
                404,
                &[("content-type", "text/plain")],
                "404 page not found\n",
            )
        }
    });
    let got = upstream(&fallback.url())
        .referrers("library/demo", subject, Some(BUNDLE), LIMIT)
        .await
        .unwrap()
        .expect("referrers through the tag");
    assert_eq!(got.bytes, INDEX.as_bytes());
    assert!(!got.filtered, "a tag fallback is never filtered");
    assert_eq!(got.tag.as_deref(), Some(fallback_tag.as_str()));

    // Neither: no referrers at all.
    let none = serve(bind("127.0.0.1").await, |_| {
        oci_error(404, "MANIFEST_UNKNOWN", "no such manifest")
    });
    let got = upstream(&none.url())
        .referrers("library/demo", subject, None, LIMIT)
        .await
        .unwrap();
    assert!(got.is_none());
    assert_eq!(none.count("/v2/library/demo/referrers/"), 1);
    assert_eq!(none.count("/v2/library/demo/manifests/sha256-"), 1);

    // A registry that fails is an error, not "no referrers": a signature that exists must not
    // be taken for missing because the registry hiccuped.
    let failing = serve(bind("127.0.0.1").await, |_| {
        oci_error(500, "UNKNOWN", "internal error")
    });
    let e = upstream(&failing.url())
        .referrers("library/demo", subject, None, LIMIT)
        .await
        .unwrap_err();
    assert!(!matches!(e, UpstreamError::NotFound { .. }), "{e:?}");
    assert_eq!(failing.count("/v2/library/demo/manifests/"), 0);

    // An index larger than asked for is refused, whatever Content-Length says.
    let big = "x".repeat(2048);
    let oversized = serve(bind("127.0.0.1").await, move |_| {
        respond(200, &[("content-type", INDEX_TYPE)], big.clone())
    });
    upstream(&oversized.url())
        .referrers("library/demo", subject, None, 1024)
        .await
        .unwrap_err();
}

/// The referrers API's pages (`Link: <...>; rel="next"`): each next page on the upstream's
/// own origin and path is read, one on another host never is, and a registry that pages
/// forever is read for [`REFERRERS_MAX_PAGES`] pages only.
#[tokio::test]
async fn attack_referrers_pages_stay_on_the_upstream_and_are_bounded() {
    const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
    let subject = MANIFEST_DIGEST;
    let page = |n: usize| {
        format!(r#"{{"schemaVersion":2,"mediaType":"{INDEX_TYPE}","manifests":[{{"page":{n}}}]}}"#)
    };
    let elsewhere = serve(bind("127.0.0.1").await, |_| {
        oci_error(404, "NAME_UNKNOWN", "nothing here")
    });
    let foreign = format!(
        "{}/v2/library/demo/referrers/{subject}?last=3",
        elsewhere.url()
    );
    // Page one links relatively to page two, which links to another host.
    let paged = serve(bind("127.0.0.1").await, move |seen| {
        let (n, link) = if seen.path.ends_with("?last=1") {
            (2, format!("<{foreign}>; rel=\"next\""))
        } else {
            (
                1,
                format!("</v2/library/demo/referrers/{subject}?last=1>; rel=\"next\""),
            )
        };
        respond(
            200,
            &[("content-type", INDEX_TYPE), ("link", &link)],
            page(n),
        )
    });
    let got = upstream(&paged.url())
        .referrers("library/demo", subject, None, LIMIT)
        .await
        .unwrap()
        .expect("referrers");
    assert_eq!(got.bytes, page(1).as_bytes());
    assert_eq!(got.more, [Bytes::from(page(2))]);
    assert_eq!(paged.count("/v2/library/demo/referrers/"), 2);
    assert_eq!(
        elsewhere.seen().len(),
        0,
        "a next page on another host was fetched"
    );

    // Pages without end: read up to the bound, then no further.
    let endless = serve(bind("127.0.0.1").await, move |seen| {
        let n = seen
            .path
            .rsplit('=')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0usize);
        let link = format!(
            "</v2/library/demo/referrers/{subject}?last={}>; rel=\"next\"",
            n + 1
        );
        respond(
            200,
            &[("content-type", INDEX_TYPE), ("link", &link)],
            page(n),
        )
    });
    let got = upstream(&endless.url())
        .referrers("library/demo", subject, None, LIMIT)
        .await
        .unwrap()
        .expect("referrers");
    assert_eq!(got.more.len() + 1, REFERRERS_MAX_PAGES);
    assert_eq!(
        endless.count("/v2/library/demo/referrers/"),
        REFERRERS_MAX_PAGES
    );

    // All pages together stay within the size asked for.
    let small = serve(bind("127.0.0.1").await, move |seen| {
        let n = seen
            .path
            .rsplit('=')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0usize);
        let link = format!(
            "</v2/library/demo/referrers/{subject}?last={}>; rel=\"next\"",
            n + 1
        );
        respond(
            200,
            &[("content-type", INDEX_TYPE), ("link", &link)],
            page(n),
        )
    });
    let limit = 2 * page(0).len() as u64;
    upstream(&small.url())
        .referrers("library/demo", subject, None, limit)
        .await
        .unwrap_err();
}

// === statuses ===

#[tokio::test]
async fn statuses_map_to_errors() {
    let server = serve(bind("127.0.0.1").await, |seen| {
        match seen.path.rsplit('/').next().unwrap_or_default() {
            "missing" => oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            "limited" => {
                let mut r = oci_error(429, "TOOMANYREQUESTS", "pull rate limit");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, "30".parse().unwrap());
                r
            }
            "forbidden" => oci_error(403, "DENIED", "requested access to the resource is denied"),
            "unchallenged" => oci_error(401, "UNAUTHORIZED", "no challenge given"),
            "basic" => respond(401, &[("www-authenticate", r#"Basic realm="r""#)], ""),
            "broken" => oci_error(500, "UNKNOWN", "boom\nwith a newline"),
            _ => respond(
                502,
                &[("content-type", "text/html")],
                "<html>bad gateway</html>",
            ),
        }
    });
    let up = upstream(&server.url());
    let get = |reference: &'static str| {
        let up = up.clone();
        async move {
            up.manifest("library/demo", reference, LIMIT)
                .await
                .unwrap_err()
        }
    };
    let err = get("missing").await;
    assert!(matches!(err, UpstreamError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "fake.registry: manifest library/demo:missing not found"
    );
    let err = get("limited").await;
    assert!(
        matches!(
            err,
            UpstreamError::RateLimited {
                retry_after: Some(30),
                ..
            }
        ),
        "{err:?}"
    );
    let err = get("forbidden").await;
    assert!(
        matches!(&err, UpstreamError::Denied { status: 403, detail, .. }
            if detail == "DENIED: requested access to the resource is denied"),
        "{err:?}"
    );
    let err = get("unchallenged").await;
    assert!(
        matches!(err, UpstreamError::Denied { status: 401, .. }),
        "{err:?}"
    );
    let err = get("basic").await;
    assert!(
        matches!(&err, UpstreamError::Denied { status: 401, detail, .. }
            if detail.contains("no credentials are configured")),
        "{err:?}"
    );
    let err = get("broken").await;
    assert!(
        matches!(&err, UpstreamError::Status { status: 500, detail, .. }
            if detail == "UNKNOWN: boomwith a newline"),
        "{err:?}"
    );
    assert!(err.is_unavailable());
    let err = get("other").await;
    assert!(
        matches!(&err, UpstreamError::Status { status: 502, detail, .. } if detail.is_empty()),
        "{err:?}"
    );

    let err = up.manifest("../etc", "v1", LIMIT).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::InvalidArgument { .. }),
        "{err:?}"
    );
    let err = up.blob("library/demo", "sha256:x?y").await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::InvalidArgument { .. }),
        "{err:?}"
    );
}

// === connections ===

/// Accepts connections, dropping the first `drops` of them unanswered and serving the rest.
fn dropping_server(listener: TcpListener, drops: usize) -> (Fake, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let fake = serve_with(
        listener,
        |_| respond(200, &[], "{}"),
        move |tcp| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < drops {
                    // Read the request, then close without a response.
                    let mut buf = [0u8; 1024];
                    let _ = tcp.readable().await;
                    let _ = tcp.try_read(&mut buf);
                    drop(tcp);
                    None
                } else {
                    Some(tcp)
                }
            }
        },
    );
    (fake, connections)
}

#[tokio::test]
async fn a_connection_cut_before_the_response_is_retried_once() {
    let (server, connections) = dropping_server(bind("127.0.0.1").await, 1);
    upstream(&server.url()).ping().await.unwrap();
    assert_eq!(connections.load(Ordering::SeqCst), 2);

    let (server, connections) = dropping_server(bind("127.0.0.1").await, usize::MAX);
    let err = upstream(&server.url()).ping().await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 2, "exactly one retry");
}

#[tokio::test]
async fn unreachable_and_unanswered_upstreams() {
    // Nothing listens on a port that was just released.
    let port = bind("127.0.0.1").await.local_addr().unwrap().port();
    let err = upstream(&format!("http://127.0.0.1:{port}"))
        .ping()
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    assert!(err.is_unavailable());

    // Accepts and reads, never answers.
    let silent = serve_with(
        bind("127.0.0.1").await,
        |_| respond(200, &[], ""),
        |tcp| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(tcp)
        },
    );
    let mut cfg = config(&silent.url());
    cfg.request_timeout = Duration::from_millis(300);
    let up = Upstream::new(cfg).unwrap();
    let started = Instant::now();
    let err = up.manifest("library/demo", "v1", LIMIT).await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Timeout {
                phase: "a response",
                ..
            }
        ),
        "{err:?}"
    );
    let err = up.blob("library/demo", BLOB_DIGEST).await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Timeout {
                phase: "a response",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

// === TLS ===

fn openssl(dir: &Path, args: &[&str]) {
    let out = support::run_bounded(
        Command::new("openssl").args(args).current_dir(dir),
        b"",
        "openssl",
    );
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and two server certificates for 127.0.0.1 it issued: one valid, one that expired
/// (`-days -1` puts notAfter before now; `req` refuses that, `x509 -req` does not).
fn make_pki(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:false\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
    ];
    for key in ["ca.key", "server.key"] {
        openssl(dir, &[&ec[..], &[key][..]].concat());
    }
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "30",
            "-subj",
            "/CN=trustgate test CA",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-key",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-subj",
            "/CN=127.0.0.1",
            "-key",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    for (days, out) in [("30", "valid.crt"), ("-1", "expired.crt")] {
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                days,
                "-extfile",
                "ext.cnf",
                "-out",
                out,
            ],
        );
    }
}

fn tls_server(listener: TcpListener, dir: &Path, cert: &str) -> Fake {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(dir.join(cert))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    serve_with(
        listener,
        |_| respond(200, &[], "{}"),
        move |tcp| {
            let acceptor = acceptor.clone();
            async move { acceptor.accept(tcp).await.ok() }
        },
    )
}

#[tokio::test]
async fn tls_certificates_are_checked_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let ca_pem = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let https = |fake: &Fake| format!("https://{}", fake.addr);

    let valid = tls_server(bind("127.0.0.1").await, dir.path(), "valid.crt");
    let err = upstream(&https(&valid)).ping().await.unwrap_err();
    assert!(matches!(err, UpstreamError::TlsUntrusted { .. }), "{err:?}");
    assert!(err.to_string().contains("CA certificate"), "{err}");

    let mut cfg = config(&https(&valid));
    cfg.ca_pem = Some(ca_pem.clone());
    Upstream::new(cfg).unwrap().ping().await.unwrap();

    let expired = tls_server(bind("127.0.0.1").await, dir.path(), "expired.crt");
    let mut cfg = config(&https(&expired));
    cfg.ca_pem = Some(ca_pem);
    let err = Upstream::new(cfg).unwrap().ping().await.unwrap_err();
    assert!(matches!(err, UpstreamError::TlsExpired { .. }), "{err:?}");
    assert!(err.to_string().contains("expired"), "{err}");
}
