use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use serde_json::{json, Value};

use super::{
    candidates, check, discover, index, tag_index_valid, Listed, Referrer, Source, MAX_CONFIG,
    MAX_REFERRERS,
};
use crate::{
    oci::Digest,
    trust::ContentSource,
    upstream::{Upstream, UpstreamConfig},
};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const NOTATION: &str = "application/vnd.cncf.notary.signature";
const LIMIT: u64 = 4 << 20;

fn subject() -> Digest {
    Digest::sha256_of(b"the image manifest")
}

fn empty_config() -> Value {
    json!({"mediaType": EMPTY, "digest": Digest::sha256_of(b"{}").as_str(), "size": 2})
}

/// A referrer manifest of `subject` with one layer.
fn artifact(subject: &Digest, config: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": NOTATION,
        "config": config,
        "layers": [{"mediaType": "application/jose+json",
                    "digest": Digest::sha256_of(b"envelope").as_str(), "size": 8}],
        "subject": {"mediaType": MANIFEST, "digest": subject.as_str(), "size": 18},
    }))
    .unwrap()
}

fn descriptor(bytes: &[u8], artifact_type: &str) -> Value {
    json!({
        "mediaType": MANIFEST,
        "digest": Digest::sha256_of(bytes).as_str(),
        "size": bytes.len(),
        "artifactType": artifact_type,
    })
}

fn listed(descriptor: Value) -> Listed {
    candidates(vec![descriptor], LIMIT, |_| 0)
        .pop()
        .expect("a candidate")
}

fn checked(bytes: &[u8], listed: Listed) -> Result<Referrer, &'static str> {
    check(
        listed,
        Bytes::copy_from_slice(bytes),
        Some(MANIFEST.to_owned()),
        &subject(),
        Source::Api,
    )
    .map_err(|(_, why)| why)
}

fn digests(listed: &[Listed]) -> Vec<String> {
    listed
        .iter()
        .map(|l| l.digest.as_str().to_owned())
        .collect()
}

#[test]
fn candidates_are_ranked_stably_then_bounded() {
    let listed: Vec<Value> = (0..40u8)
        .map(|i| {
            let kind = if i % 2 == 0 { "other" } else { NOTATION };
            descriptor(&[i], kind)
        })
        .collect();
    let ranked = candidates(listed, LIMIT, |l| {
        u8::from(l.artifact_type.as_deref() != Some(NOTATION))
    });
    assert_eq!(ranked.len(), MAX_REFERRERS);
    // Twenty of the preferred kind: the first sixteen of them, in the registry's order.
    let want: Vec<String> = (0..40u8)
        .filter(|i| i % 2 == 1)
        .take(MAX_REFERRERS)
        .map(|i| Digest::sha256_of(&[i]).as_str().to_owned())
        .collect();
    assert_eq!(digests(&ranked), want);
}

#[test]
fn duplicates_oversized_and_invalid_descriptors_take_no_place() {
    let real = descriptor(b"real", BUNDLE);
    let mut listed = vec![real.clone(), real.clone()];
    listed.push(json!({"mediaType": MANIFEST, "digest": "sha256:nothex", "size": 3}));
    listed.push(json!({"mediaType": MANIFEST, "size": 3}));
    listed.push(
        json!({"mediaType": MANIFEST, "digest": Digest::sha256_of(b"big").as_str(),
                       "size": LIMIT + 1}),
    );
    listed.push(json!("not a descriptor"));
    let after = descriptor(b"after", NOTATION);
    listed.push(after.clone());
    let got = candidates(listed, LIMIT, |_| 0);
    assert_eq!(
        digests(&got),
        vec![
            real["digest"].as_str().unwrap().to_owned(),
            after["digest"].as_str().unwrap().to_owned()
        ]
    );
    // The descriptor as listed is kept, to serve again.
    assert_eq!(got[0].raw, real);
    assert_eq!(got[1].artifact_type.as_deref(), Some(NOTATION));
}

#[test]
fn a_referrer_naming_the_subject_is_parsed() {
    let bytes = artifact(&subject(), empty_config());
    let referrer = checked(&bytes, listed(descriptor(&bytes, "listed/type"))).expect("checked");
    assert_eq!(referrer.subject.digest, subject());
    assert_eq!(referrer.artifact_type.as_deref(), Some(NOTATION));
    assert_eq!(
        referrer.listed.artifact_type.as_deref(),
        Some("listed/type")
    );
    assert_eq!(referrer.layers.len(), 1);
    assert_eq!(
        referrer.layers[0].media_type.as_str(),
        "application/jose+json"
    );
    assert_eq!(referrer.source, Source::Api);
    assert_eq!(
        referrer.empty_config(),
        Some((Digest::sha256_of(b"{}").as_str().to_owned(), 2))
    );
    assert_eq!(referrer.descriptor()["size"], json!(bytes.len()));
}

#[test]
fn a_referrer_must_be_the_bytes_its_descriptor_names() {
    let bytes = artifact(&subject(), empty_config());
    // Another manifest's bytes under this digest.
    let mut forged = listed(descriptor(&bytes, NOTATION));
    forged.digest = Digest::sha256_of(b"something else");
    assert!(checked(&bytes, forged).is_err());
    // Listed shorter than it is (the registry read stops at the listed size; a registry
    // sending a prefix must not pass either).
    let mut short = listed(descriptor(&bytes, NOTATION));
    short.size -= 1;
    assert!(checked(&bytes, short).is_err());
}

#[test]
fn a_referrer_of_another_subject_or_of_none_is_refused() {
    let other = artifact(&Digest::sha256_of(b"another image"), empty_config());
    assert_eq!(
        checked(&other, listed(descriptor(&other, NOTATION))).unwrap_err(),
        "its subject is another manifest"
    );
    let mut none: Value = serde_json::from_slice(&artifact(&subject(), empty_config())).unwrap();
    none.as_object_mut().unwrap().remove("subject");
    let none = serde_json::to_vec(&none).unwrap();
    assert!(checked(&none, listed(descriptor(&none, NOTATION))).is_err());
}

#[test]
fn a_referrer_must_be_an_image_manifest_with_a_small_config() {
    let big = artifact(
        &subject(),
        json!({"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": Digest::sha256_of(b"c").as_str(), "size": MAX_CONFIG + 1}),
    );
    assert_eq!(
        checked(&big, listed(descriptor(&big, NOTATION))).unwrap_err(),
        "its config is too large"
    );
    let other_config = artifact(
        &subject(),
        json!({"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": Digest::sha256_of(b"c").as_str(), "size": 1}),
    );
    let referrer = checked(&other_config, listed(descriptor(&other_config, NOTATION)))
        .expect("a small config is fine");
    assert_eq!(referrer.empty_config(), None, "only the empty descriptor");

    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
        "subject": {"mediaType": MANIFEST, "digest": subject().as_str(), "size": 18},
    }))
    .unwrap();
    assert_eq!(
        check(
            listed(descriptor(&idx, NOTATION)),
            Bytes::from(idx.clone()),
            None,
            &subject(),
            Source::TagIndex,
        )
        .map_err(|(_, why)| why)
        .unwrap_err(),
        "it is an index"
    );
    let junk = b"{\"schemaVersion\": 2, \"mediaType\": 7}";
    assert!(checked(junk, listed(descriptor(junk, NOTATION))).is_err());
}

#[test]
fn a_referrers_tag_must_hold_an_oci_index() {
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    }))
    .unwrap();
    assert_eq!(tag_index_valid(&idx), Ok(()));
    let image = artifact(&subject(), empty_config());
    let why = tag_index_valid(&image).unwrap_err();
    assert!(why.contains("not an OCI index"), "{why}");
    assert!(tag_index_valid(b"not json").is_err());
}

#[test]
fn the_served_index_filters_by_artifact_type() {
    let a = descriptor(b"a", BUNDLE);
    let b = descriptor(b"b", NOTATION);
    let all: Value = serde_json::from_slice(&index([&a, &b], None)).unwrap();
    assert_eq!(all["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(all["schemaVersion"], 2);
    assert_eq!(all["manifests"], json!([a, b]));
    let notation: Value = serde_json::from_slice(&index([&a, &b], Some(NOTATION))).unwrap();
    assert_eq!(notation["manifests"], json!([b]));
    let none: Value = serde_json::from_slice(&index([&a, &b], Some("x/y"))).unwrap();
    assert_eq!(none["manifests"], json!([]));
}

/// A content type and body.
type Served = (&'static str, Vec<u8>);
/// A path and what it serves.
type Route = (String, Served);

/// A registry on loopback serving `routes` (path -> content type and body), `404` for the
/// rest, one request per connection.
async fn registry(routes: HashMap<String, Served>) -> ContentSource {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, kind, body) = match routes.get(&path) {
                    Some((kind, body)) => ("200 OK", *kind, body.clone()),
                    None => (
                        "404 Not Found",
                        "application/json",
                        br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec(),
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            });
        }
    });
    ContentSource {
        upstream: Upstream::new(UpstreamConfig::new("r.example", format!("http://{addr}")))
            .unwrap(),
        repo: "r".to_owned(),
        max_manifest_size: LIMIT,
    }
}

fn oci_index(manifests: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap()
}

/// A listing of: a good referrer, one of another subject, one whose registry serves other
/// bytes, one absent, and the good one again.
fn hostile_listing() -> (Vec<u8>, Vec<Route>) {
    let good = artifact(&subject(), empty_config());
    let other = artifact(&Digest::sha256_of(b"another image"), empty_config());
    let swapped = artifact(
        &subject(),
        json!({"mediaType": EMPTY,
        "digest": Digest::sha256_of(b"{}").as_str(), "size": 2, "annotations": {"x": "y"}}),
    );
    let absent = artifact(
        &subject(),
        json!({"mediaType": EMPTY,
        "digest": Digest::sha256_of(b"{}").as_str(), "size": 2, "annotations": {"a": "b"}}),
    );
    let path = |bytes: &[u8]| format!("/v2/r/manifests/{}", Digest::sha256_of(bytes).as_str());
    let listing = oci_index(&[
        descriptor(&other, NOTATION),
        descriptor(&swapped, NOTATION),
        descriptor(&absent, NOTATION),
        descriptor(&good, NOTATION),
        descriptor(&good, NOTATION),
    ]);
    let mut forged = swapped.clone();
    forged[0] = b' ';
    let routes = vec![
        (path(&good), (MANIFEST, good.clone())),
        (path(&other), (MANIFEST, other.clone())),
        (path(&swapped), (MANIFEST, forged)),
    ];
    (listing, routes)
}

#[tokio::test]
async fn the_api_listing_yields_only_checked_referrers() {
    let (listing, mut routes) = hostile_listing();
    let good = routes[0].1 .1.clone();
    routes.push((
        format!("/v2/r/referrers/{}", subject().as_str()),
        ("application/vnd.oci.image.index.v1+json", listing),
    ));
    let content = registry(routes.into_iter().collect()).await;
    let mut listing = discover(&content, "r", &subject(), |_| 0).await.unwrap();
    assert_eq!(listing.source(), Source::Api);
    assert!(listing.index().is_none());
    assert_eq!(listing.pending().count(), 4, "listed twice counts once");
    let referrer = listing.next().await.unwrap().expect("the good referrer");
    assert_eq!(&referrer.bytes[..], &good[..]);
    assert_eq!(referrer.source, Source::Api);
    assert!(listing.next().await.unwrap().is_none());
}

#[tokio::test]
async fn without_the_api_the_referrers_tag_index_is_read() {
    let (listing, mut routes) = hostile_listing();
    let good = routes[0].1 .1.clone();
    routes.push((
        format!("/v2/r/manifests/sha256-{}", subject().hex()),
        ("application/vnd.oci.image.index.v1+json", listing.clone()),
    ));
    let content = registry(routes.into_iter().collect()).await;
    let mut found = discover(&content, "r", &subject(), |_| 0).await.unwrap();
    assert_eq!(found.source(), Source::TagIndex);
    let index = found.index().expect("the tag index");
    assert_eq!(index.tag, format!("sha256-{}", subject().hex()));
    assert_eq!(&index.bytes[..], &listing[..]);
    assert_eq!(index.valid, Ok(()));
    let referrer = found.next().await.unwrap().expect("the good referrer");
    assert_eq!(&referrer.bytes[..], &good[..]);
    assert_eq!(referrer.source, Source::TagIndex);
    assert!(found.next().await.unwrap().is_none());
}

#[tokio::test]
async fn no_api_and_no_tag_is_no_referrers() {
    let content = registry(HashMap::new()).await;
    let mut listing = discover(&content, "r", &subject(), |_| 0).await.unwrap();
    assert!(listing.index().is_none());
    assert!(listing.next().await.unwrap().is_none());
}

#[tokio::test]
async fn a_referrers_tag_that_is_no_index_is_reported_not_served() {
    let image = artifact(&subject(), empty_config());
    let routes = [(
        format!("/v2/r/manifests/sha256-{}", subject().hex()),
        (MANIFEST, image),
    )];
    let content = registry(routes.into_iter().collect()).await;
    let mut listing = discover(&content, "r", &subject(), |_| 0).await.unwrap();
    let why = listing.index().expect("read").valid.clone().unwrap_err();
    assert!(why.contains("not an OCI index"), "{why}");
    assert!(listing.next().await.unwrap().is_none());
}
