use super::*;

const EMPTY_SHA256: &str =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const EMPTY_SHA512: &str =
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
                            47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

#[test]
fn accepts_sha256_and_sha512() {
    let cases = [
        (EMPTY_SHA256, DigestAlgorithm::Sha256),
        (EMPTY_SHA512, DigestAlgorithm::Sha512),
    ];
    for (case, algorithm) in cases {
        let digest = Digest::parse(case).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(digest.algorithm(), algorithm);
        assert_eq!(digest.as_str(), case);
        assert_eq!(digest.to_string(), case);
        assert_eq!(digest.hex().len(), algorithm.hex_len());
        assert!(case.ends_with(digest.hex()));
    }
}

#[test]
fn rejects_with_distinct_variants() {
    let hex64 = "a".repeat(64);
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "MissingSeparator"),
        (hex64.clone(), "MissingSeparator"),
        (format!(":{hex64}"), "InvalidAlgorithm"),
        (format!("SHA256:{hex64}"), "InvalidAlgorithm"),
        (format!("sha256+:{hex64}"), "InvalidAlgorithm"),
        (format!("sha 256:{hex64}"), "InvalidAlgorithm"),
        (
            format!("md5:{}", "a".repeat(32)),
            r#"UnsupportedAlgorithm { algorithm: "md5" }"#,
        ),
        (format!("sha384:{}", "a".repeat(96)), "UnsupportedAlgorithm"),
        (format!("blake3:{hex64}"), "UnsupportedAlgorithm"),
        (format!("multihash+base58:{hex64}"), "UnsupportedAlgorithm"),
        (
            "sha256:".into(),
            "InvalidLength { algorithm: Sha256, expected: 64, found: 0 }",
        ),
        (
            "sha256:abc".into(),
            "InvalidLength { algorithm: Sha256, expected: 64, found: 3 }",
        ),
        (
            format!("sha256:{hex64}0"),
            "InvalidLength { algorithm: Sha256, expected: 64, found: 65 }",
        ),
        (
            format!("sha512:{hex64}"),
            "InvalidLength { algorithm: Sha512, expected: 128, found: 64 }",
        ),
        (format!("sha256:{}", "A".repeat(64)), "InvalidHex"),
        (format!("sha256:{}", "g".repeat(64)), "InvalidHex"),
        (
            format!("sha256:{}:{}", "a".repeat(31), "a".repeat(32)),
            "InvalidHex",
        ),
        (format!("sha256:{}/..", "a".repeat(61)), "InvalidHex"),
    ];
    for (case, expected) in &cases {
        let err = Digest::parse(case).expect_err(case);
        assert!(
            format!("{err:?}").starts_with(expected),
            "{case:?}: unexpected {err:?}"
        );
    }
}

#[test]
fn computes_known_digests() {
    assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY_SHA256);
    assert_eq!(
        Digest::compute(DigestAlgorithm::Sha512, b"").as_str(),
        EMPTY_SHA512
    );
    let digest = Digest::sha256_of(b"hello");
    assert!(digest.matches(b"hello"));
    assert!(!digest.matches(b"hello!"));
}

#[test]
fn streaming_equals_one_shot() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
        let mut hasher = DigestHasher::new(algorithm);
        for chunk in data.chunks(333) {
            hasher.update(chunk);
        }
        assert_eq!(hasher.bytes_hashed(), data.len() as u64);
        let whole = Digest::compute(algorithm, &data);
        assert!(hasher.clone().matches(&whole));
        assert_eq!(hasher.finish(), whole);
    }
}

#[test]
fn verifier_reports_mismatch() {
    let expected = Digest::sha256_of(b"layer");

    let mut ok = DigestVerifier::new(expected.clone());
    ok.update(b"lay");
    ok.update(b"er");
    assert_eq!(ok.verify(), Ok(expected.clone()));

    let mut truncated = DigestVerifier::new(expected.clone());
    truncated.update(b"lay");
    let err = truncated.verify().unwrap_err();
    assert_eq!(err.expected, expected);
    assert_eq!(err.actual, Digest::sha256_of(b"lay"));

    // A sha512 expectation is checked with sha512, never with a weaker default.
    let sha512 = Digest::compute(DigestAlgorithm::Sha512, b"layer");
    let mut verifier = DigestVerifier::new(sha512.clone());
    verifier.update(b"layer");
    assert_eq!(verifier.verify(), Ok(sha512));

    let mut hasher = DigestHasher::new(DigestAlgorithm::Sha512);
    hasher.update(b"layer");
    assert!(
        !hasher.matches(&expected),
        "different algorithms never match"
    );
}

#[test]
fn serde_round_trip() {
    let digest: Digest = serde_json::from_str(&format!("\"{EMPTY_SHA256}\"")).unwrap();
    assert_eq!(
        serde_json::to_string(&digest).unwrap(),
        format!("\"{EMPTY_SHA256}\"")
    );
    assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
}
