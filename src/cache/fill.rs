//! Filling the local tier from the shared tier: an object is downloaded whole into a temp
//! file, hashed and length-checked on the way, and synced, before anyone may read it. See
//! `shared.rs` for why nothing is streamed before the check.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};

use super::flight::{TempFile, WRITE_BATCH_BYTES, WRITE_BATCH_CHUNKS};
use super::shared::SharedError;
use super::verify::{Checked, Expect};
use super::StoreError;
use crate::oci::Digest;

/// Why an object from the shared tier did not make it into the local tier.
pub(super) enum FillError {
    /// Its bytes or length are not what its digest says: the bucket holds a wrong object.
    Mismatch(StoreError),
    /// Reading it from the shared tier failed.
    Shared(SharedError),
    /// Writing the temp file failed.
    Local(StoreError),
}

/// Downloads `body` into a new temp file at `path`: the verified, synced file, or why not.
/// `body` must be exactly `size` bytes; the caller checked `size` against the signed size or
/// the limit before calling. The caller removes `path` on failure.
pub(super) async fn download(
    digest: &Digest,
    mut body: BoxStream<'static, Result<Bytes, SharedError>>,
    size: u64,
    path: PathBuf,
) -> Result<Arc<TempFile>, FillError> {
    let local = |op, e| FillError::Local(StoreError::io(op, &path, e));
    let file = TempFile::create(path.clone())
        .await
        .map_err(|e| local("create temp file", e))?;
    let mut check = Checked::new(digest, Expect::Exact(size), None).map_err(FillError::Mismatch)?;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0;
    loop {
        let chunk = match body.next().await {
            None => break,
            Some(Err(e)) => return Err(FillError::Shared(e)),
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(chunk)) => chunk,
        };
        check.update(&chunk).map_err(FillError::Mismatch)?;
        batched += chunk.len();
        batch.push(chunk);
        if batched >= WRITE_BATCH_BYTES || batch.len() >= WRITE_BATCH_CHUNKS {
            file.write(std::mem::take(&mut batch))
                .await
                .map_err(|e| local("write", e))?;
            batched = 0;
        }
    }
    if !batch.is_empty() {
        file.write(batch).await.map_err(|e| local("write", e))?;
    }
    check.finish().map_err(FillError::Mismatch)?;
    file.sync().await.map_err(|e| local("sync", e))?;
    Ok(file)
}
