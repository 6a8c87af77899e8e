//! The JSON-lines file sink: appends one record a line, flushes per batch, and rotates when
//! the file exceeds `max_size` (`path` -> `path.1` ... `path.<keep>`, the oldest removed).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use super::Record;
use crate::config::RecordsFileConfig;
use crate::metrics::RecordsMetrics;

/// Most records written between two flushes.
const BATCH: usize = 256;

/// How long a batch that is not full waits for more records before it is written.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

pub(super) struct FileSink {
    path: PathBuf,
    max_size: u64,
    keep: usize,
    out: BufWriter<File>,
    size: u64,
}

impl FileSink {
    pub(super) fn open(config: &RecordsFileConfig) -> anyhow::Result<FileSink> {
        let (out, size) = open_append(&config.path)?;
        Ok(FileSink {
            path: config.path.clone(),
            max_size: config.max_size.max(1),
            keep: config.keep,
            out,
            size,
        })
    }

    /// Writes records as they come, on a blocking thread per batch, until the queue closes;
    /// flushes after every batch, so nothing waits in memory once the queue is empty.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Arc<Record>>,
        name: Arc<str>,
        metrics: RecordsMetrics,
        pending: Arc<AtomicUsize>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            // Under load, records arrive one by one: gather what comes within LINGER, so one
            // hand-off to a blocking thread and one write carry many of them.
            if batch.len() < BATCH {
                tokio::time::sleep(LINGER).await;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
            }
            let records = std::mem::take(&mut batch);
            let n = records.len() as u64;
            let done = tokio::task::spawn_blocking(move || {
                let result = self.write(&records);
                (self, result)
            })
            .await;
            match done {
                Ok((sink, result)) => {
                    self = sink;
                    match result {
                        Ok(()) => metrics.written(&name, n),
                        Err(error) => {
                            tracing::warn!(path = %self.path.display(), error = %error,
                                "decision records not written");
                            metrics.dropped_n(&name, n);
                        }
                    }
                    pending.fetch_sub(records_len(n), Ordering::AcqRel);
                }
                Err(_) => return,
            }
        }
    }

    fn write(&mut self, records: &[Arc<Record>]) -> std::io::Result<()> {
        for record in records {
            let mut line = serde_json::to_vec(record.as_ref()).map_err(std::io::Error::other)?;
            line.push(b'\n');
            if self.size > 0 && self.size + line.len() as u64 > self.max_size {
                self.rotate()?;
            }
            self.out.write_all(&line)?;
            self.size += line.len() as u64;
        }
        self.out.flush()
    }

    /// `path.<keep-1>` -> `path.<keep>` ... `path` -> `path.1`, then a fresh `path`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            let _ = fs::remove_file(numbered(&self.path, self.keep));
            for i in (1..self.keep).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    fs::rename(&from, numbered(&self.path, i + 1))?;
                }
            }
            fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let (out, size) = open_append(&self.path).map_err(std::io::Error::other)?;
        self.out = out;
        self.size = size;
        Ok(())
    }
}

pub(super) fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> anyhow::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening records.file.path {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((BufWriter::new(file), size))
}

fn records_len(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
