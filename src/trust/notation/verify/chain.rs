//! The certificate requirements of `specs/signature-specification.md` ("Certificate
//! Requirements") as notation-core-go checks them: `x509/codesigning_cert_validations.go`
//! `ValidateCodeSigningCertChain` for the envelope's `x5c` chain, and
//! `x509/timestamp_cert_validations.go` `ValidateTimestampingCertChain` for a TSA's chain,
//! with their shared rules from `x509/helper.go`. Messages are notation-core-go's, with
//! subjects written as Go's `pkix.Name.String` writes them and quoted as Go's `%q` does.
//!
//! Validity is not checked here: notation checks the signing chain's validity in the
//! authentic-timestamp step (`ValidateCodeSigningCertChain(chain, nil)` in
//! `signature/internal/base/envelope.go`), and the TSA chain's at `genTime` while building it.

use time::OffsetDateTime;
use x509_parser::{
    prelude::{FromDer, X509Certificate, X509Name},
    public_key::PublicKey,
};

use crate::trust::{
    notation::policy::dn::{go_name_string, go_quote as q},
    x509,
};

/// Certificates in a chain, at most (a signing chain is a leaf, a few intermediates, a root).
pub const MAX_CHAIN: usize = 10;

/// What a chain is validated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// An envelope's signing chain (`ValidateCodeSigningCertChain`).
    CodeSigning,
    /// A timestamp authority's chain (`ValidateTimestampingCertChain`).
    Timestamping,
}

/// Parses every certificate of `ders` (leaf first): `Err` names the one that does not parse.
pub fn parse(ders: &[Vec<u8>]) -> Result<Vec<X509Certificate<'_>>, String> {
    if ders.len() > MAX_CHAIN {
        return Err(format!(
            "the certificate chain has {} certificates, more than the {MAX_CHAIN} accepted",
            ders.len()
        ));
    }
    ders.iter()
        .enumerate()
        .map(|(i, der)| match X509Certificate::from_der(der) {
            Ok((&[], cert)) => Ok(cert),
            Ok(_) => Err(format!("certificate #{} has trailing data", i + 1)),
            Err(e) => Err(format!("certificate #{} does not parse: {e}", i + 1)),
        })
        .collect()
}

/// notation-core-go `ValidateCodeSigningCertChain(chain, nil)` /
/// `ValidateTimestampingCertChain(chain)`: `ders` ordered leaf to root, each certificate
/// issued (signed, and named as issuer) by the next, the last a self-signed root, no
/// self-signed certificate before it; the leaf and the CAs meeting the requirements of
/// their role for `usage`. A chain of one certificate is a self-signed leaf.
pub fn validate(ders: &[Vec<u8>], usage: Usage) -> Result<(), String> {
    let certs = parse(ders)?;
    let (Some(first), Some(first_der)) = (certs.first(), ders.first()) else {
        return Err("certificate chain must contain at least one certificate".to_owned());
    };
    if certs.len() == 1 {
        // A self-signed signing certificate (not a CA): its own key signed it (`CheckSignature`,
        // no CA constraint), its issuer is its subject, and it is a valid leaf.
        let plain = subject(first);
        let subject = q(&plain);
        if !x509::cert_signed_by(first_der, first_der) {
            return Err(format!(
                "invalid self-signed certificate. subject: {subject}. Error: {SIGNATURE_FAILURE}"
            ));
        }
        if first.subject().as_raw() != first.issuer().as_raw() {
            let space = if usage == Usage::Timestamping {
                " "
            } else {
                ""
            };
            return Err(format!(
                "invalid self-signed certificate. subject: {subject}. Error: issuer{space}({}) and subject{space}({plain}) are not the same",
                name(first.issuer()),
            ));
        }
        return leaf(first, usage)
            .map_err(|e| format!("invalid self-signed certificate. Error: {e}"));
    }
    let last = certs.len() - 1;
    for (i, (cert, der)) in certs.iter().zip(ders).enumerate() {
        let subject = q(&subject(cert));
        if i == last {
            issued_by(cert, der, cert, der).map_err(|e| {
                format!("root certificate with subject {subject} is invalid or not self-signed. Certificate chain must end with a valid self-signed root certificate. Error: {e}")
            })?;
        } else {
            // No self-signed certificate before the root (a redundant root, or a self-signed
            // leaf in front of an unrelated chain).
            if issued_by(cert, der, cert, der).is_ok() {
                let role = if i == 0 { "leaf" } else { "intermediate" };
                return Err(format!("{role} certificate with subject {subject} is self-signed. Certificate chain must not contain self-signed {role} certificate"));
            }
            let (Some(parent), Some(parent_der)) = (certs.get(i + 1), ders.get(i + 1)) else {
                return Err("certificate chain must end with a root certificate".to_owned());
            };
            issued_by(cert, der, parent, parent_der).map_err(|e| {
                format!(
                    "invalid certificates or certificate with subject {subject} is not issued by {}. Error: {e}",
                    q(&self::subject(parent))
                )
            })?;
        }
        if i == 0 {
            leaf(cert, usage)?;
        } else {
            ca(cert, i - 1, usage)?;
        }
    }
    Ok(())
}

/// What Go's `crypto/x509` says of a signature that does not verify.
const SIGNATURE_FAILURE: &str = "x509: signature verification failure";
/// What Go's `crypto/x509` says of a parent that may not sign certificates.
const CONSTRAINT_VIOLATION: &str =
    "x509: invalid signature: parent certificate cannot sign this kind of certificate";

/// notation-core-go `isIssuedBy`: Go's `CheckSignatureFrom` (the parent may sign
/// certificates: a v3 parent has basic constraints with cA, and a key usage, when present,
/// with keyCertSign; its key signed the child), and the child's issuer is the parent's subject.
fn issued_by(
    child: &X509Certificate<'_>,
    child_der: &[u8],
    parent: &X509Certificate<'_>,
    parent_der: &[u8],
) -> Result<(), String> {
    let bc = parent.basic_constraints().ok().flatten();
    let is_v3 = parent.version().0 == 2;
    if (is_v3 && bc.is_none()) || bc.is_some_and(|bc| !bc.value.ca) {
        return Err(CONSTRAINT_VIOLATION.to_owned());
    }
    if let Ok(Some(ku)) = parent.key_usage() {
        if ku.value.flags != 0 && !ku.value.key_cert_sign() {
            return Err(CONSTRAINT_VIOLATION.to_owned());
        }
    }
    if !x509::cert_signed_by(child_der, parent_der) {
        return Err(SIGNATURE_FAILURE.to_owned());
    }
    if child.issuer().as_raw() != parent.subject().as_raw() {
        return Err(format!(
            "certificate with subject {} is not issued by {}",
            q(&subject(child)),
            q(&subject(parent))
        ));
    }
    Ok(())
}

/// `validateCodeSigningLeafCertificate` / `validateTimestampingLeafCertificate`.
fn leaf(cert: &X509Certificate<'_>, usage: Usage) -> Result<(), String> {
    let subject = q(&subject(cert));
    // validateLeafBasicConstraints
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            return Err(format!("certificate with subject {subject}: if the basic constraints extension is present, the ca field must be set to false"));
        }
        Err(e) => return Err(format!("certificate with subject {subject}: {e}")),
        _ => {}
    }
    // validate*LeafKeyUsage: present (critical for code signing), digitalSignature only
    // (nonRepudiation allowed).
    let ku = key_usage(cert, usage)?;
    if !ku.digital_signature() {
        return Err(format!("the certificate with subject {subject} is invalid. The key usage must have the bit positions for \"Digital Signature\" set"));
    }
    let forbidden = [
        (ku.key_encipherment(), "\"KeyEncipherment\""),
        (ku.data_encipherment(), "\"DataEncipherment\""),
        (ku.key_agreement(), "\"KeyAgreement\""),
        (ku.key_cert_sign(), "\"CertSign\""),
        (ku.crl_sign(), "\"CRLSign\""),
        (ku.encipher_only(), "\"EncipherOnly\""),
        (ku.decipher_only(), "\"DecipherOnly\""),
    ];
    let found: Vec<&str> = forbidden
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect();
    if !found.is_empty() {
        return Err(format!(
            "the certificate with subject {subject} is invalid. The key usage must be \"Digital Signature\" only, but found {}",
            found.join(", ")
        ));
    }
    match usage {
        Usage::CodeSigning => code_signing_eku(cert)?,
        Usage::Timestamping => timestamping_eku(cert)?,
    }
    // validateSignatureAlgorithm: the leaf's key is one the Notary Project signs with.
    key_spec(cert).map_err(|e| format!("certificate with subject {subject}: {e}"))
}

/// `validateCodeSigningCACertificate` / `validateTimestampingCACertificate`: basic
/// constraints with cA and a path length, if given, of at least the CAs below it
/// (`expected_path_len`), and a key usage with keyCertSign.
fn ca(cert: &X509Certificate<'_>, expected_path_len: usize, usage: Usage) -> Result<(), String> {
    let subject = q(&subject(cert));
    let bc = match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => bc.value,
        _ => {
            return Err(format!("certificate with subject {subject}: ca field in basic constraints must be present, critical, and set to true"));
        }
    };
    if let Some(max) = bc.path_len_constraint {
        if usize::try_from(max).is_ok_and(|max| max < expected_path_len) {
            return Err(format!("certificate with subject {subject}: expected path length of {expected_path_len} but certificate has path length {max} instead"));
        }
    }
    let ku = key_usage(cert, usage)?;
    if !ku.key_cert_sign() {
        return Err(format!("certificate with subject {subject}: key usage must have the bit positions for key cert sign set"));
    }
    Ok(())
}

/// `validate*KeyUsagePresent`: the key usage extension is present; for code signing it is
/// also critical (the spec says a timestamping certificate's SHOULD be).
fn key_usage(
    cert: &X509Certificate<'_>,
    usage: Usage,
) -> Result<x509_parser::extensions::KeyUsage, String> {
    let subject = q(&subject(cert));
    match cert.key_usage() {
        Ok(Some(ku)) => {
            if usage == Usage::CodeSigning && !ku.critical {
                return Err(format!("certificate with subject {subject}: key usage extension must be marked critical"));
            }
            Ok(*ku.value)
        }
        Ok(None) => Err(format!(
            "certificate with subject {subject}: key usage extension must be present"
        )),
        Err(e) => Err(format!("certificate with subject {subject}: {e}")),
    }
}

/// `validateCodeSigningExtendedKeyUsage`: an extended key usage, when present, lists none of
/// serverAuth, clientAuth, emailProtection, timeStamping, OCSPSigning (notation-core-go's
/// list), nor anyExtendedKeyUsage (the spec's list has it; notation-core-go's does not).
/// id-kp-codeSigning is allowed, not required ("MAY contain").
fn code_signing_eku(cert: &X509Certificate<'_>) -> Result<(), String> {
    let subject = q(&subject(cert));
    let eku = match cert.extended_key_usage() {
        Ok(None) => return Ok(()),
        Ok(Some(eku)) => eku.value,
        Err(e) => return Err(format!("certificate with subject {subject}: {e}")),
    };
    let excluded = [
        (eku.any, "Any"),
        (eku.server_auth, "ServerAuth"),
        (eku.client_auth, "ClientAuth"),
        (eku.email_protection, "EmailProtection"),
        (eku.time_stamping, "Timestamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ];
    match excluded.iter().find(|(set, _)| *set) {
        Some((_, name)) => Err(format!(
            "certificate with subject {subject}: extended key usage must not contain {name} eku"
        )),
        None => Ok(()),
    }
}

/// `validateTimestampingExtendedKeyUsage` (RFC 3161 section 2.3): exactly id-kp-timeStamping,
/// in an extension marked critical.
fn timestamping_eku(cert: &X509Certificate<'_>) -> Result<(), String> {
    let subject = q(&subject(cert));
    let only = format!("timestamp signing certificate with subject {subject} must have and only have Timestamping as extended key usage");
    let eku = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku,
        _ => return Err(only),
    };
    let v = eku.value;
    let others = [
        v.any,
        v.server_auth,
        v.client_auth,
        v.code_signing,
        v.email_protection,
        v.ocsp_signing,
    ]
    .iter()
    .any(|p| *p)
        || !v.other.is_empty();
    if !v.time_stamping || others {
        return Err(only);
    }
    if !eku.critical {
        return Err(format!("timestamp signing certificate with subject {subject} must have extended key usage extension marked as critical"));
    }
    Ok(())
}

/// notation-core-go `algorithm.ExtractKeySpec`: RSA 2048, 3072 or 4096 bits, or ECDSA on
/// P-256, P-384 or P-521.
pub fn key_spec(cert: &X509Certificate<'_>) -> Result<(), String> {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let modulus = rsa
                .modulus
                .iter()
                .position(|b| *b != 0)
                .and_then(|start| rsa.modulus.get(start..))
                .unwrap_or_default();
            let bits = modulus.len() * 8;
            if matches!(bits, 2048 | 3072 | 4096) {
                Ok(())
            } else {
                Err(format!("rsa key size {bits} bits is not supported"))
            }
        }
        Ok(PublicKey::EC(_)) => match x509::ec_curve(cert.public_key()).as_deref() {
            Some("1.2.840.10045.3.1.7" | "1.3.132.0.34" | "1.3.132.0.35") => Ok(()),
            _ => Err(format!(
                "ecdsa key size {} bits is not supported",
                cert.public_key()
                    .parsed()
                    .map(|k| k.key_size())
                    .unwrap_or(0)
            )),
        },
        _ => Err("unsupported public key type".to_owned()),
    }
}

// === names and times as notation writes them ===

/// A certificate's subject as Go's `pkix.Name.String` writes it (the policy module's
/// [`go_name_string`]); a subject Go could not decode falls back to x509-parser's form.
pub fn subject(cert: &X509Certificate<'_>) -> String {
    name(cert.subject())
}

/// A name as Go's `pkix.Name.String` writes it, for messages.
pub fn name(name: &X509Name<'_>) -> String {
    go_name_string(name).unwrap_or_else(|_| name.to_string())
}

/// Go's `time.RFC1123Z` layout: `Mon, 02 Jan 2006 15:04:05 -0700`.
pub fn rfc1123z(t: OffsetDateTime) -> String {
    const LAYOUT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    t.format(LAYOUT).unwrap_or_else(|_| t.to_string())
}

/// A certificate's validity, `notBefore` and `notAfter`.
pub fn validity(cert: &X509Certificate<'_>) -> (OffsetDateTime, OffsetDateTime) {
    let v = cert.validity();
    (v.not_before.to_datetime(), v.not_after.to_datetime())
}
