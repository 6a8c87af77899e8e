//! dockerd's `daemon.json`, for the legacy image store and the containerd image store alike.
//!
//! dockerd uses `registry-mirrors` for Docker Hub images only, tries them in order, and then
//! Docker Hub itself whenever a mirror fails, a refusal included. No setting turns that
//! fallback off, and an image named with another registry (`ghcr.io/…`) goes straight to it.
//! So dockerd enforces nothing on its own: only a network rule that refuses its egress to the
//! registries does (or image references on trustgate's host, which this file cannot show).
//! Beyond that, what matters here is how dockerd talks to trustgate (`insecure-registries`, a
//! plain `http://` mirror) and whether its traffic leaves through an HTTP proxy (`proxies`),
//! which a node firewall does not see. `allow-nondistributable-artifacts` and
//! `insecure-registries` for other registries are not bypasses: they touch pushes and direct
//! pulls that are bypasses already.

use std::path::Path;

use serde::Deserialize;

use super::{
    endpoint::{cidr_contains, Endpoint},
    read_text, Context, Finding, InputError,
};

/// The parts of daemon.json that decide where pulls go.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DaemonJson {
    pub registry_mirrors: Option<Vec<String>>,
    pub insecure_registries: Option<Vec<String>>,
    pub proxies: Option<Proxies>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Proxies {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

/// A parsed daemon.json.
#[derive(Debug)]
pub struct Daemon {
    pub file: String,
    pub config: DaemonJson,
    /// `registry-mirrors`, parsed, in order.
    pub mirrors: Vec<Endpoint>,
}

pub fn load(path: &Path) -> Result<Daemon, InputError> {
    parse(&path.display().to_string(), &read_text(path)?)
}

/// Parses daemon.json text; `file` names it in errors and findings.
pub fn parse(file: &str, text: &str) -> Result<Daemon, InputError> {
    let config: DaemonJson = if text.trim().is_empty() {
        DaemonJson::default()
    } else {
        serde_json::from_str(text).map_err(|e| {
            let text = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            let message = text.strip_suffix(&at).unwrap_or(&text);
            InputError::new(
                file,
                format!(
                    "line {} column {}: {message} (dockerd does not start)",
                    e.line(),
                    e.column()
                ),
            )
        })?
    };
    let mut mirrors = Vec::new();
    for (i, m) in config.registry_mirrors.iter().flatten().enumerate() {
        // dockerd's own rule: http or https, nothing after the host but "/"
        let lower = m.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        let valid = rest.is_some_and(|r| {
            let r = r.trim_end_matches('/');
            !r.is_empty() && !r.contains(['/', '?', '#', '@'])
        });
        let endpoint = Endpoint::parse(m).filter(|_| valid).ok_or_else(|| {
            InputError::new(
                file,
                format!(
                    "registry-mirrors[{i}]: {m:?} is not a mirror dockerd accepts (http:// or https://, a host, no path): dockerd does not start"
                ),
            )
        })?;
        mirrors.push(endpoint);
    }
    Ok(Daemon {
        file: file.to_owned(),
        config,
        mirrors,
    })
}

impl Daemon {
    /// Mirror entries: what trustgate is when `--proxy` is absent.
    pub fn candidates(&self) -> Vec<Endpoint> {
        self.mirrors.clone()
    }

    pub fn check(&self, ctx: &Context) -> Vec<Finding> {
        let mut out = Vec::new();
        let url = ctx.proxy.url();
        let authority = ctx.proxy.authority();
        let finding = |setting: &str, problem: String, fix: String, egress_closes: bool| Finding {
            file: self.file.clone(),
            setting: setting.to_owned(),
            problem,
            fix,
            egress_closes,
        };
        let refuse = "refuse this host's egress to the registries (docs/clients.md, \"Bypass\")";

        let proxy_at = self.mirrors.iter().position(|m| ctx.proxy.is(m));
        if self.mirrors.is_empty() {
            out.push(finding(
                "registry-mirrors",
                "absent: Docker Hub images are pulled straight from registry-1.docker.io".into(),
                format!(
                    "\"registry-mirrors\": [\"{url}\"], or name images on trustgate's host ({authority}/library/alpine:3.20), and {refuse}"
                ),
                true,
            ));
        }
        for (i, m) in self.mirrors.iter().enumerate() {
            if ctx.proxy.is(m) {
                continue;
            }
            let when = match proxy_at {
                Some(p) if p < i => "after trustgate refuses, Docker Hub images are pulled from",
                Some(_) => "Docker Hub images are pulled first from",
                None => "Docker Hub images are pulled from",
            };
            out.push(finding(
                &format!("registry-mirrors[{i}]"),
                format!(
                    "{when} {}, which is not trustgate: nothing verifies them",
                    m.url()
                ),
                format!("remove it: \"registry-mirrors\": [\"{url}\"]"),
                false,
            ));
        }
        if let Some(p) = proxy_at {
            let m = &self.mirrors[p];
            out.push(finding(
                "registry-mirrors",
                "when trustgate refuses an image (or cannot be reached), dockerd pulls it from registry-1.docker.io itself: no dockerd setting stops this fallback".into(),
                format!(
                    "{refuse}; or name images on trustgate's host ({authority}/library/alpine:3.20) instead of using the mirror"
                ),
                true,
            ));
            if m.plain_http == Some(true) && !m.is_loopback() {
                out.push(finding(
                    &format!("registry-mirrors[{p}]"),
                    "dockerd reaches trustgate over plain HTTP: anyone on the network path can answer for it, with unsigned images".into(),
                    format!(
                        "serve trustgate over TLS and write \"https://{}\" (its CA in /etc/docker/certs.d/{}/ca.crt if private)",
                        m.authority(),
                        m.authority()
                    ),
                    false,
                ));
            }
        }
        out.push(finding(
            "registry-mirrors",
            "applies to Docker Hub images only: an image named with another registry (ghcr.io/…, quay.io/…) is pulled straight from that registry".into(),
            format!(
                "name those images on trustgate's host ({authority}/<repository>, trustgate's default upstream), and {refuse}"
            ),
            true,
        ));

        for (i, entry) in self.config.insecure_registries.iter().flatten().enumerate() {
            let hit = ctx.proxy.endpoints.iter().find(|p| {
                !p.is_loopback()
                    && (Endpoint::parse(entry).is_some_and(|e| e.same_server(p))
                        || p.ip().is_some_and(|ip| cidr_contains(entry, ip)))
            });
            if let Some(p) = hit {
                out.push(finding(
                    &format!("insecure-registries[{i}]"),
                    format!(
                        "{entry:?} covers trustgate ({}): dockerd accepts plain HTTP and any certificate from it, so anyone on the network path can answer for it with unsigned images",
                        p.authority()
                    ),
                    format!(
                        "remove it; serve trustgate over TLS with a certificate dockerd trusts (its CA in /etc/docker/certs.d/{}/ca.crt)",
                        p.authority()
                    ),
                    false,
                ));
            }
        }

        if let Some(proxies) = &self.config.proxies {
            for (key, value) in [
                ("proxies.https-proxy", &proxies.https_proxy),
                ("proxies.http-proxy", &proxies.http_proxy),
            ] {
                if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                    out.push(finding(
                        key,
                        format!(
                            "dockerd sends its registry traffic through {value}: a node firewall that refuses registry egress does not see the fallback to Docker Hub, which leaves through that proxy"
                        ),
                        format!(
                            "make that proxy refuse the registries (allow only what dockerd needs besides them), or remove the setting; keep trustgate ({authority}) in proxies.no-proxy"
                        ),
                        false,
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{dedup, Proxy};
    use super::*;

    fn ctx() -> Context {
        Context::new(
            Proxy::explicit("trustgate.example.internal:5000").unwrap(),
            &[],
        )
    }

    fn settings(text: &str) -> Vec<(String, bool)> {
        let d = parse("daemon.json", text).unwrap();
        dedup(d.check(&ctx()))
            .into_iter()
            .map(|f| (f.setting, f.egress_closes))
            .collect()
    }

    #[test]
    fn no_mirror_is_a_direct_pull() {
        let s = settings("{}");
        assert!(s.contains(&("registry-mirrors".into(), true)), "{s:?}");
        let f = parse("daemon.json", "{}").unwrap().check(&ctx());
        assert!(f[0].problem.starts_with("absent"));
        assert!(f[0]
            .fix
            .contains("\"registry-mirrors\": [\"https://trustgate.example.internal:5000\"]"));
    }

    #[test]
    fn a_mirror_that_is_not_trustgate_is_reported_and_not_closed_by_egress() {
        let s = settings(
            r#"{"registry-mirrors": ["https://mirror.gcr.io", "https://trustgate.example.internal:5000"]}"#,
        );
        assert!(s.contains(&("registry-mirrors[0]".into(), false)), "{s:?}");
        // the fallback and the Docker-Hub-only scope are closed by refused egress
        assert!(s
            .iter()
            .filter(|(k, _)| k == "registry-mirrors")
            .all(|(_, closes)| *closes));
    }

    #[test]
    fn the_proxy_as_mirror_still_falls_back_and_only_covers_docker_hub() {
        let d = parse(
            "daemon.json",
            r#"{"registry-mirrors": ["https://trustgate.example.internal:5000/"]}"#,
        )
        .unwrap();
        let f = d.check(&ctx());
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|f| f.egress_closes));
        assert!(f[0].problem.contains("registry-1.docker.io itself"));
        assert!(f[1].problem.contains("Docker Hub images only"));
    }

    #[test]
    fn insecure_trustgate_and_plain_http_are_weaknesses() {
        let s = settings(
            r#"{"registry-mirrors": ["http://trustgate.example.internal:5000"],
                "insecure-registries": ["trustgate.example.internal:5000", "10.0.0.0/8"]}"#,
        );
        assert!(s.contains(&("registry-mirrors[0]".into(), false)), "{s:?}");
        assert!(
            s.contains(&("insecure-registries[0]".into(), false)),
            "{s:?}"
        );
        // a CIDR covers trustgate when trustgate is an address in it
        let ctx = Context::new(Proxy::explicit("10.1.2.3:5000").unwrap(), &[]);
        let d = parse(
            "daemon.json",
            r#"{"registry-mirrors": ["https://10.1.2.3:5000"], "insecure-registries": ["10.0.0.0/8"]}"#,
        )
        .unwrap();
        assert!(d
            .check(&ctx)
            .iter()
            .any(|f| f.setting == "insecure-registries[0]"));
        // loopback: nothing on a path to answer for it
        let ctx = Context::new(Proxy::explicit("127.0.0.1:5000").unwrap(), &[]);
        let d = parse(
            "daemon.json",
            r#"{"registry-mirrors": ["http://127.0.0.1:5000"], "insecure-registries": ["127.0.0.1:5000"]}"#,
        )
        .unwrap();
        assert!(d.check(&ctx).iter().all(|f| f.egress_closes));
    }

    #[test]
    fn an_http_proxy_defeats_a_node_firewall() {
        let s = settings(
            r#"{"registry-mirrors": ["https://trustgate.example.internal:5000"],
                "proxies": {"https-proxy": "http://proxy.example:3128", "no-proxy": "trustgate.example.internal"}}"#,
        );
        assert!(s.contains(&("proxies.https-proxy".into(), false)), "{s:?}");
    }

    #[test]
    fn invalid_input_names_the_position() {
        let e = parse("daemon.json", "{\n  \"registry-mirrors\": \"https://x\"\n}").unwrap_err();
        assert_eq!(e.file, "daemon.json");
        assert!(e.message.starts_with("line 2 column"), "{}", e.message);
        let e = parse(
            "daemon.json",
            "{\"registry-mirrors\": [\"trustgate:5000\"]}",
        )
        .unwrap_err();
        assert!(e.message.contains("registry-mirrors[0]"), "{}", e.message);
        let e = parse(
            "daemon.json",
            "{\"registry-mirrors\": [\"https://t:5000/v2\"]}",
        )
        .unwrap_err();
        assert!(e.message.contains("no path"), "{}", e.message);
        let e = parse("daemon.json", "{,}").unwrap_err();
        assert!(e.message.starts_with("line 1 column 2"), "{}", e.message);
    }

    #[test]
    fn the_mirrors_are_the_inferred_proxy() {
        let d = parse(
            "daemon.json",
            r#"{"registry-mirrors": ["https://a.example", "http://b.example:5000"]}"#,
        )
        .unwrap();
        let c: Vec<String> = d.candidates().iter().map(Endpoint::authority).collect();
        assert_eq!(c, ["a.example", "b.example:5000"]);
        let ctx = Context::new(Proxy::inferred(d.candidates()), &[]);
        assert!(d.check(&ctx).iter().all(|f| f.egress_closes));
    }
}
