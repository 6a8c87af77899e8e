//! The verification workflow, step by step as sigstore-go `verify.SignedEntityVerifier.Verify`
//! runs it: the signing material against the policy, the transparency-log entries
//! (`VerifyTlogEntry`), the RFC 3161 timestamps (`VerifySignedTimestamp`), the thresholds
//! (`VerifierConfig`), the leaf certificate at every observed time (`verifyLeafCertificate`,
//! `VerifySignedCertificateTimestamp`), the identity (`CertificateIdentity.Verify`), and
//! the signature over the artifact (`VerifySignatureWithArtifacts` /
//! `VerifySignatureWithArtifactDigests`).

use aws_lc_rs::digest;
use base64::Engine as _;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    bundle::{Bundle, Content, Material},
    entry::{self, Expected, Generation},
    Artifact, ObservedTime, Policy, Requirements, Signer, SigstoreError, Statement, TimeSource,
    Verified,
};
use crate::trust::{
    root::{in_window, CertificateAuthority, TrustedRoot},
    sct, timestamp,
    tlog::{self, RekorPayload},
    x509,
};

/// The in-toto statement payload type (in-toto/attestation `envelope.md`).
const IN_TOTO: &str = "application/vnd.in-toto+json";
/// Most subjects of an in-toto statement read.
const MAX_SUBJECTS: usize = 1024;

/// Verifies `bundle` for `artifact` under `root`, `policy` and `req`, at `now` (log
/// integrated times may not be later).
pub fn verify(
    bundle: &Bundle,
    root: &TrustedRoot,
    artifact: Artifact<'_>,
    policy: Policy<'_>,
    req: &Requirements,
    now: OffsetDateTime,
) -> Result<Verified, SigstoreError> {
    // 1. The signing material must be what the policy trusts (sigstore-go `WithKey` vs
    //    `WithCertificateIdentity`: keyless material under a key rule fails, and vice versa).
    // The leaf is parsed once, here, for every step that reads it.
    let (leaf, leaf_cert, offered, spki) = match (policy, &bundle.material) {
        (Policy::Key { spki_der }, Material::PublicKey { .. }) => {
            (None, None, &[][..], spki_der.to_vec())
        }
        (
            Policy::Identity { .. } | Policy::AnyCertificate,
            Material::Certificate { leaf, offered },
        ) => {
            let (_, cert) = X509Certificate::from_der(leaf)
                .map_err(|e| SigstoreError::Certificate(format!("it does not parse: {e}")))?;
            let spki = cert.public_key().raw.to_vec();
            (Some(leaf.as_slice()), Some(cert), offered.as_slice(), spki)
        }
        (Policy::Key { .. }, Material::Certificate { .. }) => {
            return Err(SigstoreError::MaterialMismatch {
                expected: "a public key",
                found: "a certificate",
            })
        }
        (Policy::Identity { .. } | Policy::AnyCertificate, Material::PublicKey { .. }) => {
            return Err(SigstoreError::MaterialMismatch {
                expected: "a certificate identity",
                found: "a public key",
            })
        }
    };
    // protobuf-specs `X509CertificateChain`: the chain must not include the root; a
    // self-signed certificate in it is refused rather than silently ignored.
    let self_signed = |cert: &X509Certificate<'_>| {
        if cert.subject().as_raw() == cert.issuer().as_raw() {
            return Err(SigstoreError::Certificate(
                "the bundle's certificate chain includes a self-signed (root) certificate"
                    .to_owned(),
            ));
        }
        Ok(())
    };
    if let Some(cert) = &leaf_cert {
        self_signed(cert)?;
    }
    for der in offered {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
            SigstoreError::Certificate(format!("a chain certificate does not parse: {e}"))
        })?;
        self_signed(&cert)?;
    }
    let signature = bundle.signature().ok_or_else(|| {
        SigstoreError::Signature("a DSSE envelope must carry exactly one signature".to_owned())
    })?;
    let artifact_sha256 = match artifact {
        Artifact::Bytes(bytes) => sha256(bytes),
        Artifact::Sha256(d) => d,
    };

    // 2. Transparency-log entries (sigstore-go `VerifyTlogEntry`, `tlog.ValidateEntry`).
    let expected = Expected {
        content: &bundle.content,
        artifact_sha256,
        leaf,
        spki: &spki,
    };
    let mut times: Vec<ObservedTime> = Vec::new();
    let mut tlogs: Vec<String> = Vec::new();
    let mut v2_windows = Vec::new();
    let mut verified_entries = 0;
    for (index, e) in bundle.entries.iter().enumerate() {
        let tlog_err = |reason: String| SigstoreError::Tlog { index, reason };
        // An entry of a log the root does not know cannot count (sigstore-go skips it; the
        // threshold below then decides).
        let Some(log) = root.tlog(&e.log_id) else {
            continue;
        };
        let generation = entry::check(e, &expected)
            .map_err(|reason| SigstoreError::EntryMismatch { index, reason })?;
        let key = log.key.as_ref().map_err(|err| {
            tlog_err(format!(
                "the log {} has a {} key this verifier cannot use: {err}",
                log.base_url, log.key_details
            ))
        })?;
        match generation {
            Generation::V1 => {
                // Rekor v1: the SET is the log's signed promise of inclusion at the
                // integrated time (sigstore-go `tlog.VerifySET`).
                if let Some(set) = &e.set {
                    let payload = RekorPayload {
                        body: base64::engine::general_purpose::STANDARD.encode(&e.body),
                        integrated_time: e.integrated_time,
                        log_index: i64::try_from(e.log_index).unwrap_or(i64::MAX),
                        log_id: hex::encode(&e.log_id),
                    };
                    if !tlog::verify_set(key, &payload, set) {
                        return Err(tlog_err(format!(
                            "its signed entry timestamp does not verify under the key of {}",
                            log.base_url
                        )));
                    }
                    let at = OffsetDateTime::from_unix_timestamp(e.integrated_time)
                        .map_err(|_| tlog_err("its integrated time is out of range".to_owned()))?;
                    if at > now {
                        return Err(tlog_err(format!(
                            "its integrated time {} is in the future",
                            rfc3339(at)
                        )));
                    }
                    // The log must have been trusted at the time it says it logged the entry.
                    if !in_window(at, log.valid_from, log.valid_until) {
                        return Err(tlog_err(format!(
                            "its integrated time {} is outside the validity of {} in the trusted root",
                            rfc3339(at),
                            log.base_url
                        )));
                    }
                    times.push(ObservedTime {
                        time: at,
                        source: TimeSource::Tlog(log.base_url.clone()),
                    });
                } else if e.proof.is_none() {
                    return Err(tlog_err(
                        "it has neither an inclusion promise nor an inclusion proof".to_owned(),
                    ));
                }
                // An inclusion proof, when present, must hold, with its checkpoint (v0.1
                // proofs may predate checkpoints: the SET then stands alone).
                if let Some(proof) = &e.proof {
                    match &proof.checkpoint {
                        Some(cp) => {
                            tlog::verify_inclusion_in_checkpoint(
                                proof.log_index,
                                proof.tree_size,
                                &e.body,
                                &proof.hashes,
                                &proof.root_hash,
                                cp,
                                key,
                            )
                            .map_err(|err| tlog_err(format!("its inclusion proof: {err}")))?;
                        }
                        None if e.set.is_some() => {}
                        None => {
                            return Err(tlog_err(
                                "its inclusion proof has no checkpoint".to_owned(),
                            ))
                        }
                    }
                }
            }
            Generation::V2 => {
                // Rekor v2: no SET and no integrated time; inclusion proof and checkpoint
                // are required, and the checkpoint's origin is the log's (sigstore-go
                // `VerifyTlogEntry`, rekor-tiles checkpoints are signed notes of that origin).
                let proof = e.proof.as_ref().ok_or_else(|| {
                    tlog_err("a Rekor v2 entry needs an inclusion proof".to_owned())
                })?;
                let cp = proof.checkpoint.as_ref().ok_or_else(|| {
                    tlog_err("a Rekor v2 entry's inclusion proof needs a checkpoint".to_owned())
                })?;
                let signed = tlog::verify_inclusion_in_checkpoint(
                    proof.log_index,
                    proof.tree_size,
                    &e.body,
                    &proof.hashes,
                    &proof.root_hash,
                    cp,
                    key,
                )
                .map_err(|err| tlog_err(format!("its inclusion proof: {err}")))?;
                if signed.origin != log.origin {
                    return Err(tlog_err(format!(
                        "its checkpoint is from {:?}, not the log {:?}",
                        signed.origin, log.origin
                    )));
                }
                v2_windows.push((index, log));
            }
        }
        verified_entries += 1;
        if !tlogs.contains(&log.base_url) {
            tlogs.push(log.base_url.clone());
        }
    }

    // 3. RFC 3161 timestamps over the signature (sigstore-go `VerifySignedTimestamp`). A
    //    timestamp that does not verify refuses the bundle (sigstore-go ignores it unless a
    //    threshold needs it): a bundle carrying a forged or foreign timestamp is refused.
    let mut timestamp_authorities: Vec<String> = Vec::new();
    for (index, token) in bundle.timestamps.iter().enumerate() {
        match timestamp::verify(token, signature, &root.timestamp_authorities) {
            Ok(v) => {
                let uri = root
                    .timestamp_authority_uris
                    .get(v.authority)
                    .cloned()
                    .unwrap_or_default();
                times.push(ObservedTime {
                    time: v.time,
                    source: TimeSource::Timestamp(uri.clone()),
                });
                // isDuplicateTSA: one authority counts once.
                if !timestamp_authorities.contains(&uri) {
                    timestamp_authorities.push(uri);
                }
            }
            Err(err) => {
                return Err(SigstoreError::Timestamp {
                    index,
                    reason: err.to_string(),
                })
            }
        }
    }
    // A Rekor v2 entry has no time of its own: its log must have been trusted at a
    // verified timestamp.
    for (index, log) in v2_windows {
        let stamped = times
            .iter()
            .filter(|t| matches!(t.source, TimeSource::Timestamp(_)))
            .any(|t| in_window(t.time, log.valid_from, log.valid_until));
        if !stamped {
            return Err(SigstoreError::Tlog {
                index,
                reason: format!(
                    "a Rekor v2 entry needs an RFC 3161 timestamp within the validity of {}",
                    log.base_url
                ),
            });
        }
    }

    // 4. Thresholds (sigstore-go `VerifierConfig`).
    let signed_timestamps = timestamp_authorities.len();
    for (what, got, needed) in [
        (
            "transparency log entries",
            verified_entries,
            req.tlog_entries,
        ),
        (
            "signed timestamps",
            signed_timestamps,
            req.signed_timestamps,
        ),
        ("observer timestamps", times.len(), req.observer_timestamps),
    ] {
        if got < needed {
            return Err(SigstoreError::Threshold { what, got, needed });
        }
    }

    // 5. The leaf certificate, at every observed time (sigstore-go `verifyLeafCertificate`):
    //    valid then (expired now is fine), chaining to a CA whose window contains it.
    //    A path verified at one observed time is checked at the others against its
    //    certificates' validity and its CA's window alone: path validation is the same at
    //    every time but for those (see `VerifiedChain::valid_at`), so the verdict at each time
    //    is the one a full verification would give, without its signature checks again.
    //    A time the paths found so far do not cover gets a full verification of its own.
    let mut paths: Vec<(&CertificateAuthority, x509::VerifiedChain)> = Vec::new();
    let signer = match (leaf, policy) {
        (Some(leaf), Policy::Identity { .. } | Policy::AnyCertificate) => {
            for t in &times {
                let at = t.time.unix_timestamp();
                if paths.iter().any(|(ca, c)| {
                    in_window(t.time, ca.valid_from, ca.valid_until) && c.valid_at(at)
                }) {
                    continue;
                }
                let mut last = format!(
                    "no certificate authority of the trusted root was valid at {}",
                    rfc3339(t.time)
                );
                let mut ok = None;
                for ca in &root.certificate_authorities {
                    if !in_window(t.time, ca.valid_from, ca.valid_until) {
                        continue;
                    }
                    match ca.pool.verify(leaf, offered, at, x509::EKU_CODE_SIGNING) {
                        Ok(c) => {
                            ok = Some((ca, c));
                            break;
                        }
                        Err(e) => {
                            last = format!(
                                "it does not chain to {} at {}: {e}",
                                ca.uri,
                                rfc3339(t.time)
                            )
                        }
                    }
                }
                match ok {
                    Some(path) => paths.push(path),
                    None => return Err(SigstoreError::Certificate(last)),
                }
            }
            let cert = leaf_cert.as_ref().ok_or_else(|| {
                SigstoreError::Certificate("the leaf certificate was not parsed".to_owned())
            })?;
            // 6. The identity (sigstore-go `CertificateIdentity.Verify`, exact values), unless
            //    the caller matches it itself.
            let sans = x509::subject_names(cert);
            let found = x509::fulcio_issuer(cert);
            if let Policy::Identity { identity, issuer } = policy {
                if !sans.iter().any(|s| s == identity) {
                    return Err(SigstoreError::Identity {
                        expected: identity.to_owned(),
                        found: sans,
                    });
                }
                if found.as_deref() != Some(issuer) {
                    return Err(SigstoreError::Issuer {
                        expected: issuer.to_owned(),
                        found,
                    });
                }
            }
            Signer::Certificate {
                issuer: found,
                sans,
            }
        }
        _ => Signer::Key {
            id: format!("sha256:{}", hex::encode(sha256(&spki))),
        },
    };

    // 7. The signature over the artifact.
    let statement = verify_signature(&bundle.content, artifact, artifact_sha256, &spki, signature)?;

    // 8. Embedded SCTs (sigstore-go `VerifySignedCertificateTimestamp`), threshold per `req`.
    // The path of the first observed time, as before.
    let chain = paths.first().map(|(_, c)| c);
    let mut scts = 0;
    if let (Some(leaf), Some(chain)) = (leaf, chain) {
        if req.scts > 0 {
            match sct::verify_embedded(leaf, &chain.issuer_spki, &root.ctlogs, req.scts) {
                Ok(n) if n >= req.scts => scts = n,
                Ok(n) => {
                    return Err(SigstoreError::Threshold {
                        what: "SCTs",
                        got: n,
                        needed: req.scts,
                    })
                }
                Err(err) => return Err(SigstoreError::Sct(err.to_string())),
            }
        }
    } else if leaf.is_some() && req.scts > 0 {
        return Err(SigstoreError::Certificate(
            "no observed time to verify the certificate at".to_owned(),
        ));
    }

    Ok(Verified {
        signer,
        times,
        statement,
        tlogs,
        timestamp_authorities,
        scts,
    })
}

/// The signature over the artifact (sigstore-go `VerifySignatureWithArtifacts` /
/// `VerifySignatureWithArtifactDigests`, `verifyEnvelopeWithArtifacts`).
fn verify_signature(
    content: &Content,
    artifact: Artifact<'_>,
    artifact_sha256: [u8; 32],
    spki: &[u8],
    signature: &[u8],
) -> Result<Option<Statement>, SigstoreError> {
    match content {
        Content::Message { digest, .. } => {
            // The message digest is an unauthenticated hint, but it must agree.
            if let Some((alg, d)) = digest {
                if alg != "SHA2_256" {
                    return Err(SigstoreError::Signature(format!(
                        "the message digest algorithm {alg:?} is not supported (SHA2_256 is)"
                    )));
                }
                if d.as_slice() != artifact_sha256 {
                    return Err(SigstoreError::DigestMismatch);
                }
            }
            let ok = match artifact {
                Artifact::Bytes(bytes) => x509::spki_verifies(spki, bytes, signature),
                // VerifySignatureWithDigest: only ECDSA signs a prehashed message.
                Artifact::Sha256(d) => x509::ecdsa_verifies_prehashed(spki, &d, signature),
            };
            if !ok {
                return Err(SigstoreError::Signature(
                    "the message signature is not the signing key's over the artifact".to_owned(),
                ));
            }
            Ok(None)
        }
        Content::Dsse(env) => {
            // DSSE protocol.md: the signature is over PAE(payloadType, payload).
            if !x509::spki_verifies(
                spki,
                &entry::pae(&env.payload_type, &env.payload),
                signature,
            ) {
                return Err(SigstoreError::Signature(
                    "the DSSE signature is not the signing key's over the envelope".to_owned(),
                ));
            }
            if env.payload_type != IN_TOTO {
                return Err(SigstoreError::Subject(format!(
                    "the payload type {:?} is not an in-toto statement",
                    env.payload_type
                )));
            }
            subject_matches(&env.payload, artifact_sha256)?;
            Ok(Some(Statement {
                payload_type: env.payload_type.clone(),
                payload: env.payload.clone(),
            }))
        }
    }
}

/// in-toto Statement v0.1/v1: one subject's `digest.sha256` is the artifact's.
fn subject_matches(payload: &[u8], artifact_sha256: [u8; 32]) -> Result<(), SigstoreError> {
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|_| SigstoreError::Subject("the payload is not JSON".to_owned()))?;
    let subjects = statement
        .get("subject")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| SigstoreError::Subject("the statement has no subjects".to_owned()))?;
    if subjects.len() > MAX_SUBJECTS {
        return Err(SigstoreError::Subject(format!(
            "the statement has more than {MAX_SUBJECTS} subjects"
        )));
    }
    let want = hex::encode(artifact_sha256);
    let found = subjects.iter().any(|s| {
        s.get("digest")
            .and_then(|d| d.get("sha256"))
            .and_then(serde_json::Value::as_str)
            .is_some_and(|h| h.eq_ignore_ascii_case(&want))
    });
    if found {
        Ok(())
    } else {
        Err(SigstoreError::Subject(format!(
            "no subject has the artifact's sha256 {want}"
        )))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
