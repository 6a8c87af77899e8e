//! Signatures over a signed structure (a CRL's TBSCertList, an OCSP response's
//! ResponseData, a certificate's TBSCertificate) under an issuer's key: the
//! `(tbs, signatureAlgorithm, signature)` triple of RFC 5280 section 5.1 and RFC 6960
//! section 4.2.1, checked as Go's `x509.Certificate.CheckSignature` checks it for
//! notation-core-go (`CheckSignatureFrom` on a CRL, `ocsp.ParseResponseForCert`), limited
//! to the algorithms the Notary Project signature specification allows ("Signature
//! Algorithm Requirements": RSASSA-PSS and RSASSA-PKCS1-v1_5 with SHA-256/384/512 on
//! 2048-bit or larger keys, ECDSA on P-256/P-384/P-521 with SHA-256/384/512). SHA-1 is
//! refused.
//!
//! (Private to revocation until `trust::x509` has a shared `cert_signed_by`; the two
//! should then become one.)

use aws_lc_rs::signature::{self, VerificationAlgorithm};
use x509_parser::{
    prelude::FromDer,
    signature_algorithm::RsaSsaPssParams,
    x509::{AlgorithmIdentifier, SubjectPublicKeyInfo},
};

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const P521: &str = "1.3.132.0.35";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA384: &str = "2.16.840.1.101.3.4.2.2";
const SHA512: &str = "2.16.840.1.101.3.4.2.3";
const MGF1: &str = "1.2.840.113549.1.1.8";

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("unsupported signature algorithm {0}")]
    Algorithm(String),
    #[error("the signature algorithm {alg} does not fit the signer's {key} key")]
    KeyMismatch { alg: String, key: String },
    #[error("invalid signature")]
    Invalid,
}

/// Verifies `signature` over `message` under the key of `spki` with `alg` (the signed
/// structure's `signatureAlgorithm`).
pub fn verify(
    spki: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SigError> {
    let scheme = scheme(spki, alg)?;
    signature::UnparsedPublicKey::new(scheme, &spki.subject_public_key.data)
        .verify(message, signature)
        .map_err(|_| SigError::Invalid)
}

/// [`verify`] with the SubjectPublicKeyInfo and the algorithm as DER.
pub fn verify_der(
    spki_der: &[u8],
    alg_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), SigError> {
    let bad = |what: &str| SigError::Algorithm(what.to_owned());
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| bad("(bad key)"))?;
    let (_, alg) = AlgorithmIdentifier::from_der(alg_der).map_err(|_| bad("(malformed)"))?;
    verify(&spki, &alg, message, signature)
}

/// The aws-lc-rs scheme for `alg` under a key like `spki`'s.
fn scheme(
    spki: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
) -> Result<&'static dyn VerificationAlgorithm, SigError> {
    let alg_oid = alg.algorithm.to_id_string();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let mismatch = || SigError::KeyMismatch {
        alg: alg_oid.clone(),
        key: key_oid.clone(),
    };
    let curve = || {
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string())
    };
    match alg_oid.as_str() {
        // sha{256,384,512}WithRSAEncryption (RFC 4055 section 5)
        "1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13" => {
            if key_oid != RSA_ENCRYPTION {
                return Err(mismatch());
            }
            Ok(match alg_oid.as_str() {
                "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "1.2.840.113549.1.1.12" => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            })
        }
        // id-RSASSA-PSS (RFC 4055 section 3.1): the MGF1 hash the message hash, the salt as
        // long as the hash, the trailer 1.
        "1.2.840.113549.1.1.10" => {
            if key_oid != RSA_ENCRYPTION {
                return Err(mismatch());
            }
            let params = alg
                .parameters
                .as_ref()
                .and_then(|p| RsaSsaPssParams::try_from(p).ok())
                .ok_or_else(|| SigError::Algorithm(format!("{alg_oid} (bad parameters)")))?;
            let hash = params.hash_algorithm_oid().to_id_string();
            let (scheme, len): (&'static dyn VerificationAlgorithm, u32) = match hash.as_str() {
                SHA256 => (&signature::RSA_PSS_2048_8192_SHA256, 32),
                SHA384 => (&signature::RSA_PSS_2048_8192_SHA384, 48),
                SHA512 => (&signature::RSA_PSS_2048_8192_SHA512, 64),
                other => return Err(SigError::Algorithm(format!("RSASSA-PSS with {other}"))),
            };
            let mgf_ok = params
                .mask_gen_algorithm()
                .is_ok_and(|m| m.mgf.to_id_string() == MGF1 && m.hash.to_id_string() == hash);
            if !mgf_ok || params.salt_length() != len || params.trailer_field() != 1 {
                return Err(SigError::Algorithm(format!(
                    "RSASSA-PSS with {hash} and other MGF, salt or trailer"
                )));
            }
            Ok(scheme)
        }
        // ecdsa-with-SHA{256,384,512} (RFC 5758 section 3.2), on the key's named curve
        "1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3" | "1.2.840.10045.4.3.4" => {
            if key_oid != EC_PUBLIC_KEY {
                return Err(mismatch());
            }
            let hash = match alg_oid.as_str() {
                "1.2.840.10045.4.3.2" => 256,
                "1.2.840.10045.4.3.3" => 384,
                _ => 512,
            };
            let scheme: &'static dyn VerificationAlgorithm = match (curve().as_deref(), hash) {
                (Some(P256), 256) => &signature::ECDSA_P256_SHA256_ASN1,
                (Some(P256), 384) => &signature::ECDSA_P256_SHA384_ASN1,
                (Some(P256), _) => &signature::ECDSA_P256_SHA512_ASN1,
                (Some(P384), 256) => &signature::ECDSA_P384_SHA256_ASN1,
                (Some(P384), 384) => &signature::ECDSA_P384_SHA384_ASN1,
                (Some(P384), _) => &signature::ECDSA_P384_SHA512_ASN1,
                (Some(P521), 256) => &signature::ECDSA_P521_SHA256_ASN1,
                (Some(P521), 384) => &signature::ECDSA_P521_SHA384_ASN1,
                (Some(P521), _) => &signature::ECDSA_P521_SHA512_ASN1,
                _ => return Err(mismatch()),
            };
            Ok(scheme)
        }
        other => Err(SigError::Algorithm(other.to_owned())),
    }
}

/// A signed structure split as RFC 5280 section 4.1.1 / 5.1.1 and RFC 6960 section 4.2.1
/// lay it out: `SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING, ... }`.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// The whole DER of the signed part.
    pub tbs: &'a [u8],
    /// The whole DER of the AlgorithmIdentifier.
    pub alg: &'a [u8],
    /// The signature's bits (no unused bits).
    pub signature: &'a [u8],
    /// What follows the signature inside the outer SEQUENCE (an OCSP response's certs).
    pub rest: &'a [u8],
}

/// Splits `der` (exactly one SEQUENCE) into its signed parts; `None` when it is not
/// that shape.
pub fn split(der: &[u8]) -> Option<Signed<'_>> {
    use der::{Decode, Encode, Reader, SliceReader, Tagged};
    let outer = der::AnyRef::from_der(der).ok()?;
    if outer.tag() != der::Tag::Sequence {
        return None;
    }
    let body = outer.value();
    let mut r = SliceReader::new(body).ok()?;
    let tbs: der::AnyRef<'_> = r.decode().ok()?;
    let tbs_len = usize::try_from(u32::from(tbs.encoded_len().ok()?)).ok()?;
    let alg: der::AnyRef<'_> = r.decode().ok()?;
    let alg_len = usize::try_from(u32::from(alg.encoded_len().ok()?)).ok()?;
    let sig: der::AnyRef<'_> = r.decode().ok()?;
    let sig_len = usize::try_from(u32::from(sig.encoded_len().ok()?)).ok()?;
    if tbs.tag() != der::Tag::Sequence
        || alg.tag() != der::Tag::Sequence
        || sig.tag() != der::Tag::BitString
    {
        return None;
    }
    let (0, bits) = sig.value().split_first()? else {
        return None;
    };
    let alg_start = tbs_len;
    let rest_start = alg_start.checked_add(alg_len)?.checked_add(sig_len)?;
    Some(Signed {
        tbs: body.get(..tbs_len)?,
        alg: body.get(alg_start..alg_start.checked_add(alg_len)?)?,
        signature: bits,
        rest: body.get(rest_start..)?,
    })
}

/// One DER TLV with the single-byte tag `tag` at the start of `input`: its content and
/// what follows. Lengths in DER's minimal form only (as Go's cryptobyte reads them).
pub fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        rest = rest.get(n..)?;
        if bytes.first() == Some(&0) {
            return None;
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        if len < 0x80 {
            return None;
        }
        len
    };
    let content = rest.get(..len)?;
    Some((content, rest.get(len..)?))
}
