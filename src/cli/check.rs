//! `trustgate check IMAGE`: what the proxy would decide for an image reference, and why.
//! `trustgate config validate`: whether a configuration loads and builds.

use std::{path::PathBuf, sync::Arc};

use clap::{Args, Subcommand};

use anyhow::Context as _;

use crate::{
    cache::Store,
    config::Config,
    metrics::Metrics,
    oci::parse_image,
    proxy::{Limits, Proxy, Runtime, VerdictKind},
};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file.
    #[arg(long, default_value = "config/trustgate.yaml")]
    pub config: PathBuf,
    /// Image reference: [registry/]repository[:tag|@digest] (default tag: latest).
    pub image: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and build a configuration (reads password, CA and pinned key files).
    Validate {
        #[arg(long, default_value = "config/trustgate.yaml")]
        config: PathBuf,
    },
}

/// Runs `check`; `Ok(false)` when the proxy would refuse. The verdict is the decision API's
/// ([`Proxy::verdict`]): the manifest handler's own path, with a scratch content cache.
pub async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let config = Config::load(&args.config)?;
    let metrics = Arc::new(Metrics::new());
    let runtime = Runtime::build(&config, &metrics)?;
    let image = parse_image(&args.image)?;
    let registry = match &image.registry {
        Some(r) => r.clone(),
        None => runtime
            .upstream(None)
            .map(|u| u.registry().to_owned())
            .ok_or_else(|| anyhow::anyhow!("no default upstream is configured"))?,
    };
    let shown = match (&image.digest, &image.tag) {
        (Some(d), _) => format!("{registry}/{}@{d}", image.repo),
        (None, Some(t)) => format!("{registry}/{}:{t}", image.repo),
        (None, None) => format!("{registry}/{}:latest", image.repo),
    };
    // Content read while deciding (manifests of the closure) goes to a scratch cache, so
    // that a check never writes into a running proxy's cache.
    let scratch = std::env::temp_dir().join(format!("trustgate-check-{}", std::process::id()));
    let store = Store::open(scratch.clone(), 1 << 30)
        .await
        .with_context(|| format!("a scratch cache at {}", scratch.display()))?;
    let proxy = Arc::new(Proxy::new(
        runtime,
        store,
        metrics,
        Limits {
            max_manifest_size: config.limits.max_manifest_size,
            ..Limits::default()
        },
    ));
    let verdict = proxy.verdict(&shown).await;
    drop(proxy);
    let _ = std::fs::remove_dir_all(&scratch);
    let verdict = verdict?;
    println!("image:    {shown}");
    println!("rule:     {} ({})", verdict.rule, verdict.action);
    if let Some(verifier) = &verdict.verifier {
        println!("verifier: {verifier}");
    }
    match verdict.verdict {
        VerdictKind::Allow => {
            let digest = verdict
                .digest
                .as_deref()
                .map(|d| format!(" as {d}"))
                .unwrap_or_default();
            let by = verdict
                .signed_by
                .as_deref()
                .map(|r| format!(", signed by {r}"))
                .unwrap_or_default();
            println!("decision: allowed{digest}{by}: {}", verdict.reason);
            Ok(true)
        }
        VerdictKind::Refuse => {
            println!("decision: refused: {}", verdict.reason);
            Ok(false)
        }
    }
}

pub fn validate(config: PathBuf) -> anyhow::Result<()> {
    let loaded = Config::load(&config)?;
    Runtime::build(&loaded, &Arc::new(Metrics::new()))?;
    // Reads the htpasswd, token key and static token files `auth` names.
    loaded.auth()?;
    // Reads the S3 key files and builds the client; does not contact the bucket.
    crate::storage::SharedStore::from_config(&loaded)?;
    println!("{}: ok", config.display());
    Ok(())
}
