//! `trustgate doctor`: read a container client's own registry configuration and name every
//! setting that lets a pull bypass trustgate or weakens it, each with its fix:
//!
//! ```text
//! trustgate doctor --daemon-json FILE | --containerd-hosts DIR | --registries-conf FILE [--registries-conf-d DIR]
//!                  [--proxy HOST:PORT] [--registry NAME]... [--egress-blocked]
//! ```
//!
//! Every client falls back past a refusing mirror: dockerd to Docker Hub ([`dockerd`]),
//! containerd to the next host and `server` ([`containerd`]), containers/image to the next
//! mirror and the primary `location` ([`registries`]). A refusal is then followed by a direct,
//! unverified pull whenever the upstream is reachable. The checks model how each client picks
//! the hosts for a tag pull and a digest pull, and report each place where that list leaves
//! trustgate: a host before it, a host after it (the fallback), or no trustgate at all.
//!
//! One finding a line on stdout, `<file>:<setting>: <what happens> — fix: <what to write>`;
//! exit 1 when there is one, 0 when there is none, 2 when an input cannot be read or parsed
//! (the error names the file and the position).

pub mod containerd;
pub mod dockerd;
pub mod endpoint;
pub mod registries;

use std::{
    fmt,
    marker::PhantomData,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{ArgGroup, Args};
use serde::{
    de::{MapAccess, Visitor},
    Deserialize, Deserializer,
};

use endpoint::{canonical_registry, Endpoint};

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("input")
        .required(true)
        .multiple(true)
        .args(["daemon_json", "containerd_hosts", "registries_conf", "registries_conf_d"])
))]
pub struct DoctorArgs {
    /// dockerd's daemon.json (usually /etc/docker/daemon.json).
    #[arg(long, value_name = "FILE")]
    pub daemon_json: Option<PathBuf>,
    /// containerd's registry `config_path`: a directory of `<registry>/hosts.toml` and
    /// `_default/hosts.toml` (usually /etc/containerd/certs.d).
    #[arg(long, value_name = "DIR")]
    pub containerd_hosts: Option<PathBuf>,
    /// containers-registries.conf, for podman, CRI-O, buildah and skopeo (usually
    /// /etc/containers/registries.conf). Its drop-in directory `FILE.d` is read as well when
    /// it exists. A directory holding registries.conf stands for both; any other directory is
    /// a drop-in directory alone.
    #[arg(long, value_name = "FILE|DIR")]
    pub registries_conf: Option<PathBuf>,
    /// The drop-in directory of registries.conf (`*.conf`, read in name order after the main
    /// file), when it is not `FILE.d` beside --registries-conf.
    #[arg(long, value_name = "DIR")]
    pub registries_conf_d: Option<PathBuf>,
    /// trustgate's address as the clients reach it. Without it, every mirror (and rewritten
    /// location) in the files is taken to be trustgate, so a mirror that is not trustgate goes
    /// unnoticed.
    #[arg(long, value_name = "HOST:PORT")]
    pub proxy: Option<String>,
    /// A registry whose images must come through trustgate (repeatable; default docker.io).
    #[arg(long = "registry", value_name = "NAME")]
    pub registries: Vec<String>,
    /// The network refuses this client's egress to the upstream registries (only trustgate
    /// reaches them): leave out the findings that such a rule closes.
    #[arg(long)]
    pub egress_blocked: bool,
}

/// One setting that lets pulls bypass or weaken trustgate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file (or, for a missing file, the directory) as given on the command line.
    pub file: String,
    /// The setting, in the file's own syntax (`registry-mirrors`, `host."https://…".capabilities`,
    /// `registry["docker.io"].mirror-by-digest-only`).
    pub setting: String,
    /// What the client does because of it.
    pub problem: String,
    /// What to write instead.
    pub fix: String,
    /// The bypass is a request to an upstream registry itself, so a network rule that refuses
    /// this client's egress to the upstreams closes it too (`--egress-blocked` leaves it out).
    pub egress_closes: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} — fix: {}",
            self.file, self.setting, self.problem, self.fix
        )
    }
}

/// An input that cannot be read, or that the client itself would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct InputError {
    pub file: String,
    pub message: String,
}

impl InputError {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            file: file.into(),
            message: message.into(),
        }
    }
}

/// Reads a configuration file (bounded: these are small text files).
pub fn read_text(path: &Path) -> Result<String, InputError> {
    const MAX: u64 = 4 * 1024 * 1024;
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| InputError::new(&shown, e.to_string()))?;
    if meta.is_dir() {
        return Err(InputError::new(shown, "is a directory, not a file"));
    }
    if meta.len() > MAX {
        return Err(InputError::new(shown, format!("larger than {MAX} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| InputError::new(&shown, e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| {
        InputError::new(
            shown,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// A table whose entries keep the file's order.
#[derive(Debug, Default, Clone)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of hosts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, T>()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

/// What trustgate is, as the clients reach it.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub endpoints: Vec<Endpoint>,
    /// Given with `--proxy` (rather than taken from the mirror entries).
    pub explicit: bool,
}

impl Proxy {
    pub fn explicit(text: &str) -> Result<Proxy, InputError> {
        let endpoint = Endpoint::parse(text)
            .ok_or_else(|| InputError::new("--proxy", format!("{text:?} is not HOST[:PORT]")))?;
        Ok(Proxy {
            endpoints: vec![endpoint],
            explicit: true,
        })
    }

    /// The distinct candidates, in the order found.
    pub fn inferred(candidates: impl IntoIterator<Item = Endpoint>) -> Proxy {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for c in candidates {
            if !endpoints.iter().any(|e| e.same_server(&c)) {
                endpoints.push(c);
            }
        }
        Proxy {
            endpoints,
            explicit: false,
        }
    }

    pub fn is(&self, endpoint: &Endpoint) -> bool {
        self.endpoints.iter().any(|e| e.same_server(endpoint))
    }

    /// trustgate's URL for a fix (`https://<trustgate>` when nothing names it).
    pub fn url(&self) -> String {
        match self.endpoints.first() {
            Some(e) => e.url(),
            None => "https://<trustgate>".to_owned(),
        }
    }

    /// trustgate's `host:port` for a fix.
    pub fn authority(&self) -> String {
        match self.endpoints.first() {
            Some(e) => e.authority(),
            None => "<trustgate>".to_owned(),
        }
    }
}

/// What the checks compare against.
#[derive(Debug, Clone)]
pub struct Context {
    pub proxy: Proxy,
    /// Registries whose images must come through trustgate (canonical names).
    pub registries: Vec<String>,
}

impl Context {
    pub fn new(proxy: Proxy, registries: &[String]) -> Context {
        let mut names: Vec<String> = Vec::new();
        for r in registries {
            let r = canonical_registry(r);
            if !r.is_empty() && !names.contains(&r) {
                names.push(r);
            }
        }
        if names.is_empty() {
            names.push("docker.io".to_owned());
        }
        Context {
            proxy,
            registries: names,
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// What is left to fix.
    pub findings: Vec<Finding>,
    /// Findings left out because `--egress-blocked` says the network closes them.
    pub closed_by_egress: usize,
    /// How trustgate was identified, when not with `--proxy`.
    pub proxy_note: Option<String>,
}

/// Reads every input, then checks each against trustgate's address.
pub fn run(args: &DoctorArgs) -> Result<Report, InputError> {
    let docker = args.daemon_json.as_deref().map(dockerd::load).transpose()?;
    let ctrd = args
        .containerd_hosts
        .as_deref()
        .map(containerd::load)
        .transpose()?;
    let regs = if args.registries_conf.is_some() || args.registries_conf_d.is_some() {
        Some(registries::load(
            args.registries_conf.as_deref(),
            args.registries_conf_d.as_deref(),
        )?)
    } else {
        None
    };

    let mut report = Report::default();
    let proxy = match &args.proxy {
        Some(p) => Proxy::explicit(p)?,
        None => {
            let mut candidates = Vec::new();
            if let Some(d) = &docker {
                candidates.extend(d.candidates());
            }
            if let Some(c) = &ctrd {
                candidates.extend(c.candidates());
            }
            if let Some(r) = &regs {
                candidates.extend(r.candidates());
            }
            let proxy = Proxy::inferred(candidates);
            report.proxy_note = Some(if proxy.endpoints.is_empty() {
                "no --proxy and no mirror entry: nothing in these files reaches trustgate"
                    .to_owned()
            } else {
                format!(
                    "no --proxy: taking trustgate to be {} (every mirror entry found; pass --proxy to check which one is)",
                    proxy
                        .endpoints
                        .iter()
                        .map(Endpoint::authority)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            proxy
        }
    };
    let ctx = Context::new(proxy, &args.registries);

    let mut all = Vec::new();
    if let Some(d) = &docker {
        all.extend(d.check(&ctx));
    }
    if let Some(c) = &ctrd {
        all.extend(c.check(&ctx));
    }
    if let Some(r) = &regs {
        all.extend(r.check(&ctx));
    }
    for f in dedup(all) {
        if args.egress_blocked && f.egress_closes {
            report.closed_by_egress += 1;
        } else {
            report.findings.push(f);
        }
    }
    Ok(report)
}

/// Drops repeats (the tag and the digest pull paths often meet the same setting).
pub fn dedup(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        if !out
            .iter()
            .any(|o| o.file == f.file && o.setting == f.setting && o.problem == f.problem)
        {
            out.push(f);
        }
    }
    out
}

/// The verb: findings on stdout, a summary on stderr; exit 0 clean, 1 findings, 2 bad input.
pub fn main(args: DoctorArgs) -> ExitCode {
    match run(&args) {
        Ok(report) => {
            if let Some(note) = &report.proxy_note {
                eprintln!("note: {note}");
            }
            for f in &report.findings {
                println!("{f}");
            }
            let closed = if report.closed_by_egress > 0 {
                format!(
                    " ({} more closed by the refused egress, --egress-blocked)",
                    report.closed_by_egress
                )
            } else {
                String::new()
            };
            if report.findings.is_empty() {
                eprintln!("no bypass found{closed}");
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "{} setting(s) let pulls bypass or weaken trustgate{closed}",
                    report.findings.len()
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
