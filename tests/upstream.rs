//! The upstream client against a real registry: CNCF distribution (`docker-registry`), with
//! images pushed by `skopeo` from OCI layouts the test writes (`support::oci`).
//!
//! Token auth, redirects and misbehaving servers are in `upstream_fakes.rs`: distribution
//! ships no token server.

mod support;

use futures_util::StreamExt;
use support::oci::{sha256_digest, Image, Index, OCI_INDEX, OCI_MANIFEST};
use support::Registry;
use trustgate::upstream::{Blob, Upstream, UpstreamConfig, UpstreamError};

const LIMIT: u64 = 4 << 20;

fn upstream(registry: &Registry, creds: Option<(&str, &str)>) -> Upstream {
    let mut cfg = UpstreamConfig::new("registry.test", registry.url());
    if let Some((user, password)) = creds {
        cfg.username = Some(user.to_owned());
        cfg.password = Some(password.to_owned());
    }
    Upstream::new(cfg).expect("valid upstream config")
}

async fn collect(blob: Blob) -> Result<Vec<u8>, UpstreamError> {
    let mut out = Vec::new();
    let mut stream = blob.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test]
async fn pulls_manifests_blobs_and_tags_from_distribution() {
    let registry = Registry::start();
    let image = Image::random(2);
    image.push(&registry, "library/demo", "v1");
    image.push(&registry, "library/demo", "v2");
    let multi = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
    multi.push(&registry, "library/multi", "v1");

    let up = upstream(&registry, None);
    up.ping().await.expect("ping");

    let by_tag = up.manifest("library/demo", "v1", LIMIT).await.unwrap();
    assert_eq!(by_tag.bytes, image.manifest.bytes);
    assert_eq!(by_tag.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(
        by_tag.digest.as_deref(),
        Some(image.manifest.digest.as_str())
    );
    let by_digest = up
        .manifest("library/demo", &image.manifest.digest, LIMIT)
        .await
        .unwrap();
    assert_eq!(by_digest, by_tag);

    let index = up.manifest("library/multi", "v1", LIMIT).await.unwrap();
    assert_eq!(index.bytes, multi.index.bytes);
    assert_eq!(index.media_type.as_deref(), Some(OCI_INDEX));
    let child = &multi.children[1];
    let fetched = up
        .manifest("library/multi", &child.manifest.digest, LIMIT)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, child.manifest.bytes);

    for blob in image.blobs() {
        let fetched = up.blob("library/demo", &blob.digest).await.unwrap();
        assert_eq!(fetched.length, Some(blob.size()));
        assert_eq!(collect(fetched).await.unwrap(), blob.bytes);
    }

    let (body, link) = up.tags("library/demo", None, None).await.unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1", "v2"]));
    assert_eq!(link, None);
    // distribution 2.8 ignores `n` and `last` (pagination came in 3.0): the query must at
    // least not break the request. Paging itself is covered in `upstream_fakes.rs`.
    let (body, _) = up.tags("library/demo", Some(1), Some("v1")).await.unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tags["name"], "library/demo");

    // Not found: tag, digest, blob, repository.
    let missing = sha256_digest(b"nothing");
    let cases = [
        up.manifest("library/demo", "v9", LIMIT).await.unwrap_err(),
        up.manifest("library/demo", &missing, LIMIT)
            .await
            .unwrap_err(),
        up.blob("library/demo", &missing).await.unwrap_err(),
        up.manifest("library/nope", "v1", LIMIT).await.unwrap_err(),
        up.tags("library/nope", None, None).await.unwrap_err(),
    ];
    for err in cases {
        assert!(matches!(err, UpstreamError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().starts_with("registry.test: "), "{err}");
    }

    let err = up
        .manifest("library/demo", "v1", image.manifest.size() - 1)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::TooLarge { .. }), "{err:?}");
    // distribution sends no rate-limit headers.
    assert_eq!(up.ratelimit_remaining(), None);
}

#[tokio::test]
async fn basic_auth_against_an_htpasswd_registry() {
    const PASSWORD: &str = "correct horse battery staple";
    let registry = Registry::start_with_htpasswd("alice", PASSWORD);
    let image = Image::random(1);
    image.push(&registry, "team/private", "v1");

    let up = upstream(&registry, Some(("alice", PASSWORD)));
    up.ping().await.expect("ping with credentials");
    let manifest = up.manifest("team/private", "v1", LIMIT).await.unwrap();
    assert_eq!(manifest.bytes, image.manifest.bytes);
    // Later requests send credentials up front; the blob comes through either way.
    let layer = &image.layers[0];
    let blob = up.blob("team/private", &layer.digest).await.unwrap();
    assert_eq!(collect(blob).await.unwrap(), layer.bytes);

    let anonymous = upstream(&registry, None);
    let err = anonymous
        .manifest("team/private", "v1", LIMIT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Denied { status: 401, detail, .. }
            if detail.contains("no credentials are configured")),
        "{err:?}"
    );

    let wrong = upstream(&registry, Some(("alice", "not the password")));
    let err = wrong
        .manifest("team/private", "v1", LIMIT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Denied { status: 401, detail, .. }
            if detail.contains("refused the configured credentials")),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {wrong:?}");
    assert!(!shown.contains("not the password"), "{shown}");
}
