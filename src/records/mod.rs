//! Decision records: one structured record per decided request (manifest GET and HEAD, blob,
//! referrers, tags/list), sent to the configured sinks (`records:` in the configuration).
//!
//! ```text
//! Proxy::handle -> Records::emit (try_send, never awaits) -> one bounded queue per sink
//!   file    -> a thread appends JSON lines, flushes per batch, rotates at max_size
//!   webhook -> a task POSTs CloudEvents 1.0 JSON, per-attempt timeout, bounded backoff
//! ```
//! A full queue drops the record and counts it (`trustgate_records_dropped_total{sink}`): a
//! slow or down sink fills its queue, it never slows a request.

mod file;
mod webhook;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::RecordsConfig;
use crate::metrics::RecordsMetrics;
use crate::policy::VerifierKind;

pub use self::webhook::cloud_event;

/// The request kinds records are kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Manifest,
    Blob,
    Referrers,
    Tags,
}

/// The outcome: served, refused by policy or a verifier, or not decided (a failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordVerdict {
    Allow,
    Deny,
    Error,
}

/// One decision. Built on the request's path, so what can wait (the time and client address
/// in words, the verifier's name) is kept as values and formatted only when a sink serialises
/// the record, on its own thread.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    /// RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    pub request_id: String,
    /// `ip:port` of the client connection (empty when unknown).
    #[serde(serialize_with = "display_or_empty")]
    pub client: Option<SocketAddr>,
    pub principal: String,
    /// `GET` or `HEAD`.
    pub method: &'static str,
    pub kind: RecordKind,
    /// `registry/repository[:tag|@digest]`.
    pub image: String,
    /// The manifest or blob digest served or asked for, when known.
    pub digest: Option<String>,
    /// The rule's pattern, or `default`.
    pub rule: String,
    /// `verify`, `audit`, `allow` or `deny` (empty for a registry no upstream serves).
    pub action: &'static str,
    /// The rule's verifier, when it has one.
    #[serde(serialize_with = "display_opt")]
    pub verifier: Option<VerifierKind>,
    pub verdict: RecordVerdict,
    /// Why, in words.
    pub reason: String,
}

/// `time` in RFC 3339 (UTC).
pub fn rfc3339_of(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_of(*time))
}

fn display_or_empty<S: serde::Serializer>(
    value: &Option<SocketAddr>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

fn display_opt<S: serde::Serializer>(
    value: &Option<VerifierKind>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// One sink's queue.
#[derive(Clone, Debug)]
struct Sink {
    /// The metric label: `file` or `webhook:<index>`.
    name: Arc<str>,
    tx: mpsc::Sender<Arc<Record>>,
    /// Records queued and not yet written or given up on.
    pending: Arc<AtomicUsize>,
}

/// Where records go; cheap to clone. With no sinks, [`Records::emit`] does nothing.
#[derive(Clone, Debug)]
pub struct Records {
    sinks: Arc<[Sink]>,
    metrics: RecordsMetrics,
}

/// Stops the sink tasks: the file sink flushes what it has, then the tasks end.
pub struct Shutdown {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

// === impl Records ===

impl Records {
    /// Starts one task per configured sink (on the current tokio runtime). Reads webhook
    /// header files; fails if one cannot be read or the file sink cannot be opened.
    pub fn start(
        config: &RecordsConfig,
        metrics: RecordsMetrics,
    ) -> anyhow::Result<(Records, Shutdown)> {
        let mut sinks = Vec::new();
        let mut tasks = Vec::new();
        if let Some(file) = &config.file {
            let (tx, rx) = mpsc::channel(file.queue.max(1));
            let name: Arc<str> = Arc::from("file");
            let writer = file::FileSink::open(file)?;
            let pending = Arc::new(AtomicUsize::new(0));
            let (done, ended) = tokio::sync::oneshot::channel::<()>();
            let (thread_name, thread_metrics, thread_pending) =
                (name.clone(), metrics.clone(), pending.clone());
            // Its own thread, not the blocking pool: it blocks for its whole life, and the
            // runtime's shutdown must not wait for it.
            std::thread::Builder::new()
                .name("trustgate-records".to_owned())
                .spawn(move || {
                    writer.run(rx, thread_name, thread_metrics, thread_pending);
                    let _ = done.send(());
                })
                .context("starting the records file writer")?;
            tasks.push(tokio::spawn(async move {
                let _ = ended.await;
            }));
            sinks.push(Sink { name, tx, pending });
        }
        for (i, hook) in config.webhooks.iter().enumerate() {
            let (tx, rx) = mpsc::channel(hook.queue.max(1));
            let name: Arc<str> = Arc::from(format!("webhook:{i}"));
            let sender = webhook::WebhookSink::new(hook)?;
            let pending = Arc::new(AtomicUsize::new(0));
            let task = sender.run(rx, name.clone(), metrics.clone(), pending.clone());
            tasks.push(tokio::spawn(task));
            sinks.push(Sink { name, tx, pending });
        }
        for sink in &sinks {
            metrics.init(&sink.name);
        }
        Ok((
            Records {
                sinks: sinks.into(),
                metrics,
            },
            Shutdown { tasks },
        ))
    }

    /// No sinks: records are not kept.
    pub fn disabled(metrics: RecordsMetrics) -> Records {
        Records {
            sinks: Arc::from(Vec::new()),
            metrics,
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// Queues `record` for every sink; never blocks or awaits. A full (or closed) queue drops
    /// the record for that sink and counts it.
    pub fn emit(&self, record: Record) {
        if self.sinks.is_empty() {
            return;
        }
        let record = Arc::new(record);
        for sink in self.sinks.iter() {
            sink.pending.fetch_add(1, Ordering::AcqRel);
            if sink.tx.try_send(record.clone()).is_err() {
                sink.pending.fetch_sub(1, Ordering::AcqRel);
                self.metrics.dropped(&sink.name);
            }
        }
    }

    /// Waits, up to `limit`, until every queued record is written (the file sink flushed) or
    /// given up on: at shutdown, once no request is served any more.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self
            .sinks
            .iter()
            .any(|s| s.pending.load(Ordering::Acquire) > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the queues, so the sink tasks drain, flush and end (see [`Shutdown::wait`]).
    pub fn close(self) {
        drop(self);
    }
}

// === impl Shutdown ===

impl Shutdown {
    /// Waits up to `limit` for the sink tasks to end once every [`Records`] handle is gone.
    pub async fn wait(self, limit: std::time::Duration) {
        let all = futures_util::future::join_all(self.tasks);
        let _ = tokio::time::timeout(limit, all).await;
    }
}

#[cfg(test)]
mod tests;
