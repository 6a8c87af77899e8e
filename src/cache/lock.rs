//! One writer per cache directory: an exclusive lock on `<dir>/trustgate.lock`.
//!
//! Two processes writing one directory would clear each other's temp files at startup and
//! keep indexes that disagree about what is stored (see the module docs of `cache`). So every
//! process that writes the store takes this lock first, before the startup scan: `serve`,
//! and `trustgate cache warm`, `rm` and `gc`. Readers that only list (`cache ls`) do not.
//!
//! The lock is an advisory `flock(2)` held by an open file, so it goes away with the process,
//! however that ends; the file itself stays (it holds the holder's pid, for a human). The
//! startup scan never sees it: it only reads `blobs/` and `tmp/`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// The lock file's name in the cache directory.
pub const LOCK_FILE: &str = "trustgate.lock";

/// Held while this process may write the store under `dir`; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    dir: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("the cache at {} is in use by another trustgate (serve or cache warm); stop it or warm through the running proxy", dir.display())]
    InUse {
        /// The cache directory.
        dir: PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock the cache at {}: {source}", dir.display())]
    Io {
        /// The cache directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

// === impl StoreLock ===

impl StoreLock {
    /// Takes the lock on the store under `dir` (creating the directory), without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::InUse {
                    dir: dir.to_owned(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Only a hint for whoever looks; the lock is what counts.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(Self {
            _file: file,
            dir: dir.to_owned(),
        })
    }

    /// The locked cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(dir.path()).unwrap();
        assert_eq!(first.dir(), dir.path());
        let err = StoreLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, LockError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("in use by another trustgate"));
        drop(first);
        StoreLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let _lock = StoreLock::acquire(&nested).unwrap();
        assert!(nested.join(LOCK_FILE).is_file());
    }
}
