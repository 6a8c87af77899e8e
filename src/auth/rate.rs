//! Per-principal rate limits (`auth.rate_limit`): one token bucket per principal name.
//!
//! A bucket holds up to `burst` requests and refills at `requests_per_second`. Buckets live in
//! an LRU of [`MAX_BUCKETS`]: memory stays bounded however many principals there are, and a
//! principal evicted from it starts again with a full bucket (only ever more lenient).

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Most buckets kept.
pub const MAX_BUCKETS: NonZeroUsize = match NonZeroUsize::new(16 * 1024) {
    Some(n) => n,
    None => unreachable!(),
};

/// Token buckets by principal name.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<LruCache<String, Bucket>>,
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
        Self {
            rate: f64::from(requests_per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Takes one request from `principal`'s bucket at `now`; `Err` with the time until the
    /// next one is available when the bucket is empty.
    pub fn check(&self, principal: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match buckets.get_mut(principal) {
            Some(b) => b,
            None => {
                buckets.put(
                    principal.to_owned(),
                    Bucket {
                        tokens: self.burst,
                        at: now,
                    },
                );
                buckets.get_mut(principal).expect("just inserted")
            }
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
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
    fn buckets_are_bounded() {
        let limiter = RateLimiter::with_capacity(1, 1, NonZeroUsize::new(100).unwrap());
        let now = Instant::now();
        for i in 0..1000 {
            let _ = limiter.check(&format!("p{i}"), now);
        }
        assert_eq!(limiter.len(), 100);
    }
}
