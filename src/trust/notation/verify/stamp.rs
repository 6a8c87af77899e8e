//! The authentic-timestamp step (notation-go `verifier.go` `verifyAuthenticTimestamp`,
//! `verifyTimestamp`; `specs/trust-store-trust-policy.md`, "Steps" 6 and "Timestamp
//! Countersignature Verification details").
//!
//! Under `notary.x509.signingAuthority` the authentic signing time must lie within every
//! chain certificate's validity. Under `notary.x509` the RFC 3161 countersignature is
//! verified only when the statement names a `tsa` store and `verifyTimestamp` is `always`,
//! or `afterCertExpiry` with a chain certificate expired at `now`; the timestamp's range
//! (genTime ± accuracy) must then lie within every chain certificate's validity. Otherwise
//! every chain certificate must be valid at `now`.

use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use super::{
    chain::{self, rfc1123z},
    Trust,
};
use crate::trust::notation::policy::dn::go_quote as q;
use crate::trust::{
    notation::{
        envelope::{Envelope, SigningScheme},
        policy::{Statement, VerifyTimestamp},
        store::StoreKind,
    },
    timestamp::{self, TimestampError},
};

/// The step's outcome: `Ok(Some(chain))` when a countersignature verified (the TSA's chain,
/// its signing certificate first, whose revocation the caller checks), `Ok(None)` when the
/// step passed without one, `Err` its failure in notation-go's words.
pub fn check(
    trust: &Trust,
    statement: &Statement,
    envelope: &Envelope,
    certs: &[X509Certificate<'_>],
    now: OffsetDateTime,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    if envelope.scheme == SigningScheme::SigningAuthority {
        // Spec "Steps" 6.ii: the authentic signing time within the chain's validity.
        let Some(at) = envelope.authentic_signing_time else {
            return Err(
                "authentic signing time must be present under signing scheme \"notary.x509.signingAuthority\""
                    .to_owned(),
            );
        };
        for cert in certs {
            let (not_before, not_after) = chain::validity(cert);
            if at < not_before || at > not_after {
                return Err(format!(
                    "certificate {} was not valid when the digital signature was produced at {}",
                    q(&chain::subject(cert)),
                    q(&rfc1123z(at))
                ));
            }
        }
        return Ok(None);
    }

    // `verifyTimestamp`: whether the countersignature is examined at all.
    let tsa = statement
        .trust_stores
        .iter()
        .any(|r| r.kind == StoreKind::Tsa);
    let mut examine = tsa;
    if examine && statement.verify_timestamp == VerifyTimestamp::AfterCertExpiry {
        examine = certs.iter().any(|cert| now > chain::validity(cert).1);
    }
    if !examine {
        // The chain must be valid now.
        for cert in certs {
            let (not_before, not_after) = chain::validity(cert);
            if now < not_before {
                return Err(format!(
                    "verification time is before certificate {} validity period, it will be valid from {}",
                    q(&chain::subject(cert)),
                    q(&rfc1123z(not_before))
                ));
            }
            if now > not_after {
                return Err(format!(
                    "verification time is after certificate {} validity period, it was expired at {}",
                    q(&chain::subject(cert)),
                    q(&rfc1123z(not_after))
                ));
            }
        }
        return Ok(None);
    }

    // 1. The countersignature is present.
    let token = envelope
        .timestamp
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or("no timestamp countersignature was found in the signature envelope")?;
    // 2. It parses and timestamps the envelope's signature (`ParseSignedToken`, `Info`,
    // `Validate`), then verifies under a `tsa` root at genTime (`SignedToken.Verify`).
    let examined = timestamp::examine(token, &envelope.signature).map_err(examine_error)?;
    let authorities = trust
        .authorities(statement)
        .map_err(|e| format!("failed to load tsa trust store with error: {e}"))?;
    if authorities.is_empty() {
        return Err("no trusted TSA certificate found in trust store".to_owned());
    }
    let verified = timestamp::verify(token, &envelope.signature, &authorities)
        .map_err(|e| format!("failed to verify the timestamp countersignature with error: {e}"))?;
    // 3. The TSA's chain meets the timestamping certificate requirements.
    chain::validate(&verified.chain, chain::Usage::Timestamping).map_err(|e| {
        format!("failed to validate the timestamping certificate chain with error: {e}")
    })?;
    // 4. The timestamp's range lies within every signing certificate's validity
    // (tspclient-go `BoundedAfter` / `BoundedBefore`, both ends inclusive).
    let lower = examined.time - examined.accuracy;
    let upper = examined.time + examined.accuracy;
    for cert in certs {
        let (not_before, not_after) = chain::validity(cert);
        if lower < not_before {
            return Err(format!(
                "timestamp can be before certificate {} validity period, it will be valid from {}",
                q(&chain::subject(cert)),
                q(&rfc1123z(not_before))
            ));
        }
        if upper > not_after {
            return Err(format!(
                "timestamp can be after certificate {} validity period, it was expired at {}",
                q(&chain::subject(cert)),
                q(&rfc1123z(not_after))
            ));
        }
    }
    // 5. (The TSA chain's revocation: the caller, under the revocation action.)
    Ok(Some(verified.chain))
}

/// A token that does not parse or does not timestamp the signature, with notation-go's
/// prefix for the stage that failed (`ParseSignedToken`, `Info`, `Validate`).
fn examine_error(e: TimestampError) -> String {
    match e {
        TimestampError::Malformed {
            what: "TSTInfo", ..
        }
        | TimestampError::BadGenTime(_) => {
            format!("failed to get the timestamp TSTInfo with error: {e}")
        }
        TimestampError::UnsupportedHash(_) | TimestampError::ImprintMismatch => {
            format!("failed to get timestamp from timestamp countersignature with error: {e}")
        }
        _ => format!("failed to parse timestamp countersignature with error: {e}"),
    }
}
