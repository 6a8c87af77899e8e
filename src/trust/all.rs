//! Several verifiers, all required: `verifier: [notary, cosign]`, `[notary, notation]`.
//!
//! A tag passes when every verifier resolves it to the same digest; a manifest is in the signed
//! set when the first verifier signs it and every other one vouches for that digest directly
//! ([`Verifier::digest_signed`]). Under Notary v1 plus cosign this means the Notary-signed
//! digest must also carry cosign signatures; cosign's own signature artifacts are not served
//! (Notary v1 does not sign them): [`SignedSet::artifacts`] stays empty.

use std::sync::Arc;

use bytes::Bytes;

use super::{
    BoxFuture, Referrers, ReferrersOf, Refusal, RefusalKind, SignedSet, SignedTag, TrustQuery,
    Verifier,
};
use crate::oci::Digest;

/// Verifiers that must all agree; the first one's signed set is the candidate set.
pub struct AllOf {
    verifiers: Vec<Arc<dyn Verifier>>,
}

// === impl AllOf ===

impl AllOf {
    /// `verifiers` must not be empty.
    pub fn new(verifiers: Vec<Arc<dyn Verifier>>) -> Self {
        assert!(!verifiers.is_empty(), "AllOf needs at least one verifier");
        AllOf { verifiers }
    }
}

impl Verifier for AllOf {
    fn resolve_tag<'a>(
        &'a self,
        query: &'a TrustQuery,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<SignedTag, Refusal>> {
        Box::pin(async move {
            let first = self.verifiers[0].resolve_tag(query, tag).await?;
            for verifier in &self.verifiers[1..] {
                let other = verifier.resolve_tag(query, tag).await?;
                if other.digest != first.digest {
                    return Err(Refusal::new(
                        RefusalKind::Mismatch,
                        format!(
                            "{}:{tag}: {} vouches for {} but {} for {}; all verifiers must agree",
                            query.gun, first.role, first.digest, other.role, other.digest
                        ),
                    ));
                }
            }
            Ok(first)
        })
    }

    fn signed_set<'a>(
        &'a self,
        query: &'a TrustQuery,
    ) -> BoxFuture<'a, Result<Arc<SignedSet>, Refusal>> {
        Box::pin(async move {
            let candidates = self.verifiers[0].signed_set(query).await?;
            let mut set = SignedSet::default();
            for (tag, signed) in &candidates.tags {
                if self.all_others_sign(query, &signed.digest).await? {
                    set.tags.insert(tag.clone(), signed.clone());
                }
            }
            for (digest, size) in &candidates.untagged {
                if self.all_others_sign(query, digest).await? {
                    set.untagged.push((digest.clone(), *size));
                }
            }
            Ok(Arc::new(set))
        })
    }

    fn referrers<'a>(&'a self, query: &'a TrustQuery, of: ReferrersOf<'a>) -> Referrers<'a> {
        Box::pin(self.all_referrers(query, of))
    }

    fn digest_signed<'a>(
        &'a self,
        query: &'a TrustQuery,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool, Refusal>> {
        Box::pin(async move {
            for verifier in &self.verifiers {
                if !verifier.digest_signed(query, digest).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }
}

impl AllOf {
    /// Referrers are those of every verifier that keeps any (cosign's bundles, Notation's
    /// signatures), as one index; the caller has checked the digest against every verifier
    /// already, as for a manifest.
    async fn all_referrers(
        &self,
        query: &TrustQuery,
        of: ReferrersOf<'_>,
    ) -> Result<Option<Bytes>, Refusal> {
        let mut indexes = Vec::new();
        for verifier in &self.verifiers {
            if let Some(index) = verifier.referrers(query, of).await? {
                indexes.push(index);
            }
        }
        Ok(super::referrers::merge(&indexes))
    }

    async fn all_others_sign(&self, query: &TrustQuery, digest: &str) -> Result<bool, Refusal> {
        let Ok(digest) = Digest::parse(digest) else {
            return Ok(false);
        };
        for verifier in &self.verifiers[1..] {
            if !verifier.digest_signed(query, &digest).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
