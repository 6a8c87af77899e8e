//! The verifying proxy: one request from route to response.
//!
//! ```text
//! request -> oci::parse -> upstream (by ?ns= or default) -> policy::decide
//!   deny   -> 403
//!   verify -> trust (tag -> signed digest | digest a member of the typed closure, of the
//!             kind asked: closure.rs) -> content by digest (content.rs)
//!   audit  -> content as upstream has it; trust checked in the background and recorded
//!   allow  -> content as upstream has it
//!             (audit, allow: a tag within `tag_ttl` from memory, stale while the upstream
//!             is down: tags.rs)
//! ```
//! Content is always fetched and cached by digest and hashed before it is served or stored.

mod closure;
mod content;
mod ctx;
mod error;
mod handlers;
mod range;
mod record;
mod runtime;
mod tags;
mod verdict;

use std::sync::{Arc, Mutex, RwLock};

use http::{Request, Response};

pub use self::{
    error::ProxyError,
    runtime::{BuildError, Runtime},
    tags::STALE_WINDOW as TAG_STALE_WINDOW,
    verdict::{Verdict, VerdictError, VerdictKind},
};
// `auth` grants token scopes by the same mapping the handlers pull by.
pub(crate) use self::handlers::upstream_repo;
use crate::{body::Body, cache::Store, metrics::Metrics, oci, records::Records};

/// Limits on what the proxy reads into memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest manifest accepted from upstream.
    pub max_manifest_size: u64,
    /// Most manifests walked to decide whether a digest is in a signed image's closure.
    pub max_closure_manifests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_size: oci::manifest::DEFAULT_MAX_MANIFEST_BYTES as u64,
            max_closure_manifests: 10_000,
        }
    }
}

/// The proxy: the reloadable runtime (policy, upstreams, verifiers) and the shared store.
pub struct Proxy {
    runtime: RwLock<Arc<Runtime>>,
    store: Store,
    metrics: Arc<Metrics>,
    limits: Limits,
    /// What each manifest references, by digest: content-addressed, so never stale.
    refs: Mutex<lru::LruCache<String, Arc<content::Refs>>>,
    /// Under `audit` and `allow`: what each tag last pointed at upstream (`tag_ttl`).
    tags: Mutex<lru::LruCache<tags::Key, tags::Remembered>>,
    /// Where each request's decision record goes (`records:`; none by default).
    records: Records,
}

// === impl Proxy ===

impl Proxy {
    pub fn new(runtime: Runtime, store: Store, metrics: Arc<Metrics>, limits: Limits) -> Self {
        Proxy {
            runtime: RwLock::new(Arc::new(runtime)),
            store,
            records: Records::disabled(metrics.records().clone()),
            metrics,
            limits,
            refs: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(16 * 1024).expect("non-zero"),
            )),
            tags: Mutex::new(lru::LruCache::new(tags::CAPACITY)),
        }
    }

    /// Sends a decision record of every decided request to `records`.
    pub fn with_records(mut self, records: Records) -> Self {
        self.records = records;
        self
    }

    /// The runtime in force; a reload swaps it without disturbing requests in flight.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces policy, upstreams and verifiers (SIGHUP).
    pub fn reload(&self, runtime: Runtime) {
        *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(runtime);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves one request. Never fails: errors become OCI error responses here.
    pub async fn handle<B>(self: &Arc<Self>, req: Request<B>) -> Response<Body> {
        let head = req.method() == http::Method::HEAD;
        let route = match oci::parse(req.method(), req.uri().path(), req.uri().query()) {
            Ok(route) => route,
            Err(e) => return ProxyError::from(e).into_response(head),
        };
        let grant = req.extensions().get::<crate::auth::Grant>();
        let outcome = self.dispatch(&route, req.headers(), grant).await;
        // One record per decided request, from here where its answer is final.
        if self.records.is_enabled() {
            let asked = record::Asked::of(&req);
            if let Some(record) = self.record(asked, &route, outcome.as_ref()) {
                self.records.emit(record);
            }
        }
        match outcome {
            Ok(response) => response,
            Err(e) => e.into_response(head),
        }
    }
}
