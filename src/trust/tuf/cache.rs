//! The on-disk cache: `root.json`, `timestamp.json`, `snapshot.json`, `targets.json` and
//! `targets/<name>` under one directory. Writes are atomic (a temporary file in the same
//! directory, synced, then renamed over the old one), so a crash leaves the old file or the
//! new one, never half of either. Nothing read here is trusted: the client re-verifies every
//! file it loads.
//!
//! The files are small (the largest bound is 8 MiB, sigstore's are a few KiB) and are written
//! once per update, so plain blocking `std::fs` is used, also from the async update.

use std::{
    fs,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use super::TufError;

/// Distinguishes temporary files of concurrent writes in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

// === impl Cache ===

impl Cache {
    pub fn new(dir: PathBuf) -> Self {
        Cache { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The file `rel` (a path the client built from checked names), or `None` when it does
    /// not exist. More than `max_len` bytes is an error: the cache holds only what passed the
    /// same bounds.
    pub fn read(&self, rel: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        let path = self.path(rel);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(TufError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let mut bytes = Vec::new();
        file.take(max_len.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| TufError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 > max_len {
            return Err(TufError::BadCache {
                what: rel.to_owned(),
                detail: format!("larger than the {max_len}-byte limit"),
            });
        }
        Ok(Some(bytes))
    }

    /// Replaces `rel` with `bytes` atomically.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), TufError> {
        let path = self.path(rel);
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| TufError::Io {
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = fs::File::create(&temp).map_err(io("create", &temp))?;
            file.write_all(bytes).map_err(io("write", &temp))?;
            file.sync_all().map_err(io("sync", &temp))?;
            fs::rename(&temp, &path).map_err(io("replace", &path))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Deletes `rel` if it exists (section 5.3.11).
    pub fn remove(&self, rel: &str) -> Result<(), TufError> {
        let path = self.path(rel);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(TufError::Io {
                action: "delete",
                path,
                source,
            }),
        }
    }
}
