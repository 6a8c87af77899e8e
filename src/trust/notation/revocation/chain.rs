//! What revocation checking reads of each certificate of a chain, and the chain shape it
//! relies on (notation-core-go `revocation/internal/x509util.ValidateChain`: every
//! certificate issued by the next one, the last self-signed, the leaf fit for the
//! chain's purpose). The verifier has built and trusted the path before; this only makes
//! sure "the next certificate is the issuer", which OCSP and CRL checks depend on, holds.

use time::OffsetDateTime;
use x509_parser::{
    extensions::{GeneralName, ParsedExtension},
    prelude::{FromDer, X509Certificate},
};

use super::{crl::distribution_point_urls, sig, Purpose};

/// Certificates a chain may have, at most.
pub const MAX_CHAIN: usize = 10;
/// OCSP responders or CRL distribution points read from one certificate, at most.
pub const MAX_URLS: usize = 4;

const OID_AIA: &str = "1.3.6.1.5.5.7.1.1";
const OID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
const OID_CDP: &str = "2.5.29.31";
/// id-ce-freshestCRL (RFC 5280 section 4.2.1.15).
pub const OID_FRESHEST_CRL: &str = "2.5.29.46";

/// One certificate of a chain, as revocation checking needs it.
#[derive(Debug, Clone)]
pub struct Cert {
    /// Position in the chain, from 1 (the leaf), for messages.
    pub index: usize,
    /// The serial number's content bytes without leading zero bytes.
    pub serial: Vec<u8>,
    /// DER of the issuer and subject names.
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    /// DER SubjectPublicKeyInfo, and the bits of its subjectPublicKey.
    pub spki: Vec<u8>,
    pub key_bits: Vec<u8>,
    /// An X.509 v3 certificate (basic constraints then matter for an issuer).
    pub v3: bool,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// keyUsage cRLSign, when the certificate has a key usage extension.
    pub crl_sign: Option<bool>,
    /// Extended key usage: `None` when absent.
    pub eku: Option<Eku>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// OCSP responder URLs (authorityInfoAccess id-ad-ocsp URIs), in order.
    pub ocsp: Vec<String>,
    /// CRL distribution point URIs, in order, or why the extension does not parse.
    pub crl: Result<Vec<String>, String>,
    /// Whether the certificate has a freshestCRL extension.
    pub freshest: bool,
}

/// The extended key usages revocation checking reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eku {
    pub code_signing: bool,
    pub time_stamping: bool,
    pub ocsp_signing: bool,
}

/// Normalises a DER INTEGER's content (a serial or CRL number) for comparison: leading
/// zero bytes dropped.
pub fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes.get(start..).unwrap_or_default().to_vec()
}

// === impl Cert ===

impl Cert {
    /// Reads a DER certificate (no trailing bytes).
    pub fn parse(der: &[u8], index: usize) -> Result<Cert, String> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("certificate #{index}: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("certificate #{index}: trailing data"));
        }
        let bad = |what: &str| format!("certificate #{index}: malformed {what}");
        let basic = cert
            .basic_constraints()
            .map_err(|_| bad("basic constraints"))?;
        let key_usage = cert.key_usage().map_err(|_| bad("key usage"))?;
        let eku = cert
            .extended_key_usage()
            .map_err(|_| bad("extended key usage"))?
            .map(|e| Eku {
                code_signing: e.value.code_signing,
                time_stamping: e.value.time_stamping,
                ocsp_signing: e.value.ocsp_signing,
            });
        let mut ocsp = Vec::new();
        let mut crl = Ok(Vec::new());
        let mut freshest = false;
        for ext in cert.extensions() {
            match ext.oid.to_id_string().as_str() {
                OID_AIA => {
                    if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
                        ocsp.extend(
                            aia.accessdescs
                                .iter()
                                .filter(|d| d.access_method.to_id_string() == OID_AD_OCSP)
                                .filter_map(|d| match d.access_location {
                                    GeneralName::URI(uri) => Some(uri.to_owned()),
                                    _ => None,
                                }),
                        );
                    } else {
                        return Err(bad("authority information access"));
                    }
                }
                OID_CDP => crl = distribution_point_urls(ext.value),
                OID_FRESHEST_CRL => freshest = true,
                _ => {}
            }
        }
        let validity = cert.validity();
        Ok(Cert {
            index,
            serial: strip_zeros(cert.raw_serial()),
            issuer: cert.issuer().as_raw().to_vec(),
            subject: cert.subject().as_raw().to_vec(),
            spki: cert.public_key().raw.to_vec(),
            key_bits: cert.public_key().subject_public_key.data.to_vec(),
            v3: cert.version().0 >= 2,
            is_ca: basic.is_some_and(|b| b.value.ca),
            crl_sign: key_usage.map(|k| k.value.crl_sign()),
            eku,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            ocsp,
            crl,
            freshest,
        })
    }

    /// Whether this certificate may sign CRLs (Go `RevocationList.CheckSignatureFrom`, as
    /// notation-core-go calls it): a v3 issuer must be a CA, and a key usage, where present,
    /// must include cRLSign (RFC 5280 section 4.2.1.3).
    pub fn may_sign_crls(&self) -> Result<(), String> {
        if self.v3 && !self.is_ca {
            return Err(format!(
                "certificate #{} is not a CA and cannot sign CRLs",
                self.index
            ));
        }
        if self.crl_sign == Some(false) {
            return Err(format!(
                "certificate #{} has a key usage without cRLSign",
                self.index
            ));
        }
        Ok(())
    }
}

/// Whether `der` is signed by the key `issuer_spki` (DER).
pub fn signed_by(der: &[u8], issuer_spki: &[u8]) -> Result<(), sig::SigError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|_| sig::SigError::Malformed("the certificate"))?;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(issuer_spki)
        .map_err(|_| sig::SigError::Malformed("the key"))?;
    sig::verify(
        &spki,
        &cert.signature_algorithm,
        cert.tbs_certificate.as_ref(),
        &cert.signature_value.data,
    )
}

/// Reads `chain` (DER, leaf first, root last) and checks its shape (x509util
/// `ValidateChain`): every certificate issued and signed by the next, which is a CA; the
/// last self-issued and self-signed; the leaf's extended key usage fit for `purpose`.
pub fn read(chain: &[Vec<u8>], purpose: Purpose) -> Result<Vec<Cert>, String> {
    if chain.is_empty() {
        return Err("chain does not contain any certificates".to_owned());
    }
    if chain.len() > MAX_CHAIN {
        return Err(format!(
            "chain has {} certificates, more than {MAX_CHAIN}",
            chain.len()
        ));
    }
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, der)| Cert::parse(der, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    for (pair, ders) in certs.windows(2).zip(chain.windows(2)) {
        let (Some(cert), Some(issuer), Some(der)) = (pair.first(), pair.get(1), ders.first())
        else {
            continue;
        };
        if cert.issuer != issuer.subject {
            return Err(format!(
                "certificate #{} is not issued by certificate #{}",
                cert.index, issuer.index
            ));
        }
        if !issuer.is_ca {
            return Err(format!("certificate #{} is not a CA", issuer.index));
        }
        signed_by(der, &issuer.spki).map_err(|e| {
            format!(
                "certificate #{} is not signed by certificate #{}: {e}",
                cert.index, issuer.index
            )
        })?;
    }
    if let (Some(root), Some(der)) = (certs.last(), chain.last()) {
        if root.issuer != root.subject {
            return Err(format!(
                "certificate #{} (the root) is not self-issued",
                root.index
            ));
        }
        signed_by(der, &root.spki).map_err(|e| {
            format!(
                "certificate #{} (the root) is not self-signed: {e}",
                root.index
            )
        })?;
    }
    if let Some(leaf) = certs.first() {
        let fits = match (purpose, leaf.eku) {
            (Purpose::CodeSigning, None) => true,
            (Purpose::CodeSigning, Some(eku)) => eku.code_signing,
            (Purpose::Timestamping, eku) => eku.is_some_and(|e| e.time_stamping),
        };
        if !fits {
            return Err(format!(
                "certificate #1 has no extended key usage for {}",
                match purpose {
                    Purpose::CodeSigning => "code signing",
                    Purpose::Timestamping => "timestamping",
                }
            ));
        }
    }
    Ok(certs)
}
