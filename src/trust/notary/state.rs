//! What has been verified before, per GUN: the trusted root (trust on first use, then rotated
//! only through signed roots) and the last verified version of every role (rollback
//! protection). It is persisted so that a restart does not reset either, either in a local
//! directory (one process) or in an object store shared by every replica of a deployment.
//!
//! # Compare-and-swap
//!
//! [`StateStore::load`] returns the state with a [`Revision`], and [`StateStore::save`] stores
//! a new state only if the stored one is still that revision: created if absent, replaced if
//! unchanged. A save that loses the race answers [`Saved::Conflict`] and the updater starts
//! again from the newer state (`update.rs`), so across all replicas
//!
//! - a role's version only moves forward: data older than what any replica stored is a
//!   rollback and refused, and a slower replica cannot overwrite a higher version with its own;
//! - the root trusted on first use is the one stored first anywhere: a replica that was
//!   offered another root re-verifies against the stored one, and is refused.
//!
//! In an object store the revision is the object's ETag/version (`If-None-Match: *` and
//! `If-Match` on the write). The store must decide those conditions atomically (S3, MinIO and
//! R2 do; a store without conditional writes fails every save, so nothing is ever overwritten
//! blindly). In a directory the revision is a hash of the file's bytes, compared and replaced
//! under a process-wide lock; a directory is owned by one process (running `trustgate trust
//! inspect --state-dir` on a directory a server is using is not safe). A revision that
//! compares content (the hash, or an ETag that is the content's MD5) lets a save through over
//! an identical state written in between; that is harmless, since the new state was derived
//! from exactly that content.
//!
//! # When the object store is unreachable
//!
//! A replica configured with a local copy ([`StateStore::with_local_copy`]) keeps, next to the
//! shared state, the last state it loaded or stored itself for each GUN. When the object
//! store cannot be read, the update runs against that copy and stores its result there only
//! (logged as a warning): the replica then has exactly the guarantees of a lone instance with a
//! local state directory, rollback protection against everything *it* has seen. A GUN the
//! replica has no copy of is refused while the store is unreachable: trusting a root on first
//! use without knowing what the fleet pinned is what the shared state exists to prevent. When
//! the store answers again it is the authority; versions the replica recorded meanwhile are
//! carried into it (only while both name the same root), so they are not lost either.
//!
//! # Threat model
//!
//! The shared state protects against a trust server (or a network path to it) that serves
//! different replicas different things over time: once one replica has seen version N of a
//! role, no replica accepts a lower one, and no replica pins a root other than the first one
//! pinned. It does not protect against whoever can write the state: deleting a GUN's state
//! makes the next replica trust the root it is served on first use again, and rewriting it can
//! lower versions. The bucket's write credentials are therefore as sensitive as a local state
//! directory, and rules that pin `root_keys` do not depend on first use at all. A state object
//! that does not parse, is too large, or belongs to another GUN is refused with an error (the
//! GUN fails closed), never treated as absent: an attacker who can corrupt an object could
//! otherwise reset the pinned root. An operator who wants a GUN to start over (a repository
//! re-initialised on purpose) deletes its state object or file: `<sha256 hex of the GUN>.json`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use aws_lc_rs::digest;
use futures_util::StreamExt as _;
use object_store::{
    path::Path as ObjectPath, GetOptions, ObjectStore, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};
use serde::{Deserialize, Serialize};

use super::{error::NotaryError, schema};

/// The most a state file may hold. States are small (a root of at most 2 MiB, base64, and one
/// version per role); anything larger was not written by us.
pub const MAX_STATE_SIZE: u64 = 4 << 20;

/// The persisted state of one GUN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GunState {
    /// The GUN, for people reading the file; the file name is a hash of it.
    pub gun: String,
    /// Exact bytes of the trusted root.json, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Last verified version per role.
    #[serde(default)]
    pub versions: BTreeMap<String, i64>,
}

/// Which stored state a [`StateStore::load`] saw; a save succeeds only while it is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// Nothing was stored: the save must create the state.
    Absent,
    /// A file in a state directory, by the SHA-256 of its bytes.
    File([u8; 32]),
    /// An object, by what the store answered with it.
    Object(UpdateVersion),
    /// The object store was unreachable and the replica's local copy was read instead, at
    /// this revision of the copy; the save goes to the copy only.
    Local(Box<Revision>),
}

/// The outcome of a conditional save.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Stored,
    /// The stored state is no longer the revision that was loaded: another writer saved first.
    Conflict,
}

/// Per-GUN state files in a directory, or objects under a prefix of an object store.
#[derive(Debug, Clone)]
pub struct StateStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Dir(PathBuf),
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        /// The replica's own copies, used while the store is unreachable.
        local: Option<PathBuf>,
    },
}

/// Serialises the compare-and-rename step of directory saves within this process (the
/// directory's only writer), across every `StateStore`, including those of a reloaded
/// configuration that point at the same directory.
static DIR_SWAP: Mutex<()> = Mutex::new(());

/// Makes temporary file names unique within the process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

// === impl GunState ===

impl GunState {
    /// The state of a GUN nothing is known about yet.
    pub fn empty(gun: &str) -> Self {
        GunState {
            gun: gun.to_owned(),
            ..GunState::default()
        }
    }

    pub fn root_bytes(&self) -> Option<Vec<u8>> {
        self.root.as_deref().and_then(|r| schema::b64(r).ok())
    }

    pub fn version(&self, role: &str) -> Option<i64> {
        self.versions.get(role).copied()
    }

    /// Records a verified version; a lower one than recorded is kept out (versions only move
    /// forward, whatever the caller verified).
    pub fn advance(&mut self, role: &str, version: i64) {
        let v = self.versions.entry(role.to_owned()).or_insert(version);
        *v = (*v).max(version);
    }
}

// === impl StateStore ===

impl StateStore {
    /// State files in a local directory, owned by this process.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore {
            backend: Backend::Dir(dir.into()),
        }
    }

    /// State objects under `prefix` in a store shared by replicas. The store must support
    /// conditional puts (`PutMode::Create` and `PutMode::Update`); for S3 that is
    /// `S3ConditionalPut::ETagMatch`.
    pub fn object(store: Arc<dyn ObjectStore>, prefix: ObjectPath) -> StateStore {
        StateStore {
            backend: Backend::Object {
                store,
                prefix,
                local: None,
            },
        }
    }

    /// Keeps this replica's own copy of every state it loads or stores from the object store
    /// in `dir`, and falls back to it while the store is unreachable (see the module docs).
    /// No effect on a directory store.
    pub fn with_local_copy(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Backend::Object { local, .. } = &mut self.backend {
            *local = Some(dir.into());
        }
        self
    }

    /// A GUN may hold any character a registry allows (`:`, `/`, `.`), so its state is named
    /// by its hash: no GUN can name a path outside the directory or prefix.
    fn file_name(gun: &str) -> String {
        let h = digest::digest(&digest::SHA256, gun.as_bytes());
        format!("{}.json", hex::encode(h))
    }

    /// The state of `gun` and the revision it was read at; an empty state when none is
    /// stored. Failing to read is [`NotaryError::State`] (the store is unavailable); a stored
    /// state that is unusable is [`NotaryError::StateCorrupt`] and is never taken for absent.
    pub async fn load(&self, gun: &str) -> Result<(GunState, Revision), NotaryError> {
        let name = Self::file_name(gun);
        let (bytes, revision, location) = match &self.backend {
            Backend::Dir(dir) => {
                let path = dir.join(&name);
                match read_file(&path).await {
                    Ok(Some(bytes)) => {
                        let hash = sha256(&bytes);
                        (bytes, Revision::File(hash), path.display().to_string())
                    }
                    Ok(None) => return Ok((GunState::empty(gun), Revision::Absent)),
                    Err(e) => return Err(e.at(&path.display().to_string())),
                }
            }
            Backend::Object {
                store,
                prefix,
                local,
            } => {
                let key = prefix.clone().join(name.as_str());
                let location = object_location(store.as_ref(), &key);
                match read_object(store.as_ref(), &key).await {
                    Ok(Some((bytes, version))) => {
                        let mut state = parse(gun, &bytes, &location)?;
                        if let Some(dir) = local {
                            carry_local_versions(&mut state, &dir.join(&name)).await;
                        }
                        return Ok((state, Revision::Object(version)));
                    }
                    Ok(None) => return Ok((GunState::empty(gun), Revision::Absent)),
                    Err(ReadError::Unavailable(detail)) if local.is_some() => {
                        let path = local.as_deref().unwrap_or(Path::new("")).join(&name);
                        match read_file(&path).await {
                            Ok(Some(bytes)) => {
                                let state = parse(gun, &bytes, &path.display().to_string())?;
                                tracing::warn!(gun, store = %location, error = %detail,
                                    "trust state store unreachable; verifying against this \
                                     replica's own copy");
                                let revision =
                                    Revision::Local(Box::new(Revision::File(sha256(&bytes))));
                                return Ok((state, revision));
                            }
                            // Never trust a root on first use without the fleet's state.
                            Ok(None) | Err(_) => {
                                return Err(ReadError::Unavailable(detail).at(&location))
                            }
                        }
                    }
                    Err(e) => return Err(e.at(&location)),
                }
            }
        };
        Ok((parse(gun, &bytes, &location)?, revision))
    }

    /// Stores `state` if the stored state is still `revision` (created if it was absent).
    pub async fn save(&self, state: &GunState, revision: &Revision) -> Result<Saved, NotaryError> {
        let name = Self::file_name(&state.gun);
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| NotaryError::State {
            path: name.clone(),
            detail: e.to_string(),
        })?;
        match &self.backend {
            Backend::Dir(dir) => save_file(dir, &name, bytes, revision.clone()).await,
            Backend::Object {
                store,
                prefix,
                local,
            } => {
                if let Revision::Local(copy) = revision {
                    let Some(dir) = local else {
                        return Err(NotaryError::State {
                            path: name,
                            detail: "a revision of a local copy, but no local copy is kept"
                                .to_owned(),
                        });
                    };
                    return save_file(dir, &name, bytes, (**copy).clone()).await;
                }
                let key = prefix.clone().join(name.as_str());
                let saved = save_object(store.as_ref(), &key, bytes.clone(), revision).await?;
                if let (Saved::Stored, Some(dir)) = (&saved, local) {
                    // Best effort: the copy only matters while the store is unreachable.
                    if let Err(e) = write_copy(dir, &name, bytes).await {
                        tracing::warn!(gun = %state.gun, dir = %dir.display(), error = %e,
                            "cannot keep the local copy of the trust state");
                    }
                }
                Ok(saved)
            }
        }
    }
}

/// Parses a stored state and checks it is `gun`'s.
fn parse(gun: &str, bytes: &[u8], location: &str) -> Result<GunState, NotaryError> {
    let state: GunState = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(location, format!("not a trust state: {e}")))?;
    if state.gun != gun {
        return Err(corrupt(
            location,
            format!("belongs to the GUN {:?}, not {gun:?}", state.gun),
        ));
    }
    Ok(state)
}

/// Versions this replica recorded in its local copy (while the store was unreachable) are
/// carried into the shared state, so that they are not lost; only when both name the same root,
/// since a shared state that starts over (deleted by an operator to reset the GUN) must win.
/// A copy that cannot be read is ignored: the shared state is the authority.
async fn carry_local_versions(state: &mut GunState, path: &Path) {
    let Ok(Some(bytes)) = read_file(path).await else {
        return;
    };
    let Ok(copy) = serde_json::from_slice::<GunState>(&bytes) else {
        return;
    };
    if copy.gun == state.gun && copy.root.is_some() && copy.root == state.root {
        for (role, version) in &copy.versions {
            state.advance(role, *version);
        }
    }
}

/// Replaces the local copy with what was just stored in the object store (temp file, fsync,
/// rename, under [`DIR_SWAP`]).
async fn write_copy(dir: &Path, name: &str, bytes: Vec<u8>) -> std::io::Result<()> {
    let path = dir.join(name);
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{seq}", std::process::id()));
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        std::fs::create_dir_all(&dir)?;
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            let _swap = DIR_SWAP.lock().unwrap_or_else(|e| e.into_inner());
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// A read that failed, before the location is known to the message.
enum ReadError {
    Unavailable(String),
    Corrupt(String),
}

impl ReadError {
    fn at(self, location: &str) -> NotaryError {
        match self {
            ReadError::Unavailable(detail) => NotaryError::State {
                path: location.to_owned(),
                detail,
            },
            ReadError::Corrupt(detail) => corrupt(location, detail),
        }
    }
}

fn corrupt(location: &str, detail: impl Into<String>) -> NotaryError {
    NotaryError::StateCorrupt {
        path: location.to_owned(),
        detail: detail.into(),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

fn too_large() -> ReadError {
    ReadError::Corrupt(format!("larger than {MAX_STATE_SIZE} bytes"))
}

// --- directory backend ---

async fn read_file(path: &Path) -> Result<Option<Vec<u8>>, ReadError> {
    use tokio::io::AsyncReadExt as _;
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Unavailable(e.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_SIZE + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| ReadError::Unavailable(e.to_string()))?;
    if bytes.len() as u64 > MAX_STATE_SIZE {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// Writes a temporary file in the same directory and fsyncs it, then, under [`DIR_SWAP`],
/// checks that the current file is still `revision` and renames over it: a crash leaves the
/// old or the new state, never a torn file, and a concurrent save in this process is detected.
async fn save_file(
    dir: &Path,
    name: &str,
    bytes: Vec<u8>,
    revision: Revision,
) -> Result<Saved, NotaryError> {
    let path = dir.join(name);
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{seq}", std::process::id()));
    let dir = dir.to_owned();
    let result = tokio::task::spawn_blocking({
        let (path, tmp) = (path.clone(), tmp.clone());
        move || -> std::io::Result<Saved> {
            use std::io::Write as _;
            std::fs::create_dir_all(&dir)?;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            let _swap = DIR_SWAP.lock().unwrap_or_else(|e| e.into_inner());
            let current = match std::fs::read(&path) {
                Ok(b) => Revision::File(sha256(&b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Revision::Absent,
                Err(e) => return Err(e),
            };
            if current != revision {
                std::fs::remove_file(&tmp)?;
                return Ok(Saved::Conflict);
            }
            std::fs::rename(&tmp, &path)?;
            Ok(Saved::Stored)
        }
    })
    .await;
    let fail = |detail: String| {
        let _ = std::fs::remove_file(&tmp);
        Err(NotaryError::State {
            path: path.display().to_string(),
            detail,
        })
    };
    match result {
        Ok(Ok(saved)) => Ok(saved),
        Ok(Err(e)) => fail(e.to_string()),
        Err(e) => fail(e.to_string()),
    }
}

// --- object store backend ---

fn object_location(store: &dyn ObjectStore, key: &ObjectPath) -> String {
    format!("{store}/{key}")
}

async fn read_object(
    store: &dyn ObjectStore,
    key: &ObjectPath,
) -> Result<Option<(Vec<u8>, UpdateVersion)>, ReadError> {
    let result = match store.get_opts(key, GetOptions::default()).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(ReadError::Unavailable(e.to_string())),
    };
    if result.meta.size > MAX_STATE_SIZE {
        return Err(too_large());
    }
    let version = UpdateVersion {
        e_tag: result.meta.e_tag.clone(),
        version: result.meta.version.clone(),
    };
    if version.e_tag.is_none() && version.version.is_none() {
        return Err(ReadError::Unavailable(
            "the object store answered without an ETag or version, so it cannot be updated \
             conditionally"
                .to_owned(),
        ));
    }
    // The size in the metadata is what the server claims; the body is bounded as it arrives.
    let mut stream = result.into_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Unavailable(e.to_string()))?;
        if (bytes.len() + chunk.len()) as u64 > MAX_STATE_SIZE {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some((bytes, version)))
}

async fn save_object(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    bytes: Vec<u8>,
    revision: &Revision,
) -> Result<Saved, NotaryError> {
    let location = || object_location(store, key);
    let mode = match revision {
        Revision::Absent => PutMode::Create,
        Revision::Object(version) => PutMode::Update(version.clone()),
        Revision::File(_) | Revision::Local(_) => {
            return Err(NotaryError::State {
                path: location(),
                detail: "a revision from a state directory cannot update an object".to_owned(),
            })
        }
    };
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match store.put_opts(key, PutPayload::from(bytes), options).await {
        Ok(_) => Ok(Saved::Stored),
        // Created by another writer since we found none, or changed (or deleted) since we
        // read it.
        Err(
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotFound { .. },
        ) => Ok(Saved::Conflict),
        Err(e) => Err(NotaryError::State {
            path: location(),
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
