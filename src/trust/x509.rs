//! X.509 for the verifiers that trust certificate authorities (cosign keyless, sigstore
//! bundles, RFC 3161 timestamp authorities, Notation): PEM certificate lists, a pool of
//! trusted roots and intermediates, path building at a given time for a given extended key
//! usage, signatures under a certificate's key, and the fields identity policies read.
//!
//! Path building and signature checks are rustls-webpki's (the verifier rustls uses), so a
//! chain is judged the way a TLS chain is: every certificate valid at the time asked, an
//! EKU, where present along the path, including the one asked for, basic constraints and
//! name constraints enforced.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature;
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    TrustAnchor, UnixTime,
};
use x509_parser::{
    extensions::GeneralName,
    oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY,
    pem::Pem,
    prelude::{FromDer, X509Certificate},
};

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), as DER OID content bytes.
pub const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// id-kp-timeStamping (1.3.6.1.5.5.7.3.8), as DER OID content bytes.
pub const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
/// Certificates a signer may offer as candidate intermediates, at most.
pub const MAX_OFFERED: usize = 8;

/// Trusted roots (anchors) and the intermediates a leaf may chain through.
#[derive(Clone, Default)]
pub struct Pool {
    anchors: Vec<TrustAnchor<'static>>,
    /// The DER of each anchor, in the same order (for its SubjectPublicKeyInfo).
    anchor_ders: Vec<Vec<u8>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// webpki's algorithms, each knowing the signatures between the pool's own
    /// certificates that verified when the pool was made (empty: webpki's as they are).
    algorithms: Arc<Vec<Remembering>>,
}

/// A signature one certificate of a pool makes over another's TBSCertificate, verified
/// once, when the pool was made: the inputs webpki passes to the algorithm, byte for byte.
#[derive(Debug)]
struct KnownSignature {
    key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

/// One of webpki's signature algorithms that answers at once for a signature it verified
/// before, with the same key over the same message (the pool's own certificates: a
/// trusted root's intermediate under its root, checked for every path otherwise), and
/// verifies any other as the algorithm itself does. A signature check is a pure function
/// of the algorithm, key, message and signature, so the verdict is the same.
#[derive(Debug)]
struct Remembering {
    inner: &'static dyn SignatureVerificationAlgorithm,
    known: Vec<KnownSignature>,
}

impl SignatureVerificationAlgorithm for Remembering {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let known = self
            .known
            .iter()
            .any(|k| k.signature == signature && k.key == public_key && k.message == message);
        if known {
            return Ok(());
        }
        self.inner.verify_signature(public_key, message, signature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// What webpki's `verify_signed_data` reads of a certificate (RFC 5280 section 4.1): the
/// TBSCertificate (its whole DER), the signatureAlgorithm's content and the signature's
/// bits; `None` when it is not that shape.
fn signed_parts(cert: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    use der::{Decode, Reader, SliceReader, Tagged};
    let outer = der::AnyRef::from_der(cert).ok()?;
    if outer.tag() != der::Tag::Sequence {
        return None;
    }
    let body = outer.value();
    let mut r = SliceReader::new(body).ok()?;
    let tbs: der::AnyRef<'_> = r.decode().ok()?;
    let tbs_len = usize::try_from(u32::from(der::Encode::encoded_len(&tbs).ok()?)).ok()?;
    let alg: der::AnyRef<'_> = r.decode().ok()?;
    let sig: der::AnyRef<'_> = r.decode().ok()?;
    if alg.tag() != der::Tag::Sequence || sig.tag() != der::Tag::BitString || !r.is_finished() {
        return None;
    }
    let (0, bits) = sig.value().split_first()? else {
        return None;
    };
    Some((body.get(..tbs_len)?, alg.value(), bits))
}

/// What webpki's `verify_signature` reads of a DER SubjectPublicKeyInfo: the algorithm's
/// content and the key's bits.
fn spki_parts(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    use der::{Decode, Reader, SliceReader, Tagged};
    let outer = der::AnyRef::from_der(spki).ok()?;
    if outer.tag() != der::Tag::Sequence {
        return None;
    }
    let mut r = SliceReader::new(outer.value()).ok()?;
    let alg: der::AnyRef<'_> = r.decode().ok()?;
    let key: der::AnyRef<'_> = r.decode().ok()?;
    if alg.tag() != der::Tag::Sequence || key.tag() != der::Tag::BitString || !r.is_finished() {
        return None;
    }
    let (0, bits) = key.value().split_first()? else {
        return None;
    };
    Some((alg.value(), bits))
}

/// Why certificates do not make a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("no PEM CERTIFICATE in the file")]
    Empty,
    #[error("certificate {0} does not parse: {1}")]
    Parse(usize, String),
    #[error("no self-signed (root) certificate in the file")]
    NoRoot,
}

/// Why a certificate does not chain to the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("the certificate does not parse: {0}")]
    Certificate(String),
    #[error("{0}")]
    Untrusted(String),
}

/// A path that verified: what a caller needs of it beyond "it holds".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The DER SubjectPublicKeyInfo of the leaf's issuer (an intermediate, or the anchor):
    /// what an SCT's `issuer_key_hash` is computed over (RFC 6962 section 3.2).
    pub issuer_spki: Vec<u8>,
    /// The DER of the intermediates on the path, the leaf's issuer first.
    pub intermediates: Vec<Vec<u8>>,
    /// The Unix seconds (inclusive) in which every certificate on the path the time checks
    /// apply to (the leaf and the intermediates; webpki gives an anchor no validity) is
    /// valid: the latest `notBefore` and the earliest `notAfter` among them.
    pub valid: (i64, i64),
}

impl VerifiedChain {
    /// Whether this same path verifies at `at` (Unix seconds) as well: every certificate on
    /// it valid then (webpki `check_validity`, both ends inclusive, whole seconds). Nothing
    /// else path validation checks (signatures, basic and name constraints, EKU) depends on
    /// the time, so a path that verified at one time and passes this verifies at `at` too.
    pub fn valid_at(&self, at: i64) -> bool {
        self.valid.0 <= at && at <= self.valid.1
    }
}

// === impl Pool ===

impl Pool {
    /// A pool from DER certificates: self-signed ones become anchors, the others
    /// intermediates (as cosign reads `SIGSTORE_ROOT_FILE`).
    pub fn from_ders(certs: Vec<Vec<u8>>) -> Result<Self, PoolError> {
        let mut pool = Pool::default();
        for (i, der) in certs.into_iter().enumerate() {
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|e| PoolError::Parse(i + 1, e.to_string()))?;
            if cert.subject().as_raw() == cert.issuer().as_raw() {
                pool.add_anchor(der)
                    .map_err(|e| PoolError::Parse(i + 1, e))?;
            } else {
                pool.intermediates.push(CertificateDer::from(der));
            }
        }
        if pool.anchors.is_empty() && pool.intermediates.is_empty() {
            return Err(PoolError::Empty);
        }
        if pool.anchors.is_empty() {
            return Err(PoolError::NoRoot);
        }
        pool.remember();
        Ok(pool)
    }

    /// A pool from PEM certificates, as [`Pool::from_ders`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, PoolError> {
        Self::from_ders(pem_certificates(pem))
    }

    /// A pool from one authority's chain as a sigstore trusted root lists it, leaf (or
    /// first intermediate) first, root last: the last certificate is the anchor, whatever
    /// it says of itself, the others intermediates (sigstore-go `root.ParseCertificateAuthority`).
    pub fn from_chain(chain: &[Vec<u8>]) -> Result<Self, PoolError> {
        let (root, rest) = chain.split_last().ok_or(PoolError::Empty)?;
        let mut pool = Pool::default();
        pool.add_anchor(root.clone())
            .map_err(|e| PoolError::Parse(chain.len(), e))?;
        for (i, der) in rest.iter().enumerate() {
            X509Certificate::from_der(der).map_err(|e| PoolError::Parse(i + 1, e.to_string()))?;
            pool.intermediates.push(CertificateDer::from(der.clone()));
        }
        pool.remember();
        Ok(pool)
    }

    /// Verifies, once, the signature of each intermediate of the pool by each certificate of
    /// the pool that could have issued it (its subject the intermediate's issuer), as webpki
    /// would (the algorithm its `signatureAlgorithm` and the issuer's key type select), and
    /// keeps those that hold for [`Remembering`]. Paths are still built and checked in full
    /// by webpki: only the repeated signature computation over the same bytes is saved.
    fn remember(&mut self) {
        let issuers: Vec<&[u8]> = self
            .anchor_ders
            .iter()
            .map(Vec::as_slice)
            .chain(self.intermediates.iter().map(|c| c.as_ref()))
            .collect();
        let mut known: Vec<(usize, KnownSignature)> = Vec::new();
        for sub in &self.intermediates {
            let Ok((_, sub_cert)) = X509Certificate::from_der(sub.as_ref()) else {
                continue;
            };
            let Some((message, sig_alg, signature)) = signed_parts(sub.as_ref()) else {
                continue;
            };
            for issuer in &issuers {
                if *issuer == sub.as_ref() {
                    continue;
                }
                let Ok((_, issuer_cert)) = X509Certificate::from_der(issuer) else {
                    continue;
                };
                if issuer_cert.subject().as_raw() != sub_cert.issuer().as_raw() {
                    continue;
                }
                let Some((key_alg, key)) = spki_parts(issuer_cert.public_key().raw) else {
                    continue;
                };
                for (index, alg) in webpki::ALL_VERIFICATION_ALGS.iter().enumerate() {
                    if alg.signature_alg_id().as_ref() == sig_alg
                        && alg.public_key_alg_id().as_ref() == key_alg
                        && alg.verify_signature(key, message, signature).is_ok()
                    {
                        known.push((
                            index,
                            KnownSignature {
                                key: key.to_vec(),
                                message: message.to_vec(),
                                signature: signature.to_vec(),
                            },
                        ));
                    }
                }
            }
        }
        if known.is_empty() {
            self.algorithms = Arc::new(Vec::new());
            return;
        }
        let mut algorithms: Vec<Remembering> = webpki::ALL_VERIFICATION_ALGS
            .iter()
            .map(|inner| Remembering {
                inner: *inner,
                known: Vec::new(),
            })
            .collect();
        for (index, k) in known {
            algorithms[index].known.push(k);
        }
        self.algorithms = Arc::new(algorithms);
    }

    fn add_anchor(&mut self, der: Vec<u8>) -> Result<(), String> {
        let cert = CertificateDer::from(der.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| format!("{e:?}"))?
            .to_owned();
        self.anchors.push(anchor);
        self.anchor_ders.push(der);
        Ok(())
    }

    /// Whether the pool has no anchor.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Builds a path from `leaf` to an anchor at `at` (Unix seconds), through the pool's
    /// intermediates and those the signer `offered` (candidates only: trust comes from the
    /// anchors alone), every certificate valid at `at`, the EKU `eku` (DER OID content)
    /// allowed along the path wherever an EKU is present.
    pub fn verify(
        &self,
        leaf: &[u8],
        offered: &[Vec<u8>],
        at: i64,
        eku: &'static [u8],
    ) -> Result<VerifiedChain, ChainError> {
        let leaf = CertificateDer::from(leaf);
        let end_entity = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| ChainError::Certificate(format!("{e:?}")))?;
        let mut intermediates = self.intermediates.clone();
        intermediates.extend(
            offered
                .iter()
                .take(MAX_OFFERED)
                .map(|der| CertificateDer::from(der.clone())),
        );
        let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at).unwrap_or(0)));
        let remembering: Vec<&dyn SignatureVerificationAlgorithm> = self
            .algorithms
            .iter()
            .map(|a| a as &dyn SignatureVerificationAlgorithm)
            .collect();
        let algorithms = if remembering.is_empty() {
            webpki::ALL_VERIFICATION_ALGS
        } else {
            remembering.as_slice()
        };
        let path = end_entity
            .verify_for_usage(
                algorithms,
                &self.anchors,
                &intermediates,
                time,
                webpki::KeyUsage::required_if_present(eku),
                None,
                None,
            )
            .map_err(|e| ChainError::Untrusted(format!("{e:?}")))?;
        let intermediates: Vec<Vec<u8>> = path
            .intermediate_certificates()
            .map(|c| c.der().to_vec())
            .collect();
        let mut valid = validity_of(leaf.as_ref())?;
        let mut issuer_spki = None;
        for der in &intermediates {
            let (_, cert) = X509Certificate::from_der(der)
                .map_err(|e| ChainError::Certificate(e.to_string()))?;
            let v = cert.validity();
            valid.0 = valid.0.max(v.not_before.timestamp());
            valid.1 = valid.1.min(v.not_after.timestamp());
            issuer_spki.get_or_insert_with(|| cert.public_key().raw.to_vec());
        }
        let issuer_spki = match issuer_spki {
            Some(spki) => spki,
            None => {
                let anchor = path.anchor();
                let index = self
                    .anchors
                    .iter()
                    .position(|a| {
                        a.subject == anchor.subject
                            && a.subject_public_key_info == anchor.subject_public_key_info
                    })
                    .ok_or_else(|| {
                        ChainError::Untrusted("the anchor is not in the pool".to_owned())
                    })?;
                spki_of(&self.anchor_ders[index])?
            }
        };
        Ok(VerifiedChain {
            issuer_spki,
            intermediates,
            valid,
        })
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("anchors", &self.anchors.len())
            .field("intermediates", &self.intermediates.len())
            .finish()
    }
}

/// A certificate's validity as Unix seconds, `notBefore` and `notAfter`.
fn validity_of(der: &[u8]) -> Result<(i64, i64), ChainError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| ChainError::Certificate(e.to_string()))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki_of(der: &[u8]) -> Result<Vec<u8>, ChainError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| ChainError::Certificate(e.to_string()))?;
    Ok(cert.public_key().raw.to_vec())
}

/// The DER bodies of the `CERTIFICATE` blocks of a PEM text, in order.
pub fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem)
        .map_while(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// Whether the certificate allows code signing (its EKU lists it).
pub fn is_code_signing(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.code_signing)
}

/// The named curve (dotted OID) of an elliptic-curve SubjectPublicKeyInfo (RFC 5480 section
/// 2.1.1); `None` for any other key, or a curve not given by name.
pub fn ec_curve(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<String> {
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return None;
    }
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string())
}

/// ECDSA over SHA-256 with the certificate's key, as cosign loads it
/// (`LoadVerifier(pub, SHA256)`): P-256 or P-384.
pub fn ecdsa_sha256_verifies(cert: &X509Certificate<'_>, message: &[u8], sig: &[u8]) -> bool {
    let spki = cert.public_key();
    let alg: &dyn signature::VerificationAlgorithm = match ec_curve(spki).as_deref() {
        Some(OID_P256) => &signature::ECDSA_P256_SHA256_ASN1,
        Some(OID_P384) => &signature::ECDSA_P384_SHA256_ASN1,
        _ => return false,
    };
    signature::UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(message, sig)
        .is_ok()
}

/// The signature schemes a DER SubjectPublicKeyInfo's key is checked with, most likely
/// first: ECDSA P-256 with SHA-256, P-384 with SHA-384 (then SHA-256, as cosign loads P-384
/// keys), Ed25519, RSA PKCS#1 v1.5 and PSS with SHA-256 (sigstore-go
/// `signature.LoadDefaultVerifier` and protobuf-specs `PublicKeyDetails` defaults).
fn schemes_of(
    spki_der: &[u8],
) -> Option<(Vec<u8>, Vec<&'static dyn signature::VerificationAlgorithm>)> {
    use x509_parser::x509::SubjectPublicKeyInfo;
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let alg = spki.algorithm.algorithm.to_id_string();
    let key = spki.subject_public_key.data.to_vec();
    let schemes: Vec<&'static dyn signature::VerificationAlgorithm> = match alg.as_str() {
        "1.2.840.10045.2.1" => match ec_curve(&spki).as_deref() {
            Some(OID_P256) => vec![&signature::ECDSA_P256_SHA256_ASN1],
            Some(OID_P384) => vec![
                &signature::ECDSA_P384_SHA384_ASN1,
                &signature::ECDSA_P384_SHA256_ASN1,
            ],
            _ => return None,
        },
        "1.3.101.112" => vec![&signature::ED25519],
        "1.2.840.113549.1.1.1" => vec![
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &signature::RSA_PSS_2048_8192_SHA256,
        ],
        _ => return None,
    };
    Some((key, schemes))
}

/// Whether the key of a DER SubjectPublicKeyInfo is one a signature can be checked with
/// ([`spki_verifies`]).
pub fn spki_supported(spki_der: &[u8]) -> bool {
    schemes_of(spki_der).is_some()
}

/// Whether `sig` is a signature over `message` by the key of a DER SubjectPublicKeyInfo,
/// under the scheme its key type implies (see [`schemes_of`]).
pub fn spki_verifies(spki_der: &[u8], message: &[u8], sig: &[u8]) -> bool {
    let Some((key, schemes)) = schemes_of(spki_der) else {
        return false;
    };
    schemes.into_iter().any(|alg| {
        signature::UnparsedPublicKey::new(alg, &key)
            .verify(message, sig)
            .is_ok()
    })
}

/// Whether `sig` is an ECDSA signature (ASN.1 DER) by the P-256 or P-384 key of a DER
/// SubjectPublicKeyInfo over a message whose SHA-256 is `sha256` (the message itself
/// unknown): sigstore-go `VerifySignatureWithDigest` for a bundle verified against an
/// artifact digest. Only ECDSA signs a prehashed message; other keys return `false`.
pub fn ecdsa_verifies_prehashed(spki_der: &[u8], sha256: &[u8], sig: &[u8]) -> bool {
    use x509_parser::x509::SubjectPublicKeyInfo;
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(spki_der) else {
        return false;
    };
    let alg: &'static signature::EcdsaVerificationAlgorithm = match ec_curve(&spki).as_deref() {
        Some(OID_P256) => &signature::ECDSA_P256_SHA256_ASN1,
        Some(OID_P384) => &signature::ECDSA_P384_SHA256_ASN1,
        _ => return false,
    };
    let Ok(digest) =
        aws_lc_rs::digest::Digest::import_less_safe(sha256, &aws_lc_rs::digest::SHA256)
    else {
        return false;
    };
    signature::UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify_digest(&digest, sig)
        .is_ok()
}

/// Whether the certificate `child_der` carries a valid signature by the key of the certificate
/// `parent_der` (both DER, nothing after them), for the signature algorithms certificates of
/// the Notary Project use (`specs/signature-specification.md`, "Algorithm Selection"; Go's
/// `x509.Certificate.CheckSignatureFrom` minus its basic-constraints and key-usage checks,
/// which callers apply themselves): sha256/384/512WithRSAEncryption, RSASSA-PSS with SHA-256,
/// SHA-384 or SHA-512 (MGF1 with the same hash, salt as long as the hash, trailer 1, as Go
/// accepts), and ecdsa-with-SHA256/384/512 under a P-256, P-384 or P-521 key. RSA keys are
/// 2048 to 8192 bits. SHA-1, MD5, DSA, Ed25519 and anything else return `false`, as does a
/// certificate whose inner and outer signature algorithms differ (RFC 5280 section 4.1.1.2;
/// Go refuses to parse one). A self-signed certificate is `cert_signed_by(der, der)`.
pub fn cert_signed_by(child_der: &[u8], parent_der: &[u8]) -> bool {
    let Ok((rest, child)) = X509Certificate::from_der(child_der) else {
        return false;
    };
    if !rest.is_empty() {
        return false;
    }
    let Ok((rest, parent)) = X509Certificate::from_der(parent_der) else {
        return false;
    };
    if !rest.is_empty() || child.tbs_certificate.signature != child.signature_algorithm {
        return false;
    }
    let Some(alg) = signature_scheme(&child.signature_algorithm, parent.public_key()) else {
        return false;
    };
    let signature = &child.signature_value;
    if signature.unused_bits != 0 {
        return false;
    }
    signature::UnparsedPublicKey::new(alg, &parent.public_key().subject_public_key.data)
        .verify(child.tbs_certificate.as_ref(), &signature.data)
        .is_ok()
}

/// The verification algorithm for a signature made with `sig_alg` (the `signatureAlgorithm`
/// of a certificate, a CRL or an OCSP response: RFC 5280 sections 4.1.1.2 and 5.1.1.2, RFC
/// 6960 section 4.2.1) by the key `spki`, if it is one [`cert_signed_by`] covers.
pub fn signature_scheme(
    sig_alg: &x509_parser::x509::AlgorithmIdentifier<'_>,
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    const RSA_KEY: &str = "1.2.840.113549.1.1.1";
    let key = spki.algorithm.algorithm.to_id_string();
    let alg: &'static dyn signature::VerificationAlgorithm =
        match sig_alg.algorithm.to_id_string().as_str() {
            "1.2.840.113549.1.1.11" if key == RSA_KEY => &signature::RSA_PKCS1_2048_8192_SHA256,
            "1.2.840.113549.1.1.12" if key == RSA_KEY => &signature::RSA_PKCS1_2048_8192_SHA384,
            "1.2.840.113549.1.1.13" if key == RSA_KEY => &signature::RSA_PKCS1_2048_8192_SHA512,
            "1.2.840.113549.1.1.10" if key == RSA_KEY => pss_scheme(sig_alg)?,
            ecdsa @ ("1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3" | "1.2.840.10045.4.3.4") => {
                match (ec_curve(spki).as_deref()?, ecdsa) {
                    (OID_P256, "1.2.840.10045.4.3.2") => &signature::ECDSA_P256_SHA256_ASN1,
                    (OID_P256, "1.2.840.10045.4.3.3") => &signature::ECDSA_P256_SHA384_ASN1,
                    (OID_P256, _) => &signature::ECDSA_P256_SHA512_ASN1,
                    (OID_P384, "1.2.840.10045.4.3.2") => &signature::ECDSA_P384_SHA256_ASN1,
                    (OID_P384, "1.2.840.10045.4.3.3") => &signature::ECDSA_P384_SHA384_ASN1,
                    (OID_P384, _) => &signature::ECDSA_P384_SHA512_ASN1,
                    (OID_P521, "1.2.840.10045.4.3.2") => &signature::ECDSA_P521_SHA256_ASN1,
                    (OID_P521, "1.2.840.10045.4.3.3") => &signature::ECDSA_P521_SHA384_ASN1,
                    (OID_P521, _) => &signature::ECDSA_P521_SHA512_ASN1,
                    _ => return None,
                }
            }
            _ => return None,
        };
    Some(alg)
}

/// RSASSA-PSS parameters (RFC 4055 section 3.1) Go's x509 accepts: SHA-256, SHA-384 or
/// SHA-512, MGF1 over the same hash, a salt as long as the hash, trailer field 1.
fn pss_scheme(
    sig_alg: &x509_parser::x509::AlgorithmIdentifier<'_>,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    use x509_parser::signature_algorithm::RsaSsaPssParams;
    let params = RsaSsaPssParams::try_from(sig_alg.parameters.as_ref()?).ok()?;
    let hash = params.hash_algorithm_oid().to_id_string();
    let mgf = params.mask_gen_algorithm().ok()?;
    if mgf.mgf.to_id_string() != "1.2.840.113549.1.1.8"
        || mgf.hash.to_id_string() != hash
        || params.trailer_field() != 1
    {
        return None;
    }
    let (alg, salt): (&'static dyn signature::VerificationAlgorithm, u32) = match hash.as_str() {
        "2.16.840.1.101.3.4.2.1" => (&signature::RSA_PSS_2048_8192_SHA256, 32),
        "2.16.840.1.101.3.4.2.2" => (&signature::RSA_PSS_2048_8192_SHA384, 48),
        "2.16.840.1.101.3.4.2.3" => (&signature::RSA_PSS_2048_8192_SHA512, 64),
        _ => return None,
    };
    (params.salt_length() == salt).then_some(alg)
}

/// The OIDC issuer Fulcio recorded in a certificate: the v2 extension
/// (1.3.6.1.4.1.57264.1.8, a DER UTF8String), else the legacy one (1.3.6.1.4.1.57264.1.1,
/// raw bytes), as sigstore-go `certificate.ParseExtensions` and cosign read them. (cosign's
/// keyless verifier has the same reader, private to its module.)
pub fn fulcio_issuer(cert: &X509Certificate<'_>) -> Option<String> {
    if let Some(value) = extension(cert, "1.3.6.1.4.1.57264.1.8") {
        return der_utf8_string(value).map(str::to_owned);
    }
    extension(cert, "1.3.6.1.4.1.57264.1.1")
        .and_then(|v| std::str::from_utf8(v).ok().map(str::to_owned))
}

/// The value of the extension `oid` (dotted), if the certificate has it.
pub fn extension<'a>(cert: &'a X509Certificate<'_>, oid: &str) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == oid)
        .map(|e| e.value)
}

/// The content of a DER UTF8String (tag 12), if `der` is exactly one.
pub fn der_utf8_string(der: &[u8]) -> Option<&str> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x0c {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81 => (usize::from(*rest.first()?), &rest[1..]),
        0x82 => (
            usize::from(*rest.first()?) << 8 | usize::from(*rest.get(1)?),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    (rest.len() == len)
        .then(|| std::str::from_utf8(rest).ok())
        .flatten()
}

/// Email, URI and DNS subject alternative names, as cosign's `GetSubjectAlternateNames`.
pub fn subject_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::RFC822Name(s) | GeneralName::URI(s) | GeneralName::DNSName(s) => {
                Some((*s).to_owned())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::path::Path;

    /// The public-good Fulcio chain (intermediate, root) and the kubewarden bundle's leaf
    /// with its integrated time, from the conformance data next to the project.
    fn fulcio_case() -> Option<(Vec<Vec<u8>>, Vec<u8>, i64)> {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
        let Ok(root) = std::fs::read(data.join("public-good/targets/trusted_root.json")) else {
            eprintln!("skipped: no conformance data at {}", data.display());
            return None;
        };
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        };
        let root: serde_json::Value = serde_json::from_slice(&root).unwrap();
        let chain = root["certificateAuthorities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ca| ca["certChain"]["certificates"].as_array().unwrap().clone())
            .find(|certs| certs.len() == 2)
            .unwrap()
            .iter()
            .map(|c| b64(&c["rawBytes"]))
            .collect();
        let bundle =
            std::fs::read(data.join("cosign-v3-image-kubewarden/bundle_v03.json")).unwrap();
        let bundle: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        let leaf = b64(&bundle["verificationMaterial"]["certificate"]["rawBytes"]);
        let at = bundle["verificationMaterial"]["tlogEntries"][0]["integratedTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        Some((chain, leaf, at))
    }

    #[test]
    fn a_pool_knows_its_own_chain_signature_and_nothing_else() {
        let Some((chain, leaf, at)) = fulcio_case() else {
            return;
        };
        let pool = Pool::from_chain(&chain).unwrap();
        let known: usize = pool.algorithms.iter().map(|a| a.known.len()).sum();
        assert_eq!(known, 1, "the intermediate's signature by the root");
        let path = pool.verify(&leaf, &[], at, EKU_CODE_SIGNING).unwrap();
        assert_eq!(path.intermediates, vec![chain[0].clone()]);
        // The leaf's validity bounds the path's (a Fulcio certificate lives ten minutes).
        assert!(path.valid_at(at) && path.valid.1 - path.valid.0 <= 3600);
        assert!(!path.valid_at(path.valid.1 + 1) && !path.valid_at(path.valid.0 - 1));
        // ... and webpki agrees at those times.
        assert!(pool
            .verify(&leaf, &[], path.valid.1 + 1, EKU_CODE_SIGNING)
            .is_err());
        assert!(pool
            .verify(&leaf, &[], path.valid.0 - 1, EKU_CODE_SIGNING)
            .is_err());
        assert!(pool
            .verify(&leaf, &[], path.valid.1, EKU_CODE_SIGNING)
            .is_ok());
    }

    #[test]
    fn a_chain_whose_signature_is_altered_is_neither_known_nor_trusted() {
        let Some((mut chain, leaf, at)) = fulcio_case() else {
            return;
        };
        // The last byte of the intermediate is inside its signature.
        let last = chain[0].len() - 1;
        chain[0][last] ^= 0x01;
        let pool = Pool::from_chain(&chain).unwrap();
        assert!(pool.algorithms.is_empty(), "no signature verified");
        assert!(pool.verify(&leaf, &[], at, EKU_CODE_SIGNING).is_err());
        // A pool that knows the genuine signature still checks an altered offered copy.
        let Some((genuine, _, _)) = fulcio_case() else {
            return;
        };
        let pool = Pool::from_chain(&genuine[1..]).unwrap();
        assert!(pool
            .verify(&leaf, &chain[..1], at, EKU_CODE_SIGNING)
            .is_err());
        assert!(pool
            .verify(&leaf, &genuine[..1], at, EKU_CODE_SIGNING)
            .is_ok());
    }

    #[test]
    fn signed_parts_are_what_webpki_reads() {
        let Some((chain, _, _)) = fulcio_case() else {
            return;
        };
        let (tbs, alg, sig) = signed_parts(&chain[0]).unwrap();
        let (_, cert) = X509Certificate::from_der(&chain[0]).unwrap();
        assert_eq!(tbs, cert.tbs_certificate.as_ref());
        assert_eq!(sig, &cert.signature_value.data[..]);
        // ecdsa-with-SHA384
        assert_eq!(
            alg,
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]
        );
        assert!(signed_parts(&chain[0][..chain[0].len() - 1]).is_none());
    }

    #[test]
    fn der_utf8_strings_decode_and_other_tags_do_not() {
        assert_eq!(der_utf8_string(b"\x0c\x03abc"), Some("abc"));
        assert_eq!(der_utf8_string(b"\x16\x03abc"), None);
        assert_eq!(der_utf8_string(b"\x0c\x04abc"), None);
        let long = "x".repeat(200);
        let mut der = vec![0x0c, 0x81, 200];
        der.extend_from_slice(long.as_bytes());
        assert_eq!(der_utf8_string(&der), Some(long.as_str()));
    }

    /// A self-signed certificate and a leaf it signed, under `alg`, through rcgen.
    fn rcgen_pair(key: rcgen::KeyPair, leaf_key: &rcgen::KeyPair) -> (Vec<u8>, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer};
        let mut root = CertificateParams::new(Vec::new()).unwrap();
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root_der = root.self_signed(&key).unwrap().der().to_vec();
        let issuer = Issuer::new(root, key);
        let leaf = CertificateParams::new(vec!["leaf.example".into()])
            .unwrap()
            .signed_by(leaf_key, &issuer)
            .unwrap();
        (root_der, leaf.der().to_vec())
    }

    #[test]
    fn certificate_signatures_verify_for_each_supported_algorithm() {
        use rcgen::{KeyPair, RsaKeySize};
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut keys = vec![
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA256).unwrap(),
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA384).unwrap(),
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap(),
        ];
        for alg in [
            &rcgen::PKCS_RSA_SHA256,
            &rcgen::PKCS_RSA_SHA384,
            &rcgen::PKCS_RSA_SHA512,
        ] {
            keys.push(KeyPair::generate_rsa_for(alg, RsaKeySize::_2048).unwrap());
        }
        let others: Vec<Vec<u8>> = vec![
            rcgen_pair(
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
                &leaf_key,
            )
            .0,
        ];
        for key in keys {
            let alg = format!("{:?}", key.algorithm());
            let (root, leaf) = rcgen_pair(key, &leaf_key);
            assert!(cert_signed_by(&root, &root), "{alg}: self-signed root");
            assert!(cert_signed_by(&leaf, &root), "{alg}: leaf under its root");
            assert!(!cert_signed_by(&root, &leaf), "{alg}: root under the leaf");
            assert!(!cert_signed_by(&leaf, &others[0]), "{alg}: another root");
            // A changed byte of the TBSCertificate (in the serial number) breaks it.
            let mut tampered = leaf.clone();
            let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
            let serial = cert.raw_serial();
            let at = leaf
                .windows(serial.len())
                .position(|w| w == serial)
                .unwrap();
            tampered[at] ^= 0x01;
            assert!(!cert_signed_by(&tampered, &root), "{alg}: tampered");
            // Trailing bytes after either certificate are refused.
            let mut longer = leaf.clone();
            longer.push(0);
            assert!(!cert_signed_by(&longer, &root), "{alg}: trailing data");
        }
    }

    #[test]
    fn ed25519_and_garbage_are_not_covered() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (root, leaf) = rcgen_pair(key, &leaf_key);
        assert!(!cert_signed_by(&root, &root));
        assert!(!cert_signed_by(&leaf, &root));
        assert!(!cert_signed_by(b"", b""));
        assert!(!cert_signed_by(b"\x30\x03\x02\x01\x00", &root));
    }

    /// DER of a SEQUENCE holding `content`.
    fn der_sequence(content: &[u8]) -> Vec<u8> {
        let mut out = vec![0x30];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    /// The DER of each element of a DER SEQUENCE.
    fn der_elements(seq: &[u8]) -> Vec<Vec<u8>> {
        use der::{Decode, Encode, Reader, SliceReader};
        let outer = der::AnyRef::from_der(seq).unwrap();
        let mut r = SliceReader::new(outer.value()).unwrap();
        let mut out = Vec::new();
        while !r.is_finished() {
            let e: der::AnyRef<'_> = r.decode().unwrap();
            out.push(e.to_der().unwrap());
        }
        out
    }

    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32 (RFC 4055 section 3.1).
    const PSS_SHA256: &str = "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120";

    /// A self-signed RSA certificate re-signed with RSASSA-PSS: the TBSCertificate's
    /// `signature` set to `inner`, the outer algorithm to `outer`.
    fn pss_certificate(inner: &[u8], outer: &[u8]) -> Vec<u8> {
        use aws_lc_rs::{rand::SystemRandom, rsa::KeyPair as RsaKeyPair};
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pss.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let parts = der_elements(cert.der());
        let mut tbs = der_elements(&parts[0]);
        tbs[2] = inner.to_vec();
        let tbs = der_sequence(&tbs.concat());
        let signer = RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
        let mut sig = vec![0; signer.public_modulus_len()];
        signer
            .sign(
                &signature::RSA_PSS_SHA256,
                &SystemRandom::new(),
                &tbs,
                &mut sig,
            )
            .unwrap();
        let mut bits = vec![0x03, 0x82, 0x01, 0x01, 0x00];
        bits.extend(sig);
        der_sequence(&[tbs, outer.to_vec(), bits].concat())
    }

    #[test]
    fn rsassa_pss_signatures_verify_and_mismatched_algorithms_do_not() {
        let pss = hex::decode(PSS_SHA256).unwrap();
        let cert = pss_certificate(&pss, &pss);
        assert!(cert_signed_by(&cert, &cert));
        // The TBSCertificate says sha256WithRSAEncryption, the outer algorithm PSS.
        let pkcs1 = hex::decode("300d06092a864886f70d01010b0500").unwrap();
        let mismatched = pss_certificate(&pkcs1, &pss);
        assert!(!cert_signed_by(&mismatched, &mismatched));
        // A salt of 20 (the RFC 4055 default) is not one Go accepts.
        let mut salt20 = pss.clone();
        let last = salt20.len() - 1;
        salt20[last] = 20;
        let cert = pss_certificate(&salt20, &salt20);
        assert!(!cert_signed_by(&cert, &cert));
    }

    #[test]
    fn notation_certificates_verify_under_their_issuers() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/notation");
        let read = |rel: &str| -> Option<Vec<u8>> {
            let bytes = std::fs::read(data.join(rel)).ok()?;
            Some(pem_certificates(&bytes).into_iter().next().unwrap_or(bytes))
        };
        let Some(leaf) = read("notation-core-go/x509/testdata/timestamp_leaf.crt") else {
            eprintln!("skipped: no conformance data at {}", data.display());
            return;
        };
        let intermediate =
            read("notation-core-go/x509/testdata/timestamp_intermediate.crt").unwrap();
        let root = read("notation-core-go/x509/testdata/timestamp_root.crt").unwrap();
        // sha256WithRSAEncryption under a 4096-bit key, then sha384WithRSAEncryption.
        assert!(cert_signed_by(&leaf, &intermediate));
        assert!(cert_signed_by(&intermediate, &root));
        assert!(cert_signed_by(&root, &root));
        assert!(!cert_signed_by(&leaf, &root));
        assert!(!cert_signed_by(&intermediate, &intermediate));
        let der = read("notation-core-go/x509/testdata/der.der").unwrap();
        assert!(cert_signed_by(&der, &der), "GlobalSign Root R3");
        let e2e = read("notation/test/e2e/testdata/config/localkeys/e2e.crt").unwrap();
        assert!(cert_signed_by(&e2e, &e2e), "self-signed e2e leaf");
    }
}
