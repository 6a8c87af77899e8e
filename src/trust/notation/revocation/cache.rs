//! Fetched CRLs kept for reuse until their `nextUpdate`: in memory (bounded in entries and
//! bytes) so a proxy does not read the disk for every request, and, when configured, as
//! files that outlive the process, in notation-go's format (`verifier/crl.FileCache`: one
//! file per URL, named by the hex SHA-256 of the URL, holding
//! `{"baseCRL": <base64 DER>, "deltaCRL": <base64 DER>}`), so a directory notation itself
//! filled can be reused.
//!
//! Nothing read back is trusted: a file that is too large, does not decode or does not
//! parse is a miss, and every CRL, cached or not, is verified against its issuer each time
//! it is used. Files are written to a temporary name and renamed into place.

use std::{
    io::{Read, Write},
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use base64::Engine as _;
use lru::LruCache;

use super::{
    crl::{Bundle, Crl},
    MAX_CRL_SIZE,
};

/// Bundles kept in memory, at most.
const MEMORY_ENTRIES: usize = 128;
/// Bytes of CRLs (DER and index) kept in memory, at most.
const MEMORY_BYTES: usize = 64 << 20;
/// Largest cache file read or written: two CRLs of [`MAX_CRL_SIZE`] in base64, and JSON.
const MAX_FILE: u64 = (2 * MAX_CRL_SIZE).div_ceil(3) * 4 + 1024;
/// Cache files kept in the directory, at most; the oldest goes first.
const MAX_FILES: usize = 1024;

#[derive(serde::Serialize, serde::Deserialize)]
struct FileContent {
    #[serde(rename = "baseCRL")]
    base: String,
    #[serde(rename = "deltaCRL", default, skip_serializing_if = "Option::is_none")]
    delta: Option<String>,
}

/// The memory and file caches of fetched CRL bundles, keyed by URL.
pub struct CrlCache {
    dir: Option<PathBuf>,
    memory: Mutex<Memory>,
}

struct Memory {
    entries: LruCache<String, Bundle>,
    bytes: usize,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

// === impl CrlCache ===

impl CrlCache {
    /// A cache, with files under `dir` if given (created, owner-only, if missing).
    pub fn new(dir: Option<PathBuf>) -> Result<CrlCache, String> {
        if let Some(dir) = &dir {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .map_err(|e| format!("failed to create crl file cache {}: {e}", dir.display()))?;
        }
        Ok(CrlCache {
            dir,
            memory: Mutex::new(Memory {
                entries: LruCache::new(
                    NonZeroUsize::new(MEMORY_ENTRIES).unwrap_or(NonZeroUsize::MIN),
                ),
                bytes: 0,
            }),
        })
    }

    /// The bundle kept in memory for `url`.
    pub fn memory(&self, url: &str) -> Option<Bundle> {
        self.memory.lock().ok()?.entries.get(url).cloned()
    }

    /// Keeps `bundle` in memory for `url`, evicting the least recently used beyond the
    /// bounds.
    pub fn remember(&self, url: &str, bundle: &Bundle) {
        let Ok(mut memory) = self.memory.lock() else {
            return;
        };
        let size = bundle_bytes(bundle);
        if size > MEMORY_BYTES {
            return;
        }
        if let Some(old) = memory.entries.put(url.to_owned(), bundle.clone()) {
            memory.bytes = memory.bytes.saturating_sub(bundle_bytes(&old));
        }
        memory.bytes = memory.bytes.saturating_add(size);
        while memory.bytes > MEMORY_BYTES || memory.entries.len() > MEMORY_ENTRIES {
            match memory.entries.pop_lru() {
                Some((_, old)) => memory.bytes = memory.bytes.saturating_sub(bundle_bytes(&old)),
                None => break,
            }
        }
    }

    /// The bundle the file cache holds for `url`, if it reads and parses (stale or not:
    /// the caller decides); `None` otherwise, or without a directory.
    pub async fn file(&self, url: &str) -> Option<Bundle> {
        let path = self.dir.as_ref()?.join(file_name(url));
        let url = url.to_owned();
        let read = tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .ok()?;
        match read {
            Ok(bundle) => Some(bundle),
            Err(e) => {
                if !e.is_empty() {
                    tracing::debug!(url = %url, error = %e, "ignoring an unusable CRL cache file");
                }
                None
            }
        }
    }

    /// Writes `bundle` to the file cache for `url` (atomically; failures are logged, the
    /// cache being an optimisation).
    pub async fn store(&self, url: &str, bundle: &Bundle) {
        let Some(dir) = self.dir.clone() else {
            return;
        };
        let name = file_name(url);
        let bundle = bundle.clone();
        let written = tokio::task::spawn_blocking(move || write_file(&dir, &name, &bundle)).await;
        if let Ok(Err(e)) = written {
            tracing::warn!(url = %url, error = %e, "cannot write the CRL cache file");
        }
    }
}

fn bundle_bytes(bundle: &Bundle) -> usize {
    bundle.base.footprint() + bundle.delta.as_ref().map_or(0, |d| d.footprint())
}

/// The cache file name of `url`: the hex SHA-256 of the URL (notation-go `fileName`).
pub fn file_name(url: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        url.as_bytes(),
    ))
}

/// Reads a cache file; `Err("")` when there is none.
fn read_file(path: &Path) -> Result<Bundle, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(String::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    let content: FileContent =
        serde_json::from_slice(&bytes).map_err(|e| format!("failed to decode: {e}"))?;
    let crl = |text: &str, what: &str| -> Result<Arc<Crl>, String> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("{what}: {e}"))?;
        if der.len() as u64 > MAX_CRL_SIZE {
            return Err(format!("{what}: larger than {MAX_CRL_SIZE} bytes"));
        }
        Crl::parse(der)
            .map(Arc::new)
            .map_err(|e| format!("{what}: {e}"))
    };
    Ok(Bundle {
        base: crl(&content.base, "base CRL")?,
        delta: content
            .delta
            .as_deref()
            .map(|d| crl(d, "delta CRL"))
            .transpose()?,
    })
}

fn write_file(dir: &Path, name: &str, bundle: &Bundle) -> Result<(), String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let content = FileContent {
        base: engine.encode(&bundle.base.der),
        delta: bundle.delta.as_ref().map(|d| engine.encode(&d.der)),
    };
    let bytes = serde_json::to_vec(&content).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    evict(dir, name);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| e.to_string())
}

/// Keeps the directory under [`MAX_FILES`] cache files (64 hex digits), removing the
/// least recently modified before `keep` is written.
fn evict(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) && name != keep
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() < MAX_FILES {
        return;
    }
    files.sort();
    let excess = files.len() + 1 - MAX_FILES;
    for (_, path) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}
