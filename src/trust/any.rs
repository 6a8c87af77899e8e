//! Several verifiers, any one suffices: `verifier: {any_of: [notary, cosign, notation]}`, for
//! migrations off Docker Content Trust (images signed one way or another during the move).
//!
//! Verifiers are asked in the order listed and the first that vouches decides; the
//! [`SignedTag::role`] it returns names it (a Notary v1 role, `cosign`, `notation`), so the
//! decision says which one passed. A refusal from each is a refusal naming every reason. A
//! manifest is in the signed set when any verifier signs it; the referrers served are every
//! verifier's that vouches for the digest.
//!
//! A refusal that is the registry failing (not a verdict) is answered as that failure only
//! when every verifier's refusal is one: a verifier that could read its signatures and
//! refused outweighs one that could not read.

use std::sync::Arc;

use bytes::Bytes;

use super::{
    BoxFuture, Referrers, ReferrersOf, Refusal, RefusalKind, SignedSet, SignedTag, TrustQuery,
    Verifier,
};
use crate::oci::Digest;

/// Verifiers of which one must vouch, each with the name its refusals are prefixed with.
pub struct AnyOf {
    verifiers: Vec<(&'static str, Arc<dyn Verifier>)>,
}

// === impl AnyOf ===

impl AnyOf {
    /// `verifiers` (name, verifier), in the order they are asked; must not be empty.
    pub fn new(verifiers: Vec<(&'static str, Arc<dyn Verifier>)>) -> Self {
        assert!(!verifiers.is_empty(), "AnyOf needs at least one verifier");
        AnyOf { verifiers }
    }

    /// One refusal for all: the registry failure when every refusal is one, else a verdict
    /// naming each verifier's reason, of the first verdict's kind.
    fn refuse(&self, what: &str, mut refusals: Vec<(&'static str, Refusal)>) -> Refusal {
        if !refusals.is_empty() && refusals.iter().all(|(_, r)| r.upstream_cause().is_some()) {
            return refusals.swap_remove(0).1;
        }
        let kind = refusals
            .iter()
            .find(|(_, r)| r.upstream_cause().is_none())
            .map_or(RefusalKind::TrustError, |(_, r)| r.kind);
        let reasons: Vec<String> = refusals
            .iter()
            .map(|(name, r)| format!("{name}: {r}"))
            .collect();
        Refusal::new(
            kind,
            format!(
                "{what}: no verifier of any_of vouches for it ({})",
                reasons.join("; ")
            ),
        )
    }
}

impl Verifier for AnyOf {
    fn resolve_tag<'a>(
        &'a self,
        query: &'a TrustQuery,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<SignedTag, Refusal>> {
        Box::pin(async move {
            let mut refusals = Vec::new();
            for (name, verifier) in &self.verifiers {
                match verifier.resolve_tag(query, tag).await {
                    Ok(signed) => return Ok(signed),
                    Err(r) => refusals.push((*name, r)),
                }
            }
            Err(self.refuse(&format!("{}:{tag}", query.gun), refusals))
        })
    }

    fn signed_set<'a>(
        &'a self,
        query: &'a TrustQuery,
    ) -> BoxFuture<'a, Result<Arc<SignedSet>, Refusal>> {
        Box::pin(async move {
            let mut set = SignedSet::default();
            let mut refusals = Vec::new();
            for (name, verifier) in &self.verifiers {
                match verifier.signed_set(query).await {
                    Ok(one) => set.merge(&one),
                    Err(r) => refusals.push((*name, r)),
                }
            }
            if refusals.len() == self.verifiers.len() {
                return Err(self.refuse(&query.gun, refusals));
            }
            for (name, r) in &refusals {
                tracing::debug!(gun = %query.gun, verifier = name, reason = %r, "signed set without this verifier");
            }
            Ok(Arc::new(set))
        })
    }

    fn digest_signed<'a>(
        &'a self,
        query: &'a TrustQuery,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool, Refusal>> {
        Box::pin(async move {
            let mut refusals = Vec::new();
            for (name, verifier) in &self.verifiers {
                match verifier.digest_signed(query, digest).await {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(r) => refusals.push((*name, r)),
                }
            }
            if refusals.len() == self.verifiers.len() {
                return Err(self.refuse(&format!("{}@{digest}", query.gun), refusals));
            }
            Ok(false)
        })
    }

    fn referrers<'a>(&'a self, query: &'a TrustQuery, of: ReferrersOf<'a>) -> Referrers<'a> {
        Box::pin(async move {
            let mut indexes: Vec<Bytes> = Vec::new();
            let mut refusals = Vec::new();
            for (name, verifier) in &self.verifiers {
                match verifier.referrers(query, of).await {
                    Ok(Some(index)) => indexes.push(index),
                    Ok(None) => {}
                    Err(r) => refusals.push((*name, r)),
                }
            }
            if refusals.len() == self.verifiers.len() {
                return Err(self.refuse(&format!("{}@{}", query.gun, of.digest), refusals));
            }
            Ok(super::referrers::merge(&indexes))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::upstream::UpstreamError;

    /// A verifier that signs one digest (under `role`), refuses every other as `kind`, or
    /// fails as the registry does.
    struct Fixed {
        role: &'static str,
        signs: Option<&'static str>,
        unreachable: bool,
    }

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    impl Fixed {
        fn refusal(&self) -> Refusal {
            if self.unreachable {
                Refusal::upstream(
                    "registry down",
                    UpstreamError::Timeout {
                        url: "http://registry.invalid/v2/".into(),
                        phase: "a response",
                        after: std::time::Duration::from_secs(1),
                    },
                )
            } else {
                Refusal::new(
                    RefusalKind::Unsigned,
                    format!("{} found no signature", self.role),
                )
            }
        }
    }

    impl Verifier for Fixed {
        fn resolve_tag<'a>(
            &'a self,
            _: &'a TrustQuery,
            _: &'a str,
        ) -> BoxFuture<'a, Result<SignedTag, Refusal>> {
            Box::pin(async move {
                match self.signs {
                    Some(d) if !self.unreachable => Ok(SignedTag {
                        digest: d.into(),
                        size: 1,
                        role: self.role.into(),
                    }),
                    _ => Err(self.refusal()),
                }
            })
        }
        fn signed_set<'a>(
            &'a self,
            _: &'a TrustQuery,
        ) -> BoxFuture<'a, Result<Arc<SignedSet>, Refusal>> {
            Box::pin(async move {
                if self.unreachable {
                    return Err(self.refusal());
                }
                let mut set = SignedSet::default();
                set.untagged.extend(self.signs.map(|d| (d.to_owned(), 1)));
                Ok(Arc::new(set))
            })
        }
        fn digest_signed<'a>(
            &'a self,
            _: &'a TrustQuery,
            digest: &'a Digest,
        ) -> BoxFuture<'a, Result<bool, Refusal>> {
            Box::pin(async move {
                if self.unreachable {
                    return Err(self.refusal());
                }
                Ok(self.signs == Some(digest.as_str()))
            })
        }
    }

    fn any(verifiers: Vec<Fixed>) -> AnyOf {
        AnyOf::new(
            verifiers
                .into_iter()
                .map(|f| (f.role, Arc::new(f) as Arc<dyn Verifier>))
                .collect(),
        )
    }

    fn fixed(role: &'static str, signs: Option<&'static str>, unreachable: bool) -> Fixed {
        Fixed {
            role,
            signs,
            unreachable,
        }
    }

    fn query() -> TrustQuery {
        TrustQuery {
            gun: "docker.io/org/app".into(),
            roles: Arc::new([]),
            signers: Arc::new([]),
            pins: Arc::new([]),
            stale_if_error: std::time::Duration::ZERO,
            content: None,
        }
    }

    #[tokio::test]
    async fn the_first_verifier_that_vouches_decides_and_is_named() {
        let v = any(vec![
            fixed("notary", None, true),
            fixed("cosign", None, false),
            fixed("notation", Some(A), false),
        ]);
        let signed = v.resolve_tag(&query(), "v1").await.unwrap();
        assert_eq!(
            (signed.digest.as_str(), signed.role.as_str()),
            (A, "notation")
        );
        let d = Digest::parse(A).unwrap();
        assert!(v.digest_signed(&query(), &d).await.unwrap());
        let other = Digest::parse(B).unwrap();
        assert!(!v.digest_signed(&query(), &other).await.unwrap());
    }

    #[tokio::test]
    async fn a_refusal_names_every_reason_and_verdicts_outweigh_registry_failures() {
        let v = any(vec![
            fixed("notary", None, true),
            fixed("cosign", None, false),
        ]);
        let refusal = v.resolve_tag(&query(), "v1").await.unwrap_err();
        assert!(refusal.upstream_cause().is_none(), "{refusal}");
        assert_eq!(refusal.kind, RefusalKind::Unsigned);
        let text = refusal.to_string();
        assert!(
            text.contains("notary: ") && text.contains("cosign: cosign found no signature"),
            "{text}"
        );
        // Every verifier failing to read: the registry failure, answered as one.
        let down = any(vec![
            fixed("notary", None, true),
            fixed("cosign", None, true),
        ]);
        let refusal = down.resolve_tag(&query(), "v1").await.unwrap_err();
        assert!(refusal.upstream_cause().is_some());
    }

    #[tokio::test]
    async fn the_signed_set_is_the_union_of_those_that_answer() {
        let v = any(vec![
            fixed("notary", Some(A), false),
            fixed("cosign", None, true),
            fixed("notation", Some(B), false),
        ]);
        let set = v.signed_set(&query()).await.unwrap();
        assert!(set.contains_digest(A) && set.contains_digest(B));
        let down = any(vec![
            fixed("notary", None, true),
            fixed("cosign", None, true),
        ]);
        assert!(down.signed_set(&query()).await.is_err());
    }
}
