//! notation 1.3 itself, end to end: images on the real registry (distribution 2.8: no
//! referrers API, so notation writes the referrers tag `sha256-<hex>`), signed with the real
//! `notation` CLI (Debian's package, unpacked by `scripts/test` under `target/peers`) with its
//! test certificates, in JWS and COSE, with a short expiry, by an untrusted signer, for a
//! statement that skips verification or trusts another identity, or not signed at all.
//!
//! For each case `notation verify` against the registry is the reference answer; `trustgate
//! notation verify`, pointed at the same notation configuration directory, must give the
//! same one, and the proxy (a `verifier: notation` rule reading that directory unchanged)
//! must serve the image when it verifies and refuse it (403, naming the failed check) when
//! not. Skips, with a message, when the binary is not there.
//!
//! The tests share one registry, one proxy and one notation configuration (its keys, trust
//! store and trust policy) while any of them runs ([`Env::shared`]); each case has its own
//! repository.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use support::cosign::{self, REGISTRY};
use support::oci::{self, Image};
use support::proxy::Proxy;
use support::{run_bounded, Registry};

/// The signing key (`notation cert generate-test --default`) whose certificate the trust
/// policy trusts (trust store `ca:trusted`).
const TRUSTED: &str = "trusted";
/// A second test key, its certificate in its own store `ca:untrusted`, which no statement
/// names.
const UNTRUSTED: &str = "untrusted";
/// `notation sign --expiry` of the expiry case: long enough for both verifiers to accept
/// the signature first on a busy machine, short enough to wait out.
const EXPIRY: Duration = Duration::from_secs(8);
/// What each refusal names: the failed check, in notation's words.
const UNTRUSTED_CHAIN: &str =
    "authenticity: the signature's certificate chain does not contain any trusted certificate";
const OTHER_IDENTITY: &str = "authenticity: signing certificate from the digital signature does not match the X.509 trusted identities";
const EXPIRED: &str = "expiry: digital signature has expired on";
const UNSIGNED: &str = "no signature is associated with";

/// The unpacked notation binary, when `scripts/test` installed it.
fn notation_bin() -> Option<PathBuf> {
    support::peer_bin("notation", "notation 1.3")
}

/// The peers: the registry, a notation configuration directory (`XDG_CONFIG_HOME`) with the
/// two test keys and the trust policy, and the proxy with one `verifier: notation` rule for
/// `REGISTRY/**` reading that directory. Fields drop in order.
struct Env {
    proxy: Proxy,
    registry: Registry,
    bin: PathBuf,
    xdg: tempfile::TempDir,
}

/// The environment of the tests running now (see [`Env::shared`]).
static SHARED: Mutex<Weak<Env>> = Mutex::new(Weak::new());

impl Env {
    /// The environment the tests running now share, started when none runs: it stops when
    /// the last test holding it ends.
    fn shared() -> Option<Arc<Env>> {
        let bin = notation_bin()?;
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(env) = shared.upgrade() {
            return Some(env);
        }
        let env = Arc::new(Env::start(bin));
        *shared = Arc::downgrade(&env);
        Some(env)
    }

    fn start(bin: PathBuf) -> Env {
        let registry = Registry::start();
        let xdg = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(xdg.path().join("docker")).unwrap();
        let run = |args: &[&str]| {
            let out = notation(&bin, xdg.path(), args);
            assert!(out.status.success(), "notation {args:?}: {}", stderr(&out));
        };
        run(&["cert", "generate-test", "--default", TRUSTED]);
        run(&["cert", "generate-test", UNTRUSTED]);
        let policy = xdg.path().join("trustpolicy.json");
        std::fs::write(&policy, trust_policy(&registry.host_port()).to_string()).unwrap();
        run(&["policy", "import", "--force", policy.to_str().unwrap()]);

        let config = xdg.path().join("notation");
        let config = serde_json::json!(config.to_str().unwrap());
        let rule = format!(
            "    - match: \"{REGISTRY}/**\"\n      action: verify\n      verifier: notation\n      \
             notation: {{trust_policy: {config}, trust_store: {config}, revocation: {{fetch: false}}}}\n"
        );
        let proxy = Proxy::start(&cosign::config(&registry.url(), &[rule]));
        eprintln!(
            "notation_e2e: registry {}, proxy {}, notation configuration {}",
            registry.host_port(),
            proxy.host_port(),
            xdg.path().display()
        );
        Env {
            proxy,
            registry,
            bin,
            xdg,
        }
    }

    /// notation's configuration directory, as both trustgate and the proxy are given it.
    fn config_dir(&self) -> PathBuf {
        self.xdg.path().join("notation")
    }

    fn notation(&self, args: &[&str]) -> Output {
        notation(&self.bin, self.xdg.path(), args)
    }

    /// `repo@digest` at `host` (`host:port`), as notation names it.
    fn reference(host: &str, repo: &str, image: &Image) -> String {
        format!("{host}/{repo}@{}", image.manifest.digest)
    }

    /// `notation sign --key <key>` of `repo`'s `image` on the registry, with `extra` options.
    fn sign(&self, key: &str, repo: &str, image: &Image, extra: &[&str]) {
        let reference = Env::reference(&self.registry.host_port(), repo, image);
        let mut args = vec!["sign", "--insecure-registry", "--key", key];
        args.extend(extra);
        args.push(&reference);
        let out = self.notation(&args);
        assert!(out.status.success(), "notation {args:?}: {}", stderr(&out));
    }

    /// `notation verify` of `repo`'s `image` at `host`: the reference answer.
    fn notation_verifies(&self, host: &str, repo: &str, image: &Image) -> bool {
        let reference = Env::reference(host, repo, image);
        let out = self.notation(&["verify", "--insecure-registry", &reference]);
        eprintln!(
            "notation verify {reference}: {}\n{}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        out.status.success()
    }

    /// `trustgate notation verify` of `repo`'s `image` on the registry, with notation's
    /// configuration directory as trust policy and trust store.
    fn trustgate_verify(&self, repo: &str, image: &Image) -> Output {
        let config = self.config_dir();
        self.trustgate_verify_with(repo, image, &config, &config)
    }

    /// `trustgate notation verify --trust-policy <policy> --trust-store <store>`.
    fn trustgate_verify_with(
        &self,
        repo: &str,
        image: &Image,
        policy: &Path,
        store: &Path,
    ) -> Output {
        let reference = Env::reference(&self.registry.host_port(), repo, image);
        let out = support::trustgate([
            "notation".as_ref(),
            "verify".as_ref(),
            "--trust-policy".as_ref(),
            policy.as_os_str(),
            "--trust-store".as_ref(),
            store.as_os_str(),
            "--plain-http".as_ref(),
            reference.as_ref(),
        ]);
        eprintln!(
            "trustgate notation verify {reference}: {}\n{}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// Both verifiers accept `repo`'s `image`, and trustgate says so as notation does.
    fn expect_verified(&self, repo: &str, image: &Image) {
        let host = self.registry.host_port();
        assert!(
            self.notation_verifies(&host, repo, image),
            "notation verify refused {repo}"
        );
        let out = self.trustgate_verify(repo, image);
        assert!(
            out.status.success(),
            "trustgate refused what notation verified"
        );
        let reference = Env::reference(&host, repo, image);
        let said = format!("Successfully verified signature for {reference}");
        assert_eq!(stdout(&out).lines().next(), Some(said.as_str()));
    }

    /// Both verifiers refuse `repo`'s `image`, trustgate naming every one of `phrases`.
    fn expect_not_verified(&self, repo: &str, image: &Image, phrases: &[&str]) {
        let host = self.registry.host_port();
        assert!(
            !self.notation_verifies(&host, repo, image),
            "notation verify accepted {repo}"
        );
        let out = self.trustgate_verify(repo, image);
        assert!(
            !out.status.success(),
            "trustgate verified what notation refused"
        );
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        let reference = Env::reference(&host, repo, image);
        let said = stderr(&out);
        // The reference once, with the reason after it.
        assert!(
            said.starts_with("Error: signature verification failed"),
            "{said}"
        );
        assert_eq!(said.matches(reference.as_str()).count(), 1, "{said}");
        for phrase in phrases {
            assert!(said.contains(phrase), "`{phrase}` not in {said:?}");
        }
    }

    /// `skopeo copy` of `repo:tag` through the proxy: whether it pulled, and the manifest
    /// it wrote when it did.
    fn skopeo_pull(&self, repo: &str, tag: &str) -> Option<Vec<u8>> {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("img");
        let pulled = oci::skopeo_pull(&self.proxy.host_port(), &format!("{repo}:{tag}"), &dir);
        eprintln!(
            "skopeo copy {repo}:{tag} through the proxy: {}",
            pulled.status
        );
        pulled
            .status
            .success()
            .then(|| std::fs::read(dir.join("manifest.json")).unwrap())
    }
}

/// `notation ARGS` with `xdg` as `XDG_CONFIG_HOME` (keys, trust store, trust policy) and an
/// empty Docker configuration (no credentials of the machine's user).
fn notation(bin: &Path, xdg: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.env("XDG_CONFIG_HOME", xdg)
        .env("DOCKER_CONFIG", xdg.join("docker"))
        .args(args);
    run_bounded(&mut cmd, b"", "notation")
}

/// The trust policy of every case, each named scope both as notation sees it on the
/// registry (`127.0.0.1:<port>/<repo>`) and as the proxy does (`REGISTRY/<repo>`): the `*`
/// statement trusts the `trusted` key's certificate (any identity), `skip/app` is not
/// verified, and `identity/app` trusts that certificate only for a subject it does not have.
fn trust_policy(registry: &str) -> serde_json::Value {
    let scopes = |repo: &str| {
        serde_json::json!([format!("{registry}/{repo}"), format!("{REGISTRY}/{repo}")])
    };
    serde_json::json!({
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "apps",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": [format!("ca:{TRUSTED}")],
                "trustedIdentities": ["*"]
            },
            {
                "name": "skipped",
                "registryScopes": scopes("skip/app"),
                "signatureVerification": {"level": "skip"}
            },
            {
                "name": "identity",
                "registryScopes": scopes("identity/app"),
                "signatureVerification": {"level": "strict"},
                "trustStores": [format!("ca:{TRUSTED}")],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=someone-else"]
            }
        ]
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The signature listed in the referrers tag notation wrote for `image` on the registry
/// (distribution 2.8 has no referrers API), as the proxy serves it: the tag index and each
/// signature manifest it lists.
fn expect_signatures_served(env: &Env, repo: &str, image: &Image, count: usize) {
    let tag = format!("sha256-{}", image.manifest.hex());
    let r = env.proxy.pull(&format!("/v2/{repo}/manifests/{tag}"));
    assert_eq!(r.status, 200, "{tag}: {}", r.summary());
    let index = r.json();
    let listed = index["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), count, "{index}");
    for signature in &listed {
        assert_eq!(
            signature["artifactType"], "application/vnd.cncf.notary.signature",
            "{index}"
        );
        let digest = signature["digest"].as_str().unwrap();
        let r = env.proxy.pull(&format!("/v2/{repo}/manifests/{digest}"));
        assert_eq!(r.status, 200, "{digest}: {}", r.summary());
    }
}

#[test]
fn notation_jws_signed_image_is_served_and_verifies_through_the_proxy() {
    let Some(env) = Env::shared() else { return };
    let image = env.registry.push_random("jws/app", "v1", 2);
    env.sign(TRUSTED, "jws/app", &image, &[]);
    env.expect_verified("jws/app", &image);
    // The same, given the policy file notation 1.3 imported and the trust store itself.
    let config = env.config_dir();
    let out = env.trustgate_verify_with(
        "jws/app",
        &image,
        &config.join("trustpolicy.json"),
        &config.join("truststore"),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    env.proxy.expect_image_served("jws/app", "v1", &image);
    assert_eq!(
        env.skopeo_pull("jws/app", "v1"),
        Some(image.manifest.bytes.clone())
    );
    // The signature is served too, so notation itself verifies the image through the proxy
    // (its scope there, `127.0.0.1:<proxy>/jws/app`, falls to the `*` statement).
    expect_signatures_served(&env, "jws/app", &image, 1);
    assert!(
        env.notation_verifies(&env.proxy.host_port(), "jws/app", &image),
        "notation verify through the proxy:\n{}",
        env.proxy.log_tail(20)
    );
}

#[test]
fn notation_cose_signed_image_is_served() {
    let Some(env) = Env::shared() else { return };
    let image = env.registry.push_random("cose/app", "v1", 1);
    env.sign(TRUSTED, "cose/app", &image, &["--signature-format", "cose"]);
    env.expect_verified("cose/app", &image);

    env.proxy.expect_image_served("cose/app", "v1", &image);
    assert_eq!(
        env.skopeo_pull("cose/app", "v1"),
        Some(image.manifest.bytes.clone())
    );
    expect_signatures_served(&env, "cose/app", &image, 1);
    assert!(
        env.notation_verifies(&env.proxy.host_port(), "cose/app", &image),
        "notation verify through the proxy:\n{}",
        env.proxy.log_tail(20)
    );
}

#[test]
fn attack_expired_signature_is_refused() {
    let Some(env) = Env::shared() else { return };
    let image = env.registry.push_random("expiry/app", "v1", 1);
    let signed = Instant::now();
    let expiry = format!("{}s", EXPIRY.as_secs());
    env.sign(TRUSTED, "expiry/app", &image, &["--expiry", &expiry]);
    // Good until it expires (the proxy is not asked yet: it would keep that verdict 30 s).
    env.expect_verified("expiry/app", &image);
    assert!(
        signed.elapsed() < EXPIRY,
        "the checks before the expiry took longer than the expiry"
    );

    // The expiry is whole seconds after the signing time: wait it out, with a second to spare.
    std::thread::sleep((EXPIRY + Duration::from_secs(2)).saturating_sub(signed.elapsed()));
    env.expect_not_verified("expiry/app", &image, &[EXPIRED]);
    env.proxy.expect_refused(
        "expiry/app",
        "v1",
        &image,
        &[
            "no Notation signature verifies under trust policy statement \"apps\"",
            EXPIRED,
        ],
    );
    assert_eq!(env.skopeo_pull("expiry/app", "v1"), None);
}

#[test]
fn attack_untrusted_signer_alone_is_refused_and_with_a_trusted_one_verifies() {
    let Some(env) = Env::shared() else { return };
    let alone = env.registry.push_random("two/app", "alone", 1);
    env.sign(UNTRUSTED, "two/app", &alone, &[]);
    // The untrusted signature is listed first: the trusted one after it must still count.
    let both = env.registry.push_random("two/app", "both", 1);
    env.sign(UNTRUSTED, "two/app", &both, &[]);
    env.sign(TRUSTED, "two/app", &both, &["--signature-format", "cose"]);

    env.expect_not_verified("two/app", &alone, &[UNTRUSTED_CHAIN]);
    env.expect_verified("two/app", &both);

    env.proxy
        .expect_refused("two/app", "alone", &alone, &[UNTRUSTED_CHAIN]);
    env.proxy.expect_image_served("two/app", "both", &both);
    // Both are listed in the referrers tag; the one that verified is served.
    let tag = format!("sha256-{}", both.manifest.hex());
    let r = env.proxy.pull(&format!("/v2/two/app/manifests/{tag}"));
    assert_eq!(r.status, 200, "{tag}: {}", r.summary());
}

#[test]
fn notation_skip_statement_serves_an_unsigned_image() {
    let Some(env) = Env::shared() else { return };
    let image = env.registry.push_random("skip/app", "v1", 1);
    let host = env.registry.host_port();
    assert!(env.notation_verifies(&host, "skip/app", &image));
    let out = env.trustgate_verify("skip/app", &image);
    assert!(
        out.status.success(),
        "trustgate refused what notation skips"
    );
    let reference = Env::reference(&host, "skip/app", &image);
    let said = format!(
        "Trust policy statement \"skipped\" is configured to skip signature verification for {reference}"
    );
    assert_eq!(stdout(&out).lines().next(), Some(said.as_str()));

    env.proxy.expect_image_served("skip/app", "v1", &image);
    assert_eq!(
        env.skopeo_pull("skip/app", "v1"),
        Some(image.manifest.bytes.clone())
    );
}

#[test]
fn attack_trusted_certificate_with_another_identity_is_refused() {
    let Some(env) = Env::shared() else { return };
    let image = env.registry.push_random("identity/app", "v1", 1);
    env.sign(TRUSTED, "identity/app", &image, &[]);
    env.expect_not_verified(
        "identity/app",
        &image,
        &[OTHER_IDENTITY, r#""CN":"someone-else""#],
    );
    env.proxy.expect_refused(
        "identity/app",
        "v1",
        &image,
        &[
            "no Notation signature verifies under trust policy statement \"identity\"",
            OTHER_IDENTITY,
        ],
    );
}

#[test]
fn attack_unsigned_image_is_refused() {
    let Some(env) = Env::shared() else { return };
    let image = env.registry.push_random("unsigned/app", "v1", 1);
    env.expect_not_verified("unsigned/app", &image, &[UNSIGNED]);
    env.proxy
        .expect_refused("unsigned/app", "v1", &image, &[UNSIGNED]);
    assert_eq!(env.skopeo_pull("unsigned/app", "v1"), None);
}
