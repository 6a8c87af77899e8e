//! Everything that can make Notary v1 trust data unusable, one variant per failure.
//!
//! Messages name the role and say what a user can act on; the CLI prints them as they are and
//! the proxy puts them into its `DENIED` responses.

use time::OffsetDateTime;

use super::keys::KeyError;

/// Why fetching a metadata file failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not found")]
    NotFound,
    #[error("more than {limit} bytes (metadata too large)")]
    TooLarge { limit: u64 },
    #[error("the trust server answered HTTP {status} for {url}")]
    Status { status: u16, url: String },
    #[error("the TLS certificate of the trust server {url} has expired ({detail}); the server's operator must renew it")]
    TlsExpired { url: String, detail: String },
    #[error("the TLS certificate of the trust server {url} is not trusted ({detail}); set the server's ca_file (--ca-file) if it uses a private CA")]
    TlsUntrusted { url: String, detail: String },
    #[error("cannot reach the trust server {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("timed out after {seconds}s fetching {url}")]
    Timeout { url: String, seconds: u64 },
    #[error("reading {path}: {detail}")]
    Io { path: String, detail: String },
}

/// Why trust data for a GUN did not verify.
#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error("{role}: not found on the trust server (is the repository signed?)")]
    NotFound { role: String },
    #[error("{role}: {source}")]
    Fetch {
        role: String,
        #[source]
        source: FetchError,
    },
    #[error("{role}: metadata too large: {size} bytes exceeds the limit of {limit}")]
    TooLarge { role: String, size: u64, limit: u64 },
    #[error("{role}: malformed metadata: {detail}")]
    Malformed { role: String, detail: String },
    #[error("{role}: _type is {found:?}, expected {expected:?}")]
    WrongType {
        role: String,
        found: String,
        expected: &'static str,
    },
    #[error("{role}: expired at {}", fmt_time(expires))]
    Expired {
        role: String,
        expires: OffsetDateTime,
    },
    #[error("{role}: version {version} is lower than the last verified version {last} (rollback)")]
    Rollback {
        role: String,
        version: i64,
        last: i64,
    },
    #[error("{role}: length mismatch: {parent} lists {expected} bytes, got {actual}")]
    LengthMismatch {
        role: String,
        parent: String,
        expected: i64,
        actual: u64,
    },
    #[error("{role}: {alg} hash mismatch with the hash {parent} lists")]
    HashMismatch {
        role: String,
        parent: String,
        alg: String,
    },
    #[error("{role}: {parent} lists no sha256 or sha512 hash for it")]
    NoHashes { role: String, parent: String },
    #[error("{role}: not listed in {parent}")]
    NotListed { role: String, parent: String },
    #[error("{role}: signature threshold {threshold} not met: {valid} valid signature(s){}", details(.problems))]
    Threshold {
        role: String,
        threshold: i64,
        valid: usize,
        problems: Vec<String>,
    },
    #[error("{role}: signature key ID {keyid} does not match the key's content (its key ID is {computed})")]
    KeyIdMismatch {
        role: String,
        keyid: String,
        computed: String,
    },
    #[error("{role}: invalid role: {reason}")]
    InvalidRole { role: String, reason: String },
    #[error("root: no usable root certificate for {gun}: {}", .problems.join("; "))]
    RootCertificates { gun: String, problems: Vec<String> },
    #[error("root: pinned root key {} not found in the root of {gun}", .pins.join(", "))]
    PinnedKeyNotFound { gun: String, pins: Vec<String> },
    #[error("root: root rotation to version {version} refused: {reason}")]
    RootRotation { version: i64, reason: String },
    #[error("root: snapshot lists a root that differs from the trusted root and no valid newer root was found")]
    RootMismatch,
    #[error("root: root rotation refused: the server's root version {version} differs from the trusted root of the same version (a re-initialised repository or a foreign root, not a signed rotation)")]
    RootChangedInPlace { version: i64 },
    #[error("{role}: key {keyid}: {source}")]
    BadKey {
        role: String,
        keyid: String,
        #[source]
        source: KeyError,
    },
    #[error("{role}: too many delegations (limit {limit})")]
    TooManyDelegations { role: String, limit: usize },
    /// The trust state could not be read or written (directory or object store unavailable).
    #[error("trust state {path}: {detail}")]
    State { path: String, detail: String },
    /// A stored trust state is unusable. Refused rather than taken for absent, which would
    /// trust a new root on first use.
    #[error("trust state {path} is corrupt ({detail}); refusing to trust on first use again: an operator who wants this GUN to start over deletes that state")]
    StateCorrupt { path: String, detail: String },
    /// A stored trust state that the trust state key did not seal for this GUN and server:
    /// written by someone without the key (the bucket, or whoever can write it). Refused, never
    /// taken for absent.
    #[error("trust state {path} does not authenticate ({detail}): it was not written by a replica holding the trust state key; refusing it: an operator who wants this GUN to start over deletes that state")]
    StateUnauthentic { path: String, detail: String },
    /// Other replicas saved the state of this GUN every time this one tried to.
    #[error("trust state of {gun}: changed by another writer during each of {attempts} attempts to save it")]
    StateContended { gun: String, attempts: usize },
}

impl NotaryError {
    /// Errors caused by reaching the server or the trust state store rather than by what the
    /// server served. These say nothing about the trust data and do not warrant a root update.
    /// A corrupt state is not one of them: it is what an attacker with write access to the
    /// state would produce.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            NotaryError::Fetch { .. }
                | NotaryError::NotFound { .. }
                | NotaryError::State { .. }
                | NotaryError::StateContended { .. }
        )
    }

    /// Errors of the trust state store (shared or local), not of the trust server.
    pub fn is_state(&self) -> bool {
        matches!(
            self,
            NotaryError::State { .. }
                | NotaryError::StateCorrupt { .. }
                | NotaryError::StateUnauthentic { .. }
                | NotaryError::StateContended { .. }
        )
    }
}

pub fn fmt_time(t: &OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn details(problems: &[String]) -> String {
    if problems.is_empty() {
        String::new()
    } else {
        format!(" ({})", problems.join("; "))
    }
}
