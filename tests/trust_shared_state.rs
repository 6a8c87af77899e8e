//! Notary trust state shared by replicas through a real S3 server (`s3s-fs`, `cargo install
//! s3s-fs --features binary`): each "replica" is its own S3 client and `StateStore::object`
//! over the same bucket, verifying real notary publications from `tests/data/trust/`.
//!
//! - a rollback one replica saw is refused by another;
//! - the root trusted on first use is the one stored first;
//! - racing replicas never lose an update, and versions end at the maximum;
//! - an unreachable store fails the update with a transport-class error, and recovers.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use object_store::{
    aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut},
    path::Path as ObjectPath,
    throttle::{ThrottleConfig, ThrottledStore},
    BackoffConfig, ClientOptions, ObjectStore, RetryConfig,
};
use tempfile::TempDir;
use time::OffsetDateTime;
use trustgate::trust::notary::{GunState, Limits, NotaryClient, NotaryError, Source, StateStore};

const GUN: &str = "docker.io/trustgate/demo";
const BUCKET: &str = "trust-state";
const ACCESS_KEY: &str = "trustgate-test";
const SECRET_KEY: &str = "trustgate-test-secret";

/// Publications of `docker.io/trustgate/demo` from one notary server and keys: `NEWER`
/// re-signs tag v2 after `OLDER` (higher timestamp, snapshot and targets versions).
const NEWER: &str = "rollback-timestamp/before";
const OLDER: &str = "rollback-timestamp/metadata";
/// The same GUN initialised twice with different keys (`notary delete --remote`, `init`).
const FIRST_ROOT: &str = "foreign-root/before";
const OTHER_ROOT: &str = "foreign-root/metadata";

// === s3s-fs ===

/// An `s3s-fs` process serving a directory, killed on drop. Buckets are its directories.
struct S3Server {
    child: Option<Child>,
    port: u16,
    root: TempDir,
}

impl S3Server {
    fn start() -> S3Server {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("create bucket directory");
        let port = free_port();
        let mut server = S3Server {
            child: None,
            port,
            root,
        };
        server.restart();
        server
    }

    fn binary() -> PathBuf {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join("s3s-fs"));
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map(|d| d.join("bin").join("s3s-fs"));
        on_path.chain(cargo_home).find(|p| p.is_file()).expect(
            "s3s-fs not found: cargo install s3s-fs --version 0.14.1 --features binary --locked",
        )
    }

    /// Starts the server (again) on its port and over its directory.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(Self::binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(["--domain", "localhost"])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s3s-fs");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("s3s-fs exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One replica's view of the bucket: its own client, as a separate process would have.
    fn client(&self) -> Arc<dyn ObjectStore> {
        Arc::new(self.s3())
    }

    fn s3(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            // Before `with_allow_http`, which is one of the client options this replaces.
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(10)),
            )
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            // A stopped server must fail the update promptly, not after minutes of retries.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 1,
                retry_timeout: Duration::from_secs(5),
            })
            .build()
            .expect("build S3 client")
    }

    fn state_store(&self, prefix: &str) -> StateStore {
        StateStore::object(self.client(), ObjectPath::from(prefix))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
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
    let a = s3.state_store("trust/internal");
    let b = s3.state_store("trust/internal");

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
    verify(&s3.state_store("trust/elsewhere"), OLDER)
        .await
        .expect("no shared history under another prefix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_trusted_on_first_use_is_the_one_stored_first() {
    let s3 = S3Server::start();
    let a = s3.state_store("trust/internal");
    let b = s3.state_store("trust/internal");

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
        s3.s3(),
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
        let store = s3.state_store(prefix);
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
    verify(&s3.state_store("trust/race-3"), OLDER)
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
    let store = s3.state_store("trust/internal");
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
    let replica = s3
        .state_store("trust/internal")
        .with_local_copy(copy.path());
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
    let fresh = s3
        .state_store("trust/internal")
        .with_local_copy(fresh_copy.path());
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
    let other = s3.state_store("trust/internal");
    let e = verify(&other, OLDER).await.unwrap_err();
    assert!(matches!(e, NotaryError::Rollback { .. }), "{e:?}");
}
