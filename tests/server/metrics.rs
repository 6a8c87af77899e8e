//! Every metric family, rendered and linted by `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;
use trustgate::cache::SharedOp;
use trustgate::metrics::{CacheSource, Metrics, TrustRole, UpstreamErrorKind, VerificationResult};
use trustgate::policy::Action;
use trustgate::server::RouteKind;

/// Every family; names are a public interface.
const FAMILIES: [&str; 29] = [
    "trustgate_http_requests_total",
    "trustgate_auth_failures_total",
    "trustgate_http_request_duration_seconds",
    "trustgate_client_connections_refused_total",
    "trustgate_verifications_total",
    "trustgate_decisions_total",
    "trustgate_upstream_requests_total",
    "trustgate_upstream_errors_total",
    "trustgate_upstream_request_duration_seconds",
    "trustgate_upstream_ratelimit_remaining",
    "trustgate_tag_stale_answers_total",
    "trustgate_trust_fetch_duration_seconds",
    "trustgate_trust_expiry_seconds",
    "trustgate_cache_hits_total",
    "trustgate_cache_misses_total",
    "trustgate_cache_evictions_total",
    "trustgate_cache_write_failures_total",
    "trustgate_cache_damaged_total",
    "trustgate_cache_bytes_served_total",
    "trustgate_cache_size_bytes",
    "trustgate_inflight_fetches",
    "trustgate_shared_store_hits_total",
    "trustgate_shared_store_misses_total",
    "trustgate_shared_store_errors_total",
    "trustgate_shared_store_digest_mismatches_total",
    "trustgate_shared_store_uploaded_bytes_total",
    "trustgate_shared_store_upload_failures_total",
    "trustgate_config_reloads_total",
    "trustgate_config_last_reload_successful",
];

/// Records a value in every family.
fn touch_everything(metrics: &Metrics) {
    let ms = Duration::from_millis(12);
    metrics.http().observe(RouteKind::Blob, StatusCode::OK, ms);
    metrics.http().connection_refused();
    metrics.verify().verification(VerificationResult::Verified);
    metrics
        .verify()
        .decision(Action::Verify, Some(VerificationResult::Verified));
    metrics
        .upstream()
        .response("docker-hub", StatusCode::OK, ms);
    metrics
        .upstream()
        .error("docker-hub", UpstreamErrorKind::Timeout);
    metrics.upstream().set_ratelimit_remaining("docker-hub", 99);
    metrics.upstream().stale_tag("docker-hub");
    metrics.trust().fetch("notary", ms);
    metrics.trust().set_expiry(TrustRole::Delegation, 3600.0);
    metrics.cache().hit();
    metrics.cache().miss();
    metrics.cache().evicted(2);
    metrics.cache().write_failed();
    metrics.cache().damaged();
    metrics.cache().served(CacheSource::Cache, 10);
    metrics.cache().set_size_bytes(4096);
    std::mem::forget(metrics.cache().inflight_fetch());
    metrics.shared().hit();
    metrics.shared().miss();
    metrics.shared().error(SharedOp::Get);
    metrics.shared().mismatch();
    metrics.shared().uploaded(1024);
    metrics.shared().upload_failed();
    metrics.config().reloaded(true);
}

/// Runs `promtool check metrics` on `text`; `Err` holds promtool's complaints.
fn promtool_check(text: &str) -> Result<(), String> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            panic!("cannot run promtool ({error}); install it with `apt-get install prometheus`")
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool output");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn every_family_passes_promtool() {
    let metrics = Metrics::new();
    touch_everything(&metrics);
    let text = metrics.render();
    for family in FAMILIES {
        let declared = format!("# TYPE {family} ");
        assert!(text.contains(&declared), "{family} missing in\n{text}");
    }
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(
        families,
        FAMILIES.len(),
        "a family is not listed here:\n{text}"
    );
    if let Err(problems) = promtool_check(&text) {
        panic!("promtool check metrics failed:\n{problems}\non:\n{text}");
    }
}

#[test]
fn promtool_catches_bad_names() {
    // Guards the guard: if promtool stopped linting, the test above would pass vacuously.
    let bad = "# HELP bad_counter x\n# TYPE bad_counter counter\nbad_counter 1\n";
    assert!(
        promtool_check(bad).is_err(),
        "promtool accepted a counter without _total"
    );
}
