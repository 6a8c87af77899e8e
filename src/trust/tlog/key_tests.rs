//! Log keys of each supported scheme: generated, parsed from their SPKI, signing and
//! verifying, and their signed-note key IDs.

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::KeySize,
    signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
        ECDSA_P384_SHA384_ASN1_SIGNING, RSA_PKCS1_SHA256,
    },
};
use base64::Engine as _;

use super::*;

const MSG: &[u8] = b"example.org/log\n1\nAAAA\n";

fn ecdsa(alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> (EcdsaKeyPair, LogKey) {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
    let key = LogKey::from_spki_der(pair.public_key().as_der().unwrap().as_ref()).unwrap();
    (pair, key)
}

fn ed25519() -> (Ed25519KeyPair, LogKey) {
    let pair = Ed25519KeyPair::generate().unwrap();
    let key = LogKey::from_spki_der(pair.public_key().as_der().unwrap().as_ref()).unwrap();
    (pair, key)
}

#[test]
fn each_scheme_verifies_its_own_signatures_only() {
    let rng = SystemRandom::new();
    let (p256, k256) = ecdsa(&ECDSA_P256_SHA256_ASN1_SIGNING);
    let (p384, k384) = ecdsa(&ECDSA_P384_SHA384_ASN1_SIGNING);
    let (ed, ked) = ed25519();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let krsa = LogKey::from_spki_der(rsa.public_key().as_der().unwrap().as_ref()).unwrap();

    assert_eq!(k256.algorithm(), Algorithm::EcdsaP256Sha256);
    assert_eq!(k384.algorithm(), Algorithm::EcdsaP384Sha384);
    assert_eq!(ked.algorithm(), Algorithm::Ed25519);
    assert_eq!(krsa.algorithm(), Algorithm::RsaPkcs1Sha256);

    let s256 = p256.sign(&rng, MSG).unwrap().as_ref().to_vec();
    let s384 = p384.sign(&rng, MSG).unwrap().as_ref().to_vec();
    let sed = ed.sign(MSG).as_ref().to_vec();
    let mut srsa = vec![0; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, MSG, &mut srsa).unwrap();

    let keys = [&k256, &k384, &ked, &krsa];
    let sigs = [&s256, &s384, &sed, &srsa];
    for (i, key) in keys.iter().enumerate() {
        for (j, sig) in sigs.iter().enumerate() {
            assert_eq!(key.verifies(MSG, sig), i == j, "key {i}, signature {j}");
        }
        assert!(!key.verifies(b"another message", sigs[i]), "key {i}");
    }
}

#[test]
fn ed25519_note_key_ids_hash_the_key_name() {
    let (pair, key) = ed25519();
    let public = pair.public_key().as_ref();
    // C2SP signed-note.md: SHA-256(name || 0x0A || 0x01 || key)[:4].
    let mut input = b"example.org/log\n\x01".to_vec();
    input.extend_from_slice(public);
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    assert_eq!(key.note_log_id("example.org/log").as_slice(), hash.as_ref());
    assert_eq!(key.note_key_id("example.org/log"), hash.as_ref()[..4]);
    assert_ne!(
        key.note_key_id("example.org/log"),
        key.note_key_id("example.org/other")
    );
    // ECDSA key IDs ignore the name (Rekor v1 and rekor-tiles).
    let (_, ec) = ecdsa(&ECDSA_P256_SHA256_ASN1_SIGNING);
    assert_eq!(ec.note_key_id("a"), ec.key_hint());
    assert_eq!(ec.note_key_id("b"), ec.key_hint());
}

fn ed_note(pair: &Ed25519KeyPair, key: &LogKey, name: &str, text: &str) -> String {
    let mut sig = key.note_key_id(name).to_vec();
    sig.extend_from_slice(pair.sign(text.as_bytes()).as_ref());
    let enc = base64::engine::general_purpose::STANDARD.encode(sig);
    format!("{text}\n\u{2014} {name} {enc}\n")
}

#[test]
fn an_ed25519_checkpoint_verifies_and_its_origin_is_pinned() {
    let (pair, key) = ed25519();
    let root = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let text = format!("log.example.org\n5\n{root}\n");
    let note = ed_note(&pair, &key, "log.example.org", &text);
    let cp = verify_checkpoint(note.as_bytes(), &key).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("log.example.org", 5));
    assert_eq!(
        verify_checkpoint_for_origin(note.as_bytes(), &key, "log.example.org"),
        Ok(cp)
    );
    // Another expected origin: the log's line is not the one expected.
    assert_eq!(
        verify_checkpoint_for_origin(note.as_bytes(), &key, "other.example.org"),
        Err(NoteError::NoTrustedSignature)
    );
    // Signed under a name other than the checkpoint's origin: the line is found, the origin
    // line is not the log's.
    let text = format!("evil.example.org\n5\n{root}\n");
    let note = ed_note(&pair, &key, "log.example.org", &text);
    assert!(verify_checkpoint(note.as_bytes(), &key).is_ok());
    assert_eq!(
        verify_checkpoint_for_origin(note.as_bytes(), &key, "log.example.org"),
        Err(NoteError::OriginMismatch {
            expected: "log.example.org".into(),
            found: "evil.example.org".into()
        })
    );
    // The text changed after signing.
    let text = format!("log.example.org\n5\n{root}\n");
    let note = ed_note(&pair, &key, "log.example.org", &text).replacen('5', "6", 1);
    assert_eq!(
        verify_checkpoint(note.as_bytes(), &key),
        Err(NoteError::BadSignature)
    );
}

#[test]
fn unsupported_or_malformed_keys_are_refused() {
    assert_eq!(LogKey::from_spki_der(b"not DER"), Err(KeyError::BadSpki));
    // An X25519 key (RFC 8410, 1.3.101.110): a key, but not a signing one.
    let mut x25519 = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
    ];
    x25519.extend_from_slice(&[9u8; 32]);
    assert_eq!(LogKey::from_spki_der(&x25519), Err(KeyError::Unsupported));
    // An Ed25519 key of 31 bytes.
    let mut short = vec![
        0x30, 0x29, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x20, 0x00,
    ];
    short.extend_from_slice(&[9u8; 31]);
    assert_eq!(LogKey::from_spki_der(&short), Err(KeyError::BadSpki));
    // Trailing bytes after the SPKI.
    let (pair, _) = ed25519();
    let mut der = pair.public_key().as_der().unwrap().as_ref().to_vec();
    der.push(0);
    assert_eq!(LogKey::from_spki_der(&der), Err(KeyError::BadSpki));
}

#[test]
fn rsa_modulus_sizes_are_bounded() {
    // 2048 to 4096 bits are taken; the bit count ignores DER's leading zero byte.
    let rsa = RsaKeyPair::generate(KeySize::Rsa3072).unwrap();
    let key = LogKey::from_spki_der(rsa.public_key().as_der().unwrap().as_ref()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::RsaPkcs1Sha256);
    assert_eq!(key::bit_length(&[0x00, 0x80, 0x00]), 16);
    assert_eq!(key::bit_length(&[0x01]), 1);
    assert_eq!(key::bit_length(&[]), 0);
}
