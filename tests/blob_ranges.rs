//! `Range` on blob GETs, as docker and containerd resume layer downloads: trustgate's answer
//! next to docker-registry's (CNCF distribution, which serves blobs with Go's
//! `http.ServeContent`) for the same blob and the same headers: status, `Content-Range`,
//! `Content-Length` and bytes. Under `allow`, cold and cached; under `verify`, with cosign
//! key signatures made by the test, and refused for an unsigned image as a full GET is; and
//! an object found on disk at start is hashed whole before any range of it is served.

mod support;

use support::cosign::{self, Key, REGISTRY};
use support::http::{self, HttpResponse};
use support::oci::{Blob, Image};
use support::proxy::Proxy;
use support::Registry;

struct Env {
    registry: Registry,
    key: Key,
    _keys: tempfile::TempDir,
    cache: tempfile::TempDir,
    body: String,
}

impl Env {
    fn start() -> Env {
        let registry = Registry::start();
        let keys = tempfile::tempdir().unwrap();
        let key = Key::generate(keys.path(), "a");
        let trust = cosign::offline_key_trust(&key);
        let rules = [
            cosign::verify_rule("signed/**", &trust),
            format!("    - match: \"{REGISTRY}/open/**\"\n      action: allow\n"),
        ];
        let body = cosign::config(&registry.url(), &rules);
        Env {
            registry,
            key,
            _keys: keys,
            cache: tempfile::tempdir().unwrap(),
            body,
        }
    }

    /// A proxy on this environment's cache directory (a second one after a restart).
    fn proxy(&self) -> Proxy {
        Proxy::start_with_cache(&self.body, self.cache.path())
    }

    fn sign(&self, repo: &str, digest: &str) {
        cosign::sign_digest(&self.registry, &self.key, repo, digest);
    }

    fn direct(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let url = format!("{}{path}", self.registry.url());
        http::request(method, &url, headers, b"").unwrap_or_else(|e| panic!("{url}: {e}"))
    }
}

fn blob_path(repo: &str, blob: &Blob) -> String {
    format!("/v2/{repo}/blobs/{}", blob.digest)
}

/// The same answer as docker-registry's: status, `Content-Range`, and for a served body its
/// `Content-Length` and bytes.
fn assert_same(proxy: &Proxy, env: &Env, repo: &str, blob: &Blob, headers: &[(&str, &str)]) {
    let path = blob_path(repo, blob);
    let ours = proxy.request("GET", &path, headers, b"");
    let theirs = env.direct("GET", &path, headers);
    let context = format!(
        "{headers:?}\ntrustgate: {}\nregistry: {}\nproxy log:\n{}",
        ours.summary(),
        theirs.summary(),
        proxy.log_tail(20)
    );
    assert_eq!(ours.status, theirs.status, "{context}");
    assert_eq!(
        ours.header("content-range"),
        theirs.header("content-range"),
        "{context}"
    );
    if ours.status != 416 {
        assert_eq!(
            ours.header("content-length"),
            theirs.header("content-length"),
            "{context}"
        );
        assert_eq!(ours.body, theirs.body, "{context}");
        assert_eq!(ours.header("etag"), theirs.header("etag"), "{context}");
        assert_eq!(ours.header("accept-ranges"), Some("bytes"), "{context}");
    }
}

/// 200 with the whole blob, where trustgate ignores the `Range` header.
fn assert_whole(proxy: &Proxy, repo: &str, blob: &Blob, headers: &[(&str, &str)]) {
    let r = proxy.request("GET", &blob_path(repo, blob), headers, b"");
    assert_eq!(r.status, 200, "{headers:?}: {}", r.summary());
    assert_eq!(r.header("content-range"), None, "{headers:?}");
    assert_eq!(r.body, blob.bytes, "{headers:?}");
    assert_eq!(r.header("accept-ranges"), Some("bytes"), "{headers:?}");
}

/// Every case on `blob` of `repo`; the first request finds it cold.
fn check_ranges(proxy: &Proxy, env: &Env, repo: &str, blob: &Blob) {
    let size = blob.size();
    let etag = format!("\"{}\"", blob.digest);
    let past = format!("bytes={size}-");
    let tail = format!("bytes={}-{}", size - 3, size + 100);
    for headers in [
        vec![("Range", "bytes=0-9")],
        vec![("Range", "bytes=10-")],
        vec![("Range", "bytes=-5")],
        vec![("Range", tail.as_str())],
        vec![("Range", past.as_str())],
        vec![("Range", "bytes=0-9"), ("If-Range", etag.as_str())],
        vec![("Range", "bytes=0-9"), ("If-Range", "\"sha256:0000\"")],
        // Without Last-Modified a date never matches: the whole blob, on both.
        vec![
            ("Range", "bytes=0-9"),
            ("If-Range", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ],
        vec![],
    ] {
        assert_same(proxy, env, repo, blob, &headers);
    }
    // Go answers these with 416 (malformed) and a multipart 206 (two ranges); trustgate
    // ignores them and serves the whole blob (RFC 9110 14.2).
    for range in ["bytes=5-1", "bytes=a-", "items=0-9", "bytes=0-1,4-5"] {
        assert_whole(proxy, repo, blob, &[("Range", range)]);
    }
    let head = proxy.request("HEAD", &blob_path(repo, blob), &[], b"");
    assert_eq!(head.status, 200, "{}", head.summary());
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );
}

#[test]
fn ranges_under_allow_answer_as_the_registry_does() {
    let env = Env::start();
    let proxy = env.proxy();
    let image = env.registry.push_random("open/app", "v1", 2);
    check_ranges(&proxy, &env, "open/app", &image.layers[0]);
    // The config blob, cold, asked for by a suffix range first.
    assert_same(
        &proxy,
        &env,
        "open/app",
        &image.config,
        &[("Range", "bytes=-7")],
    );
}

#[test]
fn ranges_under_verify_are_of_signed_blobs_only() {
    let env = Env::start();
    let proxy = env.proxy();
    let image = Image::random(1);
    image.push(&env.registry, "signed/app", "v1");
    env.sign("signed/app", &image.manifest.digest);
    check_ranges(&proxy, &env, "signed/app", &image.layers[0]);

    // An unsigned image's blob is refused with a Range header as without one.
    let unsigned = Image::random(1);
    unsigned.push(&env.registry, "signed/other", "v1");
    let r = proxy.request(
        "GET",
        &blob_path("signed/other", &unsigned.layers[0]),
        &[("Range", "bytes=0-9")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.summary());
    assert_eq!(r.header("content-range"), None);
}

#[test]
fn an_object_found_at_start_is_hashed_whole_before_a_range_of_it() {
    let env = Env::start();
    let image = env.registry.push_random("open/app", "v1", 1);
    let layer = &image.layers[0];
    let hex = layer.hex();
    let object = env
        .cache
        .path()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    {
        let proxy = env.proxy();
        proxy.expect_served(&blob_path("open/app", layer), &layer.bytes);
        // Stored just after the response ended.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !object.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    // Damaged on disk while trustgate was down: same length, the first bytes changed.
    let mut bytes = std::fs::read(&object).expect("the stored layer");
    assert_eq!(bytes, layer.bytes);
    bytes[..10].copy_from_slice(b"XXXXXXXXXX");
    std::fs::write(&object, &bytes).unwrap();

    let proxy = env.proxy();
    let r = proxy.request(
        "GET",
        &blob_path("open/app", layer),
        &[("Range", "bytes=0-9")],
        b"",
    );
    // The damaged object is found out and dropped; the blob is served whole, from upstream.
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.body, layer.bytes);
    // Fetched again and stored: now the range is served, and is right.
    assert_same(&proxy, &env, "open/app", layer, &[("Range", "bytes=0-9")]);
}
