//! The decision record of one request, made where its answer is final ([`Proxy::handle`]):
//! one per manifest (GET and HEAD), blob, referrers and tags/list request.

use http::{HeaderMap, Response, StatusCode};

use super::{handlers::upstream_repo, Proxy, ProxyError};
use crate::{
    body::Body,
    oci::{Endpoint, ReadMethod, Reference, Route},
    records::{Record, RecordKind, RecordVerdict},
    server::{RemoteAddr, X_REQUEST_ID},
};

/// What [`Proxy::handle`] keeps of the request for its record.
pub(super) struct Asked {
    pub request_id: String,
    pub client: Option<std::net::SocketAddr>,
    pub principal: String,
}

impl Asked {
    pub fn of<B>(req: &http::Request<B>) -> Asked {
        Asked {
            request_id: req
                .headers()
                .get(&X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            client: req
                .extensions()
                .get::<RemoteAddr>()
                .map(|RemoteAddr(peer)| *peer),
            principal: req
                .extensions()
                .get::<crate::auth::Principal>()
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "anonymous".to_owned()),
        }
    }
}

// === impl Proxy ===

impl Proxy {
    /// The record of `route`'s answer: `outcome` is the handler's result before it becomes
    /// a response. `None` for requests that decide nothing (`/v2/`).
    pub(super) fn record(
        &self,
        asked: Asked,
        route: &Route,
        outcome: Result<&Response<Body>, &ProxyError>,
    ) -> Option<Record> {
        let (kind, name, reference) = match &route.endpoint {
            Endpoint::Base => return None,
            Endpoint::Manifest { name, reference } => {
                (RecordKind::Manifest, name, Some(reference.to_string()))
            }
            Endpoint::Blob { name, digest } => {
                (RecordKind::Blob, name, Some(digest.as_str().to_owned()))
            }
            Endpoint::Referrers { name, digest, .. } => (
                RecordKind::Referrers,
                name,
                Some(digest.as_str().to_owned()),
            ),
            Endpoint::TagsList { name, .. } => (RecordKind::Tags, name, None),
        };
        let rt = self.runtime();
        let ns = route.ns.as_ref().map(|h| h.as_str());
        let (image, rule, action, verifier) = match rt.upstream(ns) {
            Some(upstream) => {
                let repo = upstream_repo(upstream.registry(), name.as_str());
                let decision = rt.policy().decide(upstream.registry(), &repo);
                (
                    format!("{}/{repo}", upstream.registry()),
                    decision.pattern().to_owned(),
                    decision.action().as_str(),
                    decision.trust().map(|t| t.verifier),
                )
            }
            None => (
                format!("{}/{}", ns.unwrap_or_default(), name.as_str()),
                String::new(),
                "",
                None,
            ),
        };
        let image = match (&route.endpoint, &reference) {
            (
                Endpoint::Manifest {
                    reference: Reference::Tag(t),
                    ..
                },
                _,
            ) => {
                format!("{image}:{}", t.as_str())
            }
            (Endpoint::TagsList { .. }, _) | (_, None) => image,
            (_, Some(d)) => format!("{image}@{d}"),
        };
        let digest_of = |headers: &HeaderMap| {
            headers
                .get("Docker-Content-Digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let asked_digest = match &route.endpoint {
            Endpoint::Manifest {
                reference: Reference::Digest(d),
                ..
            }
            | Endpoint::Blob { digest: d, .. }
            | Endpoint::Referrers { digest: d, .. } => Some(d.as_str().to_owned()),
            _ => None,
        };
        let (verdict, reason, digest) = match outcome {
            Ok(response) => {
                let reason = match action {
                    "verify" => "verified".to_owned(),
                    "audit" => "allowed (audit)".to_owned(),
                    _ => "allowed without verification".to_owned(),
                };
                let verdict = if response.status().is_success()
                    || response.status() == StatusCode::NOT_MODIFIED
                {
                    RecordVerdict::Allow
                } else {
                    RecordVerdict::Error
                };
                (
                    verdict,
                    reason,
                    digest_of(response.headers()).or(asked_digest),
                )
            }
            Err(
                e @ (ProxyError::PolicyDenied { .. }
                | ProxyError::Refused { .. }
                | ProxyError::AccessDenied { .. }),
            ) => (RecordVerdict::Deny, e.to_string(), asked_digest),
            Err(e) => (RecordVerdict::Error, e.to_string(), asked_digest),
        };
        Some(Record {
            time: std::time::SystemTime::now(),
            request_id: asked.request_id,
            client: asked.client,
            principal: asked.principal,
            method: match route.method {
                ReadMethod::Head => "HEAD",
                ReadMethod::Get => "GET",
            },
            kind,
            image,
            digest,
            rule,
            action,
            verifier,
            verdict,
            reason,
        })
    }
}
