//! Client authentication (`auth:`): real clients against `trustgate serve` with an htpasswd
//! file and the registry token flow, in front of a real `docker-registry`.
//!
//! `skopeo --creds` logs in through the token flow (a `401` Bearer challenge on `/v2/`, then
//! `/token` with Basic credentials); raw requests check the refusals one by one: no
//! credentials, a wrong password, an unknown user, an expired token, a token for another
//! repository, a forged token. Static bearer tokens are served as their principal. Tokens
//! carry only the repositories `auth.access` lets their principal pull, and an address that
//! keeps failing Basic logins is throttled.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use support::http::HttpResponse;
use support::oci::Image;
use support::proxy::Proxy;
use support::{run_bounded, Registry};

const REGISTRY: &str = "registry.test";
const PASSWORD: &str = "correct horse battery staple";
const CI_TOKEN: &str = "ci-static-token-0123456789";

/// One test's peers: an upstream with `open/app:v1` and `open/other:v1`, and a proxy with
/// `auth` (user `alice`, a static token for `ci`) allowing `open/**`.
struct Env {
    proxy: Proxy,
    image: Image,
    _registry: Registry,
    _files: tempfile::TempDir,
}

impl Env {
    fn start(token_ttl: &str) -> Env {
        Env::start_with(token_ttl, "")
    }

    /// Like [`Env::start`], with `more` appended to the `auth` section.
    fn start_with(token_ttl: &str, more: &str) -> Env {
        let registry = Registry::start();
        let image = registry.push_random("open/app", "v1", 1);
        registry.push_random("open/other", "v1", 1);
        let files = tempfile::tempdir().expect("tempdir");
        let htpasswd = files.path().join("htpasswd");
        let made = Command::new("htpasswd")
            .args(["-B", "-b", "-c"])
            .arg(&htpasswd)
            .args(["alice", PASSWORD])
            .output()
            .expect("run htpasswd (apache2-utils)");
        assert!(made.status.success(), "htpasswd: {made:?}");
        let key = files.path().join("token.key");
        fs::write(&key, support::oci::random_bytes(32)).expect("write token key");
        let ci = files.path().join("ci.token");
        fs::write(&ci, format!("{CI_TOKEN}\n")).expect("write ci token");
        let proxy = Proxy::start(&format!(
            r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/open/**", action: allow}}
auth:
  anonymous: false
  htpasswd_file: {}
  token_key_file: {}
  token_ttl: {token_ttl}
  tokens: [{{name: ci, file: {}}}]
{more}"#,
            registry.url(),
            path(&htpasswd),
            path(&key),
            path(&ci),
        ));
        Env {
            proxy,
            image,
            _registry: registry,
            _files: files,
        }
    }

    fn get(&self, path: &str, authorization: Option<&str>) -> HttpResponse {
        let mut headers = vec![("Accept", support::oci::ACCEPT_ALL)];
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        self.proxy.request("GET", path, &headers, b"")
    }

    /// A token from `/token` for `scope`, with Basic credentials.
    fn token(&self, user: &str, password: &str, scope: &str) -> HttpResponse {
        self.get(
            &format!("/token?service=trustgate&scope={scope}"),
            Some(&basic(user, password)),
        )
    }

    fn failures(&self, reason: &str) -> f64 {
        self.proxy
            .metric(&format!(
                "trustgate_auth_failures_total{{reason=\"{reason}\"}}"
            ))
            .unwrap_or(0.0)
    }

    fn skopeo(&self, args: &[&str], image: &str) -> Output {
        let mut cmd = Command::new("skopeo");
        cmd.args(args)
            .arg(format!("docker://{}/{image}", self.proxy.host_port()));
        run_bounded(&mut cmd, b"", "skopeo")
    }
}

fn path(p: &Path) -> String {
    serde_json::json!(p.to_str().expect("UTF-8 path")).to_string()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn expect_unauthorized(response: &HttpResponse, what: &str) -> String {
    assert_eq!(response.status, 401, "{what}: {}", response.summary());
    assert_eq!(
        response.error_code().as_deref(),
        Some("UNAUTHORIZED"),
        "{what}"
    );
    response
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no challenge"))
        .to_owned()
}

#[test]
fn skopeo_logs_in_through_the_token_flow_and_a_wrong_password_is_refused() {
    let env = Env::start("5m");
    // The challenge a client logs in with.
    let challenge = expect_unauthorized(&env.get("/v2/", None), "no credentials");
    let realm = format!(
        "Bearer realm=\"http://{}/token\",service=\"trustgate\"",
        env.proxy.host_port()
    );
    assert_eq!(challenge, realm);

    let creds = format!("alice:{PASSWORD}");
    let inspected = env.skopeo(
        &["inspect", "--raw", "--tls-verify=false", "--creds", &creds],
        "open/app:v1",
    );
    assert!(
        inspected.status.success(),
        "skopeo inspect --creds: {inspected:?}\n{}",
        env.proxy.log_tail(20)
    );
    assert_eq!(inspected.stdout, env.image.manifest.bytes);

    let out = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--src-tls-verify=false", "--src-creds", &creds])
        .arg(format!("docker://{}/open/app:v1", env.proxy.host_port()))
        .arg(format!("dir:{}", out.path().display()));
    let copied = run_bounded(&mut cmd, b"", "skopeo");
    assert!(
        copied.status.success(),
        "skopeo copy --src-creds: {copied:?}"
    );
    for blob in env.image.blobs() {
        let stored = fs::read(out.path().join(blob.hex())).expect("copied blob");
        assert_eq!(stored, blob.bytes, "blob {}", blob.hex());
    }

    let wrong = env.skopeo(
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "alice:wrong",
        ],
        "open/app:v1",
    );
    assert!(!wrong.status.success(), "a wrong password was accepted");
    let anonymous = env.skopeo(&["inspect", "--raw", "--tls-verify=false"], "open/app:v1");
    assert!(!anonymous.status.success(), "no credentials were accepted");
    assert!(env.failures("bad_password") >= 1.0);
    assert!(env.failures("missing_credentials") >= 1.0);
    // The password never reaches the log.
    assert!(!env.proxy.log().contains(PASSWORD));
}

#[test]
fn refusals_are_401_with_an_oci_body_and_a_challenge() {
    let env = Env::start("5m");
    let manifest = "/v2/open/app/manifests/v1";
    expect_unauthorized(
        &env.get(manifest, Some(&basic("alice", "nope"))),
        "bad password",
    );
    expect_unauthorized(
        &env.get(manifest, Some(&basic("bob", PASSWORD))),
        "unknown user",
    );
    expect_unauthorized(
        &env.token("alice", "nope", "repository:open/app:pull"),
        "token, bad password",
    );
    assert_eq!(env.failures("bad_password"), 2.0);
    assert_eq!(env.failures("unknown_user"), 1.0);

    // Basic credentials are accepted on the registry endpoints too.
    let served = env.get(manifest, Some(&basic("alice", PASSWORD)));
    assert_eq!(served.status, 200, "{}", served.summary());
    assert_eq!(served.body, env.image.manifest.bytes);

    // A token for open/app, not for open/other.
    let issued = env.token("alice", PASSWORD, "repository:open/app:pull");
    assert_eq!(issued.status, 200, "{}", issued.summary());
    let json = issued.json();
    let token = json["token"].as_str().expect("token").to_owned();
    assert_eq!(json["access_token"].as_str(), Some(token.as_str()));
    assert_eq!(json["expires_in"].as_u64(), Some(300));
    assert!(json["issued_at"].as_str().is_some());
    let bearer = format!("Bearer {token}");
    assert_eq!(env.get(manifest, Some(&bearer)).status, 200);
    let other = env.get("/v2/open/other/manifests/v1", Some(&bearer));
    let challenge = expect_unauthorized(&other, "other repository");
    assert!(
        challenge.contains("scope=\"repository:open/other:pull\"")
            && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(env.failures("insufficient_scope"), 1.0);

    // A token whose payload was changed keeps failing its signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        br#"{"iss":"trustgate","aud":"trustgate","sub":"root","iat":0,"nbf":0,"exp":9999999999}"#,
    );
    let forged = format!("Bearer {}", parts.join("."));
    expect_unauthorized(&env.get(manifest, Some(&forged)), "forged token");
    expect_unauthorized(
        &env.get(manifest, Some("Bearer not-a-token")),
        "unknown token",
    );
    assert_eq!(env.failures("bad_token"), 2.0);

    // The static CI token.
    let ci = env.get(manifest, Some(&format!("Bearer {CI_TOKEN}")));
    assert_eq!(ci.status, 200, "{}", ci.summary());
    assert!(!env.proxy.log().contains(CI_TOKEN));
}

#[test]
fn an_expired_token_is_refused() {
    let env = Env::start("1s");
    let issued = env.token("alice", PASSWORD, "repository:open/app:pull");
    assert_eq!(issued.status, 200, "{}", issued.summary());
    let token = issued.json()["token"].as_str().expect("token").to_owned();
    let bearer = format!("Bearer {token}");
    let manifest = "/v2/open/app/manifests/v1";
    std::thread::sleep(Duration::from_millis(2100));
    let challenge = expect_unauthorized(&env.get(manifest, Some(&bearer)), "expired token");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(env.failures("expired_token"), 1.0);
}

#[test]
fn podman_login_with_the_htpasswd_user() {
    if !support::clients::on_path("podman") {
        eprintln!("skipped: podman is not installed");
        return;
    }
    let env = Env::start("5m");
    let auth_file = tempfile::tempdir().expect("tempdir");
    let auth_json = auth_file.path().join("auth.json");
    let login = |password: &str| {
        let mut cmd = Command::new("podman");
        cmd.args(["login", "--tls-verify=false", "--authfile"])
            .arg(&auth_json)
            .args(["-u", "alice", "-p", password])
            .arg(env.proxy.host_port());
        run_bounded(&mut cmd, b"", "podman")
    };
    let ok = login(PASSWORD);
    assert!(ok.status.success(), "podman login: {ok:?}");
    let wrong = login("wrong");
    assert!(
        !wrong.status.success(),
        "podman login with a wrong password succeeded"
    );
}

#[test]
fn a_principal_pulling_a_repository_it_may_not_gets_403_denied() {
    let env = Env::start_with(
        "5m",
        &format!(
            "  groups: {{dev: [alice]}}\n  access:\n    \
             - {{groups: [dev], pull: [\"{REGISTRY}/open/app\"]}}\n    \
             - {{principals: [ci], pull: [\"{REGISTRY}/open/**\"]}}\n"
        ),
    );
    let alice = basic("alice", PASSWORD);
    let served = env.get("/v2/open/app/manifests/v1", Some(&alice));
    assert_eq!(served.status, 200, "{}", served.summary());
    for path in [
        "/v2/open/other/manifests/v1",
        "/v2/open/other/tags/list",
        &format!(
            "/v2/open/other/referrers/{}",
            support::oci::sha256_digest(&env.image.manifest.bytes)
        ),
    ] {
        let refused = env.get(path, Some(&alice));
        assert_eq!(refused.status, 403, "{path}: {}", refused.summary());
        assert_eq!(refused.error_code().as_deref(), Some("DENIED"), "{path}");
    }
    // A token asked for both repositories carries only the one alice may pull...
    let issued = env.token(
        "alice",
        PASSWORD,
        "repository:open/app:pull&scope=repository:open/other:pull",
    );
    assert_eq!(issued.status, 200, "{}", issued.summary());
    let token = issued.json()["token"].as_str().expect("token").to_owned();
    let payload = token.split('.').nth(1).expect("a JWT payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url payload"),
    )
    .expect("JSON claims");
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type": "repository", "name": "open/app", "actions": ["pull"]}]),
        "{claims}"
    );
    // ...and with it the other one is still the clear 403 DENIED, not a token round trip.
    let bearer = format!("Bearer {token}");
    assert_eq!(
        env.get("/v2/open/app/manifests/v1", Some(&bearer)).status,
        200
    );
    let refused = env.get("/v2/open/other/manifests/v1", Some(&bearer));
    assert_eq!(refused.status, 403, "{}", refused.summary());
    assert_eq!(refused.error_code().as_deref(), Some("DENIED"));
    assert_eq!(env.failures("insufficient_scope"), 0.0);

    let ci = format!("Bearer {CI_TOKEN}");
    let other = env.get("/v2/open/other/manifests/v1", Some(&ci));
    assert_eq!(other.status, 200, "{}", other.summary());
    let tags = env.get("/v2/open/other/tags/list", Some(&ci));
    assert_eq!(tags.status, 200, "{}", tags.summary());
    assert!(env.failures("access_denied") >= 3.0);

    let creds = format!("alice:{PASSWORD}");
    let refused = env.skopeo(
        &["inspect", "--raw", "--tls-verify=false", "--creds", &creds],
        "open/other:v1",
    );
    assert!(!refused.status.success(), "alice pulled open/other");
    assert!(
        support::clients::text(&refused).contains("denied"),
        "{}",
        support::clients::text(&refused)
    );
}

#[test]
fn a_principal_over_its_rate_limit_gets_429_with_retry_after() {
    let env = Env::start_with("5m", "  rate_limit: {requests_per_second: 1, burst: 2}\n");
    let ci = format!("Bearer {CI_TOKEN}");
    let manifest = "/v2/open/app/manifests/v1";
    for _ in 0..2 {
        let served = env.get(manifest, Some(&ci));
        assert_eq!(served.status, 200, "{}", served.summary());
    }
    let limited = env.get(manifest, Some(&ci));
    assert_eq!(limited.status, 429, "{}", limited.summary());
    assert_eq!(limited.error_code().as_deref(), Some("TOOMANYREQUESTS"));
    assert_eq!(limited.header("retry-after"), Some("1"));
    // Another principal has its own bucket.
    let alice = env.get(manifest, Some(&basic("alice", PASSWORD)));
    assert_eq!(alice.status, 200, "{}", alice.summary());
    assert_eq!(env.failures("rate_limited"), 1.0);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(env.get(manifest, Some(&ci)).status, 200);
}

#[test]
fn an_address_failing_logins_gets_429_with_retry_after() {
    // All test clients share 127.0.0.1: this shows the bucket fill up and what the client
    // sees, not that other addresses keep theirs (the unit tests do).
    let env = Env::start_with("5m", "  login_failures: {burst: 3, per_minute: 1}\n");
    let manifest = "/v2/open/app/manifests/v1";
    // Successes under the limit do not count.
    let alice = basic("alice", PASSWORD);
    for _ in 0..5 {
        assert_eq!(env.get(manifest, Some(&alice)).status, 200);
    }
    expect_unauthorized(
        &env.token("alice", "wrong", "repository:open/app:pull"),
        "token, bad password",
    );
    expect_unauthorized(&env.get(manifest, Some(&basic("bob", "x"))), "unknown user");
    expect_unauthorized(
        &env.get(manifest, Some(&basic("alice", "wrong"))),
        "bad password",
    );
    for (what, response) in [
        (
            "a fourth wrong password",
            env.get(manifest, Some(&basic("alice", "wrong"))),
        ),
        (
            "the right password, from the throttled address",
            env.token("alice", PASSWORD, "repository:open/app:pull"),
        ),
    ] {
        assert_eq!(response.status, 429, "{what}: {}", response.summary());
        assert_eq!(
            response.error_code().as_deref(),
            Some("TOOMANYREQUESTS"),
            "{what}"
        );
        let retry: u64 = response
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no Retry-After"));
        assert!((1..=60).contains(&retry), "{what}: Retry-After {retry}");
    }
    assert_eq!(env.failures("login_throttled"), 2.0);
    assert_eq!(env.failures("bad_password"), 2.0);
    assert_eq!(env.failures("unknown_user"), 1.0);
    // Tokens are not throttled.
    let ci = env.get(manifest, Some(&format!("Bearer {CI_TOKEN}")));
    assert_eq!(ci.status, 200, "{}", ci.summary());
}

#[test]
fn docker_login_and_pull_through_the_engine() {
    if let Err(reason) = support::docker_available() {
        eprintln!("skipped: no Docker engine: {reason}");
        return;
    }
    let env = Env::start("5m");
    let config = tempfile::tempdir().expect("tempdir for the docker client config");
    let docker = |args: &[&str], stdin: &[u8]| {
        let mut cmd = Command::new("docker");
        cmd.arg("--config").arg(config.path()).args(args);
        run_bounded(&mut cmd, stdin, "docker.io")
    };
    let host = env.proxy.host_port();
    let wrong = docker(
        &["login", &host, "-u", "alice", "--password-stdin"],
        b"wrong\n",
    );
    assert!(
        !wrong.status.success(),
        "docker login with a wrong password succeeded"
    );
    let login = docker(
        &["login", &host, "-u", "alice", "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(login.status.success(), "docker login: {login:?}");
    let reference = format!("{host}/open/app:v1");
    let _cleanup = RemoveImage(reference.clone());
    let pulled = docker(&["pull", &reference], b"");
    assert!(
        pulled.status.success(),
        "docker pull: {pulled:?}\n{}",
        env.proxy.log_tail(20)
    );
    assert!(env.failures("bad_password") >= 1.0);
}

/// Removes an image from the Docker engine on drop (pass or fail).
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["30", "docker", "rmi", "--force", &self.0])
            .output();
    }
}

#[test]
fn decision_records_name_the_principal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("decisions.jsonl");
    let env = Env::start_with(
        "5m",
        &format!(
            "  groups: {{dev: [alice]}}\n  access:\n    \
             - {{groups: [dev], pull: [\"{REGISTRY}/open/app\"]}}\n\
             records:\n  file: {{path: {}}}\n",
            path(&file)
        ),
    );
    let alice = basic("alice", PASSWORD);
    let served = env.get("/v2/open/app/manifests/v1", Some(&alice));
    assert_eq!(served.status, 200, "{}", served.summary());
    let refused = env.get("/v2/open/other/manifests/v1", Some(&alice));
    assert_eq!(refused.status, 403, "{}", refused.summary());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let records: Vec<serde_json::Value> = loop {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON record"))
            .collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "records: {text}\n{}",
            env.proxy.log_tail(20)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let seen: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["principal"].as_str().unwrap_or_default(),
                r["image"].as_str().unwrap_or_default(),
                r["verdict"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("alice", "registry.test/open/app:v1", "allow"),
            ("alice", "registry.test/open/other:v1", "deny"),
        ]
    );
}
