//! A transparency log's public key, as a trusted root names it: a DER SubjectPublicKeyInfo.

use aws_lc_rs::{digest, signature};
use x509_parser::{
    oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY, prelude::FromDer, x509::SubjectPublicKeyInfo,
};

/// OID of the P-256 curve (prime256v1).
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// A log's ECDSA P-256 key (Rekor v1 signs its entry timestamps and checkpoints so).
#[derive(Clone, PartialEq, Eq)]
pub struct LogKey {
    /// Uncompressed SEC1 point.
    point: Vec<u8>,
    /// SHA-256 of the DER SubjectPublicKeyInfo: the Rekor log ID, and (its first four bytes)
    /// the key hint of the log's checkpoint signatures.
    spki_sha256: [u8; 32],
}

/// Why bytes are not a usable log key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a DER SubjectPublicKeyInfo")]
    BadSpki,
    #[error("not an ECDSA P-256 key")]
    Unsupported,
}

impl LogKey {
    /// Parses a DER SubjectPublicKeyInfo (a trusted root's `publicKey.rawBytes`, or the body
    /// of a PEM `PUBLIC KEY`).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::BadSpki)?;
        if !rest.is_empty() {
            return Err(KeyError::BadSpki);
        }
        let alg = &spki.algorithm;
        let curve = alg
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| oid.to_id_string());
        if alg.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve.as_deref() != Some(OID_P256) {
            return Err(KeyError::Unsupported);
        }
        let mut spki_sha256 = [0u8; 32];
        spki_sha256.copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
        Ok(LogKey {
            point: spki.subject_public_key.data.to_vec(),
            spki_sha256,
        })
    }

    /// Whether `sig` (ASN.1 DER) is this key's ECDSA P-256 SHA-256 signature over `message`.
    pub fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, sig)
            .is_ok()
    }

    /// The SHA-256 of the SubjectPublicKeyInfo (Rekor's log ID).
    pub fn log_id(&self) -> &[u8; 32] {
        &self.spki_sha256
    }

    /// The key ID of this key's signed-note signatures. C2SP `signed-note.md` leaves the key
    /// ID of non-Ed25519 keys to the log; Rekor v1 uses the first four bytes of the SHA-256
    /// of the DER SubjectPublicKeyInfo (`pkg/util/signed_note.go: Sign`).
    pub fn key_hint(&self) -> [u8; 4] {
        let mut hint = [0u8; 4];
        hint.copy_from_slice(&self.spki_sha256[..4]);
        hint
    }
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LogKey")
            .field(&hex::encode(self.spki_sha256))
            .finish()
    }
}
