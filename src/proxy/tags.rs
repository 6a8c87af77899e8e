//! Tags under `audit` and `allow` (`upstreams[].tag_ttl`): the digest the upstream last gave
//! for a tag, remembered so the tag is answered while the upstream is down or rate-limits.
//!
//! ```text
//! within tag_ttl of the lookup        -> the remembered digest, its manifest from the cache
//! after it: the upstream answers      -> its answer (remembered anew)
//!           404                       -> the error; the tag is forgotten
//!           unreachable, timeout,
//!           5xx, 429                  -> the remembered digest, stale, for at most
//!                                        STALE_WINDOW after tag_ttl (counted)
//! ```
//! Only a manifest the cache holds is served from memory (read and hashed as any hit);
//! otherwise the upstream is asked, and its error stands. `verify` never gets here: its tags
//! resolve through trust data.

use std::{
    num::NonZeroUsize,
    time::{Duration, Instant},
};

use super::{content::Fetched, ctx::Ctx, Proxy};
use crate::{
    oci::{self, Digest},
    upstream::UpstreamError,
};

/// How long after `tag_ttl` a remembered tag may still be answered while the upstream cannot
/// answer: a day, then its error stands.
pub const STALE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Most tags remembered, over all upstreams: clients choose the names.
pub(super) const CAPACITY: NonZeroUsize = match NonZeroUsize::new(16 * 1024) {
    Some(n) => n,
    None => unreachable!(),
};

/// (registry, repository, tag).
pub(super) type Key = (String, String, String);

/// What the upstream last said a tag points at, and when.
#[derive(Clone)]
pub(super) struct Remembered {
    digest: Digest,
    at: Instant,
}

/// Whether a failure to look a tag up may be answered from memory: the upstream is down,
/// slow, failing or rate-limiting, not saying the tag is gone or refusing us.
pub(super) fn may_answer_stale(e: &UpstreamError) -> bool {
    match e {
        UpstreamError::Unreachable { .. }
        | UpstreamError::Timeout { .. }
        | UpstreamError::RateLimited { .. } => true,
        UpstreamError::Status { status, .. } => (500..600).contains(status),
        _ => false,
    }
}

fn key(ctx: &Ctx<'_>, tag: &str) -> Key {
    (
        ctx.upstream.registry().to_owned(),
        ctx.repo.to_owned(),
        tag.to_owned(),
    )
}

// === impl Proxy ===

impl Proxy {
    /// The remembered digest of `tag`, if looked up less than `within` ago.
    pub(super) fn remembered_tag(
        &self,
        ctx: &Ctx<'_>,
        tag: &str,
        within: Duration,
    ) -> Option<Digest> {
        let mut tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        let entry = tags.get(&key(ctx, tag))?;
        (entry.at.elapsed() < within).then(|| entry.digest.clone())
    }

    /// Remembers what the upstream just said `tag` points at.
    pub(super) fn remember_tag(&self, ctx: &Ctx<'_>, tag: &str, digest: &Digest) {
        self.tags.lock().unwrap_or_else(|e| e.into_inner()).put(
            key(ctx, tag),
            Remembered {
                digest: digest.clone(),
                at: Instant::now(),
            },
        );
    }

    /// Forgets `tag`: the upstream says it does not exist.
    pub(super) fn forget_tag(&self, ctx: &Ctx<'_>, tag: &str) {
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop(&key(ctx, tag));
    }

    /// The manifest `digest` if the cache holds it (the store hashes what it reads); never
    /// the upstream.
    pub(super) async fn cached_manifest(&self, ctx: &Ctx<'_>, digest: &Digest) -> Option<Fetched> {
        let (bytes, media_type) = match self.store.get_manifest(digest).await {
            Ok(Some(hit)) => hit,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(digest = %digest, error = %e, "remembered tag: manifest unreadable");
                return None;
            }
        };
        let content_type = (!media_type.is_empty()).then_some(media_type.as_str());
        let manifest = match oci::parse_manifest(&bytes, content_type) {
            Ok(manifest) => manifest,
            Err(e) => {
                tracing::warn!(image = %ctx.image, digest = %digest, error = %e,
                    "remembered tag: cached manifest does not parse");
                return None;
            }
        };
        self.remember_refs(digest, &manifest);
        Some(Fetched {
            media_type: manifest.media_type().to_owned(),
            bytes,
            manifest,
        })
    }
}
