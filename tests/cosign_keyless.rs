//! cosign keyless verification against a real registry. The test is its own Sigstore: a
//! Fulcio-like CA (root and intermediate) issuing short-lived code-signing leaves with a SAN
//! and the Fulcio issuer extension, and a Rekor key signing entry timestamps. Signatures are
//! stored in cosign's wire format (`sha256-<hex>.sig`, simple-signing layers annotated with
//! the signature, `dev.sigstore.cosign/certificate`, `/chain` and `/bundle` holding a
//! `hashedrekord` entry) and pulled through the proxy.

mod support;

use std::path::PathBuf;

use base64::Engine as _;
use rcgen::{KeyPair, SigningKey, PKCS_ECDSA_P256_SHA256};
use support::http::{self, HttpResponse};
use support::oci::{Blob, Image, ACCEPT_ALL, OCI_CONFIG, OCI_MANIFEST};
use support::proxy::Proxy;
use support::sigstore::{Ca, Rekor};
use support::Registry;
use time::OffsetDateTime;

const REGISTRY: &str = "registry.test";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const ISSUER: &str = "https://token.actions.example";
const SUBJECT: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0";
const SUBJECT_REGEX: &str =
    "^https://github.com/acme/.*/.github/workflows/release.yml@refs/tags/v.*$";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    support::sha256_hex(bytes)
}

/// How one keyless signature is made; [`Env::good`] is the honest one.
struct Sig<'a> {
    ca: &'a Ca,
    subject: &'a str,
    issuer: &'a str,
    /// The leaf's validity, seconds from now. The honest leaf expired long ago: keyless
    /// certificates live minutes, and what counts is the log's time.
    valid: (i64, i64),
    /// The log's `integratedTime`, seconds from now.
    integrated: i64,
    /// Who signs the entry timestamp, and whose log ID the bundle names.
    set_by: &'a Rekor,
    log: &'a Rekor,
    /// Log another signature than the layer's.
    log_other_signature: bool,
    /// Store a payload other than the one signed (still claiming the same digest).
    tamper_payload: bool,
    /// Also a key-based signature layer by this key (as `cosign sign --key` appends).
    also_key: Option<&'a KeyPair>,
}

struct Env {
    proxy: Proxy,
    registry: Registry,
    ca: Ca,
    rogue_ca: Ca,
    rekor: Rekor,
    rogue_rekor: Rekor,
    /// The key of the `both/` rule, which needs it and a keyless identity (threshold 2).
    release: KeyPair,
    _files: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let registry = Registry::start();
        let files = tempfile::tempdir().unwrap();
        let (ca, rogue_ca, rekor, rogue_rekor) = (Ca::new(), Ca::new(), Rekor::new(), Rekor::new());
        let roots: PathBuf = files.path().join("fulcio-root.pem");
        std::fs::write(&roots, &ca.root_pem).unwrap();
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
          - {{issuer: "{ISSUER}", subject_regex: "{SUBJECT_REGEX}"}}
    - match: "{REGISTRY}/both/**"
      action: verify
      verifier: cosign
      keys: [{release}]
      threshold: 2
      keyless:
        fulcio_roots: {roots}
        rekor_keys: [{rekor}]
        identities:
          - {{issuer: "{ISSUER}", subject: "{SUBJECT}"}}
"#,
            registry.url(),
            quoted(&roots),
            quoted(&rekor_pub),
            release = quoted(&release_pub),
            roots = quoted(&roots),
            rekor = quoted(&rekor_pub),
        );
        Env {
            proxy: Proxy::start(&body),
            registry,
            ca,
            rogue_ca,
            rekor,
            rogue_rekor,
            release,
            _files: files,
        }
    }

    fn good(&self) -> Sig<'_> {
        Sig {
            ca: &self.ca,
            subject: SUBJECT,
            issuer: ISSUER,
            valid: (-3600, -3000),
            integrated: -3300,
            set_by: &self.rekor,
            log: &self.rekor,
            log_other_signature: false,
            tamper_payload: false,
            also_key: None,
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

    /// Signs `subject` keylessly as `how` says, and pushes the signature manifest.
    fn sign(&self, repo: &str, subject: &str, how: &Sig<'_>) {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{REGISTRY}/{repo}"}},"image":{{"docker-manifest-digest":"{subject}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes();
        let (key, cert) = how
            .ca
            .leaf(how.subject, how.issuer, how.valid.0, how.valid.1);
        let signature = key.sign(&payload).unwrap();
        let logged = if how.log_other_signature {
            key.sign(b"another payload").unwrap()
        } else {
            signature.clone()
        };
        // The hashedrekord entry Rekor would have logged for this signature.
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": sha256_hex(&payload)}},
                "signature": {"content": b64(&logged), "publicKey": {"content": b64(cert.as_bytes())}}
            }
        });
        let integrated = OffsetDateTime::now_utc().unix_timestamp() + how.integrated;
        let (body, log_id) = (b64(body.to_string().as_bytes()), how.log.log_id());
        // The SET: the log's signature over the RFC 8785 form of the bundle payload.
        let canonical = format!(
            r#"{{"body":"{body}","integratedTime":{integrated},"logID":"{log_id}","logIndex":42}}"#
        );
        let set = how.set_by.key.sign(canonical.as_bytes()).unwrap();
        let bundle = serde_json::json!({
            "SignedEntryTimestamp": b64(&set),
            "Payload": {"body": body, "integratedTime": integrated, "logIndex": 42, "logID": log_id}
        });
        let stored = if how.tamper_payload {
            String::from_utf8(payload)
                .unwrap()
                .replace(r#""optional":null"#, r#""optional":{"build":"evil"}"#)
                .into_bytes()
        } else {
            payload
        };
        let payload = Blob::new(stored);
        let config = Blob::new(
            serde_json::json!({"architecture": "", "os": "", "config": {},
                "rootfs": {"type": "layers", "diff_ids": [payload.digest]}})
            .to_string()
            .into_bytes(),
        );
        let mut layers = vec![];
        if let Some(key) = how.also_key {
            layers.push(serde_json::json!({
                "mediaType": SIMPLESIGNING,
                "size": payload.size(),
                "digest": payload.digest,
                "annotations": {
                    "dev.cosignproject.cosign/signature": b64(&key.sign(&payload.bytes).unwrap()),
                }
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": config.size(), "digest": config.digest},
            "layers": layers.into_iter().chain([serde_json::json!({
                "mediaType": SIMPLESIGNING,
                "size": payload.size(),
                "digest": payload.digest,
                "annotations": {
                    "dev.cosignproject.cosign/signature": b64(&signature),
                    "dev.sigstore.cosign/certificate": cert,
                    "dev.sigstore.cosign/chain":
                        format!("{}{}", how.ca.intermediate_pem, how.ca.root_pem),
                    "dev.sigstore.cosign/bundle": bundle.to_string(),
                }
            })]).collect::<Vec<_>>()
        })
        .to_string();
        for blob in [&config, &payload] {
            support::oci::push_blob(&self.registry, repo, blob);
        }
        let tag = format!("sha256-{}.sig", &subject["sha256:".len()..]);
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.registry.url());
        let put = http::request(
            "PUT",
            &url,
            &[("Content-Type", OCI_MANIFEST)],
            manifest.as_bytes(),
        )
        .unwrap();
        assert_eq!(put.status, 201, "PUT {url}: {}", put.summary());
    }

    /// An image signed as `how` says is refused by tag, digest and blob, the tag's message
    /// naming `phrase`.
    fn expect_refused(&self, how: &Sig<'_>, phrase: &str) {
        let repo = "keyless/app";
        let image = self.push_image(repo, "v1");
        self.sign(repo, &image.manifest.digest, how);
        let r = self.get(&format!("/v2/{repo}/manifests/v1"));
        assert_eq!(r.status, 403, "tag: {}", r.summary());
        let message = r.error_message().unwrap_or_default();
        assert!(
            message.contains("a keyless signature did not count") && message.contains(phrase),
            "`{phrase}` not in {message:?}"
        );
        for path in [
            format!("/v2/{repo}/manifests/{}", image.manifest.digest),
            format!("/v2/{repo}/blobs/{}", image.config.digest),
        ] {
            let r = self.get(&path);
            assert_eq!(r.status, 403, "GET {path}: {}", r.summary());
        }
    }
}

#[test]
fn keyless_signature_verifies_at_the_logs_time_and_serves_the_image() {
    let env = Env::start();
    let image = env.push_image("keyless/app", "v1");
    // The leaf expired 50 minutes ago; it was valid when the log integrated the entry.
    env.sign("keyless/app", &image.manifest.digest, &env.good());
    for (path, bytes) in [
        (
            "/v2/keyless/app/manifests/v1".to_owned(),
            &image.manifest.bytes,
        ),
        (
            format!("/v2/keyless/app/manifests/{}", image.manifest.digest),
            &image.manifest.bytes,
        ),
        (
            format!("/v2/keyless/app/blobs/{}", image.config.digest),
            &image.config.bytes,
        ),
    ] {
        let r = env.get(&path);
        assert_eq!(
            (r.status, &r.body == bytes),
            (200, true),
            "GET {path}: {}\n{}",
            r.summary(),
            env.proxy.log_tail(20)
        );
    }
}

#[test]
fn keyless_signature_by_another_identity_is_refused() {
    let env = Env::start();
    let evil = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1";
    env.expect_refused(
        &Sig {
            subject: evil,
            ..env.good()
        },
        "none of the trusted identities matched",
    );
}

#[test]
fn keyless_signature_from_another_issuer_is_refused() {
    let env = Env::start();
    env.expect_refused(
        &Sig {
            issuer: "https://accounts.example",
            ..env.good()
        },
        "none of the trusted identities matched",
    );
}

#[test]
fn keyless_certificate_from_an_untrusted_ca_is_refused() {
    let env = Env::start();
    // Same names as the trusted CA, other keys; it even ships its own root in the chain.
    env.expect_refused(
        &Sig {
            ca: &env.rogue_ca,
            ..env.good()
        },
        "does not chain to a trusted Fulcio root",
    );
}

#[test]
fn keyless_entry_timestamp_signed_by_another_key_is_refused() {
    let env = Env::start();
    env.expect_refused(
        &Sig {
            set_by: &env.rogue_rekor,
            ..env.good()
        },
        "signed entry timestamp does not verify",
    );
    let env = Env::start();
    env.expect_refused(
        &Sig {
            set_by: &env.rogue_rekor,
            log: &env.rogue_rekor,
            ..env.good()
        },
        "whose key is not trusted",
    );
}

#[test]
fn keyless_entry_integrated_outside_the_certificates_validity_is_refused() {
    let env = Env::start();
    env.expect_refused(
        &Sig {
            integrated: -2000,
            ..env.good()
        },
        "outside the certificate's validity",
    );
}

#[test]
fn keyless_entry_logging_another_signature_is_refused() {
    let env = Env::start();
    env.expect_refused(
        &Sig {
            log_other_signature: true,
            ..env.good()
        },
        "the Rekor entry is for another signature",
    );
}

#[test]
fn keyless_tampered_payload_is_refused() {
    let env = Env::start();
    env.expect_refused(
        &Sig {
            tamper_payload: true,
            ..env.good()
        },
        "the Rekor entry is for another payload",
    );
}

#[test]
fn keys_and_keyless_identities_count_towards_one_threshold() {
    let env = Env::start();
    // The keyless signature alone is one signer of the two required.
    let one = env.push_image("both/app", "one");
    env.sign("both/app", &one.manifest.digest, &env.good());
    let r = env.get("/v2/both/app/manifests/one");
    assert_eq!(r.status, 403, "{}", r.summary());
    let message = r.error_message().unwrap_or_default();
    assert!(message.contains("1 of the 2 distinct trusted"), "{message}");

    // With the release key's signature beside it, two distinct signers.
    let two = env.push_image("both/app", "two");
    env.sign(
        "both/app",
        &two.manifest.digest,
        &Sig {
            also_key: Some(&env.release),
            ..env.good()
        },
    );
    let r = env.get("/v2/both/app/manifests/two");
    assert_eq!(
        (r.status, r.body == two.manifest.bytes),
        (200, true),
        "{}\n{}",
        r.summary(),
        env.proxy.log_tail(20)
    );
}
