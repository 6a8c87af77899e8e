//! `storage`: where verified content lives. The local directory (`cache`) is always there,
//! as a size-bounded LRU tier; `backend: s3` adds a bucket on S3-compatible object storage
//! that replicas share, in front of the upstreams.
//!
//! ```yaml
//! storage:
//!   backend: s3                         # default: local
//!   s3:
//!     bucket: trustgate
//!     endpoint: "https://minio.example.internal:9000"   # optional; AWS when absent
//!     region: us-east-1                 # optional
//!     prefix: prod                      # optional key prefix
//!     allow_http: false                 # must be true for an http:// endpoint
//!     virtual_hosted_style: false       # bucket in the host name instead of the path
//!     access_key_id_file: /secrets/s3/access-key-id          # optional, with the next
//!     secret_access_key_file: /secrets/s3/secret-access-key  # otherwise AWS_* environment
//!     trust_state_key_file: /secrets/s3/trust-state-key      # required with Notary rules
//! ```
//!
//! Decisions:
//! - Credentials are never written in the file: either two files (a mounted Secret) or the
//!   standard `AWS_*` environment (and what it points at, e.g. web identity). The key files are
//!   read when the store is built, into [`Secret`](super::Secret)s.
//! - `trust_state_key_file` holds a secret of at least 32 bytes (e.g. `openssl rand -hex 32`)
//!   that every replica shares and the bucket never sees: the trust state replicas keep in the
//!   bucket (first-use roots, rollback versions) is authenticated with it (HMAC-SHA256), so a
//!   writer of the bucket cannot choose roots or versions (`trust/notary/state.rs`). It is
//!   required while any rule verifies with Notary v1 (pinned rules too: inflated versions would
//!   deny them); the start is refused without it. Changing it makes every stored trust state
//!   unauthentic (refused) until deleted.
//! - The storage backend applies from the next start; a reload keeps the store it has.

use std::path::PathBuf;

use serde::Deserialize;

use super::{values, HttpUrl};

/// `storage`: the backend and its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` (default): the `cache` directory only. `s3`: a shared bucket behind it.
    #[serde(default)]
    pub backend: StorageBackend,
    /// Required with `backend: s3`, refused otherwise.
    pub s3: Option<S3Config>,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// The local directory only (the embedded default).
    #[default]
    Local,
    /// S3-compatible object storage shared by replicas, with the local directory in front.
    S3,
}

/// `storage.s3`: the bucket and how to reach it. Holds file names, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket name.
    #[serde(deserialize_with = "values::bucket_name")]
    pub bucket: String,
    /// The endpoint of an S3-compatible service; AWS S3 when absent.
    pub endpoint: Option<HttpUrl>,
    /// The region; from `AWS_REGION`/`AWS_DEFAULT_REGION` or `us-east-1` when absent.
    pub region: Option<String>,
    /// A key prefix, so several deployments can share one bucket; default none.
    #[serde(default, deserialize_with = "values::key_prefix")]
    pub prefix: String,
    /// Allows an `http://` endpoint; default `false`.
    #[serde(default)]
    pub allow_http: bool,
    /// Addresses the bucket as `<bucket>.<endpoint host>` instead of `<endpoint>/<bucket>`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// File holding the access key ID; requires `secret_access_key_file`.
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the secret access key; requires `access_key_id_file`.
    pub secret_access_key_file: Option<PathBuf>,
    /// File holding the key that authenticates trust state in the bucket; required while a
    /// rule verifies with Notary v1.
    pub trust_state_key_file: Option<PathBuf>,
}
