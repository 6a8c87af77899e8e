//! Helpers shared by the outbound HTTP clients (trust servers in `trust::notary::source`,
//! registries in `upstream`): reading a body under a byte limit, deciding which token realms
//! may see credentials, and turning a transport error into words a user can act on.
//!
//! Every body read from a peer goes through [`read_limited`]: the peer is not trusted, so the
//! bound is the caller's (configured or a documented constant), never the `Content-Length` it
//! announces, and it holds while the body streams.

use std::{error::Error as StdError, fmt, str::FromStr};

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::Url;

/// Why [`read_limited`] gave up.
#[derive(Debug)]
pub enum ReadError {
    /// More than the limit arrived, or was announced.
    TooLarge,
    /// The transport failed while reading (reset, short body, timeout).
    Transport(reqwest::Error),
}

/// The whole body of `response`, refusing more than `limit` bytes whatever `Content-Length`
/// claims: an announced length above the limit fails before reading, and an endless or
/// mis-declared body fails as soon as the limit is passed, so memory stays within `limit`
/// plus one chunk. Time is the caller's to bound (a request timeout).
pub async fn read_limited(response: reqwest::Response, limit: u64) -> Result<Bytes, ReadError> {
    let announced = response.content_length();
    if announced.is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge);
    }
    // Reserve what was announced (within the limit) but never more than a little up front:
    // a lying length must not allocate for it.
    let capacity = announced.unwrap_or(0).min(limit).min(64 << 10);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Transport)?;
        if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Follows at most `max` redirects and never from `https` to `http`: content is checked by
/// digest or signature anyway, but a private image's bytes (or a token request) should not
/// travel in clear because a peer said so. reqwest itself drops `Authorization` when a
/// redirect leaves the host, port or scheme.
pub fn redirect_policy(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let downgrade = attempt
            .previous()
            .last()
            .is_some_and(|prev| prev.scheme() == "https")
            && attempt.url().scheme() == "http";
        if attempt.previous().len() > max {
            attempt.error(format!("more than {max} redirects"))
        } else if downgrade {
            attempt.error("refusing a redirect from https to http")
        } else {
            attempt.follow()
        }
    })
}

/// A token service allowed to receive an upstream's credentials (`token_realms` in the
/// configuration): a URL prefix (`https://auth.docker.io/token`: same scheme, host and port,
/// and a path equal to the prefix's or below it at a `/`), or a host with an optional port
/// (`auth.example.com`: that host on its scheme's default port; `auth.example.com:8443`:
/// that port), on any path.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRealm {
    kind: RealmKind,
    /// As written, for messages.
    text: String,
}

#[derive(Clone, PartialEq, Eq)]
enum RealmKind {
    Prefix(Url),
    Host { host: String, port: Option<u16> },
}

/// Why a `token_realms` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token realm `{text}`: {reason}")]
pub struct TokenRealmError {
    text: String,
    reason: &'static str,
}

// === impl TokenRealm ===

impl TokenRealm {
    /// Whether `realm` (a challenge's realm URL) is this entry's.
    pub fn matches(&self, realm: &Url) -> bool {
        let Some(host) = realm.host_str() else {
            return false;
        };
        match &self.kind {
            RealmKind::Prefix(prefix) => {
                let (want, got) = (prefix.path(), realm.path());
                let below = got.strip_prefix(want).is_some_and(|rest| {
                    rest.is_empty() || want.ends_with('/') || rest.starts_with('/')
                });
                prefix.scheme() == realm.scheme()
                    && prefix.host_str() == Some(host)
                    && prefix.port_or_known_default() == realm.port_or_known_default()
                    && below
            }
            RealmKind::Host { host: want, port } => {
                want.eq_ignore_ascii_case(host)
                    && match port {
                        Some(port) => realm.port_or_known_default() == Some(*port),
                        None => realm.port().is_none(),
                    }
            }
        }
    }

    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for TokenRealm {
    type Err = TokenRealmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| TokenRealmError {
            text: s.to_owned(),
            reason,
        };
        let kind = if s.contains("://") {
            let url = Url::parse(s).map_err(|_| bad("not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(bad("write an http:// or https:// URL with a host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad("a realm must not contain credentials"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(bad("a realm prefix has no query or fragment"));
            }
            RealmKind::Prefix(url)
        } else {
            // A host with an optional port, parsed as the authority of a URL.
            let url = Url::parse(&format!("https://{s}/"))
                .ok()
                .filter(|u| u.username().is_empty() && u.password().is_none())
                .filter(|u| u.path() == "/" && u.query().is_none() && u.fragment().is_none())
                .ok_or_else(|| bad("write a URL prefix or a host with an optional port"))?;
            let host = url.host_str().unwrap_or_default().to_owned();
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            // `Url` drops a port that is the scheme's default; keep what was written.
            let port = match s.rsplit_once(':') {
                Some((_, p)) if !s.ends_with(']') => {
                    Some(p.parse().map_err(|_| bad("the port is not a number"))?)
                }
                _ => None,
            };
            RealmKind::Host { host, port }
        };
        Ok(TokenRealm {
            kind,
            text: s.to_owned(),
        })
    }
}

impl fmt::Debug for TokenRealm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenRealm({:?})", self.text)
    }
}

impl fmt::Display for TokenRealm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A server certificate that rustls refused, split by what the user has to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertFailure {
    /// The certificate has expired: the server's operator must renew it.
    Expired {
        /// rustls' description of the failure.
        detail: String,
    },
    /// Any other refusal (unknown issuer, wrong name, bad signature): usually a private CA
    /// that has to be configured.
    Untrusted {
        /// rustls' description of the failure.
        detail: String,
    },
}

/// Finds a `rustls::Error::InvalidCertificate` anywhere in `err`'s source chain.
///
/// hyper-util and tokio-rustls wrap the TLS error several layers deep, as
/// `io::Error(Other, io::Error(InvalidData, rustls::Error))`; `io::Error::source` skips the
/// wrapped error itself, so `io::Error`s are unwrapped through `get_ref` as well.
pub fn cert_failure(err: &(dyn StdError + 'static)) -> Option<CertFailure> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(rustls::Error::InvalidCertificate(cert_err)) = find_rustls(e) {
            let detail = cert_err.to_string();
            return Some(match cert_err {
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => {
                    CertFailure::Expired { detail }
                }
                _ => CertFailure::Untrusted { detail },
            });
        }
        source = e.source();
    }
    None
}

/// `e` itself, or the innermost error of nested `io::Error`s, as a rustls error.
fn find_rustls<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let mut io = e.downcast_ref::<std::io::Error>();
    while let Some(outer) = io {
        let inner = outer.get_ref()?;
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        io = inner.downcast_ref::<std::io::Error>();
    }
    None
}

/// `err` and all its sources joined with `": "`, for an error's `detail`.
///
/// Callers that format a `reqwest::Error` should strip its URL first (`without_url`): a
/// redirect target may carry signed query parameters that must not end up in logs.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut detail = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        detail = format!("{detail}: {e}");
        source = e.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// The shape hyper-util and tokio-rustls produce.
    fn wrapped(err: rustls::CertificateError) -> io::Error {
        let tls = rustls::Error::InvalidCertificate(err);
        io::Error::other(io::Error::new(io::ErrorKind::InvalidData, tls))
    }

    #[test]
    fn finds_certificate_errors_inside_io_errors() {
        let expired = wrapped(rustls::CertificateError::Expired);
        assert!(matches!(
            cert_failure(&expired),
            Some(CertFailure::Expired { .. })
        ));
        let unknown = wrapped(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            cert_failure(&unknown),
            Some(CertFailure::Untrusted {
                detail: "UnknownIssuer".to_owned()
            })
        );
        let direct = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert!(matches!(
            cert_failure(&direct),
            Some(CertFailure::Untrusted { .. })
        ));
        let other = io::Error::other(rustls::Error::DecryptError);
        assert_eq!(cert_failure(&other), None);
        assert_eq!(cert_failure(&io::Error::other("refused")), None);
    }

    #[test]
    fn token_realms_match_prefixes_and_hosts() {
        let url = |s: &str| Url::parse(s).unwrap();
        let prefix: TokenRealm = "https://auth.docker.io/token".parse().unwrap();
        for ok in [
            "https://auth.docker.io/token",
            "https://auth.docker.io:443/token",
            "https://auth.docker.io/token/sub",
            "https://auth.docker.io/token?scope=x",
        ] {
            assert!(prefix.matches(&url(ok)), "{ok}");
        }
        for bad in [
            "http://auth.docker.io/token",
            "https://auth.docker.io.evil.example/token",
            "https://auth.docker.io:8443/token",
            "https://auth.docker.io/tokenx",
            "https://auth.docker.io/",
            "https://evil.example/token",
            "https://evil.example/https://auth.docker.io/token",
        ] {
            assert!(!prefix.matches(&url(bad)), "{bad}");
        }
        let host: TokenRealm = "auth.example.com".parse().unwrap();
        assert!(host.matches(&url("https://auth.example.com/any/path")));
        assert!(host.matches(&url("https://AUTH.example.com/t")));
        assert!(!host.matches(&url("https://auth.example.com:8443/t")));
        assert!(!host.matches(&url("https://x.auth.example.com/t")));
        let with_port: TokenRealm = "localhost:8443".parse().unwrap();
        assert!(with_port.matches(&url("http://localhost:8443/token")));
        assert!(!with_port.matches(&url("http://localhost:8444/token")));
        let v6: TokenRealm = "[::1]:5001".parse().unwrap();
        assert!(v6.matches(&url("http://[::1]:5001/token")));
        for bad in [
            "",
            "ftp://x/",
            "https://u:p@auth.example/t",
            "https://auth.example/t?x=1",
            "auth.example/path",
            "u@auth.example",
            "auth.example:port",
        ] {
            assert!(bad.parse::<TokenRealm>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chains_are_joined() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let err = Outer(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(error_chain(&err), "outer: refused");
    }
}
