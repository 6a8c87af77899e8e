//! The shared store behind `storage.backend: s3`: an S3-compatible bucket, built once at start
//! from the configuration, used for content (the cache's shared tier) and for trust state.
//!
//! Every request to it is bounded: no global request timeout (a large object's body may take
//! long), but a short connect timeout, few quick retries, and the callers' own timeouts to the
//! first byte and between chunks, plus a deadline for a whole object's body that grows with its
//! size (`MIN_READ_RATE`, see `cache/shared.rs`). Conditional puts (`If-Match`/`If-None-Match`) are enabled for
//! the compare-and-swap of shared trust state.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::cache::{SharedOptions, SharedTier};
use crate::config::{Config, ConfigError, Secret, StorageBackend};

/// Time to open a connection to the object store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a shared-store request may take to answer. It is a cache in front of the
/// upstream, so a slow bucket must not hold a pull up for long: `limits.upstream_timeout`
/// when that is shorter.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The slowest average rate a bucket body may arrive at, after `REQUEST_TIMEOUT`, before the
/// read is given up and the upstream asked: 1 MiB/s, well below any bucket a replica would
/// share (tens of MiB/s and up), yet a 100-byte object dripped one byte every 2 s is given up
/// after the request timeout instead of holding a pull for minutes.
const MIN_READ_RATE: u64 = 1 << 20;
/// Uploads running at once, and accepted (running or waiting) at once.
const MAX_UPLOADS: usize = 4;
const MAX_QUEUED_UPLOADS: usize = 256;

/// The object store replicas share, and the key prefix of this deployment in it.
#[derive(Clone, Debug)]
pub struct SharedStore {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Keys of this deployment start with this (empty: the bucket's root).
    pub prefix: Key,
    /// Authenticates the trust state kept here (`storage.s3.trust_state_key_file`).
    pub trust_state_key: Option<Secret>,
}

/// Why the shared store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key files could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The object store client could not be built from the settings.
    #[error("storage.s3: bucket {bucket}: {source}")]
    Build {
        /// The bucket.
        bucket: String,
        /// What object_store reported.
        #[source]
        source: object_store::Error,
    },
}

// === impl SharedStore ===

impl SharedStore {
    /// The shared store `config` asks for: `None` for the local backend. Reads the key files;
    /// without them, credentials come from the `AWS_*` environment.
    pub fn from_config(config: &Config) -> Result<Option<Self>, StorageError> {
        let (StorageBackend::S3, Some(s3)) = (config.storage.backend, &config.storage.s3) else {
            return Ok(None);
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&s3.bucket)
            .with_allow_http(s3.allow_http)
            .with_virtual_hosted_style_request(s3.virtual_hosted_style)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(s3.allow_http)
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_timeout_disabled(),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_millis(500),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: request_timeout(config),
            });
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint.as_str());
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        let trust_state_key = config.trust_state_key()?;
        if let Some((id, secret)) = config.s3_credentials()? {
            builder = builder
                .with_access_key_id(id.expose())
                .with_secret_access_key(secret.expose());
        }
        let store = builder.build().map_err(|source| StorageError::Build {
            bucket: s3.bucket.clone(),
            source,
        })?;
        Ok(Some(Self {
            store: Arc::new(store),
            prefix: Key::from(s3.prefix.as_str()),
            trust_state_key,
        }))
    }

    /// The cache's shared tier in this store, bounded by `config`'s limits.
    pub fn tier(&self, config: &Config) -> SharedTier {
        SharedTier::new(
            self.store.clone(),
            self.prefix.clone(),
            SharedOptions {
                request_timeout: request_timeout(config),
                read_timeout: config.limits.upstream_read_timeout,
                min_read_rate: MIN_READ_RATE,
                max_manifest_size: config.limits.max_manifest_size,
                max_uploads: MAX_UPLOADS,
                max_queued_uploads: MAX_QUEUED_UPLOADS,
            },
        )
    }

    /// The overall deadline of one trust state read or write: the shared store's request
    /// timeout (see `trust/notary/state.rs`).
    pub fn trust_state_deadline(config: &Config) -> Duration {
        request_timeout(config)
    }

    /// Where the trust state of notary server `name` lives: `<prefix>/trust/<name>`.
    pub fn trust_prefix(&self, name: &str) -> Key {
        self.prefix.clone().join("trust").join(name)
    }
}

fn request_timeout(config: &Config) -> Duration {
    REQUEST_TIMEOUT.min(config.limits.upstream_timeout)
}
