//! The Grafana dashboard (`charts/trustgate/dashboards/trustgate.json`) against the metrics a
//! real proxy exports.
//!
//! The proxy runs between real peers (`docker-registry`, `notary-server`) and serves traffic
//! that makes every family appear: a signed pull under `verify` (trust fetch, trust expiry,
//! upstream requests, cache misses then hits), a refused tag, an unreachable upstream
//! (upstream errors), and an upstream that sends `RateLimit-Remaining`. Then every metric name
//! in every panel query must be in the scrape, and every family in the scrape must be on the
//! dashboard. Queries are also checked as PromQL by `promtool check rules`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::oci::{Image, ACCEPT_ALL};
use support::proxy::Proxy;
use support::{free_port, http_get, NotaryCli, NotaryServer, Registry};

const REGISTRY: &str = "registry.test";
const DOWN: &str = "down.test";

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/trustgate/dashboards/trustgate.json")
}

fn dashboard() -> serde_json::Value {
    let text = fs::read_to_string(dashboard_path()).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

// === queries and the metric names in them ===

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested);
        }
        out.push(panel);
    }
    out
}

/// `(where, PromQL)` for every panel target and every query variable.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {:?}: a target without expr", panel["title"]));
            out.push((format!("panel {:?}", panel["title"]), expr.to_owned()));
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if var["type"] == "query" {
            let query = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .expect("variable query");
            // `label_values(<selector>, <label>)`: the selector is PromQL.
            let selector = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.rsplit_once(','))
                .map(|(selector, _)| selector.to_owned())
                .unwrap_or_else(|| panic!("unexpected variable query {query}"));
            out.push((format!("variable {:?}", var["name"]), selector));
        }
    }
    out
}

/// Keywords that look like identifiers but name no series.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Aggregation operators, which may put `by (...)` or `without (...)` before their argument.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Metric names in a PromQL expression: identifiers that are not functions or aggregations
/// (followed by `(`), keywords, label names (inside `{...}` or a `by (...)` list), string
/// contents, durations or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Depth of `{...}` and the paren depth at which a grouping list ends.
    let mut braces = 0usize;
    let mut grouping: Option<usize> = None;
    let mut parens = 0usize;
    let mut after_grouping_keyword = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                // A string literal: skip to its unescaped end.
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && c != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => {
                // A range or subquery duration: `[5m]`, `[$__rate_interval]`, `[1h:5m]`.
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            }
            '(' => {
                parens += 1;
                if after_grouping_keyword {
                    grouping = Some(parens);
                    after_grouping_keyword = false;
                }
            }
            ')' => {
                if grouping == Some(parens) {
                    grouping = None;
                }
                parens = parens.saturating_sub(1);
            }
            '$' => {
                // A Grafana variable, e.g. `$__rate_interval`: not PromQL.
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or duration (`0.95`, `1e-9`, `5m`): digits then letters.
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                continue;
            }
            c if c.is_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let rest: String = chars[i..].iter().collect();
                let rest = rest.trim_start();
                let next = rest.chars().next();
                let lower = word.to_ascii_lowercase();
                // `sum by (x) (...)`: an aggregation with its grouping first.
                let grouped_aggregation = AGGREGATIONS.contains(&lower.as_str())
                    && (rest.starts_with("by") || rest.starts_with("without"));
                if KEYWORDS.contains(&lower.as_str()) {
                    after_grouping_keyword = matches!(
                        lower.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                } else if !grouped_aggregation
                    && braces == 0
                    && grouping.is_none()
                    && next != Some('(')
                {
                    names.insert(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

#[test]
fn metric_name_extraction() {
    let cases: [(&str, &[&str]); 6] = [
        (
            r#"sum by (kind, code) (rate(trustgate_http_requests_total{job=~"$job", code!="200"}[$__rate_interval]))"#,
            &["trustgate_http_requests_total"],
        ),
        (
            "histogram_quantile(0.95, sum by (upstream, le) (rate(a_bucket[5m])))",
            &["a_bucket"],
        ),
        (
            "sum(rate(a_total[1m])) / (sum(b) + on (x) group_left (y) c)",
            &["a_total", "b", "c"],
        ),
        (r#"min by (role) (g{role="a{b}"}) or vector(0)"#, &["g"]),
        ("x offset 5m > bool 1e-9", &["x"]),
        (r#"label_replace(up, "a", "$1", "b", "(.*)")"#, &["up"]),
    ];
    for (expr, want) in cases {
        let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(metric_names(expr), want, "{expr}");
    }
}

#[test]
fn dashboard_is_well_formed() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "trustgate-overview", "the uid is stable");
    assert!(
        dashboard.get("id").is_none_or(|id| id.is_null()),
        "a provisioned dashboard carries no database id"
    );
    let vars: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains(&"datasource"), "{vars:?}");
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = &panel["title"];
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {title}"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{title} is wider than the grid");
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title} has no description"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: use the datasource variable, not a fixed uid"
        );
        assert!(
            panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "{title} has no query"
        );
    }
    for topic in [
        "Decisions",
        "Refusal reasons",
        "Cache hit ratio",
        "Upstream latency",
        "Upstream errors",
        "Trust-data expiry",
        "Request rate",
        "Request latency",
    ] {
        assert!(
            panels(&dashboard)
                .iter()
                .any(|p| p["title"].as_str().unwrap_or("").starts_with(topic)),
            "no panel about {topic}"
        );
    }
}

/// Each query parses as PromQL: `promtool check rules` on recording rules made from them,
/// with Grafana's variables replaced by values.
#[test]
fn queries_are_valid_promql() {
    let rules: Vec<serde_json::Value> = queries(&dashboard())
        .into_iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    // JSON is YAML.
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    fs::write(&file, doc.to_string()).unwrap();
    let output = support::run_bounded(
        Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&file),
        b"",
        "prometheus",
    );
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// === the live check ===

/// A second `docker-registry` over the first one's storage that adds `RateLimit-Remaining` to
/// every response, as Docker Hub does. Killed on drop.
struct RateLimitedRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RateLimitedRegistry {
    fn start(storage: &Path) -> RateLimitedRegistry {
        let dir = tempfile::tempdir().unwrap();
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = serde_json::json!({
                "version": "0.1",
                "log": {"level": "error"},
                "storage": {"filesystem": {"rootdirectory": storage.to_str().unwrap()}},
                "http": {
                    "addr": format!("127.0.0.1:{port}"),
                    "headers": {"RateLimit-Remaining": ["97;w=21600"]},
                },
            });
            let path = dir.path().join("registry.yml");
            fs::write(&path, config.to_string()).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run docker-registry (apt-get install docker-registry)");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("exited: {status}");
                    break;
                }
                match http_get(&format!("http://127.0.0.1:{port}/v2/")) {
                    Ok((200, _)) => {
                        return RateLimitedRegistry {
                            child,
                            port,
                            _dir: dir,
                        }
                    }
                    Ok((code, _)) => last = format!("HTTP {code}"),
                    Err(e) => last = e,
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the rate-limited docker-registry did not start: {last}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for RateLimitedRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Family name -> type, from the `# TYPE` lines of an exposition.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_owned(), kind.trim().to_owned()))
        })
        .collect()
}

/// The names PromQL can select for each family: a histogram's `_bucket`, `_sum` and
/// `_count`; any other family's own name.
fn selectable(families: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (family, kind) in families {
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{family}{suffix}"), family.clone());
            }
        } else {
            out.insert(family.clone(), family.clone());
        }
    }
    out
}

#[test]
fn every_dashboard_query_names_exported_metrics() {
    let notary = NotaryServer::start();
    let cli = NotaryCli::for_server(&notary);
    let registry = Registry::start();
    let image = Image::random(2);
    image.push(&registry, "signed/app", "v1");
    let gun = format!("{REGISTRY}/signed/app");
    cli.init(&gun);
    cli.addhash(&gun, "v1", image.manifest.size(), image.manifest.hex(), &[]);
    let limited = RateLimitedRegistry::start(&registry.data_dir());
    let closed = free_port();
    // Decision records to a file and to a webhook nobody answers (dropped, timed).
    let records = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
  - {{registry: "{DOWN}", url: "http://127.0.0.1:{closed}"}}
notary_servers:
  - {{name: local, url: "{}", ttl: 60s}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/signed/**", action: verify, notary: local}}
    - {{match: "{DOWN}/**", action: allow}}
records:
  file: {{path: {}}}
  webhooks:
    - {{url: "http://127.0.0.1:{closed}/hook", timeout: 1s, max_retries: 0}}
"#,
        limited.url(),
        notary.url(),
        serde_json::json!(records.path().join("decisions.jsonl")),
    ));

    let accept = [("Accept", ACCEPT_ALL)];
    let manifest = "/v2/signed/app/manifests/v1";
    let r = proxy.request("GET", manifest, &accept, b"");
    assert_eq!(r.status, 200, "{}\n{}", r.summary(), proxy.log_tail(30));
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let r = proxy.request(
            "GET",
            &format!("/v2/signed/app/blobs/{}", blob.digest),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.summary());
    }
    // Again: from the cache.
    assert_eq!(proxy.request("GET", manifest, &accept, b"").status, 200);
    // Refused: not signed.
    let r = proxy.request("GET", "/v2/signed/app/manifests/v2", &accept, b"");
    assert_eq!(r.status, 403, "{}", r.summary());
    // An upstream nobody answers for.
    let r = proxy.request(
        "GET",
        &format!("/v2/x/manifests/v1?ns={DOWN}"),
        &accept,
        b"",
    );
    assert!(r.status >= 500, "{}", r.summary());

    // The webhook's first failed attempt makes its latency family appear.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !proxy
        .metrics()
        .contains("trustgate_webhook_duration_seconds_count")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = proxy.metrics();
    // The live exposition, every family populated, lints clean.
    let lint = support::run_bounded(
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
        "prometheus",
    );
    assert!(
        lint.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let exported = selectable(&families(&text));
    let mut used_families = BTreeSet::new();
    let mut missing = Vec::new();
    for (place, expr) in queries(&dashboard()) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr}");
        for name in names {
            match exported.get(&name) {
                Some(family) => {
                    used_families.insert(family.clone());
                }
                None => missing.push(format!("{place}: {name}")),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "dashboard queries name metrics the proxy does not export:\n{}\n\nscrape:\n{text}",
        missing.join("\n")
    );
    let unused: Vec<String> = families(&text)
        .into_keys()
        .filter(|f| f.starts_with("trustgate_") && !used_families.contains(f))
        .collect();
    assert!(
        unused.is_empty(),
        "exported families no dashboard panel shows: {unused:?}"
    );

    // The values behind the new wiring are real, not just present.
    let value = |series: &str| support::proxy::metric_value(&text, series);
    assert_eq!(
        value(&format!(
            "trustgate_upstream_ratelimit_remaining{{upstream=\"{REGISTRY}\"}}"
        )),
        Some(97.0)
    );
    assert!(
        value(&format!(
            "trustgate_upstream_errors_total{{kind=\"connect\",upstream=\"{DOWN}\"}}"
        ))
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        value(&format!(
            "trustgate_upstream_requests_total{{code=\"200\",upstream=\"{REGISTRY}\"}}"
        ))
        .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    // Fetches end, and blobs are committed to the cache, just after their responses.
    let settled = |series: &str, ok: &dyn Fn(f64) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = proxy.metric(series);
            if now.is_some_and(ok) || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let inflight = settled("trustgate_inflight_fetches", &|n| n == 0.0);
    assert_eq!(inflight, Some(0.0), "an upstream fetch never ended");
    let stored: u64 = std::iter::once(&image.manifest)
        .chain(std::iter::once(&image.config))
        .chain(&image.layers)
        .map(|b| b.size())
        .sum();
    let size = settled("trustgate_cache_size_bytes", &|n| n >= stored as f64);
    assert!(
        size.is_some_and(|n| n >= stored as f64),
        "cache size {size:?}, expected at least {stored}"
    );
    // notary-server signs timestamps for days ahead, and roots for years.
    let expiry = |role: &str| {
        value(&format!(
            "trustgate_trust_expiry_seconds{{role=\"{role}\"}}"
        ))
    };
    assert!(expiry("timestamp").is_some_and(|s| s > 3600.0), "{text}");
    assert!(
        expiry("root").is_some_and(|s| s > expiry("timestamp").unwrap()),
        "{text}"
    );
}
