//! `records`: where decision records go (see `crate::records`). Absent: none are kept.
//!
//! ```yaml
//! records:
//!   file: {path: /var/log/trustgate/decisions.jsonl, max_size: 100MiB, keep: 5}
//!   webhooks:
//!     - url: https://siem.example/hooks/trustgate
//!       queue: 1024          # records waiting; beyond this they are dropped and counted
//!       timeout: 5s          # per attempt
//!       max_retries: 5       # backoff 100ms, doubled, at most 5s
//!       headers_file: /etc/trustgate/webhook-headers   # `Name: value` lines, secret
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{self, HttpUrl};

/// `records`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    /// A JSON-lines file, rotated by size.
    pub file: Option<RecordsFileConfig>,
    /// CloudEvents webhooks.
    #[serde(default)]
    pub webhooks: Vec<RecordsWebhookConfig>,
}

/// `records.file`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsFileConfig {
    pub path: PathBuf,
    /// Rotated once it would exceed this; default `100MiB`.
    #[serde(
        default = "RecordsFileConfig::default_max_size",
        deserialize_with = "values::byte_size"
    )]
    pub max_size: u64,
    /// Rotated files kept (`path.1` ... `path.<keep>`); default 5.
    #[serde(default = "RecordsFileConfig::default_keep")]
    pub keep: usize,
    /// Records waiting to be written; default 8192.
    #[serde(default = "RecordsFileConfig::default_queue")]
    pub queue: usize,
}

/// One entry of `records.webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsWebhookConfig {
    pub url: HttpUrl,
    /// Records waiting to be sent; default 1024.
    #[serde(default = "RecordsWebhookConfig::default_queue")]
    pub queue: usize,
    /// Per attempt; default `5s`.
    #[serde(
        default = "RecordsWebhookConfig::default_timeout",
        deserialize_with = "values::duration"
    )]
    pub timeout: Duration,
    /// Attempts after the first; default 5.
    #[serde(default = "RecordsWebhookConfig::default_max_retries")]
    pub max_retries: u32,
    /// A file of `Name: value` header lines (e.g. `Authorization: Bearer ...`), read at
    /// startup and never logged.
    pub headers_file: Option<PathBuf>,
}

impl RecordsFileConfig {
    fn default_max_size() -> u64 {
        100 * 1024 * 1024
    }

    fn default_keep() -> usize {
        5
    }

    fn default_queue() -> usize {
        8192
    }
}

impl RecordsWebhookConfig {
    fn default_queue() -> usize {
        1024
    }

    fn default_timeout() -> Duration {
        Duration::from_secs(5)
    }

    fn default_max_retries() -> u32 {
        5
    }
}
