//! Token buckets in a bounded LRU: per-principal rate limits (`auth.rate_limit`, keyed by
//! principal name) and failed-login throttling (`auth.login_failures`, keyed by client
//! address, see `super::login`).
//!
//! A bucket holds up to `burst` tokens and refills at a steady rate. Buckets live in an LRU of
//! [`MAX_BUCKETS`]: memory stays bounded however many keys there are, and a key evicted from
//! it starts again with a full bucket (only ever more lenient).

use std::borrow::Borrow;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Most buckets kept.
pub const MAX_BUCKETS: NonZeroUsize = match NonZeroUsize::new(16 * 1024) {
    Some(n) => n,
    None => unreachable!(),
};

/// Token buckets by key (a principal name unless said otherwise).
#[derive(Debug)]
pub struct RateLimiter<K: Hash + Eq = String> {
    /// Tokens per second.
    rate: f64,
    burst: f64,
    buckets: Mutex<LruCache<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

// === impl RateLimiter ===

impl RateLimiter {
    /// `requests_per_second` sustained, `burst` at once (both at least 1).
    pub fn new(requests_per_second: u32, burst: u32) -> Self {
        Self::with_capacity(requests_per_second, burst, MAX_BUCKETS)
    }

    fn with_capacity(requests_per_second: u32, burst: u32, capacity: NonZeroUsize) -> Self {
        RateLimiter::with_rate(f64::from(requests_per_second.max(1)), burst, capacity)
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `per_minute` sustained (at least 1), `burst` at once (at least 1).
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::with_rate(f64::from(per_minute.max(1)) / 60.0, burst, MAX_BUCKETS)
    }

    fn with_rate(per_second: f64, burst: u32, capacity: NonZeroUsize) -> Self {
        Self {
            rate: per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Takes one token from `key`'s bucket at `now`; `Err` with the time until the next one
    /// is available when the bucket is empty.
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match buckets.get_mut(key) {
            Some(b) => b,
            None => {
                buckets.put(
                    key.to_owned(),
                    Bucket {
                        tokens: self.burst,
                        at: now,
                    },
                );
                buckets.get_mut(key).expect("just inserted")
            }
        };
        bucket.tokens = self.refilled(bucket, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Whether `key`'s bucket has a token at `now`, taking none; `Err` with the time until it
    /// has one. A key without a bucket has a full one.
    pub fn peek<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = buckets.peek_mut(key) else {
            return Ok(());
        };
        let tokens = self.refilled(bucket, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// Takes one token from `key`'s bucket at `now` whether or not it has one (never below
    /// empty): for what is counted after the fact, a failed login.
    pub fn charge<Q>(&self, key: &Q, now: Instant)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let _ = self.check(key, now);
    }

    /// `bucket`'s tokens at `now`, without changing it.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.rate).min(self.burst)
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_principal() {
        let limiter = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("alice", t0).is_ok());
        }
        let wait = limiter.check("alice", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another principal has its own bucket.
        assert!(limiter.check("bob", t0).is_ok());
        // Half a second refills one request.
        assert!(limiter
            .check("alice", t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limiter
            .check("alice", t0 + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn per_minute_refills_slowly_and_peeking_takes_nothing() {
        let limiter: RateLimiter<u32> = RateLimiter::per_minute(10, 2);
        let t0 = Instant::now();
        // No bucket yet: full, and peeking makes none.
        assert!(limiter.peek(&1, t0).is_ok());
        assert!(limiter.is_empty());
        limiter.charge(&1, t0);
        assert!(limiter.peek(&1, t0).is_ok());
        limiter.charge(&1, t0);
        assert_eq!(limiter.peek(&1, t0), Err(Duration::from_secs(6)));
        // Charging an empty bucket keeps it empty, not below.
        limiter.charge(&1, t0);
        assert!(limiter.peek(&1, t0 + Duration::from_secs(5)).is_err());
        assert!(limiter.peek(&1, t0 + Duration::from_secs(7)).is_ok());
        assert!(limiter.check(&1, t0 + Duration::from_secs(7)).is_ok());
        assert!(limiter.check(&1, t0 + Duration::from_secs(7)).is_err());
    }

    #[test]
    fn buckets_are_bounded() {
        let limiter = RateLimiter::with_capacity(1, 1, NonZeroUsize::new(100).unwrap());
        let now = Instant::now();
        for i in 0..1000 {
            let _ = limiter.check(&format!("p{i}"), now);
        }
        assert_eq!(limiter.len(), 100);
    }
}
