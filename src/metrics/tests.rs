use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::policy::Action;
use crate::server::RouteKind;

/// The value of the sample `series` (name plus labels, exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[test]
fn registries_are_independent() {
    // Two instances (two tests, or a future reload) must not collide, as they would in the
    // global default registry.
    let a = Metrics::new();
    let b = Metrics::new();
    a.cache().hit();
    assert_eq!(sample(&a.render(), "trustgate_cache_hits_total"), Some(1.0));
    assert_eq!(sample(&b.render(), "trustgate_cache_hits_total"), Some(0.0));
}

#[test]
fn closed_label_sets_start_at_zero() {
    let text = Metrics::new().render();
    for result in VerificationResult::all() {
        let series = format!("trustgate_verifications_total{{result=\"{result}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    for series in [
        r#"trustgate_decisions_total{action="verify",result="mismatch"}"#,
        r#"trustgate_decisions_total{action="audit",result="unsigned"}"#,
        r#"trustgate_decisions_total{action="allow",result="none"}"#,
        r#"trustgate_decisions_total{action="deny",result="none"}"#,
        r#"trustgate_cache_bytes_served_total{source="cache"}"#,
        r#"trustgate_cache_bytes_served_total{source="upstream"}"#,
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series}");
    }
    // Nonsense combinations are not pre-created.
    assert!(!text.contains(r#"action="allow",result="verified""#));
}

#[test]
fn records_with_bounded_labels() {
    let metrics = Metrics::new();
    metrics.http().observe(
        RouteKind::Manifest,
        StatusCode::NOT_FOUND,
        Duration::from_millis(3),
    );
    metrics
        .verify()
        .decision(Action::Audit, Some(VerificationResult::Mismatch));
    metrics.verify().decision(Action::Deny, None);
    metrics
        .upstream()
        .error("docker-hub", UpstreamErrorKind::Connect);
    metrics.trust().set_expiry(TrustRole::Timestamp, -5.0);
    metrics.cache().served(CacheSource::Upstream, 1024);
    let text = metrics.render();
    for (series, value) in [
        (
            r#"trustgate_http_requests_total{code="404",kind="manifest"}"#,
            1.0,
        ),
        (
            r#"trustgate_http_request_duration_seconds_count{kind="manifest"}"#,
            1.0,
        ),
        (
            r#"trustgate_decisions_total{action="audit",result="mismatch"}"#,
            1.0,
        ),
        (
            r#"trustgate_decisions_total{action="deny",result="none"}"#,
            1.0,
        ),
        (
            r#"trustgate_upstream_errors_total{kind="connect",upstream="docker-hub"}"#,
            1.0,
        ),
        (r#"trustgate_trust_expiry_seconds{role="timestamp"}"#, -5.0),
        (
            r#"trustgate_cache_bytes_served_total{source="upstream"}"#,
            1024.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

#[test]
fn inflight_guard_counts_while_alive() {
    let metrics = Metrics::new();
    let first = metrics.cache().inflight_fetch();
    let second = metrics.cache().inflight_fetch();
    assert_eq!(
        sample(&metrics.render(), "trustgate_inflight_fetches"),
        Some(2.0)
    );
    drop(first);
    assert_eq!(
        sample(&metrics.render(), "trustgate_inflight_fetches"),
        Some(1.0)
    );
    drop(second);
    assert_eq!(
        sample(&metrics.render(), "trustgate_inflight_fetches"),
        Some(0.0)
    );
}

#[test]
fn gauges_saturate() {
    let metrics = Metrics::new();
    metrics.cache().set_size_bytes(u64::MAX);
    let expected = i64::MAX as f64;
    assert_eq!(
        sample(&metrics.render(), "trustgate_cache_size_bytes"),
        Some(expected)
    );
}

#[test]
fn role_kinds() {
    let cases = [
        ("root", Some(TrustRole::Root)),
        ("timestamp", Some(TrustRole::Timestamp)),
        ("snapshot", Some(TrustRole::Snapshot)),
        ("targets", Some(TrustRole::Targets)),
        ("targets/releases", Some(TrustRole::Delegation)),
        ("targets/alice", Some(TrustRole::Delegation)),
        ("targetsx", None),
        ("", None),
    ];
    for (name, kind) in cases {
        assert_eq!(TrustRole::from_role_name(name), kind, "{name}");
    }
}

#[test]
fn trust_expiry_is_the_minimum_over_servers_and_counts_down() {
    use std::collections::BTreeMap;
    use time::macros::datetime;

    let metrics = Metrics::new();
    let expiry = TrustExpiry::new(metrics.trust().clone());
    let now = datetime!(2026-01-01 00:00 UTC);
    let series = |role: &str| format!("trustgate_trust_expiry_seconds{{role=\"{role}\"}}");
    // Nothing cached yet: no series at all, rather than a misleading zero.
    expiry.publish_at(now);
    assert!(!metrics.render().contains("trustgate_trust_expiry_seconds{"));

    let a = BTreeMap::from([
        (TrustRole::Root, datetime!(2036-01-01 00:00 UTC)),
        (TrustRole::Timestamp, datetime!(2026-01-15 00:00 UTC)),
    ]);
    let b = BTreeMap::from([
        (TrustRole::Timestamp, datetime!(2026-01-02 00:00 UTC)),
        (TrustRole::Delegation, datetime!(2025-12-31 23:59 UTC)),
    ]);
    expiry.update("a", a);
    expiry.update("b", b);
    expiry.publish_at(now);
    let text = metrics.render();
    assert_eq!(sample(&text, &series("timestamp")), Some(86_400.0));
    assert_eq!(sample(&text, &series("delegation")), Some(-60.0));
    assert!(sample(&text, &series("root")).is_some_and(|s| s > 3.0e8));
    assert_eq!(sample(&text, &series("snapshot")), None);

    // An hour later without any refresh, the countdown moved.
    expiry.publish_at(now + time::Duration::hours(1));
    let text = metrics.render();
    assert_eq!(sample(&text, &series("timestamp")), Some(82_800.0));

    // Server b's cache now holds later data: the minimum rises, its delegation kind is gone.
    expiry.update(
        "b",
        BTreeMap::from([(TrustRole::Timestamp, datetime!(2099-01-01 00:00 UTC))]),
    );
    let soonest = expiry.soonest();
    assert_eq!(
        soonest.get(&TrustRole::Timestamp),
        Some(&datetime!(2026-01-15 00:00 UTC))
    );
    assert!(!soonest.contains_key(&TrustRole::Delegation));
    assert_eq!(sample(&metrics.render(), &series("delegation")), None);
}
