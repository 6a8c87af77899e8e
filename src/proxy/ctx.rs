//! One request's context: the image, its upstream and the policy decision, and how a
//! refusal made for it becomes the client's answer.

use std::sync::Arc;

use super::{runtime::Runtime, Proxy, ProxyError};
use crate::{
    metrics::VerificationResult,
    policy::Decision,
    trust::Refusal,
    upstream::{Upstream, UpstreamError},
};

/// One request's image, upstream and policy decision.
pub struct Ctx<'a> {
    pub rt: &'a Arc<Runtime>,
    pub upstream: &'a Upstream,
    /// Repository at the upstream (`library/` added for Docker Hub's official images).
    pub repo: &'a str,
    /// `registry/repository`, the GUN and the name in messages.
    pub image: &'a str,
    pub decision: Decision<'a>,
}

/// Why something was not served, before it is answered: a verdict on the content (logged and
/// counted only when it becomes the answer, [`Proxy::unserved`]), or a failure to get it.
/// A closure walk gathers these per branch and answers at most one.
#[derive(Debug)]
pub enum Unserved {
    Refused(Refusal),
    Failed(ProxyError),
}

// === impl Ctx ===

impl<'a> Ctx<'a> {
    /// The context of a request for `image` (`repo` at `upstream`), with the policy's decision.
    pub fn new(
        rt: &'a Arc<Runtime>,
        upstream: &'a Upstream,
        repo: &'a str,
        image: &'a str,
    ) -> Self {
        Ctx {
            rt,
            upstream,
            repo,
            image,
            decision: rt.policy().decide(upstream.registry(), repo),
        }
    }

    pub fn rule_label(&self) -> String {
        match self.decision.rule() {
            Some(rule) => format!("rule {:?}", rule.pattern().to_string()),
            None => "the policy default, no rule matches".to_owned(),
        }
    }

    /// An upstream failure, with 404 mapped to the endpoint's "unknown" error.
    pub fn upstream_error(&self, e: UpstreamError, manifest: bool, what: &str) -> ProxyError {
        match e {
            UpstreamError::NotFound { .. } if manifest => ProxyError::UnknownManifest {
                what: what.to_owned(),
            },
            UpstreamError::NotFound { .. } => ProxyError::UnknownBlob {
                what: what.to_owned(),
            },
            source => ProxyError::Upstream {
                registry: self.upstream.registry().to_owned(),
                source,
            },
        }
    }
}

// === impl Proxy ===

impl Proxy {
    /// The answer to what was not served: a refusal becomes a 403 ([`Proxy::refuse`]).
    pub(super) fn unserved(&self, ctx: &Ctx<'_>, e: Unserved) -> ProxyError {
        match e {
            Unserved::Refused(refusal) => self.refuse(ctx, refusal),
            Unserved::Failed(e) => e,
        }
    }

    /// Logs and counts a refusal once, and turns it into the 403 the client gets. A refusal
    /// that is an upstream failure (cosign reads signatures from the image's registry) is not
    /// a verdict: it becomes that failure's answer (`404 MANIFEST_UNKNOWN`, `502`, `504`,
    /// `429`), as the same failure would outside verification.
    pub(super) fn refuse(&self, ctx: &Ctx<'_>, refusal: Refusal) -> ProxyError {
        if let Some(source) = refusal.upstream {
            return match *source {
                UpstreamError::NotFound { .. } => ProxyError::UnknownManifest {
                    what: refusal.message,
                },
                source => {
                    tracing::warn!(image = %ctx.image, rule = ctx.decision.pattern(),
                        reason = %refusal.message, "signature data unavailable");
                    ProxyError::Upstream {
                        registry: ctx.upstream.registry().to_owned(),
                        source,
                    }
                }
            };
        }
        let result = VerificationResult::from(refusal.kind);
        self.metrics.verify().verification(result);
        self.metrics
            .verify()
            .decision(ctx.decision.action(), Some(result));
        tracing::warn!(image = %ctx.image, rule = ctx.decision.pattern(), result = result.as_str(),
            reason = %refusal.message, "refused");
        ProxyError::Refused {
            refusal,
            rule: ctx.rule_label(),
        }
    }
}
