//! `trustgate serve` as a peer: a configuration written into a tempdir, the process spawned
//! on free loopback ports, ready once the admin listener's `/readyz` answers 200, killed on
//! drop. Its log (stdout and stderr) is kept for failure messages.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::http::{self, HttpResponse};
use super::oci::{Image, ACCEPT_ALL};
use super::{free_port, start_with_retries, Daemon, Ready};

/// A running `trustgate serve`.
pub struct Proxy {
    daemon: Daemon,
    port: u16,
    admin_port: u16,
    config: PathBuf,
    cache_dir: PathBuf,
    // Dropped after `daemon`, so the directory outlives the process using it.
    dir: TempDir,
}

impl Proxy {
    /// Starts the proxy with `body`: the configuration without `server` and `cache`, which
    /// this adds (free loopback ports, a cache directory in the proxy's tempdir).
    pub fn start(body: &str) -> Proxy {
        Proxy::launch(body, None, "1GiB")
    }

    /// Like [`Proxy::start`], with `server_more` (indented YAML lines, e.g. a `tls:` key)
    /// added to the `server` section.
    pub fn start_with_server(server_more: &str, body: &str) -> Proxy {
        Proxy::launch_with(server_more, body, None, "1GiB")
    }

    /// Like [`Proxy::start`], with `cache.max_size` set to `max_size` (e.g. `16MiB`).
    pub fn start_with_cache_size(body: &str, max_size: &str) -> Proxy {
        Proxy::launch(body, None, max_size)
    }

    /// Like [`Proxy::start`], with the cache in `cache_dir`: a second instance, or a restart,
    /// sharing a content store.
    pub fn start_with_cache(body: &str, cache_dir: &Path) -> Proxy {
        Proxy::launch(body, Some(cache_dir), "1GiB")
    }

    fn launch(body: &str, cache_dir: Option<&Path>, max_size: &str) -> Proxy {
        Proxy::launch_with("", body, cache_dir, max_size)
    }

    fn launch_with(
        server_more: &str,
        body: &str,
        cache_dir: Option<&Path>,
        max_size: &str,
    ) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir for trustgate");
        let config = dir.path().join("trustgate.yaml");
        let cache_dir = cache_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("data"));
        let mut listen_port = 0;
        let (daemon, admin_port) = start_with_retries("trustgate serve", |admin_port| {
            listen_port = free_port();
            let yaml = format!(
                "server:\n  listen: \"127.0.0.1:{listen_port}\"\n  admin_listen: \"127.0.0.1:{admin_port}\"\n{server_more}\
                 cache:\n  dir: {}\n  max_size: {max_size}\n{body}",
                serde_json::json!(cache_dir.to_str().expect("UTF-8 tempdir")),
            );
            fs::write(&config, yaml).expect("write trustgate config");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
            cmd.arg("serve").arg("--config").arg(&config);
            cmd.env(
                "TRUSTGATE_LOG",
                std::env::var("TEST_TRUSTGATE_LOG").unwrap_or_else(|_| "info".into()),
            );
            let daemon = Daemon::spawn(cmd, dir.path().join("trustgate.log"), "trustgate");
            let ready = Ready::Http(format!("http://127.0.0.1:{admin_port}/readyz"));
            (daemon, ready)
        });
        Proxy {
            daemon,
            port: listen_port,
            admin_port,
            config,
            cache_dir,
            dir,
        }
    }

    /// `127.0.0.1:<port>`, as clients name the registry.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host_port())
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The configuration file the proxy runs with (for `trustgate check` and friends).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The process id of `trustgate serve`.
    pub fn pid(&self) -> u32 {
        self.daemon.child.id()
    }

    /// The proxy's resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status of trustgate");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Everything the proxy logged so far.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// Sends SIGHUP and waits for the proxy to log the outcome: `true` when it reloaded,
    /// `false` when it kept the previous configuration.
    pub fn reload(&self) -> bool {
        const RELOADED: &str = "configuration reloaded";
        const FAILED: &str = "reload failed";
        let count = |what: &str| strip_ansi(&self.log()).matches(what).count();
        let (reloaded, failed) = (count(RELOADED), count(FAILED));
        let sent = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -HUP {}", self.pid());
        // A bound for a stuck process, not a timing assertion.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if count(RELOADED) > reloaded {
                return true;
            }
            if count(FAILED) > failed {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!(
            "no reload outcome logged after SIGHUP:\n{}",
            self.log_tail(30)
        );
    }

    /// The last `lines` lines of the log without colour escapes, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = strip_ansi(&self.log());
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A request to the registry listener; `path_and_query` starts with `/v2`.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let url = format!("{}{path_and_query}", self.url());
        http::request(method, &url, headers, body).unwrap_or_else(|e| {
            panic!(
                "{method} {url} failed: {e}\nproxy log:\n{}",
                self.log_tail(40)
            )
        })
    }

    /// A GET accepting every manifest type, as a pulling client sends it.
    pub fn pull(&self, path_and_query: &str) -> HttpResponse {
        self.request("GET", path_and_query, &[("Accept", ACCEPT_ALL)], b"")
    }

    /// `path` is served, with exactly `bytes`.
    pub fn expect_served(&self, path: &str, bytes: &[u8]) {
        let r = self.pull(path);
        assert_eq!(
            (r.status, r.body == bytes),
            (200, true),
            "GET {path}: {}\n{}",
            r.summary(),
            self.log_tail(20)
        );
    }

    /// `image` is served by `repo:tag`, by digest and blob by blob.
    pub fn expect_image_served(&self, repo: &str, tag: &str, image: &Image) {
        for reference in [tag, &image.manifest.digest] {
            self.expect_served(
                &format!("/v2/{repo}/manifests/{reference}"),
                &image.manifest.bytes,
            );
        }
        for blob in image.blobs() {
            self.expect_served(&format!("/v2/{repo}/blobs/{}", blob.digest), &blob.bytes);
        }
    }

    /// `image` is refused (403) by `repo:tag`, by digest and blob by blob, and the tag's
    /// error message holds every one of `phrases`.
    pub fn expect_refused(&self, repo: &str, tag: &str, image: &Image, phrases: &[&str]) {
        let r = self.pull(&format!("/v2/{repo}/manifests/{tag}"));
        assert_eq!(r.status, 403, "tag: {}", r.summary());
        let message = r.error_message().unwrap_or_default();
        for phrase in phrases {
            assert!(message.contains(phrase), "`{phrase}` not in {message:?}");
        }
        let paths = [format!("/v2/{repo}/manifests/{}", image.manifest.digest)]
            .into_iter()
            .chain(
                image
                    .blobs()
                    .into_iter()
                    .map(|b| format!("/v2/{repo}/blobs/{}", b.digest)),
            );
        for path in paths {
            let r = self.pull(&path);
            assert_eq!(r.status, 403, "GET {path}: {}", r.summary());
        }
    }

    /// The admin listener's `/metrics` text.
    pub fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.admin_url());
        let response = http::request("GET", &url, &[], b"")
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        assert_eq!(response.status, 200, "GET {url}: {}", response.summary());
        response.text()
    }

    /// The value of the series `name{labels}` exactly as exposed (labels in the order
    /// Prometheus prints them: sorted by name), or `None` when absent.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics(), series)
    }
}

/// The value of `series` (e.g. `trustgate_decisions_total{action="audit",result="unsigned"}`)
/// in Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
