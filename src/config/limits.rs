//! `limits`: how much a client, an upstream registry or a notary server can make trustgate
//! read, wait for or hold open. Every key has a safe default; none can be zero.
//!
//! ```yaml
//! limits:
//!   max_manifest_size: 4MiB          # a manifest read from an upstream
//!   max_trust_metadata_size: 16MiB   # one trust metadata file (root 2MiB, timestamp 1MiB)
//!   max_blob_size: 16GiB             # a blob no signed descriptor gives the size of
//!   header_timeout: 10s              # client: connect to complete request headers
//!   request_timeout: 60s             # client: request to response headers
//!   upstream_timeout: 30s            # registry or notary server: request to response
//!   upstream_read_timeout: 30s       # registry: longest pause inside a blob body
//!   max_connections: 4096            # client connections open at once
//!   max_connections_per_client: 256  # client connections open at once from one address
//!   max_concurrent_requests: 1024    # client requests in progress at once
//!   max_upstream_connections: 64     # requests in flight to one upstream registry
//! ```
//!
//! Decisions:
//! - Sizes bound memory: a manifest and a trust file are read whole before they are checked,
//!   so a body longer than the limit is cut off while it streams, whatever its
//!   `Content-Length` says. The timestamp and root keep notary's own smaller caps (1 MiB and
//!   2 MiB) unless `max_trust_metadata_size` is smaller still.
//! - A blob under `verify` is read to exactly the size its signed descriptor gives, however
//!   long the upstream's body or whatever its `Content-Length`. Under `audit` and `allow` no
//!   descriptor vouches for a size, so `max_blob_size` bounds the body instead (from a registry
//!   and from the shared bucket alike): a longer one fails mid-way and nothing is stored. The
//!   default, 16 GiB, is above the largest layers seen in practice (model and CUDA images
//!   reach a few GiB) and still stops an endless body. The cache's room is a second, separate
//!   bound: it is made only for bytes that arrived, never for an announced length.
//! - `upstream_timeout` covers a manifest, tag list or trust file including its body, and a
//!   blob up to its response headers; after that, `upstream_read_timeout` bounds each pause.
//!   It is below `request_timeout` by default so that a stalled upstream is reported as such
//!   (504 from the proxy) before the client's own deadline cuts the request off.
//! - `max_connections_per_client` keeps one peer from taking every slot of
//!   `max_connections`: a peer is a source address (an IPv6 one its /64), and its connections
//!   over the cap are closed at accept without taking a slot. Every client behind one address
//!   (a load balancer, a sidecar on loopback) is one peer: raise the cap there, up to
//!   `max_connections` to turn it off.
//! - The upstream and trust limits (`upstream_timeout`, `upstream_read_timeout`,
//!   `max_upstream_connections`, `max_trust_metadata_size`) change on a reload (SIGHUP) with
//!   the clients they configure; the listener and proxy ones apply from the next start.

use std::time::Duration;

use serde::Deserialize;

use super::values;

/// `limits`: sizes, timeouts and concurrency caps. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest manifest accepted from an upstream; default `4MiB` (distribution's own limit).
    #[serde(deserialize_with = "values::byte_size")]
    pub max_manifest_size: u64,
    /// Largest trust metadata file accepted from a notary server; default `16MiB`.
    #[serde(deserialize_with = "values::byte_size")]
    pub max_trust_metadata_size: u64,
    /// Largest blob accepted without a signed size (under `audit` and `allow`, from an
    /// upstream or the shared bucket); default `16GiB`.
    #[serde(deserialize_with = "values::byte_size")]
    pub max_blob_size: u64,
    /// How long a client may take from connecting to complete request headers (TLS
    /// handshake included), and between requests on a kept-alive connection; default `10s`.
    #[serde(deserialize_with = "values::duration")]
    pub header_timeout: Duration,
    /// How long a request may take to its response headers (a blob body then streams for as
    /// long as it takes); default `60s`.
    #[serde(deserialize_with = "values::duration")]
    pub request_timeout: Duration,
    /// How long an upstream registry or notary server may take to answer: a whole manifest,
    /// tag list or trust file, or a blob's response headers; default `30s`.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_timeout: Duration,
    /// The longest pause inside a blob body from an upstream before the fetch fails; default
    /// `30s`.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_read_timeout: Duration,
    /// Most client connections open at once; more wait in the listen backlog. Default `4096`.
    pub max_connections: usize,
    /// Most client connections open at once from one peer (source address; IPv6: its /64);
    /// more from it are closed at accept and take no slot of `max_connections`. Default
    /// `256`.
    pub max_connections_per_client: usize,
    /// Most client requests in progress at once (a blob counts until its body ends); more
    /// wait for a slot within `request_timeout`. Default `1024`.
    pub max_concurrent_requests: usize,
    /// Most requests in flight to one upstream registry (a blob counts until its body ends);
    /// more wait for a slot within `upstream_timeout`. Default `64`.
    pub max_upstream_connections: usize,
}

// === impl LimitsConfig ===

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_manifest_size: 4 << 20,
            max_trust_metadata_size: 16 << 20,
            max_blob_size: 16 << 30,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            upstream_timeout: Duration::from_secs(30),
            upstream_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_client: 256,
            max_concurrent_requests: 1024,
            max_upstream_connections: 64,
        }
    }
}

impl LimitsConfig {
    /// The first key whose value is zero, which would refuse or cut off everything.
    pub(super) fn zero_key(&self) -> Option<&'static str> {
        [
            ("max_manifest_size", self.max_manifest_size == 0),
            ("max_trust_metadata_size", self.max_trust_metadata_size == 0),
            ("max_blob_size", self.max_blob_size == 0),
            ("header_timeout", self.header_timeout.is_zero()),
            ("request_timeout", self.request_timeout.is_zero()),
            ("upstream_timeout", self.upstream_timeout.is_zero()),
            (
                "upstream_read_timeout",
                self.upstream_read_timeout.is_zero(),
            ),
            ("max_connections", self.max_connections == 0),
            (
                "max_connections_per_client",
                self.max_connections_per_client == 0,
            ),
            ("max_concurrent_requests", self.max_concurrent_requests == 0),
            (
                "max_upstream_connections",
                self.max_upstream_connections == 0,
            ),
        ]
        .into_iter()
        .find_map(|(key, zero)| zero.then_some(key))
    }
}
