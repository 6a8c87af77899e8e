//! containerd's registry hosts directory (`config_path`, e.g. /etc/containerd/certs.d): one
//! `<registry>/hosts.toml` per registry (`host:port` written `host_port_` or `host:port`), and
//! `_default/hosts.toml` for every registry without a directory of its own.
//!
//! How containerd (1.6 through 2.x) uses a file: the `[host."…"]` tables in file order, then
//! `server` (absent: the registry itself, with every capability). A tag pull asks the hosts
//! that have both `pull` and `resolve`, a digest pull those with `pull`, each in turn: an error
//! or a refusal from one sends containerd to the next. A file containerd cannot use (a TOML
//! error, an unknown capability, and in 1.6 a file with no `[host]` table: "invalid `host`
//! tree") is logged and dropped, and the registry is pulled direct. A directory with
//! certificates but no hosts.toml is pulled direct too, and hides `_default`.

use std::path::Path;

use serde::Deserialize;

use super::{
    endpoint::{is_upstream, upstream_of, Endpoint},
    read_text, Context, Finding, InputError, Ordered,
};

const PULL: u8 = 1;
const RESOLVE: u8 = 2;
const PUSH: u8 = 4;
const ALL: u8 = PULL | RESOLVE | PUSH;

/// One `[host."…"]` table, or the file's top level (which applies to `server`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct HostEntry {
    pub capabilities: Option<Vec<String>>,
    pub skip_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RawHostsFile {
    server: Option<String>,
    capabilities: Option<Vec<String>>,
    skip_verify: Option<bool>,
    host: Option<Ordered<HostEntry>>,
}

/// A parsed hosts.toml.
#[derive(Debug, Clone)]
pub struct HostsFile {
    pub file: String,
    /// `server`, parsed; `None` when absent or empty.
    pub server: Option<Endpoint>,
    pub root: HostEntry,
    /// The `[host."…"]` tables in file order, keys as written.
    pub hosts: Vec<(String, Endpoint, HostEntry)>,
    /// Whether the file has a `host` table at all (containerd 1.6 requires one).
    pub has_host_table: bool,
}

/// Parses hosts.toml text; `file` names it in errors and findings.
pub fn parse_hosts(file: &str, text: &str) -> Result<HostsFile, InputError> {
    let raw: RawHostsFile = toml::from_str(text).map_err(|e| {
        InputError::new(
            file,
            format!(
                "containerd drops a hosts.toml it cannot parse and pulls direct: {}",
                e.to_string().trim_end()
            ),
        )
    })?;
    let endpoint = |setting: &str, text: &str| {
        Endpoint::parse(text).ok_or_else(|| {
            InputError::new(
                file,
                format!("{setting}: {text:?} is not a registry URL (containerd drops the file and pulls direct)"),
            )
        })
    };
    let server = match raw.server.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(endpoint("server", s)?),
        _ => None,
    };
    let has_host_table = raw.host.is_some();
    let mut hosts = Vec::new();
    for (key, entry) in raw.host.unwrap_or_default().0 {
        let e = endpoint(&format!("host.{key:?}"), &key)?;
        hosts.push((key, e, entry));
    }
    Ok(HostsFile {
        file: file.to_owned(),
        server,
        root: HostEntry {
            capabilities: raw.capabilities,
            skip_verify: raw.skip_verify,
        },
        hosts,
        has_host_table,
    })
}

/// One directory under the hosts directory.
#[derive(Debug, Clone)]
pub struct RegistryDir {
    /// The directory's name (`docker.io`, `localhost_5000_`, `_default`).
    pub name: String,
    /// The registry it configures; `None` for `_default`.
    pub registry: Option<String>,
    /// The directory as shown in findings.
    pub path: String,
    /// `None`: no hosts.toml (or an empty one), so certificates only.
    pub hosts: Option<HostsFile>,
}

/// A containerd hosts directory.
#[derive(Debug, Clone)]
pub struct HostsDir {
    pub root: String,
    pub dirs: Vec<RegistryDir>,
}

/// The registry a directory name configures (`host_port_` is `host:port`).
pub fn registry_of_dir(name: &str) -> Option<String> {
    if name == "_default" {
        return None;
    }
    if let Some(inner) = name.strip_suffix('_') {
        if let Some((host, port)) = inner.rsplit_once('_') {
            if !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                return Some(format!("{host}:{port}"));
            }
        }
    }
    Some(name.to_owned())
}

/// The directory names containerd tries for `registry`, first match wins (then `_default`).
fn dir_names(registry: &str) -> Vec<String> {
    let mut names = Vec::new();
    if let Some((host, port)) = registry.rsplit_once(':') {
        if !host.is_empty() {
            names.push(format!("{host}_{port}_"));
        }
    }
    names.push(registry.to_owned());
    names
}

pub fn load(root: &Path) -> Result<HostsDir, InputError> {
    let shown = root.display().to_string();
    let entries = std::fs::read_dir(root).map_err(|e| InputError::new(&shown, e.to_string()))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| InputError::new(&shown, e.to_string()))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = path.join("hosts.toml");
        let hosts = if file.exists() {
            let text = read_text(&file)?;
            if text.is_empty() {
                None
            } else {
                Some(parse_hosts(&file.display().to_string(), &text)?)
            }
        } else {
            None
        };
        dirs.push(RegistryDir {
            registry: registry_of_dir(&name),
            path: path.display().to_string(),
            name,
            hosts,
        });
    }
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(HostsDir { root: shown, dirs })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Proxy,
    Upstream,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Server,
    /// No `server`: the registry itself.
    DefaultServer,
}

#[derive(Debug)]
struct Host {
    /// `host."…"` or `server`.
    setting: String,
    endpoint: Endpoint,
    role: Role,
    caps: u8,
    /// Where the capabilities are written.
    caps_setting: String,
    skip_verify: bool,
    skip_verify_setting: String,
    kind: Kind,
}

/// The capability bits; the unknown names when there are any (containerd drops the file).
fn capabilities(list: &Option<Vec<String>>) -> Result<u8, Vec<String>> {
    let Some(list) = list.as_ref().filter(|l| !l.is_empty()) else {
        return Ok(ALL);
    };
    let mut caps = 0;
    let mut unknown = Vec::new();
    for c in list {
        match c.to_ascii_lowercase().as_str() {
            "pull" => caps |= PULL,
            "resolve" => caps |= RESOLVE,
            "push" => caps |= PUSH,
            _ => unknown.push(c.clone()),
        }
    }
    if unknown.is_empty() {
        Ok(caps)
    } else {
        Err(unknown)
    }
}

/// The fix for a whole hosts.toml.
fn hosts_toml(url: &str) -> String {
    format!(
        "server = \"{url}\" and capabilities = [\"pull\", \"resolve\"], then [host.\"{url}\"] with capabilities = [\"pull\", \"resolve\"]"
    )
}

impl HostsDir {
    /// Mirror hosts and rewritten servers: what trustgate is when `--proxy` is absent.
    pub fn candidates(&self) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for dir in &self.dirs {
            let Some(f) = &dir.hosts else { continue };
            let own = |e: &Endpoint| dir.registry.as_deref().is_some_and(|r| is_upstream(e, r));
            for (_, e, _) in &f.hosts {
                if !own(e) {
                    out.push(e.clone());
                }
            }
            if let Some(s) = &f.server {
                if !own(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    fn find(&self, registry: &str) -> Option<&RegistryDir> {
        dir_names(registry)
            .iter()
            .find_map(|n| self.dirs.iter().find(|d| &d.name == n))
    }

    pub fn check(&self, ctx: &Context) -> Vec<Finding> {
        let mut out = Vec::new();
        let url = ctx.proxy.url();
        let default = self.dirs.iter().find(|d| d.registry.is_none());
        for registry in &ctx.registries {
            if self.find(registry).is_none() && default.is_none() {
                out.push(Finding {
                    file: self.root.clone(),
                    setting: format!("{}/hosts.toml", dir_names(registry)[0]),
                    problem: format!(
                        "absent, and no _default: containerd pulls {registry} straight from {}",
                        upstream_of(registry).authority()
                    ),
                    fix: format!("create it: {}", hosts_toml(&url)),
                    egress_closes: true,
                });
            }
        }
        if default.is_none() {
            out.push(Finding {
                file: self.root.clone(),
                setting: "_default/hosts.toml".into(),
                problem: "absent: an image of a registry with no directory here (ghcr.io/…, quay.io/…) is pulled straight from that registry".into(),
                fix: format!("create it: {}", hosts_toml(&url)),
                egress_closes: true,
            });
        }
        for dir in &self.dirs {
            out.extend(check_dir(ctx, dir));
        }
        out
    }
}

fn check_dir(ctx: &Context, dir: &RegistryDir) -> Vec<Finding> {
    let url = ctx.proxy.url();
    let (who, up) = match &dir.registry {
        Some(r) => (r.clone(), upstream_of(r).authority()),
        None => (
            "each registry without a directory of its own".to_owned(),
            "that registry itself".to_owned(),
        ),
    };
    let Some(f) = &dir.hosts else {
        let problem = match &dir.registry {
            Some(_) => format!(
                "absent (certificates only): containerd pulls {who} straight from {up}, and does not read _default for it"
            ),
            None => "absent (certificates only): an image of a registry with no directory here is pulled straight from that registry".to_owned(),
        };
        return vec![Finding {
            file: dir.path.clone(),
            setting: "hosts.toml".into(),
            problem,
            fix: format!("write hosts.toml: {}", hosts_toml(&url)),
            egress_closes: true,
        }];
    };
    let finding = |setting: &str, problem: String, fix: String, egress_closes: bool| Finding {
        file: f.file.clone(),
        setting: setting.to_owned(),
        problem,
        fix,
        egress_closes,
    };
    let mut out = Vec::new();

    // A file containerd drops: the registry is pulled direct, whatever else it says.
    let mut dropped = false;
    let tables = std::iter::once(("capabilities".to_owned(), &f.root)).chain(
        f.hosts
            .iter()
            .map(|(k, _, e)| (format!("host.{k:?}.capabilities"), e)),
    );
    for (setting, entry) in tables {
        if let Err(unknown) = capabilities(&entry.capabilities) {
            dropped = true;
            out.push(finding(
                &setting,
                format!(
                    "containerd does not know {unknown:?}, drops the whole file and pulls {who} straight from {up}"
                ),
                "capabilities = [\"pull\", \"resolve\"] (the known ones: pull, resolve, push)".into(),
                true,
            ));
        }
    }
    if dropped {
        return out;
    }
    if !f.has_host_table {
        out.push(finding(
            if f.server.is_some() { "server" } else { "host" },
            format!(
                "no [host.\"…\"] table: containerd 1.6 rejects the file (\"invalid `host` tree\") and pulls {who} straight from {up}"
            ),
            format!(
                "add [host.\"{url}\"] with capabilities = [\"pull\", \"resolve\"], and keep server = \"{url}\""
            ),
            true,
        ));
    }

    let role = |e: &Endpoint, kind: Kind| {
        if ctx.proxy.is(e) {
            Role::Proxy
        } else if kind == Kind::DefaultServer
            || dir.registry.as_deref().is_some_and(|r| is_upstream(e, r))
        {
            Role::Upstream
        } else {
            Role::Other
        }
    };
    let mut hosts: Vec<Host> = Vec::new();
    for (key, e, entry) in &f.hosts {
        let setting = format!("host.{key:?}");
        hosts.push(Host {
            role: role(e, Kind::Host),
            endpoint: e.clone(),
            caps: capabilities(&entry.capabilities).unwrap_or(ALL),
            caps_setting: format!("{setting}.capabilities"),
            skip_verify: entry.skip_verify == Some(true),
            skip_verify_setting: format!("{setting}.skip_verify"),
            setting,
            kind: Kind::Host,
        });
    }
    let (server, kind, caps) = match &f.server {
        Some(s) => (
            s.clone(),
            Kind::Server,
            capabilities(&f.root.capabilities).unwrap_or(ALL),
        ),
        // containerd gives the default server every capability, whatever the file says
        None => (
            dir.registry
                .as_deref()
                .map(upstream_of)
                .unwrap_or_else(|| upstream_of("<registry>")),
            Kind::DefaultServer,
            ALL,
        ),
    };
    hosts.push(Host {
        role: role(&server, kind),
        endpoint: server,
        caps,
        caps_setting: "capabilities".into(),
        skip_verify: f.root.skip_verify == Some(true),
        skip_verify_setting: "skip_verify".into(),
        setting: "server".into(),
        kind,
    });

    let shown = |h: &Host| match (h.kind, h.role) {
        (Kind::DefaultServer, _) => up.clone(),
        (_, Role::Upstream) => format!("{} (the registry itself)", h.endpoint.url()),
        (_, Role::Other) => format!("{}, which is not trustgate", h.endpoint.url()),
        (_, Role::Proxy) => h.endpoint.url(),
    };
    let refuse = format!("or refuse this host's egress to {up}");
    for need in [PULL | RESOLVE, PULL] {
        let chain: Vec<&Host> = hosts.iter().filter(|h| h.caps & need == need).collect();
        let Some(first) = chain.first() else { continue };
        let at = chain.iter().position(|h| h.role == Role::Proxy);
        match at {
            Some(p) => {
                for h in &chain[..p] {
                    out.push(finding(
                        &h.setting,
                        format!("comes before trustgate: containerd pulls {who} from {} first", shown(h)),
                        format!("remove it, so that [host.\"{url}\"] comes first"),
                        h.role == Role::Upstream,
                    ));
                }
            }
            None => match hosts.iter().find(|h| h.role == Role::Proxy) {
                Some(px) if px.caps & PULL != 0 && need & RESOLVE != 0 => out.push(finding(
                    &px.caps_setting,
                    format!(
                        "no \"resolve\": containerd resolves tags on {} instead, so a tag moved after signing delivers the new, unsigned content",
                        shown(first)
                    ),
                    "capabilities = [\"pull\", \"resolve\"]".into(),
                    first.role == Role::Upstream,
                )),
                Some(px) => out.push(finding(
                    &px.caps_setting,
                    format!("no \"pull\": containerd never pulls from trustgate, and takes {who} from {}", shown(first)),
                    "capabilities = [\"pull\", \"resolve\"]".into(),
                    first.role == Role::Upstream,
                )),
                None => out.push(finding(
                    &first.setting,
                    format!("no host here is trustgate: containerd pulls {who} from {}", shown(first)),
                    hosts_toml(&url),
                    first.role == Role::Upstream,
                )),
            },
        }
        let after = at.map_or(chain.len(), |p| p + 1);
        for h in chain.iter().skip(after).filter(|h| h.role != Role::Proxy) {
            let (problem, fix) = match h.kind {
                Kind::DefaultServer => (
                    format!("absent: after trustgate refuses, containerd pulls {who} from {up}"),
                    format!("server = \"{url}\" with capabilities = [\"pull\", \"resolve\"] (trustgate again, so a refusal stays one), {refuse}"),
                ),
                Kind::Server => (
                    format!("after trustgate refuses, containerd pulls {who} from {}", shown(h)),
                    format!("server = \"{url}\" with capabilities = [\"pull\", \"resolve\"] (trustgate again, so a refusal stays one), {refuse}"),
                ),
                Kind::Host => (
                    format!("after trustgate refuses, containerd pulls {who} from {}", shown(h)),
                    "remove it".into(),
                ),
            };
            out.push(finding(&h.setting, problem, fix, h.role == Role::Upstream));
        }
    }

    for h in &hosts {
        if h.endpoint.is_loopback() {
            continue;
        }
        if h.skip_verify && (h.caps & PULL != 0) {
            let problem = match h.role {
                Role::Proxy => "containerd does not verify trustgate's certificate: anyone on the network path can answer for it, with unsigned images".to_owned(),
                _ => format!("containerd does not verify the certificate of {}", shown(h)),
            };
            out.push(finding(
                &h.skip_verify_setting,
                problem,
                "remove it; ca = \"<the CA file>\" when the certificate is private".into(),
                h.role == Role::Upstream,
            ));
        }
        if h.role == Role::Proxy && h.endpoint.plain_http == Some(true) && h.caps & PULL != 0 {
            out.push(finding(
                &h.setting,
                "containerd reaches trustgate over plain HTTP: anyone on the network path can answer for it, with unsigned images".into(),
                format!("serve trustgate over TLS and write https://{}", h.endpoint.authority()),
                false,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{dedup, Proxy};
    use super::*;

    const P: &str = "https://trustgate.example.internal:5000";

    fn ctx() -> Context {
        Context::new(
            Proxy::explicit("trustgate.example.internal:5000").unwrap(),
            &[],
        )
    }

    fn dir(name: &str, text: Option<&str>) -> RegistryDir {
        RegistryDir {
            name: name.into(),
            registry: registry_of_dir(name),
            path: format!("certs.d/{name}"),
            hosts: text.map(|t| parse_hosts(&format!("certs.d/{name}/hosts.toml"), t).unwrap()),
        }
    }

    fn check(dirs: Vec<RegistryDir>) -> Vec<Finding> {
        let d = HostsDir {
            root: "certs.d".into(),
            dirs,
        };
        dedup(d.check(&ctx()))
    }

    /// A fixed file for both docker.io and _default.
    fn fixed() -> String {
        format!(
            "server = \"{P}\"\ncapabilities = [\"pull\", \"resolve\"]\n\n[host.\"{P}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        )
    }

    fn settings(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.setting.as_str()).collect()
    }

    #[test]
    fn the_fixed_layout_is_clean() {
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&fixed())),
        ]);
        assert!(f.is_empty(), "{f:#?}");
        // _default alone covers docker.io too
        assert!(check(vec![dir("_default", Some(&fixed()))]).is_empty());
    }

    #[test]
    fn no_hosts_toml_for_a_registry() {
        let f = check(vec![]);
        assert_eq!(
            settings(&f),
            ["docker.io/hosts.toml", "_default/hosts.toml"]
        );
        assert!(f.iter().all(|f| f.egress_closes));
        assert!(
            f[0].problem.contains("registry-1.docker.io"),
            "{}",
            f[0].problem
        );
        // a directory with certificates only hides _default
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", None),
        ]);
        assert_eq!(settings(&f), ["hosts.toml"]);
        assert_eq!(f[0].file, "certs.d/docker.io");
    }

    #[test]
    fn server_alone_is_rejected_by_containerd_1_6() {
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&format!("server = \"{P}\"\n"))),
        ]);
        assert_eq!(settings(&f), ["server"], "{f:#?}");
        assert!(f[0].problem.contains("invalid `host` tree"));
        assert!(f[0].fix.contains(&format!("[host.\"{P}\"]")));
    }

    #[test]
    fn server_pointing_upstream_is_the_fallback() {
        let text = format!(
            "server = \"https://registry-1.docker.io\"\n[host.\"{P}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text)),
        ]);
        assert_eq!(settings(&f), ["server"], "{f:#?}");
        assert!(f[0].problem.starts_with("after trustgate refuses"));
        assert!(f[0].fix.contains(&format!("server = \"{P}\"")));
        assert!(f[0].egress_closes);
        // no server at all: the registry itself, with every capability
        let text = format!(
            "capabilities = [\"push\"]\n[host.\"{P}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text)),
        ]);
        assert_eq!(settings(&f), ["server"], "{f:#?}");
        assert!(f[0].problem.starts_with("absent"));
        // an upstream server that may only push is no fallback
        let text = format!(
            "server = \"https://registry-1.docker.io\"\ncapabilities = [\"push\"]\n[host.\"{P}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        assert!(check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text))
        ])
        .is_empty());
    }

    #[test]
    fn pull_without_resolve_resolves_tags_upstream() {
        let text = format!(
            "server = \"https://registry-1.docker.io\"\n[host.\"{P}\"]\n  capabilities = [\"pull\"]\n"
        );
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text)),
        ]);
        let caps = f
            .iter()
            .find(|f| f.setting == format!("host.\"{P}\".capabilities"))
            .expect("capabilities finding");
        assert!(
            caps.problem.contains("tag moved after signing"),
            "{}",
            caps.problem
        );
        // and the server is still the fallback for digest pulls
        assert!(settings(&f).contains(&"server"));
        // with server = trustgate, resolving there is fine
        let text = format!("server = \"{P}\"\n[host.\"{P}\"]\n  capabilities = [\"pull\"]\n");
        assert!(check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text))
        ])
        .is_empty());
    }

    #[test]
    fn upstream_before_the_proxy() {
        let text = format!(
            "server = \"{P}\"\n[host.\"https://registry-1.docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n[host.\"{P}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text)),
        ]);
        assert_eq!(
            settings(&f),
            ["host.\"https://registry-1.docker.io\""],
            "{f:#?}"
        );
        assert!(f[0].problem.starts_with("comes before trustgate"));
        assert!(f[0].egress_closes);
        // another mirror first is not closed by refusing egress to the upstream
        let text = format!(
            "server = \"{P}\"\n[host.\"https://mirror.gcr.io\"]\n  capabilities = [\"pull\"]\n[host.\"{P}\"]\n"
        );
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text)),
        ]);
        assert_eq!(settings(&f), ["host.\"https://mirror.gcr.io\""], "{f:#?}");
        assert!(!f[0].egress_closes);
    }

    #[test]
    fn skip_verify_and_plain_http() {
        let text = format!(
            "server = \"{P}\"\ncapabilities = [\"pull\", \"resolve\"]\nskip_verify = true\n[host.\"http://trustgate.example.internal:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text)),
        ]);
        let s = settings(&f);
        // http://…:5000 and https://…:5000 are the same server
        assert!(s.contains(&"skip_verify"), "{f:#?}");
        assert!(
            s.contains(&"host.\"http://trustgate.example.internal:5000\""),
            "{f:#?}"
        );
        assert!(f.iter().all(|f| !f.egress_closes));
        // loopback: nothing on a path
        let ctx = Context::new(Proxy::explicit("127.0.0.1:5000").unwrap(), &[]);
        let lo = "http://127.0.0.1:5000";
        let text = format!(
            "server = \"{lo}\"\nskip_verify = true\n[host.\"{lo}\"]\n  skip_verify = true\n"
        );
        let d = HostsDir {
            root: "certs.d".into(),
            dirs: vec![dir("_default", Some(&text))],
        };
        assert!(d.check(&ctx).is_empty());
    }

    #[test]
    fn unknown_capabilities_drop_the_file() {
        let text =
            format!("server = \"{P}\"\n[host.\"{P}\"]\n  capabilities = [\"pul\", \"resolve\"]\n");
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(&text)),
        ]);
        assert_eq!(
            settings(&f),
            [format!("host.\"{P}\".capabilities").as_str()]
        );
        assert!(f[0].problem.contains("drops the whole file"));
    }

    #[test]
    fn no_trustgate_at_all() {
        let text =
            "server = \"https://registry-1.docker.io\"\n[host.\"https://registry-1.docker.io\"]\n";
        let f = check(vec![
            dir("_default", Some(&fixed())),
            dir("docker.io", Some(text)),
        ]);
        assert!(
            f[0].problem.starts_with("no host here is trustgate"),
            "{f:#?}"
        );
    }

    #[test]
    fn the_file_order_of_hosts_is_kept() {
        let text = "[host.\"https://b.example\"]\n[host.\"https://a.example\"]\n[host.\"https://c.example\"]\n";
        let h = parse_hosts("hosts.toml", text).unwrap();
        let keys: Vec<&str> = h.hosts.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "https://b.example",
                "https://a.example",
                "https://c.example"
            ]
        );
    }

    #[test]
    fn invalid_toml_names_the_position() {
        let e = parse_hosts(
            "certs.d/docker.io/hosts.toml",
            "server = \"x\"\n[host.\"y\"\n",
        )
        .unwrap_err();
        assert_eq!(e.file, "certs.d/docker.io/hosts.toml");
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = parse_hosts("h.toml", "capabilities = \"pull\"\n").unwrap_err();
        assert!(e.message.contains("line 1"), "{}", e.message);
    }

    #[test]
    fn directory_names() {
        assert_eq!(
            registry_of_dir("localhost_5000_").as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(registry_of_dir("docker.io").as_deref(), Some("docker.io"));
        assert_eq!(registry_of_dir("_default"), None);
        assert_eq!(
            dir_names("localhost:5000"),
            ["localhost_5000_", "localhost:5000"]
        );
    }

    #[test]
    fn loads_a_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("docker.io")).unwrap();
        std::fs::write(root.path().join("docker.io/hosts.toml"), fixed()).unwrap();
        std::fs::create_dir(root.path().join("_default")).unwrap();
        std::fs::write(root.path().join("_default/hosts.toml"), fixed()).unwrap();
        std::fs::create_dir(root.path().join("quay.io")).unwrap();
        std::fs::write(root.path().join("quay.io/ca.crt"), "").unwrap();
        std::fs::write(root.path().join("stray-file"), "").unwrap();
        let d = load(root.path()).unwrap();
        let names: Vec<&str> = d.dirs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["_default", "docker.io", "quay.io"]);
        let f = d.check(&ctx());
        assert_eq!(settings(&f), ["hosts.toml"]);
        assert!(f[0].file.ends_with("quay.io"));
        let c: Vec<String> = d.candidates().iter().map(Endpoint::authority).collect();
        assert!(c.iter().all(|c| c == "trustgate.example.internal:5000"));
    }
}
