//! Serving objects from disk: the cache-hit path.
//!
//! Opening ([`Store::open_blob`]) is kept apart from streaming ([`CachedBlob::into_stream`]) so
//! that a later zero-copy path (`sendfile`) can take the open file instead of the stream.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tokio::task::JoinHandle;

use super::buffers::BufferPool;
use super::{BlobStream, Inner, Store, StoreError};
use crate::oci::{Digest, DigestVerifier};

/// Size of each read from disk. Large reads keep syscalls and blocking-pool hops per byte low
/// (one of each per 256 KiB).
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// The buffers every disk read (here and in `tail.rs`) fills: at most 8 MiB of them idle.
pub(super) static READ_BUFFERS: BufferPool = BufferPool::new(READ_CHUNK, 32);

/// A blob opened from the store, counted as being read until dropped (eviction skips it).
pub struct CachedBlob {
    file: File,
    len: u64,
    verified: bool,
    guard: ReadGuard,
}

/// Keeps an object's reader count up while a [`CachedBlob`] or its stream lives.
struct ReadGuard {
    inner: Arc<Inner>,
    digest: Digest,
    generation: u64,
}

// === impl Store ===

impl Store {
    /// Opens a stored blob for reading; `None` if it is not stored. Touches LRU.
    ///
    /// This is the whole cache-hit path: one index lookup and one `open`. The length comes
    /// from the index, so no `fstat` is needed; a file shorter than that fails the stream.
    pub async fn open_blob(&self, digest: &Digest) -> Result<Option<CachedBlob>, StoreError> {
        let Some(entry) = self.inner.index().acquire(digest) else {
            return Ok(None);
        };
        let guard = ReadGuard {
            inner: self.inner.clone(),
            digest: digest.clone(),
            generation: entry.generation,
        };
        let path = self.inner.object_path(digest);
        let opened = tokio::task::spawn_blocking({
            let path = path.clone();
            move || File::open(path)
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        match opened {
            Ok(file) => Ok(Some(CachedBlob {
                file,
                len: entry.size,
                verified: entry.verified,
                guard,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Removed behind our back (or lost a race with eviction): forget it so the
                // caller fetches it again.
                tracing::warn!(%digest, "cache: indexed object is missing on disk");
                let generation = guard.generation;
                drop(guard);
                self.inner.index().remove(digest, generation);
                Ok(None)
            }
            Err(e) => Err(StoreError::io("open", path, e)),
        }
    }
}

// === impl CachedBlob ===

impl CachedBlob {
    /// The blob's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this process has hashed the bytes. Objects found by the startup scan are not,
    /// until their first read through [`into_stream`](Self::into_stream) (which hashes them
    /// and fails on a mismatch). Only a verified blob may be served by bypassing the stream,
    /// e.g. with `sendfile`.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// The open file, positioned at its start, for a zero-copy path (check
    /// [`is_verified`](Self::is_verified) first). Keep the `CachedBlob` alive while using it.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Streams the blob in 256 KiB reads, with one read always in flight ahead of the
    /// consumer so disk reads overlap with socket writes. An unverified blob is hashed on the
    /// way, and its last chunk is only released if the digest matches; otherwise the stream
    /// fails, the object is removed, and the next request fetches it again.
    pub fn into_stream(self) -> BlobStream {
        let CachedBlob {
            file,
            len,
            verified,
            guard,
        } = self;
        let state = FileRead {
            verifier: (!verified).then(|| DigestVerifier::new(guard.digest.clone())),
            pending: (len > 0).then(|| spawn_read(file, chunk_len(len))),
            remaining: len,
            guard,
        };
        stream::unfold(state, FileRead::next).boxed()
    }

    /// Streams `len` bytes from `start` of a blob this process has hashed (a byte range);
    /// the blob back, unread, if it is not verified (part of an object can never be checked
    /// against its digest: hash the whole first, [`Store::verified_blob`]). The range must lie
    /// within the blob; a file shorter than indexed fails the stream.
    pub fn into_range_stream(self, start: u64, len: u64) -> Result<BlobStream, CachedBlob> {
        if !self.verified || start.saturating_add(len) > self.len {
            return Err(self);
        }
        let CachedBlob {
            mut file, guard, ..
        } = self;
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let path = guard.inner.object_path(&guard.digest);
            return Ok(stream::once(async move { Err(StoreError::io("seek", path, e)) }).boxed());
        }
        let state = FileRead {
            verifier: None,
            pending: (len > 0).then(|| spawn_read(file, chunk_len(len))),
            remaining: len,
            guard,
        };
        Ok(stream::unfold(state, FileRead::next).boxed())
    }
}

impl std::fmt::Debug for CachedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBlob")
            .field("digest", &self.guard.digest)
            .field("len", &self.len)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

struct FileRead {
    /// The next chunk being read on the blocking pool; `None` once the file is done.
    pending: Option<JoinHandle<(File, io::Result<Bytes>)>>,
    remaining: u64,
    verifier: Option<DigestVerifier>,
    guard: ReadGuard,
}

// === impl FileRead ===

impl FileRead {
    async fn next(mut self) -> Option<(Result<Bytes, StoreError>, Self)> {
        let Some(pending) = self.pending.take() else {
            // Nothing (left) to read. An unverified empty file must still hash right: a torn
            // write could have left zero bytes under a non-empty digest's name.
            let verifier = self.verifier.take()?;
            return match verifier.verify() {
                Ok(_) => {
                    self.guard.mark_verified();
                    None
                }
                Err(mismatch) => Some((Err(self.guard.discard_corrupt(mismatch).await), self)),
            };
        };
        let path = || self.guard.inner.object_path(&self.guard.digest);
        let (file, result) = match pending.await {
            Ok(done) => done,
            Err(e) => {
                return Some((
                    Err(StoreError::io("read", path(), io::Error::other(e))),
                    self,
                ))
            }
        };
        let chunk = match result {
            Ok(chunk) if chunk.is_empty() => {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than indexed");
                return Some((Err(StoreError::io("read", path(), e)), self));
            }
            Ok(chunk) => chunk,
            Err(e) => return Some((Err(StoreError::io("read", path(), e)), self)),
        };
        self.remaining -= chunk.len() as u64;
        if self.remaining > 0 {
            self.pending = Some(spawn_read(file, chunk_len(self.remaining)));
        }
        if let Some(verifier) = &mut self.verifier {
            verifier.update(&chunk);
            // The length is known exactly, so the last chunk is identified by count and is
            // only released after the digest check.
            if self.remaining == 0 {
                let verifier = self.verifier.take()?;
                if let Err(mismatch) = verifier.verify() {
                    return Some((Err(self.guard.discard_corrupt(mismatch).await), self));
                }
                self.guard.mark_verified();
            }
        }
        Some((Ok(chunk), self))
    }
}

fn chunk_len(remaining: u64) -> usize {
    usize::try_from(remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK))
}

/// Reads up to `len` bytes on the blocking pool.
fn spawn_read(mut file: File, len: usize) -> JoinHandle<(File, io::Result<Bytes>)> {
    tokio::task::spawn_blocking(move || {
        let result = read_chunk(&mut file, len);
        (file, result)
    })
}

/// One `read` into a reused buffer (see `buffers.rs`).
fn read_chunk(file: &mut File, len: usize) -> io::Result<Bytes> {
    READ_BUFFERS.read(len, |buf| loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => break result,
        }
    })
}

// === impl ReadGuard ===

impl ReadGuard {
    fn mark_verified(&self) {
        self.inner
            .index()
            .mark_verified(&self.digest, self.generation);
    }

    /// Removes an object whose bytes did not match its name, and says so.
    async fn discard_corrupt(&self, mismatch: crate::oci::DigestMismatch) -> StoreError {
        let path = self.inner.object_path(&self.digest);
        tracing::warn!(digest = %self.digest, actual = %mismatch.actual, path = %path.display(),
            "cache: stored object is corrupt; removing it");
        self.inner.observer.damaged();
        let victim = self.inner.index().remove(&self.digest, self.generation);
        if let Some(victim) = victim {
            let _commit = self.inner.commit.lock().await;
            self.inner.remove_files(vec![victim]).await;
        }
        StoreError::Corrupt {
            digest: self.digest.clone(),
            path,
        }
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        self.inner.index().release(&self.digest, self.generation);
    }
}
