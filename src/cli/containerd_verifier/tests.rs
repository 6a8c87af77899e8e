use std::sync::Mutex;

use clap::Parser as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::cli::{Cli, Command};

const DIGEST: &str = "sha256:98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4";
const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn parsed(args: &[&str]) -> ContainerdVerifierArgs {
    match Cli::try_parse_from(containerd_args(os(args))) {
        Ok(Cli {
            command: Command::ContainerdVerifier(args),
        }) => args,
        Ok(other) => panic!("{args:?} parsed as {other:?}"),
        Err(e) => panic!("{args:?}: {e}"),
    }
}

#[test]
fn containerds_flags_are_read_as_it_writes_them() {
    let args = parsed(&[
        "trustgate",
        "containerd-verifier",
        "--trustgate-url",
        "http://127.0.0.1:9090",
        "-name",
        "registry.test/app:v1",
        "-digest",
        DIGEST,
        "-stdin-media-type",
        DESCRIPTOR_MEDIA_TYPE,
        "-operation=pull",
    ]);
    assert_eq!(args.name.as_deref(), Some("registry.test/app:v1"));
    assert_eq!(args.digest.as_deref(), Some(DIGEST));
    assert_eq!(
        args.stdin_media_type.as_deref(),
        Some(DESCRIPTOR_MEDIA_TYPE)
    );
    assert_eq!(args.operation.as_deref(), Some("pull"));
    assert_eq!(args.trustgate_url.as_deref(), Some("http://127.0.0.1:9090"));

    // The binary itself in bin_dir: containerd's flags alone make it the verifier.
    let args = parsed(&["/opt/bin/trustgate", "-name", "a.test/b", "-digest", DIGEST]);
    assert_eq!(
        (args.name.as_deref(), args.digest.as_deref()),
        (Some("a.test/b"), Some(DIGEST))
    );
    // A value is copied as it is, even when it looks like a flag.
    let args = parsed(&[
        "trustgate",
        "containerd-verifier",
        "-name",
        "-digest",
        "-digest",
        DIGEST,
    ]);
    assert_eq!(
        (args.name.as_deref(), args.digest.as_deref()),
        (Some("-digest"), Some(DIGEST))
    );
    // Other verbs keep their command line.
    let other = os(&["trustgate", "check", "-name"]);
    assert_eq!(containerd_args(other.clone()), other);
    assert!(Cli::try_parse_from(containerd_args(os(&[
        "trustgate",
        "containerd-verifier",
        "-unknown",
        "x"
    ])))
    .is_err());
}

#[test]
fn names_map_to_the_resolved_digest() {
    let ok = [
        ("docker.io/library/alpine:3.20", "docker.io/library/alpine"),
        ("docker.io/alpine", "docker.io/library/alpine"),
        ("alpine:3.20", "docker.io/library/alpine"),
        ("registry.example/app:v1", "registry.example/app"),
        (
            "registry.example:5000/team/app:v1",
            "registry.example:5000/team/app",
        ),
        ("localhost/app", "localhost/app"),
        ("Registry.Example/app:v1", "registry.example/app"),
        (&format!("ghcr.io/org/app@{DIGEST}"), "ghcr.io/org/app"),
        (&format!("ghcr.io/org/app:v1@{DIGEST}"), "ghcr.io/org/app"),
    ];
    for (name, image) in ok {
        assert_eq!(
            verdict_image(name, DIGEST),
            Ok(format!("{image}@{DIGEST}")),
            "{name}"
        );
    }
    let bad = [
        (format!("ghcr.io/org/app@{OTHER}"), DIGEST, "pins"),
        ("registry.example/App:v1".to_owned(), DIGEST, "-name"),
        ("registry.example/app:v1".to_owned(), "sha256:00", "-digest"),
        ("registry.example/app:v1".to_owned(), "", "-digest"),
        ("".to_owned(), DIGEST, "-name"),
    ];
    for (name, digest, phrase) in bad {
        let err = verdict_image(&name, digest).unwrap_err();
        assert!(err.contains(phrase), "{name} {digest}: {err}");
    }
}

#[test]
fn stdin_is_checked_against_the_digest() {
    let descriptor = format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{DIGEST}","size":398}}"#
    );
    assert_eq!(
        check_stdin(DESCRIPTOR_MEDIA_TYPE, descriptor.as_bytes(), DIGEST),
        Ok(())
    );
    let err = check_stdin(DESCRIPTOR_MEDIA_TYPE, descriptor.as_bytes(), OTHER).unwrap_err();
    assert!(err.contains("not for -digest"), "{err}");
    assert!(check_stdin(DESCRIPTOR_MEDIA_TYPE, b"{not json", DIGEST).is_err());
    assert!(check_stdin(DESCRIPTOR_MEDIA_TYPE, b"", DIGEST).is_err());
    let input = format!(r#"{{"operation":"run","descriptor":{descriptor}}}"#);
    assert_eq!(
        check_stdin(INPUT_MEDIA_TYPE, input.as_bytes(), DIGEST),
        Ok(())
    );
    assert!(check_stdin(INPUT_MEDIA_TYPE, input.as_bytes(), OTHER).is_err());
    // A media type of a later containerd: -digest decides alone.
    assert_eq!(check_stdin("application/x-future", b"\x00", DIGEST), Ok(()));
}

#[test]
fn answers_are_verdicts_only_when_they_say_so() {
    let image = format!("registry.test/app@{DIGEST}");
    let allow = format!(
        r#"{{"verdict":"allow","image":"registry.test/app","digest":"{DIGEST}","rule":"registry.test/**","action":"verify","verifier":"cosign","signed_by":"cosign","reason":"verified"}}"#
    );
    assert_eq!(
        interpret(200, allow.as_bytes(), &image),
        Outcome::Allow("verified (rule registry.test/**)".into())
    );
    let refuse = r#"{"verdict":"refuse","image":"registry.test/app","digest":null,"rule":"default","action":"deny","verifier":null,"signed_by":null,"reason":"denied by policy"}"#;
    assert_eq!(
        interpret(200, refuse.as_bytes(), &image),
        Outcome::Refuse("denied by policy (rule default)".into())
    );
    let elsewhere = allow.replace(DIGEST, OTHER);
    let cases: [(u16, &[u8], &str); 9] = [
        (200, elsewhere.as_bytes(), "not the digest asked about"),
        (200, b"<html>", "not a verdict"),
        (200, br#"{"verdict":"maybe","reason":""}"#, "not a verdict"),
        (200, b"", "not a verdict"),
        (400, br#"{"error":"bad name"}"#, "bad name"),
        (
            401,
            br#"{"error":"a valid bearer token is required"}"#,
            "token_file",
        ),
        (
            403,
            br#"{"error":"needs server.admin_token_file"}"#,
            "decision API is off",
        ),
        (502, br#"{"error":"registry down"}"#, "registry down"),
        (500, b"oops", "HTTP 500"),
    ];
    for (status, body, phrase) in cases {
        match interpret(status, body, &image) {
            Outcome::NoVerdict(why) => assert!(why.contains(phrase), "{status}: {why}"),
            other => panic!("{status} {:?}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

/// A fake decision API on loopback: answers each request with the next of `answers`
/// (status, body, delay before answering), and records the request heads.
struct FakeApi {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    async fn start(answers: Vec<(u16, Vec<u8>, Duration)>) -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            for (status, body, delay) in answers {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                tokio::time::sleep(delay).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.write_all(&body).await;
                let _ = conn.shutdown().await;
            }
        });
        FakeApi { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The verifier's arguments as containerd passes them, asking `url`, with an empty
/// configuration file (so no file of the machine is read).
fn call(url: &str, extra: &[&str], dir: &Path) -> ContainerdVerifierArgs {
    let config = dir.join("verifier.yaml");
    std::fs::write(&config, "").unwrap();
    let mut args = vec![
        "trustgate",
        "containerd-verifier",
        "-name",
        "registry.test/app:v1",
        "-digest",
        DIGEST,
        "--trustgate-url",
        url,
        "--verifier-config",
        config.to_str().unwrap(),
    ];
    args.extend(extra);
    parsed(&args)
}

fn verdict_body(verdict: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "verdict": verdict, "image": "registry.test/app", "digest": digest,
        "rule": "registry.test/**", "action": "verify", "verifier": "cosign",
        "signed_by": null, "reason": format!("{verdict} reason"),
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_fake_api_is_asked_for_the_digest_and_refusals_are_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let now = Duration::ZERO;
    let api = FakeApi::start(vec![(200, verdict_body("allow", DIGEST), now)]).await;
    let args = call(
        &api.url,
        &["--token-file", token.to_str().unwrap()],
        dir.path(),
    );
    let mut image = String::new();
    assert_eq!(
        judgement(&args, &mut image).await,
        Outcome::Allow("allow reason (rule registry.test/**)".into())
    );
    assert_eq!(image, format!("registry.test/app@{DIGEST}"));
    let request = &api.requests()[0];
    let hex = &DIGEST["sha256:".len()..];
    assert!(
        request.starts_with(&format!(
            "GET /v1/verdict?image=registry.test%2Fapp%40sha256%3A{hex} HTTP/1.1\r\n"
        )),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret\r\n"),
        "{request}"
    );

    let cases: [(u16, Vec<u8>, &str); 5] = [
        (200, verdict_body("refuse", DIGEST), "refuse reason"),
        (500, b"{}".to_vec(), "HTTP 500"),
        (200, b"\x00garbage".to_vec(), "not a verdict"),
        (
            200,
            verdict_body("allow", OTHER),
            "not the digest asked about",
        ),
        (200, vec![b' '; MAX_ANSWER as usize + 1], "more than"),
    ];
    for (status, body, phrase) in cases {
        let api = FakeApi::start(vec![(status, body, now)]).await;
        let outcome = judgement(&call(&api.url, &[], dir.path()), &mut image).await;
        let why = match outcome {
            Outcome::Refuse(why) | Outcome::NoVerdict(why) => why,
            other => panic!("{status}: {other:?}"),
        };
        assert!(why.contains(phrase), "{status}: {why}");
    }

    // Busy once: asked again.
    let api = FakeApi::start(vec![
        (
            503,
            br#"{"error":"too many verdicts in progress"}"#.to_vec(),
            now,
        ),
        (200, verdict_body("allow", DIGEST), now),
    ])
    .await;
    let outcome = judgement(&call(&api.url, &[], dir.path()), &mut image).await;
    assert!(matches!(outcome, Outcome::Allow(_)), "{outcome:?}");
    assert_eq!(api.requests().len(), 2);
}

#[tokio::test]
async fn slow_or_absent_apis_are_refusals_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = String::new();
    let slow = FakeApi::start(vec![(
        200,
        verdict_body("allow", DIGEST),
        Duration::from_secs(5),
    )])
    .await;
    let started = Instant::now();
    let outcome = judgement(
        &call(&slow.url, &["--timeout", "300ms"], dir.path()),
        &mut image,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    match outcome {
        Outcome::NoVerdict(why) => assert!(why.contains("in time"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let outcome = judgement(
        &call(&format!("http://127.0.0.1:{port}"), &[], dir.path()),
        &mut image,
    )
    .await;
    match outcome {
        Outcome::NoVerdict(why) => assert!(why.contains("cannot reach trustgate"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn settings_come_from_flags_or_the_file_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![(200, verdict_body("refuse", DIGEST), Duration::ZERO)]).await;
    let file = dir.path().join("v.yaml");
    let base = [
        "trustgate",
        "containerd-verifier",
        "-name",
        "registry.test/app:v1",
        "-digest",
        DIGEST,
        "--verifier-config",
        file.to_str().unwrap(),
    ];
    let with = |yaml: &str, extra: &[&str]| {
        std::fs::write(&file, yaml).unwrap();
        let mut args = base.to_vec();
        args.extend(extra);
        parsed(&args)
    };
    let mut image = String::new();
    // The URL from the file.
    let args = with(&format!("trustgate_url: {}\ntimeout: 2s\n", api.url), &[]);
    assert!(matches!(
        judgement(&args, &mut image).await,
        Outcome::Refuse(_)
    ));
    let misconfigured = [
        ("", vec![], "not configured"),
        ("trustgate_urll: http://x\n", vec![], "unknown field"),
        ("trustgate_url: ftp://x\n", vec![], "http://host:port"),
        (
            "trustgate_url: http://x\ntimeout: 0s\n",
            vec![],
            "longer than 0s",
        ),
        (
            "trustgate_url: http://x\ntrustgate_config: /t.yaml\n",
            vec![],
            "not both",
        ),
        (
            "",
            vec!["--trustgate-url", "http://x", "--config", "/t.yaml"],
            "not both",
        ),
        (
            "trustgate_url: http://x\ntoken_file: /nonexistent/token\n",
            vec![],
            "/nonexistent/token",
        ),
    ];
    for (yaml, extra, phrase) in misconfigured {
        match judgement(&with(yaml, &extra), &mut image).await {
            Outcome::Misconfigured(why) => assert!(why.contains(phrase), "{yaml:?}: {why}"),
            other => panic!("{yaml:?} {extra:?}: {other:?}"),
        }
    }
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    match judgement(
        &with(
            &format!("trustgate_url: http://x\ntoken_file: {}\n", empty.display()),
            &[],
        ),
        &mut image,
    )
    .await
    {
        Outcome::Misconfigured(why) => assert!(why.contains("empty"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A named configuration that is missing blocks too.
    let args = parsed(&[
        "trustgate",
        "containerd-verifier",
        "-name",
        "registry.test/app:v1",
        "-digest",
        DIGEST,
        "--verifier-config",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert!(matches!(
        judgement(&args, &mut image).await,
        Outcome::Misconfigured(_)
    ));
    // Without containerd's flags.
    let args = parsed(&[
        "trustgate",
        "containerd-verifier",
        "--trustgate-url",
        "http://x",
    ]);
    assert!(matches!(
        judgement(&args, &mut image).await,
        Outcome::Misconfigured(_)
    ));
}

#[test]
fn admin_urls_keep_a_path_prefix() {
    assert_eq!(
        admin_url("http://127.0.0.1:9090").unwrap().as_str(),
        "http://127.0.0.1:9090/v1/verdict"
    );
    assert_eq!(
        admin_url("https://gate.example/trustgate/")
            .unwrap()
            .as_str(),
        "https://gate.example/trustgate/v1/verdict"
    );
    assert!(admin_url("http://u:p@x").is_err());
    assert!(admin_url("http://x/?a=b").is_err());
    assert!(admin_url("127.0.0.1:9090").is_err());
}

#[test]
fn reasons_are_one_bounded_line() {
    assert_eq!(one_line("a\nb\tc"), "a b c");
    let long = "é".repeat(MAX_REASON);
    let line = one_line(&long);
    assert!(line.len() <= MAX_REASON + '…'.len_utf8(), "{}", line.len());
    assert!(line.ends_with('…'));
}
