//! The content-addressed store on local disk: verified manifests and blobs are served from it,
//! and every cold blob fetch streams through it.
//!
//! # The promise
//! No byte of content whose digest did not verify is ever stored, and no stream this module
//! returns ever *completes* with bytes that did not verify. Cold fetches are streamed to the
//! caller while they are hashed, so the caller does receive unverified bytes, but the last
//! chunk is held back until the digest checked out; on a mismatch the stream ends in an error
//! instead, hyper aborts the response, and the client is left with a short, failed download.
//!
//! # Layout
//! ```text
//! <dir>/blobs/sha256/<first 2 hex>/<hex>        an object (blob or manifest), named by digest
//! <dir>/blobs/sha256/<first 2 hex>/<hex>.type   a manifest's media type
//! <dir>/tmp/                                    writes in progress
//! <dir>/trustgate.lock                          held by the one process writing (lock.rs)
//! ```
//! (`sha512` digests live under `blobs/sha512/` the same way.) Paths are only ever built from
//! a validated [`Digest`], never from raw request input.
//!
//! # Writes and crashes
//! An object is written to `tmp/`, hashed as it streams, `fsync`ed, and only then renamed to
//! its name; a manifest's sidecar is renamed into place before its object. `rename(2)` is
//! atomic, so a crash at any point leaves either no object or a complete verified one, plus
//! perhaps a temp file or an orphan sidecar, which [`Store::open`] removes. Objects found at
//! startup are additionally hashed on their first read (manifests on every read; they are
//! small), which catches files damaged or placed by anything other than this code.
//!
//! # Concurrency
//! Concurrent misses for one digest share a single upstream fetch ([`Store::blob`]). The
//! index is a `std::sync::Mutex` held only for map operations; a `tokio` mutex serialises
//! renames into `blobs/` with evictions, so an eviction's unlink can never hit a newer copy.
//! One process per directory: two processes sharing one `dir` would clear each other's temp
//! files at startup and keep separate indexes, so writers take a [`StoreLock`] first.
//! Replicas share content through a shared tier instead ([`SharedTier`], `shared.rs`): a
//! bucket behind each replica's own directory.

#![warn(missing_docs)]

mod admin;
mod buffers;
mod error;
mod flight;
mod index;
mod lock;
mod manifest;
mod read;
mod scan;
mod shared;
mod tail;
mod verify;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use self::admin::{inspect, Listing, StoredObject};
pub use self::error::StoreError;
pub use self::lock::{LockError, StoreLock, LOCK_FILE};
pub use self::read::CachedBlob;
pub use self::shared::{SharedError, SharedOp, SharedOptions, SharedTier};

use self::flight::Flight;
use self::index::{Index, Kind, Victim};
use crate::oci::Digest;

const BLOBS_DIR: &str = "blobs";
const TMP_DIR: &str = "tmp";
/// Suffix of a manifest's media-type sidecar file.
const SIDECAR_SUFFIX: &str = ".type";

/// The chunks of a blob: from disk, or from upstream as they arrive. Fails mid-way (so the
/// response is aborted) rather than completing with bytes that did not verify.
pub type BlobStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// The content-addressed store. Cloning is cheap (an `Arc`); clones share everything.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// A blob ready to be sent: its length when known, where it came from, and its bytes.
pub struct BlobBody {
    /// Length in bytes: always known for cache hits; for fetches, the signed descriptor's
    /// size, else what upstream announced (the body is held to it).
    pub length: Option<u64>,
    /// Whether this was a hit, a fetch, or a join of another caller's fetch.
    pub source: BlobSource,
    /// The bytes; see [`BlobStream`]. Convert with `crate::body::stream`.
    pub stream: BlobStream,
}

/// Where a [`BlobBody`] comes from, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobSource {
    /// Served from disk.
    Cache,
    /// This call ran the upstream fetch.
    Fetched,
    /// This call shared a fetch another caller started ("single flight").
    Joined,
}

/// Receives store events; the proxy turns them into metrics. Every method defaults to doing
/// nothing. Calls happen on the request path, so implementations must be cheap (counters).
pub trait StoreObserver: Send + Sync {
    /// An object of `bytes` bytes was served from disk (blob or manifest).
    fn hit(&self, bytes: u64) {
        let _ = bytes;
    }
    /// A manifest or blob request found nothing on disk (for blobs: once per caller,
    /// callers that joined another's fetch included).
    fn miss(&self) {}
    /// An object of `bytes` bytes was evicted to make room.
    fn evicted(&self, bytes: u64) {
        let _ = bytes;
    }
    /// Writing to the store failed; the content was served but not stored.
    fn write_failed(&self) {}
    /// An object on disk was damaged (bytes that do not match its digest, a manifest's
    /// media-type file that does not fit its bytes) and was removed.
    fn damaged(&self) {}
    /// A verified object of `bytes` bytes was stored.
    fn stored(&self, bytes: u64) {
        let _ = bytes;
    }
    /// An object of `bytes` bytes came from the shared tier, verified, into the local one.
    fn shared_hit(&self, bytes: u64) {
        let _ = bytes;
    }
    /// The shared tier does not have an object the local one missed.
    fn shared_miss(&self) {}
    /// An operation on the shared tier failed or timed out.
    fn shared_error(&self, op: SharedOp) {
        let _ = op;
    }
    /// The shared tier's object did not match its digest (or length); it was not used.
    fn shared_mismatch(&self) {}
    /// A verified object of `bytes` bytes was uploaded to the shared tier.
    fn shared_uploaded(&self, bytes: u64) {
        let _ = bytes;
    }
    /// An upload to the shared tier failed or was skipped (queue full); the object stays
    /// local only.
    fn shared_upload_failed(&self) {}
}

/// The default observer.
struct NoopObserver;

// === impl NoopObserver ===

impl StoreObserver for NoopObserver {}

struct Inner {
    root: PathBuf,
    max_size: u64,
    /// The longest blob fetched without a signed size (`limits.max_blob_size`).
    max_blob_size: u64,
    index: Mutex<Index>,
    /// Fetches in progress, by digest (see `flight.rs`).
    flights: Mutex<std::collections::HashMap<Digest, Flight>>,
    /// Held while renaming objects into `blobs/` and while unlinking evicted ones.
    commit: tokio::sync::Mutex<()>,
    observer: Arc<dyn StoreObserver>,
    /// The bucket replicas share, if configured (see `shared.rs`).
    shared: Option<SharedTier>,
    /// Makes temp file names unique.
    next_id: AtomicU64,
    /// Tests make writes fail after this many bytes of a blob.
    #[cfg(test)]
    write_limit: AtomicU64,
}

// === impl Store ===

impl Store {
    /// Opens the store under `dir` (creating it), bounded by `max_size` bytes of objects.
    /// Blobs without a signed size are not bounded in length here, only in what is stored
    /// ([`open_tiered`](Self::open_tiered) takes a bound).
    ///
    /// Removes leftover temp files of crashed writes, rebuilds the index by scanning
    /// `blobs/` (LRU order seeded from each file's latest access or modification time), and
    /// evicts down to `max_size` if the limit shrank. Nothing partial is trusted: objects only
    /// get their name by rename after their digest verified, and found objects are hashed
    /// again on first read (see the module docs).
    pub async fn open(dir: PathBuf, max_size: u64) -> Result<Self, StoreError> {
        Self::open_with_observer(dir, max_size, Arc::new(NoopObserver)).await
    }

    /// [`open`](Self::open), reporting events to `observer`.
    pub async fn open_with_observer(
        dir: PathBuf,
        max_size: u64,
        observer: Arc<dyn StoreObserver>,
    ) -> Result<Self, StoreError> {
        Self::open_tiered(dir, max_size, u64::MAX, observer, None).await
    }

    /// [`open_with_observer`](Self::open_with_observer), with `shared` as the tier behind
    /// this one: misses are looked up there before upstream, and what is fetched upstream
    /// is uploaded there (see `shared.rs`). A blob fetched without a signed size fails once
    /// it is longer than `max_blob_size` (see [`Store::blob_of_size`]).
    pub async fn open_tiered(
        dir: PathBuf,
        max_size: u64,
        max_blob_size: u64,
        observer: Arc<dyn StoreObserver>,
        shared: Option<SharedTier>,
    ) -> Result<Self, StoreError> {
        let scan = blocking(&dir, "scan", {
            let dir = dir.clone();
            move || scan::scan(&dir)
        })
        .await?;
        let mut objects = scan.objects;
        objects.sort_by_key(|found| found.last_used);
        let mut index = Index::new(max_size);
        for found in objects {
            let kind = if found.manifest {
                Kind::Manifest
            } else {
                Kind::Blob
            };
            index.insert(found.digest, found.size, kind, false);
        }
        let inner = Arc::new(Inner {
            root: dir,
            max_size,
            max_blob_size,
            index: Mutex::new(index),
            flights: Mutex::default(),
            commit: tokio::sync::Mutex::new(()),
            observer,
            shared,
            next_id: AtomicU64::new(0),
            #[cfg(test)]
            write_limit: AtomicU64::new(u64::MAX),
        });
        // Nothing is being read yet, so making room for nothing always succeeds; it evicts
        // whatever exceeds a `max_size` lowered since the last run.
        let victims = inner.index().reserve(0).unwrap_or_default();
        if !victims.is_empty() {
            let _commit = inner.commit.lock().await;
            inner.evict(victims).await;
        }
        let (objects, bytes) = {
            let index = inner.index();
            (index.len(), index.stored())
        };
        tracing::info!(
            objects,
            bytes,
            max_size,
            shared = ?inner.shared,
            removed_temp = scan.removed_temp,
            removed_stray = scan.removed_stray,
            "cache: opened"
        );
        Ok(Self { inner })
    }

    /// The size of a stored object (blob or manifest), or `None` if absent. Does not touch
    /// LRU: a `HEAD` should not keep content alive.
    pub async fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.inner.index().peek(digest).map(|entry| entry.size)
    }

    /// Bytes of objects stored (manifest sidecars, at most 255 bytes each, are not counted).
    pub fn size(&self) -> u64 {
        self.inner.index().stored()
    }

    /// The size limit given to [`open`](Self::open).
    pub fn max_size(&self) -> u64 {
        self.inner.max_size
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .field("max_size", &self.inner.max_size)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

// === impl BlobBody ===

impl fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobBody")
            .field("length", &self.length)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

// === impl Inner ===

impl Inner {
    /// The index, also after a panic elsewhere poisoned the lock: every index operation
    /// leaves it consistent before anything that could panic.
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn object_path(&self, digest: &Digest) -> PathBuf {
        object_path(&self.root, digest)
    }

    fn sidecar_path(&self, digest: &Digest) -> PathBuf {
        sidecar_path(&self.root, digest)
    }

    /// A fresh name under `tmp/`. The pid only helps a human tell leftovers apart.
    fn temp_path(&self, digest: &Digest) -> PathBuf {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.{}.{id}", digest.hex(), std::process::id());
        self.root.join(TMP_DIR).join(name)
    }

    fn full(&self, digest: &Digest, size: u64) -> StoreError {
        StoreError::Full {
            digest: digest.clone(),
            size,
            max_size: self.max_size,
        }
    }

    /// Unlinks evicted objects and reports them. Hold `commit` while calling this.
    async fn evict(&self, victims: Vec<Victim>) {
        for victim in &victims {
            tracing::debug!(digest = %victim.digest, size = victim.size, "cache: evicting");
            self.observer.evicted(victim.size);
        }
        self.remove_files(victims).await;
    }

    /// Unlinks the files of objects already removed from the index. Hold `commit` while
    /// calling this. Readers with the file open keep reading: on Linux an unlinked file's data
    /// lives until its last descriptor closes.
    async fn remove_files(&self, victims: Vec<Victim>) {
        let paths: Vec<PathBuf> = victims
            .iter()
            .flat_map(|victim| {
                let sidecar =
                    (victim.kind == Kind::Manifest).then(|| self.sidecar_path(&victim.digest));
                std::iter::once(self.object_path(&victim.digest)).chain(sidecar)
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for path in paths {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    // The index already forgot the object, so this only leaks disk space
                    // until the next start's scan picks the file up again.
                    Err(e) => tracing::warn!(path = %path.display(), error = %e,
                        "cache: cannot remove evicted file"),
                }
            }
        })
        .await;
    }

    /// Bytes after which writes fail (tests only); `u64::MAX` otherwise.
    fn write_limit(&self) -> u64 {
        #[cfg(test)]
        {
            self.write_limit.load(Ordering::Relaxed)
        }
        #[cfg(not(test))]
        {
            u64::MAX
        }
    }
}

/// Where the object named `digest` lives in the store under `root`.
fn object_path(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    let mut path = root.join(BLOBS_DIR);
    path.push(digest.algorithm().as_str());
    path.push(&hex[..2]);
    path.push(hex);
    path
}

/// Where a manifest's media-type sidecar lives in the store under `root`.
fn sidecar_path(root: &Path, digest: &Digest) -> PathBuf {
    let mut path = object_path(root, digest).into_os_string();
    path.push(SIDECAR_SUFFIX);
    path.into()
}

/// Runs blocking filesystem work on the blocking pool.
async fn blocking<T, F>(path: &Path, op: &'static str, work: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::io(op, path, io::Error::other(e))))
}

/// Moves a verified temp file to its final name, creating the prefix directory if needed.
async fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    let (from, to) = (from.to_owned(), to.to_owned());
    blocking(&to.clone(), "rename into", move || {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| StoreError::io("create directory", parent, e))?;
        }
        fs::rename(&from, &to).map_err(|e| StoreError::io("rename into", &to, e))
    })
    .await
}

#[cfg(test)]
mod tests;
