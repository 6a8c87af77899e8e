//! The shared tier: a bucket on S3-compatible object storage (any [`ObjectStore`]) that
//! replicas share, behind each replica's local directory.
//!
//! ```text
//!   request ─> local tier ─hit─> served
//!                  │ miss (single flight, see flight.rs)
//!                  ├─> shared tier ─found─> (streamed, hashed) ─> blobs/ ─> served
//!                  │        │ absent, unreachable, or known wrong
//!                  └─> upstream ─(streamed, hashed)─> blobs/ ─> served
//!                                                       └─(background)─> shared tier
//! ```
//!
//! # Trust
//! The bucket is outside the trust boundary: whoever holds its credentials can write anything
//! under any key. So its bytes are treated exactly like an upstream's, on the same path
//! (`flight.rs`): streamed to the client while they are hashed, length-checked against the
//! signed size, written to a temp file of the local tier, and renamed into place only when
//! digest and length check out; every reader holds back its last chunk until then. The first
//! byte leaves at once, however large the object (containerd gives a mirror 30 s for response
//! headers). A wrong object (counted, logged) is therefore stopped short, not served: the
//! client's download fails and is retried, and this replica reads that digest upstream from
//! then on, until its own verified upload has replaced the object in the bucket. An object
//! whose size already disagrees with the signed one is ignored unread, as if absent.

//! # Layout
//! `<prefix>/blobs/<algorithm>/<hex>`, one object per blob or manifest; a manifest's media type
//! is the object's `Content-Type`. Objects are written only after they verified locally, and
//! become visible atomically: a plain `PUT` for small ones, a multipart upload (visible only on
//! `CompleteMultipartUpload`, aborted on error) for large ones. A replica killed mid-upload
//! leaves an incomplete upload, never a partial object; a bucket lifecycle rule
//! (`AbortIncompleteMultipartUpload`) reclaims its parts. Size is bounded by the bucket's own
//! expiration rules, not by trustgate.
//!
//! # Faults
//! Every operation is bounded in time. A read has two bounds: `request_timeout` to the first
//! byte, then a deadline for the whole body of `request_timeout` plus the object's size at
//! `min_read_rate` ([`SharedTier::read_deadline`]); a bucket that drips slower than that is
//! given up on and the upstream asked, so it cannot hold a pull (and the requests that joined
//! it) for longer than a slow honest download would take. An unreachable or failing bucket is a miss for reads
//! and a skipped upload for writes: counted, logged once per change of state, never an error
//! to a client.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};
use tokio::sync::Semaphore;

use super::flight::TempFile;
use super::StoreObserver;
use crate::oci::Digest;

/// Objects up to this size are uploaded with one `PUT`; larger ones in parts of this size
/// (S3 needs at least 5 MiB per part but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PART_CONCURRENCY: usize = 2;
/// Bytes read from the local file per step of an upload.
const UPLOAD_READ: usize = 1024 * 1024;
/// Wrong objects remembered for repair; past this, the oldest are forgotten (they are then
/// still ignored on every read, just not overwritten).
const MAX_REPAIRS: usize = 1024;

/// The shared tier. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct SharedTier {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    options: SharedOptions,
    /// Uploads accepted (queued or running); beyond this, uploads are skipped.
    queued: Arc<Semaphore>,
    /// Uploads running.
    running: Arc<Semaphore>,
    /// Whether the last operation succeeded, so that an outage is logged once.
    healthy: AtomicBool,
    /// Digests whose object in the bucket did not match: the next upload of each overwrites
    /// it instead of skipping because it exists. Bounded by `MAX_REPAIRS`.
    repairs: Mutex<HashSet<Digest>>,
}

/// Time and size bounds of the shared tier.
#[derive(Clone, Debug)]
pub struct SharedOptions {
    /// How long an operation may take to its answer (a whole `HEAD` or small `PUT`, a `GET`
    /// to its first byte).
    pub request_timeout: Duration,
    /// The longest pause inside a body being read, and the longest one part of an upload may
    /// take.
    pub read_timeout: Duration,
    /// The slowest a body being read may arrive on average, in bytes per second, before the
    /// read is given up (see [`SharedTier::read_deadline`]).
    pub min_read_rate: u64,
    /// The largest manifest read from the bucket.
    pub max_manifest_size: u64,
    /// Uploads running at once.
    pub max_uploads: usize,
    /// Uploads waiting or running at once; more are skipped (and counted as failed).
    pub max_queued_uploads: usize,
}

/// An operation on the shared tier, as the `op` label of its error metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SharedOp {
    /// Reading an object.
    Get,
    /// Checking whether an object exists.
    Head,
    /// Writing an object (single or multipart).
    Put,
}

/// Why an operation on the shared tier failed. Never shown to clients.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SharedError {
    /// The object store answered with an error, or could not be reached.
    #[error("shared store: {op} {key}: {source}")]
    Store {
        /// The operation.
        op: SharedOp,
        /// The object's key.
        key: String,
        /// The object store's error.
        #[source]
        source: Arc<object_store::Error>,
    },
    /// No answer (or no progress) in time.
    #[error("shared store: {op} {key}: no progress within {}ms", timeout.as_millis())]
    Timeout {
        /// The operation.
        op: SharedOp,
        /// The object's key.
        key: String,
        /// The bound that passed.
        timeout: Duration,
    },
    /// The object's body ended before the size the store reported for it.
    #[error("shared store: GET {key}: the body ended after {got} of {size} bytes")]
    Short {
        /// The object's key.
        key: String,
        /// Its size, as the store reported it.
        size: u64,
        /// Bytes that arrived.
        got: u64,
    },
    /// Reading the local file being uploaded failed.
    #[error("shared store: reading {key} from the local tier: {source}")]
    Local {
        /// The object's key.
        key: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// An object found in the shared tier, not verified yet.
pub(super) struct SharedObject {
    /// Its size, as the object store reports it (the length check holds the body to it).
    pub size: u64,
    /// Its `Content-Type`, if it has one.
    pub media_type: Option<String>,
    /// Its bytes.
    pub body: BoxStream<'static, Result<Bytes, SharedError>>,
}

/// What to upload: a manifest's bytes, or a blob's verified local file.
pub(super) enum Upload {
    Manifest { bytes: Bytes, media_type: String },
    Blob { file: Arc<TempFile>, size: u64 },
}

// === impl SharedTier ===

impl SharedTier {
    /// The shared tier in `store`, under `prefix` (empty for the bucket's root).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Key, options: SharedOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                prefix,
                queued: Arc::new(Semaphore::new(options.max_queued_uploads.max(1))),
                running: Arc::new(Semaphore::new(options.max_uploads.max(1))),
                options,
                healthy: AtomicBool::new(true),
                repairs: Mutex::default(),
            }),
        }
    }

    /// The key of `digest`'s object: `<prefix>/blobs/<algorithm>/<hex>`.
    pub fn key(&self, digest: &Digest) -> Key {
        self.inner
            .prefix
            .clone()
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The limit on manifests read from the bucket.
    pub(super) fn max_manifest_size(&self) -> u64 {
        self.inner.options.max_manifest_size
    }

    /// The deadline for reading a whole body of `size` bytes, after its first byte:
    /// `request_timeout` plus `size` at `min_read_rate`.
    pub(super) fn read_deadline(&self, size: u64) -> Duration {
        let options = &self.inner.options;
        let secs = size / options.min_read_rate.max(1);
        options.request_timeout + Duration::from_secs(secs)
    }

    /// The error for a read of `digest` that missed its [`read_deadline`](Self::read_deadline)
    /// (also marks the bucket as failing).
    pub(super) fn timed_out(&self, digest: &Digest, deadline: Duration) -> SharedError {
        self.failed(SharedError::timeout(
            SharedOp::Get,
            &self.key(digest),
            deadline,
        ))
    }

    /// The error for a read of `digest`'s object whose body ended after `got` bytes, short
    /// of the `size` the store reported (also marks the bucket as failing).
    pub(super) fn ended_short(&self, digest: &Digest, size: u64, got: u64) -> SharedError {
        self.failed(SharedError::Short {
            key: self.key(digest).to_string(),
            size,
            got,
        })
    }

    /// Opens `digest`'s object: `None` if there is none. The body is bounded by the read
    /// timeout between chunks; nothing about it is checked here.
    pub(super) async fn open(&self, digest: &Digest) -> Result<Option<SharedObject>, SharedError> {
        let key = self.key(digest);
        let timeout = self.inner.options.request_timeout;
        let got = tokio::time::timeout(timeout, self.inner.store.get(&key)).await;
        let got = match got {
            Err(_) => return Err(self.failed(SharedError::timeout(SharedOp::Get, &key, timeout))),
            Ok(Err(object_store::Error::NotFound { .. })) => {
                self.succeeded();
                return Ok(None);
            }
            Ok(Err(e)) => return Err(self.failed(SharedError::store(SharedOp::Get, &key, e))),
            Ok(Ok(got)) => got,
        };
        self.succeeded();
        let media_type = got
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref().to_owned());
        let size = got.meta.size;
        let body = with_read_timeout(
            got.into_stream(),
            key.to_string(),
            self.inner.options.read_timeout,
        );
        Ok(Some(SharedObject {
            size,
            media_type,
            body,
        }))
    }

    /// Whether `digest`'s object exists.
    pub(super) async fn contains(&self, digest: &Digest) -> Result<bool, SharedError> {
        let key = self.key(digest);
        let timeout = self.inner.options.request_timeout;
        match tokio::time::timeout(timeout, self.inner.store.head(&key)).await {
            Err(_) => Err(self.failed(SharedError::timeout(SharedOp::Head, &key, timeout))),
            Ok(Ok(_)) => Ok(self.succeeded_with(true)),
            Ok(Err(object_store::Error::NotFound { .. })) => Ok(self.succeeded_with(false)),
            Ok(Err(e)) => Err(self.failed(SharedError::store(SharedOp::Head, &key, e))),
        }
    }

    /// Remembers that the bucket's object for `digest` is wrong, so that the verified copy
    /// fetched upstream next replaces it.
    pub(super) fn needs_repair(&self, digest: &Digest) {
        let mut repairs = self.inner.repairs.lock().unwrap_or_else(|e| e.into_inner());
        if repairs.len() >= MAX_REPAIRS {
            repairs.clear();
        }
        repairs.insert(digest.clone());
    }

    /// Whether `digest`'s object was found wrong (or cut short) and not replaced yet: it is
    /// then read upstream, not from the bucket.
    pub(super) fn is_suspect(&self, digest: &Digest) -> bool {
        let repairs = self.inner.repairs.lock().unwrap_or_else(|e| e.into_inner());
        repairs.contains(digest)
    }

    /// Uploads a verified object in the background, unless the bucket has it already (and it
    /// is not known to be wrong). Bounded: past `max_queued_uploads` waiting or running, the
    /// upload is skipped.
    pub(super) fn upload(&self, digest: &Digest, upload: Upload, observer: Arc<dyn StoreObserver>) {
        let Ok(queued) = self.inner.queued.clone().try_acquire_owned() else {
            tracing::debug!(%digest, "shared store: upload queue full; not uploaded");
            observer.shared_upload_failed();
            return;
        };
        let (tier, digest) = (self.clone(), digest.clone());
        tokio::spawn(async move {
            let _queued = queued;
            let Ok(_running) = tier.inner.running.clone().acquire_owned().await else {
                return;
            };
            // A wrong object stays marked until the verified copy replaced it.
            let repair = tier.is_suspect(&digest);
            match tier.contains(&digest).await {
                Ok(true) if !repair => return,
                Ok(_) => {}
                Err(e) => {
                    observer.shared_error(SharedOp::Head);
                    observer.shared_upload_failed();
                    tracing::debug!(%digest, error = %e, "shared store: not uploaded");
                    return;
                }
            }
            let size = match &upload {
                Upload::Manifest { bytes, .. } => bytes.len() as u64,
                Upload::Blob { size, .. } => *size,
            };
            let result = match upload {
                Upload::Manifest { bytes, media_type } => {
                    tier.put_small(&digest, bytes, Some(media_type)).await
                }
                Upload::Blob { file, size } => tier.put_file(&digest, file, size).await,
            };
            match result {
                Ok(()) => {
                    if repair {
                        let mut repairs =
                            tier.inner.repairs.lock().unwrap_or_else(|e| e.into_inner());
                        repairs.remove(&digest);
                    }
                    observer.shared_uploaded(size);
                    tracing::debug!(%digest, size, "shared store: uploaded");
                }
                Err(e) => {
                    observer.shared_error(SharedOp::Put);
                    observer.shared_upload_failed();
                    tracing::debug!(%digest, error = %e, "shared store: upload failed");
                }
            }
        });
    }

    /// One `PUT` of a whole object.
    async fn put_small(
        &self,
        digest: &Digest,
        bytes: Bytes,
        media_type: Option<String>,
    ) -> Result<(), SharedError> {
        let key = self.key(digest);
        let mut attributes = Attributes::new();
        if let Some(media_type) = media_type {
            attributes.insert(Attribute::ContentType, media_type.into());
        }
        let opts = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        let timeout = self.inner.options.request_timeout;
        let put = self
            .inner
            .store
            .put_opts(&key, PutPayload::from_bytes(bytes), opts);
        match tokio::time::timeout(timeout, put).await {
            Err(_) => Err(self.failed(SharedError::timeout(SharedOp::Put, &key, timeout))),
            Ok(Err(e)) => Err(self.failed(SharedError::store(SharedOp::Put, &key, e))),
            Ok(Ok(_)) => self.succeeded_with(Ok(())),
        }
    }

    /// Uploads a local file: one `PUT` when small, else a multipart upload that becomes
    /// visible only when completed, and is aborted on any error.
    async fn put_file(
        &self,
        digest: &Digest,
        file: Arc<TempFile>,
        size: u64,
    ) -> Result<(), SharedError> {
        let key = self.key(digest);
        if size <= PART_SIZE as u64 {
            let bytes = read_at(&file, 0, size as usize, &key).await?;
            return self.put_small(digest, bytes, None).await;
        }
        let timeout = self.inner.options.request_timeout;
        let started = self
            .inner
            .store
            .put_multipart_opts(&key, PutMultipartOptions::default());
        let upload = match tokio::time::timeout(timeout, started).await {
            Err(_) => return Err(self.failed(SharedError::timeout(SharedOp::Put, &key, timeout))),
            Ok(Err(e)) => return Err(self.failed(SharedError::store(SharedOp::Put, &key, e))),
            Ok(Ok(upload)) => upload,
        };
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        match self.write_parts(&mut writer, &file, size, &key).await {
            Ok(()) => {}
            Err(e) => {
                // Best effort: a lifecycle rule reclaims what an abort cannot.
                let _ = tokio::time::timeout(timeout, writer.abort()).await;
                return Err(self.failed(e));
            }
        }
        // A part in flight may take as long as one pause in a body, and the completion as
        // long as a request.
        let part_timeout = self.inner.options.read_timeout + timeout;
        match tokio::time::timeout(part_timeout, writer.finish()).await {
            Err(_) => Err(self.failed(SharedError::timeout(SharedOp::Put, &key, part_timeout))),
            Ok(Err(e)) => Err(self.failed(SharedError::store(SharedOp::Put, &key, e))),
            Ok(Ok(_)) => self.succeeded_with(Ok(())),
        }
    }

    async fn write_parts(
        &self,
        writer: &mut WriteMultipart,
        file: &Arc<TempFile>,
        size: u64,
        key: &Key,
    ) -> Result<(), SharedError> {
        let part_timeout = self.inner.options.read_timeout + self.inner.options.request_timeout;
        let mut pos = 0u64;
        while pos < size {
            let len = usize::try_from(size - pos).map_or(UPLOAD_READ, |n| n.min(UPLOAD_READ));
            let chunk = read_at(file, pos, len, key).await?;
            pos += chunk.len() as u64;
            let capacity = writer.wait_for_capacity(PART_CONCURRENCY);
            match tokio::time::timeout(part_timeout, capacity).await {
                Err(_) => return Err(SharedError::timeout(SharedOp::Put, key, part_timeout)),
                Ok(Err(e)) => return Err(SharedError::store(SharedOp::Put, key, e)),
                Ok(Ok(())) => {}
            }
            writer.put(chunk);
        }
        Ok(())
    }

    /// Notes a success: logs the end of an outage.
    fn succeeded(&self) {
        if !self.inner.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(store = %self.inner.store, "shared store: reachable again");
        }
    }

    fn succeeded_with<T>(&self, value: T) -> T {
        self.succeeded();
        value
    }

    /// Notes a failure: logs the start of an outage once, later failures at debug level.
    fn failed(&self, e: SharedError) -> SharedError {
        if self.inner.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(store = %self.inner.store, error = %e,
                "shared store: failing; serving from the local tier and upstream until it recovers");
        } else {
            tracing::debug!(error = %e, "shared store: still failing");
        }
        e
    }
}

impl fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTier")
            .field("store", &format_args!("{}", self.inner.store))
            .field("prefix", &self.inner.prefix.as_ref())
            .finish_non_exhaustive()
    }
}

// === impl SharedOp ===

impl SharedOp {
    /// The label value: `get`, `head` or `put`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Head => "head",
            Self::Put => "put",
        }
    }

    /// Every operation, for metrics that start at zero.
    pub const ALL: [SharedOp; 3] = [Self::Get, Self::Head, Self::Put];
}

impl fmt::Display for SharedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl SharedError ===

impl SharedError {
    fn store(op: SharedOp, key: &Key, source: object_store::Error) -> Self {
        Self::Store {
            op,
            key: key.to_string(),
            source: Arc::new(source),
        }
    }

    fn timeout(op: SharedOp, key: &Key, timeout: Duration) -> Self {
        Self::Timeout {
            op,
            key: key.to_string(),
            timeout,
        }
    }

    /// The operation that failed, for the error metric.
    pub fn op(&self) -> SharedOp {
        match self {
            Self::Store { op, .. } | Self::Timeout { op, .. } => *op,
            Self::Short { .. } => SharedOp::Get,
            Self::Local { .. } => SharedOp::Put,
        }
    }
}

/// `body`, failing when a chunk takes longer than `timeout` to arrive.
fn with_read_timeout(
    body: BoxStream<'static, object_store::Result<Bytes>>,
    key: String,
    timeout: Duration,
) -> BoxStream<'static, Result<Bytes, SharedError>> {
    stream::unfold(Some(body), move |body| {
        let key = key.clone();
        async move {
            let mut body = body?;
            match tokio::time::timeout(timeout, body.next()).await {
                Err(_) => {
                    let e = SharedError::Timeout {
                        op: SharedOp::Get,
                        key,
                        timeout,
                    };
                    Some((Err(e), None))
                }
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => {
                    let e = SharedError::Store {
                        op: SharedOp::Get,
                        key,
                        source: Arc::new(e),
                    };
                    Some((Err(e), None))
                }
            }
        }
    })
    .boxed()
}

/// Reads `len` bytes at `pos` of a verified local file (its descriptor stays valid after a
/// rename or an eviction's unlink).
async fn read_at(
    file: &Arc<TempFile>,
    pos: u64,
    len: usize,
    key: &Key,
) -> Result<Bytes, SharedError> {
    let file = file.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        file.file
            .read_exact_at(&mut buf, pos)
            .map(|()| Bytes::from(buf))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    read.map_err(|e| SharedError::Local {
        key: key.to_string(),
        source: Arc::new(e),
    })
}

#[cfg(test)]
mod tests;
