//! cosign 3 itself, end to end: images signed offline with the real `cosign` CLI (Debian's
//! package, unpacked by `scripts/test` under `target/peers`) on the real registry
//! (distribution 2.8: no referrers API, so cosign writes the `sha256-<hex>` referrers tag
//! index), pulled through the proxy. `cosign verify --key` against the registry is the
//! reference answer for each case. Skips, with a message, when the binary is not there.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use support::cosign;
use support::http;
use support::oci::{self, Image};
use support::proxy::Proxy;
use support::{run_bounded, Registry};

/// The statement predicate type of `cosign attest --type slsaprovenance`.
const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v0.2";
/// The statement predicate type of `cosign attest --type slsaprovenance1`.
const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// The attestation requirement of the `att/**` and `both/**` rules.
const PROVENANCE_RULE: &str = "      attestations:\n\
    \x20       - predicate_type: https://slsa.dev/provenance/v1\n\
    \x20         conditions:\n\
    \x20           - {path: buildDefinition.externalParameters.workflow.repository, equals: \"https://github.com/org/app\"}\n\
    \x20           - {path: runDetails.builder.id, regex: \"^https://github.com/actions/runner/\"}\n";
/// The same requirement as a CUE policy, for `cosign verify-attestation --policy`.
const PROVENANCE_CUE: &str = r#"predicateType: "https://slsa.dev/provenance/v1"
predicate: {
  buildDefinition: externalParameters: workflow: repository: "https://github.com/org/app"
  runDetails: builder: id: =~"^https://github.com/actions/runner/"
}
"#;
/// What cosign 3.1.1 lists a bundle as in the referrers tag index: its config's media type.
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The images are signed offline (`--tlog-upload=false`): no log entry, no timestamp, so
/// the rules accept the key alone, as `cosign verify --insecure-ignore-tlog` does.
const OFFLINE: &str = "      require_tlog: false\n";

/// The unpacked cosign binary, when `scripts/test` installed it.
fn cosign_bin() -> Option<PathBuf> {
    support::peer_bin("cosign", "cosign 3")
}

/// One test's peers: the registry, three cosign key pairs, and the proxy with a one-key
/// rule (`real/**`), a two-key threshold rule (`two/**`), a rule that takes a provenance
/// attestation of key `a` instead of a signature (`att/**`) and one that requires both a
/// signature and that attestation (`both/**`). Fields drop in order.
struct Env {
    proxy: Proxy,
    registry: Registry,
    bin: PathBuf,
    keys: tempfile::TempDir,
}

impl Env {
    fn start() -> Option<Env> {
        let bin = cosign_bin()?;
        let registry = Registry::start();
        let keys = tempfile::tempdir().unwrap();
        let env = |bin: &Path| {
            let mut cmd = Command::new(bin);
            cmd.current_dir(keys.path()).env("COSIGN_PASSWORD", "");
            cmd
        };
        for name in ["a", "b", "wrong"] {
            let out = run_bounded(
                env(&bin).args(["generate-key-pair", "--output-key-prefix", name]),
                b"",
                "cosign",
            );
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let public = |name: &str| {
            serde_json::json!(keys.path().join(format!("{name}.pub")).to_str().unwrap()).to_string()
        };
        let rules = [
            cosign::verify_rule(
                "real/**",
                &format!("      keys: [{}]\n{OFFLINE}", public("a")),
            ),
            cosign::verify_rule(
                "two/**",
                &format!(
                    "      keys: [{}, {}]\n      threshold: 2\n{OFFLINE}",
                    public("a"),
                    public("b")
                ),
            ),
            cosign::verify_rule(
                "att/**",
                &format!(
                    "      keys: [{}]\n      signatures: none\n{OFFLINE}{PROVENANCE_RULE}",
                    public("a")
                ),
            ),
            cosign::verify_rule(
                "both/**",
                &format!("      keys: [{}]\n{OFFLINE}{PROVENANCE_RULE}", public("a")),
            ),
        ];
        let proxy = Proxy::start(&cosign::config(&registry.url(), &rules));
        Some(Env {
            proxy,
            registry,
            bin,
            keys,
        })
    }

    fn cosign(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(self.keys.path())
            .env("COSIGN_PASSWORD", "")
            .args(args);
        run_bounded(&mut cmd, b"", "cosign")
    }

    /// `repo@digest` on the registry itself, as cosign names it.
    fn reference(&self, repo: &str, image: &Image) -> String {
        format!(
            "{}/{repo}@{}",
            self.registry.host_port(),
            image.manifest.digest
        )
    }

    /// `cosign sign --key <key>` (or `attest`, with `extra` arguments), offline.
    fn sign(&self, verb: &str, key: &str, repo: &str, image: &Image, extra: &[&str]) {
        let key = format!("{key}.key");
        let reference = self.reference(repo, image);
        let mut args = vec![verb, "--key", &key];
        args.extend([
            "--tlog-upload=false",
            "--use-signing-config=false",
            "--allow-insecure-registry",
            "--allow-http-registry",
            "-y",
        ]);
        args.extend(extra);
        args.push(&reference);
        let out = self.cosign(&args);
        assert!(out.status.success(), "cosign {verb}: {}", stderr(&out));
    }

    /// `cosign verify --key <key>` against the registry directly: the reference answer.
    fn cosign_verifies(&self, verb: &str, key: &str, repo: &str, image: &Image) -> bool {
        let key = format!("{key}.pub");
        let reference = self.reference(repo, image);
        let mut args = vec![verb, "--key", &key];
        if verb == "verify-attestation" {
            args.extend(["--type", "slsaprovenance"]);
        }
        args.extend([
            "--insecure-ignore-tlog",
            "--allow-insecure-registry",
            "--allow-http-registry",
            &reference,
        ]);
        let out = self.cosign(&args);
        eprintln!("cosign {verb} --key {key} {reference}: {}", out.status);
        out.status.success()
    }

    /// `cosign attest --type slsaprovenance1` by `key` with `predicate` (JSON), offline.
    fn attest_provenance(&self, key: &str, repo: &str, image: &Image, predicate: &Value) {
        let pred = self
            .keys
            .path()
            .join(format!("pred-{}.json", image.manifest.hex()));
        std::fs::write(&pred, predicate.to_string()).unwrap();
        let pred = pred.to_str().unwrap();
        self.sign(
            "attest",
            key,
            repo,
            image,
            &["--type", "slsaprovenance1", "--predicate", pred],
        );
    }

    /// `cosign verify-attestation --key <key> --type slsaprovenance1` at `registry`
    /// (`host:port`), with the CUE policy of [`PROVENANCE_CUE`] when `policy`: the reference
    /// answer for the attestation rules.
    fn provenance_verifies(
        &self,
        key: &str,
        registry: &str,
        repo: &str,
        image: &Image,
        policy: bool,
    ) -> bool {
        let key = format!("{key}.pub");
        let reference = format!("{registry}/{repo}@{}", image.manifest.digest);
        let cue = self.keys.path().join("provenance.cue");
        std::fs::write(&cue, PROVENANCE_CUE).unwrap();
        let mut args = vec![
            "verify-attestation",
            "--key",
            &key,
            "--type",
            "slsaprovenance1",
            "--insecure-ignore-tlog",
            "--allow-insecure-registry",
            "--allow-http-registry",
        ];
        if policy {
            args.extend(["--policy", cue.to_str().unwrap()]);
        }
        args.push(&reference);
        let out = self.cosign(&args);
        eprintln!(
            "cosign verify-attestation --key {key} (policy: {policy}) {reference}: {}\n{}",
            out.status,
            stderr(&out)
        );
        out.status.success()
    }

    /// The referrers tag index cosign wrote for `image` on the registry.
    fn fallback_index(&self, repo: &str, image: &Image) -> Value {
        let tag = format!("sha256-{}", image.manifest.hex());
        let r = self.registry_get(&format!("/v2/{repo}/manifests/{tag}"), INDEX);
        assert_eq!(r.status, 200, "{tag}: {}", r.summary());
        r.json()
    }

    fn registry_get(&self, path: &str, accept: &str) -> http::HttpResponse {
        let url = format!("{}{path}", self.registry.url());
        http::request("GET", &url, &[("Accept", accept)], b"").unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cosign3_bundle_signed_image_is_served_and_pulls_with_skopeo() {
    let Some(env) = Env::start() else { return };
    let image = env.registry.push_random("real/app", "v1", 2);
    env.sign("sign", "a", "real/app", &image, &[]);
    assert!(env.cosign_verifies("verify", "a", "real/app", &image));

    // What cosign wrote: the referrers tag index lists the bundle artifact under its
    // config's media type, not the bundle's (the discovery this test plays).
    let index = env.fallback_index("real/app", &image);
    eprintln!("referrers tag index cosign wrote: {index}");
    let listed = &index["manifests"][0];
    assert_eq!(listed["artifactType"], OCI_EMPTY, "{index}");

    env.proxy.expect_image_served("real/app", "v1", &image);
    let out = tempfile::tempdir().unwrap();
    let pulled = oci::skopeo_pull(
        &env.proxy.host_port(),
        "real/app:v1",
        &out.path().join("img"),
    );
    assert!(pulled.status.success(), "skopeo: {}", stderr(&pulled));
    let got = std::fs::read(out.path().join("img/manifest.json")).unwrap();
    assert_eq!(got, image.manifest.bytes);

    // The signature artifacts are served too, so a verifying client finds them.
    let tag = format!("sha256-{}", image.manifest.hex());
    let r = env.proxy.pull(&format!("/v2/real/app/manifests/{tag}"));
    assert_eq!(r.status, 200, "{}", r.summary());
    let artifact = listed["digest"].as_str().unwrap();
    let r = env
        .proxy
        .pull(&format!("/v2/real/app/manifests/{artifact}"));
    assert_eq!(r.status, 200, "{}", r.summary());
    // And cosign itself verifies the image through the proxy.
    let through = format!(
        "{}/real/app@{}",
        env.proxy.host_port(),
        image.manifest.digest
    );
    let out = env.cosign(&[
        "verify",
        "--key",
        "a.pub",
        "--insecure-ignore-tlog",
        "--allow-insecure-registry",
        "--allow-http-registry",
        &through,
    ]);
    assert!(
        out.status.success(),
        "cosign verify through the proxy: {}",
        stderr(&out)
    );
}

#[test]
fn cosign3_legacy_signed_image_is_served() {
    let Some(env) = Env::start() else { return };
    let image = env.registry.push_random("real/app", "v1", 1);
    env.sign(
        "sign",
        "a",
        "real/app",
        &image,
        &["--new-bundle-format=false"],
    );
    assert!(env.cosign_verifies("verify", "a", "real/app", &image));
    env.proxy.expect_image_served("real/app", "v1", &image);
}

#[test]
fn attack_one_signature_short_of_a_threshold_of_two_is_refused() {
    let Some(env) = Env::start() else { return };
    let both = env.registry.push_random("two/app", "both", 1);
    env.sign("sign", "a", "two/app", &both, &[]);
    env.sign("sign", "b", "two/app", &both, &[]);
    let one = env.registry.push_random("two/app", "one", 1);
    env.sign("sign", "a", "two/app", &one, &[]);
    // cosign has no threshold: the reference answer is which key each verifies under.
    assert!(env.cosign_verifies("verify", "a", "two/app", &both));
    assert!(env.cosign_verifies("verify", "b", "two/app", &both));
    assert!(env.cosign_verifies("verify", "a", "two/app", &one));
    assert!(!env.cosign_verifies("verify", "b", "two/app", &one));

    env.proxy.expect_image_served("two/app", "both", &both);
    env.proxy.expect_refused(
        "two/app",
        "one",
        &one,
        &["1 of the 2 distinct trusted cosign signers"],
    );
}

#[test]
fn attack_image_signed_with_another_key_is_refused() {
    let Some(env) = Env::start() else { return };
    let image = env.registry.push_random("real/app", "v1", 1);
    env.sign("sign", "wrong", "real/app", &image, &[]);
    assert!(env.cosign_verifies("verify", "wrong", "real/app", &image));
    assert!(!env.cosign_verifies("verify", "a", "real/app", &image));
    env.proxy.expect_refused(
        "real/app",
        "v1",
        &image,
        &["0 of the 1 distinct trusted cosign signers"],
    );
}

#[test]
fn attack_attestation_passed_off_as_a_signature_is_refused() {
    let Some(env) = Env::start() else { return };
    let image = env.registry.push_random("real/app", "v1", 1);
    let pred = env.keys.path().join("pred.json");
    std::fs::write(
        &pred,
        br#"{"builder":{"id":"https://ci.example/builder"},"buildType":"https://ci.example/build"}"#,
    )
    .unwrap();
    let pred = pred.to_str().unwrap();
    env.sign(
        "attest",
        "a",
        "real/app",
        &image,
        &["--type", "slsaprovenance", "--predicate", pred],
    );
    assert!(env.cosign_verifies("verify-attestation", "a", "real/app", &image));
    // cosign 3.1.1's `verify` accepts this image too (it takes the attestation's bundle for
    // a signature); an attestation is not a signature, so that answer is not followed here.
    let _ = env.cosign_verifies("verify", "a", "real/app", &image);

    // The statement in the bundle cosign stored is SLSA provenance.
    let index = env.fallback_index("real/app", &image);
    let artifact = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = env
        .registry_get(
            &format!("/v2/real/app/manifests/{artifact}"),
            oci::OCI_MANIFEST,
        )
        .json();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let bundle = env
        .registry_get(&format!("/v2/real/app/blobs/{layer}"), "*/*")
        .json();
    let payload = support::base64_decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap());
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["predicateType"], SLSA_PROVENANCE, "{statement}");

    env.proxy.expect_refused(
        "real/app",
        "v1",
        &image,
        &[
            "0 of the 1 distinct trusted cosign signers",
            SLSA_PROVENANCE,
        ],
    );
}

/// A SLSA v1 provenance predicate from `repository`'s GitHub workflow.
fn provenance(repository: &str) -> Value {
    serde_json::json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {"repository": repository, "path": ".github/workflows/release.yml",
                             "ref": "refs/heads/main"}
            }
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}
    })
}

#[test]
fn cosign3_attestation_alone_is_served_under_signatures_none_and_is_no_signature() {
    let Some(env) = Env::start() else { return };
    let registry = env.registry.host_port();
    let image = env.registry.push_random("att/app", "v1", 1);
    env.attest_provenance(
        "a",
        "att/app",
        &image,
        &provenance("https://github.com/org/app"),
    );
    assert!(env.provenance_verifies("a", &registry, "att/app", &image, true));
    env.proxy.expect_image_served("att/app", "v1", &image);
    // The attestation bundle counted, so it is served: cosign verifies it through the proxy.
    let proxy = env.proxy.host_port();
    assert!(
        env.provenance_verifies("a", &proxy, "att/app", &image, true),
        "cosign verify-attestation through the proxy"
    );

    // The same attestation under a rule that requires a signature: not one.
    image.push(&env.registry, "real/app", "v1");
    env.attest_provenance(
        "a",
        "real/app",
        &image,
        &provenance("https://github.com/org/app"),
    );
    assert!(env.provenance_verifies("a", &registry, "real/app", &image, true));
    env.proxy.expect_refused(
        "real/app",
        "v1",
        &image,
        &[
            "0 of the 1 distinct trusted cosign signers",
            "an attestation (\"https://slsa.dev/provenance/v1\") is not a signature",
        ],
    );
}

#[test]
fn cosign3_rule_requiring_signature_and_attestation_needs_both() {
    let Some(env) = Env::start() else { return };
    let registry = env.registry.host_port();
    let both = env.registry.push_random("both/app", "both", 1);
    env.sign("sign", "a", "both/app", &both, &[]);
    env.attest_provenance(
        "a",
        "both/app",
        &both,
        &provenance("https://github.com/org/app"),
    );
    let signed = env.registry.push_random("both/app", "signed", 1);
    env.sign("sign", "a", "both/app", &signed, &[]);
    let attested = env.registry.push_random("both/app", "attested", 1);
    env.attest_provenance(
        "a",
        "both/app",
        &attested,
        &provenance("https://github.com/org/app"),
    );

    assert!(env.cosign_verifies("verify", "a", "both/app", &both));
    assert!(env.provenance_verifies("a", &registry, "both/app", &both, true));
    assert!(env.cosign_verifies("verify", "a", "both/app", &signed));
    assert!(!env.provenance_verifies("a", &registry, "both/app", &signed, false));
    assert!(env.provenance_verifies("a", &registry, "both/app", &attested, true));

    env.proxy.expect_image_served("both/app", "both", &both);
    env.proxy.expect_refused(
        "both/app",
        "signed",
        &signed,
        &[&format!(
            "attestation 0 requires a {SLSA_PROVENANCE_V1} attestation by a trusted signer, and there is none"
        )],
    );
    env.proxy.expect_refused(
        "both/app",
        "attested",
        &attested,
        &["0 of the 1 distinct trusted cosign signers"],
    );
    // Both bundles of the accepted image are its referrers through the proxy.
    let r = env
        .proxy
        .pull(&format!("/v2/both/app/referrers/{}", both.manifest.digest));
    assert_eq!(r.status, 200, "{}", r.summary());
    let listed = r.json()["manifests"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 2, "{}", r.summary());
}

#[test]
fn attack_attestation_whose_field_does_not_match_is_refused_naming_the_condition() {
    let Some(env) = Env::start() else { return };
    let registry = env.registry.host_port();
    let image = env.registry.push_random("att/app", "v1", 1);
    env.attest_provenance(
        "a",
        "att/app",
        &image,
        &provenance("https://github.com/evil/app"),
    );
    // Signed by the right key, but the policy's field test fails.
    assert!(env.provenance_verifies("a", &registry, "att/app", &image, false));
    assert!(!env.provenance_verifies("a", &registry, "att/app", &image, true));
    env.proxy.expect_refused(
        "att/app",
        "v1",
        &image,
        &[
            &format!("attestation 0 ({SLSA_PROVENANCE_V1}) is not met"),
            "condition 0 (`buildDefinition.externalParameters.workflow.repository` equals \"https://github.com/org/app\")",
            "the predicate has \"https://github.com/evil/app\"",
        ],
    );
}

#[test]
fn attack_attestation_by_another_key_is_refused() {
    let Some(env) = Env::start() else { return };
    let registry = env.registry.host_port();
    let image = env.registry.push_random("att/app", "v1", 1);
    env.attest_provenance(
        "wrong",
        "att/app",
        &image,
        &provenance("https://github.com/org/app"),
    );
    assert!(env.provenance_verifies("wrong", &registry, "att/app", &image, true));
    assert!(!env.provenance_verifies("a", &registry, "att/app", &image, true));
    env.proxy.expect_refused(
        "att/app",
        "v1",
        &image,
        &[&format!(
            "attestation 0 requires a {SLSA_PROVENANCE_V1} attestation by a trusted signer, and there is none"
        )],
    );
}
