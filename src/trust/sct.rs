//! Certificate Transparency: signed certificate timestamps (RFC 6962) embedded in a
//! certificate, as Fulcio embeds them, verified against trusted CT log keys.
//!
//! The steps follow RFC 6962 sections 3.2 (the signed data of a precertificate entry) and
//! 3.3 (the SCT list extension), as sigstore-go `pkg/verify/sct.go`
//! (`VerifySignedCertificateTimestamp`) and certificate-transparency-go `ctutil.VerifySCT`
//! apply them to an issued certificate: the SCTs were signed over the precertificate, which
//! is the final certificate's TBSCertificate without the SCT list extension.
//!
//! Everything here reads bytes an upstream sent: each length is checked against what is
//! left before it is used, and the certificate, the list and its count are bounded.

use aws_lc_rs::digest;
use time::OffsetDateTime;

use crate::trust::tlog::{Algorithm, LogKey};

/// Largest certificate read (a Fulcio leaf is 1-2 KiB).
pub const MAX_CERT_SIZE: usize = 64 * 1024;
/// Most SCTs read from one certificate (Fulcio embeds one or two).
pub const MAX_SCTS: usize = 16;
/// DER content of the OID 1.3.6.1.4.1.11129.2.4.2 (RFC 6962 section 3.3, embedded SCTs).
const OID_SCT_LIST: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];
/// DER tags used.
const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_BOOLEAN: u8 = 0x01;
const TAG_OCTET_STRING: u8 = 0x04;
/// TBSCertificate `extensions [3] EXPLICIT Extensions` (RFC 5280 section 4.1).
const TAG_EXTENSIONS: u8 = 0xa3;
/// RFC 5246 section 7.4.1.4.1 / RFC 8446: HashAlgorithm and SignatureAlgorithm codes.
const HASH_SHA256: u8 = 4;
const HASH_SHA384: u8 = 5;
const HASH_INTRINSIC: u8 = 8;
const SIG_RSA: u8 = 1;
const SIG_ECDSA: u8 = 3;
const SIG_ED25519: u8 = 7;

/// One trusted CT log (a sigstore trusted root's `ctlogs[]`).
#[derive(Debug, Clone)]
pub struct CtLog {
    /// The log's key; its ID is the SHA-256 of the DER SubjectPublicKeyInfo.
    pub key: LogKey,
    /// SCTs with a timestamp before this do not count.
    pub valid_from: Option<OffsetDateTime>,
    /// SCTs with a timestamp after this do not count (inclusive).
    pub valid_until: Option<OffsetDateTime>,
}

/// Why a certificate's SCTs do not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctError {
    #[error("the certificate is {0} bytes, more than {MAX_CERT_SIZE}")]
    CertificateTooLarge(usize),
    #[error("the certificate is not DER X.509: {0}")]
    BadCertificate(&'static str),
    #[error(
        "the certificate embeds no SCTs (extension 1.3.6.1.4.1.11129.2.4.2), and {threshold} \
         verified SCTs are required"
    )]
    NoScts { threshold: usize },
    #[error("the certificate has more than one SCT list extension")]
    DuplicateExtension,
    #[error("the certificate's SCT list is malformed: {0}")]
    MalformedList(&'static str),
    #[error("the certificate's SCT list has more than {MAX_SCTS} SCTs")]
    TooManyScts,
    #[error(
        "only {verified} of the certificate's {scts} SCTs verified under distinct trusted CT \
         logs, {threshold} required{}",
        because(.first_rejection)
    )]
    ThresholdNotMet {
        verified: usize,
        threshold: usize,
        scts: usize,
        /// Why the first SCT that did not count was turned down.
        first_rejection: Option<SctRejection>,
    },
}

/// Why one SCT did not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctRejection {
    #[error("an SCT has version {0}, not v1")]
    UnsupportedVersion(u8),
    #[error("an SCT is from the CT log {log_id}, which the trusted root does not list")]
    UnknownLog { log_id: String },
    #[error(
        "an SCT's timestamp ({timestamp_ms} ms) lies outside the validity period the trusted \
         root gives the CT log {log_id}"
    )]
    OutsideValidity { log_id: String, timestamp_ms: u64 },
    #[error(
        "an SCT's algorithms (hash {hash}, signature {signature}) are not those of the key of \
         the CT log {log_id}"
    )]
    AlgorithmMismatch {
        log_id: String,
        hash: u8,
        signature: u8,
    },
    #[error(
        "an SCT's signature does not verify under the key of the CT log {log_id} (the \
         certificate or its issuer key is not what the log signed)"
    )]
    BadSignature { log_id: String },
}

fn because(r: &Option<SctRejection>) -> String {
    r.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
}

/// One SCT as RFC 6962 section 3.2 lays it out (`SignedCertificateTimestamp`).
#[derive(Debug)]
struct Sct<'a> {
    version: u8,
    log_id: &'a [u8],
    timestamp: u64,
    extensions: &'a [u8],
    hash: u8,
    signature_alg: u8,
    signature: &'a [u8],
}

/// Verifies the SCTs embedded in `leaf` (DER, extension 1.3.6.1.4.1.11129.2.4.2) whose
/// issuer's DER SubjectPublicKeyInfo is `issuer_spki`: at least `threshold` of them must be
/// by distinct trusted `logs` and verify over the reconstructed precertificate entry.
/// Returns how many verified.
pub fn verify_embedded(
    leaf: &[u8],
    issuer_spki: &[u8],
    logs: &[CtLog],
    threshold: usize,
) -> Result<usize, SctError> {
    if leaf.len() > MAX_CERT_SIZE {
        return Err(SctError::CertificateTooLarge(leaf.len()));
    }
    let precert = precert_tbs(leaf)?;
    let Some(list) = precert.sct_list else {
        return if threshold == 0 {
            Ok(0)
        } else {
            Err(SctError::NoScts { threshold })
        };
    };
    let scts = parse_list(list)?;
    // RFC 6962 section 3.2: PreCert.issuer_key_hash is the SHA-256 of the issuer's DER
    // SubjectPublicKeyInfo.
    let issuer_key_hash = digest::digest(&digest::SHA256, issuer_spki);

    // sigstore-go: each log counts once, however many of its SCTs verify.
    let mut verified: Vec<&[u8; 32]> = Vec::new();
    let mut first_rejection = None;
    for sct in &scts {
        match check(sct, logs, issuer_key_hash.as_ref(), &precert.tbs) {
            Ok(log) => {
                let id = log.key.log_id();
                if !verified.contains(&id) {
                    verified.push(id);
                }
            }
            Err(r) => {
                first_rejection.get_or_insert(r);
            }
        }
    }
    if verified.len() < threshold {
        return Err(SctError::ThresholdNotMet {
            verified: verified.len(),
            threshold,
            scts: scts.len(),
            first_rejection,
        });
    }
    Ok(verified.len())
}

/// Checks one SCT (ctutil `VerifySCT`, with sigstore-go's validity window): its log is a
/// trusted one, found by ID; its timestamp lies in the log's validity period (inclusive);
/// its algorithms are its log key's; and its signature verifies over the RFC 6962 section
/// 3.2 `digitally-signed` struct of a `precert_entry`.
fn check<'l>(
    sct: &Sct<'_>,
    logs: &'l [CtLog],
    issuer_key_hash: &[u8],
    tbs: &[u8],
) -> Result<&'l CtLog, SctRejection> {
    // RFC 6962 section 3.2: "v1(0)"; a later version may sign other data.
    if sct.version != 0 {
        return Err(SctRejection::UnsupportedVersion(sct.version));
    }
    let log_id = hex::encode(sct.log_id);
    // RFC 6962 section 3.2: LogID is the SHA-256 of the log's DER public key.
    let Some(log) = logs
        .iter()
        .find(|l| l.key.log_id().as_slice() == sct.log_id)
    else {
        return Err(SctRejection::UnknownLog { log_id });
    };
    let outside = || SctRejection::OutsideValidity {
        log_id: log_id.clone(),
        timestamp_ms: sct.timestamp,
    };
    // The timestamp is milliseconds since the epoch (RFC 6962 section 3.2).
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(sct.timestamp) * 1_000_000)
        .map_err(|_| outside())?;
    if log.valid_from.is_some_and(|from| at < from) || log.valid_until.is_some_and(|u| at > u) {
        return Err(outside());
    }
    let expected = match log.key.algorithm() {
        Algorithm::EcdsaP256Sha256 => (HASH_SHA256, SIG_ECDSA),
        Algorithm::EcdsaP384Sha384 => (HASH_SHA384, SIG_ECDSA),
        Algorithm::RsaPkcs1Sha256 => (HASH_SHA256, SIG_RSA),
        Algorithm::Ed25519 => (HASH_INTRINSIC, SIG_ED25519),
    };
    if (sct.hash, sct.signature_alg) != expected {
        return Err(SctRejection::AlgorithmMismatch {
            log_id,
            hash: sct.hash,
            signature: sct.signature_alg,
        });
    }
    if !log
        .key
        .verifies(&signed_data(sct, issuer_key_hash, tbs), sct.signature)
    {
        return Err(SctRejection::BadSignature { log_id });
    }
    Ok(log)
}

/// RFC 6962 section 3.2, the `digitally-signed struct` of an SCT over a precertificate:
/// sct_version, signature_type (certificate_timestamp = 0), timestamp, entry_type
/// (precert_entry = 1), `PreCert { issuer_key_hash[32]; TBSCertificate<1..2^24-1> }`, and
/// the SCT's extensions `<0..2^16-1>`.
fn signed_data(sct: &Sct<'_>, issuer_key_hash: &[u8], tbs: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(52 + tbs.len() + sct.extensions.len());
    out.push(sct.version);
    out.push(0); // certificate_timestamp
    out.extend_from_slice(&sct.timestamp.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
    out.extend_from_slice(issuer_key_hash);
    // tbs.len() < MAX_CERT_SIZE < 2^24: the three low bytes are the whole length.
    out.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(tbs);
    out.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
    out.extend_from_slice(sct.extensions);
    out
}

// === The SCT list (TLS encoding, RFC 6962 section 3.3) ===

/// A cursor over TLS-encoded bytes (RFC 5246 section 4): big-endian integers and vectors
/// with a length prefix, every length checked against what is left.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SctError> {
        if self.0.len() < n {
            return Err(SctError::MalformedList(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn uint(&mut self, n: usize, what: &'static str) -> Result<u64, SctError> {
        Ok(self
            .take(n, what)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A `<0..2^16-1>` vector.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], SctError> {
        let n = self.uint(2, what)? as usize;
        self.take(n, what)
    }
}

/// RFC 6962 section 3.3: `SignedCertificateTimestampList { SerializedSCT
/// sct_list<1..2^16-1>; }`, each `SerializedSCT` an `opaque <1..2^16-1>` holding one SCT.
fn parse_list(list: &[u8]) -> Result<Vec<Sct<'_>>, SctError> {
    let mut outer = Tls(list);
    let body = outer.vec16("the list length is larger than the extension")?;
    if !outer.0.is_empty() {
        return Err(SctError::MalformedList("bytes follow the list"));
    }
    if body.is_empty() {
        return Err(SctError::MalformedList("the list is empty"));
    }
    let mut items = Tls(body);
    let mut scts = Vec::new();
    while !items.0.is_empty() {
        if scts.len() == MAX_SCTS {
            return Err(SctError::TooManyScts);
        }
        let one = items.vec16("an SCT's length is larger than the list")?;
        if one.is_empty() {
            return Err(SctError::MalformedList("an SCT is empty"));
        }
        scts.push(parse_sct(one)?);
    }
    Ok(scts)
}

/// RFC 6962 section 3.2: `SignedCertificateTimestamp { Version sct_version; LogID id;
/// uint64 timestamp; CtExtensions extensions; digitally-signed struct {...}; }`, where the
/// signature is `SignatureAndHashAlgorithm` then `opaque signature<0..2^16-1>`. An SCT of
/// another version is kept whole, unparsed, to be turned down (it may be laid out
/// otherwise).
fn parse_sct(bytes: &[u8]) -> Result<Sct<'_>, SctError> {
    let mut r = Tls(bytes);
    let version = r.uint(1, "an SCT is truncated")? as u8;
    if version != 0 {
        return Ok(Sct {
            version,
            log_id: &[],
            timestamp: 0,
            extensions: &[],
            hash: 0,
            signature_alg: 0,
            signature: &[],
        });
    }
    let log_id = r.take(32, "an SCT is truncated in its log ID")?;
    let timestamp = r.uint(8, "an SCT is truncated in its timestamp")?;
    let extensions = r.vec16("an SCT's extensions are longer than the SCT")?;
    let hash = r.uint(1, "an SCT is truncated in its algorithms")? as u8;
    let signature_alg = r.uint(1, "an SCT is truncated in its algorithms")? as u8;
    let signature = r.vec16("an SCT's signature is longer than the SCT")?;
    if !r.0.is_empty() {
        return Err(SctError::MalformedList("bytes follow an SCT's signature"));
    }
    Ok(Sct {
        version,
        log_id,
        timestamp,
        extensions,
        hash,
        signature_alg,
        signature,
    })
}

// === The precertificate TBS (DER, RFC 5280 section 4.1) ===

/// A certificate's TBSCertificate with the SCT list extension removed, and that extension's
/// TLS-encoded list.
struct Precert<'a> {
    tbs: Vec<u8>,
    sct_list: Option<&'a [u8]>,
}

/// One DER element: its tag, its whole encoding and its content.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads one DER element off the front of `input` (X.690 section 8.1: single-byte tags,
/// definite lengths in their shortest form, at most four length bytes).
fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), SctError> {
    let bad = SctError::BadCertificate;
    let [tag, first, rest @ ..] = input else {
        return Err(bad("an element is truncated"));
    };
    if tag & 0x1f == 0x1f {
        return Err(bad("an element has a multi-byte tag"));
    }
    let (len, rest) = match *first {
        n @ 0..=0x7f => (n as usize, rest),
        0x81..=0x84 => {
            let n = (*first & 0x7f) as usize;
            if rest.len() < n {
                return Err(bad("an element's length is truncated"));
            }
            let (bytes, rest) = rest.split_at(n);
            if bytes[0] == 0 {
                return Err(bad("an element's length is not minimal"));
            }
            let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            if len < 0x80 {
                return Err(bad("an element's length is not minimal"));
            }
            (len, rest)
        }
        _ => return Err(bad("an element's length is indefinite or too large")),
    };
    if rest.len() < len {
        return Err(bad("an element is longer than what holds it"));
    }
    let header = input.len() - rest.len();
    let (content, after) = rest.split_at(len);
    Ok((
        Tlv {
            tag: *tag,
            whole: &input[..header + len],
            content,
        },
        after,
    ))
}

/// Reads exactly one DER element of tag `tag` spanning all of `input`.
fn read_only<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<Tlv<'a>, SctError> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != tag || !rest.is_empty() {
        return Err(SctError::BadCertificate(what));
    }
    Ok(tlv)
}

/// The elements of a constructed element's content, in order.
fn elements(mut content: &[u8]) -> Result<Vec<Tlv<'_>>, SctError> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tlv, rest) = read_tlv(content)?;
        out.push(tlv);
        content = rest;
    }
    Ok(out)
}

/// A DER element of `tag` around `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// RFC 6962 section 3.2 (and certificate-transparency-go `x509.BuildPrecertTBS`): the
/// TBSCertificate the log signed is the certificate's with the SCT list extension removed;
/// every other element and extension keeps its bytes and its place. Only the lengths of
/// the elements around the removed extension change (an empty extension list goes, as the
/// field is optional).
fn precert_tbs(leaf: &[u8]) -> Result<Precert<'_>, SctError> {
    // The certificate must be one x509-parser accepts; the walk below then only looks for
    // the extension.
    match x509_parser::parse_x509_certificate(leaf) {
        Ok((&[], _)) => {}
        _ => return Err(SctError::BadCertificate("x509-parser does not accept it")),
    }
    let cert = read_only(leaf, TAG_SEQUENCE, "the certificate is not one SEQUENCE")?;
    let (tbs, _) = read_tlv(cert.content)?;
    if tbs.tag != TAG_SEQUENCE {
        return Err(SctError::BadCertificate(
            "the TBSCertificate is not a SEQUENCE",
        ));
    }
    let fields = elements(tbs.content)?;
    let mut content = Vec::with_capacity(tbs.content.len());
    let mut sct_list = None;
    for field in &fields {
        if field.tag != TAG_EXTENSIONS {
            content.extend_from_slice(field.whole);
            continue;
        }
        let list = read_only(
            field.content,
            TAG_SEQUENCE,
            "the extensions are not a SEQUENCE",
        )?;
        let mut kept = Vec::with_capacity(list.content.len());
        for ext in elements(list.content)? {
            match sct_extension(&ext)? {
                Some(_) if sct_list.is_some() => return Err(SctError::DuplicateExtension),
                Some(value) => sct_list = Some(value),
                None => kept.extend_from_slice(ext.whole),
            }
        }
        if !kept.is_empty() {
            content.extend_from_slice(&der(TAG_EXTENSIONS, &der(TAG_SEQUENCE, &kept)));
        }
    }
    Ok(Precert {
        tbs: der(TAG_SEQUENCE, &content),
        sct_list,
    })
}

/// If `ext` (RFC 5280 `Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE,
/// extnValue OCTET STRING }`) is the SCT list extension, its TLS list: RFC 6962 section
/// 3.3 wraps the list in an OCTET STRING inside extnValue.
fn sct_extension<'a>(ext: &Tlv<'a>) -> Result<Option<&'a [u8]>, SctError> {
    if ext.tag != TAG_SEQUENCE {
        return Err(SctError::BadCertificate("an extension is not a SEQUENCE"));
    }
    let parts = elements(ext.content)?;
    let Some(oid) = parts.first() else {
        return Err(SctError::BadCertificate("an extension is empty"));
    };
    if oid.tag != TAG_OID {
        return Err(SctError::BadCertificate(
            "an extension does not start with its OID",
        ));
    }
    if oid.content != OID_SCT_LIST {
        return Ok(None);
    }
    let value = match &parts[1..] {
        [v] => v,
        [c, v] if c.tag == TAG_BOOLEAN => v,
        _ => {
            return Err(SctError::MalformedList(
                "the extension is not OID, [critical,] value",
            ))
        }
    };
    if value.tag != TAG_OCTET_STRING {
        return Err(SctError::MalformedList(
            "the extension value is not an OCTET STRING",
        ));
    }
    let inner = read_only(value.content, TAG_OCTET_STRING, "")
        .map_err(|_| SctError::MalformedList("the extension value holds no OCTET STRING"))?;
    Ok(Some(inner.content))
}

#[cfg(test)]
mod tests;
