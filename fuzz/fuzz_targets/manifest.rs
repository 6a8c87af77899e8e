//! The manifest parser on any bytes and content type: never panics, never accepts more
//! references than its limit, and content negotiation never panics on what it accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustgate::oci::{self, Manifest};

const TYPES: [Option<&str>; 5] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let content_type = TYPES[usize::from(selector) % TYPES.len()];
    let Ok(manifest) = oci::parse_manifest(bytes, content_type) else {
        return;
    };
    let references = match &manifest {
        Manifest::Index(index) => index.manifests().len(),
        Manifest::Image(image) => 1 + image.layers().len(),
    };
    assert!(references <= oci::manifest::MAX_DESCRIPTORS);
    let _ = oci::negotiate(["application/json, */*"], manifest.kind(), true);
});
