//! Scalar values of the configuration: durations, sizes, URLs and names.
//!
//! Each is parsed inside a serde visitor (see `policy::de`), so a bad value is reported at its
//! own line and column.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use serde::Deserializer;

use crate::policy::de::{deserialize_from_str, FromStrVisitor};

/// An `http://` or `https://` URL with a host and no credentials, query or fragment.
///
/// Kept as written minus trailing `/`, so request paths can be appended. Credentials are
/// refused because URLs end up in logs; use `username` and `password_file`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(Box<str>);

/// Why a configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not `<whole number><ms|s|m|h>`.
    #[error("invalid duration `{0}`: write a whole number and a unit (ms, s, m or h), e.g. `500ms`, `30s`, `5m`, `1h`")]
    Duration(String),
    /// Not `<whole number>[unit]`.
    #[error("invalid size `{0}`: write bytes (`1000000`) or a whole number and a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. `512MiB`, `20GiB`")]
    ByteSize(String),
    /// A duration or size too large to represent.
    #[error("`{0}` is too large")]
    Overflow(String),
    /// Not a usable HTTP(S) URL.
    #[error("invalid URL `{url}`: {reason}")]
    Url {
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not a registry host name.
    #[error("invalid registry name `{0}`: write a lowercase host with an optional port, e.g. `docker.io` or `127.0.0.1:5000`")]
    RegistryName(String),
    /// Not an IP address and port.
    #[error("invalid listen address `{0}`: write an IP address and a port, e.g. `127.0.0.1:5000` or `[::]:5000` (host names are not resolved)")]
    ListenAddress(String),
    /// Not a notary server name.
    #[error("invalid notary server name `{0}`: use letters, digits, `.`, `_` and `-`")]
    ServerName(String),
    /// Not an S3 bucket name.
    #[error("invalid bucket name `{0}`: use 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit")]
    BucketName(String),
    /// Not a usable object key prefix.
    #[error("invalid key prefix `{0}`: use `/`-separated segments of letters, digits, `.`, `_` and `-`, without `.` or `..` segments")]
    KeyPrefix(String),
}

// === durations ===

/// Parses `500ms`, `30s`, `5m`, `1h` or `0s`: one whole number and one unit.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let bad = || ValueError::Duration(s.to_owned());
    let (number, unit) = split_number(s).ok_or_else(bad)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| ValueError::Overflow(s.to_owned()))?;
    Ok(Duration::from_millis(millis))
}

/// Parses a byte count: `1000000`, `512MiB`, `20GiB`, `10GB` (decimal and binary units).
pub fn parse_byte_size(s: &str) -> Result<u64, ValueError> {
    let (number, unit) = split_number(s).ok_or_else(|| ValueError::ByteSize(s.to_owned()))?;
    let multiplier: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(ValueError::ByteSize(s.to_owned())),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| ValueError::Overflow(s.to_owned()))
}

/// Splits a leading whole number from the rest; `None` without one (or when it overflows,
/// which the caller reports as malformed: nobody means 2^64 of anything).
fn split_number(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let number = s[..end].parse().ok()?;
    Some((number, &s[end..]))
}

struct DurationValue(Duration);

impl FromStr for DurationValue {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Self)
    }
}

struct ByteSizeValue(u64);

impl FromStr for ByteSizeValue {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_byte_size(s).map(Self)
    }
}

/// `deserialize_with` for a [`Duration`] written like `30s`.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let visitor = FromStrVisitor::<DurationValue>::new("a duration like `30s`");
    d.deserialize_str(visitor).map(|v| v.0)
}

/// `deserialize_with` for an optional [`Duration`]; absence is handled by `#[serde(default)]`.
pub(crate) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// `deserialize_with` for a byte count written like `20GiB` or `1000000`.
pub(crate) fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let visitor = FromStrVisitor::<ByteSizeValue>::new("a size like `20GiB`");
    d.deserialize_str(visitor).map(|v| v.0)
}

// === listen addresses ===

struct ListenAddress(SocketAddr);

impl FromStr for ListenAddress {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(Self)
            .map_err(|_| ValueError::ListenAddress(s.to_owned()))
    }
}

/// `deserialize_with` for a listen address, with a more helpful error than `SocketAddr`'s.
pub(crate) fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let visitor = FromStrVisitor::<ListenAddress>::new("an address like `127.0.0.1:5000`");
    d.deserialize_str(visitor).map(|v| v.0)
}

// === names ===

struct RegistryName(String);

impl FromStr for RegistryName {
    type Err = ValueError;

    /// A lowercase host (name, IPv4 or bracketed IPv6) with an optional port. Lowercase only,
    /// so that registry names compare as plain strings everywhere.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ValueError::RegistryName(s.to_owned());
        let (host, port) = split_host_port(s).ok_or_else(bad)?;
        let host_ok = if let Some(ip6) = host.strip_prefix('[') {
            ip6.strip_suffix(']').is_some_and(|inner| {
                !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            })
        } else {
            !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
        };
        if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }
}

/// `deserialize_with` for an upstream's `registry` name.
pub(crate) fn registry_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let visitor = FromStrVisitor::<RegistryName>::new("a registry name like `docker.io`");
    d.deserialize_str(visitor).map(|v| v.0)
}

struct ServerName(String);

impl FromStr for ServerName {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
        if s.is_empty() || !s.bytes().all(valid) {
            return Err(ValueError::ServerName(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

/// `deserialize_with` for a notary server's `name` (and a rule's reference to it).
pub(crate) fn server_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let visitor = FromStrVisitor::<ServerName>::new("a notary server name like `docker-hub`");
    d.deserialize_str(visitor).map(|v| v.0)
}

/// Same as [`server_name`], for an optional field.
pub(crate) fn optional_server_name<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    server_name(d).map(Some)
}

struct Repository(String);

impl FromStr for Repository {
    type Err = crate::oci::NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::oci::RepoName::parse(s).map(|_| Self(s.to_owned()))
    }
}

/// `deserialize_with` for an optional repository path, e.g. a rule's `signature_repository`.
pub(crate) fn optional_repository<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    let visitor = FromStrVisitor::<Repository>::new("a repository like `org/signatures`");
    d.deserialize_str(visitor).map(|v| Some(v.0))
}

// === object storage ===

struct BucketName(String);

impl FromStr for BucketName {
    type Err = ValueError;

    /// S3's rules for new buckets, minus the IP-address and `xn--` corner cases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let valid = (3..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && edge(s.as_bytes().first())
            && edge(s.as_bytes().last())
            && !s.contains("..");
        if !valid {
            return Err(ValueError::BucketName(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

/// `deserialize_with` for `storage.s3.bucket`.
pub(crate) fn bucket_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let visitor = FromStrVisitor::<BucketName>::new("a bucket name like `trustgate`");
    d.deserialize_str(visitor).map(|v| v.0)
}

struct KeyPrefix(String);

impl FromStr for KeyPrefix {
    type Err = ValueError;

    /// Empty, or segments safe in any object store's key syntax; leading and trailing `/`
    /// are dropped.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim_matches('/');
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !trimmed.is_empty() && !trimmed.split('/').all(segment_ok) {
            return Err(ValueError::KeyPrefix(s.to_owned()));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

/// `deserialize_with` for `storage.s3.prefix`.
pub(crate) fn key_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let visitor = FromStrVisitor::<KeyPrefix>::new("a key prefix like `prod/trustgate`");
    d.deserialize_str(visitor).map(|v| v.0)
}

/// Splits `host[:port]`, where a bracketed IPv6 host keeps its colons.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let (host, rest) = s.split_at(s.find(']')? + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    })
}

// === impl HttpUrl ===

impl HttpUrl {
    /// The URL, without trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl FromStr for HttpUrl {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| ValueError::Url {
            url: s.to_owned(),
            reason,
        };
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|scheme| lower.starts_with(scheme))
            .ok_or_else(|| bad("the scheme must be http:// or https://"))?;
        let rest = &s[scheme.len()..];
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("it must not have a query or fragment"));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad(
                "credentials in URLs end up in logs; use `username` and `password_file`",
            ));
        }
        match split_host_port(authority) {
            Some((host, port))
                if !host.is_empty() && port.is_none_or(|p| p.parse::<u16>().is_ok()) => {}
            _ => return Err(bad("it needs a host and an optional numeric port")),
        }
        let trimmed = rest.trim_end_matches('/');
        Ok(Self(format!("{scheme}{trimmed}").into()))
    }
}

deserialize_from_str!(HttpUrl, "an http:// or https:// URL");

// An upstream's `token_realms` entry; the type lives with the HTTP clients that use it.
deserialize_from_str!(
    crate::http_client::TokenRealm,
    "a token service URL prefix like `https://auth.example/token` or a host like `auth.example`"
);

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
