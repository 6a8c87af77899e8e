//! The client configurations in `docs/clients.md`, against a real proxy: containerd's
//! `hosts.toml` mirrors for several registries through one trustgate (through `ctr`, on a
//! containerd of the test's own), registries.conf mirrors and rewrites (through skopeo, which
//! uses the same containers/image library as podman and CRI-O), and the plain "use trustgate
//! as the registry" form.
//!
//! The skopeo mirror test also shows the fallback the docs warn about: with the upstream
//! reachable, a tag trustgate refuses is pulled from the upstream anyway; with it unreachable
//! (egress blocked), it is not. tests/bypass.rs proves that fallback for dockerd, containerd
//! and podman, each configuration with the upstream's real name reachable and not.
//!
//! The containerd test needs root and containerd installed; it prints why it skips otherwise.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::clients::{self, Containerd};
use support::oci::Image;
use support::proxy::{metric_value, Proxy};
use support::{free_port, NotaryCli, NotaryServer, Registry};

/// The default upstream (Docker daemon mirrors and requests without `?ns=` go there).
const MAIN: &str = "registry.test";
/// A second upstream, reachable through containerd's `?ns=` only.
const OTHER: &str = "other.test";

/// Two upstream registries with a signed and an unsigned tag each, and trustgate verifying
/// both under `<registry>/signed/**`.
struct Env {
    proxy: Proxy,
    main: Registry,
    other: Registry,
    _notary: NotaryServer,
    /// A loopback port nothing listens on: an upstream behind blocked egress.
    blocked: u16,
}

impl Env {
    fn start() -> Env {
        let notary = NotaryServer::start();
        let cli = NotaryCli::for_server(&notary);
        let main = Registry::start();
        let other = Registry::start();
        for (registry, name) in [(&main, MAIN), (&other, OTHER)] {
            let image = Image::random(1);
            image.push(registry, "signed/app", "v1");
            Image::random(1).push(registry, "signed/app", "unsigned");
            let gun = format!("{name}/signed/app");
            cli.init(&gun);
            cli.addhash(&gun, "v1", image.manifest.size(), image.manifest.hex(), &[]);
        }
        let proxy = Proxy::start(&format!(
            r#"upstreams:
  - {{registry: "{MAIN}", url: "{}", default: true}}
  - {{registry: "{OTHER}", url: "{}"}}
notary_servers:
  - {{name: local, url: "{}", ttl: 30s}}
policy:
  default: deny
  rules:
    - {{match: "{MAIN}/signed/**", action: verify, notary: local}}
    - {{match: "{OTHER}/signed/**", action: verify, notary: local}}
"#,
            main.url(),
            other.url(),
            notary.url()
        ));
        Env {
            proxy,
            main,
            other,
            _notary: notary,
            blocked: free_port(),
        }
    }

    fn verified(&self) -> f64 {
        metric_value(
            &self.proxy.metrics(),
            r#"trustgate_decisions_total{action="verify",result="verified"}"#,
        )
        .unwrap_or(0.0)
    }

    fn refused_unsigned(&self) -> f64 {
        metric_value(
            &self.proxy.metrics(),
            r#"trustgate_decisions_total{action="verify",result="unsigned"}"#,
        )
        .unwrap_or(0.0)
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let mut wrapped = Command::new("timeout");
    wrapped
        .arg("120")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped
        .output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()))
}

// === containerd: hosts.toml ===

/// `ctr` on a containerd of the test's own, in one namespace.
struct Ctr<'a> {
    containerd: &'a Containerd,
    namespace: &'a str,
}

impl Ctr<'_> {
    fn pull(&self, hosts_dir: &Path, image: &str) -> Output {
        run(self
            .containerd
            .ctr(Command::new("ctr"), self.namespace)
            .args(["images", "pull", "--snapshotter", "native"])
            .args(["--platform", "linux/amd64"])
            .arg("--hosts-dir")
            .arg(hosts_dir)
            .arg(image))
    }
}

/// Writes `<dir>/<registry>/hosts.toml`: trustgate as the mirror, `server` as the fallback
/// (on the upstream, it is the bypass docs/clients.md warns about).
fn hosts_toml(dir: &Path, registry: &str, server: &str, trustgate: &str) {
    let path = dir.join(registry);
    fs::create_dir_all(&path).unwrap();
    fs::write(
        path.join("hosts.toml"),
        format!(
            r#"server = "{server}"

[host."{trustgate}"]
  capabilities = ["pull", "resolve"]
"#
        ),
    )
    .unwrap();
}

#[test]
fn containerd_hosts_toml_mirrors_several_registries() {
    if let Some(why) = clients::missing(&["containerd", "ctr"]) {
        eprintln!("skipping containerd_hosts_toml_mirrors_several_registries: {why}");
        return;
    }
    let env = Env::start();
    let containerd = Containerd::start();
    let ctr = Ctr {
        containerd: &containerd,
        namespace: "several-registries",
    };
    let trustgate = env.proxy.url();
    let blocked = format!("http://127.0.0.1:{}", env.blocked);

    // Egress to the upstreams blocked: only what trustgate serves can be pulled.
    let dir = tempfile::tempdir().unwrap();
    hosts_toml(dir.path(), MAIN, &blocked, &trustgate);
    hosts_toml(dir.path(), OTHER, &blocked, &trustgate);
    let before = env.verified();
    for registry in [MAIN, OTHER] {
        let image = format!("{registry}/signed/app:v1");
        let pulled = ctr.pull(dir.path(), &image);
        assert!(
            pulled.status.success(),
            "ctr pull {image} through trustgate failed:\n{}\nproxy log:\n{}",
            text(&pulled),
            env.proxy.log_tail(30)
        );
        let refused = format!("{registry}/signed/app:unsigned");
        let pulled = ctr.pull(dir.path(), &refused);
        assert!(
            !pulled.status.success(),
            "ctr pulled {refused}, which trustgate refuses, with the upstream blocked:\n{}",
            text(&pulled)
        );
    }
    assert!(
        env.verified() >= before + 2.0,
        "the pulls did not go through trustgate's verify rule"
    );
    let log = env.proxy.log();
    assert!(
        log.contains(OTHER),
        "the second registry was not reached by ?ns=:\n{}",
        env.proxy.log_tail(30)
    );
    let _ = (&env.main, &env.other);
}

// === containers/image: registries.conf ===

/// A registries.conf for `registry.test`: `location` the primary (the upstream), and
/// trustgate as its mirror, as docs/clients.md shows it.
fn registries_conf_mirror(dir: &Path, location: &str, trustgate: &str) -> PathBuf {
    let path = dir.join("registries.conf");
    fs::write(
        &path,
        format!(
            r#"unqualified-search-registries = []

[[registry]]
prefix = "{MAIN}"
location = "{location}"
insecure = true

[[registry.mirror]]
location = "{trustgate}"
insecure = true
"#
        ),
    )
    .unwrap();
    path
}

/// A registries.conf that makes trustgate *the* location of `registry.test`: no fallback.
fn registries_conf_rewrite(dir: &Path, trustgate: &str) -> PathBuf {
    let path = dir.join("registries-rewrite.conf");
    fs::write(
        &path,
        format!(
            r#"unqualified-search-registries = []

[[registry]]
prefix = "{MAIN}"
location = "{trustgate}"
insecure = true
"#
        ),
    )
    .unwrap();
    path
}

fn skopeo_copy(conf: &Path, image: &str, out: &Path) -> Output {
    run(Command::new("skopeo")
        .arg("--registries-conf")
        .arg(conf)
        .args(["copy", "--retry-times", "0"])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", out.display())))
}

#[test]
fn registries_conf_mirror_and_rewrite_with_skopeo() {
    let env = Env::start();
    let dir = tempfile::tempdir().unwrap();
    let trustgate = env.proxy.host_port();
    let blocked = format!("127.0.0.1:{}", env.blocked);
    let signed = format!("{MAIN}/signed/app:v1");
    let unsigned = format!("{MAIN}/signed/app:unsigned");

    // Mirror, upstream blocked: signed through trustgate, unsigned nowhere.
    let conf = registries_conf_mirror(dir.path(), &blocked, &trustgate);
    let before = env.verified();
    let out = skopeo_copy(&conf, &signed, &dir.path().join("a"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.verified() > before, "not served by trustgate");
    let out = skopeo_copy(&conf, &unsigned, &dir.path().join("b"));
    assert!(!out.status.success(), "unsigned pulled: {}", text(&out));

    // Mirror, upstream reachable: the refusal falls back to the upstream (the bypass).
    let conf = registries_conf_mirror(dir.path(), &env.main.host_port(), &trustgate);
    let refused_before = env.refused_unsigned();
    let out = skopeo_copy(&conf, &unsigned, &dir.path().join("c"));
    assert!(
        env.refused_unsigned() > refused_before,
        "mirror not tried first"
    );
    assert!(
        out.status.success(),
        "containers/image no longer falls back from a refusing mirror; update \
         docs/clients.md:\n{}",
        text(&out)
    );

    // Rewrite: trustgate is the registry's location, so there is nothing to fall back to.
    let conf = registries_conf_rewrite(dir.path(), &trustgate);
    let out = skopeo_copy(&conf, &signed, &dir.path().join("d"));
    assert!(out.status.success(), "{}", text(&out));
    let out = skopeo_copy(&conf, &unsigned, &dir.path().join("e"));
    assert!(!out.status.success(), "unsigned pulled: {}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("denied"),
        "refused, but not by trustgate: {}",
        text(&out)
    );
}

// === trustgate as the registry ===

#[test]
fn trustgate_as_the_registry() {
    let env = Env::start();
    let dir = tempfile::tempdir().unwrap();
    let host = env.proxy.host_port();
    let out = support::oci::skopeo_pull(&host, "signed/app:v1", &dir.path().join("a"));
    assert!(out.status.success(), "{}", text(&out));
    let out = support::oci::skopeo_pull(&host, "signed/app:unsigned", &dir.path().join("b"));
    assert!(!out.status.success(), "unsigned pulled: {}", text(&out));
}
