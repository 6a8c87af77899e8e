//! Content attacks: an upstream or a bucket that lies about sizes, or sends too much, too
//! little, too slowly or the wrong object. Real peers: `docker-registry` behind the scripted
//! man in the middle (`support::mitm`), `s3s-fs` as the bucket (or a scripted bucket where
//! `s3s-fs` cannot play the attack), images signed in cosign's format with a real key, and
//! `trustgate serve`.
//!
//! What must hold: under `verify` a blob is read to exactly its signed size (more, fewer, or
//! another announced length fail, and nothing is stored); without a signed size the body is
//! bounded by `limits.max_blob_size`; no announced length and no bucket object makes room in
//! the cache (evicts) before bytes arrived or verified; no temp file outgrows its bound; a
//! wrong bucket object is stopped short like a wrong upstream body, and read upstream next;
//! and a slow, silent or truncating bucket costs a bounded wait, after which the upstream
//! serves the rest.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::cosign::{self, Key, REGISTRY};
use support::fakes::Reply;
use support::mitm::Mitm;
use support::oci::{push_blob, random_bytes, Blob, Format, Image, ACCEPT_ALL};
use support::proxy::Proxy;
use support::s3::{DripBucket, S3Server};
use support::Registry;

/// A repository under a cosign `verify` rule.
const SIGNED: &str = "signed/app";
/// A repository under `allow`.
const OPEN: &str = "open/app";
/// The deployment's key prefix in the bucket.
const PREFIX: &str = "content";
const MIB: u64 = 1 << 20;

/// One test's peers. Fields drop in order: the proxy first.
struct Env {
    proxy: Proxy,
    mitm: Mitm,
    registry: Registry,
    key: Key,
    _keys: tempfile::TempDir,
}

/// A response as the client's socket saw it, however it ended.
struct Got {
    status: u16,
    content_length: Option<u64>,
    /// The body bytes received (de-chunked).
    body: Vec<u8>,
    /// Whether the body ended as its framing says a complete body ends.
    complete: bool,
}

/// The largest file seen in a directory while it runs.
struct TmpWatch {
    stop: Arc<AtomicBool>,
    largest: Arc<AtomicU64>,
    thread: thread::JoinHandle<()>,
}

impl Env {
    /// The registry behind the man in the middle, a cosign key, and the proxy with a cache of
    /// `cache_size` and `extra` configuration (`limits`, `storage`).
    fn start(cache_size: &str, extra: &str) -> Env {
        let registry = Registry::start();
        let mitm = Mitm::start(&registry.url());
        let keys = tempfile::tempdir().unwrap();
        let key = Key::generate(keys.path(), "publisher");
        let public = serde_json::json!(key.public.to_str().unwrap()).to_string();
        let rules = [
            cosign::verify_rule(
                "signed/**",
                &format!("      keys: [{public}]\n      require_tlog: false\n"),
            ),
            format!("    - match: \"{REGISTRY}/open/**\"\n      action: allow\n"),
        ];
        let body = cosign::config(&mitm.url(), &rules) + extra;
        let proxy = Proxy::start_with_cache_size(&body, cache_size);
        Env {
            proxy,
            mitm,
            registry,
            key,
            _keys: keys,
        }
    }

    /// Pushes a signed image with one layer holding `size` random bytes as `SIGNED:v1`, and
    /// pulls its manifest through the proxy (so the proxy knows the signed closure).
    fn signed_image(&self, size: usize) -> Image {
        let image = Image::random_sized(Format::Docker, &[size]);
        image.push(&self.registry, SIGNED, "v1");
        self.key
            .sign_image(&self.registry, SIGNED, &image.manifest.digest);
        self.proxy
            .expect_served(&format!("/v2/{SIGNED}/manifests/v1"), &image.manifest.bytes);
        image
    }

    /// A random blob of `size` bytes pushed under `OPEN`.
    fn open_blob(&self, size: usize) -> Blob {
        let blob = Blob::new(random_bytes(size));
        push_blob(&self.registry, OPEN, &blob);
        blob
    }

    /// Fills the cache with `n` blobs of `size` bytes pulled under `allow`; all are stored.
    fn fill_cache(&self, n: usize, size: usize) -> Vec<Blob> {
        let blobs: Vec<Blob> = (0..n).map(|_| self.open_blob(size)).collect();
        for blob in &blobs {
            self.proxy.expect_served(&path(OPEN, blob), &blob.bytes);
        }
        for blob in &blobs {
            wait_for(|| self.stored(blob), "a filler blob to be stored");
        }
        blobs
    }

    fn stored(&self, blob: &Blob) -> bool {
        blob_file(self.proxy.cache_dir(), blob).is_file()
    }

    /// Every one of `blobs` is still in the cache.
    fn assert_all_stored(&self, blobs: &[Blob], what: &str) {
        let evicted = blobs.iter().filter(|b| !self.stored(b)).count();
        assert_eq!(
            evicted,
            0,
            "{what}: {evicted} of {} cached blobs were evicted\n{}",
            blobs.len(),
            self.proxy.log_tail(20)
        );
    }

    fn tmp(&self) -> PathBuf {
        self.proxy.cache_dir().join("tmp")
    }

    /// Nothing of `blob` was stored and its temp files are gone.
    fn assert_nothing_stored(&self, blob: &Blob) {
        assert!(!self.stored(blob), "{} was stored", blob.digest);
        wait_for(|| dir_is_empty(&self.tmp()), "the temp files to be removed");
    }

    fn get(&self, path: &str) -> Got {
        get_raw(&self.proxy, path)
    }
}

/// A transfer that failed: cut short after its head (`200`, the `length` announced, at most
/// `at_most` body bytes, incomplete), or, when it failed before its first byte, ended before
/// a head was sent at all or answered `502` (a body that came in one chunk is held back
/// whole as its last, so the mismatch is known before the head).
fn assert_cut_short(got: &Got, length: Option<u64>, at_most: u64) {
    if got.status == 0 || got.status == 502 {
        return;
    }
    assert_eq!(got.status, 200);
    if length.is_some() {
        assert_eq!(got.content_length, length);
    }
    assert!(
        !got.complete && got.body.len() as u64 <= at_most,
        "received {} bytes (at most {at_most} allowed), complete: {}",
        got.body.len(),
        got.complete
    );
}

fn path(repo: &str, blob: &Blob) -> String {
    format!("/v2/{repo}/blobs/{}", blob.digest)
}

fn blob_file(cache: &Path, blob: &Blob) -> PathBuf {
    let hex = blob.hex();
    cache.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn dir_is_empty(dir: &Path) -> bool {
    fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The bucket key of a blob.
fn key(blob: &Blob) -> String {
    format!("{PREFIX}/blobs/sha256/{}", blob.hex())
}

/// A GET whose response is read to wherever it ends (EOF, reset or a 30 s stall), keeping
/// every body byte that arrived.
fn get_raw(proxy: &Proxy, path: &str) -> Got {
    let mut stream = TcpStream::connect(proxy.host_port()).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: {ACCEPT_ALL}\r\nConnection: close\r\n\r\n",
        proxy.host_port()
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    // A response that fails at once can be reset before its head is read: a failed
    // transfer like any other (status 0, nothing complete).
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        eprintln!("GET {path}: no response head\n{}", proxy.log_tail(20));
        return Got {
            status: 0,
            content_length: None,
            body: Vec::new(),
            complete: false,
        };
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let content_length = header("content-length").and_then(|v| v.parse().ok());
    let rest = &raw[split + 4..];
    let (body, complete) = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else {
        let complete = content_length.is_some_and(|n| rest.len() as u64 == n);
        (rest.to_vec(), complete)
    };
    Got {
        status,
        content_length,
        body,
        complete,
    }
}

/// The data of a chunked body, and whether its last chunk arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let line = String::from_utf8_lossy(&rest[..eol]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (out, false);
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        let take = size.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        if take < size || rest.len() < size + 2 {
            return (out, false);
        }
        rest = &rest[size + 2..];
    }
}

// === impl TmpWatch ===

impl TmpWatch {
    /// Samples the sizes of the files in `dir` every millisecond.
    fn start(dir: PathBuf) -> TmpWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let largest = Arc::new(AtomicU64::new(0));
        let (stop_, largest_) = (stop.clone(), largest.clone());
        let thread = thread::spawn(move || {
            while !stop_.load(Ordering::SeqCst) {
                for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if let Ok(meta) = entry.metadata() {
                        largest_.fetch_max(meta.len(), Ordering::SeqCst);
                    }
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        TmpWatch {
            stop,
            largest,
            thread,
        }
    }

    /// The largest temp file seen.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        self.largest.load(Ordering::SeqCst)
    }
}

// === the upstream under `verify` ===

#[test]
fn attack_signed_layer_with_endless_body_yields_exactly_its_signed_bytes() {
    let env = Env::start("1GiB", "");
    let image = env.signed_image(256 * 1024);
    let layer = &image.layers[0];
    // The genuine bytes, then again and again: only the length is wrong. The blob is read to
    // its signed size and no further; those bytes verify, so exactly they are served.
    env.mitm.on(
        &path(SIGNED, layer),
        Reply::Endless {
            chunk: layer.bytes.clone().into(),
        },
    );
    let watch = TmpWatch::start(env.tmp());
    let got = env.get(&path(SIGNED, layer));
    let largest_tmp = watch.finish();
    assert_eq!(got.status, 200);
    assert_eq!(
        got.content_length,
        Some(layer.size()),
        "Content-Length is the signed size"
    );
    assert!(got.complete, "received {} bytes", got.body.len());
    assert_eq!(got.body, layer.bytes, "exactly the signed bytes");
    assert!(
        largest_tmp <= layer.size(),
        "a temp file grew to {largest_tmp} bytes"
    );
    assert!(
        env.mitm.bytes_sent() < 64 * MIB,
        "the upstream body was read on: {} bytes",
        env.mitm.bytes_sent()
    );
}

#[test]
fn attack_signed_layer_with_endless_junk_yields_less_than_its_size_then_an_error() {
    let env = Env::start("1GiB", "");
    let image = env.signed_image(256 * 1024);
    let layer = &image.layers[0];
    // Other bytes, endlessly: the signed size of them fails the digest.
    env.mitm.on(
        &path(SIGNED, layer),
        Reply::Endless {
            chunk: vec![0x5a; 64 * 1024].into(),
        },
    );
    let watch = TmpWatch::start(env.tmp());
    let got = env.get(&path(SIGNED, layer));
    let largest_tmp = watch.finish();
    assert_cut_short(&got, Some(layer.size()), layer.size() - 1);
    assert!(
        largest_tmp <= layer.size(),
        "a temp file grew to {largest_tmp} bytes"
    );
    env.assert_nothing_stored(layer);
    assert!(
        env.mitm.bytes_sent() < 64 * MIB,
        "the upstream body was read on: {} bytes",
        env.mitm.bytes_sent()
    );
    env.mitm.clear();
    env.proxy.expect_served(&path(SIGNED, layer), &layer.bytes);
}

#[test]
fn attack_signed_tiny_layer_announced_as_15mib_evicts_nothing() {
    let env = Env::start("16MiB", "");
    let cached = env.fill_cache(7, 2 * MIB as usize);
    let image = env.signed_image(100);
    let layer = &image.layers[0];
    env.mitm.on(
        &path(SIGNED, layer),
        Reply::Declared {
            content_length: 15 * MIB,
            body: layer.bytes.clone().into(),
        },
    );

    let got = env.get(&path(SIGNED, layer));
    assert_eq!(
        got.status, 502,
        "a length other than the signed one fails before the body"
    );
    env.assert_all_stored(&cached, "after a 15 MiB announcement");
    env.assert_nothing_stored(layer);

    env.mitm.clear();
    env.proxy.expect_served(&path(SIGNED, layer), &layer.bytes);
    env.assert_all_stored(&cached, "after the honest fetch");
}

#[test]
fn attack_signed_layer_with_short_body_fails_and_stores_nothing() {
    let env = Env::start("1GiB", "");
    let image = env.signed_image(64 * 1024);
    let layer = &image.layers[0];
    env.mitm.on(
        &path(SIGNED, layer),
        Reply::Truncated {
            body: layer.bytes.clone().into(),
        },
    );

    let got = env.get(&path(SIGNED, layer));
    assert_cut_short(&got, Some(layer.size()), layer.size() / 2);
    env.assert_nothing_stored(layer);

    env.mitm.clear();
    env.proxy.expect_served(&path(SIGNED, layer), &layer.bytes);
}

// === the upstream under `allow` ===

#[test]
fn attack_open_blob_longer_than_max_blob_size_is_cut_off() {
    let env = Env::start("1GiB", "limits: {max_blob_size: 1MiB}\n");
    // Announced longer than the limit: refused before the body.
    let large = env.open_blob(2 * MIB as usize);
    let got = env.get(&path(OPEN, &large));
    assert_eq!(got.status, 502, "a blob announced over the limit");
    env.assert_nothing_stored(&large);

    // Not announced, and endless: cut off at the limit.
    let endless = Blob::new(random_bytes(64 * 1024));
    env.mitm.on(
        &path(OPEN, &endless),
        Reply::Endless {
            chunk: endless.bytes.clone().into(),
        },
    );
    let watch = TmpWatch::start(env.tmp());
    let got = env.get(&path(OPEN, &endless));
    let largest_tmp = watch.finish();
    assert_cut_short(&got, None, MIB);
    assert!(
        largest_tmp <= MIB,
        "a temp file grew to {largest_tmp} bytes"
    );
    env.assert_nothing_stored(&endless);
}

#[test]
fn attack_open_blob_with_lying_content_length_evicts_nothing() {
    let env = Env::start("16MiB", "");
    let cached = env.fill_cache(7, 2 * MIB as usize);
    let blob = env.open_blob(4096);
    env.mitm.on(
        &path(OPEN, &blob),
        Reply::Declared {
            content_length: 15 * MIB,
            body: blob.bytes.clone().into(),
        },
    );

    let got = env.get(&path(OPEN, &blob));
    assert!(
        got.status != 200 || !got.complete,
        "a body shorter than announced must not complete"
    );
    env.assert_all_stored(&cached, "after a 15 MiB announcement");
    env.assert_nothing_stored(&blob);

    env.mitm.clear();
    env.proxy.expect_served(&path(OPEN, &blob), &blob.bytes);
    env.assert_all_stored(&cached, "after the honest fetch");
}

// === the bucket ===

/// `storage` for `s3`'s bucket and a short bucket deadline (`upstream_timeout` bounds it).
fn bucket_yaml(s3: &S3Server) -> String {
    s3.storage_yaml(PREFIX) + "limits: {upstream_timeout: 2s}\n"
}

fn mismatches(env: &Env) -> f64 {
    env.proxy
        .metric("trustgate_shared_store_digest_mismatches_total")
        .unwrap_or(0.0)
}

#[test]
fn attack_bucket_object_of_the_wrong_size_is_ignored_unread() {
    let s3 = S3Server::start();
    let env = Env::start("16MiB", &bucket_yaml(&s3));
    let cached = env.fill_cache(7, 2 * MIB as usize);
    let image = env.signed_image(4096);
    let layer = &image.layers[0];
    s3.put(&key(layer), random_bytes(15 * MIB as usize));

    env.proxy.expect_served(&path(SIGNED, layer), &layer.bytes);
    assert_eq!(mismatches(&env), 1.0);
    env.assert_all_stored(&cached, "after a 15 MiB object under a signed size");
}

#[test]
fn attack_bucket_swapped_object_is_not_served() {
    let s3 = S3Server::start();
    let env = Env::start("1GiB", &bucket_yaml(&s3));
    let wanted = env.open_blob(64 * 1024);
    // Another blob's genuine object, of the same size, under the wanted key.
    let other = Blob::new(random_bytes(64 * 1024));
    s3.put(&key(&wanted), other.bytes.clone());

    // Streamed like a wrong upstream body: stopped short before its last chunk, nothing
    // stored; the retry reads upstream.
    let got = env.get(&path(OPEN, &wanted));
    assert_cut_short(&got, Some(wanted.size()), wanted.size() - 1);
    assert_eq!(mismatches(&env), 1.0);
    env.assert_nothing_stored(&wanted);
    env.proxy.expect_served(&path(OPEN, &wanted), &wanted.bytes);
    assert_eq!(mismatches(&env), 1.0);
    wait_for(|| env.stored(&wanted), "the upstream copy to be stored");
    // The verified copy replaces the wrong object.
    wait_for(
        || s3.get(&key(&wanted)).as_ref() == Some(&wanted.bytes),
        "the bucket's object to be repaired",
    );
}

#[test]
fn attack_bucket_junk_object_as_large_as_the_cache_evicts_nothing() {
    let s3 = S3Server::start();
    let env = Env::start("16MiB", &bucket_yaml(&s3));
    let cached = env.fill_cache(7, 2 * MIB as usize);
    let blob = env.open_blob(4096);
    s3.put(&key(&blob), random_bytes(16 * MIB as usize));

    // No signed size: the bucket's 16 MiB are streamed (and stopped short at the digest),
    // cached only in the room that was free: nothing is evicted for them.
    let got = env.get(&path(OPEN, &blob));
    assert_cut_short(&got, Some(16 * MIB), 16 * MIB - 1);
    assert_eq!(mismatches(&env), 1.0);
    env.assert_all_stored(&cached, "after a junk object as large as the cache");
    env.assert_nothing_stored(&blob);
    env.proxy.expect_served(&path(OPEN, &blob), &blob.bytes);
    wait_for(|| env.stored(&blob), "the upstream copy to be stored");
}

/// Two concurrent pulls of `blob` under `OPEN`; both must be served, and soon.
fn pull_twice_concurrently(env: &Env, blob: &Blob) -> Duration {
    let started = Instant::now();
    thread::scope(|scope| {
        let pulls: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| env.proxy.pull(&path(OPEN, blob))))
            .collect();
        for pull in pulls {
            let r = pull.join().unwrap();
            assert_eq!(
                (r.status, r.body == blob.bytes),
                (200, true),
                "{}\n{}",
                r.summary(),
                env.proxy.log_tail(20)
            );
        }
    });
    started.elapsed()
}

#[test]
fn attack_bucket_that_drips_an_object_falls_back_to_upstream() {
    let s3 = S3Server::start();
    let blob = Blob::new(random_bytes(2048));
    // The genuine bytes, one every 2 s: it would take over an hour.
    let drip = DripBucket::start(
        vec![(key(&blob), blob.bytes.clone())],
        Duration::from_secs(2),
    );
    let extra = s3.storage_yaml_at(&drip.endpoint(), PREFIX) + "limits: {upstream_timeout: 2s}\n";
    let env = Env::start("1GiB", &extra);
    push_blob(&env.registry, OPEN, &blob);

    let elapsed = pull_twice_concurrently(&env, &blob);
    assert!(drip.gets() >= 1, "the bucket was asked");
    assert!(
        elapsed < Duration::from_secs(15),
        "the dripping bucket held the pulls for {elapsed:?}"
    );
    // The bytes the bucket had sent were kept; the rest came from upstream.
    assert!(
        env.proxy
            .log_tail(200)
            .contains("the rest of the blob comes from upstream"),
        "{}",
        env.proxy.log_tail(20)
    );
}

#[test]
fn attack_bucket_that_drips_a_manifest_falls_back_to_upstream() {
    // Manifests from the bucket have the same whole-body deadline as blobs.
    let s3 = S3Server::start();
    let image = Image::random(1);
    let drip = DripBucket::start(
        vec![(key(&image.manifest), image.manifest.bytes.clone())],
        Duration::from_secs(2),
    );
    let extra = s3.storage_yaml_at(&drip.endpoint(), PREFIX) + "limits: {upstream_timeout: 2s}\n";
    let env = Env::start("1GiB", &extra);
    image.push(&env.registry, OPEN, "v1");
    let started = Instant::now();
    env.proxy.expect_served(
        &format!("/v2/{OPEN}/manifests/{}", image.manifest.digest),
        &image.manifest.bytes,
    );
    let elapsed = started.elapsed();
    assert!(drip.gets() >= 1, "the bucket was asked");
    assert!(
        elapsed < Duration::from_secs(15),
        "the dripping bucket held the manifest for {elapsed:?}"
    );
}

#[test]
fn attack_bucket_that_never_answers_falls_back_to_upstream() {
    let s3 = S3Server::start();
    let silent = Mitm::standalone();
    silent.on_prefix("/", Reply::Hang(Duration::from_secs(120)));
    let extra = s3.storage_yaml_at(&silent.url(), PREFIX) + "limits: {upstream_timeout: 2s}\n";
    let env = Env::start("1GiB", &extra);
    let blob = env.open_blob(2048);

    let elapsed = pull_twice_concurrently(&env, &blob);
    assert!(silent.count("/") >= 1, "the bucket was asked");
    assert!(
        elapsed < Duration::from_secs(15),
        "the silent bucket held the pulls for {elapsed:?}"
    );
}
