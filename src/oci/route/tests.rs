use http::Method;
use proptest::prelude::*;

use super::*;

const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// One line per outcome, so a table row reads as "this request means that".
fn describe(result: &Result<Route, RouteError>) -> String {
    match result {
        Ok(route) => {
            let method = match route.method {
                ReadMethod::Get => "GET",
                ReadMethod::Head => "HEAD",
            };
            let mut out = format!("{method} {}", route.endpoint.kind());
            match &route.endpoint {
                Endpoint::Base => {}
                Endpoint::Manifest { name, reference } => {
                    out += &format!(" {name} {}", short(reference.as_str()))
                }
                Endpoint::Blob { name, digest } => {
                    out += &format!(" {name} {}", short(digest.as_str()))
                }
                Endpoint::TagsList { name, n, last } => {
                    out += &format!(" {name}");
                    if let Some(n) = n {
                        out += &format!(" n={n}");
                    }
                    if let Some(last) = last {
                        out += &format!(" last={last}");
                    }
                }
                Endpoint::Referrers {
                    name,
                    digest,
                    artifact_type,
                } => {
                    out += &format!(" {name} {}", short(digest.as_str()));
                    if let Some(t) = artifact_type {
                        out += &format!(" type={t}");
                    }
                }
            }
            if let Some(ns) = &route.ns {
                out += &format!(" ns={ns}");
            }
            out
        }
        Err(err) => format!("{} {} {}", variant(err), err.status().as_u16(), err.code()),
    }
}

/// `sha256:aaaaaa` for the test digest, anything else unchanged.
fn short(reference: &str) -> String {
    match reference.split_once(':') {
        Some((alg, hex)) if hex.len() > 6 => format!("{alg}:{}", &hex[..6]),
        _ => reference.to_owned(),
    }
}

/// The error variant, and for wrapped errors the inner variant: `InvalidName/TooLong`.
fn variant(err: &RouteError) -> String {
    let first_word = |debug: String| {
        debug
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let outer = first_word(format!("{err:?}"));
    let inner = match err {
        RouteError::InvalidName(e) => Some(format!("{e:?}")),
        RouteError::InvalidTag(e) | RouteError::InvalidLast(e) => Some(format!("{e:?}")),
        RouteError::InvalidDigest(e) => Some(format!("{e:?}")),
        RouteError::InvalidNamespace(e) => Some(format!("{e:?}")),
        RouteError::InvalidArtifactType(e) => Some(format!("{e:?}")),
        _ => None,
    };
    match inner {
        Some(inner) => format!("{outer}/{}", first_word(inner)),
        None => outer,
    }
}

/// Runs rows of the form `"METHOD /path[?query] => outcome"`; `{D}` in the path stands for
/// the test digest, and `?` with nothing after it for an empty query.
fn check<S: AsRef<str>>(rows: &[S]) {
    let mut failures = Vec::new();
    for row in rows {
        let row = row.as_ref();
        let (request, expected) = row.split_once(" => ").expect("row has ' => '");
        let (method, target) = request.split_once(' ').unwrap_or((request, ""));
        let method = Method::from_bytes(method.as_bytes()).expect("valid method");
        let target = target.replace("{D}", D);
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target.as_str(), None),
        };
        let got = describe(&parse(&method, path, query));
        if got != expected {
            failures.push(format!("{row}\n       got: {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn base() {
    check(&[
        "GET /v2/ => GET base",
        "GET /v2 => GET base",
        "HEAD /v2/ => HEAD base",
        "GET /v2/? => GET base",
        "GET /v2/?ns=docker.io => GET base ns=docker.io",
        "GET /v2// => NotFound 404 UNSUPPORTED",
        "GET /v3/ => NotFound 404 UNSUPPORTED",
        "GET /V2/ => NotFound 404 UNSUPPORTED",
        "GET /v2x => NotFound 404 UNSUPPORTED",
        "GET / => NotFound 404 UNSUPPORTED",
        "GET  => NotFound 404 UNSUPPORTED",
        "GET /v2/_catalog => NotFound 404 UNSUPPORTED",
        "GET /healthz => NotFound 404 UNSUPPORTED",
    ]);
}

#[test]
fn manifests() {
    check(&[
        "GET /v2/library/nginx/manifests/latest => GET manifest library/nginx latest",
        "HEAD /v2/library/nginx/manifests/latest => HEAD manifest library/nginx latest",
        "GET /v2/nginx/manifests/{D} => GET manifest nginx sha256:aaaaaa",
        "GET /v2/a/b/c/d/manifests/v1.0 => GET manifest a/b/c/d v1.0",
        "GET /v2/nginx/manifests/1.25-alpine_x => GET manifest nginx 1.25-alpine_x",
        // Endpoint words inside names: matched from the end, as distribution's
        // routes_test.go expects.
        "GET /v2/a/manifests/manifests/x => GET manifest a/manifests x",
        "GET /v2/manifests/manifests/latest => GET manifest manifests latest",
        "GET /v2/a/manifests/manifests => GET manifest a manifests",
        "GET /v2/foo/bar/manifests/manifests/tags => GET manifest foo/bar/manifests tags",
        "GET /v2/foo/bar/manifests/tags/list => GET tags foo/bar/manifests",
        "GET /v2/blobs/manifests/latest => GET manifest blobs latest",
        "GET /v2/a/manifests/x/blobs/{D} => GET blob a/manifests/x sha256:aaaaaa",
        "GET /v2/a/manifests/x/y => NotFound 404 UNSUPPORTED",
        // Empty, missing and malformed references; trailing slashes.
        "GET /v2/a/manifests/ => InvalidTag/Empty 404 MANIFEST_UNKNOWN",
        "GET /v2/a/manifests => NotFound 404 UNSUPPORTED",
        "GET /v2/manifests/latest => NotFound 404 UNSUPPORTED",
        "GET /v2/a/manifests/latest/ => NotFound 404 UNSUPPORTED",
        "GET /v2/a/manifests/-bad => InvalidTag/InvalidStart 404 MANIFEST_UNKNOWN",
        "GET /v2/a/manifests/.. => InvalidTag/InvalidStart 404 MANIFEST_UNKNOWN",
        "GET /v2/a/manifests/md5:abc => InvalidDigest/UnsupportedAlgorithm 400 DIGEST_INVALID",
        "GET /v2/a/manifests/sha256:abc => InvalidDigest/InvalidLength 400 DIGEST_INVALID",
        "GET /v2/a/manifests/:latest => InvalidDigest/InvalidAlgorithm 400 DIGEST_INVALID",
        // Names.
        "GET /v2//manifests/latest => InvalidName/Empty 400 NAME_INVALID",
        "GET /v2//a/manifests/latest => InvalidName/EmptyComponent 400 NAME_INVALID",
        "GET /v2/a//b/manifests/latest => InvalidName/EmptyComponent 400 NAME_INVALID",
        "GET /v2/Library/Nginx/manifests/latest => InvalidName/InvalidComponent 400 NAME_INVALID",
        "GET /v2/a/../b/manifests/latest => InvalidName/InvalidComponent 400 NAME_INVALID",
        "GET /v2/../manifests/latest => InvalidName/InvalidComponent 400 NAME_INVALID",
        "GET /v2/./a/manifests/latest => InvalidName/InvalidComponent 400 NAME_INVALID",
        "GET /v2/a\\b/manifests/latest => InvalidName/InvalidComponent 400 NAME_INVALID",
        "GET /v2/localhost:5000/a/manifests/latest => InvalidName/InvalidComponent 400 NAME_INVALID",
        "GET /v2/a/\u{4e0d}b/manifests/latest => InvalidName/InvalidComponent 400 NAME_INVALID",
        // Percent-encoding is never decoded in the path.
        "GET /v2/a%2fb/manifests/latest => PercentEncoded 400 NAME_INVALID",
        "GET /v2/a%2Fb/manifests/latest => PercentEncoded 400 NAME_INVALID",
        "GET /v2/%2e%2e/manifests/latest => PercentEncoded 400 NAME_INVALID",
        "GET /v2/a/manifests/%2e%2e => PercentEncoded 400 NAME_INVALID",
        "GET /v2/a/manifests%2flatest => PercentEncoded 400 NAME_INVALID",
        "GET /v2/a/manifests/latest% => PercentEncoded 400 NAME_INVALID",
    ]);

    // Length limits: names of 255 and 256 bytes, tags of 129 characters.
    let at_limit = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    check(&[
        format!("GET /v2/{at_limit}/manifests/latest => GET manifest {at_limit} latest"),
        format!("GET /v2/{at_limit}c/manifests/latest => InvalidName/TooLong 400 NAME_INVALID"),
        format!(
            "GET /v2/a/manifests/{} => InvalidTag/TooLong 404 MANIFEST_UNKNOWN",
            "t".repeat(129)
        ),
    ]);
}

#[test]
fn blobs() {
    check(&[
        "GET /v2/library/nginx/blobs/{D} => GET blob library/nginx sha256:aaaaaa",
        "HEAD /v2/library/nginx/blobs/{D} => HEAD blob library/nginx sha256:aaaaaa",
        "GET /v2/a/B/blobs/{D} => InvalidName/InvalidComponent 400 NAME_INVALID",
        "GET /v2/a/blobs/latest => InvalidDigest/MissingSeparator 400 DIGEST_INVALID",
        "GET /v2/a/blobs/ => InvalidDigest/MissingSeparator 400 DIGEST_INVALID",
        "GET /v2/a/blobs/uploads/ => BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        "GET /v2/a/blobs/uploads => BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        "GET /v2/a/blobs/uploads/0b9e-uuid => BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        "HEAD /v2/a/b/blobs/uploads/0b9e-uuid => BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        "GET /v2/A/blobs/uploads => BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        "GET /v2/A/blobs/uploads/ => BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
    ]);
    check(&[
        format!(
            "GET /v2/a/blobs/sha512:{} => GET blob a sha512:bbbbbb",
            "b".repeat(128)
        ),
        format!(
            "GET /v2/a/blobs/md5:{} => InvalidDigest/UnsupportedAlgorithm 400 DIGEST_INVALID",
            "c".repeat(32)
        ),
        format!(
            "GET /v2/a/blobs/sha256:{} => InvalidDigest/InvalidHex 400 DIGEST_INVALID",
            "A".repeat(64)
        ),
    ]);
}

#[test]
fn tags_list() {
    check(&[
        "GET /v2/a/b/tags/list => GET tags a/b",
        "GET /v2/a/tags/list?n=10&last=v1.2 => GET tags a n=10 last=v1.2",
        "GET /v2/a/tags/list?last=v1&n=0 => GET tags a n=0 last=v1",
        "GET /v2/a/tags/list?n=&last= => GET tags a",
        "GET /v2/a/tags/list?n=4294967295 => GET tags a n=4294967295",
        "GET /v2/tags/list/tags/list => GET tags tags/list",
        "GET /v2/a/tags/list?n=abc => InvalidPageSize 400 UNSUPPORTED",
        "GET /v2/a/tags/list?n=-1 => InvalidPageSize 400 UNSUPPORTED",
        "GET /v2/a/tags/list?n=+5 => InvalidPageSize 400 UNSUPPORTED",
        "GET /v2/a/tags/list?n=4294967296 => InvalidPageSize 400 UNSUPPORTED",
        "GET /v2/a/tags/list?n=1&n=2 => DuplicateParameter 400 UNSUPPORTED",
        "GET /v2/a/tags/list?last=-x => InvalidLast/InvalidStart 400 UNSUPPORTED",
        "GET /v2/a/tags/list?last=a%2Fb => InvalidLast/InvalidCharacter 400 UNSUPPORTED",
        "HEAD /v2/a/tags/list => MethodNotAllowed 405 UNSUPPORTED",
        "GET /v2/a/tags/list/ => NotFound 404 UNSUPPORTED",
        "GET /v2/tags/list => NotFound 404 UNSUPPORTED",
        "GET /v2/a/tags => NotFound 404 UNSUPPORTED",
        "GET /v2/A/tags/list => InvalidName/InvalidComponent 400 NAME_INVALID",
    ]);
}

#[test]
fn referrers() {
    let sbom = "application/vnd.example.sbom.v1";
    let manifest = "application/vnd.oci.image.manifest.v1+json";
    check(&[
        "GET /v2/a/b/referrers/{D} => GET referrers a/b sha256:aaaaaa".to_owned(),
        format!("GET /v2/a/referrers/{{D}}?artifactType={sbom} => GET referrers a sha256:aaaaaa type={sbom}"),
        // Encoded, or with a literal `+` (never read as a space).
        format!(
            "GET /v2/a/referrers/{{D}}?artifactType=application%2Fvnd.oci.image.manifest.v1%2Bjson \
             => GET referrers a sha256:aaaaaa type={manifest}"
        ),
        format!(
            "GET /v2/a/referrers/{{D}}?artifactType={manifest} => GET referrers a sha256:aaaaaa type={manifest}"
        ),
        "GET /v2/a/referrers/{D}?artifactType=bogus => InvalidArtifactType/Invalid 400 UNSUPPORTED".to_owned(),
        "HEAD /v2/a/referrers/{D} => MethodNotAllowed 405 UNSUPPORTED".to_owned(),
        "GET /v2/a/referrers/latest => InvalidDigest/MissingSeparator 400 DIGEST_INVALID".to_owned(),
        "GET /v2/a/referrers/ => InvalidDigest/MissingSeparator 400 DIGEST_INVALID".to_owned(),
    ]);
}

#[test]
fn writes_and_other_methods() {
    check(&[
        "POST /v2/a/blobs/uploads/ => ReadOnly 405 UNSUPPORTED",
        "POST /v2/a/blobs/uploads/?mount={D}&from=b => ReadOnly 405 UNSUPPORTED",
        "PATCH /v2/a/blobs/uploads/uuid => ReadOnly 405 UNSUPPORTED",
        "PUT /v2/a/blobs/uploads/uuid?digest={D} => ReadOnly 405 UNSUPPORTED",
        "PUT /v2/a/manifests/latest => ReadOnly 405 UNSUPPORTED",
        "DELETE /v2/a/manifests/latest => ReadOnly 405 UNSUPPORTED",
        "DELETE /v2/a/blobs/{D} => ReadOnly 405 UNSUPPORTED",
        "DELETE /v2/ => ReadOnly 405 UNSUPPORTED",
        "POST /v2 => ReadOnly 405 UNSUPPORTED",
        // Refused before the path is looked at, so a bad name still says "read-only".
        "PUT /v2/%2e%2e/manifests/x => ReadOnly 405 UNSUPPORTED",
        "POST /v2/nothing/here => ReadOnly 405 UNSUPPORTED",
        "POST /upload => NotFound 404 UNSUPPORTED",
        "OPTIONS /v2/ => MethodNotAllowed 405 UNSUPPORTED",
        "TRACE /v2/a/manifests/latest => MethodNotAllowed 405 UNSUPPORTED",
        "PURGE /v2/a/manifests/latest => MethodNotAllowed 405 UNSUPPORTED",
    ]);
    let allow = |method: Method, path| parse(&method, path, None).unwrap_err().allow();
    assert_eq!(allow(Method::PUT, "/v2/a/manifests/x"), Some("GET, HEAD"));
    assert_eq!(allow(Method::HEAD, "/v2/a/tags/list"), Some("GET"));
    assert_eq!(allow(Method::GET, "/x"), None);
}

#[test]
fn namespace_and_query_tolerance() {
    let ok = "GET manifest library/nginx latest";
    let rows = [
        (
            "ns=docker.io",
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            "ns=localhost%3A5000",
            "GET manifest library/nginx latest ns=localhost:5000",
        ),
        (
            "ns=localhost:5000",
            "GET manifest library/nginx latest ns=localhost:5000",
        ),
        (
            "ns=Docker.IO",
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            "ns=%5B%3A%3A1%5D%3A5000",
            "GET manifest library/nginx latest ns=[::1]:5000",
        ),
        ("ns=", ok),
        ("ns", ok),
        (
            "ns=docker.io%2Flibrary",
            "InvalidNamespace/InvalidHost 400 NAME_INVALID",
        ),
        (
            "ns=docker.io:0",
            "InvalidNamespace/InvalidPort 400 NAME_INVALID",
        ),
        ("ns=a&ns=b", "DuplicateParameter 400 UNSUPPORTED"),
        (
            "ns=docker.io&ns=docker.io",
            "DuplicateParameter 400 UNSUPPORTED",
        ),
        ("ns=%zz", "InvalidQueryEncoding 400 UNSUPPORTED"),
        ("ns=%+1", "InvalidQueryEncoding 400 UNSUPPORTED"),
        ("ns=docker.io%", "InvalidQueryEncoding 400 UNSUPPORTED"),
        ("ns=%E2%28%A1", "InvalidQueryEncoding 400 UNSUPPORTED"),
        // Unknown parameters, and garbage in them, are ignored.
        (
            "foo=%zz&ns=docker.io",
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            "&&=&ns=docker.io&x&=y",
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            "%zz=1&%6Es=docker.io",
            "GET manifest library/nginx latest ns=docker.io",
        ),
        ("NS=docker.io", ok),
        // Parameters of other endpoints are unknown here, whatever their value.
        ("n=abc&last=-&artifactType=x", ok),
    ];
    let rows: Vec<String> = rows
        .iter()
        .map(|(query, expected)| {
            format!("GET /v2/library/nginx/manifests/latest?{query} => {expected}")
        })
        .collect();
    check(&rows);
}

#[test]
fn path_round_trips() {
    let cases = [
        "/v2/".to_owned(),
        "/v2/library/nginx/manifests/latest".to_owned(),
        format!("/v2/a/manifests/manifests/{D}"),
        format!("/v2/a/blobs/{D}"),
        "/v2/a/b/tags/list".to_owned(),
        format!("/v2/a/referrers/{D}"),
    ];
    for path in cases {
        let route = parse(&Method::GET, &path, None).unwrap();
        assert_eq!(route.path(), path);
    }
    assert_eq!(parse(&Method::GET, "/v2", None).unwrap().path(), "/v2/");
}

#[test]
fn errors_render_as_oci_bodies() {
    let err = parse(&Method::GET, "/v2/A/manifests/latest", None).unwrap_err();
    let body = crate::oci::error_body(err.code(), &err.to_string());
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["errors"][0]["code"], "NAME_INVALID");
    assert!(json["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("\"A\""));

    // Client input copied into messages is bounded.
    let long = format!("/v2/{}/x", "A".repeat(10_000));
    let err = parse(&Method::GET, &long, None).unwrap_err();
    assert!(err.to_string().len() < 300, "{}", err.to_string().len());
}

// === properties ===

fn any_method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::OPTIONS),
    ]
}

/// Paths built from the pieces the parser cares about, so that deep branches are reached far
/// more often than by random strings.
fn structured_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("manifests".to_owned()),
        Just("blobs".to_owned()),
        Just("uploads".to_owned()),
        Just("tags".to_owned()),
        Just("list".to_owned()),
        Just("referrers".to_owned()),
        Just(D.to_owned()),
        Just("..".to_owned()),
        Just("%2f".to_owned()),
        Just(String::new()),
        "[a-z0-9._:-]{1,12}",
        "[A-Za-z0-9._~:%-]{1,8}",
        ".{0,6}",
    ];
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(piece, 0..8),
    )
        .prop_map(|(v2, pieces)| {
            let prefix = if v2 { "/v2/" } else { "/" };
            format!("{prefix}{}", pieces.join("/"))
        })
}

fn any_query() -> impl Strategy<Value = Option<String>> {
    let pair = prop_oneof![
        "(ns|n|last|artifactType|x)=[A-Za-z0-9.%:/+-]{0,12}",
        ".{0,12}",
    ];
    prop::option::of(prop::collection::vec(pair, 0..4).prop_map(|pairs| pairs.join("&")))
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_input(method in any_method(), path in ".{0,80}", query in prop::option::of(".{0,40}")) {
        let _ = parse(&method, &path, query.as_deref());
    }

    #[test]
    fn accepted_routes_rebuild_the_request_path(method in any_method(), path in structured_path(), query in any_query()) {
        if let Ok(route) = parse(&method, &path, query.as_deref()) {
            // Nothing was decoded or normalised: the validated parts spell the same path.
            let expected = if path == "/v2" { "/v2/" } else { path.as_str() };
            prop_assert_eq!(route.path(), expected);
            if let Some(name) = route.endpoint.name() {
                let prefix = format!("/v2/{name}/");
                prop_assert!(path.starts_with(&prefix));
                prop_assert!(!name.as_str().split('/').any(|c| c == ".." || c == "." || c.is_empty()));
            }
        }
    }

    #[test]
    fn accepted_names_display_identically(s in "[a-z0-9._/-]{1,40}") {
        if let Ok(name) = RepoName::parse(&s) {
            prop_assert_eq!(name.to_string(), s.clone());
            prop_assert_eq!(name.as_str(), s.as_str());
            let reparsed = RepoName::parse(&name.to_string());
            prop_assert_eq!(reparsed.as_ref(), Ok(&name));
        }
    }

    #[test]
    fn grammar_names_are_accepted(s in "[a-z0-9]{1,5}(([._]|__|-{1,3})[a-z0-9]{1,5}){0,3}(/[a-z0-9]{1,5}(([._]|__|-{1,3})[a-z0-9]{1,5}){0,3}){0,4}") {
        prop_assert!(RepoName::parse(&s).is_ok(), "{}", s);
    }
}
