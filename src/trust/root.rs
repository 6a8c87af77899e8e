//! A sigstore trusted root (`trusted_root.json`): the transparency logs, certificate
//! authorities, CT logs and timestamp authorities a sigstore verifier trusts, each with the
//! window in which it counts.
//!
//! The wire format is `dev.sigstore.trustroot.v1.TrustedRoot` (sigstore/protobuf-specs
//! `protos/sigstore_trustroot.proto`) in protobuf JSON: camelCase names (the proto's
//! snake_case names accepted too), bytes in base64, timestamps in RFC 3339. It is parsed once
//! into typed trust ([`TrustedRoot`]), as sigstore-go `root.NewTrustedRootFromJSON` does:
//! log keys as [`LogKey`], authorities as [`x509::Pool`]s, TSAs as [`timestamp::Authority`],
//! CT logs as [`sct::CtLog`].

use base64::Engine as _;
use serde::Deserialize;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::trust::{
    sct::CtLog,
    timestamp::Authority,
    tlog::{KeyError, LogKey},
    x509::{self, Pool},
};

/// Largest trusted root read (the public-good one is about 7 KiB).
pub const MAX_ROOT_SIZE: usize = 1024 * 1024;
/// Most entries of each list (tlogs, ctlogs, CAs, TSAs) read.
pub const MAX_ENTRIES: usize = 64;
/// Most certificates of one authority's chain.
pub const MAX_CHAIN: usize = 8;

/// The trusted-root media types this parser knows (protobuf-specs `TrustedRoot.media_type`).
pub const MEDIA_TYPES: &[&str] = &[
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
];

/// Why a trusted root is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("the trusted root is {0} bytes, more than {MAX_ROOT_SIZE}")]
    TooLarge(usize),
    #[error("the trusted root is not valid JSON of a TrustedRoot: {0}")]
    Json(String),
    #[error("the trusted root's media type {0:?} is not one this verifier knows")]
    MediaType(String),
    #[error("the trusted root lists more than {MAX_ENTRIES} {0}")]
    TooMany(&'static str),
    #[error("{what} {index} of the trusted root has no validFor.start: a missing bound is not an unbounded window")]
    MissingStart { what: &'static str, index: usize },
    #[error("{what} {index} of the trusted root: {reason}")]
    Invalid {
        what: &'static str,
        index: usize,
        reason: String,
    },
}

/// One transparency log (`tlogs[]`): a Rekor instance.
#[derive(Debug, Clone)]
pub struct Tlog {
    /// `baseUrl`, e.g. `https://rekor.sigstore.dev`.
    pub base_url: String,
    /// The checkpoint origin sigstore-go derives from the base URL for Rekor v2 logs: the URL
    /// without its scheme and trailing slash (`log2025-1.rekor.sigstore.dev`).
    pub origin: String,
    /// The log ID bundles name it by (`logId.keyId`).
    pub log_id: Vec<u8>,
    /// `checkpointKeyId.keyId`, when the root gives one (Rekor v2).
    pub checkpoint_key_id: Option<Vec<u8>>,
    /// `publicKey.keyDetails`, e.g. `PKIX_ECDSA_P256_SHA_256`, `PKIX_ED25519`.
    pub key_details: String,
    /// The key, or why this verifier cannot use it (a key type it does not support yet, a
    /// PKCS#1 key: the log is kept so an entry naming it is refused with that reason).
    pub key: Result<LogKey, KeyError>,
    pub valid_from: OffsetDateTime,
    /// Inclusive.
    pub valid_until: Option<OffsetDateTime>,
}

/// One certificate authority (`certificateAuthorities[]`): a Fulcio instance.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub uri: String,
    /// The chain as a pool: the last certificate the anchor, the others intermediates.
    pub pool: Pool,
    pub valid_from: OffsetDateTime,
    /// Inclusive.
    pub valid_until: Option<OffsetDateTime>,
}

/// A parsed trusted root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub media_type: String,
    pub tlogs: Vec<Tlog>,
    pub certificate_authorities: Vec<CertificateAuthority>,
    pub ctlogs: Vec<CtLog>,
    /// CT logs listed with a key this verifier cannot read (their SCTs cannot count).
    pub ctlogs_unsupported: usize,
    pub timestamp_authorities: Vec<Authority>,
    /// The `uri` of each timestamp authority, in the same order.
    pub timestamp_authority_uris: Vec<String>,
}

// === wire types ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRoot {
    #[serde(default, alias = "media_type")]
    media_type: String,
    #[serde(default)]
    tlogs: Vec<WireLog>,
    #[serde(default, alias = "certificate_authorities")]
    certificate_authorities: Vec<WireAuthority>,
    #[serde(default)]
    ctlogs: Vec<WireLog>,
    #[serde(default, alias = "timestamp_authorities")]
    timestamp_authorities: Vec<WireAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLog {
    #[serde(default, alias = "base_url")]
    base_url: String,
    #[serde(default, alias = "public_key")]
    public_key: Option<WirePublicKey>,
    #[serde(default, alias = "log_id")]
    log_id: Option<WireKeyId>,
    #[serde(default, alias = "checkpoint_key_id")]
    checkpoint_key_id: Option<WireKeyId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePublicKey {
    #[serde(default, alias = "raw_bytes")]
    raw_bytes: Option<String>,
    #[serde(default, alias = "key_details")]
    key_details: String,
    #[serde(default, alias = "valid_for")]
    valid_for: Option<WireValidity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireKeyId {
    #[serde(default, alias = "key_id")]
    key_id: String,
}

#[derive(Deserialize)]
struct WireValidity {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAuthority {
    #[serde(default)]
    uri: String,
    #[serde(default, alias = "cert_chain")]
    cert_chain: Option<WireChain>,
    #[serde(default, alias = "valid_for")]
    valid_for: Option<WireValidity>,
}

#[derive(Deserialize)]
struct WireChain {
    #[serde(default)]
    certificates: Vec<WireCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCert {
    #[serde(default, alias = "raw_bytes")]
    raw_bytes: String,
}

// === impl TrustedRoot ===

impl TrustedRoot {
    /// Parses and checks a `trusted_root.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RootError> {
        if bytes.len() > MAX_ROOT_SIZE {
            return Err(RootError::TooLarge(bytes.len()));
        }
        let wire: WireRoot =
            serde_json::from_slice(bytes).map_err(|e| RootError::Json(e.to_string()))?;
        if !MEDIA_TYPES.contains(&wire.media_type.as_str()) {
            return Err(RootError::MediaType(wire.media_type));
        }
        for (len, what) in [
            (wire.tlogs.len(), "transparency logs"),
            (wire.ctlogs.len(), "CT logs"),
            (
                wire.certificate_authorities.len(),
                "certificate authorities",
            ),
            (wire.timestamp_authorities.len(), "timestamp authorities"),
        ] {
            if len > MAX_ENTRIES {
                return Err(RootError::TooMany(what));
            }
        }

        let tlogs = wire
            .tlogs
            .into_iter()
            .enumerate()
            .map(|(i, log)| parse_tlog(i, log))
            .collect::<Result<Vec<_>, _>>()?;

        let mut ctlogs = Vec::new();
        let mut ctlogs_unsupported = 0;
        for (i, log) in wire.ctlogs.into_iter().enumerate() {
            let log = parse_log(i, "CT log", log)?;
            match log.key {
                Ok(key) => ctlogs.push(CtLog {
                    key,
                    valid_from: Some(log.valid_from),
                    valid_until: log.valid_until,
                }),
                // A key this verifier cannot read (PKCS#1 RSA, a type not supported yet)
                // leaves the log out: its SCTs cannot count, the others still do.
                Err(_) => ctlogs_unsupported += 1,
            }
        }

        let certificate_authorities = wire
            .certificate_authorities
            .into_iter()
            .enumerate()
            .map(|(i, ca)| {
                let (chain, valid_from, valid_until) =
                    parse_authority(i, "certificate authority", &ca)?;
                let pool = Pool::from_chain(&chain)
                    .map_err(|e| invalid("certificate authority", i, e.to_string()))?;
                Ok(CertificateAuthority {
                    uri: ca.uri,
                    pool,
                    valid_from,
                    valid_until,
                })
            })
            .collect::<Result<Vec<_>, RootError>>()?;

        let mut timestamp_authorities = Vec::new();
        let mut timestamp_authority_uris = Vec::new();
        for (i, tsa) in wire.timestamp_authorities.into_iter().enumerate() {
            let (chain, valid_from, valid_until) = parse_authority(i, "timestamp authority", &tsa)?;
            timestamp_authorities.push(Authority::new(chain, Some(valid_from), valid_until));
            timestamp_authority_uris.push(tsa.uri);
        }

        Ok(TrustedRoot {
            media_type: wire.media_type,
            tlogs,
            certificate_authorities,
            ctlogs,
            ctlogs_unsupported,
            timestamp_authorities,
            timestamp_authority_uris,
        })
    }

    /// The transparency log a bundle entry names by `log_id` (sigstore-go looks logs up by
    /// the hex of the log ID; equality of the bytes is the same).
    /// A root that trusts nothing.
    pub fn empty() -> Self {
        TrustedRoot {
            media_type: String::new(),
            tlogs: Vec::new(),
            certificate_authorities: Vec::new(),
            ctlogs: Vec::new(),
            ctlogs_unsupported: 0,
            timestamp_authorities: Vec::new(),
            timestamp_authority_uris: Vec::new(),
        }
    }

    pub fn tlog(&self, log_id: &[u8]) -> Option<&Tlog> {
        self.tlogs.iter().find(|t| t.log_id == log_id)
    }
}

/// Whether `at` lies in the closed window `[from, until]` (protobuf-specs `TimeRange`: an
/// absent end is open; the end is inclusive, as sigstore-go `ValidityPeriodStart/End`).
pub fn in_window(at: OffsetDateTime, from: OffsetDateTime, until: Option<OffsetDateTime>) -> bool {
    at >= from && until.is_none_or(|end| at <= end)
}

/// The fields every log entry (tlog or CT log) shares.
struct ParsedLog {
    base_url: String,
    log_id: Vec<u8>,
    checkpoint_key_id: Option<Vec<u8>>,
    key_details: String,
    key: Result<LogKey, KeyError>,
    valid_from: OffsetDateTime,
    valid_until: Option<OffsetDateTime>,
}

fn parse_log(index: usize, what: &'static str, log: WireLog) -> Result<ParsedLog, RootError> {
    let key = log
        .public_key
        .ok_or_else(|| invalid(what, index, "it has no publicKey".to_owned()))?;
    let raw = key
        .raw_bytes
        .as_deref()
        .ok_or_else(|| invalid(what, index, "its publicKey has no rawBytes".to_owned()))?;
    let raw = b64(raw).ok_or_else(|| invalid(what, index, "rawBytes is not base64".to_owned()))?;
    let (valid_from, valid_until) = validity(index, what, key.valid_for.as_ref())?;
    let log_id = match log.log_id {
        Some(id) => b64(&id.key_id)
            .ok_or_else(|| invalid(what, index, "logId.keyId is not base64".to_owned()))?,
        None => return Err(invalid(what, index, "it has no logId".to_owned())),
    };
    let checkpoint_key_id = match log.checkpoint_key_id {
        Some(id) => Some(b64(&id.key_id).ok_or_else(|| {
            invalid(
                what,
                index,
                "checkpointKeyId.keyId is not base64".to_owned(),
            )
        })?),
        None => None,
    };
    Ok(ParsedLog {
        base_url: log.base_url,
        log_id,
        checkpoint_key_id,
        key_details: key.key_details,
        key: LogKey::from_spki_der(&raw),
        valid_from,
        valid_until,
    })
}

fn parse_tlog(index: usize, log: WireLog) -> Result<Tlog, RootError> {
    // A key that does not parse is kept as its error: an entry of that log is refused with
    // the reason, the other logs still count.
    let log = parse_log(index, "transparency log", log)?;
    Ok(Tlog {
        origin: origin_of(&log.base_url),
        base_url: log.base_url,
        log_id: log.log_id,
        checkpoint_key_id: log.checkpoint_key_id,
        key_details: log.key_details,
        key: log.key,
        valid_from: log.valid_from,
        valid_until: log.valid_until,
    })
}

/// The checkpoint origin of a log at `base_url`: sigstore-go (`verify/tlog.go`, Rekor v2)
/// takes the base URL's host (and path) without the scheme.
fn origin_of(base_url: &str) -> String {
    let rest = base_url
        .strip_prefix("https://")
        .or_else(|| base_url.strip_prefix("http://"))
        .unwrap_or(base_url);
    rest.trim_end_matches('/').to_owned()
}

type Window = (Vec<Vec<u8>>, OffsetDateTime, Option<OffsetDateTime>);

fn parse_authority(
    index: usize,
    what: &'static str,
    authority: &WireAuthority,
) -> Result<Window, RootError> {
    let certs = authority
        .cert_chain
        .as_ref()
        .map(|c| c.certificates.as_slice())
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(invalid(what, index, "its certChain is empty".to_owned()));
    }
    if certs.len() > MAX_CHAIN {
        return Err(invalid(
            what,
            index,
            format!("its certChain has more than {MAX_CHAIN} certificates"),
        ));
    }
    let chain = certs
        .iter()
        .map(|c| b64(&c.raw_bytes))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid(what, index, "a certificate is not base64".to_owned()))?;
    for (i, der) in chain.iter().enumerate() {
        x509::spki_of(der)
            .map_err(|e| invalid(what, index, format!("certificate {}: {e}", i + 1)))?;
    }
    let (from, until) = validity(index, what, authority.valid_for.as_ref())?;
    Ok((chain, from, until))
}

fn validity(
    index: usize,
    what: &'static str,
    valid_for: Option<&WireValidity>,
) -> Result<(OffsetDateTime, Option<OffsetDateTime>), RootError> {
    let start = valid_for
        .and_then(|v| v.start.as_deref())
        .ok_or(RootError::MissingStart { what, index })?;
    let start = rfc3339(start).ok_or_else(|| {
        invalid(
            what,
            index,
            format!("validFor.start {start:?} is not RFC 3339"),
        )
    })?;
    let end = match valid_for.and_then(|v| v.end.as_deref()) {
        Some(end) => Some(rfc3339(end).ok_or_else(|| {
            invalid(what, index, format!("validFor.end {end:?} is not RFC 3339"))
        })?),
        None => None,
    };
    if end.is_some_and(|end| end < start) {
        return Err(invalid(
            what,
            index,
            "validFor ends before it starts".to_owned(),
        ));
    }
    Ok((start, end))
}

fn invalid(what: &'static str, index: usize, reason: String) -> RootError {
    RootError::Invalid {
        what,
        index,
        reason,
    }
}

fn rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Protobuf JSON bytes: standard base64, padded or not (protojson also accepts URL-safe).
pub(crate) fn b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    // Go's decoder, which protojson uses, skips line breaks (`base64` wraps at 76 columns,
    // and bundles assembled with it carry them).
    let unwrapped;
    let s = if s.contains(['\r', '\n']) {
        unwrapped = s.replace(['\r', '\n'], "");
        unwrapped.as_str()
    } else {
        s
    };
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

#[cfg(test)]
mod tests;
