//! Proves the real-peer harness in `support` works before any trustgate test relies on it.

mod support;

use support::{http_get, KeyKind, NotaryCli, NotaryServer, Registry, Signer};

#[test]
fn harness_smoke() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let gun = "example.com/team/app";
    notary.init(gun);

    let digest = support::sha256_hex(b"smoke");
    assert_eq!(
        digest,
        "04d588cb41b8022d1233924f0fe8280d9e2bb92cdc81658eb102ef9c42fc9452"
    );
    notary.addhash(gun, "v1", 5, &digest, &[]);
    let listed = notary.list(gun);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "v1");
    assert_eq!(listed[0].digest_hex, digest);
    assert_eq!(listed[0].size, 5);
    assert_eq!(listed[0].role, "targets");

    // The server holds the timestamp key and signs with ed25519.
    let timestamp = server.metadata_json(gun, "timestamp");
    assert_eq!(timestamp["signatures"][0]["method"], "eddsa");

    // Root and targets keys are listed with canonical IDs.
    assert_eq!(notary.root_key_ids().len(), 1);
    assert_eq!(notary.key_ids_for_role("targets").len(), 1);

    // A delegation with an RSA signer, imported from openssl's PKCS#8 output.
    let keys = tempfile::tempdir().unwrap();
    let bob = Signer::generate(keys.path(), "bob", KeyKind::Rsa2048);
    notary.delegation_add(gun, "targets/bob", &bob.cert_path);
    notary.key_import(&bob.key_path, "targets/bob");
    notary.addhash(gun, "v2", 7, &digest, &["targets/bob"]);
    let by_bob = notary.list_roles(gun, &["targets/bob"]);
    assert_eq!(by_bob.len(), 1, "{by_bob:?}");
    assert_eq!(by_bob[0].role, "targets/bob");
    let delegations = notary.delegation_list(gun);
    assert_eq!(delegations.len(), 1, "{delegations:?}");
    assert_eq!(delegations[0].key_ids.len(), 1);
    assert_eq!(delegations[0].threshold, 1);

    let registry = Registry::start();
    let (status, body) = http_get(&format!("{}/v2/", registry.url())).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, b"{}");
    assert!(registry.data_dir().is_dir());

    // Distribution's own pull-through cache in front of it.
    let mirror = Registry::start_proxy(&registry.url());
    let (status, _) = http_get(&format!("{}/v2/", mirror.url())).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn rfc3339_conversion() {
    assert_eq!(support::rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        support::rfc3339_from_unix(951_782_400),
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(
        support::rfc3339_from_unix(4_102_444_799),
        "2099-12-31T23:59:59Z"
    );
}
