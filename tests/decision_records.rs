//! Decision records (`records:`) end to end, against a real registry: every decision of a
//! scripted pull reaches a webhook receiver (CloudEvents JSON) and the JSON-lines file, with
//! the response's request id; a slow and a down receiver leave the pull's latency alone and
//! the records they could not take are counted as dropped; the file rotates by size; a
//! receiver answering errors is retried with the same event, then given up on and counted.

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::proxy::Proxy;
use support::Registry;

const REGISTRY: &str = "registry.test";

/// One POST the receiver got: its `Content-Type`, JSON body and the status it answered.
#[derive(Clone, Debug)]
struct Received {
    content_type: String,
    body: Value,
    status: u16,
}

/// The status a receiver answers its `n`th POST (from 0) with.
type Answer = Arc<dyn Fn(usize) -> u16 + Send + Sync>;

/// A webhook receiver: answers every POST after `delay`, keeping what it got.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Answers every POST 200.
    fn start(delay: Duration) -> Receiver {
        Receiver::answering(delay, Arc::new(|_| 200))
    }

    fn answering(delay: Duration, answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (keep, answer) = (keep.clone(), answer.clone());
                std::thread::spawn(move || serve(stream, delay, keep, answer));
            }
        });
        Receiver { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits up to 20 s for at least `n` events.
    fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// HTTP/1.1 with keep-alive: requests with a `Content-Length` body, answered as `answer`
/// says.
fn serve(stream: TcpStream, delay: Duration, keep: Arc<Mutex<Vec<Received>>>, answer: Answer) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(delay);
        let status = {
            let mut got = keep.lock().unwrap();
            let status = answer(got.len());
            got.push(Received {
                content_type,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                status,
            });
            status
        };
        let head = format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\n\r\n");
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

fn config(registry: &Registry, records: &str) -> String {
    format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/open/**", action: allow}}
    - {{match: "{REGISTRY}/blocked/**", action: deny}}
{records}"#,
        registry.url()
    )
}

/// The JSON lines of `path`, waiting up to 20 s for at least `n`.
fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_decision_of_a_pull_reaches_the_webhook_and_the_file() {
    let registry = Registry::start();
    let image = registry.push_random("open/app", "v1", 2);
    registry.push_random("blocked/app", "v1", 1);
    let receiver = Receiver::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("decisions.jsonl");
    let records = format!(
        "records:\n  file: {{path: {}}}\n  webhooks:\n    - {{url: \"{}\"}}\n",
        serde_json::json!(file.to_str().unwrap()),
        receiver.url()
    );
    let proxy = Proxy::start(&config(&registry, &records));

    // The scripted pull: manifest by tag (HEAD, then GET), config and layers; then refusals,
    // tags/list and referrers, each allowed and refused.
    let mut expected = Vec::new();
    let mut ids = HashSet::new();
    let mut keep = |r: &support::http::HttpResponse, what: (&str, &str, &str)| {
        let id = r.header("x-request-id").expect("X-Request-Id").to_owned();
        ids.insert(id.clone());
        expected.push((id, what.0.to_owned(), what.1.to_owned(), what.2.to_owned()));
    };
    let head = proxy.request(
        "HEAD",
        "/v2/open/app/manifests/v1",
        &[("Accept", support::oci::ACCEPT_ALL)],
        b"",
    );
    assert_eq!(head.status, 200, "{}", head.summary());
    keep(&head, ("HEAD", "manifest", "allow"));
    let manifest = proxy.pull("/v2/open/app/manifests/v1");
    assert_eq!(manifest.status, 200, "{}", manifest.summary());
    keep(&manifest, ("GET", "manifest", "allow"));
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let r = proxy.pull(&format!("/v2/open/app/blobs/{}", blob.digest));
        assert_eq!(r.status, 200, "{}", r.summary());
        assert_eq!(r.body, blob.bytes);
        keep(&r, ("GET", "blob", "allow"));
    }
    let refused = proxy.pull("/v2/blocked/app/manifests/v1");
    assert_eq!(refused.status, 403, "{}", refused.summary());
    keep(&refused, ("GET", "manifest", "deny"));
    let tags = proxy.pull("/v2/open/app/tags/list");
    assert_eq!(tags.status, 200, "{}", tags.summary());
    keep(&tags, ("GET", "tags", "allow"));
    let referrers = proxy.pull(&format!("/v2/open/app/referrers/{}", image.manifest.digest));
    assert_eq!(referrers.status, 200, "{}", referrers.summary());
    keep(&referrers, ("GET", "referrers", "allow"));
    let tags_refused = proxy.pull("/v2/blocked/app/tags/list");
    assert_eq!(tags_refused.status, 403, "{}", tags_refused.summary());
    keep(&tags_refused, ("GET", "tags", "deny"));
    let referrers_refused = proxy.pull(&format!(
        "/v2/blocked/app/referrers/{}",
        image.manifest.digest
    ));
    assert_eq!(
        referrers_refused.status,
        403,
        "{}",
        referrers_refused.summary()
    );
    keep(&referrers_refused, ("GET", "referrers", "deny"));
    let n = expected.len();
    assert_eq!(ids.len(), n, "request ids are unique");

    let events = receiver.wait_for(n);
    assert_eq!(events.len(), n, "{events:?}\n{}", proxy.log_tail(30));
    let written = lines(&file, n);
    assert_eq!(written.len(), n, "{written:?}");
    for event in &events {
        assert_eq!(event.content_type, "application/cloudevents+json");
        let e = &event.body;
        assert_eq!(e["specversion"], "1.0", "{e}");
        assert_eq!(e["type"], "dev.trustgate.decision", "{e}");
        assert_eq!(e["source"], "trustgate", "{e}");
        assert_eq!(e["datacontenttype"], "application/json", "{e}");
        assert!(e["id"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        assert_eq!(e["time"], e["data"]["time"], "{e}");
    }
    let datas: Vec<&Value> = events.iter().map(|e| &e.body["data"]).collect();
    for source in [datas, written.iter().collect()] {
        for (id, method, kind, verdict) in &expected {
            let r = source
                .iter()
                .find(|r| r["request_id"] == id.as_str())
                .unwrap_or_else(|| panic!("no record of {id}: {source:?}"));
            assert_eq!(r["method"], method.as_str(), "{r}");
            assert_eq!(r["kind"], kind.as_str(), "{r}");
            assert_eq!(r["verdict"], verdict.as_str(), "{r}");
            assert_eq!(r["principal"], "anonymous", "{r}");
            assert!(
                r["client"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("127.0.0.1:")),
                "{r}"
            );
            assert!(
                time::OffsetDateTime::parse(
                    r["time"].as_str().unwrap_or_default(),
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok(),
                "{r}"
            );
            if verdict == "deny" {
                let image = match kind.as_str() {
                    "manifest" => format!("{REGISTRY}/blocked/app:v1"),
                    "tags" => format!("{REGISTRY}/blocked/app"),
                    _ => format!("{REGISTRY}/blocked/app@{}", image.manifest.digest),
                };
                assert_eq!(r["image"], image, "{r}");
                assert_eq!(r["rule"], format!("{REGISTRY}/blocked/**"), "{r}");
                assert_eq!(r["action"], "deny", "{r}");
                assert!(
                    r["reason"].as_str().unwrap().contains("denied by policy"),
                    "{r}"
                );
            } else {
                assert_eq!(r["rule"], format!("{REGISTRY}/open/**"), "{r}");
                assert_eq!(r["action"], "allow", "{r}");
            }
            if kind == "manifest" && verdict == "allow" {
                assert_eq!(r["image"], format!("{REGISTRY}/open/app:v1"), "{r}");
                assert_eq!(r["digest"], image.manifest.digest.as_str(), "{r}");
            }
            if kind == "referrers" {
                assert_eq!(r["digest"], image.manifest.digest.as_str(), "{r}");
            }
            if kind == "tags" && verdict == "allow" {
                assert_eq!(r["image"], format!("{REGISTRY}/open/app"), "{r}");
                assert_eq!(r["digest"], Value::Null, "{r}");
            }
            if kind == "blob" {
                let digest = r["digest"].as_str().unwrap();
                assert_eq!(r["image"], format!("{REGISTRY}/open/app@{digest}"), "{r}");
            }
        }
    }
    // The receiver keeps a body before it answers: the count follows its answer.
    for sink in ["file", "webhook:0"] {
        let series = format!("trustgate_records_written_total{{sink=\"{sink}\"}}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while proxy.metric(&series) != Some(n as f64) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(proxy.metric(&series), Some(n as f64), "{series}");
    }
}

#[test]
fn a_slow_or_down_webhook_never_slows_a_pull_and_the_file_rotates() {
    let registry = Registry::start();
    registry.push_random("open/app", "v1", 1);
    let slow = Receiver::start(Duration::from_secs(2));
    // A port nothing listens on: the webhook is down.
    let down = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("decisions.jsonl");
    let records = format!(
        "records:\n  file: {{path: {}, max_size: 2KiB, keep: 2}}\n  webhooks:\n    \
         - {{url: \"{}\", queue: 2, max_retries: 0}}\n    \
         - {{url: \"http://127.0.0.1:{down}/hook\", queue: 2, timeout: 1s, max_retries: 5}}\n",
        serde_json::json!(file.to_str().unwrap()),
        slow.url()
    );
    let proxy = Proxy::start(&config(&registry, &records));
    let warm = proxy.pull("/v2/open/app/manifests/v1");
    assert_eq!(warm.status, 200, "{}", warm.summary());

    const PULLS: usize = 40;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..PULLS {
        let t = Instant::now();
        let r = proxy.pull("/v2/open/app/manifests/v1");
        assert_eq!(r.status, 200, "{}", r.summary());
        slowest = slowest.max(t.elapsed());
    }
    let total = started.elapsed();
    // The slow receiver takes 2 s a record, the down one 3.1 s of backoff (0.1 s doubled,
    // 5 retries) before it gives a record up: had a request waited for either, 40 pulls
    // would take minutes.
    assert!(
        slowest < Duration::from_secs(1) && total < Duration::from_secs(15),
        "slowest {slowest:?}, total {total:?}"
    );
    let dropped = |sink: &str| {
        proxy
            .metric(&format!(
                "trustgate_records_dropped_total{{sink=\"{sink}\"}}"
            ))
            .unwrap_or(0.0)
    };
    // Each queue holds 2 and its task one more: the rest of the 41 are dropped, counted
    // (with margin for a slow machine: even in 15 s each sink takes fewer than 10).
    assert!(dropped("webhook:0") >= 25.0, "{}", proxy.metrics());
    assert!(dropped("webhook:1") >= 25.0, "{}", proxy.metrics());
    assert_eq!(dropped("file"), 0.0, "{}", proxy.metrics());
    eprintln!(
        "{PULLS} pulls in {total:?} (slowest {slowest:?}); dropped: slow {}, down {}",
        dropped("webhook:0"),
        dropped("webhook:1")
    );

    // 41 records of ~400 bytes each in 2 KiB files: rotated, at most `keep` old files.
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy
        .metric("trustgate_records_written_total{sink=\"file\"}")
        .unwrap_or(0.0)
        < (PULLS + 1) as f64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let numbered = |i: usize| dir.path().join(format!("decisions.jsonl.{i}"));
    assert!(file.exists() && numbered(1).exists() && numbered(2).exists());
    assert!(!numbered(3).exists());
    for path in [file.clone(), numbered(1), numbered(2)] {
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 2048, "{}: {size}", path.display());
    }
    // The slow receiver still got some, whole.
    assert!(slow
        .wait_for(1)
        .iter()
        .all(|e| e.body["type"] == "dev.trustgate.decision"));
}

#[test]
fn verifier_refusals_and_passes_are_recorded_with_their_verifier() {
    use support::cosign::{self, Key};
    let registry = Registry::start();
    let keys = tempfile::tempdir().unwrap();
    let key = Key::generate(keys.path(), "a");
    let signed = registry.push_random("signed/app", "v1", 1);
    cosign::sign_digest(&registry, &key, "signed/app", &signed.manifest.digest);
    registry.push_random("signed/other", "v1", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("decisions.jsonl");
    let body = cosign::config(
        &registry.url(),
        &[cosign::verify_rule(
            "signed/**",
            &cosign::offline_key_trust(&key),
        )],
    );
    let records = format!(
        "records:\n  file: {{path: {}}}\n",
        serde_json::json!(file.to_str().unwrap())
    );
    let proxy = Proxy::start(&format!("{body}{records}"));

    let served = proxy.pull("/v2/signed/app/manifests/v1");
    assert_eq!(served.status, 200, "{}", served.summary());
    let refused = proxy.pull("/v2/signed/other/manifests/v1");
    assert_eq!(refused.status, 403, "{}", refused.summary());
    let referrers = proxy.pull(&format!(
        "/v2/signed/app/referrers/{}",
        signed.manifest.digest
    ));
    assert_eq!(referrers.status, 200, "{}", referrers.summary());
    let written = lines(&file, 3);
    assert_eq!(written.len(), 3, "{written:?}");
    let of = |r: &support::http::HttpResponse| {
        let id = r.header("x-request-id").unwrap();
        written
            .iter()
            .find(|w| w["request_id"] == id)
            .unwrap_or_else(|| panic!("no record of {id}: {written:?}"))
            .clone()
    };
    let allow = of(&served);
    assert_eq!(allow["verdict"], "allow", "{allow}");
    assert_eq!(allow["action"], "verify", "{allow}");
    assert_eq!(allow["verifier"], "cosign", "{allow}");
    assert_eq!(allow["reason"], "verified", "{allow}");
    assert_eq!(allow["digest"], signed.manifest.digest.as_str(), "{allow}");
    let deny = of(&refused);
    assert_eq!(deny["verdict"], "deny", "{deny}");
    assert_eq!(deny["action"], "verify", "{deny}");
    assert_eq!(deny["verifier"], "cosign", "{deny}");
    assert_eq!(
        deny["image"],
        format!("{REGISTRY}/signed/other:v1"),
        "{deny}"
    );
    let listed = of(&referrers);
    assert_eq!(listed["kind"], "referrers", "{listed}");
    assert_eq!(listed["verdict"], "allow", "{listed}");
    assert_eq!(listed["verifier"], "cosign", "{listed}");
    assert_eq!(
        listed["digest"],
        signed.manifest.digest.as_str(),
        "{listed}"
    );
    // The reason is the one the client was refused with.
    let message = refused.error_message().unwrap_or_default();
    assert!(
        !message.is_empty() && deny["reason"].as_str().unwrap().contains(&message),
        "{deny} vs {message}"
    );

    // SIGTERM: the queued records are written and the process stops, in time.
    let pulled = proxy.pull("/v2/signed/app/manifests/v1");
    assert_eq!(pulled.status, 200, "{}", pulled.summary());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !proxy.log().contains("trustgate stopped") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        proxy.log().contains("trustgate stopped"),
        "{}",
        proxy.log_tail(20)
    );
    let written = lines(&file, 4);
    assert_eq!(written.len(), 4, "{written:?}");
    assert_eq!(
        written[3]["request_id"],
        pulled.header("x-request-id").unwrap()
    );
}

#[test]
fn a_webhook_answering_errors_is_retried_then_given_up_on_and_counted() {
    let registry = Registry::start();
    registry.push_random("open/app", "v1", 1);
    // `flaky` refuses its first two POSTs (503, then 500) and takes the rest; `broken` refuses
    // every one.
    let flaky = Receiver::answering(
        Duration::ZERO,
        Arc::new(|n| match n {
            0 => 503,
            1 => 500,
            _ => 200,
        }),
    );
    let broken = Receiver::answering(Duration::ZERO, Arc::new(|_| 500));
    let records = format!(
        "records:\n  webhooks:\n    - {{url: \"{}\", max_retries: 3}}\n    \
         - {{url: \"{}\", max_retries: 1}}\n",
        flaky.url(),
        broken.url()
    );
    let proxy = Proxy::start(&config(&registry, &records));

    const PULLS: usize = 3;
    let mut ids = Vec::new();
    for _ in 0..PULLS {
        let r = proxy.pull("/v2/open/app/manifests/v1");
        assert_eq!(r.status, 200, "{}", r.summary());
        ids.push(r.header("x-request-id").unwrap().to_owned());
        // One at a time, so the first record is the one the flaky receiver refuses.
        let wanted = ids.len() + 2;
        assert!(
            flaky.wait_for(wanted).len() >= wanted,
            "{}",
            proxy.log_tail(20)
        );
    }
    let series = |family: &str, sink: &str| {
        let name = format!("{family}{{sink=\"{sink}\"}}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = proxy.metric(&name).unwrap_or(0.0);
            if got >= PULLS as f64 || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // The flaky receiver: the first record took three attempts with the same body, every
    // record arrived once with a 200, none was dropped.
    let got = flaky.received();
    assert_eq!(got.len(), PULLS + 2, "{got:?}");
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>()[..3],
        [503, 500, 200]
    );
    assert!(got[..3].iter().all(|r| r.body == got[0].body), "{got:?}");
    let delivered: Vec<&str> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.body["data"]["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        delivered,
        ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        series("trustgate_records_written_total", "webhook:0"),
        PULLS as f64
    );
    assert_eq!(
        proxy.metric("trustgate_records_dropped_total{sink=\"webhook:0\"}"),
        Some(0.0)
    );

    // The broken receiver: each record tried twice (one retry), then dropped and counted.
    assert_eq!(
        series("trustgate_records_dropped_total", "webhook:1"),
        PULLS as f64,
        "{}",
        proxy.metrics()
    );
    assert_eq!(broken.received().len(), 2 * PULLS);
    assert_eq!(
        proxy.metric("trustgate_records_written_total{sink=\"webhook:1\"}"),
        Some(0.0)
    );
    // Every attempt was timed, answered or not.
    assert_eq!(
        proxy.metric("trustgate_webhook_duration_seconds_count{sink=\"webhook:0\"}"),
        Some((PULLS + 2) as f64)
    );
    assert_eq!(
        proxy.metric("trustgate_webhook_duration_seconds_count{sink=\"webhook:1\"}"),
        Some((2 * PULLS) as f64)
    );
}
