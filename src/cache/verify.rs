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

/// How long a fetched blob may be: the bound comes from what was signed or configured, never
/// from the source (an upstream's `Content-Length`, a bucket's object size) alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// Exactly this many bytes: the size a verified descriptor gives.
    Exact(u64),
    /// At most this many (`limits.max_blob_size`); a length the source announces must also
    /// hold exactly, but never reserves room by itself.
    AtMost(u64),
}

/// Hash and length check for one fetched stream. Each byte is hashed exactly once: here, or
/// by whoever the hashing was handed to ([`Checked::hand_off`]) and given back for `finish`.
#[derive(Debug)]
pub(super) struct Checked {
    digest: Digest,
    /// `None` while the hashing is handed off.
    verifier: Option<DigestVerifier>,
    expected_len: Option<u64>,
    limit: u64,
    len: u64,
}

/// Holds back the most recent chunk (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Holdback {
    held: Option<Bytes>,
}

// === impl Expect ===

impl Expect {
    /// The size a descriptor gives, if any.
    pub fn exact(self) -> Option<u64> {
        match self {
            Expect::Exact(size) => Some(size),
            Expect::AtMost(_) => None,
        }
    }

    /// The most bytes a stream may have.
    pub fn limit(self) -> u64 {
        match self {
            Expect::Exact(size) | Expect::AtMost(size) => size,
        }
    }
}

// === impl Checked ===

impl Checked {
    /// The check for a stream whose source announced `announced` bytes. Fails before a byte
    /// is read when the announcement contradicts the descriptor, or exceeds the limit: the
    /// descriptor, not the source, says how long a signed blob is (OCI image-spec,
    /// descriptor.md, `size`: "so that a client will have an expected size for the content
    /// before processing. If the length of the retrieved content does not match the specified
    /// length, the content SHOULD NOT be trusted").
    pub fn new(
        digest: &Digest,
        expect: Expect,
        announced: Option<u64>,
    ) -> Result<Self, StoreError> {
        let expected_len = match (expect, announced) {
            (Expect::Exact(size), Some(announced)) if announced != size => {
                return Err(StoreError::WrongLength {
                    digest: digest.clone(),
                    expected: size,
                    announced,
                })
            }
            (Expect::Exact(size), _) => Some(size),
            (Expect::AtMost(limit), Some(announced)) if announced > limit => {
                return Err(StoreError::TooLarge {
                    digest: digest.clone(),
                    limit,
                })
            }
            (Expect::AtMost(_), announced) => announced,
        };
        Ok(Self {
            digest: digest.clone(),
            verifier: Some(DigestVerifier::new(digest.clone())),
            expected_len,
            limit: expect.limit(),
            len: 0,
        })
    }

    /// The length the stream must have, when one is known before it ends.
    pub fn expected_len(&self) -> Option<u64> {
        self.expected_len
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes still to come when the length is known: the stream is read no further than that.
    pub fn remaining(&self) -> Option<u64> {
        self.expected_len
            .map(|expected| expected.saturating_sub(self.len))
    }

    /// Feeds the next chunk; fails as soon as the stream is longer than expected or than the
    /// limit, so a hostile source cannot make us write or forward past either.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.len += chunk.len() as u64;
        if let Some(expected) = self.expected_len {
            if self.len > expected {
                return Err(self.length_mismatch(expected));
            }
        }
        if self.len > self.limit {
            return Err(StoreError::TooLarge {
                digest: self.digest.clone(),
                limit: self.limit,
            });
        }
        if let Some(verifier) = &mut self.verifier {
            verifier.update(chunk);
        }
        Ok(())
    }

    /// Hands the hashing of the chunks fed from now on to the caller, who must feed each of
    /// them, in order, to the verifier returned and give it back ([`Checked::take_back`])
    /// before [`Checked::finish`]. The cache writer hashes beside its writes this way, on
    /// the blocking pool, so that hashing overlaps the network instead of following it.
    pub fn hand_off(&mut self) -> Option<DigestVerifier> {
        self.verifier.take()
    }

    /// Takes back a verifier from [`Checked::hand_off`]: it must have been fed every chunk
    /// fed here since (checked by count in `finish`).
    pub fn take_back(&mut self, verifier: DigestVerifier) {
        self.verifier = Some(verifier);
    }

    /// Ends the stream: its total length if length and digest are right. Fails closed when
    /// the hashing was handed off and not given back, or given back short of a byte.
    pub fn finish(self) -> Result<u64, StoreError> {
        if let Some(expected) = self.expected_len {
            if self.len != expected {
                return Err(self.length_mismatch(expected));
            }
        }
        let len = self.len;
        let verifier = match self.verifier {
            Some(verifier) if verifier.bytes_hashed() == len => verifier,
            _ => {
                return Err(StoreError::Aborted {
                    digest: self.digest,
                })
            }
        };
        verifier.verify()?;
        Ok(len)
    }

    fn length_mismatch(&self, expected: u64) -> StoreError {
        StoreError::LengthMismatch {
            digest: self.digest.clone(),
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
/// joined a fetch that could not cache (see `Store::blob`). `check` was made from what
/// upstream announced.
pub(super) fn passthrough<E>(
    digest: Digest,
    check: Checked,
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
        check: Some(check),
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
