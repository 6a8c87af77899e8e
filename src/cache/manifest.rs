//! Manifests: small objects stored with their media type in a `.type` sidecar, verified on
//! every read.
//!
//! The digest covers the bytes but not the sidecar, so the sidecar is checked against the
//! bytes instead: it must be the media type they parse as ([`media_type_fits`]). A stored
//! manifest whose bytes do not match the digest, or whose sidecar does not fit them, is cache
//! damage (a disk fault, a hand edit, an attacker with write access to the directory): both
//! files are removed, it counts as such, and the manifest reads as absent, so the caller
//! fetches it again (by digest, verified as always). It is never served, and never reported
//! as something the upstream sent.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;

use super::index::Kind;
use super::shared::{SharedTier, Upload};
use super::{blocking, rename, Store, StoreError, SIDECAR_SUFFIX};
use crate::oci::{Digest, DigestMismatch};

/// Longest media type stored (RFC 6838: two names of at most 127 characters and a slash).
const MAX_MEDIA_TYPE_LEN: usize = 255;

// === impl Store ===

impl Store {
    /// A stored manifest and its media type; `None` if absent. Touches LRU.
    ///
    /// The bytes are hashed on every read (a few microseconds for a manifest): a stored
    /// manifest that does not match its digest is removed and reported as absent.
    pub async fn get_manifest(
        &self,
        digest: &Digest,
    ) -> Result<Option<(Bytes, String)>, StoreError> {
        let found = self.load_manifest(digest).await?;
        match &found {
            Some((bytes, _)) => self.inner.observer.hit(bytes.len() as u64),
            None => self.inner.observer.miss(),
        }
        if found.is_none() {
            if let Some(shared) = &self.inner.shared {
                return Ok(self.manifest_from_shared(shared, digest).await);
            }
        }
        Ok(found)
    }

    /// A manifest from the shared tier, checked like one from upstream (size bound, digest,
    /// header-safe media type) and stored locally; `None` when absent, unreachable or wrong.
    async fn manifest_from_shared(
        &self,
        shared: &SharedTier,
        digest: &Digest,
    ) -> Option<(Bytes, String)> {
        let observer = &self.inner.observer;
        let object = match shared.open(digest).await {
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
        let mismatch = |why: &str| {
            tracing::warn!(%digest, key = %shared.key(digest), why,
                "shared store: manifest object is not what its key promises; ignored");
            observer.shared_mismatch();
            shared.needs_repair(digest);
        };
        if object.size > shared.max_manifest_size() {
            mismatch("larger than limits.max_manifest_size");
            return None;
        }
        // The whole body within the read deadline, as for blobs: a bucket that drips must not
        // hold the request (the caller goes upstream instead).
        let deadline = shared.read_deadline(object.size);
        let mut body = object.body;
        let read = tokio::time::timeout(deadline, async {
            let mut bytes = Vec::with_capacity(object.size as usize);
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) if (bytes.len() + chunk.len()) as u64 > object.size => {
                        return Err(None);
                    }
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(e) => return Err(Some(e)),
                }
            }
            Ok(bytes)
        })
        .await;
        let bytes = match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(None)) => {
                mismatch("longer than its announced size");
                return None;
            }
            Ok(Err(Some(e))) => {
                observer.shared_error(e.op());
                return None;
            }
            Err(_) => {
                observer.shared_error(shared.timed_out(digest, deadline).op());
                return None;
            }
        };
        if !digest.matches(&bytes) {
            mismatch("bytes do not match the digest");
            return None;
        }
        // What this replica uploads is a manifest kind's own media type, under which the
        // bytes parse. Anything else would be stored locally and make every later read of
        // the digest fail (or name another kind) until it is evicted.
        let Some(media_type) = object.media_type.filter(|m| media_type_fits(&bytes, m)) else {
            mismatch("no Content-Type that is this manifest's media type");
            return None;
        };
        let bytes = Bytes::from(bytes);
        observer.shared_hit(bytes.len() as u64);
        if let Err(e) = self
            .store_manifest(digest, bytes.clone(), &media_type, false)
            .await
        {
            tracing::debug!(%digest, error = %e, "cache: shared tier's manifest not stored locally");
        }
        Some((bytes, media_type))
    }

    async fn load_manifest(&self, digest: &Digest) -> Result<Option<(Bytes, String)>, StoreError> {
        let entry = match self.inner.index().touch(digest) {
            Some(entry) if entry.kind == Kind::Manifest => entry,
            _ => return Ok(None),
        };
        let object = self.inner.object_path(digest);
        let sidecar = self.inner.sidecar_path(digest);
        let read = blocking(&object, "read", {
            let (object, sidecar) = (object.clone(), sidecar.clone());
            move || {
                let object = read_if_exists(&object)?;
                let sidecar = read_if_exists(&sidecar)?;
                Ok(object.zip(sidecar))
            }
        })
        .await?;
        let Some((bytes, media_type)) = read else {
            tracing::warn!(%digest, "cache: indexed manifest is missing on disk");
            self.inner.index().remove(digest, entry.generation);
            return Ok(None);
        };
        let media_type = String::from_utf8(media_type).unwrap_or_default();
        let damage = if !digest.matches(&bytes) {
            Some("its bytes do not match the digest")
        } else if !media_type_fits(&bytes, &media_type) {
            Some("its media-type file does not fit its bytes")
        } else {
            None
        };
        if let Some(why) = damage {
            tracing::warn!(%digest, path = %object.display(), why,
                "cache: stored manifest is damaged; removing it and fetching it again");
            self.inner.observer.damaged();
            let victim = self.inner.index().remove(digest, entry.generation);
            if let Some(victim) = victim {
                let _commit = self.inner.commit.lock().await;
                self.inner.remove_files(vec![victim]).await;
            }
            return Ok(None);
        }
        self.inner.index().mark_verified(digest, entry.generation);
        Ok(Some((Bytes::from(bytes), media_type)))
    }

    /// Stores a manifest with its media type after checking that `bytes` hash to `digest`.
    ///
    /// Refuses ([`StoreError::DigestMismatch`]) bytes with another digest, media types that
    /// are not header-safe or not the bytes' own ([`StoreError::InvalidMediaType`]), and
    /// manifests that do not fit ([`StoreError::Full`]). A manifest already stored is only
    /// touched.
    ///
    /// With a shared tier, a manifest stored here for the first time is also uploaded there
    /// in the background.
    pub async fn put_manifest(
        &self,
        digest: &Digest,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(), StoreError> {
        self.store_manifest(digest, bytes, media_type, true).await
    }

    /// [`put_manifest`](Self::put_manifest). `from_upstream` is false for what came from the
    /// shared tier: it is neither uploaded back nor counted as stored from upstream.
    async fn store_manifest(
        &self,
        digest: &Digest,
        bytes: Bytes,
        media_type: &str,
        from_upstream: bool,
    ) -> Result<(), StoreError> {
        if !is_header_safe(media_type) {
            return Err(StoreError::InvalidMediaType {
                digest: digest.clone(),
                media_type: media_type.chars().take(MAX_MEDIA_TYPE_LEN).collect(),
            });
        }
        let actual = Digest::compute(digest.algorithm(), &bytes);
        if actual != *digest {
            return Err(DigestMismatch {
                expected: digest.clone(),
                actual,
            }
            .into());
        }
        // What is stored is what every read checks: a sidecar that does not fit would make
        // each read drop the entry again.
        if !media_type_fits(&bytes, media_type) {
            return Err(StoreError::InvalidMediaType {
                digest: digest.clone(),
                media_type: media_type.to_owned(),
            });
        }
        if self
            .inner
            .index()
            .touch(digest)
            .is_some_and(|entry| entry.kind == Kind::Manifest)
        {
            return Ok(());
        }
        let size = bytes.len() as u64;
        if size > self.inner.max_size {
            return Err(self.inner.full(digest, size));
        }
        // Write and fsync both temp files before taking the commit lock, so the slow part
        // runs alongside other commits.
        let tmp_object = self.inner.temp_path(digest);
        let tmp_sidecar = PathBuf::from(format!("{}{SIDECAR_SUFFIX}", tmp_object.display()));
        let upload = (from_upstream && self.inner.shared.is_some()).then(|| bytes.clone());
        let written = blocking(&tmp_object, "write", {
            let (object, sidecar) = (tmp_object.clone(), tmp_sidecar.clone());
            let media_type = media_type.to_owned();
            move || {
                write_synced(&sidecar, media_type.as_bytes())?;
                write_synced(&object, &bytes)
            }
        })
        .await;
        let result = match written {
            Ok(()) => {
                self.commit_manifest(digest, size, &tmp_object, &tmp_sidecar, from_upstream)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if matches!(e, StoreError::Io { .. }) {
                self.inner.observer.write_failed();
            }
            tracing::warn!(%digest, error = %e, "cache: manifest not stored");
            // Best effort: whatever is left is removed at the next start.
            let _ = tokio::fs::remove_file(&tmp_object).await;
            let _ = tokio::fs::remove_file(&tmp_sidecar).await;
        }
        let inserted = result?;
        if let (true, Some(bytes), Some(shared)) = (inserted, upload, &self.inner.shared) {
            let upload = Upload::Manifest {
                bytes,
                media_type: media_type.to_owned(),
            };
            shared.upload(digest, upload, self.inner.observer.clone());
        }
        Ok(())
    }

    async fn commit_manifest(
        &self,
        digest: &Digest,
        size: u64,
        tmp_object: &Path,
        tmp_sidecar: &Path,
        from_upstream: bool,
    ) -> Result<bool, StoreError> {
        let object = self.inner.object_path(digest);
        let sidecar = self.inner.sidecar_path(digest);
        let _commit = self.inner.commit.lock().await;
        let present = self.inner.index().peek(digest);
        if let Some(entry) = present {
            // Stored meanwhile (or before, as a blob): only the sidecar may be missing.
            if entry.kind == Kind::Blob {
                rename(tmp_sidecar, &sidecar).await?;
                self.inner.index().mark_manifest(digest);
            }
            let _ = tokio::fs::remove_file(tmp_object).await;
            return Ok(false);
        }
        let victims = self.inner.index().reserve(size);
        let Some(victims) = victims else {
            return Err(self.inner.full(digest, size));
        };
        self.inner.evict(victims).await;
        // Sidecar first: an object must never be visible without its media type.
        let renamed = match rename(tmp_sidecar, &sidecar).await {
            Ok(()) => rename(tmp_object, &object).await,
            Err(e) => Err(e),
        };
        if let Err(e) = renamed {
            self.inner.index().unreserve(size);
            let _ = tokio::fs::remove_file(&sidecar).await;
            return Err(e);
        }
        self.inner
            .index()
            .insert_reserved(digest.clone(), size, Kind::Manifest);
        if from_upstream {
            self.inner.observer.stored(size);
        }
        tracing::debug!(%digest, size, "cache: stored manifest");
        Ok(true)
    }
}

/// Creates `path` (which must not exist), writes `bytes`, and flushes them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StoreError::io("create temp file", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| StoreError::io("write", path, e))
}

/// The file's bytes, or `None` if it does not exist.
fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

/// Whether `media_type` is the manifest media type `bytes` parse as, and a safe header value.
///
/// The bytes decide where they can: [`crate::oci::parse_manifest`] refuses a type that
/// contradicts their own `mediaType` field and names the kind they are. Only a manifest without
/// that field (the OCI image spec makes it optional) leaves the choice among the kinds its
/// shape parses as to the type it was stored with, as it was the upstream's `Content-Type`'s.
/// The proxy stores exactly [`Manifest::media_type`](crate::oci::Manifest::media_type) of
/// what it parsed, so a stored type always fits unless something else changed the file.
pub(super) fn media_type_fits(bytes: &[u8], media_type: &str) -> bool {
    is_header_safe(media_type)
        && crate::oci::parse_manifest(bytes, Some(media_type))
            .is_ok_and(|parsed| parsed.media_type() == media_type)
}

/// Whether a media type can be sent back as a `Content-Type` value as it is.
fn is_header_safe(media_type: &str) -> bool {
    !media_type.is_empty()
        && media_type.len() <= MAX_MEDIA_TYPE_LEN
        && media_type.bytes().all(|b| (0x20..0x7f).contains(&b))
}
