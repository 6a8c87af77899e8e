//! The HTTP client the proxy pulls from upstream registries with.
//!
//! One [`Upstream`] per configured registry, each with its own connection pool. It speaks the
//! read side of the distribution API (`/v2/`, manifests, blobs, tags) and handles what a
//! registry puts between a client and its content:
//!
//! - **Auth.** On `401` the `WWW-Authenticate` challenge is answered: `Bearer` by fetching a
//!   token from the realm (distribution `docs/spec/auth/token.md`; basic credentials when
//!   configured, anonymous otherwise), `Basic` with the credentials. Tokens are cached per
//!   scope until shortly before they expire, and concurrent requests share one fetch. Once a
//!   registry has challenged, later requests send credentials up front, saving a round trip.
//! - **Redirects.** Blob GETs are redirected to CDNs. reqwest drops `Authorization` when a
//!   redirect leaves the host, port or scheme (`tests/upstream_fakes.rs` proves it); this
//!   client also refuses `https` to `http` downgrades and stops after [`MAX_REDIRECTS`].
//! - **Limits.** Manifests and tags are read up to a byte limit; requests other than blob
//!   bodies have a total deadline; blob bodies fail when no data arrives for `read_timeout`.
//! - **Errors** are [`UpstreamError`]: one variant per failure, safe to show to users.
//!
//! Nothing here verifies content: callers check digests (`content`) and signatures (`trust`).

mod auth;
mod challenge;
mod error;
mod response;
mod token;

use std::{
    fmt,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use http::{
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK, WWW_AUTHENTICATE},
    HeaderValue, StatusCode,
};
use reqwest::Url;

pub use self::error::UpstreamError;
use self::error::{from_reqwest, is_connection_reset, redact_url, Timeouts};
use self::response::idle_timeout;
use self::token::{Token, TokenCache};

/// What manifest GETs accept: OCI manifest and index, Docker schema 2 manifest and list.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Redirects followed per request. Docker Hub uses one (registry to CDN).
pub const MAX_REDIRECTS: usize = 5;

/// Largest tag list read. Listing is a passthrough for `allow` rules; this only bounds memory.
pub const TAGS_MAX_BYTES: u64 = 8 << 20;

/// Largest token response read; JWTs are a few KiB.
const TOKEN_MAX_BYTES: u64 = 1 << 20;

/// Largest error body read for its OCI error message.
const ERROR_BODY_MAX_BYTES: u64 = 16 << 10;

/// Longest repository name or reference accepted (distribution caps names at 255).
const MAX_ARG_LEN: usize = 512;

/// `ratelimit_remaining` when no response has carried the header yet.
const RATELIMIT_UNKNOWN: u64 = u64::MAX;

/// A stream of blob chunks. Failures after the response started (cut connection, stall) are
/// `Err` items, after which the stream ends.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

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
    /// A configuration with anonymous access, platform roots and default timeouts
    /// (connect 10 s, request 30 s, read 30 s).
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

        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("trustgate/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(cfg.connect_timeout)
            .redirect(redirect_policy())
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
        let separator = if reference.contains(':') { '@' } else { ':' };
        let get = Get {
            url: self.url(&format!("/v2/{repo}/manifests/{reference}"))?,
            what: format!("manifest {repo}{separator}{reference}"),
            repo: Some(repo),
            accept: Some(MANIFEST_ACCEPT),
            whole: true,
        };
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
        let bytes = self.read_limited(response, max_size).await?;
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
        let get = Get {
            url: self.url(&format!("/v2/{repo}/blobs/{digest}"))?,
            what: format!("blob {repo}@{digest}"),
            repo: Some(repo),
            accept: None,
            whole: false,
        };
        let response = self.get(&get).await?;
        Ok(Blob {
            length: response.content_length(),
            stream: idle_timeout(response, self.inner.timeouts),
        })
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
        let response = self.get(&get).await?;
        let link = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.read_limited(response, TAGS_MAX_BYTES).await?;
        Ok((body, link))
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
        self.get(&get).await.map(drop)
    }

    // --- the request path ---

    /// Sends `get`, answering one auth challenge, and returns a 2xx response or the error its
    /// status means.
    async fn get(&self, get: &Get<'_>) -> Result<reqwest::Response, UpstreamError> {
        let mut auth = self.auth_up_front(get.repo).await?;
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
                    auth = Some(self.answer(challenge, get, auth.as_ref()).await?);
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
                    })?
            };
            match result {
                Ok(response) => return Ok(response),
                Err(err) if !retried && is_connection_reset(&err) => {
                    tracing::debug!(
                        registry = %self.inner.registry,
                        url = %redact_url(&get.url),
                        "connection reset before a response; retrying once"
                    );
                    retried = true;
                }
                Err(err) => return Err(from_reqwest(err, &get.url, &timeouts)),
            }
        }
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

/// Follows at most [`MAX_REDIRECTS`] redirects and never from `https` to `http`: a blob's
/// content is checked by digest anyway, but a private image's bytes should not travel in
/// clear because a redirect said so.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt
            .previous()
            .last()
            .is_some_and(|prev| prev.scheme() == "https")
            && attempt.url().scheme() == "http";
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if downgrade {
            attempt.error("refusing a redirect from https to http")
        } else {
            attempt.follow()
        }
    })
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
        send(&up.ping());
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
