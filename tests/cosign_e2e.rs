//! cosign key-based verification against a real registry: signatures in cosign's wire format
//! (simple-signing payload, `sha256-<hex>.sig` tag, annotations, media types), made by the test
//! with keys `openssl` generates, pushed with the registry API, and pulled through the proxy.

mod support;

use support::cosign::{self, Key, Signature, SIGNATURE_ANNOTATION};
use support::fakes::{Forwarder, Link};
use support::http::{self, HttpResponse};
use support::oci::{self, Blob, Image};
use support::proxy::Proxy;
use support::Registry;

/// One test's peers: a registry (behind a forwarder that can take it down), three keys, and
/// the proxy with cosign rules. Fields drop in order: the proxy first.
struct Env {
    proxy: Proxy,
    upstream: Forwarder,
    registry: Registry,
    a: Key,
    b: Key,
    wrong: Key,
    _keys: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let registry = Registry::start();
        let upstream = Forwarder::start(&registry.host_port());
        let keys = tempfile::tempdir().unwrap();
        let (a, b, wrong) = (
            Key::generate(keys.path(), "a"),
            Key::generate(keys.path(), "b"),
            Key::generate(keys.path(), "wrong"),
        );
        let path = |k: &Key| serde_json::json!(k.public.to_str().unwrap()).to_string();
        let rules = [
            cosign::verify_rule(
                "cosign/**",
                &format!("      keys: [{}]\n      require_tlog: false\n", path(&a)),
            ),
            // The default, as `cosign verify --key`: a key signature must have been logged.
            cosign::verify_rule("strict/**", &format!("      keys: [{}]\n", path(&a))),
            cosign::verify_rule(
                "two/**",
                &format!(
                    "      keys: [{}, {}]\n      threshold: 2\n      require_tlog: false\n",
                    path(&a),
                    path(&b)
                ),
            ),
        ];
        let body = cosign::config(&upstream.url(), &rules) + "limits: {upstream_timeout: 2s}\n";
        let proxy = Proxy::start(&body);
        Env {
            proxy,
            upstream,
            registry,
            a,
            b,
            wrong,
            _keys: keys,
        }
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.proxy.pull(path)
    }

    fn push_image(&self, repo: &str, tag: &str) -> Image {
        self.registry.push_random(repo, tag, 2)
    }

    /// Pushes a signature manifest for `subject` whose payload claims `claimed`, one layer per
    /// key (as `cosign sign` appends), with each signature passed through `alter`.
    fn sign_with(
        &self,
        repo: &str,
        subject: &str,
        claimed: &str,
        keys: &[&Key],
        alter: fn(&mut Vec<u8>),
    ) -> Signature {
        let payload = Blob::new(cosign::payload(repo, claimed));
        let layers = keys
            .iter()
            .map(|key| {
                let mut sig = key.sign(&payload.bytes);
                alter(&mut sig);
                cosign::layer(
                    &payload,
                    serde_json::json!({SIGNATURE_ANNOTATION: cosign::b64(&sig)}),
                )
            })
            .collect();
        cosign::push_signature(&self.registry, repo, subject, payload, layers)
    }

    fn sign(&self, repo: &str, subject: &str, keys: &[&Key]) -> Signature {
        self.sign_with(repo, subject, subject, keys, |_| {})
    }

    fn expect_served(&self, path: &str, bytes: &[u8]) {
        self.proxy.expect_served(path, bytes);
    }

    /// The image's tag, digest and blobs are all refused, with `phrase` in the tag's message.
    fn expect_refused(&self, repo: &str, tag: &str, image: &Image, phrase: &str) {
        self.proxy.expect_refused(repo, tag, image, &[phrase]);
    }
}

#[test]
fn cosign_signed_image_is_served_by_tag_digest_and_blob_and_pulls_with_skopeo() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    env.sign("cosign/app", &image.manifest.digest, &[&env.a]);

    env.proxy.expect_image_served("cosign/app", "v1", &image);
    let out = tempfile::tempdir().unwrap();
    let pulled = oci::skopeo_pull(
        &env.proxy.host_port(),
        "cosign/app:v1",
        &out.path().join("img"),
    );
    assert!(
        pulled.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let got = std::fs::read(out.path().join("img/manifest.json")).unwrap();
    assert_eq!(got, image.manifest.bytes);
}

#[test]
fn cosign_key_signature_without_a_log_entry_is_refused_unless_the_rule_says_require_tlog_false() {
    let env = Env::start();
    let image = env.push_image("strict/app", "v1");
    env.sign("strict/app", &image.manifest.digest, &[&env.a]);
    env.proxy.expect_refused(
        "strict/app",
        "v1",
        &image,
        &[
            "the key signature has no Rekor bundle",
            "require_tlog: false",
        ],
    );
}

#[test]
fn cosign_signature_artifact_itself_is_served() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    let sig = env.sign("cosign/app", &image.manifest.digest, &[&env.a]);

    env.expect_served(
        &format!("/v2/cosign/app/manifests/{}", sig.tag),
        &sig.manifest.bytes,
    );
    env.expect_served(
        &format!("/v2/cosign/app/manifests/{}", sig.manifest.digest),
        &sig.manifest.bytes,
    );
    env.expect_served(
        &format!("/v2/cosign/app/blobs/{}", sig.payload.digest),
        &sig.payload.bytes,
    );
    let tags = env.get("/v2/cosign/app/tags/list").json();
    assert!(
        tags["tags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(sig.tag)),
        "{tags}"
    );
}

#[test]
fn cosign_unsigned_image_is_refused() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    env.expect_refused("cosign/app", "v1", &image, "has no cosign signature");
    // Nor is a signature tag served for it.
    let r = env.get(&format!(
        "/v2/cosign/app/manifests/sha256-{}.sig",
        image.manifest.hex()
    ));
    assert_eq!(r.status, 403, "{}", r.summary());
}

#[test]
fn cosign_signature_by_an_untrusted_key_is_refused() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    let sig = env.sign("cosign/app", &image.manifest.digest, &[&env.wrong]);
    env.expect_refused("cosign/app", "v1", &image, "0 of the 1 distinct trusted");
    let r = env.get(&format!("/v2/cosign/app/manifests/{}", sig.tag));
    assert_eq!(r.status, 403, "{}", r.summary());
    let r = env.get(&format!("/v2/cosign/app/blobs/{}", sig.payload.digest));
    assert_eq!(r.status, 403, "{}", r.summary());
}

#[test]
fn cosign_payload_for_another_digest_is_refused() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    let other = env.push_image("cosign/app", "other");
    // A valid signature by the trusted key, for the other image, stored as this one's.
    env.sign_with(
        "cosign/app",
        &image.manifest.digest,
        &other.manifest.digest,
        &[&env.a],
        |_| {},
    );
    env.expect_refused("cosign/app", "v1", &image, &other.manifest.digest);
}

#[test]
fn cosign_tampered_signature_is_refused() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    env.sign_with(
        "cosign/app",
        &image.manifest.digest,
        &image.manifest.digest,
        &[&env.a],
        |sig| {
            let last = sig.len() - 1;
            sig[last] ^= 0x01;
        },
    );
    env.expect_refused("cosign/app", "v1", &image, "0 of the 1 distinct trusted");
}

#[test]
fn cosign_threshold_two_needs_two_distinct_keys() {
    let env = Env::start();
    let one = env.push_image("two/app", "one");
    // The same key twice counts once.
    env.sign("two/app", &one.manifest.digest, &[&env.a, &env.a]);
    env.expect_refused("two/app", "one", &one, "1 of the 2 distinct trusted");

    let both = env.push_image("two/app", "both");
    env.sign("two/app", &both.manifest.digest, &[&env.a, &env.b]);
    env.proxy.expect_image_served("two/app", "both", &both);
}

// === statuses: what the registry said is not a verdict ===

#[test]
fn cosign_tag_missing_upstream_is_manifest_unknown_not_denied() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    env.sign("cosign/app", &image.manifest.digest, &[&env.a]);
    for path in [
        "/v2/cosign/app/manifests/nope",
        "/v2/cosign/nothing-here/manifests/v1",
    ] {
        let r = env.get(path);
        assert_eq!(
            (r.status, r.error_code().as_deref()),
            (404, Some("MANIFEST_UNKNOWN")),
            "GET {path}: {}",
            r.summary()
        );
    }
    // A tag that exists but is unsigned is still a refusal with a reason.
    env.push_image("cosign/app", "unsigned");
    let r = env.get("/v2/cosign/app/manifests/unsigned");
    assert_eq!(r.status, 403, "{}", r.summary());
    assert!(r
        .error_message()
        .unwrap_or_default()
        .contains("has no cosign signature"));
}

#[test]
fn cosign_registry_failing_while_signatures_are_checked_is_a_gateway_error() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    env.sign("cosign/app", &image.manifest.digest, &[&env.a]);
    let by_digest = format!("/v2/cosign/app/manifests/{}", image.manifest.digest);
    let blob = format!("/v2/cosign/app/blobs/{}", image.config.digest);

    // Down: the tag, the signature of a digest and the signed set of a blob cannot be read.
    env.upstream.set(Link::Refuse);
    for path in ["/v2/cosign/app/manifests/v1", &by_digest, &blob] {
        let r = env.get(path);
        assert_eq!(r.status, 502, "GET {path}, registry down: {}", r.summary());
        assert_ne!(r.error_code().as_deref(), Some("DENIED"), "{}", r.summary());
    }
    // Hanging: a timeout, within upstream_timeout.
    env.upstream.set(Link::Stall);
    let started = std::time::Instant::now();
    let r = env.get(&by_digest);
    assert_eq!(
        r.status,
        504,
        "GET {by_digest}, registry stalled: {}",
        r.summary()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Back: nothing of the outage was remembered as a verdict.
    env.upstream.set(Link::Pass);
    env.expect_served("/v2/cosign/app/manifests/v1", &image.manifest.bytes);
    env.expect_served(&by_digest, &image.manifest.bytes);
    env.expect_served(&blob, &image.config.bytes);
}

#[test]
fn cosign_tags_list_is_the_upstream_list() {
    let env = Env::start();
    let signed = env.push_image("cosign/app", "v1");
    let sig = env.sign("cosign/app", &signed.manifest.digest, &[&env.a]);
    env.push_image("cosign/app", "unsigned");

    let r = env.get("/v2/cosign/app/tags/list");
    assert_eq!(r.status, 200, "{}", r.summary());
    let mut tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
    tags.sort();
    let mut want = vec!["unsigned".to_owned(), "v1".to_owned(), sig.tag.clone()];
    want.sort();
    assert_eq!(tags, want);
    // Listing is not serving: the unsigned tag is still refused.
    let r = env.get("/v2/cosign/app/manifests/unsigned");
    assert_eq!(r.status, 403, "{}", r.summary());
    // Pagination is the registry's: the same page as asking it directly.
    let r = env.get("/v2/cosign/app/tags/list?n=1");
    let url = format!("{}/v2/cosign/app/tags/list?n=1", env.registry.url());
    let direct = http::request("GET", &url, &[], b"").unwrap();
    assert_eq!(r.json(), direct.json(), "{}", r.summary());
}

#[test]
fn cosign_signature_manifest_holding_more_than_signatures_is_not_served() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    let sig = env.sign("cosign/app", &image.manifest.digest, &[&env.a]);
    // Whoever can push to the repository appends a layer of their own (an unsigned image's)
    // to the signature manifest, beside the honest signature layer.
    let unsigned = env.push_image("cosign/app", "unsigned");
    let smuggled = &unsigned.layers[0];
    let mut manifest: serde_json::Value = serde_json::from_slice(&sig.manifest.bytes).unwrap();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": support::oci::OCI_LAYER_TAR,
            "size": smuggled.size(),
            "digest": smuggled.digest,
        }));
    let bytes = manifest.to_string().into_bytes();
    env.registry
        .put_manifest("cosign/app", &sig.tag, support::oci::OCI_MANIFEST, &bytes);

    // The image still verifies: its signature layer counts.
    env.expect_served("/v2/cosign/app/manifests/v1", &image.manifest.bytes);
    // The signature manifest is not served, and nothing it lists joins the signed set.
    let r = env.get(&format!("/v2/cosign/app/manifests/{}", sig.tag));
    assert_eq!(r.status, 403, "{}", r.summary());
    let message = r.error_message().unwrap_or_default();
    assert!(message.contains("more than cosign signatures"), "{message}");
    let r = env.get(&format!(
        "/v2/cosign/app/manifests/{}",
        support::oci::sha256_digest(&bytes)
    ));
    assert_eq!(r.status, 403, "{}", r.summary());
    let r = env.get(&format!("/v2/cosign/app/blobs/{}", smuggled.digest));
    assert_eq!(r.status, 403, "{}", r.summary());
}

#[test]
fn cosign_referrers_tag_that_is_not_an_index_of_counted_bundles_is_not_served() {
    let env = Env::start();
    let image = env.push_image("cosign/app", "v1");
    env.sign("cosign/app", &image.manifest.digest, &[&env.a]);
    // On a registry without the referrers API, the tag `sha256-<hex>` of a signed digest is
    // read as its referrers index. Here it is an image nobody signed, composed of the signed
    // image's own blobs (layers reversed), so every blob of it is in the signed closure.
    let mut composed: serde_json::Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
    composed["layers"].as_array_mut().unwrap().reverse();
    let bytes = composed.to_string().into_bytes();
    let tag = format!("sha256-{}", image.manifest.hex());
    env.registry
        .put_manifest("cosign/app", &tag, support::oci::OCI_MANIFEST, &bytes);

    env.expect_served("/v2/cosign/app/manifests/v1", &image.manifest.bytes);
    let r = env.get(&format!("/v2/cosign/app/manifests/{tag}"));
    assert_eq!(r.status, 403, "{}", r.summary());
    let message = r.error_message().unwrap_or_default();
    assert!(message.contains("not an OCI index"), "{message}");
    let r = env.get(&format!(
        "/v2/cosign/app/manifests/{}",
        support::oci::sha256_digest(&bytes)
    ));
    assert_eq!(r.status, 403, "{}", r.summary());
}
