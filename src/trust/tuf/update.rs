//! The client workflow, TUF v1.0 section 5, step by step. Each check names the step it
//! implements.

use time::OffsetDateTime;

use super::{
    metadata::{
        check_listing, parse, MetaFile, Parsed, RoleBody, RootBody, SnapshotBody, TargetsBody,
        TimestampBody,
    },
    Fetch, FetchError, Role, TargetName, TufClient, TufError,
};

const ROOT_FILE: &str = "root.json";
const TIMESTAMP_FILE: &str = "timestamp.json";
const SNAPSHOT_FILE: &str = "snapshot.json";
const TARGETS_FILE: &str = "targets.json";

/// Parses a root and checks it is signed by a threshold of its own root keys: the check an
/// operator-supplied or cached root gets before it is trusted (5.2).
pub(super) fn self_signed_root(what: &str, raw: Vec<u8>) -> Result<Parsed<RootBody>, TufError> {
    let root = parse::<RootBody>(what, raw)?;
    root.verify(what, Role::Root, &root.envelope)?;
    // The four top-level roles must be there before anything relies on them.
    for role in [Role::Root, Role::Timestamp, Role::Snapshot, Role::Targets] {
        root.role(role)?;
    }
    Ok(root)
}

/// 5.3.10, 5.4.4, 5.5.6, 5.6.5: metadata is valid while its expiry is after the fixed update
/// start time.
fn check_freeze(role: Role, expires: OffsetDateTime, now: OffsetDateTime) -> Result<(), TufError> {
    if expires <= now {
        return Err(TufError::Expired { role, expires, now });
    }
    Ok(())
}

/// A key as 5.3.11 compares it: type, scheme, public material.
type KeyFacts = (String, String, String);

/// The keys and threshold that sign for `role`: what 5.3.11 compares.
fn signers(root: &Parsed<RootBody>, role: Role) -> Option<(u64, Vec<KeyFacts>)> {
    let keys = root.body.roles.get(role.as_str())?;
    let mut listed: Vec<KeyFacts> = keys
        .keyids
        .iter()
        .filter_map(|id| root.body.keys.get(id))
        .map(|k| (k.keytype.clone(), k.scheme.clone(), k.keyval.public.clone()))
        .collect();
    listed.sort();
    Some((keys.threshold, listed))
}

fn listing<'a>(
    meta: &'a std::collections::BTreeMap<String, MetaFile>,
    file: &str,
    listed_by: Role,
) -> Result<&'a MetaFile, TufError> {
    meta.get(file).ok_or_else(|| TufError::NotListed {
        what: file.to_owned(),
        listed_by,
    })
}

/// Whether `cached` is the file `listing` names (version, and length and hashes if given).
fn is_listed(cached: &Parsed<impl RoleBody>, what: &str, listing: &MetaFile) -> bool {
    cached.version == listing.version
        && check_listing(
            what,
            &cached.raw,
            listing.length,
            listing.hashes.as_ref(),
            false,
        )
        .is_ok()
}

// === impl TufClient: the workflow ===

impl TufClient {
    /// GETs `<url>/<file>` within `max_len` bytes; `Ok(None)` if the mirror has no such file.
    /// The bound is enforced here too, whatever the [`Fetch`] does.
    async fn get(
        &self,
        fetch: &dyn Fetch,
        file: &str,
        max_len: u64,
    ) -> Result<Option<Vec<u8>>, TufError> {
        let url = format!("{}/{file}", self.url);
        let body = fetch.get(&url, max_len).await?;
        if let Some(bytes) = &body {
            if bytes.len() as u64 > max_len {
                return Err(FetchError::TooLarge {
                    url,
                    limit: max_len,
                }
                .into());
            }
        }
        Ok(body)
    }

    async fn get_required(
        &self,
        fetch: &dyn Fetch,
        file: &str,
        max_len: u64,
    ) -> Result<Vec<u8>, TufError> {
        self.get(fetch, file, max_len)
            .await?
            .ok_or_else(|| TufError::Missing {
                what: file.to_owned(),
            })
    }

    /// A cached role file that parses and is signed by a threshold of `root`'s keys for it;
    /// `Ok(None)` when there is none. Its expiry is the caller's to check.
    fn cached_role<T: RoleBody>(
        &self,
        file: &str,
        max_len: u64,
        root: &Parsed<RootBody>,
    ) -> Result<Option<Parsed<T>>, TufError> {
        let Some(raw) = self.cache.read(file, max_len)? else {
            return Ok(None);
        };
        let bad = |e: TufError| TufError::BadCache {
            what: file.to_owned(),
            detail: e.to_string(),
        };
        let parsed = parse::<T>(file, raw).map_err(bad)?;
        root.verify(file, T::ROLE, &parsed.envelope).map_err(bad)?;
        Ok(Some(parsed))
    }

    /// Like [`TufClient::cached_role`], but a cached file that does not verify is only
    /// logged: during an update it is replaced from the mirror.
    fn cached_role_lenient<T: RoleBody>(
        &self,
        file: &str,
        max_len: u64,
        root: &Parsed<RootBody>,
    ) -> Option<Parsed<T>> {
        self.cached_role(file, max_len, root).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring cached TUF metadata");
            None
        })
    }

    /// 5.2: the trusted root is the cached `root.json` when it is self-signed and not older
    /// than the operator's root, else the operator's root (a newer one the operator installed
    /// wins over an older cache).
    pub(super) fn load_root(&self) -> Parsed<RootBody> {
        let cached = self
            .cache
            .read(ROOT_FILE, self.limits.max_root_size)
            .and_then(|raw| raw.map(|raw| self_signed_root(ROOT_FILE, raw)).transpose());
        match cached {
            Ok(Some(root)) if root.version >= self.initial_root.version => root,
            Ok(_) => self.initial_root.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring cached TUF root");
                self.initial_root.clone()
            }
        }
    }

    pub(super) async fn run_update(
        &self,
        fetch: &dyn Fetch,
        name: &TargetName,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, TufError> {
        // 5.1: `now` is the fixed update start time. 5.2: load the trusted root.
        let start = self.load_root();
        let root = self.update_root(fetch, start.clone(), now).await?;
        // 5.3.11: after a timestamp or snapshot key rotation, forget the old timestamp and
        // snapshot, so a fast-forward attack on their versions does not outlive the recovery.
        let rotated = [Role::Timestamp, Role::Snapshot]
            .into_iter()
            .any(|role| signers(&start, role) != signers(&root, role));
        if rotated {
            self.cache.remove(TIMESTAMP_FILE)?;
            self.cache.remove(SNAPSHOT_FILE)?;
        }
        let trusted_timestamp =
            self.cached_role_lenient(TIMESTAMP_FILE, self.limits.max_timestamp_size, &root);
        let timestamp = self
            .update_timestamp(fetch, &root, trusted_timestamp, now)
            .await?;
        let trusted_snapshot =
            self.cached_role_lenient(SNAPSHOT_FILE, self.limits.max_snapshot_size, &root);
        let snapshot = self
            .update_snapshot(fetch, &root, &timestamp, trusted_snapshot, now)
            .await?;
        let targets = self.update_targets(fetch, &root, &snapshot, now).await?;
        self.fetch_target(fetch, &root, &targets, name).await
    }

    /// 5.3: walk `N+1.root.json` forward from the trusted root, each new root signed by a
    /// threshold of the old root's keys and of its own, then the freeze check.
    pub(super) async fn update_root(
        &self,
        fetch: &dyn Fetch,
        mut root: Parsed<RootBody>,
        now: OffsetDateTime,
    ) -> Result<Parsed<RootBody>, TufError> {
        // 5.3.3: at most `max_root_rotations` new versions (Y); then on to 5.3.10.
        for _ in 0..self.limits.max_root_rotations {
            // 5.3.2: N is the trusted version.
            let Some(next) = root.version.checked_add(1) else {
                break;
            };
            let file = format!("{next}.root.json");
            // 5.3.3: up to W bytes; a missing file ends the walk.
            let Some(raw) = self.get(fetch, &file, self.limits.max_root_size).await? else {
                break;
            };
            let new = parse::<RootBody>(&file, raw)?;
            // 5.3.4: signed by a threshold of the trusted root's root keys and of its own.
            root.verify(
                &format!("{file} (under root {})", root.version),
                Role::Root,
                &new.envelope,
            )?;
            new.verify(
                &format!("{file} (under its own keys)"),
                Role::Root,
                &new.envelope,
            )?;
            for role in [Role::Root, Role::Timestamp, Role::Snapshot, Role::Targets] {
                new.role(role)?;
            }
            // 5.3.5: the version must be exactly N+1. An older one is a rollback; the same
            // one is discarded and the walk ends with the trusted root; a newer one skips
            // versions, whose key changes the client would never have checked.
            if new.version < root.version {
                return Err(TufError::Rollback {
                    what: file,
                    offered: new.version,
                    trusted: root.version,
                });
            }
            if new.version == root.version {
                break;
            }
            if new.version != next {
                return Err(TufError::VersionMismatch {
                    what: file,
                    expected: next,
                    found: new.version,
                });
            }
            // 5.3.6: an intermediate root's expiry does not matter. 5.3.7 and 5.3.8: trust
            // it and persist it as root.json.
            self.cache.write(ROOT_FILE, &new.raw)?;
            root = new;
            // 5.3.9: repeat.
        }
        // 5.3.10: the freeze check, on the final root only.
        check_freeze(Role::Root, root.expires, now)?;
        // The operator's root, when nothing newer came, is persisted too: the cached
        // timestamp, snapshot and targets were verified under it, and offline reads must use
        // it even if the operator's file is later replaced by an older one.
        let on_disk = self
            .cache
            .read(ROOT_FILE, self.limits.max_root_size)
            .ok()
            .flatten();
        if on_disk.as_deref() != Some(root.raw.as_slice()) {
            self.cache.write(ROOT_FILE, &root.raw)?;
        }
        // 5.3.12: consistent snapshots are read from `root.body.consistent_snapshot` below.
        Ok(root)
    }

    /// 5.4: the timestamp role.
    pub(super) async fn update_timestamp(
        &self,
        fetch: &dyn Fetch,
        root: &Parsed<RootBody>,
        trusted: Option<Parsed<TimestampBody>>,
        now: OffsetDateTime,
    ) -> Result<Parsed<TimestampBody>, TufError> {
        // 5.4.1: `timestamp.json`, up to X bytes.
        let raw = self
            .get_required(fetch, TIMESTAMP_FILE, self.limits.max_timestamp_size)
            .await?;
        let new = parse::<TimestampBody>(TIMESTAMP_FILE, raw)?;
        // 5.4.2: signed by a threshold of the timestamp keys.
        root.verify(TIMESTAMP_FILE, Role::Timestamp, &new.envelope)?;
        let new_snapshot = listing(&new.body.meta, SNAPSHOT_FILE, Role::Timestamp)?;
        if let Some(old) = trusted {
            // 5.4.3.1: never older than the trusted timestamp; the same version means
            // nothing changed, so the trusted one stays (and must itself be unexpired).
            if new.version < old.version {
                return Err(TufError::Rollback {
                    what: TIMESTAMP_FILE.to_owned(),
                    offered: new.version,
                    trusted: old.version,
                });
            }
            if new.version == old.version {
                check_freeze(Role::Timestamp, old.expires, now)?;
                return Ok(old);
            }
            // 5.4.3.2: the snapshot version it lists never goes back either.
            if let Some(old_snapshot) = old.body.meta.get(SNAPSHOT_FILE) {
                if new_snapshot.version < old_snapshot.version {
                    return Err(TufError::Rollback {
                        what: format!("{SNAPSHOT_FILE} (as {TIMESTAMP_FILE} lists it)"),
                        offered: new_snapshot.version,
                        trusted: old_snapshot.version,
                    });
                }
            }
        }
        // 5.4.4: the freeze check.
        check_freeze(Role::Timestamp, new.expires, now)?;
        // 5.4.5: persist.
        self.cache.write(TIMESTAMP_FILE, &new.raw)?;
        Ok(new)
    }

    /// 5.5: the snapshot role. `trusted` is the cached snapshot (signature checked): the
    /// current one if the timestamp lists it, else the reference for 5.5.5.
    pub(super) async fn update_snapshot(
        &self,
        fetch: &dyn Fetch,
        root: &Parsed<RootBody>,
        timestamp: &Parsed<TimestampBody>,
        trusted: Option<Parsed<SnapshotBody>>,
        now: OffsetDateTime,
    ) -> Result<Parsed<SnapshotBody>, TufError> {
        let listed = listing(&timestamp.body.meta, SNAPSHOT_FILE, Role::Timestamp)?;
        let trusted = match trusted {
            Some(cached) if is_listed(&cached, SNAPSHOT_FILE, listed) => {
                check_freeze(Role::Snapshot, cached.expires, now)?;
                return Ok(cached);
            }
            other => other,
        };
        // Not in 5.5 as such, but implied by 5.4.3.2: the timestamp never lists a snapshot
        // older than the one trusted (after a snapshot key rotation, 5.3.11 dropped it).
        if let Some(old) = &trusted {
            if listed.version < old.version {
                return Err(TufError::Rollback {
                    what: format!("{SNAPSHOT_FILE} (as {TIMESTAMP_FILE} lists it)"),
                    offered: listed.version,
                    trusted: old.version,
                });
            }
        }
        // 5.5.1: `V.snapshot.json` under consistent snapshots, up to the listed length or Y.
        let file = if root.body.consistent_snapshot {
            format!("{}.{SNAPSHOT_FILE}", listed.version)
        } else {
            SNAPSHOT_FILE.to_owned()
        };
        let max_len = listed.length.map_or(self.limits.max_snapshot_size, |l| {
            l.min(self.limits.max_snapshot_size)
        });
        let raw = self.get_required(fetch, &file, max_len).await?;
        // 5.5.2: the hashes (and length) the timestamp lists, before parsing.
        check_listing(&file, &raw, listed.length, listed.hashes.as_ref(), false)?;
        let new = parse::<SnapshotBody>(&file, raw)?;
        // 5.5.3: signed by a threshold of the snapshot keys.
        root.verify(&file, Role::Snapshot, &new.envelope)?;
        // 5.5.4: the version the timestamp lists.
        if new.version != listed.version {
            return Err(TufError::VersionMismatch {
                what: file,
                expected: listed.version,
                found: new.version,
            });
        }
        // 5.5.5: no targets metadata listed before goes back in version or disappears.
        if let Some(old) = &trusted {
            for (name, old_meta) in &old.body.meta {
                match new.body.meta.get(name) {
                    None => return Err(TufError::MetaDropped { what: name.clone() }),
                    Some(m) if m.version < old_meta.version => {
                        return Err(TufError::Rollback {
                            what: format!("{name} (as {file} lists it)"),
                            offered: m.version,
                            trusted: old_meta.version,
                        })
                    }
                    Some(_) => {}
                }
            }
        }
        // 5.5.6: the freeze check. 5.5.7: persist.
        check_freeze(Role::Snapshot, new.expires, now)?;
        self.cache.write(SNAPSHOT_FILE, &new.raw)?;
        Ok(new)
    }

    /// 5.6: the top-level targets role.
    pub(super) async fn update_targets(
        &self,
        fetch: &dyn Fetch,
        root: &Parsed<RootBody>,
        snapshot: &Parsed<SnapshotBody>,
        now: OffsetDateTime,
    ) -> Result<Parsed<TargetsBody>, TufError> {
        let listed = listing(&snapshot.body.meta, TARGETS_FILE, Role::Snapshot)?;
        let cached = self.cached_role_lenient::<TargetsBody>(
            TARGETS_FILE,
            self.limits.max_targets_size,
            root,
        );
        if let Some(cached) = cached {
            if is_listed(&cached, TARGETS_FILE, listed) {
                check_freeze(Role::Targets, cached.expires, now)?;
                return Ok(cached);
            }
        }
        // 5.6.1: `V.targets.json` under consistent snapshots, up to the listed length or Z.
        let file = if root.body.consistent_snapshot {
            format!("{}.{TARGETS_FILE}", listed.version)
        } else {
            TARGETS_FILE.to_owned()
        };
        let max_len = listed.length.map_or(self.limits.max_targets_size, |l| {
            l.min(self.limits.max_targets_size)
        });
        let raw = self.get_required(fetch, &file, max_len).await?;
        // 5.6.2: the hashes (and length) the snapshot lists.
        check_listing(&file, &raw, listed.length, listed.hashes.as_ref(), false)?;
        let new = parse::<TargetsBody>(&file, raw)?;
        // 5.6.3: signed by a threshold of the targets keys.
        root.verify(&file, Role::Targets, &new.envelope)?;
        // 5.6.4: the version the snapshot lists.
        if new.version != listed.version {
            return Err(TufError::VersionMismatch {
                what: file,
                expected: listed.version,
                found: new.version,
            });
        }
        // 5.6.5: the freeze check. 5.6.6: persist.
        check_freeze(Role::Targets, new.expires, now)?;
        self.cache.write(TARGETS_FILE, &new.raw)?;
        Ok(new)
    }

    /// 5.6.7 (top-level only) and 5.7: the target's listing, then its bytes, checked against
    /// its length and hashes.
    async fn fetch_target(
        &self,
        fetch: &dyn Fetch,
        root: &Parsed<RootBody>,
        targets: &Parsed<TargetsBody>,
        name: &TargetName,
    ) -> Result<Vec<u8>, TufError> {
        let info = self.target_info(targets, name)?;
        let cache_path = format!("targets/{}", name.as_str());
        let what = format!("target {}", name.as_str());
        if let Ok(Some(bytes)) = self.cache.read(&cache_path, info.length) {
            if check_listing(&what, &bytes, Some(info.length), Some(&info.hashes), true).is_ok() {
                return Ok(bytes);
            }
        }
        // 5.7.3: `HASH.name` under consistent snapshots, up to the listed length.
        let file = if root.body.consistent_snapshot {
            let hash = info
                .hashes
                .get("sha256")
                .or_else(|| info.hashes.get("sha512"))
                .ok_or_else(|| TufError::NoKnownHash { what: what.clone() })?;
            // A hash from signed metadata still goes into a URL: it must be plain hex.
            if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(TufError::NoKnownHash { what });
            }
            name.with_hash_prefix(hash)
        } else {
            name.as_str().to_owned()
        };
        let bytes = self
            .get_required(fetch, &format!("targets/{file}"), info.length)
            .await?;
        check_listing(&what, &bytes, Some(info.length), Some(&info.hashes), true)?;
        self.cache.write(&cache_path, &bytes)?;
        Ok(bytes)
    }

    /// 5.6.7 and 5.7.1-2, top-level only: the listing of `name`, within the target bound.
    fn target_info<'a>(
        &self,
        targets: &'a Parsed<TargetsBody>,
        name: &TargetName,
    ) -> Result<&'a super::metadata::TargetFile, TufError> {
        let Some(info) = targets.body.targets.get(name.as_str()) else {
            if targets.body.delegations.is_some() {
                return Err(TufError::NotTopLevel {
                    name: name.as_str().to_owned(),
                });
            }
            return Err(TufError::NotListed {
                what: format!("target {}", name.as_str()),
                listed_by: Role::Targets,
            });
        };
        if info.length > self.limits.max_target_size {
            return Err(TufError::TargetTooLarge {
                name: name.as_str().to_owned(),
                length: info.length,
                max: self.limits.max_target_size,
            });
        }
        Ok(info)
    }

    /// Offline: every cached file re-verified as an update would have, every expiry checked
    /// against `now`.
    pub(super) fn load_offline(
        &self,
        name: &TargetName,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, TufError> {
        let not_cached = |what: &str| TufError::NotCached {
            what: what.to_owned(),
        };
        let root = self.load_root();
        check_freeze(Role::Root, root.expires, now)?;
        let timestamp: Parsed<TimestampBody> = self
            .cached_role(TIMESTAMP_FILE, self.limits.max_timestamp_size, &root)?
            .ok_or_else(|| not_cached(TIMESTAMP_FILE))?;
        check_freeze(Role::Timestamp, timestamp.expires, now)?;
        let snapshot: Parsed<SnapshotBody> = self
            .cached_role(SNAPSHOT_FILE, self.limits.max_snapshot_size, &root)?
            .ok_or_else(|| not_cached(SNAPSHOT_FILE))?;
        let listed = listing(&timestamp.body.meta, SNAPSHOT_FILE, Role::Timestamp)?;
        if !is_listed(&snapshot, SNAPSHOT_FILE, listed) {
            return Err(TufError::BadCache {
                what: SNAPSHOT_FILE.to_owned(),
                detail: format!(
                    "not the version {} the cached timestamp lists",
                    listed.version
                ),
            });
        }
        check_freeze(Role::Snapshot, snapshot.expires, now)?;
        let targets: Parsed<TargetsBody> = self
            .cached_role(TARGETS_FILE, self.limits.max_targets_size, &root)?
            .ok_or_else(|| not_cached(TARGETS_FILE))?;
        let listed = listing(&snapshot.body.meta, TARGETS_FILE, Role::Snapshot)?;
        if !is_listed(&targets, TARGETS_FILE, listed) {
            return Err(TufError::BadCache {
                what: TARGETS_FILE.to_owned(),
                detail: format!(
                    "not the version {} the cached snapshot lists",
                    listed.version
                ),
            });
        }
        check_freeze(Role::Targets, targets.expires, now)?;
        let info = self.target_info(&targets, name)?;
        let cache_path = format!("targets/{}", name.as_str());
        let bytes = self
            .cache
            .read(&cache_path, info.length)?
            .ok_or_else(|| not_cached(&cache_path))?;
        let what = format!("cached target {}", name.as_str());
        check_listing(&what, &bytes, Some(info.length), Some(&info.hashes), true)?;
        Ok(bytes)
    }
}
