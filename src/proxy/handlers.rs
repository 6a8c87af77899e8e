//! The endpoints: which action a rule takes decides how each one is served.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Response, StatusCode};

use super::{
    closure::Want,
    content::Fetched,
    ctx::{Ctx, Unserved},
    range::{self, ByteRange},
    Proxy, ProxyError,
};
use crate::{
    body::{self, Body},
    metrics::VerificationResult,
    oci::{self, AcceptDecision, Digest, Endpoint, ReadMethod, Reference, Route, Tag},
    policy::{Action, Rule},
    trust::{ContentSource, ReferrersOf, Refusal, RefusalKind, TrustQuery, Verifier},
    upstream::UpstreamError,
};

const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// Docker Hub keeps official images under `library/`; clients that address trustgate as the
/// registry may send `nginx` for `library/nginx`.
pub(crate) fn upstream_repo(registry: &str, name: &str) -> String {
    if registry == "docker.io" && !name.contains('/') {
        format!("library/{name}")
    } else {
        name.to_owned()
    }
}

// === impl Proxy ===

impl Proxy {
    pub(super) async fn dispatch(
        self: &Arc<Self>,
        route: &Route,
        headers: &http::HeaderMap,
        grant: Option<&crate::auth::Grant>,
    ) -> Result<Response<Body>, ProxyError> {
        let head = route.method == ReadMethod::Head;
        let accept: Vec<String> = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let Some(name) = route.endpoint.name() else {
            return Ok(json_response(
                StatusCode::OK,
                Bytes::from_static(b"{}"),
                head,
            ));
        };
        let rt = self.runtime();
        let ns = route.ns.as_ref().map(|h| h.as_str());
        let upstream = rt.upstream(ns).ok_or_else(|| match ns {
            Some(ns) => ProxyError::UnknownRegistry(ns.to_owned()),
            None => ProxyError::NoDefaultUpstream,
        })?;
        let repo = upstream_repo(upstream.registry(), name.as_str());
        let image = format!("{}/{repo}", upstream.registry());
        // `auth.access`: before the policy, so a principal learns nothing about what it may
        // not pull (tags/list and referrers included).
        if let Some(grant) = grant {
            if !grant.may_pull(upstream.registry(), &repo) {
                self.metrics.http().auth_failure("access_denied");
                tracing::warn!(image = %image, principal = %grant.principal.name, reason = "not in auth.access", "refused");
                return Err(ProxyError::AccessDenied {
                    image,
                    principal: grant.principal.name.clone(),
                });
            }
        }
        let ctx = Ctx::new(&rt, upstream, &repo, &image);
        if ctx.decision.action() == Action::Deny {
            self.metrics.verify().decision(Action::Deny, None);
            tracing::warn!(image = %image, rule = ctx.decision.pattern(), reason = "denied by policy", "refused");
            return Err(ProxyError::PolicyDenied {
                image: image.clone(),
                rule: ctx.rule_label(),
            });
        }
        match &route.endpoint {
            Endpoint::Manifest { reference, .. } => {
                self.manifest(&ctx, reference, &accept, head).await
            }
            Endpoint::Blob { digest, .. } => self.blob(&ctx, digest, headers, head).await,
            Endpoint::TagsList { n, last, .. } => {
                self.tags(
                    &ctx,
                    name.as_str(),
                    route.ns.as_ref().map(|h| h.as_str()),
                    *n,
                    last.as_ref(),
                )
                .await
            }
            Endpoint::Referrers {
                digest,
                artifact_type,
                ..
            } => {
                self.referrers(&ctx, digest, artifact_type.as_ref().map(|t| t.as_str()))
                    .await
            }
            Endpoint::Base => unreachable!("handled above"),
        }
    }

    fn verified(&self, action: Action) {
        self.metrics
            .verify()
            .verification(VerificationResult::Verified);
        self.metrics
            .verify()
            .decision(action, Some(VerificationResult::Verified));
    }

    pub(super) fn trust(
        &self,
        ctx: &Ctx<'_>,
    ) -> Result<(Arc<dyn Verifier>, TrustQuery), ProxyError> {
        let rule = ctx.decision.rule().ok_or_else(|| {
            ProxyError::Internal("a verifying decision without a rule".to_owned())
        })?;
        let (verifier, query) = ctx
            .rt
            .trust_for(rule, ctx.image.to_owned())
            .ok_or_else(|| ProxyError::Internal(format!("no verifier for {}", ctx.rule_label())))?;
        Ok((verifier, self.with_content(ctx, query)))
    }

    /// Gives the query the request's repository, for verifiers that read signatures from it.
    fn with_content(&self, ctx: &Ctx<'_>, query: TrustQuery) -> TrustQuery {
        TrustQuery {
            content: Some(ContentSource {
                upstream: ctx.upstream.clone(),
                repo: ctx.repo.to_owned(),
                max_manifest_size: self.limits.max_manifest_size,
            }),
            ..query
        }
    }

    /// Under `verify`: the manifest digest a reference stands for, its signed (or parent)
    /// size, and for a tag what vouched for it (the Notary v1 role, `cosign`, `notation`;
    /// under `any_of`, the verifier that passed); a digest must be a manifest member of the
    /// closure ([`Proxy::member`]). Refusals are returned, not yet logged or counted.
    pub(super) async fn verified_digest(
        &self,
        ctx: &Ctx<'_>,
        verifier: &dyn Verifier,
        query: &TrustQuery,
        reference: &Reference,
    ) -> Result<(Digest, Option<u64>, Option<String>), Unserved> {
        match reference {
            Reference::Tag(tag) => {
                let signed = verifier
                    .resolve_tag(query, tag.as_str())
                    .await
                    .map_err(Unserved::Refused)?;
                tracing::debug!(image = %ctx.image, rule = ctx.decision.pattern(), tag = tag.as_str(),
                    digest = %signed.digest, signed_by = %signed.role, "verified");
                let digest = Digest::parse(&signed.digest).map_err(|e| {
                    Unserved::Failed(ProxyError::Internal(format!("signed digest: {e}")))
                })?;
                Ok((
                    digest,
                    Some(u64::try_from(signed.size).unwrap_or(0)),
                    Some(signed.role),
                ))
            }
            Reference::Digest(digest) => {
                let member = self
                    .member(ctx, verifier, query, digest, Want::Manifest)
                    .await?;
                Ok((digest.clone(), member.size(), None))
            }
        }
    }

    async fn manifest(
        self: &Arc<Self>,
        ctx: &Ctx<'_>,
        reference: &Reference,
        accept: &[String],
        head: bool,
    ) -> Result<Response<Body>, ProxyError> {
        let action = ctx.decision.action();
        let (digest, fetched) = if action == Action::Verify {
            let (verifier, query) = self.trust(ctx)?;
            let (digest, size, _) = self
                .verified_digest(ctx, verifier.as_ref(), &query, reference)
                .await
                .map_err(|e| self.unserved(ctx, e))?;
            let fetched = self.manifest_by_digest(ctx, &digest, size).await?;
            self.verified(action);
            (digest, fetched)
        } else {
            let (digest, fetched) = match reference {
                Reference::Digest(digest) => (
                    digest.clone(),
                    self.manifest_by_digest(ctx, digest, None).await?,
                ),
                Reference::Tag(tag) => self.manifest_by_tag(ctx, tag).await?,
            };
            if action == Action::Audit {
                self.audit(ctx, reference.clone(), digest.clone());
            } else {
                self.metrics.verify().decision(action, None);
            }
            (digest, fetched)
        };
        let by_tag = matches!(reference, Reference::Tag(_));
        if oci::negotiate(
            accept.iter().map(String::as_str),
            fetched.manifest.kind(),
            by_tag,
        ) == AcceptDecision::NotAcceptable
        {
            return Err(ProxyError::NotAcceptable {
                what: format!("{}@{digest}", ctx.image),
                media_type: fetched.media_type,
            });
        }
        Ok(manifest_response(&fetched, &digest, head))
    }

    /// Unverified (`allow`, `audit`): what the tag points at upstream now, cached by digest;
    /// with the upstream's `tag_ttl`, from memory within it, and stale while the upstream
    /// cannot answer (tags.rs).
    async fn manifest_by_tag(
        &self,
        ctx: &Ctx<'_>,
        tag: &Tag,
    ) -> Result<(Digest, Fetched), ProxyError> {
        let ttl = ctx.rt.tag_ttl(ctx.upstream.registry());
        if ttl.is_zero() {
            return self.manifest_by_tag_upstream(ctx, tag).await;
        }
        if let Some(digest) = self.remembered_tag(ctx, tag.as_str(), ttl) {
            if let Some(fetched) = self.cached_manifest(ctx, &digest).await {
                return Ok((digest, fetched));
            }
        }
        match self.manifest_by_tag_upstream(ctx, tag).await {
            Ok((digest, fetched)) => {
                self.remember_tag(ctx, tag.as_str(), &digest);
                Ok((digest, fetched))
            }
            Err(ProxyError::UnknownManifest { what }) => {
                self.forget_tag(ctx, tag.as_str());
                Err(ProxyError::UnknownManifest { what })
            }
            Err(ProxyError::Upstream { registry, source })
                if super::tags::may_answer_stale(&source) =>
            {
                let window = ttl.saturating_add(super::TAG_STALE_WINDOW);
                if let Some(digest) = self.remembered_tag(ctx, tag.as_str(), window) {
                    if let Some(fetched) = self.cached_manifest(ctx, &digest).await {
                        tracing::warn!(image = %ctx.image, tag = tag.as_str(), digest = %digest,
                            error = %source, "upstream cannot answer for the tag: serving its last digest (stale)");
                        self.metrics.upstream().stale_tag(&registry);
                        return Ok((digest, fetched));
                    }
                }
                Err(ProxyError::Upstream { registry, source })
            }
            Err(e) => Err(e),
        }
    }

    /// What the tag points at upstream now, cached by digest.
    async fn manifest_by_tag_upstream(
        &self,
        ctx: &Ctx<'_>,
        tag: &Tag,
    ) -> Result<(Digest, Fetched), ProxyError> {
        let what = format!("{}:{tag}", ctx.image);
        let upstream = ctx
            .upstream
            .manifest(ctx.repo, tag.as_str(), self.limits.max_manifest_size)
            .await
            .map_err(|e| ctx.upstream_error(e, true, &what))?;
        let digest = Digest::sha256_of(&upstream.bytes);
        let content_type = upstream.media_type.as_deref();
        let manifest = oci::parse_manifest(&upstream.bytes, content_type).map_err(|source| {
            ProxyError::BadManifest {
                registry: ctx.upstream.registry().to_owned(),
                what: what.clone(),
                source,
            }
        })?;
        let media_type = manifest.media_type().to_owned();
        if let Err(e) = self
            .store
            .put_manifest(&digest, upstream.bytes.clone(), &media_type)
            .await
        {
            tracing::warn!(digest = %digest, error = %e, "manifest not cached");
        }
        Ok((
            digest,
            Fetched {
                bytes: upstream.bytes,
                media_type,
                manifest,
            },
        ))
    }

    /// `audit`: the content is served already; find out in the background what `verify` would
    /// have decided, and record it.
    fn audit(self: &Arc<Self>, ctx: &Ctx<'_>, reference: Reference, served: Digest) {
        let Some(rule) = ctx.decision.rule().cloned() else {
            return;
        };
        let (this, rt, upstream) = (self.clone(), ctx.rt.clone(), ctx.upstream.clone());
        let (repo, image) = (ctx.repo.to_owned(), ctx.image.to_owned());
        tokio::spawn(async move {
            let ctx = Ctx::new(&rt, &upstream, &repo, &image);
            let result = this.audit_check(&ctx, &rule, &reference, &served).await;
            // What verify would do; and what audit served: a tag moved after signing serves
            // content that is not the signed digest (verify would serve the signed one).
            let (verdict, served_result) = match &result {
                Ok(None) => (VerificationResult::Verified, VerificationResult::Verified),
                Ok(Some(_)) => (VerificationResult::Verified, VerificationResult::Mismatch),
                Err(r) => (
                    VerificationResult::from(r.kind),
                    VerificationResult::from(r.kind),
                ),
            };
            match result {
                Ok(None) => {}
                Ok(Some(signed)) => {
                    tracing::warn!(image = %image, rule = ctx.decision.pattern(), served = %served,
                        signed = %signed, "audit: verify would serve the signed {signed} instead of {served}, which the tag points at upstream now");
                }
                Err(r) => {
                    tracing::warn!(image = %image, rule = ctx.decision.pattern(), result = verdict.as_str(),
                        reason = %r.message, "audit: verify would have refused");
                }
            }
            // After the record, so whoever sees the count finds the line.
            this.metrics.verify().verification(verdict);
            this.metrics
                .verify()
                .decision(Action::Audit, Some(served_result));
        });
    }

    /// What `verify` would do with a request `audit` served as `served`: serve the same
    /// (`Ok(None)`), serve the signed digest instead because the tag moved upstream after
    /// signing (`Ok(Some(signed))`), or refuse; the same code path as `verify`.
    pub(super) async fn audit_check(
        &self,
        ctx: &Ctx<'_>,
        rule: &Rule,
        reference: &Reference,
        served: &Digest,
    ) -> Result<Option<Digest>, Refusal> {
        let Some((verifier, query)) = ctx.rt.trust_for(rule, ctx.image.to_owned()) else {
            return Err(Refusal::new(
                RefusalKind::TrustError,
                "no verifier configured",
            ));
        };
        let query = self.with_content(ctx, query);
        match self
            .verified_digest(ctx, verifier.as_ref(), &query, reference)
            .await
        {
            Ok((digest, _, _)) => Ok((digest != *served).then_some(digest)),
            Err(Unserved::Refused(r)) => Err(r),
            Err(Unserved::Failed(e)) => Err(Refusal::new(RefusalKind::TrustError, e.to_string())),
        }
    }

    async fn blob(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        headers: &http::HeaderMap,
        head: bool,
    ) -> Result<Response<Body>, ProxyError> {
        let action = ctx.decision.action();
        // The size the verified image's descriptor gives the blob, when it is verified.
        let mut signed_size = None;
        if action == Action::Verify {
            let (verifier, query) = self.trust(ctx)?;
            let member = self
                .member(ctx, verifier.as_ref(), &query, digest, Want::Blob)
                .await
                .map_err(|e| self.unserved(ctx, e))?;
            // Also 0: an empty blob is legitimate, and is read as exactly 0 bytes.
            signed_size = member.size();
            self.verified(action);
        } else {
            self.metrics.verify().decision(action, None);
        }
        let what = format!("{}@{digest}", ctx.image);
        if head {
            // HEAD answers exactly as GET would: from the cache, else only if the upstream
            // has the blob (a signed descriptor's size proves nothing about availability).
            let size = match self.store.blob_size(digest).await {
                Some(size) => size,
                None => ctx
                    .upstream
                    .blob(ctx.repo, digest.as_str())
                    .await
                    .map_err(|e| ctx.upstream_error(e, false, &what))?
                    .length
                    .ok_or_else(|| ProxyError::UnknownBlob { what: what.clone() })?,
            };
            return Ok(blob_response(
                digest,
                Some(signed_size.unwrap_or(size)),
                body::empty(),
            ));
        }
        let store_error = |e| match upstream_cause(&e) {
            Some(u) => ctx.upstream_error(u, false, &what),
            None => ProxyError::Store(e),
        };
        // GET only (RFC 9110 14.2). Part of a blob cannot be checked against its digest: the
        // range is served from a stored blob this process hashed whole, else the whole blob.
        if let Some(range) = range::requested(headers, &etag(digest)) {
            let stored = self
                .store
                .verified_blob(digest, signed_size, blob_fetch(ctx, digest))
                .await
                .map_err(store_error)?;
            if let Some(blob) = stored {
                return self.blob_range(ctx, digest, signed_size, range, blob);
            }
        }
        let blob = self
            .store
            .blob_of_size(digest, signed_size, blob_fetch(ctx, digest))
            .await
            .map_err(store_error)?;
        // The store holds the body to exactly the signed size; the header says it too.
        Ok(blob_response(
            digest,
            signed_size.or(blob.length),
            body::stream(blob.stream),
        ))
    }

    /// `206 Partial Content` for `range` of a stored, verified blob, or `416`.
    fn blob_range(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        signed_size: Option<u64>,
        range: ByteRange,
        blob: crate::cache::CachedBlob,
    ) -> Result<Response<Body>, ProxyError> {
        let total = blob.len();
        if let Some(size) = signed_size.filter(|size| *size != total) {
            return Err(self.refuse(
                ctx,
                Refusal::new(
                    RefusalKind::Mismatch,
                    format!(
                        "{}@{digest} is {total} bytes, but its signed descriptor says {size}",
                        ctx.image
                    ),
                ),
            ));
        }
        let Some((first, last)) = range.resolve(total) else {
            return Err(ProxyError::RangeNotSatisfiable {
                what: format!("{}@{digest}", ctx.image),
                size: total,
            });
        };
        let len = last - first + 1;
        let stream = blob
            .into_range_stream(first, len)
            .map_err(|_| ProxyError::Internal("a range of an unverified blob".to_owned()))?;
        let mut response = blob_response(digest, Some(len), body::stream(stream));
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = header::HeaderValue::from_str(&format!("bytes {first}-{last}/{total}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        Ok(response)
    }

    /// `GET /v2/<name>/referrers/<digest>`. Under `verify`, for a digest that verifies as its
    /// manifest would, the referrers the verifier vouches for (cosign: the sigstore bundles
    /// that counted; else none); otherwise what the upstream lists, through the referrers
    /// tag fallback when it lacks the API.
    async fn referrers(
        &self,
        ctx: &Ctx<'_>,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Response<Body>, ProxyError> {
        let action = ctx.decision.action();
        let what = format!("{}@{digest} referrers", ctx.image);
        let index = if action == Action::Verify {
            let (verifier, query) = self.trust(ctx)?;
            self.verified_digest(
                ctx,
                verifier.as_ref(),
                &query,
                &Reference::Digest(digest.clone()),
            )
            .await
            .map_err(|e| self.unserved(ctx, e))?;
            let index = verifier
                .referrers(
                    &query,
                    ReferrersOf {
                        digest,
                        artifact_type,
                    },
                )
                .await
                .map_err(|r| self.refuse(ctx, r))?;
            self.verified(action);
            index
        } else {
            self.metrics.verify().decision(action, None);
            let listed = ctx
                .upstream
                .referrers(
                    ctx.repo,
                    digest.as_str(),
                    artifact_type,
                    self.limits.max_manifest_size,
                )
                .await
                .map_err(|e| ctx.upstream_error(e, true, &what))?;
            match (listed, artifact_type) {
                (None, _) => None,
                (Some(l), Some(t)) if !l.filtered => Some(filter_index(&l.bytes, t)),
                (Some(l), _) => Some(l.bytes),
            }
        };
        Ok(referrers_response(
            index.unwrap_or_else(|| Bytes::from_static(EMPTY_INDEX)),
            artifact_type.is_some(),
        ))
    }

    async fn tags(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        ns: Option<&str>,
        n: Option<u32>,
        last: Option<&Tag>,
    ) -> Result<Response<Body>, ProxyError> {
        let action = ctx.decision.action();
        // cosign and Notation sign digests, not tags: unless Notary v1 is required a tag is
        // only a name, and every manifest request is verified by the digest it resolves to,
        // so the list is the upstream's (Notary v1 signs tags, and lists only those).
        let names_only = ctx
            .decision
            .trust()
            .is_some_and(|t| !t.verifier.tags_signed());
        if action != Action::Verify || names_only {
            self.metrics.verify().decision(action, None);
            let (bytes, link) = ctx
                .upstream
                .tags(ctx.repo, n.map(|n| n as usize), last.map(Tag::as_str))
                .await
                .map_err(|e| ctx.upstream_error(e, true, ctx.image))?;
            let mut response = json_response(StatusCode::OK, bytes, false);
            // Pass on a relative next-page link only; it must not send clients elsewhere.
            if let Some(link) = link.filter(|l| l.starts_with("</v2/") && ns.is_none()) {
                if let Ok(v) = header::HeaderValue::from_str(&link) {
                    response.headers_mut().insert(header::LINK, v);
                }
            }
            return Ok(response);
        }
        // Under verify only signed tags exist.
        let (verifier, query) = self.trust(ctx)?;
        let set = verifier
            .signed_set(&query)
            .await
            .map_err(|r| self.refuse(ctx, r))?;
        let after = last.map(Tag::as_str);
        let mut tags: Vec<&str> = set
            .tags
            .keys()
            .map(String::as_str)
            .filter(|t| after.is_none_or(|a| *t > a))
            .collect();
        let mut next = None;
        if let Some(n) = n {
            if tags.len() > n as usize {
                tags.truncate(n as usize);
                if let Some(last) = tags.last() {
                    let ns = ns.map(|ns| format!("&ns={ns}")).unwrap_or_default();
                    next = Some(format!(
                        "</v2/{name}/tags/list?n={n}&last={last}{ns}>; rel=\"next\""
                    ));
                }
            }
        }
        let body = serde_json::to_vec(&serde_json::json!({"name": name, "tags": tags}))
            .map_err(|e| ProxyError::Internal(e.to_string()))?;
        let mut response = json_response(StatusCode::OK, Bytes::from(body), false);
        if let Some(v) = next.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LINK, v);
        }
        Ok(response)
    }
}

/// An upstream blob fetch as the store runs it: the announced length and the body.
type BlobFetch = futures_util::future::BoxFuture<
    'static,
    Result<(Option<u64>, crate::upstream::BlobStream), UpstreamError>,
>;

/// What fetches `digest` from the request's upstream, for the store to run (single flight).
fn blob_fetch(ctx: &Ctx<'_>, digest: &Digest) -> impl FnOnce() -> BlobFetch + Send + 'static {
    let (upstream, repo, wanted) = (
        ctx.upstream.clone(),
        ctx.repo.to_owned(),
        digest.as_str().to_owned(),
    );
    move || {
        Box::pin(async move {
            let blob = upstream.blob(&repo, &wanted).await?;
            Ok((blob.length, blob.stream))
        })
    }
}

/// A blob's strong validator, as docker-registry sends it: `"<digest>"`.
fn etag(digest: &Digest) -> String {
    format!("\"{digest}\"")
}

/// The upstream error behind a failed fetch through the store, if that is what failed.
fn upstream_cause(e: &crate::cache::StoreError) -> Option<UpstreamError> {
    match e {
        crate::cache::StoreError::Upstream { source, .. } => {
            source.downcast_ref::<UpstreamError>().cloned()
        }
        _ => None,
    }
}

fn json_response(status: StatusCode, bytes: Bytes, head: bool) -> Response<Body> {
    let len = bytes.len();
    let mut response = Response::new(if head {
        body::empty()
    } else {
        body::full(bytes)
    });
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, len.into());
    h.insert(
        API_VERSION.0,
        header::HeaderValue::from_static(API_VERSION.1),
    );
    response
}

fn manifest_response(fetched: &Fetched, digest: &Digest, head: bool) -> Response<Body> {
    let len = fetched.bytes.len();
    let body = if head {
        body::empty()
    } else {
        body::full(fetched.bytes.clone())
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&fetched.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, len.into());
    if let Ok(v) = header::HeaderValue::from_str(digest.as_str()) {
        h.insert("Docker-Content-Digest", v.clone());
        if let Ok(etag) = header::HeaderValue::from_str(&format!("\"{digest}\"")) {
            h.insert(header::ETAG, etag);
        }
    }
    h.insert(
        API_VERSION.0,
        header::HeaderValue::from_static(API_VERSION.1),
    );
    response
}

fn blob_response(digest: &Digest, length: Option<u64>, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = length {
        h.insert(header::CONTENT_LENGTH, len.into());
    }
    if let Ok(v) = header::HeaderValue::from_str(digest.as_str()) {
        h.insert("Docker-Content-Digest", v);
    }
    if let Ok(v) = header::HeaderValue::from_str(&etag(digest)) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    h.insert(
        API_VERSION.0,
        header::HeaderValue::from_static(API_VERSION.1),
    );
    response
}

/// An index with no referrers, a valid answer every client handles.
const EMPTY_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// The referrers index of an upstream that could not filter it (the tag fallback): only
/// the descriptors of `artifact_type`, as the spec's filter would leave. An index that does
/// not parse is answered as empty.
fn filter_index(bytes: &[u8], artifact_type: &str) -> Bytes {
    let Ok(mut index) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Bytes::from_static(EMPTY_INDEX);
    };
    if let Some(manifests) = index
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
    {
        manifests.retain(|d| d.get("artifactType").and_then(|t| t.as_str()) == Some(artifact_type));
    }
    Bytes::from(serde_json::to_vec(&index).unwrap_or_else(|_| EMPTY_INDEX.to_vec()))
}

fn referrers_response(bytes: Bytes, filtered: bool) -> Response<Body> {
    let mut response = json_response(StatusCode::OK, bytes, false);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
    );
    // distribution-spec: a filter that was applied is announced.
    if filtered {
        h.insert(
            "OCI-Filters-Applied",
            header::HeaderValue::from_static("artifactType"),
        );
    }
    response
}
