//! The scripted adversary itself (`tests/support/mitm.rs`): honest by default, a liar on
//! exactly the paths a test scripts. The attack tests rely on both halves.

mod support;

use bytes::Bytes;
use support::fakes::Reply;
use support::mitm::Mitm;
use support::oci::{Image, ACCEPT_ALL};
use support::proxy::Proxy;
use support::Registry;

const REGISTRY: &str = "registry.test";

#[test]
fn forwards_what_is_not_scripted_and_lies_where_it_is() {
    let registry = Registry::start();
    let image = Image::random(1);
    image.push(&registry, "open/demo", "v1");
    let mitm = Mitm::start(&registry.url());
    let body = format!(
        "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{}\", default: true}}\n\
         policy: {{default: allow}}\n",
        mitm.url()
    );
    let proxy = Proxy::start(&body);
    proxy.expect_image_served("open/demo", "v1", &image);

    let layer = &image.layers[0];
    let other = Image::random(1);
    let path = format!("/v2/open/demo/blobs/sha256:{}", other.layers[0].hex());
    mitm.on(
        &path,
        Reply::Declared {
            content_length: 5,
            body: Bytes::from_static(b"abc"),
        },
    );
    // The short body fails the download: cut off after the head, or before it.
    let url = format!("{}{path}", proxy.url());
    if let Ok(r) = support::http::request("GET", &url, &[("Accept", ACCEPT_ALL)], b"") {
        assert!(r.body.len() < 5, "{}", r.summary());
    }
    assert!(mitm.count(&path) >= 1);
    assert!(mitm.count(&format!("/v2/open/demo/blobs/sha256:{}", layer.hex())) >= 1);
}
