//! `s3s-fs` as a peer: a real S3 server on a free loopback port, storing objects as files in a
//! tempdir (`<root>/<bucket>/<key>`), killed on drop. It can be stopped and started again on
//! the same port and data to play an outage. Install it with
//! `cargo install s3s-fs --version 0.14.1 --features binary --locked` (`scripts/test` does).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tempfile::TempDir;

use super::{start_with_retries, wait_ready, Daemon, Ready};

/// Test credentials, known to the server and written to the key files trustgate reads.
const ACCESS_KEY: &str = "trustgate-test";
const SECRET_KEY: &str = "trustgate-test-secret";

/// The trust state key replicas of the tests share (`storage.s3.trust_state_key_file`); the
/// bucket never sees it.
pub const TRUST_STATE_KEY: &str = "trustgate-test-trust-state-key-0123456789abcdef";

/// A running (or stopped) `s3s-fs` with one bucket.
pub struct S3Server {
    daemon: Option<Daemon>,
    port: u16,
    dir: TempDir,
}

impl S3Server {
    /// The bucket every test uses.
    pub const BUCKET: &'static str = "trustgate";

    /// Starts the server with an empty bucket (a directory under its root).
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir for s3s-fs");
        fs::create_dir_all(dir.path().join("root").join(Self::BUCKET)).expect("bucket dir");
        fs::write(dir.path().join("access-key-id"), ACCESS_KEY).expect("key file");
        fs::write(
            dir.path().join("secret-access-key"),
            format!("{SECRET_KEY}\n"),
        )
        .expect("key file");
        fs::write(
            dir.path().join("trust-state-key"),
            format!("{TRUST_STATE_KEY}\n"),
        )
        .expect("key file");
        let root = dir.path().join("root");
        let log = dir.path().join("s3s-fs.log");
        let (daemon, port) = start_with_retries("s3s-fs", |port| {
            (spawn(&root, &log, port), Ready::Listening(port))
        });
        S3Server {
            daemon: Some(daemon),
            port,
            dir,
        }
    }

    /// Kills the server (SIGKILL): the object store becomes unreachable.
    pub fn stop(&mut self) {
        self.daemon = None;
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        let mut daemon = spawn(&self.root(), &self.dir.path().join("s3s-fs.log"), self.port);
        let ready = Ready::Listening(self.port);
        if let Err(e) = wait_ready(&mut daemon.child, &ready) {
            panic!("s3s-fs did not restart: {e}\n{}", daemon.log_text());
        }
        self.daemon = Some(daemon);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's data directory: buckets are directories, objects files.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The file behind an object of the bucket.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root().join(Self::BUCKET).join(key)
    }

    /// Multipart uploads in progress: `s3s-fs` keeps their parts as `.upload_id-*` files.
    pub fn parts_in_progress(&self) -> usize {
        fs::read_dir(self.root()).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
                .count()
        })
    }

    /// The `storage` section of a trustgate configuration using this bucket under `prefix`,
    /// with the credentials and the trust state key in key files.
    pub fn storage_yaml(&self, prefix: &str) -> String {
        self.storage_yaml_at(&self.endpoint(), prefix)
    }

    /// [`storage_yaml`](Self::storage_yaml) with another endpoint (a man in the middle in
    /// front of this server).
    pub fn storage_yaml_at(&self, endpoint: &str, prefix: &str) -> String {
        format!(
            "storage:\n  backend: s3\n  s3:\n    bucket: {}\n    endpoint: \"{endpoint}\"\n    region: us-east-1\n    \
             prefix: \"{prefix}\"\n    allow_http: true\n    access_key_id_file: {}\n    secret_access_key_file: {}\n    \
             trust_state_key_file: {}\n",
            Self::BUCKET,
            json_path(&self.dir.path().join("access-key-id")),
            json_path(&self.dir.path().join("secret-access-key")),
            json_path(&self.dir.path().join("trust-state-key")),
        )
    }

    /// A client for the bucket, for tests that look at or tamper with it directly.
    pub fn client(&self) -> Arc<AmazonS3> {
        Arc::new(
            self.builder(ClientOptions::new())
                .build()
                .expect("S3 client"),
        )
    }

    /// A client as one replica of a fleet would have its own, with short timeouts and one
    /// retry: while the server is stopped, a request fails within seconds, not minutes.
    pub fn client_with_short_retries(&self) -> AmazonS3 {
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(10));
        self.builder(options)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 1,
                retry_timeout: Duration::from_secs(5),
            })
            .build()
            .expect("S3 client")
    }

    /// A client as trustgate builds its own (no overall timeout, a connect timeout and two
    /// quick retries), for this bucket at `endpoint` (e.g. a man in the middle that hangs).
    pub fn client_without_timeout_at(&self, endpoint: &str) -> AmazonS3 {
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout_disabled();
        self.builder(options)
            .with_endpoint(endpoint)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(5),
            })
            .build()
            .expect("S3 client")
    }

    fn builder(&self, options: ClientOptions) -> AmazonS3Builder {
        AmazonS3Builder::new()
            // Before `with_allow_http`, which is one of the client options this replaces.
            .with_client_options(options)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_bucket_name(Self::BUCKET)
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
    }

    /// `(key, size)` of every object in the bucket, through the S3 API.
    pub fn list(&self) -> Vec<(String, u64)> {
        let client = self.client();
        block_on(async move {
            use futures_util::TryStreamExt;
            let mut objects: Vec<(String, u64)> = client
                .list(None)
                .map_ok(|m| (m.location.to_string(), m.size))
                .try_collect()
                .await
                .expect("list the bucket");
            objects.sort();
            objects
        })
    }

    /// An object's bytes through the S3 API, `None` when absent.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (client, key) = (self.client(), Key::from(key));
        block_on(async move {
            match client.get(&key).await {
                Ok(got) => Some(got.bytes().await.expect("object body").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("GET {key}: {e}"),
            }
        })
    }

    /// Writes an object through the S3 API (to tamper with the bucket).
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        let (client, key) = (self.client(), Key::from(key));
        block_on(async move {
            client
                .put(&key, PutPayload::from(bytes))
                .await
                .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
        });
    }
}

/// `s3s-fs` from `PATH`, else where `cargo install` puts it.
fn program() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"))
        .find(|candidate| candidate.is_file());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    on_path
        .or_else(|| {
            cargo_home
                .map(|home| home.join("bin").join("s3s-fs"))
                .filter(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("s3s-fs not found: cargo install s3s-fs --version 0.14.1 --features binary --locked")
        })
}

fn spawn(root: &Path, log: &Path, port: u16) -> Daemon {
    let mut cmd = Command::new(program());
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .args(["--domain", "localhost"])
        .arg(root);
    Daemon::spawn(
        cmd,
        log.to_owned(),
        "s3s-fs (cargo install s3s-fs --features binary)",
    )
}

fn json_path(path: &Path) -> String {
    serde_json::json!(path.to_str().expect("UTF-8 tempdir")).to_string()
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A bucket endpoint of its own for what `s3s-fs` cannot play: a `GET` of an object it holds is
/// answered at once with S3's headers (`Content-Length`, `ETag`, `Last-Modified`, which
/// object_store requires), then the body one byte per `every`; every other request gets an
/// empty `404`. It checks no signature. Stops (and cuts every drip) on drop.
pub struct DripBucket {
    port: u16,
    stop: Arc<AtomicBool>,
    gets: Arc<AtomicUsize>,
}

impl DripBucket {
    /// Serves `objects` (`key` under [`S3Server::BUCKET`], path style, to bytes).
    pub fn start(objects: Vec<(String, Vec<u8>)>, every: Duration) -> DripBucket {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind drip bucket");
        let port = listener.local_addr().expect("local addr").port();
        let objects: Arc<HashMap<String, Vec<u8>>> = Arc::new(
            objects
                .into_iter()
                .map(|(key, bytes)| (format!("/{}/{key}", S3Server::BUCKET), bytes))
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let gets = Arc::new(AtomicUsize::new(0));
        let (stop_, gets_) = (stop.clone(), gets.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (objects, stop, gets) = (objects.clone(), stop_.clone(), gets_.clone());
                thread::spawn(move || drip(stream, &objects, every, &stop, &gets));
            }
        });
        DripBucket { port, stop, gets }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET`s of held objects so far.
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

impl Drop for DripBucket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn drip(
    mut stream: TcpStream,
    objects: &HashMap<String, Vec<u8>>,
    every: Duration,
    stop: &AtomicBool,
    gets: &AtomicUsize,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head).into_owned();
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or(target);
    let Some(body) = objects.get(path).filter(|_| method == "GET") else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    gets.fetch_add(1, Ordering::SeqCst);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         ETag: \"drip\"\r\nLast-Modified: Thu, 01 Jan 1970 00:00:00 GMT\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    for byte in body {
        thread::sleep(every);
        if stop.load(Ordering::SeqCst) || stream.write_all(&[*byte]).is_err() {
            return;
        }
    }
}
