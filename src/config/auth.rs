//! `auth`: who may use the registry listener (see `crate::auth`).
//!
//! ```yaml
//! auth:
//!   anonymous: false                       # default: true only on a loopback listener
//!   htpasswd_file: /etc/trustgate/htpasswd # bcrypt entries (`htpasswd -B`)
//!   token_key_file: /etc/trustgate/token.key  # HMAC-SHA256 key, at least 32 bytes
//!   token_ttl: 5m
//!   tokens: [{name: ci, file: /etc/trustgate/ci.token}]
//! ```
//!
//! Files are read by [`super::Config::auth`], never kept here; their content becomes a
//! [`super::Secret`] or a bcrypt hash and never appears in `Debug` or errors.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values;

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
}
