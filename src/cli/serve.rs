//! `trustgate serve`: run the proxy and the admin listener until SIGINT/SIGTERM; SIGHUP
//! reloads the configuration (a bad new file keeps the old one).
//!
//! A reload is all or nothing: the policy, upstreams and verifiers (`Proxy::reload`), the
//! `auth` settings with the files they name (htpasswd, token key, static tokens) and the
//! registry listener's TLS (`server.tls` certificate and key, the client CA and CRLs of
//! `auth.client_certificates`) are all built from the new configuration first, and swapped
//! in only when every one of them loaded. Requests and connections in progress keep what they started with. What cannot
//! change under a running listener (its address, turning `auth` or `server.tls` on or off,
//! storage, most limits) is kept, with a warning, until the next start.

use std::{
    convert::Infallible,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;

use crate::{
    auth::SharedAuth,
    cache::{SharedOp, Store, StoreLock, StoreObserver},
    config::Config,
    metrics::{CacheSource, Metrics},
    proxy::{Limits, Proxy, Runtime, VerdictError},
    server::{
        self, AdminService, Decide, DecisionApi, Readiness, ServeOptions, SharedTls, StackConfig,
    },
    storage::SharedStore,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file.
    #[arg(long, default_value = "config/trustgate.yaml")]
    pub config: PathBuf,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

/// How often the cache directory is probed for writability, the cache size gauge is
/// re-read and trust-data expiry is re-published.
const OPS_INTERVAL: Duration = Duration::from_secs(5);
/// A probe slower than this counts as a failure (a hung network filesystem).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The decision API's answers: the proxy's verdicts.
struct Verdicts(Arc<Proxy>);

impl Decide for Verdicts {
    fn decide(
        &self,
        image: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (http::StatusCode, bytes::Bytes)> + Send>>
    {
        let proxy = self.0.clone();
        Box::pin(async move {
            let (status, json) = match proxy.verdict(&image).await {
                Ok(verdict) => (
                    http::StatusCode::OK,
                    serde_json::to_value(&verdict).unwrap_or_default(),
                ),
                Err(e @ VerdictError::BadImage(_)) => (
                    http::StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": e.to_string() }),
                ),
                // A peer failed: no verdict, and an agent must not take this for one.
                Err(e @ VerdictError::Failed(_)) => (
                    http::StatusCode::BAD_GATEWAY,
                    serde_json::json!({ "error": e.to_string() }),
                ),
            };
            (status, bytes::Bytes::from(json.to_string()))
        })
    }
}

/// Store events into cache metrics.
struct CacheObserver {
    metrics: Metrics,
    /// The store this observes, to read its size after stores and evictions. Weak, since the
    /// store owns this observer; empty until the store is open.
    store: Weak<OnceLock<Store>>,
}

impl CacheObserver {
    fn update_size(&self) {
        if let Some(store) = self.store.upgrade() {
            if let Some(store) = store.get() {
                self.metrics.cache().set_size_bytes(store.size());
            }
        }
    }
}

impl StoreObserver for CacheObserver {
    fn hit(&self, bytes: u64) {
        self.metrics.cache().hit();
        self.metrics.cache().served(CacheSource::Cache, bytes);
    }
    fn miss(&self) {
        self.metrics.cache().miss();
    }
    fn evicted(&self, _bytes: u64) {
        self.metrics.cache().evicted(1);
        self.update_size();
    }
    fn write_failed(&self) {
        self.metrics.cache().write_failed();
    }
    fn damaged(&self) {
        self.metrics.cache().damaged();
    }
    fn stored(&self, bytes: u64) {
        self.metrics.cache().served(CacheSource::Upstream, bytes);
        self.update_size();
    }
    fn shared_hit(&self, bytes: u64) {
        self.metrics.shared().hit();
        self.metrics.cache().served(CacheSource::Shared, bytes);
        self.update_size();
    }
    fn shared_miss(&self) {
        self.metrics.shared().miss();
    }
    fn shared_error(&self, op: SharedOp) {
        self.metrics.shared().error(op);
    }
    fn shared_mismatch(&self) {
        self.metrics.shared().mismatch();
    }
    fn shared_uploaded(&self, bytes: u64) {
        self.metrics.shared().uploaded(bytes);
    }
    fn shared_upload_failed(&self) {
        self.metrics.shared().upload_failed();
    }
}

/// The store the proxy serves from, open and locked (see [`open_cache`]).
pub struct OpenCache {
    /// The store; clones share it.
    pub store: Store,
    /// Keeps other writers out of the directory until dropped.
    _lock: StoreLock,
    /// What the store's observer reads the size from (weakly, as the store owns it).
    _slot: Arc<OnceLock<Store>>,
}

/// Opens the cache the configuration names, as the proxy serves it: locked against other
/// writers (a second `serve`, `trustgate cache warm`), on the shared tier when `storage` is
/// shared, reporting to `metrics`. `trustgate cache warm` fills this same store.
pub async fn open_cache(
    config: &Config,
    metrics: &Arc<Metrics>,
    shared: Option<&SharedStore>,
) -> anyhow::Result<OpenCache> {
    let dir = &config.cache.dir;
    // Before the scan: it clears `tmp/`, which another writer may be using.
    let lock = StoreLock::acquire(dir)?;
    let slot = Arc::new(OnceLock::new());
    let store = Store::open_tiered(
        dir.clone(),
        config.cache.max_size,
        config.limits.max_blob_size,
        Arc::new(CacheObserver {
            metrics: (**metrics).clone(),
            store: Arc::downgrade(&slot),
        }),
        shared.map(|s| s.tier(config)),
    )
    .await
    .with_context(|| format!("opening the cache at {}", dir.display()))?;
    let _ = slot.set(store.clone());
    metrics.cache().set_size_bytes(store.size());
    Ok(OpenCache {
        store,
        _lock: lock,
        _slot: slot,
    })
}

/// The proxy's limits from the configuration.
pub fn proxy_limits(config: &Config) -> Limits {
    Limits {
        max_manifest_size: config.limits.max_manifest_size,
        ..Limits::default()
    }
}

/// Creates, syncs and removes a file under `<cache dir>/tmp`: the cache is writable.
async fn probe_writable(cache_dir: &Path) -> Result<(), String> {
    let path = cache_dir
        .join("tmp")
        .join(format!(".readyz-probe.{}", std::process::id()));
    let probe = tokio::task::spawn_blocking({
        let path = path.clone();
        move || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&path)?;
            let written = file.write_all(b"ok").and_then(|()| file.sync_data());
            let removed = std::fs::remove_file(&path);
            written.and(removed)
        }
    });
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("cache directory is not writable: {e}")),
        Ok(Err(e)) => Err(format!("cache directory probe failed: {e}")),
        Err(_) => Err(format!(
            "cache directory probe took longer than {}s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// Sets readiness from one writability probe, logging changes.
async fn check_ready(cache_dir: &Path, readiness: &Readiness) {
    let was = readiness.check();
    match probe_writable(cache_dir).await {
        Ok(()) => {
            if was.is_err() {
                tracing::info!("ready");
            }
            readiness.set_ready();
        }
        Err(reason) => {
            if was.is_ok() {
                tracing::error!(cache = %cache_dir.display(), %reason, "not ready");
            }
            readiness.set_not_ready(reason);
        }
    }
}

/// Periodic upkeep: readiness (cache writable; never upstream health), the cache size gauge
/// (also kept current by the store observer), and the trust-expiry countdown.
async fn upkeep(
    cache_dir: PathBuf,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
) {
    let mut tick = tokio::time::interval(OPS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        check_ready(&cache_dir, &readiness).await;
        metrics.cache().set_size_bytes(proxy.store().size());
        proxy.runtime().publish_trust_expiry();
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter = std::env::var("TRUSTGATE_LOG").unwrap_or_else(|_| "info".to_owned());
    server::init_logging(args.log_json, &filter)?;
    let config = Config::load(&args.config)?;
    let admin_token = config.admin_token()?;
    let auth = config.auth()?.map(|a| SharedAuth::new(Arc::new(a)));
    if auth.is_none() && !config.server.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.server.listen,
            "no auth section: anyone who can reach the registry listener can pull what the upstream credentials reach");
    }
    let metrics = Arc::new(Metrics::new());
    // Built once: a reload keeps the store (see `config/storage.rs`).
    let shared = SharedStore::from_config(&config)?;
    let runtime = Runtime::build_with_storage(&config, &metrics, shared.as_ref())?;
    let cache = open_cache(&config, &metrics, shared.as_ref()).await?;
    let readiness = Readiness::new();
    let limits = config.limits.clone();
    // Decision records: sink tasks started before the first request (`records:`).
    let records = match &config.records {
        Some(records) => Some(crate::records::Records::start(
            records,
            metrics.records().clone(),
        )?),
        None => None,
    };
    let mut proxy = Proxy::new(
        runtime,
        cache.store.clone(),
        metrics.clone(),
        proxy_limits(&config),
    );
    if let Some((records, _)) = &records {
        proxy = proxy.with_records(records.clone());
    }
    let proxy = Arc::new(proxy);

    let tls = tls_acceptor(&config)?.map(SharedTls::new);
    let listener = server::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let admin = server::bind(config.server.admin_listen)
        .await
        .with_context(|| format!("listening on {}", config.server.admin_listen))?;
    let loopback = config.server.admin_listen.ip().is_loopback();
    if admin_token.is_none() && !loopback {
        tracing::warn!(admin = %config.server.admin_listen,
            "the decision API (/v1/verdict) is off: admin_listen is not loopback and server.admin_token_file is not set");
    }
    let decisions = DecisionApi::new(Arc::new(Verdicts(proxy.clone())), admin_token, loopback);
    tracing::info!(listen = %listener.local_addr()?, admin = %admin.local_addr()?,
        tls = tls.is_some(), config = %args.config.display(), "trustgate serving");

    let handler = tower::service_fn({
        let proxy = proxy.clone();
        move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req).await) }
        }
    });
    let stack = StackConfig {
        request_timeout: limits.request_timeout,
        max_concurrent_requests: limits.max_concurrent_requests,
    };
    let service = server::stack_with_auth(handler, &stack, &metrics, auth.clone());
    let options = ServeOptions {
        header_read_timeout: limits.header_timeout,
        max_connections: limits.max_connections,
        max_connections_per_client: limits.max_connections_per_client,
        metrics: Some(metrics.http().clone()),
        ..ServeOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let reload = Reload {
        path: args.config.clone(),
        started: config.clone(),
        shared,
        proxy: proxy.clone(),
        metrics: metrics.clone(),
        auth,
        tls: tls.clone(),
    };
    tokio::spawn(signals(reload, stop_tx));
    // Ready once the configuration is loaded (above) and the cache is writable.
    check_ready(&config.cache.dir, &readiness).await;
    let upkeep = tokio::spawn(upkeep(
        config.cache.dir.clone(),
        proxy.clone(),
        metrics.clone(),
        readiness.clone(),
    ));
    tokio::join!(
        server::serve_reloadable(&options, listener, tls, service, stopped(stop_rx.clone())),
        server::serve(
            admin,
            None,
            AdminService::new((*metrics).clone(), readiness).with_decisions(decisions),
            stopped(stop_rx)
        ),
    );
    upkeep.abort();
    // What was decided before the stop is written (the file flushed) or given up on.
    if let Some((records, _)) = &records {
        records.drain(std::time::Duration::from_secs(5)).await;
    }
    drop(cache);
    tracing::info!("trustgate stopped");
    Ok(())
}

/// The registry listener's TLS from `server.tls`, verifying client certificates as
/// `auth.client_certificates` says; `None` without `server.tls`.
fn tls_acceptor(config: &Config) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    let Some(tls) = &config.server.tls else {
        return Ok(None);
    };
    let clients = config
        .auth
        .as_ref()
        .and_then(|a| a.client_certificates.as_ref());
    let acceptor = server::tls_acceptor_with_clients(&tls.cert_file, &tls.key_file, clients)
        .context("server.tls")?;
    Ok(Some(acceptor))
}

/// What a SIGHUP reloads, and what it compares the new configuration with.
struct Reload {
    /// The configuration file.
    path: PathBuf,
    /// The configuration the process started with: what needs a restart is compared
    /// against it, so a warning repeats on every reload until the restart.
    started: Config,
    /// The shared store, built once (see `config/storage.rs`).
    shared: Option<SharedStore>,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    /// The settings the auth layer serves from; `None`: no auth layer in the stack.
    auth: Option<SharedAuth>,
    /// The registry listener's TLS; `None`: it speaks plain HTTP.
    tls: Option<SharedTls>,
}

/// Everything a reload swaps in, built before anything is swapped.
struct Reloaded {
    runtime: Runtime,
    auth: Option<crate::auth::Auth>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

// === impl Reload ===

impl Reload {
    /// Loads the configuration and builds everything that reloads; swaps it all in only
    /// when everything loaded.
    fn reload(&self) -> anyhow::Result<()> {
        let config = Config::load(&self.path)?;
        self.warn_restart_only(&config);
        let runtime = Runtime::build_with_storage(&config, &self.metrics, self.shared.as_ref())?;
        // Without an auth layer in the stack there is nothing to swap into (see
        // `warn_restart_only`), and the files need not be read.
        let auth = match &self.auth {
            Some(_) => {
                // The realm's scheme and the `anonymous` default follow the listener as it
                // runs, not a change that applies at the next start.
                let mut running = config.clone();
                running.server.listen = self.started.server.listen;
                running.server.tls = self.started.server.tls.clone();
                running.auth()?
            }
            None => None,
        };
        // Certificate, key, client CA and CRLs, re-read. A listener started without TLS
        // stays without (see `warn_restart_only`).
        let tls = match &self.tls {
            Some(_) => tls_acceptor(&config)?,
            None => None,
        };
        self.swap(Reloaded { runtime, auth, tls });
        Ok(())
    }

    fn swap(&self, reloaded: Reloaded) {
        self.proxy.reload(reloaded.runtime);
        self.proxy.runtime().publish_trust_expiry();
        if let (Some(shared), Some(auth)) = (&self.auth, reloaded.auth) {
            // Rate-limit buckets live in `Auth`: they start full again.
            shared.replace(Arc::new(auth));
        }
        if let (Some(shared), Some(tls)) = (&self.tls, reloaded.tls) {
            shared.replace(tls);
        }
    }

    /// Warns about changes that apply only at the next start.
    fn warn_restart_only(&self, config: &Config) {
        let path = self.path.display();
        let started = &self.started;
        if config.limits != started.limits {
            tracing::warn!(config = %path,
                "limits changed: upstream and trust limits apply now, the others at the next start");
        }
        if config.storage != started.storage {
            tracing::warn!(config = %path, "storage changed: it applies at the next start");
        }
        if config.server.listen != started.server.listen
            || config.server.admin_listen != started.server.admin_listen
        {
            tracing::warn!(config = %path,
                "server.listen or server.admin_listen changed: it applies at the next start");
        }
        match (&started.server.tls, &config.server.tls) {
            (None, Some(_)) => tracing::warn!(config = %path,
                "server.tls added: it applies at the next start; until then the listener speaks plain HTTP"),
            (Some(_), None) => tracing::warn!(config = %path,
                "server.tls removed: it applies at the next start; until then the previous TLS settings stay"),
            _ => {}
        }
        match (&started.auth, &config.auth) {
            (None, Some(_)) => tracing::warn!(config = %path,
                "auth added: it applies at the next start; until then every client is served as before"),
            (Some(_), None) => tracing::warn!(config = %path,
                "auth removed: it applies at the next start; until then the previous auth settings stay"),
            _ => {}
        }
    }
}

/// SIGHUP reloads; SIGINT or SIGTERM starts a graceful shutdown.
async fn signals(reload: Reload, stop: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut term)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let path = reload.path.display().to_string();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                // Config errors name the key (`file:line: auth.htpasswd_file`) and the file,
                // never its content.
                let result = reload.reload();
                reload.metrics.config().reloaded(result.is_ok());
                match result {
                    Ok(()) => tracing::info!(config = %path, "configuration reloaded"),
                    Err(e) => tracing::error!(config = %path, error = %format!("{e:#}"),
                        "reload failed; keeping the previous configuration"),
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: draining connections");
    let _ = stop.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_follows_cache_writability() {
        let dir = tempfile::tempdir().unwrap();
        let readiness = Readiness::new();
        // `tmp` missing (the store creates it): not writable.
        check_ready(dir.path(), &readiness).await;
        let reason = readiness.check().unwrap_err();
        assert!(reason.contains("not writable"), "{reason}");

        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        check_ready(dir.path(), &readiness).await;
        assert_eq!(readiness.check(), Ok(()));
        // The probe leaves nothing behind (the store would remove it, but still).
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        // A file where the directory should be: even root cannot write there.
        std::fs::remove_dir(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("tmp"), b"").unwrap();
        check_ready(dir.path(), &readiness).await;
        assert!(readiness.check().is_err());
    }
}
