//! Real peers for integration tests: `notary-server`, the `notary` CLI, `docker-registry`,
//! `openssl` keys, and the `trustgate` binary under test.
//!
//! Every peer runs on a free loopback port inside its own temporary directory. Drop kills the
//! child process and then removes the directory, so a failing (panicking) test cleans up too.
//! Every wait is bounded: a peer that does not come up, or a command that hangs, fails the test
//! with a message instead of stalling the suite.
//!
//! Include it from a test file with `mod support;`.
#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod clients;
pub mod containerd;
pub mod cosign;
pub mod fakes;
pub mod http;
pub mod mitm;
pub mod oci;
pub mod proxy;
pub mod relay;
pub mod s3;
pub mod sigstore;

/// How long a peer may take to answer its health check after being spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a single CLI invocation (notary, openssl, trustgate) may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Passphrase for every key the notary CLI creates or imports in tests.
pub const PASSPHRASE: &str = "trustgate-test-passphrase";

/// Ports are picked by binding port 0 and releasing it before the peer binds it, so another
/// process can grab it in between. Peers are retried on a fresh port this many times.
const START_ATTEMPTS: usize = 3;

// === ports and HTTP ===

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of listener")
        .port()
}

/// A plain-HTTP GET, enough for health checks and for reading trust data off notary-server.
///
/// It speaks HTTP/1.0 on purpose: Go's server then answers with a plain body delimited by the
/// connection close (no chunked encoding), which keeps this parser trivial.
pub fn http_get(url: &str) -> Result<(u16, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {authority}"))?;
    let io = |e: std::io::Error| format!("GET {url}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;

    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("GET {url}: no end of headers in response"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {url}: bad status line in {head:?}"))?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// How to tell that a peer is up.
enum Ready {
    /// The URL answers 200.
    Http(String),
    /// The loopback port accepts connections.
    Listening(u16),
}

/// Polls until the peer is ready, the child exits, or [`READY_TIMEOUT`] passes.
fn wait_ready(child: &mut Child, ready: &Ready) -> Result<(), StartError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no attempt yet");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartError::Exited(status));
        }
        match ready {
            Ready::Http(url) => match http_get(url) {
                Ok((200, _)) => return Ok(()),
                Ok((code, _)) => last = format!("HTTP {code}"),
                Err(e) => last = e,
            },
            Ready::Listening(port) => {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = format!("connect {addr}: {e}"),
                }
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(StartError::Timeout(last))
}

enum StartError {
    Exited(ExitStatus),
    Timeout(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Exited(status) => write!(f, "exited early ({status})"),
            StartError::Timeout(last) => write!(
                f,
                "not ready after {}s (last: {last})",
                READY_TIMEOUT.as_secs()
            ),
        }
    }
}

// === running commands ===

/// Spawns `cmd`, panicking with an install hint when the program is missing.
fn spawn(cmd: &mut Command, package: &str) -> Child {
    match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{} not found: apt-get install {package}",
            cmd.get_program().to_string_lossy()
        ),
        Err(e) => panic!("spawn {:?}: {e}", cmd.get_program()),
    }
}

/// Runs `cmd` to completion with `stdin` as its input, killing it after [`COMMAND_TIMEOUT`].
///
/// Output is drained on threads so a chatty child cannot block on a full pipe while we wait.
pub fn run_bounded(cmd: &mut Command, stdin: &[u8], package: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(cmd, package);
    let mut input = child.stdin.take().expect("child stdin");
    // Programs that never read stdin may close it first; a broken pipe here is not an error.
    let _ = input.write_all(stdin);
    drop(input);

    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("child stdout")));
    let err = drain(Box::new(child.stderr.take().expect("child stderr")));

    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "{cmd:?} timed out after {}s; stderr:\n{}",
                    COMMAND_TIMEOUT.as_secs(),
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs `cmd` and returns its stdout, panicking with stderr when it fails.
fn run_ok(cmd: &mut Command, stdin: &[u8], package: &str) -> String {
    let output = run_bounded(cmd, stdin, package);
    if !output.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).expect("command output is UTF-8")
}

/// Runs the binary under test with `args`.
pub fn trustgate<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
    cmd.args(args);
    run_bounded(&mut cmd, b"", "trustgate")
}

/// The SHA-256 of `data` as lowercase hex, computed by `openssl dgst`.
pub fn sha256_hex(data: &[u8]) -> String {
    let out = run_ok(
        Command::new("openssl").args(["dgst", "-sha256", "-r"]),
        data,
        "openssl",
    );
    // `-r` prints "<hex> *stdin".
    let hex = out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(is_hex64(&hex), "unexpected openssl dgst output: {out:?}");
    hex
}

/// Whether `s` looks like a key ID or SHA-256 digest: 64 lowercase hex characters.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Standard base64 (with padding, as TUF metadata uses) decoded to bytes.
pub fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let value = ALPHABET
            .iter()
            .position(|&a| a == byte)
            .unwrap_or_else(|| panic!("invalid base64 byte {byte:#x}"));
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

// === a background peer ===

/// A long-running child process, killed on drop. Its stdout and stderr go to a log file so a
/// startup failure can show what the peer said.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(mut cmd: Command, log: PathBuf, package: &str) -> Daemon {
        let file = fs::File::create(&log).expect("create peer log");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file);
        Daemon {
            child: spawn(&mut cmd, package),
            log,
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a peer on a fresh port, retrying when the port was taken in the meantime.
/// `launch(port)` spawns the peer and says how to tell when it is ready.
fn start_with_retries(name: &str, mut launch: impl FnMut(u16) -> (Daemon, Ready)) -> (Daemon, u16) {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let (mut daemon, ready) = launch(port);
        match wait_ready(&mut daemon.child, &ready) {
            Ok(()) => return (daemon, port),
            Err(e) => {
                // Kill it before reading the log so the log is complete.
                let _ = daemon.child.kill();
                let _ = daemon.child.wait();
                failures.push(format!("port {port}: {e}\n{}", daemon.log_text()));
            }
        }
    }
    panic!("{name} did not start:\n{}", failures.join("\n"));
}

// === notary-server ===

/// A `notary-server` with in-memory storage and a local trust service that signs timestamps
/// itself (ed25519), on plain HTTP.
pub struct NotaryServer {
    daemon: Daemon,
    port: u16,
    tls: Option<TlsFiles>,
    // Dropped after `daemon`, so the directory outlives the process using it.
    dir: TempDir,
}

impl NotaryServer {
    pub fn start() -> NotaryServer {
        NotaryServer::launch(false)
    }

    /// The same server on HTTPS, with a certificate for `127.0.0.1` issued by a test CA
    /// ([`NotaryServer::ca_cert`]).
    pub fn start_tls() -> NotaryServer {
        NotaryServer::launch(true)
    }

    fn launch(tls: bool) -> NotaryServer {
        let dir = tempfile::tempdir().expect("tempdir for notary-server");
        let config = dir.path().join("notary-server.json");
        let tls = tls.then(|| TlsFiles::generate(dir.path()));
        let (daemon, port) = start_with_retries("notary-server", |port| {
            let mut server = serde_json::json!({"http_addr": format!("127.0.0.1:{port}")});
            if let Some(tls) = &tls {
                server["tls_cert_file"] = serde_json::json!(tls.server_cert);
                server["tls_key_file"] = serde_json::json!(tls.server_key);
            }
            let json = serde_json::json!({
                "server": server,
                "trust_service": {
                    "type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"
                },
                "logging": {"level": "error"},
                "storage": {"backend": "memory"},
            });
            fs::write(&config, json.to_string()).expect("write notary-server config");
            let mut cmd = Command::new("notary-server");
            cmd.arg("-config").arg(&config);
            let daemon = Daemon::spawn(cmd, dir.path().join("notary-server.log"), "notary");
            // Over TLS, a listening port is the readiness signal (http_get speaks no TLS).
            let ready = match tls {
                None => Ready::Http(format!("http://127.0.0.1:{port}/_notary_server/health")),
                Some(_) => Ready::Listening(port),
            };
            (daemon, ready)
        });
        NotaryServer {
            daemon,
            port,
            tls,
            dir,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) that issued the server's certificate, for TLS servers.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// The raw bytes of `<role>.json` for `gun` as the server serves them, or `None` on 404.
    pub fn metadata(&self, gun: &str, role: &str) -> Option<Vec<u8>> {
        assert!(
            self.tls.is_none(),
            "metadata() reads plain-HTTP servers only"
        );
        let url = format!("{}/v2/{gun}/_trust/tuf/{role}.json", self.url());
        match http_get(&url) {
            Ok((200, body)) => Some(body),
            Ok((404, _)) => None,
            Ok((code, body)) => {
                panic!("GET {url}: HTTP {code}: {}", String::from_utf8_lossy(&body))
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// `<role>.json` parsed, panicking when the server does not have it.
    pub fn metadata_json(&self, gun: &str, role: &str) -> serde_json::Value {
        let body = self
            .metadata(gun, role)
            .unwrap_or_else(|| panic!("notary-server has no {role}.json for {gun}"));
        serde_json::from_slice(&body).expect("trust metadata is JSON")
    }

    /// The root role's key IDs as written in root.json: IDs of the root *certificates*.
    pub fn root_cert_key_ids(&self, gun: &str) -> Vec<String> {
        let root = self.metadata_json(gun, "root");
        string_list(&root["signed"]["roles"]["root"]["keyids"])
    }

    /// The PEM certificate of root key `key_id` (a certificate-form ID from root.json).
    pub fn root_cert_pem(&self, gun: &str, key_id: &str) -> String {
        let root = self.metadata_json(gun, "root");
        let public = root["signed"]["keys"][key_id]["keyval"]["public"]
            .as_str()
            .unwrap_or_else(|| panic!("root.json has no key {key_id}"));
        String::from_utf8(base64_decode(public)).expect("root certificate PEM is text")
    }
}

fn string_list(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

// === docker-registry ===

/// A CNCF distribution registry (`docker-registry`) with filesystem storage in a tempdir.
pub struct Registry {
    daemon: Daemon,
    port: u16,
    /// `user:password` of the htpasswd account, for registries started with one.
    credentials: Option<String>,
    dir: TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::launch(None, None)
    }

    /// Distribution in its own pull-through cache mode, in front of `remote_url`.
    pub fn start_proxy(remote_url: &str) -> Registry {
        Registry::launch(Some(remote_url), None)
    }

    /// A registry that requires HTTP basic auth (`WWW-Authenticate: Basic realm="basic-realm"`)
    /// for every request, with one account. The bcrypt entry comes from `htpasswd -B`
    /// (Debian package apache2-utils): distribution accepts no other hash.
    pub fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        Registry::launch(None, Some((user, password)))
    }

    fn launch(remote_url: Option<&str>, account: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir for docker-registry");
        let data = dir.path().join("regdata");
        fs::create_dir_all(&data).expect("create registry data dir");
        let config = dir.path().join("registry.yml");
        let htpasswd = account.map(|(user, password)| {
            // -i reads the password from stdin, keeping it off the command line.
            let entry = run_ok(
                Command::new("htpasswd").args(["-n", "-i", "-B", user]),
                password.as_bytes(),
                "apache2-utils",
            );
            let path = dir.path().join("htpasswd");
            fs::write(&path, entry.trim_end()).expect("write htpasswd file");
            path
        });
        let (daemon, port) = start_with_retries("docker-registry", |port| {
            // JSON is valid YAML, and serde_json gets the quoting of paths right.
            let mut yaml = serde_json::json!({
                "version": "0.1",
                "log": {"level": "error"},
                "storage": {
                    "filesystem": {"rootdirectory": data.to_str().expect("UTF-8 tempdir")},
                    "delete": {"enabled": true},
                },
                "http": {"addr": format!("127.0.0.1:{port}")},
            });
            if let Some(remote) = remote_url {
                yaml["proxy"] = serde_json::json!({"remoteurl": remote});
            }
            if let Some(path) = &htpasswd {
                yaml["auth"] = serde_json::json!({"htpasswd": {
                    "realm": "basic-realm",
                    "path": path.to_str().expect("UTF-8 tempdir"),
                }});
            }
            fs::write(&config, yaml.to_string()).expect("write registry config");
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve").arg(&config);
            let daemon = Daemon::spawn(cmd, dir.path().join("registry.log"), "docker-registry");
            // With auth, /v2/ answers 401, so an open port is the readiness signal.
            let ready = match htpasswd {
                None => Ready::Http(format!("http://127.0.0.1:{port}/v2/")),
                Some(_) => Ready::Listening(port),
            };
            (daemon, ready)
        });
        Registry {
            daemon,
            port,
            credentials: account.map(|(user, password)| format!("{user}:{password}")),
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host_port())
    }

    /// `user:password` for registries started with [`Registry::start_with_htpasswd`], as
    /// `skopeo --dest-creds` takes it.
    pub fn credentials(&self) -> Option<&str> {
        self.credentials.as_deref()
    }

    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The storage root directory (`rootdirectory` in the registry config).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("regdata")
    }

    /// Where distribution keeps the blob with this SHA-256 hex digest.
    pub fn blob_path(&self, sha256_hex: &str) -> PathBuf {
        self.data_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&sha256_hex[..2])
            .join(sha256_hex)
            .join("data")
    }
}

// === the notary CLI ===

/// One target row of `notary list`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedTarget {
    pub name: String,
    pub digest_hex: String,
    pub size: u64,
    pub role: String,
}

/// One row of `notary key list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub role: String,
    /// Empty for keys not bound to one repository (root and delegation keys).
    pub gun: String,
    /// The canonical key ID: for certificates, the ID of the public key inside.
    pub id: String,
}

/// One row of `notary delegation list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDelegation {
    pub role: String,
    /// Canonical key IDs, as `docker trust inspect` prints them.
    pub key_ids: Vec<String>,
    pub threshold: u32,
}

/// A `notary` client with its own trust directory (keys and metadata cache) and passphrases
/// given through the child's environment, so it never prompts.
pub struct NotaryCli {
    dir: TempDir,
    config: PathBuf,
}

impl NotaryCli {
    /// A client of `server_url`, trusting `ca_cert` (PEM) for an HTTPS server.
    pub fn new(server_url: &str, ca_cert: Option<&Path>) -> NotaryCli {
        let dir = tempfile::tempdir().expect("tempdir for notary client");
        let config = dir.path().join("notary-client.json");
        let mut remote = serde_json::json!({"url": server_url});
        if let Some(ca) = ca_cert {
            remote["root_ca"] = serde_json::json!(ca);
        }
        let json = serde_json::json!({
            "trust_dir": dir.path().join("trust"),
            "remote_server": remote,
        });
        fs::write(&config, json.to_string()).expect("write notary client config");
        NotaryCli { dir, config }
    }

    pub fn for_server(server: &NotaryServer) -> NotaryCli {
        NotaryCli::new(&server.url(), server.ca_cert())
    }

    /// Private keys live under `private/`, the metadata cache under `tuf/<GUN>/metadata/`.
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    /// The client's cache of `gun`'s trust data, refreshed by `list` and by publishing.
    pub fn metadata_dir(&self, gun: &str) -> PathBuf {
        self.trust_dir().join("tuf").join(gun).join("metadata")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("notary");
        cmd.arg("-c").arg(&self.config).args(args);
        for var in [
            "NOTARY_ROOT_PASSPHRASE",
            "NOTARY_TARGETS_PASSPHRASE",
            "NOTARY_SNAPSHOT_PASSPHRASE",
            "NOTARY_DELEGATION_PASSPHRASE",
        ] {
            cmd.env(var, PASSPHRASE);
        }
        cmd
    }

    /// Runs `notary <args>` and returns stdout; panics with stdout and stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        self.run_with_stdin(args, b"")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> String {
        run_ok(&mut self.command(args), stdin, "notary")
    }

    /// Runs `notary <args>` and returns the raw output, failure or not.
    pub fn try_run(&self, args: &[&str]) -> Output {
        run_bounded(&mut self.command(args), b"", "notary")
    }

    pub fn init(&self, gun: &str) {
        self.run(&["init", gun, "--publish"]);
    }

    /// Signs `tag` -> (size, sha256) into each of `roles` (`targets` when empty) and publishes.
    pub fn addhash(&self, gun: &str, tag: &str, size: u64, sha256_hex: &str, roles: &[&str]) {
        let size = size.to_string();
        let mut args = vec!["addhash", gun, tag, &size, "--sha256", sha256_hex];
        args.extend(roles_args(roles));
        args.push("--publish");
        self.run(&args);
    }

    /// `docker trust revoke`: removes `tag` from `roles` (`targets` when empty) and publishes.
    pub fn remove(&self, gun: &str, tag: &str, roles: &[&str]) {
        let mut args = vec!["remove", gun, tag];
        args.extend(roles_args(roles));
        args.push("--publish");
        self.run(&args);
    }

    /// Adds the key in `cert_path` to delegation `role` (creating it) for all paths.
    pub fn delegation_add(&self, gun: &str, role: &str, cert_path: &Path) {
        let cert = cert_path.to_str().expect("UTF-8 path");
        self.run(&[
            "delegation",
            "add",
            gun,
            role,
            cert,
            "--all-paths",
            "--publish",
        ]);
    }

    /// Deletes delegation `role` entirely (all keys and paths) and publishes, as
    /// `docker trust signer remove` does for `targets/<signer>`.
    pub fn delegation_remove(&self, gun: &str, role: &str) {
        self.run(&["delegation", "remove", gun, role, "--yes", "--publish"]);
    }

    /// Removes one key from delegation `role`, keeping the role, and publishes.
    pub fn delegation_remove_key(&self, gun: &str, role: &str, key_id: &str) {
        self.run(&[
            "delegation",
            "remove",
            gun,
            role,
            key_id,
            "--yes",
            "--publish",
        ]);
    }

    /// Imports a private key for signing as `role`. Accepts SEC1 (`EC PRIVATE KEY`), PKCS#1
    /// (`RSA PRIVATE KEY`) and unencrypted PKCS#8 (`PRIVATE KEY`) PEM. Keys are stored by key
    /// ID, so importing one key for a second role relabels it; signing still finds it by ID.
    pub fn key_import(&self, key_path: &Path, role: &str) {
        let key = key_path.to_str().expect("UTF-8 path");
        self.run(&["key", "import", key, "--role", role]);
    }

    /// Rotates the key of `role` (root, targets or snapshot) to a fresh local key and publishes.
    /// A root rotation is signed by both the old and the new root key.
    pub fn key_rotate(&self, gun: &str, role: &str) {
        self.rotate(&["key", "rotate", gun, role]);
    }

    /// Hands `role` (snapshot; timestamp always is) to the server: it makes the new key and
    /// signs that role from now on.
    pub fn key_rotate_server_managed(&self, gun: &str, role: &str) {
        self.rotate(&["key", "rotate", gun, role, "--server-managed"]);
    }

    fn rotate(&self, args: &[&str]) {
        // Root rotation asks for confirmation on stdin, and when it does not get "yes" it prints
        // "Aborting action." yet still exits 0, so success is read from the output.
        let stdout = self.run_with_stdin(args, b"yes\n");
        let (gun, role) = (args[2], args[3]);
        assert!(
            stdout.contains("Successfully rotated"),
            "notary key rotate {gun} {role} did not rotate:\n{stdout}"
        );
    }

    /// Deletes `gun`'s trust data locally and on the server.
    pub fn delete_remote(&self, gun: &str) {
        self.run(&["delete", gun, "--remote"]);
    }

    /// `notary list <gun>`: every target reachable from `targets`, first role found winning
    /// (note: `targets` before its delegations, the reverse of DCT's `targets/releases` first).
    pub fn list(&self, gun: &str) -> Vec<ListedTarget> {
        self.list_roles(gun, &[])
    }

    /// `notary list <gun> --roles ...`: targets reachable from the given roles.
    pub fn list_roles(&self, gun: &str, roles: &[&str]) -> Vec<ListedTarget> {
        let mut args = vec!["list", gun];
        args.extend(roles_args(roles));
        parse_list(&self.run(&args))
    }

    /// `notary key list`.
    pub fn key_list(&self) -> Vec<ListedKey> {
        table_rows(&self.run(&["key", "list"]))
            .into_iter()
            .map(|cols| {
                // The GUN column is blank for root and delegation keys, so locate the ID instead
                // of counting columns.
                let at = cols
                    .iter()
                    .position(|c| is_hex64(c))
                    .unwrap_or_else(|| panic!("no key ID in `notary key list` row {cols:?}"));
                ListedKey {
                    role: cols[0].clone(),
                    gun: if at > 1 {
                        cols[1].clone()
                    } else {
                        String::new()
                    },
                    id: cols[at].clone(),
                }
            })
            .collect()
    }

    /// Canonical IDs of the root keys this client holds (all of them, old ones after rotation).
    pub fn root_key_ids(&self) -> Vec<String> {
        self.key_ids_for_role("root")
    }

    /// Canonical IDs of the keys this client holds for `role`.
    pub fn key_ids_for_role(&self, role: &str) -> Vec<String> {
        self.key_list()
            .into_iter()
            .filter(|k| k.role == role)
            .map(|k| k.id)
            .collect()
    }

    /// `notary delegation list <gun>`.
    pub fn delegation_list(&self, gun: &str) -> Vec<ListedDelegation> {
        let out = self.run(&["delegation", "list", gun]);
        let mut rows: Vec<ListedDelegation> = Vec::new();
        // Columns: ROLE, PATHS (`"" <all paths>` has spaces), KEY IDS, THRESHOLD. A role with
        // several keys (or paths) continues on indented lines holding only the extra values.
        for line in out
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("----"))
            .skip(1)
            .filter(|l| !l.trim().is_empty())
        {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let ids = cols
                .iter()
                .copied()
                .filter(|c| is_hex64(c))
                .map(String::from);
            if line.starts_with(char::is_whitespace) {
                let row = rows
                    .last_mut()
                    .unwrap_or_else(|| panic!("continuation before any row in:\n{out}"));
                row.key_ids.extend(ids);
                continue;
            }
            let threshold = cols
                .last()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("no threshold in delegation row {line:?}"));
            rows.push(ListedDelegation {
                role: cols[0].to_string(),
                key_ids: ids.collect(),
                threshold,
            });
        }
        rows
    }
}

fn roles_args<'a>(roles: &[&'a str]) -> Vec<&'a str> {
    roles.iter().flat_map(|r| ["--roles", r]).collect()
}

/// The data rows of one of notary's tables: everything after the `----` separator line, split
/// on whitespace. Blank lines and "No ... present" messages yield no rows.
fn table_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip_while(|l| !l.trim_start().starts_with("----"))
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|cols| !cols.is_empty())
        .collect()
}

fn parse_list(out: &str) -> Vec<ListedTarget> {
    table_rows(out)
        .into_iter()
        .map(|cols| match cols.as_slice() {
            [name, digest, size, role] => ListedTarget {
                name: name.clone(),
                digest_hex: digest.clone(),
                size: size
                    .parse()
                    .unwrap_or_else(|_| panic!("bad size in `notary list` row {cols:?}")),
                role: role.clone(),
            },
            _ => panic!("unexpected `notary list` row {cols:?} in:\n{out}"),
        })
        .collect()
}

// === openssl signers ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256: `ecdsa-x509` in metadata, `ecdsa` signatures.
    P256,
    /// RSA 2048: `rsa-x509` in metadata, `rsapss` signatures.
    Rsa2048,
}

/// A private key and a self-signed certificate (`CN=<name>`), as `docker trust signer add`
/// expects them.
pub struct Signer {
    pub name: String,
    pub kind: KeyKind,
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
}

impl Signer {
    pub fn generate(dir: &Path, name: &str, kind: KeyKind) -> Signer {
        let key_path = dir.join(format!("{name}.key"));
        let cert_path = dir.join(format!("{name}.crt"));
        let mut keygen = Command::new("openssl");
        match kind {
            // SEC1 "EC PRIVATE KEY" PEM.
            KeyKind::P256 => keygen.args(["ecparam", "-name", "prime256v1", "-genkey", "-noout"]),
            // OpenSSL 3 writes PKCS#8 "PRIVATE KEY" PEM, which `notary key import` accepts.
            KeyKind::Rsa2048 => keygen.args(["genrsa"]),
        };
        keygen.arg("-out").arg(&key_path);
        if kind == KeyKind::Rsa2048 {
            keygen.arg("2048");
        }
        run_ok(&mut keygen, b"", "openssl");
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-x509", "-days", "365", "-subj"])
                .arg(format!("/CN={name}"))
                .arg("-key")
                .arg(&key_path)
                .arg("-out")
                .arg(&cert_path),
            b"",
            "openssl",
        );
        Signer {
            name: name.to_string(),
            kind,
            key_path,
            cert_path,
        }
    }
}

// === TLS ===

/// A test CA and a server certificate for `127.0.0.1` it issued (P-256, X.509 v3 with the
/// extensions rustls/webpki insist on: SAN, CA flags, serverAuth).
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TlsFiles {
    pub fn generate(dir: &Path) -> TlsFiles {
        TlsFiles::issue(dir, "127.0.0.1", "IP:127.0.0.1")
    }

    /// A throw-away CA (`ca.crt`) and a server certificate (`server.crt`, `server.key`) it
    /// issued in `dir` for common name `cn` and subject alternative name `san`
    /// (`IP:127.0.0.1`, `DNS:registry-1.docker.io`), valid for a few days.
    pub fn issue(dir: &Path, cn: &str, san: &str) -> TlsFiles {
        let files = TlsFiles {
            ca_cert: TlsFiles::ca(dir, "trustgate test CA"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        };
        TlsFiles::server_pair(dir, cn, san, &files.server_cert, &files.server_key);
        files
    }

    /// A throw-away CA in `dir`: a P-256 `ca.key` and the self-signed `ca.crt` it names
    /// `/CN=<name>`, valid for a few days. Returns the certificate's path.
    pub fn ca(dir: &Path, name: &str) -> PathBuf {
        let (key, cert) = (dir.join("ca.key"), dir.join("ca.crt"));
        ec_key(&key);
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-x509", "-days", "30"])
                .arg("-subj")
                .arg(format!("/CN={name}"))
                .args(["-addext", "basicConstraints=critical,CA:true"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-key")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            b"",
            "openssl",
        );
        cert
    }

    /// A new key at `key` and a `serverAuth` certificate at `cert` for common name `cn` and
    /// subject alternative name `san`, issued by the CA [`TlsFiles::ca`] left in `dir`.
    pub fn server_pair(dir: &Path, cn: &str, san: &str, cert: &Path, key: &Path) {
        ec_key(key);
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-x509", "-days", "30"])
                .arg("-subj")
                .arg(format!("/CN={cn}"))
                .arg("-addext")
                .arg(format!("subjectAltName={san}"))
                .args(["-addext", "basicConstraints=critical,CA:false"])
                .args(["-addext", "extendedKeyUsage=serverAuth"])
                .arg("-key")
                .arg(key)
                .arg("-CA")
                .arg(dir.join("ca.crt"))
                .arg("-CAkey")
                .arg(dir.join("ca.key"))
                .arg("-out")
                .arg(cert),
            b"",
            "openssl",
        );
    }

    /// A P-256 key (`<name>.key`) and a `clientAuth` certificate (`<name>.cert`) for
    /// `subject` (`/O=Example/CN=ci-runner`), issued in `dir` by the CA [`TlsFiles::issue`]
    /// left there: the pair `curl --cert`/`--key` and `skopeo --cert-dir` use.
    pub fn issue_client(dir: &Path, name: &str, subject: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.cert")),
            dir.join(format!("{name}.key")),
        );
        ec_key(&key);
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-x509", "-days", "30", "-subj", subject])
                .args(["-addext", "basicConstraints=critical,CA:false"])
                .args(["-addext", "extendedKeyUsage=clientAuth"])
                .arg("-key")
                .arg(&key)
                .arg("-CA")
                .arg(dir.join("ca.crt"))
                .arg("-CAkey")
                .arg(dir.join("ca.key"))
                .arg("-out")
                .arg(&cert),
            b"",
            "openssl",
        );
        (cert, key)
    }
}

/// A new P-256 private key at `path` (PEM).
fn ec_key(path: &Path) {
    run_ok(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(path),
        b"",
        "openssl",
    );
}

// === time ===

/// UTC time `offset` from now as RFC 3339 (`2026-01-31T12:00:00Z`), for `--at`.
pub fn rfc3339_from_now(offset: Duration, forward: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let secs = if forward {
        now + offset.as_secs()
    } else {
        now - offset.as_secs()
    };
    rfc3339_from_unix(secs)
}

/// Unix seconds to RFC 3339 UTC, via the days-to-civil algorithm (H. Hinnant,
/// "chrono-Compatible Low-Level Date Algorithms"), to avoid a date crate in tests.
pub fn rfc3339_from_unix(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `docker info` within 15 s: the engine answers. Tests that need a Docker engine skip with
/// the returned reason where there is none.
pub fn docker_available() -> Result<(), String> {
    let output = Command::new("timeout")
        .args(["15", "docker", "info"])
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`docker info` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A signer tool `scripts/test` unpacks from Debian sid under `target/peers/root/usr/bin`
/// (`cosign`, `notation`), when it is there; otherwise why the caller skips, printed.
pub fn peer_bin(name: &str, what: &str) -> Option<std::path::PathBuf> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/peers/root/usr/bin")
        .join(name);
    if bin.is_file() {
        return Some(bin);
    }
    eprintln!(
        "skipped: no {name} at {} (scripts/test downloads Debian's {what} there)",
        bin.display()
    );
    None
}
