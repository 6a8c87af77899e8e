//! mTLS client certificates (`auth.client_certificates`): real clients against
//! `trustgate serve` on TLS, in front of a real `docker-registry`.
//!
//! A throw-away openssl CA issues the server certificate and the client certificates; a
//! second CA issues one the proxy must not accept. `curl --cert` checks the answers one by
//! one: a mapped subject is its principal (and `auth.access` applies to it), an unmapped one
//! is refused with `401`, a certificate from another CA fails the handshake, and without a
//! certificate the static token still works unless `required: true`. `skopeo --cert-dir`
//! pulls with a certificate as a registry client does.
//!
//! Revocation and reload: a CRL from `openssl ca -gencrl` in `crl_files` makes a revoked
//! certificate fail the handshake while others from the same CA are served; after a
//! certificate is added to the CRL and SIGHUP, it fails on a new connection. CRLs fail
//! closed: a certificate from a bundled CA without a CRL, or under a CRL past its
//! `nextUpdate`, gets no handshake. SIGHUP also
//! swaps in a renewed server certificate (`openssl s_client` sees the new serial), and a
//! broken file keeps the previous TLS settings.

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
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = TlsFiles::generate(dir.path());
        Env::start_in(dir, tls, required, "")
    }

    /// Like [`Env::start`], with the CA already in `dir` (`tls`) and `more` (indented YAML
    /// lines) added to `auth.client_certificates`.
    fn start_in(dir: tempfile::TempDir, tls: TlsFiles, required: bool, more: &str) -> Env {
        let registry = Registry::start();
        registry.push_random("open/app", "v1", 1);
        registry.push_random("open/other", "v1", 1);
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
{more}"#,
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

/// The test CA as `openssl ca` sees it: a database of revoked serials in `dir` and the CRL
/// it signs (`crl.pem`).
struct Revocations {
    dir: PathBuf,
    crl: PathBuf,
}

impl Revocations {
    fn new(dir: &Path) -> Revocations {
        fs::write(dir.join("index.txt"), "").expect("write index.txt");
        fs::write(dir.join("crlnumber"), "01\n").expect("write crlnumber");
        fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 7\n",
        )
        .expect("write ca.cnf");
        let revocations = Revocations {
            dir: dir.to_owned(),
            crl: dir.join("crl.pem"),
        };
        revocations.publish();
        revocations
    }

    fn openssl_ca(&self, args: &[&str]) {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(&self.dir)
            .args([
                "ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt",
            ])
            .args(args);
        let out = run_bounded(&mut cmd, b"", "openssl");
        assert!(out.status.success(), "openssl ca {args:?}: {out:?}");
    }

    /// Adds `cert` to the database and publishes a new CRL.
    fn revoke(&self, cert: &ClientCert) {
        self.openssl_ca(&["-revoke", cert.cert.to_str().expect("UTF-8 path")]);
        self.publish();
    }

    /// Writes the CRL of the database (next update in 7 days), replacing the file at once.
    fn publish(&self) {
        self.publish_with(&[]);
    }

    /// Like [`Revocations::publish`], with more `openssl ca -gencrl` options.
    fn publish_with(&self, args: &[&str]) {
        let mut all = vec!["-gencrl", "-out", "crl.new.pem"];
        all.extend(args);
        self.openssl_ca(&all);
        fs::rename(self.dir.join("crl.new.pem"), &self.crl).expect("replace crl.pem");
    }

    /// `crl_files`, as `Env::start_in` adds it to `auth.client_certificates`.
    fn yaml(&self) -> String {
        format!("    crl_files: [{}]\n", path(&self.crl))
    }
}

#[test]
fn revoked_client_certificates_fail_the_handshake_and_a_reload_revokes_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = TlsFiles::generate(dir.path());
    // Three certificates for the same mapped subject: only revocation tells them apart.
    let subject = "/O=Example/CN=ci-runner";
    let kept = issue_client(dir.path(), "kept", subject);
    let revoked = issue_client(dir.path(), "revoked", subject);
    let later = issue_client(dir.path(), "later", subject);
    let revocations = Revocations::new(dir.path());
    revocations.revoke(&revoked);
    let env = Env::start_in(dir, tls, false, &revocations.yaml());

    assert_eq!(env.curl(APP, Some(&revoked), None), None, "revoked served");
    assert_eq!(env.curl(APP, Some(&kept), None), Some(200));
    assert_eq!(env.curl(APP, Some(&later), None), Some(200));
    // Without a certificate, the token still works (`required: false`).
    assert_eq!(env.curl(OTHER, None, Some(CI_TOKEN)), Some(200));

    // Revoke one more, reload: refused on a new connection; the others are unchanged.
    revocations.revoke(&later);
    assert!(
        env.proxy.reload(),
        "reload failed:\n{}",
        env.proxy.log_tail(20)
    );
    assert_eq!(
        env.curl(APP, Some(&later), None),
        None,
        "revoked after reload served"
    );
    assert_eq!(env.curl(APP, Some(&kept), None), Some(200));
    assert_eq!(env.curl(APP, Some(&revoked), None), None);

    // A CRL file that no longer parses: the reload fails, naming the key; the last good
    // CRL stays in force.
    fs::write(
        &revocations.crl,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .expect("break crl.pem");
    assert!(!env.proxy.reload(), "a broken CRL file was accepted");
    let log = support::proxy::strip_ansi(&env.proxy.log());
    let failed = log
        .lines()
        .rfind(|l| l.contains("reload failed"))
        .expect("reload failure logged");
    assert!(
        failed.contains("auth.client_certificates.crl_files[0]"),
        "{failed}"
    );
    assert_eq!(env.curl(APP, Some(&later), None), None);
    assert_eq!(env.curl(APP, Some(&kept), None), Some(200));
}

#[test]
fn crls_fail_closed_for_an_issuer_without_one_and_for_a_stale_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = TlsFiles::generate(dir.path());
    let subject = "/O=Example/CN=ci-runner";
    let kept = issue_client(dir.path(), "kept", subject);
    // A second CA in the client CA bundle, with no CRL in `crl_files`. Its own name, so no
    // CRL of the first CA can even be mistaken for its own.
    let second = tempfile::tempdir().expect("tempdir");
    let second_ca = TlsFiles::ca(second.path(), "second test CA");
    let unlisted = issue_client(second.path(), "unlisted", subject);
    let bundle = fs::read_to_string(&tls.ca_cert).expect("read CA")
        + &fs::read_to_string(&second_ca).expect("read second CA");
    fs::write(&tls.ca_cert, bundle).expect("write CA bundle");
    let revocations = Revocations::new(dir.path());
    let env = Env::start_in(dir, tls, false, &revocations.yaml());

    assert_eq!(env.curl(APP, Some(&kept), None), Some(200));
    // Its chain verifies, but nothing says it is not revoked: no handshake.
    assert_eq!(
        env.curl(APP, Some(&unlisted), None),
        None,
        "unknown status served"
    );

    // A CRL whose nextUpdate has passed says nothing about today: no handshake either.
    revocations.publish_with(&["-crlsec", "1"]);
    assert!(
        env.proxy.reload(),
        "reload failed:\n{}",
        env.proxy.log_tail(20)
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(env.curl(APP, Some(&kept), None), None, "stale CRL accepted");
    // A fresh one, reloaded: served again.
    revocations.publish();
    assert!(
        env.proxy.reload(),
        "reload failed:\n{}",
        env.proxy.log_tail(20)
    );
    assert_eq!(env.curl(APP, Some(&kept), None), Some(200));
    assert_eq!(env.curl(APP, Some(&unlisted), None), None);

    // It was only the missing CRL: without `crl_files` the second CA's certificate is served.
    let config = fs::read_to_string(env.proxy.config_path()).expect("read config");
    fs::write(
        env.proxy.config_path(),
        config.replace(&revocations.yaml(), ""),
    )
    .expect("rewrite config");
    assert!(
        env.proxy.reload(),
        "reload failed:\n{}",
        env.proxy.log_tail(20)
    );
    assert_eq!(env.curl(APP, Some(&unlisted), None), Some(200));
}

/// The serial number of the certificate the proxy presents to a new connection.
fn served_serial(env: &Env) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &env.proxy.host_port()])
        .arg("-CAfile")
        .arg(&env.tls.ca_cert);
    let out = run_bounded(&mut cmd, b"", "openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    let (Some(begin), Some(end)) = (begin, end) else {
        panic!("no certificate from s_client: {out:?}");
    };
    let pem = &text[begin..end + "-----END CERTIFICATE-----".len()];
    file_serial_of(pem.as_bytes(), None)
}

/// `openssl x509 -serial` of PEM on stdin, or of `file`.
fn file_serial_of(stdin: &[u8], file: Option<&Path>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-serial"]);
    if let Some(file) = file {
        cmd.arg("-in").arg(file);
    }
    let out = run_bounded(&mut cmd, stdin, "openssl");
    assert!(out.status.success(), "openssl x509: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A new server certificate for `127.0.0.1` from the test CA, written over
/// `server.crt`/`server.key` (each file replaced at once, as a Secret update does).
fn renew_server_certificate(tls: &TlsFiles, dir: &Path) {
    let (key, cert) = (dir.join("renewed.key"), dir.join("renewed.crt"));
    TlsFiles::server_pair(dir, "127.0.0.1", "IP:127.0.0.1", &cert, &key);
    fs::rename(&key, &tls.server_key).expect("replace server.key");
    fs::rename(&cert, &tls.server_cert).expect("replace server.crt");
}

#[test]
fn sighup_reloads_the_server_certificate_for_new_connections() {
    let env = Env::start(false);
    let runner = env.client("runner", "/O=Example/CN=ci-runner");
    let first = file_serial_of(b"", Some(&env.tls.server_cert));
    assert_eq!(served_serial(&env), first);

    renew_server_certificate(&env.tls, env.dir.path());
    let renewed = file_serial_of(b"", Some(&env.tls.server_cert));
    assert_ne!(renewed, first);
    // Read at start only until the reload.
    assert_eq!(served_serial(&env), first);
    assert!(
        env.proxy.reload(),
        "reload failed:\n{}",
        env.proxy.log_tail(20)
    );
    assert_eq!(served_serial(&env), renewed);
    assert_eq!(env.curl(APP, Some(&runner), None), Some(200));

    // A key that does not match the certificate: the reload fails, the renewed pair stays.
    let stranger = tempfile::tempdir().expect("tempdir");
    let other = TlsFiles::generate(stranger.path());
    fs::copy(&other.server_key, &env.tls.server_key).expect("mismatched key");
    assert!(!env.proxy.reload(), "a mismatched key was accepted");
    assert_eq!(served_serial(&env), renewed);
    assert_eq!(env.curl(APP, Some(&runner), None), Some(200));
}
