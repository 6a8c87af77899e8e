//! Registry hosts: the value of containerd's `?ns=` parameter.

use super::excerpt;

/// Longest host (with port) accepted, in bytes; DNS names stop at 253.
const MAX_HOST_LEN: usize = 255;

/// Longest DNS label, in bytes (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A registry host with optional port, such as `docker.io`, `registry.k8s.io` or
/// `localhost:5000`, normalised to lowercase.
///
/// Grammar, following distribution's `domainAndPort`: DNS labels
/// `[a-z0-9]([a-z0-9-]*[a-z0-9])?` joined by `.`, or a bracketed IPv6 literal, then an
/// optional `:port`. Host names are case-insensitive, so the value is lowercased: policy
/// matching then needs only byte equality. The port must be 1..=65535 without leading zeros,
/// so that one registry has one spelling.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryHost(String);

/// Why a string is not a [`RegistryHost`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The host is the empty string.
    #[error("registry host is empty")]
    Empty,
    /// The host is longer than 255 bytes.
    #[error("registry host is {len} bytes long, the limit is {MAX_HOST_LEN}")]
    TooLong {
        /// Length of the rejected host in bytes.
        len: usize,
    },
    /// The host part is neither DNS labels nor a bracketed IPv6 literal.
    #[error("registry host {host:?} is not a DNS name or bracketed IPv6 address")]
    InvalidHost {
        /// The rejected input.
        host: String,
    },
    /// The part after `:` is not a port number.
    #[error("registry host {host:?} has an invalid port")]
    InvalidPort {
        /// The rejected input.
        host: String,
    },
}

// === impl RegistryHost ===

impl RegistryHost {
    /// Validates `s` as `host[:port]` and lowercases it.
    pub fn parse(s: &str) -> Result<Self, HostError> {
        if s.is_empty() {
            return Err(HostError::Empty);
        }
        if s.len() > MAX_HOST_LEN {
            return Err(HostError::TooLong { len: s.len() });
        }
        let (host, port) = split_port(s);
        let host_ok = match host.strip_prefix('[') {
            Some(rest) => rest.strip_suffix(']').is_some_and(is_ipv6_literal),
            None => is_dns_name(host),
        };
        if !host_ok {
            return Err(HostError::InvalidHost { host: excerpt(s) });
        }
        if let Some(port) = port {
            if !is_port(port) {
                return Err(HostError::InvalidPort { host: excerpt(s) });
            }
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The host, lowercase, with its port if one was given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

validated_string!(RegistryHost, HostError);

/// Splits off `:port`; the colons inside `[v6]` are not separators.
fn split_port(s: &str) -> (&str, Option<&str>) {
    let host_end = if s.starts_with('[') {
        s.find(']').map_or(s.len(), |i| i + 1)
    } else {
        s.find(':').unwrap_or(s.len())
    };
    match s[host_end..].strip_prefix(':') {
        Some(port) => (&s[..host_end], Some(port)),
        // Anything after `]` other than `:port` stays in the host and fails validation there.
        None => (s, None),
    }
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            let bytes = label.as_bytes();
            let alnum = |b: &u8| b.is_ascii_alphanumeric();
            !bytes.is_empty()
                && bytes.len() <= MAX_LABEL_LEN
                && bytes.first().is_some_and(alnum)
                && bytes.last().is_some_and(alnum)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        })
}

/// Distribution accepts `\[[a-fA-F0-9:]+\]`; we additionally require the text to be an
/// address, so `[:::]` does not name a registry.
fn is_ipv6_literal(inner: &str) -> bool {
    inner.parse::<std::net::Ipv6Addr>().is_ok()
}

fn is_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && !port.starts_with('0')
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hosts() {
        let cases = [
            ("docker.io", "docker.io"),
            ("registry-1.docker.io", "registry-1.docker.io"),
            ("localhost", "localhost"),
            ("localhost:5000", "localhost:5000"),
            ("Registry.Example.COM:443", "registry.example.com:443"),
            ("10.0.0.1:65535", "10.0.0.1:65535"),
            ("[::1]", "[::1]"),
            ("[FE80::1]:5000", "[fe80::1]:5000"),
            ("a", "a"),
        ];
        for (case, normalised) in cases {
            let host = RegistryHost::parse(case).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(host.as_str(), normalised);
        }
    }

    #[test]
    fn rejects_non_hosts() {
        let cases = [
            ("", "Empty"),
            (".", "InvalidHost"),
            ("docker.io.", "InvalidHost"),
            ("-docker.io", "InvalidHost"),
            ("docker-.io", "InvalidHost"),
            ("docker..io", "InvalidHost"),
            ("docker.io/library", "InvalidHost"),
            ("user@docker.io", "InvalidHost"),
            ("docker_io", "InvalidHost"),
            ("[::1", "InvalidHost"),
            ("[:::]", "InvalidHost"),
            ("[::1]x", "InvalidHost"),
            ("::1", "InvalidHost"),
            (":5000", "InvalidHost"),
            ("localhost:", "InvalidPort"),
            ("localhost:0", "InvalidPort"),
            ("localhost:05000", "InvalidPort"),
            ("localhost:65536", "InvalidPort"),
            ("localhost:5000:1", "InvalidPort"),
            ("localhost:+80", "InvalidPort"),
            ("[::1]:", "InvalidPort"),
        ];
        for (case, expected) in cases {
            let err = RegistryHost::parse(case).expect_err(case);
            assert!(
                format!("{err:?}").starts_with(expected),
                "{case:?}: unexpected {err:?}"
            );
        }
        let long_label = format!("{}.io", "a".repeat(64));
        assert!(matches!(
            RegistryHost::parse(&long_label),
            Err(HostError::InvalidHost { .. })
        ));
        let too_long = format!("{}a", "a.".repeat(128));
        assert!(matches!(
            RegistryHost::parse(&too_long),
            Err(HostError::TooLong { .. })
        ));
    }
}
