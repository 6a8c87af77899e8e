//! Bearer tokens from a registry's token service (distribution `docs/spec/auth/token.md`):
//! the response format and a per-scope cache in which concurrent requests share one fetch.
//!
//! The cache is keyed by (realm, service, scope), and the scope names a repository a client
//! chose, so it is bounded: at most [`MAX_SLOTS`] keys, least recently used evicted first,
//! and keys no longer than [`MAX_KEY_BYTES`] (longer challenges are refused in
//! `challenge::select`), so a stream of random repository names costs a fixed amount of
//! memory.

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http::HeaderValue;
use lru::LruCache;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::UpstreamError;

/// Token spec: "When omitted, this defaults to 60 seconds."
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// Longest lifetime believed; a token service claiming more is capped, so a bogus value cannot
/// pin a revoked token in memory.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Tokens are refreshed this long before they expire (at most a quarter of their lifetime), so
/// a request never sets out with a token that expires on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Most scopes cached; the least recently used is evicted for a new one. Repositories are
/// client-chosen, so the map must not grow without bound. An evicted slot still in use keeps
/// working for those holding it; a later request for its scope starts a new one.
pub(crate) const MAX_SLOTS: usize = 1024;

/// Longest realm, service or scope accepted from a challenge (`challenge::select`), so a key
/// is at most three times this: 1024 slots stay within a few MiB.
pub(crate) const MAX_KEY_BYTES: usize = 2048;

/// A ready `Authorization: Bearer ...` header value, marked sensitive. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(HeaderValue);

/// What the token service is asked for; tokens are cached per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub realm: String,
    pub service: Option<String>,
    /// Space-separated scopes; `None` for the `/v2/` check.
    pub scope: Option<String>,
}

/// A parsed token response.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub token: Token,
    /// How long it stays valid from the moment it was requested.
    pub lifetime: Duration,
}

/// Tokens by scope, at most [`MAX_SLOTS`] of them (LRU).
pub(crate) struct TokenCache {
    slots: Mutex<LruCache<TokenKey, Arc<Slot>>>,
}

/// One scope's token. The async mutex is held across the fetch, so concurrent requests for the
/// same scope wait for the first one's fetch instead of starting their own.
#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    token: Option<Cached>,
    /// The last failed fetch: requests that queued behind it get its error instead of each
    /// trying again in turn against a token service that is down.
    failure: Option<(Instant, UpstreamError)>,
}

struct Cached {
    token: Token,
    refresh_at: Instant,
}

#[derive(serde::Deserialize)]
struct Wire {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<f64>,
    issued_at: Option<String>,
}

// === impl Token ===

impl Token {
    pub(crate) fn header(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

// === impl TokenCache ===

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            slots: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(MAX_SLOTS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }
}

impl TokenCache {
    /// The cached token for `key`, or a fresh one from `fetch`. `rejected` is a token the
    /// registry just refused: it is not handed out again even if it has not expired.
    pub(crate) async fn get<F, Fut>(
        &self,
        key: &TokenKey,
        rejected: Option<&Token>,
        fetch: F,
    ) -> Result<Token, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, UpstreamError>>,
    {
        let queued_at = Instant::now();
        let slot = self.slot(key);
        let mut state = slot.state.lock().await;
        if let Some(cached) = &state.token {
            if Instant::now() < cached.refresh_at && rejected != Some(&cached.token) {
                return Ok(cached.token.clone());
            }
        }
        if let Some((failed_at, err)) = &state.failure {
            if *failed_at >= queued_at {
                return Err(err.clone());
            }
        }
        let requested_at = Instant::now();
        match fetch().await {
            Ok(fetched) => {
                let margin = REFRESH_MARGIN.min(fetched.lifetime / 4);
                state.token = Some(Cached {
                    token: fetched.token.clone(),
                    refresh_at: requested_at + fetched.lifetime - margin,
                });
                state.failure = None;
                Ok(fetched.token)
            }
            Err(err) => {
                state.token = None;
                state.failure = Some((Instant::now(), err.clone()));
                Err(err)
            }
        }
    }

    fn slot(&self, key: &TokenKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get_or_insert(key.clone(), Arc::default).clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or_default()
    }
}

// === the token response ===

/// Parses a token response: `token` (or the OAuth2 name `access_token`), `expires_in`,
/// `issued_at`. Errors never include the body: it holds the token.
pub(crate) fn parse_response(body: &[u8], now: OffsetDateTime) -> Result<Fetched, String> {
    let wire: Wire = serde_json::from_slice(body)
        .map_err(|e| format!("the token response is not the expected JSON ({e})"))?;
    let value = [wire.token, wire.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or("the token response has no `token`")?;
    let mut header = HeaderValue::from_str(&format!("Bearer {value}"))
        .map_err(|_| "the token contains characters not allowed in a header")?;
    header.set_sensitive(true);

    let mut lifetime = match wire.expires_in {
        None => DEFAULT_LIFETIME,
        // `min` before converting: huge values would fail the conversion, not saturate.
        Some(secs) => Duration::try_from_secs_f64(secs.min(MAX_LIFETIME.as_secs_f64()))
            .unwrap_or(Duration::ZERO),
    };
    // A token issued a while ago (a token service that hands out cached tokens) has less time
    // left. An `issued_at` in our future, or older than the whole lifetime, is clock skew
    // rather than information; trusting it would mean never caching, so it is ignored.
    if let Some(issued) = wire
        .issued_at
        .and_then(|s| OffsetDateTime::parse(&s, &Rfc3339).ok())
    {
        let age = now - issued;
        if age.is_positive() && age < lifetime {
            lifetime -= age.unsigned_abs();
        }
    }
    Ok(Fetched {
        token: Token(header),
        lifetime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-01-01T12:00:00Z", &Rfc3339).unwrap()
    }

    fn token(value: &str) -> Token {
        Token(HeaderValue::from_str(&format!("Bearer {value}")).unwrap())
    }

    #[test]
    fn parses_token_responses() {
        let cases: [(&str, &str, u64); 7] = [
            (r#"{"token":"abc","expires_in":300}"#, "abc", 300),
            (r#"{"access_token":"xyz","expires_in":120}"#, "xyz", 120),
            // Both present: the spec says they are the same; `token` wins.
            (r#"{"token":"t","access_token":"a"}"#, "t", 60),
            (r#"{"token":"","access_token":"a"}"#, "a", 60),
            (
                r#"{"token":"t","expires_in":300,"issued_at":"2026-01-01T11:59:00Z"}"#,
                "t",
                240,
            ),
            // Issued in the future or before the whole lifetime: skew, ignored.
            (
                r#"{"token":"t","expires_in":300,"issued_at":"2026-01-01T12:10:00Z"}"#,
                "t",
                300,
            ),
            (
                r#"{"token":"t","expires_in":300,"issued_at":"2026-01-01T10:00:00Z"}"#,
                "t",
                300,
            ),
        ];
        for (body, want, secs) in cases {
            let fetched = parse_response(body.as_bytes(), now()).unwrap();
            assert_eq!(fetched.token, token(want), "{body}");
            assert_eq!(fetched.lifetime, Duration::from_secs(secs), "{body}");
            assert!(fetched.token.header().is_sensitive());
        }
    }

    #[test]
    fn odd_lifetimes_are_clamped() {
        let cases = [
            (r#"{"token":"t","expires_in":-5}"#, Duration::ZERO),
            (r#"{"token":"t","expires_in":1e300}"#, MAX_LIFETIME),
            (
                r#"{"token":"t","expires_in":0.5}"#,
                Duration::from_millis(500),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_response(body.as_bytes(), now()).unwrap().lifetime,
                want
            );
        }
    }

    #[test]
    fn bad_responses_do_not_echo_the_body() {
        for body in [
            r#"{"token":"sekrit","expires_in":"soon"}"#,
            r#"{"tok":"sekrit"}"#,
            r#"{"token":"sek\nrit"}"#,
            "sekrit",
        ] {
            let err = parse_response(body.as_bytes(), now()).unwrap_err();
            assert!(!err.contains("sekrit") && !err.contains("rit"), "{err}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", token("sekrit"));
        assert_eq!(shown, "Token(<redacted>)");
    }

    fn key(scope: &str) -> TokenKey {
        TokenKey {
            realm: "https://auth.example/token".to_owned(),
            service: Some("registry.example".to_owned()),
            scope: Some(scope.to_owned()),
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch() {
        let cache = TokenCache::default();
        let fetches = AtomicUsize::new(0);
        let counter = &fetches;
        let fetch = move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Fetched {
                token: token("shared"),
                lifetime: Duration::from_secs(300),
            })
        };
        let k = key("repository:a:pull");
        let results =
            futures_util::future::join_all((0..8).map(|_| cache.get(&k, None, fetch))).await;
        for r in results {
            assert_eq!(r.unwrap(), token("shared"));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Another scope gets its own token.
        cache
            .get(&key("repository:b:pull"), None, fetch)
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn rejected_and_short_lived_tokens_are_refetched() {
        let cache = TokenCache::default();
        let k = key("repository:a:pull");
        let n = AtomicUsize::new(0);
        let fetch = |lifetime: u64| {
            let i = n.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(Fetched {
                    token: token(&format!("t{i}")),
                    lifetime: Duration::from_secs(lifetime),
                })
            }
        };
        let first = cache.get(&k, None, || fetch(300)).await.unwrap();
        assert_eq!(cache.get(&k, None, || fetch(300)).await.unwrap(), first);
        let second = cache.get(&k, Some(&first), || fetch(0)).await.unwrap();
        assert_ne!(second, first);
        // A zero lifetime is used once, never cached.
        let third = cache.get(&k, None, || fetch(300)).await.unwrap();
        assert_ne!(third, second);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn queued_requests_share_a_failure() {
        let cache = TokenCache::default();
        let k = key("repository:a:pull");
        let fetches = AtomicUsize::new(0);
        let counter = &fetches;
        let fetch = move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(UpstreamError::Auth {
                registry: "r".to_owned(),
                realm: "https://auth.example/token".to_owned(),
                detail: "down".to_owned(),
            })
        };
        let results =
            futures_util::future::join_all((0..4).map(|_| cache.get(&k, None, fetch))).await;
        assert!(results.iter().all(Result::is_err));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A later request tries again.
        assert!(cache.get(&k, None, fetch).await.is_err());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    /// Distinct client-chosen repositories, each with a valid long-lived token: the cache
    /// stays at its bound, and the most recent scopes stay cached.
    #[tokio::test]
    async fn scopes_are_bounded_lru() {
        let cache = TokenCache::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(Fetched {
                token: token("t"),
                lifetime: MAX_LIFETIME,
            })
        };
        for i in 0..MAX_SLOTS * 3 {
            cache
                .get(&key(&format!("repository:r{i}:pull")), None, fetch)
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), MAX_SLOTS);
        let before = fetches.load(Ordering::SeqCst);
        let newest = key(&format!("repository:r{}:pull", MAX_SLOTS * 3 - 1));
        cache.get(&newest, None, fetch).await.unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            before,
            "newest still cached"
        );
        cache
            .get(&key("repository:r0:pull"), None, fetch)
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), before + 1, "oldest evicted");
    }
}
