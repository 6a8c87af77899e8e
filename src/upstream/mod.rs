//! The HTTP client the proxy pulls from upstream registries with.
//!
//! One [`Upstream`] per configured registry, each with its own connection pool. It speaks the
//! read side of the distribution API (`/v2/`, manifests, blobs, tags) and handles what a
//! registry puts between a client and its content:
//!
//! - **Auth.** On `401` the `WWW-Authenticate` challenge is answered: `Bearer` by fetching a
//!   token from the realm (distribution `docs/spec/auth/token.md`; basic credentials when
//!   configured and the realm may have them, anonymous otherwise), `Basic` with the
//!   credentials. Tokens are cached per scope until shortly before they expire (at most
//!   [`token::MAX_SLOTS`] scopes, least recently used evicted), and concurrent requests share
//!   one fetch. Once a registry has challenged, later requests send credentials up front,
//!   saving a round trip.
//! - **Whose realm.** The realm is the registry's word, and a hostile registry would name its
//!   own host to collect the password. The configured credentials go only to a realm on the
//!   upstream's own host (any port) or one listed in [`UpstreamConfig::token_realms`]
//!   (default for Docker Hub: `https://auth.docker.io/token`), and never over plain `http`
//!   unless the upstream itself is `http`. Any other realm is asked anonymously, with one
//!   warning per realm: a public image behind an anonymous token still pulls, a private one
//!   fails with the token service's refusal, and the credentials stay here.
//! - **Redirects.** Blob GETs are redirected to CDNs. reqwest drops `Authorization` when a
//!   redirect leaves the host, port or scheme (`tests/upstream_fakes.rs` proves it); this
//!   client also refuses `https` to `http` downgrades and stops after [`MAX_REDIRECTS`].
//! - **Limits.** Every body but a blob's is read through [`http_client::read_limited`], which
//!   holds its limit while the body streams whatever `Content-Length` says: manifests and
//!   referrers up to the caller's `max_size` (`limits.max_manifest_size`), tag lists up to
//!   [`TAGS_MAX_BYTES`], token responses up to [`TOKEN_MAX_BYTES`], error bodies up to 16 KiB.
//!   Requests other than blob bodies have a total deadline; blob bodies fail when no data
//!   arrives for `read_timeout` (their size is the caller's to bound: the descriptor's).
//! - **Errors** are [`UpstreamError`]: one variant per failure, safe to show to users.
//! - **Metrics.** An optional [`UpstreamObserver`] sees every response (status, time to
//!   headers), every failure without a usable response, the rate-limit headroom and each
//!   content fetch in flight.
//!
//! Nothing here verifies content: callers check digests (`content`) and signatures (`trust`).

mod auth;
pub(crate) mod challenge;
mod error;
mod response;
pub(crate) mod token;

use std::{
    any::Any,
    fmt,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK, WWW_AUTHENTICATE},
    HeaderValue, StatusCode,
};
use reqwest::Url;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use self::error::{fmt_bytes, UpstreamError};
use self::error::{from_reqwest, is_connection_reset, redact_url, Timeouts};
use self::response::idle_timeout;
use self::token::{Token, TokenCache};
use crate::http_client;
pub use crate::http_client::TokenRealm;
use crate::metrics::UpstreamErrorKind;

/// What manifest GETs accept: OCI manifest and index, Docker schema 2 manifest and list.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// What a referrers request accepts: an OCI image index.
const INDEX_ACCEPT: &str = "application/vnd.oci.image.index.v1+json";

/// Redirects followed per request. Docker Hub uses one (registry to CDN).
pub const MAX_REDIRECTS: usize = 5;

/// Largest tag list read. Listing is a passthrough for `allow` rules; this only bounds memory.
pub const TAGS_MAX_BYTES: u64 = 8 << 20;

/// Largest token response read, from a registry's or a notary server's token service; JWTs
/// are a few KiB.
pub const TOKEN_MAX_BYTES: u64 = 1 << 20;

/// Largest error body read for its OCI error message.
const ERROR_BODY_MAX_BYTES: u64 = 16 << 10;

/// Pages of the referrers API followed per listing (distribution-spec 1.1: a registry may
/// page the list with `Link: <...>; rel="next"`); what lies beyond is not read.
pub const REFERRERS_MAX_PAGES: usize = 16;

/// What the `max_size` of [`Upstream::manifest`] and [`Upstream::referrers`] is, in errors:
/// the proxy passes that configuration value.
const MANIFEST_LIMIT: &str = "limits.max_manifest_size";
/// The bound of a read whose size a descriptor gives.
const DESCRIPTOR_LIMIT: &str = "the size its descriptor gives";

/// The token service Docker Hub's registry names, allowed to receive its credentials when
/// `token_realms` is not configured.
pub const DOCKER_HUB_REALMS: &[&str] = &["https://auth.docker.io/token"];

/// How many withheld-credential warnings are remembered (one warning per realm).
const WARNED_REALMS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(16) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

/// Longest repository name or reference accepted (distribution caps names at 255).
const MAX_ARG_LEN: usize = 512;

/// `ratelimit_remaining` when no response has carried the header yet.
const RATELIMIT_UNKNOWN: u64 = u64::MAX;

/// A stream of blob chunks. Failures after the response started (cut connection, stall) are
/// `Err` items, after which the stream ends.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// Receives what happens on the wire, for metrics. `registry` is always the configured
/// registry name ([`UpstreamConfig::registry`]), so labels stay bounded. Calls happen on the
/// request path: implementations must be cheap. Every method defaults to doing nothing.
pub trait UpstreamObserver: Send + Sync {
    /// A response arrived (after redirects; before any body): its status and the time from
    /// sending the request to its headers. Error statuses (404, 429, 5xx) count here too.
    fn response(&self, registry: &str, status: StatusCode, elapsed: Duration) {
        let _ = (registry, status, elapsed);
    }
    /// A request failed without a usable response: connection, TLS, timeout, token service,
    /// redirect, or a body that broke off or exceeded its limit.
    fn error(&self, registry: &str, kind: UpstreamErrorKind) {
        let _ = (registry, kind);
    }
    /// The registry reported how many requests are left in its rate-limit window.
    fn ratelimit_remaining(&self, registry: &str, remaining: u64) {
        let _ = (registry, remaining);
    }
    /// A content fetch (a manifest, or a blob until its body ends or is dropped) starts. It
    /// is in flight until the returned guard is dropped.
    fn fetch_started(&self, registry: &str) -> Option<Box<dyn Any + Send + Sync>> {
        let _ = registry;
        None
    }
}

/// How to reach one upstream registry.
#[derive(Clone)]
pub struct UpstreamConfig {
    /// The registry name clients use for it, e.g. `docker.io`; used in errors and logs.
    pub registry: String,
    /// Base URL of its API, e.g. `https://registry-1.docker.io` (requests go to `{url}/v2/...`).
    pub url: String,
    /// User name for basic auth and token requests; requires `password`.
    pub username: Option<String>,
    /// Password or access token for `username`. Never printed: `Debug` redacts it.
    pub password: Option<String>,
    /// Extra trust anchors (PEM bundle) added to the platform roots, for a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Time allowed to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Total time for manifest, tag, ping and token requests, body included; for blobs, the
    /// time until response headers arrive.
    pub request_timeout: Duration,
    /// For blob bodies: the longest wait for the next chunk before the stream fails.
    pub read_timeout: Duration,
    /// Most requests in flight to this registry at once, each holding at most one
    /// connection (a blob counts until its body ends or is dropped); more wait for a slot
    /// within `request_timeout`. Idle pooled connections are capped to the same number.
    pub max_connections: usize,
    /// Told about responses, failures and fetches, for metrics.
    pub observer: Option<Arc<dyn UpstreamObserver>>,
    /// Token services besides the upstream's own host that may receive `username` and
    /// `password`; `None`: the default, [`DOCKER_HUB_REALMS`] when `url` is Docker Hub's
    /// ([`is_docker_hub`]) and nothing else otherwise.
    pub token_realms: Option<Vec<TokenRealm>>,
}

/// A manifest as the upstream served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes (digests are computed over these).
    pub bytes: Bytes,
    /// `Content-Type`, as sent.
    pub media_type: Option<String>,
    /// `Docker-Content-Digest`, as sent; a claim, not a verified fact.
    pub digest: Option<String>,
}

/// A referrers list as the upstream served it ([`Upstream::referrers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// The image index, exact bytes, unchecked: the referrers tag index, or the API's first
    /// page.
    pub bytes: Bytes,
    /// The API's further pages, in order, exact bytes, unchecked (at most
    /// [`REFERRERS_MAX_PAGES`] pages in all); empty for the tag fallback.
    pub more: Vec<Bytes>,
    /// Whether the registry applied the `artifactType` filter (`OCI-Filters-Applied`) to
    /// every page; the tag fallback never is filtered.
    pub filtered: bool,
    /// The referrers tag the index was read from, when the registry lacks the API; its
    /// digest is the SHA-256 of `bytes`.
    pub tag: Option<String>,
}

/// A blob body on its way.
pub struct Blob {
    /// `Content-Length` of the final (post-redirect) response, when known.
    pub length: Option<u64>,
    /// The body, in chunks.
    pub stream: BlobStream,
}

/// A client for one upstream registry. Cheap to clone: clones share the connection pool,
/// the token cache and the rate-limit gauge.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    registry: String,
    /// `url` without trailing `/`.
    base: String,
    base_url: Url,
    client: reqwest::Client,
    /// `Basic <base64(user:password)>`, marked sensitive.
    basic: Option<HeaderValue>,
    timeouts: Timeouts,
    /// How this registry last challenged us, so later requests authenticate up front.
    scheme: RwLock<Option<Scheme>>,
    tokens: TokenCache,
    ratelimit_remaining: AtomicU64,
    observer: Option<Arc<dyn UpstreamObserver>>,
    /// One permit per request in flight (`UpstreamConfig::max_connections`).
    slots: Arc<Semaphore>,
    /// Token services besides the upstream's host that may have the credentials.
    realms: Vec<TokenRealm>,
    /// Realms already warned about (credentials withheld), bounded: the realm is the peer's.
    warned: std::sync::Mutex<lru::LruCache<String, ()>>,
}

#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The credentials sent with a request.
enum Auth {
    Basic(HeaderValue),
    Bearer(Token),
}

/// One GET to the registry.
struct Get<'a> {
    url: Url,
    /// For errors: `manifest library/alpine:3.20`.
    what: String,
    /// The repository, for the default token scope `repository:<repo>:pull`.
    repo: Option<&'a str>,
    accept: Option<&'static str>,
    /// Whether `request_timeout` bounds the whole exchange (false for blobs: headers only).
    whole: bool,
}

// === impl UpstreamConfig ===

impl UpstreamConfig {
    /// A configuration with anonymous access, platform roots, default timeouts (connect
    /// 10 s, request 30 s, read 30 s) and at most 64 requests in flight.
    pub fn new(registry: impl Into<String>, url: impl Into<String>) -> Self {
        UpstreamConfig {
            registry: registry.into(),
            url: url.into(),
            username: None,
            password: None,
            ca_pem: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            max_connections: 64,
            observer: None,
            token_realms: None,
        }
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("registry", &self.registry)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_connections", &self.max_connections)
            .field("observer", &self.observer.is_some())
            .field("token_realms", &self.token_realms)
            .finish()
    }
}

// === impl Blob ===

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

// === impl Upstream ===

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("registry", &self.inner.registry)
            .field("url", &self.inner.base)
            .field("authenticated", &self.inner.basic.is_some())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Checks the configuration and builds the client (parsing `ca_pem`).
    pub fn new(cfg: UpstreamConfig) -> Result<Self, UpstreamError> {
        let registry = cfg.registry.clone();
        let bad = |detail: &str| UpstreamError::Config {
            registry: registry.clone(),
            detail: detail.to_owned(),
        };
        if cfg.registry.is_empty() {
            return Err(bad("the registry name is empty"));
        }
        let base = cfg.url.trim_end_matches('/').to_owned();
        let base_url = Url::parse(&base).map_err(|e| bad(&format!("url: {e}")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(bad("url must be an http:// or https:// URL with a host"));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(bad(
                "url must not contain credentials; use username and password",
            ));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(bad("url must not have a query or fragment"));
        }
        for (name, value) in [
            ("connect_timeout", cfg.connect_timeout),
            ("request_timeout", cfg.request_timeout),
            ("read_timeout", cfg.read_timeout),
        ] {
            if value.is_zero() {
                return Err(bad(&format!("{name} must be greater than zero")));
            }
        }
        if cfg.max_connections == 0 {
            return Err(bad("max_connections must be greater than zero"));
        }
        let basic = match (&cfg.username, &cfg.password) {
            (None, None) => None,
            (Some(user), Some(password)) => {
                if user.contains(':') {
                    return Err(bad("username must not contain `:`"));
                }
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| bad("credentials cannot be sent in a header"))?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => return Err(bad("username and password must be given together")),
        };

        let realms = match cfg.token_realms {
            Some(realms) => realms,
            None if is_docker_hub(&base_url) => DOCKER_HUB_REALMS
                .iter()
                .filter_map(|r| r.parse().ok())
                .collect(),
            None => Vec::new(),
        };

        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("trustgate/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.max_connections)
            .redirect(http_client::redirect_policy(MAX_REDIRECTS))
            // The CDN has no business knowing which registry URL sent the client there.
            .referer(false);
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(&format!("ca_pem is not a PEM certificate bundle: {e}")))?;
            if certs.is_empty() {
                return Err(bad("ca_pem holds no certificate"));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| bad(&format!("cannot build the HTTP client: {e}")))?;

        Ok(Upstream {
            inner: Arc::new(Inner {
                registry: cfg.registry,
                base,
                base_url,
                client,
                basic,
                timeouts: Timeouts {
                    connect: cfg.connect_timeout,
                    request: cfg.request_timeout,
                    read: cfg.read_timeout,
                },
                scheme: RwLock::new(None),
                tokens: TokenCache::default(),
                ratelimit_remaining: AtomicU64::new(RATELIMIT_UNKNOWN),
                observer: cfg.observer,
                slots: Arc::new(Semaphore::new(
                    cfg.max_connections.min(Semaphore::MAX_PERMITS),
                )),
                realms,
                warned: std::sync::Mutex::new(lru::LruCache::new(WARNED_REALMS)),
            }),
        })
    }

    /// The registry name this upstream serves, e.g. `docker.io`.
    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    /// The last `ratelimit-remaining` count the registry sent (Docker Hub:
    /// `ratelimit-remaining: 100;w=21600`), for a metrics gauge. `None` until one arrives.
    pub fn ratelimit_remaining(&self) -> Option<u64> {
        match self.inner.ratelimit_remaining.load(Ordering::Relaxed) {
            RATELIMIT_UNKNOWN => None,
            n => Some(n),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>` (a tag or a digest), accepting the OCI and
    /// Docker schema 2 manifest and index types ([`MANIFEST_ACCEPT`]). Reads at most
    /// `max_size` bytes, else [`UpstreamError::TooLarge`].
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        max_size: u64,
    ) -> Result<Manifest, UpstreamError> {
        self.check("repository", repo, is_repo)?;
        self.check("reference", reference, is_reference)?;
        let _inflight = self.fetch_started();
        let separator = if reference.contains(':') { '@' } else { ':' };
        let get = Get {
            url: self.url(&format!("/v2/{repo}/manifests/{reference}"))?,
            what: format!("manifest {repo}{separator}{reference}"),
            repo: Some(repo),
            accept: Some(MANIFEST_ACCEPT),
            whole: true,
        };
        let _slot = self.slot(&get.url).await?;
        let response = self.get(&get).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let media_type = header(CONTENT_TYPE.as_str());
        let digest = header("docker-content-digest");
        let bytes = self
            .read_limited(response, max_size, &get.what, MANIFEST_LIMIT)
            .await
            .inspect_err(|e| self.observe_error(e))?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `GET /v2/<repo>/blobs/<digest>`, following redirects to CDNs (without sending
    /// `Authorization` to another host). The body is not checked against `digest`: the caller
    /// must hash it. A stream that stalls for `read_timeout` yields
    /// [`UpstreamError::Timeout`]; one that breaks off yields [`UpstreamError::Body`].
    pub async fn blob(&self, repo: &str, digest: &str) -> Result<Blob, UpstreamError> {
        self.check("repository", repo, is_repo)?;
        self.check("digest", digest, is_reference)?;
        let inflight = self.fetch_started();
        let get = Get {
            url: self.url(&format!("/v2/{repo}/blobs/{digest}"))?,
            what: format!("blob {repo}@{digest}"),
            repo: Some(repo),
            accept: None,
            whole: false,
        };
        let slot = self.slot(&get.url).await?;
        let response = self.get(&get).await?;
        let length = response.content_length();
        let stream = idle_timeout(response, self.inner.timeouts);
        // The slot is held until the body ended or its reader went away.
        let stream: BlobStream = Box::pin(stream.inspect(move |_| {
            let _slot = &slot;
        }));
        let stream = match self.inner.observer.clone() {
            None => stream,
            Some(observer) => {
                let registry = self.inner.registry.clone();
                // The guard lives as long as the stream: the fetch is in flight until the
                // body ended or the reader went away.
                Box::pin(stream.inspect(move |item| {
                    let _in_flight = &inflight;
                    if let Err(e) = item {
                        if let Some(kind) = error_kind(e) {
                            observer.error(&registry, kind);
                        }
                    }
                }))
            }
        };
        Ok(Blob { length, stream })
    }

    /// A small blob whose size a descriptor gives (a signature payload, a sigstore bundle):
    /// `GET /v2/<repo>/blobs/<digest>` read whole into memory, at most `size` bytes, the whole
    /// exchange within `request_timeout` (a peer dripping a byte per `read_timeout` would
    /// otherwise hold it for as long as it likes). The caller checks the digest.
    pub async fn small_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
    ) -> Result<Bytes, UpstreamError> {
        self.check("repository", repo, is_repo)?;
        self.check("digest", digest, is_reference)?;
        let _inflight = self.fetch_started();
        let get = Get {
            url: self.url(&format!("/v2/{repo}/blobs/{digest}"))?,
            what: format!("blob {repo}@{digest}"),
            repo: Some(repo),
            accept: None,
            whole: true,
        };
        let _slot = self.slot(&get.url).await?;
        let response = self.get(&get).await?;
        self.read_limited(response, size, &get.what, DESCRIPTOR_LIMIT)
            .await
            .inspect_err(|e| self.observe_error(e))
    }

    /// `GET /v2/<repo>/tags/list?n=&last=`, passed through: the body (at most
    /// [`TAGS_MAX_BYTES`]) and the `Link` header for the next page, as the upstream wrote it
    /// (its URL points at the upstream; rewrite it before handing it to a client).
    pub async fn tags(
        &self,
        repo: &str,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<(Bytes, Option<String>), UpstreamError> {
        self.check("repository", repo, is_repo)?;
        let mut url = self.url(&format!("/v2/{repo}/tags/list"))?;
        if n.is_some() || last.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(n) = n {
                query.append_pair("n", &n.to_string());
            }
            if let Some(last) = last {
                query.append_pair("last", last);
            }
        }
        let get = Get {
            url,
            what: format!("tag list of {repo}"),
            repo: Some(repo),
            accept: Some("application/json"),
            whole: true,
        };
        let _slot = self.slot(&get.url).await?;
        let response = self.get(&get).await?;
        let link = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self
            .read_limited(response, TAGS_MAX_BYTES, &get.what, "the tag list limit")
            .await
            .inspect_err(|e| self.observe_error(e))?;
        Ok((body, link))
    }

    /// The referrers of the manifest `digest` in `repo`, as OCI image indexes: `GET
    /// /v2/<repo>/referrers/<digest>?artifactType=` (distribution-spec 1.1, end-12) and each
    /// next page its `Link` header names (relative, or on the upstream's own origin, the same
    /// path; at most [`REFERRERS_MAX_PAGES`]), and when the registry does not have that API
    /// (`404`), the referrers tag schema fallback: the index tagged `<alg>-<hex>`
    /// ("Unavailable Referrers API"). `Ok(None)` when neither exists: no referrers. Reads at
    /// most `max_size` bytes in all pages together. The indexes are not checked: the caller
    /// verifies each descriptor it follows (the artifact's digest and `subject`).
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: Option<&str>,
        max_size: u64,
    ) -> Result<Option<Referrers>, UpstreamError> {
        self.check("repository", repo, is_repo)?;
        self.check("digest", digest, is_reference)?;
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return Err(UpstreamError::InvalidArgument {
                registry: self.inner.registry.clone(),
                what: "digest",
                value: digest.chars().take(128).collect(),
            });
        };
        let mut url = self.url(&format!("/v2/{repo}/referrers/{digest}"))?;
        if let Some(artifact_type) = artifact_type {
            url.query_pairs_mut()
                .append_pair("artifactType", artifact_type);
        }
        let what = format!("referrers of {repo}@{digest}");
        let mut api: Option<Referrers> = None;
        let mut next = Some(url.clone());
        let mut budget = max_size;
        let mut pages = 0;
        while let Some(page_url) = next.take() {
            if pages == REFERRERS_MAX_PAGES {
                tracing::debug!(what = %what, pages, "further referrers pages not read");
                break;
            }
            pages += 1;
            let get = Get {
                url: page_url,
                what: what.clone(),
                repo: Some(repo),
                accept: Some(INDEX_ACCEPT),
                whole: true,
            };
            let _inflight = self.fetch_started();
            let _slot = self.slot(&get.url).await?;
            let response = match self.get(&get).await {
                Ok(response) => response,
                // The spec's signal that the registry lacks the API (distribution 2.8
                // answers so); a registry that has it never answers 404.
                Err(UpstreamError::NotFound { .. }) if api.is_none() => break,
                Err(e) => return Err(e),
            };
            let filtered = response
                .headers()
                .get("oci-filters-applied")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|f| f.trim() == "artifactType"));
            next =
                next_page(response.url(), response.headers(), &url).filter(|n| self.same_origin(n));
            let bytes = self
                .read_limited(response, budget, &get.what, MANIFEST_LIMIT)
                .await
                .inspect_err(|e| self.observe_error(e))?;
            budget -= bytes.len() as u64;
            match &mut api {
                None => {
                    api = Some(Referrers {
                        bytes,
                        more: Vec::new(),
                        filtered,
                        tag: None,
                    })
                }
                Some(api) => {
                    api.more.push(bytes);
                    api.filtered &= filtered;
                }
            }
        }
        if api.is_some() {
            return Ok(api);
        }
        // The referrers tag schema: the algorithm truncated to 32 characters, `-`, the
        // encoded part truncated to 64 (both already within the tag alphabet here).
        let tag = format!(
            "{}-{}",
            &algorithm[..algorithm.len().min(32)],
            &hex[..hex.len().min(64)]
        );
        match self.manifest(repo, &tag, max_size).await {
            Ok(m) => Ok(Some(Referrers {
                bytes: m.bytes,
                more: Vec::new(),
                filtered: false,
                tag: Some(tag),
            })),
            Err(UpstreamError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/`: the registry is reachable and, when it asks for them, the credentials work.
    pub async fn ping(&self) -> Result<(), UpstreamError> {
        let get = Get {
            url: self.url("/v2/")?,
            what: "the API root /v2/".to_owned(),
            repo: None,
            accept: Some("application/json"),
            whole: true,
        };
        let _slot = self.slot(&get.url).await?;
        self.get(&get).await.map(drop)
    }

    // --- the request path ---

    /// Sends `get`, answering one auth challenge, and returns a 2xx response or the error its
    /// status means.
    async fn get(&self, get: &Get<'_>) -> Result<reqwest::Response, UpstreamError> {
        let mut auth = self
            .auth_up_front(get.repo)
            .await
            .inspect_err(|e| self.observe_error(e))?;
        let mut answered = false;
        loop {
            let response = self.send(get, auth.as_ref()).await?;
            let status = response.status();
            tracing::debug!(
                registry = %self.inner.registry,
                url = %redact_url(response.url()),
                status = status.as_u16(),
                "upstream response"
            );
            if self.same_origin(response.url()) {
                self.note_ratelimit(&response);
            }
            if status.is_success() {
                return Ok(response);
            }
            // A 401 from a CDN after a redirect is not the registry's challenge to answer.
            if status == StatusCode::UNAUTHORIZED && !answered && self.same_origin(response.url()) {
                let challenge = challenge::select(
                    response
                        .headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                );
                if let Some(challenge) = challenge {
                    let answer = self.answer(challenge, get, auth.as_ref()).await;
                    auth = Some(answer.inspect_err(|e| self.observe_error(e))?);
                    answered = true;
                    continue;
                }
            }
            return Err(self.status_error(response, &get.what, auth.as_ref()).await);
        }
    }

    /// One exchange, retried once when the connection was cut before any response (a pooled
    /// connection the server had closed). Only GETs pass through here, so a retry is safe.
    async fn send(
        &self,
        get: &Get<'_>,
        auth: Option<&Auth>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let timeouts = self.inner.timeouts;
        let mut retried = false;
        loop {
            let started = Instant::now();
            let mut request = self.inner.client.get(get.url.clone());
            if let Some(accept) = get.accept {
                request = request.header(ACCEPT, accept);
            }
            match auth {
                Some(Auth::Basic(value)) => request = request.header(AUTHORIZATION, value.clone()),
                Some(Auth::Bearer(token)) => {
                    request = request.header(AUTHORIZATION, token.header().clone());
                }
                None => {}
            }
            let result = if get.whole {
                request.timeout(timeouts.request).send().await
            } else {
                // Only the wait for headers is bounded; the body has its idle timeout.
                tokio::time::timeout(timeouts.request, request.send())
                    .await
                    .map_err(|_| UpstreamError::Timeout {
                        url: redact_url(&get.url),
                        phase: "a response",
                        after: timeouts.request,
                    })
                    .inspect_err(|e| self.observe_error(e))?
            };
            match result {
                Ok(response) => {
                    if let Some(observer) = &self.inner.observer {
                        observer.response(
                            &self.inner.registry,
                            response.status(),
                            started.elapsed(),
                        );
                    }
                    return Ok(response);
                }
                Err(err) if !retried && is_connection_reset(&err) => {
                    tracing::debug!(
                        registry = %self.inner.registry,
                        url = %redact_url(&get.url),
                        "connection reset before a response; retrying once"
                    );
                    retried = true;
                }
                Err(err) => {
                    // reqwest knows a refused redirect; the error it becomes does not.
                    let redirect = err.is_redirect();
                    let error = from_reqwest(err, &get.url, &timeouts);
                    if redirect {
                        self.observe(UpstreamErrorKind::Redirect);
                    } else {
                        self.observe_error(&error);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Waits, within `request_timeout`, for one of the registry's request slots
    /// ([`UpstreamConfig::max_connections`]).
    async fn slot(&self, url: &Url) -> Result<OwnedSemaphorePermit, UpstreamError> {
        let request = self.inner.timeouts.request;
        let acquire = self.inner.slots.clone().acquire_owned();
        match tokio::time::timeout(request, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; only the wait can fail.
            _ => {
                let error = UpstreamError::Timeout {
                    url: redact_url(url),
                    phase: "a free connection slot",
                    after: request,
                };
                self.observe_error(&error);
                Err(error)
            }
        }
    }

    // --- observation ---

    fn observe(&self, kind: UpstreamErrorKind) {
        if let Some(observer) = &self.inner.observer {
            observer.error(&self.inner.registry, kind);
        }
    }

    /// Reports a failure without a usable response; answers (404, 5xx...) were reported as
    /// responses already.
    fn observe_error(&self, error: &UpstreamError) {
        if let Some(kind) = error_kind(error) {
            self.observe(kind);
        }
    }

    fn fetch_started(&self) -> Option<Box<dyn Any + Send + Sync>> {
        self.inner
            .observer
            .as_ref()
            .and_then(|observer| observer.fetch_started(&self.inner.registry))
    }

    // --- helpers ---

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        Url::parse(&format!("{}{path}", self.inner.base)).map_err(|e| UpstreamError::Config {
            registry: self.inner.registry.clone(),
            detail: format!("cannot build a request URL: {e}"),
        })
    }

    fn same_origin(&self, url: &Url) -> bool {
        let base = &self.inner.base_url;
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    /// Refuses arguments that would change the request path (`..`, `?`, `#`, `%`): callers
    /// pass validated names, this is defence in depth.
    fn check(
        &self,
        what: &'static str,
        value: &str,
        valid: fn(&str) -> bool,
    ) -> Result<(), UpstreamError> {
        if value.len() <= MAX_ARG_LEN && valid(value) {
            return Ok(());
        }
        Err(UpstreamError::InvalidArgument {
            registry: self.inner.registry.clone(),
            what,
            value: value.chars().take(128).collect(),
        })
    }
}

/// The metrics kind of a failure without a usable response; `None` for errors that are an
/// answer from the registry (counted by status) or were never sent.
fn error_kind(error: &UpstreamError) -> Option<UpstreamErrorKind> {
    use UpstreamError as E;
    Some(match error {
        E::Timeout { .. } => UpstreamErrorKind::Timeout,
        E::Unreachable { .. } | E::TlsExpired { .. } | E::TlsUntrusted { .. } => {
            UpstreamErrorKind::Connect
        }
        E::Auth { .. } => UpstreamErrorKind::Auth,
        E::Body { .. } => UpstreamErrorKind::Body,
        E::TooLarge { .. } => UpstreamErrorKind::TooLarge,
        E::NotFound { .. }
        | E::Denied { .. }
        | E::RateLimited { .. }
        | E::Status { .. }
        | E::InvalidArgument { .. }
        | E::Config { .. } => return None,
    })
}

/// Whether an upstream URL is Docker Hub's API (`registry-1.docker.io`, `index.docker.io`).
/// The URL decides, not the registry name: credentials for a mirror configured as
/// `docker.io` must not go to Docker Hub's token service.
pub fn is_docker_hub(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("registry-1.docker.io" | "index.docker.io")
    )
}

/// `/`-separated path components of `[a-z0-9._-]`, none empty, `.` or `..`.
fn is_repo(repo: &str) -> bool {
    repo.split('/').all(|part| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
    })
}

/// A tag or a digest: `[A-Za-z0-9._:+=-]`, not empty, `.` or `..`.
fn is_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference != "."
        && reference != ".."
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:+=-".contains(&b))
}

/// The next page a listing's `Link` header names (RFC 8288, `rel="next"`), resolved against
/// the URL that answered; `None` unless it is the listing's own path (`first`): a next page
/// is the same list from another cursor, never another resource. The caller checks the
/// origin.
fn next_page(answered: &Url, headers: &reqwest::header::HeaderMap, first: &Url) -> Option<Url> {
    let next = headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
            params
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("rel="))
                .any(|rel| rel.trim_matches('"').split(' ').any(|r| r == "next"))
                .then_some(target)
        })?;
    let url = answered.join(next).ok()?;
    (url.path() == first.path() && url != *answered).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_checks() {
        for ok in ["library/alpine", "a", "my-org/sub.group/img_1", "a/b/c/d"] {
            assert!(is_repo(ok), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "../x", "a/./b", "Alpine", "a?b", "a#b", "a%2f", "a b",
        ] {
            assert!(!is_repo(bad), "{bad}");
        }
        for ok in ["latest", "v1.2.3", "sha256:abc123", "x+y=z", "A_b-c"] {
            assert!(is_reference(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a?x", "a#", "a%20", "a b"] {
            assert!(!is_reference(bad), "{bad}");
        }
    }

    #[test]
    fn config_is_checked() {
        type Change = fn(&mut UpstreamConfig);
        let cases: [(Change, &str); 7] = [
            (|c| c.url = "ftp://x".to_owned(), "http:// or https://"),
            (|c| c.url = "not a url".to_owned(), "url:"),
            (|c| c.url = "https://u:p@x".to_owned(), "credentials"),
            (|c| c.url = "https://x/?q=1".to_owned(), "query"),
            (|c| c.username = Some("u".to_owned()), "together"),
            (|c| c.read_timeout = Duration::ZERO, "read_timeout"),
            (|c| c.ca_pem = Some(b"junk".to_vec()), "ca_pem"),
        ];
        for (change, want) in cases {
            let mut cfg = UpstreamConfig::new("r.example", "https://r.example/");
            change(&mut cfg);
            let err = Upstream::new(cfg).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
        let up = Upstream::new(UpstreamConfig::new("r.example", "https://r.example/")).unwrap();
        assert_eq!(up.registry(), "r.example");
        assert_eq!(up.ratelimit_remaining(), None);
    }

    /// The proxy runs these futures on a multi-threaded runtime (hyper handlers, spawned
    /// fetches shared by concurrent misses): they must be `Send`, and the client `Sync`.
    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: &T) {}
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Upstream>();
        let up = Upstream::new(UpstreamConfig::new("r.example", "https://r.example")).unwrap();
        send(&up.manifest("a", "b", 1));
        send(&up.blob("a", "sha256:b"));
        send(&up.tags("a", None, None));
        send(&up.referrers("a", "sha256:b", None, 1));
        send(&up.ping());
    }

    /// Records observer calls as text, and fetches in flight.
    #[derive(Default)]
    struct Recorder {
        events: std::sync::Mutex<Vec<String>>,
        inflight: Arc<std::sync::atomic::AtomicI64>,
    }

    struct InFlight(Arc<std::sync::atomic::AtomicI64>);

    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Recorder {
        fn push(&self, event: String) {
            self.events.lock().unwrap().push(event);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.events.lock().unwrap())
        }
        fn inflight(&self) -> i64 {
            self.inflight.load(Ordering::SeqCst)
        }
    }

    impl UpstreamObserver for Recorder {
        fn response(&self, registry: &str, status: StatusCode, _elapsed: Duration) {
            self.push(format!("{registry} response {}", status.as_u16()));
        }
        fn error(&self, registry: &str, kind: UpstreamErrorKind) {
            self.push(format!("{registry} error {kind}"));
        }
        fn ratelimit_remaining(&self, registry: &str, remaining: u64) {
            self.push(format!("{registry} ratelimit {remaining}"));
        }
        fn fetch_started(&self, _registry: &str) -> Option<Box<dyn Any + Send + Sync>> {
            self.inflight.fetch_add(1, Ordering::SeqCst);
            Some(Box::new(InFlight(self.inflight.clone())))
        }
    }

    /// A registry on loopback answering from a fixed table, one request per connection.
    async fn canned_registry() -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, extra, body) = match path.as_str() {
                        "/v2/r/manifests/t" => (
                            "200 OK",
                            "content-type: application/vnd.oci.image.manifest.v1+json\r\n\
                             ratelimit-remaining: 42;w=21600\r\n",
                            "{}",
                        ),
                        "/v2/r/blobs/sha256:aa" => ("200 OK", "", "blob bytes"),
                        _ => (
                            "404 Not Found",
                            "",
                            r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#,
                        ),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn observed(url: &str) -> (Upstream, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let mut cfg = UpstreamConfig::new("r.example", url);
        cfg.observer = Some(recorder.clone());
        (Upstream::new(cfg).unwrap(), recorder)
    }

    #[tokio::test]
    async fn observer_sees_responses_errors_ratelimits_and_fetches() {
        let (up, rec) = observed(&canned_registry().await);

        up.manifest("r", "t", 1 << 20).await.unwrap();
        assert_eq!(
            rec.take(),
            ["r.example response 200", "r.example ratelimit 42"]
        );
        assert_eq!(rec.inflight(), 0, "a manifest fetch ends with the call");

        // An answer is a response, not an error.
        let err = up.manifest("r", "missing", 1 << 20).await.unwrap_err();
        assert!(matches!(err, UpstreamError::NotFound { .. }), "{err}");
        assert_eq!(rec.take(), ["r.example response 404"]);

        // A blob is in flight until its body has been read and the stream dropped.
        let blob = up.blob("r", "sha256:aa").await.unwrap();
        assert_eq!(rec.inflight(), 1);
        let body: Vec<Bytes> = blob.stream.map(Result::unwrap).collect().await;
        assert_eq!(body.concat(), b"blob bytes");
        assert_eq!(rec.inflight(), 0);
        assert_eq!(rec.take(), ["r.example response 200"]);

        // Nothing listens: a connect error, no response.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let (down, rec) = observed(&format!("http://{closed}"));
        let err = down.manifest("r", "t", 1 << 20).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err}");
        assert_eq!(rec.take(), ["r.example error connect"]);
        assert_eq!(rec.inflight(), 0);
        // Arguments refused before sending anything are no upstream error.
        assert!(down.manifest("../x", "t", 1).await.is_err());
        assert!(rec.take().is_empty());
    }

    #[test]
    fn error_kinds_for_metrics() {
        let url = || "http://r.example/v2/".to_owned();
        let cases = [
            (
                UpstreamError::Timeout {
                    url: url(),
                    phase: "a response",
                    after: Duration::from_secs(1),
                },
                Some(UpstreamErrorKind::Timeout),
            ),
            (
                UpstreamError::TlsUntrusted {
                    url: url(),
                    detail: String::new(),
                },
                Some(UpstreamErrorKind::Connect),
            ),
            (
                UpstreamError::Body {
                    url: url(),
                    detail: String::new(),
                },
                Some(UpstreamErrorKind::Body),
            ),
            (
                UpstreamError::Auth {
                    registry: "r".to_owned(),
                    realm: url(),
                    detail: String::new(),
                },
                Some(UpstreamErrorKind::Auth),
            ),
            (
                UpstreamError::TooLarge {
                    what: "manifest r:t".to_owned(),
                    url: url(),
                    limit: 1,
                    bound: MANIFEST_LIMIT,
                },
                Some(UpstreamErrorKind::TooLarge),
            ),
            (
                UpstreamError::Status {
                    registry: "r".to_owned(),
                    what: "x".to_owned(),
                    status: 503,
                    detail: String::new(),
                },
                None,
            ),
            (
                UpstreamError::RateLimited {
                    registry: "r".to_owned(),
                    retry_after: None,
                },
                None,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error_kind(&error), kind, "{error}");
        }
    }

    #[test]
    fn credentials_go_to_the_upstreams_host_and_listed_realms_only() {
        let url = |s: &str| Url::parse(s).unwrap();
        let with = |base: &str, realms: Option<&[&str]>| {
            let mut cfg = UpstreamConfig::new("r.example", base);
            cfg.username = Some("alice".to_owned());
            cfg.password = Some("pw".to_owned());
            cfg.token_realms = realms.map(|r| r.iter().map(|r| r.parse().unwrap()).collect());
            Upstream::new(cfg).unwrap()
        };
        // Docker Hub by default: its auth host, nothing else.
        let hub = with("https://registry-1.docker.io", None);
        assert_eq!(
            hub.withhold_credentials(&url("https://auth.docker.io/token")),
            None
        );
        for bad in [
            "https://auth.docker.io.evil.example/token",
            "https://evil.example/token",
            "http://auth.docker.io/token",
        ] {
            assert!(hub.withhold_credentials(&url(bad)).is_some(), "{bad}");
        }
        // Own host, any port and path; never a step down to http.
        let own = with("https://r.example:5000", None);
        assert_eq!(
            own.withhold_credentials(&url("https://r.example:5001/auth")),
            None
        );
        assert!(own
            .withhold_credentials(&url("https://auth.docker.io/token"))
            .is_some());
        assert!(own
            .withhold_credentials(&url("http://r.example/auth"))
            .unwrap()
            .contains("plain http"));
        // Listed realms; an explicit list replaces Docker Hub's default.
        let listed = with(
            "https://r.example",
            Some(&["auth.example", "https://sso.example/t"]),
        );
        for ok in ["https://auth.example/x", "https://sso.example/t/v2"] {
            assert_eq!(listed.withhold_credentials(&url(ok)), None, "{ok}");
        }
        assert!(listed
            .withhold_credentials(&url("https://sso.example/other"))
            .is_some());
        let replaced = with("https://registry-1.docker.io", Some(&[]));
        assert!(replaced
            .withhold_credentials(&url("https://auth.docker.io/token"))
            .is_some());
        // A plain-http upstream may use a plain-http realm it allows.
        let plain = with("http://127.0.0.1:5000", Some(&["localhost:5001"]));
        assert_eq!(
            plain.withhold_credentials(&url("http://localhost:5001/token")),
            None
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut cfg = UpstreamConfig::new("r.example", "https://r.example");
        cfg.username = Some("alice".to_owned());
        cfg.password = Some("hunter2".to_owned());
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
        let up = Upstream::new(cfg).unwrap();
        let shown = format!("{up:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("aHVudGVy"),
            "{shown}"
        );
    }
}
