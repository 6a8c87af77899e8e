//! The startup scan: clear crashed writes, then list what is on disk (blocking; run it on the
//! blocking pool).
//!
//! Objects only ever reach their final name by `rename(2)` after their digest verified, and
//! the temp file is `fsync`ed before that rename, so after a process crash or a power loss a
//! name under `blobs/` either is absent or holds the complete, verified bytes. A crash before
//! the rename leaves only a file under `tmp/`, which is removed here. What the scan cannot
//! rule out is a file placed or damaged by something else (an operator's copy, disk faults):
//! those are caught by hashing each found object on its first read (see `Entry::verified`).
//! Anything under `blobs/` whose name is not a digest (or a manifest's `.type` sidecar) is
//! removed, and so is a sidecar without its object.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::{StoreError, BLOBS_DIR, SIDECAR_SUFFIX, TMP_DIR};
use crate::oci::{Digest, DigestAlgorithm};

/// An object found on disk.
#[derive(Debug)]
pub(super) struct Found {
    pub digest: Digest,
    pub size: u64,
    pub manifest: bool,
    /// Latest of access and modification time: the best LRU hint a restart has.
    pub last_used: SystemTime,
    /// Modification time: when the object was stored.
    pub modified: SystemTime,
}

/// What the scan did and found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub objects: Vec<Found>,
    pub removed_temp: usize,
    pub removed_stray: usize,
}

/// Whether a scan may change what it finds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At startup: create the layout, clear `tmp/`, remove strays.
    Clean,
    /// For listing (`trustgate cache ls`, maybe while a proxy runs): only read.
    ReadOnly,
}

/// Creates the layout under `root`, empties `tmp/`, and lists the objects under `blobs/`.
pub(super) fn scan(root: &Path) -> Result<Scan, StoreError> {
    let blobs = root.join(BLOBS_DIR);
    fs::create_dir_all(&blobs).map_err(|e| StoreError::io("create directory", &blobs, e))?;
    let mut scan = Scan {
        removed_temp: clear_tmp(&root.join(TMP_DIR))?,
        ..Scan::default()
    };
    scan_blobs(&mut scan, &blobs, Mode::Clean)?;
    Ok(scan)
}

/// Lists the objects under `blobs/` without changing anything: no layout is created, nothing
/// is removed (a stray file or an orphan sidecar is only skipped). `removed_temp` counts the
/// files under `tmp/` a startup would remove: writes in progress, or left by a crash.
pub(super) fn list(root: &Path) -> Result<Scan, StoreError> {
    fs::metadata(root).map_err(|e| StoreError::io("inspect", root, e))?;
    let tmp = root.join(TMP_DIR);
    let removed_temp = match fs::read_dir(&tmp) {
        Ok(entries) => entries.count(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(StoreError::io("read directory", &tmp, e)),
    };
    let mut scan = Scan {
        removed_temp,
        ..Scan::default()
    };
    scan_blobs(&mut scan, &root.join(BLOBS_DIR), Mode::ReadOnly)?;
    Ok(scan)
}

fn scan_blobs(scan: &mut Scan, blobs: &Path, mode: Mode) -> Result<(), StoreError> {
    for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
        let dir = blobs.join(algorithm.as_str());
        let prefixes = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("read directory", &dir, e)),
        };
        for prefix in prefixes {
            let prefix = prefix.map_err(|e| StoreError::io("read directory", &dir, e))?;
            let path = prefix.path();
            let name = prefix.file_name();
            let is_dir = prefix.file_type().is_ok_and(|t| t.is_dir());
            match name.to_str() {
                Some(name) if is_dir && is_prefix(name) => {
                    scan_prefix(scan, mode, algorithm, name, &path)?;
                }
                _ => remove_stray(scan, mode, &path, is_dir),
            }
        }
    }
    Ok(())
}

/// Removes everything under `tmp/`: temp files of writes that never reached their rename.
fn clear_tmp(tmp: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    match fs::symlink_metadata(tmp) {
        Ok(meta) if meta.is_dir() => {
            for entry in fs::read_dir(tmp).map_err(|e| StoreError::io("read directory", tmp, e))? {
                let entry = entry.map_err(|e| StoreError::io("read directory", tmp, e))?;
                let path = entry.path();
                let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                result.map_err(|e| StoreError::io("remove temp file", &path, e))?;
                removed += 1;
            }
            return Ok(removed);
        }
        // Not a directory: whatever it is, it is ours to replace.
        Ok(_) => {
            fs::remove_file(tmp).map_err(|e| StoreError::io("remove", tmp, e))?;
            removed += 1;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("inspect", tmp, e)),
    }
    fs::create_dir(tmp).map_err(|e| StoreError::io("create directory", tmp, e))?;
    Ok(removed)
}

fn scan_prefix(
    scan: &mut Scan,
    mode: Mode,
    algorithm: DigestAlgorithm,
    prefix: &str,
    dir: &Path,
) -> Result<(), StoreError> {
    let mut objects: HashMap<String, Found> = HashMap::new();
    let mut sidecars = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| StoreError::io("read directory", dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().ok();
        // Only regular files we created count; a symlink could point anywhere.
        let is_file = file_type.is_some_and(|t| t.is_file());
        let is_dir = file_type.is_some_and(|t| t.is_dir());
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            remove_stray(scan, mode, &path, is_dir);
            continue;
        };
        let (hex, sidecar) = match name.strip_suffix(SIDECAR_SUFFIX) {
            Some(hex) => (hex, true),
            None => (name.as_str(), false),
        };
        let digest = Digest::parse(&format!("{}:{hex}", algorithm.as_str()))
            .ok()
            .filter(|d| d.algorithm() == algorithm && d.hex().starts_with(prefix));
        let (Some(digest), true) = (digest, is_file) else {
            remove_stray(scan, mode, &path, is_dir);
            continue;
        };
        if sidecar {
            sidecars.push((digest.hex().to_owned(), path));
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Evicted by a running proxy while a listing looked.
            Err(e) if mode == Mode::ReadOnly && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("inspect", &path, e)),
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let accessed = meta.accessed().unwrap_or(SystemTime::UNIX_EPOCH);
        objects.insert(
            digest.hex().to_owned(),
            Found {
                digest,
                size: meta.len(),
                manifest: false,
                last_used: modified.max(accessed),
                modified,
            },
        );
    }
    for (hex, path) in sidecars {
        match objects.get_mut(&hex) {
            Some(found) => found.manifest = true,
            // The crash fell between writing the sidecar and renaming the object.
            None => remove_stray(scan, mode, &path, false),
        }
    }
    scan.objects.extend(objects.into_values());
    Ok(())
}

fn is_prefix(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes a file that is not an object. Directories we did not create are left alone (we do
/// not recursively delete what we do not understand) but never read. A read-only scan only
/// skips it.
fn remove_stray(scan: &mut Scan, mode: Mode, path: &Path, is_dir: bool) {
    if mode == Mode::ReadOnly {
        return;
    }
    if is_dir {
        tracing::warn!(path = %path.display(), "cache: ignoring unexpected directory");
        return;
    }
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "cache: removed stray file");
            scan.removed_stray += 1;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cache: cannot remove stray file");
        }
    }
}
