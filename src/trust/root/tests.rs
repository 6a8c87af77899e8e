use std::path::{Path, PathBuf};

use super::*;

fn conformance() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: no conformance data at {}", dir.display());
        None
    }
}

#[test]
fn the_public_good_root_parses_into_typed_trust() {
    let Some(dir) = conformance() else { return };
    let bytes = std::fs::read(dir.join("public-good/targets/trusted_root.json")).unwrap();
    let root = TrustedRoot::from_json(&bytes).unwrap();
    assert_eq!(root.tlogs.len(), 2);
    let rekor = &root.tlogs[0];
    assert_eq!(rekor.origin, "rekor.sigstore.dev");
    assert!(rekor.key.is_ok());
    assert_eq!(rekor.valid_until, None);
    // The log ID is the SHA-256 of the key, as Rekor v1 derives it.
    assert_eq!(
        rekor.key.as_ref().unwrap().log_id().as_slice(),
        rekor.log_id
    );
    assert!(root.tlog(&rekor.log_id).is_some());
    assert_eq!(root.tlogs[1].key_details, "PKIX_ED25519");
    assert_eq!(root.certificate_authorities.len(), 2);
    assert!(root.certificate_authorities[0].valid_until.is_some());
    assert_eq!(root.ctlogs.len() + root.ctlogs_unsupported, 2);
    assert_eq!(root.timestamp_authorities.len(), 1);
    assert_eq!(root.timestamp_authorities[0].chain.len(), 2);
}

#[test]
fn a_tlog_without_a_validity_start_is_refused() {
    let Some(dir) = conformance() else { return };
    let bytes = std::fs::read(
        dir.join("bundle-verify/trust-root-tlog-missing-validity-start_fail/trusted_root.json"),
    )
    .unwrap();
    let err = TrustedRoot::from_json(&bytes).unwrap_err();
    assert!(matches!(err, RootError::MissingStart { .. }), "{err}");
}

const MINIMAL: &str =
    r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#;

#[test]
fn an_empty_root_parses_and_unknown_media_types_do_not() {
    let root = TrustedRoot::from_json(MINIMAL.as_bytes()).unwrap();
    assert!(root.tlogs.is_empty());
    let v2 = r#"{"media_type":"application/vnd.dev.sigstore.trustedroot.v0.2+json"}"#;
    TrustedRoot::from_json(v2.as_bytes()).unwrap();
    let err = TrustedRoot::from_json(br#"{"mediaType":"application/json"}"#).unwrap_err();
    assert!(matches!(err, RootError::MediaType(_)));
}

#[test]
fn hostile_roots_are_refused_without_panics() {
    let huge = vec![b' '; MAX_ROOT_SIZE + 1];
    assert!(matches!(
        TrustedRoot::from_json(&huge),
        Err(RootError::TooLarge(_))
    ));
    for garbage in [
        &b""[..],
        b"{",
        b"[]",
        b"null",
        b"\xff\xfe",
        b"{\"tlogs\":5}",
    ] {
        assert!(TrustedRoot::from_json(garbage).is_err());
    }
    let log = r#"{"baseUrl":"https://x","publicKey":{"rawBytes":"AAAA","validFor":{"start":"2020-01-01T00:00:00Z"}},"logId":{"keyId":"AAAA"}}"#;
    let many = format!(
        r#"{{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[{}]}}"#,
        vec![log; MAX_ENTRIES + 1].join(",")
    );
    assert!(matches!(
        TrustedRoot::from_json(many.as_bytes()),
        Err(RootError::TooMany(_))
    ));
    // A key that is not a SubjectPublicKeyInfo leaves the log unusable, not the root.
    let one = format!(
        r#"{{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[{log}]}}"#
    );
    let root = TrustedRoot::from_json(one.as_bytes()).unwrap();
    assert_eq!(root.tlogs[0].key, Err(KeyError::BadSpki));
    let no_key = one.replace(r#""publicKey":{"rawBytes":"AAAA","#, r#""publicKey":{"#);
    assert!(matches!(
        TrustedRoot::from_json(no_key.as_bytes()),
        Err(RootError::Invalid { .. })
    ));
    let dup = r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"tlogs":[]}"#;
    assert!(TrustedRoot::from_json(dup.as_bytes()).is_err());
}

#[test]
fn windows_are_closed_intervals() {
    let from = OffsetDateTime::from_unix_timestamp(100).unwrap();
    let until = OffsetDateTime::from_unix_timestamp(200).unwrap();
    assert!(in_window(from, from, Some(until)));
    assert!(in_window(until, from, Some(until)));
    assert!(!in_window(
        until + time::Duration::seconds(1),
        from,
        Some(until)
    ));
    assert!(!in_window(from - time::Duration::seconds(1), from, None));
    assert!(in_window(until, from, None));
}

#[test]
fn origins_drop_the_scheme() {
    assert_eq!(
        origin_of("https://log2025-1.rekor.sigstore.dev/"),
        "log2025-1.rekor.sigstore.dev"
    );
    assert_eq!(origin_of("rekor.example"), "rekor.example");
}
