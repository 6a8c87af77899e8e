//! cosign public keys: PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding an ECDSA P-256 key, the
//! scheme cosign's key-based signing uses (ECDSA over SHA-256, ASN.1 DER signatures).

use aws_lc_rs::digest;

use crate::trust::tlog::{self, LogKey};

/// One trusted cosign key: an ECDSA P-256 key, the same kind a transparency log signs with
/// (a Rekor key checks SETs and checkpoints through it too).
#[derive(Clone, PartialEq, Eq)]
pub struct CosignKey {
    /// `sha256:<hex>` of the SPKI DER, to name the key in logs without printing it.
    id: String,
    key: LogKey,
    /// The DER SubjectPublicKeyInfo.
    spki: Vec<u8>,
}

/// Why a PEM file is not a usable cosign key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM `PUBLIC KEY` block")]
    NotPem,
    #[error("the PEM block is {0:?}, expected \"PUBLIC KEY\"")]
    Label(String),
    #[error("not a DER SubjectPublicKeyInfo")]
    BadSpki,
    #[error("not an ECDSA P-256 key (cosign key-based signatures use ECDSA P-256 with SHA-256)")]
    Unsupported,
}

// === impl CosignKey ===

impl CosignKey {
    /// Parses a PEM `PUBLIC KEY`, as `cosign generate-key-pair` writes `cosign.pub`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| KeyError::NotPem)?;
        if pem.label != "PUBLIC KEY" {
            return Err(KeyError::Label(pem.label));
        }
        let key = LogKey::from_spki_der(&pem.contents).map_err(|e| match e {
            tlog::KeyError::BadSpki => KeyError::BadSpki,
            tlog::KeyError::Unsupported => KeyError::Unsupported,
        })?;
        let id = format!(
            "sha256:{}",
            hex::encode(digest::digest(&digest::SHA256, &pem.contents))
        );
        Ok(CosignKey {
            id,
            key,
            spki: pem.contents,
        })
    }

    /// Whether `sig` (ASN.1 DER) is this key's ECDSA P-256 SHA-256 signature over `payload`.
    pub fn verifies(&self, payload: &[u8], sig: &[u8]) -> bool {
        self.key.verifies(payload, sig)
    }

    /// The key's name in messages: the SHA-256 of its SubjectPublicKeyInfo.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The key as a transparency log's key (for a Rekor key: its SETs and checkpoints).
    pub fn log_key(&self) -> &LogKey {
        &self.key
    }

    /// The hex SHA-256 of the SubjectPublicKeyInfo: for a Rekor key, the log ID its bundles
    /// name (`logID`).
    pub fn log_id(&self) -> &str {
        self.id.strip_prefix("sha256:").unwrap_or(&self.id)
    }
}

impl std::fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CosignKey").field(&self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::{
        encoding::AsDer,
        rand::SystemRandom,
        signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING},
    };
    use base64::Engine as _;

    fn pem(label: &str, der: &[u8]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
        .into_bytes()
    }

    fn generated() -> (EcdsaKeyPair, CosignKey) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let key = CosignKey::from_pem(&pem("PUBLIC KEY", spki.as_ref())).unwrap();
        (pair, key)
    }

    #[test]
    fn a_signature_by_the_key_verifies_and_a_changed_payload_does_not() {
        let (pair, key) = generated();
        let sig = pair.sign(&SystemRandom::new(), b"payload").unwrap();
        assert!(key.verifies(b"payload", sig.as_ref()));
        assert!(!key.verifies(b"payloaD", sig.as_ref()));
    }

    #[test]
    fn a_signature_by_another_key_does_not_verify() {
        let (pair, _) = generated();
        let (_, other) = generated();
        let sig = pair.sign(&SystemRandom::new(), b"payload").unwrap();
        assert!(!other.verifies(b"payload", sig.as_ref()));
    }

    #[test]
    fn pem_that_is_not_a_public_key_is_refused() {
        assert_eq!(CosignKey::from_pem(b"nope"), Err(KeyError::NotPem));
        assert!(matches!(
            CosignKey::from_pem(&pem("CERTIFICATE", b"\x30\x00")),
            Err(KeyError::Label(_))
        ));
        assert_eq!(
            CosignKey::from_pem(&pem("PUBLIC KEY", b"\x30\x00")),
            Err(KeyError::BadSpki)
        );
    }
}
