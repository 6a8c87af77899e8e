//! The decision API (`GET /v1/verdict` on the admin listener) and what refusals tell
//! HEAD-only clients (`Warning: 299`), against a real registry with cosign signatures made by
//! the test: the verdict is the one a pull gets, by the same code path. And `audit` records
//! what `verify` would do, never a refusal where `verify` serves.

mod support;

use serde_json::Value;
use support::cosign::{self, Key, REGISTRY};
use support::http;
use support::proxy::Proxy;
use support::Registry;

struct Env {
    proxy: Proxy,
    registry: Registry,
    key: Key,
    _keys: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let registry = Registry::start();
        let keys = tempfile::tempdir().unwrap();
        let key = Key::generate(keys.path(), "a");
        let trust = cosign::offline_key_trust(&key);
        let rules = [
            cosign::verify_rule("signed/**", &trust),
            format!(
                "    - match: \"{REGISTRY}/audited/**\"\n      action: audit\n      verifier: cosign\n{trust}"
            ),
        ];
        let proxy = Proxy::start(&cosign::config(&registry.url(), &rules));
        Env {
            proxy,
            registry,
            key,
            _keys: keys,
        }
    }

    fn sign(&self, repo: &str, digest: &str) {
        cosign::sign_digest(&self.registry, &self.key, repo, digest);
    }

    fn verdict(&self, image: &str) -> (u16, Value) {
        let url = format!(
            "{}/v1/verdict?image={}",
            self.proxy.admin_url(),
            image.replace('@', "%40")
        );
        let r = http::request("GET", &url, &[], b"").unwrap();
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }
}

#[test]
fn verdicts_are_the_pulls_decisions() {
    let env = Env::start();
    let signed = env.registry.push_random("signed/app", "v1", 1);
    env.sign("signed/app", &signed.manifest.digest);
    let unsigned = env.registry.push_random("signed/other", "v1", 1);

    // Signed, by digest and by tag: allowed, naming the rule, verifier and digest.
    for image in [
        format!("{REGISTRY}/signed/app@{}", signed.manifest.digest),
        format!("{REGISTRY}/signed/app:v1"),
    ] {
        let (status, v) = env.verdict(&image);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["verdict"], "allow", "{image}: {v}");
        assert_eq!(v["digest"], signed.manifest.digest.as_str(), "{v}");
        assert_eq!(v["rule"], format!("{REGISTRY}/signed/**"), "{v}");
        assert_eq!(v["action"], "verify", "{v}");
        assert_eq!(v["verifier"], "cosign", "{v}");
    }
    // Unsigned: refused with the pull's reason.
    let (status, v) = env.verdict(&format!(
        "{REGISTRY}/signed/other@{}",
        unsigned.manifest.digest
    ));
    assert_eq!(
        (status, v["verdict"].as_str()),
        (200, Some("refuse")),
        "{v}"
    );
    let pulled = env.proxy.pull(&format!(
        "/v2/signed/other/manifests/{}",
        unsigned.manifest.digest
    ));
    assert_eq!(pulled.status, 403);
    let message = pulled.error_message().unwrap();
    assert!(
        message.contains(v["reason"].as_str().unwrap()),
        "{message} / {v}"
    );
    // No rule: the default denies; an unmirrored registry is not served either.
    let (_, v) = env.verdict(&format!("{REGISTRY}/elsewhere/app:v1"));
    assert_eq!(v["verdict"], "refuse", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("denied by policy"),
        "{v}"
    );
    let (_, v) = env.verdict("ghcr.io/org/app:v1");
    assert_eq!(v["verdict"], "refuse", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("not configured"),
        "{v}"
    );
    // Malformed questions are 400s, not verdicts.
    for bad in [
        "",
        "app:v1",
        "registry.test/UPPER:v1",
        "registry.test/app@sha256:00",
    ] {
        let (status, v) = env.verdict(bad);
        assert_eq!(status, 400, "{bad:?}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let url = format!("{}/v1/verdict", env.proxy.admin_url());
    assert_eq!(http::request("GET", &url, &[], b"").unwrap().status, 400);
    assert_eq!(http::request("POST", &url, &[], b"").unwrap().status, 405);
}

#[test]
fn refusals_carry_their_reason_in_a_warning_header() {
    let env = Env::start();
    env.registry.push_random("signed/other", "v1", 1);
    for method in ["GET", "HEAD"] {
        let r = env.proxy.request(
            method,
            "/v2/signed/other/manifests/v1",
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
            b"",
        );
        assert_eq!(r.status, 403, "{method}");
        let warning = r.header("warning").unwrap_or_default().to_owned();
        assert!(warning.starts_with("299 - \""), "{method}: {warning:?}");
        assert!(warning.contains("signed/other"), "{method}: {warning:?}");
    }
    // A policy denial too; served content has none.
    let r = env.proxy.pull("/v2/elsewhere/app/manifests/v1");
    assert_eq!(r.status, 403);
    assert!(r.header("warning").unwrap().contains("denied by policy"));
    let signed = env.registry.push_random("signed/app", "v1", 1);
    env.sign("signed/app", &signed.manifest.digest);
    let r = env.proxy.pull("/v2/signed/app/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("warning"), None);
}

#[test]
fn audit_records_what_verify_would_do() {
    let env = Env::start();
    // cosign signs digests, not tags: a tag moved to unsigned content is refused by verify,
    // and audit says so (tests/proxy_e2e.rs has the Notary v1 case, where verify serves the
    // signed original and audit says that).
    let original = env.registry.push_random("audited/app", "v1", 1);
    env.sign("audited/app", &original.manifest.digest);
    let (_, v) = env.verdict(&format!("{REGISTRY}/audited/app:v1"));
    assert_eq!(
        (v["verdict"].as_str(), v["action"].as_str()),
        (Some("allow"), Some("audit")),
        "{v}"
    );
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("verify would serve") && reason.contains(&original.manifest.digest),
        "{v}"
    );
    let moved = env.registry.push_random("audited/app", "v2", 1);
    env.proxy
        .expect_served("/v2/audited/app/manifests/v2", &moved.manifest.bytes);
    let (_, v) = env.verdict(&format!("{REGISTRY}/audited/app@{}", moved.manifest.digest));
    assert_eq!(v["verdict"], "allow", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("verify would refuse"),
        "{v}"
    );
}

/// `trustgate check` prints the decision API's verdict: for cosign rules too, whose
/// signatures it reads from the registry.
#[test]
fn check_gives_the_apis_verdict() {
    let env = Env::start();
    let signed = env.registry.push_random("signed/app", "v1", 1);
    env.sign("signed/app", &signed.manifest.digest);
    env.registry.push_random("signed/other", "v1", 1);
    let config = env.proxy.config_path().to_str().unwrap().to_owned();
    let check = |image: &str| support::trustgate(["check", "--config", &config, image]);
    let out = check(&format!("{REGISTRY}/signed/app:v1"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&signed.manifest.digest) && text.contains("verifier: cosign"),
        "{text}"
    );
    let out = check("signed/other:v1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("refused") && text.contains("no cosign signature"),
        "{text}"
    );
}
