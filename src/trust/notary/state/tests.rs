//! The state stores' compare-and-swap, and the updater's retry over it, with real notary
//! fixtures (`tests/data/trust/`) and an in-memory object store.

use std::{
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures_util::stream::BoxStream;
use object_store::{
    memory::InMemory, path::Path as ObjectPath, CopyOptions, GetOptions, GetResult, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult,
};
use time::OffsetDateTime;

use super::*;
use crate::trust::notary::{update::NotaryClient, Limits, Source};

const GUN: &str = "docker.io/trustgate/demo";

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/trust")
        .join(path)
}

/// The time every fixture is valid at (`case.json`'s `at`).
fn at() -> OffsetDateTime {
    OffsetDateTime::parse(
        "2026-11-23T07:29:28Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

fn client(data: &str, store: &StateStore) -> NotaryClient {
    NotaryClient::new(
        Source::Dir(fixture(data)),
        Limits::default(),
        Some(store.clone()),
    )
}

fn object_store(store: Arc<dyn ObjectStore>) -> StateStore {
    StateStore::object(store, ObjectPath::from("trust/internal"))
}

fn state(versions: &[(&str, i64)]) -> GunState {
    GunState {
        gun: GUN.to_owned(),
        root: None,
        versions: versions
            .iter()
            .map(|(r, v)| ((*r).to_owned(), *v))
            .collect(),
    }
}

/// Both backends: a save from a stale revision is a conflict and changes nothing.
async fn conflicts_are_detected(store: &StateStore, other: &StateStore) {
    let (empty, absent) = store.load(GUN).await.unwrap();
    assert_eq!((empty, &absent), (GunState::empty(GUN), &Revision::Absent));

    // Another writer creates the state after we found none.
    assert_eq!(
        other
            .save(&state(&[("timestamp", 7)]), &absent)
            .await
            .unwrap(),
        Saved::Stored
    );
    assert_eq!(
        store
            .save(&state(&[("timestamp", 5)]), &absent)
            .await
            .unwrap(),
        Saved::Conflict
    );
    let (seen, rev7) = store.load(GUN).await.unwrap();
    assert_eq!(seen.version("timestamp"), Some(7));

    // And changes it after we read it.
    let (_, rev7_other) = other.load(GUN).await.unwrap();
    assert_eq!(
        other
            .save(&state(&[("timestamp", 8)]), &rev7_other)
            .await
            .unwrap(),
        Saved::Stored
    );
    assert_eq!(
        store
            .save(&state(&[("timestamp", 9)]), &rev7)
            .await
            .unwrap(),
        Saved::Conflict
    );
    let (seen, rev8) = store.load(GUN).await.unwrap();
    assert_eq!(seen.version("timestamp"), Some(8));
    assert_ne!(rev7, rev8);

    // From the current revision the save goes through.
    assert_eq!(
        store
            .save(&state(&[("timestamp", 9)]), &rev8)
            .await
            .unwrap(),
        Saved::Stored
    );
    assert_eq!(
        other.load(GUN).await.unwrap().0.version("timestamp"),
        Some(9)
    );
}

#[tokio::test]
async fn object_store_detects_create_and_update_conflicts() {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    conflicts_are_detected(&object_store(shared.clone()), &object_store(shared)).await;
}

#[tokio::test]
async fn state_directory_detects_create_and_update_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    conflicts_are_detected(&StateStore::new(dir.path()), &StateStore::new(dir.path())).await;
}

#[tokio::test]
async fn object_key_is_the_hash_of_the_gun_under_the_prefix() {
    let shared = Arc::new(InMemory::new());
    let store = object_store(shared.clone());
    let (s, rev) = store.load(GUN).await.unwrap();
    assert_eq!(store.save(&s, &rev).await.unwrap(), Saved::Stored);
    let key = ObjectPath::from(format!(
        "trust/internal/{}.json",
        hex::encode(sha256(GUN.as_bytes()))
    ));
    let bytes = shared.get_opts(&key, GetOptions::default()).await.unwrap();
    let stored: GunState = serde_json::from_slice(&bytes.bytes().await.unwrap()).unwrap();
    assert_eq!(stored.gun, GUN);
}

/// A state that is there but unusable is an error (not a fresh start), and says how to reset.
#[tokio::test]
async fn corrupt_oversized_or_foreign_state_objects_are_refused() {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = object_store(shared.clone());
    let key = ObjectPath::from(format!(
        "trust/internal/{}.json",
        hex::encode(sha256(GUN.as_bytes()))
    ));
    let foreign = serde_json::to_vec(&GunState::empty("docker.io/other/repo")).unwrap();
    let cases: [(Vec<u8>, &str); 3] = [
        (b"{\"gun\": ".to_vec(), "not a trust state"),
        (vec![b' '; MAX_STATE_SIZE as usize + 1], "larger than"),
        (foreign, "belongs to the GUN"),
    ];
    for (bytes, reason) in cases {
        shared
            .put_opts(&key, PutPayload::from(bytes), PutOptions::default())
            .await
            .unwrap();
        let e = store.load(GUN).await.unwrap_err();
        assert!(
            matches!(e, NotaryError::StateCorrupt { .. }) && !e.is_transport(),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(message.contains(reason), "{message}");
        assert!(message.contains("deletes that state"), "{message}");
    }
}

#[tokio::test]
async fn a_state_directory_refuses_a_corrupt_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let name = StateStore::file_name(GUN);
    std::fs::write(dir.path().join(name), b"not json").unwrap();
    let e = store.load(GUN).await.unwrap_err();
    assert!(matches!(e, NotaryError::StateCorrupt { .. }), "{e:?}");
}

#[test]
fn versions_only_advance() {
    let mut s = state(&[("timestamp", 7)]);
    s.advance("timestamp", 5);
    s.advance("snapshot", 3);
    s.advance("snapshot", 4);
    assert_eq!(s.version("timestamp"), Some(7));
    assert_eq!(s.version("snapshot"), Some(4));
}

// --- the updater over a shared store ---

/// Fixture publications of `docker.io/trustgate/demo` from one notary server and keys:
/// `NEWER` re-signs tag v2 after `OLDER`.
const NEWER: &str = "rollback-timestamp/before";
const OLDER: &str = "rollback-timestamp/metadata";

type Hook =
    Arc<dyn Fn(Arc<dyn ObjectStore>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// An object store that runs `hook` (another replica's work) right after each of the first
/// `times` reads: between this replica's load and its save.
struct Interleaved {
    inner: Arc<dyn ObjectStore>,
    hook: Hook,
    times: Mutex<usize>,
}

impl std::fmt::Debug for Interleaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interleaved({:?})", self.inner)
    }
}

impl std::fmt::Display for Interleaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interleaved({})", self.inner)
    }
}

type Fut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

// `ObjectStore` is an `async_trait`; these are its methods written out.
impl ObjectStore for Interleaved {
    fn put_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Fut<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.put_opts(location, payload, opts)
    }

    fn put_multipart_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 ObjectPath,
        opts: PutMultipartOptions,
    ) -> Fut<'async_trait, Box<dyn MultipartUpload>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 ObjectPath,
        options: GetOptions,
    ) -> Fut<'async_trait, GetResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let result = self.inner.get_opts(location, options).await;
            let run = {
                let mut times = self.times.lock().unwrap();
                let run = *times > 0;
                *times = times.saturating_sub(1);
                run
            };
            if run {
                (self.hook)(self.inner.clone()).await;
            }
            result
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: Option<&'life1 ObjectPath>,
    ) -> Fut<'async_trait, ListResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 ObjectPath,
        to: &'life2 ObjectPath,
        options: CopyOptions,
    ) -> Fut<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.copy_opts(from, to, options)
    }
}

/// A replica verifying `mine` while another replica, sharing the store, verifies `theirs`
/// between this one's load and save. Returns this replica's outcome and the stored state.
async fn interleave(mine: &str, theirs: &'static str) -> (Result<(), NotaryError>, GunState) {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let hook: Hook = Arc::new(move |inner| {
        Box::pin(async move {
            client(theirs, &object_store(inner))
                .verify(GUN, at(), &[])
                .await
                .expect("the other replica verifies");
        })
    });
    let interleaved = Arc::new(Interleaved {
        inner: shared.clone(),
        hook,
        times: Mutex::new(1),
    });
    let result = client(mine, &object_store(interleaved))
        .verify(GUN, at(), &[])
        .await
        .map(|_| ());
    let (stored, _) = object_store(shared).load(GUN).await.unwrap();
    (result, stored)
}

async fn versions_of(data: &str) -> GunState {
    let store = object_store(Arc::new(InMemory::new()));
    client(data, &store).verify(GUN, at(), &[]).await.unwrap();
    store.load(GUN).await.unwrap().0
}

/// The other replica stored newer data while this one verified older data: the save
/// conflicts, the retry verifies against the newer state, and the older data is a rollback.
/// The stored versions stay the newer ones.
#[tokio::test]
async fn a_conflicting_save_re_verifies_and_refuses_what_another_replica_saw_rolled_back() {
    let (result, stored) = interleave(OLDER, NEWER).await;
    let e = result.unwrap_err();
    assert!(
        matches!(&e, NotaryError::Rollback { role, .. } if role == "timestamp"),
        "{e:?}"
    );
    assert_eq!(stored, versions_of(NEWER).await);
}

/// The other replica stored older data: the retry verifies this replica's newer data against
/// it and stores the newer versions (the update is not lost).
#[tokio::test]
async fn a_conflicting_save_re_verifies_and_moves_versions_forward() {
    let (result, stored) = interleave(NEWER, OLDER).await;
    result.unwrap();
    let newer = versions_of(NEWER).await;
    let older = versions_of(OLDER).await;
    assert_eq!(stored, newer);
    for (role, version) in &older.versions {
        assert!(newer.version(role).unwrap() >= *version, "{role}");
    }
    assert!(newer.version("timestamp") > older.version("timestamp"));
}

/// First use: the other replica pinned its root first; this replica was offered another
/// root for the same GUN and is refused on the retry.
#[tokio::test]
async fn the_root_pinned_first_anywhere_wins() {
    let (result, stored) = interleave("foreign-root/metadata", "foreign-root/before").await;
    let e = result.unwrap_err();
    assert!(e.to_string().contains("root rotation"), "{e}");
    assert_eq!(stored, versions_of("foreign-root/before").await);
}

/// Another writer changes the state after every load: the update gives up after a bounded
/// number of attempts, with a transport-class error (it says nothing about the trust data).
#[tokio::test]
async fn endless_conflicts_give_up_after_a_bounded_number_of_attempts() {
    let loads = Arc::new(Mutex::new(0usize));
    let hook: Hook = Arc::new({
        let loads = loads.clone();
        move |inner| {
            *loads.lock().unwrap() += 1;
            Box::pin(async move {
                let key = ObjectPath::from(format!(
                    "trust/internal/{}.json",
                    hex::encode(sha256(GUN.as_bytes()))
                ));
                let bytes = serde_json::to_vec(&GunState::empty(GUN)).unwrap();
                inner
                    .put_opts(&key, PutPayload::from(bytes), PutOptions::default())
                    .await
                    .unwrap();
            })
        }
    });
    let busy = Arc::new(Interleaved {
        inner: Arc::new(InMemory::new()),
        hook,
        times: Mutex::new(usize::MAX),
    });
    let e = client(NEWER, &object_store(busy))
        .verify(GUN, at(), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(e, NotaryError::StateContended { attempts: 3, .. }) && e.is_transport(),
        "{e:?}"
    );
    assert_eq!(*loads.lock().unwrap(), crate::trust::notary::STATE_ATTEMPTS);
}

/// Replicas racing on one GUN, really at once, over a store whose conditional writes are
/// atomic: the newer publication always verifies (it can lose the race at most once), and
/// the stored versions end at the newer ones in every round. No update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_replicas_never_lose_an_update() {
    let newest = versions_of(NEWER).await;
    for round in 0..20 {
        let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let run = |data: &'static str| {
            let (store, barrier) = (object_store(shared.clone()), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client(data, &store)
                    .verify(GUN, at(), &[])
                    .await
                    .map(|_| ())
            })
        };
        let (newer, older) = if round % 2 == 0 {
            let n = run(NEWER);
            (n, run(OLDER))
        } else {
            let o = run(OLDER);
            (run(NEWER), o)
        };
        newer.await.unwrap().unwrap();
        match older.await.unwrap() {
            Ok(()) | Err(NotaryError::Rollback { .. }) => {}
            Err(e) => panic!("round {round}: {e:?}"),
        }
        assert_eq!(object_store(shared).load(GUN).await.unwrap().0, newest);
    }
}

// === authenticated objects ===

fn key(byte: u8) -> StateKey {
    StateKey::new(&[byte; MIN_KEY_LEN]).unwrap()
}

fn sealed(shared: Arc<dyn ObjectStore>, key: StateKey, scope: &str) -> StateStore {
    object_store(shared).with_key(key, scope)
}

fn object_key(gun: &str) -> ObjectPath {
    ObjectPath::from(format!("trust/internal/{}", StateStore::file_name(gun)))
}

async fn put(shared: &Arc<dyn ObjectStore>, gun: &str, bytes: Vec<u8>) {
    shared
        .put_opts(
            &object_key(gun),
            PutPayload::from(bytes),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

async fn get(shared: &Arc<dyn ObjectStore>, gun: &str) -> Vec<u8> {
    let got = shared
        .get_opts(&object_key(gun), GetOptions::default())
        .await
        .unwrap();
    got.bytes().await.unwrap().to_vec()
}

#[test]
fn a_short_key_is_refused() {
    assert!(StateKey::new(&[1; MIN_KEY_LEN - 1]).is_none());
    assert_eq!(format!("{:?}", key(1)), "StateKey(<redacted>)");
}

#[tokio::test]
async fn sealed_states_round_trip() {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = sealed(shared.clone(), key(1), "internal");
    let (_, absent) = store.load(GUN).await.unwrap();
    let s = state(&[("timestamp", 7)]);
    assert_eq!(store.save(&s, &absent).await.unwrap(), Saved::Stored);
    assert_eq!(store.load(GUN).await.unwrap().0, s);
    let text = String::from_utf8(get(&shared, GUN).await).unwrap();
    assert!(text.contains("\"mac\": \"hmac-sha256:"), "{text}");
    // Other replicas holding the key read it too.
    let other = sealed(shared, key(1), "internal");
    assert_eq!(other.load(GUN).await.unwrap().0, s);
}

/// Whoever can write the bucket, without the key: a planted state (their root, inflated
/// versions), a state sealed by another key, for another server or another GUN, or an
/// authentic one edited, is refused: never taken for absent, never used.
#[tokio::test]
async fn attack_states_written_without_the_key_are_refused() {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = sealed(shared.clone(), key(1), "internal");
    let inflated = state(&[("timestamp", i64::MAX), ("targets", i64::MAX)]);

    let seal_with = |key: StateKey, scope: &str, s: &GunState| {
        super::seal(
            s,
            Some(&Sealing {
                key,
                scope: scope.to_owned(),
            }),
        )
        .unwrap()
    };
    let mut other_gun = inflated.clone();
    other_gun.gun = "docker.io/other/repo".to_owned();
    let authentic = seal_with(key(1), "internal", &state(&[("timestamp", 3)]));
    let edited = String::from_utf8(authentic.clone())
        .unwrap()
        .replace("\"timestamp\": 3", "\"timestamp\": 9223372036854775807")
        .into_bytes();
    assert_ne!(edited, authentic);
    let cases: [(&str, Vec<u8>); 6] = [
        ("plain", serde_json::to_vec(&inflated).unwrap()),
        ("garbage", b"{\"gun\": ".to_vec()),
        ("another key", seal_with(key(2), "internal", &inflated)),
        ("another server", seal_with(key(1), "other", &inflated)),
        ("another GUN", seal_with(key(1), "internal", &other_gun)),
        ("edited", edited),
    ];
    for (case, bytes) in cases {
        put(&shared, GUN, bytes).await;
        let e = store.load(GUN).await.unwrap_err();
        assert!(
            matches!(e, NotaryError::StateUnauthentic { .. }) && !e.is_transport() && e.is_state(),
            "{case}: {e:?}"
        );
        assert!(
            e.to_string().contains("does not authenticate"),
            "{case}: {e}"
        );
    }
    put(&shared, GUN, authentic).await;
    assert_eq!(store.load(GUN).await.unwrap().0, state(&[("timestamp", 3)]));
}

/// The bucket replays an older authentic state, or deletes it: a replica that saw newer keeps
/// what its own copy recorded.
#[tokio::test]
async fn attack_a_replayed_or_deleted_state_does_not_roll_back_a_replica_that_saw_newer() {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let copy = tempfile::tempdir().unwrap();
    let store = sealed(shared.clone(), key(1), "internal").with_local_copy(copy.path());
    let root = |version: i64| GunState {
        root: Some(format!("cm9vdC{version}")),
        ..state(&[("root", version), ("timestamp", 10 * version)])
    };
    let (_, rev) = store.load(GUN).await.unwrap();
    assert_eq!(store.save(&root(1), &rev).await.unwrap(), Saved::Stored);
    let older = get(&shared, GUN).await;
    let mut newer = root(1);
    newer.advance("timestamp", 20);
    let (_, rev) = store.load(GUN).await.unwrap();
    assert_eq!(store.save(&newer, &rev).await.unwrap(), Saved::Stored);

    // Same root, older versions.
    put(&shared, GUN, older.clone()).await;
    assert_eq!(store.load(GUN).await.unwrap().0, newer);

    // A later root (rotated), then the state from before the rotation replayed.
    let (_, rev) = store.load(GUN).await.unwrap();
    assert_eq!(store.save(&root(2), &rev).await.unwrap(), Saved::Stored);
    put(&shared, GUN, older).await;
    assert_eq!(store.load(GUN).await.unwrap().0, root(2));

    // Deleted: the copy stands, to be stored again.
    object_store::ObjectStoreExt::delete(shared.as_ref(), &object_key(GUN))
        .await
        .unwrap();
    let (loaded, revision) = store.load(GUN).await.unwrap();
    assert_eq!((loaded, revision), (root(2), Revision::Absent));

    // A replica that never saw the GUN has nothing to hold on to.
    let fresh = tempfile::tempdir().unwrap();
    let other = sealed(shared.clone(), key(1), "internal").with_local_copy(fresh.path());
    assert_eq!(other.load(GUN).await.unwrap().0, GunState::empty(GUN));
}
