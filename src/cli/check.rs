//! `trustgate check IMAGE`: what the proxy would decide for an image reference, and why.
//! `trustgate config validate`: whether a configuration loads and builds.

use std::{path::PathBuf, sync::Arc};

use clap::{Args, Subcommand};

use crate::{config::Config, metrics::Metrics, oci::parse_image, policy::Action, proxy::Runtime};

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

/// Runs `check`; `Ok(false)` when the proxy would refuse.
pub async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let config = Config::load(&args.config)?;
    let runtime = Arc::new(Runtime::build(&config, &Arc::new(Metrics::new()))?);
    let image = parse_image(&args.image)?;
    let upstream =
        runtime
            .upstream(image.registry.as_deref())
            .ok_or_else(|| match &image.registry {
                Some(r) => anyhow::anyhow!("registry {r} is not configured"),
                None => anyhow::anyhow!("no default upstream is configured"),
            })?;
    let registry = upstream.registry();
    let repo = if registry == "docker.io" && !image.repo.contains('/') {
        format!("library/{}", image.repo)
    } else {
        image.repo.clone()
    };
    let gun = format!("{registry}/{repo}");
    let decision = runtime.policy().decide(registry, &repo);
    let rule = decision.pattern().to_owned();
    let action = decision.action();
    let shown = match (&image.digest, &image.tag) {
        (Some(d), _) => format!("{gun}@{d}"),
        (None, Some(t)) => format!("{gun}:{t}"),
        (None, None) => format!("{gun}:latest"),
    };
    println!("image:    {shown}");
    println!("rule:     {rule} ({action})");
    let verdict = match (action, decision.rule()) {
        (Action::Deny, _) => Err("denied by policy".to_owned()),
        (Action::Allow, _) => Ok("allowed without verification".to_owned()),
        (Action::Verify | Action::Audit, Some(rule)) => {
            let (verifier, query) = runtime
                .trust_for(rule, gun.clone())
                .ok_or_else(|| anyhow::anyhow!("rule names an unknown notary server"))?;
            let outcome = match &image.digest {
                Some(d) => verifier.signed_set(&query).await.and_then(|set| {
                    if set.contains_digest(d) {
                        Ok(format!("{d} is signed"))
                    } else {
                        Err(crate::trust::Refusal::new(
                            crate::trust::RefusalKind::Unsigned,
                            format!("{d} is not a signed manifest of {gun} (index children and blobs are checked by the proxy against signed content)"),
                        ))
                    }
                }),
                None => {
                    let tag = image.tag.as_deref().unwrap_or("latest");
                    verifier
                        .resolve_tag(&query, tag)
                        .await
                        .map(|s| format!("signed by {} as {} ({} bytes)", s.role, s.digest, s.size))
                }
            };
            match (action, outcome) {
                (Action::Audit, Ok(m)) => Ok(format!("allowed (audit); verify would allow: {m}")),
                (Action::Audit, Err(r)) => Ok(format!("allowed (audit); verify would refuse: {r}")),
                (_, Ok(m)) => Ok(format!("allowed: {m}")),
                (_, Err(r)) => Err(r.to_string()),
            }
        }
        (_, None) => Err("internal: verifying decision without a rule".to_owned()),
    };
    match verdict {
        Ok(m) => {
            println!("decision: {m}");
            Ok(true)
        }
        Err(m) => {
            println!("decision: refused: {m}");
            Ok(false)
        }
    }
}

pub fn validate(config: PathBuf) -> anyhow::Result<()> {
    let loaded = Config::load(&config)?;
    Runtime::build(&loaded, &Arc::new(Metrics::new()))?;
    // Reads the S3 key files and builds the client; does not contact the bucket.
    crate::storage::SharedStore::from_config(&loaded)?;
    println!("{}: ok", config.display());
    Ok(())
}
