//! `trustgate containerd-verifier --install <bin_dir>`: puts the verifier on a node, from the
//! node itself or from a DaemonSet's container that mounts the node's filesystem
//! (`--host-root`): this binary outside `bin_dir`, the verifier's configuration and token at
//! fixed paths, and a wrapper script in `bin_dir` that runs the binary with that
//! configuration. Every file is written beside its target and renamed into place, so
//! containerd never runs a half-written one; the script is written last.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Component, Path, PathBuf},
    process::ExitCode,
};

use super::{admin_url, ContainerdVerifierArgs, DEFAULT_CONFIG};

/// Where the binary goes on the node unless `--install-binary` says otherwise.
pub const DEFAULT_BINARY: &str = "/opt/trustgate/bin/trustgate";
/// The wrapper's name in `bin_dir`.
pub const WRAPPER: &str = "trustgate";

/// The token and CA copies, beside the configuration on the node.
const TOKEN: &str = "/etc/trustgate/containerd-verifier.token";
const CA: &str = "/etc/trustgate/containerd-verifier-ca.pem";

pub async fn run(args: &ContainerdVerifierArgs) -> ExitCode {
    match install(args).await {
        Ok(done) => {
            println!("{done}");
            if args.keep_running {
                wait_for_stop().await;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: trustgate containerd-verifier --install: {e}");
            ExitCode::from(1)
        }
    }
}

async fn install(args: &ContainerdVerifierArgs) -> Result<String, String> {
    let bin_dir = args.install.as_deref().unwrap_or(Path::new(""));
    let binary = &args.install_binary;
    let config = args
        .verifier_config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    for path in [bin_dir, binary, &config] {
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "{}: give absolute paths on the node, without `..`",
                path.display()
            ));
        }
    }
    if binary.starts_with(bin_dir) || config.starts_with(bin_dir) {
        return Err(format!(
            "keep the binary and the configuration out of {}: containerd runs every file there",
            bin_dir.display()
        ));
    }
    if args.config.is_some() {
        return Err("--install writes an API configuration: give --trustgate-url".into());
    }
    let Some(url) = &args.trustgate_url else {
        return Err("give --trustgate-url (the trustgate admin listener)".into());
    };
    admin_url(url)?;
    let url = match args.resolve {
        true => resolved(url).await?,
        false => url.trim_end_matches('/').to_owned(),
    };
    let on_node = |path: &Path| args.host_root.join(path.strip_prefix("/").unwrap_or(path));

    let mut yaml = format!(
        "# Written by trustgate containerd-verifier --install.\ntrustgate_url: {}\n",
        serde_json::json!(url)
    );
    if let Some(token) = &args.token_file {
        let token = fs::read(token).map_err(|e| format!("{}: {e}", token.display()))?;
        write(&on_node(Path::new(TOKEN)), &token, 0o600)?;
        yaml.push_str(&format!("token_file: {TOKEN}\n"));
    }
    if let Some(ca) = &args.ca_file {
        let ca = fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        write(&on_node(Path::new(CA)), &ca, 0o644)?;
        yaml.push_str(&format!("ca_file: {CA}\n"));
    }
    if let Some(timeout) = args.timeout {
        yaml.push_str(&format!("timeout: {}ms\n", timeout.as_millis()));
    }
    write(&on_node(&config), yaml.as_bytes(), 0o644)?;
    let me = fs::read("/proc/self/exe").map_err(|e| format!("reading this binary: {e}"))?;
    write(&on_node(binary), &me, 0o755)?;
    let script = wrapper(binary, &config);
    // Beside bin_dir, not in it: containerd would run the half-written file.
    let target = on_node(&bin_dir.join(WRAPPER));
    fs::create_dir_all(on_node(bin_dir))
        .map_err(|e| format!("{}: {e}", on_node(bin_dir).display()))?;
    write(&target, script.as_bytes(), 0o755)?;
    Ok(format!(
        "installed {} (runs {} with {}), asking {url}",
        bin_dir.join(WRAPPER).display(),
        binary.display(),
        config.display()
    ))
}

/// The script containerd runs from `bin_dir`.
pub fn wrapper(binary: &Path, config: &Path) -> String {
    format!(
        "#!/bin/sh\n# containerd's image verifier: trustgate's verdict for every pull \
         (written by trustgate containerd-verifier --install).\n\
         exec {} containerd-verifier --verifier-config {} \"$@\"\n",
        quote(binary),
        quote(config)
    )
}

/// `path` as one shell word.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// `url` with its host name replaced by the address it resolves to now.
async fn resolved(url: &str) -> Result<String, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if parsed.scheme() != "http" {
        return Err("--resolve keeps TLS names intact: use it with http:// URLs only".into());
    }
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect::<Vec<_>>();
    addrs.sort_by_key(|a| !a.is_ipv4());
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    parsed
        .set_ip_host(addr.ip())
        .map_err(|()| format!("cannot put {} in {url}", addr.ip()))?;
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Writes `bytes` beside `target` and renames it into place, with `mode`.
fn write(target: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let shown = || target.display().to_string();
    let dir = target.parent().ok_or_else(shown)?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    // The wrapper's temporary file goes beside bin_dir, not into it.
    let staging = match dir.parent() {
        Some(parent) if name == WRAPPER => parent.to_owned(),
        _ => dir.to_owned(),
    };
    let temp = staging.join(format!(".{name}.trustgate-install-{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&temp, target));
    written.map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!("{}: {e}", shown())
    })
}

async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    use crate::cli::{Cli, Command};

    fn args(list: &[&str]) -> ContainerdVerifierArgs {
        let argv = super::super::containerd_args(list.iter().map(std::ffi::OsString::from));
        match Cli::try_parse_from(argv).unwrap().command {
            Command::ContainerdVerifier(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn installs_under_the_host_root_and_refuses_bin_dir_paths() {
        let host = tempfile::tempdir().unwrap();
        let token = host.path().join("pod-token");
        fs::write(&token, "t0ken\n").unwrap();
        let root = host.path().to_str().unwrap();
        let a = args(&[
            "trustgate",
            "containerd-verifier",
            "--install",
            "/opt/containerd/image-verifier/bin",
            "--host-root",
            root,
            "--trustgate-url",
            "http://127.0.0.1:9090/",
            "--token-file",
            token.to_str().unwrap(),
            "--timeout",
            "5s",
        ]);
        install(&a).await.unwrap();
        let at = |p: &str| host.path().join(p.trim_start_matches('/'));
        let script =
            fs::read_to_string(at("/opt/containerd/image-verifier/bin/trustgate")).unwrap();
        assert_eq!(
            script,
            wrapper(Path::new(DEFAULT_BINARY), Path::new(DEFAULT_CONFIG))
        );
        let config = fs::read_to_string(at(DEFAULT_CONFIG)).unwrap();
        assert!(
            config.contains("trustgate_url: \"http://127.0.0.1:9090\"\n"),
            "{config}"
        );
        assert!(
            config.contains(&format!("token_file: {TOKEN}\n")),
            "{config}"
        );
        assert!(config.contains("timeout: 5000ms\n"), "{config}");
        assert_eq!(fs::read_to_string(at(TOKEN)).unwrap(), "t0ken\n");
        let mode = |p: &str| fs::metadata(at(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(TOKEN), 0o600);
        assert_eq!(mode(DEFAULT_BINARY), 0o755);
        assert_eq!(mode("/opt/containerd/image-verifier/bin/trustgate"), 0o755);
        // Only the wrapper in bin_dir; nothing left beside it.
        let entries: Vec<_> = fs::read_dir(at("/opt/containerd/image-verifier/bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["trustgate"]);
        let beside: Vec<_> = fs::read_dir(at("/opt/containerd/image-verifier"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(beside, ["bin"]);

        for (extra, phrase) in [
            (
                ["--install-binary", "/opt/containerd/image-verifier/bin/tg"],
                "keep the binary",
            ),
            (["--verifier-config", "relative.yaml"], "absolute paths"),
            (
                ["--config", "/etc/trustgate/trustgate.yaml"],
                "--trustgate-url",
            ),
        ] {
            let mut list = vec![
                "trustgate",
                "containerd-verifier",
                "--install",
                "/opt/containerd/image-verifier/bin",
                "--host-root",
                root,
                "--trustgate-url",
                "http://127.0.0.1:9090",
            ];
            list.extend(extra);
            let err = install(&args(&list)).await.unwrap_err();
            assert!(err.contains(phrase), "{extra:?}: {err}");
        }
    }

    #[tokio::test]
    async fn resolve_writes_an_address() {
        assert_eq!(
            resolved("http://localhost:9090").await.unwrap(),
            "http://127.0.0.1:9090"
        );
        assert!(resolved("https://localhost:9090").await.is_err());
    }

    #[test]
    fn wrapper_paths_are_quoted() {
        assert_eq!(quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
