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

fn check(cases: &[(Method, &str, Option<&str>, &str)]) {
    let mut failures = Vec::new();
    for (method, path, query, expected) in cases {
        let got = describe(&parse(method, path, *query));
        if got != *expected {
            failures.push(format!(
                "{method} {path} ?{query:?}\n  expected: {expected}\n       got: {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn base() {
    check(&[
        (Method::GET, "/v2/", None, "GET base"),
        (Method::GET, "/v2", None, "GET base"),
        (Method::HEAD, "/v2/", None, "HEAD base"),
        (Method::GET, "/v2/", Some(""), "GET base"),
        (
            Method::GET,
            "/v2/",
            Some("ns=docker.io"),
            "GET base ns=docker.io",
        ),
        (Method::GET, "/v2//", None, "NotFound 404 UNSUPPORTED"),
        (Method::GET, "/v3/", None, "NotFound 404 UNSUPPORTED"),
        (Method::GET, "/V2/", None, "NotFound 404 UNSUPPORTED"),
        (Method::GET, "/v2x", None, "NotFound 404 UNSUPPORTED"),
        (Method::GET, "/", None, "NotFound 404 UNSUPPORTED"),
        (Method::GET, "", None, "NotFound 404 UNSUPPORTED"),
        (
            Method::GET,
            "/v2/_catalog",
            None,
            "NotFound 404 UNSUPPORTED",
        ),
        (Method::GET, "/healthz", None, "NotFound 404 UNSUPPORTED"),
    ]);
}

#[test]
fn manifests() {
    let at_limit = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    let over_limit = format!("{at_limit}c");
    let (p255, p256) = (
        format!("/v2/{at_limit}/manifests/latest"),
        format!("/v2/{over_limit}/manifests/latest"),
    );
    let expect255 = format!("GET manifest {at_limit} latest");
    let long_tag = format!("/v2/a/manifests/{}", "t".repeat(129));
    let by_digest = format!("/v2/nginx/manifests/{D}");
    let nested_blob = format!("/v2/a/manifests/x/blobs/{D}");
    check(&[
        (
            Method::GET,
            "/v2/library/nginx/manifests/latest",
            None,
            "GET manifest library/nginx latest",
        ),
        (
            Method::HEAD,
            "/v2/library/nginx/manifests/latest",
            None,
            "HEAD manifest library/nginx latest",
        ),
        (
            Method::GET,
            &by_digest,
            None,
            "GET manifest nginx sha256:aaaaaa",
        ),
        (
            Method::GET,
            "/v2/a/b/c/d/manifests/v1.0",
            None,
            "GET manifest a/b/c/d v1.0",
        ),
        (
            Method::GET,
            "/v2/nginx/manifests/1.25-alpine_x",
            None,
            "GET manifest nginx 1.25-alpine_x",
        ),
        // Repositories with endpoint words in their names: matched from the end, as
        // distribution's routes_test.go expects.
        (
            Method::GET,
            "/v2/a/manifests/manifests/x",
            None,
            "GET manifest a/manifests x",
        ),
        (
            Method::GET,
            "/v2/manifests/manifests/latest",
            None,
            "GET manifest manifests latest",
        ),
        (
            Method::GET,
            "/v2/a/manifests/manifests",
            None,
            "GET manifest a manifests",
        ),
        (
            Method::GET,
            "/v2/foo/bar/manifests/manifests/tags",
            None,
            "GET manifest foo/bar/manifests tags",
        ),
        (
            Method::GET,
            "/v2/foo/bar/manifests/tags/list",
            None,
            "GET tags_list foo/bar/manifests",
        ),
        (
            Method::GET,
            "/v2/blobs/manifests/latest",
            None,
            "GET manifest blobs latest",
        ),
        (
            Method::GET,
            &nested_blob,
            None,
            "GET blob a/manifests/x sha256:aaaaaa",
        ),
        (
            Method::GET,
            "/v2/a/manifests/x/y",
            None,
            "NotFound 404 UNSUPPORTED",
        ),
        // Empty and malformed references.
        (
            Method::GET,
            "/v2/a/manifests/",
            None,
            "InvalidTag/Empty 404 MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/a/manifests",
            None,
            "NotFound 404 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/manifests/latest",
            None,
            "NotFound 404 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/manifests/latest/",
            None,
            "NotFound 404 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/manifests/-bad",
            None,
            "InvalidTag/InvalidStart 404 MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/a/manifests/..",
            None,
            "InvalidTag/InvalidStart 404 MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            &long_tag,
            None,
            "InvalidTag/TooLong 404 MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/a/manifests/md5:abc",
            None,
            "InvalidDigest/UnsupportedAlgorithm 400 DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/manifests/sha256:abc",
            None,
            "InvalidDigest/InvalidLength 400 DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/manifests/:latest",
            None,
            "InvalidDigest/InvalidAlgorithm 400 DIGEST_INVALID",
        ),
        // Names.
        (Method::GET, &p255, None, &expect255),
        (
            Method::GET,
            &p256,
            None,
            "InvalidName/TooLong 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2//manifests/latest",
            None,
            "InvalidName/Empty 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2//a/manifests/latest",
            None,
            "InvalidName/EmptyComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a//b/manifests/latest",
            None,
            "InvalidName/EmptyComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/Library/Nginx/manifests/latest",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/../b/manifests/latest",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/../manifests/latest",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/./a/manifests/latest",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a\\b/manifests/latest",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/localhost:5000/a/manifests/latest",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/\u{4e0d}b/manifests/latest",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        // Percent-encoding is never decoded in the path.
        (
            Method::GET,
            "/v2/a%2fb/manifests/latest",
            None,
            "PercentEncoded 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a%2Fb/manifests/latest",
            None,
            "PercentEncoded 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/%2e%2e/manifests/latest",
            None,
            "PercentEncoded 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/manifests/%2e%2e",
            None,
            "PercentEncoded 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/manifests%2flatest",
            None,
            "PercentEncoded 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/manifests/latest%",
            None,
            "PercentEncoded 400 NAME_INVALID",
        ),
    ]);
}

#[test]
fn blobs() {
    let blob = format!("/v2/library/nginx/blobs/{D}");
    let sha512 = format!("/v2/a/blobs/sha512:{}", "b".repeat(128));
    let md5 = format!("/v2/a/blobs/md5:{}", "c".repeat(32));
    let upper = format!("/v2/a/blobs/sha256:{}", "A".repeat(64));
    let bad_name = format!("/v2/a/B/blobs/{D}");
    check(&[
        (
            Method::GET,
            &blob,
            None,
            "GET blob library/nginx sha256:aaaaaa",
        ),
        (
            Method::HEAD,
            &blob,
            None,
            "HEAD blob library/nginx sha256:aaaaaa",
        ),
        (Method::GET, &sha512, None, "GET blob a sha512:bbbbbb"),
        (
            Method::GET,
            &md5,
            None,
            "InvalidDigest/UnsupportedAlgorithm 400 DIGEST_INVALID",
        ),
        (
            Method::GET,
            &upper,
            None,
            "InvalidDigest/InvalidHex 400 DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/blobs/latest",
            None,
            "InvalidDigest/MissingSeparator 400 DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/blobs/",
            None,
            "InvalidDigest/MissingSeparator 400 DIGEST_INVALID",
        ),
        (
            Method::GET,
            &bad_name,
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/blobs/uploads/",
            None,
            "BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/a/blobs/uploads",
            None,
            "BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/a/blobs/uploads/0b9e-uuid",
            None,
            "BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::HEAD,
            "/v2/a/b/blobs/uploads/0b9e-uuid",
            None,
            "BlobUpload 404 BLOB_UPLOAD_UNKNOWN",
        ),
    ]);
}

#[test]
fn tags_list() {
    check(&[
        (Method::GET, "/v2/a/b/tags/list", None, "GET tags_list a/b"),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=10&last=v1.2"),
            "GET tags_list a n=10 last=v1.2",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("last=v1&n=0"),
            "GET tags_list a n=0 last=v1",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=&last="),
            "GET tags_list a",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=4294967295"),
            "GET tags_list a n=4294967295",
        ),
        (
            Method::GET,
            "/v2/tags/list/tags/list",
            None,
            "GET tags_list tags/list",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=abc"),
            "InvalidPageSize 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=-1"),
            "InvalidPageSize 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=+5"),
            "InvalidPageSize 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=4294967296"),
            "InvalidPageSize 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("n=1&n=2"),
            "DuplicateParameter 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("last=-x"),
            "InvalidLast/InvalidStart 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            Some("last=a%2Fb"),
            "InvalidLast/InvalidCharacter 400 UNSUPPORTED",
        ),
        (
            Method::HEAD,
            "/v2/a/tags/list",
            None,
            "MethodNotAllowed 405 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/tags/list/",
            None,
            "NotFound 404 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/tags/list",
            None,
            "NotFound 404 UNSUPPORTED",
        ),
        (Method::GET, "/v2/a/tags", None, "NotFound 404 UNSUPPORTED"),
        (
            Method::GET,
            "/v2/A/tags/list",
            None,
            "InvalidName/InvalidComponent 400 NAME_INVALID",
        ),
    ]);
}

#[test]
fn referrers() {
    let path = format!("/v2/a/b/referrers/{D}");
    check(&[
        (Method::GET, &path, None, "GET referrers a/b sha256:aaaaaa"),
        (
            Method::GET,
            &path,
            Some("artifactType=application/vnd.example.sbom.v1"),
            "GET referrers a/b sha256:aaaaaa type=application/vnd.example.sbom.v1",
        ),
        (
            Method::GET,
            &path,
            Some("artifactType=application%2Fvnd.oci.image.manifest.v1%2Bjson"),
            "GET referrers a/b sha256:aaaaaa type=application/vnd.oci.image.manifest.v1+json",
        ),
        (
            Method::GET,
            &path,
            Some("artifactType=application/vnd.oci.image.manifest.v1+json"),
            "GET referrers a/b sha256:aaaaaa type=application/vnd.oci.image.manifest.v1+json",
        ),
        (
            Method::GET,
            &path,
            Some("artifactType=bogus"),
            "InvalidArtifactType/Invalid 400 UNSUPPORTED",
        ),
        (
            Method::HEAD,
            &path,
            None,
            "MethodNotAllowed 405 UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/a/referrers/latest",
            None,
            "InvalidDigest/MissingSeparator 400 DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/referrers/",
            None,
            "InvalidDigest/MissingSeparator 400 DIGEST_INVALID",
        ),
    ]);
}

#[test]
fn writes_and_other_methods() {
    let blob = format!("/v2/a/blobs/{D}");
    let custom = Method::from_bytes(b"PURGE").unwrap();
    check(&[
        (
            Method::POST,
            "/v2/a/blobs/uploads/",
            None,
            "ReadOnly 405 UNSUPPORTED",
        ),
        (
            Method::POST,
            "/v2/a/blobs/uploads/",
            Some("mount=x&from=b"),
            "ReadOnly 405 UNSUPPORTED",
        ),
        (
            Method::PATCH,
            "/v2/a/blobs/uploads/uuid",
            None,
            "ReadOnly 405 UNSUPPORTED",
        ),
        (
            Method::PUT,
            "/v2/a/blobs/uploads/uuid",
            Some("digest=x"),
            "ReadOnly 405 UNSUPPORTED",
        ),
        (
            Method::PUT,
            "/v2/a/manifests/latest",
            None,
            "ReadOnly 405 UNSUPPORTED",
        ),
        (
            Method::DELETE,
            "/v2/a/manifests/latest",
            None,
            "ReadOnly 405 UNSUPPORTED",
        ),
        (Method::DELETE, &blob, None, "ReadOnly 405 UNSUPPORTED"),
        (Method::DELETE, "/v2/", None, "ReadOnly 405 UNSUPPORTED"),
        (Method::POST, "/v2", None, "ReadOnly 405 UNSUPPORTED"),
        // Refused before the path is looked at, so a bad name still says "read-only".
        (
            Method::PUT,
            "/v2/%2e%2e/manifests/x",
            None,
            "ReadOnly 405 UNSUPPORTED",
        ),
        (
            Method::POST,
            "/v2/nothing/here",
            None,
            "ReadOnly 405 UNSUPPORTED",
        ),
        (Method::POST, "/upload", None, "NotFound 404 UNSUPPORTED"),
        (
            Method::OPTIONS,
            "/v2/",
            None,
            "MethodNotAllowed 405 UNSUPPORTED",
        ),
        (
            Method::TRACE,
            "/v2/a/manifests/latest",
            None,
            "MethodNotAllowed 405 UNSUPPORTED",
        ),
        (
            custom,
            "/v2/a/manifests/latest",
            None,
            "MethodNotAllowed 405 UNSUPPORTED",
        ),
    ]);
    let read_only = parse(&Method::PUT, "/v2/a/manifests/x", None).unwrap_err();
    assert_eq!(read_only.allow(), Some("GET, HEAD"));
    let head_tags = parse(&Method::HEAD, "/v2/a/tags/list", None).unwrap_err();
    assert_eq!(head_tags.allow(), Some("GET"));
    assert_eq!(parse(&Method::GET, "/x", None).unwrap_err().allow(), None);
}

#[test]
fn namespace_and_query_tolerance() {
    let m = "/v2/library/nginx/manifests/latest";
    check(&[
        (
            Method::GET,
            m,
            Some("ns=docker.io"),
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            Method::GET,
            m,
            Some("ns=localhost%3A5000"),
            "GET manifest library/nginx latest ns=localhost:5000",
        ),
        (
            Method::GET,
            m,
            Some("ns=localhost:5000"),
            "GET manifest library/nginx latest ns=localhost:5000",
        ),
        (
            Method::GET,
            m,
            Some("ns=Docker.IO"),
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            Method::GET,
            m,
            Some("ns=%5B%3A%3A1%5D%3A5000"),
            "GET manifest library/nginx latest ns=[::1]:5000",
        ),
        (
            Method::GET,
            m,
            Some("ns="),
            "GET manifest library/nginx latest",
        ),
        (
            Method::GET,
            m,
            Some("ns"),
            "GET manifest library/nginx latest",
        ),
        (
            Method::GET,
            m,
            Some("ns=docker.io%2Flibrary"),
            "InvalidNamespace/InvalidHost 400 NAME_INVALID",
        ),
        (
            Method::GET,
            m,
            Some("ns=docker.io:0"),
            "InvalidNamespace/InvalidPort 400 NAME_INVALID",
        ),
        (
            Method::GET,
            m,
            Some("ns=a&ns=b"),
            "DuplicateParameter 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            m,
            Some("ns=docker.io&ns=docker.io"),
            "DuplicateParameter 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            m,
            Some("ns=%zz"),
            "InvalidQueryEncoding 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            m,
            Some("ns=%+1"),
            "InvalidQueryEncoding 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            m,
            Some("ns=docker.io%"),
            "InvalidQueryEncoding 400 UNSUPPORTED",
        ),
        (
            Method::GET,
            m,
            Some("ns=%E2%28%A1"),
            "InvalidQueryEncoding 400 UNSUPPORTED",
        ),
        // Unknown parameters, and garbage in them, are ignored.
        (
            Method::GET,
            m,
            Some("foo=%zz&ns=docker.io"),
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            Method::GET,
            m,
            Some("&&=&ns=docker.io&x&=y"),
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            Method::GET,
            m,
            Some("%zz=1&%6Es=docker.io"),
            "GET manifest library/nginx latest ns=docker.io",
        ),
        (
            Method::GET,
            m,
            Some("NS=docker.io"),
            "GET manifest library/nginx latest",
        ),
        // Parameters of other endpoints are unknown here, whatever their value.
        (
            Method::GET,
            m,
            Some("n=abc&last=-&artifactType=x"),
            "GET manifest library/nginx latest",
        ),
    ]);
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
