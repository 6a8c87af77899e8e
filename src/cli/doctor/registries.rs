//! containers-registries.conf (podman, CRI-O, buildah, skopeo: the containers/image library),
//! version 2, with its drop-in directory; a version 1 file is read as containers/image converts
//! it.
//!
//! How containers/image uses it: an image name picks the `[[registry]]` with the longest
//! matching `prefix` (`*.example.com` matches subdomains); none matches, the name's own
//! registry is used as written. A pull then tries the `[[registry.mirror]]` entries in order
//! and the primary `location` last, going on after any error, a refusal included.
//! `mirror-by-digest-only = true` drops every mirror from tag pulls; `pull-from-mirror =
//! "digest-only"` drops one mirror from tag pulls, `"tag-only"` from digest pulls. `blocked =
//! true` refuses the prefix altogether, mirrors too. Drop-in files (`*.conf`, name order)
//! replace a `[[registry]]` with the same prefix and `unqualified-search-registries` when they
//! set it; within one file the first entry for a prefix wins.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    endpoint::{is_upstream, Endpoint},
    read_text, Context, Finding, InputError, Ordered,
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawConf {
    unqualified_search_registries: Option<Vec<String>>,
    registry: Option<Vec<RawRegistry>>,
    aliases: Option<Ordered<String>>,
    short_name_mode: Option<String>,
    credential_helpers: Option<Vec<String>>,
    /// Version 1: `[registries.search]`, `[registries.insecure]`, `[registries.block]`.
    registries: Option<RawV1>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    insecure: Option<bool>,
    blocked: Option<bool>,
    mirror_by_digest_only: Option<bool>,
    mirror: Option<Vec<RawMirror>>,
    pull_from_mirror: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    location: Option<String>,
    insecure: Option<bool>,
    pull_from_mirror: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawV1 {
    search: Option<V1List>,
    insecure: Option<V1List>,
    block: Option<V1List>,
}

#[derive(Debug, Default, Deserialize)]
struct V1List {
    registries: Option<Vec<String>>,
}

/// `pull-from-mirror`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFrom {
    All,
    DigestOnly,
    TagOnly,
}

#[derive(Debug, Clone)]
pub struct Mirror {
    pub location: String,
    pub endpoint: Endpoint,
    pub insecure: bool,
    pub pull_from: PullFrom,
}

/// One `[[registry]]` in effect.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file it comes from.
    pub file: String,
    pub prefix: String,
    /// Empty: a wildcard prefix, the name used as written.
    pub location: String,
    pub endpoint: Option<Endpoint>,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
}

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    /// The main file (or the drop-in directory when there is none), for findings about the
    /// configuration as a whole.
    pub main: String,
    /// Sorted by prefix, one per prefix.
    pub entries: Vec<Entry>,
    /// `unqualified-search-registries` and the file that set it.
    pub search: Option<(Vec<String>, String)>,
    /// `[aliases]` in effect: name, value, file.
    pub aliases: Vec<(String, String, String)>,
    /// The main file is in the version 1 format.
    pub v1: bool,
}

/// One file, parsed and checked as containers/image checks it.
#[derive(Debug, Default)]
struct FileConf {
    entries: Vec<Entry>,
    search: Option<Vec<String>>,
    aliases: Vec<(String, String)>,
    v1: bool,
}

/// `location`/`prefix` as containers/image takes them: trailing `/` trimmed, no scheme.
fn location(file: &str, setting: &str, text: &str) -> Result<String, InputError> {
    let trimmed = text.trim_end_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err(refused(
            file,
            format!("{setting}: {text:?}: URI schemes are not supported"),
        ));
    }
    Ok(trimmed.to_owned())
}

fn refused(file: &str, message: String) -> InputError {
    InputError::new(
        file,
        format!("{message} (containers/image refuses the configuration)"),
    )
}

fn endpoint_of(file: &str, setting: &str, location: &str) -> Result<Endpoint, InputError> {
    Endpoint::parse(location).ok_or_else(|| {
        refused(
            file,
            format!("{setting}: {location:?} is not host[:port][/path]"),
        )
    })
}

/// Parses one file's text; `drop_in` files must be version 2.
fn parse_file(file: &str, text: &str, drop_in: bool) -> Result<FileConf, InputError> {
    let raw: RawConf = toml::from_str(text).map_err(|e| {
        InputError::new(
            file,
            format!(
                "{} (containers/image refuses the configuration)",
                e.to_string().trim_end()
            ),
        )
    })?;
    let v1 = raw.registries.as_ref().is_some_and(|r| {
        [&r.search, &r.insecure, &r.block]
            .iter()
            .any(|l| l.as_ref().is_some_and(|l| l.registries.is_some()))
    });
    let v2 = raw.registry.is_some()
        || raw.unqualified_search_registries.is_some()
        || raw.aliases.is_some()
        || raw.short_name_mode.is_some()
        || raw.credential_helpers.is_some();
    let mut raw_entries = raw.registry.unwrap_or_default();
    let mut search = raw.unqualified_search_registries;
    if v1 {
        if drop_in {
            return Err(refused(
                file,
                "a drop-in file must be in the version 2 format, this one is version 1".into(),
            ));
        }
        if v2 {
            return Err(refused(
                file,
                "mixes the version 1 ([registries.*]) and version 2 formats".into(),
            ));
        }
        // containers/image's conversion: one entry per blocked or insecure registry
        let v1 = raw.registries.unwrap_or_default();
        let list = |l: Option<V1List>| l.and_then(|l| l.registries).unwrap_or_default();
        let mut converted: Vec<RawRegistry> = Vec::new();
        for (name, blocked) in list(v1.block)
            .into_iter()
            .map(|n| (n, true))
            .chain(list(v1.insecure).into_iter().map(|n| (n, false)))
        {
            let i = match converted
                .iter()
                .position(|r| r.location.as_deref() == Some(name.as_str()))
            {
                Some(i) => i,
                None => {
                    converted.push(RawRegistry {
                        prefix: Some(name.clone()),
                        location: Some(name.clone()),
                        ..RawRegistry::default()
                    });
                    converted.len() - 1
                }
            };
            if blocked {
                converted[i].blocked = Some(true);
            } else {
                converted[i].insecure = Some(true);
            }
        }
        raw_entries = converted;
        search = v1.search.and_then(|l| l.registries);
    }

    let mut entries: Vec<Entry> = Vec::new();
    for (i, r) in raw_entries.into_iter().enumerate() {
        let at = format!("registry[{i}]");
        let loc = location(
            file,
            &format!("{at}.location"),
            r.location.as_deref().unwrap_or(""),
        )?;
        let prefix = match r.prefix.as_deref() {
            None | Some("") => {
                if loc.is_empty() {
                    return Err(refused(
                        file,
                        format!("{at}: both location and prefix are unset"),
                    ));
                }
                loc.clone()
            }
            Some(p) => {
                let p = location(file, &format!("{at}.prefix"), p)?;
                if !p.starts_with("*.") && loc.is_empty() {
                    return Err(refused(
                        file,
                        format!("{at}: location is unset and prefix {p:?} is not *.example.com"),
                    ));
                }
                if p.starts_with("*.") && p.contains(['/', '@', ':']) {
                    return Err(refused(
                        file,
                        format!("{at}: wildcard prefix {p:?} must be *.example.com"),
                    ));
                }
                p
            }
        };
        if r.pull_from_mirror.is_some() {
            return Err(refused(
                file,
                format!("registry[\"{prefix}\"].pull-from-mirror: only a mirror may set it"),
            ));
        }
        let mbdo = r.mirror_by_digest_only == Some(true);
        let mut mirrors = Vec::new();
        for (j, m) in r.mirror.unwrap_or_default().into_iter().enumerate() {
            let ms = format!("registry[\"{prefix}\"].mirror[{j}]");
            let mloc = location(
                file,
                &format!("{ms}.location"),
                m.location.as_deref().unwrap_or(""),
            )?;
            if mloc.is_empty() {
                return Err(refused(file, format!("{ms}: mirror location is unset")));
            }
            let pull_from = match m.pull_from_mirror.as_deref() {
                Some(_) if mbdo => {
                    return Err(refused(
                        file,
                        format!("{ms}: pull-from-mirror cannot be set with mirror-by-digest-only on its registry"),
                    ))
                }
                None | Some("") | Some("all") => PullFrom::All,
                Some("digest-only") => PullFrom::DigestOnly,
                Some("tag-only") => PullFrom::TagOnly,
                Some(other) => {
                    return Err(refused(
                        file,
                        format!("{ms}.pull-from-mirror: unsupported value {other:?}"),
                    ))
                }
            };
            mirrors.push(Mirror {
                endpoint: endpoint_of(file, &format!("{ms}.location"), &mloc)?,
                location: mloc,
                insecure: m.insecure == Some(true),
                pull_from,
            });
        }
        let endpoint = if loc.is_empty() {
            None
        } else {
            Some(endpoint_of(file, &format!("{at}.location"), &loc)?)
        };
        // the first entry for a prefix wins within a file
        if entries.iter().any(|e| e.prefix == prefix) {
            continue;
        }
        entries.push(Entry {
            file: file.to_owned(),
            prefix,
            location: loc,
            endpoint,
            insecure: r.insecure == Some(true),
            blocked: r.blocked == Some(true),
            mirror_by_digest_only: mbdo,
            mirrors,
        });
    }
    if let Some(search) = &mut search {
        for s in search.iter_mut() {
            let l = location(file, "unqualified-search-registries", s)?;
            if l.contains('/') || Endpoint::parse(&l).is_none() {
                return Err(refused(
                    file,
                    format!("unqualified-search-registries: {s:?} is not host[:port]"),
                ));
            }
            *s = l;
        }
    }
    Ok(FileConf {
        entries,
        search,
        aliases: raw.aliases.map(|a| a.0).unwrap_or_default(),
        v1,
    })
}

/// Parses a main file and drop-ins (each `(name, text)`, in load order) and merges them as
/// containers/image does.
pub fn parse(
    main: Option<(&str, &str)>,
    drop_ins: &[(String, String)],
    shown_main: &str,
) -> Result<Conf, InputError> {
    let mut conf = Conf {
        main: shown_main.to_owned(),
        ..Conf::default()
    };
    let mut files: Vec<(String, FileConf)> = Vec::new();
    if let Some((name, text)) = main {
        files.push((name.to_owned(), parse_file(name, text, false)?));
    }
    for (name, text) in drop_ins {
        files.push((name.clone(), parse_file(name, text, true)?));
    }
    for (i, (name, f)) in files.into_iter().enumerate() {
        if i == 0 && main.is_some() {
            conf.v1 = f.v1;
        }
        for e in f.entries {
            match conf.entries.iter_mut().find(|c| c.prefix == e.prefix) {
                Some(c) => *c = e,
                None => conf.entries.push(e),
            }
        }
        if let Some(s) = f.search {
            conf.search = Some((s, name.clone()));
        }
        for (alias, value) in f.aliases {
            conf.aliases.retain(|(a, _, _)| a != &alias);
            if !value.is_empty() {
                conf.aliases.push((alias, value, name.clone()));
            }
        }
    }
    conf.entries.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    Ok(conf)
}

/// Reads `main` (and `FILE.d` beside it when `drop_in_dir` is not given) and the drop-ins.
/// `main` may be a directory: one holding `registries.conf` (as /etc/containers does) stands
/// for that file and its `registries.conf.d`; any other is a drop-in directory by itself.
pub fn load(main: Option<&Path>, drop_in_dir: Option<&Path>) -> Result<Conf, InputError> {
    match main {
        Some(m) if m.is_dir() => {
            let file = m.join("registries.conf");
            if file.is_file() {
                let dir = m.join("registries.conf.d");
                load_files(
                    Some(&file),
                    drop_in_dir.or(Some(&dir)),
                    drop_in_dir.is_some(),
                )
            } else {
                load_files(None, Some(drop_in_dir.unwrap_or(m)), true)
            }
        }
        _ => load_files(main, drop_in_dir, drop_in_dir.is_some()),
    }
}

fn load_files(
    main: Option<&Path>,
    drop_in_dir: Option<&Path>,
    explicit: bool,
) -> Result<Conf, InputError> {
    let main_text = match main {
        Some(p) => Some((p.display().to_string(), read_text(p)?)),
        None => None,
    };
    let dir: Option<PathBuf> = match (drop_in_dir, main) {
        (Some(d), _) => Some(d.to_path_buf()),
        (None, Some(m)) => {
            let mut d = m.as_os_str().to_owned();
            d.push(".d");
            Some(PathBuf::from(d))
        }
        (None, None) => None,
    };
    let mut drop_ins = Vec::new();
    if let Some(dir) = dir {
        let shown = dir.display().to_string();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                let mut paths = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|e| InputError::new(&shown, e.to_string()))?;
                    let path = entry.path();
                    let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                    if !is_dir && path.extension().is_some_and(|e| e == "conf") {
                        paths.push(path);
                    }
                }
                paths.sort();
                for p in paths {
                    drop_ins.push((p.display().to_string(), read_text(&p)?));
                }
            }
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(InputError::new(shown, e.to_string())),
        }
    }
    let shown_main = match (main, drop_in_dir) {
        (Some(m), _) => m.display().to_string(),
        (None, Some(d)) => d.display().to_string(),
        (None, None) => String::new(),
    };
    parse(
        main_text.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        &drop_ins,
        &shown_main,
    )
}

/// Whether `reference` (a registry, repository or image name) matches `prefix`, and how long
/// the match is, as containers/image decides it.
fn prefix_match(reference: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        // ".example.com" somewhere in the host part, then the end or a separator
        let i = reference.find(domain)?;
        if reference[..i].contains('/') {
            return None;
        }
        let end = i + domain.len();
        return match reference.as_bytes().get(end) {
            None | Some(b':' | b'/' | b'@') => Some(prefix.len()),
            _ => None,
        };
    }
    if reference == prefix {
        return Some(prefix.len());
    }
    let rest = reference.strip_prefix(prefix)?;
    matches!(rest.as_bytes().first(), Some(b':' | b'/' | b'@')).then_some(prefix.len())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Proxy,
    Upstream,
    Other,
}

struct Source<'a> {
    setting: String,
    shown: String,
    role: Role,
    mirror: Option<&'a Mirror>,
}

impl Conf {
    /// The entry governing `reference`.
    fn find(&self, reference: &str) -> Option<&Entry> {
        let mut best: Option<(&Entry, usize)> = None;
        for e in &self.entries {
            if let Some(n) = prefix_match(reference, &e.prefix) {
                if best.is_none_or(|(_, b)| n > b) {
                    best = Some((e, n));
                }
            }
        }
        best.map(|(e, _)| e)
    }

    /// Mirrors and rewritten locations: what trustgate is when `--proxy` is absent.
    pub fn candidates(&self) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for e in &self.entries {
            let host = registry_host(&e.prefix);
            let own = |ep: &Endpoint| host.is_some_and(|h| is_upstream(ep, h));
            out.extend(
                e.mirrors
                    .iter()
                    .map(|m| &m.endpoint)
                    .filter(|m| !own(m))
                    .cloned(),
            );
            if let Some(ep) = e.endpoint.as_ref().filter(|ep| !own(ep)) {
                out.push(ep.clone());
            }
        }
        out
    }

    pub fn check(&self, ctx: &Context) -> Vec<Finding> {
        let mut out = Vec::new();
        let proxy = ctx.proxy.authority();
        let closes_note = "and refuse egress to the others";
        if self.v1 {
            out.push(Finding {
                file: self.main.clone(),
                setting: "registries".into(),
                problem: "the version 1 format has no mirrors and no location rewrite: every registry is pulled direct".into(),
                fix: format!(
                    "the version 2 format: [[registry]] prefix = \"docker.io\" with location = \"{proxy}\""
                ),
                egress_closes: true,
            });
        }
        for r in &ctx.registries {
            if self.find(&format!("{r}/-")).is_none() {
                out.push(Finding {
                    file: self.main.clone(),
                    setting: format!("registry[\"{r}\"]"),
                    problem: format!(
                        "absent: no [[registry]] covers {r}, so its images are pulled straight from it"
                    ),
                    fix: format!("[[registry]] prefix = \"{r}\" with location = \"{proxy}\""),
                    egress_closes: true,
                });
            }
        }
        out.push(Finding {
            file: self.main.clone(),
            setting: "registry".into(),
            problem: "an image of a registry with no [[registry]] entry (ghcr.io/…, quay.io/…) is pulled straight from that registry: registries.conf has no catch-all".into(),
            fix: format!(
                "a [[registry]] with location = \"{proxy}\" for each registry your images name, {closes_note}"
            ),
            egress_closes: true,
        });
        for e in &self.entries {
            out.extend(check_entry(ctx, e));
        }
        if let Some((search, file)) = &self.search {
            for s in search {
                if self.find(&format!("{s}/-")).is_none() {
                    out.push(Finding {
                        file: file.clone(),
                        setting: "unqualified-search-registries".into(),
                        problem: format!(
                            "short names are tried on {s}, which no [[registry]] covers: pulled straight from it"
                        ),
                        fix: format!(
                            "[[registry]] prefix = \"{s}\" with location = \"{proxy}\", or drop {s:?} from the list"
                        ),
                        egress_closes: true,
                    });
                }
            }
        }
        for (alias, value, file) in &self.aliases {
            if self.find(value).is_none() {
                let host = registry_host(value).unwrap_or(value);
                out.push(Finding {
                    file: file.clone(),
                    setting: format!("aliases.{alias:?}"),
                    problem: format!(
                        "resolves to {value}, and no [[registry]] covers {host}: pulled straight from it"
                    ),
                    fix: format!("[[registry]] prefix = \"{host}\" with location = \"{proxy}\""),
                    egress_closes: true,
                });
            }
        }
        out
    }
}

/// The registry part of a prefix or name; `None` for a wildcard.
fn registry_host(prefix: &str) -> Option<&str> {
    if prefix.starts_with("*.") {
        return None;
    }
    prefix.split('/').next()
}

fn check_entry(ctx: &Context, e: &Entry) -> Vec<Finding> {
    if e.blocked {
        return Vec::new();
    }
    let proxy = ctx.proxy.authority();
    let host = registry_host(&e.prefix);
    let at = format!("registry[\"{}\"]", e.prefix);
    let role = |ep: &Endpoint| {
        if ctx.proxy.is(ep) {
            Role::Proxy
        } else if host.is_some_and(|h| is_upstream(ep, h)) {
            Role::Upstream
        } else {
            Role::Other
        }
    };
    let show = |location: &str, role: Role| match role {
        Role::Proxy => location.to_owned(),
        Role::Upstream => format!("{location} (the registry itself)"),
        Role::Other => format!("{location}, which is not trustgate"),
    };
    let primary = match &e.endpoint {
        Some(ep) => {
            let r = role(ep);
            Source {
                setting: format!("{at}.location"),
                shown: show(&e.location, r),
                role: r,
                mirror: None,
            }
        }
        None => Source {
            setting: format!("{at}.location"),
            shown: "the registry named in the image (no location)".into(),
            role: Role::Upstream,
            mirror: None,
        },
    };
    let mirrors: Vec<Source> = e
        .mirrors
        .iter()
        .map(|m| {
            let r = role(&m.endpoint);
            Source {
                setting: format!("{at}.mirror[\"{}\"]", m.location),
                shown: show(&m.location, r),
                role: r,
                mirror: Some(m),
            }
        })
        .collect();
    let finding = |setting: &str, problem: String, fix: String, egress_closes: bool| Finding {
        file: e.file.clone(),
        setting: setting.to_owned(),
        problem,
        fix,
        egress_closes,
    };
    let rewrite =
        format!("location = \"{proxy}\" (trustgate as the primary: nothing to fall back to)");
    let mut out = Vec::new();

    for tags in [true, false] {
        let mut chain: Vec<&Source> = mirrors
            .iter()
            .filter(|s| {
                let m = s.mirror.expect("a mirror");
                if tags {
                    !e.mirror_by_digest_only && m.pull_from != PullFrom::DigestOnly
                } else {
                    m.pull_from != PullFrom::TagOnly
                }
            })
            .collect();
        chain.push(&primary);
        let first = chain[0];
        let kind = if tags { "tag" } else { "digest" };
        let pos = chain.iter().position(|s| s.role == Role::Proxy);
        match pos {
            Some(p) => {
                for s in &chain[..p] {
                    out.push(finding(
                        &s.setting,
                        format!(
                            "comes before trustgate: containers/image pulls {} from {} first",
                            e.prefix, s.shown
                        ),
                        "remove it".into(),
                        s.role == Role::Upstream,
                    ));
                }
            }
            None => {
                let skipped = mirrors.iter().find(|s| s.role == Role::Proxy);
                match skipped {
                    Some(_) if tags && e.mirror_by_digest_only => out.push(finding(
                        &format!("{at}.mirror-by-digest-only"),
                        format!(
                            "true: tag pulls skip every mirror, trustgate too, and go to {}",
                            first.shown
                        ),
                        format!("remove it, or {rewrite}"),
                        first.role == Role::Upstream,
                    )),
                    Some(s) => {
                        let value = if tags { "digest-only" } else { "tag-only" };
                        out.push(finding(
                            &format!("{}.pull-from-mirror", s.setting),
                            format!(
                                "\"{value}\": {kind} pulls skip trustgate and go to {}",
                                first.shown
                            ),
                            format!("remove it (or \"all\"), or {rewrite}"),
                            first.role == Role::Upstream,
                        ));
                    }
                    None => out.push(finding(
                        &first.setting,
                        format!(
                            "no trustgate mirror or location: containers/image pulls {} from {}",
                            e.prefix, first.shown
                        ),
                        rewrite.clone(),
                        first.role == Role::Upstream,
                    )),
                }
            }
        }
        let after = pos.map_or(chain.len(), |p| p + 1);
        for s in chain.iter().skip(after).filter(|s| s.role != Role::Proxy) {
            let (problem, fix) = if s.mirror.is_some() {
                (
                    format!(
                        "after trustgate refuses, containers/image pulls {} from {}",
                        e.prefix, s.shown
                    ),
                    "remove it".to_owned(),
                )
            } else {
                (
                    format!(
                        "blocked = false: after trustgate refuses, containers/image pulls {} from the primary location, {}",
                        e.prefix, s.shown
                    ),
                    format!("{rewrite}, or refuse this host's egress to {}", e.location),
                )
            };
            out.push(finding(&s.setting, problem, fix, s.role == Role::Upstream));
        }
    }

    let insecure = |ep: &Endpoint| !ep.is_loopback();
    match &e.endpoint {
        Some(ep) if e.insecure && primary.role == Role::Proxy && insecure(ep) => out.push(finding(
            &format!("{at}.insecure"),
            "containers/image accepts plain HTTP and any certificate from trustgate: anyone on the network path can answer for it, with unsigned images".into(),
            format!("remove it; serve trustgate over TLS (its CA in /etc/containers/certs.d/{}/ca.crt if private)", ep.authority()),
            false,
        )),
        Some(_) if e.insecure && primary.role == Role::Upstream => out.push(finding(
            &format!("{at}.insecure"),
            format!("the pull from {} accepts plain HTTP and any certificate", primary.shown),
            format!("remove it, and {rewrite}"),
            true,
        )),
        _ => {}
    }
    for (m, s) in e.mirrors.iter().zip(&mirrors) {
        if m.insecure && s.role == Role::Proxy && insecure(&m.endpoint) {
            out.push(finding(
                &format!("{}.insecure", s.setting),
                "containers/image accepts plain HTTP and any certificate from trustgate: anyone on the network path can answer for it, with unsigned images".into(),
                format!("remove it; serve trustgate over TLS (its CA in /etc/containers/certs.d/{}/ca.crt if private)", m.endpoint.authority()),
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

    const P: &str = "trustgate.example.internal:5000";

    fn ctx() -> Context {
        Context::new(Proxy::explicit(P).unwrap(), &[])
    }

    fn check(text: &str) -> Vec<Finding> {
        let conf = parse(Some(("registries.conf", text)), &[], "registries.conf").unwrap();
        dedup(conf.check(&ctx()))
            .into_iter()
            .filter(|f| f.setting != "registry") // the catch-all, always there
            .collect()
    }

    fn settings(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.setting.as_str()).collect()
    }

    #[test]
    fn the_rewrite_is_clean_but_for_the_missing_catch_all() {
        let text = format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\n");
        assert!(check(&text).is_empty(), "{:#?}", check(&text));
        let conf = parse(Some(("r.conf", &text)), &[], "r.conf").unwrap();
        let all = conf.check(&ctx());
        assert_eq!(settings(&all), ["registry"]);
        assert!(all[0].egress_closes);
        // trustgate as primary and as mirror: still clean
        let text = format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\n[[registry.mirror]]\nlocation = \"{P}\"\npull-from-mirror = \"digest-only\"\n");
        assert!(check(&text).is_empty());
    }

    #[test]
    fn no_mirror() {
        let f = check("unqualified-search-registries = [\"docker.io\"]\n");
        assert_eq!(
            settings(&f),
            ["registry[\"docker.io\"]", "unqualified-search-registries"]
        );
        let f = check("[[registry]]\nlocation = \"docker.io\"\n");
        assert_eq!(settings(&f), ["registry[\"docker.io\"].location"]);
        assert!(f[0].problem.starts_with("no trustgate mirror"));
        assert!(f[0].egress_closes);
    }

    #[test]
    fn the_primary_location_is_the_fallback() {
        let text = format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{P}\"\n");
        let f = check(&text);
        assert_eq!(settings(&f), ["registry[\"docker.io\"].location"], "{f:#?}");
        assert!(f[0]
            .problem
            .starts_with("blocked = false: after trustgate refuses"));
        assert!(f[0].fix.contains(&format!("location = \"{P}\"")));
        assert!(f[0].egress_closes);
    }

    #[test]
    fn digest_only_mirrors_leave_tags_to_the_primary() {
        for text in [
            format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"{P}\"\n"),
            format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{P}\"\npull-from-mirror = \"digest-only\"\n"),
        ] {
            let f = check(&text);
            let s = settings(&f);
            assert!(
                s.contains(&"registry[\"docker.io\"].mirror-by-digest-only")
                    || s.contains(&format!("registry[\"docker.io\"].mirror[\"{P}\"].pull-from-mirror").as_str()),
                "{f:#?}"
            );
            assert!(f.iter().any(|f| f.problem.contains("tag pulls skip")), "{f:#?}");
            assert!(s.contains(&"registry[\"docker.io\"].location"));
        }
        let text = format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{P}\"\npull-from-mirror = \"tag-only\"\n");
        let f = check(&text);
        assert!(
            f.iter().any(|f| f
                .problem
                .starts_with("\"tag-only\": digest pulls skip trustgate")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_mirror_that_is_not_trustgate() {
        let text = format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\n[[registry.mirror]]\nlocation = \"mirror.gcr.io\"\n");
        let f = check(&text);
        assert_eq!(
            settings(&f),
            ["registry[\"docker.io\"].mirror[\"mirror.gcr.io\"]"]
        );
        assert!(f[0].problem.starts_with("comes before trustgate"));
        assert!(!f[0].egress_closes);
    }

    #[test]
    fn insecure_primary() {
        let text =
            format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\ninsecure = true\n");
        let f = check(&text);
        assert_eq!(settings(&f), ["registry[\"docker.io\"].insecure"]);
        assert!(!f[0].egress_closes);
        let text = format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{P}\"\n");
        let f = check(&text);
        assert!(settings(&f).contains(&"registry[\"docker.io\"].insecure"));
        // loopback trustgate over plain HTTP: fine
        let ctx = Context::new(Proxy::explicit("127.0.0.1:5000").unwrap(), &[]);
        let conf = parse(Some(("r", "[[registry]]\nprefix = \"docker.io\"\nlocation = \"127.0.0.1:5000\"\ninsecure = true\n")), &[], "r").unwrap();
        assert_eq!(settings(&conf.check(&ctx)), ["registry"]);
    }

    #[test]
    fn search_registries_and_aliases_without_trustgate() {
        let text = format!("unqualified-search-registries = [\"docker.io\", \"quay.io\"]\n[aliases]\n\"fedora\" = \"registry.fedoraproject.org/fedora\"\n\"alpine\" = \"docker.io/library/alpine\"\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\n");
        let f = check(&text);
        assert_eq!(
            settings(&f),
            ["unqualified-search-registries", "aliases.\"fedora\""],
            "{f:#?}"
        );
        assert!(f[0].problem.contains("quay.io"));
    }

    #[test]
    fn blocked_refuses_everything() {
        let f = check(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\nblocked = true\n",
        );
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn longest_prefix_and_wildcards() {
        assert_eq!(prefix_match("docker.io/library/x", "docker.io"), Some(9));
        assert_eq!(
            prefix_match("docker.io/library/x", "docker.io/library"),
            Some(17)
        );
        assert_eq!(prefix_match("docker.iox/a", "docker.io"), None);
        assert_eq!(prefix_match("a.b.example.com/x", "*.example.com"), Some(13));
        assert_eq!(prefix_match("example.com/x", "*.example.com"), None);
        assert_eq!(
            prefix_match("evil.com/a.example.com", "*.example.com"),
            None
        );
        // docker.io/library only covers official images
        let text =
            format!("[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"{P}/library\"\n");
        assert_eq!(settings(&check(&text)), ["registry[\"docker.io\"]"]);
    }

    #[test]
    fn drop_ins_replace_by_prefix() {
        let main = "unqualified-search-registries = [\"quay.io\"]\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n";
        let drop = (
            "registries.conf.d/50-trustgate.conf".to_owned(),
            format!("unqualified-search-registries = []\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\n"),
        );
        let conf = parse(Some(("registries.conf", main)), &[drop], "registries.conf").unwrap();
        let f: Vec<Finding> = conf.check(&ctx());
        assert_eq!(settings(&f), ["registry"], "{f:#?}");
        assert_eq!(conf.entries[0].file, "registries.conf.d/50-trustgate.conf");
        // within one file, the first entry for a prefix wins
        let text = format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n");
        assert!(check(&text).is_empty());
    }

    #[test]
    fn version_1_is_converted() {
        let f = check("[registries.search]\nregistries = [\"docker.io\"]\n[registries.insecure]\nregistries = [\"docker.io\"]\n");
        let s = settings(&f);
        assert_eq!(s[0], "registries");
        assert!(s.contains(&"registry[\"docker.io\"].location"), "{f:#?}");
        let e = parse(
            Some((
                "r",
                "[registries.search]\nregistries = []\n[[registry]]\nlocation = \"x\"\n",
            )),
            &[],
            "r",
        )
        .unwrap_err();
        assert!(e.message.contains("mixes"), "{}", e.message);
        let e = parse(
            None,
            &[(
                "d/1.conf".into(),
                "[registries.block]\nregistries = [\"x\"]\n".into(),
            )],
            "d",
        )
        .unwrap_err();
        assert!(e.message.contains("version 2"), "{}", e.message);
    }

    #[test]
    fn what_containers_image_refuses_is_an_input_error() {
        for (text, needle) in [
            ("[[registry]]\nlocation = \"https://docker.io\"\n", "URI schemes"),
            ("[[registry]]\nprefix = \"docker.io\"\n", "location is unset"),
            ("[[registry]]\nlocation = \"x\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"all\"\n", "mirror-by-digest-only"),
            ("[[registry]]\nlocation = \"x\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"sometimes\"\n", "unsupported value"),
            ("[[registry]]\nlocation = \"x\"\npull-from-mirror = \"all\"\n", "only a mirror"),
            ("[[registry]\nlocation = \"x\"\n", "line 1"),
            ("unqualified-search-registries = \"docker.io\"\n", "line 1"),
        ] {
            let e = parse(Some(("registries.conf", text)), &[], "registries.conf").unwrap_err();
            assert_eq!(e.file, "registries.conf");
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn loads_the_drop_in_directory_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        std::fs::write(
            &main,
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("registries.conf.d")).unwrap();
        std::fs::write(
            dir.path().join("registries.conf.d/10-trustgate.conf"),
            format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{P}\"\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("registries.conf.d/README"), "not toml").unwrap();
        let conf = load(Some(&main), None).unwrap();
        assert_eq!(settings(&conf.check(&ctx())), ["registry"]);
        // an explicit drop-in directory that does not exist is an error
        assert!(load(Some(&main), Some(&dir.path().join("nope"))).is_err());
        // the directory holding registries.conf stands for the file and its drop-ins
        let conf = load(Some(dir.path()), None).unwrap();
        assert_eq!(settings(&conf.check(&ctx())), ["registry"]);
        // any other directory is a drop-in directory
        let conf = load(Some(&dir.path().join("registries.conf.d")), None).unwrap();
        assert_eq!(settings(&conf.check(&ctx())), ["registry"]);
        assert!(conf.main.ends_with("registries.conf.d"));
        // the candidates: mirrors and rewritten locations, not the registry itself
        let c: Vec<String> = conf.candidates().iter().map(Endpoint::authority).collect();
        assert_eq!(c, [P]);
    }
}
