//! The individual checks of the Notary v1 client workflow. Each function cites the notary code
//! it follows; `update.rs` calls them in the workflow's order.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::digest;
use time::OffsetDateTime;

use super::{
    canonical::to_canonical,
    error::NotaryError,
    keys::PublicKey,
    schema::{Common, FileMeta, Signed},
};

/// Keys a role may be signed with, by the key ID its parent lists them under.
pub type KeyRing = BTreeMap<String, Result<PublicKey, super::keys::KeyError>>;

/// Builds a key ring from a `keys` map in metadata. Keys that do not parse stay in the ring as
/// errors so that a signature made "with" them is reported, not silently dropped.
pub fn key_ring(keys: &BTreeMap<String, super::schema::KeyJson>) -> KeyRing {
    keys.iter()
        .map(|(id, k)| (id.clone(), PublicKey::from_json(k)))
        .collect()
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Counts valid signatures over the canonical form of `signed` from distinct keys of the role
/// and demands `threshold` of them (notary `tuf/signed/verify.go: VerifySignatures`).
///
/// - a threshold below 1 is invalid (`ErrRoleThreshold`);
/// - a signature whose key ID is not one of the role's is ignored;
/// - a listed key whose content hashes to another ID is a hard error (`ErrInvalidKeyID`);
/// - each key counts once however many signatures it made.
pub fn check_signatures<T>(
    role: &str,
    signed: &Signed<T>,
    ring: &KeyRing,
    keyids: &[String],
    threshold: i64,
) -> Result<(), NotaryError> {
    if threshold < 1 {
        return Err(NotaryError::InvalidRole {
            role: role.to_owned(),
            reason: format!("threshold {threshold} is below 1"),
        });
    }
    let message = to_canonical(&signed.signed_value).map_err(|e| NotaryError::Malformed {
        role: role.to_owned(),
        detail: e.to_string(),
    })?;
    let role_keys: BTreeSet<&str> = keyids.iter().map(String::as_str).collect();
    let mut valid = BTreeSet::new();
    let mut problems = Vec::new();
    for sig in &signed.signatures {
        if !role_keys.contains(sig.keyid.as_str()) {
            continue;
        }
        let key = match ring.get(&sig.keyid) {
            Some(Ok(key)) => key,
            Some(Err(e)) => {
                problems.push(format!("key {}: {e}", short(&sig.keyid)));
                continue;
            }
            None => {
                problems.push(format!("key {} is not defined", short(&sig.keyid)));
                continue;
            }
        };
        if key.id() != sig.keyid {
            return Err(NotaryError::KeyIdMismatch {
                role: role.to_owned(),
                keyid: sig.keyid.clone(),
                computed: key.id().to_owned(),
            });
        }
        match key.verify(&sig.method, &message, &sig.sig) {
            Ok(()) => {
                valid.insert(sig.keyid.as_str());
            }
            Err(e) => problems.push(format!("key {}: {e}", short(&sig.keyid))),
        }
    }
    if (valid.len() as i64) < threshold {
        if signed.signatures.is_empty() {
            problems.push("no signatures".to_owned());
        } else if problems.is_empty() {
            problems.push("no signature from a key of this role".to_owned());
        }
        return Err(NotaryError::Threshold {
            role: role.to_owned(),
            threshold,
            valid: valid.len(),
            problems,
        });
    }
    Ok(())
}

/// `_type`, expiry and version checks every role gets (notary `tuf/signed/verify.go: Verify`,
/// `VerifyExpiry`, `VerifyVersion`). `min_version` is the last version this instance verified:
/// an equal version is fine (re-fetch), a lower one is a rollback.
pub fn check_common(
    role: &str,
    common: &Common,
    expected_type: &'static str,
    at: OffsetDateTime,
    min_version: Option<i64>,
    allow_expired: bool,
) -> Result<(), NotaryError> {
    if !common.type_.eq_ignore_ascii_case(expected_type) {
        return Err(NotaryError::WrongType {
            role: role.to_owned(),
            found: common.type_.clone(),
            expected: expected_type,
        });
    }
    // TUF 5.x orders rollback before freeze: a replayed old file is reported as a rollback even
    // when it has also expired.
    if let Some(last) = min_version {
        if common.version < last {
            return Err(NotaryError::Rollback {
                role: role.to_owned(),
                version: common.version,
                last,
            });
        }
    }
    if !allow_expired && common.expires <= at {
        return Err(NotaryError::Expired {
            role: role.to_owned(),
            expires: common.expires,
        });
    }
    Ok(())
}

/// The file's bytes must have exactly the length and every supported hash its parent lists
/// (notary `tuf/data/types.go: CheckHashes`, plus the length TUF requires). At least one of
/// sha256/sha512 must be listed.
pub fn check_file_meta(
    role: &str,
    parent: &str,
    bytes: &[u8],
    meta: &FileMeta,
) -> Result<(), NotaryError> {
    if meta.length != bytes.len() as i64 {
        return Err(NotaryError::LengthMismatch {
            role: role.to_owned(),
            parent: parent.to_owned(),
            expected: meta.length,
            actual: bytes.len() as u64,
        });
    }
    let mut checked = 0;
    for (alg, expected) in &meta.hashes {
        let algorithm = match alg.as_str() {
            "sha256" => &digest::SHA256,
            "sha512" => &digest::SHA512,
            _ => continue,
        };
        if digest::digest(algorithm, bytes).as_ref() != expected.as_slice() {
            return Err(NotaryError::HashMismatch {
                role: role.to_owned(),
                parent: parent.to_owned(),
                alg: alg.clone(),
            });
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(NotaryError::NoHashes {
            role: role.to_owned(),
            parent: parent.to_owned(),
        });
    }
    Ok(())
}

/// Hex SHA-256 of a file, as used in consistent names (`<role>.<sha256>.json`).
pub fn sha256_hex_of_meta(meta: &FileMeta) -> Option<String> {
    meta.hashes.get("sha256").map(hex::encode)
}
