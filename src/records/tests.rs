use std::sync::Arc;

use super::*;

fn record(id: &str) -> Record {
    Record {
        time: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_288_400),
        request_id: id.to_owned(),
        client: Some("127.0.0.1:1234".parse().unwrap()),
        principal: "anonymous".to_owned(),
        method: "GET",
        kind: RecordKind::Manifest,
        image: "r.example/app:v1".to_owned(),
        digest: Some(format!("sha256:{}", "a".repeat(64))),
        rule: "r.example/**".to_owned(),
        action: "verify",
        verifier: Some(crate::policy::VerifierKind::COSIGN),
        verdict: RecordVerdict::Allow,
        reason: "verified".to_owned(),
    }
}

#[test]
fn records_and_events_have_the_documented_fields() {
    let v = serde_json::to_value(record("abc")).unwrap();
    for key in [
        "time",
        "request_id",
        "client",
        "principal",
        "method",
        "kind",
        "image",
        "digest",
        "rule",
        "action",
        "verifier",
        "verdict",
        "reason",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert_eq!(v["kind"], "manifest");
    assert_eq!(v["time"], "2026-12-03T09:00:00Z");
    assert_eq!(v["client"], "127.0.0.1:1234");
    assert_eq!(v["verifier"], "cosign");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["verdict"], "allow");
    let event = cloud_event(&record("abc"), 7);
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "dev.trustgate.decision");
    assert_eq!(event["source"], "trustgate");
    assert_eq!(event["id"], "abc-7");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"], v);
}

#[test]
fn header_files_are_name_value_lines_kept_secret() {
    let headers =
        webhook::parse_headers_for_test("# token\nAuthorization: Bearer s3cr3t\n\nX-A: b\n")
            .unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0].0.as_str(), "authorization");
    assert_eq!(headers[0].1.expose(), "Bearer s3cr3t");
    assert!(!format!("{headers:?}").contains("s3cr3t"));
    assert!(webhook::parse_headers_for_test("no colon").is_err());
}

#[tokio::test]
async fn the_file_sink_rotates_and_keeps_at_most_keep_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let config = crate::config::RecordsConfig {
        file: Some(crate::config::RecordsFileConfig {
            path: path.clone(),
            max_size: 1000,
            keep: 2,
            queue: 4096,
        }),
        webhooks: Vec::new(),
    };
    let metrics = crate::metrics::Metrics::new();
    let (records, shutdown) = Records::start(&config, metrics.records().clone()).unwrap();
    for i in 0..50 {
        records.emit(record(&format!("id{i}")));
    }
    records.drain(std::time::Duration::from_secs(10)).await;
    assert!(std::fs::read_to_string(&path).unwrap().contains("\"id49\""));
    records.close();
    shutdown.wait(std::time::Duration::from_secs(10)).await;
    assert!(path.exists());
    assert!(file::numbered(&path, 1).exists());
    assert!(file::numbered(&path, 2).exists());
    assert!(!file::numbered(&path, 3).exists());
    for p in [path.clone(), file::numbered(&path, 1)] {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.len() <= 1000, "{}", text.len());
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["kind"], "manifest");
            assert_eq!(v["time"], "2026-12-03T09:00:00Z");
            assert_eq!(v["client"], "127.0.0.1:1234");
            assert_eq!(v["verifier"], "cosign");
            assert_eq!(v["method"], "GET");
        }
    }
    // The newest record is in the current file.
    assert!(std::fs::read_to_string(&path).unwrap().contains("\"id49\""));
    let rendered = metrics.render();
    assert!(
        rendered.contains("trustgate_records_written_total{sink=\"file\"} 50"),
        "{rendered}"
    );
}

#[test]
fn a_full_queue_drops_and_counts() {
    let metrics = crate::metrics::Metrics::new();
    let (tx, _rx) = mpsc::channel(1);
    let records = Records {
        sinks: Arc::from(vec![Sink {
            name: Arc::from("webhook:0"),
            tx,
            pending: Arc::default(),
        }]),
        metrics: metrics.records().clone(),
    };
    for i in 0..3 {
        records.emit(record(&format!("id{i}")));
    }
    let rendered = metrics.render();
    assert!(
        rendered.contains("trustgate_records_dropped_total{sink=\"webhook:0\"} 2"),
        "{rendered}"
    );
}
