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

/// How long the writer waits, once a record has come, for more before it writes them.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// The output buffer: a batch of records (~400 bytes each) in a few `write`s.
const BUFFER: usize = 64 * 1024;

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

    /// Writes records as they come until the queue closes, on the thread it is called on
    /// (its own: it blocks); flushes after every batch, so nothing waits in memory once the
    /// queue is empty.
    ///
    /// Requests never wake it while it is busy: it blocks on the queue only when nothing
    /// came while it wrote, and otherwise sleeps [`LINGER`] and takes what came meanwhile.
    /// Under load that is one timer wake-up per batch, not a cross-thread wake-up and a
    /// hand-off to the blocking pool per batch, which cost requests measurably (bench/run
    /// section 13).
    pub(super) fn run(
        mut self,
        mut rx: mpsc::Receiver<Arc<Record>>,
        name: Arc<str>,
        metrics: RecordsMetrics,
        pending: Arc<AtomicUsize>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut line = Vec::with_capacity(1024);
        let mut open = true;
        while open {
            // Idle: wait for the next record, or the end.
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            batch.push(first);
            // Busy: linger, take what came, write; until nothing came during a write.
            while !batch.is_empty() {
                if batch.len() < BATCH {
                    std::thread::sleep(LINGER);
                }
                open = take(&mut rx, &mut batch);
                let n = batch.len();
                match self.write(&batch, &mut line) {
                    Ok(()) => metrics.written(&name, n as u64),
                    Err(error) => {
                        tracing::warn!(path = %self.path.display(), error = %error,
                            "decision records not written");
                        metrics.dropped_n(&name, n as u64);
                    }
                }
                pending.fetch_sub(n, Ordering::AcqRel);
                batch.clear();
                if !open {
                    break;
                }
                open = take(&mut rx, &mut batch);
            }
        }
    }

    /// Appends `records`, one JSON line each (`line` is a reused buffer), and flushes.
    fn write(&mut self, records: &[Arc<Record>], line: &mut Vec<u8>) -> std::io::Result<()> {
        for record in records {
            line.clear();
            serde_json::to_writer(&mut *line, record.as_ref()).map_err(std::io::Error::other)?;
            line.push(b'\n');
            if self.size > 0 && self.size + line.len() as u64 > self.max_size {
                self.rotate()?;
            }
            self.out.write_all(line)?;
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

/// Moves queued records into `batch`, up to [`BATCH`], without waiting; false once the
/// queue is closed and empty.
fn take(rx: &mut mpsc::Receiver<Arc<Record>>, batch: &mut Vec<Arc<Record>>) -> bool {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(record) => batch.push(record),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
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
    Ok((BufWriter::with_capacity(BUFFER, file), size))
}
