//! Notation's own test data through `trustgate notation verify`: every case of the corpus's
//! README (`../shared/conformance/notation/README.md`) that a command line can run, by its id
//! there, with the verdict the README gives (notation's e2e suite, notation-go's tests):
//!
//! - N01–N36: notation's e2e OCI layouts (`--oci-layout`), fixed clocks where the README
//!   needs one (`--verify-at`);
//! - P01–P22: trust policy documents that are refused before any signature is read;
//! - G01–G14: notation-go's envelopes, detached (`--envelope --descriptor`);
//! - T01–T14: the timestamped envelopes and the timestamp tokens (T12–T14 put into a JWS's
//!   unprotected header, where a timestamp lives);
//! - S03–S08: trust stores that do not load.
//!
//! What no command line can reach stays with the library's tests: T15 (a token over other
//! signature bytes), the x509 vectors (C01–C11) and the CRL scenario (R01–R05), whose signing
//! key the corpus leaves out. trustgate runs offline here (`--offline`): where notation-go
//! fetches the TSA chain's revocation status, the rows say what trustgate does instead (the
//! statement's revocation action decides; see `trust::notation::verify`).
//!
//! Skips, with a message, when the corpus is absent.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use base64::Engine as _;
use serde_json::{json, Value};

const E2E: &str = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";
const TIMESTAMPED: &str = "sha256:53b0191218aed9a3c1f7c661736ac40cfc8eb928642348fd843ba3f0483c0c20";
const BAD_TIMESTAMP: &str =
    "sha256:f1da8cd70d6d851fa2313c8d6618f79508cf1e86877edf1c0bfe49a1b0a6467a";
const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const NET_MONITOR: &str = "registry.acme-rockets.io/software/net-monitor";

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/notation");
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    eprintln!(
        "skipped: no Notation conformance corpus at {}",
        dir.display()
    );
    None
}

/// What a case must give.
#[derive(Debug, Clone, Copy)]
enum Want {
    Pass,
    /// Exit 1, and stderr holds this text.
    Fail(&'static str),
}

/// One invocation of `trustgate notation verify`.
struct Case {
    id: String,
    args: Vec<String>,
    want: Want,
}

fn case(id: &str, args: &[&str], want: Want) -> Case {
    Case {
        id: id.to_owned(),
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        want,
    }
}

/// Runs every case; fails naming each one whose verdict or reason differs.
fn run(cases: Vec<Case>) {
    let mut wrong = Vec::new();
    for c in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_trustgate"))
            .args(["notation", "verify", "--offline"])
            .args(&c.args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = match c.want {
            Want::Pass => {
                out.status.success()
                    && (stdout.contains("Successfully verified") || stdout.contains("skip"))
            }
            Want::Fail(text) => out.status.code() == Some(1) && stderr.contains(text),
        };
        if !ok {
            wrong.push(format!(
                "{}: want {:?}, got exit {:?}\n  args: {}\n  stdout: {stdout}\n  stderr: {stderr}",
                c.id,
                c.want,
                out.status.code(),
                c.args.join(" ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    eprintln!("{} cases as the corpus says", cases.len());
}

fn s(p: PathBuf) -> String {
    p.to_str().unwrap().to_owned()
}

/// A notation configuration directory made for a case: the given certificates (DER or PEM
/// files, or DER bytes) as `truststore/x509/<kind>/<name>/`.
struct Config {
    dir: tempfile::TempDir,
}

impl Config {
    fn new() -> Config {
        Config {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self, kind: &str, name: &str) -> PathBuf {
        let dir = self
            .dir
            .path()
            .join("truststore/x509")
            .join(kind)
            .join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Copies every file of `from` into the store.
    fn copy(self, kind: &str, name: &str, from: &Path) -> Config {
        let to = self.store(kind, name);
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
        self
    }

    fn der(self, kind: &str, name: &str, file: &str, der: &[u8]) -> Config {
        std::fs::write(self.store(kind, name).join(file), der).unwrap();
        self
    }

    fn path(&self) -> String {
        s(self.dir.path().to_owned())
    }
}

/// The leaf (`x5c[0]`) of a JWS envelope, DER.
fn jws_leaf(envelope: &Path) -> Vec<u8> {
    let jws: Value = serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
    let leaf = jws["header"]["x5c"][0].as_str().unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(leaf)
        .unwrap()
}

/// The leaf of a COSE_Sign1 envelope (label 33, `x5chain`, in the unprotected header).
fn cose_leaf(envelope: &Path) -> Vec<u8> {
    let bytes = std::fs::read(envelope).unwrap();
    // Find the first DER certificate: `30 82 <len>` followed by a TBSCertificate `30 82`.
    let at = bytes
        .windows(6)
        .position(|w| w[0] == 0x30 && w[1] == 0x82 && w[4] == 0x30 && w[5] == 0x82)
        .unwrap();
    let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
    bytes[at..at + 4 + len].to_vec()
}

/// A policy file written for a case from a corpus policy edited by `edit`.
fn edited_policy(dir: &Path, from: &Path, edit: impl FnOnce(&mut Value)) -> String {
    let mut policy: Value = serde_json::from_slice(&std::fs::read(from).unwrap()).unwrap();
    edit(&mut policy);
    let path = dir.join(format!(
        "policy-{}.json",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&path, serde_json::to_vec(&policy).unwrap()).unwrap();
    s(path)
}

#[test]
fn n_the_e2e_layouts_verify_as_notations_e2e_suite_says() {
    let Some(c) = corpus() else { return };
    let l = |name: &str, digest: &str| {
        s(c.join("notation/test/e2e/testdata/registry/oci_layout")
            .join(name))
            + "@"
            + digest
    };
    let tp = |f: &str| {
        s(c.join("notation/test/e2e/testdata/config/trustpolicies")
            .join(f))
    };
    let cfg = |n: &str| s(c.join("assembled/configs").join(n));
    let scope = "localhost:5000/e2e";
    let layout = |id: &str, name: &str, policy: &str, config: &str, want: Want| {
        case(
            id,
            &[
                "--trust-policy",
                &tp(policy),
                "--trust-store",
                &cfg(config),
                "--oci-layout",
                "--scope",
                scope,
                &l(name, E2E),
            ],
            want,
        )
    };
    use Want::{Fail, Pass};
    const AUTH: &str = "the signature's certificate chain does not contain any trusted certificate";
    const IDENTITY: &str = "does not match the X.509 trusted identities";
    const EXPIRED: &str = "digital signature has expired";
    const CERT_EXPIRED: &str = "it was expired at \"Tue, 27 Jun 2023 06:10:00 +0000\"";
    let valid = "e2e-valid-signature";
    let invalid = "e2e-invalid-signature";
    let expired = "e2e-expired-signature";
    let cert = "e2e-with-expired-cert";
    let multi = "e2e-valid-multiple-signatures";
    let mut cases = vec![
        layout("N01", valid, "valid_trusted_identity_trustpolicy.json", "e2e", Pass),
        layout("N02", valid, "trustpolicy.json", "e2e", Pass),
        layout("N03", valid, "multiple_trusted_identity_trustpolicy.json", "e2e-multi", Pass),
        layout("N04", valid, "multiple_trust_store_trustpolicy.json", "e2e-multi", Pass),
        layout("N06", valid, "trustpolicy.json", "e2e-new", Fail(AUTH)),
        layout("N07", valid, "permissive_trustpolicy.json", "e2e-new", Fail(AUTH)),
        layout("N08", valid, "audit_trustpolicy.json", "e2e-new", Pass),
        layout("N09", valid, "override_strict_trustpolicy.json", "e2e-new", Pass),
        layout("N10", valid, "override_permissive_trustpolicy.json", "e2e-new", Pass),
        layout("N11", valid, "override_audit_trustpolicy.json", "e2e-new", Fail(AUTH)),
        layout("N12", valid, "invalid_trusted_identity_trustpolicy.json", "e2e", Fail(IDENTITY)),
        layout("N13", invalid, "trustpolicy.json", "e2e", Fail("integrity: signature envelope type \"application/vnd.oci.image.layer.v1.tar\" is not supported")),
        layout("N14", invalid, "permissive_trustpolicy.json", "e2e", Fail("integrity")),
        layout("N14", invalid, "audit_trustpolicy.json", "e2e", Fail("integrity")),
        layout("N15", invalid, "skip_trustpolicy.json", "e2e", Pass),
        layout("N16", expired, "trustpolicy.json", "e2e", Fail(EXPIRED)),
        layout("N17", expired, "permissive_trustpolicy.json", "e2e", Pass),
        layout("N18", expired, "audit_trustpolicy.json", "e2e", Pass),
        layout("N19", expired, "override_strict_trustpolicy.json", "e2e", Pass),
        layout("N20", expired, "override_permissive_trustpolicy.json", "e2e", Fail(EXPIRED)),
        layout("N21", expired, "override_audit_trustpolicy.json", "e2e", Fail(EXPIRED)),
        layout("N22", cert, "trustpolicy.json", "e2e-expired", Fail(CERT_EXPIRED)),
        layout("N23", cert, "permissive_trustpolicy.json", "e2e-expired", Pass),
        layout("N24", cert, "audit_trustpolicy.json", "e2e-expired", Pass),
        layout("N25", cert, "override_strict_trustpolicy.json", "e2e-expired", Pass),
        layout("N26", cert, "override_permissive_trustpolicy.json", "e2e-expired", Fail(CERT_EXPIRED)),
        layout("N26", cert, "override_audit_trustpolicy.json", "e2e-expired", Fail(CERT_EXPIRED)),
        layout("N27", cert, "trustpolicy.json", "e2e", Fail(AUTH)),
        layout("N28", multi, "trustpolicy.json", "e2e", Pass),
        layout("N29", multi, "trustpolicy.json", "e2e-new", Fail(AUTH)),
        layout("N30", "e2e", "trustpolicy.json", "e2e", Fail("no signature is associated with")),
        layout("N30", "e2e", "audit_trustpolicy.json", "e2e", Fail("no signature is associated with")),
        layout("N31", "e2e", "skip_trustpolicy.json", "e2e", Pass),
        // A fixed clock inside the window makes N16 and N22 pass (README §4).
        {
            let mut c = layout("N16@clock", expired, "trustpolicy.json", "e2e", Pass);
            c.args.extend(["--verify-at".into(), "2023-06-27T05:21:00Z".into()]);
            c
        },
        {
            let mut c = layout("N22@clock", cert, "trustpolicy.json", "e2e-expired", Pass);
            c.args.extend(["--verify-at".into(), "2023-06-27T00:00:00Z".into()]);
            c
        },
    ];
    // N05: the exact scope's statement is chosen over `*`; P22: a scope with a repository.
    for (id, policy, scope) in [
        (
            "N05",
            "multi_statements_with_wildcard_registry_scope_trustpolicy.json",
            "localhost:5000/test-repo9",
        ),
        (
            "P22",
            "registry_scope_trustpolicy.json",
            "localhost:5000/test-repo",
        ),
    ] {
        cases.push(case(
            id,
            &[
                "--trust-policy",
                &tp(policy),
                "--trust-store",
                &cfg("e2e"),
                "--oci-layout",
                "--scope",
                scope,
                &l(valid, E2E),
            ],
            Pass,
        ));
    }
    // The same layout by tag.
    cases.push(case(
        "N02:v1",
        &[
            "--trust-policy",
            &tp("trustpolicy.json"),
            "--trust-store",
            &cfg("e2e"),
            "--oci-layout",
            "--scope",
            scope,
            &(s(c
                .join("notation/test/e2e/testdata/registry/oci_layout")
                .join(valid))
                + ":v1"),
        ],
        Pass,
    ));

    // N32–N36: the timestamped layouts; their leaf (testcert7) is in no store, so N33–N36
    // anchor it in a store made for the case.
    let ts =
        c.join("notation/test/e2e/testdata/registry/oci_layout/e2e-with-timestamped-signature");
    let bad = c.join(
        "notation/test/e2e/testdata/registry/oci_layout/e2e-with-invalid-timestamped-signature",
    );
    let tsa = c.join("assembled/configs/e2e-tsa/truststore/x509/tsa/e2e");
    let leaf = jws_leaf(
        &ts.join("blobs/sha256/603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee"),
    );
    let anchored = Config::new()
        .der("ca", "e2e", "testcert7.der", &leaf)
        .copy("tsa", "e2e", &tsa);
    let ts_ref = s(ts.clone()) + "@" + TIMESTAMPED;
    let bad_ref = s(bad.clone()) + "@" + BAD_TIMESTAMP;
    let clock = "2025-01-21T10:00:00Z";
    cases.extend([
        case(
            "N32",
            &[
                "--trust-policy",
                &tp("timestamp_trustpolicy.json"),
                "--trust-store",
                &cfg("e2e-tsa"),
                "--oci-layout",
                "--scope",
                scope,
                &ts_ref,
            ],
            Fail(AUTH),
        ),
        case(
            "N33",
            &[
                "--trust-policy",
                &tp("timestamp_trustpolicy.json"),
                "--trust-store",
                &anchored.path(),
                "--oci-layout",
                "--scope",
                scope,
                &ts_ref,
            ],
            Fail(EXPIRED),
        ),
        case(
            "N34",
            &[
                "--trust-policy",
                &tp("trustpolicy.json"),
                "--trust-store",
                &anchored.path(),
                "--oci-layout",
                "--scope",
                scope,
                "--verify-at",
                clock,
                &ts_ref,
            ],
            Pass,
        ),
        case(
            "N35",
            &[
                "--trust-policy",
                &tp("timestamp_trustpolicy.json"),
                "--trust-store",
                &anchored.path(),
                "--oci-layout",
                "--scope",
                scope,
                "--verify-at",
                clock,
                &bad_ref,
            ],
            Fail("failed to parse timestamp countersignature"),
        ),
        case(
            "N36",
            &[
                "--trust-policy",
                &tp("trustpolicy.json"),
                "--trust-store",
                &anchored.path(),
                "--oci-layout",
                "--scope",
                scope,
                &bad_ref,
            ],
            Fail("authentic timestamp"),
        ),
    ]);
    run(cases);
}

#[test]
fn p_invalid_policy_documents_are_refused_with_notations_words() {
    let Some(c) = corpus() else { return };
    let tp = |f: &str| {
        s(c.join("notation/test/e2e/testdata/config/trustpolicies")
            .join(f))
    };
    let layout =
        s(c.join("notation/test/e2e/testdata/registry/oci_layout/e2e-valid-signature")) + "@" + E2E;
    let store = s(c.join("assembled/configs/e2e"));
    let rows: &[(&str, &str, &'static str)] = &[
        ("P01", "unset_trusted_identity_trustpolicy.json", "trust policy statement \"e2e\" is either missing trust stores or trusted identities, both must be specified"),
        ("P02", "unset_trust_store_trustpolicy.json", "trust policy statement \"e2e\" is either missing trust stores or trusted identities, both must be specified"),
        ("P03", "malformed_trusted_identity_trustpolicy.json", "has trusted identity \"x509.subject CN=e2e,O=Notary,L=Seattle,ST=WA,C=US\" missing separator"),
        ("P04", "empty_trusted_identity_trustpolicy.json", "trust policy statement \"e2e\" has an empty trusted identity"),
        ("P05", "overlapped_trusted_identity_trustpolicy.json", "has overlapping x509 trustedIdentities"),
        ("P06", "wildcard_plus_other_trusted_identity_trustpolicy.json", "uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values"),
        ("P07", "missing_organization_trusted_identity_trustpolicy.json", "has no mandatory RDN attribute for \"O\""),
        ("P08", "missing_state_trusted_identity_trustpolicy.json", "has no mandatory RDN attribute for \"ST\""),
        ("P09", "missing_country_trusted_identity_trustpolicy.json", "has no mandatory RDN attribute for \"C\""),
        ("P10", "invalid_trust_store_trustpolicy.json", "the trust store \"invalid_store\" of type \"ca\" does not exist"),
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
        ("P21", "invalid_registry_scope_trustpolicy.json", "artifact \"localhost:5000/e2e@sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9\" has no applicable oci trust policy statement"),
        ("P--", "invalid_format_trustpolicy.json", "trust policy"),
    ];
    let cases = rows
        .iter()
        .map(|(id, policy, message)| {
            case(
                id,
                &[
                    "--trust-policy",
                    &tp(policy),
                    "--trust-store",
                    &store,
                    "--oci-layout",
                    "--scope",
                    "localhost:5000/e2e",
                    &layout,
                ],
                Want::Fail(message),
            )
        })
        .collect();
    run(cases);
}

#[test]
fn g_notation_go_envelopes_verify_as_its_tests_say() {
    let Some(c) = corpus() else { return };
    let mock = |f: &str| s(c.join("notation-go/internal/mock/testdata").join(f));
    let p = |f: &str| c.join("assembled/policies").join(f);
    let ngo = s(c.join("notation-go/verifier/testdata"));
    let descriptor = |digest: &str, size: u64| {
        json!({"mediaType": DOCKER_V2, "digest": digest, "size": size}).to_string()
    };
    let default = descriptor(
        "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
        528,
    );
    let env = |id: &str, envelope: &str, policy: &str, want: Want| {
        case(
            id,
            &[
                "--trust-policy",
                policy,
                "--trust-store",
                &ngo,
                "--envelope",
                &mock(envelope),
                "--descriptor",
                &default,
                "--scope",
                NET_MONITOR,
            ],
            want,
        )
    };
    use Want::{Fail, Pass};
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for level in ["strict", "permissive", "audit"] {
        let dummy = s(p(&format!("ngo-dummy-{level}.json")));
        let store2 = s(p(&format!("ngo-dummy-store2-{level}.json")));
        let wrongid = s(p(&format!("ngo-dummy-wrongid-{level}.json")));
        let enforced = level != "audit";
        for scheme in ["ca", "sa"] {
            cases.push(env(
                "G01/G02",
                &format!("{scheme}_valid_sig_env.json"),
                &dummy,
                Pass,
            ));
            cases.push(env(
                "G03",
                &format!("{scheme}_invalid_sig_env.json"),
                &dummy,
                Fail("illegal base64 data at input byte 242"),
            ));
            cases.push(env(
                "G04/G05",
                &format!("{scheme}_expired_sig_env.json"),
                &dummy,
                if level == "strict" {
                    Fail("digital signature has expired on \"Fri, 29 Jul 2022 23:59:00 +0000\"")
                } else {
                    Pass
                },
            ));
            cases.push(env(
                "G06/G07",
                &format!("{scheme}_valid_sig_env.json"),
                &store2,
                if enforced { Fail("the signature's certificate chain does not contain any trusted certificate") } else { Pass },
            ));
            cases.push(env(
                "G08/G09",
                &format!("{scheme}_valid_sig_env.json"),
                &wrongid,
                if enforced { Fail("signing certificate from the digital signature does not match the X.509 trusted identities [map[\"C\":\"IN\"") } else { Pass },
            ));
        }
    }
    let strict = p("ngo-dummy-strict.json");
    let g10 = edited_policy(tmp.path(), &strict, |v| {
        v["trustPolicies"][0]["trustStores"] = json!(["ca:valid-trust-store-2", "signingAuthority"])
    });
    cases.push(env("G10", "ca_valid_sig_env.json", &g10, Fail("trust policy statement \"test-statement-name\" is missing separator in trust store value \"signingAuthority\"")));
    let g11a = edited_policy(tmp.path(), &strict, |v| {
        v["trustPolicies"][0]["trustedIdentities"] = json!(["x509.subject"])
    });
    let g11b = edited_policy(tmp.path(), &strict, |v| {
        v["trustPolicies"][0]["trustedIdentities"] = json!(["x509.subject:"])
    });
    cases.push(env(
        "G11",
        "ca_valid_sig_env.json",
        &g11a,
        Fail("missing separator"),
    ));
    cases.push(env(
        "G11",
        "ca_valid_sig_env.json",
        &g11b,
        Fail("without an identity value"),
    ));
    cases.push(env(
        "G12",
        "ca_plugin_sig_env.json",
        &s(strict.clone()),
        Fail("verification plugin"),
    ));
    cases.push(env(
        "G12",
        "sa_plugin_sig_env.json",
        &s(strict.clone()),
        Fail("verification plugin"),
    ));
    // G13: every plugin-version envelope fails without the plugin.
    let pluginver = descriptor(
        "sha256:fe7e9333395060c2f5e63cf36a38fba10176f183b4163a5794e081a480abba5f",
        942,
    );
    for entry in std::fs::read_dir(c.join("notation-go/internal/mock/testdata")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.contains("pluginver_sig_env") {
            cases.push(case(
                "G13",
                &[
                    "--trust-policy",
                    &s(p("ngo-pluginver.json")),
                    "--trust-store",
                    &ngo,
                    "--envelope",
                    &mock(&name),
                    "--descriptor",
                    &pluginver,
                    "--scope",
                    "localhost:5000/net-monitor",
                ],
                Fail("io.cncf.notary.plugin.unittest.mock"),
            ));
        }
    }
    // G14: user metadata against the payload's annotations, under audit.
    let metadata = descriptor(
        "sha256:5a07385af4e6b6af81b0ebfd435aedccdfa3507f0609c658209e1aba57159b2b",
        942,
    );
    let audit = s(p("ngo-dummy-audit.json"));
    for (wanted, want) in [
        (&[][..], Pass),
        (&["io.wabbit-networks.buildId=123"][..], Pass),
        (
            &[
                "io.wabbit-networks.buildId=123",
                "io.wabbit-networks.buildTime=1672944615",
            ][..],
            Pass,
        ),
        (
            &["io.wabbit-networks.buildId=321"][..],
            Fail("unable to find specified metadata in the signature"),
        ),
        (
            &[
                "io.wabbit-networks.buildId=123",
                "io.wabbit-networks.buildTime=1",
            ][..],
            Fail("unable to find specified metadata in the signature"),
        ),
    ] {
        let mut args = vec![
            "--trust-policy",
            &audit,
            "--trust-store",
            &ngo,
            "--descriptor",
            &metadata,
            "--scope",
            NET_MONITOR,
        ];
        let envelope = mock("sig_env_with_metadata.json");
        args.extend(["--envelope", &envelope]);
        for pair in wanted {
            args.extend(["-m", pair]);
        }
        cases.push(case("G14", &args, want));
    }
    run(cases);
}

#[test]
fn t_timestamped_envelopes_verify_as_notation_gos_timestamp_tests_say() {
    let Some(c) = corpus() else { return };
    let sig = |f: &str| {
        c.join("notation-go/verifier/testdata/timestamp/sigEnv")
            .join(f)
    };
    let p = |f: &str| c.join("assembled/policies").join(f);
    let ngo = c.join("notation-go/verifier/testdata");
    let descriptor = json!({"mediaType": DOCKER_V2, "digest": "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda", "size": 528}).to_string();
    let tmp = tempfile::tempdir().unwrap();
    let env = |id: &str, envelope: &str, policy: &str, store: &str, want: Want| {
        case(
            id,
            &[
                "--trust-policy",
                policy,
                "--trust-store",
                store,
                "--envelope",
                envelope,
                "--descriptor",
                &descriptor,
                "--scope",
                "localhost:5000/ts",
            ],
            want,
        )
    };
    use Want::{Fail, Pass};
    let store = s(ngo.clone());
    let always = p("ngo-ts-always.json");
    // trustgate checks the TSA chain's revocation under the revocation action: offline its
    // status is unknown, which `strict` enforces, and a `skip` override skips.
    let always_no_revocation = edited_policy(tmp.path(), &always, |v| {
        v["trustPolicies"][0]["signatureVerification"]["override"] = json!({"revocation": "skip"})
    });
    let no_tsa = s(p("ngo-ts-no-tsa.json"));
    let after = s(p("ngo-ts-after-cert-expiry.json"));
    // The testTSA leaves of the expired-certificate envelopes, anchored beside the store.
    let ca = ngo.join("truststore/x509/ca/valid-trust-store");
    let tsa = ngo.join("truststore/x509/tsa/test-timestamp");
    let expired_leaf = cose_leaf(&sig("coseExpiredWithTimestamp.sig"));
    let with_expired = Config::new()
        .copy("ca", "valid-trust-store", &ca)
        .copy("tsa", "test-timestamp", &tsa)
        .der("ca", "valid-trust-store", "testTSA.der", &expired_leaf);
    let after_leaf = cose_leaf(&sig("timestampAfterNotAfter.sig"));
    let with_after = Config::new()
        .copy("ca", "valid-trust-store", &ca)
        .copy("tsa", "test-timestamp", &tsa)
        .der("ca", "valid-trust-store", "testTSA-2001.der", &after_leaf);
    let mut cases = vec![
        env("T01", &s(sig("jwsWithTimestamp.sig")), &s(always.clone()), &store, Fail("revocation")),
        env("T01", &s(sig("coseWithTimestamp.sig")), &s(always.clone()), &store, Fail("revocation")),
        env("T01", &s(sig("jwsWithTimestamp.sig")), &always_no_revocation, &store, Pass),
        env("T01", &s(sig("coseWithTimestamp.sig")), &always_no_revocation, &store, Pass),
        env("T02", &s(sig("coseWithTimestamp.sig")), &after, &store, Pass),
        env("T02", &s(sig("jwsWithTimestamp.sig")), &after, &store, Pass),
        env("T04", &s(sig("coseExpiredWithTimestamp.sig")), &no_tsa, &with_expired.path(), Fail("verification time is after certificate \"CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US\" validity period, it was expired at \"Tue, 18 Jun 2024 07:30:31 +0000\"")),
        env("T05", &s(sig("jwsExpiredWithTimestamp.sig")), &always_no_revocation, &with_expired.path(), Pass),
        env("T05", &s(sig("coseExpiredWithTimestamp.sig")), &always_no_revocation, &with_expired.path(), Pass),
        env("T06", &s(sig("withoutTimestamp.sig")), &s(always.clone()), &store, Fail("no timestamp countersignature was found in the signature envelope")),
        env("T07", &s(sig("withoutTimestamp.sig")), &no_tsa, &store, Pass),
        env("T07", &s(sig("withoutTimestamp.sig")), &after, &store, Pass),
        env("T08", &s(sig("coseWithTimestamp.sig")), &s(p("ngo-ts-missing-store.json")), &store, Fail("the trust store \"does-not-exist\" of type \"tsa\" does not exist")),
        env("T09", &s(sig("coseWithTimestamp.sig")), &s(p("ngo-ts-mismatch.json")), &store, Fail("failed to verify the timestamp countersignature")),
        env("T10", &s(sig("timestampBeforeNotBefore.sig")), &s(always.clone()), &store, Fail("timestamp can be before certificate \"CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US\" validity period, it will be valid from \"Fri, 18 Sep 2099 11:54:34 +0000\"")),
        env("T11", &s(sig("timestampAfterNotAfter.sig")), &s(always.clone()), &store, Fail("the signature's certificate chain does not contain any trusted certificate")),
        env("T11", &s(sig("timestampAfterNotAfter.sig")), &s(always.clone()), &with_after.path(), Fail("timestamp can be after certificate \"CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US\" validity period, it was expired at \"Tue, 18 Sep 2001 11:54:34 +0000\"")),
    ];
    let t03 = edited_policy(tmp.path(), &always, |v| {
        v["trustPolicies"][0]["trustStores"] = json!(["ca:valid-trust-store", "tsa"])
    });
    cases.push(env(
        "T03",
        &s(sig("jwsWithTimestamp.sig")),
        &t03,
        &store,
        Fail("missing separator in trust store value \"tsa\""),
    ));
    // T12–T14: a token put into the unprotected header of the envelope without one.
    let jws: Value =
        serde_json::from_slice(&std::fs::read(sig("withoutTimestamp.sig")).unwrap()).unwrap();
    for (id, token, message) in [
        (
            "T12",
            "TimeStampTokenWithInvalideContentType.p7s",
            "failed to parse timestamp countersignature",
        ),
        (
            "T13",
            "TimeStampTokenWithInvalidTSTInfo.p7s",
            "authentic timestamp: failed to get the timestamp TSTInfo",
        ),
        (
            "T14",
            "TimeStampToken.p7s",
            "the timestamp's message imprint is not the hash of the signature",
        ),
    ] {
        let token = std::fs::read(
            c.join("notation-go/verifier/testdata/timestamp/countersignature")
                .join(token),
        )
        .unwrap();
        let mut jws = jws.clone();
        jws["header"]["io.cncf.notary.timestampSignature"] =
            json!(base64::engine::general_purpose::STANDARD.encode(token));
        let path = tmp.path().join(format!("{id}.sig"));
        std::fs::write(&path, serde_json::to_vec(&jws).unwrap()).unwrap();
        cases.push(env(id, &s(path), &s(always.clone()), &store, Fail(message)));
    }
    run(cases);
}

#[test]
fn s_trust_stores_that_do_not_load_fail_authenticity_naming_the_file() {
    let Some(c) = corpus() else { return };
    let p = |f: &str| c.join("assembled/policies").join(f);
    let ngo = s(c.join("notation-go/verifier/testdata"));
    let tmp = tempfile::tempdir().unwrap();
    let default = json!({"mediaType": DOCKER_V2, "digest": "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e", "size": 528}).to_string();
    let envelope = s(c.join("notation-go/internal/mock/testdata/ca_valid_sig_env.json"));
    let mut cases = Vec::new();
    for (id, store, message) in [
        ("S01", "ca:valid-trust-store", None),
        (
            "S03",
            "ca:trust-store-with-invalid-certs",
            Some("trust-store-with-invalid-certs"),
        ),
        ("S04", "ca:trust-store-with-leaf-certs", Some("non-ca.crt")),
        (
            "S05",
            "ca:trust-store-with-leaf-certs-in-single-file",
            Some("RootAndLeafCerts.crt"),
        ),
    ] {
        let policy = edited_policy(tmp.path(), &p("ngo-dummy-strict.json"), |v| {
            v["trustPolicies"][0]["trustStores"] = json!([store])
        });
        let want = message.map_or(Want::Pass, |m| {
            Want::Fail(Box::leak(m.to_owned().into_boxed_str()))
        });
        cases.push(case(
            id,
            &[
                "--trust-policy",
                &policy,
                "--trust-store",
                &ngo,
                "--envelope",
                &envelope,
                "--descriptor",
                &default,
                "--scope",
                NET_MONITOR,
            ],
            want,
        ));
    }
    let ts = json!({"mediaType": DOCKER_V2, "digest": "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda", "size": 528}).to_string();
    let stamped = s(c.join("notation-go/verifier/testdata/timestamp/sigEnv/coseWithTimestamp.sig"));
    for (id, store, message) in [
        ("S07", "tsa:test-nonCA", "is not a root CA certificate"),
        (
            "S08",
            "tsa:test-nonSelfIssued",
            "is not a root CA certificate",
        ),
    ] {
        let policy = edited_policy(tmp.path(), &p("ngo-ts-always.json"), |v| {
            v["trustPolicies"][0]["trustStores"] = json!(["ca:valid-trust-store", store])
        });
        cases.push(case(
            id,
            &[
                "--trust-policy",
                &policy,
                "--trust-store",
                &ngo,
                "--envelope",
                &stamped,
                "--descriptor",
                &ts,
                "--scope",
                NET_MONITOR,
            ],
            Want::Fail(message),
        ));
    }
    run(cases);
}
