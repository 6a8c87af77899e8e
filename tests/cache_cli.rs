//! `trustgate cache warm/ls/rm/gc` as an operator runs them: the binary against a real
//! `docker-registry` (and, for the rate-limit budget, a scripted upstream that counts its
//! `ratelimit-remaining` down), then `trustgate serve` on the warmed directory.

mod support;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use support::cosign::{self, Key};
use support::fakes::{FakeHttp, Reply};
use support::oci::{Image, Index, OCI_MANIFEST};
use support::proxy::Proxy;
use support::s3::S3Server;
use support::{trustgate, Registry};

const REGISTRY: &str = "registry.test";

/// Upstream and policy: `open/**` allowed, the rest denied, and `signed/**` verified with
/// cosign when `key` is given.
fn body(upstream_url: &str, key: Option<&Key>) -> String {
    let mut rules = vec![format!(
        "    - {{match: \"{REGISTRY}/open/**\", action: allow}}\n"
    )];
    if let Some(key) = key {
        rules.push(cosign::verify_rule(
            "signed/**",
            &cosign::offline_key_trust(key),
        ));
    }
    cosign::config(upstream_url, &rules)
}

/// A configuration file in `dir` with the cache in `cache` and `body` for the rest.
fn write_config(dir: &Path, cache: &Path, body: &str) -> PathBuf {
    let path = dir.join("trustgate.yaml");
    let yaml = format!(
        "cache:\n  dir: {}\n  max_size: 1GiB\n{body}",
        serde_json::json!(cache.to_str().expect("UTF-8 tempdir"))
    );
    fs::write(&path, yaml).expect("write config");
    path
}

/// `trustgate cache <verb> --config <config> <args>`.
fn cache(verb: &str, config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["cache", verb, "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    trustgate(all)
}

/// stdout and stderr, for assertions and their messages.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// The digests `cache ls --json` lists, with their kinds.
fn listed(config: &Path) -> Vec<(String, String)> {
    let out = cache("ls", config, &["--json"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ls --json");
    doc["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            (
                o["digest"].as_str().unwrap().to_owned(),
                o["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn digests(config: &Path) -> HashSet<String> {
    listed(config).into_iter().map(|(d, _)| d).collect()
}

fn image_digests(image: &Image) -> Vec<String> {
    std::iter::once(&image.manifest)
        .chain(image.blobs())
        .map(|b| b.digest.clone())
        .collect()
}

#[test]
fn warm_fills_the_cache_serve_answers_from_resumes_and_filters_platforms() {
    let registry = Registry::start();
    let index = Index::random(&[("linux", "amd64"), ("linux", "arm64")]);
    index.push(&registry, "open/multi", "v1");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let body = body(&registry.url(), None);
    let config = write_config(dir.path(), &data, &body);

    let out = cache("warm", &config, &["open/multi:v1"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("warmed registry.test/open/multi:v1: 3 manifests, 2 layers"),
        "{log}"
    );
    let listed = listed(&config);
    let kinds: std::collections::HashMap<_, _> = listed.iter().cloned().collect();
    assert_eq!(
        kinds.get(&index.index.digest).map(String::as_str),
        Some("index")
    );
    for child in &index.children {
        assert_eq!(
            kinds.get(&child.manifest.digest).map(String::as_str),
            Some("manifest")
        );
        for blob in child.blobs() {
            assert_eq!(kinds.get(&blob.digest).map(String::as_str), Some("blob"));
        }
    }
    assert_eq!(listed.len(), 1 + 2 * 3, "{listed:?}");
    let table = cache("ls", &config, &[]);
    let table = text(&table);
    assert!(table.contains("7 objects"), "{table}");
    assert!(table.contains(&index.index.digest), "{table}");

    // Again: everything is cached, nothing is fetched.
    let again = cache("warm", &config, &["open/multi:v1"]);
    assert_eq!(code(&again), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains("2 layers, 0 B fetched"),
        "{}",
        text(&again)
    );

    // One platform only, into another cache.
    let amd64_dir = tempfile::tempdir().unwrap();
    let amd64_config = write_config(amd64_dir.path(), &amd64_dir.path().join("data"), &body);
    let out = cache(
        "warm",
        &amd64_config,
        &["--platform", "linux/amd64", "open/multi:v1"],
    );
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let cached = digests(&amd64_config);
    let (amd64, arm64) = (&index.children[0], &index.children[1]);
    assert_eq!(amd64.architecture, "amd64");
    for digest in image_digests(amd64) {
        assert!(cached.contains(&digest), "{digest} missing: {cached:?}");
    }
    for digest in image_digests(arm64) {
        assert!(!cached.contains(&digest), "{digest} of arm64 cached");
    }
    assert!(cached.contains(&index.index.digest));
    let out = cache(
        "warm",
        &amd64_config,
        &["--platform", "windows/amd64", "open/multi:v1"],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no manifest for windows/amd64"),
        "{}",
        text(&out)
    );

    // The upstream gone: the proxy serves what warm cached, from the same directory.
    drop(registry);
    let proxy = Proxy::start_with_cache(&body, &data);
    for child in &index.children {
        proxy.expect_served(
            &format!("/v2/open/multi/manifests/{}", child.manifest.digest),
            &child.manifest.bytes,
        );
        for blob in child.blobs() {
            proxy.expect_served(
                &format!("/v2/open/multi/blobs/{}", blob.digest),
                &blob.bytes,
            );
        }
    }
}

#[test]
fn a_refused_image_fails_the_warm_with_the_proxys_reason_and_caches_nothing() {
    let registry = Registry::start();
    let keys = tempfile::tempdir().unwrap();
    let key = Key::generate(keys.path(), "release");
    let good = registry.push_random("open/app", "v1", 1);
    let unsigned = registry.push_random("signed/app", "v1", 1);
    let denied = registry.push_random("other/app", "v1", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &dir.path().join("data"),
        &body(&registry.url(), Some(&key)),
    );
    let list = dir.path().join("images.txt");
    fs::write(
        &list,
        "# what the nodes run\nopen/app:v1\n\nsigned/app:v1  # not signed\nother/app:v1\n",
    )
    .unwrap();

    let out = cache("warm", &config, &["--file", list.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(code(&out), Some(1), "{log}");
    assert!(log.contains("warmed registry.test/open/app:v1"), "{log}");
    let refused = log
        .lines()
        .find(|l| l.starts_with("failed registry.test/signed/app:v1"))
        .unwrap_or_else(|| panic!("no failure line for signed/app: {log}"));
    assert!(refused.contains("403"), "{refused}");
    assert!(refused.contains("has no cosign signature"), "{refused}");
    let denied_line = log
        .lines()
        .find(|l| l.starts_with("failed registry.test/other/app:v1"))
        .unwrap_or_else(|| panic!("no failure line for other/app: {log}"));
    assert!(denied_line.contains("DENIED"), "{denied_line}");
    assert!(log.contains("1 warmed, 2 failed"), "{log}");

    let cached = digests(&config);
    for digest in image_digests(&good) {
        assert!(cached.contains(&digest), "{digest}: {cached:?}");
    }
    for digest in image_digests(&unsigned)
        .into_iter()
        .chain(image_digests(&denied))
    {
        assert!(
            !cached.contains(&digest),
            "{digest} of a refused image cached"
        );
    }
}

/// A registry serving `image` as `rl/app:v1` from memory, whose every answer carries
/// `ratelimit-remaining: START - <requests so far>`.
fn rate_limited(image: &Image, start: u64) -> (FakeHttp, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    let image = image.clone();
    let fake = FakeHttp::start(move |path| {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let remaining = start.saturating_sub(n);
        let path = path.split('?').next().unwrap_or_default();
        let (content_type, body) = if path == "/v2/" {
            ("application/json", b"{}".to_vec())
        } else if path == "/v2/rl/app/manifests/v1" {
            (OCI_MANIFEST, image.manifest.bytes.clone())
        } else if let Some(blob) = path
            .strip_prefix("/v2/rl/app/blobs/")
            .and_then(|d| image.blobs().into_iter().find(|b| b.digest == d))
        {
            ("application/octet-stream", blob.bytes.clone())
        } else {
            return Reply::status(404);
        };
        Reply::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".to_owned(), content_type.to_owned()),
                ("ratelimit-limit".to_owned(), format!("{start};w=21600")),
                (
                    "ratelimit-remaining".to_owned(),
                    format!("{remaining};w=21600"),
                ),
            ],
            body: body.into(),
        }
    });
    (fake, count)
}

#[test]
fn the_rate_limit_budget_stops_the_warm_and_a_second_run_resumes() {
    const START: u64 = 10;
    const MIN: u64 = 6;
    let image = Image::random(6);
    let (fake, _) = rate_limited(&image, START);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &dir.path().join("data"),
        &cosign::config(
            &fake.url(),
            &[format!(
                "    - {{match: \"{REGISTRY}/rl/**\", action: allow}}\n"
            )],
        ),
    );

    let out = cache(
        "warm",
        &config,
        &[
            "--concurrency",
            "1",
            "--min-remaining",
            &MIN.to_string(),
            "rl/app:v1",
        ],
    );
    let log = text(&out);
    assert_eq!(code(&out), Some(3), "{log}");
    assert!(
        log.contains("the rate-limit budget stopped the warm"),
        "{log}"
    );
    assert!(log.contains("not warmed: registry.test/rl/app:v1"), "{log}");
    // The answer that brought the count to MIN was the last request.
    let first = fake.requests();
    assert_eq!(first.len() as u64, START - MIN, "{first:?}\n{log}");
    let fetched: Vec<&String> = first.iter().filter(|p| p.contains("/blobs/")).collect();
    assert!(!fetched.is_empty(), "{first:?}");

    // No budget: the rest, and none of what is cached already.
    let out = cache("warm", &config, &["rl/app:v1"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let second = &fake.requests()[first.len()..];
    for path in &fetched {
        assert!(!second.contains(path), "{path} fetched again: {second:?}");
    }
    let cached = digests(&config);
    for digest in image_digests(&image) {
        assert!(cached.contains(&digest), "{digest}: {cached:?}");
    }
}

#[test]
fn writers_of_a_cache_in_use_are_refused_and_ls_still_works() {
    // An upstream that never answers: the warm below holds the lock while it waits.
    let hang = FakeHttp::start(|_| Reply::Hang(Duration::from_secs(20)));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let body = body(&hang.url(), None);
    let config = write_config(dir.path(), &data, &body);
    let in_use = format!(
        "the cache at {} is in use by another trustgate",
        data.display()
    );

    let proxy = Proxy::start_with_cache(&body, &data);
    for (verb, args) in [
        ("warm", vec!["open/app:v1"]),
        ("gc", vec![]),
        ("rm", vec![]),
    ] {
        let digest = format!("sha256:{}", "0".repeat(64));
        let args: Vec<&str> = match verb {
            "rm" => vec![digest.as_str()],
            _ => args,
        };
        let out = cache(verb, &config, &args);
        assert_eq!(code(&out), Some(1), "{verb}: {}", text(&out));
        assert!(text(&out).contains(&in_use), "{verb}: {}", text(&out));
    }
    let out = cache("ls", &config, &[]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(text(&out).contains("0 objects"), "{}", text(&out));
    drop(proxy);

    // A warm holds it too: a second serve cannot start, nor can gc.
    let mut warm = spawn_warm(&config, "open/app:v1");
    let lock = data.join("trustgate.lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(&lock).unwrap_or_default().trim() != warm.id().to_string() {
        assert!(Instant::now() < deadline, "the warm never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = cache("gc", &config, &[]);
    let serve = trustgate(["serve", "--config", config.to_str().unwrap()]);
    let _ = warm.kill();
    let _ = warm.wait();
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&in_use), "{}", text(&out));
    assert_eq!(code(&serve), Some(1), "{}", text(&serve));
    assert!(text(&serve).contains(&in_use), "{}", text(&serve));
    // Released with the process.
    let out = cache("gc", &config, &[]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
}

/// Sets an object's access and modification times `age` into the past.
fn age_object(data: &Path, digest: &str, age: Duration) {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let path = data.join("blobs/sha256").join(&hex[..2]).join(hex);
    let then = SystemTime::now() - age;
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_times(fs::FileTimes::new().set_accessed(then).set_modified(then))
        .unwrap();
}

#[test]
fn rm_and_gc_remove_what_they_say_and_ls_shows_it() {
    let registry = Registry::start();
    let image = Image::random_sized(support::oci::Format::Oci, &[64 * 1024, 32 * 1024, 1024]);
    image.push(&registry, "open/app", "v1");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &body(&registry.url(), None));
    let out = cache("warm", &config, &["open/app:v1"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert_eq!(digests(&config).len(), 5);

    // rm: exactly the named ones; an unknown or malformed digest removes nothing.
    let small = &image.layers[2].digest;
    let out = cache("rm", &config, &[small]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("removed {small}")),
        "{}",
        text(&out)
    );
    let cached = digests(&config);
    assert!(!cached.contains(small));
    assert_eq!(cached.len(), 4);
    let unknown = format!("sha256:{}", "ab".repeat(32));
    let out = cache("rm", &config, &[&image.config.digest, &unknown]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not in the cache"), "{}", text(&out));
    assert!(text(&out).contains(&unknown), "{}", text(&out));
    let out = cache("rm", &config, &["sha256:nope"]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a digest"), "{}", text(&out));
    assert_eq!(digests(&config).len(), 4);

    // gc --older-than: only what was unused for longer.
    let old = &image.layers[1].digest;
    age_object(&data, old, Duration::from_secs(10 * 86_400));
    fs::write(data.join("tmp/left-by-a-crash.1.0"), b"partial").unwrap();
    let out = cache("gc", &config, &["--older-than", "7d"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("removed {old}")),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("1 temp file;"), "{}", text(&out));
    assert!(!data.join("tmp/left-by-a-crash.1.0").exists());
    let cached = digests(&config);
    assert!(!cached.contains(old));
    assert_eq!(cached.len(), 3);

    // gc --max-size: least recently used first, until under. The big layer is the oldest.
    let big = &image.layers[0].digest;
    age_object(&data, big, Duration::from_secs(3600));
    let out = cache("gc", &config, &["--max-size", "16KiB"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("removed {big}")),
        "{}",
        text(&out)
    );
    let cached = digests(&config);
    assert_eq!(
        cached,
        HashSet::from([image.config.digest.clone(), image.manifest.digest.clone()]),
    );
    let ls = text(&cache("ls", &config, &[]));
    assert!(ls.contains("2 objects"), "{ls}");
}

#[test]
fn an_interrupted_warm_leaves_no_partial_blob_and_the_next_run_completes() {
    let image = Image::random_sized(support::oci::Format::Oci, &[4096]);
    let layer = image.layers[0].clone();
    let drip = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (served, slow, dripped) = (image.clone(), drip.clone(), layer.digest.clone());
    let fake = FakeHttp::start(move |path| {
        let path = path.split('?').next().unwrap_or_default();
        if path == "/v2/" {
            return Reply::ok("application/json", &b"{}"[..]);
        }
        if path == "/v2/open/app/manifests/v1" {
            return Reply::ok(OCI_MANIFEST, served.manifest.bytes.clone());
        }
        match path
            .strip_prefix("/v2/open/app/blobs/")
            .and_then(|d| served.blobs().into_iter().find(|b| b.digest == d))
        {
            // A layer that takes half a minute to arrive, until the test says otherwise.
            Some(blob) if blob.digest == dripped && slow.load(Ordering::SeqCst) => Reply::Drip {
                body: blob.bytes.clone().into(),
                every: Duration::from_millis(8),
            },
            Some(blob) => Reply::ok("application/octet-stream", blob.bytes.clone()),
            None => Reply::status(404),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &body(&fake.url(), None));

    let mut warm = spawn_warm(&config, "open/app:v1");
    // Interrupted while the layer is being written.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.bytes_sent() < 100 {
        assert!(Instant::now() < deadline, "the layer never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &warm.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = warm.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the warm did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    assert!((fake.bytes_sent() as usize) < layer.bytes.len() + image.config.bytes.len());
    assert!(
        !digests(&config).contains(&layer.digest),
        "a partial layer is listed"
    );

    drip.store(false, Ordering::SeqCst);
    let out = cache("warm", &config, &["open/app:v1"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(text(&out).contains("1 manifest, 1 layer"), "{}", text(&out));
    let cached = digests(&config);
    for digest in image_digests(&image) {
        assert!(cached.contains(&digest), "{digest}: {cached:?}");
    }
}

#[test]
fn warm_fills_the_shared_bucket_a_new_replica_serves_from() {
    let s3 = S3Server::start();
    let registry = Registry::start();
    let image = registry.push_random("open/app", "v1", 3);
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{}{}", body(&registry.url(), None), s3.storage_yaml("warm"));
    let config = write_config(dir.path(), &dir.path().join("data"), &body);
    let out = cache("warm", &config, &["open/app:v1"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    // In the bucket before warm exited: it waits for the background uploads.
    let keys: HashSet<String> = s3.list().into_iter().map(|(key, _)| key).collect();
    for digest in image_digests(&image) {
        let key = format!(
            "warm/blobs/sha256/{}",
            digest.strip_prefix("sha256:").unwrap()
        );
        assert!(keys.contains(&key), "{key} not uploaded: {keys:?}");
    }

    // A replica with an empty directory, the upstream gone: served from the bucket.
    drop(registry);
    let replica = Proxy::start(&body);
    for blob in image.blobs() {
        replica.expect_served(&format!("/v2/open/app/blobs/{}", blob.digest), &blob.bytes);
    }
    replica.expect_served(
        &format!("/v2/open/app/manifests/{}", image.manifest.digest),
        &image.manifest.bytes,
    );
}

/// `trustgate cache warm --config CONFIG IMAGE` in the background, its output discarded.
fn spawn_warm(config: &Path, image: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args(["cache", "warm", "--config", config.to_str().unwrap()])
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn warm")
}
