//! The token's structure: a CMS `ContentInfo` of `SignedData` (RFC 5652 section 5) whose
//! encapsulated content is a `TSTInfo` (RFC 3161 section 2.4.2), parsed with bounds and
//! nothing trusted yet.

use cms::cert::x509::Certificate;
use cms::content_info::ContentInfo;
use cms::signed_data::{CertificateSet, SignedData, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Reader, SliceReader, Tag, Tagged};
use time::{Date, Month, OffsetDateTime, Time};

use super::TimestampError;

/// Tokens larger than this are refused before parsing (real ones are 0.5 to 6 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;
/// SignerInfos a token may carry (a TSA signs once; RFC 3161 section 2.4.1).
pub const MAX_SIGNERS: usize = 4;
/// Certificates a token may embed (the TSA's leaf and its chain).
pub const MAX_CERTIFICATES: usize = 8;
/// Optional TSTInfo fields after genTime (accuracy, ordering, nonce, tsa, extensions).
const MAX_TST_TRAILING: usize = 5;
/// Elements of any one SET in the token, at most (the `der` crate sorts a SET OF as it
/// decodes it, in quadratic time: this keeps that bounded whatever the token's shape).
const MAX_SET_ELEMENTS: usize = 64;
/// Nesting of constructed values, at most (certificates nest about ten deep).
const MAX_DEPTH: usize = 32;
/// Fractional-second digits of a genTime, at most (nanoseconds).
const MAX_FRACTION_DIGITS: usize = 9;

pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub const ID_SIGNING_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
pub const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");

/// A parsed token: the pieces verification reads.
pub struct Token {
    /// The DER of the encapsulated TSTInfo (what the message-digest attribute hashes).
    pub tst_info_der: Vec<u8>,
    pub tst_info: TstInfo,
    pub signers: Vec<SignerInfo>,
    /// The embedded certificates, re-encoded as DER.
    pub certificates: Vec<Vec<u8>>,
}

/// The TSTInfo fields verification reads (RFC 3161 section 2.4.2).
pub struct TstInfo {
    /// `messageImprint.hashAlgorithm.algorithm`.
    pub imprint_alg: ObjectIdentifier,
    /// `messageImprint.hashedMessage`.
    pub imprint: Vec<u8>,
    pub gen_time: OffsetDateTime,
    /// `policy` (the TSA's policy under which the token was issued).
    pub policy: ObjectIdentifier,
    /// `accuracy`, when given (RFC 3161 section 2.4.2: seconds, millis, micros).
    pub accuracy: Option<time::Duration>,
}

/// Parses a DER `TimeStampToken` (RFC 3161 section 2.4.2: a `ContentInfo` whose content is
/// `SignedData` with `eContentType` id-ct-TSTInfo).
pub fn parse(token: &[u8]) -> Result<Token, TimestampError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TimestampError::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let malformed = |what: &'static str| {
        move |e: der::Error| TimestampError::Malformed {
            what,
            reason: e.to_string(),
        }
    };
    check_shape(token, 0)?;
    let token = unwrap_response(token)?;
    let info = ContentInfo::from_der(token).map_err(malformed("ContentInfo"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(TimestampError::NotSignedData(info.content_type.to_string()));
    }
    let signed: SignedData = info.content.decode_as().map_err(malformed("SignedData"))?;
    let encap = &signed.encap_content_info;
    if encap.econtent_type != ID_CT_TST_INFO {
        return Err(TimestampError::NotTstInfo(encap.econtent_type.to_string()));
    }
    let econtent = encap.econtent.as_ref().ok_or(TimestampError::NoTstInfo)?;
    let tst_info_der = econtent
        .decode_as::<OctetString>()
        .map_err(malformed("eContent OCTET STRING"))?
        .into_bytes();
    let tst_info = parse_tst_info(&tst_info_der)?;

    let signers: Vec<SignerInfo> = signed.signer_infos.0.into_vec();
    if signers.is_empty() {
        return Err(TimestampError::NoSigner);
    }
    if signers.len() > MAX_SIGNERS {
        return Err(TimestampError::TooManySigners {
            count: signers.len(),
            max: MAX_SIGNERS,
        });
    }
    let certificates = certificates(signed.certificates)?;
    Ok(Token {
        tst_info_der,
        tst_info,
        signers,
        certificates,
    })
}

/// Walks the DER tree once, linearly, before anything decodes it: no SET holds more than
/// [`MAX_SET_ELEMENTS`] elements and nothing nests deeper than [`MAX_DEPTH`].
fn check_shape(der: &[u8], depth: usize) -> Result<usize, TimestampError> {
    let malformed = |e: der::Error| TimestampError::Malformed {
        what: "DER structure",
        reason: e.to_string(),
    };
    let mut r = SliceReader::new(der).map_err(malformed)?;
    let mut count = 0;
    while !r.is_finished() {
        let any: der::AnyRef<'_> = r.decode().map_err(malformed)?;
        count += 1;
        if any.tag().is_constructed() {
            if depth >= MAX_DEPTH {
                return Err(TimestampError::Malformed {
                    what: "DER structure",
                    reason: format!("nested deeper than {MAX_DEPTH}"),
                });
            }
            let children = check_shape(any.value(), depth + 1)?;
            if any.tag() == Tag::Set && children > MAX_SET_ELEMENTS {
                return Err(TimestampError::Malformed {
                    what: "DER structure",
                    reason: format!("a SET of {children} elements, more than {MAX_SET_ELEMENTS}"),
                });
            }
        }
    }
    Ok(count)
}

/// RFC 3161 section 2.4.2: `TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
/// timeStampToken TimeStampToken OPTIONAL }`, which sigstore bundles carry whole (as
/// digitorus/timestamp `ParseResponse` reads them), or a bare `TimeStampToken` (a
/// `ContentInfo`, whose first field is an OID), as Notation carries it. A response's status
/// must be granted (0) or grantedWithMods (1).
fn unwrap_response(der: &[u8]) -> Result<&[u8], TimestampError> {
    let malformed = |e: der::Error| TimestampError::Malformed {
        what: "TimeStampResp",
        reason: e.to_string(),
    };
    let outer = der::AnyRef::from_der(der).map_err(malformed)?;
    if outer.tag() != Tag::Sequence {
        return Err(TimestampError::Malformed {
            what: "TimeStampResp",
            reason: format!("expected a SEQUENCE, found {}", outer.tag()),
        });
    }
    let mut r = SliceReader::new(outer.value()).map_err(malformed)?;
    let first: der::AnyRef<'_> = r.decode().map_err(malformed)?;
    if first.tag() == Tag::ObjectIdentifier {
        return Ok(der);
    }
    // PKIStatusInfo ::= SEQUENCE { status INTEGER, statusString OPTIONAL, failInfo OPTIONAL }
    if first.tag() != Tag::Sequence {
        return Err(TimestampError::Malformed {
            what: "TimeStampResp",
            reason: format!("expected PKIStatusInfo or an OID, found {}", first.tag()),
        });
    }
    let mut status = SliceReader::new(first.value()).map_err(malformed)?;
    let code: u8 = status.decode().map_err(malformed)?;
    if code > 1 {
        return Err(TimestampError::Refused(code));
    }
    let token: der::AnyRef<'_> = r.decode().map_err(|_| TimestampError::NoToken)?;
    r.finish(()).map_err(malformed)?;
    let len = |any: der::AnyRef<'_>| -> Result<usize, TimestampError> {
        let len = any.encoded_len().map_err(malformed)?;
        usize::try_from(len).map_err(malformed)
    };
    let start = len(first)?;
    outer
        .value()
        .get(start..start + len(token)?)
        .ok_or(TimestampError::NoToken)
}

fn certificates(set: Option<CertificateSet>) -> Result<Vec<Vec<u8>>, TimestampError> {
    let Some(set) = set else {
        return Ok(Vec::new());
    };
    let choices = set.0.into_vec();
    if choices.len() > MAX_CERTIFICATES {
        return Err(TimestampError::TooManyCertificates {
            count: choices.len(),
            max: MAX_CERTIFICATES,
        });
    }
    choices
        .into_iter()
        .filter_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(cert) => Some(cert),
            // Other certificate formats never name a TSA's signing key.
            cms::cert::CertificateChoices::Other(_) => None,
        })
        .map(|cert: Certificate| {
            cert.to_der().map_err(|e| TimestampError::Malformed {
                what: "embedded certificate",
                reason: e.to_string(),
            })
        })
        .collect()
}

/// RFC 3161 section 2.4.2: `TSTInfo ::= SEQUENCE { version, policy, messageImprint,
/// serialNumber, genTime, accuracy OPTIONAL, ordering DEFAULT FALSE, nonce OPTIONAL,
/// tsa [0] OPTIONAL, extensions [1] OPTIONAL }`. Only the fields up to genTime are read;
/// the optional ones must still be well-formed TLVs.
fn parse_tst_info(der: &[u8]) -> Result<TstInfo, TimestampError> {
    let malformed = |e: der::Error| TimestampError::Malformed {
        what: "TSTInfo",
        reason: e.to_string(),
    };
    let seq = Any::from_der(der).map_err(malformed)?;
    if seq.tag() != Tag::Sequence {
        return Err(TimestampError::Malformed {
            what: "TSTInfo",
            reason: format!("expected a SEQUENCE, found {}", seq.tag()),
        });
    }
    let mut r = SliceReader::new(seq.value()).map_err(malformed)?;
    let version: u8 = r.decode().map_err(malformed)?;
    if version != 1 {
        return Err(TimestampError::Malformed {
            what: "TSTInfo",
            reason: format!("version {version}, expected 1"),
        });
    }
    let policy: ObjectIdentifier = r.decode().map_err(malformed)?;
    let imprint: Any = r.decode().map_err(malformed)?;
    let (imprint_alg, imprint) = parse_imprint(&imprint).map_err(malformed)?;
    let _serial: der::asn1::Int = r.decode().map_err(malformed)?;
    let gen_time: Any = r.decode().map_err(malformed)?;
    let gen_time = parse_generalized_time(&gen_time)?;
    let mut trailing = 0;
    let mut accuracy = None;
    while !r.is_finished() {
        trailing += 1;
        if trailing > MAX_TST_TRAILING {
            return Err(TimestampError::Malformed {
                what: "TSTInfo",
                reason: "too many fields".to_owned(),
            });
        }
        let field: Any = r.decode().map_err(malformed)?;
        // The only SEQUENCE after genTime is `accuracy`, and it comes first.
        if trailing == 1 && field.tag() == Tag::Sequence {
            accuracy = Some(parse_accuracy(&field).map_err(malformed)?);
        }
    }
    Ok(TstInfo {
        imprint_alg,
        imprint,
        gen_time,
        policy,
        accuracy,
    })
}

/// `Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL,
/// micros [1] INTEGER (1..999) OPTIONAL }` (RFC 3161 section 2.4.2); the tagged fields are
/// IMPLICIT (the module's default tagging).
pub(super) fn parse_accuracy(any: &Any) -> der::Result<time::Duration> {
    let mut r = SliceReader::new(any.value())?;
    let mut total = time::Duration::ZERO;
    let mut last: Option<u32> = None;
    while !r.is_finished() {
        let field: Any = r.decode()?;
        let (order, unit) = match field.tag() {
            Tag::Integer => (0, time::Duration::SECOND),
            Tag::ContextSpecific { number, .. } if number.value() == 0 => {
                (1, time::Duration::MILLISECOND)
            }
            Tag::ContextSpecific { number, .. } if number.value() == 1 => {
                (2, time::Duration::MICROSECOND)
            }
            tag => return Err(tag.unexpected_error(None)),
        };
        if last.is_some_and(|l| l >= order) {
            return Err(der::ErrorKind::Noncanonical { tag: field.tag() }.into());
        }
        last = Some(order);
        // A non-negative INTEGER of at most 32 bits (bounding the arithmetic).
        let value = field.value();
        if value.first().is_none_or(|b| b & 0x80 != 0) {
            return Err(der::ErrorKind::Value { tag: field.tag() }.into());
        }
        let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
        let bytes = value.get(start..).unwrap_or_default();
        if bytes.len() > 4 {
            return Err(der::ErrorKind::Overlength.into());
        }
        let n = bytes.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b));
        if order > 0 && !(1..=999).contains(&n) {
            return Err(der::ErrorKind::Value { tag: field.tag() }.into());
        }
        total += unit * n;
    }
    Ok(total)
}

/// `MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET
/// STRING }`.
fn parse_imprint(any: &Any) -> der::Result<(ObjectIdentifier, Vec<u8>)> {
    if any.tag() != Tag::Sequence {
        return Err(any.tag().unexpected_error(Some(Tag::Sequence)));
    }
    let mut r = SliceReader::new(any.value())?;
    let alg: cms::cert::x509::spki::AlgorithmIdentifierOwned = r.decode()?;
    let hashed: OctetString = r.decode()?;
    r.finish(())?;
    Ok((alg.oid, hashed.into_bytes()))
}

/// A GeneralizedTime as RFC 3161 section 2.4.2 writes genTime: `YYYYMMDDhhmmss[.s...]Z`,
/// UTC, with fractional seconds allowed (which `der`'s own type refuses).
pub fn parse_generalized_time(any: &Any) -> Result<OffsetDateTime, TimestampError> {
    let bad = |reason: &str| TimestampError::BadGenTime(reason.to_owned());
    if any.tag() != Tag::GeneralizedTime {
        return Err(bad("genTime is not a GeneralizedTime"));
    }
    let s = any.value();
    let Some((&b'Z', body)) = s.split_last() else {
        return Err(bad("genTime does not end in Z (UTC)"));
    };
    if body.len() < 14 || !body[..14].iter().all(u8::is_ascii_digit) {
        return Err(bad("genTime is not YYYYMMDDhhmmss"));
    }
    let num = |range: std::ops::Range<usize>| -> u32 {
        body[range]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let mut nanos = 0u32;
    if body.len() > 14 {
        let frac = &body[15..];
        if body[14] != b'.'
            || frac.is_empty()
            || frac.len() > MAX_FRACTION_DIGITS
            || !frac.iter().all(u8::is_ascii_digit)
        {
            return Err(bad("genTime has a malformed fraction of a second"));
        }
        nanos = frac
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(MAX_FRACTION_DIGITS)
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    }
    let year = i32::try_from(num(0..4)).map_err(|_| bad("genTime year"))?;
    let month = u8::try_from(num(4..6))
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| bad("genTime month out of range"))?;
    let day = u8::try_from(num(6..8)).map_err(|_| bad("genTime day"))?;
    let date = Date::from_calendar_date(year, month, day)
        .map_err(|_| bad("genTime is not a calendar date"))?;
    let (h, m, sec) = (num(8..10), num(10..12), num(12..14));
    let clock = Time::from_hms_nano(h as u8, m as u8, sec as u8, nanos)
        .map_err(|_| bad("genTime is not a time of day"))?;
    Ok(date.with_time(clock).assume_utc())
}
