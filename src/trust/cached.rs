//! Notary v1 behind a per-GUN cache: trust data is reused for the server's `ttl`, refreshed
//! after it by one request at a time per GUN, and served stale only within a rule's
//! `stale_if_error` window while the trust server is unreachable (never when it answered with
//! data that did not verify).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

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

/// A notary server with its cache.
pub struct CachedNotary {
    name: String,
    client: NotaryClient,
    ttl: Duration,
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
    observer: Option<FetchObserver>,
    expiry_observer: Option<ExpiryObserver>,
}

// === impl CachedNotary ===

impl CachedNotary {
    pub fn new(name: impl Into<String>, client: NotaryClient, ttl: Duration) -> Self {
        CachedNotary {
            name: name.into(),
            client,
            ttl,
            slots: Mutex::new(HashMap::new()),
            observer: None,
            expiry_observer: None,
        }
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

    /// The soonest expiry per role kind (root, timestamp, snapshot, targets, delegations)
    /// over the trust data cached for every repository.
    pub fn soonest_expiries(&self) -> BTreeMap<TrustRole, OffsetDateTime> {
        let slots: Vec<Arc<Slot>> = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.values().cloned().collect()
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

    fn slot(&self, query: &TrustQuery) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((query.gun.clone(), query.pins.clone()))
            .or_default()
            .clone()
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
}
