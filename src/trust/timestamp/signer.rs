//! The CMS signer of a token (RFC 5652 section 5.3-5.6): which certificate a SignerInfo
//! names, its signed attributes (content-type, message-digest, ESS signing-certificate),
//! and its signature over their DER under the certificate's key, as digitorus/pkcs7
//! `verifySignature` (which sigstore/timestamp-authority uses) checks them.

use aws_lc_rs::{digest, signature};
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Reader, SliceReader, Tag, Tagged};
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER};
use x509_parser::prelude::{ParsedExtension, X509Certificate};

use super::token::{
    Token, ID_CONTENT_TYPE, ID_CT_TST_INFO, ID_MESSAGE_DIGEST, ID_SIGNING_CERTIFICATE,
    ID_SIGNING_CERTIFICATE_V2,
};
use super::TimestampError;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
/// Signed attributes a SignerInfo may carry (a TSA sets about four).
const MAX_SIGNED_ATTRS: usize = 16;

/// A hash the imprint or a SignerInfo's digest may use: SHA-256, SHA-384 or SHA-512.
pub fn digest_alg(oid: &ObjectIdentifier) -> Result<&'static digest::Algorithm, TimestampError> {
    match *oid {
        SHA256 => Ok(&digest::SHA256),
        SHA384 => Ok(&digest::SHA384),
        SHA512 => Ok(&digest::SHA512),
        _ => Err(TimestampError::UnsupportedHash(oid.to_string())),
    }
}

/// Whether the SignerInfo's `sid` names `cert` (RFC 5652 section 5.3: issuer and serial
/// number, or subject key identifier).
pub fn names(sid: &SignerIdentifier, cert: &X509Certificate<'_>) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer
                .to_der()
                .is_ok_and(|issuer| issuer == cert.issuer().as_raw())
                && isn.serial_number.as_bytes() == cert.raw_serial()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            subject_key_id(cert).is_some_and(|id| id == ski.0.as_bytes())
        }
    }
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    let ext = cert
        .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .ok()??;
    match ext.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
        _ => None,
    }
}

/// RFC 5652 section 5.4 and 5.6, RFC 3161 section 2.4.1, RFC 5035 section 5.4: the signed
/// attributes bind the TSTInfo (content-type, message-digest) and, where present, the
/// signing certificate; the signature covers their DER (as a SET OF).
pub fn check(
    info: &SignerInfo,
    token: &Token,
    leaf: &X509Certificate<'_>,
    leaf_der: &[u8],
) -> Result<(), TimestampError> {
    let hash = digest_alg(&info.digest_alg.oid)?;
    let attrs = info
        .signed_attrs
        .as_ref()
        .ok_or(TimestampError::NoSignedAttributes)?;
    if attrs.len() > MAX_SIGNED_ATTRS {
        return Err(TimestampError::Malformed {
            what: "signed attributes",
            reason: format!("{} attributes, more than {MAX_SIGNED_ATTRS}", attrs.len()),
        });
    }
    let single =
        |oid: ObjectIdentifier, name: &'static str| -> Result<Option<&Any>, TimestampError> {
            let mut found = attrs.iter().filter(|a| a.oid == oid);
            match (found.next(), found.next()) {
                (None, _) => Ok(None),
                (Some(attr), None) if attr.values.len() == 1 => Ok(attr.values.get(0)),
                _ => Err(TimestampError::MissingAttribute(name)),
            }
        };

    let content_type = single(ID_CONTENT_TYPE, "content-type")?
        .ok_or(TimestampError::MissingAttribute("content-type"))?;
    let content_type: ObjectIdentifier = content_type
        .decode_as()
        .map_err(|_| TimestampError::MissingAttribute("content-type"))?;
    if content_type != ID_CT_TST_INFO {
        return Err(TimestampError::ContentTypeMismatch(
            content_type.to_string(),
        ));
    }

    let message_digest = single(ID_MESSAGE_DIGEST, "message-digest")?
        .ok_or(TimestampError::MissingAttribute("message-digest"))?;
    let message_digest: OctetString = message_digest
        .decode_as()
        .map_err(|_| TimestampError::MissingAttribute("message-digest"))?;
    if digest::digest(hash, &token.tst_info_der).as_ref() != message_digest.as_bytes() {
        return Err(TimestampError::MessageDigestMismatch);
    }

    if let Some(v1) = single(ID_SIGNING_CERTIFICATE, "signing-certificate")? {
        ess_cert_id(v1, false, leaf, leaf_der)?;
    }
    if let Some(v2) = single(ID_SIGNING_CERTIFICATE_V2, "signing-certificate-v2")? {
        ess_cert_id(v2, true, leaf, leaf_der)?;
    }

    // RFC 5652 section 5.4: the signature is over the DER of the attributes as a SET OF
    // (the `der` crate decodes a SET OF into DER order, so this is the signed encoding of
    // any DER token).
    let signed = attrs.to_der().map_err(|e| TimestampError::Malformed {
        what: "signed attributes",
        reason: e.to_string(),
    })?;
    verify_signature(info, hash, leaf, &signed, info.signature.as_bytes())
}

/// RFC 2634 section 5.4 (`SigningCertificate`) and RFC 5035 section 3 (`SigningCertificateV2`):
/// the first ESSCertID is the signing certificate's: its hash over the certificate's DER,
/// and its issuer and serial number where present.
fn ess_cert_id(
    value: &Any,
    v2: bool,
    leaf: &X509Certificate<'_>,
    leaf_der: &[u8],
) -> Result<(), TimestampError> {
    let mismatch = |reason: &str| TimestampError::SigningCertificateMismatch(reason.to_owned());
    let malformed = |_| mismatch("the attribute does not parse");
    // SigningCertificate(V2) ::= SEQUENCE { certs SEQUENCE OF ESSCertID(v2), policies ... }
    let certs: Any = sequence_first(value).map_err(malformed)?;
    // ESSCertID(v2) ::= SEQUENCE { [hashAlgorithm DEFAULT sha256,] certHash, issuerSerial OPTIONAL }
    let id: Any = sequence_first(&certs).map_err(malformed)?;
    if id.tag() != Tag::Sequence {
        return Err(mismatch("the ESSCertID is not a SEQUENCE"));
    }
    let mut r = SliceReader::new(id.value()).map_err(malformed)?;
    let mut alg = if v2 { SHA256 } else { SHA1 };
    let mut next: Any = r.decode().map_err(malformed)?;
    if v2 && next.tag() == Tag::Sequence {
        let ident: cms::cert::x509::spki::AlgorithmIdentifierOwned =
            next.decode_as().map_err(malformed)?;
        alg = ident.oid;
        next = r.decode().map_err(malformed)?;
    }
    let hash = match alg {
        SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        other => digest_alg(&other)?,
    };
    let cert_hash: OctetString = next.decode_as().map_err(malformed)?;
    if digest::digest(hash, leaf_der).as_ref() != cert_hash.as_bytes() {
        return Err(mismatch("its certificate hash is of another certificate"));
    }
    if !r.is_finished() {
        // IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER }
        let issuer_serial: Any = r.decode().map_err(malformed)?;
        if issuer_serial.tag() != Tag::Sequence {
            return Err(mismatch("its issuerSerial is not a SEQUENCE"));
        }
        let mut r = SliceReader::new(issuer_serial.value()).map_err(malformed)?;
        let _issuer: Any = r.decode().map_err(malformed)?;
        let serial: der::asn1::Int = r.decode().map_err(malformed)?;
        if serial.as_bytes() != cert_serial_content(leaf) {
            return Err(mismatch("its serial number is of another certificate"));
        }
    }
    Ok(())
}

/// The certificate's serial number as the content octets of its INTEGER.
fn cert_serial_content<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
    cert.raw_serial()
}

/// The first element of a DER SEQUENCE.
fn sequence_first(any: &Any) -> der::Result<Any> {
    if any.tag() != Tag::Sequence {
        return Err(any.tag().unexpected_error(Some(Tag::Sequence)));
    }
    let mut r = SliceReader::new(any.value())?;
    r.decode()
}

/// The signature under the certificate's key. As digitorus/pkcs7 `getSignatureAlgorithm`,
/// the SignerInfo's digest algorithm is the hash for ECDSA and RSA PKCS#1 v1.5 whichever
/// of their OIDs the signature algorithm names; RSASSA-PSS (RFC 4056) must name the same
/// hash, MGF1 with it, and a salt of its length.
fn verify_signature(
    info: &SignerInfo,
    hash: &'static digest::Algorithm,
    leaf: &X509Certificate<'_>,
    message: &[u8],
    sig: &[u8],
) -> Result<(), TimestampError> {
    let unsupported = |what: String| TimestampError::UnsupportedSignature(what);
    let spki = leaf.public_key();
    let key = &spki.subject_public_key.data;
    let sig_alg = &info.signature_algorithm;
    let hash_id = hash_id(hash);
    let alg: &'static dyn signature::VerificationAlgorithm = match sig_alg.oid {
        ECDSA_SHA256 | ECDSA_SHA384 | ECDSA_SHA512 | EC_PUBLIC_KEY => {
            if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
                return Err(unsupported("an ECDSA signature by a non-EC key".to_owned()));
            }
            let curve = crate::trust::x509::ec_curve(spki);
            match (curve.as_deref(), hash_id) {
                (Some(P256), 256) => &signature::ECDSA_P256_SHA256_ASN1,
                (Some(P256), 384) => &signature::ECDSA_P256_SHA384_ASN1,
                (Some(P256), 512) => &signature::ECDSA_P256_SHA512_ASN1,
                (Some(P384), 256) => &signature::ECDSA_P384_SHA256_ASN1,
                (Some(P384), 384) => &signature::ECDSA_P384_SHA384_ASN1,
                (Some(P384), 512) => &signature::ECDSA_P384_SHA512_ASN1,
                (curve, _) => {
                    return Err(unsupported(format!(
                        "ECDSA on curve {}",
                        curve.unwrap_or("(unnamed)")
                    )))
                }
            }
        }
        RSA_ENCRYPTION | RSA_SHA256 | RSA_SHA384 | RSA_SHA512 => match hash_id {
            256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            _ => &signature::RSA_PKCS1_2048_8192_SHA512,
        },
        RSA_PSS => {
            let pss_hash = pss_hash(sig_alg.parameters.as_ref())
                .ok_or_else(|| unsupported("RSASSA-PSS parameters other than MGF1 with the message hash and a salt of its length".to_owned()))?;
            if pss_hash != hash_id {
                return Err(unsupported(
                    "RSASSA-PSS with a hash other than the SignerInfo's digest".to_owned(),
                ));
            }
            match hash_id {
                256 => &signature::RSA_PSS_2048_8192_SHA256,
                384 => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            }
        }
        other => return Err(unsupported(format!("algorithm {other}"))),
    };
    signature::UnparsedPublicKey::new(alg, key)
        .verify(message, sig)
        .map_err(|_| TimestampError::BadSignature)
}

fn hash_id(hash: &'static digest::Algorithm) -> u16 {
    match hash.output_len() {
        32 => 256,
        48 => 384,
        _ => 512,
    }
}

/// RFC 4055 section 3.1 `RSASSA-PSS-params`: the hash (256/384/512) when the mask is MGF1
/// with the same hash and the salt is the hash's length (what aws-lc-rs verifies).
fn pss_hash(params: Option<&Any>) -> Option<u16> {
    let params = params?;
    if params.tag() != Tag::Sequence {
        return None;
    }
    let mut r = SliceReader::new(params.value()).ok()?;
    let (mut hash, mut mgf_hash, mut salt) = (None, None, 20u32);
    let mut fields = 0;
    while !r.is_finished() {
        fields += 1;
        if fields > 4 {
            return None;
        }
        let field: Any = r.decode().ok()?;
        let Tag::ContextSpecific { number, .. } = field.tag() else {
            return None;
        };
        let inner = Any::from_der(field.value()).ok()?;
        match number.value() {
            0 => {
                let alg: cms::cert::x509::spki::AlgorithmIdentifierOwned =
                    inner.decode_as().ok()?;
                hash = Some(alg.oid);
            }
            1 => {
                let mgf: cms::cert::x509::spki::AlgorithmIdentifierOwned =
                    inner.decode_as().ok()?;
                if mgf.oid != MGF1 {
                    return None;
                }
                let mgf_alg: cms::cert::x509::spki::AlgorithmIdentifierOwned =
                    mgf.parameters?.decode_as().ok()?;
                mgf_hash = Some(mgf_alg.oid);
            }
            2 => salt = inner.decode_as().ok()?,
            3 => {
                let trailer: u8 = inner.decode_as().ok()?;
                if trailer != 1 {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let hash = hash?;
    if mgf_hash? != hash {
        return None;
    }
    let bits = hash_id(digest_alg(&hash).ok()?);
    (u32::from(bits / 8) == salt).then_some(bits)
}
