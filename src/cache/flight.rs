//! Cold blob fetches: one fetch per digest however many callers want it ("single flight"),
//! from the shared tier if it has the object, else from upstream, streamed to every caller
//! while it is hashed once and written to a temp file. Both sources take the same path and
//! the same checks.
//!
//! ```text
//!   upstream ──> leader task ──(hash, length check)──┬──> first caller    (memory, mpsc)
//!                 (spawned)                           └──> writer task ──> tmp/<hex>.<id>
//!                                                                            │ pread
//!                                  callers that joined later, and a first ◄──┘
//!                                  caller that fell behind, tail the file
//! ```
//!
//! * The leader runs in its own task, so the download finishes (and the cache fills) even if
//!   every caller goes away. Only when nothing is being cached and the first caller is gone
//!   does it stop early, since nothing would use the rest.
//! * The first caller gets chunks from memory. While caching, the leader never waits for it:
//!   if its queue fills up, it is switched to reading the temp file from where it stands, so a
//!   slow client never slows the download for the others. Without a temp file there is
//!   nothing to fall back to, and the leader waits for it instead.
//! * Callers that join read the temp file through the same descriptor (`pread`), up to what
//!   the writer reports written, so they start streaming at once instead of waiting for the
//!   whole download. Every reader holds back its last chunk until the leader reports the
//!   digest verified (see `verify.rs`).
//! * Writes are batched (up to 1 MiB per `writev`) on the blocking pool, where the writer
//!   also hashes each batch before writing it, so that hashing and disk writes overlap with
//!   the network instead of following it on the leader's core (the leader hands its hashing
//!   over, see `Checked::hand_off`, and gets it back before `finish`). A write error (disk full) stops caching, not serving: the first caller keeps
//!   streaming from memory, callers that had not started fetch on their own, and callers
//!   already tailing the file fail ([`StoreError::CacheUnavailable`]).
//! * On success the file is `fsync`ed and renamed into `blobs/`; on any failure it is removed
//!   and the flight is forgotten, so the next request fetches again.
//! * Length and room come from what was signed or configured, never from the upstream's word:
//!   under a signed size exactly that many bytes are read and room for them is made up front;
//!   otherwise the body is bounded by `max_blob_size` and the reservation grows with the bytes
//!   that arrived (a lying `Content-Length` evicts nothing), and a blob that outgrows the room
//!   is served uncached.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::index::Kind;
use super::shared::{SharedTier, Upload};
use super::tail::Reader;
use super::verify::{passthrough, Checked, Expect};
use super::{BlobBody, BlobSource, Inner, Store, StoreError};
use crate::oci::{Digest, DigestVerifier};

/// Chunks queued for the first caller before it is switched to reading the temp file.
const FIRST_CALLER_QUEUE: usize = 64;
/// Chunks queued for the writer before the leader waits for the disk.
const WRITE_QUEUE: usize = 64;
/// Most bytes, and chunks, per `writev`.
const WRITE_BATCH_BYTES: usize = 1024 * 1024;
const WRITE_BATCH_CHUNKS: usize = 256;

/// A fetch in progress, as listed in `Inner::flights`.
pub(super) struct Flight {
    id: u64,
    state: watch::Receiver<FlightState>,
}

/// What the leader tells readers; published through a `watch` channel.
#[derive(Clone, Default)]
pub(super) struct FlightState {
    /// Set once `fetch` returned: the length upstream announced, if any.
    pub(super) headers: Option<Option<u64>>,
    /// The temp file, while caching.
    pub(super) file: Option<Arc<TempFile>>,
    /// Bytes written to the temp file so far, readable by `pread`.
    pub(super) written: u64,
    /// Set once the whole stream verified: its length.
    pub(super) verified: Option<u64>,
    /// Set if the fetch or its verification failed: every reader fails with it.
    pub(super) failed: Option<StoreError>,
    /// Set if nothing is being cached (from the start, or after a write error).
    pub(super) cache_failed: bool,
}

/// A temp file being written, shared with the readers tailing it.
pub(super) struct TempFile {
    pub(super) file: File,
    pub(super) path: PathBuf,
}

// === impl TempFile ===

impl TempFile {
    /// Creates the file at `path`, which must not exist. Readable too: readers tail it
    /// through this descriptor.
    pub(super) async fn create(path: PathBuf) -> io::Result<Arc<TempFile>> {
        let file = blocking_io({
            let path = path.clone();
            move || {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(path)
            }
        })
        .await?;
        Ok(Arc::new(TempFile { file, path }))
    }

    /// Hashes `batch` into `hasher` and appends it in one vectored write, the two side by
    /// side on the blocking pool (two threads: on two cores a batch costs the longer of the
    /// two, not their sum). The hasher comes back whatever the write did (`None` only if its
    /// blocking task panicked).
    async fn hash_and_write(
        self: &Arc<Self>,
        batch: Vec<Bytes>,
        mut hasher: DigestVerifier,
    ) -> (io::Result<()>, Option<DigestVerifier>) {
        let file = self.clone();
        let chunks = batch.clone();
        let hashing = tokio::task::spawn_blocking(move || {
            for chunk in &chunks {
                hasher.update(chunk);
            }
            hasher
        });
        let written = blocking_io(move || write_all_vectored(&file.file, &batch)).await;
        (written, hashing.await.ok())
    }

    /// `fsync`s the data written.
    pub(super) async fn sync(self: &Arc<Self>) -> io::Result<()> {
        let file = self.clone();
        blocking_io(move || file.file.sync_data()).await
    }
}

/// Runs blocking file I/O off the runtime; a panicked task is an I/O error.
async fn blocking_io<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// The caller that runs the fetch; owned by the spawned task.
struct Leader {
    inner: Arc<Inner>,
    digest: Digest,
    /// How long the blob may be: a verified descriptor's size, or the configured limit.
    expect: Expect,
    id: u64,
    state: watch::Sender<FlightState>,
    /// The temp file to remove unless it was renamed into place.
    tmp: Option<PathBuf>,
    /// Space reserved in the index, to give back unless it became a stored object. For a
    /// signed size it is reserved up front; otherwise it grows with the bytes that arrived.
    reserved: Option<u64>,
}

/// Where a flight's bytes come from.
enum Source {
    Upstream,
    /// The shared tier's object, trusted no more than the upstream.
    Shared(SharedTier),
}

/// An active temp file and its writer task, which also hashes (see `write_loop`).
struct Cache {
    file: Arc<TempFile>,
    tx: mpsc::Sender<Bytes>,
    writer: JoinHandle<Written>,
}

/// What the writer did: bytes written (or its first error), and the hashing handed to it,
/// fed every chunk it was sent (`None` if it was lost to a panic).
struct Written {
    result: io::Result<u64>,
    hasher: Option<DigestVerifier>,
}

enum Role {
    Lead {
        id: u64,
        state: watch::Sender<FlightState>,
    },
    Join(watch::Receiver<FlightState>),
    /// Stored while we looked: try the disk again.
    Stored,
}

// === impl Store ===

impl Store {
    /// Serves a blob: from disk when stored, otherwise through `fetch`.
    ///
    /// `fetch` returns the upstream length, if known, and the byte stream. It runs at most
    /// once across concurrent callers for the same digest (the others join it; their own
    /// `fetch` is dropped unused, unless the shared fetch cannot be cached, see below), in a
    /// task of its own so that it runs to completion, and fills the cache, even if every
    /// caller disconnects.
    ///
    /// The bytes are hashed as they stream. Only when the whole stream's digest equals
    /// `digest`, and its length the announced one, is the temp file renamed into place;
    /// otherwise nothing is stored, and every caller's stream ends with an error before its
    /// last chunk. This call waits for `fetch` to return: its error is returned here, to
    /// every caller that joined, and so is a failure that is already known by then (a fast
    /// upstream may have sent everything, wrongly, before a joiner looks). Either way no byte
    /// was sent and the proxy can answer with an error status. The next call after a failure
    /// fetches again.
    ///
    /// If the store cannot cache (a write fails, the disk is full, the blob does not fit),
    /// the blob is still served, [`StoreObserver::write_failed`](super::StoreObserver) is
    /// called for write errors, and callers that joined run their own `fetch` uncached.
    ///
    /// `fetch` and its future must be `'static` because they run on a task of their own.
    /// The digest's algorithm may be `sha256` or `sha512`.
    pub async fn blob<F, Fut, E>(&self, digest: &Digest, fetch: F) -> Result<BlobBody, StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>
            + Send
            + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.blob_of_size(digest, None, fetch).await
    }

    /// [`Store::blob`] for a blob whose size a verified descriptor may give.
    ///
    /// With `Some(size)`, exactly `size` bytes are read: an upstream `Content-Length` of any
    /// other value fails the fetch before a byte is read, a longer body fails at its first
    /// extra byte (which is neither written nor forwarded), a shorter one at its end. Room in
    /// the store is made for `size` up front, and [`BlobBody::length`] is `size`. A shared-tier
    /// object of any other size is not what the key promises, and is ignored before a byte of
    /// it is read or room is made for it.
    ///
    /// With `None`, no descriptor vouches for a size: the body is bounded by the store's
    /// `max_blob_size` (a longer one fails), an announced length must hold but reserves
    /// nothing, and room is made only as bytes arrive, so a lying length or a junk object
    /// evicts no more than it sent. If the cache
    /// runs out of room mid-way, the blob is served uncached.
    pub async fn blob_of_size<F, Fut, E>(
        &self,
        digest: &Digest,
        size: Option<u64>,
        fetch: F,
    ) -> Result<BlobBody, StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>
            + Send
            + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let expect = match size {
            Some(size) => Expect::Exact(size),
            None => Expect::AtMost(self.inner.max_blob_size),
        };
        loop {
            if let Some(blob) = self.open_blob(digest).await? {
                self.inner.observer.hit(blob.len());
                return Ok(BlobBody {
                    length: Some(blob.len()),
                    source: BlobSource::Cache,
                    stream: blob.into_stream(),
                });
            }
            match self.inner.lead_or_join(digest) {
                Role::Stored => continue,
                Role::Lead { id, state } => {
                    self.inner.observer.miss();
                    return self.lead(digest, expect, id, state, fetch).await;
                }
                Role::Join(state) => {
                    self.inner.observer.miss();
                    return join(digest, expect, state, fetch).await;
                }
            }
        }
    }

    /// The blob, stored and hashed whole by this process, opened for reading part of it (a
    /// byte range): a verified hit at once; an object found at startup after it is hashed
    /// whole; a miss after [`Store::blob_of_size`] fetched, verified and stored all of it
    /// (single flight, as for a full read). `None` when it could not be stored (no room, a
    /// write failed, a stored object that did not match its digest and is gone now): serve
    /// it whole instead.
    pub async fn verified_blob<F, Fut, E>(
        &self,
        digest: &Digest,
        size: Option<u64>,
        fetch: F,
    ) -> Result<Option<super::CachedBlob>, StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>
            + Send
            + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        if let Some(blob) = self.open_blob(digest).await? {
            if blob.is_verified() {
                self.inner.observer.hit(blob.len());
                return Ok(Some(blob));
            }
        }
        // Hashes an unverified object on the way, or fetches it; nothing is sent meanwhile.
        let mut stream = self.blob_of_size(digest, size, fetch).await?.stream;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(_) => {}
                Err(StoreError::Corrupt { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        drop(stream);
        // The fetch reports the blob verified before it renamed it into place.
        let flight = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .map(|f| f.state.clone());
        if let Some(mut state) = flight {
            while state.changed().await.is_ok() {}
        }
        Ok(self.open_blob(digest).await?.filter(|b| b.is_verified()))
    }

    async fn lead<F, Fut, E>(
        &self,
        digest: &Digest,
        expect: Expect,
        id: u64,
        state: watch::Sender<FlightState>,
        fetch: F,
    ) -> Result<BlobBody, StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>
            + Send
            + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut rx = state.subscribe();
        let (first_tx, first_rx) = mpsc::channel(FIRST_CALLER_QUEUE);
        let leader = Leader {
            inner: self.inner.clone(),
            digest: digest.clone(),
            expect,
            id,
            state,
            tmp: None,
            reserved: None,
        };
        tokio::spawn(leader.run(fetch, first_tx));
        let (length, _) = wait_headers(digest, &mut rx).await?;
        Ok(BlobBody {
            length,
            source: BlobSource::Fetched,
            stream: Reader::new(digest, rx, Some(first_rx)).into_stream(),
        })
    }
}

async fn join<F, Fut, E>(
    digest: &Digest,
    expect: Expect,
    mut rx: watch::Receiver<FlightState>,
    fetch: F,
) -> Result<BlobBody, StoreError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>
        + Send
        + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let (length, cached) = wait_headers(digest, &mut rx).await?;
    if !cached {
        // There is no file to tail; fetch on our own rather than fail. This only happens when
        // the store cannot cache, where every request going upstream is the honest fallback.
        let (announced, upstream) = fetch().await.map_err(|e| StoreError::upstream(digest, e))?;
        let check = Checked::new(digest, expect, announced)?;
        return Ok(BlobBody {
            length: check.expected_len(),
            source: BlobSource::Fetched,
            stream: passthrough(digest.clone(), check, upstream),
        });
    }
    Ok(BlobBody {
        length,
        source: BlobSource::Joined,
        stream: Reader::new(digest, rx, None).into_stream(),
    })
}

/// Waits until `fetch` returned: the expected length and whether a temp file is being
/// written, or the fetch's error.
async fn wait_headers(
    digest: &Digest,
    rx: &mut watch::Receiver<FlightState>,
) -> Result<(Option<u64>, bool), StoreError> {
    loop {
        {
            let state = rx.borrow_and_update();
            if let Some(e) = &state.failed {
                return Err(e.clone());
            }
            if let Some(length) = state.headers {
                return Ok((length, state.file.is_some() && !state.cache_failed));
            }
        }
        if rx.changed().await.is_err() {
            let state = rx.borrow();
            return match (&state.failed, state.headers) {
                (Some(e), _) => Err(e.clone()),
                (None, Some(length)) => Ok((length, false)),
                (None, None) => Err(StoreError::Aborted {
                    digest: digest.clone(),
                }),
            };
        }
    }
}

// === impl Inner ===

impl Inner {
    /// Joins the fetch in progress for `digest`, or registers a new one that the caller leads.
    fn lead_or_join(&self, digest: &Digest) -> Role {
        // Lock order: flights, then index (`Leader::commit` takes them one at a time).
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = flights.get(digest) {
            return Role::Join(flight.state.clone());
        }
        // A leader inserts into the index before it leaves `flights`, so checking again
        // under this lock closes the window in which we would fetch a stored blob again.
        if self.index().peek(digest).is_some() {
            return Role::Stored;
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (state, rx) = watch::channel(FlightState::default());
        flights.insert(digest.clone(), Flight { id, state: rx });
        Role::Lead { id, state }
    }
}

// === impl Leader ===

impl Leader {
    async fn run<F, Fut, E>(mut self, fetch: F, first: mpsc::Sender<Bytes>)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        if let Some(shared) = self.inner.shared.clone() {
            if let Some((size, body)) = self.open_shared(&shared).await {
                let source = Source::Shared(shared);
                return self
                    .stream(source, Some(size), body, first, Some(fetch))
                    .await;
            }
        }
        match fetch_upstream(&self.digest, fetch).await {
            Ok((announced, body)) => {
                self.stream(Source::Upstream, announced, body, first, None::<F>)
                    .await
            }
            Err(e) => self.fail(e),
        }
    }

    /// Streams `body` (announced as `announced` bytes) to the first caller, the temp file and
    /// the callers tailing it, hashing and length-checking it on the way; stores it if it
    /// verified. The same for both sources: the bucket is trusted no more than the upstream.
    ///
    /// If the shared tier's object fails to arrive (a read error, its deadline, or an end
    /// short of its size), the rest comes from `fallback`, the upstream, read from the start
    /// with the bytes already streamed skipped: the digest check covers both parts, so the
    /// client is served whole when the bucket's bytes were right, and stopped short when they
    /// were not.
    async fn stream<F, Fut, E>(
        mut self,
        mut source: Source,
        announced: Option<u64>,
        mut upstream: BoxStream<'static, Result<Bytes, StoreError>>,
        first: mpsc::Sender<Bytes>,
        mut fallback: Option<F>,
    ) where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut check = match Checked::new(&self.digest, self.expect, announced) {
            Ok(check) => check,
            Err(e) => return self.fail(e),
        };
        // What clients are told: the descriptor's size, else the length upstream announced
        // (which the check then holds the body to).
        let length = check.expected_len();
        let mut cache = self.start_cache(&mut check).await;
        self.state.send_modify(|s| {
            s.headers = Some(length);
            s.file = cache.as_ref().map(|c| c.file.clone());
            s.cache_failed = cache.is_none();
        });
        if cache.is_none() {
            // Nobody can tail this fetch, so new callers should not join it.
            self.unlist();
        }
        let mut first = Some(first);
        // Whether the source sent bytes past the object's length.
        let mut excess = false;
        let ended = loop {
            if check.remaining() == Some(0) {
                // The length the descriptor (or the announcement) gives is all there is: the
                // object ends here whatever the source does next, and nothing after it is
                // read. A source that goes on (an endless body) is faulty; the bytes served
                // are still exactly the ones the digest check below covers.
                excess |=
                    matches!(upstream.next().now_or_never(), Some(Some(Ok(c))) if !c.is_empty());
                if excess {
                    tracing::warn!(digest = %self.digest, length = check.len(),
                        "upstream sent more than the blob's length; the rest was not read");
                }
                break Ok(());
            }
            let next = match (upstream.next().await, &source) {
                (None, Source::Shared(shared)) if check.remaining() != Some(0) => {
                    let size = check.expected_len().unwrap_or_default();
                    let e = shared.ended_short(&self.digest, size, check.len());
                    Some(Err(StoreError::shared(&self.digest, e)))
                }
                (next, _) => next,
            };
            let chunk = match next {
                None => break Ok(()),
                Some(Err(e @ StoreError::Shared { .. })) => {
                    let (Source::Shared(shared), Some(fetch)) = (&source, fallback.take()) else {
                        break Err(e);
                    };
                    self.shared_failed(shared, &e);
                    tracing::info!(digest = %self.digest, streamed = check.len(),
                        "shared store: the rest of the blob comes from upstream");
                    match resume_upstream(&self.digest, fetch, check.len()).await {
                        Ok(rest) => {
                            (upstream, source) = (rest, Source::Upstream);
                            continue;
                        }
                        Err(e) => break Err(e),
                    }
                }
                Some(Err(e)) => break Err(e),
                // An empty chunk would let a reader release everything before it.
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => chunk,
            };
            // Never past the length: a chunk reaching beyond it is cut there.
            let chunk = match check.remaining() {
                Some(left) if chunk.len() as u64 > left => {
                    excess = true;
                    chunk.slice(..usize::try_from(left).unwrap_or(usize::MAX))
                }
                _ => chunk,
            };
            // Room first: giving up the cache takes the hashing back before `update`, which
            // then hashes this chunk itself.
            let total = check.len() + chunk.len() as u64;
            // A bucket's object of no signed size evicts nothing before it verified.
            let evict = matches!(source, Source::Upstream) || self.expect.exact().is_some();
            // Past the limit `update` fails below: no room is made for those bytes.
            let within = total <= self.expect.limit();
            if cache.is_some() && within && !self.grow_reservation(total, evict).await {
                if let Some(full) = cache.take() {
                    self.stop_caching(full, &mut check).await;
                }
            }
            if let Err(e) = check.update(&chunk) {
                break Err(e);
            }
            // The writer hashes what it is sent, and goes on hashing after a write error.
            let written = match &cache {
                Some(cache) => {
                    cache.tx.send(chunk.clone()).await.is_ok() && !self.state.borrow().cache_failed
                }
                None => true,
            };
            if !written {
                if let Some(lost) = cache.take() {
                    self.cache_lost(lost, &mut check).await;
                }
            }
            if let Some(tx) = &first {
                let delivered = if cache.is_some() {
                    tx.try_send(chunk).is_ok()
                } else {
                    tx.send(chunk).await.is_ok()
                };
                if !delivered {
                    first = None;
                }
            }
            if first.is_none() && cache.is_none() {
                tracing::debug!(digest = %self.digest, "cache: caller gone and nothing to cache; stopping the fetch");
                return;
            }
        };
        // The hashing handed to the writer comes back once it wrote (or hashed) the rest.
        let written = match cache {
            Some(cache) => Some((
                cache.file.clone(),
                self.finish_writes(cache, &mut check).await,
            )),
            None => None,
        };
        match ended.and_then(|()| check.finish()) {
            Err(e) => {
                if let Source::Shared(shared) = &source {
                    self.shared_failed(shared, &e);
                }
                // Readers learn of the failure before their queue closes.
                self.fail(e);
                drop(first);
            }
            Ok(total) => {
                if let Source::Shared(_) = &source {
                    self.inner.observer.shared_hit(total);
                }
                self.state.send_modify(|s| s.verified = Some(total));
                drop(first);
                if let Some((file, written)) = written {
                    self.commit(file, written, total, source).await;
                }
            }
        }
    }

    /// Opens the shared tier's object for this blob, to be streamed like an upstream body:
    /// its size and bytes, or `None` to fetch upstream instead (absent, unreachable, of
    /// another size than signed, too large, or known to be wrong here).
    ///
    /// The bucket's word on the size decides nothing by itself: under a signed size an object
    /// of another size is ignored unread; otherwise it must be within `max_blob_size` and the
    /// store, and the stream is then held to it. The whole body has a deadline
    /// ([`SharedTier::read_deadline`]) on top of the pause bound between chunks.
    async fn open_shared(
        &mut self,
        shared: &SharedTier,
    ) -> Option<(u64, BoxStream<'static, Result<Bytes, StoreError>>)> {
        let observer = self.inner.observer.clone();
        if shared.is_suspect(&self.digest) {
            tracing::debug!(digest = %self.digest,
                "shared store: object was wrong or cut short here; fetching upstream until it is replaced");
            return None;
        }
        let object = match shared.open(&self.digest).await {
            Ok(Some(object)) => object,
            Ok(None) => {
                observer.shared_miss();
                return None;
            }
            Err(e) => {
                observer.shared_error(e.op());
                return None;
            }
        };
        let size = object.size;
        if self.expect.exact().is_some_and(|expected| expected != size) {
            tracing::warn!(digest = %self.digest, key = %shared.key(&self.digest), size,
                expected = self.expect.exact(), "shared store: object has the wrong size; ignored, fetching upstream");
            observer.shared_mismatch();
            shared.needs_repair(&self.digest);
            return None;
        }
        if size > self.expect.limit() || size > self.inner.max_size {
            tracing::debug!(digest = %self.digest, size, limit = self.expect.limit(),
                "shared store: object larger than the blob limit or the cache; fetching upstream");
            return None;
        }
        let deadline = shared.read_deadline(size);
        let expires = tokio::time::Instant::now() + deadline;
        let (tier, digest) = (shared.clone(), self.digest.clone());
        let body = futures_util::stream::unfold(
            Some((object.body, Box::pin(tokio::time::sleep_until(expires)))),
            move |state| {
                let (tier, digest) = (tier.clone(), digest.clone());
                async move {
                    let (mut body, mut expiry) = state?;
                    let next = tokio::select! {
                        biased;
                        next = body.next() => next,
                        () = &mut expiry => Some(Err(tier.timed_out(&digest, deadline))),
                    };
                    match next? {
                        Ok(chunk) => Some((Ok(chunk), Some((body, expiry)))),
                        Err(e) => Some((Err(StoreError::shared(&digest, e)), None)),
                    }
                }
            },
        )
        .boxed();
        Some((size, body))
    }

    /// The object from the shared tier failed after it began to stream: counted, and marked
    /// so that this replica reads the blob upstream until its own verified upload replaced
    /// the object.
    fn shared_failed(&self, shared: &SharedTier, e: &StoreError) {
        match e {
            StoreError::Shared { source, .. } => {
                tracing::warn!(digest = %self.digest, error = %source,
                    "shared store: read failed mid-stream");
                self.inner.observer.shared_error(source.op());
            }
            e if e.is_upstream() => {
                tracing::warn!(digest = %self.digest, key = %shared.key(&self.digest), error = %e,
                    "shared store: object does not match its digest or length; the download was stopped short");
                self.inner.observer.shared_mismatch();
            }
            // The local tier failed, not the bucket.
            _ => return,
        }
        shared.needs_repair(&self.digest);
    }

    fn fail(&self, e: StoreError) {
        tracing::warn!(digest = %self.digest, error = %e, "cache: blob fetch failed; nothing stored");
        self.state.send_modify(|s| s.failed = Some(e));
    }

    /// Reserves room and creates the temp file, and hands the hashing of `check` to its
    /// writer; `None` to serve without caching (`check` then hashes itself).
    async fn start_cache(&mut self, check: &mut Checked) -> Option<Cache> {
        if let Some(length) = self.expect.exact() {
            // With a signed size, room is made up front so that concurrent fetches cannot
            // together overfill the disk. Otherwise it grows with the bytes that arrive (see
            // `grow_reservation`): an announced length is the upstream's word, and room made
            // for it would evict verified content for bytes that may never come.
            let _commit = self.inner.commit.lock().await;
            let victims = self.inner.index().reserve(length);
            let Some(victims) = victims else {
                tracing::debug!(digest = %self.digest, length, "cache: no room; serving uncached");
                return None;
            };
            self.reserved = Some(length);
            self.inner.evict(victims).await;
        }
        let path = self.inner.temp_path(&self.digest);
        let file = match TempFile::create(path.clone()).await {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(digest = %self.digest, path = %path.display(), error = %e,
                    "cache: cannot create temp file; serving uncached");
                self.inner.observer.write_failed();
                self.release_reservation();
                return None;
            }
        };
        self.tmp = Some(path);
        let hasher = check.hand_off()?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let writer = tokio::spawn(write_loop(
            file.clone(),
            rx,
            self.state.clone(),
            self.inner.write_limit(),
            hasher,
        ));
        Some(Cache { file, tx, writer })
    }

    /// Closes the writer's queue and waits for it: what it wrote, with the hashing given
    /// back to `check` (which fails closed in `finish` if the writer lost it).
    async fn finish_writes(&self, cache: Cache, check: &mut Checked) -> io::Result<u64> {
        let Cache { tx, writer, .. } = cache;
        drop(tx);
        let done = writer.await.unwrap_or_else(|e| Written {
            result: Err(io::Error::other(e)),
            hasher: None,
        });
        if let Some(hasher) = done.hasher {
            check.take_back(hasher);
        }
        done.result
    }

    /// Makes the reservation cover the `total` bytes that arrived so far: free room first,
    /// else by evicting. `false` if that is impossible (the blob outgrew the store, or what
    /// would have to go is being read). A no-op under a signed size, reserved in full.
    async fn grow_reservation(&mut self, total: u64, evict: bool) -> bool {
        let have = self.reserved.unwrap_or(0);
        if total <= have {
            return true;
        }
        if total > self.inner.max_size {
            return false;
        }
        let more = total - have;
        if self.inner.index().reserve_free(more) {
            self.reserved = Some(total);
            return true;
        }
        if !evict {
            return false;
        }
        let _commit = self.inner.commit.lock().await;
        let Some(victims) = self.inner.index().reserve(more) else {
            return false;
        };
        self.reserved = Some(total);
        self.inner.evict(victims).await;
        true
    }

    /// The cache has no room for more of this blob: keep serving, stop caching.
    async fn stop_caching(&mut self, cache: Cache, check: &mut Checked) {
        let file = cache.file.clone();
        let _ = self.finish_writes(cache, check).await;
        tracing::debug!(digest = %self.digest, path = %file.path.display(),
            "cache: blob outgrew the room in the cache; serving uncached");
        self.state.send_modify(|s| s.cache_failed = true);
        self.unlist();
        self.remove_tmp();
        self.release_reservation();
    }

    /// The writer failed: keep serving, stop caching.
    async fn cache_lost(&mut self, cache: Cache, check: &mut Checked) {
        let file = cache.file.clone();
        let error = match self.finish_writes(cache, check).await {
            Err(e) => e.to_string(),
            Ok(_) => "writer stopped".to_owned(),
        };
        tracing::warn!(digest = %self.digest, path = %file.path.display(), %error,
            "cache: write failed; serving uncached");
        self.inner.observer.write_failed();
        self.state.send_modify(|s| s.cache_failed = true);
        self.unlist();
        self.remove_tmp();
        self.release_reservation();
    }

    /// Syncs and renames the verified temp file into place, given what its writer did.
    /// A blob from upstream is then uploaded to the shared tier; one from there is not.
    async fn commit(
        mut self,
        file: Arc<TempFile>,
        written: io::Result<u64>,
        total: u64,
        source: Source,
    ) {
        // fsync before the rename: after a power loss, an object's name must never point at
        // data that did not reach the disk.
        let synced = match written {
            Ok(written) if written == total => file.sync().await,
            Ok(written) => Err(io::Error::other(format!(
                "wrote {written} of {total} bytes"
            ))),
            Err(e) => Err(e),
        };
        if let Err(e) = synced {
            tracing::warn!(digest = %self.digest, path = %file.path.display(), error = %e,
                "cache: write failed; not stored");
            self.inner.observer.write_failed();
            return;
        }
        if !self.install(&file.path, total).await {
            return;
        }
        let Source::Upstream = source else {
            tracing::debug!(digest = %self.digest, size = total, "cache: stored blob from the shared tier");
            return;
        };
        self.inner.observer.stored(total);
        tracing::debug!(digest = %self.digest, size = total, "cache: stored blob");
        if let Some(shared) = &self.inner.shared {
            let upload = Upload::Blob { file, size: total };
            shared.upload(&self.digest, upload, self.inner.observer.clone());
        }
        // Dropping `self` unlists the flight, after the index has the blob.
    }

    /// Renames a verified, synced temp file into `blobs/` and indexes it; `false` if it was
    /// not stored (already there, no room, or the rename failed).
    async fn install(&mut self, path: &std::path::Path, total: u64) -> bool {
        let _commit = self.inner.commit.lock().await;
        if self.inner.index().peek(&self.digest).is_some() {
            // Stored meanwhile through `put_manifest`; same bytes.
            return false;
        }
        if self.reserved.is_none() {
            let victims = self.inner.index().reserve(total);
            let Some(victims) = victims else {
                tracing::debug!(digest = %self.digest, total, "cache: no room; not stored");
                return false;
            };
            self.reserved = Some(total);
            self.inner.evict(victims).await;
        }
        let to = self.inner.object_path(&self.digest);
        if let Err(e) = super::rename(path, &to).await {
            tracing::warn!(digest = %self.digest, error = %e, "cache: rename failed; not stored");
            self.inner.observer.write_failed();
            return false;
        }
        self.tmp = None;
        self.reserved = None;
        self.inner
            .index()
            .insert_reserved(self.digest.clone(), total, Kind::Blob);
        true
    }

    /// Forgets this flight so the next request starts afresh (or finds the stored blob).
    fn unlist(&self) {
        let mut flights = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(&self.digest).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.digest);
        }
    }

    fn remove_tmp(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            // A single unlink, also from `Drop`; readers keep their descriptor's data.
            if let Err(e) = std::fs::remove_file(&tmp) {
                tracing::warn!(path = %tmp.display(), error = %e, "cache: cannot remove temp file");
            }
        }
    }

    fn release_reservation(&mut self) {
        if let Some(reserved) = self.reserved.take() {
            self.inner.index().unreserve(reserved);
        }
    }
}

impl Drop for Leader {
    /// Runs on every way out, panics and runtime shutdown included: the flight is forgotten,
    /// its temp file and reservation are given back, and dropping `state` tells readers that
    /// are still waiting that the fetch is over.
    fn drop(&mut self) {
        self.remove_tmp();
        self.release_reservation();
        self.unlist();
    }
}

/// Calls `fetch`: the length upstream announced and its body, errors made the store's.
async fn fetch_upstream<F, Fut, E>(
    digest: &Digest,
    fetch: F,
) -> Result<(Option<u64>, BoxStream<'static, Result<Bytes, StoreError>>), StoreError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let (announced, body) = fetch().await.map_err(|e| StoreError::upstream(digest, e))?;
    let digest = digest.clone();
    let body = body
        .map(move |chunk| chunk.map_err(|e| StoreError::upstream(&digest, e)))
        .boxed();
    Ok((announced, body))
}

/// The upstream's body from byte `skip` on: fetched from the start, the first `skip` bytes
/// read and dropped (they were streamed from the shared tier). A body shorter than that ends
/// at once, and the length check fails.
async fn resume_upstream<F, Fut, E>(
    digest: &Digest,
    fetch: F,
    skip: u64,
) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(Option<u64>, BoxStream<'static, Result<Bytes, E>>), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let (_, mut body) = fetch_upstream(digest, fetch).await?;
    let mut left = skip;
    while left > 0 {
        let chunk = match body.next().await {
            None => break,
            Some(chunk) => chunk?,
        };
        match usize::try_from(left) {
            Ok(n) if n < chunk.len() => {
                let rest = futures_util::stream::once(std::future::ready(Ok(chunk.slice(n..))));
                return Ok(rest.chain(body).boxed());
            }
            _ => left -= chunk.len() as u64,
        }
    }
    Ok(body)
}

/// Writes what the leader sends, in batches, and publishes how much is written; hashes every
/// chunk into `hasher` beside the write, on the blocking pool, so that on two cores hashing
/// and disk writes run beside the network instead of after it (the leader hands the hashing
/// over, see `Checked::hand_off`). After a write error it stops writing but goes on hashing
/// what it is sent, so the leader can still verify what it streams uncached.
async fn write_loop(
    file: Arc<TempFile>,
    mut rx: mpsc::Receiver<Bytes>,
    state: watch::Sender<FlightState>,
    limit: u64,
    hasher: DigestVerifier,
) -> Written {
    let mut hasher = Some(hasher);
    let mut written = 0u64;
    let mut failed = None;
    while let Some(chunk) = rx.recv().await {
        let mut len = chunk.len();
        let mut batch = vec![chunk];
        while len < WRITE_BATCH_BYTES && batch.len() < WRITE_BATCH_CHUNKS {
            match rx.try_recv() {
                Ok(chunk) => {
                    len += chunk.len();
                    batch.push(chunk);
                }
                Err(_) => break,
            }
        }
        let Some(mut h) = hasher.take() else {
            break; // lost to a panic: the leader fails closed
        };
        if failed.is_some() || written + len as u64 > limit {
            for chunk in &batch {
                h.update(chunk);
            }
            hasher = Some(h);
            if failed.is_none() {
                failed = Some(io::Error::other("injected write failure"));
                state.send_modify(|s| s.cache_failed = true);
            }
            continue;
        }
        let (result, h) = file.hash_and_write(batch, h).await;
        hasher = h;
        if let Err(e) = result {
            state.send_modify(|s| s.cache_failed = true);
            failed = Some(e);
            continue;
        }
        written += len as u64;
        state.send_modify(|s| s.written = written);
    }
    Written {
        result: failed.map_or(Ok(written), Err),
        hasher,
    }
}

fn write_all_vectored(mut file: &File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
