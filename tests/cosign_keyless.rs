//! cosign keyless verification against a real registry. The test is its own Sigstore: a
//! Fulcio-like CA (root and intermediate) issuing short-lived code-signing leaves with a SAN
//! and the Fulcio issuer extension, and a Rekor key signing entry timestamps. Signatures are
//! stored in cosign's wire format (`sha256-<hex>.sig`, simple-signing layers annotated with
//! the signature, `dev.sigstore.cosign/certificate`, `/chain` and `/bundle` holding a
//! `hashedrekord` entry) and pulled through the proxy.

mod support;

use rcgen::{KeyPair, SigningKey};
use support::cosign::{self, b64, SIGNATURE_ANNOTATION};
use support::http::HttpResponse;
use support::oci::{Blob, Image};
use support::proxy::Proxy;
use support::sha256_hex;
use support::sigstore::{Ca, Rekor, Trust, ISSUER, SUBJECT};
use support::Registry;
use time::OffsetDateTime;

const SUBJECT_REGEX: &str =
    "^https://github.com/acme/.*/.github/workflows/release.yml@refs/tags/v.*$";

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
    /// The trusted Sigstore, and the key of the `both/` rule, which needs it and a keyless
    /// identity (threshold 2).
    trust: Trust,
    rogue_ca: Ca,
    rogue_rekor: Rekor,
}

impl Env {
    fn start() -> Env {
        let registry = Registry::start();
        let trust = Trust::new(false);
        let identity = format!(r#"{{issuer: "{ISSUER}", subject_regex: "{SUBJECT_REGEX}"}}"#);
        let both = format!(
            "      keys: [{}]\n      threshold: 2\n      require_tlog: false\n{}",
            trust.release_key,
            trust.keyless_yaml(&format!(r#"{{issuer: "{ISSUER}", subject: "{SUBJECT}"}}"#)),
        );
        let body = cosign::config(
            &registry.url(),
            &[
                cosign::verify_rule("keyless/**", &trust.keyless_yaml(&identity)),
                cosign::verify_rule("both/**", &both),
                // The release key under the default `require_tlog`, its log entries
                // vouched for by the keyless trust (no identities).
                cosign::verify_rule(
                    "logged/**",
                    &format!(
                        "      keys: [{}]\n      keyless:\n        fulcio_roots: {}\n        \
                         rekor_keys: [{}]\n",
                        trust.release_key, trust.fulcio_roots, trust.rekor_key
                    ),
                ),
            ],
        );
        Env {
            proxy: Proxy::start(&body),
            registry,
            trust,
            rogue_ca: Ca::new(),
            rogue_rekor: Rekor::new(),
        }
    }

    fn good(&self) -> Sig<'_> {
        Sig {
            ca: &self.trust.ca,
            subject: SUBJECT,
            issuer: ISSUER,
            valid: (-3600, -3000),
            integrated: -3300,
            set_by: &self.trust.rekor,
            log: &self.trust.rekor,
            log_other_signature: false,
            tamper_payload: false,
            also_key: None,
        }
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.proxy.pull(path)
    }

    fn push_image(&self, repo: &str, tag: &str) -> Image {
        self.registry.push_random(repo, tag, 1)
    }

    /// Signs `subject` keylessly as `how` says, and pushes the signature manifest.
    fn sign(&self, repo: &str, subject: &str, how: &Sig<'_>) {
        let payload = cosign::payload(repo, subject);
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
        let mut layers = vec![];
        if let Some(key) = how.also_key {
            let signature = b64(&key.sign(&payload.bytes).unwrap());
            layers.push(cosign::layer(
                &payload,
                serde_json::json!({SIGNATURE_ANNOTATION: signature}),
            ));
        }
        let chain = format!("{}{}", how.ca.intermediate_pem, how.ca.root_pem);
        layers.push(cosign::layer(
            &payload,
            serde_json::json!({
                SIGNATURE_ANNOTATION: b64(&signature),
                "dev.sigstore.cosign/certificate": cert,
                "dev.sigstore.cosign/chain": chain,
                "dev.sigstore.cosign/bundle": bundle.to_string(),
            }),
        ));
        cosign::push_signature(&self.registry, repo, subject, payload, layers);
    }

    /// An image signed as `how` says is refused by tag, digest and blob, the tag's message
    /// naming `phrase`.
    fn expect_refused(&self, how: &Sig<'_>, phrase: &str) {
        let repo = "keyless/app";
        let image = self.push_image(repo, "v1");
        self.sign(repo, &image.manifest.digest, how);
        self.proxy
            .expect_refused(repo, "v1", &image, &["a signature did not count", phrase]);
    }
}

#[test]
fn keyless_signature_verifies_at_the_logs_time_and_serves_the_image() {
    let env = Env::start();
    let image = env.push_image("keyless/app", "v1");
    // The leaf expired 50 minutes ago; it was valid when the log integrated the entry.
    env.sign("keyless/app", &image.manifest.digest, &env.good());
    env.proxy.expect_image_served("keyless/app", "v1", &image);
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

/// Signs `subject` with the release key as `cosign sign --key` does with a Rekor upload:
/// the layer carries the Rekor bundle of a `hashedrekord` entry logging `logged_key`.
fn sign_logged(env: &Env, repo: &str, subject: &str, logged_key: &KeyPair) {
    let payload = cosign::payload(repo, subject);
    let signature = env.trust.release.sign(&payload).unwrap();
    let body = serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": sha256_hex(&payload)}},
            "signature": {"content": b64(&signature),
                          "publicKey": {"content": b64(logged_key.public_key_pem().as_bytes())}}
        }
    });
    let integrated = OffsetDateTime::now_utc().unix_timestamp() - 60;
    let (body, log_id) = (b64(body.to_string().as_bytes()), env.trust.rekor.log_id());
    let canonical = format!(
        r#"{{"body":"{body}","integratedTime":{integrated},"logID":"{log_id}","logIndex":7}}"#
    );
    let set = env.trust.rekor.key.sign(canonical.as_bytes()).unwrap();
    let bundle = serde_json::json!({
        "SignedEntryTimestamp": b64(&set),
        "Payload": {"body": body, "integratedTime": integrated, "logIndex": 7, "logID": log_id}
    });
    let payload = Blob::new(payload);
    let layer = cosign::layer(
        &payload,
        serde_json::json!({
            SIGNATURE_ANNOTATION: b64(&signature),
            "dev.sigstore.cosign/bundle": bundle.to_string(),
        }),
    );
    cosign::push_signature(&env.registry, repo, subject, payload, vec![layer]);
}

#[test]
fn key_signature_with_its_rekor_bundle_counts_under_the_default_require_tlog() {
    let env = Env::start();
    let image = env.push_image("logged/app", "v1");
    sign_logged(
        &env,
        "logged/app",
        &image.manifest.digest,
        &env.trust.release,
    );
    env.proxy.expect_image_served("logged/app", "v1", &image);
}

#[test]
fn attack_key_signature_whose_rekor_entry_logged_another_key_is_refused() {
    let env = Env::start();
    let image = env.push_image("logged/app", "v1");
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    sign_logged(&env, "logged/app", &image.manifest.digest, &other);
    env.proxy.expect_refused(
        "logged/app",
        "v1",
        &image,
        &["the Rekor entry is for another public key"],
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
            also_key: Some(&env.trust.release),
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

#[test]
fn one_keyless_signer_counts_once_however_often_its_signature_is_listed() {
    let env = Env::start();
    // Two identities the honest signer both matches, and a threshold of 2: meant to take two
    // people, it must not be met by one signature listed twice.
    let identities = format!(
        "{{issuer: \"{ISSUER}\", subject_regex: \"{SUBJECT_REGEX}\"}}\n          \
         - {{issuer: \"{ISSUER}\", subject: \"{SUBJECT}\"}}"
    );
    let rule = format!(
        "{}      threshold: 2\n",
        env.trust.keyless_yaml(&identities)
    );
    let proxy = Proxy::start(&cosign::config(
        &env.registry.url(),
        &[cosign::verify_rule("twice/**", &rule)],
    ));
    let image = env.push_image("twice/app", "v1");
    env.sign("twice/app", &image.manifest.digest, &env.good());
    let tag = format!("sha256-{}.sig", image.manifest.hex());
    let url = format!("{}/v2/twice/app/manifests/{tag}", env.registry.url());
    let accept = [("Accept", support::oci::OCI_MANIFEST)];
    let got = support::http::request("GET", &url, &accept, b"").unwrap();
    assert_eq!(got.status, 200, "{}", got.summary());
    let mut manifest: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let layers = manifest["layers"].as_array_mut().unwrap();
    layers.push(layers[0].clone());
    let bytes = manifest.to_string().into_bytes();
    env.registry
        .put_manifest("twice/app", &tag, support::oci::OCI_MANIFEST, &bytes);

    let r = proxy.pull("/v2/twice/app/manifests/v1");
    assert_eq!(r.status, 403, "{}", r.summary());
    let message = r.error_message().unwrap_or_default();
    assert!(message.contains("1 of the 2 distinct trusted"), "{message}");
}
