//! Registry endpoints as client configurations write them (`https://host:port/path`,
//! `host:port`, `host`), and how they compare: the same server is the same host on the same
//! effective port.

use std::net::IpAddr;

/// One registry server named in a client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `Some(true)` for `http://`, `Some(false)` for `https://`, `None` when the text had no
    /// scheme (every client here then assumes HTTPS).
    pub plain_http: Option<bool>,
    /// Lower case; IPv6 addresses without brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parses `[scheme://][user@]host[:port][/path][?query]`. `None` when no host is left or the
    /// port is not a number.
    pub fn parse(text: &str) -> Option<Endpoint> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let (plain_http, rest) = if lower.starts_with("http://") {
            (Some(true), &text[7..])
        } else if lower.starts_with("https://") {
            (Some(false), &text[8..])
        } else if lower.contains("://") {
            return None;
        } else {
            (None, text)
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return None,
            }
        } else {
            match authority.rsplit_once(':') {
                // more than one colon: a bare IPv6 address
                Some((host, _)) if host.contains(':') => (authority, None),
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return None;
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None => None,
        };
        Some(Endpoint {
            plain_http,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host[:port]`, as image references and registries.conf write it.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// `scheme://host[:port]`, HTTPS unless the text said `http://`.
    pub fn url(&self) -> String {
        let scheme = if self.plain_http == Some(true) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.authority())
    }

    fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.plain_http == Some(true) {
            80
        } else {
            443
        })
    }

    /// The same server: the same host on the same port (a missing port is the scheme's).
    pub fn same_server(&self, other: &Endpoint) -> bool {
        self.host == other.host && self.effective_port() == other.effective_port()
    }

    /// `localhost` or a loopback address: nothing on a network path can answer for it.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || self.ip().is_some_and(|ip| ip.is_loopback())
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// Docker Hub's names: `docker.io` in references, `registry-1.docker.io` the server,
/// `index.docker.io` the legacy name.
const DOCKER_HUB: [&str; 3] = ["docker.io", "registry-1.docker.io", "index.docker.io"];

/// A registry name as references write it: lower case, Docker Hub as `docker.io`.
pub fn canonical_registry(name: &str) -> String {
    let name = name.trim().trim_end_matches('/').to_ascii_lowercase();
    if DOCKER_HUB.contains(&name.as_str()) {
        "docker.io".to_owned()
    } else {
        name
    }
}

/// The server a client reaches for `registry` when nothing redirects it.
pub fn upstream_of(registry: &str) -> Endpoint {
    if canonical_registry(registry) == "docker.io" {
        return Endpoint {
            plain_http: Some(false),
            host: "registry-1.docker.io".to_owned(),
            port: None,
        };
    }
    Endpoint::parse(registry).unwrap_or(Endpoint {
        plain_http: Some(false),
        host: registry.to_owned(),
        port: None,
    })
}

/// Whether `endpoint` is `registry`'s own server (for Docker Hub, any of its names).
pub fn is_upstream(endpoint: &Endpoint, registry: &str) -> bool {
    if canonical_registry(registry) == "docker.io" {
        return DOCKER_HUB.contains(&endpoint.host.as_str()) && endpoint.effective_port() == 443;
    }
    Endpoint::parse(registry).is_some_and(|r| r.same_server(endpoint))
}

/// Whether `cidr` (`a.b.c.d/n`, `x::/n`) contains `ip`.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = cidr.trim().split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_clients_write() {
        let e = Endpoint::parse("https://Trustgate.example.internal:5000/v2/").unwrap();
        assert_eq!(e.host, "trustgate.example.internal");
        assert_eq!(e.port, Some(5000));
        assert_eq!(e.plain_http, Some(false));
        assert_eq!(e.url(), "https://trustgate.example.internal:5000");
        let e = Endpoint::parse("trustgate.example.internal:5000/dockerhub").unwrap();
        assert_eq!(e.authority(), "trustgate.example.internal:5000");
        assert_eq!(e.plain_http, None);
        let e = Endpoint::parse("http://[::1]:5000").unwrap();
        assert_eq!(e.host, "::1");
        assert!(e.is_loopback());
        assert_eq!(e.authority(), "[::1]:5000");
        assert!(Endpoint::parse("ftp://x").is_none());
        assert!(Endpoint::parse("host:port").is_none());
        assert!(Endpoint::parse("").is_none());
    }

    #[test]
    fn same_server_uses_the_scheme_default_port() {
        let a = Endpoint::parse("https://mirror.example").unwrap();
        let b = Endpoint::parse("mirror.example:443").unwrap();
        let c = Endpoint::parse("http://mirror.example").unwrap();
        assert!(a.same_server(&b));
        assert!(!a.same_server(&c));
        assert!(c.same_server(&Endpoint::parse("http://mirror.example:80").unwrap()));
    }

    #[test]
    fn docker_hub_has_three_names() {
        for name in [
            "docker.io",
            "https://registry-1.docker.io",
            "index.docker.io:443",
        ] {
            assert!(
                is_upstream(&Endpoint::parse(name).unwrap(), "docker.io"),
                "{name}"
            );
        }
        assert!(!is_upstream(
            &Endpoint::parse("mirror.gcr.io").unwrap(),
            "docker.io"
        ));
        assert!(is_upstream(
            &Endpoint::parse("https://quay.io").unwrap(),
            "quay.io"
        ));
        assert_eq!(canonical_registry("Index.Docker.io"), "docker.io");
        assert_eq!(
            upstream_of("docker.io").url(),
            "https://registry-1.docker.io"
        );
    }

    #[test]
    fn cidrs() {
        let ip = "10.1.2.3".parse().unwrap();
        assert!(cidr_contains("10.0.0.0/8", ip));
        assert!(!cidr_contains("192.168.0.0/16", ip));
        assert!(cidr_contains("0.0.0.0/0", ip));
        assert!(cidr_contains("fd00::/8", "fd00::1".parse().unwrap()));
        assert!(!cidr_contains("10.0.0.0", ip));
    }
}
