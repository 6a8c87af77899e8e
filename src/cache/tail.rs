//! Reading a fetch in progress: the first caller from its in-memory queue, everyone else
//! (and a first caller that fell behind) by tailing the temp file as the writer extends it.
//! See `flight.rs` for the overall picture.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tokio::sync::{mpsc, watch};

use super::flight::{FlightState, TempFile};
use super::read::{READ_BUFFERS, READ_CHUNK};
use super::verify::Holdback;
use super::{BlobStream, StoreError};
use crate::oci::Digest;

/// A caller reading a flight: from the first-caller queue, then from the temp file.
pub(super) struct Reader {
    digest: Digest,
    state: watch::Receiver<FlightState>,
    first: Option<mpsc::Receiver<Bytes>>,
    pos: u64,
    holdback: Holdback,
    done: bool,
}

/// What a reader does next, decided from the leader's last published state.
enum Step {
    Read(Arc<TempFile>, usize),
    End,
    Fail(StoreError),
    Wait,
}

// === impl Reader ===

impl Reader {
    pub(super) fn new(
        digest: &Digest,
        state: watch::Receiver<FlightState>,
        first: Option<mpsc::Receiver<Bytes>>,
    ) -> Self {
        Self {
            digest: digest.clone(),
            state,
            first,
            pos: 0,
            holdback: Holdback::default(),
            done: false,
        }
    }

    pub(super) fn into_stream(self) -> BlobStream {
        stream::unfold(self, |mut reader| async move {
            let item = reader.next().await?;
            Some((item, reader))
        })
        .boxed()
    }

    async fn next(&mut self) -> Option<Result<Bytes, StoreError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(first) = &mut self.first {
                match first.recv().await {
                    Some(chunk) => {
                        self.pos += chunk.len() as u64;
                        match self.holdback.push(chunk) {
                            Some(ready) => return Some(Ok(ready)),
                            None => continue,
                        }
                    }
                    // Either the end, a failure, or we fell behind: the state says which.
                    None => self.first = None,
                }
            }
            match self.step() {
                Step::Read(file, len) => match read_at(file, self.pos, len).await {
                    Ok(chunk) => {
                        self.pos += chunk.len() as u64;
                        if let Some(ready) = self.holdback.push(chunk) {
                            return Some(Ok(ready));
                        }
                    }
                    Err(e) => return self.fail(e),
                },
                Step::End => {
                    self.done = true;
                    return self.holdback.release().map(Ok);
                }
                Step::Fail(e) => return self.fail(e),
                Step::Wait => {
                    // The leader is gone: its last state may still let us finish.
                    if self.state.changed().await.is_err() && matches!(self.step(), Step::Wait) {
                        let digest = self.digest.clone();
                        return self.fail(StoreError::Aborted { digest });
                    }
                }
            }
        }
    }

    fn step(&mut self) -> Step {
        let state = self.state.borrow_and_update();
        if let Some(e) = &state.failed {
            return Step::Fail(e.clone());
        }
        if let (true, Some(file)) = (self.pos < state.written, &state.file) {
            let len =
                usize::try_from(state.written - self.pos).map_or(READ_CHUNK, |n| n.min(READ_CHUNK));
            return Step::Read(file.clone(), len);
        }
        if state.verified == Some(self.pos) {
            return Step::End;
        }
        if state.cache_failed {
            return Step::Fail(StoreError::CacheUnavailable {
                digest: self.digest.clone(),
            });
        }
        Step::Wait
    }

    fn fail(&mut self, e: StoreError) -> Option<Result<Bytes, StoreError>> {
        self.done = true;
        self.holdback = Holdback::default();
        Some(Err(e))
    }
}

/// Reads up to `len` bytes at `pos` of a temp file shared with the writer and other readers.
async fn read_at(file: Arc<TempFile>, pos: u64, len: usize) -> Result<Bytes, StoreError> {
    let path = file.path.clone();
    super::blocking(&path, "read", move || {
        // Positional reads leave the shared descriptor's offset to the writer. The buffer is
        // a reused one (see `buffers.rs`).
        let chunk = READ_BUFFERS
            .read(len, |buf| file.file.read_at(buf, pos))
            .map_err(|e| StoreError::io("read", &file.path, e))?;
        if chunk.is_empty() {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "temp file shorter than written",
            );
            return Err(StoreError::io("read", &file.path, e));
        }
        Ok(chunk)
    })
    .await
}
