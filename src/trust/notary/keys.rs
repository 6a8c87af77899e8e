//! Public keys, key IDs and signature checks (notary `tuf/data/keys.go`,
//! `tuf/signed/verifiers.go`, `tuf/utils/x509.go`).

use std::fmt;

use aws_lc_rs::{digest, signature};
use serde_json::json;
use time::OffsetDateTime;
use x509_parser::{
    oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519},
    prelude::FromDer,
    x509::SubjectPublicKeyInfo,
};

use super::{canonical::to_canonical, schema::KeyJson};

/// OID of the P-256 curve (prime256v1), the parameter of an EC public key.
const OID_P256: &str = "1.2.840.10045.3.1.7";
/// Signature algorithms over SHA-1 that notary refuses in root certificates.
const SHA1_SIGNATURE_OIDS: [&str; 2] = ["1.2.840.113549.1.1.5", "1.2.840.10045.4.1"];

/// Why a key in metadata cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported key type {0:?}")]
    UnsupportedType(String),
    #[error("{keytype} key is not a valid DER SubjectPublicKeyInfo")]
    BadSpki { keytype: String },
    #[error("{keytype} key holds an unsupported algorithm or curve (only P-256, RSA and Ed25519)")]
    UnsupportedAlgorithm { keytype: String },
    #[error("{keytype} key is not a PEM certificate")]
    BadCertificate { keytype: String },
    #[error("ed25519 key must be 32 bytes, got {0}")]
    BadEd25519(usize),
    #[error("{keytype} key does not hold an {expected} public key")]
    TypeMismatch {
        keytype: String,
        expected: &'static str,
    },
}

/// Why one signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("unknown signature method {0:?}")]
    UnknownMethod(String),
    #[error("method {method} does not fit key type {keytype}")]
    MethodMismatch { method: String, keytype: String },
    #[error("ecdsa signature must be 64 bytes (raw r||s), got {0}")]
    BadEcdsaLength(usize),
    #[error("RSA key of {0} bits is below the 2048-bit minimum")]
    WeakRsa(usize),
    #[error("signature does not verify")]
    Invalid,
}

/// Facts about a root certificate that root validation checks (`ValidateRoot`).
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub common_name: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub sha1_signed: bool,
}

#[derive(Clone)]
enum Material {
    /// Uncompressed P-256 point.
    EcP256(Vec<u8>),
    /// PKCS#1 RSAPublicKey DER, and the modulus size.
    Rsa {
        der: Vec<u8>,
        bits: usize,
    },
    Ed25519(Vec<u8>),
}

/// A verified-usable public key from metadata.
#[derive(Clone)]
pub struct PublicKey {
    keytype: String,
    id: String,
    canonical_id: String,
    material: Material,
    cert: Option<CertInfo>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("keytype", &self.keytype)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

// === impl PublicKey ===

impl PublicKey {
    /// Parses a key from metadata and computes its IDs.
    pub fn from_json(key: &KeyJson) -> Result<Self, KeyError> {
        Self::from_parts(&key.keytype, &key.keyval.public)
    }

    pub fn from_parts(keytype: &str, public: &[u8]) -> Result<Self, KeyError> {
        let id = tuf_key_id(keytype, public);
        let (material, canonical_id, cert) = match keytype {
            "ecdsa" | "rsa" => {
                let material = material_from_spki(keytype, public)?;
                (material, id.clone(), None)
            }
            "ecdsa-x509" | "rsa-x509" => {
                let (spki_der, cert) = parse_certificate(keytype, public)?;
                let material = material_from_spki(keytype, &spki_der)?;
                // CanonicalKeyID: the ID of the bare public key inside the certificate, as an
                // `ecdsa` or `rsa` key over its DER SubjectPublicKeyInfo.
                let bare_type = keytype.trim_end_matches("-x509");
                (material, tuf_key_id(bare_type, &spki_der), Some(cert))
            }
            "ed25519" => {
                if public.len() != 32 {
                    return Err(KeyError::BadEd25519(public.len()));
                }
                (Material::Ed25519(public.to_vec()), id.clone(), None)
            }
            other => return Err(KeyError::UnsupportedType(other.to_owned())),
        };
        // The material must be of the family the key type names.
        let expected = match keytype {
            "ecdsa" | "ecdsa-x509" => Some(("ECDSA", matches!(material, Material::EcP256(_)))),
            "rsa" | "rsa-x509" => Some(("RSA", matches!(material, Material::Rsa { .. }))),
            _ => None,
        };
        if let Some((expected, false)) = expected {
            return Err(KeyError::TypeMismatch {
                keytype: keytype.to_owned(),
                expected,
            });
        }
        Ok(PublicKey {
            keytype: keytype.to_owned(),
            id,
            canonical_id,
            material,
            cert,
        })
    }

    /// The TUF key ID, as listed in metadata.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ID `docker trust inspect` and `notary key list` print: for certificates, the ID of
    /// the public key inside; otherwise the key ID itself.
    pub fn canonical_id(&self) -> &str {
        &self.canonical_id
    }

    pub fn keytype(&self) -> &str {
        &self.keytype
    }

    pub fn certificate(&self) -> Option<&CertInfo> {
        self.cert.as_ref()
    }

    /// Checks one signature over `message` (notary `tuf/signed/verifiers.go`).
    pub fn verify(&self, method: &str, message: &[u8], sig: &[u8]) -> Result<(), SigError> {
        let mismatch = || SigError::MethodMismatch {
            method: method.to_owned(),
            keytype: self.keytype.clone(),
        };
        let (alg, key): (&'static dyn signature::VerificationAlgorithm, &[u8]) =
            match (method, &self.material) {
                ("ecdsa", Material::EcP256(point)) => {
                    // notary's ecdsaVerifier wants raw r||s of 2*ceil(bits/8) bytes, not DER.
                    if sig.len() != 64 {
                        return Err(SigError::BadEcdsaLength(sig.len()));
                    }
                    (&signature::ECDSA_P256_SHA256_FIXED, point)
                }
                ("rsapss" | "pycrypto-pkcs#1 pss", Material::Rsa { der, bits }) => {
                    if *bits < 2048 {
                        return Err(SigError::WeakRsa(*bits));
                    }
                    // PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
                    (&signature::RSA_PSS_2048_8192_SHA256, der)
                }
                ("rsapkcs1v15", Material::Rsa { der, bits }) => {
                    if *bits < 2048 {
                        return Err(SigError::WeakRsa(*bits));
                    }
                    (&signature::RSA_PKCS1_2048_8192_SHA256, der)
                }
                ("eddsa", Material::Ed25519(raw)) => (&signature::ED25519, raw),
                ("ecdsa" | "rsapss" | "pycrypto-pkcs#1 pss" | "rsapkcs1v15" | "eddsa", _) => {
                    return Err(mismatch())
                }
                (other, _) => return Err(SigError::UnknownMethod(other.to_owned())),
            };
        signature::UnparsedPublicKey::new(alg, key)
            .verify(message, sig)
            .map_err(|_| SigError::Invalid)
    }
}

/// TUF key ID: hex SHA-256 of the canonical JSON of the key with a null private part
/// (`tuf/data/keys.go: TUFKey.ID`).
pub fn tuf_key_id(keytype: &str, public: &[u8]) -> String {
    let doc = json!({
        "keytype": keytype,
        "keyval": {"private": null, "public": super::schema::b64_encode(public)},
    });
    let bytes = to_canonical(&doc).expect("key document holds only strings and null");
    hex::encode(digest::digest(&digest::SHA256, &bytes))
}

fn material_from_spki(keytype: &str, der: &[u8]) -> Result<Material, KeyError> {
    let bad = || KeyError::BadSpki {
        keytype: keytype.to_owned(),
    };
    let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| bad())?;
    if !rest.is_empty() {
        return Err(bad());
    }
    material_from_parsed_spki(keytype, &spki)
}

fn material_from_parsed_spki(
    keytype: &str,
    spki: &SubjectPublicKeyInfo<'_>,
) -> Result<Material, KeyError> {
    let unsupported = || KeyError::UnsupportedAlgorithm {
        keytype: keytype.to_owned(),
    };
    let alg = &spki.algorithm;
    let key_bits = spki.subject_public_key.data.to_vec();
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        if crate::trust::x509::ec_curve(spki).as_deref() == Some(OID_P256) {
            return Ok(Material::EcP256(key_bits));
        }
    } else if alg.algorithm == OID_PKCS1_RSAENCRYPTION {
        let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
        return Ok(Material::Rsa {
            der: key_bits,
            bits,
        });
    } else if alg.algorithm == OID_SIG_ED25519 && key_bits.len() == 32 {
        return Ok(Material::Ed25519(key_bits));
    }
    Err(unsupported())
}

/// Parses a PEM certificate; returns its SubjectPublicKeyInfo DER and the facts root
/// validation needs.
fn parse_certificate(keytype: &str, pem: &[u8]) -> Result<(Vec<u8>, CertInfo), KeyError> {
    let bad = || KeyError::BadCertificate {
        keytype: keytype.to_owned(),
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| bad())?;
    let cert = pem.parse_x509().map_err(|_| bad())?;
    let tbs = &cert.tbs_certificate;
    let to_time =
        |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let info = CertInfo {
        common_name: tbs
            .subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        not_before: to_time(tbs.validity.not_before.timestamp()),
        not_after: to_time(tbs.validity.not_after.timestamp()),
        sha1_signed: SHA1_SIGNATURE_OIDS
            .contains(&cert.signature_algorithm.algorithm.to_id_string().as_str()),
    };
    Ok((tbs.subject_pki.raw.to_vec(), info))
}

/// A key a user pins, given as a PEM public key or certificate: returns the IDs it may appear
/// under in root metadata (its canonical ID; for a certificate also the certificate's ID).
pub fn pin_ids_from_pem(pem_text: &[u8]) -> Result<Vec<String>, KeyError> {
    let bad = || KeyError::BadCertificate {
        keytype: "pinned".to_owned(),
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text).map_err(|_| bad())?;
    match pem.label.as_str() {
        "CERTIFICATE" => {
            // Try both x509 key types; only the one matching the key family parses.
            ["ecdsa-x509", "rsa-x509"]
                .iter()
                .find_map(|t| PublicKey::from_parts(t, pem_text).ok())
                .map(|k| vec![k.canonical_id().to_owned(), k.id().to_owned()])
                .ok_or_else(bad)
        }
        "PUBLIC KEY" => ["ecdsa", "rsa"]
            .iter()
            .find_map(|t| PublicKey::from_parts(t, &pem.contents).ok())
            .map(|k| vec![k.id().to_owned()])
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}
