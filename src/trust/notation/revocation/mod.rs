//! Revocation of a Notation signature's certificate chain (`specs/trust-store-trust-policy.md`,
//! "Certificate Revocation Evaluation"; notation-core-go `revocation/revocation.go`,
//! `revocation/crl`, `revocation/internal/{crl,ocsp,x509util}`): OCSP first where a
//! certificate names a responder, CRL where it names a distribution point (or OCSP could
//! not tell), every fetch bounded in time and size, CRLs kept in memory and in a file cache
//! until their `nextUpdate`, and CRLs the operator supplies (air-gapped sites) used before
//! any fetch.
//!
//! Per certificate, leaf first (notation-core-go `ValidateContext`, all at once):
//! 1. the last certificate (the root) is [`Status::NonRevokable`]: nothing above it can
//!    revoke it;
//! 2. an operator CRL issued by the certificate's issuer, verified under its key, current,
//!    and covering the certificate decides (trustgate's addition; notation has none);
//! 3. a certificate naming neither an OCSP responder nor a CRL distribution point is
//!    [`Status::NonRevokable`] (the spec: "no revocation check is performed");
//! 4. with an OCSP responder: each responder in turn until one answers (good, revoked or
//!    unknown); if the result is unknown for any reason and the certificate has a
//!    distribution point, CRLs decide ("OCSP check failed with unknown error and fallback to
//!    CRL check");
//! 5. with distribution points: every one of them (notation-core-go reads them all, the
//!    first failure makes the result unknown), each CRL from memory, the file cache, or
//!    fetched.

mod cache;
mod chain;
mod crl;
mod fetch;
mod ocsp;
mod sig;
mod sources;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use time::OffsetDateTime;

use self::{
    cache::CrlCache,
    chain::{Cert, MAX_URLS},
    crl::{Bundle, Crl, Verdict},
    fetch::{FetchError, Http},
    ocsp::Answer,
};

/// Largest CRL read (notation-core-go `MaxCRLSize` is 32 MiB; a code-signing CA's are small).
pub const MAX_CRL_SIZE: u64 = 8 * 1024 * 1024;
/// Largest OCSP response read.
pub const MAX_OCSP_RESPONSE: u64 = 64 * 1024;
/// Default bound on one fetch (notation-go uses 2 s per OCSP request and 5 s per CRL).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Operator CRL files read, at most.
pub const MAX_OPERATOR_CRLS: usize = 256;
/// Each certificate's whole check (responders, distribution points, delta CRLs) is bounded
/// by this many fetch timeouts.
const FETCHES_PER_CERT: u32 = 4;
/// OCSP responses kept in memory, at most, and for how long at most (within their
/// `nextUpdate`): a proxy checks the same chains over and over.
const OCSP_CACHE_ENTRIES: usize = 256;
const OCSP_CACHE_AGE: time::Duration = time::Duration::minutes(10);
/// Why the status could only be had by fetching.
const FETCH_OFF: &str = "not fetched: fetching is off";
/// Why nothing is fetched for a chain no trust store anchors.
const UNANCHORED: &str =
    "not fetched: no trust store anchors the chain, so its URLs are its signer's choice";

/// What a certificate chain is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The signing chain of an envelope.
    CodeSigning,
    /// A timestamp authority's chain.
    Timestamping,
}

/// How revocation is checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where fetched CRLs are kept between runs; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// CRL files (DER or PEM) supplied by the operator, used before any fetch.
    pub crls: Vec<PathBuf>,
    /// Whether OCSP responders and CRL distribution points may be fetched at all.
    pub fetch: bool,
    /// Bound on each fetch.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cache_dir: None,
            crls: Vec::new(),
            fetch: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The revocation status of one certificate (notation-core-go `result.Result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Checked, not revoked.
    Ok,
    /// The certificate names no OCSP responder and no CRL distribution point.
    NonRevokable,
    /// Revoked (at the time given, when the CRL or OCSP response says).
    Revoked(Option<OffsetDateTime>),
    /// Could not be determined, and why.
    Unknown(String),
}

/// Why revocation checking could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RevocationError(pub String);

/// A revocation checker, shared by the requests of a rule; cheap to clone.
#[derive(Clone)]
pub struct Checker {
    config: Arc<Config>,
    inner: Arc<Inner>,
    /// Why nothing may be fetched, when nothing may.
    no_fetch: Option<&'static str>,
}

/// A responder URL and the DER request sent to it.
type OcspKey = (String, Vec<u8>);

struct Inner {
    http: Http,
    cache: CrlCache,
    /// Operator CRLs: base CRLs and delta CRLs.
    bases: Vec<Arc<Crl>>,
    deltas: Vec<Arc<Crl>>,
    /// One lock per CRL URL being fetched, so concurrent checks fetch it once.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// OCSP responses that gave good or revoked, by responder and request, until when they
    /// may be reused; judged again (signature and all) each time.
    ocsp_cache: Mutex<lru::LruCache<OcspKey, (bytes::Bytes, OffsetDateTime)>>,
}

// === impl Checker ===

impl Checker {
    /// A checker for `config`: operator CRL files are read (and must each parse) and the
    /// cache directory created now.
    pub fn new(config: Config) -> Result<Checker, RevocationError> {
        let err = RevocationError;
        if config.timeout.is_zero() {
            return Err(err("the revocation fetch timeout must be above zero".into()));
        }
        if config.crls.len() > MAX_OPERATOR_CRLS {
            return Err(err(format!(
                "{} CRL files given, at most {MAX_OPERATOR_CRLS} are read",
                config.crls.len()
            )));
        }
        let (mut bases, mut deltas) = (Vec::new(), Vec::new());
        for path in &config.crls {
            // PEM is a third larger than the DER it holds.
            let bytes = read_bounded(path, 2 * MAX_CRL_SIZE)
                .map_err(|e| err(format!("CRL file {}: {e}", path.display())))?;
            let ders = crl::file_crls(&bytes)
                .map_err(|e| err(format!("CRL file {}: {e}", path.display())))?;
            for der in ders {
                if der.len() as u64 > MAX_CRL_SIZE {
                    return Err(err(format!(
                        "CRL file {}: a CRL larger than {MAX_CRL_SIZE} bytes",
                        path.display()
                    )));
                }
                let parsed = Crl::parse(der)
                    .map_err(|e| err(format!("CRL file {}: {e}", path.display())))?;
                if parsed.is_delta() {
                    deltas.push(Arc::new(parsed));
                } else {
                    bases.push(Arc::new(parsed));
                }
            }
        }
        let inner = Inner {
            http: Http::new(config.timeout).map_err(err)?,
            cache: CrlCache::new(config.cache_dir.clone()).map_err(err)?,
            bases,
            deltas,
            inflight: Mutex::new(HashMap::new()),
            ocsp_cache: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(OCSP_CACHE_ENTRIES)
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        };
        Ok(Checker {
            no_fetch: (!config.fetch).then_some(FETCH_OFF),
            config: Arc::new(config),
            inner: Arc::new(inner),
        })
    }

    /// This checker, fetching nothing (operator CRLs and cached CRLs still answer), for a
    /// chain no trust store anchors: a certificate naming no OCSP responder and no CRL
    /// distribution point is still [`Status::NonRevokable`], one naming some is
    /// [`Status::Unknown`].
    pub fn unanchored(&self) -> Checker {
        Checker {
            no_fetch: Some(self.no_fetch.unwrap_or(UNANCHORED)),
            ..self.clone()
        }
    }

    /// The status of each certificate of `chain` (DER, leaf first, root last), one per
    /// certificate (the root, which nothing above it can revoke, is [`Status::NonRevokable`]).
    /// `signing_time` is the authentic signing time when there is one: a certificate listed
    /// as revoked with an invalidity date after it was still good when it signed, so it is
    /// [`Status::Ok`] (the spec's "Revocation Checking with CRL/OCSP"; the revocation time
    /// and reason other than certificateHold/removeFromCRL do not matter, as in
    /// notation-core-go). A chain that is not leaf-to-root, each certificate issued by the
    /// next, is [`Status::Unknown`] throughout.
    pub async fn check(
        &self,
        chain: &[Vec<u8>],
        purpose: Purpose,
        signing_time: Option<OffsetDateTime>,
    ) -> Vec<Status> {
        let certs = match chain::read(chain, purpose) {
            Ok(certs) => certs,
            Err(e) => {
                let why = format!("invalid chain: expected chain to be correct and complete: {e}");
                return chain.iter().map(|_| Status::Unknown(why.clone())).collect();
            }
        };
        let bound = self.config.timeout.saturating_mul(FETCHES_PER_CERT);
        let checks = certs
            .iter()
            .zip(certs.iter().skip(1))
            .map(|(cert, issuer)| async move {
                match tokio::time::timeout(bound, self.check_one(cert, issuer, signing_time)).await
                {
                    Ok(status) => status,
                    Err(_) => Status::Unknown(format!(
                        "revocation check of certificate #{} did not finish within {:.2} seconds",
                        cert.index,
                        bound.as_secs_f64()
                    )),
                }
            });
        let mut statuses = futures_util::future::join_all(checks).await;
        statuses.push(Status::NonRevokable);
        statuses
    }

    async fn check_one(
        &self,
        cert: &Cert,
        issuer: &Cert,
        signing_time: Option<OffsetDateTime>,
    ) -> Status {
        let now = OffsetDateTime::now_utc();
        let mut notes: Vec<String> = Vec::new();
        match self.operator_bundle(cert, issuer, now).await {
            Some(Ok(bundle)) => return crl_status(&bundle, cert, signing_time, "operator CRL"),
            Some(Err(e)) => notes.push(format!("operator CRL: {e}")),
            None => {}
        }
        let has_crl = cert.crl.as_ref().map_or(true, |urls| !urls.is_empty());
        if cert.ocsp.is_empty() && !has_crl {
            return match notes.is_empty() {
                true => Status::NonRevokable,
                false => self.unknown(cert, notes),
            };
        }
        if !cert.ocsp.is_empty() {
            match self.ocsp(cert, issuer, now, signing_time).await {
                Ok(Answer::Good) => return Status::Ok,
                Ok(Answer::Revoked(at)) => return Status::Revoked(Some(at)),
                Ok(Answer::Unknown) => {
                    notes.push("OCSP: certificate has unknown status via OCSP".to_owned())
                }
                Err(e) => notes.push(format!("OCSP: {e}")),
            }
            if !has_crl {
                return self.unknown(cert, notes);
            }
            tracing::debug!(
                certificate = cert.index,
                "OCSP check failed with unknown error and fallback to CRL check"
            );
        }
        match self.crl(cert, issuer, now, signing_time).await {
            Ok(Verdict::NotRevoked) => Status::Ok,
            Ok(Verdict::Revoked(at)) => Status::Revoked(Some(at)),
            Err(e) => {
                notes.push(format!("CRL: {e}"));
                self.unknown(cert, notes)
            }
        }
    }

    fn unknown(&self, cert: &Cert, notes: Vec<String>) -> Status {
        Status::Unknown(format!(
            "revocation status of certificate #{} is unknown: {}",
            cert.index,
            notes.join("; ")
        ))
    }

    /// ocsp.go `CertCheckStatus`: each responder in order until one gives a valid answer;
    /// otherwise the last error.
    async fn ocsp(
        &self,
        cert: &Cert,
        issuer: &Cert,
        now: OffsetDateTime,
        signing_time: Option<OffsetDateTime>,
    ) -> Result<Answer, String> {
        if cert.ocsp.len() > MAX_URLS {
            return Err(format!("more than {MAX_URLS} OCSP servers"));
        }
        if let Some(off) = self.no_fetch {
            return Err(format!("OCSP {off}"));
        }
        let request = ocsp::request(cert, issuer)?;
        let mut last = String::new();
        for server in &cert.ocsp {
            let key = (server.clone(), request.clone());
            let kept = self
                .inner
                .ocsp_cache
                .lock()
                .ok()
                .and_then(|mut c| c.get(&key).cloned())
                .filter(|(_, until)| now <= *until);
            if let Some((body, _)) = kept {
                if let Ok((answer, _)) = ocsp::judge(&body, cert, issuer, now, signing_time) {
                    return Ok(answer);
                }
            }
            let body = match ocsp::get_url(server, &request) {
                Some(url) => self.inner.http.get(&url, MAX_OCSP_RESPONSE).await,
                None => {
                    self.inner
                        .http
                        .post(
                            server,
                            request.clone(),
                            "application/ocsp-request",
                            MAX_OCSP_RESPONSE,
                        )
                        .await
                }
            };
            let body = body.map_err(|e| match e {
                FetchError::Timeout(t) => format!(
                    "exceeded timeout threshold of {:.2} seconds for OCSP check",
                    t.as_secs_f64()
                ),
                e => format!("error checking revocation status via OCSP: {e}"),
            });
            match body.and_then(|b| Ok((ocsp::judge(&b, cert, issuer, now, signing_time)?, b))) {
                Ok(((answer, next_update), body)) => {
                    if answer != Answer::Unknown {
                        let until = next_update.min(now + OCSP_CACHE_AGE);
                        if let Ok(mut cache) = self.inner.ocsp_cache.lock() {
                            cache.put(key, (body, until));
                        }
                    }
                    return Ok(answer);
                }
                Err(e) => last = format!("{server}: {e}"),
            }
        }
        Err(last)
    }

    /// crl.go `CertCheckStatus`: every distribution point; the first failure ends it.
    async fn crl(
        &self,
        cert: &Cert,
        issuer: &Cert,
        now: OffsetDateTime,
        signing_time: Option<OffsetDateTime>,
    ) -> Result<Verdict, String> {
        let urls = cert
            .crl
            .as_ref()
            .map_err(|e| format!("malformed CRL distribution points: {e}"))?;
        if urls.len() > MAX_URLS {
            return Err(format!("more than {MAX_URLS} CRL distribution points"));
        }
        for url in urls {
            let bundle = self
                .bundle(url, issuer, now)
                .await
                .map_err(|e| format!("failed to download CRL from {url}: {e}"))?;
            if cert.freshest && bundle.delta.is_none() {
                return Err("freshest CRL from certificate extension is not supported".to_owned());
            }
            bundle
                .base
                .covers(cert, false)
                .map_err(|e| format!("failed to validate CRL from {url}: {e}"))?;
            match bundle.lookup(cert, signing_time) {
                Ok(Verdict::NotRevoked) => {}
                Ok(revoked) => return Ok(revoked),
                Err(e) => return Err(format!("failed to check revocation status from {url}: {e}")),
            }
        }
        Ok(Verdict::NotRevoked)
    }
}

/// The status a validated bundle gives `cert`.
fn crl_status(
    bundle: &Bundle,
    cert: &Cert,
    signing_time: Option<OffsetDateTime>,
    source: &str,
) -> Status {
    match bundle.lookup(cert, signing_time) {
        Ok(Verdict::NotRevoked) => Status::Ok,
        Ok(Verdict::Revoked(at)) => Status::Revoked(Some(at)),
        Err(e) => Status::Unknown(format!(
            "revocation status of certificate #{} is unknown: {source}: {e}",
            cert.index
        )),
    }
}

/// The bytes of the file at `path`, at most `limit`.
fn read_bounded(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
impl Checker {
    /// This checker with every fetched URL passed through `rewrite` first.
    fn rewriting(mut self, rewrite: fetch::Rewrite) -> Checker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.http.rewrite = Some(rewrite);
        }
        self
    }
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("config", &self.config)
            .field(
                "operator_crls",
                &(self.inner.bases.len() + self.inner.deltas.len()),
            )
            .finish()
    }
}
