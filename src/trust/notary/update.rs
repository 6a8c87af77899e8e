//! The Notary v1 client workflow (notary `client/tufclient.go`), step by step:
//!
//! 1. Trusted root: the persisted one, or on first use `root.json` checked against the pins
//!    (`trustpinning/certs.go: ValidateRoot`).
//! 2. Timestamp, always fetched, signed by the root's timestamp keys.
//! 3. Snapshot by the checksum the timestamp lists; length and hashes must match.
//! 4. The root the snapshot lists must be the trusted one, else the root rotated: fetch the new
//!    root(s), each signed by its predecessor's root threshold and its own, then start again.
//! 5. Targets by the checksum the snapshot lists.
//! 6. Delegations, pre-order, keys and threshold from the parent, paths restricted by the
//!    parent; expired or under-threshold delegations are skipped as notary's client does.
//! 7. Versions never go down (rollback), and the new state is persisted.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{
    data::{KeyInfo, RoleData, Skipped, Target, TrustData, TARGETS},
    error::{FetchError, NotaryError},
    schema::{DelegatedRole, FileMeta, Root, Signed, Snapshot, Targets, Timestamp},
    source::{MetaName, Source},
    state::{GunState, Saved, StateStore},
    verify::{
        check_common, check_file_meta, check_signatures, key_ring, sha256_hex_of_meta, KeyRing,
    },
};

/// Bounds on what a trust server can make us read or walk (endless-data and
/// resource-exhaustion attacks).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// notary's `MaxTimestampSize` is 1 MiB.
    pub max_timestamp_size: u64,
    pub max_root_size: u64,
    /// Snapshot, targets and each delegation.
    pub max_metadata_size: u64,
    pub max_delegations: usize,
    pub max_delegation_depth: usize,
    pub max_root_rotations: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_timestamp_size: 1 << 20,
            max_root_size: 2 << 20,
            max_metadata_size: 16 << 20,
            max_delegations: 1000,
            max_delegation_depth: 8,
            max_root_rotations: 64,
        }
    }
}

/// Verifies the Notary v1 trust data of GUNs from one source.
#[derive(Debug, Clone)]
pub struct NotaryClient {
    source: Source,
    limits: Limits,
    state: Option<StateStore>,
}

/// A parsed root and the exact bytes it came from.
#[derive(Debug, Clone)]
struct RootFile {
    bytes: Bytes,
    signed: Signed<Root>,
    ring: KeyRing,
}

impl RootFile {
    fn parse(bytes: Bytes) -> Result<Self, NotaryError> {
        let signed: Signed<Root> = parse("root", &bytes)?;
        let ring = key_ring(&signed.signed.keys);
        Ok(RootFile {
            bytes,
            signed,
            ring,
        })
    }

    fn version(&self) -> i64 {
        self.signed.signed.common.version
    }

    fn role(&self, role: &str) -> Result<(&[String], i64), NotaryError> {
        self.signed
            .signed
            .roles
            .get(role)
            .map(|r| (r.keyids.as_slice(), r.threshold))
            .ok_or_else(|| NotaryError::InvalidRole {
                role: "root".to_owned(),
                reason: format!("root defines no {role} role"),
            })
    }

    fn check_role<T>(&self, role: &str, signed: &Signed<T>) -> Result<(), NotaryError> {
        let (keyids, threshold) = self.role(role)?;
        check_signatures(role, signed, &self.ring, keyids, threshold)
    }

    fn key_infos(&self, role: &str) -> Vec<KeyInfo> {
        let keyids = self.role(role).map(|(k, _)| k).unwrap_or_default();
        key_infos(&self.ring, keyids)
    }
}

fn key_infos(ring: &KeyRing, keyids: &[String]) -> Vec<KeyInfo> {
    keyids
        .iter()
        .filter_map(|id| ring.get(id)?.as_ref().ok())
        .map(|k| KeyInfo {
            id: k.id().to_owned(),
            canonical_id: k.canonical_id().to_owned(),
            keytype: k.keytype().to_owned(),
        })
        .collect()
}

fn parse<T: DeserializeOwned>(role: &str, bytes: &[u8]) -> Result<Signed<T>, NotaryError> {
    Signed::from_slice(bytes).map_err(|e| NotaryError::Malformed {
        role: role.to_owned(),
        detail: e.to_string(),
    })
}

/// Everything one verification run needs to know.
struct Run<'a> {
    client: &'a NotaryClient,
    gun: &'a str,
    at: OffsetDateTime,
    pins: &'a [String],
    state: &'a GunState,
}

// === impl NotaryClient ===

impl NotaryClient {
    pub fn new(source: Source, limits: Limits, state: Option<StateStore>) -> Self {
        NotaryClient {
            source,
            limits,
            state,
        }
    }

    /// Fetches and verifies the trust data of `gun` as of `at`. `pins` are root key IDs
    /// (certificate IDs or canonical IDs); when non-empty, only those keys may sign the root.
    ///
    /// With a state store, this is load, verify, save-if-unchanged: when another writer (a
    /// replica sharing the store) saved the GUN's state in between, the verification runs
    /// again from that newer state, at most [`STATE_ATTEMPTS`] times. notary's client checks
    /// each downloaded role against the version of its cached copy (`tufclient.go:
    /// tryLoadRemote`: the cached version is the builder's `minVersion`, and a lower one fails
    /// `VerifyVersion` with `ErrLowVersion`), trusts a downloaded root only when no root is
    /// cached (`client.go: bootstrapClient`), and writes the cache only after the data
    /// verified. Here that cache is the state all replicas share: data older than what any
    /// replica stored is a rollback, and the root trusted on first use is the one stored first.
    pub async fn verify(
        &self,
        gun: &str,
        at: OffsetDateTime,
        pins: &[String],
    ) -> Result<TrustData, NotaryError> {
        let Some(store) = &self.state else {
            let (trust, _) = self
                .verify_from(gun, at, pins, &GunState::empty(gun))
                .await?;
            return Ok(trust);
        };
        for attempt in 1..=STATE_ATTEMPTS {
            // Never verify without the stored state: a failure to load fails the update.
            let (state, revision) = store.load(gun).await?;
            let (trust, next) = self.verify_from(gun, at, pins, &state).await?;
            // Step 7: persist the new trust anchor and versions, unless another writer did
            // first.
            match store.save(&next, &revision).await? {
                Saved::Stored => return Ok(trust),
                Saved::Conflict => {
                    tracing::debug!(gun, attempt, "trust state changed while verifying; again");
                }
            }
        }
        Err(NotaryError::StateContended {
            gun: gun.to_owned(),
            attempts: STATE_ATTEMPTS,
        })
    }

    /// Steps 1-6 from `state`; the trust data and the state to store after them.
    async fn verify_from(
        &self,
        gun: &str,
        at: OffsetDateTime,
        pins: &[String],
        state: &GunState,
    ) -> Result<(TrustData, GunState), NotaryError> {
        let run = Run {
            client: self,
            gun,
            at,
            pins,
            state,
        };
        // Step 1: the trusted root.
        let (root, first_use) = match state.root_bytes() {
            Some(bytes) => (RootFile::parse(Bytes::from(bytes))?, false),
            None => (run.fetch_root(MetaName::latest("root")).await?, true),
        };
        let (root, data) = match run.update(&root).await {
            Ok(data) => (root, data),
            // notary's client answers any failure by looking for a newer root and trying once
            // more (`tufclient.go: Update`); a root fetched just now cannot be newer.
            Err(e) if !first_use && !e.is_transport() => match run.rotate(&root).await? {
                Some(new_root) => {
                    let data = run.update(&new_root).await?;
                    (new_root, data)
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let mut next = state.clone();
        next.root = Some(super::schema::b64_encode(&root.bytes));
        next.advance("root", root.version());
        for (role, version) in &data.versions {
            next.advance(role, *version);
        }
        Ok((data.trust, next))
    }
}

/// How many times [`NotaryClient::verify`] verifies and tries to save before giving up on a
/// GUN whose state other writers keep changing.
pub const STATE_ATTEMPTS: usize = 3;

struct Update {
    trust: TrustData,
    versions: Vec<(String, i64)>,
}

// === impl Run ===

impl Run<'_> {
    async fn fetch(&self, role: &str, name: MetaName, limit: u64) -> Result<Bytes, NotaryError> {
        self.client
            .source
            .fetch(self.gun, &name, limit)
            .await
            .map_err(|e| match e {
                FetchError::NotFound => NotaryError::NotFound {
                    role: role.to_owned(),
                },
                source => NotaryError::Fetch {
                    role: role.to_owned(),
                    source,
                },
            })
    }

    /// Fetches a file its parent lists, by checksum, and checks length and hashes.
    async fn fetch_listed(
        &self,
        role: &str,
        parent: &str,
        meta: &FileMeta,
    ) -> Result<Bytes, NotaryError> {
        let limit = self.client.limits.max_metadata_size;
        if meta.length < 0 || meta.length as u64 > limit {
            return Err(NotaryError::TooLarge {
                role: role.to_owned(),
                size: meta.length.max(0) as u64,
                limit,
            });
        }
        let name = MetaName::by_checksum(role, sha256_hex_of_meta(meta));
        let bytes = self.fetch(role, name, limit).await?;
        check_file_meta(role, parent, &bytes, meta)?;
        Ok(bytes)
    }

    async fn fetch_root(&self, name: MetaName) -> Result<RootFile, NotaryError> {
        let bytes = self
            .fetch("root", name, self.client.limits.max_root_size)
            .await?;
        RootFile::parse(bytes)
    }

    /// Root checks (notary `trustpinning/certs.go: ValidateRoot`): every root key is a leaf
    /// certificate whose common name is the GUN, valid now and not signed with SHA-1; with
    /// pins, only pinned keys count; the root must reach its own threshold with the keys left.
    fn validate_root(&self, root: &RootFile) -> Result<(), NotaryError> {
        let common = &root.signed.signed.common;
        check_common("root", common, "Root", self.at, None, false)?;
        let (keyids, threshold) = root.role("root")?;
        let pinned = |id: &str, canonical: &str| {
            self.pins
                .iter()
                .any(|p| p.eq_ignore_ascii_case(id) || p.eq_ignore_ascii_case(canonical))
        };
        let mut usable = Vec::new();
        let mut problems = Vec::new();
        let mut any_pinned = false;
        for keyid in keyids {
            let short = keyid.get(..12).unwrap_or(keyid);
            let key = match root.ring.get(keyid) {
                Some(Ok(key)) => key,
                Some(Err(e)) => {
                    problems.push(format!("key {short}: {e}"));
                    continue;
                }
                None => {
                    problems.push(format!("key {short} is not defined"));
                    continue;
                }
            };
            if !self.pins.is_empty() {
                if !pinned(key.id(), key.canonical_id()) {
                    continue;
                }
                any_pinned = true;
            }
            let Some(cert) = key.certificate() else {
                problems.push(format!(
                    "key {short} is a bare {} key, not a certificate",
                    key.keytype()
                ));
                continue;
            };
            let cn = cert.common_name.as_deref().unwrap_or("");
            if !cn_matches_gun(cn, self.gun) {
                problems.push(format!(
                    "key {short}: certificate common name {cn:?} does not match the GUN {:?}",
                    self.gun
                ));
            } else if cert.not_after < self.at {
                problems.push(format!(
                    "key {short}: certificate expired at {}",
                    super::error::fmt_time(&cert.not_after)
                ));
            } else if cert.not_before > self.at {
                problems.push(format!(
                    "key {short}: certificate not valid before {}",
                    super::error::fmt_time(&cert.not_before)
                ));
            } else if cert.sha1_signed {
                problems.push(format!("key {short}: certificate is signed with SHA-1"));
            } else {
                usable.push(keyid.clone());
            }
        }
        if !self.pins.is_empty() && !any_pinned {
            return Err(NotaryError::PinnedKeyNotFound {
                gun: self.gun.to_owned(),
                pins: self.pins.to_vec(),
            });
        }
        if usable.is_empty() {
            return Err(NotaryError::RootCertificates {
                gun: self.gun.to_owned(),
                problems,
            });
        }
        check_signatures("root", &root.signed, &root.ring, &usable, threshold)
    }

    /// Step 4: looks for a newer root than `trusted` and walks every version in between, each
    /// signed by the threshold of its predecessor's root keys and by its own
    /// (`tufclient.go: updateRootVersions`, `LoadRootForUpdate`). Intermediate roots may have
    /// expired; the final one is fully validated by the next update.
    async fn rotate(&self, trusted: &RootFile) -> Result<Option<RootFile>, NotaryError> {
        let latest = self.fetch_root(MetaName::latest("root")).await?;
        let (from, to) = (trusted.version(), latest.version());
        if to < from {
            return Err(NotaryError::Rollback {
                role: "root".to_owned(),
                version: to,
                last: from,
            });
        }
        if to == from {
            return if latest.bytes == trusted.bytes {
                Ok(None)
            } else {
                Err(NotaryError::RootChangedInPlace { version: to })
            };
        }
        if to - from > self.client.limits.max_root_rotations {
            return Err(NotaryError::RootRotation {
                version: to,
                reason: format!(
                    "{} versions ahead of the trusted root (limit {})",
                    to - from,
                    self.client.limits.max_root_rotations
                ),
            });
        }
        let mut previous = trusted.clone();
        for version in from + 1..=to {
            let next = if version == to {
                latest.clone()
            } else {
                self.fetch_root(MetaName::root_version(version)).await?
            };
            let refuse = |reason: String| NotaryError::RootRotation { version, reason };
            if next.version() != version {
                return Err(refuse(format!("file claims version {}", next.version())));
            }
            check_common(
                "root",
                &next.signed.signed.common,
                "Root",
                self.at,
                None,
                true,
            )
            .map_err(|e| refuse(e.to_string()))?;
            previous
                .check_role("root", &next.signed)
                .map_err(|e| refuse(format!("not signed by the previous root's keys: {e}")))?;
            next.check_role("root", &next.signed)
                .map_err(|e| refuse(format!("not signed by its own root keys: {e}")))?;
            previous = next;
        }
        Ok(Some(previous))
    }

    /// Steps 2-6 with a given trusted root.
    async fn update(&self, root: &RootFile) -> Result<Update, NotaryError> {
        self.validate_root(root)?;
        let limits = self.client.limits;
        let mut versions = Vec::new();

        // Step 2: timestamp.
        let bytes = self
            .fetch(
                "timestamp",
                MetaName::latest("timestamp"),
                limits.max_timestamp_size,
            )
            .await?;
        let timestamp: Signed<Timestamp> = parse("timestamp", &bytes)?;
        root.check_role("timestamp", &timestamp)?;
        let common = &timestamp.signed.common;
        check_common(
            "timestamp",
            common,
            "Timestamp",
            self.at,
            self.state.version("timestamp"),
            false,
        )?;
        versions.push(("timestamp".to_owned(), common.version));

        // Step 3: snapshot.
        let meta = listed(&timestamp.signed.meta, "snapshot", "timestamp")?;
        let bytes = self.fetch_listed("snapshot", "timestamp", meta).await?;
        let snapshot: Signed<Snapshot> = parse("snapshot", &bytes)?;
        root.check_role("snapshot", &snapshot)?;
        let common = &snapshot.signed.common;
        check_common(
            "snapshot",
            common,
            "Snapshot",
            self.at,
            self.state.version("snapshot"),
            false,
        )?;
        versions.push(("snapshot".to_owned(), common.version));

        // Step 4: the snapshot must vouch for the root we trust.
        if let Some(meta) = snapshot.signed.meta.get("root") {
            if check_file_meta("root", "snapshot", &root.bytes, meta).is_err() {
                return Err(NotaryError::RootMismatch);
            }
        }

        // Step 5: targets.
        let meta = listed(&snapshot.signed.meta, TARGETS, "snapshot")?;
        let bytes = self.fetch_listed(TARGETS, "snapshot", meta).await?;
        let targets: Signed<Targets> = parse(TARGETS, &bytes)?;
        root.check_role(TARGETS, &targets)?;
        let common = &targets.signed.common;
        check_common(
            TARGETS,
            common,
            "Targets",
            self.at,
            self.state.version(TARGETS),
            false,
        )?;
        versions.push((TARGETS.to_owned(), common.version));

        let (targets_keyids, targets_threshold) = root.role(TARGETS)?;
        let mut roles = BTreeMap::new();
        roles.insert(
            TARGETS.to_owned(),
            role_data(
                &targets.signed,
                None,
                root.key_infos(TARGETS),
                targets_threshold,
            ),
        );
        let _ = targets_keyids;

        // Step 6: delegations.
        let mut skipped = Vec::new();
        self.walk_delegations(
            &snapshot.signed,
            &targets.signed,
            &mut roles,
            &mut skipped,
            &mut versions,
        )
        .await?;

        let mut expires = BTreeMap::new();
        expires.insert("root".to_owned(), root.signed.signed.common.expires);
        expires.insert("timestamp".to_owned(), timestamp.signed.common.expires);
        expires.insert("snapshot".to_owned(), snapshot.signed.common.expires);
        Ok(Update {
            trust: TrustData {
                gun: self.gun.to_owned(),
                roles,
                skipped,
                root_keys: root.key_infos("root"),
                expires,
            },
            versions,
        })
    }

    /// Step 6, pre-order: a parent is loaded before its children, and each child's subtree
    /// before its next sibling (`tufclient.go: downloadTargets`).
    async fn walk_delegations(
        &self,
        snapshot: &Snapshot,
        top: &Targets,
        roles: &mut BTreeMap<String, RoleData>,
        skipped: &mut Vec<Skipped>,
        versions: &mut Vec<(String, i64)>,
    ) -> Result<(), NotaryError> {
        struct Pending {
            parent: String,
            ring: std::sync::Arc<KeyRing>,
            role: DelegatedRole,
            parent_paths: Option<Vec<String>>,
            depth: usize,
        }
        let limits = self.client.limits;
        let children = |parent: &str, t: &Targets, paths: Option<Vec<String>>, depth: usize| {
            let ring = std::sync::Arc::new(key_ring(&t.delegations.keys));
            t.delegations
                .roles
                .iter()
                .rev()
                .map(|role| Pending {
                    parent: parent.to_owned(),
                    ring: ring.clone(),
                    role: role.clone(),
                    parent_paths: paths.clone(),
                    depth,
                })
                .collect::<Vec<_>>()
        };
        let mut stack = children(TARGETS, top, None, 1);
        let mut seen = BTreeSet::new();
        while let Some(p) = stack.pop() {
            let name = p.role.name.clone();
            if seen.len() >= limits.max_delegations {
                return Err(NotaryError::TooManyDelegations {
                    role: p.parent,
                    limit: limits.max_delegations,
                });
            }
            // A delegation is a direct child of the role that lists it (`targets/<name>`).
            let direct_child = name
                .strip_prefix(&p.parent)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|leaf| {
                    !leaf.is_empty() && !leaf.contains('/') && leaf != "." && leaf != ".."
                });
            if !direct_child || !seen.insert(name.clone()) {
                return Err(NotaryError::InvalidRole {
                    role: name,
                    reason: format!("not a unique direct delegation of {}", p.parent),
                });
            }
            if p.depth > limits.max_delegation_depth {
                skipped.push(Skipped {
                    role: name,
                    reason: format!("nested deeper than {} levels", limits.max_delegation_depth),
                });
                continue;
            }
            // notary only fetches roles the snapshot lists.
            let Some(meta) = snapshot.meta.get(&name) else {
                skipped.push(Skipped {
                    role: name,
                    reason: "not listed in the snapshot".to_owned(),
                });
                continue;
            };
            let bytes = self.fetch_listed(&name, "snapshot", meta).await?;
            let signed: Signed<Targets> = parse(&name, &bytes)?;
            // Expired and under-threshold delegations are warnings in notary's client; every
            // other failure (hash, rollback, type) fails the whole update.
            match check_signatures(&name, &signed, &p.ring, &p.role.keyids, p.role.threshold)
                .and_then(|()| {
                    check_common(
                        &name,
                        &signed.signed.common,
                        "Targets",
                        self.at,
                        self.state.version(&name),
                        false,
                    )
                }) {
                Ok(()) => {}
                Err(e @ (NotaryError::Threshold { .. } | NotaryError::Expired { .. })) => {
                    skipped.push(Skipped {
                        role: name,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            }
            // A child may only sign below its parent's paths (`RestrictDelegationPathPrefixes`).
            let paths: Vec<String> = match &p.parent_paths {
                None => p.role.paths.clone(),
                Some(parent) => p
                    .role
                    .paths
                    .iter()
                    .filter(|c| parent.iter().any(|pp| c.starts_with(pp.as_str())))
                    .cloned()
                    .collect(),
            };
            versions.push((name.clone(), signed.signed.common.version));
            let keys = key_infos(&p.ring, &p.role.keyids);
            stack.extend(children(
                &name,
                &signed.signed,
                Some(paths.clone()),
                p.depth + 1,
            ));
            roles.insert(
                name,
                role_data(&signed.signed, Some(&paths), keys, p.role.threshold),
            );
        }
        Ok(())
    }
}

fn listed<'m>(
    meta: &'m BTreeMap<String, FileMeta>,
    role: &str,
    parent: &str,
) -> Result<&'m FileMeta, NotaryError> {
    meta.get(role).ok_or_else(|| NotaryError::NotListed {
        role: role.to_owned(),
        parent: parent.to_owned(),
    })
}

/// The role's targets that carry a sha256 and lie within its paths (`None`: all paths).
fn role_data(
    targets: &Targets,
    paths: Option<&[String]>,
    keys: Vec<KeyInfo>,
    threshold: i64,
) -> RoleData {
    let allowed =
        |name: &str| paths.is_none_or(|ps| ps.iter().any(|p| name.starts_with(p.as_str())));
    RoleData {
        targets: targets
            .targets
            .iter()
            .filter(|(name, _)| allowed(name))
            .filter_map(|(name, meta)| {
                let sha = meta.hashes.get("sha256").filter(|h| h.len() == 32)?;
                Some((
                    name.clone(),
                    Target {
                        digest: format!("sha256:{}", hex::encode(sha)),
                        size: meta.length,
                    },
                ))
            })
            .collect(),
        keys,
        threshold,
        version: targets.common.version,
        expires: targets.common.expires,
    }
}

/// notary `trustpinning/certs.go: MatchCNToGun`: equal, or a common name ending in `*` is a
/// prefix of the GUN.
fn cn_matches_gun(cn: &str, gun: &str) -> bool {
    match cn.strip_suffix('*') {
        Some(prefix) => gun.starts_with(prefix),
        None => cn == gun,
    }
}
