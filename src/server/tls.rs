//! Server TLS from PEM files: rustls on aws-lc-rs (the crypto provider used everywhere in
//! trustgate), ALPN `h2` and `http/1.1`.
//!
//! With `auth.client_certificates`, the handshake also asks for a client certificate and
//! verifies it against `ca_file` (webpki: chain, validity, `clientAuth` usage when the
//! certificate names usages). A certificate that does not verify fails the handshake; no
//! certificate fails it only with `required: true`. The listener hands the verified subject
//! to the auth layer as a [`crate::auth::ClientCertificate`].
//!
//! Revocation (`auth.client_certificates.crl_files`), fail closed, with rustls'
//! `WebPkiClientVerifier` (RFC 5280 §6.3 as webpki implements it):
//! - a certificate a CRL lists as revoked fails the handshake;
//! - every certificate of the chain below the trust anchor is checked (not only the client's
//!   own): a revoked intermediate revokes what it issued;
//! - a certificate whose issuer has no CRL among the files fails the handshake (unknown
//!   status is not taken for "not revoked"): with CRLs configured, every issuing CA needs one;
//! - a CRL past its `nextUpdate` fails the handshake of every certificate it covers (a stale
//!   list cannot say a certificate was not revoked since); renew the file and reload.
//!
//! Without `crl_files` nothing is checked for revocation.
//!
//! The files are read when the configuration is built, at start and on every reload
//! ([`SharedTls`]): a renewed certificate or a new CRL applies to the next connection, and
//! a connection keeps the configuration it was accepted with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ClientCertificatesConfig;

/// ALPN protocols offered, most preferred first. Offering h2 lets containerd and Go clients
/// multiplex layer downloads over one connection.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why the server's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds invalid PEM.
    #[error("cannot read TLS certificates from {path}: {source}")]
    Certificates {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("no TLS certificate found in {path}")]
    NoCertificates {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file could not be read, or holds no PKCS#8, PKCS#1 or SEC1 private key.
    #[error("cannot read TLS private key from {path}: {source}")]
    PrivateKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// `auth.client_certificates.ca_file` could not be read, holds invalid PEM or a
    /// certificate rustls cannot use as a trust anchor.
    #[error("cannot read client CA certificates from {path}: {reason}")]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file of `auth.client_certificates.crl_files` could not be read or holds no CRL.
    #[error("cannot read client certificate revocation lists from {path}: {reason}")]
    Crl {
        /// The CRL file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The client certificate verifier could not be built.
    #[error("cannot verify client certificates: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the certificate chain and key (e.g. the key does not match).
    #[error("invalid TLS certificate or key: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS configuration in force: the listener takes it for each connection it accepts,
/// and a reload replaces it whole. Clones share it.
#[derive(Clone)]
pub struct SharedTls(Arc<RwLock<TlsAcceptor>>);

// === impl SharedTls ===

impl SharedTls {
    /// Serves `acceptor` until [`SharedTls::replace`].
    pub fn new(acceptor: TlsAcceptor) -> Self {
        Self(Arc::new(RwLock::new(acceptor)))
    }

    /// The configuration for a connection accepted now (a cheap `Arc` clone).
    pub fn acceptor(&self) -> TlsAcceptor {
        // Only whole acceptors are stored under the lock: a panic cannot leave it torn.
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `acceptor` to connections accepted from now on.
    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
    }
}

impl fmt::Debug for SharedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration holds the private key: say nothing about it.
        f.debug_struct("SharedTls").finish_non_exhaustive()
    }
}

/// Builds a TLS acceptor from a PEM certificate chain (leaf first) and a PEM private key.
///
/// The files are read now; a reload builds a new acceptor (see [`SharedTls`]).
pub fn tls_acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    tls_acceptor_with_clients(cert_path, key_path, None)
}

/// Like [`tls_acceptor`], verifying client certificates as `clients` says (none asked for
/// when `None`).
pub fn tls_acceptor_with_clients(
    cert_path: &Path,
    key_path: &Path,
    clients: Option<&ClientCertificatesConfig>,
) -> Result<TlsAcceptor, TlsError> {
    let cert_error = |source| TlsError::Certificates {
        path: cert_path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(cert_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::PrivateKey {
        path: key_path.to_owned(),
        source,
    })?;
    // An explicit provider: the process-wide default panics when more than one provider is
    // compiled in, which a dependency could change under us.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(clients) => {
            let roots = client_roots(&clients.ca_file)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if clients.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let crls = clients.crls().map_err(|(i, reason)| TlsError::Crl {
                path: clients.crl_files[i].clone(),
                reason,
            })?;
            // Fail closed (see the module documentation): the default checks the whole
            // chain and refuses unknown status; expired CRLs are refused too.
            let verifier = if crls.is_empty() {
                verifier
            } else {
                verifier.with_crls(crls).enforce_revocation_expiration()
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The trust anchors of a PEM bundle (at least one).
fn client_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::ClientCa {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no CERTIFICATE found".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    Ok(roots)
}
