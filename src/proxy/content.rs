//! Manifests by digest: from the cache, else from upstream, hashed before anything else
//! happens to them, and what each one references, memoised by digest (content-addressed,
//! so never stale).

use std::sync::Arc;

use bytes::Bytes;

use super::{
    ctx::{Ctx, Unserved},
    Proxy, ProxyError,
};
use crate::{
    oci::{self, Digest, Manifest},
    trust::{Refusal, RefusalKind},
    upstream::UpstreamError,
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

// === impl Refs ===

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
    /// A manifest by digest, with a refusal answered as the client's 403 (logged and counted
    /// once). `expected_size` is what a signature or parent descriptor says.
    pub(super) async fn manifest_by_digest(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<Fetched, ProxyError> {
        self.fetch_manifest(ctx, digest, expected_size)
            .await
            .map_err(|e| self.unserved(ctx, e))
    }

    /// A manifest by digest, from the cache or upstream. Where a signature or parent
    /// descriptor gives its size (`expected_size`), exactly that many bytes are read from
    /// upstream: more fails as soon as the limit is passed, fewer fails after the body.
    pub(super) async fn fetch_manifest(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<Fetched, Unserved> {
        let what = || format!("{}@{digest}", ctx.image);
        let max = self.limits.max_manifest_size;
        let wrong_size = |got: &str, size: u64| {
            Unserved::Refused(Refusal::new(
                RefusalKind::Mismatch,
                format!(
                    "{} is {got} bytes, but its signature or parent says {size}",
                    what()
                ),
            ))
        };
        let (bytes, media_type, stored) = match self.store.get_manifest(digest).await {
            Ok(Some((bytes, media_type))) => (bytes, media_type, true),
            Ok(None) => {
                let limit = expected_size.map_or(max, |size| size.min(max));
                let fetched = match ctx
                    .upstream
                    .manifest(ctx.repo, digest.as_str(), limit)
                    .await
                {
                    Ok(fetched) => fetched,
                    // Larger than what was signed: not a registry fault, content that is
                    // not what the signature says (a limit of our own is the registry's).
                    Err(UpstreamError::TooLarge { .. })
                        if expected_size.is_some_and(|size| size <= max) =>
                    {
                        let size = expected_size.unwrap_or_default();
                        return Err(wrong_size(&format!("more than {size}"), size));
                    }
                    Err(e) => return Err(Unserved::Failed(ctx.upstream_error(e, true, &what()))),
                };
                if !digest.matches(&fetched.bytes) {
                    return Err(Unserved::Refused(Refusal::new(
                        RefusalKind::Mismatch,
                        format!(
                            "upstream {} served content for {} that does not match its digest",
                            ctx.upstream.registry(),
                            what()
                        ),
                    )));
                }
                (fetched.bytes, fetched.media_type.unwrap_or_default(), false)
            }
            Err(e) => return Err(Unserved::Failed(e.into())),
        };
        if let Some(size) = expected_size {
            if bytes.len() as u64 != size {
                return Err(wrong_size(&bytes.len().to_string(), size));
            }
        }
        let content_type = (!media_type.is_empty()).then_some(media_type.as_str());
        let manifest = oci::parse_manifest(&bytes, content_type).map_err(|source| {
            Unserved::Failed(ProxyError::BadManifest {
                registry: ctx.upstream.registry().to_owned(),
                what: what(),
                source,
            })
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
    pub(super) fn remember_refs(&self, digest: &Digest, manifest: &Manifest) -> Arc<Refs> {
        self.refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_ref(digest.as_str(), || Arc::new(Refs::of(manifest)))
            .clone()
    }

    /// What the manifest `digest` of `size` bytes references: memoised, else read.
    pub(super) async fn refs(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        size: u64,
    ) -> Result<Arc<Refs>, Unserved> {
        if let Some(refs) = self
            .refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest.as_str())
        {
            return Ok(refs.clone());
        }
        let fetched = self.fetch_manifest(ctx, digest, Some(size)).await?;
        Ok(self.remember_refs(digest, &fetched.manifest))
    }
}
