//! SIGHUP reloads `auth`: a real `trustgate serve`, its htpasswd file, static token and
//! configuration rewritten while it runs, and `curl` asking `/v2/` after each `kill -HUP`.
//!
//! What an operator does when rotating credentials: a user added to the htpasswd file can
//! log in after the reload, a removed user and a removed static token are refused, and a
//! broken htpasswd file fails the reload (logged with the key, not the content) while the
//! users of the previous file keep working.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::proxy::Proxy;
use support::run_bounded;

const CI_TOKEN: &str = "ci-static-token-reload-0123456789";
const RELEASE_TOKEN: &str = "release-static-token-0123456789";

/// An htpasswd line for `user` (bcrypt at the lowest cost: these are test passwords).
fn htpasswd_line(user: &str, password: &str) -> String {
    let mut cmd = Command::new("htpasswd");
    cmd.args(["-n", "-b", "-B", "-C", "4", user, password]);
    let out = run_bounded(&mut cmd, b"", "htpasswd");
    assert!(out.status.success(), "htpasswd: {out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
        + "\n"
}

/// The status of `GET /v2/` with `auth` (`-u user:password` or a bearer token).
fn status(proxy: &Proxy, auth: Auth) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "20",
    ]);
    match auth {
        Auth::Basic(user, password) => cmd.args(["-u", &format!("{user}:{password}")]),
        Auth::Bearer(token) => cmd.args(["-H", &format!("Authorization: Bearer {token}")]),
    };
    cmd.arg(format!("{}/v2/", proxy.url()));
    let out = run_bounded(&mut cmd, b"", "curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl: {out:?}"))
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

fn path(p: &Path) -> String {
    serde_json::json!(p.to_str().expect("UTF-8 path")).to_string()
}

#[test]
fn sighup_reloads_users_and_tokens_and_a_broken_file_keeps_the_old_ones() {
    let files = tempfile::tempdir().expect("tempdir");
    let htpasswd = files.path().join("htpasswd");
    fs::write(&htpasswd, htpasswd_line("alice", "alice-pw")).expect("write htpasswd");
    let key = files.path().join("token.key");
    fs::write(&key, support::oci::random_bytes(32)).expect("write token key");
    let ci = files.path().join("ci.token");
    fs::write(&ci, format!("{CI_TOKEN}\n")).expect("write ci token");
    let release = files.path().join("release.token");
    fs::write(&release, format!("{RELEASE_TOKEN}\n")).expect("write release token");
    let tokens = |with_ci: bool| {
        let ci = format!("{{name: ci, file: {}}}, ", path(&ci));
        format!(
            "  tokens: [{}{{name: release, file: {}}}]\n",
            if with_ci { ci.as_str() } else { "" },
            path(&release)
        )
    };
    // The upstream is never asked: `/v2/` is answered by the proxy.
    let body = |with_ci: bool| {
        format!(
            r#"upstreams:
  - {{registry: "registry.test", url: "http://127.0.0.1:9", default: true}}
policy:
  default: deny
auth:
  anonymous: false
  htpasswd_file: {}
  token_key_file: {}
{}"#,
            path(&htpasswd),
            path(&key),
            tokens(with_ci)
        )
    };
    let proxy = Proxy::start(&body(true));
    let alice = Auth::Basic("alice", "alice-pw");
    let bob = Auth::Basic("bob", "bob-pw");
    assert_eq!(status(&proxy, alice), 200);
    assert_eq!(status(&proxy, bob), 401);
    assert_eq!(status(&proxy, Auth::Bearer(CI_TOKEN)), 200);

    // bob added, alice removed, the ci token dropped from the configuration.
    fs::write(&htpasswd, htpasswd_line("bob", "bob-pw")).expect("rewrite htpasswd");
    let config = fs::read_to_string(proxy.config_path()).expect("read config");
    let config = config.replace(&tokens(true), &tokens(false));
    fs::write(proxy.config_path(), config).expect("rewrite config");
    assert!(proxy.reload(), "reload failed:\n{}", proxy.log_tail(20));
    assert_eq!(
        proxy.metric("trustgate_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(
        proxy.metric("trustgate_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(status(&proxy, bob), 200);
    assert_eq!(status(&proxy, alice), 401);
    assert_eq!(status(&proxy, Auth::Bearer(CI_TOKEN)), 401);
    assert_eq!(status(&proxy, Auth::Bearer(RELEASE_TOKEN)), 200);

    // A broken htpasswd file (an entry that is not bcrypt): the reload fails, bob stays.
    let secret_looking = "carol:plaintext-password-never-logged\n";
    fs::write(&htpasswd, secret_looking).expect("break htpasswd");
    assert!(!proxy.reload(), "a broken htpasswd file was accepted");
    // Visible to monitoring, not only in the log: the settings in use are not the file's.
    assert_eq!(
        proxy.metric("trustgate_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(
        proxy.metric("trustgate_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(status(&proxy, bob), 200);
    assert_eq!(
        status(
            &proxy,
            Auth::Basic("carol", "plaintext-password-never-logged")
        ),
        401
    );
    let log = support::proxy::strip_ansi(&proxy.log());
    let failed = log
        .lines()
        .rfind(|l| l.contains("reload failed"))
        .expect("reload failure logged");
    // The failure names the key and the file, never the content.
    assert!(failed.contains("auth.htpasswd_file"), "{failed}");
    assert!(failed.contains("htpasswd"), "{failed}");
    assert!(!log.contains("plaintext-password-never-logged"), "{log}");
    assert!(
        !log.contains(CI_TOKEN) && !log.contains(RELEASE_TOKEN),
        "a token reached the log"
    );
}
