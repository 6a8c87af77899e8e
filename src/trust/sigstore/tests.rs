use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{bundle::Version, *};
use crate::trust::root::TrustedRoot;

fn suite() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: no conformance data at {}", dir.display());
        None
    }
}

fn json(case: &str) -> Option<serde_json::Value> {
    let path = suite()?
        .join("bundle-verify")
        .join(case)
        .join("bundle.sigstore.json");
    Some(serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
}

fn parse(v: &serde_json::Value) -> Result<Bundle, SigstoreError> {
    Bundle::from_json(serde_json::to_vec(v).unwrap().as_slice())
}

#[test]
fn media_types_map_to_versions_and_unknown_ones_fail() {
    use bundle::version_of;
    assert_eq!(
        version_of("application/vnd.dev.sigstore.bundle+json;version=0.1").unwrap(),
        Version::V01
    );
    assert_eq!(
        version_of("application/vnd.dev.sigstore.bundle+json;version=0.3").unwrap(),
        Version::V03
    );
    assert_eq!(
        version_of("application/vnd.dev.sigstore.bundle.v0.3+json").unwrap(),
        Version::V03
    );
    for bad in [
        "application/vnd.dev.sigstore.bundle.v0.4+json",
        "application/vnd.dev.sigstore.bundle+json;version=99.9",
        "application/json",
        "",
    ] {
        assert!(matches!(version_of(bad), Err(SigstoreError::MediaType(_))));
    }
}

#[test]
fn hostile_bundles_are_refused_without_panics() {
    let huge = vec![b' '; MAX_BUNDLE_SIZE + 1];
    assert!(matches!(
        Bundle::from_json(&huge),
        Err(SigstoreError::TooLarge(_))
    ));
    for garbage in [
        &b""[..],
        b"{",
        b"[]",
        b"null",
        b"\xff",
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
        br#"{"mediaType":5}"#,
    ] {
        assert!(Bundle::from_json(garbage).is_err());
    }
    let Some(good) = json("happy-path-v0.3") else {
        return;
    };
    parse(&good).unwrap();

    // A negative log index, given as a number or a string.
    for index in [serde_json::json!(-1), serde_json::json!("-5")] {
        let mut v = good.clone();
        v["verificationMaterial"]["tlogEntries"][0]["logIndex"] = index;
        assert!(matches!(parse(&v), Err(SigstoreError::Malformed(_))));
    }
    // An int64 that is not one.
    let mut v = good.clone();
    v["verificationMaterial"]["tlogEntries"][0]["logIndex"] = "12x".into();
    assert!(parse(&v).is_err());
    // The same entry twice.
    let mut v = good.clone();
    let entry = v["verificationMaterial"]["tlogEntries"][0].clone();
    v["verificationMaterial"]["tlogEntries"] = serde_json::json!([entry.clone(), entry.clone()]);
    assert!(matches!(parse(&v), Err(SigstoreError::Malformed(m)) if m.contains("twice")));
    // Too many entries.
    v["verificationMaterial"]["tlogEntries"] =
        serde_json::Value::Array(vec![entry; MAX_TLOG_ENTRIES + 1]);
    assert!(parse(&v).is_err());
    // A duplicated JSON key.
    let text = serde_json::to_string(&good).unwrap();
    let dup = text.replacen("{\"mediaType\"", "{\"mediaType\":\"x\",\"mediaType\"", 1);
    assert!(Bundle::from_json(dup.as_bytes()).is_err());
    // Both a message signature and an envelope; a v0.3 chain; no material.
    let mut v = good.clone();
    v["dsseEnvelope"] = serde_json::json!({"payload":"","payloadType":"x","signatures":[]});
    assert!(parse(&v).is_err());
    let mut v = good.clone();
    let cert = v["verificationMaterial"]["certificate"].clone();
    v["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("certificate");
    v["verificationMaterial"]["x509CertificateChain"] = serde_json::json!({"certificates":[cert]});
    assert!(matches!(parse(&v), Err(SigstoreError::Malformed(m)) if m.contains("v0.3")));
    // A v0.2+ entry without an inclusion proof.
    let mut v = good.clone();
    v["verificationMaterial"]["tlogEntries"][0]
        .as_object_mut()
        .unwrap()
        .remove("inclusionProof");
    assert!(parse(&v).is_err());
}

#[test]
fn snake_case_names_and_numeric_int64s_parse() {
    let Some(good) = json("happy-path-v0.1") else {
        return;
    };
    let text = serde_json::to_string(&good)
        .unwrap()
        .replace("\"verificationMaterial\"", "\"verification_material\"")
        .replace("\"tlogEntries\"", "\"tlog_entries\"")
        .replace("\"canonicalizedBody\"", "\"canonicalized_body\"")
        .replace(
            "\"integratedTime\":\"1689177396\"",
            "\"integratedTime\":1689177396",
        );
    let snake = Bundle::from_json(text.as_bytes()).unwrap();
    assert_eq!(snake, parse(&good).unwrap());
    assert_eq!(snake.entries[0].integrated_time, 1689177396);
}

/// With the SCT requirement off (embedded SCTs are checked by their own module), the happy
/// path verifies end to end, and every tampering is refused for its own reason.
#[test]
fn happy_path_verifies_without_the_sct_requirement_and_tampering_does_not() {
    let Some(dir) = suite() else { return };
    let root = TrustedRoot::from_json(
        &std::fs::read(dir.join("public-good/targets/trusted_root.json")).unwrap(),
    )
    .unwrap();
    let artifact = std::fs::read(dir.join("bundle-verify/a.txt")).unwrap();
    let req = Requirements {
        scts: 0,
        ..Requirements::default()
    };
    let policy = Policy::Identity {
        identity: "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
        issuer: "https://token.actions.githubusercontent.com",
    };
    let now = OffsetDateTime::now_utc();
    for case in ["happy-path-v0.1", "happy-path-v0.2", "happy-path-v0.3"] {
        let b = parse(&json(case).unwrap()).unwrap();
        let v = verify(&b, &root, Artifact::Bytes(&artifact), policy, &req, now)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(v.tlogs, ["https://rekor.sigstore.dev"]);
        assert_eq!(v.times.len(), 1);
        assert!(
            matches!(v.signer, Signer::Certificate { ref issuer, .. } if issuer.as_deref() == Some("https://token.actions.githubusercontent.com"))
        );
        // The artifact's digest alone verifies too (prehashed ECDSA).
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &artifact);
        let d: [u8; 32] = d.as_ref().try_into().unwrap();
        verify(&b, &root, Artifact::Sha256(d), policy, &req, now).unwrap();
        // Another artifact does not.
        let other = verify(&b, &root, Artifact::Bytes(b"other"), policy, &req, now);
        assert!(other.is_err());
        // Another identity or issuer does not.
        let wrong = Policy::Identity {
            identity:
                "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/",
            issuer: "https://token.actions.githubusercontent.com",
        };
        assert!(matches!(
            verify(&b, &root, Artifact::Bytes(&artifact), wrong, &req, now),
            Err(SigstoreError::Identity { .. })
        ));
        // Before the integrated time, it is not yet logged.
        let then = OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
        assert!(matches!(
            verify(&b, &root, Artifact::Bytes(&artifact), policy, &req, then),
            Err(SigstoreError::Tlog { .. })
        ));
        // A key rule refuses keyless material.
        assert!(matches!(
            verify(
                &b,
                &root,
                Artifact::Bytes(&artifact),
                Policy::Key { spki_der: b"x" },
                &req,
                now
            ),
            Err(SigstoreError::MaterialMismatch { .. })
        ));
    }
}
