//! Policy tests: pattern semantics, specificity, overlap, decisions and trust names.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn pattern(text: &str) -> Pattern {
    text.parse()
        .unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
}

fn trust() -> TrustRequirements {
    TrustRequirements {
        verifier: VerifierKind::NOTARY,
        notary: "docker-hub".into(),
        roles: RoleList::default(),
        signers: SignerList::default(),
        root_keys: Vec::new(),
        stale_if_error: Duration::ZERO,
        cosign: None,
        notation: None,
    }
}

/// Splits `registry/repo...` at the first `/`, as the proxy hands references to the policy.
fn split(reference: &str) -> (&str, &str) {
    reference.split_once('/').unwrap_or((reference, ""))
}

#[test]
fn star_and_double_star_semantics() {
    let table = [
        // `*` is exactly one segment.
        ("docker.io/library/*", "docker.io/library/nginx", true),
        ("docker.io/library/*", "docker.io/library/nginx/x", false),
        ("docker.io/library/*", "docker.io/library", false),
        ("docker.io/*/nginx", "docker.io/library/nginx", true),
        ("*/library/nginx", "quay.io/library/nginx", true),
        ("*/library/nginx", "127.0.0.1:5000/library/nginx", true),
        // `**` is any number of segments, including zero.
        ("docker.io/**", "docker.io/library/nginx", true),
        ("docker.io/**", "docker.io/nginx", true),
        ("docker.io/**", "docker.io/a/b/c/d/e", true),
        ("docker.io/**", "quay.io/library/nginx", false),
        ("docker.io/**/nginx", "docker.io/nginx", true),
        ("docker.io/**/nginx", "docker.io/a/b/nginx", true),
        ("docker.io/**/nginx", "docker.io/a/b/nginx2", false),
        (
            "registry.example.internal/team/**",
            "registry.example.internal/team",
            true,
        ),
        (
            "registry.example.internal/team/**",
            "registry.example.internal/teamx/a",
            false,
        ),
        ("**", "docker.io/library/nginx", true),
        ("**/nginx", "docker.io/library/nginx", true),
        ("**/nginx", "docker.io/library/redis", false),
        ("a/**/b/**/c", "a/x/b/y/z/c", true),
        ("a/**/b/**/c", "a/b/c", true),
        ("a/**/b/**/c", "a/c/b", false),
        ("a/**/*/c", "a/c", false),
        ("a/**/*/c", "a/x/c", true),
        // Literal segments are whole segments, compared ASCII case-insensitively.
        ("docker.io/library/nginx", "docker.io/library/nginx", true),
        ("docker.io/library/nginx", "Docker.IO/Library/NGINX", true),
        ("docker.io/library/nginx", "docker.io/library/nginx2", false),
        ("docker.io/library/nginx", "docker.io/library/ngin", false),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app", true),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5001/team/app", false),
    ];
    for (p, reference, expected) in table {
        let (registry, repository) = split(reference);
        assert_eq!(
            pattern(p).matches(registry, repository),
            expected,
            "`{p}` against `{reference}`"
        );
    }
}

#[test]
fn refuses_malformed_patterns() {
    type IsExpected = fn(&PatternError) -> bool;
    let table: [(&str, IsExpected); 10] = [
        ("", |e| matches!(e, PatternError::Empty)),
        ("/docker.io/x", |e| {
            matches!(e, PatternError::EmptySegment { .. })
        }),
        ("docker.io/x/", |e| {
            matches!(e, PatternError::EmptySegment { .. })
        }),
        ("docker.io//x", |e| {
            matches!(e, PatternError::EmptySegment { .. })
        }),
        (
            "docker.io/team-*",
            |e| matches!(e, PatternError::PartialWildcard { segment, .. } if segment == "team-*"),
        ),
        ("docker.io/***", |e| {
            matches!(e, PatternError::PartialWildcard { .. })
        }),
        ("docker.io/{a,b}", |e| {
            matches!(e, PatternError::InvalidCharacter { character: '{', .. })
        }),
        ("docker.io/**/**", |e| {
            matches!(e, PatternError::RepeatedDoubleStar { .. })
        }),
        ("docker.io", |e| {
            matches!(e, PatternError::NoRepository { .. })
        }),
        ("*", |e| matches!(e, PatternError::NoRepository { .. })),
    ];
    for (text, is_expected) in table {
        let err = text.parse::<Pattern>().expect_err(text);
        assert!(is_expected(&err), "`{text}` gave {err:?}");
    }
    assert!(PatternError::NoRepository {
        pattern: "docker.io".into()
    }
    .to_string()
    .contains("did you mean `docker.io/**`"));
}

#[test]
fn specificity_table() {
    // (more specific, less specific): both match the reference, the first must win.
    let table = [
        (
            "docker.io/library/nginx",
            "docker.io/library/*",
            "docker.io/library/nginx",
        ),
        (
            "docker.io/library/*",
            "docker.io/**",
            "docker.io/library/nginx",
        ),
        (
            "docker.io/library/*",
            "docker.io/**/nginx",
            "docker.io/library/nginx",
        ),
        (
            "docker.io/*/nginx",
            "docker.io/**/nginx",
            "docker.io/library/nginx",
        ),
        ("docker.io/*", "docker.io/**", "docker.io/nginx"),
        ("docker.io/*/**", "docker.io/**", "docker.io/library/nginx"),
        (
            "docker.io/library/*",
            "docker.io/*/nginx",
            "docker.io/library/nginx",
        ),
        (
            "docker.io/library/**",
            "docker.io/*/**",
            "docker.io/library/nginx",
        ),
        ("*/library/nginx", "docker.io/**", "docker.io/library/nginx"),
        ("docker.io/**", "**", "docker.io/library/nginx"),
        ("*/*", "**", "docker.io/nginx"),
    ];
    for (winner, loser, reference) in table {
        assert!(
            pattern(winner).specificity() > pattern(loser).specificity(),
            "`{winner}` should be more specific than `{loser}`"
        );
        // Whatever the configuration order, the more specific rule decides.
        for rules in [
            vec![Rule::allow(pattern(winner)), Rule::deny(pattern(loser))],
            vec![Rule::deny(pattern(loser)), Rule::allow(pattern(winner))],
        ] {
            let policy = Policy::new(DefaultAction::Deny, rules).unwrap();
            let (registry, repository) = split(reference);
            let decision = policy.decide(registry, repository);
            assert_eq!(decision.pattern(), winner, "for `{reference}`");
            assert_eq!(decision.action(), Action::Allow);
        }
    }
}

#[test]
fn refuses_equally_specific_overlapping_rules() {
    let table = [
        ("docker.io/*/a/*", "docker.io/*/*/b"),
        ("docker.io/library/nginx", "docker.io/library/nginx"),
        ("docker.io/library/nginx", "DOCKER.IO/library/nginx"),
        ("**", "**"),
        ("*/library/*", "*/*/nginx"),
        ("**/a/**", "**/b/**"),
    ];
    for (first, second) in table {
        let rules = vec![
            Rule::allow(pattern("quay.io/**")),
            Rule::allow(pattern(first)),
            Rule::deny(pattern(second)),
        ];
        let err = Policy::new(DefaultAction::Deny, rules).expect_err(first);
        let PolicyError::AmbiguousRules {
            first: i,
            second: j,
            example,
            ..
        } = &err;
        assert_eq!((*i, *j), (1, 2), "{first} vs {second}");
        let (registry, repository) = split(example);
        assert!(pattern(first).matches(registry, repository), "{err}");
        assert!(pattern(second).matches(registry, repository), "{err}");
    }
}

#[test]
fn accepts_equally_specific_disjoint_rules() {
    let table = [
        ("docker.io/library/*", "quay.io/library/*"),
        ("docker.io/*", "docker.io/*/*/*"),
        ("docker.io/a/**", "docker.io/b/**"),
        ("docker.io/**/a", "docker.io/**/b"),
        ("*/a", "*/b"),
    ];
    for (first, second) in table {
        assert_eq!(pattern(first).overlap(&pattern(second)), None);
        let rules = vec![Rule::allow(pattern(first)), Rule::deny(pattern(second))];
        Policy::new(DefaultAction::Deny, rules).expect(first);
    }
}

#[test]
fn decision_exposes_rule_and_trust() {
    let policy = Policy::new(
        DefaultAction::Allow,
        vec![
            Rule::deny(pattern("docker.io/library/busybox")),
            Rule::verify(pattern("docker.io/library/*"), trust()),
            Rule::audit(pattern("docker.io/**"), trust()),
        ],
    )
    .unwrap();

    let verify = policy.decide("docker.io", "library/nginx");
    assert_eq!(verify.action(), Action::Verify);
    assert_eq!(verify.rule_index(), Some(1));
    assert_eq!(verify.pattern(), "docker.io/library/*");
    assert_eq!(verify.trust(), Some(&trust()));

    let audit = policy.decide("docker.io", "bitnami/redis");
    assert_eq!(
        (audit.action(), audit.rule_index()),
        (Action::Audit, Some(2))
    );
    assert!(audit.trust().is_some());

    let deny = policy.decide("docker.io", "library/busybox");
    assert_eq!((deny.action(), deny.trust()), (Action::Deny, None));

    let default = policy.decide("quay.io", "prometheus/prometheus");
    assert_eq!(default.action(), Action::Allow);
    assert_eq!((default.rule_index(), default.pattern()), (None, "default"));
    assert!(default.rule().is_none() && default.trust().is_none());

    let empty = Policy::default();
    let empty = empty.decide("docker.io", "library/nginx");
    assert_eq!(empty.action(), Action::Deny, "an empty policy must deny");
}

#[test]
fn default_action_hints_at_catch_all_rule() {
    assert_eq!("deny".parse(), Ok(DefaultAction::Deny));
    assert_eq!("allow".parse(), Ok(DefaultAction::Allow));
    let err = "verify".parse::<DefaultAction>().unwrap_err().to_string();
    assert!(err.contains(r#"match: "**""#), "{err}");
    let err = "permit".parse::<DefaultAction>().unwrap_err().to_string();
    assert!(!err.contains("**"), "{err}");
}

#[test]
fn role_names() {
    for ok in [
        "targets",
        "targets/releases",
        "targets/alice",
        "targets/a/b-c_d",
    ] {
        let role: RoleName = ok.parse().expect(ok);
        assert_eq!(role.as_str(), ok);
        assert_eq!(role.is_delegation(), ok != "targets");
    }
    let long = format!("targets/{}", "a".repeat(248));
    for bad in [
        "",
        "root",
        "snapshot",
        "targets/",
        "targets//a",
        "targets/a/",
        "targets/../root",
        "targets/./a",
        "targets/Alice",
        "targets/a b",
        "Targets",
        "targetsx",
        long.as_str(),
    ] {
        assert!(
            matches!(bad.parse::<RoleName>(), Err(NameError::Role(_))),
            "`{bad}`"
        );
    }
    let roles = RoleList::default();
    let names: Vec<_> = roles.as_slice().iter().map(RoleName::as_str).collect();
    assert_eq!(names, ["targets/releases", "targets"]);
    assert_eq!(RoleList::new(Vec::new()), Err(NameError::NoRoles));
    let twice = vec!["targets".parse().unwrap(), "targets".parse().unwrap()];
    assert_eq!(
        RoleList::new(twice),
        Err(NameError::Duplicate("targets".into()))
    );
}

#[test]
fn signer_names() {
    let alice: SignerName = "alice".parse().unwrap();
    assert_eq!((alice.name(), alice.role()), ("alice", "targets/alice"));
    for ok in ["bob", "ci-bot_2", "0day"] {
        ok.parse::<SignerName>().expect(ok);
    }
    for bad in ["", "Alice", "-bob", "_bob", "targets/alice", "a.b", "a b"] {
        assert!(
            matches!(bad.parse::<SignerName>(), Err(NameError::Signer(_))),
            "`{bad}`"
        );
    }
    assert_eq!(
        "releases".parse::<SignerName>(),
        Err(NameError::ReservedSigner)
    );
}

#[test]
fn root_key_pins() {
    let id = "A".repeat(64);
    assert_eq!(
        id.parse::<RootKeyPin>(),
        Ok(RootKeyPin::KeyId("a".repeat(64)))
    );
    assert_eq!(
        "keys/root.pem".parse::<RootKeyPin>(),
        Ok(RootKeyPin::PemFile("keys/root.pem".into()))
    );
    assert_eq!(
        "abc123".parse::<RootKeyPin>(),
        Err(NameError::TruncatedKeyId("abc123".into(), 6))
    );
    assert_eq!(
        "./abc123".parse::<RootKeyPin>(),
        Ok(RootKeyPin::PemFile("./abc123".into()))
    );
    assert_eq!("".parse::<RootKeyPin>(), Err(NameError::EmptyRootKey));
}

// === properties ===

/// The obvious recursive matcher, to check the allocation-free one against.
fn naive_matches(pattern: &[&str], reference: &[&str]) -> bool {
    match pattern.split_first() {
        None => reference.is_empty(),
        Some((&"**", rest)) => (0..=reference.len()).any(|k| naive_matches(rest, &reference[k..])),
        Some((&"*", rest)) => !reference.is_empty() && naive_matches(rest, &reference[1..]),
        Some((literal, rest)) => {
            reference
                .first()
                .is_some_and(|s| s.eq_ignore_ascii_case(literal))
                && naive_matches(rest, &reference[1..])
        }
    }
}

fn pattern_strategy() -> impl Strategy<Value = Pattern> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "*", "**"]), 1..5)
        .prop_filter_map("valid pattern", |parts| parts.join("/").parse().ok())
}

fn reference_strategy() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 2..8)
}

/// Every reference over {a, b, c} with 2 to 7 segments: long enough to witness any overlap of
/// two patterns of at most 4 segments each.
fn all_references() -> &'static [Vec<&'static str>] {
    static ALL: std::sync::OnceLock<Vec<Vec<&'static str>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<Vec<&str>> = vec![Vec::new()];
        let mut out = Vec::new();
        for len in 1..=7 {
            all = all
                .iter()
                .flat_map(|r| {
                    ["a", "b", "c"].map(|s| {
                        let mut r = r.clone();
                        r.push(s);
                        r
                    })
                })
                .collect();
            if len >= 2 {
                out.extend(all.iter().cloned());
            }
        }
        out
    })
}

fn matches_segments(p: &Pattern, reference: &[&str]) -> bool {
    p.matches(reference[0], &reference[1..].join("/"))
}

proptest! {
    #[test]
    fn matcher_agrees_with_naive(p in pattern_strategy(), reference in reference_strategy()) {
        let parts: Vec<&str> = p.as_str().split('/').collect();
        prop_assert_eq!(matches_segments(&p, &reference), naive_matches(&parts, &reference));
    }

    #[test]
    fn overlap_agrees_with_brute_force(a in pattern_strategy(), b in pattern_strategy()) {
        let common = all_references()
            .iter()
            .find(|r| matches_segments(&a, r) && matches_segments(&b, r));
        let overlap = a.overlap(&b);
        prop_assert_eq!(overlap.is_some(), common.is_some(), "{} / {}: {:?}", a, b, common);
        if let Some(example) = overlap {
            let (registry, repository) = split(&example);
            prop_assert!(a.matches(registry, repository) && b.matches(registry, repository));
        }
    }
}
