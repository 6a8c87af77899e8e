//! Faults: `trustgate serve` between real peers (`docker-registry`, `notary-server`, the
//! `notary` CLI, `skopeo`) while one of them fails, with in-process fakes only where a real
//! peer cannot fail on demand: a TCP forwarder in front of the registry (stall, refuse,
//! throttle) and a scripted HTTP server in front of the notary server (garbage, error status,
//! cut-off and endless bodies, no answer).
//!
//! The promise under test: no byte of content that failed verification ever reaches a client
//! as a complete object or is cached, and every failure is answered quickly with an OCI error
//! while the process stays healthy.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::fakes::{FakeHttp, Forwarder, Link, Reply};
use support::http::{self, HttpResponse};
use support::oci::{self, Blob, Format, Image, ACCEPT_ALL, OCI_MANIFEST};
use support::proxy::{metric_value, Proxy};
use support::{NotaryCli, NotaryServer, Registry};

/// The upstream's name in GUNs and rule patterns.
const REGISTRY: &str = "registry.test";
/// The notary server's `ttl`.
const TTL: Duration = Duration::from_secs(1);
/// `limits.upstream_timeout` and `limits.upstream_read_timeout`.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// What "fails quickly" allows: the upstream timeout plus slack for a loaded machine.
const QUICKLY: Duration = Duration::from_secs(6);
/// `limits.max_trust_metadata_size`.
const TRUST_LIMIT: u64 = 1 << 20;

// === the environment of one test ===

/// What the fake in front of the notary server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrustFault {
    /// Forward to the real server.
    Pass,
    /// Close every connection: the server is down.
    Down,
    /// Never answer.
    Slow,
    /// A complete `200` whose body is not trust data.
    Garbage,
    /// `503`.
    Unavailable,
    /// `Content-Length` promises more than is sent before the connection closes.
    Truncated,
    /// An endless body.
    Oversized,
}

/// One test's peers. Fields drop in order: the proxy first.
struct Env {
    proxy: Option<Proxy>,
    /// In front of the registry: the proxy's upstream.
    upstream: Forwarder,
    /// In front of the notary server, when the test injects trust faults.
    trust_front: Option<(FakeHttp, Arc<Mutex<TrustFault>>)>,
    registry: Registry,
    cli: NotaryCli,
    _notary: NotaryServer,
    cache: PathBuf,
    _cache_dir: Option<tempfile::TempDir>,
    body: String,
    initialised: Mutex<Vec<String>>,
}

impl Env {
    fn start() -> Env {
        Env::launch(false, None)
    }

    /// With a scripted server between the proxy and the notary server.
    fn with_trust_front() -> Env {
        Env::launch(true, None)
    }

    /// With the cache in `dir` (a mount point, say).
    fn with_cache(dir: &Path) -> Env {
        Env::launch(false, Some(dir))
    }

    fn launch(trust_front: bool, cache: Option<&Path>) -> Env {
        let notary = NotaryServer::start();
        let cli = NotaryCli::for_server(&notary);
        let registry = Registry::start();
        let upstream = Forwarder::start(&registry.host_port());
        let trust_front = trust_front.then(|| {
            let fault = Arc::new(Mutex::new(TrustFault::Pass));
            let (mode, real) = (fault.clone(), notary.url());
            let front = FakeHttp::start(move |path| match *mode.lock().unwrap() {
                TrustFault::Pass => Reply::Forward(format!("{real}{path}")),
                TrustFault::Down => Reply::Close,
                TrustFault::Slow => Reply::Hang(Duration::from_secs(30)),
                TrustFault::Garbage => {
                    Reply::ok("application/json", r#"{"signed": {"_type": "Timestamp""#)
                }
                TrustFault::Unavailable => Reply::status(503),
                TrustFault::Truncated => Reply::Truncated {
                    body: vec![b' '; 8192].into(),
                },
                TrustFault::Oversized => Reply::Endless {
                    chunk: vec![b' '; 64 * 1024].into(),
                },
            });
            (front, fault)
        });
        let (cache, cache_dir) = match cache {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let dir = tempfile::tempdir().expect("tempdir for the cache");
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let notary_url = match &trust_front {
            Some((front, _)) => front.url(),
            None => notary.url(),
        };
        let body = format!(
            r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
notary_servers:
  - {{name: local, url: "{notary_url}", ttl: {}s}}
limits: {{upstream_timeout: {}s, upstream_read_timeout: {}s, max_trust_metadata_size: {TRUST_LIMIT}}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/signed/**", action: verify, notary: local}}
    - {{match: "{REGISTRY}/stale/**", action: verify, notary: local, stale_if_error: 10m}}
    - {{match: "{REGISTRY}/open/**", action: allow}}
"#,
            upstream.url(),
            TTL.as_secs(),
            UPSTREAM_TIMEOUT.as_secs(),
            UPSTREAM_TIMEOUT.as_secs(),
        );
        let proxy = Proxy::start_with_cache(&body, &cache);
        Env {
            proxy: Some(proxy),
            upstream,
            trust_front,
            registry,
            cli,
            _notary: notary,
            cache,
            _cache_dir: cache_dir,
            body,
            initialised: Mutex::new(Vec::new()),
        }
    }

    fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("proxy running")
    }

    /// SIGKILL (the test helper's drop kills with SIGKILL), then a fresh process on the same
    /// cache and configuration.
    fn kill_proxy(&mut self) {
        self.proxy = None;
    }

    fn start_proxy(&mut self) {
        self.proxy = Some(Proxy::start_with_cache(&self.body, &self.cache));
    }

    fn trust_fault(&self, fault: TrustFault) {
        let (_, mode) = self.trust_front.as_ref().expect("a trust front");
        *mode.lock().unwrap() = fault;
    }

    /// Pushes `image` as `<repo>:<tag>` and signs it in `targets` (unless `repo` is `open/`).
    fn publish(&self, image: &Image, repo: &str, tag: &str) {
        image.push(&self.registry, repo, tag);
        if repo.starts_with("open/") {
            return;
        }
        let gun = format!("{REGISTRY}/{repo}");
        let mut done = self.initialised.lock().unwrap();
        if !done.contains(&gun) {
            self.cli.init(&gun);
            done.push(gun.clone());
        }
        self.cli
            .addhash(&gun, tag, image.manifest.size(), image.manifest.hex(), &[]);
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.proxy()
            .request("GET", path, &[("Accept", ACCEPT_ALL)], b"")
    }

    /// A GET and how long it took.
    fn timed_get(&self, path: &str) -> (HttpResponse, Duration) {
        let started = Instant::now();
        let r = self.get(path);
        (r, started.elapsed())
    }

    /// A GET whose transfer may fail mid-way: `None` when the connection broke.
    fn try_get(&self, path: &str) -> Option<HttpResponse> {
        let url = format!("{}{path}", self.proxy().url());
        http::request("GET", &url, &[("Accept", ACCEPT_ALL)], b"").ok()
    }

    fn healthy(&self) {
        let url = format!("{}/healthz", self.proxy().admin_url());
        let r = http::request("GET", &url, &[], b"").expect("GET /healthz");
        self.ensure(r.status == 200, || format!("/healthz: {}", r.summary()));
    }

    fn metric(&self, series: &str) -> f64 {
        metric_value(&self.proxy().metrics(), series).unwrap_or(0.0)
    }

    /// Requests that reached the registry and were answered 200.
    fn upstream_hits(&self) -> f64 {
        self.metric(&format!(
            r#"trustgate_upstream_requests_total{{code="200",upstream="{REGISTRY}"}}"#
        ))
    }

    /// Where the store keeps an object.
    fn cached_path(&self, blob: &Blob) -> PathBuf {
        self.cache
            .join("blobs/sha256")
            .join(&blob.hex()[..2])
            .join(blob.hex())
    }

    /// Files under the cache's `tmp/`.
    fn temp_files(&self) -> Vec<(PathBuf, u64)> {
        fs::read_dir(self.cache.join("tmp"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }

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

    /// A `200` carrying exactly `blob`.
    fn expect_content(&self, r: &HttpResponse, what: &str, blob: &Blob) {
        self.ensure(r.status == 200 && r.body == blob.bytes, || {
            format!(
                "{what}: want 200 with {} ({} bytes), got {} bytes: {}",
                blob.digest,
                blob.size(),
                r.body.len(),
                r.summary()
            )
        });
    }

    /// An OCI error with a status in `statuses`; returns the message.
    fn expect_error(
        &self,
        r: &HttpResponse,
        what: &str,
        statuses: std::ops::RangeInclusive<u16>,
        code: Option<&str>,
    ) -> String {
        let message = r.error_message().unwrap_or_default();
        self.ensure(
            statuses.contains(&r.status)
                && r.error_code().is_some()
                && code.is_none_or(|c| r.error_code().as_deref() == Some(c))
                && !message.is_empty(),
            || {
                format!(
                    "{what}: want an OCI error {statuses:?} {code:?}, got {}",
                    r.summary()
                )
            },
        );
        message
    }

    /// Quick, clear 5xx that is not a refusal: an upstream failure.
    fn expect_upstream_failure(&self, path: &str, what: &str) -> String {
        let (r, took) = self.timed_get(path);
        let message = self.expect_error(&r, what, 500..=599, None);
        self.ensure(r.error_code().as_deref() != Some("DENIED"), || {
            format!(
                "{what}: an upstream fault must not read as a refusal: {}",
                r.summary()
            )
        });
        self.ensure(took < QUICKLY, || {
            format!("{what}: took {took:?}, want under {QUICKLY:?}")
        });
        message
    }
}

fn manifest_path(repo: &str, reference: &str) -> String {
    format!("/v2/{repo}/manifests/{reference}")
}

fn blob_path(repo: &str, digest: &str) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

/// Whether a response carries a complete `len`-byte object: 200, a `Content-Length` (or
/// chunked end) matching what arrived, and all of it.
fn complete(r: &HttpResponse, len: usize) -> bool {
    let declared = r
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok());
    r.status == 200 && declared.is_none_or(|d| d == r.body.len()) && r.body.len() == len
}

/// Same length, one byte changed.
fn corrupt(bytes: &[u8]) -> Vec<u8> {
    let mut bad = bytes.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 0x5a;
    bad
}

/// Every file under `dir` whose content is exactly `bytes`.
fn files_with_content(dir: &Path, bytes: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if fs::read(&path).is_ok_and(|b| b == bytes) {
                found.push(path);
            }
        }
    }
    found
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(25));
    }
    done()
}

// === upstream registry down or stalled ===

#[test]
fn upstream_down_or_stalled_serves_the_cache_and_fails_fast_otherwise() {
    let env = Env::start();
    let repo = "signed/updown";
    let image = Image::random(3);
    env.publish(&image, repo, "v1");
    image.push(&env.registry, "open/updown", "v1");
    let (config, cached, uncached, stalling) = (
        &image.config,
        &image.layers[0],
        &image.layers[1],
        &image.layers[2],
    );
    let tag = manifest_path(repo, "v1");
    env.expect_content(&env.get(&tag), "GET tag (fills the cache)", &image.manifest);
    for blob in [config, cached] {
        let r = env.get(&blob_path(repo, &blob.digest));
        env.expect_content(&r, "GET blob (fills the cache)", blob);
    }

    for (link, status) in [(Link::Stall, 504), (Link::Refuse, 502)] {
        env.upstream.set(link);
        // Verified content in the cache, trust data fresh (the notary server is up): served.
        let (r, took) = env.timed_get(&tag);
        env.expect_content(&r, &format!("GET tag, upstream {link:?}"), &image.manifest);
        env.ensure(took < UPSTREAM_TIMEOUT, || {
            format!("a cached manifest waited for the {link:?} upstream: {took:?}")
        });
        for blob in [config, cached] {
            let r = env.get(&blob_path(repo, &blob.digest));
            env.expect_content(&r, &format!("GET cached blob, upstream {link:?}"), blob);
        }
        // Anything else needs the upstream: a clear 5xx, quickly.
        let what = format!("uncached blob, upstream {link:?}");
        let message = env.expect_upstream_failure(&blob_path(repo, &uncached.digest), &what);
        let r = env.get(&blob_path(repo, &uncached.digest));
        env.ensure(r.status == status, || {
            format!("{what}: want {status}, got {}", r.summary())
        });
        env.ensure(
            message.contains(REGISTRY) || message.contains("upstream"),
            || format!("{what}: the message should name the upstream: {message:?}"),
        );
        let what = format!("unverified tag (allow rule), upstream {link:?}");
        env.expect_upstream_failure(&manifest_path("open/updown", "v1"), &what);
        env.healthy();
    }

    // An upstream that stalls in the middle of a body: the transfer fails within the read
    // timeout, short, and nothing is cached.
    env.upstream.set(Link::Throttle {
        bytes: 1024,
        every: Duration::from_secs(30),
    });
    let started = Instant::now();
    let r = env.try_get(&blob_path(repo, &stalling.digest));
    let took = started.elapsed();
    env.ensure(
        r.as_ref()
            .is_none_or(|r| !complete(r, stalling.bytes.len())),
        || "a blob whose upstream stalled mid-body was delivered complete".to_owned(),
    );
    env.ensure(took < QUICKLY, || {
        format!("a stalled blob body held the client for {took:?}")
    });
    env.ensure(!env.cached_path(stalling).exists(), || {
        "a partly fetched blob was stored".to_owned()
    });

    // Back up: everything is served, nothing was remembered from the outage.
    env.upstream.set(Link::Pass);
    for blob in [uncached, stalling] {
        let r = env.get(&blob_path(repo, &blob.digest));
        env.expect_content(&r, "GET blob, upstream back", blob);
    }
    env.healthy();
}

// === notary server faults ===

#[test]
fn trust_server_faults_fail_closed_after_ttl_unless_stale_if_error() {
    let env = Env::with_trust_front();
    let image = Image::random(1);
    // `signed/` fails closed (stale_if_error 0s); `stale/` may serve cached trust data for
    // 10 minutes while the server cannot be reached.
    let (strict, lenient) = ("signed/trustfault", "stale/trustfault");
    env.publish(&image, strict, "v1");
    env.publish(&image, lenient, "v1");
    let (strict_tag, lenient_tag) = (manifest_path(strict, "v1"), manifest_path(lenient, "v1"));
    let config = blob_path(strict, &image.config.digest);

    let mut primed: Option<Instant> = None;
    for fault in [
        TrustFault::Down,
        TrustFault::Slow,
        TrustFault::Garbage,
        TrustFault::Unavailable,
        TrustFault::Truncated,
        TrustFault::Oversized,
    ] {
        // Fresh trust data for both repositories from a working server.
        env.trust_fault(TrustFault::Pass);
        if let Some(at) = primed {
            thread::sleep(
                (at + TTL + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
            );
        }
        for tag in [&strict_tag, &lenient_tag] {
            env.expect_content(&env.get(tag), "GET tag, trust server fine", &image.manifest);
        }
        let at = Instant::now();
        primed = Some(at);

        env.trust_fault(fault);
        // Within ttl the cached trust data stands (checked when the machine was quick enough
        // to still be inside it).
        let r = env.get(&strict_tag);
        if at.elapsed() < TTL - Duration::from_millis(300) {
            env.expect_content(
                &r,
                &format!("GET tag within ttl, trust {fault:?}"),
                &image.manifest,
            );
        }
        thread::sleep(
            (at + TTL + Duration::from_millis(100)).saturating_duration_since(Instant::now()),
        );

        // After ttl: refused, clearly and quickly, content cached or not.
        let what = format!("tag after ttl, trust {fault:?}");
        let (r, took) = env.timed_get(&strict_tag);
        let message = env.expect_error(&r, &what, 403..=403, Some("DENIED"));
        env.ensure(message.contains("notary server local"), || {
            format!("{what}: the refusal should name the trust server: {message:?}")
        });
        env.ensure(took < QUICKLY, || format!("{what}: took {took:?}"));
        let r = env.get(&config);
        env.expect_error(
            &r,
            &format!("cached blob after ttl, trust {fault:?}"),
            403..=403,
            Some("DENIED"),
        );

        // stale_if_error covers a server that cannot be reached or answers with an error, never
        // one that served something that does not verify.
        let what = format!("stale_if_error tag after ttl, trust {fault:?}");
        let r = env.get(&lenient_tag);
        if fault == TrustFault::Garbage {
            env.expect_error(&r, &what, 403..=403, Some("DENIED"));
        } else {
            env.expect_content(&r, &what, &image.manifest);
        }
        env.healthy();
        eprintln!("trust {fault:?}: {message}");
    }

    // An endless body was cut off at the size limit: the proxy stopped reading long before
    // the fake stopped writing (it gives up at 1 GiB).
    let (front, _) = env.trust_front.as_ref().unwrap();
    let sent = front.bytes_sent();
    env.ensure(sent < 64 << 20, || {
        format!("{sent} bytes of an endless trust file were read (limit {TRUST_LIMIT})")
    });

    // The server recovers: so does verification.
    env.trust_fault(TrustFault::Pass);
    thread::sleep(TTL);
    env.expect_content(
        &env.get(&strict_tag),
        "GET tag, trust server back",
        &image.manifest,
    );
}

// === content that does not match its digest ===

#[test]
fn corrupt_upstream_blob_never_completes_is_not_cached_and_is_retried() {
    let env = Env::start();
    let image = Image::random_sized(Format::Oci, &[3 << 20]);
    env.publish(&image, "signed/rot", "v1");
    image.push(&env.registry, "open/rot", "v1");
    env.expect_content(
        &env.get(&manifest_path("signed/rot", "v1")),
        "GET tag",
        &image.manifest,
    );
    let layer = &image.layers[0];
    let on_disk = env.registry.blob_path(layer.hex());
    let bad = corrupt(&layer.bytes);
    fs::write(&on_disk, &bad).unwrap();

    // Several clients at once, under verify and under allow (content is checked either way):
    // whoever leads the fetch and whoever joins it gets a short, failed transfer.
    let paths: Vec<String> = [
        "signed/rot",
        "signed/rot",
        "signed/rot",
        "open/rot",
        "open/rot",
    ]
    .iter()
    .map(|repo| blob_path(repo, &layer.digest))
    .collect();
    let barrier = Barrier::new(paths.len());
    let results: Vec<Option<HttpResponse>> = thread::scope(|s| {
        let handles: Vec<_> = paths
            .iter()
            .map(|path| {
                let (env, barrier) = (&env, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    env.try_get(path)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (path, r) in paths.iter().zip(&results) {
        env.ensure(r.as_ref().is_none_or(|r| !complete(r, bad.len())), || {
            format!(
                "GET {path} of a corrupted blob completed: {}",
                r.as_ref().unwrap().summary()
            )
        });
        if let Some(r) = r.as_ref().filter(|r| r.status == 200) {
            // What did arrive was never more than everything but the last chunk.
            env.ensure(r.body.len() < bad.len(), || {
                format!("GET {path}: {}", r.summary())
            });
        }
    }
    env.ensure(
        wait_until(Duration::from_secs(5), || env.temp_files().is_empty()),
        || format!("temp files left behind: {:?}", env.temp_files()),
    );
    env.ensure(!env.cached_path(layer).exists(), || {
        "the corrupted blob was stored".to_owned()
    });
    env.ensure(files_with_content(&env.cache, &bad).is_empty(), || {
        "the corrupted bytes are somewhere in the cache".to_owned()
    });

    // No failure is remembered: the next request goes upstream again.
    let before = env.upstream_hits();
    let r = env.try_get(&paths[0]);
    env.ensure(r.as_ref().is_none_or(|r| !complete(r, bad.len())), || {
        "the retried corrupted blob completed".to_owned()
    });
    env.ensure(env.upstream_hits() > before, || {
        "the request after a mismatch did not go upstream again".to_owned()
    });

    // Repaired upstream: served, and now cached.
    fs::write(&on_disk, &layer.bytes).unwrap();
    env.expect_content(&env.get(&paths[0]), "GET repaired blob", layer);
    env.ensure(
        wait_until(Duration::from_secs(5), || env.cached_path(layer).exists()),
        || "the repaired blob was not cached".to_owned(),
    );
    env.expect_content(&env.get(&paths[3]), "GET repaired blob (allow)", layer);
    env.healthy();
}

// === SIGKILL mid-download and mid-cache-write ===

/// Sends a GET on a raw connection and returns it, to read the response at the test's pace.
fn start_get(proxy: &Proxy, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.host_port()).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        proxy.host_port()
    )
    .unwrap();
    stream
}

/// Reads until at least `want` bytes arrived (or the stream ends); returns what arrived.
fn read_at_least(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    while got.len() < want {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn sigkill_mid_download_and_mid_cache_write_leaves_nothing_partial() {
    let mut env = Env::start();
    let repo = "signed/killed";
    let image = Image::random_sized(Format::Oci, &[6 << 20, 2 << 20]);
    env.publish(&image, repo, "v1");
    let (big, second) = (&image.layers[0], &image.layers[1]);
    let tag = manifest_path(repo, "v1");
    env.expect_content(&env.get(&tag), "GET tag", &image.manifest);
    env.expect_content(
        &env.get(&blob_path(repo, &image.config.digest)),
        "GET config",
        &image.config,
    );

    // A slow upstream (about 2.5 MB/s), so the kill lands in the middle.
    env.upstream.set(Link::Throttle {
        bytes: 64 * 1024,
        every: Duration::from_millis(25),
    });
    let mut client = start_get(env.proxy(), &blob_path(repo, &big.digest));
    let got = read_at_least(&mut client, 1 << 20);
    env.ensure(got.len() >= 1 << 20, || {
        format!("only {} bytes arrived", got.len())
    });
    // The leader is writing the temp file as the bytes stream.
    env.ensure(
        wait_until(Duration::from_secs(5), || {
            env.temp_files().iter().any(|(_, len)| *len > 0)
        }),
        || "no temp file is being written".to_owned(),
    );
    env.kill_proxy();
    let rest = read_at_least(&mut client, usize::MAX);
    env.ensure(got.len() + rest.len() < big.bytes.len(), || {
        "the client got the whole blob although the proxy died".to_owned()
    });
    let leftovers = env.temp_files();
    env.ensure(!leftovers.is_empty(), || {
        "the crash left no temp file (not mid-write?)".to_owned()
    });
    env.ensure(!env.cached_path(big).exists(), || {
        "a blob killed mid-download has a name in the cache".to_owned()
    });

    // Restart on the same cache with the upstream down: the crashed write is cleared, the
    // index is rebuilt from what was complete, and the half-fetched blob is not served.
    env.upstream.set(Link::Refuse);
    env.start_proxy();
    env.ensure(env.temp_files().is_empty(), || {
        format!("temp files survived the restart: {:?}", env.temp_files())
    });
    env.expect_content(
        &env.get(&tag),
        "GET tag after restart, upstream down",
        &image.manifest,
    );
    env.expect_content(
        &env.get(&blob_path(repo, &image.config.digest)),
        "GET config after restart, upstream down",
        &image.config,
    );
    env.expect_upstream_failure(
        &blob_path(repo, &big.digest),
        "half-fetched blob after restart",
    );
    env.upstream.set(Link::Pass);
    env.expect_content(
        &env.get(&blob_path(repo, &big.digest)),
        "GET blob after restart",
        big,
    );
    env.ensure(
        wait_until(Duration::from_secs(5), || env.cached_path(big).exists()),
        || "the refetched blob was not stored".to_owned(),
    );

    // What a crash of a non-atomic writer, or a disk fault, would leave: a torn object under
    // its final name, a sidecar without its object, a stray temp file.
    env.kill_proxy();
    let torn = env.cached_path(second);
    fs::create_dir_all(torn.parent().unwrap()).unwrap();
    fs::write(&torn, &second.bytes[..second.bytes.len() / 2]).unwrap();
    let orphan = env
        .cache
        .join("blobs/sha256/ab")
        .join(format!("{}.type", "ab".repeat(32)));
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, OCI_MANIFEST).unwrap();
    fs::write(env.cache.join("tmp/stray.0.0"), b"half a write").unwrap();
    env.upstream.set(Link::Refuse);
    env.start_proxy();
    env.ensure(!orphan.exists() && env.temp_files().is_empty(), || {
        "the restart left an orphan sidecar or a temp file".to_owned()
    });
    let r = env.try_get(&blob_path(repo, &second.digest));
    env.ensure(
        r.as_ref()
            .is_none_or(|r| !complete(r, second.bytes.len() / 2)),
        || "a torn cached object was served complete".to_owned(),
    );
    env.ensure(
        wait_until(Duration::from_secs(5), || !torn.exists()),
        || "the torn object was not removed after failing its digest".to_owned(),
    );
    env.upstream.set(Link::Pass);
    env.expect_content(
        &env.get(&blob_path(repo, &second.digest)),
        "GET torn blob refetched",
        second,
    );
    env.expect_content(
        &env.get(&blob_path(repo, &big.digest)),
        "GET stored blob",
        big,
    );
    env.healthy();
}

// === disk full ===

/// A small tmpfs mounted on a tempdir (needs root and a kernel that lets us), unmounted on
/// drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn disk_full_keeps_serving_uncached_and_counts_write_failures() {
    // A real full filesystem: a 1 MiB tmpfs as the cache. Where mounting is refused, the
    // nearest faithful substitute: the cache's `tmp/` replaced by a file after start-up, so
    // every write into the cache fails with an I/O error the same way.
    let disk = SmallDisk::mount(1 << 20);
    let (env, how) = match &disk {
        Ok(disk) => (Env::with_cache(disk.path()), "a full 1 MiB tmpfs"),
        Err(why) => {
            eprintln!("cannot mount a tmpfs ({why}); substituting an unwritable cache tmp/");
            let env = Env::start();
            fs::remove_dir_all(env.cache.join("tmp")).unwrap();
            fs::write(env.cache.join("tmp"), b"not a directory").unwrap();
            (env, "an unwritable cache tmp/")
        }
    };
    eprintln!("disk full simulated with {how}");
    let repo = "signed/full";
    let image = Image::random_sized(Format::Oci, &[3 << 20]);
    env.publish(&image, repo, "v1");
    let layer = &image.layers[0];
    env.expect_content(
        &env.get(&manifest_path(repo, "v1")),
        "GET tag",
        &image.manifest,
    );

    let failures = r#"trustgate_cache_write_failures_total"#;
    for attempt in 1..=2 {
        let r = env.get(&blob_path(repo, &layer.digest));
        env.expect_content(
            &r,
            &format!("GET blob #{attempt} with the cache full ({how})"),
            layer,
        );
        // Counted when the write fails, which may be just after the response ended.
        let counted = wait_until(Duration::from_secs(5), || {
            env.metric(failures) >= f64::from(attempt)
        });
        env.ensure(counted, || {
            format!(
                "{failures} is {} after {attempt} failed write(s)",
                env.metric(failures)
            )
        });
    }
    env.ensure(!env.cached_path(layer).exists(), || {
        "a blob was stored on a full disk".to_owned()
    });
    env.ensure(
        wait_until(Duration::from_secs(5), || env.temp_files().is_empty()),
        || format!("a failed write left {:?}", env.temp_files()),
    );
    env.healthy();
    drop(env);
    drop(disk);
}

// === one upstream fetch for many cold requests ===

#[test]
fn concurrent_cold_requests_share_one_upstream_fetch() {
    let env = Env::start();
    let repo = "signed/herd";
    let image = Image::random_sized(Format::Oci, &[4 << 20]);
    env.publish(&image, repo, "v1");
    let layer = &image.layers[0];
    env.expect_content(
        &env.get(&manifest_path(repo, "v1")),
        "GET tag",
        &image.manifest,
    );
    // Slow enough (about 5 MB/s) that every client arrives while the fetch is in flight.
    env.upstream.set(Link::Throttle {
        bytes: 128 * 1024,
        every: Duration::from_millis(25),
    });
    let before = env.upstream_hits();
    let clients = 16;
    let barrier = Barrier::new(clients);
    let path = blob_path(repo, &layer.digest);
    let bodies: Vec<HttpResponse> = thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (env, barrier, path) = (&env, &barrier, &path);
                s.spawn(move || {
                    barrier.wait();
                    env.get(path)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in bodies.iter().enumerate() {
        env.expect_content(r, &format!("client {i} of {clients}"), layer);
    }
    let fetches = env.upstream_hits() - before;
    env.ensure(fetches == 1.0, || {
        format!("{clients} cold requests for one blob made {fetches} upstream fetches, want 1")
    });
    env.ensure(
        oci::sha256_digest(&fs::read(env.cached_path(layer)).unwrap()) == layer.digest,
        || "the stored blob does not hash to its name".to_owned(),
    );
}

/// Requests queued behind one trust refresh must not each wait for a refresh of their own:
/// with a trust server that never answers, the k-th of them would otherwise answer only after
/// k upstream timeouts (or hit the client's deadline instead of a clear refusal).
#[test]
fn requests_waiting_on_a_failed_trust_refresh_share_its_failure() {
    let env = Env::with_trust_front();
    let image = Image::random(1);
    let repo = "signed/queued";
    env.publish(&image, repo, "v1");
    let tag = manifest_path(repo, "v1");
    env.expect_content(&env.get(&tag), "GET tag", &image.manifest);
    env.trust_fault(TrustFault::Slow);
    thread::sleep(TTL + Duration::from_millis(100));

    let clients = 6;
    let barrier = Barrier::new(clients);
    let results: Vec<(HttpResponse, Duration)> = thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (env, barrier, tag) = (&env, &barrier, &tag);
                s.spawn(move || {
                    barrier.wait();
                    env.timed_get(tag)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (r, took)) in results.iter().enumerate() {
        let what = format!("client {i} of {clients}, trust server hanging");
        env.expect_error(r, &what, 403..=403, Some("DENIED"));
        env.ensure(*took < QUICKLY, || {
            format!("{what}: answered after {took:?}")
        });
    }
    // The refusal is not remembered beyond that: once the server answers, so does the proxy.
    env.trust_fault(TrustFault::Pass);
    env.expect_content(
        &env.get(&tag),
        "GET tag, trust server back",
        &image.manifest,
    );
}

// === a stalled upstream holds at most its connection limit ===

#[test]
fn a_stalled_upstream_holds_at_most_max_upstream_connections() {
    let upstream = FakeHttp::start(|_| Reply::Hang(Duration::from_secs(15)));
    let body = format!(
        "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{}\", default: true}}\n\
         limits: {{upstream_timeout: 2s, max_upstream_connections: 3}}\n\
         policy: {{default: allow}}\n",
        upstream.url()
    );
    let proxy = Proxy::start(&body);
    let clients = 8;
    let barrier = Barrier::new(clients);
    let results: Vec<(u16, Duration)> = thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (proxy, barrier) = (&proxy, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let started = Instant::now();
                    let path = manifest_path(&format!("open/app{i}"), "v1");
                    let r = proxy.request("GET", &path, &[("Accept", ACCEPT_ALL)], b"");
                    (r.status, started.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Each answer is bounded by one wait for a slot plus one request, each cut at
    // `upstream_timeout` (2 s): far below the 15 s the upstream hangs, with room for a loaded
    // machine's scheduling.
    let bounded = Duration::from_secs(10);
    for (i, (status, took)) in results.iter().enumerate() {
        assert_eq!(*status, 504, "client {i}");
        assert!(*took < bounded, "client {i} took {took:?}");
    }
    // At most 3 at a time; a waiter that got a slot as another timed out may have gone on
    // (and may be seen here arriving just before the closed one is seen leaving).
    let held = upstream.max_concurrent_beyond(Duration::from_millis(200));
    let reached = upstream.requests().len();
    assert_eq!(
        held, 3,
        "a stalled upstream held {held} requests at once (limit 3)"
    );
    assert!(
        reached <= clients,
        "{reached} upstream requests for {clients} clients"
    );
    let r = proxy.request("GET", "/v2/", &[], b"");
    assert_eq!(r.status, 200, "{}", r.summary());
}
