//! The upstream client against a real registry: CNCF distribution (`docker-registry`), with an
//! image pushed by `skopeo` from an OCI layout this test writes.
//!
//! Token auth, redirects and misbehaving servers are in `upstream_fakes.rs`: distribution
//! ships no token server.

mod support;

use std::path::Path;
use std::process::Command;

use futures_util::StreamExt;
use support::Registry;
use trustgate::upstream::{Blob, Upstream, UpstreamConfig, UpstreamError};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LIMIT: u64 = 4 << 20;

/// One single-layer image as written to the OCI layout.
struct Image {
    manifest: Vec<u8>,
    manifest_digest: String,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

fn sha256(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    format!("sha256:{}", hex::encode(digest.as_ref()))
}

/// Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) holding one image
/// tagged `tag`, whose layer is an uncompressed tar-typed blob of `layer` bytes.
fn write_layout(dir: &Path, tag: &str, layer: &[u8]) -> Image {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let digest = sha256(data);
        std::fs::write(blobs.join(&digest["sha256:".len()..]), data).unwrap();
        digest
    };
    let layer_digest = put(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "config": {},
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    Image {
        manifest,
        manifest_digest,
        config_digest,
        layer: layer.to_vec(),
        layer_digest,
    }
}

/// `skopeo copy` of the layout's `tag` to `registry/repo:tag`. `--preserve-digests` stops
/// skopeo from compressing the layer, which would change every digest.
fn push(layout: &Path, tag: &str, registry: &Registry, repo: &str, creds: Option<&str>) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--preserve-digests", "--dest-tls-verify=false"]);
    if let Some(creds) = creds {
        cmd.args(["--dest-creds", creds]);
    }
    cmd.arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{}/{repo}:{tag}", registry.host_port()));
    let out = support::run_bounded(&mut cmd, b"", "skopeo");
    assert!(
        out.status.success(),
        "skopeo copy failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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
    let layout = tempfile::tempdir().unwrap();
    let image = write_layout(layout.path(), "v1", b"layer bytes of the demo image");
    push(layout.path(), "v1", &registry, "library/demo", None);
    push(layout.path(), "v1", &registry, "library/other", None);
    // A second tag of the same image.
    let index = std::fs::read_to_string(layout.path().join("index.json")).unwrap();
    std::fs::write(
        layout.path().join("index.json"),
        index.replace("\"v1\"", "\"v2\""),
    )
    .unwrap();
    push(layout.path(), "v2", &registry, "library/demo", None);

    let up = upstream(&registry, None);
    up.ping().await.expect("ping");

    let by_tag = up.manifest("library/demo", "v1", LIMIT).await.unwrap();
    assert_eq!(by_tag.bytes, image.manifest);
    assert_eq!(by_tag.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(
        by_tag.digest.as_deref(),
        Some(image.manifest_digest.as_str())
    );
    let by_digest = up
        .manifest("library/demo", &image.manifest_digest, LIMIT)
        .await
        .unwrap();
    assert_eq!(by_digest, by_tag);

    let blob = up.blob("library/demo", &image.layer_digest).await.unwrap();
    assert_eq!(blob.length, Some(image.layer.len() as u64));
    assert_eq!(collect(blob).await.unwrap(), image.layer);
    let config = up.blob("library/demo", &image.config_digest).await.unwrap();
    assert_eq!(sha256(&collect(config).await.unwrap()), image.config_digest);

    let (body, link) = up.tags("library/demo", None, None).await.unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1", "v2"]));
    assert_eq!(link, None);
    // distribution 2.8 ignores `n` and `last` (pagination came in 3.0): the query must at
    // least not break the request. Paging itself is covered in `upstream_fakes.rs`.
    let (body, link) = up.tags("library/demo", Some(1), Some("v1")).await.unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tags["name"], "library/demo");
    assert_eq!(link, None);

    // Not found: tag, digest, blob, repository.
    let missing_digest = sha256(b"nothing");
    let cases = [
        up.manifest("library/demo", "v9", LIMIT).await.unwrap_err(),
        up.manifest("library/demo", &missing_digest, LIMIT)
            .await
            .unwrap_err(),
        up.blob("library/demo", &missing_digest).await.unwrap_err(),
        up.manifest("library/nope", "v1", LIMIT).await.unwrap_err(),
        up.tags("library/nope", None, None).await.unwrap_err(),
    ];
    for err in cases {
        assert!(matches!(err, UpstreamError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().starts_with("registry.test: "), "{err}");
    }

    let err = up
        .manifest("library/demo", "v1", image.manifest.len() as u64 - 1)
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
    let layout = tempfile::tempdir().unwrap();
    let image = write_layout(layout.path(), "v1", b"private layer");
    push(
        layout.path(),
        "v1",
        &registry,
        "team/private",
        Some(&format!("alice:{PASSWORD}")),
    );

    let up = upstream(&registry, Some(("alice", PASSWORD)));
    up.ping().await.expect("ping with credentials");
    let manifest = up.manifest("team/private", "v1", LIMIT).await.unwrap();
    assert_eq!(manifest.bytes, image.manifest);
    // Later requests send credentials up front; the blob comes through either way.
    let blob = up.blob("team/private", &image.layer_digest).await.unwrap();
    assert_eq!(collect(blob).await.unwrap(), image.layer);

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
