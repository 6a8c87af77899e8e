use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use proptest::prelude::*;

use super::*;

type Upstream = BoxStream<'static, Result<Bytes, io::Error>>;

/// A fake upstream that can be made to misbehave.
#[derive(Clone)]
struct Origin {
    /// What the stream sends.
    body: Bytes,
    /// What the response announces.
    length: Option<u64>,
    chunk: usize,
    delay: Option<Duration>,
    /// Send an error instead of the rest once this many bytes went out.
    cut_at: Option<usize>,
    /// `fetch` itself fails.
    refuse: bool,
    calls: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    evicted: AtomicU64,
    write_failed: AtomicU64,
    stored: AtomicU64,
    damaged: AtomicU64,
}

impl StoreObserver for Counts {
    fn hit(&self, _: u64) {
        self.hits.fetch_add(1, Ordering::SeqCst);
    }
    fn miss(&self) {
        self.misses.fetch_add(1, Ordering::SeqCst);
    }
    fn evicted(&self, _: u64) {
        self.evicted.fetch_add(1, Ordering::SeqCst);
    }
    fn write_failed(&self) {
        self.write_failed.fetch_add(1, Ordering::SeqCst);
    }
    fn stored(&self, _: u64) {
        self.stored.fetch_add(1, Ordering::SeqCst);
    }
    fn damaged(&self) {
        self.damaged.fetch_add(1, Ordering::SeqCst);
    }
}

impl Origin {
    fn new(body: impl Into<Bytes>) -> Self {
        let body = body.into();
        Self {
            length: Some(body.len() as u64),
            body,
            chunk: 16 * 1024,
            delay: None,
            cut_at: None,
            refuse: false,
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    #[allow(clippy::type_complexity)]
    fn fetch(
        &self,
    ) -> impl FnOnce() -> futures_util::future::BoxFuture<'static, io::Result<(Option<u64>, Upstream)>>
           + Send
           + 'static {
        let origin = self.clone();
        move || {
            Box::pin(async move {
                origin.calls.fetch_add(1, Ordering::SeqCst);
                if let Some(delay) = origin.delay {
                    tokio::time::sleep(delay).await;
                }
                if origin.refuse {
                    return Err(io::Error::other("upstream refused"));
                }
                let length = origin.length;
                Ok((length, origin.stream()))
            })
        }
    }

    fn stream(self) -> Upstream {
        stream::unfold(0usize, move |pos| {
            let origin = self.clone();
            async move {
                if let Some(cut) = origin.cut_at {
                    if pos >= cut {
                        return (pos != usize::MAX)
                            .then(|| (Err(io::Error::other("connection reset")), usize::MAX));
                    }
                }
                if pos >= origin.body.len() {
                    return None;
                }
                if let Some(delay) = origin.delay {
                    tokio::time::sleep(delay).await;
                }
                let end = (pos + origin.chunk).min(origin.body.len());
                Some((Ok(origin.body.slice(pos..end)), end))
            }
        })
        .boxed()
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An OCI image manifest (with its `mediaType` field) of exactly `len` bytes, padded with an
/// annotation; at least 240 bytes.
fn manifest(len: usize) -> Bytes {
    let json = |pad: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"annotations":{{"p":"{pad}"}}}}"#
        )
    };
    let base = json("").len();
    assert!(len >= base, "a manifest is at least {base} bytes");
    Bytes::from(json(&"p".repeat(len - base)))
}

fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn drain(mut stream: BlobStream) -> (Vec<u8>, Option<StoreError>) {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Serves `digest` through `origin` and returns everything the caller received. A failure
/// known before the first byte may come back from `blob` itself instead of from the stream
/// (both are safe; which one depends on timing), so both are folded into the error.
async fn get(
    store: &Store,
    digest: &Digest,
    origin: &Origin,
) -> (Option<BlobSource>, Vec<u8>, Option<StoreError>) {
    serve(store.blob(digest, origin.fetch()).await).await
}

async fn serve(
    body: Result<BlobBody, StoreError>,
) -> (Option<BlobSource>, Vec<u8>, Option<StoreError>) {
    match body {
        Ok(body) => {
            let (bytes, error) = drain(body.stream).await;
            (Some(body.source), bytes, error)
        }
        Err(e) => (None, Vec::new(), Some(e)),
    }
}

/// Waits until no fetch is in flight (the leader task has finished committing or failing).
async fn settle(store: &Store) {
    for _ in 0..500 {
        if store.inner.flights.lock().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fetch still in flight");
}

fn tmp_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(TMP_DIR)).map_or(0, |d| d.count())
}

async fn open(dir: &Path, max_size: u64) -> (Store, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let store = Store::open_with_observer(dir.to_owned(), max_size, counts.clone())
        .await
        .expect("open");
    (store, counts)
}

// === manifests ===

#[tokio::test]
async fn manifest_round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 1 << 20).await;
    let bytes = manifest(300);
    let digest = Digest::sha256_of(&bytes);
    let media_type = OCI_MANIFEST;
    assert_eq!(store.get_manifest(&digest).await.unwrap(), None);
    store
        .put_manifest(&digest, bytes.clone(), media_type)
        .await
        .unwrap();
    let got = store.get_manifest(&digest).await.unwrap();
    assert_eq!(got, Some((bytes.clone(), media_type.to_owned())));
    assert_eq!(store.size(), bytes.len() as u64);
    let hex = digest.hex();
    let object = dir.path().join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
    assert!(object.is_file());
    assert!(object.with_file_name(format!("{hex}.type")).is_file());
    // Storing again is a no-op; the store is content-addressed.
    store
        .put_manifest(&digest, bytes.clone(), media_type)
        .await
        .unwrap();
    assert_eq!(store.size(), bytes.len() as u64);
    drop(store);

    let (store, _) = open(dir.path(), 1 << 20).await;
    assert_eq!(store.size(), bytes.len() as u64);
    let got = store.get_manifest(&digest).await.unwrap();
    assert_eq!(got, Some((bytes, media_type.to_owned())));
}

#[tokio::test]
async fn manifest_with_wrong_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 1 << 20).await;
    let digest = Digest::sha256_of(b"the real manifest");
    let err = store
        .put_manifest(
            &digest,
            Bytes::from_static(b"something else"),
            "application/json",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch(_)), "{err}");
    assert_eq!(store.get_manifest(&digest).await.unwrap(), None);
    assert_eq!(store.size(), 0);
    assert_eq!(tmp_entries(dir.path()), 0);
}

#[tokio::test]
async fn manifest_media_type_must_be_header_safe() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 1 << 20).await;
    let bytes = Bytes::from_static(b"{}");
    let digest = Digest::sha256_of(&bytes);
    for bad in ["", "text/plain\r\nX-Injected: 1", &"a".repeat(300)] {
        let err = store.put_manifest(&digest, bytes.clone(), bad).await;
        assert!(matches!(err, Err(StoreError::InvalidMediaType { .. })));
    }
    assert_eq!(store.size(), 0);
}

#[tokio::test]
async fn corrupt_stored_manifest_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 1 << 20).await;
    let bytes = manifest(300);
    let digest = Digest::sha256_of(&bytes);
    store
        .put_manifest(&digest, bytes.clone(), OCI_MANIFEST)
        .await
        .unwrap();
    std::fs::write(store.inner.object_path(&digest), manifest(301)).unwrap();
    assert_eq!(store.get_manifest(&digest).await.unwrap(), None);
    assert_eq!(store.size(), 0);
    assert!(!store.inner.object_path(&digest).exists());
    assert!(!store.inner.sidecar_path(&digest).exists());
    assert_eq!(counts.damaged.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn attack_tampered_media_type_file_is_damage_not_a_served_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 1 << 20).await;
    let bytes = manifest(300);
    let digest = Digest::sha256_of(&bytes);
    // Another manifest kind, a kind the bytes do not parse as, a blob type, not a type.
    for tampered in [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/json",
        "text/html",
        "",
    ] {
        store
            .put_manifest(&digest, bytes.clone(), OCI_MANIFEST)
            .await
            .unwrap();
        std::fs::write(store.inner.sidecar_path(&digest), tampered).unwrap();
        assert_eq!(
            store.get_manifest(&digest).await.unwrap(),
            None,
            "served with a media-type file saying {tampered:?}"
        );
        assert_eq!(store.size(), 0, "{tampered:?}");
        assert!(!store.inner.object_path(&digest).exists(), "{tampered:?}");
        assert!(!store.inner.sidecar_path(&digest).exists(), "{tampered:?}");
    }
    assert_eq!(counts.damaged.load(Ordering::SeqCst), 5);
    // Stored again as it should be, it is served.
    store
        .put_manifest(&digest, bytes.clone(), OCI_MANIFEST)
        .await
        .unwrap();
    let got = store.get_manifest(&digest).await.unwrap();
    assert_eq!(got, Some((bytes.clone(), OCI_MANIFEST.to_owned())));
    assert_eq!(counts.damaged.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_media_type_that_is_not_the_manifests_own_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 1 << 20).await;
    let bytes = manifest(300);
    let digest = Digest::sha256_of(&bytes);
    for wrong in [
        "application/vnd.oci.image.index.v1+json",
        "application/json",
    ] {
        let err = store.put_manifest(&digest, bytes.clone(), wrong).await;
        assert!(
            matches!(err, Err(StoreError::InvalidMediaType { .. })),
            "{wrong}: {err:?}"
        );
    }
    // Bytes that are no manifest at all have no media type of their own.
    let junk = Bytes::from_static(b"{}");
    let err = store
        .put_manifest(&Digest::sha256_of(&junk), junk, OCI_MANIFEST)
        .await;
    assert!(matches!(err, Err(StoreError::InvalidMediaType { .. })));
    assert_eq!(store.size(), 0);
    assert_eq!(tmp_entries(dir.path()), 0);
}

// === blobs: misses, hits, and bad upstreams ===

#[tokio::test]
async fn miss_fetches_and_stores_then_hit_serves_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 64 << 20).await;
    let body = data(1_000_000, 1);
    let digest = Digest::sha256_of(&body);
    let origin = Origin::new(body.clone());

    let fetched = store.blob(&digest, origin.fetch()).await.unwrap();
    assert_eq!(fetched.length, Some(body.len() as u64));
    assert_eq!(fetched.source, BlobSource::Fetched);
    let (bytes, error) = drain(fetched.stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, body);
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, Some(body.len() as u64));
    assert_eq!(store.size(), body.len() as u64);
    assert_eq!(tmp_entries(dir.path()), 0);

    let (source, bytes, error) = get(&store, &digest, &origin).await;
    assert_eq!(source, Some(BlobSource::Cache));
    assert!(error.is_none());
    assert_eq!(bytes, body);
    assert_eq!(origin.calls(), 1);
    assert_eq!(counts.hits.load(Ordering::SeqCst), 1);
    assert_eq!(counts.misses.load(Ordering::SeqCst), 1);
    assert_eq!(counts.stored.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_length_and_empty_blobs_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    for body in [data(300_000, 2), Bytes::new()] {
        let digest = Digest::sha256_of(&body);
        let mut origin = Origin::new(body.clone());
        origin.length = None;
        let (_, bytes, error) = get(&store, &digest, &origin).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(bytes, body);
        settle(&store).await;
        assert_eq!(store.blob_size(&digest).await, Some(body.len() as u64));
        let (source, bytes, error) = get(&store, &digest, &origin).await;
        assert_eq!((source, error.is_none()), (Some(BlobSource::Cache), true));
        assert_eq!(bytes, body);
    }
}

#[tokio::test]
async fn corrupt_upstream_errors_before_completion_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(200_000, 3);
    let digest = Digest::sha256_of(&body);
    let mut wrong = body.to_vec();
    wrong[150_000] ^= 1; // same length, one bit off
    let bad = Origin::new(wrong);

    let (_, bytes, error) = get(&store, &digest, &bad).await;
    assert!(
        matches!(error, Some(StoreError::DigestMismatch(_))),
        "{error:?}"
    );
    assert!(
        bytes.len() < body.len(),
        "the client must not get a complete body"
    );
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, None);
    assert_eq!(store.size(), 0);
    assert_eq!(tmp_entries(dir.path()), 0);

    // The failure is not remembered: the next request goes upstream again.
    let good = Origin::new(body.clone());
    let (source, bytes, error) = get(&store, &digest, &good).await;
    assert_eq!((source, error.is_none()), (Some(BlobSource::Fetched), true));
    assert_eq!(bytes, body);
    assert_eq!((bad.calls(), good.calls()), (1, 1));
}

#[tokio::test]
async fn corrupt_last_byte_is_never_delivered() {
    // A single chunk: holding back the last chunk means the caller gets nothing at all.
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(1000, 4);
    let digest = Digest::sha256_of(&body);
    let mut wrong = body.to_vec();
    wrong[999] ^= 0x80;
    let (_, bytes, error) = get(&store, &digest, &Origin::new(wrong)).await;
    assert!(error.is_some());
    assert!(bytes.is_empty());
}

#[tokio::test]
async fn truncated_streams_fail_and_overlong_ones_end_at_their_length() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(100_000, 5);
    let digest = Digest::sha256_of(&body);

    // Announced length, fewer bytes.
    let mut short = Origin::new(body.slice(..90_000));
    short.length = Some(body.len() as u64);
    let (_, bytes, error) = get(&store, &digest, &short).await;
    assert!(
        matches!(
            error,
            Some(StoreError::LengthMismatch {
                expected: 100_000,
                actual: 90_000,
                ..
            })
        ),
        "{error:?}"
    );
    assert!(bytes.len() < body.len());

    // Unknown length, fewer bytes: the digest catches it.
    short.length = None;
    let (_, _, error) = get(&store, &digest, &short).await;
    assert!(
        matches!(error, Some(StoreError::DigestMismatch(_))),
        "{error:?}"
    );

    // The connection drops mid-way.
    let mut cut = Origin::new(body.clone());
    cut.cut_at = Some(50_000);
    let (_, bytes, error) = get(&store, &digest, &cut).await;
    assert!(
        matches!(error, Some(StoreError::Upstream { .. })),
        "{error:?}"
    );
    assert!(bytes.len() < body.len());

    settle(&store).await;
    assert_eq!(store.size(), 0);
    assert_eq!(tmp_entries(dir.path()), 0);

    // More bytes than announced: the object ends at its length, nothing after it is read or
    // forwarded, and what came before it is checked as usual.
    let mut long = Origin::new([&body[..], b"trailing"].concat());
    long.length = Some(body.len() as u64);
    let (_, bytes, error) = get(&store, &digest, &long).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, body);
}

#[tokio::test]
async fn fetch_error_is_returned_and_retried_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(1000, 6);
    let digest = Digest::sha256_of(&body);
    let mut refusing = Origin::new(body.clone());
    refusing.refuse = true;
    let err = store.blob(&digest, refusing.fetch()).await.unwrap_err();
    assert!(matches!(err, StoreError::Upstream { .. }), "{err}");
    assert!(err.is_upstream());
    let (_, bytes, error) = get(&store, &digest, &Origin::new(body.clone())).await;
    assert!(error.is_none());
    assert_eq!(bytes, body);
}

// === single flight ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(2 << 20, 7);
    let digest = Digest::sha256_of(&body);
    let mut origin = Origin::new(body.clone());
    origin.chunk = 64 * 1024;
    origin.delay = Some(Duration::from_millis(3));

    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (store, digest, origin) = (store.clone(), digest.clone(), origin.clone());
            tokio::spawn(async move { get(&store, &digest, &origin).await })
        })
        .collect();
    let mut fetched = 0;
    for caller in callers {
        let (source, bytes, error) = caller.await.unwrap();
        assert!(error.is_none(), "{error:?}");
        assert!(bytes == body, "caller got different bytes");
        // The others joined (or, on a very slow machine, arrived after the commit).
        fetched += usize::from(source == Some(BlobSource::Fetched));
    }
    assert_eq!(origin.calls(), 1);
    assert_eq!(fetched, 1);
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, Some(body.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_all_fail_on_corrupt_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(512 * 1024, 8);
    let digest = Digest::sha256_of(&body);
    let mut wrong = body.to_vec();
    wrong[1000] ^= 1;
    let mut bad = Origin::new(wrong);
    bad.delay = Some(Duration::from_millis(2));

    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (store, digest, bad) = (store.clone(), digest.clone(), bad.clone());
            tokio::spawn(async move { get(&store, &digest, &bad).await })
        })
        .collect();
    for caller in callers {
        let (_, bytes, error) = caller.await.unwrap();
        assert!(
            matches!(error, Some(StoreError::DigestMismatch(_))),
            "{error:?}"
        );
        assert!(bytes.len() < body.len());
    }
    assert_eq!(bad.calls(), 1);
    settle(&store).await;
    assert_eq!(store.size(), 0);
    let good = Origin::new(body.clone());
    let (_, bytes, error) = get(&store, &digest, &good).await;
    assert!(error.is_none());
    assert_eq!(bytes, body);
    assert_eq!(good.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_all_get_the_fetch_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let digest = Digest::sha256_of(b"x");
    let mut refusing = Origin::new(&b"x"[..]);
    refusing.refuse = true;
    refusing.delay = Some(Duration::from_millis(50));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (store, digest, origin) = (store.clone(), digest.clone(), refusing.clone());
            tokio::spawn(async move { store.blob(&digest, origin.fetch()).await.map(|_| ()) })
        })
        .collect();
    for caller in callers {
        let result = caller.await.unwrap();
        assert!(matches!(result, Err(StoreError::Upstream { .. })));
    }
    assert_eq!(refusing.calls(), 1);
}

#[tokio::test]
async fn first_caller_dropping_its_stream_still_fills_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(1 << 20, 9);
    let digest = Digest::sha256_of(&body);
    let mut origin = Origin::new(body.clone());
    origin.delay = Some(Duration::from_millis(1));
    let mut fetched = store.blob(&digest, origin.fetch()).await.unwrap();
    let first = fetched.stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(fetched);
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, Some(body.len() as u64));
    let (source, bytes, _) = get(&store, &digest, &origin).await;
    assert_eq!(source, Some(BlobSource::Cache));
    assert_eq!(bytes, body);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn dropping_the_call_before_headers_still_fills_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    let body = data(100_000, 10);
    let digest = Digest::sha256_of(&body);
    let mut origin = Origin::new(body.clone());
    origin.delay = Some(Duration::from_millis(20));
    let call = store.blob(&digest, origin.fetch());
    assert!(tokio::time::timeout(Duration::from_millis(5), call)
        .await
        .is_err());
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, Some(body.len() as u64));
}

#[tokio::test]
async fn slow_first_caller_falls_back_to_the_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 64 << 20).await;
    // Many more chunks than the first caller's queue holds.
    let body = data(4 << 20, 11);
    let digest = Digest::sha256_of(&body);
    let mut origin = Origin::new(body.clone());
    origin.chunk = 4096;
    let fetched = store.blob(&digest, origin.fetch()).await.unwrap();
    // Read nothing until the download is complete and stored.
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, Some(body.len() as u64));
    let (bytes, error) = drain(fetched.stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, body);
}

// === eviction ===

async fn put_blob(store: &Store, body: &Bytes) -> Digest {
    let digest = Digest::sha256_of(body);
    let (_, bytes, error) = get(store, &digest, &Origin::new(body.clone())).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(&bytes, body);
    settle(store).await;
    digest
}

#[tokio::test]
async fn eviction_keeps_size_bounded_and_evicts_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 3000).await;
    let blobs: Vec<Bytes> = (0..5).map(|i| data(1000, 20 + i)).collect();
    let a = put_blob(&store, &blobs[0]).await;
    let b = put_blob(&store, &blobs[1]).await;
    let c = put_blob(&store, &blobs[2]).await;
    assert_eq!(store.size(), 3000);
    // Touch a: b becomes the least recently used.
    let (source, _, _) = get(&store, &a, &Origin::new(blobs[0].clone())).await;
    assert_eq!(source, Some(BlobSource::Cache));
    let d = put_blob(&store, &blobs[3]).await;
    assert!(store.size() <= 3000);
    assert_eq!(store.blob_size(&b).await, None);
    assert!(!store.inner.object_path(&b).exists());
    for kept in [&a, &c, &d] {
        assert_eq!(store.blob_size(kept).await, Some(1000));
    }
    // A manifest takes part in the same LRU; `blob_size` does not touch, so c goes next.
    let manifest = manifest(1000);
    let m = Digest::sha256_of(&manifest);
    store
        .put_manifest(&m, manifest, OCI_MANIFEST)
        .await
        .unwrap();
    assert_eq!(store.blob_size(&c).await, None);
    assert!(store.size() <= 3000);
    assert_eq!(counts.evicted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn eviction_skips_objects_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 2000).await;
    let blobs: Vec<Bytes> = (0..3).map(|i| data(1000, 30 + i)).collect();
    let a = put_blob(&store, &blobs[0]).await;
    let b = put_blob(&store, &blobs[1]).await;
    // a is the least recently used, but someone is reading it (the open also touches it,
    // so demote it by touching b afterwards).
    let reading = store.open_blob(&a).await.unwrap().unwrap();
    drop(store.open_blob(&b).await.unwrap());
    let c = put_blob(&store, &blobs[2]).await;
    assert_eq!(store.blob_size(&a).await, Some(1000));
    assert_eq!(store.blob_size(&b).await, None);
    assert_eq!(store.blob_size(&c).await, Some(1000));
    let (bytes, error) = drain(reading.into_stream()).await;
    assert!(error.is_none());
    assert_eq!(bytes, blobs[0]);
}

#[tokio::test]
async fn blob_larger_than_the_store_is_served_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 1000).await;
    let body = data(5000, 40);
    let digest = Digest::sha256_of(&body);
    for length in [Some(5000), None] {
        let mut origin = Origin::new(body.clone());
        origin.length = length;
        let (_, bytes, error) = get(&store, &digest, &origin).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(bytes, body);
        settle(&store).await;
        assert_eq!(store.size(), 0);
    }
    assert_eq!(counts.write_failed.load(Ordering::SeqCst), 0);
    assert_eq!(tmp_entries(dir.path()), 0);
}

// === crashes and write failures ===

#[tokio::test]
async fn reopen_after_crash_cleans_up_and_never_serves_partial_objects() {
    let dir = tempfile::tempdir().unwrap();
    let good = data(300_000, 50);
    let good_digest;
    {
        let (store, _) = open(dir.path(), 64 << 20).await;
        good_digest = put_blob(&store, &good).await;
    }
    // A crashed write left a temp file.
    std::fs::write(dir.path().join("tmp/deadbeef.1.0"), b"half a layer").unwrap();
    // A file at an object's final name with the wrong content (e.g. copied in by hand, or
    // damaged on disk), plus junk the store did not write.
    let torn = data(300_000, 51);
    let torn_digest = Digest::sha256_of(&torn);
    let hex = torn_digest.hex();
    let prefix = dir.path().join(format!("blobs/sha256/{}", &hex[..2]));
    std::fs::create_dir_all(&prefix).unwrap();
    std::fs::write(prefix.join(hex), &torn[..1000]).unwrap();
    std::fs::write(prefix.join("not-a-digest"), b"junk").unwrap();
    let orphan = Digest::sha256_of(b"orphan");
    let orphan_sidecar = dir.path().join(format!(
        "blobs/sha256/{}/{}.type",
        &orphan.hex()[..2],
        orphan.hex()
    ));
    std::fs::create_dir_all(orphan_sidecar.parent().unwrap()).unwrap();
    std::fs::write(&orphan_sidecar, b"application/json").unwrap();

    let (store, _) = open(dir.path(), 64 << 20).await;
    assert_eq!(tmp_entries(dir.path()), 0);
    assert!(!prefix.join("not-a-digest").exists());
    assert!(!orphan_sidecar.exists());
    assert_eq!(store.size(), 300_000 + 1000);

    // The good object verifies on its first read and is served.
    let (source, bytes, error) = get(&store, &good_digest, &Origin::new(good.clone())).await;
    assert_eq!((source, error.is_none()), (Some(BlobSource::Cache), true));
    assert_eq!(bytes, good);
    assert!(store
        .open_blob(&good_digest)
        .await
        .unwrap()
        .unwrap()
        .is_verified());

    // The partial one fails before completing, is removed, and is fetched on the next try.
    let origin = Origin::new(torn.clone());
    let (source, bytes, error) = get(&store, &torn_digest, &origin).await;
    assert_eq!(source, Some(BlobSource::Cache));
    assert!(
        matches!(error, Some(StoreError::Corrupt { .. })),
        "{error:?}"
    );
    assert!(bytes.len() < torn.len());
    assert_eq!(store.blob_size(&torn_digest).await, None);
    let (source, bytes, error) = get(&store, &torn_digest, &origin).await;
    assert_eq!((source, error.is_none()), (Some(BlobSource::Fetched), true));
    assert_eq!(bytes, torn);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn empty_file_under_a_non_empty_digest_is_not_served_as_complete() {
    let dir = tempfile::tempdir().unwrap();
    let body = data(10, 52);
    let digest = Digest::sha256_of(&body);
    let hex = digest.hex();
    let prefix = dir.path().join(format!("blobs/sha256/{}", &hex[..2]));
    std::fs::create_dir_all(&prefix).unwrap();
    std::fs::write(prefix.join(hex), b"").unwrap();
    let (store, _) = open(dir.path(), 1 << 20).await;
    assert_eq!(store.blob_size(&digest).await, Some(0));
    let (_, bytes, error) = get(&store, &digest, &Origin::new(body.clone())).await;
    assert!(
        matches!(error, Some(StoreError::Corrupt { .. })),
        "{error:?}"
    );
    assert!(bytes.is_empty());
    let (_, bytes, error) = get(&store, &digest, &Origin::new(body.clone())).await;
    assert!(error.is_none());
    assert_eq!(bytes, body);
}

#[tokio::test]
async fn reopen_keeps_lru_order_from_file_times() {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Vec<Bytes> = (0..3).map(|i| data(1000, 60 + i)).collect();
    let mut digests = Vec::new();
    {
        let (store, _) = open(dir.path(), 3000).await;
        for blob in &blobs {
            digests.push(put_blob(&store, blob).await);
        }
    }
    // Make the first blob the most recently used on disk.
    let now = std::time::SystemTime::now();
    for (i, digest) in digests.iter().enumerate() {
        let path = dir.path().join(format!(
            "blobs/sha256/{}/{}",
            &digest.hex()[..2],
            digest.hex()
        ));
        let age = Duration::from_secs(if i == 0 { 0 } else { 1000 - i as u64 * 100 });
        let file = std::fs::File::options().write(true).open(path).unwrap();
        let time = now - age;
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(time)
                .set_modified(time),
        )
        .unwrap();
    }
    // Lowering the limit evicts the least recently used (blob 1, then blob 2).
    let (store, counts) = open(dir.path(), 1000).await;
    assert_eq!(store.size(), 1000);
    assert_eq!(store.blob_size(&digests[0]).await, Some(1000));
    assert_eq!(counts.evicted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_tmp_still_streams_every_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 64 << 20).await;
    // Sabotage: tmp/ becomes a file, so no temp file can be created.
    std::fs::remove_dir(dir.path().join(TMP_DIR)).unwrap();
    std::fs::write(dir.path().join(TMP_DIR), b"not a directory").unwrap();
    let body = data(500_000, 70);
    let digest = Digest::sha256_of(&body);
    let mut origin = Origin::new(body.clone());
    origin.delay = Some(Duration::from_millis(1));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (store, digest, origin) = (store.clone(), digest.clone(), origin.clone());
            tokio::spawn(async move { get(&store, &digest, &origin).await })
        })
        .collect();
    for caller in callers {
        let (_, bytes, error) = caller.await.unwrap();
        assert!(error.is_none(), "{error:?}");
        assert!(bytes == body);
    }
    settle(&store).await;
    assert_eq!(store.size(), 0);
    assert_eq!(store.blob_size(&digest).await, None);
    assert!(counts.write_failed.load(Ordering::SeqCst) >= 1);
    // Manifests fail the same way, loudly.
    let manifest = manifest(300);
    let m = Digest::sha256_of(&manifest);
    let err = store.put_manifest(&m, manifest, OCI_MANIFEST).await;
    assert!(matches!(err, Err(StoreError::Io { .. })), "{err:?}");
}

#[tokio::test]
async fn write_failure_mid_stream_keeps_the_first_caller_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 64 << 20).await;
    store.inner.write_limit.store(100_000, Ordering::Relaxed);
    let body = data(1 << 20, 71);
    let digest = Digest::sha256_of(&body);
    let mut origin = Origin::new(body.clone());
    origin.delay = Some(Duration::from_millis(1));
    let (_, bytes, error) = get(&store, &digest, &origin).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, body);
    settle(&store).await;
    assert_eq!(store.size(), 0);
    assert_eq!(counts.write_failed.load(Ordering::SeqCst), 1);
    assert_eq!(tmp_entries(dir.path()), 0);
    // Once the disk recovers, the next request caches.
    store.inner.write_limit.store(u64::MAX, Ordering::Relaxed);
    let (_, bytes, _) = get(&store, &digest, &origin).await;
    assert_eq!(bytes, body);
    settle(&store).await;
    assert_eq!(store.size(), body.len() as u64);
}

// === properties ===

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// However upstream chunks the bytes, exactly the right digest is accepted and the stored
    /// object equals the data.
    #[test]
    fn any_chunking_stores_exactly_the_data(
        body in proptest::collection::vec(any::<u8>(), 0..40_000),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        flip in any::<prop::sample::Index>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (store, _) = open(dir.path(), 1 << 20).await;
            let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            bounds.extend([0, body.len()]);
            bounds.sort_unstable();
            let chunks: Vec<Bytes> = bounds.windows(2).map(|w| Bytes::copy_from_slice(&body[w[0]..w[1]])).collect();
            let fetch = |chunks: Vec<Bytes>| move || async move {
                let stream: Upstream = stream::iter(chunks.into_iter().map(Ok)).boxed();
                Ok::<_, io::Error>((None, stream))
            };

            // A wrong digest (the data's digest with one hex digit changed) is refused.
            let right = Digest::sha256_of(&body);
            let mut hex = right.hex().to_owned().into_bytes();
            let at = flip.index(hex.len());
            hex[at] = if hex[at] == b'0' { b'1' } else { b'0' };
            let wrong = Digest::parse(&format!("sha256:{}", String::from_utf8(hex).unwrap())).unwrap();
            let (_, bytes, error) = serve(store.blob(&wrong, fetch(chunks.clone())).await).await;
            prop_assert!(error.is_some());
            prop_assert!(bytes.len() < body.len() || body.is_empty());
            settle(&store).await;
            prop_assert_eq!(store.blob_size(&wrong).await, None);

            let (_, bytes, error) = serve(store.blob(&right, fetch(chunks)).await).await;
            prop_assert!(error.is_none());
            prop_assert_eq!(&bytes, &body);
            settle(&store).await;
            let stored = std::fs::read(store.inner.object_path(&right)).unwrap();
            prop_assert_eq!(&stored, &body);
            prop_assert_eq!(store.size(), body.len() as u64);
            Ok(())
        })?;
    }
}

// === measurements (run with `--release -- --ignored --nocapture`) ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a test"]
async fn measure_throughput() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 4 << 30).await;
    let size = 256 << 20;
    let body = data(size, 99);
    let digest = Digest::sha256_of(&body);
    let gbps = |bytes: usize, t: Duration| bytes as f64 / t.as_secs_f64() / 1e9;

    let t = Instant::now();
    let _ = Digest::sha256_of(&body);
    println!(
        "sha256 alone:           {:.2} GB/s",
        gbps(size, t.elapsed())
    );

    let mut origin = Origin::new(body.clone());
    origin.chunk = 64 * 1024;
    // A few rounds in fresh stores: the first one also pays for the VM faulting in memory.
    for round in 0..3 {
        let scratch = tempfile::tempdir().unwrap();
        let (cold, _) = open(scratch.path(), 4 << 30).await;
        let t = Instant::now();
        let (_, bytes, error) = get(&cold, &digest, &origin).await;
        let first = t.elapsed();
        assert!(error.is_none() && bytes.len() == size);
        settle(&cold).await;
        println!(
            "cold {round}, first caller:   {:.2} GB/s (stored after {:?})",
            gbps(size, first),
            t.elapsed()
        );
    }
    let (_, _, error) = get(&store, &digest, &origin).await;
    assert!(error.is_none());
    settle(&store).await;

    // The same through a store that cannot cache it (too small): memory path only.
    let dir2 = tempfile::tempdir().unwrap();
    let (tiny, _) = open(dir2.path(), 1).await;
    let t = Instant::now();
    let (_, bytes, error) = get(&tiny, &digest, &origin).await;
    assert!(error.is_none() && bytes.len() == size);
    println!(
        "cold, not cached:       {:.2} GB/s",
        gbps(size, t.elapsed())
    );

    // Raw disk write speed for comparison.
    let raw = dir2.path().join("raw");
    let t = Instant::now();
    {
        let mut file = std::fs::File::create(&raw).unwrap();
        for chunk in body.chunks(1 << 20) {
            io::Write::write_all(&mut file, chunk).unwrap();
        }
    }
    println!(
        "raw 1 MiB writes:       {:.2} GB/s",
        gbps(size, t.elapsed())
    );
    std::fs::remove_file(&raw).unwrap();

    for round in 0..3 {
        let t = Instant::now();
        let body = store.blob(&digest, origin.fetch()).await.unwrap();
        let mut stream = body.stream;
        let mut n = 0;
        while let Some(chunk) = stream.next().await {
            n += chunk.unwrap().len();
        }
        assert_eq!(n, size);
        println!(
            "hit {round}:                  {:.2} GB/s",
            gbps(size, t.elapsed())
        );
    }

    // Joiners: time to first byte while the leader downloads a slow upstream.
    let slow_body = data(32 << 20, 98);
    let slow_digest = Digest::sha256_of(&slow_body);
    let mut slow = Origin::new(slow_body.clone());
    slow.chunk = 64 * 1024;
    slow.delay = Some(Duration::from_micros(500));
    let t = Instant::now();
    let leader = {
        let (store, digest, slow) = (store.clone(), slow_digest.clone(), slow.clone());
        tokio::spawn(async move { get(&store, &digest, &slow).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let joined = store.blob(&slow_digest, slow.fetch()).await.unwrap();
    assert_eq!(joined.source, BlobSource::Joined);
    let joined_at = t.elapsed();
    let mut stream = joined.stream;
    let first_chunk = stream.next().await.unwrap().unwrap();
    let ttfb = t.elapsed() - joined_at;
    let mut n = first_chunk.len();
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    let done = t.elapsed();
    leader.await.unwrap();
    assert_eq!(n, slow_body.len());
    println!(
        "joiner on a slow fetch: joined at {joined_at:?}, first byte {ttfb:?} later, done at {done:?} \
         (waiting for the whole download instead would give a first byte at ~{done:?})"
    );
}

// === sizes: from what was signed or configured, never from the upstream ===

/// Serves `digest` as a blob whose verified descriptor gives `size`.
async fn get_signed(
    store: &Store,
    digest: &Digest,
    size: u64,
    origin: &Origin,
) -> (Option<BlobSource>, Vec<u8>, Option<StoreError>) {
    serve(store.blob_of_size(digest, Some(size), origin.fetch()).await).await
}

/// Fills a store of `max_size` with blobs of `each` bytes until `room` bytes are left.
async fn nearly_full(store: &Store, each: usize, room: u64) -> Vec<Digest> {
    let mut stored = Vec::new();
    let mut seed = 100;
    while store.size() + each as u64 + room <= store.max_size() {
        stored.push(put_blob(store, &data(each, seed)).await);
        seed += 1;
    }
    stored
}

#[tokio::test]
async fn signed_size_bounds_an_overlong_body_and_its_announced_length() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 1 << 20).await;
    let body = data(10_000, 50);
    let digest = Digest::sha256_of(&body);
    let mut longer = body.to_vec();
    longer.extend_from_slice(&data(100_000, 51));

    // Longer and other bytes: the signed size of them fails the digest, nothing stored.
    let other = data(110_000, 54);
    let mut origin = Origin::new(other);
    origin.length = None;
    let (_, bytes, error) = get_signed(&store, &digest, 10_000, &origin).await;
    assert!(bytes.len() <= 10_000, "{} bytes delivered", bytes.len());
    assert!(
        matches!(error, Some(StoreError::DigestMismatch(_))),
        "{error:?}"
    );
    // Announced otherwise: refused before a byte is read.
    for announced in [10_001, 9_999, 15 << 20] {
        let mut origin = Origin::new(body.clone());
        origin.length = Some(announced);
        let (_, bytes, error) = get_signed(&store, &digest, 10_000, &origin).await;
        assert!(bytes.is_empty());
        assert!(
            matches!(error, Some(StoreError::WrongLength { .. })),
            "{error:?}"
        );
    }
    settle(&store).await;
    assert_eq!(store.size(), 0);
    assert_eq!(tmp_entries(dir.path()), 0);

    // Longer than the signed size, with no length, and the signed bytes first: read to the
    // signed size and no further, so exactly the signed bytes are delivered.
    let mut origin = Origin::new(longer.clone());
    origin.length = None;
    let fetched = store
        .blob_of_size(&digest, Some(10_000), origin.fetch())
        .await
        .unwrap();
    assert_eq!(fetched.length, Some(10_000));
    let (bytes, error) = drain(fetched.stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, body);
}

#[tokio::test]
async fn signed_empty_blob_is_read_as_zero_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 1 << 20).await;
    let digest = Digest::sha256_of(b"");
    let mut endless = Origin::new(data(4096, 52));
    endless.length = None;
    // Zero bytes are all there is to read, whatever the source sends.
    let (_, bytes, error) = get_signed(&store, &digest, 0, &endless).await;
    assert!(error.is_none() && bytes.is_empty(), "{error:?}");
    let (_, bytes, error) = get_signed(&store, &digest, 0, &Origin::new(Bytes::new())).await;
    assert!(error.is_none() && bytes.is_empty(), "{error:?}");
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, Some(0));
}

#[tokio::test]
async fn announced_length_evicts_nothing_before_bytes_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let (store, counts) = open(dir.path(), 1 << 20).await;
    let stored = nearly_full(&store, 100_000, 50_000).await;
    let body = data(20_000, 53);
    let digest = Digest::sha256_of(&body);
    let mut lying = Origin::new(body.clone());
    lying.length = Some(900_000);
    let (_, _, error) = get(&store, &digest, &lying).await;
    assert!(
        matches!(error, Some(StoreError::LengthMismatch { .. })),
        "{error:?}"
    );
    settle(&store).await;
    assert_eq!(counts.evicted.load(Ordering::SeqCst), 0);
    for digest in &stored {
        assert!(store.blob_size(digest).await.is_some());
    }
    // The same under a signed size: the lie is refused before anything is reserved.
    let (_, _, error) = get_signed(&store, &digest, 20_000, &lying).await;
    assert!(
        matches!(error, Some(StoreError::WrongLength { .. })),
        "{error:?}"
    );
    settle(&store).await;
    assert_eq!(counts.evicted.load(Ordering::SeqCst), 0);
    assert_eq!(tmp_entries(dir.path()), 0);
}

#[tokio::test]
async fn unsigned_body_over_max_blob_size_fails_and_one_over_the_store_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Counts::default());
    let store = Store::open_tiered(dir.path().to_owned(), 100_000, 50_000, counts.clone(), None)
        .await
        .unwrap();
    let body = data(60_000, 54);
    let digest = Digest::sha256_of(&body);
    // Announced over the limit: refused before the body.
    let (_, bytes, error) = get(&store, &digest, &Origin::new(body.clone())).await;
    assert!(bytes.is_empty());
    assert!(
        matches!(error, Some(StoreError::TooLarge { limit: 50_000, .. })),
        "{error:?}"
    );
    // Not announced: cut at the limit.
    let mut unannounced = Origin::new(body.clone());
    unannounced.length = None;
    let (_, bytes, error) = get(&store, &digest, &unannounced).await;
    assert!(bytes.len() <= 50_000);
    assert!(
        matches!(error, Some(StoreError::TooLarge { .. })),
        "{error:?}"
    );
    settle(&store).await;
    assert_eq!(store.size(), 0);
    assert_eq!(tmp_entries(dir.path()), 0);

    // Within the limit but outgrowing the room, with everything else being read: served
    // uncached, the temp file given up as soon as it would not fit.
    // (A signed size is not bounded by the limit.)
    let filler = data(60_000, 55);
    let small = Digest::sha256_of(&filler);
    let (_, _, error) = get_signed(&store, &small, 60_000, &Origin::new(filler)).await;
    assert!(error.is_none(), "{error:?}");
    settle(&store).await;
    let reading = store.open_blob(&small).await.unwrap().unwrap();
    let body = data(45_000, 56);
    let digest = Digest::sha256_of(&body);
    let mut unannounced = Origin::new(body.clone());
    unannounced.length = None;
    let (_, bytes, error) = get(&store, &digest, &unannounced).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, body);
    settle(&store).await;
    assert_eq!(store.blob_size(&digest).await, None);
    assert_eq!(store.blob_size(&small).await, Some(60_000));
    assert_eq!(tmp_entries(dir.path()), 0);
    assert_eq!(counts.write_failed.load(Ordering::SeqCst), 0);
    drop(reading);
}
