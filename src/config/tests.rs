//! Config tests: YAML strings in, values or located errors out.

use std::{io::Write, time::Duration};

use super::*;
use crate::policy::{RoleName, SignerName};

/// Joins lines, so that a test's line numbers are its array indices plus one.
fn yaml(lines: &[&str]) -> String {
    lines.join("\n") + "\n"
}

/// One upstream and one notary server `hub`; rules start at line 7.
const BASE: [&str; 6] = [
    "upstreams:",
    "  - {registry: docker.io, url: \"https://registry-1.docker.io\", default: true}",
    "notary_servers:",
    "  - {name: hub, url: \"https://notary.docker.io\"}",
    "policy:",
    "  rules:",
];

fn with_rules(rules: &[&str]) -> String {
    yaml(&[&BASE[..], rules].concat())
}

fn load_err(text: &str) -> ConfigError {
    match Config::from_yaml(text) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(err) => err,
    }
}

/// `(line, column)` of an error.
fn at(err: &ConfigError) -> (Option<usize>, Option<usize>) {
    let at = err.location().expect("a located error");
    (at.line(), at.column())
}

/// Loads `text`, expecting an error at `line`, at the column where `at` starts in that line,
/// whose message contains each of `needles`.
#[track_caller]
fn expect_err(text: &str, line: usize, at_text: &str, needles: &[&str]) -> ConfigError {
    let err = load_err(text);
    let source_line = text.lines().nth(line - 1).expect("line in text");
    let column = source_line.find(at_text).expect("at_text in line") + 1;
    assert_eq!(at(&err), (Some(line), Some(column)), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("<config>:{line}:{column}: ")),
        "{message}"
    );
    for needle in needles {
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }
    err
}

// === the example and the shipped config ===

/// The example from the issue, with placeholders filled in.
const ISSUE_EXAMPLE: &str = r#"
server: {listen: "0.0.0.0:5000", admin_listen: "127.0.0.1:9090", tls: {cert_file: certs/tls.crt, key_file: certs/tls.key}}
cache: {dir: "./data", max_size: "20GiB"}
upstreams:
  - {registry: docker.io, url: "https://registry-1.docker.io", default: true,
     username: alice, password_file: secrets/hub, ca_file: certs/ca.pem}
notary_servers:
  - {name: docker-hub, url: "https://notary.docker.io", ca_file: certs/notary-ca.pem, ttl: 30s}
policy:
  default: deny
  rules:
    - {match: "docker.io/library/*", action: verify, notary: docker-hub,
       roles: [targets/releases, targets], signers: [alice],
       root_keys: [0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef, keys/root.pem],
       stale_if_error: 0s}
"#;

#[test]
fn issue_example_parses() {
    let config = Config::from_yaml(ISSUE_EXAMPLE).unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:5000".parse().unwrap());
    assert_eq!(
        config.server.tls,
        Some(TlsConfig {
            cert_file: "certs/tls.crt".into(),
            key_file: "certs/tls.key".into(),
        })
    );
    assert_eq!(config.cache.max_size, 20 * 1024 * 1024 * 1024);
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.url.as_str(), "https://registry-1.docker.io");
    assert_eq!(upstream.username.as_deref(), Some("alice"));
    assert_eq!(config.notary_servers[0].ttl, Duration::from_secs(30));

    let policy = config.policy().unwrap();
    let decision = policy.decide("docker.io", "library/nginx");
    assert_eq!(decision.action(), Action::Verify);
    let trust = decision.trust().unwrap();
    assert_eq!(trust.notary, "docker-hub");
    assert_eq!(trust.verifier, VerifierKind::NOTARY);
    assert_eq!(trust.signers.as_slice()[0].role(), "targets/alice");
    assert_eq!(
        trust.root_keys,
        [
            RootKeyPin::KeyId("0123456789abcdef".repeat(4)),
            RootKeyPin::PemFile("keys/root.pem".into()),
        ]
    );
    assert_eq!(trust.stale_if_error, Duration::ZERO);
    assert_eq!(
        policy.decide("docker.io", "bitnami/redis").action(),
        Action::Deny
    );
}

fn shipped_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/trustgate.yaml")
}

#[test]
fn shipped_config_loads_and_allows_docker_hub_without_its_retired_notary() {
    let config = Config::load(shipped_config_path()).unwrap();
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.cache, CacheConfig::default());
    let hub = &config.upstreams[0];
    assert_eq!((hub.registry.as_str(), hub.default), ("docker.io", true));
    assert_eq!(hub.url.as_str(), "https://registry-1.docker.io");

    let runtime = config.build().unwrap();
    let nginx = runtime.policy.decide("docker.io", "library/nginx");
    // notary.docker.io shut down on 2026-12-08: nothing in the shipped file depends on it.
    assert_eq!(nginx.action(), Action::Allow);
    assert!(nginx.trust().is_none());
    assert!(config.notary_servers.is_empty());
    assert_eq!(
        runtime
            .policy
            .decide("quay.io", "prometheus/prometheus")
            .action(),
        Action::Deny
    );
}

/// The shipped config with every `# ` example enabled must load too, so the examples a new
/// user uncomments stay valid.
#[test]
fn shipped_config_examples_load_when_uncommented() {
    let text = fs::read_to_string(shipped_config_path()).unwrap();
    let enabled: String = text
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            match line.trim_start().strip_prefix("# ") {
                Some(setting) => format!("{}{setting}\n", &line[..indent]),
                None => format!("{line}\n"),
            }
        })
        .collect();
    assert_ne!(enabled, text);
    let config = Config::from_yaml(&enabled).unwrap_or_else(|e| panic!("{e}\n{enabled}"));
    assert!(config.server.tls.is_some());
    assert!(config.upstreams[0].password_file.is_some());
    assert_eq!(config.upstreams[0].tag_ttl, Duration::from_secs(30));
    let policy = config.policy().unwrap();
    let own = policy.decide("registry.example.internal", "team/app");
    assert_eq!(own.action(), Action::Verify);
    let trust = own.trust().unwrap();
    assert_eq!(trust.notary, "internal");
    assert_eq!(trust.signers.as_slice()[0].name(), "alice");
    assert_eq!(
        policy.decide("docker.io", "library/nginx").action(),
        Action::Allow
    );
    let signed = policy.decide("docker.io", "example-org/app");
    assert_eq!(signed.action(), Action::Verify);
    assert_eq!(signed.trust().unwrap().verifier, VerifierKind::COSIGN);
}

#[test]
fn defaults() {
    let config = Config::from_yaml(&yaml(&[
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
        "notary_servers: [{name: hub, url: \"http://127.0.0.1:4443\"}]",
        "policy: {rules: [{match: \"**\", action: verify, notary: hub}]}",
    ]))
    .unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:5000".parse().unwrap());
    assert_eq!(
        config.server.admin_listen,
        "127.0.0.1:9090".parse().unwrap()
    );
    assert_eq!(config.server.tls, None);
    assert_eq!(config.cache.dir, Path::new("./data"));
    assert_eq!(config.cache.max_size, 20 << 30);
    assert!(!config.upstreams[0].default);
    assert_eq!(config.upstreams[0].tag_ttl, Duration::ZERO);
    assert_eq!(config.notary_servers[0].ttl, Duration::from_secs(30));
    assert_eq!(config.policy.default, DefaultAction::Deny);

    let policy = config.policy().unwrap();
    let trust = policy.decide("docker.io", "x/y").trust().unwrap().clone();
    let roles: Vec<_> = trust
        .roles
        .as_slice()
        .iter()
        .map(RoleName::as_str)
        .collect();
    assert_eq!(roles, ["targets/releases", "targets"]);
    assert_eq!(trust.verifier, VerifierKind::NOTARY);
    assert!(trust.signers.as_slice().is_empty() && trust.root_keys.is_empty());
    assert_eq!(trust.stale_if_error, Duration::ZERO);
}

#[test]
fn omitted_policy_denies_everything() {
    let config = Config::from_yaml(&yaml(&BASE[..4])).unwrap();
    let policy = config.policy().unwrap();
    assert_eq!(
        policy.decide("docker.io", "library/nginx").action(),
        Action::Deny
    );
}

// === errors found while deserialising ===

#[test]
fn unknown_keys_are_located() {
    let text = with_rules(&[
        "    - match: \"docker.io/**\"",
        "      action: allow",
        "      mach: oops",
    ]);
    let err = expect_err(
        &text,
        9,
        "mach",
        &["policy.rules[0]", "unknown field `mach`"],
    );
    assert!(matches!(err, ConfigError::Yaml { .. }));

    let text = yaml(&["server:", "  listn: \"127.0.0.1:5000\"", "upstreams: []"]);
    expect_err(&text, 2, "listn", &["server", "unknown field `listn`"]);

    expect_err(&yaml(&["upstream: []"]), 1, "upstream", &["unknown field"]);
}

#[test]
fn bad_values_are_located() {
    let rule = |line: &str| with_rules(&[line]);
    // (text, line, the text the error points at, a phrase of the message)
    let table: [(String, usize, &str, &str); 14] = [
        (
            rule(
                "    - {match: \"docker.io/**\", action: verify, notary: hub, stale_if_error: 5x}",
            ),
            7,
            "5x",
            "invalid duration `5x`",
        ),
        (
            rule("    - {match: \"docker.io/team-*\", action: deny}"),
            7,
            "\"docker.io/team-*\"",
            "mixes `*` with other characters",
        ),
        (
            rule("    - {match: \"docker.io/**\", action: permit}"),
            7,
            "permit",
            "unknown variant `permit`",
        ),
        (
            rule("    - {match: \"**\", action: verify, notary: hub, roles: [targets/Releases]}"),
            7,
            "targets/Releases",
            "role `targets/Releases`",
        ),
        (
            rule("    - {match: \"**\", action: verify, notary: hub, roles: []}"),
            7,
            "[]",
            "`roles` is empty",
        ),
        (
            rule("    - {match: \"**\", action: verify, notary: hub, signers: [targets/alice]}"),
            7,
            "targets/alice",
            "signer `targets/alice`",
        ),
        (
            rule("    - {match: \"**\", action: verify, notary: hub, signers: [bob, bob]}"),
            7,
            "[bob, bob]",
            "`bob` is listed twice",
        ),
        (
            rule("    - {match: \"**\", action: verify, notary: hub, root_keys: [abcdef]}"),
            7,
            "abcdef",
            "truncated key ID",
        ),
        (
            rule("    - {match: \"**\", action: verify, verifier: sigstore, notary: hub}"),
            7,
            "sigstore",
            "unknown verifier `sigstore`",
        ),
        (
            yaml(&["cache: {max_size: 20Gb}", "upstreams: []"]),
            1,
            "20Gb",
            "invalid size `20Gb`",
        ),
        (
            yaml(&["upstreams:", "  - {registry: docker.io, url: \"ftp://x\"}"]),
            2,
            "\"ftp://x\"",
            "the scheme must be http:// or https://",
        ),
        (
            yaml(&[
                "upstreams:",
                "  - {registry: docker.io, url: \"https://u:p@x\"}",
            ]),
            2,
            "\"https://u:p@x\"",
            "credentials in URLs end up in logs",
        ),
        (
            yaml(&[
                "upstreams:",
                "  - {registry: Docker.io, url: \"https://x\"}",
            ]),
            2,
            "Docker.io",
            "invalid registry name `Docker.io`",
        ),
        (
            yaml(&["server: {listen: \"localhost:5000\"}", "upstreams: []"]),
            1,
            "\"localhost:5000\"",
            "server.listen: invalid listen address `localhost:5000`",
        ),
    ];
    for (text, line, at_text, needle) in table {
        expect_err(&text, line, at_text, &[needle]);
    }
}

#[test]
fn token_realms_are_parsed_and_located() {
    let text = yaml(&[
        "upstreams:",
        "  - registry: registry.example",
        "    url: \"https://registry.example\"",
        "    username: alice",
        "    password_file: secrets/pw",
        "    token_realms: [\"https://auth.example/token\", \"sso.example:8443\"]",
    ]);
    let config = Config::from_yaml(&text).unwrap();
    let realms: Vec<&str> = config.upstreams[0]
        .token_realms
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(realms, ["https://auth.example/token", "sso.example:8443"]);
    let default = Config::from_yaml(&yaml(&BASE)).unwrap();
    assert_eq!(default.upstreams[0].token_realms, None);

    for (entry, needle) in [
        ("\"ftp://auth.example/\"", "http:// or https://"),
        (
            "\"https://u:p@auth.example/t\"",
            "must not contain credentials",
        ),
        ("\"https://auth.example/t?x=1\"", "no query"),
        ("\"auth.example/path\"", "URL prefix or a host"),
    ] {
        let text = yaml(&[
            "upstreams:",
            &format!(
                "  - {{registry: r.example, url: \"https://r.example\", token_realms: [{entry}]}}"
            ),
        ]);
        expect_err(&text, 2, entry, &["invalid token realm", needle]);
    }
}

#[test]
fn default_verify_suggests_a_catch_all_rule() {
    let mut lines = BASE.to_vec();
    lines[5] = "  default: verify";
    let text = yaml(&lines);
    expect_err(&text, 6, "verify", &["policy.default", r#"match: "**""#]);
}

#[test]
fn yaml_syntax_errors_are_located() {
    let err = load_err(&yaml(&[
        "upstreams:",
        "  - {registry: docker.io",
        "policy: x",
    ]));
    assert!(matches!(err, ConfigError::Yaml { .. }));
    assert!(err.line().is_some(), "{err}");
}

// === errors found by validate() ===

#[test]
fn rule_naming_an_unknown_notary_server() {
    let text = with_rules(&[
        "    - match: \"docker.io/library/*\"",
        "      action: verify",
        "      notary: docker-hub",
    ]);
    let err = expect_err(&text, 9, "docker-hub", &["`docker-hub`", "(defined: hub)"]);
    assert!(matches!(err, ConfigError::UnknownNotaryServer { .. }));
}

#[test]
fn verify_and_audit_rules_need_a_notary_server() {
    for action in ["verify", "audit"] {
        let action_line = format!("      action: {action}");
        let text = with_rules(&[
            "    - match: \"docker.io/**\"",
            "      action: allow",
            "    - match: \"docker.io/library/*\"",
            &action_line,
        ]);
        let err = expect_err(&text, 10, action, &["docker.io/library/*", action]);
        assert!(matches!(err, ConfigError::MissingNotaryServer { .. }));
    }
}

#[test]
fn allow_and_deny_rules_refuse_trust_fields() {
    let text = with_rules(&["    - {match: \"docker.io/**\", action: allow, signers: [alice]}"]);
    let err = expect_err(&text, 7, "[alice]", &["would have no effect"]);
    assert!(matches!(
        err,
        ConfigError::TrustFieldsWithoutVerification {
            key: "signers",
            action: Action::Allow,
            ..
        }
    ));
}

#[test]
fn overlapping_rules_name_both_lines() {
    let text = with_rules(&[
        "    - match: \"docker.io/*/a/*\"",
        "      action: allow",
        "    - match: \"docker.io/library/*\"",
        "      action: deny",
        "    - match: \"docker.io/*/*/b\"",
        "      action: deny",
    ]);
    let err = expect_err(
        &text,
        11,
        "\"docker.io/*/*/b\"",
        &[
            "docker.io/*/*/b",
            "docker.io/*/a/*",
            "(at line 7)",
            "docker.io/x/a/b",
        ],
    );
    let ConfigError::AmbiguousRules { first_line, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*first_line, Some(7));
}

#[test]
fn duplicate_rules_are_ambiguous() {
    let text = with_rules(&[
        "    - {match: \"docker.io/**\", action: allow}",
        "    - {match: \"docker.io/**\", action: deny}",
    ]);
    let err = expect_err(&text, 8, "\"docker.io/**\"", &["(at line 7)"]);
    assert!(matches!(err, ConfigError::AmbiguousRules { .. }));
}

#[test]
fn duplicate_upstreams() {
    let text = yaml(&[
        "upstreams:",
        "  - registry: docker.io",
        "    url: \"https://registry-1.docker.io\"",
        "  - registry: quay.io",
        "    url: \"https://quay.io\"",
        "  - registry: docker.io",
        "    url: \"https://mirror.gcr.io\"",
    ]);
    let err = expect_err(&text, 6, "docker.io", &["`docker.io`", "(first at line 2)"]);
    assert!(matches!(err, ConfigError::DuplicateUpstream { .. }));
}

#[test]
fn more_than_one_default_upstream() {
    let text = yaml(&[
        "upstreams:",
        "  - {registry: docker.io, url: \"https://registry-1.docker.io\", default: true}",
        "  - {registry: quay.io, url: \"https://quay.io\"}",
        "  - {registry: ghcr.io, url: \"https://ghcr.io\", default: true}",
    ]);
    let err = expect_err(
        &text,
        4,
        "true",
        &["`ghcr.io`", "`docker.io` already is (at line 2)"],
    );
    assert!(matches!(err, ConfigError::MultipleDefaultUpstreams { .. }));
}

#[test]
fn other_relations() {
    let text = yaml(&[
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
        "notary_servers:",
        "  - {name: hub, url: \"https://notary.docker.io\"}",
        "  - {name: hub, url: \"https://notary.example.internal\"}",
    ]);
    let err = expect_err(&text, 4, "hub", &["(first at line 3)"]);
    assert!(matches!(err, ConfigError::DuplicateNotaryServer { .. }));

    let text = yaml(&[
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
        "notary_servers:",
        "  - {name: hub, url: \"https://notary.docker.io\", ttl: 0s}",
    ]);
    let err = expect_err(&text, 3, "0s", &["ttl 0s"]);
    assert!(matches!(err, ConfigError::ZeroTtl { .. }));

    let text = yaml(&["upstreams: []"]);
    let err = expect_err(&text, 1, "[]", &["at least one registry"]);
    assert!(matches!(err, ConfigError::NoUpstreams { .. }));

    let text = yaml(&[
        "server: {listen: \"0.0.0.0:9090\"}",
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
    ]);
    // admin_listen is the default 127.0.0.1:9090, not in the text: point at listen.
    let err = expect_err(&text, 1, "\"0.0.0.0:9090\"", &["same port"]);
    assert!(matches!(err, ConfigError::ListenConflict { .. }));
    // Port 0 asks the OS for a free port: both listeners may use it.
    Config::from_yaml(&yaml(&[
        "server: {listen: \"127.0.0.1:0\", admin_listen: \"127.0.0.1:0\"}",
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
    ]))
    .unwrap();

    let text = yaml(&[
        "cache: {max_size: 0}",
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
    ]);
    let err = expect_err(&text, 1, "0", &["greater than zero"]);
    assert!(matches!(err, ConfigError::ZeroCacheSize { .. }));

    let text = yaml(&[
        "upstreams:",
        "  - {registry: docker.io, url: \"https://registry-1.docker.io\", username: alice}",
    ]);
    let err = expect_err(&text, 2, "alice", &["give both or neither"]);
    assert!(matches!(
        err,
        ConfigError::IncompleteCredentials {
            missing: "password_file",
            ..
        }
    ));
}

#[test]
fn errors_from_a_file_name_it() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(yaml(&["upstreams: []"]).as_bytes()).unwrap();
    let err = Config::load(file.path()).unwrap_err();
    let expected = format!("{}:1:12: ", file.path().display());
    assert!(err.to_string().starts_with(&expected), "{err}");

    let missing = file.path().with_extension("missing");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains(&missing.display().to_string()));
}

// === secrets ===

fn with_password_file(path: &Path) -> Config {
    Config::from_yaml(&format!(
        "upstreams:\n  - {{registry: docker.io, url: \"https://registry-1.docker.io\", \
         username: alice, password_file: \"{}\"}}\n",
        path.display()
    ))
    .unwrap()
}

#[test]
fn passwords_are_read_at_build_and_never_debugged() {
    const PASSWORD: &str = "hunter2-s3cr3t";
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{PASSWORD}").unwrap();
    let config = with_password_file(file.path());
    assert!(!format!("{config:?}").contains(PASSWORD));

    let runtime = config.build().unwrap();
    let credentials = runtime.upstreams[0].credentials.as_ref().unwrap();
    assert_eq!(credentials.username, "alice");
    assert_eq!(
        credentials.password.expose(),
        PASSWORD,
        "one newline dropped"
    );
    for debug in [format!("{runtime:?}"), format!("{runtime:#?}")] {
        assert!(!debug.contains(PASSWORD), "{debug}");
        assert!(debug.contains("Secret(<redacted>)"), "{debug}");
    }
}

#[test]
fn password_file_errors_name_the_file_not_the_content() {
    let mut empty = tempfile::NamedTempFile::new().unwrap();
    writeln!(empty).unwrap();
    let err = with_password_file(empty.path()).build().unwrap_err();
    assert!(matches!(err, ConfigError::EmptyPasswordFile { .. }));
    assert_eq!(err.line(), Some(2));

    // Not UTF-8: the error must not quote the bytes.
    let mut binary = tempfile::NamedTempFile::new().unwrap();
    binary.write_all(b"secret\xff\xfe").unwrap();
    let err = with_password_file(binary.path()).build().unwrap_err();
    assert!(matches!(err, ConfigError::ReadPasswordFile { .. }));
    let message = err.to_string();
    assert!(message.contains(&binary.path().display().to_string()));
    assert!(!message.contains("secret") && !format!("{err:?}").contains("secret"));

    let gone = empty.path().with_extension("gone");
    let err = with_password_file(&gone).build().unwrap_err();
    assert!(matches!(err, ConfigError::ReadPasswordFile { .. }));
}

#[test]
fn secret_debug_is_redacted() {
    let secret = Secret::new("tok3n");
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    assert_eq!(secret.expose(), "tok3n");
}

// === values ===

#[test]
fn durations() {
    let ok = [
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("0s", Duration::ZERO),
    ];
    for (text, expected) in ok {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
    for bad in [
        "", "30", "s", "1.5s", "-1s", "30 s", "30S", "1d", "1h30m", " 1s",
    ] {
        assert_eq!(
            parse_duration(bad),
            Err(ValueError::Duration(bad.into())),
            "`{bad}`"
        );
    }
    let huge = format!("{}h", u64::MAX / 1000);
    assert_eq!(
        parse_duration(&huge),
        Err(ValueError::Overflow(huge.clone()))
    );
}

#[test]
fn byte_sizes() {
    let ok = [
        ("1000000", 1_000_000),
        ("512MiB", 512 << 20),
        ("20GiB", 20 << 30),
        ("10GB", 10_000_000_000),
        ("1KiB", 1024),
        ("7 KB", 7_000),
        ("2TiB", 2 << 40),
        ("42B", 42),
    ];
    for (text, expected) in ok {
        assert_eq!(parse_byte_size(text), Ok(expected), "{text}");
    }
    for bad in ["", "GiB", "1.5GiB", "-1", "20gib", "20Gb", "20 GiB extra"] {
        assert_eq!(
            parse_byte_size(bad),
            Err(ValueError::ByteSize(bad.into())),
            "`{bad}`"
        );
    }
    assert!(matches!(
        parse_byte_size("20000000TiB"),
        Err(ValueError::Overflow(_))
    ));
}

#[test]
fn urls() {
    let ok = [
        (
            "https://registry-1.docker.io",
            "https://registry-1.docker.io",
        ),
        (
            "https://registry-1.docker.io/",
            "https://registry-1.docker.io",
        ),
        ("HTTP://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://[::1]:4443/notary", "http://[::1]:4443/notary"),
    ];
    for (text, expected) in ok {
        let url: HttpUrl = text.parse().unwrap();
        assert_eq!(url.as_str(), expected);
    }
    assert!("https://x".parse::<HttpUrl>().unwrap().is_https());
    for bad in [
        "registry-1.docker.io",
        "ftp://x",
        "https://",
        "https:///path",
        "https://x:port",
        "https://x/?q=1",
        "https://x/#f",
        "https://user:pass@x",
        "https://x y",
    ] {
        assert!(
            matches!(bad.parse::<HttpUrl>(), Err(ValueError::Url { .. })),
            "`{bad}`"
        );
    }
}

#[test]
fn registry_and_server_names() {
    let parse = |registry: &str| {
        Config::from_yaml(&format!(
            "upstreams: [{{registry: \"{registry}\", url: \"https://x\"}}]"
        ))
    };
    for ok in [
        "docker.io",
        "127.0.0.1:5000",
        "[::1]:5000",
        "localhost",
        "a-b.example",
    ] {
        parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "Docker.io",
        "docker.io:port",
        "docker.io/x",
        "-a.io",
        "a..io",
        "",
    ] {
        assert!(parse(bad).is_err(), "`{bad}`");
    }
    let text = yaml(&[
        "upstreams: [{registry: docker.io, url: \"https://x\"}]",
        "notary_servers: [{name: \"my hub\", url: \"https://x\"}]",
    ]);
    expect_err(
        &text,
        2,
        "\"my hub\"",
        &["invalid notary server name `my hub`"],
    );
}

#[test]
fn signer_from_yaml_becomes_a_role() {
    let config = Config::from_yaml(&with_rules(&[
        "    - {match: \"**\", action: audit, notary: hub, signers: [alice, ci-bot]}",
    ]))
    .unwrap();
    let signers = config.policy.rules[0].signers.clone().unwrap();
    let roles: Vec<_> = signers.as_slice().iter().map(SignerName::role).collect();
    assert_eq!(roles, ["targets/alice", "targets/ci-bot"]);
}

// === limits ===

#[test]
fn limits_default_to_safe_values() {
    let config = Config::from_yaml(&yaml(&BASE[..4])).unwrap();
    let limits = &config.limits;
    assert_eq!(*limits, LimitsConfig::default());
    assert_eq!(limits.max_manifest_size, 4 << 20);
    assert_eq!(limits.max_trust_metadata_size, 16 << 20);
    assert_eq!(limits.header_timeout, Duration::from_secs(10));
    assert_eq!(limits.request_timeout, Duration::from_secs(60));
    assert_eq!(limits.upstream_timeout, Duration::from_secs(30));
    assert_eq!(limits.upstream_read_timeout, Duration::from_secs(30));
    // A stalled upstream is reported as such before the client's deadline.
    assert!(limits.upstream_timeout < limits.request_timeout);
    assert_eq!(limits.max_connections, 4096);
    assert_eq!(limits.max_connections_per_client, 256);
    assert_eq!(limits.max_concurrent_requests, 1024);
    assert_eq!(limits.max_upstream_connections, 64);
}

#[test]
fn limits_are_read() {
    let text = yaml(
        &[
            &BASE[..4],
            &[
                "limits:",
                "  max_manifest_size: 1MiB",
                "  max_trust_metadata_size: 2MB",
                "  max_blob_size: 1GiB",
                "  header_timeout: 500ms",
                "  request_timeout: 2m",
                "  upstream_timeout: 5s",
                "  upstream_read_timeout: 7s",
                "  max_connections: 10",
                "  max_connections_per_client: 5",
                "  max_concurrent_requests: 20",
                "  max_upstream_connections: 3",
            ],
        ]
        .concat(),
    );
    let limits = Config::from_yaml(&text).unwrap().limits;
    assert_eq!(
        limits,
        LimitsConfig {
            max_manifest_size: 1 << 20,
            max_trust_metadata_size: 2_000_000,
            max_blob_size: 1 << 30,
            header_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(120),
            upstream_timeout: Duration::from_secs(5),
            upstream_read_timeout: Duration::from_secs(7),
            max_connections: 10,
            max_connections_per_client: 5,
            max_concurrent_requests: 20,
            max_upstream_connections: 3,
        }
    );
    // Keys left out keep their defaults.
    let partial = yaml(&[&BASE[..4], &["limits: {upstream_timeout: 1s}"]].concat());
    let limits = Config::from_yaml(&partial).unwrap().limits;
    assert_eq!(limits.upstream_timeout, Duration::from_secs(1));
    assert_eq!(limits.max_manifest_size, 4 << 20);
    assert_eq!(limits.max_blob_size, 16 << 30);
}

#[test]
fn bad_limits_are_located() {
    for (line, at_text, needles) in [
        (
            "  max_blob_size: 0",
            "0",
            &["limits.max_blob_size", "greater than zero"][..],
        ),
        (
            "  max_manifest_size: 0",
            "0",
            &["limits.max_manifest_size", "greater than zero"][..],
        ),
        (
            "  upstream_timeout: 0s",
            "0s",
            &["limits.upstream_timeout", "greater than zero"],
        ),
        (
            "  max_connections: 0",
            "0",
            &["limits.max_connections", "greater than zero"],
        ),
        (
            "  max_connections_per_client: 0",
            "0",
            &["limits.max_connections_per_client", "greater than zero"],
        ),
        (
            "  max_upstream_connections: 0",
            "0",
            &["max_upstream_connections"],
        ),
        ("  header_timeout: 10", "10", &["invalid duration `10`"]),
        (
            "  max_trust_metadata_size: lots",
            "lots",
            &["invalid size `lots`"],
        ),
        (
            "  max_concurrent_requests: -1",
            "-1",
            &["max_concurrent_requests"],
        ),
        (
            "  max_body_size: 1MiB",
            "max_body_size",
            &["unknown field `max_body_size`"],
        ),
    ] {
        let text = yaml(&[&BASE[..4], &["limits:", line]].concat());
        expect_err(&text, 6, at_text, needles);
    }
}

#[test]
fn cosign_rules_take_keys_threshold_and_a_signature_repository() {
    let text = with_rules(&[
        "    - match: \"docker.io/org/**\"",
        "      action: verify",
        "      verifier: cosign",
        "      keys: [a.pub, b.pub, a.pub]",
        "      threshold: 2",
        "      signature_repository: org/signatures",
        "    - {match: \"docker.io/both/**\", action: verify, verifier: [notary, cosign], notary: hub, keys: [a.pub]}",
    ]);
    let policy = Config::from_yaml(&text).unwrap().policy().unwrap();
    let org = policy
        .decide("docker.io", "org/app")
        .rule()
        .unwrap()
        .trust()
        .unwrap()
        .clone();
    assert_eq!(org.verifier, VerifierKind::COSIGN);
    assert_eq!(org.notary, "");
    let cosign = org.cosign.unwrap();
    assert_eq!(
        cosign.keys,
        [PathBuf::from("a.pub"), PathBuf::from("b.pub")]
    );
    assert_eq!(cosign.threshold, 2);
    assert_eq!(
        cosign.signature_repository.as_deref(),
        Some("org/signatures")
    );
    let both = policy
        .decide("docker.io", "both/app")
        .rule()
        .unwrap()
        .trust()
        .unwrap()
        .clone();
    assert_eq!(
        both.verifier,
        VerifierKind::of(&[VerifierName::Notary, VerifierName::Cosign], false).unwrap()
    );
    assert_eq!(both.notary, "hub");
    assert_eq!(both.cosign.unwrap().threshold, 1);
}

#[test]
fn cosign_rule_errors_name_the_line() {
    let rule = |line: &str| with_rules(&[line]);
    expect_err(
        &rule("    - {match: \"**\", action: verify, verifier: cosign}"),
        7,
        "cosign}",
        &["lists no keys"],
    );
    expect_err(
        &rule(
            "    - {match: \"**\", action: verify, verifier: cosign, keys: [a.pub], threshold: 2}",
        ),
        7,
        "2}",
        &["threshold 2 but 1 signer(s) can count (1 key(s), 0 keyless identit(y/ies))"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: verify, verifier: cosign, keys: [a.pub], roles: [targets]}"),
        7,
        "[targets]",
        &["`roles` belongs to the notary verifier"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: verify, notary: hub, keys: [a.pub]}"),
        7,
        "[a.pub]",
        &["`keys` belongs to the cosign verifier"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: allow, threshold: 1}"),
        7,
        "1}",
        &["would have no effect"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: verify, verifier: [cosign, cosign], keys: [a.pub]}"),
        7,
        "[cosign, cosign]",
        &["listed twice"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: verify, verifier: cosign, keys: [a.pub], signature_repository: \"Bad//x\"}"),
        7,
        "\"Bad//x\"",
        &["repository name"],
    );
}

#[test]
fn cosign_rules_take_attestation_requirements() {
    let text = with_rules(&[
        "    - match: \"docker.io/org/**\"",
        "      action: verify",
        "      verifier: cosign",
        "      keys: [a.pub]",
        "      signatures: none",
        "      attestations:",
        "        - predicate_type: https://slsa.dev/provenance/v1",
        "          conditions:",
        "            - {path: buildDefinition.externalParameters.workflow.repository, equals: \"https://github.com/org/app\"}",
        "            - {path: runDetails.builder.id, regex: \"^https://github.com/actions/runner/\"}",
        "    - {match: \"docker.io/both/**\", action: verify, verifier: cosign, keys: [a.pub], attestations: [{predicate_type: \"https://spdx.dev/Document\"}]}",
    ]);
    let policy = Config::from_yaml(&text).unwrap().policy().unwrap();
    let cosign = |repo| {
        policy
            .decide("docker.io", repo)
            .rule()
            .unwrap()
            .trust()
            .unwrap()
            .cosign
            .clone()
            .unwrap()
    };
    let org = cosign("org/app");
    assert_eq!(org.signatures, Signatures::None);
    assert_eq!(org.attestations.len(), 1);
    assert_eq!(
        org.attestations[0].predicate_type,
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(org.attestations[0].conditions.len(), 2);
    assert_eq!(
        org.attestations[0].conditions[0].path.as_str(),
        "buildDefinition.externalParameters.workflow.repository"
    );
    let both = cosign("both/app");
    assert_eq!(both.signatures, Signatures::Required);
    assert_eq!(both.attestations[0].conditions, vec![]);
}

#[test]
fn attestation_errors_name_the_line() {
    let rule = |line: &str| with_rules(&[line]);
    let cosign = "    - {match: \"**\", action: verify, verifier: cosign, keys: [a.pub], ";
    expect_err(
        &rule(&format!("{cosign}signatures: none}}")),
        7,
        "none}",
        &["`signatures: none` needs `attestations`"],
    );
    expect_err(
        &rule(&format!("{cosign}threshold: 1, signatures: none, attestations: [{{predicate_type: \"https://p/v1\"}}]}}")),
        7,
        "1,",
        &["`threshold` counts signatures"],
    );
    expect_err(
        &rule(&format!("{cosign}attestations: [{{predicate_type: \"https://p/v1\", conditions: [{{path: a, regex: \"(x\"}}]}}]}}")),
        7,
        "[{predicate_type",
        &["condition 0 (`a`): regex \"(x\" is not valid"],
    );
    expect_err(
        &rule(&format!("{cosign}attestations: [{{predicate_type: \"https://p/v1\", conditions: [{{path: a}}]}}]}}")),
        7,
        "[{predicate_type",
        &["give exactly one of `equals` and `regex`"],
    );
    expect_err(
        &rule(&format!("{cosign}attestations: [{{predicate_type: \"https://p/v1\", conditions: [{{path: \"\", equals: x}}]}}]}}")),
        7,
        "\"\"",
        &["field path is empty"],
    );
    expect_err(
        &rule(&format!("{cosign}signatures: maybe}}")),
        7,
        "maybe",
        &["unknown variant `maybe`"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: verify, notary: hub, signatures: none}"),
        7,
        "none}",
        &["`signatures` belongs to the cosign verifier"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: allow, attestations: []}"),
        7,
        "[]}",
        &["would have no effect"],
    );
}

// === storage ===

/// The base configuration (no rules) followed by `storage` lines from line 7 on.
fn with_storage(lines: &[&str]) -> String {
    yaml(&[&BASE[..], &["    []"], lines].concat()).replace("  rules:\n    []", "  rules: []")
}

#[test]
fn storage_defaults_to_the_local_directory() {
    let config =
        Config::from_yaml(&with_rules(&["    []"]).replace("  rules:\n    []", "  rules: []"))
            .unwrap();
    assert_eq!(config.storage.backend, StorageBackend::Local);
    assert_eq!(config.storage.s3, None);
    assert!(config.s3_credentials().unwrap().is_none());
}

#[test]
fn s3_storage_parses() {
    let text = with_storage(&[
        "storage:",
        "  backend: s3",
        "  s3:",
        "    bucket: trustgate",
        "    endpoint: \"http://127.0.0.1:9000\"",
        "    region: us-east-1",
        "    prefix: /prod/eu/",
        "    allow_http: true",
        "    virtual_hosted_style: false",
    ]);
    let config = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let s3 = config.storage.s3.as_ref().unwrap();
    assert_eq!(config.storage.backend, StorageBackend::S3);
    assert_eq!(s3.bucket, "trustgate");
    assert_eq!(
        s3.endpoint.as_ref().unwrap().as_str(),
        "http://127.0.0.1:9000"
    );
    assert_eq!(s3.prefix, "prod/eu");
    assert!(
        config.s3_credentials().unwrap().is_none(),
        "AWS_* environment"
    );
}

#[test]
fn s3_storage_errors_are_located() {
    let s3 = |lines: &[&str]| {
        let mut all = vec!["storage:", "  backend: s3", "  s3:"];
        all.extend_from_slice(lines);
        with_storage(&all)
    };
    expect_err(
        &with_storage(&["storage:", "  backend: s3"]),
        8,
        "s3",
        &["storage.s3 is missing"],
    );
    expect_err(
        &with_storage(&["storage:", "  s3: {bucket: trustgate}"]),
        8,
        "{bucket",
        &["backend is local"],
    );
    expect_err(
        &s3(&[
            "    bucket: trustgate",
            "    endpoint: \"http://minio:9000\"",
        ]),
        11,
        "\"http://minio",
        &["plain HTTP", "allow_http: true"],
    );
    expect_err(
        &s3(&["    bucket: Trust_Gate"]),
        10,
        "Trust_Gate",
        &["invalid bucket name"],
    );
    expect_err(
        &s3(&["    bucket: trustgate", "    prefix: a/../b"]),
        11,
        "a/../b",
        &["invalid key prefix"],
    );
    expect_err(
        &s3(&["    bucket: trustgate", "    access_key_id_file: /k/id"]),
        11,
        "/k/id",
        &["no `secret_access_key_file`"],
    );
    expect_err(
        &s3(&["    bucket: trustgate", "    secret: x"]),
        11,
        "secret",
        &["unknown field `secret`"],
    );
}

#[test]
fn s3_key_files_are_read_as_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = (dir.path().join("id"), dir.path().join("secret"));
    std::fs::write(&id, "AKIDEXAMPLE\n").unwrap();
    std::fs::write(&secret, "").unwrap();
    let text = |secret_file: &std::path::Path| {
        with_storage(&[
            "storage:",
            "  backend: s3",
            "  s3:",
            "    bucket: trustgate",
            &format!("    access_key_id_file: {}", id.display()),
            &format!("    secret_access_key_file: {}", secret_file.display()),
        ])
    };
    let config = Config::from_yaml(&text(&secret)).unwrap();
    let err = config.s3_credentials().unwrap_err();
    assert!(err.to_string().contains("it is empty"), "{err}");
    assert_eq!(err.line(), Some(12));

    std::fs::write(&secret, "wJalrXUtnFEMI\n").unwrap();
    let config = Config::from_yaml(&text(&secret)).unwrap();
    let (id, secret) = config.s3_credentials().unwrap().unwrap();
    assert_eq!(
        (id.expose(), secret.expose()),
        ("AKIDEXAMPLE", "wJalrXUtnFEMI")
    );
    assert!(!format!("{:?}", (&id, &secret, &config)).contains("wJalrXUtnFEMI"));
}

/// A Notary v1 rule (line 7) and an s3 backend: the trust state key is required, and read as a
/// secret of at least 32 bytes.
#[test]
fn s3_storage_with_a_notary_rule_requires_the_trust_state_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("trust-state-key");
    let text = |extra: &[&str]| {
        let mut lines = vec![
            "    - {match: \"docker.io/**\", action: verify, notary: hub}",
            "storage:",
            "  backend: s3",
            "  s3:",
            "    bucket: trustgate",
        ];
        lines.extend_from_slice(extra);
        with_rules(&lines)
    };
    let err = expect_err(
        &text(&[]),
        11,
        "bucket",
        &["no `trust_state_key_file`", "docker.io/**", "line 7"],
    );
    assert!(matches!(err, ConfigError::MissingTrustStateKey { .. }));
    // Cosign rules keep no trust state: no key needed.
    let cosign = text(&[]).replace("notary: hub}", "verifier: cosign, keys: [a.pub]}");
    Config::from_yaml(&cosign).unwrap_or_else(|e| panic!("{e}\n{cosign}"));

    let line = format!("    trust_state_key_file: {}", key.display());
    std::fs::write(&key, "too short\n").unwrap();
    let config = Config::from_yaml(&text(&[&line])).unwrap();
    let err = config.trust_state_key().unwrap_err();
    assert!(err.to_string().contains("fewer than 32 bytes"), "{err}");
    assert_eq!(err.line(), Some(12));
    assert!(!err.to_string().contains("too short"), "{err}");

    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    std::fs::write(&key, format!("{secret}\n")).unwrap();
    let config = Config::from_yaml(&text(&[&line])).unwrap();
    assert_eq!(config.trust_state_key().unwrap().unwrap().expose(), secret);
    assert!(!format!("{config:?}").contains(secret));
}

#[test]
fn notation_rules_and_verifier_combinations() {
    let text = with_rules(&[
        "    - match: \"docker.io/org/**\"",
        "      action: verify",
        "      verifier: notation",
        "      notation: {trust_policy: notation, trust_store: notation/truststore, revocation: {crls: [a.crl], fetch: false, timeout: 2s}}",
        "    - {match: \"docker.io/both/**\", action: verify, verifier: [notary, notation], notary: hub, notation: {trust_policy: p.json, trust_store: s}}",
        "    - {match: \"docker.io/move/**\", action: verify, verifier: {any_of: [notary, cosign, notation]}, notary: hub, keys: [a.pub], notation: {trust_policy: p.json, trust_store: s}}",
    ]);
    let policy = Config::from_yaml(&text).unwrap().policy().unwrap();
    let trust = |repo: &str| {
        policy
            .decide("docker.io", repo)
            .rule()
            .unwrap()
            .trust()
            .unwrap()
            .clone()
    };
    let org = trust("org/app");
    assert_eq!(org.verifier, VerifierKind::NOTATION);
    let n = org.notation.unwrap();
    assert_eq!(n.trust_policy, PathBuf::from("notation"));
    assert_eq!(n.trust_store, PathBuf::from("notation/truststore"));
    assert_eq!(n.crls, [PathBuf::from("a.crl")]);
    assert!(!n.revocation_fetch);
    assert_eq!(n.revocation_timeout, Duration::from_secs(2));
    assert!(n.crl_cache.unwrap().ends_with("notation-crl"));
    let both = trust("both/app");
    assert!(both.verifier.uses_notary() && both.verifier.uses_notation());
    assert!(!both.verifier.any() && both.verifier.tags_signed());
    let moving = trust("move/app");
    assert!(moving.verifier.any() && !moving.verifier.tags_signed());
    let names: Vec<_> = moving.verifier.names().collect();
    assert_eq!(
        names,
        [
            VerifierName::Notary,
            VerifierName::Cosign,
            VerifierName::Notation
        ]
    );
    assert_eq!(
        moving.verifier.to_string(),
        "any_of: [notary, cosign, notation]"
    );
}

#[test]
fn notation_rule_errors_name_the_line() {
    let rule = |line: &str| with_rules(&[line]);
    expect_err(
        &rule("    - {match: \"**\", action: verify, verifier: notation}"),
        7,
        "notation}",
        &["verifies with notation but has no `notation:` block"],
    );
    expect_err(
        &rule("    - {match: \"**\", action: verify, notary: hub, notation: {trust_policy: p, trust_store: s}}"),
        7,
        "{trust_policy",
        &["`notation` belongs to the notation verifier"],
    );
    for (line, needle) in [
        ("    - {match: \"**\", action: verify, verifier: {any_of: [notation, notation]}, notation: {trust_policy: p, trust_store: s}}", "verifier `notation` is listed twice"),
        ("    - {match: \"**\", action: verify, verifier: {one_of: [notation]}, notation: {trust_policy: p, trust_store: s}}", "unknown key `one_of`"),
        ("    - {match: \"**\", action: verify, verifier: notation, notation: {trust_policy: p}}", "missing field `trust_store`"),
    ] {
        let message = load_err(&rule(line)).to_string();
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }
}

// === auth ===

fn with_auth(auth: &[&str]) -> String {
    yaml(&[&BASE[..5], &["  default: deny", "auth:"], auth].concat())
}

#[test]
fn auth_shape_errors_point_at_their_line() {
    expect_err(
        &with_auth(&["  anonymous: true", "  password_file: x"]),
        9,
        "password_file",
        &["unknown field `password_file`"],
    );
    expect_err(
        &with_auth(&["  rate_limit: {requests_per_second: 5, burst: 0}"]),
        8,
        "{requests",
        &["auth.rate_limit", "at least 1"],
    );
    expect_err(
        &with_auth(&["  login_failures: {burst: 0}"]),
        8,
        "{burst",
        &["auth.login_failures", "at least 1"],
    );
    let config = Config::from_yaml(&with_auth(&[
        "  login_failures: {per_minute: 3}",
        "  password_cache_ttl: 0s",
    ]))
    .unwrap();
    let auth = config.auth.as_ref().unwrap();
    assert_eq!(
        (auth.login_failures.burst, auth.login_failures.per_minute),
        (10, 3)
    );
    assert_eq!(auth.password_cache_ttl, Duration::ZERO);
    let config = Config::from_yaml(&with_auth(&["  anonymous: true"])).unwrap();
    let auth = config.auth.as_ref().unwrap();
    assert_eq!(auth.login_failures, LoginFailuresConfig::default());
    assert_eq!(auth.password_cache_ttl, Duration::from_secs(60));
}

#[test]
fn auth_files_are_checked_at_build_and_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, content: &str| {
        let p = dir.path().join(name);
        fs::write(&p, content).unwrap();
        serde_json::json!(p.to_str().unwrap()).to_string()
    };
    let hash = bcrypt::hash("pw", 4).unwrap();
    let htpasswd = path("htpasswd", &format!("alice:{hash}\n"));
    let config = Config::from_yaml(&with_auth(&[&format!("  htpasswd_file: {htpasswd}")])).unwrap();
    match config.auth() {
        Err(err @ ConfigError::MissingTokenKey { .. }) => assert_eq!(at(&err).0, Some(8)),
        other => panic!("{other:?}"),
    }
    let short = path("short.key", "tooshort-secret");
    let config = Config::from_yaml(&with_auth(&[
        &format!("  htpasswd_file: {htpasswd}"),
        &format!("  token_key_file: {short}"),
    ]))
    .unwrap();
    let err = config.auth().unwrap_err();
    assert_eq!(at(&err).0, Some(9), "{err}");
    assert!(!err.to_string().contains("tooshort-secret"), "{err}");
    let sha = path("sha", "bob:{SHA}secret-hash=\n");
    let config = Config::from_yaml(&with_auth(&[&format!("  htpasswd_file: {sha}")])).unwrap();
    let err = config.auth().unwrap_err().to_string();
    assert!(
        err.contains("bcrypt") && !err.contains("secret-hash"),
        "{err}"
    );

    let key = path("token.key", &"k".repeat(MIN_TOKEN_KEY));
    let token = path("ci.token", "ci-secret\n");
    let config = Config::from_yaml(&with_auth(&[
        &format!("  htpasswd_file: {htpasswd}"),
        &format!("  token_key_file: {key}"),
        &format!("  tokens: [{{name: ci, file: {token}}}]"),
    ]))
    .unwrap();
    let auth = config.auth().unwrap().expect("auth section");
    // Loopback listener (the default): anonymous unless `anonymous: false`.
    assert!(auth.anonymous);
    let debug = format!("{auth:?}");
    assert!(
        !debug.contains("ci-secret") && !debug.contains(&hash),
        "{debug}"
    );
    assert!(Config::from_yaml(&yaml(&BASE[..5]))
        .unwrap()
        .auth()
        .unwrap()
        .is_none());
}

// === records ===

#[test]
fn records_take_defaults_and_point_at_their_errors() {
    let text = yaml(&[
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
        "records:",
        "  file: {path: /var/log/trustgate/decisions.jsonl}",
        "  webhooks:",
        "    - {url: \"https://siem.example/hook\", headers_file: /run/secrets/hook}",
    ]);
    let config = Config::from_yaml(&text).unwrap();
    let records = config.records.expect("records");
    let file = records.file.expect("file");
    assert_eq!((file.max_size, file.keep), (100 * 1024 * 1024, 5));
    let hook = &records.webhooks[0];
    assert_eq!(
        (hook.queue, hook.timeout, hook.max_retries),
        (1024, Duration::from_secs(5), 5)
    );
    assert!(Config::from_yaml(&yaml(&[
        "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]"
    ]))
    .unwrap()
    .records
    .is_none());

    let bad = |line: &str| {
        yaml(&[
            "upstreams: [{registry: docker.io, url: \"https://registry-1.docker.io\"}]",
            "records:",
            line,
        ])
    };
    expect_err(
        &bad("  file: {path: /x, max_sise: 1MiB}"),
        3,
        "max_sise",
        &["unknown field `max_sise`"],
    );
    expect_err(
        &bad("  webhooks: [{url: \"https://h.example\", timeout: 5x}]"),
        3,
        "5x",
        &["invalid duration `5x`"],
    );
}

#[test]
fn client_certificates_need_server_tls() {
    let text = with_auth(&[
        "  anonymous: false",
        "  client_certificates:",
        "    ca_file: client-ca.crt",
        "    principals: [{subject: \"CN=ci-runner,O=Example\", name: ci, groups: [builders]}]",
    ]);
    match Config::from_yaml(&text) {
        Err(err @ ConfigError::ClientCertificatesWithoutTls { .. }) => {
            // The section's first line.
            assert_eq!(at(&err).0, Some(10));
            assert!(err.to_string().contains("needs server.tls"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    let text = format!("server:\n  tls: {{cert_file: tls.crt, key_file: tls.key}}\n{text}");
    let config = Config::from_yaml(&text).expect("with server.tls");
    let mtls = config.auth.unwrap().client_certificates.unwrap();
    assert!(!mtls.required);
    assert_eq!(mtls.principals[0].subject, "CN=ci-runner,O=Example");
    assert_eq!(mtls.principals[0].groups, ["builders"]);

    let twice = text.replace(
        "groups: [builders]}]",
        "groups: [builders]}, {subject: \"CN=ci-runner,O=Example\", name: other}]",
    );
    match Config::from_yaml(&twice) {
        Err(err @ ConfigError::DuplicateCertificateSubject { .. }) => {
            assert!(
                err.to_string().contains("`CN=ci-runner,O=Example`"),
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn crl_file_errors_name_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_crl = dir.path().join("cert.pem");
    // PEM of another kind: no CRL in it.
    std::fs::write(
        &not_crl,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (file, reason) in [(&not_crl, "no X509 CRL found"), (&missing, "No such file")] {
        let text = format!(
            "server:\n  tls: {{cert_file: tls.crt, key_file: tls.key}}\n{}",
            with_auth(&[
                "  anonymous: false",
                "  client_certificates:",
                "    ca_file: client-ca.crt",
                &format!(
                    "    crl_files: [{}]",
                    serde_json::json!(file.to_str().unwrap())
                ),
            ])
        );
        // The shape is fine; the file is read when the auth settings are built.
        let config = Config::from_yaml(&text).expect("shape");
        match config.auth() {
            Err(err @ ConfigError::AuthFile { .. }) => {
                let message = err.to_string();
                assert!(
                    message.contains("auth.client_certificates.crl_files[0]"),
                    "{message}"
                );
                assert!(message.contains(file.to_str().unwrap()), "{message}");
                assert!(message.contains(reason), "{message}");
                assert!(at(&err).0.is_some(), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
