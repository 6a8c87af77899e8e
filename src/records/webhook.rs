//! The webhook sink: POSTs each record as a CloudEvents 1.0 structured-mode JSON event
//! (`Content-Type: application/cloudevents+json`), one at a time, with a per-attempt timeout
//! and bounded exponential backoff between retries; a record that still fails is dropped and
//! counted. Headers (e.g. `Authorization`) come from `headers_file`, kept as [`Secret`]s.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::{HeaderName, HeaderValue};
use tokio::sync::mpsc;

use super::Record;
use crate::config::{RecordsWebhookConfig, Secret};
use crate::metrics::RecordsMetrics;

/// The first wait between attempts; doubled per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The CloudEvents `type` of a decision record.
pub const EVENT_TYPE: &str = "dev.trustgate.decision";

/// `record` as a CloudEvents 1.0 structured-mode event; `seq` makes the id unique when a
/// request id repeats (a client may send its own).
pub fn cloud_event(record: &Record, seq: u64) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "type": EVENT_TYPE,
        "source": "trustgate",
        "id": format!("{}-{seq}", record.request_id),
        "time": super::rfc3339_of(record.time),
        "datacontenttype": "application/json",
        "data": record,
    })
}

pub(super) struct WebhookSink {
    url: String,
    client: reqwest::Client,
    timeout: Duration,
    max_retries: u32,
    headers: Vec<(HeaderName, Secret)>,
}

impl WebhookSink {
    pub(super) fn new(config: &RecordsWebhookConfig) -> anyhow::Result<WebhookSink> {
        let headers = match &config.headers_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading records.webhooks headers_file {}", path.display())
                })?;
                parse_headers(&text)
                    .with_context(|| format!("records.webhooks headers_file {}", path.display()))?
            }
            None => Vec::new(),
        };
        let client = reqwest::Client::builder()
            .redirect(crate::http_client::redirect_policy(0))
            .build()
            .context("building the webhook HTTP client")?;
        Ok(WebhookSink {
            url: config.url.as_str().to_owned(),
            client,
            timeout: config.timeout,
            max_retries: config.max_retries,
            headers,
        })
    }

    pub(super) async fn run(
        self,
        mut rx: mpsc::Receiver<Arc<Record>>,
        name: Arc<str>,
        metrics: RecordsMetrics,
        pending: Arc<AtomicUsize>,
    ) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        while let Some(record) = rx.recv().await {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let delivered = match serde_json::to_vec(&cloud_event(&record, seq)) {
                Ok(body) => self.deliver(body, &name, &metrics).await,
                Err(_) => false,
            };
            if delivered {
                metrics.written(&name, 1);
            } else {
                metrics.dropped(&name);
            }
            pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Tries once plus `max_retries` times; true once the receiver answered 2xx.
    async fn deliver(&self, body: Vec<u8>, name: &str, metrics: &RecordsMetrics) -> bool {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=self.max_retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let mut request = self
                .client
                .post(&self.url)
                .timeout(self.timeout)
                .header(http::header::CONTENT_TYPE, "application/cloudevents+json")
                .body(body.clone());
            for (header, value) in &self.headers {
                if let Ok(mut value) = HeaderValue::from_str(value.expose()) {
                    value.set_sensitive(true);
                    request = request.header(header.clone(), value);
                }
            }
            let started = Instant::now();
            let result = request.send().await;
            metrics.webhook_latency(name, started.elapsed());
            match result {
                Ok(response) if response.status().is_success() => return true,
                Ok(response) => {
                    tracing::debug!(
                        sink = name,
                        status = response.status().as_u16(),
                        attempt,
                        "webhook refused a decision record"
                    );
                }
                Err(error) => {
                    tracing::debug!(sink = name, attempt, error = %crate::http_client::error_chain(&error),
                        "webhook unreachable");
                }
            }
        }
        false
    }
}

/// `Name: value` lines (blank lines and `#` comments skipped).
fn parse_headers(text: &str) -> anyhow::Result<Vec<(HeaderName, Secret)>> {
    let mut headers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("line {}: not `Name: value`", i + 1))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("line {}: not a header name", i + 1))?;
        let value = value.trim();
        // Checked here so a bad value is a startup error, never silently skipped later.
        HeaderValue::from_str(value)
            .with_context(|| format!("line {}: not a header value", i + 1))?;
        headers.push((name, Secret::new(value)));
    }
    Ok(headers)
}

#[cfg(test)]
pub(super) fn parse_headers_for_test(text: &str) -> anyhow::Result<Vec<(HeaderName, Secret)>> {
    parse_headers(text)
}
