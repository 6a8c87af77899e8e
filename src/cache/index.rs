//! The in-memory index of what is on disk: sizes, LRU order, readers, and space reserved for
//! fetches in progress.
//!
//! It lives behind a `std::sync::Mutex` that is only ever held for a few map operations, never
//! across an `.await`. Removing an entry here is what makes an object invisible; unlinking the
//! file happens afterwards (see `Store::unlink`), so the index never points at a file that is
//! known to be going away.

use lru::LruCache;

use crate::oci::Digest;

/// What kind of object an entry is: a manifest also has a media-type sidecar on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Blob,
    Manifest,
}

/// One object on disk.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub size: u64,
    pub kind: Kind,
    /// Streams currently reading the file. Eviction skips such entries so a slow client does
    /// not lose its object mid-response (on Linux it would keep its data anyway, but evicting
    /// it would free nothing until the reader closes it).
    pub readers: u32,
    /// Whether the bytes were hashed since this process found them. Objects written by this
    /// process are; objects found by the startup scan are checked on their first read.
    pub verified: bool,
    /// Tells entries for the same digest apart across evict-and-refetch, so that a late
    /// "this file vanished" from an old reader cannot remove a newer entry.
    pub generation: u64,
}

/// An entry chosen for eviction: already removed from the index, file not yet unlinked.
#[derive(Debug)]
pub(super) struct Victim {
    pub digest: Digest,
    pub size: u64,
    pub kind: Kind,
}

pub(super) struct Index {
    lru: LruCache<Digest, Entry>,
    stored: u64,
    /// Bytes promised to fetches in progress whose length is known, so that concurrent cold
    /// fetches cannot together overfill the disk.
    reserved: u64,
    max_size: u64,
    next_generation: u64,
}

// === impl Index ===

impl Index {
    pub fn new(max_size: u64) -> Self {
        Self {
            lru: LruCache::unbounded(),
            stored: 0,
            reserved: 0,
            max_size,
            next_generation: 0,
        }
    }

    /// Bytes of objects on disk.
    pub fn stored(&self) -> u64 {
        self.stored
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    /// Adds an object as the most recently used. Space must have been reserved with
    /// [`reserve`](Self::reserve) (or, at startup, be accounted for by a later eviction pass).
    pub fn insert(&mut self, digest: Digest, size: u64, kind: Kind, verified: bool) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let entry = Entry {
            size,
            kind,
            readers: 0,
            verified,
            generation,
        };
        if let Some(old) = self.lru.put(digest, entry) {
            // Only reachable if a caller skipped the presence check; keep the books right.
            self.stored -= old.size;
        }
        self.stored += size;
    }

    /// Turns a reservation into a stored object.
    pub fn insert_reserved(&mut self, digest: Digest, size: u64, kind: Kind) {
        self.unreserve(size);
        self.insert(digest, size, kind, true);
    }

    /// Looks an object up without touching its LRU position.
    pub fn peek(&self, digest: &Digest) -> Option<Entry> {
        self.lru.peek(digest).copied()
    }

    /// Looks an object up and marks it most recently used.
    pub fn touch(&mut self, digest: &Digest) -> Option<Entry> {
        self.lru.get(digest).copied()
    }

    /// Like [`touch`](Self::touch), and counts a reader until [`release`](Self::release).
    pub fn acquire(&mut self, digest: &Digest) -> Option<Entry> {
        let entry = self.lru.get_mut(digest)?;
        entry.readers += 1;
        Some(*entry)
    }

    pub fn release(&mut self, digest: &Digest, generation: u64) {
        if let Some(entry) = self.lru.peek_mut(digest) {
            if entry.generation == generation {
                entry.readers = entry.readers.saturating_sub(1);
            }
        }
    }

    pub fn mark_verified(&mut self, digest: &Digest, generation: u64) {
        if let Some(entry) = self.lru.peek_mut(digest) {
            if entry.generation == generation {
                entry.verified = true;
            }
        }
    }

    /// Marks a stored blob as a manifest (its sidecar was just added).
    pub fn mark_manifest(&mut self, digest: &Digest) {
        if let Some(entry) = self.lru.peek_mut(digest) {
            entry.kind = Kind::Manifest;
        }
    }

    /// Removes the entry if it is still the one a caller looked at.
    pub fn remove(&mut self, digest: &Digest, generation: u64) -> Option<Victim> {
        match self.lru.peek(digest) {
            Some(entry) if entry.generation == generation => {}
            _ => return None,
        }
        let entry = self.lru.pop(digest)?;
        self.stored -= entry.size;
        Some(Victim {
            digest: digest.clone(),
            size: entry.size,
            kind: entry.kind,
        })
    }

    /// Reserves `size` bytes, first evicting least recently used objects that nobody is
    /// reading until `stored + reserved + size <= max_size`.
    ///
    /// Returns the evicted objects (whose files the caller must unlink), or `None` without
    /// changing anything if that is impossible: the object is larger than the store, or what
    /// would have to go is being read.
    pub fn reserve(&mut self, size: u64) -> Option<Vec<Victim>> {
        if size > self.max_size {
            return None;
        }
        let need = (self.stored + self.reserved + size).saturating_sub(self.max_size);
        let mut chosen = Vec::new();
        let mut freed = 0u64;
        // `iter().rev()` walks from least to most recently used.
        for (digest, entry) in self.lru.iter().rev() {
            if freed >= need {
                break;
            }
            if entry.readers == 0 {
                freed += entry.size;
                chosen.push(digest.clone());
            }
        }
        if freed < need {
            return None;
        }
        self.reserved += size;
        let victims = chosen
            .into_iter()
            .filter_map(|digest| {
                let entry = self.lru.pop(&digest)?;
                self.stored -= entry.size;
                Some(Victim {
                    digest,
                    size: entry.size,
                    kind: entry.kind,
                })
            })
            .collect();
        Some(victims)
    }

    /// Reserves `size` bytes if they fit without evicting anything; `false` otherwise.
    pub fn reserve_free(&mut self, size: u64) -> bool {
        let fits = self
            .stored
            .saturating_add(self.reserved)
            .saturating_add(size)
            <= self.max_size;
        if fits {
            self.reserved += size;
        }
        fits
    }

    pub fn unreserve(&mut self, size: u64) {
        self.reserved = self.reserved.saturating_sub(size);
    }
}
