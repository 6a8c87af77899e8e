//! Attacks on the verified closure: what a digest is to the signed images of a repository.
//!
//! The attacker has push rights to the upstream repository (or sits between trustgate and it)
//! and no signing key. Signatures are made by the test, in cosign's wire format or with the
//! real `notary` CLI against `notary-server`; the upstream is the real docker-registry, behind
//! the scripted man in the middle (`tests/support/mitm.rs`) where an attack needs answers the
//! registry would not give.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use rcgen::{KeyPair, SigningKey};
use support::cosign::{self, Signature, SIGNATURE_ANNOTATION, SIMPLESIGNING};
use support::fakes::Reply;
use support::http::{self, HttpResponse};
use support::mitm::Mitm;
use support::oci::{self, Blob, Image, Index, ACCEPT_ALL, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use support::proxy::Proxy;
use support::{NotaryCli, NotaryServer, Registry};

/// The upstream's name in rule patterns, GUNs and signed payloads.
const REGISTRY: &str = cosign::REGISTRY;
/// The notary server's `ttl` in the proxy's configuration.
const TTL: Duration = Duration::from_secs(1);

// === a publisher with a cosign key ===

/// A cosign key pair (ECDSA P-256): the private half signs simple-signing payloads, the public
/// half is the file a rule's `keys` names.
struct Publisher {
    key: KeyPair,
    public: PathBuf,
    _dir: tempfile::TempDir,
}

impl Publisher {
    fn new() -> Publisher {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let public = dir.path().join("cosign.pub");
        std::fs::write(&public, key.public_key_pem()).unwrap();
        Publisher {
            key,
            public,
            _dir: dir,
        }
    }

    /// A `verify` rule for `REGISTRY/<repos>` trusting this key.
    fn rule(&self, repos: &str) -> String {
        let path = serde_json::json!(self.public.to_str().unwrap()).to_string();
        cosign::verify_rule(
            repos,
            &format!("      keys: [{path}]\n      require_tlog: false\n"),
        )
    }

    /// Signs `subject` (a digest) as `cosign sign` does and pushes the `.sig` manifest.
    fn sign(&self, registry: &Registry, repo: &str, subject: &str) -> Signature {
        let payload = Blob::new(cosign::payload(repo, subject));
        let signature = self.key.sign(&payload.bytes).unwrap();
        let layer = cosign::layer(
            &payload,
            serde_json::json!({SIGNATURE_ANNOTATION: cosign::b64(&signature)}),
        );
        cosign::push_signature(registry, repo, subject, payload, vec![layer])
    }
}

/// The `.sig` manifest of `sig`, rewritten by someone without the key: its config is the
/// unsigned image's manifest, and the unsigned image's blobs are listed as extra (unannotated,
/// or `annotated` with a signature that verifies under no key) simple-signing layers beside
/// the genuine one.
fn smuggling_sig(sig: &Signature, unsigned: &Image, annotated: bool) -> Vec<u8> {
    let mut manifest: serde_json::Value = serde_json::from_slice(&sig.manifest.bytes).unwrap();
    manifest["config"] = serde_json::json!({
        "mediaType": OCI_CONFIG,
        "digest": unsigned.manifest.digest,
        "size": unsigned.manifest.size(),
    });
    let layers = manifest["layers"].as_array_mut().unwrap();
    for blob in unsigned.blobs() {
        let mut layer = serde_json::json!({
            "mediaType": SIMPLESIGNING,
            "digest": blob.digest,
            "size": blob.size(),
        });
        if annotated {
            layer["annotations"] =
                serde_json::json!({SIGNATURE_ANNOTATION: cosign::b64(b"not a signature")});
        }
        layers.push(layer);
    }
    manifest.to_string().into_bytes()
}

/// Pushes `image` to `repo` under `tag`, and its manifest as a blob too: what a config
/// descriptor naming it needs for the registry to accept the manifest that lists it.
fn push_unsigned(registry: &Registry, repo: &str, tag: &str, image: &Image) {
    image.push(registry, repo, tag);
    oci::push_blob(registry, repo, &image.manifest);
}

fn expect_status(proxy: &Proxy, path: &str, status: u16) {
    let r = proxy.pull(path);
    assert_eq!(
        r.status,
        status,
        "GET {path}: {}\n{}",
        r.summary(),
        proxy.log_tail(20)
    );
}

// === class 1: closure members have a type ===

#[test]
fn attack_sig_manifest_rewritten_to_list_an_unsigned_image_serves_none_of_it() {
    let registry = Registry::start();
    let publisher = Publisher::new();
    let proxy = Proxy::start(&cosign::config(
        &registry.url(),
        &[publisher.rule("cosign/**")],
    ));
    let repo = "cosign/app";
    let signed = registry.push_random(repo, "v1", 2);
    let sig = publisher.sign(&registry, repo, &signed.manifest.digest);

    // The attacker pushes an image nobody signed and rewrites the signed image's `.sig`
    // manifest so that everything of it is listed there: the manifest as the config, its
    // config and layer as two more layers.
    let unsigned = Image::random(1);
    push_unsigned(&registry, repo, "unsigned", &unsigned);
    let rewritten = smuggling_sig(&sig, &unsigned, false);
    registry.put_manifest(repo, &sig.tag, OCI_MANIFEST, &rewritten);

    // Nothing of the unsigned image is served, by digest or through a client.
    expect_status(
        &proxy,
        &format!("/v2/{repo}/manifests/{}", unsigned.manifest.digest),
        403,
    );
    for blob in unsigned.blobs() {
        expect_status(&proxy, &format!("/v2/{repo}/blobs/{}", blob.digest), 403);
    }
    let out = tempfile::tempdir().unwrap();
    let pulled = oci::skopeo_pull(
        &proxy.host_port(),
        &format!("{repo}@{}", unsigned.manifest.digest),
        &out.path().join("unsigned"),
    );
    assert!(
        !pulled.status.success(),
        "skopeo pulled the unsigned image through the rewritten signature"
    );

    // The genuine image still verifies (its signature layer counts) and pulls.
    proxy.expect_image_served(repo, "v1", &signed);
    let pulled = oci::skopeo_pull(
        &proxy.host_port(),
        &format!("{repo}:v1"),
        &out.path().join("signed"),
    );
    assert!(
        pulled.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(
        std::fs::read(out.path().join("signed/manifest.json")).unwrap(),
        signed.manifest.bytes
    );
    // The `.sig` manifest is served as the signature artifact it is, with the one layer that
    // counted, and nothing else it lists.
    proxy.expect_served(&format!("/v2/{repo}/manifests/{}", sig.tag), &rewritten);
    proxy.expect_served(
        &format!("/v2/{repo}/blobs/{}", sig.payload.digest),
        &sig.payload.bytes,
    );
}

#[test]
fn attack_annotated_smuggled_layers_and_blobs_asked_for_as_manifests_are_refused() {
    let registry = Registry::start();
    let publisher = Publisher::new();
    let proxy = Proxy::start(&cosign::config(
        &registry.url(),
        &[publisher.rule("cosign/**")],
    ));
    let repo = "cosign/app";
    let signed = registry.push_random(repo, "v1", 1);
    let sig = publisher.sign(&registry, repo, &signed.manifest.digest);
    let unsigned = Image::random(1);
    push_unsigned(&registry, repo, "unsigned", &unsigned);
    // The smuggled layers carry a signature annotation too (one that verifies under no key).
    let rewritten = smuggling_sig(&sig, &unsigned, true);
    registry.put_manifest(repo, &sig.tag, OCI_MANIFEST, &rewritten);

    proxy.expect_image_served(repo, "v1", &signed);
    expect_status(
        &proxy,
        &format!("/v2/{repo}/manifests/{}", unsigned.manifest.digest),
        403,
    );
    for blob in unsigned.blobs() {
        expect_status(&proxy, &format!("/v2/{repo}/blobs/{}", blob.digest), 403);
    }
    // The config of the genuine `.sig` manifest is not signature material either.
    let genuine: serde_json::Value = serde_json::from_slice(&sig.manifest.bytes).unwrap();
    let sig_config = genuine["config"]["digest"].as_str().unwrap();
    expect_status(&proxy, &format!("/v2/{repo}/blobs/{sig_config}"), 403);

    // Kinds do not cross: a signed image's blob is not a manifest, its manifest not a blob,
    // the signature artifact not a blob, its payload not a manifest.
    let r = proxy.pull(&format!("/v2/{repo}/manifests/{}", signed.config.digest));
    assert_eq!(r.status, 403, "{}", r.summary());
    let message = r.error_message().unwrap_or_default();
    assert!(message.contains("a blob of a signed image"), "{message}");
    for path in [
        format!("/v2/{repo}/blobs/{}", signed.manifest.digest),
        format!("/v2/{repo}/manifests/{}", signed.layers[0].digest),
        format!("/v2/{repo}/manifests/{}", sig.payload.digest),
        format!("/v2/{repo}/blobs/{}", oci::sha256_digest(&rewritten)),
    ] {
        expect_status(&proxy, &path, 403);
    }
}

#[test]
fn attack_index_child_asked_for_as_a_blob_is_refused() {
    let registry = Registry::start();
    let publisher = Publisher::new();
    let proxy = Proxy::start(&cosign::config(
        &registry.url(),
        &[publisher.rule("cosign/**")],
    ));
    let repo = "cosign/multi";
    let index = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
    index.push(&registry, repo, "v1");
    publisher.sign(&registry, repo, &index.index.digest);

    let child = &index.children[0];
    proxy.expect_served(
        &format!("/v2/{repo}/manifests/{}", child.manifest.digest),
        &child.manifest.bytes,
    );
    proxy.expect_served(
        &format!("/v2/{repo}/blobs/{}", child.layers[0].digest),
        &child.layers[0].bytes,
    );
    expect_status(
        &proxy,
        &format!("/v2/{repo}/blobs/{}", child.manifest.digest),
        403,
    );
    expect_status(
        &proxy,
        &format!("/v2/{repo}/manifests/{}", child.config.digest),
        403,
    );
}

#[test]
fn attack_child_manifest_longer_than_its_descriptor_is_refused_at_its_size() {
    let registry = Registry::start();
    let mitm = Mitm::start(&registry.url());
    let publisher = Publisher::new();
    let proxy = Proxy::start(&cosign::config(&mitm.url(), &[publisher.rule("cosign/**")]));
    let repo = "cosign/multi";
    let index = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
    index.push(&registry, repo, "v1");
    publisher.sign(&registry, repo, &index.index.digest);
    // The first child never ends; the second announces its true length and sends more.
    let (endless, longer) = (&index.children[0], &index.children[1]);
    mitm.on(
        &format!("/v2/{repo}/manifests/{}", endless.manifest.digest),
        Reply::Endless {
            chunk: Bytes::from(endless.manifest.bytes.clone()),
        },
    );
    let mut padded = longer.manifest.bytes.clone();
    padded.extend(std::iter::repeat_n(b' ', 64 * 1024));
    mitm.on(
        &format!("/v2/{repo}/manifests/{}", longer.manifest.digest),
        Reply::ok(OCI_MANIFEST, padded),
    );
    proxy.expect_served(&format!("/v2/{repo}/manifests/v1"), &index.index.bytes);
    for child in [endless, longer] {
        let started = std::time::Instant::now();
        let r = proxy.pull(&format!("/v2/{repo}/manifests/{}", child.manifest.digest));
        // Read up to the descriptor's size and refused there: not read to the manifest
        // limit and reported as an upstream failure.
        assert_eq!(r.status, 403, "{}", r.summary());
        let message = r.error_message().unwrap_or_default();
        assert!(
            message.contains(&format!(
                "more than {0} bytes, but its signature or parent says {0}",
                child.manifest.size()
            )),
            "{message}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn attack_dripping_signature_payload_is_cut_off_at_the_upstream_timeout() {
    // Signature blobs are small and bounded by their descriptor, but a peer that sends one
    // byte just inside each read timeout would hold every verification for as long as it
    // likes: the whole read is bounded by `upstream_timeout`.
    let registry = Registry::start();
    let mitm = Mitm::start(&registry.url());
    let publisher = Publisher::new();
    let mut body = cosign::config(&mitm.url(), &[publisher.rule("cosign/**")]);
    body.push_str("limits: {upstream_timeout: 2s, upstream_read_timeout: 2s}\n");
    let proxy = Proxy::start(&body);
    let repo = "cosign/drip";
    let image = Image::random(1);
    image.push(&registry, repo, "v1");
    let sig = publisher.sign(&registry, repo, &image.manifest.digest);
    mitm.on(
        &format!("/v2/{repo}/blobs/{}", sig.payload.digest),
        Reply::Drip {
            body: Bytes::from(sig.payload.bytes.clone()),
            every: Duration::from_millis(500),
        },
    );
    let started = std::time::Instant::now();
    let r = proxy.pull(&format!("/v2/{repo}/manifests/v1"));
    let took = started.elapsed();
    assert!(r.status >= 500, "{}", r.summary());
    assert!(took < Duration::from_secs(8), "answered after {took:?}");
    mitm.clear();
    proxy.expect_served(&format!("/v2/{repo}/manifests/v1"), &image.manifest.bytes);
}

// === class 5: one broken manifest fails the others ===

#[test]
fn attack_one_signed_tags_manifest_failing_upstream_fails_no_other_tag() {
    let notary = NotaryServer::start();
    let cli = NotaryCli::for_server(&notary);
    let registry = Registry::start();
    let mitm = Mitm::start(&registry.url());
    let proxy = Proxy::start(&format!(
        "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{}\", default: true}}\n\
         notary_servers:\n  - {{name: local, url: \"{}\", ttl: {}s}}\n\
         policy:\n  default: deny\n  rules:\n\
         \x20   - {{match: \"{REGISTRY}/signed/**\", action: verify, notary: local}}\n\
         limits: {{upstream_timeout: 2s}}\n",
        mitm.url(),
        notary.url(),
        TTL.as_secs()
    ));
    let repo = "signed/two";
    let gun = format!("{REGISTRY}/{repo}");
    // The closure is walked in digest order: `b` comes first, so that its failure would have
    // decided for `a`.
    let (mut a, mut b) = (Image::random(2), Image::random(2));
    if a.manifest.digest < b.manifest.digest {
        std::mem::swap(&mut a, &mut b);
    }
    a.push(&registry, repo, "a");
    cli.init(&gun);
    cli.addhash(&gun, "a", a.manifest.size(), a.manifest.hex(), &[]);
    // `a` pulled whole: in the cache. `b`, signed after, never was.
    proxy.expect_image_served(repo, "a", &a);
    b.push(&registry, repo, "b");
    cli.addhash(&gun, "b", b.manifest.size(), b.manifest.hex(), &[]);
    // The proxy's trust data is stale after its ttl: the next request sees `b` signed.
    std::thread::sleep(TTL + Duration::from_millis(500));

    let b_manifest = format!("/v2/{repo}/manifests/{}", b.manifest.digest);
    mitm.on(&b_manifest, Reply::status(503));
    proxy.expect_image_served(repo, "a", &a);
    for path in std::iter::once(b_manifest.clone()).chain(
        b.blobs()
            .iter()
            .map(|x| format!("/v2/{repo}/blobs/{}", x.digest)),
    ) {
        expect_status(&proxy, &path, 502);
    }

    // The upstream answers nothing but 503 now.
    mitm.on_prefix("/v2/", Reply::status(503));
    proxy.expect_image_served(repo, "a", &a);
    for path in [format!("/v2/{repo}/manifests/b"), b_manifest]
        .into_iter()
        .chain(
            b.blobs()
                .iter()
                .map(|x| format!("/v2/{repo}/blobs/{}", x.digest)),
        )
    {
        expect_status(&proxy, &path, 502);
    }
    // Something in no branch is still not a member once every branch can be read again.
    mitm.clear();
    let other = Image::random(1);
    expect_status(
        &proxy,
        &format!("/v2/{repo}/blobs/{}", other.layers[0].digest),
        403,
    );
}

// === the property: every byte served is a member of the right kind ===

/// What is genuinely signed in the property test's repository, and the unsigned image the
/// attacker has in it.
struct World {
    registry: Registry,
    publisher: Publisher,
    repo: &'static str,
    image: Image,
    image_sig: Signature,
    index: Index,
    index_sig: Signature,
    unsigned: Image,
    /// Manifest members (signed manifests, index children, the `.sig` manifests as pushed).
    manifests: HashMap<String, Vec<u8>>,
    /// Blob members: configs and layers of manifest members, the payloads that counted.
    blobs: HashMap<String, Vec<u8>>,
    /// What each signed tag stands for.
    tags: HashMap<String, String>,
}

/// One upstream answer the attacker can change: a path and its genuine bytes.
struct Target {
    path: String,
    genuine: Vec<u8>,
    manifest: bool,
    /// A `.sig` manifest (of the image, or of the index).
    sig: Option<usize>,
}

impl World {
    fn new() -> World {
        let registry = Registry::start();
        let publisher = Publisher::new();
        let repo = "cosign/prop";
        let image = Image::random(2);
        image.push(&registry, repo, "v1");
        let image_sig = publisher.sign(&registry, repo, &image.manifest.digest);
        let index = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
        index.push(&registry, repo, "multi");
        let index_sig = publisher.sign(&registry, repo, &index.index.digest);
        let unsigned = Image::random(1);
        push_unsigned(&registry, repo, "unsigned", &unsigned);

        let mut manifests = HashMap::new();
        let mut blobs = HashMap::new();
        for m in [
            &image.manifest,
            &index.index,
            &image_sig.manifest,
            &index_sig.manifest,
        ]
        .into_iter()
        .chain(index.children.iter().map(|c| &c.manifest))
        {
            manifests.insert(m.digest.clone(), m.bytes.clone());
        }
        for b in image
            .blobs()
            .into_iter()
            .chain(index.children.iter().flat_map(|c| c.blobs()))
            .chain([&image_sig.payload, &index_sig.payload])
        {
            blobs.insert(b.digest.clone(), b.bytes.clone());
        }
        let tags = HashMap::from([
            ("v1".to_owned(), image.manifest.digest.clone()),
            ("multi".to_owned(), index.index.digest.clone()),
        ]);
        World {
            registry,
            publisher,
            repo,
            image,
            image_sig,
            index,
            index_sig,
            unsigned,
            manifests,
            blobs,
            tags,
        }
    }

    fn sigs(&self) -> [&Signature; 2] {
        [&self.image_sig, &self.index_sig]
    }

    fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.repo)
    }

    fn blob_path(&self, digest: &str) -> String {
        format!("/v2/{}/blobs/{digest}", self.repo)
    }

    /// Every upstream answer the property test may tamper with.
    fn targets(&self) -> Vec<Target> {
        let manifest = |path: String, genuine: &[u8], sig: Option<usize>| Target {
            path,
            genuine: genuine.to_vec(),
            manifest: true,
            sig,
        };
        let mut out = vec![
            manifest(self.manifest_path("v1"), &self.image.manifest.bytes, None),
            manifest(self.manifest_path("multi"), &self.index.index.bytes, None),
            manifest(
                self.manifest_path(&self.image.manifest.digest),
                &self.image.manifest.bytes,
                None,
            ),
            manifest(
                self.manifest_path(&self.index.index.digest),
                &self.index.index.bytes,
                None,
            ),
        ];
        for child in &self.index.children {
            out.push(manifest(
                self.manifest_path(&child.manifest.digest),
                &child.manifest.bytes,
                None,
            ));
        }
        for (i, sig) in self.sigs().into_iter().enumerate() {
            out.push(manifest(
                self.manifest_path(&sig.tag),
                &sig.manifest.bytes,
                Some(i),
            ));
        }
        let mut blobs: Vec<(&String, &Vec<u8>)> = self.blobs.iter().collect();
        blobs.sort();
        for (digest, bytes) in blobs {
            out.push(Target {
                path: self.blob_path(digest),
                genuine: bytes.clone(),
                manifest: false,
                sig: None,
            });
        }
        out
    }

    /// The hostile answer number `kind` for `target`.
    fn hostile(&self, target: &Target, kind: u8, noise: u8) -> Reply {
        let content_type = if target.manifest {
            OCI_MANIFEST
        } else {
            "application/octet-stream"
        };
        let genuine = Bytes::from(target.genuine.clone());
        let mut flipped = target.genuine.clone();
        let at = noise as usize % flipped.len();
        flipped[at] ^= 0x20;
        let padded = |extra: usize| {
            let mut body = target.genuine.clone();
            body.extend(std::iter::repeat_n(b' ', extra));
            Bytes::from(body)
        };
        match kind % 9 {
            0 if target.manifest => Reply::ok(OCI_MANIFEST, self.unsigned.manifest.bytes.clone()),
            0 => Reply::ok(content_type, self.unsigned.layers[0].bytes.clone()),
            1 => Reply::ok(content_type, flipped),
            // Longer than its descriptor says, announced honestly: a size lie.
            2 => Reply::ok(content_type, padded(1 + 256 * 1024)),
            // Announces more than it sends.
            3 => Reply::Declared {
                content_length: genuine.len() as u64 + 100,
                body: genuine,
            },
            4 => Reply::Truncated { body: genuine },
            // Announces the genuine length, sends more.
            5 => Reply::Declared {
                content_length: genuine.len() as u64,
                body: padded(64 * 1024),
            },
            6 => Reply::status(500 + u16::from(noise % 4)),
            7 => match target.sig {
                Some(i) => Reply::ok(
                    OCI_MANIFEST,
                    smuggling_sig(self.sigs()[i], &self.unsigned, noise.is_multiple_of(2)),
                ),
                // A manifest never ends (bounded by the manifest limit).
                None if target.manifest => Reply::Endless { chunk: genuine },
                None => Reply::status(404),
            },
            _ => match target.sig {
                // The `.sig` tag as an index whose child is the unsigned image.
                Some(_) => Reply::ok(
                    OCI_INDEX,
                    serde_json::to_vec(&serde_json::json!({
                        "schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": [{"mediaType": OCI_MANIFEST,
                                       "digest": self.unsigned.manifest.digest,
                                       "size": self.unsigned.manifest.size()}],
                    }))
                    .unwrap(),
                ),
                // The signed index, with its first child swapped for the unsigned image.
                None if target.path == self.manifest_path(&self.index.index.digest) => {
                    let mut index: serde_json::Value =
                        serde_json::from_slice(&self.index.index.bytes).unwrap();
                    index["manifests"][0]["digest"] = self.unsigned.manifest.digest.clone().into();
                    index["manifests"][0]["size"] = self.unsigned.manifest.size().into();
                    Reply::ok(OCI_INDEX, serde_json::to_vec(&index).unwrap())
                }
                None => Reply::status(404),
            },
        }
    }

    /// The requests of one case, in the order a pull makes them, then the attacker's.
    fn requests(&self) -> Vec<(String, Kind)> {
        let mut out = Vec::new();
        let m = |r: &str| (self.manifest_path(r), Kind::Manifest);
        let b = |d: &str| (self.blob_path(d), Kind::Blob);
        out.push(m("v1"));
        out.push(m(&self.image.manifest.digest));
        out.extend(self.image.blobs().iter().map(|x| b(&x.digest)));
        out.push(m("multi"));
        out.push(m(&self.index.index.digest));
        for child in &self.index.children {
            out.push(m(&child.manifest.digest));
            out.extend(child.blobs().iter().map(|x| b(&x.digest)));
        }
        for sig in self.sigs() {
            out.push(m(&sig.tag));
            out.push(b(&sig.payload.digest));
        }
        // The attacker's: the unsigned image, and members asked for as the other kind.
        out.push(m(&self.unsigned.manifest.digest));
        out.extend(self.unsigned.blobs().iter().map(|x| b(&x.digest)));
        out.push(m(&self.image.config.digest));
        out.push(b(&self.image.manifest.digest));
        out.push(b(&self.index.children[0].manifest.digest));
        out.push(m(&self.image_sig.payload.digest));
        out
    }

    /// Whether `r`, the answer to `path`, gave the client only bytes of a member of the
    /// kind asked for. Returns the artifact manifest served for a `.sig` tag, if one was.
    fn check(
        &self,
        path: &str,
        kind: Kind,
        r: &HttpResponse,
        served: &mut Vec<Vec<u8>>,
    ) -> Result<(), String> {
        if r.status != 200 {
            return Ok(());
        }
        let reference = path.rsplit('/').next().unwrap();
        let complete = r
            .header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .is_none_or(|l| l == r.body.len());
        let members = match kind {
            Kind::Manifest | Kind::Artifact => &self.manifests,
            Kind::Blob => &self.blobs,
        };
        if reference.starts_with("sha256:") {
            let Some(genuine) = members.get(reference) else {
                return Err(format!(
                    "GET {path}: 200 for a digest that is no {kind:?} member ({} bytes)",
                    r.body.len()
                ));
            };
            if complete && oci::sha256_digest(&r.body) != reference {
                return Err(format!(
                    "GET {path}: a body that does not hash to {reference}"
                ));
            }
            // A cold blob streams while it is hashed, and a transfer whose bytes turn out
            // wrong is cut short: the client is left with a failed download of at most the
            // signed size (never a complete one). Manifests are checked whole before a byte
            // goes out, so a cut-off manifest would be a broken promise.
            if !complete && (kind != Kind::Blob || r.body.len() > genuine.len()) {
                return Err(format!(
                    "GET {path}: a cut-off {kind:?} body of {} bytes ({} signed)",
                    r.body.len(),
                    genuine.len()
                ));
            }
            return Ok(());
        }
        if !complete {
            return Err(format!("GET {path}: a cut-off manifest"));
        }
        if let Some(signed) = self.tags.get(reference) {
            let got = oci::sha256_digest(&r.body);
            return (got == *signed)
                .then_some(())
                .ok_or_else(|| format!("GET {path}: {got}, not the signed {signed}"));
        }
        // A `.sig` tag: a signature artifact for its subject that carries the genuine
        // signature layer (the attacker may have added to it; what it lists is checked blob
        // by blob afterwards).
        let sig = self
            .sigs()
            .into_iter()
            .find(|s| s.tag == reference)
            .ok_or_else(|| format!("GET {path}: 200 for a tag nobody signed"))?;
        let genuine: serde_json::Value = serde_json::from_slice(&sig.manifest.bytes).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: not JSON: {e}"))?;
        let layers = body["layers"].as_array().cloned().unwrap_or_default();
        if !layers.contains(&genuine["layers"][0]) {
            return Err(format!(
                "GET {path}: a signature artifact without the signature that counted"
            ));
        }
        served.push(r.body.clone());
        Ok(())
    }

    /// Everything a `.sig` manifest the proxy served lists, and the manifest by its digest.
    fn follow(&self, served: &[u8]) -> Vec<(String, Kind)> {
        let body: serde_json::Value = serde_json::from_slice(served).unwrap();
        let mut out = vec![(
            self.manifest_path(&oci::sha256_digest(served)),
            Kind::Artifact,
        )];
        for d in
            std::iter::once(&body["config"]).chain(body["layers"].as_array().into_iter().flatten())
        {
            if let Some(digest) = d["digest"].as_str() {
                out.push((self.blob_path(digest), Kind::Blob));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Manifest,
    Blob,
    /// A signature artifact the proxy served by its tag, asked for by digest.
    Artifact,
}

/// The largest size each temp file under `dir` reached while a case ran, by file name.
struct TmpWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TmpWatch {
    fn start(dir: PathBuf) -> TmpWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let (halt, record) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                sample(&dir, &record);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        TmpWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.seen.lock().unwrap().clone()
    }
}

fn sample(dir: &Path, record: &Mutex<BTreeMap<String, u64>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut seen = record.lock().unwrap();
        let max = seen.entry(name).or_insert(0);
        *max = (*max).max(meta.len());
    }
}

/// One case: a fresh proxy behind a fresh man in the middle that tampers as `tampers` say.
fn run_case(world: &World, tampers: &[(usize, u8, u8)]) -> Result<(), String> {
    let targets = world.targets();
    let mitm = Mitm::start(&world.registry.url());
    let mut script = Vec::new();
    for &(target, kind, noise) in tampers {
        let target = &targets[target % targets.len()];
        script.push(format!("{} <- kind {}", target.path, kind % 9));
        mitm.on(&target.path, world.hostile(target, kind, noise));
    }
    let proxy = Proxy::start(
        &(cosign::config(&mitm.url(), &[world.publisher.rule("cosign/**")])
            + "limits: {upstream_timeout: 3s}\n"),
    );
    let watch = TmpWatch::start(proxy.cache_dir().join("tmp"));
    let mut violations = Vec::new();
    let mut served = Vec::new();
    let mut sizes: HashMap<String, u64> = world
        .manifests
        .iter()
        .chain(&world.blobs)
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let get = |path: &str| {
        http::request(
            "GET",
            &format!("{}{path}", proxy.url()),
            &[("Accept", ACCEPT_ALL)],
            b"",
        )
    };
    for (path, kind) in world.requests() {
        // A transport error gave the client nothing it could take for content.
        if let Ok(r) = get(&path) {
            if let Err(v) = world.check(&path, kind, &r, &mut served) {
                violations.push(v);
            }
        }
    }
    for artifact in &served {
        sizes.insert(oci::sha256_digest(artifact), artifact.len() as u64);
        for (path, kind) in world.follow(artifact) {
            let Ok(r) = get(&path) else { continue };
            let result = match kind {
                Kind::Artifact if r.status == 200 && r.body != *artifact => {
                    Err(format!("GET {path}: not the artifact served by its tag"))
                }
                Kind::Artifact => Ok(()),
                _ => world.check(&path, kind, &r, &mut Vec::new()),
            };
            if let Err(v) = result {
                violations.push(v);
            }
        }
    }
    for (name, size) in watch.finish() {
        let digest = format!("sha256:{}", name.split('.').next().unwrap_or_default());
        match sizes.get(&digest) {
            Some(&limit) if size > limit => violations.push(format!(
                "temp file {name} reached {size} bytes; its descriptor says {limit}"
            )),
            Some(_) => {}
            None => violations.push(format!(
                "temp file {name} ({size} bytes) for an object that is no member"
            )),
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tampered: {script:#?}\nviolations: {violations:#?}\n--- trustgate log ---\n{}",
            proxy.log_tail(30)
        ))
    }
}

#[test]
fn attack_random_hostile_upstream_answers_serve_only_members_of_the_right_kind() {
    let world = World::new();
    // Honest first: the property is not vacuous, everything genuine is served.
    {
        let proxy = Proxy::start(&cosign::config(
            &world.registry.url(),
            &[world.publisher.rule("cosign/**")],
        ));
        for (path, kind) in world.requests() {
            let r = proxy.pull(&path);
            let reference = path.rsplit('/').next().unwrap();
            let member = match kind {
                Kind::Blob => world.blobs.contains_key(reference),
                _ => {
                    world.manifests.contains_key(reference)
                        || world.tags.contains_key(reference)
                        || world.sigs().iter().any(|s| s.tag == reference)
                }
            };
            assert_eq!(
                r.status,
                if member { 200 } else { 403 },
                "honest upstream, GET {path}: {}\n{}",
                r.summary(),
                proxy.log_tail(20)
            );
        }
    }
    let cases = std::env::var("TRUSTGATE_ATTACK_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6);
    let result = runner.run(&strategy, |tampers| {
        run_case(&world, &tampers).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
