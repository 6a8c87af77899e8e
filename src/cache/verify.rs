//! Checking a byte stream against its digest and announced length, and never letting its last
//! byte out before that check passed.
//!
//! A reader is only ever handed bytes the store has not verified yet while the stream is in
//! flight, so the guarantee is about completion: every stream here holds back its most recent
//! chunk until either another chunk follows or the whole stream verified. A stream whose bytes
//! turn out wrong therefore ends in an error while still short, and hyper aborts the response
//! instead of finishing it (a client that knows the length sees a short body; a chunked one
//! never gets the terminating chunk).

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};

use super::{BlobStream, StoreError};
use crate::oci::{Digest, DigestVerifier};

/// Hash and length check for one fetched stream. Each byte is hashed exactly once, here.
#[derive(Debug)]
pub(super) struct Checked {
    verifier: DigestVerifier,
    expected_len: Option<u64>,
    len: u64,
}

/// Holds back the most recent chunk (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Holdback {
    held: Option<Bytes>,
}

// === impl Checked ===

impl Checked {
    pub fn new(digest: &Digest, expected_len: Option<u64>) -> Self {
        Self {
            verifier: DigestVerifier::new(digest.clone()),
            expected_len,
            len: 0,
        }
    }

    /// Feeds the next chunk; fails as soon as the stream is longer than announced, so a
    /// hostile upstream cannot make us write past the length it promised.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.len += chunk.len() as u64;
        if let Some(expected) = self.expected_len {
            if self.len > expected {
                return Err(self.length_mismatch(expected));
            }
        }
        self.verifier.update(chunk);
        Ok(())
    }

    /// Ends the stream: its total length if length and digest are right.
    pub fn finish(self) -> Result<u64, StoreError> {
        if let Some(expected) = self.expected_len {
            if self.len != expected {
                return Err(self.length_mismatch(expected));
            }
        }
        let len = self.len;
        self.verifier.verify()?;
        Ok(len)
    }

    fn length_mismatch(&self, expected: u64) -> StoreError {
        StoreError::LengthMismatch {
            digest: self.verifier.expected().clone(),
            expected,
            actual: self.len,
        }
    }
}

// === impl Holdback ===

impl Holdback {
    /// Takes the next non-empty chunk and releases the one before it, if any.
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        debug_assert!(!chunk.is_empty(), "empty chunks would defeat the holdback");
        self.held.replace(chunk)
    }

    /// Releases the held chunk: call only once the whole stream verified.
    pub fn release(&mut self) -> Option<Bytes> {
        self.held.take()
    }
}

/// A stream straight from upstream to one caller, verified but not cached: for callers that
/// joined a fetch that could not cache (see `Store::blob`).
pub(super) fn passthrough<E>(
    digest: Digest,
    length: Option<u64>,
    upstream: BoxStream<'static, Result<Bytes, E>>,
) -> BlobStream
where
    E: std::error::Error + Send + Sync + 'static,
{
    struct State<E> {
        digest: Digest,
        upstream: BoxStream<'static, Result<Bytes, E>>,
        check: Option<Checked>,
        holdback: Holdback,
    }
    let state = State {
        check: Some(Checked::new(&digest, length)),
        digest,
        upstream,
        holdback: Holdback::default(),
    };
    stream::unfold(state, |mut s| async move {
        loop {
            // `check` is taken when the stream ended, so a finished stream stays finished.
            let check = s.check.as_mut()?;
            let result = match s.upstream.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => check.update(&chunk).map(|()| s.holdback.push(chunk)),
                Some(Err(e)) => Err(StoreError::upstream(&s.digest, e)),
                None => match s.check.take()?.finish() {
                    Ok(_) => return s.holdback.release().map(|chunk| (Ok(chunk), s)),
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(Some(chunk)) => return Some((Ok(chunk), s)),
                Ok(None) => continue,
                Err(e) => {
                    s.check = None;
                    return Some((Err(e), s));
                }
            }
        }
    })
    .boxed()
}
