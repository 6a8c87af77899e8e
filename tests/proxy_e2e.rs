//! End to end: `trustgate serve` between real peers. Upstreams are `docker-registry` (CNCF
//! distribution), trust data is published to `notary-server` by the `notary` CLI, images are
//! written by the test and pushed with `skopeo`, and clients are `skopeo copy`, `docker pull`
//! (when a Docker engine answers) and raw HTTP requests.
//!
//! Every test starts its own peers ([`Env`]) and uses its own repositories (GUNs), so tests are
//! independent and may run in parallel; every peer is killed when its test ends, pass or fail.
//! Content checks compare digests and bytes of what the test itself wrote.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use support::http::{self, HttpResponse};
use support::oci::{self, Blob, Format, Image, Index, ACCEPT_ALL, OCI_INDEX, OCI_MANIFEST};
use support::proxy::{metric_value, Proxy};
use support::{KeyKind, NotaryCli, NotaryServer, Registry, Signer};

/// The default upstream's name: in GUNs and rule patterns.
const REGISTRY: &str = "registry.test";
/// The second upstream, picked with `?ns=other.test`.
const OTHER: &str = "other.test";
/// The notary server's `ttl` in the proxy's configuration.
const TTL: Duration = Duration::from_secs(2);
const RELEASES: &str = "targets/releases";

// === the environment of one test ===

/// One test's peers: a notary server and a client that signs, two upstream registries, and the
/// proxy in front of them. Fields drop in order: the proxy first.
struct Env {
    proxy: Option<Proxy>,
    registry: Option<Registry>,
    other: Registry,
    cli: NotaryCli,
    notary: Option<NotaryServer>,
    /// The cache directory, outside the proxy's own tempdir so that a restart keeps it.
    cache: tempfile::TempDir,
    /// GUNs already initialised on the notary server.
    initialised: Mutex<HashSet<String>>,
    /// The proxy's configuration after `server` and `cache`.
    body: String,
}

impl Env {
    fn start() -> Env {
        let notary = NotaryServer::start();
        let cli = NotaryCli::for_server(&notary);
        let registry = Registry::start();
        let other = Registry::start();
        let cache = tempfile::tempdir().expect("tempdir for the cache");
        let mut env = Env {
            proxy: None,
            registry: Some(registry),
            other,
            cli,
            notary: Some(notary),
            cache,
            initialised: Mutex::new(HashSet::new()),
            body: String::new(),
        };
        env.body = env.config_body();
        env.proxy = Some(Proxy::start_with_cache(&env.body, env.cache.path()));
        env
    }

    /// The configuration after `server` and `cache`: the one the task describes.
    fn config_body(&self) -> String {
        format!(
            r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
  - {{registry: "{OTHER}", url: "{}"}}
notary_servers:
  - {{name: local, url: "{}", ttl: {}s}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/signed/**", action: verify, notary: local}}
    - {{match: "{REGISTRY}/audited/**", action: audit, notary: local}}
    - {{match: "{REGISTRY}/open/**", action: allow}}
    - {{match: "{REGISTRY}/blocked/**", action: deny}}
    - {{match: "{OTHER}/**", action: verify, notary: local, signers: [alice]}}
"#,
            self.registry().url(),
            self.other.url(),
            self.notary.as_ref().expect("notary server running").url(),
            TTL.as_secs(),
        )
    }

    fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("proxy running")
    }

    /// The default upstream.
    fn registry(&self) -> &Registry {
        self.registry.as_ref().expect("default upstream running")
    }

    /// Kills the notary server (the client keeps its keys).
    fn stop_notary(&mut self) {
        self.notary = None;
    }

    /// Kills the default upstream registry.
    fn stop_registry(&mut self) {
        self.registry = None;
    }

    /// Kills the proxy and starts a fresh instance on the same configuration and cache: a
    /// replica that never saw any request.
    fn restart_proxy(&mut self) {
        self.proxy = None;
        self.proxy = Some(Proxy::start_with_cache(&self.body, self.cache.path()));
    }

    fn init(&self, gun: &str) {
        let mut done = self.initialised.lock().unwrap();
        if done.insert(gun.to_string()) {
            self.cli.init(gun);
        }
    }

    /// Signs `tag` of `gun` as the exact bytes of `manifest`, in `roles` (`targets` if empty).
    fn sign_roles(&self, gun: &str, tag: &str, manifest: &Blob, roles: &[&str]) {
        self.init(gun);
        self.cli
            .addhash(gun, tag, manifest.size(), manifest.hex(), roles);
    }

    /// Signs `<REGISTRY>/<repo>:<tag>` in `targets`.
    fn sign(&self, repo: &str, tag: &str, manifest: &Blob) {
        self.sign_roles(&gun(repo), tag, manifest, &[]);
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.proxy()
            .request("GET", path, &[("Accept", ACCEPT_ALL)], b"")
    }

    fn head(&self, path: &str) -> HttpResponse {
        self.proxy()
            .request("HEAD", path, &[("Accept", ACCEPT_ALL)], b"")
    }

    /// Panics with `message` and the end of the proxy's log.
    fn fail(&self, message: String) -> ! {
        let log = self
            .proxy
            .as_ref()
            .map(|p| p.log_tail(40))
            .unwrap_or_default();
        panic!("{message}\n--- trustgate log (last lines) ---\n{log}");
    }

    fn ensure(&self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.fail(message());
        }
    }
}

fn gun(repo: &str) -> String {
    format!("{REGISTRY}/{repo}")
}

fn manifest_path(repo: &str, reference: &str) -> String {
    format!("/v2/{repo}/manifests/{reference}")
}

fn blob_path(repo: &str, digest: &str) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

// === assertions ===

/// A manifest response: status, headers and (for GET) the exact bytes of `blob`.
fn expect_manifest(
    env: &Env,
    r: &HttpResponse,
    what: &str,
    blob: &Blob,
    media_type: &str,
    head: bool,
) {
    env.ensure(r.status == 200, || {
        format!("{what}: want 200, got {}", r.summary())
    });
    env.ensure(r.header("content-type") == Some(media_type), || {
        format!(
            "{what}: want Content-Type {media_type}, got {}",
            r.summary()
        )
    });
    env.ensure(
        r.header("docker-content-digest") == Some(blob.digest.as_str()),
        || {
            format!(
                "{what}: want Docker-Content-Digest {}, got {}",
                blob.digest,
                r.summary()
            )
        },
    );
    let length = blob.size().to_string();
    env.ensure(r.header("content-length") == Some(length.as_str()), || {
        format!("{what}: want Content-Length {length}, got {}", r.summary())
    });
    env.ensure(
        r.header("docker-distribution-api-version") == Some("registry/2.0"),
        || {
            format!(
                "{what}: no Docker-Distribution-API-Version: {:?}",
                r.headers
            )
        },
    );
    if head {
        env.ensure(r.body.is_empty(), || {
            format!("{what}: HEAD response has a body: {}", r.summary())
        });
    } else {
        env.ensure(r.body == blob.bytes, || {
            format!(
                "{what}: body is not the signed manifest (got {} = {} bytes, want {})",
                oci::sha256_digest(&r.body),
                r.body.len(),
                blob.digest
            )
        });
    }
}

/// A blob response: status, length, digest and (for GET) the exact bytes.
fn expect_blob(env: &Env, r: &HttpResponse, what: &str, blob: &Blob, head: bool) {
    env.ensure(r.status == 200, || {
        format!("{what}: want 200, got {}", r.summary())
    });
    let length = blob.size().to_string();
    env.ensure(r.header("content-length") == Some(length.as_str()), || {
        format!("{what}: want Content-Length {length}, got {}", r.summary())
    });
    env.ensure(
        r.header("docker-content-digest") == Some(blob.digest.as_str()),
        || {
            format!(
                "{what}: want Docker-Content-Digest {}, got {}",
                blob.digest,
                r.summary()
            )
        },
    );
    if head {
        env.ensure(r.body.is_empty(), || {
            format!("{what}: HEAD response has a body: {}", r.summary())
        });
    } else {
        env.ensure(r.body == blob.bytes, || {
            format!(
                "{what}: body differs from the blob (got {} = {} bytes, want {})",
                oci::sha256_digest(&r.body),
                r.body.len(),
                blob.digest
            )
        });
    }
}

/// A refusal: 403 and, for GET, `{"errors":[{"code":"DENIED","message":...}]}`. Returns the
/// message (empty for HEAD).
fn expect_denied(env: &Env, r: &HttpResponse, what: &str, head: bool) -> String {
    env.ensure(r.status == 403, || {
        format!("{what}: want 403 DENIED, got {}", r.summary())
    });
    if head {
        env.ensure(r.body.is_empty(), || {
            format!("{what}: HEAD refusal has a body: {}", r.summary())
        });
        return String::new();
    }
    env.ensure(r.header("content-type") == Some("application/json"), || {
        format!("{what}: refusal is not JSON: {}", r.summary())
    });
    env.ensure(r.error_code().as_deref() == Some("DENIED"), || {
        format!("{what}: want error code DENIED, got {}", r.summary())
    });
    let message = r.error_message().unwrap_or_default();
    env.ensure(!message.trim().is_empty(), || {
        format!("{what}: refusal without a message: {}", r.summary())
    });
    message
}

/// GET and HEAD of `path` are both refused; returns the GET message.
fn expect_denied_both(env: &Env, path: &str, what: &str) -> String {
    let message = expect_denied(env, &env.get(path), &format!("GET {what}"), false);
    expect_denied(env, &env.head(path), &format!("HEAD {what}"), true);
    message
}

/// Waits until `series` on the admin `/metrics` is at least `min`.
fn wait_for_metric(env: &Env, series: &str, min: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = env.proxy().metrics();
        let value = metric_value(&text, series);
        if value.is_some_and(|v| v >= min) {
            return value.unwrap_or_default();
        }
        if Instant::now() >= deadline {
            let related: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(series.split('{').next().unwrap_or(series)))
                .collect();
            env.fail(format!(
                "metric {series} did not reach {min} within 10s; got {value:?}; series:\n{}",
                related.join("\n")
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `skopeo copy` through the proxy into a `dir:` layout.
fn skopeo_pull(env: &Env, image: &str, out: &Path) -> Output {
    oci::skopeo_pull(&env.proxy().host_port(), image, out)
}

fn expect_skopeo_pull(env: &Env, image: &str, out: &Path, manifest: &Blob, blobs: &[&Blob]) {
    let pulled = skopeo_pull(env, image, out);
    env.ensure(pulled.status.success(), || {
        format!(
            "skopeo copy of {image} through the proxy failed:\n{}",
            String::from_utf8_lossy(&pulled.stderr)
        )
    });
    let got = std::fs::read(out.join("manifest.json")).unwrap_or_default();
    env.ensure(got == manifest.bytes, || {
        format!(
            "skopeo got manifest {} for {image}, want {}",
            oci::sha256_digest(&got),
            manifest.digest
        )
    });
    for blob in blobs {
        let got = std::fs::read(out.join(blob.hex())).unwrap_or_default();
        env.ensure(got == blob.bytes, || {
            format!(
                "skopeo got {} bytes (digest {}) for blob {} of {image}",
                got.len(),
                oci::sha256_digest(&got),
                blob.digest
            )
        });
    }
}

fn expect_skopeo_refused(env: &Env, image: &str) {
    let out = tempfile::tempdir().unwrap();
    let pulled = skopeo_pull(env, image, &out.path().join("img"));
    let stderr = String::from_utf8_lossy(&pulled.stderr);
    env.ensure(!pulled.status.success(), || {
        format!("skopeo copy of {image} through the proxy succeeded; it must be refused")
    });
    env.ensure(stderr.to_lowercase().contains("denied"), || {
        format!("skopeo copy of {image} failed, but not with the proxy's refusal:\n{stderr}")
    });
    let copied_layers = std::fs::read_dir(out.path().join("img"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().len() == 64)
                .count()
        })
        .unwrap_or(0);
    env.ensure(copied_layers == 0, || {
        format!("refused skopeo copy of {image} still wrote {copied_layers} blobs")
    });
}

/// A GET straight to an upstream registry (bypassing the proxy).
fn upstream_get(registry: &Registry, path: &str) -> HttpResponse {
    let url = format!("{}{path}", registry.url());
    http::request("GET", &url, &[("Accept", ACCEPT_ALL)], b"")
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

// === signed and unsigned ===

#[test]
fn signed_pull_serves_exact_bytes_and_headers() {
    let env = Env::start();
    let base = env.get("/v2/");
    env.ensure(base.status == 200, || {
        format!("GET /v2/: {}", base.summary())
    });
    env.ensure(
        base.header("docker-distribution-api-version") == Some("registry/2.0"),
        || format!("GET /v2/ headers: {:?}", base.headers),
    );

    // An OCI image with a layer of several MiB (many chunks through the stream checks), and a
    // Docker schema 2 image.
    let images = [
        (
            "signed/app",
            Image::random_sized(Format::Oci, &[3 << 20, 1500]),
        ),
        (
            "signed/app-docker",
            Image::random_sized(Format::Docker, &[2000, 700]),
        ),
    ];
    for (repo, image) in &images {
        image.push(env.registry(), repo, "v1");
        env.sign(repo, "v1", &image.manifest);
    }
    for (repo, image) in &images {
        // HEAD first: the first request for this image must not need an earlier GET.
        let tag = manifest_path(repo, "v1");
        let by_digest = manifest_path(repo, &image.manifest.digest);
        for (path, what) in [
            (&tag, "manifest by tag"),
            (&by_digest, "manifest by digest"),
        ] {
            let what = format!("{what} of {repo}");
            let media_type = image.media_type.as_str();
            expect_manifest(
                &env,
                &env.head(path),
                &format!("HEAD {what}"),
                &image.manifest,
                media_type,
                true,
            );
            expect_manifest(
                &env,
                &env.get(path),
                &format!("GET {what}"),
                &image.manifest,
                media_type,
                false,
            );
        }
        for blob in image.blobs() {
            let path = blob_path(repo, &blob.digest);
            let what = format!("blob {} of {repo}", blob.digest);
            expect_blob(&env, &env.head(&path), &format!("HEAD {what}"), blob, true);
            expect_blob(&env, &env.get(&path), &format!("GET {what}"), blob, false);
            // Again, now from the cache.
            expect_blob(
                &env,
                &env.get(&path),
                &format!("GET {what} (cached)"),
                blob,
                false,
            );
        }
    }

    // skopeo pulls both, from the (now warm) cache.
    let (repo, image) = &images[0];
    let out = tempfile::tempdir().unwrap();
    expect_skopeo_pull(
        &env,
        &format!("{repo}:v1"),
        &out.path().join("warm"),
        &image.manifest,
        &image.blobs(),
    );
    let (repo, image) = &images[1];
    expect_skopeo_pull(
        &env,
        &format!("{repo}:v1"),
        &out.path().join("docker"),
        &image.manifest,
        &image.blobs(),
    );
    wait_for_metric(
        &env,
        r#"trustgate_decisions_total{action="verify",result="verified"}"#,
        1.0,
    );
}

#[test]
fn unsigned_images_are_refused_everywhere() {
    let env = Env::start();
    // A repository with no trust data at all.
    let nodata = Image::random(1);
    nodata.push(env.registry(), "signed/nodata", "v1");
    // A repository whose trust data signs v1 but not v2.
    let signed = Image::random(1);
    signed.push(env.registry(), "signed/partial", "v1");
    env.sign("signed/partial", "v1", &signed.manifest);
    let unsigned = Image::random(2);
    unsigned.push(env.registry(), "signed/partial", "v2");

    for (repo, tag, image) in [
        ("signed/nodata", "v1", &nodata),
        ("signed/partial", "v2", &unsigned),
    ] {
        let message = expect_denied_both(&env, &manifest_path(repo, tag), &format!("{repo}:{tag}"));
        env.ensure(message.contains(&gun(repo)) && message.contains("not signed"), || {
            format!("refusal of {repo}:{tag} should name the image and say it is not signed: {message:?}")
        });
        expect_denied_both(
            &env,
            &manifest_path(repo, &image.manifest.digest),
            &format!("{repo}@{}", image.manifest.digest),
        );
        for blob in image.blobs() {
            expect_denied_both(
                &env,
                &blob_path(repo, &blob.digest),
                &format!("blob {} of {repo}", blob.digest),
            );
        }
        expect_skopeo_refused(&env, &format!("{repo}:{tag}"));
    }

    // The signed tag next to them is still served.
    expect_manifest(
        &env,
        &env.get(&manifest_path("signed/partial", "v1")),
        "GET signed/partial:v1",
        &signed.manifest,
        OCI_MANIFEST,
        false,
    );
    // Each refusal is logged with the image, the rule and the reason, and counted.
    let log = env.proxy().log();
    env.ensure(
        log.lines().any(|l| {
            l.contains("refused")
                && l.contains(&gun("signed/partial"))
                && l.contains("registry.test/signed/**")
                && l.contains("not signed")
        }),
        || "no refusal log line naming image, rule and reason".to_string(),
    );
    wait_for_metric(
        &env,
        r#"trustgate_decisions_total{action="verify",result="unsigned"}"#,
        1.0,
    );
}

#[test]
fn tag_moved_upstream_after_signing_serves_the_signed_digest() {
    let env = Env::start();
    let repo = "signed/moved";
    let signed = Image::random(1);
    signed.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &signed.manifest);
    // Someone pushes new content to the same tag after it was signed.
    let moved = Image::random(1);
    moved.push(env.registry(), repo, "v1");
    let upstream = upstream_get(env.registry(), &manifest_path(repo, "v1"));
    assert_eq!(
        upstream.header("docker-content-digest"),
        Some(moved.manifest.digest.as_str()),
        "the upstream tag should have moved"
    );

    // HEAD first (what containerd sends before anything else), then GET.
    let tag = manifest_path(repo, "v1");
    expect_manifest(
        &env,
        &env.head(&tag),
        "HEAD moved tag",
        &signed.manifest,
        OCI_MANIFEST,
        true,
    );
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET moved tag",
        &signed.manifest,
        OCI_MANIFEST,
        false,
    );
    expect_denied_both(
        &env,
        &manifest_path(repo, &moved.manifest.digest),
        "the new, unsigned manifest by digest",
    );
    for blob in moved.blobs() {
        expect_denied_both(
            &env,
            &blob_path(repo, &blob.digest),
            "a blob of the new manifest",
        );
    }
    let out = tempfile::tempdir().unwrap();
    expect_skopeo_pull(
        &env,
        &format!("{repo}:v1"),
        &out.path().join("img"),
        &signed.manifest,
        &signed.blobs(),
    );
}

#[test]
fn revoked_tag_is_refused_once_ttl_passed() {
    let env = Env::start();
    let repo = "signed/revoked";
    let image = Image::random(1);
    image.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &image.manifest);
    let kept = Image::random(1);
    kept.push(env.registry(), repo, "v2");
    env.sign(repo, "v2", &kept.manifest);

    let tag = manifest_path(repo, "v1");
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET v1 before revocation",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );
    // `docker trust revoke`.
    env.cli.remove(&gun(repo), "v1", &[]);
    thread::sleep(TTL + Duration::from_millis(700));

    let message = expect_denied_both(&env, &tag, "revoked tag");
    env.ensure(message.contains("revoked"), || {
        format!("refusal of a revoked tag should say so: {message:?}")
    });
    expect_denied_both(
        &env,
        &manifest_path(repo, &image.manifest.digest),
        "revoked manifest by digest",
    );
    for blob in image.blobs() {
        expect_denied_both(
            &env,
            &blob_path(repo, &blob.digest),
            "blob of the revoked manifest",
        );
    }
    expect_manifest(
        &env,
        &env.get(&manifest_path(repo, "v2")),
        "GET v2 (still signed)",
        &kept.manifest,
        OCI_MANIFEST,
        false,
    );
    wait_for_metric(
        &env,
        r#"trustgate_verifications_total{result="revoked"}"#,
        1.0,
    );
}

#[test]
fn signed_content_copied_into_another_repository_is_refused() {
    let env = Env::start();
    let image = Image::random(2);
    image.push(env.registry(), "signed/origin", "v1");
    env.sign("signed/origin", "v1", &image.manifest);
    // The same bytes in a second repository: one with trust data of its own, one without.
    image.push(env.registry(), "signed/copy", "v1");
    let own = Image::random(1);
    own.push(env.registry(), "signed/copy", "v2");
    env.sign("signed/copy", "v2", &own.manifest);
    image.push(env.registry(), "signed/copy-nodata", "v1");

    // Pull from the signed repository first, so everything is in the proxy's cache.
    expect_manifest(
        &env,
        &env.get(&manifest_path("signed/origin", "v1")),
        "GET signed/origin:v1",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );
    for blob in image.blobs() {
        expect_blob(
            &env,
            &env.get(&blob_path("signed/origin", &blob.digest)),
            "GET blob of signed/origin",
            blob,
            false,
        );
    }

    for repo in ["signed/copy", "signed/copy-nodata"] {
        expect_denied_both(&env, &manifest_path(repo, "v1"), &format!("{repo}:v1"));
        expect_denied_both(
            &env,
            &manifest_path(repo, &image.manifest.digest),
            &format!("{repo}@<digest signed in signed/origin>"),
        );
        for blob in image.blobs() {
            expect_denied_both(
                &env,
                &blob_path(repo, &blob.digest),
                &format!("{repo} blob signed only in signed/origin"),
            );
        }
        expect_skopeo_refused(&env, &format!("{repo}:v1"));
    }
    expect_manifest(
        &env,
        &env.get(&manifest_path("signed/copy", "v2")),
        "GET signed/copy:v2 (its own signed tag)",
        &own.manifest,
        OCI_MANIFEST,
        false,
    );
}

// === policy actions ===

#[test]
fn audit_allow_deny_and_default_rules() {
    let env = Env::start();
    let image = Image::random(1);
    for repo in ["audited/app", "open/app", "blocked/app", "elsewhere/app"] {
        image.push(env.registry(), repo, "v1");
    }

    // audit: unsigned, served as upstream has it, and recorded.
    let audit_before = env
        .proxy()
        .metric(r#"trustgate_decisions_total{action="audit",result="unsigned"}"#);
    for repo in ["audited/app", "open/app"] {
        let tag = manifest_path(repo, "v1");
        expect_manifest(
            &env,
            &env.get(&tag),
            &format!("GET {repo}:v1"),
            &image.manifest,
            OCI_MANIFEST,
            false,
        );
        expect_manifest(
            &env,
            &env.head(&tag),
            &format!("HEAD {repo}:v1"),
            &image.manifest,
            OCI_MANIFEST,
            true,
        );
        expect_manifest(
            &env,
            &env.get(&manifest_path(repo, &image.manifest.digest)),
            &format!("GET {repo} by digest"),
            &image.manifest,
            OCI_MANIFEST,
            false,
        );
        for blob in image.blobs() {
            expect_blob(
                &env,
                &env.get(&blob_path(repo, &blob.digest)),
                &format!("GET blob of {repo}"),
                blob,
                false,
            );
        }
        let out = tempfile::tempdir().unwrap();
        expect_skopeo_pull(
            &env,
            &format!("{repo}:v1"),
            &out.path().join("img"),
            &image.manifest,
            &image.blobs(),
        );
    }
    let audited = wait_for_metric(
        &env,
        r#"trustgate_decisions_total{action="audit",result="unsigned"}"#,
        audit_before.unwrap_or(0.0) + 1.0,
    );
    assert!(audited >= 1.0);
    wait_for_metric(
        &env,
        r#"trustgate_decisions_total{action="allow",result="none"}"#,
        1.0,
    );
    env.ensure(
        env.proxy()
            .log()
            .contains("audit: verify would have refused"),
        || "no audit log line for the unsigned image".to_string(),
    );

    // audit of a signed tag records verified; of a tag moved after signing, serves what the
    // upstream has (audit enforces nothing), records that as a mismatch, and says that verify
    // would serve the signed original (not that it would refuse).
    let signed = Image::random(1);
    signed.push(env.registry(), "audited/signed", "v1");
    env.sign("audited/signed", "v1", &signed.manifest);
    let moved = Image::random(1);
    signed.push(env.registry(), "audited/moved", "v1");
    env.sign("audited/moved", "v1", &signed.manifest);
    moved.push(env.registry(), "audited/moved", "v1");
    for (repo, served, result) in [
        ("audited/signed", &signed, "verified"),
        ("audited/moved", &moved, "mismatch"),
    ] {
        expect_manifest(
            &env,
            &env.get(&manifest_path(repo, "v1")),
            &format!("GET {repo}:v1 under audit"),
            &served.manifest,
            OCI_MANIFEST,
            false,
        );
        wait_for_metric(
            &env,
            &format!(r#"trustgate_decisions_total{{action="audit",result="{result}"}}"#),
            1.0,
        );
    }
    // The metric comes after the log line, so the line is there.
    let would = format!("verify would serve the signed {}", signed.manifest.digest);
    env.ensure(env.proxy().log().contains(&would), || {
        format!("no audit line {would:?} for the moved tag")
    });

    // deny, and the default for a repository no rule matches.
    for (repo, words) in [
        ("blocked/app", "denied by policy"),
        ("elsewhere/app", "default"),
    ] {
        let message = expect_denied_both(&env, &manifest_path(repo, "v1"), &format!("{repo}:v1"));
        env.ensure(
            message.contains(&gun(repo)) && message.contains(words),
            || format!("refusal of {repo} should name the image and say {words:?}: {message:?}"),
        );
        expect_denied_both(
            &env,
            &manifest_path(repo, &image.manifest.digest),
            &format!("{repo} by digest"),
        );
        for blob in image.blobs() {
            expect_denied_both(
                &env,
                &blob_path(repo, &blob.digest),
                &format!("blob of {repo}"),
            );
        }
        let tags = env.get(&format!("/v2/{repo}/tags/list"));
        expect_denied(&env, &tags, &format!("tags/list of {repo}"), false);
        expect_skopeo_refused(&env, &format!("{repo}:v1"));
    }
    wait_for_metric(
        &env,
        r#"trustgate_decisions_total{action="deny",result="none"}"#,
        1.0,
    );
}

#[test]
fn ns_selects_the_second_registry_and_its_rule() {
    let env = Env::start();
    let keys = tempfile::tempdir().unwrap();
    let repo = "team/app";
    let other_gun = format!("{OTHER}/{repo}");
    env.init(&other_gun);
    // `docker trust signer add alice`: her key in targets/releases and targets/alice.
    let alice = Signer::generate(keys.path(), "alice", KeyKind::P256);
    env.cli
        .delegation_add(&other_gun, RELEASES, &alice.cert_path);
    env.cli
        .delegation_add(&other_gun, "targets/alice", &alice.cert_path);
    env.cli.key_import(&alice.key_path, RELEASES);
    env.cli.key_import(&alice.key_path, "targets/alice");

    let by_alice = Image::random(1);
    by_alice.push(&env.other, repo, "v1");
    env.sign_roles(
        &other_gun,
        "v1",
        &by_alice.manifest,
        &[RELEASES, "targets/alice"],
    );
    let targets_only = Image::random(1);
    targets_only.push(&env.other, repo, "v2");
    env.sign_roles(&other_gun, "v2", &targets_only.manifest, &[]);
    let releases_only = Image::random(1);
    releases_only.push(&env.other, repo, "v3");
    env.sign_roles(&other_gun, "v3", &releases_only.manifest, &[RELEASES]);
    // The same repository name on the default registry holds something else, unsigned.
    let default_image = Image::random(1);
    default_image.push(env.registry(), repo, "v1");

    let ns = format!("?ns={OTHER}");
    let tag = format!("{}{ns}", manifest_path(repo, "v1"));
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET v1 ?ns=other.test",
        &by_alice.manifest,
        OCI_MANIFEST,
        false,
    );
    expect_manifest(
        &env,
        &env.head(&tag),
        "HEAD v1 ?ns=other.test",
        &by_alice.manifest,
        OCI_MANIFEST,
        true,
    );
    for blob in by_alice.blobs() {
        expect_blob(
            &env,
            &env.get(&format!("{}{ns}", blob_path(repo, &blob.digest))),
            "GET blob ?ns=other.test",
            blob,
            false,
        );
    }
    // Without ns, the default registry and its policy (no rule: default deny).
    let message = expect_denied_both(&env, &manifest_path(repo, "v1"), "team/app:v1 without ns");
    env.ensure(message.contains(&gun(repo)), || {
        format!("refusal without ns should name {}: {message:?}", gun(repo))
    });
    // Naming the default registry explicitly is the same as naming none.
    let explicit = format!("?ns={REGISTRY}");
    expect_denied_both(
        &env,
        &format!("{}{explicit}", manifest_path(repo, "v1")),
        "team/app:v1 ?ns=registry.test",
    );
    let on_default = Image::random(1);
    on_default.push(env.registry(), "signed/ns", "v1");
    env.sign("signed/ns", "v1", &on_default.manifest);
    expect_manifest(
        &env,
        &env.get(&format!("{}{explicit}", manifest_path("signed/ns", "v1"))),
        "GET signed/ns:v1 ?ns=registry.test",
        &on_default.manifest,
        OCI_MANIFEST,
        false,
    );
    // Signed, but not by the required signer alice.
    for (tag, image) in [("v2", &targets_only), ("v3", &releases_only)] {
        let message = expect_denied_both(
            &env,
            &format!("{}{ns}", manifest_path(repo, tag)),
            &format!("{tag} signed without alice"),
        );
        env.ensure(message.contains("alice"), || {
            format!("refusal of {tag} should name the missing signer alice: {message:?}")
        });
        expect_denied_both(
            &env,
            &format!("{}{ns}", manifest_path(repo, &image.manifest.digest)),
            &format!("{tag} by digest, signed without alice"),
        );
    }
    let tags = env.get(&format!("/v2/{repo}/tags/list{ns}"));
    env.ensure(
        tags.status == 200 && tags.json() == serde_json::json!({"name": repo, "tags": ["v1"]}),
        || {
            format!(
                "tags/list ?ns=other.test should list only v1: {}",
                tags.summary()
            )
        },
    );
    // An ns this mirror does not proxy.
    let unknown = env.get(&format!("{}?ns=unknown.test", manifest_path(repo, "v1")));
    env.ensure(
        unknown.status == 404 && unknown.error_code().as_deref() == Some("NAME_UNKNOWN"),
        || {
            format!(
                "?ns=unknown.test: want 404 NAME_UNKNOWN, got {}",
                unknown.summary()
            )
        },
    );
}

#[test]
fn tags_list_under_verify_lists_only_signed_tags() {
    let env = Env::start();
    let repo = "signed/tags";
    let image = Image::random(1);
    for tag in ["a1", "b2", "c3", "dev", "zz-unsigned"] {
        image.push(env.registry(), repo, tag);
    }
    for tag in ["a1", "b2", "c3"] {
        env.sign(repo, tag, &image.manifest);
    }
    let upstream = upstream_get(env.registry(), &format!("/v2/{repo}/tags/list"));
    assert_eq!(
        upstream.json()["tags"].as_array().map(Vec::len),
        Some(5),
        "{}",
        upstream.summary()
    );

    let list = |query: &str| {
        let r = env.get(&format!("/v2/{repo}/tags/list{query}"));
        env.ensure(r.status == 200, || {
            format!("tags/list{query}: {}", r.summary())
        });
        env.ensure(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            || {
                format!(
                    "tags/list{query}: content type {:?}",
                    r.header("content-type")
                )
            },
        );
        env.ensure(r.json()["name"] == repo, || {
            format!("tags/list{query}: name: {}", r.summary())
        });
        let tags: Vec<String> = r.json()["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        (tags, r.header("link").map(String::from))
    };
    let (all, link) = list("");
    assert_eq!(all, ["a1", "b2", "c3"], "only signed tags");
    assert_eq!(link, None);
    let (page, link) = list("?n=2");
    assert_eq!(page, ["a1", "b2"], "first page of 2");
    let link = link.unwrap_or_else(|| env.fail("no Link header on a truncated page".into()));
    env.ensure(
        link.contains(&format!("/v2/{repo}/tags/list?"))
            && link.contains("last=b2")
            && link.contains("rel=\"next\""),
        || format!("Link header should point at the next page after b2: {link:?}"),
    );
    let (page, link) = list("?n=2&last=b2");
    assert_eq!(page, ["c3"], "second page");
    assert_eq!(link, None, "no Link on the last page");
    let (page, _) = list("?last=a1");
    assert_eq!(page, ["b2", "c3"], "after a1");

    // A repository under verify with no trust data has no tags to list.
    image.push(env.registry(), "signed/tags-nodata", "v1");
    expect_denied(
        &env,
        &env.get("/v2/signed/tags-nodata/tags/list"),
        "tags/list without trust data",
        false,
    );
}

// === writes ===

/// Every write method, on manifests, blobs and uploads, against a verify and an allow rule.
fn write_requests(
    repo: &str,
    image: &Image,
    new_blob: &Blob,
) -> Vec<(&'static str, String, Vec<u8>)> {
    vec![
        (
            "PUT",
            manifest_path(repo, "pushed"),
            image.manifest.bytes.clone(),
        ),
        (
            "PUT",
            manifest_path(repo, &image.manifest.digest),
            image.manifest.bytes.clone(),
        ),
        (
            "DELETE",
            manifest_path(repo, &image.manifest.digest),
            Vec::new(),
        ),
        ("DELETE", manifest_path(repo, "v1"), Vec::new()),
        (
            "DELETE",
            blob_path(repo, &image.layers[0].digest),
            Vec::new(),
        ),
        ("POST", format!("/v2/{repo}/blobs/uploads/"), Vec::new()),
        (
            "POST",
            format!("/v2/{repo}/blobs/uploads/?digest={}", new_blob.digest),
            new_blob.bytes.clone(),
        ),
        (
            "POST",
            format!(
                "/v2/{repo}/blobs/uploads/?mount={}&from=signed/app",
                image.layers[0].digest
            ),
            Vec::new(),
        ),
        (
            "PATCH",
            format!("/v2/{repo}/blobs/uploads/3f1c2a44-upload"),
            new_blob.bytes.clone(),
        ),
        (
            "PUT",
            format!(
                "/v2/{repo}/blobs/uploads/3f1c2a44-upload?digest={}",
                new_blob.digest
            ),
            new_blob.bytes.clone(),
        ),
        ("POST", "/v2/".to_string(), Vec::new()),
    ]
}

#[test]
fn writes_are_refused_and_never_reach_the_upstream() {
    let env = Env::start();
    let image = Image::random(1);
    let new_blob = Blob::new(oci::random_bytes(4096));
    for repo in ["signed/w", "open/w"] {
        image.push(env.registry(), repo, "v1");
    }
    env.sign("signed/w", "v1", &image.manifest);

    for repo in ["signed/w", "open/w"] {
        for (method, path, body) in write_requests(repo, &image, &new_blob) {
            let content_type = if path.contains("/manifests/") {
                OCI_MANIFEST
            } else {
                "application/octet-stream"
            };
            let r = env
                .proxy()
                .request(method, &path, &[("Content-Type", content_type)], &body);
            env.ensure(
                r.status == 405 && r.error_code().as_deref() == Some("UNSUPPORTED"),
                || format!("{method} {path}: want 405 UNSUPPORTED, got {}", r.summary()),
            );
        }
        // The upstream is as the push left it.
        let registry = env.registry();
        let tags = upstream_get(registry, &format!("/v2/{repo}/tags/list"));
        assert_eq!(
            tags.json(),
            serde_json::json!({"name": repo, "tags": ["v1"]}),
            "upstream tags of {repo}"
        );
        assert_eq!(
            upstream_get(registry, &manifest_path(repo, &image.manifest.digest)).status,
            200
        );
        assert_eq!(
            upstream_get(registry, &blob_path(repo, &image.layers[0].digest)).status,
            200
        );
        assert_eq!(
            upstream_get(registry, &blob_path(repo, &new_blob.digest)).status,
            404,
            "uploaded blob reached {repo}"
        );
        // And the proxy still serves it.
        expect_manifest(
            &env,
            &env.get(&manifest_path(repo, "v1")),
            &format!("GET {repo}:v1 after refused writes"),
            &image.manifest,
            OCI_MANIFEST,
            false,
        );
    }
}

/// RFC 9110 §15.5.6: a 405 response MUST carry `Allow`. trustgate's route parser knows the
/// value (`RouteError::allow`), but the response only sets it for non-write methods.
#[test]
fn write_refusals_carry_an_allow_header() {
    let env = Env::start();
    let image = Image::random(1);
    let new_blob = Blob::new(oci::random_bytes(512));
    for (method, path, body) in write_requests("open/w", &image, &new_blob) {
        let r = env.proxy().request(method, &path, &[], &body);
        env.ensure(
            r.status == 405 && r.header("allow") == Some("GET, HEAD"),
            || {
                format!(
                    "{method} {path}: want 405 with Allow: GET, HEAD, got {} headers {:?}",
                    r.summary(),
                    r.headers
                )
            },
        );
    }
}

// === multi-platform images ===

#[test]
fn multi_arch_index_signed_as_a_whole_serves_its_children() {
    let env = Env::start();
    let repo = "signed/multi";
    let index = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
    index.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &index.index);

    // First request of this instance: a blob of the arm64 child, by digest. The closure must be
    // derived from trust data and content alone.
    let arm = &index.children[1];
    expect_blob(
        &env,
        &env.get(&blob_path(repo, &arm.layers[0].digest)),
        "GET arm64 layer before any manifest request",
        &arm.layers[0],
        false,
    );

    let tag = manifest_path(repo, "v1");
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET index by tag",
        &index.index,
        OCI_INDEX,
        false,
    );
    expect_manifest(
        &env,
        &env.head(&tag),
        "HEAD index by tag",
        &index.index,
        OCI_INDEX,
        true,
    );
    for child in &index.children {
        let path = manifest_path(repo, &child.manifest.digest);
        let what = format!("{} child", child.architecture);
        expect_manifest(
            &env,
            &env.get(&path),
            &format!("GET {what}"),
            &child.manifest,
            OCI_MANIFEST,
            false,
        );
        expect_manifest(
            &env,
            &env.head(&path),
            &format!("HEAD {what}"),
            &child.manifest,
            OCI_MANIFEST,
            true,
        );
        for blob in child.blobs() {
            expect_blob(
                &env,
                &env.get(&blob_path(repo, &blob.digest)),
                &format!("GET blob of {what}"),
                blob,
                false,
            );
        }
    }
    // skopeo picks the amd64 child out of the index.
    let amd = &index.children[0];
    let out = tempfile::tempdir().unwrap();
    expect_skopeo_pull(
        &env,
        &format!("{repo}:v1"),
        &out.path().join("img"),
        &amd.manifest,
        &amd.blobs(),
    );

    // A manifest pushed on its own, and the children of an unsigned index: not in any signed
    // index, so refused, with their blobs.
    let loose = Image::random_for("linux", "amd64", 1);
    loose.push(env.registry(), repo, "loose");
    let unsigned = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
    unsigned.push(env.registry(), repo, "v2");
    expect_denied_both(
        &env,
        &manifest_path(repo, &loose.manifest.digest),
        "loose child manifest",
    );
    for blob in loose.blobs() {
        expect_denied_both(
            &env,
            &blob_path(repo, &blob.digest),
            "blob of the loose child",
        );
    }
    expect_denied_both(
        &env,
        &manifest_path(repo, &unsigned.index.digest),
        "unsigned index by digest",
    );
    expect_denied_both(&env, &manifest_path(repo, "v2"), "unsigned index by tag");
    for child in &unsigned.children {
        expect_denied_both(
            &env,
            &manifest_path(repo, &child.manifest.digest),
            "child of an unsigned index",
        );
        for blob in child.blobs() {
            expect_denied_both(
                &env,
                &blob_path(repo, &blob.digest),
                "blob of a child of an unsigned index",
            );
        }
    }
}

// === caching ===

#[test]
fn cached_content_is_served_while_the_upstream_is_down() {
    let mut env = Env::start();
    let repo = "signed/cached";
    let image = Image::random(2);
    image.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &image.manifest);
    let (config, cached_layer, uncached_layer) =
        (&image.config, &image.layers[0], &image.layers[1]);

    let tag = manifest_path(repo, "v1");
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET tag (fills the cache)",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );
    for blob in [config, cached_layer] {
        expect_blob(
            &env,
            &env.get(&blob_path(repo, &blob.digest)),
            "GET blob (fills the cache)",
            blob,
            false,
        );
    }

    env.stop_registry();
    // Trust data is fresh (and the notary server is up): upstream faults are not trust faults.
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET tag, upstream down",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );
    expect_manifest(
        &env,
        &env.head(&tag),
        "HEAD tag, upstream down",
        &image.manifest,
        OCI_MANIFEST,
        true,
    );
    for blob in [config, cached_layer] {
        let path = blob_path(repo, &blob.digest);
        expect_blob(
            &env,
            &env.get(&path),
            "GET cached blob, upstream down",
            blob,
            false,
        );
        expect_blob(
            &env,
            &env.head(&path),
            "HEAD cached blob, upstream down",
            blob,
            true,
        );
    }
    // A blob never fetched cannot be served, but that is an upstream error, not a refusal.
    let r = env.get(&blob_path(repo, &uncached_layer.digest));
    env.ensure(
        (500..600).contains(&r.status) && r.error_code().as_deref() != Some("DENIED"),
        || {
            format!(
                "uncached blob with the upstream down: want a 5xx upstream error, got {}",
                r.summary()
            )
        },
    );

    // A fresh instance on the same content store, after the trust data's ttl: it has never seen
    // the manifest, and the upstream is still down.
    env.restart_proxy();
    thread::sleep(TTL);
    expect_blob(
        &env,
        &env.get(&blob_path(repo, &cached_layer.digest)),
        "GET cached blob on a fresh instance, upstream down",
        cached_layer,
        false,
    );
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET tag on a fresh instance, upstream down",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );
}

/// ARCHITECTURE.md: "HEAD behaves exactly like GET minus the body". For a blob of a signed
/// image that is not in the cache and that the upstream cannot deliver (deleted there, or the
/// upstream is down), HEAD must not promise what GET then fails to deliver.
#[test]
fn head_agrees_with_get_for_blobs_not_in_the_cache() {
    let mut env = Env::start();
    let repo = "signed/headget";
    let image = Image::random(3);
    image.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &image.manifest);
    expect_manifest(
        &env,
        &env.get(&manifest_path(repo, "v1")),
        "GET tag",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );

    // Layer 0 deleted upstream (garbage collected, say).
    let gone = &image.layers[0];
    let url = format!("{}{}", env.registry().url(), blob_path(repo, &gone.digest));
    let deleted = http::request("DELETE", &url, &[], b"").unwrap();
    assert_eq!(deleted.status, 202, "DELETE {url}: {}", deleted.summary());
    assert_eq!(
        upstream_get(env.registry(), &blob_path(repo, &gone.digest)).status,
        404
    );
    let path = blob_path(repo, &gone.digest);
    let (get, head) = (env.get(&path), env.head(&path));
    env.ensure(get.status == head.status, || {
        format!(
            "blob deleted upstream: GET {} but HEAD {}",
            get.summary(),
            head.summary()
        )
    });

    // Layer 1 never fetched, and the upstream is down.
    env.stop_registry();
    let path = blob_path(repo, &image.layers[1].digest);
    let (get, head) = (env.get(&path), env.head(&path));
    env.ensure(get.status == head.status, || {
        format!(
            "uncached blob, upstream down: GET {} but HEAD {}",
            get.summary(),
            head.summary()
        )
    });
}

/// Every file under `dir` whose content is exactly `bytes`.
fn files_with_content(dir: &Path, bytes: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|b| b == bytes) {
                found.push(path);
            }
        }
    }
    found
}

/// No file in the cache holds `bytes`. The store proper never may; the temp file of the failed
/// fetch may outlive the aborted response briefly (it is removed as the fetch unwinds), but
/// must be gone within a few seconds.
fn expect_not_cached(env: &Env, bytes: &[u8], what: &str) {
    let tmp = env.cache.path().join("tmp");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = files_with_content(env.cache.path(), bytes);
        let stored: Vec<_> = found.iter().filter(|p| !p.starts_with(&tmp)).collect();
        env.ensure(stored.is_empty(), || {
            format!("{what} was stored in the cache: {stored:?}")
        });
        if found.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            env.fail(format!(
                "{what} is still in the cache's temp files after 5s: {found:?}"
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Same length, one byte changed: what a bit flip on the upstream's disk looks like.
fn corrupt(bytes: &[u8]) -> Vec<u8> {
    let mut bad = bytes.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 0x5a;
    bad
}

#[test]
fn mismatched_content_is_never_served_or_cached() {
    let env = Env::start();
    let repo = "signed/corrupt";
    // A layer of a few MiB, so that the bad bytes arrive over many chunks.
    let image = Image::random_sized(Format::Oci, &[2 << 20, 900]);
    image.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &image.manifest);
    let tag = manifest_path(repo, "v1");
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET tag",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );

    // A layer whose bytes changed on the upstream's disk: the digest no longer matches.
    let layer = &image.layers[0];
    let on_disk = env.registry().blob_path(layer.hex());
    let bad = corrupt(&layer.bytes);
    std::fs::write(&on_disk, &bad).unwrap();
    let url = format!("{}{}", env.proxy().url(), blob_path(repo, &layer.digest));
    for attempt in ["first", "second"] {
        // The response may start, but must end short (or fail): never a complete 200.
        match http::request("GET", &url, &[], b"") {
            Err(_) => {}
            Ok(r) => {
                let complete = r.status == 200
                    && r.header("content-length")
                        .and_then(|l| l.parse::<usize>().ok())
                        == Some(r.body.len())
                    && r.body.len() == bad.len();
                env.ensure(!complete, || {
                    format!(
                        "{attempt} GET of a corrupted blob completed: {}",
                        r.summary()
                    )
                });
            }
        }
    }
    expect_not_cached(&env, &bad, "the corrupted blob");
    let out = tempfile::tempdir().unwrap();
    let pulled = skopeo_pull(&env, &format!("{repo}:v1"), &out.path().join("img"));
    env.ensure(!pulled.status.success(), || {
        "skopeo copy succeeded although a layer is corrupted upstream".to_string()
    });
    // Once the upstream is repaired, the right bytes are served: nothing bad was kept.
    std::fs::write(&on_disk, &layer.bytes).unwrap();
    expect_blob(
        &env,
        &env.get(&blob_path(repo, &layer.digest)),
        "GET repaired blob",
        layer,
        false,
    );

    // A corrupted manifest, never fetched before: refused, not served.
    let second = Image::random(1);
    second.push(env.registry(), repo, "v2");
    env.sign(repo, "v2", &second.manifest);
    let bad_manifest = corrupt(&second.manifest.bytes);
    std::fs::write(
        env.registry().blob_path(second.manifest.hex()),
        &bad_manifest,
    )
    .unwrap();
    for path in [
        manifest_path(repo, "v2"),
        manifest_path(repo, &second.manifest.digest),
    ] {
        let r = env.get(&path);
        env.ensure(r.status != 200 && r.body != bad_manifest, || {
            format!(
                "GET {path} with a corrupted manifest upstream: {}",
                r.summary()
            )
        });
        env.ensure(
            r.error_code().as_deref() == Some("DENIED") || r.status >= 500,
            || {
                format!(
                    "GET {path} with a corrupted manifest upstream: want DENIED or 5xx, got {}",
                    r.summary()
                )
            },
        );
    }
    expect_not_cached(&env, &bad_manifest, "the corrupted manifest");

    // A signature whose length does not match the manifest's: refused as a mismatch.
    let third = Image::random(1);
    third.push(env.registry(), repo, "v3");
    env.sign_roles(
        &gun(repo),
        "v3",
        &Blob {
            digest: third.manifest.digest.clone(),
            bytes: third.manifest.bytes[1..].to_vec(),
        },
        &[],
    );
    expect_denied_both(
        &env,
        &manifest_path(repo, "v3"),
        "tag signed with the wrong length",
    );
    for blob in third.blobs() {
        expect_denied_both(
            &env,
            &blob_path(repo, &blob.digest),
            "blob under a wrong-length signature",
        );
    }
}

#[test]
fn trust_server_down_fails_closed_after_ttl() {
    let mut env = Env::start();
    let repo = "signed/trustdown";
    let image = Image::random(1);
    image.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &image.manifest);
    image.push(env.registry(), "audited/trustdown", "v1");
    image.push(env.registry(), "open/trustdown", "v1");

    let tag = manifest_path(repo, "v1");
    let fetched = Instant::now();
    expect_manifest(
        &env,
        &env.get(&tag),
        "GET tag",
        &image.manifest,
        OCI_MANIFEST,
        false,
    );
    for blob in image.blobs() {
        expect_blob(
            &env,
            &env.get(&blob_path(repo, &blob.digest)),
            "GET blob",
            blob,
            false,
        );
    }
    env.stop_notary();
    // Within ttl the cached trust data stands (checked only when the machine was quick enough
    // to still be inside the ttl).
    let r = env.get(&tag);
    if fetched.elapsed() < TTL - Duration::from_millis(300) {
        expect_manifest(
            &env,
            &r,
            "GET tag within ttl, notary down",
            &image.manifest,
            OCI_MANIFEST,
            false,
        );
    }

    // Every trust fetch so far happened before this point (the server is gone), so once the ttl
    // has passed from here, no cached trust data is fresh.
    thread::sleep(TTL + Duration::from_millis(500));
    // After ttl the trust data must be refreshed, and cannot be: refuse (stale_if_error is 0s),
    // although the content is in the cache.
    let message = expect_denied_both(&env, &tag, "tag after ttl, notary down");
    env.ensure(
        message.contains("local") || message.contains("notary"),
        || format!("refusal should name the unreachable trust server: {message:?}"),
    );
    expect_denied_both(
        &env,
        &manifest_path(repo, &image.manifest.digest),
        "by digest after ttl, notary down",
    );
    for blob in image.blobs() {
        expect_denied_both(
            &env,
            &blob_path(repo, &blob.digest),
            "cached blob after ttl, notary down",
        );
    }
    wait_for_metric(
        &env,
        r#"trustgate_verifications_total{result="trust_error"}"#,
        1.0,
    );
    // audit and allow do not depend on the trust server.
    for repo in ["audited/trustdown", "open/trustdown"] {
        expect_manifest(
            &env,
            &env.get(&manifest_path(repo, "v1")),
            &format!("GET {repo}:v1, notary down"),
            &image.manifest,
            OCI_MANIFEST,
            false,
        );
    }
    // A fresh instance with the content cached and persisted trust state still refuses.
    env.restart_proxy();
    expect_denied_both(&env, &tag, "tag on a fresh instance, notary down");
    expect_denied_both(
        &env,
        &blob_path(repo, &image.layers[0].digest),
        "cached blob on a fresh instance, notary down",
    );
}

/// The refusal log line carries the image, rule and reason as plain `key=value` fields, so
/// that `grep image=<gun>` finds it in a log file (stderr is not a terminal here).
#[test]
fn refusal_log_lines_are_plain_key_values() {
    let env = Env::start();
    let image = Image::random(1);
    image.push(env.registry(), "signed/logged", "v1");
    expect_denied(
        &env,
        &env.get(&manifest_path("signed/logged", "v1")),
        "unsigned tag",
        false,
    );
    let log = env.proxy().log();
    let line = log
        .lines()
        .find(|l| l.contains("refused") && l.contains("signed/logged"));
    let line = line.unwrap_or_else(|| env.fail("no refusal log line".to_string()));
    env.ensure(!line.contains('\u{1b}'), || {
        format!("log written to a file contains ANSI escape sequences: {line:?}")
    });
    let image_field = format!("image={}", gun("signed/logged"));
    env.ensure(
        line.contains(&image_field) && line.contains("rule=") && line.contains("reason="),
        || {
            format!(
                "refusal log line lacks plain {image_field}, rule= and reason= fields: {line:?}"
            )
        },
    );
}

// === real clients and the CLI ===

/// Removes the named images from the Docker engine on drop (pass or fail).
struct DockerImages(Vec<String>);

impl Drop for DockerImages {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("timeout")
                .args(["30", "docker", "rmi", "--force", name])
                .output();
        }
    }
}

fn docker(args: &[&str]) -> Output {
    support::run_bounded(Command::new("docker").args(args), b"", "docker.io")
}

#[test]
fn docker_pull_through_the_proxy() {
    if let Err(reason) = support::docker_available() {
        eprintln!("skipping docker_pull_through_the_proxy: no Docker engine: {reason}");
        return;
    }
    let env = Env::start();
    let repo = "signed/docker";
    let image = Image::random(2);
    image.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &image.manifest);
    let unsigned = Image::random(1);
    unsigned.push(env.registry(), repo, "v2");
    let index = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
    index.push(env.registry(), "signed/docker-multi", "v1");
    env.sign("signed/docker-multi", "v1", &index.index);

    let host = env.proxy().host_port();
    let signed_ref = format!("{host}/{repo}:v1");
    let unsigned_ref = format!("{host}/{repo}:v2");
    let index_ref = format!("{host}/signed/docker-multi:v1");
    let _cleanup = DockerImages(vec![
        signed_ref.clone(),
        unsigned_ref.clone(),
        index_ref.clone(),
    ]);

    let pulled = docker(&["pull", &signed_ref]);
    env.ensure(pulled.status.success(), || {
        format!(
            "docker pull {signed_ref} failed:\n{}{}",
            String::from_utf8_lossy(&pulled.stdout),
            String::from_utf8_lossy(&pulled.stderr)
        )
    });
    let inspect = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}} {{json .RootFS.Layers}}",
        &signed_ref,
    ]);
    let inspected = String::from_utf8_lossy(&inspect.stdout);
    env.ensure(
        inspect.status.success() && inspected.contains(&image.manifest.digest),
        || {
            format!(
                "docker image inspect should show the signed digest {}: {inspected}",
                image.manifest.digest
            )
        },
    );
    for layer in &image.layers {
        env.ensure(inspected.contains(&layer.digest), || {
            format!(
                "docker image inspect should list layer {}: {inspected}",
                layer.digest
            )
        });
    }

    // A signed multi-platform index: the engine picks its linux/amd64 child.
    let pulled = docker(&["pull", &index_ref]);
    env.ensure(pulled.status.success(), || {
        format!(
            "docker pull {index_ref} failed:\n{}{}",
            String::from_utf8_lossy(&pulled.stdout),
            String::from_utf8_lossy(&pulled.stderr)
        )
    });
    let inspect = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}} {{json .RootFS.Layers}}",
        &index_ref,
    ]);
    let inspected = String::from_utf8_lossy(&inspect.stdout);
    let amd = &index.children[0];
    env.ensure(
        inspect.status.success()
            && inspected.contains(&index.index.digest)
            && inspected.contains(&amd.layers[0].digest),
        || {
            format!(
                "docker image inspect {index_ref} should show index {} and amd64 layer {}: {inspected}",
                index.index.digest, amd.layers[0].digest
            )
        },
    );

    let refused = docker(&["pull", &unsigned_ref]);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    env.ensure(!refused.status.success(), || {
        format!("docker pull {unsigned_ref} succeeded; it must be refused:\n{output}")
    });
    env.ensure(
        output.to_lowercase().contains("denied") || output.contains("403"),
        || {
            format!(
                "docker pull {unsigned_ref} failed, but not with the proxy's refusal:\n{output}"
            )
        },
    );
    let listed = docker(&["image", "inspect", &unsigned_ref]);
    env.ensure(!listed.status.success(), || {
        format!("{unsigned_ref} is in the engine after a refused pull")
    });
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn check_reports_what_the_proxy_would_decide() {
    let env = Env::start();
    let repo = "signed/check";
    let image = Image::random(1);
    image.push(env.registry(), repo, "v1");
    env.sign(repo, "v1", &image.manifest);
    let config = env.proxy().config_path().to_str().unwrap().to_string();
    let check = |image_ref: &str| support::trustgate(["check", "--config", &config, image_ref]);

    let signed = check(&format!("{REGISTRY}/{repo}:v1"));
    let out = stdout_of(&signed);
    assert_eq!(
        signed.status.code(),
        Some(0),
        "check of a signed image:\n{out}{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert!(
        out.contains(&image.manifest.digest) && out.contains("allowed"),
        "check output should show the signed digest:\n{out}"
    );
    assert!(
        out.contains("registry.test/signed/**"),
        "check output should name the rule:\n{out}"
    );

    // The default registry is assumed without one; v2 is not signed.
    let unsigned = check(&format!("{repo}:v2"));
    let out = stdout_of(&unsigned);
    assert_eq!(
        unsigned.status.code(),
        Some(1),
        "check of an unsigned tag:\n{out}{}",
        String::from_utf8_lossy(&unsigned.stderr)
    );
    assert!(
        out.contains("refused") && out.contains("not signed"),
        "check output should say why:\n{out}"
    );

    let denied = check(&format!("{REGISTRY}/blocked/app:v1"));
    let out = stdout_of(&denied);
    assert_eq!(
        denied.status.code(),
        Some(1),
        "check of a denied image:\n{out}"
    );
    assert!(
        out.contains("denied"),
        "check output should say denied:\n{out}"
    );
}

#[test]
fn config_validate_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let env = Env::start();
    let config = env.proxy().config_path();
    let good = support::trustgate(["config", "validate", "--config", config.to_str().unwrap()]);
    assert_eq!(
        good.status.code(),
        Some(0),
        "validate of the running config:\n{}{}",
        stdout_of(&good),
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(stdout_of(&good).contains("ok"), "{}", stdout_of(&good));

    let text = std::fs::read_to_string(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An unknown key, inserted as line 7 (after `cache:`'s two keys).
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[5].trim_start().starts_with("max_size"),
        "unexpected config layout:\n{text}"
    );
    lines.insert(6, "  max_sise: 2GiB");
    let bad = dir.path().join("unknown-key.yaml");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let result = support::trustgate(["config", "validate", "--config", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(1),
        "validate of an unknown key:\n{stderr}"
    );
    assert!(
        stderr.contains("unknown-key.yaml:7"),
        "error should name line 7: {stderr}"
    );
    assert!(
        stderr.contains("max_sise"),
        "error should name the key: {stderr}"
    );

    // A rule naming a notary server that does not exist.
    let bad_rule = text.replace(
        r#"action: audit, notary: local"#,
        r#"action: audit, notary: nowhere"#,
    );
    let line = bad_rule
        .lines()
        .position(|l| l.contains("nowhere"))
        .unwrap()
        + 1;
    let bad = dir.path().join("unknown-notary.yaml");
    std::fs::write(&bad, bad_rule).unwrap();
    let result = support::trustgate(["config", "validate", "--config", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(1),
        "validate of an unknown notary server:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("unknown-notary.yaml:{line}")),
        "error should name line {line}: {stderr}"
    );
    assert!(
        stderr.contains("nowhere"),
        "error should name the server: {stderr}"
    );
}
