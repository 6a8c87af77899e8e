//! Real container clients as instances of their own, never the machine's daemons: containerd
//! (the machine's binary, its own root, state and sockets), dockerd (its own data-root,
//! exec-root, pidfile and socket, no networking, vfs, on that containerd), podman (its own
//! storage, vfs), and an upstream those clients reach by its real name.
//!
//! The upstream stand-in ([`StandIn`]) is a TLS `docker-registry` on port 443 of a loopback
//! address of its own (`127.x.y.z`, so it never meets another test's `127.0.0.1:443`), with a
//! certificate for the upstream's real name from a throw-away CA. A client reaches it through
//! [`StandIn::command`]: the client runs under `unshare -m` with a private `/etc/hosts` (the
//! name resolves to the stand-in's address) bind-mounted in its own mount namespace, and
//! `SSL_CERT_FILE` naming the CA. Nothing of the machine's network, name resolution or trust
//! store changes. Stopped, the stand-in is an upstream behind blocked egress: the name still
//! resolves, nothing listens.
//!
//! All of this needs root (mount namespaces, port 443, the daemons); [`missing`] says why a
//! test has to skip.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::oci::random_bytes;
use super::run_bounded;

/// How long a daemon may take to answer after being spawned.
const DAEMON_READY: Duration = Duration::from_secs(60);
/// How long a stopped daemon may take to exit after SIGTERM before it is killed.
const DAEMON_STOP: Duration = Duration::from_secs(15);

/// Why these clients cannot run here, or `None`: not root, or one of `binaries` is not on
/// `PATH` (`unshare` and `mount` are always needed).
pub fn missing(binaries: &[&str]) -> Option<String> {
    if !is_root() {
        return Some("not running as root (mount namespaces, port 443, own daemons)".into());
    }
    let absent: Vec<&str> = ["unshare", "mount", "openssl", "docker-registry"]
        .iter()
        .chain(binaries)
        .copied()
        .filter(|b| !on_path(b))
        .collect();
    (!absent.is_empty()).then(|| format!("not installed: {}", absent.join(", ")))
}

/// Whether this process runs as root (`Uid:` in `/proc/self/status`, real then effective).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `binary` is an executable file in a `PATH` directory.
pub fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(binary)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// stdout and stderr of `output`, as one text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The last non-empty line of `output`'s stderr (where every client writes its final error),
/// else of stdout.
pub fn last_line(output: &Output) -> String {
    let pick = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    pick(&output.stderr)
        .or_else(|| pick(&output.stdout))
        .unwrap_or_default()
}

/// Runs a command that writes files: panics with its output when it fails.
fn run_ok(cmd: &mut Command, package: &str) -> Output {
    let out = run_bounded(cmd, b"", package);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

// === a daemon ===

/// A long-running child with its output in a log file. Drop sends SIGTERM (a daemon cleans up
/// after itself), waits, then kills it.
pub struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn spawn(mut cmd: Command, log: PathBuf) -> Peer {
        let file = fs::File::create(&log).expect("create daemon log");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        Peer { child, log }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `ready` until it holds, panicking with the log when the daemon exits or
    /// [`DAEMON_READY`] passes.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + DAEMON_READY;
        while Instant::now() < deadline {
            if !self.alive() {
                panic!("{what} exited before it was ready:\n{}", self.log_text());
            }
            if ready() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{what} not ready after {}s:\n{}",
            DAEMON_READY.as_secs(),
            self.log_text()
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if !self.alive() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + DAEMON_STOP;
        while Instant::now() < deadline && self.alive() {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === the upstream, by its real name ===

/// A TLS `docker-registry` answering as `name` (e.g. `registry-1.docker.io`) on
/// `<address>:443`, serving another registry's storage read-only, and the private name
/// resolution and CA bundle that clients reach it with.
pub struct StandIn {
    name: String,
    address: Ipv4Addr,
    storage: PathBuf,
    peer: Option<Peer>,
    // Dropped after `peer`.
    dir: TempDir,
}

impl StandIn {
    /// Prepares the stand-in for `name` over `storage` (a `docker-registry` root directory).
    /// It is not listening until [`StandIn::start`]: to a client, `name` is then an upstream
    /// behind blocked egress.
    pub fn new(name: &str, storage: &Path) -> StandIn {
        let dir = tempfile::tempdir().expect("tempdir for the upstream stand-in");
        let address = free_loopback_443();
        certificate(dir.path(), name);
        // The machine's own entries stay (its host name, localhost), the upstream's go.
        let machine = fs::read_to_string("/etc/hosts").unwrap_or_default();
        let mut hosts: String = machine
            .lines()
            .filter(|l| !l.split_whitespace().skip(1).any(|n| n == name))
            .map(|l| format!("{l}\n"))
            .collect();
        hosts.push_str(&format!("{address} {name}\n"));
        fs::write(dir.path().join("hosts"), hosts).expect("write private hosts");
        fs::create_dir_all(dir.path().join("empty")).expect("create empty dir");
        let yaml = serde_json::json!({
            "version": "0.1",
            "log": {"level": "error"},
            "storage": {
                "filesystem": {"rootdirectory": storage.to_str().expect("UTF-8 tempdir")},
                "maintenance": {
                    "uploadpurging": {"enabled": false},
                    "readonly": {"enabled": true},
                },
            },
            "http": {
                "addr": format!("{address}:443"),
                "tls": {
                    "certificate": dir.path().join("server.crt"),
                    "key": dir.path().join("server.key"),
                },
            },
        });
        fs::write(dir.path().join("registry.yml"), yaml.to_string())
            .expect("write stand-in config");
        StandIn {
            name: name.to_owned(),
            address,
            storage: storage.to_owned(),
            peer: None,
            dir,
        }
    }

    /// The upstream's name, as clients hard-code it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `https://<name>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.name)
    }

    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The throw-away CA (PEM) that issued the stand-in's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Starts listening (egress open).
    pub fn start(&mut self) {
        if self.peer.is_some() {
            return;
        }
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(self.dir.path().join("registry.yml"));
        let mut peer = Peer::spawn(cmd, self.dir.path().join("registry.log"));
        let addr = SocketAddr::from((self.address, 443));
        peer.wait_until("the upstream stand-in", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        });
        self.peer = Some(peer);
    }

    /// Stops listening (egress blocked: connections are refused).
    pub fn stop(&mut self) {
        self.peer = None;
    }

    pub fn is_listening(&self) -> bool {
        self.peer.is_some()
    }

    /// `program` run the way a client on a node with this upstream runs: in a mount namespace
    /// of its own where `/etc/hosts` resolves [`StandIn::name`] to the stand-in's address (and
    /// `/etc/containers/registries.conf.d` is empty, so only the test's registries.conf
    /// counts), with `SSL_CERT_FILE` naming the CA.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("unshare");
        // unshare makes the new namespace's mounts private: nothing propagates back.
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                r#"mount --bind "$1" /etc/hosts || exit 97
if [ -d /etc/containers/registries.conf.d ]; then
  mount --bind "$2" /etc/containers/registries.conf.d || exit 97
fi
shift 2; exec "$@""#,
            )
            .arg("sh")
            .arg(self.dir.path().join("hosts"))
            .arg(self.dir.path().join("empty"))
            .arg(program)
            .env("SSL_CERT_FILE", self.ca_cert());
        cmd
    }

    /// The storage it serves.
    pub fn storage(&self) -> &Path {
        &self.storage
    }
}

/// A loopback address other than `127.0.0.1` whose port 443 is free.
fn free_loopback_443() -> Ipv4Addr {
    for _ in 0..20 {
        let r = random_bytes(3);
        let address = Ipv4Addr::new(127, 1 + r[0] % 254, r[1], 1 + r[2] % 254);
        if TcpListener::bind((address, 443)).is_ok() {
            return address;
        }
    }
    panic!("no free port 443 on 20 random loopback addresses");
}

/// A throw-away CA (`ca.crt`) and a certificate for `name` it issued (`server.crt`,
/// `server.key`) in `dir`.
fn certificate(dir: &Path, name: &str) {
    super::TlsFiles::issue(dir, name, &format!("DNS:{name}"));
}

// === containerd ===

/// `containerd` with its own root, state, sockets and `opt` directory, the CRI plugin off,
/// and content isolated per namespace (a namespace sees only what was pulled into it).
pub struct Containerd {
    socket: PathBuf,
    version: String,
    peer: Peer,
    // Dropped after `peer`.
    dir: TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempfile::tempdir().expect("tempdir for containerd");
        let p = |name: &str| dir.path().join(name);
        let socket = p("containerd.sock");
        let config = format!(
            r#"version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[debug]
  address = {debug}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"
"#,
            root = toml_str(&p("root")),
            state = toml_str(&p("state")),
            grpc = toml_str(&socket),
            ttrpc = toml_str(&p("containerd.sock.ttrpc")),
            debug = toml_str(&p("debug.sock")),
            opt = toml_str(&p("opt")),
        );
        fs::write(p("config.toml"), config).expect("write containerd config");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(p("config.toml"));
        let mut peer = Peer::spawn(cmd, p("containerd.log"));
        let mut version = String::new();
        peer.wait_until("containerd", || {
            let out = Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .arg("version")
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    version = server_version(&String::from_utf8_lossy(&o.stdout));
                    true
                }
                _ => false,
            }
        });
        Containerd {
            socket,
            version,
            peer,
            dir,
        }
    }

    /// The gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's version as `ctr version` prints it (`1.6.20~ds1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `(major, minor)` of [`Containerd::version`].
    pub fn major_minor(&self) -> (u32, u32) {
        let mut parts = self
            .version
            .trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// `ctr` (`Command::new("ctr")` or [`StandIn::command`]`("ctr")`) on this instance, in
    /// `namespace`.
    pub fn ctr(&self, mut cmd: Command, namespace: &str) -> Command {
        cmd.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(namespace);
        cmd
    }

    pub fn log_text(&self) -> String {
        self.peer.log_text()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The `Version:` under `Server:` in `ctr version` output.
fn server_version(out: &str) -> String {
    out.split("Server:")
        .nth(1)
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("Version:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// `path` as a TOML basic string.
fn toml_str(path: &Path) -> String {
    serde_json::json!(path.to_str().expect("UTF-8 tempdir")).to_string()
}

// === dockerd ===

/// `dockerd` with its own data-root, exec-root, pidfile, socket and key file, no networking
/// (`bridge: none`, no iptables, no userland proxy), vfs storage, on a [`Containerd`] of the test's (never the
/// machine's).
pub struct Dockerd {
    socket: PathBuf,
    version: String,
    peer: Peer,
    // Dropped after `peer`.
    dir: TempDir,
}

impl Dockerd {
    /// `dockerd` is the command that runs it (`Command::new("dockerd")`, or
    /// [`StandIn::command`]`("dockerd")`), `major` its major version ([`dockerd_major`]);
    /// `extra` is merged into daemon.json (e.g. `registry-mirrors`, `features`).
    pub fn start(
        dockerd: Command,
        major: u32,
        containerd: &Containerd,
        extra: serde_json::Value,
    ) -> Dockerd {
        let dir = tempfile::tempdir().expect("tempdir for dockerd");
        let p = |name: &str| dir.path().join(name);
        let socket = p("docker.sock");
        let mut config = serde_json::json!({
            "data-root": p("data"),
            "exec-root": p("exec"),
            "pidfile": p("docker.pid"),
            "hosts": [format!("unix://{}", socket.display())],
            "containerd": containerd.socket(),
            "containerd-namespace": "trustgate-test",
            "containerd-plugins-namespace": "trustgate-test-plugins",
            "bridge": "none",
            "iptables": false,
            "ip6tables": false,
            "ip-forward": false,
            "ip-masq": false,
            "userland-proxy": false,
            "storage-driver": "vfs",
            "log-level": "info",
        });
        if major < 23 {
            // Its trust key, which dockerd before 23 otherwise writes to /etc/docker.
            config["deprecated-key-path"] = serde_json::json!(p("key.json"));
        }
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        fs::write(p("daemon.json"), config.to_string()).expect("write daemon.json");
        let mut cmd = dockerd;
        cmd.arg("--config-file").arg(p("daemon.json"));
        let mut peer = Peer::spawn(cmd, p("dockerd.log"));
        let mut version = String::new();
        let cli = p("cli");
        peer.wait_until("dockerd", || {
            let out = Dockerd::cli_for(&socket, &cli)
                .args(["version", "--format", "{{.Server.Version}}"])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    version = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                    true
                }
                _ => false,
            }
        });
        Dockerd {
            socket,
            version,
            peer,
            dir,
        }
    }

    fn cli_for(socket: &Path, config_dir: &Path) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", config_dir)
            .arg("--host")
            .arg(format!("unix://{}", socket.display()));
        cmd
    }

    /// The `docker` CLI on this daemon, with a client configuration of its own.
    pub fn docker(&self) -> Command {
        Dockerd::cli_for(&self.socket, &self.dir.path().join("cli"))
    }

    /// The server version (`20.10.24+dfsg1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn log_text(&self) -> String {
        self.peer.log_text()
    }
}

/// The major version of `<dockerd> --version` ("Docker version 20.10.24+dfsg1, build ..."),
/// or 0 when it cannot be read.
pub fn dockerd_major(dockerd: &Path) -> u32 {
    Command::new(dockerd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.split('.').next().and_then(|m| m.parse().ok()))
        })
        .unwrap_or(0)
}

// === podman ===

/// podman with its own storage (vfs), run root, tmpdir, no events, cgroupfs, and the
/// registries.conf given per call.
pub struct Podman {
    dir: TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        Podman {
            dir: tempfile::tempdir().expect("tempdir for podman"),
        }
    }

    /// `podman` (`Command::new("podman")` or [`StandIn::command`]`("podman")`) on this
    /// storage, with `registries_conf`.
    pub fn podman(&self, mut podman: Command, registries_conf: &Path) -> Command {
        let p = |name: &str| self.dir.path().join(name);
        podman
            .env("CONTAINERS_REGISTRIES_CONF", registries_conf)
            .arg("--root")
            .arg(p("root"))
            .arg("--runroot")
            .arg(p("run"))
            .arg("--tmpdir")
            .arg(p("tmp"))
            .args(["--storage-driver", "vfs"])
            .args(["--events-backend", "none"])
            .args(["--cgroup-manager", "cgroupfs"]);
        podman
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Podman {
    fn default() -> Podman {
        Podman::new()
    }
}
