//! Client authentication: who is asking, before the proxy decides what they get.
//!
//! The [`AuthLayer`] sits in the server stack inside request id and trace (so refusals are
//! logged and counted like any answer) and outside the handler. For `/v2/*` it finds the
//! [`Principal`] and inserts it into the request's extensions, or answers `401` with an OCI
//! `UNAUTHORIZED` body and a challenge. It also serves the token endpoint, `GET /token`.
//!
//! Credentials, in the order they are tried:
//! - a client certificate verified in the TLS handshake (`auth.client_certificates`, see
//!   [`ClientCertificate`]): its subject is looked up in the configured principals. A
//!   request on a connection with a verified certificate is that certificate's principal
//!   and nothing else: the certificate wins over any `Authorization` header, and a subject
//!   no principal names is refused (`unknown_certificate`), never served as anonymous or
//!   by the header;
//! - `Authorization: Basic` checked against an htpasswd file (bcrypt entries only), with no
//!   user-name oracle, a short cache of successful checks, and failed attempts throttled per
//!   client address (see [`login`]);
//! - `Authorization: Bearer` with a static token from `auth.tokens`;
//! - `Authorization: Bearer` with a token from `/token` (see [`token`]): signature, expiry,
//!   and a scope that covers the repository of the request and the `pull` action;
//! - none: served as [`Principal::anonymous`] only when anonymous access is on.
//!
//! The token flow follows distribution's `docs/spec/auth/token.md`, so `docker login`,
//! `podman login` and `skopeo --creds` work unchanged: `/v2/` without credentials answers
//! `401` with `WWW-Authenticate: Bearer realm="<scheme>://<host>/token",service="trustgate"`;
//! the client asks the realm with Basic credentials (or on a connection with a verified
//! client certificate) and retries with the token.
//!
//! A token carries only what its principal may pull: as distribution's
//! `docs/spec/auth/scope.md` has it, the token server grants the intersection of the scopes
//! asked for and the access the principal has, and leaves the rest out of the `access` claim
//! (the token is still issued). `/token` does not know the upstream a request will go to
//! (`?ns=` is not on the token request), so a `repository:<name>:pull` scope is granted when
//! `auth.access` lets the principal pull `<name>` from at least one configured upstream, by
//! the name mapping the proxy pulls with. A request whose token lacks its repository's scope
//! is a `401` `insufficient_scope` (the client asks for a new token) unless the principal may
//! pull that name from no upstream at all: then it is let through as that principal, and the
//! handler's access check answers the clear `403` `DENIED` a new token could not change.
//!
//! Secrets (passwords, hashes, tokens, the signing key) never reach logs, metrics or
//! `Debug`: they are [`Secret`]s or are kept in types whose `Debug` omits them.

pub mod login;
pub mod rate;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use self::token::{Access, Claims, TokenError, TokenKey};
use crate::body::{self, Body, BoxError};
use crate::config::{AccessRule, Secret};
use crate::metrics::HttpMetrics;
use crate::oci::error::{error_body, OciErrorCode};

/// The `service` trustgate names in its challenges and tokens.
pub const SERVICE: &str = "trustgate";

/// Who a request is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user or token name (`anonymous` for requests without credentials).
    pub name: String,
    /// Groups the principal belongs to (for access rules).
    pub groups: Vec<String>,
}

/// The client certificate verified in a connection's TLS handshake; the listener inserts it
/// into the extensions of every request on that connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate's subject as RFC 4514 writes it, most specific attribute first
    /// (`CN=ci-runner,O=Example`); empty when it could not be decoded.
    pub subject: String,
}

/// The runtime authentication settings, built by `Config::auth`.
pub struct Auth {
    /// Requests without credentials are served as [`Principal::anonymous`].
    pub anonymous: bool,
    /// htpasswd users and how their passwords are checked.
    passwords: login::Passwords,
    /// Failed Basic logins by client address.
    logins: login::LoginThrottle,
    /// Static bearer tokens: `(token, principal name)`.
    tokens: Vec<(Secret, String)>,
    /// The key `/token` signs with; no token endpoint without one.
    key: Option<TokenKey>,
    /// Lifetime of issued tokens.
    ttl: Duration,
    /// Whether the registry listener speaks TLS (the scheme of the realm).
    tls: bool,
    /// Group name → members.
    groups: BTreeMap<String, Vec<String>>,
    /// Who may pull what; `None`: everyone everything.
    access: Option<Arc<[AccessRule]>>,
    /// Per-principal token buckets; `None`: unlimited.
    rate: Option<rate::RateLimiter>,
    /// Client certificate subject → principal.
    certificates: HashMap<String, Principal>,
    /// The registries of the configured upstreams: a token scope is granted when the
    /// principal may pull the name from one of them. Must name every upstream, or a
    /// repository denied here could be allowed where a request goes.
    registries: Vec<String>,
}

/// What a request says about who sends it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller<'a> {
    /// Its headers (`Authorization`).
    pub headers: Option<&'a HeaderMap>,
    /// The client certificate verified on its connection.
    pub certificate: Option<&'a ClientCertificate>,
    /// The client's address (the listener's [`crate::server::RemoteAddr`]).
    pub remote: Option<IpAddr>,
}

/// What the auth layer puts into a request's extensions besides the [`Principal`]: the
/// principal with the access rules, for the handler to ask once it knows the registry.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Who is asking.
    pub principal: Principal,
    access: Option<Arc<[AccessRule]>>,
}

// === impl Grant ===

impl Grant {
    /// Whether the principal may pull `registry/repository`.
    pub fn may_pull(&self, registry: &str, repository: &str) -> bool {
        let Some(rules) = &self.access else {
            return true;
        };
        rules.iter().any(|rule| {
            rule.names(&self.principal.name, &self.principal.groups)
                && rule.pull.iter().any(|p| p.matches(registry, repository))
        })
    }

    /// Whether the principal may pull `name`, as a client names it, from at least one of
    /// `registries`, each mapping the name the way the proxy does when it pulls
    /// ([`crate::proxy::upstream_repo`]: `alpine` is `library/alpine` on Docker Hub).
    pub fn may_pull_anywhere(&self, registries: &[String], name: &str) -> bool {
        self.access.is_none()
            || registries
                .iter()
                .any(|r| self.may_pull(r, &crate::proxy::upstream_repo(r, name)))
    }
}

/// Why a request was refused; the label of `trustgate_auth_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No credentials and anonymous access is off.
    MissingCredentials,
    /// Basic credentials naming a user the htpasswd file does not have.
    UnknownUser,
    /// Basic credentials with the wrong password.
    BadPassword,
    /// A bearer token that is neither a static token nor a valid signed one.
    BadToken,
    /// A signed token past its expiry.
    ExpiredToken,
    /// A valid token that does not cover this repository and `pull`.
    InsufficientScope,
    /// A verified client certificate whose subject no principal is configured for.
    UnknownCertificate,
    /// Basic credentials from an address that failed too many logins of late; a `429`
    /// without a password check.
    LoginThrottled {
        /// When the address may try again.
        retry_after: Duration,
    },
}

// === impl Principal ===

impl Principal {
    /// The principal of requests without credentials.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".to_owned(),
            groups: Vec::new(),
        }
    }

    /// A principal without groups.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            groups: Vec::new(),
        }
    }
}

// === impl Caller ===

impl<'a> Caller<'a> {
    /// What `req` says: its headers, and the certificate and address the listener put into
    /// its extensions.
    pub fn of<B>(req: &'a Request<B>) -> Self {
        Self {
            headers: Some(req.headers()),
            certificate: req.extensions().get::<ClientCertificate>(),
            remote: req
                .extensions()
                .get::<crate::server::RemoteAddr>()
                .map(|crate::server::RemoteAddr(peer)| peer.ip()),
        }
    }
}

// === impl Failure ===

impl Failure {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::UnknownUser => "unknown_user",
            Self::BadPassword => "bad_password",
            Self::BadToken => "bad_token",
            Self::ExpiredToken => "expired_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnknownCertificate => "unknown_certificate",
            Self::LoginThrottled { .. } => "login_throttled",
        }
    }

    /// The client-facing message (fixed text: never names a user or echoes a credential).
    fn message(self) -> &'static str {
        match self {
            Self::MissingCredentials => "authentication required",
            Self::UnknownUser | Self::BadPassword => "invalid username or password",
            Self::BadToken => "invalid token",
            Self::ExpiredToken => "token expired",
            Self::InsufficientScope => "token does not grant pull access to this repository",
            Self::UnknownCertificate => "client certificate not mapped to a principal",
            Self::LoginThrottled { .. } => "too many failed logins, try again later",
        }
    }
}

impl From<TokenError> for Failure {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => Self::ExpiredToken,
            TokenError::Malformed | TokenError::BadSignature => Self::BadToken,
        }
    }
}

// === impl Auth ===

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("anonymous", &self.anonymous)
            .field("passwords", &self.passwords)
            .field("tokens", &self.tokens.len())
            .field("token_endpoint", &self.key.is_some())
            .field("ttl", &self.ttl)
            .field("certificates", &self.certificates.len())
            .field("registries", &self.registries)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Settings with no credentials at all: anonymous access as given, no token endpoint.
    pub fn new(anonymous: bool, tls: bool) -> Self {
        Self {
            anonymous,
            passwords: login::Passwords::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                Self::DEFAULT_PASSWORD_CACHE_TTL,
            ),
            logins: login::LoginThrottle::new(
                Self::DEFAULT_LOGIN_FAILURES_PER_MINUTE,
                Self::DEFAULT_LOGIN_FAILURES_BURST,
            ),
            tokens: Vec::new(),
            key: None,
            ttl: Duration::from_secs(300),
            tls,
            groups: BTreeMap::new(),
            access: None,
            rate: None,
            certificates: HashMap::new(),
            registries: Vec::new(),
        }
    }

    /// How long a successful Basic check is remembered unless configured.
    pub const DEFAULT_PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);
    /// Failed Basic logins an address may have at once unless configured.
    pub const DEFAULT_LOGIN_FAILURES_BURST: u32 = 10;
    /// How many failed logins an address gets back per minute unless configured.
    pub const DEFAULT_LOGIN_FAILURES_PER_MINUTE: u32 = 10;

    /// Names the registries of the configured upstreams (see [`Grant::may_pull_anywhere`]).
    pub fn with_registries(mut self, registries: impl IntoIterator<Item = String>) -> Self {
        self.registries = registries.into_iter().collect();
        self
    }

    /// Throttles failed Basic logins: `burst` at once per client address, refilling
    /// `per_minute`.
    pub fn with_login_failures(mut self, per_minute: u32, burst: u32) -> Self {
        self.logins = login::LoginThrottle::new(per_minute, burst);
        self
    }

    /// Remembers successful Basic checks for `ttl` (zero: not at all).
    pub fn with_password_cache(mut self, ttl: Duration) -> Self {
        self.passwords.set_cache_ttl(ttl);
        self
    }

    /// Serves requests with a verified client certificate whose subject is `subject`
    /// (RFC 4514, as [`ClientCertificate::subject`]) as `principal`.
    pub fn with_certificate(mut self, subject: impl Into<String>, principal: Principal) -> Self {
        self.certificates.insert(subject.into(), principal);
        self
    }

    /// Limits each principal to `requests_per_second`, `burst` at once.
    pub fn with_rate_limit(mut self, requests_per_second: u32, burst: u32) -> Self {
        self.rate = Some(rate::RateLimiter::new(requests_per_second, burst));
        self
    }

    /// A `429` when `principal` is over its rate limit, else `None`.
    fn over_rate(&self, principal: &str, metrics: &HttpMetrics) -> Option<Response<Body>> {
        let limiter = self.rate.as_ref()?;
        let wait = limiter.check(principal, Instant::now()).err()?;
        metrics.auth_failure("rate_limited");
        tracing::info!(principal, reason = "rate_limited", "refused");
        Some(too_many_requests("too many requests", wait))
    }

    /// Sets the groups (name → members) and the access rules (`None`: everyone may pull
    /// everything).
    pub fn with_access(
        mut self,
        groups: BTreeMap<String, Vec<String>>,
        access: Option<Vec<AccessRule>>,
    ) -> Self {
        self.groups = groups;
        self.access = access.map(Into::into);
        self
    }

    /// The grant for `principal`, its groups filled in from `auth.groups`.
    fn grant(&self, mut principal: Principal) -> Grant {
        for (group, members) in &self.groups {
            if members.contains(&principal.name) && !principal.groups.contains(group) {
                principal.groups.push(group.clone());
            }
        }
        Grant {
            principal,
            access: self.access.clone(),
        }
    }

    /// Adds the users of an htpasswd file's text. Only bcrypt entries (`$2a$`, `$2b$`,
    /// `$2y$`) are accepted; the error names the line, never its content.
    pub fn with_htpasswd(mut self, text: &str) -> Result<Self, String> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: not `user:hash`", i + 1));
            };
            if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
                return Err(format!(
                    "line {}: not a bcrypt hash (create entries with `htpasswd -B`)",
                    i + 1
                ));
            }
            self.passwords.insert(user, hash);
        }
        Ok(self)
    }

    /// Adds a static bearer token for principal `name`.
    pub fn with_token(mut self, name: impl Into<String>, token: Secret) -> Self {
        self.tokens.push((token, name.into()));
        self
    }

    /// Signs tokens from `/token` with `key`, valid for `ttl`.
    pub fn with_token_key(mut self, key: TokenKey, ttl: Duration) -> Self {
        self.key = Some(key);
        self.ttl = ttl;
        self
    }

    /// Checks Basic credentials from `remote` against the htpasswd users (see [`login`]):
    /// throttled per address first, then the cache of successful checks, then bcrypt (slow
    /// by design: on the blocking pool, at most one check per core at a time).
    async fn check_password(
        &self,
        user: &str,
        password: &str,
        remote: Option<IpAddr>,
    ) -> Result<(), Failure> {
        // Without an address (not from the listener) there is no one to throttle. Only
        // failures count: many clients behind one address logging in at once (a CI fleet, an
        // ingress) are never refused for succeeding.
        let gate = || remote.map_or(Ok(()), |addr| self.logins.allowed(addr, Instant::now()));
        let rejected = match self.passwords.check(user, password, &gate).await {
            Ok(()) => return Ok(()),
            Err(login::Rejected::Throttled(retry_after)) => {
                return Err(Failure::LoginThrottled { retry_after })
            }
            Err(login::Rejected::UnknownUser) => Failure::UnknownUser,
            Err(login::Rejected::BadPassword) => Failure::BadPassword,
        };
        if let Some(addr) = remote {
            self.logins.failed(addr, Instant::now());
        }
        Err(rejected)
    }

    /// The principal of a verified client certificate (see the module documentation).
    fn certificate_principal(&self, certificate: &ClientCertificate) -> Result<Principal, Failure> {
        let principal = self
            .certificates
            .get(&certificate.subject)
            .filter(|_| !certificate.subject.is_empty())
            .cloned();
        if principal.is_none() {
            // A subject is no secret, and the operator needs it to map the certificate.
            tracing::info!(subject = %certificate.subject, "client certificate not mapped");
        }
        principal.ok_or(Failure::UnknownCertificate)
    }

    /// The principal of a static bearer token. Compared by SHA-256 digest, so the time taken
    /// says nothing about how much of a token matched.
    fn static_token(&self, presented: &str) -> Option<Principal> {
        let digest = |s: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
        let wanted = digest(presented);
        self.tokens
            .iter()
            .find(|(token, _)| digest(token.expose()).as_ref() == wanted.as_ref())
            .map(|(_, name)| Principal::named(name.clone()))
    }

    /// Who `req` is from, or why it is refused. `repository` is the repository the request
    /// is for (`None` for `/v2/` and paths that are not registry endpoints).
    async fn authenticate(
        &self,
        caller: &Caller<'_>,
        repository: Option<&str>,
    ) -> Result<Principal, Failure> {
        if let Some(certificate) = caller.certificate {
            // The certificate wins over any header (see the module documentation).
            return self.certificate_principal(certificate);
        }
        match credentials(caller.headers) {
            Credentials::None => {
                if self.anonymous {
                    Ok(Principal::anonymous())
                } else {
                    Err(Failure::MissingCredentials)
                }
            }
            Credentials::Invalid => Err(Failure::BadToken),
            Credentials::Basic { user, password } => {
                self.check_password(&user, &password.0, caller.remote)
                    .await?;
                Ok(Principal::named(user))
            }
            Credentials::Bearer(presented) => {
                if let Some(principal) = self.static_token(&presented) {
                    return Ok(principal);
                }
                let key = self.key.as_ref().ok_or(Failure::BadToken)?;
                let claims = key.verify(&presented, SystemTime::now())?;
                let principal = Principal {
                    name: claims.sub.clone(),
                    groups: claims.groups.clone(),
                };
                if let Some(name) = repository {
                    // token.md: the token is refused for a resource it does not cover. When
                    // no upstream would let the principal pull the name, a new token would
                    // not cover it either: the handler's access check refuses it with
                    // `403 DENIED` instead of sending the client round the token flow.
                    if !claims.grants_pull(name)
                        && self
                            .grant(principal.clone())
                            .may_pull_anywhere(&self.registries, name)
                    {
                        return Err(Failure::InsufficientScope);
                    }
                }
                Ok(principal)
            }
        }
    }

    /// The `WWW-Authenticate` value for a refusal of a request to `host`.
    fn challenge(&self, host: Option<&str>, repository: Option<&str>) -> String {
        if self.key.is_none() {
            return format!("Basic realm=\"{SERVICE}\"");
        }
        let scheme = if self.tls { "https" } else { "http" };
        let host = host.unwrap_or("localhost");
        let mut value = format!("Bearer realm=\"{scheme}://{host}/token\",service=\"{SERVICE}\"");
        if let Some(name) = repository {
            value.push_str(&format!(",scope=\"repository:{name}:pull\""));
        }
        value
    }

    /// `GET /token`: checks Basic credentials (or a verified client certificate) and issues
    /// a token for the requested scopes the principal may pull (only `repository` scopes and
    /// the `pull` action; see the module documentation).
    async fn issue(
        &self,
        caller: &Caller<'_>,
        query: &str,
        metrics: &HttpMetrics,
    ) -> Response<Body> {
        let headers = caller.headers;
        let host = headers.and_then(|h| host(h, None));
        let Some(key) = self.key.as_ref() else {
            return oci_response(
                StatusCode::NOT_FOUND,
                OciErrorCode::Unsupported,
                "no token endpoint",
            );
        };
        let principal = match (caller.certificate, credentials(headers)) {
            // As on `/v2/*`, a verified certificate wins over any header.
            (Some(certificate), _) => match self.certificate_principal(certificate) {
                Ok(principal) => principal,
                Err(failure) => return self.refuse(failure, host.as_deref(), None, Some(metrics)),
            },
            (None, Credentials::Basic { user, password }) => {
                match self.check_password(&user, &password.0, caller.remote).await {
                    Ok(()) => Principal::named(user),
                    Err(failure) => {
                        return self.refuse(failure, host.as_deref(), None, Some(metrics))
                    }
                }
            }
            (None, Credentials::None) if self.anonymous => Principal::anonymous(),
            (None, Credentials::None) => {
                return self.refuse(
                    Failure::MissingCredentials,
                    host.as_deref(),
                    None,
                    Some(metrics),
                )
            }
            _ => return self.refuse(Failure::BadToken, host.as_deref(), None, Some(metrics)),
        };
        // scope.md: grant the intersection of what was asked and what the principal may do.
        let grant = self.grant(principal.clone());
        let (access, denied): (Vec<Access>, Vec<Access>) = requested_access(query)
            .into_iter()
            .partition(|a| grant.may_pull_anywhere(&self.registries, &a.name));
        let now = SystemTime::now();
        let claims = Claims::new(&principal, access, now, self.ttl);
        let token = key.sign(&claims);
        let issued_at = time::OffsetDateTime::from(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let body = serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": self.ttl.as_secs(),
            "issued_at": issued_at,
        });
        tracing::info!(
            principal = %principal.name,
            granted = claims.access.len(),
            denied = denied.len(),
            "token issued"
        );
        let mut response = Response::new(body::full(Bytes::from(body.to_string())));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// A `401` with an `UNAUTHORIZED` body and a challenge (a `429` for
    /// [`Failure::LoginThrottled`]); counts and logs the failure.
    fn refuse(
        &self,
        failure: Failure,
        host: Option<&str>,
        repository: Option<&str>,
        metrics: Option<&HttpMetrics>,
    ) -> Response<Body> {
        if let Some(m) = metrics {
            m.auth_failure(failure.as_str());
        }
        tracing::info!(reason = failure.as_str(), "authentication refused");
        if let Failure::LoginThrottled { retry_after } = failure {
            return too_many_requests(failure.message(), retry_after);
        }
        let mut response = oci_response(
            StatusCode::UNAUTHORIZED,
            OciErrorCode::Unauthorized,
            failure.message(),
        );
        let mut challenge = self.challenge(host, repository);
        match failure {
            Failure::InsufficientScope => challenge.push_str(",error=\"insufficient_scope\""),
            Failure::BadToken | Failure::ExpiredToken => {
                challenge.push_str(",error=\"invalid_token\"")
            }
            _ => {}
        }
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The credentials a request carries.
enum Credentials {
    None,
    /// An `Authorization` header that is neither Basic nor Bearer, or does not decode.
    Invalid,
    Basic {
        user: String,
        password: Password,
    },
    Bearer(String),
}

/// A password from a Basic header; never printed.
struct Password(String);

fn credentials(headers: Option<&HeaderMap>) -> Credentials {
    let Some(value) = headers.and_then(|h| h.get(header::AUTHORIZATION)) else {
        return Credentials::None;
    };
    let Ok(value) = value.to_str() else {
        return Credentials::Invalid;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return Credentials::Invalid;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return Credentials::Invalid;
        };
        match decoded.split_once(':') {
            Some((user, password)) => Credentials::Basic {
                user: user.to_owned(),
                password: Password(password.to_owned()),
            },
            None => Credentials::Invalid,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Credentials::Bearer(rest.to_owned())
    } else {
        Credentials::Invalid
    }
}

/// The `Host` the client addressed (for the realm).
fn host(headers: &HeaderMap, uri: Option<&http::Uri>) -> Option<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.and_then(|u| u.authority()).map(|a| a.as_str()))?;
    // A realm is quoted in the challenge: refuse anything that could break out of it.
    host.chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        .then(|| host.to_owned())
}

/// The repositories `scope=repository:<name>:<actions>` parameters ask `pull` for.
fn requested_access(query: &str) -> Vec<Access> {
    let mut access: Vec<Access> = Vec::new();
    for (key, value) in url_pairs(query) {
        if key != "scope" {
            continue;
        }
        // Several scopes may also come space-separated in one parameter.
        for scope in value.split(' ') {
            let mut parts = scope.splitn(2, ':');
            let (Some("repository"), Some(rest)) = (parts.next(), parts.next()) else {
                continue;
            };
            // The name may hold a `:port`; the actions are after the last colon.
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            if crate::oci::name::RepoName::parse(name).is_err() {
                continue;
            }
            if actions.split(',').any(|a| a == "pull") && !access.iter().any(|a| a.name == name) {
                access.push(Access::pull(name));
            }
        }
    }
    access
}

/// `application/x-www-form-urlencoded` pairs of a query string.
fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `429` `TOOMANYREQUESTS` with `Retry-After` in whole seconds (at least 1).
fn too_many_requests(message: &str, wait: Duration) -> Response<Body> {
    let mut response = oci_response(
        StatusCode::TOO_MANY_REQUESTS,
        OciErrorCode::TooManyRequests,
        message,
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

fn oci_response(status: StatusCode, code: OciErrorCode, message: &str) -> Response<Body> {
    let mut response = Response::new(body::full(error_body(code, message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The current [`Auth`]: what every request is checked against, replaced whole when a
/// reload (SIGHUP) has built new settings. Clones share it.
///
/// A read lock per request, held only to clone the `Arc`: a request keeps the settings it
/// started with to its end (a `/token` request mid-bcrypt is not torn between two htpasswd
/// files), and a swap waits for no request.
#[derive(Clone)]
pub struct SharedAuth(Arc<std::sync::RwLock<Arc<Auth>>>);

/// Adds [`AuthService`] around a service.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: SharedAuth,
    metrics: HttpMetrics,
}

/// Authenticates `/v2/*` requests and serves `/token` (see the module documentation).
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    auth: SharedAuth,
    metrics: HttpMetrics,
}

// === impl SharedAuth ===

impl SharedAuth {
    /// Serves `auth` until [`SharedAuth::replace`].
    pub fn new(auth: Arc<Auth>) -> Self {
        Self(Arc::new(std::sync::RwLock::new(auth)))
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<Auth> {
        // Only whole `Arc`s are stored under the lock: a panic cannot leave it torn.
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Serves `auth` from the next request on; requests in progress finish with the old
    /// settings.
    pub fn replace(&self, auth: Arc<Auth>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = auth;
    }
}

impl fmt::Debug for SharedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Auth`'s own `Debug` keeps secrets out.
        f.debug_tuple("SharedAuth").field(&self.current()).finish()
    }
}

// === impl AuthLayer ===

impl AuthLayer {
    /// A layer checking requests against `auth`, counting failures in `metrics`.
    pub fn new(auth: Arc<Auth>, metrics: HttpMetrics) -> Self {
        Self::shared(SharedAuth::new(auth), metrics)
    }

    /// A layer checking each request against the settings `auth` holds when it arrives.
    pub fn shared(auth: SharedAuth, metrics: HttpMetrics) -> Self {
        Self { auth, metrics }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

// === impl AuthService ===

impl<S, B> tower::Service<Request<B>> for AuthService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is checked on the clone that serves the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Read once: the whole request is checked against one version of the settings.
        let auth = self.auth.current();
        let metrics = self.metrics.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let path = req.uri().path();
            if path == "/token" {
                if req.method() != Method::GET {
                    return Ok(oci_response(
                        StatusCode::METHOD_NOT_ALLOWED,
                        OciErrorCode::Unsupported,
                        "the token endpoint answers GET",
                    ));
                }
                let query = req.uri().query().unwrap_or("").to_owned();
                return Ok(auth.issue(&Caller::of(&req), &query, &metrics).await);
            }
            if path == "/v2" || path.starts_with("/v2/") {
                let repository = crate::oci::route::parse(req.method(), path, req.uri().query())
                    .ok()
                    .and_then(|r| r.endpoint.name().map(|n| n.as_str().to_owned()));
                match auth
                    .authenticate(&Caller::of(&req), repository.as_deref())
                    .await
                {
                    Ok(principal) => {
                        if let Some(refused) = auth.over_rate(&principal.name, &metrics) {
                            return Ok(refused);
                        }
                        let grant = auth.grant(principal);
                        req.extensions_mut().insert(grant.principal.clone());
                        req.extensions_mut().insert(grant);
                    }
                    Err(failure) => {
                        let host = host(req.headers(), Some(req.uri()));
                        return Ok(auth.refuse(
                            failure,
                            host.as_deref(),
                            repository.as_deref(),
                            Some(&metrics),
                        ));
                    }
                }
            }
            tower::ServiceExt::oneshot(inner, req)
                .await
                .map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests;
