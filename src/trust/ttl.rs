//! A bounded LRU whose entries are fresh for a fixed time: the verdict, resolved-tag and
//! signed-set caches of the verifiers whose signatures sit beside the image (cosign,
//! Notation). Keys are names a client picks, so the map is bounded by count; an entry past
//! its time is never returned (it stays until evicted or replaced).

use std::{
    hash::Hash,
    num::NonZeroUsize,
    sync::Mutex,
    time::{Duration, Instant},
};

use lru::LruCache;

/// At most `capacity` entries, each fresh for `ttl`.
pub struct TtlCache<K: Hash + Eq, V> {
    ttl: Duration,
    map: Mutex<LruCache<K, (Instant, V)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        TtlCache {
            ttl,
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The entry for `key` while it is fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock()
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Stores `value` for `key`, fresh from now.
    pub fn put(&self, key: K, value: V) {
        self.lock().put(key, (Instant::now(), value));
    }

    /// Drops the entry for `key` when `stale(value)` says it no longer holds.
    pub fn pop_if(&self, key: &K, stale: impl FnOnce(&V) -> bool) {
        let mut map = self.lock();
        if map.peek(key).is_some_and(|(_, v)| stale(v)) {
            map.pop(key);
        }
    }

    /// What `pick` keeps of every entry, fresh or not, most recent first.
    pub fn collect<T>(&self, pick: impl FnMut((&K, &V)) -> Option<T>) -> Vec<T> {
        self.lock()
            .iter()
            .map(|(k, (_, v))| (k, v))
            .filter_map(pick)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, (Instant, V)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Resolves `tag` to the digest its manifest upstream hashes to, when `verify` vouches for
/// that digest, as the verifiers that sign digests do (cosign, Notation); resolved tags are
/// kept in `tags` for its ttl, and the digest's verdict is asked again on each use (cached
/// on its own), so a revocation the verdict notices is not hidden behind the tag.
/// `unreachable` words a registry failure (not a verdict) for the verifier.
pub async fn resolve_tag<'a>(
    tags: &TtlCache<(String, String), super::SignedTag>,
    query: &super::TrustQuery,
    content: &super::ContentSource,
    tag: &str,
    role: &str,
    verify: impl Fn(crate::oci::Digest) -> super::BoxFuture<'a, Result<(), super::Refusal>>,
    unreachable: impl Fn(&str, &crate::upstream::UpstreamError) -> super::Refusal,
) -> Result<super::SignedTag, super::Refusal> {
    use crate::{oci::Digest, upstream::UpstreamError};
    let key = (query.gun.clone(), tag.to_owned());
    if let Some(signed) = tags.get(&key) {
        if let Ok(digest) = Digest::parse(&signed.digest) {
            verify(digest).await?;
            return Ok(signed);
        }
    }
    let what = format!("{}:{tag}", query.gun);
    let manifest = match content
        .upstream
        .manifest(&content.repo, tag, content.max_manifest_size)
        .await
    {
        Ok(m) => m.bytes,
        // Not a verdict: the client learns what the registry said (404).
        Err(e @ UpstreamError::NotFound { .. }) => return Err(super::Refusal::upstream(what, e)),
        Err(e) => return Err(unreachable(&what, &e)),
    };
    let digest = Digest::sha256_of(&manifest);
    verify(digest.clone()).await?;
    let signed = super::SignedTag {
        digest: digest.as_str().to_owned(),
        size: i64::try_from(manifest.len()).unwrap_or(i64::MAX),
        role: role.to_owned(),
    };
    tags.put(key, signed.clone());
    Ok(signed)
}
