//! cosign signatures as sigstore bundles found through OCI referrers, against a real
//! registry. Debian's `docker-registry` (distribution 2.8) has no referrers API, so the
//! artifacts are attached as cosign does for such registries (`specs/BUNDLE_SPEC.md`): the
//! bundle blob, an artifact manifest with `artifactType`, the empty config and a `subject`,
//! and the referrers tag `sha256-<hex>` holding an index that lists it. The bundles are
//! cosign's v0.3 JSON: a DSSE envelope of an in-toto statement (predicate
//! `https://sigstore.dev/cosign/sign/v1`) signed by a key or by a Fulcio-like leaf whose
//! signature a `dsse` Rekor entry logged under a signed entry timestamp.

mod support;

use std::path::PathBuf;

use base64::Engine as _;
use rcgen::{KeyPair, SigningKey, PKCS_ECDSA_P256_SHA256};
use support::http::{self, HttpResponse};
use support::oci::{Blob, Image, ACCEPT_ALL, OCI_INDEX, OCI_MANIFEST};
use support::proxy::Proxy;
use support::sigstore::{Ca, Rekor};
use support::Registry;
use time::OffsetDateTime;

const REGISTRY: &str = "registry.test";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const INTOTO: &str = "application/vnd.in-toto+json";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const ISSUER: &str = "https://token.actions.example";
const SUBJECT: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    support::sha256_hex(bytes)
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    support::base64_decode(&body)
}

/// DSSE v1 pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// How one bundle is made; [`Env::keyless`] and [`Env::keyed`] are the honest ones.
struct Make<'a> {
    /// The digest the statement names (the image's, unless testing a mismatch).
    claims: &'a str,
    /// Keyless: the leaf's SAN; else key-based with `key`.
    identity: Option<&'a str>,
    key: Option<&'a KeyPair>,
    /// Flip a bit of the envelope's signature after logging it.
    tamper_signature: bool,
    /// Log another envelope's payload than this one's.
    log_other_payload: bool,
    /// A Rekor v2 entry: hashedrekord 0.0.2, no signed entry timestamp.
    rekor_v2: bool,
}

struct Env {
    proxy: Proxy,
    registry: Registry,
    ca: Ca,
    rekor: Rekor,
    release: KeyPair,
    _files: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let registry = Registry::start();
        let files = tempfile::tempdir().unwrap();
        let (ca, rekor) = (Ca::new(), Rekor::new());
        let roots: PathBuf = files.path().join("fulcio-root.pem");
        // A v0.3 bundle carries the leaf alone: the intermediate comes from the trusted
        // file, as from Sigstore's trusted root.
        std::fs::write(&roots, format!("{}{}", ca.root_pem, ca.intermediate_pem)).unwrap();
        let rekor_pub = files.path().join("rekor.pub");
        std::fs::write(&rekor_pub, rekor.key.public_key_pem()).unwrap();
        let release = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let release_pub = files.path().join("release.pub");
        std::fs::write(&release_pub, release.public_key_pem()).unwrap();
        let quoted = |p: &PathBuf| serde_json::json!(p.to_str().unwrap()).to_string();
        let body = format!(
            r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
policy:
  default: deny
  rules:
    - match: "{REGISTRY}/keyless/**"
      action: verify
      verifier: cosign
      keyless:
        fulcio_roots: {}
        rekor_keys: [{}]
        identities:
          - {{issuer: "{ISSUER}", subject: "{SUBJECT}"}}
    - match: "{REGISTRY}/keyed/**"
      action: verify
      verifier: cosign
      keys: [{}]
"#,
            registry.url(),
            quoted(&roots),
            quoted(&rekor_pub),
            quoted(&release_pub),
        );
        Env {
            proxy: Proxy::start(&body),
            registry,
            ca,
            rekor,
            release,
            _files: files,
        }
    }

    fn keyless<'a>(&'a self, image: &'a Image) -> Make<'a> {
        Make {
            claims: &image.manifest.digest,
            identity: Some(SUBJECT),
            key: None,
            tamper_signature: false,
            log_other_payload: false,
            rekor_v2: false,
        }
    }

    fn keyed<'a>(&'a self, image: &'a Image) -> Make<'a> {
        Make {
            identity: None,
            key: Some(&self.release),
            ..self.keyless(image)
        }
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.proxy
            .request("GET", path, &[("Accept", ACCEPT_ALL)], b"")
    }

    fn push_image(&self, repo: &str, tag: &str) -> Image {
        let image = Image::random(1);
        image.push(&self.registry, repo, tag);
        image
    }

    /// The bundle JSON as `how` says.
    fn bundle(&self, how: &Make<'_>) -> Vec<u8> {
        // cosign `signDigestBundle`: an in-toto v1 statement, protojson-encoded.
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": &how.claims["sha256:".len()..]}}],
            "predicateType": SIGN_PREDICATE,
            "predicate": {}
        })
        .to_string()
        .into_bytes();
        let signed = pae(INTOTO, &statement);
        let mut material = serde_json::json!({});
        let mut signature;
        if let Some(key) = how.key {
            signature = key.sign(&signed).unwrap();
            material["publicKey"] = serde_json::json!({"hint": "release"});
            material["tlogEntries"] = serde_json::json!([]);
        } else {
            let (leaf_key, cert) = self.ca.leaf(how.identity.unwrap(), ISSUER, -3600, -3000);
            signature = leaf_key.sign(&signed).unwrap();
            let logged_payload = if how.log_other_payload {
                b"another statement".to_vec()
            } else {
                statement.clone()
            };
            let integrated = OffsetDateTime::now_utc().unix_timestamp() - 3300;
            let log_id = self.rekor.log_id();
            let entry = if how.rekor_v2 {
                serde_json::json!({
                    "logIndex": "42",
                    "logId": {"keyId": b64(&hex::decode(&log_id).unwrap())},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
                    "integratedTime": "0",
                    "inclusionProof": {"logIndex": "42", "rootHash": b64(&[0; 32]),
                        "treeSize": "43", "hashes": [],
                        "checkpoint": {"envelope": "rekor.example - 1\n43\nAAAA\n"}},
                    "canonicalizedBody": b64(b"{}")
                })
            } else {
                // The `dsse` 0.0.1 entry Rekor v1 would have logged for this envelope.
                let body = serde_json::json!({
                    "apiVersion": "0.0.1",
                    "kind": "dsse",
                    "spec": {
                        "envelopeHash": {"algorithm": "sha256", "value": sha256_hex(b"envelope")},
                        "payloadHash": {"algorithm": "sha256", "value": sha256_hex(&logged_payload)},
                        "signatures": [{"signature": b64(&signature), "verifier": b64(cert.as_bytes())}]
                    }
                })
                .to_string();
                let body = b64(body.as_bytes());
                let canonical = format!(
                    r#"{{"body":"{body}","integratedTime":{integrated},"logID":"{log_id}","logIndex":42}}"#
                );
                let set = self.rekor.key.sign(canonical.as_bytes()).unwrap();
                serde_json::json!({
                    "logIndex": "42",
                    "logId": {"keyId": b64(&hex::decode(&log_id).unwrap())},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": integrated.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
                    "canonicalizedBody": body
                })
            };
            material["certificate"] = serde_json::json!({"rawBytes": b64(&pem_der(&cert))});
            material["tlogEntries"] = serde_json::json!([entry]);
        }
        if how.tamper_signature {
            let last = signature.len() - 1;
            signature[last] ^= 0x01;
        }
        serde_json::json!({
            "mediaType": BUNDLE,
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": b64(&statement),
                "payloadType": INTOTO,
                "signatures": [{"sig": b64(&signature)}]
            }
        })
        .to_string()
        .into_bytes()
    }

    /// Attaches a bundle to `image` as cosign does on a registry without the referrers API;
    /// returns the artifact manifest and the bundle blob.
    fn attach(&self, repo: &str, image: &Image, how: &Make<'_>) -> (Blob, Blob) {
        let bundle = Blob::new(self.bundle(how));
        let empty = Blob::new(b"{}".to_vec());
        for blob in [&empty, &bundle] {
            support::oci::push_blob(&self.registry, repo, blob);
        }
        let manifest = Blob::new(
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": BUNDLE,
                "config": {"mediaType": EMPTY, "digest": empty.digest, "size": 2},
                "layers": [{"mediaType": BUNDLE, "digest": bundle.digest, "size": bundle.size()}],
                "subject": {"mediaType": image.media_type, "digest": image.manifest.digest,
                            "size": image.manifest.size()},
                "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                                "dev.sigstore.bundle.predicateType": SIGN_PREDICATE}
            })
            .to_string()
            .into_bytes(),
        );
        self.put(repo, &manifest.digest, OCI_MANIFEST, &manifest.bytes);
        // The referrers tag: the index, extended with this artifact.
        let tag = format!("sha256-{}", image.manifest.hex());
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.registry.url());
        let current = http::request("GET", &url, &[("Accept", OCI_INDEX)], b"").unwrap();
        let mut manifests = if current.status == 200 {
            current.json()["manifests"].as_array().unwrap().clone()
        } else {
            vec![]
        };
        manifests.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest.digest,
            "size": manifest.size(),
            "artifactType": BUNDLE,
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                            "dev.sigstore.bundle.predicateType": SIGN_PREDICATE}
        }));
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests
        })
        .to_string();
        self.put(repo, &tag, OCI_INDEX, index.as_bytes());
        (manifest, bundle)
    }

    fn put(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.registry.url());
        let put = http::request("PUT", &url, &[("Content-Type", media_type)], body).unwrap();
        assert_eq!(put.status, 201, "PUT {url}: {}", put.summary());
    }

    fn expect_served(&self, path: &str, bytes: &[u8]) {
        let r = self.get(path);
        assert_eq!(
            (r.status, r.body == bytes),
            (200, true),
            "GET {path}: {}\n{}",
            r.summary(),
            self.proxy.log_tail(20)
        );
    }

    /// The image is refused by tag, digest and blob, the tag's message naming `phrase`.
    fn expect_refused(&self, repo: &str, image: &Image, phrase: &str) {
        let r = self.get(&format!("/v2/{repo}/manifests/v1"));
        assert_eq!(r.status, 403, "tag: {}", r.summary());
        let message = r.error_message().unwrap_or_default();
        assert!(message.contains(phrase), "`{phrase}` not in {message:?}");
        for path in [
            format!("/v2/{repo}/manifests/{}", image.manifest.digest),
            format!("/v2/{repo}/blobs/{}", image.config.digest),
            format!("/v2/{repo}/referrers/{}", image.manifest.digest),
        ] {
            let r = self.get(&path);
            assert_eq!(r.status, 403, "GET {path}: {}", r.summary());
        }
    }
}

#[test]
fn keyless_bundle_serves_the_image_and_its_referrers() {
    let env = Env::start();
    let repo = "keyless/app";
    let image = env.push_image(repo, "v1");
    let (artifact, bundle) = env.attach(repo, &image, &env.keyless(&image));

    env.expect_served(&format!("/v2/{repo}/manifests/v1"), &image.manifest.bytes);
    env.expect_served(
        &format!("/v2/{repo}/manifests/{}", image.manifest.digest),
        &image.manifest.bytes,
    );
    for blob in image.blobs() {
        env.expect_served(&format!("/v2/{repo}/blobs/{}", blob.digest), &blob.bytes);
    }

    // The referrers, as cosign asks for them: the verified bundle artifact, whose manifest
    // and bundle blob are served in turn.
    for query in [
        "",
        "?artifactType=application/vnd.dev.sigstore.bundle.v0.3%2Bjson",
    ] {
        let path = format!("/v2/{repo}/referrers/{}{query}", image.manifest.digest);
        let r = env.get(&path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.summary());
        assert_eq!(r.header("content-type"), Some(OCI_INDEX), "{}", r.summary());
        let index = r.json();
        let listed = index["manifests"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{index}");
        assert_eq!(listed[0]["digest"], artifact.digest.as_str(), "{index}");
        assert_eq!(listed[0]["artifactType"], BUNDLE, "{index}");
        assert_eq!(listed[0]["size"], artifact.size(), "{index}");
    }
    let r = env.get(&format!(
        "/v2/{repo}/referrers/{}?artifactType=application/spdx%2Bjson",
        image.manifest.digest
    ));
    assert_eq!(
        r.json()["manifests"],
        serde_json::json!([]),
        "{}",
        r.summary()
    );
    env.expect_served(
        &format!("/v2/{repo}/manifests/{}", artifact.digest),
        &artifact.bytes,
    );
    env.expect_served(
        &format!("/v2/{repo}/blobs/{}", bundle.digest),
        &bundle.bytes,
    );
    // The referrers tag itself, for clients that fall back to it.
    let r = env.get(&format!(
        "/v2/{repo}/manifests/sha256-{}",
        image.manifest.hex()
    ));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.json()["manifests"][0]["digest"], artifact.digest.as_str());
}

#[test]
fn key_based_bundle_serves_the_image() {
    let env = Env::start();
    let repo = "keyed/app";
    let image = env.push_image(repo, "v1");
    let (artifact, bundle) = env.attach(repo, &image, &env.keyed(&image));
    env.expect_served(&format!("/v2/{repo}/manifests/v1"), &image.manifest.bytes);
    for blob in image.blobs() {
        env.expect_served(&format!("/v2/{repo}/blobs/{}", blob.digest), &blob.bytes);
    }
    env.expect_served(
        &format!("/v2/{repo}/manifests/{}", artifact.digest),
        &artifact.bytes,
    );
    env.expect_served(
        &format!("/v2/{repo}/blobs/{}", bundle.digest),
        &bundle.bytes,
    );
}

#[test]
fn bundle_whose_statement_names_another_digest_is_refused() {
    let env = Env::start();
    let repo = "keyed/app";
    let image = env.push_image(repo, "v1");
    let other = env.push_image(repo, "other");
    // A valid bundle by the trusted key, for the other image, attached to this one.
    env.attach(
        repo,
        &image,
        &Make {
            claims: &other.manifest.digest,
            ..env.keyed(&image)
        },
    );
    env.expect_refused(repo, &image, &other.manifest.digest);
}

#[test]
fn bundle_with_a_tampered_envelope_signature_is_refused() {
    let env = Env::start();
    let repo = "keyless/app";
    let image = env.push_image(repo, "v1");
    env.attach(
        repo,
        &image,
        &Make {
            tamper_signature: true,
            ..env.keyless(&image)
        },
    );
    // The entry logged the honest signature: the tampered one is not it.
    env.expect_refused(repo, &image, "the Rekor entry is for another signature");

    let repo = "keyed/app";
    let image = env.push_image(repo, "v1");
    env.attach(
        repo,
        &image,
        &Make {
            tamper_signature: true,
            ..env.keyed(&image)
        },
    );
    env.expect_refused(repo, &image, "verifies under no trusted key");
}

#[test]
fn bundle_whose_log_entry_is_for_another_envelope_is_refused() {
    let env = Env::start();
    let repo = "keyless/app";
    let image = env.push_image(repo, "v1");
    env.attach(
        repo,
        &image,
        &Make {
            log_other_payload: true,
            ..env.keyless(&image)
        },
    );
    env.expect_refused(repo, &image, "the Rekor entry is for another payload");
}

#[test]
fn bundle_by_another_identity_is_refused() {
    let env = Env::start();
    let repo = "keyless/app";
    let image = env.push_image(repo, "v1");
    let evil = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1";
    env.attach(
        repo,
        &image,
        &Make {
            identity: Some(evil),
            ..env.keyless(&image)
        },
    );
    env.expect_refused(repo, &image, "none of the trusted identities matched");
}

#[test]
fn bundle_with_a_rekor_v2_entry_is_refused_as_unsupported() {
    let env = Env::start();
    let repo = "keyless/app";
    let image = env.push_image(repo, "v1");
    env.attach(
        repo,
        &image,
        &Make {
            rekor_v2: true,
            ..env.keyless(&image)
        },
    );
    env.expect_refused(repo, &image, "Rekor v2 entries");
}

#[test]
fn image_without_any_signature_is_refused() {
    let env = Env::start();
    let repo = "keyless/app";
    let image = env.push_image(repo, "v1");
    env.expect_refused(repo, &image, "has no cosign signature");
    // Nor is a referrers tag that is not there invented.
    let r = env.get(&format!(
        "/v2/{repo}/manifests/sha256-{}",
        image.manifest.hex()
    ));
    assert_eq!(r.status, 403, "{}", r.summary());
}
