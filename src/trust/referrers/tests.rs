use bytes::Bytes;
use serde_json::{json, Value};

use super::{
    candidates, check, index, tag_index_valid, Listed, Referrer, Source, MAX_CONFIG, MAX_REFERRERS,
};
use crate::oci::Digest;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const NOTATION: &str = "application/vnd.cncf.notary.signature";
const LIMIT: u64 = 4 << 20;

fn subject() -> Digest {
    Digest::sha256_of(b"the image manifest")
}

fn empty_config() -> Value {
    json!({"mediaType": EMPTY, "digest": Digest::sha256_of(b"{}").as_str(), "size": 2})
}

/// A referrer manifest of `subject` with one layer.
fn artifact(subject: &Digest, config: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": NOTATION,
        "config": config,
        "layers": [{"mediaType": "application/jose+json",
                    "digest": Digest::sha256_of(b"envelope").as_str(), "size": 8}],
        "subject": {"mediaType": MANIFEST, "digest": subject.as_str(), "size": 18},
    }))
    .unwrap()
}

fn descriptor(bytes: &[u8], artifact_type: &str) -> Value {
    json!({
        "mediaType": MANIFEST,
        "digest": Digest::sha256_of(bytes).as_str(),
        "size": bytes.len(),
        "artifactType": artifact_type,
    })
}

fn listed(descriptor: Value) -> Listed {
    candidates(vec![descriptor], LIMIT, |_| 0)
        .pop()
        .expect("a candidate")
}

fn checked(bytes: &[u8], listed: Listed) -> Result<Referrer, &'static str> {
    check(
        listed,
        Bytes::copy_from_slice(bytes),
        Some(MANIFEST.to_owned()),
        &subject(),
        Source::Api,
    )
    .map_err(|(_, why)| why)
}

fn digests(listed: &[Listed]) -> Vec<String> {
    listed
        .iter()
        .map(|l| l.digest.as_str().to_owned())
        .collect()
}

#[test]
fn candidates_are_ranked_stably_then_bounded() {
    let listed: Vec<Value> = (0..40u8)
        .map(|i| {
            let kind = if i % 2 == 0 { "other" } else { NOTATION };
            descriptor(&[i], kind)
        })
        .collect();
    let ranked = candidates(listed, LIMIT, |l| {
        u8::from(l.artifact_type.as_deref() != Some(NOTATION))
    });
    assert_eq!(ranked.len(), MAX_REFERRERS);
    // Twenty of the preferred kind: the first sixteen of them, in the registry's order.
    let want: Vec<String> = (0..40u8)
        .filter(|i| i % 2 == 1)
        .take(MAX_REFERRERS)
        .map(|i| Digest::sha256_of(&[i]).as_str().to_owned())
        .collect();
    assert_eq!(digests(&ranked), want);
}

#[test]
fn duplicates_oversized_and_invalid_descriptors_take_no_place() {
    let real = descriptor(b"real", BUNDLE);
    let mut listed = vec![real.clone(), real.clone()];
    listed.push(json!({"mediaType": MANIFEST, "digest": "sha256:nothex", "size": 3}));
    listed.push(json!({"mediaType": MANIFEST, "size": 3}));
    listed.push(
        json!({"mediaType": MANIFEST, "digest": Digest::sha256_of(b"big").as_str(),
                       "size": LIMIT + 1}),
    );
    listed.push(json!("not a descriptor"));
    let after = descriptor(b"after", NOTATION);
    listed.push(after.clone());
    let got = candidates(listed, LIMIT, |_| 0);
    assert_eq!(
        digests(&got),
        vec![
            real["digest"].as_str().unwrap().to_owned(),
            after["digest"].as_str().unwrap().to_owned()
        ]
    );
    // The descriptor as listed is kept, to serve again.
    assert_eq!(got[0].raw, real);
    assert_eq!(got[1].artifact_type.as_deref(), Some(NOTATION));
}

#[test]
fn a_referrer_naming_the_subject_is_parsed() {
    let bytes = artifact(&subject(), empty_config());
    let referrer = checked(&bytes, listed(descriptor(&bytes, "listed/type"))).expect("checked");
    assert_eq!(referrer.subject.digest, subject());
    assert_eq!(referrer.artifact_type.as_deref(), Some(NOTATION));
    assert_eq!(
        referrer.listed.artifact_type.as_deref(),
        Some("listed/type")
    );
    assert_eq!(referrer.layers.len(), 1);
    assert_eq!(
        referrer.layers[0].media_type.as_str(),
        "application/jose+json"
    );
    assert_eq!(referrer.source, Source::Api);
    assert_eq!(
        referrer.empty_config(),
        Some((Digest::sha256_of(b"{}").as_str().to_owned(), 2))
    );
    assert_eq!(referrer.descriptor()["size"], json!(bytes.len()));
}

#[test]
fn a_referrer_must_be_the_bytes_its_descriptor_names() {
    let bytes = artifact(&subject(), empty_config());
    // Another manifest's bytes under this digest.
    let mut forged = listed(descriptor(&bytes, NOTATION));
    forged.digest = Digest::sha256_of(b"something else");
    assert!(checked(&bytes, forged).is_err());
    // Listed shorter than it is (the registry read stops at the listed size; a registry
    // sending a prefix must not pass either).
    let mut short = listed(descriptor(&bytes, NOTATION));
    short.size -= 1;
    assert!(checked(&bytes, short).is_err());
}

#[test]
fn a_referrer_of_another_subject_or_of_none_is_refused() {
    let other = artifact(&Digest::sha256_of(b"another image"), empty_config());
    assert_eq!(
        checked(&other, listed(descriptor(&other, NOTATION))).unwrap_err(),
        "its subject is another manifest"
    );
    let mut none: Value = serde_json::from_slice(&artifact(&subject(), empty_config())).unwrap();
    none.as_object_mut().unwrap().remove("subject");
    let none = serde_json::to_vec(&none).unwrap();
    assert!(checked(&none, listed(descriptor(&none, NOTATION))).is_err());
}

#[test]
fn a_referrer_must_be_an_image_manifest_with_a_small_config() {
    let big = artifact(
        &subject(),
        json!({"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": Digest::sha256_of(b"c").as_str(), "size": MAX_CONFIG + 1}),
    );
    assert_eq!(
        checked(&big, listed(descriptor(&big, NOTATION))).unwrap_err(),
        "its config is too large"
    );
    let other_config = artifact(
        &subject(),
        json!({"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": Digest::sha256_of(b"c").as_str(), "size": 1}),
    );
    let referrer = checked(&other_config, listed(descriptor(&other_config, NOTATION)))
        .expect("a small config is fine");
    assert_eq!(referrer.empty_config(), None, "only the empty descriptor");

    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
        "subject": {"mediaType": MANIFEST, "digest": subject().as_str(), "size": 18},
    }))
    .unwrap();
    assert_eq!(
        check(
            listed(descriptor(&idx, NOTATION)),
            Bytes::from(idx.clone()),
            None,
            &subject(),
            Source::TagIndex,
        )
        .map_err(|(_, why)| why)
        .unwrap_err(),
        "it is an index"
    );
    let junk = b"{\"schemaVersion\": 2, \"mediaType\": 7}";
    assert!(checked(junk, listed(descriptor(junk, NOTATION))).is_err());
}

#[test]
fn a_referrers_tag_must_hold_an_oci_index() {
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    }))
    .unwrap();
    assert_eq!(tag_index_valid(&idx), Ok(()));
    let image = artifact(&subject(), empty_config());
    let why = tag_index_valid(&image).unwrap_err();
    assert!(why.contains("not an OCI index"), "{why}");
    assert!(tag_index_valid(b"not json").is_err());
}

#[test]
fn the_served_index_filters_by_artifact_type() {
    let a = descriptor(b"a", BUNDLE);
    let b = descriptor(b"b", NOTATION);
    let all: Value = serde_json::from_slice(&index([&a, &b], None)).unwrap();
    assert_eq!(all["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(all["schemaVersion"], 2);
    assert_eq!(all["manifests"], json!([a, b]));
    let notation: Value = serde_json::from_slice(&index([&a, &b], Some(NOTATION))).unwrap();
    assert_eq!(notation["manifests"], json!([b]));
    let none: Value = serde_json::from_slice(&index([&a, &b], Some("x/y"))).unwrap();
    assert_eq!(none["manifests"], json!([]));
}
