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
//! # Deadlines
//!
//! Every read and write of a state object has an overall deadline ([`DEFAULT_DEADLINE`],
//! [`StateStore::with_deadline`]), body included. A store that accepts a connection and never
//! answers (or answers a byte at a time) is unavailable once it passes, exactly like one that
//! refuses the connection: the replica falls back to its own copy, and a GUN it has no copy of
//! is refused promptly instead of holding every refresh until the client's request times out.
//!
//! # Authenticated shared state
//!
//! Whoever can write a bucket could otherwise choose every replica's first-use root (plant a
//! state naming their own root) and deny any GUN (inflate its versions). So a store with a
//! [`StateKey`] ([`StateStore::with_key`]; `storage.s3.trust_state_key_file`, a secret the
//! replicas share and the bucket never holds) seals every object it writes with an
//! HMAC-SHA256 over the notary server's name, the GUN and the state's exact serialisation,
//! and refuses every object it reads that does not carry a matching one
//! ([`NotaryError::StateUnauthentic`]: the GUN fails closed, it is logged and counted, never
//! taken for absent). The configuration refuses the s3 backend without a key while a rule
//! verifies with Notary v1 (pinned or not: inflated versions deny pinned GUNs too).
//!
//! What a writer of the bucket without the key can still do:
//!
//! - deny: corrupt, plant or delete objects, or make the bucket unavailable (a GUN whose state
//!   does not authenticate fails closed; while the bucket is unavailable, replicas use their
//!   own copies);
//! - replay an older authentic object of the same GUN (a rollback by the bucket). A replica
//!   that has its own copy carries the versions of that copy into what it loads (and keeps
//!   its copy's root when that is a later root version), so it still refuses data older than
//!   what it saw itself; only a replica that never saw the GUN accepts the older versions,
//!   never a root no replica trusted;
//! - delete a GUN's state: a replica with its own copy carries on from that copy (and stores
//!   it again); a replica without one trusts on first use, as a new deployment does. Rules
//!   that pin `root_keys` never depend on first use.
//!
//! It cannot choose a root, raise or lower versions beyond what an authentic state once held,
//! or move a state between GUNs or notary servers (both are in the authentication code). The
//! key authenticates; it does not encrypt (a state holds a public root and version numbers).
//! Without a key (a state directory, or an object store in library use) states are plain
//! JSON, and the store's write access is as sensitive as a local state directory.
//!
//! A state object that does not parse, is too large, or belongs to another GUN is refused with
//! an error too (the GUN fails closed), never treated as absent: an attacker who can corrupt
//! an object could otherwise reset the pinned root. An operator who wants a GUN to start over
//! (a repository re-initialised on purpose) deletes its state object or file,
//! `<sha256 hex of the GUN>.json`, and with a shared store also the replicas' own copies
//! (`<cache.dir>/trust/<server>/`, or restarts them with an empty cache directory).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use aws_lc_rs::{digest, hmac};
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

/// The overall deadline of one state object read or write (body included) unless
/// [`StateStore::with_deadline`] says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// The shortest trust state key accepted, in bytes (a 256-bit key, e.g. 64 hex digits).
pub const MIN_KEY_LEN: usize = 32;

/// Domain separation for the authentication code of a state object (see the module docs).
const MAC_CONTEXT: &[u8] = b"trustgate trust state v1\n";
/// How a sealed object names its authentication code.
const MAC_PREFIX: &str = "hmac-sha256:";

/// The key replicas share to authenticate the trust state they keep in a bucket
/// (HMAC-SHA256). Never printed.
#[derive(Clone)]
pub struct StateKey(hmac::Key);

impl StateKey {
    /// A key from the secret's bytes; `None` when shorter than [`MIN_KEY_LEN`].
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= MIN_KEY_LEN).then(|| StateKey(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

/// A key and what it binds besides the GUN: the notary server's name.
#[derive(Debug, Clone)]
struct Sealing {
    key: StateKey,
    scope: String,
}

/// A state as stored with a key: the state's fields and its authentication code.
#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(flatten)]
    state: GunState,
    #[serde(default)]
    mac: Option<String>,
}

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
        /// Authenticates every object (see the module docs); `None`: plain objects.
        sealing: Option<Arc<Sealing>>,
        /// The overall deadline of each read or write.
        deadline: Duration,
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
                sealing: None,
                deadline: DEFAULT_DEADLINE,
            },
        }
    }

    /// Seals every object this store writes with `key` and refuses every object it reads
    /// that `key` did not seal for the same GUN and `scope` (the notary server's name; see
    /// the module docs). No effect on a directory store.
    pub fn with_key(mut self, key: StateKey, scope: impl Into<String>) -> Self {
        if let Backend::Object { sealing, .. } = &mut self.backend {
            *sealing = Some(Arc::new(Sealing {
                key,
                scope: scope.into(),
            }));
        }
        self
    }

    /// The overall deadline of each object read or write, after which the store counts as
    /// unavailable (default [`DEFAULT_DEADLINE`]). No effect on a directory store.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        if let Backend::Object { deadline: d, .. } = &mut self.backend {
            *d = deadline;
        }
        self
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
                sealing,
                deadline,
            } => {
                let key = prefix.clone().join(name.as_str());
                let location = object_location(store.as_ref(), &key);
                let read = tokio::time::timeout(*deadline, read_object(store.as_ref(), &key))
                    .await
                    .unwrap_or_else(|_| Err(ReadError::Unavailable(no_answer(*deadline))));
                match read {
                    Ok(Some((bytes, version))) => {
                        let mut state = open(gun, &bytes, &location, sealing.as_deref())?;
                        if let Some(dir) = local {
                            carry_local_copy(&mut state, &dir.join(&name)).await;
                        }
                        return Ok((state, Revision::Object(version)));
                    }
                    Ok(None) => {
                        // Deleted (by an operator, or by a writer of the bucket): this
                        // replica's own copy still stands, and is stored again.
                        let mut state = GunState::empty(gun);
                        if let Some(dir) = local {
                            carry_local_copy(&mut state, &dir.join(&name)).await;
                        }
                        return Ok((state, Revision::Absent));
                    }
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
        let sealing = match &self.backend {
            Backend::Object { sealing, .. } => sealing.as_deref(),
            Backend::Dir(_) => None,
        };
        let bytes = seal(state, sealing).map_err(|e| NotaryError::State {
            path: name.clone(),
            detail: e.to_string(),
        })?;
        match &self.backend {
            Backend::Dir(dir) => save_file(dir, &name, bytes, revision.clone()).await,
            Backend::Object {
                store,
                prefix,
                local,
                deadline,
                ..
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
                let saved = tokio::time::timeout(
                    *deadline,
                    save_object(store.as_ref(), &key, bytes.clone(), revision),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(NotaryError::State {
                        path: object_location(store.as_ref(), &key),
                        detail: no_answer(*deadline),
                    })
                })?;
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

/// What this replica recorded in its own copy is carried into the state loaded from the
/// object store, so that neither an outage nor the bucket can make it go back: with the same
/// root, the copy's versions (those it verified while the store was unreachable, or those of
/// a newer state the bucket no longer shows); with another root, the copy's root and versions
/// only when the copy's root version is higher (the bucket replayed a state from before a
/// rotation) or the loaded state has no root (it was deleted). Otherwise the shared state
/// names a later root (rotated by another replica) and wins. The copy is this replica's own
/// disk, trusted as a state directory is; one that cannot be read is ignored.
async fn carry_local_copy(state: &mut GunState, path: &Path) {
    let Ok(Some(bytes)) = read_file(path).await else {
        return;
    };
    let Ok(copy) = serde_json::from_slice::<GunState>(&bytes) else {
        return;
    };
    if copy.gun != state.gun || copy.root.is_none() {
        return;
    }
    let later_root = copy.version("root").unwrap_or(0) > state.version("root").unwrap_or(0);
    if copy.root != state.root && (state.root.is_none() || later_root) {
        state.root = copy.root.clone();
    }
    if copy.root == state.root {
        for (role, version) in &copy.versions {
            state.advance(role, *version);
        }
    }
}

/// The bytes stored for `state`: plain JSON, or sealed with the store's key.
fn seal(state: &GunState, sealing: Option<&Sealing>) -> serde_json::Result<Vec<u8>> {
    let Some(sealing) = sealing else {
        return serde_json::to_vec_pretty(state);
    };
    let tag = mac(sealing, &state.gun, &serde_json::to_vec(state)?);
    serde_json::to_vec_pretty(&Sealed {
        state: state.clone(),
        mac: Some(format!("{MAC_PREFIX}{}", hex::encode(tag.as_ref()))),
    })
}

/// Parses a stored object and, with a key, checks its authentication code first.
fn open(
    gun: &str,
    bytes: &[u8],
    location: &str,
    sealing: Option<&Sealing>,
) -> Result<GunState, NotaryError> {
    let Some(sealing) = sealing else {
        return parse(gun, bytes, location);
    };
    let unauthentic = |detail: &str| NotaryError::StateUnauthentic {
        path: location.to_owned(),
        detail: detail.to_owned(),
    };
    let sealed: Sealed =
        serde_json::from_slice(bytes).map_err(|_| unauthentic("it is not a sealed trust state"))?;
    let Some(code) = sealed.mac.as_deref() else {
        return Err(unauthentic("it carries no authentication code"));
    };
    let code = code
        .strip_prefix(MAC_PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| unauthentic("its authentication code is malformed"))?;
    // The state as it was sealed: the same serialisation `seal` authenticated.
    let canonical = serde_json::to_vec(&sealed.state)
        .map_err(|_| unauthentic("it is not a sealed trust state"))?;
    hmac::verify(&sealing.key.0, &mac_input(sealing, gun, &canonical), &code).map_err(|_| {
        unauthentic("its authentication code does not match this GUN, server and content")
    })?;
    if sealed.state.gun != gun {
        return Err(corrupt(
            location,
            format!("belongs to the GUN {:?}, not {gun:?}", sealed.state.gun),
        ));
    }
    Ok(sealed.state)
}

/// HMAC-SHA256 over the context, the scope, the GUN and the state (each length-prefixed, so
/// no two different inputs are the same bytes).
fn mac(sealing: &Sealing, gun: &str, state: &[u8]) -> hmac::Tag {
    hmac::sign(&sealing.key.0, &mac_input(sealing, gun, state))
}

fn mac_input(sealing: &Sealing, gun: &str, state: &[u8]) -> Vec<u8> {
    let mut input = MAC_CONTEXT.to_vec();
    for part in [sealing.scope.as_bytes(), gun.as_bytes(), state] {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part);
    }
    input
}

fn no_answer(deadline: Duration) -> String {
    format!(
        "the object store did not answer within {}s",
        deadline.as_secs_f64()
    )
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
