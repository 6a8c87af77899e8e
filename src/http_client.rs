//! Helpers shared by the outbound HTTP clients (trust servers in `trust::notary::source`,
//! registries in `upstream`): turning a transport error into words a user can act on.

use std::error::Error as StdError;

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
    fn chains_are_joined() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let err = Outer(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(error_chain(&err), "outer: refused");
    }
}
