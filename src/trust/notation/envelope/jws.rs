//! The JWS envelope (`specs/signature-envelope-jws.md`): the flattened JWS JSON
//! serialization (RFC 7515 section 7.2.2) `{payload, protected, header, signature}`, read
//! as notation-core-go `signature/jws` reads it (`ParseEnvelope`, `Verify`, `Content`,
//! `parseProtectedHeaders`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::attributes::{
    Label, Parts, Protected, AUTHENTIC_SIGNING_TIME, EXPIRY, SIGNING_AGENT, SIGNING_SCHEME,
    SIGNING_TIME, TIMESTAMP_SIGNATURE,
};
use super::json::{Json, Match};
use super::{
    base64std, base64url, Algorithm, EnvelopeError, MAX_CERTIFICATE, MAX_CHAIN, MAX_ENVELOPE,
    MAX_SIGNATURE, MAX_TIMESTAMP,
};

/// The protected header's names the spec defines ("Protected Headers"); the rest are
/// extended attributes. The order is the index [`read_protected`] reads them by.
const PROTECTED: [&str; 7] = [
    "alg",
    "cty",
    "crit",
    SIGNING_SCHEME,
    SIGNING_TIME,
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
];

/// Reads a JWS envelope's structure.
///
/// "Signature Envelope": the four members, nothing else is used (Go ignores other members,
/// and so does this). "Unprotected Headers": `x5c` (padded base64 DER certificates, the
/// signing certificate first), `io.cncf.notary.timestampSignature` (padded base64
/// TimeStampToken) and `io.cncf.notary.signingAgent`. "Create the JWS Signing Input":
/// `ASCII(protected) || '.' || ASCII(payload)`, the two members exactly as they are in the
/// envelope.
pub(super) fn parse(bytes: &[u8]) -> Result<Parts, EnvelopeError> {
    let malformed = |m: String| EnvelopeError::Malformed(m);
    let doc = Json::parse(bytes).map_err(|e| malformed(format!("JWS JSON: {e}")))?;
    let top = doc
        .members(
            &["payload", "protected", "header", "signature"],
            Match::Folded,
        )
        .map_err(|e| malformed(format!("JWS JSON: {e}")))?;
    let text = |i: usize, name: &str| -> Result<&str, EnvelopeError> {
        match top.get(i) {
            Some(Json::Str(s)) => Ok(s),
            None => Err(malformed(format!("JWS JSON has no {name:?} member"))),
            Some(v) => Err(malformed(format!(
                "JWS {name:?} is {}, not a string",
                v.kind()
            ))),
        }
    };
    let payload_b64 = text(0, "payload")?;
    let protected_b64 = text(1, "protected")?;
    let signature_b64 = text(3, "signature")?;

    let (chain, timestamp, signing_agent) = read_header(top.get(2))?;

    // notation-core-go verifies the compact form `protected.payload.signature` with
    // golang-jwt, whose base64url failures are integrity errors ("signature is invalid").
    let protected_json = base64url(protected_b64, MAX_ENVELOPE as usize)
        .map_err(|e| EnvelopeError::Invalid(format!("protected header: {e}")))?;
    let protected = read_protected(&protected_json)?;
    let payload = base64url(payload_b64, MAX_ENVELOPE as usize).map_err(EnvelopeError::Invalid)?;
    let signature = base64url(signature_b64, MAX_SIGNATURE).map_err(EnvelopeError::Invalid)?;
    if signature.is_empty() {
        return Err(malformed("signature missing in jws-json envelope".into()));
    }

    let mut signing_input = Vec::with_capacity(protected_b64.len() + 1 + payload_b64.len());
    signing_input.extend_from_slice(protected_b64.as_bytes());
    signing_input.push(b'.');
    signing_input.extend_from_slice(payload_b64.as_bytes());

    Ok(Parts {
        protected,
        payload,
        signing_input,
        signature,
        chain,
        timestamp,
        signing_agent,
    })
}

type Unprotected = (Vec<Vec<u8>>, Option<Vec<u8>>, Option<String>);

/// The unprotected `header`. A `null` member counts as absent, as Go decodes it.
fn read_header(header: Option<&Json>) -> Result<Unprotected, EnvelopeError> {
    let malformed = |m: String| EnvelopeError::Malformed(m);
    let header = match header {
        None | Some(Json::Null) => &Json::Obj(Vec::new()),
        Some(h) => h,
    };
    let members = header
        .members(&["x5c", TIMESTAMP_SIGNATURE, SIGNING_AGENT], Match::Folded)
        .map_err(|e| malformed(format!("JWS header: {e}")))?;

    let mut chain = Vec::new();
    match members.get(0) {
        None | Some(Json::Null) => {}
        Some(Json::Arr(items)) => {
            if items.len() > MAX_CHAIN {
                return Err(malformed(format!(
                    "certificate chain has {} certificates, more than {MAX_CHAIN}",
                    items.len()
                )));
            }
            for (i, item) in items.iter().enumerate() {
                let Json::Str(b64) = item else {
                    return Err(malformed(format!(
                        "x5c[{i}] is {}, not a string",
                        item.kind()
                    )));
                };
                let der = base64std(b64, MAX_CERTIFICATE)
                    .map_err(|e| malformed(format!("x5c[{i}]: {e}")))?;
                chain.push(der);
            }
        }
        Some(v) => return Err(malformed(format!("x5c is {}, not an array", v.kind()))),
    }
    if chain.is_empty() {
        return Err(malformed("certificate chain is not present".into()));
    }

    let timestamp = match members.get(1) {
        None | Some(Json::Null) => None,
        Some(Json::Str(b64)) => Some(
            base64std(b64, MAX_TIMESTAMP)
                .map_err(|e| malformed(format!("{TIMESTAMP_SIGNATURE}: {e}")))?,
        ),
        Some(v) => {
            return Err(malformed(format!(
                "{TIMESTAMP_SIGNATURE} is {}, not a string",
                v.kind()
            )))
        }
    };
    let signing_agent = match members.get(2) {
        None | Some(Json::Null) => None,
        Some(Json::Str(s)) => Some(s.clone()),
        Some(v) => {
            return Err(malformed(format!(
                "{SIGNING_AGENT} is {}, not a string",
                v.kind()
            )))
        }
    };
    Ok((chain, timestamp, signing_agent))
}

/// The protected header: a JSON object (notation-core-go `jwsProtectedHeader` plus the
/// extended attributes, every member it does not name).
fn read_protected(bytes: &[u8]) -> Result<Protected, EnvelopeError> {
    let bad = |m: String| EnvelopeError::Malformed(format!("protected header: {m}"));
    let doc = Json::parse(bytes).map_err(bad)?;
    let members = doc.members(&PROTECTED, Match::Exact).map_err(bad)?;

    let string = |i: usize| -> Result<Option<String>, EnvelopeError> {
        match members.get(i) {
            None => Ok(None),
            Some(Json::Str(s)) => Ok(Some(s.clone())),
            Some(v) => Err(bad(format!(
                "{:?} is {}, not a string",
                PROTECTED[i],
                v.kind()
            ))),
        }
    };
    let time = |i: usize| -> Result<Option<OffsetDateTime>, EnvelopeError> {
        let Some(text) = string(i)? else {
            return Ok(None);
        };
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(Some)
            .map_err(|e| {
                bad(format!(
                    "{:?} {text:?} is not an RFC 3339 time: {e}",
                    PROTECTED[i]
                ))
            })
    };

    let mut protected = Protected::default();
    for (i, name) in PROTECTED.iter().take(3).enumerate() {
        if members.get(i).is_some() {
            protected.registered.push(Label::Text((*name).to_owned()));
        }
    }
    // "Supported alg header values": one of the six, never `none` or HMAC.
    if let Some(alg) = string(0)? {
        protected.alg = Some(Algorithm::from_jws(&alg).ok_or_else(|| {
            EnvelopeError::Invalid(format!("signature algorithm {alg:?} is not supported"))
        })?);
    }
    protected.content_type = string(1)?;
    match members.get(2) {
        None => {}
        Some(Json::Arr(items)) => {
            for item in items {
                let Json::Str(name) = item else {
                    return Err(bad(format!("\"crit\" holds {}, not a string", item.kind())));
                };
                protected.crit.push(Label::Text(name.clone()));
            }
        }
        Some(v) => return Err(bad(format!("\"crit\" is {}, not an array", v.kind()))),
    }
    protected.scheme = string(3)?;
    protected.signing_time = time(4)?;
    protected.authentic_signing_time = time(5)?;
    protected.expiry = time(6)?;
    protected.extended = members
        .rest
        .iter()
        .map(|(name, value)| {
            (
                Label::Text((*name).to_owned()),
                value.as_str().map(str::to_owned),
            )
        })
        .collect();
    Ok(protected)
}
