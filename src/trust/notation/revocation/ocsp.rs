//! OCSP (RFC 6960) as notation-core-go asks and judges it
//! (`revocation/internal/ocsp/ocsp.go`, with `golang.org/x/crypto/ocsp` underneath),
//! following `specs/trust-store-trust-policy.md` "Revocation Checking with OCSP".
//!
//! The request names the certificate by a SHA-1 CertID, as notation-core-go does (many
//! public CAs' responders answer nothing else), and goes by GET when its encoding is
//! short, by POST otherwise. The response must be signed by the issuer, or by a delegated
//! responder the issuer certified for id-kp-OCSPSigning (RFC 6960 section 4.2.2.2;
//! x/crypto does not check that EKU, this does), must name the certificate by serial *and*
//! issuer (x/crypto matches the serial alone), must not be expired (`nextUpdate`, which
//! must be present, as notation-core-go treats an absent one as passed), nor dated in the
//! future.

use der::{asn1::ObjectIdentifier, Decode, Encode};
use time::OffsetDateTime;
use x509_cert::{ext::Extensions, serial_number::SerialNumber, spki::AlgorithmIdentifierOwned};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};

use super::{
    chain::{signed_by, strip_zeros, Cert},
    sig::{self, read_tlv},
};

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
/// Responder certificates looked at in one response, at most.
const MAX_RESPONSE_CERTS: usize = 4;
/// How far a response's `thisUpdate` may lie ahead of this machine's clock.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// What a responder said of the certificate (a response that verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Good,
    Revoked(OffsetDateTime),
    /// The responder does not know the certificate (`unknown`): a valid answer, so no
    /// other responder is asked (ocsp.go `CertCheckStatus`), though CRLs may be.
    Unknown,
}

/// The DER OCSPRequest for `cert` issued by `issuer`: one SHA-1 CertID, no nonce, no
/// signature (x/crypto `ocsp.CreateRequest` with `crypto.SHA1`).
pub fn request(cert: &Cert, issuer: &Cert) -> Result<Vec<u8>, String> {
    let cert_id = cert_id(cert, issuer, OID_SHA1)?;
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request
        .to_der()
        .map_err(|e| format!("cannot encode the OCSP request: {e}"))
}

/// The CertID of `cert` under the hash `alg` (RFC 6960 section 4.1.1: the issuer's DER
/// name and the bits of its subjectPublicKey, hashed).
fn cert_id(cert: &Cert, issuer: &Cert, alg: ObjectIdentifier) -> Result<CertId, String> {
    let digest =
        digest_of(alg).ok_or_else(|| format!("unsupported issuer hash algorithm {alg}"))?;
    let hash = |bytes: &[u8]| aws_lc_rs::digest::digest(digest, bytes).as_ref().to_vec();
    let octets = |bytes: Vec<u8>| {
        der::asn1::OctetString::new(bytes).map_err(|e| format!("cannot encode the CertID: {e}"))
    };
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: alg,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: octets(hash(&issuer.subject))?,
        issuer_key_hash: octets(hash(&issuer.key_bits))?,
        serial_number: SerialNumber::new(&cert.serial)
            .map_err(|e| format!("cannot encode the serial number: {e}"))?,
    })
}

fn digest_of(alg: ObjectIdentifier) -> Option<&'static aws_lc_rs::digest::Algorithm> {
    Some(match alg {
        OID_SHA1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        OID_SHA256 => &aws_lc_rs::digest::SHA256,
        OID_SHA384 => &aws_lc_rs::digest::SHA384,
        OID_SHA512 => &aws_lc_rs::digest::SHA512,
        _ => return None,
    })
}

/// Whether the request goes by GET (ocsp.go `executeOCSPCheck`: the URL-escaped base64
/// of the request shorter than 255 bytes), and the URL it goes to then.
pub fn get_url(server: &str, request: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(request);
    if encoded.len() >= 255 {
        return None;
    }
    // url.QueryEscape: '+', '/' and '=' are the base64 characters it changes.
    let escaped = encoded
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    if escaped.len() >= 255 {
        return None;
    }
    // url.JoinPath: one '/' between the server's path and the request.
    Some(format!("{}/{escaped}", server.trim_end_matches('/')))
}

/// Judges a responder's answer `body` about `cert` (issued by `issuer`) at `now`, with the
/// authentic signing time if there is one (ocsp.go `checkStatusFromServer` after
/// `ocsp.ParseResponseForCert`): the answer, and the response's `nextUpdate`.
pub fn judge(
    body: &[u8],
    cert: &Cert,
    issuer: &Cert,
    now: OffsetDateTime,
    signing_time: Option<OffsetDateTime>,
) -> Result<(Answer, OffsetDateTime), String> {
    let response =
        OcspResponse::from_der(body).map_err(|e| format!("malformed OCSP response: {e}"))?;
    let status = response.response_status;
    if status != OcspResponseStatus::Successful {
        return Err(format!("OCSP responder answered {}", status_text(status)));
    }
    let bytes = response
        .response_bytes
        .ok_or("OCSP response has no response bytes")?;
    if bytes.response_type != OID_BASIC {
        return Err("bad OCSP response type".to_owned());
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der)
        .map_err(|e| format!("malformed basic OCSP response: {e}"))?;
    let signed = sig::split(basic_der).ok_or("malformed basic OCSP response")?;

    // The single response for this certificate: its serial, and a CertID for its issuer
    // under whichever hash the responder chose.
    let mut single = None;
    for candidate in &basic.tbs_response_data.responses {
        if strip_zeros(candidate.cert_id.serial_number.as_bytes()) != cert.serial {
            continue;
        }
        let alg = candidate.cert_id.hash_algorithm.oid;
        let expected = cert_id(cert, issuer, alg)?;
        if candidate.cert_id.issuer_name_hash != expected.issuer_name_hash
            || candidate.cert_id.issuer_key_hash != expected.issuer_key_hash
        {
            continue;
        }
        single = Some(candidate);
        break;
    }
    let single = single.ok_or("no response matching the supplied certificate")?;

    authorize(&signed, issuer, now)?;

    // ocsp.go: expired when now is after nextUpdate (an absent one counts as passed).
    let this_update = time_of(&single.this_update.0)?;
    if this_update > now + CLOCK_SKEW {
        return Err(format!(
            "OCSP response thisUpdate {this_update} is in the future"
        ));
    }
    let next_update = match &single.next_update {
        Some(next) => time_of(&next.0)?,
        None => return Err("expired OCSP response".to_owned()),
    };
    if now > next_update {
        return Err("expired OCSP response".to_owned());
    }
    // x/crypto: a critical single extension is refused.
    if let Some(ext) = single
        .single_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.critical))
    {
        return Err(format!(
            "unsupported critical extension {} in OCSP response",
            ext.extn_id
        ));
    }
    let answer = match &single.cert_status {
        CertStatus::Good(_) => Answer::Good,
        CertStatus::Unknown(_) => Answer::Unknown,
        CertStatus::Revoked(info) => {
            // The spec: revoked unless the invalidity date is after the authentic signing
            // time (ocsp.go reads it from the single extensions).
            if let (Some(signed_at), Some(invalid)) =
                (signing_time, invalidity(single.single_extensions.as_ref()))
            {
                if signed_at < invalid {
                    return Ok((Answer::Good, next_update));
                }
            }
            Answer::Revoked(time_of(&info.revocation_time.0)?)
        }
    };
    Ok((answer, next_update))
}

/// The response is signed by the issuer itself, or by a certificate the response carries
/// that the issuer signed, that has id-kp-OCSPSigning and is valid at `now`.
fn authorize(signed: &sig::Signed<'_>, issuer: &Cert, now: OffsetDateTime) -> Result<(), String> {
    if sig::verify_der(&issuer.spki, signed.alg, signed.tbs, signed.signature).is_ok() {
        return Ok(());
    }
    let mut why = format!("not signed by certificate #{}", issuer.index);
    for der in raw_certs(signed.rest).into_iter().take(MAX_RESPONSE_CERTS) {
        let responder = match Cert::parse(der, 0) {
            Ok(c) => c,
            Err(e) => {
                why = format!("responder certificate: {e}");
                continue;
            }
        };
        let checks = || -> Result<(), String> {
            if responder.issuer != issuer.subject {
                return Err("the responder certificate is not issued by the issuer".into());
            }
            signed_by(der, &issuer.spki).map_err(|e| {
                format!("the responder certificate is not signed by the issuer: {e}")
            })?;
            if !responder.eku.is_some_and(|e| e.ocsp_signing) {
                return Err("the responder certificate lacks id-kp-OCSPSigning".into());
            }
            if now < responder.not_before || now > responder.not_after {
                return Err("the responder certificate is not valid now".into());
            }
            sig::verify_der(&responder.spki, signed.alg, signed.tbs, signed.signature)
                .map_err(|e| format!("the responder's signature: {e}"))
        };
        match checks() {
            Ok(()) => return Ok(()),
            Err(e) => why = e,
        }
    }
    Err(format!("bad OCSP signature: {why}"))
}

/// The DER of each certificate in a BasicOCSPResponse's `certs [0] EXPLICIT SEQUENCE OF
/// Certificate OPTIONAL` (what follows its signature), byte for byte as the responder sent
/// them.
fn raw_certs(rest: &[u8]) -> Vec<&[u8]> {
    const CERTS: u8 = 0xa0;
    const SEQUENCE: u8 = 0x30;
    let Some((explicit, _)) = read_tlv(rest, CERTS) else {
        return Vec::new();
    };
    let Some((mut list, _)) = read_tlv(explicit, SEQUENCE) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some((_, after)) = read_tlv(list, SEQUENCE) {
        let Some(whole) = list.get(..list.len() - after.len()) else {
            break;
        };
        out.push(whole);
        list = after;
    }
    out
}

/// The invalidity date among a single response's extensions (a CRL entry extension,
/// RFC 6960 section 4.4), when present and well formed.
fn invalidity(exts: Option<&Extensions>) -> Option<OffsetDateTime> {
    let ext = exts?.iter().find(|e| e.extn_id == OID_INVALIDITY_DATE)?;
    let time = der::asn1::GeneralizedTime::from_der(ext.extn_value.as_bytes()).ok()?;
    time_of(&time).ok()
}

fn time_of(t: &der::asn1::GeneralizedTime) -> Result<OffsetDateTime, String> {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).map_err(|_| "bad time")?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| "bad time".to_owned())
}

fn status_text(status: OcspResponseStatus) -> &'static str {
    match status {
        OcspResponseStatus::Successful => "successful",
        OcspResponseStatus::MalformedRequest => "OCSP malformed",
        OcspResponseStatus::InternalError => "OCSP internal error",
        OcspResponseStatus::TryLater => "OCSP try later",
        OcspResponseStatus::SigRequired => "OCSP signature required",
        OcspResponseStatus::Unauthorized => "OCSP unauthorized",
    }
}
