//! containerd 2.1 itself (Debian sid's package, unpacked by `scripts/test` under
//! `target/peers`) as an own instance (own root, state and sockets, never the machine's
//! containerd), its `bindir` image verifier plugin running `trustgate containerd-verifier`
//! through a wrapper script, as a node would. The upstream is the real registry, the proxy
//! verifies cosign signatures made by the test.
//!
//! - a signed image pulls through the proxy (hosts.toml mirror) and straight from the
//!   upstream, bypassing the proxy: the verifier allows both;
//! - an unsigned image is refused by the proxy, containerd falls back to the upstream (the
//!   hole: without the verifier the pull succeeds), and the verifier refuses it there, with
//!   trustgate's reason in `ctr`'s output;
//! - the proxy's configuration evaluated by the verifier itself (`--config`) decides alike;
//! - installed with `--install` (binary, configuration and wrapper), it decides alike;
//! - with the decision API down, the verifier refuses (fail-closed).
//!
//! Needs root (containerd mounts snapshots); skips with a message when not root or when the
//! binary is not there. Pull times with and without the verifier are printed
//! (`--nocapture`).

mod support;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use support::containerd::{containerd_bin, hosts_dir, Containerd};
use support::cosign::{self, Key, REGISTRY};
use support::proxy::Proxy;
use support::{http, run_bounded, Registry};

/// What a node does to run trustgate's verifier: the wrapper script in containerd's `bin_dir`.
impl Containerd {
    /// Puts the wrapper script into `bin_dir`, running `trustgate containerd-verifier`
    /// against `admin_url`, as the docs tell a node to.
    fn install_verifier(&self, admin_url: &str) {
        self.install_wrapper(&format!("--trustgate-url '{admin_url}' --timeout 5s"));
    }

    /// The wrapper script with `flags` (shell words) before containerd's.
    fn install_wrapper(&self, flags: &str) {
        let script = format!(
            "#!/bin/sh\nexec '{}' containerd-verifier {flags} \"$@\"\n",
            env!("CARGO_BIN_EXE_trustgate")
        );
        let path = self.path("verifiers/trustgate");
        fs::write(&path, script).unwrap();
        let mut perms = fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        fs::set_permissions(&path, perms).unwrap();
    }

    /// An empty `bin_dir`: containerd then verifies nothing.
    fn remove_verifier(&self) {
        fs::remove_file(self.path("verifiers/trustgate")).unwrap();
    }
}

fn requests_served(proxy: &Proxy) -> f64 {
    proxy
        .metrics()
        .lines()
        .filter(|l| l.starts_with("trustgate_http_requests_total"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[test]
fn containerd_enforces_trustgate_verdicts_on_every_path() {
    let Some(bin) = containerd_bin() else { return };
    let registry = Registry::start();
    let keys = tempfile::tempdir().unwrap();
    let key = Key::generate(keys.path(), "a");
    let trust = format!(
        "      keys: [{}]\n      require_tlog: false\n",
        serde_json::json!(key.public.to_str().unwrap())
    );
    let proxy = Proxy::start(&cosign::config(
        &registry.url(),
        &[cosign::verify_rule("signed/**", &trust)],
    ));
    let signed = registry.push_random("signed/app", "v1", 2);
    key.sign_image(&registry, "signed/app", &signed.manifest.digest);
    let unsigned = registry.push_random("signed/other", "v1", 2);

    let containerd = Containerd::start(&bin);
    let via_proxy = hosts_dir(
        &containerd.path("hosts-via-proxy"),
        &registry.url(),
        Some(&proxy.url()),
    );
    let direct = hosts_dir(&containerd.path("hosts-direct"), &registry.url(), None);
    containerd.install_verifier(&proxy.admin_url());
    let signed_ref = format!("{REGISTRY}/signed/app:v1");
    let unsigned_ref = format!("{REGISTRY}/signed/other:v1");

    // Signed, through the proxy: served by it, allowed by the verifier.
    let before = requests_served(&proxy);
    let (ok, out, through_proxy) = containerd.pull(&via_proxy, &signed_ref);
    assert!(ok, "{out}\n{}", containerd.log());
    assert!(requests_served(&proxy) > before, "the proxy served nothing");
    containerd.remove_image(&signed_ref);

    // Signed, straight from the upstream (the proxy bypassed): allowed by the verifier.
    let (ok, out, direct_first) = containerd.pull(&direct, &signed_ref);
    assert!(ok, "{out}\n{}", containerd.log());
    assert!(containerd.images().contains(&signed_ref));

    // Unsigned: the proxy refuses, containerd falls back to the upstream. Without the
    // verifier that pull succeeds: the hole.
    containerd.remove_verifier();
    let (ok, out, _) = containerd.pull(&via_proxy, &unsigned_ref);
    assert!(
        ok,
        "without a verifier the fallback should have pulled the unsigned image: {out}"
    );
    assert!(
        proxy.log().contains("signed/other"),
        "the proxy was not asked first:\n{}",
        proxy.log_tail(20)
    );
    containerd.remove_image(&unsigned_ref);

    // With it, the same fallback is refused, and ctr shows trustgate's reason.
    containerd.install_verifier(&proxy.admin_url());
    let verdict = http::request(
        "GET",
        &format!(
            "{}/v1/verdict?image={REGISTRY}/signed/other%40{}",
            proxy.admin_url(),
            unsigned.manifest.digest
        ),
        &[],
        b"",
    )
    .unwrap();
    let verdict: serde_json::Value = serde_json::from_slice(&verdict.body).unwrap();
    assert_eq!(verdict["verdict"], "refuse", "{verdict}");
    for hosts in [&via_proxy, &direct] {
        let (ok, out, _) = containerd.pull(hosts, &unsigned_ref);
        assert!(!ok, "the unsigned image was pulled: {out}");
        assert!(out.contains("trustgate refused"), "{out}");
        let reason = verdict["reason"].as_str().unwrap();
        assert!(out.contains(reason), "`{reason}` not in:\n{out}");
        assert!(out.contains("blocked pull"), "{out}");
        if hosts == &via_proxy {
            let shown = out
                .lines()
                .find(|l| l.starts_with("ctr:"))
                .unwrap_or_default();
            eprintln!("what ctr shows for the refused fallback: {shown}");
        }
    }
    assert!(
        !containerd.images().contains(&unsigned_ref),
        "{}",
        containerd.images()
    );

    // What the verifier costs a pull whose content is already on the node: the same pull
    // with and without it.
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..3 {
        containerd.remove_image(&signed_ref);
        let (ok, out, t) = containerd.pull(&direct, &signed_ref);
        assert!(ok, "{out}");
        with.push(t);
        containerd.remove_verifier();
        containerd.remove_image(&signed_ref);
        let (ok, out, t) = containerd.pull(&direct, &signed_ref);
        assert!(ok, "{out}");
        without.push(t);
        containerd.install_verifier(&proxy.admin_url());
    }
    // And one verifier call on its own, as containerd makes it.
    let mut calls = Vec::new();
    for _ in 0..5 {
        let mut cmd = Command::new(containerd.path("verifiers/trustgate"));
        cmd.args([
            "-name",
            &signed_ref,
            "-digest",
            &signed.manifest.digest,
            "-stdin-media-type",
            "application/vnd.oci.descriptor.v1+json",
        ]);
        let descriptor = serde_json::json!({
            "mediaType": signed.media_type, "digest": signed.manifest.digest,
            "size": signed.manifest.bytes.len(),
        });
        let started = Instant::now();
        let out = run_bounded(&mut cmd, descriptor.to_string().as_bytes(), "trustgate");
        calls.push(started.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    eprintln!(
        "containerd 2.1 pulls of a 2-layer image: first through the proxy {through_proxy:?}, \
         first straight from the upstream {direct_first:?}; content on the node, median of 3: \
         with the verifier {:?}, without {:?}; one verifier call against the decision API: \
         median of 5 {:?}",
        median(with),
        median(without),
        median(calls)
    );

    // The same verdicts from the proxy's configuration evaluated by the verifier itself.
    containerd.install_wrapper(&format!("--config '{}'", proxy.config_path().display()));
    containerd.remove_image(&signed_ref);
    let (ok, out, local) = containerd.pull(&direct, &signed_ref);
    assert!(ok, "local evaluation refused the signed image: {out}");
    let (ok, out, _) = containerd.pull(&direct, &unsigned_ref);
    assert!(!ok && out.contains("trustgate refused"), "{out}");
    assert!(out.contains(verdict["reason"].as_str().unwrap()), "{out}");
    eprintln!("with the verifier evaluating the configuration itself (--config): {local:?}");

    // Installed as a node (or the chart's DaemonSet) does it: `--install` copies the binary
    // and writes the configuration and the wrapper into bin_dir.
    let installed = support::trustgate([
        "containerd-verifier",
        "--install",
        containerd.path("verifiers").to_str().unwrap(),
        "--install-binary",
        containerd
            .path("opt/trustgate/bin/trustgate")
            .to_str()
            .unwrap(),
        "--verifier-config",
        containerd
            .path("etc/containerd-verifier.yaml")
            .to_str()
            .unwrap(),
        "--trustgate-url",
        &proxy.admin_url(),
        "--timeout",
        "5s",
    ]);
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let script = fs::read_to_string(containerd.path("verifiers/trustgate")).unwrap();
    assert!(script.contains("--verifier-config"), "{script}");
    containerd.remove_image(&signed_ref);
    let (ok, out, _) = containerd.pull(&direct, &signed_ref);
    assert!(ok, "the installed verifier refused the signed image: {out}");
    let (ok, out, _) = containerd.pull(&via_proxy, &unsigned_ref);
    assert!(!ok && out.contains("trustgate refused"), "{out}");

    // The decision API down: every pull is refused, signed or not.
    drop(proxy);
    containerd.remove_image(&signed_ref);
    let (ok, out, _) = containerd.pull(&direct, &signed_ref);
    assert!(!ok, "pulled with the decision API down: {out}");
    assert!(
        out.contains("fail-closed") && out.contains("cannot reach trustgate"),
        "{out}"
    );
    let shown = out
        .lines()
        .find(|l| l.starts_with("ctr:"))
        .unwrap_or_default();
    eprintln!("what ctr shows with the decision API down: {shown}");
}
