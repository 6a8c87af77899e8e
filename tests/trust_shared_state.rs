//! Notary trust state shared by replicas through a real S3 server (`s3s-fs`, `cargo install
//! s3s-fs --features binary`): each "replica" is its own S3 client and `StateStore::object`
//! over the same bucket, verifying real notary publications from `tests/data/trust/`.
//!
//! - a rollback one replica saw is refused by another;
//! - the root trusted on first use is the one stored first;
//! - racing replicas never lose an update, and versions end at the maximum;
//! - an unreachable store fails the update with a transport-class error, and recovers;
//! - the bucket is an adversary too: a state planted or inflated by a writer without the trust
//!   state key is refused, an older authentic state replayed does not roll back a replica that
//!   saw newer, and a bucket that accepts and never answers is unavailable after the deadline.

mod support;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use object_store::{
    path::Path as ObjectPath,
    throttle::{ThrottleConfig, ThrottledStore},
};
use support::{fakes::Reply, mitm::Mitm, s3::S3Server};
use time::OffsetDateTime;
use trustgate::trust::notary::{
    GunState, Limits, NotaryClient, NotaryError, Source, StateKey, StateStore,
};

const GUN: &str = "docker.io/trustgate/demo";

/// Publications of `docker.io/trustgate/demo` from one notary server and keys: `NEWER`
/// re-signs tag v2 after `OLDER` (higher timestamp, snapshot and targets versions).
const NEWER: &str = "rollback-timestamp/before";
const OLDER: &str = "rollback-timestamp/metadata";
/// The same GUN initialised twice with different keys (`notary delete --remote`, `init`).
const FIRST_ROOT: &str = "foreign-root/before";
const OTHER_ROOT: &str = "foreign-root/metadata";

/// One replica's view of the bucket under `prefix`: its own client, as a separate process
/// would have, failing promptly while the server is stopped.
fn state_store(s3: &S3Server, prefix: &str) -> StateStore {
    StateStore::object(
        Arc::new(s3.client_with_short_retries()),
        ObjectPath::from(prefix),
    )
}

// === verifying ===

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/trust")
        .join(path)
}

/// The time every fixture is valid at (its `case.json`'s `at`).
fn at() -> OffsetDateTime {
    OffsetDateTime::parse(
        "2026-11-23T07:29:28Z",
        &time::format_description::well_known::Rfc3339,
    )
    .expect("fixture time")
}

async fn verify(store: &StateStore, data: &str) -> Result<(), NotaryError> {
    NotaryClient::new(
        Source::Dir(fixture(data)),
        Limits::default(),
        Some(store.clone()),
    )
    .verify(GUN, at(), &[])
    .await
    .map(|_| ())
}

/// The state one replica alone would store after verifying `data`.
async fn state_after(data: &str) -> GunState {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StateStore::new(dir.path());
    verify(&store, data).await.expect("fixture verifies");
    store.load(GUN).await.expect("load").0
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_one_replica_saw_is_refused_by_another() {
    let s3 = S3Server::start();
    let a = state_store(&s3, "trust/internal");
    let b = state_store(&s3, "trust/internal");

    verify(&a, NEWER)
        .await
        .expect("replica A verifies the newer publication");
    // B has never seen this GUN itself, and is served an older, validly signed publication.
    let e = verify(&b, OLDER).await.unwrap_err();
    assert!(
        matches!(&e, NotaryError::Rollback { role, .. } if role == "timestamp"),
        "{e:?}"
    );
    assert!(!e.is_transport(), "a rollback is a trust failure: {e:?}");
    // Nothing was lowered.
    assert_eq!(b.load(GUN).await.unwrap().0, state_after(NEWER).await);

    // A different prefix is a different deployment's state: no history there.
    verify(&state_store(&s3, "trust/elsewhere"), OLDER)
        .await
        .expect("no shared history under another prefix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_trusted_on_first_use_is_the_one_stored_first() {
    let s3 = S3Server::start();
    let a = state_store(&s3, "trust/internal");
    let b = state_store(&s3, "trust/internal");

    verify(&a, FIRST_ROOT)
        .await
        .expect("replica A pins the first root");
    let e = verify(&b, OTHER_ROOT).await.unwrap_err();
    assert!(e.to_string().contains("root rotation"), "{e}");
    let stored = b.load(GUN).await.unwrap().0;
    assert_eq!(stored, state_after(FIRST_ROOT).await);
    assert_ne!(stored.root, state_after(OTHER_ROOT).await.root);
}

/// A replica whose reads of the state are delayed by `get` and whose writes by `put`.
fn replica(s3: &S3Server, prefix: &str, get: u64, put: u64) -> StateStore {
    let store = ThrottledStore::new(
        s3.client_with_short_retries(),
        ThrottleConfig {
            wait_get_per_call: Duration::from_millis(get),
            wait_put_per_call: Duration::from_millis(put),
            ..ThrottleConfig::default()
        },
    );
    StateStore::object(Arc::new(store), ObjectPath::from(prefix))
}

/// Runs `fast` and `slow` from the same instant: `slow` loads the state first and saves last,
/// so its conditional write meets the state `fast` stored in between.
///
/// The writes are staggered rather than simultaneous because `s3s-fs` (0.14.1,
/// `put_object`) checks `If-None-Match`/`If-Match` and then writes without holding a lock:
/// two writes landing in the same instant may both pass there, where S3, MinIO or R2 decide
/// them atomically. The fully simultaneous race runs against an atomic in-memory store in the
/// unit tests (`state/tests.rs`).
async fn race(
    s3: &S3Server,
    prefix: &str,
    fast: &'static str,
    slow: &'static str,
) -> (Result<(), NotaryError>, Result<(), NotaryError>) {
    let fast_store = replica(s3, prefix, 150, 0);
    let slow_store = replica(s3, prefix, 0, 1500);
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let run = |store: StateStore, data: &'static str| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            verify(&store, data).await
        })
    };
    let (f, s) = (run(fast_store, fast), run(slow_store, slow));
    (f.await.unwrap(), s.await.unwrap())
}

/// Two replicas verify the same GUN at once, neither having seen the other's state. Whichever
/// saves second finds the state changed (`If-None-Match: *` or `If-Match` refused), loads the
/// other's state and verifies again from it: the newer publication is stored either way, and
/// the older one is a rollback once the newer one is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_end_with_the_highest_versions() {
    let s3 = S3Server::start();
    let newest = state_after(NEWER).await;
    let stored = |prefix: &'static str| {
        let store = state_store(&s3, prefix);
        async move { store.load(GUN).await.unwrap().0 }
    };

    // Both create: the older publication saves second and is refused.
    let (newer, older) = race(&s3, "trust/race-1", NEWER, OLDER).await;
    newer.expect("the newer publication verifies");
    let e = older.unwrap_err();
    assert!(
        matches!(&e, NotaryError::Rollback { role, .. } if role == "timestamp"),
        "{e:?}"
    );
    assert_eq!(stored("trust/race-1").await, newest);

    // Both create: the newer publication saves second, over the older one it re-verified from.
    let (older, newer) = race(&s3, "trust/race-2", OLDER, NEWER).await;
    older.expect("the older publication, alone so far, verifies");
    newer.expect("the newer publication verifies from the older state");
    assert_eq!(stored("trust/race-2").await, newest);

    // Both update the same stored state: the second `If-Match` fails and is retried.
    verify(&state_store(&s3, "trust/race-3"), OLDER)
        .await
        .unwrap();
    let (first, second) = race(&s3, "trust/race-3", NEWER, NEWER).await;
    first.expect("the first update");
    second.expect("the second update, after re-verifying");
    assert_eq!(stored("trust/race-3").await, newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_fails_the_update_as_transport_and_recovers() {
    let mut s3 = S3Server::start();
    let store = state_store(&s3, "trust/internal");
    verify(&store, OLDER)
        .await
        .expect("verifies while the store is up");

    s3.stop();
    let started = Instant::now();
    let e = verify(&store, NEWER).await.unwrap_err();
    assert!(
        matches!(e, NotaryError::State { .. }) && e.is_transport() && e.is_state(),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    s3.restart();
    verify(&store, NEWER)
        .await
        .expect("verifies again once the store is back");
    assert_eq!(store.load(GUN).await.unwrap().0, state_after(NEWER).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_falls_back_to_the_replicas_own_copy_but_never_to_first_use() {
    let mut s3 = S3Server::start();
    let copy = tempfile::tempdir().expect("tempdir");
    let replica = state_store(&s3, "trust/internal").with_local_copy(copy.path());
    verify(&replica, OLDER)
        .await
        .expect("verifies while the store is up");

    s3.stop();
    // This replica has its own copy of the GUN's state: it keeps verifying against it, with
    // rollback protection for everything it has seen itself.
    verify(&replica, NEWER)
        .await
        .expect("verifies against its own copy while the store is down");
    let e = verify(&replica, OLDER).await.unwrap_err();
    assert!(matches!(e, NotaryError::Rollback { .. }), "{e:?}");
    // A replica that never saw the GUN does not trust a root on first use without the fleet's
    // state.
    let fresh_copy = tempfile::tempdir().expect("tempdir");
    let fresh = state_store(&s3, "trust/internal").with_local_copy(fresh_copy.path());
    let e = verify(&fresh, NEWER).await.unwrap_err();
    assert!(
        matches!(e, NotaryError::State { .. }) && e.is_transport(),
        "{e:?}"
    );

    // Back up: what the replica verified meanwhile is carried into the shared state, so
    // another replica now refuses the older data as a rollback.
    s3.restart();
    verify(&replica, NEWER).await.expect("verifies again");
    assert_eq!(replica.load(GUN).await.unwrap().0, state_after(NEWER).await);
    let other = state_store(&s3, "trust/internal");
    let e = verify(&other, OLDER).await.unwrap_err();
    assert!(matches!(e, NotaryError::Rollback { .. }), "{e:?}");
}

// === the bucket as an adversary ===

/// The key the replicas share; the bucket (and whoever writes it) does not hold it.
fn key() -> StateKey {
    StateKey::new(support::s3::TRUST_STATE_KEY.as_bytes()).expect("long enough")
}

/// A replica as `trustgate serve` builds it: sealed with the shared key, for notary server
/// `internal`.
fn sealed_store(s3: &S3Server, prefix: &str) -> StateStore {
    state_store(s3, prefix).with_key(key(), "internal")
}

/// The bucket key of `GUN`'s state under `prefix`.
fn object_key(prefix: &str) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, GUN.as_bytes());
    format!("{prefix}/{}.json", hex::encode(hash))
}

/// Writes an object as whoever can write the bucket does (no trust state key).
async fn put(s3: &S3Server, key: &str, bytes: Vec<u8>) {
    use object_store::ObjectStoreExt as _;
    s3.client()
        .put(&ObjectPath::from(key), bytes.into())
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
}

async fn get(s3: &S3Server, key: &str) -> Vec<u8> {
    use object_store::ObjectStoreExt as _;
    let got = s3.client().get(&ObjectPath::from(key)).await.expect("GET");
    got.bytes().await.expect("body").to_vec()
}

fn assert_unauthentic(e: &NotaryError) {
    assert!(
        matches!(e, NotaryError::StateUnauthentic { .. }) && !e.is_transport() && e.is_state(),
        "{e:?}"
    );
}

/// A writer of the bucket without the key plants a state naming their root (the other
/// initialisation's), or inflates the versions of the fleet's own state: refused, the GUN
/// fails closed, and the planted object is not taken for absent (no first use over it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_state_planted_or_inflated_without_the_key_is_refused() {
    let s3 = S3Server::start();
    let prefix = "trust/internal";
    let planted = serde_json::to_vec(&state_after(OTHER_ROOT).await).unwrap();
    put(&s3, &object_key(prefix), planted.clone()).await;
    let replica = sealed_store(&s3, prefix);
    let e = verify(&replica, OTHER_ROOT).await.unwrap_err();
    assert_unauthentic(&e);
    assert_unauthentic(&verify(&replica, FIRST_ROOT).await.unwrap_err());
    assert_eq!(
        get(&s3, &object_key(prefix)).await,
        planted,
        "left as it was"
    );

    // The fleet's authentic state, then the same with every version raised (a denial of the
    // GUN once the versions are higher than anything the server will sign).
    let prefix = "trust/inflated";
    let replica = sealed_store(&s3, prefix);
    verify(&replica, OLDER).await.expect("verifies and seals");
    let authentic = String::from_utf8(get(&s3, &object_key(prefix)).await).unwrap();
    assert!(authentic.contains("hmac-sha256:"), "{authentic}");
    let mut state: serde_json::Value = serde_json::from_str(&authentic).unwrap();
    for version in state["versions"].as_object_mut().unwrap().values_mut() {
        *version = serde_json::json!(1_000_000);
    }
    put(
        &s3,
        &object_key(prefix),
        serde_json::to_vec(&state).unwrap(),
    )
    .await;
    assert_unauthentic(&verify(&replica, NEWER).await.unwrap_err());
    // Without its code at all, the same.
    state.as_object_mut().unwrap().remove("mac");
    put(
        &s3,
        &object_key(prefix),
        serde_json::to_vec(&state).unwrap(),
    )
    .await;
    assert_unauthentic(&verify(&replica, NEWER).await.unwrap_err());
    // The authentic state back: the GUN verifies again.
    put(&s3, &object_key(prefix), authentic.into_bytes()).await;
    verify(&replica, NEWER).await.expect("authentic state");
}

/// The bucket replays the older authentic state of a GUN (a rollback by whoever writes the
/// bucket): the replica that saw newer still refuses older data, from its own copy. A replica
/// that never saw the GUN has only the bucket's word, and accepts the older versions: no root
/// no replica trusted, and nothing older than that authentic state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_an_older_authentic_state_replayed_is_refused_by_a_replica_that_saw_newer() {
    let s3 = S3Server::start();
    let prefix = "trust/internal";
    let copy = tempfile::tempdir().expect("tempdir");
    let replica = sealed_store(&s3, prefix).with_local_copy(copy.path());
    verify(&replica, OLDER).await.expect("older first");
    let older_state = get(&s3, &object_key(prefix)).await;
    verify(&replica, NEWER).await.expect("then newer");

    put(&s3, &object_key(prefix), older_state.clone()).await;
    let e = verify(&replica, OLDER).await.unwrap_err();
    assert!(
        matches!(&e, NotaryError::Rollback { role, .. } if role == "timestamp"),
        "{e:?}"
    );
    // Deleted instead: the replica's own copy still stands.
    put(&s3, &object_key(prefix), older_state).await;
    std::fs::remove_file(s3.object_file(&object_key(prefix))).unwrap();
    let e = verify(&replica, OLDER).await.unwrap_err();
    assert!(matches!(&e, NotaryError::Rollback { .. }), "{e:?}");

    let fresh_copy = tempfile::tempdir().expect("tempdir");
    let fresh = sealed_store(&s3, "trust/replayed-fresh").with_local_copy(fresh_copy.path());
    verify(&fresh, OLDER).await.expect("no history of its own");
}

/// A bucket that accepts connections and never answers: with the deadline, the replica is
/// unavailable-to-the-store within it and verifies against its own copy (rollback protection
/// intact); a replica without a copy is refused as promptly, with a transport-class error
/// (never a first use), instead of holding the refresh until the client gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_bucket_that_never_answers_falls_back_within_the_deadline() {
    let s3 = S3Server::start();
    let prefix = "trust/internal";
    let copy = tempfile::tempdir().expect("tempdir");
    let replica = sealed_store(&s3, prefix).with_local_copy(copy.path());
    verify(&replica, OLDER)
        .await
        .expect("verifies while the bucket answers");

    // The scripted peer runs its own runtime: started and dropped outside this one's tasks.
    let hung = tokio::task::block_in_place(Mitm::standalone);
    hung.on_prefix("/", Reply::Hang(Duration::from_secs(120)));
    let deadline = Duration::from_secs(2);
    let via_hung = |copy: &std::path::Path| {
        StateStore::object(
            Arc::new(s3.client_without_timeout_at(&hung.url())),
            ObjectPath::from(prefix),
        )
        .with_key(key(), "internal")
        .with_local_copy(copy)
        .with_deadline(deadline)
    };
    let replica = via_hung(copy.path());
    let started = Instant::now();
    verify(&replica, NEWER)
        .await
        .expect("verifies against its own copy");
    let e = verify(&replica, OLDER).await.unwrap_err();
    assert!(matches!(e, NotaryError::Rollback { .. }), "{e:?}");
    assert!(
        started.elapsed() < 2 * deadline + Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(hung.count("/") >= 2, "{:?}", hung.requests());

    let fresh_copy = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let e = verify(&via_hung(fresh_copy.path()), NEWER)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NotaryError::State { detail, .. } if detail.contains("did not answer"))
            && e.is_transport(),
        "{e:?}"
    );
    assert!(
        started.elapsed() < deadline + Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    tokio::task::block_in_place(move || drop(hung));
}
