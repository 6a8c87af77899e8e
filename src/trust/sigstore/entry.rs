//! Whether a transparency-log entry's body is the bundle's content: the same artifact digest
//! (or DSSE payload), the same signature and the same key or certificate. A log entry that
//! vouches for other content vouches for nothing here.
//!
//! sigstore-go checks this in `tlog.ValidateEntry` / `tlog.NewEntry` (body against the
//! entry's kind) and `verify.VerifyTlogEntry`'s callers compare the body's signature, key
//! and digest with the bundle (`verify/signature.go`, `verifyEnvelopeWithArtifact`); the
//! body schemas are Rekor's `pkg/types/{hashedrekord,dsse,intoto}` (v1, 0.0.1 / 0.0.2) and
//! rekor-tiles' `HashedRekordLogEntryV002` / `DSSELogEntryV002` (v2).

use aws_lc_rs::digest;
use serde_json::Value;

use super::bundle::{Content, Entry};
use crate::trust::root::b64;

/// What an entry must agree with.
pub(super) struct Expected<'a> {
    pub content: &'a Content,
    /// The artifact's SHA-256 (message signatures).
    pub artifact_sha256: [u8; 32],
    /// The signing certificate (DER), keyless.
    pub leaf: Option<&'a [u8]>,
    /// The signing key (DER SubjectPublicKeyInfo).
    pub spki: &'a [u8],
}

/// Which Rekor generation logged an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Generation {
    /// Rekor v1: SET, integrated time.
    V1,
    /// Rekor v2 (rekor-tiles): entry kinds at version 0.0.2, no SET, no integrated time.
    V2,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// DSSE `PAE(type, body)`: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`
/// (secure-systems-lab/dsse `protocol.md`).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Checks the entry's body against the bundle and says which Rekor logged it.
pub(super) fn check(entry: &Entry, exp: &Expected<'_>) -> Result<Generation, String> {
    let body: Value =
        serde_json::from_slice(&entry.body).map_err(|_| "its body is not JSON".to_owned())?;
    // tlog.ValidateEntry: the body is of the kind and version the entry says.
    let (kind, api) = (
        body.get("kind").and_then(Value::as_str).unwrap_or_default(),
        body.get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    if kind != entry.kind || api != entry.version {
        return Err(format!(
            "its body is a {kind} {api}, but the entry says {} {}",
            entry.kind, entry.version
        ));
    }
    let spec = body.get("spec").ok_or("its body has no spec")?;
    match (kind, api, exp.content) {
        ("hashedrekord", "0.0.1", Content::Message { signature, .. }) => {
            hashedrekord_v001(spec, exp, signature).map(|()| Generation::V1)
        }
        ("hashedrekord", "0.0.2", content) => {
            hashedrekord_v002(spec, exp, content).map(|()| Generation::V2)
        }
        ("dsse", "0.0.1", Content::Dsse(env)) => {
            dsse_v001(spec, exp, &env.payload, &env.signatures).map(|()| Generation::V1)
        }
        ("dsse", "0.0.2", Content::Dsse(env)) => {
            dsse_v002(spec, exp, &env.payload, &env.signatures).map(|()| Generation::V2)
        }
        ("intoto", "0.0.2", Content::Dsse(env)) => {
            intoto_v002(spec, exp, env).map(|()| Generation::V1)
        }
        (kind, api, content) => Err(format!(
            "a {kind} {api} entry cannot log a {}",
            match content {
                Content::Message { .. } => "message signature",
                Content::Dsse(_) => "DSSE envelope",
            }
        )),
    }
}

/// Rekor `hashedrekord` 0.0.1: `data.hash {algorithm: sha256, value: hex}`,
/// `signature.content` (base64), `signature.publicKey.content` (base64 PEM).
fn hashedrekord_v001(spec: &Value, exp: &Expected<'_>, signature: &[u8]) -> Result<(), String> {
    let alg = str_at(spec, &["data", "hash", "algorithm"]).unwrap_or_default();
    let value = str_at(spec, &["data", "hash", "value"]).unwrap_or_default();
    if alg != "sha256" || hex::decode(value).ok().as_deref() != Some(&exp.artifact_sha256[..]) {
        return Err("its artifact hash is not the artifact's SHA-256".to_owned());
    }
    let sig = str_at(spec, &["signature", "content"]).and_then(b64);
    if sig.as_deref() != Some(signature) {
        return Err("its signature is not the bundle's".to_owned());
    }
    pem_verifier(
        str_at(spec, &["signature", "publicKey", "content"]),
        exp,
        "its public key",
    )
}

/// rekor-tiles `HashedRekordLogEntryV002`: `hashedRekordV002.data {algorithm, digest}`,
/// `signature {content, verifier {x509Certificate|publicKey {rawBytes}}}`. For a DSSE
/// bundle the digest is `SHA-256(PAE(payloadType, payload))` (rekor-v2 spec, hashedrekord
/// over DSSE).
fn hashedrekord_v002(spec: &Value, exp: &Expected<'_>, content: &Content) -> Result<(), String> {
    let spec = spec
        .get("hashedRekordV002")
        .ok_or("its spec has no hashedRekordV002")?;
    let (want, signature): ([u8; 32], &[u8]) = match content {
        Content::Message { signature, .. } => (exp.artifact_sha256, signature),
        Content::Dsse(env) => match env.signatures.as_slice() {
            [one] => (sha256(&pae(&env.payload_type, &env.payload)), one),
            _ => return Err("the DSSE envelope does not have exactly one signature".to_owned()),
        },
    };
    let alg = str_at(spec, &["data", "algorithm"]).unwrap_or_default();
    let got = str_at(spec, &["data", "digest"]).and_then(b64);
    if alg != "SHA2_256" || got.as_deref() != Some(&want[..]) {
        return Err(match content {
            Content::Message { .. } => "its digest is not the artifact's SHA-256".to_owned(),
            Content::Dsse(_) => {
                "its digest is not the SHA-256 of the DSSE envelope's PAE".to_owned()
            }
        });
    }
    let sig = spec.get("signature").ok_or("it has no signature")?;
    if str_at(sig, &["content"]).and_then(b64).as_deref() != Some(signature) {
        return Err("its signature is not the bundle's".to_owned());
    }
    raw_verifier(sig.get("verifier"), exp)
}

/// Rekor `dsse` 0.0.1: `payloadHash {algorithm: sha256, value: hex}` and
/// `signatures [{signature (base64), verifier (base64 PEM)}]`, as many as the envelope's.
fn dsse_v001(
    spec: &Value,
    exp: &Expected<'_>,
    payload: &[u8],
    signatures: &[Vec<u8>],
) -> Result<(), String> {
    let alg = str_at(spec, &["payloadHash", "algorithm"]).unwrap_or_default();
    let value = str_at(spec, &["payloadHash", "value"]).unwrap_or_default();
    if alg != "sha256" || hex::decode(value).ok().as_deref() != Some(&sha256(payload)[..]) {
        return Err("its payload hash is not the DSSE payload's SHA-256".to_owned());
    }
    let logged = spec
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or("it has no signatures")?;
    if logged.len() != signatures.len() {
        return Err("it logs another number of signatures than the envelope has".to_owned());
    }
    for sig in signatures {
        let found = logged
            .iter()
            .find(|l| str_at(l, &["signature"]).and_then(b64).as_deref() == Some(sig.as_slice()));
        let found = found.ok_or("it does not log the envelope's signature")?;
        pem_verifier(str_at(found, &["verifier"]), exp, "its verifier")?;
    }
    Ok(())
}

/// rekor-tiles `DSSELogEntryV002`: `dsseV002.payloadHash {algorithm, digest}`,
/// `signatures [{content, verifier {...}}]`.
fn dsse_v002(
    spec: &Value,
    exp: &Expected<'_>,
    payload: &[u8],
    signatures: &[Vec<u8>],
) -> Result<(), String> {
    let spec = spec.get("dsseV002").ok_or("its spec has no dsseV002")?;
    let alg = str_at(spec, &["payloadHash", "algorithm"]).unwrap_or_default();
    let got = str_at(spec, &["payloadHash", "digest"]).and_then(b64);
    if alg != "SHA2_256" || got.as_deref() != Some(&sha256(payload)[..]) {
        return Err("its payload hash is not the DSSE payload's SHA-256".to_owned());
    }
    let logged = spec
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or("it has no signatures")?;
    if logged.len() != signatures.len() {
        return Err("it logs another number of signatures than the envelope has".to_owned());
    }
    for sig in signatures {
        let found = logged
            .iter()
            .find(|l| str_at(l, &["content"]).and_then(b64).as_deref() == Some(sig.as_slice()))
            .ok_or("it does not log the envelope's signature")?;
        raw_verifier(found.get("verifier"), exp)?;
    }
    Ok(())
}

/// Rekor `intoto` 0.0.2: `content.envelope {payloadType, signatures [{sig, publicKey}]}`
/// and `content.payloadHash {algorithm: sha256, value: hex}`. Rekor stores the envelope's
/// base64 fields base64-encoded once more.
fn intoto_v002(
    spec: &Value,
    exp: &Expected<'_>,
    env: &super::bundle::Envelope,
) -> Result<(), String> {
    let content = spec.get("content").ok_or("its spec has no content")?;
    let alg = str_at(content, &["payloadHash", "algorithm"]).unwrap_or_default();
    let value = str_at(content, &["payloadHash", "value"]).unwrap_or_default();
    if alg != "sha256" || hex::decode(value).ok().as_deref() != Some(&sha256(&env.payload)[..]) {
        return Err("its payload hash is not the DSSE payload's SHA-256".to_owned());
    }
    let envelope = content.get("envelope").ok_or("it has no envelope")?;
    if str_at(envelope, &["payloadType"]) != Some(env.payload_type.as_str()) {
        return Err("its payload type is not the envelope's".to_owned());
    }
    let logged = envelope
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or("it has no signatures")?;
    if logged.len() != env.signatures.len() {
        return Err("it logs another number of signatures than the envelope has".to_owned());
    }
    for sig in &env.signatures {
        let found = logged
            .iter()
            .find(|l| {
                str_at(l, &["sig"])
                    .and_then(double_b64)
                    .is_some_and(|d| d.iter().any(|d| d == sig))
            })
            .ok_or("it does not log the envelope's signature")?;
        let key = str_at(found, &["publicKey"]).and_then(b64);
        let key = key.and_then(|k| String::from_utf8(k).ok());
        pem_verifier(key.as_deref(), exp, "its public key")?;
    }
    Ok(())
}

/// The value decoded once and (when that is base64 text again) twice.
fn double_b64(s: &str) -> Option<Vec<Vec<u8>>> {
    let once = b64(s)?;
    let twice = std::str::from_utf8(&once).ok().and_then(b64);
    Some([Some(once), twice].into_iter().flatten().collect())
}

/// A base64 PEM (`CERTIFICATE` or `PUBLIC KEY`, or for intoto a PEM given directly) that must
/// be the signing certificate or key.
fn pem_verifier(field: Option<&str>, exp: &Expected<'_>, what: &str) -> Result<(), String> {
    let field = field.ok_or_else(|| format!("{what} is missing"))?;
    let pem = if field.starts_with("-----BEGIN") {
        field.as_bytes().to_vec()
    } else {
        b64(field).ok_or_else(|| format!("{what} is not base64"))?
    };
    let (_, block) =
        x509_parser::pem::parse_x509_pem(&pem).map_err(|_| format!("{what} is not a PEM block"))?;
    let matches = match block.label.as_str() {
        "CERTIFICATE" => exp.leaf == Some(block.contents.as_slice()),
        "PUBLIC KEY" => exp.leaf.is_none() && exp.spki == block.contents.as_slice(),
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(format!(
            "{what} is not the bundle's signing certificate or key"
        ))
    }
}

/// A rekor v2 `Verifier {x509Certificate|publicKey {rawBytes}}`.
fn raw_verifier(verifier: Option<&Value>, exp: &Expected<'_>) -> Result<(), String> {
    let verifier = verifier.ok_or("its signature has no verifier")?;
    let cert = str_at(verifier, &["x509Certificate", "rawBytes"]).and_then(b64);
    let key = str_at(verifier, &["publicKey", "rawBytes"]).and_then(b64);
    let matches = match (cert, key) {
        (Some(cert), None) => exp.leaf == Some(cert.as_slice()),
        (None, Some(key)) => exp.leaf.is_none() && exp.spki == key.as_slice(),
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err("its verifier is not the bundle's signing certificate or key".to_owned())
    }
}
