//! Signatures over a signed structure (a CRL's TBSCertList, an OCSP response's
//! ResponseData, a certificate's TBSCertificate) under an issuer's key: the
//! `(tbs, signatureAlgorithm, signature)` triple of RFC 5280 section 5.1 and RFC 6960
//! section 4.2.1, checked as Go's `x509.Certificate.CheckSignature` checks it for
//! notation-core-go (`CheckSignatureFrom` on a CRL, `ocsp.ParseResponseForCert`), limited
//! to the algorithms the Notary Project signature specification allows ("Signature
//! Algorithm Requirements": RSASSA-PSS and RSASSA-PKCS1-v1_5 with SHA-256/384/512 on
//! 2048-bit or larger keys, ECDSA on P-256/P-384/P-521 with SHA-256/384/512). SHA-1 is
//! refused.
//! The algorithms are [`x509::signature_scheme`]'s, shared with certificate signatures.

use aws_lc_rs::signature::{self, VerificationAlgorithm};
use x509_parser::{
    prelude::FromDer,
    x509::{AlgorithmIdentifier, SubjectPublicKeyInfo},
};

use crate::trust::x509;

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("unsupported signature algorithm {alg} for a {key} key")]
    Algorithm { alg: String, key: String },
    #[error("{0} does not parse")]
    Malformed(&'static str),
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
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| SigError::Malformed("the key"))?;
    let (_, alg) = AlgorithmIdentifier::from_der(alg_der)
        .map_err(|_| SigError::Malformed("the signature algorithm"))?;
    verify(&spki, &alg, message, signature)
}

/// The aws-lc-rs scheme for `alg` under a key like `spki`'s: the shared
/// [`x509::signature_scheme`], which certificate signatures are checked with too.
fn scheme(
    spki: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
) -> Result<&'static dyn VerificationAlgorithm, SigError> {
    x509::signature_scheme(alg, spki).ok_or_else(|| SigError::Algorithm {
        alg: alg.algorithm.to_id_string(),
        key: spki.algorithm.algorithm.to_id_string(),
    })
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
