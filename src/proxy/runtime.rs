//! What a configuration turns into at run time: the compiled policy with each verifying rule's
//! root pins resolved, the upstream clients, and one cached verifier per notary server.
//! Built at start-up and again on every reload; a failed build keeps the old runtime.

use std::{
    any::Any,
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use http::StatusCode;

use crate::{
    config::{Config, ConfigError},
    metrics::{Metrics, TrustExpiry, UpstreamErrorKind},
    policy::{
        CosignRequirements, NotationRequirements, Policy, RootKeyPin, Rule, TrustSource,
        VerifierName,
    },
    storage::SharedStore,
    trust::{
        all::AllOf,
        any::AnyOf,
        cached::CachedNotary,
        cosign::{CosignKey, CosignVerifier, KeyError, Keyless, RootHandle, RootsError},
        notary::{
            pin_ids_from_pem, FetchError, HttpSource, HttpTimeouts, Limits, NotaryClient, Source,
            StateKey, StateStore,
        },
        notation::{self, NotationVerifier},
        root::TrustedRoot,
        tuf::{HttpFetch, TufClient},
        TrustQuery, Verifier,
    },
    upstream::{Upstream, UpstreamConfig, UpstreamError, UpstreamObserver},
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
    #[error("rule {rule:?}: cosign key {path}: {source}")]
    CosignKey {
        rule: String,
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error("rule {rule:?}: keyless trust root: {reason}")]
    TrustRoot { rule: String, reason: String },
    #[error("rule {rule:?}: keyless fulcio_roots {path}: {reason}")]
    FulcioRoots {
        rule: String,
        path: PathBuf,
        reason: RootsError,
    },
    #[error("rule {rule:?}: notation: {reason}")]
    Notation { rule: String, reason: String },
    #[error("rule {rule:?}: threshold {threshold} but only {distinct} distinct cosign signers")]
    CosignThreshold {
        rule: String,
        threshold: usize,
        distinct: usize,
    },
}

/// The runtime objects of one configuration.
pub struct Runtime {
    policy: Policy,
    /// What each verifying rule asks of trust, by rule index (configuration order), built
    /// once so a request only clones `Arc`s.
    queries: HashMap<usize, (Arc<dyn Verifier>, TrustQuery)>,
    upstreams: Vec<Upstream>,
    /// `upstreams[].tag_ttl`, by upstream index.
    tag_ttls: Vec<Duration>,
    by_registry: HashMap<String, usize>,
    default_upstream: Option<usize>,
    /// The soonest trust-data expiry per role kind over this runtime's verifiers.
    trust_expiry: Arc<TrustExpiry>,
}

/// Upstream client events into `trustgate_upstream_*` and `trustgate_inflight_fetches`.
struct UpstreamMetrics(Arc<Metrics>);

/// Time to open a connection to an upstream registry or a notary server; the other limits
/// come from the configuration's `limits`.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);
const NOTARY_CONNECT: Duration = Duration::from_secs(5);

// === impl Runtime ===

impl Runtime {
    /// Builds everything a configuration names. Trust state (first-use roots, versions) lives
    /// under `<cache.dir>/trust/<notary server name>/`.
    pub fn build(config: &Config, metrics: &Arc<Metrics>) -> Result<Self, BuildError> {
        Self::build_with_storage(config, metrics, None)
    }

    /// [`build`](Self::build), keeping trust state in `shared` (under
    /// `<prefix>/trust/<notary server name>`) when the configuration's storage is shared, so
    /// that replicas agree on first-use roots and rollback versions.
    pub fn build_with_storage(
        config: &Config,
        metrics: &Arc<Metrics>,
        shared: Option<&SharedStore>,
    ) -> Result<Self, BuildError> {
        let built = config.build()?;
        let limits = &config.limits;
        let mut upstreams = Vec::new();
        let mut tag_ttls = Vec::new();
        let mut by_registry = HashMap::new();
        let mut default_upstream = None;
        let observer: Arc<dyn UpstreamObserver> = Arc::new(UpstreamMetrics(metrics.clone()));
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
                request_timeout: limits.upstream_timeout,
                read_timeout: limits.upstream_read_timeout,
                max_connections: limits.max_upstream_connections,
                observer: Some(observer.clone()),
                token_realms: u.token_realms.clone(),
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
            tag_ttls.push(u.tag_ttl);
        }
        let mut verifiers = HashMap::new();
        let trust_expiry = Arc::new(TrustExpiry::new(metrics.trust().clone()));
        for n in &config.notary_servers {
            let ca_pem = n.ca_file.as_deref().map(read).transpose()?;
            let timeouts = HttpTimeouts {
                connect: NOTARY_CONNECT,
                request: limits.upstream_timeout,
            };
            let source =
                HttpSource::new(n.url.as_str(), ca_pem.as_deref(), timeouts).map_err(|source| {
                    BuildError::Notary {
                        name: n.name.clone(),
                        source,
                    }
                })?;
            let state = match shared {
                Some(s) => {
                    let store = StateStore::object(s.store.clone(), s.trust_prefix(&n.name))
                        .with_local_copy(config.cache.dir.join("trust").join(&n.name))
                        .with_deadline(SharedStore::trust_state_deadline(config));
                    // The configuration requires the key while a rule uses Notary v1.
                    match s
                        .trust_state_key
                        .as_ref()
                        .and_then(|k| StateKey::new(k.expose().as_bytes()))
                    {
                        Some(key) => store.with_key(key, n.name.clone()),
                        None => store,
                    }
                }
                None => StateStore::new(config.cache.dir.join("trust").join(&n.name)),
            };
            let client = NotaryClient::new(
                Source::Http(source),
                trust_limits(limits.max_trust_metadata_size),
                Some(state),
            );
            let refused = metrics.clone();
            let metrics = metrics.clone();
            let expiry = trust_expiry.clone();
            let verifier = CachedNotary::new(n.name.clone(), client, n.ttl)
                .with_observer(Arc::new(
                    move |server: &str, elapsed: Duration, _ok: bool| {
                        metrics.trust().fetch(server, elapsed);
                    },
                ))
                .with_expiry_observer(Arc::new(move |server: &str, soonest| {
                    expiry.update(server, soonest);
                }))
                .with_state_refused_observer(Arc::new(move |server: &str| {
                    refused.trust().state_refused(server)
                }));
            verifiers.insert(n.name.clone(), Arc::new(verifier));
        }
        let mut queries = HashMap::new();
        for rule in built.policy.rules() {
            let Some(trust) = rule.trust() else { continue };
            // Config validation guarantees the notary server exists when one is used.
            let notary = verifiers
                .get(&trust.notary)
                .map(|v| Arc::clone(v) as Arc<dyn Verifier>);
            let cosign: Option<Arc<dyn Verifier>> = match &trust.cosign {
                Some(c) => Some(Arc::new(cosign_verifier(rule, c)?)),
                None => None,
            };
            let notation: Option<Arc<dyn Verifier>> = match &trust.notation {
                Some(n) => Some(Arc::new(notation_verifier(rule, n)?)),
                None => None,
            };
            // In the order the rule lists them.
            let mut each: Vec<(&'static str, Arc<dyn Verifier>)> = Vec::new();
            for name in trust.verifier.names() {
                let verifier = match name {
                    VerifierName::Notary => notary.clone(),
                    VerifierName::Cosign => cosign.clone(),
                    VerifierName::Notation => notation.clone(),
                };
                if let Some(v) = verifier {
                    each.push((name.as_str(), v));
                }
            }
            let verifier: Arc<dyn Verifier> = match each.len() {
                0 => continue,
                1 => each.remove(0).1,
                _ if trust.verifier.any() => Arc::new(AnyOf::new(each)),
                _ => Arc::new(AllOf::new(each.into_iter().map(|(_, v)| v).collect())),
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
                content: None,
            };
            queries.insert(rule.index(), (verifier, query));
        }
        Ok(Runtime {
            policy: built.policy,
            queries,
            upstreams,
            tag_ttls,
            by_registry,
            default_upstream,
            trust_expiry,
        })
    }

    /// Publishes `trustgate_trust_expiry_seconds` anew (seconds left as of now). Refreshes
    /// publish on their own; call this periodically so the countdown moves in between, and
    /// after a reload so the gauge reflects this runtime's (still empty) caches.
    pub fn publish_trust_expiry(&self) {
        self.trust_expiry.publish();
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

    /// `tag_ttl` of the upstream named `registry`; zero (always ask) for an unknown one.
    pub fn tag_ttl(&self, registry: &str) -> Duration {
        self.by_registry
            .get(registry)
            .and_then(|&i| self.tag_ttls.get(i))
            .copied()
            .unwrap_or_default()
    }

    /// The verifier and query a verifying rule asks for, for one repository.
    pub fn trust_for(&self, rule: &Rule, gun: String) -> Option<(Arc<dyn Verifier>, TrustQuery)> {
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

/// notary's own caps for the timestamp and root stay in force unless `max_size` is smaller.
fn trust_limits(max_size: u64) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_metadata_size: max_size,
        max_timestamp_size: defaults.max_timestamp_size.min(max_size),
        max_root_size: defaults.max_root_size.min(max_size),
        ..defaults
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

/// A rule's Notation verifier: notation's trust policy read and validated, the trust stores
/// it names loaded (a store that cannot be loaded fails the statements naming it, as in
/// notation, and is logged now), revocation checking set up.
fn notation_verifier(
    rule: &Rule,
    n: &NotationRequirements,
) -> Result<NotationVerifier, BuildError> {
    let failed = |reason: String| BuildError::Notation {
        rule: rule.pattern().to_string(),
        reason,
    };
    let policy = notation::policy::TrustPolicy::load(&n.trust_policy)
        .map_err(|e| failed(format!("trust policy {}: {e}", n.trust_policy.display())))?;
    let checker = notation::revocation::Checker::new(notation::revocation::Config {
        cache_dir: n.crl_cache.clone(),
        crls: n.crls.clone(),
        fetch: n.revocation_fetch,
        timeout: n.revocation_timeout,
    })
    .map_err(|e| failed(format!("revocation: {e}")))?;
    let trust = notation::verify::Trust::new(policy, &n.trust_store, checker);
    for (store, reason) in trust.store_failures() {
        tracing::warn!(rule = %rule.pattern(), store = %store, trust_store = %n.trust_store.display(),
            reason = %reason, "notation trust store did not load: the statements naming it refuse every signature");
    }
    Ok(NotationVerifier::new(Arc::new(trust)))
}

/// A rule's cosign verifier, with its key files read and parsed. Two files holding the same
/// key count once towards the threshold.
fn cosign_verifier(rule: &Rule, c: &CosignRequirements) -> Result<CosignVerifier, BuildError> {
    let keys = cosign_keys(rule, &c.keys)?;
    let keyless = match &c.keyless {
        Some(k) => match &k.source {
            TrustSource::Pem {
                fulcio_roots,
                rekor_keys,
            } => {
                let rekor = cosign_keys(rule, rekor_keys)?;
                let roots = read(fulcio_roots)?;
                let keyless = Keyless::new(&roots, rekor, &k.identities).map_err(|reason| {
                    BuildError::FulcioRoots {
                        rule: rule.pattern().to_string(),
                        path: fulcio_roots.clone(),
                        reason,
                    }
                })?;
                Some(keyless)
            }
            TrustSource::TrustedRoot(path) => {
                let root =
                    TrustedRoot::from_json(&read(path)?).map_err(|e| BuildError::TrustRoot {
                        rule: rule.pattern().to_string(),
                        reason: format!("{}: {e}", path.display()),
                    })?;
                Some(Keyless::with_root(root, &k.identities))
            }
            TrustSource::Tuf { url, root, cache } => {
                let (client, trusted) =
                    tuf_trusted_root(url, root, cache).map_err(|reason| BuildError::TrustRoot {
                        rule: rule.pattern().to_string(),
                        reason,
                    })?;
                let keyless = Keyless::with_root(trusted, &k.identities);
                keep_current(client, url.clone(), keyless.root_handle());
                Some(keyless)
            }
        },
        None => None,
    };
    let distinct = keys.len() + keyless.as_ref().map_or(0, Keyless::identities);
    if distinct < c.threshold {
        return Err(BuildError::CosignThreshold {
            rule: rule.pattern().to_string(),
            threshold: c.threshold,
            distinct,
        });
    }
    Ok(
        CosignVerifier::new(keys, keyless, c.threshold, c.signature_repository.clone())
            .with_attestations(c.signatures, c.attestations.clone())
            .with_require_tlog(c.require_tlog),
    )
}

/// How long fetching the trusted root through TUF may take at startup.
const TUF_TIMEOUT: Duration = Duration::from_secs(30);

/// The sigstore trusted root from a TUF repository (TUF 1.0 client workflow,
/// [`crate::trust::tuf`]): refreshed now, else, when the repository cannot be reached or
/// fails to verify, the verified cache while its metadata has not expired.
fn tuf_trusted_root(
    url: &str,
    root: &Path,
    cache: &Path,
) -> Result<(TufClient, TrustedRoot), String> {
    let initial = std::fs::read(root).map_err(|e| format!("tuf root {}: {e}", root.display()))?;
    let client = TufClient::new(url, initial, cache.to_path_buf()).map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::now_utc();
    // The runtime is built before (or outside) the server's reactor: the refresh gets a
    // small one of its own on a separate thread.
    let refreshed = std::thread::scope(|scope| {
        scope
            .spawn(|| tuf_refresh(&client, now))
            .join()
            .unwrap_or_else(|_| Err("the TUF refresh panicked".to_owned()))
    });
    let bytes = match refreshed {
        Ok(bytes) => bytes,
        Err(online) => match client.cached(TUF_TARGET, now) {
            Ok(bytes) => {
                tracing::warn!(%url, error = %online, "TUF refresh failed; using the verified cache");
                bytes
            }
            Err(offline) => {
                return Err(format!(
                    "TUF repository {url}: {online}; and no usable cache in {}: {offline}",
                    cache.display()
                ))
            }
        },
    };
    let trusted =
        TrustedRoot::from_json(&bytes).map_err(|e| format!("{TUF_TARGET} from {url}: {e}"))?;
    Ok((client, trusted))
}

/// The TUF target that is sigstore's trusted root.
const TUF_TARGET: &str = "trusted_root.json";
/// How often a running proxy refreshes a TUF-distributed trusted root. sigstore's
/// timestamp metadata lives about a week; a few refreshes a day notice rotations and
/// expiry in time.
const TUF_REFRESH: Duration = Duration::from_secs(6 * 3600);

/// One TUF refresh of the trusted root, on a small reactor of its own, bounded in time.
fn tuf_refresh(client: &TufClient, now: time::OffsetDateTime) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let fetch = HttpFetch::new(TUF_TIMEOUT).map_err(|e| e.to_string())?;
    rt.block_on(async {
        tokio::time::timeout(TUF_TIMEOUT, client.refresh(&fetch, TUF_TARGET, now))
            .await
            .map_err(|_| format!("no answer within {}s", TUF_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())
    })
}

/// Keeps a TUF-distributed trusted root current for as long as the process runs: every
/// [`TUF_REFRESH`], the TUF client workflow again; when the repository cannot be reached,
/// the verified cache while its metadata has not expired (TUF 5.4.3.2, the freeze check);
/// past that, the rule trusts nothing (every keyless or logged signature under it is
/// refused, saying so in the log) until the repository answers again. The thread ends
/// once the rule is dropped (a configuration reload).
fn keep_current(client: TufClient, url: String, handle: RootHandle) {
    let weak = handle.downgrade();
    drop(handle);
    let spawned = std::thread::Builder::new()
        .name("tuf-refresh".to_owned())
        .spawn(move || loop {
            std::thread::sleep(TUF_REFRESH);
            // The rule is gone (a reload replaced it): so is the need for its root.
            let Some(handle) = weak.upgrade() else {
                return;
            };
            let now = time::OffsetDateTime::now_utc();
            let bytes = tuf_refresh(&client, now).or_else(|online| {
                tracing::warn!(%url, error = %online, "TUF refresh failed; checking the verified cache");
                client.cached(TUF_TARGET, now).map_err(|e| e.to_string())
            });
            match bytes.and_then(|b| TrustedRoot::from_json(&b).map_err(|e| e.to_string())) {
                Ok(root) => handle.set(root),
                Err(e) => {
                    tracing::error!(%url, error = %e, "no current sigstore trusted root: the rule trusts nothing until the TUF repository answers");
                    handle.set(TrustedRoot::empty());
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the TUF refresh thread");
    }
}

/// PEM public key files, read and parsed, duplicates dropped.
fn cosign_keys(rule: &Rule, paths: &[PathBuf]) -> Result<Vec<CosignKey>, BuildError> {
    let mut keys: Vec<CosignKey> = Vec::new();
    for path in paths {
        let key = CosignKey::from_pem(&read(path)?).map_err(|source| BuildError::CosignKey {
            rule: rule.pattern().to_string(),
            path: path.clone(),
            source,
        })?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

// === impl UpstreamMetrics ===

impl UpstreamObserver for UpstreamMetrics {
    fn response(&self, registry: &str, status: StatusCode, elapsed: Duration) {
        self.0.upstream().response(registry, status, elapsed);
    }

    fn error(&self, registry: &str, kind: UpstreamErrorKind) {
        self.0.upstream().error(registry, kind);
    }

    fn ratelimit_remaining(&self, registry: &str, remaining: u64) {
        self.0
            .upstream()
            .set_ratelimit_remaining(registry, remaining);
    }

    fn fetch_started(&self, _registry: &str) -> Option<Box<dyn Any + Send + Sync>> {
        Some(Box::new(self.0.cache().inflight_fetch()))
    }
}
