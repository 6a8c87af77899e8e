//! `trustgate doctor` as a user runs it: the real binary against client configurations written
//! here, each bypass-prone one the issue lists and the fixed ones, with the exit code (1 for a
//! finding, 0 clean, 2 for bad input) and one `<file>:<setting>: … — fix: …` line a finding.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const PROXY: &str = "trustgate.example.internal:5000";
const URL: &str = "https://trustgate.example.internal:5000";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The finding line for `file:setting`, asserting that it says `needle`.
    fn has(&self, file: &Path, setting: &str, needle: &str) {
        let head = format!("{}:{setting}: ", file.display());
        assert!(
            self.lines()
                .iter()
                .any(|l| l.starts_with(&head) && l.contains(needle)),
            "no `{head}…{needle}…` in:\n{}",
            self.stdout
        );
    }
}

fn doctor(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("run trustgate doctor");
    let run = Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    for line in run.lines() {
        let (head, fix) = line.split_once(" — fix: ").expect("a fix on every line");
        assert!(!fix.is_empty() && head.matches(": ").count() >= 1, "{line}");
    }
    match run.code {
        0 => assert!(run.stdout.is_empty(), "{}", run.stdout),
        1 => assert!(!run.stdout.is_empty(), "{}", run.stderr),
        _ => {}
    }
    run
}

fn write(path: &Path, text: &str) -> PathBuf {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The hosts.toml docs/clients.md gives, for a registry directory and for _default.
fn fixed_hosts() -> String {
    format!(
        "server = \"{URL}\"\ncapabilities = [\"pull\", \"resolve\"]\n\n[host.\"{URL}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

#[test]
fn dockerd_bypass_prone_and_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str, text: &str| write(&dir.path().join(name), text);

    // no registry-mirrors
    let f = p("none.json", "{}\n");
    let r = doctor(&["--daemon-json", s(&f), "--proxy", PROXY]);
    assert_eq!(r.code, 1);
    r.has(
        &f,
        "registry-mirrors",
        "absent: Docker Hub images are pulled straight",
    );

    // the mirror is trustgate, but only for Docker Hub, and dockerd falls back past it
    let f = p(
        "mirror.json",
        &format!("{{\"registry-mirrors\": [\"{URL}\"]}}\n"),
    );
    let r = doctor(&["--daemon-json", s(&f), "--proxy", PROXY]);
    assert_eq!(r.code, 1);
    r.has(&f, "registry-mirrors", "Docker Hub images only");
    r.has(
        &f,
        "registry-mirrors",
        "pulls it from registry-1.docker.io itself",
    );
    assert_eq!(r.lines().len(), 2, "{}", r.stdout);

    // a mirror that is not trustgate: refusing egress to the upstream does not close it
    let f = p(
        "other.json",
        "{\"registry-mirrors\": [\"https://mirror.gcr.io\"]}\n",
    );
    let r = doctor(&["--daemon-json", s(&f), "--proxy", PROXY, "--egress-blocked"]);
    assert_eq!(r.code, 1);
    r.has(&f, "registry-mirrors[0]", "which is not trustgate");

    // fixed: trustgate as the mirror with the egress refused, or references on trustgate
    for f in [
        p(
            "fixed.json",
            &format!("{{\"registry-mirrors\": [\"{URL}/\"]}}\n"),
        ),
        p("empty.json", ""),
    ] {
        let r = doctor(&["--daemon-json", s(&f), "--proxy", PROXY, "--egress-blocked"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("closed by the refused egress"),
            "{}",
            r.stderr
        );
    }
    // without --proxy the mirror is taken to be trustgate, and said so
    let r = doctor(&[
        "--daemon-json",
        s(&dir.path().join("fixed.json")),
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 0);
    assert!(r
        .stderr
        .contains("taking trustgate to be trustgate.example.internal:5000"));

    // insecure-registries covering trustgate stays a finding
    let f = p(
        "insecure.json",
        &format!("{{\"registry-mirrors\": [\"{URL}\"], \"insecure-registries\": [\"{PROXY}\"]}}\n"),
    );
    let r = doctor(&["--daemon-json", s(&f), "--proxy", PROXY, "--egress-blocked"]);
    assert_eq!(r.code, 1);
    r.has(&f, "insecure-registries[0]", "any certificate");
}

#[test]
fn containerd_bypass_prone_and_fixed() {
    let root = tempfile::tempdir().unwrap();
    let case = |name: &str, docker_io: Option<&str>| {
        let dir = root.path().join(name);
        write(&dir.join("_default/hosts.toml"), &fixed_hosts());
        let file = dir.join("docker.io/hosts.toml");
        if let Some(text) = docker_io {
            write(&file, text);
        }
        (dir, file)
    };
    let run = |dir: &Path| doctor(&["--containerd-hosts", s(dir), "--proxy", PROXY]);

    // fixed: the documented layout
    let (dir, _) = case("fixed", Some(&fixed_hosts()));
    let r = run(&dir);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no bypass found"));

    // no hosts.toml for a registry, and no _default
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = run(&empty);
    assert_eq!(r.code, 1);
    r.has(
        &empty,
        "docker.io/hosts.toml",
        "pulls docker.io straight from registry-1.docker.io",
    );
    r.has(&empty, "_default/hosts.toml", "absent");

    // `server` alone: containerd 1.6 rejects the tree and pulls direct
    let (dir, file) = case("server-alone", Some(&format!("server = \"{URL}\"\n")));
    let r = run(&dir);
    assert_eq!(r.code, 1);
    r.has(&file, "server", "invalid `host` tree");

    // `server` pointing upstream: the fallback after the refusal
    let (dir, file) = case(
        "server-upstream",
        Some(&format!(
            "server = \"https://registry-1.docker.io\"\n\n[host.\"{URL}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        )),
    );
    let r = run(&dir);
    assert_eq!(r.code, 1);
    r.has(
        &file,
        "server",
        "after trustgate refuses, containerd pulls docker.io from https://registry-1.docker.io",
    );
    assert_eq!(r.lines().len(), 1, "{}", r.stdout);
    // which refusing the egress to the upstream closes
    let r = doctor(&[
        "--containerd-hosts",
        s(&dir),
        "--proxy",
        PROXY,
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // `capabilities` without "resolve": tags resolved upstream
    let (dir, file) = case(
        "no-resolve",
        Some(&format!("server = \"https://registry-1.docker.io\"\n\n[host.\"{URL}\"]\n  capabilities = [\"pull\"]\n")),
    );
    let r = run(&dir);
    assert_eq!(r.code, 1);
    r.has(
        &file,
        &format!("host.\"{URL}\".capabilities"),
        "a tag moved after signing",
    );

    // skip_verify on trustgate
    let (dir, file) = case(
        "skip-verify",
        Some(&format!(
            "server = \"{URL}\"\n\n[host.\"{URL}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n"
        )),
    );
    let r = doctor(&[
        "--containerd-hosts",
        s(&dir),
        "--proxy",
        PROXY,
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 1);
    r.has(
        &file,
        &format!("host.\"{URL}\".skip_verify"),
        "does not verify trustgate's certificate",
    );

    // the upstream listed before trustgate
    let (dir, file) = case(
        "upstream-first",
        Some(&format!(
            "server = \"{URL}\"\n\n[host.\"https://registry-1.docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n[host.\"{URL}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        )),
    );
    let r = run(&dir);
    assert_eq!(r.code, 1);
    r.has(
        &file,
        "host.\"https://registry-1.docker.io\"",
        "comes before trustgate",
    );
}

#[test]
fn registries_conf_bypass_prone_and_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str, text: &str| write(&dir.path().join(name), text);
    let run = |f: &Path| doctor(&["--registries-conf", s(f), "--proxy", PROXY]);
    let mirror = format!("[[registry.mirror]]\nlocation = \"{PROXY}\"\n");
    let hub = "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n";

    // no mirror
    let f = p(
        "none.conf",
        "unqualified-search-registries = [\"docker.io\"]\n",
    );
    let r = run(&f);
    assert_eq!(r.code, 1);
    r.has(
        &f,
        "registry[\"docker.io\"]",
        "no [[registry]] covers docker.io",
    );
    r.has(
        &f,
        "unqualified-search-registries",
        "short names are tried on docker.io",
    );
    let f = p("no-mirror.conf", hub);
    run(&f).has(
        &f,
        "registry[\"docker.io\"].location",
        "no trustgate mirror",
    );

    // mirror-by-digest-only = true (what OpenShift writes)
    let f = p(
        "mbdo.conf",
        &format!("{hub}mirror-by-digest-only = true\n{mirror}"),
    );
    let r = run(&f);
    assert_eq!(r.code, 1);
    r.has(
        &f,
        "registry[\"docker.io\"].mirror-by-digest-only",
        "tag pulls skip every mirror",
    );

    // pull-from-mirror = "digest-only" and "tag-only"
    let m = format!("registry[\"docker.io\"].mirror[\"{PROXY}\"].pull-from-mirror");
    let f = p(
        "digest-only.conf",
        &format!("{hub}{mirror}pull-from-mirror = \"digest-only\"\n"),
    );
    run(&f).has(&f, &m, "tag pulls skip trustgate");
    let f = p(
        "tag-only.conf",
        &format!("{hub}{mirror}pull-from-mirror = \"tag-only\"\n"),
    );
    run(&f).has(&f, &m, "digest pulls skip trustgate");

    // blocked = false with the primary location reachable: the fallback
    let f = p("fallback.conf", &format!("{hub}blocked = false\n{mirror}"));
    let r = run(&f);
    r.has(
        &f,
        "registry[\"docker.io\"].location",
        "after trustgate refuses",
    );
    // closed by the refused egress, or by trustgate as the primary location
    let r = doctor(&[
        "--registries-conf",
        s(&f),
        "--proxy",
        PROXY,
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // unqualified-search-registries reaching a registry with no mirror
    let f = p(
        "search.conf",
        &format!("unqualified-search-registries = [\"docker.io\", \"quay.io\"]\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"{PROXY}\"\n"),
    );
    run(&f).has(&f, "unqualified-search-registries", "quay.io");

    // insecure = true on the primary, trustgate itself: not closed by any egress rule
    let f = p(
        "insecure.conf",
        &format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{PROXY}\"\ninsecure = true\n"),
    );
    let r = doctor(&[
        "--registries-conf",
        s(&f),
        "--proxy",
        PROXY,
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 1);
    r.has(
        &f,
        "registry[\"docker.io\"].insecure",
        "any certificate from trustgate",
    );

    // fixed: trustgate as the primary location; only the missing catch-all is left, and
    // refusing egress closes that
    let f = p(
        "fixed.conf",
        &format!("unqualified-search-registries = [\"docker.io\"]\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"{PROXY}\"\n"),
    );
    let r = run(&f);
    assert_eq!(r.code, 1);
    assert_eq!(r.lines().len(), 1, "{}", r.stdout);
    r.has(&f, "registry", "no catch-all");
    let r = doctor(&[
        "--registries-conf",
        s(&f),
        "--proxy",
        PROXY,
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // a drop-in beside the file fixes a bypass-prone main file
    let f = p("main.conf", &format!("{hub}{mirror}"));
    p(
        "main.conf.d/50-trustgate.conf",
        &format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{PROXY}\"\n"),
    );
    let r = doctor(&[
        "--registries-conf",
        s(&f),
        "--proxy",
        PROXY,
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn all_three_at_once_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = write(
        &dir.path().join("daemon.json"),
        &format!("{{\"registry-mirrors\": [\"{URL}\"]}}"),
    );
    let certs = dir.path().join("certs.d");
    write(&certs.join("_default/hosts.toml"), &fixed_hosts());
    let conf = write(
        &dir.path().join("registries.conf"),
        &format!("[[registry]]\nprefix = \"docker.io\"\nlocation = \"{PROXY}\"\n"),
    );
    let r = doctor(&[
        "--daemon-json",
        s(&daemon),
        "--containerd-hosts",
        s(&certs),
        "--registries-conf",
        s(&conf),
        "--egress-blocked",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // unreadable or invalid: exit 2, the file and the position named
    let bad = write(
        &dir.path().join("bad.json"),
        "{\n  \"registry-mirrors\": \"https://x\"\n}\n",
    );
    let r = doctor(&["--daemon-json", s(&bad)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains(&format!("{}: line 2 column", bad.display())),
        "{}",
        r.stderr
    );
    let bad = write(
        &certs.join("docker.io/hosts.toml"),
        "server = \"x\"\n[host.\"y\"\n",
    );
    let r = doctor(&["--containerd-hosts", s(&certs)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(&bad.display().to_string()) && r.stderr.contains("line 2"),
        "{}",
        r.stderr
    );
    let bad = write(
        &dir.path().join("bad.conf"),
        "[[registry]]\nlocation = \"https://docker.io\"\n",
    );
    let r = doctor(&["--registries-conf", s(&bad)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("URI schemes are not supported"),
        "{}",
        r.stderr
    );
    let r = doctor(&["--daemon-json", s(&dir.path().join("missing.json"))]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.json"), "{}", r.stderr);
    // no input at all is a usage error
    assert_eq!(doctor(&[]).code, 2);
}
