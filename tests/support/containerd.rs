//! containerd 2.1 itself (Debian sid's package, unpacked by `scripts/test` under
//! `target/peers`) as an own instance: own root, state and sockets, never the machine's
//! containerd, the CRI plugin off, its `bindir` image verifier reading `verifiers/` (empty:
//! nothing is verified). Pulls are `ctr image pull --hosts-dir`, so the test decides where
//! containerd sends a registry's requests.
//!
//! Needs root (containerd mounts snapshots): [`containerd_bin`] says why a test skips.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::cosign::REGISTRY;
use super::run_bounded;

/// The unpacked containerd 2.1 (and its `ctr`), when `scripts/test` installed it and this
/// process may run it.
pub fn containerd_bin() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/root/usr/bin");
    if !dir.join("containerd").is_file() || !dir.join("ctr").is_file() {
        eprintln!(
            "skipped: no containerd at {} (scripts/test downloads Debian's containerd 2.1 there)",
            dir.display()
        );
        return None;
    }
    let root = super::clients::is_root();
    if !root {
        eprintln!("skipped: containerd needs root (it mounts snapshots)");
        return None;
    }
    Some(dir)
}

/// An own containerd: config `version = 3`, everything under its tempdir, the CRI plugin off,
/// the bindir image verifier reading `verifiers/`. Killed on drop.
pub struct Containerd {
    child: Child,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start(bin: &Path) -> Containerd {
        let dir = tempfile::tempdir().expect("tempdir for containerd");
        let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        fs::create_dir_all(p("verifiers")).unwrap();
        let config = format!(
            r#"version = 3
root = {root:?}
state = {state:?}
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = {sock:?}
[ttrpc]
  address = {ttrpc:?}
[debug]
  address = {debug:?}
[plugins."io.containerd.internal.v1.opt"]
  path = {opt:?}
[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = {verifiers:?}
  max_verifiers = 10
  per_verifier_timeout = "10s"
"#,
            root = p("root"),
            state = p("state"),
            sock = p("c.sock"),
            ttrpc = p("c.sock.ttrpc"),
            debug = p("debug.sock"),
            opt = p("opt"),
            verifiers = p("verifiers"),
        );
        fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new(bin.join("containerd"))
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let mut containerd = Containerd {
            child,
            bin: bin.to_owned(),
            dir,
        };
        let deadline = Instant::now() + super::READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = containerd.child.try_wait() {
                panic!("containerd exited: {status}\n{}", containerd.log());
            }
            if containerd.ctr(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not start:\n{}",
                containerd.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.bin.join("ctr"));
        cmd.arg("-a").arg(self.path("c.sock")).args(["-n", "test"]);
        cmd.args(args);
        run_bounded(&mut cmd, b"", "containerd")
    }

    /// `ctr image pull --hosts-dir <hosts> <reference>`: whether it succeeded, what it
    /// printed (stdout and stderr), and how long it took.
    pub fn pull(&self, hosts: &Path, reference: &str) -> (bool, String, Duration) {
        let started = Instant::now();
        let out = self.ctr(&[
            "image",
            "pull",
            "--hosts-dir",
            hosts.to_str().unwrap(),
            reference,
        ]);
        let elapsed = started.elapsed();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text, elapsed)
    }

    pub fn remove_image(&self, reference: &str) {
        let out = self.ctr(&["image", "rm", "--sync", reference]);
        assert!(
            out.status.success(),
            "ctr image rm {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn images(&self) -> String {
        String::from_utf8_lossy(&self.ctr(&["image", "ls", "-q"]).stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hosts directory for `registry.test`: `server` is `upstream` (containerd's last resort),
/// with `mirror` tried first when given (both plain HTTP for `http://` URLs).
pub fn hosts_dir(dir: &Path, upstream: &str, mirror: Option<&str>) -> PathBuf {
    let mut toml = format!("server = \"{upstream}\"\n");
    if let Some(mirror) = mirror {
        toml.push_str(&format!(
            "\n[host.\"{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ));
    }
    fs::create_dir_all(dir.join(REGISTRY)).unwrap();
    fs::write(dir.join(REGISTRY).join("hosts.toml"), toml).unwrap();
    dir.to_owned()
}
