//! The mirror bypass, proven with real clients: trustgate as a *mirror* refuses an unsigned
//! image, and the client fetches it from the upstream itself whenever it can reach it.
//!
//! Each client is an instance of its own on loopback (`support::clients`): dockerd with
//! `registry-mirrors` (the machine's, and Debian sid's from `target/peers` where `scripts/test`
//! unpacked it: its legacy and its containerd image store), containerd 1.6 through `ctr` with
//! `hosts.toml`, podman with `registries.conf`, in the forms users write (the bypass-prone ones
//! and the fixed ones), and dockerd addressing trustgate as the registry. Each
//! form runs twice: with egress to the upstream blocked (the upstream's real name resolves,
//! nothing listens) and open (a TLS `docker-registry` answers as `registry-1.docker.io`, with
//! the same content trustgate's upstream has). Per cell the test asserts:
//!
//! - whether the signed image got pulled, and whether trustgate served it;
//! - whether the unsigned image got pulled (the bypass), and whether trustgate refused it;
//! - what the user sees on the refusal, and that trustgate's reason reaches the user wherever
//!   the client shows it.
//!
//! Each test prints its table as markdown (`cargo test --test bypass -- --nocapture`). A test
//! whose client is not installed, or that does not run as root, says so and passes.

mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::clients::{self, last_line, text, Containerd, Dockerd, Podman, StandIn};
use support::oci::Image;
use support::proxy::Proxy;
use support::{run_bounded, NotaryCli, NotaryServer, Registry};

/// Docker Hub's name in references, and the host its clients hard-code.
const HUB: &str = "docker.io";
const HUB_HOST: &str = "registry-1.docker.io";
/// The repository: `v1` is signed (Notary v1), `unsigned` is not.
const REPO: &str = "signed/app";

// === the world: upstream, trust server, trustgate, the upstream's stand-in ===

/// An upstream with a signed and an unsigned tag, trustgate verifying `docker.io/signed/**`
/// against it (its default upstream, as mirrors without `?ns=` need), and the stand-in that
/// serves the same storage as `registry-1.docker.io` once started.
struct World {
    proxy: Proxy,
    standin: StandIn,
    signed: Image,
    unsigned: Image,
    _upstream: Registry,
    _notary: NotaryServer,
}

impl World {
    fn start() -> World {
        let notary = NotaryServer::start();
        let upstream = Registry::start();
        let signed = Image::random(1);
        signed.push(&upstream, REPO, "v1");
        let unsigned = Image::random(1);
        unsigned.push(&upstream, REPO, "unsigned");
        let cli = NotaryCli::for_server(&notary);
        let gun = format!("{HUB}/{REPO}");
        cli.init(&gun);
        cli.addhash(
            &gun,
            "v1",
            signed.manifest.size(),
            signed.manifest.hex(),
            &[],
        );
        let proxy = Proxy::start(&format!(
            r#"upstreams:
  - {{registry: "{HUB}", url: "{}", default: true}}
notary_servers:
  - {{name: local, url: "{}", ttl: 30s}}
policy:
  default: deny
  rules:
    - {{match: "{HUB}/signed/**", action: verify, notary: local}}
"#,
            upstream.url(),
            notary.url()
        ));
        let standin = StandIn::new(HUB_HOST, &upstream.data_dir());
        World {
            proxy,
            standin,
            signed,
            unsigned,
            _upstream: upstream,
            _notary: notary,
        }
    }

    /// trustgate's verify decisions so far: (verified, refused for any reason).
    fn decisions(&self) -> (f64, f64) {
        let prefix = r#"trustgate_decisions_total{action="verify",result=""#;
        let (mut verified, mut refused) = (0.0, 0.0);
        for line in self.proxy.metrics().lines() {
            let Some(rest) = line.strip_prefix(prefix) else {
                continue;
            };
            let Some((result, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            if result == "verified" {
                verified += value;
            } else {
                refused += value;
            }
        }
        (verified, refused)
    }

    /// The start of trustgate's refusal message for the unsigned tag.
    fn reason(&self) -> String {
        format!("{HUB}/{REPO}:unsigned is not signed")
    }

    fn egress(&self) -> Egress {
        if self.standin.is_listening() {
            Egress::Open
        } else {
            Egress::Blocked
        }
    }
}

// === one cell of the matrix ===

/// Whether the client can reach the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Egress {
    /// `registry-1.docker.io` resolves to an address where nothing listens.
    Blocked,
    /// The TLS stand-in answers as `registry-1.docker.io`.
    Open,
}

impl Egress {
    fn label(self) -> &'static str {
        match self {
            Egress::Blocked => "blocked",
            Egress::Open => "open",
        }
    }
}

/// What one client did with one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    /// The signed image is in the client's store.
    signed: bool,
    /// trustgate verified and served it.
    signed_via_trustgate: bool,
    /// The unsigned image is in the client's store: the bypass.
    unsigned: bool,
    /// trustgate was asked for it and refused.
    refused: bool,
}

impl Seen {
    /// Signed pulled through trustgate, unsigned refused there and not pulled: enforcement.
    const ENFORCED: Seen = Seen {
        signed: true,
        signed_via_trustgate: true,
        unsigned: false,
        refused: true,
    };
    /// Signed through trustgate, unsigned refused there and then pulled from the upstream.
    const FELL_BACK: Seen = Seen {
        signed: true,
        signed_via_trustgate: true,
        unsigned: true,
        refused: true,
    };
    /// trustgate never asked: both pulled straight from the upstream.
    const AROUND: Seen = Seen {
        signed: true,
        signed_via_trustgate: false,
        unsigned: true,
        refused: false,
    };
    /// trustgate never asked, and the upstream unreachable: nothing pulled at all.
    const NOTHING: Seen = Seen {
        signed: false,
        signed_via_trustgate: false,
        unsigned: false,
        refused: false,
    };
}

struct Cell {
    client: String,
    form: String,
    egress: Egress,
    seen: Seen,
    /// The client's last line on the unsigned pull: its error when it failed.
    shown: String,
    /// The client's last line on the signed pull, when that failed.
    signed_shown: Option<String>,
    /// Everything the client printed on both pulls, for failure messages.
    output: String,
}

impl Cell {
    fn row(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let shown = if self.seen.unsigned {
            "(pulled from the upstream)".to_owned()
        } else {
            format!("`{}`", self.shown.replace('|', "\\|"))
        };
        let signed = match (&self.signed_shown, self.seen.signed_via_trustgate) {
            (Some(error), _) => format!("**no**: `{}`", error.replace('|', "\\|")),
            (None, true) => "yes, by trustgate".to_owned(),
            (None, false) => "yes, from the upstream".to_owned(),
        };
        format!(
            "| {} | {} | {} | {signed} | {} | {} | {shown} |",
            self.client,
            self.form,
            self.egress.label(),
            if self.seen.unsigned {
                "**yes (bypass)**"
            } else {
                "no"
            },
            yes(self.seen.refused),
        )
    }
}

/// Pulls the signed then the unsigned reference with `pull`, and reads the outcome from the
/// client's store (`has`) and from trustgate's decisions.
fn cell(
    world: &World,
    client: &str,
    form: &str,
    refs: [&str; 2],
    mut pull: impl FnMut(&str) -> Output,
    has: impl Fn(&str, &Image) -> bool,
) -> Cell {
    let before = world.decisions();
    let signed_out = pull(refs[0]);
    let middle = world.decisions();
    let unsigned_out = pull(refs[1]);
    let after = world.decisions();
    let seen = Seen {
        signed: has(refs[0], &world.signed),
        signed_via_trustgate: middle.0 > before.0,
        unsigned: has(refs[1], &world.unsigned),
        refused: after.1 > middle.1,
    };
    Cell {
        client: client.to_owned(),
        form: form.to_owned(),
        egress: world.egress(),
        seen,
        shown: last_line(&unsigned_out),
        signed_shown: (!seen.signed).then(|| last_line(&signed_out)),
        output: format!(
            "$ pull {}\n{}\n$ pull {}\n{}",
            refs[0],
            text(&signed_out),
            refs[1],
            text(&unsigned_out)
        ),
    }
}

/// Checks every cell against `expected`, prints the table, and panics listing every cell that
/// differs (and every failed message check in `problems`).
fn report(
    title: &str,
    cells: &[Cell],
    expected: impl Fn(&Cell) -> Seen,
    mut problems: Vec<String>,
) {
    let mut table = format!(
        "\n{title}\n\n| client | configuration | upstream | signed pulled | unsigned pulled | \
         trustgate refused it | the user sees (unsigned pull) |\n|---|---|---|---|---|---|---|\n"
    );
    for cell in cells {
        let _ = writeln!(table, "{}", cell.row());
        let want = expected(cell);
        if cell.seen != want {
            problems.push(format!(
                "{} / {} / egress {}: expected {want:?}, saw {:?}\n{}",
                cell.client,
                cell.form,
                cell.egress.label(),
                cell.seen,
                cell.output
            ));
        }
    }
    eprintln!("{table}");
    assert!(
        problems.is_empty(),
        "{title}: {} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

fn skip(test: &str, binaries: &[&str]) -> bool {
    match clients::missing(binaries) {
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            true
        }
        None => false,
    }
}

fn run(cmd: &mut Command, package: &str) -> Output {
    run_bounded(cmd, b"", package)
}

// === dockerd: registry-mirrors ===

/// The dockerd binaries there are: the machine's (`dockerd` on `PATH`), and Debian sid's,
/// which `scripts/test` unpacks under `target/peers` (it has the containerd image store).
fn dockerds() -> Vec<PathBuf> {
    let mut found = Vec::new();
    if clients::on_path("dockerd") {
        found.push(PathBuf::from("dockerd"));
    }
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/root/usr/sbin/dockerd");
    if peers.is_file() {
        found.push(peers);
    }
    found
}

/// Where dockerd keeps images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    /// The graph drivers (vfs here): dockerd's own registry client.
    Legacy,
    /// The containerd image store (dockerd 24 and later): containerd's resolver.
    Containerd,
}

#[test]
fn dockerd_registry_mirrors_fall_back_to_docker_hub() {
    let test = "dockerd_registry_mirrors_fall_back_to_docker_hub";
    if skip(test, &["docker", "containerd", "ctr"]) {
        return;
    }
    let binaries = dockerds();
    if binaries.is_empty() {
        eprintln!("skipping {test}: no dockerd (neither on PATH nor under target/peers)");
        return;
    }
    let mut world = World::start();
    let containerd = Containerd::start();
    let mut cells = Vec::new();
    let mut problems = Vec::new();
    let mut runs = 0;
    for binary in &binaries {
        let major = clients::dockerd_major(binary);
        let stores: &[Store] = if major >= 24 {
            &[Store::Legacy, Store::Containerd]
        } else {
            eprintln!(
                "{} is dockerd {major}: no containerd image store (dockerd 24 and later), only \
                 the legacy store is tested with it",
                binary.display()
            );
            &[Store::Legacy]
        };
        for &store in stores {
            world.standin.stop();
            let (c, p) = dockerd_cells(&mut world, &containerd, binary, major, store, runs);
            cells.extend(c);
            problems.extend(p);
            runs += 1;
        }
    }
    report(
        &format!("dockerd, trustgate {}", world.proxy.url()),
        &cells,
        |c| {
            if c.form.starts_with("`registry-mirrors") && c.egress == Egress::Open {
                Seen::FELL_BACK
            } else {
                Seen::ENFORCED
            }
        },
        problems,
    );
}

/// One dockerd with `store`: both forms, egress blocked then open.
fn dockerd_cells(
    world: &mut World,
    containerd: &Containerd,
    binary: &Path,
    major: u32,
    store: Store,
    run_index: usize,
) -> (Vec<Cell>, Vec<String>) {
    let mut extra = serde_json::json!({
        "registry-mirrors": [world.proxy.url()],
        "containerd-namespace": format!("dockerd-{run_index}"),
        "containerd-plugins-namespace": format!("dockerd-{run_index}-plugins"),
    });
    if major >= 24 {
        extra["features"] =
            serde_json::json!({"containerd-snapshotter": store == Store::Containerd});
    }
    if store == Store::Containerd {
        // The containerd store names containerd's snapshotter.
        extra["storage-driver"] = serde_json::json!("native");
    }
    let dockerd = Dockerd::start(world.standin.command(binary), major, containerd, extra);
    let client = match store {
        Store::Legacy => format!("dockerd {}", dockerd.version()),
        Store::Containerd => format!("dockerd {} (containerd image store)", dockerd.version()),
    };
    let docker = |args: &[&str]| run(dockerd.docker().args(args), "docker.io");
    // The image ID: the config's digest in the legacy store, the manifest's in containerd's.
    let has = |reference: &str, image: &Image| {
        let out = docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        id == image.config.digest || id == image.manifest.digest
    };
    let clean = || {
        let ids = docker(&["image", "ls", "--quiet", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = docker(&["image", "rm", "--force", id]);
        }
    };
    let pull = |reference: &str| docker(&["pull", reference]);
    let direct = |tag: &str| format!("{}/{REPO}:{tag}", world.proxy.host_port());
    let (direct_v1, direct_unsigned) = (direct("v1"), direct("unsigned"));
    let forms: [(&str, [&str; 2]); 2] = [
        (
            "`registry-mirrors: [trustgate]`, `docker pull signed/app:<tag>`",
            ["signed/app:v1", "signed/app:unsigned"],
        ),
        (
            "trustgate as the registry, `docker pull <trustgate>/signed/app:<tag>`",
            [&direct_v1, &direct_unsigned],
        ),
    ];

    let mut cells = Vec::new();
    for egress in [Egress::Blocked, Egress::Open] {
        if egress == Egress::Open {
            world.standin.start();
        }
        for (form, refs) in forms {
            cells.push(cell(world, &client, form, refs, pull, has));
            clean();
        }
    }

    let reason = world.reason();
    let mut problems = Vec::new();
    for c in cells.iter().filter(|c| !c.seen.unsigned) {
        let mirror = c.form.starts_with("`registry-mirrors");
        let want = match (store, mirror) {
            // `docker pull` shows the registry's error code and message.
            (Store::Legacy, false) => format!("may require 'docker login': denied: {reason}"),
            // The mirror's refusal is not what the user sees: the failed direct attempt is.
            (Store::Legacy, true) => HUB_HOST.to_owned(),
            // containerd's resolver sends HEAD and reports the status line only: trustgate
            // puts the reason there.
            (Store::Containerd, _) => format!("403 Forbidden: {reason}"),
        };
        if !c.shown.contains(&want) {
            problems.push(format!(
                "{client} / {}: `{want}` not in {:?}",
                c.form, c.shown
            ));
        }
    }
    if store == Store::Legacy {
        // The refusal reaches dockerd's log, where the mirror attempt's error goes.
        let log = dockerd.log_text();
        let logged = format!("Attempting next endpoint for pull after error: denied: {reason}");
        if !log.contains(&logged) {
            problems.push(format!("{client}: its log lacks `{logged}`:\n{log}"));
        }
    }
    (cells, problems)
}

// === containerd: hosts.toml ===

/// The hosts.toml forms, by name: (label, file contents).
fn hosts_forms(trustgate: &str) -> Vec<(&'static str, String)> {
    let upstream = format!("https://{HUB_HOST}");
    vec![
        (
            "only `server = trustgate`",
            format!("server = \"{trustgate}\"\n"),
        ),
        (
            "`server = trustgate` and an empty `[host]` table",
            format!("server = \"{trustgate}\"\n\n[host]\n"),
        ),
        (
            "mirror host `[\"pull\", \"resolve\"]`, `server` = upstream",
            format!(
                "server = \"{upstream}\"\n\n[host.\"{trustgate}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        ),
        (
            "mirror host `[\"pull\"]` (no resolve), `server` = upstream",
            format!(
                "server = \"{upstream}\"\n\n[host.\"{trustgate}\"]\n  capabilities = [\"pull\"]\n"
            ),
        ),
        (
            "fixed: mirror host `[\"pull\", \"resolve\"]`, `server = trustgate`",
            format!(
                "server = \"{trustgate}\"\n\n[host.\"{trustgate}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        ),
    ]
}

#[test]
fn containerd_hosts_toml_falls_back_to_server() {
    let test = "containerd_hosts_toml_falls_back_to_server";
    if skip(test, &["containerd", "ctr"]) {
        return;
    }
    let mut world = World::start();
    let containerd = Containerd::start();
    let client = format!("containerd {}", containerd.version());
    let dirs = tempfile::tempdir().unwrap();
    let forms: Vec<(&str, PathBuf)> = hosts_forms(&world.proxy.url())
        .into_iter()
        .enumerate()
        .map(|(i, (label, toml))| {
            let dir = dirs.path().join(i.to_string());
            fs::create_dir_all(dir.join(HUB)).unwrap();
            fs::write(dir.join(HUB).join("hosts.toml"), toml).unwrap();
            (label, dir)
        })
        .collect();
    /// `ctr images pull` as a node with `world`'s upstream runs it.
    fn ctr(
        containerd: &Containerd,
        world: &World,
        namespace: &str,
        hosts: &Path,
        debug: bool,
        reference: &str,
    ) -> Output {
        let mut cmd = containerd.ctr(world.standin.command("ctr"), namespace);
        if debug {
            cmd.arg("--debug");
        }
        cmd.args(["images", "pull", "--snapshotter", "native"])
            .args(["--platform", "linux/amd64", "--hosts-dir"])
            .arg(hosts)
            .arg(reference);
        run(&mut cmd, "containerd")
    }
    let refs = [format!("{HUB}/{REPO}:v1"), format!("{HUB}/{REPO}:unsigned")];

    let mut cells = Vec::new();
    let mut ignored_server_only = None;
    let mut debug_refusal = None;
    for egress in [Egress::Blocked, Egress::Open] {
        if egress == Egress::Open {
            world.standin.start();
        }
        for (i, (form, hosts)) in forms.iter().enumerate() {
            // A namespace per cell; content is isolated per namespace.
            let namespace = format!("cell-{i}-{}", egress.label());
            let has = |reference: &str, image: &Image| {
                let out = run(
                    containerd
                        .ctr(Command::new("ctr"), &namespace)
                        .args(["images", "list"]),
                    "containerd",
                );
                text(&out).lines().any(|l| {
                    l.split_whitespace().next() == Some(reference)
                        && l.contains(&image.manifest.digest)
                })
            };
            let c = cell(
                &world,
                &client,
                form,
                [&refs[0], &refs[1]],
                |r| ctr(&containerd, &world, &namespace, hosts, false, r),
                has,
            );
            if i == 0 && ignored_server_only.is_none() {
                ignored_server_only = Some(c.output.contains("invalid `host` tree"));
            }
            cells.push(c);
        }
        if egress == Egress::Blocked {
            // What `ctr --debug` shows of the refusal: the response headers, Warning included.
            let fixed = &forms.last().unwrap().1;
            debug_refusal = Some(ctr(&containerd, &world, "debug", fixed, true, &refs[1]));
        }
    }
    let ignored = ignored_server_only.unwrap_or(false);

    let reason = world.reason();
    let mut problems = Vec::new();
    if containerd.major_minor() == (1, 6) && !ignored {
        problems.push(
            "containerd 1.6 accepted a hosts.toml with only `server`: update the docs, it used \
             to reject it (\"invalid `host` tree\") and pull from the upstream"
                .to_owned(),
        );
    }
    for c in cells.iter().filter(|c| c.seen.refused && !c.seen.unsigned) {
        // containerd reports the status line only (neither the body nor the Warning), and
        // trustgate puts the reason there.
        let want = format!("403 Forbidden: {reason}");
        if !c.shown.contains(&want) {
            problems.push(format!("{}: no `{want}` in {:?}", c.form, c.shown));
        }
    }
    let debug = debug_refusal.map(|o| text(&o)).unwrap_or_default();
    if !(debug.contains("response.header.warning=") && debug.contains(&reason)) {
        problems.push(format!(
            "`ctr --debug` does not show the Warning header with the reason:\n{debug}"
        ));
    } else if let Some(line) = debug
        .lines()
        .find(|l| l.contains("response.header.warning="))
    {
        let start = line.find("response.header.warning=").unwrap_or(0);
        let end = line[start..]
            .find(" response.header.x-request-id")
            .map_or(line.len(), |e| start + e);
        eprintln!("`ctr --debug` on the refusal logs: {}", &line[start..end]);
    }

    report(
        &format!("containerd hosts.toml, trustgate {}", world.proxy.url()),
        &cells,
        |c| {
            let form = c.form.as_str();
            let open = c.egress == Egress::Open;
            if form.starts_with("only `server") && ignored {
                // The file is rejected and containerd uses the default host, the upstream.
                if open {
                    Seen::AROUND
                } else {
                    Seen::NOTHING
                }
            } else if form.starts_with("mirror host `[\"pull\", \"resolve\"]`") && open {
                Seen::FELL_BACK
            } else if form.starts_with("mirror host `[\"pull\"]`") {
                // Tags resolve at `server` only; content by digest from the mirror first.
                if open {
                    Seen::FELL_BACK
                } else {
                    Seen::NOTHING
                }
            } else {
                Seen::ENFORCED
            }
        },
        problems,
    );
}

// === podman: registries.conf ===

/// The registries.conf forms for docker.io: (label, file contents).
fn registries_forms(trustgate: &str) -> Vec<(&'static str, String)> {
    let head = "unqualified-search-registries = []\n\n[[registry]]\nprefix = \"docker.io\"\n";
    let mirror = format!("\n[[registry.mirror]]\nlocation = \"{trustgate}\"\ninsecure = true\n");
    vec![
        (
            "`[[registry.mirror]]` trustgate, `location` = upstream",
            format!("{head}location = \"docker.io\"\n{mirror}"),
        ),
        (
            "the same with `mirror-by-digest-only = true`",
            format!("{head}location = \"docker.io\"\nmirror-by-digest-only = true\n{mirror}"),
        ),
        (
            "fixed: `location` = trustgate",
            format!("{head}location = \"{trustgate}\"\ninsecure = true\n"),
        ),
    ]
}

#[test]
fn podman_registries_conf_falls_back_to_location() {
    let test = "podman_registries_conf_falls_back_to_location";
    if skip(test, &["podman"]) {
        return;
    }
    let mut world = World::start();
    let version = run(Command::new("podman").arg("--version"), "podman");
    let client = String::from_utf8_lossy(&version.stdout)
        .trim()
        .replace(" version", "");
    let dir = tempfile::tempdir().unwrap();
    let forms: Vec<(&str, PathBuf)> = registries_forms(&world.proxy.host_port())
        .into_iter()
        .enumerate()
        .map(|(i, (label, conf))| {
            let path = dir.path().join(format!("registries-{i}.conf"));
            fs::write(&path, conf).unwrap();
            (label, path)
        })
        .collect();
    let refs = [format!("{HUB}/{REPO}:v1"), format!("{HUB}/{REPO}:unsigned")];

    let mut cells = Vec::new();
    for egress in [Egress::Blocked, Egress::Open] {
        if egress == Egress::Open {
            world.standin.start();
        }
        for (form, conf) in &forms {
            // Storage of its own per cell.
            let podman = Podman::new();
            let has = |reference: &str, image: &Image| {
                let mut cmd = podman.podman(Command::new("podman"), conf);
                cmd.args(["image", "inspect", "--format", "{{.Id}}", reference]);
                let out = run(&mut cmd, "podman");
                String::from_utf8_lossy(&out.stdout).trim() == image.config.hex()
            };
            let pull = |reference: &str| {
                let mut cmd = podman.podman(world.standin.command("podman"), conf);
                cmd.args(["pull", reference]);
                run(&mut cmd, "podman")
            };
            cells.push(cell(&world, &client, form, [&refs[0], &refs[1]], pull, has));
        }
    }

    let reason = world.reason();
    let mut problems = Vec::new();
    for c in &cells {
        if c.seen.refused && !c.seen.unsigned && !c.shown.contains(&reason) {
            problems.push(format!(
                "{} / egress {}: trustgate's reason `{reason}` not in {:?}",
                c.form,
                c.egress.label(),
                c.shown
            ));
        }
    }
    report(
        &format!(
            "podman registries.conf, trustgate {}",
            world.proxy.host_port()
        ),
        &cells,
        |c| {
            let open = c.egress == Egress::Open;
            if c.form.starts_with("fixed") {
                Seen::ENFORCED
            } else if c.form.contains("mirror-by-digest-only") {
                // Tag pulls never go to the mirror.
                if open {
                    Seen::AROUND
                } else {
                    Seen::NOTHING
                }
            } else if open {
                Seen::FELL_BACK
            } else {
                Seen::ENFORCED
            }
        },
        problems,
    );
}
