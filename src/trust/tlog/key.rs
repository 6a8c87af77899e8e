//! A transparency log's public key, as a trusted root names it: a DER SubjectPublicKeyInfo.
//!
//! The schemes are those sigstore trusted roots use for their logs (protobuf-specs
//! `PublicKeyDetails`, and sigstore-go `pkg/root/trusted_root.go`, which picks the
//! signature hash from the key): ECDSA P-256 with SHA-256 (Rekor v1, the CT logs), ECDSA
//! P-384 with SHA-384, Ed25519 (Rekor v2 logs, `PKIX_ED25519`), and RSA PKCS#1 v1.5 with
//! SHA-256 of 2048 to 4096 bits (`PKIX_RSA_PKCS1V15_*_SHA256`).

use aws_lc_rs::{digest, signature};
use x509_parser::{prelude::FromDer, public_key::PublicKey, x509::SubjectPublicKeyInfo};

/// id-ecPublicKey (RFC 5480).
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// The P-256 curve (prime256v1).
const OID_P256: &str = "1.2.840.10045.3.1.7";
/// The P-384 curve (secp384r1).
const OID_P384: &str = "1.3.132.0.34";
/// id-Ed25519 (RFC 8410).
const OID_ED25519: &str = "1.3.101.112";
/// rsaEncryption (RFC 8017).
const OID_RSA: &str = "1.2.840.113549.1.1.1";
/// Smallest and largest RSA modulus accepted, in bits.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;
/// C2SP `signed-note.md`: the signature type byte of Ed25519 keys in a key ID.
const NOTE_ALG_ED25519: u8 = 0x01;
/// rekor-tiles `pkg/note`: RSA key IDs use the "undefined" type byte and this identifier.
const NOTE_ALG_UNDEFINED: u8 = 0xff;
const NOTE_RSA_ID: &[u8] = b"PKIX-RSA-PKCS#1v1.5";

/// A log key's signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA over P-256, SHA-256, ASN.1 DER signatures.
    EcdsaP256Sha256,
    /// ECDSA over P-384, SHA-384, ASN.1 DER signatures.
    EcdsaP384Sha384,
    /// Ed25519 (RFC 8032): signs the message itself.
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
}

/// A log's public key.
#[derive(Clone, PartialEq, Eq)]
pub struct LogKey {
    algorithm: Algorithm,
    /// The SubjectPublicKeyInfo's key bits: an uncompressed SEC1 point, the 32-byte Ed25519
    /// key, or a DER PKCS#1 RSAPublicKey.
    public: Vec<u8>,
    /// SHA-256 of the DER SubjectPublicKeyInfo: the Rekor v1 and CT log ID, and (its first
    /// four bytes) the key hint of Rekor v1's checkpoint signatures.
    spki_sha256: [u8; 32],
    /// The DER SubjectPublicKeyInfo (the RSA note key ID hashes it).
    spki: Vec<u8>,
}

/// Why bytes are not a usable log key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a DER SubjectPublicKeyInfo")]
    BadSpki,
    #[error(
        "not a supported log key (ECDSA P-256 or P-384, Ed25519, or RSA of 2048 to 4096 bits)"
    )]
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
        let params = alg.parameters.as_ref();
        let curve = crate::trust::x509::ec_curve(&spki);
        let public = spki.subject_public_key.data.to_vec();
        let algorithm = match alg.algorithm.to_id_string().as_str() {
            OID_EC_PUBLIC_KEY => match curve.as_deref() {
                // SEC1 uncompressed points only (aws-lc-rs also takes them compressed, which
                // no log publishes).
                Some(OID_P256) if public.len() == 65 && public[0] == 0x04 => {
                    Algorithm::EcdsaP256Sha256
                }
                Some(OID_P384) if public.len() == 97 && public[0] == 0x04 => {
                    Algorithm::EcdsaP384Sha384
                }
                Some(OID_P256 | OID_P384) => return Err(KeyError::BadSpki),
                _ => return Err(KeyError::Unsupported),
            },
            // RFC 8410 section 3: the parameters are absent and the key is 32 bytes.
            OID_ED25519 => {
                if params.is_some() || public.len() != 32 {
                    return Err(KeyError::BadSpki);
                }
                Algorithm::Ed25519
            }
            OID_RSA => {
                let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                    return Err(KeyError::BadSpki);
                };
                let bits = bit_length(rsa.modulus);
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(KeyError::Unsupported);
                }
                Algorithm::RsaPkcs1Sha256
            }
            _ => return Err(KeyError::Unsupported),
        };
        let mut spki_sha256 = [0u8; 32];
        spki_sha256.copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
        Ok(LogKey {
            algorithm,
            public,
            spki_sha256,
            spki: der.to_vec(),
        })
    }

    /// The key's signature scheme.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether `sig` is this key's signature over `message` in its scheme: ECDSA (ASN.1 DER)
    /// over the SHA-256 or SHA-384 of `message`, Ed25519 over `message` itself, or RSA
    /// PKCS#1 v1.5 over its SHA-256.
    pub fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            Algorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        signature::UnparsedPublicKey::new(alg, &self.public)
            .verify(message, sig)
            .is_ok()
    }

    /// The SHA-256 of the SubjectPublicKeyInfo (the Rekor v1 and RFC 6962 CT log ID).
    pub fn log_id(&self) -> &[u8; 32] {
        &self.spki_sha256
    }

    /// The key ID of this key's signed-note signatures when the key's name does not enter
    /// it: the first four bytes of the SHA-256 of the DER SubjectPublicKeyInfo, as Rekor v1
    /// signs its checkpoints (`pkg/util/signed_note.go: Sign`). Use [`LogKey::note_key_id`]
    /// for a signature line of a given name.
    pub fn key_hint(&self) -> [u8; 4] {
        let mut hint = [0u8; 4];
        hint.copy_from_slice(&self.spki_sha256[..4]);
        hint
    }

    /// The key ID of this key's signatures in a signed note whose signature line names
    /// `name`: the first four bytes of [`LogKey::note_log_id`].
    pub fn note_key_id(&self, name: &str) -> [u8; 4] {
        let mut id = [0u8; 4];
        id.copy_from_slice(&self.note_log_id(name)[..4]);
        id
    }

    /// The untruncated note key hash of this key under the key name `name`, which a Rekor v2
    /// trusted root gives as the log's `logId.keyId` (rekor-tiles `pkg/note: KeyHash`):
    /// - Ed25519, C2SP `signed-note.md`: SHA-256(name || 0x0A || 0x01 || 32-byte key);
    /// - ECDSA, which signed-note.md leaves to the log: SHA-256 of the DER SPKI (Rekor v1
    ///   and rekor-tiles alike), whatever the name;
    /// - RSA, rekor-tiles: SHA-256(name || 0x0A || 0xFF || "PKIX-RSA-PKCS#1v1.5" || SPKI).
    pub fn note_log_id(&self, name: &str) -> [u8; 32] {
        let (kind, key): (&[u8], &[u8]) = match self.algorithm {
            Algorithm::EcdsaP256Sha256 | Algorithm::EcdsaP384Sha384 => return self.spki_sha256,
            Algorithm::Ed25519 => (&[NOTE_ALG_ED25519], &self.public),
            Algorithm::RsaPkcs1Sha256 => (&[NOTE_ALG_UNDEFINED], &self.spki),
        };
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(name.as_bytes());
        ctx.update(b"\n");
        ctx.update(kind);
        if self.algorithm == Algorithm::RsaPkcs1Sha256 {
            ctx.update(NOTE_RSA_ID);
        }
        ctx.update(key);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// The bit length of a big-endian unsigned integer (DER INTEGER bytes, perhaps with a
/// leading zero byte).
pub(super) fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
    }
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LogKey")
            .field(&self.algorithm)
            .field(&hex::encode(self.spki_sha256))
            .finish()
    }
}
