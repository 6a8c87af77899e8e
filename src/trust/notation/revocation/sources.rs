//! Where a certificate's CRLs come from: the operator's files, memory, the file cache, or
//! the distribution point itself (notation-core-go `crl.HTTPFetcher.Fetch`: cache first,
//! fetched when missing or past `nextUpdate`, then kept), one fetch per URL at a time.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    chain::{Cert, MAX_URLS},
    crl::{Bundle, Crl},
    Checker, MAX_CRL_SIZE,
};

// === impl Checker ===

impl Checker {
    /// A validated bundle for the distribution point `url` under `issuer`: from memory,
    /// else (one fetch per URL at a time) the file cache, else fetched, and kept. A kept
    /// bundle past its `nextUpdate`, or that does not validate under `issuer`, is fetched
    /// again (and only a bundle that validates is kept, so a hostile peer or cache file
    /// cannot pin a bad CRL).
    pub(super) async fn bundle(
        &self,
        url: &str,
        issuer: &Cert,
        now: OffsetDateTime,
    ) -> Result<Bundle, String> {
        let usable = |b: &Bundle| b.effective(now) && b.validate(issuer, now).is_ok();
        if let Some(b) = self.inner.cache.memory(url).filter(usable) {
            return Ok(b);
        }
        let lock = self
            .inner
            .inflight
            .lock()
            .map(|mut map| map.entry(url.to_owned()).or_default().clone())
            .map_err(|_| "internal: poisoned lock".to_owned())?;
        let result = async {
            let _guard = lock.lock().await;
            if let Some(b) = self.inner.cache.memory(url).filter(usable) {
                return Ok(b);
            }
            let mut stale = None;
            if let Some(b) = self.inner.cache.file(url).await {
                if usable(&b) {
                    self.inner.cache.remember(url, &b);
                    return Ok(b);
                }
                if let Some(next) = b.base.next_update.filter(|n| now > *n) {
                    stale = Some(next);
                }
            }
            if let Some(off) = self.no_fetch {
                return Err(match stale {
                    Some(next) => format!("the cached CRL expired at {next}; {off}"),
                    None => off.to_owned(),
                });
            }
            let bundle = self.fetch_bundle(url).await?;
            bundle.validate(issuer, now)?;
            self.inner.cache.remember(url, &bundle);
            self.inner.cache.store(url, &bundle).await;
            Ok(bundle)
        }
        .await;
        drop(lock);
        if let Ok(mut map) = self.inner.inflight.lock() {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        result
    }

    /// fetcher.go `fetch`: the base CRL at `url`, then a delta CRL from the base's
    /// freshestCRL URLs, tried in order until one is had.
    pub(super) async fn fetch_bundle(&self, url: &str) -> Result<Bundle, String> {
        let base = Arc::new(self.fetch_crl(url).await?);
        let delta = match &base.freshest {
            None => None,
            Some(Err(e)) => return Err(format!("failed to parse Freshest CRL extension: {e}")),
            Some(Ok(urls)) => self.fetch_delta(urls).await?,
        };
        Ok(Bundle { base, delta })
    }

    pub(super) async fn fetch_delta(&self, urls: &[String]) -> Result<Option<Arc<Crl>>, String> {
        if urls.len() > MAX_URLS {
            return Err(format!("more than {MAX_URLS} freshest CRL URLs"));
        }
        if urls.is_empty() {
            return Ok(None);
        }
        if let Some(off) = self.no_fetch {
            return Err(format!("delta CRL {off}"));
        }
        let mut last = String::new();
        for url in urls {
            match self.fetch_crl(url).await {
                Ok(delta) => return Ok(Some(Arc::new(delta))),
                Err(e) => last = format!("delta CRL from {url}: {e}"),
            }
        }
        Err(last)
    }

    pub(super) async fn fetch_crl(&self, url: &str) -> Result<Crl, String> {
        let body = self
            .inner
            .http
            .get(url, MAX_CRL_SIZE)
            .await
            .map_err(|e| format!("failed to retrieve CRL: {e}"))?;
        // Reading a large CRL (indexing its entries) is CPU work: off the async threads.
        tokio::task::spawn_blocking(move || Crl::parse(body.to_vec()))
            .await
            .map_err(|e| format!("failed to retrieve CRL: {e}"))?
            .map_err(|e| format!("failed to retrieve CRL: {e}"))
    }

    /// The operator's CRLs for `cert`: `None` when none is issued by its issuer and covers
    /// it; the newest that verifies and is current, with the newest operator delta CRL
    /// that fits it (or one fetched from its freshestCRL URLs); or why none of them can be
    /// used.
    pub(super) async fn operator_bundle(
        &self,
        cert: &Cert,
        issuer: &Cert,
        now: OffsetDateTime,
    ) -> Option<Result<Bundle, String>> {
        let candidates: Vec<&Arc<Crl>> = self
            .inner
            .bases
            .iter()
            .filter(|c| c.issued_by_name(issuer) && c.covers(cert, true).is_ok())
            .collect();
        let first = candidates.first()?;
        let base = candidates
            .iter()
            .filter(|c| c.validate(issuer, now).is_ok())
            .max_by_key(|c| c.this_update);
        let Some(base) = base else {
            let why = first.validate(issuer, now).err().unwrap_or_default();
            return Some(Err(why));
        };
        let delta = self
            .inner
            .deltas
            .iter()
            .filter(|d| d.issued_by_name(issuer))
            .filter(|d| {
                Bundle {
                    base: Arc::clone(base),
                    delta: Some(Arc::clone(d)),
                }
                .validate(issuer, now)
                .is_ok()
            })
            .max_by_key(|d| d.this_update)
            .cloned();
        let delta = match (delta, &base.freshest) {
            (Some(d), _) => Some(d),
            (None, None) => None,
            (None, Some(Err(e))) => {
                return Some(Err(format!("failed to parse Freshest CRL extension: {e}")))
            }
            (None, Some(Ok(urls))) => match self.fetch_delta(urls).await {
                Ok(d) => d,
                Err(e) => return Some(Err(e)),
            },
        };
        let bundle = Bundle {
            base: Arc::clone(base),
            delta,
        };
        if let Err(e) = bundle.validate(issuer, now) {
            return Some(Err(e));
        }
        if cert.freshest && bundle.delta.is_none() {
            return Some(Err(
                "freshest CRL from certificate extension is not supported".to_owned(),
            ));
        }
        Some(Ok(bundle))
    }
}
