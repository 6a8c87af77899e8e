use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING},
};

use base64::Engine as _;

use super::*;

/// Checks for a key-signed bundle made offline (no log entry, `require_tlog: false`).
fn offline(
    bytes: &[u8],
    digest: &Digest,
    keys: &[CosignKey],
    keyless: Option<&Keyless>,
) -> BundleVerdict {
    let root = Arc::new(TrustedRoot::empty());
    let checks = Checks {
        root,
        require_tlog: false,
        now: OffsetDateTime::now_utc(),
    };
    verify(bytes, digest, keys, keyless, &checks)
}

/// The media type of a v0.3 bundle.
const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const HEX: &str = "8f3a7c1e2d4b5a6978f0e1d2c3b4a5968778695a4b3c2d1e0f1e2d3c4b5a6978";

fn digest() -> Digest {
    Digest::parse(&format!("sha256:{HEX}")).unwrap()
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn generated() -> (EcdsaKeyPair, CosignKey) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let spki = pair.public_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        encode(spki.as_ref())
    );
    (pair, CosignKey::from_pem(pem.as_bytes()).unwrap())
}

fn statement(hex: &str, predicate: &str) -> Vec<u8> {
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": hex}}],
        "predicateType": predicate,
        "predicate": {}
    })
    .to_string()
    .into_bytes()
}

/// A key-based bundle over `statement`, as `cosign sign --key --new-bundle-format` writes.
fn keyed(pair: &EcdsaKeyPair, statement: &[u8], payload_type: &str) -> Vec<u8> {
    let sig = pair
        .sign(&SystemRandom::new(), &pae(payload_type, statement))
        .unwrap();
    serde_json::json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
        "dsseEnvelope": {"payload": encode(statement), "payloadType": payload_type,
                         "signatures": [{"sig": encode(sig.as_ref()), "keyid": ""}]}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn pae_is_the_dsse_v1_encoding() {
    // The DSSE protocol's own example.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

#[test]
fn a_keyed_bundle_for_the_digest_vouches_for_its_key() {
    let (pair, key) = generated();
    let (_, other) = generated();
    let bundle = keyed(&pair, &statement(HEX, SIGN_PREDICATE), INTOTO_PAYLOAD_TYPE);
    match offline(&bundle, &digest(), &[other.clone(), key], None) {
        BundleVerdict::Vouches(v) => assert_eq!(v.signers, vec![1]),
        v => panic!("{v:?}"),
    }
    assert_eq!(
        offline(&bundle, &digest(), &[other], None),
        BundleVerdict::Failed(BundleFailure::NoSigner)
    );
}

#[test]
fn a_statement_about_another_digest_or_predicate_does_not_count() {
    let (pair, key) = generated();
    let other = "00".repeat(32);
    let bundle = keyed(
        &pair,
        &statement(&other, SIGN_PREDICATE),
        INTOTO_PAYLOAD_TYPE,
    );
    assert!(matches!(
        offline(&bundle, &digest(), std::slice::from_ref(&key), None),
        BundleVerdict::OtherSubject(_)
    ));
    let slsa = keyed(
        &pair,
        &statement(HEX, "https://slsa.dev/provenance/v1"),
        INTOTO_PAYLOAD_TYPE,
    );
    // Verified, and an attestation: a candidate for attestation requirements, never a
    // signature.
    match offline(&slsa, &digest(), std::slice::from_ref(&key), None) {
        BundleVerdict::Attests(v, predicate) => {
            assert_eq!(v.signers, vec![0]);
            assert_eq!(predicate.predicate_type, "https://slsa.dev/provenance/v1");
            assert_eq!(predicate.predicate, serde_json::json!({}));
        }
        v => panic!("{v:?}"),
    }
    let elsewhere = keyed(
        &pair,
        &statement(&other, "https://slsa.dev/provenance/v1"),
        INTOTO_PAYLOAD_TYPE,
    );
    assert!(matches!(
        offline(&elsewhere, &digest(), std::slice::from_ref(&key), None),
        BundleVerdict::OtherSubject(_)
    ));
    let padded = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": HEX}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"pad": "x".repeat(MAX_STATEMENT)}
    })
    .to_string();
    assert!(matches!(
        offline(
            &keyed(&pair, padded.as_bytes(), INTOTO_PAYLOAD_TYPE),
            &digest(),
            &[key],
            None
        ),
        BundleVerdict::Failed(BundleFailure::Statement(_))
    ));
}

#[test]
fn the_payload_type_is_signed_and_must_be_in_toto() {
    let (pair, key) = generated();
    let stmt = statement(HEX, SIGN_PREDICATE);
    let bundle = keyed(&pair, &stmt, "text/plain");
    assert!(matches!(
        offline(&bundle, &digest(), std::slice::from_ref(&key), None),
        BundleVerdict::Failed(BundleFailure::PayloadType(_))
    ));
    // Signed as one type, relabelled as in-toto: the PAE no longer matches.
    let relabelled = String::from_utf8(bundle)
        .unwrap()
        .replace("text/plain", INTOTO_PAYLOAD_TYPE);
    assert_eq!(
        offline(relabelled.as_bytes(), &digest(), &[key], None),
        BundleVerdict::Failed(BundleFailure::NoSigner)
    );
}

#[test]
fn message_signatures_old_versions_and_junk_are_refused() {
    let message = serde_json::json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "k"}},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": encode(&[0; 32])},
                             "signature": "AAAA"}
    });
    let old = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": [{
            "logIndex": "1", "logId": {"keyId": encode(&[1; 32])},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": "1", "inclusionPromise": {"signedEntryTimestamp": "AAAA"},
            "canonicalizedBody": "AAAA"}]},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": encode(&[0; 32])},
                             "signature": "AAAA"}
    });
    for (bytes, want) in [
        (message.to_string(), "message signature"),
        (old.to_string(), "not supported"),
        ("<html>".to_owned(), "malformed"),
    ] {
        match offline(bytes.as_bytes(), &digest(), &[], None) {
            BundleVerdict::Failed(e) => assert!(e.to_string().contains(want), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

// === The real public-good kubewarden cosign v3 bundle ===

const KUBEWARDEN_DIGEST: &str =
    "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";

/// The bundle (as JSON, to tamper with) and the public-good keyless trust for its signer,
/// or `None` (with a message) when the conformance data is absent.
fn kubewarden() -> Option<(serde_json::Value, Keyless)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
    let read = |p: &str| std::fs::read(dir.join(p)).ok();
    let (Some(bundle), Some(root)) = (
        read("cosign-v3-image-kubewarden/bundle_v03.json"),
        read("public-good/targets/trusted_root.json"),
    ) else {
        eprintln!(
            "skipped: the sigstore conformance data is not at {}",
            dir.display()
        );
        return None;
    };
    let root = TrustedRoot::from_json(&root).unwrap();
    let identity = crate::policy::Identity {
        issuer: crate::policy::Matcher::Exact(
            "https://token.actions.githubusercontent.com".to_owned(),
        ),
        subject: crate::policy::Matcher::Exact(
            "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0"
                .to_owned(),
        ),
    };
    let keyless = Keyless::with_root(root, &[identity]);
    Some((serde_json::from_slice(&bundle).unwrap(), keyless))
}

fn verify_json(bundle: &serde_json::Value, keyless: &Keyless) -> BundleVerdict {
    let digest = Digest::parse(KUBEWARDEN_DIGEST).unwrap();
    let checks = Checks {
        root: keyless.root(),
        require_tlog: true,
        now: OffsetDateTime::now_utc(),
    };
    verify(
        &serde_json::to_vec(bundle).unwrap(),
        &digest,
        &[],
        Some(keyless),
        &checks,
    )
}

fn inclusion_refused(verdict: &BundleVerdict) -> bool {
    matches!(verdict, BundleVerdict::Failed(BundleFailure::Sigstore(e))
        if e.to_string().contains("inclusion proof") || e.to_string().contains("checkpoint"))
}

#[test]
fn the_kubewarden_bundle_verifies_with_its_inclusion_proof_and_checkpoint() {
    let Some((bundle, keyless)) = kubewarden() else {
        return;
    };
    let verdict = verify_json(&bundle, &keyless);
    assert!(matches!(verdict, BundleVerdict::Vouches(_)), "{verdict:?}");
    // A v0.3 bundle must carry its inclusion proof: the SET alone does not count.
    let mut bare = bundle.clone();
    let entry = &mut bare["verificationMaterial"]["tlogEntries"][0];
    entry.as_object_mut().unwrap().remove("inclusionProof");
    let verdict = verify_json(&bare, &keyless);
    assert!(inclusion_refused(&verdict), "{verdict:?}");
}

#[test]
fn attack_kubewarden_bundle_with_a_tampered_inclusion_proof_is_refused() {
    let Some((bundle, keyless)) = kubewarden() else {
        return;
    };
    let tamper = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut b = bundle.clone();
        f(&mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]);
        verify_json(&b, &keyless)
    };
    let other_hash = serde_json::json!(encode(&[0x5a; 32]));
    let verdict = tamper(&|p| p["hashes"][3] = other_hash.clone());
    assert!(inclusion_refused(&verdict), "{verdict:?}");
    let verdict = tamper(&|p| p["rootHash"] = other_hash.clone());
    assert!(inclusion_refused(&verdict), "{verdict:?}");
    let verdict = tamper(&|p| {
        let size: u64 = p["treeSize"].as_str().unwrap().parse().unwrap();
        p["treeSize"] = serde_json::json!((size + 1).to_string());
    });
    assert!(inclusion_refused(&verdict), "{verdict:?}");
    let verdict = tamper(&|p| {
        let note = p["checkpoint"]["envelope"].as_str().unwrap();
        // The signature's last base64 character changed.
        let mut note = note.trim_end().to_owned();
        let last = note.pop().unwrap();
        note.push(if last == 'A' { 'B' } else { 'A' });
        note.push('\n');
        p["checkpoint"]["envelope"] = serde_json::json!(note);
    });
    assert!(inclusion_refused(&verdict), "{verdict:?}");
    let verdict = tamper(&|p| {
        p.as_object_mut().unwrap().remove("checkpoint");
    });
    assert!(inclusion_refused(&verdict), "{verdict:?}");
    let message = match tamper(&|p| p["hashes"][0] = other_hash.clone()) {
        BundleVerdict::Failed(e) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(message.contains("inclusion proof"), "{message}");
}

#[test]
fn a_key_signed_bundle_without_a_log_entry_or_timestamp_needs_require_tlog_false() {
    let (pair, key) = generated();
    let bundle = keyed(&pair, &statement(HEX, SIGN_PREDICATE), INTOTO_PAYLOAD_TYPE);
    let root = Arc::new(TrustedRoot::empty());
    let checks = Checks {
        root,
        require_tlog: true,
        now: OffsetDateTime::now_utc(),
    };
    assert_eq!(
        verify(
            &bundle,
            &digest(),
            std::slice::from_ref(&key),
            None,
            &checks
        ),
        BundleVerdict::Failed(BundleFailure::NoLogEntry)
    );
    assert!(matches!(
        offline(&bundle, &digest(), std::slice::from_ref(&key), None),
        BundleVerdict::Vouches(_)
    ));
}

#[test]
fn a_github_private_repository_attestation_verifies_under_the_same_rules() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
    let (Ok(bundle), Ok(root)) = (
        std::fs::read(dir.join("github/github-private-attestation.sigstore.json")),
        std::fs::read(dir.join("github/trusted_root_github.json")),
    ) else {
        eprintln!(
            "skipped: the sigstore conformance data is not at {}",
            dir.display()
        );
        return;
    };
    let root = TrustedRoot::from_json(&root).unwrap();
    // GitHub's attester certificate carries no OIDC issuer extension.
    let identity = crate::policy::Identity {
        issuer: crate::policy::Matcher::Regex("^$".to_owned()),
        subject: crate::policy::Matcher::Exact("https://dotcom.releases.github.com".to_owned()),
    };
    let keyless = Keyless::with_root(root, &[identity]);
    let digest =
        Digest::parse("sha256:76f1fe8593bf227cca2c089e3c16dc95014a8d3e89c5dd220530469ca043c428")
            .unwrap();
    let checks = |require_tlog| Checks {
        root: keyless.root(),
        require_tlog,
        now: OffsetDateTime::now_utc(),
    };
    // Never logged: it counts on its RFC 3161 timestamp under `require_tlog: false`, as an
    // attestation (its predicate is not cosign's signature).
    match verify(&bundle, &digest, &[], Some(&keyless), &checks(false)) {
        BundleVerdict::Attests(v, predicate) => {
            assert_eq!(v.signers, vec![0]);
            assert!(
                predicate.predicate_type.starts_with("https://"),
                "{predicate:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The default asks for a log entry, which it does not have.
    assert!(matches!(
        verify(&bundle, &digest, &[], Some(&keyless), &checks(true)),
        BundleVerdict::Failed(_)
    ));
}
