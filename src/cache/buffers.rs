//! Reused read buffers for the disk read paths (cache hits, and readers tailing a fetch).
//!
//! Both read [`READ_CHUNK`](super::read::READ_CHUNK) bytes at a time. A fresh `vec![0; len]`
//! per read costs a memset and, whenever the allocator has handed that memory back to the
//! kernel, 64 page faults: with 32 clients reading cached blobs that was about a third of
//! trustgate's CPU. Instead a read takes a buffer from a small pool and hands it out as
//! [`Bytes`] that put the buffer back when the last reference is dropped (once hyper wrote
//! it to the socket). A buffer is zeroed once, when it is created; a read only ever exposes
//! the bytes it filled, never what an earlier read left behind.

use std::io;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Idle buffers of one size, at most `max_idle` of them (the rest are freed).
pub(super) struct BufferPool {
    idle: Mutex<Vec<Vec<u8>>>,
    size: usize,
    max_idle: usize,
}

/// A pooled buffer with `len` bytes filled; returns to `pool` when dropped.
struct Filled {
    buf: Vec<u8>,
    len: usize,
    pool: &'static BufferPool,
}

// === impl BufferPool ===

impl BufferPool {
    pub(super) const fn new(size: usize, max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            size,
            max_idle,
        }
    }

    /// Runs `read` on a buffer of `len` bytes (at most the pool's size) and returns the
    /// bytes it says it filled, as `Bytes` that give the buffer back when dropped.
    pub(super) fn read(
        &'static self,
        len: usize,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<Bytes> {
        assert!(
            len <= self.size,
            "read of {len} bytes from a pool of {}",
            self.size
        );
        let mut buf = self.take();
        let n = match read(&mut buf[..len]) {
            Ok(n) => n.min(len),
            Err(e) => {
                self.give_back(buf);
                return Err(e);
            }
        };
        Ok(Bytes::from_owner(Filled {
            buf,
            len: n,
            pool: self,
        }))
    }

    fn take(&self) -> Vec<u8> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.unwrap_or_else(|| vec![0; self.size])
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(buf);
        }
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

// === impl Filled ===

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Filled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(size: usize, max_idle: usize) -> &'static BufferPool {
        Box::leak(Box::new(BufferPool::new(size, max_idle)))
    }

    #[test]
    fn exposes_only_what_the_read_filled_and_reuses_the_buffer() {
        let pool = pool(8, 4);
        let first = pool
            .read(8, |buf| {
                buf.copy_from_slice(b"abcdefgh");
                Ok(8)
            })
            .unwrap();
        assert_eq!(&first[..], b"abcdefgh");
        let at = first.as_ptr();
        let copy = first.clone();
        drop(first);
        assert_eq!(pool.idle(), 0, "a clone still holds the buffer");
        drop(copy);
        assert_eq!(pool.idle(), 1);

        // The same memory comes back, and the previous contents stay hidden.
        let second = pool
            .read(8, |buf| {
                buf[..3].copy_from_slice(b"xyz");
                Ok(3)
            })
            .unwrap();
        assert_eq!(second.as_ptr(), at);
        assert_eq!(&second[..], b"xyz");
        assert_eq!(&second.slice(1..)[..], b"yz");
        drop(second);
        let empty = pool.read(5, |_| Ok(0)).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn keeps_at_most_max_idle_buffers_and_passes_errors_on() {
        let pool = pool(4, 2);
        let held: Vec<Bytes> = (0..5).map(|_| pool.read(4, |_| Ok(4)).unwrap()).collect();
        drop(held);
        assert_eq!(pool.idle(), 2);
        let err = pool
            .read(4, |_| Err(io::Error::other("disk on fire")))
            .unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        assert_eq!(pool.idle(), 2, "a failed read gives its buffer back");
    }
}
