//! The sigstore-conformance bundle verification suite run through the real binary
//! (`trustgate sigstore verify-bundle`), plus real bundles from cosign, GitHub and
//! sigstore-go verified through the library.
//!
//! A case named `*_fail` must be refused, every other must verify (the suite's own rule);
//! the reason of every refusal is printed, so a `_fail` case refused for the wrong reason
//! shows in the log.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use time::OffsetDateTime;
use trustgate::trust::{
    root::TrustedRoot,
    sigstore::{self, Artifact, Bundle, Policy, Requirements, SigstoreError},
};

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: the sigstore conformance data is not at {}",
            dir.display()
        );
        None
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[test]
fn bundle_verify_suite() {
    let Some(data) = data() else { return };
    let suite = data.join("bundle-verify");
    let public_good = data.join("public-good/targets/trusted_root.json");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&suite)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("bundle.sigstore.json").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", suite.display());

    let (mut ok, mut mismatches) = (0, vec![]);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect_pass = !name.ends_with("_fail");
        let artifact = if case.join("artifact").is_file() {
            case.join("artifact")
        } else {
            suite.join("a.txt")
        };
        let root = if case.join("trusted_root.json").is_file() {
            case.join("trusted_root.json")
        } else {
            public_good.clone()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
        cmd.args(["sigstore", "verify-bundle", "--bundle"])
            .arg(case.join("bundle.sigstore.json"));
        if case.join("key.pub").is_file() {
            cmd.arg("--key").arg(case.join("key.pub"));
        } else {
            let identity = read_trimmed(&case.join("identity")).unwrap_or(IDENTITY.to_owned());
            let issuer = read_trimmed(&case.join("issuer")).unwrap_or(ISSUER.to_owned());
            cmd.args(["--certificate-identity", &identity])
                .args(["--certificate-oidc-issuer", &issuer]);
        }
        cmd.arg("--trusted-root").arg(&root).arg(&artifact);
        let out = cmd.output().unwrap();
        let got_pass = out.status.success();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let line = format!(
            "{name}: expected {}, got {} ({stderr})",
            if expect_pass { "verified" } else { "refused" },
            if got_pass { "verified" } else { "refused" },
        );
        eprintln!("{line}");
        if got_pass == expect_pass {
            ok += 1;
        } else {
            mismatches.push(line);
        }
    }
    eprintln!("{ok} of {} cases as expected", cases.len());
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

fn root(path: &Path) -> TrustedRoot {
    TrustedRoot::from_json(&std::fs::read(path).unwrap()).unwrap()
}

fn bundle(path: &Path) -> Bundle {
    Bundle::from_json(&std::fs::read(path).unwrap()).unwrap()
}

fn digest(hex: &str) -> [u8; 32] {
    hex::decode(hex).unwrap().try_into().unwrap()
}

fn verified(result: Result<sigstore::Verified, SigstoreError>) -> sigstore::Verified {
    result.unwrap_or_else(|e| panic!("refused: {e}"))
}

#[test]
fn cosign_v3_image_bundle_verifies_for_its_manifest_digest() {
    let Some(data) = data() else { return };
    let root = root(&data.join("public-good/targets/trusted_root.json"));
    let b = bundle(&data.join("cosign-v3-image-kubewarden/bundle_v03.json"));
    let manifest = digest("c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172");
    let policy = Policy::Identity {
        identity: "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
        issuer: ISSUER,
    };
    let now = OffsetDateTime::now_utc();
    let result = sigstore::verify(
        &b,
        &root,
        Artifact::Sha256(manifest),
        policy,
        &Requirements::default(),
        now,
    );
    let v = verified(result);
    assert_eq!(v.tlogs, ["https://rekor.sigstore.dev"]);
    assert!(v.statement.is_some());
    assert_eq!(
        v.timestamp_authorities.len(),
        1,
        "its RFC 3161 timestamp counts too"
    );
    // Another digest is not signed by it; another identity did not sign it.
    let other = sigstore::verify(
        &b,
        &root,
        Artifact::Sha256([7; 32]),
        policy,
        &Requirements::default(),
        now,
    );
    assert!(matches!(other, Err(SigstoreError::Subject(_))), "{other:?}");
    let stranger = Policy::Identity {
        identity: "https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main",
        issuer: ISSUER,
    };
    let other = sigstore::verify(
        &b,
        &root,
        Artifact::Sha256(manifest),
        stranger,
        &Requirements::default(),
        now,
    );
    assert!(
        matches!(
            other,
            Err(SigstoreError::Identity { .. }) | Err(SigstoreError::Timestamp { .. })
        ),
        "{other:?}"
    );
}

#[test]
fn cosign_oci_attestation_verifies_under_its_root() {
    let Some(data) = data() else { return };
    let dir = data.join("cosign-oci-attestation");
    let root = root(&dir.join("trusted_root_pgi.json"));
    let b = bundle(&dir.join("oci-attestation.sigstore.json"));
    let subject = digest("732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4");
    let policy = Policy::Identity {
        identity: "cody@soyland.com",
        issuer: "https://github.com/login/oauth",
    };
    let result = sigstore::verify(
        &b,
        &root,
        Artifact::Sha256(subject),
        policy,
        &Requirements::default(),
        OffsetDateTime::now_utc(),
    );
    let statement = verified(result).statement.unwrap();
    assert_eq!(statement.payload_type, "application/vnd.in-toto+json");
}

#[test]
fn github_private_attestation_verifies_on_its_timestamp_alone() {
    let Some(data) = data() else { return };
    let dir = data.join("github");
    let root = root(&dir.join("trusted_root_github.json"));
    let b = bundle(&dir.join("github-private-attestation.sigstore.json"));
    assert!(
        b.entries.is_empty(),
        "GitHub's private attestations are not logged"
    );
    let subject = digest("76f1fe8593bf227cca2c089e3c16dc95014a8d3e89c5dd220530469ca043c428");
    // GitHub's instance: no transparency log, no CT log; one signed timestamp.
    let req = Requirements {
        tlog_entries: 0,
        observer_timestamps: 1,
        signed_timestamps: 1,
        scts: 0,
    };
    // GitHub's attester certificate is long-lived and carries no OIDC issuer extension:
    // the identity is its SAN alone.
    let policy = Policy::AnyCertificate;
    let result = sigstore::verify(
        &b,
        &root,
        Artifact::Sha256(subject),
        policy,
        &req,
        OffsetDateTime::now_utc(),
    );
    let v = verified(result);
    assert_eq!(
        v.signer,
        sigstore::Signer::Certificate {
            issuer: None,
            sans: vec!["https://dotcom.releases.github.com".to_owned()]
        }
    );
    // Under the public-good defaults (a log entry required) it is refused.
    let strict = sigstore::verify(
        &b,
        &root,
        Artifact::Sha256(subject),
        policy,
        &Requirements::default(),
        OffsetDateTime::now_utc(),
    );
    assert!(strict.is_err());
}

#[test]
fn sigstore_go_bundles() {
    let Some(data) = data() else { return };
    let dir = data.join("sigstore-go/testing-data");
    let public_good = root(&dir.join("trusted-roots/public-good.json"));
    // Every bundle parses; a DSSE envelope with two signatures (and a root in its chain)
    // is refused, not guessed at.
    for name in [
        "othername",
        "dsse",
        "dsse-2sigs",
        "sigstore.js@2.0.0-provenance",
        "public-key-validity",
    ] {
        let path = dir.join(format!("bundles/{name}.sigstore.json"));
        Bundle::from_json(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let two = bundle(&dir.join("bundles/dsse-2sigs.sigstore.json"));
    let policy = Policy::Identity {
        identity: IDENTITY,
        issuer: ISSUER,
    };
    let result = sigstore::verify(
        &two,
        &public_good,
        Artifact::Sha256([0; 32]),
        policy,
        &Requirements::default(),
        OffsetDateTime::now_utc(),
    );
    assert!(
        result.is_err(),
        "a two-signature envelope verified: {result:?}"
    );
    // A key-signed bundle is refused under a certificate identity rule.
    let b = bundle(&dir.join("bundles/public-key-validity.sigstore.json"));
    let root = root(&dir.join("trusted-roots/public-key-validity.json"));
    let keyless = sigstore::verify(
        &b,
        &root,
        Artifact::Sha256([0; 32]),
        policy,
        &Requirements::default(),
        OffsetDateTime::now_utc(),
    );
    assert!(
        matches!(keyless, Err(SigstoreError::MaterialMismatch { .. })),
        "{keyless:?}"
    );
}
