//! Scale-out: two or three `trustgate serve` processes sharing one bucket on a real S3 server
//! (`s3s-fs`), in front of a real registry (`docker-registry`) and notary server.
//!
//! What is under test: content verified and fetched on one replica is served by another from
//! the bucket (byte for byte, without going upstream); the bucket never shows a partial object,
//! even when a replica is killed mid-upload; an unreachable bucket costs nothing but the
//! bucket (pulls stream from upstream, errors are counted, the replica stays ready) and
//! uploads resume when it is back; a wrong object in the bucket is never served; and how many
//! upstream fetches concurrent requests for one blob at every replica cost.

mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::http::HttpResponse;
use support::oci::{Blob, Format, Image, ACCEPT_ALL};
use support::proxy::Proxy;
use support::s3::S3Server;
use support::{NotaryCli, NotaryServer, Registry};

/// The upstream's name in GUNs and rule patterns.
const REGISTRY: &str = "registry.test";
/// The key prefix of this deployment in the bucket.
const PREFIX: &str = "scale";

/// One test's peers. Fields drop in order: the replicas first.
struct Env {
    replicas: Vec<Option<Proxy>>,
    s3: S3Server,
    registry: Registry,
    cli: NotaryCli,
    _notary: NotaryServer,
    /// The replicas' configuration after `server` and `cache`.
    body: String,
}

impl Env {
    /// `n` replicas with their own cache directories, sharing one bucket.
    fn start(n: usize) -> Env {
        let notary = NotaryServer::start();
        let cli = NotaryCli::for_server(&notary);
        let registry = Registry::start();
        let s3 = S3Server::start();
        let body = format!(
            "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{}\", default: true}}\n\
             notary_servers:\n  - {{name: local, url: \"{}\", ttl: 60s}}\n\
             policy:\n  default: deny\n  rules:\n    - {{match: \"{REGISTRY}/**\", action: verify, notary: local}}\n{}",
            registry.url(),
            notary.url(),
            s3.storage_yaml(PREFIX),
        );
        let replicas = (0..n).map(|_| Some(Proxy::start(&body))).collect();
        Env {
            replicas,
            s3,
            registry,
            cli,
            _notary: notary,
            body,
        }
    }

    /// Starts one more replica, with an empty cache; returns its index.
    fn add_replica(&mut self) -> usize {
        self.replicas.push(Some(Proxy::start(&self.body)));
        self.replicas.len() - 1
    }

    fn replica(&self, i: usize) -> &Proxy {
        self.replicas[i].as_ref().expect("replica running")
    }

    /// Pushes `image` as `<repo>:v1` and signs that tag.
    fn publish(&self, repo: &str, image: &Image) {
        image.push(&self.registry, repo, "v1");
        let gun = format!("{REGISTRY}/{repo}");
        self.cli.init(&gun);
        self.cli
            .addhash(&gun, "v1", image.manifest.size(), image.manifest.hex(), &[]);
    }

    fn get(&self, i: usize, path: &str) -> HttpResponse {
        self.replica(i)
            .request("GET", path, &[("Accept", ACCEPT_ALL)], b"")
    }

    /// Pulls `<repo>:v1` through replica `i`: the manifest, then every blob, each checked
    /// byte for byte.
    fn pull(&self, i: usize, repo: &str, image: &Image) {
        let r = self.get(i, &format!("/v2/{repo}/manifests/v1"));
        assert_eq!(r.status, 200, "replica {i}: manifest: {}", r.summary());
        assert!(
            r.body == image.manifest.bytes,
            "replica {i}: manifest bytes"
        );
        for blob in image.blobs() {
            self.pull_blob(i, repo, blob);
        }
    }

    fn pull_blob(&self, i: usize, repo: &str, blob: &Blob) {
        let r = self.get(i, &format!("/v2/{repo}/blobs/{}", blob.digest));
        assert_eq!(
            r.status,
            200,
            "replica {i}: blob {}: {}\n{}",
            blob.digest,
            r.summary(),
            self.replica(i).log_tail(30)
        );
        assert!(
            r.body == blob.bytes,
            "replica {i}: blob {} has other bytes",
            blob.digest
        );
    }

    /// The bucket key of a digest.
    fn key(digest: &str) -> String {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        format!("{PREFIX}/blobs/sha256/{hex}")
    }

    /// Waits until every object of `image` is in the bucket with its exact bytes.
    fn wait_uploaded(&self, image: &Image) {
        let all: Vec<&Blob> = std::iter::once(&image.manifest)
            .chain(image.blobs())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        for blob in all {
            loop {
                if self.s3.get(&Env::key(&blob.digest)).as_ref() == Some(&blob.bytes) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never reached the bucket; bucket: {:?}\n{}",
                    blob.digest,
                    self.s3.list(),
                    self.replica(0).log_tail(30)
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn metric(&self, i: usize, series: &str) -> f64 {
        self.replica(i).metric(series).unwrap_or(0.0)
    }

    /// Requests replica `i` sent the registry that got an answer: manifests and blobs.
    fn upstream_requests(&self, i: usize) -> f64 {
        let text = self.replica(i).metrics();
        text.lines()
            .filter(|l| l.starts_with("trustgate_upstream_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// Every object in the bucket under the content prefix holds exactly the bytes its key
    /// names: the bucket never shows a partial object.
    fn assert_bucket_consistent(&self) {
        for (key, size) in self.s3.list() {
            let Some(hex) = key.strip_prefix(&format!("{PREFIX}/blobs/sha256/")) else {
                continue;
            };
            let bytes = self.s3.get(&key).expect("listed object");
            assert_eq!(bytes.len() as u64, size, "{key}: listed size");
            assert_eq!(
                support::oci::sha256_digest(&bytes),
                format!("sha256:{hex}"),
                "{key}: the bucket shows an object that is not its digest's bytes"
            );
        }
    }
}

#[test]
fn a_manifest_verified_on_one_replica_has_its_blobs_served_by_another_from_the_bucket() {
    let env = Env::start(2);
    let image = Image::random_sized(Format::Oci, &[300_000, 2 << 20]);
    env.publish("apps/web", &image);

    env.pull(0, "apps/web", &image);
    env.wait_uploaded(&image);
    env.assert_bucket_consistent();

    let before = env.upstream_requests(1);
    env.pull(1, "apps/web", &image);
    let fetched = env.upstream_requests(1) - before;
    assert_eq!(
        fetched,
        0.0,
        "replica B went upstream although the bucket had everything\n{}",
        env.replica(1).log_tail(30)
    );
    let hits = env.metric(1, "trustgate_shared_store_hits_total");
    assert_eq!(
        hits,
        (1 + image.blobs().len()) as f64,
        "the manifest and every blob from the bucket"
    );
    assert_eq!(
        env.metric(1, "trustgate_shared_store_uploaded_bytes_total"),
        0.0,
        "what came from the bucket is not uploaded again"
    );
    assert!(env.metric(0, "trustgate_shared_store_uploaded_bytes_total") > 0.0);
}

#[test]
fn a_replica_killed_mid_upload_leaves_no_partial_object() {
    let mut env = Env::start(2);
    let image = Image::random_sized(Format::Docker, &[64 << 20]);
    env.publish("apps/big", &image);
    let layer = &image.layers[0];

    // The client's download ends before the upload to the bucket starts; kill the replica as
    // soon as the multipart upload is under way.
    let r = env.get(0, "/v2/apps/big/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    env.pull_blob(0, "apps/big", layer);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.s3.parts_in_progress() == 0 {
        assert!(
            env.s3.get(&Env::key(&layer.digest)).is_none(),
            "the upload completed before the test could kill the replica"
        );
        assert!(Instant::now() < deadline, "no multipart upload started");
        thread::sleep(Duration::from_millis(2));
    }
    env.replicas[0] = None; // SIGKILL
    let key = Env::key(&layer.digest);
    let visible = env.s3.get(&key);
    assert!(
        visible.is_none() || visible.as_ref() == Some(&layer.bytes),
        "the bucket shows a partial {} ({} bytes)",
        layer.digest,
        visible.map_or(0, |v| v.len())
    );
    env.assert_bucket_consistent();

    // Another replica serves it all the same, and completes the bucket.
    let r = env.get(1, "/v2/apps/big/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    let started = Instant::now();
    env.pull_blob(1, "apps/big", layer);
    let from_upstream = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.s3.get(&key).as_ref() != Some(&layer.bytes) {
        assert!(
            Instant::now() < deadline,
            "the surviving replica never uploaded the layer"
        );
        thread::sleep(Duration::from_millis(100));
    }
    env.assert_bucket_consistent();

    // A fresh replica reads it from the bucket, streamed while it is hashed.
    let fresh = env.add_replica();
    let r = env.get(fresh, "/v2/apps/big/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    let started = Instant::now();
    env.pull_blob(fresh, "apps/big", layer);
    let from_bucket = started.elapsed();
    assert_eq!(env.metric(fresh, "trustgate_shared_store_hits_total"), 2.0);
    eprintln!(
        "64 MiB layer, whole GET: {from_upstream:?} from upstream (streamed), \
         {from_bucket:?} from the bucket (streamed while hashed)"
    );
}

#[test]
fn an_unreachable_bucket_only_costs_the_bucket() {
    let mut env = Env::start(1);
    let image = Image::random_sized(Format::Oci, &[500_000, 1 << 20]);
    env.publish("apps/outage", &image);
    // Trust state lives in the bucket too, and without it trust fails closed (rollback
    // protection needs the last versions): verify the tag while the bucket is up, so that
    // what follows is about content only, within the notary server's ttl.
    let r = env.get(0, "/v2/apps/outage/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());

    env.s3.stop();
    let started = Instant::now();
    env.pull(0, "apps/outage", &image);
    let elapsed = started.elapsed();
    let errors: f64 = ["get", "head", "put"]
        .iter()
        .map(|op| {
            env.metric(
                0,
                &format!("trustgate_shared_store_errors_total{{op=\"{op}\"}}"),
            )
        })
        .sum();
    assert!(errors > 0.0, "shared store errors are counted");
    let (status, _) = support::http_get(&format!("{}/readyz", env.replica(0).admin_url())).unwrap();
    assert_eq!(status, 200, "a replica without its bucket stays ready");
    eprintln!("pull with the bucket down: {elapsed:?}, {errors} shared store errors");

    env.s3.restart();
    let next = Image::random_sized(Format::Oci, &[400_000]);
    env.publish("apps/after", &next);
    env.pull(0, "apps/after", &next);
    env.wait_uploaded(&next);
    env.assert_bucket_consistent();
}

#[test]
fn a_wrong_object_in_the_bucket_is_not_served() {
    let env = Env::start(2);
    let image = Image::random_sized(Format::Oci, &[1 << 20]);
    env.publish("apps/tamper", &image);
    env.pull(0, "apps/tamper", &image);
    env.wait_uploaded(&image);

    // Same length, one bit different: only the digest tells.
    let layer = &image.layers[0];
    let mut wrong = layer.bytes.clone();
    let middle = wrong.len() / 2;
    wrong[middle] ^= 1;
    env.s3.put(&Env::key(&layer.digest), wrong);

    // Streamed like an upstream body: the download is stopped short at the mismatch, never
    // complete, and the retry (as every client retries a failed layer) comes from upstream.
    let r = env.get(1, "/v2/apps/tamper/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    let before = env.upstream_requests(1);
    let r = env.get(1, &format!("/v2/apps/tamper/blobs/{}", layer.digest));
    assert!(
        r.status != 200 || r.body.len() < layer.bytes.len(),
        "the tampered object was served whole: {}",
        r.summary()
    );
    assert_eq!(
        env.metric(1, "trustgate_shared_store_digest_mismatches_total"),
        1.0
    );
    assert_eq!(env.upstream_requests(1), before);
    env.pull(1, "apps/tamper", &image);
    assert_eq!(
        env.upstream_requests(1) - before,
        1.0,
        "only the tampered blob came from upstream"
    );
    // The verified copy replaces the wrong one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.s3.get(&Env::key(&layer.digest)).as_ref() != Some(&layer.bytes) {
        assert!(
            Instant::now() < deadline,
            "the wrong object was not repaired"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `GET path` to `proxy` and reads the response as it streams: the time to the first
/// body byte, the shared tier's hit count at that moment, and the whole body.
fn timed_get(proxy: &Proxy, path: &str) -> (u16, Duration, f64, Vec<u8>) {
    use std::io::{Read, Write};
    let authority = proxy.url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: {ACCEPT_ALL}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let (head_end, first_byte) = loop {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed before the first body byte: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            if raw.len() > i + 4 {
                break (i + 4, started.elapsed());
            }
        }
    };
    let hits = proxy
        .metric("trustgate_shared_store_hits_total")
        .unwrap_or(0.0);
    stream.read_to_end(&mut raw).expect("read body");
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status = head[9..12].parse().expect("status");
    (status, first_byte, hits, raw.split_off(head_end))
}

#[test]
fn a_gibibyte_object_from_the_bucket_starts_streaming_at_once() {
    let mut env = Env::start(0);
    let replica = Proxy::start_with_cache_size(&env.body, "4GiB");
    env.replicas.push(Some(replica));
    let image = Image::random_sized(Format::Docker, &[1 << 30]);
    env.publish("apps/huge", &image);
    let layer = &image.layers[0];
    // Put straight into the bucket, as another replica's upload would have.
    env.s3.put(&Env::key(&layer.digest), layer.bytes.clone());
    let r = env.get(0, "/v2/apps/huge/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    let hits_before = env.metric(0, "trustgate_shared_store_hits_total");
    let upstream_before = env.upstream_requests(0);

    let started = Instant::now();
    let (status, first_byte, hits_at_first_byte, body) = timed_get(
        env.replica(0),
        &format!("/v2/apps/huge/blobs/{}", layer.digest),
    );
    let whole = started.elapsed();
    assert_eq!(status, 200);
    assert!(body == layer.bytes, "the layer's exact bytes");
    // A hit is counted once the object verified: the first byte came before that.
    assert_eq!(
        hits_at_first_byte, hits_before,
        "the first byte waited for the whole object"
    );
    assert_eq!(
        env.metric(0, "trustgate_shared_store_hits_total"),
        hits_before + 1.0
    );
    assert_eq!(
        env.upstream_requests(0),
        upstream_before,
        "the layer did not come from upstream"
    );
    eprintln!(
        "1 GiB layer from the bucket: first byte after {} ms, whole in {whole:?} ({:.0} MiB/s)",
        first_byte.as_millis(),
        1024.0 / whole.as_secs_f64()
    );
}

#[test]
fn concurrent_requests_at_every_replica_cost_at_most_one_upstream_fetch_each() {
    const REPLICAS: usize = 3;
    const PER_REPLICA: usize = 3;
    let env = Env::start(REPLICAS);
    let image = Image::random_sized(Format::Oci, &[16 << 20]);
    env.publish("apps/hot", &image);
    // Every replica knows the signed manifest (the first from upstream, the others from the
    // bucket), so what follows only fetches the layer.
    for i in 0..REPLICAS {
        let r = env.get(i, "/v2/apps/hot/manifests/v1");
        assert_eq!(r.status, 200, "{}", r.summary());
    }
    let before: Vec<f64> = (0..REPLICAS).map(|i| env.upstream_requests(i)).collect();

    let layer = image.layers[0].clone();
    let barrier = Arc::new(Barrier::new(REPLICAS * PER_REPLICA));
    let started = Instant::now();
    thread::scope(|scope| {
        for i in 0..REPLICAS {
            for _ in 0..PER_REPLICA {
                let (barrier, layer, env) = (barrier.clone(), &layer, &env);
                scope.spawn(move || {
                    barrier.wait();
                    env.pull_blob(i, "apps/hot", layer);
                });
            }
        }
    });
    let elapsed = started.elapsed();
    let fetches: Vec<f64> = (0..REPLICAS)
        .map(|i| env.upstream_requests(i) - before[i])
        .collect();
    let total: f64 = fetches.iter().sum();
    eprintln!(
        "{REPLICAS} replicas x {PER_REPLICA} concurrent requests for one 16 MiB blob: \
         upstream fetches per replica {fetches:?}, {total} in all, {elapsed:?}"
    );
    for (i, n) in fetches.iter().enumerate() {
        assert!(*n <= 1.0, "replica {i} fetched the blob {n} times upstream");
    }
    assert!(total >= 1.0);
}

#[test]
fn a_manifest_object_whose_content_type_names_another_kind_is_not_kept() {
    use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload};

    let env = Env::start(2);
    let image = Image::random_sized(Format::Oci, &[1024]);
    env.publish("apps/mediatype", &image);
    env.pull(0, "apps/mediatype", &image);
    env.wait_uploaded(&image);

    // The right bytes, but a Content-Type naming another manifest kind: kept, it would be
    // every later read of the digest on this replica that fails to parse.
    let key = object_store::path::Path::from(Env::key(&image.manifest.digest));
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::ContentType,
        "application/vnd.docker.distribution.manifest.v2+json".into(),
    );
    let (client, bytes) = (env.s3.client(), image.manifest.bytes.clone());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let opts = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            client.put_opts(&key, PutPayload::from(bytes), opts).await
        })
        .expect("PUT the relabelled manifest");

    env.pull(1, "apps/mediatype", &image);
    let r = env.get(
        1,
        &format!("/v2/apps/mediatype/manifests/{}", image.manifest.digest),
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(
        env.metric(1, "trustgate_shared_store_digest_mismatches_total"),
        1.0
    );
}
