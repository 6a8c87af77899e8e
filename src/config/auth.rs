//! `auth`: who may use the registry listener (see `crate::auth`).
//!
//! ```yaml
//! auth:
//!   anonymous: false                       # default: true only on a loopback listener
//!   htpasswd_file: /etc/trustgate/htpasswd # bcrypt entries (`htpasswd -B`)
//!   token_key_file: /etc/trustgate/token.key  # HMAC-SHA256 key, at least 32 bytes
//!   token_ttl: 5m
//!   tokens: [{name: ci, file: /etc/trustgate/ci.token}]
//!   groups: {dev: [alice, bob]}
//!   access:                                # absent: every principal may pull everything
//!     - {principals: [ci], pull: ["docker.io/library/**"]}
//!     - {groups: [dev], pull: ["registry.example.internal/team/**"]}
//!   rate_limit: {requests_per_second: 20, burst: 100}   # per principal; 429 beyond
//!   login_failures: {burst: 10, per_minute: 10}  # failed Basic logins per client address
//!   password_cache_ttl: 1m                 # successful Basic checks remembered; 0s: off
//!   client_certificates:                   # mTLS; needs server.tls
//!     ca_file: /etc/trustgate/client-ca.crt   # PEM bundle client certificates must chain to
//!     required: false                      # true: no handshake without a certificate
//!     principals:                          # RFC 4514 subject (most specific RDN first)
//!       - {subject: "CN=ci-runner,O=Example", name: ci, groups: [builders]}
//!     crl_files: [/etc/trustgate/client-ca.crl]  # PEM or DER CRLs; revoked: no handshake
//! ```
//!
//! `access` rules use the policy's pattern language (`crate::policy::Pattern`, over
//! `registry/repository` with the registry the request goes to). They only grant: a pull is
//! allowed when any rule naming the principal, one of its groups, or `"*"` has a matching
//! pattern, so specificity cannot change an answer and is not needed here.
//!
//! `login_failures` (default as above) throttles failed Basic logins per client address (IPv6
//! by /64), at `/token` and on `/v2/*` alike: each failure takes one of `burst` (successes
//! take none), and `per_minute` come back over time. With none left an address gets `429`
//! `TOOMANYREQUESTS` with `Retry-After`, without a password check. Clients behind one NAT or
//! proxy share an address: raise `burst` there rather than lock them out together.
//!
//! `password_cache_ttl` (default `1m`) remembers successful Basic checks so that clients
//! sending their password on every request pay bcrypt once per period, not per request;
//! a changed or removed htpasswd entry is checked anew, failures are never remembered.
//!
//! Tokens from `/token` carry only the repositories the principal may pull from at least
//! one configured upstream; the others are left out of the token (see `crate::auth`).
//!
//! Files are read by [`super::Config::auth`], never kept here; their content becomes a
//! [`super::Secret`] or a bcrypt hash and never appears in `Debug` or errors. The CRLs are
//! read by [`ClientCertificatesConfig::crls`], for `Config::auth` (which locates a bad file
//! as `auth.client_certificates.crl_files[i]`) and the TLS listener.
//!
//! `crl_files` fail closed (see `crate::server` TLS): a listed certificate fails the
//! handshake; every certificate of the chain below the CA in `ca_file` is checked, and one
//! whose issuer has no CRL in the files fails; a CRL past its `nextUpdate` fails every
//! certificate it covers. Without `crl_files` nothing is checked for revocation.
//!
//! Reload (SIGHUP): the whole section and every file it names (htpasswd, token key, static
//! tokens, the client CA and CRLs) are read again and swapped in from the next request (or
//! TLS connection) when all of them load; otherwise the previous settings stay and the
//! error is logged with the key. Rate-limit buckets start full after a reload. Adding or
//! removing the `auth` section applies at the next start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use serde::Deserialize;

use super::values;
use crate::policy::Pattern;

/// The shortest `auth.token_key_file` content accepted, in bytes.
pub const MIN_TOKEN_KEY: usize = 32;

/// The `auth` section, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether requests without credentials are served; default: only when the registry
    /// listener is a loopback address.
    #[serde(default)]
    pub anonymous: Option<bool>,
    /// An htpasswd file with bcrypt entries (`user:$2y$...`).
    #[serde(default)]
    pub htpasswd_file: Option<PathBuf>,
    /// The key tokens from `/token` are signed with (HMAC-SHA256); required with
    /// `htpasswd_file`.
    #[serde(default)]
    pub token_key_file: Option<PathBuf>,
    /// How long a token from `/token` is valid; default `5m`.
    #[serde(
        default = "AuthConfig::default_ttl",
        deserialize_with = "values::duration"
    )]
    pub token_ttl: Duration,
    /// Static bearer tokens (for CI), each read from a file.
    #[serde(default)]
    pub tokens: Vec<StaticTokenConfig>,
    /// Groups: name → member principals.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Who may pull what; absent: every principal may pull everything the policy serves.
    #[serde(default)]
    pub access: Option<Vec<AccessRule>>,
    /// Per-principal request rate; absent: unlimited.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// mTLS: client certificates and the principals their subjects stand for.
    #[serde(default)]
    pub client_certificates: Option<ClientCertificatesConfig>,
    /// Failed Basic logins allowed per client address.
    #[serde(default)]
    pub login_failures: LoginFailuresConfig,
    /// How long a successful Basic check is remembered; default `1m`, `0s`: not at all.
    #[serde(
        default = "AuthConfig::default_password_cache_ttl",
        deserialize_with = "values::duration"
    )]
    pub password_cache_ttl: Duration,
}

/// `auth.login_failures`: a token bucket of failed Basic logins per client address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginFailuresConfig {
    /// Failures allowed at once (at least 1); default 10.
    #[serde(
        default = "LoginFailuresConfig::default_burst",
        deserialize_with = "positive"
    )]
    pub burst: u32,
    /// Failures given back per minute (at least 1); default 10 (one every 6 s).
    #[serde(
        default = "LoginFailuresConfig::default_per_minute",
        deserialize_with = "positive"
    )]
    pub per_minute: u32,
}

/// `auth.client_certificates`: which CA client certificates must chain to, and which subject
/// is which principal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificatesConfig {
    /// PEM bundle of the CA certificates client certificates must chain to.
    pub ca_file: PathBuf,
    /// Whether a client must present a certificate (the handshake fails without one);
    /// default `false`: clients without one use passwords or tokens.
    #[serde(default)]
    pub required: bool,
    /// Subject → principal.
    #[serde(default)]
    pub principals: Vec<CertificatePrincipal>,
    /// Certificate revocation lists (RFC 5280 §5), each file PEM (`X509 CRL` sections) or
    /// DER; empty: no revocation checks. See [`ClientCertificatesConfig::crls`].
    #[serde(default)]
    pub crl_files: Vec<PathBuf>,
}

/// `auth.client_certificates.principals[]`: the principal a certificate subject stands for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePrincipal {
    /// The subject as RFC 4514 writes it, most specific attribute first
    /// (`CN=ci-runner,O=Example` for openssl's `-subj /O=Example/CN=ci-runner`).
    pub subject: String,
    /// The principal's name.
    pub name: String,
    /// Groups of the principal, besides those `auth.groups` gives its name.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `auth.rate_limit`: a token bucket per principal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second (at least 1).
    #[serde(deserialize_with = "positive")]
    pub requests_per_second: u32,
    /// Requests allowed at once (at least 1).
    #[serde(deserialize_with = "positive")]
    pub burst: u32,
}

fn positive<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

/// `auth.access[]`: principals and groups that may pull repositories matching `pull`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Principal names (`"*"`: every principal, anonymous included).
    #[serde(default)]
    pub principals: Vec<String>,
    /// Group names (see `auth.groups`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// `registry/repository` patterns, as in policy rules.
    pub pull: Vec<Pattern>,
}

// === impl ClientCertificatesConfig ===

impl ClientCertificatesConfig {
    /// The CRLs of `crl_files`, read now: every `X509 CRL` section of a PEM file, or a whole
    /// file as DER when it holds no PEM. Each must parse as a CRL (webpki's parser, the one
    /// the handshake uses); its signature is checked against its issuer in the handshake.
    /// `Err((i, reason))` names the first file that cannot be used (`crl_files[i]`).
    pub fn crls(&self) -> Result<Vec<CertificateRevocationListDer<'static>>, (usize, String)> {
        let mut crls = Vec::new();
        for (i, path) in self.crl_files.iter().enumerate() {
            let fail = |reason: String| (i, reason);
            let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let found: Vec<CertificateRevocationListDer<'static>> =
                if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
                    CertificateRevocationListDer::pem_slice_iter(&bytes)
                        .collect::<Result<_, _>>()
                        .map_err(|e| fail(e.to_string()))?
                } else {
                    vec![CertificateRevocationListDer::from(bytes)]
                };
            if found.is_empty() {
                return Err(fail("no X509 CRL found".to_owned()));
            }
            for crl in &found {
                webpki::BorrowedCertRevocationList::from_der(crl.as_ref())
                    .map_err(|e| fail(format!("not a CRL: {e}")))?;
            }
            crls.extend(found);
        }
        Ok(crls)
    }
}

// === impl AccessRule ===

impl AccessRule {
    /// Whether this rule names `principal` (by name, group, or `"*"`).
    pub fn names(&self, name: &str, groups: &[String]) -> bool {
        self.principals.iter().any(|p| p == "*" || p == name)
            || self.groups.iter().any(|g| groups.contains(g))
    }
}

/// `auth.tokens[]`: a static bearer token and the principal it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokenConfig {
    /// The principal's name.
    pub name: String,
    /// The file holding the token.
    pub file: PathBuf,
}

// === impl AuthConfig ===

impl AuthConfig {
    fn default_ttl() -> Duration {
        Duration::from_secs(300)
    }

    fn default_password_cache_ttl() -> Duration {
        crate::auth::Auth::DEFAULT_PASSWORD_CACHE_TTL
    }
}

// === impl LoginFailuresConfig ===

impl Default for LoginFailuresConfig {
    fn default() -> Self {
        Self {
            burst: Self::default_burst(),
            per_minute: Self::default_per_minute(),
        }
    }
}

impl LoginFailuresConfig {
    fn default_burst() -> u32 {
        crate::auth::Auth::DEFAULT_LOGIN_FAILURES_BURST
    }

    fn default_per_minute() -> u32 {
        crate::auth::Auth::DEFAULT_LOGIN_FAILURES_PER_MINUTE
    }
}
