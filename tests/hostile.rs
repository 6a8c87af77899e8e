//! Hostile input: what a client, an upstream registry or a trust server can send to make
//! trustgate read, write, walk or hold too much, or touch a file it should not.
//!
//! - request paths with traversal and odd encodings, against `trustgate serve` (4xx with the
//!   right OCI code, nothing upstream, no file outside the cache touched);
//! - manifests that are too big, too deep, too wide, endless, or an index with thousands of
//!   children under a signature (a scripted upstream, the real notary server);
//! - trust data with thousands of targets, delegations or signatures, generated and signed
//!   here, verified by the binary's `trust inspect`;
//! - slow, idle and flooding clients, HTTP/1.1 and raw HTTP/2, against the real listener;
//! - fuzz-style properties of the parsers (`fuzz`), many cases on stable Rust, the same
//!   properties the cargo-fuzz targets in `fuzz/` check.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use support::fakes::{FakeHttp, Reply};
use support::http::{self, closed_within, HttpResponse};
use support::oci::{sha256_digest, OCI_INDEX, OCI_MANIFEST};
use support::proxy::{metric_value, Proxy};
use support::{NotaryCli, NotaryServer};

const REGISTRY: &str = "registry.test";
const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Every path and file size under `dir`, for before/after comparisons.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, Option<SystemTime>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let meta = entry.metadata().ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                stack.push(path.clone());
            }
            let stamp = meta.as_ref().and_then(|m| m.modified().ok());
            out.insert(path, (meta.map(|m| m.len()).unwrap_or(0), stamp));
        }
    }
    out
}

/// A GET whose request target is sent exactly as given (absolute form included).
fn raw_get(proxy: &Proxy, target: &str) -> Result<HttpResponse, String> {
    let io = |e: std::io::Error| format!("GET {target}: {e}");
    let mut stream = TcpStream::connect(proxy.host_port()).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        proxy.host_port()
    )
    .map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("GET {target}: no response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {target}: bad status line in {head:?}"))?;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

// === path traversal and odd encodings ===

#[test]
fn traversal_and_odd_encodings_get_4xx_and_touch_nothing() {
    let upstream = FakeHttp::start(|_| Reply::status(404));
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let canary = root.path().join("canary");
    fs::write(&canary, b"canary: nothing may write here").unwrap();
    let etc = root.path().join("etc");
    fs::create_dir(&etc).unwrap();
    fs::write(etc.join("passwd"), b"root:x:0:0").unwrap();
    let body = format!(
        "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{}\", default: true}}\npolicy: {{default: allow}}\n",
        upstream.url()
    );
    let proxy = Proxy::start_with_cache(&body, &cache);
    let before = tree(root.path());

    let long_name = format!("{}b", "a/".repeat(200));
    let long_tag = "t".repeat(129);
    let upper = HEX.to_ascii_uppercase();
    let short = &HEX[..63];
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "/v2/../../../etc/passwd/manifests/latest".into(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/app/../../etc/manifests/latest".into(),
            400,
            "NAME_INVALID",
        ),
        ("/v2/./app/manifests/latest".into(), 400, "NAME_INVALID"),
        ("/v2//app/manifests/latest".into(), 400, "NAME_INVALID"),
        (
            "/v2/%2e%2e/%2e%2e/etc/manifests/latest".into(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/%2E%2E%2Fetc/manifests/latest".into(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/app%2f..%2f..%2fetc/manifests/latest".into(),
            400,
            "NAME_INVALID",
        ),
        ("/v2/app/manifests/%2e%2e".into(), 400, "NAME_INVALID"),
        (
            "/v2/app/manifests/..%2f..%2fetc%2fpasswd".into(),
            400,
            "NAME_INVALID",
        ),
        ("/v2/app/manifests/latest%00".into(), 400, "NAME_INVALID"),
        ("/v2/app/manifests/..".into(), 404, "MANIFEST_UNKNOWN"),
        ("/v2/app/manifests/v1;rm".into(), 404, "MANIFEST_UNKNOWN"),
        (
            format!("/v2/app/manifests/{long_tag}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/{long_name}/manifests/latest"),
            400,
            "NAME_INVALID",
        ),
        ("/v2/App/Manifests/latest".into(), 404, "UNSUPPORTED"),
        ("/v2/App/manifests/latest".into(), 400, "NAME_INVALID"),
        (
            "/v2/app/manifests/latest/../../../../etc/passwd".into(),
            404,
            "UNSUPPORTED",
        ),
        (
            format!("/v2/app/blobs/sha256:{}", "..".repeat(32)),
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/app/blobs/sha256:../../../../etc/passwd".into(),
            404,
            "UNSUPPORTED",
        ),
        (
            "/v2/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e".into(),
            400,
            "DIGEST_INVALID",
        ),
        (format!("/v2/app/blobs/blake3:{HEX}"), 400, "DIGEST_INVALID"),
        (format!("/v2/app/blobs/SHA256:{HEX}"), 400, "DIGEST_INVALID"),
        (
            format!("/v2/app/blobs/sha256:{upper}"),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/app/blobs/sha256:{short}"),
            400,
            "DIGEST_INVALID",
        ),
        (format!("/v2/app/blobs/sha256{HEX}"), 400, "DIGEST_INVALID"),
        (
            format!("/v2/app/manifests/sha256:{upper}"),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/app/referrers/sha512:{HEX}"),
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/app/manifests/latest?ns=..%2F..%2Fetc".into(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/app/manifests/latest?ns=registry.test%00".into(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/app/manifests/latest?ns=a&ns=b".into(),
            400,
            "UNSUPPORTED",
        ),
        ("/v2/app/tags/list?n=-1".into(), 400, "UNSUPPORTED"),
        ("/v2/app/tags/list?last=..%2F..".into(), 400, "UNSUPPORTED"),
        (
            format!("http://{REGISTRY}/v2/../etc/manifests/x"),
            400,
            "NAME_INVALID",
        ),
    ];
    let mut failures = Vec::new();
    for (target, status, code) in &cases {
        match raw_get(&proxy, target) {
            Ok(r) if r.status == *status && r.error_code().as_deref() == Some(code) => {}
            Ok(r) => failures.push(format!(
                "{target}: want {status} {code}, got {}",
                r.summary()
            )),
            Err(e) => failures.push(format!("{target}: {e}")),
        }
    }
    // What the HTTP layer itself refuses (bytes no URI may hold) is a 400 too.
    for target in [
        "/v2/app\\..\\..\\etc/manifests/x",
        "/v2/caf\u{e9}/manifests/x",
        "/v2/a b/manifests/x",
    ] {
        match raw_get(&proxy, target) {
            Ok(r) if (400..500).contains(&r.status) => {}
            Ok(r) => failures.push(format!("{target:?}: want a 4xx, got {}", r.summary())),
            // hyper may also just close a connection whose request line it cannot parse.
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        proxy.log_tail(20)
    );

    assert!(
        upstream.requests().is_empty(),
        "refused requests reached the upstream: {:?}",
        upstream.requests()
    );
    assert_eq!(tree(root.path()), before, "files changed on disk");
    assert_eq!(
        fs::read(&canary).unwrap(),
        b"canary: nothing may write here"
    );

    // The same proxy does reach the upstream for a valid name, so the silence above means
    // the requests were refused, not lost.
    let r = raw_get(&proxy, "/v2/app/manifests/latest").unwrap();
    assert_eq!(
        r.error_code().as_deref(),
        Some("MANIFEST_UNKNOWN"),
        "{}",
        r.summary()
    );
    assert_eq!(upstream.requests(), ["/v2/app/manifests/latest"]);
}

// === hostile manifests ===

fn descriptor(media_type: &str, digest: &str, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// A small, valid image manifest whose config is `config` (so every one has its own digest).
fn image_manifest(config: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &sha256_digest(config.as_bytes()), config.len()),
        "layers": [],
    }))
    .unwrap()
}

fn index_of(children: &[(String, usize)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(d, s)| descriptor(OCI_MANIFEST, d, *s)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

#[test]
fn hostile_manifests_are_refused_in_bounded_time() {
    // Under a signature: an index of thousands of children, which a by-digest request for
    // something outside it makes the proxy walk.
    let children: Vec<Vec<u8>> = (0..1000)
        .map(|i| image_manifest(&format!("child {i}")))
        .collect();
    let refs: Vec<(String, usize)> = children
        .iter()
        .map(|m| (sha256_digest(m), m.len()))
        .collect();
    let fanout = index_of(&refs);
    let fanout_digest = sha256_digest(&fanout);

    let mut served: HashMap<String, (String, Vec<u8>)> = HashMap::new();
    for (child, (digest, _)) in children.iter().zip(&refs) {
        served.insert(
            format!("/v2/signed/fanout/manifests/{digest}"),
            (OCI_MANIFEST.into(), child.clone()),
        );
    }
    for path in [
        "/v2/signed/fanout/manifests/v1".to_owned(),
        format!("/v2/signed/fanout/manifests/{fanout_digest}"),
    ] {
        served.insert(path, (OCI_INDEX.into(), fanout.clone()));
    }
    // Unsigned, under allow: too big, too deep, too wide, too many keys.
    let padding = "x".repeat(5 << 20);
    let huge = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","annotations":{{"pad":"{padding}"}}}}"#
    );
    served.insert(
        "/v2/open/huge/manifests/v1".into(),
        (OCI_MANIFEST.into(), huge.into_bytes()),
    );
    let deep = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    served.insert(
        "/v2/open/deep/manifests/v1".into(),
        (OCI_MANIFEST.into(), deep.into_bytes()),
    );
    let wide: Vec<(String, usize)> = (0..12_000)
        .map(|i| (sha256_digest(format!("{i}").as_bytes()), 1))
        .collect();
    served.insert(
        "/v2/open/wide/manifests/v1".into(),
        (OCI_INDEX.into(), index_of(&wide)),
    );
    let keys: String = (0..150_000).map(|i| format!(r#""k{i}":{i},"#)).collect();
    let keys = format!(r#"{{{keys}"schemaVersion":2}}"#);
    served.insert(
        "/v2/open/keys/manifests/v1".into(),
        (OCI_MANIFEST.into(), keys.into_bytes()),
    );
    let served = Arc::new(served);

    let upstream = FakeHttp::start({
        let served = served.clone();
        move |path| match path {
            "/v2/open/endless/manifests/v1" => Reply::Endless {
                chunk: vec![b' '; 64 * 1024].into(),
            },
            _ => match served.get(path) {
                Some((media_type, bytes)) => Reply::ok(media_type, bytes.clone()),
                None => Reply::status(404),
            },
        }
    });
    let notary = NotaryServer::start();
    let cli = NotaryCli::for_server(&notary);
    let gun = format!("{REGISTRY}/signed/fanout");
    cli.init(&gun);
    cli.addhash(
        &gun,
        "v1",
        fanout.len() as u64,
        &fanout_digest["sha256:".len()..],
        &[],
    );
    let body = format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
notary_servers:
  - {{name: local, url: "{}", ttl: 10m}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/signed/**", action: verify, notary: local}}
    - {{match: "{REGISTRY}/open/**", action: allow}}
"#,
        upstream.url(),
        notary.url()
    );
    let proxy = Proxy::start(&body);
    let get = |path: &str| {
        let started = Instant::now();
        let r = proxy.request("GET", path, &[("Accept", support::oci::ACCEPT_ALL)], b"");
        (r, started.elapsed())
    };

    for (repo, code, words) in [
        // Client messages do not echo upstream details; the log says which limit.
        ("huge", "UNSUPPORTED", REGISTRY),
        ("endless", "UNSUPPORTED", REGISTRY),
        ("deep", "MANIFEST_INVALID", "invalid manifest"),
        ("wide", "MANIFEST_INVALID", "10000"),
        ("keys", "MANIFEST_INVALID", "invalid manifest"),
    ] {
        let (r, took) = get(&format!("/v2/open/{repo}/manifests/v1"));
        let message = r.error_message().unwrap_or_default();
        assert!(
            r.status == 502 && r.error_code().as_deref() == Some(code) && message.contains(words),
            "{repo}: want 502 {code} mentioning {words:?}, got {}\n{}",
            r.summary(),
            proxy.log_tail(10)
        );
        assert!(took < Duration::from_secs(10), "{repo}: took {took:?}");
    }
    let sent = upstream.bytes_sent();
    assert!(
        sent < 64 << 20,
        "an endless manifest was read for {sent} bytes"
    );

    // The signed index is served; a digest outside its closure is refused after one walk
    // over its children, and a second look-up reuses what the walk learnt.
    let (r, _) = get("/v2/signed/fanout/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(sha256_digest(&r.body), fanout_digest);
    let before = upstream.requests().len();
    let (r, took) = get(&format!("/v2/signed/fanout/blobs/sha256:{HEX}"));
    assert_eq!(r.error_code().as_deref(), Some("DENIED"), "{}", r.summary());
    let walked = upstream.requests().len() - before;
    assert!(
        walked <= children.len(),
        "{walked} upstream requests for {} children",
        children.len()
    );
    assert!(
        took < Duration::from_secs(60),
        "walking {} children took {took:?}",
        children.len()
    );
    eprintln!("walked {walked} children in {took:?}");
    let before = upstream.requests().len();
    let other = sha256_digest(b"not in any image");
    let (r, took) = get(&format!("/v2/signed/fanout/manifests/{other}"));
    assert_eq!(r.error_code().as_deref(), Some("DENIED"), "{}", r.summary());
    assert_eq!(
        upstream.requests().len(),
        before,
        "the second walk went upstream again"
    );
    assert!(
        took < Duration::from_secs(5),
        "the memoised walk took {took:?}"
    );
    // A child is in the closure and is served.
    let (r, _) = get(&format!("/v2/signed/fanout/manifests/{}", refs[777].0));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.body, children[777]);
}

// === hostile trust data ===

/// Signs Notary v1 metadata the way notary does (ECDSA P-256 over canonical JSON, raw r||s),
/// with one key that has a certificate for the GUN and holds every role.
struct TrustSigner {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    id: String,
    key_json: serde_json::Value,
}

impl TrustSigner {
    fn new(dir: &Path, gun: &str) -> TrustSigner {
        let key_path = dir.join("key.p8");
        let cert_path = dir.join("cert.pem");
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("run openssl");
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&key_path));
        run(Command::new("openssl")
            .args([
                "req", "-new", "-x509", "-days", "30", "-keyform", "DER", "-key",
            ])
            .arg(&key_path)
            .args(["-subj", &format!("/CN={}", gun.replace('/', "\\/")), "-out"])
            .arg(&cert_path));
        let pem = fs::read(&cert_path).unwrap();
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &fs::read(&key_path).unwrap(),
        )
        .expect("a P-256 private key");
        let id = trustgate::trust::notary::tuf_key_id("ecdsa-x509", &pem);
        let key_json = serde_json::json!({
            "keytype": "ecdsa-x509",
            "keyval": {"private": null, "public": b64(&pem)},
        });
        TrustSigner { key, id, key_json }
    }

    /// `{"signed": signed, "signatures": [...]}` with `extra` more (bogus) signatures by the
    /// same key before the good one.
    fn sign(&self, signed: serde_json::Value, extra: usize) -> Vec<u8> {
        let message = trustgate::trust::notary::to_canonical(&signed).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.key.sign(&rng, &message).unwrap();
        let mut signatures: Vec<serde_json::Value> = (0..extra)
            .map(|_| serde_json::json!({"keyid": self.id, "method": "ecdsa", "sig": b64(&[7u8; 64])}))
            .collect();
        signatures.push(
            serde_json::json!({"keyid": self.id, "method": "ecdsa", "sig": b64(sig.as_ref())}),
        );
        serde_json::to_vec(&serde_json::json!({"signed": signed, "signatures": signatures}))
            .unwrap()
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn meta(bytes: &[u8]) -> serde_json::Value {
    let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    serde_json::json!({"length": bytes.len(), "hashes": {"sha256": b64(sum.as_ref())}})
}

/// Writes a repository's trust data to `dir`: `targets` targets in `targets.json`,
/// `delegations` delegated roles of one target each, and `bogus` extra signatures on the
/// timestamp.
fn write_trust_data(
    dir: &Path,
    signer: &TrustSigner,
    targets: usize,
    delegations: usize,
    bogus: usize,
) {
    const EXPIRES: &str = "2099-01-01T00:00:00Z";
    let role = |_: &str| serde_json::json!({"keyids": [signer.id], "threshold": 1});
    let root = signer.sign(
        serde_json::json!({
            "_type": "Root", "consistent_snapshot": false, "expires": EXPIRES, "version": 1,
            "keys": {signer.id.clone(): signer.key_json},
            "roles": {"root": role("root"), "targets": role("targets"), "snapshot": role("snapshot"), "timestamp": role("timestamp")},
        }),
        0,
    );
    let target = |i: usize| meta(format!("manifest {i}").as_bytes());
    let mut snapshot_meta = serde_json::Map::new();
    fs::create_dir_all(dir.join("targets")).unwrap();
    let mut roles = Vec::new();
    for d in 0..delegations {
        let name = format!("targets/d{d}");
        let file = signer.sign(
            serde_json::json!({
                "_type": "Targets", "expires": EXPIRES, "version": 1,
                "targets": {format!("t{d}"): target(d)},
                "delegations": {"keys": {}, "roles": []},
            }),
            0,
        );
        snapshot_meta.insert(name.clone(), meta(&file));
        fs::write(dir.join(format!("{name}.json")), file).unwrap();
        roles.push(
            serde_json::json!({"name": name, "keyids": [signer.id], "threshold": 1, "paths": [""]}),
        );
    }
    let top = signer.sign(
        serde_json::json!({
            "_type": "Targets", "expires": EXPIRES, "version": 1,
            "targets": (0..targets).map(|i| (format!("v{i}"), target(i))).collect::<serde_json::Map<_, _>>(),
            "delegations": {"keys": {signer.id.clone(): signer.key_json}, "roles": roles},
        }),
        0,
    );
    snapshot_meta.insert("root".into(), meta(&root));
    snapshot_meta.insert("targets".into(), meta(&top));
    let snapshot = signer.sign(
        serde_json::json!({"_type": "Snapshot", "expires": EXPIRES, "version": 1, "meta": snapshot_meta}),
        0,
    );
    let timestamp = signer.sign(
        serde_json::json!({"_type": "Timestamp", "expires": EXPIRES, "version": 1, "meta": {"snapshot": meta(&snapshot)}}),
        bogus,
    );
    for (name, bytes) in [
        ("root", &root),
        ("targets", &top),
        ("snapshot", &snapshot),
        ("timestamp", &timestamp),
    ] {
        fs::write(dir.join(format!("{name}.json")), bytes).unwrap();
    }
}

#[test]
fn trust_data_with_thousands_of_targets_delegations_or_signatures_is_bounded() {
    let gun = "example.test/many";
    let keys = tempfile::tempdir().unwrap();
    let signer = TrustSigner::new(keys.path(), gun);
    let inspect = |dir: &Path| {
        let started = Instant::now();
        let out = support::trustgate(
            ["trust", "inspect", gun, "--json", "--metadata-dir"]
                .map(String::from)
                .into_iter()
                .chain([dir.display().to_string()]),
        );
        (out, started.elapsed())
    };

    // Large but legitimate: 20,000 signed tags and 900 delegations verify, in bounded time.
    let big = tempfile::tempdir().unwrap();
    write_trust_data(big.path(), &signer, 20_000, 900, 0);
    let (out, took) = inspect(big.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["signed_tags"].as_array().map(Vec::len), Some(20_000));
    assert_eq!(json["roles"].as_object().map(|r| r.len()), Some(1 + 900));
    assert!(took < Duration::from_secs(20), "verifying took {took:?}");
    eprintln!("20,000 targets and 900 delegations verified in {took:?}");

    // More delegations than the limit: refused, naming the limit.
    let many = tempfile::tempdir().unwrap();
    write_trust_data(many.path(), &signer, 1, 1_100, 0);
    let (out, took) = inspect(many.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("too many delegations (limit 1000)"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "refusing took {took:?}");

    // A timestamp carrying thousands of bad signatures by the right key: each is checked once
    // at most, within the 1 MiB timestamp limit, and the one good signature still counts.
    let noisy = tempfile::tempdir().unwrap();
    write_trust_data(noisy.path(), &signer, 1, 0, 4_500);
    let (out, took) = inspect(noisy.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(20),
        "4,500 signatures took {took:?}"
    );
    eprintln!("4,500 bogus timestamp signatures checked in {took:?}");
}

// === slow, idle and flooding clients ===

/// `GET /v2/` answered 200, and how long it took.
fn base_request(proxy: &Proxy) -> Duration {
    let started = Instant::now();
    let r = proxy.request("GET", "/v2/", &[], b"");
    assert_eq!(r.status, 200, "{}", r.summary());
    started.elapsed()
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HPACK header block for `GET path` (literal fields, no Huffman, no indexing).
fn h2_request(authority: &str, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    for (index, value) in [(4u8, path), (1u8, authority)] {
        assert!(value.len() < 127);
        block.push(index); // literal without indexing, indexed name
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// Frame types the server sent until it closed the connection or `limit` passed.
fn h2_frames_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut closed = false;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let mut kinds = Vec::new();
    let mut at = 0;
    while at + 9 <= raw.len() {
        let len = (usize::from(raw[at]) << 16)
            | (usize::from(raw[at + 1]) << 8)
            | usize::from(raw[at + 2]);
        kinds.push(raw[at + 3]);
        at += 9 + len;
    }
    (kinds, closed)
}

#[test]
fn slow_idle_and_flooding_clients_are_bounded_while_normal_requests_answer() {
    // A manifest that never arrives, to hold requests open.
    let upstream = FakeHttp::start(|_| Reply::Hang(Duration::from_secs(20)));
    let body = format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
limits: {{header_timeout: 1s, max_connections: 64}}
policy: {{default: allow}}
"#,
        upstream.url()
    );
    let proxy = Proxy::start(&body);
    let addr = proxy.host_port();
    assert!(base_request(&proxy) < Duration::from_secs(1));

    // Every connection slot taken by idle clients, more clients trickling headers behind
    // them: the idle ones are closed after header_timeout, and a normal request then answers.
    let mut idle: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(200));
    let trickle = thread::spawn({
        let addr = addr.clone();
        move || {
            let mut slow: Vec<TcpStream> = (0..20)
                .map(|_| TcpStream::connect(&addr).unwrap())
                .collect();
            for byte in b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: "
                .iter()
                .cycle()
                .take(40)
            {
                for s in &mut slow {
                    let _ = s.write_all(&[*byte]);
                }
                thread::sleep(Duration::from_millis(100));
            }
            slow.iter_mut()
                .all(|s| closed_within(s, Duration::from_secs(5)))
        }
    });
    let took = base_request(&proxy);
    // Queued behind the full connection table (max_connections), not served beside it.
    assert!(
        took > Duration::from_millis(300),
        "a 65th connection was served at once: max_connections did not hold ({took:?})"
    );
    assert!(
        took < Duration::from_secs(4),
        "a normal request behind idle connections took {took:?}"
    );
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(3)),
            "idle connection {i} was not closed"
        );
    }
    assert!(
        trickle.join().unwrap(),
        "a slowloris connection was not closed"
    );

    // Header floods: one huge header, thousands of headers. Refused (431 or a closed
    // connection), and the next normal request answers.
    let huge = "x".repeat(2 << 20);
    for (what, headers) in [
        ("a 2 MiB header", vec![("X-Huge".to_owned(), huge)]),
        (
            "10,000 headers",
            (0..10_000)
                .map(|i| (format!("X-H{i}"), "v".to_owned()))
                .collect(),
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let started = Instant::now();
        // Either an error status, or the connection closed without an answer.
        if let Ok(r) = http::request("GET", &format!("{}/v2/", proxy.url()), &headers, b"") {
            assert!(
                r.status == 431 || r.status == 400,
                "{what}: {}",
                r.summary()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            started.elapsed()
        );
        assert!(
            base_request(&proxy) < Duration::from_secs(2),
            "after {what}"
        );
    }

    // HTTP/2 rapid reset (CVE-2023-44487): thousands of streams opened and cancelled at once
    // on one connection, never acknowledging the server's settings.
    let requests = |p: &Proxy| -> f64 {
        p.metrics()
            .lines()
            .filter(|l| l.starts_with("trustgate_http_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    // The raw HTTP/2 used below is well formed: one such request on its own is answered.
    let mut one = TcpStream::connect(&addr).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    out.extend(h2_frame(0x1, 0x5, 1, &h2_request(&addr, "/v2/")));
    one.write_all(&out).unwrap();
    let (frames, _) = h2_frames_until_closed(&mut one, Duration::from_secs(1));
    assert!(
        frames.contains(&0x1),
        "no HEADERS answer to a raw h2 request (frames {frames:?})"
    );
    drop(one);

    let counted = requests(&proxy);
    let mut flood = TcpStream::connect(&addr).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    let block = h2_request(&addr, "/v2/");
    for i in 0..10_000u32 {
        let id = 2 * i + 1;
        out.extend(h2_frame(0x1, 0x5, id, &block)); // HEADERS, END_STREAM | END_HEADERS
        out.extend(h2_frame(0x3, 0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let started = Instant::now();
    let _ = flood.write_all(&out);
    let (frames, closed) = h2_frames_until_closed(&mut flood, Duration::from_secs(5));
    assert!(
        closed && frames.contains(&0x7),
        "the flooding connection was not sent GOAWAY and closed (frames {:?})",
        &frames[..frames.len().min(20)]
    );
    let handled = requests(&proxy) - counted;
    eprintln!(
        "rapid reset: {handled} of 10000 streams reached the stack; GOAWAY after {:?}",
        started.elapsed()
    );
    assert!(
        handled < 2_000.0,
        "{handled} of 10000 reset streams were served"
    );
    assert!(
        base_request(&proxy) < Duration::from_secs(2),
        "after the rapid-reset flood"
    );

    // HTTP/2 stream flood: more streams than the per-connection limit, each held open by an
    // upstream that never answers. The surplus is refused; other clients are served.
    let mut held = TcpStream::connect(&addr).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    out.extend(h2_frame(0x4, 0x1, 0, &[])); // ACK the server's settings
    let block = h2_request(&addr, "/v2/app/manifests/latest");
    for i in 0..300u32 {
        out.extend(h2_frame(0x1, 0x5, 2 * i + 1, &block));
    }
    held.write_all(&out).unwrap();
    thread::sleep(Duration::from_millis(500));
    assert!(
        base_request(&proxy) < Duration::from_secs(2),
        "during the stream flood"
    );
    let in_flight = metric_value(&proxy.metrics(), "trustgate_inflight_fetches").unwrap_or(0.0);
    assert!(
        in_flight <= 128.0,
        "{in_flight} upstream fetches from one connection (limit 128 streams)"
    );
    let (frames, _) = h2_frames_until_closed(&mut held, Duration::from_millis(500));
    assert!(
        frames.contains(&0x3),
        "no stream beyond the limit was refused (frames {:?})",
        &frames[..frames.len().min(20)]
    );
    drop(held);
    drop(flood);
    drop(idle);
    assert!(base_request(&proxy) < Duration::from_secs(2), "at the end");
}

// === fuzz-style properties (stable) ===

/// The properties the cargo-fuzz targets in `fuzz/` check, run for a bounded number of cases
/// on stable Rust (`TRUSTGATE_FUZZ_CASES`, default 2000; each case is microseconds).
mod fuzz {
    use std::path::Path;

    use proptest::prelude::*;
    use trustgate::oci::{self, Manifest};
    use trustgate::trust::notary::{to_canonical, Limits, NotaryClient, Source};

    fn cases(scale: u32) -> ProptestConfig {
        let n = std::env::var("TRUSTGATE_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(2000);
        ProptestConfig {
            cases: (n / scale).max(1),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Path-ish strings: the pieces an attacker would combine, plus anything at all.
    fn path_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("%2e".to_owned()),
            Just("%2f".to_owned()),
            Just("%00".to_owned()),
            Just("manifests".to_owned()),
            Just("blobs".to_owned()),
            Just("tags".to_owned()),
            Just("list".to_owned()),
            Just("referrers".to_owned()),
            Just("uploads".to_owned()),
            Just(format!("sha256:{}", super::HEX)),
            Just(format!("sha512:{}", super::HEX.repeat(2))),
            "[a-z0-9._-]{1,12}",
            "[A-Za-z0-9:@._%-]{1,70}",
            "\\PC{0,8}",
        ]
    }

    fn method() -> impl Strategy<Value = http::Method> {
        prop_oneof![
            Just(http::Method::GET),
            Just(http::Method::HEAD),
            Just(http::Method::PUT),
            Just(http::Method::DELETE),
            Just(http::Method::OPTIONS),
        ]
    }

    proptest! {
            #![proptest_config(cases(1))]

            /// Never panics; whatever it accepts rebuilds into the same route and holds nothing
            /// that could leave a directory or smuggle a separator.
            #[test]
            fn route_parser(method in method(), pieces in proptest::collection::vec(path_piece(), 0..8),
                            query in proptest::option::of("[a-z=&%0-9.:/]{0,40}")) {
                let path = format!("/v2/{}", pieces.join("/"));
                if let Ok(route) = oci::parse(&method, &path, query.as_deref()) {
                    let rebuilt = route.path();
    prop_assert!(rebuilt.split('/').all(|segment| segment != ".." && segment != "."));
                    prop_assert!(!rebuilt.contains('%') && !rebuilt.contains("//"));
                    prop_assert!(rebuilt.is_ascii() && !rebuilt.contains('\\'));
                    let again = oci::parse(&method, &rebuilt, query.as_deref());
                    prop_assert_eq!(again.as_ref(), Ok(&route));
                }
            }

            #[test]
            fn route_parser_on_any_text(method in method(), path in "\\PC{0,300}", query in "\\PC{0,60}") {
                let _ = oci::parse(&method, &path, Some(&query));
            }
        }

    /// Inputs cargo-fuzz found (`fuzz/`), kept as regression cases.
    #[test]
    fn found_by_cargo_fuzz() {
        // oci_route: a valid tag may contain `..`; it is one segment, never a path step, and
        // it is never used in a file name (the cache is addressed by digest only).
        let route = oci::parse(&http::Method::GET, "/v2/5b__h/manifests/66..b__6", None).unwrap();
        assert_eq!(route.path(), "/v2/5b__h/manifests/66..b__6");
        for bad in [
            "/v2/5b__h/manifests/..",
            "/v2/5b__h/manifests/.",
            "/v2/../manifests/v1",
        ] {
            assert!(oci::parse(&http::Method::GET, bad, None).is_err(), "{bad}");
        }
    }

    /// A manifest-shaped JSON value: real keys, plausible and hostile values.
    fn manifest_json() -> impl Strategy<Value = serde_json::Value> {
        let digest = prop_oneof![
            Just(format!("sha256:{}", super::HEX)),
            "sha256:[0-9a-f]{0,70}",
            "[a-z0-9]{1,8}:[0-9a-zA-Z]{0,70}",
        ];
        let media = prop_oneof![
            Just(super::OCI_MANIFEST.to_owned()),
            Just(super::OCI_INDEX.to_owned()),
            Just("application/vnd.docker.distribution.manifest.v2+json".to_owned()),
            Just("application/vnd.docker.distribution.manifest.v1+json".to_owned()),
            "[a-z/.+;= -]{0,40}",
        ];
        let descriptor = (media.clone(), digest, any::<i64>())
            .prop_map(|(m, d, s)| serde_json::json!({"mediaType": m, "digest": d, "size": s}));
        let descriptors = proptest::collection::vec(descriptor.clone(), 0..6);
        (
            media,
            proptest::option::of(any::<i8>()),
            proptest::option::of(descriptor),
            descriptors.clone(),
            proptest::option::of(descriptors),
            any::<bool>(),
        )
            .prop_map(|(media, version, config, layers, manifests, upper)| {
                let mut v = serde_json::json!({"mediaType": media, "layers": layers});
                if let Some(version) = version {
                    v["schemaVersion"] = version.into();
                }
                if let Some(config) = config {
                    v["config"] = config;
                }
                if let Some(manifests) = manifests {
                    v["manifests"] = manifests.into();
                }
                if upper {
                    v["MediaType"] = "x".into();
                }
                v
            })
    }

    proptest! {
        #![proptest_config(cases(1))]

        /// Never panics; never accepts more references than the limit; what it accepts it
        /// accepts again from its own bytes.
        #[test]
        fn manifest_parser(value in manifest_json(), content_type in proptest::option::of("[a-z/.+;= -]{0,50}")) {
            let bytes = serde_json::to_vec(&value).unwrap();
            if let Ok(manifest) = oci::parse_manifest(&bytes, content_type.as_deref()) {
                let references = match &manifest {
                    Manifest::Index(index) => index.manifests().len(),
                    Manifest::Image(image) => 1 + image.layers().len(),
                };
                prop_assert!(references <= oci::manifest::MAX_DESCRIPTORS);
                prop_assert_eq!(oci::parse_manifest(&bytes, content_type.as_deref()).ok(), Some(manifest));
            }
        }

        #[test]
        fn manifest_parser_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = oci::parse_manifest(&bytes, None);
        }
    }

    /// Any JSON value, nested a few levels, strings from all of Unicode.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(Into::into),
            any::<i64>().prop_map(Into::into),
            any::<u64>().prop_map(Into::into),
            "\\PC{0,12}".prop_map(Into::into),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Into::into),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(cases(1))]

        /// Deterministic, parses back to the same value, and different values never share
        /// canonical bytes (what a signature covers must name one document).
        #[test]
        fn canonical_json(a in json(), b in json()) {
            let ca = to_canonical(&a).unwrap();
            prop_assert_eq!(&to_canonical(&a).unwrap(), &ca);
            let back: serde_json::Value = serde_json::from_slice(&ca).unwrap();
            prop_assert_eq!(&back, &a);
            let cb = to_canonical(&b).unwrap();
            prop_assert_eq!(ca == cb, a == b);
        }

        #[test]
        fn canonical_json_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let _ = to_canonical(&value);
            }
        }
    }

    const GOOD: &str = "tests/data/trust/good-releases-delegation";
    const FILES: [&str; 6] = [
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
        "targets/releases.json",
        "targets/alice.json",
    ];

    /// Real signed metadata with one file replaced by a JSON-shaped mutation of itself.
    fn verify_with(replaced: &str, bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
        let dir = tempfile::tempdir().unwrap();
        for file in FILES {
            let to = dir.path().join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(Path::new(GOOD).join("metadata").join(file), to).unwrap();
        }
        std::fs::write(dir.path().join(replaced), bytes).unwrap();
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(Path::new(GOOD).join("case.json")).unwrap())
                .unwrap();
        let at = time::OffsetDateTime::parse(
            case["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = NotaryClient::new(
            Source::Dir(dir.path().to_path_buf()),
            Limits::default(),
            None,
        );
        let data = runtime
            .block_on(client.verify(case["gun"].as_str().unwrap(), at, &[]))
            .map_err(|e| e.to_string())?;
        Ok(data
            .signed_tags()
            .into_iter()
            .map(|(tag, r)| (tag, r.target.digest.clone()))
            .collect())
    }

    /// Replaces the value at a random path of `value` with `with`.
    fn mutate(value: &mut serde_json::Value, choice: usize, with: serde_json::Value) {
        if !choice.is_multiple_of(3) {
            let next = choice / 7;
            match value {
                serde_json::Value::Object(map) if !map.is_empty() => {
                    let key = map.keys().nth(choice % map.len()).cloned().unwrap();
                    if let Some(inner) = map.get_mut(&key) {
                        return mutate(inner, next, with);
                    }
                }
                serde_json::Value::Array(items) if !items.is_empty() => {
                    let n = items.len();
                    return mutate(&mut items[choice % n], next, with);
                }
                _ => {}
            }
        }
        *value = with;
    }

    proptest! {
        #![proptest_config(cases(20))]

        /// The TUF parser and verifier on structurally valid but altered documents: no panic,
        /// and nothing altered ever verifies to different targets.
        #[test]
        fn tuf_verifier(file in 0usize..FILES.len(), choice in any::<usize>(), with in json()) {
            let original = std::fs::read(Path::new(GOOD).join("metadata").join(FILES[file])).unwrap();
            let mut value: serde_json::Value = serde_json::from_slice(&original).unwrap();
            mutate(&mut value, choice, with);
            let bytes = serde_json::to_vec(&value).unwrap();
            let good = verify_with(FILES[file], &original).unwrap();
            if let Ok(signed) = verify_with(FILES[file], &bytes) {
                prop_assert_eq!(signed, good);
            }
        }
    }
}
