//! `trustgate cache`: fill the proxy's cache ahead of pulls (`warm`), and look after it
//! (`ls`, `rm`, `gc`).
//!
//! `warm` is a client of the proxy, run inside this process: it opens the store `serve`
//! serves from ([`serve::open_cache`]: the same directory, the same shared tier), builds the
//! same [`Runtime`], and sends [`Proxy::handle`] the requests a client pulling the image
//! would send (the manifest by tag or digest, each child of an index, then every config and
//! layer blob). So what is cached went through exactly the checks a pull goes through, and a
//! refusal is the proxy's own answer. What is cached already costs the upstream nothing and
//! is skipped, so a second run (or one after an interruption) only fetches what is missing.
//!
//! Writers of a cache directory hold its [`StoreLock`]: `warm`, `rm` and `gc` refuse to run
//! while a `serve` (or another of them) has it. `ls` only reads, and works any time.

use std::collections::HashSet;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{header, Request, StatusCode};
use http_body_util::BodyExt as _;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;

use super::serve;
use crate::{
    body::Body,
    cache::{self, Store, StoreLock, StoredObject},
    config::{parse_byte_size, parse_duration, Config},
    metrics::Metrics,
    oci::{self, Descriptor, Digest, Manifest, ManifestKind},
    proxy::{Proxy, Runtime},
    storage::SharedStore,
};

/// Exit code of a warm the rate-limit budget stopped.
const EXIT_BUDGET: u8 = 3;
/// Exit code of an interrupted warm (as shells report SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Pull images through the proxy's verification into its cache (exit 0 all warmed, 1 some
    /// failed, 3 stopped by the rate-limit budget). Run it while `serve` is stopped: it takes
    /// the cache's lock.
    Warm(WarmArgs),
    /// List what is cached: digest, kind, size and age, newest first.
    Ls(LsArgs),
    /// Remove objects from the cache by digest.
    Rm(RmArgs),
    /// Remove objects until the cache is under a size (least recently used first) and those
    /// unused for longer than a duration, and temp files a crash left behind.
    Gc(GcArgs),
}

#[derive(Debug, Args)]
pub struct WarmArgs {
    /// Configuration file.
    #[arg(long, default_value = "config/trustgate.yaml")]
    pub config: PathBuf,
    /// Images: [registry/]repository[:tag|@digest] (default tag: latest).
    pub images: Vec<String>,
    /// A file of images, one per line; `#` starts a comment, blank lines are skipped.
    #[arg(long, value_name = "LIST")]
    pub file: Option<PathBuf>,
    /// Only these platforms of an index, as os/arch[/variant]; repeat it or separate with
    /// commas (default: every platform). A single-platform image is warmed as it is.
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Most requests at a time, over all images.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Start no upstream request once the upstream's `ratelimit-remaining` is at or below
    /// this; what runs finishes, and the warm exits 3 naming what it did not warm.
    #[arg(long, value_name = "N")]
    pub min_remaining: Option<u64>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Configuration file (for `cache.dir`).
    #[arg(long, default_value = "config/trustgate.yaml")]
    pub config: PathBuf,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Configuration file (for `cache.dir`).
    #[arg(long, default_value = "config/trustgate.yaml")]
    pub config: PathBuf,
    /// Digests of the objects to remove, as `trustgate cache ls` shows them.
    #[arg(required = true)]
    pub digests: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Configuration file (for `cache.dir` and `cache.max_size`).
    #[arg(long, default_value = "config/trustgate.yaml")]
    pub config: PathBuf,
    /// Remove least recently used objects until the cache holds at most this, e.g. `10GiB`
    /// (default: `cache.max_size`).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub max_size: Option<u64>,
    /// Remove objects unused for longer than this, e.g. `7d`, `12h`, `30m`.
    #[arg(long, value_name = "DURATION", value_parser = age_arg)]
    pub older_than: Option<Duration>,
}

/// Runs a `trustgate cache` verb; the exit code as the verb documents it.
pub async fn main(command: CacheCommand) -> ExitCode {
    let result = match command {
        CacheCommand::Warm(args) => warm(args).await,
        CacheCommand::Ls(args) => ls(args).map(|()| ExitCode::SUCCESS),
        CacheCommand::Rm(args) => rm(args).await.map(|()| ExitCode::SUCCESS),
        CacheCommand::Gc(args) => gc(args).await.map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(1)
    })
}

// === warm ===

/// One image to warm, as the proxy is asked for it.
#[derive(Debug, Clone)]
struct Target {
    /// As the user wrote it, with the registry and tag filled in: `registry/repo:tag`.
    shown: String,
    /// The repository as a client names it to the proxy.
    repo: String,
    /// The registry for `?ns=`; `None`: the default upstream.
    ns: Option<String>,
    /// Tag or digest.
    reference: String,
}

/// An `os/arch[/variant]` to keep of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlatformFilter {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// How one image went.
#[derive(Debug, Default)]
struct Report {
    manifests: usize,
    layers: usize,
    layers_done: usize,
    /// Bytes this run read through the proxy (from the upstream or the shared tier).
    fetched: u64,
    /// Bytes that were in the cache already.
    cached: u64,
}

#[derive(Debug)]
enum Outcome {
    Warmed(Report),
    /// The proxy refused or could not serve part of it: its answer.
    Failed(String),
    /// The budget stopped it before it was complete.
    Stopped(Report),
}

/// Why one request was not made or did not complete.
#[derive(Debug)]
enum Stop {
    Failed(String),
    Budget,
}

/// The rate-limit budget: once an upstream's `ratelimit-remaining` is at or below `min`, no
/// new request starts (for any image).
struct Budget {
    min: Option<u64>,
    /// The registry and count that stopped the warm.
    hit: Mutex<Option<(String, u64)>>,
}

impl Budget {
    /// Whether a request that costs `ns`'s upstream may start now.
    fn allows(&self, runtime: &Runtime, ns: Option<&str>) -> bool {
        let Some(min) = self.min else {
            return true;
        };
        let mut hit = self.hit.lock().unwrap_or_else(|e| e.into_inner());
        if hit.is_some() {
            return false;
        }
        let Some(upstream) = runtime.upstream(ns) else {
            // The proxy will say why; nothing is spent.
            return true;
        };
        match upstream.ratelimit_remaining() {
            Some(remaining) if remaining <= min => {
                *hit = Some((upstream.registry().to_owned(), remaining));
                false
            }
            _ => true,
        }
    }

    fn hit(&self) -> Option<(String, u64)> {
        self.hit.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Progress bars on a terminal; otherwise one plain line per finished image.
struct Progress {
    bars: MultiProgress,
    tty: bool,
}

impl Progress {
    fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        let target = if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            bars: MultiProgress::with_draw_target(target),
            tty,
        }
    }

    fn bar(&self, image: &str, bytes: u64, layers: usize) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:24}] {bytes}/{total_bytes} {msg} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = self
            .bars
            .add(ProgressBar::new(bytes).with_style(style))
            .with_prefix(image.to_owned());
        bar.set_message(format!("layers 0/{layers}"));
        bar
    }

    fn line(&self, text: &str) {
        if self.tty {
            let _ = self.bars.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

/// What every image task shares.
struct Warm {
    proxy: Arc<Proxy>,
    /// What this run stored (fetched, not found cached): what the shared tier should get.
    stored: Mutex<Vec<Digest>>,
    permits: Semaphore,
    budget: Budget,
    platforms: Vec<PlatformFilter>,
    progress: Progress,
}

async fn warm(args: WarmArgs) -> anyhow::Result<ExitCode> {
    if let Ok(filter) = std::env::var("TRUSTGATE_LOG") {
        crate::server::init_logging(false, &filter)?;
    }
    let mut names = args.images.clone();
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the image list {}", file.display()))?;
        names.extend(image_list(&text));
    }
    let mut seen = HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    anyhow::ensure!(
        !names.is_empty(),
        "no images to warm: name some, or pass --file LIST"
    );
    let platforms = args
        .platform
        .iter()
        .map(|p| parse_platform(p))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let config = Config::load(&args.config)?;
    let metrics = Arc::new(Metrics::new());
    let shared = SharedStore::from_config(&config)?;
    // The lock first: nothing of the cache directory is touched while another process has it.
    let cache = serve::open_cache(&config, &metrics, shared.as_ref()).await?;
    let runtime = Runtime::build_with_storage(&config, &metrics, shared.as_ref())?;
    let targets = names
        .iter()
        .map(|name| target(&runtime, name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let proxy = Arc::new(Proxy::new(
        runtime,
        cache.store.clone(),
        metrics.clone(),
        serve::proxy_limits(&config),
    ));
    let failures_before = metrics.shared().upload_failures();
    let warm = Arc::new(Warm {
        proxy,
        stored: Mutex::default(),
        permits: Semaphore::new(usize::from(args.concurrency)),
        budget: Budget {
            min: args.min_remaining,
            hit: Mutex::new(None),
        },
        platforms,
        progress: Progress::new(),
    });
    let run = async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, target) in targets.iter().enumerate() {
            let (warm, target) = (warm.clone(), target.clone());
            tasks.spawn(async move { (i, warm.image(&target).await) });
        }
        let mut outcomes: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((i, outcome)) => outcomes[i] = Some(outcome),
                Err(e) => anyhow::bail!("an image task failed: {e}"),
            }
        }
        Ok(outcomes)
    };
    let outcomes = tokio::select! {
        outcomes = run => outcomes?,
        _ = tokio::signal::ctrl_c() => {
            // Every object is renamed into place only once complete and verified: what was
            // in flight is left under tmp/, which the next open clears.
            eprintln!("interrupted: what completed stays cached; run the same warm again to go on");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
    };
    if let Some(shared) = &shared {
        let stored = std::mem::take(&mut *warm.stored.lock().unwrap_or_else(|e| e.into_inner()));
        let tier = shared.tier(&config);
        let missing = await_uploads(shared, &tier, &metrics, failures_before, stored).await;
        if !missing.is_empty() {
            warm.progress.line(&format!(
                "warning: {} cached here but not in the shared bucket (upload failed or \
                 still running): {}",
                count(missing.len(), "object"),
                missing
                    .iter()
                    .map(Digest::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    drop(cache);
    Ok(summarize(&warm, &targets, &outcomes))
}

/// How long a warm waits, at most, for its uploads to the shared tier.
const UPLOAD_WAIT: Duration = Duration::from_secs(120);
/// How often it looks.
const UPLOAD_POLL: Duration = Duration::from_millis(100);

/// With a shared tier: waits until what this run stored is in the bucket too (the store
/// uploads in the background, and this process is about to exit), until as many uploads
/// failed as objects are missing, or [`UPLOAD_WAIT`]. Returns the objects still missing.
async fn await_uploads(
    shared: &SharedStore,
    tier: &cache::SharedTier,
    metrics: &Metrics,
    failures_before: u64,
    mut pending: Vec<Digest>,
) -> Vec<Digest> {
    use object_store::ObjectStoreExt as _;
    let deadline = tokio::time::Instant::now() + UPLOAD_WAIT;
    loop {
        let mut missing = Vec::new();
        for digest in pending {
            if shared.store.head(&tier.key(&digest)).await.is_err() {
                missing.push(digest);
            }
        }
        pending = missing;
        let failed = metrics
            .shared()
            .upload_failures()
            .saturating_sub(failures_before);
        if pending.len() as u64 <= failed || tokio::time::Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(UPLOAD_POLL).await;
    }
}

/// Prints the summary; the exit code for the outcomes.
fn summarize(warm: &Warm, targets: &[Target], outcomes: &[Option<Outcome>]) -> ExitCode {
    let (mut warmed, mut failed) = (0, 0);
    let mut stopped = Vec::new();
    let mut total = Report::default();
    for (target, outcome) in targets.iter().zip(outcomes) {
        let report = match outcome {
            Some(Outcome::Warmed(report)) => {
                warmed += 1;
                report
            }
            Some(Outcome::Stopped(report)) => {
                stopped.push(target.shown.as_str());
                report
            }
            Some(Outcome::Failed(_)) | None => {
                failed += 1;
                continue;
            }
        };
        total.layers += report.layers_done;
        total.fetched += report.fetched;
        total.cached += report.cached;
    }
    println!(
        "warm: {warmed} warmed, {failed} failed, {} not warmed; {}, {} fetched, {} cached",
        stopped.len(),
        count(total.layers, "layer"),
        HumanBytes(total.fetched),
        HumanBytes(total.cached),
    );
    if let Some((registry, remaining)) = warm.budget.hit() {
        println!(
            "the rate-limit budget stopped the warm: {registry} has ratelimit-remaining {remaining} (--min-remaining {}); not warmed: {}",
            warm.budget.min.unwrap_or_default(),
            stopped.join(", ")
        );
    }
    if failed > 0 {
        ExitCode::from(1)
    } else if !stopped.is_empty() {
        ExitCode::from(EXIT_BUDGET)
    } else {
        ExitCode::SUCCESS
    }
}

/// The images of a `--file` list.
fn image_list(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
}

fn parse_platform(s: &str) -> anyhow::Result<PlatformFilter> {
    let parts: Vec<&str> = s.trim().split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(PlatformFilter {
            os: (*os).to_owned(),
            architecture: (*arch).to_owned(),
            variant: parts
                .get(2)
                .filter(|v| !v.is_empty())
                .map(|v| (*v).to_owned()),
        }),
        _ => anyhow::bail!("invalid platform `{s}`: write os/arch[/variant], e.g. linux/amd64"),
    }
}

impl PlatformFilter {
    fn matches(&self, platform: Option<&oci::manifest::Platform>) -> bool {
        platform.is_some_and(|p| {
            p.os == self.os
                && p.architecture == self.architecture
                && self
                    .variant
                    .as_ref()
                    .is_none_or(|v| p.variant.as_ref() == Some(v))
        })
    }
}

impl std::fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// An image reference as the proxy is asked for it.
fn target(runtime: &Runtime, name: &str) -> anyhow::Result<Target> {
    let image = oci::parse_image(name).with_context(|| format!("image `{name}`"))?;
    let registry = image
        .registry
        .clone()
        .or_else(|| runtime.upstream(None).map(|u| u.registry().to_owned()));
    let reference = image
        .digest
        .clone()
        .or(image.tag.clone())
        .unwrap_or_else(|| "latest".to_owned());
    let separator = if image.digest.is_some() { '@' } else { ':' };
    let shown = match &registry {
        Some(registry) => format!("{registry}/{}{separator}{reference}", image.repo),
        None => format!("{}{separator}{reference}", image.repo),
    };
    Ok(Target {
        shown,
        repo: image.repo,
        ns: image.registry,
        reference,
    })
}

impl Warm {
    /// Warms one image and prints how it went.
    async fn image(&self, target: &Target) -> Outcome {
        let outcome = match self.image_inner(target).await {
            Ok(report) => Outcome::Warmed(report),
            Err((Stop::Failed(reason), _)) => Outcome::Failed(reason),
            Err((Stop::Budget, report)) => Outcome::Stopped(report),
        };
        let line = match &outcome {
            Outcome::Warmed(r) => format!(
                "warmed {}: {}, {}, {} fetched, {} cached",
                target.shown,
                count(r.manifests, "manifest"),
                count(r.layers, "layer"),
                HumanBytes(r.fetched),
                HumanBytes(r.cached)
            ),
            Outcome::Failed(reason) => format!("failed {}: {reason}", target.shown),
            Outcome::Stopped(r) => format!(
                "not warmed {}: stopped by the rate-limit budget ({}/{} layers, {} fetched)",
                target.shown,
                r.layers_done,
                r.layers,
                HumanBytes(r.fetched)
            ),
        };
        self.progress.line(&line);
        outcome
    }

    async fn image_inner(&self, target: &Target) -> Result<Report, (Stop, Report)> {
        let mut report = Report::default();
        let (config, layers) = match self.manifests(target, &mut report).await {
            Ok(blobs) => blobs,
            Err(stop) => return Err((stop, report)),
        };
        report.layers = layers.len();
        let blobs: Vec<(Descriptor, bool)> = config
            .into_iter()
            .map(|d| (d, false))
            .chain(layers.into_iter().map(|d| (d, true)))
            .collect();
        let total = blobs.iter().map(|(d, _)| d.size).sum();
        let bar = self.progress.bar(&target.shown, total, report.layers);
        let mut downloads = futures_util::stream::FuturesUnordered::new();
        let store = self.proxy.store();
        let progress = &bar;
        for (descriptor, layer) in blobs {
            if store.blob_size(&descriptor.digest).await.is_some() {
                report.cached += descriptor.size;
                bar.inc(descriptor.size);
                if layer {
                    report.layers_done += 1;
                }
                continue;
            }
            downloads.push(async move {
                let result = self.blob(target, &descriptor, progress).await;
                (result, layer)
            });
        }
        bar.set_message(format!("layers {}/{}", report.layers_done, report.layers));
        let mut stop = None;
        while let Some((result, layer)) = futures_util::StreamExt::next(&mut downloads).await {
            match result {
                Ok(bytes) => {
                    report.fetched += bytes;
                    if layer {
                        report.layers_done += 1;
                        bar.set_message(format!("layers {}/{}", report.layers_done, report.layers));
                    }
                }
                // The first failure is the one shown; a refusal beats the budget.
                Err(Stop::Failed(reason)) => {
                    if !matches!(stop, Some(Stop::Failed(_))) {
                        stop = Some(Stop::Failed(reason));
                    }
                }
                Err(Stop::Budget) => {
                    stop.get_or_insert(Stop::Budget);
                }
            }
        }
        drop(downloads);
        bar.finish_and_clear();
        match stop {
            None => Ok(report),
            Some(stop) => Err((stop, report)),
        }
    }

    /// Fetches the manifest and, for an index, the children of the wanted platforms; the
    /// config blobs and the layer blobs they reference (each digest once).
    async fn manifests(
        &self,
        target: &Target,
        report: &mut Report,
    ) -> Result<(Vec<Descriptor>, Vec<Descriptor>), Stop> {
        let mut queue = vec![(target.reference.clone(), true)];
        let (mut configs, mut layers) = (Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        while let Some((reference, top)) = queue.pop() {
            let manifest = self.manifest(target, &reference).await?;
            report.manifests += 1;
            match manifest {
                Manifest::Index(index) => {
                    let children: Vec<&Descriptor> = index
                        .manifests()
                        .iter()
                        .filter(|child| {
                            self.platforms.is_empty()
                                || self
                                    .platforms
                                    .iter()
                                    .any(|p| p.matches(child.platform.as_ref()))
                        })
                        .collect();
                    if children.is_empty() && top {
                        let wanted: Vec<String> =
                            self.platforms.iter().map(ToString::to_string).collect();
                        return Err(Stop::Failed(format!(
                            "the index has no manifest for {}",
                            wanted.join(", ")
                        )));
                    }
                    queue.extend(
                        children
                            .into_iter()
                            .map(|child| (child.digest.as_str().to_owned(), false)),
                    );
                }
                Manifest::Image(image) => {
                    if seen.insert(image.config().digest.clone()) {
                        configs.push(image.config().clone());
                    }
                    for layer in image.layers() {
                        if seen.insert(layer.digest.clone()) {
                            layers.push(layer.clone());
                        }
                    }
                }
            }
        }
        Ok((configs, layers))
    }

    fn stored(&self, digest: Digest) {
        self.stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(digest);
    }

    /// `GET /v2/<repo>/manifests/<reference>` through the proxy, parsed.
    async fn manifest(&self, target: &Target, reference: &str) -> Result<Manifest, Stop> {
        // By tag the proxy always asks the upstream; by digest, only when not cached.
        let cached = match Digest::parse(reference) {
            Ok(digest) => self.proxy.store().blob_size(&digest).await.is_some(),
            Err(_) => false,
        };
        let path = format!("/v2/{}/manifests/{reference}", target.repo);
        let (_permit, response) = self.request(target, &path, !cached).await?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_all(response.into_body())
            .await
            .map_err(|e| Stop::Failed(format!("reading the manifest {reference}: {e}")))?;
        if !cached {
            // By tag the proxy stored it (or had it: then it was uploaded when first stored).
            self.stored(Digest::sha256_of(&bytes));
        }
        oci::parse_manifest(&bytes, content_type.as_deref())
            .map_err(|e| Stop::Failed(format!("the manifest {reference}: {e}")))
    }

    /// `GET /v2/<repo>/blobs/<digest>` through the proxy, read to the end; the bytes read.
    async fn blob(
        &self,
        target: &Target,
        descriptor: &Descriptor,
        bar: &ProgressBar,
    ) -> Result<u64, Stop> {
        let path = format!("/v2/{}/blobs/{}", target.repo, descriptor.digest);
        let (_permit, response) = self.request(target, &path, true).await?;
        let mut body = response.into_body();
        let mut read = 0u64;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| Stop::Failed(format!("reading {}: {e}", descriptor.digest)))?;
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
                bar.inc(data.len() as u64);
            }
        }
        // The body ends before the store has synced and renamed the file.
        if !self.proxy.store().settle(&descriptor.digest).await {
            return Err(Stop::Failed(format!(
                "{} was served but not cached (no room in the cache, or a write failed)",
                descriptor.digest
            )));
        }
        self.stored(descriptor.digest.clone());
        Ok(read)
    }

    /// Sends one GET to the proxy once a permit is free and, when it may cost the upstream,
    /// the budget allows it; a non-2xx answer is the proxy's error message.
    async fn request(
        &self,
        target: &Target,
        path: &str,
        upstream: bool,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, http::Response<Body>), Stop> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        if upstream
            && !self
                .budget
                .allows(&self.proxy.runtime(), target.ns.as_deref())
        {
            return Err(Stop::Budget);
        }
        let uri = match &target.ns {
            Some(ns) => format!("{path}?ns={ns}"),
            None => path.to_owned(),
        };
        let request = Request::get(uri)
            .header(header::ACCEPT, oci::manifest::ACCEPT_MANIFESTS)
            .body(())
            .map_err(|e| Stop::Failed(format!("{path}: {e}")))?;
        let response = self.proxy.handle(request).await;
        if response.status().is_success() {
            return Ok((permit, response));
        }
        let status = response.status();
        let body = read_all(response.into_body()).await.unwrap_or_default();
        Err(Stop::Failed(error_text(status, &body)))
    }
}

async fn read_all(body: Body) -> Result<Bytes, crate::body::BoxError> {
    Ok(body.collect().await?.to_bytes())
}

/// The proxy's answer as a line: the status and the OCI error's code and message.
fn error_text(status: StatusCode, body: &[u8]) -> String {
    let errors = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
        .unwrap_or_default();
    let messages: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR");
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            format!("{code}: {message}")
        })
        .collect();
    if messages.is_empty() {
        format!("{status}")
    } else {
        format!("{status}: {}", messages.join("; "))
    }
}

// === ls ===

fn ls(args: LsArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let dir = &config.cache.dir;
    let listing = cache::inspect(dir).with_context(|| format!("the cache at {}", dir.display()))?;
    let mut objects = listing.objects;
    objects.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.digest.cmp(&b.digest)));
    let now = SystemTime::now();
    let total: u64 = objects.iter().map(|o| o.size).sum();
    if args.json {
        let objects: Vec<serde_json::Value> = objects
            .iter()
            .map(|o| {
                serde_json::json!({
                    "digest": o.digest.as_str(),
                    "kind": kind(o),
                    "media_type": o.media_type,
                    "size": o.size,
                    "modified": rfc3339(o.modified),
                    "age_seconds": age(now, o.modified).as_secs(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "dir": dir.display().to_string(),
            "objects": objects,
            "total_bytes": total,
            "temp_files": listing.temp_files,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if !objects.is_empty() {
        println!(
            "{:<71}  {:<8}  {:>10}  {:>5}",
            "DIGEST", "KIND", "SIZE", "AGE"
        );
    }
    for o in &objects {
        println!(
            "{:<71}  {:<8}  {:>10}  {:>5}",
            o.digest.as_str(),
            kind(o),
            HumanBytes(o.size).to_string(),
            short_age(age(now, o.modified))
        );
    }
    let temp = match listing.temp_files {
        0 => String::new(),
        n => format!(", {}", count(n, "temp file")),
    };
    println!(
        "{}, {} in {}{temp}",
        count(objects.len(), "object"),
        HumanBytes(total),
        dir.display()
    );
    Ok(())
}

/// `index`, `manifest` or `blob`.
fn kind(object: &StoredObject) -> &'static str {
    match object.media_type.as_deref() {
        None => "blob",
        Some(t) if ManifestKind::from_media_type(t).is_some_and(ManifestKind::is_index) => "index",
        Some(_) => "manifest",
    }
}

fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

fn short_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

// === rm and gc ===

async fn rm(args: RmArgs) -> anyhow::Result<()> {
    let digests = args
        .digests
        .iter()
        .map(|d| Digest::parse(d).with_context(|| format!("`{d}` is not a digest")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = Config::load(&args.config)?;
    let dir = &config.cache.dir;
    let _lock = StoreLock::acquire(dir)?;
    // Unbounded: opening clears temp files of crashed writes, and evicts nothing.
    let store = Store::open(dir.clone(), u64::MAX)
        .await
        .with_context(|| format!("opening the cache at {}", dir.display()))?;
    let mut missing = Vec::new();
    for digest in &digests {
        if store.blob_size(digest).await.is_none() {
            missing.push(digest.as_str());
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "not in the cache at {} (nothing was removed): {}",
        dir.display(),
        missing.join(", ")
    );
    let mut freed = 0;
    for digest in &digests {
        if let Some(size) = store.remove(digest).await {
            println!("removed {digest} ({})", HumanBytes(size));
            freed += size;
        }
    }
    println!(
        "rm: {}, {} freed; {} remain",
        count(digests.len(), "object"),
        HumanBytes(freed),
        HumanBytes(store.size())
    );
    Ok(())
}

async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let dir = &config.cache.dir;
    let bound = args.max_size.unwrap_or(config.cache.max_size);
    let _lock = StoreLock::acquire(dir)?;
    // What was there, to report what went: opening evicts and clears temp files itself.
    let before = cache::inspect(dir).unwrap_or_default();
    let store = Store::open(dir.clone(), bound)
        .await
        .with_context(|| format!("opening the cache at {}", dir.display()))?;
    if let Some(older_than) = args.older_than {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for object in before.objects.iter().filter(|o| o.last_used < cutoff) {
            store.remove(&object.digest).await;
        }
    }
    let after = cache::inspect(dir).with_context(|| format!("the cache at {}", dir.display()))?;
    let kept: HashSet<&Digest> = after.objects.iter().map(|o| &o.digest).collect();
    let removed: Vec<&StoredObject> = before
        .objects
        .iter()
        .filter(|o| !kept.contains(&o.digest))
        .collect();
    for object in &removed {
        println!("removed {} ({})", object.digest, HumanBytes(object.size));
    }
    println!(
        "gc: removed {} ({}) and {}; {} ({}) remain in {}",
        count(removed.len(), "object"),
        HumanBytes(removed.iter().map(|o| o.size).sum()),
        count(before.temp_files, "temp file"),
        count(after.objects.len(), "object"),
        HumanBytes(store.size()),
        dir.display()
    );
    Ok(())
}

/// `1 layer`, `2 layers`.
fn count(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_byte_size(s).map_err(|e| e.to_string())
}

/// A duration as the configuration writes it, or whole days (`7d`).
fn age_arg(s: &str) -> Result<Duration, String> {
    if let Some(days) = s.strip_suffix('d') {
        let days: u64 = days
            .parse()
            .map_err(|_| format!("invalid duration `{s}`: e.g. `7d`, `12h`, `30m`"))?;
        return days
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{s}` is too large"));
    }
    parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lists_skip_comments_and_blank_lines() {
        let list = "# base images\nalpine:3.20\n\n  debian:12  # pinned\n#gone:1\n";
        assert_eq!(
            image_list(list).collect::<Vec<_>>(),
            ["alpine:3.20", "debian:12"]
        );
    }

    #[test]
    fn platforms_parse_and_match() {
        let amd64 = parse_platform("linux/amd64").unwrap();
        let v8 = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(v8.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            assert!(parse_platform(bad).is_err(), "{bad}");
        }
        let platform = |os: &str, arch: &str, variant: Option<&str>| oci::manifest::Platform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
            os_version: None,
        };
        assert!(amd64.matches(Some(&platform("linux", "amd64", None))));
        assert!(!amd64.matches(Some(&platform("linux", "arm64", None))));
        assert!(!amd64.matches(None));
        // No variant asked: any; one asked: exactly it.
        assert!(parse_platform("linux/arm64")
            .unwrap()
            .matches(Some(&platform("linux", "arm64", Some("v8")))));
        assert!(!v8.matches(Some(&platform("linux", "arm64", None))));
    }

    #[test]
    fn ages_and_sizes_parse() {
        assert_eq!(age_arg("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(age_arg("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert!(age_arg("7 days").is_err());
        assert!(age_arg("xd").is_err());
        assert_eq!(size_arg("1MiB"), Ok(1 << 20));
        assert!(size_arg("lots").is_err());
        assert_eq!(short_age(Duration::from_secs(59)), "59s");
        assert_eq!(short_age(Duration::from_secs(2 * 86_400 + 5)), "2d");
    }

    #[test]
    fn error_text_is_the_oci_error() {
        let body = br#"{"errors":[{"code":"DENIED","message":"denied by policy"}]}"#;
        assert_eq!(
            error_text(StatusCode::FORBIDDEN, body),
            "403 Forbidden: DENIED: denied by policy"
        );
        assert_eq!(
            error_text(StatusCode::BAD_GATEWAY, b"junk"),
            "502 Bad Gateway"
        );
    }
}
