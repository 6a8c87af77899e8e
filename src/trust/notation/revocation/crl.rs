//! CRLs (RFC 5280 section 5) as notation-core-go reads and checks them
//! (`revocation/internal/crl/crl.go`, `revocation/crl/fetcher.go`), following
//! `specs/trust-store-trust-policy.md` "Revocation Checking with CRL" and "... with Delta
//! CRLs": signature under the issuer's key, `nextUpdate` not passed, no critical extension
//! it does not understand, then the certificate's serial looked up in the base CRL and its
//! delta.

use std::{collections::HashMap, ops::Range, sync::Mutex};

use time::OffsetDateTime;
use x509_parser::{
    extensions::{DistributionPointName, GeneralName, ParsedExtension},
    prelude::FromDer,
    revocation_list::CertificateRevocationList,
};

use super::{
    chain::{strip_zeros, Cert},
    sig::{self, read_tlv},
};

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_REASON_CODE: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";
const OID_DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const OID_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const OID_FRESHEST_CRL: &str = super::chain::OID_FRESHEST_CRL;
/// CRLReason certificateHold and removeFromCRL (RFC 5280 section 5.3.1).
const REASON_CERTIFICATE_HOLD: u8 = 6;
const REASON_REMOVE_FROM_CRL: u8 = 8;
/// Entries one CRL may list, at most (a CRL within `MAX_CRL_SIZE` has fewer anyway; this
/// bounds the index kept in memory).
const MAX_ENTRIES: usize = 500_000;

/// One CRL, read once and kept: what the checks need, owned.
#[derive(Debug)]
pub struct Crl {
    /// The DER as received (what the file cache stores).
    pub der: Vec<u8>,
    /// DER of the issuer name.
    issuer: Vec<u8>,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    /// cRLNumber content without leading zeros.
    number: Option<Vec<u8>>,
    /// The delta CRL indicator's BaseCRLNumber, when this is a delta CRL.
    delta_base: Option<Vec<u8>>,
    /// The freshestCRL extension's URIs, or why it does not parse; `None` when absent.
    pub freshest: Option<Result<Vec<String>, String>>,
    /// The first critical extension notation-core-go does not understand.
    unsupported_critical: Option<String>,
    scope: Scope,
    /// Entries by serial (leading zeros dropped); a serial may be listed more than once.
    entries: HashMap<Vec<u8>, Vec<Entry>>,
    tbs: Range<usize>,
    sig_alg: Range<usize>,
    signature: Vec<u8>,
    /// The SubjectPublicKeyInfos (DER) the signature verified under: checked once per key.
    verified: Mutex<Vec<Vec<u8>>>,
}

/// What an issuingDistributionPoint extension limits a CRL to (RFC 5280 section 5.2.5).
#[derive(Debug, Default, Clone)]
struct Scope {
    only_user: bool,
    only_ca: bool,
    only_attribute: bool,
    only_some_reasons: bool,
    indirect: bool,
    /// The distribution point's fullName URIs.
    uris: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    revoked_at: OffsetDateTime,
    reason: Option<u8>,
    invalidity: Option<OffsetDateTime>,
    /// Why the entry cannot be judged (an unsupported critical extension, a malformed
    /// invalidity date); it matters only for the certificate it names.
    problem: Option<String>,
}

/// A base CRL and the delta CRL that goes with it, if any (notation-core-go `crl.Bundle`).
#[derive(Debug, Clone)]
pub struct Bundle {
    pub base: std::sync::Arc<Crl>,
    pub delta: Option<std::sync::Arc<Crl>>,
}

/// What a CRL says of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    NotRevoked,
    Revoked(OffsetDateTime),
}

// === impl Crl ===

impl Crl {
    /// Reads a DER CRL (no trailing bytes). Malformed extensions notation-core-go's parser
    /// (Go `x509.ParseRevocationList`) refuses make the whole CRL unreadable.
    pub fn parse(der: Vec<u8>) -> Result<Crl, String> {
        let (rest, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| format!("x509: malformed crl: {e}"))?;
        if !rest.is_empty() {
            return Err("x509: malformed crl: trailing data".to_owned());
        }
        if crl.tbs_cert_list.signature != crl.signature_algorithm {
            return Err(
                "x509: malformed crl: inner and outer signature algorithms differ".to_owned(),
            );
        }
        let signed = sig::split(&der).ok_or("x509: malformed crl: not a signed structure")?;
        if !signed.rest.is_empty() {
            return Err("x509: malformed crl: trailing fields".to_owned());
        }
        let tbs = range_of(&der, signed.tbs)?;
        let sig_alg = range_of(&der, signed.alg)?;
        let signature = signed.signature.to_vec();
        let mut out = Crl {
            issuer: crl.issuer().as_raw().to_vec(),
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            number: None,
            delta_base: None,
            freshest: None,
            unsupported_critical: None,
            scope: Scope::default(),
            entries: HashMap::new(),
            tbs,
            sig_alg,
            signature,
            verified: Mutex::new(Vec::new()),
            der: Vec::new(),
        };
        let mut seen: Vec<String> = Vec::new();
        for ext in crl.extensions() {
            let oid = ext.oid.to_id_string();
            if seen.contains(&oid) {
                return Err(format!("x509: malformed crl: duplicate extension {oid}"));
            }
            seen.push(oid.clone());
            let malformed = |what: &str| format!("x509: malformed crl: invalid {what}");
            match oid.as_str() {
                OID_ISSUING_DISTRIBUTION_POINT => {
                    let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension()
                    else {
                        return Err(malformed("issuing distribution point"));
                    };
                    out.scope = Scope {
                        only_user: idp.only_contains_user_certs,
                        only_ca: idp.only_contains_ca_certs,
                        only_attribute: idp.only_contains_attribute_certs,
                        only_some_reasons: idp.only_some_reasons.is_some(),
                        indirect: idp.indirect_crl,
                        uris: match &idp.distribution_point {
                            Some(DistributionPointName::FullName(names)) => uris(names),
                            _ => Vec::new(),
                        },
                    };
                }
                OID_DELTA_CRL_INDICATOR => {
                    out.delta_base =
                        Some(integer(ext.value).ok_or_else(|| malformed("delta CRL indicator"))?);
                }
                other => {
                    match other {
                        OID_CRL_NUMBER => {
                            out.number =
                                Some(integer(ext.value).ok_or_else(|| malformed("CRL number"))?);
                        }
                        OID_FRESHEST_CRL => {
                            out.freshest = Some(distribution_point_urls(ext.value));
                        }
                        _ => {}
                    }
                    // crl.go validateCRL: any other critical extension is refused.
                    if ext.critical && out.unsupported_critical.is_none() {
                        out.unsupported_critical = Some(oid);
                    }
                }
            }
        }
        for (count, revoked) in crl.iter_revoked_certificates().enumerate() {
            if count >= MAX_ENTRIES {
                return Err(format!("CRL lists more than {MAX_ENTRIES} certificates"));
            }
            let mut entry = Entry {
                revoked_at: revoked.revocation_date.to_datetime(),
                reason: None,
                invalidity: None,
                problem: None,
            };
            for ext in revoked.extensions() {
                let oid = ext.oid.to_id_string();
                match (oid.as_str(), ext.parsed_extension()) {
                    (OID_REASON_CODE, ParsedExtension::ReasonCode(code)) => {
                        entry.reason = Some(code.0);
                    }
                    (OID_REASON_CODE, _) => {
                        return Err("x509: malformed crl: invalid reason code".to_owned());
                    }
                    (OID_INVALIDITY_DATE, ParsedExtension::InvalidityDate(date)) => {
                        entry.invalidity = Some(date.to_datetime());
                    }
                    (OID_INVALIDITY_DATE, _) => {
                        entry.problem = Some("failed to parse invalidity date".to_owned());
                    }
                    _ => {}
                }
                // crl.go parseEntryExtensions: only the invalidity date is understood.
                if ext.critical && oid != OID_INVALIDITY_DATE && entry.problem.is_none() {
                    entry.problem = Some(format!(
                        "unsupported critical extension found in CRL: {oid}"
                    ));
                }
            }
            out.entries
                .entry(strip_zeros(revoked.raw_serial()))
                .or_default()
                .push(entry);
        }
        drop(crl);
        out.der = der;
        Ok(out)
    }

    /// About how many bytes this CRL takes in memory: its DER and its index of entries.
    pub fn footprint(&self) -> usize {
        self.der
            .len()
            .saturating_add(self.entries.len().saturating_mul(128))
    }

    /// Whether this is a delta CRL (it has a delta CRL indicator).
    pub fn is_delta(&self) -> bool {
        self.delta_base.is_some()
    }

    /// Whether `issuer` is the subject that issued this CRL (same DER name).
    pub fn issued_by_name(&self, issuer: &Cert) -> bool {
        self.issuer == issuer.subject
    }

    /// Whether `nextUpdate` is set and not passed at `now` (fetcher.go `isEffective`).
    pub fn effective(&self, now: OffsetDateTime) -> bool {
        self.next_update.is_some_and(|next| now <= next)
    }

    /// crl.go `validateCRL`: issued and signed by `issuer`, which may sign CRLs;
    /// `nextUpdate` set and not passed; no critical extension but the issuing distribution
    /// point and the delta CRL indicator.
    pub fn validate(&self, issuer: &Cert, now: OffsetDateTime) -> Result<(), String> {
        if !self.issued_by_name(issuer) {
            return Err(format!(
                "CRL is not issued by certificate #{} (the issuer names differ)",
                issuer.index
            ));
        }
        issuer.may_sign_crls()?;
        self.verify_signature(issuer)?;
        match self.next_update {
            None => return Err("CRL NextUpdate is not set".to_owned()),
            Some(next) if now > next => {
                return Err(format!(
                    "expired CRL. Current time {now} is after CRL NextUpdate {next}"
                ));
            }
            Some(_) => {}
        }
        if let Some(oid) = &self.unsupported_critical {
            return Err(format!(
                "unsupported critical extension found in CRL: {oid}"
            ));
        }
        if self.scope.indirect || self.scope.only_attribute {
            return Err("indirect and attribute-certificate CRLs are not supported".to_owned());
        }
        Ok(())
    }

    fn verify_signature(&self, issuer: &Cert) -> Result<(), String> {
        if let Ok(known) = self.verified.lock() {
            if known.contains(&issuer.spki) {
                return Ok(());
            }
        }
        let (Some(tbs), Some(alg)) = (
            self.der.get(self.tbs.clone()),
            self.der.get(self.sig_alg.clone()),
        ) else {
            return Err("CRL is not signed: malformed".to_owned());
        };
        sig::verify_der(&issuer.spki, alg, tbs, &self.signature)
            .map_err(|e| format!("CRL is not signed by certificate #{}: {e}", issuer.index))?;
        if let Ok(mut known) = self.verified.lock() {
            if known.len() < 4 {
                known.push(issuer.spki.clone());
            }
        }
        Ok(())
    }

    /// Whether this CRL's scope (issuing distribution point) covers `cert`: not limited to
    /// CA or end-entity certificates when `cert` is the other kind. For a CRL the operator
    /// supplied (not fetched from one of the certificate's distribution points), also not
    /// limited to some reasons, nor to a distribution point the certificate does not name.
    /// notation-core-go ignores the extension, as it reads every distribution point; a
    /// CRL limited to CA certificates could otherwise clear a leaf it never lists.
    pub fn covers(&self, cert: &Cert, operator: bool) -> Result<(), String> {
        let scope = &self.scope;
        if scope.only_user && cert.is_ca {
            return Err("the CRL only covers end-entity certificates".to_owned());
        }
        if scope.only_ca && !cert.is_ca {
            return Err("the CRL only covers CA certificates".to_owned());
        }
        if operator {
            if scope.only_some_reasons {
                return Err("the CRL only covers some revocation reasons".to_owned());
            }
            let named = cert.crl.as_ref().map(Vec::as_slice).unwrap_or_default();
            if !scope.uris.is_empty() && !scope.uris.iter().any(|u| named.contains(u)) {
                return Err(
                    "the CRL is for a distribution point the certificate does not name".to_owned(),
                );
            }
        }
        Ok(())
    }
}

// === impl Bundle ===

impl Bundle {
    /// Whether the base CRL and the delta CRL, if any, are still current.
    pub fn effective(&self, now: OffsetDateTime) -> bool {
        self.base.effective(now) && self.delta.as_ref().is_none_or(|d| d.effective(now))
    }

    /// crl.go `validate`: the base CRL, then the delta CRL, under `issuer`; a delta CRL's
    /// number above the base's, its indicator at most the base's number (RFC 5280 section
    /// 5.2.4). A CRL that is itself a delta CRL is refused as the base: it lists only the
    /// changes since some base (notation-core-go would take it as complete).
    pub fn validate(&self, issuer: &Cert, now: OffsetDateTime) -> Result<(), String> {
        if self.base.is_delta() {
            return Err("failed to validate base CRL: it is a delta CRL".to_owned());
        }
        self.base
            .validate(issuer, now)
            .map_err(|e| format!("failed to validate base CRL: {e}"))?;
        let Some(delta) = &self.delta else {
            return Ok(());
        };
        delta
            .validate(issuer, now)
            .map_err(|e| format!("failed to validate delta CRL: {e}"))?;
        let (Some(delta_number), Some(base_number)) = (&delta.number, &self.base.number) else {
            return Err("the base or the delta CRL has no CRL number".to_owned());
        };
        if cmp_uint(delta_number, base_number).is_le() {
            return Err(format!(
                "delta CRL number {} is not greater than the base CRL number {}",
                hex::encode(delta_number),
                hex::encode(base_number)
            ));
        }
        let Some(minimum_base) = &delta.delta_base else {
            return Err("delta CRL indicator extension is not found".to_owned());
        };
        if cmp_uint(minimum_base, base_number).is_gt() {
            return Err(format!(
                "delta CRL indicator {} is not less than or equal to the base CRL number {}",
                hex::encode(minimum_base),
                hex::encode(base_number)
            ));
        }
        Ok(())
    }

    /// crl.go `checkRevocation`: every entry for the certificate's serial in the base and
    /// the delta CRL, in that order. An entry whose invalidity date is after the authentic
    /// signing time clears the certificate (the spec: revoked only when the invalidity
    /// date is before the signing time); any other reason than certificateHold and
    /// removeFromCRL revokes it; otherwise the latest of those decides (hold: revoked,
    /// removeFromCRL: not).
    pub fn lookup(
        &self,
        cert: &Cert,
        signing_time: Option<OffsetDateTime>,
    ) -> Result<Verdict, String> {
        let entries = self
            .base
            .entries
            .get(&cert.serial)
            .into_iter()
            .flatten()
            .chain(
                self.delta
                    .as_ref()
                    .and_then(|d| d.entries.get(&cert.serial))
                    .into_iter()
                    .flatten(),
            );
        let mut latest_temporary: Option<&Entry> = None;
        for entry in entries {
            if let Some(problem) = &entry.problem {
                return Err(problem.clone());
            }
            if let (Some(signed), Some(invalid)) = (signing_time, entry.invalidity) {
                if signed < invalid {
                    return Ok(Verdict::NotRevoked);
                }
            }
            match entry.reason {
                Some(REASON_CERTIFICATE_HOLD | REASON_REMOVE_FROM_CRL) => {
                    if latest_temporary.is_none_or(|l| l.revoked_at < entry.revoked_at) {
                        latest_temporary = Some(entry);
                    }
                }
                _ => return Ok(Verdict::Revoked(entry.revoked_at)),
            }
        }
        Ok(match latest_temporary {
            Some(e) if e.reason == Some(REASON_CERTIFICATE_HOLD) => Verdict::Revoked(e.revoked_at),
            _ => Verdict::NotRevoked,
        })
    }
}

/// The position of `part` (a subslice) within `whole`.
fn range_of(whole: &[u8], part: &[u8]) -> Result<Range<usize>, String> {
    let start = (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .filter(|s| s.saturating_add(part.len()) <= whole.len())
        .ok_or("x509: malformed crl")?;
    Ok(start..start + part.len())
}

/// The content of a DER INTEGER that is non-negative, leading zeros dropped.
fn integer(der: &[u8]) -> Option<Vec<u8>> {
    use der::Decode;
    let value = der::asn1::UintRef::from_der(der).ok()?;
    Some(strip_zeros(value.as_bytes()))
}

/// Compares two unsigned big-endian magnitudes without leading zeros.
fn cmp_uint(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The URIs among general names.
fn uris(names: &[GeneralName<'_>]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// The URIs of a CRLDistributionPoints value (a certificate's CDP, or a freshestCRL
/// extension of a certificate or CRL), read as Go's `crypto/x509` and notation-core-go
/// `parseCRLDistributionPoint` read them (RFC 5280 section 4.2.1.13): for each
/// DistributionPoint with a fullName, its URIs up to the first name that is not one; a
/// point without a name is skipped; anything else malformed is an error.
pub fn distribution_point_urls(value: &[u8]) -> Result<Vec<String>, String> {
    const SEQUENCE: u8 = 0x30;
    const DP_NAME: u8 = 0xa0; // [0] constructed: distributionPoint, then fullName
    const URI: u8 = 0x86; // [6] primitive: uniformResourceIdentifier
    let points_error = || "x509: invalid CRL distribution points".to_owned();
    let point_error = || "x509: invalid CRL distribution point".to_owned();
    let (mut points, _) = read_tlv(value, SEQUENCE).ok_or_else(points_error)?;
    let mut urls = Vec::new();
    while !points.is_empty() {
        let (point, rest) = read_tlv(points, SEQUENCE).ok_or_else(point_error)?;
        points = rest;
        if point.first() != Some(&DP_NAME) {
            continue;
        }
        let (name, _) = read_tlv(point, DP_NAME).ok_or_else(point_error)?;
        let (mut full_name, _) = read_tlv(name, DP_NAME).ok_or_else(point_error)?;
        while full_name.first() == Some(&URI) {
            let (uri, rest) = read_tlv(full_name, URI).ok_or_else(point_error)?;
            full_name = rest;
            if urls.len() >= 64 {
                return Err("too many CRL distribution point URIs".to_owned());
            }
            urls.push(String::from_utf8_lossy(uri).into_owned());
        }
    }
    Ok(urls)
}

/// The CRLs of an operator's file: one DER CRL, or PEM with one or more `X509 CRL` blocks.
pub fn file_crls(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let crls: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(bytes)
        .map(|p| p.map_err(|e| format!("bad PEM: {e}")))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p.label == "X509 CRL")
        .map(|p| p.contents)
        .collect();
    if crls.is_empty() {
        return Err("neither a DER CRL nor PEM with an X509 CRL block".to_owned());
    }
    Ok(crls)
}
