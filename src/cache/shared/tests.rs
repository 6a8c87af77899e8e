//! The shared tier against an in-memory object store: two local stores (two replicas) over
//! one bucket; what one fetched upstream, the other reads from the bucket; wrong objects in
//! the bucket are stopped short like a wrong upstream body, then read upstream and repaired.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path as Key;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use tempfile::TempDir;

use super::*;
use crate::cache::{BlobSource, Store, StoreError};

type Upstream = BoxStream<'static, Result<Bytes, io::Error>>;

#[derive(Default)]
struct Counts {
    shared_hits: AtomicU64,
    shared_misses: AtomicU64,
    mismatches: AtomicU64,
    uploaded: AtomicU64,
    upload_failed: AtomicU64,
    stored: AtomicU64,
    evictions: AtomicU64,
}

impl StoreObserver for Counts {
    fn stored(&self, _: u64) {
        self.stored.fetch_add(1, Ordering::SeqCst);
    }
    fn evicted(&self, _: u64) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
    }
    fn shared_hit(&self, _: u64) {
        self.shared_hits.fetch_add(1, Ordering::SeqCst);
    }
    fn shared_miss(&self) {
        self.shared_misses.fetch_add(1, Ordering::SeqCst);
    }
    fn shared_mismatch(&self) {
        self.mismatches.fetch_add(1, Ordering::SeqCst);
    }
    fn shared_uploaded(&self, _: u64) {
        self.uploaded.fetch_add(1, Ordering::SeqCst);
    }
    fn shared_upload_failed(&self) {
        self.upload_failed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counts {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

fn options() -> SharedOptions {
    SharedOptions {
        request_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        min_read_rate: 1 << 20,
        max_manifest_size: 1 << 20,
        max_uploads: 2,
        max_queued_uploads: 16,
    }
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A local store (a replica) in its own directory, over `bucket` under prefix `prod`.
struct Replica {
    store: Store,
    tier: SharedTier,
    counts: Arc<Counts>,
    dir: TempDir,
}

async fn replica(bucket: &Arc<InMemory>) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let tier = SharedTier::new(bucket.clone(), Key::from("prod"), options());
    let counts = Arc::new(Counts::default());
    let store = Store::open_tiered(
        dir.path().to_owned(),
        1 << 30,
        1 << 30,
        counts.clone(),
        Some(tier.clone()),
    )
    .await
    .expect("open");
    Replica {
        store,
        tier,
        counts,
        dir,
    }
}

/// An upstream that counts its fetches.
fn upstream(
    body: Bytes,
    calls: &Arc<AtomicUsize>,
) -> impl FnOnce() -> futures_util::future::BoxFuture<'static, io::Result<(Option<u64>, Upstream)>>
       + Send
       + 'static {
    let calls = calls.clone();
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let chunks: Vec<io::Result<Bytes>> = body
                .chunks(64 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            Ok((Some(body.len() as u64), stream::iter(chunks).boxed()))
        })
    }
}

fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn read_all(
    store: &Store,
    digest: &Digest,
    body: Bytes,
    calls: &Arc<AtomicUsize>,
) -> (BlobSource, Vec<u8>) {
    let blob = store
        .blob(digest, upstream(body, calls))
        .await
        .expect("blob");
    let mut out = Vec::new();
    let mut stream = blob.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    (blob.source, out)
}

/// Reads `digest` through `store` until the end or the first error: the bytes served, and
/// the error the stream stopped with.
async fn read_until_error(
    store: &Store,
    digest: &Digest,
    body: Bytes,
    calls: &Arc<AtomicUsize>,
) -> (Vec<u8>, Option<StoreError>) {
    // A fetch may fail before its first byte is asked for.
    let blob = match store.blob(digest, upstream(body, calls)).await {
        Ok(blob) => blob,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    let mut stream = blob.stream;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Polls `done` every 10 ms for up to 5 s (uploads and repairs run in the background).
async fn eventually<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

/// Waits until `bucket` has `key` with `len` bytes.
async fn uploaded(bucket: &InMemory, key: &Key, len: u64) {
    eventually(&format!("{key} was not uploaded"), || async move {
        bucket.head(key).await.is_ok_and(|m| m.size == len)
    })
    .await;
}

/// Stores manifest `bytes` on `replica` and waits for its upload to `bucket`.
async fn put_manifest_uploaded(replica: &Replica, bucket: &InMemory, bytes: &Bytes) -> Digest {
    let digest = Digest::sha256_of(bytes);
    replica
        .store
        .put_manifest(&digest, bytes.clone(), MANIFEST)
        .await
        .unwrap();
    uploaded(bucket, &replica.tier.key(&digest), bytes.len() as u64).await;
    digest
}

#[test]
fn keys_are_prefixed_and_content_addressed() {
    let bucket = Arc::new(InMemory::new());
    let digest = Digest::sha256_of(b"x");
    let hex = digest.hex().to_owned();
    let tier = SharedTier::new(bucket.clone(), Key::from("prod/eu"), options());
    assert_eq!(
        tier.key(&digest).as_ref(),
        format!("prod/eu/blobs/sha256/{hex}")
    );
    let root = SharedTier::new(bucket, Key::from(""), options());
    assert_eq!(root.key(&digest).as_ref(), format!("blobs/sha256/{hex}"));
}

#[tokio::test]
async fn a_blob_fetched_on_one_replica_is_served_from_the_bucket_on_another() {
    let bucket = Arc::new(InMemory::new());
    let (a, b) = (replica(&bucket).await, replica(&bucket).await);
    // Larger than one part: a multipart upload.
    let body = data(PART_SIZE * 2 + 12_345, 1);
    let digest = Digest::sha256_of(&body);
    let calls = Arc::new(AtomicUsize::new(0));

    let (source, got) = read_all(&a.store, &digest, body.clone(), &calls).await;
    assert_eq!((source, got == body[..]), (BlobSource::Fetched, true));
    assert_eq!(Counts::get(&a.counts.shared_misses), 1);
    uploaded(&bucket, &a.tier.key(&digest), body.len() as u64).await;

    let (source, got) = read_all(&b.store, &digest, body.clone(), &calls).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "B must not fetch upstream");
    assert_eq!(source, BlobSource::Fetched);
    assert!(got == body[..], "B serves the exact bytes");
    assert_eq!(Counts::get(&b.counts.shared_hits), 1);
    assert_eq!(
        Counts::get(&b.counts.stored),
        0,
        "nothing counted as from upstream"
    );
    // Now local on B (once renamed into place): a plain hit, and B never uploads what it
    // read from the bucket.
    let (store, d) = (&b.store, &digest);
    eventually("B did not store the blob", || async move {
        store.blob_size(d).await.is_some()
    })
    .await;
    let (source, _) = read_all(&b.store, &digest, body.clone(), &calls).await;
    assert_eq!(source, BlobSource::Cache);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(Counts::get(&b.counts.uploaded), 0);
    assert_eq!(Counts::get(&a.counts.uploaded), 1);
}

#[tokio::test]
async fn a_wrong_object_in_the_bucket_is_not_served_and_is_repaired() {
    let bucket = Arc::new(InMemory::new());
    let r = replica(&bucket).await;
    let body = data(300_000, 2);
    let digest = Digest::sha256_of(&body);
    // Same length, different bytes: only the digest tells.
    let mut wrong = body.to_vec();
    wrong[150_000] ^= 1;
    let key = r.tier.key(&digest);
    bucket.put(&key, PutPayload::from(wrong)).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));

    // Streamed like an upstream body: stopped short at the mismatch, the last chunk never
    // served, nothing stored.
    let (got, error) = read_until_error(&r.store, &digest, body.clone(), &calls).await;
    assert!(
        matches!(error, Some(StoreError::DigestMismatch(_))),
        "{error:?}"
    );
    assert!(got.len() < body.len(), "the last chunk is held back");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(Counts::get(&r.counts.mismatches), 1);
    assert_eq!(Counts::get(&r.counts.shared_hits), 0);
    assert_eq!(r.store.blob_size(&digest).await, None);
    assert!(r.tier.is_suspect(&digest));
    // The retry reads upstream, not the known-wrong object.
    let (source, got) = read_all(&r.store, &digest, body.clone(), &calls).await;
    assert_eq!(source, BlobSource::Fetched);
    assert!(got == body[..], "the upstream's bytes, not the bucket's");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(Counts::get(&r.counts.mismatches), 1);
    // The verified copy replaced the wrong one.
    let (bucket, key, body) = (&bucket, &key, &body);
    eventually("the wrong object was not repaired", || async move {
        bucket.get(key).await.unwrap().bytes().await.unwrap() == body
    })
    .await;
    // Once replaced, the object is trusted to be read again.
    let (tier, digest) = (&r.tier, &digest);
    eventually("the repaired object stayed suspect", || async move {
        !tier.is_suspect(digest)
    })
    .await;
}

#[tokio::test]
async fn an_object_of_another_size_than_the_signed_one_is_not_even_read() {
    let bucket = Arc::new(InMemory::new());
    // A local tier of 5 MiB holding a 2 MB blob that must survive: a 4 MiB object in the bucket
    // under a digest whose signed size is 10 000 would otherwise have it evicted.
    let dir = tempfile::tempdir().unwrap();
    let tier = SharedTier::new(bucket.clone(), Key::from("prod"), options());
    let counts = Arc::new(Counts::default());
    let store = Store::open_tiered(
        dir.path().to_owned(),
        5 << 20,
        5 << 20,
        counts.clone(),
        Some(tier.clone()),
    )
    .await
    .expect("open");
    let calls = Arc::new(AtomicUsize::new(0));
    let kept = data(2_000_000, 4);
    let kept_digest = Digest::sha256_of(&kept);
    read_all(&store, &kept_digest, kept.clone(), &calls).await;
    let (store_ref, kept_ref) = (&store, &kept_digest);
    eventually("the first blob was not stored", || async move {
        store_ref.blob_size(kept_ref).await.is_some()
    })
    .await;

    let body = data(10_000, 5);
    let digest = Digest::sha256_of(&body);
    bucket
        .put(&tier.key(&digest), PutPayload::from(vec![0u8; 4 << 20]))
        .await
        .unwrap();
    let blob = store
        .blob_of_size(
            &digest,
            Some(body.len() as u64),
            upstream(body.clone(), &calls),
        )
        .await
        .expect("blob");
    assert_eq!(blob.source, BlobSource::Fetched);
    let mut got = Vec::new();
    let mut stream = blob.stream;
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.expect("chunk"));
    }
    assert!(got == body[..]);
    assert_eq!(Counts::get(&counts.mismatches), 1);
    assert_eq!(
        Counts::get(&counts.evictions),
        0,
        "nothing evicted for the bucket's object"
    );
    assert!(store.blob_size(&kept_digest).await.is_some());
}

#[tokio::test]
async fn a_longer_object_in_the_bucket_is_not_served() {
    let bucket = Arc::new(InMemory::new());
    let r = replica(&bucket).await;
    let body = data(10_000, 3);
    let digest = Digest::sha256_of(&body);
    let mut longer = body.to_vec();
    longer.extend_from_slice(b"appended");
    bucket
        .put(&r.tier.key(&digest), PutPayload::from(longer))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    // No signed size: the bucket's size holds the stream, and the digest stops it.
    let (got, error) = read_until_error(&r.store, &digest, body.clone(), &calls).await;
    assert!(
        matches!(error, Some(StoreError::DigestMismatch(_))),
        "{error:?}"
    );
    assert!(got.len() < body.len() + 8);
    assert_eq!(Counts::get(&r.counts.mismatches), 1);
    let (_, got) = read_all(&r.store, &digest, body.clone(), &calls).await;
    assert!(got == body[..]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The rejected temp file is gone; the upstream fetch's one is renamed once it commits.
    let tmp = r.dir.path().join("tmp");
    eventually("temp files left behind", || {
        let empty = std::fs::read_dir(&tmp).unwrap().count() == 0;
        async move { empty }
    })
    .await;
}

#[tokio::test]
async fn manifests_travel_with_their_media_type() {
    let bucket = Arc::new(InMemory::new());
    let (a, b) = (replica(&bucket).await, replica(&bucket).await);
    // A complete OCI image manifest: a bucket manifest counts only if its bytes parse as the
    // media type stored with it.
    let bytes = Bytes::from_static(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
    );
    let digest = put_manifest_uploaded(&a, &bucket, &bytes).await;

    let got = b.store.get_manifest(&digest).await.unwrap();
    assert_eq!(got, Some((bytes.clone(), MANIFEST.to_owned())));
    assert_eq!(Counts::get(&b.counts.shared_hits), 1);
    // Stored locally on B now.
    let got = b.store.get_manifest(&digest).await.unwrap();
    assert_eq!(got, Some((bytes, MANIFEST.to_owned())));
    assert_eq!(Counts::get(&b.counts.shared_hits), 1);
}

#[tokio::test]
async fn a_wrong_manifest_or_media_type_in_the_bucket_is_ignored() {
    let bucket = Arc::new(InMemory::new());
    let r = replica(&bucket).await;
    let bytes = Bytes::from_static(br#"{"schemaVersion":2}"#);
    let digest = Digest::sha256_of(&bytes);
    let key = r.tier.key(&digest);

    bucket
        .put(&key, PutPayload::from_static(br#"{"schemaVersion":3}"#))
        .await
        .unwrap();
    assert_eq!(r.store.get_manifest(&digest).await.unwrap(), None);

    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, "text/html\r\nX-Evil: 1".into());
    let opts = PutOptions {
        attributes,
        ..PutOptions::default()
    };
    bucket
        .put_opts(&key, PutPayload::from_bytes(bytes), opts)
        .await
        .unwrap();
    assert_eq!(r.store.get_manifest(&digest).await.unwrap(), None);
    assert_eq!(Counts::get(&r.counts.mismatches), 2);
    assert_eq!(Counts::get(&r.counts.shared_hits), 0);
}

#[tokio::test]
async fn an_object_already_in_the_bucket_is_not_uploaded_again() {
    let bucket = Arc::new(InMemory::new());
    let (a, b) = (replica(&bucket).await, replica(&bucket).await);
    let bytes = Bytes::from_static(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
    );
    let digest = put_manifest_uploaded(&a, &bucket, &bytes).await;
    // B got it from upstream too (as if both missed at once): its upload finds it there.
    b.store
        .put_manifest(&digest, bytes, MANIFEST)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(Counts::get(&a.counts.uploaded), 1);
    assert_eq!(Counts::get(&b.counts.uploaded), 0);
    assert_eq!(Counts::get(&b.counts.upload_failed), 0);
}
