//! `trustgate serve`: run the proxy and the admin listener until SIGINT/SIGTERM; SIGHUP
//! reloads the configuration (a bad new file keeps the old one).

use std::{convert::Infallible, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use clap::Args;

use crate::{
    cache::{Store, StoreObserver},
    config::Config,
    metrics::{CacheSource, Metrics},
    proxy::{Limits, Proxy, Runtime},
    server::{self, AdminService, Readiness, StackConfig},
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

/// Store events into cache metrics.
struct CacheObserver(Metrics);

impl StoreObserver for CacheObserver {
    fn hit(&self, bytes: u64) {
        self.0.cache().hit();
        self.0.cache().served(CacheSource::Cache, bytes);
    }
    fn miss(&self) {
        self.0.cache().miss();
    }
    fn evicted(&self, _bytes: u64) {
        self.0.cache().evicted(1);
    }
    fn write_failed(&self) {
        self.0.cache().write_failed();
    }
    fn stored(&self, bytes: u64) {
        self.0.cache().served(CacheSource::Upstream, bytes);
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter = std::env::var("TRUSTGATE_LOG").unwrap_or_else(|_| "info".to_owned());
    server::init_logging(args.log_json, &filter)?;
    let config = Config::load(&args.config)?;
    let metrics = Arc::new(Metrics::new());
    let runtime = Runtime::build(&config, &metrics)?;
    let store = Store::open_with_observer(
        config.cache.dir.clone(),
        config.cache.max_size,
        Arc::new(CacheObserver((*metrics).clone())),
    )
    .await
    .with_context(|| format!("opening the cache at {}", config.cache.dir.display()))?;
    metrics.cache().set_size_bytes(store.size());
    let readiness = Readiness::new();
    let proxy = Arc::new(Proxy::new(
        runtime,
        store,
        metrics.clone(),
        Limits::default(),
    ));

    let tls = match &config.server.tls {
        Some(t) => Some(server::tls_acceptor(&t.cert_file, &t.key_file)?),
        None => None,
    };
    let listener = server::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let admin = server::bind(config.server.admin_listen)
        .await
        .with_context(|| format!("listening on {}", config.server.admin_listen))?;
    tracing::info!(listen = %listener.local_addr()?, admin = %admin.local_addr()?,
        tls = tls.is_some(), config = %args.config.display(), "trustgate serving");

    let handler = tower::service_fn({
        let proxy = proxy.clone();
        move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req).await) }
        }
    });
    let service = server::stack(handler, &StackConfig::default(), &metrics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn(signals(
        args.config.clone(),
        proxy.clone(),
        metrics.clone(),
        stop_tx,
    ));
    readiness.set_ready();
    tokio::join!(
        server::serve(listener, tls, service, stopped(stop_rx.clone())),
        server::serve(
            admin,
            None,
            AdminService::new((*metrics).clone(), readiness),
            stopped(stop_rx)
        ),
    );
    tracing::info!("trustgate stopped");
    Ok(())
}

/// SIGHUP reloads; SIGINT or SIGTERM starts a graceful shutdown.
async fn signals(
    config: PathBuf,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Sender<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut term)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match Config::load(&config).map_err(anyhow::Error::from)
                    .and_then(|c| Runtime::build(&c, &metrics).map_err(anyhow::Error::from)) {
                    Ok(runtime) => {
                        proxy.reload(runtime);
                        tracing::info!(config = %config.display(), "configuration reloaded");
                    }
                    Err(e) => tracing::error!(config = %config.display(), error = %format!("{e:#}"),
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
