//! What operators do to a store from outside the request path: list what is on disk
//! ([`inspect`], read-only, safe while a proxy runs) and remove objects ([`Store::remove`],
//! with the store open, so under its [`StoreLock`](super::StoreLock)).

use std::path::Path;
use std::time::SystemTime;

use super::{scan, sidecar_path, Store, StoreError};
use crate::oci::Digest;

/// An object found in a store directory.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Its name.
    pub digest: Digest,
    /// Bytes on disk.
    pub size: u64,
    /// A manifest's media type (from its sidecar); `None` for a blob.
    pub media_type: Option<String>,
    /// When it was stored (its modification time).
    pub modified: SystemTime,
    /// Latest of access and modification time: what the store's LRU order starts from.
    pub last_used: SystemTime,
}

/// What [`inspect`] found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The objects, in no particular order.
    pub objects: Vec<StoredObject>,
    /// Files under `tmp/`: writes in progress, or left by a crash (the next open removes them).
    pub temp_files: usize,
}

/// Lists the store under `dir` without changing anything (blocking: reads the directory
/// tree). Fails if `dir` does not exist; an empty or never-used one lists nothing.
pub fn inspect(dir: &Path) -> Result<Listing, StoreError> {
    let scan = scan::list(dir)?;
    let objects = scan
        .objects
        .into_iter()
        .map(|found| {
            let media_type = found
                .manifest
                .then(|| std::fs::read_to_string(sidecar_path(dir, &found.digest)).ok())
                .flatten()
                .map(|t| t.trim().to_owned());
            StoredObject {
                digest: found.digest,
                size: found.size,
                media_type,
                modified: found.modified,
                last_used: found.last_used,
            }
        })
        .collect();
    Ok(Listing {
        objects,
        temp_files: scan.removed_temp,
    })
}

// === impl Store ===

impl Store {
    /// Removes an object (and a manifest's media-type file) as an eviction does: gone from the
    /// index at once, then unlinked. Returns its size, or `None` if it is not stored. Readers
    /// that have the file open finish reading it.
    pub async fn remove(&self, digest: &Digest) -> Option<u64> {
        let victim = {
            let mut index = self.inner.index();
            let entry = index.peek(digest)?;
            index.remove(digest, entry.generation)?
        };
        let size = victim.size;
        let _commit = self.inner.commit.lock().await;
        self.inner.remove_files(vec![victim]).await;
        Some(size)
    }
}

impl Store {
    /// Waits until no fetch of `digest` is in progress (a fetch's stream ends before its temp
    /// file is synced and renamed into place), then says whether it is stored. For a client
    /// that must know what it read got cached (`trustgate cache warm`), not for the request
    /// path.
    pub async fn settle(&self, digest: &Digest) -> bool {
        while self
            .inner
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(digest)
        {
            tokio::time::sleep(SETTLE_POLL).await;
        }
        self.inner.index().peek(digest).is_some()
    }
}

/// How often [`Store::settle`] looks again.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const MANIFEST: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

    #[tokio::test]
    async fn inspect_lists_without_touching_and_remove_unlinks() {
        let dir = tempfile::tempdir().unwrap();
        let digest = Digest::sha256_of(MANIFEST);
        {
            let store = Store::open(dir.path().to_owned(), 1 << 20).await.unwrap();
            store
                .put_manifest(
                    &digest,
                    Bytes::from_static(MANIFEST),
                    "application/vnd.oci.image.manifest.v1+json",
                )
                .await
                .unwrap();
        }
        // A stray file and a temp file: a listing reports, and keeps, both.
        std::fs::write(dir.path().join("blobs/sha256/stray"), b"x").unwrap();
        std::fs::write(dir.path().join("tmp/partial.1.0"), b"x").unwrap();
        let listing = inspect(dir.path()).unwrap();
        assert_eq!(listing.objects.len(), 1);
        assert_eq!(listing.temp_files, 1);
        let object = &listing.objects[0];
        assert_eq!(object.digest, digest);
        assert_eq!(object.size, MANIFEST.len() as u64);
        assert_eq!(
            object.media_type.as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        assert!(dir.path().join("blobs/sha256/stray").exists());
        assert!(dir.path().join("tmp/partial.1.0").exists());

        let store = Store::open(dir.path().to_owned(), 1 << 20).await.unwrap();
        assert_eq!(store.remove(&digest).await, Some(MANIFEST.len() as u64));
        assert_eq!(store.remove(&digest).await, None);
        assert_eq!(store.size(), 0);
        let listing = inspect(dir.path()).unwrap();
        assert!(listing.objects.is_empty());
        assert_eq!(listing.temp_files, 0, "the open cleared tmp/");
    }

    #[tokio::test]
    async fn settle_waits_until_a_fetched_blob_is_stored() {
        use futures_util::StreamExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_owned(), 1 << 24).await.unwrap();
        let body = Bytes::from(vec![7u8; 3 << 20]);
        let digest = Digest::sha256_of(&body);
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(64 << 10)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let len = body.len() as u64;
        let fetched = store
            .blob(&digest, move || async move {
                Ok::<_, std::io::Error>((Some(len), futures_util::stream::iter(chunks).boxed()))
            })
            .await
            .unwrap();
        let mut stream = fetched.stream;
        while let Some(chunk) = stream.next().await {
            chunk.unwrap();
        }
        assert!(store.settle(&digest).await);
        assert_eq!(store.blob_size(&digest).await, Some(len));
        // Nothing in flight and nothing stored: at once, and false.
        assert!(!store.settle(&Digest::sha256_of(b"other")).await);
    }

    #[test]
    fn inspect_of_a_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(inspect(&dir.path().join("nope")).is_err());
    }
}
