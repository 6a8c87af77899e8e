//! `upstreams[].tag_ttl`: under `allow` (and `audit`), a tag looked up upstream is answered
//! from memory within its ttl, and stale (bounded, counted) while the upstream is down or
//! rate-limits; a tag the upstream says is gone is never answered from memory.

mod support;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::fakes::{FakeHttp, Forwarder, Link, Reply};
use support::oci::Image;
use support::proxy::Proxy;
use support::Registry;
use trustgate::config::{Config, ConfigError};

const REGISTRY: &str = "registry.test";
const STALE: &str = "trustgate_tag_stale_answers_total{upstream=\"registry.test\"}";

/// A proxy allowing `open/**` from `url`, with `tag_ttl` (`None`: the key left out).
fn proxy(url: &str, tag_ttl: Option<&str>) -> Proxy {
    let ttl = tag_ttl
        .map(|t| format!(", tag_ttl: {t}"))
        .unwrap_or_default();
    Proxy::start(&format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{url}", default: true{ttl}}}
limits: {{upstream_timeout: 2s}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/open/**", action: allow}}
"#
    ))
}

fn stale_answers(proxy: &Proxy) -> f64 {
    proxy.metric(STALE).unwrap_or(0.0)
}

#[test]
fn tag_is_answered_within_tag_ttl_and_stale_after_it_while_the_upstream_is_down() {
    let registry = Registry::start();
    let upstream = Forwarder::start(&registry.host_port());
    let image: Image = registry.push_random("open/app", "v1", 1);
    let tag = "/v2/open/app/manifests/v1";
    let (fresh, short, always, unset) = (
        proxy(&upstream.url(), Some("1h")),
        proxy(&upstream.url(), Some("1s")),
        proxy(&upstream.url(), Some("0s")),
        proxy(&upstream.url(), None),
    );
    // Cold: every proxy asks the upstream, and caches the manifest by digest.
    for p in [&fresh, &short, &always, &unset] {
        p.expect_served(tag, &image.manifest.bytes);
    }
    std::thread::sleep(Duration::from_millis(1200));

    upstream.set(Link::Refuse);
    // Within tag_ttl: the remembered digest, not a stale answer.
    fresh.expect_served(tag, &image.manifest.bytes);
    let r = fresh.pull(tag);
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(image.manifest.digest.as_str()),
        "{}",
        r.summary()
    );
    assert_eq!(stale_answers(&fresh), 0.0);
    // After tag_ttl, the upstream down: the last answer, stale, counted.
    short.expect_served(tag, &image.manifest.bytes);
    assert_eq!(stale_answers(&short), 1.0, "{}", short.log_tail(20));
    assert!(short.log().contains("stale"), "{}", short.log_tail(20));
    // tag_ttl 0 (and unset): asks every time, so the pull fails as before.
    for p in [&always, &unset] {
        let r = p.pull(tag);
        assert_eq!(r.status, 502, "{}", r.summary());
        assert_eq!(stale_answers(p), 0.0);
    }
    // A tag never looked up has nothing to answer with.
    let r = short.pull("/v2/open/app/manifests/v2");
    assert_eq!(r.status, 502, "{}", r.summary());

    // Back: asked again, answered fresh.
    upstream.set(Link::Pass);
    short.expect_served(tag, &image.manifest.bytes);
    assert_eq!(stale_answers(&short), 1.0);
}

/// What the fake upstream answers for manifests by tag: 0 forwards to the registry, else that
/// status.
struct TagStatus(Arc<AtomicU16>);

impl TagStatus {
    fn set(&self, status: u16) {
        self.0.store(status, Ordering::SeqCst);
    }
}

/// A registry behind a fake that answers manifests by tag with a scripted status.
fn scripted(registry: &Registry) -> (FakeHttp, TagStatus) {
    let status = Arc::new(AtomicU16::new(0));
    let (real, script) = (registry.url(), status.clone());
    let fake = FakeHttp::start(move |path| {
        let by_tag = path.contains("/manifests/") && !path.contains("/manifests/sha256:");
        match script.load(Ordering::SeqCst) {
            s if s != 0 && by_tag => Reply::status(s),
            _ => Reply::Forward(format!("{real}{path}")),
        }
    });
    (fake, TagStatus(status))
}

fn tag_requests(fake: &FakeHttp, tag: &str) -> usize {
    let suffix = format!("/manifests/{tag}");
    fake.requests()
        .iter()
        .filter(|p| p.ends_with(&suffix))
        .count()
}

#[test]
fn rate_limited_tag_is_answered_from_memory_and_a_deleted_tag_is_not() {
    let registry = Registry::start();
    let image = registry.push_random("open/app", "v1", 1);
    let gone = registry.push_random("open/app", "gone", 1);
    let (fake, tags) = scripted(&registry);
    let proxy = proxy(&fake.url(), Some("1s"));
    let (v1, gone_path) = ("/v2/open/app/manifests/v1", "/v2/open/app/manifests/gone");
    proxy.expect_served(v1, &image.manifest.bytes);
    proxy.expect_served(gone_path, &gone.manifest.bytes);
    let asked = tag_requests(&fake, "v1");
    assert_eq!(asked, 1);
    // Within tag_ttl the upstream is not asked.
    proxy.expect_served(v1, &image.manifest.bytes);
    assert_eq!(tag_requests(&fake, "v1"), asked);

    std::thread::sleep(Duration::from_millis(1200));
    // 429 and 5xx after tag_ttl: asked, then answered stale.
    for (status, count) in [(429, 1.0), (503, 2.0)] {
        tags.set(status);
        proxy.expect_served(v1, &image.manifest.bytes);
        assert_eq!(stale_answers(&proxy), count, "{}", proxy.log_tail(20));
    }
    assert!(
        tag_requests(&fake, "v1") >= asked + 2,
        "{:?}",
        fake.requests()
    );

    // 404: the tag is gone upstream; the error stands and the tag is forgotten, so a 429
    // afterwards is not papered over either.
    tags.set(404);
    let r = proxy.pull(gone_path);
    assert_eq!(r.status, 404, "{}", r.summary());
    tags.set(429);
    let r = proxy.pull(gone_path);
    assert_eq!(r.status, 429, "{}", r.summary());
    assert_eq!(stale_answers(&proxy), 2.0);
    // Content by digest is unaffected.
    proxy.expect_served(
        &format!("/v2/open/app/manifests/{}", gone.manifest.digest),
        &gone.manifest.bytes,
    );
}

#[test]
fn tag_ttl_is_validated_where_it_is_written() {
    let config = |ttl: &str| {
        format!(
            "upstreams:\n  - registry: docker.io\n    url: \"https://registry-1.docker.io\"\n    tag_ttl: {ttl}\n"
        )
    };
    let parsed = Config::from_yaml(&config("30s")).expect("tag_ttl 30s");
    assert_eq!(parsed.upstreams[0].tag_ttl, Duration::from_secs(30));
    let parsed = Config::from_yaml(&config("0s")).expect("tag_ttl 0s");
    assert_eq!(parsed.upstreams[0].tag_ttl, Duration::ZERO);
    let parsed = Config::from_yaml(
        "upstreams:\n  - {registry: docker.io, url: \"https://registry-1.docker.io\"}\n",
    )
    .expect("no tag_ttl");
    assert_eq!(parsed.upstreams[0].tag_ttl, Duration::ZERO);

    for (ttl, phrase) in [
        ("5x", "invalid duration `5x`"),
        ("-1s", "invalid duration"),
        ("25h", "longer than 24h"),
    ] {
        let err: ConfigError = Config::from_yaml(&config(ttl)).expect_err(ttl);
        let at = err.location().expect("a located error");
        assert_eq!((at.line(), at.column()), (Some(4), Some(14)), "{err}");
        let message = err.to_string();
        assert!(message.starts_with("<config>:4:14: "), "{message}");
        assert!(message.contains(phrase), "`{phrase}` not in: {message}");
    }
}
