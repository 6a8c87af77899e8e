//! Everything that can go wrong in the store, one variant per failure, each naming its digest or
//! path.
//!
//! The error is `Clone` because one upstream failure is handed to every caller that joined the
//! same fetch; that is why sources sit behind `Arc`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::oci::{Digest, DigestMismatch};

/// Why a store operation, or a blob stream mid-way, failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation on the store failed.
    #[error("cache: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create temp file".
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The `fetch` function, or the stream it returned, failed.
    #[error("fetching {digest} from upstream failed: {source}")]
    Upstream {
        /// The blob being fetched.
        digest: Digest,
        /// The error `fetch` or its stream returned.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// Reading the shared tier's object failed after it began to stream.
    #[error("reading {digest} from the shared store failed: {source}")]
    Shared {
        /// The blob being read.
        digest: Digest,
        /// What the shared tier reported.
        #[source]
        source: super::SharedError,
    },
    /// The bytes did not hash to the digest they were requested by; nothing was stored.
    #[error(transparent)]
    DigestMismatch(#[from] DigestMismatch),
    /// The body was not as long as expected (the signed descriptor's size, else what upstream
    /// announced); nothing was stored.
    #[error("{digest}: expected {expected} bytes but the source sent {}{actual}", if *.actual > *.expected { "at least " } else { "" })]
    LengthMismatch {
        /// The blob being fetched.
        digest: Digest,
        /// The length expected.
        expected: u64,
        /// The length received (when longer: received before the stream was cut).
        actual: u64,
    },
    /// Upstream announced a `Content-Length` other than the size the signed descriptor gives;
    /// refused before a byte of the body was read.
    #[error(
        "{digest}: upstream announced {announced} bytes but the signed descriptor says {expected}"
    )]
    WrongLength {
        /// The blob being fetched.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The `Content-Length` upstream sent.
        announced: u64,
    },
    /// The body is (or is announced as) longer than `limits.max_blob_size`, with no signed size
    /// to go by; nothing was stored.
    #[error("{digest}: longer than the {limit}-byte limit for blobs without a signed size")]
    TooLarge {
        /// The blob being fetched.
        digest: Digest,
        /// `limits.max_blob_size`.
        limit: u64,
    },
    /// An object on disk did not hash to its name (found on its first read after
    /// [`Store::open`](super::Store::open)); it has been removed.
    #[error("cached object {digest} at {} is corrupt and was removed", path.display())]
    Corrupt {
        /// The object's digest.
        digest: Digest,
        /// Where it was.
        path: PathBuf,
    },
    /// The task fetching the blob ended without finishing (runtime shutdown or a panic).
    #[error("the fetch of {digest} was aborted")]
    Aborted {
        /// The blob being fetched.
        digest: Digest,
    },
    /// This caller was reading a shared fetch from its temp file, and writing that file failed
    /// mid-way. The next request fetches again.
    #[error("the shared fetch of {digest} stopped being cached while this reader depended on it")]
    CacheUnavailable {
        /// The blob being fetched.
        digest: Digest,
    },
    /// A manifest's media type is not the one its bytes parse as, or would not be a safe
    /// `Content-Type` header value.
    #[error("manifest {digest}: media type {media_type:?} is not the manifest's own, or not a header-safe value of at most 255 bytes")]
    InvalidMediaType {
        /// The manifest's digest.
        digest: Digest,
        /// The rejected media type (truncated).
        media_type: String,
    },
    /// Making room for the object would evict objects that are being read, or the object is
    /// larger than the whole store.
    #[error("cache full: no room for {digest} ({size} bytes, limit {max_size})")]
    Full {
        /// The object's digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The store's size limit.
        max_size: u64,
    },
}

// === impl StoreError ===

impl StoreError {
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(super) fn upstream<E>(digest: &Digest, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::Upstream {
            digest: digest.clone(),
            source: Arc::new(source),
        }
    }

    pub(super) fn shared(digest: &Digest, source: super::SharedError) -> Self {
        Self::Shared {
            digest: digest.clone(),
            source,
        }
    }

    /// Whether the failure came from the content's source (an upstream or shared-tier fetch
    /// error, wrong bytes, wrong length) rather than from the store itself. Proxies map the first to 502.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            Self::Upstream { .. }
                | Self::Shared { .. }
                | Self::DigestMismatch(_)
                | Self::LengthMismatch { .. }
                | Self::WrongLength { .. }
                | Self::TooLarge { .. }
        )
    }
}
