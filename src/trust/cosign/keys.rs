//! cosign public keys: PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding an ECDSA P-256 key, the
//! scheme cosign's key-based signing uses (ECDSA over SHA-256, ASN.1 DER signatures).

use aws_lc_rs::{digest, signature};

use crate::trust::tlog::LogKey;
use x509_parser::{
    oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY, prelude::FromDer, x509::SubjectPublicKeyInfo,
};

/// OID of the P-256 curve (prime256v1), the parameter of an EC public key.
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// One trusted cosign key.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignKey {
    /// Uncompressed SEC1 point.
    point: Vec<u8>,
    /// `sha256:<hex>` of the SPKI DER, to name the key in logs without printing it.
    id: String,
    /// The same key as a transparency log's (a Rekor key checks checkpoints too).
    log_key: LogKey,
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
        let (rest, spki) =
            SubjectPublicKeyInfo::from_der(&pem.contents).map_err(|_| KeyError::BadSpki)?;
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
        let id = format!(
            "sha256:{}",
            hex::encode(digest::digest(&digest::SHA256, &pem.contents))
        );
        let log_key = LogKey::from_spki_der(&pem.contents).map_err(|_| KeyError::Unsupported)?;
        Ok(CosignKey {
            point: spki.subject_public_key.data.to_vec(),
            id,
            log_key,
        })
    }

    /// Whether `sig` (ASN.1 DER) is this key's ECDSA P-256 SHA-256 signature over `payload`.
    pub fn verifies(&self, payload: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(payload, sig)
            .is_ok()
    }

    /// The key's name in messages: the SHA-256 of its SubjectPublicKeyInfo.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as a transparency log's key (for a Rekor key: its SETs and checkpoints).
    pub fn log_key(&self) -> &LogKey {
        &self.log_key
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
