use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn descriptor(media_type: &str, digest: &str) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":42}}"#)
}

fn oci_manifest() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}",
            "config":{},
            "layers":[{},{}],
            "subject":{},
            "annotations":{{"Config":"not top-level, ignored"}},
            "artifactType":"application/vnd.example","somethingNew":[1,2,3]}}"#,
        descriptor(OCI_IMAGE_CONFIG, D1),
        descriptor("application/vnd.oci.image.layer.v1.tar+gzip", D2),
        descriptor("application/vnd.oci.image.layer.v1.tar+zstd", D3),
        descriptor(OCI_IMAGE_MANIFEST, D1),
    )
}

fn docker_list() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST_V2}","digest":"{D1}","size":7,
              "platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
            {{"mediaType":"{DOCKER_MANIFEST_V2}","digest":"{D2}","size":8,
              "platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"mediaType":"{DOCKER_MANIFEST_V2}","digest":"{D3}","size":9,
              "platform":{{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1"}}}}]}}"#
    )
}

fn digests(manifest: &Manifest) -> Vec<&str> {
    manifest.references().map(|d| d.digest.as_str()).collect()
}

#[test]
fn oci_image_manifest() {
    let manifest = parse_manifest(oci_manifest().as_bytes(), None).unwrap();
    assert_eq!(manifest.kind(), ManifestKind::OciManifest);
    assert_eq!(manifest.media_type(), OCI_IMAGE_MANIFEST);
    assert_eq!(digests(&manifest), [D1, D2, D3]);
    assert_eq!(manifest.subject().map(|s| s.digest.as_str()), Some(D1));
    let Manifest::Image(image) = &manifest else {
        panic!("not an image")
    };
    assert_eq!(image.config().media_type.as_str(), OCI_IMAGE_CONFIG);
    assert_eq!(image.layers().len(), 2);
    assert_eq!(image.layers()[0].size, 42);
}

#[test]
fn docker_manifest_list_with_platforms() {
    let manifest = parse_manifest(docker_list().as_bytes(), Some(DOCKER_MANIFEST_LIST)).unwrap();
    assert_eq!(manifest.kind(), ManifestKind::DockerManifestList);
    assert_eq!(digests(&manifest), [D1, D2, D3]);
    let Manifest::Index(index) = &manifest else {
        panic!("not an index")
    };
    let arm = index.manifests()[0].platform.as_ref().unwrap();
    assert_eq!(
        (
            arm.os.as_str(),
            arm.architecture.as_str(),
            arm.variant.as_deref()
        ),
        ("linux", "arm64", Some("v8"))
    );
    let windows = index.manifests()[2].platform.as_ref().unwrap();
    assert_eq!(windows.os_version.as_deref(), Some("10.0.17763.1"));
    assert_eq!(
        index.default_platform().map(|d| d.digest.as_str()),
        Some(D2)
    );
    assert!(manifest.subject().is_none());
}

#[test]
fn kinds_and_media_types() {
    let config = descriptor(DOCKER_CONTAINER_CONFIG, D1);
    let layer = descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", D2);
    let child = descriptor(OCI_IMAGE_MANIFEST, D3);
    let empty = descriptor(OCI_EMPTY, D1);
    let cases: Vec<(String, Option<&str>, Result<ManifestKind, &str>)> = vec![
        // Docker schema 2, from the field.
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_V2}","config":{config},"layers":[{layer}]}}"#),
            Some(DOCKER_MANIFEST_V2),
            Ok(ManifestKind::DockerManifest),
        ),
        // OCI index; an empty `layers` is not a second shape.
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[{child}],"layers":[]}}"#),
            None,
            Ok(ManifestKind::OciIndex),
        ),
        // An artifact: empty config, no layers field at all.
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","config":{empty}}}"#),
            None,
            Ok(ManifestKind::OciManifest),
        ),
        // No field: the header decides, parameters and case ignored.
        (
            format!(r#"{{"schemaVersion":2,"config":{config},"layers":[]}}"#),
            Some("Application/VND.oci.image.manifest.v1+json; charset=utf-8"),
            Ok(ManifestKind::OciManifest),
        ),
        // A header that names no manifest kind does not contradict the field.
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[]}}"#),
            Some("application/octet-stream"),
            Ok(ManifestKind::OciIndex),
        ),
        (
            format!(r#"{{"schemaVersion":2,"config":{config}}}"#),
            None,
            Err("MissingMediaType"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"config":{config}}}"#),
            Some("application/json"),
            Err("UnsupportedMediaType"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"config":{config}}}"#),
            Some(""),
            Err("MissingMediaType"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[]}}"#),
            Some(OCI_IMAGE_MANIFEST),
            Err("MediaTypeMismatch"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[]}}"#),
            Some(DOCKER_MANIFEST_V1_SIGNED),
            Err("MediaTypeMismatch"),
        ),
        // The field must be spelled exactly: Go clients compare it byte for byte.
        (
            r#"{"schemaVersion":2,"mediaType":"Application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_owned(),
            None,
            Err("UnsupportedMediaType"),
        ),
        (
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}"#.to_owned(),
            None,
            Err("UnsupportedMediaType"),
        ),
        // Docker schema 1, however it announces itself.
        (
            r#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[{"blobSum":"x"}],"signatures":[]}"#.to_owned(),
            None,
            Err("Schema1"),
        ),
        (
            r#"{"name":"a","fsLayers":[]}"#.to_owned(),
            Some(OCI_IMAGE_MANIFEST),
            Err("Schema1"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_V1}"}}"#),
            None,
            Err("Schema1"),
        ),
        (r#"{"schemaVersion":2}"#.to_owned(), Some(DOCKER_MANIFEST_V1_SIGNED), Err("Schema1")),
        // Schema version.
        (
            format!(r#"{{"mediaType":"{OCI_IMAGE_INDEX}","manifests":[]}}"#),
            None,
            Err("UnsupportedSchemaVersion"),
        ),
        (
            format!(r#"{{"schemaVersion":3,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[]}}"#),
            None,
            Err("UnsupportedSchemaVersion"),
        ),
        (
            format!(r#"{{"schemaVersion":"2","mediaType":"{OCI_IMAGE_INDEX}","manifests":[]}}"#),
            None,
            Err("Json"),
        ),
        // Shapes that mean different things to different parsers.
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[],"config":{config}}}"#),
            None,
            Err("Ambiguous"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[],"layers":[{layer}]}}"#),
            None,
            Err("Ambiguous"),
        ),
        (
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","config":{config},"layers":[],"manifests":[{child}]}}"#
            ),
            None,
            Err("Ambiguous"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","layers":[{layer}]}}"#),
            None,
            Err("MissingConfig"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","config":{config},"Layers":[{layer}]}}"#),
            None,
            Err("CaseVariantKey"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"MEDIATYPE":"{OCI_IMAGE_INDEX}","mediaType":"{OCI_IMAGE_MANIFEST}","config":{config}}}"#),
            None,
            Err("CaseVariantKey"),
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","config":{config},"layers":[],"layers":[{layer}]}}"#),
            None,
            Err("Json"),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (json, header, expected)) in cases.iter().enumerate() {
        let got = parse_manifest(json.as_bytes(), *header);
        let ok = match (&got, expected) {
            (Ok(m), Ok(kind)) => m.kind() == *kind,
            (Err(e), Err(variant)) => format!("{e:?}").starts_with(variant),
            _ => false,
        };
        if !ok {
            failures.push(format!("case {i}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn descriptors_are_validated() {
    let with_layer = |layer: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","config":{},"layers":[{layer}]}}"#,
            descriptor(OCI_IMAGE_CONFIG, D1)
        )
    };
    let bad_layers = [
        descriptor("application/x", &format!("md5:{}", "a".repeat(32))),
        descriptor("application/x", &D2.to_uppercase()),
        descriptor("application/x", "sha256:abc"),
        descriptor("application/x", "../../etc/passwd"),
        descriptor("not a media type", D2),
        format!(r#"{{"digest":"{D2}","size":1}}"#),
        r#"{"mediaType":"application/x","size":1}"#.to_owned(),
        format!(r#"{{"mediaType":"application/x","digest":"{D2}"}}"#),
        format!(r#"{{"mediaType":"application/x","digest":"{D2}","size":-1}}"#),
        format!(r#"{{"mediaType":"application/x","digest":"{D2}","size":1.5}}"#),
        format!(r#"{{"mediaType":"application/x","digest":"{D2}","digest":"{D3}","size":1}}"#),
        "null".to_owned(),
    ];
    for layer in bad_layers {
        let err = parse_manifest(with_layer(&layer).as_bytes(), None).expect_err(&layer);
        assert!(matches!(err, ManifestError::Json(_)), "{layer}: {err:?}");
    }
    // Unknown descriptor fields (urls, annotations, data, artifactType) are ignored.
    let foreign = format!(
        r#"{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{D2}","size":1,
            "urls":["https://example.invalid/x"],"annotations":{{"a":"b"}},"data":"e30=","artifactType":"x/y"}}"#
    );
    assert!(parse_manifest(with_layer(&foreign).as_bytes(), None).is_ok());
}

#[test]
fn not_manifests_at_all() {
    let cases: [&[u8]; 7] = [b"", b"[]", b"null", b"\"x\"", b"{", b"{}{}", b"\xff\xfe"];
    for case in cases {
        assert!(
            parse_manifest(case, Some(OCI_IMAGE_MANIFEST)).is_err(),
            "{case:?}"
        );
    }
    // Deep nesting: skipped iteratively in unknown fields, refused by serde_json's recursion
    // limit in typed ones; never a stack overflow.
    let config = descriptor(OCI_IMAGE_CONFIG, D1);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let in_unknown = format!(r#"{{"schemaVersion":2,"config":{config},"x":{deep}}}"#);
    assert!(parse_manifest(in_unknown.as_bytes(), Some(OCI_IMAGE_MANIFEST)).is_ok());
    let in_typed = format!(r#"{{"schemaVersion":2,"config":{config},"layers":{deep}}}"#);
    assert!(parse_manifest(in_typed.as_bytes(), Some(OCI_IMAGE_MANIFEST)).is_err());
}

#[test]
fn descriptor_count_is_bounded() {
    let config = descriptor(OCI_IMAGE_CONFIG, D1);
    let layer = descriptor("application/vnd.oci.image.layer.v1.tar", D2);
    let manifest = |layers: usize| {
        let layers = vec![layer.as_str(); layers].join(",");
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","config":{config},"layers":[{layers}]}}"#
        )
    };
    assert!(parse_manifest(manifest(MAX_DESCRIPTORS - 1).as_bytes(), None).is_ok());
    let err = parse_manifest(manifest(MAX_DESCRIPTORS).as_bytes(), None).unwrap_err();
    assert!(
        matches!(err, ManifestError::TooManyDescriptors { count } if count == MAX_DESCRIPTORS + 1),
        "{err:?}"
    );
}

#[test]
fn descriptor_serde_round_trip() {
    let json = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":7,"platform":{"architecture":"amd64","os":"linux"}}"#;
    let descriptor: Descriptor = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&descriptor).unwrap(), json);
}

#[test]
fn accept_negotiation() {
    use AcceptDecision::{DefaultPlatform, NotAcceptable, Serve};
    use ManifestKind::{DockerManifest, DockerManifestList, OciIndex, OciManifest};
    let cases: &[(&[&str], ManifestKind, bool, AcceptDecision)] = &[
        // No Accept, or nothing usable in it: whatever there is.
        (&[], OciIndex, true, Serve),
        (&[""], OciManifest, true, Serve),
        (&["garbage", " , "], OciIndex, true, Serve),
        (
            &["application/vnd.oci.image.index.v1+json;q=abc"],
            OciManifest,
            true,
            Serve,
        ),
        // Listed kinds, in any case, with parameters, across values and commas.
        (&[OCI_IMAGE_MANIFEST], OciManifest, true, Serve),
        (
            &["APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON"],
            OciIndex,
            true,
            Serve,
        ),
        (
            &["text/html, application/vnd.oci.image.index.v1+json; q=0.5"],
            OciIndex,
            true,
            Serve,
        ),
        (&["text/html", OCI_IMAGE_INDEX], OciIndex, true, Serve),
        (&["*/*"], OciIndex, true, Serve),
        (&["application/*"], OciManifest, true, Serve),
        // Unlisted OCI kinds: MANIFEST_UNKNOWN, as distribution answers.
        (&[DOCKER_MANIFEST_V2], OciIndex, true, NotAcceptable),
        (&[DOCKER_MANIFEST_V2], OciManifest, false, NotAcceptable),
        (&[OCI_IMAGE_MANIFEST], OciIndex, false, NotAcceptable),
        (&["text/*"], OciIndex, true, NotAcceptable),
        (
            &[
                "application/vnd.oci.image.index.v1+json;q=0",
                OCI_IMAGE_MANIFEST,
            ],
            OciIndex,
            true,
            NotAcceptable,
        ),
        (&["*/*;q=0.0"], OciManifest, true, NotAcceptable),
        // Docker schema 2 is always served; distribution has nothing older to convert to.
        (&[OCI_IMAGE_MANIFEST], DockerManifest, true, Serve),
        (&[], DockerManifest, true, Serve),
        // An unlisted Docker list: the linux/amd64 image for a tag, the list for a digest.
        (
            &[DOCKER_MANIFEST_V2],
            DockerManifestList,
            true,
            DefaultPlatform,
        ),
        (&[DOCKER_MANIFEST_V2], DockerManifestList, false, Serve),
        (
            &[DOCKER_MANIFEST_V2, DOCKER_MANIFEST_LIST],
            DockerManifestList,
            true,
            Serve,
        ),
    ];
    for (accept, kind, by_tag, expected) in cases {
        let got = negotiate(accept.iter().copied(), *kind, *by_tag);
        assert_eq!(got, *expected, "Accept {accept:?}, {kind}, by_tag={by_tag}");
    }
    for kind in [OciManifest, OciIndex, DockerManifest, DockerManifestList] {
        assert!(ACCEPT_MANIFESTS.contains(kind.media_type()));
        assert_eq!(negotiate([ACCEPT_MANIFESTS], kind, true), Serve);
    }
}
