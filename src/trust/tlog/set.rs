//! Rekor v1 signed entry timestamps (SET): the log's promise to include an entry.

use serde::Deserialize;

use super::key::LogKey;

/// What a Rekor v1 signed entry timestamp signs: the entry body (base64), when and where it
/// was logged, and the log's ID (hex SHA-256 of its public key).
#[derive(Debug, Clone, Deserialize)]
pub struct RekorPayload {
    pub body: String,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    #[serde(rename = "logID")]
    pub log_id: String,
}

/// cosign `VerifySET` and sigstore-go `tlog.VerifySET`: the SET is the log key's ECDSA
/// signature over the RFC 8785 canonical JSON of the entry payload.
pub fn verify_set(key: &LogKey, payload: &RekorPayload, set: &[u8]) -> bool {
    key.verifies(canonical_payload(payload).as_bytes(), set)
}

/// The payload as RFC 8785 (JCS) canonical JSON, which cosign's `VerifySET` hashes: keys
/// sorted (`body`, `integratedTime`, `logID`, `logIndex`), no whitespace, integers as
/// themselves; serde_json's string escaping agrees with JCS.
pub fn canonical_payload(p: &RekorPayload) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_default();
    format!(
        r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
        s(&p.body),
        p.integrated_time,
        s(&p.log_id),
        p.log_index
    )
}
