//! A TUF client (TUF specification v1.0, section 5 "Detailed client workflow") that keeps one
//! top-level target current from a repository such as sigstore's public-good trust root
//! (`https://tuf-repo-cdn.sigstore.dev`, target `trusted_root.json`).
//!
//! The operator supplies the initial root; [`TufClient::refresh`] walks the root rotations,
//! then timestamp, snapshot and targets, and returns the target's verified bytes, persisting
//! every newly trusted file in the cache directory. [`TufClient::cached`] answers offline from
//! that cache for as long as the cached metadata has not expired, re-verifying all of it.
//!
//! The mirror is the adversary: every fetch is bounded in size ([`Limits`]) and time
//! ([`HttpFetch`]), every file is checked against signatures or a trusted listing before use.
//! Delegated targets are not followed (the sigstore trust root is a top-level target).
//!
//! Parts: [`metadata`] (document formats and the threshold check), `update` (the workflow
//! steps), [`fetch`] (the [`Fetch`] trait and [`HttpFetch`]), `cache` (atomic files),
//! `canonical` (the signed bytes).

mod cache;
mod canonical;
mod error;
pub mod fetch;
pub mod metadata;
mod update;

#[cfg(test)]
mod tests;

use std::{fmt, path::PathBuf};

use time::OffsetDateTime;

pub use error::{Role, TufError};
pub use fetch::{Fetch, FetchError, HttpFetch};

use cache::Cache;
use metadata::{Parsed, RootBody};

/// Bounds on what the mirror may make the client read (TUF 5.3.3's W and Y, 5.4.1's X,
/// 5.5.1's Y, 5.6.1's Z). The defaults fit sigstore's repository with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_root_size: u64,
    pub max_timestamp_size: u64,
    pub max_snapshot_size: u64,
    pub max_targets_size: u64,
    /// Largest target fetched, whatever length targets metadata lists.
    pub max_target_size: u64,
    /// New root versions fetched in one update (5.3.3).
    pub max_root_rotations: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_root_size: 512 << 10,
            max_timestamp_size: 16 << 10,
            max_snapshot_size: 2 << 20,
            max_targets_size: 2 << 20,
            max_target_size: 8 << 20,
            max_root_rotations: 32,
        }
    }
}

/// A TUF client for one repository, one initial root and one cache directory.
pub struct TufClient {
    /// Repository base URL, no trailing `/`: metadata at `<url>/<file>`, targets at
    /// `<url>/targets/<file>`.
    url: String,
    /// The operator's root, parsed and self-signed (checked in [`TufClient::new`]).
    initial_root: Parsed<RootBody>,
    cache: Cache,
    limits: Limits,
}

impl fmt::Debug for TufClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TufClient")
            .field("url", &self.url)
            .field("initial_root_version", &self.initial_root.version)
            .field("cache", &self.cache)
            .field("limits", &self.limits)
            .finish()
    }
}

// === impl TufClient ===

impl TufClient {
    /// `initial_root`: the operator's root metadata file (any version of the repository's
    /// root; the client walks forward from it). It must parse and be signed by a threshold of
    /// its own root keys.
    pub fn new(url: &str, initial_root: Vec<u8>, cache_dir: PathBuf) -> Result<Self, TufError> {
        let base = url.trim_end_matches('/');
        let scheme_ok = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#']));
        if !scheme_ok {
            return Err(TufError::BadUrl {
                url: url.to_owned(),
            });
        }
        let limits = Limits::default();
        if initial_root.len() as u64 > limits.max_root_size {
            return Err(TufError::Malformed {
                what: "the initial root".to_owned(),
                detail: format!("larger than {} bytes", limits.max_root_size),
            });
        }
        let root = update::self_signed_root("the initial root", initial_root)?;
        Ok(TufClient {
            url: base.to_owned(),
            initial_root: root,
            cache: Cache::new(cache_dir),
            limits,
        })
    }

    /// Replaces the default [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs the client workflow against the repository and returns the verified bytes of
    /// target `name` (e.g. `trusted_root.json`); persists the new trusted metadata. `now` is
    /// the fixed update start time (5.1) every expiry is checked against.
    pub async fn refresh(
        &self,
        fetch: &dyn Fetch,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, TufError> {
        let name = TargetName::new(name)?;
        self.run_update(fetch, &name, now).await
    }

    /// Offline: the cached target, if the cached metadata verifies and has not expired at
    /// `now`.
    pub fn cached(&self, name: &str, now: OffsetDateTime) -> Result<Vec<u8>, TufError> {
        let name = TargetName::new(name)?;
        self.load_offline(&name, now)
    }
}

/// A target name checked once: a relative path of plain components, so it can name a cache
/// file and a URL path without escaping either.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TargetName(String);

/// Longest target name accepted.
const MAX_TARGET_NAME: usize = 255;

impl TargetName {
    fn new(name: &str) -> Result<Self, TufError> {
        let bad = || TufError::BadTargetName {
            name: name.to_owned(),
        };
        if name.is_empty() || name.len() > MAX_TARGET_NAME {
            return Err(bad());
        }
        for part in name.split('/') {
            let plain = part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
            if part.is_empty() || part == "." || part == ".." || part.starts_with('.') || !plain {
                return Err(bad());
            }
        }
        Ok(TargetName(name.to_owned()))
    }

    fn as_str(&self) -> &str {
        &self.0
    }

    /// The name under consistent snapshots (5.7.3): `HASH.` before the file name, after any
    /// directories.
    fn with_hash_prefix(&self, hash: &str) -> String {
        match self.0.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/{hash}.{file}"),
            None => format!("{hash}.{}", self.0),
        }
    }
}
