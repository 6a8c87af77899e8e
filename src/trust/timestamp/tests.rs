//! Real tokens from the conformance corpus (sigstore bundles, a public-good cosign bundle,
//! Notation's GlobalSign tokens) and hostile inputs built from them.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use super::*;

fn conformance() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: conformance data not found at {}", dir.display());
        None
    }
}

fn json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Base64 as protobuf JSON reads it (Go's decoder skips line breaks, which one case's
/// `signedTimestamp` has, from `base64` wrapping at 76 columns).
fn b64(v: &Value) -> Vec<u8> {
    try_b64(v).expect("a base64 string")
}

fn try_b64(v: &Value) -> Option<Vec<u8>> {
    let s: String = v
        .as_str()?
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    STANDARD.decode(s).ok()
}

/// The tokens of a sigstore bundle and the bytes they timestamp: the message signature,
/// or the DSSE envelope's first signature.
fn bundle(path: &Path) -> (Vec<Vec<u8>>, Vec<u8>) {
    let b = json(path);
    let tokens = b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array()
        .map(|ts| ts.iter().map(|t| b64(&t["signedTimestamp"])).collect())
        .unwrap_or_default();
    let sig = if b["messageSignature"].is_object() {
        b64(&b["messageSignature"]["signature"])
    } else {
        b64(&b["dsseEnvelope"]["signatures"][0]["sig"])
    };
    (tokens, sig)
}

/// A trusted root's `timestampAuthorities`, read minimally.
fn authorities(path: &Path) -> Vec<Authority> {
    let root = json(path);
    let time = |v: &Value| {
        v.as_str()
            .map(|s| OffsetDateTime::parse(s, &Rfc3339).expect("RFC 3339 time"))
    };
    root["timestampAuthorities"]
        .as_array()
        .map(|tsas| {
            tsas.iter()
                .map(|tsa| Authority {
                    chain: tsa["certChain"]["certificates"]
                        .as_array()
                        .expect("certificates")
                        .iter()
                        .map(|c| b64(&c["rawBytes"]))
                        .collect(),
                    valid_from: time(&tsa["validFor"]["start"]),
                    valid_until: time(&tsa["validFor"]["end"]),
                    pool: Default::default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A bundle-verify case: its token (exactly one), signature and authorities.
fn case(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>, Vec<Authority>) {
    let case = dir.join("sigstore/bundle-verify").join(name);
    let (mut tokens, sig) = bundle(&case.join("bundle.sigstore.json"));
    assert_eq!(tokens.len(), 1, "{name}: one timestamp");
    let root = case.join("trusted_root.json");
    let root = if root.is_file() {
        root
    } else {
        dir.join("sigstore/public-good/targets/trusted_root.json")
    };
    (tokens.remove(0), sig, authorities(&root))
}

fn run(dir: &Path, name: &str) -> Result<Verified, TimestampError> {
    let (token, sig, authorities) = case(dir, name);
    let verdict = verify(&token, &sig, &authorities);
    eprintln!("{name}: {verdict:?}");
    verdict
}

fn utc(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

#[test]
fn sigstore_cases_that_pass() {
    let Some(dir) = conformance() else { return };
    for name in [
        "rekor2-happy-path",
        "rekor2-timestamp-with-embedded-cert",
        "rekor2-timestamp-without-embedded-cert",
        // The TSA chain has expired since; it was valid at genTime, which is what counts.
        "rekor2-timestamp-with-expired-cert-chain",
        // genTime equals the authority's validFor.end: the window is closed.
        "trust-root-tsa-validity-end-inclusive",
        // The bundle fails because genTime lies outside the *Fulcio* signing certificate's
        // lifetime; the timestamp itself is a valid one by the trusted TSA.
        "rekor2-timestamp-with-incorrect-time_fail",
        // Likewise: the bundle fails on its signing certificate's validity, not the token.
        "intoto-tsa-timestamp-outside-cert-validity_fail",
        "rekor2-dsse-happy-path",
    ] {
        let verified = run(&dir, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.authority, 0, "{name}");
    }
    let end = run(&dir, "trust-root-tsa-validity-end-inclusive").unwrap();
    assert_eq!(end.time, utc("2025-06-12T12:02:20Z"));
}

#[test]
fn sigstore_cases_that_fail() {
    let Some(dir) = conformance() else { return };
    let verdict = |name| run(&dir, name).expect_err(name);
    assert!(matches!(
        verdict("rekor2-timestamp-outside-trust-root-tsa-validity_fail"),
        TimestampError::OutsideAuthorityWindow { .. }
    ));
    assert!(matches!(
        verdict("rekor2-timestamp-outside-tsa-cert-validity_fail"),
        TimestampError::OutsideCertificateValidity { .. }
    ));
    assert_eq!(
        verdict("rekor2-timestamp-payload-mismatch_fail"),
        TimestampError::ImprintMismatch
    );
    assert_eq!(
        verdict("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail"),
        TimestampError::EmbeddedCertMismatch
    );
    assert_eq!(
        verdict("rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail"),
        TimestampError::SignerNotAuthority
    );
}

#[test]
fn public_good_tsa_token_of_a_cosign_v3_bundle_verifies() {
    let Some(dir) = conformance() else { return };
    let (tokens, sig) = bundle(&dir.join("sigstore/cosign-v3-image-kubewarden/bundle_v03.json"));
    let authorities = authorities(&dir.join("sigstore/public-good/targets/trusted_root.json"));
    assert_eq!(tokens.len(), 1);
    let verified = verify(&tokens[0], &sig, &authorities).expect("public-good TSA token");
    eprintln!("kubewarden: {verified:?}");
    // The wrong bytes, or another trusted root's TSA, do not verify.
    assert_eq!(
        verify(&tokens[0], b"other bytes", &authorities),
        Err(TimestampError::ImprintMismatch)
    );
    let (_, _, staging) = case(&dir, "rekor2-happy-path");
    assert!(verify(&tokens[0], &sig, &staging).is_err());
}

#[test]
fn the_first_authority_that_verifies_is_named_and_the_others_give_reasons() {
    let Some(dir) = conformance() else { return };
    let (token, sig, staging) = case(&dir, "rekor2-happy-path");
    let (_, _, local) = case(&dir, "rekor2-timestamp-with-expired-cert-chain");
    let mut both = local.clone();
    both.extend(staging.iter().cloned());
    let verified = verify(&token, &sig, &both).unwrap();
    assert_eq!(verified.authority, local.len());
    match verify(&token, &sig, &local) {
        Err(TimestampError::NoAuthority(reasons)) => assert_eq!(reasons.len(), local.len()),
        Err(e) if local.len() == 1 => eprintln!("one authority: {e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        verify(&token, &sig, &[]),
        Err(TimestampError::NoAuthorities)
    );
}

/// Notation's TSA trust store holds a root only: the token supplies its leaf and chain.
fn notation_root(dir: &Path, rel: &str) -> Authority {
    Authority {
        chain: vec![std::fs::read(dir.join("notation").join(rel)).unwrap()],
        valid_from: None,
        valid_until: None,
        pool: Default::default(),
    }
}

#[test]
fn notation_globalsign_tokens() {
    let Some(dir) = conformance() else { return };
    let testdata = dir.join("notation/notation-go/verifier/testdata");
    let r6 = notation_root(
        &dir,
        "notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer",
    );
    let digicert = notation_root(
        &dir,
        "notation-go/verifier/testdata/truststore/x509/tsa/test-mismatch/DigiCertTSARootSHA384.cer",
    );
    let read = |rel: &str| std::fs::read(testdata.join(rel)).unwrap();

    // notation-go's countersignature token: the imprint is SHA-256("notation").
    let token = read("timestamp/countersignature/TimeStampToken.p7s");
    let verified = verify(&token, b"notation", std::slice::from_ref(&r6)).expect("GlobalSign");
    assert_eq!(verified.time.year(), 2021);
    assert_eq!(
        verify(&token, b"notation!", std::slice::from_ref(&r6)),
        Err(TimestampError::ImprintMismatch)
    );
    assert!(matches!(
        verify(&token, b"notation", std::slice::from_ref(&digicert)),
        Err(TimestampError::Chain(_))
    ));

    // A JWS envelope's timestamp countersigns its signature value.
    let jws = json(&testdata.join("timestamp/sigEnv/jwsWithTimestamp.sig"));
    let token = b64(&jws["header"]["io.cncf.notary.timestampSignature"]);
    let sig = URL_SAFE_NO_PAD
        .decode(jws["signature"].as_str().unwrap())
        .unwrap();
    let verified = verify(&token, &sig, std::slice::from_ref(&r6)).expect("JWS timestamp");
    assert_eq!(verified.time.date(), utc("2024-06-18T00:00:00Z").date());

    // Broken tokens upstream tests reject.
    let r = verify(
        &read("timestamp/countersignature/TimeStampTokenWithInvalidTSTInfo.p7s"),
        b"notation",
        std::slice::from_ref(&r6),
    );
    eprintln!("invalid TSTInfo: {r:?}");
    assert!(r.is_err());
    assert!(matches!(
        verify(
            &read("timestamp/countersignature/TimeStampTokenWithInvalideContentType.p7s"),
            b"notation",
            std::slice::from_ref(&r6),
        ),
        Err(TimestampError::NotTstInfo(_))
    ));
    assert_eq!(
        verify(
            &read("timestamp/countersignature/TimeStampTokenWithoutCertificate.p7s"),
            b"notation",
            std::slice::from_ref(&r6),
        ),
        Err(TimestampError::NoSigningCertificate)
    );
    let core = dir.join("notation/notation-core-go/internal/timestamp/testdata");
    let core_root = Authority {
        chain: vec![std::fs::read(core.join("tsaRootCert.cer")).unwrap()],
        valid_from: None,
        valid_until: None,
        pool: Default::default(),
    };
    let r = verify(
        &std::fs::read(core.join("TimeStampTokenWithInvalidSignature.p7s")).unwrap(),
        b"notation",
        &[core_root],
    );
    eprintln!("invalid signature: {r:?}");
    assert_eq!(r, Err(TimestampError::BadSignature));
}

#[test]
fn notation_envelope_with_a_garbage_timestamp_is_refused() {
    let Some(dir) = conformance() else { return };
    let layout = dir.join("notation/notation/test/e2e/testdata/registry/oci_layout/e2e-with-invalid-timestamped-signature");
    // Find the JWS blob carrying the 8-byte garbage `timestampSignature`.
    let Ok(blobs) = std::fs::read_dir(layout.join("blobs/sha256")) else {
        eprintln!("skipping: {} not found", layout.display());
        return;
    };
    let mut seen = 0;
    for blob in blobs {
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(blob.unwrap().path()).unwrap())
        else {
            continue;
        };
        let Some(ts) = v["header"]["io.cncf.notary.timestampSignature"].as_str() else {
            continue;
        };
        seen += 1;
        let token = STANDARD.decode(ts).unwrap();
        let r = verify(&token, b"anything", &[]);
        assert!(matches!(r, Err(TimestampError::Malformed { .. })), "{r:?}");
    }
    assert_eq!(seen, 1);
}

// === hostile inputs ===

fn happy(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<Authority>) {
    case(dir, "rekor2-happy-path")
}

#[test]
fn garbage_and_truncated_tokens_are_malformed_without_panics() {
    let Some(dir) = conformance() else { return };
    let (token, sig, authorities) = happy(&dir);
    for bad in [
        &b""[..],
        b"\x30",
        b"\x30\x80\x00\x00",
        b"garbage",
        &[0xff; 64],
    ] {
        assert!(
            matches!(
                verify(bad, &sig, &authorities),
                Err(TimestampError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
    for len in (0..token.len()).step_by(7) {
        assert!(
            verify(&token[..len], &sig, &authorities).is_err(),
            "truncated at {len}"
        );
    }
    // Every single-byte flip fails or (rarely, in an unsigned field) still verifies;
    // none panics.
    for i in 0..token.len() {
        let mut t = token.clone();
        t[i] ^= 0x01;
        let _ = verify(&t, &sig, &authorities);
    }
    let mut trailing = token.clone();
    trailing.push(0);
    assert!(matches!(
        verify(&trailing, &sig, &authorities),
        Err(TimestampError::Malformed { .. })
    ));
}

#[test]
fn huge_sets_and_deep_nesting_are_refused_before_decoding() {
    // A SET OF 1000 distinct INTEGERs in reverse order, wrapped as a ContentInfo's content.
    let mut set = Vec::new();
    for i in (0..1000u16).rev() {
        set.extend_from_slice(&[0x02, 0x02, (i >> 8) as u8, i as u8]);
    }
    let mut der = vec![0x31, 0x82, (set.len() >> 8) as u8, set.len() as u8];
    der.extend_from_slice(&set);
    let mut token = vec![0x30, 0x82];
    let len = der.len() + 11;
    token.extend_from_slice(&[(len >> 8) as u8, len as u8]);
    token.extend_from_slice(&[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ]);
    token.extend_from_slice(&der);
    let r = verify(&token, b"x", &[]);
    assert!(
        matches!(&r, Err(TimestampError::Malformed { reason, .. }) if reason.contains("SET of 1000")),
        "{r:?}"
    );
    let mut deep = Vec::new();
    for _ in 0..40 {
        let mut outer = vec![0x30, deep.len() as u8];
        outer.extend_from_slice(&deep);
        deep = outer;
    }
    let r = verify(&deep, b"x", &[]);
    assert!(
        matches!(&r, Err(TimestampError::Malformed { reason, .. }) if reason.contains("deeper")),
        "{r:?}"
    );
}

/// Every bundle-verify case with a timestamp: cases whose names do not end in `_fail`
/// verify; the `_fail` ones are listed with their verdict (most fail for reasons outside
/// the timestamp).
#[test]
fn every_valid_sigstore_case_with_a_timestamp_verifies() {
    let Some(dir) = conformance() else { return };
    let cases = dir.join("sigstore/bundle-verify");
    let mut names: Vec<String> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut verified = 0;
    for name in names {
        let Ok(text) = std::fs::read(cases.join(&name).join("bundle.sigstore.json")) else {
            continue;
        };
        if serde_json::from_slice::<Value>(&text).is_err() {
            continue;
        }
        let b: Value = serde_json::from_slice(&text).unwrap();
        let ts = &b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"];
        let sig = try_b64(&b["messageSignature"]["signature"])
            .or_else(|| try_b64(&b["dsseEnvelope"]["signatures"][0]["sig"]));
        if ts.as_array().map_or(0, Vec::len) != 1 {
            continue;
        }
        if sig.is_none() {
            eprintln!("{name}: its signature is not base64, nothing to timestamp");
            continue;
        }
        let verdict = run(&dir, &name);
        if !name.ends_with("_fail") {
            verdict.unwrap_or_else(|e| panic!("{name}: {e}"));
            verified += 1;
        }
    }
    eprintln!("{verified} valid cases verified");
    assert!(verified >= 8, "{verified}");
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let big = vec![0u8; MAX_TOKEN_LEN + 1];
    assert_eq!(
        verify(&big, b"x", &[]),
        Err(TimestampError::TooLarge {
            len: MAX_TOKEN_LEN + 1,
            max: MAX_TOKEN_LEN
        })
    );
}

/// The position of `needle` in `haystack` (once).
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    let at = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present");
    assert!(
        haystack[at + 1..]
            .windows(needle.len())
            .all(|w| w != needle),
        "needle unique"
    );
    at
}

#[test]
fn a_changed_tstinfo_or_signature_does_not_verify() {
    let Some(dir) = conformance() else { return };
    let (token, sig, authorities) = happy(&dir);
    let parsed = token::parse(&token).unwrap();
    // A changed genTime: the message-digest attribute no longer matches.
    let at = find(&token, &parsed.tst_info_der);
    let gen = find(&parsed.tst_info_der, b"2025") + at;
    let mut t = token.clone();
    t[gen + 3] = b'4';
    assert_eq!(
        verify(&t, &sig, &authorities),
        Err(TimestampError::MessageDigestMismatch)
    );
    // A changed signature value (its last byte).
    let info = &parsed.signers[0];
    let s = info.signature.as_bytes();
    let at = find(&token, s) + s.len() - 1;
    let mut t = token.clone();
    t[at] ^= 0x55;
    assert_eq!(
        verify(&t, &sig, &authorities),
        Err(TimestampError::BadSignature)
    );
}

#[test]
fn a_token_signed_by_another_key_does_not_verify() {
    let Some(dir) = conformance() else { return };
    // The staging TSA's token checked against the local TSA of another case (another key
    // and certificate): the signer is not that authority's.
    let (token, sig, _) = happy(&dir);
    let (_, _, other) = case(&dir, "rekor2-timestamp-with-expired-cert-chain");
    let r = verify(&token, &sig, &other);
    eprintln!("another key: {r:?}");
    assert!(r.is_err());
    // A forged authority: the staging leaf's identity but another TSA's root as anchor.
    let (_, _, staging) = happy(&dir);
    let mut forged = staging[0].clone();
    *forged.chain.last_mut().unwrap() = other[0].chain.last().unwrap().clone();
    assert!(matches!(
        verify(&token, &sig, &[forged]),
        Err(TimestampError::Chain(_))
    ));
}

#[test]
fn generalized_times_with_fractions_parse_and_odd_ones_do_not() {
    let gt = |s: &str| {
        let mut der = vec![0x18, s.len() as u8];
        der.extend_from_slice(s.as_bytes());
        token::parse_generalized_time(&der::Any::from_der(&der).unwrap())
    };
    use der::Decode as _;
    assert_eq!(gt("20250612120220Z").unwrap(), utc("2025-06-12T12:02:20Z"));
    assert_eq!(
        gt("20250121091746.641Z").unwrap(),
        utc("2025-01-21T09:17:46.641Z")
    );
    for bad in [
        "20250612120220",
        "20250612120220+0100",
        "2025061212022Z",
        "20251312120220Z",
        "20250230120220Z",
        "20250612250220Z",
        "20250612120220.Z",
        "20250612120220.1234567890Z",
        "2025061212022aZ",
    ] {
        assert!(gt(bad).is_err(), "{bad}");
    }
}

#[test]
fn accuracies_parse_with_their_bounds() {
    use der::Decode;
    let accuracy = |der: &[u8]| super::token::parse_accuracy(&der::Any::from_der(der).unwrap());
    // seconds 1, millis 500
    assert_eq!(
        accuracy(&[0x30, 0x07, 0x02, 0x01, 0x01, 0x80, 0x02, 0x01, 0xf4]),
        Ok(time::Duration::milliseconds(1500))
    );
    // micros 5 alone
    assert_eq!(
        accuracy(&[0x30, 0x03, 0x81, 0x01, 0x05]),
        Ok(time::Duration::microseconds(5))
    );
    assert_eq!(accuracy(&[0x30, 0x00]), Ok(time::Duration::ZERO));
    // millis 0 (out of 1..999), negative seconds, millis before seconds, seconds twice,
    // an unknown field, a huge number of seconds.
    for bad in [
        &[0x30, 0x03, 0x80, 0x01, 0x00][..],
        &[0x30, 0x03, 0x02, 0x01, 0xff],
        &[0x30, 0x06, 0x80, 0x01, 0x01, 0x02, 0x01, 0x01],
        &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        &[0x30, 0x03, 0x82, 0x01, 0x01],
        &[0x30, 0x08, 0x02, 0x06, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00],
    ] {
        assert!(accuracy(bad).is_err(), "{bad:02x?}");
    }
}

#[test]
fn notation_tokens_report_their_accuracy_and_verified_chain() {
    let Some(dir) = conformance() else { return };
    let testdata = dir.join("notation/notation-go/verifier/testdata");
    let r6 = notation_root(
        &dir,
        "notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer",
    );
    let jws = json(&testdata.join("timestamp/sigEnv/jwsWithTimestamp.sig"));
    let token = b64(&jws["header"]["io.cncf.notary.timestampSignature"]);
    let sig = URL_SAFE_NO_PAD
        .decode(jws["signature"].as_str().unwrap())
        .unwrap();
    // GlobalSign's tokens state an accuracy of one second.
    let examined = examine(&token, &sig).unwrap();
    assert_eq!(examined.accuracy, time::Duration::SECOND);
    assert_eq!(
        examine(&token, b"other"),
        Err(TimestampError::ImprintMismatch)
    );
    let verified = verify(&token, &sig, std::slice::from_ref(&r6)).unwrap();
    assert_eq!(verified.time, examined.time);
    assert_eq!(verified.accuracy, examined.accuracy);
    // Leaf, intermediate, R6.
    assert_eq!(verified.chain.len(), 3);
    assert_eq!(verified.chain.last(), r6.chain.last());
    assert!(crate::trust::x509::cert_signed_by(
        &verified.chain[0],
        &verified.chain[1]
    ));

    // The Microsoft token of the e2e timestamped layout: 500 ms.
    let layout = dir.join(
        "notation/notation/test/e2e/testdata/registry/oci_layout/e2e-with-timestamped-signature/blobs/sha256",
    );
    let Ok(blobs) = std::fs::read_dir(&layout) else {
        eprintln!("skipping: {} not found", layout.display());
        return;
    };
    let mut seen = 0;
    for blob in blobs {
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(blob.unwrap().path()).unwrap())
        else {
            continue;
        };
        let Some(ts) = v["header"]["io.cncf.notary.timestampSignature"].as_str() else {
            continue;
        };
        seen += 1;
        let token = STANDARD.decode(ts).unwrap();
        let sig = URL_SAFE_NO_PAD
            .decode(v["signature"].as_str().unwrap())
            .unwrap();
        let examined = examine(&token, &sig).unwrap();
        assert_eq!(examined.accuracy, time::Duration::milliseconds(500));
        assert_eq!(examined.time, utc("2025-01-21T09:17:46.641Z"));
    }
    assert_eq!(seen, 1);
}
