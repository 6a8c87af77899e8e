//! mTLS client certificates (`auth.client_certificates`): real clients against
//! `trustgate serve` on TLS, in front of a real `docker-registry`.
//!
//! A throw-away openssl CA issues the server certificate and the client certificates; a
//! second CA issues one the proxy must not accept. `curl --cert` checks the answers one by
//! one: a mapped subject is its principal (and `auth.access` applies to it), an unmapped one
//! is refused with `401`, a certificate from another CA fails the handshake, and without a
//! certificate the static token still works unless `required: true`. `skopeo --cert-dir`
//! pulls with a certificate as a registry client does.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::proxy::Proxy;
use support::{run_bounded, Registry, TlsFiles};

const REGISTRY: &str = "registry.test";
const CI_TOKEN: &str = "ci-static-token-0123456789";

/// A client key and certificate.
struct ClientCert {
    cert: PathBuf,
    key: PathBuf,
}

/// One test's peers: an upstream with `open/app:v1` and `open/other:v1`; a TLS proxy whose
/// client CA is `tls.ca_cert`, mapping `CN=ci-runner,O=Example` to `runner` (group
/// `builders`, which may pull `open/app` only), with a static token for `ci`.
struct Env {
    proxy: Proxy,
    tls: TlsFiles,
    dir: tempfile::TempDir,
    _registry: Registry,
}

impl Env {
    fn start(required: bool) -> Env {
        let registry = Registry::start();
        registry.push_random("open/app", "v1", 1);
        registry.push_random("open/other", "v1", 1);
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = TlsFiles::generate(dir.path());
        let token = dir.path().join("ci.token");
        fs::write(&token, format!("{CI_TOKEN}\n")).expect("write ci token");
        let key = dir.path().join("token.key");
        fs::write(&key, support::oci::random_bytes(32)).expect("write token key");
        let proxy = Proxy::start_with_server(
            &format!(
                "  tls: {{cert_file: {}, key_file: {}}}\n",
                path(&tls.server_cert),
                path(&tls.server_key)
            ),
            &format!(
                r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/open/**", action: allow}}
auth:
  anonymous: false
  token_key_file: {}
  tokens: [{{name: ci, file: {}}}]
  access:
    - {{groups: [builders], pull: ["{REGISTRY}/open/app"]}}
    - {{principals: [ci], pull: ["{REGISTRY}/open/**"]}}
  client_certificates:
    ca_file: {}
    required: {required}
    principals:
      - {{subject: "CN=ci-runner,O=Example", name: runner, groups: [builders]}}
"#,
                registry.url(),
                path(&key),
                path(&token),
                path(&tls.ca_cert),
            ),
        );
        Env {
            proxy,
            tls,
            dir,
            _registry: registry,
        }
    }

    /// A client certificate for `subject` (openssl `-subj` form) issued by this test's CA.
    fn client(&self, name: &str, subject: &str) -> ClientCert {
        issue_client(self.dir.path(), name, subject)
    }

    /// `GET path` with curl, trusting the test CA: the HTTP status, or `None` when no
    /// response came (the handshake failed).
    fn curl(&self, path: &str, cert: Option<&ClientCert>, token: Option<&str>) -> Option<u16> {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
        ])
        .arg("--cacert")
        .arg(&self.tls.ca_cert)
        .args(["-H", &format!("Accept: {}", support::oci::ACCEPT_ALL)]);
        if let Some(c) = cert {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        cmd.arg(format!("https://{}{path}", self.proxy.host_port()));
        let out = run_bounded(&mut cmd, b"", "curl");
        let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        (out.status.success() && code != 0).then_some(code)
    }

    fn failures(&self, reason: &str) -> f64 {
        self.proxy
            .metric(&format!(
                "trustgate_auth_failures_total{{reason=\"{reason}\"}}"
            ))
            .unwrap_or(0.0)
    }
}

fn path(p: &Path) -> String {
    serde_json::json!(p.to_str().expect("UTF-8 path")).to_string()
}

/// A `clientAuth` certificate for `subject` in `dir`, issued by the CA there.
fn issue_client(dir: &Path, name: &str, subject: &str) -> ClientCert {
    let (cert, key) = TlsFiles::issue_client(dir, name, subject);
    ClientCert { cert, key }
}

const APP: &str = "/v2/open/app/manifests/v1";
const OTHER: &str = "/v2/open/other/manifests/v1";

#[test]
fn client_certificates_map_subjects_to_principals() {
    let env = Env::start(false);
    let runner = env.client("runner", "/O=Example/CN=ci-runner");

    // A mapped certificate is its principal, and the principal's access rules apply.
    assert_eq!(env.curl("/v2/", Some(&runner), None), Some(200));
    assert_eq!(env.curl(APP, Some(&runner), None), Some(200));
    assert_eq!(env.curl(OTHER, Some(&runner), None), Some(403));
    assert_eq!(env.failures("access_denied"), 1.0);
    // The certificate wins over a header: the token's wider access does not apply.
    assert_eq!(env.curl(OTHER, Some(&runner), Some(CI_TOKEN)), Some(403));

    // A verified certificate no principal names: 401, whatever the header says.
    let stranger = env.client("stranger", "/O=Example/CN=stranger");
    assert_eq!(env.curl(APP, Some(&stranger), None), Some(401));
    assert_eq!(env.curl(APP, Some(&stranger), Some(CI_TOKEN)), Some(401));
    assert_eq!(env.failures("unknown_certificate"), 2.0);

    // A certificate from another CA, even with a mapped subject: no handshake.
    let other_ca = tempfile::tempdir().expect("tempdir");
    TlsFiles::generate(other_ca.path());
    let forged = issue_client(other_ca.path(), "forged", "/O=Example/CN=ci-runner");
    assert_eq!(env.curl(APP, Some(&forged), None), None);

    // No certificate with `required: false`: passwords and tokens as before.
    assert_eq!(env.curl(APP, None, None), Some(401));
    assert_eq!(env.curl(OTHER, None, Some(CI_TOKEN)), Some(200));

    let log = env.proxy.log();
    assert!(!log.contains(CI_TOKEN), "the token reached the log");
    // The refused subject is logged, for the operator to map it.
    assert!(log.contains("CN=stranger,O=Example"), "{log}");

    // skopeo with the certificate in --cert-dir (`*.cert`/`*.key`, and the CA as `*.crt`).
    let certs = tempfile::tempdir().expect("tempdir");
    fs::copy(&runner.cert, certs.path().join("runner.cert")).expect("copy cert");
    fs::copy(&runner.key, certs.path().join("runner.key")).expect("copy key");
    fs::copy(&env.tls.ca_cert, certs.path().join("ca.crt")).expect("copy CA");
    let skopeo = |repo: &str| {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--cert-dir"])
            .arg(certs.path())
            .arg(format!("docker://{}/{repo}", env.proxy.host_port()));
        run_bounded(&mut cmd, b"", "skopeo")
    };
    let ok = skopeo("open/app:v1");
    assert!(
        ok.status.success(),
        "skopeo: {}\n{}",
        String::from_utf8_lossy(&ok.stderr),
        env.proxy.log_tail(30)
    );
    let refused = skopeo("open/other:v1");
    assert!(!refused.status.success(), "skopeo pulled open/other");
}

#[test]
fn a_verified_certificate_gets_a_token_for_what_its_principal_may_pull() {
    let env = Env::start(false);
    let runner = env.client("runner", "/O=Example/CN=ci-runner");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&env.tls.ca_cert)
        .arg("--cert")
        .arg(&runner.cert)
        .arg("--key")
        .arg(&runner.key)
        .arg(format!(
            "https://{}/token?service=trustgate&scope=repository:open/app:pull\
             &scope=repository:open/other:pull",
            env.proxy.host_port()
        ));
    let out = run_bounded(&mut cmd, b"", "curl");
    assert!(out.status.success(), "curl /token: {out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("token JSON");
    let token = json["token"].as_str().expect("a token").to_owned();
    // The token is the certificate's principal's (groups from the mapping: builders may pull
    // open/app only), usable without the certificate.
    assert_eq!(env.curl(APP, None, Some(&token)), Some(200));
    assert_eq!(env.curl(OTHER, None, Some(&token)), Some(403));
    let stranger = env.client("stranger", "/O=Example/CN=stranger");
    assert_eq!(
        env.curl("/token?service=trustgate", Some(&stranger), None),
        Some(401)
    );
    assert_eq!(env.failures("unknown_certificate"), 1.0);
}

#[test]
fn required_client_certificates_refuse_the_handshake_without_one() {
    let env = Env::start(true);
    let runner = env.client("runner", "/O=Example/CN=ci-runner");
    assert_eq!(env.curl(APP, Some(&runner), None), Some(200));
    assert_eq!(env.curl(APP, None, Some(CI_TOKEN)), None);
    assert_eq!(env.curl("/v2/", None, None), None);
}
