//! Why the TUF client refused: one variant per failure, each naming the role or file, so an
//! operator can tell a stale mirror from an attack from a broken configuration.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::fetch::FetchError;
use crate::trust::notary::format_time;

/// A top-level TUF role, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Root,
    Timestamp,
    Snapshot,
    Targets,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Timestamp => "timestamp",
            Role::Snapshot => "snapshot",
            Role::Targets => "targets",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a TUF update or an offline read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TufError {
    #[error("TUF repository URL {url:?} is not an http(s) URL")]
    BadUrl { url: String },
    #[error("{what} is not valid TUF metadata: {detail}")]
    Malformed { what: String, detail: String },
    #[error("{what}: expected {role} metadata, got type {found:?}")]
    WrongType {
        what: String,
        role: Role,
        found: String,
    },
    #[error(
        "{what} is not signed by a threshold of trusted {role} keys ({valid} of {threshold} \
         valid signatures)"
    )]
    Threshold {
        what: String,
        role: Role,
        valid: usize,
        threshold: u64,
    },
    #[error("{what} has {count} signatures, more than the {max} a client checks")]
    TooManySignatures {
        what: String,
        count: usize,
        max: usize,
    },
    #[error(
        "{role} metadata expired at {} (it is now {}): the repository or mirror may be serving \
         frozen metadata, or the cache is too old to use offline",
        format_time(expires),
        format_time(now)
    )]
    Expired {
        role: Role,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    },
    #[error(
        "rollback: the mirror offers {what} version {offered}, older than the trusted version \
         {trusted}"
    )]
    Rollback {
        what: String,
        offered: u64,
        trusted: u64,
    },
    #[error("{what} has version {found}, expected exactly {expected}")]
    VersionMismatch {
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{what} was listed by the trusted snapshot and is missing from the new one")]
    MetaDropped { what: String },
    #[error("{what} does not match the {algorithm} hash its trusted listing gives")]
    HashMismatch { what: String, algorithm: String },
    #[error("{what} is {found} bytes long, its trusted listing says {expected}")]
    LengthMismatch {
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{what} lists no sha256 or sha512 hash, so it cannot be checked")]
    NoKnownHash { what: String },
    #[error("{what} is not listed by the trusted {listed_by} metadata")]
    NotListed { what: String, listed_by: Role },
    #[error(
        "target {name:?} is not listed by the top-level targets role; delegated targets are not \
         followed"
    )]
    NotTopLevel { name: String },
    #[error("target {name:?} is {length} bytes, above the {max}-byte limit for a target")]
    TargetTooLarge { name: String, length: u64, max: u64 },
    #[error("target name {name:?} is not a safe relative path")]
    BadTargetName { name: String },
    #[error("the repository has no {what}")]
    Missing { what: String },
    #[error("{what} is not in the cache (no successful update has stored it yet)")]
    NotCached { what: String },
    #[error("cached {what} does not verify: {detail}")]
    BadCache { what: String, detail: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}
