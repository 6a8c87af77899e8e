//! Content by digest, and the verified closure of a signed image.
//!
//! A digest is served under `verify` when it is a signed manifest or is reachable from one by
//! content address: an index's children, a manifest's config and layers. The closure is
//! derived from trust data plus content only, so any replica, fresh or not, answers the same;
//! what each manifest references is memoised by digest (immutable, never stale).

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
};

use bytes::Bytes;

use super::{handlers::Ctx, Proxy, ProxyError};
use crate::{
    oci::{self, Digest, Manifest},
    trust::{Refusal, RefusalKind, SignedSet},
};

/// A manifest as served: exact bytes, media type, and what it references.
pub struct Fetched {
    pub bytes: Bytes,
    pub media_type: String,
    pub manifest: Manifest,
}

/// What one manifest references by content address.
pub struct Refs {
    /// Child manifests (of an index), with their sizes.
    pub manifests: Vec<(Digest, u64)>,
    /// Config and layer blobs, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
}

impl Refs {
    fn of(manifest: &Manifest) -> Self {
        match manifest {
            Manifest::Index(index) => Refs {
                manifests: index
                    .manifests()
                    .iter()
                    .map(|d| (d.digest.clone(), d.size))
                    .collect(),
                blobs: Vec::new(),
            },
            Manifest::Image(image) => Refs {
                manifests: Vec::new(),
                blobs: std::iter::once(image.config())
                    .chain(image.layers())
                    .map(|d| (d.digest.clone(), d.size))
                    .collect(),
            },
        }
    }
}

// === impl Proxy ===

impl Proxy {
    /// A manifest by digest: from the cache, else from upstream, hashed before anything else
    /// happens to it. `expected_size` is what a signature or parent descriptor says.
    pub(super) async fn manifest_by_digest(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<Fetched, ProxyError> {
        let what = || format!("{}@{digest}", ctx.image);
        let (bytes, media_type, stored) = match self.store.get_manifest(digest).await? {
            Some((bytes, media_type)) => (bytes, media_type, true),
            None => {
                let fetched = ctx
                    .upstream
                    .manifest(ctx.repo, digest.as_str(), self.limits.max_manifest_size)
                    .await
                    .map_err(|e| ctx.upstream_error(e, true, &what()))?;
                if !digest.matches(&fetched.bytes) {
                    return Err(self.refuse(
                        ctx,
                        Refusal::new(
                            RefusalKind::Mismatch,
                            format!(
                                "upstream {} served content for {} that does not match its digest",
                                ctx.upstream.registry(),
                                what()
                            ),
                        ),
                    ));
                }
                (fetched.bytes, fetched.media_type.unwrap_or_default(), false)
            }
        };
        if let Some(size) = expected_size {
            if bytes.len() as u64 != size {
                return Err(self.refuse(
                    ctx,
                    Refusal::new(
                        RefusalKind::Mismatch,
                        format!(
                            "{} is {} bytes, but its signature or parent says {size}",
                            what(),
                            bytes.len()
                        ),
                    ),
                ));
            }
        }
        let content_type = (!media_type.is_empty()).then_some(media_type.as_str());
        let manifest = oci::parse_manifest(&bytes, content_type).map_err(|source| {
            ProxyError::BadManifest {
                registry: ctx.upstream.registry().to_owned(),
                what: what(),
                source,
            }
        })?;
        let media_type = manifest.media_type().to_owned();
        // A hit is stored already, and the store verified its bytes as it read them: storing it
        // again would only hash it a second time.
        if !stored {
            if let Err(e) = self
                .store
                .put_manifest(digest, bytes.clone(), &media_type)
                .await
            {
                // Serving does not depend on caching (a full disk must not stop pulls).
                tracing::warn!(digest = %digest, error = %e, "manifest not cached");
            }
        }
        self.remember_refs(digest, &manifest);
        Ok(Fetched {
            bytes,
            media_type,
            manifest,
        })
    }

    /// Memoises what `manifest` references. Content-addressed, so an entry already there is
    /// the same: it is only promoted, without building it (and its key) again.
    fn remember_refs(&self, digest: &Digest, manifest: &Manifest) -> Arc<Refs> {
        self.refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_ref(digest.as_str(), || Arc::new(Refs::of(manifest)))
            .clone()
    }

    async fn refs(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        size: u64,
    ) -> Result<Arc<Refs>, ProxyError> {
        if let Some(refs) = self
            .refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest.as_str())
        {
            return Ok(refs.clone());
        }
        let fetched = self.manifest_by_digest(ctx, digest, Some(size)).await?;
        Ok(self.remember_refs(digest, &fetched.manifest))
    }

    /// Finds `target` in the closure of the signed manifests of `set`; returns the size its
    /// parent descriptor gives (or its signed size when it is itself signed).
    pub(super) async fn find_in_closure(
        &self,
        ctx: &Ctx<'_>,
        set: &SignedSet,
        target: &Digest,
    ) -> Result<Option<u64>, ProxyError> {
        let mut queue: VecDeque<(Digest, u64)> = VecDeque::new();
        for (digest, size) in set.manifests() {
            let Ok(digest) = Digest::parse(digest) else {
                continue;
            };
            let size = u64::try_from(size).unwrap_or(0);
            if &digest == target {
                return Ok(Some(size));
            }
            queue.push_back((digest, size));
        }
        let mut seen: HashSet<Digest> = queue.iter().map(|(d, _)| d.clone()).collect();
        let mut walked = 0;
        while let Some((digest, size)) = queue.pop_front() {
            walked += 1;
            if walked > self.limits.max_closure_manifests {
                break;
            }
            let refs = match self.refs(ctx, &digest, size).await {
                Ok(refs) => refs,
                // A signed tag whose manifest is gone upstream has no closure; keep looking.
                Err(ProxyError::UnknownManifest { .. }) => continue,
                Err(e) => return Err(e),
            };
            if let Some((_, size)) = refs.blobs.iter().find(|(d, _)| d == target) {
                return Ok(Some(*size));
            }
            for (child, size) in &refs.manifests {
                if child == target {
                    return Ok(Some(*size));
                }
                if seen.insert(child.clone()) {
                    queue.push_back((child.clone(), *size));
                }
            }
        }
        Ok(None)
    }
}
