//! cosign signatures as sigstore bundles found through OCI referrers, against a real
//! registry. Debian's `docker-registry` (distribution 2.8) has no referrers API, so the
//! artifacts are attached as cosign does for such registries (`specs/BUNDLE_SPEC.md`): the
//! bundle blob, an artifact manifest with `artifactType`, the empty config and a `subject`,
//! and the referrers tag `sha256-<hex>` holding an index that lists it. The bundles are
//! cosign's v0.3 JSON: a DSSE envelope of an in-toto statement (predicate
//! `https://sigstore.dev/cosign/sign/v1`) signed by a key or by a Fulcio-like leaf whose
//! signature a `dsse` Rekor entry logged under a signed entry timestamp.

mod support;

use rcgen::{KeyPair, SigningKey};
use support::cosign::{self, b64};
use support::http::{self, HttpResponse};
use support::oci::{Blob, Image, OCI_INDEX, OCI_MANIFEST};
use support::proxy::Proxy;
use support::sha256_hex;
use support::sigstore::{Trust, ISSUER, SUBJECT};
use support::Registry;
use time::OffsetDateTime;

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const INTOTO: &str = "application/vnd.in-toto+json";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

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
    /// The digest the statement names, when not the image's (testing a mismatch).
    claims: Option<&'a str>,
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

/// A bundle artifact's descriptor as cosign 3.1.1 writes it into the referrers tag index on
/// distribution 2.8: the artifactType is its config's media type, not the bundle's.
fn cosign3_descriptor(manifest: &Blob) -> serde_json::Value {
    serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "size": manifest.size(),
        "digest": manifest.digest,
        "artifactType": EMPTY
    })
}

struct Env {
    proxy: Proxy,
    registry: Registry,
    trust: Trust,
    /// The trusted_root.json files of the `rooted`, `lapsed` and `unlogged` rules.
    _roots: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let registry = Registry::start();
        // A v0.3 bundle carries the leaf alone: the intermediate comes from the trusted
        // file, as from Sigstore's trusted root.
        let trust = Trust::new(true);
        let identity = format!(r#"{{issuer: "{ISSUER}", subject: "{SUBJECT}"}}"#);
        // The same Sigstore as a trusted_root.json: with open windows; with a CA whose
        // window closed before the signing (2 h ago); with a log trusted only from 10
        // minutes ago (after the entry was integrated).
        let roots = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let month = now - time::Duration::days(30);
        let rooted = |name: &str, ca, log| {
            let path = roots.path().join(name);
            std::fs::write(&path, trust.trusted_root_json(ca, log)).unwrap();
            format!(
                "      keyless:\n        trusted_root: {}\n        identities:\n          - {identity}\n",
                serde_json::json!(path.to_str().unwrap())
            )
        };
        let open = rooted("open.json", (month, None), (month, None));
        let lapsed = rooted(
            "lapsed.json",
            (month, Some(now - time::Duration::hours(2))),
            (month, None),
        );
        let unlogged = rooted(
            "unlogged.json",
            (month, None),
            (now - time::Duration::minutes(10), None),
        );
        let body = cosign::config(
            &registry.url(),
            &[
                cosign::verify_rule("keyless/**", &trust.keyless_yaml(&identity)),
                cosign::verify_rule("rooted/**", &open),
                cosign::verify_rule("lapsed/**", &lapsed),
                cosign::verify_rule("unlogged/**", &unlogged),
                cosign::verify_rule(
                    "keyed/**",
                    &format!(
                        "      keys: [{}]\n      require_tlog: false\n",
                        trust.release_key
                    ),
                ),
            ],
        );
        Env {
            proxy: Proxy::start(&body),
            registry,
            trust,
            _roots: roots,
        }
    }

    fn keyless(&self) -> Make<'_> {
        Make {
            claims: None,
            identity: Some(SUBJECT),
            key: None,
            tamper_signature: false,
            log_other_payload: false,
            rekor_v2: false,
        }
    }

    fn keyed(&self) -> Make<'_> {
        Make {
            identity: None,
            key: Some(&self.trust.release),
            ..self.keyless()
        }
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.proxy.pull(path)
    }

    fn push_image(&self, repo: &str, tag: &str) -> Image {
        self.registry.push_random(repo, tag, 1)
    }

    /// The bundle JSON for `image` as `how` says.
    fn bundle(&self, image: &Image, how: &Make<'_>) -> Vec<u8> {
        let claims = how.claims.unwrap_or(&image.manifest.digest);
        // cosign `signDigestBundle`: an in-toto v1 statement, protojson-encoded.
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": &claims["sha256:".len()..]}}],
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
            let (leaf_key, cert) = self
                .trust
                .ca
                .leaf(how.identity.unwrap(), ISSUER, -3600, -3000);
            signature = leaf_key.sign(&signed).unwrap();
            let logged_payload = if how.log_other_payload {
                b"another statement".to_vec()
            } else {
                statement.clone()
            };
            let integrated = OffsetDateTime::now_utc().unix_timestamp() - 3300;
            let log_id = self.trust.rekor.log_id();
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
                let set = self.trust.rekor.key.sign(canonical.as_bytes()).unwrap();
                // A v0.3 bundle carries an inclusion proof with a signed checkpoint: here
                // the entry is the one leaf of a tree of size 1 (RFC 9162: its root is the
                // leaf hash), and the checkpoint a C2SP signed note by the log's key.
                let leaf = {
                    let mut bytes = vec![0u8];
                    bytes.extend_from_slice(
                        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &body)
                            .unwrap(),
                    );
                    hex::decode(sha256_hex(&bytes)).unwrap()
                };
                let text = format!("rekor.test - 1\n1\n{}\n", b64(&leaf));
                let note_sig = self.trust.rekor.key.sign(text.as_bytes()).unwrap();
                let mut hinted = hex::decode(&log_id).unwrap()[..4].to_vec();
                hinted.extend_from_slice(&note_sig);
                let checkpoint = format!("{text}\n\u{2014} rekor.test {}\n", b64(&hinted));
                serde_json::json!({
                    "logIndex": "42",
                    "logId": {"keyId": b64(&hex::decode(&log_id).unwrap())},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": integrated.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
                    "inclusionProof": {"logIndex": "0", "rootHash": b64(&leaf), "treeSize": "1",
                        "hashes": [], "checkpoint": {"envelope": checkpoint}},
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
        self.attach_listed(repo, image, how, false)
    }

    /// [`Env::attach`], the referrers tag index listing the artifact as cosign 3.1.1 lists
    /// it when `as_cosign3`: under its config's media type (the empty descriptor's), with no
    /// annotations.
    fn attach_listed(
        &self,
        repo: &str,
        image: &Image,
        how: &Make<'_>,
        as_cosign3: bool,
    ) -> (Blob, Blob) {
        let bundle = Blob::new(self.bundle(image, how));
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
        self.registry
            .put_manifest(repo, &manifest.digest, OCI_MANIFEST, &manifest.bytes);
        // The referrers tag: the index, extended with this artifact.
        let tag = format!("sha256-{}", image.manifest.hex());
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.registry.url());
        let current = http::request("GET", &url, &[("Accept", OCI_INDEX)], b"").unwrap();
        let mut manifests = if current.status == 200 {
            current.json()["manifests"].as_array().unwrap().clone()
        } else {
            vec![]
        };
        manifests.push(if as_cosign3 {
            cosign3_descriptor(&manifest)
        } else {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": manifest.digest,
                "size": manifest.size(),
                "artifactType": BUNDLE,
                "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                                "dev.sigstore.bundle.predicateType": SIGN_PREDICATE}
            })
        });
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests
        })
        .to_string();
        self.registry
            .put_manifest(repo, &tag, OCI_INDEX, index.as_bytes());
        (manifest, bundle)
    }

    /// The bundle artifact [`Env::attach`] returned is served: its manifest and bundle blob.
    fn expect_attached_served(&self, repo: &str, (artifact, bundle): &(Blob, Blob)) {
        self.proxy.expect_served(
            &format!("/v2/{repo}/manifests/{}", artifact.digest),
            &artifact.bytes,
        );
        self.proxy.expect_served(
            &format!("/v2/{repo}/blobs/{}", bundle.digest),
            &bundle.bytes,
        );
    }

    /// A new image with a bundle made as `how` says attached is refused, the tag's message
    /// naming `phrase`.
    fn expect_bundle_refused(&self, repo: &str, how: &Make<'_>, phrase: &str) {
        let image = self.push_image(repo, "v1");
        self.attach(repo, &image, how);
        self.expect_refused(repo, &image, phrase);
    }

    /// `image` is refused by tag, digest, blob and referrers, the tag's message naming
    /// `phrase`.
    fn expect_refused(&self, repo: &str, image: &Image, phrase: &str) {
        self.proxy.expect_refused(repo, "v1", image, &[phrase]);
        let path = format!("/v2/{repo}/referrers/{}", image.manifest.digest);
        let r = self.get(&path);
        assert_eq!(r.status, 403, "GET {path}: {}", r.summary());
    }
}

#[test]
fn keyless_bundle_serves_the_image_and_its_referrers() {
    let env = Env::start();
    let repo = "keyless/app";
    let image = env.push_image(repo, "v1");
    let attached = env.attach(repo, &image, &env.keyless());
    let artifact = &attached.0;
    env.proxy.expect_image_served(repo, "v1", &image);

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
    env.expect_attached_served(repo, &attached);
    // The referrers tag itself, for clients that fall back to it.
    let r = env.get(&format!(
        "/v2/{repo}/manifests/sha256-{}",
        image.manifest.hex()
    ));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.json()["manifests"][0]["digest"], artifact.digest.as_str());
}

#[test]
fn keyless_bundle_verifies_under_a_trusted_root_json_and_its_windows() {
    let env = Env::start();
    let image = env.push_image("rooted/app", "v1");
    env.attach("rooted/app", &image, &env.keyless());
    env.proxy.expect_image_served("rooted/app", "v1", &image);
    // A certificate authority counts only within its window in the trusted root.
    env.expect_bundle_refused(
        "lapsed/app",
        &env.keyless(),
        "no certificate authority of the trusted root was valid",
    );
    // So does a log.
    env.expect_bundle_refused(
        "unlogged/app",
        &env.keyless(),
        "outside the validity of https://rekor.test",
    );
}

#[test]
fn key_based_bundle_serves_the_image() {
    let env = Env::start();
    let repo = "keyed/app";
    let image = env.push_image(repo, "v1");
    let attached = env.attach(repo, &image, &env.keyed());
    env.proxy.expect_image_served(repo, "v1", &image);
    env.expect_attached_served(repo, &attached);
}

#[test]
fn bundle_whose_statement_names_another_digest_is_refused() {
    let env = Env::start();
    let other = env.push_image("keyed/app", "other");
    // A valid bundle by the trusted key, for the other image, attached to this one.
    let how = Make {
        claims: Some(&other.manifest.digest),
        ..env.keyed()
    };
    env.expect_bundle_refused("keyed/app", &how, &other.manifest.digest);
}

#[test]
fn bundle_with_a_tampered_envelope_signature_is_refused() {
    let env = Env::start();
    // The entry logged the honest signature: the tampered one is not it.
    for (repo, how, phrase) in [
        (
            "keyless/app",
            env.keyless(),
            "it does not log the envelope's signature",
        ),
        ("keyed/app", env.keyed(), "verifies under no trusted key"),
    ] {
        let how = Make {
            tamper_signature: true,
            ..how
        };
        env.expect_bundle_refused(repo, &how, phrase);
    }
}

#[test]
fn bundle_whose_log_entry_is_for_another_envelope_is_refused() {
    let env = Env::start();
    let how = Make {
        log_other_payload: true,
        ..env.keyless()
    };
    env.expect_bundle_refused(
        "keyless/app",
        &how,
        "its payload hash is not the DSSE payload's SHA-256",
    );
}

#[test]
fn bundle_by_another_identity_is_refused() {
    let env = Env::start();
    let evil = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1";
    let how = Make {
        identity: Some(evil),
        ..env.keyless()
    };
    env.expect_bundle_refused(
        "keyless/app",
        &how,
        "none of the trusted identities matched",
    );
}

#[test]
fn bundle_with_a_forged_rekor_v2_entry_is_refused() {
    let env = Env::start();
    // A v2 entry whose body logs nothing of this bundle (and whose proof and checkpoint are
    // junk): the body is compared before anything else is believed.
    let how = Make {
        rekor_v2: true,
        ..env.keyless()
    };
    env.expect_bundle_refused("keyless/app", &how, "does not match the bundle");
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

#[test]
fn attack_bundle_listed_under_the_empty_artifact_type_still_counts() {
    // cosign 3.1.1's referrers tag index lists the bundle under `application/vnd.oci.empty.v1+json`
    // (tests/cosign_real.rs sees it do so); cosign verifies it, and so must the proxy.
    let env = Env::start();
    let repo = "keyed/app";
    let image = env.push_image(repo, "v1");
    let attached = env.attach_listed(repo, &image, &env.keyed(), true);
    env.proxy.expect_image_served(repo, "v1", &image);
    env.expect_attached_served(repo, &attached);
}

#[test]
fn attack_bundle_on_the_second_referrers_page_counts_and_a_foreign_next_page_is_not_fetched() {
    // A registry with the referrers API (distribution 2.8 has none: the pages are scripted
    // in front of the real registry) that pages its list: the bundle is on page two, whose
    // `Link` names another host. The first page lists an artifact that is no bundle.
    let env = Env::start();
    let repo = "keyed/app";
    let image = env.push_image(repo, "v1");
    let (artifact, bundle) = env.attach_listed(repo, &image, &env.keyed(), true);
    let upstream = support::mitm::Mitm::start(&env.registry.url());
    let elsewhere = support::mitm::Mitm::standalone();
    let api = format!("/v2/{repo}/referrers/{}", image.manifest.digest);
    let page = |manifests: serde_json::Value, next: &str| support::fakes::Reply::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".to_owned(), OCI_INDEX.to_owned()),
            ("Link".to_owned(), format!("<{next}>; rel=\"next\"")),
        ],
        body: serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                     "manifests": manifests})
        .to_string()
        .into(),
    };
    let not_a_bundle = serde_json::json!([{"mediaType": OCI_MANIFEST, "size": image.manifest.size(),
        "digest": image.manifest.digest, "artifactType": "application/spdx+json"}]);
    upstream.on(&api, page(not_a_bundle, &format!("{api}?last=1")));
    upstream.on(
        &format!("{api}?last=1"),
        page(
            serde_json::json!([cosign3_descriptor(&artifact)]),
            &format!("{}{api}?last=2", elsewhere.url()),
        ),
    );
    // Only the API can have listed it.
    upstream.on(
        &format!("/v2/{repo}/manifests/sha256-{}", image.manifest.hex()),
        support::fakes::Reply::Respond {
            status: 404,
            headers: vec![],
            body: "".into(),
        },
    );
    let body = cosign::config(
        &upstream.url(),
        &[cosign::verify_rule(
            "keyed/**",
            &format!(
                "      keys: [{}]\n      require_tlog: false\n",
                env.trust.release_key
            ),
        )],
    );
    let proxy = Proxy::start(&body);
    proxy.expect_image_served(repo, "v1", &image);
    proxy.expect_served(
        &format!("/v2/{repo}/blobs/{}", bundle.digest),
        &bundle.bytes,
    );
    assert_eq!(upstream.count(&format!("{api}?last=1")), 1);
    assert_eq!(elsewhere.requests(), Vec::<String>::new());
}

#[test]
fn tuf_rule_without_a_reachable_repository_or_a_cache_refuses_to_start_and_says_why() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/sigstore/public-good/metadata/root_history/1.root.json");
    if !root.is_file() {
        eprintln!("skipped: no sigstore TUF root at {}", root.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let initial = dir.path().join("sigstore-root.json");
    std::fs::copy(&root, &initial).unwrap();
    // A port nothing listens on: the repository cannot be reached, and there is no cache.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let keyless = format!(
        "      keyless:\n        tuf: {{url: \"{url}\", root: {}}}\n        identities:\n          - \
         {{issuer: \"{ISSUER}\", subject: \"{SUBJECT}\"}}\n",
        serde_json::json!(initial.to_str().unwrap())
    );
    let config = dir.path().join("trustgate.yaml");
    let registry = "http://127.0.0.1:9";
    let body = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n{}",
        cosign::config(registry, &[cosign::verify_rule("tuf/**", &keyless)])
    );
    std::fs::write(&config, body).unwrap();
    let out = support::trustgate(["serve", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started without a trust root: {stderr}"
    );
    for phrase in ["TUF repository", &url, "no usable cache"] {
        assert!(stderr.contains(phrase), "`{phrase}` not in {stderr}");
    }
}
