//! The COSE envelope (`specs/signature-envelope-cose.md`): a `COSE_Sign1_Tagged` object
//! (CBOR tag 18, RFC 9052 section 4.2), read as notation-core-go `signature/cose` reads it
//! through go-cose (`ParseEnvelope`, `Verify`, `signerInfo`, `parseProtectedHeaders`).
//!
//! CBOR and the COSE structures are coset's (Google's COSE crate over ciborium): it
//! requires tag 18, rejects duplicate header labels and an empty `crit`, and builds the
//! `Sig_structure` over the protected header's original bytes.

use coset::cbor::value::Value;
use coset::iana::{self, EnumI64 as _};
use coset::{CoseSign1, RegisteredLabel, RegisteredLabelWithPrivate, TaggedCborSerializable as _};
use time::OffsetDateTime;

use super::attributes::{
    Label, Parts, Protected, AUTHENTIC_SIGNING_TIME, EXPIRY, SIGNING_AGENT, SIGNING_SCHEME,
    SIGNING_TIME, TIMESTAMP_SIGNATURE,
};
use super::{Algorithm, EnvelopeError, MAX_CERTIFICATE, MAX_CHAIN, MAX_SIGNATURE, MAX_TIMESTAMP};

/// `x5chain` (RFC 9360).
const X5CHAIN: i64 = 33;
/// COSE labels 0 to 8 are the generic parameters RFC 9052 defines; `crit` may not name them
/// ("It MUST only contain parameters apart from integer labels in the range of 0 to 8").
const GENERIC: std::ops::RangeInclusive<i64> = 0..=8;

/// Reads a COSE envelope's structure.
///
/// "Signature Envelope": `18([protected, unprotected, payload, signature])` with an embedded
/// payload. "Unprotected Headers": `x5chain` (33, an array of DER certificates, the signing
/// certificate first), `io.cncf.notary.timestampSignature` (bstr) and
/// `io.cncf.notary.signingAgent` (tstr). "Signature": `ToBeSigned` is the CBOR
/// `Sig_structure` `["Signature1", protected, h'', payload]`.
pub(super) fn parse(bytes: &[u8]) -> Result<Parts, EnvelopeError> {
    let malformed = |m: String| EnvelopeError::Malformed(m);
    let sign1 =
        CoseSign1::from_tagged_slice(bytes).map_err(|e| malformed(format!("COSE_Sign1: {e}")))?;
    let Some(payload) = sign1.payload.clone() else {
        return Err(malformed("COSE_Sign1 payload is detached (nil)".into()));
    };
    if sign1.signature.is_empty() {
        return Err(malformed("signature missing in COSE envelope".into()));
    }
    if sign1.signature.len() > MAX_SIGNATURE {
        return Err(malformed(format!(
            "signature of {} bytes is longer than {MAX_SIGNATURE}",
            sign1.signature.len()
        )));
    }

    let protected = read_protected(&sign1.protected.header)?;
    let unprotected = &sign1.unprotected;
    if !unprotected.crit.is_empty() {
        return Err(malformed("crit must be in the protected header".into()));
    }
    // RFC 9052 section 3: a label occurs in one bucket only.
    let protected_labels = labels(&sign1.protected.header);
    if let Some(both) = labels(unprotected)
        .into_iter()
        .find(|l| protected_labels.contains(l))
    {
        return Err(malformed(format!(
            "header label {both} is in both the protected and the unprotected header"
        )));
    }

    let mut chain = None;
    let mut timestamp = None;
    let mut signing_agent = None;
    for (label, value) in &unprotected.rest {
        match label {
            coset::Label::Int(X5CHAIN) => chain = Some(read_chain(value)?),
            coset::Label::Text(t) if t == TIMESTAMP_SIGNATURE => match value {
                Value::Bytes(b) if b.len() <= MAX_TIMESTAMP => timestamp = Some(b.clone()),
                Value::Bytes(b) => {
                    return Err(malformed(format!(
                        "{TIMESTAMP_SIGNATURE} of {} bytes is longer than {MAX_TIMESTAMP}",
                        b.len()
                    )))
                }
                _ => return Err(malformed(format!("{TIMESTAMP_SIGNATURE} is not a bstr"))),
            },
            coset::Label::Text(t) if t == SIGNING_AGENT => match value {
                Value::Text(s) => signing_agent = Some(s.clone()),
                _ => return Err(malformed(format!("{SIGNING_AGENT} is not a tstr"))),
            },
            _ => {}
        }
    }
    let chain = chain.ok_or_else(|| malformed("certificate chain is not present".into()))?;

    let signing_input = sign1.tbs_data(b"");
    Ok(Parts {
        protected,
        payload,
        signing_input,
        signature: sign1.signature,
        chain,
        timestamp,
        signing_agent,
    })
}

/// `x5chain`: an array of bstr (notation-core-go requires the array form, even for one
/// certificate).
fn read_chain(value: &Value) -> Result<Vec<Vec<u8>>, EnvelopeError> {
    let malformed = |m: String| EnvelopeError::Malformed(m);
    let Value::Array(items) = value else {
        return Err(malformed(
            "certificate chain is not present (x5chain is not an array)".into(),
        ));
    };
    if items.is_empty() {
        return Err(malformed("certificate chain is not present".into()));
    }
    if items.len() > MAX_CHAIN {
        return Err(malformed(format!(
            "certificate chain has {} certificates, more than {MAX_CHAIN}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Bytes(der) if der.len() <= MAX_CERTIFICATE => Ok(der.clone()),
            Value::Bytes(der) => Err(malformed(format!(
                "x5chain[{i}] of {} bytes is longer than {MAX_CERTIFICATE}",
                der.len()
            ))),
            _ => Err(malformed(format!("x5chain[{i}] is not a bstr"))),
        })
        .collect()
}

/// The labels present in a header, as [`Label`]s.
fn labels(header: &coset::Header) -> Vec<Label> {
    let mut out = Vec::new();
    let generic = [
        (header.alg.is_some(), iana::HeaderParameter::Alg),
        (!header.crit.is_empty(), iana::HeaderParameter::Crit),
        (
            header.content_type.is_some(),
            iana::HeaderParameter::ContentType,
        ),
        (!header.key_id.is_empty(), iana::HeaderParameter::Kid),
        (!header.iv.is_empty(), iana::HeaderParameter::Iv),
        (
            !header.partial_iv.is_empty(),
            iana::HeaderParameter::PartialIv,
        ),
        (
            !header.counter_signatures.is_empty(),
            iana::HeaderParameter::CounterSignature,
        ),
    ];
    for (present, parameter) in generic {
        if present {
            out.push(Label::Int(parameter.to_i64()));
        }
    }
    out.extend(header.rest.iter().map(|(l, _)| label(l)));
    out
}

fn label(l: &coset::Label) -> Label {
    match l {
        coset::Label::Int(i) => Label::Int(*i),
        coset::Label::Text(t) => Label::Text(t.clone()),
    }
}

/// The protected header, as notation-core-go `parseProtectedHeaders` reads it: `alg` one of
/// the six, content type a tstr, the Notary Project attributes by their text labels (times
/// as CBOR tag 1 epoch date/times), everything else an extended attribute.
fn read_protected(header: &coset::Header) -> Result<Protected, EnvelopeError> {
    let bad = |m: String| EnvelopeError::Malformed(format!("protected header: {m}"));
    let mut protected = Protected {
        registered: labels(header)
            .into_iter()
            .filter(|l| matches!(l, Label::Int(i) if GENERIC.contains(i)))
            .collect(),
        ..Protected::default()
    };

    protected.alg = match &header.alg {
        None => None,
        Some(RegisteredLabelWithPrivate::Assigned(a)) => Some(cose_alg(a.to_i64())?),
        Some(RegisteredLabelWithPrivate::PrivateUse(i)) => Some(cose_alg(*i)?),
        Some(RegisteredLabelWithPrivate::Text(t)) => {
            return Err(EnvelopeError::Invalid(format!(
                "signature algorithm not supported: {t:?}"
            )))
        }
    };
    protected.content_type = match &header.content_type {
        None => None,
        Some(RegisteredLabel::Text(t)) => Some(t.clone()),
        Some(RegisteredLabel::Assigned(_)) => {
            return Err(bad("content type should be of 'tstr' type".into()))
        }
    };
    for entry in &header.crit {
        protected.crit.push(match entry {
            RegisteredLabelWithPrivate::Assigned(p) => Label::Int(p.to_i64()),
            RegisteredLabelWithPrivate::PrivateUse(i) => Label::Int(*i),
            RegisteredLabelWithPrivate::Text(t) => Label::Text(t.clone()),
        });
    }

    for (l, value) in &header.rest {
        match l {
            coset::Label::Text(t) if t == SIGNING_SCHEME => match value {
                Value::Text(s) => protected.scheme = Some(s.clone()),
                _ => return Err(bad("invalid signingScheme".into())),
            },
            coset::Label::Text(t) if t == SIGNING_TIME => {
                protected.signing_time = Some(time(t, value)?);
            }
            coset::Label::Text(t) if t == AUTHENTIC_SIGNING_TIME => {
                protected.authentic_signing_time = Some(time(t, value)?);
            }
            coset::Label::Text(t) if t == EXPIRY => protected.expiry = Some(time(t, value)?),
            coset::Label::Int(i) if GENERIC.contains(i) => {}
            other => {
                let text = match value {
                    Value::Text(s) => Some(s.clone()),
                    _ => None,
                };
                protected.extended.push((label(other), text));
            }
        }
    }
    Ok(protected)
}

fn cose_alg(id: i64) -> Result<Algorithm, EnvelopeError> {
    Algorithm::from_cose(id)
        .ok_or_else(|| EnvelopeError::Invalid(format!("signature algorithm not supported: {id}")))
}

/// A CBOR tag 1 epoch-based date/time (RFC 8949 section 3.4.2): integer or floating-point
/// seconds. notation-core-go decodes with `TimeTag: DecTagRequired`, so the tag must be there.
fn time(name: &str, value: &Value) -> Result<OffsetDateTime, EnvelopeError> {
    let bad = |m: String| EnvelopeError::Malformed(format!("protected header {name:?}: {m}"));
    let Value::Tag(tag, inner) = value else {
        return Err(bad("time value does not have a tag".into()));
    };
    if *tag != 1 {
        return Err(bad("only Tag `1` Datetime CBOR object is supported".into()));
    }
    let out_of_range = || bad("time is out of range".into());
    match inner.as_ref() {
        Value::Integer(i) => {
            let seconds = i64::try_from(i128::from(*i)).map_err(|_| out_of_range())?;
            OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| out_of_range())
        }
        Value::Float(f) if f.is_finite() => {
            let nanos = (f * 1e9).round();
            if nanos.abs() > 1e29 {
                return Err(out_of_range());
            }
            OffsetDateTime::from_unix_timestamp_nanos(nanos as i128).map_err(|_| out_of_range())
        }
        _ => Err(bad("tag 1 must hold an integer or a finite float".into())),
    }
}
