//! notation's trust store (`specs/trust-store-trust-policy.md`, "Trust Store"; notation-go
//! `verifier/truststore`): `x509/{ca,signingAuthority,tsa}/<name>/` under the trust store
//! directory, each file one or more PEM or DER certificates.
//!
//! Where notation-go departs from the specification, this module follows notation-go: a
//! sub-directory in a named store is an error (the specification says it is ignored), a
//! store with no certificate is an error (the specification allows zero), every file is read
//! whatever its extension (the specification names `.pem`, `.crt`, `.cer`), and `ca` and
//! `signingAuthority` stores may hold any CA certificate, not only roots.
//!
//! Departures from notation-go, towards refusing: the store names `.` and `..` are invalid
//! (notation-go's name pattern admits them); at most [`MAX_STORE_FILES`] files of at
//! most [`MAX_CERT_FILE`] bytes; a file that is not a regular file (a FIFO, a socket) is
//! refused like a symlink rather than read; certificate signatures are checked with
//! [`x509::cert_signed_by`], so a self-signed certificate signed with SHA-1 or Ed25519, or
//! with an RSA key under 2048 bits, is not "self-signed" here (Go refuses SHA-1 too).

use std::io;
use std::path::{Path, PathBuf};

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Version;

use super::policy::dn::{go_name_string, go_quote as q};
use crate::trust::x509;

mod read;
#[cfg(test)]
mod tests;

pub use read::parse_certificates;
pub(crate) use read::{read_regular_file, ReadError};

/// Largest certificate file read from a store.
pub const MAX_CERT_FILE: u64 = 1024 * 1024;
/// Files read per store, at most.
pub const MAX_STORE_FILES: usize = 256;

/// A trust store type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    Ca,
    SigningAuthority,
    Tsa,
}

impl StoreKind {
    /// The name in policy values and directory names: `ca`, `signingAuthority`, `tsa`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Ca => "ca",
            StoreKind::SigningAuthority => "signingAuthority",
            StoreKind::Tsa => "tsa",
        }
    }

    /// The type named `name` (exactly, as notation-go compares it).
    pub fn from_name(name: &str) -> Option<StoreKind> {
        match name {
            "ca" => Some(StoreKind::Ca),
            "signingAuthority" => Some(StoreKind::SigningAuthority),
            "tsa" => Some(StoreKind::Tsa),
            _ => None,
        }
    }
}

/// Whether `name` is a valid named store: `[a-zA-Z0-9_.-]+` (notation-go
/// `file.IsValidFileName`), and not `.` or `..`, which that pattern lets through and which
/// would name the type's directory or `x509/` itself.
pub fn is_valid_store_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Why a store could not be used; the message is notation-go's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// A trust store directory (the one holding `x509/`).
#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
}

// === impl TrustStore ===

impl TrustStore {
    /// `dir` is the directory holding `x509/`, or a notation configuration directory holding
    /// `truststore/x509/`. Which one is decided when a store is read: `dir/x509` if it is a
    /// directory, else `dir/truststore/x509`.
    pub fn new(dir: &Path) -> TrustStore {
        TrustStore {
            dir: dir.to_owned(),
        }
    }

    /// The directory holding `x509/`.
    fn root(&self) -> PathBuf {
        if self.dir.join("x509").is_dir() {
            return self.dir.clone();
        }
        let config = self.dir.join("truststore");
        if config.join("x509").is_dir() {
            return config;
        }
        self.dir.clone()
    }

    /// The certificates (DER) of store `name` of `kind`, every one validated for its kind:
    /// `ca` and `signingAuthority` hold CA certificates or self-signed signing certificates,
    /// `tsa` self-signed root CAs.
    ///
    /// notation-go `x509TrustStore.GetCertificates`: the store must be a directory, not a
    /// symlink; its entries are read in name order, each a regular file (not a directory,
    /// not a symlink) of certificates ([`parse_certificates`]) that pass
    /// `ValidateCertificates` (and for `tsa`, `isRootCACertificate`); and there must be at
    /// least one certificate.
    pub fn certificates(&self, kind: StoreKind, name: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let err = |m: String| StoreError(m);
        let kind_name = kind.as_str();
        if !is_valid_store_name(name) {
            return Err(err(format!(
                "trust store name needs to follow [a-zA-Z0-9_.-]+ format, {name} is invalid"
            )));
        }
        let path = self.root().join("x509").join(kind_name).join(name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(err(format!(
                    "the trust store {} of type {} does not exist",
                    q(name),
                    q(kind_name)
                )))
            }
            Err(e) => {
                return Err(err(format!(
                    "failed to access the trust store {} of type {}: {e}",
                    q(name),
                    q(kind_name)
                )))
            }
        };
        if !meta.file_type().is_dir() {
            return Err(err(format!(
                "the trust store {name} of type {kind_name} with path {} is not a regular directory (symlinks are not supported)",
                path.display()
            )));
        }
        let access = |e: io::Error| {
            err(format!(
                "failed to access the trust store {} of type {}: {e}",
                q(name),
                q(kind_name)
            ))
        };
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(access)? {
            let entry = entry.map_err(access)?;
            if entries.len() == MAX_STORE_FILES {
                return Err(err(format!(
                    "the trust store {} of type {} has more than {MAX_STORE_FILES} files",
                    q(name),
                    q(kind_name)
                )));
            }
            let file_type = entry.file_type().map_err(access)?;
            entries.push((entry.file_name(), file_type));
        }
        // Go's os.ReadDir order, so that the first bad file is the one notation names.
        entries.sort_by(|a, b| a.0.cmp(&b.0));

        let mut certificates = Vec::new();
        for (file_name, file_type) in entries {
            let file = file_name.to_string_lossy();
            let not_regular = || {
                err(format!(
                    "trusted certificate {file} in trust store {name} of type {kind_name} is not a regular file (directories or symlinks are not supported)"
                ))
            };
            if !file_type.is_file() {
                return Err(not_regular());
            }
            let unreadable = |e: String| {
                err(format!(
                    "failed to read the trusted certificate {file} in trust store {name} of type {kind_name}: {e}"
                ))
            };
            let bytes = match read_regular_file(&path.join(&file_name), MAX_CERT_FILE) {
                Ok(bytes) => bytes,
                Err(ReadError::NotRegular) => return Err(not_regular()),
                Err(ReadError::NotFound) => return Err(unreadable("the file is gone".into())),
                Err(ReadError::TooLarge(max)) => {
                    return Err(unreadable(format!("the file is larger than {max} bytes")))
                }
                Err(ReadError::Io(e)) => return Err(unreadable(e.to_string())),
            };
            let certs = parse_certificates(&bytes).map_err(unreadable)?;
            validate_certificates(&certs).map_err(|e| {
                err(format!(
                    "failed to validate the trusted certificate {file} in trust store {name} of type {kind_name}: {e}"
                ))
            })?;
            if kind == StoreKind::Tsa {
                for cert in &certs {
                    check_root_ca(cert).map_err(|e| {
                        err(format!(
                            "trusted certificate {file} in trust store {name} of type {kind_name} is invalid: {e}"
                        ))
                    })?;
                }
            }
            certificates.extend(certs);
        }
        if certificates.is_empty() {
            return Err(err(format!(
                "no x509 certificates were found in trust store {} of type {}",
                q(name),
                q(kind_name)
            )));
        }
        Ok(certificates)
    }
}

/// A certificate name as notation-go prints it (Go's `pkix.Name.String()`), or as
/// x509-parser does when Go could not have parsed it.
fn name_string(name: &x509_parser::x509::X509Name<'_>) -> String {
    go_name_string(name).unwrap_or_else(|_| name.to_string())
}

/// notation-go `truststore.ValidateCertificates`: at least one certificate, and each a CA
/// (basicConstraints cA) or signed by its own key (a self-signed signing certificate).
pub fn validate_certificates(certs: &[Vec<u8>]) -> Result<(), String> {
    if certs.is_empty() {
        return Err("input certs cannot be empty".to_owned());
    }
    for der in certs {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("x509: malformed certificate: {e}"))?;
        if !cert.is_ca() && !x509::cert_signed_by(der, der) {
            return Err(format!(
                "certificate with subject {} is not a CA certificate or self-signed signing certificate",
                q(&name_string(cert.subject()))
            ));
        }
    }
    Ok(())
}

/// notation-go `isRootCACertificate`, for `tsa` stores: the certificate may sign
/// certificates (Go `CheckSignatureFrom` on itself: a v3 certificate needs basicConstraints
/// cA, a key usage present must allow keyCertSign), its signature verifies under its own
/// key, and its issuer is its subject, byte for byte.
pub fn check_root_ca(der: &[u8]) -> Result<(), String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("x509: malformed certificate: {e}"))?;
    let subject = name_string(cert.subject());
    let not_root = |why: String| {
        format!(
            "certificate with subject {} is not a root CA certificate: {why}",
            q(&subject)
        )
    };
    let may_not_sign = match cert.basic_constraints() {
        Ok(Some(bc)) => !bc.value.ca,
        Ok(None) => cert.version() == X509Version::V3,
        Err(_) => true,
    };
    let usage_forbids = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.flags != 0 && !ku.value.key_cert_sign(),
        Ok(None) => false,
        Err(_) => true,
    };
    if may_not_sign || usage_forbids {
        return Err(not_root(
            "x509: invalid signature: parent certificate cannot sign this kind of certificate"
                .to_owned(),
        ));
    }
    if !x509::cert_signed_by(der, der) {
        return Err(not_root(
            "x509: the certificate's signature does not verify under its own key".to_owned(),
        ));
    }
    if cert.issuer().as_raw() != cert.subject().as_raw() {
        return Err(not_root(format!(
            "issuer ({}) and subject ({subject}) are not the same",
            name_string(cert.issuer())
        )));
    }
    Ok(())
}
