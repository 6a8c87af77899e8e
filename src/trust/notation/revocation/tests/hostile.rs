//! Peers that stall, send without end, redirect in circles, or are named by URLs the spec
//! does not allow; and concurrent checks sharing one fetch.

use std::time::{Duration, Instant};

use super::support::*;
use crate::trust::notation::revocation::{Config, Purpose, Status};

fn pki(crl: &str) -> (Ca, Ca) {
    let root = Ca::root("root");
    let leaf = root.issue(
        "leaf",
        &Spec {
            serial: Some(7),
            crl: vec![crl.to_owned()],
            ..Spec::default()
        },
    );
    (root, leaf)
}

async fn leaf_status(server: &Server, root: &Ca, leaf: &Ca, timeout: Duration) -> Status {
    let config = Config {
        timeout,
        ..config(true)
    };
    checker(config, Some(server))
        .check(
            &[leaf.der.clone(), root.der.clone()],
            Purpose::CodeSigning,
            None,
        )
        .await
        .remove(0)
}

fn unknown_with(status: &Status, text: &str) -> bool {
    matches!(status, Status::Unknown(why) if why.contains(text))
}

#[tokio::test]
async fn a_stalling_peer_is_unknown_within_the_timeout() {
    let (root, leaf) = pki("http://crl.test/leaf.crl");
    let server = Server::start().await;
    server.set("/leaf.crl", Reply::Stall);
    let started = Instant::now();
    let status = leaf_status(&server, &root, &leaf, Duration::from_millis(500)).await;
    assert!(unknown_with(&status, "timeout"), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_bound() {
    let (root, leaf) = pki("http://crl.test/leaf.crl");
    let server = Server::start().await;
    server.set("/leaf.crl", Reply::Endless);
    let status = leaf_status(&server, &root, &leaf, Duration::from_secs(20)).await;
    assert!(unknown_with(&status, "exceeds the limit"), "{status:?}");
}

#[tokio::test]
async fn redirects_are_bounded() {
    let (root, leaf) = pki("http://crl.test/leaf.crl");
    let server = Server::start().await;
    server.set("/leaf.crl", Reply::Redirect(server.url("/leaf.crl")));
    let status = leaf_status(&server, &root, &leaf, Duration::from_secs(2)).await;
    assert!(unknown_with(&status, "redirects"), "{status:?}");
    assert_eq!(
        server.hits("/leaf.crl"),
        4,
        "the request and three redirects"
    );
    // One redirect to the CRL is followed.
    server.set(
        "/moved.crl",
        Reply::Bytes(make_crl(&root, &root, &CrlSpec::default())),
    );
    server.set("/leaf.crl", Reply::Redirect(server.url("/moved.crl")));
    assert_eq!(
        leaf_status(&server, &root, &leaf, Duration::from_secs(2)).await,
        Status::Ok
    );
}

#[tokio::test]
async fn only_http_urls_are_fetched() {
    for url in [
        "https://crl.test/leaf.crl",
        "ldap://crl.test/cn=x",
        "file:///etc/passwd",
    ] {
        let (root, leaf) = pki(url);
        let server = Server::start().await;
        let status = leaf_status(&server, &root, &leaf, Duration::from_secs(2)).await;
        assert!(
            unknown_with(&status, "unsupported scheme"),
            "{url}: {status:?}"
        );
        assert_eq!(server.hits("/leaf.crl"), 0);
    }
}

#[tokio::test]
async fn concurrent_checks_fetch_a_crl_once() {
    let (root, leaf) = pki("http://crl.test/leaf.crl");
    let server = Server::start().await;
    server.set(
        "/leaf.crl",
        Reply::Slow(
            Duration::from_millis(300),
            make_crl(&root, &root, &CrlSpec::default()),
        ),
    );
    let checker = checker(config(true), Some(&server));
    let chain = vec![leaf.der.clone(), root.der.clone()];
    let checks = (0..8).map(|_| checker.check(&chain, Purpose::CodeSigning, None));
    for statuses in futures_util::future::join_all(checks).await {
        assert_eq!(statuses, vec![Status::Ok, Status::NonRevokable]);
    }
    assert_eq!(server.hits("/leaf.crl"), 1);
}

#[tokio::test]
async fn a_crl_that_does_not_validate_is_not_kept() {
    let (root, leaf) = pki("http://crl.test/leaf.crl");
    let stranger = Ca::root("stranger");
    let server = Server::start().await;
    server.set(
        "/leaf.crl",
        Reply::Bytes(make_crl(&root, &stranger, &CrlSpec::default())),
    );
    let cache = tempfile::tempdir().unwrap();
    let config = Config {
        cache_dir: Some(cache.path().to_owned()),
        ..config(true)
    };
    let checker = checker(config, Some(&server));
    let chain = vec![leaf.der.clone(), root.der.clone()];
    let first = checker.check(&chain, Purpose::CodeSigning, None).await;
    assert!(unknown_with(&first[0], "invalid signature"), "{first:?}");
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    // The peer fixes its CRL: the next check fetches it again.
    server.set(
        "/leaf.crl",
        Reply::Bytes(make_crl(&root, &root, &CrlSpec::default())),
    );
    let second = checker.check(&chain, Purpose::CodeSigning, None).await;
    assert_eq!(second[0], Status::Ok);
    assert_eq!(server.hits("/leaf.crl"), 2);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}

/// A chain no trust store anchors names the URLs its signer chose: the checker for it
/// fetches none of them (its status is unknown, saying why), while a certificate naming no
/// URL at all is still non-revokable, as notation-go finds it.
#[tokio::test]
async fn an_unanchored_chain_fetches_nothing_its_signer_named() {
    let (root, leaf) = pki("http://crl.test/leaf.crl");
    let server = Server::start().await;
    server.set("/leaf.crl", Reply::Status(500));
    let unanchored = checker(config(true), Some(&server)).unanchored();
    let statuses = unanchored
        .check(
            &[leaf.der.clone(), root.der.clone()],
            Purpose::CodeSigning,
            None,
        )
        .await;
    assert!(
        unknown_with(&statuses[0], "no trust store anchors the chain"),
        "{statuses:?}"
    );
    assert_eq!(server.hits("/leaf.crl"), 0);
    let plain = root.issue("plain", &Spec::default());
    let statuses = unanchored
        .check(
            &[plain.der.clone(), root.der.clone()],
            Purpose::CodeSigning,
            None,
        )
        .await;
    assert_eq!(statuses, [Status::NonRevokable, Status::NonRevokable]);
}
