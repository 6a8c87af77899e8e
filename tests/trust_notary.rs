//! End to end: `trustgate trust inspect` against trust data published to a real `notary-server`
//! by the real `notary` CLI (what `docker trust sign` runs underneath).
//!
//! `notary list` is the reference answer. It walks `targets` before its delegations, while DCT
//! (and so `signed_tags`) prefers `targets/releases`; the expectations below are built from
//! per-role listings so that difference cannot hide a bug.
//!
//! Key types covered, beyond the ECDSA root certificate and ECDSA targets/snapshot keys that
//! every repository has:
//! - ed25519 (`eddsa`): notary-server's own timestamp key, in every test; asserted in
//!   `plain_targets_match_notary_list`.
//! - `ecdsa-x509` delegation key: `releases_and_named_signer_alice`.
//! - `rsa-x509` delegation key with `rsapss` signatures: `rsa_signer_in_releases`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::{KeyKind, ListedTarget, NotaryCli, NotaryServer, Signer};

const RELEASES: &str = "targets/releases";

/// A signed tag as trustgate reports it: digest with its `sha256:` prefix, size, role.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    digest: String,
    size: u64,
    role: String,
}

impl From<&ListedTarget> for Tag {
    fn from(t: &ListedTarget) -> Tag {
        Tag {
            digest: format!("sha256:{}", t.digest_hex),
            size: t.size,
            role: t.role.clone(),
        }
    }
}

// === running trustgate ===

fn inspect(server: &NotaryServer, gun: &str, extra: &[&str]) -> Output {
    let url = server.url();
    let mut args = vec!["trust", "inspect", gun, "--server", &url];
    args.extend_from_slice(extra);
    support::trustgate(&args)
}

/// Runs `inspect --json`, asserts it verified, and returns the parsed report.
fn inspect_json(server: &NotaryServer, gun: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let output = inspect(server, gun, &args);
    parse_success(&output, &format!("inspect {gun} {extra:?}"))
}

fn parse_success(output: &Output, what: &str) -> Value {
    assert!(
        output.status.success(),
        "{what}: expected success, got {}\nstderr:\n{}\nstdout:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: --json output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    json
}

/// Asserts the failure contract: exit code 1 and exactly one stderr line, `error: ...`,
/// containing every needle (case-insensitively). Returns that line.
fn assert_refused(output: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit code 1, got {}\nstderr:\n{stderr}\nstdout:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one stderr line, got {}:\n{stderr}",
        lines.len()
    );
    let line = lines[0];
    assert!(line.starts_with("error: "), "stderr line: {line:?}");
    for needle in needles {
        assert!(
            line.to_lowercase().contains(&needle.to_lowercase()),
            "stderr should mention {needle:?}: {line:?}"
        );
    }
    line.to_string()
}

// === reading the report ===

fn signed_tags(report: &Value) -> BTreeMap<String, Tag> {
    let tags = report["signed_tags"]
        .as_array()
        .unwrap_or_else(|| panic!("signed_tags is not an array in {report:#}"));
    let mut out = BTreeMap::new();
    for t in tags {
        let name = t["tag"].as_str().unwrap_or_else(|| panic!("tag in {t}"));
        let tag = Tag {
            digest: t["digest"].as_str().unwrap_or_default().to_string(),
            size: t["size"].as_u64().unwrap_or_else(|| panic!("size in {t}")),
            role: t["role"].as_str().unwrap_or_default().to_string(),
        };
        assert!(
            out.insert(name.to_string(), tag).is_none(),
            "tag {name} listed twice in signed_tags: {report:#}"
        );
    }
    out
}

/// `roles.<role>` as tag -> (digest, size).
fn role_targets(report: &Value, role: &str) -> BTreeMap<String, (String, u64)> {
    let targets = report["roles"][role]
        .as_object()
        .unwrap_or_else(|| panic!("roles.{role:?} missing in {report:#}"));
    targets
        .iter()
        .map(|(name, t)| {
            let digest = t["digest"].as_str().unwrap_or_default().to_string();
            let size = t["size"].as_u64().unwrap_or_else(|| panic!("size in {t}"));
            (name.clone(), (digest, size))
        })
        .collect()
}

fn role_names(report: &Value) -> BTreeSet<String> {
    report["roles"]
        .as_object()
        .unwrap_or_else(|| panic!("roles is not an object in {report:#}"))
        .keys()
        .cloned()
        .collect()
}

/// `signers` as name -> key IDs.
fn signers(report: &Value) -> BTreeMap<String, BTreeSet<String>> {
    report["signers"]
        .as_array()
        .unwrap_or_else(|| panic!("signers is not an array in {report:#}"))
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap_or_default().to_string();
            (name, strings(&s["keys"]))
        })
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array of strings, got {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

// === the reference answer, from the notary CLI ===

/// Targets signed directly in `role` (not in its delegations), from `notary list`.
fn expected_role(notary: &NotaryCli, gun: &str, role: &str) -> BTreeMap<String, (String, u64)> {
    // `notary list --roles R` also walks R's delegations and labels each row with the role it
    // came from, so keeping the rows labelled R leaves R's own targets. For `targets` every
    // own target wins over delegations, so none is shadowed.
    notary
        .list_roles(gun, &[role])
        .iter()
        .filter(|t| t.role == role)
        .map(|t| (t.name.clone(), (format!("sha256:{}", t.digest_hex), t.size)))
        .collect()
}

/// DCT's answer: each tag from `targets/releases` when signed there, else from `targets`.
fn expected_signed_tags(notary: &NotaryCli, gun: &str) -> BTreeMap<String, Tag> {
    let has_releases = notary
        .delegation_list(gun)
        .iter()
        .any(|d| d.role == RELEASES);
    let mut tags = BTreeMap::new();
    if has_releases {
        for t in notary.list_roles(gun, &[RELEASES]) {
            tags.insert(t.name.clone(), Tag::from(&t));
        }
    }
    for t in notary.list(gun).iter().filter(|t| t.role == "targets") {
        tags.entry(t.name.clone()).or_insert_with(|| Tag::from(t));
    }
    tags
}

/// Asserts the report's `signed_tags` and every listed role's targets against `notary list`.
fn assert_matches_notary(report: &Value, notary: &NotaryCli, gun: &str, roles: &[&str]) {
    assert_eq!(report["gun"], gun, "gun in {report:#}");
    assert_eq!(
        signed_tags(report),
        expected_signed_tags(notary, gun),
        "signed_tags vs notary list:\n{}\nreport: {report:#}",
        notary.run(&["list", gun])
    );
    let expected_roles: BTreeSet<String> = roles.iter().map(|r| r.to_string()).collect();
    assert_eq!(role_names(report), expected_roles, "roles in {report:#}");
    for role in roles {
        assert_eq!(
            role_targets(report, role),
            expected_role(notary, gun, role),
            "roles.{role} vs `notary list --roles {role}`:\n{}",
            notary.run(&["list", gun, "--roles", role])
        );
    }
}

/// Every acceptable spelling of the current root key IDs: canonical IDs (`notary key list`)
/// and certificate IDs (root.json).
fn root_id_forms(notary: &NotaryCli, server: &NotaryServer, gun: &str) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = notary.root_key_ids().into_iter().collect();
    ids.extend(server.root_cert_key_ids(gun));
    ids
}

/// A fake image: its sha256 and size, so tags look like real pushes.
fn image(seed: &str) -> (String, u64) {
    let body = format!("{{\"schemaVersion\":2,\"seed\":\"{seed}\"}}");
    (support::sha256_hex(body.as_bytes()), body.len() as u64)
}

fn sign(notary: &NotaryCli, gun: &str, tag: &str, seed: &str, roles: &[&str]) {
    let (digest, size) = image(seed);
    notary.addhash(gun, tag, size, &digest, roles);
}

fn state_arg(dir: &Path) -> &str {
    dir.to_str().expect("UTF-8 tempdir")
}

// === tests ===

#[test]
fn plain_targets_match_notary_list() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let gun = "127.0.0.1:5000/library/demo";
    notary.init(gun);
    sign(&notary, gun, "v1", "one", &[]);
    sign(&notary, gun, "v2", "two", &[]);

    // The peer really exercises ed25519: notary-server signs the timestamp itself.
    let timestamp = server.metadata_json(gun, "timestamp");
    assert_eq!(timestamp["signatures"][0]["method"], "eddsa");
    let ts_key = &timestamp["signatures"][0]["keyid"];
    let root = server.metadata_json(gun, "root");
    assert_eq!(
        root["signed"]["keys"][ts_key.as_str().unwrap()]["keytype"],
        "ed25519"
    );

    let report = inspect_json(&server, gun, &[]);
    assert_matches_notary(&report, &notary, gun, &["targets"]);
    assert_eq!(signed_tags(&report).len(), 2);
    assert!(signers(&report).is_empty(), "no signers: {report:#}");

    // Repository key = the targets key (plain ecdsa, one ID form); root key in either form.
    let targets_keys: BTreeSet<String> = notary.key_ids_for_role("targets").into_iter().collect();
    assert_eq!(strings(&report["repository_keys"]), targets_keys);
    let root_keys = strings(&report["root_keys"]);
    assert_eq!(root_keys.len(), 1, "root_keys in {report:#}");
    assert!(
        root_keys.is_subset(&root_id_forms(&notary, &server, gun)),
        "root_keys {root_keys:?} vs notary key list {:?} / root.json {:?}",
        notary.root_key_ids(),
        server.root_cert_key_ids(gun)
    );
}

#[test]
fn releases_and_named_signer_alice() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let keys = tempfile::tempdir().unwrap();
    let gun = "example.com/team/app";
    notary.init(gun);

    // What `docker trust signer add alice` does: one key in targets/releases and targets/alice.
    let alice = Signer::generate(keys.path(), "alice", KeyKind::P256);
    notary.delegation_add(gun, RELEASES, &alice.cert_path);
    notary.delegation_add(gun, "targets/alice", &alice.cert_path);
    notary.key_import(&alice.key_path, RELEASES);
    notary.key_import(&alice.key_path, "targets/alice");

    // base: only in targets. v1: signed by alice. latest: in targets and, with another digest,
    // in releases, where DCT must prefer releases (notary list shows the targets one).
    sign(&notary, gun, "base", "base", &[]);
    sign(&notary, gun, "v1", "v1", &[RELEASES, "targets/alice"]);
    sign(&notary, gun, "latest", "old", &[]);
    sign(&notary, gun, "latest", "new", &[RELEASES, "targets/alice"]);

    let targets = server.metadata_json(gun, "targets");
    for key in targets["signed"]["delegations"]["keys"]
        .as_object()
        .unwrap()
        .values()
    {
        assert_eq!(key["keytype"], "ecdsa-x509");
    }

    let report = inspect_json(&server, gun, &[]);
    assert_matches_notary(
        &report,
        &notary,
        gun,
        &["targets", RELEASES, "targets/alice"],
    );
    let tags = signed_tags(&report);
    let (new_digest, _) = image("new");
    assert_eq!(tags["v1"].role, RELEASES);
    assert_eq!(tags["latest"].role, RELEASES);
    assert_eq!(tags["latest"].digest, format!("sha256:{new_digest}"));
    assert_eq!(tags["base"].role, "targets");

    // Signers are named delegations, with the canonical ID `notary delegation list` prints.
    let alice_ids: BTreeSet<String> = notary
        .delegation_list(gun)
        .into_iter()
        .find(|d| d.role == "targets/alice")
        .expect("targets/alice delegation")
        .key_ids
        .into_iter()
        .collect();
    assert_eq!(
        signers(&report),
        BTreeMap::from([("alice".to_string(), alice_ids)]),
        "signers in {report:#}"
    );
}

#[test]
fn rsa_signer_in_releases() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let keys = tempfile::tempdir().unwrap();
    let gun = "example.com/team/rsa";
    notary.init(gun);

    let bob = Signer::generate(keys.path(), "bob", KeyKind::Rsa2048);
    notary.delegation_add(gun, RELEASES, &bob.cert_path);
    notary.delegation_add(gun, "targets/bob", &bob.cert_path);
    notary.key_import(&bob.key_path, "targets/bob");
    sign(&notary, gun, "v1", "v1", &[RELEASES, "targets/bob"]);
    // Signed by bob alone: a role's target, but not a DCT-signed tag.
    sign(&notary, gun, "bob-only", "bob-only", &["targets/bob"]);

    // The peer data really is RSA: rsa-x509 key, RSASSA-PSS signatures.
    let targets = server.metadata_json(gun, "targets");
    for key in targets["signed"]["delegations"]["keys"]
        .as_object()
        .unwrap()
        .values()
    {
        assert_eq!(key["keytype"], "rsa-x509");
    }
    for role in [RELEASES, "targets/bob"] {
        let signed = server.metadata_json(gun, role);
        assert_eq!(signed["signatures"][0]["method"], "rsapss", "{role}");
    }

    let report = inspect_json(&server, gun, &[]);
    assert_matches_notary(&report, &notary, gun, &["targets", RELEASES, "targets/bob"]);
    let tags = signed_tags(&report);
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["v1"], "{report:#}");
    assert_eq!(tags["v1"].role, RELEASES);
    assert!(role_targets(&report, "targets/bob").contains_key("bob-only"));
    let bob_ids: BTreeSet<String> = notary
        .delegation_list(gun)
        .into_iter()
        .find(|d| d.role == "targets/bob")
        .expect("targets/bob delegation")
        .key_ids
        .into_iter()
        .collect();
    assert_eq!(
        signers(&report),
        BTreeMap::from([("bob".to_string(), bob_ids)])
    );
}

#[test]
fn revoked_tag_disappears() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let gun = "example.com/team/revoke";
    notary.init(gun);
    sign(&notary, gun, "v1", "v1", &[]);
    sign(&notary, gun, "v2", "v2", &[]);
    let before = signed_tags(&inspect_json(&server, gun, &[]));
    assert!(before.contains_key("v1"), "{before:?}");

    notary.remove(gun, "v1", &[]);
    let report = inspect_json(&server, gun, &[]);
    assert_matches_notary(&report, &notary, gun, &["targets"]);
    let after = signed_tags(&report);
    assert_eq!(after.keys().collect::<Vec<_>>(), ["v2"], "{report:#}");
    assert!(!role_targets(&report, "targets").contains_key("v1"));
}

#[test]
fn rotated_keys_verify_from_persisted_state() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let state = tempfile::tempdir().unwrap();
    let gun = "example.com/team/rotate";
    notary.init(gun);
    sign(&notary, gun, "v1", "v1", &[]);
    let first = inspect_json(&server, gun, &["--state-dir", state_arg(state.path())]);
    let old_root = strings(&first["root_keys"]);
    let old_targets = strings(&first["repository_keys"]);

    let first_root_certs: BTreeSet<String> = server.root_cert_key_ids(gun).into_iter().collect();

    // Each rotation publishes a new root version (targets and snapshot keys live in root too).
    notary.key_rotate(gun, "targets");
    notary.key_rotate(gun, "snapshot");
    // Two root rotations: the newest root is signed by the second and third root keys only, so
    // a client holding the first root must walk the versioned roots (`<n>.root.json`) in order.
    notary.key_rotate(gun, "root");
    notary.key_rotate(gun, "root");
    assert_eq!(notary.root_key_ids().len(), 3);
    let root = server.metadata_json(gun, "root");
    assert_eq!(
        root["signed"]["version"], 5,
        "root version after four rotations"
    );
    let signed_by: BTreeSet<String> = root["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_string())
        .collect();
    assert!(signed_by.is_disjoint(&first_root_certs), "{root:#}");
    sign(&notary, gun, "v2", "v2", &[]);

    let report = inspect_json(&server, gun, &["--state-dir", state_arg(state.path())]);
    assert_matches_notary(&report, &notary, gun, &["targets"]);
    assert_eq!(
        signed_tags(&report).keys().collect::<Vec<_>>(),
        ["v1", "v2"]
    );
    let new_root = strings(&report["root_keys"]);
    assert!(
        new_root.is_disjoint(&old_root) && !new_root.is_empty(),
        "root_keys should be the rotated key: before {old_root:?}, after {new_root:?}"
    );
    assert!(new_root.is_subset(&root_id_forms(&notary, &server, gun)));
    let new_targets = strings(&report["repository_keys"]);
    assert_ne!(new_targets, old_targets, "targets key was rotated");
    assert_eq!(
        new_targets,
        notary
            .key_ids_for_role("targets")
            .into_iter()
            .collect::<BTreeSet<_>>()
    );

    // The state now holds root v3; a further run (and a stateless one) still verifies.
    inspect_json(&server, gun, &["--state-dir", state_arg(state.path())]);
    inspect_json(&server, gun, &[]);
}

#[test]
fn persisted_state_refuses_a_new_root_under_the_same_gun() {
    let server = NotaryServer::start();
    let owner = NotaryCli::for_server(&server);
    let state = tempfile::tempdir().unwrap();
    let gun = "example.com/team/tofu";
    owner.init(gun);
    sign(&owner, gun, "v1", "genuine", &[]);
    let with_state = ["--json", "--state-dir", state_arg(state.path())];

    let first = inspect_json(&server, gun, &with_state[1..]);
    let second = inspect_json(&server, gun, &with_state[1..]);
    assert_eq!(signed_tags(&first), signed_tags(&second));

    // Someone else (their own trust dir, so a brand-new root key) takes over the GUN.
    owner.delete_remote(gun);
    assert!(server.metadata(gun, "root").is_none(), "GUN was deleted");
    let usurper = NotaryCli::for_server(&server);
    usurper.init(gun);
    sign(&usurper, gun, "v1", "evil", &[]);
    assert_ne!(usurper.root_key_ids(), owner.root_key_ids());

    let refused = inspect(&server, gun, &with_state);
    let line = assert_refused(&refused, &[]);
    eprintln!("new root refused with: {line}");
    // A refusal must not overwrite the trusted state.
    assert_refused(&inspect(&server, gun, &with_state), &[]);

    // First use (no state) accepts the new repository: the refusal above came from the state.
    let fresh = inspect_json(&server, gun, &[]);
    let (evil, _) = image("evil");
    assert_eq!(signed_tags(&fresh)["v1"].digest, format!("sha256:{evil}"));
}

#[test]
fn pinned_root_key() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let keys = tempfile::tempdir().unwrap();
    let gun = "example.com/team/pinned";
    notary.init(gun);
    sign(&notary, gun, "v1", "v1", &[]);

    // The canonical ID, as `notary key list` (and `docker trust inspect`) print it.
    let canonical = notary.root_key_ids();
    assert_eq!(canonical.len(), 1);
    let report = inspect_json(&server, gun, &["--root-key", &canonical[0]]);
    assert!(signed_tags(&report).contains_key("v1"));

    // The certificate ID root.json uses for the same key.
    let cert_ids = server.root_cert_key_ids(gun);
    assert_eq!(cert_ids.len(), 1);
    assert_ne!(cert_ids[0], canonical[0]);
    inspect_json(&server, gun, &["--root-key", &cert_ids[0]]);

    // The root certificate as a PEM file.
    let pem = keys.path().join("root.crt");
    std::fs::write(&pem, server.root_cert_pem(gun, &cert_ids[0])).unwrap();
    inspect_json(&server, gun, &["--root-key", pem.to_str().unwrap()]);

    // A key that is not the root key.
    let other = support::sha256_hex(b"not the root key");
    let refused = inspect(&server, gun, &["--root-key", &other]);
    assert_refused(&refused, &["pinned root key"]);
}

#[test]
fn failures_are_one_stderr_line() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let gun = "example.com/team/fail";
    notary.init(gun);
    sign(&notary, gun, "v1", "v1", &[]);

    // A GUN the server has never heard of.
    let missing = inspect(&server, "example.com/team/nothing", &[]);
    let line = assert_refused(&missing, &[]);
    eprintln!("unknown GUN: {line}");

    // notary-server's timestamps expire after days, the rest of the metadata after years: two
    // months on, the timestamp is the role that has expired.
    let timestamp = server.metadata_json(gun, "timestamp");
    let expires = timestamp["signed"]["expires"].as_str().unwrap().to_string();
    let later = support::rfc3339_from_now(Duration::from_secs(60 * 86_400), true);
    assert!(
        later[..19] > expires[..19],
        "{later} should be after {expires}"
    );
    let expired = inspect(&server, gun, &["--at", &later]);
    let line = assert_refused(&expired, &["timestamp", "expir"]);
    eprintln!("expired timestamp: {line}");

    // ... while a day from now everything is valid.
    let tomorrow = support::rfc3339_from_now(Duration::from_secs(86_400), true);
    inspect_json(&server, gun, &["--at", &tomorrow]);
}

#[test]
fn metadata_dir_from_notary_cache() {
    // The notary CLI caches what it verified as `<role>.json` files, delegations under
    // `targets/`; trustgate can verify that directory offline.
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let keys = tempfile::tempdir().unwrap();
    let gun = "example.com/team/offline";
    notary.init(gun);
    let alice = Signer::generate(keys.path(), "alice", KeyKind::P256);
    notary.delegation_add(gun, RELEASES, &alice.cert_path);
    notary.key_import(&alice.key_path, RELEASES);
    sign(&notary, gun, "v1", "v1", &[RELEASES]);
    sign(&notary, gun, "v0", "v0", &[]);
    notary.list(gun); // refreshes the cache, timestamp included

    let dir = notary.metadata_dir(gun);
    assert!(dir.join("timestamp.json").is_file());
    assert!(dir.join("targets/releases.json").is_file());
    let online = inspect_json(&server, gun, &[]);
    let output = support::trustgate([
        "trust",
        "inspect",
        gun,
        "--metadata-dir",
        dir.to_str().unwrap(),
        "--json",
    ]);
    let offline = parse_success(&output, "inspect --metadata-dir");
    assert_eq!(signed_tags(&offline), signed_tags(&online));
    assert_eq!(offline["roles"], online["roles"]);
}

#[test]
fn tls_server_with_ca_file() {
    let server = NotaryServer::start_tls();
    let notary = NotaryCli::for_server(&server);
    let gun = "example.com/team/tls";
    notary.init(gun);
    sign(&notary, gun, "v1", "v1", &[]);
    let ca = server.ca_cert().unwrap().to_str().unwrap();

    let report = inspect_json(&server, gun, &["--ca-file", ca]);
    assert_matches_notary(&report, &notary, gun, &["targets"]);

    // The test CA is in no system store: without --ca-file the server is not trusted.
    let line = assert_refused(&inspect(&server, gun, &[]), &[]);
    eprintln!("untrusted server certificate: {line}");
}

#[test]
fn revoked_release_falls_back_to_targets() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let keys = tempfile::tempdir().unwrap();
    let gun = "example.com/team/fallback";
    notary.init(gun);
    let alice = Signer::generate(keys.path(), "alice", KeyKind::P256);
    notary.delegation_add(gun, RELEASES, &alice.cert_path);
    notary.key_import(&alice.key_path, RELEASES);
    sign(&notary, gun, "latest", "from-targets", &[]);
    sign(&notary, gun, "latest", "from-releases", &[RELEASES]);
    let (released, _) = image("from-releases");
    let before = signed_tags(&inspect_json(&server, gun, &[]));
    assert_eq!(before["latest"].digest, format!("sha256:{released}"));

    // `docker trust revoke` as the release signer: the targets entry is what remains.
    notary.remove(gun, "latest", &[RELEASES]);
    let report = inspect_json(&server, gun, &[]);
    assert_matches_notary(&report, &notary, gun, &["targets", RELEASES]);
    let (fallback, _) = image("from-targets");
    let latest = &signed_tags(&report)["latest"];
    assert_eq!(latest.role, "targets");
    assert_eq!(latest.digest, format!("sha256:{fallback}"));
}

#[test]
fn removed_signer_is_gone() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let keys = tempfile::tempdir().unwrap();
    let gun = "example.com/team/signers";
    notary.init(gun);
    let alice = Signer::generate(keys.path(), "alice", KeyKind::P256);
    let carol = Signer::generate(keys.path(), "carol", KeyKind::P256);
    for signer in [&alice, &carol] {
        let role = format!("targets/{}", signer.name);
        notary.delegation_add(gun, RELEASES, &signer.cert_path);
        notary.delegation_add(gun, &role, &signer.cert_path);
        notary.key_import(&signer.key_path, &role);
    }
    sign(&notary, gun, "v1", "v1", &[RELEASES, "targets/alice"]);
    sign(&notary, gun, "v2", "v2", &[RELEASES, "targets/carol"]);
    let state = tempfile::tempdir().unwrap();
    let before = inspect_json(&server, gun, &["--state-dir", state_arg(state.path())]);
    let names: BTreeSet<String> = signers(&before).into_keys().collect();
    assert_eq!(names, BTreeSet::from(["alice".into(), "carol".into()]));

    // `docker trust signer remove carol`: carol's key leaves releases, her role is deleted.
    let carol_id = notary
        .delegation_list(gun)
        .into_iter()
        .find(|d| d.role == "targets/carol")
        .expect("targets/carol delegation")
        .key_ids[0]
        .clone();
    notary.delegation_remove_key(gun, RELEASES, &carol_id);
    notary.delegation_remove(gun, "targets/carol");
    // Releases must be re-signed by a remaining key, as docker does after removing a signer.
    sign(&notary, gun, "v3", "v3", &[RELEASES, "targets/alice"]);

    let report = inspect_json(&server, gun, &["--state-dir", state_arg(state.path())]);
    assert_matches_notary(
        &report,
        &notary,
        gun,
        &["targets", RELEASES, "targets/alice"],
    );
    let names: BTreeSet<String> = signers(&report).into_keys().collect();
    assert_eq!(names, BTreeSet::from(["alice".to_string()]), "{report:#}");
}

#[test]
fn server_managed_snapshot() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let state = tempfile::tempdir().unwrap();
    let gun = "example.com/team/snapshot";
    notary.init(gun);
    sign(&notary, gun, "v1", "v1", &[]);
    inspect_json(&server, gun, &["--state-dir", state_arg(state.path())]);

    // From here on notary-server signs the snapshot too (root lists its new key).
    notary.key_rotate_server_managed(gun, "snapshot");
    sign(&notary, gun, "v2", "v2", &[]);
    let root = server.metadata_json(gun, "root");
    let snapshot = server.metadata_json(gun, "snapshot");
    let snapshot_keys = strings(&root["signed"]["roles"]["snapshot"]["keyids"]);
    let local: BTreeSet<String> = notary.key_ids_for_role("snapshot").into_iter().collect();
    assert!(
        snapshot_keys.is_disjoint(&local),
        "snapshot key is server-side"
    );
    let signer = snapshot["signatures"][0]["keyid"].as_str().unwrap();
    assert!(snapshot_keys.contains(signer));

    let report = inspect_json(&server, gun, &["--state-dir", state_arg(state.path())]);
    assert_matches_notary(&report, &notary, gun, &["targets"]);
    assert_eq!(
        signed_tags(&report).keys().collect::<Vec<_>>(),
        ["v1", "v2"]
    );
}

#[test]
fn delegation_paths_limit_what_a_role_may_sign() {
    let server = NotaryServer::start();
    let notary = NotaryCli::for_server(&server);
    let keys = tempfile::tempdir().unwrap();
    let gun = "example.com/team/paths";
    notary.init(gun);
    let alice = Signer::generate(keys.path(), "alice", KeyKind::P256);
    let cert = alice.cert_path.to_str().unwrap();
    notary.run(&[
        "delegation",
        "add",
        gun,
        RELEASES,
        cert,
        "--paths",
        "v",
        "--publish",
    ]);
    notary.key_import(&alice.key_path, RELEASES);
    sign(&notary, gun, "v1", "released", &[RELEASES]);
    sign(&notary, gun, "v1", "plain", &[]);
    let (released, _) = image("released");
    let before = signed_tags(&inspect_json(&server, gun, &[]));
    assert_eq!(before["v1"].digest, format!("sha256:{released}"));

    // Narrow the delegation to paths starting with "x": the v1 that releases still carries is
    // outside it and must be ignored (notary list ignores it too), so v1 falls back to targets.
    notary.run(&[
        "delegation",
        "remove",
        gun,
        RELEASES,
        "--paths",
        "v",
        "--yes",
    ]);
    notary.run(&[
        "delegation",
        "add",
        gun,
        RELEASES,
        "--paths",
        "x",
        "--publish",
    ]);
    let raw = server.metadata_json(gun, RELEASES);
    assert!(
        raw["signed"]["targets"]["v1"].is_object(),
        "still in the file"
    );

    let report = inspect_json(&server, gun, &[]);
    assert_matches_notary(&report, &notary, gun, &["targets", RELEASES]);
    let (plain, _) = image("plain");
    let v1 = &signed_tags(&report)["v1"];
    assert_eq!(v1.role, "targets", "{report:#}");
    assert_eq!(v1.digest, format!("sha256:{plain}"));
}
