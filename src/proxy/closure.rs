//! The typed verified closure: what a digest is to the signed images of a repository.
//!
//! Every by-digest request under `verify` (a manifest, a blob, referrers, the background check
//! of `audit`) asks one question, [`Proxy::member`]: is digest D a member of the closure of the
//! repository's signed set, and of which kind?
//!
//! - a *manifest member*: a signed manifest, or a child of an index that is a manifest member
//!   (its size from the signature or the parent descriptor);
//! - a *blob member*: the config or a layer of an image manifest that is a manifest member;
//! - a signature artifact ([`SignatureArtifact`]): served as the artifact manifest it is, and
//!   the blobs it admits (the signature material that counted). Nothing else an artifact lists
//!   (a config, other layers, an index's children) is a member: the artifact itself is not
//!   signed, and whoever can push to the repository can rewrite it.
//!
//! Manifest requests are answered only for manifest members (and artifact manifests), blob
//! requests only for blob members (and admitted artifact blobs): a blob of a signed image asked
//! for as a manifest is refused, and the other way round. The closure is derived from trust data
//! plus content only, so any replica, fresh or not, answers the same; what each manifest
//! references is memoised by digest (`content.rs`).
//!
//! Branches do not decide for each other: the walk reads every signed manifest's branch, a
//! target found in any branch is a member, and a branch that could not be read (the upstream
//! down, a manifest that does not match its digest) fails the request only when the target is
//! in no branch that could be read. "Not a member" is said only when every branch was read, or
//! the walk reached `limits.max_closure_manifests`.

use std::collections::{HashSet, VecDeque};

use super::{
    ctx::{Ctx, Unserved},
    Proxy, ProxyError,
};
use crate::{
    oci::Digest,
    trust::{ArtifactKind, Refusal, RefusalKind, SignedSet, TrustQuery, Verifier},
};

/// What a request asks a digest to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// `GET /v2/<name>/manifests/<digest>`, and the subject of a referrers request.
    Manifest,
    /// `GET /v2/<name>/blobs/<digest>`.
    Blob,
}

/// What a digest is to the signed images of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// A signed manifest or a child of a signed index, with the size its signature or parent
    /// descriptor gives it; `None` when it was checked directly (cosign) and no size is signed.
    Manifest { size: Option<u64> },
    /// The config or a layer of a manifest member, with its descriptor's size.
    Blob { size: u64 },
    /// A signature artifact's own manifest, of the size it was read and checked at.
    Artifact { kind: ArtifactKind, size: u64 },
    /// Signature material a signature artifact admits, with the size its descriptor gives.
    ArtifactBlob { kind: ArtifactKind, size: u64 },
}

// === impl Member ===

impl Member {
    /// The size a signature or descriptor gives the object, when one does.
    pub fn size(self) -> Option<u64> {
        match self {
            Member::Manifest { size } => size,
            Member::Blob { size }
            | Member::Artifact { size, .. }
            | Member::ArtifactBlob { size, .. } => Some(size),
        }
    }

    /// Whether it may be served for a request that wants `want`.
    pub fn is(self, want: Want) -> bool {
        match self {
            Member::Manifest { .. } | Member::Artifact { .. } => want == Want::Manifest,
            Member::Blob { .. } | Member::ArtifactBlob { .. } => want == Want::Blob,
        }
    }

    fn describe(self) -> String {
        match self {
            Member::Manifest { .. } => "a manifest of a signed image".to_owned(),
            Member::Blob { .. } => "a blob of a signed image".to_owned(),
            Member::Artifact { kind, .. } => format!("a {}", kind.as_str()),
            Member::ArtifactBlob { kind, .. } => format!("a blob of a {}", kind.as_str()),
        }
    }
}

/// The first member of the wanted kind found, and whether the target turned up as another.
struct Search {
    want: Want,
    found: Option<Member>,
    other: Option<Member>,
}

impl Search {
    /// Records that the target is `member`; true when that answers the search.
    fn saw(&mut self, member: Member) -> bool {
        if member.is(self.want) {
            self.found.get_or_insert(member);
            true
        } else {
            self.other.get_or_insert(member);
            false
        }
    }
}

// === impl Proxy ===

impl Proxy {
    /// What `digest` is to the signed images of the request's repository, as `want` asks
    /// for it: the member (of that kind), or why not. The one entry point of every by-digest
    /// request under `verify`, and of `audit`'s background check.
    ///
    /// A manifest the verifier vouches for directly ([`Verifier::digest_signed`], cosign) is
    /// a manifest member without a walk; everything else is looked up in the closure of the
    /// verifier's signed set.
    pub(super) async fn member(
        &self,
        ctx: &Ctx<'_>,
        verifier: &dyn Verifier,
        query: &TrustQuery,
        digest: &Digest,
        want: Want,
    ) -> Result<Member, Unserved> {
        if want == Want::Manifest
            && verifier
                .digest_signed(query, digest)
                .await
                .map_err(Unserved::Refused)?
        {
            return Ok(Member::Manifest { size: None });
        }
        let set = verifier
            .signed_set(query)
            .await
            .map_err(Unserved::Refused)?;
        self.member_of(ctx, &set, digest, want).await
    }

    async fn member_of(
        &self,
        ctx: &Ctx<'_>,
        set: &SignedSet,
        target: &Digest,
        want: Want,
    ) -> Result<Member, Unserved> {
        let mut search = Search {
            want,
            found: None,
            other: None,
        };
        if self.roots(set, target, &mut search) {
            return Ok(search.found.expect("saw a member"));
        }
        let mut queue: VecDeque<(Digest, u64)> = set
            .manifests()
            .into_iter()
            .filter_map(|(d, size)| {
                Some((Digest::parse(d).ok()?, u64::try_from(size).unwrap_or(0)))
            })
            .collect();
        let mut seen: HashSet<Digest> = queue.iter().map(|(d, _)| d.clone()).collect();
        // The first branch that could not be read: the answer only if no branch has it.
        let mut failed: Option<Unserved> = None;
        let mut walked = 0;
        while let Some((digest, size)) = queue.pop_front() {
            walked += 1;
            if walked > self.limits.max_closure_manifests {
                tracing::warn!(image = %ctx.image, limit = self.limits.max_closure_manifests,
                    "closure walk stopped at its limit");
                break;
            }
            let refs = match self.refs(ctx, &digest, size).await {
                Ok(refs) => refs,
                // A signed manifest gone upstream has no closure: that branch is read.
                Err(Unserved::Failed(ProxyError::UnknownManifest { .. })) => continue,
                Err(e) => {
                    tracing::debug!(image = %ctx.image, manifest = %digest, error = ?e,
                        "closure branch not read");
                    failed.get_or_insert(e);
                    continue;
                }
            };
            for (blob, size) in &refs.blobs {
                if blob == target && search.saw(Member::Blob { size: *size }) {
                    return Ok(search.found.expect("saw a member"));
                }
            }
            for (child, size) in &refs.manifests {
                if child == target && search.saw(Member::Manifest { size: Some(*size) }) {
                    return Ok(search.found.expect("saw a member"));
                }
                if seen.insert(child.clone()) {
                    queue.push_back((child.clone(), *size));
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Err(Unserved::Refused(not_member(
            ctx,
            target,
            want,
            search.other,
        )))
    }

    /// The roots: signed manifests and signature artifacts with what they admit. True when
    /// the target is among them as the kind wanted.
    fn roots(&self, set: &SignedSet, target: &Digest, search: &mut Search) -> bool {
        for (digest, size) in set.manifests() {
            if digest == target.as_str() {
                let size = Some(u64::try_from(size).unwrap_or(0));
                if search.saw(Member::Manifest { size }) {
                    return true;
                }
            }
        }
        for artifact in &set.artifacts {
            let kind = artifact.kind;
            if artifact.digest == target.as_str()
                && search.saw(Member::Artifact {
                    kind,
                    size: artifact.size,
                })
            {
                return true;
            }
            for (blob, size) in &artifact.admits {
                if blob == target.as_str() && search.saw(Member::ArtifactBlob { kind, size: *size })
                {
                    return true;
                }
            }
        }
        false
    }
}

fn not_member(ctx: &Ctx<'_>, target: &Digest, want: Want, other: Option<Member>) -> Refusal {
    let message = match (want, other) {
        (Want::Manifest, Some(other)) => format!(
            "{}@{target} is {}, not a manifest anything signed vouches for",
            ctx.image,
            other.describe()
        ),
        (Want::Blob, Some(other)) => format!(
            "{}@{target} is {}, not a blob of a signed image",
            ctx.image,
            other.describe()
        ),
        (Want::Manifest, None) => format!(
            "{}@{target} is not signed and not part of any signed image of {}",
            ctx.image, ctx.image
        ),
        (Want::Blob, None) => format!(
            "blob {target} does not belong to any signed image of {}",
            ctx.image
        ),
    };
    Refusal::new(RefusalKind::Unsigned, message)
}

#[cfg(test)]
mod tests {
    use super::{Member, Want};
    use crate::trust::ArtifactKind;

    #[test]
    fn each_member_serves_only_the_request_kind_it_is() {
        let kind = ArtifactKind::CosignSignature;
        for (member, want) in [
            (Member::Manifest { size: None }, Want::Manifest),
            (Member::Artifact { kind, size: 1 }, Want::Manifest),
            (Member::Blob { size: 1 }, Want::Blob),
            (Member::ArtifactBlob { kind, size: 1 }, Want::Blob),
        ] {
            assert!(member.is(want), "{member:?} for {want:?}");
            let other = match want {
                Want::Manifest => Want::Blob,
                Want::Blob => Want::Manifest,
            };
            assert!(!member.is(other), "{member:?} must not serve {other:?}");
        }
    }
}
