//! What a configuration turns into at run time: the compiled policy with each verifying rule's
//! root pins resolved, the upstream clients, and one cached verifier per notary server.
//! Built at start-up and again on every reload; a failed build keeps the old runtime.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crate::{
    config::{Config, ConfigError},
    metrics::Metrics,
    policy::{Policy, RootKeyPin, Rule},
    trust::{
        cached::CachedNotary,
        notary::{
            pin_ids_from_pem, FetchError, HttpSource, HttpTimeouts, Limits, NotaryClient, Source,
            StateStore,
        },
        TrustQuery,
    },
    upstream::{Upstream, UpstreamConfig, UpstreamError},
};

/// Why a configuration could not be turned into a runtime.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("upstream {registry}: {source}")]
    Upstream {
        registry: String,
        #[source]
        source: UpstreamError,
    },
    #[error("notary server {name}: {source}")]
    Notary {
        name: String,
        #[source]
        source: FetchError,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rule {rule:?}: root key {path}: {detail}")]
    Pin {
        rule: String,
        path: PathBuf,
        detail: String,
    },
}

/// The runtime objects of one configuration.
pub struct Runtime {
    policy: Policy,
    /// What each verifying rule asks of trust, by rule index (configuration order), built
    /// once so a request only clones `Arc`s.
    queries: HashMap<usize, (Arc<CachedNotary>, TrustQuery)>,
    upstreams: Vec<Upstream>,
    by_registry: HashMap<String, usize>,
    default_upstream: Option<usize>,
}

/// Timeouts for upstream registries.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);
const UPSTREAM_REQUEST: Duration = Duration::from_secs(60);
const UPSTREAM_READ: Duration = Duration::from_secs(60);

// === impl Runtime ===

impl Runtime {
    /// Builds everything a configuration names. Trust state (first-use roots, versions) lives
    /// under `<cache.dir>/trust/<notary server name>/`.
    pub fn build(config: &Config, metrics: &Arc<Metrics>) -> Result<Self, BuildError> {
        let built = config.build()?;
        let mut upstreams = Vec::new();
        let mut by_registry = HashMap::new();
        let mut default_upstream = None;
        for (i, u) in built.upstreams.iter().enumerate() {
            let ca_pem = u.ca_file.as_deref().map(read).transpose()?;
            let client = Upstream::new(UpstreamConfig {
                registry: u.registry.clone(),
                url: u.url.as_str().to_owned(),
                username: u.credentials.as_ref().map(|c| c.username.clone()),
                password: u
                    .credentials
                    .as_ref()
                    .map(|c| c.password.expose().to_owned()),
                ca_pem,
                connect_timeout: UPSTREAM_CONNECT,
                request_timeout: UPSTREAM_REQUEST,
                read_timeout: UPSTREAM_READ,
            })
            .map_err(|source| BuildError::Upstream {
                registry: u.registry.clone(),
                source,
            })?;
            by_registry.insert(u.registry.clone(), i);
            if u.default {
                default_upstream = Some(i);
            }
            upstreams.push(client);
        }
        let mut verifiers = HashMap::new();
        for n in &config.notary_servers {
            let ca_pem = n.ca_file.as_deref().map(read).transpose()?;
            let source =
                HttpSource::new(n.url.as_str(), ca_pem.as_deref(), HttpTimeouts::default())
                    .map_err(|source| BuildError::Notary {
                        name: n.name.clone(),
                        source,
                    })?;
            let state = StateStore::new(config.cache.dir.join("trust").join(&n.name));
            let client = NotaryClient::new(Source::Http(source), Limits::default(), Some(state));
            let metrics = metrics.clone();
            let verifier = CachedNotary::new(n.name.clone(), client, n.ttl).with_observer(
                Arc::new(move |server: &str, elapsed: Duration, _ok: bool| {
                    metrics.trust().fetch(server, elapsed);
                }),
            );
            verifiers.insert(n.name.clone(), Arc::new(verifier));
        }
        let mut queries = HashMap::new();
        for rule in built.policy.rules() {
            let Some(trust) = rule.trust() else { continue };
            // Config validation guarantees the server exists.
            let Some(verifier) = verifiers.get(&trust.notary) else {
                continue;
            };
            let query = TrustQuery {
                gun: String::new(),
                roles: trust
                    .roles
                    .as_slice()
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
                signers: trust
                    .signers
                    .as_slice()
                    .iter()
                    .map(|s| s.role().to_owned())
                    .collect(),
                pins: resolve_pins(rule, &trust.root_keys)?,
                stale_if_error: trust.stale_if_error,
            };
            queries.insert(rule.index(), (verifier.clone(), query));
        }
        Ok(Runtime {
            policy: built.policy,
            queries,
            upstreams,
            by_registry,
            default_upstream,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The upstream a request goes to: the one `?ns=` names, else the default.
    pub fn upstream(&self, ns: Option<&str>) -> Option<&Upstream> {
        let i = match ns {
            Some(ns) => *self.by_registry.get(ns)?,
            None => self.default_upstream?,
        };
        self.upstreams.get(i)
    }

    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    /// The verifier and query a verifying rule asks for, for one repository.
    pub fn trust_for(&self, rule: &Rule, gun: String) -> Option<(Arc<CachedNotary>, TrustQuery)> {
        let (verifier, template) = self.queries.get(&rule.index())?;
        Some((
            verifier.clone(),
            TrustQuery {
                gun,
                ..template.clone()
            },
        ))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Key IDs and PEM files into the IDs a root key may appear under.
fn resolve_pins(rule: &Rule, pins: &[RootKeyPin]) -> Result<Arc<[String]>, BuildError> {
    let mut ids = Vec::new();
    for pin in pins {
        match pin {
            RootKeyPin::KeyId(id) => ids.push(id.clone()),
            RootKeyPin::PemFile(path) => {
                let pem = read(path)?;
                let found = pin_ids_from_pem(&pem).map_err(|e| BuildError::Pin {
                    rule: rule.pattern().to_string(),
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                ids.extend(found);
            }
        }
    }
    Ok(ids.into())
}
