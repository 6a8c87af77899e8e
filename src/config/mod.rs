//! Configuration: YAML text → plain data ([`Config`]) → validated → runtime objects
//! ([`Runtime`]), in the order pingora and linkerd use (parse, `validate()`, build).
//!
//! ```yaml
//! server: {listen: "127.0.0.1:5000", admin_listen: "127.0.0.1:9090"}
//! cache: {dir: ./data, max_size: 20GiB}
//! upstreams:
//!   - {registry: docker.io, url: "https://registry-1.docker.io", default: true}
//! notary_servers:
//!   - {name: internal, url: "https://notary.example.internal", ttl: 30s}
//! limits: {max_manifest_size: 4MiB, upstream_timeout: 30s}   # see `limits.rs`
//! records: {file: {path: decisions.jsonl}}                   # see `records.rs`
//! policy:
//!   default: deny
//!   rules:
//!     - {match: "registry.example.internal/**", action: verify, notary: internal}
//! ```
//!
//! Checks happen at load, and every error names the file, line and column:
//! - shape and scalar values (unknown or missing keys, wrong types, durations, sizes, URLs,
//!   patterns, roles, signers, names) while deserialising, where `yaml_serde` knows the
//!   position: each value type parses itself inside its serde visitor;
//! - relations between items (unknown or missing notary server, duplicate upstreams, several
//!   defaults, ambiguous rules, ...) in [`Config::validate`], which finds the position of the
//!   offending item by re-reading the source along its key path (see `locate.rs`).
//!
//! Decisions:
//! - Durations are one whole number and a unit (`ms`, `s`, `m`, `h`); sizes are bytes or a whole
//!   number with a decimal (`KB`...`TB`) or binary (`KiB`...`TiB`) unit.
//! - A notary server's `ttl` cannot be `0s`: trust data would be fetched again for every
//!   manifest and blob request of a pull. Freshness is bounded by `ttl` plus a rule's
//!   `stale_if_error` (default `0s`, fail closed).
//! - File paths (`password_file`, `ca_file`, `cert_file`, `key_file`, PEM root keys, `cache.dir`)
//!   are used as written: relative ones are relative to the working directory.
//! - Password files are read by [`Config::build`], not kept in [`Config`]; the value is a
//!   [`Secret`], and errors name the file, never the content.
//! - `policy` may be omitted: the default is `deny` with no rules, which serves nothing.
//! - An upstream's credentials go to the token service (`realm`) its challenge names only when
//!   that realm is on the upstream's own host or matches one of its `token_realms` (URL
//!   prefixes or `host[:port]`; default `[https://auth.docker.io/token]` for Docker Hub's
//!   URL), and never over `http` unless the upstream is `http`; other realms are asked
//!   anonymously. The realm is the upstream's word; the configuration decides who sees a
//!   password.

mod auth;
mod error;
mod limits;
mod locate;
mod records;
mod secret;
mod storage;
#[cfg(test)]
mod tests;
mod values;

use std::{
    fs, io,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use self::locate::{Seg, Source};

/// The shortest `storage.s3.trust_state_key_file` content accepted, in bytes.
pub const MIN_TRUST_STATE_KEY: usize = 32;
pub use self::{
    auth::{
        AccessRule, AuthConfig, CertificatePrincipal, ClientCertificatesConfig,
        LoginFailuresConfig, RateLimitConfig, StaticTokenConfig, MIN_TOKEN_KEY,
    },
    error::{ConfigError, Location},
    limits::LimitsConfig,
    records::{RecordsConfig, RecordsFileConfig, RecordsWebhookConfig},
    secret::Secret,
    storage::{S3Config, StorageBackend, StorageConfig},
    values::{parse_byte_size, parse_duration, HttpUrl, ValueError},
};
pub use crate::http_client::TokenRealm;
use crate::policy::{
    Action, AttestationConfig, AttestationError, CosignRequirements, DefaultAction, KeylessConfig,
    KeylessError, NotationRequirements, Pattern, Policy, PolicyError, RoleList, RootKeyPin, Rule,
    Signatures, SignerList, TrustRequirements, VerifierKind, VerifierName,
};

/// The whole configuration, as plain data. See the module documentation for the format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners.
    #[serde(default)]
    pub server: ServerConfig,
    /// The content cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Registries to proxy; at least one.
    pub upstreams: Vec<UpstreamConfig>,
    /// Notary v1 servers that rules verify against.
    #[serde(default)]
    pub notary_servers: Vec<NotaryServerConfig>,
    /// Which images are verified, audited, allowed or denied.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Sizes, timeouts and concurrency caps; every one has a safe default.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Where content is stored besides `cache` (see `storage.rs`); default the local
    /// directory only.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Client authentication (see `auth.rs`); absent: no authentication, every request
    /// is served as anonymous (a warning is logged when the listener is not loopback).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Decision records (file, webhooks); absent: none are kept.
    #[serde(default)]
    pub records: Option<RecordsConfig>,
    /// The text this was parsed from, to point errors at lines.
    #[serde(skip)]
    source: Source,
}

/// `server`: where trustgate listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The registry listener; default `127.0.0.1:5000`.
    #[serde(deserialize_with = "values::listen_address")]
    pub listen: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); default `127.0.0.1:9090`.
    #[serde(deserialize_with = "values::listen_address")]
    pub admin_listen: SocketAddr,
    /// TLS for the registry listener; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// A file holding the bearer token the decision API (`/v1/verdict` on `admin_listen`)
    /// requires; without one the API answers only on a loopback `admin_listen`.
    pub admin_token_file: Option<PathBuf>,
}

/// `server.tls`: certificate chain and private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain.
    pub cert_file: PathBuf,
    /// The private key.
    pub key_file: PathBuf,
}

/// `cache`: where verified content is stored and how much of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// The cache directory; default `./data`. Trust state lives here too.
    pub dir: PathBuf,
    /// Size bound in bytes, written like `20GiB` (the default) or `1000000`.
    #[serde(deserialize_with = "values::byte_size")]
    pub max_size: u64,
}

/// The longest `upstreams[].tag_ttl`: a tag answered from memory for longer would stop
/// following the registry for more than a day.
pub const MAX_TAG_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// One entry of `upstreams`: a registry trustgate pulls through.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The registry's name in image references and rule patterns, e.g. `docker.io`.
    #[serde(deserialize_with = "values::registry_name")]
    pub registry: String,
    /// Where to reach it, e.g. `https://registry-1.docker.io`.
    pub url: HttpUrl,
    /// Whether requests that name no registry (a Docker mirror, no `?ns=`) go here.
    #[serde(default)]
    pub default: bool,
    /// Username for the registry; requires `password_file`.
    pub username: Option<String>,
    /// File holding the password or token, read at build time; requires `username`.
    pub password_file: Option<PathBuf>,
    /// Extra CA bundle (PEM) for the registry's TLS.
    pub ca_file: Option<PathBuf>,
    /// Token services besides the registry's own host that may receive the credentials: URL
    /// prefixes (`https://auth.example/token`) or hosts (`auth.example`, `auth.example:8443`).
    /// Default: `[https://auth.docker.io/token]` when `url` is Docker Hub's, else none.
    pub token_realms: Option<Vec<TokenRealm>>,
    /// Under `audit` and `allow`: how long a tag's digest, once looked up, answers the tag
    /// without asking the registry again; default `0s` (always ask). See `tag_ttl` in the
    /// proxy for the bounded stale answers while the registry is down.
    #[serde(default, deserialize_with = "values::duration")]
    pub tag_ttl: Duration,
}

/// One entry of `notary_servers`: a Notary v1 server holding trust data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotaryServerConfig {
    /// The name rules use in `notary:`.
    #[serde(deserialize_with = "values::server_name")]
    pub name: String,
    /// Where to reach it, e.g. `https://notary.example.internal`.
    pub url: HttpUrl,
    /// Extra CA bundle (PEM) for the server's TLS.
    pub ca_file: Option<PathBuf>,
    /// How long fetched trust data is reused before it must be refreshed; default `30s`,
    /// never `0s`.
    #[serde(
        default = "NotaryServerConfig::default_ttl",
        deserialize_with = "values::duration"
    )]
    pub ttl: Duration,
}

/// `policy`: the default action and the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// What happens to images no rule matches: `deny` (default) or `allow`.
    ///
    /// CAUTION: `allow` serves every unmatched image unverified.
    #[serde(default)]
    pub default: DefaultAction,
    /// The rules; the most specific match wins, whatever the order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One entry of `policy.rules`.
///
/// The trust fields (`verifier` to `stale_if_error`) belong to `verify` and `audit` rules only;
/// their defaults are applied when the policy is built.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `match`: which references the rule covers.
    #[serde(rename = "match")]
    pub pattern: Pattern,
    /// What to do with them.
    pub action: Action,
    /// The kind of verifier; default `notary`.
    pub verifier: Option<VerifierKind>,
    /// The notary server (by `name`); required for `verify` and `audit`.
    #[serde(default, deserialize_with = "values::optional_server_name")]
    pub notary: Option<String>,
    /// Resolution order; default `[targets/releases, targets]`.
    pub roles: Option<RoleList>,
    /// Signers that must also have signed the digest; default none.
    pub signers: Option<SignerList>,
    /// Pinned root keys (64-hex key IDs or PEM files); default none (trust on first use).
    pub root_keys: Option<Vec<RootKeyPin>>,
    /// Serving window on cached trust data while the notary server is unreachable; default
    /// `0s` (fail closed).
    #[serde(default, deserialize_with = "values::optional_duration")]
    pub stale_if_error: Option<Duration>,
    /// cosign: PEM public key files (ECDSA P-256); required when the verifier includes cosign.
    pub keys: Option<Vec<PathBuf>>,
    /// cosign keyless: trusted Fulcio roots, Rekor keys and signer identities.
    pub keyless: Option<KeylessConfig>,
    /// cosign: how many distinct signers (keys, keyless identities) must have signed;
    /// default 1.
    pub threshold: Option<usize>,
    /// cosign: the repository (on the same upstream) holding the `sha256-<hex>.sig` tags;
    /// default the image's own repository.
    #[serde(default, deserialize_with = "values::optional_repository")]
    pub signature_repository: Option<String>,
    /// cosign: `required` (default) or `none`, when `attestations` alone suffice.
    pub signatures: Option<Signatures>,
    /// cosign: in-toto attestations (predicate type, field conditions) the digest must
    /// carry, each signed by one of the rule's signers; default none.
    pub attestations: Option<Vec<AttestationConfig>>,
    /// cosign: whether a sigstore bundle needs a transparency-log entry (keyless) or a log
    /// entry or an RFC 3161 timestamp (key-signed); default true, as `cosign verify`.
    pub require_tlog: Option<bool>,
    /// notation: the trust policy and trust store (notation's own files) and revocation.
    pub notation: Option<NotationConfig>,
}

/// A rule's `notation` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotationConfig {
    /// notation's `trustpolicy.oci.json` (or `trustpolicy.json`), or the notation
    /// configuration directory holding it (`~/.config/notation`).
    pub trust_policy: PathBuf,
    /// notation's trust store: the directory holding `x509/`, or the notation configuration
    /// directory.
    pub trust_store: PathBuf,
    /// Revocation checking; default: OCSP and CRLs fetched, CRLs cached under the cache
    /// directory.
    #[serde(default)]
    pub revocation: NotationRevocationConfig,
}

/// `notation.revocation`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotationRevocationConfig {
    /// CRL files (DER or PEM) to use before any fetch, for sites that cannot fetch.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Whether OCSP responders and CRL distribution points named by trusted certificates
    /// may be fetched; default true. Off, a certificate whose status needs a fetch is of
    /// unknown status (which the trust policy's `revocation` level enforces or logs).
    #[serde(default = "NotationRevocationConfig::default_fetch")]
    pub fetch: bool,
    /// Bound on each fetch; default `5s`.
    #[serde(
        default = "NotationRevocationConfig::default_timeout",
        deserialize_with = "values::duration"
    )]
    pub timeout: Duration,
    /// Where fetched CRLs are kept; default `<cache.dir>/notation-crl`.
    pub cache: Option<PathBuf>,
}

impl Default for NotationRevocationConfig {
    fn default() -> Self {
        NotationRevocationConfig {
            crls: Vec::new(),
            fetch: Self::default_fetch(),
            timeout: Self::default_timeout(),
            cache: None,
        }
    }
}

impl NotationRevocationConfig {
    fn default_fetch() -> bool {
        true
    }

    fn default_timeout() -> Duration {
        Duration::from_secs(5)
    }
}

/// The runtime objects built from a [`Config`].
#[derive(Debug)]
pub struct Runtime {
    /// The compiled policy.
    pub policy: Policy,
    /// The upstreams, in configuration order, with credentials loaded.
    pub upstreams: Vec<Upstream>,
}

/// An upstream registry, ready to use.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The registry's name, e.g. `docker.io`.
    pub registry: String,
    /// Where to reach it.
    pub url: HttpUrl,
    /// Whether requests that name no registry go here.
    pub default: bool,
    /// Credentials, when configured.
    pub credentials: Option<Credentials>,
    /// Extra CA bundle for its TLS.
    pub ca_file: Option<PathBuf>,
    /// Token services besides its own host that may receive the credentials; `None`: the
    /// default (Docker Hub's auth host for Docker Hub).
    pub token_realms: Option<Vec<TokenRealm>>,
    /// Under `audit` and `allow`: how long a looked-up tag answers without asking; `0s`:
    /// always ask.
    pub tag_ttl: Duration,
}

/// Registry credentials; the password never shows in `Debug`.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password or token read from `password_file`.
    pub password: Secret,
}

// === impl Config ===

impl Config {
    /// Parses and validates a configuration from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, Source::new(None, text))
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, Source::new(Some(path), &text))
    }

    fn parse(text: &str, source: Source) -> Result<Self, ConfigError> {
        // The one place that knows the YAML library.
        let mut config: Self = yaml_serde::from_str(text).map_err(|err| {
            let (at, message) = source.yaml_error(&err);
            ConfigError::Yaml { at, message }
        })?;
        config.source = source;
        config.validate()?;
        Ok(config)
    }

    /// The decision API's bearer token, read from `server.admin_token_file` (one trailing
    /// newline dropped); `None` when no file is named.
    pub fn admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(path) = &self.server.admin_token_file else {
            return Ok(None);
        };
        let at = || self.locate(&[Seg::Key("server"), Seg::Key("admin_token_file")]);
        match read_password(path) {
            Ok(Some(token)) => Ok(Some(token)),
            Ok(None) => Err(ConfigError::AdminTokenFile {
                at: at(),
                path: path.clone(),
                reason: "it is empty".to_owned(),
            }),
            Err(e) => Err(ConfigError::AdminTokenFile {
                at: at(),
                path: path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The runtime authentication settings: reads the htpasswd, key and token files.
    /// `None` when the configuration has no `auth` section.
    pub fn auth(&self) -> Result<Option<crate::auth::Auth>, ConfigError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let fail = |key: &'static str, path: &Path, reason: String| ConfigError::AuthFile {
            at: self.locate(&[Seg::Key("auth"), Seg::Key(key)]),
            key: format!("auth.{key}"),
            path: path.to_owned(),
            reason,
        };
        let anonymous = auth
            .anonymous
            .unwrap_or_else(|| self.server.listen.ip().is_loopback());
        let mut built = crate::auth::Auth::new(anonymous, self.server.tls.is_some());
        if let Some(path) = &auth.htpasswd_file {
            let text =
                fs::read_to_string(path).map_err(|e| fail("htpasswd_file", path, e.to_string()))?;
            built = built
                .with_htpasswd(&text)
                .map_err(|reason| fail("htpasswd_file", path, reason))?;
        }
        match &auth.token_key_file {
            Some(path) => {
                let key =
                    fs::read(path).map_err(|e| fail("token_key_file", path, e.to_string()))?;
                if key.len() < MIN_TOKEN_KEY {
                    return Err(fail(
                        "token_key_file",
                        path,
                        format!(
                            "it holds {} bytes, at least {MIN_TOKEN_KEY} are needed",
                            key.len()
                        ),
                    ));
                }
                built =
                    built.with_token_key(crate::auth::token::TokenKey::new(&key), auth.token_ttl);
            }
            None if auth.htpasswd_file.is_some() => {
                let at = self.locate(&[Seg::Key("auth"), Seg::Key("htpasswd_file")]);
                return Err(ConfigError::MissingTokenKey { at });
            }
            None => {}
        }
        for (i, token) in auth.tokens.iter().enumerate() {
            let at = || {
                self.locate(&[
                    Seg::Key("auth"),
                    Seg::Key("tokens"),
                    Seg::Index(i),
                    Seg::Key("file"),
                ])
            };
            let reason = match read_password(&token.file) {
                Ok(Some(secret)) => {
                    built = built.with_token(token.name.clone(), secret);
                    continue;
                }
                Ok(None) => "it is empty".to_owned(),
                Err(e) => e.to_string(),
            };
            return Err(ConfigError::AuthFile {
                at: at(),
                key: format!("auth.tokens[{i}].file"),
                path: token.file.clone(),
                reason,
            });
        }
        built = built
            .with_access(auth.groups.clone(), auth.access.clone())
            // Every upstream: a token scope is left out only when none would serve the name.
            .with_registries(self.upstreams.iter().map(|u| u.registry.clone()))
            .with_login_failures(auth.login_failures.per_minute, auth.login_failures.burst)
            .with_password_cache(auth.password_cache_ttl);
        if let Some(limit) = &auth.rate_limit {
            built = built.with_rate_limit(limit.requests_per_second, limit.burst);
        }
        if let Some(certificates) = &auth.client_certificates {
            // Read here to locate a bad file in the configuration; the TLS listener reads
            // them again for its verifier.
            certificates
                .crls()
                .map_err(|(i, reason)| ConfigError::AuthFile {
                    at: self.locate(&[
                        Seg::Key("auth"),
                        Seg::Key("client_certificates"),
                        Seg::Key("crl_files"),
                        Seg::Index(i),
                    ]),
                    key: format!("auth.client_certificates.crl_files[{i}]"),
                    path: certificates.crl_files[i].clone(),
                    reason,
                })?;
            for p in &certificates.principals {
                built = built.with_certificate(
                    p.subject.clone(),
                    crate::auth::Principal {
                        name: p.name.clone(),
                        groups: p.groups.clone(),
                    },
                );
            }
        }
        Ok(Some(built))
    }

    /// Checks what deserialisation cannot: relations between items. Pure (no file access).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_sections()?;
        self.policy().map(drop)
    }

    /// Builds the runtime objects: compiles the policy and reads password files.
    pub fn build(&self) -> Result<Runtime, ConfigError> {
        self.check_sections()?;
        let policy = self.policy()?;
        let upstreams = self
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, upstream)| self.upstream(i, upstream))
            .collect::<Result<_, _>>()?;
        Ok(Runtime { policy, upstreams })
    }

    /// Compiles `policy` into a [`Policy`], checking each rule against `notary_servers`.
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let rules = self
            .policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| self.rule(i, rule))
            .collect::<Result<_, _>>()?;
        Policy::new(self.policy.default, rules).map_err(|err| match err {
            PolicyError::AmbiguousRules {
                first,
                first_pattern,
                second,
                second_pattern,
                example,
            } => ConfigError::AmbiguousRules {
                at: self.locate(&rule_key(second, "match")),
                pattern: second_pattern,
                first_line: self.locate(&rule_key(first, "match")).line(),
                first_pattern,
                example,
            },
        })
    }

    fn locate(&self, path: &[Seg]) -> Location {
        self.source.locate(path)
    }

    fn check_sections(&self) -> Result<(), ConfigError> {
        let (listen, admin) = (self.server.listen, self.server.admin_listen);
        // Port 0 asks the OS for a free port (tests do this), so it never collides; an
        // unspecified address (`0.0.0.0`) collides with every address on its port.
        let collide = listen.port() != 0
            && listen.port() == admin.port()
            && (listen.ip() == admin.ip()
                || listen.ip().is_unspecified()
                || admin.ip().is_unspecified());
        if collide {
            // Point at whichever of the two is written in the file.
            let mut at = self.locate(&[Seg::Key("server"), Seg::Key("admin_listen")]);
            if at.line().is_none() {
                at = self.locate(&[Seg::Key("server"), Seg::Key("listen")]);
            }
            return Err(ConfigError::ListenConflict { at, listen, admin });
        }
        if self.cache.max_size == 0 {
            return Err(ConfigError::ZeroCacheSize {
                at: self.locate(&[Seg::Key("cache"), Seg::Key("max_size")]),
            });
        }
        if let Some(key) = self.limits.zero_key() {
            return Err(ConfigError::ZeroLimit {
                at: self.locate(&[Seg::Key("limits"), Seg::Key(key)]),
                key,
            });
        }
        let mtls = self
            .auth
            .as_ref()
            .and_then(|a| a.client_certificates.as_ref());
        if let Some(mtls) = mtls {
            let section = [Seg::Key("auth"), Seg::Key("client_certificates")];
            if self.server.tls.is_none() {
                return Err(ConfigError::ClientCertificatesWithoutTls {
                    at: self.locate(&section),
                });
            }
            for (i, p) in mtls.principals.iter().enumerate() {
                if mtls.principals[..i].iter().any(|q| q.subject == p.subject) {
                    return Err(ConfigError::DuplicateCertificateSubject {
                        at: self.locate(&[
                            section[0],
                            section[1],
                            Seg::Key("principals"),
                            Seg::Index(i),
                        ]),
                        subject: p.subject.clone(),
                    });
                }
            }
        }
        self.check_upstreams()?;
        self.check_notary_servers()?;
        self.check_storage()
    }

    fn check_storage(&self) -> Result<(), ConfigError> {
        let at = |key| self.locate(&[Seg::Key("storage"), Seg::Key(key)]);
        let s3 = match (self.storage.backend, &self.storage.s3) {
            (StorageBackend::Local, None) => return Ok(()),
            (StorageBackend::Local, Some(_)) => {
                return Err(ConfigError::S3SettingsWithoutBackend { at: at("s3") })
            }
            (StorageBackend::S3, None) => {
                return Err(ConfigError::MissingS3Settings { at: at("backend") })
            }
            (StorageBackend::S3, Some(s3)) => s3,
        };
        let at_s3 = |key| self.locate(&[Seg::Key("storage"), Seg::Key("s3"), Seg::Key(key)]);
        if let Some(endpoint) = &s3.endpoint {
            if !endpoint.is_https() && !s3.allow_http {
                return Err(ConfigError::S3PlainHttp {
                    at: at_s3("endpoint"),
                    endpoint: endpoint.to_string(),
                });
            }
        }
        let (present, missing) = match (&s3.access_key_id_file, &s3.secret_access_key_file) {
            (Some(_), None) => ("access_key_id_file", "secret_access_key_file"),
            (None, Some(_)) => ("secret_access_key_file", "access_key_id_file"),
            _ => ("", ""),
        };
        if !present.is_empty() {
            return Err(ConfigError::IncompleteS3Credentials {
                at: at_s3(present),
                present,
                missing,
            });
        }
        let notary_rule = self
            .policy
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.action.verifies() && r.verifier.unwrap_or_default().uses_notary());
        if let (None, Some((i, rule))) = (&s3.trust_state_key_file, notary_rule) {
            return Err(ConfigError::MissingTrustStateKey {
                at: at("s3"),
                pattern: rule.pattern.to_string(),
                rule_line: self.locate(&rule_key(i, "match")).line(),
            });
        }
        Ok(())
    }

    /// The key that authenticates trust state in the bucket, from `storage.s3`'s
    /// `trust_state_key_file` when it is configured. Reads the file (one trailing newline
    /// dropped); errors never quote it.
    pub fn trust_state_key(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(path) = self
            .storage
            .s3
            .as_ref()
            .and_then(|s3| s3.trust_state_key_file.as_ref())
        else {
            return Ok(None);
        };
        let key = "trust_state_key_file";
        let error = |reason: String| ConfigError::S3KeyFile {
            at: self.locate(&[Seg::Key("storage"), Seg::Key("s3"), Seg::Key(key)]),
            key,
            path: path.clone(),
            reason,
        };
        let secret = read_password(path)
            .map_err(|e| error(e.to_string()))?
            .ok_or_else(|| error("it is empty".to_owned()))?;
        if secret.expose().len() < MIN_TRUST_STATE_KEY {
            return Err(error(format!(
                "it holds fewer than {MIN_TRUST_STATE_KEY} bytes (use e.g. `openssl rand -hex 32`)"
            )));
        }
        Ok(Some(secret))
    }

    /// The S3 access key pair from `storage.s3`'s key files, when they are configured
    /// (`None`: use the `AWS_*` environment). Reads the files; errors never quote them.
    pub fn s3_credentials(&self) -> Result<Option<(Secret, Secret)>, ConfigError> {
        let Some(s3) = &self.storage.s3 else {
            return Ok(None);
        };
        let (Some(id_file), Some(secret_file)) =
            (&s3.access_key_id_file, &s3.secret_access_key_file)
        else {
            return Ok(None);
        };
        let read = |key: &'static str, path: &PathBuf| {
            let error = |reason: String| ConfigError::S3KeyFile {
                at: self.locate(&[Seg::Key("storage"), Seg::Key("s3"), Seg::Key(key)]),
                key,
                path: path.clone(),
                reason,
            };
            read_password(path)
                .map_err(|e| error(e.to_string()))?
                .ok_or_else(|| error("it is empty".to_owned()))
        };
        Ok(Some((
            read("access_key_id_file", id_file)?,
            read("secret_access_key_file", secret_file)?,
        )))
    }

    fn check_upstreams(&self) -> Result<(), ConfigError> {
        let at = |i, key| self.locate(&[Seg::Key("upstreams"), Seg::Index(i), Seg::Key(key)]);
        if self.upstreams.is_empty() {
            return Err(ConfigError::NoUpstreams {
                at: self.locate(&[Seg::Key("upstreams")]),
            });
        }
        let mut first_default: Option<usize> = None;
        for (i, upstream) in self.upstreams.iter().enumerate() {
            let earlier = &self.upstreams[..i];
            if let Some(first) = earlier.iter().position(|u| u.registry == upstream.registry) {
                return Err(ConfigError::DuplicateUpstream {
                    at: at(i, "registry"),
                    registry: upstream.registry.clone(),
                    first_line: at(first, "registry").line(),
                });
            }
            match (upstream.default, first_default) {
                (true, Some(first)) => {
                    return Err(ConfigError::MultipleDefaultUpstreams {
                        at: at(i, "default"),
                        registry: upstream.registry.clone(),
                        first_registry: self.upstreams[first].registry.clone(),
                        first_line: at(first, "default").line(),
                    })
                }
                (true, None) => first_default = Some(i),
                (false, _) => {}
            }
            if upstream.tag_ttl > MAX_TAG_TTL {
                return Err(ConfigError::TagTtlTooLong {
                    at: at(i, "tag_ttl"),
                    registry: upstream.registry.clone(),
                });
            }
            let (present, missing) = match (&upstream.username, &upstream.password_file) {
                (Some(_), None) => ("username", "password_file"),
                (None, Some(_)) => ("password_file", "username"),
                _ => continue,
            };
            return Err(ConfigError::IncompleteCredentials {
                at: at(i, present),
                registry: upstream.registry.clone(),
                present,
                missing,
            });
        }
        Ok(())
    }

    fn check_notary_servers(&self) -> Result<(), ConfigError> {
        let at = |i, key| self.locate(&[Seg::Key("notary_servers"), Seg::Index(i), Seg::Key(key)]);
        for (i, server) in self.notary_servers.iter().enumerate() {
            let earlier = &self.notary_servers[..i];
            if let Some(first) = earlier.iter().position(|s| s.name == server.name) {
                return Err(ConfigError::DuplicateNotaryServer {
                    at: at(i, "name"),
                    name: server.name.clone(),
                    first_line: at(first, "name").line(),
                });
            }
            if server.ttl.is_zero() {
                return Err(ConfigError::ZeroTtl {
                    at: at(i, "ttl"),
                    name: server.name.clone(),
                });
            }
        }
        Ok(())
    }

    fn rule(&self, i: usize, rule: &RuleConfig) -> Result<Rule, ConfigError> {
        let pattern = rule.pattern.clone();
        if !rule.action.verifies() {
            if let Some(key) = rule.trust_keys().next() {
                return Err(ConfigError::TrustFieldsWithoutVerification {
                    at: self.locate(&rule_key(i, key)),
                    pattern: pattern.to_string(),
                    action: rule.action,
                    key,
                });
            }
            return Ok(match rule.action {
                Action::Deny => Rule::deny(pattern),
                _ => Rule::allow(pattern),
            });
        }
        let verifier = rule.verifier.unwrap_or_default();
        let notary = if verifier.uses_notary() {
            self.rule_notary(i, rule)?
        } else {
            String::new()
        };
        for (key, present, owner) in rule.verifier_keys() {
            if present && !verifier.uses(owner) {
                return Err(ConfigError::FieldNotForVerifier {
                    at: self.locate(&rule_key(i, key)),
                    pattern: pattern.to_string(),
                    owner,
                    key,
                });
            }
        }
        let cosign = if verifier.uses_cosign() {
            Some(self.rule_cosign(i, rule)?)
        } else {
            None
        };
        let notation = if verifier.uses_notation() {
            Some(self.rule_notation(i, rule)?)
        } else {
            None
        };
        let trust = TrustRequirements {
            verifier,
            notation,
            notary,
            roles: rule.roles.clone().unwrap_or_default(),
            signers: rule.signers.clone().unwrap_or_default(),
            root_keys: rule.root_keys.clone().unwrap_or_default(),
            stale_if_error: rule.stale_if_error.unwrap_or_default(),
            cosign,
        };
        Ok(match rule.action {
            Action::Audit => Rule::audit(pattern, trust),
            _ => Rule::verify(pattern, trust),
        })
    }

    /// The notary server a rule verifying with Notary v1 names, checked against
    /// `notary_servers`.
    fn rule_notary(&self, i: usize, rule: &RuleConfig) -> Result<String, ConfigError> {
        let pattern = &rule.pattern;
        let notary = rule
            .notary
            .as_ref()
            .ok_or_else(|| ConfigError::MissingNotaryServer {
                at: self.locate(&rule_key(i, "action")),
                pattern: pattern.to_string(),
                action: rule.action,
            })?;
        if !self.notary_servers.iter().any(|s| s.name == *notary) {
            return Err(ConfigError::UnknownNotaryServer {
                at: self.locate(&rule_key(i, "notary")),
                pattern: pattern.to_string(),
                name: notary.clone(),
                known: self.notary_servers.iter().map(|s| s.name.clone()).collect(),
            });
        }
        Ok(notary.clone())
    }

    /// The Notation requirements of a rule whose verifier includes notation. The files are
    /// read when the runtime is built.
    fn rule_notation(
        &self,
        i: usize,
        rule: &RuleConfig,
    ) -> Result<NotationRequirements, ConfigError> {
        let n = rule
            .notation
            .as_ref()
            .ok_or_else(|| ConfigError::MissingNotation {
                at: self.locate(&rule_key(i, "verifier")),
                pattern: rule.pattern.to_string(),
            })?;
        Ok(NotationRequirements {
            trust_policy: n.trust_policy.clone(),
            trust_store: n.trust_store.clone(),
            crls: n.revocation.crls.clone(),
            crl_cache: Some(
                n.revocation
                    .cache
                    .clone()
                    .unwrap_or_else(|| self.cache.dir.join("notation-crl")),
            ),
            revocation_fetch: n.revocation.fetch,
            revocation_timeout: n.revocation.timeout,
        })
    }

    /// The cosign requirements of a rule whose verifier includes cosign. The key files are
    /// read when the runtime is built.
    fn rule_cosign(&self, i: usize, rule: &RuleConfig) -> Result<CosignRequirements, ConfigError> {
        let pattern = rule.pattern.to_string();
        let mut keys: Vec<PathBuf> = Vec::new();
        for key in rule.keys.iter().flatten() {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        let keyless = match &rule.keyless {
            Some(k) => Some(k.build().map_err(|reason| ConfigError::BadKeyless {
                at: self.locate(&rule_key(i, "keyless")),
                pattern: pattern.clone(),
                reason,
            })?),
            None => None,
        };
        if keys.is_empty() && keyless.as_ref().is_some_and(|k| k.identities.is_empty()) {
            return Err(ConfigError::BadKeyless {
                at: self.locate(&rule_key(i, "keyless")),
                pattern,
                reason: KeylessError::NoIdentities,
            });
        }
        if keys.is_empty() && keyless.is_none() {
            let field = if rule.keys.is_some() {
                "keys"
            } else {
                "verifier"
            };
            return Err(ConfigError::MissingCosignKeys {
                at: self.locate(&rule_key(i, field)),
                pattern,
            });
        }
        // Signers that can count: each key, each keyless identity.
        let identities = keyless.as_ref().map_or(0, |k| k.identities.len());
        let signers = keys.len() + identities;
        let threshold = rule.threshold.unwrap_or(1);
        if threshold == 0 || threshold > signers {
            return Err(ConfigError::BadThreshold {
                at: self.locate(&rule_key(i, "threshold")),
                pattern,
                threshold,
                signers,
                keys: keys.len(),
                identities,
            });
        }
        let signatures = rule.signatures.unwrap_or_default();
        let attestations = AttestationConfig::build_all(
            rule.attestations.as_deref().unwrap_or_default(),
            signatures,
            rule.threshold.is_some(),
        )
        .map_err(|reason| {
            let field = match reason {
                AttestationError::NothingRequired => "signatures",
                AttestationError::ThresholdWithoutSignatures => "threshold",
                _ => "attestations",
            };
            ConfigError::BadAttestations {
                at: self.locate(&rule_key(i, field)),
                pattern: pattern.clone(),
                reason: Box::new(reason),
            }
        })?;
        Ok(CosignRequirements {
            keys,
            keyless,
            threshold,
            signature_repository: rule.signature_repository.clone(),
            require_tlog: rule.require_tlog.unwrap_or(true),
            signatures,
            attestations,
        })
    }

    fn upstream(&self, i: usize, upstream: &UpstreamConfig) -> Result<Upstream, ConfigError> {
        let credentials = match (&upstream.username, &upstream.password_file) {
            (Some(username), Some(path)) => {
                let at = || {
                    self.locate(&[
                        Seg::Key("upstreams"),
                        Seg::Index(i),
                        Seg::Key("password_file"),
                    ])
                };
                let password =
                    read_password(path).map_err(|source| ConfigError::ReadPasswordFile {
                        at: at(),
                        registry: upstream.registry.clone(),
                        path: path.clone(),
                        source,
                    })?;
                let password = password.ok_or_else(|| ConfigError::EmptyPasswordFile {
                    at: at(),
                    registry: upstream.registry.clone(),
                    path: path.clone(),
                })?;
                Some(Credentials {
                    username: username.clone(),
                    password,
                })
            }
            _ => None,
        };
        Ok(Upstream {
            registry: upstream.registry.clone(),
            url: upstream.url.clone(),
            default: upstream.default,
            credentials,
            ca_file: upstream.ca_file.clone(),
            token_realms: upstream.token_realms.clone(),
            tag_ttl: upstream.tag_ttl,
        })
    }
}

/// The key path of field `key` of rule `i`.
fn rule_key(i: usize, key: &'static str) -> [Seg; 4] {
    [
        Seg::Key("policy"),
        Seg::Key("rules"),
        Seg::Index(i),
        Seg::Key(key),
    ]
}

/// Reads a password file, dropping one trailing newline (as `echo` writes); `None` if empty.
fn read_password(path: &Path) -> io::Result<Option<Secret>> {
    let mut text = fs::read_to_string(path)?;
    for newline in ["\n", "\r"] {
        if text.ends_with(newline) {
            text.pop();
        }
    }
    Ok((!text.is_empty()).then(|| Secret::new(text)))
}

// === impl ServerConfig ===

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5000)),
            admin_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
            tls: None,
            admin_token_file: None,
        }
    }
}

// === impl CacheConfig ===

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data"),
            max_size: 20 << 30,
        }
    }
}

// === impl NotaryServerConfig ===

impl NotaryServerConfig {
    fn default_ttl() -> Duration {
        Duration::from_secs(30)
    }
}

// === impl RuleConfig ===

impl RuleConfig {
    /// The trust fields present on this rule, by key.
    fn trust_keys(&self) -> impl Iterator<Item = &'static str> {
        [
            ("verifier", self.verifier.is_some()),
            ("notary", self.notary.is_some()),
            ("roles", self.roles.is_some()),
            ("signers", self.signers.is_some()),
            ("root_keys", self.root_keys.is_some()),
            ("stale_if_error", self.stale_if_error.is_some()),
            ("keys", self.keys.is_some()),
            ("keyless", self.keyless.is_some()),
            ("threshold", self.threshold.is_some()),
            ("signature_repository", self.signature_repository.is_some()),
            ("signatures", self.signatures.is_some()),
            ("attestations", self.attestations.is_some()),
            ("require_tlog", self.require_tlog.is_some()),
            ("notation", self.notation.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
    }

    /// The verifier-specific fields, whether present, and the verifier they belong to.
    fn verifier_keys(&self) -> [(&'static str, bool, VerifierName); 13] {
        [
            ("notary", self.notary.is_some(), VerifierName::Notary),
            ("roles", self.roles.is_some(), VerifierName::Notary),
            ("signers", self.signers.is_some(), VerifierName::Notary),
            ("root_keys", self.root_keys.is_some(), VerifierName::Notary),
            (
                "stale_if_error",
                self.stale_if_error.is_some(),
                VerifierName::Notary,
            ),
            ("keys", self.keys.is_some(), VerifierName::Cosign),
            ("keyless", self.keyless.is_some(), VerifierName::Cosign),
            ("threshold", self.threshold.is_some(), VerifierName::Cosign),
            (
                "signature_repository",
                self.signature_repository.is_some(),
                VerifierName::Cosign,
            ),
            (
                "signatures",
                self.signatures.is_some(),
                VerifierName::Cosign,
            ),
            (
                "attestations",
                self.attestations.is_some(),
                VerifierName::Cosign,
            ),
            (
                "require_tlog",
                self.require_tlog.is_some(),
                VerifierName::Cosign,
            ),
            ("notation", self.notation.is_some(), VerifierName::Notation),
        ]
    }
}
