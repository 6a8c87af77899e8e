//! The decision API's answer: what the proxy decides for a manifest, by the code path a pull
//! takes (policy, the rule's verifier, the signed closure), without serving anything. Node
//! agents (`trustgate containerd-verifier`) ask it for an image that reached the node by
//! whatever path, so a pull that fell back past the proxy is still judged by it.

use std::sync::Arc;

use serde::Serialize;

use super::{ctx::Ctx, ctx::Unserved, handlers::upstream_repo, Proxy, ProxyError};
use crate::{
    oci::{parse_image, Digest, Reference, Tag},
    policy::Action,
};

/// What the proxy decides for `<registry>/<repository>(:tag|@digest)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `allow` (a pull would be served) or `refuse` (403).
    pub verdict: VerdictKind,
    /// The image as the policy sees it: `<registry>/<repository>`.
    pub image: String,
    /// The manifest digest a pull would serve, when it would serve one and it is known.
    pub digest: Option<String>,
    /// The rule that decided (its pattern, or `default`).
    pub rule: String,
    /// Its action: `verify`, `audit`, `allow` or `deny`.
    pub action: String,
    /// The rule's verifier (`notary`, `cosign`, `notation`, `any_of[...]`), when it has one.
    pub verifier: Option<String>,
    /// What vouched for a tag (a Notary v1 role, `cosign`, `notation`), when known.
    pub signed_by: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// The two verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    Allow,
    Refuse,
}

/// Why no verdict could be given: the request is malformed, or a peer failed (not a
/// verdict: an agent asking must not take it for one).
#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    /// The image reference is not `<registry>/<repository>(:tag|@digest)`.
    #[error("{0}")]
    BadImage(String),
    /// The registry, a trust server or the cache failed.
    #[error(transparent)]
    Failed(#[from] ProxyError),
}

// === impl Proxy ===

impl Proxy {
    /// What a pull of the manifest `image` (`<registry>/<repository>(:tag|@digest)`, the
    /// registry one this proxy mirrors; default tag `latest`) would get, decided as the
    /// manifest handler decides it. Refusals are logged as verdicts, not counted as pulls.
    pub async fn verdict(self: &Arc<Self>, image: &str) -> Result<Verdict, VerdictError> {
        let parsed = parse_image(image).map_err(|e| VerdictError::BadImage(e.to_string()))?;
        let registry = parsed.registry.as_deref().ok_or_else(|| {
            VerdictError::BadImage(format!(
                "{image:?} names no registry: write <registry>/<repository>@<digest>"
            ))
        })?;
        let reference = match (&parsed.digest, &parsed.tag) {
            (Some(d), _) => Reference::Digest(
                Digest::parse(d).map_err(|e| VerdictError::BadImage(e.to_string()))?,
            ),
            (None, t) => Reference::Tag(
                Tag::parse(t.as_deref().unwrap_or("latest"))
                    .map_err(|e| VerdictError::BadImage(e.to_string()))?,
            ),
        };
        let rt = self.runtime();
        // A registry this proxy does not mirror: a pull through it would not be served.
        let Some(upstream) = rt.upstream(Some(registry)) else {
            return Ok(Verdict {
                verdict: VerdictKind::Refuse,
                image: format!("{registry}/{}", parsed.repo),
                digest: reference.digest().map(|d| d.as_str().to_owned()),
                rule: String::new(),
                action: String::new(),
                verifier: None,
                signed_by: None,
                reason: ProxyError::UnknownRegistry(registry.to_owned()).to_string(),
            });
        };
        let repo = upstream_repo(upstream.registry(), &parsed.repo);
        let name = format!("{}/{repo}", upstream.registry());
        let ctx = Ctx::new(&rt, upstream, &repo, &name);
        let action = ctx.decision.action();
        let rule = ctx.decision.rule();
        let mut verdict = Verdict {
            verdict: VerdictKind::Allow,
            image: name.clone(),
            digest: reference.digest().map(|d| d.as_str().to_owned()),
            rule: ctx.decision.pattern().to_owned(),
            action: action.to_string(),
            verifier: rule.and_then(|r| r.trust()).map(|t| t.verifier.to_string()),
            signed_by: None,
            reason: String::new(),
        };
        match action {
            Action::Deny => {
                verdict.verdict = VerdictKind::Refuse;
                verdict.reason = format!("{name} is denied by policy ({})", verdict.rule);
            }
            Action::Allow => verdict.reason = "allowed without verification".to_owned(),
            Action::Verify | Action::Audit => {
                // Audit serves what the upstream has; its verdict says what verify would do.
                let audit = action == Action::Audit;
                let (verifier, query) = self.trust(&ctx)?;
                match self
                    .verified_digest(&ctx, verifier.as_ref(), &query, &reference)
                    .await
                {
                    Ok((digest, _, signed_by)) if audit => {
                        verdict.reason =
                            format!("allowed (audit): verify would serve {name}@{digest}");
                        verdict.signed_by = signed_by;
                    }
                    Ok((digest, _, signed_by)) => {
                        verdict.reason = format!("{name}@{digest} verified");
                        verdict.digest = Some(digest.as_str().to_owned());
                        verdict.signed_by = signed_by;
                    }
                    // A registry failure behind a refusal is not a verdict.
                    Err(Unserved::Refused(r)) if r.upstream.is_some() => {
                        return Err(self.refuse(&ctx, r).into())
                    }
                    Err(Unserved::Refused(r)) if audit => {
                        verdict.reason =
                            format!("allowed (audit): verify would refuse: {}", r.message);
                    }
                    Err(Unserved::Refused(r)) => {
                        verdict.verdict = VerdictKind::Refuse;
                        verdict.reason = r.message;
                    }
                    Err(Unserved::Failed(e)) => return Err(e.into()),
                }
            }
        }
        tracing::info!(image = %name, reference = %image, rule = %verdict.rule,
            verdict = ?verdict.verdict, reason = %verdict.reason, "decision API verdict");
        Ok(verdict)
    }
}
