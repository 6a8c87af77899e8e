//! The trust policy against notation's own policies and notation-go's validation tests
//! (`verifier/trustpolicy/*_test.go`, `internal/pkix/pkix_test.go`,
//! `verifier/verifier_test.go` `TestVerifyX509TrustedIdentities`), and the conformance
//! corpus's policy rows (README §3: P01–P22, G10, G11, T03, identity rows N01, N03, N12, G08).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::trust::notation::store::TrustStore;

// === helpers ===

pub(super) fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/notation");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no conformance data at {}", dir.display());
        None
    }
}

const TP: &str = "notation/test/e2e/testdata/config/trustpolicies";

fn tp(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(TP).join(file)).unwrap()
}

fn err_of(bytes: &[u8]) -> String {
    match TrustPolicy::from_json(bytes) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.0,
    }
}

/// notation-go's `dummyOCIPolicyDocument()` statement with `patch`'s keys replaced.
pub(super) fn dummy(patch: Value) -> Vec<u8> {
    let mut statement = json!({
        "name": "test-statement-name",
        "registryScopes": ["registry.acme-rockets.io/software/net-monitor"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:valid-trust-store", "signingAuthority:valid-trust-store"],
        "trustedIdentities": ["x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"]
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            statement.as_object_mut().unwrap().remove(k);
        } else {
            statement[k] = v.clone();
        }
    }
    serde_json::to_vec(&json!({"version": "1.0", "trustPolicies": [statement]})).unwrap()
}

pub(super) fn dummy_err(patch: Value) -> String {
    err_of(&dummy(patch))
}

pub(super) fn dummy_ok(patch: Value) -> Statement {
    let mut p = TrustPolicy::from_json(&dummy(patch)).unwrap();
    p.statements.remove(0)
}

/// A certificate file's first certificate, DER.
pub(super) fn cert_der(dir: &Path, rel: &str) -> Vec<u8> {
    let bytes = std::fs::read(dir.join(rel)).unwrap();
    crate::trust::x509::pem_certificates(&bytes)
        .into_iter()
        .next()
        .unwrap_or(bytes)
}

pub(super) fn trusts(statement: &Statement, der: &[u8]) -> bool {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    statement.trusts_identity(&cert)
}

pub(super) fn identity_statement(identities: &[&str]) -> Statement {
    dummy_ok(json!({ "trustedIdentities": identities }))
}

const E: Action = Action::Enforce;
const L: Action = Action::Log;
const S: Action = Action::Skip;

fn actions(authenticity: Action, ts: Action, expiry: Action, revocation: Action) -> Actions {
    Actions {
        authenticity,
        authentic_timestamp: ts,
        expiry,
        revocation,
    }
}

// === the conformance corpus ===

#[test]
fn policy_document_errors_p01_to_p20() {
    let Some(dir) = corpus() else { return };
    let cases: &[(&str, &str, &str)] = &[
        ("P01", "unset_trusted_identity_trustpolicy.json", "trust policy statement \"e2e\" is either missing trust stores or trusted identities, both must be specified"),
        ("P02", "unset_trust_store_trustpolicy.json", "trust policy statement \"e2e\" is either missing trust stores or trusted identities, both must be specified"),
        ("P03", "malformed_trusted_identity_trustpolicy.json", "has trusted identity \"x509.subject CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\" missing separator"),
        ("P04", "empty_trusted_identity_trustpolicy.json", "trust policy statement \"e2e\" has an empty trusted identity"),
        ("P05", "overlapped_trusted_identity_trustpolicy.json", "has overlapping x509 trustedIdentities"),
        ("P06", "wildcard_plus_other_trusted_identity_trustpolicy.json", "uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values"),
        ("P07", "missing_organization_trusted_identity_trustpolicy.json", "has no mandatory RDN attribute for \"O\""),
        ("P08", "missing_state_trusted_identity_trustpolicy.json", "has no mandatory RDN attribute for \"ST\""),
        ("P09", "missing_country_trusted_identity_trustpolicy.json", "has no mandatory RDN attribute for \"C\""),
        ("P11", "malformed_trust_store_trustpolicy.json", "uses an unsupported trust store name \"\" in trust store value \"ca:\""),
        ("P12", "wildcard_trust_store_trustpolicy.json", "has malformed trust store value \"*\". The required format is <TrustStoreType>:<TrustStoreName>"),
        ("P13", "empty_registry_scope_trustpolicy.json", "trust policy statement \"e2e\" has zero registry scopes"),
        ("P14", "malformed_registry_scope_trustpolicy.json", "registry scope \"localhost:5000\\\\test-repo\" is not valid"),
        ("P15", "overlapped_registry_scope_trustpolicy.json", "registry scope \"localhost:5000/test-repo6\" is present in multiple oci trust policy statements"),
        ("P16", "wildcard_plus_other_registry_scope_trustpolicy.json", "uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values"),
        ("P17", "multi_statements_with_the_same_registry_scope_trustpolicy.json", "registry scope \"localhost:5000/test-repo8\" is present in multiple oci trust policy statements"),
        ("P18", "multi_statements_with_the_same_name_trustpolicy.json", "multiple oci trust policy statements use the same name \"e2e\""),
        ("P19", "multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json", "registry scope \"*\" is present in multiple oci trust policy statements"),
        ("P20", "override_integrity_for_permissive_trustpolicy.json", "\"integrity\" verification can not be overridden in custom signature verification"),
    ];
    for (id, file, expected) in cases {
        let e = err_of(&tp(&dir, file));
        assert!(e.contains(expected), "{id} {file}: {e}");
    }
    // The whole messages of a few, prefix included, as notation-go builds them.
    assert_eq!(
        err_of(&tp(&dir, "unset_trust_store_trustpolicy.json")),
        "oci trust policy: trust policy statement \"e2e\" is either missing trust stores or trusted identities, both must be specified"
    );
    assert_eq!(
        err_of(&tp(&dir, "empty_registry_scope_trustpolicy.json")),
        "oci trust policy statement \"e2e\" has zero registry scopes, it must specify registry scopes with at least one value"
    );
    let e = err_of(&tp(&dir, "overlapped_trusted_identity_trustpolicy.json"));
    assert_eq!(
        e,
        "oci trust policy: trust policy statement \"e2e\" has overlapping x509 trustedIdentities, \"x509.subject: CN=e2e,O=Notary,ST=WA,C=US\" overlaps with \"x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\""
    );
    assert!(err_of(&tp(&dir, "invalid_format_trustpolicy.json"))
        .starts_with("malformed trust policy. To create a trust policy, see: https://notaryproject.dev/docs/quickstart/#create-a-trust-policy"));
    // A blob policy has no registryScopes.
    assert!(err_of(&tp(&dir, "blob_trust_policy.json")).contains("has zero registry scopes"));
}

#[test]
fn p10_a_missing_store_is_found_when_the_stores_are_read() {
    let Some(dir) = corpus() else { return };
    let policy = TrustPolicy::from_json(&tp(&dir, "invalid_trust_store_trustpolicy.json")).unwrap();
    let store = &policy.statements[0].trust_stores[0];
    assert_eq!(
        (store.kind, store.name.as_str()),
        (StoreKind::Ca, "invalid_store")
    );
    let e = TrustStore::new(&dir.join("assembled/configs/e2e"))
        .certificates(store.kind, &store.name)
        .unwrap_err();
    assert_eq!(
        e.0,
        "the trust store \"invalid_store\" of type \"ca\" does not exist"
    );
}

#[test]
fn p21_p22_registry_scopes_select_statements() {
    let Some(dir) = corpus() else { return };
    let digest = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";
    let invalid =
        TrustPolicy::from_json(&tp(&dir, "invalid_registry_scope_trustpolicy.json")).unwrap();
    assert!(invalid.statement_for("localhost:5000/test-repo").is_none());
    let reference = format!("localhost:5000/test-repo@{digest}");
    assert_eq!(
        invalid.applicable(&reference).unwrap_err().0,
        format!("artifact \"{reference}\" has no applicable oci trust policy statement. Trust policy applicability for a given artifact is determined by registryScopes. To create a trust policy, see: https://notaryproject.dev/docs/quickstart/#create-a-trust-policy")
    );
    let scoped = TrustPolicy::from_json(&tp(&dir, "registry_scope_trustpolicy.json")).unwrap();
    assert_eq!(
        scoped
            .statement_for("localhost:5000/test-repo")
            .map(|s| s.name.as_str()),
        Some("e2e")
    );
    assert_eq!(scoped.applicable(&reference).unwrap().name, "e2e");
    assert!(scoped.statement_for("localhost:5000/test-repo2").is_none());
    // Exact scope over `*` (N05).
    let multi = TrustPolicy::from_json(&tp(
        &dir,
        "multi_statements_with_wildcard_registry_scope_trustpolicy.json",
    ))
    .unwrap();
    assert_eq!(
        multi
            .statement_for("localhost:5000/test-repo9")
            .unwrap()
            .name,
        "e2e"
    );
    assert_eq!(
        multi.statement_for("localhost:5000/other").unwrap().name,
        "e2e2"
    );
    let repos =
        TrustPolicy::from_json(&tp(&dir, "multiple_registry_scope_trustpolicy.json")).unwrap();
    assert!(repos.statement_for("localhost:5000/test-repo2").is_some());
    assert!(repos.statement_for("localhost:5000/test-repo3").is_some());
    assert!(repos.statement_for("localhost:5000/test-repo").is_none());
}

#[test]
fn notations_valid_policies_parse_with_their_levels() {
    let Some(dir) = corpus() else { return };
    let strict = actions(E, E, E, E);
    let cases: &[(&str, Level, Actions)] = &[
        ("trustpolicy.json", Level::Strict, strict),
        (
            "any_registry_scope_trust_policy.json",
            Level::Strict,
            strict,
        ),
        (
            "permissive_trustpolicy.json",
            Level::Permissive,
            actions(E, L, L, L),
        ),
        ("audit_trustpolicy.json", Level::Audit, actions(L, L, L, L)),
        ("skip_trustpolicy.json", Level::Skip, actions(S, S, S, S)),
        (
            "override_strict_trustpolicy.json",
            Level::Strict,
            actions(L, L, L, L),
        ),
        (
            "override_permissive_trustpolicy.json",
            Level::Permissive,
            actions(L, E, E, E),
        ),
        ("override_audit_trustpolicy.json", Level::Audit, strict),
        ("timestamp_trustpolicy.json", Level::Strict, strict),
        (
            "timestamp_after_cert_expiry_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        (
            "valid_trusted_identity_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        (
            "invalid_trusted_identity_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        (
            "multiple_trusted_identity_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        ("registry_scope_trustpolicy.json", Level::Strict, strict),
        (
            "multiple_registry_scope_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        (
            "invalid_registry_scope_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        (
            "multiple_trust_store_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        (
            "overlapped_trust_store_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        (
            "invalid_trust_store_trustpolicy.json",
            Level::Strict,
            strict,
        ),
        ("quickstart_trustpolicy.json", Level::Strict, strict),
        ("generate_test_trustpolicy.json", Level::Strict, strict),
    ];
    for (file, level, expected) in cases {
        let policy =
            TrustPolicy::from_json(&tp(&dir, file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let s = &policy.statements[0];
        assert_eq!((s.level, s.actions), (*level, *expected), "{file}");
    }
    let skip = TrustPolicy::from_json(&tp(&dir, "skip_trustpolicy.json")).unwrap();
    assert_eq!(skip.statements[0].scopes, Scopes::Any);
    assert!(skip.statements[0].trust_stores.is_empty());
    assert_eq!(skip.statements[0].identities, Identities::Subjects(vec![]));

    let ts =
        TrustPolicy::from_json(&tp(&dir, "timestamp_after_cert_expiry_trustpolicy.json")).unwrap();
    assert_eq!(
        ts.statements[0].verify_timestamp,
        VerifyTimestamp::AfterCertExpiry
    );
    assert_eq!(
        ts.statements[0].trust_stores,
        vec![
            StoreRef {
                kind: StoreKind::Ca,
                name: "e2e".into()
            },
            StoreRef {
                kind: StoreKind::Tsa,
                name: "e2e".into()
            },
        ]
    );
    let ts = TrustPolicy::from_json(&tp(&dir, "timestamp_trustpolicy.json")).unwrap();
    assert_eq!(ts.statements[0].verify_timestamp, VerifyTimestamp::Always);
    // The same store twice is kept (notation-go does not check it; loading dedups).
    let twice =
        TrustPolicy::from_json(&tp(&dir, "overlapped_trust_store_trustpolicy.json")).unwrap();
    assert_eq!(twice.statements[0].trust_stores.len(), 2);
    let id = TrustPolicy::from_json(&tp(&dir, "valid_trusted_identity_trustpolicy.json")).unwrap();
    let expected: Dn = [
        ("CN", "e2e"),
        ("O", "Notary"),
        ("L", "Seattle"),
        ("ST", "WA"),
        ("C", "US"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        id.statements[0].identities,
        Identities::Subjects(vec![expected])
    );
}

#[test]
fn every_e2e_policy_is_either_accepted_or_refused_as_listed() {
    let Some(dir) = corpus() else { return };
    let refused = [
        "blob_trust_policy.json",
        "empty_registry_scope_trustpolicy.json",
        "empty_trusted_identity_trustpolicy.json",
        "invalid_format_trustpolicy.json",
        "malformed_registry_scope_trustpolicy.json",
        "malformed_trust_store_trustpolicy.json",
        "malformed_trusted_identity_trustpolicy.json",
        "missing_country_trusted_identity_trustpolicy.json",
        "missing_organization_trusted_identity_trustpolicy.json",
        "missing_state_trusted_identity_trustpolicy.json",
        "multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json",
        "multi_statements_with_the_same_name_trustpolicy.json",
        "multi_statements_with_the_same_registry_scope_trustpolicy.json",
        "overlapped_registry_scope_trustpolicy.json",
        "overlapped_trusted_identity_trustpolicy.json",
        "override_integrity_for_permissive_trustpolicy.json",
        "unset_trust_store_trustpolicy.json",
        "unset_trusted_identity_trustpolicy.json",
        "wildcard_plus_other_registry_scope_trustpolicy.json",
        "wildcard_plus_other_trusted_identity_trustpolicy.json",
        "wildcard_trust_store_trustpolicy.json",
    ];
    let mut files: Vec<_> = std::fs::read_dir(dir.join(TP))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 43);
    for file in files {
        let result = TrustPolicy::load(&dir.join(TP).join(&file));
        assert_eq!(
            result.is_err(),
            refused.contains(&file.as_str()),
            "{file}: {result:?}"
        );
    }
}

#[test]
fn assembled_policies_load() {
    let Some(dir) = corpus() else { return };
    let policies = dir.join("assembled/policies");
    let mut n = 0;
    for entry in std::fs::read_dir(&policies).unwrap() {
        let path = entry.unwrap().path();
        TrustPolicy::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert_eq!(n, 15);
    let load = |f: &str| {
        TrustPolicy::load(&policies.join(f))
            .unwrap()
            .statements
            .remove(0)
    };
    let s = load("ngo-dummy-store2-audit.json");
    assert_eq!((s.level, s.actions), (Level::Audit, actions(L, L, L, L)));
    assert_eq!(
        s.trust_stores,
        vec![
            StoreRef {
                kind: StoreKind::Ca,
                name: "valid-trust-store-2".into()
            },
            StoreRef {
                kind: StoreKind::SigningAuthority,
                name: "valid-trust-store-2".into()
            },
        ]
    );
    assert_eq!(
        load("ngo-ts-after-cert-expiry.json").verify_timestamp,
        VerifyTimestamp::AfterCertExpiry
    );
    assert_eq!(load("ngo-ts-always.json").identities, Identities::Any);
    let policy = TrustPolicy::load(&policies.join("ngo-dummy-strict.json")).unwrap();
    assert!(policy
        .statement_for("registry.acme-rockets.io/software/net-monitor")
        .is_some());
    assert!(policy
        .statement_for("registry.acme-rockets.io/software")
        .is_none());
    // notation-go's own configuration directory has no trust policy in it.
    let e = TrustPolicy::load(&dir.join("notation-go/verifier/testdata")).unwrap_err();
    assert!(
        e.0.starts_with("trust policy is not present. To create a trust policy, see:"),
        "{e}"
    );
}

#[test]
fn g10_t03_a_store_value_that_is_only_a_type_is_missing_its_separator() {
    let Some(dir) = corpus() else { return };
    let patch = |file: &str, stores: Value| {
        let mut doc: Value = serde_json::from_slice(
            &std::fs::read(dir.join("assembled/policies").join(file)).unwrap(),
        )
        .unwrap();
        doc["trustPolicies"][0]["trustStores"] = stores;
        serde_json::to_vec(&doc).unwrap()
    };
    let e = err_of(&patch(
        "ngo-dummy-strict.json",
        json!(["ca:valid-trust-store-2", "signingAuthority"]),
    ));
    assert_eq!(
        e,
        "oci trust policy: trust policy statement \"test-statement-name\" is missing separator in trust store value \"signingAuthority\". The required format is <TrustStoreType>:<TrustStoreName>"
    );
    let e = err_of(&patch(
        "ngo-ts-always.json",
        json!(["ca:valid-trust-store", "tsa"]),
    ));
    assert!(
        e.contains("missing separator in trust store value \"tsa\""),
        "{e}"
    );
    assert!(
        e.contains("The required format is <TrustStoreType>:<TrustStoreName>"),
        "{e}"
    );
}

#[test]
fn g11_an_identity_without_separator_or_value() {
    assert_eq!(
        dummy_err(json!({"trustedIdentities": ["x509.subject"]})),
        "oci trust policy: trust policy statement \"test-statement-name\" has trusted identity \"x509.subject\" missing separator"
    );
    assert_eq!(
        dummy_err(json!({"trustedIdentities": ["x509.subject:"]})),
        "oci trust policy: trust policy statement \"test-statement-name\" has trusted identity \"x509.subject:\" without an identity value"
    );
}

#[test]
fn identities_match_the_e2e_and_notation_go_leaves_n01_n03_n12_g08() {
    let Some(dir) = corpus() else { return };
    let e2e = cert_der(&dir, "notation/test/e2e/testdata/config/localkeys/e2e.crt");
    let new_e2e = cert_der(
        &dir,
        "notation/test/e2e/testdata/config/localkeys/new_e2e.crt",
    );
    let statement = |file: &str| {
        TrustPolicy::from_json(&tp(&dir, file))
            .unwrap()
            .statements
            .remove(0)
    };
    // N01
    let valid = statement("valid_trusted_identity_trustpolicy.json");
    assert!(trusts(&valid, &e2e));
    assert!(!trusts(&valid, &new_e2e));
    // N03: either of two identities.
    let multiple = statement("multiple_trusted_identity_trustpolicy.json");
    assert!(trusts(&multiple, &e2e) && trusts(&multiple, &new_e2e));
    // N12: C=USB is not C=US.
    let invalid = statement("invalid_trusted_identity_trustpolicy.json");
    assert!(!trusts(&invalid, &e2e));
    let (_, cert) = X509Certificate::from_der(&e2e).unwrap();
    assert!(invalid.check_identity(&cert).unwrap_err().starts_with(
        "signing certificate from the digital signature does not match the X.509 trusted identities [map[\"C\":\"USB\" \"CN\":\"e2e\" \"L\":\"Seattle\" \"O\":\"Notary\" \"ST\":\"WA\"]] defined in the trust policy \"e2e\""
    ));
    // `*` trusts any leaf.
    assert!(trusts(&statement("trustpolicy.json"), &new_e2e));

    // G01 / G08: the leaf of notation-go's mock envelope, `CN=Notation Test Root,...`.
    let envelope: Value = serde_json::from_slice(
        &std::fs::read(dir.join("notation-go/internal/mock/testdata/ca_valid_sig_env.json"))
            .unwrap(),
    )
    .unwrap();
    use base64::Engine as _;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(envelope["header"]["x5c"][0].as_str().unwrap())
        .unwrap();
    let load = |f: &str| {
        TrustPolicy::load(&dir.join("assembled/policies").join(f))
            .unwrap()
            .statements
            .remove(0)
    };
    assert!(trusts(&load("ngo-dummy-strict.json"), &leaf));
    let wrong = load("ngo-dummy-wrongid-strict.json");
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    assert_eq!(
        wrong.check_identity(&cert).unwrap_err(),
        "signing certificate from the digital signature does not match the X.509 trusted identities [map[\"C\":\"IN\" \"CN\":\"LOL\" \"L\":\"Hyderabad\" \"O\":\"DummyOrg\" \"ST\":\"TG\"]] defined in the trust policy \"test-statement-name\""
    );
    // Only the leaf is compared: the root (same DN, not the leaf) is not asked about here,
    // but a certificate's issuer never counts: wabbit-networks' CA-issued leaf has its
    // issuer's O and C, not its CN.
    let non_ca = cert_der(
        &dir,
        "notation-go/verifier/testdata/truststore/x509/ca/trust-store-with-leaf-certs/non-ca.crt",
    );
    let by_issuer =
        identity_statement(&["x509.subject:CN=wabbit-networks.io CA,O=Notary,ST=WA,C=US"]);
    assert!(!trusts(&by_issuer, &non_ca));
    let by_subject =
        identity_statement(&["x509.subject:CN=wabbit-networks.io,O=Notary,ST=WA,C=US"]);
    assert!(trusts(&by_subject, &non_ca));
}

/// notation-go `TestVerifyX509TrustedIdentities`, each case a statement and a verdict.
#[test]
fn notation_go_identity_table_with_signing_cert_and_bad_cert() {
    let Some(dir) = corpus() else { return };
    let signing = cert_der(
        &dir,
        "notation-go/verifier/testdata/verifier/signing-cert.pem",
    );
    let bad = cert_der(&dir, "notation-go/verifier/testdata/verifier/bad-cert.pem");
    let cases: &[(&[u8], &[&str], bool)] = &[
        (&signing, &["x509.subject:C=US,O=SomeOrg,ST=WA"], true),
        (
            &signing,
            &[
                "x509.subject:C=US,O=SomeOrg,ST=WA",
                "nonX509Prefix:my-custom-identity",
            ],
            true,
        ),
        (
            &signing,
            &[
                "x509.subject:C=US,O=SomeOrg,ST=WA",
                "x509.subject:C=IND,O=SomeOrg,ST=TS",
            ],
            true,
        ),
        (&signing, &["nonX509Prefix:my-custom-identity"], false),
        (&signing, &["*"], true),
        (&signing, &["x509.subject:C=IND,O=SomeOrg,ST=TS"], false),
        (
            &signing,
            &[
                "x509.subject:C=IND,O=SomeOrg,ST=TS",
                "nonX509Prefix:my-custom-identity",
            ],
            false,
        ),
        (
            &signing,
            &[
                "x509.subject:C=IND,O=SomeOrg,ST=TS",
                "x509.subject:C=LOL,O=LOL,ST=LOL",
            ],
            false,
        ),
        (
            &bad,
            &[
                "x509.subject:C=US,O=SomeOrg,ST=WA",
                "nonX509Prefix:my-custom-identity",
            ],
            false,
        ),
        (&bad, &["*"], true),
    ];
    for (i, (cert, identities, expected)) in cases.iter().enumerate() {
        let statement = identity_statement(identities);
        assert_eq!(
            trusts(&statement, cert),
            *expected,
            "case {i}: {identities:?}"
        );
    }
    // The one case that is a policy error here (notation-go finds it when verifying).
    assert!(
        dummy_err(json!({"trustedIdentities": ["x509.subject:C=bad=#identity,O=LOL,ST=LOL"]}))
            .contains("notation does not support x509.subject identities containing \"=#\"")
    );
    // Why bad-cert is not trusted: its subject, as Go writes it, has "=#".
    let (_, cert) = X509Certificate::from_der(&bad).unwrap();
    assert_eq!(
        dn::go_name_string(cert.subject()).unwrap(),
        "CN=Bad=#CN,OU=SomeOU,O=SomeOrg,L=Seattle,ST=WA,C=US"
    );
    let e = identity_statement(&["x509.subject:C=US,O=SomeOrg,ST=WA"])
        .check_identity(&cert)
        .unwrap_err();
    assert!(e.starts_with("error while parsing the certificate subject from the digital signature. error : \"unsupported distinguished name (DN)"), "{e}");
    let e = identity_statement(&["nonX509Prefix:my-custom-identity"])
        .check_identity(&cert)
        .unwrap_err();
    assert_eq!(
        e,
        "no x509 trusted identities are configured in the trust policy \"test-statement-name\""
    );
    let (_, cert) = X509Certificate::from_der(&signing).unwrap();
    assert_eq!(
        dn::go_name_string(cert.subject()).unwrap(),
        "CN=SomeCN,OU=SomeOU,O=SomeOrg,L=Seattle,ST=WA,C=US"
    );
}

// === notation-go's validation tests ===

#[test]
fn document_level_rules() {
    let doc = |v: Value| serde_json::to_vec(&v).unwrap();
    assert_eq!(
        err_of(&doc(json!({"version": "invalid", "trustPolicies": []}))),
        "oci trust policy document uses unsupported version \"invalid\""
    );
    assert_eq!(
        err_of(&doc(json!({"trustPolicies": []}))),
        "oci trust policy document has empty version, version must be specified"
    );
    assert_eq!(
        err_of(&doc(json!({"version": "1.0"}))),
        "oci trust policy document can not have zero trust policy statements"
    );
    assert_eq!(
        err_of(&doc(json!({"version": "1.0", "trustPolicies": null}))),
        "oci trust policy document can not have zero trust policy statements"
    );
    assert_eq!(
        dummy_err(json!({"name": ""})),
        "oci trust policy: a trust policy statement is missing a name, every statement requires a name"
    );
    assert_eq!(
        dummy_err(json!({"registryScopes": null})),
        "oci trust policy statement \"test-statement-name\" has zero registry scopes, it must specify registry scopes with at least one value"
    );
    assert_eq!(
        dummy_err(json!({"registryScopes": ["*", "registry.acme-rockets.io/software/net-monitor"]})),
        "oci trust policy statement \"test-statement-name\" uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values"
    );
    // Two statements with one scope; two with one name.
    let statement: Value =
        serde_json::from_slice::<Value>(&dummy(json!({}))).unwrap()["trustPolicies"][0].clone();
    let mut second = statement.clone();
    second["name"] = json!("test-statement-name-2");
    assert_eq!(
        err_of(&doc(json!({"version": "1.0", "trustPolicies": [statement.clone(), second]}))),
        "registry scope \"registry.acme-rockets.io/software/net-monitor\" is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement"
    );
    let mut second = statement.clone();
    second["registryScopes"] = json!(["registry.acme-rockets.io/software/legacy/metrics"]);
    assert_eq!(
        err_of(&doc(json!({"version": "1.0", "trustPolicies": [statement, second]}))),
        "multiple oci trust policy statements use the same name \"test-statement-name\", statement names must be unique"
    );
}

#[test]
fn signature_verification_rules() {
    assert_eq!(
        dummy_err(json!({"signatureVerification": {"level": "invalid"}})),
        "oci trust policy: trust policy statement \"test-statement-name\" has invalid signatureVerification: invalid signature verification level \"invalid\""
    );
    assert_eq!(
        dummy_err(json!({"signatureVerification": {}})),
        "oci trust policy: trust policy statement \"test-statement-name\" has invalid signatureVerification: signature verification level is empty or missing in the trust policy statement"
    );
    assert_eq!(
        dummy_err(json!({"signatureVerification": null})),
        "oci trust policy: trust policy statement \"test-statement-name\" has invalid signatureVerification: signature verification level is empty or missing in the trust policy statement"
    );
    assert_eq!(
        dummy_err(json!({"signatureVerification": {"level": "strict", "verifyTimestamp": "invalid"}})),
        "oci trust policy: trust policy statement \"test-statement-name\" has invalid signatureVerification: verifyTimestamp must be \"always\" or \"afterCertExpiry\", but got \"invalid\""
    );
    for (vt, expected) in [
        ("", VerifyTimestamp::Always),
        ("always", VerifyTimestamp::Always),
        ("afterCertExpiry", VerifyTimestamp::AfterCertExpiry),
    ] {
        let s =
            dummy_ok(json!({"signatureVerification": {"level": "strict", "verifyTimestamp": vt}}));
        assert_eq!(s.verify_timestamp, expected);
    }
    assert_eq!(
        dummy_err(json!({"signatureVerification": {"level": "skip"}})),
        "oci trust policy: trust policy statement \"test-statement-name\" is set to skip signature verification but configured with trust stores and/or trusted identities, remove them if signature verification needs to be skipped"
    );
    let skip = dummy_ok(
        json!({"signatureVerification": {"level": "skip"}, "trustStores": [], "trustedIdentities": null}),
    );
    assert_eq!(
        (skip.level, skip.actions),
        (Level::Skip, actions(S, S, S, S))
    );
    // An empty override is no override, even for skip.
    let skip = dummy_ok(
        json!({"signatureVerification": {"level": "skip", "override": {}}, "trustStores": null, "trustedIdentities": null}),
    );
    assert_eq!(skip.level, Level::Skip);
    assert_eq!(
        dummy_err(json!({"trustStores": []})),
        "oci trust policy: trust policy statement \"test-statement-name\" is either missing trust stores or trusted identities, both must be specified"
    );
    assert_eq!(
        dummy_err(json!({"trustedIdentities": []})),
        "oci trust policy: trust policy statement \"test-statement-name\" is either missing trust stores or trusted identities, both must be specified"
    );
}

/// notation-go `TestGetVerificationLevel` and `TestCustomVerificationLevel`.
#[test]
fn levels_and_overrides() {
    let prefix = "oci trust policy: trust policy statement \"test-statement-name\" has invalid signatureVerification: ";
    let refused: &[(&str, Value, &str)] = &[
        ("strict", json!({"integrity": "log"}), "\"integrity\" verification can not be overridden in custom signature verification"),
        ("strict", json!({"authenticity": "skip"}), "\"authenticity\" verification can not be skipped in custom signature verification"),
        ("strict", json!({"authenticTimestamp": "skip"}), "\"authenticTimestamp\" verification can not be skipped in custom signature verification"),
        ("strict", json!({"expiry": "skip"}), "\"expiry\" verification can not be skipped in custom signature verification"),
        ("skip", json!({"authenticity": "log"}), "signature verification level \"skip\" can't be used to customize signature verification"),
        ("invalid", json!({"authenticity": "log"}), "invalid signature verification level \"invalid\""),
        ("strict", json!({"invalid": "log"}), "verification type \"invalid\" in custom signature verification is not supported, supported values are [\"integrity\" \"authenticity\" \"authenticTimestamp\" \"expiry\" \"revocation\"]"),
        ("strict", json!({"authenticity": "invalid"}), "verification action \"invalid\" in custom signature verification is not supported, supported values are [\"enforce\" \"log\" \"skip\"]"),
        ("strict", json!({"Authenticity": "log"}), "verification type \"Authenticity\" in custom signature verification is not supported"),
        ("strict", json!({"authenticity": null}), "verification action \"\" in custom signature verification is not supported"),
    ];
    for (level, overrides, expected) in refused {
        let e =
            dummy_err(json!({"signatureVerification": {"level": level, "override": overrides}}));
        assert!(
            e.starts_with(prefix) && e.contains(expected),
            "{level} {overrides}: {e}"
        );
    }
    let accepted: &[(&str, Value, Actions)] = &[
        ("strict", json!({}), actions(E, E, E, E)),
        ("permissive", json!({}), actions(E, L, L, L)),
        ("audit", json!({}), actions(L, L, L, L)),
        (
            "strict",
            json!({"authenticity": "log"}),
            actions(L, E, E, E),
        ),
        (
            "permissive",
            json!({"authenticity": "log"}),
            actions(L, L, L, L),
        ),
        ("audit", json!({"authenticity": "log"}), actions(L, L, L, L)),
        ("strict", json!({"expiry": "log"}), actions(E, E, L, E)),
        ("permissive", json!({"expiry": "log"}), actions(E, L, L, L)),
        ("audit", json!({"expiry": "log"}), actions(L, L, L, L)),
        ("strict", json!({"revocation": "log"}), actions(E, E, E, L)),
        (
            "permissive",
            json!({"revocation": "log"}),
            actions(E, L, L, L),
        ),
        ("audit", json!({"revocation": "log"}), actions(L, L, L, L)),
        ("strict", json!({"revocation": "skip"}), actions(E, E, E, S)),
        (
            "permissive",
            json!({"revocation": "skip"}),
            actions(E, L, L, S),
        ),
        ("audit", json!({"revocation": "skip"}), actions(L, L, L, S)),
        (
            "permissive",
            json!({"authenticTimestamp": "log"}),
            actions(E, L, L, L),
        ),
        (
            "audit",
            json!({"authenticTimestamp": "log"}),
            actions(L, L, L, L),
        ),
        (
            "strict",
            json!({"authenticTimestamp": "log"}),
            actions(E, L, E, E),
        ),
        (
            "audit",
            json!({"authenticity": "enforce", "revocation": "enforce"}),
            actions(E, L, L, E),
        ),
    ];
    for (level, overrides, expected) in accepted {
        let s = dummy_ok(json!({"signatureVerification": {"level": level, "override": overrides}}));
        assert_eq!(s.actions, *expected, "{level} {overrides}");
        assert_eq!(s.level.as_str(), *level);
    }
}

#[test]
fn trust_store_values() {
    let cases: &[(Value, &str)] = &[
        (json!(["ca"]), "trust policy statement \"test-statement-name\" is missing separator in trust store value \"ca\". The required format is <TrustStoreType>:<TrustStoreName>"),
        (json!([""]), "trust policy statement \"test-statement-name\" has malformed trust store value \"\". The required format is <TrustStoreType>:<TrustStoreName>"),
        (json!(["ca-e2e"]), "trust policy statement \"test-statement-name\" has malformed trust store value \"ca-e2e\". The required format is <TrustStoreType>:<TrustStoreName>"),
        (json!(["invalid:test-trust-store"]), "trust policy statement \"test-statement-name\" uses an unsupported trust store type \"invalid\" in trust store value \"invalid:test-trust-store\""),
        (json!(["CA:e2e"]), "uses an unsupported trust store type \"CA\""),
        (json!(["ca:"]), "trust policy statement \"test-statement-name\" uses an unsupported trust store name \"\" in trust store value \"ca:\". Named store name needs to follow [a-zA-Z0-9_.-]+ format"),
        (json!(["ca:#@$@$"]), "uses an unsupported trust store name \"#@$@$\" in trust store value \"ca:#@$@$\""),
        (json!(["ca:a:b"]), "uses an unsupported trust store name \"a:b\""),
        (json!(["ca:../x"]), "uses an unsupported trust store name \"../x\""),
        (json!(["tsa:.."]), "uses an unsupported trust store name \"..\""),
        (json!(["ca:ok", null]), "has malformed trust store value \"\""),
    ];
    for (stores, expected) in cases {
        let e = dummy_err(json!({ "trustStores": stores }));
        assert!(
            e.starts_with("oci trust policy: ") && e.contains(expected),
            "{stores}: {e}"
        );
    }
    let s = dummy_ok(json!({"trustStores": ["ca:my-ts", "signingAuthority:A.b_c-9", "tsa:t"]}));
    assert_eq!(
        s.trust_stores,
        vec![
            StoreRef {
                kind: StoreKind::Ca,
                name: "my-ts".into()
            },
            StoreRef {
                kind: StoreKind::SigningAuthority,
                name: "A.b_c-9".into()
            },
            StoreRef {
                kind: StoreKind::Tsa,
                name: "t".into()
            },
        ]
    );
}

/// notation-go `TestValidateTrustedIdentities`.
#[test]
fn trusted_identity_values() {
    let e = |ids: Value| dummy_err(json!({ "trustedIdentities": ids }));
    let p = "oci trust policy: trust policy statement \"test-statement-name\" ";
    assert_eq!(
        e(json!(["*", "C=US, ST=WA, O=wabbit-network.io"])),
        format!("{p}uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values")
    );
    assert_eq!(e(json!(["*", "*"])), format!("{p}uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values"));
    assert_eq!(e(json!([""])), format!("{p}has an empty trusted identity"));
    assert_eq!(
        e(json!([null])),
        format!("{p}has an empty trusted identity")
    );
    assert_eq!(
        e(json!(["C=US, ST=WA, O=wabbit-network.io, OU=org1"])),
        format!("{p}has trusted identity \"C=US, ST=WA, O=wabbit-network.io, OU=org1\" missing separator")
    );
    assert_eq!(
        e(json!(["x509.subject:,,,"])),
        format!("{p}has trusted identity \"x509.subject:,,,\" with invalid identity value: parsing distinguished name (DN) \",,,\" failed with err: incomplete type, value pair. A valid DN must contain 'C', 'ST' or 'S', and 'O' RDN attributes at a minimum, and follow RFC 4514 standard")
    );
    assert_eq!(
        e(json!(["x509.subject:C=US,C=IN"])),
        format!("{p}has trusted identity \"x509.subject:C=US,C=IN\" with invalid identity value: distinguished name (DN) \"C=US,C=IN\" has duplicate RDN attribute for \"C\", DN can only have unique RDN attributes")
    );
    assert_eq!(
        e(json!(["x509.subject:C=US,ST=WA"])),
        format!("{p}has trusted identity \"x509.subject:C=US,ST=WA\" with invalid identity value: distinguished name (DN) \"C=US,ST=WA\" has no mandatory RDN attribute for \"O\", it must contain 'C', 'ST' or 'S', and 'O' RDN attributes at a minimum")
    );
    assert_eq!(
        e(json!(["x509.subject:C=US,ST=WA,O=MyOrg", "x509.subject:C=US,ST=WA,O=MyOrg,X=Y"])),
        format!("{p}has overlapping x509 trustedIdentities, \"x509.subject:C=US,ST=WA,O=MyOrg\" overlaps with \"x509.subject:C=US,ST=WA,O=MyOrg,X=Y\"")
    );
    assert_eq!(
        e(json!(["x509.subject:C=US+ST=WA,O=MyOrg"])),
        format!("{p}has trusted identity \"x509.subject:C=US+ST=WA,O=MyOrg\" with invalid identity value: distinguished name (DN) \"C=US+ST=WA,O=MyOrg\" has multi-valued RDN attributes, remove multi-valued RDN attributes as they are not supported")
    );
    // The same DN twice overlaps.
    assert!(e(json!([
        "x509.subject:C=US,ST=WA,O=A",
        "x509.subject:C=US,ST=WA,O=A"
    ]))
    .contains("overlapping"));
    // Accepted: an unknown prefix, optional RDNs, RFC 4514 escapes and spaces.
    for ids in [
        json!(["unknown:my-trusted-identity"]),
        json!(["x509.subject:C=US,ST=WA,O=MyOrg,CustomRDN=CustomValue"]),
        json!([
            "x509.subject:C=US,ST=WA,O=MyOrg",
            "x509.subject:C=US,ST=WA,O=  My.  Org",
            "x509.subject:C=US,ST=WA,O=My \"special\" Org \\, \\; \\\\ others"
        ]),
        // Not overlapping by notation-go's rule, though one certificate could match both.
        json!([
            "x509.subject:C=US,ST=WA,O=A,OU=x",
            "x509.subject:C=US,ST=WA,O=A,CN=y"
        ]),
    ] {
        dummy_ok(json!({ "trustedIdentities": ids }));
    }
    let s =
        identity_statement(&["x509.subject:C=US,ST=WA,O=My \"special\" Org \\, \\; \\\\ others"]);
    let Identities::Subjects(dns) = &s.identities else {
        panic!()
    };
    assert_eq!(dns[0]["O"], "My \"special\" Org , ; \\ others");
    let s = identity_statement(&["unknown:my-trusted-identity"]);
    assert_eq!(s.identities, Identities::Subjects(vec![]));
}

/// notation-go `TestValidRegistryScopes` / `TestInvalidRegistryScopes`.
#[test]
fn registry_scope_format() {
    for scope in [
        "*",
        "example.com/rep",
        "example.com:8080/rep/rep2",
        "example.com/rep/subrep/subsub",
        "10.10.10.10:8080/rep/rep2",
        "domain/rep",
        "domain:1234/rep",
        "local/myocilayout",
        "a-b.c/x__y/a--b/c.d/e_f",
        "Host.Example/r",
    ] {
        dummy_ok(json!({ "registryScopes": [scope] }));
    }
    let ensure = "make sure it is a fully qualified repository without the scheme, protocol or tag. For example domain.com/my/repository or a local scope like local/myOCILayout";
    for scope in [
        "",
        "1:1",
        "a,b",
        "abcd",
        "1111",
        "1,2",
        "example.com/rep:tag",
        "example.com/rep/subrep/sub:latest",
        "example.com",
        "rep/rep2:latest",
        "repository",
        "10.10.10.10",
        "10.10.10.10:8080/rep/rep2:latest",
        "example.com/Rep",
        "-example.com/rep",
        "example.com:/rep",
        "example.com/rep/",
        "example.com//rep",
        "example.com/rep___x",
        "example.com/rep.-x",
        "example.com/rep@sha256:abc",
        "https://example.com/rep",
    ] {
        assert_eq!(
            dummy_err(json!({ "registryScopes": [scope] })),
            format!(
                "registry scope {} is not valid, {ensure}",
                dn::go_quote(scope)
            ),
            "{scope}"
        );
    }
    for scope in ["example.com/*", "*/", "example*/", "ex*test"] {
        assert_eq!(
            dummy_err(json!({ "registryScopes": [scope] })),
            format!(
                "registry scope {} with wild card(s) is not valid, {ensure}",
                dn::go_quote(scope)
            )
        );
    }
    assert_eq!(
        check_scope("localhost:5000\\test-repo").unwrap_err(),
        format!("registry scope \"localhost:5000\\\\test-repo\" is not valid, {ensure}")
    );
    let p = TrustPolicy::from_json(&dummy(json!({}))).unwrap();
    assert!(p
        .applicable("registry.acme-rockets.io/software/net-monitor")
        .unwrap_err()
        .0
        .starts_with(
            "artifact URI \"registry.acme-rockets.io/software/net-monitor\" could not be parsed"
        ));
    assert!(p
        .statement_for("REGISTRY.acme-rockets.io/software/Net-monitor")
        .is_none());
}

// === JSON as Go decodes it ===

#[test]
fn json_keys_fold_unknown_keys_are_ignored_and_nulls_are_zero() {
    let policy = |text: &str| TrustPolicy::from_json(text.as_bytes());
    // Keys in another case are the same fields, as encoding/json matches them; an override
    // spelled "Override" applies (authenticity enforced under audit).
    let p = policy(
        r#"{"Version":"1.0","TRUSTPOLICIES":[{"Name":"n","RegistryScopes":["*"],
            "SignatureVerification":{"Level":"audit","Override":{"authenticity":"enforce"},"VERIFYTIMESTAMP":"afterCertExpiry"},
            "truststores":["ca:s"],"TrustedIdentities":["*"],"comment":{"x":[1,2,null]}}],"extra":true}"#,
    )
    .unwrap();
    let s = &p.statements[0];
    assert_eq!((s.level, s.actions), (Level::Audit, actions(E, L, L, L)));
    assert_eq!(s.verify_timestamp, VerifyTimestamp::AfterCertExpiry);
    // Go's folding: U+017F (long s) folds to S, U+212A (Kelvin) to K.
    let p = policy(
        "{\"version\":\"1.0\",\"tru\u{17f}tPolicies\":[{\"name\":\"n\",\"registryScopes\":[\"*\"],\"signatureVerification\":{\"level\":\"strict\"},\"trustStores\":[\"ca:s\"],\"trustedIdentities\":[\"*\"]}]}",
    );
    assert!(p.is_ok(), "{p:?}");
    // A key given twice (even in two cases) is refused, not merged.
    let e = policy(r#"{"version":"1.0","Version":"1.0","trustPolicies":[]}"#).unwrap_err();
    assert!(
        e.0.starts_with("malformed trust policy.") && e.0.contains("more than once"),
        "{e}"
    );
    // Inside `override`, a map, the last value of a key wins, as in Go.
    let s = dummy_ok(json!({}));
    assert_eq!(s.actions, actions(E, E, E, E));
    let p = policy(
        r#"{"version":"1.0","trustPolicies":[{"name":"n","registryScopes":["*"],
            "signatureVerification":{"level":"strict","override":{"expiry":"bogus","expiry":"log"}},
            "trustStores":["ca:s"],"trustedIdentities":["*"]}]}"#,
    )
    .unwrap();
    assert_eq!(p.statements[0].actions, actions(E, E, L, E));
    // null: the zero value.
    let e = policy(r#"{"version":null,"trustPolicies":[]}"#).unwrap_err();
    assert_eq!(
        e.0,
        "oci trust policy document has empty version, version must be specified"
    );
    let e = policy(r#"{"version":"1.0","trustPolicies":[null]}"#).unwrap_err();
    assert_eq!(e.0, "oci trust policy: a trust policy statement is missing a name, every statement requires a name");
    assert_eq!(
        policy("null").unwrap_err().0,
        "oci trust policy document has empty version, version must be specified"
    );
    // Only the first JSON value is read.
    let mut text = String::from_utf8(dummy(json!({}))).unwrap();
    text.push_str(" trailing garbage {");
    assert!(policy(&text).is_ok());
    // Wrong types are malformed.
    for bad in [
        r#"{"version":1.0}"#,
        r#"{"version":"1.0","trustPolicies":{}}"#,
        r#"[]"#,
        r#"{"version":"1.0","trustPolicies":[{"name":["n"]}]}"#,
        r#"{"version":"1.0","trustPolicies":[{"signatureVerification":{"override":{"expiry":true}}}]}"#,
        r#"{"version":"1.0""#,
        "",
    ] {
        let e = policy(bad).unwrap_err();
        assert!(
            e.0.starts_with("malformed trust policy. To create a trust policy, see: "),
            "{bad}: {e}"
        );
    }
}

#[test]
fn bounds() {
    let huge = vec![b' '; usize::try_from(MAX_POLICY_SIZE).unwrap() + 1];
    assert!(err_of(&huge).contains("larger than"));
    let statements: Vec<Value> = (0..=MAX_STATEMENTS)
        .map(|i| json!({"name": format!("s{i}"), "registryScopes": [format!("r.io/s{i}")], "signatureVerification": {"level": "skip"}}))
        .collect();
    let doc = serde_json::to_vec(&json!({"version": "1.0", "trustPolicies": statements})).unwrap();
    assert!(err_of(&doc).contains("statements, more than the"));
    let ids: Vec<String> = (0..=MAX_IDENTITIES)
        .map(|i| format!("x509.subject:C=US,ST=WA,O=o{i}"))
        .collect();
    assert!(dummy_err(json!({ "trustedIdentities": ids }))
        .contains("trusted identities, more than the"));
    let ids: Vec<String> = (0..MAX_IDENTITIES)
        .map(|i| format!("x509.subject:C=US,ST=WA,O=o{i}"))
        .collect();
    let s = dummy_ok(json!({ "trustedIdentities": ids }));
    assert!(matches!(s.identities, Identities::Subjects(ref d) if d.len() == MAX_IDENTITIES));
}

// === loading ===

#[test]
fn load_reads_a_file_or_a_configuration_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let named = |name: &str| dummy(json!({ "name": name }));
    let e = TrustPolicy::load(dir).unwrap_err();
    assert!(e.0.starts_with("trust policy is not present. To create a trust policy, see: https://notaryproject.dev/docs/quickstart/#create-a-trust-policy"), "{e}");
    assert!(TrustPolicy::load(&dir.join("absent.json"))
        .unwrap_err()
        .0
        .starts_with("trust policy is not present."));
    // The older name alone.
    std::fs::write(dir.join(POLICY_FILE), named("old")).unwrap();
    assert_eq!(TrustPolicy::load(dir).unwrap().statements[0].name, "old");
    // Both: trustpolicy.oci.json.
    std::fs::write(dir.join(OCI_POLICY_FILE), named("oci")).unwrap();
    assert_eq!(TrustPolicy::load(dir).unwrap().statements[0].name, "oci");
    // A file given directly.
    assert_eq!(
        TrustPolicy::load(&dir.join(POLICY_FILE))
            .unwrap()
            .statements[0]
            .name,
        "old"
    );
    // An invalid trustpolicy.oci.json is an error, not a reason to read the other.
    std::fs::write(dir.join(OCI_POLICY_FILE), b"{").unwrap();
    assert!(TrustPolicy::load(dir)
        .unwrap_err()
        .0
        .starts_with("malformed trust policy."));
    // A symlinked policy file is refused, in a directory or given directly.
    std::fs::remove_file(dir.join(OCI_POLICY_FILE)).unwrap();
    std::fs::write(dir.join("real.json"), named("real")).unwrap();
    std::os::unix::fs::symlink(dir.join("real.json"), dir.join(OCI_POLICY_FILE)).unwrap();
    let e = TrustPolicy::load(dir).unwrap_err();
    assert!(
        e.0.starts_with("trust policy is not a regular file (symlinks are not supported)."),
        "{e}"
    );
    let e = TrustPolicy::load(&dir.join(OCI_POLICY_FILE)).unwrap_err();
    assert!(e.0.starts_with("trust policy is not a regular file"), "{e}");
    // A directory where the file should be.
    std::fs::remove_file(dir.join(OCI_POLICY_FILE)).unwrap();
    std::fs::create_dir(dir.join(OCI_POLICY_FILE)).unwrap();
    assert!(TrustPolicy::load(dir)
        .unwrap_err()
        .0
        .starts_with("trust policy is not a regular file"));
    // Too large.
    let big = tempfile::tempdir().unwrap();
    let mut bytes = named("big");
    bytes.resize(usize::try_from(MAX_POLICY_SIZE).unwrap() + 1, b' ');
    std::fs::write(big.path().join(POLICY_FILE), bytes).unwrap();
    assert!(TrustPolicy::load(big.path())
        .unwrap_err()
        .0
        .contains("is larger than 1048576 bytes"));
}
