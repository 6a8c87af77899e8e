use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING},
};

use super::*;

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
    match verify(&bundle, &digest(), &[other.clone(), key], None) {
        BundleVerdict::Vouches(v) => assert_eq!(v.signers, vec![1]),
        v => panic!("{v:?}"),
    }
    assert_eq!(
        verify(&bundle, &digest(), &[other], None),
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
    assert_eq!(
        verify(&bundle, &digest(), std::slice::from_ref(&key), None),
        BundleVerdict::OtherSubject(format!("sha256:{other}"))
    );
    let slsa = keyed(
        &pair,
        &statement(HEX, "https://slsa.dev/provenance/v1"),
        INTOTO_PAYLOAD_TYPE,
    );
    assert!(matches!(
        verify(&slsa, &digest(), &[key], None),
        BundleVerdict::Failed(BundleFailure::Statement(_))
    ));
}

#[test]
fn the_payload_type_is_signed_and_must_be_in_toto() {
    let (pair, key) = generated();
    let stmt = statement(HEX, SIGN_PREDICATE);
    let bundle = keyed(&pair, &stmt, "text/plain");
    assert!(matches!(
        verify(&bundle, &digest(), std::slice::from_ref(&key), None),
        BundleVerdict::Failed(BundleFailure::PayloadType(_))
    ));
    // Signed as one type, relabelled as in-toto: the PAE no longer matches.
    let relabelled = String::from_utf8(bundle)
        .unwrap()
        .replace("text/plain", INTOTO_PAYLOAD_TYPE);
    assert_eq!(
        verify(relabelled.as_bytes(), &digest(), &[key], None),
        BundleVerdict::Failed(BundleFailure::NoSigner)
    );
}

#[test]
fn message_signatures_old_versions_and_junk_are_refused() {
    let message = serde_json::json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "k"}},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": ""},
                             "signature": ""}
    });
    let old = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": {}
    });
    for (bytes, want) in [
        (message.to_string(), "message signature"),
        (old.to_string(), "not supported"),
        ("<html>".to_owned(), "does not parse"),
    ] {
        match verify(bytes.as_bytes(), &digest(), &[], None) {
            BundleVerdict::Failed(e) => assert!(e.to_string().contains(want), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn int64_fields_read_as_protojson_strings_or_numbers() {
    for text in [r#""42""#, "42"] {
        let entry: RawTlogEntry = serde_json::from_str(&format!(
            r#"{{"logIndex":{text},"logId":{{"keyId":""}},"kindVersion":{{"kind":"dsse","version":"0.0.1"}},"integratedTime":{text}}}"#
        ))
        .unwrap();
        assert_eq!((entry.log_index, entry.integrated_time), (42, 42));
    }
}
