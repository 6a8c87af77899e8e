//! Hostile writes to the cache directory, against `trustgate serve` between real peers
//! (`docker-registry`, `notary-server`): what a changed file there can make trustgate serve
//! or say.
//!
//! Content is named by its digest and re-hashed on read; a manifest's media-type file (the
//! `<hex>.type` beside it) is not covered by the digest, so it is checked against the bytes.

mod support;

use std::fs;
use std::path::PathBuf;

use support::oci::{Format, Image, ACCEPT_ALL, DOCKER_LIST, OCI_INDEX};
use support::proxy::Proxy;
use support::{NotaryCli, NotaryServer, Registry};

const REGISTRY: &str = "registry.test";

/// Where the store keeps a manifest's media type.
fn sidecar(proxy: &Proxy, hex: &str) -> PathBuf {
    proxy
        .cache_dir()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(format!("{hex}.type"))
}

#[test]
fn attack_tampered_manifest_media_type_file_is_cache_damage_not_an_upstream_fault() {
    let notary = NotaryServer::start();
    let cli = NotaryCli::for_server(&notary);
    let registry = Registry::start();
    let proxy = Proxy::start(&format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
notary_servers:
  - {{name: local, url: "{}", ttl: 60s}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/signed/**", action: verify, notary: local}}
    - {{match: "{REGISTRY}/open/**", action: allow}}
"#,
        registry.url(),
        notary.url(),
    ));
    let accept = [("Accept", ACCEPT_ALL)];
    let mut damaged = 0.0;
    // Under verify (signed, by tag then by digest) and allow; OCI and Docker manifests, each
    // file rewritten to name another manifest kind (which the bytes contradict) or none.
    for (repo, format, tampered) in [
        ("signed/oci", Format::Oci, OCI_INDEX),
        ("signed/docker", Format::Docker, DOCKER_LIST),
        ("open/oci", Format::Oci, "text/html"),
    ] {
        let image = Image::random_sized(format, &[512]);
        image.push(&registry, repo, "v1");
        if repo.starts_with("signed/") {
            let gun = format!("{REGISTRY}/{repo}");
            cli.init(&gun);
            cli.addhash(&gun, "v1", image.manifest.size(), image.manifest.hex(), &[]);
        }
        let by_tag = format!("/v2/{repo}/manifests/v1");
        let by_digest = format!("/v2/{repo}/manifests/{}", image.manifest.digest);
        let served = |path: &str, when: &str| {
            let r = proxy.request("GET", path, &accept, b"");
            assert!(
                r.status == 200
                    && r.body == image.manifest.bytes
                    && r.header("content-type") == Some(image.media_type.as_str()),
                "{repo}: GET {path} {when}: want 200 with the manifest as {}, got {}\n{}",
                image.media_type,
                r.summary(),
                proxy.log_tail(20)
            );
        };
        served(&by_tag, "cold");
        let file = sidecar(&proxy, image.manifest.hex());
        assert_eq!(
            fs::read_to_string(&file).unwrap_or_default(),
            image.media_type,
            "{repo}: the cached media type"
        );

        // By digest, as a client pulls an index's children (and an image by digest): the
        // cache is read first.
        fs::write(&file, tampered).unwrap();
        served(
            &by_digest,
            &format!("after its media-type file was made {tampered:?}"),
        );
        damaged += 1.0;
        assert_eq!(
            proxy.metric("trustgate_cache_damaged_total"),
            Some(damaged),
            "{repo}: cache damage not counted"
        );
        // Fetched again by digest, verified and stored again as it should be.
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            image.media_type,
            "{repo}"
        );
        served(&by_digest, "from the repaired cache");
        assert_eq!(proxy.metric("trustgate_cache_damaged_total"), Some(damaged));

        // By tag under verify: the signed digest's manifest comes from the cache too. (Under
        // allow a tag is asked of the upstream each time, so the cache is not read.)
        if repo.starts_with("signed/") {
            fs::write(&file, tampered).unwrap();
            served(
                &by_tag,
                &format!("after its media-type file was made {tampered:?}"),
            );
            damaged += 1.0;
            assert_eq!(proxy.metric("trustgate_cache_damaged_total"), Some(damaged));
        }
    }

    // Logged as cache damage; nothing blames the upstream.
    let log = support::proxy::strip_ansi(&proxy.log());
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("stored manifest is damaged"))
            .count(),
        damaged as usize,
        "{}",
        proxy.log_tail(30)
    );
    for blame in [
        "served an invalid manifest",
        "ManifestError",
        "MANIFEST_INVALID",
    ] {
        assert!(
            !log.contains(blame),
            "the log blames the upstream ({blame}):\n{}",
            proxy.log_tail(30)
        );
    }
}
