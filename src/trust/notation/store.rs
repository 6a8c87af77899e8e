//! notation's trust store (`specs/trust-store-trust-policy.md`, "Trust Store"; notation-go
//! `verifier/truststore`): `x509/{ca,signingAuthority,tsa}/<name>/` under the trust store
//! directory, each file one or more PEM or DER certificates.

use std::path::{Path, PathBuf};

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

impl TrustStore {
    /// `dir` is the directory holding `x509/`, or a notation configuration directory holding
    /// `truststore/x509/`.
    pub fn new(dir: &Path) -> TrustStore {
        TrustStore {
            dir: dir.to_owned(),
        }
    }

    /// The certificates (DER) of store `name` of `kind`, every one validated for its kind:
    /// `ca` and `signingAuthority` hold CA certificates or self-signed signing certificates,
    /// `tsa` self-signed root CAs.
    pub fn certificates(&self, kind: StoreKind, name: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let _ = (kind, name, &self.dir);
        Err(StoreError("not implemented".into()))
    }
}
