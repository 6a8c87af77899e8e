use super::*;

#[test]
fn accepts_distribution_grammar() {
    let cases = [
        "a",
        "nginx",
        "library/nginx",
        "foo/bar/baz/qux",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "a.b_c__d-e--f",
        "0",
        "123/456",
        "manifests",
        "foo/manifests/tags",
        "docker.io/library/nginx",
    ];
    for case in cases {
        let name = RepoName::parse(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!(name.as_str(), case);
        assert_eq!(name.to_string(), case);
    }
}

#[test]
fn rejects_outside_grammar() {
    let cases = [
        ("", "Empty"),
        ("/", "EmptyComponent"),
        ("/a", "EmptyComponent"),
        ("a/", "EmptyComponent"),
        ("a//b", "EmptyComponent"),
        (".", "InvalidComponent"),
        ("..", "InvalidComponent"),
        ("a/../b", "InvalidComponent"),
        ("a/./b", "InvalidComponent"),
        ("Nginx", "InvalidComponent"),
        ("library/NGINX", "InvalidComponent"),
        ("a%2fb", "InvalidComponent"),
        ("%2e%2e", "InvalidComponent"),
        ("a..b", "InvalidComponent"),
        ("a___b", "InvalidComponent"),
        ("a._b", "InvalidComponent"),
        ("a-.b", "InvalidComponent"),
        ("-a", "InvalidComponent"),
        ("a-", "InvalidComponent"),
        ("_a", "InvalidComponent"),
        ("a.", "InvalidComponent"),
        ("localhost:5000/a", "InvalidComponent"),
        ("a b", "InvalidComponent"),
        ("a\\b", "InvalidComponent"),
        ("caf\u{e9}", "InvalidComponent"),
        ("a\0b", "InvalidComponent"),
    ];
    for (case, expected) in cases {
        let err = RepoName::parse(case).expect_err(case);
        assert!(
            format!("{err:?}").starts_with(expected),
            "{case:?}: unexpected {err:?}"
        );
    }
}

#[test]
fn length_limit_is_255_bytes() {
    let at_limit = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(at_limit.len(), 255);
    assert!(RepoName::parse(&at_limit).is_ok());

    let over = format!("{at_limit}c");
    assert_eq!(RepoName::parse(&over), Err(NameError::TooLong { len: 256 }));
}

#[test]
fn error_context_is_bounded() {
    let long = format!("{}/{}", "A".repeat(200), "b".repeat(50));
    let err = RepoName::parse(&long).unwrap_err();
    assert!(err.to_string().len() < 400, "{err}");
}

#[test]
fn serde_goes_through_parse() {
    let name: RepoName = serde_json::from_str("\"library/nginx\"").unwrap();
    assert_eq!(serde_json::to_string(&name).unwrap(), "\"library/nginx\"");
    assert!(serde_json::from_str::<RepoName>("\"../etc\"").is_err());
    assert!("a/B".parse::<RepoName>().is_err());
    assert!(RepoName::try_from(String::from("a/b")).is_ok());
    assert_eq!(name.components().collect::<Vec<_>>(), ["library", "nginx"]);
}
