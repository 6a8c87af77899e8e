//! Notary v1 behind a per-GUN cache: trust data is reused for the server's `ttl`, refreshed
//! after it by one request at a time per GUN, and served stale only within a rule's
//! `stale_if_error` window while the trust server is unreachable (never when it answered with
//! data that did not verify).
//!
//! # Bounded memory
//!
//! Clients choose repository names, so the slots (one per GUN and root pins: the verified
//! data, the refresh lock, the last failure) are an LRU of at most [`MAX_SLOTS`] per notary
//! server; each slot without data is a few hundred bytes. Evicting a slot forgets only this
//! process's memory copy: the trusted root and the versions of every role are in the state
//! store (a directory, or the shared bucket and this replica's own copy), which every refresh
//! loads, so a GUN whose slot was evicted is verified again against the same root with the
//! same rollback protection. What is lost is the `stale_if_error` window (an evicted GUN whose
//! server is down is refused: fail closed) and the memory of tags revoked since this process
//! started (they are then refused as unsigned instead of revoked).
//!
//! A slot is evicted only while no request holds it (its `Arc` is held by the map alone,
//! checked under the map's lock, and the map is the only way to obtain a slot). So at any
//! time at most one slot exists per key among the requests running, all of them share its
//! refresh lock, and one refresh per GUN runs at a time, eviction or not. While more distinct
//! GUNs are in flight than the capacity, the map holds more for as long: that is bounded by
//! the requests in flight (`limits.max_concurrent_requests`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use lru::LruCache;
use time::OffsetDateTime;

use crate::metrics::TrustRole;

use super::{
    notary::{NotaryClient, NotaryError, TrustData},
    BoxFuture, Refusal, RefusalKind, SignedSet, SignedTag, TrustQuery, Verifier,
};

/// Called with the outcome of every trust fetch (for metrics): server name, duration, success.
pub type FetchObserver = Arc<dyn Fn(&str, Duration, bool) + Send + Sync>;

/// Called after every successful refresh (for metrics) with the server name and the soonest
/// expiry per role kind over all trust data this server's cache now holds (see
/// [`CachedNotary::soonest_expiries`]).
pub type ExpiryObserver = Arc<dyn Fn(&str, BTreeMap<TrustRole, OffsetDateTime>) + Send + Sync>;

/// Called with the server name whenever a refresh refused a stored trust state that is
/// corrupt or does not authenticate (for metrics).
pub type StateRefusedObserver = Arc<dyn Fn(&str) + Send + Sync>;

/// A query's resolution inputs: roles in order, then required signer roles.
type SetKey = (Arc<[String]>, Arc<[String]>);
/// A GUN and the root pins it is verified under.
type SlotKey = (String, Arc<[String]>);

/// Verified trust data of one GUN and what was derived from it.
struct Entry {
    data: Arc<TrustData>,
    fetched: Instant,
    /// Tags signed in earlier data and not in this one: revoked, as far as we saw.
    revoked: BTreeSet<String>,
    /// Signed sets per (roles, signers), computed on first use.
    sets: Mutex<HashMap<SetKey, Arc<SignedSet>>>,
}

#[derive(Default)]
struct Slot {
    current: RwLock<Option<Arc<Entry>>>,
    /// One refresh at a time per GUN: concurrent misses share it, and the persisted state of
    /// a GUN is never written by two refreshes at once.
    refresh: tokio::sync::Mutex<()>,
    /// The last refresh that failed, and when it ended: requests that queued behind it take
    /// its answer instead of asking a failing server again one after another.
    failed: Mutex<Option<(Instant, Arc<NotaryError>)>>,
}

/// The most per-GUN slots one notary server's cache keeps (least recently used first out;
/// see the module docs). A slot holding no data is about 600 bytes, so names that have no
/// trust data cost at most a few MiB however many a client invents.
pub const MAX_SLOTS: usize = 4096;

/// A notary server with its cache.
pub struct CachedNotary {
    name: String,
    client: NotaryClient,
    ttl: Duration,
    /// Unbounded as an `LruCache`; [`trim`] keeps it at `capacity` (see the module docs).
    slots: Mutex<LruCache<SlotKey, Arc<Slot>>>,
    capacity: usize,
    observer: Option<FetchObserver>,
    expiry_observer: Option<ExpiryObserver>,
    state_refused_observer: Option<StateRefusedObserver>,
}

// === impl CachedNotary ===

impl CachedNotary {
    pub fn new(name: impl Into<String>, client: NotaryClient, ttl: Duration) -> Self {
        CachedNotary {
            name: name.into(),
            client,
            ttl,
            slots: Mutex::new(LruCache::unbounded()),
            capacity: MAX_SLOTS,
            observer: None,
            expiry_observer: None,
            state_refused_observer: None,
        }
    }

    /// Keeps at most `capacity` (at least 1) slots instead of [`MAX_SLOTS`].
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How many GUN slots the cache holds now.
    pub fn slots(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn with_observer(mut self, observer: FetchObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Reports the cache's soonest expiries after every successful refresh.
    pub fn with_expiry_observer(mut self, observer: ExpiryObserver) -> Self {
        self.expiry_observer = Some(observer);
        self
    }

    /// Reports every refresh that refused a corrupt or unauthentic stored trust state.
    pub fn with_state_refused_observer(mut self, observer: StateRefusedObserver) -> Self {
        self.state_refused_observer = Some(observer);
        self
    }

    /// The soonest expiry per role kind (root, timestamp, snapshot, targets, delegations)
    /// over the trust data cached for every repository.
    pub fn soonest_expiries(&self) -> BTreeMap<TrustRole, OffsetDateTime> {
        let slots: Vec<Arc<Slot>> = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.iter().map(|(_, slot)| slot.clone()).collect()
        };
        let mut out = BTreeMap::new();
        for entry in slots.iter().filter_map(|slot| read(slot)) {
            merge_soonest(&mut out, &entry.data);
        }
        out
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The query's slot, created when there is none; the caller holds it for as long as it
    /// uses it, which keeps it from being evicted (see the module docs).
    fn slot(&self, query: &TrustQuery) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let key = (query.gun.clone(), query.pins.clone());
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        slots.put(key, slot.clone());
        trim(&mut slots, self.capacity);
        slot
    }

    /// Trust data for the query's GUN: cached while fresh, else refreshed.
    async fn entry(&self, query: &TrustQuery) -> Result<Arc<Entry>, Refusal> {
        let slot = self.slot(query);
        let fresh = |e: &Arc<Entry>| e.fetched.elapsed() < self.ttl;
        if let Some(e) = read(&slot).filter(fresh) {
            return Ok(e);
        }
        let queued = Instant::now();
        let _guard = slot.refresh.lock().await;
        // Another request may have refreshed while we waited.
        let previous = read(&slot);
        if let Some(e) = previous.clone().filter(fresh) {
            return Ok(e);
        }
        // Or failed to: the server was asked after we came, so its answer is ours too.
        let failed = slot
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((_, e)) = failed.filter(|(at, _)| *at >= queued) {
            return self.fall_back(query, previous, &e);
        }
        let started = Instant::now();
        let result = self
            .client
            .verify(&query.gun, OffsetDateTime::now_utc(), &query.pins)
            .await;
        if let Some(observe) = &self.observer {
            observe(&self.name, started.elapsed(), result.is_ok());
        }
        match result {
            Ok(data) => {
                let entry = Arc::new(Entry::new(data, previous.as_deref()));
                *slot.current.write().unwrap_or_else(|e| e.into_inner()) = Some(entry.clone());
                if let Some(observe) = &self.expiry_observer {
                    observe(&self.name, self.soonest_expiries());
                }
                Ok(entry)
            }
            Err(e) => {
                let refused_state = matches!(
                    e,
                    NotaryError::StateCorrupt { .. } | NotaryError::StateUnauthentic { .. }
                );
                if let (true, Some(observe)) = (refused_state, &self.state_refused_observer) {
                    observe(&self.name);
                }
                let e = Arc::new(e);
                *slot.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), e.clone()));
                self.fall_back(query, previous, &e)
            }
        }
    }

    /// After a failed refresh: the previous data within the rule's `stale_if_error`, or the
    /// refusal.
    fn fall_back(
        &self,
        query: &TrustQuery,
        previous: Option<Arc<Entry>>,
        e: &NotaryError,
    ) -> Result<Arc<Entry>, Refusal> {
        // Only an unreachable server may fall back, only within the rule's window, and only
        // to data that has not itself expired.
        if let Some(stale) = previous.filter(|p| {
            e.is_transport()
                && p.fetched.elapsed() < self.ttl + query.stale_if_error
                && p.data
                    .soonest_expiry()
                    .is_some_and(|t| t > OffsetDateTime::now_utc())
        }) {
            tracing::warn!(gun = %query.gun, server = %self.name, error = %e,
                "trust server unreachable; serving cached trust data within stale_if_error");
            return Ok(stale);
        }
        Err(refusal_for(&query.gun, &self.name, e))
    }
}

/// Evicts least recently used slots that no request holds until at most `capacity` remain
/// (or none of the rest is idle). Under the map's lock, a slot whose only `Arc` is the map's
/// cannot be obtained by anyone else meanwhile: no refresh runs on it and none can start.
fn trim(slots: &mut LruCache<SlotKey, Arc<Slot>>, capacity: usize) {
    let excess = slots.len().saturating_sub(capacity);
    if excess == 0 {
        return;
    }
    let idle: Vec<SlotKey> = slots
        .iter()
        .rev()
        .filter(|(_, slot)| Arc::strong_count(slot) == 1)
        .take(excess)
        .map(|(key, _)| key.clone())
        .collect();
    for key in idle {
        slots.pop(&key);
    }
}

/// Lowers `into`'s expiry for each role kind `data` has an earlier one for.
fn merge_soonest(into: &mut BTreeMap<TrustRole, OffsetDateTime>, data: &TrustData) {
    let roles = data.roles.iter().map(|(name, role)| (name, role.expires));
    let top = data.expires.iter().map(|(name, at)| (name, *at));
    for (name, at) in top.chain(roles) {
        let Some(kind) = TrustRole::from_role_name(name) else {
            continue;
        };
        into.entry(kind)
            .and_modify(|soonest| *soonest = (*soonest).min(at))
            .or_insert(at);
    }
}

fn read(slot: &Slot) -> Option<Arc<Entry>> {
    slot.current
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn refusal_for(gun: &str, server: &str, e: &NotaryError) -> Refusal {
    let kind = match e {
        NotaryError::NotFound { .. } => RefusalKind::Unsigned,
        NotaryError::Expired { .. } => RefusalKind::Expired,
        _ => RefusalKind::TrustError,
    };
    let message = match e {
        NotaryError::NotFound { .. } => {
            format!(
                "{gun} has no trust data on notary server {server}: the repository is not signed"
            )
        }
        // Where the server or the state store is, and how it failed, is for the operator's
        // log, not for clients.
        NotaryError::StateCorrupt { .. } => {
            tracing::error!(gun, server, error = %e, "stored trust state is corrupt");
            format!("trust data for {gun} was not used: its stored trust state is corrupt")
        }
        NotaryError::StateUnauthentic { .. } => {
            tracing::error!(gun, server, error = %e,
                "stored trust state does not authenticate: refused");
            format!(
                "trust data for {gun} was not used: its stored trust state does not authenticate"
            )
        }
        e if e.is_state() => {
            tracing::warn!(gun, server, error = %e, "trust state could not be loaded or saved");
            format!("trust data for {gun} was not used: the trust state store is unavailable")
        }
        e if e.is_transport() => {
            tracing::warn!(gun, server, error = %e, "trust data could not be fetched");
            format!(
                "trust data for {gun} could not be fetched: notary server {server} is unavailable"
            )
        }
        e => format!("trust data for {gun} from notary server {server} did not verify: {e}"),
    };
    Refusal::new(kind, message)
}

// === impl Entry ===

impl Entry {
    fn new(data: TrustData, previous: Option<&Entry>) -> Self {
        let now_signed: BTreeSet<String> = data.signed_tags().into_iter().map(|(t, _)| t).collect();
        let revoked = match previous {
            Some(p) => {
                let before: BTreeSet<String> =
                    p.data.signed_tags().into_iter().map(|(t, _)| t).collect();
                before
                    .union(&p.revoked)
                    .filter(|t| !now_signed.contains(*t))
                    .cloned()
                    .collect()
            }
            None => BTreeSet::new(),
        };
        Entry {
            data: Arc::new(data),
            fetched: Instant::now(),
            revoked,
            sets: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves one tag under a query, with the reason when it does not pass.
    fn resolve(&self, query: &TrustQuery, tag: &str) -> Result<SignedTag, Refusal> {
        let gun = &query.gun;
        let Some(resolved) = self.data.resolve(tag, &query.roles) else {
            if self.revoked.contains(tag) {
                return Err(Refusal::new(
                    RefusalKind::Revoked,
                    format!("{gun}:{tag} was revoked: its signature has been removed"),
                ));
            }
            return Err(Refusal::new(
                RefusalKind::Unsigned,
                format!(
                    "{gun}:{tag} is not signed: no role of [{}] signs tag {tag}",
                    query.roles.join(", ")
                ),
            ));
        };
        let digest = &resolved.target.digest;
        for signer in query.signers.iter() {
            if !self.data.role_signed(signer, tag, digest) {
                let name = signer.strip_prefix("targets/").unwrap_or(signer);
                return Err(Refusal::new(
                    RefusalKind::UntrustedSigner,
                    format!("{gun}:{tag} is not signed by required signer {name} (the rule requires {signer} to sign {digest})"),
                ));
            }
        }
        Ok(SignedTag {
            digest: digest.clone(),
            size: resolved.target.size,
            role: resolved.role.to_owned(),
        })
    }

    fn signed_set(&self, query: &TrustQuery) -> Arc<SignedSet> {
        let key = (query.roles.clone(), query.signers.clone());
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.entry(key)
            .or_insert_with(|| {
                let mut tags: BTreeSet<&String> = BTreeSet::new();
                for role in query.roles.iter() {
                    if let Some(r) = self.data.roles.get(role) {
                        tags.extend(r.targets.keys());
                    }
                }
                Arc::new(SignedSet {
                    tags: tags
                        .into_iter()
                        .filter_map(|t| Some((t.clone(), self.resolve(query, t).ok()?)))
                        .collect(),
                    ..SignedSet::default()
                })
            })
            .clone()
    }
}

impl Verifier for CachedNotary {
    fn resolve_tag<'a>(
        &'a self,
        query: &'a TrustQuery,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<SignedTag, Refusal>> {
        Box::pin(async move { self.entry(query).await?.resolve(query, tag) })
    }

    fn signed_set<'a>(
        &'a self,
        query: &'a TrustQuery,
    ) -> BoxFuture<'a, Result<Arc<SignedSet>, Refusal>> {
        Box::pin(async move { Ok(self.entry(query).await?.signed_set(query)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::notary::RoleData;
    use time::macros::datetime;

    fn role(expires: OffsetDateTime) -> RoleData {
        RoleData {
            targets: BTreeMap::new(),
            keys: Vec::new(),
            threshold: 1,
            version: 1,
            expires,
        }
    }

    fn data(
        gun: &str,
        top: [(&str, OffsetDateTime); 3],
        roles: &[(&str, OffsetDateTime)],
    ) -> TrustData {
        TrustData {
            gun: gun.to_owned(),
            roles: roles
                .iter()
                .map(|(n, at)| ((*n).to_owned(), role(*at)))
                .collect(),
            skipped: Vec::new(),
            root_keys: Vec::new(),
            expires: top.iter().map(|(n, at)| ((*n).to_owned(), *at)).collect(),
        }
    }

    #[test]
    fn soonest_expiry_per_role_kind_across_repositories() {
        let a = data(
            "r/a",
            [
                ("root", datetime!(2036-01-01 0:00 UTC)),
                ("timestamp", datetime!(2026-01-02 0:00 UTC)),
                ("snapshot", datetime!(2029-01-01 0:00 UTC)),
            ],
            &[
                ("targets", datetime!(2029-01-01 0:00 UTC)),
                ("targets/releases", datetime!(2027-06-01 0:00 UTC)),
                ("targets/alice", datetime!(2027-01-01 0:00 UTC)),
            ],
        );
        let b = data(
            "r/b",
            [
                ("root", datetime!(2030-01-01 0:00 UTC)),
                ("timestamp", datetime!(2026-01-03 0:00 UTC)),
                ("snapshot", datetime!(2028-01-01 0:00 UTC)),
            ],
            &[("targets", datetime!(2031-01-01 0:00 UTC))],
        );
        let mut soonest = BTreeMap::new();
        merge_soonest(&mut soonest, &a);
        merge_soonest(&mut soonest, &b);
        assert_eq!(
            soonest,
            BTreeMap::from([
                (TrustRole::Root, datetime!(2030-01-01 0:00 UTC)),
                (TrustRole::Timestamp, datetime!(2026-01-02 0:00 UTC)),
                (TrustRole::Snapshot, datetime!(2028-01-01 0:00 UTC)),
                (TrustRole::Targets, datetime!(2029-01-01 0:00 UTC)),
                // Delegations share one bounded label: the soonest of all of them.
                (TrustRole::Delegation, datetime!(2027-01-01 0:00 UTC)),
            ])
        );
    }

    fn query(gun: &str) -> TrustQuery {
        TrustQuery {
            gun: gun.to_owned(),
            roles: Arc::from(vec!["targets".to_owned()]),
            signers: Arc::from(Vec::<String>::new()),
            pins: Arc::from(Vec::<String>::new()),
            stale_if_error: Duration::ZERO,
            content: None,
        }
    }

    fn unsigned_server(capacity: usize) -> (tempfile::TempDir, CachedNotary) {
        let dir = tempfile::tempdir().unwrap();
        let client = NotaryClient::new(
            crate::trust::notary::Source::Dir(dir.path().to_owned()),
            crate::trust::notary::Limits::default(),
            None,
        );
        let cached =
            CachedNotary::new("internal", client, Duration::from_secs(30)).with_capacity(capacity);
        (dir, cached)
    }

    #[tokio::test]
    async fn attack_distinct_repository_names_keep_the_slots_bounded() {
        let (_dir, cached) = unsigned_server(64);
        for i in 0..2_000 {
            let q = query(&format!("docker.io/attacker/r{i}"));
            let refused = cached.resolve_tag(&q, "latest").await.unwrap_err();
            assert_eq!(refused.kind, RefusalKind::Unsigned, "{refused}");
        }
        assert_eq!(cached.slots(), 64);
    }

    #[test]
    fn a_slot_a_request_holds_is_never_evicted() {
        let (_dir, cached) = unsigned_server(2);
        let held = cached.slot(&query("r/held"));
        for i in 0..10 {
            drop(cached.slot(&query(&format!("r/{i}"))));
        }
        // The held slot is the least recently used, yet still the one every request for
        // its GUN gets: they share its refresh lock.
        assert!(Arc::ptr_eq(&held, &cached.slot(&query("r/held"))));
        assert_eq!(cached.slots(), 2);
        drop(held);
        for i in 10..20 {
            drop(cached.slot(&query(&format!("r/{i}"))));
        }
        assert!(!cached
            .slots
            .lock()
            .unwrap()
            .contains(&("r/held".to_owned(), query("r/held").pins)));
    }

    #[test]
    fn more_slots_in_use_than_the_capacity_shrink_when_released() {
        let (_dir, cached) = unsigned_server(2);
        let held: Vec<_> = (0..5)
            .map(|i| cached.slot(&query(&format!("r/{i}"))))
            .collect();
        assert_eq!(cached.slots(), 5, "slots in use are kept");
        drop(held);
        drop(cached.slot(&query("r/next")));
        assert_eq!(cached.slots(), 2);
    }
}
