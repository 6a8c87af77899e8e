//! The notation e2e CRL scenario (conformance README section 3.4, R01–R05) and
//! notation-core-go's freshestCRL vectors (section 3.3, C07–C10).

use std::sync::Arc;

use super::support::*;
use crate::trust::notation::revocation::{
    cache::file_name,
    crl::{distribution_point_urls, Bundle, Crl},
    Config, Purpose, Status,
};

const LEAF_URL: &str = "http://localhost:10086/leaf.crl";
const INTERMEDIATE_URL: &str = "http://localhost:10086/intermediate.crl";

fn operator(dir: &std::path::Path, files: &[&str]) -> Config {
    Config {
        crls: files.iter().map(|f| dir.join(f)).collect(),
        ..config(false)
    }
}

fn revoked_at(text: &str) -> Status {
    Status::Revoked(Some(at(text)))
}

#[tokio::test]
async fn r01_operator_crls_with_fetching_off() {
    let Some(dir) = crl_fixtures() else { return };
    let checker = checker(operator(&dir, &["leaf.crl", "intermediate.crl"]), None);
    let statuses = checker
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses, vec![Status::Ok, Status::Ok, Status::NonRevokable]);
}

#[tokio::test]
async fn r02_revoked_leaf_from_an_operator_crl() {
    let Some(dir) = crl_fixtures() else { return };
    let checker = checker(
        operator(&dir, &["leaf_revoked.crl", "intermediate.crl"]),
        None,
    );
    let statuses = checker
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(
        statuses,
        vec![
            revoked_at("2024-11-11T05:30:52Z"),
            Status::Ok,
            Status::NonRevokable
        ]
    );
}

#[tokio::test]
async fn r03_revoked_intermediate_from_an_operator_crl() {
    let Some(dir) = crl_fixtures() else { return };
    let checker = checker(
        operator(&dir, &["leaf.crl", "intermediate_revoked.crl"]),
        None,
    );
    let statuses = checker
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(
        statuses,
        vec![
            Status::Ok,
            revoked_at("2024-11-11T05:30:51Z"),
            Status::NonRevokable
        ]
    );
}

#[tokio::test]
async fn r05_an_expired_operator_crl_is_unknown_when_nothing_may_be_fetched() {
    let Some(dir) = crl_fixtures() else { return };
    let checker = checker(
        operator(&dir, &["leaf_expired.crl", "intermediate.crl"]),
        None,
    );
    let statuses = checker
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    let Status::Unknown(why) = &statuses[0] else {
        panic!("{statuses:?}");
    };
    assert!(why.contains("operator CRL"), "{why}");
    assert!(why.contains("not fetched: fetching is off"), "{why}");
    assert_eq!(statuses[1..], [Status::Ok, Status::NonRevokable]);
}

#[tokio::test]
async fn without_crls_and_fetching_off_every_status_is_unknown() {
    let Some(dir) = crl_fixtures() else { return };
    let checker = checker(config(false), None);
    let statuses = checker
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    for status in &statuses[..2] {
        let Status::Unknown(why) = status else {
            panic!("{statuses:?}");
        };
        assert!(why.contains("not fetched: fetching is off"), "{why}");
    }
    let Status::Unknown(why) = &statuses[1] else {
        unreachable!()
    };
    assert!(why.contains("OCSP not fetched"), "{why}");
    assert_eq!(statuses[2], Status::NonRevokable);
}

async fn served(files: (&str, &str)) -> Option<(std::path::PathBuf, Server)> {
    let dir = crl_fixtures()?;
    let server = Server::start().await;
    server.set(
        "/leaf.crl",
        Reply::Bytes(std::fs::read(dir.join(files.0)).unwrap()),
    );
    server.set(
        "/intermediate.crl",
        Reply::Bytes(std::fs::read(dir.join(files.1)).unwrap()),
    );
    Some((dir, server))
}

#[tokio::test]
async fn r01_fetched_crls_after_the_intermediates_ocsp_fails() {
    let Some((dir, server)) = served(("leaf.crl", "intermediate.crl")).await else {
        return;
    };
    let checker = checker(config(true), Some(&server));
    let statuses = checker
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses, vec![Status::Ok, Status::Ok, Status::NonRevokable]);
    // The intermediate's responder (localhost.test/ocsp) was asked and failed first.
    assert_eq!(server.hits("/ocsp"), 1);
    // Kept in memory: a second check fetches nothing.
    let again = checker
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(again, statuses);
    assert_eq!(server.hits("/leaf.crl"), 1);
    assert_eq!(server.hits("/intermediate.crl"), 1);
}

#[tokio::test]
async fn r02_r03_fetched_revocations() {
    let Some((dir, server)) = served(("leaf_revoked.crl", "intermediate.crl")).await else {
        return;
    };
    let statuses = checker(config(true), Some(&server))
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses[0], revoked_at("2024-11-11T05:30:52Z"));
    assert_eq!(statuses[1], Status::Ok);

    let Some((dir, server)) = served(("leaf.crl", "intermediate_revoked.crl")).await else {
        return;
    };
    let statuses = checker(config(true), Some(&server))
        .check(&e2e_chain(&dir), Purpose::Timestamping, None)
        .await;
    // The e2e leaf has no timestamping EKU: as a TSA chain it is refused whole.
    assert!(matches!(&statuses[0], Status::Unknown(w) if w.contains("invalid chain")));
    let statuses = checker(config(true), Some(&server))
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses[0], Status::Ok);
    assert_eq!(statuses[1], revoked_at("2024-11-11T05:30:51Z"));
}

#[tokio::test]
async fn r05_a_fetched_expired_crl_is_unknown() {
    let Some((dir, server)) = served(("leaf_expired.crl", "intermediate.crl")).await else {
        return;
    };
    let statuses = checker(config(true), Some(&server))
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    let Status::Unknown(why) = &statuses[0] else {
        panic!("{statuses:?}");
    };
    assert!(
        why.contains("failed to download CRL from http://localhost:10086/leaf.crl"),
        "{why}"
    );
    assert_eq!(statuses[1], Status::Ok);
}

fn cache_file(dir: &std::path::Path, url: &str, crl: &[u8]) {
    use base64::Engine as _;
    let body = serde_json::json!({
        "baseCRL": base64::engine::general_purpose::STANDARD.encode(crl)
    });
    std::fs::write(dir.join(file_name(url)), body.to_string()).unwrap();
}

#[tokio::test]
async fn r04_an_expired_cached_crl_is_fetched_again_and_replaced() {
    let Some((dir, server)) = served(("leaf.crl", "intermediate.crl")).await else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    cache_file(
        cache.path(),
        LEAF_URL,
        &std::fs::read(dir.join("leaf_expired.crl")).unwrap(),
    );
    cache_file(
        cache.path(),
        INTERMEDIATE_URL,
        &std::fs::read(dir.join("intermediate.crl")).unwrap(),
    );
    let config = Config {
        cache_dir: Some(cache.path().to_owned()),
        ..config(true)
    };
    let statuses = checker(config.clone(), Some(&server))
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses, vec![Status::Ok, Status::Ok, Status::NonRevokable]);
    assert_eq!(
        server.hits("/leaf.crl"),
        1,
        "the expired entry is fetched again"
    );
    assert_eq!(
        server.hits("/intermediate.crl"),
        0,
        "the current entry is reused"
    );

    // The fresh CRL replaced the expired one on disk: another process (fetching off) reads it.
    let offline = Config {
        fetch: false,
        ..config
    };
    let statuses = checker(offline, None)
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses[0], Status::Ok);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.path().join(file_name(LEAF_URL))).unwrap())
            .unwrap();
    assert!(stored.get("baseCRL").is_some() && stored.get("deltaCRL").is_none());
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(names.len(), 2);
}

#[tokio::test]
async fn corrupted_or_hostile_cache_files_are_not_trusted() {
    let Some((dir, server)) = served(("leaf.crl", "intermediate.crl")).await else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    // The leaf's entry is garbage; the intermediate's holds a current CRL by the wrong issuer
    // (the intermediate's own CRL, issued by RootCA, where the leaf's issuer is expected).
    std::fs::write(cache.path().join(file_name(LEAF_URL)), b"{not json").unwrap();
    cache_file(
        cache.path(),
        INTERMEDIATE_URL,
        &std::fs::read(dir.join("leaf.crl")).unwrap(),
    );
    let offline = Config {
        cache_dir: Some(cache.path().to_owned()),
        ..config(false)
    };
    let statuses = checker(offline.clone(), None)
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert!(matches!(&statuses[0], Status::Unknown(_)), "{statuses:?}");
    assert!(matches!(&statuses[1], Status::Unknown(_)), "{statuses:?}");

    let online = Config {
        fetch: true,
        ..offline
    };
    let statuses = checker(online, Some(&server))
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses, vec![Status::Ok, Status::Ok, Status::NonRevokable]);
    assert_eq!(server.hits("/leaf.crl"), 1);
    assert_eq!(server.hits("/intermediate.crl"), 1);
}

#[test]
fn cache_files_are_named_as_notation_go_names_them() {
    // hex(sha256(url)), notation-go verifier/crl.FileCache.fileName
    assert_eq!(
        file_name("http://localhost:10086/leaf.crl"),
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            b"http://localhost:10086/leaf.crl"
        ))
    );
    assert_eq!(file_name("x").len(), 64);
}

/// The chain's distribution points are fixed at localhost:10086: served there, when the
/// port is free, without any rewrite (the intermediate's responder, localhost.test, fails).
#[tokio::test]
async fn r01_live_on_the_certificates_own_port() {
    let Some(dir) = crl_fixtures() else { return };
    let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:10086").await else {
        eprintln!("skipping: 127.0.0.1:10086 is in use");
        return;
    };
    let server = Server::serve(listener);
    server.set(
        "/leaf.crl",
        Reply::Bytes(std::fs::read(dir.join("leaf.crl")).unwrap()),
    );
    server.set(
        "/intermediate.crl",
        Reply::Bytes(std::fs::read(dir.join("intermediate.crl")).unwrap()),
    );
    let config = Config {
        timeout: std::time::Duration::from_secs(3),
        ..config(true)
    };
    let statuses = checker(config, None)
        .check(&e2e_chain(&dir), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses, vec![Status::Ok, Status::Ok, Status::NonRevokable]);
}

// === C07–C10: freshestCRL and delta CRLs (notation-core-go revocation/crl/testdata) ===

fn core_crl_dir() -> Option<std::path::PathBuf> {
    Some(conformance()?.join("notation-core-go/revocation/crl/testdata"))
}

fn freshest_of(path: &std::path::Path) -> Vec<u8> {
    use x509_parser::prelude::*;
    let pem = std::fs::read(path).unwrap();
    let der = crate::trust::x509::pem_certificates(&pem).remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "2.5.29.46")
        .expect("freshestCRL")
        .value
        .to_vec()
}

#[test]
fn c07_c09_freshest_crl_urls_parse_as_go_parses_them() {
    let Some(dir) = core_crl_dir() else { return };
    let urls =
        distribution_point_urls(&freshest_of(&dir.join("certificateWithDeltaCRL.cer"))).unwrap();
    assert_eq!(urls.len(), 1);
    assert!(urls[0].starts_with("http://localhost:80"), "{urls:?}");
    let two = distribution_point_urls(&freshest_of(&dir.join("certificateWith2DeltaCRL.cer")));
    assert_eq!(two.unwrap().len(), 2);
    for none in [
        "certificateWithZeroDeltaCRLURL.cer",
        "certificateWithNonURIDeltaCRL.cer",
        "certificateWithIncompleteFreshestCRL2.cer",
    ] {
        let urls = distribution_point_urls(&freshest_of(&dir.join(none)));
        assert_eq!(urls, Ok(Vec::new()), "{none}");
    }
    assert_eq!(
        distribution_point_urls(&freshest_of(
            &dir.join("certificateWithIncompleteFreshestCRL.cer")
        )),
        Err("x509: invalid CRL distribution point".to_owned())
    );
    assert!(distribution_point_urls(&[]).is_err());
}

#[test]
fn c07_delta_crl_is_read_as_a_delta() {
    let Some(dir) = core_crl_dir() else { return };
    let delta = Crl::parse(std::fs::read(dir.join("delta.crl")).unwrap()).unwrap();
    assert!(delta.is_delta());
    let base =
        Crl::parse(std::fs::read(dir.join("crlWithMultipleFreshestCRLs.crl")).unwrap()).unwrap();
    assert!(!base.is_delta());
    assert_eq!(
        base.freshest.as_ref().map(|f| f.as_ref().map(Vec::len)),
        Some(Ok(2))
    );
    // A delta CRL served where a base CRL is expected is refused.
    let bundle = Bundle {
        base: Arc::new(delta),
        delta: None,
    };
    let some_cert = crate::trust::notation::revocation::chain::Cert::parse(
        &crate::trust::x509::pem_certificates(
            &std::fs::read(dir.join("certificateWithDeltaCRL.cer")).unwrap(),
        )[0],
        1,
    )
    .unwrap();
    let err = bundle
        .validate(&some_cert, time::OffsetDateTime::now_utc())
        .unwrap_err();
    assert!(err.contains("it is a delta CRL"), "{err}");
}

#[tokio::test]
async fn c10_a_malformed_delta_crl_fails_the_fetch() {
    let Some(dir) = core_crl_dir() else { return };
    let server = Server::start().await;
    server.set(
        "/base.crl",
        Reply::Bytes(std::fs::read(dir.join("crlWithMultipleFreshestCRLs.crl")).unwrap()),
    );
    // Both freshestCRL URLs (http://localhost:80/ejbca/...) answer with garbage.
    server.set("/ejbca", Reply::Bytes(b"invalid crl".to_vec()));
    let checker = checker(config(true), Some(&server));
    let err = checker
        .fetch_bundle("http://localhost:80/base.crl")
        .await
        .unwrap_err();
    assert!(
        err.contains("failed to retrieve CRL: x509: malformed crl"),
        "{err}"
    );
    assert_eq!(server.hits("/ejbca"), 2, "each delta URL is tried in order");
}
