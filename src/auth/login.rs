//! Basic credentials (`auth.htpasswd_file`): checking a password without telling who exists,
//! remembering briefly what checked out, and throttling addresses that keep failing.
//!
//! - **One path for known and unknown users.** A user the htpasswd file does not have is
//!   checked against a dummy hash of the highest cost among the loaded hashes (bcrypt's usual
//!   10 when there are none), through the same semaphore and the same `Passwords::bcrypt`
//!   call as a known user, so the time an answer takes does not say whether a name exists.
//! - **A cache of successful checks** (`auth.password_cache_ttl`, default 60 s, `0s` turns it
//!   off): clients that send Basic credentials on every request (CI scripts, `curl -u`) would
//!   otherwise pay a bcrypt check per request. Entries are keyed by HMAC-SHA256, under a key
//!   drawn at random when the settings are built, of the user and the password (never the
//!   password itself). A changed or removed htpasswd entry cannot hit: the users are only
//!   set while the settings are built (a reload builds new ones, cache included), and setting
//!   one empties the cache. Failed checks are never cached, and the LRU holds at most
//!   [`CACHE_ENTRIES`].
//! - **Failed logins are throttled per client address** (`auth.login_failures`, default 10 at
//!   once, refilling 10 per minute), in the bounded LRU token buckets of [`super::rate`]:
//!   every Basic attempt is refused while its address's bucket is empty (before the cache,
//!   or the cache would answer guesses for free), and only a failed one takes a token, so
//!   clients logging in at once from one address are never refused for succeeding. An empty
//!   bucket is a `429` without a bcrypt check. IPv6 clients are counted by their /64, which
//!   one host usually holds whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use lru::LruCache;

use super::rate::RateLimiter;
use crate::config::Secret;

/// Most successful checks remembered.
pub const CACHE_ENTRIES: NonZeroUsize = match NonZeroUsize::new(4096) {
    Some(n) => n,
    None => unreachable!(),
};

/// bcrypt's usual cost, for the dummy hash when no hash is loaded.
const DEFAULT_COST: u32 = 10;

/// Salt and digest of a bcrypt hash of a random password nobody kept (`htpasswd -nbB -C 4`).
/// Only the cost in front of it changes, so checking against it costs what checking against a
/// real hash of that cost does and never succeeds.
const DUMMY_SALT_AND_DIGEST: &str = "YTTeYWrhrKtsnh5to/XEjuopbrsIGe5VjrV733MAUjWuxilblkx5y";

/// Why a password check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The htpasswd file has no such user.
    UnknownUser,
    /// The password does not match.
    BadPassword,
    /// Not checked: the caller's gate refused (its address failed too often), with the time
    /// until it may try again.
    Throttled(Duration),
}

/// The htpasswd users and how their passwords are checked.
pub struct Passwords {
    /// name → bcrypt hash.
    users: HashMap<String, Secret>,
    /// The cost of the dummy hash unknown users are checked against.
    dummy_cost: u32,
    /// bcrypt checks running at once: a flood of Basic logins from clients nobody has
    /// authenticated yet waits here (within the request timeout) instead of taking the
    /// blocking pool and every core.
    slots: tokio::sync::Semaphore,
    cache: Option<VerifiedCache>,
    /// bcrypt checks run (unit tests count them instead of timing them).
    #[cfg(test)]
    pub(super) checks: std::sync::atomic::AtomicUsize,
}

/// Successful checks, for a short while.
struct VerifiedCache {
    /// Random per process: entries mean nothing outside it.
    key: hmac::Key,
    ttl: Duration,
    /// HMAC of user and password → until when the success counts.
    entries: Mutex<LruCache<[u8; 32], Instant>>,
}

/// Failed Basic logins by client address.
#[derive(Debug)]
pub struct LoginThrottle {
    buckets: RateLimiter<IpAddr>,
}

// === impl Passwords ===

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("users", &self.users.len())
            .field("dummy_cost", &self.dummy_cost)
            .field("cache_ttl", &self.cache.as_ref().map(|c| c.ttl))
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// No users; each check waits for one of `slots`; successes cached for `cache_ttl` (zero:
    /// not at all).
    pub fn new(slots: usize, cache_ttl: Duration) -> Self {
        Self {
            users: HashMap::new(),
            dummy_cost: DEFAULT_COST,
            slots: tokio::sync::Semaphore::new(slots.max(1)),
            cache: (!cache_ttl.is_zero()).then(|| VerifiedCache::new(cache_ttl, CACHE_ENTRIES)),
            #[cfg(test)]
            checks: Default::default(),
        }
    }

    /// Users held.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is held.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Changes how long successes are cached (zero: not at all); drops what was cached.
    pub fn set_cache_ttl(&mut self, ttl: Duration) {
        self.cache = (!ttl.is_zero()).then(|| VerifiedCache::new(ttl, CACHE_ENTRIES));
    }

    /// Adds (or replaces) `user` with bcrypt `hash`; the dummy hash follows the highest cost.
    pub fn insert(&mut self, user: &str, hash: &str) {
        let first = self.users.is_empty();
        if let Some(cost) = cost(hash) {
            self.dummy_cost = if first {
                cost
            } else {
                self.dummy_cost.max(cost)
            };
        }
        self.users.insert(user.to_owned(), Secret::new(hash));
        // A success checked against the user's previous hash must not count for the new one.
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Checks `user`'s `password`. `gate` is asked first, even before the cache: a throttled
    /// address that could still reach the cache would learn, at the speed of a lookup,
    /// whether a guess is a password someone logged in with lately (a hit answers, a miss is
    /// refused). It is asked again once a bcrypt slot is free, so attempts that queued
    /// while the limit was reached are refused too and at most one check per slot runs past
    /// it. The gate takes nothing: the caller counts failures only.
    pub async fn check(
        &self,
        user: &str,
        password: &str,
        gate: &(dyn Fn() -> Result<(), Duration> + Sync),
    ) -> Result<(), Rejected> {
        let (hash, known) = match self.users.get(user) {
            Some(hash) => (std::borrow::Cow::Borrowed(hash), true),
            None => (
                std::borrow::Cow::Owned(Secret::new(dummy_hash(self.dummy_cost))),
                false,
            ),
        };
        gate().map_err(Rejected::Throttled)?;
        // Looked up for unknown users too (never a hit: only known users are cached), so both
        // paths do the same work up to bcrypt.
        if let Some(cache) = &self.cache {
            if cache.hit(user, password, Instant::now()) && known {
                return Ok(());
            }
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return Err(Rejected::BadPassword);
        };
        gate().map_err(Rejected::Throttled)?;
        let ok = self.bcrypt(password, &hash).await;
        match (known, ok) {
            (false, _) => Err(Rejected::UnknownUser),
            (true, false) => Err(Rejected::BadPassword),
            (true, true) => {
                if let Some(cache) = &self.cache {
                    cache.insert(user, password, Instant::now());
                }
                Ok(())
            }
        }
    }

    /// The one bcrypt check, for known and unknown users alike, on the blocking pool; the
    /// caller holds one of the `slots`.
    async fn bcrypt(&self, password: &str, hash: &Secret) -> bool {
        #[cfg(test)]
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let password = Secret::new(password);
        let hash = hash.clone();
        tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.expose(), hash.expose()).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// Entries in the cache of successful checks.
    pub fn cached(&self) -> usize {
        self.cache.as_ref().map_or(0, VerifiedCache::len)
    }
}

/// The cost field of a bcrypt hash (`$2y$10$...` → 10), within what bcrypt accepts.
fn cost(hash: &str) -> Option<u32> {
    let cost: u32 = hash.get(4..6)?.parse().ok()?;
    (4..=31).contains(&cost).then_some(cost)
}

fn dummy_hash(cost: u32) -> String {
    format!("$2b${cost:02}${DUMMY_SALT_AND_DIGEST}")
}

// === impl VerifiedCache ===

impl VerifiedCache {
    fn new(ttl: Duration, capacity: NonZeroUsize) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Without randomness there is no key to hide passwords under, and no process either:
        // aws-lc-rs draws from the OS, which does not fail once the process runs.
        let key =
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the OS random number generator");
        Self {
            key,
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// HMAC of the user (length first, so no user/password split collides with another) and
    /// the password.
    fn key_of(&self, user: &str, password: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn hit(&self, user: &str, password: &str, now: Instant) -> bool {
        let key = self.key_of(user, password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key) {
            Some(until) if *until > now => true,
            Some(_) => {
                entries.pop(&key);
                false
            }
            None => false,
        }
    }

    fn insert(&self, user: &str, password: &str, now: Instant) {
        let key = self.key_of(user, password);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, now + self.ttl);
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

// === impl LoginThrottle ===

impl LoginThrottle {
    /// `burst` failures at once per address, refilling `per_minute`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            buckets: RateLimiter::per_minute(per_minute, burst),
        }
    }

    /// Whether `addr` may try a password at `now` (it has not failed too often); `Err` with
    /// the time until it may. Takes nothing: only failures count (see [`Self::failed`]).
    pub fn allowed(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        self.buckets.peek(&bucket_of(addr), now)
    }

    /// A password from `addr` was wrong (or its user unknown): it counts.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        self.buckets.charge(&bucket_of(addr), now);
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The bucket an address counts in: IPv4 (IPv4-mapped IPv6 included) by address, IPv6 by
/// /64, so one host cannot walk through its prefix to get fresh buckets.
fn bucket_of(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn hash(password: &str, cost: u32) -> String {
        bcrypt::hash(password, cost).unwrap()
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash_of_the_highest_cost_that_never_matches() {
        let mut passwords = Passwords::new(1, Duration::ZERO);
        assert_eq!(passwords.dummy_cost, DEFAULT_COST);
        passwords.insert("alice", &hash("a", 5));
        assert_eq!(passwords.dummy_cost, 5, "the loaded costs, not the default");
        passwords.insert("bob", &hash("b", 4));
        passwords.insert("carol", "$2y$99$not-a-valid-cost");
        assert_eq!(passwords.dummy_cost, 5);
        // A valid hash (bcrypt computes it, not an early error), matched by no password.
        for password in ["", "a", "password"] {
            assert_eq!(bcrypt::verify(password, &dummy_hash(4)).ok(), Some(false));
        }
        assert_eq!(cost(&dummy_hash(12)), Some(12));
    }

    #[tokio::test]
    async fn a_closed_gate_refuses_before_bcrypt_and_before_the_cache() {
        let mut passwords = Passwords::new(1, Duration::from_secs(60));
        passwords.insert("alice", &hash("right", 4));
        let closed = || Err(Duration::from_secs(6));
        assert_eq!(
            passwords.check("alice", "right", &closed).await,
            Err(Rejected::Throttled(Duration::from_secs(6)))
        );
        assert_eq!(passwords.checks.load(Ordering::Relaxed), 0);
        assert_eq!(passwords.check("alice", "right", &open).await, Ok(()));
        // Cached now, and still refused: a throttled guesser must not tell a cached
        // password from a wrong one.
        for guess in ["right", "wrong"] {
            assert_eq!(
                passwords.check("alice", guess, &closed).await,
                Err(Rejected::Throttled(Duration::from_secs(6)))
            );
        }
        assert_eq!(passwords.checks.load(Ordering::Relaxed), 1);
    }

    /// A gate that always lets a check through.
    fn open() -> Result<(), Duration> {
        Ok(())
    }

    #[tokio::test]
    async fn successes_are_cached_failures_are_not() {
        let mut passwords = Passwords::new(1, Duration::from_secs(60));
        passwords.insert("alice", &hash("right", 4));
        let checks = |p: &Passwords| p.checks.load(Ordering::Relaxed);
        assert_eq!(passwords.check("alice", "right", &open).await, Ok(()));
        assert_eq!(passwords.check("alice", "right", &open).await, Ok(()));
        assert_eq!(checks(&passwords), 1, "the second check is a hit");
        assert_eq!(passwords.cached(), 1);
        // A wrong password after a cached right one still fails, and is not cached.
        for _ in 0..2 {
            assert_eq!(
                passwords.check("alice", "wrong", &open).await,
                Err(Rejected::BadPassword)
            );
        }
        assert_eq!(checks(&passwords), 3);
        assert_eq!(passwords.cached(), 1);
        // Another user with the same password is not a hit.
        assert_eq!(
            passwords.check("bob", "right", &open).await,
            Err(Rejected::UnknownUser)
        );
        assert_eq!(checks(&passwords), 4);
        // A changed htpasswd entry misses: the old password no longer works...
        passwords.insert("alice", &hash("new", 4));
        assert_eq!(
            passwords.check("alice", "right", &open).await,
            Err(Rejected::BadPassword)
        );
        assert_eq!(checks(&passwords), 5);
        // ...and the same password under a new hash is checked anew.
        let same = hash("new", 4);
        assert_eq!(passwords.check("alice", "new", &open).await, Ok(()));
        passwords.insert("alice", &same);
        assert_eq!(passwords.check("alice", "new", &open).await, Ok(()));
        assert_eq!(checks(&passwords), 7);
    }

    #[test]
    fn entries_expire_and_hold_no_password() {
        let cache = VerifiedCache::new(Duration::from_secs(60), NonZeroUsize::new(2).unwrap());
        let now = Instant::now();
        cache.insert("alice", "right", now);
        assert!(cache.hit("alice", "right", now + Duration::from_secs(59)));
        assert!(!cache.hit("alice", "right", now + Duration::from_secs(60)));
        // The expired entry is dropped.
        assert_eq!(cache.len(), 0);
        // No user/password split collides with another.
        assert_ne!(cache.key_of("a", "b\0c"), cache.key_of("a\0b", "c"));
        // Bounded.
        for i in 0..10 {
            cache.insert(&format!("u{i}"), "p", now);
        }
        assert_eq!(cache.len(), 2);
        // Keyed by a MAC under a per-instance key, not by the password.
        let other = VerifiedCache::new(Duration::from_secs(60), NonZeroUsize::new(2).unwrap());
        assert_ne!(
            cache.key_of("alice", "right"),
            other.key_of("alice", "right")
        );
        let mut passwords = Passwords::new(1, Duration::from_secs(60));
        passwords.insert("alice", &dummy_hash(4));
        let debug = format!("{passwords:?}");
        assert!(!debug.contains(DUMMY_SALT_AND_DIGEST), "{debug}");
    }

    #[test]
    fn addresses_count_by_host_and_ipv6_by_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bucket_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(bucket_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(bucket_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        let throttle = LoginThrottle::new(1, 1);
        let now = Instant::now();
        assert!(throttle.allowed(ip("2001:db8::1"), now).is_ok());
        throttle.failed(ip("2001:db8::1"), now);
        assert!(throttle.allowed(ip("2001:db8::2"), now).is_err());
        assert_eq!(throttle.len(), 1);
    }
}
