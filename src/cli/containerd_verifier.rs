//! `trustgate containerd-verifier`: an image verifier for containerd 2.x's `bindir` plugin
//! (`[plugins."io.containerd.image-verifier.v1.bindir"]`), so that every pull a node makes is
//! judged by trustgate's policy, whichever host served the bytes: a client that fell back past
//! a refusing mirror to the upstream is still refused.
//!
//! containerd runs every file in `bin_dir` before it fetches an image's content, with only
//! its own Go-style flags: `-name <reference>`, `-digest <resolved digest>`,
//! `-stdin-media-type <type>` (and `-operation pull|run` when `verify_on_run` is on), the
//! image's descriptor as JSON on stdin, and a deadline (`per_verifier_timeout`, 10 s by
//! default). Exit code 0 lets the pull go on; any other blocks it, and what the verifier
//! printed on stdout becomes the reason `ctr` and the kubelet show (stderr goes to
//! containerd's debug log).
//!
//! The verdict is asked for the digest containerd resolved, never the tag: the decision
//! API's `GET /v1/verdict?image=<registry>/<repository>@<digest>`, or the same verdict path
//! evaluated in this process from a trustgate configuration (`--config`). Everything that is
//! not an `allow` verdict for that digest blocks the pull: an unreachable API, a timeout, an
//! error status, an answer that is not a verdict, a missing token.
//!
//! Exit codes: 0 allowed, 1 refused by trustgate, 2 the verifier is misconfigured or was
//! called with arguments it cannot read, 3 no verdict could be had.

use std::{
    ffi::OsString,
    io::Read as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Args;
use serde::Deserialize;

use crate::{
    config::{parse_duration, Config, Secret},
    http_client::{self, ReadError},
    metrics::Metrics,
    oci::{parse_image, Digest},
    proxy::{Limits, Proxy, Runtime},
};

/// Where the verifier's own configuration is read when neither `--verifier-config` nor
/// `TRUSTGATE_VERIFIER_CONFIG` names one. Not in `bin_dir`: containerd runs every file there.
pub const DEFAULT_CONFIG: &str = "/etc/trustgate/containerd-verifier.yaml";
/// The environment variable naming the verifier's configuration file.
pub const CONFIG_ENV: &str = "TRUSTGATE_VERIFIER_CONFIG";
/// The whole run's deadline when none is configured: below containerd's default
/// `per_verifier_timeout` (10 s), so a slow answer is our refusal with a reason, not
/// containerd's kill without one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(8);
/// Largest stdin read: containerd writes one descriptor (a few hundred bytes).
pub const MAX_STDIN: usize = 1 << 20;
/// Largest decision API answer read.
pub const MAX_ANSWER: u64 = 64 << 10;
/// Longest reason printed: containerd keeps 32 KiB of stdout, a person reads a line.
const MAX_REASON: usize = 2048;
/// The media type containerd passes for a plain descriptor on stdin.
pub const DESCRIPTOR_MEDIA_TYPE: &str = "application/vnd.oci.descriptor.v1+json";
/// The media type containerd passes when `verify_on_run` is on: the descriptor inside a
/// JSON object, under `descriptor`.
pub const INPUT_MEDIA_TYPE: &str = "application/vnd.containerd.image-verifier.input.v1+json";

/// The verb's flags that take a value, as containerd (Go's `flag` package) writes them with
/// one dash; `containerd_args` gives them clap's two.
const VALUE_FLAGS: [&str; 13] = [
    "name",
    "digest",
    "stdin-media-type",
    "operation",
    "trustgate-url",
    "token-file",
    "ca-file",
    "timeout",
    "config",
    "verifier-config",
    "install",
    "host-root",
    "install-binary",
];
/// The flags containerd passes, by which a bare `trustgate` in `bin_dir` knows it is run as
/// the verifier.
const CONTAINERD_FLAGS: [&str; 4] = ["name", "digest", "stdin-media-type", "operation"];

#[derive(Debug, Args)]
pub struct ContainerdVerifierArgs {
    /// The image reference being pulled (containerd passes `-name`).
    #[arg(long)]
    pub name: Option<String>,
    /// The manifest or index digest containerd resolved (containerd passes `-digest`); the
    /// verdict is asked for this digest.
    #[arg(long)]
    pub digest: Option<String>,
    /// The media type of the JSON on stdin (containerd passes `-stdin-media-type`); without
    /// it stdin is not read.
    #[arg(long)]
    pub stdin_media_type: Option<String>,
    /// `pull` or `run` (containerd passes `-operation` when `verify_on_run` is on).
    #[arg(long)]
    pub operation: Option<String>,
    /// The trustgate admin listener to ask, e.g. `http://127.0.0.1:9090`.
    #[arg(long)]
    pub trustgate_url: Option<String>,
    /// A file holding the decision API's bearer token (`server.admin_token_file`).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM certificates to trust for an `https` trustgate URL (besides the system roots).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The whole run's deadline (e.g. `8s`); keep it below containerd's
    /// `per_verifier_timeout`.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Evaluate this trustgate configuration here instead of asking a running trustgate.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The verifier's configuration file (default: `$TRUSTGATE_VERIFIER_CONFIG`, else
    /// /etc/trustgate/containerd-verifier.yaml when it exists).
    #[arg(long)]
    pub verifier_config: Option<PathBuf>,
    /// Install instead of verifying: this binary, the verifier's configuration (from
    /// --trustgate-url, --token-file, --ca-file, --timeout) and a wrapper script in this
    /// directory, containerd's `bin_dir` (a path on the node).
    #[arg(long, value_name = "BIN_DIR")]
    pub install: Option<PathBuf>,
    /// Where the node's filesystem is mounted when installing from a container (a hostPath
    /// volume, e.g. `/host`); paths given to --install are the node's.
    #[arg(long, default_value = "/")]
    pub host_root: PathBuf,
    /// Where --install puts this binary on the node (outside `bin_dir`: containerd runs
    /// every file there).
    #[arg(long, default_value = install::DEFAULT_BINARY)]
    pub install_binary: PathBuf,
    /// With --install: write the address the trustgate URL's host name resolves to now, for
    /// a node that cannot resolve cluster DNS names (plain `http` URLs only).
    #[arg(long)]
    pub resolve: bool,
    /// With --install: keep running afterwards (until SIGTERM), as a DaemonSet's container.
    #[arg(long)]
    pub keep_running: bool,
}

/// `/etc/trustgate/containerd-verifier.yaml`: what the flags say, for a verifier that
/// containerd runs with no flags of ours.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    trustgate_url: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timeout: Option<String>,
    trustgate_config: Option<PathBuf>,
}

/// Where the verdict comes from.
#[derive(Debug)]
enum Source {
    /// The decision API at this base URL.
    Api {
        url: reqwest::Url,
        token: Option<Secret>,
        ca_pem: Option<Vec<u8>>,
    },
    /// This trustgate configuration, evaluated here.
    Local(PathBuf),
}

/// The settings of one run.
#[derive(Debug)]
struct Settings {
    source: Source,
    timeout: Duration,
}

/// What the verifier concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// trustgate allows this digest; the reason.
    Allow(String),
    /// trustgate refuses it; its reason.
    Refuse(String),
    /// The verifier cannot run as configured or called; why.
    Misconfigured(String),
    /// No verdict could be had; why. The pull is blocked all the same.
    NoVerdict(String),
}

/// A verdict as the decision API writes it (`proxy::Verdict`).
#[derive(Debug, Deserialize)]
struct Answer {
    verdict: String,
    #[serde(default)]
    image: String,
    digest: Option<String>,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    reason: String,
}

// === arguments ===

/// The command line with containerd's one-dash flags (`-name x`, `-digest=y`) written as
/// clap's (`--name x`), when the verb is `containerd-verifier`. A bare `trustgate` called
/// with containerd's flags (the binary itself dropped into `bin_dir`) is that verb too.
/// Other command lines are returned as they are.
pub fn containerd_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args
        .get(1)
        .and_then(|a| one_dash_flag(a))
        .is_some_and(|(name, _)| CONTAINERD_FLAGS.contains(&name))
    {
        args.insert(1, OsString::from("containerd-verifier"));
    }
    if args.get(1).is_none_or(|a| a != "containerd-verifier") {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut rest = args.into_iter();
    out.extend(rest.by_ref().take(2));
    while let Some(arg) = rest.next() {
        let flag = one_dash_flag(&arg).or_else(|| {
            let name = arg.to_str()?.strip_prefix("--")?;
            VALUE_FLAGS
                .iter()
                .find(|f| **f == name)
                .map(|f| (*f, false))
        });
        match flag {
            // The value follows: joined as `--name=<value>`, so that clap takes it as it is
            // even when it starts with `-`.
            Some((name, false)) => {
                let mut joined = OsString::from(format!("--{name}="));
                joined.push(rest.next().unwrap_or_default());
                out.push(joined);
            }
            // `-name=<value>`: one dash more.
            Some((_, true)) => out.push(OsString::from(format!("-{}", arg.to_string_lossy()))),
            None => out.push(arg),
        }
    }
    out
}

/// `-name` or `-name=value` for one of [`VALUE_FLAGS`]: the flag's name, and whether the
/// value is inline.
fn one_dash_flag(arg: &OsString) -> Option<(&'static str, bool)> {
    let flag = arg.to_str()?.strip_prefix('-')?;
    let (name, inline) = match flag.split_once('=') {
        Some((name, _)) => (name, true),
        None => (flag, false),
    };
    VALUE_FLAGS
        .iter()
        .find(|f| **f == name)
        .map(|f| (*f, inline))
}

/// The image to ask about: `<registry>/<repository>@<digest>`, from containerd's `-name`
/// (`docker.io/library/alpine:3.20`, `registry.example:5000/app:v1`, `app@sha256:…`) and
/// `-digest`. The tag is dropped: the verdict is for the digest containerd resolved. A name
/// without a registry is Docker Hub's, as containerd's own normalisation has it.
pub fn verdict_image(name: &str, digest: &str) -> Result<String, String> {
    let resolved = Digest::parse(digest).map_err(|e| format!("-digest {digest:?}: {e}"))?;
    let image = parse_image(name).map_err(|e| format!("-name {name:?}: {e}"))?;
    if let Some(pinned) = &image.digest {
        if pinned != resolved.as_str() {
            return Err(format!(
                "-name {name:?} pins {pinned} but containerd resolved {resolved}"
            ));
        }
    }
    let registry = image.registry.unwrap_or_else(|| "docker.io".to_owned());
    let repo = match registry.as_str() {
        "docker.io" if !image.repo.contains('/') => format!("library/{}", image.repo),
        _ => image.repo,
    };
    Ok(format!("{registry}/{repo}@{resolved}"))
}

/// Checks what containerd wrote on stdin against `-digest`: a descriptor (or the input
/// object holding one) for another digest blocks the pull. Unknown media types are not
/// read (containerd may add some); `-digest` decides alone then.
pub fn check_stdin(media_type: &str, input: &[u8], digest: &str) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(Deserialize)]
    struct Input {
        descriptor: Option<Descriptor>,
    }
    let described = match media_type {
        DESCRIPTOR_MEDIA_TYPE => serde_json::from_slice::<Descriptor>(input)
            .map(|d| Some(d.digest))
            .map_err(|e| format!("the descriptor on stdin is not JSON of {media_type}: {e}"))?,
        INPUT_MEDIA_TYPE => serde_json::from_slice::<Input>(input)
            .map(|i| i.descriptor.map(|d| d.digest))
            .map_err(|e| format!("stdin is not JSON of {media_type}: {e}"))?,
        _ => None,
    };
    match described {
        Some(d) if d != digest => Err(format!(
            "the descriptor on stdin is for {d}, not for -digest {digest}"
        )),
        _ => Ok(()),
    }
}

// === settings ===

impl Settings {
    /// The flags over the verifier's configuration file.
    fn resolve(args: &ContainerdVerifierArgs) -> Result<Settings, String> {
        let named = args
            .verifier_config
            .clone()
            .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
        let file = match &named {
            Some(path) => read_settings(path)?,
            None => match Path::new(DEFAULT_CONFIG).exists() {
                true => read_settings(Path::new(DEFAULT_CONFIG))?,
                false => FileSettings::default(),
            },
        };
        let timeout = match (&args.timeout, &file.timeout) {
            (Some(t), _) => *t,
            (None, Some(t)) => parse_duration(t).map_err(|e| format!("timeout: {e}"))?,
            (None, None) => DEFAULT_TIMEOUT,
        };
        if timeout.is_zero() {
            return Err("the timeout must be longer than 0s".to_owned());
        }
        let url = args.trustgate_url.clone().or(file.trustgate_url);
        let local = args.config.clone().or(file.trustgate_config);
        let source = match (url, local) {
            (Some(_), Some(_)) => {
                return Err(
                    "give a trustgate URL or a trustgate configuration to evaluate, not both"
                        .to_owned(),
                )
            }
            (None, Some(config)) => Source::Local(config),
            (Some(url), None) => Source::Api {
                url: admin_url(&url)?,
                token: args
                    .token_file
                    .clone()
                    .or(file.token_file)
                    .map(|p| read_token(&p))
                    .transpose()?,
                ca_pem: args
                    .ca_file
                    .clone()
                    .or(file.ca_file)
                    .map(|p| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display())))
                    .transpose()?,
            },
            (None, None) => {
                return Err(format!(
                "not configured: pass --trustgate-url (or --config), or write trustgate_url in {}",
                named
                    .as_deref()
                    .unwrap_or(Path::new(DEFAULT_CONFIG))
                    .display()
            ))
            }
        };
        Ok(Settings { source, timeout })
    }
}

fn read_settings(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match text.trim().is_empty() {
        true => Ok(FileSettings::default()),
        false => yaml_serde::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
    }
}

/// The token in `path`, without one trailing newline.
fn read_token(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let token = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    match token.is_empty() {
        true => Err(format!("{}: the token file is empty", path.display())),
        false => Ok(Secret::new(token)),
    }
}

/// `<base>/v1/verdict` for an `http(s)://host[:port][/prefix]` base.
fn admin_url(base: &str) -> Result<reqwest::Url, String> {
    let bad = |why: &str| format!("trustgate URL {base:?}: {why}");
    let url = reqwest::Url::parse(base).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("write http://host:port or https://host:port"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("give no query, fragment or credentials"));
    }
    let path = url.path().trim_end_matches('/');
    url.join(&format!("{path}/v1/verdict"))
        .map_err(|e| bad(&e.to_string()))
}

// === the verdict ===

/// Asks the decision API at `url` about `image`, within `deadline`.
async fn ask_api(
    url: &reqwest::Url,
    token: Option<&Secret>,
    ca_pem: Option<&[u8]>,
    image: &str,
    deadline: Instant,
) -> Outcome {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!(
            "trustgate-containerd-verifier/",
            env!("CARGO_PKG_VERSION")
        ))
        // containerd's HTTP(S)_PROXY is for registries, not for the node's own trustgate.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3));
    if let Some(pem) = ca_pem {
        match reqwest::Certificate::from_pem_bundle(pem) {
            Ok(certs) if !certs.is_empty() => builder = builder.tls_certs_merge(certs),
            _ => return Outcome::Misconfigured("the CA file holds no PEM certificate".into()),
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return Outcome::Misconfigured(format!("cannot build the HTTP client: {e}")),
    };
    let mut url = url.clone();
    url.query_pairs_mut().append_pair("image", image);
    let shown = url
        .as_str()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    // One retry when trustgate is busy (503 with Retry-After), while time remains.
    for attempt in 0..2 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        let mut request = client.get(url.clone()).timeout(left);
        if let Some(token) = token {
            request = request.bearer_auth(token.expose());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Outcome::NoVerdict(format!("trustgate at {shown} did not answer in time"))
            }
            Err(e) => {
                let why = http_client::error_chain(&e.without_url());
                return Outcome::NoVerdict(format!("cannot reach trustgate at {shown}: {why}"));
            }
        };
        let status = response.status();
        let retry = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            && attempt == 0
            && deadline.saturating_duration_since(Instant::now()) > Duration::from_millis(1500);
        let body = match http_client::read_limited(response, MAX_ANSWER).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Outcome::NoVerdict(format!(
                    "trustgate at {shown} answered more than {MAX_ANSWER} bytes"
                ))
            }
            Err(ReadError::Transport(e)) if e.is_timeout() => {
                return Outcome::NoVerdict(format!("trustgate at {shown} did not answer in time"))
            }
            Err(ReadError::Transport(e)) => {
                return Outcome::NoVerdict(format!(
                    "reading trustgate's answer failed: {}",
                    http_client::error_chain(&e.without_url())
                ))
            }
        };
        if retry {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        return interpret(status.as_u16(), &body, image);
    }
    Outcome::NoVerdict(format!("trustgate at {shown} did not answer in time"))
}

/// What a decision API answer means for `image` (`…@<digest>`).
pub fn interpret(status: u16, body: &[u8], image: &str) -> Outcome {
    let error = || {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {status}"))
    };
    match status {
        200 => match serde_json::from_slice::<Answer>(body) {
            Ok(answer) => judge(answer, image),
            Err(e) => Outcome::NoVerdict(format!("trustgate's answer is not a verdict: {e}")),
        },
        400 => Outcome::NoVerdict(format!("trustgate cannot judge {image}: {}", error())),
        401 => Outcome::NoVerdict(
            "trustgate wants the decision API's bearer token: set token_file (--token-file) to a file holding server.admin_token_file's token"
                .to_owned(),
        ),
        403 => Outcome::NoVerdict(format!(
            "trustgate's decision API is off: {}",
            error()
        )),
        502 => Outcome::NoVerdict(format!(
            "trustgate could not reach a registry or trust server: {}",
            error()
        )),
        _ => Outcome::NoVerdict(format!("trustgate answered {}", error())),
    }
}

/// A verdict read: `allow` only when it is for the digest asked about.
fn judge(answer: Answer, image: &str) -> Outcome {
    let asked = image.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let rule = match answer.rule.is_empty() {
        true => String::new(),
        false => format!(" (rule {})", answer.rule),
    };
    match answer.verdict.as_str() {
        "allow" => match answer.digest.as_deref() {
            Some(d) if d != asked => Outcome::NoVerdict(format!(
                "trustgate allowed {d}, not the digest asked about ({asked})"
            )),
            _ => Outcome::Allow(format!("{}{rule}", answer.reason)),
        },
        "refuse" => Outcome::Refuse(format!("{}{rule}", answer.reason)),
        other => Outcome::NoVerdict(format!(
            "trustgate's answer for {} is {other:?}, not a verdict",
            answer.image
        )),
    }
}

/// The verdict of the trustgate configuration at `path`, by the proxy's own path
/// ([`Proxy::verdict`]), with a throw-away content cache (trust state stays where the
/// configuration puts it, under `cache.dir`).
async fn ask_local(path: &Path, image: &str) -> Outcome {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return Outcome::Misconfigured(format!("{}: {e}", path.display())),
    };
    let runtime = match Runtime::build(&config, &Arc::new(Metrics::new())) {
        Ok(r) => r,
        Err(e) => return Outcome::Misconfigured(format!("{}: {e}", path.display())),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let scratch =
        std::env::temp_dir().join(format!("trustgate-verifier-{}-{nanos}", std::process::id()));
    let outcome = async {
        let store = crate::cache::Store::open(scratch.clone(), config.cache.max_size)
            .await
            .map_err(|e| Outcome::NoVerdict(format!("cannot open a scratch cache: {e}")))?;
        let proxy = Arc::new(Proxy::new(
            runtime,
            store,
            Arc::new(Metrics::new()),
            Limits {
                max_manifest_size: config.limits.max_manifest_size,
                ..Limits::default()
            },
        ));
        let verdict = proxy
            .verdict(image)
            .await
            .map_err(|e| Outcome::NoVerdict(format!("no verdict for {image}: {e}")))?;
        let answer = serde_json::to_vec(&verdict).unwrap_or_default();
        Ok::<_, Outcome>(interpret(200, &answer, image))
    }
    .await
    .unwrap_or_else(|o| o);
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

/// Reads stdin on its own thread (a blocked read must not hold the process past its
/// deadline), at most [`MAX_STDIN`] bytes.
async fn read_stdin(deadline: Instant) -> Result<Vec<u8>, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut input = Vec::new();
        let read = std::io::stdin()
            .lock()
            .take(MAX_STDIN as u64 + 1)
            .read_to_end(&mut input)
            .map(|_| input);
        let _ = tx.send(read);
    });
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, rx).await {
        Err(_) => Err("stdin was not closed in time".to_owned()),
        Ok(Err(_)) => Err("reading stdin failed".to_owned()),
        Ok(Ok(Err(e))) => Err(format!("reading stdin failed: {e}")),
        Ok(Ok(Ok(input))) if input.len() > MAX_STDIN => {
            Err(format!("stdin holds more than {MAX_STDIN} bytes"))
        }
        Ok(Ok(Ok(input))) => Ok(input),
    }
}

/// The whole judgement of one call, from containerd's arguments to an [`Outcome`].
async fn judgement(args: &ContainerdVerifierArgs, image: &mut String) -> Outcome {
    let started = Instant::now();
    let (Some(name), Some(digest)) = (&args.name, &args.digest) else {
        return Outcome::Misconfigured(
            "called without -name and -digest (containerd's image verifier flags)".to_owned(),
        );
    };
    *image = name.clone();
    let asked = match verdict_image(name, digest) {
        Ok(i) => i,
        Err(e) => return Outcome::NoVerdict(format!("cannot read the image: {e}")),
    };
    *image = asked.clone();
    let settings = match Settings::resolve(args) {
        Ok(s) => s,
        Err(e) => return Outcome::Misconfigured(e),
    };
    let deadline = started + settings.timeout;
    if let Some(media_type) = &args.stdin_media_type {
        let checked = read_stdin(deadline)
            .await
            .and_then(|input| check_stdin(media_type, &input, digest));
        if let Err(e) = checked {
            return Outcome::NoVerdict(e);
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let asking = async {
        match &settings.source {
            Source::Api { url, token, ca_pem } => {
                ask_api(url, token.as_ref(), ca_pem.as_deref(), &asked, deadline).await
            }
            Source::Local(path) => ask_local(path, &asked).await,
        }
    };
    match tokio::time::timeout(left, asking).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::NoVerdict(format!(
            "trustgate did not answer in time: no verdict within {:?} (the verifier's timeout)",
            settings.timeout
        )),
    }
}

/// Runs the verifier: prints the reason on stdout (what containerd shows) and returns the
/// exit code containerd judges by.
pub async fn run(args: ContainerdVerifierArgs) -> ExitCode {
    if args.install.is_some() {
        return install::run(&args).await;
    }
    let mut image = String::new();
    let outcome = judgement(&args, &mut image).await;
    // containerd's message names the reference and digest; trustgate's image is added when
    // its reason does not name it.
    let about = |reason: &str, word: &str| match reason.contains(image.as_str()) || image.is_empty()
    {
        true => String::new(),
        false => format!(" {word}{image}"),
    };
    let (line, code) = match &outcome {
        Outcome::Allow(reason) => (
            format!("trustgate allowed{}: {reason}", about(reason, "")),
            0,
        ),
        Outcome::Refuse(reason) => (
            format!("trustgate refused{}: {reason}", about(reason, "")),
            1,
        ),
        Outcome::Misconfigured(why) => (
            format!("trustgate containerd-verifier blocks the pull (fail-closed): {why}"),
            2,
        ),
        Outcome::NoVerdict(why) => (
            format!(
                "trustgate gave no verdict{}, so the pull is blocked (fail-closed): {why}",
                about(why, "for ")
            ),
            3,
        ),
    };
    println!("{}", one_line(&line));
    eprintln!(
        "trustgate containerd-verifier: name={:?} digest={:?} operation={:?} exit={code}",
        args.name.as_deref().unwrap_or_default(),
        args.digest.as_deref().unwrap_or_default(),
        args.operation.as_deref().unwrap_or_default(),
    );
    ExitCode::from(code)
}

/// `text` on one line, at most [`MAX_REASON`] bytes.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

mod install;
#[cfg(test)]
mod tests;
